//! One elder process of a 4-elder committee, fed pre-signed orders and then their
//! certificates over its real libp2p transport by this load process. Prints transfers/s
//! (an order and a certificate each, durable) beside the crypto bound measured in the
//! same run: 1 sign and, batch-verified, the owner's signature and a quorum of votes per
//! transfer; and, if `ACRE_FASTPAY_BENCH` names FastPay's `bench`, FastPay's rate measured
//! just before and after.
//!
//! `cargo build --release --bins && cargo run --release -p acre-benches --bin elder-bench [-- ACCOUNTS [BATCH [IN_FLIGHT]]]`

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acre_benches::{sibling_binary, CryptoLimits};
use acre_core::wire::{Ledger, LedgerReply, LedgerRequest};
use acre_ledger::testkit::{key, order_from};
use acre_ledger::{AccountId, Allocation, Amount, Certificate, CertificateBuilder, Committee, SignedOrder, Vote};
use acre_node::config::genesis::Genesis;
use acre_node::config::{NodeConfig, API_ADDRESS_FILE, CONFIG_FILE, GENESIS_FILE, KEY_FILE};
use acre_node::transport::{peer_id_of, Network, NetworkConfig, NetworkHandle, RefuseAll};
use anyhow::{bail, ensure, Context, Result};
use ed25519_dalek::SigningKey;
use futures::stream::{self, StreamExt};
use libp2p::{identity, Multiaddr, PeerId};

const CRYPTO_TIME: Duration = Duration::from_millis(1500);
/// The environment variable naming FastPay's own `bench` binary, the peer this bench
/// measures itself against in the same run (see `benches/RESULTS.md` for how it is built).
const FASTPAY_BENCH: &str = "ACRE_FASTPAY_BENCH";
/// FastPay's benchmark set up as close to this one as it allows: a committee of 4 over
/// TCP, 2 shards for this machine's 2 cores, 1,000 requests in flight. A cross-shard queue
/// of 1 (its default) stalls its TCP run on this machine, so the queue is deep.
/// How long FastPay's bench may take; a stalled run is an error, not a hang.
const FASTPAY_TIME_LIMIT: Duration = Duration::from_secs(180);
const FASTPAY_ARGS: [&str; 10] = [
    "--committee-size",
    "4",
    "--protocol",
    "tcp",
    "--num-shards",
    "2",
    "--max-in-flight",
    "1000",
    "--cross-shard-queue-size",
    "10000",
];

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let accounts = args.next().transpose()?.unwrap_or(20_000);
    let batch = args.next().transpose()?.unwrap_or(256);
    let in_flight = args.next().transpose()?.unwrap_or(4);
    let fastpay = std::env::var_os(FASTPAY_BENCH).map(std::path::PathBuf::from);
    let fastpay_before = fastpay.as_deref().map(run_fastpay).transpose()?;
    let limits = CryptoLimits::measure(CRYPTO_TIME);
    println!(
        "acre elder-bench: one elder process of 4, {accounts} accounts, batches of {batch}, {in_flight} in flight"
    );
    println!("ed25519 sign                 {:>10.0} /s", limits.signs);
    println!("ed25519 verify (strict)      {:>10.0} /s", limits.verifies);
    println!("ed25519 batch-64 verify      {:>10.0} signatures/s", limits.batch_verifies);

    let elder_keys: Vec<SigningKey> = (0..4).map(|i| key(31, i)).collect();
    let committee = Committee::new(elder_keys.iter().map(AccountId::of))?;
    let quorum = committee.quorum();
    let clients: Vec<SigningKey> = (0..accounts as u64).map(|i| key(32, i)).collect();
    let sink = key(33, 0);
    let amount = Amount::from_credits(100).context("amount")?;
    let allocations: Vec<Allocation> =
        clients.iter().map(|k| Allocation { account: AccountId::of(k), amount }).collect();
    let network = acre_ledger::network_id(&committee, &allocations);
    let orders: Vec<SignedOrder> = clients.iter().map(|k| order_from(&network, k, &sink, 1_000, 0)).collect();
    // The other elders' votes, made ahead: the elder under test is not among them.
    let certificates: Vec<Certificate> = orders
        .iter()
        .map(|order| {
            let mut builder = CertificateBuilder::new(committee.clone(), order.order.clone());
            for elder in &elder_keys[1..=quorum] {
                builder.add(&Vote::sign(elder, order.order.digest()))?;
            }
            builder.certificate().context("no quorum")
        })
        .collect::<Result<_>>()?;

    let dir = tempfile::tempdir()?;
    let genesis = Genesis { elders: committee.members().copied().collect(), allocations };
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
    let elder_address: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse()?;
    let mut node = start_elder(dir.path(), &elder_keys[0], &genesis, &elder_address)?;
    let elder_peer = peer_id_of(&AccountId::of(&elder_keys[0])).context("peer id")?;

    let (network, handle) = Network::new(
        identity::Keypair::generate_ed25519(),
        NetworkConfig {
            listen: vec![],
            bootstrap: vec![elder_address],
            keep_connected: vec![elder_peer],
            request_timeout: Duration::from_secs(120),
        },
    )?;
    tokio::spawn(network.run(RefuseAll));
    wait_connected(&handle, elder_peer, &mut node, dir.path()).await?;

    let started = Instant::now();
    let votes =
        send_all(&handle, elder_peer, orders.chunks(batch).map(|c| LedgerRequest::Orders(c.to_vec())), in_flight)
            .await?;
    let order_time = started.elapsed();
    let started = Instant::now();
    let requests = certificates.chunks(batch).map(|c| LedgerRequest::Certificates(c.to_vec()));
    let confirmations = send_all(&handle, elder_peer, requests, in_flight).await?;
    let certificate_time = started.elapsed();
    let _ = Command::new("kill").args(["-TERM", &node.id().to_string()]).status();
    let _ = node.wait();

    ensure!(votes == accounts, "{votes} of {accounts} orders got a vote");
    ensure!(confirmations == accounts, "{confirmations} of {accounts} certificates applied");
    let orders_per_second = accounts as f64 / order_time.as_secs_f64();
    let certificates_per_second = accounts as f64 / certificate_time.as_secs_f64();
    let transfers = accounts as f64 / (order_time + certificate_time).as_secs_f64();
    // Orders arrive 256 to a request, so the owner's signature is batch-verified too.
    let bound = 1.0 / (1.0 / limits.signs + (1 + quorum) as f64 / limits.batch_verifies);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("\nover libp2p (TCP, noise, yamux) to one elder process, durable group commit");
    println!("  orders                     {orders_per_second:>10.0} /s");
    println!("  certificates               {certificates_per_second:>10.0} /s");
    println!(
        "  transfers (order + cert)   {transfers:>10.0} /s   ratio to one-core bound {:.2}, to {cores}-core bound {:.2}",
        transfers / bound,
        transfers / (bound * cores as f64)
    );
    println!(
        "  one-core bound: 1 sign + 1 order signature and {quorum} votes batch-verified = {bound:.0}/s; the elder and this"
    );
    println!("  load process share the machine's {cores} cores; target >= 8,000/s");
    match (fastpay.as_deref(), fastpay_before) {
        (Some(fastpay), Some(before)) => {
            let after = run_fastpay(fastpay)?;
            let peer = before.max(after);
            println!("\nFastPay's own bench on this machine, just before and after (in memory, no disk)");
            println!("  transfers                  {before:>10.0} /s before, {after:>10.0} /s after");
            println!(
                "  ratio to FastPay's faster run {:.2}   (target >= 2.00; {})",
                transfers / peer,
                FASTPAY_ARGS.join(" ")
            );
        }
        _ => println!("\nFastPay's bench: not measured (set {FASTPAY_BENCH} to its `bench` binary)"),
    }
    Ok(())
}

/// Runs FastPay's `bench` once and returns the transfers/s it reports.
fn run_fastpay(bench: &Path) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("fastpay.log");
    let mut child = Command::new(bench)
        .args(FASTPAY_ARGS)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()
        .with_context(|| format!("running {}", bench.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > FASTPAY_TIME_LIMIT {
            child.kill()?;
            bail!("{} did not finish within {FASTPAY_TIME_LIMIT:?}", bench.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // It logs its result as "... tx/sec: 5320.99" on stderr.
    let log = std::fs::read_to_string(&log_path)?;
    ensure!(status.success(), "{} failed ({status}): {log}", bench.display());
    let rate = log
        .lines()
        .rev()
        .find_map(|line| line.split("tx/sec: ").nth(1))
        .with_context(|| format!("{} printed no tx/sec", bench.display()))?;
    Ok(rate.trim().parse()?)
}

/// Lays out and starts the elder under test, listening at `address`.
fn start_elder(dir: &Path, elder: &SigningKey, genesis: &Genesis, address: &Multiaddr) -> Result<Child> {
    acre_node::config::key::write(&dir.join(KEY_FILE), elder)?;
    std::fs::write(dir.join(GENESIS_FILE), serde_json::to_vec(genesis)?)?;
    let config = NodeConfig {
        api: ([127, 0, 0, 1], 0).into(),
        listen: vec![address.to_string()],
        // The elder should spend its time on the load, not on asking absent peers.
        sync_interval_ms: 3_600_000,
        ..NodeConfig::default()
    };
    std::fs::write(dir.join(CONFIG_FILE), config.to_toml()?)?;
    let binary = sibling_binary("acre-node")?;
    let child = Command::new(&binary)
        .arg("run")
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(child)
}

/// Waits until the elder serves its API (its genesis is applied) and the load process is
/// connected to it.
async fn wait_connected(handle: &NetworkHandle, elder: PeerId, node: &mut Child, dir: &Path) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Some(status) = node.try_wait()? {
            bail!("the elder exited ({status})");
        }
        let api_ready = dir.join(API_ADDRESS_FILE).exists();
        let connected = handle.peers().await?.iter().any(|peer| peer.peer == elder && peer.connected);
        if api_ready && connected {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the elder did not come up")
}

/// Sends every request with up to `in_flight` outstanding; returns the number of
/// messages that succeeded.
async fn send_all(
    handle: &NetworkHandle,
    peer: PeerId,
    requests: impl Iterator<Item = LedgerRequest>,
    in_flight: usize,
) -> Result<usize> {
    let answers: Vec<Result<LedgerReply, _>> = stream::iter(requests)
        .map(|request| async move { handle.request::<Ledger>(peer, &request).await })
        .buffered(in_flight)
        .collect()
        .await;
    let mut succeeded = 0;
    for answer in answers {
        match answer? {
            LedgerReply::Votes(votes) => succeeded += votes.iter().filter(|v| v.is_ok()).count(),
            LedgerReply::Confirmations(done) => succeeded += done.iter().filter(|c| c.is_ok()).count(),
            other => bail!("unexpected answer {other:?}"),
        }
    }
    Ok(succeeded)
}
