//! This node's part in storing the section's chunks: taking paid uploads and placing each
//! chunk on its 4 holders, serving chunks, holding its own share, and — as an elder —
//! auditing every holder each challenge round.
//!
//! The rules are pure functions elsewhere (placement and audits in `acre-proofs`, prices
//! and payment checks in `acre_ledger::economics`); this module moves bytes between the
//! API, the disk and the network, and keeps the tallies.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use acre_ledger::economics::{
    app_fee_of, billable_bytes, check_store_payment, pool_account, store_cost, StorePaymentError,
};
use acre_ledger::{AccountId, Amount, AppId, Certificate, Digest, LedgerError, ProvenChunk};
use acre_proofs::audit::{assigned, judge, plan, Audit, Outcome};
use acre_proofs::challenge::{Answer, Challenge};
use acre_proofs::placement::{closest, node_name, Repair, COPIES};
use acre_proofs::{Chunk, ChunkAddress, MAX_CHUNK_BYTES};
use futures::future::join_all;
use libp2p::PeerId;

use acre_api::storage::{AuditRecord, ChallengeTally, FarmerView, Placed, Quote};

use crate::blocking::blocking;
use crate::chunk_store::{ChunkStore, ChunkStoreError, Stored};
use crate::config::{CHUNKS_DIR, PAYMENTS_FILE, REGISTRY_FILE};
use crate::farming::{Farming, Inbound, LogItem};
use crate::network::{InboundHandler, PeerRequest, PeerResponse};
use crate::records::RecordFile;
use crate::section::Section;

/// How long a quote is honoured: a payment is checked against the lowest price the
/// section quoted in this window, so fullness rising during an upload does not turn a
/// payment made on a fresh quote into too small a one.
pub const QUOTE_VALIDITY: Duration = Duration::from_secs(600);
/// Registry record: address and size (little-endian).
const REGISTRY_RECORD: usize = 40;

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
    /// Blocks challenged per chunk.
    pub audit_blocks: usize,
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

/// What this elder's audits showed since it last reported on an epoch.
#[derive(Debug, Clone, Default)]
pub struct EpochAudits {
    /// Per holder and chunk: the chunk's size and whether its latest audit passed.
    pub latest: BTreeMap<(AccountId, ChunkAddress), (u64, bool)>,
    /// Audits per holder, by outcome.
    pub tallies: BTreeMap<AccountId, ChallengeTally>,
}

impl EpochAudits {
    /// The chunks whose latest audit passed: what this elder reports as proven. A chunk
    /// that failed after passing is not proven, so deleting chunks stops their rewards
    /// from the next report on.
    pub fn proven(&self) -> Vec<ProvenChunk> {
        self.latest
            .iter()
            .filter(|(_, (_, passed))| *passed)
            .map(|((holder, chunk), (bytes, _))| ProvenChunk { holder: *holder, chunk: chunk.0, bytes: *bytes })
            .collect()
    }

    fn record(&mut self, holder: AccountId, audit: &Audit, outcome: Outcome) {
        self.tallies.entry(holder).or_default().add(outcome);
        if outcome == Outcome::Excused {
            return;
        }
        for (item, size) in audit.challenge.items.iter().zip(&audit.sizes) {
            self.latest.insert((holder, item.address), (*size, outcome == Outcome::Passed));
        }
    }
}

/// The chunks stored in the section, with their sizes, kept on disk.
#[derive(Debug)]
struct Registry {
    chunks: BTreeMap<ChunkAddress, u64>,
    file: RecordFile<REGISTRY_RECORD>,
}

impl Registry {
    fn open(path: &Path) -> std::io::Result<Self> {
        let (file, records) = RecordFile::<REGISTRY_RECORD>::open(path)?;
        let chunks = records
            .iter()
            .filter_map(|record| {
                let address: [u8; 32] = record[..32].try_into().ok()?;
                let size: [u8; 8] = record[32..].try_into().ok()?;
                Some((ChunkAddress(address), u64::from_le_bytes(size)))
            })
            .collect();
        Ok(Registry { chunks, file })
    }

    /// Records the chunks not yet known.
    fn add(&mut self, entries: &[(ChunkAddress, u64)]) -> std::io::Result<()> {
        let new: Vec<(ChunkAddress, u64)> =
            entries.iter().filter(|(address, _)| !self.chunks.contains_key(address)).copied().collect();
        let records: Vec<[u8; REGISTRY_RECORD]> = new
            .iter()
            .map(|(address, size)| {
                let mut record = [0u8; REGISTRY_RECORD];
                record[..32].copy_from_slice(&address.0);
                record[32..].copy_from_slice(&size.to_le_bytes());
                record
            })
            .collect();
        self.file.append(&records)?;
        self.chunks.extend(new);
        Ok(())
    }
}

/// Store payments this node has accepted: checked once against the price, then good for
/// every chunk they list, across retries and restarts.
#[derive(Debug)]
struct AcceptedPayments {
    ids: HashSet<Digest>,
    file: RecordFile<32>,
}

/// Prices quoted lately, so a payment is held to the lowest of them.
#[derive(Debug, Default)]
struct PriceHistory {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl PriceHistory {
    fn record(&mut self, used: u64, capacity: u64) {
        let now = Instant::now();
        while self.samples.front().is_some_and(|(at, _, _)| now.duration_since(*at) > QUOTE_VALIDITY) {
            self.samples.pop_front();
        }
        // At most one sample a second (the cheapest), so quoting in a loop costs no memory.
        if let Some(last) =
            self.samples.back_mut().filter(|(at, _, _)| now.duration_since(*at) < Duration::from_secs(1))
        {
            if store_cost(1, used, capacity) < store_cost(1, last.1, last.2) || store_cost(1, last.1, last.2).is_none()
            {
                *last = (last.0, used, capacity);
            }
            return;
        }
        self.samples.push_back((now, used, capacity));
    }

    /// The lowest price for `bytes` quoted within the validity window.
    fn honoured(&self, bytes: u64) -> Option<Amount> {
        self.samples.iter().filter_map(|(_, used, capacity)| store_cost(bytes, *used, *capacity)).min()
    }
}

/// When each member's connection last came or went, as this node saw it.
#[derive(Debug, Default)]
struct ConnectionWatch {
    seen: HashMap<PeerId, (bool, Instant)>,
}

impl ConnectionWatch {
    fn observe(&mut self, connected: &HashSet<PeerId>, members: impl Iterator<Item = PeerId>, started: Instant) {
        let now = Instant::now();
        for peer in members {
            let up = connected.contains(&peer);
            let entry = self.seen.entry(peer).or_insert((up, started));
            if entry.0 != up {
                *entry = (up, now);
            }
        }
    }

    /// Whether the peer's connection changed within `grace` (or has not been seen since
    /// this node started `grace` ago).
    fn settling(&self, peer: &PeerId, grace: Duration) -> bool {
        self.seen.get(peer).is_none_or(|(_, since)| since.elapsed() < grace)
    }
}

/// The storage service of one node.
#[derive(Debug)]
pub struct Storage {
    section: Arc<Section>,
    chunks: Arc<ChunkStore>,
    registry: Mutex<Registry>,
    payments: Mutex<AcceptedPayments>,
    farmers: Mutex<BTreeMap<AccountId, (ChallengeTally, Option<AuditRecord>)>>,
    epoch_audits: Mutex<EpochAudits>,
    app_prices: Mutex<HashMap<AppId, VecDeque<(Instant, Amount)>>>,
    statuses: Mutex<HashMap<AccountId, (u64, u64)>>,
    prices: Mutex<PriceHistory>,
    connections: Mutex<ConnectionWatch>,
    settings: StorageSettings,
    pool: AccountId,
    started: Instant,
    farming: Farming,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn disk(error: impl std::fmt::Display) -> StorageError {
    StorageError::Disk(error.to_string())
}

impl Storage {
    /// Opens the node's chunk store, registry and accepted payments under `data_dir`.
    pub fn open(
        section: Arc<Section>,
        data_dir: &Path,
        settings: StorageSettings,
        farming: Farming,
    ) -> Result<Self, StorageError> {
        let chunks = ChunkStore::open(data_dir.join(CHUNKS_DIR), settings.capacity).map_err(disk)?;
        let registry = Registry::open(&data_dir.join(REGISTRY_FILE)).map_err(disk)?;
        let (file, ids) = RecordFile::<32>::open(&data_dir.join(PAYMENTS_FILE)).map_err(disk)?;
        let payments = AcceptedPayments { ids: ids.into_iter().map(Digest).collect(), file };
        let storage = Storage {
            chunks: Arc::new(chunks),
            registry: Mutex::new(registry),
            payments: Mutex::new(payments),
            farmers: Mutex::default(),
            epoch_audits: Mutex::default(),
            app_prices: Mutex::default(),
            statuses: Mutex::default(),
            prices: Mutex::default(),
            connections: Mutex::default(),
            settings,
            pool: pool_account(""),
            started: Instant::now(),
            section,
            farming,
        };
        storage.record_status(storage.section.me(), storage.chunks.used(), storage.chunks.capacity());
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

    /// Every chunk registered here, with its size.
    pub fn chunk_registry(&self) -> BTreeMap<ChunkAddress, u64> {
        lock(&self.registry).chunks.clone()
    }

    /// Makes the copies: fetches each chunk (from here or from a holder that still has it,
    /// checking its address) and has its new holder store it.
    pub async fn repair(&self, copies: Vec<Repair>) {
        let mut made = 0usize;
        for repair in copies {
            let Some(to) = self.member_named(&repair.to) else { continue };
            let mut bytes = self.local(move |chunks| chunks.get(&repair.chunk)).await.ok().flatten();
            for from in repair.from.iter().filter_map(|name| self.member_named(name)) {
                if bytes.is_some() {
                    break;
                }
                let Some(peer) = self.peer_of(&from) else { continue };
                if let Some(PeerResponse::Chunk(Some(fetched))) =
                    self.section.request(peer, PeerRequest::FetchChunk(repair.chunk)).await
                {
                    bytes = Some(fetched.into_vec());
                }
            }
            let Some(chunk) = bytes.and_then(|bytes| Chunk::new(bytes).ok()).filter(|c| c.address() == repair.chunk)
            else {
                tracing::warn!(chunk = %repair.chunk, "no holder could give a chunk to repair");
                continue;
            };
            match self.store_on(to, Arc::new(chunk)).await {
                Ok(()) => made += 1,
                Err(error) => tracing::warn!(%error, chunk = %repair.chunk, "a repair copy failed"),
            }
        }
        metrics::counter!("acre_repairs_total").increment(made as u64);
        tracing::info!(made, "repair copies made");
    }

    /// Hands a store payment to the section log.
    async fn propose_payment(&self, certificate: Certificate) {
        self.propose(LogItem::Payment(certificate)).await;
    }

    /// Puts an item that proves itself into the section log: proposed here as an elder,
    /// otherwise sent to the elders.
    pub async fn propose(&self, item: LogItem) {
        let membership = self.section.membership();
        if membership.elders.contains(&self.section.me()) {
            self.farming.deliver(Inbound::Propose(item));
            return;
        }
        let sends = membership
            .members
            .iter()
            .filter(|(id, _)| membership.elders.contains(id))
            .map(|(_, peer)| self.section.request(*peer, PeerRequest::Propose(Box::new(item.clone()))));
        join_all(sends).await;
    }

    /// The section's price for `bytes` now.
    pub fn quote(&self, bytes: u64, app: Option<AppId>) -> Result<Quote, StorageError> {
        let (used, capacity) = self.section_fullness();
        lock(&self.prices).record(used, capacity);
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

    /// The app's price per upload as the section log last said; the lowest price it had
    /// in the last [`QUOTE_VALIDITY`] is honoured, so a raise never catches a payment
    /// already made on the old quote.
    fn app_price(&self, app: &AppId) -> Result<Amount, StorageError> {
        let current = self
            .farming
            .view()
            .state
            .and_then(|state| state.apps().get(app).map(|app| app.price_per_put))
            .ok_or(StorageError::UnknownApp(*app))?;
        let mut seen = lock(&self.app_prices);
        let now = Instant::now();
        let history = seen.entry(*app).or_default();
        history.retain(|(at, _)| now.duration_since(*at) < QUOTE_VALIDITY);
        if history.back().is_none_or(|(_, price)| *price != current) {
            history.push_back((now, current));
        }
        while history.len() > 64 {
            history.pop_front();
        }
        Ok(history.iter().map(|(_, price)| *price).min().unwrap_or(current))
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
            let request = PeerRequest::FetchForApp { address, app, use_id };
            if let Some(PeerResponse::Chunk(Some(bytes))) = self.section.request(peer, request).await {
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
            .map(|(_, peer)| self.section.request(*peer, PeerRequest::Metered { app, use_id }));
        join_all(sends).await;
    }

    /// Stores a chunk on its holders, after checking the payment for it (none is needed
    /// for a chunk the section already holds). Safe to retry.
    pub async fn put(
        self: &Arc<Self>,
        content: Vec<u8>,
        payment: Option<(Certificate, Vec<(ChunkAddress, u64)>)>,
    ) -> Result<Placed, StorageError> {
        let chunk = Chunk::new(content).map_err(|error| StorageError::InvalidChunk(error.to_string()))?;
        let (address, size) = (chunk.address(), chunk.size());
        let holders = self.holders_of(&address);
        if lock(&self.registry).chunks.contains_key(&address) {
            return Ok(Placed { address, size, holders, already_stored: true });
        }
        let (certificate, list) = payment.ok_or(StorageError::PaymentRequired(address))?;
        self.accept_payment(certificate, &list, (address, size)).await?;
        let chunk = Arc::new(chunk);
        let stores = holders.iter().map(|holder| self.store_on(*holder, Arc::clone(&chunk)));
        let mut unavailable = Vec::new();
        for result in join_all(stores).await {
            match result {
                Ok(()) => {}
                Err(full @ StorageError::HolderFull { .. }) => return Err(full),
                Err(error) => unavailable.push(error.to_string()),
            }
        }
        if !unavailable.is_empty() {
            return Err(StorageError::HoldersUnavailable(unavailable.join("; ")));
        }
        self.register_everywhere(vec![(address, size)]).await?;
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
            if let Some(PeerResponse::Chunk(Some(bytes))) =
                self.section.request(peer, PeerRequest::FetchChunk(address)).await
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
        let size = lock(&self.registry).chunks.get(&address).copied();
        let asks = self.holders_of(&address).into_iter().map(|holder| async move {
            if holder == self.section.me() {
                return (holder, Some(self.chunks.contains(&address)));
            }
            let Some(peer) = self.peer_of(&holder) else { return (holder, None) };
            match self.section.request(peer, PeerRequest::Holds(vec![address])).await {
                Some(PeerResponse::Held(held)) => (holder, held.first().copied()),
                _ => (holder, None),
            }
        });
        (size, join_all(asks).await)
    }

    /// What this elder's audits say of a member.
    pub fn farmer(&self, node: AccountId) -> Result<FarmerView, StorageError> {
        if !self.section.membership().members.iter().any(|(member, _)| *member == node) {
            return Err(StorageError::UnknownFarmer(node));
        }
        let members = self.member_names();
        let (chunks, bytes) = {
            let registry = lock(&self.registry);
            assigned(&registry.chunks, &members, &node_name(&node.0))
                .fold((0u64, 0u64), |(n, b), (_, size)| (n + 1, b.saturating_add(size)))
        };
        let status = lock(&self.statuses).get(&node).copied();
        let (challenges, last) = lock(&self.farmers).get(&node).cloned().unwrap_or_default();
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
    /// audits every other holder on chunks it must hold.
    pub async fn audit_rounds(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.settings.challenge_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = unix_millis();
        loop {
            ticker.tick().await;
            round += 1;
            self.refresh_statuses().await;
            if self.section.is_elder() {
                self.audit_round(round).await;
            }
        }
    }

    async fn audit_round(&self, round: u64) {
        let connected = self.section.connected().await;
        let peers: Vec<PeerId> = self.section.membership().members.iter().map(|(_, peer)| *peer).collect();
        lock(&self.connections).observe(&connected, peers.into_iter(), self.started);
        let randomness: [u8; 32] = rand::random();
        let audits = {
            let registry = lock(&self.registry);
            plan(
                &registry.chunks,
                &self.member_names(),
                &node_name(&self.section.me().0),
                &randomness,
                round,
                self.settings.audit_chunks,
                self.settings.audit_blocks,
            )
        };
        join_all(audits.into_iter().map(|audit| self.audit(audit, round))).await;
    }

    /// Sends one audit and records what it showed.
    async fn audit(&self, audit: Audit, round: u64) {
        let Some(holder) = self.member_named(&audit.holder) else { return };
        let Some(peer) = self.peer_of(&holder) else { return };
        let chunks = audit.challenge.items.len();
        let sent = Instant::now();
        let deadline = self.settings.challenge_interval;
        let response = crate::section::request_within(
            self.section.network(),
            peer,
            PeerRequest::Challenge(audit.challenge.clone()),
            deadline,
        )
        .await;
        let latency = sent.elapsed();
        let outcome = match response {
            Some(PeerResponse::Answer(answer)) => judge(&audit, &answer),
            Some(PeerResponse::Missing(_)) => Outcome::Missing,
            // Anything else (a refusal because its copy is damaged, say) proves nothing.
            Some(_) => Outcome::WrongBytes,
            None => {
                // Look again: a holder that went down during this round has only just
                // changed, and is excused for the grace period like one starting up.
                let connected = self.section.connected().await;
                let mut watch = lock(&self.connections);
                watch.observe(&connected, std::iter::once(peer), self.started);
                if watch.settling(&peer, self.settings.grace) {
                    Outcome::Excused
                } else {
                    Outcome::Timeout
                }
            }
        };
        if outcome.is_failure() {
            tracing::info!(%holder, ?outcome, round, "a holder failed its audit");
        }
        metrics::counter!("acre_audits_total", "outcome" => format!("{outcome:?}")).increment(1);
        let record =
            AuditRecord { round, outcome, latency_ms: latency.as_millis() as u64, at_unix_ms: unix_millis(), chunks };
        lock(&self.epoch_audits).record(holder, &audit, outcome);
        let mut farmers = lock(&self.farmers);
        let entry = farmers.entry(holder).or_default();
        entry.0.add(outcome);
        entry.1 = Some(record);
    }

    /// Hands over what the audits showed since the last call, and starts afresh.
    pub fn take_epoch_audits(&self) -> EpochAudits {
        std::mem::take(&mut *lock(&self.epoch_audits))
    }

    async fn refresh_statuses(&self) {
        self.record_status(self.section.me(), self.chunks.used(), self.chunks.capacity());
        let members = self.section.membership().members;
        let asks = members
            .iter()
            .filter(|(id, _)| *id != self.section.me())
            .map(|(id, peer)| async move { (*id, self.section.request(*peer, PeerRequest::Status).await) });
        for (id, response) in join_all(asks).await {
            if let Some(PeerResponse::Status { used, capacity }) = response {
                self.record_status(id, used, capacity);
            }
        }
        let (used, capacity) = self.section_fullness();
        lock(&self.prices).record(used, capacity);
    }

    fn record_status(&self, node: AccountId, used: u64, capacity: u64) {
        lock(&self.statuses).insert(node, (used, capacity));
    }

    /// Bytes held and offered across the members last heard from (this one always).
    fn section_fullness(&self) -> (u64, u64) {
        self.record_status(self.section.me(), self.chunks.used(), self.chunks.capacity());
        lock(&self.statuses)
            .values()
            .fold((0u64, 0u64), |(used, capacity), (u, c)| (used.saturating_add(*u), capacity.saturating_add(*c)))
    }

    /// Checks a payment once (certificate, pool, memo, price), applies its certificate
    /// here, and remembers it; afterwards it only has to list the chunk.
    async fn accept_payment(
        &self,
        certificate: Certificate,
        list: &[(ChunkAddress, u64)],
        chunk: (ChunkAddress, u64),
    ) -> Result<(), StorageError> {
        let id = certificate.id();
        let named: Vec<([u8; 32], u64)> = list.iter().map(|(address, size)| (address.0, *size)).collect();
        let known = lock(&self.payments).ids.contains(&id);
        let required = if known {
            Amount::ZERO
        } else {
            check_entries(list)?;
            let bytes = billable_bytes(list.iter().map(|(_, size)| *size))
                .ok_or_else(|| StorageError::InvalidChunk("the listed sizes overflow".into()))?;
            let (used, capacity) = self.section_fullness();
            let store = {
                let mut prices = lock(&self.prices);
                prices.record(used, capacity);
                prices.honoured(bytes).ok_or(StorageError::SectionFull)?
            };
            store
                .checked_add(self.check_app_fee(&certificate.order)?)
                .ok_or(StorageError::InvalidChunk("the price overflows".into()))?
        };
        check_store_payment(&certificate.order, &self.pool, &named, &(chunk.0 .0, chunk.1), required)?;
        if known {
            return Ok(());
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
        {
            let mut payments = lock(&self.payments);
            blocking(|| payments.file.append(&[id.0])).map_err(disk)?;
            payments.ids.insert(id);
        }
        self.propose_payment(certificate).await;
        Ok(())
    }

    /// The app fee a payment through an app carries, checked against the app's price.
    fn check_app_fee(&self, order: &acre_ledger::TransferOrder) -> Result<Amount, StorageError> {
        let Some(app) = order.app else { return Ok(Amount::ZERO) };
        let price = self.app_price(&app)?;
        let fee = app_fee_of(order).map_or(Amount::ZERO, |(_, fee)| fee);
        if fee < price {
            return Err(StorageError::Payment(StorePaymentError::TooSmall { paid: fee, required: price }));
        }
        Ok(fee)
    }

    /// Has `holder` store the chunk durably.
    async fn store_on(&self, holder: AccountId, chunk: Arc<Chunk>) -> Result<(), StorageError> {
        if holder == self.section.me() {
            return match self.local(move |chunks| chunks.put(&chunk)).await {
                Ok(_) => Ok(()),
                Err(ChunkStoreError::Full { used, capacity, .. }) => {
                    Err(StorageError::HolderFull { holder, used, capacity })
                }
                Err(error) => Err(disk(error)),
            };
        }
        let peer = self
            .peer_of(&holder)
            .ok_or_else(|| StorageError::HoldersUnavailable(format!("{holder} has no peer id")))?;
        match self.section.request(peer, PeerRequest::StoreChunk(chunk.bytes().to_vec())).await {
            Some(PeerResponse::Done) => Ok(()),
            Some(PeerResponse::Full { used, capacity }) => Err(StorageError::HolderFull { holder, used, capacity }),
            Some(PeerResponse::Refused(reason)) => Err(StorageError::HoldersUnavailable(format!("{holder}: {reason}"))),
            _ => Err(StorageError::HoldersUnavailable(format!("{holder} did not answer"))),
        }
    }

    /// Records the chunks here and on every other member, so whichever members are elders
    /// later audit them. A member unreachable now does not learn them.
    async fn register_everywhere(&self, entries: Vec<(ChunkAddress, u64)>) -> Result<(), StorageError> {
        self.register(&entries)?;
        let me = self.section.me();
        let members = self.section.membership().members;
        let sends = members
            .iter()
            .filter(|(id, _)| *id != me)
            .map(|(_, peer)| self.section.request(*peer, PeerRequest::Register(entries.clone())));
        join_all(sends).await;
        Ok(())
    }

    /// Records chunks in the registry; its append is synced, so it runs where blocking
    /// is allowed.
    fn register(&self, entries: &[(ChunkAddress, u64)]) -> Result<(), StorageError> {
        blocking(|| lock(&self.registry).add(entries).map_err(disk))
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
        closest(address, &self.member_names(), COPIES).iter().filter_map(|name| self.member_named(name)).collect()
    }

    /// The members' XOR names.
    fn member_names(&self) -> Vec<[u8; 32]> {
        self.section.membership().members.iter().map(|(id, _)| node_name(&id.0)).collect()
    }

    fn member_named(&self, name: &[u8; 32]) -> Option<AccountId> {
        self.section.membership().members.iter().map(|(id, _)| *id).find(|id| node_name(&id.0) == *name)
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

    /// Answers a challenge from the chunk files: a missing chunk is said at once.
    async fn answer_challenge(&self, challenge: Challenge) -> PeerResponse {
        let answered = self
            .local(move |chunks| {
                let mut proofs = Vec::with_capacity(challenge.items.len());
                for item in &challenge.items {
                    match chunks.answer(item) {
                        Ok(proof) => proofs.push(proof),
                        Err(ChunkStoreError::Missing(address)) => return Ok(Err(address)),
                        Err(error) => return Err(error),
                    }
                }
                Ok(Ok(Answer { nonce: challenge.nonce, proofs }))
            })
            .await;
        match answered {
            Ok(Ok(answer)) => PeerResponse::Answer(answer),
            Ok(Err(address)) => PeerResponse::Missing(address),
            Err(error) => PeerResponse::Refused(error.to_string()),
        }
    }
}

/// Most chunks one store payment, registration or holdings question may name.
const MAX_ENTRIES: usize = 1 << 16;
/// Most chunks one challenge may name.
const MAX_CHALLENGE_ITEMS: usize = 256;

/// Every listed chunk has a size a chunk can have, and the list is not absurdly long.
fn check_entries(entries: &[(ChunkAddress, u64)]) -> Result<(), StorageError> {
    if entries.len() > MAX_ENTRIES {
        return Err(StorageError::InvalidChunk(format!("{} chunks in one list; at most {MAX_ENTRIES}", entries.len())));
    }
    match entries.iter().find(|(_, size)| *size == 0 || *size > MAX_CHUNK_BYTES as u64) {
        Some((address, size)) => Err(StorageError::InvalidChunk(format!("chunk {address} cannot be {size} bytes"))),
        None => Ok(()),
    }
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl InboundHandler for Arc<Storage> {
    async fn answer(&self, peer: PeerId, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::StoreChunk(_) | PeerRequest::Register(_) | PeerRequest::Challenge(_)
                if !self.is_member(&peer) =>
            {
                PeerResponse::Refused("only members of this section place chunks and audit".into())
            }
            PeerRequest::Challenge(challenge) if challenge.items.len() > MAX_CHALLENGE_ITEMS => {
                PeerResponse::Refused(format!("at most {MAX_CHALLENGE_ITEMS} chunks per challenge"))
            }
            PeerRequest::Holds(addresses) if addresses.len() > MAX_ENTRIES => {
                PeerResponse::Refused(format!("at most {MAX_ENTRIES} chunks per question"))
            }
            PeerRequest::Register(entries) if check_entries(&entries).is_err() => {
                PeerResponse::Refused("a registration lists impossible chunk sizes".into())
            }
            PeerRequest::StoreChunk(bytes) => {
                let Ok(chunk) = Chunk::new(bytes) else { return PeerResponse::Refused("not a chunk".into()) };
                match self.local(move |chunks| chunks.put(&chunk).map(|_: Stored| ())).await {
                    Ok(()) => PeerResponse::Done,
                    Err(ChunkStoreError::Full { used, capacity, .. }) => PeerResponse::Full { used, capacity },
                    Err(error) => PeerResponse::Refused(error.to_string()),
                }
            }
            PeerRequest::Register(entries) => match self.register(&entries) {
                Ok(()) => PeerResponse::Done,
                Err(error) => PeerResponse::Refused(error.to_string()),
            },
            PeerRequest::FetchChunk(address) => match self.local(move |chunks| chunks.get(&address)).await {
                Ok(bytes) => PeerResponse::Chunk(bytes.map(serde_bytes::ByteBuf::from)),
                Err(error) => PeerResponse::Refused(error.to_string()),
            },
            PeerRequest::Holds(addresses) => {
                PeerResponse::Held(blocking(|| addresses.iter().map(|address| self.chunks.contains(address)).collect()))
            }
            PeerRequest::Challenge(challenge) => self.answer_challenge(challenge).await,
            PeerRequest::Status => PeerResponse::Status { used: self.chunks.used(), capacity: self.chunks.capacity() },
            PeerRequest::LogFrame { session, frame } => {
                self.farming.deliver(Inbound::Frame { peer, session, frame });
                PeerResponse::Done
            }
            PeerRequest::Metered { app, use_id } => {
                if let Some(from) = self.member_of_peer(&peer) {
                    self.farming.deliver(Inbound::Metered { from, app, use_id });
                }
                PeerResponse::Done
            }
            PeerRequest::FetchForApp { address, app, use_id } => {
                match self.local(move |chunks| chunks.get(&address)).await {
                    Ok(Some(bytes)) => {
                        if self.is_member(&peer) {
                            self.attest(app, use_id).await;
                        }
                        PeerResponse::Chunk(Some(serde_bytes::ByteBuf::from(bytes)))
                    }
                    Ok(None) => PeerResponse::Chunk(None),
                    Err(error) => PeerResponse::Refused(error.to_string()),
                }
            }
            PeerRequest::EpochSignature { epoch, signature } => {
                self.farming.deliver(Inbound::Signature { peer, epoch, signature });
                PeerResponse::Done
            }
            PeerRequest::Outcome(epoch) => {
                let farming = self.farming.clone();
                PeerResponse::Outcome(blocking(move || farming.outcome(epoch)).map(Box::new))
            }
            PeerRequest::Propose(item) => match *item {
                LogItem::Enrol(enrolment) if enrolment.is_valid() => {
                    self.farming.deliver(Inbound::Propose(LogItem::Enrol(enrolment)));
                    PeerResponse::Done
                }
                LogItem::App(command) if command.is_valid() => {
                    self.farming.deliver(Inbound::Propose(LogItem::App(command)));
                    PeerResponse::Done
                }
                LogItem::Payment(certificate) => {
                    let verified = self.section.committee().verify_all(vec![certificate.clone()]);
                    let pays_pool = certificate.order.to == self.pool;
                    if pays_pool && matches!(verified.first(), Some(Ok(_))) {
                        self.farming.deliver(Inbound::Propose(LogItem::Payment(certificate)));
                        PeerResponse::Done
                    } else {
                        PeerResponse::Refused("not a certified payment to the section's pool".into())
                    }
                }
                _ => PeerResponse::Refused("only signed enrolments, app commands and store payments are taken".into()),
            },
            ledger => self.section.answer(peer, ledger).await,
        }
    }
}
