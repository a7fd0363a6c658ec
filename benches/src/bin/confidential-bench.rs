//! Prints confidential transfers per second on one elder beside the range-proof rates
//! measured in the same run, the proof's size, and what a hidden order costs an elder
//! against a public one.
//!
//! `cargo run --release -p acre-benches --bin confidential-bench [-- ORDERS]`

use std::time::{Duration, Instant};

use acre_benches::{rate, CryptoLimits};
use acre_ledger::confidential::{HiddenAction, HiddenSpend, Opening, RangeProofBytes};
use acre_ledger::store::RocksStore;
use acre_ledger::testkit::{key, order_from};
use acre_ledger::{AccountId, Allocation, Amount, CertificateBuilder, Committee, Digest, DurableElder, SignedOrder};
use anyhow::{ensure, Context, Result};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;

const CRYPTO_TIME: Duration = Duration::from_millis(1500);
/// Orders per group commit, as `ledger-bench` uses.
const GROUP: usize = 64;

fn main() -> Result<()> {
    let count: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(640);
    let limits = CryptoLimits::measure(CRYPTO_TIME);
    let proofs = ProofRates::measure()?;
    println!("acre confidential-bench: {count} orders, one elder on RocksDB, one core, groups of {GROUP}");
    println!("ed25519 verify (strict)            {:>10.0} /s", limits.verifies);
    println!("ed25519 sign                       {:>10.0} /s", limits.signs);
    println!("range proof, 1 value, verify       {:>10.0} /s", proofs.single);
    println!("range proof, 2 values, verify      {:>10.0} /s   (one aggregated proof)", proofs.aggregated);
    println!("range proof, 2 single proofs       {:>10.0} pairs/s", proofs.single / 2.0);
    println!("range proof, 2 values, prove       {:>10.0} /s", proofs.proving);
    println!(
        "proof size, 2 values               {:>10} bytes   ({} bytes as two single proofs)",
        proofs.aggregated_bytes,
        2 * proofs.single_bytes
    );

    let bench = Bench::new(count)?;
    println!(
        "hidden transfer order              {:>10} bytes of JSON   (public: {})",
        bench.hidden_size, bench.public_size
    );
    let public = bench.run(&bench.public)?;
    let hidden = bench.run(&bench.hidden)?;
    // What an elder must do for each hidden order: check the owner's signature and the
    // aggregated proof, and sign its vote.
    let bound = 1.0 / (1.0 / proofs.aggregated + 1.0 / limits.verifies + 1.0 / limits.signs);
    println!("\none elder, orders voted durably (bound: 1 aggregated proof + 1 verify + 1 sign = {bound:.0}/s)");
    println!("  public transfers                 {public:>10.0} /s   {:>8.1} µs each", 1e6 / public);
    println!(
        "  confidential transfers           {hidden:>10.0} /s   {:>8.1} µs each   ratio to bound {:.2}   (target >= 0.70)",
        1e6 / hidden,
        hidden / bound
    );
    println!("  confidential / public            {:>10.2}", hidden / public);
    Ok(())
}

/// Range-proof rates on one core, measured now.
struct ProofRates {
    single: f64,
    aggregated: f64,
    proving: f64,
    single_bytes: usize,
    aggregated_bytes: usize,
}

impl ProofRates {
    fn measure() -> Result<Self> {
        let network = Digest([1; 32]);
        let statement = Digest([2; 32]);
        let values = [Opening::random(5_000, &mut OsRng), Opening::random(123_456, &mut OsRng)];
        let single = RangeProofBytes::prove(&network, &statement, &values[..1])?;
        let aggregated = RangeProofBytes::prove(&network, &statement, &values)?;
        let commitments = values.map(|opening| acre_ledger::confidential::Commitment::of(&opening));
        let single_rate = rate(1, CRYPTO_TIME, || {
            assert!(single.verify(&network, &statement, &commitments[..1]).is_ok());
        });
        let aggregated_rate = rate(1, CRYPTO_TIME, || {
            assert!(aggregated.verify(&network, &statement, &commitments).is_ok());
        });
        let proving = rate(1, CRYPTO_TIME, || {
            assert!(RangeProofBytes::prove(&network, &statement, &values).is_ok());
        });
        Ok(ProofRates {
            single: single_rate,
            aggregated: aggregated_rate,
            proving,
            single_bytes: single.0.len(),
            aggregated_bytes: aggregated.0.len(),
        })
    }
}

/// Accounts with one shield, one public and one hidden order each, and a single-elder
/// committee that applies the shields afresh for every run.
struct Bench {
    elder: SigningKey,
    committee: Committee,
    allocations: Vec<Allocation>,
    shields: Vec<SignedOrder>,
    public: Vec<SignedOrder>,
    hidden: Vec<SignedOrder>,
    public_size: usize,
    hidden_size: usize,
}

impl Bench {
    fn new(count: u64) -> Result<Self> {
        let elder = key(60, 0);
        let committee = Committee::new([AccountId::of(&elder)])?;
        let clients: Vec<SigningKey> = (0..count).map(|i| key(61, i)).collect();
        let sink = key(62, 0);
        let amount = Amount::from_credits(100)?;
        let allocations: Vec<Allocation> =
            clients.iter().map(|k| Allocation { account: AccountId::of(k), amount }).collect();
        let network = acre_ledger::network_id(&committee, &allocations);
        let (mut shields, mut hidden, mut public) = (Vec::new(), Vec::new(), Vec::new());
        for client in &clients {
            let spend = |sequence, spendable, action| HiddenSpend::new(client, network, sequence, spendable, action);
            let shield = HiddenAction::Shield { amount: Amount::from_credits(50)? };
            let (shield, held) = spend(0, Opening::ZERO, shield).build(&mut OsRng)?;
            shields.push(shield.sign(client));
            let transfer = HiddenAction::Transfer { to: AccountId::of(&sink), amount: Amount::from_credits(7)? };
            hidden.push(spend(1, held, transfer).build(&mut OsRng)?.0.sign(client));
            public.push(order_from(&network, client, &sink, 1_000, 1));
        }
        let public_size = serde_json::to_vec(&public[0])?.len();
        let hidden_size = serde_json::to_vec(&hidden[0])?.len();
        Ok(Bench { elder, committee, allocations, shields, public, hidden, public_size, hidden_size })
    }

    /// Orders per second voted durably, in group commits of [`GROUP`], by a fresh elder on
    /// RocksDB that has applied every shield.
    fn run(&self, orders: &[SignedOrder]) -> Result<f64> {
        let dir = tempfile::tempdir()?;
        let mut elder = DurableElder::open(self.committee.clone(), self.elder.clone(), RocksStore::open(dir.path())?)?;
        elder.genesis(self.allocations.clone())?;
        for shield in &self.shields {
            let vote = elder.handle_order(shield)?;
            let mut builder = CertificateBuilder::new(self.committee.clone(), shield.order.clone());
            let certificate = builder.add(&vote)?.context("a one-elder quorum")?;
            elder.handle_certificate(&certificate)?;
        }
        let start = Instant::now();
        let mut voted = 0;
        for group in orders.chunks(GROUP) {
            voted += elder.handle_orders(group).iter().filter(|vote| vote.is_ok()).count();
        }
        let elapsed = start.elapsed();
        ensure!(voted == orders.len(), "only {voted} of {} orders were voted for", orders.len());
        Ok(orders.len() as f64 / elapsed.as_secs_f64())
    }
}
