//! The section's agreement, driven: the I/O shell around [`SectionMachine`].
//!
//! The machine (in `acre-core`) decides everything about the section — sessions, the
//! cut, signatures, catch-up, liveness, enrolment, records — and returns effects. This
//! driver runs them: aleph-bft sessions over libp2p ([`section_log`]), outcome and state
//! files on disk, the ledger thread, requests to peers, the storage service's audits and
//! repairs. The deterministic simulator (`acre-sim`) runs the same machine in its place.

pub mod engine;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use acre_core::section::{Effect, Input, Proposer, RecordToApply, RecordsApplied, SectionMachine, SectionSettings};
use acre_core::{EpochOutcome, LogItem};
use acre_ledger::economics::pool_account;
use acre_ledger::section_state::SectionState;
use acre_ledger::{AccountId, Amount, AppId, Committee, Digest, LedgerError, SignatureBytes};
use aleph_bft::Recipient;
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::channel::oneshot;
use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::blocking::blocking;
use crate::config::{read_json_or_empty, write_atomically};
use crate::section::Section;
use crate::transport::{account_of_peer, peer_id_of};
use acre_core::section::AuditSummary;
use acre_core::wire::{Log, LogReply, LogRequest};
use engine::{FrameNetwork, LogSession, Ordered, OUTBOUND_FRAMES};

/// What the driver needs of the storage service, which depends on the driver (to propose
/// and to meter) and so is reached through this rather than by name.
pub trait StorageDuties: Send + Sync + 'static {
    /// What the audits showed since the last call.
    fn take_epoch_audits(&self) -> AuditSummary;

    /// Makes, in the background, the copies this node owes after membership went from
    /// `before` to `after` (placement names), given the elders' names.
    fn repair_after(&self, before: Vec<[u8; 32]>, after: Vec<[u8; 32]>, elders: Vec<[u8; 32]>);
}

/// Messages from the network and the storage service waiting for the driver.
const INBOX_DEPTH: usize = 8192;
/// Frames queued for one peer; beyond this they are dropped (the engine retransmits).
const PEER_QUEUE: usize = 512;
/// How often the driver looks at its clocks.
const TICK: Duration = Duration::from_millis(250);
/// How often a node that is not running the current session asks for closed epochs.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);
/// Closed epochs whose outcomes a restarted node reads back, for late signatures.
const RECENT_ON_START: u64 = 16;

/// Settings from the node's configuration.
#[derive(Debug, Clone)]
pub struct FarmingSettings {
    /// How long an epoch runs before the elders report on it.
    pub epoch: Duration,
    /// How long an elder waits for missing reports once a quorum of them is in.
    pub report_grace: Duration,
    /// How long a member may stay unreachable before an elder reports it.
    pub unresponsive_after: Duration,
    /// Where this farmer's rewards go.
    pub reward_address: AccountId,
    /// The engine's delay between rounds.
    pub round_delay: Duration,
    /// How recently a member must have answered a request to count as reachable. Every
    /// member is asked for its fullness each challenge round, so a few rounds' worth.
    pub answer_window: Duration,
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
    /// Something to propose to the log, from a peer or (`None`) from this node's services.
    Propose {
        /// The asking peer.
        from: Option<PeerId>,
        /// The item.
        item: Box<LogItem>,
    },
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

    /// The answer to a peer's section-log request. Only items that prove themselves are
    /// taken for proposing — an enrolment its node signed, an app command its owner signed,
    /// a payment to the pool that `committee` certified — so a peer cannot have this elder
    /// put its words in the log; whether the machine proposes them is its own decision.
    pub async fn answer(&self, peer: PeerId, request: LogRequest, committee: &Committee, pool: &AccountId) -> LogReply {
        match request {
            LogRequest::Frame { session, frame } => self.deliver(Inbound::Frame { peer, session, frame }),
            LogRequest::Signature { epoch, signature } => self.deliver(Inbound::Signature { peer, epoch, signature }),
            LogRequest::Outcome(epoch) => {
                let farming = self.clone();
                return LogReply::Outcome(blocking(move || farming.outcome(epoch)).map(Box::new));
            }
            LogRequest::Propose(item) => {
                let proves_itself = match &*item {
                    LogItem::Enrol(enrolment) => enrolment.is_valid(),
                    LogItem::App(command) => command.is_valid(),
                    LogItem::Payment { certificate, .. } => {
                        certificate.order.to == *pool
                            && matches!(committee.verify_all(vec![certificate.clone()]).first(), Some(Ok(_)))
                    }
                    LogItem::Stored(stored) => {
                        // Distinct holders: one receipt repeated is one holder's word.
                        let signers: std::collections::BTreeSet<AccountId> = stored
                            .receipts
                            .iter()
                            .filter(|receipt| receipt.is_valid_for(&stored.chunk, stored.size))
                            .map(|receipt| receipt.holder)
                            .collect();
                        signers.len() >= acre_ledger::section_state::STORED_RECEIPTS
                    }
                    LogItem::Report(_) | LogItem::Unresponsive(_) | LogItem::GraceOver(_) => false,
                };
                if !proves_itself {
                    return LogReply::Refused("only items that prove themselves are proposed for a peer".into());
                }
                self.deliver(Inbound::Propose { from: Some(peer), item });
            }
        }
        LogReply::Done
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

/// The saved meter totals; none if never saved (an unreadable file under-counts this
/// elder alone, and so cannot raise the agreed use).
fn read_usage(dir: &Path) -> BTreeMap<AppId, u64> {
    read_json_or_empty(&dir.join(USAGE_FILE))
}

fn read_outcome(dir: &Path, epoch: u64) -> Option<EpochOutcome> {
    let bytes = std::fs::read(outcome_path(dir, epoch)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One running engine session: the handles the machine's session needs at the edge.
struct Running {
    epoch: u64,
    peers: HashMap<PeerId, usize>,
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

/// The driver: runs the section machine's effects.
pub struct Driver {
    farming: Farming,
    inbox: mpsc::Receiver<Inbound>,
    section: Arc<Section>,
    storage: Box<dyn StorageDuties>,
    key: SigningKey,
    round_delay: Duration,
    answer_window: Duration,
    machine: SectionMachine,
    running: Option<Running>,
    /// The clock the machine's times count from.
    origin: Instant,
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum FarmingError {
    /// Its state could not be read or written.
    #[error("section state: {0}")]
    Disk(#[from] std::io::Error),
    /// The saved state does not decode: damaged, or written by a node whose state has
    /// another form.
    #[error("the saved section state does not decode (damaged, or saved by another version of the node): {0}")]
    Damaged(String),
}

impl Driver {
    /// A driver for this node, resuming from its saved state; a new node starts from the
    /// genesis elders as the founding members.
    pub fn open(
        (farming, FarmingInbox(inbox)): (Farming, FarmingInbox),
        section: Arc<Section>,
        storage: impl StorageDuties,
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
                SectionState::new(section.ledger().network(), &founders, genesis)
            }
            Err(error) => return Err(error.into()),
        };
        let mut epochs = Vec::new();
        for epoch in 1..state.epoch() {
            if let Some(outcome) = read_outcome(&farming.dir, epoch) {
                epochs.push(outcome);
            }
        }
        let first_recent = state.epoch().saturating_sub(RECENT_ON_START);
        let recent: Vec<EpochOutcome> =
            epochs.iter().filter(|outcome| outcome.record.epoch >= first_recent).cloned().collect();
        for outcome in &mut epochs {
            outcome.log.clear();
        }
        farming.view.write().unwrap_or_else(std::sync::PoisonError::into_inner).epochs = Arc::new(epochs);
        let machine_settings = SectionSettings {
            epoch: settings.epoch,
            report_grace: settings.report_grace,
            unresponsive_after: settings.unresponsive_after,
            reward_address: settings.reward_address,
            follow_interval: FOLLOW_INTERVAL,
        };
        // The saved membership and placement from the start, not the founders' alone until
        // the machine's first effects: audits and holders read them at once.
        section.set_membership(state.members().keys().copied().collect(), state.roster(), state.elders());
        let machine = SectionMachine::new(
            key.clone(),
            section.committee().clone(),
            pool_account(""),
            machine_settings,
            state,
            read_usage(&farming.dir),
            &recent,
        );
        Ok(Driver {
            farming,
            inbox,
            section,
            storage: Box::new(storage),
            key,
            round_delay: settings.round_delay,
            answer_window: settings.answer_window,
            machine,
            running: None,
            origin: Instant::now(),
        })
    }

    /// Runs until the node stops.
    pub async fn run(mut self) {
        let effects = self.machine.start(self.origin.elapsed());
        self.execute(effects).await;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let finalized = async {
                match self.running.as_mut() {
                    Some(running) => running.finalized.recv().await.map(|ordered| (running.epoch, ordered)),
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                Some((session, ordered)) = finalized => {
                    Input::Ordered { session, creator: ordered.creator, item: ordered.item }
                }
                Some(message) = self.inbox.recv() => match self.input_of(message) {
                    Some(input) => input,
                    None => continue,
                },
                _ = ticker.tick() => match self.tick_input().await {
                    Some(input) => input,
                    None => continue,
                },
            };
            let effects = self.machine.handle(input);
            self.execute(effects).await;
        }
    }

    /// What a message from the network or the storage service means to the machine.
    fn input_of(&self, message: Inbound) -> Option<Input> {
        match message {
            Inbound::Frame { peer, session, frame } => {
                let running = self.running.as_ref().filter(|r| r.epoch == session && r.peers.contains_key(&peer));
                match running {
                    Some(running) => {
                        let _ = running.frames.try_send(frame);
                        None
                    }
                    None => Some(Input::PeerAhead { session }),
                }
            }
            Inbound::Signature { peer, epoch, signature } => {
                let signer = self.member_of_peer(&peer)?;
                Some(Input::Signature { signer, epoch, signature })
            }
            Inbound::Metered { from, app, use_id } => Some(Input::Metered { from, app, use_id }),
            Inbound::Propose { from, item } => {
                let from = match from {
                    None => Proposer::Local,
                    Some(peer) => match self.member_of_peer(&peer) {
                        Some(member) => Proposer::Member(member),
                        None => Proposer::Outsider(account_of_peer(&peer)?),
                    },
                };
                Some(Input::Propose { from, item: *item })
            }
        }
    }

    fn member_of_peer(&self, peer: &PeerId) -> Option<AccountId> {
        self.section.membership().members.iter().find(|(_, p)| p == peer).map(|(id, _)| *id)
    }

    async fn tick_input(&mut self) -> Option<Input> {
        if let Some(running) = self.running.as_ref().filter(|running| running.engine.is_finished()) {
            // The engine ends quietly when its backup cannot be written.
            return Some(Input::SessionStopped { session: running.epoch });
        }
        let connected = self.section.responsive(self.answer_window).await;
        let connected = self
            .section
            .membership()
            .members
            .into_iter()
            .filter(|(_, peer)| connected.contains(peer))
            .map(|(id, _)| id)
            .collect();
        Some(Input::Tick { now: self.origin.elapsed(), connected })
    }

    /// Runs the machine's effects in order, feeding their results back to it.
    async fn execute(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            let follow_up = match effect {
                Effect::TakeAudits => {
                    let summary = self.storage.take_epoch_audits();
                    // Answered before anything else, as the machine expects.
                    let mut answer: VecDeque<Effect> = self.machine.handle(Input::Audits(summary)).into();
                    answer.extend(queue.drain(..));
                    queue = answer;
                    continue;
                }
                Effect::Fetch { epoch, from } => {
                    let outcome = self.fetch(epoch, &from).await;
                    self.machine.handle(Input::Fetched { from, outcome })
                }
                Effect::ApplyRecords(records) => {
                    let applied = self.apply_records(records).await;
                    self.machine.handle(Input::RecordsApplied(applied))
                }
                other => {
                    self.run_effect(other);
                    Vec::new()
                }
            };
            queue.extend(follow_up);
        }
    }

    /// The effects that need no answer.
    fn run_effect(&mut self, effect: Effect) {
        match effect {
            Effect::StartSession { epoch, elders, proposals } => self.start_session(epoch, elders, proposals),
            Effect::EndSession => self.running = None,
            Effect::RemoveBackups { before } => self.remove_old_backups(before),
            Effect::ToSession(item) => {
                if let Some(running) = &self.running {
                    let _ = running.pending.try_send(item);
                }
            }
            Effect::SendProposal { to, item } => {
                for peer in to.iter().filter_map(peer_id_of) {
                    let section = Arc::clone(&self.section);
                    let request = LogRequest::Propose(Box::new(item.clone()));
                    tokio::spawn(async move { section.request::<Log>(peer, request).await });
                }
            }
            Effect::Persist { outcome, state, usage } => {
                let epoch = outcome.record.epoch;
                if let Err(error) = blocking(|| persist(&self.farming.dir, &outcome, &state, &usage)) {
                    tracing::error!(%error, epoch, "could not keep the closed epoch on disk");
                }
                metrics::counter!("acre_epochs_closed_total").increment(1);
            }
            Effect::Publish { state, closed } => self.farming.publish(&state, closed.map(|outcome| *outcome)),
            Effect::Membership { members, placed, elders } => self.section.set_membership(members, placed, elders),
            Effect::Repair { before, after, elders } => self.storage.repair_after(before, after, elders),
            Effect::BroadcastSignature { to, epoch, signature } => {
                for peer in to.iter().filter_map(peer_id_of) {
                    let section = Arc::clone(&self.section);
                    tokio::spawn(async move {
                        section.request::<Log>(peer, LogRequest::Signature { epoch, signature }).await;
                    });
                }
            }
            Effect::AddSignature { epoch, signer, signature } => self.add_signature(epoch, signer, signature),
            Effect::TakeAudits | Effect::Fetch { .. } | Effect::ApplyRecords(_) => {
                tracing::error!("an effect that needs an answer reached the wrong runner");
            }
        }
    }

    fn start_session(&mut self, epoch: u64, elders: Vec<AccountId>, proposals: Vec<LogItem>) {
        self.running = None;
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
            network: self.section.ledger().network(),
            session: epoch,
            signer: self.key.clone(),
            elders: keys,
            backup: self.farming.dir.join(format!("backup-{epoch:012}")),
            round_delay: self.round_delay,
        };
        let engine = tokio::spawn(async move {
            if let Err(error) =
                engine::run(session, FrameNetwork::new(outbound, inbound), pending_out, finalized_in, stop).await
            {
                tracing::error!(%error, epoch, "the section log session stopped");
            }
        });
        let peers: HashMap<PeerId, usize> =
            elders.iter().enumerate().filter_map(|(index, id)| Some((peer_id_of(id)?, index))).collect();
        let sender = tokio::spawn(send_frames(Arc::clone(&self.section), elders, epoch, frames_out));
        for item in proposals {
            let _ = pending.try_send(item);
        }
        self.running = Some(Running { epoch, peers, frames, pending, finalized, exit: Some(exit), engine, sender });
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

    /// Applies closed records to the ledger, in order; one refused for want of a payment
    /// it has not applied yet stays for the machine to hand over again.
    async fn apply_records(&self, records: Vec<RecordToApply>) -> RecordsApplied {
        let mut done = Vec::new();
        for RecordToApply { record, payments } in records {
            let epoch = record.epoch;
            match self.section.ledger().epoch(record, payments, pool_account("")).await {
                Ok(Ok(_)) => done.push(epoch),
                Ok(Err(LedgerError::EpochConflict { epoch })) => {
                    tracing::error!(epoch, "the ledger holds another record for this epoch");
                    done.push(epoch);
                }
                Ok(Err(error)) => tracing::warn!(%error, epoch, "epoch record not applied yet"),
                Err(_) => break,
            }
        }
        RecordsApplied { done }
    }

    /// Asks `from` for its outcome of `epoch`.
    async fn fetch(&self, epoch: u64, from: &AccountId) -> Option<Box<EpochOutcome>> {
        let peer = peer_id_of(from)?;
        match self.section.request::<Log>(peer, LogRequest::Outcome(epoch)).await {
            Some(LogReply::Outcome(outcome)) => outcome,
            _ => None,
        }
    }

    /// Keeps a signature the machine checked in the closed epoch's outcome file.
    fn add_signature(&self, epoch: u64, signer: AccountId, signature: SignatureBytes) {
        let Some(mut outcome) = blocking(|| read_outcome(&self.farming.dir, epoch)) else { return };
        outcome.signatures.insert(signer, signature);
        // An outcome that cannot be encoded is not written at all: an empty file in its
        // place would lose the outcome itself.
        let written = serde_json::to_vec(&outcome)
            .map_err(std::io::Error::other)
            .and_then(|bytes| blocking(|| write_atomically(&outcome_path(&self.farming.dir, epoch), bytes)));
        if let Err(error) = written {
            tracing::warn!(%error, epoch, "could not keep an epoch signature");
        }
        self.farming.publish(self.machine.current(), Some(outcome));
    }
}

/// Writes a closed epoch: its outcome, the state after it, and the meter's totals (so the
/// counts this elder reports do not fall back to zero after a restart and pull the agreed
/// use below what was read).
fn persist(
    dir: &Path,
    outcome: &EpochOutcome,
    next: &SectionState,
    usage: &BTreeMap<AppId, u64>,
) -> std::io::Result<()> {
    write_atomically(&outcome_path(dir, outcome.record.epoch), serde_json::to_vec(outcome)?)?;
    let state = postcard::to_stdvec(next).map_err(std::io::Error::other)?;
    write_atomically(&dir.join("state.postcard"), state)?;
    write_atomically(&dir.join(USAGE_FILE), serde_json::to_vec(usage)?)
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
                section.request::<Log>(peer, LogRequest::Frame { session, frame }).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_meter_totals_are_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_usage(dir.path()).is_empty(), "nothing saved yet");
        let totals: BTreeMap<AppId, u64> = [(AppId([1; 32]), 3)].into();
        std::fs::write(dir.path().join(USAGE_FILE), serde_json::to_vec(&totals).expect("json")).expect("save");
        assert_eq!(read_usage(dir.path()), totals);
    }
}
