//! Acre's section protocol as pure state machines.
//!
//! Everything a node decides about its section lives here, as synchronous handlers that
//! take an input — a message, a tick carrying the time, the result of an effect the node
//! ran — and return [`section::Effect`]s for the shell to run: start a session of the
//! atomic broadcast, propose an item to it, write an outcome durably, apply a record to
//! the ledger, send a signature, fetch a closed epoch. No clock, socket, file or task
//! lives in this crate, so the node (`acre-node`, on aleph-bft, libp2p and disks) and the
//! deterministic simulator (`acre-sim`) run the same decisions.
//!
//! - [`awaiting`]: store payments accepted here that the log has not ordered yet, proposed
//!   again until it does;
//! - [`log`]: the log's items, their admission, epoch outcomes and their verification;
//! - [`section`]: the section driver's machine — sessions, the cut, signatures, catch-up,
//!   liveness, enrolment, records applied to the ledger;
//! - [`storage`]: the storage book — the registry, holders and duties, audit and repair
//!   plans, required payments, the price window, audit tallies and the excuse rule;
//! - [`meter`]: reads through apps, counted once two members attest them;
//! - [`proposals`]: what an elder proposed and the log has not ordered, found by digest;
//! - [`wire`]: what nodes say to each other, one request and reply type per protocol.

pub mod awaiting;
pub mod log;
pub mod meter;
pub mod proposals;
pub mod section;
pub mod storage;
pub mod wire;

pub use log::{
    admit, session_elders, verify_outcome, Enrolment, EpochOutcome, LogItem, OutcomeError, LOG_BYTES_PER_ELDER,
};
pub use meter::UseMeter;
pub use section::{
    AuditSummary, Effect, Input, Proposer, RecordToApply, RecordsApplied, SectionMachine, SectionSettings,
};
pub use storage::{BookError, StorageBook};
