//! What lying elders do. A liar runs the real machine for everything it does not lie
//! about (it follows the log, closes epochs, signs outcomes, applies records), and its
//! shell lies where a Byzantine node profits:
//!
//! - **forged reports**: each report its machine makes is replaced by one that claims
//!   passes for the freeloader (a member that stores nothing), for a chunk nobody stores,
//!   and inflated sizes for every real pass; a second copy goes out in another elder's
//!   name. The log's admission drops the copy (its creator is not its elder), and a
//!   quorum of honest reports outvotes the rest;
//! - **equivocating votes**: it votes for every order it is sent, by hand with
//!   `vote_message`, without a lock — so for both of a double-spender's orders.
//!
//! A silent elder (`NodeRole::Silent`) runs nothing at all: it proposes, votes and signs
//! nothing, yet stays connected, so it is never removed.

use acre_core::{session_elders, LogItem};
use acre_ledger::{vote_message, AccountId, EpochReport, ProvenChunk, SignatureBytes, SignedOrder, Vote};

use crate::world::Simulation;
use crate::NodeRole;

/// How much a liar inflates the sizes it reports.
const INFLATION: u64 = 16;

impl Simulation {
    /// The reports a lying elder proposes in place of its honest `report`.
    pub(crate) fn forged_reports(&mut self, liar: usize, report: &EpochReport) -> Vec<LogItem> {
        let mut passed: Vec<ProvenChunk> =
            report.passed.iter().map(|proven| ProvenChunk { bytes: proven.bytes * INFLATION, ..*proven }).collect();
        if let Some(freeloader) = self.freeloader {
            let holder = self.ids[freeloader];
            passed.extend(self.chunks.held_by(freeloader).map(|placement| ProvenChunk {
                holder,
                chunk: placement.chunk,
                bytes: placement.bytes * INFLATION,
            }));
        }
        let phantom = blake3::derive_key("acre-sim 2026 phantom chunk", &report.epoch.to_le_bytes());
        passed.push(ProvenChunk { holder: self.ids[liar], chunk: phantom, bytes: 4 << 20 });
        let forged = EpochReport { passed, ..report.clone() };
        let mut items = vec![LogItem::Report(forged.clone())];
        // The same lies in the name of an honest elder of the session.
        let victim: Option<AccountId> = self.nodes[liar].running().and_then(|running| {
            session_elders(running.machine.state())
                .into_iter()
                .find(|elder| self.index_of.get(elder).is_some_and(|node| self.nodes[*node].role == NodeRole::Honest))
        });
        if let Some(victim) = victim {
            items.push(LogItem::Report(EpochReport { elder: victim, ..forged }));
        }
        self.stats.forged_reports += items.len() as u64;
        items
    }

    /// A lying elder's vote for `order`, signed by hand whatever it voted before at the
    /// order's sequence.
    pub(crate) fn equivocating_vote(&mut self, liar: usize, order: &SignedOrder) -> Vote {
        let digest = order.order.digest();
        let node = &mut self.nodes[liar];
        let voted = node.votes.entry((order.order.from, order.order.sequence)).or_default();
        if voted.insert(digest) && voted.len() > 1 {
            self.stats.equivocating_votes += 1;
        }
        Vote { order: digest, elder: node.id, signature: SignatureBytes::sign(&node.key, &vote_message(&digest)) }
    }
}
