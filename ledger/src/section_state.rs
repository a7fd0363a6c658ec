//! The section's agreed state: members, their age and reward addresses, the elders, the
//! pool's unpaid store payments and the epochs closed. Every elder applies the same
//! ordered log of [`SectionEvent`]s (from the BFT engine) to its own `SectionState`; the
//! state is pure and deterministic, so equal logs give equal states, and
//! [`SectionState::state_hash`] after each event lets elders check it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use acre_proofs::placement::{closest, COPIES};
use acre_proofs::ChunkAddress;

use crate::apps::{apply_command, App, SignedAppCommand};
use crate::epoch::{close_epoch, AppBalance, AppLedger, EpochRecord, EpochReport, Farmer};
use crate::{quorum, AccountId, Amount, AppId, Digest, EncodeError};

/// Elders of a section: its oldest members.
pub const ELDER_COUNT: usize = 7;
/// Epochs a member must have served before it can be an elder: a node that just joined
/// (or a flood of them) cannot take over the elder set, and one that goes silent at once
/// was never an elder whose removal needs a quorum it could withhold. Founders start at
/// this age.
pub const MIN_ELDER_AGE: u64 = 3;
/// Elders a section keeps at least, the next oldest members filling in while too few
/// have served [`MIN_ELDER_AGE`]: four, the fewest that tolerate one faulty elder.
pub const MIN_ELDERS: usize = 4;
/// Members admitted per epoch at most, so a flood of joins cannot take over a section.
pub const JOINS_PER_EPOCH: usize = 1;
/// Hash context of the state hash.
const STATE_CONTEXT: &str = "acre 2026 section state v4";
/// Hash context of the section's beacon, from which placement names are drawn.
const BEACON_CONTEXT: &str = "acre 2026 section beacon v1";
/// Hash context of a member's placement name.
const NAME_CONTEXT: &str = "acre 2026 placement name v1";
/// Holders that must sign that they store a paid chunk before it enters the registry:
/// three of its four, so one holder alone (or one lying uploader) cannot make the
/// section audit and pay for a chunk nobody received.
pub const STORED_RECEIPTS: usize = 3;
/// Epochs a paid chunk waits for its holders' receipts before the payment's claim on it
/// lapses (the credits stay paid; an upload that never came stores nothing).
pub const PAID_EPOCHS: u64 = 24;

/// One entry of the agreed log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionEvent {
    /// A node asks to join, naming where its rewards go; from a member, it moves its
    /// rewards to that address.
    Join {
        /// The node's id.
        node: AccountId,
        /// Its reward address.
        reward: AccountId,
    },
    /// An elder found a member unresponsive; a quorum of such reports in one epoch removes it.
    Unresponsive {
        /// The reporting elder.
        elder: AccountId,
        /// The member.
        node: AccountId,
    },
    /// A store payment reached the section's pool; it is paid out with the next epoch.
    PoolPayment {
        /// The payment certificate's id (a payment counts once).
        id: Digest,
        /// Its amount.
        amount: Amount,
        /// The app it was made through and the fee it declared for the app (part of
        /// `amount`), paid to the app with the next epoch.
        app_fee: Option<(AppId, Amount)>,
        /// The chunks it pays for, with their sizes (the list its memo names): each may
        /// enter the registry once its holders say they store it.
        chunks: Vec<(ChunkAddress, u64)>,
    },
    /// Holders of a paid chunk signed that they store it: it enters the registry, and from
    /// the next epoch on its holders are audited and paid for it.
    Stored {
        /// The chunk.
        chunk: ChunkAddress,
        /// The members that signed, each among its closest (checked where the signatures
        /// are).
        holders: BTreeSet<AccountId>,
    },
    /// An app owner's signed command: register, set the price or the payout account.
    App(Box<SignedAppCommand>),
    /// An elder's audit report. Reports from every elder close the epoch; a quorum of
    /// them closes it once enough elders say the grace for the rest is over.
    Report(EpochReport),
    /// An elder waited its grace for the missing reports after a quorum of them was
    /// ordered: once more than f elders say so, the epoch closes on the reports it has.
    GraceOver {
        /// The elder.
        elder: AccountId,
        /// The epoch it waited on.
        epoch: u64,
    },
}

/// A member of the section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Epochs served.
    pub age: u64,
    /// Where its rewards go.
    pub reward: AccountId,
    /// Where it sits in the XOR space, which decides the chunks it holds: assigned by the
    /// section at the second epoch close after it is admitted ([`placement_name`]), so
    /// nobody picks it by choosing a key. Until then it holds nothing and is not placed.
    pub name: Option<[u8; 32]>,
}

/// The placement name of `node` drawn from the section's `beacon`. A name that followed
/// from the key alone could be ground: keys cost microseconds, so a farmer could make its
/// nodes' names sit side by side, hold all four copies of the chunks between them on one
/// disk and be paid for four. A newcomer admitted in one epoch is named from the beacon of
/// the next, whose elders' secrets were committed before anyone but each elder knew them
/// ([`crate::BeaconShare`]): the joiner cannot know it when it picks its key and signs
/// its enrolment, so a name it dislikes costs a new join (one a section admits per epoch)
/// to re-draw.
pub fn placement_name(beacon: &Digest, node: &AccountId) -> [u8; 32] {
    *Digest::derive(NAME_CONTEXT, &[beacon.as_bytes(), &node.0]).as_bytes()
}

/// What applying an event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionChange {
    /// Nothing (a repeat, an event from a non-elder, a join over the rate).
    None,
    /// A node became a member.
    Admitted(AccountId),
    /// A member's reward address changed.
    RewardMoved(AccountId),
    /// A member was removed.
    Removed(AccountId),
    /// A member was removed, and with the smaller elder set the epoch closed.
    RemovedAndClosed(AccountId, EpochRecord),
    /// A payment was added to the pool.
    Collected(Amount),
    /// A report was recorded; the epoch is still open.
    Reported,
    /// The epoch closed with this record (the ledger applies it once).
    Closed(EpochRecord),
    /// An app was registered or changed.
    AppChanged(AppId),
    /// A paid chunk entered the registry.
    Stored(ChunkAddress),
}

/// The agreed state of one section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionState {
    /// The network it belongs to ([`crate::network_id`]), which enrolments and app
    /// commands must name.
    network: Digest,
    members: BTreeMap<AccountId, Member>,
    /// The open epoch.
    epoch: u64,
    /// Credits in existence: genesis plus everything minted.
    supply: Amount,
    /// Store payments collected and not yet paid out.
    pool: Amount,
    payments: BTreeSet<Digest>,
    joined_this_epoch: usize,
    /// The section's randomness as of the last close: each close hashes in the reveals of
    /// the epoch's reports that match their elders' commitments ([`crate::BeaconShare`]).
    beacon: Digest,
    /// The elders' commitments to the secrets they reveal in this epoch's reports.
    commitments: BTreeMap<AccountId, Digest>,
    /// Their commitments in this epoch's reports, for the next.
    next_commitments: BTreeMap<AccountId, Digest>,
    /// The secrets revealed in this epoch's reports that match the commitments.
    reveals: BTreeMap<AccountId, [u8; 32]>,
    /// How many elders the epoch opened with: a removal within it lowers the elder set's
    /// f, but not the reveals a close needs to name newcomers.
    opening_elders: usize,
    reports: BTreeMap<AccountId, EpochReport>,
    /// Elders that waited out the grace for the open epoch's missing reports.
    grace_over: BTreeSet<AccountId>,
    unresponsive: BTreeMap<AccountId, BTreeSet<AccountId>>,
    /// The last `RECENT_RECORDS` records closed, oldest first: enough to re-apply one the
    /// ledger may have missed in a crash, while older ones live in the epoch files and the
    /// state (hashed and written every epoch) stays the same size as epochs pass.
    records: VecDeque<EpochRecord>,
    /// Registered apps.
    apps: BTreeMap<AppId, App>,
    /// Every chunk the section stores, with its size: what farmers are audited on and
    /// paid for.
    registry: BTreeMap<ChunkAddress, u64>,
    /// Chunks paid for and not yet stored, with their size and the epoch they were paid in.
    paid: BTreeMap<ChunkAddress, (u64, u64)>,
    /// Events applied.
    applied: u64,
}

impl SectionState {
    /// A section whose first members (of age [`MIN_ELDER_AGE`], so elders from the start)
    /// are `founders`, with `genesis` credits.
    /// Founders' names are drawn from the network's identity: the genesis fixes both.
    pub fn new(network: Digest, founders: &[(AccountId, AccountId)], genesis: Amount) -> Self {
        let founder = |(node, reward): &(AccountId, AccountId)| {
            (*node, Member { age: MIN_ELDER_AGE, reward: *reward, name: Some(placement_name(&network, node)) })
        };
        let members = founders.iter().map(founder).collect();
        let mut state = SectionState {
            network,
            members,
            epoch: 1,
            supply: genesis,
            pool: Amount::ZERO,
            payments: BTreeSet::new(),
            joined_this_epoch: 0,
            beacon: network,
            commitments: BTreeMap::new(),
            next_commitments: BTreeMap::new(),
            reveals: BTreeMap::new(),
            opening_elders: 0,
            reports: BTreeMap::new(),
            grace_over: BTreeSet::new(),
            unresponsive: BTreeMap::new(),
            records: VecDeque::new(),
            apps: BTreeMap::new(),
            registry: BTreeMap::new(),
            paid: BTreeMap::new(),
            applied: 0,
        };
        state.opening_elders = state.elders().len();
        state
    }

    /// The section founded already holding `chunks` (address and size) in its registry:
    /// for simulations and tests that start from stored data rather than uploading it.
    pub fn with_chunks(mut self, chunks: impl IntoIterator<Item = (ChunkAddress, u64)>) -> Self {
        self.registry.extend(chunks);
        self
    }

    /// The members.
    pub fn members(&self) -> &BTreeMap<AccountId, Member> {
        &self.members
    }

    /// The elders: the [`ELDER_COUNT`] oldest members that have served [`MIN_ELDER_AGE`]
    /// epochs, ties to the smaller id. While fewer than [`MIN_ELDERS`] have, the next
    /// oldest members fill up to that many: removals must not leave a section with too
    /// few elders for a quorum while its newcomers wait out their age.
    pub fn elders(&self) -> BTreeSet<AccountId> {
        let seasoned = self.seasoned().count();
        let count = if seasoned >= MIN_ELDERS { seasoned.min(ELDER_COUNT) } else { MIN_ELDERS.min(ELDER_COUNT) };
        let mut by_age: Vec<(&AccountId, &Member)> = self.members.iter().collect();
        by_age.sort_by(|a, b| b.1.age.cmp(&a.1.age).then(a.0.cmp(b.0)));
        by_age.into_iter().take(count).map(|(id, _)| *id).collect()
    }

    /// The members that have served [`MIN_ELDER_AGE`] epochs: those that may be elders, and
    /// whose word a holder's sweep of its surplus copies waits for.
    pub fn seasoned(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.members.iter().filter(|(_, member)| member.age >= MIN_ELDER_AGE).map(|(id, _)| *id)
    }

    /// The network it belongs to, which enrolments and app commands must name.
    pub fn network(&self) -> Digest {
        self.network
    }

    /// The open epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Credits in existence (genesis plus mints).
    pub fn supply(&self) -> Amount {
        self.supply
    }

    /// Store payments waiting to be paid out.
    pub fn pool(&self) -> Amount {
        self.pool
    }

    /// The most recent closed epochs' records, oldest first.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &EpochRecord> {
        self.records.iter()
    }

    /// Registered apps.
    pub fn apps(&self) -> &BTreeMap<AppId, App> {
        &self.apps
    }

    /// Every chunk the section stores, with its size.
    pub fn registry(&self) -> &BTreeMap<ChunkAddress, u64> {
        &self.registry
    }

    /// Whether the store payment with certificate `id` has been collected into the pool.
    pub fn collected(&self, id: &Digest) -> bool {
        self.payments.contains(id)
    }

    /// The size a payment paid for `chunk`, while it waits for its holders' receipts.
    pub fn paid_size(&self, chunk: &ChunkAddress) -> Option<u64> {
        self.paid.get(chunk).map(|(size, _)| *size)
    }

    /// The members that hold `chunk`: its [`COPIES`] closest by XOR.
    pub fn holders_of(&self, chunk: &ChunkAddress) -> Vec<AccountId> {
        self.placement().holders(chunk).collect()
    }

    /// Every member with its reward address and what the registry places on it.
    pub fn farmers(&self) -> BTreeMap<AccountId, Farmer> {
        let mut farmers: BTreeMap<AccountId, Farmer> = self
            .members
            .iter()
            .map(|(id, member)| (*id, Farmer { reward: member.reward, bytes: 0, chunks: 0 }))
            .collect();
        let placement = self.placement();
        for (chunk, size) in &self.registry {
            for holder in placement.holders(chunk) {
                if let Some(farmer) = farmers.get_mut(&holder) {
                    farmer.bytes = farmer.bytes.saturating_add(*size);
                    farmer.chunks += 1;
                }
            }
        }
        farmers
    }

    /// Every placed member with its placement name, which decides what it holds; a
    /// member admitted this epoch has none yet.
    pub fn roster(&self) -> Vec<(AccountId, [u8; 32])> {
        self.members.iter().filter_map(|(id, member)| Some((*id, member.name?))).collect()
    }

    /// Who holds what: the members by placement name.
    pub fn placement(&self) -> Placement {
        Placement::new(self.roster())
    }

    /// A hash of the whole state, to compare between elders after each event.
    pub fn state_hash(&self) -> Result<Digest, EncodeError> {
        Digest::of_encoded(STATE_CONTEXT, self)
    }

    /// Applies the next event of the agreed log.
    pub fn apply(&mut self, event: &SectionEvent) -> SectionChange {
        self.applied += 1;
        match event {
            SectionEvent::Join { node, reward } => {
                // A reward address nobody could spend from would make every record
                // unpayable; such a farmer is paid at its node id instead.
                let reward = if reward.verifying_key().is_some() { *reward } else { *node };
                if let Some(member) = self.members.get_mut(node) {
                    if member.reward == reward {
                        return SectionChange::None;
                    }
                    member.reward = reward;
                    return SectionChange::RewardMoved(*node);
                }
                if self.joined_this_epoch >= JOINS_PER_EPOCH {
                    return SectionChange::None;
                }
                self.joined_this_epoch += 1;
                self.members.insert(*node, Member { age: 0, reward, name: None });
                SectionChange::Admitted(*node)
            }
            SectionEvent::Unresponsive { elder, node } => {
                let elders = self.elders();
                if !elders.contains(elder) || !self.members.contains_key(node) {
                    return SectionChange::None;
                }
                let reporters = self.unresponsive.entry(*node).or_default();
                reporters.insert(*elder);
                if reporters.len() < quorum(elders.len()) || self.members.len() <= 1 {
                    return SectionChange::Reported;
                }
                self.unresponsive.remove(node);
                self.members.remove(node);
                self.reports.remove(node);
                self.grace_over.remove(node);
                self.reveals.remove(node);
                self.next_commitments.remove(node);
                // A smaller elder set may already have a quorum of reports.
                if let SectionChange::Closed(record) = self.try_close(&self.elders()) {
                    return SectionChange::RemovedAndClosed(*node, record);
                }
                SectionChange::Removed(*node)
            }
            SectionEvent::PoolPayment { id, amount, app_fee, chunks } => {
                if !self.payments.insert(*id) {
                    return SectionChange::None;
                }
                for (chunk, size) in chunks {
                    if !self.registry.contains_key(chunk) {
                        self.paid.entry(*chunk).or_insert((*size, self.epoch));
                    }
                }
                self.pool = self.pool.checked_add(*amount).unwrap_or(Amount::MAX);
                // The fee the payment declared, never more than it paid; an unknown app's
                // fee stays with the farmers. The rest went to the farmers through the
                // app, and is what the app's use may earn it, now or later.
                if let Some((app, fee)) = app_fee {
                    if let Some(app) = self.apps.get_mut(app) {
                        let fee = (*fee).min(*amount);
                        app.unpaid_fees = app.unpaid_fees.checked_add(fee).unwrap_or(Amount::MAX);
                        let through = Amount::from_nanos(amount.nanos() - fee.nanos()).unwrap_or(Amount::ZERO);
                        app.use_allowance = app.use_allowance.checked_add(through).unwrap_or(Amount::MAX);
                    }
                }
                SectionChange::Collected(*amount)
            }
            SectionEvent::Stored { chunk, holders } => {
                let signed = holders.iter().filter(|holder| self.members.contains_key(holder)).count();
                if signed < STORED_RECEIPTS {
                    return SectionChange::None;
                }
                let Some((size, _)) = self.paid.remove(chunk) else { return SectionChange::None };
                self.registry.insert(*chunk, size);
                SectionChange::Stored(*chunk)
            }
            SectionEvent::App(command) => match apply_command(&mut self.apps, command) {
                Ok(app) => {
                    // A registration's fee (checked on admission) goes to the farmers.
                    let registered = matches!(command.command.action, crate::AppAction::Register { .. });
                    if let Some(fee) = command.fee.as_ref().filter(|_| registered) {
                        if self.payments.insert(fee.id()) {
                            self.pool = self.pool.checked_add(fee.order.amount).unwrap_or(Amount::MAX);
                        }
                    }
                    SectionChange::AppChanged(app)
                }
                Err(_) => SectionChange::None,
            },
            SectionEvent::Report(report) => {
                let elders = self.elders();
                if report.epoch != self.epoch || !elders.contains(&report.elder) {
                    return SectionChange::None;
                }
                self.reports.insert(report.elder, report.clone());
                self.take_beacon_share(&report.elder, report.beacon);
                self.try_close(&elders)
            }
            SectionEvent::GraceOver { elder, epoch } => {
                let elders = self.elders();
                if *epoch != self.epoch || !elders.contains(elder) || !self.grace_over.insert(*elder) {
                    return SectionChange::None;
                }
                self.try_close(&elders)
            }
        }
    }

    /// Whether `elder`'s report on the open epoch is in.
    pub fn has_reported(&self, elder: &AccountId) -> bool {
        self.reports.contains_key(elder)
    }

    /// Whether a quorum of the elders' reports on the open epoch is in: from then on, an
    /// elder that has reported waits out its grace for the rest.
    pub fn quorum_reported(&self) -> bool {
        let elders = self.elders();
        among(self.reports.keys(), &elders) >= quorum(elders.len())
    }

    /// Closes the open epoch once every elder reported on it, or once a quorum did and
    /// more than f elders (so at least one honest) waited out the grace for the rest, f
    /// being the current elder set's (a removal mid-epoch lowers it).
    ///
    /// Why not at a bare quorum: an elder is not judged on its own report, so on a quorum
    /// of reports it has one verdict fewer than a quorum, and f liars among them could
    /// lower its pay (on a section of four, one liar could take the honest elders' share).
    /// With every report in, each elder has 3f verdicts from the others and the lower
    /// median outvotes f liars both ways. Why not wait for every report: one elder that
    /// never reports would stop every epoch; the grace bounds what its silence costs, and
    /// f liars cannot end the grace early, nor hold the honest elders from ending it.
    fn try_close(&mut self, elders: &BTreeSet<AccountId>) -> SectionChange {
        let reported = among(self.reports.keys(), elders);
        let waited = among(self.grace_over.iter(), elders);
        let quorum = quorum(elders.len());
        let faulty = elders.len().saturating_sub(quorum);
        if reported < elders.len() && (reported < quorum || waited <= faulty) {
            return SectionChange::Reported;
        }
        // Only members are paid, each for what the registry places on it now: a node
        // removed meanwhile is paid nothing, and its chunks count for their new holders.
        let farmers = self.farmers();
        let reports: Vec<EpochReport> = self.reports.values().cloned().collect();
        let balance = |app: &App| AppBalance {
            payout: app.payout,
            unpaid_fees: app.unpaid_fees,
            use_allowance: app.use_allowance,
            usage_paid: app.usage_paid,
        };
        let apps = AppLedger { apps: self.apps.iter().map(|(id, app)| (*id, balance(app))).collect() };
        let Ok(record) = close_epoch(self.epoch, elders, &reports, &farmers, (self.supply, self.pool), &apps) else {
            return SectionChange::Reported;
        };
        let epoch = self.epoch;
        // Closes seen since the payment, its own epoch's included.
        self.paid.retain(|_, (_, paid_in)| epoch.saturating_sub(*paid_in) + 1 < PAID_EPOCHS);
        for item in &record.apps {
            if let Some(app) = self.apps.get_mut(&item.app) {
                app.use_allowance =
                    Amount::from_nanos(app.use_allowance.nanos().saturating_sub(item.usage_share.nanos()))
                        .unwrap_or(Amount::ZERO);
                app.unpaid_fees = Amount::from_nanos(app.unpaid_fees.nanos().saturating_sub(item.fees.nanos()))
                    .unwrap_or(Amount::ZERO);
                app.lifetime_earnings = app.lifetime_earnings.checked_add(item.amount).unwrap_or(Amount::MAX);
                app.usage_paid = app.usage_paid.max(item.usage_total);
            }
        }
        self.supply = self.supply.checked_add(record.minted).unwrap_or(Amount::MAX);
        self.pool = Amount::from_nanos(self.pool.nanos() - record.from_pool.nanos()).unwrap_or(Amount::ZERO);
        // A newcomer admitted in the epoch before is named from this epoch's beacon, whose
        // secrets nobody but each elder knew when it joined; one admitted in this epoch
        // waits. So does every newcomer if fewer than f + 1 elders revealed: then no
        // honest secret may be in the beacon, and an elder that reported last in the
        // epoch before, knowing the beacon then, could have chosen its secret to aim.
        let opening_faulty = self.opening_elders.saturating_sub(crate::quorum(self.opening_elders));
        let named_now = self.reveals.len() > faulty.max(opening_faulty);
        self.beacon = self.next_beacon();
        self.commitments = std::mem::take(&mut self.next_commitments);
        self.reveals.clear();
        let beacon = self.beacon;
        for (id, member) in self.members.iter_mut() {
            if named_now && member.name.is_none() && member.age >= 1 {
                member.name = Some(placement_name(&beacon, id));
            }
            member.age += 1;
        }
        self.epoch += 1;
        self.joined_this_epoch = 0;
        self.opening_elders = self.elders().len();
        self.reports.clear();
        self.grace_over.clear();
        self.unresponsive.clear();
        if self.records.len() == RECENT_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(record.clone());
        SectionChange::Closed(record)
    }
}

impl SectionState {
    /// Keeps `elder`'s reveal if it matches the commitment its last epoch's report made,
    /// and its commitment for the next. A later report of the same elder replaces its
    /// commitment; its reveal can only be the one secret it committed to.
    fn take_beacon_share(&mut self, elder: &AccountId, share: crate::BeaconShare) {
        let committed = self.commitments.get(elder);
        if let Some(reveal) = share.reveal.filter(|reveal| committed == Some(&crate::BeaconShare::commitment(reveal))) {
            self.reveals.insert(*elder, reveal);
        }
        match share.commit {
            Some(commit) => self.next_commitments.insert(*elder, commit),
            None => self.next_commitments.remove(elder),
        };
    }

    /// The beacon after this epoch: the last one with the epoch and its matching reveals
    /// hashed in, elder by elder.
    fn next_beacon(&self) -> Digest {
        let epoch = self.epoch.to_le_bytes();
        let mut parts: Vec<&[u8]> = vec![self.beacon.as_bytes(), &epoch];
        for (elder, reveal) in &self.reveals {
            parts.push(&elder.0);
            parts.push(reveal);
        }
        Digest::derive(BEACON_CONTEXT, &parts)
    }
}

/// How many of `ids` are `elders`.
fn among<'a>(ids: impl Iterator<Item = &'a AccountId>, elders: &BTreeSet<AccountId>) -> usize {
    ids.filter(|id| elders.contains(id)).count()
}

/// The members by placement name: who holds which chunk, computed once for a run of
/// chunks. Every node builds it from the agreed membership, so none is told who holds
/// what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    names: Vec<[u8; 32]>,
    by_name: BTreeMap<[u8; 32], AccountId>,
    by_member: BTreeMap<AccountId, [u8; 32]>,
}

impl Placement {
    /// The placement of `roster`'s members, each with its name.
    pub fn new(roster: impl IntoIterator<Item = (AccountId, [u8; 32])>) -> Self {
        let by_member: BTreeMap<AccountId, [u8; 32]> = roster.into_iter().collect();
        let by_name: BTreeMap<[u8; 32], AccountId> = by_member.iter().map(|(id, name)| (*name, *id)).collect();
        Placement { names: by_name.keys().copied().collect(), by_name, by_member }
    }

    /// The members holding `chunk`, closest first.
    pub fn holders<'a>(&'a self, chunk: &ChunkAddress) -> impl Iterator<Item = AccountId> + 'a {
        closest(chunk, &self.names, COPIES).into_iter().filter_map(|name| self.by_name.get(&name).copied())
    }

    /// Every member's name.
    pub fn names(&self) -> &[[u8; 32]] {
        &self.names
    }

    /// The members, in id order.
    pub fn members(&self) -> impl ExactSizeIterator<Item = AccountId> + '_ {
        self.by_member.keys().copied()
    }

    /// The name of `member`, if it is one.
    pub fn name_of(&self, member: &AccountId) -> Option<[u8; 32]> {
        self.by_member.get(member).copied()
    }

    /// The member named `name`.
    pub fn member_named(&self, name: &[u8; 32]) -> Option<AccountId> {
        self.by_name.get(name).copied()
    }

    /// This placement with the members in `gone` left out.
    pub fn without(&self, gone: &BTreeSet<AccountId>) -> Placement {
        Placement::new(self.by_member.iter().filter(|(id, _)| !gone.contains(id)).map(|(id, name)| (*id, *name)))
    }
}

/// Records the state keeps; a crash loses at most the ledger's application of the last.
pub const RECENT_RECORDS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::Verdict;
    use crate::BeaconShare;
    use proptest::prelude::*;

    fn id(n: u8) -> AccountId {
        AccountId([n; 32])
    }

    fn founders(count: u8) -> Vec<(AccountId, AccountId)> {
        (1..=count).map(|n| (id(n), id(n + 100))).collect()
    }

    /// Elder `elder`'s report: per holder, how many of 4 challenges it proved.
    fn report(elder: u8, epoch: u64, verdicts: &[(u8, u32)]) -> SectionEvent {
        let verdicts =
            verdicts.iter().map(|&(holder, passed)| Verdict { holder: id(holder), sampled: 4, passed }).collect();
        SectionEvent::Report(EpochReport {
            elder: id(elder),
            epoch,
            verdicts,
            usage: BTreeMap::new(),
            beacon: Default::default(),
        })
    }

    /// Pays for chunk `n` (1 MiB) and has its holders sign for it.
    fn store(state: &mut SectionState, n: u8) {
        let chunk = ChunkAddress([n; 32]);
        let payment = SectionEvent::PoolPayment {
            id: Digest([n; 32]),
            amount: Amount::ZERO,
            app_fee: None,
            chunks: vec![(chunk, 1 << 20)],
        };
        state.apply(&payment);
        let holders = state.holders_of(&chunk).into_iter().collect();
        assert_eq!(state.apply(&SectionEvent::Stored { chunk, holders }), SectionChange::Stored(chunk));
    }

    /// A quorum of reports closes the epoch only once more than f elders waited out the
    /// grace for the rest (every report closes it at once: see the epoch tests).
    /// A section of `count` founders whose keys the test holds, each paid at its own id.
    fn keyed_section(count: u8, network: Digest) -> (Vec<ed25519_dalek::SigningKey>, SectionState) {
        let keys: Vec<ed25519_dalek::SigningKey> =
            (1..=count).map(|n| ed25519_dalek::SigningKey::from_bytes(&[n; 32])).collect();
        let founders: Vec<(AccountId, AccountId)> = keys.iter().map(|k| (AccountId::of(k), AccountId::of(k))).collect();
        let state = SectionState::new(network, &founders, Amount::ZERO);
        (keys, state)
    }

    /// Every elder of `keys` reports on the open epoch, each with the share `share` makes
    /// of its own (by index), and the epoch closes.
    fn close_with(
        state: &mut SectionState,
        keys: &[ed25519_dalek::SigningKey],
        network: &Digest,
        share: impl Fn(usize, BeaconShare) -> BeaconShare,
    ) {
        let epoch = state.epoch();
        for (index, key) in keys.iter().enumerate() {
            let beacon = share(index, BeaconShare::of(key, network, epoch));
            let elder = AccountId::of(key);
            let report = EpochReport { elder, epoch, verdicts: vec![], usage: BTreeMap::new(), beacon };
            state.apply(&SectionEvent::Report(report));
        }
        assert_eq!(state.epoch(), epoch + 1, "closed");
    }

    #[test]
    fn a_removal_within_the_epoch_does_not_lower_the_reveals_that_name_a_newcomer() {
        let network = Digest([4; 32]);
        let (keys, mut state) = keyed_section(7, network);
        let newcomer = id(50);
        close_with(&mut state, &keys, &network, |_, own| own);
        state.apply(&SectionEvent::Join { node: newcomer, reward: newcomer });
        close_with(&mut state, &keys, &network, |_, own| own);
        // Seven elders (f = 2) open the epoch; one is removed, leaving six (f = 1).
        let removed = AccountId::of(&keys[6]);
        for key in &keys[..5] {
            state.apply(&SectionEvent::Unresponsive { elder: AccountId::of(key), node: removed });
        }
        assert_eq!(state.elders().len(), 6);
        // Two reveals would outnumber the six's f, not the seven's.
        close_with(
            &mut state,
            &keys[..6],
            &network,
            |index, own| {
                if index < 2 {
                    own
                } else {
                    BeaconShare { reveal: None, ..own }
                }
            },
        );
        assert_eq!(state.members()[&newcomer].name, None, "two reveals name nobody in an epoch that opened with seven");
    }

    #[test]
    fn a_newcomer_is_named_from_secrets_revealed_only_after_it_joined() {
        let network = Digest([3; 32]);
        let (keys, mut state) = keyed_section(4, network);
        for (id, member) in state.members() {
            assert_eq!(member.name, Some(placement_name(&network, id)), "founders are named by the genesis");
        }
        // Every elder reports on the open epoch with its beacon share, except that the
        // first gives `first` in its place.
        let close = |state: &mut SectionState, first: Option<BeaconShare>| {
            close_with(state, &keys, &network, |index, own| if index == 0 { first.unwrap_or(own) } else { own });
        };
        let newcomer = id(50);
        close(&mut state, None);
        state.apply(&SectionEvent::Join { node: newcomer, reward: newcomer });
        assert_eq!(state.members()[&newcomer].name, None, "admitted, not placed yet");
        close(&mut state, None);
        assert_eq!(state.members()[&newcomer].name, None, "not at the close of the epoch it joined in");
        assert_eq!(state.placement().names().len(), 4, "it holds nothing meanwhile");

        let name_after = |first: Option<BeaconShare>| {
            let mut next = state.clone();
            close(&mut next, first);
            next.members()[&newcomer].name.expect("named at the next close")
        };
        let name = name_after(None);
        let withheld = name_after(Some(BeaconShare::default()));
        assert_ne!(name, withheld, "every elder's secret counts");
        let mut forged = BeaconShare::of(&keys[0], &network, state.epoch());
        forged.reveal = Some([9; 32]);
        assert_eq!(
            name_after(Some(forged)),
            withheld,
            "a reveal that is not the secret committed to counts for nothing"
        );
        // With f = 1 reveal or fewer, no honest secret need be in the beacon: it waits.
        let mut few = state.clone();
        close_with(
            &mut few,
            &keys,
            &network,
            |index, own| {
                if index == 0 {
                    own
                } else {
                    BeaconShare { reveal: None, ..own }
                }
            },
        );
        assert_eq!(few.members()[&newcomer].name, None, "one reveal of four names nobody");
        close(&mut few, None);
        assert!(few.members()[&newcomer].name.is_some(), "named at the first close with enough reveals");
        assert_ne!(name, acre_proofs::placement::node_name(&newcomer.0), "not the key's own name");
        assert_ne!(name, placement_name(&network, &newcomer), "not fixed by the key and the network");

        // Moving its rewards later keeps its place, and placement follows the name.
        close(&mut state, None);
        assert_eq!(state.members()[&newcomer].name, Some(name));
        let spendable = AccountId::of(&ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let moved = state.apply(&SectionEvent::Join { node: newcomer, reward: spendable });
        assert_eq!(moved, SectionChange::RewardMoved(newcomer));
        assert_eq!(state.members()[&newcomer].name, Some(name));
        assert_eq!(state.holders_of(&ChunkAddress(name)).first(), Some(&newcomer), "a chunk at its name is its first");
    }

    #[test]
    fn a_quorum_of_reports_closes_the_epoch_after_the_grace_and_pays_the_pool_out() {
        let mut state =
            SectionState::new(Digest::default(), &founders(4), Amount::from_credits(1_000).expect("amount"));
        store(&mut state, 9);
        let paid = Amount::from_credits(2).expect("amount");
        let payment = SectionEvent::PoolPayment { id: Digest([1; 32]), amount: paid, app_fee: None, chunks: vec![] };
        assert_eq!(state.apply(&payment), SectionChange::Collected(paid));
        assert_eq!(state.apply(&payment), SectionChange::None, "once");
        assert_eq!(state.apply(&report(1, 1, &[(2, 4)])), SectionChange::Reported);
        assert_eq!(state.apply(&report(9, 1, &[(2, 4)])), SectionChange::None, "not an elder");
        assert_eq!(state.apply(&report(2, 1, &[(2, 4)])), SectionChange::Reported);
        assert_eq!(state.apply(&report(3, 1, &[(2, 4)])), SectionChange::Reported, "a bare quorum waits");
        let grace = |elder: u8, epoch: u64| SectionEvent::GraceOver { elder: id(elder), epoch };
        assert_eq!(state.apply(&grace(1, 1)), SectionChange::Reported, "f elders cannot end the grace");
        assert_eq!(state.apply(&grace(1, 1)), SectionChange::None, "one elder twice is still one");
        assert_eq!(state.apply(&grace(9, 1)), SectionChange::None, "not an elder");
        assert_eq!(state.apply(&grace(2, 2)), SectionChange::None, "another epoch");
        let SectionChange::Closed(record) = state.apply(&grace(2, 1)) else { panic!("not closed") };
        assert_eq!(record.items.len(), 1);
        assert_eq!(record.items[0].reward_address, id(102));
        assert_eq!(record.from_pool, paid);
        assert_eq!((state.epoch(), state.pool()), (2, Amount::ZERO));
        assert_eq!(state.apply(&report(4, 1, &[(2, 4)])), SectionChange::None, "a late report for a closed epoch");
        assert!(state.members().values().all(|m| m.age == MIN_ELDER_AGE + 1), "age rises with time served");
    }

    #[test]
    fn a_paid_chunk_enters_the_registry_only_with_three_holders_receipts() {
        let mut state = SectionState::new(Digest::default(), &founders(7), Amount::ZERO);
        let (chunk, unpaid) = (ChunkAddress([3; 32]), ChunkAddress([4; 32]));
        let holders: Vec<AccountId> = state.holders_of(&chunk);
        assert_eq!(holders.len(), COPIES);
        let signed =
            |count: usize| SectionEvent::Stored { chunk, holders: holders.iter().take(count).copied().collect() };
        assert_eq!(state.apply(&signed(3)), SectionChange::None, "not paid for");
        let payment = SectionEvent::PoolPayment {
            id: Digest([1; 32]),
            amount: Amount::ZERO,
            app_fee: None,
            chunks: vec![(chunk, 777)],
        };
        state.apply(&payment);
        assert_eq!(state.paid_size(&chunk), Some(777));
        assert_eq!(state.apply(&signed(2)), SectionChange::None, "two receipts are not enough");
        let strangers = SectionEvent::Stored { chunk, holders: [id(90), id(91), id(92)].into() };
        assert_eq!(state.apply(&strangers), SectionChange::None, "receipts from non-members count for nothing");
        assert_eq!(state.apply(&signed(3)), SectionChange::Stored(chunk));
        assert_eq!(state.registry().get(&chunk), Some(&777), "at the size the payment named");
        assert_eq!(state.apply(&signed(4)), SectionChange::None, "once");
        let farmers = state.farmers();
        assert_eq!(farmers.values().filter(|f| f.bytes == 777).count(), COPIES, "a duty on each of its holders");
        let unpaid_holders = state.holders_of(&unpaid).into_iter().collect();
        assert_eq!(state.apply(&SectionEvent::Stored { chunk: unpaid, holders: unpaid_holders }), SectionChange::None);

        // A paid chunk nobody signs for lapses after PAID_EPOCHS closes.
        let late = ChunkAddress([5; 32]);
        state.apply(&SectionEvent::PoolPayment {
            id: Digest([2; 32]),
            amount: Amount::ZERO,
            app_fee: None,
            chunks: vec![(late, 1)],
        });
        for epoch in 1..=PAID_EPOCHS {
            for elder in 1..=7 {
                state.apply(&report(elder, epoch, &[]));
            }
        }
        assert_eq!(state.paid_size(&late), None);
    }

    #[test]
    fn joins_are_rate_limited_and_removal_takes_a_quorum() {
        let mut state = SectionState::new(Digest::default(), &founders(4), Amount::ZERO);
        assert_eq!(state.apply(&SectionEvent::Join { node: id(20), reward: id(20) }), SectionChange::Admitted(id(20)));
        assert_eq!(
            state.apply(&SectionEvent::Join { node: id(21), reward: id(21) }),
            SectionChange::None,
            "one per epoch"
        );
        assert_eq!(
            state.apply(&SectionEvent::Join { node: id(20), reward: id(20) }),
            SectionChange::None,
            "already a member, same address"
        );
        assert!(!state.elders().contains(&id(20)), "a newcomer is no elder, however few the members");
        // The newcomer serves MIN_ELDER_AGE epochs; then, with fewer than 7 members, all are elders.
        for epoch in 1..=MIN_ELDER_AGE {
            for elder in 1..=4 {
                state.apply(&report(elder, epoch, &[]));
            }
        }
        assert!(state.elders().contains(&id(20)), "seasoned now");
        let down = SectionEvent::Unresponsive { elder: id(1), node: id(4) };
        assert_eq!(state.apply(&down), SectionChange::Reported);
        assert_eq!(state.apply(&down), SectionChange::Reported, "one elder twice is still one");
        assert_eq!(state.apply(&SectionEvent::Unresponsive { elder: id(2), node: id(4) }), SectionChange::Reported);
        assert_eq!(state.apply(&SectionEvent::Unresponsive { elder: id(3), node: id(4) }), SectionChange::Reported);
        // Five elders now (4 founders and the newcomer): the quorum is 4.
        assert_eq!(
            state.apply(&SectionEvent::Unresponsive { elder: id(20), node: id(4) }),
            SectionChange::Removed(id(4))
        );
        assert!(!state.elders().contains(&id(4)));
    }

    #[test]
    fn a_removed_farmer_is_not_paid_and_the_items_still_add_up() {
        let valid = |n: u64| AccountId::of(&crate::testkit::key(70, n));
        let founders: Vec<(AccountId, AccountId)> = (0..7).map(|n| (valid(n), valid(n + 100))).collect();
        let mut state = SectionState::new(Digest::default(), &founders, Amount::ZERO);
        let joiner = valid(50);
        state.apply(&SectionEvent::Join { node: joiner, reward: AccountId([0; 32]) });
        assert_eq!(
            state.members()[&joiner].reward,
            joiner,
            "an unspendable reward address is replaced by the node's id"
        );
        let moved = SectionEvent::Join { node: valid(1), reward: valid(51) };
        assert_eq!(state.apply(&moved), SectionChange::RewardMoved(valid(1)), "a member moves its rewards");
        assert_eq!(state.members()[&valid(1)].reward, valid(51));
        assert_eq!(state.apply(&moved), SectionChange::None, "once");
        // The joiner is placed at the second close after it joined.
        for epoch in 1..=2 {
            for elder in 0..7 {
                let beacon = BeaconShare::of(&crate::testkit::key(70, elder), &Digest::default(), epoch);
                let empty =
                    EpochReport { elder: valid(elder), epoch, verdicts: vec![], usage: BTreeMap::new(), beacon };
                state.apply(&SectionEvent::Report(empty));
            }
        }
        assert_eq!(state.epoch(), 3);
        // A chunk on farmer 6 and the joiner among its holders.
        let chunk = (0u8..=255)
            .map(|n| ChunkAddress([n; 32]))
            .find(|chunk| {
                let holders = state.holders_of(chunk);
                holders.contains(&valid(6)) && holders.contains(&joiner)
            })
            .expect("a chunk held by both");
        state.apply(&SectionEvent::PoolPayment {
            id: Digest([1; 32]),
            amount: Amount::ZERO,
            app_fee: None,
            chunks: vec![(chunk, 100)],
        });
        let holders = state.holders_of(&chunk).into_iter().collect();
        state.apply(&SectionEvent::Stored { chunk, holders });
        let verdict = |holder| Verdict { holder, sampled: 1, passed: 1 };
        // Two reports, then farmer 6 is removed by a quorum, then the rest of the reports.
        let report = |elder| {
            let verdicts = vec![verdict(valid(6)), verdict(joiner)];
            SectionEvent::Report(EpochReport {
                elder: valid(elder),
                epoch: 3,
                verdicts,
                usage: BTreeMap::new(),
                beacon: Default::default(),
            })
        };
        state.apply(&report(0));
        state.apply(&report(1));
        for elder in 0..5 {
            state.apply(&SectionEvent::Unresponsive { elder: valid(elder), node: valid(6) });
        }
        assert!(!state.members().contains_key(&valid(6)));
        for elder in 2..6 {
            state.apply(&report(elder));
        }
        let record = state.records().last().expect("closed").clone();
        assert_eq!(record.epoch, 3);
        assert!(record.items.iter().all(|item| item.farmer != valid(6)), "removed before the close");
        assert!(record.items.iter().any(|item| item.farmer == joiner), "the joiner is paid for its part");
        let sum: u64 = record.items.iter().map(|i| i.amount.nanos()).sum();
        assert_eq!(sum, record.total.nanos());
    }

    /// Removals must not leave a section with too few elders for a quorum while its
    /// newcomers wait out their age: the next oldest fill up to four.
    #[test]
    fn young_members_fill_in_while_fewer_than_four_elders_are_seasoned() {
        let mut state = SectionState::new(Digest::default(), &founders(4), Amount::ZERO);
        state.apply(&SectionEvent::Join { node: id(20), reward: id(20) });
        assert_eq!(state.elders().len(), 4, "four seasoned founders");
        assert!(!state.elders().contains(&id(20)));
        for elder in 1..=3 {
            state.apply(&SectionEvent::Unresponsive { elder: id(elder), node: id(4) });
        }
        assert!(!state.members().contains_key(&id(4)));
        let elders = state.elders();
        assert_eq!(elders.len(), 4, "three seasoned and the newcomer: {elders:?}");
        assert!(elders.contains(&id(20)));
    }

    #[test]
    fn the_elders_are_the_oldest_members() {
        let mut state = SectionState::new(Digest::default(), &founders(7), Amount::ZERO);
        state.apply(&SectionEvent::Join { node: id(0), reward: id(0) });
        assert!(!state.elders().contains(&id(0)), "a newcomer waits its turn");
        state.apply(&SectionEvent::Unresponsive { elder: id(1), node: id(7) });
        for elder in 2..=5 {
            state.apply(&SectionEvent::Unresponsive { elder: id(elder), node: id(7) });
        }
        assert!(!state.elders().contains(&id(0)), "not even in a removed elder's place, before its time");
        assert_eq!(state.elders().len(), 6);
        for epoch in 1..=MIN_ELDER_AGE {
            for elder in 1..=6 {
                state.apply(&report(elder, epoch, &[]));
            }
        }
        assert!(state.elders().contains(&id(0)), "the next oldest takes the place of a removed elder");
    }

    /// Every event a small section might see in one epoch.
    fn event_pool() -> Vec<SectionEvent> {
        vec![
            SectionEvent::Join { node: id(20), reward: id(20) },
            SectionEvent::Join { node: id(21), reward: id(21) },
            SectionEvent::PoolPayment {
                id: Digest([7; 32]),
                amount: Amount::from_nanos(999).expect("amount"),
                app_fee: None,
                chunks: vec![],
            },
            SectionEvent::Unresponsive { elder: id(1), node: id(4) },
            SectionEvent::Unresponsive { elder: id(2), node: id(4) },
            report(1, 1, &[(2, 4), (3, 4), (4, 2)]),
            report(2, 1, &[(2, 4), (3, 1)]),
            report(3, 1, &[(2, 4), (4, 2)]),
            report(4, 1, &[(4, 2), (1, 3)]),
        ]
    }

    /// Model check, exhaustive over a small log: for every one of the 5,040 orderings of 7
    /// events (a join, a payment, an unresponsive report, four epoch reports), two elders
    /// applying that log agree on every state hash, no epoch closes twice, items add up,
    /// and supply = genesis + minted after every event.
    #[test]
    fn every_ordering_of_a_small_log_gives_one_record_per_epoch() {
        let genesis = Amount::from_credits(100).expect("amount");
        let events = event_pool();
        let mut records_by_log: BTreeMap<Vec<usize>, Vec<EpochRecord>> = BTreeMap::new();
        let chosen: Vec<usize> = vec![0, 2, 3, 5, 6, 7, 8];
        for order in crate::testkit::permutations(&chosen) {
            let mut first = SectionState::new(Digest::default(), &founders(4), genesis);
            store(&mut first, 1);
            let mut second = first.clone();
            for &index in &order {
                first.apply(&events[index]);
                second.apply(&events[index]);
                assert_eq!(first.state_hash().expect("hash"), second.state_hash().expect("hash"));
                let minted: u64 = first.records().map(|r| r.minted.nanos()).sum();
                assert_eq!(first.supply().nanos(), genesis.nanos() + minted, "supply = genesis + mints");
                for record in first.records() {
                    let sum: u64 = record.items.iter().map(|i| i.amount.nanos()).sum();
                    assert_eq!(sum, record.total.nanos());
                }
            }
            records_by_log.insert(order, first.records().cloned().collect());
        }
        // Within one log an epoch closes at most once.
        for records in records_by_log.values() {
            let epochs: BTreeSet<u64> = records.iter().map(|r| r.epoch).collect();
            assert_eq!(epochs.len(), records.len());
        }
    }

    proptest! {
        /// Over many epochs of random reports the cap holds and supply = genesis + mints.
        #[test]
        fn supply_is_genesis_plus_mints_and_never_passes_the_cap(
            genesis in 0u64..=Amount::MAX.nanos(),
            epochs in proptest::collection::vec(proptest::collection::vec((1u8..=4, 1u8..=4, 0u32..=4), 0..12), 1..40),
        ) {
            let genesis = Amount::from_nanos(genesis).expect("amount");
            let mut state = SectionState::new(Digest::default(), &founders(4), genesis);
            store(&mut state, 1);
            store(&mut state, 2);
            let mut minted = 0u64;
            for passes in epochs {
                let epoch = state.epoch();
                for elder in 1..=4u8 {
                    let mine: Vec<(u8, u32)> = passes.iter().filter(|p| p.0 == elder).map(|p| (p.1, p.2)).collect();
                    if let SectionChange::Closed(record) = state.apply(&report(elder, epoch, &mine)) {
                        minted += record.minted.nanos();
                    }
                }
                prop_assert_eq!(state.epoch(), epoch + 1);
                prop_assert!(state.records().len() <= RECENT_RECORDS);
                prop_assert_eq!(state.supply().nanos(), genesis.nanos() + minted);
                prop_assert!(state.supply() <= Amount::MAX);
            }
        }
    }
}
