//! The deterministic simulator at section sizes from 50 to 500 members, without faults:
//! every node runs the real section machine and ledger, so the wall-clock cost of one
//! node through one epoch says what a member's share of a section costs, and how that
//! share grows with the section.
//!
//! `cargo run --release -p acre-benches --bin sim-bench`
//!
//! Prints, per size, simulated node-epochs per second of wall time and the cost of one
//! node-epoch, in µs and in strict ed25519 verifications measured in the same run; then
//! the cost per node-epoch at 500 members over that at 50 (1.00: a member costs the same
//! whatever the section's size; above, something each member does grows with the
//! section — following the elders' outcomes, whose reports list every member's chunks,
//! and applying every certificate).

use std::time::{Duration, Instant};

use acre_benches::CryptoLimits;
use acre_sim::{run, SimConfig};
use anyhow::{ensure, Result};

const MEMBERS: [usize; 4] = [50, 100, 200, 500];
const EPOCHS: u64 = 3;
const SEED: u64 = 1;
const CRYPTO_TIME: Duration = Duration::from_millis(500);

fn main() -> Result<()> {
    let limits = CryptoLimits::measure(CRYPTO_TIME);
    let defaults = SimConfig::new(MEMBERS[0], EPOCHS, SEED);
    println!(
        "acre sim-bench: {EPOCHS} epochs of {} s simulated, no faults, {} wallets, seed {SEED}, one core",
        defaults.epoch_ms / 1000,
        defaults.wallets
    );
    println!("ed25519 verify (strict)      {:>10.0} /s", limits.verifies);
    println!("\nmembers   node-epochs/s   µs per node-epoch   in verifies   events/s    simulated/wall   wall");
    let mut costs = Vec::new();
    for members in MEMBERS {
        let started = Instant::now();
        let report = run(SimConfig::new(members, EPOCHS, SEED));
        let wall = started.elapsed().as_secs_f64();
        ensure!(report.holds(), "{members} members: {:?}", report.problems());
        let node_epochs = (members as u64 * report.epochs_closed) as f64;
        let micros = wall * 1e6 / node_epochs;
        println!(
            "{members:>7}   {:>13.0}   {micros:>17.0}   {:>11.1}   {:>8.0}   {:>14.1}   {wall:>5.1} s",
            node_epochs / wall,
            micros * limits.verifies / 1e6,
            report.events as f64 / wall,
            report.sim_time_ms as f64 / 1000.0 / wall,
        );
        costs.push(micros);
    }
    if let (Some(first), Some(last)) = (costs.first(), costs.last()) {
        println!(
            "\ncost per node-epoch at {} members / at {}: {:.2}   (1.00: a member costs the same at any size)",
            MEMBERS[MEMBERS.len() - 1],
            MEMBERS[0],
            last / first
        );
    }
    Ok(())
}
