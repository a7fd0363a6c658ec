//! `acre-node devnet`: a local network of real node processes on 127.0.0.1.
//!
//! The first run creates `DIR`: one data directory per node, a genesis naming them all
//! as elders and funding a faucet key, and a configuration per node with its ports fixed
//! (so a restarted node is found where it was). Later runs resume the same network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acre_api::devnet::{Faucet, Manifest, ManifestNode, MANIFEST_FILE};
use acre_ledger::{AccountId, Allocation, Amount};
use acre_node::config::genesis::Genesis;
use acre_node::config::key;
use acre_node::config::{write_atomically, NodeConfig, API_ADDRESS_FILE, CONFIG_FILE, GENESIS_FILE, KEY_FILE};
use acre_node::transport::peer_id_of;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Deserialize;

/// Nodes in a new devnet when `--nodes` is not given.
const DEFAULT_NODES: usize = 7;
/// Credits the faucet starts with.
const FAUCET_CREDITS: &str = "1000000";
/// The faucet key's name in its keystore.
const FAUCET_KEY: &str = "faucet";
/// How long a node may take to start or stop.
const PROCESS_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the devnet in `dir` until SIGINT or SIGTERM, then stops every node it started.
/// With `seed`, a devnet that has stored nothing yet stores a file from its faucet, so
/// its farmers have data to prove and every epoch mints from the first.
pub(crate) async fn devnet(dir: &Path, nodes: Option<usize>, seed: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let _only_devnet_here = lock_devnet_dir(&dir)?;
    let node_binary = std::env::current_exe()?;
    let node_dirs = match existing_nodes(&dir)? {
        existing if existing.is_empty() => create(&dir, nodes.unwrap_or(DEFAULT_NODES), &node_binary)?,
        existing if nodes.is_some_and(|n| n != existing.len()) => {
            bail!("{} holds a devnet of {} nodes; remove it to start another size", dir.display(), existing.len())
        }
        existing => existing,
    };
    let faucet = read_faucet(&dir)?;
    // Signal handlers exist before any child does, so Ctrl-C always reaches the cleanup.
    let shutdown = crate::shutdown_signal()?;
    let mut running = Vec::new();
    let manifest_nodes = match start_all(&node_binary, &node_dirs, &mut running).await {
        Ok(nodes) => nodes,
        Err(error) => {
            // Nodes that did start would otherwise keep their ports and stores locked.
            for child in &mut running {
                stop(child).await;
            }
            return Err(error);
        }
    };
    let manifest = Manifest { dir: dir.clone(), nodes: manifest_nodes, faucet };
    write_atomically(&dir.join(MANIFEST_FILE), serde_json::to_string_pretty(&manifest)?)?;
    print_usage(&manifest);
    if seed && !dir.join(SEED_FILE).exists() {
        let (dir, node_binary, faucet) = (dir.clone(), node_binary.clone(), manifest.faucet.clone());
        // In the background, so Ctrl-C still stops the devnet at once.
        tokio::task::spawn_blocking(move || match store_seed(&dir, &node_binary, &faucet) {
            Ok(file) => {
                println!("seeded: the faucet stored a {} KiB file ({file}), so every epoch mints", SEED_BYTES >> 10)
            }
            Err(error) => println!("seeding failed ({error:#}); epochs mint once a file is stored"),
        });
    }

    tokio::pin!(shutdown);
    let mut reported = vec![false; running.len()];
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for (index, child) in running.iter_mut().enumerate() {
            if let (Ok(Some(status)), false) = (child.try_wait(), reported[index]) {
                reported[index] = true;
                println!("node {index} exited ({status}); its log is {}", node_dirs[index].join(LOG_FILE).display());
            }
        }
    }
    println!("stopping {} nodes", running.len());
    for child in &mut running {
        stop(child).await;
    }
    let _ = std::fs::remove_file(dir.join(MANIFEST_FILE));
    println!("stopped; `make devnet` (or this command again) resumes the network from {}", dir.display());
    Ok(())
}

/// Marks `dir` as this process's devnet for as long as the returned lock lives. The lock
/// is the kernel's (flock), so it goes with the process however that ends, even by
/// SIGKILL; a second devnet in the same directory is refused with the first one's pid
/// instead of failing later on its nodes' locked stores.
fn lock_devnet_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)?;
            lock.rewind()?;
            write!(lock, "{}", std::process::id())?;
            lock.sync_all()?;
            Ok(lock)
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            file.read_to_string(&mut pid)?;
            bail!(
                "a devnet is already running in {} (pid {}); use it (see {}), or stop it with Ctrl-C in its terminal or `kill {}`",
                dir.display(),
                pid.trim(),
                dir.join(MANIFEST_FILE).display(),
                pid.trim()
            )
        }
        Err((_, errno)) => Err(errno).with_context(|| format!("locking {}", path.display())),
    }
}

/// The file a running devnet holds locked, with its pid inside.
const LOCK_FILE: &str = "devnet.lock";

/// Starts every node (into `running`, so the caller can stop them on failure) and waits
/// until each serves.
async fn start_all(node_binary: &Path, node_dirs: &[PathBuf], running: &mut Vec<Child>) -> Result<Vec<ManifestNode>> {
    for data_dir in node_dirs {
        running.push(start(node_binary, data_dir)?);
    }
    let mut nodes = Vec::with_capacity(node_dirs.len());
    for (child, data_dir) in running.iter_mut().zip(node_dirs) {
        nodes.push(wait_until_serving(child, data_dir).await?);
    }
    Ok(nodes)
}

/// Each node's log, beside its data.
const LOG_FILE: &str = "node.log";

fn node_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("node-{index}"))
}

fn existing_nodes(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok((0..).map(|index| node_dir(dir, index)).take_while(|path| path.join(CONFIG_FILE).exists()).collect())
}

/// Lays out a new devnet of `count` nodes in `dir`.
fn create(dir: &Path, count: usize, node_binary: &Path) -> Result<Vec<PathBuf>> {
    if count == 0 {
        bail!("a devnet needs at least one node");
    }
    let node_dirs: Vec<PathBuf> = (0..count).map(|index| node_dir(dir, index)).collect();
    let mut elders = Vec::with_capacity(count);
    for data_dir in &node_dirs {
        std::fs::create_dir_all(data_dir)?;
        elders.push(AccountId::of(&key::create(&data_dir.join(KEY_FILE))?));
    }
    let faucet = create_faucet(dir, node_binary)?;
    let amount: Amount = FAUCET_CREDITS.parse()?;
    let genesis = Genesis { elders, allocations: vec![Allocation { account: faucet.address, amount }] };
    let ports = free_ports(count)?;
    for (index, data_dir) in node_dirs.iter().enumerate() {
        let (api, tcp, udp) = ports[index];
        // Half the links go over QUIC and half over TCP, so both transports carry traffic.
        let bootstrap = ports
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(other, (_, tcp, udp))| match (index + other) % 2 {
                0 => format!("/ip4/127.0.0.1/tcp/{tcp}"),
                _ => format!("/ip4/127.0.0.1/udp/{udp}/quic-v1"),
            })
            .collect();
        let config = NodeConfig {
            api: ([127, 0, 0, 1], api).into(),
            listen: vec![format!("/ip4/127.0.0.1/tcp/{tcp}"), format!("/ip4/127.0.0.1/udp/{udp}/quic-v1")],
            bootstrap,
            sync_interval_ms: 500,
            // A devnet shows its audits within seconds, on small disks.
            capacity_bytes: 2 << 30,
            challenge_interval_ms: 2_000,
            challenge_grace_ms: 5_000,
            // Epochs of seconds, so rewards show while you watch; a member unreachable for
            // 20 s is reported.
            epoch_ms: 10_000,
            report_grace_ms: 1_000,
            unresponsive_after_ms: 20_000,
            ..NodeConfig::default()
        };
        std::fs::write(data_dir.join(CONFIG_FILE), config.to_toml()?)?;
        std::fs::write(data_dir.join(GENESIS_FILE), serde_json::to_vec_pretty(&genesis)?)?;
    }
    std::fs::write(dir.join(FAUCET_FILE), serde_json::to_vec_pretty(&faucet)?)?;
    Ok(node_dirs)
}

/// Where the devnet keeps its faucet's description.
const FAUCET_FILE: &str = "faucet.json";

fn read_faucet(dir: &Path) -> Result<Faucet> {
    let path = dir.join(FAUCET_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Makes the faucet key with the `acre` wallet built beside this binary, so its keystore
/// is exactly what the wallet reads.
fn create_faucet(dir: &Path, node_binary: &Path) -> Result<Faucet> {
    let wallet = node_binary.with_file_name("acre");
    if !wallet.exists() {
        bail!("{} is missing: build the wallet too (`cargo build --bins`)", wallet.display());
    }
    let keystore = dir.join("faucet-keystore");
    let password = hex::encode(rand::random::<[u8; 16]>());
    let output = Command::new(&wallet)
        .arg("--json")
        .arg("--keystore")
        .arg(&keystore)
        .args(["key", "new", FAUCET_KEY])
        .env("ACRE_PASSWORD", &password)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", wallet.display()))?;
    if !output.status.success() {
        bail!("the wallet could not create the faucet key ({})", output.status);
    }
    #[derive(Deserialize)]
    struct NewKey {
        address: AccountId,
    }
    let key: NewKey = serde_json::from_slice(&output.stdout).context("reading the wallet's answer")?;
    Ok(Faucet { address: key.address, keystore, key: FAUCET_KEY.into(), password })
}

/// The size of the file a new devnet stores.
const SEED_BYTES: usize = 1 << 20;
/// Written once the seed file is stored, with its address.
const SEED_FILE: &str = "seed.json";
/// How long the nodes may take to take the seed file (they start connecting as it begins).
const SEED_DEADLINE: Duration = Duration::from_secs(120);

/// Stores `SEED_BYTES` of random data paid by the faucet through the `acre` wallet, as a
/// user would, and records its address in `SEED_FILE`.
fn store_seed(dir: &Path, node_binary: &Path, faucet: &Faucet) -> Result<String> {
    let data = dir.join("seed.bin");
    if !data.exists() {
        let bytes: Vec<u8> = (0..SEED_BYTES).map(|_| rand::random::<u8>()).collect();
        write_atomically(&data, bytes)?;
    }
    let started = Instant::now();
    let output = loop {
        let output = Command::new(node_binary.with_file_name("acre"))
            .arg("--json")
            .arg("--keystore")
            .arg(&faucet.keystore)
            .arg("put")
            .arg(&data)
            .args(["--from", &faucet.key, "--yes"])
            .env("ACRE_DEVNET", dir)
            .env("ACRE_PASSWORD", &faucet.password)
            .env_remove("ACRE_NODE")
            .stdin(Stdio::null())
            .output()
            .context("running the acre wallet")?;
        // Until every elder has met the others a payment may lack votes; a put repeated
        // resumes where it stopped and never pays twice.
        if output.status.success() || started.elapsed() > SEED_DEADLINE {
            break output;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    if !output.status.success() {
        bail!("acre put: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    #[derive(Deserialize)]
    struct Stored {
        file: String,
    }
    let stored: Stored = serde_json::from_slice(&output.stdout).context("reading the wallet's answer")?;
    write_atomically(&dir.join(SEED_FILE), serde_json::to_string_pretty(&serde_json::json!({ "file": stored.file }))?)?;
    let _ = std::fs::remove_file(&data);
    Ok(stored.file)
}

/// The lowest port a devnet node listens on.
const LOWEST_PORT: u16 = 10_000;
/// Where the kernel's ephemeral ports begin when it does not say (Linux's default).
const EPHEMERAL_FROM: u16 = 32_768;

/// (API, TCP, UDP) ports for `count` nodes, free now. They come from below the kernel's
/// ephemeral range: a node binds its ports only once it starts, and a port from that
/// range could meanwhile be taken by any process's outgoing connection or `bind(0)` (on a
/// busy machine that made a node exit at start). They are tried from a random place, and
/// each stays bound until all are chosen, so no port is handed out twice.
fn free_ports(count: usize) -> Result<Vec<(u16, u16, u16)>> {
    // A kernel whose ephemeral range starts low leaves no room below it: then any port.
    let below = Some(ephemeral_from()).filter(|from| *from > LOWEST_PORT + 1_000).unwrap_or(u16::MAX);
    let span = below - LOWEST_PORT;
    let mut next = LOWEST_PORT + rand::random::<u16>() % span;
    // Each port is held for TCP and UDP alike until every one is chosen.
    let mut held: Vec<(std::net::TcpListener, std::net::UdpSocket)> = Vec::with_capacity(count * 3);
    let mut take = || -> Result<u16> {
        for _ in 0..span {
            let port = next;
            next = if next + 1 >= below { LOWEST_PORT } else { next + 1 };
            let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
            let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
            if let (Ok(tcp), Ok(udp)) = (tcp, udp) {
                held.push((tcp, udp));
                return Ok(port);
            }
        }
        bail!("no free ports below {below}")
    };
    (0..count).map(|_| Ok((take()?, take()?, take()?))).collect()
}

/// The first of the kernel's ephemeral ports.
fn ephemeral_from() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_FROM)
}

fn start(node_binary: &Path, data_dir: &Path) -> Result<Child> {
    let _ = std::fs::remove_file(data_dir.join(API_ADDRESS_FILE));
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join(LOG_FILE))?;
    Command::new(node_binary)
        .arg("run")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting the node in {}", data_dir.display()))
}

/// Waits for the node to publish its API address, and describes it.
async fn wait_until_serving(child: &mut Child, data_dir: &Path) -> Result<ManifestNode> {
    let started = Instant::now();
    let api = loop {
        if let Ok(text) = std::fs::read_to_string(data_dir.join(API_ADDRESS_FILE)) {
            break text.trim().to_owned();
        }
        if let Some(status) = child.try_wait()? {
            bail!("the node in {} exited ({status}); see {}", data_dir.display(), data_dir.join(LOG_FILE).display());
        }
        if started.elapsed() > PROCESS_DEADLINE {
            bail!("the node in {} did not start in time", data_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = AccountId::of(&key::load(&data_dir.join(KEY_FILE))?);
    let peer_id = peer_id_of(&id).context("a node key is not a libp2p key")?.to_string();
    let config = NodeConfig::load(data_dir, &Default::default())?;
    let libp2p = config.listen.iter().map(|address| format!("{address}/p2p/{peer_id}")).collect();
    Ok(ManifestNode { id, peer_id, api, libp2p, pid: child.id(), data_dir: data_dir.to_owned() })
}

/// SIGTERM, then SIGKILL if the node has not stopped by the deadline.
async fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let started = Instant::now();
    while started.elapsed() < PROCESS_DEADLINE {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn print_usage(manifest: &Manifest) {
    println!("Acre devnet: {} elders, manifest {}", manifest.nodes.len(), manifest.dir.join(MANIFEST_FILE).display());
    for (index, node) in manifest.nodes.iter().enumerate() {
        println!("  node {index}  {}  {}", node.api, node.id);
    }
    let first = manifest.nodes.first().map(|node| node.api.as_str()).unwrap_or_default();
    println!();
    println!("In another terminal:");
    if acre_api::devnet::default_dir().as_deref() != Some(manifest.dir.as_path()) {
        println!("  export ACRE_DEVNET={}", manifest.dir.display());
    }
    println!("  acre key new alice              # asks for a password");
    println!("  acre faucet alice 100           # 100 credits from the faucet");
    println!("  acre balance alice");
    println!("  curl {first}/v1/section");
    println!();
    println!("Ctrl-C stops every node; running this again resumes the same network.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_devnets_ports_are_distinct_and_below_the_ephemeral_range() {
        let ports = free_ports(7).expect("ports");
        let all: std::collections::BTreeSet<(u16, bool)> =
            ports.iter().flat_map(|(api, tcp, udp)| [(*api, true), (*tcp, true), (*udp, false)]).collect();
        assert_eq!(all.len(), 21, "no port handed out twice: {ports:?}");
        let below = ephemeral_from();
        if below > LOWEST_PORT + 1_000 {
            assert!(all.iter().all(|(port, _)| (LOWEST_PORT..below).contains(port)), "{ports:?} from {below}");
        }
    }
}
