//! What lying elders do. A liar runs the real machine for everything it does not lie
//! about (it follows the log, closes epochs, signs outcomes, applies records), and its
//! shell lies where a Byzantine node profits:
//!
//! - **forged reports**: each report its machine makes is replaced by one that says the
//!   freeloader (a member that stores nothing) proved everything, every other holder
//!   nothing, and the liar itself a thousand challenges nobody sent; a second copy goes
//!   out in another elder's name. The log's admission drops the copy (its creator is not
//!   its elder), and the honest reports outvote the rest both ways; with them it says at
//!   once that the grace for missing reports is over, which f elders alone cannot end;
//! - **equivocating votes**: it votes for every order it is sent, by hand with
//!   `vote_message`, without a lock — so for both of a double-spender's orders.
//!
//! A silent elder (`NodeRole::Silent`) runs nothing at all: it proposes, votes and signs
//! nothing, yet stays connected, so it is never removed.

use acre_core::{session_elders, LogItem};
use acre_ledger::{vote_message, AccountId, EpochReport, SignatureBytes, SignedOrder, Verdict, Vote};

use crate::world::Simulation;
use crate::NodeRole;

impl Simulation {
    /// The reports a lying elder proposes in place of its honest `report`.
    pub(crate) fn forged_reports(&mut self, liar: usize, report: &EpochReport) -> Vec<LogItem> {
        // Every holder it saw proved nothing, the freeloader everything, and the liar
        // itself a great many challenges nobody sent: the others' share, moved to them.
        let mut verdicts: Vec<Verdict> =
            report.verdicts.iter().map(|verdict| Verdict { passed: 0, ..*verdict }).collect();
        if let Some(freeloader) = self.freeloader {
            let holder = self.ids[freeloader];
            let sampled = u32::try_from(self.chunks.held_by(freeloader).count()).unwrap_or(u32::MAX).max(1);
            verdicts.retain(|verdict| verdict.holder != holder);
            verdicts.push(Verdict { holder, sampled, passed: sampled });
        }
        verdicts.push(Verdict { holder: self.ids[liar], sampled: 1_000, passed: 1_000 });
        let forged = EpochReport { verdicts, ..report.clone() };
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
        // And it says at once that the grace for the others' reports is over: with f
        // liars that is not enough to close on a bare quorum.
        items.push(LogItem::GraceOver(report.epoch));
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
