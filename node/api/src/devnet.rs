//! The manifest a running devnet writes (`DIR/devnet.json`): what the wallet and tests
//! need to find its nodes and its faucet.

use std::path::{Path, PathBuf};

use acre_ledger::AccountId;
use serde::{Deserialize, Serialize};

/// The manifest's file name inside the devnet directory.
pub const MANIFEST_FILE: &str = "devnet.json";

/// A running devnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The devnet's directory.
    pub dir: PathBuf,
    /// The nodes, all of them elders.
    pub nodes: Vec<ManifestNode>,
    /// The account funded at genesis, for `acre faucet`.
    pub faucet: Faucet,
}

/// One node of a devnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestNode {
    /// The node's key, which is also its elder id.
    pub id: AccountId,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Base URL of its JSON API.
    pub api: String,
    /// Its libp2p addresses.
    pub libp2p: Vec<String>,
    /// The process id of its `acre-node run`.
    pub pid: u32,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// The devnet's faucet: a funded key in a wallet keystore, with its password in the
/// clear (a devnet's credits are worth nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faucet {
    /// The funded account.
    pub address: AccountId,
    /// The keystore directory holding it.
    pub keystore: PathBuf,
    /// The key's name in that keystore.
    pub key: String,
    /// The keystore password.
    pub password: String,
}

/// The manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// No devnet has written one there.
    #[error("no devnet manifest at {path} (start one with `make devnet`)")]
    Missing {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a manifest.
    #[error("{path} is not a devnet manifest")]
    Format {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl Manifest {
    /// Reads the manifest of the devnet in `dir`.
    pub fn read(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|source| ManifestError::Missing { path: shown.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Format { path: shown, source })
    }

    /// The elders' ids, as the genesis lists them.
    pub fn elders(&self) -> Vec<AccountId> {
        self.nodes.iter().map(|node| node.id).collect()
    }
}

/// Where `make devnet` keeps its network when `--dir` is not given: the user's data
/// directory (e.g. `~/.local/share/acre/devnet`), so the wallet finds it from anywhere.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("ACRE_DEVNET").map(PathBuf::from).or_else(|| {
        let home = std::env::var_os("HOME")?;
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(&home).join(".local/share"));
        Some(data.join("acre").join("devnet"))
    })
}
