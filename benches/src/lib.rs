//! Benchmarks of Acre. Every figure is printed beside a limit measured in the same run on
//! the same machine (ed25519 signing and verification rates), so a ratio, not an absolute
//! time, says whether the code is fast. `make bench` builds the release binaries and runs
//! `ledger-bench` (the ledger in-process), `elder-bench` (one elder process fed over
//! libp2p), `proofs-bench` (challenge answers and chunk ingest) and `transfer-bench`
//! (devnets driven through the API); `cargo bench -p acre-benches` runs the criterion
//! micro-benchmarks.

use std::time::{Duration, Instant};

use acre_ledger::store::RocksStore;
use acre_ledger::testkit::{key, order_from, LocalCommittee};
use acre_ledger::{vote_message, AccountId, Allocation, Amount, Digest, SignedOrder};
use anyhow::{bail, ensure, Context, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Operations per second of `work`, which performs `count` operations per call, over at
/// least `min_time`.
pub fn rate(count: usize, min_time: Duration, mut work: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut done = 0usize;
    while done == 0 || start.elapsed() < min_time {
        work();
        done += count;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// This machine's ed25519 rates, one core, measured now.
#[derive(Debug, Clone, Copy)]
pub struct CryptoLimits {
    /// Signatures made per second.
    pub signs: f64,
    /// Single strict verifications per second.
    pub verifies: f64,
    /// Signatures verified per second in batches of 64.
    pub batch_verifies: f64,
}

/// Signed vote messages from distinct keys, as certificates carry them.
pub fn signed_messages(count: usize) -> Vec<(Digest, Signature, VerifyingKey)> {
    (0..count as u64)
        .map(|i| {
            let signer: SigningKey = key(77, i);
            let message = vote_message(&Digest::derive("bench", &[&i.to_le_bytes()]));
            (message, signer.sign(message.as_bytes()), signer.verifying_key())
        })
        .collect()
}

impl CryptoLimits {
    /// Measures signing, verification and batch-of-64 verification for `min_time` each.
    pub fn measure(min_time: Duration) -> Self {
        let samples = signed_messages(64);
        let signer = key(78, 0);
        let mut index = 0;
        let signs = rate(1, min_time, || {
            index = (index + 1) % samples.len();
            std::hint::black_box(signer.sign(samples[index].0.as_bytes()));
        });
        let verifies = rate(1, min_time, || {
            index = (index + 1) % samples.len();
            let (message, signature, key) = &samples[index];
            assert!(key.verify_strict(message.as_bytes(), signature).is_ok());
        });
        let messages: Vec<&[u8]> = samples.iter().map(|s| s.0.as_bytes().as_slice()).collect();
        let signatures: Vec<Signature> = samples.iter().map(|s| s.1).collect();
        let keys: Vec<VerifyingKey> = samples.iter().map(|s| s.2).collect();
        let batch_verifies = rate(64, min_time, || {
            assert!(ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok());
        });
        CryptoLimits { signs, verifies, batch_verifies }
    }

    /// Orders per second if an order cost only its one verification and one signature.
    pub fn order_bound(&self) -> f64 {
        1.0 / (1.0 / self.verifies + 1.0 / self.signs)
    }

    /// Certificates per second if one cost only `quorum` batch-verified signatures.
    pub fn certificate_bound(&self, quorum: usize) -> f64 {
        self.batch_verifies / quorum as f64
    }

    /// Whole transfers per second through `elders` elders on one core, if each cost only
    /// its cryptography: every elder verifies and signs the order, the client verifies
    /// every vote, and every elder batch-verifies a quorum of votes.
    pub fn transfer_bound(&self, elders: usize, quorum: usize) -> f64 {
        let n = elders as f64;
        let seconds = n * (2.0 / self.verifies + 1.0 / self.signs) + n * quorum as f64 / self.batch_verifies;
        1.0 / seconds
    }
}

/// Whole transfers per second through an in-process committee of `size` elders, each on
/// its own RocksDB, pipelined in groups of `group`, all on one core.
pub fn committee_transfers(size: usize, accounts: u64, group: usize) -> Result<f64> {
    let root = tempfile::tempdir()?;
    let mut committee = LocalCommittee::new(size, 10 + size as u64, |i| {
        RocksStore::open(root.path().join(format!("elder-{i}"))).unwrap_or_else(|e| panic!("{e}"))
    });
    let clients: Vec<SigningKey> = (0..accounts).map(|i| key(4, i)).collect();
    let amount = Amount::from_credits(100).unwrap_or(Amount::MAX);
    committee.genesis(&clients.iter().map(|k| Allocation { account: AccountId::of(k), amount }).collect::<Vec<_>>());
    let sink = key(5, 0);
    let network = committee.network();
    let orders: Vec<SignedOrder> = clients.iter().map(|k| order_from(&network, k, &sink, 1_000, 0)).collect();
    let start = Instant::now();
    let mut certified = 0;
    for chunk in orders.chunks(group) {
        certified += committee.transfer_batch(chunk).iter().flatten().count();
    }
    let elapsed = start.elapsed();
    ensure!(certified == orders.len(), "only {certified} of {} transfers certified", orders.len());
    let sink_balance = committee.members[0].elder.state().account(&AccountId::of(&sink)).context("sink")?.balance;
    ensure!(sink_balance.nanos() == 1_000 * accounts, "not every transfer was applied");
    Ok(orders.len() as f64 / elapsed.as_secs_f64())
}

/// A binary built beside the running benchmark (`make bench` builds them all).
pub fn sibling_binary(name: &str) -> Result<std::path::PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    ensure!(path.exists(), "{} is missing: run `cargo build --release --workspace --bins` first", path.display());
    Ok(path)
}

/// The `acre` wallet beside this binary, run against the devnet in `devnet_dir` with its
/// keystore in `keys` and every key's password "bench"; a failing command is an error
/// carrying what it printed.
pub fn devnet_wallet(
    keys: std::path::PathBuf,
    devnet_dir: std::path::PathBuf,
) -> Result<impl Fn(&[&str]) -> Result<()>> {
    let acre = sibling_binary("acre")?;
    Ok(move |args: &[&str]| -> Result<()> {
        let output = std::process::Command::new(&acre)
            .arg("--keystore")
            .arg(&keys)
            .args(args)
            .env("ACRE_DEVNET", &devnet_dir)
            .env("ACRE_PASSWORD", "bench")
            .env_remove("ACRE_NODE")
            .output()?;
        ensure!(output.status.success(), "acre {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
    })
}

/// The floor under a lone transfer, measured on this machine: the median of a libp2p
/// request/reply round trip between two nodes on 127.0.0.1, and of one elder's synced
/// group commit of one order's vote (signature check, lock written and synced to RocksDB).
/// A transfer needs at least one of each: every elder votes in parallel, each after its
/// commit.
#[derive(Debug, Clone, Copy)]
pub struct TransferFloor {
    /// One libp2p round trip.
    pub round_trip: Duration,
    /// One synced vote commit.
    pub commit: Duration,
}

impl TransferFloor {
    /// Measures `samples` of each.
    pub fn measure(samples: usize) -> Result<Self> {
        Ok(TransferFloor { round_trip: libp2p_round_trip(samples)?, commit: vote_commit(samples)? })
    }

    /// The two together.
    pub fn total(&self) -> Duration {
        self.round_trip + self.commit
    }
}

/// Answers every request at once with a refusal: the round trip without any work.
struct Echo;

impl acre_node::transport::InboundHandler for Echo {
    async fn answer(
        &self,
        _peer: libp2p::PeerId,
        protocol: acre_node::transport::ProtocolId,
        _request: Vec<u8>,
    ) -> Vec<u8> {
        acre_node::transport::refusal(protocol, String::new())
    }
}

/// Two transports on 127.0.0.1, connected: a server answering with `handler` under the key
/// `server_key`, and a client under `client_key` that sends only. Returns the server's
/// handle (its transport runs while the handle lives), its peer id and the client's handle.
pub async fn connected_transports(
    handler: impl acre_node::transport::InboundHandler,
    server_key: &SigningKey,
    client_key: &SigningKey,
) -> Result<(acre_node::transport::NetworkHandle, libp2p::PeerId, acre_node::transport::NetworkHandle)> {
    use acre_core::wire::{Ledger, LedgerRequest};
    use acre_node::transport::{identity_of, Network, NetworkConfig, RefuseAll};
    let config = |bootstrap: Vec<libp2p::Multiaddr>| -> Result<NetworkConfig> {
        Ok(NetworkConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            bootstrap,
            keep_connected: Vec::new(),
            request_timeout: Duration::from_secs(30),
        })
    };
    let (server, server_handle) = Network::new(identity_of(server_key)?, config(Vec::new())?)?;
    tokio::spawn(server.run(handler));
    let listening = loop {
        if let Some(address) = server_handle.listen_addresses().await?.into_iter().next() {
            break address;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let server_peer = server_handle.local_peer_id();
    let (client, client_handle) = Network::new(identity_of(client_key)?, config(vec![listening])?)?;
    tokio::spawn(client.run(RefuseAll));
    // Any reply, a refusal too, shows the two are connected.
    let probe = LedgerRequest::AppliedSince { position: 0, limit: 1 };
    let deadline = Instant::now() + Duration::from_secs(20);
    while client_handle.request::<Ledger>(server_peer, &probe).await.is_err() {
        ensure!(Instant::now() < deadline, "the two transports did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((server_handle, server_peer, client_handle))
}

/// The median round trip of a small ledger request between two transports on 127.0.0.1.
fn libp2p_round_trip(samples: usize) -> Result<Duration> {
    use acre_core::wire::{Ledger, LedgerRequest};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let (_server, server_peer, client_handle) = connected_transports(Echo, &key(91, 0), &key(91, 1)).await?;
        let request = LedgerRequest::AppliedSince { position: 0, limit: 1 };
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            client_handle.request::<Ledger>(server_peer, &request).await?;
            times.push(started.elapsed());
        }
        Ok(median(times))
    })
}

/// The median time of one elder voting on one order, synced to RocksDB.
fn vote_commit(samples: usize) -> Result<Duration> {
    let (root, mut elder, orders) = voting_elder(samples, 0)?;
    let times = orders.iter().map(|order| timed_vote(&mut elder, order)).collect::<Result<Vec<_>>>()?;
    drop(root);
    Ok(median(times))
}

/// An elder on RocksDB in a fresh directory (kept while the directory lives) and
/// `samples` orders from distinct funded senders for it to vote on.
fn voting_elder(
    samples: usize,
    index: u64,
) -> Result<(tempfile::TempDir, acre_ledger::DurableElder<RocksStore>, Vec<SignedOrder>)> {
    let root = tempfile::tempdir()?;
    let elder_key = key(92, index);
    let committee = acre_ledger::Committee::new([AccountId::of(&elder_key)])?;
    let mut elder =
        acre_ledger::DurableElder::open(committee, elder_key, RocksStore::open(root.path().join("elder"))?)?;
    let senders: Vec<SigningKey> = (0..samples as u64).map(|i| key(93, i)).collect();
    let amount = Amount::from_credits(1)?;
    elder.genesis(senders.iter().map(|k| Allocation { account: AccountId::of(k), amount }).collect())?;
    let sink = key(94, 0);
    let network = elder.state().network();
    let orders = senders.iter().map(|sender| order_from(&network, sender, &sink, 1_000, 0)).collect();
    Ok((root, elder, orders))
}

/// How long one synced vote on `order` took.
fn timed_vote(elder: &mut acre_ledger::DurableElder<RocksStore>, order: &SignedOrder) -> Result<Duration> {
    let started = Instant::now();
    let votes = elder.handle_orders(std::slice::from_ref(order));
    let took = started.elapsed();
    ensure!(votes.iter().all(Result::is_ok), "the elder refused a vote: {votes:?}");
    Ok(took)
}

/// The median time until the `quorum`-th of `elders` elders, each with its own RocksDB on
/// this machine's one disk and all starting together, has its vote synced: what a lone
/// transfer's round of votes waits on when the section's elders share a disk, as a devnet's
/// do (their syncs queue at the disk).
pub fn shared_disk_commit(samples: usize, elders: usize, quorum: usize) -> Result<Duration> {
    let mut setups = (0..elders as u64).map(|index| voting_elder(samples, index)).collect::<Result<Vec<_>>>()?;
    let start = std::sync::Barrier::new(elders);
    let per_elder: Vec<Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let runs: Vec<_> = setups
            .iter_mut()
            .map(|(_, elder, orders)| {
                let start = &start;
                scope.spawn(move || {
                    orders
                        .iter()
                        .map(|order| {
                            start.wait();
                            timed_vote(elder, order)
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap_or_else(|_| bail!("an elder thread panicked"))).collect()
    });
    let per_elder = per_elder.into_iter().collect::<Result<Vec<_>>>()?;
    let quorum_times = (0..samples)
        .map(|sample| {
            let mut round: Vec<Duration> = per_elder.iter().map(|times| times[sample]).collect();
            round.sort();
            round[quorum.clamp(1, elders) - 1]
        })
        .collect();
    Ok(median(quorum_times))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or(Duration::ZERO)
}

/// The CPU time of this machine, from `/proc/stat`: how much of it went to other guests of
/// the host (steal) tells how far a run's figures can be trusted, since a stolen core stalls
/// whichever process was about to answer.
#[derive(Debug, Clone, Copy)]
pub struct CpuTime {
    total: u64,
    stolen: u64,
}

impl CpuTime {
    /// Now, or `None` where `/proc/stat` cannot be read.
    pub fn now() -> Option<CpuTime> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).map(|field| field.parse().ok()).collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal ...; guest time is inside user.
        let stolen = *fields.get(7)?;
        Some(CpuTime { total: fields.iter().take(8).sum(), stolen })
    }

    /// The share of the CPU time since `self` that the host took.
    pub fn stolen_since(self) -> Option<f64> {
        let now = CpuTime::now()?;
        let total = now.total.checked_sub(self.total).filter(|&t| t > 0)?;
        Some(now.stolen.saturating_sub(self.stolen) as f64 / total as f64)
    }
}
