//! Simulated disks. A node's ledger lives in a [`SimStore`], which knows what a power cut
//! keeps: every commit is visible at once, but only synced commits are on the platter. A
//! crash throws the unsynced rest away, exactly the writes a real crash may lose. The
//! section machine's files (closed epochs' outcomes, the state, the meter's totals, the
//! ledger catch-up positions) are written synced and atomically, so they survive every
//! crash whole.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use acre_core::{EpochOutcome, LogItem};
use acre_ledger::confidential::{HiddenAccount, IncomingCredit};
use acre_ledger::epoch::EpochRecord;
use acre_ledger::section_state::SectionState;
use acre_ledger::store::{AppliedPage, Durability, MemoryStore, Store, StoreError};
use acre_ledger::{
    AccountId, AccountState, AppId, Certificate, Digest, GenesisRecord, HistoryEntry, Lock, SignatureBytes, WriteBatch,
};

/// A ledger store on a simulated disk: reads see every commit; a crash keeps only what
/// was synced ([`SimStore::crash`]). Its [`PowerSwitch`] can make the next sync fail as a
/// power cut would: the moment between a group's writes and its fsync.
#[derive(Debug, Clone, Default)]
pub struct SimStore {
    visible: MemoryStore,
    durable: MemoryStore,
    unsynced: Vec<WriteBatch>,
    power: PowerSwitch,
}

/// The power of one simulated disk, shared between its store and the simulator: the
/// ledger owns its store, so the simulator cuts the power through this handle.
#[derive(Debug, Clone, Default)]
pub struct PowerSwitch(Arc<AtomicU8>);

/// The power is on.
const POWER_ON: u8 = 0;
/// The next sync fails, and every one after it, until the crash.
const CUT_AT_NEXT_SYNC: u8 = 1;
/// The power went: the node must crash now.
const POWER_CUT: u8 = 2;

impl PowerSwitch {
    /// Makes the disk's next sync fail as a power cut; the simulator then crashes the node.
    pub fn arm(&self) {
        self.0.store(CUT_AT_NEXT_SYNC, Ordering::Relaxed);
    }

    /// Takes an armed cut back before it hit.
    pub fn disarm(&self) {
        let _ = self.0.compare_exchange(CUT_AT_NEXT_SYNC, POWER_ON, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether an armed cut hit a sync.
    pub fn was_cut(&self) -> bool {
        self.0.load(Ordering::Relaxed) == POWER_CUT
    }

    /// Whether a cut is armed and has not hit yet.
    pub fn is_armed(&self) -> bool {
        self.0.load(Ordering::Relaxed) == CUT_AT_NEXT_SYNC
    }

    fn state(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Relaxed);
    }
}

impl SimStore {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the disk holds after a crash: only what was synced. The power is back on.
    pub fn crash(&mut self) {
        self.visible = self.durable.clone();
        self.unsynced.clear();
        self.power.set(POWER_ON);
    }

    /// The disk's power switch.
    pub fn power_switch(&self) -> PowerSwitch {
        self.power.clone()
    }

    /// Commits visible but not yet synced: what a crash now would lose.
    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }
}

impl Store for SimStore {
    fn commit(&mut self, batch: &WriteBatch, durability: Durability) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.visible.commit(batch, durability)?;
        self.unsynced.push(batch.clone());
        match durability {
            Durability::Synced => self.sync(),
            Durability::Buffered => Ok(()),
        }
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.power.state() != POWER_ON {
            self.power.set(POWER_CUT);
            return Err(StoreError::Database("the power went before the sync".into()));
        }
        for batch in self.unsynced.drain(..) {
            self.durable.commit(&batch, Durability::Synced)?;
        }
        Ok(())
    }

    fn accounts(&self) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        self.visible.accounts()
    }

    fn account(&self, id: &AccountId) -> Result<Option<AccountState>, StoreError> {
        self.visible.account(id)
    }

    fn lock(&self, account: &AccountId, sequence: u64) -> Result<Option<Lock>, StoreError> {
        self.visible.lock(account, sequence)
    }

    fn certificate(&self, id: &Digest) -> Result<Option<Certificate>, StoreError> {
        self.visible.certificate(id)
    }

    fn certificate_at(&self, account: &AccountId, sequence: u64) -> Result<Option<Digest>, StoreError> {
        self.visible.certificate_at(account, sequence)
    }

    fn history(&self, account: &AccountId, from: u64, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        self.visible.history(account, from, limit)
    }

    fn genesis(&self) -> Result<Option<GenesisRecord>, StoreError> {
        self.visible.genesis()
    }

    fn epochs(&self) -> Result<Vec<EpochRecord>, StoreError> {
        self.visible.epochs()
    }

    fn hidden_accounts(&self) -> Result<Vec<(AccountId, HiddenAccount)>, StoreError> {
        self.visible.hidden_accounts()
    }

    fn incoming_credits(&self) -> Result<Vec<(AccountId, IncomingCredit)>, StoreError> {
        self.visible.incoming_credits()
    }

    fn applied_since(&self, position: u64, limit: usize) -> Result<AppliedPage, StoreError> {
        self.visible.applied_since(position, limit)
    }
}

/// An epoch's agreed items, shared by every node that kept the same ones: in one
/// process, N copies of the same log would be N times the memory for nothing.
pub(crate) type SharedLog = Arc<Vec<(usize, LogItem)>>;

/// A closed epoch's outcome as a node keeps it on disk: everything but the log, which
/// lives on the shelf.
#[derive(Debug, Clone)]
pub(crate) struct KeptOutcome {
    /// The outcome with an empty log.
    pub(crate) head: EpochOutcome,
    /// The session's items up to the close.
    pub(crate) log: SharedLog,
}

impl KeptOutcome {
    /// The outcome as the machine and its peers see it.
    pub(crate) fn outcome(&self) -> EpochOutcome {
        EpochOutcome { log: self.log.as_ref().clone(), ..self.head.clone() }
    }

    /// Its record.
    pub(crate) fn record(&self) -> &EpochRecord {
        &self.head.record
    }
}

/// Logs kept by any node, by epoch, so equal ones are stored once.
#[derive(Debug, Default)]
pub(crate) struct LogShelf {
    by_epoch: BTreeMap<u64, Vec<SharedLog>>,
}

impl LogShelf {
    /// The shared copy of `log`, for `epoch`.
    pub(crate) fn share(&mut self, epoch: u64, log: Vec<(usize, LogItem)>) -> SharedLog {
        let kept = self.by_epoch.entry(epoch).or_default();
        if let Some(shared) = kept.iter().find(|shared| shared.as_slice() == log.as_slice()) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(log);
        kept.push(Arc::clone(&shared));
        shared
    }
}

/// The section machine's files on one node's disk: each write is synced and atomic (the
/// node writes aside, syncs and renames), so a crash never loses or tears one.
#[derive(Debug, Clone, Default)]
pub(crate) struct SectionFiles {
    /// Every closed epoch's outcome, with the signatures gathered since.
    pub(crate) outcomes: BTreeMap<u64, KeptOutcome>,
    /// The state that opens the next epoch, as of the last close.
    pub(crate) state: Option<SectionState>,
    /// The app-use meter's totals at the last close.
    pub(crate) usage: BTreeMap<AppId, u64>,
    /// How far this node has pulled each committee elder's applied certificates.
    pub(crate) catch_up: BTreeMap<usize, u64>,
}

impl SectionFiles {
    /// `Effect::Persist`: the outcome, then the state it leaves and the meter.
    pub(crate) fn persist(
        &mut self,
        outcome: EpochOutcome,
        state: SectionState,
        usage: BTreeMap<AppId, u64>,
        shelf: &mut LogShelf,
    ) {
        let epoch = outcome.record.epoch;
        let mut head = outcome;
        let log = shelf.share(epoch, std::mem::take(&mut head.log));
        self.outcomes.insert(epoch, KeptOutcome { head, log });
        self.state = Some(state);
        self.usage = usage;
    }

    /// `Effect::AddSignature`: a checked signature joins the kept outcome.
    pub(crate) fn add_signature(&mut self, epoch: u64, signer: AccountId, signature: SignatureBytes) {
        if let Some(outcome) = self.outcomes.get_mut(&epoch) {
            outcome.head.signatures.insert(signer, signature);
        }
    }

    /// The last `count` outcomes, oldest first, for a restarted machine's late signatures.
    pub(crate) fn recent(&self, count: usize) -> Vec<EpochOutcome> {
        let mut recent: Vec<EpochOutcome> =
            self.outcomes.values().rev().take(count).map(KeptOutcome::outcome).collect();
        recent.reverse();
        recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::{Allocation, Amount, Committee, DurableElder};
    use ed25519_dalek::SigningKey;

    fn elder_on(store: SimStore) -> DurableElder<SimStore> {
        let key = SigningKey::from_bytes(&[1; 32]);
        let committee = Committee::new([AccountId::of(&key)]).expect("committee");
        DurableElder::open(committee, key, store).expect("open")
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_loses_the_rest() {
        let alice = AccountId::of(&SigningKey::from_bytes(&[2; 32]));
        let mut elder = elder_on(SimStore::new());
        let funds = Amount::from_nanos(100).expect("amount");
        elder.genesis(vec![Allocation { account: alice, amount: funds }]).expect("genesis");
        let mut store = elder.into_store();
        let before = store.accounts().expect("read");

        let unsynced = WriteBatch {
            writes: vec![acre_ledger::Write::Account(
                alice,
                AccountState { balance: Amount::ZERO, ..Default::default() },
            )],
        };
        store.commit(&unsynced, Durability::Buffered).expect("commit");
        assert_eq!(store.unsynced(), 1);
        assert_ne!(store.accounts().expect("read"), before, "visible before the sync");
        store.crash();
        assert_eq!(store.accounts().expect("read"), before, "gone after the crash");

        let power = store.power_switch();
        power.arm();
        assert!(store.commit(&unsynced, Durability::Synced).is_err(), "the sync never happened");
        assert!(power.was_cut());
        store.crash();
        assert_eq!(store.accounts().expect("read"), before);
        assert!(!power.was_cut(), "the power is back after the restart");
    }
}
