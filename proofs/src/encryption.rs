//! Self-encryption: a file is encrypted on its owner's machine before any chunk leaves it,
//! so the members who hold the chunks store ciphertext they cannot read.
//!
//! Each piece of the file (at most [`MAX_PIECE_BYTES`], so its ciphertext fits a chunk) is
//! sealed with ChaCha20-Poly1305 under a key derived from the piece itself (convergent
//! encryption, as SAFE's self-encryption): the same file gives the same chunks, so storing
//! it twice is stored and paid once. The list of chunks with their keys, the
//! [`SecretMap`], is sealed the same way into one more chunk. What reads the file back is
//! that chunk's address and key together, a [`FileKey`]; the address alone opens nothing.
//!
//! A [`Privacy::Private`] file derives every key under a salt of its owner's instead, so
//! nobody without the salt can tell that it holds a file they also have, at the price of
//! no sharing of chunks with other users. `specs/storage.md` says what each party learns.
//!
//! Every key encrypts exactly one plaintext (it is a hash of that plaintext), so a fixed
//! nonce never repeats under one key.

use std::fmt;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::chunk::{decode_versioned, Chunk, ChunkAddress, FileError, MAX_CHUNK_BYTES};

/// The AEAD tag each sealed chunk carries.
const TAG_BYTES: usize = 16;
/// The largest piece of a file one chunk holds once sealed.
pub const MAX_PIECE_BYTES: usize = MAX_CHUNK_BYTES - TAG_BYTES;
/// The secret map's format version, the first byte of its plaintext.
const SECRET_MAP_VERSION: u8 = 1;
/// The key commitment that opens the secret map's plaintext.
const COMMITMENT_BYTES: usize = 32;
/// The most chunks one secret map lists: each entry is at most 68 bytes encoded, and the
/// map must fit one piece.
pub const MAX_MAP_CHUNKS: usize = 15_000;
/// Key-derivation contexts, one per kind of key, so a key of one kind is never another's.
const PIECE_KEY_CONTEXT: &str = "acre 2026-12 self-encryption piece key";
const MAP_KEY_CONTEXT: &str = "acre 2026-12 self-encryption map key";
const COMMITMENT_CONTEXT: &str = "acre 2026-12 self-encryption map key commitment";
/// Each key seals exactly one plaintext, so one nonce serves all.
const NONCE: [u8; 12] = [0; 12];

/// How a file's keys are derived.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// Keys from the content alone: identical files share chunks (stored and paid once),
    /// and whoever has the same file can confirm that it is stored.
    Convergent,
    /// Keys from the content under this owner's salt: only the same owner's copies share
    /// chunks, and nobody without the salt can confirm anything about the file.
    Private([u8; 32]),
}

impl fmt::Debug for Privacy {
    // The salt is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Privacy::Convergent => f.write_str("Convergent"),
            Privacy::Private(_) => f.write_str("Private(…)"),
        }
    }
}

impl Privacy {
    fn key(&self, context: &str, plaintext: &[u8]) -> [u8; 32] {
        match self {
            Privacy::Convergent => blake3::derive_key(context, plaintext),
            Privacy::Private(salt) => {
                let mut hasher = blake3::Hasher::new_keyed(&blake3::derive_key(context, salt));
                hasher.update(plaintext);
                *hasher.finalize().as_bytes()
            }
        }
    }
}

/// What reads an encrypted file back: its secret map's address and key. Shown as
/// `ADDRESS:KEY`, 64 hexadecimal characters each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileKey {
    /// The address of the chunk that holds the sealed secret map.
    pub map: ChunkAddress,
    /// The key that opens it.
    pub key: [u8; 32],
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.map, hex_of(&self.key))
    }
}

impl fmt::Debug for FileKey {
    // The key is a secret: debug output names only the map.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileKey({}:…)", self.map)
    }
}

impl FromStr for FileKey {
    type Err = FileError;
    // Errors name the address part only: the key is a secret and errors reach terminals.
    fn from_str(text: &str) -> Result<Self, FileError> {
        let (map, key) = text.split_once(':').ok_or_else(|| FileError::Address(text.to_owned()))?;
        let map: ChunkAddress = map.parse()?;
        let key = blake3::Hash::from_hex(key).map_err(|_| FileError::Key(map.to_string()))?;
        Ok(FileKey { map, key: *key.as_bytes() })
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One chunk of an encrypted file, as its secret map lists it.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretChunkRef {
    /// The sealed chunk's address.
    pub address: ChunkAddress,
    /// The sealed chunk's size in bytes.
    pub size: u32,
    /// The key that opens it.
    pub key: [u8; 32],
}

impl fmt::Debug for SecretChunkRef {
    // The key is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretChunkRef({} bytes at {})", self.size, self.address)
    }
}

/// The file's length and its sealed chunks in order, with their keys. Never stored in the
/// clear: it travels sealed in a chunk of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMap {
    /// The file's length in bytes.
    pub size: u64,
    /// Its chunks, in order.
    pub chunks: Vec<SecretChunkRef>,
}

/// A file sealed into chunks.
#[derive(Debug, Clone)]
pub struct EncryptedFile {
    /// The sealed pieces in order, then the sealed secret map.
    pub chunks: Vec<Chunk>,
    /// What reads it back.
    pub key: FileKey,
    /// The file's length in bytes.
    pub size: u64,
}

fn seal(key: &[u8; 32], plaintext: &[u8]) -> Result<Chunk, FileError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let sealed = cipher
        .encrypt(Nonce::from_slice(&NONCE), plaintext)
        .map_err(|_| FileError::TooLarge { len: plaintext.len() })?;
    Chunk::new(sealed)
}

/// What the secret map carries to bind it to its key. ChaCha20-Poly1305 does not commit to
/// its key, so without this a file's creator could make one map chunk that opens under two
/// keys to two different files.
fn commitment(key: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(COMMITMENT_CONTEXT, key)
}

fn open(key: &[u8; 32], chunk: &Chunk) -> Option<Vec<u8>> {
    ChaCha20Poly1305::new(Key::from_slice(key)).decrypt(Nonce::from_slice(&NONCE), chunk.bytes()).ok()
}

/// Seals `file` into chunks whose keys follow `privacy`. An empty file has no pieces;
/// its secret map alone names it.
pub fn encrypt_file(file: &[u8], privacy: Privacy) -> Result<EncryptedFile, FileError> {
    if file.len().div_ceil(MAX_PIECE_BYTES) > MAX_MAP_CHUNKS {
        return Err(FileError::FileTooLarge { len: file.len() as u64 });
    }
    let mut chunks = Vec::with_capacity(file.len().div_ceil(MAX_PIECE_BYTES) + 1);
    let mut refs = Vec::with_capacity(chunks.capacity());
    for piece in file.chunks(MAX_PIECE_BYTES) {
        let key = privacy.key(PIECE_KEY_CONTEXT, piece);
        let chunk = seal(&key, piece)?;
        refs.push(SecretChunkRef { address: chunk.address(), size: chunk.size() as u32, key });
        chunks.push(chunk);
    }
    let map = SecretMap { size: file.len() as u64, chunks: refs };
    let mut body = vec![SECRET_MAP_VERSION];
    body.extend(postcard::to_allocvec(&map).map_err(|error| FileError::NotADataMap(error.to_string()))?);
    if body.len() + COMMITMENT_BYTES > MAX_PIECE_BYTES {
        return Err(FileError::FileTooLarge { len: map.size });
    }
    let map_key = privacy.key(MAP_KEY_CONTEXT, &body);
    let mut plaintext = commitment(&map_key).to_vec();
    plaintext.extend(body);
    let map_chunk = seal(&map_key, &plaintext)?;
    let key = FileKey { map: map_chunk.address(), key: map_key };
    chunks.push(map_chunk);
    Ok(EncryptedFile { chunks, key, size: map.size })
}

impl SecretMap {
    /// Opens the secret map sealed in `chunk` with `key`.
    pub fn open(key: &FileKey, chunk: &Chunk) -> Result<Self, FileError> {
        if chunk.address() != key.map {
            return Err(FileError::Mismatch { index: 0 });
        }
        let plaintext = open(&key.key, chunk).ok_or(FileError::WrongKey)?;
        let (committed, body) = plaintext.split_at_checked(COMMITMENT_BYTES).ok_or(FileError::WrongKey)?;
        if committed != commitment(&key.key) {
            return Err(FileError::WrongKey);
        }
        let map: SecretMap = decode_versioned(body, SECRET_MAP_VERSION)?;
        if map.chunks.len() > MAX_MAP_CHUNKS || map.size > (map.chunks.len() * MAX_PIECE_BYTES) as u64 {
            return Err(FileError::NotADataMap(format!("{} bytes cannot fill {} chunks", map.size, map.chunks.len())));
        }
        Ok(map)
    }

    /// Opens the file's chunks (in the map's order), checking each against its address
    /// and its seal, and joins them.
    pub fn decrypt(&self, chunks: &[Chunk]) -> Result<Vec<u8>, FileError> {
        if chunks.len() != self.chunks.len() {
            return Err(FileError::NotADataMap(format!("{} chunks for {} listed", chunks.len(), self.chunks.len())));
        }
        // Opened maps are bounded (`open`), so this is at most the chunks' own bytes.
        let mut file = Vec::with_capacity(chunks.iter().map(|chunk| chunk.bytes().len()).sum());
        for (index, (chunk, listed)) in chunks.iter().zip(&self.chunks).enumerate() {
            if chunk.address() != listed.address {
                return Err(FileError::Mismatch { index });
            }
            file.extend(open(&listed.key, chunk).ok_or(FileError::Mismatch { index })?);
        }
        if file.len() as u64 != self.size {
            return Err(FileError::NotADataMap(format!("{} bytes for {} listed", file.len(), self.size)));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterned(len: usize) -> Vec<u8> {
        b"ACRE-PLAINTEXT-PATTERN ".iter().copied().cycle().take(len).collect()
    }

    fn read_back(file: &EncryptedFile, key: &FileKey) -> Result<Vec<u8>, FileError> {
        let (map_chunk, pieces) = file.chunks.split_last().expect("a map chunk");
        SecretMap::open(key, map_chunk)?.decrypt(pieces)
    }

    #[test]
    fn a_file_comes_back_only_with_its_key_and_no_chunk_shows_its_plaintext() {
        let plaintext = patterned(2 * MAX_CHUNK_BYTES + 5_000);
        let file = encrypt_file(&plaintext, Privacy::Convergent).expect("encrypt");
        assert_eq!(file.chunks.len(), 4, "3 pieces and the map");
        assert!(file.chunks.iter().all(|chunk| chunk.size() <= MAX_CHUNK_BYTES as u64));
        for chunk in &file.chunks {
            assert!(!chunk.bytes().windows(14).any(|window| window == b"ACRE-PLAINTEXT"), "plaintext in a chunk");
        }
        assert_eq!(read_back(&file, &file.key).expect("decrypt"), plaintext);

        let wrong = FileKey { key: [7; 32], ..file.key };
        assert_eq!(read_back(&file, &wrong), Err(FileError::WrongKey));
    }

    #[test]
    fn the_same_file_gives_the_same_chunks_unless_it_is_private() {
        let plaintext = patterned(MAX_CHUNK_BYTES + 1);
        let first = encrypt_file(&plaintext, Privacy::Convergent).expect("encrypt");
        let second = encrypt_file(&plaintext, Privacy::Convergent).expect("encrypt");
        assert_eq!(first.key, second.key);
        assert_eq!(first.chunks, second.chunks);

        let mine = encrypt_file(&plaintext, Privacy::Private([1; 32])).expect("encrypt");
        let theirs = encrypt_file(&plaintext, Privacy::Private([2; 32])).expect("encrypt");
        assert_ne!(mine.key.map, first.key.map);
        assert_ne!(mine.key.map, theirs.key.map);
        assert!(mine.chunks.iter().all(|chunk| !first.chunks.contains(chunk)), "a private chunk is shared");
        assert_eq!(read_back(&mine, &mine.key).expect("decrypt"), plaintext);
    }

    #[test]
    fn a_swapped_or_altered_chunk_is_refused() {
        let plaintext = patterned(3 * MAX_PIECE_BYTES);
        let file = encrypt_file(&plaintext, Privacy::Convergent).expect("encrypt");
        let (map_chunk, pieces) = file.chunks.split_last().expect("map");
        let map = SecretMap::open(&file.key, map_chunk).expect("map opens");
        let mut swapped = pieces.to_vec();
        swapped.swap(0, 1);
        assert_eq!(map.decrypt(&swapped), Err(FileError::Mismatch { index: 0 }));
        assert_eq!(SecretMap::open(&file.key, &pieces[0]), Err(FileError::Mismatch { index: 0 }));
    }

    /// A map sealed under one key whose plaintext commits to another, or claims more bytes
    /// than its chunks can hold, is refused before anything is allocated for it.
    #[test]
    fn a_map_must_commit_to_its_key_and_claim_no_more_than_its_chunks_hold() {
        let key = [3u8; 32];
        let sealed_map = |committed_to: &[u8; 32], map: &SecretMap| {
            let mut plaintext = commitment(committed_to).to_vec();
            plaintext.push(SECRET_MAP_VERSION);
            plaintext.extend(postcard::to_allocvec(map).expect("encode"));
            seal(&key, &plaintext).expect("seal")
        };
        let honest = SecretMap { size: 0, chunks: vec![] };
        let chunk = sealed_map(&key, &honest);
        let file_key = FileKey { map: chunk.address(), key };
        assert_eq!(SecretMap::open(&file_key, &chunk), Ok(honest));

        let other = sealed_map(&[4; 32], &SecretMap { size: 0, chunks: vec![] });
        assert_eq!(SecretMap::open(&FileKey { map: other.address(), key }, &other), Err(FileError::WrongKey));

        let greedy = sealed_map(&key, &SecretMap { size: 1 << 62, chunks: vec![] });
        let opened = SecretMap::open(&FileKey { map: greedy.address(), key }, &greedy);
        assert!(matches!(opened, Err(FileError::NotADataMap(_))), "{opened:?}");
    }

    #[test]
    fn a_malformed_key_is_refused_without_echoing_it() {
        let address = ChunkAddress::of(b"map");
        let error = format!("{address}:not-a-secret-key-but-close").parse::<FileKey>().expect_err("refused");
        assert!(!error.to_string().contains("not-a-secret"), "{error}");
        assert_eq!(format!("{:?}", Privacy::Private([9; 32])), "Private(…)");
    }

    #[test]
    fn file_keys_read_back_from_text_and_an_empty_file_has_one() {
        let file = encrypt_file(b"", Privacy::Convergent).expect("encrypt");
        assert_eq!(file.chunks.len(), 1);
        let text = file.key.to_string();
        assert_eq!(text.len(), 129);
        assert_eq!(text.parse::<FileKey>(), Ok(file.key));
        assert!(file.key.map.to_string().parse::<FileKey>().is_err(), "an address alone is no key");
        assert_eq!(read_back(&file, &file.key).expect("decrypt"), Vec::<u8>::new());
    }
}
