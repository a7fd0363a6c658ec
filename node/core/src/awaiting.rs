//! Store payments this node accepted and the section log has not ordered yet.
//!
//! A payment reaches the log as a proposal: handed to this node's own machine when it is
//! an elder, sent to the elders when it is not. Either can be lost on the way: a driver
//! inbox that is full drops what it is handed, an elder past its proposal bound keeps
//! nothing new, a request to an elder can fail, and a session can end before ordering
//! what it was offered. A payment lost so is not in the pool, so the farmers are never paid
//! for the chunks it bought. So the node keeps what it accepted here until the agreed
//! state shows the payment collected, and proposes it again once in each epoch that opens
//! without it. The agreed state this node sees changes at each close, and shows everything
//! the closed epoch ordered, so a payment ordered already is never proposed again; an
//! elder also drops a proposal of a payment its state has collected before counting it
//! against anyone's budget, and the state counts a payment once however often it is
//! ordered.
//!
//! The book is bounded: at most [`MAX_AWAITING`] payments, each proposed once an epoch
//! until the state shows it collected, however many epochs that takes (a flood of
//! proposals, or a log that orders little, can hold a payment back for long; a payment
//! this node checked before accepting it is one the log admits once it orders it). A full
//! book makes room for a payment just accepted by giving up the one that has waited
//! longest, said so in the node's log, so payments that cannot be ordered any more (a
//! committee that changed since their certificate) cannot crowd out new ones. The book is
//! in memory; the node's payment records are on disk, so a node that starts again takes
//! back every payment they hold that the agreed state does not show collected
//! ([`AwaitingLog::restored`]), and proposes it in its first rounds.

use std::collections::BTreeMap;

use acre_ledger::Digest;

/// Most payments waiting for the log at once; past it the one waiting longest is given up.
pub const MAX_AWAITING: usize = 4_096;
/// Most payments proposed again in one round, those waiting longest first, so a long book
/// costs a round a bounded number of requests; the rest go in the next rounds.
pub const AGAIN_PER_ROUND: usize = 64;

/// The payments waiting for the log, by certificate id.
#[derive(Debug, Clone)]
pub struct AwaitingLog<T> {
    waiting: BTreeMap<Digest, Waiting<T>>,
}

#[derive(Debug, Clone)]
struct Waiting<T> {
    item: T,
    /// The agreed epoch open when it was accepted here.
    accepted: u64,
    /// The agreed epoch open when it was last proposed.
    proposed: u64,
}

impl<T> Default for AwaitingLog<T> {
    fn default() -> Self {
        AwaitingLog { waiting: BTreeMap::new() }
    }
}

impl<T: Clone> AwaitingLog<T> {
    /// Keeps a payment just accepted and proposed while agreed epoch `epoch` is open. A
    /// full book gives up the payment that has waited longest to keep it; returns that
    /// one's id. One kept already stays as it was.
    pub fn accepted(&mut self, id: Digest, item: T, epoch: u64) -> Option<Digest> {
        self.keep(id, Waiting { item, accepted: epoch, proposed: epoch })
    }

    /// Keeps a payment accepted before this node last started, which nothing shows was
    /// proposed since: due in the next round, and waiting since `epoch`. Returns the id of
    /// the payment given up to keep it, as [`AwaitingLog::accepted`] does.
    pub fn restored(&mut self, id: Digest, item: T, epoch: u64) -> Option<Digest> {
        self.keep(id, Waiting { item, accepted: epoch, proposed: epoch.saturating_sub(1) })
    }

    fn keep(&mut self, id: Digest, waiting: Waiting<T>) -> Option<Digest> {
        if self.waiting.contains_key(&id) {
            return None;
        }
        let given_up = if self.waiting.len() >= MAX_AWAITING {
            let oldest = self.waiting.iter().min_by_key(|(_, waiting)| waiting.accepted).map(|(id, _)| *id);
            oldest.inspect(|oldest| {
                self.waiting.remove(oldest);
            })
        } else {
            None
        };
        self.waiting.insert(id, waiting);
        given_up
    }

    /// One round with the agreed state in `epoch`: drops what the state shows `collected`,
    /// and returns what is proposed again now: what was last proposed in an earlier epoch,
    /// at most [`AGAIN_PER_ROUND`], those waiting longest first.
    pub fn round(&mut self, epoch: u64, collected: impl Fn(&Digest) -> bool) -> Vec<T> {
        self.waiting.retain(|id, _| !collected(id));
        let mut due: Vec<(&Digest, &Waiting<T>)> =
            self.waiting.iter().filter(|(_, waiting)| waiting.proposed < epoch).collect();
        due.sort_by_key(|(_, waiting)| (waiting.proposed, waiting.accepted));
        let chosen: Vec<Digest> = due.into_iter().take(AGAIN_PER_ROUND).map(|(id, _)| *id).collect();
        let mut again = Vec::with_capacity(chosen.len());
        for id in chosen {
            if let Some(waiting) = self.waiting.get_mut(&id) {
                waiting.proposed = epoch;
                again.push(waiting.item.clone());
            }
        }
        again
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

    fn id(n: u8) -> Digest {
        Digest([n; 32])
    }

    #[test]
    fn a_payment_is_proposed_once_an_epoch_until_the_state_shows_it_collected() {
        let mut book = AwaitingLog::default();
        assert_eq!(book.accepted(id(1), "payment 1", 5), None);
        // Not again in the epoch it was proposed in, however many rounds it has.
        for _ in 0..10 {
            assert_eq!(book.round(5, |_| false), Vec::<&str>::new());
        }
        // Every epoch after, however many pass without it ordered.
        for epoch in 6..40 {
            assert_eq!(book.round(epoch, |_| false), vec!["payment 1"], "epoch {epoch}");
            assert_eq!(book.round(epoch, |_| false), Vec::<&str>::new());
        }
        assert!(book.round(40, |paid| *paid == id(1)).is_empty());
        assert!(book.is_empty(), "a collected payment is forgotten");
    }

    #[test]
    fn a_payment_accepted_before_a_restart_is_proposed_in_the_first_round_then_once_an_epoch() {
        let mut book = AwaitingLog::default();
        assert_eq!(book.restored(id(1), "from the records", 5), None);
        assert_eq!(book.round(5, |_| false), vec!["from the records"], "nothing shows it was proposed");
        assert_eq!(book.round(5, |_| false), Vec::<&str>::new());
        assert_eq!(book.round(6, |_| false), vec!["from the records"]);
        // One the book holds already keeps its place.
        book.accepted(id(2), "accepted since", 9);
        assert_eq!(book.restored(id(2), "accepted since", 9), None);
        assert_eq!(book.round(9, |_| false), vec!["from the records"], "the other was proposed when accepted");
    }

    #[test]
    fn the_book_and_each_round_stay_bounded_whatever_is_accepted() {
        let mut book = AwaitingLog::default();
        let digest = |n: usize| {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
            Digest(digest)
        };
        for n in 0..MAX_AWAITING {
            let epoch = if n < 100 { 1 } else { 2 };
            assert_eq!(book.accepted(digest(n), n, epoch), None, "payment {n}");
        }
        // Full: each new payment gives up one of those waiting since epoch 1.
        for n in MAX_AWAITING..MAX_AWAITING + 10 {
            let given_up = book.accepted(digest(n), n, 3).expect("one is given up");
            assert!((0..100).any(|old| digest(old) == given_up), "the longest waiting goes first");
        }
        assert_eq!(book.len(), MAX_AWAITING);
        let round = book.round(4, |_| false);
        assert_eq!(round.len(), AGAIN_PER_ROUND);
        assert!(round.iter().all(|n| *n < 100), "the longest waiting first");
        let next = book.round(4, |_| false);
        assert_eq!(next.len(), AGAIN_PER_ROUND, "then the next ones, in the rounds after");
    }
}
