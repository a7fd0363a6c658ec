//! The chunks a node holds, on disk as content-addressed files: `chunks/ab/abcd…` holds a
//! chunk's bytes and `chunks/ab/abcd….obao` the outboard its proofs need. A put writes
//! the outboard, then the chunk, each to a temporary file that is synced and renamed into
//! place, then syncs the directory — so a put acknowledged survives a crash, and a chunk
//! never exists without its outboard. The store refuses new chunks once they would pass
//! its capacity, or leave the disk with less than [`DISK_RESERVE`] free, and keeps what it
//! holds. `specs/storage.md` says why files rather than a database.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use acre_proofs::challenge::{answer, ChallengeItem, Outboard};
use acre_proofs::{Chunk, ChunkAddress, ProofError};

/// Disk space a node leaves free whatever its capacity says, so the ledger and the
/// operating system never meet a full disk because of chunks.
pub const DISK_RESERVE: u64 = 64 << 20;
const OUTBOARD_SUFFIX: &str = "obao";
const TEMPORARY_DIR: &str = "incoming";
/// Counts writes, to name their temporary files apart.
static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Why the chunk store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkStoreError {
    /// The chunk would take the store past its capacity or the disk past its reserve.
    #[error("the store is full: {used} of {capacity} bytes used, {wanted} more wanted")]
    Full {
        /// Bytes held.
        used: u64,
        /// The capacity, or less if the disk has less room.
        capacity: u64,
        /// The chunk's size.
        wanted: u64,
    },
    /// The disk refused (I/O error, permissions, no space).
    #[error("chunk files: {0}")]
    Disk(#[from] std::io::Error),
    /// The chunk is not held here.
    #[error("chunk {0} is not held here")]
    Missing(ChunkAddress),
    /// What is held cannot prove the chunk any more.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// Whether a put stored the chunk or found it already held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Newly written.
    New,
    /// Held before; nothing was written (and nothing should be charged).
    AlreadyHeld,
    /// Held before, but the bytes on disk no longer were the chunk (they rotted, or were
    /// changed): the good copy replaced them.
    Replaced,
}

/// A node's chunks and their outboards. Shared between threads: puts reserve their room
/// under a lock, then write without it.
#[derive(Debug)]
pub struct ChunkStore {
    root: PathBuf,
    capacity: u64,
    /// Bytes of chunks held or being written.
    used: Mutex<u64>,
    /// One lock per shard: puts share it, a removal takes it alone, so a put of a chunk
    /// never interleaves with its removal (which could leave the chunk without its
    /// outboard, or its room counted twice or not at all).
    shards: Vec<RwLock<()>>,
}

impl ChunkStore {
    /// Opens (or creates) the store in `root`, holding at most `capacity` bytes of chunks;
    /// counts what is already there.
    pub fn open(root: impl AsRef<Path>, capacity: u64) -> Result<Self, ChunkStoreError> {
        let root = root.as_ref().to_owned();
        let incoming = root.join(TEMPORARY_DIR);
        // Writes cut short by a crash are never renamed into place; drop them.
        if incoming.exists() {
            fs::remove_dir_all(&incoming)?;
        }
        fs::create_dir_all(&incoming)?;
        // Every shard up front, made durable once: a put into a shard made on the way
        // would pay a directory creation and a sync of the root besides its own syncs.
        for shard in 0..=u8::MAX {
            fs::create_dir_all(root.join(format!("{shard:02x}")))?;
        }
        File::open(&root)?.sync_all()?;
        let shards = (0..=u8::MAX).map(|_| RwLock::new(())).collect();
        let store = ChunkStore { root, capacity, used: Mutex::new(0), shards };
        let used = store.held()?.iter().map(|(_, size)| size).sum();
        *store.lock_used() = used;
        Ok(store)
    }

    /// Bytes of chunks held.
    pub fn used(&self) -> u64 {
        *self.lock_used()
    }

    /// The configured capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether a chunk of `size` bytes would still fit under the capacity.
    pub fn has_room_for(&self, size: u64) -> bool {
        self.used().saturating_add(size) <= self.capacity
    }

    /// Every chunk held, with its size.
    pub fn held(&self) -> Result<Vec<(ChunkAddress, u64)>, ChunkStoreError> {
        let mut held = Vec::new();
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            if shard.file_name() == TEMPORARY_DIR || !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                let name = entry.file_name();
                if let Some(address) = name.to_str().and_then(|name| name.parse::<ChunkAddress>().ok()) {
                    held.push((address, entry.metadata()?.len()));
                }
            }
        }
        Ok(held)
    }

    /// Stores a chunk and its outboard durably; a chunk already held is not written
    /// again, unless the held bytes are no longer the chunk: then this good copy replaces
    /// them (how a copy that failed its audit with wrong bytes is repaired).
    pub fn put(&self, chunk: &Chunk) -> Result<Stored, ChunkStoreError> {
        let address = chunk.address();
        let _shard = self.shard(&address).read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.contains(&address) {
            if self.holds_intact(&address)? {
                return Ok(Stored::AlreadyHeld);
            }
            // The room was reserved when the chunk first came; the copy takes its place.
            return self.write(chunk).map(|()| Stored::Replaced);
        }
        self.reserve(chunk.size())?;
        if self.contains(&address) {
            // Another put of the same chunk finished meanwhile.
            self.release(chunk.size());
            return Ok(Stored::AlreadyHeld);
        }
        let written = self.write(chunk);
        if written.is_err() {
            self.release(chunk.size());
        }
        written.map(|()| Stored::New)
    }

    /// Whether the held bytes are still the chunk `address` names, with its outboard.
    pub fn holds_intact(&self, address: &ChunkAddress) -> Result<bool, ChunkStoreError> {
        let intact =
            self.get(address)?.and_then(|bytes| Chunk::new(bytes).ok()).is_some_and(|c| c.address() == *address);
        Ok(intact && self.outboard_path(address).is_file())
    }

    fn shard(&self, address: &ChunkAddress) -> &RwLock<()> {
        &self.shards[usize::from(address.0[0])]
    }

    /// Whether the chunk is held.
    pub fn contains(&self, address: &ChunkAddress) -> bool {
        self.chunk_path(address).is_file()
    }

    /// Deletes the copy of `address` and its outboard, durably, and frees its room;
    /// whether one was held. The chunk goes first, so no chunk is ever left without its
    /// outboard (an outboard left alone by a crash between the two proves nothing and is
    /// never listed).
    pub fn remove(&self, address: &ChunkAddress) -> Result<bool, ChunkStoreError> {
        let _shard = self.shard(address).write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(size) = self.size_of(address) else { return Ok(false) };
        let path = self.chunk_path(address);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        self.release(size);
        match fs::remove_file(self.outboard_path(address)) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        if let Some(shard) = path.parent() {
            File::open(shard)?.sync_all()?;
        }
        Ok(true)
    }

    /// The chunk's bytes, as stored (the reader checks them against the address).
    pub fn get(&self, address: &ChunkAddress) -> Result<Option<Vec<u8>>, ChunkStoreError> {
        match fs::read(self.chunk_path(address)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The size of the held copy of `address`, if one is held.
    pub fn size_of(&self, address: &ChunkAddress) -> Option<u64> {
        fs::metadata(self.chunk_path(address)).ok().filter(fs::Metadata::is_file).map(|meta| meta.len())
    }

    /// This holder's answer to a challenge on one of its chunks, reading only the
    /// challenged groups of the chunk's file.
    pub fn answer(&self, item: &ChallengeItem) -> Result<Vec<u8>, ChunkStoreError> {
        let missing = |error: std::io::Error| match error.kind() {
            ErrorKind::NotFound => ChunkStoreError::Missing(item.address),
            _ => ChunkStoreError::Disk(error),
        };
        let file = File::open(self.chunk_path(&item.address)).map_err(missing)?;
        let size = file.metadata()?.len();
        let outboard = fs::read(self.outboard_path(&item.address)).map_err(missing)?;
        Ok(answer(item, size, &file, &Outboard::from_bytes(outboard))?)
    }

    fn reserve(&self, size: u64) -> Result<(), ChunkStoreError> {
        let mut used = self.lock_used();
        let capacity = self.capacity.min(used.saturating_add(free_disk(&self.root)?.saturating_sub(DISK_RESERVE)));
        if used.saturating_add(size) > capacity {
            return Err(ChunkStoreError::Full { used: *used, capacity, wanted: size });
        }
        *used += size;
        Ok(())
    }

    fn release(&self, size: u64) {
        let mut used = self.lock_used();
        *used = used.saturating_sub(size);
    }

    fn write(&self, chunk: &Chunk) -> Result<(), ChunkStoreError> {
        let address = chunk.address();
        let shard = self.chunk_path(&address).parent().map(Path::to_owned).unwrap_or_else(|| self.root.clone());
        if !shard.is_dir() {
            fs::create_dir_all(&shard)?;
            File::open(&self.root)?.sync_all()?;
        }
        self.write_file(&self.outboard_path(&address), Outboard::create(chunk).as_bytes())?;
        self.write_file(&self.chunk_path(&address), chunk.bytes())?;
        File::open(&shard)?.sync_all()?;
        Ok(())
    }

    /// Writes `bytes` to a synced temporary file and renames it to `path`.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), ChunkStoreError> {
        let name = path.file_name().ok_or_else(|| std::io::Error::other("a chunk path without a name"))?;
        // Unique per write, so two puts of one chunk never write one temporary file.
        let unique = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut temporary_name = name.to_owned();
        temporary_name.push(format!(".{}.{unique}", std::process::id()));
        let temporary = self.root.join(TEMPORARY_DIR).join(temporary_name);
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        Ok(())
    }

    fn chunk_path(&self, address: &ChunkAddress) -> PathBuf {
        let name = address.to_string();
        self.root.join(&name[..2]).join(name)
    }

    fn outboard_path(&self, address: &ChunkAddress) -> PathBuf {
        self.chunk_path(address).with_extension(OUTBOARD_SUFFIX)
    }

    fn lock_used(&self) -> std::sync::MutexGuard<'_, u64> {
        // The counter stays consistent even if a holder of the lock panicked.
        crate::lock(&self.used)
    }
}

/// Bytes free to an unprivileged user on the file system holding `path`.
fn free_disk(path: &Path) -> Result<u64, ChunkStoreError> {
    let stats = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(stats.blocks_available().saturating_mul(stats.fragment_size()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_proofs::challenge::verify;

    fn chunk(size: usize, seed: u8) -> Chunk {
        Chunk::new((0..size).map(|i| (i as u8).wrapping_add(seed)).collect()).expect("chunk")
    }

    #[test]
    fn every_shard_exists_from_the_start_so_a_put_creates_no_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::open(dir.path(), u64::MAX).expect("open");
        let shards = fs::read_dir(dir.path()).expect("list").filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()));
        assert_eq!(shards.count(), 256 + 1, "256 shards and the incoming directory");
        assert!(store.held().expect("held").is_empty(), "empty shards hold nothing");
        let piece = chunk(4096, 3);
        store.put(&piece).expect("put");
        assert_eq!(store.held().expect("held"), vec![(piece.address(), 4096)]);
    }

    #[test]
    fn chunks_survive_a_reopen_and_answer_challenges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = chunk(1 << 20, 1);
        let small = chunk(100, 2);
        {
            let store = ChunkStore::open(dir.path(), 10 << 20).expect("open");
            assert_eq!(store.put(&big).expect("put"), Stored::New);
            assert_eq!(store.put(&small).expect("put"), Stored::New);
            assert_eq!(store.put(&big).expect("put again"), Stored::AlreadyHeld, "stored and charged once");
            assert_eq!(store.used(), (1 << 20) + 100);
        }
        let store = ChunkStore::open(dir.path(), 10 << 20).expect("reopen");
        assert_eq!(store.used(), (1 << 20) + 100, "usage is recounted from disk");
        let mut held = store.held().expect("held");
        held.sort();
        let mut expected = vec![(big.address(), big.size()), (small.address(), small.size())];
        expected.sort();
        assert_eq!(held, expected);
        assert_eq!(store.get(&big.address()).expect("get").as_deref(), Some(big.bytes()));
        let item = ChallengeItem::draw(&[5; 32], 1, big.address(), big.size(), 3);
        let proof = store.answer(&item).expect("answer");
        verify(&item, big.size(), &proof).expect("verifies");
        let absent = ChallengeItem::draw(&[5; 32], 1, chunk(10, 9).address(), 10, 1);
        assert!(matches!(store.answer(&absent), Err(ChunkStoreError::Missing(_))));
    }

    #[test]
    fn a_removed_copy_frees_its_room_and_is_gone_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::open(dir.path(), 150_000).expect("open");
        let (kept, removed) = (chunk(60_000, 1), chunk(80_000, 2));
        store.put(&kept).expect("put");
        store.put(&removed).expect("put");
        assert!(store.remove(&removed.address()).expect("remove"));
        assert!(!store.remove(&removed.address()).expect("again"), "nothing left to remove");
        assert_eq!(store.used(), 60_000);
        assert!(!store.outboard_path(&removed.address()).exists(), "its outboard went with it");
        store.put(&chunk(90_000, 3)).expect("the room is free again");
        let reopened = ChunkStore::open(dir.path(), 150_000).expect("reopen");
        assert_eq!(reopened.used(), 150_000);
        assert!(!reopened.contains(&removed.address()) && reopened.contains(&kept.address()));
    }

    #[test]
    fn a_full_store_refuses_new_chunks_and_keeps_the_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::open(dir.path(), 150_000).expect("open");
        let first = chunk(100_000, 1);
        store.put(&first).expect("fits");
        assert!(matches!(store.put(&chunk(60_000, 2)), Err(ChunkStoreError::Full { used: 100_000, .. })));
        assert_eq!(store.put(&first).expect("a held chunk is no new use"), Stored::AlreadyHeld);
        store.put(&chunk(50_000, 3)).expect("exactly fits");
        assert!(!store.has_room_for(1));
        assert_eq!(store.get(&first.address()).expect("get").as_deref(), Some(first.bytes()));
    }

    #[test]
    fn a_deleted_or_rotten_copy_cannot_answer_until_a_good_copy_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::open(dir.path(), 10 << 20).expect("open");
        let held = chunk(40_000, 4);
        store.put(&held).expect("put");
        let mut rotten = held.bytes().to_vec();
        rotten[20_000] ^= 1;
        fs::write(store.chunk_path(&held.address()), &rotten).expect("rot");
        let item = ChallengeItem { address: held.address(), blocks: vec![19] };
        let proof = store.answer(&item).expect("a proof of what is held");
        assert!(verify(&item, held.size(), &proof).is_err(), "the challenger sees the rot");
        assert_eq!(store.put(&held).expect("repair"), Stored::Replaced, "a good copy replaces the rotten one");
        let proof = store.answer(&item).expect("a proof");
        assert!(verify(&item, held.size(), &proof).is_ok(), "the repaired copy answers");
        assert_eq!(store.put(&held).expect("again"), Stored::AlreadyHeld, "an intact copy is left alone");
        fs::remove_file(store.chunk_path(&held.address())).expect("delete");
        assert!(matches!(store.answer(&item), Err(ChunkStoreError::Missing(_))));
        assert!(!store.contains(&held.address()));
    }
}
