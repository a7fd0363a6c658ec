//! Chunks and files. A chunk is at most [`MAX_CHUNK_BYTES`] and is named by the BLAKE3
//! hash of its bytes; a file is its chunks plus a data-map chunk listing them, and the
//! data map's address names the file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The largest chunk: 1 MiB.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;
/// The data map's format version, its first byte.
const DATA_MAP_VERSION: u8 = 1;

/// A chunk's address: the BLAKE3 hash of its bytes. Hex text in JSON, 32 bytes in
/// binary encodings.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkAddress(pub [u8; 32]);

impl Serialize for ChunkAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for ChunkAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(ChunkAddress)
        }
    }
}

impl ChunkAddress {
    /// The address of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ChunkAddress(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for ChunkAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ChunkAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkAddress({self})")
    }
}

impl FromStr for ChunkAddress {
    type Err = FileError;
    fn from_str(text: &str) -> Result<Self, FileError> {
        let hash = blake3::Hash::from_hex(text).map_err(|_| FileError::Address(text.to_owned()))?;
        Ok(ChunkAddress(*hash.as_bytes()))
    }
}

/// Why bytes are not a chunk, or chunks not a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Chunks must hold something: an empty chunk's proof is empty, so it proves nothing.
    #[error("a chunk cannot be empty")]
    Empty,
    /// Larger than a chunk may be.
    #[error("a chunk holds at most {max} bytes, not {len}", max = MAX_CHUNK_BYTES)]
    TooLarge {
        /// The length given.
        len: usize,
    },
    /// The file needs more chunks than one data map can list.
    #[error("a file of {len} bytes needs a data map larger than a chunk")]
    FileTooLarge {
        /// The file's length.
        len: u64,
    },
    /// Not 64 hexadecimal characters.
    #[error("{0} is not a chunk address (64 hexadecimal characters)")]
    Address(String),
    /// A data-map chunk that does not decode, or of another version.
    #[error("not a data map: {0}")]
    NotADataMap(String),
    /// The key part of `ADDRESS:KEY` is not 64 hexadecimal characters (the address is named).
    #[error("the key given with {0} is not 64 hexadecimal characters")]
    Key(String),
    /// The key given does not open the file's secret map.
    #[error("the key does not open this file: it belongs to another file or was mistyped")]
    WrongKey,
    /// A chunk whose bytes do not hash to the address the data map lists.
    #[error("chunk {index} does not match its address")]
    Mismatch {
        /// Its position in the file.
        index: usize,
    },
}

/// Bytes that may be stored as a chunk: not empty, at most 1 MiB.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    bytes: Vec<u8>,
    address: ChunkAddress,
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chunk({} bytes at {})", self.bytes.len(), self.address)
    }
}

impl Chunk {
    /// Checks the bounds and hashes the bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, FileError> {
        if bytes.is_empty() {
            return Err(FileError::Empty);
        }
        if bytes.len() > MAX_CHUNK_BYTES {
            return Err(FileError::TooLarge { len: bytes.len() });
        }
        Ok(Chunk { address: ChunkAddress::of(&bytes), bytes })
    }

    /// The chunk's address.
    pub fn address(&self) -> ChunkAddress {
        self.address
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its size in bytes, which a challenger keeps beside the address (see
    /// [`crate::challenge::verify`]).
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// One chunk of a file, as its data map lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk's address.
    pub address: ChunkAddress,
    /// Its size in bytes.
    pub size: u32,
}

/// What names a file: its length and its chunks in order. Stored as a chunk of its own,
/// self-describing: a version byte, then the postcard encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataMap {
    /// The file's length in bytes.
    pub size: u64,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

impl DataMap {
    /// The data map as a chunk; its address is the file's.
    pub fn to_chunk(&self) -> Result<Chunk, FileError> {
        let mut bytes = vec![DATA_MAP_VERSION];
        let body = postcard::to_allocvec(self).map_err(|e| FileError::NotADataMap(e.to_string()))?;
        bytes.extend_from_slice(&body);
        Chunk::new(bytes).map_err(|_| FileError::FileTooLarge { len: self.size })
    }

    /// Reads a data map from its chunk.
    pub fn from_chunk(chunk: &Chunk) -> Result<Self, FileError> {
        decode_versioned(chunk.bytes(), DATA_MAP_VERSION)
    }

    /// Puts a file back together from its chunks (in the data map's order), checking
    /// every chunk against its address.
    pub fn reassemble(&self, chunks: &[Chunk]) -> Result<Vec<u8>, FileError> {
        if chunks.len() != self.chunks.len() {
            return Err(FileError::NotADataMap(format!("{} chunks for {} listed", chunks.len(), self.chunks.len())));
        }
        let mut file = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        for (index, (chunk, listed)) in chunks.iter().zip(&self.chunks).enumerate() {
            if chunk.address() != listed.address || chunk.size() != u64::from(listed.size) {
                return Err(FileError::Mismatch { index });
            }
            file.extend_from_slice(chunk.bytes());
        }
        Ok(file)
    }
}

/// Decodes a map written as one version byte then its postcard encoding, refusing
/// another version.
pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned>(bytes: &[u8], version: u8) -> Result<T, FileError> {
    match bytes.split_first() {
        Some((&found, body)) if found == version => {
            postcard::from_bytes(body).map_err(|error| FileError::NotADataMap(error.to_string()))
        }
        Some((found, _)) => Err(FileError::NotADataMap(format!("version {found} is unknown"))),
        None => Err(FileError::Empty),
    }
}

/// Splits a file into chunks of 1 MiB (the last one shorter) and its data map. An empty
/// file has no chunks; its data map alone names it.
pub fn split_file(file: &[u8]) -> Result<(Vec<Chunk>, DataMap), FileError> {
    let chunks = file.chunks(MAX_CHUNK_BYTES).map(|part| Chunk::new(part.to_vec())).collect::<Result<Vec<_>, _>>()?;
    let refs =
        chunks.iter().map(|chunk| ChunkRef { address: chunk.address(), size: chunk.bytes().len() as u32 }).collect();
    Ok((chunks, DataMap { size: file.len() as u64, chunks: refs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_oversized_chunks_are_refused() {
        assert_eq!(Chunk::new(vec![]), Err(FileError::Empty));
        assert_eq!(Chunk::new(vec![0; MAX_CHUNK_BYTES + 1]), Err(FileError::TooLarge { len: MAX_CHUNK_BYTES + 1 }));
        assert!(Chunk::new(vec![0; MAX_CHUNK_BYTES]).is_ok());
    }

    #[test]
    fn a_file_splits_into_chunks_and_comes_back_byte_identical() {
        let file: Vec<u8> = (0..(2 * MAX_CHUNK_BYTES + 12_345)).map(|i| (i * 7 % 251) as u8).collect();
        let (chunks, map) = split_file(&file).expect("split");
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2].size(), 12_345);
        let map_chunk = map.to_chunk().expect("map chunk");
        let read = DataMap::from_chunk(&map_chunk).expect("decode");
        assert_eq!(read, map);
        assert_eq!(read.reassemble(&chunks).expect("reassemble"), file);

        let mut swapped = chunks.clone();
        swapped.swap(0, 1);
        assert_eq!(read.reassemble(&swapped), Err(FileError::Mismatch { index: 0 }));
    }

    #[test]
    fn a_data_map_of_another_version_is_not_read() {
        let chunk = Chunk::new(vec![9, 0, 0]).expect("chunk");
        assert!(matches!(DataMap::from_chunk(&chunk), Err(FileError::NotADataMap(_))));
    }

    #[test]
    fn addresses_read_back_from_text() {
        let address = ChunkAddress::of(b"acre");
        assert_eq!(address.to_string().parse::<ChunkAddress>(), Ok(address));
        assert!("xyz".parse::<ChunkAddress>().is_err());
    }
}
