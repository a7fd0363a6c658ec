//! The section driver's decisions, as one machine.
//!
//! A [`SectionMachine`] holds the section state as of the last closed epoch and, while
//! this node is one of the open epoch's elders, the session that orders its items. It
//! takes [`Input`]s and returns [`Effect`]s; the shell runs the effects and feeds their
//! results back as inputs. What it decides:
//!
//! - **sessions**: one per epoch, with the elders of the state that opens it; a node that
//!   is not one of them follows instead;
//! - **the cut**: ordered items are admitted ([`admit`]) and applied in order; the item
//!   that closes the epoch ends the session, and the record, state hash and items up to it
//!   become the [`EpochOutcome`] this elder signs;
//! - **signatures**: its own, sent to every member; others', kept when valid, early ones
//!   (for an epoch this node has not closed yet) held until it does;
//! - **catch-up**: a node outside the session, or one that saw a peer ahead, asks the
//!   session's elders for the open epoch's outcome one at a time and adopts the first a
//!   quorum signed and whose items replay to it, then asks for the next;
//! - **records**: every closed record is applied to the ledger, again and again until
//!   the ledger takes it (it may lack a pool payment it has yet to catch up on);
//! - **reports, liveness and enrolment**: an elder reports its audits once the epoch has
//!   run its length, complains once per epoch about a member unreachable for too long,
//!   and a node that is not a member (or whose reward address changed) asks to enrol.
//!
//! Contract with the shell: [`Effect::TakeAudits`] is answered by [`Input::Audits`]
//! before any other input, and effects run in the order given.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use acre_api::storage::ChallengeTally;
use acre_ledger::section_state::{SectionChange, SectionState};
use acre_ledger::{
    AccountId, AppId, BeaconShare, Certificate, Committee, Digest, EpochRecord, EpochReport, SignatureBytes, Verdict,
};
use ed25519_dalek::SigningKey;

use crate::log::{
    admit, closed_record, session_elders, spend, verify_outcome, Enrolment, EpochOutcome, LogBudget, LogItem,
    LOG_BYTES_PER_ELDER,
};
use crate::meter::UseMeter;
use crate::proposals::Proposals;

/// Items an elder keeps proposing for others at most; beyond, new ones are refused until
/// some are ordered. Its own report and complaints are kept whatever the count.
pub const MAX_PROPOSED: usize = 10_000;
/// Bytes of items one member may have this elder propose per epoch. Uploads through a
/// member's API bring one payment per file and one stored-chunk item per chunk (about
/// 400 bytes), so this is some 2,500 chunks an epoch through each member's API.
pub const MEMBER_PROPOSAL_BYTES: usize = 1 << 20;
/// Enrolments this elder proposes for nodes outside the section per epoch: the section
/// admits one join per epoch, so a few candidates are plenty, and fresh keys, which cost
/// nothing, cannot fill the log.
pub const OUTSIDER_ENROLMENTS: usize = 8;
/// Signatures kept per epoch this node has not closed yet: enough for any elder set, and
/// a flood of them from one member cannot grow it.
const EARLY_SIGNATURES: usize = 64;
/// Closed epochs whose digests are kept to check late signatures against.
const RECENT_EPOCHS: usize = 16;
/// Distinct outcomes of the open epoch whose signatures a follower gathers across peers
/// at most: a liar's forged outcomes cannot crowd out the honest one beyond this.
const PARTIAL_OUTCOMES: usize = 8;
/// A session that orders nothing for this many epoch lengths is taken to be stuck (every
/// other elder may have left it), and the node follows as well.
const STALLED_EPOCHS: u32 = 2;

/// The timings and identity a machine runs with.
#[derive(Debug, Clone)]
pub struct SectionSettings {
    /// How long an epoch runs before the elders report on it.
    pub epoch: Duration,
    /// How long an elder waits for the missing reports once a quorum of them is ordered
    /// before it says the epoch may close without them (`LogItem::GraceOver`). Longer
    /// than honest elders' clocks drift apart over an epoch, far shorter than the epoch:
    /// it is what one silent elder can delay each close by.
    pub report_grace: Duration,
    /// How long a member may stay unreachable before an elder complains.
    pub unresponsive_after: Duration,
    /// Where this farmer's rewards go.
    pub reward_address: AccountId,
    /// How often a node outside the session asks for closed epochs.
    pub follow_interval: Duration,
}

/// What this node's audits of the epoch showed, as the storage service hands it over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Per holder: of the chunks challenged this epoch, how many it proved.
    pub verdicts: Vec<Verdict>,
    /// Audits per holder, by outcome (kept in the outcome file, for statements).
    pub tallies: BTreeMap<AccountId, ChallengeTally>,
}

/// What the shell tells the machine.
#[derive(Debug, Clone)]
pub enum Input {
    /// Time passed. `connected` are the members this node can reach now.
    Tick {
        /// The shell's clock: time since an origin of its choosing, never going back.
        now: Duration,
        /// Members with a live connection.
        connected: BTreeSet<AccountId>,
    },
    /// The atomic broadcast of session `session` ordered `item`, proposed by the elder at
    /// index `creator` of the session's elders.
    Ordered {
        /// The session (the epoch it orders).
        session: u64,
        /// The proposing elder's index.
        creator: usize,
        /// The item.
        item: LogItem,
    },
    /// A peer's frame named a session later than the epoch open here: this node is behind.
    PeerAhead {
        /// The peer's session.
        session: u64,
    },
    /// A member's signature on a closed epoch's outcome.
    Signature {
        /// The member, as the shell authenticated the connection.
        signer: AccountId,
        /// The epoch.
        epoch: u64,
        /// The signature.
        signature: SignatureBytes,
    },
    /// Something a peer or the storage service asks this elder to propose.
    Propose {
        /// Who asks, as the shell authenticated it: the budget it is counted against.
        from: Proposer,
        /// The item.
        item: LogItem,
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
    /// The answer to [`Effect::TakeAudits`].
    Audits(AuditSummary),
    /// The answer to [`Effect::Fetch`]: what `from` said it closed the epoch with, or
    /// `None` if it did not answer or has not closed it.
    Fetched {
        /// The peer asked.
        from: AccountId,
        /// Its outcome.
        outcome: Option<Box<EpochOutcome>>,
    },
    /// The answer to [`Effect::ApplyRecords`].
    RecordsApplied(RecordsApplied),
    /// The session's engine stopped on its own (its backup could not be written); the
    /// shell starts it again from the backup when told to.
    SessionStopped {
        /// The session that stopped.
        session: u64,
    },
}

/// A closed epoch's record with the store payments its log admitted. The record pays
/// the farmers out of the pool, and the pool holds those credits only once the payments'
/// certificates are applied; the ledger applies them first, so a payer that never handed
/// its certificate to the elders cannot leave every elder short of the payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordToApply {
    /// The record.
    pub record: EpochRecord,
    /// Certificates of the pool payments ordered in the epoch.
    pub payments: Vec<Certificate>,
}

impl RecordToApply {
    /// `record` with the pool payments among `log`'s items.
    fn new(record: EpochRecord, log: &[(usize, LogItem)], pool: &AccountId) -> Self {
        let payments = log
            .iter()
            .filter_map(|(_, item)| match item {
                LogItem::Payment { certificate, .. } if certificate.order.to == *pool => Some(certificate.clone()),
                LogItem::App(command) => command.fee.clone().filter(|fee| fee.order.to == *pool),
                _ => None,
            })
            .collect();
        RecordToApply { record, payments }
    }
}

/// Who asks an elder to propose an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proposer {
    /// This node's own services: its API's payments (each paid to the pool) and the
    /// receipts its uploads gathered.
    Local,
    /// A member, within [`MEMBER_PROPOSAL_BYTES`] an epoch.
    Member(AccountId),
    /// A node outside the section: only its own enrolment, within
    /// [`OUTSIDER_ENROLMENTS`] an epoch in all.
    Outsider(AccountId),
}

/// What became of records handed to the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordsApplied {
    /// Epochs the ledger now holds (applied now or before, or, for a conflict the ledger
    /// reported, never to be applied here).
    pub done: Vec<u64>,
}

/// What the machine asks the shell to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Start the atomic broadcast for `epoch` among `elders` (in the engine's order),
    /// from its backup if there is one, with `proposals` in its first units. Replaces any
    /// session running.
    StartSession {
        /// The session.
        epoch: u64,
        /// Its elders.
        elders: Vec<AccountId>,
        /// What to propose at once.
        proposals: Vec<LogItem>,
    },
    /// Stop the session running, if any: this node is not an elder of the open epoch.
    EndSession,
    /// Session backups of epochs before this one are no longer needed.
    RemoveBackups {
        /// The open epoch.
        before: u64,
    },
    /// Propose an item to the running session.
    ToSession(LogItem),
    /// Ask these elders to propose an item (this node runs no session).
    SendProposal {
        /// The elders.
        to: Vec<AccountId>,
        /// The item.
        item: LogItem,
    },
    /// Hand over the audits since the last call ([`Input::Audits`]).
    TakeAudits,
    /// Write durably, before anything after it: the outcome, the state after it, and the
    /// meter's totals (so a restart resumes them).
    Persist {
        /// The closed epoch's outcome.
        outcome: Box<EpochOutcome>,
        /// The state that opens the next epoch.
        state: Box<SectionState>,
        /// The meter's running totals.
        usage: BTreeMap<AppId, u64>,
    },
    /// Show readers this state and, when an epoch closed, its outcome.
    Publish {
        /// The state as far as this node has applied the log.
        state: Box<SectionState>,
        /// The epoch just closed.
        closed: Option<Box<EpochOutcome>>,
    },
    /// The members and elders are now these.
    Membership {
        /// Every member, placed or not: a newcomer is a member from its admission.
        members: Vec<AccountId>,
        /// The placed members with their placement names; a newcomer is placed only once
        /// the section has named it.
        placed: Vec<(AccountId, [u8; 32])>,
        /// The elders.
        elders: BTreeSet<AccountId>,
    },
    /// Members changed: make the copies that put every chunk on its closest members again
    /// (this node copies the chunks it is the closest elder to).
    Repair {
        /// Members' placement names before.
        before: Vec<[u8; 32]>,
        /// And after.
        after: Vec<[u8; 32]>,
        /// The elders' placement names.
        elders: Vec<[u8; 32]>,
    },
    /// Send this node's signature on a closed epoch to these members.
    BroadcastSignature {
        /// The members.
        to: Vec<AccountId>,
        /// The epoch.
        epoch: u64,
        /// The signature.
        signature: SignatureBytes,
    },
    /// Add a checked signature to the kept outcome of a closed epoch.
    AddSignature {
        /// The epoch.
        epoch: u64,
        /// The signer.
        signer: AccountId,
        /// The signature.
        signature: SignatureBytes,
    },
    /// Apply these records to the ledger, in order, each after the payments it was closed
    /// with ([`Input::RecordsApplied`]).
    ApplyRecords(Vec<RecordToApply>),
    /// Ask `from` for its outcome of `epoch` ([`Input::Fetched`]).
    Fetch {
        /// The epoch.
        epoch: u64,
        /// The peer.
        from: AccountId,
    },
}

/// The session running here.
#[derive(Debug, Clone)]
struct Session {
    epoch: u64,
    elders: Vec<AccountId>,
    /// The state as the session's items so far leave it.
    working: SectionState,
    log: Vec<(usize, LogItem)>,
    /// Every elder's ordered bytes, against [`LOG_BYTES_PER_ELDER`].
    budget: LogBudget,
    /// Bytes of this elder's own budgeted proposals handed to the session.
    offered: usize,
}

impl Session {
    /// Whether this elder may hand `item` to the session within its share of the log,
    /// counting it if so: what does not fit waits for the next session.
    fn offer(&mut self, item: &LogItem) -> bool {
        if item.is_elders_own() {
            return true;
        }
        spend(&mut self.offered, item.encoded_len(), LOG_BYTES_PER_ELDER)
    }
}

/// Why the machine asked for the audits.
#[derive(Debug, Clone)]
enum AuditsFor {
    Report,
    /// The epoch closed before this elder reported: the audits only annotate the outcome.
    Close(Box<EpochOutcome>, Box<SectionState>),
}

/// A closed epoch, for checking late signatures.
#[derive(Debug, Clone)]
struct Closed {
    digest: Digest,
    signers: BTreeSet<AccountId>,
}

/// The section driver's decisions; see the module documentation.
#[derive(Debug)]
pub struct SectionMachine {
    signer: SigningKey,
    me: AccountId,
    /// The committee whose certificates prove pool payments.
    committee: Committee,
    pool: AccountId,
    settings: SectionSettings,
    /// The state as of the last closed epoch.
    state: SectionState,
    session: Option<Session>,
    /// This elder's proposals not yet seen in the agreed order.
    proposed: Proposals,
    now: Duration,
    epoch_started: Duration,
    reported: bool,
    /// When the running session first held a quorum of reports.
    quorum_reported_at: Option<Duration>,
    /// Whether this elder said its grace for the missing reports is over.
    grace_over: bool,
    awaiting_audits: Option<AuditsFor>,
    /// Audits taken for the report, kept for the epoch's outcome.
    observed: BTreeMap<AccountId, ChallengeTally>,
    last_seen: BTreeMap<AccountId, Duration>,
    complained: BTreeSet<AccountId>,
    last_follow: Option<Duration>,
    behind: bool,
    /// Peers still to ask in this round of catching up; `Some` while a fetch is out.
    fetching: Option<Vec<AccountId>>,
    /// An outcome was just adopted: once its close is done, ask for the next.
    catching_up: bool,
    /// Signatures gathered from several peers for outcomes of the open epoch that no
    /// single peer had a quorum of, by outcome digest.
    partial: BTreeMap<Digest, BTreeMap<AccountId, SignatureBytes>>,
    /// When the running session last ordered an item (or started).
    last_progress: Duration,
    /// Records not yet applied to the ledger.
    unapplied: Vec<RecordToApply>,
    applying: bool,
    early_signatures: BTreeMap<u64, Vec<(AccountId, SignatureBytes)>>,
    recent: BTreeMap<u64, Closed>,
    last_enrolment: Option<Duration>,
    meter: UseMeter,
    /// Bytes each member had this elder propose in the open epoch.
    member_bytes: BTreeMap<AccountId, usize>,
    /// Outsiders whose enrolments this elder took in the open epoch.
    outsiders: BTreeSet<AccountId>,
}

impl SectionMachine {
    /// A machine resuming from `state` (as its last close saved it) with the meter totals
    /// saved with it; `recent` are the outcomes of the last closed epochs, for late
    /// signatures. Records the state holds are applied to the ledger again (the ledger
    /// takes each once), with the payments of those among `recent`.
    pub fn new(
        signer: SigningKey,
        committee: Committee,
        pool: AccountId,
        settings: SectionSettings,
        state: SectionState,
        usage: BTreeMap<AppId, u64>,
        recent: &[EpochOutcome],
    ) -> Self {
        let unapplied = state
            .records()
            .map(|record| {
                let log = recent.iter().find(|outcome| outcome.record.epoch == record.epoch).map(|o| o.log.as_slice());
                RecordToApply::new(record.clone(), log.unwrap_or_default(), &pool)
            })
            .collect();
        let mut machine = SectionMachine {
            me: AccountId::of(&signer),
            signer,
            committee,
            pool,
            settings,
            state,
            session: None,
            proposed: Proposals::default(),
            now: Duration::ZERO,
            epoch_started: Duration::ZERO,
            reported: false,
            quorum_reported_at: None,
            grace_over: false,
            awaiting_audits: None,
            observed: BTreeMap::new(),
            last_seen: BTreeMap::new(),
            complained: BTreeSet::new(),
            last_follow: None,
            behind: true,
            fetching: None,
            catching_up: false,
            partial: BTreeMap::new(),
            last_progress: Duration::ZERO,
            unapplied,
            applying: false,
            early_signatures: BTreeMap::new(),
            recent: BTreeMap::new(),
            last_enrolment: None,
            meter: UseMeter::resuming(usage),
            member_bytes: BTreeMap::new(),
            outsiders: BTreeSet::new(),
        };
        for outcome in recent {
            machine.remember(outcome);
        }
        machine
    }

    /// The first effects, at time `now`: show the state, name the members, start the
    /// open epoch's session if this node is one of its elders.
    pub fn start(&mut self, now: Duration) -> Vec<Effect> {
        self.now = now;
        let mut effects = vec![self.publish(None), self.membership()];
        self.start_session(&mut effects);
        effects
    }

    /// This node's id.
    pub fn me(&self) -> AccountId {
        self.me
    }

    /// The state as of the last closed epoch.
    pub fn state(&self) -> &SectionState {
        &self.state
    }

    /// The state as far as this node has applied the log: the running session's, or the
    /// last closed epoch's.
    pub fn current(&self) -> &SectionState {
        self.session.as_ref().map_or(&self.state, |session| &session.working)
    }

    /// The epoch of the session running here, if any.
    pub fn session(&self) -> Option<u64> {
        self.session.as_ref().map(|session| session.epoch)
    }

    /// Records closed but not yet taken by the ledger.
    pub fn unapplied(&self) -> &[RecordToApply] {
        &self.unapplied
    }

    /// Proposals waiting to be ordered.
    pub fn proposed(&self) -> &Proposals {
        &self.proposed
    }

    /// The meter's running totals.
    pub fn usage(&self) -> &BTreeMap<AppId, u64> {
        self.meter.totals()
    }

    /// Takes one input; returns what the shell must do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::Tick { now, connected } => self.tick(now, &connected, &mut effects),
            Input::Ordered { session, creator, item } => self.ordered(session, creator, item, &mut effects),
            Input::PeerAhead { session } => {
                if session > self.state.epoch() {
                    self.behind = true;
                }
            }
            Input::Signature { signer, epoch, signature } => self.signature(signer, epoch, signature, &mut effects),
            Input::Propose { from, item } => {
                // Kept even between sessions: the next one carries it. A payment the state
                // has collected already, and an item this elder holds already, are a
                // proposer trying again: they cost that proposer's budget nothing, and
                // nothing is done.
                let collected = matches!(&item, LogItem::Payment { certificate, .. } if self.current().collected(&certificate.id()));
                if session_elders(&self.state).contains(&self.me)
                    && !collected
                    && !self.proposed.contains(&item)
                    && self.within_budget(from, &item)
                {
                    self.propose(item, &mut effects);
                }
            }
            Input::Metered { from, app, use_id } => {
                // Use counts only for an app the section has, attested by its members: reads
                // named after an app nobody registered would grow the meter and every report.
                let state = self.current();
                if state.apps().contains_key(&app) && state.members().contains_key(&from) {
                    self.meter.attest(from, app, use_id);
                }
            }
            Input::Audits(audits) => self.audits(audits, &mut effects),
            Input::Fetched { from, outcome } => self.fetched(from, outcome, &mut effects),
            Input::RecordsApplied(applied) => {
                self.applying = false;
                self.unapplied.retain(|unapplied| !applied.done.contains(&unapplied.record.epoch));
            }
            Input::SessionStopped { session } => {
                if self.session() == Some(session) {
                    tracing::error!(session, "the section log engine stopped; restarting the session");
                    self.start_session(&mut effects);
                }
            }
        }
        effects
    }

    fn tick(&mut self, now: Duration, connected: &BTreeSet<AccountId>, effects: &mut Vec<Effect>) {
        self.now = self.now.max(now);
        self.watch_liveness(connected, effects);
        if self.session.is_some() && !self.reported && self.elapsed(self.epoch_started) >= self.settings.epoch {
            self.reported = true;
            self.take_audits(AuditsFor::Report, effects);
        }
        let waited = self.quorum_reported_at.is_some_and(|at| self.elapsed(at) >= self.settings.report_grace);
        // Only once its own report is ordered: an elder late itself does not end the grace
        // for others, and one restarted after its report was ordered still can.
        let own_in = self.session.as_ref().is_some_and(|session| session.working.has_reported(&self.me));
        if own_in && waited && !self.grace_over {
            self.grace_over = true;
            let epoch = self.state.epoch();
            tracing::info!(epoch, "a quorum reported and the grace for the rest is over");
            self.propose(LogItem::GraceOver(epoch), effects);
        }
        let stalled =
            self.session.is_some() && self.elapsed(self.last_progress) >= self.settings.epoch * STALLED_EPOCHS;
        let following = self.session.is_none() || self.behind || stalled;
        let due = self.last_follow.is_none_or(|at| self.elapsed(at) >= self.settings.follow_interval);
        if following && due && self.fetching.is_none() {
            self.last_follow = Some(self.now);
            self.behind = false;
            self.follow(effects);
        }
        self.apply_records(effects);
        self.enrol(effects);
    }

    fn elapsed(&self, since: Duration) -> Duration {
        self.now.saturating_sub(since)
    }

    fn take_audits(&mut self, purpose: AuditsFor, effects: &mut Vec<Effect>) {
        self.awaiting_audits = Some(purpose);
        effects.push(Effect::TakeAudits);
    }

    fn audits(&mut self, audits: AuditSummary, effects: &mut Vec<Effect>) {
        match self.awaiting_audits.take() {
            Some(AuditsFor::Report) => {
                self.observed = audits.tallies;
                let epoch = self.state.epoch();
                let report = EpochReport {
                    elder: self.me,
                    epoch,
                    verdicts: audits.verdicts,
                    usage: self.meter.totals().clone(),
                    beacon: BeaconShare::of(&self.signer, &self.state.network(), epoch),
                };
                tracing::debug!(epoch = report.epoch, holders = report.verdicts.len(), "reporting on the epoch");
                self.propose(LogItem::Report(report), effects);
            }
            Some(AuditsFor::Close(outcome, next)) => {
                self.observed = audits.tallies;
                self.finish_close(*outcome, *next, effects);
            }
            None => {}
        }
    }

    /// Starts the session of the open epoch if this node is one of its elders.
    fn start_session(&mut self, effects: &mut Vec<Effect>) {
        let epoch = self.state.epoch();
        self.session = None;
        self.epoch_started = self.now;
        self.last_progress = self.now;
        self.reported = false;
        self.quorum_reported_at = None;
        self.grace_over = false;
        self.complained.clear();
        effects.push(Effect::RemoveBackups { before: epoch });
        let elders = session_elders(&self.state);
        if !elders.contains(&self.me) {
            effects.push(Effect::EndSession);
            return;
        }
        tracing::info!(epoch, elders = elders.len(), "section log session started");
        let mut session = Session {
            epoch,
            elders: elders.clone(),
            working: self.state.clone(),
            log: Vec::new(),
            budget: LogBudget::default(),
            offered: 0,
        };
        let proposals = self.proposed.iter().filter(|item| session.offer(item)).cloned().collect();
        effects.push(Effect::StartSession { epoch, elders, proposals });
        self.session = Some(session);
    }

    /// Whether `from` may still have this elder propose `item` in the open epoch, counting
    /// it if so.
    fn within_budget(&mut self, from: Proposer, item: &LogItem) -> bool {
        match from {
            Proposer::Local => true,
            Proposer::Member(member) => {
                spend(self.member_bytes.entry(member).or_default(), item.encoded_len(), MEMBER_PROPOSAL_BYTES)
            }
            // A node outside asks only to join, itself, once an epoch, among a few.
            Proposer::Outsider(node) => {
                let own_enrolment = matches!(item, LogItem::Enrol(enrolment) if enrolment.node == node);
                own_enrolment && self.outsiders.len() < OUTSIDER_ENROLMENTS && self.outsiders.insert(node)
            }
        }
    }

    /// Puts an item into this elder's next units as far as its share of the session's log
    /// allows, and remembers it so a session that ends before ordering it does not lose
    /// it. Its own report and complaints are always kept.
    fn propose(&mut self, item: LogItem, effects: &mut Vec<Effect>) {
        if self.proposed.contains(&item) || (!item.is_elders_own() && self.proposed.len() >= MAX_PROPOSED) {
            return;
        }
        if self.session.as_mut().is_some_and(|session| session.offer(&item)) {
            effects.push(Effect::ToSession(item.clone()));
        }
        self.proposed.push(item);
    }

    fn ordered(&mut self, epoch: u64, creator: usize, item: LogItem, effects: &mut Vec<Effect>) {
        let Some(session) = self.session.as_mut().filter(|session| session.epoch == epoch) else { return };
        let Some(proposer) = session.elders.get(creator).copied() else { return };
        // Beyond its elder's share of the log an item counts for nothing; one of this
        // elder's own stays proposed for the next session.
        if !session.budget.admits(creator, &item) {
            return;
        }
        if proposer == self.me {
            self.proposed.remove(&item);
        }
        self.last_progress = self.now;
        session.log.push((creator, item.clone()));
        let Some(event) = admit(&item, &proposer, &self.committee, &self.pool, &session.working) else { return };
        let before = placement_names(&session.working);
        let change = session.working.apply(&event);
        if self.quorum_reported_at.is_none() && session.working.quorum_reported() {
            self.quorum_reported_at = Some(self.now);
        }
        match change {
            SectionChange::Admitted(_) | SectionChange::Removed(_) | SectionChange::RemovedAndClosed(..) => {
                let working = session.working.clone();
                self.membership_changed(before, &working, effects);
            }
            // The close names the members admitted in the epoch, which places them.
            SectionChange::Closed(_) if placement_names(&session.working) != before => {
                let working = session.working.clone();
                self.membership_changed(before, &working, effects);
            }
            // Owners see their app's registration and price as soon as they are ordered.
            SectionChange::AppChanged(_) => {
                effects.push(Effect::Publish { state: Box::new(session.working.clone()), closed: None })
            }
            _ => {}
        }
        let Some(record) = closed_record(change) else { return };
        let Some(session) = self.session.take() else { return };
        let state_hash = match session.working.state_hash() {
            Ok(hash) => hash,
            Err(error) => {
                tracing::error!(%error, "cannot hash the section state; the epoch stays open");
                self.session = Some(session);
                return;
            }
        };
        let outcome = EpochOutcome {
            record,
            state_hash,
            log: session.log,
            signatures: BTreeMap::new(),
            observed: BTreeMap::new(),
        };
        self.close(outcome, session.working, effects);
    }

    fn membership_changed(&self, before: Vec<[u8; 32]>, state: &SectionState, effects: &mut Vec<Effect>) {
        effects.push(membership_of(state));
        effects.push(Effect::Publish { state: Box::new(state.clone()), closed: None });
        let placement = state.placement();
        effects.push(Effect::Repair {
            before,
            after: placement.names().to_vec(),
            elders: state.elders().iter().filter_map(|id| placement.name_of(id)).collect(),
        });
    }

    /// The epoch closed (here, or at a quorum of elders whose outcome this node fetched).
    fn close(&mut self, outcome: EpochOutcome, next: SectionState, effects: &mut Vec<Effect>) {
        if self.reported {
            self.finish_close(outcome, next, effects);
        } else {
            self.take_audits(AuditsFor::Close(Box::new(outcome), Box::new(next)), effects);
        }
    }

    /// Keeps the outcome and the new state, signs the outcome as one of its elders, hands
    /// the record to the ledger and starts the next session.
    fn finish_close(&mut self, mut outcome: EpochOutcome, next: SectionState, effects: &mut Vec<Effect>) {
        let epoch = outcome.record.epoch;
        outcome.observed = std::mem::take(&mut self.observed);
        if session_elders(&self.state).contains(&self.me) {
            let signature = SignatureBytes::sign(&self.signer, &outcome.digest());
            outcome.signatures.insert(self.me, signature);
            let to = next.members().keys().copied().filter(|member| *member != self.me).collect();
            effects.push(Effect::BroadcastSignature { to, epoch, signature });
        }
        for (signer, signature) in self.early_signatures.remove(&epoch).into_iter().flatten() {
            if outcome.signed_by(&signer, &signature) {
                outcome.signatures.insert(signer, signature);
            }
        }
        self.early_signatures.retain(|early, _| *early > epoch);
        self.partial.clear();
        tracing::info!(
            epoch,
            minted = %outcome.record.minted,
            items = outcome.record.items.len(),
            state = %outcome.state_hash,
            "epoch closed"
        );
        effects.push(Effect::Persist {
            outcome: Box::new(outcome.clone()),
            state: Box::new(next.clone()),
            usage: self.meter.totals().clone(),
        });
        self.remember(&outcome);
        self.unapplied.push(RecordToApply::new(outcome.record.clone(), &outcome.log, &self.pool));
        self.state = next;
        effects.push(self.publish(Some(outcome)));
        effects.push(self.membership());
        // Reports and graces for the closed epoch are moot; everything else is proposed
        // again.
        self.proposed.retain(|item| !matches!(item, LogItem::Report(_) | LogItem::GraceOver(_)));
        self.member_bytes.clear();
        self.outsiders.clear();
        self.apply_records(effects);
        self.start_session(effects);
        if std::mem::take(&mut self.catching_up) {
            self.follow(effects);
        }
    }

    fn remember(&mut self, outcome: &EpochOutcome) {
        let signers = outcome.signatures.keys().copied().collect();
        self.recent.insert(outcome.record.epoch, Closed { digest: outcome.digest(), signers });
        while self.recent.len() > RECENT_EPOCHS {
            self.recent.pop_first();
        }
    }

    fn publish(&self, closed: Option<EpochOutcome>) -> Effect {
        Effect::Publish { state: Box::new(self.current().clone()), closed: closed.map(Box::new) }
    }

    fn membership(&self) -> Effect {
        let state = self.current();
        membership_of(state)
    }

    fn apply_records(&mut self, effects: &mut Vec<Effect>) {
        if !self.unapplied.is_empty() && !self.applying {
            self.applying = true;
            effects.push(Effect::ApplyRecords(self.unapplied.clone()));
        }
    }

    fn signature(&mut self, signer: AccountId, epoch: u64, signature: SignatureBytes, effects: &mut Vec<Effect>) {
        if !self.current().members().contains_key(&signer) && !self.state.members().contains_key(&signer) {
            return;
        }
        if epoch > self.state.epoch() {
            return;
        }
        if epoch == self.state.epoch() {
            // This node has not closed it yet; kept for when it does.
            let early = self.early_signatures.entry(epoch).or_default();
            if early.len() < EARLY_SIGNATURES && !early.iter().any(|(known, _)| *known == signer) {
                early.push((signer, signature));
            }
            return;
        }
        let Some(closed) = self.recent.get_mut(&epoch) else { return };
        if closed.signers.contains(&signer) || !verify_signature(&closed.digest, &signer, &signature) {
            return;
        }
        closed.signers.insert(signer);
        effects.push(Effect::AddSignature { epoch, signer, signature });
    }

    /// As an elder, complains once per epoch about each member unreachable for longer
    /// than the setting; a quorum of complaints removes it.
    fn watch_liveness(&mut self, connected: &BTreeSet<AccountId>, effects: &mut Vec<Effect>) {
        if self.session.is_none() {
            return;
        }
        let now = self.now;
        let members: Vec<AccountId> = self.state.members().keys().copied().filter(|id| *id != self.me).collect();
        let mut silent = Vec::new();
        for member in members {
            let seen = self.last_seen.entry(member).or_insert(now);
            if connected.contains(&member) {
                *seen = now;
            } else if now.saturating_sub(*seen) >= self.settings.unresponsive_after
                && !self.complained.contains(&member)
            {
                silent.push(member);
            }
        }
        for member in silent {
            tracing::info!(%member, "a member has been unreachable too long; reporting it");
            self.complained.insert(member);
            self.propose(LogItem::Unresponsive(member), effects);
        }
    }

    /// Starts a round of catching up: the session's elders are asked one at a time.
    fn follow(&mut self, effects: &mut Vec<Effect>) {
        let mut peers: Vec<AccountId> = session_elders(&self.state).into_iter().filter(|id| *id != self.me).collect();
        peers.reverse();
        self.fetching = Some(peers);
        self.fetch_next(effects);
    }

    fn fetch_next(&mut self, effects: &mut Vec<Effect>) {
        let Some(peers) = self.fetching.as_mut() else { return };
        match peers.pop() {
            Some(from) => effects.push(Effect::Fetch { epoch: self.state.epoch(), from }),
            None => self.fetching = None,
        }
    }

    fn fetched(&mut self, from: AccountId, outcome: Option<Box<EpochOutcome>>, effects: &mut Vec<Effect>) {
        if self.fetching.is_none() {
            return;
        }
        let epoch = self.state.epoch();
        let Some(outcome) = outcome else { return self.fetch_next(effects) };
        let outcome = self.with_gathered_signatures(*outcome);
        match verify_outcome(&self.state, &outcome, &self.committee, &self.pool) {
            Ok(next) => {
                tracing::info!(epoch, %from, "caught up on a closed epoch");
                self.session = None;
                let before = placement_names(&self.state);
                if before != placement_names(&next) || self.state.members().len() != next.members().len() {
                    self.membership_changed(before, &next, effects);
                }
                // The same peers may have closed the next epoch too: asked once this
                // close is done (it may wait for the audits).
                self.fetching = None;
                self.catching_up = true;
                self.close(outcome, next, effects);
            }
            Err(error) => {
                tracing::debug!(%error, epoch, %from, "a peer's epoch outcome was not adopted");
                self.fetch_next(effects);
            }
        }
    }

    /// The outcome with every valid signature of the session's elders that any peer
    /// served for the same digest. The elders' signatures are sent once, at the close; if
    /// a partition split them then, no single copy may hold a quorum, but the copies do
    /// between them. Each signature is checked before it is kept.
    fn with_gathered_signatures(&mut self, mut outcome: EpochOutcome) -> EpochOutcome {
        if outcome.record.epoch != self.state.epoch() {
            return outcome;
        }
        let digest = outcome.digest();
        if !self.partial.contains_key(&digest) && self.partial.len() >= PARTIAL_OUTCOMES {
            return outcome;
        }
        let elders = session_elders(&self.state);
        let gathered = self.partial.entry(digest).or_default();
        for (signer, signature) in &outcome.signatures {
            if elders.contains(signer) && !gathered.contains_key(signer) && outcome.signed_by(signer, signature) {
                gathered.insert(*signer, *signature);
            }
        }
        outcome.signatures.extend(gathered.iter().map(|(signer, signature)| (*signer, *signature)));
        outcome
    }

    /// A node that is not a member, or whose reward address is not the one configured,
    /// asks the elders to enrol it; an elder proposes its own enrolment directly.
    fn enrol(&mut self, effects: &mut Vec<Effect>) {
        let wanted = self.settings.reward_address;
        if self.current().members().get(&self.me).is_some_and(|member| member.reward == wanted) {
            return;
        }
        if self.last_enrolment.is_some_and(|at| self.elapsed(at) < self.settings.epoch / 2) {
            return;
        }
        self.last_enrolment = Some(self.now);
        let item =
            LogItem::Enrol(Enrolment::new(&self.signer, wanted, self.current().network(), self.current().epoch()));
        if self.session.is_some() {
            self.propose(item, effects);
        } else {
            effects.push(Effect::SendProposal { to: session_elders(&self.state), item });
        }
    }
}

fn membership_of(state: &SectionState) -> Effect {
    let members = state.members().keys().copied().collect();
    Effect::Membership { members, placed: state.roster(), elders: state.elders() }
}

fn placement_names(state: &SectionState) -> Vec<[u8; 32]> {
    state.placement().names().to_vec()
}

fn verify_signature(digest: &Digest, signer: &AccountId, signature: &SignatureBytes) -> bool {
    signer.verifying_key().is_some_and(|key| key.verify_strict(digest.as_bytes(), &signature.to_dalek()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::economics::pool_account;
    use acre_ledger::Amount;
    use acre_proofs::ChunkAddress;

    use crate::log::{StoreReceipt, StoredChunk};

    const EPOCH: Duration = Duration::from_secs(10);
    const GRACE: Duration = Duration::from_secs(1);

    fn keys(count: u8) -> Vec<SigningKey> {
        (1..=count).map(|n| SigningKey::from_bytes(&[n; 32])).collect()
    }

    fn settings(key: &SigningKey) -> SectionSettings {
        SectionSettings {
            epoch: EPOCH,
            report_grace: GRACE,
            unresponsive_after: Duration::from_secs(30),
            reward_address: AccountId::of(key),
            follow_interval: Duration::from_secs(2),
        }
    }

    /// Machines of a founding section of `founders`, plus `joiners` who are not members.
    fn section(founders: &[SigningKey], joiners: &[SigningKey]) -> Vec<SectionMachine> {
        let ids: Vec<(AccountId, AccountId)> = founders.iter().map(|k| (AccountId::of(k), AccountId::of(k))).collect();
        let committee = Committee::new(ids.iter().map(|(id, _)| *id)).expect("committee");
        let state =
            SectionState::new(acre_ledger::Digest::default(), &ids, Amount::from_credits(1_000).expect("amount"));
        founders
            .iter()
            .chain(joiners)
            .map(|key| {
                let settings = settings(key);
                let mut machine = SectionMachine::new(
                    key.clone(),
                    committee.clone(),
                    pool_account(""),
                    settings,
                    state.clone(),
                    BTreeMap::new(),
                    &[],
                );
                machine.start(Duration::ZERO);
                machine
            })
            .collect()
    }

    fn all_connected(machines: &[SectionMachine]) -> BTreeSet<AccountId> {
        machines.iter().map(SectionMachine::me).collect()
    }

    /// Every holder proved one chunk to the auditing elder.
    fn audits(machines: &[SectionMachine], auditor: AccountId) -> AuditSummary {
        let verdicts = machines
            .iter()
            .map(SectionMachine::me)
            .filter(|holder| *holder != auditor)
            .map(|holder| Verdict { holder, sampled: 4, passed: 4 })
            .collect();
        AuditSummary { verdicts, tallies: BTreeMap::new() }
    }

    /// Runs a tick at `now` on machine `index`, answering the audits it takes; returns
    /// the other effects.
    fn tick(machines: &mut [SectionMachine], index: usize, now: Duration) -> Vec<Effect> {
        let connected = all_connected(machines);
        let effects = machines[index].handle(Input::Tick { now, connected });
        answer_audits(machines, index, effects)
    }

    fn answer_audits(machines: &mut [SectionMachine], index: usize, effects: Vec<Effect>) -> Vec<Effect> {
        let mut out = Vec::new();
        for effect in effects {
            if matches!(effect, Effect::TakeAudits) {
                let summary = audits(machines, machines[index].me());
                let answer = machines[index].handle(Input::Audits(summary));
                out.extend(answer_audits(machines, index, answer));
            } else {
                out.push(effect);
            }
        }
        out
    }

    fn proposals(effects: &[Effect]) -> Vec<LogItem> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::ToSession(item) => Some(item.clone()),
                _ => None,
            })
            .collect()
    }

    /// Delivers `items` (creator index, item) to every machine running `session`, in one
    /// order, as the atomic broadcast does; returns each machine's effects.
    fn order(machines: &mut [SectionMachine], session: u64, items: &[(usize, LogItem)]) -> Vec<Vec<Effect>> {
        (0..machines.len())
            .map(|index| {
                let mut effects = Vec::new();
                for (creator, item) in items {
                    let input = Input::Ordered { session, creator: *creator, item: item.clone() };
                    let answer = machines[index].handle(input);
                    effects.extend(answer_audits(machines, index, answer));
                }
                effects
            })
            .collect()
    }

    /// Each elder's report for the open epoch, with its index in the session.
    fn reports(machines: &mut [SectionMachine]) -> Vec<(usize, LogItem)> {
        let mut items = Vec::new();
        for index in 0..machines.len() {
            let Some(position) =
                session_elders(machines[index].state()).iter().position(|e| *e == machines[index].me())
            else {
                continue;
            };
            let effects = tick(machines, index, EPOCH);
            items.extend(
                proposals(&effects).into_iter().filter(|i| matches!(i, LogItem::Report(_))).map(|i| (position, i)),
            );
        }
        items
    }

    fn persisted(effects: &[Effect]) -> Option<EpochOutcome> {
        effects.iter().find_map(|effect| match effect {
            Effect::Persist { outcome, .. } => Some((**outcome).clone()),
            _ => None,
        })
    }

    fn enrolment_of(seed: u32, epoch: u64) -> (AccountId, LogItem) {
        let mut bytes = [7u8; 32];
        bytes[..4].copy_from_slice(&seed.to_le_bytes());
        let key = SigningKey::from_bytes(&bytes);
        (AccountId::of(&key), LogItem::Enrol(Enrolment::new(&key, AccountId::of(&key), Digest::default(), epoch)))
    }

    /// Fresh keys cost nothing: a flood of enrolments from outside, and one member sending
    /// more than its share, leave the elder proposing a bounded amount, and its own report
    /// goes into the session whatever was queued before it.
    #[test]
    fn floods_of_proposals_are_bounded_per_proposer_and_never_crowd_out_the_report() {
        let mut machines = section(&keys(4), &[]);
        for seed in 0..1_000 {
            let (node, item) = enrolment_of(seed, 1);
            machines[0].handle(Input::Propose { from: Proposer::Outsider(node), item });
        }
        assert_eq!(machines[0].proposed().len(), OUTSIDER_ENROLMENTS, "a few candidates an epoch");
        let (_, someone_else) = enrolment_of(5_000, 1);
        let outsider = AccountId::of(&SigningKey::from_bytes(&[9; 32]));
        machines[0].handle(Input::Propose { from: Proposer::Outsider(outsider), item: someone_else });
        assert_eq!(machines[0].proposed().len(), OUTSIDER_ENROLMENTS, "an outsider proposes only its own enrolment");

        let member = machines[1].me();
        let mut taken = 0;
        for seed in 10_000..20_000 {
            let (_, item) = enrolment_of(seed, 1);
            let before = machines[0].proposed().len();
            machines[0].handle(Input::Propose { from: Proposer::Member(member), item });
            taken += machines[0].proposed().len() - before;
        }
        let (_, sample) = enrolment_of(0, 1);
        assert_eq!(taken, MEMBER_PROPOSAL_BYTES / sample.encoded_len(), "one member's share of an epoch");

        let effects = tick(&mut machines, 0, EPOCH);
        assert!(
            proposals(&effects).iter().any(|item| matches!(item, LogItem::Report(_))),
            "the report goes to the session at once"
        );
    }

    /// A member whose node proposes its payments again until they are ordered spends its
    /// budget once per item: a repeat of one the elder holds costs nothing, so trying again
    /// never crowds out the member's new proposals.
    #[test]
    fn a_proposal_made_again_spends_the_members_budget_once() {
        let mut machines = section(&keys(4), &[]);
        let member = machines[1].me();
        let (_, item) = enrolment_of(1, 1);
        let per_item = item.encoded_len();
        for _ in 0..10 * (MEMBER_PROPOSAL_BYTES / per_item) {
            machines[0].handle(Input::Propose { from: Proposer::Member(member), item: item.clone() });
        }
        assert_eq!(machines[0].proposed().len(), 1, "proposed once");
        let mut taken = 0;
        for seed in 10_000..20_000 {
            let (_, fresh) = enrolment_of(seed, 1);
            let before = machines[0].proposed().len();
            machines[0].handle(Input::Propose { from: Proposer::Member(member), item: fresh });
            taken += machines[0].proposed().len() - before;
        }
        assert_eq!(taken, MEMBER_PROPOSAL_BYTES / per_item - 1, "the rest of the share is still the member's");
    }

    /// A node proposes a payment again until the state it sees shows it collected, and
    /// that state lags the log: a repeat of a payment the log has ordered already is taken
    /// for nothing, neither proposed again nor charged to the proposer's budget.
    #[test]
    fn a_payment_the_log_has_collected_is_taken_again_for_nothing() {
        let founders = keys(4);
        let mut machines = section(&founders, &[]);
        let payer = SigningKey::from_bytes(&[77; 32]);
        let chunks = vec![(ChunkAddress([3; 32]), 1 << 20)];
        let named: Vec<([u8; 32], u64)> = chunks.iter().map(|(chunk, size)| (chunk.0, *size)).collect();
        let transfer = acre_ledger::TransferOrder {
            network: Digest::default(),
            from: AccountId::of(&payer),
            to: pool_account(""),
            amount: crate::log::lowest_price(&chunks).expect("a price"),
            sequence: 0,
            app: None,
            memo: acre_ledger::economics::store_memo(&named),
            hidden: None,
        };
        let digest = transfer.digest();
        let votes = founders
            .iter()
            .take(3)
            .map(|key| acre_ledger::Vote::sign(key, digest))
            .map(|vote| acre_ledger::ElderSignature { elder: vote.elder, signature: vote.signature })
            .collect();
        let certificate = acre_ledger::Certificate { order: transfer, votes };
        let id = certificate.id();
        let payment = LogItem::Payment { certificate, chunks };
        let position = session_elders(machines[0].state()).iter().position(|e| *e == machines[0].me()).expect("elder");
        order(&mut machines, 1, &[(position, payment.clone())]);
        assert!(machines[0].current().collected(&id), "the log ordered the payment");

        let member = machines[1].me();
        let per_item = payment.encoded_len();
        for _ in 0..2 * (MEMBER_PROPOSAL_BYTES / per_item) + 1 {
            machines[0].handle(Input::Propose { from: Proposer::Member(member), item: payment.clone() });
        }
        assert!(machines[0].proposed().is_empty(), "not proposed again");
        let (_, fresh) = enrolment_of(1, 1);
        machines[0].handle(Input::Propose { from: Proposer::Member(member), item: fresh.clone() });
        assert_eq!(machines[0].proposed().iter().collect::<Vec<_>>(), [&fresh], "the member's budget is untouched");
    }

    /// However much an elder has ordered, only its share counts, identically at every
    /// elder, and its report still closes the epoch; what an elder's own share left out is
    /// proposed again in the next session.
    #[test]
    fn an_elders_ordered_items_count_only_up_to_its_share_of_the_log() {
        let mut machines = section(&keys(4), &[]);
        // Large items (unsigned receipts: the budget counts bytes before anything is checked).
        let bulky = |seed: u32| {
            let mut chunk = [0u8; 32];
            chunk[..4].copy_from_slice(&seed.to_le_bytes());
            let receipt = StoreReceipt { holder: machines[1].me(), signature: SignatureBytes([1; 64]) };
            LogItem::Stored(StoredChunk { chunk: ChunkAddress(chunk), size: 1, receipts: vec![receipt; 400] })
        };
        let share = LOG_BYTES_PER_ELDER / bulky(0).encoded_len();
        let position = session_elders(machines[0].state()).iter().position(|e| *e == machines[0].me()).expect("elder");
        let flood: Vec<(usize, LogItem)> = (0..share as u32 + 3).map(|seed| (position, bulky(seed))).collect();
        for (_, item) in &flood {
            machines[0].handle(Input::Propose { from: Proposer::Local, item: item.clone() });
        }
        let items = reports(&mut machines);
        let mut ordered = flood.clone();
        ordered.extend(items);
        let per_machine = order(&mut machines, 1, &ordered);
        let outcome = persisted(&per_machine[0]).expect("the reports close the epoch");
        let kept = outcome.log.iter().filter(|(_, item)| matches!(item, LogItem::Stored(_))).count();
        assert_eq!(kept, share, "the log keeps the elder's share and no more");
        for effects in &per_machine[1..] {
            assert_eq!(persisted(effects).map(|o| o.state_hash), Some(outcome.state_hash), "one state everywhere");
        }
        assert_eq!(machines[0].proposed().len(), 3, "what did not fit waits for the next session");
    }

    /// Reads attested for an app nobody registered, or by a node outside the section,
    /// count for nothing, however many pairs of attestations arrive.
    #[test]
    fn use_counts_only_for_registered_apps_and_from_members() {
        let mut machines = section(&keys(4), &[]);
        let (node, holder) = (machines[1].me(), machines[2].me());
        let stranger = AccountId::of(&SigningKey::from_bytes(&[99; 32]));
        for n in 0..100u8 {
            let (app, use_id) = (AppId([n; 32]), Digest([n; 32]));
            machines[0].handle(Input::Metered { from: node, app, use_id });
            machines[0].handle(Input::Metered { from: holder, app, use_id });
        }
        assert!(machines[0].usage().is_empty(), "no such apps");
        let owner = SigningKey::from_bytes(&[98; 32]);
        let command = acre_ledger::AppCommand {
            network: Digest::default(),
            owner: AccountId::of(&owner),
            name: "photos".into(),
            nonce: 0,
            action: acre_ledger::AppAction::Register { payout: AccountId::of(&owner), price_per_put: Amount::ZERO },
        }
        .sign(&owner);
        let app = command.command.app();
        let mut registered = machines[0].state().clone();
        registered.apply(&acre_ledger::section_state::SectionEvent::App(Box::new(command)));
        assert!(registered.apps().contains_key(&app));
        let mut machine = SectionMachine::new(
            keys(4)[0].clone(),
            Committee::new(keys(4).iter().map(AccountId::of)).expect("committee"),
            pool_account(""),
            settings(&keys(4)[0]),
            registered,
            BTreeMap::new(),
            &[],
        );
        let use_id = Digest([7; 32]);
        machine.handle(Input::Metered { from: stranger, app, use_id });
        machine.handle(Input::Metered { from: node, app, use_id });
        assert!(machine.usage().is_empty(), "an outsider's word is no attestation");
        machine.handle(Input::Metered { from: holder, app, use_id });
        assert_eq!(machine.usage().get(&app), Some(&1), "two members attested a read of a registered app");
    }

    #[test]
    fn an_elder_reports_once_the_epoch_has_run_and_not_before() {
        let mut machines = section(&keys(4), &[]);
        assert!(proposals(&tick(&mut machines, 0, EPOCH / 2)).is_empty(), "too early");
        let effects = tick(&mut machines, 0, EPOCH);
        let items = proposals(&effects);
        assert!(
            matches!(items.as_slice(), [LogItem::Report(report)] if report.epoch == 1 && report.verdicts.len() == 3)
        );
        assert!(proposals(&tick(&mut machines, 0, EPOCH * 2)).is_empty(), "one report per epoch");
        assert_eq!(machines[0].proposed().len(), 1, "kept until it is ordered");
    }

    /// The close, as every elder runs it: the outcome is written before its record reaches
    /// the ledger, the elder signs it and sends the signature, and the next session starts.
    #[test]
    fn every_elders_report_closes_the_epoch_and_each_elder_persists_signs_and_moves_on() {
        let mut machines = section(&keys(4), &[]);
        let items = reports(&mut machines);
        assert_eq!(items.len(), 4);
        let quorum = order(&mut machines, 1, &items[..3]);
        assert!(quorum.iter().all(|effects| persisted(effects).is_none()), "a bare quorum waits for the fourth");
        let per_machine = order(&mut machines, 1, &items[3..]);
        let mut hashes = BTreeSet::new();
        for (machine, effects) in machines.iter().zip(&per_machine) {
            let outcome = persisted(effects).expect("closed");
            hashes.insert(outcome.state_hash);
            assert_eq!(outcome.log.len(), 4, "the cut is at the last report: {:?}", outcome.log.len());
            assert!(outcome.signatures.contains_key(&machine.me()));
            let position = |wanted: fn(&Effect) -> bool| effects.iter().position(wanted).expect("effect");
            assert!(
                position(|e| matches!(e, Effect::Persist { .. })) < position(|e| matches!(e, Effect::ApplyRecords(_)))
            );
            assert!(effects
                .iter()
                .any(|e| matches!(e, Effect::BroadcastSignature { to, epoch: 1, .. } if to.len() == 3)));
            assert!(effects.iter().any(|e| matches!(e, Effect::StartSession { epoch: 2, .. })));
            assert_eq!(machine.state().epoch(), 2);
            assert!(machine.proposed().is_empty(), "its report was ordered, or is moot now");
        }
        assert_eq!(hashes.len(), 1, "one state at every elder");
        let late = order(&mut machines, 1, &items[3..]);
        assert!(late.iter().all(Vec::is_empty), "items of a closed session change nothing");
    }

    /// One elder never reports: the others wait out the grace once a quorum is in, then
    /// say so, and the epoch closes on the quorum once more than f of them did — one
    /// elder's word (a liar's, say) is not enough.
    #[test]
    fn a_silent_elder_delays_a_close_by_the_grace_and_no_more() {
        let mut machines = section(&keys(4), &[]);
        let proposed_at = |machines: &mut Vec<SectionMachine>, now: Duration| -> Vec<(usize, LogItem)> {
            (0..3)
                .flat_map(|index| {
                    let creator = session_elders(machines[index].state())
                        .iter()
                        .position(|elder| *elder == machines[index].me())
                        .expect("an elder");
                    proposals(&tick(machines, index, now)).into_iter().map(move |item| (creator, item))
                })
                .collect()
        };
        let items = proposed_at(&mut machines, EPOCH);
        assert_eq!(items.len(), 3, "machine 3 stays silent");
        let at_quorum = order(&mut machines, 1, &items);
        assert!(at_quorum.iter().all(|effects| persisted(effects).is_none()));
        assert!(proposed_at(&mut machines, EPOCH + GRACE / 2).is_empty(), "still within the grace");
        let late = proposals(&tick(&mut machines, 3, EPOCH + GRACE));
        assert!(late.iter().all(|item| matches!(item, LogItem::Report(_))), "its own report is not in: {late:?}");
        let waited = proposed_at(&mut machines, EPOCH + GRACE);
        assert_eq!(waited.len(), 3);
        assert!(waited.iter().all(|(_, item)| *item == LogItem::GraceOver(1)), "{waited:?}");
        let one = order(&mut machines, 1, &waited[..1]);
        assert!(one.iter().all(|effects| persisted(effects).is_none()), "f elders cannot end the grace");
        let two = order(&mut machines, 1, &waited[1..2]);
        for effects in &two {
            let outcome = persisted(effects).expect("closed on the quorum");
            assert_eq!(outcome.log.len(), 5);
        }
        assert!(machines.iter().all(|machine| machine.proposed().is_empty()), "graces of a closed epoch are moot");
    }

    #[test]
    fn records_go_to_the_ledger_until_it_takes_them_one_batch_at_a_time() {
        let mut machines = section(&keys(4), &[]);
        let items = reports(&mut machines);
        order(&mut machines, 1, &items);
        assert_eq!(machines[0].unapplied().len(), 1);
        let again = tick(&mut machines, 0, EPOCH + Duration::from_secs(1));
        assert!(!again.iter().any(|e| matches!(e, Effect::ApplyRecords(_))), "one batch in flight at a time");
        machines[0].handle(Input::RecordsApplied(RecordsApplied { done: Vec::new() }));
        let retry = tick(&mut machines, 0, EPOCH + Duration::from_secs(2));
        assert!(retry.iter().any(|e| matches!(e, Effect::ApplyRecords(records) if records.len() == 1)));
        machines[0].handle(Input::RecordsApplied(RecordsApplied { done: vec![1] }));
        assert!(machines[0].unapplied().is_empty());
    }

    /// A node outside the session asks the elders in turn: an outcome a quorum did not
    /// sign, or whose items do not give its record, is passed over and the next elder
    /// asked; a good one is adopted, and the next epoch asked for at once.
    #[test]
    fn a_follower_passes_over_a_lying_elder_and_adopts_the_quorum_signed_outcome() {
        let founders = keys(4);
        let mut machines = section(&founders, &[]);
        let items = reports(&mut machines);
        let closed = order(&mut machines, 1, &items);
        let mut outcome = persisted(&closed[0]).expect("closed");
        for (index, effects) in closed.iter().enumerate().skip(1) {
            let signer = machines[index].me();
            outcome.signatures.insert(signer, persisted(effects).expect("closed").signatures[&signer]);
        }

        let mut follower = section(&founders, &[]).remove(3);
        let now = Duration::from_secs(1);
        // A follower is any node without the session; this one lost it.
        follower.session = None;
        let effects = follower.handle(Input::Tick { now, connected: BTreeSet::new() });
        let Some(Effect::Fetch { epoch: 1, from: first }) =
            effects.iter().find(|e| matches!(e, Effect::Fetch { .. })).cloned()
        else {
            panic!("no fetch in {effects:?}")
        };
        let mut forged = outcome.clone();
        forged.record.minted = Amount::from_nanos(forged.record.minted.nanos() + 1).expect("amount");
        let next = follower.handle(Input::Fetched { from: first, outcome: Some(Box::new(forged)) });
        let Some(Effect::Fetch { epoch: 1, from: second }) = next.first().cloned() else { panic!("{next:?}") };
        assert_ne!(first, second, "the next elder is asked");
        let adopted = follower.handle(Input::Fetched { from: second, outcome: Some(Box::new(outcome.clone())) });
        let adopted = answer_audits(std::slice::from_mut(&mut follower), 0, adopted);
        assert_eq!(follower.state().epoch(), 2);
        assert_eq!(persisted(&adopted).map(|o| o.state_hash), Some(outcome.state_hash));
        assert!(adopted.iter().any(|e| matches!(e, Effect::Fetch { epoch: 2, .. })), "asks for the next epoch");
    }

    /// Signatures sent once at a close that a partition split: no peer's copy has a
    /// quorum, but together they do, and the follower adopts the outcome.
    #[test]
    fn a_follower_gathers_signatures_that_no_single_peer_has_a_quorum_of() {
        let founders = keys(4);
        let mut machines = section(&founders, &[]);
        let items = reports(&mut machines);
        let closed = order(&mut machines, 1, &items);
        let outcomes: Vec<EpochOutcome> = closed.iter().map(|effects| persisted(effects).expect("closed")).collect();
        // Two copies, each with two of the four signatures; a quorum is three.
        let mut first = outcomes[0].clone();
        first.signatures.insert(machines[1].me(), outcomes[1].signatures[&machines[1].me()]);
        let mut second = outcomes[2].clone();
        second.signatures.insert(machines[3].me(), outcomes[3].signatures[&machines[3].me()]);
        assert_eq!((first.signatures.len(), second.signatures.len()), (2, 2));

        let mut follower = section(&founders, &[]).remove(3);
        follower.session = None;
        let effects = follower.handle(Input::Tick { now: Duration::from_secs(1), connected: BTreeSet::new() });
        let Some(Effect::Fetch { from, .. }) = effects.iter().find(|e| matches!(e, Effect::Fetch { .. })).cloned()
        else {
            panic!("no fetch in {effects:?}")
        };
        let next = follower.handle(Input::Fetched { from, outcome: Some(Box::new(first)) });
        assert_eq!(follower.state().epoch(), 1, "two signatures are not a quorum");
        let Some(Effect::Fetch { from, .. }) = next.first().cloned() else { panic!("{next:?}") };
        let adopted = follower.handle(Input::Fetched { from, outcome: Some(Box::new(second)) });
        answer_audits(std::slice::from_mut(&mut follower), 0, adopted);
        assert_eq!(follower.state().epoch(), 2, "the two copies together are");
    }

    /// An elder whose session orders nothing for two epoch lengths (every other elder
    /// may have moved on without it) asks for closed epochs too.
    #[test]
    fn an_elder_whose_session_stalls_follows_as_well() {
        let mut machines = section(&keys(4), &[]);
        let fetches = |effects: &[Effect]| effects.iter().filter(|e| matches!(e, Effect::Fetch { .. })).count();
        // The first round of catching up goes unanswered.
        let first = machines[0].handle(Input::Tick { now: Duration::from_secs(1), connected: BTreeSet::new() });
        for effect in first {
            if let Effect::Fetch { from, .. } = effect {
                let mut next = machines[0].handle(Input::Fetched { from, outcome: None });
                while let Some(Effect::Fetch { from, .. }) = next.first().cloned() {
                    next = machines[0].handle(Input::Fetched { from, outcome: None });
                }
            }
        }
        let quiet = machines[0].handle(Input::Tick { now: EPOCH, connected: BTreeSet::new() });
        assert_eq!(fetches(&answer_audits(&mut machines, 0, quiet)), 0, "a session that may still progress");
        let stalled =
            machines[0].handle(Input::Tick { now: EPOCH * 2 + Duration::from_secs(1), connected: BTreeSet::new() });
        assert_eq!(fetches(&answer_audits(&mut machines, 0, stalled)), 1, "a stalled one: follow");
    }

    #[test]
    fn signatures_are_checked_kept_once_and_early_ones_wait_for_the_close() {
        let mut machines = section(&keys(4), &[]);
        let items = reports(&mut machines);
        let early = {
            let mut probe = section(&keys(4), &[]);
            let items = reports(&mut probe);
            let closed = order(&mut probe, 1, &items);
            persisted(&closed[1]).expect("closed")
        };
        let signer = machines[1].me();
        let signature = early.signatures[&signer];
        // Before machine 0 closes epoch 1, machine 1's signature arrives: kept for later.
        assert!(machines[0].handle(Input::Signature { signer, epoch: 1, signature }).is_empty());
        let closed = order(&mut machines[..1], 1, &items);
        let outcome = persisted(&closed[0]).expect("closed");
        assert!(outcome.signatures.contains_key(&signer), "the early signature joined the outcome");

        let third = machines[2].me();
        let theirs = persisted(&order(&mut machines[2..3], 1, &items)[0]).expect("closed").signatures[&third];
        let kept = machines[0].handle(Input::Signature { signer: third, epoch: 1, signature: theirs });
        assert!(matches!(kept.as_slice(), [Effect::AddSignature { epoch: 1, .. }]));
        assert!(machines[0].handle(Input::Signature { signer: third, epoch: 1, signature: theirs }).is_empty(), "once");
        let stranger = AccountId::of(&SigningKey::from_bytes(&[99; 32]));
        assert!(machines[0].handle(Input::Signature { signer: stranger, epoch: 1, signature: theirs }).is_empty());
        let fourth = machines[3].me();
        assert!(
            machines[0].handle(Input::Signature { signer: fourth, epoch: 1, signature: theirs }).is_empty(),
            "a signature by someone else is not the member's"
        );
    }

    #[test]
    fn an_unreachable_member_is_complained_about_once_per_epoch() {
        let mut machines = section(&keys(4), &[]);
        let silent = machines[3].me();
        let connected: BTreeSet<AccountId> = all_connected(&machines).into_iter().filter(|id| *id != silent).collect();
        let complaints = |effects: &[Effect]| {
            proposals(effects)
                .into_iter()
                .filter(|i| matches!(i, LogItem::Unresponsive(node) if *node == silent))
                .count()
        };
        let mut count = 0;
        for second in 0..40 {
            let now = Duration::from_secs(second) / 4;
            count += complaints(&machines[0].handle(Input::Tick { now, connected: connected.clone() }));
        }
        assert_eq!(count, 0, "not before the setting's time");
        for second in 30..60 {
            let now = Duration::from_secs(second);
            let effects = machines[0].handle(Input::Tick { now, connected: connected.clone() });
            let effects = answer_audits(&mut machines, 0, effects);
            count += complaints(&effects);
        }
        assert_eq!(count, 1, "once while the epoch is open");
    }

    #[test]
    fn a_newcomer_is_a_member_from_its_admission_and_placed_only_once_named() {
        let ids: Vec<(AccountId, AccountId)> =
            keys(4).iter().map(|key| (AccountId::of(key), AccountId::of(key))).collect();
        let mut state = SectionState::new(acre_ledger::Digest::default(), &ids, Amount::ZERO);
        let newcomer = AccountId::of(&SigningKey::from_bytes(&[99; 32]));
        state.apply(&acre_ledger::section_state::SectionEvent::Join { node: newcomer, reward: newcomer });
        let Effect::Membership { members, placed, .. } = membership_of(&state) else { panic!("a membership") };
        // Left out of the members, it was never seen connected and was voted out as
        // unresponsive before the close that names it.
        assert!(members.contains(&newcomer), "watched, and may propose and place chunks, from its admission");
        assert!(placed.iter().all(|(id, _)| *id != newcomer), "it holds nothing until it is named");
        assert_eq!(placed.len(), 4);
    }

    #[test]
    fn a_node_outside_the_section_asks_the_elders_to_enrol_it_and_not_too_often() {
        let founders = keys(4);
        let joiner = SigningKey::from_bytes(&[50; 32]);
        let mut machines = section(&founders, &[joiner]);
        let asked = |effects: &[Effect]| {
            effects.iter().any(
                |e| matches!(e, Effect::SendProposal { to, item: LogItem::Enrol(enrolment) } if to.len() == 4 && enrolment.is_valid()),
            )
        };
        let effects = machines[4].handle(Input::Tick { now: Duration::from_secs(1), connected: BTreeSet::new() });
        assert!(asked(&effects));
        let soon = machines[4].handle(Input::Tick { now: Duration::from_secs(2), connected: BTreeSet::new() });
        assert!(!asked(&soon), "at most once per half epoch");
        let later = machines[4].handle(Input::Tick { now: Duration::from_secs(7), connected: BTreeSet::new() });
        assert!(asked(&later));
        assert!(machines[4].session().is_none(), "a non-member runs no session");
    }
}
