//! The chunks a node holds, on disk: RocksDB with BlobDB, so chunk bytes live in blob
//! files (written once, read by offset) while keys and the small outboards stay in the
//! LSM tree. One synced write stores a chunk with its outboard, so a put acknowledged is a
//! put that survives a crash, and a chunk never exists without the outboard its proofs
//! need. The store refuses new chunks once they would pass its capacity, and keeps what
//! it holds.

use std::path::Path;

use acre_proofs::challenge::{answer, ChallengeItem, Outboard};
use acre_proofs::{Chunk, ChunkAddress, ProofError};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

const CHUNKS: &str = "chunks";
const OUTBOARDS: &str = "outboards";
/// Each chunk's size (u64, little-endian), so usage is counted on open without reading
/// the chunks.
const SIZES: &str = "sizes";
/// Chunks above this go to blob files; smaller ones stay inline.
const MIN_BLOB_BYTES: u64 = 4096;

/// Why the chunk store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkStoreError {
    /// The chunk would take the store past its capacity.
    #[error("the store is full: {used} of {capacity} bytes used, {wanted} more wanted")]
    Full {
        /// Bytes held.
        used: u64,
        /// The configured capacity.
        capacity: u64,
        /// The chunk's size.
        wanted: u64,
    },
    /// RocksDB refused (I/O error, full disk, locked directory).
    #[error("chunk database: {0}")]
    Database(String),
    /// The chunk is not held here.
    #[error("chunk {0} is not held here")]
    Missing(ChunkAddress),
    /// What is held cannot prove the chunk any more.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

fn database(error: rocksdb::Error) -> ChunkStoreError {
    ChunkStoreError::Database(error.into_string())
}

/// Whether a put stored the chunk or found it already held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Newly written.
    New,
    /// Held before; nothing was written (and nothing should be charged).
    AlreadyHeld,
}

/// A node's chunks and their outboards.
pub struct ChunkStore {
    db: DB,
    capacity: u64,
    used: u64,
}

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore").field("used", &self.used).field("capacity", &self.capacity).finish()
    }
}

impl ChunkStore {
    /// Opens (or creates) the store in `path`, holding at most `capacity` bytes of chunks.
    pub fn open(path: impl AsRef<Path>, capacity: u64) -> Result<Self, ChunkStoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let mut blobs = Options::default();
        blobs.set_enable_blob_files(true);
        blobs.set_min_blob_size(MIN_BLOB_BYTES);
        blobs.set_enable_blob_gc(true);
        let columns = [
            ColumnFamilyDescriptor::new(CHUNKS, blobs),
            ColumnFamilyDescriptor::new(OUTBOARDS, Options::default()),
            ColumnFamilyDescriptor::new(SIZES, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&options, path, columns).map_err(database)?;
        let mut store = ChunkStore { db, capacity, used: 0 };
        store.used = store.sizes()?.iter().sum();
        Ok(store)
    }

    /// Bytes of chunks held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The configured capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether a chunk of `size` bytes would still fit.
    pub fn has_room_for(&self, size: u64) -> bool {
        self.used.saturating_add(size) <= self.capacity
    }

    /// Stores a chunk and its outboard with one synced write; a chunk already held is
    /// not written again.
    pub fn put(&mut self, chunk: &Chunk) -> Result<Stored, ChunkStoreError> {
        if self.contains(&chunk.address())? {
            return Ok(Stored::AlreadyHeld);
        }
        if !self.has_room_for(chunk.size()) {
            return Err(ChunkStoreError::Full { used: self.used, capacity: self.capacity, wanted: chunk.size() });
        }
        let outboard = Outboard::create(chunk);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.column(CHUNKS)?, chunk.address().0, chunk.bytes());
        batch.put_cf(self.column(OUTBOARDS)?, chunk.address().0, outboard.as_bytes());
        batch.put_cf(self.column(SIZES)?, chunk.address().0, chunk.size().to_le_bytes());
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        self.db.write_opt(batch, &synced).map_err(database)?;
        self.used += chunk.size();
        Ok(Stored::New)
    }

    /// Whether the chunk is held.
    pub fn contains(&self, address: &ChunkAddress) -> Result<bool, ChunkStoreError> {
        Ok(self.db.get_pinned_cf(self.column(OUTBOARDS)?, address.0).map_err(database)?.is_some())
    }

    /// The chunk's bytes, as stored (the reader checks them against the address).
    pub fn get(&self, address: &ChunkAddress) -> Result<Option<Vec<u8>>, ChunkStoreError> {
        self.db.get_cf(self.column(CHUNKS)?, address.0).map_err(database)
    }

    /// This holder's answer to a challenge on one of its chunks.
    pub fn answer(&self, item: &ChallengeItem) -> Result<Vec<u8>, ChunkStoreError> {
        let chunks = self.column(CHUNKS)?;
        let outboards = self.column(OUTBOARDS)?;
        let missing = || ChunkStoreError::Missing(item.address);
        let bytes = self.db.get_pinned_cf(chunks, item.address.0).map_err(database)?.ok_or_else(missing)?;
        let outboard = self.db.get_cf(outboards, item.address.0).map_err(database)?.ok_or_else(missing)?;
        Ok(answer(item, &bytes, &Outboard::from_bytes(outboard))?)
    }

    fn sizes(&self) -> Result<Vec<u64>, ChunkStoreError> {
        self.db
            .iterator_cf(self.column(SIZES)?, rocksdb::IteratorMode::Start)
            .map(|item| {
                let (_, value) = item.map_err(database)?;
                let bytes: [u8; 8] = value
                    .as_ref()
                    .try_into()
                    .map_err(|_| ChunkStoreError::Database(format!("a size record of {} bytes", value.len())))?;
                Ok(u64::from_le_bytes(bytes))
            })
            .collect()
    }

    fn column(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, ChunkStoreError> {
        self.db.cf_handle(name).ok_or_else(|| ChunkStoreError::Database(format!("column family {name} is missing")))
    }

    /// Overwrites a held chunk's bytes in place of a disk that rotted, for tests.
    #[cfg(test)]
    fn corrupt(&mut self, address: &ChunkAddress, bytes: &[u8]) -> Result<(), ChunkStoreError> {
        self.db.put_cf(self.column(CHUNKS)?, address.0, bytes).map_err(database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_proofs::challenge::verify;

    fn chunk(size: usize, seed: u8) -> Chunk {
        Chunk::new((0..size).map(|i| (i as u8).wrapping_add(seed)).collect()).expect("chunk")
    }

    #[test]
    fn chunks_survive_a_reopen_and_answer_challenges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = chunk(1 << 20, 1);
        let small = chunk(100, 2);
        {
            let mut store = ChunkStore::open(dir.path(), 10 << 20).expect("open");
            assert_eq!(store.put(&big).expect("put"), Stored::New);
            assert_eq!(store.put(&small).expect("put"), Stored::New);
            assert_eq!(store.put(&big).expect("put again"), Stored::AlreadyHeld, "stored and charged once");
            assert_eq!(store.used(), (1 << 20) + 100);
        }
        let store = ChunkStore::open(dir.path(), 10 << 20).expect("reopen");
        assert_eq!(store.used(), (1 << 20) + 100, "usage is recounted from disk");
        assert_eq!(store.get(&big.address()).expect("get").as_deref(), Some(big.bytes()));
        let item = ChallengeItem::draw(&[5; 32], 1, big.address(), big.size(), 3);
        let proof = store.answer(&item).expect("answer");
        verify(&item, big.size(), &proof).expect("verifies");
        let absent = ChallengeItem::draw(&[5; 32], 1, chunk(10, 9).address(), 10, 1);
        assert!(matches!(store.answer(&absent), Err(ChunkStoreError::Missing(_))));
    }

    #[test]
    fn a_full_store_refuses_new_chunks_and_keeps_the_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = ChunkStore::open(dir.path(), 150_000).expect("open");
        let first = chunk(100_000, 1);
        store.put(&first).expect("fits");
        assert!(matches!(store.put(&chunk(60_000, 2)), Err(ChunkStoreError::Full { used: 100_000, .. })));
        assert_eq!(store.put(&first).expect("a held chunk is no new use"), Stored::AlreadyHeld);
        store.put(&chunk(50_000, 3)).expect("exactly fits");
        assert!(!store.has_room_for(1));
        assert_eq!(store.get(&first.address()).expect("get").as_deref(), Some(first.bytes()));
    }

    #[test]
    fn a_rotten_copy_cannot_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = ChunkStore::open(dir.path(), 10 << 20).expect("open");
        let held = chunk(40_000, 4);
        store.put(&held).expect("put");
        let mut rotten = held.bytes().to_vec();
        rotten[20_000] ^= 1;
        store.corrupt(&held.address(), &rotten).expect("corrupt");
        let item = ChallengeItem { address: held.address(), blocks: vec![19] };
        assert!(matches!(store.answer(&item), Err(ChunkStoreError::Proof(ProofError::Damaged(_)))));
    }
}
