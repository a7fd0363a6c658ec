//! Confidential orders through a committee of real elders: what they accept, what they
//! refuse, and the supply audit after each step.

use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;

use super::*;
use crate::store::MemoryStore;
use crate::testkit::{keys, LocalCommittee};
use crate::{Allocation, Certificate, LedgerError, TransferOrder};

fn credits(n: u64) -> Amount {
    Amount::from_credits(n).expect("amount")
}

struct Section {
    committee: LocalCommittee<MemoryStore>,
    network: Digest,
}

impl Section {
    fn new(seed: u64, funded: &[&SigningKey]) -> Section {
        let mut committee = LocalCommittee::in_memory(4, seed);
        let allocations: Vec<Allocation> =
            funded.iter().map(|key| Allocation { account: AccountId::of(key), amount: credits(100) }).collect();
        committee.genesis(&allocations);
        let network = committee.network();
        Section { committee, network }
    }

    fn elder(&self) -> &crate::ElderState {
        self.committee.members[0].elder.state()
    }

    fn sequence(&self, key: &SigningKey) -> u64 {
        self.elder().account(&AccountId::of(key)).map_or(0, |a| a.next_sequence)
    }

    /// What a wallet does: opens its spendable commitment and every incoming credit it
    /// can, and makes the order.
    fn order(&self, key: &SigningKey, action: HiddenAction) -> Result<TransferOrder, ConfidentialError> {
        let id = AccountId::of(key);
        let spendable = self.elder().hidden(&id).map_or(Ok(Opening::ZERO), |h| h.open(key))?;
        let absorb = self
            .elder()
            .incoming(&id)
            .into_iter()
            .filter_map(|credit| credit.open(key).ok().map(|opening| (credit.certificate, opening)))
            .collect();
        let spend = HiddenSpend {
            key,
            network: self.network,
            sequence: self.sequence(key),
            spendable,
            absorb,
            action,
            memo: String::new(),
        };
        Ok(spend.build(&mut OsRng)?.0)
    }

    fn certify(&mut self, key: &SigningKey, order: TransferOrder) -> Result<Certificate, Vec<LedgerError>> {
        self.committee.transfer(&order.sign(key))
    }

    fn run(&mut self, key: &SigningKey, action: HiddenAction) -> Certificate {
        let order = self.order(key, action).expect("order");
        self.certify(key, order).unwrap_or_else(|refusals| panic!("refused: {refusals:?}"))
    }

    /// The hidden value an owner can open: spendable plus incoming.
    fn hidden_value(&self, key: &SigningKey) -> u64 {
        let id = AccountId::of(key);
        let spendable = self.elder().hidden(&id).map_or(0, |h| h.open(key).expect("opens").value);
        let incoming = self.elder().incoming(&id);
        spendable + incoming.iter().filter_map(|c| c.open(key).ok()).map(|o| o.value).sum::<u64>()
    }

    fn assert_audit_holds(&self) {
        let hashes: Vec<Digest> = self.committee.members.iter().map(|m| m.elder.state().state_hash()).collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "every elder holds the same state");
        for member in &self.committee.members {
            let audit = member.elder.state().audit().expect("audit");
            assert!(audit.holds, "{audit:?}");
            assert_eq!(audit.public.checked_add(audit.hidden), Some(audit.issued));
        }
    }

    fn refusals(&mut self, key: &SigningKey, order: TransferOrder) -> Vec<LedgerError> {
        match self.certify(key, order) {
            Ok(certificate) => panic!("certified: {certificate:?}"),
            Err(refusals) => refusals,
        }
    }
}

#[test]
fn shield_transfers_and_unshield_conserve_supply_at_every_step() {
    let [alice, bob, carol, dave] = keys::<4>(300);
    let mut section = Section::new(301, &[&alice]);
    let nanos = |n| credits(n).nanos();

    section.run(&alice, HiddenAction::Shield { amount: credits(40) });
    section.assert_audit_holds();
    assert_eq!(section.elder().account(&AccountId::of(&alice)).map(|a| a.balance), Some(credits(60)));
    assert_eq!(section.hidden_value(&alice), nanos(40));

    section.run(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(15) });
    section.assert_audit_holds();
    assert_eq!(section.hidden_value(&alice), nanos(25));
    assert_eq!(section.hidden_value(&bob), nanos(15), "bob opens the credit sealed to him");
    assert_eq!(section.elder().account(&AccountId::of(&bob)).map(|a| a.balance), Some(Amount::ZERO));

    // Bob folds the credit in and pays carol out of it.
    section.run(&bob, HiddenAction::Transfer { to: AccountId::of(&carol), amount: credits(5) });
    section.assert_audit_holds();
    assert!(section.elder().incoming(&AccountId::of(&bob)).is_empty(), "the credit was folded in");
    assert_eq!(section.hidden_value(&bob), nanos(10));

    section.run(&carol, HiddenAction::Unshield { to: AccountId::of(&carol), amount: credits(5) });
    section.run(&bob, HiddenAction::Unshield { to: AccountId::of(&dave), amount: credits(10) });
    section.run(&alice, HiddenAction::Unshield { to: AccountId::of(&alice), amount: credits(25) });
    section.assert_audit_holds();
    let balance = |key: &SigningKey| section.elder().account(&AccountId::of(key)).map(|a| a.balance);
    assert_eq!(
        [balance(&alice), balance(&carol), balance(&dave)],
        [Some(credits(85)), Some(credits(5)), Some(credits(10))]
    );
    let audit = section.elder().audit().expect("audit");
    assert_eq!(audit.hidden, Amount::ZERO, "everything hidden came back out");
    assert_eq!(audit.commitment_sum, Commitment::to_public(0));
}

#[test]
fn a_restarted_elder_recovers_its_commitments() {
    let [alice, bob] = keys::<2>(310);
    let mut section = Section::new(311, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(9) });
    section.run(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(4) });
    let before = section.elder().state_hash();
    section.committee.restart(0, |store| store);
    assert_eq!(section.elder().state_hash(), before);
    assert_eq!(section.hidden_value(&bob), credits(4).nanos());
    section.assert_audit_holds();
}

#[test]
fn a_proof_lifted_into_another_order_is_refused() {
    let [alice, bob, carol] = keys::<3>(320);
    let mut section = Section::new(321, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(20) });
    let honest = section.order(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(3) });
    let honest = honest.expect("order");

    let mut other_memo = honest.clone();
    other_memo.memo = "changed".into();
    let mut other_recipient = honest.clone();
    other_recipient.to = AccountId::of(&carol);
    for lifted in [other_memo, other_recipient] {
        assert_eq!(section.refusals(&alice, lifted), vec![LedgerError::InvalidRangeProof; 4]);
    }
    // The same proof under another section's identity fails too.
    let elsewhere = Digest([7; 32]);
    assert_eq!(honest.check_hidden(&elsewhere), Err(LedgerError::InvalidRangeProof));
    section.certify(&alice, honest).expect("the untouched order is certified");
}

#[test]
fn a_replayed_proof_is_refused() {
    let [alice, bob] = keys::<2>(330);
    let mut section = Section::new(331, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(20) });
    let order = section.order(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(3) });
    let order = order.expect("order");
    let certificate = section.certify(&alice, order.clone()).expect("certified");
    // The certificate again changes nothing.
    let hash = section.elder().state_hash();
    assert!(section.committee.confirm(&certificate).iter().all(Result::is_ok));
    assert_eq!(section.elder().state_hash(), hash);
    // The same move at the next sequence: its proof was made for the old one.
    let mut replay = order;
    replay.sequence += 1;
    let refusals = section.refusals(&alice, replay);
    assert_eq!(refusals, vec![LedgerError::InvalidRangeProof; 4]);
    assert_eq!(section.hidden_value(&bob), credits(3).nanos(), "bob was paid once");
}

/// An order whose amount commitment hides `amount` (a scalar, so it may be "negative"
/// or above 2^64) and whose spendable commitment is what the elders compute, with the
/// best proof a cheater can attach: an honest proof for other values.
fn forged_transfer(section: &Section, key: &SigningKey, to: &SigningKey, amount: Scalar) -> TransferOrder {
    let mut order =
        section.order(key, HiddenAction::Transfer { to: AccountId::of(to), amount: credits(1) }).expect("order");
    let hidden = order.hidden.as_mut().expect("hidden");
    let current = section.elder().hidden(&AccountId::of(key)).expect("shielded").spendable;
    let forged_amount = pedersen().commit(amount, Scalar::from(5u64));
    let HiddenKind::Transfer { amount: committed, .. } = &mut hidden.kind else { panic!("a transfer") };
    *committed = Commitment::from_point(forged_amount);
    hidden.spendable = Commitment::from_point(current.point().expect("point") - forged_amount);
    order
}

/// A transfer made without the wallet's checks: `moved` to `to`, `after` stated as the
/// remainder, `sealed` as the opening sealed to the recipient, with a valid proof for
/// `moved` less one nano and `after`.
fn transfer_by_hand(
    section: &Section,
    key: &SigningKey,
    to: &SigningKey,
    moved: Opening,
    after: Opening,
    sealed: Opening,
) -> TransferOrder {
    let less_one = moved.checked_sub(Opening { value: 1, blinding: Scalar::ZERO }).expect("at least a nano");
    transfer_proving(section, key, to, (moved, less_one), after, sealed)
}

/// [`transfer_by_hand`] with the proof made for `proven` in place of the amount less one.
fn transfer_proving(
    section: &Section,
    key: &SigningKey,
    to: &SigningKey,
    (moved, proven): (Opening, Opening),
    after: Opening,
    sealed: Opening,
) -> TransferOrder {
    let (from, to) = (AccountId::of(key), AccountId::of(to));
    let sequence = section.sequence(key);
    let amount = Commitment::of(&moved);
    let context = opening_context(&from, &to, sequence, &amount);
    let opening = SealedOpening::seal(&sealed, &to, &context, &mut OsRng).expect("seal");
    let note = SealedOpening::seal(&after, &from, &note_context(&from, sequence), &mut OsRng).expect("seal");
    let kind = HiddenKind::Transfer { amount, opening };
    let hidden = HiddenMove { kind, absorb: vec![], spendable: Commitment::of(&after), note, proof: None };
    let mut order = TransferOrder {
        network: section.network,
        from,
        to,
        amount: Amount::ZERO,
        sequence,
        app: None,
        memo: String::new(),
        hidden: Some(Box::new(hidden)),
    };
    let proof = RangeProofBytes::prove(&section.network, &order.statement(), &[proven, after]).expect("prove");
    order.hidden.as_mut().expect("hidden").proof = Some(proof);
    order
}

#[test]
fn negative_overflowing_and_uncovered_hidden_amounts_are_refused() {
    let [alice, bob] = keys::<2>(340);
    let mut section = Section::new(341, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(10) });

    let negative = -Scalar::from(credits(50).nanos());
    let above_range = Scalar::from(u64::MAX) + Scalar::from(credits(1).nanos());
    let more_than_held = Scalar::from(credits(11).nanos());
    for amount in [negative, above_range, more_than_held] {
        let forged = forged_transfer(&section, &alice, &bob, amount);
        assert_eq!(section.refusals(&alice, forged), vec![LedgerError::InvalidRangeProof; 4]);
    }

    // A remainder with a valid proof (zero left) that does not follow from the balance:
    // the elders compute the remainder themselves.
    let moved = Opening::random(credits(1).nanos(), &mut OsRng);
    let claims_zero_left = transfer_by_hand(&section, &alice, &bob, moved, Opening::ZERO, moved);
    assert_eq!(section.refusals(&alice, claims_zero_left), vec![LedgerError::HiddenMismatch; 4]);

    // The wallet side refuses to make an order it cannot cover.
    let uncovered = section.order(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(11) });
    assert!(matches!(uncovered, Err(ConfidentialError::NotEnoughHidden { .. })), "{uncovered:?}");
    assert_eq!(section.hidden_value(&alice), credits(10).nanos(), "nothing moved");
    section.assert_audit_holds();
}

#[test]
fn a_wrong_opening_is_refused_by_its_recipient_and_never_folded_in() {
    let [alice, bob, carol] = keys::<3>(350);
    let mut section = Section::new(351, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(10) });
    section.run(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(1) });
    // Alice commits 2 credits to bob but seals him an opening of 9. The elders cannot
    // read the seal, so the order is valid to them.
    let to = AccountId::of(&bob);
    let spendable = section.elder().hidden(&AccountId::of(&alice)).expect("shielded").open(&alice).expect("opens");
    let moved = Opening::random(credits(2).nanos(), &mut OsRng);
    let after = spendable.checked_sub(moved).expect("covered");
    let lie = Opening::random(credits(9).nanos(), &mut OsRng);
    let order = transfer_by_hand(&section, &alice, &bob, moved, after, lie);
    let certificate = section.certify(&alice, order).expect("certified");

    let incoming = section.elder().incoming(&to);
    let lying = incoming.iter().find(|c| c.certificate == certificate.id()).expect("credited");
    assert_eq!(lying.open(&bob), Err(ConfidentialError::WrongOpening), "the opening does not match");
    assert_eq!(lying.open(&carol), Err(ConfidentialError::WrongOpening), "nor does another key open it");
    // Bob's wallet folds in only what it can open, and spends it.
    section.run(&bob, HiddenAction::Transfer { to: AccountId::of(&carol), amount: credits(1) });
    let left = section.elder().incoming(&to);
    assert_eq!(left.iter().map(|c| c.certificate).collect::<Vec<_>>(), vec![certificate.id()]);
    assert_eq!(section.elder().hidden(&to).expect("spendable").open(&bob).expect("opens").value, 0);
    section.assert_audit_holds();
}

#[test]
fn the_audit_fails_when_a_commitment_is_tampered_with() {
    let [alice, bob] = keys::<2>(360);
    let mut section = Section::new(361, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(10) });
    section.run(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(4) });
    let elder = section.elder();
    let issued = elder.issued().expect("issued");
    let public: Vec<Amount> = elder.balances().map(|(_, b)| b).collect();
    let mut commitments: Vec<Commitment> = elder.commitments().map(|(_, c)| *c).collect();
    assert!(audit(issued, public.clone(), &commitments).expect("audit").holds);

    let one_nano_more = Commitment::to_public(1).point().expect("point");
    commitments[0] = Commitment::from_point(commitments[0].point().expect("point") + one_nano_more);
    assert!(!audit(issued, public.clone(), &commitments).expect("audit").holds, "one nano too many");
    commitments.pop();
    assert!(!audit(issued, public.clone(), &commitments).expect("audit").holds, "a commitment hidden");
    let mut inflated = public;
    inflated[0] = inflated[0].checked_add(credits(1)).expect("amount");
    let original: Vec<Commitment> = elder.commitments().map(|(_, c)| *c).collect();
    assert!(!audit(issued, inflated, &original).expect("audit").holds, "a public balance inflated");
    let mut garbage = original;
    garbage[0] = Commitment([0xff; 32]);
    assert_eq!(audit(issued, [], &garbage), Err(ConfidentialError::InvalidCommitment));
}

#[test]
fn a_hidden_transfer_of_nothing_is_refused() {
    let [alice, bob] = keys::<2>(380);
    let mut section = Section::new(381, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(10) });
    let built = section.order(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: Amount::ZERO });
    assert!(matches!(built, Err(ConfidentialError::Malformed(_))), "{built:?}");
    // By hand, with a proof that the amount (0) is in range: the elders check it less one nano.
    let to = AccountId::of(&bob);
    let spendable = section.elder().hidden(&AccountId::of(&alice)).expect("shielded").open(&alice).expect("opens");
    let nothing = Opening::random(0, &mut OsRng);
    let after = spendable.checked_sub(nothing).expect("covered");
    let order = transfer_proving(&section, &alice, &bob, (nothing, nothing), after, nothing);
    assert_eq!(section.refusals(&alice, order), vec![LedgerError::InvalidRangeProof; 4]);
    assert!(section.elder().account(&to).is_none(), "no account was made for bob");
}

#[test]
fn the_precheck_refuses_before_any_proof_and_spares_the_proofs_a_decision_does_not_need() {
    let [alice, bob, stranger] = keys::<3>(390);
    let mut section = Section::new(391, &[&alice]);
    section.run(&alice, HiddenAction::Shield { amount: credits(10) });
    let order = section.order(&alice, HiddenAction::Transfer { to: AccountId::of(&bob), amount: credits(1) });
    let order = order.expect("order");
    let junk = |mut order: TransferOrder| {
        order.hidden.as_mut().expect("hidden").proof = Some(RangeProofBytes(vec![7; 64]));
        order
    };
    let elder = section.elder();
    let mut from_stranger = junk(order.clone());
    from_stranger.from = AccountId::of(&stranger);
    assert!(matches!(elder.precheck(&from_stranger), Err(LedgerError::UnknownAccount { .. })));
    let mut ahead = junk(order.clone());
    ahead.sequence += 3;
    assert!(matches!(elder.precheck(&ahead), Err(LedgerError::UnexpectedSequence { .. })));
    let mut not_following = junk(order.clone());
    not_following.hidden.as_mut().expect("hidden").spendable = Commitment::to_public(3);
    assert_eq!(elder.precheck(&not_following), Err(LedgerError::HiddenMismatch));
    assert_eq!(elder.precheck(&order), Ok(crate::ProofDuty::ALWAYS), "a live order's proof is verified");

    section.certify(&alice, order.clone()).expect("certified");
    // A rival for the spent sequence, with a proof that would not verify: the stored
    // decision answers it, and no proof is needed for that.
    let rival = junk(order).sign(&alice);
    let duty = section.elder().precheck(&rival.order).expect("precheck");
    assert!(!duty.needed());
    let checked = rival.into_verified_given(&section.network, duty);
    let answers = section.committee.members[0].elder.handle_verified_orders(vec![checked]);
    assert!(matches!(answers[0], Err(LedgerError::ConflictingOrder { .. })), "{answers:?}");
}

#[test]
fn a_shield_needs_the_public_balance_and_credits_only_its_sender() {
    let [alice, bob] = keys::<2>(370);
    let mut section = Section::new(371, &[&alice]);
    let too_much = section.order(&alice, HiddenAction::Shield { amount: credits(101) }).expect("order");
    assert!(matches!(section.refusals(&alice, too_much)[0], LedgerError::InsufficientBalance { .. }));
    let mut to_bob = section.order(&alice, HiddenAction::Shield { amount: credits(1) }).expect("order");
    to_bob.to = AccountId::of(&bob);
    assert!(matches!(section.refusals(&alice, to_bob)[0], LedgerError::InvalidConfidential { .. }));
    section.assert_audit_holds();
}
