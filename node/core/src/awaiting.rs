//! Store payments this node accepted and the section log has not ordered yet.
//!
//! A payment reaches the log as a proposal: handed to this node's own machine when it is
//! an elder, sent to the elders when it is not. Either can be lost on the way: a driver
//! inbox that is full drops what it is handed, an elder past its proposal bound keeps
//! nothing new, a request to an elder can fail, and a session can end before ordering
//! what it was offered. A payment lost so is not in the pool, so the farmers are never paid
//! for the chunks it bought. So the node keeps what it accepted here until the agreed
//! state shows the payment collected, and proposes it again each round meanwhile. A
//! proposal an elder already holds costs it nothing (it is not counted against the
//! proposer's budget twice), and the state counts a payment once however often it is
//! ordered.
//!
//! The book is bounded: at most [`MAX_AWAITING`] payments, each kept for at most
//! [`AWAITING_EPOCHS`] epochs. A payment the log still has not ordered by then is given up
//! and said so in the node's log; it was refused there (an elder set that no longer
//! admits it), and proposing it for ever would only grow the book.

use std::collections::BTreeMap;
use std::time::Duration;

use acre_ledger::Digest;

/// Most payments waiting for the log at once; past it a new one is proposed once, as
/// before, and not kept.
pub const MAX_AWAITING: usize = 4_096;
/// Epochs after which a payment the log has not ordered is given up.
pub const AWAITING_EPOCHS: u64 = 3;
/// Most payments proposed again in one round, oldest first, so a long book costs a
/// round a bounded number of requests.
pub const AGAIN_PER_ROUND: usize = 64;

/// The payments waiting for the log, by certificate id.
#[derive(Debug, Clone)]
pub struct AwaitingLog<T> {
    waiting: BTreeMap<Digest, Waiting<T>>,
}

#[derive(Debug, Clone)]
struct Waiting<T> {
    item: T,
    /// The agreed epoch when it was accepted here.
    epoch: u64,
    /// When it was last proposed.
    proposed: Duration,
}

/// What one round does with the book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round<T> {
    /// Proposed again now.
    pub again: Vec<T>,
    /// Given up: still not ordered after [`AWAITING_EPOCHS`] epochs.
    pub given_up: Vec<Digest>,
}

impl<T> Default for AwaitingLog<T> {
    fn default() -> Self {
        AwaitingLog { waiting: BTreeMap::new() }
    }
}

impl<T: Clone> AwaitingLog<T> {
    /// Keeps a payment just accepted and proposed, in agreed epoch `epoch`, at `now`.
    /// Whether it is kept (not when the book is full; one kept already stays as it was).
    pub fn accepted(&mut self, id: Digest, item: T, epoch: u64, now: Duration) -> bool {
        if self.waiting.contains_key(&id) {
            return true;
        }
        if self.waiting.len() >= MAX_AWAITING {
            return false;
        }
        self.waiting.insert(id, Waiting { item, epoch, proposed: now });
        true
    }

    /// One round at `now`, with the agreed state in `epoch`: drops what the state shows
    /// `collected`, gives up what is too old, and proposes again what was last proposed at
    /// least `interval` ago (at most [`AGAIN_PER_ROUND`], those waiting longest first).
    pub fn round(
        &mut self,
        epoch: u64,
        now: Duration,
        interval: Duration,
        collected: impl Fn(&Digest) -> bool,
    ) -> Round<T> {
        self.waiting.retain(|id, _| !collected(id));
        let given_up: Vec<Digest> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| epoch > waiting.epoch.saturating_add(AWAITING_EPOCHS))
            .map(|(id, _)| *id)
            .collect();
        for id in &given_up {
            self.waiting.remove(id);
        }
        let mut due: Vec<(&Digest, &Waiting<T>)> =
            self.waiting.iter().filter(|(_, waiting)| now.saturating_sub(waiting.proposed) >= interval).collect();
        due.sort_by_key(|(_, waiting)| waiting.proposed);
        let chosen: Vec<Digest> = due.into_iter().take(AGAIN_PER_ROUND).map(|(id, _)| *id).collect();
        let mut again = Vec::with_capacity(chosen.len());
        for id in chosen {
            if let Some(waiting) = self.waiting.get_mut(&id) {
                waiting.proposed = now;
                again.push(waiting.item.clone());
            }
        }
        Round { again, given_up }
    }

    /// How many payments are waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUND: Duration = Duration::from_secs(2);

    fn id(n: u8) -> Digest {
        Digest([n; 32])
    }

    fn at(rounds: u32) -> Duration {
        ROUND * rounds
    }

    #[test]
    fn a_payment_is_proposed_each_round_until_the_state_shows_it_collected() {
        let mut book = AwaitingLog::default();
        assert!(book.accepted(id(1), "payment 1", 5, at(0)));
        // Not again in the round it was proposed in.
        assert_eq!(book.round(5, at(0), ROUND, |_| false).again, Vec::<&str>::new());
        assert_eq!(book.round(5, at(1), ROUND, |_| false).again, vec!["payment 1"]);
        assert_eq!(book.round(5, at(2), ROUND, |_| false).again, vec!["payment 1"]);
        let collected = book.round(6, at(3), ROUND, |paid| *paid == id(1));
        assert!(collected.again.is_empty() && collected.given_up.is_empty());
        assert!(book.is_empty(), "a collected payment is forgotten");
    }

    #[test]
    fn a_payment_never_ordered_is_given_up_after_a_few_epochs() {
        let mut book = AwaitingLog::default();
        book.accepted(id(1), "old", 5, at(0));
        book.accepted(id(2), "new", 7, at(0));
        let round = book.round(5 + AWAITING_EPOCHS, at(1), ROUND, |_| false);
        assert!(round.given_up.is_empty(), "still within its epochs");
        let round = book.round(6 + AWAITING_EPOCHS, at(2), ROUND, |_| false);
        assert_eq!(round.given_up, vec![id(1)]);
        assert_eq!(round.again, vec!["new"]);
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn the_book_and_each_round_stay_bounded_whatever_is_accepted() {
        let mut book = AwaitingLog::default();
        for n in 0..MAX_AWAITING + 10 {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let kept = book.accepted(Digest(digest), n, 1, Duration::from_millis(n as u64));
            assert_eq!(kept, n < MAX_AWAITING, "payment {n}");
        }
        assert_eq!(book.len(), MAX_AWAITING);
        let round = book.round(1, at(10_000), ROUND, |_| false);
        assert_eq!(round.again.len(), AGAIN_PER_ROUND);
        assert_eq!(round.again, (0..AGAIN_PER_ROUND).collect::<Vec<_>>(), "the longest waiting first");
        let next = book.round(1, at(10_000), ROUND, |_| false);
        assert_eq!(next.again[0], AGAIN_PER_ROUND, "then the next ones");
    }
}
