//! `acre-node`: create a node's data directory, and run the node.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use acre_ledger::store::RocksStore;
use acre_ledger::{AccountId, Amount, DurableElder};
use acre_node::api::{router, ApiDoc, Limits};
use acre_node::config::genesis::Genesis;
use acre_node::config::key;
use acre_node::config::{
    write_atomically, LogFormat, NodeConfig, Overrides, API_ADDRESS_FILE, CONFIG_FILE, CURSORS_FILE, GENESIS_FILE,
    KEY_FILE, LEDGER_DIR,
};
use acre_node::driver::{Driver, Farming, FarmingSettings};
use acre_node::ledger::LedgerHandle;
use acre_node::router::Router;
use acre_node::section::Section;
use acre_node::storage::{Storage, StorageSettings};
use acre_node::supervisor::Tasks;
use acre_node::transport::{identity_of, peer_id_of, Network, NetworkConfig};
use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use libp2p::Multiaddr;
use tracing::info;
use utoipa::OpenApi;

mod devnet;

/// Acre storage node.
#[derive(Debug, Parser)]
#[command(name = "acre-node", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: configuration file, node key and genesis.
    Init {
        /// The directory to create (it may exist, but not hold a node yet).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Start from this genesis file [default: this node as sole elder, nothing funded].
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
    },
    /// Run a local network of elder processes on 127.0.0.1 until Ctrl-C; run it again to
    /// resume the same network.
    Devnet {
        /// Nodes in a new devnet [default: 7]; a resumed one keeps its size.
        #[arg(long)]
        nodes: Option<usize>,
        /// The devnet's directory [default: $ACRE_DEVNET, else ~/.local/share/acre/devnet].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Skip the seed file: without this flag a new devnet stores 1 MiB paid by its
        /// faucet, so its epochs mint before anyone uploads.
        #[arg(long)]
        no_seed: bool,
    },
    /// Print the JSON API's OpenAPI document.
    Openapi,
    /// Run the node in a data directory made by `init`.
    Run {
        /// The node's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Address of the JSON API [config: api; env: ACRE_API].
        #[arg(long, value_name = "ADDR")]
        api: Option<SocketAddr>,
        /// libp2p address to listen on, repeatable [config: listen].
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// libp2p address of a peer to dial, repeatable [config: bootstrap].
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// Log format [config: log_format].
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
        /// Where this farmer's rewards go (an acre1… address) [config: reward_address].
        #[arg(long, value_name = "ADDRESS")]
        reward_address: Option<AccountId>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Init { data_dir, genesis } => init(&data_dir, genesis.as_deref()),
        Command::Devnet { nodes, dir, no_seed } => {
            let dir = dir.or_else(acre_api::devnet::default_dir).context("no --dir given and no home directory")?;
            devnet::devnet(&dir, nodes, !no_seed).await
        }
        Command::Openapi => {
            println!("{}", ApiDoc::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Run { data_dir, api, listen, bootstrap, log_format, reward_address } => {
            let overrides = Overrides {
                api,
                listen: (!listen.is_empty()).then_some(listen),
                bootstrap: (!bootstrap.is_empty()).then_some(bootstrap),
                log_format: log_format.map(|f| match f {
                    LogFormatArg::Text => LogFormat::Text,
                    LogFormatArg::Json => LogFormat::Json,
                }),
                reward_address,
            };
            run(&data_dir, &overrides).await
        }
    }
}

fn init(data_dir: &Path, genesis: Option<&Path>) -> Result<()> {
    let config_path = data_dir.join(CONFIG_FILE);
    if config_path.exists() {
        bail!("{} already holds a node", data_dir.display());
    }
    // Check a given genesis before anything is written, so a bad one leaves no half-made node.
    let given = genesis.map(Genesis::read).transpose()?;
    if let Some(genesis) = &given {
        genesis.committee()?;
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let node_key = key::create(&data_dir.join(KEY_FILE))?;
    let node = AccountId::of(&node_key);
    let genesis = given.unwrap_or(Genesis { elders: vec![node], allocations: vec![] });
    std::fs::write(data_dir.join(GENESIS_FILE), serde_json::to_vec_pretty(&genesis)?)?;
    std::fs::write(&config_path, NodeConfig::default().to_toml()?)?;
    println!("node {node}");
    println!(
        "initialised {}: edit {CONFIG_FILE}, then `acre-node run --data-dir {}`",
        data_dir.display(),
        data_dir.display()
    );
    Ok(())
}

async fn run(data_dir: &Path, overrides: &Overrides) -> Result<()> {
    let config = NodeConfig::load(data_dir, overrides)?;
    init_logging(config.log_format);
    // A grace of nothing would let this elder join f liars in closing an epoch on the
    // first quorum of reports, which the grace exists to prevent.
    ensure!(
        config.report_grace_ms >= MIN_REPORT_GRACE_MS && config.report_grace_ms < config.epoch_ms,
        "report_grace_ms is {}: it must be at least {MIN_REPORT_GRACE_MS} and less than epoch_ms ({})",
        config.report_grace_ms,
        config.epoch_ms
    );
    let node_key = key::load(&data_dir.join(KEY_FILE))?;
    let genesis = Genesis::read(&data_dir.join(GENESIS_FILE))?;
    let committee = genesis.committee()?;
    let store = RocksStore::open(data_dir.join(LEDGER_DIR))?;
    let mut elder = DurableElder::open(committee.clone(), node_key.clone(), store)?;
    if !genesis.allocations.is_empty() {
        elder.genesis(genesis.allocations.clone())?;
    }
    let node = elder.state().id();
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let (ledger, ledger_thread) = LedgerHandle::spawn(elder)?;

    let parse = |addresses: &[String]| -> Result<Vec<Multiaddr>> {
        addresses.iter().map(|a| a.parse().with_context(|| format!("{a} is not a multiaddr"))).collect()
    };
    let peer_timeout = Duration::from_millis(config.peer_timeout_ms);
    let network_config = NetworkConfig {
        listen: parse(&config.listen)?,
        bootstrap: parse(&config.bootstrap)?,
        keep_connected: committee.members().filter_map(peer_id_of).collect(),
        request_timeout: peer_timeout,
    };
    let (network, network_handle) = Network::new(identity_of(&node_key)?, network_config)?;
    let section = Arc::new(Section::new(ledger, network_handle, committee, node, peer_timeout));
    let challenge_interval = Duration::from_millis(config.challenge_interval_ms);
    let settings = StorageSettings {
        capacity: config.capacity_bytes,
        challenge_interval,
        grace: Duration::from_millis(config.challenge_grace_ms),
        audit_chunks: config.audit_chunks,
        answer_deadline: Duration::from_millis(config.answer_deadline_ms).min(challenge_interval),
    };
    let (farming, farming_inbox) = Farming::new(data_dir);
    let storage = Arc::new(Storage::open(Arc::clone(&section), data_dir, settings, farming.clone(), node_key.clone())?);
    let inbound = Router::new(Arc::clone(&section), Arc::clone(&storage), farming.clone());
    let farming_settings = FarmingSettings {
        epoch: Duration::from_millis(config.epoch_ms),
        report_grace: Duration::from_millis(config.report_grace_ms),
        unresponsive_after: Duration::from_millis(config.unresponsive_after_ms),
        reward_address: config.reward_address.unwrap_or(node),
        round_delay: Duration::from_millis(config.round_delay_ms),
        answer_window: (Duration::from_millis(config.challenge_interval_ms) * 3).max(Duration::from_secs(5)),
    };
    let genesis_total = genesis.allocations.iter().try_fold(Amount::ZERO, |sum, a| sum.checked_add(a.amount));
    let driver = Driver::open(
        (farming, farming_inbox),
        Arc::clone(&section),
        Arc::clone(&storage),
        node_key.clone(),
        farming_settings,
        genesis_total.context("genesis allocations overflow the cap")?,
    )?;
    let mut tasks = Tasks::default();
    tasks.spawn("network", network.run(inbound));
    tasks.spawn("section driver", driver.run());
    tasks.spawn("audits", Arc::clone(&storage).audit_rounds());
    tasks.spawn("losses", Arc::clone(&storage).watch_losses());
    tasks.spawn(
        "catch-up",
        Arc::clone(&section).catch_up(data_dir.join(CURSORS_FILE), Duration::from_millis(config.sync_interval_ms)),
    );
    let (supervisor, core_died) = tasks.supervise();

    let listener =
        tokio::net::TcpListener::bind(config.api).await.with_context(|| format!("binding {}", config.api))?;
    let address = listener.local_addr()?;
    // Signal handlers exist before anyone can learn the address and send a signal.
    let shutdown = shutdown_signal()?;
    write_atomically(&data_dir.join(API_ADDRESS_FILE), format!("http://{address}\n"))?;
    info!(%node, api = %address, "node running");
    let limits =
        Limits { max_body_bytes: config.max_body_bytes, timeout: Duration::from_millis(config.request_timeout_ms) };
    let (reason_tx, reason) = tokio::sync::oneshot::channel();
    let stop = async move {
        let died = tokio::select! {
            () = shutdown => None,
            reason = core_died => Some(reason),
        };
        let _ = reason_tx.send(died);
    };
    axum::serve(listener, router(Arc::clone(&storage), limits, metrics)).with_graceful_shutdown(stop).await?;
    let died = reason.await.ok().flatten();

    // The ledger thread ends, closing the store, once every handle to it is gone.
    supervisor.stop().await;
    drop(storage);
    drop(section);
    let closed = tokio::task::spawn_blocking(move || ledger_thread.join().is_ok());
    match tokio::time::timeout(Duration::from_secs(10), closed).await {
        Ok(Ok(true)) => info!("stopped; the store is closed"),
        _ => tracing::warn!("stopped before the ledger closed; every acknowledged write was already synced"),
    }
    match died {
        Some(reason) => bail!("the node stopped: {reason}; its log says why"),
        None => Ok(()),
    }
}

/// The shortest grace an elder waits for missing reports (`report_grace_ms`): longer
/// than the log takes to order the reports honest elders make at about the same time.
const MIN_REPORT_GRACE_MS: u64 = 500;

/// What a node logs when `RUST_LOG` does not say: its own events at info, and the
/// consensus engine's only when something is wrong (its status lines, every few seconds,
/// are debug detail; `RUST_LOG=info,aleph_bft=debug` shows them).
const DEFAULT_LOG_FILTER: &str = "info,aleph_bft=warn,aleph_bft_rmc=warn";

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Logs go to stderr, coloured only for a person at a terminal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Registers for SIGINT and SIGTERM now; the future resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        let terminated = terminate.recv();
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
            _ = terminated => info!("SIGTERM: shutting down"),
        }
    })
}
