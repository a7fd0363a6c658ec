//! Proof-of-storage challenges. A challenger draws blocks of the chunks a holder must
//! keep from its own fresh randomness; the holder answers with a BLAKE3 verified slice
//! of each block, made from the chunk and the pre-order outboard it keeps beside it (an
//! answer reads one 16 KiB chunk group, not the whole chunk); the challenger checks the
//! slice against the chunk's address and the size it keeps. Built on `bao-tree`, the
//! verified-streaming library iroh-blobs uses, with the same 16 KiB groups.

use std::collections::BTreeSet;

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::{encode_ranges, DecodeResponseIter, ReadAt, Size};
use bao_tree::io::BaoContentItem;
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use serde::{Deserialize, Serialize};

use crate::chunk::{Chunk, ChunkAddress, MAX_CHUNK_BYTES};
use crate::ProofError;

/// Bytes per challenged block: one BLAKE3 chunk.
pub const BLOCK_BYTES: u64 = 1024;
/// Chunk groups of the stored outboards: 16 KiB, as iroh-blobs keeps them. A protocol
/// constant: whole-group answers do not verify under another group size.
const GROUP: BlockSize = BlockSize::from_chunk_log(4);
/// Hash context of block draws.
const DRAW_CONTEXT: &str = "acre 2026 challenge blocks v1";
/// Hash context of a challenge's randomness bound to its challenger and holder.
const BIND_CONTEXT: &str = "acre 2026 challenge seed v1";
/// Blocks challenged per chunk (fewer only when the chunk has fewer). A protocol
/// constant: a holder answers only challenges drawn with exactly this many, so nobody can
/// ask it for a superset of the blocks another challenge asked for.
pub const BLOCKS_PER_ITEM: usize = 4;
/// The longest honest proof of one block: the hash pairs down a tree of 1,024 blocks
/// (a 1 MiB chunk, depth 10) and the block.
const MAX_PROOF_PER_BLOCK: usize = 10 * 64 + BLOCK_BYTES as usize;

/// What a holder keeps beside a chunk: the hash pairs of its BLAKE3 tree above 16 KiB
/// groups, in pre-order (4,032 bytes for a 1 MiB chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outboard(Vec<u8>);

impl Outboard {
    /// Computes the outboard of a chunk (when it is stored).
    pub fn create(chunk: &Chunk) -> Self {
        Outboard(PreOrderMemOutboard::create(chunk.bytes(), GROUP).data)
    }

    /// An outboard read back from storage.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Outboard(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A challenge to one holder: blocks of chunks it must hold. `nonce` makes every
/// challenge distinct, so an answer cannot be replayed for another. It names the holder
/// it is for and the challenger that sent it: an honest holder answers only a challenge
/// naming itself, from the challenger it names, so a member that stores nothing cannot
/// pass by handing its challenge to an honest co-holder to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The challenger's number for this challenge.
    pub nonce: u64,
    /// The challenger's fresh randomness, which the blocks are drawn from together with
    /// the challenger's and the holder's names ([`ChallengeItem::for_holder`]). A holder
    /// answers only a challenge whose blocks are so drawn, so a member asked about some
    /// blocks cannot have an honest co-holder prove them for it: a challenge to the
    /// co-holder names the co-holder and draws other blocks, and finding a seed that draws
    /// the same ones takes about 4·10¹⁰ tries for a 1 MiB chunk.
    pub seed: [u8; 32],
    /// The holder's XOR name.
    pub holder: [u8; 32],
    /// The challenger's XOR name.
    pub challenger: [u8; 32],
    /// The chunks and their blocks.
    pub items: Vec<ChallengeItem>,
}

impl Challenge {
    /// Whether `item`, about a chunk of `size` bytes, is what this challenge must ask: its
    /// blocks drawn from the seed, the challenger and the holder
    /// ([`ChallengeItem::for_holder`]). A holder answers nothing else.
    pub fn drew(&self, item: &ChallengeItem, size: u64) -> bool {
        let expected =
            ChallengeItem::for_holder(&self.seed, &self.challenger, &self.holder, self.nonce, item.address, size);
        expected.blocks == item.blocks
    }
}

/// Blocks of one chunk to prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeItem {
    /// The chunk.
    pub address: ChunkAddress,
    /// Block numbers (of [`BLOCK_BYTES`]), distinct and ascending.
    pub blocks: Vec<u64>,
}

/// A holder's answer: one proof per challenged chunk, in the challenge's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The challenge's nonce.
    pub nonce: u64,
    /// The verified slices.
    #[serde(with = "proof_bytes")]
    pub proofs: Vec<Vec<u8>>,
}

impl ChallengeItem {
    /// Draws `count` distinct blocks (fewer if the chunk has fewer) of a chunk of `size`
    /// bytes from the challenger's fresh `randomness` and the challenge's `nonce`. The
    /// draw is deterministic in its inputs, so it can be checked afterwards; it is
    /// unpredictable to the holder as long as the randomness is fresh.
    pub fn draw(randomness: &[u8; 32], nonce: u64, address: ChunkAddress, size: u64, count: usize) -> Self {
        let available = ChunkNum::chunks(size).0;
        let wanted = (count as u64).min(available);
        let mut hasher = blake3::Hasher::new_derive_key(DRAW_CONTEXT);
        hasher.update(randomness).update(&nonce.to_le_bytes()).update(&address.0);
        let mut stream = hasher.finalize_xof();
        let mut blocks = BTreeSet::new();
        while (blocks.len() as u64) < wanted {
            let mut word = [0u8; 8];
            stream.fill(&mut word);
            // The modulo bias is below 2^-50 for chunks of at most 1,024 blocks.
            blocks.insert(u64::from_le_bytes(word) % available);
        }
        ChallengeItem { address, blocks: blocks.into_iter().collect() }
    }

    /// The item a challenge with `seed` from `challenger` to `holder` asks about `address`
    /// of `size` bytes: [`BLOCKS_PER_ITEM`] blocks drawn from the seed bound to both names.
    pub fn for_holder(
        seed: &[u8; 32],
        challenger: &[u8; 32],
        holder: &[u8; 32],
        nonce: u64,
        address: ChunkAddress,
        size: u64,
    ) -> Self {
        let bound =
            blake3::Hasher::new_derive_key(BIND_CONTEXT).update(seed).update(challenger).update(holder).finalize();
        ChallengeItem::draw(bound.as_bytes(), nonce, address, size, BLOCKS_PER_ITEM)
    }

    fn ranges(&self) -> ChunkRanges {
        self.blocks.iter().fold(ChunkRanges::empty(), |ranges, &block| {
            ranges | ChunkRanges::from(ChunkNum(block)..ChunkNum(block + 1))
        })
    }

    /// Blocks must lie in the chunk, distinct and ascending (so there are never more
    /// than the chunk has, and an answer's size is bounded before it is made).
    fn check_blocks(&self, size: u64) -> Result<(), ProofError> {
        let available = ChunkNum::chunks(size).0;
        if let Some(&block) = self.blocks.iter().find(|&&block| block >= available) {
            return Err(ProofError::OutOfRange { block, size });
        }
        if self.blocks.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(ProofError::Invalid("blocks must be distinct and ascending".into()));
        }
        Ok(())
    }
}

/// The holder's proof of `item` from the chunk's `size` bytes in `data` (a slice, or a
/// file read at offsets, so only the challenged 16 KiB groups are read) and its outboard.
/// The holder sends what it has without re-hashing it: judging is the challenger's work,
/// and a copy that rotted shows there as wrong bytes.
pub fn answer(
    item: &ChallengeItem,
    size: u64,
    data: impl ReadAt + Size,
    outboard: &Outboard,
) -> Result<Vec<u8>, ProofError> {
    item.check_blocks(size)?;
    let tree = BaoTree::new(size, GROUP);
    if outboard.0.len() as u64 != tree.outboard_size() {
        return Err(ProofError::Damaged(format!("an outboard of {} bytes for {size} bytes", outboard.0.len())));
    }
    let stored = PreOrderMemOutboard { root: blake3::Hash::from(item.address.0), tree, data: outboard.0.as_slice() };
    let mut proof = Vec::with_capacity(item.blocks.len() * MAX_PROOF_PER_BLOCK);
    encode_ranges(data, stored, &item.ranges(), &mut proof).map_err(|error| ProofError::Damaged(error.to_string()))?;
    Ok(proof)
}

/// Checks a proof of `item` against the chunk's address and its `size`, which the
/// challenger must know from its own records: a proof of a middle block verifies under a
/// wrong size too. Trusts nothing in the proof beyond what the hashes prove: every
/// challenged byte must arrive, verified, with nothing left over.
pub fn verify(item: &ChallengeItem, size: u64, proof: &[u8]) -> Result<(), ProofError> {
    if size == 0 || size > MAX_CHUNK_BYTES as u64 {
        return Err(ProofError::Invalid(format!("no chunk has {size} bytes")));
    }
    if item.blocks.is_empty() {
        return Err(ProofError::Invalid("a challenge of no blocks proves nothing".into()));
    }
    item.check_blocks(size)?;
    let max = item.blocks.len() * MAX_PROOF_PER_BLOCK;
    if proof.len() > max {
        return Err(ProofError::TooLong { len: proof.len(), max });
    }
    let ranges = item.ranges();
    let mut reader = std::io::Cursor::new(proof);
    let mut proven = 0u64;
    let root = blake3::Hash::from(item.address.0);
    for piece in DecodeResponseIter::new(root, BaoTree::new(size, GROUP), &mut reader, &ranges) {
        if let BaoContentItem::Leaf(leaf) = piece.map_err(|error| ProofError::Invalid(error.to_string()))? {
            proven += leaf.data.len() as u64;
        }
    }
    if reader.position() != proof.len() as u64 {
        return Err(ProofError::Invalid("bytes after the proof".into()));
    }
    let challenged: u64 = item.blocks.iter().map(|block| (size - block * BLOCK_BYTES).min(BLOCK_BYTES)).sum();
    if proven != challenged {
        return Err(ProofError::Invalid(format!("{proven} bytes proven of {challenged} challenged")));
    }
    Ok(())
}

/// Proofs as byte strings on the wire (not sequences of numbers, which would double them
/// in CBOR).
mod proof_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(proofs: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        proofs.iter().map(|proof| serde_bytes::Bytes::new(proof)).collect::<Vec<_>>().serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let proofs = Vec::<serde_bytes::ByteBuf>::deserialize(deserializer)?;
        Ok(proofs.into_iter().map(serde_bytes::ByteBuf::into_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk_of(size: usize, seed: u8) -> Chunk {
        Chunk::new((0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()).expect("chunk")
    }

    #[test]
    fn an_honest_answer_verifies_and_stays_small() {
        let chunk = chunk_of(MAX_CHUNK_BYTES, 1);
        let outboard = Outboard::create(&chunk);
        assert_eq!(outboard.as_bytes().len(), 4_032, "63 hash pairs above 64 groups of 16 KiB");
        let item = ChallengeItem::draw(&[7; 32], 1, chunk.address(), chunk.size(), 1);
        let proof = answer(&item, chunk.size(), chunk.bytes(), &outboard).expect("answer");
        assert_eq!(proof.len(), 1_664, "10 hash pairs and one 1 KiB block");
        verify(&item, chunk.size(), &proof).expect("verifies");
    }

    #[test]
    fn altered_bytes_missing_data_and_replays_fail() {
        let chunk = chunk_of(300_000, 2);
        let outboard = Outboard::create(&chunk);
        let item = ChallengeItem::draw(&[8; 32], 1, chunk.address(), chunk.size(), 4);
        let proof = answer(&item, chunk.size(), chunk.bytes(), &outboard).expect("answer");

        let mut flipped = proof.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(verify(&item, chunk.size(), &flipped), Err(ProofError::Invalid(_))));
        assert!(verify(&item, chunk.size(), &proof[..proof.len() - 1]).is_err(), "a short proof");
        let mut longer = proof.clone();
        longer.push(0);
        assert!(verify(&item, chunk.size(), &longer).is_err(), "trailing bytes");

        let other = ChallengeItem::draw(&[8; 32], 2, chunk.address(), chunk.size(), 4);
        assert_ne!(other.blocks, item.blocks, "a new nonce draws other blocks");
        assert!(verify(&other, chunk.size(), &proof).is_err(), "an old answer does not answer a new challenge");

        // A holder whose copy rotted sends a proof that fails.
        let mut rotten = chunk.bytes().to_vec();
        let block = usize::try_from(item.blocks[0] * BLOCK_BYTES).expect("offset");
        rotten[block] ^= 0xff;
        let rotten_proof = answer(&item, chunk.size(), rotten.as_slice(), &outboard).expect("a proof of what is held");
        assert!(matches!(verify(&item, chunk.size(), &rotten_proof), Err(ProofError::Invalid(_))));

        // Repeated or unordered blocks are refused before any work: a holder asked for one
        // block a million times must not build a million proofs.
        let repeated = ChallengeItem { address: chunk.address(), blocks: vec![3, 3] };
        assert!(matches!(answer(&repeated, chunk.size(), chunk.bytes(), &outboard), Err(ProofError::Invalid(_))));
        let unordered = ChallengeItem { address: chunk.address(), blocks: vec![5, 2] };
        assert!(verify(&unordered, chunk.size(), &proof).is_err());
    }

    #[test]
    fn blocks_beyond_the_chunk_and_wrong_sizes_are_refused() {
        let chunk = chunk_of(5_000, 3);
        let outboard = Outboard::create(&chunk);
        let beyond = ChallengeItem { address: chunk.address(), blocks: vec![5] };
        assert_eq!(
            answer(&beyond, chunk.size(), chunk.bytes(), &outboard),
            Err(ProofError::OutOfRange { block: 5, size: 5_000 })
        );
        assert!(verify(&beyond, 5_000, &[]).is_err());
        let last = ChallengeItem { address: chunk.address(), blocks: vec![4] };
        let proof = answer(&last, chunk.size(), chunk.bytes(), &outboard).expect("answer");
        verify(&last, 5_000, &proof).expect("the partial last block verifies");
        assert!(verify(&last, 5_001, &proof).is_err(), "the last block proves the size");
        assert!(verify(&last, 0, &proof).is_err());
        let nothing = ChallengeItem { address: chunk.address(), blocks: vec![] };
        assert!(verify(&nothing, 5_000, &[]).is_err(), "an empty challenge proves nothing");
    }

    #[test]
    fn a_challenges_blocks_are_drawn_for_its_holder_and_no_other() {
        let address = ChunkAddress([9; 32]);
        let size = 1 << 20;
        let (seed, elder, holder, co_holder) = ([1; 32], [2; 32], [3; 32], [4; 32]);
        let item = ChallengeItem::for_holder(&seed, &elder, &holder, 7, address, size);
        assert_eq!(item.blocks.len(), BLOCKS_PER_ITEM);
        let challenge = Challenge { nonce: 7, seed, holder, challenger: elder, items: vec![item.clone()] };
        assert!(challenge.drew(&item, size));
        // The same blocks put to the co-holder, by the holder posing as challenger or under
        // the elder's own seed, are not what any fair challenge to the co-holder draws.
        for relayed in [
            Challenge { holder: co_holder, challenger: holder, ..challenge.clone() },
            Challenge { holder: co_holder, ..challenge.clone() },
            Challenge { nonce: 8, ..challenge.clone() },
        ] {
            assert!(!relayed.drew(&item, size));
        }
        let superset = ChallengeItem::draw(&seed, 7, address, size, 16);
        assert!(!challenge.drew(&superset, size), "more blocks than a challenge draws");
    }

    #[test]
    fn the_wire_encoding_is_stable() {
        let challenge = Challenge {
            nonce: 3,
            seed: [6; 32],
            holder: [7; 32],
            challenger: [8; 32],
            items: vec![ChallengeItem { address: ChunkAddress([1; 32]), blocks: vec![0, 2] }],
        };
        let bytes = postcard::to_allocvec(&challenge).expect("encode");
        let mut expected = vec![3];
        expected.extend_from_slice(&[6; 32]);
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&[8; 32]);
        expected.push(1);
        expected.extend_from_slice(&[1; 32]);
        expected.extend_from_slice(&[2, 0, 2]);
        assert_eq!(bytes, expected, "a change here breaks every node's wire format");
        assert_eq!(postcard::from_bytes::<Challenge>(&bytes).expect("decode"), challenge);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any chunk, any blocks: the honest answer verifies, and flipping any byte of it
        /// makes it fail.
        #[test]
        fn honest_answers_verify_and_any_flipped_byte_fails(
            size in 1usize..200_000,
            seed in any::<u8>(),
            randomness in any::<[u8; 32]>(),
            count in 1usize..6,
            flip in any::<prop::sample::Index>(),
        ) {
            let chunk = chunk_of(size, seed);
            let outboard = Outboard::create(&chunk);
            let item = ChallengeItem::draw(&randomness, 9, chunk.address(), chunk.size(), count);
            let proof = answer(&item, chunk.size(), chunk.bytes(), &outboard).expect("answer");
            prop_assert!(verify(&item, chunk.size(), &proof).is_ok());
            let mut altered = proof.clone();
            let at = flip.index(altered.len());
            altered[at] ^= 0x5a;
            prop_assert!(verify(&item, chunk.size(), &altered).is_err());
        }
    }
}
