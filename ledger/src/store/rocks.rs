//! The store on disk: RocksDB with one column family per kind of record.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{account_key, Durability, Store, StoreError};
use crate::{AccountId, AccountState, Certificate, Digest, GenesisRecord, HistoryEntry, Lock, Write, WriteBatch};

const ACCOUNTS: &str = "accounts";
const LOCKS: &str = "locks";
const CERTIFICATES: &str = "certificates";
const CERTIFICATE_INDEX: &str = "certificate_index";
const HISTORY: &str = "history";
const META: &str = "meta";
const COLUMNS: [&str; 6] = [ACCOUNTS, LOCKS, CERTIFICATES, CERTIFICATE_INDEX, HISTORY, META];
const GENESIS_KEY: &[u8] = b"genesis";

/// A ledger in a RocksDB directory. Every commit is one `WriteBatch` through the WAL, so a
/// crash leaves each message's writes all there or all gone, in the order they were made.
pub struct RocksStore {
    db: DB,
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
        Ok(RocksStore { db })
    }

    fn get<T: DeserializeOwned>(&self, column: &'static str, key: &[u8]) -> Result<Option<T>, StoreError> {
        let handle = self.column(column)?;
        match self.db.get_pinned_cf(handle, key).map_err(database)? {
            Some(bytes) => decode(column, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn column(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Database(format!("column family {name} is missing")))
    }

    /// Adds one message's writes to a RocksDB batch.
    fn append(&self, rocks: &mut rocksdb::WriteBatch, batch: &WriteBatch) -> Result<(), StoreError> {
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
                }
                Write::History(account, entry) => {
                    rocks.put_cf(self.column(HISTORY)?, account_key(account, entry.index), encode(entry)?);
                }
                Write::Genesis(record) => rocks.put_cf(self.column(META)?, GENESIS_KEY, encode(record)?),
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
        self.append(&mut rocks, batch)?;
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        self.db.write_opt(rocks, &options).map_err(database)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(database)
    }

    /// The group's batches go to RocksDB as one synced write: one WAL record and one
    /// fsync for the whole group, each message still atomic (the group is, too).
    fn commit_group(&mut self, batches: &[WriteBatch]) -> Result<(), StoreError> {
        let mut group = rocksdb::WriteBatch::default();
        for batch in batches {
            self.append(&mut group, batch)?;
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        if group.is_empty() {
            return self.sync();
        }
        self.db.write_opt(group, &options).map_err(database)
    }

    fn accounts(&self) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
        self.db
            .iterator_cf(self.column(ACCOUNTS)?, IteratorMode::Start)
            .map(|item| {
                let (key, value) = item.map_err(database)?;
                let id: [u8; 32] = key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    column: ACCOUNTS,
                    reason: format!("key of {} bytes", key.len()),
                })?;
                Ok((AccountId(id), decode(ACCOUNTS, &value)?))
            })
            .collect()
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
        assert!(store.genesis().expect("genesis").is_some());
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = RocksStore::open(dir.path()).expect("open");
        assert!(matches!(RocksStore::open(dir.path()), Err(StoreError::Database(_))));
    }
}
