//! Acre's storage proofs: content-addressed chunks and files, proof-of-storage
//! challenges answered with BLAKE3 verified slices, and the sampling maths that sizes
//! them. Pure functions over bytes; the node brings the disk, the clock and the network.
//!
//! - [`chunk`]: chunks of at most 1 MiB named by their BLAKE3 hash, and the data map
//!   that names a file.
//! - [`encryption`]: files sealed before they leave their owner, with keys from their
//!   content, and the secret map that reads them back.
//! - [`challenge`]: challenges drawn from fresh randomness, answers a holder makes from
//!   the chunk and its stored outboard, and their verification.
//! - [`audit`]: which challenges an elder sends each round, and what answers show.
//! - [`placement`]: which members hold a chunk (the 4 closest by XOR), and the copies to
//!   make when membership changes.
//! - [`sampling`]: how many blocks to challenge for a loss fraction and a confidence.

pub mod audit;
pub mod challenge;
pub mod chunk;
pub mod encryption;
pub mod placement;
pub mod sampling;

pub use challenge::{answer, verify, Challenge, ChallengeItem, Outboard, BLOCK_BYTES};
pub use chunk::{split_file, Chunk, ChunkAddress, DataMap, FileError, MAX_CHUNK_BYTES};
pub use encryption::{encrypt_file, EncryptedFile, FileKey, Privacy, SecretMap};

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The answer does not prove the challenged bytes against the chunk's address.
    #[error("the answer does not verify: {0}")]
    Invalid(String),
    /// The answer is longer than any honest answer to the challenge.
    #[error("the answer is {len} bytes; at most {max} answer this challenge")]
    TooLong {
        /// Its length.
        len: usize,
        /// The longest honest answer.
        max: usize,
    },
    /// The holder's data or outboard no longer hashes to the chunk's address.
    #[error("the stored chunk is damaged: {0}")]
    Damaged(String),
    /// A challenged block lies beyond the chunk.
    #[error("block {block} is beyond a chunk of {size} bytes")]
    OutOfRange {
        /// The block.
        block: u64,
        /// The chunk's size.
        size: u64,
    },
}
