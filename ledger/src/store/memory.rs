//! A store in memory, for unit tests and simulations.

use std::collections::{BTreeMap, HashMap};

use super::{AppliedPage, Durability, Store, StoreError};
use crate::confidential::{HiddenAccount, IncomingCredit};
use crate::epoch::EpochRecord;
use crate::{AccountId, AccountState, Certificate, Digest, GenesisRecord, HistoryEntry, Lock, Write, WriteBatch};

/// Keeps every column in maps; commits cannot fail and `sync` has nothing to do.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    accounts: BTreeMap<AccountId, AccountState>,
    locks: HashMap<(AccountId, u64), Lock>,
    certificates: HashMap<Digest, Certificate>,
    certificate_index: HashMap<(AccountId, u64), Digest>,
    history: BTreeMap<(AccountId, u64), HistoryEntry>,
    genesis: Option<GenesisRecord>,
    epochs: BTreeMap<u64, EpochRecord>,
    applied: Vec<Digest>,
    hidden: BTreeMap<AccountId, HiddenAccount>,
    incoming: BTreeMap<(AccountId, Digest), IncomingCredit>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn commit(&mut self, batch: &WriteBatch, _durability: Durability) -> Result<(), StoreError> {
        for write in &batch.writes {
            match write {
                Write::Account(id, state) => {
                    self.accounts.insert(*id, *state);
                }
                Write::Lock(lock) => {
                    let key = (lock.order.order.from, lock.order.order.sequence);
                    self.locks.insert(key, lock.clone());
                }
                Write::Certificate(certificate) => {
                    let key = (certificate.order.from, certificate.order.sequence);
                    self.certificate_index.insert(key, certificate.id());
                    self.applied.push(certificate.id());
                    self.certificates.insert(certificate.id(), certificate.clone());
                }
                Write::History(account, entry) => {
                    self.history.insert((*account, entry.index), *entry);
                }
                Write::Genesis(record) => self.genesis = Some(record.clone()),
                Write::Epoch(record) => {
                    self.epochs.insert(record.epoch, record.clone());
                }
                Write::Hidden(id, hidden) => {
                    self.hidden.insert(*id, *hidden);
                }
                Write::Incoming(id, credit) => {
                    self.incoming.insert((*id, credit.certificate), *credit);
                }
                Write::Absorbed(id, certificate) => {
                    self.incoming.remove(&(*id, *certificate));
                }
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn accounts(&self) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        Ok(self.accounts.iter().map(|(id, state)| (*id, *state)).collect())
    }

    fn account(&self, id: &AccountId) -> Result<Option<AccountState>, StoreError> {
        Ok(self.accounts.get(id).copied())
    }

    fn lock(&self, account: &AccountId, sequence: u64) -> Result<Option<Lock>, StoreError> {
        Ok(self.locks.get(&(*account, sequence)).cloned())
    }

    fn certificate(&self, id: &Digest) -> Result<Option<Certificate>, StoreError> {
        Ok(self.certificates.get(id).cloned())
    }

    fn certificate_at(&self, account: &AccountId, sequence: u64) -> Result<Option<Digest>, StoreError> {
        Ok(self.certificate_index.get(&(*account, sequence)).copied())
    }

    fn history(&self, account: &AccountId, from: u64, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self.history.range((*account, from)..=(*account, u64::MAX)).take(limit).map(|(_, entry)| *entry).collect())
    }

    fn genesis(&self) -> Result<Option<GenesisRecord>, StoreError> {
        Ok(self.genesis.clone())
    }

    fn epochs(&self) -> Result<Vec<EpochRecord>, StoreError> {
        Ok(self.epochs.values().cloned().collect())
    }

    fn hidden_accounts(&self) -> Result<Vec<(AccountId, HiddenAccount)>, StoreError> {
        Ok(self.hidden.iter().map(|(id, hidden)| (*id, *hidden)).collect())
    }

    fn incoming_credits(&self) -> Result<Vec<(AccountId, IncomingCredit)>, StoreError> {
        Ok(self.incoming.iter().map(|((id, _), credit)| (*id, *credit)).collect())
    }

    fn applied_since(&self, position: u64, limit: usize) -> Result<AppliedPage, StoreError> {
        let start = usize::try_from(position).unwrap_or(usize::MAX).min(self.applied.len());
        let ids = self.applied[start..].iter().take(limit);
        let certificates: Vec<Certificate> = ids.filter_map(|id| self.certificates.get(id).cloned()).collect();
        Ok(AppliedPage { next: position.max(start as u64) + certificates.len() as u64, certificates })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_every_column() {
        super::super::contract::round_trips_every_column(&mut super::MemoryStore::new());
    }
}
