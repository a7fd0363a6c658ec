//! Property tests over random runs of orders, certificates, repeats, equivocation and
//! crash/reopen of the RocksDB store: supply is conserved, at most one certificate forms
//! per (account, sequence), no balance goes negative, and honest elders converge.

use std::collections::HashMap;
use std::path::PathBuf;

use acre_ledger::store::{MemoryStore, RocksStore, Store};
use acre_ledger::testkit::{key, order_from, LocalCommittee};
use acre_ledger::{AccountId, Allocation, Amount, Certificate, Digest, SignedOrder};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

const ELDERS: usize = 4;
const ACCOUNTS: usize = 4;
const FUNDS: u64 = 10_000;

/// One step of a run. Masks pick which elders a message reaches.
#[derive(Debug, Clone)]
enum Step {
    /// The account pays `percent` of its balance at elder 0 to another account (or, if its
    /// last order is still uncertified, retries that order).
    Pay { from: usize, to: usize, percent: u64, reach: u8, confirm: u8 },
    /// The account signs two orders for its next sequence and splits the elders.
    Equivocate { from: usize, split: u8 },
    /// An old certificate reaches some elders again.
    Redeliver { which: usize, reach: u8 },
    /// An old order reaches some elders again.
    Replay { which: usize, reach: u8 },
    /// An elder's process dies and restarts on its store.
    Crash { elder: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..ACCOUNTS, 1..ACCOUNTS, 1..=100u64, any::<u8>(), any::<u8>())
            .prop_map(|(from, offset, percent, reach, confirm)| {
                Step::Pay { from, to: (from + offset) % ACCOUNTS, percent, reach, confirm }
            }),
        1 => (0..ACCOUNTS, any::<u8>()).prop_map(|(from, split)| Step::Equivocate { from, split }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(which, reach)| Step::Redeliver { which, reach }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(which, reach)| Step::Replay { which, reach }),
        1 => (0..ELDERS).prop_map(|elder| Step::Crash { elder }),
    ]
}

fn elders_in(mask: u8) -> Vec<usize> {
    (0..ELDERS).filter(|i| mask & (1 << i) != 0).collect()
}

/// The run's world: a committee, the clients' keys, and everything said so far.
struct Run<S: Store> {
    committee: LocalCommittee<S>,
    clients: Vec<SigningKey>,
    /// Per account: the next sequence to sign and the order at it not yet certified.
    next: Vec<(u64, Option<SignedOrder>)>,
    orders: Vec<SignedOrder>,
    certificates: Vec<Certificate>,
    /// The one certificate seen per (account, sequence).
    certified: HashMap<(AccountId, u64), Digest>,
    /// Turns an elder's closed store into the store it restarts on.
    reopen: Box<dyn FnMut(usize, S) -> S>,
}

impl<S: Store> Run<S> {
    fn new(committee: LocalCommittee<S>, reopen: Box<dyn FnMut(usize, S) -> S>) -> Self {
        let clients: Vec<SigningKey> = (0..ACCOUNTS as u64).map(|i| key(500, i)).collect();
        let mut run = Run {
            committee,
            next: vec![(0, None); ACCOUNTS],
            clients,
            orders: vec![],
            certificates: vec![],
            certified: HashMap::new(),
            reopen,
        };
        let funds = Amount::from_nanos(FUNDS).expect("amount");
        let allocations: Vec<Allocation> =
            run.clients.iter().map(|k| Allocation { account: AccountId::of(k), amount: funds }).collect();
        run.committee.genesis(&allocations);
        run
    }

    fn send(&mut self, order: &SignedOrder, reach: u8, confirm: u8) {
        self.orders.push(order.clone());
        let (certificate, answers) = self.committee.collect_votes(&elders_in(reach), order);
        for answer in answers.iter().filter_map(|a| a.as_ref().err()) {
            let expected = ["conflicting_order", "unexpected_sequence", "insufficient_balance"];
            assert!(expected.contains(&answer.code()), "unexpected refusal {answer:?}");
        }
        let Some(certificate) = certificate else { return };
        let key = (certificate.order.from, certificate.order.sequence);
        let earlier = self.certified.insert(key, certificate.id());
        assert!(earlier.is_none_or(|id| id == certificate.id()), "two certificates for {key:?}");
        let sender = self.clients.iter().position(|k| AccountId::of(k) == certificate.order.from).expect("client");
        if self.next[sender].0 == certificate.order.sequence {
            self.next[sender] = (certificate.order.sequence + 1, None);
        }
        self.certificates.push(certificate.clone());
        self.deliver(&certificate, confirm);
    }

    fn deliver(&mut self, certificate: &Certificate, reach: u8) {
        for index in elders_in(reach) {
            if let Err(error) = self.committee.members[index].elder.handle_certificate(certificate) {
                assert!(error.is_retryable(), "a valid certificate was refused for good: {error:?}");
            }
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Pay { from, to, percent, reach, confirm } => {
                let order = match &self.next[from] {
                    (_, Some(stuck)) => stuck.clone(),
                    (sequence, None) => {
                        let state = self.committee.members[0].elder.state();
                        let balance =
                            state.account(&AccountId::of(&self.clients[from])).map_or(0, |a| a.balance.nanos());
                        let nanos = (balance * percent / 100).max(1);
                        let order = order_from(
                            &self.committee.network(),
                            &self.clients[from],
                            &self.clients[to],
                            nanos,
                            *sequence,
                        );
                        self.next[from].1 = Some(order.clone());
                        order
                    }
                };
                self.send(&order, reach, confirm);
            }
            Step::Equivocate { from, split } => {
                let sequence = self.next[from].0;
                let one = order_from(
                    &self.committee.network(),
                    &self.clients[from],
                    &self.clients[(from + 1) % ACCOUNTS],
                    7,
                    sequence,
                );
                let other = order_from(
                    &self.committee.network(),
                    &self.clients[from],
                    &self.clients[(from + 2) % ACCOUNTS],
                    7,
                    sequence,
                );
                self.next[from].1 = Some(one.clone());
                self.send(&one, split, 0xff);
                self.send(&other, !split, 0xff);
            }
            Step::Redeliver { which, reach } if !self.certificates.is_empty() => {
                let certificate = self.certificates[which % self.certificates.len()].clone();
                self.deliver(&certificate, reach);
            }
            Step::Replay { which, reach } if !self.orders.is_empty() => {
                let order = self.orders[which % self.orders.len()].clone();
                self.send(&order, reach, 0);
            }
            Step::Crash { elder } => {
                let before = self.committee.members[elder].elder.state().clone();
                let reopen = &mut self.reopen;
                self.committee.restart(elder, |store| reopen(elder, store));
                let after = self.committee.members[elder].elder.state();
                assert_eq!(before.state_hash(), after.state_hash(), "acknowledged state lost in a crash");
                for client in &self.clients {
                    let id = AccountId::of(client);
                    assert_eq!(before.pending(&id), after.pending(&id), "a vote lock was lost in a crash");
                }
            }
            Step::Redeliver { .. } | Step::Replay { .. } => {}
        }
        self.check_invariants();
    }

    /// Supply is conserved at every elder. (No balance can be negative: amounts are
    /// unsigned and every debit is checked, so an overdraft would be a refusal above.)
    fn check_invariants(&self) {
        let genesis = Amount::from_nanos(FUNDS * ACCOUNTS as u64).expect("amount");
        for member in &self.committee.members {
            assert_eq!(member.elder.state().circulating(), Some(genesis), "supply is not conserved");
        }
    }

    /// Delivers every certificate to every elder until nothing changes: what a node's
    /// catch-up does. Then all elders must agree.
    fn settle(&mut self) {
        for _ in 0..=self.certificates.len() {
            let before: Vec<Digest> = self.committee.members.iter().map(|m| m.elder.state().state_hash()).collect();
            for certificate in self.certificates.clone() {
                self.deliver(&certificate, 0xff);
            }
            let after: Vec<Digest> = self.committee.members.iter().map(|m| m.elder.state().state_hash()).collect();
            if before == after {
                break;
            }
        }
        let hashes: Vec<Digest> = self.committee.members.iter().map(|m| m.elder.state().state_hash()).collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "honest elders diverged: {hashes:?}");
        for member in &self.committee.members {
            for client in &self.clients {
                let id = AccountId::of(client);
                let applied = self.certified.keys().filter(|(account, _)| *account == id).count() as u64;
                assert_eq!(member.elder.state().account(&id).map(|a| a.next_sequence), Some(applied));
            }
        }
        self.check_invariants();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn ledger_invariants_hold_in_memory(steps in prop::collection::vec(step(), 1..60)) {
        let committee = LocalCommittee::in_memory(ELDERS, 3);
        // A memory store stands for a disk that survives the crash.
        let mut run = Run::new(committee, Box::new(|_, store: MemoryStore| store));
        for step in steps {
            run.step(step);
        }
        run.settle();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn ledger_invariants_hold_on_rocksdb_across_crashes(steps in prop::collection::vec(step(), 1..40)) {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs: Vec<PathBuf> = (0..ELDERS).map(|i| root.path().join(format!("elder-{i}"))).collect();
        let committee = LocalCommittee::new(ELDERS, 3, |i| RocksStore::open(&dirs[i]).expect("open"));
        let reopen = move |index: usize, store: RocksStore| {
            // RocksDB holds one handle per directory: close the old one as a dead process
            // would, without a flush, then open the directory again.
            drop(store);
            RocksStore::open(&dirs[index]).expect("reopen")
        };
        let mut run = Run::new(committee, Box::new(reopen));
        for step in steps {
            run.step(step);
        }
        run.settle();
    }
}
