//! Whole transfers through the JSON API of a devnet of real node processes, driven by
//! concurrent wallets, beside the in-process committee figure measured in the same run.
//!
//! `cargo run --release -p acre-benches --bin transfer-bench [-- SECONDS_PER_LOAD]`
//!
//! It first measures the floor under a lone transfer (one libp2p round trip plus one synced
//! vote commit, `TransferFloor`). For 4 and then 7 nodes it prints: each node's resident
//! memory once started and idle; a lone wallet's latency (unloaded) beside that floor and
//! beside the floor with every elder syncing at once on this one disk
//! (`shared_disk_commit`); then, for rising numbers of concurrent wallets, confirmed
//! transfers/s with latency p50/p99; and the best rate as a ratio to `committee_transfers`
//! (the same protocol with all elders in one process).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acre_api::devnet::Manifest;
use acre_benches::{committee_transfers, shared_disk_commit, sibling_binary, CpuTime, TransferFloor};
use acre_ledger::testkit::key;
use acre_ledger::{AccountId, Amount, TransferOrder};
use acre_tests::DevnetProcess;
use acre_wallet::client::NodeClient;
use acre_wallet::keystore::{KdfParams, Keystore};
use anyhow::{bail, ensure, Context, Result};
use ed25519_dalek::SigningKey;

/// Concurrent wallets at each load step after the lone one.
const LOADS: [usize; 4] = [4, 16, 48, 96];

fn main() -> Result<()> {
    let seconds: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(6);
    let per_load = Duration::from_secs(seconds);
    println!("acre transfer-bench: devnets of real processes on 127.0.0.1, {seconds}s per load");
    let started = CpuTime::now();
    let floor = TransferFloor::measure(200)?;
    println!(
        "floor, this run: libp2p round trip p50 {:.2} ms + synced vote commit p50 {:.2} ms = {:.2} ms",
        floor.round_trip.as_secs_f64() * 1e3,
        floor.commit.as_secs_f64() * 1e3,
        floor.total().as_secs_f64() * 1e3
    );
    for nodes in [4, 7] {
        let in_process = committee_transfers(nodes, 2_000, 64)?;
        println!(
            "\n{nodes} nodes; in-process committee of {nodes} (ledger-bench's figure, this run): {in_process:.0}/s"
        );
        // The devnet's elders sync on one disk; the quorum's commits queue there.
        let quorum = nodes - (nodes - 1) / 3;
        let shared = floor.round_trip + shared_disk_commit(200, nodes, quorum)?;
        let outcome = devnet_run(nodes, per_load)?;
        let ratio = outcome.peak / in_process;
        let over_floor = outcome.lone_p50.as_secs_f64() / floor.total().as_secs_f64();
        let over_shared = outcome.lone_p50.as_secs_f64() / shared.as_secs_f64();
        println!(
            "  floor with {nodes} elders syncing on this one disk: round trip + the commit a quorum \
             ({quorum} of {nodes} at once) waits for = {:.2} ms; lone p50 = {over_shared:.2} of it",
            shared.as_secs_f64() * 1e3
        );
        println!(
            "  peak {:.0} transfers/s = {ratio:.2} of in-process   (target >= 0.70)\n  \
             lone transfer p50 {:.2} ms = {over_floor:.2} of the floor   (target <= 1.5; < 3 ms on 4 nodes), \
             p99 {:.2} ms\n  \
             p99 at peak {:.1} ms   (target < 50 ms)",
            outcome.peak,
            outcome.lone_p50.as_secs_f64() * 1e3,
            outcome.lone_p99.as_secs_f64() * 1e3,
            outcome.p99_at_peak.as_secs_f64() * 1e3,
        );
    }
    if let Some(stolen) = started.and_then(CpuTime::stolen_since) {
        println!("\nCPU time the host took from this machine during the run (steal): {:.0}%", stolen * 100.0);
    }
    Ok(())
}

struct Outcome {
    peak: f64,
    p99_at_peak: Duration,
    lone_p50: Duration,
    lone_p99: Duration,
}

fn devnet_run(nodes: usize, per_load: Duration) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let mut devnet = DevnetProcess::start(&sibling_binary("acre-node")?, dir.path(), nodes);
    let manifest = Manifest::read(dir.path())?;
    let clients = manifest.nodes.iter().map(|node| NodeClient::new(&node.api)).collect::<Result<Vec<_>, _>>()?;
    wait_until_connected(&clients[0], nodes)?;

    let rss: Vec<String> = manifest
        .nodes
        .iter()
        .map(|n| resident_kib(n.pid).map(|k| format!("{:.1}", k as f64 / 1024.0)))
        .collect::<Result<_>>()?;
    println!("  idle resident memory per node (MiB): {}   (target < 30)", rss.join(", "));

    let wallets: Vec<SigningKey> =
        (0..*LOADS.iter().max().unwrap_or(&1) as u64).map(|i| key(900 + nodes as u64, i)).collect();
    fund(&manifest, &clients[0], &wallets)?;
    let mut sequences = vec![0u64; wallets.len()];

    let handed_before = LoneStages::scrape(&manifest.nodes[0].api)?.handed_over;
    let lone = drive(&clients, &wallets[..1], &mut sequences, per_load.min(Duration::from_secs(3)))?;
    let (lone_p50, lone_p99) = (lone.percentile(0.50), lone.percentile(0.99));
    // The lone wallet talks to the first node only: its figures are the lone transfers'.
    let stages = LoneStages::scrape(&manifest.nodes[0].api)?;
    let answering = LoneStages::answering(&manifest.nodes[1].api)?;
    println!(
        "  lone transfer at the node it was sent to, p50: votes gathered {:.2} ms, then applied here \
         {:.2} ms; a group commit there {:.2} ms; the API and the wallet the rest of {:.2} ms\n  \
         a vote, p50: this node's own {:.2} ms; another elder's {:.2} ms, of which answering there {:.2} ms \
         (a ledger request's round trip at this node's swarm {:.2} ms)\n  \
         elders handed certificates they lacked before voting: {:.2} per lone transfer",
        stages.votes * 1e3,
        stages.applied * 1e3,
        stages.group * 1e3,
        lone_p50.as_secs_f64() * 1e3,
        stages.own_vote * 1e3,
        stages.remote_vote * 1e3,
        answering * 1e3,
        stages.on_wire * 1e3,
        (stages.handed_over - handed_before) / lone.latencies.len().max(1) as f64,
    );
    println!("  wallets   transfers/s      p50 ms      p99 ms");
    lone.print(1);
    let mut peak = (0.0, Duration::ZERO);
    for load in LOADS {
        let round = drive(&clients, &wallets[..load], &mut sequences, per_load)?;
        round.print(load);
        if round.rate() > peak.0 {
            peak = (round.rate(), round.percentile(0.99));
        }
    }
    devnet.stop();
    Ok(Outcome { peak: peak.0, p99_at_peak: peak.1, lone_p50, lone_p99 })
}

/// Where a lone transfer's time goes at the node that certified it, read from that node's
/// own `/metrics` (medians over its last minute): gathering the quorum's votes, applying
/// the certificate durably, and one group commit of its ledger thread.
struct LoneStages {
    votes: f64,
    applied: f64,
    group: f64,
    /// This node's vote, asked of its own ledger.
    own_vote: f64,
    /// Another elder's vote, asked over the network.
    remote_vote: f64,
    /// A ledger request from this node's swarm sending it to the reply reaching the swarm.
    on_wire: f64,
    /// Times so far that an elder lacked a certificate and was handed it before voting.
    handed_over: f64,
}

impl LoneStages {
    fn scrape(api: &str) -> Result<LoneStages> {
        let text = metrics_of(api)?;
        let median = |series: &str| median_in(&text, series);
        let found = text.lines().find(|l| l.split(' ').next() == Some("acre_votes_handed_over_total"));
        // A counter never incremented is not rendered at all.
        let handed_over = found.map_or(Ok(0.0), |line| -> Result<f64> {
            Ok(line.rsplit(' ').next().context("a metrics line without a value")?.parse()?)
        })?;
        Ok(LoneStages {
            handed_over,
            votes: median("acre_certify_seconds{stage=\"votes\"")?,
            applied: median("acre_certify_seconds{stage=\"applied\"")?,
            group: median("acre_ledger_call_seconds{kind=\"group\"")?,
            own_vote: median("acre_vote_seconds{elder=\"local\"")?,
            remote_vote: median("acre_vote_seconds{elder=\"remote\"")?,
            on_wire: median("acre_request_seconds{protocol=\"/acre/ledger/2\"")?,
        })
    }

    /// How long another elder took to answer this node's requests for votes, from their
    /// arrival there to its reply.
    fn answering(api: &str) -> Result<f64> {
        median_in(&metrics_of(api)?, "acre_ledger_answer_seconds{kind=\"orders\"")
    }
}

/// A node's `/metrics` page.
fn metrics_of(api: &str) -> Result<String> {
    Ok(reqwest::blocking::get(format!("{api}/metrics"))?.error_for_status()?.text()?)
}

/// The median of a summary on a `/metrics` page.
fn median_in(text: &str, series: &str) -> Result<f64> {
    let wanted = |l: &&str| l.starts_with(series) && l.contains("quantile=\"0.5\"");
    let found = text.lines().find(wanted).with_context(|| format!("no median of {series} in /metrics"))?;
    Ok(found.rsplit(' ').next().context("a metrics line without a value")?.parse()?)
}

/// Latencies of the transfers confirmed during one load step.
struct Round {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Round {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, fraction: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * fraction) as usize).min(sorted.len().saturating_sub(1));
        sorted.get(index).copied().unwrap_or_default()
    }

    fn print(&self, wallets: usize) {
        println!(
            "  {wallets:>7} {:>13.0} {:>11.2} {:>11.2}",
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3
        );
    }
}

/// Every wallet, on its own thread and talking to its own node (round robin), sends one
/// nano to a sink account, again and again, each transfer waiting for its certificate.
fn drive(clients: &[NodeClient], wallets: &[SigningKey], sequences: &mut [u64], duration: Duration) -> Result<Round> {
    let to = AccountId::of(&key(899, 0));
    let network = clients.first().context("no node to send through")?.section()?.network;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = wallets
            .iter()
            .zip(sequences.iter_mut())
            .enumerate()
            .map(|(index, (wallet, sequence))| {
                let client = &clients[index % clients.len()];
                let stop = Arc::clone(&stop);
                scope.spawn(move || -> Result<Vec<Duration>> {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let order = TransferOrder {
                            network,
                            from: AccountId::of(wallet),
                            to,
                            amount: Amount::from_nanos(1)?,
                            sequence: *sequence,
                            app: None,
                            memo: String::new(),
                            hidden: None,
                        }
                        .sign(wallet);
                        let sent = Instant::now();
                        client.submit_order(&order).with_context(|| format!("transfer at sequence {sequence}"))?;
                        latencies.push(sent.elapsed());
                        *sequence += 1;
                    }
                    Ok(latencies)
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| bail!("a wallet thread panicked"))).collect::<Vec<_>>()
    });
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    Ok(Round { latencies, elapsed })
}

/// One credit from the devnet's faucet to each wallet.
fn fund(manifest: &Manifest, client: &NodeClient, wallets: &[SigningKey]) -> Result<()> {
    let faucet = Keystore::new(&manifest.faucet.keystore, KdfParams::STANDARD)
        .load(&manifest.faucet.key)?
        .unlock(&manifest.faucet.password)?;
    let first = client.account(&manifest.faucet.address)?.context("the faucet has no account")?.next_sequence;
    let network = client.section()?.network;
    for (sequence, wallet) in (first..).zip(wallets) {
        let order = TransferOrder {
            network,
            from: manifest.faucet.address,
            to: AccountId::of(wallet),
            amount: Amount::from_credits(1)?,
            sequence,
            app: None,
            memo: "transfer-bench".to_owned(),
            hidden: None,
        }
        .sign(&faucet);
        client.submit_order(&order)?;
    }
    Ok(())
}

/// Waits until the node sees every other elder connected.
fn wait_until_connected(client: &NodeClient, nodes: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let section = client.section()?;
        if section.elders.iter().filter(|elder| elder.connected).count() >= nodes {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the devnet's elders did not connect");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The resident set of process `pid`, in KiB, from `/proc`.
fn resident_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    Ok(line.split_whitespace().nth(1).context("no VmRSS value")?.parse()?)
}
