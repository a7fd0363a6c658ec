//! Prints the ledger's throughput beside the ed25519 limits measured in the same run.
//!
//! `cargo run --release -p acre-benches --bin ledger-bench [-- ACCOUNTS [GROUP]]`

use std::time::{Duration, Instant};

use acre_benches::{committee_transfers, CryptoLimits};
use acre_ledger::store::{Durability, RocksStore, Store};
use acre_ledger::testkit::{key, order_from};
use acre_ledger::{
    AccountId, Allocation, Amount, Certificate, CertificateBuilder, Committee, DurableElder, ElderState, SignedOrder,
    Vote,
};
use anyhow::Result;
use ed25519_dalek::SigningKey;

/// Messages per group commit (one fsync each), unless the second argument says.
const DEFAULT_GROUP: usize = 64;
const CRYPTO_TIME: Duration = Duration::from_millis(1500);

fn main() -> Result<()> {
    let accounts: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(20_000);
    let group: usize = std::env::args().nth(2).map(|a| a.parse()).transpose()?.unwrap_or(DEFAULT_GROUP);
    let limits = CryptoLimits::measure(CRYPTO_TIME);
    println!("acre ledger-bench: {accounts} accounts, one core, groups of {group}");
    println!("ed25519 sign                 {:>10.0} /s", limits.signs);
    println!("ed25519 verify (strict)      {:>10.0} /s", limits.verifies);
    println!("ed25519 batch-64 verify      {:>10.0} signatures/s", limits.batch_verifies);

    let workload = Workload::new(accounts, group);
    let committee = workload.committee.clone();
    let quorum = committee.quorum();

    let order_bound = limits.order_bound();
    let unsynced_orders = workload.orders_unsynced()?;
    let durable_orders = workload.orders_group_committed()?;
    println!("\none elder on RocksDB, orders (bound: 1 verify + 1 sign = {order_bound:.0}/s)");
    report("  unsynced", unsynced_orders, order_bound, None);
    report("  durable, group commit", durable_orders, order_bound, Some(0.70));
    println!("  durable / unsynced           {:>10.2}   (target >= 0.50)", durable_orders / unsynced_orders);

    let certificate_bound = limits.certificate_bound(quorum);
    let certificates = workload.certificates(quorum);
    let unsynced_certificates = workload.certificates_unsynced(&certificates)?;
    let durable_certificates = workload.certificates_group_committed(&certificates)?;
    println!("\none elder on RocksDB, certificates (bound: {quorum} batch-verified votes = {certificate_bound:.0}/s)");
    report("  unsynced", unsynced_certificates, certificate_bound, None);
    report("  durable, group commit", durable_certificates, certificate_bound, Some(0.70));
    println!(
        "  durable / unsynced           {:>10.2}   (target >= 0.50)",
        durable_certificates / unsynced_certificates
    );

    println!("\nin-process committees on RocksDB, whole transfers, all elders on one core");
    for size in [4, 7] {
        let transfers = committee_transfers(size, accounts.min(5_000), group)?;
        let bound = limits.transfer_bound(size, acre_ledger::quorum(size));
        report(&format!("  {size} elders, durable"), transfers, bound, None);
    }
    Ok(())
}

fn report(label: &str, measured: f64, bound: f64, target: Option<f64>) {
    let target = target.map(|t| format!("   (target >= {t:.2})")).unwrap_or_default();
    println!("{label:<30} {measured:>10.0} /s   ratio to bound {:.2}{target}", measured / bound);
}

/// Funded accounts, their pre-signed orders, and a fresh elder for each run.
struct Workload {
    elder_keys: Vec<SigningKey>,
    committee: Committee,
    allocations: Vec<Allocation>,
    orders: Vec<SignedOrder>,
    group: usize,
}

impl Workload {
    fn new(accounts: u64, group: usize) -> Self {
        let elder_keys: Vec<SigningKey> = (0..4).map(|i| key(1, i)).collect();
        let committee = Committee::new(elder_keys.iter().map(AccountId::of)).unwrap_or_else(|e| panic!("{e}"));
        let sink = key(3, 0);
        let clients: Vec<SigningKey> = (0..accounts).map(|i| key(2, i)).collect();
        let amount = Amount::from_credits(100).unwrap_or(Amount::MAX);
        let allocations: Vec<Allocation> =
            clients.iter().map(|k| Allocation { account: AccountId::of(k), amount }).collect();
        let network = acre_ledger::network_id(&committee, &allocations);
        let orders = clients.iter().map(|k| order_from(&network, k, &sink, 1_000, 0)).collect();
        Workload { elder_keys, committee, allocations, orders, group }
    }

    fn fresh_elder(&self) -> Result<(tempfile::TempDir, DurableElder<RocksStore>)> {
        let dir = tempfile::tempdir()?;
        let store = RocksStore::open(dir.path())?;
        let mut elder = DurableElder::open(self.committee.clone(), self.elder_keys[0].clone(), store)?;
        elder.genesis(self.allocations.clone())?;
        Ok((dir, elder))
    }

    /// Each order's writes committed without sync: the store's speed without the disk's.
    fn orders_unsynced(&self) -> Result<f64> {
        let (_dir, elder) = self.fresh_elder()?;
        let mut store = elder.into_store();
        let mut state = ElderState::recover(self.committee.clone(), self.elder_keys[0].clone(), &store)?;
        let start = Instant::now();
        for order in &self.orders {
            let effects = state.handle_order(order)?;
            store.commit(&effects.writes, Durability::Buffered)?;
            state.apply(&effects.writes);
        }
        Ok(self.orders.len() as f64 / start.elapsed().as_secs_f64())
    }

    /// Orders in groups, each group's locks synced once before its votes are released.
    fn orders_group_committed(&self) -> Result<f64> {
        let (_dir, mut elder) = self.fresh_elder()?;
        let start = Instant::now();
        for group in self.orders.chunks(self.group) {
            for vote in elder.handle_orders(group) {
                vote?;
            }
        }
        Ok(self.orders.len() as f64 / start.elapsed().as_secs_f64())
    }

    fn certificates(&self, quorum: usize) -> Vec<Certificate> {
        self.orders
            .iter()
            .map(|order| {
                let mut builder = CertificateBuilder::new(self.committee.clone(), order.order.clone());
                let digest = order.order.digest();
                let votes = self.elder_keys[..quorum].iter().map(|k| builder.add(&Vote::sign(k, digest)));
                votes.last().and_then(Result::ok).flatten().unwrap_or_else(|| panic!("no quorum"))
            })
            .collect()
    }

    fn certificates_unsynced(&self, certificates: &[Certificate]) -> Result<f64> {
        let (_dir, elder) = self.fresh_elder()?;
        let mut store = elder.into_store();
        let mut state = ElderState::recover(self.committee.clone(), self.elder_keys[0].clone(), &store)?;
        let start = Instant::now();
        for group in certificates.chunks(self.group) {
            for (certificate, check) in group.iter().zip(self.committee.verify_certificates(group)) {
                check?;
                let effects = state.handle_verified_certificate(certificate)?;
                store.commit(&effects.writes, Durability::Buffered)?;
                state.apply(&effects.writes);
            }
        }
        Ok(certificates.len() as f64 / start.elapsed().as_secs_f64())
    }

    fn certificates_group_committed(&self, certificates: &[Certificate]) -> Result<f64> {
        let (_dir, mut elder) = self.fresh_elder()?;
        let start = Instant::now();
        for group in certificates.chunks(self.group) {
            for confirmation in elder.handle_certificates(group) {
                confirmation?;
            }
        }
        Ok(certificates.len() as f64 / start.elapsed().as_secs_f64())
    }
}
