//! `acre quote`, `acre put`, `acre get` and `acre farmer status`: files stored on the
//! section, paid for in credits.
//!
//! A put is resumable and never pays twice: before paying, the signed payment is written to
//! an upload journal named after the file's address; the certificate goes there once the
//! elders certify it; only when every chunk is stored is the journal removed. Repeating an
//! interrupted `acre put` finds the journal and finishes with the same payment.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use acre_api::storage::{ChunkEntry, StorePayment};
use acre_ledger::economics::{billable_bytes, store_memo_with_app_fee};
use acre_ledger::{AccountId, Amount, AppId, Certificate, Digest, SignedOrder, TransferOrder};
use acre_proofs::{encrypt_file, split_file, Chunk, ChunkAddress, DataMap, FileKey, Privacy, SecretMap};
use acre_wallet::client::{ClientError, NodeClient};
use acre_wallet::keystore::{create_private_dir, KeyFile};
use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::{confirm, node_client, password, Cli};

/// How `acre put` seals a file before it leaves this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sealing {
    /// Stored as it is; its address alone reads it.
    Public,
    /// Encrypted under keys from its content: the same file is stored and paid once.
    Convergent,
    /// Encrypted under keys salted by the paying wallet key.
    Private,
}

/// A file split into its chunks, the data map last (its address names the file).
struct SplitFile {
    chunks: Vec<Chunk>,
    address: ChunkAddress,
    size: u64,
    /// What reads it back: `ADDRESS:KEY`, or the address of a public file.
    locator: String,
}

fn split(path: &Path, sealing: Sealing, owner: Option<&SigningKey>) -> Result<SplitFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let privacy = match (sealing, owner) {
        (Sealing::Public, _) => {
            let (mut chunks, map) = split_file(&bytes)?;
            let map_chunk = map.to_chunk()?;
            let address = map_chunk.address();
            chunks.push(map_chunk);
            return Ok(SplitFile { chunks, address, size: bytes.len() as u64, locator: address.to_string() });
        }
        (Sealing::Private, Some(owner)) => Privacy::Private(private_salt(owner)),
        (Sealing::Private, None) => bail!("a private file needs its owner's key"),
        (Sealing::Convergent, _) => Privacy::Convergent,
    };
    let file = encrypt_file(&bytes, privacy)?;
    Ok(SplitFile { address: file.key.map, size: file.size, locator: file.key.to_string(), chunks: file.chunks })
}

/// The salt of a wallet key's private files: derived from the secret key, so the same
/// key finds the same chunks again and nobody else can.
fn private_salt(owner: &SigningKey) -> [u8; 32] {
    blake3::derive_key("acre 2026-12 private file salt", owner.as_bytes())
}

/// The chunks with repeats left out (a file with repeated content repeats chunks), so
/// nothing is paid for twice.
fn distinct(chunks: &[Chunk]) -> impl Iterator<Item = &Chunk> {
    let mut seen = std::collections::HashSet::new();
    chunks.iter().filter(move |chunk| seen.insert(chunk.address()))
}

/// `acre quote FILE`.
pub(crate) fn quote(cli: &Cli, file: &Path, public: bool, app: Option<&AppId>) -> Result<()> {
    let client = node_client(cli)?;
    // A private file's chunks have the same sizes as a convergent one's, so the price
    // needs no key.
    let split = split(file, if public { Sealing::Public } else { Sealing::Convergent }, None)?;
    let bytes = billable_bytes(distinct(&split.chunks).map(Chunk::size)).context("the file is too large")?;
    let quote = client.quote(bytes, app)?;
    if cli.json {
        let view =
            serde_json::json!({ "file": split.address.to_string(), "chunks": split.chunks.len(), "quote": quote });
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    match quote.price {
        Some(price) => println!(
            "{}: {} in {} chunks; storing costs {price} credits (section {:.2}% full)",
            file.display(),
            size_text(split.size),
            split.chunks.len(),
            percent(quote.used, quote.capacity)
        ),
        None => println!("the section is full and takes no new chunks"),
    }
    if let (Some(app), Some(price)) = (quote.app, quote.app_price) {
        println!("  plus {price} credits for app {app}, paid with the store payment");
    }
    Ok(())
}

/// What an interrupted put left: the payment, signed and perhaps certified.
#[derive(Debug, Serialize, Deserialize)]
struct UploadJournal {
    /// The chunks the payment is for.
    chunks: Vec<ChunkEntry>,
    /// The signed payment.
    order: SignedOrder,
    /// Its certificate, once the elders certified it.
    certificate: Option<Certificate>,
}

/// The arguments of `acre put`.
pub(crate) struct PutRequest<'a> {
    /// The file.
    pub(crate) file: &'a Path,
    /// How it is sealed.
    pub(crate) sealing: Sealing,
    /// The paying key.
    pub(crate) payer: KeyFile,
    /// Where upload journals are kept.
    pub(crate) journal_dir: PathBuf,
    /// Do not ask before paying.
    pub(crate) yes: bool,
    /// The app the upload goes through, whose price is paid with the store cost.
    pub(crate) app: Option<AppId>,
}

/// `acre put FILE`: pays for the chunks the section does not hold yet, uploads every
/// chunk, and prints the file's address.
pub(crate) fn put(cli: &Cli, request: &PutRequest<'_>) -> Result<()> {
    let client = node_client(cli)?;
    // A private file's keys come from the wallet key, so it is unlocked before splitting.
    let mut key = match request.sealing {
        Sealing::Private => Some(unlock(cli, &request.payer)?),
        Sealing::Public | Sealing::Convergent => None,
    };
    let split = split(request.file, request.sealing, key.as_ref())?;
    // One journal per payer and file: a convergent file has the same address for everyone.
    let journal_path = request.journal_dir.join(format!("{}-{}.json", split.address, request.payer.address));
    let journal = match read_journal(&journal_path)? {
        Some(journal) => Some(journal),
        None => pay(cli, &client, request, &split, &journal_path, &mut key)?,
    };
    let mut journal = journal;
    if let Some(pending) = journal.as_mut().filter(|j| j.certificate.is_none()) {
        pending.certificate = Some(certify(&client, &pending.order)?);
        write_journal(&journal_path, pending)?;
    }
    let payment = journal.as_ref().and_then(|journal| {
        Some(StorePayment { certificate: journal.certificate.clone()?, chunks: journal.chunks.clone() })
    });
    // The node checks the payment once; every chunk it lists then goes up raw, naming it.
    let accepted = match &payment {
        Some(payment) => Some(client.accept_payment(payment).context("handing the payment to the node")?.id),
        None => None,
    };
    let progress = Progress::new(cli, split.chunks.iter().map(Chunk::size).sum(), "uploading");
    let charged = upload(&client, &split.chunks, accepted.as_ref(), &progress)?;
    progress.finish();
    if journal_path.exists() {
        std::fs::remove_file(&journal_path)?;
    }
    if cli.json {
        let view = serde_json::json!({
            "file": split.locator,
            "address": split.address.to_string(),
            "encrypted": request.sealing != Sealing::Public,
            "size": split.size,
            "chunks": split.chunks.len(),
            "newly_stored": charged,
            "payment": payment.map(|p| p.certificate.id()),
        });
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        let sealed = match request.sealing {
            Sealing::Public => "unencrypted",
            Sealing::Convergent => "encrypted",
            Sealing::Private => "encrypted under your key",
        };
        println!(
            "stored {} ({}, {} chunks, {sealed})",
            request.file.display(),
            size_text(split.size),
            split.chunks.len()
        );
        match &payment {
            Some(payment) => println!("paid with transfer {} for {charged} new chunks", payment.certificate.id()),
            None => println!("the section already held every chunk: nothing was paid"),
        }
        if request.sealing != Sealing::Public {
            println!("keep this key: whoever has it can read the file, and without it nobody can");
        }
        println!("fetch it with: acre get {} -o FILE", split.locator);
    }
    Ok(())
}

/// Chunk uploads in flight at once: enough to keep the node's holders all writing while
/// the next chunks travel, few enough that a slow node is not swamped.
const UPLOADS_IN_FLIGHT: usize = 8;
/// Tries of one chunk while its holders are unavailable (503) or the node ran out of time
/// (408): a holder slow to answer the node, or restarting, is usually back within seconds,
/// and storing a chunk again is harmless.
const PUT_TRIES: u32 = 6;
/// The longest pause between two tries; the pauses double up to it (about 12 s in all).
const PUT_PAUSE_CAP: std::time::Duration = std::time::Duration::from_secs(4);

/// Stores one chunk, trying again after a pause while the node says its holders are
/// unavailable or it ran out of time; any other answer is final.
fn put_chunk(
    client: &NodeClient,
    chunk: &Chunk,
    payment: Option<&Digest>,
) -> Result<acre_api::storage::Placed, ClientError> {
    let mut tried = 1;
    loop {
        match client.put_chunk(&chunk.address(), chunk.bytes(), payment) {
            Err(ClientError::Refused(problem))
                if matches!(
                    problem.code,
                    acre_api::ProblemCode::HoldersUnavailable | acre_api::ProblemCode::Timeout
                ) && tried < PUT_TRIES =>
            {
                std::thread::sleep(PUT_PAUSE_CAP.min(std::time::Duration::from_millis(500 << (tried - 1))));
                tried += 1;
            }
            answer => return answer,
        }
    }
}

/// Uploads every chunk, up to [`UPLOADS_IN_FLIGHT`] at a time, naming the accepted
/// payment; returns how many the section did not hold before. The first failure stops
/// the rest (the journal keeps the payment, so running `acre put` again finishes).
fn upload(client: &NodeClient, chunks: &[Chunk], payment: Option<&Digest>, progress: &Progress) -> Result<usize> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let workers = UPLOADS_IN_FLIGHT.min(chunks.len()).max(1);
    let results: Vec<Result<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<usize> {
                    let mut charged = 0;
                    while !failed.load(std::sync::atomic::Ordering::Relaxed) {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(index) else { break };
                        let placed = put_chunk(client, chunk, payment).map_err(|error| {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            anyhow::Error::new(error).context(format!("storing chunk {}", chunk.address()))
                        })?;
                        charged += usize::from(!placed.already_stored);
                        progress.advance(chunk.size());
                    }
                    Ok(charged)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an upload thread panicked"))))
            .collect()
    });
    results.into_iter().sum()
}

/// Signs and journals a payment for the chunks the section does not hold; `None` when it
/// holds them all.
fn pay(
    cli: &Cli,
    client: &NodeClient,
    request: &PutRequest<'_>,
    split: &SplitFile,
    journal_path: &Path,
    key: &mut Option<SigningKey>,
) -> Result<Option<UploadJournal>> {
    let mut unpaid = Vec::new();
    for chunk in distinct(&split.chunks) {
        if client.holders(&chunk.address())?.size.is_none() {
            unpaid.push(ChunkEntry { address: chunk.address(), size: chunk.size() });
        }
    }
    if unpaid.is_empty() {
        return Ok(None);
    }
    let bytes = billable_bytes(unpaid.iter().map(|entry| entry.size)).context("the file is too large")?;
    let quote = client.quote(bytes, request.app.as_ref())?;
    let store_price = quote.price.context("the section is full and takes no new chunks")?;
    let app_fee = quote.app_price;
    let price = store_price.checked_add(app_fee.unwrap_or(Amount::ZERO)).context("the price overflows")?;
    let payer = client
        .account(&request.payer.address)?
        .with_context(|| format!("{} has never held credits", request.payer.address))?;
    if let Some(pending) = &payer.pending_order {
        bail!(
            "an earlier order of {} to {} is pending at sequence {}; finish it first",
            pending.order.amount,
            pending.order.to,
            pending.order.sequence
        );
    }
    if !request.yes {
        let through = match (request.app, app_fee) {
            (Some(app), Some(fee)) => format!(", of which {fee} to app {app}"),
            _ => String::new(),
        };
        confirm(&format!(
            "Pay {price} credits{through} from {} to store {} ({}) as {} new chunks?",
            request.payer.name,
            request.file.display(),
            size_text(split.size),
            unpaid.len()
        ))?;
    }
    let key = match key.take() {
        Some(key) => key,
        None => unlock(cli, &request.payer)?,
    };
    let named: Vec<([u8; 32], u64)> = unpaid.iter().map(|entry| (entry.address.0, entry.size)).collect();
    let order = TransferOrder {
        network: client.section()?.network,
        from: request.payer.address,
        to: quote.pool,
        amount: price,
        sequence: payer.next_sequence,
        app: request.app,
        memo: store_memo_with_app_fee(&named, app_fee),
        hidden: None,
    }
    .sign(&key);
    let journal = UploadJournal { chunks: unpaid, order, certificate: None };
    if let Some(dir) = journal_path.parent() {
        create_private_dir(dir)?;
    }
    write_journal(journal_path, &journal)?;
    Ok(Some(journal))
}

fn unlock(cli: &Cli, payer: &KeyFile) -> Result<SigningKey> {
    Ok(payer.unlock(&password(cli, &format!("Password for key {}: ", payer.name), false)?)?)
}

/// The payment's certificate: already made, or made now (safe to repeat).
fn certify(client: &NodeClient, order: &SignedOrder) -> Result<Certificate> {
    if let Some(transfer) = client.transfer(&order.order.digest())? {
        return Ok(transfer.certificate);
    }
    match client.submit_order(order) {
        Ok(transfer) => Ok(transfer.certificate),
        Err(ClientError::Refused(problem)) => {
            bail!(
                "the payment was refused: {} ({}); remove the upload journal to start over",
                problem.detail,
                problem.code
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// `acre get ADDRESS[:KEY] -o FILE`: fetches the data map and every chunk, checks each
/// against its address, decrypts them with the key, and writes the file.
pub(crate) fn get(cli: &Cli, locator: &str, out: &Path, app: Option<&AppId>) -> Result<()> {
    let client = node_client(cli)?;
    let (address, bytes) = if locator.contains(':') {
        let key: FileKey = locator.parse()?;
        let map = SecretMap::open(&key, &fetch(&client, &key.map, app)?)?;
        let chunks = fetch_all(cli, &client, map.chunks.iter().map(|c| (c.address, c.size)), app)?;
        (key.map, map.decrypt(&chunks)?)
    } else {
        let address: ChunkAddress = locator.parse()?;
        let map = DataMap::from_chunk(&fetch(&client, &address, app)?).map_err(|_| {
            anyhow::anyhow!(
                "{address} is not a public file: an encrypted file is read with ADDRESS:KEY, as put printed it"
            )
        })?;
        let chunks = fetch_all(cli, &client, map.chunks.iter().map(|c| (c.address, c.size)), app)?;
        (address, map.reassemble(&chunks)?)
    };
    let temporary = out.with_extension("acre-partial");
    std::fs::write(&temporary, &bytes).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, out).with_context(|| format!("writing {}", out.display()))?;
    if cli.json {
        println!("{}", serde_json::json!({ "file": address.to_string(), "size": bytes.len(), "out": out }));
    } else {
        println!("wrote {} ({}, every chunk verified)", out.display(), size_text(bytes.len() as u64));
    }
    Ok(())
}

/// The chunks at `addresses`, in order, each checked against its address.
fn fetch_all(
    cli: &Cli,
    client: &NodeClient,
    listed: impl Iterator<Item = (ChunkAddress, u32)>,
    app: Option<&AppId>,
) -> Result<Vec<Chunk>> {
    let addresses: Vec<(ChunkAddress, u32)> = listed.collect();
    let total_bytes = addresses.iter().map(|(_, size)| u64::from(*size)).sum();
    let progress = Progress::new(cli, total_bytes, "downloading");
    let mut chunks = Vec::with_capacity(addresses.len());
    for (address, _) in addresses {
        let chunk = fetch(client, &address, app)?;
        progress.advance(chunk.size());
        chunks.push(chunk);
    }
    progress.finish();
    Ok(chunks)
}

/// One chunk, checked against its address.
fn fetch(client: &NodeClient, address: &ChunkAddress, app: Option<&AppId>) -> Result<Chunk> {
    let chunk = Chunk::new(client.chunk(address, app)?)?;
    if chunk.address() != *address {
        bail!("the node sent bytes that are not chunk {address}");
    }
    Ok(chunk)
}

/// `acre farmer status NODE_ID`.
pub(crate) fn farmer_status(cli: &Cli, node: &AccountId) -> Result<()> {
    let client = node_client(cli)?;
    let farmer = client.farmer(node)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&farmer)?);
        return Ok(());
    }
    let c = &farmer.challenges;
    println!("farmer {}", farmer.node);
    println!("  must hold   {} chunks, {} bytes", farmer.chunks, farmer.bytes);
    if let (Some(used), Some(capacity)) = (farmer.used, farmer.capacity) {
        println!("  disk        {used} of {capacity} bytes ({:.2}%)", percent(used, capacity));
    }
    println!(
        "  challenges  {} passed, {} wrong bytes, {} missing, {} late, {} timeouts, {} excused",
        c.passed, c.wrong_bytes, c.missing, c.late, c.timeouts, c.excused
    );
    if let Some(last) = &farmer.last {
        let outcome = serde_json::to_value(last.outcome)?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        println!(
            "  last audit  {} s ago: {} in {} ms ({} chunks)",
            now_ms.saturating_sub(last.at_unix_ms) / 1000,
            outcome.as_str().context("an audit outcome is a name")?,
            last.latency_ms,
            last.chunks
        );
    }
    Ok(())
}

/// `acre farmer statement NODE_ID`: one line per closed epoch, and the total, which is
/// checked against the lines so a statement that does not add up is an error.
pub(crate) fn farmer_statement(cli: &Cli, node: &AccountId, from: Option<u64>, to: Option<u64>) -> Result<()> {
    let client = node_client(cli)?;
    let statement = client.statement(node, from, to)?;
    let sum = statement.epochs.iter().try_fold(Amount::ZERO, |sum, line| sum.checked_add(line.reward));
    if sum != Some(statement.total_reward) {
        anyhow::bail!(
            "the node's statement does not add up: its lines sum to {sum:?}, its total says {}",
            statement.total_reward
        );
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&statement)?);
        return Ok(());
    }
    println!("farmer {}", statement.node);
    println!(
        "{:>7}  {:>14}  {:>7}  {:>26}  {:>18}",
        "epoch", "proven bytes", "chunks", "challenges (pass/fail)", "reward"
    );
    for line in &statement.epochs {
        let c = &line.challenges;
        let failed = c.failed();
        println!(
            "{:>7}  {:>14}  {:>7}  {:>26}  {:>18}",
            line.epoch,
            line.proven_bytes,
            line.proven_chunks,
            format!("{}/{}", c.passed, failed),
            line.reward.to_string()
        );
    }
    println!("total reward {} over {} epochs", statement.total_reward, statement.epochs.len());
    Ok(())
}

fn percent(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        return 100.0;
    }
    used as f64 * 100.0 / capacity as f64
}

fn read_journal(path: &Path) -> Result<Option<UploadJournal>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the journal whole or not at all: a temporary file beside it, synced, then
/// renamed over it, so a crash never leaves half a payment on disk.
fn write_journal(path: &Path, journal: &UploadJournal) -> Result<()> {
    let dir = path.parent().context("an upload journal has a directory")?;
    let mut file = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing in {}", dir.display()))?;
    file.write_all(&serde_json::to_vec_pretty(journal)?)?;
    file.as_file().sync_all()?;
    file.persist(path).with_context(|| format!("writing {}", path.display()))?;
    // The rename itself is durable only once the directory is synced.
    std::fs::File::open(dir).and_then(|dir| dir.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}

/// A file's size as every line of `quote`, `put` and `get` shows it: binary units, and the
/// exact byte count beside them.
fn size_text(bytes: u64) -> String {
    format!("{} = {bytes} bytes", indicatif::BinaryBytes(bytes))
}

/// Progress of an upload or download in bytes, with its rate and time left, on a
/// terminal's stderr; nothing at all with `--json` or off a terminal.
struct Progress(indicatif::ProgressBar);

impl Progress {
    fn new(cli: &Cli, total_bytes: u64, verb: &'static str) -> Self {
        if cli.json || !std::io::stderr().is_terminal() {
            return Progress(indicatif::ProgressBar::hidden());
        }
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} at {binary_bytes_per_sec}, {eta} left",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bar = indicatif::ProgressBar::new(total_bytes).with_style(style).with_message(verb);
        Progress(bar)
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
