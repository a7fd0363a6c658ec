//! The store on disk: RocksDB with one column family per kind of record.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{account_key, AppliedPage, Durability, Store, StoreError};
use crate::confidential::{HiddenAccount, IncomingCredit};
use crate::epoch::EpochRecord;
use crate::{AccountId, AccountState, Certificate, Digest, GenesisRecord, HistoryEntry, Lock, Write, WriteBatch};

const ACCOUNTS: &str = "accounts";
const LOCKS: &str = "locks";
const CERTIFICATES: &str = "certificates";
const CERTIFICATE_INDEX: &str = "certificate_index";
const HISTORY: &str = "history";
const META: &str = "meta";
/// Certificate ids by the position (big-endian u64) at which this store applied them.
const APPLIED: &str = "applied";
/// Spendable commitments by account.
const HIDDEN: &str = "hidden";
/// Incoming credits by account, then certificate id.
const INCOMING: &str = "incoming";
const COLUMNS: [&str; 9] = [ACCOUNTS, LOCKS, CERTIFICATES, CERTIFICATE_INDEX, HISTORY, META, APPLIED, HIDDEN, INCOMING];
const GENESIS_KEY: &[u8] = b"genesis";
/// Epoch records sit in `meta` under this prefix and the big-endian epoch.
const EPOCH_PREFIX: &[u8] = b"epoch:";

/// A ledger in a RocksDB directory. Every commit is one `WriteBatch` through the WAL, so a
/// crash leaves each message's writes all there or all gone, in the order they were made.
pub struct RocksStore {
    db: DB,
    /// The position the next applied certificate takes.
    next_applied: u64,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("path", &self.db.path()).finish()
    }
}

fn database(error: rocksdb::Error) -> StoreError {
    StoreError::Database(error.into_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value).map_err(|error| StoreError::Database(format!("encode: {error}")))
}

fn decode<T: DeserializeOwned>(column: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|error| StoreError::Corrupt { column, reason: error.to_string() })
}

impl RocksStore {
    /// Opens (or creates) the ledger in `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_background_jobs(2);
        let columns = COLUMNS.map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, columns).map_err(database)?;
        let mut store = RocksStore { db, next_applied: 0 };
        store.next_applied = match store.db.iterator_cf(store.column(APPLIED)?, IteratorMode::End).next() {
            Some(item) => position(&item.map_err(database)?.0)? + 1,
            None => 0,
        };
        Ok(store)
    }

    fn get<T: DeserializeOwned>(&self, column: &'static str, key: &[u8]) -> Result<Option<T>, StoreError> {
        let handle = self.column(column)?;
        match self.db.get_pinned_cf(handle, key).map_err(database)? {
            Some(bytes) => decode(column, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every value of a column whose keys are `key_len` bytes starting with an account.
    fn by_account<T: DeserializeOwned>(
        &self,
        column: &'static str,
        key_len: usize,
    ) -> Result<Vec<(AccountId, T)>, StoreError> {
        self.db
            .iterator_cf(self.column(column)?, IteratorMode::Start)
            .map(|item| {
                let (key, value) = item.map_err(database)?;
                let id: Option<[u8; 32]> = key.get(..32).and_then(|id| id.try_into().ok());
                match id {
                    Some(id) if key.len() == key_len => Ok((AccountId(id), decode(column, &value)?)),
                    _ => Err(StoreError::Corrupt { column, reason: format!("key of {} bytes", key.len()) }),
                }
            })
            .collect()
    }

    fn column(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Database(format!("column family {name} is missing")))
    }

    /// Adds one message's writes to a RocksDB batch; `applied` is the next free position,
    /// advanced past each certificate, and kept only if the batch is written.
    fn append(&self, rocks: &mut rocksdb::WriteBatch, batch: &WriteBatch, applied: &mut u64) -> Result<(), StoreError> {
        for write in &batch.writes {
            match write {
                Write::Account(id, state) => rocks.put_cf(self.column(ACCOUNTS)?, id.0, encode(state)?),
                Write::Lock(lock) => {
                    let key = account_key(&lock.order.order.from, lock.order.order.sequence);
                    rocks.put_cf(self.column(LOCKS)?, key, encode(lock)?);
                }
                Write::Certificate(certificate) => {
                    let id = certificate.id();
                    let key = account_key(&certificate.order.from, certificate.order.sequence);
                    rocks.put_cf(self.column(CERTIFICATE_INDEX)?, key, id.0);
                    rocks.put_cf(self.column(CERTIFICATES)?, id.0, encode(certificate)?);
                    rocks.put_cf(self.column(APPLIED)?, applied.to_be_bytes(), id.0);
                    *applied += 1;
                }
                Write::History(account, entry) => {
                    rocks.put_cf(self.column(HISTORY)?, account_key(account, entry.index), encode(entry)?);
                }
                Write::Genesis(record) => rocks.put_cf(self.column(META)?, GENESIS_KEY, encode(record)?),
                Write::Epoch(record) => {
                    let key = [EPOCH_PREFIX, &record.epoch.to_be_bytes()].concat();
                    rocks.put_cf(self.column(META)?, key, encode(record)?);
                }
                Write::Hidden(id, hidden) => rocks.put_cf(self.column(HIDDEN)?, id.0, encode(hidden)?),
                Write::Incoming(id, credit) => {
                    let key = [id.0, credit.certificate.0].concat();
                    rocks.put_cf(self.column(INCOMING)?, key, encode(credit)?);
                }
                Write::Absorbed(id, certificate) => {
                    rocks.delete_cf(self.column(INCOMING)?, [id.0, certificate.0].concat());
                }
            }
        }
        Ok(())
    }
}

impl Store for RocksStore {
    fn commit(&mut self, batch: &WriteBatch, durability: Durability) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut rocks = rocksdb::WriteBatch::default();
        let mut applied = self.next_applied;
        self.append(&mut rocks, batch, &mut applied)?;
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        self.db.write_opt(rocks, &options).map_err(database)?;
        self.next_applied = applied;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(database)
    }

    /// The group's batches go to RocksDB as one synced write: one WAL record and one
    /// fsync for the whole group, each message still atomic (the group is, too).
    fn commit_group(&mut self, batches: &[WriteBatch]) -> Result<(), StoreError> {
        let mut group = rocksdb::WriteBatch::default();
        let mut applied = self.next_applied;
        for batch in batches {
            self.append(&mut group, batch, &mut applied)?;
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        if group.is_empty() {
            return self.sync();
        }
        self.db.write_opt(group, &options).map_err(database)?;
        self.next_applied = applied;
        Ok(())
    }

    fn accounts(&self) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        self.by_account(ACCOUNTS, 32)
    }

    fn hidden_accounts(&self) -> Result<Vec<(AccountId, HiddenAccount)>, StoreError> {
        self.by_account(HIDDEN, 32)
    }

    fn incoming_credits(&self) -> Result<Vec<(AccountId, IncomingCredit)>, StoreError> {
        self.by_account(INCOMING, 64)
    }

    fn account(&self, id: &AccountId) -> Result<Option<AccountState>, StoreError> {
        self.get(ACCOUNTS, &id.0)
    }

    fn lock(&self, account: &AccountId, sequence: u64) -> Result<Option<Lock>, StoreError> {
        self.get(LOCKS, &account_key(account, sequence))
    }

    fn certificate(&self, id: &Digest) -> Result<Option<Certificate>, StoreError> {
        self.get(CERTIFICATES, &id.0)
    }

    fn certificate_at(&self, account: &AccountId, sequence: u64) -> Result<Option<Digest>, StoreError> {
        let handle = self.column(CERTIFICATE_INDEX)?;
        let Some(bytes) = self.db.get_pinned_cf(handle, account_key(account, sequence)).map_err(database)? else {
            return Ok(None);
        };
        let id: [u8; 32] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            column: CERTIFICATE_INDEX,
            reason: format!("value of {} bytes", bytes.len()),
        })?;
        Ok(Some(Digest(id)))
    }

    fn history(&self, account: &AccountId, from: u64, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let start = account_key(account, from);
        self.db
            .iterator_cf(self.column(HISTORY)?, IteratorMode::From(&start, Direction::Forward))
            .take_while(|item| item.as_ref().map_or(true, |(key, _)| key.starts_with(&account.0)))
            .take(limit)
            .map(|item| decode(HISTORY, &item.map_err(database)?.1))
            .collect()
    }

    fn genesis(&self) -> Result<Option<GenesisRecord>, StoreError> {
        self.get(META, GENESIS_KEY)
    }

    fn epochs(&self) -> Result<Vec<EpochRecord>, StoreError> {
        self.db
            .iterator_cf(self.column(META)?, IteratorMode::From(EPOCH_PREFIX, Direction::Forward))
            .take_while(|item| item.as_ref().map_or(true, |(key, _)| key.starts_with(EPOCH_PREFIX)))
            .map(|item| decode(META, &item.map_err(database)?.1))
            .collect()
    }

    fn applied_since(&self, from: u64, limit: usize) -> Result<AppliedPage, StoreError> {
        let start = from.to_be_bytes();
        let mut page = AppliedPage { certificates: Vec::new(), next: from };
        for item in
            self.db.iterator_cf(self.column(APPLIED)?, IteratorMode::From(&start, Direction::Forward)).take(limit)
        {
            let (key, value) = item.map_err(database)?;
            let id: [u8; 32] = value.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                column: APPLIED,
                reason: format!("value of {} bytes", value.len()),
            })?;
            let certificate = self.certificate(&Digest(id))?.ok_or_else(|| StoreError::Corrupt {
                column: APPLIED,
                reason: format!("certificate {} is missing", Digest(id)),
            })?;
            page.certificates.push(certificate);
            page.next = position(&key)? + 1;
        }
        Ok(page)
    }
}

/// Decodes a key of the applied column.
fn position(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt { column: APPLIED, reason: format!("key of {} bytes", key.len()) })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_column_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = RocksStore::open(dir.path()).expect("open");
        super::super::contract::round_trips_every_column(&mut store);
        let before = store.accounts().expect("accounts");
        drop(store);
        let store = RocksStore::open(dir.path()).expect("reopen");
        assert_eq!(store.accounts().expect("accounts"), before);
        assert_eq!(store.next_applied, 2, "positions continue after a reopen");
        assert!(store.genesis().expect("genesis").is_some());
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = RocksStore::open(dir.path()).expect("open");
        assert!(matches!(RocksStore::open(dir.path()), Err(StoreError::Database(_))));
    }
}
