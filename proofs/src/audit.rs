//! Audits: which challenges an elder sends in a round, and what an answer shows. Pure:
//! the elder brings the randomness, the clock and the network.
//!
//! Every elder knows what each member must hold from the chunks registered in the section
//! and the membership alone ([`crate::placement`]), so it can audit any holder without
//! being told what it keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::challenge::{verify, Answer, Challenge, ChallengeItem};
use crate::chunk::ChunkAddress;
use crate::placement::{closest, COPIES};

/// Hash context of the choice of chunks to audit.
const CHOICE_CONTEXT: &str = "acre 2026 audit choice v1";

/// One challenge to one holder, with the sizes the challenger keeps for its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The holder's name.
    pub holder: [u8; 32],
    /// What it is asked.
    pub challenge: Challenge,
    /// Each item's chunk size, from the challenger's own records.
    pub sizes: Vec<u64>,
}

/// What one audit showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every challenged block was proven.
    Passed,
    /// The holder answered, but the answer does not prove the blocks.
    WrongBytes,
    /// The holder said it does not hold a chunk it must hold.
    Missing,
    /// Every block proven, but after the answer deadline: too late to show the holder
    /// read its own copy rather than fetching the bytes from another node.
    Late,
    /// No answer before the deadline.
    Timeout,
    /// No answer, but the holder was (re)starting: not held against it.
    Excused,
}

impl Outcome {
    /// Whether the holder failed the audit.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::WrongBytes | Outcome::Missing | Outcome::Late | Outcome::Timeout)
    }
}

/// The chunks of `registered` (address and size) that `holder` must keep among `members`.
pub fn assigned<'a>(
    registered: &'a BTreeMap<ChunkAddress, u64>,
    members: &'a [[u8; 32]],
    holder: &'a [u8; 32],
) -> impl Iterator<Item = (ChunkAddress, u64)> + 'a {
    registered
        .iter()
        .filter(move |(address, _)| closest(address, members, COPIES).contains(holder))
        .map(|(address, size)| (*address, *size))
}

/// This round's audits of every member but `challenger`: for each, up to `chunks` of the
/// chunks it must hold ([`audit_of`]). Members that must hold nothing are not audited.
/// `round` is the challenges' nonce. Here a member's placement name is also the name its
/// challenges give it, as in the tests; a node's book names holders by key
/// (`StorageBook::audit_plan`).
#[cfg(test)]
pub(crate) fn plan(
    registered: &BTreeMap<ChunkAddress, u64>,
    members: &[[u8; 32]],
    challenger: &[u8; 32],
    randomness: &[u8; 32],
    round: u64,
    chunks: usize,
) -> Vec<Audit> {
    duties(registered, members)
        .into_iter()
        .filter(|(holder, _)| holder != challenger)
        .map(|(holder, held)| audit_of(holder, *challenger, held, randomness, round, chunks))
        .collect()
}

/// What each of `members` must hold of `registered`, by placement name; members that
/// must hold nothing are left out.
pub fn duties(
    registered: &BTreeMap<ChunkAddress, u64>,
    members: &[[u8; 32]],
) -> BTreeMap<[u8; 32], Vec<(ChunkAddress, u64)>> {
    let mut duties: BTreeMap<[u8; 32], Vec<(ChunkAddress, u64)>> = BTreeMap::new();
    for (address, size) in registered {
        for holder in closest(address, members, COPIES) {
            duties.entry(holder).or_default().push((*address, *size));
        }
    }
    duties
}

/// `challenger`'s audit of `holder` (named as challenges name them) on up to `chunks` of
/// `held`, chosen by `randomness`, with [`crate::challenge::BLOCKS_PER_ITEM`] blocks of
/// each drawn from it, bound to the challenger and the holder. `round` is the nonce.
pub fn audit_of(
    holder: [u8; 32],
    challenger: [u8; 32],
    mut held: Vec<(ChunkAddress, u64)>,
    randomness: &[u8; 32],
    round: u64,
    chunks: usize,
) -> Audit {
    // A keyed hash of each address ranks them; the first `chunks` are audited.
    held.sort_by_cached_key(|(address, _)| {
        let mut hasher = blake3::Hasher::new_derive_key(CHOICE_CONTEXT);
        hasher.update(randomness).update(&round.to_le_bytes()).update(&holder).update(&address.0);
        *hasher.finalize().as_bytes()
    });
    held.truncate(chunks);
    let items = held
        .iter()
        .map(|(address, size)| ChallengeItem::for_holder(randomness, &challenger, &holder, round, *address, *size));
    Audit {
        holder,
        challenge: Challenge { nonce: round, seed: *randomness, holder, challenger, items: items.collect() },
        sizes: held.iter().map(|(_, size)| *size).collect(),
    }
}

/// What `answer` shows about the audit: passed only if it answers this challenge (its
/// nonce) with a proof of every item that verifies against the sizes kept here.
pub fn judge(audit: &Audit, answer: &Answer) -> Outcome {
    let items = &audit.challenge.items;
    if answer.nonce != audit.challenge.nonce || answer.proofs.len() != items.len() {
        return Outcome::WrongBytes;
    }
    let all_verify = items
        .iter()
        .zip(&audit.sizes)
        .zip(&answer.proofs)
        .all(|((item, size), proof)| verify(item, *size, proof).is_ok());
    if all_verify {
        Outcome::Passed
    } else {
        Outcome::WrongBytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::{answer, Outboard};
    use crate::chunk::Chunk;

    fn chunk(seed: u8) -> Chunk {
        Chunk::new((0..50_000u32).map(|i| (i as u8).wrapping_mul(seed)).collect()).expect("chunk")
    }

    #[test]
    fn every_holder_of_every_chunk_is_audited_except_the_challenger() {
        let members: Vec<[u8; 32]> = (0..7u8).map(|i| [i * 37; 32]).collect();
        let chunks: Vec<Chunk> = (1..=10).map(chunk).collect();
        let registered: BTreeMap<_, _> = chunks.iter().map(|c| (c.address(), c.size())).collect();
        let audits = plan(&registered, &members, &members[0], &[9; 32], 3, 100);
        for audit in &audits {
            assert_ne!(audit.holder, members[0]);
            let expected: Vec<_> = assigned(&registered, &members, &audit.holder).map(|(a, _)| a).collect();
            let mut asked: Vec<_> = audit.challenge.items.iter().map(|i| i.address).collect();
            asked.sort();
            assert_eq!(asked, expected, "with room for all, a holder is asked about everything it must hold");
            assert!(audit.challenge.items.iter().all(|i| i.blocks.len() == crate::challenge::BLOCKS_PER_ITEM));
            assert!(audit.challenge.items.iter().zip(&audit.sizes).all(|(i, size)| audit.challenge.drew(i, *size)));
        }
        let copies: usize = audits.iter().map(|a| a.challenge.items.len()).sum::<usize>()
            + assigned(&registered, &members, &members[0]).count();
        assert_eq!(copies, COPIES * chunks.len());
        let few = plan(&registered, &members, &members[0], &[9; 32], 3, 1);
        assert!(few.iter().all(|a| a.challenge.items.len() == 1));
    }

    #[test]
    fn judging_tells_a_proof_from_wrong_bytes_and_stale_answers() {
        let held = chunk(3);
        let registered = BTreeMap::from([(held.address(), held.size())]);
        let members = [[1; 32], [2; 32]];
        let audit = plan(&registered, &members, &[1; 32], &[4; 32], 8, 4).remove(0);
        let outboard = Outboard::create(&held);
        let proofs: Vec<Vec<u8>> = audit
            .challenge
            .items
            .iter()
            .map(|item| answer(item, held.size(), held.bytes(), &outboard).expect("answer"))
            .collect();
        let honest = Answer { nonce: 8, proofs: proofs.clone() };
        assert_eq!(judge(&audit, &honest), Outcome::Passed);
        assert_eq!(judge(&audit, &Answer { nonce: 7, proofs }), Outcome::WrongBytes, "another round's answer");
        let mut altered = honest.clone();
        let last = altered.proofs[0].len() - 1;
        altered.proofs[0][last] ^= 1;
        assert_eq!(judge(&audit, &altered), Outcome::WrongBytes);
        assert_eq!(judge(&audit, &Answer { nonce: 8, proofs: vec![] }), Outcome::WrongBytes, "no proofs");
    }
}
