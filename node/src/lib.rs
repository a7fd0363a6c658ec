//! The Acre node: the I/O shell around `acre-core`'s machines and `acre-ledger`.
//!
//! Components, each in its folder, and what they may import (`specs/architecture.md`):
//!
//! - [`config`]: the command line's settings, keys, genesis, the data directory;
//! - [`transport`]: libp2p — connections, and one framed request/reply stream per
//!   protocol (the messages themselves are `acre_core::wire`'s);
//! - [`ledger`]: the one thread that owns RocksDB and group-commits;
//! - [`section`]: gathering votes into certificates, catching up on missed ones, the
//!   membership the agreed log says;
//! - [`driver`]: the section machine's shell — aleph-bft sessions, outcome files, records
//!   handed to the ledger;
//! - [`storage`]: chunks on disk, uploads placed on their holders, audits, under the
//!   storage book's decisions;
//! - [`api`]: the JSON API and the farmer's dashboard, speaking `acre-api`;
//! - [`router`]: inbound requests, by protocol, to the component that owns each;
//! - [`supervisor`]: the node's lifelong tasks, watched.

pub mod api;
mod blocking;
pub mod config;
pub mod driver;
pub mod ledger;
pub mod router;
pub mod section;
pub mod storage;
pub mod supervisor;
pub mod transport;

/// Locks a mutex whose data stays consistent even if a holder panicked: every holder
/// here makes each change whole before it can panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
