//! The section log's language: what elders put into it ([`LogItem`]), which ordered items
//! count and as what ([`admit`]), and what an epoch closes with ([`EpochOutcome`]) — the
//! record, the state hash and the items that give both, signed by the session's elders so
//! a node that was not there can check it by replaying ([`verify_outcome`]).

use std::collections::BTreeMap;

use acre_api::farming::StatementLine;
use acre_api::storage::ChallengeTally;
use acre_ledger::economics::{app_fee_of, billable_bytes, check_store_payment, store_cost};
use acre_ledger::section_state::{SectionChange, SectionEvent, SectionState};
use acre_ledger::{
    AccountId, Amount, Certificate, Committee, Digest, EpochRecord, EpochReport, SignatureBytes, SignedAppCommand,
};
use acre_proofs::ChunkAddress;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// Hash context of what elders sign when an epoch closes.
const OUTCOME_CONTEXT: &str = "acre 2026 epoch outcome v1";
/// Hash context of a node's request to join or to move its rewards.
const ENROLMENT_CONTEXT: &str = "acre 2026 enrolment v2";
/// Hash context of a holder's receipt for a chunk it stored.
const RECEIPT_CONTEXT: &str = "acre 2026 stored chunk v1";

/// A holder's signed word that it stores a chunk, durably, at this size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReceipt {
    /// The holder.
    pub holder: AccountId,
    /// Its signature over the chunk and size.
    pub signature: SignatureBytes,
}

impl StoreReceipt {
    /// The receipt of the holder whose key is `key` for `chunk` of `size` bytes.
    pub fn sign(key: &SigningKey, chunk: &ChunkAddress, size: u64) -> Self {
        let holder = AccountId::of(key);
        StoreReceipt { holder, signature: SignatureBytes::sign(key, &Self::digest(&holder, chunk, size)) }
    }

    fn digest(holder: &AccountId, chunk: &ChunkAddress, size: u64) -> Digest {
        Digest::derive(RECEIPT_CONTEXT, &[holder.as_bytes(), &chunk.0, &size.to_le_bytes()])
    }

    /// Whether the holder signed it for `chunk` of `size` bytes.
    pub fn is_valid_for(&self, chunk: &ChunkAddress, size: u64) -> bool {
        self.holder.verifying_key().is_some_and(|key| {
            key.verify_strict(Self::digest(&self.holder, chunk, size).as_bytes(), &self.signature.to_dalek()).is_ok()
        })
    }
}

/// A paid chunk and its holders' receipts: once ordered with receipts from
/// [`acre_ledger::section_state::STORED_RECEIPTS`] of its holders, it is in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChunk {
    /// The chunk.
    pub chunk: ChunkAddress,
    /// Its size, as the payment named it.
    pub size: u64,
    /// Its holders' receipts.
    pub receipts: Vec<StoreReceipt>,
}

/// A node's signed request to join the section, or as a member to move its rewards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The node.
    pub node: AccountId,
    /// Its reward address.
    pub reward: AccountId,
    /// The network it asks to join ([`acre_ledger::network_id`]): a node's enrolment on
    /// one network never enrols it on another.
    pub network: Digest,
    /// The epoch open when the node signed it. It counts only in that epoch and the next:
    /// every enrolment is public in the log, and without this anyone could replay a
    /// removed node's to bring it back.
    pub epoch: u64,
    /// The node's signature over the three.
    pub signature: SignatureBytes,
}

/// Epochs after the one it names that an enrolment still counts in.
pub const ENROLMENT_EPOCHS: u64 = 1;

impl Enrolment {
    /// The request of the node whose key is `key` to join `network`, made while `epoch`
    /// is open.
    pub fn new(key: &SigningKey, reward: AccountId, network: Digest, epoch: u64) -> Self {
        let node = AccountId::of(key);
        let signature = SignatureBytes::sign(key, &Self::digest(&node, &reward, &network, epoch));
        Enrolment { node, reward, network, epoch, signature }
    }

    fn digest(node: &AccountId, reward: &AccountId, network: &Digest, epoch: u64) -> Digest {
        let parts: [&[u8]; 4] = [node.as_bytes(), reward.as_bytes(), network.as_bytes(), &epoch.to_le_bytes()];
        Digest::derive(ENROLMENT_CONTEXT, &parts)
    }

    /// Whether the node itself signed it.
    pub fn is_valid(&self) -> bool {
        let digest = Self::digest(&self.node, &self.reward, &self.network, self.epoch);
        self.node
            .verifying_key()
            .is_some_and(|key| key.verify_strict(digest.as_bytes(), &self.signature.to_dalek()).is_ok())
    }

    /// Whether it still counts while `open` is the open epoch.
    pub fn is_fresh(&self, open: u64) -> bool {
        (self.epoch..=self.epoch.saturating_add(ENROLMENT_EPOCHS)).contains(&open)
    }
}

/// What elders put into the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogItem {
    /// A node asks to join (or to move its rewards), signed by it.
    Enrol(Enrolment),
    /// A store payment into the section's pool, with the chunks its memo names; its
    /// certificate proves it.
    Payment {
        /// The certified transfer to the pool.
        certificate: Certificate,
        /// The chunks and sizes the memo's digest stands for.
        chunks: Vec<(ChunkAddress, u64)>,
    },
    /// Holders say they store a paid chunk.
    Stored(StoredChunk),
    /// The proposing elder's audit report.
    Report(EpochReport),
    /// The proposing elder cannot reach this member.
    Unresponsive(AccountId),
    /// An app owner's signed command.
    App(SignedAppCommand),
    /// The proposing elder waited out the grace for the missing reports on this epoch.
    GraceOver(u64),
}

/// The event an ordered item stands for in `state` (the state the log has reached), or
/// `None` if it proves nothing. Deterministic, so every elder admits the same events: a
/// report or a liveness complaint counts only from the elder whose signed unit carried
/// it, a payment only with a valid certificate paying the pool for exactly the chunks its
/// memo names, a stored chunk only with receipts from enough of its holders, an enrolment
/// only with the node's signature.
pub fn admit(
    item: &LogItem,
    creator: &AccountId,
    committee: &Committee,
    pool: &AccountId,
    state: &SectionState,
) -> Option<SectionEvent> {
    match item {
        LogItem::Enrol(enrolment) => {
            (enrolment.network == state.network() && enrolment.is_fresh(state.epoch()) && enrolment.is_valid())
                .then_some(SectionEvent::Join { node: enrolment.node, reward: enrolment.reward })
        }
        LogItem::Payment { certificate, chunks } => {
            // Sizes a chunk can have, a bounded list, and at least the lowest price any
            // quote can give (an empty section's): a cheap payment cannot buy a large duty.
            crate::storage::check_entries(chunks).ok()?;
            let floor = lowest_price(chunks)?;
            let verified = committee.verify_all(vec![certificate.clone()]).into_iter().next()?.ok()?;
            let order = &verified.certificate().order;
            let named: Vec<([u8; 32], u64)> = chunks.iter().map(|(chunk, size)| (chunk.0, *size)).collect();
            check_store_payment(order, pool, &named, named.first()?, floor).ok()?;
            Some(SectionEvent::PoolPayment {
                id: certificate.id(),
                amount: order.amount,
                app_fee: app_fee_of(order),
                chunks: chunks.clone(),
            })
        }
        LogItem::Stored(stored) => {
            if state.paid_size(&stored.chunk) != Some(stored.size) {
                return None;
            }
            let holders = state.holders_of(&stored.chunk);
            let signed: std::collections::BTreeSet<AccountId> = stored
                .receipts
                .iter()
                .filter(|receipt| holders.contains(&receipt.holder) && receipt.is_valid_for(&stored.chunk, stored.size))
                .map(|receipt| receipt.holder)
                .collect();
            Some(SectionEvent::Stored { chunk: stored.chunk, holders: signed })
        }
        LogItem::Report(report) => (report.elder == *creator).then(|| SectionEvent::Report(report.clone())),
        LogItem::Unresponsive(node) => Some(SectionEvent::Unresponsive { elder: *creator, node: *node }),
        LogItem::GraceOver(epoch) => Some(SectionEvent::GraceOver { elder: *creator, epoch: *epoch }),
        LogItem::App(command) => {
            if command.command.network != state.network() {
                return None;
            }
            command.check_fee(pool).ok()?;
            if let Some(fee) = &command.fee {
                committee.verify_all(vec![fee.clone()]).into_iter().next()?.ok()?;
            }
            command.is_valid().then(|| SectionEvent::App(Box::new(command.clone())))
        }
    }
}

/// Bytes of items an elder may have ordered in one session, reports and complaints aside:
/// with at most 7 elders, an epoch's outcome stays well inside what a follower fetches
/// (the log protocol's 16 MiB replies) whatever members and outsiders send.
pub const LOG_BYTES_PER_ELDER: usize = 2 << 20;

/// Counts each session elder's ordered items against [`LOG_BYTES_PER_ELDER`]. The same
/// order gives the same counts at every elder, so every elder drops the same items; an
/// elder's own report and complaints are never counted, so no flood it proposes for
/// others can keep its report out of the log.
#[derive(Debug, Clone, Default)]
pub struct LogBudget {
    spent: BTreeMap<usize, usize>,
    /// Elders whose one unbudgeted `GraceOver` is ordered: an elder needs one per session,
    /// and more (naming other epochs) would be a flood no budget held.
    graced: std::collections::BTreeSet<usize>,
}

impl LogBudget {
    /// Whether the item `creator` had ordered fits its budget, counting it if so.
    pub fn admits(&mut self, creator: usize, item: &LogItem) -> bool {
        let first_grace = matches!(item, LogItem::GraceOver(_)) && self.graced.insert(creator);
        if first_grace || matches!(item, LogItem::Report(_) | LogItem::Unresponsive(_)) {
            return true;
        }
        spend(self.spent.entry(creator).or_default(), item.encoded_len(), LOG_BYTES_PER_ELDER)
    }
}

/// Adds `bytes` to `spent` if the total stays within `limit`; whether it did.
pub(crate) fn spend(spent: &mut usize, bytes: usize, limit: usize) -> bool {
    match spent.checked_add(bytes).filter(|total| *total <= limit) {
        Some(total) => {
            *spent = total;
            true
        }
        None => false,
    }
}

impl LogItem {
    /// Whether it is what an elder proposes of its own (its report, complaints and the end
    /// of its grace): small, a few an epoch, and never crowded out by what it proposes for
    /// others.
    pub fn is_elders_own(&self) -> bool {
        matches!(self, LogItem::Report(_) | LogItem::Unresponsive(_) | LogItem::GraceOver(_))
    }

    /// Its size on the wire and in the log.
    pub fn encoded_len(&self) -> usize {
        // Encoding into a Vec fails only for types postcard cannot encode, which a
        // LogItem is not; were it to, the item would count as too large to order.
        postcard::to_allocvec(self).map_or(usize::MAX, |bytes| bytes.len())
    }
}

/// The least any quote can ask for `chunks`: an empty section's price for their billable
/// bytes. Every elder can check it without knowing the fullness the uploader was quoted.
pub fn lowest_price(chunks: &[(ChunkAddress, u64)]) -> Option<Amount> {
    let bytes = billable_bytes(chunks.iter().map(|(_, size)| *size))?;
    store_cost(bytes, 0, 1)
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
    let mut budget = LogBudget::default();
    for (index, item) in &outcome.log {
        if closed.is_some() {
            return Err(OutcomeError::Replay);
        }
        let Some(creator) = elders.get(*index) else { continue };
        if !budget.admits(*index, item) {
            continue;
        }
        if let Some(event) = admit(item, creator, committee, pool, &replayed) {
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

pub(crate) fn closed_record(change: SectionChange) -> Option<EpochRecord> {
    match change {
        SectionChange::Closed(record) | SectionChange::RemovedAndClosed(_, record) => Some(record),
        _ => None,
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
    use acre_ledger::economics::pool_account;
    use acre_ledger::Verdict;

    /// An elder's first `GraceOver` of a session is never budgeted; further ones, naming
    /// whatever epochs, count against its share like any item, so they cannot flood the log.
    #[test]
    fn only_an_elders_first_grace_goes_unbudgeted() {
        let mut budget = LogBudget::default();
        let mut filler = 0usize;
        while budget.admits(0, &LogItem::Unresponsive(AccountId([1; 32])))
            && budget.admits(0, &LogItem::Enrol(enrolment_filler()))
        {
            filler += 1;
            assert!(filler < 100_000, "the budget never filled");
        }
        assert!(budget.admits(0, &LogItem::GraceOver(7)), "the first grace, whatever the budget");
        // What the share has left (less than an enrolment) takes a few more, then none.
        let more = (8..1_000).take_while(|epoch| budget.admits(0, &LogItem::GraceOver(*epoch))).count();
        assert!(more < 100, "further graces are budgeted: {more} more went in");
        assert!(budget.admits(1, &LogItem::GraceOver(7)), "another elder's first");
        assert!(
            budget.admits(
                0,
                &LogItem::Report(acre_ledger::EpochReport {
                    elder: AccountId([2; 32]),
                    epoch: 1,
                    verdicts: vec![],
                    usage: BTreeMap::new(),
                    beacon: Default::default(),
                })
            ),
            "reports stay unbudgeted"
        );
    }

    fn enrolment_filler() -> Enrolment {
        Enrolment::new(&SigningKey::from_bytes(&[3; 32]), AccountId([4; 32]), Digest::default(), 1)
    }

    fn keys(count: u8) -> Vec<SigningKey> {
        (1..=count).map(|n| SigningKey::from_bytes(&[n; 32])).collect()
    }

    fn founding(keys: &[SigningKey]) -> (SectionState, Committee) {
        let ids: Vec<AccountId> = keys.iter().map(AccountId::of).collect();
        let founders: Vec<(AccountId, AccountId)> = ids.iter().map(|id| (*id, *id)).collect();
        let chunks = (1..=8u8).map(|n| (acre_proofs::ChunkAddress([n; 32]), 1 << 20));
        let state =
            SectionState::new(acre_ledger::Digest::default(), &founders, Amount::from_credits(1_000).expect("amount"))
                .with_chunks(chunks);
        (state, Committee::new(ids).expect("committee"))
    }

    fn report(elder: &SigningKey, holders: &[AccountId]) -> LogItem {
        let verdicts = holders.iter().map(|holder| Verdict { holder: *holder, sampled: 4, passed: 4 }).collect();
        LogItem::Report(EpochReport {
            elder: AccountId::of(elder),
            epoch: 1,
            verdicts,
            usage: BTreeMap::new(),
            beacon: Default::default(),
        })
    }

    /// `state` after its open epoch `epoch` closed on every elder's report.
    fn close_empty(state: &SectionState, keys: &[SigningKey], epoch: u64) -> SectionState {
        let mut next = state.clone();
        let ids: Vec<AccountId> = keys.iter().map(AccountId::of).collect();
        for key in keys {
            let report = EpochReport {
                elder: AccountId::of(key),
                epoch,
                verdicts: Vec::new(),
                usage: BTreeMap::new(),
                beacon: Default::default(),
            };
            if closed_record(next.apply(&SectionEvent::Report(report))).is_some() {
                break;
            }
        }
        assert_eq!(next.epoch(), epoch + 1, "closed by {} reports", ids.len());
        next
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
            let Some(event) = admit(item, &elders[*creator], committee, &pool_account(""), &working) else { continue };
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
    fn reports_and_complaints_count_only_from_the_elder_whose_unit_carried_them() {
        let keys = keys(4);
        let (state, committee) = founding(&keys);
        let pool = pool_account("");
        let forged = report(&keys[0], &[AccountId::of(&keys[1])]);
        assert!(
            admit(&forged, &AccountId::of(&keys[2]), &committee, &pool, &state).is_none(),
            "in another elder's name"
        );
        assert!(admit(&forged, &AccountId::of(&keys[0]), &committee, &pool, &state).is_some());
        let joiner = SigningKey::from_bytes(&[50; 32]);
        let mut enrolment = Enrolment::new(&joiner, AccountId::of(&keys[0]), state.network(), state.epoch());
        assert!(
            admit(&LogItem::Enrol(enrolment.clone()), &AccountId::of(&keys[2]), &committee, &pool, &state).is_some()
        );
        let mut later = state.clone();
        for epoch in state.epoch()..=state.epoch() + ENROLMENT_EPOCHS {
            later = close_empty(&later, &keys, epoch);
        }
        assert!(
            admit(&LogItem::Enrol(enrolment.clone()), &AccountId::of(&keys[2]), &committee, &pool, &later).is_none(),
            "an old enrolment replayed (a removed node's, public in the log) counts for nothing"
        );
        let elsewhere = Enrolment::new(&joiner, AccountId::of(&joiner), Digest([9; 32]), state.epoch());
        assert!(
            admit(&LogItem::Enrol(elsewhere), &AccountId::of(&keys[2]), &committee, &pool, &state).is_none(),
            "an enrolment for another network"
        );
        enrolment.reward = AccountId::of(&keys[1]);
        assert!(
            admit(&LogItem::Enrol(enrolment), &AccountId::of(&keys[2]), &committee, &pool, &state).is_none(),
            "an enrolment changed by whoever carried it"
        );
    }

    /// Items cross the engine and the log protocol in postcard, which has no field names:
    /// an app command without a fee must decode as itself (a skipped field did not).
    #[test]
    fn app_commands_survive_the_binary_encoding_and_count_only_on_their_network() {
        let owner = SigningKey::from_bytes(&[70; 32]);
        let command = acre_ledger::AppCommand {
            network: Digest::default(),
            owner: AccountId::of(&owner),
            name: "photos".into(),
            nonce: 1,
            action: acre_ledger::AppAction::SetPrice(Amount::ZERO),
        }
        .sign(&owner);
        let item = LogItem::App(command.clone());
        let bytes = postcard::to_allocvec(&item).expect("encode");
        assert_eq!(postcard::from_bytes::<LogItem>(&bytes).expect("decode"), item);

        // Signed for one network, it is nothing on another.
        let (state, committee) = founding(&keys(4));
        let mut elsewhere = command.command;
        elsewhere.network = Digest([9; 32]);
        let item = LogItem::App(elsewhere.sign(&owner));
        assert!(admit(&item, &AccountId::of(&keys(4)[0]), &committee, &pool_account(""), &state).is_none());
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
            (
                index_of(&state, &keys[0]),
                LogItem::Enrol(Enrolment::new(&joiner, AccountId::of(&joiner), state.network(), state.epoch())),
            ),
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
