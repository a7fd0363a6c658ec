//! `acre quote`, `acre put`, `acre get` and `acre farmer status`: files stored on the
//! section, paid for in credits.
//!
//! A put is resumable and never pays twice: before paying, the signed payment is written to
//! an upload journal named after the file's address; the certificate goes there once the
//! elders certify it; only when every chunk is stored is the journal removed. Repeating an
//! interrupted `acre put` finds the journal and finishes with the same payment.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use acre_ledger::economics::{billable_bytes, store_memo_with_app_fee};
use acre_ledger::{AccountId, Amount, AppId, Certificate, SignedOrder, TransferOrder};
use acre_node::storage_api::{ChunkEntry, PutChunk, StorePayment};
use acre_proofs::{split_file, Chunk, ChunkAddress, DataMap};
use acre_wallet::client::{ClientError, NodeClient};
use acre_wallet::keystore::{create_private_dir, KeyFile};
use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{confirm, node_client, password, Cli};

/// A file split into its chunks, the data map last (its address names the file).
struct SplitFile {
    chunks: Vec<Chunk>,
    address: ChunkAddress,
    size: u64,
}

fn split(path: &Path) -> Result<SplitFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut chunks, map) = split_file(&bytes)?;
    let map_chunk = map.to_chunk()?;
    let address = map_chunk.address();
    chunks.push(map_chunk);
    Ok(SplitFile { chunks, address, size: bytes.len() as u64 })
}

/// The chunks with repeats left out (a file with repeated content repeats chunks), so
/// nothing is paid for twice.
fn distinct(chunks: &[Chunk]) -> impl Iterator<Item = &Chunk> {
    let mut seen = std::collections::HashSet::new();
    chunks.iter().filter(move |chunk| seen.insert(chunk.address()))
}

/// `acre quote FILE`.
pub(crate) fn quote(cli: &Cli, file: &Path, app: Option<&AppId>) -> Result<()> {
    let client = node_client(cli)?;
    let split = split(file)?;
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
            "{}: {} bytes in {} chunks; storing costs {price} credits (section {:.2}% full)",
            file.display(),
            split.size,
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
    let split = split(request.file)?;
    let journal_path = request.journal_dir.join(format!("{}.json", split.address));
    let journal = match read_journal(&journal_path)? {
        Some(journal) => Some(journal),
        None => pay(cli, &client, request, &split, &journal_path)?,
    };
    let mut journal = journal;
    if let Some(pending) = journal.as_mut().filter(|j| j.certificate.is_none()) {
        pending.certificate = Some(certify(&client, &pending.order)?);
        write_journal(&journal_path, pending)?;
    }
    let payment = journal.as_ref().and_then(|journal| {
        Some(StorePayment { certificate: journal.certificate.clone()?, chunks: journal.chunks.clone() })
    });
    let mut progress = Progress::new(cli, split.chunks.len(), "uploading");
    let mut charged = 0usize;
    for chunk in &split.chunks {
        let paid_for = payment.as_ref().filter(|p| p.chunks.iter().any(|entry| entry.address == chunk.address()));
        let body = PutChunk {
            content: base64::engine::general_purpose::STANDARD.encode(chunk.bytes()),
            payment: paid_for.cloned(),
        };
        let placed = client.put_chunk(&body).with_context(|| format!("storing chunk {}", chunk.address()))?;
        charged += usize::from(!placed.already_stored);
        progress.advance(chunk.size());
    }
    progress.finish();
    if journal_path.exists() {
        std::fs::remove_file(&journal_path)?;
    }
    if cli.json {
        let view = serde_json::json!({
            "file": split.address.to_string(),
            "size": split.size,
            "chunks": split.chunks.len(),
            "newly_stored": charged,
            "payment": payment.map(|p| p.certificate.id()),
        });
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!(
            "stored {} ({} bytes, {} chunks): {}",
            request.file.display(),
            split.size,
            split.chunks.len(),
            split.address
        );
        println!("fetch it with: acre get {} -o FILE", split.address);
    }
    Ok(())
}

/// Signs and journals a payment for the chunks the section does not hold; `None` when it
/// holds them all.
fn pay(
    cli: &Cli,
    client: &NodeClient,
    request: &PutRequest<'_>,
    split: &SplitFile,
    journal_path: &Path,
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
            "Pay {price} credits{through} from {} to store {} new chunks ({bytes} bytes)?",
            request.payer.name,
            unpaid.len()
        ))?;
    }
    let key = request.payer.unlock(&password(cli, &format!("Password for key {}: ", request.payer.name), false)?)?;
    let named: Vec<([u8; 32], u64)> = unpaid.iter().map(|entry| (entry.address.0, entry.size)).collect();
    let order = TransferOrder {
        from: request.payer.address,
        to: quote.pool,
        amount: price,
        sequence: payer.next_sequence,
        app: request.app,
        memo: store_memo_with_app_fee(&named, app_fee),
    }
    .sign(&key);
    let journal = UploadJournal { chunks: unpaid, order, certificate: None };
    if let Some(dir) = journal_path.parent() {
        create_private_dir(dir)?;
    }
    write_journal(journal_path, &journal)?;
    Ok(Some(journal))
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

/// `acre get ADDRESS -o FILE`: fetches the data map and every chunk, checks each against
/// its address, and writes the file.
pub(crate) fn get(cli: &Cli, address: &str, out: &Path, app: Option<&AppId>) -> Result<()> {
    let client = node_client(cli)?;
    let address: ChunkAddress = address.parse()?;
    let map = DataMap::from_chunk(&fetch(&client, &address, app)?)?;
    let mut progress = Progress::new(cli, map.chunks.len(), "downloading");
    let mut chunks = Vec::with_capacity(map.chunks.len());
    for reference in &map.chunks {
        let chunk = fetch(&client, &reference.address, app)?;
        progress.advance(chunk.size());
        chunks.push(chunk);
    }
    progress.finish();
    let bytes = map.reassemble(&chunks)?;
    let temporary = out.with_extension("acre-partial");
    std::fs::write(&temporary, &bytes).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, out).with_context(|| format!("writing {}", out.display()))?;
    if cli.json {
        println!("{}", serde_json::json!({ "file": address.to_string(), "size": bytes.len(), "out": out }));
    } else {
        println!("wrote {} ({} bytes, every chunk verified)", out.display(), bytes.len());
    }
    Ok(())
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
        "  challenges  {} passed, {} wrong bytes, {} missing, {} timeouts, {} excused",
        c.passed, c.wrong_bytes, c.missing, c.timeouts, c.excused
    );
    if let Some(last) = &farmer.last {
        let outcome = serde_json::to_value(last.outcome)?;
        println!(
            "  last        round {}: {} in {} ms ({} chunks)",
            last.round,
            outcome.as_str().unwrap_or_default(),
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
        let failed = c.wrong_bytes + c.missing + c.timeouts;
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

fn write_journal(path: &Path, journal: &UploadJournal) -> Result<()> {
    acre_node::config::write_atomically(path, serde_json::to_vec_pretty(journal)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// A progress bar on stderr, drawn only at a terminal and never with `--json`.
struct Progress {
    shown: bool,
    total: usize,
    done: usize,
    bytes: u64,
    verb: &'static str,
}

impl Progress {
    fn new(cli: &Cli, total: usize, verb: &'static str) -> Self {
        let shown = !cli.json && std::io::stderr().is_terminal();
        Progress { shown, total, done: 0, bytes: 0, verb }
    }

    fn advance(&mut self, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        if self.shown {
            const WIDTH: usize = 30;
            let filled = WIDTH * self.done / self.total.max(1);
            eprint!(
                "\r{} [{}{}] {}/{} chunks, {:.1} MiB",
                self.verb,
                "=".repeat(filled),
                " ".repeat(WIDTH - filled),
                self.done,
                self.total,
                self.bytes as f64 / f64::from(1 << 20)
            );
            let _ = std::io::stderr().flush();
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
