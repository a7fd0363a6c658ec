//! The Acre node: the I/O shell around `acre-ledger`.
//!
//! A node keeps its ledger in RocksDB under its data directory, owned by one thread
//! ([`ledger_task`]) that group-commits whatever is queued. It talks to the other nodes
//! over libp2p ([`network`]), gathers votes into certificates and catches up on ones it
//! missed ([`section`]), stores and audits chunks ([`storage`], on files kept by
//! [`chunk_store`]), orders the section's log and closes its epochs ([`farming`] on
//! [`section_log`]), and serves the JSON API ([`api`], [`storage_api`]). `acre-node init` writes a
//! data directory, `acre-node run` serves it, `acre-node devnet` runs a local network.
//! Protocol decisions stay in the ledger's state machines.

pub mod api;
pub mod apps_api;
mod blocking;
pub mod chunk_store;
pub mod config;
pub mod dashboard;
pub mod farming;
pub mod farming_api;
pub mod genesis;
pub mod key;
pub mod ledger_task;
pub mod network;
pub mod records;
pub mod section;
pub mod section_log;
pub mod storage;
pub mod storage_api;
pub mod supervisor;
mod vote_queue;
