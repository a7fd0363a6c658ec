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
//! The book is bounded: at most [`MAX_AWAITING`] payments, each proposed in at most
//! [`AWAITING_EPOCHS`] epochs. A payment the log still has not ordered by then is given up
//! and said so in the node's log: the section refused it, and proposing it for ever would
//! only grow the book. The book is in memory; the node's payment records are on disk, so a
//! node that starts again takes back every payment they hold that the agreed state does not
//! show collected ([`AwaitingLog::restored`]), and proposes it in its first rounds.

use std::collections::BTreeMap;

use acre_ledger::Digest;

/// Most payments waiting for the log at once; past it a new one is proposed once, as
/// before, and not kept.
pub const MAX_AWAITING: usize = 4_096;
/// Epochs a payment is proposed in (the one it was accepted in and the next ones) before
/// it is given up.
pub const AWAITING_EPOCHS: u64 = 3;
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
    /// Keeps a payment just accepted and proposed while agreed epoch `epoch` is open.
    /// Whether it is kept (not when the book is full; one kept already stays as it was).
    pub fn accepted(&mut self, id: Digest, item: T, epoch: u64) -> bool {
        if self.waiting.contains_key(&id) {
            return true;
        }
        if self.waiting.len() >= MAX_AWAITING {
            return false;
        }
        self.waiting.insert(id, Waiting { item, accepted: epoch, proposed: epoch });
        true
    }

    /// Keeps a payment accepted before this node last started, which nothing shows was
    /// proposed since: due in the next round, and given up as one accepted in `epoch`.
    /// Whether it is kept.
    pub fn restored(&mut self, id: Digest, item: T, epoch: u64) -> bool {
        if self.waiting.contains_key(&id) {
            return true;
        }
        if self.waiting.len() >= MAX_AWAITING {
            return false;
        }
        self.waiting.insert(id, Waiting { item, accepted: epoch, proposed: epoch.saturating_sub(1) });
        true
    }

    /// One round with the agreed state in `epoch`: drops what the state shows `collected`,
    /// gives up what was proposed in [`AWAITING_EPOCHS`] epochs already, and proposes
    /// again what was last proposed in an earlier epoch (at most [`AGAIN_PER_ROUND`], those
    /// waiting longest first).
    pub fn round(&mut self, epoch: u64, collected: impl Fn(&Digest) -> bool) -> Round<T> {
        self.waiting.retain(|id, _| !collected(id));
        let given_up: Vec<Digest> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| epoch >= waiting.accepted.saturating_add(AWAITING_EPOCHS))
            .map(|(id, _)| *id)
            .collect();
        for id in &given_up {
            self.waiting.remove(id);
        }
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

    fn id(n: u8) -> Digest {
        Digest([n; 32])
    }

    #[test]
    fn a_payment_is_proposed_once_an_epoch_until_the_state_shows_it_collected() {
        let mut book = AwaitingLog::default();
        assert!(book.accepted(id(1), "payment 1", 5));
        // Not again in the epoch it was proposed in, however many rounds it has.
        for _ in 0..10 {
            assert_eq!(book.round(5, |_| false).again, Vec::<&str>::new());
        }
        assert_eq!(book.round(6, |_| false).again, vec!["payment 1"]);
        assert_eq!(book.round(6, |_| false).again, Vec::<&str>::new());
        let collected = book.round(7, |paid| *paid == id(1));
        assert!(collected.again.is_empty() && collected.given_up.is_empty());
        assert!(book.is_empty(), "a collected payment is forgotten");
    }

    #[test]
    fn a_payment_accepted_before_a_restart_is_proposed_in_the_first_round_then_once_an_epoch() {
        let mut book = AwaitingLog::default();
        assert!(book.restored(id(1), "from the records", 5));
        assert_eq!(book.round(5, |_| false).again, vec!["from the records"], "nothing shows it was proposed");
        assert_eq!(book.round(5, |_| false).again, Vec::<&str>::new());
        assert_eq!(book.round(6, |_| false).again, vec!["from the records"]);
        assert_eq!(
            book.round(5 + AWAITING_EPOCHS, |_| false).given_up,
            vec![id(1)],
            "its epochs count from the restart"
        );
        // One the book holds already keeps its place.
        book.accepted(id(2), "accepted since", 9);
        assert!(book.restored(id(2), "accepted since", 9));
        assert_eq!(book.round(9, |_| false).again, Vec::<&str>::new(), "proposed when it was accepted");
    }

    #[test]
    fn a_payment_never_ordered_is_given_up_after_its_epochs() {
        let mut book = AwaitingLog::default();
        book.accepted(id(1), "old", 5);
        book.accepted(id(2), "new", 7);
        let round = book.round(5 + AWAITING_EPOCHS - 1, |_| false);
        assert!(round.given_up.is_empty(), "still within its epochs");
        assert_eq!(round.again, vec!["old"]);
        let round = book.round(5 + AWAITING_EPOCHS, |_| false);
        assert_eq!(round.given_up, vec![id(1)], "proposed in epochs 5, 6 and 7, then given up");
        assert_eq!(round.again, vec!["new"]);
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn the_book_and_each_round_stay_bounded_whatever_is_accepted() {
        let mut book = AwaitingLog::default();
        for n in 0..MAX_AWAITING + 10 {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let epoch = if n < 100 { 1 } else { 2 };
            assert_eq!(book.accepted(Digest(digest), n, epoch), n < MAX_AWAITING, "payment {n}");
        }
        assert_eq!(book.len(), MAX_AWAITING);
        let round = book.round(3, |_| false);
        assert_eq!(round.again.len(), AGAIN_PER_ROUND);
        assert!(round.again.iter().all(|n| *n < 100), "the longest waiting first");
        let next = book.round(3, |_| false);
        assert_eq!(next.again.len(), AGAIN_PER_ROUND, "then the next ones, in the rounds after");
    }
}
