//! The storage book: what a node decides about the section's chunks, without touching
//! them.
//!
//! It keeps the store payments this node accepted, the prices it quoted lately, what
//! members said of their fullness, when their connections came and went, and what its
//! audits showed. With the agreed registry (the section state's: every chunk stored,
//! with the size its payment named) it answers: who holds a chunk, what a member must
//! hold, which audits to send this round, which repairs this node makes, what a payment
//! must pay, and what an audit that got no answer counts as. The storage service around
//! it moves the bytes, writes the files and asks the peers; it changes the book only
//! after the disk has what the book would then claim (an accepted payment).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use acre_api::storage::{AuditRecord, ChallengeTally};
use acre_ledger::economics::{app_fee_of, billable_bytes, check_store_payment, store_cost, StorePaymentError};
use acre_ledger::section_state::Placement;
use acre_ledger::{AccountId, Amount, AppId, Digest, SignatureBytes, TransferOrder, Verdict};
use acre_proofs::audit::{assigned, audit_of, duties, Audit, Outcome};
use acre_proofs::challenge::{Answer, Challenge};
use acre_proofs::placement::{closest, node_name, Repair, COPIES};
use acre_proofs::{ChunkAddress, MAX_CHUNK_BYTES};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::section::AuditSummary;

/// How long a quote is honoured: a payment is checked against the lowest price the
/// section quoted in this window, so fullness rising during an upload does not turn a
/// payment made on a fresh quote into too small a one.
pub const QUOTE_VALIDITY: Duration = Duration::from_secs(600);
/// Most chunks one store payment, registration or holdings question may name.
pub const MAX_ENTRIES: usize = 1 << 16;
/// Most chunks one challenge may name.
pub const MAX_CHALLENGE_ITEMS: usize = 256;
/// New forwarded payments one member may have this node check per [`FORWARD_WINDOW`]:
/// a hundred a second, above what a busy gateway forwards (one per upload it takes), so
/// a member sending forged certificates costs this node at most that many quorum checks
/// a second (some 15 ms of one core).
pub const FORWARDED_PAYMENTS: u32 = 6_000;
/// The window [`FORWARDED_PAYMENTS`] counts in.
pub const FORWARD_WINDOW: Duration = Duration::from_secs(60);
/// Changes of a holder's connection per epoch that still excuse its silence: one
/// restart, down and up again.
pub const RESTART_CHANGES: u32 = 2;
/// Copies an elder hands holders after failed audits per epoch at most.
pub const MAX_RECOPIES: usize = 1_024;
/// Rechecks asked per (holder, chunk) per epoch at most, if the holder takes none: one
/// busy with other rechecks is asked again after its next failed audit, a few times.
pub const RECOPY_ASKS: u8 = 3;
/// Rechecks of this node's own copies under way at once (each may hold a chunk's bytes).
pub const MAX_RECHECKS: usize = 16;
/// Rechecks one elder may start here per [`FORWARD_WINDOW`]. An honest elder asks once
/// per (holder, chunk) an epoch, after a failed audit; a lying one only makes this node
/// read and hash its own intact copies, so it costs this node at most this many chunks
/// read a minute (some 4 MiB a second).
pub const RECHECKS_PER_ELDER: u32 = 256;
/// Prices kept per app: a price changed in a loop cannot grow the history.
const APP_PRICES: usize = 64;
/// One price sample per this long at most (the cheapest), so quoting in a loop costs no
/// memory.
const SAMPLE_SPACING: Duration = Duration::from_secs(1);

/// Why the book refuses a chunk or a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// A listed chunk has a size no chunk can have, or the list is too long.
    #[error("{0}")]
    InvalidChunk(String),
    /// The section quotes nothing: it is full.
    #[error("the section is full and takes no new chunks")]
    SectionFull,
    /// No app of that id is registered.
    #[error("no app {0} is registered in this section")]
    UnknownApp(AppId),
    /// The payment does not pay for this chunk.
    #[error(transparent)]
    Payment(#[from] StorePaymentError),
}

/// Hash context of what a holder signs when it answers a challenge.
const ANSWER_CONTEXT: &str = "acre 2026 challenge answer v1";

/// A holder's answer to a challenge, signed by the holder over the challenge it answers
/// (which names the challenger, the holder and the round) and its proofs. The connection
/// already tells the challenger who answered; the signature makes the answer evidence
/// that holds beyond that connection: no one but the holder could have given it, and it
/// answers that challenge and no other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnswer {
    /// The proofs.
    pub answer: Answer,
    /// The holder's signature over the challenge and the proofs.
    pub signature: SignatureBytes,
}

impl SignedAnswer {
    /// The answer of the holder whose key is `key` to `challenge`.
    pub fn sign(key: &SigningKey, challenge: &Challenge, answer: Answer) -> Self {
        let signature = SignatureBytes::sign(key, &answer_digest(challenge, &answer));
        SignedAnswer { answer, signature }
    }

    /// Whether `holder` signed this as its answer to `challenge`.
    pub fn is_from(&self, holder: &AccountId, challenge: &Challenge) -> bool {
        holder.verifying_key().is_some_and(|key| {
            key.verify_strict(answer_digest(challenge, &self.answer).as_bytes(), &self.signature.to_dalek()).is_ok()
        })
    }
}

/// What a holder signs: the challenge, whole, and the proofs, each length-prefixed so no
/// two different (challenge, answer) pairs hash alike.
fn answer_digest(challenge: &Challenge, answer: &Answer) -> Digest {
    let mut bytes = Vec::with_capacity(112 + answer.proofs.iter().map(|proof| proof.len() + 8).sum::<usize>());
    bytes.extend_from_slice(&challenge.challenger);
    bytes.extend_from_slice(&challenge.holder);
    bytes.extend_from_slice(&challenge.seed);
    bytes.extend_from_slice(&challenge.nonce.to_le_bytes());
    bytes.extend_from_slice(&(challenge.items.len() as u64).to_le_bytes());
    for item in &challenge.items {
        bytes.extend_from_slice(&item.address.0);
        bytes.extend_from_slice(&(item.blocks.len() as u64).to_le_bytes());
        item.blocks.iter().for_each(|block| bytes.extend_from_slice(&block.to_le_bytes()));
    }
    bytes.extend_from_slice(&answer.nonce.to_le_bytes());
    bytes.extend_from_slice(&(answer.proofs.len() as u64).to_le_bytes());
    for proof in &answer.proofs {
        bytes.extend_from_slice(&(proof.len() as u64).to_le_bytes());
        bytes.extend_from_slice(proof);
    }
    Digest::derive(ANSWER_CONTEXT, &[&bytes])
}

/// Why a holder does not answer a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeRefusal {
    /// The sender is not an elder of the section.
    #[error("only elders of this section audit")]
    NotAnElder,
    /// The challenge names another challenger than the elder that sent it.
    #[error("the challenge names another challenger than its sender")]
    OtherChallenger,
    /// The challenge is for another holder.
    #[error("the challenge is for another holder")]
    OtherHolder,
    /// More chunks than one challenge may name.
    #[error("at most {MAX_CHALLENGE_ITEMS} chunks per challenge")]
    TooLarge,
    /// The blocks asked of this chunk are not the ones the seed draws for this holder.
    #[error("the blocks asked of {0} are not drawn from the seed")]
    NotDrawn(ChunkAddress),
}

/// Whether holder `me` answers `challenge` from `sender`, the sender's id if it may
/// challenge here (an elder of the section, for audits; a member, for a sweep's
/// `ChunkRequest::Prove`): only one naming `me` as the holder and the sender as the
/// challenger, of a bounded size, and only for the blocks its seed draws for `me`
/// (each chunk's size from `size_of`, the registry's or else the held copy's; a chunk of
/// no known size is left for the answer to call missing). So a member that keeps nothing
/// cannot get its challenge answered here: not by sending it on (it names another
/// holder), not by posing as its challenger, and not, as an elder, by putting the blocks
/// it was asked in a challenge of its own (the seed would have to draw them for `me`).
pub fn check_challenge(
    challenge: &Challenge,
    sender: Option<&AccountId>,
    me: &AccountId,
    size_of: impl Fn(&ChunkAddress) -> Option<u64>,
) -> Result<(), ChallengeRefusal> {
    let elder = sender.ok_or(ChallengeRefusal::NotAnElder)?;
    if challenge.challenger != node_name(&elder.0) {
        return Err(ChallengeRefusal::OtherChallenger);
    }
    if challenge.holder != node_name(&me.0) {
        return Err(ChallengeRefusal::OtherHolder);
    }
    if challenge.items.len() > MAX_CHALLENGE_ITEMS {
        return Err(ChallengeRefusal::TooLarge);
    }
    match challenge.items.iter().find(|item| size_of(&item.address).is_some_and(|size| !challenge.drew(item, size))) {
        Some(item) => Err(ChallengeRefusal::NotDrawn(item.address)),
        None => Ok(()),
    }
}

/// How the audit sent to a holder was answered, as the storage service saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditReply {
    /// An answer signed by the holder, already judged against the challenge, that came
    /// back `after` this long.
    Judged {
        /// What the proofs show.
        outcome: Outcome,
        /// From sending the challenge to the answer.
        after: Duration,
    },
    /// The holder said it lacks a chunk.
    Missing,
    /// Any other reply (a refusal, say): it proves nothing.
    Other,
    /// No reply before the deadline.
    Silent,
}

/// What this elder's audits showed since it last reported on an epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochAudits {
    /// Per holder: the chunks it was challenged on, and how many of them it proved.
    pub counts: BTreeMap<AccountId, (u32, u32)>,
    /// Audits per holder, by outcome.
    pub tallies: BTreeMap<AccountId, ChallengeTally>,
}

impl EpochAudits {
    /// This elder's verdict on each holder it audited: what it reports. Challenges are
    /// drawn afresh each round from the holder's whole duty, so over an epoch they are a
    /// sample of all it must hold, and the share proven estimates the share held.
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.counts
            .iter()
            .map(|(holder, (sampled, passed))| Verdict { holder: *holder, sampled: *sampled, passed: *passed })
            .collect()
    }

    /// What the section machine takes for its report.
    pub fn summary(self) -> AuditSummary {
        AuditSummary { verdicts: self.verdicts(), tallies: self.tallies }
    }

    fn record(&mut self, holder: AccountId, audit: &Audit, outcome: Outcome) {
        self.tallies.entry(holder).or_default().add(outcome);
        if outcome == Outcome::Excused {
            return;
        }
        let challenged = u32::try_from(audit.challenge.items.len()).unwrap_or(u32::MAX);
        let counts = self.counts.entry(holder).or_default();
        counts.0 = counts.0.saturating_add(challenged);
        if outcome == Outcome::Passed {
            counts.1 = counts.1.saturating_add(challenged);
        }
    }
}

/// What a store payment still needs before the chunks it lists may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentDue {
    /// This node accepted the payment before; its list only has to be the one its memo
    /// names (it was, or the check would have failed).
    AlreadyAccepted,
    /// A payment seen for the first time, which paid enough for everything it lists;
    /// its certificate must still be verified and its list kept before the book accepts it.
    New,
}

/// The settings the book decides with.
#[derive(Debug, Clone, Copy)]
pub struct BookSettings {
    /// How long after a holder's connection came or went its silence is excused.
    pub grace: Duration,
    /// Chunks challenged per holder per round.
    pub audit_chunks: usize,
    /// How long a holder has to answer a challenge: well under the time fetching the
    /// challenged chunks from another node takes, so that only a holder reading its own
    /// copy can meet it (the margin is measured by `audit-bench`, `specs/storage.md`).
    pub answer_deadline: Duration,
}

/// What the network says of a member's connection: whether one is open, and how many
/// times one was opened after none was (a restart begins a new session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// A connection is open now.
    pub up: bool,
    /// Connections opened while none was open, since this node started.
    pub sessions: u64,
}

/// What this node last saw of a member's connection: whether it was up, since when, how
/// often it came or went this epoch, and the sessions the network had counted.
#[derive(Debug, Clone, Copy)]
struct LinkWatch {
    up: bool,
    since: Duration,
    changes: u32,
    sessions: u64,
}

/// The storage book of one node; see the module documentation.
#[derive(Debug)]
pub struct StorageBook {
    me: AccountId,
    /// The section's pool, which store payments pay.
    pool: AccountId,
    settings: BookSettings,
    /// Accepted store payments, by certificate id, with the chunks each pays for.
    payments: BTreeMap<Digest, BTreeMap<ChunkAddress, u64>>,
    /// The same lists in the order they were kept, which is their memo's order: what a
    /// holder is handed, since the memo is the digest of the list in that order.
    lists: BTreeMap<Digest, Vec<(ChunkAddress, u64)>>,
    /// Every chunk an accepted payment lists, with its size: what this node agrees to
    /// hold before the section's registry names it.
    listed: BTreeMap<ChunkAddress, u64>,
    /// Chunks this node placed on all their holders whose receipts the log has not
    /// ordered yet: a repeat upload of one is not charged again meanwhile.
    placed: BTreeSet<ChunkAddress>,
    /// Quoted fullness, oldest first: (when, used, capacity).
    prices: VecDeque<(Duration, u64, u64)>,
    app_prices: BTreeMap<AppId, VecDeque<(Duration, Amount)>>,
    statuses: BTreeMap<AccountId, (u64, u64)>,
    /// Rechecks asked of holders this epoch after a failed audit, by (holder, chunk): how
    /// many asks, or [`RECOPY_ASKS`] once one was taken.
    recopied: BTreeMap<(AccountId, ChunkAddress), u8>,
    /// Per member: what this node last saw of its connection.
    connections: BTreeMap<AccountId, LinkWatch>,
    farmers: BTreeMap<AccountId, (ChallengeTally, Option<AuditRecord>)>,
    /// Members whose last audit from this node went unanswered past their grace.
    silent: BTreeSet<AccountId>,
    /// Per member: when its current forwarding window began, and the new payments it had
    /// checked in it.
    forwarded: BTreeMap<AccountId, (Duration, u32)>,
    /// Chunks whose copy here is being rechecked, and per elder the rechecks it started in
    /// its current window (as `forwarded` counts).
    rechecking: BTreeSet<ChunkAddress>,
    rechecks_asked: BTreeMap<AccountId, (Duration, u32)>,
    /// Lost members (down or silent) this node has made stand-in copies for; a member
    /// leaves the set when it is heard from again.
    stood_in: BTreeSet<AccountId>,
    /// The stand-in copies planned for the members in `stood_in`, so a plan made again
    /// (another loss, or a registry that grew) sends none twice; and the epoch and size of
    /// the registry the last plan read.
    stood_in_copies: BTreeSet<(ChunkAddress, [u8; 32])>,
    stood_in_registry: Option<(u64, usize)>,
    /// When the stand-in copies that could not be made are planned again.
    stand_in_retry: Option<Duration>,
    /// When the last stand-in plan was made, and when each member was last planned for as
    /// lost: replans are at most one a grace period apart, and so are a flapping member's.
    stand_in_planned: Option<Duration>,
    planned_for: BTreeMap<AccountId, Duration>,
    /// Registered chunks held here that placement put on others at the last sweep.
    unplaced: BTreeSet<ChunkAddress>,
    epoch_audits: EpochAudits,
}

/// Whether a recheck asked of this node starts ([`StorageBook::start_recheck`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecheckStart {
    /// This ask starts one.
    Started,
    /// One of this chunk is under way already, and serves this ask too.
    UnderWay,
    /// [`MAX_RECHECKS`] are under way.
    Busy,
    /// The asking elder has started [`RECHECKS_PER_ELDER`] in this window.
    OverBudget,
}

/// Counts one more for `member` in `counts` at `now`, whose windows last
/// [`FORWARD_WINDOW`]: whether it is within `budget` (counted only if so).
fn count_within(
    counts: &mut BTreeMap<AccountId, (Duration, u32)>,
    member: AccountId,
    now: Duration,
    budget: u32,
) -> bool {
    let (since, count) = counts.entry(member).or_insert((now, 0));
    if now.saturating_sub(*since) >= FORWARD_WINDOW {
        (*since, *count) = (now, 0);
    }
    if *count >= budget {
        return false;
    }
    *count += 1;
    true
}

impl StorageBook {
    /// A book for node `me` of the section whose pool is `pool`, from the accepted
    /// payments' lists (payment, chunk, size) its files hold.
    pub fn new(
        me: AccountId,
        pool: AccountId,
        settings: BookSettings,
        payments: impl IntoIterator<Item = (Digest, ChunkAddress, u64)>,
    ) -> Self {
        let mut paid: BTreeMap<Digest, BTreeMap<ChunkAddress, u64>> = BTreeMap::new();
        let mut lists: BTreeMap<Digest, Vec<(ChunkAddress, u64)>> = BTreeMap::new();
        let mut listed = BTreeMap::new();
        for (id, address, size) in payments {
            paid.entry(id).or_default().insert(address, size);
            lists.entry(id).or_default().push((address, size));
            listed.insert(address, size);
        }
        StorageBook {
            me,
            pool,
            settings,
            payments: paid,
            lists,
            listed,
            placed: BTreeSet::new(),
            prices: VecDeque::new(),
            app_prices: BTreeMap::new(),
            statuses: BTreeMap::new(),
            recopied: BTreeMap::new(),
            silent: BTreeSet::new(),
            forwarded: BTreeMap::new(),
            rechecking: BTreeSet::new(),
            rechecks_asked: BTreeMap::new(),
            stood_in: BTreeSet::new(),
            stood_in_copies: BTreeSet::new(),
            stood_in_registry: None,
            stand_in_retry: None,
            stand_in_planned: None,
            planned_for: BTreeMap::new(),
            unplaced: BTreeSet::new(),
            connections: BTreeMap::new(),
            farmers: BTreeMap::new(),
            epoch_audits: EpochAudits::default(),
        }
    }

    /// How many chunks, and bytes, `node` must hold of `registry` by `placement`.
    pub fn duty_of(
        &self,
        registry: &BTreeMap<ChunkAddress, u64>,
        node: &AccountId,
        placement: &Placement,
    ) -> (u64, u64) {
        let Some(name) = placement.name_of(node) else { return (0, 0) };
        assigned(registry, placement.names(), &name)
            .fold((0, 0), |(count, bytes), (_, size)| (count + 1, bytes.saturating_add(size)))
    }

    /// This round's audits of every other holder of `registry`, chosen by `randomness`.
    /// The challenges name the holder and this node by their keys' names, which no
    /// placement changes.
    pub fn audit_plan(
        &self,
        registry: &BTreeMap<ChunkAddress, u64>,
        placement: &Placement,
        randomness: &[u8; 32],
        round: u64,
    ) -> Vec<(AccountId, Audit)> {
        let challenger = node_name(&self.me.0);
        duties(registry, placement.names())
            .into_iter()
            .filter_map(|(name, held)| Some((placement.member_named(&name)?, held)))
            .filter(|(holder, _)| *holder != self.me)
            .map(|(holder, held)| {
                let audit =
                    audit_of(node_name(&holder.0), challenger, held, randomness, round, self.settings.audit_chunks);
                (holder, audit)
            })
            // One challenge per chunk, so each chunk is judged on its own and a verdict
            // counts chunks: a holder that lost a tenth of its chunks fails a tenth of them.
            .flat_map(|(holder, audit)| {
                let Audit {
                    holder: name,
                    challenge: Challenge { nonce, seed, holder: named, challenger, items },
                    sizes,
                } = audit;
                items.into_iter().zip(sizes).map(move |(item, size)| {
                    let single = Challenge { nonce, seed, holder: named, challenger, items: vec![item] };
                    (holder, Audit { holder: name, challenge: single, sizes: vec![size] })
                })
            })
            .collect()
    }

    /// The copies of `registry`'s chunks this node, placed at `me`, makes after
    /// membership went from `before` to `after` (placement names): those of chunks it is
    /// the closest elder to, so each chunk has one copier.
    pub fn repair_plan(
        &self,
        registry: &BTreeMap<ChunkAddress, u64>,
        before: &[[u8; 32]],
        after: &[[u8; 32]],
        elders: &[[u8; 32]],
        me: [u8; 32],
    ) -> Vec<Repair> {
        acre_proofs::placement::repairs(registry, before, after)
            .into_iter()
            .filter(|repair| closest(&repair.chunk, elders, 1).first() == Some(&me))
            .collect()
    }

    /// The stand-in copies to make at `now`: for the members lost to this node (a
    /// connection down past the grace period, or an audit unanswered past it, so a
    /// restart or a blip copies nothing), the copies their removal would make, of the
    /// chunks this node is the copier of among the elders left. They are made at
    /// detection rather than at removal, which waits for a quorum's complaints after
    /// `unresponsive_after`: the member that would hold each chunk next (its fifth
    /// closest) holds it already, so a lost holder's chunks stand on four live copies
    /// again within a round, and its removal later finds nothing left to copy. A member
    /// that comes back is not punished: it keeps its chunks and its pay, and the stand-in
    /// keeps one copy too many until placement moves.
    ///
    /// A plan is made when a member is newly lost and again whenever the registry (of
    /// `epoch`, and its size) is newer than the one planned against, since a chunk paid
    /// for while its holder was alive may be registered only after the loss; a copy
    /// already planned is not planned twice unless it failed ([`StorageBook::stand_ins_failed`]).
    /// A plan reads the whole registry, so a member's loss is planned for at once but at
    /// most once a grace period, and plans for a grown registry or a retry are at most one
    /// a grace period apart: neither a member that flaps nor a registry that grows with
    /// every upload can make this node plan four times a second.
    /// A member heard from again leaves the lost set; one that flaps
    /// makes each of its chunks be offered to the same stand-in again, which has it.
    pub fn stand_in_plan(
        &mut self,
        registry: &BTreeMap<ChunkAddress, u64>,
        epoch: u64,
        placement: &Placement,
        elders: &[AccountId],
        now: Duration,
    ) -> Vec<Repair> {
        let Some(me) = placement.name_of(&self.me) else { return Vec::new() };
        let down = |member: &AccountId| {
            self.connections.get(member).is_some_and(|watch| !watch.up) && !self.settling(member, now)
        };
        let lost: BTreeSet<AccountId> = placement
            .members()
            .filter(|member| *member != self.me)
            .filter(|member| self.silent.contains(member) || down(member))
            .collect();
        // A member heard from again leaves the lost set, and the copies planned are
        // forgotten: if it is lost again, its copies are planned afresh (its stand-ins may
        // have swept theirs meanwhile), and the new holders say which they hold already.
        let before = self.stood_in.len();
        self.stood_in.retain(|member| lost.contains(member));
        if self.stood_in.len() < before {
            self.stood_in_copies.clear();
        }
        if self.stood_in.is_empty() {
            self.stand_in_retry = None;
        }
        let grace = self.settings.grace;
        let waited = |since: Option<&Duration>| since.is_none_or(|at| now.saturating_sub(*at) >= grace);
        // Lost and not planned for within the grace: a member that flaps is planned for
        // once a grace, however often it drops; another member's loss is planned at once.
        let newly = lost.iter().any(|member| !self.stood_in.contains(member) && waited(self.planned_for.get(member)));
        let registry_now = Some((epoch, registry.len()));
        let registry_moved = !self.stood_in.is_empty() && self.stood_in_registry != registry_now;
        let retry_due = !self.stood_in.is_empty() && self.stand_in_retry.is_some_and(|at| now >= at);
        if !(newly || ((registry_moved || retry_due) && waited(self.stand_in_planned.as_ref()))) {
            return Vec::new();
        }
        self.stand_in_planned = Some(now);
        let entering: Vec<AccountId> = lost.difference(&self.stood_in).copied().collect();
        self.planned_for.extend(entering.into_iter().map(|member| (member, now)));
        self.stand_in_retry = None;
        self.stood_in = lost;
        self.stood_in_registry = registry_now;
        let after = placement.without(&self.stood_in);
        let elders_left: Vec<[u8; 32]> = elders.iter().filter_map(|elder| after.name_of(elder)).collect();
        let plan = self.repair_plan(registry, placement.names(), after.names(), &elders_left, me);
        plan.into_iter().filter(|repair| self.stood_in_copies.insert((repair.chunk, repair.to))).collect()
    }

    /// Stand-in copies (chunk, new holder) that could not be made at `now` (no source
    /// answered, or the new holder did not store it): planned again a grace period later,
    /// not before, so a new holder that is down too is not asked four times a second.
    pub fn stand_ins_failed(&mut self, failed: impl IntoIterator<Item = (ChunkAddress, [u8; 32])>, now: Duration) {
        let mut forgotten = false;
        for copy in failed {
            forgotten |= self.stood_in_copies.remove(&copy);
        }
        if forgotten {
            self.stand_in_retry = Some(now + self.settings.grace);
        }
    }

    /// The copies held here that are no longer this node's to hold: chunks of `registry`
    /// among `held` that `placement` puts on others, now and at the last
    /// sweep too (a placement that flickers while a member joins or is lost deletes
    /// nothing), and placed only on `seasoned` members, each with the members it is
    /// placed on. The shell deletes one only once every one of those says it holds the
    /// chunk. What this frees: a stand-in's copy once the lost member is back
    /// (`stand_in_plan`), and the copy a holder kept after a newcomer took its place, once
    /// the newcomer has served its epochs. Chunks outside the registry (paid and still
    /// being placed) are never surplus. `specs/section-log.md` says what liars can do.
    pub fn surplus(
        &mut self,
        held: &[ChunkAddress],
        registry: &BTreeMap<ChunkAddress, u64>,
        placement: &Placement,
        seasoned: &BTreeSet<AccountId>,
    ) -> Vec<(ChunkAddress, Vec<AccountId>)> {
        let me = self.me;
        let unplaced: BTreeSet<ChunkAddress> = held
            .iter()
            .filter(|chunk| registry.contains_key(chunk) && !placement.holders(chunk).any(|holder| holder == me))
            .copied()
            .collect();
        let due = unplaced
            .intersection(&self.unplaced)
            .map(|chunk| (*chunk, placement.holders(chunk).collect::<Vec<AccountId>>()))
            .filter(|(_, holders)| holders.len() == COPIES && holders.iter().all(|holder| seasoned.contains(holder)))
            .collect();
        self.unplaced = unplaced;
        due
    }

    /// Whether `member` may have one more new forwarded payment checked here at `now`
    /// (counted if so): at most [`FORWARDED_PAYMENTS`] per [`FORWARD_WINDOW`]. Only members
    /// forward payments, so the map stays as large as the section.
    pub fn admit_forwarded_payment(&mut self, member: AccountId, now: Duration) -> bool {
        count_within(&mut self.forwarded, member, now, FORWARDED_PAYMENTS)
    }

    /// Whether a recheck of this node's copy of `chunk`, asked by `elder` after its audit
    /// found the copy bad, starts at `now`: one per chunk at a time however many elders
    /// ask (each that finds the fault says so, and one fetch serves them all), at most
    /// [`MAX_RECHECKS`] at once and [`RECHECKS_PER_ELDER`] per elder per window. Started
    /// ones end with [`StorageBook::finish_recheck`].
    pub fn start_recheck(&mut self, elder: AccountId, chunk: ChunkAddress, now: Duration) -> RecheckStart {
        if self.rechecking.contains(&chunk) {
            RecheckStart::UnderWay
        } else if self.rechecking.len() >= MAX_RECHECKS {
            RecheckStart::Busy
        } else if !count_within(&mut self.rechecks_asked, elder, now, RECHECKS_PER_ELDER) {
            RecheckStart::OverBudget
        } else {
            self.rechecking.insert(chunk);
            RecheckStart::Started
        }
    }

    /// A recheck started here is over.
    pub fn finish_recheck(&mut self, chunk: &ChunkAddress) {
        self.rechecking.remove(chunk);
    }

    /// What a member said of its bytes held and offered.
    pub fn record_status(&mut self, node: AccountId, used: u64, capacity: u64) {
        self.statuses.insert(node, (used, capacity));
    }

    /// What a member last said of its bytes held and offered.
    pub fn status_of(&self, node: &AccountId) -> Option<(u64, u64)> {
        self.statuses.get(node).copied()
    }

    /// Bytes held and offered by a section of members as full as its median member, from
    /// what the members last said. The price follows the fill (used ÷ capacity), and one
    /// member's answer must not set it: a sum let one lying `used = u64::MAX` make every
    /// quote `section_full`. The lower median of the members' fills lies within the
    /// honest members' fills while fewer than half lie, whichever way they lie.
    pub fn fullness(&self) -> (u64, u64) {
        let mut fills: Vec<(u64, u64)> = self
            .statuses
            .values()
            .filter(|(_, capacity)| *capacity > 0)
            .map(|(used, capacity)| ((*used).min(*capacity), *capacity))
            .collect();
        // By fill, compared exactly: a ÷ b < c ÷ d as a·d < c·b.
        fills.sort_by(|(a, b), (c, d)| (u128::from(*a) * u128::from(*d)).cmp(&(u128::from(*c) * u128::from(*b))));
        let Some((used, capacity)) = fills.get(fills.len().saturating_sub(1) / 2) else { return (0, 0) };
        let members = fills.len() as u64;
        (used.saturating_mul(members), capacity.saturating_mul(members))
    }

    /// The section's fullness now, remembered as a quoted price: returns (used, capacity).
    pub fn quote(&mut self, now: Duration) -> (u64, u64) {
        let (used, capacity) = self.fullness();
        while self.prices.front().is_some_and(|(at, _, _)| now.saturating_sub(*at) > QUOTE_VALIDITY) {
            self.prices.pop_front();
        }
        if let Some(last) = self.prices.back_mut().filter(|(at, _, _)| now.saturating_sub(*at) < SAMPLE_SPACING) {
            let cheaper = match (store_cost(1, used, capacity), store_cost(1, last.1, last.2)) {
                (Some(new), Some(old)) => new < old,
                (_, None) => true,
                (None, Some(_)) => false,
            };
            if cheaper {
                *last = (last.0, used, capacity);
            }
        } else {
            self.prices.push_back((now, used, capacity));
        }
        (used, capacity)
    }

    /// The lowest price for `bytes` quoted within the validity window.
    pub fn honoured_price(&self, bytes: u64) -> Option<Amount> {
        self.prices.iter().filter_map(|(_, used, capacity)| store_cost(bytes, *used, *capacity)).min()
    }

    /// The app's price per upload: `current` is what the section log says now; the lowest
    /// price it had in the last [`QUOTE_VALIDITY`] is honoured, so a raise never catches
    /// a payment already made on the old quote.
    pub fn app_price(&mut self, app: &AppId, current: Option<Amount>, now: Duration) -> Result<Amount, BookError> {
        let current = current.ok_or(BookError::UnknownApp(*app))?;
        let history = self.app_prices.entry(*app).or_default();
        history.retain(|(at, _)| now.saturating_sub(*at) < QUOTE_VALIDITY);
        if history.back().is_none_or(|(_, price)| *price != current) {
            history.push_back((now, current));
        }
        while history.len() > APP_PRICES {
            history.pop_front();
        }
        Ok(history.iter().map(|(_, price)| *price).min().unwrap_or(current))
    }

    /// Checks a store payment whose memo must name exactly `list`: one accepted before
    /// needs nothing more; a new one must pay the honoured price for everything it lists
    /// plus the app's fee. `app_price` is the app's current price by the section log, if
    /// the payment names an app.
    pub fn check_payment(
        &mut self,
        id: &Digest,
        order: &TransferOrder,
        list: &[(ChunkAddress, u64)],
        app_price: Option<Amount>,
        now: Duration,
    ) -> Result<PaymentDue, BookError> {
        let Some(&chunk) = list.first() else {
            return Err(BookError::InvalidChunk("a store payment lists at least one chunk".into()));
        };
        let named: Vec<([u8; 32], u64)> = list.iter().map(|(address, size)| (address.0, *size)).collect();
        let known = self.payments.contains_key(id);
        let required = if known {
            Amount::ZERO
        } else {
            check_entries(list)?;
            let bytes = billable_bytes(list.iter().map(|(_, size)| *size))
                .ok_or_else(|| BookError::InvalidChunk("the listed sizes overflow".into()))?;
            self.quote(now);
            let store = self.honoured_price(bytes).ok_or(BookError::SectionFull)?;
            let fee = self.app_fee(order, app_price, now)?;
            store.checked_add(fee).ok_or_else(|| BookError::InvalidChunk("the price overflows".into()))?
        };
        check_store_payment(order, &self.pool, &named, &(chunk.0 .0, chunk.1), required)?;
        Ok(if known { PaymentDue::AlreadyAccepted } else { PaymentDue::New })
    }

    /// The app fee a payment through an app carries, checked against the app's price.
    fn app_fee(&mut self, order: &TransferOrder, current: Option<Amount>, now: Duration) -> Result<Amount, BookError> {
        let Some(app) = order.app else { return Ok(Amount::ZERO) };
        let price = self.app_price(&app, current, now)?;
        let fee = app_fee_of(order).map_or(Amount::ZERO, |(_, fee)| fee);
        if fee < price {
            return Err(BookError::Payment(StorePaymentError::TooSmall { paid: fee, required: price }));
        }
        Ok(fee)
    }

    /// Of a checked payment's `list`, the entries not kept yet: what must be written
    /// before [`StorageBook::payment_kept`] is told of them.
    pub fn unkept(&self, id: &Digest, list: &[(ChunkAddress, u64)]) -> Vec<(ChunkAddress, u64)> {
        let kept = self.payments.get(id);
        let mut seen = BTreeSet::new();
        list.iter()
            .filter(|(address, _)| kept.is_none_or(|kept| !kept.contains_key(address)) && seen.insert(*address))
            .copied()
            .collect()
    }

    /// The payment is verified and these entries of its list are on disk.
    pub fn payment_kept(&mut self, id: Digest, entries: &[(ChunkAddress, u64)]) {
        self.payments.entry(id).or_default().extend(entries.iter().copied());
        self.lists.entry(id).or_default().extend(entries.iter().copied());
        self.listed.extend(entries.iter().copied());
    }

    /// The chunks and sizes the accepted payment `id` lists, in its memo's order, to hand
    /// a holder that has not seen it; `None` for a payment this node did not accept.
    pub fn payment_list(&self, id: &Digest) -> Option<Vec<(ChunkAddress, u64)>> {
        self.lists.get(id).cloned()
    }

    /// Every accepted payment with the chunks it lists, in its memo's order.
    pub fn payment_lists(&self) -> impl Iterator<Item = (&Digest, &Vec<(ChunkAddress, u64)>)> {
        self.lists.iter()
    }

    /// This node placed `chunk` on all its holders.
    pub fn placed(&mut self, chunk: ChunkAddress) {
        self.placed.insert(chunk);
    }

    /// The size of `chunk` if this node placed it on all its holders (and the log has not
    /// ordered its receipts yet).
    pub fn placed_size(&self, chunk: &ChunkAddress) -> Option<u64> {
        self.placed.contains(chunk).then(|| self.listed.get(chunk).copied()).flatten()
    }

    /// Whether `chunk` is stored: in the agreed `registry`, or placed by this node and
    /// waiting for the log (forgotten here once the registry has it).
    pub fn is_stored(&mut self, chunk: &ChunkAddress, registry: Option<&BTreeMap<ChunkAddress, u64>>) -> bool {
        if registry.is_some_and(|registry| registry.contains_key(chunk)) {
            self.placed.remove(chunk);
            return true;
        }
        self.placed.contains(chunk)
    }

    /// Whether an accepted payment lists `chunk` at `size`: a holder stores only chunks
    /// someone paid for (or the registry names, for repairs).
    pub fn is_paid_for(&self, chunk: &ChunkAddress, size: u64) -> bool {
        self.listed.get(chunk) == Some(&size)
    }

    /// Whether `id` is a payment this node accepted.
    pub fn is_accepted(&self, id: &Digest) -> bool {
        self.payments.contains_key(id)
    }

    /// The size the accepted payment `id` paid for `address` at, if it lists it.
    pub fn paid_size(&self, id: &Digest, address: &ChunkAddress) -> Option<u64> {
        self.payments.get(id)?.get(address).copied()
    }

    /// Notes what the network says of each member's connection at `now`. A member first
    /// seen counts as having changed when this node started (`started`). Looks are
    /// samples, so a restart quicker than the gap between two looks shows only as a new
    /// session: it counts as the going and the coming it was.
    pub fn observe_connections(
        &mut self,
        links: &BTreeMap<AccountId, Link>,
        members: &[AccountId],
        now: Duration,
        started: Duration,
    ) {
        // What is kept per member is kept for members only.
        self.silent.retain(|member| members.contains(member));
        self.forwarded.retain(|member, _| members.contains(member));
        self.rechecks_asked.retain(|member, _| members.contains(member));
        self.stood_in.retain(|member| members.contains(member));
        self.planned_for.retain(|member, _| members.contains(member));
        self.statuses.retain(|member, _| members.contains(member));
        self.connections.retain(|member, _| members.contains(member));
        for member in members {
            let link = links.get(member).copied();
            let up = link.is_some_and(|link| link.up);
            let watch = self.connections.entry(*member).or_insert(LinkWatch {
                up,
                since: started,
                changes: 0,
                sessions: link.map_or(0, |link| link.sessions),
            });
            let sessions = link.map_or(watch.sessions, |link| link.sessions.max(watch.sessions));
            let begun = u32::try_from(sessions - watch.sessions).unwrap_or(u32::MAX);
            // Each session begun is one coming, after a going unless it was the first
            // change from down; ending down adds the last going.
            let changes = match begun {
                0 => u32::from(watch.up != up),
                n => n.saturating_mul(2).saturating_add(u32::from(watch.up)).saturating_sub(u32::from(up)),
            };
            if changes > 0 {
                *watch = LinkWatch { up, since: now, changes: watch.changes.saturating_add(changes), sessions };
            }
        }
    }

    /// The excuse rule: a holder whose connection came or went within the grace period
    /// (or that this node has not watched that long) is not held to its silence — once
    /// per epoch. A restart is one going and one coming ([`RESTART_CHANGES`]); a holder
    /// whose connection changes more often in an epoch is dropping it to dodge
    /// challenges it cannot answer, and its silence counts.
    pub fn settling(&self, node: &AccountId, now: Duration) -> bool {
        self.connections.get(node).is_none_or(|watch| {
            watch.changes <= RESTART_CHANGES && now.saturating_sub(watch.since) < self.settings.grace
        })
    }

    /// What an audit's reply counts as; a silent holder is excused while settling at
    /// `now`, and proofs that came after the answer deadline are late: they show the
    /// bytes exist somewhere, not that the holder keeps them.
    pub fn outcome_of(&self, holder: &AccountId, reply: AuditReply, now: Duration) -> Outcome {
        match reply {
            AuditReply::Judged { outcome: Outcome::Passed, after } if after > self.settings.answer_deadline => {
                Outcome::Late
            }
            AuditReply::Judged { outcome, .. } => outcome,
            AuditReply::Missing => Outcome::Missing,
            AuditReply::Other => Outcome::WrongBytes,
            AuditReply::Silent if self.settling(holder, now) => Outcome::Excused,
            AuditReply::Silent => Outcome::Timeout,
        }
    }

    /// Keeps what an audit showed, for the epoch's report and the farmer's view.
    pub fn record_audit(&mut self, holder: AccountId, audit: &Audit, outcome: Outcome, record: AuditRecord) {
        self.epoch_audits.record(holder, audit, outcome);
        match outcome {
            Outcome::Timeout => {
                self.silent.insert(holder);
            }
            // An excuse is not an answer: a holder that went silent and then lost its
            // connection (a killed process, seen late over QUIC) is still lost, and its
            // stand-in copies do not wait out a restart's grace.
            Outcome::Excused => {}
            _ => {
                self.silent.remove(&holder);
            }
        }
        let entry = self.farmers.entry(holder).or_default();
        entry.0.add(outcome);
        entry.1 = Some(record);
    }

    /// Hands over what the audits showed since the last call, and starts afresh.
    pub fn take_epoch_audits(&mut self) -> EpochAudits {
        self.recopied.clear();
        self.connections.values_mut().for_each(|watch| watch.changes = 0);
        std::mem::take(&mut self.epoch_audits)
    }

    /// Whether `holder`, whose audit on `chunk` came out `outcome`, should be asked now to
    /// recheck its copy: only for wrong bytes or a missing chunk, until it takes an ask
    /// ([`StorageBook::recopy_taken`]) and at most [`RECOPY_ASKS`] times per (holder,
    /// chunk) per epoch, and for at most [`MAX_RECOPIES`] (holder, chunk) pairs per epoch
    /// in all. A holder that refuses or ignores the asks so cannot draw one a round.
    pub fn recopy_due(&mut self, holder: AccountId, chunk: ChunkAddress, outcome: Outcome) -> bool {
        if !matches!(outcome, Outcome::WrongBytes | Outcome::Missing) {
            return false;
        }
        if !self.recopied.contains_key(&(holder, chunk)) && self.recopied.len() >= MAX_RECOPIES {
            return false;
        }
        let asks = self.recopied.entry((holder, chunk)).or_insert(0);
        if *asks >= RECOPY_ASKS {
            return false;
        }
        *asks += 1;
        true
    }

    /// `holder` took the recheck of `chunk`: it fetches a good copy itself, so it is not
    /// asked again this epoch.
    /// An ask asked in an epoch already over changes nothing in the new one.
    pub fn recopy_taken(&mut self, holder: AccountId, chunk: ChunkAddress) {
        if let Some(asks) = self.recopied.get_mut(&(holder, chunk)) {
            *asks = RECOPY_ASKS;
        }
    }

    /// Every audit of `node` since this node started, and the latest.
    pub fn audits_of(&self, node: &AccountId) -> (ChallengeTally, Option<AuditRecord>) {
        self.farmers.get(node).cloned().unwrap_or((ChallengeTally::default(), None))
    }
}

/// Every listed chunk has a size a chunk can have, and the list is not absurdly long.
pub fn check_entries(entries: &[(ChunkAddress, u64)]) -> Result<(), BookError> {
    if entries.len() > MAX_ENTRIES {
        return Err(BookError::InvalidChunk(format!("{} chunks in one list; at most {MAX_ENTRIES}", entries.len())));
    }
    match entries.iter().find(|(_, size)| *size == 0 || *size > MAX_CHUNK_BYTES as u64) {
        Some((address, size)) => Err(BookError::InvalidChunk(format!("chunk {address} cannot be {size} bytes"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::economics::pool_account;
    use ed25519_dalek::SigningKey;

    const MIB: u64 = 1 << 20;

    /// Placement with each member named by its key, as founders of a test network are.
    fn placed(members: &[AccountId]) -> Placement {
        Placement::new(members.iter().map(|id| (*id, node_name(&id.0))))
    }

    fn holders_of(chunk: &ChunkAddress, members: &[AccountId]) -> Vec<AccountId> {
        placed(members).holders(chunk).collect()
    }

    fn names(members: &[AccountId]) -> Vec<[u8; 32]> {
        members.iter().map(|id| node_name(&id.0)).collect()
    }

    fn members(count: u8) -> Vec<AccountId> {
        (1..=count).map(|n| AccountId::of(&SigningKey::from_bytes(&[n; 32]))).collect()
    }

    /// The links of `up` as first sessions, everyone else down.
    fn links(up: &BTreeSet<AccountId>) -> BTreeMap<AccountId, Link> {
        up.iter().map(|member| (*member, Link { up: true, sessions: 1 })).collect()
    }

    fn book(me: AccountId) -> StorageBook {
        StorageBook::new(me, pool_account(""), settings(), [])
    }

    fn settings() -> BookSettings {
        BookSettings { grace: Duration::from_secs(20), audit_chunks: 16, answer_deadline: Duration::from_millis(500) }
    }

    fn chunk(n: u8) -> ChunkAddress {
        ChunkAddress([n; 32])
    }

    #[test]
    fn a_copy_placed_elsewhere_at_two_sweeps_in_a_row_is_surplus_with_its_holders() {
        let all = members(12);
        let me = all[0];
        let mut book = book(me);
        // Spread over the whole address space, so placement differs from chunk to chunk.
        let chunks: Vec<ChunkAddress> = (0..=u8::MAX).map(chunk).collect();
        let registry: BTreeMap<ChunkAddress, u64> = chunks.iter().map(|chunk| (*chunk, MIB)).collect();
        let placed_here = |members: &[AccountId], chunk: &ChunkAddress| holders_of(chunk, members).contains(&me);
        // A chunk that comes to this node while one of its holders is gone.
        let (back, gone) = chunks
            .iter()
            .filter(|chunk| !placed_here(&all, chunk))
            .find_map(|chunk| {
                let holders = holders_of(chunk, &all);
                holders
                    .into_iter()
                    .find(|holder| {
                        let without: Vec<AccountId> = all.iter().copied().filter(|m| m != holder).collect();
                        placed_here(&without, chunk)
                    })
                    .map(|holder| (*chunk, holder))
            })
            .expect("such a chunk");
        let without: Vec<AccountId> = all.iter().copied().filter(|member| *member != gone).collect();
        let elsewhere_both: BTreeSet<ChunkAddress> =
            chunks.iter().copied().filter(|c| !placed_here(&all, c) && !placed_here(&without, c)).collect();
        assert!(!elsewhere_both.is_empty());
        let mut unregistered = ChunkAddress([0; 32]);
        unregistered.0[0] = 1;
        let mut held = chunks.clone();
        held.push(unregistered);

        let seasoned: BTreeSet<AccountId> = all.iter().copied().collect();
        assert!(book.surplus(&held, &registry, &placed(&all), &seasoned).is_empty(), "the first sweep only notes them");
        // A newcomer placed on a chunk holds its copy back until it has served its epochs.
        let newcomer = *holders_of(elsewhere_both.first().expect("one"), &without).first().expect("a holder");
        let unseasoned: BTreeSet<AccountId> = seasoned.iter().copied().filter(|m| *m != newcomer).collect();
        let held_back: BTreeSet<ChunkAddress> = book
            .surplus(&held, &registry, &placed(&without), &unseasoned)
            .into_iter()
            .map(|(chunk, _)| chunk)
            .collect();
        let with_newcomer: BTreeSet<ChunkAddress> =
            elsewhere_both.iter().copied().filter(|chunk| holders_of(chunk, &without).contains(&newcomer)).collect();
        assert!(!with_newcomer.is_empty());
        let expected: BTreeSet<ChunkAddress> = elsewhere_both.difference(&with_newcomer).copied().collect();
        assert_eq!(held_back, expected, "placed elsewhere at both sweeps, on seasoned members only");
        let elsewhere_now: BTreeSet<ChunkAddress> =
            chunks.iter().copied().filter(|c| !placed_here(&without, c)).collect();
        let due: BTreeMap<ChunkAddress, Vec<AccountId>> =
            book.surplus(&held, &registry, &placed(&without), &seasoned).into_iter().collect();
        assert_eq!(due.keys().copied().collect::<BTreeSet<_>>(), elsewhere_now, "once the newcomer is seasoned");
        for (chunk, holders) in &due {
            assert_eq!(holders, &holders_of(chunk, &without), "asked of the four it is placed on");
        }
        assert!(!due.contains_key(&unregistered), "a chunk still being placed is never surplus");
        let after_return: BTreeSet<ChunkAddress> =
            book.surplus(&held, &registry, &placed(&all), &seasoned).into_iter().map(|(chunk, _)| chunk).collect();
        assert!(!after_return.contains(&back), "placed here at the last sweep: kept");
        assert!(after_return.iter().all(|chunk| !placed_here(&all, chunk)));
    }

    fn payment(to: AccountId, amount: Amount, chunks: &[(ChunkAddress, u64)]) -> TransferOrder {
        let memo = acre_ledger::economics::store_memo(&chunks.iter().map(|(a, s)| (a.0, *s)).collect::<Vec<_>>());
        let network = acre_ledger::Digest::default();
        TransferOrder { network, from: members(9)[8], to, amount, sequence: 0, app: None, memo, hidden: None }
    }

    #[test]
    fn every_chunk_has_four_holders_and_their_duties_add_up() {
        let members = members(7);
        let book = book(members[0]);
        let entries: Vec<(ChunkAddress, u64)> = (1..=20).map(|n| (chunk(n), u64::from(n) * MIB)).collect();
        let registry: BTreeMap<ChunkAddress, u64> = entries.iter().copied().collect();
        for (address, _) in &entries {
            let holders = holders_of(address, &members);
            assert_eq!(holders.len(), COPIES);
            assert_eq!(holders.iter().collect::<BTreeSet<_>>().len(), COPIES, "distinct");
        }
        let total: u64 = members.iter().map(|m| book.duty_of(&registry, m, &placed(&members)).1).sum();
        let stored: u64 = entries.iter().map(|(_, size)| size).sum();
        assert_eq!(total, stored * COPIES as u64);
        let plan = book.audit_plan(&registry, &placed(&members), &[7; 32], 1);
        assert!(plan.iter().all(|(holder, _)| *holder != members[0]), "no elder audits itself");
        assert!(plan.iter().all(|(_, audit)| audit.challenge.items.len() == 1), "one chunk per challenge");
        for member in &members[1..] {
            let challenges = plan.iter().filter(|(holder, _)| holder == member).count() as u64;
            assert_eq!(
                challenges,
                book.duty_of(&registry, member, &placed(&members)).0.min(16),
                "up to 16 per holder a round"
            );
        }
    }

    #[test]
    fn after_a_member_leaves_each_lost_copy_is_made_by_exactly_one_elder() {
        let members = members(7);
        let names = names(&members);
        let after: Vec<[u8; 32]> = names[..6].to_vec();
        let elders = after.clone();
        let registry: BTreeMap<ChunkAddress, u64> = (1..=40).map(|n| (chunk(n), MIB)).collect();
        let mut copies = Vec::new();
        for me in &members[..6] {
            copies.extend(book(*me).repair_plan(&registry, &names, &after, &elders, node_name(&me.0)));
        }
        let needed = acre_proofs::placement::repairs(&registry, &names, &after);
        assert_eq!(copies.len(), needed.len(), "every copy made, none twice");
        assert!(!needed.is_empty());
    }

    #[test]
    fn a_payment_is_held_to_the_lowest_price_quoted_within_the_window_and_checked_once() {
        let members = members(4);
        let mut book = book(members[0]);
        let pool = pool_account("");
        book.record_status(members[0], 0, 100 * MIB);
        let start = Duration::from_secs(1_000);
        book.quote(start);
        let cheap = book.honoured_price(MIB).expect("a price");
        // The section fills up: the quote rises, but the old one is honoured for a while.
        book.record_status(members[0], 90 * MIB, 100 * MIB);
        book.quote(start + Duration::from_secs(5));
        assert_eq!(book.honoured_price(MIB), Some(cheap));
        let list = [(chunk(1), MIB)];
        let paid = payment(pool, cheap, &list);
        let id = Digest([1; 32]);
        let due = book.check_payment(&id, &paid, &list, None, start + Duration::from_secs(6));
        assert_eq!(due, Ok(PaymentDue::New));
        let later = start + QUOTE_VALIDITY + Duration::from_secs(10);
        let too_late = book.check_payment(&id, &paid, &list, None, later);
        assert!(matches!(too_late, Err(BookError::Payment(StorePaymentError::TooSmall { .. }))), "{too_late:?}");
        assert_eq!(book.unkept(&id, &list), list.to_vec());
        book.payment_kept(id, &list);
        assert!(book.unkept(&id, &list).is_empty());
        assert_eq!(
            book.check_payment(&id, &paid, &list, None, later),
            Ok(PaymentDue::AlreadyAccepted),
            "accepted once, good for what it lists"
        );
        assert_eq!(book.paid_size(&id, &chunk(1)), Some(MIB));
        assert_eq!(book.paid_size(&id, &chunk(2)), None, "but only for what it lists");
        let other = [(chunk(2), MIB)];
        let relisted = book.check_payment(&id, &paid, &other, None, later);
        assert!(matches!(relisted, Err(BookError::Payment(StorePaymentError::MemoMismatch))), "{relisted:?}");
        assert!(book.check_payment(&id, &paid, &[], None, later).is_err(), "an empty list pays for nothing");
    }

    /// A holder takes only chunks a kept payment lists at their size; the list handed on
    /// keeps its memo's order; a placed chunk counts as stored until the registry has it.
    #[test]
    fn kept_payments_say_what_a_holder_takes_and_placed_chunks_count_as_stored() {
        let mut book = book(members(1)[0]);
        let id = Digest([9; 32]);
        let list = [(chunk(7), MIB), (chunk(3), 2 * MIB), (chunk(5), MIB)];
        assert!(!book.is_paid_for(&chunk(7), MIB), "nothing paid yet");
        assert_eq!(book.payment_list(&id), None);
        book.payment_kept(id, &list);
        assert!(book.is_paid_for(&chunk(3), 2 * MIB));
        assert!(!book.is_paid_for(&chunk(3), MIB), "at the size it was paid for only");
        assert!(!book.is_paid_for(&chunk(4), MIB));
        assert_eq!(book.payment_list(&id), Some(list.to_vec()), "in the memo's order, not sorted");
        let restarted = StorageBook::new(
            members(1)[0],
            pool_account(""),
            settings(),
            list.iter().map(|(chunk, size)| (id, *chunk, *size)),
        );
        assert_eq!(restarted.payment_list(&id), Some(list.to_vec()), "and after a restart");

        assert!(!book.is_stored(&chunk(7), None));
        assert_eq!(book.placed_size(&chunk(7)), None);
        book.placed(chunk(7));
        assert!(book.is_stored(&chunk(7), None), "placed here, not yet ordered");
        assert_eq!(book.placed_size(&chunk(7)), Some(MIB));
        let registry: BTreeMap<ChunkAddress, u64> = [(chunk(7), MIB)].into();
        assert!(book.is_stored(&chunk(7), Some(&registry)));
        assert_eq!(book.placed_size(&chunk(7)), None, "forgotten here once the registry has it");
    }

    /// A holder that keeps failing on a chunk is handed a copy once an epoch, not every
    /// round, and passes or timeouts draw none.
    #[test]
    fn a_failed_chunk_is_rechecked_once_an_epoch_once_the_holder_takes_the_ask() {
        let members = members(4);
        let mut book = book(members[0]);
        assert!(!book.recopy_due(members[1], chunk(1), Outcome::Passed));
        assert!(!book.recopy_due(members[1], chunk(1), Outcome::Timeout));
        assert!(book.recopy_due(members[1], chunk(1), Outcome::WrongBytes));
        book.recopy_taken(members[1], chunk(1));
        assert!(!book.recopy_due(members[1], chunk(1), Outcome::Missing), "once this epoch");
        // A holder that takes none of the asks is asked a few times, no more.
        let asked = (0..10).filter(|_| book.recopy_due(members[2], chunk(1), Outcome::Missing)).count();
        assert_eq!(asked, usize::from(RECOPY_ASKS), "another holder, asked again after each failure, a few times");
        book.take_epoch_audits();
        assert!(book.recopy_due(members[1], chunk(1), Outcome::WrongBytes), "again next epoch");
    }

    /// One member says it holds everything, another that it offers the world: the price
    /// is the honest members' all the same.
    #[test]
    fn a_lying_status_moves_the_quote_no_further_than_the_honest_members_fills() {
        let members = members(5);
        let mut book = book(members[0]);
        for member in &members[..3] {
            book.record_status(*member, 30 * MIB, 100 * MIB);
        }
        let honest = {
            let (used, capacity) = book.fullness();
            store_cost(MIB, used, capacity)
        };
        book.record_status(members[3], u64::MAX, 100 * MIB);
        book.record_status(members[4], 0, u64::MAX);
        let (used, capacity) = book.fullness();
        assert_eq!(store_cost(MIB, used, capacity), honest, "the liars cancel out around the median");
        book.record_status(members[4], u64::MAX, 1);
        let (used, capacity) = book.fullness();
        assert!(store_cost(MIB, used, capacity).is_some(), "two liars of five cannot fill the section");
    }

    #[test]
    fn quoting_in_a_loop_keeps_one_sample_a_second_and_a_full_section_quotes_nothing() {
        let members = members(1);
        let mut book = book(members[0]);
        book.record_status(members[0], 10, 10);
        for n in 0..10_000u64 {
            book.quote(Duration::from_millis(n / 10));
        }
        assert_eq!(book.prices.len(), 1);
        assert_eq!(book.honoured_price(MIB), None, "full");
    }

    #[test]
    fn an_app_price_raise_does_not_catch_a_payment_made_before_it() {
        let mut book = book(members(1)[0]);
        let app = AppId([3; 32]);
        let now = Duration::from_secs(100);
        let low = Amount::from_nanos(10).expect("amount");
        let high = Amount::from_nanos(50).expect("amount");
        assert_eq!(book.app_price(&app, Some(low), now), Ok(low));
        assert_eq!(book.app_price(&app, Some(high), now + Duration::from_secs(1)), Ok(low));
        assert_eq!(book.app_price(&app, Some(high), now + QUOTE_VALIDITY + Duration::from_secs(2)), Ok(high));
        assert_eq!(book.app_price(&app, None, now), Err(BookError::UnknownApp(app)));
    }

    #[test]
    fn a_silent_holder_is_excused_only_while_its_connection_settles() {
        let members = members(2);
        let mut book = book(members[0]);
        let holder = members[1];
        let started = Duration::ZERO;
        let up: BTreeSet<AccountId> = members.iter().copied().collect();
        book.observe_connections(&links(&up), &members, Duration::from_secs(1), started);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, Duration::from_secs(5)), Outcome::Excused);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, Duration::from_secs(30)), Outcome::Timeout);
        // It goes down: excused again for the grace period, then not.
        book.observe_connections(&BTreeMap::new(), &members, Duration::from_secs(40), started);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, Duration::from_secs(50)), Outcome::Excused);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, Duration::from_secs(61)), Outcome::Timeout);
        // It comes back: still one restart, still excused while settling.
        book.observe_connections(&links(&up), &members, Duration::from_secs(70), started);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, Duration::from_secs(75)), Outcome::Excused);
        // It drops the connection again on a challenge it cannot answer: no more excuses
        // this epoch, however fresh the change.
        book.observe_connections(&BTreeMap::new(), &members, Duration::from_secs(80), started);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, Duration::from_secs(81)), Outcome::Timeout);
        // A new epoch grants a restart again.
        book.take_epoch_audits();
        book.observe_connections(&links(&up), &members, Duration::from_secs(90), started);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, Duration::from_secs(91)), Outcome::Excused);
        assert_eq!(book.outcome_of(&holder, AuditReply::Other, Duration::from_secs(50)), Outcome::WrongBytes);
        assert_eq!(book.outcome_of(&holder, AuditReply::Missing, Duration::from_secs(50)), Outcome::Missing);
    }

    #[test]
    fn a_restart_between_two_looks_is_seen_by_its_new_session() {
        let members = members(2);
        let mut book = book(members[0]);
        let holder = members[1];
        let at = Duration::from_secs;
        let session = |sessions| BTreeMap::from([(holder, Link { up: true, sessions })]);
        book.observe_connections(&session(1), &members, at(1), Duration::ZERO);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, at(30)), Outcome::Timeout);
        // Down and up again between two looks: up both times, but a new session.
        book.observe_connections(&session(2), &members, at(40), Duration::ZERO);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, at(41)), Outcome::Excused, "one restart");
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, at(61)), Outcome::Timeout, "past the grace");
        // Two more quick restarts in the epoch are dodging, not restarting.
        book.observe_connections(&session(4), &members, at(62), Duration::ZERO);
        assert_eq!(book.outcome_of(&holder, AuditReply::Silent, at(63)), Outcome::Timeout);
    }

    /// Six members, `chunks` registered chunks, and the book of the member that becomes
    /// the copier of the first chunk once its closest holder (`lost`) is gone; every
    /// connection seen up at 1 s.
    struct LossScene {
        members: Vec<AccountId>,
        registry: BTreeMap<ChunkAddress, u64>,
        first: ChunkAddress,
        lost: AccountId,
        after: Vec<AccountId>,
        up: BTreeSet<AccountId>,
        /// The placement name of the book's node.
        copier: [u8; 32],
        book: StorageBook,
    }

    fn loss_scene(chunks: u8) -> LossScene {
        let members = members(6);
        let registry: BTreeMap<ChunkAddress, u64> = (1..=chunks).map(|n| (ChunkAddress::of(&[n]), MIB)).collect();
        let first = *registry.keys().next().expect("a chunk");
        let named = |name: &[u8; 32]| placed(&members).member_named(name).expect("a member");
        let lost = named(&closest(&first, &names(&members), 1)[0]);
        let after: Vec<AccountId> = members.iter().filter(|m| **m != lost).copied().collect();
        let copier = closest(&first, &names(&after), 1)[0];
        let mut book = book(named(&copier));
        let up: BTreeSet<AccountId> = members.iter().copied().collect();
        book.observe_connections(&links(&up), &members, Duration::from_secs(1), Duration::ZERO);
        LossScene { members, registry, first, lost, after, up, copier, book }
    }

    #[test]
    fn a_lost_holders_chunks_are_copied_to_their_next_holder_once_per_loss() {
        // The lost member holds the first chunk; this node is the copier of it once the
        // lost member is gone (the closest elder left).
        let LossScene { members, registry, lost, after, up, copier, mut book, .. } = loss_scene(40);
        let at = Duration::from_secs;
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(1)).is_empty(), "nobody is lost");
        let down: BTreeSet<AccountId> = up.iter().filter(|m| **m != lost).copied().collect();
        book.observe_connections(&links(&down), &members, at(2), Duration::ZERO);
        assert!(
            book.stand_in_plan(&registry, 1, &placed(&members), &members, at(10)).is_empty(),
            "within the grace: a restart"
        );
        let plan = book.stand_in_plan(&registry, 1, &placed(&members), &members, at(30));
        let expected = book.repair_plan(&registry, &names(&members), &names(&after), &names(&after), copier);
        assert!(!plan.is_empty(), "this node copies some of the lost holder's chunks");
        assert_eq!(plan, expected, "the copies its removal would make, made now");
        assert!(plan.iter().all(|repair| closest(&repair.chunk, &names(&after), COPIES).contains(&repair.to)));
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(31)).is_empty(), "once per loss");
        // Heard from again, then lost again (its audit timed out): copied for again.
        book.observe_connections(&links(&up), &members, at(40), Duration::ZERO);
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(41)).is_empty());
        record_outcome(&mut book, lost, Outcome::Timeout);
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(42)).is_empty(), "a grace apart");
        assert_eq!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(50)), expected);
    }

    #[test]
    fn a_stand_in_copy_that_failed_is_planned_again_a_grace_later() {
        let LossScene { members, registry, lost, mut book, .. } = loss_scene(40);
        let at = Duration::from_secs;
        record_outcome(&mut book, lost, Outcome::Timeout);
        let plan = book.stand_in_plan(&registry, 1, &placed(&members), &members, at(30));
        let failed = plan.first().expect("a copy to make").clone();
        book.stand_ins_failed([(failed.chunk, failed.to)], at(31));
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(32)).is_empty(), "not at once");
        assert_eq!(
            book.stand_in_plan(&registry, 1, &placed(&members), &members, at(51)),
            vec![failed],
            "a grace later"
        );
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(52)).is_empty(), "once");
        // A copy made is not planned again.
        book.stand_ins_failed([], at(53));
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(80)).is_empty());
    }

    #[test]
    fn a_second_loss_is_planned_for_at_once_and_a_flapping_one_once_a_grace() {
        let LossScene { members, registry, lost, up, mut book, .. } = loss_scene(40);
        let at = Duration::from_secs;
        record_outcome(&mut book, lost, Outcome::Timeout);
        assert!(!book.stand_in_plan(&registry, 1, &placed(&members), &members, at(30)).is_empty());
        // Another member drops a few seconds later, past its own grace: planned for at once.
        let second = *members.iter().find(|m| **m != lost && **m != book.me).expect("another member");
        let without_second: BTreeSet<AccountId> = up.iter().filter(|m| **m != second).copied().collect();
        book.observe_connections(&links(&without_second), &members, at(5), Duration::ZERO);
        book.stand_in_plan(&registry, 1, &placed(&members), &members, at(32));
        assert!(book.stood_in.contains(&second) && book.stood_in.contains(&lost), "both stood in for");
        // The first comes back and drops again at once: not planned for again within the grace.
        record_outcome(&mut book, lost, Outcome::Passed);
        book.stand_in_plan(&registry, 1, &placed(&members), &members, at(33));
        assert!(!book.stood_in.contains(&lost), "heard from again");
        record_outcome(&mut book, lost, Outcome::Timeout);
        book.stand_in_plan(&registry, 1, &placed(&members), &members, at(34));
        assert!(!book.stood_in.contains(&lost), "flapping: not planned for again yet");
        let again = book.stand_in_plan(&registry, 1, &placed(&members), &members, at(50));
        assert!(book.stood_in.contains(&lost), "a grace after its last plan");
        assert!(!again.is_empty(), "its copies planned afresh, though another member stayed lost meanwhile");
    }

    /// An audit of `holder` on no chunk that came out `outcome`, as the shell records one.
    fn record_outcome(book: &mut StorageBook, holder: AccountId, outcome: Outcome) {
        let name = node_name(&holder.0);
        let challenge = Challenge { nonce: 1, seed: [0; 32], holder: name, challenger: name, items: vec![] };
        let audit = Audit { holder: name, challenge, sizes: vec![] };
        let record = AuditRecord { round: 1, outcome, latency_ms: 1, at_unix_ms: 0, chunks: 0 };
        book.record_audit(holder, &audit, outcome, record);
    }

    #[test]
    fn a_chunk_registered_after_its_holder_was_lost_is_copied_for_at_the_next_registry() {
        let LossScene { members, registry, first, lost, after, copier, mut book, .. } = loss_scene(80);
        let at = Duration::from_secs;
        let expected = book.repair_plan(&registry, &names(&members), &names(&after), &names(&after), copier);
        // All but the first chunk are registered when the loss is seen; it comes an epoch
        // later.
        let early: BTreeMap<ChunkAddress, u64> = registry.iter().skip(1).map(|(c, s)| (*c, *s)).collect();
        record_outcome(&mut book, lost, Outcome::Timeout);
        let first_plan = book.stand_in_plan(&early, 1, &placed(&members), &members, at(30));
        assert!(first_plan.iter().all(|repair| early.contains_key(&repair.chunk)));
        assert!(book.stand_in_plan(&early, 1, &placed(&members), &members, at(32)).is_empty(), "once per registry");
        assert!(book.stand_in_plan(&registry, 2, &placed(&members), &members, at(34)).is_empty(), "a grace apart");
        let second_plan = book.stand_in_plan(&registry, 2, &placed(&members), &members, at(50));
        assert!(second_plan.iter().any(|repair| repair.chunk == first), "the later chunk is copied for too");
        assert!(second_plan.iter().all(|repair| repair.chunk == first), "nothing twice");
        let copies = |plan: Vec<Repair>| -> BTreeSet<(ChunkAddress, [u8; 32])> {
            plan.into_iter().map(|repair| (repair.chunk, repair.to)).collect()
        };
        let both: BTreeSet<_> = copies(first_plan).into_iter().chain(copies(second_plan)).collect();
        assert_eq!(both, copies(expected), "together, the copies its removal would make");
    }

    #[test]
    fn a_holder_that_went_silent_stays_lost_when_its_connection_then_drops() {
        let LossScene { members, registry, lost, after, up, mut book, .. } = loss_scene(40);
        let at = Duration::from_secs;
        book.observe_connections(&links(&up), &members, at(1), Duration::ZERO);
        // Killed: its audits time out while the connection still looks up, and the
        // connection's loss is seen only later, in the same round.
        record_outcome(&mut book, lost, Outcome::Timeout);
        let down: BTreeSet<AccountId> = after.iter().copied().collect();
        book.observe_connections(&links(&down), &members, at(31), Duration::ZERO);
        assert_eq!(book.outcome_of(&lost, AuditReply::Silent, at(31)), Outcome::Excused);
        record_outcome(&mut book, lost, Outcome::Excused);
        assert!(
            !book.stand_in_plan(&registry, 1, &placed(&members), &members, at(31)).is_empty(),
            "copied for at once"
        );
        // It answers again: heard from, no longer lost.
        record_outcome(&mut book, lost, Outcome::Passed);
        book.observe_connections(&links(&up), &members, at(40), Duration::ZERO);
        assert!(book.stand_in_plan(&registry, 1, &placed(&members), &members, at(60)).is_empty());
    }

    #[test]
    fn a_chunk_is_rechecked_once_however_many_elders_ask_and_rechecks_are_bounded() {
        let members = members(3);
        let (holder, elder, liar) = (members[0], members[1], members[2]);
        let mut book = book(holder);
        let chunk = |n: u32| ChunkAddress::of(&n.to_le_bytes());
        let now = Duration::from_secs(1);
        assert_eq!(book.start_recheck(elder, chunk(0), now), RecheckStart::Started);
        assert_eq!(book.start_recheck(liar, chunk(0), now), RecheckStart::UnderWay, "a second word adds no fetch");
        for n in 1..MAX_RECHECKS as u32 {
            assert_eq!(book.start_recheck(elder, chunk(n), now), RecheckStart::Started);
        }
        assert_eq!(book.start_recheck(elder, chunk(1_000), now), RecheckStart::Busy, "it waits for another audit");
        book.finish_recheck(&chunk(0));
        assert_eq!(
            book.start_recheck(elder, chunk(1_000), now),
            RecheckStart::Started,
            "a finished one frees its place"
        );
        // A lying elder asking about intact copies in a loop runs out of its budget.
        let mut started = 0;
        for n in 2_000..2_000 + 2 * RECHECKS_PER_ELDER {
            book.rechecking.clear();
            if book.start_recheck(liar, chunk(n), now) == RecheckStart::Started {
                started += 1;
            }
        }
        assert_eq!(started, RECHECKS_PER_ELDER, "one window's budget");
        assert_eq!(book.start_recheck(elder, chunk(9_000), now), RecheckStart::Started, "other elders keep theirs");
        assert_eq!(book.start_recheck(liar, chunk(9_001), now + FORWARD_WINDOW), RecheckStart::Started, "next window");
    }

    #[test]
    fn a_holder_answers_only_an_elders_fair_challenge_naming_it() {
        let members = members(3);
        let (elder, me, co_holder) = (members[0], members[1], members[2]);
        let address = chunk(1);
        let fair = |holder: &AccountId, challenger: &AccountId| {
            let (holder, challenger) = (node_name(&holder.0), node_name(&challenger.0));
            let item =
                acre_proofs::challenge::ChallengeItem::for_holder(&[9; 32], &challenger, &holder, 4, address, MIB);
            Challenge { nonce: 4, seed: [9; 32], holder, challenger, items: vec![item] }
        };
        let size_of = |_: &ChunkAddress| Some(MIB);
        let own = fair(&me, &elder);
        assert_eq!(check_challenge(&own, Some(&elder), &me, size_of), Ok(()));
        assert_eq!(check_challenge(&own, None, &me, size_of), Err(ChallengeRefusal::NotAnElder));
        assert_eq!(check_challenge(&own, Some(&co_holder), &me, size_of), Err(ChallengeRefusal::OtherChallenger));
        let relayed = fair(&co_holder, &elder);
        assert_eq!(check_challenge(&relayed, Some(&elder), &me, size_of), Err(ChallengeRefusal::OtherHolder));
        // The co-holder's blocks, put to this holder by an elder under its own name.
        let rewritten = Challenge { holder: node_name(&me.0), ..relayed };
        assert_eq!(check_challenge(&rewritten, Some(&elder), &me, size_of), Err(ChallengeRefusal::NotDrawn(address)));
        assert_eq!(check_challenge(&rewritten, Some(&elder), &me, |_| None), Ok(()), "an unknown chunk is missing");
        let huge = Challenge { items: vec![own.items[0].clone(); MAX_CHALLENGE_ITEMS + 1], ..own };
        assert_eq!(check_challenge(&huge, Some(&elder), &me, size_of), Err(ChallengeRefusal::TooLarge));
    }

    #[test]
    fn a_member_has_a_bounded_number_of_forwarded_payments_checked_per_window() {
        let members = members(3);
        let mut book = book(members[0]);
        let start = Duration::from_secs(10);
        let admitted =
            (0..FORWARDED_PAYMENTS + 100).filter(|_| book.admit_forwarded_payment(members[1], start)).count();
        assert_eq!(admitted, FORWARDED_PAYMENTS as usize, "a flood gets its window's share, no more");
        assert!(book.admit_forwarded_payment(members[2], start), "another member's budget is its own");
        assert!(!book.admit_forwarded_payment(members[1], start + FORWARD_WINDOW - Duration::from_millis(1)));
        assert!(book.admit_forwarded_payment(members[1], start + FORWARD_WINDOW), "the next window starts afresh");
    }

    #[test]
    fn proofs_after_the_answer_deadline_are_late_and_fail_but_wrong_bytes_stay_wrong() {
        let members = members(2);
        let book = book(members[0]);
        let holder = members[1];
        let now = Duration::from_secs(100);
        let judged = |outcome, millis| AuditReply::Judged { outcome, after: Duration::from_millis(millis) };
        assert_eq!(book.outcome_of(&holder, judged(Outcome::Passed, 500), now), Outcome::Passed);
        // A holder that fetched the chunk from a co-holder first answers correctly, late.
        assert_eq!(book.outcome_of(&holder, judged(Outcome::Passed, 501), now), Outcome::Late);
        assert!(Outcome::Late.is_failure());
        assert_eq!(book.outcome_of(&holder, judged(Outcome::WrongBytes, 10_000), now), Outcome::WrongBytes);
        assert_eq!(book.outcome_of(&holder, judged(Outcome::WrongBytes, 1), now), Outcome::WrongBytes);
    }

    #[test]
    fn an_answer_is_signed_for_its_challenge_and_by_its_holder_only() {
        let holder_key = SigningKey::from_bytes(&[5; 32]);
        let other_key = SigningKey::from_bytes(&[6; 32]);
        let holder = AccountId::of(&holder_key);
        let challenge = Challenge {
            nonce: 9,
            seed: [2; 32],
            holder: node_name(&holder.0),
            challenger: [1; 32],
            items: vec![acre_proofs::challenge::ChallengeItem::draw(&[1; 32], 9, chunk(1), MIB, 2)],
        };
        let answer = Answer { nonce: 9, proofs: vec![vec![1, 2, 3]] };
        let signed = SignedAnswer::sign(&holder_key, &challenge, answer.clone());
        assert!(signed.is_from(&holder, &challenge));
        assert!(!signed.is_from(&AccountId::of(&other_key), &challenge), "another holder's key");
        let relayed = SignedAnswer::sign(&other_key, &challenge, answer.clone());
        assert!(!relayed.is_from(&holder, &challenge), "a co-holder's answer is not the holder's");
        for changed in [
            Challenge { nonce: 10, ..challenge.clone() },
            Challenge { challenger: [2; 32], ..challenge.clone() },
            Challenge { holder: [3; 32], ..challenge.clone() },
            Challenge { seed: [4; 32], ..challenge.clone() },
        ] {
            assert!(!signed.is_from(&holder, &changed), "an answer to one challenge is no answer to another");
        }
        let mut altered = signed.clone();
        altered.answer.proofs[0][0] ^= 1;
        assert!(!altered.is_from(&holder, &challenge));
    }

    #[test]
    fn a_verdict_counts_every_challenged_chunk_and_what_was_proven_of_them() {
        let members = members(2);
        let mut book = book(members[0]);
        let holder = members[1];
        let audit = Audit {
            holder: node_name(&holder.0),
            challenge: Challenge {
                nonce: 1,
                seed: [0; 32],
                holder: node_name(&holder.0),
                challenger: node_name(&members[0].0),
                items: vec![acre_proofs::challenge::ChallengeItem::draw(&[1; 32], 1, chunk(1), MIB, 2)],
            },
            sizes: vec![MIB],
        };
        let record = |outcome| AuditRecord { round: 1, outcome, latency_ms: 1, at_unix_ms: 0, chunks: 1 };
        book.record_audit(holder, &audit, Outcome::Passed, record(Outcome::Passed));
        assert_eq!(book.take_epoch_audits().verdicts(), vec![Verdict { holder, sampled: 1, passed: 1 }]);
        book.record_audit(holder, &audit, Outcome::Passed, record(Outcome::Passed));
        book.record_audit(holder, &audit, Outcome::Excused, record(Outcome::Excused));
        book.record_audit(holder, &audit, Outcome::Missing, record(Outcome::Missing));
        book.record_audit(holder, &audit, Outcome::Timeout, record(Outcome::Timeout));
        let audits = book.take_epoch_audits();
        assert_eq!(
            audits.verdicts(),
            vec![Verdict { holder, sampled: 3, passed: 1 }],
            "an excused audit is not counted"
        );
        assert_eq!(audits.tallies[&holder].excused, 1);
        let (tally, last) = book.audits_of(&holder);
        assert_eq!((tally.passed, tally.missing, tally.excused, tally.timeouts), (2, 1, 1, 1));
        assert_eq!(last.map(|r| r.outcome), Some(Outcome::Timeout));
        assert!(book.take_epoch_audits().tallies.is_empty(), "taken afresh");
    }

    #[test]
    fn lists_of_impossible_chunks_are_refused() {
        assert!(check_entries(&[(chunk(1), 0)]).is_err());
        assert!(check_entries(&[(chunk(1), MAX_CHUNK_BYTES as u64 + 1)]).is_err());
        assert!(check_entries(&vec![(chunk(1), 1); MAX_ENTRIES + 1]).is_err());
        assert!(check_entries(&[(chunk(1), MAX_CHUNK_BYTES as u64)]).is_ok());
    }
}
