//! The node's ed25519 key: its libp2p identity, its elder vote key and its XOR name.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::SigningKey;

/// The key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold 64 hexadecimal characters.
    #[error("{0} does not hold a key (64 hexadecimal characters)")]
    Format(String),
}

/// Creates a new key at `path`, readable only by its owner; never overwrites one.
pub fn create(path: &Path) -> Result<SigningKey, KeyError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    write(path, &key)?;
    Ok(key)
}

/// Writes `key` to a new file at `path`, readable only by its owner; never overwrites one.
pub fn write(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    writeln!(file, "{}", hex::encode(key.as_bytes())).and_then(|()| file.sync_all()).map_err(io)
}

/// Reads the key at `path`.
pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: shown.clone(), source })?;
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut secret).map_err(|_| KeyError::Format(shown))?;
    Ok(SigningKey::from_bytes(&secret))
}
