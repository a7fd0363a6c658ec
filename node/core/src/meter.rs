//! Reads through apps, counted as two members attest them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use acre_ledger::{AccountId, AppId, Digest};

/// Reads attested to this elder longest kept waiting for their second attestation.
const PENDING_USES: usize = 100_000;

/// Counts reads through apps. A read counts once two distinct members attest it (the
/// node that took the request and the holder that sent the bytes), so one dishonest
/// member alone cannot invent use. Totals run from this elder's first start (saved at
/// every epoch close); reports carry them whole.
#[derive(Debug, Default)]
pub struct UseMeter {
    pending: HashMap<Digest, (AppId, AccountId)>,
    order: VecDeque<Digest>,
    counted: HashSet<Digest>,
    totals: BTreeMap<AppId, u64>,
}

impl UseMeter {
    /// Records `member`'s attestation of the read `use_id` through `app`.
    pub fn attest(&mut self, member: AccountId, app: AppId, use_id: Digest) {
        if self.counted.contains(&use_id) {
            return;
        }
        match self.pending.get(&use_id) {
            Some((first_app, first)) if *first_app == app && *first != member => {
                self.pending.remove(&use_id);
                self.counted.insert(use_id);
                *self.totals.entry(app).or_default() += 1;
            }
            Some(_) => {}
            None => {
                if self.order.len() >= PENDING_USES {
                    if let Some(oldest) = self.order.pop_front() {
                        self.pending.remove(&oldest);
                        self.counted.remove(&oldest);
                    }
                }
                self.pending.insert(use_id, (app, member));
                self.order.push_back(use_id);
            }
        }
    }

    /// A meter whose running totals start where a saved one's stopped.
    pub fn resuming(totals: BTreeMap<AppId, u64>) -> Self {
        UseMeter { totals, ..UseMeter::default() }
    }

    /// Reads counted per app, running since this elder first started.
    pub fn totals(&self) -> &BTreeMap<AppId, u64> {
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_counts_once_two_members_attest_it() {
        let mut meter = UseMeter::default();
        let (app, read) = (AppId([1; 32]), Digest([200; 32]));
        let (node, holder, liar) = (AccountId([1; 32]), AccountId([2; 32]), AccountId([3; 32]));
        for n in 0..100u8 {
            meter.attest(liar, app, Digest([n; 32]));
            meter.attest(liar, app, Digest([n; 32]));
        }
        assert!(meter.totals().is_empty(), "one member alone invents nothing");
        meter.attest(node, app, read);
        meter.attest(holder, AppId([2; 32]), read);
        assert!(meter.totals().is_empty(), "attestations of another app do not pair");
        meter.attest(holder, app, read);
        meter.attest(liar, app, read);
        assert_eq!(meter.totals().get(&app), Some(&1), "counted once");

        // A restarted elder's meter resumes from the totals its last close saved.
        let resumed = UseMeter::resuming(meter.totals().clone());
        assert_eq!(resumed.totals(), meter.totals());
    }
}
