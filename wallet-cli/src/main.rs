//! `acre`: the Acre wallet command line.
//!
//! Exit codes: 0 done, 1 refused by the network, 2 usage or local error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acre_ledger::AccountId;
use acre_wallet::keystore::{KdfParams, Keystore};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use serde::Serialize;

/// Exit code of a usage or local error (clap uses the same for bad arguments).
const LOCAL_ERROR: u8 = 2;

/// Acre wallet: keys, balances and transfers.
#[derive(Debug, Parser)]
#[command(name = "acre", version)]
struct Cli {
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Directory of key files [env: ACRE_KEYSTORE; default: the platform data directory's acre/keys].
    #[arg(long, global = true, value_name = "DIR")]
    keystore: Option<PathBuf>,
    /// Read the password from this file's first line [or env ACRE_PASSWORD; default: a hidden prompt].
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, show, import and export keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key from the system's randomness, sealed under a password.
    New {
        /// Name for the key in this keystore.
        name: String,
    },
    /// List the keys and their addresses.
    List,
    /// Show one key's address.
    Show {
        /// The key's name.
        name: String,
    },
    /// Store an existing secret (64 hex characters in a file) under a new name.
    Import {
        /// Name for the key in this keystore.
        name: String,
        /// File holding the secret as 64 hexadecimal characters.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
    },
    /// Write a key's secret, unencrypted, to a new file readable only by you.
    Export {
        /// The key's name.
        name: String,
        /// The file to create; it must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// A key as shown to the user.
#[derive(Debug, Serialize)]
struct KeyView {
    name: String,
    address: AccountId,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if json {
                let problem = serde_json::json!({ "error": format!("{error:#}") });
                println!("{problem}");
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(LOCAL_ERROR)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let keystore = Keystore::new(keystore_dir(cli.keystore.as_deref())?, KdfParams::STANDARD);
    match &cli.command {
        Command::Key(KeyCommand::New { name }) => {
            let password = password(&cli, &format!("Password for new key {name}: "), true)?;
            let file = keystore.generate(name, &password)?;
            show(&cli, &KeyView { name: file.name, address: file.address })
        }
        Command::Key(KeyCommand::List) => {
            let keys: Vec<KeyView> =
                keystore.list()?.into_iter().map(|f| KeyView { name: f.name, address: f.address }).collect();
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no keys in {} (create one with `acre key new NAME`)", keystore.dir().display());
            } else {
                keys.iter().for_each(|key| println!("{:<20} {}", key.name, key.address));
            }
            Ok(())
        }
        Command::Key(KeyCommand::Show { name }) => {
            let file = keystore.load(name)?;
            show(&cli, &KeyView { name: file.name, address: file.address })
        }
        Command::Key(KeyCommand::Import { name, secret_file }) => {
            let key = read_secret(secret_file)?;
            let password = password(&cli, &format!("Password for imported key {name}: "), true)?;
            let file = keystore.import(name, &key, &password)?;
            show(&cli, &KeyView { name: file.name, address: file.address })
        }
        Command::Key(KeyCommand::Export { name, out }) => {
            let file = keystore.load(name)?;
            let key = file.unlock(&password(&cli, &format!("Password for key {name}: "), false)?)?;
            write_private(out, &hex::encode(key.as_bytes()))?;
            if cli.json {
                println!("{}", serde_json::json!({ "name": name, "address": file.address, "secret_file": out }));
            } else {
                println!("wrote the secret of {name} to {} — anyone who reads it can spend", out.display());
            }
            Ok(())
        }
    }
}

fn show(cli: &Cli, key: &KeyView) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(key)?);
    } else {
        println!("{}  {}", key.name, key.address);
    }
    Ok(())
}

fn keystore_dir(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    if let Some(dir) = std::env::var_os("ACRE_KEYSTORE") {
        return Ok(dir.into());
    }
    let dirs = directories::ProjectDirs::from("", "", "acre").context("no home directory; pass --keystore")?;
    Ok(dirs.data_dir().join("keys"))
}

/// The password from `--password-file`, `ACRE_PASSWORD`, or a hidden prompt (asked twice
/// when `confirm`, so a typo cannot seal a key under an unknown password).
fn password(cli: &Cli, prompt: &str, confirm: bool) -> Result<String> {
    if let Some(path) = &cli.password_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    if let Ok(password) = std::env::var("ACRE_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: give --password-file or set ACRE_PASSWORD when not at a terminal");
    }
    let password = rpassword::prompt_password(prompt)?;
    if confirm && rpassword::prompt_password("Again: ")? != password {
        bail!("the passwords differ");
    }
    Ok(password)
}

fn read_secret(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut secret).context("the secret must be 64 hexadecimal characters")?;
    Ok(SigningKey::from_bytes(&secret))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{contents}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
