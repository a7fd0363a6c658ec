//! Epoch records from the section's agreed state, applied to elders' ledgers on RocksDB:
//! rewards reach farmers' reward addresses, the pool pays out what it collected, supply
//! is genesis plus mints after every epoch, and a record applies exactly once — across
//! a restart too.

use std::collections::BTreeSet;

use acre_ledger::economics::pool_account;
use acre_ledger::epoch::{EpochRecord, EpochReport, Verdict};
use acre_ledger::section_state::{SectionChange, SectionEvent, SectionState};
use acre_ledger::store::RocksStore;
use acre_ledger::testkit::key;
use acre_ledger::{AccountId, Allocation, Amount, Committee, Digest, DurableElder, LedgerError};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

/// Four elders who are also the farmers, each with its own reward address.
struct Section {
    elder_keys: Vec<SigningKey>,
    rewards: Vec<AccountId>,
    state: SectionState,
    pool: AccountId,
    genesis: Vec<Allocation>,
}

impl Section {
    fn new(pool_credits: u64) -> Self {
        let elder_keys: Vec<SigningKey> = (0..4).map(|i| key(60, i)).collect();
        let rewards: Vec<AccountId> = (0..4).map(|i| AccountId::of(&key(61, i))).collect();
        let founders: Vec<(AccountId, AccountId)> =
            elder_keys.iter().zip(&rewards).map(|(k, r)| (AccountId::of(k), *r)).collect();
        let pool = pool_account("");
        let genesis = vec![
            Allocation { account: pool, amount: Amount::from_credits(pool_credits).expect("amount") },
            Allocation { account: AccountId::of(&key(62, 0)), amount: Amount::from_credits(1_000).expect("amount") },
        ];
        let total = genesis.iter().try_fold(Amount::ZERO, |sum, a| sum.checked_add(a.amount)).expect("total");
        // Four members and four copies of each chunk: every farmer holds all of them.
        let chunks = (1..=4u8).map(|n| (acre_proofs::ChunkAddress([n; 32]), 1 << 20));
        let state = SectionState::new(acre_ledger::Digest::default(), &founders, total).with_chunks(chunks);
        Section { elder_keys, rewards, state, pool, genesis }
    }

    fn elder(&self, dir: &std::path::Path) -> DurableElder<RocksStore> {
        let committee = Committee::new(self.elder_keys.iter().map(AccountId::of)).expect("committee");
        let store = RocksStore::open(dir).expect("store");
        let mut elder = DurableElder::open(committee, self.elder_keys[0].clone(), store).expect("open");
        elder.genesis(self.genesis.clone()).expect("genesis");
        elder
    }

    /// Every elder reports, for the open epoch, that each farmer in `passes` proved that
    /// many of 4 challenges (farmers not named proved none); the record.
    fn close(&mut self, passes: &[(usize, u32)]) -> EpochRecord {
        let epoch = self.state.epoch();
        let mut closed = None;
        for elder in &self.elder_keys {
            let verdicts = passes
                .iter()
                .map(|&(farmer, passed)| Verdict {
                    holder: AccountId::of(&self.elder_keys[farmer]),
                    sampled: 4,
                    passed,
                })
                .collect();
            let report = EpochReport {
                elder: AccountId::of(elder),
                epoch,
                verdicts,
                usage: Default::default(),
                beacon: Default::default(),
            };
            if let SectionChange::Closed(record) = self.state.apply(&SectionEvent::Report(report)) {
                closed = Some(record);
            }
        }
        closed.expect("a quorum of reports closes the epoch")
    }
}

fn supply_holds(elder: &DurableElder<RocksStore>, genesis: &[Allocation]) -> bool {
    let genesis: u64 = genesis.iter().map(|a| a.amount.nanos()).sum();
    elder.state().circulating().map(Amount::nanos) == Some(genesis + elder.state().minted().nanos())
}

#[test]
fn rewards_reach_farmers_once_and_supply_is_genesis_plus_mints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut section = Section::new(5);
    let collected = Amount::from_credits(5).expect("amount");
    section.state.apply(&SectionEvent::PoolPayment {
        id: Digest([3; 32]),
        amount: collected,
        app_fee: None,
        chunks: Vec::new(),
    });
    let record = section.close(&[(0, 2), (1, 4)]);
    assert_eq!(record.from_pool, collected);
    assert_eq!(record.items.len(), 2);

    let mut elder = section.elder(dir.path());
    let applied = elder.handle_epoch(&record, &section.pool, &[]).expect("apply");
    assert_eq!(applied, record.id());
    let reward =
        |elder: &DurableElder<RocksStore>, i: usize| elder.state().account(&section.rewards[i]).map(|a| a.balance);
    for (farmer, reward_address) in section.elder_keys.iter().zip(&section.rewards).take(2) {
        let item = record.items.iter().find(|i| i.farmer == AccountId::of(farmer)).expect("an item");
        assert_eq!(item.reward_address, *reward_address);
        assert_eq!(elder.state().account(reward_address).map(|a| a.balance), Some(item.amount));
    }
    assert!(
        reward(&elder, 1) > reward(&elder, 0),
        "a farmer that proved all it holds earns more than one that proved half"
    );
    assert_eq!(elder.state().account(&section.pool).map(|a| a.balance), Some(Amount::ZERO), "the pool paid out");
    assert!(supply_holds(&elder, &section.genesis));

    // Exactly once: the same record changes nothing, another for that epoch is refused.
    let before = elder.state().state_hash();
    elder.handle_epoch(&record, &section.pool, &[]).expect("a repeat");
    assert_eq!(elder.state().state_hash(), before);
    let mut forged = record.clone();
    forged.items[0].reward_address = AccountId::of(&key(63, 0));
    assert_eq!(
        elder.handle_epoch(&forged, &section.pool, &[]),
        Err(LedgerError::EpochConflict { epoch: record.epoch })
    );

    // And after a restart.
    drop(elder);
    let committee = Committee::new(section.elder_keys.iter().map(AccountId::of)).expect("committee");
    let mut elder =
        DurableElder::open(committee, section.elder_keys[0].clone(), RocksStore::open(dir.path()).expect("reopen"))
            .expect("open");
    assert_eq!(elder.state().state_hash(), before);
    elder.handle_epoch(&record, &section.pool, &[]).expect("a repeat after restart");
    assert_eq!(elder.state().state_hash(), before);
    assert!(supply_holds(&elder, &section.genesis));
    let history = elder.history(&section.rewards[0], 0, 10).expect("history");
    assert_eq!(history.len(), 1, "one itemised reward");
}

#[test]
fn a_record_whose_items_do_not_add_up_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut section = Section::new(1);
    let mut record = section.close(&[(0, 4)]);
    let mut elder = section.elder(dir.path());
    record.items[0].amount = Amount::from_nanos(record.items[0].amount.nanos() + 1).expect("amount");
    assert!(elder.handle_epoch(&record, &section.pool, &[]).is_err());
    assert!(elder.state().epochs().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Over random epochs of proofs and payments, every elder that applies the records
    /// keeps supply = genesis + mints, and the records' mints never pass the cap.
    #[test]
    fn supply_is_genesis_plus_mints_after_every_epoch(
        epochs in proptest::collection::vec((proptest::collection::vec((0usize..4, 0u32..=4), 0..10), 0u64..3), 1..12),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut section = Section::new(100);
        let mut elder = section.elder(dir.path());
        let mut paid = 0u8;
        let (mut minted, mut closed) = (0u64, BTreeSet::new());
        for (passes, payment) in epochs {
            if payment > 0 {
                paid += 1;
                let amount = Amount::from_credits(payment).expect("amount");
                let payment = SectionEvent::PoolPayment { id: Digest([paid; 32]), amount, app_fee: None, chunks: Vec::new() };
                section.state.apply(&payment);
            }
            let record = section.close(&passes);
            elder.handle_epoch(&record, &section.pool, &[]).expect("apply");
            prop_assert!(supply_holds(&elder, &section.genesis));
            minted += record.minted.nanos();
            prop_assert_eq!(elder.state().minted().nanos(), minted);
            prop_assert!(closed.insert(record.epoch), "epoch {} closed twice", record.epoch);
        }
    }
}
