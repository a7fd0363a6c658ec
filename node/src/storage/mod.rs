//! This node's part in storing the section's chunks: taking paid uploads and placing each
//! chunk on its 4 holders, serving chunks, holding its own share, and — as an elder —
//! auditing every holder each challenge round.
//!
//! Every decision is the [`StorageBook`]'s (in `acre-core`): holders and duties, audit and
//! repair plans, what a payment must pay, the price window, the tallies and the excuse
//! rule. This module moves bytes between the API, the disk and the network, and changes
//! the book only after the disk holds what the book would then claim.

pub mod chunk_store;
pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use acre_core::storage::{
    check_challenge, check_entries, AuditReply, BookError, BookSettings, EpochAudits, Link, PaymentDue, RecheckStart,
    SignedAnswer, StorageBook, FORWARDED_PAYMENTS, FORWARD_WINDOW, MAX_ENTRIES, MAX_RECHECKS,
};
use acre_ledger::economics::{check_store_payment, pool_account, store_cost, StorePaymentError};
use acre_ledger::section_state::Placement;
use acre_ledger::{AccountId, Amount, AppId, Certificate, Digest, LedgerError};
use acre_proofs::audit::Outcome;
use acre_proofs::audit::{judge, Audit};
use acre_proofs::challenge::{Answer, Challenge, ChallengeItem};
use acre_proofs::placement::{node_name, Repair};
use acre_proofs::{Chunk, ChunkAddress};
use futures::future::join_all;
use futures::StreamExt;
use libp2p::PeerId;

use acre_api::storage::{AuditRecord, FarmerView, Placed, Quote};

use crate::blocking::blocking;
use crate::config::{CHUNKS_DIR, PAYMENTS_FILE};
use crate::driver::{Farming, Inbound, StorageDuties};
use crate::lock;
use crate::section::{Membership, Section};
use crate::storage::chunk_store::{ChunkStore, ChunkStoreError, Stored};
use crate::storage::records::RecordFile;
use acre_core::awaiting::AwaitingLog;
use acre_core::log::{StoreReceipt, StoredChunk};
use acre_core::section::AuditSummary;
use acre_core::wire::{
    AuditReply as WireAuditReply, Audits, ChunkReply, ChunkRequest, Chunks, Log, LogRequest, Meter, MeterReply,
    MeterRequest,
};
use acre_core::LogItem;
use ed25519_dalek::SigningKey;

pub use acre_core::storage::QUOTE_VALIDITY;

/// Challenge rounds between two sweeps for copies no longer this node's to hold
/// (`StorageBook::surplus`): a copy goes at the second sweep that finds it placed
/// elsewhere, so 10–20 s after placement moves on a devnet, 5–10 minutes by default.
const SWEEP_ROUNDS: u64 = 5;
/// Chunks one holder is asked to prove in one challenge by the sweep.
const SWEEP_BATCH: usize = 64;

/// Settings of the storage service, from the node's configuration.
#[derive(Debug, Clone, Copy)]
pub struct StorageSettings {
    /// Most bytes of chunks this node holds.
    pub capacity: u64,
    /// How often an elder audits every holder.
    pub challenge_interval: Duration,
    /// How long after a holder's connection came or went its timeouts are excused.
    pub grace: Duration,
    /// Chunks challenged per holder per round.
    pub audit_chunks: usize,
    /// How long a holder has to answer one challenge before correct proofs count as late.
    pub answer_deadline: Duration,
}

/// Why a storage request was refused.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bytes are not a chunk (empty, over 1 MiB).
    #[error("{0}")]
    InvalidChunk(String),
    /// A new chunk came without a payment.
    #[error("chunk {0} is not stored yet and came without a payment: pay the section's pool first")]
    PaymentRequired(ChunkAddress),
    /// The payment's certificate is not one of this section's.
    #[error("the payment's certificate: {0}")]
    InvalidCertificate(LedgerError),
    /// The payment does not pay for this chunk.
    #[error(transparent)]
    Payment(#[from] StorePaymentError),
    /// The section quotes nothing: it is full.
    #[error("the section is full and takes no new chunks")]
    SectionFull,
    /// A holder refused for want of room.
    #[error("holder {holder} is full ({used} of {capacity} bytes); the chunk was not stored")]
    HolderFull {
        /// The holder.
        holder: AccountId,
        /// Its bytes held.
        used: u64,
        /// Its capacity.
        capacity: u64,
    },
    /// Holders could not be reached.
    #[error("holders did not confirm the chunk: {0}; retry (the payment stays valid)")]
    HoldersUnavailable(String),
    /// The chunk was uploaded under another address than its bytes have.
    #[error("the bytes are chunk {actual}, not {named}")]
    AddressMismatch {
        /// The address the upload named.
        named: ChunkAddress,
        /// The bytes' address.
        actual: ChunkAddress,
    },
    /// A holder has not seen the payment for the chunk, and it could not be handed it.
    #[error("holder {0} knows no payment for the chunk and could not be handed it; retry")]
    HolderUnpaid(AccountId),
    /// The upload names a payment this node has not accepted.
    #[error("payment {0} is not known at this node: send it to POST /v1/payments first")]
    UnknownPayment(Digest),
    /// No holder has the chunk.
    #[error("no holder has chunk {0}")]
    UnknownChunk(ChunkAddress),
    /// The node is not a member of this section.
    #[error("{0} is not a member of this section")]
    UnknownFarmer(AccountId),
    /// No app of that id is registered.
    #[error("no app {0} is registered in this section")]
    UnknownApp(AppId),
    /// This node's disk failed.
    #[error("this node's disk: {0}")]
    Disk(String),
}

impl From<BookError> for StorageError {
    fn from(error: BookError) -> Self {
        match error {
            BookError::InvalidChunk(reason) => StorageError::InvalidChunk(reason),
            BookError::SectionFull => StorageError::SectionFull,
            BookError::UnknownApp(app) => StorageError::UnknownApp(app),
            BookError::Payment(error) => StorageError::Payment(error),
        }
    }
}

/// Payment record: the payment's certificate id, one chunk it lists, and that chunk's
/// size (little-endian).
const PAYMENT_RECORD: usize = 72;

/// One chunk an accepted payment lists: the payment's id, the chunk, its size.
type PaidEntry = (Digest, ChunkAddress, u64);

/// Reads the payments file: every accepted payment's listed chunks.
fn open_payments(path: &Path) -> std::io::Result<(RecordFile<PAYMENT_RECORD>, Vec<PaidEntry>)> {
    let (file, records) = RecordFile::<PAYMENT_RECORD>::open(path)?;
    let entries = records
        .iter()
        .filter_map(|record| {
            let id = <[u8; 32]>::try_from(&record[..32]).ok()?;
            let address = <[u8; 32]>::try_from(&record[32..64]).ok()?;
            let size = <[u8; 8]>::try_from(&record[64..]).ok()?;
            Some((Digest(id), ChunkAddress(address), u64::from_le_bytes(size)))
        })
        .collect();
    Ok((file, entries))
}

fn payment_record(id: &Digest, (address, size): &(ChunkAddress, u64)) -> [u8; PAYMENT_RECORD] {
    let mut record = [0u8; PAYMENT_RECORD];
    record[..32].copy_from_slice(&id.0);
    record[32..64].copy_from_slice(&address.0);
    record[64..].copy_from_slice(&size.to_le_bytes());
    record
}

/// The storage service of one node.
#[derive(Debug)]
pub struct Storage {
    section: Arc<Section>,
    chunks: Arc<ChunkStore>,
    /// Held only for the book's quick decisions, never across a disk or network wait.
    book: Mutex<StorageBook>,
    /// Locked only on blocking threads, around an append and its sync.
    payments_file: Arc<Mutex<RecordFile<PAYMENT_RECORD>>>,
    settings: StorageSettings,
    pool: AccountId,
    started: Instant,
    farming: Farming,
    /// Signs this node's receipts for the chunks it stores.
    key: SigningKey,
    /// The certificates of the payments accepted lately, to hand a holder that missed
    /// one (older ones are read back from the ledger).
    recent_payments: Mutex<std::collections::VecDeque<Certificate>>,
    /// The payments accepted here that the section log has not ordered yet, proposed
    /// again once an epoch until it has ([`AwaitingLog`]).
    awaiting: Mutex<AwaitingLog<LogItem>>,
    /// Whether a sweep for surplus copies is running (one at a time).
    sweeping: std::sync::atomic::AtomicBool,
    /// Whether payments are being proposed again (one round of that at a time).
    proposing_again: std::sync::atomic::AtomicBool,
    /// Whether the members are being asked for their fullness (one round at a time).
    refreshing: std::sync::atomic::AtomicBool,
    /// Whether the payments accepted before this start are back in `awaiting`.
    restored_awaiting: std::sync::atomic::AtomicBool,
    /// The challenges each sender has this holder answering now.
    answering: AnswersInFlight,
}

/// Challenges one sender may have this holder answering at once, for each chunk an audit
/// challenges per round (`audit_chunks`). An honest elder sends a round's challenges at
/// once, one per chunk, and a round may still be answered when the next one starts; a
/// sweep adds one batch. Past twice a round and one more, a challenge is refused at once,
/// so a flood from one elder, or from everyone who is not an elder (they share one
/// count), costs this holder no disk reads and keeps no honest elder's challenge waiting.
fn answers_per_sender(audit_chunks: usize) -> usize {
    2 * audit_chunks + 1
}

/// How many challenges each sender (an elder, or `None` for everyone else) has this holder
/// answering now.
#[derive(Debug)]
struct AnswersInFlight {
    limit: usize,
    counts: Mutex<HashMap<Option<AccountId>, usize>>,
}

/// One challenge being answered; its sender's count goes down when it is dropped.
struct AnswerSlot<'a> {
    table: &'a AnswersInFlight,
    sender: Option<AccountId>,
}

impl AnswersInFlight {
    fn new(limit: usize) -> Self {
        AnswersInFlight { limit, counts: Mutex::default() }
    }

    /// A slot for one more of `sender`'s challenges, unless it has `limit` being answered
    /// already.
    fn enter(&self, sender: Option<AccountId>) -> Option<AnswerSlot<'_>> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(sender).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AnswerSlot { table: self, sender })
    }
}

impl Drop for AnswerSlot<'_> {
    fn drop(&mut self) {
        let mut counts = lock(&self.table.counts);
        if let Some(count) = counts.get_mut(&self.sender) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.sender);
            }
        }
    }
}

/// Repair copies made at once: a lost holder's chunks go to several new holders, whose
/// stores overlap, while one slow holder holds up only its own copies.
const REPAIRS_IN_FLIGHT: usize = 4;

/// How often an elder looks at its members' connections between audit rounds
/// ([`Storage::watch_losses`]).
const LOSS_WATCH: Duration = Duration::from_millis(250);

/// Payment certificates kept at hand for holders that missed them.
const RECENT_PAYMENTS: usize = 1024;

/// `bytes` as the chunk `address` names, if they are it.
fn good_copy(address: ChunkAddress, bytes: Vec<u8>) -> Option<Chunk> {
    Chunk::new(bytes).ok().filter(|chunk| chunk.address() == address)
}

/// Says in the node's log that a payment waiting for the section log was given up for a
/// newer one: its credits stay in the pool account, unpaid.
fn warn_given_up(payment: Digest) {
    tracing::warn!(%payment, "too many payments wait for the section log; the one waiting longest is given up");
}

fn disk(error: impl std::fmt::Display) -> StorageError {
    StorageError::Disk(error.to_string())
}

impl Storage {
    /// Opens the node's chunk store and accepted payments under `data_dir`; `key` signs
    /// this node's receipts for the chunks it stores.
    pub fn open(
        section: Arc<Section>,
        data_dir: &Path,
        settings: StorageSettings,
        farming: Farming,
        key: SigningKey,
    ) -> Result<Self, StorageError> {
        let chunks = ChunkStore::open(data_dir.join(CHUNKS_DIR), settings.capacity).map_err(disk)?;
        let (payments_file, paid) = open_payments(&data_dir.join(PAYMENTS_FILE)).map_err(disk)?;
        let book_settings = BookSettings {
            grace: settings.grace,
            audit_chunks: settings.audit_chunks,
            answer_deadline: settings.answer_deadline,
        };
        let book = StorageBook::new(section.me(), pool_account(""), book_settings, paid);
        let answering = AnswersInFlight::new(answers_per_sender(settings.audit_chunks));
        let storage = Storage {
            chunks: Arc::new(chunks),
            book: Mutex::new(book),
            payments_file: Arc::new(Mutex::new(payments_file)),
            settings,
            pool: pool_account(""),
            started: Instant::now(),
            section,
            farming,
            key,
            recent_payments: Mutex::default(),
            awaiting: Mutex::default(),
            sweeping: std::sync::atomic::AtomicBool::new(false),
            proposing_again: std::sync::atomic::AtomicBool::new(false),
            refreshing: std::sync::atomic::AtomicBool::new(false),
            restored_awaiting: std::sync::atomic::AtomicBool::new(false),
            answering,
        };
        storage.refresh_own_status();
        Ok(storage)
    }

    /// The node's section.
    pub fn section(&self) -> &Arc<Section> {
        &self.section
    }

    /// The section's agreed log, as this node follows it.
    pub fn farming(&self) -> &Farming {
        &self.farming
    }

    /// Time on the service's clock, for the book.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Makes the copies, up to [`REPAIRS_IN_FLIGHT`] at once: fetches each chunk (from
    /// here or from a holder that still has it, checking its address) and has its new
    /// holder store it. Answers the copies (chunk and new holder) that could not be made.
    pub async fn repair(&self, copies: Vec<Repair>) -> Vec<(ChunkAddress, [u8; 32])> {
        let outcomes: Vec<((ChunkAddress, [u8; 32]), bool)> = futures::stream::iter(copies)
            .map(|repair| async move { ((repair.chunk, repair.to), self.repair_one(repair).await) })
            .buffer_unordered(REPAIRS_IN_FLIGHT)
            .collect()
            .await;
        let failed: Vec<(ChunkAddress, [u8; 32])> =
            outcomes.iter().filter(|(_, made)| !made).map(|(copy, _)| *copy).collect();
        let made = outcomes.len() - failed.len();
        metrics::counter!("acre_repairs_total").increment(made as u64);
        tracing::info!(made, failed = failed.len(), "repair copies made");
        failed
    }

    /// Makes one copy; whether it was made.
    async fn repair_one(&self, repair: Repair) -> bool {
        let Some(to) = self.member_named(&repair.to) else { return false };
        // A copy counts only if it is the chunk: a rotten one here moves on to the holders.
        let address = repair.chunk;
        let local = self.local(move |chunks| chunks.get(&address)).await.ok().flatten();
        let mut chunk = local.and_then(|bytes| good_copy(address, bytes));
        if chunk.is_none() {
            let sources: Vec<AccountId> = repair.from.iter().filter_map(|name| self.member_named(name)).collect();
            chunk = self.fetch_good(address, &sources).await;
        }
        let Some(chunk) = chunk else {
            tracing::warn!(chunk = %repair.chunk, "no holder could give a chunk to repair");
            return false;
        };
        match self.store_on(to, Arc::new(chunk)).await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(%error, chunk = %repair.chunk, "a repair copy failed");
                false
            }
        }
    }

    /// Makes the copies a new holder lacks: the copies a removal makes were mostly made
    /// when the holder was first lost (`stand_in_plan`), and one already there need not
    /// travel again. (A copy an audit found rotten is handed over by [`Storage::repair`]
    /// whatever the holder says it has.)
    /// Answers the copies that could not be made.
    async fn copy_to_new_holders(&self, copies: Vec<Repair>) -> Vec<(ChunkAddress, [u8; 32])> {
        let missing = self.not_held_yet(copies).await;
        self.repair(missing).await
    }

    /// The copies whose new holder does not hold the chunk already, asking each new holder
    /// once about all of its chunks. A holder that does not answer is sent every copy.
    async fn not_held_yet(&self, copies: Vec<Repair>) -> Vec<Repair> {
        let mut by_holder: BTreeMap<[u8; 32], Vec<Repair>> = BTreeMap::new();
        for repair in copies {
            by_holder.entry(repair.to).or_default().push(repair);
        }
        let asks = by_holder.into_values().map(|copies| async move {
            let peer = copies.first().and_then(|repair| self.member_named(&repair.to)).and_then(|id| self.peer_of(&id));
            let Some(peer) = peer.filter(|_| copies.len() <= MAX_ENTRIES) else { return copies };
            let addresses = copies.iter().map(|repair| repair.chunk).collect();
            match self.section.request::<Chunks>(peer, ChunkRequest::Holds(addresses)).await {
                Some(ChunkReply::Held(held)) if held.len() == copies.len() => {
                    copies.into_iter().zip(held).filter(|(_, held)| !held).map(|(repair, _)| repair).collect()
                }
                _ => copies,
            }
        });
        join_all(asks).await.into_iter().flatten().collect()
    }

    /// Hands a store payment, with the chunks it lists, to the section log, and keeps it
    /// to propose again until the log has ordered it.
    async fn propose_payment(&self, certificate: Certificate, chunks: Vec<(ChunkAddress, u64)>) {
        let id = certificate.id();
        let item = LogItem::Payment { certificate, chunks };
        // Before this node knows the agreed state it cannot tell when the log has ordered it.
        if let Some(state) = self.agreed() {
            if let Some(given_up) = lock(&self.awaiting).accepted(id, item.clone(), state.epoch()) {
                warn_given_up(given_up);
            }
        }
        self.propose(item).await;
    }

    /// Proposes again the payments accepted here that the agreed state, as of the last
    /// close, does not show collected, once in each epoch; forgets those it does.
    async fn propose_awaiting(&self) {
        let Some(state) = self.agreed() else { return };
        self.restore_awaiting(&state).await;
        let again = lock(&self.awaiting).round(state.epoch(), |id| state.collected(id));
        metrics::counter!("acre_payments_proposed_again_total").increment(again.len() as u64);
        join_all(again.into_iter().map(|item| self.propose(item))).await;
    }

    /// Once, at the first round that knows the agreed state: takes back into the book the
    /// payments this node's files hold that the state does not show collected, for the
    /// rounds to propose. The book is in memory, so a node that stopped after accepting a
    /// payment and before the log ordered it would otherwise never propose it again, and
    /// the farmers would never be paid for the chunks it bought.
    async fn restore_awaiting(&self, state: &acre_ledger::section_state::SectionState) {
        if self.restored_awaiting.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let unordered: Vec<(Digest, Vec<(ChunkAddress, u64)>)> = lock(&self.book)
            .payment_lists()
            .filter(|(id, _)| !state.collected(id))
            .take(acre_core::awaiting::MAX_AWAITING)
            .map(|(id, list)| (*id, list.clone()))
            .collect();
        if !unordered.is_empty() {
            tracing::info!(payments = unordered.len(), "accepted payments the log has not ordered wait for it again");
        }
        for (id, chunks) in unordered {
            let Some(certificate) = self.payment_certificate(id).await else {
                tracing::warn!(payment = %id, "an accepted payment's certificate is not in this node's ledger");
                continue;
            };
            if let Some(given_up) =
                lock(&self.awaiting).restored(id, LogItem::Payment { certificate, chunks }, state.epoch())
            {
                warn_given_up(given_up);
            }
        }
    }

    /// Puts an item that proves itself into the section log: proposed here as an elder,
    /// otherwise sent to the elders.
    pub async fn propose(&self, item: LogItem) {
        let membership = self.section.membership();
        if membership.elders.contains(&self.section.me()) {
            self.farming.deliver(Inbound::Propose { from: None, item: Box::new(item) });
            return;
        }
        let sends = membership
            .members
            .iter()
            .filter(|(id, _)| membership.elders.contains(id))
            .map(|(_, peer)| self.section.request::<Log>(*peer, LogRequest::Propose(Box::new(item.clone()))));
        join_all(sends).await;
    }

    /// The section's price for `bytes` now.
    pub fn quote(&self, bytes: u64, app: Option<AppId>) -> Result<Quote, StorageError> {
        self.refresh_own_status();
        let (used, capacity) = lock(&self.book).quote(self.now());
        let app_price = app.map(|app| self.app_price(&app)).transpose()?;
        Ok(Quote {
            bytes,
            price: store_cost(bytes, used, capacity),
            pool: self.pool,
            used,
            capacity,
            valid_for_seconds: QUOTE_VALIDITY.as_secs(),
            app,
            app_price,
        })
    }

    /// The app's current price by the section log, as the book honours it.
    fn app_price(&self, app: &AppId) -> Result<Amount, StorageError> {
        let current = self.current_app_price(app);
        Ok(lock(&self.book).app_price(app, current, self.now())?)
    }

    fn current_app_price(&self, app: &AppId) -> Option<Amount> {
        self.farming.view().state.and_then(|state| state.apps().get(app).map(|app| app.price_per_put))
    }

    /// A chunk read through `app`: fetched from another holder, which attests the read to
    /// the elders as this node does, so the read counts for the app (two members attest
    /// it). When no other holder answers, the copy here is served and the read is not
    /// counted.
    pub async fn get_for_app(&self, address: ChunkAddress, app: AppId) -> Result<Vec<u8>, StorageError> {
        let use_id = Digest(rand::random());
        let me = self.section.me();
        for holder in self.holders_of(&address).into_iter().filter(|holder| *holder != me) {
            let Some(peer) = self.peer_of(&holder) else { continue };
            let request = MeterRequest::FetchForApp { address, app, use_id };
            if let Some(MeterReply::Chunk(Some(bytes))) = self.section.request::<Meter>(peer, request).await {
                if ChunkAddress::of(&bytes) == address {
                    self.attest(app, use_id).await;
                    return Ok(bytes.into_vec());
                }
            }
        }
        self.get(address).await
    }

    /// Tells every elder (this one too) that this member took part in the read `use_id`.
    async fn attest(&self, app: AppId, use_id: Digest) {
        let membership = self.section.membership();
        let me = self.section.me();
        if membership.elders.contains(&me) {
            self.farming.deliver(Inbound::Metered { from: me, app, use_id });
        }
        let sends = membership
            .members
            .iter()
            .filter(|(id, _)| *id != me && membership.elders.contains(id))
            .map(|(_, peer)| self.section.request::<Meter>(*peer, MeterRequest::Attest { app, use_id }));
        join_all(sends).await;
    }

    /// Stores the chunk `address` (its bytes are `content`) on its holders, paid for by
    /// the accepted store payment `payment` (none is needed for a chunk the section already
    /// holds). Safe to retry.
    pub async fn put(
        self: &Arc<Self>,
        address: ChunkAddress,
        content: Vec<u8>,
        payment: Option<Digest>,
    ) -> Result<Placed, StorageError> {
        let chunk = Chunk::new(content).map_err(|error| StorageError::InvalidChunk(error.to_string()))?;
        if chunk.address() != address {
            return Err(StorageError::AddressMismatch { named: address, actual: chunk.address() });
        }
        let size = chunk.size();
        let holders = self.holders_of(&address);
        let agreed = self.agreed();
        if lock(&self.book).is_stored(&address, agreed.as_ref().map(|state| state.registry())) {
            return Ok(Placed { address, size, holders, already_stored: true });
        }
        let paid = {
            let book = lock(&self.book);
            let id = payment.ok_or(StorageError::PaymentRequired(address))?;
            if !book.is_accepted(&id) {
                return Err(StorageError::UnknownPayment(id));
            }
            book.paid_size(&id, &address)
        };
        if paid != Some(size) {
            return Err(StorageError::Payment(StorePaymentError::NotForChunk));
        }
        let chunk = Arc::new(chunk);
        let stores = holders.iter().map(|holder| self.store_paid(*holder, Arc::clone(&chunk), payment));
        let mut unavailable = Vec::new();
        let mut receipts = Vec::new();
        for result in join_all(stores).await {
            match result {
                Ok(receipt) => receipts.push(receipt),
                Err(full @ StorageError::HolderFull { .. }) => return Err(full),
                Err(error) => unavailable.push(error.to_string()),
            }
        }
        if !unavailable.is_empty() {
            return Err(StorageError::HoldersUnavailable(unavailable.join("; ")));
        }
        // The holders' receipts put the chunk in the agreed registry, where its holders
        // are audited and paid for it from the next epoch on.
        lock(&self.book).placed(address);
        self.propose(LogItem::Stored(StoredChunk { chunk: address, size, receipts })).await;
        Ok(Placed { address, size, holders, already_stored: false })
    }

    /// The chunk's bytes, from this node or its holders, checked against its address.
    pub async fn get(&self, address: ChunkAddress) -> Result<Vec<u8>, StorageError> {
        if let Some(bytes) = self.local(move |chunks| chunks.get(&address)).await.map_err(disk)? {
            if ChunkAddress::of(&bytes) == address {
                return Ok(bytes);
            }
            tracing::warn!(%address, "the copy held here is damaged; asking the other holders");
        }
        for holder in self.holders_of(&address) {
            let Some(peer) = self.peer_of(&holder) else { continue };
            if holder == self.section.me() {
                continue;
            }
            if let Some(ChunkReply::Chunk(Some(bytes))) =
                self.section.request::<Chunks>(peer, ChunkRequest::Fetch(address)).await
            {
                if ChunkAddress::of(&bytes) == address {
                    return Ok(bytes.into_vec());
                }
                tracing::warn!(%address, %holder, "a holder sent bytes that are not the chunk");
            }
        }
        Err(StorageError::UnknownChunk(address))
    }

    /// The chunk's holders, and whether each says it holds it (`None`: no answer).
    pub async fn holders(&self, address: ChunkAddress) -> (Option<u64>, Vec<(AccountId, Option<bool>)>) {
        // Stored by the agreed registry, or placed by this node and not yet ordered.
        let size = self
            .agreed()
            .and_then(|state| state.registry().get(&address).copied())
            .or_else(|| lock(&self.book).placed_size(&address));
        let asks = self.holders_of(&address).into_iter().map(|holder| async move {
            if holder == self.section.me() {
                return (holder, Some(self.chunks.contains(&address)));
            }
            let Some(peer) = self.peer_of(&holder) else { return (holder, None) };
            match self.section.request::<Chunks>(peer, ChunkRequest::Holds(vec![address])).await {
                Some(ChunkReply::Held(held)) => (holder, held.first().copied()),
                _ => (holder, None),
            }
        });
        (size, join_all(asks).await)
    }

    /// What this elder's audits say of a member.
    pub fn farmer(&self, node: AccountId) -> Result<FarmerView, StorageError> {
        if !self.section.membership().members.iter().any(|(id, _)| *id == node) {
            return Err(StorageError::UnknownFarmer(node));
        }
        // A newcomer not named yet is a farmer with no duty.
        let placement = self.placement();
        let state = self.agreed();
        let empty = BTreeMap::new();
        let registry = state.as_ref().map_or(&empty, |state| state.registry());
        let book = lock(&self.book);
        let (chunks, bytes) = book.duty_of(registry, &node, &placement);
        let status = book.status_of(&node);
        let (challenges, last) = book.audits_of(&node);
        Ok(FarmerView {
            node,
            chunks,
            bytes,
            used: status.map(|(used, _)| used),
            capacity: status.map(|(_, capacity)| capacity),
            challenges,
            last,
        })
    }

    /// Forever: every challenge interval, learns each member's fullness and, as an elder,
    /// audits every other holder on chunks it must hold; every [`SWEEP_ROUNDS`], deletes
    /// the copies it no longer has to hold.
    pub async fn audit_rounds(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.settings.challenge_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = unix_millis();
        let mut rounds = 0u64;
        loop {
            ticker.tick().await;
            round += 1;
            rounds += 1;
            // Beside the rounds, each one at a time: a member that does not answer (a
            // stopped process keeps its connection) must not delay the audits, and
            // neither must an elder that does not take proposals or slow holders
            // answering the sweep.
            self.beside(|storage| &storage.refreshing, |storage| async move { storage.refresh_statuses().await });
            self.beside(|storage| &storage.proposing_again, |storage| async move { storage.propose_awaiting().await });
            if self.section.is_elder() {
                self.audit_round(round).await;
            }
            if rounds % SWEEP_ROUNDS == 0 {
                self.beside(|storage| &storage.sweeping, |storage| async move { storage.sweep_surplus().await });
            }
        }
    }

    /// Runs `work` on a task of its own unless the last run that `running` marks is still
    /// under way. The mark is cleared however the run ends: one that panicked must not
    /// leave the work marked under way, never to run again.
    fn beside<F>(
        self: &Arc<Self>,
        running: fn(&Storage) -> &std::sync::atomic::AtomicBool,
        work: impl FnOnce(Arc<Storage>) -> F + Send + 'static,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if running(self).swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let storage = Arc::clone(self);
        tokio::spawn(async move {
            let _done = scopeguard::guard(Arc::clone(&storage), move |storage| {
                running(&storage).store(false, std::sync::atomic::Ordering::Release);
            });
            work(storage).await;
        });
    }

    /// Forever, as an elder: looks at the members' connections every [`LOSS_WATCH`],
    /// between the audit rounds, and starts the stand-in copies of a holder lost since
    /// (`StorageBook::stand_in_plan`). A round can take as long as its slowest audit; the
    /// copies of a holder whose connection is gone need not wait for it.
    pub async fn watch_losses(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(LOSS_WATCH);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !self.section.is_elder() {
                continue;
            }
            self.observe_connections().await;
            if let Some(state) = self.agreed() {
                self.stand_in_copies(&state);
            }
        }
    }

    /// Deletes the copies held here that the book finds surplus (`StorageBook::surplus`),
    /// each only once every member it is placed on proved it holds the chunk (blocks drawn
    /// here at random, the proof checked against the address: a word would not do), and
    /// only if placement, looked at again after the answers, still puts it elsewhere.
    async fn sweep_surplus(&self) {
        let Some(state) = self.agreed() else { return };
        let held = match self.local(ChunkStore::held).await {
            Ok(held) => held.into_iter().map(|(address, _)| address).collect::<Vec<_>>(),
            Err(error) => return tracing::warn!(%error, "cannot list the chunks held for the sweep"),
        };
        let seasoned = state.seasoned().collect();
        let due = lock(&self.book).surplus(&held, state.registry(), &self.placement(), &seasoned);
        if due.is_empty() {
            return;
        }
        let mut asked: BTreeMap<AccountId, Vec<ChunkAddress>> = BTreeMap::new();
        for (chunk, holders) in &due {
            for holder in holders {
                asked.entry(*holder).or_default().push(*chunk);
            }
        }
        let registry = state.registry();
        let answers = asked.into_iter().map(|(holder, chunks)| async move {
            let mut held = Vec::new();
            let Some(peer) = self.peer_of(&holder) else { return (holder, held) };
            for batch in chunks.chunks(SWEEP_BATCH) {
                let audit = self.sweep_audit(&holder, batch, registry);
                let request = ChunkRequest::Prove(audit.challenge.clone());
                // Proofs count only as the holder's own signed word on this challenge.
                let Some(ChunkReply::Proved(WireAuditReply::Answer(signed))) =
                    self.section.request::<Chunks>(peer, request).await
                else {
                    continue;
                };
                if signed.is_from(&holder, &audit.challenge) && judge(&audit, &signed.answer) == Outcome::Passed {
                    held.extend(audit.challenge.items.iter().map(|item| item.address));
                }
            }
            (holder, held)
        });
        let confirmed: BTreeMap<AccountId, std::collections::BTreeSet<ChunkAddress>> =
            join_all(answers).await.into_iter().map(|(holder, held)| (holder, held.into_iter().collect())).collect();
        let me = self.section.me();
        let mut removed = 0u64;
        for (chunk, holders) in due {
            let everywhere =
                holders.iter().all(|holder| confirmed.get(holder).is_some_and(|held| held.contains(&chunk)));
            let still_elsewhere = !self.holders_of(&chunk).contains(&me);
            if !everywhere || !still_elsewhere {
                continue;
            }
            match self.local(move |chunks| chunks.remove(&chunk)).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, %chunk, "a surplus copy could not be deleted"),
            }
        }
        metrics::counter!("acre_surplus_copies_removed_total").increment(removed);
        if removed > 0 {
            self.refresh_own_status();
            tracing::info!(removed, "deleted copies that are no longer this node's to hold");
        }
    }

    async fn audit_round(self: &Arc<Self>, round: u64) {
        self.observe_connections().await;
        let randomness: [u8; 32] = rand::random();
        let Some(state) = self.agreed() else { return };
        // A holder whose connection is gone is copied for before its audits time out.
        self.stand_in_copies(&state);
        let audits = lock(&self.book).audit_plan(state.registry(), &self.placement(), &randomness, round);
        join_all(audits.into_iter().map(|(holder, audit)| self.audit(holder, audit, round))).await;
        // One that kept its connection but answered nothing (stopped) is copied for now.
        self.stand_in_copies(&state);
    }

    /// Starts the stand-in copies the book asks for (`StorageBook::stand_in_plan`), beside
    /// the audit rounds, which they must not hold up.
    fn stand_in_copies(self: &Arc<Self>, state: &acre_ledger::section_state::SectionState) {
        let elders: Vec<AccountId> = self.section.membership().elders.iter().copied().collect();
        let copies =
            lock(&self.book).stand_in_plan(state.registry(), state.epoch(), &self.placement(), &elders, self.now());
        if copies.is_empty() {
            return;
        }
        tracing::info!(copies = copies.len(), "copying a lost holder's chunks to their next holders");
        let storage = Arc::clone(self);
        tokio::spawn(async move {
            let failed = storage.copy_to_new_holders(copies).await;
            let now = storage.now();
            lock(&storage.book).stand_ins_failed(failed, now);
        });
    }

    /// The challenge the sweep puts to `holder` on `chunks` (registered ones), drawn as an
    /// elder's audit is, for the two of them, with fresh randomness.
    fn sweep_audit(
        &self,
        holder: &AccountId,
        chunks: &[ChunkAddress],
        registry: &BTreeMap<ChunkAddress, u64>,
    ) -> Audit {
        let (seed, nonce): ([u8; 32], u64) = (rand::random(), rand::random());
        let (challenger, name) = (node_name(&self.section.me().0), node_name(&holder.0));
        let (items, sizes) = chunks
            .iter()
            .filter_map(|chunk| {
                let size = *registry.get(chunk)?;
                Some((ChallengeItem::for_holder(&seed, &challenger, &name, nonce, *chunk, size), size))
            })
            .unzip();
        Audit { holder: name, challenge: Challenge { nonce, seed, holder: name, challenger, items }, sizes }
    }

    /// Tells the book what the network says of each member's connection now.
    async fn observe_connections(&self) {
        let links = self.section.links().await;
        let membership = self.section.membership();
        let links: BTreeMap<AccountId, Link> =
            membership.members.iter().filter_map(|(id, peer)| Some((*id, *links.get(peer)?))).collect();
        let members: Vec<AccountId> = membership.members.iter().map(|(id, _)| *id).collect();
        let started = Duration::ZERO;
        lock(&self.book).observe_connections(&links, &members, self.now(), started);
    }

    /// Sends one audit and records what it showed.
    async fn audit(self: &Arc<Self>, holder: AccountId, audit: Audit, round: u64) {
        let Some(peer) = self.peer_of(&holder) else { return };
        let chunks = audit.challenge.items.len();
        let sent = Instant::now();
        let deadline = self.settings.challenge_interval;
        let response =
            crate::section::request_within::<Audits>(self.section.network(), peer, audit.challenge.clone(), deadline)
                .await;
        let latency = sent.elapsed();
        // The audit's traffic: the challenge out (its addresses and block numbers), the
        // proofs back; counted from the lengths, not by encoding anything again.
        let challenge_bytes: usize = audit.challenge.items.iter().map(|item| 32 + 8 * item.blocks.len()).sum();
        let answer_bytes = match &response {
            Some(WireAuditReply::Answer(signed)) => signed.answer.proofs.iter().map(Vec::len).sum(),
            _ => 0,
        };
        metrics::counter!("acre_audit_bytes_total").increment((challenge_bytes + answer_bytes) as u64);
        let reply = match response {
            // Proofs count only as the holder's own word on this challenge.
            Some(WireAuditReply::Answer(signed)) if signed.is_from(&holder, &audit.challenge) => {
                AuditReply::Judged { outcome: judge(&audit, &signed.answer), after: latency }
            }
            Some(WireAuditReply::Missing(_)) => AuditReply::Missing,
            // A refusal proves nothing and is held against the holder like silence, which
            // a holder whose view of the section still lags after a restart is excused.
            Some(WireAuditReply::Refused(_)) => AuditReply::Silent,
            Some(_) => AuditReply::Other,
            None => {
                // Look again: a holder that went down during this round has only just
                // changed, and is excused for the grace period like one starting up.
                self.observe_connections().await;
                AuditReply::Silent
            }
        };
        let recopy = {
            let mut book = lock(&self.book);
            let outcome = book.outcome_of(&holder, reply, self.now());
            if outcome.is_failure() {
                tracing::info!(%holder, ?outcome, round, "a holder failed its audit");
            }
            metrics::counter!("acre_audits_total", "outcome" => format!("{outcome:?}")).increment(1);
            let record = AuditRecord {
                round,
                outcome,
                latency_ms: latency.as_millis() as u64,
                at_unix_ms: unix_millis(),
                chunks,
            };
            book.record_audit(holder, &audit, outcome, record);
            audit.challenge.items.first().map(|item| item.address).filter(|c| book.recopy_due(holder, *c, outcome))
        };
        // Beside the round: a holder that sits on the ask must not hold the round up.
        if let Some(chunk) = recopy {
            let storage = Arc::clone(self);
            tokio::spawn(async move { storage.recopy(holder, chunk).await });
        }
    }

    /// Tells `holder` that its copy of `chunk`, which it must hold, just failed its audit
    /// (its bytes rotted, or it lost them), so it fetches a good copy itself
    /// ([`Storage::take_recheck`]). Each elder that finds the fault says so, and the holder
    /// pulls the bytes once: pushing them from every elder would send the chunk once per
    /// elder to the one node least able to take it.
    /// The holder answers at once and rechecks on its own, so the ask waits no longer than
    /// a challenge interval, beside the round.
    /// A holder that did not take the ask (busy with other rechecks, over its budget, or
    /// silent) is asked again after its next failed audit of the chunk, a few times an
    /// epoch (`StorageBook::recopy_due`).
    async fn recopy(&self, holder: AccountId, chunk: ChunkAddress) {
        let taken = match self.peer_of(&holder) {
            Some(peer) => {
                let (network, interval) = (self.section.network(), self.settings.challenge_interval);
                let ask = ChunkRequest::Recheck(chunk);
                let reply = crate::section::request_within::<Chunks>(network, peer, ask, interval).await;
                if !matches!(reply, Some(ChunkReply::Done)) {
                    tracing::debug!(%holder, %chunk, ?reply, "a holder did not take a recheck");
                }
                matches!(reply, Some(ChunkReply::Done))
            }
            None => false,
        };
        if taken {
            metrics::counter!("acre_rechecks_asked_total").increment(1);
            lock(&self.book).recopy_taken(holder, chunk);
        }
    }

    /// Starts a recheck of this node's copy of `address`, which an elder's audit found bad:
    /// only an elder may ask, only of a registered chunk placed here, and within the book's
    /// bounds (`StorageBook::start_recheck`).
    fn take_recheck(self: &Arc<Self>, peer: PeerId, address: ChunkAddress) -> ChunkReply {
        let elders = self.section.membership().elders;
        let Some(elder) = self.member_of_peer(&peer).filter(|id| elders.contains(id)) else {
            return ChunkReply::Refused("only elders ask for a recheck".into());
        };
        let Some(state) = self.agreed() else {
            return ChunkReply::Refused("this node does not know the section's state yet".into());
        };
        let me = self.section.me();
        let holders = state.holders_of(&address);
        if !state.registry().contains_key(&address) || !holders.contains(&me) {
            return ChunkReply::Refused(format!("chunk {address} is not this node's to hold"));
        }
        match lock(&self.book).start_recheck(elder, address, self.now()) {
            RecheckStart::Started => {}
            RecheckStart::UnderWay => return ChunkReply::Done,
            RecheckStart::Busy => return ChunkReply::Refused(format!("{MAX_RECHECKS} rechecks under way")),
            RecheckStart::OverBudget => return ChunkReply::Refused("too many rechecks asked lately".into()),
        }
        let storage = Arc::clone(self);
        let sources: Vec<AccountId> = holders.into_iter().filter(|holder| *holder != me).collect();
        tokio::spawn(async move {
            // Finished however the recheck ends, so a panic cannot hold its place for good.
            let _done =
                scopeguard::guard(Arc::clone(&storage), move |storage| lock(&storage.book).finish_recheck(&address));
            storage.recheck(address, sources).await;
        });
        ChunkReply::Done
    }

    /// Keeps a copy of `address` held here intact, or replaces it with a good copy from
    /// `sources` (`ChunkStore::put` answers `Replaced`, or `New` for a lost one).
    async fn recheck(&self, address: ChunkAddress, sources: Vec<AccountId>) {
        if self.local(move |chunks| chunks.holds_intact(&address)).await.is_ok_and(|intact| intact) {
            return;
        }
        let Some(chunk) = self.fetch_good(address, &sources).await else {
            return tracing::warn!(chunk = %address, "no other holder could give a good copy of a bad one held here");
        };
        match self.local(move |chunks| chunks.put(&chunk)).await {
            Ok(stored) => {
                metrics::counter!("acre_rechecks_repaired_total").increment(1);
                tracing::info!(chunk = %address, ?stored, "a bad copy held here was replaced");
            }
            Err(error) => tracing::warn!(%error, chunk = %address, "a good copy could not replace a bad one held here"),
        }
    }

    /// The first copy of `address` that one of `sources` gives, in turn, whose bytes are
    /// the chunk: a rotten copy at one source moves on to the next. Sources connected now
    /// are asked first, so a dead one costs a request timeout only when no live one helps.
    async fn fetch_good(&self, address: ChunkAddress, sources: &[AccountId]) -> Option<Chunk> {
        let links = self.section.links().await;
        let mut peers: Vec<PeerId> = sources.iter().filter_map(|from| self.peer_of(from)).collect();
        peers.sort_by_key(|peer| !links.get(peer).is_some_and(|link| link.up));
        for peer in peers {
            if let Some(ChunkReply::Chunk(Some(fetched))) =
                self.section.request::<Chunks>(peer, ChunkRequest::Fetch(address)).await
            {
                if let Some(chunk) = good_copy(address, fetched.into_vec()) {
                    return Some(chunk);
                }
            }
        }
        None
    }

    /// Hands over what the audits showed since the last call, and starts afresh.
    pub fn take_epoch_audits(&self) -> EpochAudits {
        lock(&self.book).take_epoch_audits()
    }

    /// Asks only placed members: a newcomer not named yet holds nothing, and its empty
    /// disk would lower the fullness the price follows.
    async fn refresh_statuses(&self) {
        self.refresh_own_status();
        let Membership { members, placement, .. } = self.section.membership();
        let placed = members.iter().filter(|(id, _)| *id != self.section.me() && placement.name_of(id).is_some());
        let asks = placed.map(|(id, peer)| async move {
            let network = self.section.network();
            let interval = self.settings.challenge_interval;
            (*id, crate::section::request_within::<Chunks>(network, *peer, ChunkRequest::Status, interval).await)
        });
        let answers = join_all(asks).await;
        let mut book = lock(&self.book);
        for (id, response) in answers {
            if let Some(ChunkReply::Status { used, capacity }) = response {
                book.record_status(id, used, capacity);
            }
        }
        book.quote(self.now());
    }

    fn refresh_own_status(&self) {
        lock(&self.book).record_status(self.section.me(), self.chunks.used(), self.chunks.capacity());
    }

    /// Checks a store payment once (certificate, pool, memo, price), applies its
    /// certificate here, and keeps it with the chunks it lists, so each of those chunks can
    /// then be uploaded by naming the payment. Safe to repeat: a payment accepted before
    /// is checked against its memo only, and whatever of its list a crash lost is kept.
    /// Returns the payment's id.
    pub async fn accept_payment(
        &self,
        certificate: Certificate,
        list: &[(ChunkAddress, u64)],
    ) -> Result<Digest, StorageError> {
        let id = certificate.id();
        self.refresh_own_status();
        let app_price = certificate.order.app.and_then(|app| self.current_app_price(&app));
        let due = lock(&self.book).check_payment(&id, &certificate.order, list, app_price, self.now())?;
        if due == PaymentDue::AlreadyAccepted {
            self.keep_payment(id, list).await?;
            return Ok(id);
        }
        let verified = self.section.committee().verify_all(vec![certificate.clone()]);
        if let Some(Err(error)) = verified.into_iter().next() {
            return Err(StorageError::InvalidCertificate(error));
        }
        // Applied here too when it can be; otherwise catch-up brings it. The quorum's
        // signatures, checked above, are what make it a payment.
        match self.section.accept(vec![certificate.clone()]).await {
            Ok(results) => {
                if let Some(Err(error)) = results.into_iter().next() {
                    tracing::debug!(%error, "a store payment is not applied here yet");
                }
            }
            Err(stopped) => return Err(disk(stopped)),
        }
        self.keep_payment(id, list).await?;
        {
            let mut recent = lock(&self.recent_payments);
            if recent.len() >= RECENT_PAYMENTS {
                recent.pop_front();
            }
            recent.push_back(certificate.clone());
        }
        self.tell_holders(&certificate, list).await;
        self.propose_payment(certificate, list.to_vec()).await;
        Ok(id)
    }

    /// Hands an accepted payment to the other members, so that each holder of a chunk it
    /// lists agrees to store it. A member unreachable now refuses that chunk, and the
    /// upload is retried.
    async fn tell_holders(&self, certificate: &Certificate, list: &[(ChunkAddress, u64)]) {
        let me = self.section.me();
        let membership = self.section.membership();
        let sends = membership.members.iter().filter(|(id, _)| *id != me).map(|(_, peer)| {
            let request = ChunkRequest::Pay { certificate: certificate.clone(), chunks: list.to_vec() };
            self.section.request::<Chunks>(*peer, request)
        });
        join_all(sends).await;
    }

    /// Keeps a payment another member accepted, once its certificate and memo check out:
    /// no price check (the member that took the upload made it, and the pool has the
    /// credits), only that it is a real payment to the pool for exactly this list.
    async fn keep_forwarded_payment(
        &self,
        from: AccountId,
        certificate: Certificate,
        list: Vec<(ChunkAddress, u64)>,
    ) -> ChunkReply {
        if let Err(error) = check_entries(&list) {
            return ChunkReply::Refused(error.to_string());
        }
        if lock(&self.book).is_accepted(&certificate.id())
            && lock(&self.book).unkept(&certificate.id(), &list).is_empty()
        {
            return ChunkReply::Done;
        }
        let named: Vec<([u8; 32], u64)> = list.iter().map(|(address, size)| (address.0, *size)).collect();
        let Some(first) = named.first() else { return ChunkReply::Refused("a payment for no chunks".into()) };
        let Some(floor) = acre_core::log::lowest_price(&list) else {
            return ChunkReply::Refused("the listed sizes overflow".into());
        };
        if let Err(error) = check_store_payment(&certificate.order, &self.pool, &named, first, floor) {
            return ChunkReply::Refused(error.to_string());
        }
        // The signature checks are the cost a forged certificate imposes: budgeted.
        if !lock(&self.book).admit_forwarded_payment(from, self.now()) {
            return ChunkReply::Refused(format!(
                "more than {FORWARDED_PAYMENTS} new payments in {} s from one member; try again later",
                FORWARD_WINDOW.as_secs()
            ));
        }
        if let Some(Err(error)) = self.section.committee().verify_all(vec![certificate.clone()]).into_iter().next() {
            return ChunkReply::Refused(error.to_string());
        }
        match self.keep_payment(certificate.id(), &list).await {
            Ok(()) => ChunkReply::Done,
            Err(error) => ChunkReply::Refused(error.to_string()),
        }
    }

    /// The agreed section state, as this node last applied the log.
    fn agreed(&self) -> Option<Arc<acre_ledger::section_state::SectionState>> {
        self.farming.view().state
    }

    /// Writes the entries of a checked payment's list not kept yet, then tells the book.
    async fn keep_payment(&self, id: Digest, list: &[(ChunkAddress, u64)]) -> Result<(), StorageError> {
        let entries = lock(&self.book).unkept(&id, list);
        if entries.is_empty() {
            return Ok(());
        }
        let records: Vec<[u8; PAYMENT_RECORD]> = entries.iter().map(|entry| payment_record(&id, entry)).collect();
        let file = Arc::clone(&self.payments_file);
        on_disk(move || lock(&file).append(&records)).await?;
        lock(&self.book).payment_kept(id, &entries);
        Ok(())
    }

    /// Has `holder` store a paid chunk; a holder that has not seen the payment (it was
    /// down when it was handed out) is handed it and asked again.
    async fn store_paid(
        &self,
        holder: AccountId,
        chunk: Arc<Chunk>,
        payment: Option<Digest>,
    ) -> Result<StoreReceipt, StorageError> {
        match self.store_on(holder, Arc::clone(&chunk)).await {
            Err(StorageError::HolderUnpaid(_)) => {
                let Some(id) = payment else { return Err(StorageError::HolderUnpaid(holder)) };
                let list = lock(&self.book).payment_list(&id).ok_or(StorageError::HolderUnpaid(holder))?;
                let certificate = self.payment_certificate(id).await.ok_or(StorageError::HolderUnpaid(holder))?;
                let peer = self.peer_of(&holder).ok_or(StorageError::HolderUnpaid(holder))?;
                self.section.request::<Chunks>(peer, ChunkRequest::Pay { certificate, chunks: list }).await;
                self.store_on(holder, chunk).await
            }
            other => other,
        }
    }

    /// The certificate of an accepted payment: kept at hand, or read from the ledger.
    async fn payment_certificate(&self, id: Digest) -> Option<Certificate> {
        let kept = lock(&self.recent_payments).iter().find(|certificate| certificate.id() == id).cloned();
        if kept.is_some() {
            return kept;
        }
        self.section
            .ledger()
            .read(move |elder| acre_ledger::store::Store::certificate(elder.store(), &id).ok().flatten())
            .await
            .ok()
            .flatten()
    }

    /// Has `holder` store the chunk durably; its receipt.
    async fn store_on(&self, holder: AccountId, chunk: Arc<Chunk>) -> Result<StoreReceipt, StorageError> {
        let (address, size) = (chunk.address(), chunk.size());
        if holder == self.section.me() {
            return match self.local(move |chunks| chunks.put(&chunk)).await {
                Ok(_) => Ok(StoreReceipt::sign(&self.key, &address, size)),
                Err(ChunkStoreError::Full { used, capacity, .. }) => {
                    Err(StorageError::HolderFull { holder, used, capacity })
                }
                Err(error) => Err(disk(error)),
            };
        }
        let peer = self
            .peer_of(&holder)
            .ok_or_else(|| StorageError::HoldersUnavailable(format!("{holder} has no peer id")))?;
        let request = ChunkRequest::Store(chunk.bytes().to_vec());
        match self.section.request_or_why::<Chunks>(peer, request, self.section.store_timeout()).await {
            Ok(ChunkReply::Stored(receipt)) if receipt.holder == holder && receipt.is_valid_for(&address, size) => {
                Ok(receipt)
            }
            Ok(ChunkReply::Full { used, capacity }) => Err(StorageError::HolderFull { holder, used, capacity }),
            Ok(ChunkReply::NotPaid) => Err(StorageError::HolderUnpaid(holder)),
            Ok(ChunkReply::Refused(reason)) => Err(StorageError::HoldersUnavailable(format!("{holder}: {reason}"))),
            Ok(_) => Err(StorageError::HoldersUnavailable(format!("{holder} answered with no valid receipt"))),
            Err(unanswered) => Err(StorageError::HoldersUnavailable(format!("{holder} did not answer: {unanswered}"))),
        }
    }

    /// Runs a chunk-store call on a blocking thread.
    async fn local<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ChunkStore) -> Result<T, ChunkStoreError> + Send + 'static,
    ) -> Result<T, ChunkStoreError> {
        let chunks = Arc::clone(&self.chunks);
        tokio::task::spawn_blocking(move || work(&chunks))
            .await
            .unwrap_or_else(|join| Err(ChunkStoreError::Disk(std::io::Error::other(join.to_string()))))
    }

    /// The members that hold the chunk, closest first.
    fn holders_of(&self, address: &ChunkAddress) -> Vec<AccountId> {
        self.placement().holders(address).collect()
    }

    /// Who holds which chunk, by the agreed log.
    fn placement(&self) -> Arc<Placement> {
        Arc::clone(&self.section.membership().placement)
    }

    fn member_named(&self, name: &[u8; 32]) -> Option<AccountId> {
        self.placement().member_named(name)
    }

    fn peer_of(&self, node: &AccountId) -> Option<PeerId> {
        self.section.membership().members.iter().find(|(id, _)| id == node).map(|(_, peer)| *peer)
    }

    fn member_of_peer(&self, peer: &PeerId) -> Option<AccountId> {
        self.section.membership().members.iter().find(|(_, p)| p == peer).map(|(id, _)| *id)
    }

    fn is_member(&self, peer: &PeerId) -> bool {
        self.section.membership().members.iter().any(|(_, p)| p == peer)
    }

    /// Answers a challenge from `sender` from the chunk files, signed, if this holder
    /// answers it: a missing chunk is said at once. The sizes the draw is checked against
    /// are the registry's, or the held copy's (read on the blocking thread, with the rest).
    async fn answer_challenge(&self, sender: Option<AccountId>, challenge: Challenge) -> WireAuditReply {
        let Some(_slot) = self.answering.enter(sender) else {
            let limit = self.answering.limit;
            return WireAuditReply::Refused(format!("at most {limit} challenges of one sender at once"));
        };
        let me = self.section.me();
        let registry = self.agreed();
        let answered = self
            .local(move |chunks| {
                let size_of = |address: &ChunkAddress| {
                    registry
                        .as_ref()
                        .and_then(|state| state.registry().get(address).copied())
                        .or_else(|| chunks.size_of(address))
                };
                if let Err(refusal) = check_challenge(&challenge, sender.as_ref(), &me, size_of) {
                    return Ok(Err(WireAuditReply::Refused(refusal.to_string())));
                }
                let mut proofs = Vec::with_capacity(challenge.items.len());
                for item in &challenge.items {
                    match chunks.answer(item) {
                        Ok(proof) => proofs.push(proof),
                        Err(ChunkStoreError::Missing(address)) => return Ok(Err(WireAuditReply::Missing(address))),
                        Err(error) => return Err(error),
                    }
                }
                Ok(Ok((Answer { nonce: challenge.nonce, proofs }, challenge)))
            })
            .await;
        match answered {
            Ok(Ok((answer, asked))) => WireAuditReply::Answer(SignedAnswer::sign(&self.key, &asked, answer)),
            Ok(Err(reply)) => reply,
            Err(error) => WireAuditReply::Refused(error.to_string()),
        }
    }
}

/// Runs a file append and its sync on a blocking thread.
async fn on_disk(work: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> Result<(), StorageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(disk),
        Err(join) => Err(disk(join)),
    }
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl StorageDuties for Arc<Storage> {
    fn take_epoch_audits(&self) -> AuditSummary {
        Storage::take_epoch_audits(self).summary()
    }

    fn repair_after(&self, before: Vec<[u8; 32]>, after: Vec<[u8; 32]>, elders: Vec<[u8; 32]>) {
        let Some(state) = self.agreed() else { return };
        // A node that is no member any more copies nothing.
        let Some(me) = self.placement().name_of(&self.section.me()) else { return };
        let copies = lock(&self.book).repair_plan(state.registry(), &before, &after, &elders, me);
        if copies.is_empty() {
            return;
        }
        let storage = Arc::clone(self);
        tokio::spawn(async move {
            tracing::info!(copies = copies.len(), "repairing chunks after a membership change");
            // A removal's copies were mostly made as stand-ins; one that fails here is
            // left to the audits, which find it missing at its new holder.
            let failed = storage.copy_to_new_holders(copies).await;
            if !failed.is_empty() {
                tracing::warn!(failed = failed.len(), "some copies after a membership change could not be made");
            }
        });
    }
}

impl Storage {
    /// The answer to a member's chunk request. Placing and registering are members'
    /// business only; questions are bounded.
    pub async fn answer_chunks(self: &Arc<Self>, peer: PeerId, request: ChunkRequest) -> ChunkReply {
        match request {
            ChunkRequest::Store(_) | ChunkRequest::Pay { .. } if !self.is_member(&peer) => {
                ChunkReply::Refused("only members of this section place chunks".into())
            }
            ChunkRequest::Prove(challenge) => match self.member_of_peer(&peer) {
                Some(member) => ChunkReply::Proved(self.answer_challenge(Some(member), challenge).await),
                None => ChunkReply::Refused("only members of this section ask for proofs".into()),
            },
            ChunkRequest::Holds(addresses) if addresses.len() > MAX_ENTRIES => {
                ChunkReply::Refused(format!("at most {MAX_ENTRIES} chunks per question"))
            }
            ChunkRequest::Store(bytes) => {
                let Ok(chunk) = Chunk::new(bytes) else { return ChunkReply::Refused("not a chunk".into()) };
                let (address, size) = (chunk.address(), chunk.size());
                if !self.may_hold(&address, size) {
                    return ChunkReply::NotPaid;
                }
                match self.local(move |chunks| chunks.put(&chunk).map(|_: Stored| ())).await {
                    Ok(()) => ChunkReply::Stored(StoreReceipt::sign(&self.key, &address, size)),
                    Err(ChunkStoreError::Full { used, capacity, .. }) => ChunkReply::Full { used, capacity },
                    Err(error) => ChunkReply::Refused(error.to_string()),
                }
            }
            ChunkRequest::Pay { certificate, chunks } => match self.member_of_peer(&peer) {
                Some(from) => self.keep_forwarded_payment(from, certificate, chunks).await,
                None => ChunkReply::Refused("only members of this section place chunks".into()),
            },
            ChunkRequest::Fetch(address) => match self.local(move |chunks| chunks.get(&address)).await {
                Ok(bytes) => ChunkReply::Chunk(bytes.map(serde_bytes::ByteBuf::from)),
                Err(error) => ChunkReply::Refused(error.to_string()),
            },
            ChunkRequest::Holds(addresses) => {
                ChunkReply::Held(blocking(|| addresses.iter().map(|address| self.chunks.contains(address)).collect()))
            }
            ChunkRequest::Status => ChunkReply::Status { used: self.chunks.used(), capacity: self.chunks.capacity() },
            ChunkRequest::Recheck(address) => self.take_recheck(peer, address),
        }
    }

    /// Whether this node takes `address` of `size` bytes to hold: a payment it kept lists
    /// it, or the agreed state names it (stored already, so this is a repair, or paid).
    fn may_hold(&self, address: &ChunkAddress, size: u64) -> bool {
        if lock(&self.book).is_paid_for(address, size) {
            return true;
        }
        self.agreed()
            .is_some_and(|state| state.registry().get(address) == Some(&size) || state.paid_size(address) == Some(size))
    }

    /// The answer to an audit, if this holder answers it (`check_challenge`).
    pub async fn answer_audit(&self, peer: PeerId, challenge: Challenge) -> WireAuditReply {
        let elders = self.section.membership().elders;
        let sender = self.member_of_peer(&peer).filter(|id| elders.contains(id));
        self.answer_challenge(sender, challenge).await
    }

    /// The answer to a metering request: a member's attestation goes to this elder's
    /// meter; a read through an app is served and attested by this holder too.
    pub async fn answer_meter(&self, peer: PeerId, request: MeterRequest) -> MeterReply {
        match request {
            MeterRequest::Attest { app, use_id } => {
                if let Some(from) = self.member_of_peer(&peer) {
                    self.farming.deliver(Inbound::Metered { from, app, use_id });
                }
                MeterReply::Done
            }
            MeterRequest::FetchForApp { address, app, use_id } => {
                match self.local(move |chunks| chunks.get(&address)).await {
                    Ok(Some(bytes)) => {
                        if self.is_member(&peer) {
                            self.attest(app, use_id).await;
                        }
                        MeterReply::Chunk(Some(serde_bytes::ByteBuf::from(bytes)))
                    }
                    Ok(None) => MeterReply::Chunk(None),
                    Err(error) => MeterReply::Refused(error.to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sender_has_at_most_a_few_challenges_answered_at_once_and_others_are_unaffected() {
        let limit = answers_per_sender(16);
        let table = AnswersInFlight::new(limit);
        let flooder = Some(AccountId::of(&acre_ledger::testkit::key(1, 1)));
        let honest = Some(AccountId::of(&acre_ledger::testkit::key(1, 2)));
        let held: Vec<_> = (0..100).filter_map(|_| table.enter(flooder)).collect();
        assert_eq!(held.len(), limit, "past the bound a flood is refused at once");
        assert!(limit > 2 * 16, "two honest rounds of 16 and a sweep's batch fit");
        assert!(table.enter(honest).is_some(), "another elder's challenge is still answered");
        assert!(table.enter(None).is_some(), "and so is one from outside the elders");
        drop(held);
        assert!(table.enter(flooder).is_some(), "answered challenges free their slots");
        assert!(lock(&table.counts).is_empty(), "and leave no count behind");
    }
}
