//! The section's agreement, driven: this node's elders order [`LogItem`]s on the BFT
//! engine (one session per epoch, its elder set fixed), turn them into
//! [`SectionEvent`]s and apply them to the pure [`SectionState`]; when an epoch closes
//! they apply its record to the ledger, sign its outcome and start the next session.
//! Nodes that are not elders, and elders that were down, follow by fetching closed
//! epochs' outcomes — the ordered items and a quorum of the elders' signatures — and
//! replaying them.
//!
//! The clocks (epoch length, liveness), the disk (state, outcomes, unit backups) and the
//! network live here; every decision about the section is `SectionState`'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use acre_ledger::economics::{app_fee_of, pool_account};
use acre_ledger::section_state::{SectionChange, SectionEvent, SectionState};
use acre_ledger::{
    AccountId, Amount, AppId, Certificate, Committee, Digest, EpochRecord, EpochReport, LedgerError, SignatureBytes,
    SignedAppCommand,
};
use acre_proofs::placement::{node_name, repairs};
use aleph_bft::Recipient;
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::channel::oneshot;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::blocking::blocking;
use crate::config::write_atomically;
use crate::network::{peer_id_of, PeerRequest, PeerResponse};
use crate::section::Section;
use crate::section_log::{self, FrameNetwork, LogSession, Ordered, OUTBOUND_FRAMES};
use crate::storage::Storage;
use acre_api::farming::StatementLine;
use acre_api::storage::ChallengeTally;

/// Hash context of what elders sign when an epoch closes.
const OUTCOME_CONTEXT: &str = "acre 2026 epoch outcome v1";
/// Hash context of a node's request to join or to move its rewards.
const ENROLMENT_CONTEXT: &str = "acre 2026 enrolment v1";
/// Messages from the network and the storage service waiting for the driver.
const INBOX_DEPTH: usize = 8192;
/// Frames queued for one peer; beyond this they are dropped (the engine retransmits).
const PEER_QUEUE: usize = 512;
/// How often the driver looks at its clocks.
const TICK: Duration = Duration::from_millis(250);
/// Items an elder keeps proposing at most; beyond, new ones are refused until some are
/// ordered (a flood of enrolments cannot grow it without bound).
const MAX_PROPOSED: usize = 10_000;
/// How often a node that is not running the current session asks for closed epochs.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// Settings from the node's configuration.
#[derive(Debug, Clone)]
pub struct FarmingSettings {
    /// How long an epoch runs before the elders report on it.
    pub epoch: Duration,
    /// How long a member may stay unreachable before an elder reports it.
    pub unresponsive_after: Duration,
    /// Where this farmer's rewards go.
    pub reward_address: AccountId,
    /// The engine's delay between rounds.
    pub round_delay: Duration,
}

/// A node's signed request to join the section, or as a member to move its rewards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The node.
    pub node: AccountId,
    /// Its reward address.
    pub reward: AccountId,
    /// The node's signature over both.
    pub signature: SignatureBytes,
}

impl Enrolment {
    /// The request of the node whose key is `key`.
    pub fn new(key: &SigningKey, reward: AccountId) -> Self {
        let node = AccountId::of(key);
        Enrolment { node, reward, signature: SignatureBytes::sign(key, &Self::digest(&node, &reward)) }
    }

    fn digest(node: &AccountId, reward: &AccountId) -> Digest {
        Digest::derive(ENROLMENT_CONTEXT, &[node.as_bytes(), reward.as_bytes()])
    }

    /// Whether the node itself signed it.
    pub fn is_valid(&self) -> bool {
        self.node.verifying_key().is_some_and(|key| {
            key.verify_strict(Self::digest(&self.node, &self.reward).as_bytes(), &self.signature.to_dalek()).is_ok()
        })
    }
}

/// What elders put into the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogItem {
    /// A node asks to join (or to move its rewards), signed by it.
    Enrol(Enrolment),
    /// A store payment into the section's pool; its certificate proves it.
    Payment(Certificate),
    /// The proposing elder's audit report.
    Report(EpochReport),
    /// The proposing elder cannot reach this member.
    Unresponsive(AccountId),
    /// An app owner's signed command.
    App(SignedAppCommand),
}

/// The event an ordered item stands for, or `None` if it proves nothing. Deterministic,
/// so every elder admits the same events: a report or a liveness complaint counts only
/// from the elder whose signed unit carried it, a payment only with a valid certificate
/// paying the pool, an enrolment only with the node's signature.
pub fn admit(item: &LogItem, creator: &AccountId, committee: &Committee, pool: &AccountId) -> Option<SectionEvent> {
    match item {
        LogItem::Enrol(enrolment) => {
            enrolment.is_valid().then_some(SectionEvent::Join { node: enrolment.node, reward: enrolment.reward })
        }
        LogItem::Payment(certificate) => {
            let verified = committee.verify_all(vec![certificate.clone()]).into_iter().next()?.ok()?;
            let order = &verified.certificate().order;
            (order.to == *pool).then(|| SectionEvent::PoolPayment {
                id: certificate.id(),
                amount: order.amount,
                app_fee: app_fee_of(order),
            })
        }
        LogItem::Report(report) => (report.elder == *creator).then(|| SectionEvent::Report(report.clone())),
        LogItem::Unresponsive(node) => Some(SectionEvent::Unresponsive { elder: *creator, node: *node }),
        LogItem::App(command) => command.is_valid().then(|| SectionEvent::App(command.clone())),
    }
}

/// The elders of the session that orders `state`'s open epoch, in the engine's order.
pub fn session_elders(state: &SectionState) -> Vec<AccountId> {
    let mut elders: Vec<AccountId> = state.elders().into_iter().collect();
    elders.sort();
    elders
}

/// What an epoch closed with: the record, the state hash after it, the session's ordered
/// items up to the close, and the elders' signatures over the three.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochOutcome {
    /// The record the ledger applies.
    pub record: EpochRecord,
    /// The section state's hash after the close.
    pub state_hash: Digest,
    /// The session's items in the agreed order, with the index of the elder that proposed
    /// each, up to the one that closed the epoch.
    pub log: Vec<(usize, LogItem)>,
    /// Elders' signatures over [`EpochOutcome::digest`].
    pub signatures: BTreeMap<AccountId, SignatureBytes>,
    /// This node's own audits of each farmer in the epoch (not agreed; for statements).
    #[serde(default)]
    pub observed: BTreeMap<AccountId, ChallengeTally>,
}

impl EpochOutcome {
    /// What elders sign: the epoch, the record's id and the state hash.
    pub fn digest(&self) -> Digest {
        Digest::derive(
            OUTCOME_CONTEXT,
            &[&self.record.epoch.to_le_bytes(), self.record.id().as_bytes(), self.state_hash.as_bytes()],
        )
    }

    /// Whether `signer` signed this outcome with `signature`.
    pub fn signed_by(&self, signer: &AccountId, signature: &SignatureBytes) -> bool {
        signer
            .verifying_key()
            .is_some_and(|key| key.verify_strict(self.digest().as_bytes(), &signature.to_dalek()).is_ok())
    }
}

/// Why a fetched outcome was not adopted.
#[derive(Debug, thiserror::Error)]
pub enum OutcomeError {
    /// It is not for the epoch this node has open.
    #[error("the outcome is for epoch {got}, not {open}")]
    WrongEpoch {
        /// The epoch open here.
        open: u64,
        /// The outcome's.
        got: u64,
    },
    /// Fewer than a quorum of the session's elders signed it.
    #[error("{signed} of the session's elders signed it; a quorum is {quorum}")]
    TooFewSignatures {
        /// Valid signatures from the session's elders.
        signed: usize,
        /// The quorum.
        quorum: usize,
    },
    /// Replaying its items does not give the record and state it claims.
    #[error("replaying the outcome's items does not give its record and state hash")]
    Replay,
}

/// Checks an outcome fetched from a peer against `state` (the epoch open here) and
/// returns the state after it: a quorum of the session's elders signed it, and replaying
/// its items closes the epoch with exactly its record and state hash.
pub fn verify_outcome(
    state: &SectionState,
    outcome: &EpochOutcome,
    committee: &Committee,
    pool: &AccountId,
) -> Result<SectionState, OutcomeError> {
    if outcome.record.epoch != state.epoch() {
        return Err(OutcomeError::WrongEpoch { open: state.epoch(), got: outcome.record.epoch });
    }
    let elders = session_elders(state);
    let quorum = acre_ledger::quorum(elders.len());
    let signed = outcome
        .signatures
        .iter()
        .filter(|(signer, signature)| elders.contains(signer) && outcome.signed_by(signer, signature))
        .count();
    if signed < quorum {
        return Err(OutcomeError::TooFewSignatures { signed, quorum });
    }
    let mut replayed = state.clone();
    let mut closed = None;
    for (creator, item) in &outcome.log {
        if closed.is_some() {
            return Err(OutcomeError::Replay);
        }
        let Some(creator) = elders.get(*creator) else { continue };
        if let Some(event) = admit(item, creator, committee, pool) {
            closed = closed_record(replayed.apply(&event));
        }
    }
    match closed {
        Some(record) if record == outcome.record && replayed.state_hash().ok() == Some(outcome.state_hash) => {
            Ok(replayed)
        }
        _ => Err(OutcomeError::Replay),
    }
}

fn closed_record(change: SectionChange) -> Option<EpochRecord> {
    match change {
        SectionChange::Closed(record) | SectionChange::RemovedAndClosed(_, record) => Some(record),
        _ => None,
    }
}

/// The section as the agreed log says, for the API. Both parts are shared, so a request
/// takes a snapshot in constant time however many epochs have closed; the driver copies
/// a part only when a reader still holds the old one.
#[derive(Debug, Clone, Default)]
pub struct FarmingView {
    /// The state after the last applied event this node knows of.
    pub state: Option<Arc<SectionState>>,
    /// Closed epochs, oldest first (without their logs).
    pub epochs: Arc<Vec<EpochOutcome>>,
}

/// Messages for the driver.
#[derive(Debug)]
pub enum Inbound {
    /// An engine frame from a peer.
    Frame {
        /// The sender.
        peer: PeerId,
        /// Its session.
        session: u64,
        /// The frame.
        frame: Vec<u8>,
    },
    /// An elder's signature on a closed epoch.
    Signature {
        /// The sender.
        peer: PeerId,
        /// The epoch.
        epoch: u64,
        /// The signature.
        signature: SignatureBytes,
    },
    /// Something to propose to the log.
    Propose(LogItem),
    /// A member attests one read through an app.
    Metered {
        /// The attesting member.
        from: AccountId,
        /// The app.
        app: AppId,
        /// The read's id.
        use_id: Digest,
    },
}

/// How the rest of the node reaches the driver and reads what it knows.
#[derive(Debug, Clone)]
pub struct Farming {
    inbox: mpsc::Sender<Inbound>,
    view: Arc<RwLock<FarmingView>>,
    dir: PathBuf,
}

/// The driver's end of the [`Farming`] channels.
#[derive(Debug)]
pub struct FarmingInbox(mpsc::Receiver<Inbound>);

impl Farming {
    /// The handle and the driver's inbox, keeping state under `data_dir/section`.
    pub fn new(data_dir: &Path) -> (Farming, FarmingInbox) {
        let (inbox, receiver) = mpsc::channel(INBOX_DEPTH);
        let farming = Farming { inbox, view: Arc::default(), dir: data_dir.join("section") };
        (farming, FarmingInbox(receiver))
    }

    /// Hands a message to the driver; when it is swamped the message is dropped (frames
    /// are retransmitted; proposals are made again).
    pub fn deliver(&self, message: Inbound) {
        let _ = self.inbox.try_send(message);
    }

    /// A snapshot of what this node knows of the section.
    pub fn view(&self) -> FarmingView {
        self.view.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The closed epoch `epoch` as kept on disk, with its log, for peers that follow.
    pub fn outcome(&self, epoch: u64) -> Option<EpochOutcome> {
        read_outcome(&self.dir, epoch)
    }

    fn publish(&self, state: &SectionState, closed: Option<EpochOutcome>) {
        let mut view = self.view.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        view.state = Some(Arc::new(state.clone()));
        if let Some(mut outcome) = closed {
            outcome.log.clear();
            let epochs = Arc::make_mut(&mut view.epochs);
            // Kept in epoch order, which the API's searches rely on.
            match epochs.binary_search_by_key(&outcome.record.epoch, |e| e.record.epoch) {
                Ok(known) => epochs[known] = outcome,
                Err(place) => epochs.insert(place, outcome),
            }
        }
    }
}

fn outcome_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join("epochs").join(format!("{epoch:012}.json"))
}

/// The meter's totals as the last epoch close saved them, beside the section state.
const USAGE_FILE: &str = "usage.json";

/// The saved meter totals; none if never saved (or unreadable, which under-counts this
/// elder alone and so cannot raise the agreed use).
fn read_usage(dir: &Path) -> BTreeMap<AppId, u64> {
    std::fs::read(dir.join(USAGE_FILE)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

fn read_outcome(dir: &Path, epoch: u64) -> Option<EpochOutcome> {
    let bytes = std::fs::read(outcome_path(dir, epoch)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One running engine session.
struct Running {
    epoch: u64,
    elders: Vec<AccountId>,
    peers: HashMap<PeerId, usize>,
    /// The state as the session's items so far leave it.
    working: SectionState,
    log: Vec<(usize, LogItem)>,
    frames: mpsc::Sender<Vec<u8>>,
    pending: mpsc::Sender<LogItem>,
    finalized: mpsc::UnboundedReceiver<Ordered<LogItem>>,
    exit: Option<oneshot::Sender<()>>,
    engine: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(exit) = self.exit.take() {
            let _ = exit.send(());
        }
        self.sender.abort();
    }
}

/// The driver: owns the section state and the engine session.
pub struct Driver {
    farming: Farming,
    inbox: mpsc::Receiver<Inbound>,
    section: Arc<Section>,
    storage: Arc<Storage>,
    key: SigningKey,
    settings: FarmingSettings,
    pool: AccountId,
    /// The state as of the last closed epoch (persisted).
    state: SectionState,
    running: Option<Running>,
    /// This elder's proposals not yet seen in the agreed order.
    proposed: Vec<LogItem>,
    epoch_started: Instant,
    reported: bool,
    /// Audits taken for the report, kept for the epoch's outcome file.
    observed: BTreeMap<AccountId, ChallengeTally>,
    last_seen: HashMap<AccountId, Instant>,
    complained: BTreeSet<AccountId>,
    last_follow: Option<Instant>,
    behind: bool,
    /// Records not yet applied to the ledger (it lacked a payment it will catch up on).
    unapplied: Vec<EpochRecord>,
    early_signatures: BTreeMap<u64, Vec<(AccountId, SignatureBytes)>>,
    last_enrolment: Option<Instant>,
    /// Reads through apps attested to this elder.
    meter: UseMeter,
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum FarmingError {
    /// Its state could not be read or written.
    #[error("section state: {0}")]
    Disk(#[from] std::io::Error),
    /// The saved state does not decode.
    #[error("the saved section state is damaged: {0}")]
    Damaged(String),
}

impl Driver {
    /// A driver for this node, resuming from its saved state; a new node starts from the
    /// genesis elders as the founding members.
    pub fn open(
        (farming, FarmingInbox(inbox)): (Farming, FarmingInbox),
        section: Arc<Section>,
        storage: Arc<Storage>,
        key: SigningKey,
        settings: FarmingSettings,
        genesis: Amount,
    ) -> Result<Driver, FarmingError> {
        std::fs::create_dir_all(farming.dir.join("epochs"))?;
        let state_file = farming.dir.join("state.postcard");
        let state = match std::fs::read(&state_file) {
            Ok(bytes) => postcard::from_bytes(&bytes).map_err(|e| FarmingError::Damaged(e.to_string()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let founders: Vec<(AccountId, AccountId)> =
                    section.committee().members().map(|id| (*id, *id)).collect();
                SectionState::new(&founders, genesis)
            }
            Err(error) => return Err(error.into()),
        };
        let mut epochs = Vec::new();
        for epoch in 1..state.epoch() {
            if let Some(mut outcome) = read_outcome(&farming.dir, epoch) {
                outcome.log.clear();
                epochs.push(outcome);
            }
        }
        farming.view.write().unwrap_or_else(std::sync::PoisonError::into_inner).epochs = Arc::new(epochs);
        farming.publish(&state, None);
        section.set_membership(state.members().keys().copied(), state.elders());
        let unapplied = state.records().cloned().collect();
        let meter = UseMeter::resuming(read_usage(&farming.dir));
        Ok(Driver {
            farming,
            inbox,
            section,
            storage,
            key,
            settings,
            pool: pool_account(""),
            state,
            running: None,
            proposed: Vec::new(),
            epoch_started: Instant::now(),
            reported: false,
            observed: BTreeMap::new(),
            last_seen: HashMap::new(),
            complained: BTreeSet::new(),
            last_follow: None,
            behind: true,
            unapplied,
            early_signatures: BTreeMap::new(),
            last_enrolment: None,
            meter,
        })
    }

    fn me(&self) -> AccountId {
        AccountId::of(&self.key)
    }

    /// Runs until the node stops.
    pub async fn run(mut self) {
        self.start_session();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let finalized = async {
                match self.running.as_mut() {
                    Some(running) => running.finalized.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(ordered) = finalized => self.apply_ordered(ordered).await,
                Some(message) = self.inbox.recv() => self.receive(message).await,
                _ = ticker.tick() => self.tick().await,
            }
        }
    }

    /// Starts the session of the open epoch if this node is one of its elders.
    fn start_session(&mut self) {
        let epoch = self.state.epoch();
        self.running = None;
        self.epoch_started = Instant::now();
        self.reported = false;
        self.complained.clear();
        self.remove_old_backups(epoch);
        let elders = session_elders(&self.state);
        if !elders.contains(&self.me()) {
            return;
        }
        let Some(keys) = elders.iter().map(AccountId::verifying_key).collect::<Option<Vec<VerifyingKey>>>() else {
            tracing::error!(epoch, "an elder's id is not a public key; the session cannot start");
            return;
        };
        let (outbound, frames_out) = mpsc::channel::<(Recipient, Vec<u8>)>(OUTBOUND_FRAMES);
        let (frames, inbound) = mpsc::channel(OUTBOUND_FRAMES);
        let (pending, pending_out) = mpsc::channel(INBOX_DEPTH);
        let (finalized_in, finalized) = mpsc::unbounded_channel();
        let (exit, stop) = oneshot::channel();
        let session = LogSession {
            session: epoch,
            signer: self.key.clone(),
            elders: keys,
            backup: self.farming.dir.join(format!("backup-{epoch:012}")),
            round_delay: self.settings.round_delay,
        };
        let engine = tokio::spawn(async move {
            if let Err(error) =
                section_log::run(session, FrameNetwork::new(outbound, inbound), pending_out, finalized_in, stop).await
            {
                tracing::error!(%error, epoch, "the section log session stopped");
            }
        });
        let peers: HashMap<PeerId, usize> =
            elders.iter().enumerate().filter_map(|(index, id)| Some((peer_id_of(id)?, index))).collect();
        let sender = tokio::spawn(send_frames(Arc::clone(&self.section), elders.clone(), epoch, frames_out));
        for item in &self.proposed {
            let _ = pending.try_send(item.clone());
        }
        tracing::info!(epoch, elders = elders.len(), "section log session started");
        self.running = Some(Running {
            epoch,
            elders,
            peers,
            working: self.state.clone(),
            log: Vec::new(),
            frames,
            pending,
            finalized,
            exit: Some(exit),
            engine,
            sender,
        });
    }

    fn remove_old_backups(&self, open: u64) {
        blocking(|| {
            let Ok(entries) = std::fs::read_dir(&self.farming.dir) else { return };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let backup = name.to_str().and_then(|n| n.strip_prefix("backup-"));
                if backup.and_then(|n| n.parse::<u64>().ok()).is_some_and(|epoch| epoch < open) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        });
    }

    /// Puts an item into this elder's next units (and remembers it, so a session that
    /// ends before ordering it does not lose it).
    fn propose(&mut self, item: LogItem) {
        if self.proposed.contains(&item) || self.proposed.len() >= MAX_PROPOSED {
            return;
        }
        if let Some(running) = &self.running {
            let _ = running.pending.try_send(item.clone());
        }
        self.proposed.push(item);
    }

    async fn apply_ordered(&mut self, ordered: Ordered<LogItem>) {
        let committee = self.section.committee().clone();
        let Some(running) = self.running.as_mut() else { return };
        let Some(creator) = running.elders.get(ordered.creator).copied() else { return };
        if creator == AccountId::of(&self.key) {
            self.proposed.retain(|item| *item != ordered.item);
        }
        running.log.push((ordered.creator, ordered.item.clone()));
        let Some(event) = admit(&ordered.item, &creator, &committee, &self.pool) else { return };
        let before: Vec<[u8; 32]> = running.working.members().keys().map(|id| node_name(&id.0)).collect();
        let change = running.working.apply(&event);
        match change {
            SectionChange::Admitted(_) | SectionChange::Removed(_) | SectionChange::RemovedAndClosed(..) => {
                let after = running.working.clone();
                self.membership_changed(before, &after);
            }
            // Owners see their app's registration and price as soon as they are ordered.
            SectionChange::AppChanged(_) => self.farming.publish(&running.working, None),
            _ => {}
        }
        if let Some(record) = closed_record(change) {
            let Some(running) = self.running.take() else { return };
            let state_hash = match running.working.state_hash() {
                Ok(hash) => hash,
                Err(error) => {
                    tracing::error!(%error, "cannot hash the section state; the epoch stays open");
                    self.running = Some(running);
                    return;
                }
            };
            let outcome = EpochOutcome {
                record,
                state_hash,
                log: running.log.clone(),
                signatures: BTreeMap::new(),
                observed: BTreeMap::new(),
            };
            let next = running.working.clone();
            drop(running);
            self.close(outcome, next).await;
        }
    }

    /// Tells the section and the storage service who the members are now, and has the
    /// copies made that put every chunk on its closest members again.
    fn membership_changed(&self, before: Vec<[u8; 32]>, state: &SectionState) {
        self.section.set_membership(state.members().keys().copied(), state.elders());
        self.farming.publish(state, None);
        let after: Vec<[u8; 32]> = state.members().keys().map(|id| node_name(&id.0)).collect();
        let storage = Arc::clone(&self.storage);
        let elders: Vec<[u8; 32]> = state.elders().iter().map(|id| node_name(&id.0)).collect();
        let me = node_name(&self.me().0);
        tokio::spawn(async move {
            let work = storage.chunk_registry();
            let copies: Vec<_> = repairs(&work, &before, &after)
                .into_iter()
                .filter(|repair| {
                    // The elder closest to the chunk makes the copy; one per chunk.
                    acre_proofs::placement::closest(&repair.chunk, &elders, 1).first() == Some(&me)
                })
                .collect();
            if !copies.is_empty() {
                tracing::info!(copies = copies.len(), "repairing chunks after a membership change");
                storage.repair(copies).await;
            }
        });
    }

    /// The epoch closed (here, or at a quorum of elders whose outcome this node fetched):
    /// keep the outcome and the new state on disk, apply the record to the ledger, sign
    /// the outcome and start the next session.
    async fn close(&mut self, mut outcome: EpochOutcome, next: SectionState) {
        let epoch = outcome.record.epoch;
        if !self.reported {
            self.observed = self.storage.take_epoch_audits().tallies;
        }
        outcome.observed = std::mem::take(&mut self.observed);
        let me = self.me();
        if session_elders(&self.state).contains(&me) {
            let signature = SignatureBytes::sign(&self.key, &outcome.digest());
            outcome.signatures.insert(me, signature);
            self.broadcast_signature(epoch, signature);
        }
        for (signer, signature) in self.early_signatures.remove(&epoch).unwrap_or_default() {
            if outcome.signed_by(&signer, &signature) {
                outcome.signatures.insert(signer, signature);
            }
        }
        self.early_signatures.retain(|e, _| *e > epoch);
        if let Err(error) = blocking(|| self.persist(&outcome, &next)) {
            tracing::error!(%error, epoch, "could not keep the closed epoch on disk");
        }
        tracing::info!(
            epoch,
            minted = %outcome.record.minted,
            items = outcome.record.items.len(),
            state = %outcome.state_hash,
            "epoch closed"
        );
        metrics::counter!("acre_epochs_closed_total").increment(1);
        self.unapplied.push(outcome.record.clone());
        self.state = next;
        self.farming.publish(&self.state, Some(outcome));
        self.section.set_membership(self.state.members().keys().copied(), self.state.elders());
        // Reports for the closed epoch are moot; everything else is proposed again.
        self.proposed.retain(|item| !matches!(item, LogItem::Report(_)));
        self.apply_records().await;
        self.start_session();
    }

    fn persist(&self, outcome: &EpochOutcome, next: &SectionState) -> std::io::Result<()> {
        let epoch = outcome.record.epoch;
        write_atomically(&outcome_path(&self.farming.dir, epoch), serde_json::to_vec(outcome)?)?;
        let state = postcard::to_stdvec(next).map_err(std::io::Error::other)?;
        write_atomically(&self.farming.dir.join("state.postcard"), state)?;
        // The meter's running totals outlive a restart, so the counts this elder reports
        // do not fall back to zero and pull the agreed use below what was read.
        write_atomically(&self.farming.dir.join(USAGE_FILE), serde_json::to_vec(self.meter.totals())?)
    }

    /// Applies closed records to the ledger; one refused for want of a payment it has not
    /// applied yet is tried again later.
    async fn apply_records(&mut self) {
        let mut left = Vec::new();
        for record in std::mem::take(&mut self.unapplied) {
            match self.section.ledger().epoch(record.clone(), self.pool).await {
                Ok(Ok(_)) => {}
                Ok(Err(LedgerError::EpochConflict { epoch })) => {
                    tracing::error!(epoch, "the ledger holds another record for this epoch");
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, epoch = record.epoch, "epoch record not applied yet");
                    left.push(record);
                }
                Err(_) => return,
            }
        }
        self.unapplied = left;
    }

    fn broadcast_signature(&self, epoch: u64, signature: SignatureBytes) {
        let me = self.me();
        for (member, peer) in self.section.membership().members {
            if member == me {
                continue;
            }
            let section = Arc::clone(&self.section);
            tokio::spawn(async move {
                section.request(peer, PeerRequest::EpochSignature { epoch, signature }).await;
            });
        }
    }

    async fn receive(&mut self, message: Inbound) {
        match message {
            Inbound::Frame { peer, session, frame } => {
                if session > self.state.epoch() {
                    self.behind = true;
                }
                let Some(running) = &self.running else { return };
                if running.epoch == session && running.peers.contains_key(&peer) {
                    let _ = running.frames.try_send(frame);
                }
            }
            Inbound::Signature { peer, epoch, signature } => self.add_signature(peer, epoch, signature),
            Inbound::Metered { from, app, use_id } => self.meter.attest(from, app, use_id),
            Inbound::Propose(item) => {
                // Kept even between sessions: the next one carries it.
                if session_elders(&self.state).contains(&self.me()) {
                    self.propose(item);
                }
            }
        }
    }

    fn add_signature(&mut self, peer: PeerId, epoch: u64, signature: SignatureBytes) {
        let members = self.section.membership().members;
        let Some((signer, _)) = members.iter().find(|(_, p)| *p == peer).copied() else { return };
        if epoch > self.state.epoch() {
            return;
        }
        if epoch == self.state.epoch() {
            // This node has not closed it yet; kept for when it does.
            let early = self.early_signatures.entry(epoch).or_default();
            if early.len() < 64 {
                early.push((signer, signature));
            }
            return;
        }
        let Some(mut outcome) = blocking(|| read_outcome(&self.farming.dir, epoch)) else { return };
        if outcome.signatures.contains_key(&signer) || !outcome.signed_by(&signer, &signature) {
            return;
        }
        outcome.signatures.insert(signer, signature);
        // An outcome that cannot be encoded is not written at all: an empty file in its
        // place would lose the outcome itself.
        let written = serde_json::to_vec(&outcome)
            .map_err(std::io::Error::other)
            .and_then(|bytes| blocking(|| write_atomically(&outcome_path(&self.farming.dir, epoch), bytes)));
        if let Err(error) = written {
            tracing::warn!(%error, epoch, "could not keep an epoch signature");
        }
        self.farming.publish(&self.state, Some(outcome));
    }

    async fn tick(&mut self) {
        if self.running.as_ref().is_some_and(|running| running.engine.is_finished()) {
            // The engine ends quietly when its backup cannot be written; start it again
            // from the backup rather than go on without a log.
            tracing::error!(epoch = self.state.epoch(), "the section log engine stopped; restarting the session");
            self.start_session();
        }
        self.watch_liveness().await;
        if self.running.is_some() && !self.reported && self.epoch_started.elapsed() >= self.settings.epoch {
            self.report();
        }
        let following = self.running.is_none() || self.behind;
        if following && self.last_follow.is_none_or(|at| at.elapsed() >= FOLLOW_INTERVAL) {
            self.last_follow = Some(Instant::now());
            self.behind = false;
            self.follow().await;
        }
        if !self.unapplied.is_empty() {
            self.apply_records().await;
        }
        self.enrol().await;
    }

    /// Reports this elder's audits of the epoch into the log.
    fn report(&mut self) {
        self.reported = true;
        let audits = self.storage.take_epoch_audits();
        self.observed = audits.tallies.clone();
        let usage = self.meter.totals().clone();
        let report = EpochReport { elder: self.me(), epoch: self.state.epoch(), passed: audits.proven(), usage };
        tracing::debug!(epoch = report.epoch, proven = report.passed.len(), "reporting on the epoch");
        self.propose(LogItem::Report(report));
    }

    /// As an elder, complains once per epoch about each member unreachable for longer
    /// than the setting; a quorum of complaints removes it.
    async fn watch_liveness(&mut self) {
        if self.running.is_none() {
            return;
        }
        let connected = self.section.connected().await;
        let now = Instant::now();
        let me = self.me();
        let members: Vec<AccountId> = self.state.members().keys().copied().filter(|id| *id != me).collect();
        let mut silent = Vec::new();
        for member in members {
            let seen = self.last_seen.entry(member).or_insert(now);
            if peer_id_of(&member).is_some_and(|peer| connected.contains(&peer)) {
                *seen = now;
            } else if now.duration_since(*seen) >= self.settings.unresponsive_after
                && !self.complained.contains(&member)
            {
                silent.push(member);
            }
        }
        for member in silent {
            tracing::info!(%member, "a member has been unreachable too long; reporting it");
            self.complained.insert(member);
            self.propose(LogItem::Unresponsive(member));
        }
    }

    /// Fetches the outcome of the epoch open here from the elders, and adopts it if a
    /// quorum signed it; repeats while there are more.
    async fn follow(&mut self) {
        let me = self.me();
        let peers: Vec<PeerId> =
            session_elders(&self.state).iter().filter(|id| **id != me).filter_map(peer_id_of).collect();
        for peer in peers {
            loop {
                let epoch = self.state.epoch();
                let Some(PeerResponse::Outcome(Some(outcome))) =
                    self.section.request(peer, PeerRequest::Outcome(epoch)).await
                else {
                    break;
                };
                let committee = self.section.committee().clone();
                match verify_outcome(&self.state, &outcome, &committee, &self.pool) {
                    Ok(next) => {
                        tracing::info!(epoch, "caught up on a closed epoch");
                        self.running = None;
                        let before: Vec<[u8; 32]> = self.state.members().keys().map(|id| node_name(&id.0)).collect();
                        self.close(*outcome, next.clone()).await;
                        if before.len() != next.members().len() {
                            self.membership_changed(before, &next);
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, epoch, "a peer's epoch outcome was not adopted");
                        break;
                    }
                }
            }
        }
    }

    /// A node that is not a member, or whose reward address is not the one configured,
    /// asks the elders to enrol it; an elder proposes its own enrolment directly.
    async fn enrol(&mut self) {
        let me = self.me();
        let wanted = self.settings.reward_address;
        let current = self.running.as_ref().map_or(&self.state, |r| &r.working);
        if current.members().get(&me).is_some_and(|member| member.reward == wanted) {
            return;
        }
        if self.last_enrolment.is_some_and(|at| at.elapsed() < self.settings.epoch / 2) {
            return;
        }
        self.last_enrolment = Some(Instant::now());
        let enrolment = Enrolment::new(&self.key, wanted);
        if self.running.is_some() {
            self.propose(LogItem::Enrol(enrolment));
            return;
        }
        for peer in session_elders(&self.state).iter().filter_map(peer_id_of) {
            let section = Arc::clone(&self.section);
            let request = PeerRequest::Propose(Box::new(LogItem::Enrol(enrolment.clone())));
            tokio::spawn(async move { section.request(peer, request).await });
        }
    }
}

/// Sends the session's outbound frames: one bounded queue and one sending task per elder,
/// so a dead elder's timeouts hold up nobody else.
async fn send_frames(
    section: Arc<Section>,
    elders: Vec<AccountId>,
    session: u64,
    mut frames: mpsc::Receiver<(Recipient, Vec<u8>)>,
) {
    let me = section.me();
    let mut queues: Vec<Option<mpsc::Sender<Vec<u8>>>> = Vec::with_capacity(elders.len());
    let mut senders = Vec::new();
    for elder in &elders {
        let Some(peer) = peer_id_of(elder).filter(|_| *elder != me) else {
            queues.push(None);
            continue;
        };
        let (queue, mut outgoing) = mpsc::channel::<Vec<u8>>(PEER_QUEUE);
        let section = Arc::clone(&section);
        senders.push(tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                section.request(peer, PeerRequest::LogFrame { session, frame }).await;
            }
        }));
        queues.push(Some(queue));
    }
    let _abort_on_drop = AbortAll(senders);
    while let Some((recipient, frame)) = frames.recv().await {
        let targets: Vec<usize> = match recipient {
            Recipient::Everyone => (0..queues.len()).collect(),
            Recipient::Node(index) => vec![index.0],
        };
        for target in targets {
            if let Some(Some(queue)) = queues.get(target) {
                let _ = queue.try_send(frame.clone());
            }
        }
    }
}

struct AbortAll(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Reads attested to this elder longest kept waiting for their second attestation.
const PENDING_USES: usize = 100_000;

/// Counts reads through apps. A read counts once two distinct members attest it (the
/// node that took the request and the holder that sent the bytes), so one dishonest
/// member alone cannot invent use. Totals run from this elder's first start (saved at
/// every epoch close); reports carry them whole.
#[derive(Debug, Default)]
pub struct UseMeter {
    pending: HashMap<Digest, (AppId, AccountId)>,
    order: std::collections::VecDeque<Digest>,
    counted: std::collections::HashSet<Digest>,
    totals: BTreeMap<AppId, u64>,
}

impl UseMeter {
    /// Records `member`'s attestation of the read `use_id` through `app`.
    pub fn attest(&mut self, member: AccountId, app: AppId, use_id: Digest) {
        if self.counted.contains(&use_id) {
            return;
        }
        match self.pending.get(&use_id) {
            Some((first_app, first)) if *first_app == app && *first != member => {
                self.pending.remove(&use_id);
                self.counted.insert(use_id);
                *self.totals.entry(app).or_default() += 1;
            }
            Some(_) => {}
            None => {
                if self.order.len() >= PENDING_USES {
                    if let Some(oldest) = self.order.pop_front() {
                        self.pending.remove(&oldest);
                        self.counted.remove(&oldest);
                    }
                }
                self.pending.insert(use_id, (app, member));
                self.order.push_back(use_id);
            }
        }
    }

    /// A meter whose running totals start where a saved one's stopped.
    pub fn resuming(totals: BTreeMap<AppId, u64>) -> Self {
        UseMeter { totals, ..UseMeter::default() }
    }

    /// Reads counted per app, running since this elder first started.
    pub fn totals(&self) -> &BTreeMap<AppId, u64> {
        &self.totals
    }
}

/// A farmer's lines for the closed epochs in `from..=to`.
pub fn statement(epochs: &[EpochOutcome], farmer: &AccountId, from: u64, to: u64) -> Vec<StatementLine> {
    // Oldest first and in order: the range is found by search, not by a scan.
    let first = epochs.partition_point(|outcome| outcome.record.epoch < from);
    epochs[first..]
        .iter()
        .take_while(|outcome| outcome.record.epoch <= to)
        .map(|outcome| {
            let item = outcome.record.items.iter().find(|item| item.farmer == *farmer);
            StatementLine {
                epoch: outcome.record.epoch,
                proven_bytes: item.map_or(0, |i| i.proven_bytes),
                proven_chunks: item.map_or(0, |i| i.proven_chunks),
                challenges: outcome.observed.get(farmer).copied().unwrap_or_default(),
                reward: item.map_or(Amount::ZERO, |i| i.amount),
                reward_address: item.map(|i| i.reward_address),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::ProvenChunk;

    fn keys(count: u8) -> Vec<SigningKey> {
        (1..=count).map(|n| SigningKey::from_bytes(&[n; 32])).collect()
    }

    fn founding(keys: &[SigningKey]) -> (SectionState, Committee) {
        let ids: Vec<AccountId> = keys.iter().map(AccountId::of).collect();
        let founders: Vec<(AccountId, AccountId)> = ids.iter().map(|id| (*id, *id)).collect();
        let state = SectionState::new(&founders, Amount::from_credits(1_000).expect("amount"));
        (state, Committee::new(ids).expect("committee"))
    }

    fn report(elder: &SigningKey, holders: &[AccountId]) -> LogItem {
        let passed =
            holders.iter().map(|holder| ProvenChunk { holder: *holder, chunk: [7; 32], bytes: 1 << 20 }).collect();
        LogItem::Report(EpochReport { elder: AccountId::of(elder), epoch: 1, passed, usage: BTreeMap::new() })
    }

    /// Applies ordered items as a live elder does, up to the item that closes the epoch;
    /// returns the outcome (signed by `signers`) and the state after it.
    fn live(
        state: &SectionState,
        committee: &Committee,
        items: &[(usize, LogItem)],
        signers: &[SigningKey],
    ) -> Option<(EpochOutcome, SectionState)> {
        let elders = session_elders(state);
        let mut working = state.clone();
        let mut log = Vec::new();
        for (creator, item) in items {
            log.push((*creator, item.clone()));
            let Some(event) = admit(item, &elders[*creator], committee, &pool_account("")) else { continue };
            if let Some(record) = closed_record(working.apply(&event)) {
                let mut outcome = EpochOutcome {
                    record,
                    state_hash: working.state_hash().ok()?,
                    log,
                    signatures: BTreeMap::new(),
                    observed: BTreeMap::new(),
                };
                for signer in signers {
                    outcome.signatures.insert(AccountId::of(signer), SignatureBytes::sign(signer, &outcome.digest()));
                }
                return Some((outcome, working));
            }
        }
        None
    }

    fn index_of(state: &SectionState, key: &SigningKey) -> usize {
        session_elders(state).iter().position(|id| *id == AccountId::of(key)).expect("an elder")
    }

    #[test]
    fn a_read_counts_once_two_members_attest_it() {
        let mut meter = UseMeter::default();
        let (app, read) = (AppId([1; 32]), Digest([200; 32]));
        let (node, holder, liar) = (AccountId([1; 32]), AccountId([2; 32]), AccountId([3; 32]));
        for n in 0..100u8 {
            meter.attest(liar, app, Digest([n; 32]));
            meter.attest(liar, app, Digest([n; 32]));
        }
        assert!(meter.totals().is_empty(), "one member alone invents nothing");
        meter.attest(node, app, read);
        meter.attest(holder, AppId([2; 32]), read);
        assert!(meter.totals().is_empty(), "attestations of another app do not pair");
        meter.attest(holder, app, read);
        meter.attest(liar, app, read);
        assert_eq!(meter.totals().get(&app), Some(&1), "counted once");

        // The totals a close saved are where a restarted elder's meter resumes.
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_usage(dir.path()).is_empty(), "nothing saved yet");
        std::fs::write(dir.path().join(USAGE_FILE), serde_json::to_vec(meter.totals()).expect("json")).expect("save");
        let resumed = UseMeter::resuming(read_usage(dir.path()));
        assert_eq!(resumed.totals(), meter.totals());
    }

    #[test]
    fn reports_and_complaints_count_only_from_the_elder_whose_unit_carried_them() {
        let keys = keys(4);
        let (_, committee) = founding(&keys);
        let pool = pool_account("");
        let forged = report(&keys[0], &[AccountId::of(&keys[1])]);
        assert!(admit(&forged, &AccountId::of(&keys[2]), &committee, &pool).is_none(), "in another elder's name");
        assert!(admit(&forged, &AccountId::of(&keys[0]), &committee, &pool).is_some());
        let joiner = SigningKey::from_bytes(&[50; 32]);
        let mut enrolment = Enrolment::new(&joiner, AccountId::of(&keys[0]));
        assert!(admit(&LogItem::Enrol(enrolment.clone()), &AccountId::of(&keys[2]), &committee, &pool).is_some());
        enrolment.reward = AccountId::of(&keys[1]);
        assert!(
            admit(&LogItem::Enrol(enrolment), &AccountId::of(&keys[2]), &committee, &pool).is_none(),
            "an enrolment changed by whoever carried it"
        );
    }

    /// Model check of the log-to-state step and the handover to the next session, exhaustive
    /// over every order of a small session: four reports (one from a Byzantine elder
    /// claiming passes for a node that stores nothing), an enrolment, a complaint. For each
    /// order, an elder applying it live and a follower adopting the signed outcome reach
    /// the same record and state; a quorum-signed outcome with any other record, or one
    /// signed by too few, is refused; and the Byzantine elder mints nothing on its own.
    #[test]
    fn every_order_of_a_session_gives_one_record_that_followers_adopt() {
        let keys = keys(4);
        let (state, committee) = founding(&keys);
        let pool = pool_account("");
        let ids: Vec<AccountId> = keys.iter().map(AccountId::of).collect();
        let idle = SigningKey::from_bytes(&[60; 32]);
        let joiner = SigningKey::from_bytes(&[61; 32]);
        let byzantine = &keys[3];
        let items = [
            (index_of(&state, &keys[0]), report(&keys[0], &[ids[1], ids[2]])),
            (index_of(&state, &keys[1]), report(&keys[1], &[ids[2], ids[0]])),
            (index_of(&state, &keys[2]), report(&keys[2], &[ids[1], ids[0]])),
            (index_of(&state, byzantine), report(byzantine, &[AccountId::of(&idle), ids[1]])),
            (index_of(&state, &keys[0]), LogItem::Enrol(Enrolment::new(&joiner, AccountId::of(&joiner)))),
            (index_of(&state, &keys[1]), LogItem::Unresponsive(ids[3])),
        ];
        let mut closes = 0;
        for order in acre_ledger::testkit::permutations(&(0..items.len()).collect::<Vec<_>>()) {
            let ordered: Vec<(usize, LogItem)> = order.iter().map(|&i| items[i].clone()).collect();
            let Some((outcome, after)) = live(&state, &committee, &ordered, &keys[..3]) else { continue };
            closes += 1;
            let adopted = verify_outcome(&state, &outcome, &committee, &pool).expect("a follower adopts it");
            assert_eq!(adopted.state_hash().ok(), after.state_hash().ok(), "follower and elder agree");
            assert!(adopted.records().eq(after.records()));
            assert!(
                outcome.record.items.iter().all(|item| item.farmer != AccountId::of(&idle)),
                "one Byzantine elder's passes mint nothing"
            );
            let sum: u64 = outcome.record.items.iter().map(|item| item.amount.nanos()).sum();
            assert_eq!(sum, outcome.record.total.nanos());

            let mut forged = outcome.clone();
            forged.record.minted = Amount::from_nanos(forged.record.minted.nanos() + 1).expect("amount");
            forged.signatures.clear();
            for signer in &keys[..3] {
                forged.signatures.insert(AccountId::of(signer), SignatureBytes::sign(signer, &forged.digest()));
            }
            assert!(
                matches!(verify_outcome(&state, &forged, &committee, &pool), Err(OutcomeError::Replay)),
                "a record the log does not give is refused, however many signed it"
            );
            let mut thin = outcome.clone();
            thin.signatures.retain(|signer, _| *signer == ids[0]);
            thin.signatures.insert(AccountId::of(&idle), SignatureBytes::sign(&idle, &thin.digest()));
            assert!(matches!(
                verify_outcome(&state, &thin, &committee, &pool),
                Err(OutcomeError::TooFewSignatures { signed: 1, quorum: 3 })
            ));
        }
        assert!(closes > 0, "some orders close the epoch");
    }

    #[test]
    fn a_statement_covers_exactly_the_closed_epochs_in_its_range() {
        let farmer = AccountId::of(&SigningKey::from_bytes(&[9; 32]));
        let closed = |epoch: u64| {
            let amount = Amount::from_nanos(epoch).expect("amount");
            let item =
                acre_ledger::MintItem { farmer, reward_address: farmer, proven_bytes: epoch, proven_chunks: 1, amount };
            EpochOutcome {
                record: EpochRecord {
                    epoch,
                    minted: amount,
                    from_pool: Amount::ZERO,
                    total: amount,
                    items: vec![item],
                    apps: Vec::new(),
                },
                state_hash: Digest([0; 32]),
                log: Vec::new(),
                signatures: BTreeMap::new(),
                observed: BTreeMap::new(),
            }
        };
        // Epoch 3's outcome is missing, as it is on a node that was down for it.
        let epochs: Vec<EpochOutcome> = [1, 2, 4, 5].into_iter().map(closed).collect();
        let lines = statement(&epochs, &farmer, 2, 4);
        assert_eq!(lines.iter().map(|line| line.epoch).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(lines.iter().map(|line| line.proven_bytes).sum::<u64>(), 6);
        assert!(statement(&epochs, &farmer, 6, 9).is_empty());
        let stranger = AccountId::of(&SigningKey::from_bytes(&[8; 32]));
        assert!(statement(&epochs, &stranger, 1, 5).iter().all(|line| line.reward == Amount::ZERO));
    }
}
