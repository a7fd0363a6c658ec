//! The genesis file: the committee a node starts with and the initial allocations.

use std::path::Path;

use acre_ledger::{AccountId, Allocation, Committee, CommitteeError};
use serde::{Deserialize, Serialize};

/// What every node of a network agrees on before it starts: its elders and who is funded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The elders' keys.
    pub elders: Vec<AccountId>,
    /// Credits created at genesis; may be empty for a network that starts unfunded.
    pub allocations: Vec<Allocation>,
}

/// The genesis file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Not readable.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a genesis document.
    #[error("{path} is not a genesis file: {source}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The elders do not form a committee.
    #[error("the genesis elders are not a committee: {0}")]
    Committee(#[from] CommitteeError),
}

impl Genesis {
    /// Reads a genesis file.
    pub fn read(path: &Path) -> Result<Self, GenesisError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| GenesisError::Io { path: shown.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(|source| GenesisError::Format { path: shown, source })
    }

    /// The committee of its elders.
    pub fn committee(&self) -> Result<Committee, GenesisError> {
        Ok(Committee::new(self.elders.iter().copied())?)
    }
}
