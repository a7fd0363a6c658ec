//! Encrypted key files: one JSON file per key, its secret sealed with XChaCha20-Poly1305
//! under a key stretched from the password by scrypt. The account address is bound as
//! associated data, so a file whose address was edited no longer opens.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use acre_ledger::AccountId;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The format version this code writes and reads.
const FORMAT_VERSION: u32 = 1;
const SALT_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Why a keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Key names become file names: keep them plain.
    #[error("key name {0:?} must be 1-64 letters, digits, '-' or '_'")]
    InvalidName(String),
    /// A key of that name exists; keys are never overwritten.
    #[error("a key named {0:?} already exists")]
    NameTaken(String),
    /// No key of that name.
    #[error("no key named {0:?} (see `acre key list`)")]
    NotFound(String),
    /// The password does not open the key (or the file was altered).
    #[error("wrong password for key {0:?}, or its file was altered")]
    WrongPassword(String),
    /// The file is not a key file this version understands.
    #[error("key file {path} is unreadable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The scrypt parameters are out of range.
    #[error("invalid key-stretching parameters: {0}")]
    Kdf(String),
    /// A key may not be sealed under an empty password.
    #[error("the password is empty")]
    EmptyPassword,
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// scrypt cost parameters, stored in each file so they can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// log2 of the CPU/memory cost.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

/// Most scrypt cost a file may ask for: 2^20 x 8 x 128 B = 1 GiB. A file asking more is
/// refused rather than allowed to exhaust memory.
const MAX_LOG_N: u8 = 20;

impl KdfParams {
    /// 2^15 x 8 x 128 B = 32 MiB and ~0.1 s per unlock: the cost eth-keystore calls light,
    /// ample for a password guarded by the file system too.
    pub const STANDARD: KdfParams = KdfParams { log_n: 15, r: 8, p: 1 };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kdf {
    algorithm: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cipher {
    algorithm: String,
    nonce: String,
    ciphertext: String,
}

/// One key file as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    version: u32,
    /// The key's name in this keystore.
    pub name: String,
    /// The account the key signs for.
    pub address: AccountId,
    kdf: Kdf,
    cipher: Cipher,
}

impl KeyFile {
    /// Seals `key` under `password`.
    pub fn seal(name: &str, key: &SigningKey, password: &str, params: KdfParams) -> Result<Self, KeystoreError> {
        if password.is_empty() {
            return Err(KeystoreError::EmptyPassword);
        }
        let address = AccountId::of(key);
        let mut salt = [0u8; SALT_BYTES];
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        let cipher = cipher_for(password, &salt, params)?;
        let payload = Payload { msg: key.as_bytes().as_slice(), aad: address.as_bytes() };
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| KeystoreError::Kdf("encryption failed".into()))?;
        Ok(KeyFile {
            version: FORMAT_VERSION,
            name: name.to_owned(),
            address,
            kdf: Kdf { algorithm: "scrypt".into(), params, salt: hex::encode(salt) },
            cipher: Cipher {
                algorithm: "xchacha20poly1305".into(),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ciphertext),
            },
        })
    }

    /// Opens the key with `password`.
    pub fn unlock(&self, password: &str) -> Result<SigningKey, KeystoreError> {
        let corrupt = |reason: &str| KeystoreError::Corrupt { path: PathBuf::from(&self.name), reason: reason.into() };
        if self.version != FORMAT_VERSION
            || self.kdf.algorithm != "scrypt"
            || self.cipher.algorithm != "xchacha20poly1305"
        {
            return Err(corrupt("unknown version or algorithm"));
        }
        let salt = hex::decode(&self.kdf.salt).map_err(|_| corrupt("salt is not hex"))?;
        let nonce: [u8; NONCE_BYTES] = hex::decode(&self.cipher.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| corrupt("nonce is not 24 hex bytes"))?;
        let ciphertext = hex::decode(&self.cipher.ciphertext).map_err(|_| corrupt("ciphertext is not hex"))?;
        let cipher = cipher_for(password, &salt, self.kdf.params)?;
        let payload = Payload { msg: ciphertext.as_slice(), aad: self.address.as_bytes() };
        let secret = cipher
            .decrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| KeystoreError::WrongPassword(self.name.clone()))?;
        let secret: [u8; 32] = secret.try_into().map_err(|_| corrupt("secret is not 32 bytes"))?;
        let key = SigningKey::from_bytes(&secret);
        if AccountId::of(&key) != self.address {
            return Err(corrupt("secret does not match the address"));
        }
        Ok(key)
    }
}

fn cipher_for(password: &str, salt: &[u8], params: KdfParams) -> Result<XChaCha20Poly1305, KeystoreError> {
    if params.log_n > MAX_LOG_N || params.r > 32 || params.p > 16 {
        return Err(KeystoreError::Kdf(format!("cost {params:?} is above what this wallet will spend")));
    }
    let scrypt_params =
        scrypt::Params::new(params.log_n, params.r, params.p, 32).map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), salt, &scrypt_params, &mut key)
        .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    Ok(XChaCha20Poly1305::new(&key.into()))
}

/// A directory of key files, `NAME.json` each.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
    params: KdfParams,
}

impl Keystore {
    /// The keystore in `dir` (created on first write), sealing new keys with `params`.
    pub fn new(dir: impl Into<PathBuf>, params: KdfParams) -> Self {
        Keystore { dir: dir.into(), params }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a key from the operating system's randomness.
    pub fn generate(&self, name: &str, password: &str) -> Result<KeyFile, KeystoreError> {
        self.import(name, &SigningKey::generate(&mut OsRng), password)
    }

    /// Refuses `name` before any password is asked: not a valid name, or one already taken.
    pub fn check_free(&self, name: &str) -> Result<(), KeystoreError> {
        if self.path_of(name)?.exists() {
            return Err(KeystoreError::NameTaken(name.to_owned()));
        }
        Ok(())
    }

    /// Stores an existing key under `name`; never overwrites one.
    pub fn import(&self, name: &str, key: &SigningKey, password: &str) -> Result<KeyFile, KeystoreError> {
        let path = self.path_of(name)?;
        let file = KeyFile::seal(name, key, password, self.params)?;
        let io = |source| KeystoreError::Io { path: path.clone(), source };
        create_private_dir(&self.dir)?;
        let json = serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
        write_new_private(&path, &json).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeystoreError::NameTaken(name.to_owned()),
            _ => io(source),
        })?;
        Ok(file)
    }

    /// Reads the key file called `name`.
    pub fn load(&self, name: &str) -> Result<KeyFile, KeystoreError> {
        let path = self.path_of(name)?;
        let bytes = fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => KeystoreError::NotFound(name.to_owned()),
            _ => KeystoreError::Io { path: path.clone(), source },
        })?;
        serde_json::from_slice(&bytes).map_err(|e| KeystoreError::Corrupt { path, reason: e.to_string() })
    }

    /// Every key file, by name. A missing directory is an empty keystore.
    pub fn list(&self) -> Result<Vec<KeyFile>, KeystoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => return Err(KeystoreError::Io { path: self.dir.clone(), source }),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
            .filter(|name| valid_name(name))
            .collect();
        names.sort();
        names.iter().map(|name| self.load(name)).collect()
    }

    fn path_of(&self, name: &str) -> Result<PathBuf, KeystoreError> {
        if !valid_name(name) {
            return Err(KeystoreError::InvalidName(name.to_owned()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }
}

/// Writes `contents` to a new file readable only by its owner, synced; an existing file is
/// never replaced (`AlreadyExists`).
pub fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Creates `dir` (and its parents) readable only by its owner, so others cannot even list
/// key names.
pub fn create_private_dir(dir: &Path) -> Result<(), KeystoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| KeystoreError::Io { path: dir.to_owned(), source })
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: these tests check the format, not the cost.
    const LIGHT: KdfParams = KdfParams { log_n: 4, r: 8, p: 1 };

    fn keystore() -> (tempfile::TempDir, Keystore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let keystore = Keystore::new(dir.path().join("keys"), LIGHT);
        (dir, keystore)
    }

    #[test]
    fn a_key_round_trips_under_its_password_only() {
        let (_dir, keystore) = keystore();
        let file = keystore.generate("alice", "correct horse").expect("generate");
        let loaded = keystore.load("alice").expect("load");
        let key = loaded.unlock("correct horse").expect("unlock");
        assert_eq!(AccountId::of(&key), file.address);
        assert!(matches!(loaded.unlock("wrong"), Err(KeystoreError::WrongPassword(_))));
        let names: Vec<String> = keystore.list().expect("list").into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["alice"]);
    }

    #[test]
    fn keys_are_never_overwritten_and_names_stay_plain() {
        let (_dir, keystore) = keystore();
        let first = keystore.generate("bob", "pw").expect("generate");
        assert!(matches!(keystore.generate("bob", "pw"), Err(KeystoreError::NameTaken(_))));
        assert_eq!(keystore.load("bob").expect("load").address, first.address);
        for bad in ["", "../evil", "a b", "x".repeat(65).as_str()] {
            assert!(matches!(keystore.generate(bad, "pw"), Err(KeystoreError::InvalidName(_))), "{bad:?}");
        }
        assert!(matches!(keystore.load("nobody"), Err(KeystoreError::NotFound(_))));
    }

    #[test]
    fn empty_passwords_and_absurd_costs_are_refused() {
        let (_dir, keystore) = keystore();
        assert!(matches!(keystore.generate("erin", ""), Err(KeystoreError::EmptyPassword)));
        let mut file = keystore.generate("erin", "pw").expect("generate");
        file.kdf.params.log_n = 40;
        assert!(matches!(file.unlock("pw"), Err(KeystoreError::Kdf(_))));
    }

    #[test]
    fn an_edited_address_no_longer_opens() {
        let (_dir, keystore) = keystore();
        let file = keystore.generate("carol", "pw").expect("generate");
        let mut edited = file.clone();
        edited.address = AccountId::of(&SigningKey::from_bytes(&[9; 32]));
        assert!(matches!(edited.unlock("pw"), Err(KeystoreError::WrongPassword(_))));
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, keystore) = keystore();
        keystore.generate("dave", "pw").expect("generate");
        let mode = fs::metadata(keystore.dir().join("dave.json")).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o077, 0, "group or others can read the key file");
    }
}
