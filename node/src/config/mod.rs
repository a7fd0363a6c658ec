//! Node configuration, layered: defaults < `config.toml` in the data directory < `ACRE_*`
//! environment variables < command-line flags.

pub mod genesis;
pub mod key;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use acre_ledger::AccountId;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The configuration file inside the data directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The node's secret key (hex), readable only by its owner.
pub const KEY_FILE: &str = "node.key";
/// The committee and initial allocations this node starts from.
pub const GENESIS_FILE: &str = "genesis.json";
/// The RocksDB directory of the ledger.
pub const LEDGER_DIR: &str = "ledger";
/// Written at start with the API's bound address, so tools find a node started on port 0.
pub const API_ADDRESS_FILE: &str = "api-address";

/// Where catch-up keeps, per elder, the position reached in that elder's certificates.
pub const CURSORS_FILE: &str = "catch-up.json";
/// Replaces the file at `path` so readers never see it half-written: the contents go to
/// a temporary file beside it, which is then renamed over it.
/// Synced, file and directory, so a file written before an irreversible step (a payment)
/// is still there after a power cut.
pub fn write_atomically(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents.as_ref())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    sync_parent(path)
}

/// A JSON file the node keeps for itself (cursors, meter totals), or the empty value if
/// it was never written. A file that cannot be read or decoded is reported and then
/// treated as never written: each such file only saves work or under-counts this node's
/// own view, so starting from empty is safe, but it is not silent.
pub fn read_json_or_empty<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return T::default(),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot read a saved file; starting from empty");
            return T::default();
        }
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        tracing::warn!(%error, path = %path.display(), "a saved file does not decode; starting from empty");
        T::default()
    })
}

/// Syncs the directory holding `path`, so a file created or renamed there stays.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Fields that `ACRE_*` variables may set; others (the wallet's, say) are not the node's.
const ENV_KEYS: [&str; 18] = [
    "api",
    "listen",
    "bootstrap",
    "log_format",
    "max_body_bytes",
    "request_timeout_ms",
    "peer_timeout_ms",
    "sync_interval_ms",
    "capacity_bytes",
    "challenge_interval_ms",
    "challenge_grace_ms",
    "audit_chunks",
    "answer_deadline_ms",
    "epoch_ms",
    "report_grace_ms",
    "unresponsive_after_ms",
    "round_delay_ms",
    "reward_address",
];

/// The directory of the chunks this node holds.
pub const CHUNKS_DIR: &str = "chunks";
/// The section's chunk registry: every chunk stored, with its size.
pub const REGISTRY_FILE: &str = "registry";
/// The store payments this node has accepted, each with the chunks it lists (the file of
/// ids alone that came before, `payments`, is no longer read).
pub const PAYMENTS_FILE: &str = "store-payments";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Everything a running node is told, after all layers are merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Address of the JSON API; port 0 picks a free one (see [`API_ADDRESS_FILE`]).
    pub api: SocketAddr,
    /// libp2p addresses to listen on, for the elder network.
    pub listen: Vec<String>,
    /// libp2p addresses of peers to dial at start.
    pub bootstrap: Vec<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest request body the API reads, in bytes.
    pub max_body_bytes: usize,
    /// Longest an API request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Longest another node may take to answer a request, in milliseconds.
    pub peer_timeout_ms: u64,
    /// How often the node asks the elders for certificates it missed, in milliseconds.
    pub sync_interval_ms: u64,
    /// Most bytes of chunks this node holds; it refuses new chunks beyond.
    pub capacity_bytes: u64,
    /// How often an elder challenges every holder, in milliseconds.
    pub challenge_interval_ms: u64,
    /// How long after a holder's connection came or went its timeouts are excused, in
    /// milliseconds: a restart is not a failure.
    pub challenge_grace_ms: u64,
    /// Chunks challenged per holder per round.
    pub audit_chunks: usize,
    /// How long a holder has to answer a challenge, in milliseconds; correct proofs
    /// after it count as late, a failure. It must stay well under the time fetching the
    /// challenged chunks from another node takes (`specs/storage.md` gives the margin),
    /// and well over an honest answer's time across the network.
    pub answer_deadline_ms: u64,
    /// How long an epoch runs before the elders report their audits and it closes, in
    /// milliseconds.
    pub epoch_ms: u64,
    /// How long an elder waits for the other elders' reports once a quorum of them is in,
    /// in milliseconds; after it (and once more than f elders say so) the epoch closes on
    /// the reports it has. Each close waits at most this long for one silent elder.
    pub report_grace_ms: u64,
    /// How long a member may stay unreachable before an elder reports it, in milliseconds;
    /// a quorum of reports in one epoch removes it.
    pub unresponsive_after_ms: u64,
    /// Delay between an elder's units in the section log, in milliseconds.
    pub round_delay_ms: u64,
    /// Where this farmer's rewards go; its node id when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_address: Option<AccountId>,
    /// No longer read: the blocks challenged per chunk are a protocol constant
    /// (`acre_proofs::challenge::BLOCKS_PER_ITEM`), since a holder answers only challenges
    /// drawn with exactly that many. Accepted so that configurations written before still
    /// load.
    #[serde(default, skip_serializing)]
    pub audit_blocks: Option<usize>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            api: SocketAddr::from(([127, 0, 0, 1], 7070)),
            listen: vec!["/ip4/127.0.0.1/tcp/0".into(), "/ip4/127.0.0.1/udp/0/quic-v1".into()],
            bootstrap: vec![],
            log_format: LogFormat::Text,
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            peer_timeout_ms: 3_000,
            sync_interval_ms: 1_000,
            capacity_bytes: 16 << 30,
            challenge_interval_ms: 60_000,
            challenge_grace_ms: 120_000,
            audit_chunks: 16,
            answer_deadline_ms: 1_000,
            epoch_ms: 3_600_000,
            report_grace_ms: 60_000,
            unresponsive_after_ms: 600_000,
            round_delay_ms: 200,
            reward_address: None,
            audit_blocks: None,
        }
    }
}

/// Values given as flags; only those present override the other layers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--api`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<SocketAddr>,
    /// `--listen` (repeatable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<String>>,
    /// `--bootstrap` (repeatable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Vec<String>>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `--reward-address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_address: Option<AccountId>,
}

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("configuration in {dir}: {source}")]
pub struct ConfigError {
    dir: PathBuf,
    #[source]
    source: Box<figment::Error>,
}

impl NodeConfig {
    /// Merges the layers for the node in `data_dir`.
    pub fn load(data_dir: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        Figment::from(Serialized::defaults(NodeConfig::default()))
            .merge(Toml::file_exact(data_dir.join(CONFIG_FILE)))
            .merge(Env::prefixed("ACRE_").only(&ENV_KEYS))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|source| ConfigError { dir: data_dir.to_owned(), source: Box::new(source) })
    }

    /// The file `init` writes: every setting with its default, to be edited. A setting
    /// that is unset (TOML has no null) is written as a comment, so the file still names it.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let mut text = toml::to_string_pretty(self)?;
        if self.reward_address.is_none() {
            text.push_str(
                "\n# Where this farmer's rewards go; the node id when unset.\n# reward_address = \"acre1...\"\n",
            );
        }
        Ok(text)
    }
}

#[cfg(test)]
// figment's `Jail` closures must return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_environment_beats_file_beats_defaults() {
        figment::Jail::expect_with(|jail| {
            let dir = jail.directory().to_owned();
            jail.create_file(
                CONFIG_FILE,
                "api = \"127.0.0.1:9000\"\nlog_format = \"json\"\nbootstrap = [\"/ip4/127.0.0.1/tcp/1\"]\n",
            )?;
            jail.set_env("ACRE_API", "127.0.0.1:9001");
            jail.set_env("ACRE_PASSWORD", "belongs to the wallet, not the node");

            let config = NodeConfig::load(&dir, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.api, SocketAddr::from(([127, 0, 0, 1], 9001)), "env beats file");
            assert_eq!(config.log_format, LogFormat::Json, "file beats defaults");
            assert_eq!(config.bootstrap, ["/ip4/127.0.0.1/tcp/1"]);
            assert_eq!(config.max_body_bytes, NodeConfig::default().max_body_bytes);

            let flags = Overrides { api: Some(SocketAddr::from(([127, 0, 0, 1], 9002))), ..Overrides::default() };
            let config = NodeConfig::load(&dir, &flags).map_err(|e| e.to_string())?;
            assert_eq!(config.api.port(), 9002, "flags beat env");
            Ok(())
        });
    }

    #[test]
    fn a_misspelt_setting_is_an_error_not_a_silent_default() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(CONFIG_FILE, "apii = \"127.0.0.1:9000\"\n")?;
            let error = NodeConfig::load(jail.directory(), &Overrides::default()).expect_err("unknown field");
            assert!(error.to_string().contains("apii"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_file_written_when_blocks_per_chunk_were_a_setting_still_loads() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(CONFIG_FILE, "audit_chunks = 16\naudit_blocks = 4\n")?;
            let config = NodeConfig::load(jail.directory(), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.audit_chunks, 16);
            assert!(!config.to_toml().map_err(|e| e.to_string())?.contains("audit_blocks"), "not written again");
            Ok(())
        });
    }

    #[test]
    fn the_written_file_reads_back_as_the_defaults() {
        figment::Jail::expect_with(|jail| {
            let written = NodeConfig::default().to_toml().map_err(|e| e.to_string())?;
            assert!(written.contains("# reward_address = "), "init names every setting: {written}");
            jail.create_file(CONFIG_FILE, &written)?;
            let config = NodeConfig::load(jail.directory(), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config, NodeConfig::default());
            Ok(())
        });
    }
}
