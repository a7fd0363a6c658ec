//! `acre-sim`: runs one deterministic simulation of an Acre section and prints its report.
//!
//! `cargo run --release -p acre-sim -- --nodes 7 --epochs 5 --seed 1 --faults all`

use std::process::ExitCode;
use std::time::Instant;

use acre_sim::{FaultSet, SessionReplay, SimConfig};
use anyhow::Result;
use clap::Parser;

/// Simulates N nodes of one section on a seeded clock, network and disks.
#[derive(Debug, Parser)]
#[command(name = "acre-sim", version, about)]
struct Args {
    /// Nodes, all founders; the 7 oldest (by id) are the elders.
    #[arg(long, default_value_t = 7)]
    nodes: usize,
    /// Epochs the section closes before it rests.
    #[arg(long, default_value_t = 5)]
    epochs: u64,
    /// Every random choice follows from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults: a comma list of kill, partition, slow-disk, byzantine; or all, or none.
    #[arg(long, default_value = "none")]
    faults: String,
    /// Byzantine elders (with `byzantine` faults); the default is f = (elders - 1) / 3.
    #[arg(long)]
    byzantine: Option<usize>,
    /// Wallets sending transfers.
    #[arg(long, default_value_t = 6)]
    wallets: usize,
    /// Chance that a message is lost.
    #[arg(long, default_value_t = 0.01)]
    loss: f64,
    /// Epoch length in simulated ms.
    #[arg(long, default_value_t = 10_000)]
    epoch_ms: u64,
    /// Print what happened when: faults, closes, restarts.
    #[arg(long)]
    timeline: bool,
    /// Where an elder back in a session gets what it missed: `log` (the session's log,
    /// while a quorum of its elders is up) or `peers` (only peers still running it).
    #[arg(long, default_value = "log", value_parser = ["log", "peers"])]
    replay: String,
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let mut config = SimConfig::new(args.nodes, args.epochs, args.seed).with_faults(FaultSet::parse(&args.faults)?);
    config.byzantine = args.byzantine;
    config.wallets = args.wallets;
    config.network.loss = args.loss;
    config.epoch_ms = args.epoch_ms;
    config.timeline = args.timeline;
    config.replay = if args.replay == "peers" { SessionReplay::FromPeers } else { SessionReplay::FromLog };
    let started = Instant::now();
    let report = acre_sim::run(config);
    let wall = started.elapsed();
    println!("{report}");
    println!("  wall time     {:.2} s", wall.as_secs_f64());
    let problems = report.problems();
    if problems.is_empty() {
        println!("  every check holds");
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &problems {
            println!("  PROBLEM: {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}
