//! An elder bound to its store: commits each handler's writes before releasing its
//! answer. This is what a node (or a test committee) calls.

use ed25519_dalek::SigningKey;

use crate::store::{AppliedPage, Durability, Store};
use crate::{
    AccountId, Allocation, Certificate, Committee, Confirmation, Digest, Effects, ElderState, HistoryEntry,
    LedgerError, SignedOrder, VerifiedCertificate, VerifiedOrder, Vote, WriteBatch,
};

/// The answers of a mixed group commit: one per certificate, then one per order.
pub type GroupAnswers = (Vec<Result<Confirmation, LedgerError>>, Vec<Result<Vote, LedgerError>>);

/// An [`ElderState`] and its [`Store`]. Answers leave only after their writes are durable;
/// if a commit fails, memory is rebuilt from the store so nothing unacknowledged lingers.
#[derive(Debug)]
pub struct DurableElder<S> {
    state: ElderState,
    store: S,
    /// Set when memory could not be rebuilt after a failed commit; every call then fails.
    broken: Option<String>,
}

impl<S: Store> DurableElder<S> {
    /// Opens the elder on `store`, recovering whatever it holds. The store is synced first:
    /// after a crash it may hold writes that reached the OS but not the disk, and the elder
    /// must not answer from a lock that a power cut could still take away.
    pub fn open(committee: Committee, signer: SigningKey, mut store: S) -> Result<Self, LedgerError> {
        store.sync()?;
        let state = ElderState::recover(committee, signer, &store)?;
        Ok(DurableElder { state, store, broken: None })
    }

    /// The elder's in-memory state.
    pub fn state(&self) -> &ElderState {
        &self.state
    }

    /// The store, for queries.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Closes the elder, handing back its store.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Makes genesis (see [`ElderState::genesis`]), durably.
    pub fn genesis(&mut self, allocations: Vec<Allocation>) -> Result<Digest, LedgerError> {
        self.check_usable()?;
        let effects = self.state.genesis(allocations);
        self.commit_one(effects)
    }

    /// Applies an agreed epoch record (see [`ElderState::handle_epoch`]), durably, once,
    /// after `payments`: the certificates of the pool payments its epoch admitted, which
    /// must be applied for the pool to hold what the record pays out. Those already
    /// applied change nothing; one that cannot be applied yet (its sender's earlier
    /// certificates have not reached this elder) leaves the record to be tried again once
    /// catching up has brought them.
    pub fn handle_epoch(
        &mut self,
        record: &crate::epoch::EpochRecord,
        pool: &AccountId,
        payments: &[Certificate],
    ) -> Result<Digest, LedgerError> {
        self.check_usable()?;
        let mut unpaid = None;
        if !payments.is_empty() && !self.state.epochs().contains_key(&record.epoch) {
            unpaid = self.handle_certificates(payments).into_iter().find_map(Result::err);
        }
        let effects = self.state.handle_epoch(record, pool);
        // A record refused for want of a payment says which payment is missing.
        self.commit_one(effects).map_err(|refused| match (refused, unpaid) {
            (LedgerError::InsufficientBalance { .. }, Some(payment)) => payment,
            (refused, _) => refused,
        })
    }

    /// Votes for an order; the lock is synced to disk before the vote is returned.
    pub fn handle_order(&mut self, order: &SignedOrder) -> Result<Vote, LedgerError> {
        self.check_usable()?;
        let effects = self.settle_order(order, self.state.handle_order(order));
        self.commit_one(effects)
    }

    /// Votes on many orders with one sync for all their locks (group commit).
    pub fn handle_orders(&mut self, orders: &[SignedOrder]) -> Vec<Result<Vote, LedgerError>> {
        self.commit_group(orders.iter().map(Ok).collect(), |elder, order| {
            elder.settle_order(order, elder.state.handle_order(order))
        })
    }

    /// [`DurableElder::handle_orders`] for orders whose signatures were checked elsewhere
    /// (or that failed that check, answered with its refusal in their place).
    pub fn handle_verified_orders(
        &mut self,
        orders: Vec<Result<VerifiedOrder, LedgerError>>,
    ) -> Vec<Result<Vote, LedgerError>> {
        self.commit_group(orders, |elder, order| {
            elder.settle_order(order.signed(), elder.state.handle_verified_order(&order))
        })
    }

    /// Applies a certificate, durably.
    pub fn handle_certificate(&mut self, certificate: &Certificate) -> Result<Confirmation, LedgerError> {
        self.check_usable()?;
        let effects = self.state.handle_certificate(certificate).and_then(|e| self.check_not_conflicting(e));
        self.commit_one(effects)
    }

    /// Applies many certificates: one batch verification of all their votes and one sync.
    pub fn handle_certificates(&mut self, certificates: &[Certificate]) -> Vec<Result<Confirmation, LedgerError>> {
        let checked = self.state.committee().verify_certificates(certificates);
        let inputs = certificates.iter().zip(checked).map(|(certificate, check)| check.map(|()| certificate)).collect();
        self.commit_group(inputs, Self::apply_verified)
    }

    /// [`DurableElder::handle_certificates`] for certificates checked by
    /// [`Committee::verify_all`] elsewhere (or refused there).
    pub fn handle_verified_certificates(
        &mut self,
        certificates: Vec<Result<VerifiedCertificate, LedgerError>>,
    ) -> Vec<Result<Confirmation, LedgerError>> {
        self.commit_group(certificates, |elder, verified| elder.apply_verified(verified.certificate()))
    }

    /// Applies certificates and then votes on orders, all under one sync: an order whose
    /// sender's previous certificate travels with it costs the elder one sync, not two.
    /// The certificates are decided first, so the orders see what they settled.
    pub fn handle_verified_group(
        &mut self,
        certificates: Vec<Result<VerifiedCertificate, LedgerError>>,
        orders: Vec<Result<VerifiedOrder, LedgerError>>,
    ) -> GroupAnswers {
        if let Err(error) = self.check_usable() {
            return (
                certificates.iter().map(|_| Err(error.clone())).collect(),
                orders.iter().map(|_| Err(error.clone())).collect(),
            );
        }
        let mut batches = Vec::with_capacity(certificates.len() + orders.len());
        let confirmations = self
            .decide_into(&mut batches, certificates, |elder, verified| elder.apply_verified(verified.certificate()));
        let votes = self.decide_into(&mut batches, orders, |elder, order| {
            elder.settle_order(order.signed(), elder.state.handle_verified_order(&order))
        });
        match self.commit_batches(&batches) {
            Ok(()) => (confirmations, votes),
            Err(error) => (
                confirmations.iter().map(|_| Err(error.clone())).collect(),
                votes.iter().map(|_| Err(error.clone())).collect(),
            ),
        }
    }

    /// Applies certificates another elder made a moment ago and handed over in the
    /// background, without a sync of their own. Nothing that rests on them leaves before
    /// a sync: every vote is synced, and a synced write syncs the log before it. A killed
    /// process keeps them (the write reached the system); a power cut can lose only what
    /// the network still holds, since the elder that made them keeps them durable, and
    /// catch-up (whose applies are synced, so its cursor never passes an unsynced one) or
    /// the next vote on their sender hands them over again.
    pub fn handle_handed_certificates(
        &mut self,
        certificates: Vec<Result<VerifiedCertificate, LedgerError>>,
    ) -> Vec<Result<Confirmation, LedgerError>> {
        if let Err(error) = self.check_usable() {
            return certificates.iter().map(|_| Err(error.clone())).collect();
        }
        let mut batches = Vec::with_capacity(certificates.len());
        let answers = self
            .decide_into(&mut batches, certificates, |elder, verified| elder.apply_verified(verified.certificate()));
        for batch in &batches {
            if let Err(error) = self.store.commit(batch, Durability::Buffered) {
                self.rebuild_after_failed_commit();
                let error = LedgerError::from(error);
                return answers.iter().map(|_| Err(error.clone())).collect();
            }
        }
        answers
    }

    fn apply_verified(&self, certificate: &Certificate) -> Result<Effects<Confirmation>, LedgerError> {
        self.state.handle_verified_certificate(certificate).and_then(|effects| self.check_not_conflicting(effects))
    }

    /// Up to `limit` history entries of `account` from index `from` on.
    pub fn history(&self, account: &AccountId, from: u64, limit: usize) -> Result<Vec<HistoryEntry>, LedgerError> {
        Ok(self.store.history(account, from, limit)?)
    }

    /// The certificate applied at (account, sequence), if any.
    pub fn certificate_at(&self, account: &AccountId, sequence: u64) -> Result<Option<Certificate>, LedgerError> {
        match self.store.certificate_at(account, sequence)? {
            Some(id) => Ok(self.store.certificate(&id)?),
            None => Ok(None),
        }
    }

    /// Up to `limit` applied certificates from `position` on, for a peer catching up.
    pub fn applied_since(&self, position: u64, limit: usize) -> Result<AppliedPage, LedgerError> {
        Ok(self.store.applied_since(position, limit)?)
    }

    /// An order whose sequence is already past was voted for (if at all) long ago; the
    /// stored lock lets the elder answer a retry with the same vote as the first time,
    /// and a rival for that sequence learns it lost (`conflicting_order`), not merely
    /// that it came late.
    fn settle_order(
        &self,
        order: &SignedOrder,
        decided: Result<Effects<Vote>, LedgerError>,
    ) -> Result<Effects<Vote>, LedgerError> {
        match decided {
            Err(LedgerError::UnexpectedSequence { expected, got }) if got < expected => {
                let digest = order.order.digest();
                match self.store.lock(&order.order.from, got)? {
                    Some(lock) if lock.vote.order == digest => {
                        Ok(Effects { answer: lock.vote, writes: Default::default() })
                    }
                    // The sequence went to another order: say so, whoever asks later.
                    Some(lock) => Err(LedgerError::ConflictingOrder { voted: lock.vote.order }),
                    None => match self.store.certificate_at(&order.order.from, got)? {
                        Some(applied) if applied != digest => Err(LedgerError::ConflictingOrder { voted: applied }),
                        _ => Err(LedgerError::UnexpectedSequence { expected, got }),
                    },
                }
            }
            other => other,
        }
    }

    /// A repeated certificate is only a repeat if it is the one applied at its sequence;
    /// another would mean more than a third of the elders broke their locks.
    fn check_not_conflicting(&self, effects: Effects<Confirmation>) -> Result<Effects<Confirmation>, LedgerError> {
        if effects.writes.is_empty() {
            let answer = effects.answer;
            if let Some(applied) = self.store.certificate_at(&answer.from, answer.sequence)? {
                if applied != answer.certificate {
                    return Err(LedgerError::ConflictingOrder { voted: applied });
                }
            }
        }
        Ok(effects)
    }

    fn check_usable(&self) -> Result<(), LedgerError> {
        match &self.broken {
            Some(message) => Err(LedgerError::Storage { message: message.clone() }),
            None => Ok(()),
        }
    }

    fn commit_one<T>(&mut self, effects: Result<Effects<T>, LedgerError>) -> Result<T, LedgerError> {
        let effects = effects?;
        if let Err(error) = self.store.commit(&effects.writes, Durability::Synced) {
            self.rebuild_after_failed_commit();
            return Err(error.into());
        }
        self.state.apply(&effects.writes);
        Ok(effects.answer)
    }

    /// Decides each message against the state left by the ones before it, then commits
    /// all their writes with one sync. Until that sync no answer leaves.
    fn commit_group<M, T>(
        &mut self,
        inputs: Vec<Result<M, LedgerError>>,
        decide: impl Fn(&Self, M) -> Result<Effects<T>, LedgerError>,
    ) -> Vec<Result<T, LedgerError>> {
        if let Err(error) = self.check_usable() {
            return inputs.iter().map(|_| Err(error.clone())).collect();
        }
        let mut batches = Vec::with_capacity(inputs.len());
        let answers = self.decide_into(&mut batches, inputs, decide);
        match self.commit_batches(&batches) {
            Ok(()) => answers,
            Err(error) => answers.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    /// Decides each message against the state left by the ones before it, applying its
    /// writes to memory and keeping them in `batches` for the one sync that must come
    /// before any of the answers leaves.
    fn decide_into<M, T>(
        &mut self,
        batches: &mut Vec<WriteBatch>,
        inputs: Vec<Result<M, LedgerError>>,
        decide: impl Fn(&Self, M) -> Result<Effects<T>, LedgerError>,
    ) -> Vec<Result<T, LedgerError>> {
        let mut answers = Vec::with_capacity(inputs.len());
        for input in inputs {
            let answer = input.and_then(|message| decide(self, message)).map(|effects| {
                self.state.apply(&effects.writes);
                batches.push(effects.writes);
                effects.answer
            });
            answers.push(answer);
        }
        answers
    }

    /// Writes and syncs what [`DurableElder::decide_into`] decided. On failure the
    /// refusals too were decided against memory that never reached the disk, so every
    /// answer becomes the error.
    fn commit_batches(&mut self, batches: &[WriteBatch]) -> Result<(), LedgerError> {
        self.store.commit_group(batches).map_err(|error| {
            self.rebuild_after_failed_commit();
            LedgerError::from(error)
        })
    }

    /// After a failed commit the store may hold some of the writes, visible but unsynced.
    /// Sync them and rebuild memory from the store, so every later answer stands on disk;
    /// if even that fails, refuse everything until restarted.
    fn rebuild_after_failed_commit(&mut self) {
        if let Err(error) = self.store.sync() {
            self.broken = Some(error.to_string());
            return;
        }
        let committee = self.state.committee().clone();
        let signer = self.state.signer().clone();
        match ElderState::recover(committee, signer, &self.store) {
            Ok(state) => self.state = state,
            Err(error) => self.broken = Some(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, StoreError};
    use crate::testkit::{keys, order_from};
    use crate::{AccountState, Amount, GenesisRecord, Lock, WriteBatch};

    /// A store that knows what a power cut would keep: writes are visible at once but
    /// durable only once synced, like RocksDB's WAL. Its disk can fill up, and its syncs
    /// can fail.
    #[derive(Default)]
    struct PowerCutStore {
        visible: MemoryStore,
        durable: MemoryStore,
        full: bool,
        failing_syncs: u32,
        syncs: u32,
    }

    impl Store for PowerCutStore {
        fn commit(&mut self, batch: &WriteBatch, durability: Durability) -> Result<(), StoreError> {
            if batch.is_empty() {
                return Ok(());
            }
            if self.full {
                return Err(StoreError::Database("No space left on device".into()));
            }
            self.visible.commit(batch, durability)?;
            match durability {
                Durability::Synced => self.sync(),
                Durability::Buffered => Ok(()),
            }
        }
        fn sync(&mut self) -> Result<(), StoreError> {
            if self.failing_syncs > 0 {
                self.failing_syncs -= 1;
                return Err(StoreError::Database("fsync: Input/output error".into()));
            }
            self.syncs += 1;
            self.durable = self.visible.clone();
            Ok(())
        }
        fn accounts(&self) -> Result<Vec<(AccountId, AccountState)>, StoreError> {
            self.visible.accounts()
        }
        fn account(&self, id: &AccountId) -> Result<Option<AccountState>, StoreError> {
            self.visible.account(id)
        }
        fn lock(&self, account: &AccountId, sequence: u64) -> Result<Option<Lock>, StoreError> {
            self.visible.lock(account, sequence)
        }
        fn certificate(&self, id: &Digest) -> Result<Option<Certificate>, StoreError> {
            self.visible.certificate(id)
        }
        fn certificate_at(&self, account: &AccountId, sequence: u64) -> Result<Option<Digest>, StoreError> {
            self.visible.certificate_at(account, sequence)
        }
        fn history(&self, account: &AccountId, from: u64, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
            self.visible.history(account, from, limit)
        }
        fn genesis(&self) -> Result<Option<GenesisRecord>, StoreError> {
            self.visible.genesis()
        }
        fn hidden_accounts(&self) -> Result<Vec<(AccountId, crate::confidential::HiddenAccount)>, StoreError> {
            self.visible.hidden_accounts()
        }
        fn incoming_credits(&self) -> Result<Vec<(AccountId, crate::confidential::IncomingCredit)>, StoreError> {
            self.visible.incoming_credits()
        }
        fn epochs(&self) -> Result<Vec<crate::epoch::EpochRecord>, StoreError> {
            self.visible.epochs()
        }
        fn applied_since(&self, position: u64, limit: usize) -> Result<AppliedPage, StoreError> {
            self.visible.applied_since(position, limit)
        }
    }

    fn funded_elder(seed: u64) -> (DurableElder<PowerCutStore>, [SigningKey; 3]) {
        let [elder_key, alice, bob, carol] = keys::<4>(seed);
        let committee = Committee::new([AccountId::of(&elder_key)]).expect("committee");
        let mut elder = DurableElder::open(committee, elder_key, PowerCutStore::default()).expect("open");
        let funds = Amount::from_nanos(100).expect("amount");
        elder.genesis(vec![Allocation { account: AccountId::of(&alice), amount: funds }]).expect("genesis");
        (elder, [alice, bob, carol])
    }

    #[test]
    fn checking_signatures_elsewhere_decides_exactly_as_checking_them_here() {
        let (mut elder, [alice, bob, carol]) = funded_elder(62);
        let network = elder.state().network();
        let to_bob = order_from(&network, &alice, &bob, 10, 0);
        let mut forged = order_from(&network, &alice, &carol, 10, 0);
        forged.order.amount = Amount::from_nanos(90).expect("amount");
        let rival = order_from(&network, &alice, &carol, 10, 0);
        let checked = [forged, to_bob.clone(), rival].into_iter().map(|o| o.into_verified(&network)).collect();
        let answers = elder.handle_verified_orders(checked);
        assert!(matches!(answers[0], Err(LedgerError::InvalidSignature)), "{answers:?}");
        let vote = answers[1].clone().expect("vote");
        assert!(matches!(answers[2], Err(LedgerError::ConflictingOrder { .. })), "{answers:?}");
        assert_eq!(elder.handle_order(&to_bob).expect("retry"), vote, "a retry gets the same vote");

        let certificate = Certificate {
            order: to_bob.order.clone(),
            votes: vec![crate::ElderSignature { elder: vote.elder, signature: vote.signature }],
        };
        let bad = Certificate { order: order_from(&network, &alice, &carol, 10, 0).order, ..certificate.clone() };
        let verified = elder.state().committee().verify_all(vec![bad, certificate]);
        let confirmations = elder.handle_verified_certificates(verified);
        assert!(matches!(confirmations[0], Err(LedgerError::InvalidVote { .. })), "{confirmations:?}");
        assert!(confirmations[1].is_ok(), "{confirmations:?}");
        assert_eq!(elder.state().account(&AccountId::of(&bob)).map(|a| a.balance.nanos()), Some(10));
    }

    #[test]
    fn a_vote_signed_ahead_is_the_vote_given_and_one_signed_by_another_key_is_not() {
        // Three elders of one seed: same keys, same genesis, separate stores.
        let (mut ahead, [alice, bob, _]) = funded_elder(64);
        let (mut signing_here, _) = funded_elder(64);
        let (mut misled, _) = funded_elder(64);
        let stranger = funded_elder(65).0.state().vote_signer();
        let network = ahead.state().network();
        let order = order_from(&network, &alice, &bob, 10, 0);
        let checked = || order.clone().into_verified(&network).expect("checked");

        let own = ahead.state().vote_signer();
        let vote = ahead.handle_verified_orders(vec![Ok(checked().signed_ahead(&own))]).remove(0).expect("vote");
        assert_eq!(signing_here.handle_order(&order).expect("vote"), vote, "signed ahead or here, one vote");
        let rival = order_from(&network, &alice, &bob, 20, 0);
        let rival_ahead = rival.into_verified(&network).expect("checked").signed_ahead(&own);
        let refused = ahead.handle_verified_orders(vec![Ok(rival_ahead)]).remove(0);
        assert!(
            matches!(refused, Err(LedgerError::ConflictingOrder { .. })),
            "the vote signed ahead stays: {refused:?}"
        );

        let vote = misled.handle_verified_orders(vec![Ok(checked().signed_ahead(&stranger))]).remove(0).expect("vote");
        assert_eq!(vote.elder, misled.state().id(), "a vote signed under another key is not given");
        misled.state().committee().verify_vote(&order.order.digest(), &vote).expect("its own valid vote");
    }

    /// The certificate of `order` from a one-elder committee's vote.
    fn voted_certificate(elder: &mut DurableElder<PowerCutStore>, order: &SignedOrder) -> Certificate {
        let vote = elder.handle_order(order).expect("vote");
        Certificate {
            order: order.order.clone(),
            votes: vec![crate::ElderSignature { elder: vote.elder, signature: vote.signature }],
        }
    }

    #[test]
    fn a_certificate_and_its_senders_next_order_cost_one_sync_together() {
        let (mut elder, [alice, bob, _]) = funded_elder(63);
        let network = elder.state().network();
        let first = order_from(&network, &alice, &bob, 10, 0);
        let certificate = voted_certificate(&mut elder, &first);
        let next = order_from(&network, &alice, &bob, 10, 1);
        let verified = elder.state().committee().verify_all(vec![certificate]);
        let syncs = elder.store.syncs;
        let (applied, votes) =
            elder.handle_verified_group(verified.clone(), vec![next.clone().into_verified(&network)]);
        assert!(applied[0].is_ok() && votes[0].is_ok(), "{applied:?} {votes:?}");
        assert_eq!(elder.store.syncs, syncs + 1, "one sync for both");
        assert_eq!(
            elder.store.durable.lock(&AccountId::of(&alice), 1).expect("read").map(|l| l.vote),
            votes[0].clone().ok()
        );

        // A failed sync refuses both, and a retry decides them again from the disk.
        let (mut elder, [_, bob, _]) = funded_elder(63);
        elder.handle_order(&first).expect("vote");
        elder.store.failing_syncs = 1;
        let (applied, votes) =
            elder.handle_verified_group(verified.clone(), vec![next.clone().into_verified(&network)]);
        assert!(matches!(applied[0], Err(LedgerError::Storage { .. })), "{applied:?}");
        assert!(matches!(votes[0], Err(LedgerError::Storage { .. })), "{votes:?}");
        let (applied, votes) = elder.handle_verified_group(verified, vec![next.into_verified(&network)]);
        assert!(applied[0].is_ok() && votes[0].is_ok(), "{applied:?} {votes:?}");
        assert_eq!(elder.state().account(&AccountId::of(&bob)).map(|a| a.balance.nanos()), Some(10));
    }

    #[test]
    fn a_handed_certificate_costs_no_sync_and_is_durable_before_any_vote_on_it_leaves() {
        let (mut elder, [alice, bob, carol]) = funded_elder(64);
        let network = elder.state().network();
        let first = order_from(&network, &alice, &bob, 10, 0);
        let certificate = voted_certificate(&mut elder, &first);
        let syncs = elder.store.syncs;
        let verified = elder.state().committee().verify_all(vec![certificate.clone()]);
        let applied = elder.handle_handed_certificates(verified);
        assert!(applied[0].is_ok(), "{applied:?}");
        assert_eq!(elder.store.syncs, syncs, "no sync of its own");
        assert_eq!(elder.store.durable.certificate(&certificate.id()).expect("read"), None, "not durable yet");
        // Bob spends what it brought: the vote is synced, and the certificate with it.
        let spend = order_from(&network, &bob, &carol, 10, 0);
        elder.handle_order(&spend).expect("a vote on what the certificate credited");
        assert_eq!(elder.store.durable.certificate(&certificate.id()).expect("read"), Some(certificate.clone()));

        // Any peer may hand certificates over: one without a quorum's votes writes nothing,
        // and one handed again changes nothing.
        let forged = Certificate { order: order_from(&network, &alice, &carol, 90, 1).order, votes: vec![] };
        let checked = elder.state().committee().verify_all(vec![forged.clone(), certificate]);
        let answers = elder.handle_handed_certificates(checked);
        assert!(answers[0].is_err() && answers[1].is_ok(), "{answers:?}");
        assert_eq!(elder.store.visible.certificate(&forged.id()).expect("read"), None);
        assert_eq!(elder.state().account(&AccountId::of(&alice)).map(|a| a.balance.nanos()), Some(90));
    }

    #[test]
    fn a_full_disk_releases_no_vote_and_leaves_no_lock_in_memory() {
        let (mut elder, [alice, bob, carol]) = funded_elder(60);
        let network = elder.state().network();
        elder.store.full = true;
        let to_bob = order_from(&network, &alice, &bob, 10, 0);
        assert!(matches!(elder.handle_order(&to_bob), Err(LedgerError::Storage { .. })));
        let grouped = elder.handle_orders(std::slice::from_ref(&to_bob));
        assert!(matches!(grouped[..], [Err(LedgerError::Storage { .. })]));
        assert!(elder.state().pending(&AccountId::of(&alice)).is_none(), "an unstored lock stayed in memory");

        // Space is back: the owner may still choose another order, since no vote left.
        elder.store.full = false;
        let to_carol = order_from(&network, &alice, &carol, 10, 0);
        let vote = elder.handle_order(&to_carol).expect("vote");
        assert_eq!(elder.store().durable.lock(&AccountId::of(&alice), 0).expect("read").map(|l| l.vote), Some(vote));
    }

    #[test]
    fn after_a_failed_sync_no_answer_rests_on_an_unsynced_lock() {
        let (mut elder, [alice, bob, carol]) = funded_elder(61);
        let network = elder.state().network();
        let to_bob = order_from(&network, &alice, &bob, 10, 0);
        let rival = order_from(&network, &alice, &carol, 10, 0);
        elder.store.failing_syncs = 1;
        let answers = elder.handle_orders(&[to_bob.clone(), rival]);
        assert!(answers.iter().all(|a| matches!(a, Err(LedgerError::Storage { .. }))), "{answers:?}");

        // The lock reached the store unsynced; a retry may be answered from it only once
        // a power cut can no longer take it away.
        let vote = elder.handle_order(&to_bob).expect("vote on retry");
        let durable = elder.store().durable.lock(&AccountId::of(&alice), 0).expect("read");
        assert_eq!(durable.map(|l| l.vote), Some(vote), "the vote left before its lock was durable");
    }

    #[test]
    fn an_elder_that_cannot_sync_refuses_everything() {
        let (mut elder, [alice, bob, _]) = funded_elder(62);
        let network = elder.state().network();
        elder.store.failing_syncs = 2;
        let order = order_from(&network, &alice, &bob, 10, 0);
        assert!(matches!(elder.handle_orders(std::slice::from_ref(&order))[..], [Err(LedgerError::Storage { .. })]));
        assert!(matches!(elder.handle_order(&order), Err(LedgerError::Storage { .. })));
        assert!(elder.store().durable.lock(&AccountId::of(&alice), 0).expect("read").is_none());
    }
}
