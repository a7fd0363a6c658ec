//! The storage behind the audits: a fixed, seeded set of chunks, each on the 4 members
//! closest to its address, as the section's placement puts them. An elder's audits pass
//! for a holder that is up and keeps its chunks; a holder with an empty disk (a
//! freeloader) fails every audit however it answers. Chunks are not moved when members
//! change (`Effect::Repair` is not carried out here), so a chunk's holders stay the
//! founders placement chose.

use std::collections::{BTreeMap, BTreeSet};

use acre_core::AuditSummary;
use acre_ledger::{AccountId, Verdict};
use acre_proofs::placement::{closest, COPIES};
use acre_proofs::ChunkAddress;
use rand::rngs::StdRng;
use rand::Rng;

/// One chunk and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Its address.
    pub(crate) chunk: [u8; 32],
    /// Its size.
    pub(crate) bytes: u64,
    /// The nodes that hold it, closest first.
    pub(crate) holders: Vec<usize>,
}

/// Every chunk of the section.
#[derive(Debug, Clone)]
pub(crate) struct ChunkModel {
    placements: Vec<Placement>,
    /// Nodes whose disks hold nothing although placement gave them chunks.
    empty: BTreeSet<usize>,
}

impl ChunkModel {
    /// `per_node` chunks per node, 1–4 MiB each, placed on their 4 closest nodes by
    /// `names` (each node's placement name, by index); the nodes in `empty` store nothing.
    pub(crate) fn new(names: &[[u8; 32]], per_node: usize, rng: &mut StdRng, empty: BTreeSet<usize>) -> Self {
        let by_name: BTreeMap<[u8; 32], usize> = names.iter().enumerate().map(|(index, name)| (*name, index)).collect();
        let placements = (0..names.len() * per_node)
            .map(|_| {
                let chunk: [u8; 32] = rng.gen();
                let bytes = rng.gen_range(1 << 20..=4 << 20);
                let holders = closest(&ChunkAddress(chunk), names, COPIES)
                    .into_iter()
                    .filter_map(|name| by_name.get(&name).copied())
                    .collect();
                Placement { chunk, bytes, holders }
            })
            .collect();
        ChunkModel { placements, empty }
    }

    /// What `auditor`'s audits show now, one challenge per chunk a holder keeps: every
    /// chunk of every other holder that is up (`answers`) and keeps it passes; a
    /// freeloader's are missing; a down holder's time out. The verdicts count them.
    pub(crate) fn audit(&self, auditor: usize, ids: &[AccountId], answers: impl Fn(usize) -> bool) -> AuditSummary {
        let mut summary = AuditSummary::default();
        let mut counts: BTreeMap<usize, (u32, u32)> = BTreeMap::new();
        for placement in &self.placements {
            for &holder in placement.holders.iter().filter(|holder| **holder != auditor) {
                let tally = summary.tallies.entry(ids[holder]).or_default();
                let count = counts.entry(holder).or_default();
                count.0 += 1;
                if self.empty.contains(&holder) {
                    tally.missing += 1;
                } else if answers(holder) {
                    tally.passed += 1;
                    count.1 += 1;
                } else {
                    tally.timeouts += 1;
                }
            }
        }
        summary.verdicts = counts
            .into_iter()
            .map(|(holder, (sampled, passed))| Verdict { holder: ids[holder], sampled, passed })
            .collect();
        summary
    }

    /// Every chunk with its size: the registry the section is founded with.
    pub(crate) fn registry(&self) -> impl Iterator<Item = (ChunkAddress, u64)> + '_ {
        self.placements.iter().map(|placement| (ChunkAddress(placement.chunk), placement.bytes))
    }

    /// The chunks placement gave `holder`.
    pub(crate) fn held_by(&self, holder: usize) -> impl Iterator<Item = &Placement> {
        self.placements.iter().filter(move |placement| placement.holders.contains(&holder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn audits_pass_for_live_holders_with_their_chunks_and_never_for_the_auditor() {
        let ids: Vec<AccountId> =
            (1..=6u8).map(|n| AccountId::of(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]))).collect();
        let names: Vec<[u8; 32]> = ids.iter().map(|id| id.0).collect();
        let model = ChunkModel::new(&names, 2, &mut StdRng::seed_from_u64(1), BTreeSet::from([5]));
        assert!(model.placements.iter().all(|placement| placement.holders.len() == COPIES));
        let summary = model.audit(0, &ids, |holder| holder != 4);
        let verdict = |n: usize| summary.verdicts.iter().find(|v| v.holder == ids[n]).copied();
        assert!(verdict(0).is_none(), "no elder audits itself");
        for (holder, proves) in [(4, false), (5, false), (1, true), (2, true), (3, true)] {
            let Some(verdict) = verdict(holder) else { continue };
            assert_eq!(verdict.sampled as usize, model.held_by(holder).count(), "one challenge per chunk it keeps");
            let expected = if proves { verdict.sampled } else { 0 };
            assert_eq!(verdict.passed, expected, "holder {holder}");
        }
    }
}
