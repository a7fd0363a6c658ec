//! The Acre node: the I/O shell around `acre-ledger`.
//!
//! Today a node keeps its ledger in RocksDB under its data directory and serves it over
//! the JSON API ([`api`]); `acre-node init` writes the directory (configuration, key,
//! genesis) and `acre-node run` serves it. Elder networking over libp2p, section agreement,
//! chunk storage and the devnet build on this shell; protocol decisions stay in the
//! ledger's state machines.

pub mod api;
pub mod config;
pub mod genesis;
pub mod key;
