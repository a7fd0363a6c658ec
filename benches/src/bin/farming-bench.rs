//! The section log and epochs: 7 elders running the `aleph-bft` sessions in one process
//! (frames over channels, unit backups synced to disk), then a devnet of real processes.
//!
//! `cargo run --release -p acre-benches --bin farming-bench`
//!
//! Prints, each beside a limit measured or configured in the same run:
//! - one event's latency from proposal to being finalized at all 7 elders (the engine's
//!   floor for anything, an epoch close included);
//! - log events/s when every elder proposes at once, against the engine's cap at this
//!   round delay (elders × events per unit ÷ round delay);
//! - epoch close latency with N farmers: from the elders' reports being proposed to the
//!   record at all 7, against the one-event latency;
//! - on a 7-node devnet, after storing `ACRE_BENCH_MIB` MiB (default 64): the bytes the
//!   farmers proved in a closed epoch ÷ the bytes the registry puts on them (goal ≥ 0.95),
//!   and the worst farmer's reward ÷ its fair share of the epoch by bytes held (goal ≥
//!   0.90);
//! - on the same devnet, the time from a holder's SIGKILL to its removal and to every
//!   chunk standing on 4 live holders again, against the configured detection delay.

use std::time::{Duration, Instant};

use acre_api::devnet::Manifest;
use acre_benches::{devnet_wallet, sibling_binary};
use acre_ledger::section_state::{SectionChange, SectionEvent, SectionState};
use acre_ledger::{AccountId, Amount, Digest, EpochReport, Verdict};
use acre_node::driver::engine::{in_memory_networks, run, LogSession, Ordered};
use acre_tests::DevnetProcess;
use acre_wallet::client::NodeClient;
use anyhow::{ensure, Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::channel::oneshot;
use tokio::sync::mpsc;

const ELDERS: usize = 7;
const ROUND_DELAY: Duration = Duration::from_millis(200);
/// Events one unit carries (the glue's `EVENTS_PER_UNIT`).
const EVENTS_PER_UNIT: f64 = 256.0;
/// Farmers in the epoch-close measurements.
const FARMERS: [usize; 3] = [100, 1_000, 5_000];
/// The devnet's settings the repair figure is read against.
const DEVNET_UNRESPONSIVE_AFTER: Duration = Duration::from_secs(20);
const DEVNET_EPOCH: Duration = Duration::from_secs(10);
/// The devnet's audit round: a lost holder is seen at the next one.
const DEVNET_ROUND: Duration = Duration::from_secs(2);

/// Seven elders' sessions of the log in this process.
struct Cluster {
    proposers: Vec<mpsc::Sender<SectionEvent>>,
    outputs: Vec<mpsc::UnboundedReceiver<Ordered<SectionEvent>>>,
    exits: Vec<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(keys: &[SigningKey], session: u64) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let elders: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let (mut proposers, mut outputs, mut exits) = (Vec::new(), Vec::new(), Vec::new());
        for (index, network) in in_memory_networks(keys.len()).into_iter().enumerate() {
            let (propose, pending) = mpsc::channel(1 << 20);
            let (finalized, output) = mpsc::unbounded_channel();
            let (exit, stop) = oneshot::channel();
            let log = LogSession {
                network: acre_ledger::Digest::derive("acre farming-bench network", &[]),
                session,
                signer: keys[index].clone(),
                elders: elders.clone(),
                backup: dir.path().join(format!("backup-{index}")),
                round_delay: ROUND_DELAY,
            };
            tokio::spawn(run(log, network, pending, finalized, stop));
            proposers.push(propose);
            outputs.push(output);
            exits.push(exit);
        }
        Ok(Cluster { proposers, outputs, exits, _dir: dir })
    }

    /// Waits until every elder has finalized `count` more events; returns elder 0's.
    async fn finalized(&mut self, count: usize) -> Result<Vec<Ordered<SectionEvent>>> {
        let mut first = Vec::new();
        for (index, output) in self.outputs.iter_mut().enumerate() {
            for _ in 0..count {
                let event = tokio::time::timeout(Duration::from_secs(300), output.recv())
                    .await
                    .context("an elder finalized nothing for 300 s")?
                    .context("a session stopped")?;
                if index == 0 {
                    first.push(event);
                }
            }
        }
        Ok(first)
    }

    fn stop(self) {
        for exit in self.exits {
            let _ = exit.send(());
        }
    }
}

fn payment(n: u64) -> SectionEvent {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    SectionEvent::PoolPayment {
        id: Digest(id),
        amount: Amount::from_nanos(1).unwrap_or(Amount::ZERO),
        app_fee: None,
        chunks: Vec::new(),
    }
}

fn keys(seed: u8, count: usize) -> Vec<SigningKey> {
    let mut keys: Vec<SigningKey> = (0..count)
        .map(|i| {
            let mut secret = [seed; 32];
            secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&secret)
        })
        .collect();
    keys.sort_by_key(AccountId::of);
    keys
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    println!("acre farming-bench: {ELDERS} elders, rounds of {} ms, unit backups synced", ROUND_DELAY.as_millis());

    let elders = keys(1, ELDERS);
    let mut cluster = Cluster::start(&elders, 1)?;
    let mut latencies = Vec::new();
    for n in 0..7u64 {
        let started = Instant::now();
        cluster.proposers[(n as usize) % ELDERS].send(payment(n)).await?;
        cluster.finalized(1).await?;
        latencies.push(started.elapsed());
    }
    let one_event = median(latencies[1..].to_vec());
    println!("one event, proposed to finalized at all {ELDERS}: median {:.0} ms", one_event.as_secs_f64() * 1e3);

    let per_elder = 20_000u64;
    let started = Instant::now();
    for (index, proposer) in cluster.proposers.iter().enumerate() {
        for n in 0..per_elder {
            proposer.send(payment(1_000_000 + index as u64 * per_elder + n)).await?;
        }
    }
    let total = per_elder as usize * ELDERS;
    cluster.finalized(total).await?;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let cap = ELDERS as f64 * EVENTS_PER_UNIT / ROUND_DELAY.as_secs_f64();
    println!(
        "log events/s, all {ELDERS} proposing {per_elder} each: {rate:.0}/s = {:.2} of the engine's cap {cap:.0}/s \
         ({ELDERS} units of {EVENTS_PER_UNIT} events per round)",
        rate / cap
    );
    cluster.stop();

    println!("\nepoch close, reports of 4 chunks per farmer from every elder:");
    println!("  farmers   close ms   × one event   report bytes");
    for (session, farmers) in FARMERS.into_iter().enumerate() {
        let (elapsed, bytes) = epoch_close(farmers, session as u64 + 2).await?;
        println!(
            "  {farmers:>7}   {:>8.0}   {:>11.2}   {bytes:>12}",
            elapsed.as_secs_f64() * 1e3,
            elapsed.as_secs_f64() / one_event.as_secs_f64()
        );
    }

    let (paid, repair) = tokio::task::spawn_blocking(devnet_repair).await??;
    println!(
        "\npaid for storage on a 7-node devnet, {} MiB stored, epoch {}:\n  \
         proven ÷ held {:.3} (goal ≥ 0.95), worst farmer's reward ÷ fair share {:.3} (goal ≥ 0.90), \
         {} farmers holding {} bytes\n  audit traffic {:.0} KiB per held GiB per epoch (epochs of {} s)",
        paid.stored_mib,
        paid.epoch,
        paid.proven_over_held,
        paid.worst_share,
        paid.farmers,
        paid.held,
        paid.audit_bytes_per_gib / 1024.0,
        DEVNET_EPOCH.as_secs()
    );
    println!(
        "\nrepair on a 7-node devnet (audit rounds of {} s, removal after {} s unreachable, epochs of {} s), {} chunks:\n  \
         on their next 4 live holders {:.1} s after SIGKILL, copied from the round that saw the loss\n  \
         removed {:.1} s after SIGKILL, 4 copies again {:.1} s after it ({:.1} s after the removal) = {:.2} of \
         the removal bound (unresponsive_after + one epoch)",
        DEVNET_ROUND.as_secs(),
        DEVNET_UNRESPONSIVE_AFTER.as_secs(),
        DEVNET_EPOCH.as_secs(),
        repair.chunks,
        repair.stood_in.as_secs_f64(),
        repair.removed.as_secs_f64(),
        repair.repaired.as_secs_f64(),
        (repair.repaired - repair.removed).as_secs_f64(),
        repair.repaired.as_secs_f64() / (DEVNET_UNRESPONSIVE_AFTER + DEVNET_EPOCH).as_secs_f64()
    );
    Ok(())
}

/// Time from all elders proposing their reports on `farmers` farmers to every elder's
/// state closing the epoch, and the size of one report.
async fn epoch_close(farmers: usize, session: u64) -> Result<(Duration, usize)> {
    // All members are founders of one age, so the elders are the 7 smallest ids.
    let all = keys(session as u8 + 10, farmers + ELDERS);
    let elders = &all[..ELDERS];
    let elder_ids: Vec<AccountId> = elders.iter().map(AccountId::of).collect();
    let farmer_ids: Vec<AccountId> = all[ELDERS..].iter().map(AccountId::of).collect();
    let founders: Vec<(AccountId, AccountId)> =
        all.iter().map(|key| (AccountId::of(key), AccountId::of(key))).collect();
    let mut states: Vec<SectionState> =
        (0..ELDERS).map(|_| SectionState::new(acre_ledger::Digest::default(), &founders, Amount::ZERO)).collect();
    let state_elders: Vec<AccountId> = states[0].elders().into_iter().collect();
    let verdicts: Vec<Verdict> =
        farmer_ids.iter().map(|holder| Verdict { holder: *holder, sampled: 16, passed: 16 }).collect();
    let mut cluster = Cluster::start(elders, session)?;
    let mut bytes = 0;
    let started = Instant::now();
    for (index, elder) in elder_ids.iter().enumerate() {
        let report = SectionEvent::Report(EpochReport {
            elder: *elder,
            epoch: 1,
            verdicts: verdicts.clone(),
            usage: Default::default(),
            beacon: Default::default(),
        });
        bytes = encoded_len(&report);
        cluster.proposers[index].send(report).await?;
    }
    let mut closed = [false; ELDERS];
    while closed.iter().any(|c| !c) {
        for (index, output) in cluster.outputs.iter_mut().enumerate() {
            while let Ok(ordered) = output.try_recv() {
                if let SectionChange::Closed(_) = states[index].apply(&ordered.item) {
                    closed[index] = true;
                }
            }
        }
        ensure!(started.elapsed() < Duration::from_secs(300), "the epoch did not close in 300 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    ensure!(state_elders.iter().all(|e| elder_ids.contains(e)), "the bench's elders are the state's");
    let records: Vec<_> = states.iter().map(|s| s.records().cloned().collect::<Vec<_>>()).collect();
    ensure!(records.windows(2).all(|w| w[0] == w[1]), "every elder closed the same record");
    cluster.stop();
    Ok((elapsed, bytes))
}

/// The event's size as JSON, to show how large reports grow.
fn encoded_len(event: &SectionEvent) -> usize {
    serde_json::to_vec(event).map_or(0, |json| json.len())
}

struct Repair {
    chunks: usize,
    /// From SIGKILL until every chunk stood on its next 4 live holders.
    stood_in: Duration,
    removed: Duration,
    repaired: Duration,
}

/// Whether every chunk's file is on each of the 4 live members closest to it: the holders
/// it has once the lost node is removed.
/// `live` gives each member's placement name and data folder.
fn on_next_holders(live: &[([u8; 32], std::path::PathBuf)], addresses: &[acre_proofs::ChunkAddress]) -> bool {
    use acre_proofs::placement::{closest, COPIES};
    let names: Vec<[u8; 32]> = live.iter().map(|(name, _)| *name).collect();
    addresses.iter().all(|address| {
        let hex = address.to_string();
        closest(address, &names, COPIES).iter().all(|name| {
            live.iter()
                .find(|(named, _)| named == name)
                .is_some_and(|(_, dir)| dir.join("chunks").join(&hex[..2]).join(&hex).exists())
        })
    })
}

/// Puts a 16 MiB file on a fresh 7-node devnet, kills a holder with SIGKILL and times its
/// removal and the return of every chunk to 4 live holders.
/// What a closed epoch paid on the devnet against what the farmers hold.
struct Paid {
    stored_mib: usize,
    epoch: u64,
    /// Challenge and proof bytes every elder's audits moved in the epoch, per GiB held.
    audit_bytes_per_gib: f64,
    farmers: usize,
    held: u64,
    proven_over_held: f64,
    worst_share: f64,
}

/// Challenge and proof bytes the devnet's elders have audited with so far, from each
/// node's `/metrics`.
fn audit_bytes(manifest: &Manifest) -> Result<u64> {
    let mut total = 0;
    for node in &manifest.nodes {
        let text = reqwest::blocking::get(format!("{}/metrics", node.api))?.text()?;
        let line = text.lines().find(|line| line.starts_with("acre_audit_bytes_total "));
        total += line.and_then(|line| line.split_whitespace().nth(1)).map_or(Ok(0), str::parse::<u64>)?;
    }
    Ok(total)
}

/// Waits until the registry's duties settle and two more epochs close, then reads the
/// last one: every farmer's proven bytes and reward against the bytes it must hold.
fn paid_for_storage(client: &NodeClient, manifest: &Manifest, stored_mib: usize) -> Result<Paid> {
    let duties = || -> Result<Vec<(AccountId, u64)>> {
        manifest.nodes.iter().map(|node| Ok((node.id, client.farmer(&node.id)?.bytes))).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = duties()?;
    loop {
        std::thread::sleep(DEVNET_EPOCH);
        let now = duties()?;
        if now == last && now.iter().any(|(_, bytes)| *bytes > 0) {
            break;
        }
        ensure!(Instant::now() < deadline, "the registry did not settle");
        last = now;
    }
    let closed = |id: &AccountId| -> Result<u64> {
        Ok(client.statement(id, None, None)?.epochs.last().map_or(0, |line| line.epoch))
    };
    let wait_for = |epoch: u64| -> Result<()> {
        while closed(&manifest.nodes[0].id)? < epoch {
            ensure!(Instant::now() < deadline, "no epoch closed");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    };
    let settled_at = closed(&manifest.nodes[0].id)?;
    wait_for(settled_at + 1)?;
    let audit_bytes_before = audit_bytes(manifest)?;
    wait_for(settled_at + 2)?;
    let audit_bytes = audit_bytes(manifest)?.saturating_sub(audit_bytes_before);
    let epoch = settled_at + 2;
    let duties = duties()?;
    let held: u64 = duties.iter().map(|(_, bytes)| bytes).sum();
    let mut proven = 0u64;
    let mut lines = Vec::new();
    for (id, bytes) in &duties {
        let line = client.statement(id, Some(epoch), Some(epoch))?.epochs.pop().context("the epoch's line")?;
        proven += line.proven_bytes;
        lines.push((*bytes, line.reward.nanos()));
    }
    let paid: u64 = lines.iter().map(|(_, reward)| reward).sum();
    let worst_share = lines
        .iter()
        .filter(|(bytes, _)| *bytes > 0)
        .map(|(bytes, reward)| *reward as f64 / (paid as f64 * *bytes as f64 / held as f64))
        .fold(f64::INFINITY, f64::min);
    Ok(Paid {
        stored_mib,
        epoch,
        audit_bytes_per_gib: audit_bytes as f64 / (held as f64 / f64::from(1u32 << 30)),
        farmers: lines.iter().filter(|(bytes, _)| *bytes > 0).count(),
        held,
        proven_over_held: proven as f64 / held as f64,
        worst_share,
    })
}

fn devnet_repair() -> Result<(Paid, Repair)> {
    let stored_mib: usize = match std::env::var("ACRE_BENCH_MIB") {
        Ok(mib) => mib.parse().context("ACRE_BENCH_MIB is a whole number of MiB")?,
        Err(_) => 64,
    };
    let file_bytes = stored_mib << 20;
    let dir = tempfile::tempdir()?;
    let devnet_dir = dir.path().join("devnet");
    let mut devnet = DevnetProcess::start(&sibling_binary("acre-node")?, &devnet_dir, ELDERS);
    let manifest = Manifest::read(&devnet_dir)?;
    let wallet = devnet_wallet(dir.path().join("keys"), devnet_dir.clone())?;
    let client = NodeClient::new(&manifest.nodes[0].api)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.section().map_or(true, |s| s.elders.iter().filter(|e| e.connected).count() < ELDERS) {
        ensure!(Instant::now() < deadline, "the devnet did not connect");
        std::thread::sleep(Duration::from_millis(100));
    }
    wallet(&["key", "new", "payer"])?;
    wallet(&["faucet", "payer", "1000"])?;
    let mut content = vec![0u8; file_bytes];
    blake3::Hasher::new().update(b"repair bench").finalize_xof().fill(&mut content);
    let file = dir.path().join("file.bin");
    std::fs::write(&file, &content)?;
    wallet(&["--json", "put", file.to_str().context("a UTF-8 path")?, "--from", "payer", "--yes"])?;
    let sealed = acre_proofs::encrypt_file(&content, acre_proofs::Privacy::Convergent)?;
    let addresses: Vec<_> = sealed.chunks.iter().map(|chunk| chunk.address()).collect();
    let paid = paid_for_storage(&client, &manifest, stored_mib)?;

    let holders = client.holders(&addresses[0])?;
    let victim = manifest
        .nodes
        .iter()
        .skip(1)
        .find(|node| holders.holders.iter().any(|h| h.node == node.id))
        .context("a holder other than node 0")?;
    let members = client.members()?.members;
    let name_of =
        |id: &AccountId| members.iter().find(|m| m.node == *id).and_then(|m| m.placement_name).map(|name| name.0);
    let live: Vec<([u8; 32], std::path::PathBuf)> = manifest
        .nodes
        .iter()
        .filter(|n| n.id != victim.id)
        .map(|n| Ok((name_of(&n.id).context("every node is a member")?, n.data_dir.clone())))
        .collect::<Result<_>>()?;
    let killed = Instant::now();
    std::process::Command::new("kill").args(["-KILL", &victim.pid.to_string()]).status()?;
    let mut removed = None;
    let mut stood_in = None;
    loop {
        ensure!(killed.elapsed() < Duration::from_secs(600), "no repair within 600 s");
        if stood_in.is_none() && on_next_holders(&live, &addresses) {
            stood_in = Some(killed.elapsed());
        }
        let member = client.members().map_or(true, |view| view.members.iter().any(|m| m.node == victim.id));
        if removed.is_none() && !member {
            removed = Some(killed.elapsed());
        }
        if removed.is_some() && stood_in.is_some() {
            let whole = addresses.iter().all(|address| {
                client.holders(address).is_ok_and(|view| {
                    view.holders.len() == 4 && view.holders.iter().all(|h| h.held == Some(true) && h.node != victim.id)
                })
            });
            if whole {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let repaired = killed.elapsed();
    devnet.stop();
    let removed = removed.unwrap_or(repaired);
    Ok((paid, Repair { chunks: addresses.len(), stood_in: stood_in.unwrap_or(repaired), removed, repaired }))
}
