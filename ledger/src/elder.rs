//! One elder's ledger as a pure state machine: messages in, answers and writes out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::confidential::{Commitment, HiddenAccount, HiddenKind, HiddenMove, IncomingCredit};
use crate::epoch::EpochRecord;
use crate::store::{Store, StoreError};
use crate::{
    AccountId, AccountState, Allocation, Amount, Certificate, Change, Committee, Confirmation, Digest, Effects,
    GenesisRecord, HistoryEntry, LedgerError, Lock, SignedOrder, VerifiedOrder, Vote, Write, WriteBatch,
};

/// Hash context of the state hash that honest elders compare.
const STATE_CONTEXT: &str = "acre 2026 ledger state v2";
/// Hash context of one account's contribution to the state hash.
const STATE_LEAF_CONTEXT: &str = "acre 2026 ledger state account v2";
/// Hash context of one spendable commitment's contribution to the state hash.
const HIDDEN_LEAF_CONTEXT: &str = "acre 2026 ledger state hidden v1";
/// Hash context of one incoming credit's contribution to the state hash.
const INCOMING_LEAF_CONTEXT: &str = "acre 2026 ledger state incoming v1";

/// The sum, modulo 2^256, of every account's leaf hash: a multiset hash that one account's
/// change updates in O(1), so the state hash costs nothing per query. It detects honest
/// elders diverging; it is not a commitment a client could be handed proofs against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StateSum([u64; 4]);

/// One item of the ledger's state, as the state hash counts it.
enum Leaf<'a> {
    Account(&'a AccountId, &'a AccountState),
    Hidden(&'a AccountId, &'a HiddenAccount),
    Incoming(&'a AccountId, &'a IncomingCredit),
}

impl StateSum {
    fn leaf(leaf: Leaf<'_>) -> [u64; 4] {
        let digest = match leaf {
            Leaf::Account(id, state) => {
                let balance = state.balance.nanos().to_le_bytes();
                let sequence = state.next_sequence.to_le_bytes();
                Digest::derive(STATE_LEAF_CONTEXT, &[&id.0, &balance, &sequence])
            }
            Leaf::Hidden(id, hidden) => Digest::derive(HIDDEN_LEAF_CONTEXT, &[&id.0, &hidden.spendable.0]),
            Leaf::Incoming(id, credit) => {
                Digest::derive(INCOMING_LEAF_CONTEXT, &[&id.0, &credit.certificate.0, &credit.amount.0])
            }
        };
        let mut limbs = [0u64; 4];
        for (limb, bytes) in limbs.iter_mut().zip(digest.0.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *limb = u64::from_le_bytes(word);
        }
        limbs
    }

    fn add(&mut self, leaf: Leaf<'_>) {
        self.fold(Self::leaf(leaf), u64::overflowing_add);
    }

    fn remove(&mut self, leaf: Leaf<'_>) {
        self.fold(Self::leaf(leaf), u64::overflowing_sub);
    }

    /// Adds or subtracts a leaf limb by limb, carrying (or borrowing) between limbs.
    fn fold(&mut self, leaf: [u64; 4], step: fn(u64, u64) -> (u64, bool)) {
        let mut carry = false;
        for (limb, operand) in self.0.iter_mut().zip(leaf) {
            let (value, first) = step(*limb, operand);
            let (value, second) = step(value, u64::from(carry));
            *limb = value;
            carry = first || second;
        }
    }

    fn to_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (chunk, limb) in bytes.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        bytes
    }
}

/// Whether an order's range proof must still be verified before an elder decides on it
/// ([`ElderState::precheck`]). Only the precheck can say it need not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofDuty {
    needed: bool,
}

impl ProofDuty {
    /// Verify it: always safe.
    pub const ALWAYS: ProofDuty = ProofDuty { needed: true };

    /// Whether the proof must be verified.
    pub fn needed(self) -> bool {
        self.needed
    }
}

/// An account as the elder holds it in memory.
#[derive(Debug, Clone)]
struct Account {
    state: AccountState,
    /// The decoded key, so an order costs one signature check and no point decompression.
    key: Option<VerifyingKey>,
    /// This elder's lock at `state.next_sequence`, if it voted there.
    pending: Option<Lock>,
    /// The spendable commitment, once the owner shielded or absorbed anything.
    hidden: Option<HiddenAccount>,
    /// Hidden amounts sent here and not yet folded in, by certificate id.
    incoming: BTreeMap<Digest, IncomingCredit>,
}

impl Account {
    fn new(id: &AccountId) -> Self {
        Account {
            state: AccountState::default(),
            key: id.verifying_key(),
            pending: None,
            hidden: None,
            incoming: BTreeMap::new(),
        }
    }

    /// Refuses an order this account cannot fund: a hidden order whose stated spendable
    /// commitment does not follow from this one, or a payment or shield its public
    /// balance does not cover.
    fn check_funds(&self, order: &crate::TransferOrder) -> Result<(), LedgerError> {
        if let Some(hidden) = &order.hidden {
            if self.spendable_after(order, hidden)? != hidden.spendable {
                return Err(LedgerError::HiddenMismatch);
            }
        }
        // Only a public payment or a shield spends the public balance.
        let public_debit =
            !matches!(order.hidden.as_ref().map(|h| &h.kind), Some(HiddenKind::Unshield | HiddenKind::Transfer { .. }));
        if public_debit && self.state.balance < order.amount {
            return Err(LedgerError::InsufficientBalance { balance: self.state.balance, amount: order.amount });
        }
        Ok(())
    }

    /// The spendable commitment a hidden order must state: the one held now, plus the
    /// credits it folds in, plus or minus what it moves. Shield and unshield amounts are
    /// public and unblinded on this side.
    fn spendable_after(&self, order: &crate::TransferOrder, hidden: &HiddenMove) -> Result<Commitment, LedgerError> {
        let current = self.hidden.map(|h| h.spendable).unwrap_or_default();
        let mut total = current.point()?;
        for id in &hidden.absorb {
            let credit = self.incoming.get(id).ok_or(LedgerError::UnknownIncoming { certificate: *id })?;
            total += credit.amount.point()?;
        }
        let public = Commitment::to_public(order.amount.nanos()).point()?;
        match &hidden.kind {
            HiddenKind::Shield => total += public,
            HiddenKind::Unshield => total -= public,
            HiddenKind::Transfer { amount, .. } => total -= amount.point()?,
        }
        Ok(Commitment::from_point(total))
    }
}

/// An elder's ledger. Handlers take `&self` and return [`Effects`]: the answer and the
/// writes that must be durable before the answer leaves; [`ElderState::apply`] then
/// folds those writes into memory. Nothing here reads a clock, a socket or a disk.
#[derive(Debug, Clone)]
pub struct ElderState {
    committee: Committee,
    signer: SigningKey,
    accounts: HashMap<AccountId, Account>,
    genesis: Option<GenesisRecord>,
    /// The network's identity: the committee's and the genesis's ([`crate::network_id`]).
    network: Digest,
    /// Applied epoch records' ids, by epoch.
    epochs: BTreeMap<u64, Digest>,
    /// Credits minted by applied epoch records.
    minted: Amount,
    /// Kept in step with `accounts` by every write that changes one.
    state_sum: StateSum,
}

impl ElderState {
    /// An elder with an empty ledger.
    pub fn new(committee: Committee, signer: SigningKey) -> Self {
        ElderState {
            network: crate::network_id(&committee, &[]),
            committee,
            signer,
            accounts: HashMap::new(),
            genesis: None,
            epochs: BTreeMap::new(),
            minted: Amount::ZERO,
            state_sum: StateSum::default(),
        }
    }

    /// Rebuilds the elder from what its store holds: exactly what it acknowledged.
    pub fn recover(committee: Committee, signer: SigningKey, store: &impl Store) -> Result<Self, StoreError> {
        let mut elder = ElderState::new(committee, signer);
        if let Some(genesis) = store.genesis()? {
            elder.note_genesis(genesis);
        }
        for record in store.epochs()? {
            elder.note_epoch(&record);
        }
        for (id, state) in store.accounts()? {
            let pending = store.lock(&id, state.next_sequence)?;
            elder.state_sum.add(Leaf::Account(&id, &state));
            elder.accounts.insert(id, Account { state, pending, ..Account::new(&id) });
        }
        let hidden = store.hidden_accounts()?.into_iter().map(|(id, h)| Write::Hidden(id, h));
        let incoming = store.incoming_credits()?.into_iter().map(|(id, c)| Write::Incoming(id, c));
        elder.apply(&WriteBatch { writes: hidden.chain(incoming).collect() });
        Ok(elder)
    }

    /// This elder's id (its public key).
    pub fn id(&self) -> AccountId {
        AccountId::of(&self.signer)
    }

    /// The key this elder votes with.
    pub(crate) fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// The key, for order checks to sign votes ahead ([`crate::VerifiedOrder::signed_ahead`]).
    pub fn vote_signer(&self) -> crate::VoteSigner {
        crate::VoteSigner::new(self.signer.clone())
    }

    /// The network this elder's ledger belongs to, which every order must name: its
    /// genesis hash ([`crate::network_id`]), known from the start for a network that
    /// starts unfunded and from its genesis record for one that does not.
    pub fn network(&self) -> Digest {
        self.network
    }

    fn note_genesis(&mut self, record: GenesisRecord) {
        self.network = crate::network_id(&self.committee, &record.allocations);
        self.genesis = Some(record);
    }

    /// Refuses an order for another network.
    fn check_network(&self, order: &crate::TransferOrder) -> Result<(), LedgerError> {
        if order.network == self.network {
            return Ok(());
        }
        Err(LedgerError::WrongNetwork { expected: self.network, got: order.network })
    }

    /// The committee whose certificates this elder accepts.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// Creates the initial supply. Repeating the same genesis changes nothing; any other
    /// genesis after the first is refused.
    pub fn genesis(&self, allocations: Vec<Allocation>) -> Result<Effects<Digest>, LedgerError> {
        let invalid = |reason: &str| LedgerError::InvalidGenesis { reason: reason.to_owned() };
        if allocations.is_empty() {
            return Err(invalid("no allocations"));
        }
        let mut seen = BTreeSet::new();
        let mut total = Amount::ZERO;
        for allocation in &allocations {
            if !seen.insert(allocation.account) {
                return Err(invalid("an account is listed twice"));
            }
            if allocation.amount.is_zero() {
                return Err(invalid("an allocation is zero"));
            }
            if allocation.account.verifying_key().is_none() {
                return Err(LedgerError::InvalidAccount { account: allocation.account });
            }
            total = total.checked_add(allocation.amount).ok_or(LedgerError::AmountOverflow)?;
        }
        let record = GenesisRecord { allocations, total };
        let id = record.id();
        match &self.genesis {
            Some(existing) if *existing == record => return Ok(Effects { answer: id, writes: WriteBatch::default() }),
            Some(_) => return Err(LedgerError::GenesisConflict),
            None if !self.accounts.is_empty() => return Err(LedgerError::GenesisConflict),
            None => {}
        }
        let mut writes = Vec::with_capacity(1 + 2 * record.allocations.len());
        for allocation in &record.allocations {
            let state = AccountState { balance: allocation.amount, next_sequence: 0, history_len: 1 };
            writes.push(Write::Account(allocation.account, state));
            let entry = HistoryEntry {
                index: 0,
                source: id,
                change: Change::Genesis,
                amount: allocation.amount,
                balance_after: allocation.amount,
            };
            writes.push(Write::History(allocation.account, entry));
        }
        writes.push(Write::Genesis(record));
        Ok(Effects { answer: id, writes: WriteBatch { writes } })
    }

    /// Votes for an order, or refuses it.
    ///
    /// Checks the owner's signature, that the sequence is the account's next, that this
    /// elder has not voted for a different order there, and that the balance covers the
    /// amount. The vote's lock is in the returned writes: it must be durable before the
    /// vote is released, or a restart could let the elder vote twice. A repeated order
    /// returns the same vote and no writes.
    pub fn handle_order(&self, signed: &SignedOrder) -> Result<Effects<Vote>, LedgerError> {
        self.decide_order(signed, true, None)
    }

    /// [`ElderState::handle_order`] for an order whose signature was already checked; a
    /// vote it carries signed ahead by this elder is the one given.
    pub fn handle_verified_order(&self, order: &VerifiedOrder) -> Result<Effects<Vote>, LedgerError> {
        self.decide_order(order.signed(), false, order.vote_ahead(&self.id()))
    }

    /// Decides an order; `ahead` is this elder's vote signed ahead, if any.
    fn decide_order(
        &self,
        signed: &SignedOrder,
        check_signature: bool,
        ahead: Option<Vote>,
    ) -> Result<Effects<Vote>, LedgerError> {
        let order = &signed.order;
        order.check_well_formed()?;
        self.check_network(order)?;
        let sender = self.accounts.get(&order.from).ok_or(LedgerError::UnknownAccount { account: order.from })?;
        let key = sender.key.ok_or(LedgerError::InvalidAccount { account: order.from })?;
        if check_signature {
            signed.verify_with(&key)?;
            order.check_hidden(&self.network)?;
        }
        self.check_recipient(&order.to)?;
        if order.sequence != sender.state.next_sequence {
            return Err(LedgerError::UnexpectedSequence { expected: sender.state.next_sequence, got: order.sequence });
        }
        let digest = order.digest();
        if let Some(lock) = &sender.pending {
            if lock.vote.order == digest {
                return Ok(Effects { answer: lock.vote, writes: WriteBatch::default() });
            }
            return Err(LedgerError::ConflictingOrder { voted: lock.vote.order });
        }
        sender.check_funds(order)?;
        let ahead = ahead.filter(|vote| vote.order == digest);
        let vote = ahead.unwrap_or_else(|| Vote::sign(&self.signer, digest));
        let lock = Lock { order: signed.clone(), vote };
        Ok(Effects { answer: vote, writes: WriteBatch { writes: vec![Write::Lock(lock)] } })
    }

    /// Applies a certificate: debits the sender, bumps its sequence, credits the
    /// recipient. A certificate already applied answers the same and writes nothing.
    pub fn handle_certificate(&self, certificate: &Certificate) -> Result<Effects<Confirmation>, LedgerError> {
        certificate.order.check_well_formed()?;
        self.committee.verify_certificate(certificate)?;
        self.handle_verified_certificate(certificate)
    }

    /// [`ElderState::handle_certificate`] for a certificate whose votes were already
    /// checked, e.g. in one batch with others by [`Committee::verify_certificates`].
    pub fn handle_verified_certificate(&self, certificate: &Certificate) -> Result<Effects<Confirmation>, LedgerError> {
        let order = &certificate.order;
        order.check_well_formed()?;
        self.check_network(order)?;
        let id = certificate.id();
        let answer = Confirmation { certificate: id, from: order.from, sequence: order.sequence };
        // A certified sender unknown here was funded by certificates not applied here yet.
        let sender = self.accounts.get(&order.from).ok_or(LedgerError::CreditsNotYetApplied)?;
        let next = sender.state.next_sequence;
        if order.sequence < next {
            return Ok(Effects { answer, writes: WriteBatch::default() });
        }
        if order.sequence > next {
            return Err(LedgerError::MissingPredecessor { expected: next });
        }
        self.check_recipient(&order.to)?;
        if let Some(hidden) = &order.hidden {
            return self.apply_hidden(certificate, hidden, sender, answer);
        }
        let sender_balance = sender.state.balance.checked_sub(order.amount).ok_or(LedgerError::CreditsNotYetApplied)?;
        let recipient = self.accounts.get(&order.to).map(|a| a.state).unwrap_or_default();
        let recipient_balance = recipient.balance.checked_add(order.amount).ok_or(LedgerError::AmountOverflow)?;
        let sender_state = AccountState {
            balance: sender_balance,
            next_sequence: next + 1,
            history_len: sender.state.history_len + 1,
        };
        let recipient_state = AccountState {
            balance: recipient_balance,
            next_sequence: recipient.next_sequence,
            history_len: recipient.history_len + 1,
        };
        let entry = |index, change, balance_after| HistoryEntry {
            index,
            source: id,
            change,
            amount: order.amount,
            balance_after,
        };
        let sent =
            entry(sender.state.history_len, Change::Sent { to: order.to, sequence: order.sequence }, sender_balance);
        let received = entry(
            recipient.history_len,
            Change::Received { from: order.from, sequence: order.sequence },
            recipient_balance,
        );
        let writes = vec![
            Write::Account(order.from, sender_state),
            Write::Account(order.to, recipient_state),
            Write::History(order.from, sent),
            Write::History(order.to, received),
            Write::Certificate(certificate.clone()),
        ];
        Ok(Effects { answer, writes: WriteBatch { writes } })
    }

    /// The writes of a certified hidden order, whose sequence is the sender's next.
    fn apply_hidden(
        &self,
        certificate: &Certificate,
        hidden: &HiddenMove,
        sender: &Account,
        answer: Confirmation,
    ) -> Result<Effects<Confirmation>, LedgerError> {
        let order = &certificate.order;
        let id = certificate.id();
        // A quorum checked this against the same sender state; a difference here means
        // this elder misses credits the order folds in (`UnknownIncoming`, retryable).
        if sender.spendable_after(order, hidden)? != hidden.spendable {
            return Err(LedgerError::HiddenMismatch);
        }
        let mut sender_state = sender.state;
        sender_state.next_sequence += 1;
        let mut writes = Vec::with_capacity(8 + hidden.absorb.len());
        writes.extend(hidden.absorb.iter().map(|credit| Write::Absorbed(order.from, *credit)));
        let note = HiddenAccount { spendable: hidden.spendable, note: hidden.note, sequence: order.sequence };
        writes.push(Write::Hidden(order.from, note));
        let mut history = |account: AccountId, state: &mut AccountState, change, amount| {
            let entry =
                HistoryEntry { index: state.history_len, source: id, change, amount, balance_after: state.balance };
            state.history_len += 1;
            writes.push(Write::History(account, entry));
        };
        let sequence = order.sequence;
        match &hidden.kind {
            HiddenKind::Shield => {
                sender_state.balance =
                    sender_state.balance.checked_sub(order.amount).ok_or(LedgerError::CreditsNotYetApplied)?;
                history(order.from, &mut sender_state, Change::Shielded { sequence }, order.amount);
                writes.push(Write::Account(order.from, sender_state));
            }
            HiddenKind::Unshield if order.to == order.from => {
                sender_state.balance =
                    sender_state.balance.checked_add(order.amount).ok_or(LedgerError::AmountOverflow)?;
                history(order.from, &mut sender_state, Change::Unshielded { to: order.to, sequence }, order.amount);
                writes.push(Write::Account(order.from, sender_state));
            }
            HiddenKind::Unshield => {
                let mut recipient = self.account(&order.to).unwrap_or_default();
                recipient.balance = recipient.balance.checked_add(order.amount).ok_or(LedgerError::AmountOverflow)?;
                history(order.from, &mut sender_state, Change::Unshielded { to: order.to, sequence }, order.amount);
                history(order.to, &mut recipient, Change::Received { from: order.from, sequence }, order.amount);
                writes.push(Write::Account(order.from, sender_state));
                writes.push(Write::Account(order.to, recipient));
            }
            HiddenKind::Transfer { amount, opening } => {
                let mut recipient = self.account(&order.to).unwrap_or_default();
                history(order.from, &mut sender_state, Change::SentHidden { to: order.to, sequence }, Amount::ZERO);
                history(order.to, &mut recipient, Change::ReceivedHidden { from: order.from, sequence }, Amount::ZERO);
                writes.push(Write::Account(order.from, sender_state));
                writes.push(Write::Account(order.to, recipient));
                let credit =
                    IncomingCredit { certificate: id, from: order.from, sequence, amount: *amount, opening: *opening };
                writes.push(Write::Incoming(order.to, credit));
            }
        }
        writes.push(Write::Certificate(certificate.clone()));
        Ok(Effects { answer, writes: WriteBatch { writes } })
    }

    /// Applies an agreed epoch record, once: credits each item's reward address, takes
    /// what the record pays from the pool out of `pool`, and counts the minted credits.
    /// The same record again changes nothing; a different one for an applied epoch is
    /// refused. Supply afterwards is genesis plus every record's `minted`.
    pub fn handle_epoch(&self, record: &EpochRecord, pool: &AccountId) -> Result<Effects<Digest>, LedgerError> {
        let id = record.id();
        match self.epochs.get(&record.epoch) {
            Some(applied) if *applied == id => return Ok(Effects { answer: id, writes: WriteBatch::default() }),
            Some(_) => return Err(LedgerError::EpochConflict { epoch: record.epoch }),
            None => {}
        }
        let amounts = record.items.iter().map(|item| item.amount).chain(record.apps.iter().map(|item| item.amount));
        let items: Amount = amounts
            .into_iter()
            .try_fold(Amount::ZERO, |sum, amount| sum.checked_add(amount))
            .ok_or(LedgerError::EpochUnbalanced { epoch: record.epoch })?;
        if Some(items) != record.minted.checked_add(record.from_pool) || items != record.total {
            return Err(LedgerError::EpochUnbalanced { epoch: record.epoch });
        }
        // Running states, so two items paying one address add up.
        let mut states: BTreeMap<AccountId, AccountState> = BTreeMap::new();
        let mut writes = Vec::with_capacity(2 * record.items.len() + 3);
        let mut entry = |writes: &mut Vec<Write>, account: AccountId, change: Change, amount: Amount, credit: bool| {
            let state = states.entry(account).or_insert_with(|| self.account(&account).unwrap_or_default());
            let balance = if credit { state.balance.checked_add(amount) } else { state.balance.checked_sub(amount) };
            let balance = balance.ok_or(if credit {
                LedgerError::AmountOverflow
            } else {
                LedgerError::InsufficientBalance { balance: state.balance, amount }
            })?;
            let history = HistoryEntry { index: state.history_len, source: id, change, amount, balance_after: balance };
            *state = AccountState { balance, next_sequence: state.next_sequence, history_len: state.history_len + 1 };
            writes.push(Write::History(account, history));
            Ok::<(), LedgerError>(())
        };
        if !record.from_pool.is_zero() {
            entry(&mut writes, *pool, Change::PoolPayout { epoch: record.epoch }, record.from_pool, false)?;
        }
        for item in record.items.iter().filter(|item| !item.amount.is_zero()) {
            self.check_recipient(&item.reward_address)?;
            entry(&mut writes, item.reward_address, Change::Reward { epoch: record.epoch }, item.amount, true)?;
        }
        for item in record.apps.iter().filter(|item| !item.amount.is_zero()) {
            self.check_recipient(&item.payout)?;
            let change = Change::AppPayout { epoch: record.epoch, app: item.app };
            entry(&mut writes, item.payout, change, item.amount, true)?;
        }
        writes.extend(states.into_iter().map(|(account, state)| Write::Account(account, state)));
        writes.push(Write::Epoch(record.clone()));
        Ok(Effects { answer: id, writes: WriteBatch { writes } })
    }

    /// Credits minted by applied epoch records.
    pub fn minted(&self) -> Amount {
        self.minted
    }

    /// The applied epoch records' ids, by epoch.
    pub fn epochs(&self) -> &BTreeMap<u64, Digest> {
        &self.epochs
    }

    fn note_epoch(&mut self, record: &EpochRecord) {
        if self.epochs.insert(record.epoch, record.id()).is_none() {
            self.minted = self.minted.checked_add(record.minted).unwrap_or(Amount::MAX);
        }
    }

    /// Folds writes returned by a handler into memory. Call it with every batch the
    /// store accepted, in the order the handlers produced them.
    pub fn apply(&mut self, batch: &WriteBatch) {
        for write in &batch.writes {
            match write {
                Write::Account(id, state) => {
                    if let Some(old) = self.accounts.get(id) {
                        self.state_sum.remove(Leaf::Account(id, &old.state));
                    }
                    self.state_sum.add(Leaf::Account(id, state));
                    let account = self.accounts.entry(*id).or_insert_with(|| Account::new(id));
                    account.state = *state;
                    if account.pending.as_ref().is_some_and(|lock| lock.order.order.sequence < state.next_sequence) {
                        account.pending = None;
                    }
                }
                Write::Lock(lock) => {
                    let order = &lock.order.order;
                    if let Some(account) = self.accounts.get_mut(&order.from) {
                        if account.state.next_sequence == order.sequence {
                            account.pending = Some(lock.clone());
                        }
                    }
                }
                Write::Hidden(id, hidden) => {
                    let account = self.accounts.entry(*id).or_insert_with(|| Account::new(id));
                    if let Some(old) = account.hidden.replace(*hidden) {
                        self.state_sum.remove(Leaf::Hidden(id, &old));
                    }
                    self.state_sum.add(Leaf::Hidden(id, hidden));
                }
                Write::Incoming(id, credit) => {
                    let account = self.accounts.entry(*id).or_insert_with(|| Account::new(id));
                    if account.incoming.insert(credit.certificate, *credit).is_none() {
                        self.state_sum.add(Leaf::Incoming(id, credit));
                    }
                }
                Write::Absorbed(id, certificate) => {
                    if let Some(credit) = self.accounts.get_mut(id).and_then(|a| a.incoming.remove(certificate)) {
                        self.state_sum.remove(Leaf::Incoming(id, &credit));
                    }
                }
                Write::Genesis(record) => self.note_genesis(record.clone()),
                Write::Epoch(record) => self.note_epoch(record),
                Write::Certificate(_) | Write::History(..) => {}
            }
        }
    }

    /// An account's state, if it has ever held credits.
    pub fn account(&self, id: &AccountId) -> Option<AccountState> {
        self.accounts.get(id).map(|account| account.state)
    }

    /// How many accounts have ever held credits.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The order this elder voted for at the account's next sequence, if any.
    pub fn pending(&self, id: &AccountId) -> Option<&Lock> {
        self.accounts.get(id).and_then(|account| account.pending.as_ref())
    }

    /// The genesis record, once made.
    pub fn genesis_record(&self) -> Option<&GenesisRecord> {
        self.genesis.as_ref()
    }

    /// The sum of all public balances; genesis plus minted, less what is hidden.
    pub fn circulating(&self) -> Option<Amount> {
        self.accounts.values().try_fold(Amount::ZERO, |sum, account| sum.checked_add(account.state.balance))
    }

    /// Every check of a hidden order that needs this elder's state and no cryptography,
    /// made before its range proof is verified: a node runs it first, so an order this
    /// elder would refuse anyway (unknown sender, wrong sequence, credits not held, a
    /// spendable commitment that does not follow, a shield the balance does not cover)
    /// costs no proof. An order at a sequence this elder already voted on or passed needs
    /// no proof either: the vote stored for its digest, or the conflict, answers it.
    pub fn precheck(&self, order: &crate::TransferOrder) -> Result<ProofDuty, LedgerError> {
        if order.hidden.is_none() {
            return Ok(ProofDuty::ALWAYS);
        }
        let account = self.accounts.get(&order.from).ok_or(LedgerError::UnknownAccount { account: order.from })?;
        let next = account.state.next_sequence;
        if order.sequence > next {
            return Err(LedgerError::UnexpectedSequence { expected: next, got: order.sequence });
        }
        if order.sequence < next || account.pending.is_some() {
            return Ok(ProofDuty { needed: false });
        }
        self.check_recipient(&order.to)?;
        account.check_funds(order)?;
        Ok(ProofDuty::ALWAYS)
    }

    /// An account's spendable commitment, if it has one.
    pub fn hidden(&self, id: &AccountId) -> Option<HiddenAccount> {
        self.accounts.get(id).and_then(|account| account.hidden)
    }

    /// Hidden amounts sent to an account and not yet folded in.
    pub fn incoming(&self, id: &AccountId) -> Vec<IncomingCredit> {
        self.accounts.get(id).map(|account| account.incoming.values().copied().collect()).unwrap_or_default()
    }

    /// Every commitment the ledger holds (spendable and incoming), by account: with the
    /// public balances, all the supply audit needs.
    pub fn commitments(&self) -> impl Iterator<Item = (&AccountId, &Commitment)> {
        self.accounts.iter().flat_map(|(id, account)| {
            let spendable = account.hidden.as_ref().map(|hidden| (id, &hidden.spendable));
            spendable.into_iter().chain(account.incoming.values().map(move |credit| (id, &credit.amount)))
        })
    }

    /// Every account's public balance.
    pub fn balances(&self) -> impl Iterator<Item = (&AccountId, Amount)> {
        self.accounts.iter().map(|(id, account)| (id, account.state.balance))
    }

    /// Genesis plus minted: every credit that exists, public or hidden.
    pub fn issued(&self) -> Option<Amount> {
        let genesis = self.genesis.as_ref().map_or(Amount::ZERO, |record| record.total);
        genesis.checked_add(self.minted)
    }

    /// The supply audit over this elder's state ([`crate::confidential::audit`]).
    pub fn audit(&self) -> Result<crate::confidential::SupplyAudit, LedgerError> {
        let issued = self.issued().ok_or(LedgerError::AmountOverflow)?;
        let public = self.balances().map(|(_, balance)| balance);
        Ok(crate::confidential::audit(issued, public, self.commitments().map(|(_, c)| c))?)
    }

    /// A hash of every account's balance and sequence (and the genesis record): equal at
    /// two elders exactly when they applied the same certificates. O(1): see [`StateSum`].
    pub fn state_hash(&self) -> Digest {
        let genesis = self.genesis.as_ref().map(GenesisRecord::id).unwrap_or_default();
        Digest::derive(STATE_CONTEXT, &[&genesis.0, &self.state_sum.to_bytes()])
    }

    fn check_recipient(&self, to: &AccountId) -> Result<(), LedgerError> {
        let valid = match self.accounts.get(to) {
            Some(account) => account.key.is_some(),
            None => to.verifying_key().is_some(),
        };
        valid.then_some(()).ok_or(LedgerError::InvalidAccount { account: *to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::keys;

    #[test]
    fn the_state_sum_is_order_free_and_undoes_exactly() {
        let [a, b] = keys::<2>(90).map(|k| AccountId::of(&k));
        let state = |nanos, next_sequence| AccountState {
            balance: Amount::from_nanos(nanos).expect("amount"),
            next_sequence,
            history_len: 0,
        };
        let mut one = StateSum::default();
        one.add(Leaf::Account(&a, &state(5, 0)));
        one.add(Leaf::Account(&b, &state(u64::MAX >> 20, 3)));
        let mut other = StateSum::default();
        other.add(Leaf::Account(&b, &state(u64::MAX >> 20, 3)));
        other.add(Leaf::Account(&a, &state(5, 0)));
        assert_eq!(one, other, "the sum does not depend on the order accounts were added in");
        one.remove(Leaf::Account(&b, &state(u64::MAX >> 20, 3)));
        one.add(Leaf::Account(&b, &state(7, 4)));
        assert_ne!(one, other);
        one.remove(Leaf::Account(&b, &state(7, 4)));
        one.remove(Leaf::Account(&a, &state(5, 0)));
        assert_eq!(one, StateSum::default(), "removing every leaf gives back zero, carries included");
    }
}
