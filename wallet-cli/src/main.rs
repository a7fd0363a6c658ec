//! `acre`: the Acre wallet command line.
//!
//! Exit codes: 0 done, 1 refused by the network, 2 usage or local error.

mod apps;
mod files;
mod hidden;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acre_api::{Problem, ProblemCode};
use acre_ledger::{AccountId, Amount, Committee, TransferOrder};
use acre_wallet::client::{ClientError, NodeClient};
use acre_wallet::keystore::{write_new_private, KdfParams, Keystore};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use serde::Serialize;

/// Exit code of a refusal by the network.
const REFUSED: u8 = 1;
/// Exit code of a usage or local error (clap uses the same for bad arguments).
const LOCAL_ERROR: u8 = 2;

/// Acre wallet: keys, balances and transfers.
#[derive(Debug, Parser)]
#[command(name = "acre", version)]
pub(crate) struct Cli {
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Directory of key files [env: ACRE_KEYSTORE; default: the platform data directory's acre/keys].
    #[arg(long, global = true, value_name = "DIR")]
    keystore: Option<PathBuf>,
    /// Read the password from this file's first line [or env ACRE_PASSWORD; default: a hidden prompt].
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// The node whose API to use [env: ACRE_NODE; default: the running devnet's first node].
    #[arg(long, global = true, value_name = "URL")]
    node: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, show, import and export keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Show an account's balance and next sequence, and for a key of this keystore its
    /// hidden balance, opened here with the key (the password is asked for then).
    Balance {
        /// An address or a key name [default: the keystore's only key].
        account: Option<String>,
    },
    /// Show an account's history, oldest first.
    History {
        /// An address or a key name [default: the keystore's only key].
        account: Option<String>,
        /// Entries per page.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Where to start (the `next_cursor` of the previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Send credits; prints the transfer's certificate id once the elders certified it.
    Send {
        /// The recipient: an address or a key name.
        to: String,
        /// Credits to send, e.g. 12.5.
        amount: String,
        /// The paying key [default: the keystore's only key].
        #[arg(long)]
        from: Option<String>,
        /// A note for the recipient.
        #[arg(long, default_value = "")]
        memo: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Allow a recipient that has never held credits (a typo there loses the credits).
        #[arg(long)]
        allow_new_recipient: bool,
        /// Send from the hidden balance: the amount is hidden in a commitment that only
        /// the recipient opens, with a range proof in place of a visible balance check.
        #[arg(long)]
        confidential: bool,
    },
    /// Move public credits into this key's hidden balance (the amount is public here).
    Shield {
        /// Credits to shield, e.g. 12.5.
        amount: String,
        /// The key [default: the keystore's only key].
        #[arg(long)]
        from: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Move hidden credits out to a public balance (the amount is public there).
    Unshield {
        /// Credits to unshield, e.g. 12.5.
        amount: String,
        /// The account credited publicly: an address or a key name [default: the key's own].
        #[arg(long)]
        to: Option<String>,
        /// The key [default: the keystore's only key].
        #[arg(long)]
        from: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Allow a recipient that has never held credits (a typo there loses the credits).
        #[arg(long)]
        allow_new_recipient: bool,
    },
    /// What storing a file costs now.
    Quote {
        /// The file.
        file: PathBuf,
        /// Price it as a public file, stored unencrypted.
        #[arg(long)]
        public: bool,
        /// The app the upload would go through (its hex id): its price is shown too.
        #[arg(long)]
        app: Option<String>,
    },
    /// Store a file: encrypt it here, pay for its new chunks, upload them, and print the
    /// key that reads it back (ADDRESS:KEY). Repeating an interrupted put finishes it
    /// without paying again.
    Put {
        /// The file.
        file: PathBuf,
        /// Store it unencrypted, readable by anyone who learns its address.
        #[arg(long, conflicts_with = "private")]
        public: bool,
        /// Encrypt under keys only this wallet key derives, so nobody who has the same
        /// file can tell it is stored (and it shares no chunks with other users' copies).
        #[arg(long)]
        private: bool,
        /// The paying key [default: the keystore's only key].
        #[arg(long)]
        from: Option<String>,
        /// Do not ask before paying.
        #[arg(long)]
        yes: bool,
        /// Upload through this app (its hex id): its price is paid with the store cost.
        #[arg(long)]
        app: Option<String>,
    },
    /// Fetch a stored file, checking every chunk, and decrypt it.
    Get {
        /// What `acre put` printed: ADDRESS:KEY for an encrypted file, ADDRESS for a public one.
        address: String,
        /// Where to write it.
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
        /// Read through this app (its hex id), which is credited for the use.
        #[arg(long)]
        app: Option<String>,
    },
    /// Apps: register one, set its price, see it and its payouts.
    #[command(subcommand)]
    App(AppCommandArgs),
    /// Farmers: what the section's audits say of a node.
    #[command(subcommand)]
    Farmer(FarmerCommand),
    /// The credits in existence, public and hidden, with the supply audit run here from
    /// every balance and commitment: public plus hidden must equal genesis plus minted.
    Supply,
    /// Devnet only: credits from the running devnet's faucet.
    Faucet {
        /// The recipient: an address or a key name [default: the keystore's only key].
        account: Option<String>,
        /// Credits wanted.
        #[arg(default_value = "100")]
        amount: String,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommandArgs {
    /// Register an app owned by the paying key, for a fee of 1 credit to the section's farmers;
    /// prints its id once the section has it.
    Register {
        /// Its name (unique per owner).
        name: String,
        /// What each upload through it costs, in credits (0 is allowed).
        #[arg(long)]
        price: String,
        /// Where its earnings go: an address or a key name [default: the owner].
        #[arg(long)]
        payout: Option<String>,
        /// The owner key [default: the keystore's only key].
        #[arg(long)]
        from: Option<String>,
    },
    /// Change an app's price; payments already made keep the price they paid.
    SetPrice {
        /// The app: its hex id, or its name with --from.
        app: String,
        /// The new price per upload, in credits.
        price: String,
        /// The owner key [default: the keystore's only key].
        #[arg(long)]
        from: Option<String>,
    },
    /// Owner, price, fees waiting, use and lifetime earnings.
    Show {
        /// The app: its hex id, or its name with --from.
        app: String,
        /// The owner key, to name the app by name.
        #[arg(long)]
        from: Option<String>,
    },
    /// Every epoch's payout: fees and its share of use.
    Payouts {
        /// The app: its hex id, or its name with --from.
        app: String,
        /// The owner key, to name the app by name.
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum FarmerCommand {
    /// Chunks a node must hold and how its challenges went.
    Status {
        /// The node's id (acre1…), as `devnet.json` or `GET /v1/section` lists it.
        node_id: AccountId,
    },
    /// Per closed epoch: bytes proven, challenges by result and the reward, with the total.
    Statement {
        /// The node's id (acre1…).
        node_id: AccountId,
        /// First epoch.
        #[arg(long)]
        from: Option<u64>,
        /// Last epoch.
        #[arg(long)]
        to: Option<u64>,
    },
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
            let refusal = match error.downcast_ref::<ClientError>() {
                Some(ClientError::Refused(problem)) => Some(problem.code),
                _ => None,
            };
            if json {
                println!("{}", serde_json::json!({ "error": format!("{error:#}"), "code": refusal }));
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(if refusal.is_some() { REFUSED } else { LOCAL_ERROR })
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let keystore = Keystore::new(keystore_dir(cli.keystore.as_deref())?, KdfParams::STANDARD);
    match &cli.command {
        Command::Key(KeyCommand::New { name }) => {
            keystore.check_free(name)?;
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
            keystore.check_free(name)?;
            let key = read_secret(secret_file)?;
            let password = password(&cli, &format!("Password for imported key {name}: "), true)?;
            let file = keystore.import(name, &key, &password)?;
            show(&cli, &KeyView { name: file.name, address: file.address })
        }
        Command::Balance { account } => {
            let client = node_client(&cli)?;
            let address = resolve_account(&keystore, account.as_deref())?;
            let view = client.account(&address)?.with_context(|| format!("{address} has never held credits"))?;
            let hidden = hidden_balance(&cli, &keystore, &client, &address)?;
            if cli.json {
                let mut json = serde_json::to_value(&view)?;
                json["hidden"] = serde_json::to_value(&hidden)?;
                println!("{}", serde_json::to_string_pretty(&json)?);
                return Ok(());
            }
            println!("{}  {} credits  (next sequence {})", view.address, view.balance, view.next_sequence);
            match hidden {
                HiddenShown::None => {}
                HiddenShown::NotYours => println!("hidden: commitments only its key opens"),
                HiddenShown::Locked => println!("hidden: locked (give the key's password to open it)"),
                HiddenShown::Opened(balance) => {
                    println!("hidden: {} credits ({} of them incoming)", balance.total, balance.incoming);
                    if balance.unopenable > 0 {
                        println!(
                            "  {} incoming credits are left aside: their opening does not match (a wrong seal) or no certificate of the section sent them",
                            balance.unopenable
                        );
                    }
                    if balance.unchecked > 0 {
                        println!(
                            "  {} more incoming credits, smaller than these, are not counted yet",
                            balance.unchecked
                        );
                    }
                }
            }
            Ok(())
        }
        Command::History { account, limit, cursor } => {
            let client = node_client(&cli)?;
            let address = resolve_account(&keystore, account.as_deref())?;
            let page = client.history(&address, cursor.as_deref(), *limit)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else if page.entries.is_empty() {
                println!("no history for {address} from there");
            } else {
                let what: Vec<String> = page.entries.iter().map(|entry| describe(&entry.change)).collect();
                let header = "what (#n: the sender's sequence number)";
                let width = what.iter().map(String::len).chain([header.len()]).max().unwrap_or(0);
                println!("{:>5}  {header:<width$}  {:>20}  {:>20}", "entry", "credits", "balance after");
                for (entry, what) in page.entries.iter().zip(&what) {
                    println!("{:>5}  {what:<width$}  {:>20}  {:>20}", entry.index, entry.amount, entry.balance_after);
                }
                if let Some(next) = &page.next_cursor {
                    println!("more: acre history {address} --cursor {next}");
                }
            }
            Ok(())
        }
        Command::Send { to, amount, from, memo, yes, allow_new_recipient, confidential: true } => {
            let sender = key_or_only(&keystore, from.as_deref())?;
            let to = resolve_account(&keystore, Some(to))?;
            let action = acre_ledger::confidential::HiddenAction::Transfer { to, amount: amount.parse()? };
            hidden::run(&cli, hidden_request(&keystore, sender, action, memo, *yes, *allow_new_recipient))
        }
        Command::Shield { amount, from, yes } => {
            let sender = key_or_only(&keystore, from.as_deref())?;
            let action = acre_ledger::confidential::HiddenAction::Shield { amount: amount.parse()? };
            hidden::run(&cli, hidden_request(&keystore, sender, action, "", *yes, false))
        }
        Command::Unshield { amount, to, from, yes, allow_new_recipient } => {
            let sender = key_or_only(&keystore, from.as_deref())?;
            let to = to.as_deref().map(|to| resolve_account(&keystore, Some(to))).transpose()?;
            let to = hidden::own_or(to, &sender);
            let action = acre_ledger::confidential::HiddenAction::Unshield { to, amount: amount.parse()? };
            hidden::run(&cli, hidden_request(&keystore, sender, action, "", *yes, *allow_new_recipient))
        }
        Command::Send { to, amount, from, memo, yes, allow_new_recipient, confidential: false } => {
            let request = SendRequest {
                to: resolve_account(&keystore, Some(to))?,
                amount: amount.parse()?,
                sender: match from {
                    Some(name) => keystore.load(name)?,
                    None => only_key(&keystore)?,
                },
                journal_dir: keystore.dir().join("pending"),
                memo,
                yes: *yes,
                allow_new_recipient: *allow_new_recipient,
                password: None,
            };
            send(&cli, &request)
        }
        Command::Quote { file, public, app } => {
            let app = app.as_deref().map(|app| apps::resolve(app, None)).transpose()?;
            files::quote(&cli, file, *public, app.as_ref())
        }
        Command::Supply => {
            let client = node_client(&cli)?;
            let supply = client.supply()?;
            let check = hidden::audit_supply(&client)?;
            if cli.json {
                let mut json = serde_json::to_value(&supply)?;
                json["audit"] = serde_json::to_value(&check)?;
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                println!(
                    "genesis {}  minted {}  public {}  hidden {}  cap {}  ({} epochs)",
                    supply.genesis, supply.minted, supply.circulating, supply.hidden, supply.cap, supply.epochs
                );
                let audit = &check.audit;
                println!(
                    "audit over {} balances and {} commitments: public {} + hidden {} = issued {}; the commitments sum to {}",
                    check.balances, check.commitments, audit.public, audit.hidden, audit.issued, audit.commitment_sum
                );
            }
            if !check.audit.holds {
                bail!(
                    "the supply audit fails: the commitments do not sum to a commitment to {} hidden credits",
                    check.audit.hidden
                );
            }
            if !cli.json {
                println!("the audit holds: no credit was created or lost behind the commitments");
            }
            Ok(())
        }
        Command::Put { file, public, private, from, yes, app } => {
            let request = files::PutRequest {
                file,
                sealing: match (public, private) {
                    (true, _) => files::Sealing::Public,
                    (false, true) => files::Sealing::Private,
                    (false, false) => files::Sealing::Convergent,
                },
                payer: match from {
                    Some(name) => keystore.load(name)?,
                    None => only_key(&keystore)?,
                },
                journal_dir: keystore.dir().join("uploads"),
                yes: *yes,
                app: app.as_deref().map(|app| apps::resolve(app, None)).transpose()?,
            };
            files::put(&cli, &request)
        }
        Command::Get { address, out, app } => {
            let app = app.as_deref().map(|app| apps::resolve(app, None)).transpose()?;
            files::get(&cli, address, out, app.as_ref())
        }
        Command::App(AppCommandArgs::Register { name, price, payout, from }) => {
            let owner = key_or_only(&keystore, from.as_deref())?;
            let payout = match payout {
                Some(payout) => resolve_account(&keystore, Some(payout))?,
                None => owner.address,
            };
            apps::register(&cli, &owner, name, price.parse()?, payout)
        }
        Command::App(AppCommandArgs::SetPrice { app, price, from }) => {
            let owner = key_or_only(&keystore, from.as_deref())?;
            let app = apps::resolve(app, Some(&owner))?;
            apps::set_price(&cli, &owner, &app, price.parse()?)
        }
        Command::App(AppCommandArgs::Show { app, from }) => {
            let owner = from.as_deref().map(|name| keystore.load(name)).transpose()?;
            apps::show(&cli, &apps::resolve(app, owner.as_ref())?)
        }
        Command::App(AppCommandArgs::Payouts { app, from }) => {
            let owner = from.as_deref().map(|name| keystore.load(name)).transpose()?;
            apps::payouts(&cli, &apps::resolve(app, owner.as_ref())?)
        }
        Command::Farmer(FarmerCommand::Status { node_id }) => files::farmer_status(&cli, node_id),
        Command::Farmer(FarmerCommand::Statement { node_id, from, to }) => {
            files::farmer_statement(&cli, node_id, *from, *to)
        }
        Command::Faucet { account, amount } => {
            let manifest = devnet_manifest()?;
            let faucet = Keystore::new(&manifest.faucet.keystore, KdfParams::STANDARD);
            let request = SendRequest {
                to: resolve_account(&keystore, account.as_deref())?,
                amount: amount.parse()?,
                sender: faucet.load(&manifest.faucet.key)?,
                journal_dir: faucet.dir().join("pending"),
                memo: "devnet faucet",
                yes: true,
                allow_new_recipient: true,
                password: Some(manifest.faucet.password.clone()),
            };
            send(&cli, &request)
        }
        Command::Key(KeyCommand::Export { name, out }) => {
            let file = keystore.load(name)?;
            let key = file.unlock(&password(&cli, &format!("Password for key {name}: "), false)?)?;
            let secret = format!("{}\n", hex::encode(key.as_bytes()));
            write_new_private(out, secret.as_bytes()).with_context(|| format!("creating {}", out.display()))?;
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
pub(crate) fn password(cli: &Cli, prompt: &str, confirm: bool) -> Result<String> {
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

/// What `acre balance` shows of a hidden balance.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum HiddenShown {
    /// Nothing hidden.
    None,
    /// Hidden amounts the keystore holds no key for.
    NotYours,
    /// The keystore's key, with no password given to open it.
    Locked,
    /// Opened with the key.
    Opened(hidden::HiddenBalance),
}

/// Opens the hidden balance of `address` when the keystore holds its key.
fn hidden_balance(cli: &Cli, keystore: &Keystore, client: &NodeClient, address: &AccountId) -> Result<HiddenShown> {
    let Some(view) = client.hidden(address)?.filter(hidden::holds_anything) else {
        return Ok(HiddenShown::None);
    };
    let Some(file) = keystore.list()?.into_iter().find(|file| file.address == *address) else {
        return Ok(HiddenShown::NotYours);
    };
    // Without a password to give (a script, no ACRE_PASSWORD) the public balance still shows.
    let prompt = format!("Password for key {} (to open its hidden balance): ", file.name);
    let Ok(password) = password(cli, &prompt, false) else {
        return Ok(HiddenShown::Locked);
    };
    let committee = committee_of(client)?;
    Ok(HiddenShown::Opened(hidden::open(client, &committee, &view, &file.unlock(&password)?)?))
}

fn hidden_request(
    keystore: &Keystore,
    sender: acre_wallet::keystore::KeyFile,
    action: acre_ledger::confidential::HiddenAction,
    memo: &str,
    yes: bool,
    allow_new_recipient: bool,
) -> hidden::HiddenRequest {
    hidden::HiddenRequest {
        sender,
        action,
        journal_dir: keystore.dir().join("pending"),
        memo: memo.to_owned(),
        yes,
        allow_new_recipient,
    }
}

/// The arguments of `acre send` (and of the faucet's send).
struct SendRequest<'a> {
    to: AccountId,
    amount: Amount,
    sender: acre_wallet::keystore::KeyFile,
    /// Where signed orders wait until settled.
    journal_dir: PathBuf,
    memo: &'a str,
    yes: bool,
    allow_new_recipient: bool,
    /// The sender key's password, when the wallet does not ask for it.
    password: Option<String>,
}

/// Signs an order at the sender's next sequence, has it certified, and checks the
/// certificate against the section's elders before reporting success.
///
/// The signed order is written to a journal before it is sent and removed once settled, so
/// a send cut short (timeout, Ctrl-C) is finished by repeating it, never paid twice, and no
/// other order is signed for that sequence meanwhile.
fn send(cli: &Cli, request: &SendRequest<'_>) -> Result<()> {
    let client = node_client(cli)?;
    let (to, amount, file) = (request.to, request.amount, &request.sender);
    let journal = request.journal_dir.join(format!("{}.json", file.address));
    if let Some(previous) = read_journal(&journal)? {
        let order = &previous.order;
        let repeated = order.to == to && order.amount == amount && order.memo == request.memo;
        match client.transfer(&order.digest())? {
            Some(transfer) => {
                std::fs::remove_file(&journal)?;
                if repeated {
                    return report(cli, &client, &previous, &transfer, "already sent");
                }
            }
            None if repeated => return submit(cli, &client, &journal, &previous),
            None => bail!(
                "an earlier send of {} to {} is not confirmed yet; repeat that send to finish it",
                order.amount,
                order.to
            ),
        }
    }
    let sender = client.account(&file.address)?.with_context(|| format!("{} has never held credits", file.address))?;
    if !request.allow_new_recipient && client.account(&to)?.is_none() {
        bail!("{to} has never held credits: check the address, or pass --allow-new-recipient");
    }
    let order = TransferOrder {
        network: client.section()?.network,
        from: file.address,
        to,
        amount,
        sequence: sender.next_sequence,
        app: None,
        memo: request.memo.to_owned(),
        hidden: None,
    };
    if let Some(pending) = &sender.pending_order {
        if pending.order != order {
            bail!(
                "an earlier order of {} to {} is pending at sequence {}; repeat that send to finish it",
                pending.order.amount,
                pending.order.to,
                pending.order.sequence
            );
        }
    }
    if sender.balance < amount {
        // The elders would refuse it for this reason; saying so now spares the password. It
        // may pass later, once credits on their way are applied, so it is a conflict.
        let detail = format!(
            "this node shows {} holding {} credits, less than the {amount} to send; retry if credits are on their way",
            file.name, sender.balance
        );
        let refusal = Problem::new(reqwest::StatusCode::CONFLICT, ProblemCode::InsufficientBalance, detail);
        return Err(ClientError::Refused(refusal).into());
    }
    if !request.yes {
        confirm(&format!("Send {amount} credits from {} to {to}?", file.name))?;
    }
    let password = match &request.password {
        Some(password) => password.clone(),
        None => password(cli, &format!("Password for key {}: ", file.name), false)?,
    };
    let key = file.unlock(&password)?;
    let signed = order.sign(&key);
    write_journal(&journal, &signed)?;
    submit(cli, &client, &journal, &signed)
}

/// Sends a journaled order. A final refusal clears the journal; an answer that may hide
/// votes keeps it, so repeating the command sends the very same order: no quorum yet, a
/// failing disk, or a refusal that may pass later (409 other than a conflict: some elders
/// voted while others lacked credits or certificates still on their way).
fn submit(cli: &Cli, client: &NodeClient, journal: &Path, signed: &acre_ledger::SignedOrder) -> Result<()> {
    match client.submit_order(signed) {
        Ok(transfer) => {
            std::fs::remove_file(journal)?;
            report(cli, client, signed, &transfer, "sent")
        }
        Err(ClientError::Refused(problem)) if !may_hide_votes(&problem) => {
            std::fs::remove_file(journal)?;
            Err(ClientError::Refused(problem).into())
        }
        Err(error) => Err(error.into()),
    }
}

/// Whether a refusal may leave some elders' votes (and locks) behind it.
fn may_hide_votes(problem: &Problem) -> bool {
    let retryable_conflict = problem.status == 409 && problem.code != ProblemCode::ConflictingOrder;
    retryable_conflict || matches!(problem.code, ProblemCode::NoQuorum | ProblemCode::Storage | ProblemCode::Other)
}

/// Writes a signed order to its journal, in the keystore's private directory, before it
/// is sent: whatever happens next, repeating the command finds it.
pub(crate) fn write_journal(journal: &Path, signed: &acre_ledger::SignedOrder) -> Result<()> {
    if let Some(dir) = journal.parent() {
        acre_wallet::keystore::create_private_dir(dir)?;
    }
    std::fs::write(journal, serde_json::to_vec(signed)?).with_context(|| format!("writing {}", journal.display()))
}

fn read_journal(path: &Path) -> Result<Option<acre_ledger::SignedOrder>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Checks the certificate against the elders and that it certifies exactly `signed`,
/// then prints it. For a devnet node the elders are pinned from the devnet's manifest;
/// otherwise they are the section's as the node reports them.
fn report(
    cli: &Cli,
    client: &NodeClient,
    signed: &acre_ledger::SignedOrder,
    transfer: &acre_api::ledger::TransferView,
    verb: &str,
) -> Result<()> {
    let committee = committee_of(client)?;
    committee.verify_certificate(&transfer.certificate)?;
    if transfer.certificate.order != signed.order || transfer.id != transfer.certificate.id() {
        bail!("the node returned a certificate for another order");
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(transfer)?);
        return Ok(());
    }
    let order = &signed.order;
    let what = match order.hidden.as_ref().map(|hidden| &hidden.kind) {
        None => format!("{verb} {} to {}", order.amount, order.to),
        Some(acre_ledger::confidential::HiddenKind::Shield) => format!("shielded {}", order.amount),
        Some(acre_ledger::confidential::HiddenKind::Unshield) => format!("unshielded {} to {}", order.amount, order.to),
        Some(acre_ledger::confidential::HiddenKind::Transfer { .. }) => {
            format!("{verb} a hidden amount to {}", order.to)
        }
    };
    println!("{what}: certificate {}", transfer.id);
    Ok(())
}

/// The elders certificates are checked against: pinned from the devnet's manifest for a
/// devnet node, otherwise the section's as the node reports them.
pub(crate) fn committee_of(client: &NodeClient) -> Result<Committee> {
    let elders = match devnet_manifest() {
        Ok(manifest) if manifest.nodes.iter().any(|node| node.api == client.base()) => manifest.elders(),
        _ => client.section()?.elders.into_iter().map(|elder| elder.id).collect(),
    };
    Ok(Committee::new(elders)?)
}

/// The node from `--node`, else `ACRE_NODE`, else the running devnet's first node. With
/// none of them there is no node to guess: the error says how to name one.
pub(crate) fn node_client(cli: &Cli) -> Result<NodeClient> {
    if let Some(url) = cli.node.clone().or_else(|| std::env::var("ACRE_NODE").ok()) {
        return Ok(NodeClient::new(&url)?);
    }
    let manifest = devnet_manifest().map_err(|error| {
        anyhow::anyhow!(
            "no node to talk to: pass --node URL or set ACRE_NODE, or start a devnet with `make devnet` ({error:#})"
        )
    })?;
    let first = manifest.nodes.first().context("the devnet's manifest lists no node")?;
    Ok(NodeClient::new(&first.api)?)
}

/// The manifest of the devnet in `ACRE_DEVNET` or the default devnet directory.
fn devnet_manifest() -> Result<acre_api::devnet::Manifest> {
    let dir = acre_api::devnet::default_dir().context("no home directory; set ACRE_DEVNET")?;
    Ok(acre_api::devnet::Manifest::read(&dir)?)
}

/// An address as given, or the address of a named key, or the keystore's only key. Text
/// that looks like an address (it starts with `acre1`) is read as one, so a mistyped
/// address reports its checksum error rather than a missing key of that name.
fn resolve_account(keystore: &Keystore, text: Option<&str>) -> Result<AccountId> {
    match text {
        None => Ok(only_key(keystore)?.address),
        Some(text) if text.starts_with(&format!("{}1", acre_ledger::ACCOUNT_HRP)) => match text.parse::<AccountId>() {
            Ok(address) => Ok(address),
            Err(error) => match keystore.load(text) {
                Ok(key) => Ok(key.address),
                Err(_) => Err(error).with_context(|| format!("{text} is not a valid address")),
            },
        },
        Some(text) => match text.parse::<AccountId>() {
            Ok(address) => Ok(address),
            Err(_) => Ok(keystore.load(text)?.address),
        },
    }
}

/// The named key, or the keystore's only key.
fn key_or_only(keystore: &Keystore, name: Option<&str>) -> Result<acre_wallet::keystore::KeyFile> {
    match name {
        Some(name) => Ok(keystore.load(name)?),
        None => only_key(keystore),
    }
}

fn only_key(keystore: &Keystore) -> Result<acre_wallet::keystore::KeyFile> {
    let mut keys = keystore.list()?;
    match keys.len() {
        1 => Ok(keys.remove(0)),
        0 => bail!("no keys yet: create one with `acre key new NAME`"),
        _ => bail!("several keys: name one (see `acre key list`)"),
    }
}

fn describe(change: &acre_ledger::Change) -> String {
    match change {
        acre_ledger::Change::Genesis => "genesis".to_owned(),
        acre_ledger::Change::Sent { to, sequence } => format!("sent to {to} (#{sequence})"),
        acre_ledger::Change::Received { from, sequence } => format!("from {from} (#{sequence})"),
        acre_ledger::Change::Reward { epoch } => format!("farming reward, epoch {epoch}"),
        acre_ledger::Change::PoolPayout { epoch } => format!("pool paid out, epoch {epoch}"),
        acre_ledger::Change::AppPayout { epoch, app } => format!("app {app} earnings, epoch {epoch}"),
        acre_ledger::Change::Shielded { sequence } => format!("shielded into the hidden balance (#{sequence})"),
        acre_ledger::Change::Unshielded { to, sequence } => format!("unshielded to {to} (#{sequence})"),
        acre_ledger::Change::SentHidden { to, sequence } => format!("hidden amount sent to {to} (#{sequence})"),
        acre_ledger::Change::ReceivedHidden { from, sequence } => format!("hidden amount from {from} (#{sequence})"),
    }
}

/// Asks yes/no at a terminal; elsewhere refuses, so a script must say `--yes`.
pub(crate) fn confirm(question: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("not at a terminal: pass --yes to go on without confirmation");
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("cancelled");
    }
    Ok(())
}
