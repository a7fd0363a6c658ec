//! What an elder has proposed to the section log and not yet seen ordered.
//!
//! Every proposal from a member or an outsider is first checked against what the elder
//! holds already: one sent again costs the sender's budget nothing. Those checks come
//! before any budget, so a flood pays for them; with up to `MAX_PROPOSED` items waiting a
//! scan of the queue per message would let a flood cost the elder ten thousand
//! comparisons a message. Items are found here by the digest of their encoding instead, and
//! kept in the order they came, the oldest offered to a session first.

use std::collections::BTreeMap;

use acre_ledger::Digest;

use crate::LogItem;

/// The hash context of a proposal's digest.
const PROPOSAL_CONTEXT: &str = "acre proposal v1";

/// The items waiting for the log, oldest first, each once.
#[derive(Debug, Clone, Default)]
pub struct Proposals {
    /// By arrival.
    items: BTreeMap<u64, LogItem>,
    /// Each item's place in `items`, by digest.
    places: BTreeMap<Digest, u64>,
    next: u64,
}

/// An item's digest: `None` only for an item that cannot be encoded, which the log could
/// never carry either.
fn digest(item: &LogItem) -> Option<Digest> {
    Digest::of_encoded(PROPOSAL_CONTEXT, item).ok()
}

impl Proposals {
    /// Whether `item` is waiting already.
    pub fn contains(&self, item: &LogItem) -> bool {
        digest(item).is_some_and(|digest| self.places.contains_key(&digest))
    }

    /// Keeps `item` after the others; whether it was new.
    pub fn push(&mut self, item: LogItem) -> bool {
        let Some(digest) = digest(&item) else { return false };
        if self.places.contains_key(&digest) {
            return false;
        }
        self.places.insert(digest, self.next);
        self.items.insert(self.next, item);
        self.next += 1;
        true
    }

    /// Forgets `item`, ordered now.
    pub fn remove(&mut self, item: &LogItem) {
        if let Some(place) = digest(item).and_then(|digest| self.places.remove(&digest)) {
            self.items.remove(&place);
        }
    }

    /// Keeps only the items `keep` says to.
    pub fn retain(&mut self, mut keep: impl FnMut(&LogItem) -> bool) {
        let gone: Vec<u64> = self.items.iter().filter(|(_, item)| !keep(item)).map(|(place, _)| *place).collect();
        for place in gone {
            if let Some(digest) = self.items.remove(&place).as_ref().and_then(digest) {
                self.places.remove(&digest);
            }
        }
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &LogItem> {
        self.items.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::testkit::key;
    use acre_ledger::AccountId;

    fn complaint(n: u8) -> LogItem {
        LogItem::Unresponsive(AccountId::of(&key(3, n.into())))
    }

    #[test]
    fn each_item_waits_once_in_the_order_it_came_until_it_is_ordered() {
        let mut proposals = Proposals::default();
        assert!(proposals.push(complaint(2)));
        assert!(proposals.push(complaint(1)));
        assert!(!proposals.push(complaint(2)), "sent again, it is the same proposal");
        assert_eq!(proposals.iter().cloned().collect::<Vec<_>>(), vec![complaint(2), complaint(1)]);
        assert!(proposals.contains(&complaint(1)) && !proposals.contains(&complaint(3)));

        proposals.remove(&complaint(2));
        assert!(!proposals.contains(&complaint(2)), "ordered, it is gone");
        assert!(proposals.push(complaint(2)), "and may be proposed again");
        assert_eq!(proposals.iter().cloned().collect::<Vec<_>>(), vec![complaint(1), complaint(2)]);

        proposals.retain(|item| *item != complaint(1));
        assert_eq!(proposals.len(), 1);
        assert!(!proposals.contains(&complaint(1)) && proposals.push(complaint(1)), "retain forgets it whole");
        proposals.retain(|_| false);
        assert!(proposals.is_empty() && proposals.places.is_empty());
    }
}
