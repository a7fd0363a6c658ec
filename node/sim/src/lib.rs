//! A deterministic simulator of an Acre section.
//!
//! One process runs N nodes on a seeded scheduler: a priority queue of events keyed by
//! simulated time and insertion order. No wall clock is read and no hash map's order
//! decides anything, so a seed replays exactly, and [`SimReport::run_hash`] — BLAKE3 over
//! every event processed — says so.
//!
//! Each node is the same pair of machines the real node runs: an
//! [`acre_core::SectionMachine`] and an [`acre_ledger::DurableElder`] on a simulated disk.
//! The simulator is their second shell: it runs every [`acre_core::Effect`] the way the
//! node does and feeds the results back as [`acre_core::Input`]s. Around them it
//! simulates:
//!
//! - **disks** ([`SimStore`]): commits visible at once, durable once synced; a crash keeps
//!   only what was synced, and a power cut can strike between a group's writes and its
//!   fsync. The machine's own files (outcomes, state, meter) are synced atomic writes.
//! - **the network**: latency with seeded jitter (messages overtake each other), loss,
//!   partitions that drop every message across them until healed.
//! - **the atomic broadcast**, as a *model*: in the node, aleph-bft orders each session's
//!   items. Here one ordered log per session stands in for it: a proposal is appended
//!   once its elder reaches a quorum of the session's running elders, and each elder on
//!   a quorum side is delivered the log in order — from the start after a restart, what
//!   it had received alone from its backup. It gives every honest elder one order and
//!   needs a quorum to progress, which is all the machine relies on; units, rounds, the
//!   engine's signatures and backups are not simulated, and a Byzantine elder can lie in
//!   its proposals but cannot fork the order. [`SessionReplay`] says where an elder
//!   that comes back to a session gets what it missed: from the log itself (the
//!   default), or, as with aleph-bft, only from peers still running that session, so
//!   that an elder left alone in a finished session must catch up by fetching outcomes.
//!   Elders behind a later session see its frames once a second (`Input::PeerAhead`).
//! - **storage**, as a *model*: a fixed seeded set of chunks on their 4 closest members;
//!   an audit passes for a holder that is up and keeps its chunks. Challenges, proofs
//!   and the repair of chunks after membership changes are not simulated.
//! - **wallets**: clients that gather votes into certificates with
//!   [`acre_ledger::Gathering`], deliver them to every committee elder, and pay the
//!   section's pool; nodes pull the certificates they lack from the committee, as the
//!   node's catch-up does.
//! - **faults** ([`FaultSet`]): kills and restarts, partitions, slow disks, and Byzantine
//!   elders that forge reports, vote for two conflicting orders, or stay silent.
//!
//! [`run`] returns a [`SimReport`] that checks, over every honest node: supply equals
//! genesis plus mints, at most one certificate per (account, sequence), every mint
//! itemised, one record per epoch, and equal section and ledger state hashes at the end.

mod broadcast;
mod byzantine;
mod config;
mod disk;
mod faults;
mod network;
mod node;
mod report;
mod scheduler;
mod storage;
mod wallet;
mod world;

pub use config::{FaultSet, NetworkSettings, ScriptedFault, SessionReplay, SimConfig, UnknownFault};
pub use disk::{PowerSwitch, SimStore};
pub use report::{EpochSummary, FaultCounts, NodeReport, SimReport, TrafficCounts};

/// How a simulated node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeRole {
    /// Runs the real machines unmodified.
    Honest,
    /// A Byzantine elder that runs the machines but forges its reports and votes for
    /// every order it is sent, conflicting ones included.
    Liar,
    /// A Byzantine elder that proposes, votes and signs nothing, yet stays connected.
    Silent,
}

/// Runs one simulation to its end and judges it. Never panics on a misbehaving section:
/// a run that cannot finish says why in [`SimReport::failure`].
pub fn run(config: SimConfig) -> SimReport {
    let nodes = config.nodes;
    let epochs = config.epochs;
    let seed = config.seed;
    let faults = config.faults;
    match world::Simulation::new(config) {
        Ok(mut simulation) => {
            simulation.run_to_end();
            report::report(&simulation)
        }
        Err(error) => SimReport::not_started(nodes, epochs, seed, faults, error.to_string()),
    }
}
