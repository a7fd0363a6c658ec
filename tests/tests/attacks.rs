//! Attacks on the transfer protocol: each must be refused and change nothing.

use acre_ledger::store::{MemoryStore, Store};
use acre_ledger::testkit::{key, order_from, LocalCommittee};
use acre_ledger::{
    AccountId, Allocation, Amount, Certificate, ElderSignature, LedgerError, SignatureBytes, TransferOrder, Vote,
};

const FUNDS: u64 = 1_000;

fn funded(size: usize) -> LocalCommittee<MemoryStore> {
    let mut committee = LocalCommittee::in_memory(size, 40 + size as u64);
    committee.genesis(&[Allocation {
        account: AccountId::of(&key(7, 0)),
        amount: Amount::from_nanos(FUNDS).expect("amount"),
    }]);
    committee
}

fn state_hashes(committee: &LocalCommittee<MemoryStore>) -> Vec<acre_ledger::Digest> {
    committee.members.iter().map(|m| m.elder.state().state_hash()).collect()
}

fn all(committee: &LocalCommittee<MemoryStore>) -> Vec<usize> {
    (0..committee.members.len()).collect()
}

/// The owner signs one sequence twice, for two recipients, and sends each order to one
/// half of the elders, then to the other half too: no certificate can ever form.
fn equivocation_never_certifies(size: usize) {
    let mut committee = funded(size);
    let owner = key(7, 0);
    let to_bob = order_from(&committee.network(), &owner, &key(7, 1), 100, 0);
    let to_carol = order_from(&committee.network(), &owner, &key(7, 2), 100, 0);
    let half = size / 2;
    let (first, second): (Vec<usize>, Vec<usize>) = (0..size).partition(|&i| i < half);
    let (bob_certificate, _) = committee.collect_votes(&first, &to_bob);
    let (carol_certificate, _) = committee.collect_votes(&second, &to_carol);
    assert!(bob_certificate.is_none() && carol_certificate.is_none());

    let (bob_certificate, bob_answers) = committee.collect_votes(&all(&committee), &to_bob);
    let (carol_certificate, carol_answers) = committee.collect_votes(&all(&committee), &to_carol);
    assert!(bob_certificate.is_none(), "bob's order reached a quorum");
    assert!(carol_certificate.is_none(), "carol's order reached a quorum");
    let conflicts =
        bob_answers.iter().chain(&carol_answers).filter(|a| matches!(a, Err(LedgerError::ConflictingOrder { .. })));
    assert_eq!(conflicts.count(), size, "every elder refuses the order it did not vote for");
}

#[test]
fn equivocation_to_disjoint_halves_of_4_never_certifies() {
    equivocation_never_certifies(4);
}

#[test]
fn equivocation_to_disjoint_halves_of_7_never_certifies() {
    equivocation_never_certifies(7);
}

#[test]
fn once_one_order_is_certified_its_rival_cannot_be() {
    let mut committee = funded(4);
    let owner = key(7, 0);
    let to_bob = order_from(&committee.network(), &owner, &key(7, 1), 100, 0);
    let to_carol = order_from(&committee.network(), &owner, &key(7, 2), 100, 0);
    let (certificate, _) = committee.collect_votes(&[0, 1, 2], &to_bob);
    assert!(certificate.is_some());
    let (rival, answers) = committee.collect_votes(&all(&committee), &to_carol);
    assert!(rival.is_none());
    assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 1, "only the elder that had not voted votes");
}

#[test]
fn replayed_orders_return_the_same_vote_and_change_nothing() {
    let mut committee = funded(4);
    let order = order_from(&committee.network(), &key(7, 0), &key(7, 1), 100, 0);
    let (_, first) = committee.collect_votes(&all(&committee), &order);
    let before = state_hashes(&committee);
    let (_, again) = committee.collect_votes(&all(&committee), &order);
    assert_eq!(first, again);
    assert_eq!(before, state_hashes(&committee));

    // Still the same vote after the certificate moved the sequence on.
    let certificate = committee.transfer(&order).expect("transfer");
    let (_, after) = committee.collect_votes(&all(&committee), &order);
    assert_eq!(first, after);
    assert!(certificate.votes.len() >= 3);
}

#[test]
fn replayed_certificates_confirm_again_and_move_nothing() {
    let mut committee = funded(4);
    let certificate =
        committee.transfer(&order_from(&committee.network(), &key(7, 0), &key(7, 1), 100, 0)).expect("transfer");
    let first: Vec<_> = committee.confirm(&certificate);
    let before = state_hashes(&committee);
    let again = committee.confirm(&certificate);
    assert_eq!(first, again);
    assert_eq!(before, state_hashes(&committee));
    let bob = AccountId::of(&key(7, 1));
    assert_eq!(committee.members[0].elder.state().account(&bob).map(|a| a.balance.nanos()), Some(100));
}

#[test]
fn forged_owner_signatures_are_refused() {
    let mut committee = funded(4);
    let mut forged = order_from(&committee.network(), &key(7, 9), &key(7, 1), 100, 0);
    forged.order.from = AccountId::of(&key(7, 0));
    let mut tampered = order_from(&committee.network(), &key(7, 0), &key(7, 1), 100, 0);
    tampered.order.amount = Amount::from_nanos(900).expect("amount");
    let mut garbage = order_from(&committee.network(), &key(7, 0), &key(7, 1), 100, 0);
    garbage.signature = SignatureBytes([0xAB; 64]);
    for order in [forged, tampered, garbage] {
        let (certificate, answers) = committee.collect_votes(&all(&committee), &order);
        assert!(certificate.is_none());
        assert!(answers.iter().all(|a| *a == Err(LedgerError::InvalidSignature)), "{answers:?}");
    }
    assert!(committee.members.iter().all(|m| m.elder.state().pending(&AccountId::of(&key(7, 0))).is_none()));
}

fn certificate_for(committee: &mut LocalCommittee<MemoryStore>, nanos: u64) -> Certificate {
    let order = order_from(&committee.network(), &key(7, 0), &key(7, 1), nanos, 0);
    committee.collect_votes(&all(committee), &order).0.expect("certificate")
}

#[test]
fn malformed_certificates_are_refused_and_move_nothing() {
    let mut committee = funded(4);
    let valid = certificate_for(&mut committee, 100);
    let before = state_hashes(&committee);

    let mut duplicated = valid.clone();
    duplicated.votes = vec![valid.votes[0]; 3];
    let mut too_few = valid.clone();
    too_few.votes.truncate(2);
    let mut outsider = valid.clone();
    let stranger = key(99, 0);
    let stranger_vote = Vote::sign(&stranger, valid.id());
    outsider.votes[0] = ElderSignature { elder: stranger_vote.elder, signature: stranger_vote.signature };
    let mut inflated = valid.clone();
    inflated.order.amount = Amount::from_nanos(900).expect("amount");
    let mut bad_signature = valid.clone();
    bad_signature.votes[1].signature = SignatureBytes([0x11; 64]);

    let cases: [(Certificate, LedgerError); 5] = [
        (duplicated, LedgerError::DuplicateVoter { elder: valid.votes[0].elder }),
        (too_few, LedgerError::NotEnoughVotes { got: 2, quorum: 3 }),
        (outsider, LedgerError::UnknownVoter { elder: AccountId::of(&stranger) }),
        (inflated, LedgerError::InvalidVote { elder: valid.votes[0].elder }),
        (bad_signature, LedgerError::InvalidVote { elder: valid.votes[1].elder }),
    ];
    for (certificate, expected) in cases {
        for answer in committee.confirm(&certificate) {
            assert_eq!(answer, Err(expected.clone()));
        }
        assert_eq!(before, state_hashes(&committee));
    }
    // A batch with one bad certificate still applies the good ones and names the bad one.
    let mut tampered = valid.clone();
    tampered.votes[2].signature = SignatureBytes([0x22; 64]);
    let answers = committee.members[0].elder.handle_certificates(&[tampered, valid.clone()]);
    assert!(matches!(answers[0], Err(LedgerError::InvalidVote { .. })));
    assert!(answers[1].is_ok());
}

#[test]
fn amounts_beyond_the_balance_or_the_cap_are_refused() {
    let mut committee = funded(4);
    let (_, answers) = committee
        .collect_votes(&all(&committee), &order_from(&committee.network(), &key(7, 0), &key(7, 1), FUNDS + 1, 0));
    let expected = LedgerError::InsufficientBalance {
        balance: Amount::from_nanos(FUNDS).expect("amount"),
        amount: Amount::from_nanos(FUNDS + 1).expect("amount"),
    };
    assert!(answers.iter().all(|a| *a == Err(expected.clone())));

    // Genesis that would pass the cap, and amounts in JSON above it.
    let mut fresh = LocalCommittee::in_memory(4, 77);
    let over = [key(8, 0), key(8, 1)].map(|k| Allocation { account: AccountId::of(&k), amount: Amount::MAX });
    assert_eq!(fresh.members[0].elder.genesis(over.to_vec()), Err(LedgerError::AmountOverflow));
    let order = order_from(&committee.network(), &key(7, 0), &key(7, 1), 1, 0).order;
    let mut json = serde_json::to_value(&order).expect("json");
    json["amount"] = "4294967297".into();
    assert!(serde_json::from_value::<TransferOrder>(json).is_err());
}

#[test]
fn self_transfers_zero_amounts_and_bad_sequences_are_refused() {
    let mut committee = funded(4);
    let owner = key(7, 0);
    let cases = [
        (order_from(&committee.network(), &owner, &owner, 10, 0), LedgerError::SelfTransfer),
        (order_from(&committee.network(), &owner, &key(7, 1), 0, 0), LedgerError::ZeroAmount),
        (
            order_from(&committee.network(), &owner, &key(7, 1), 10, 3),
            LedgerError::UnexpectedSequence { expected: 0, got: 3 },
        ),
        (
            order_from(&committee.network(), &key(7, 5), &key(7, 1), 10, 0),
            LedgerError::UnknownAccount { account: AccountId::of(&key(7, 5)) },
        ),
    ];
    for (order, expected) in cases {
        let (certificate, answers) = committee.collect_votes(&all(&committee), &order);
        assert!(certificate.is_none());
        assert!(answers.iter().all(|a| *a == Err(expected.clone())), "{answers:?} vs {expected:?}");
    }
}

#[test]
fn credits_to_bytes_that_are_no_public_key_are_refused() {
    let mut committee = funded(4);
    let not_a_key = (0u8..=255)
        .map(|b| AccountId([b; 32]))
        .find(|id| id.verifying_key().is_none())
        .expect("some 32-byte string is not a curve point");
    let mut order = order_from(&committee.network(), &key(7, 0), &key(7, 1), 10, 0).order;
    order.to = not_a_key;
    let order = order.sign(&key(7, 0));
    let (_, answers) = committee.collect_votes(&all(&committee), &order);
    assert!(answers.iter().all(|a| *a == Err(LedgerError::InvalidAccount { account: not_a_key })));
    assert!(committee.members[0].elder.store().account(&not_a_key).expect("read").is_none());
}

#[test]
fn group_commit_votes_once_per_sequence_and_repeats_the_same_answers() {
    let mut committee = funded(4);
    let owner = key(7, 0);
    let to_bob = order_from(&committee.network(), &owner, &key(7, 1), 100, 0);
    let to_carol = order_from(&committee.network(), &owner, &key(7, 2), 100, 0);
    let elder = &mut committee.members[0].elder;
    let first = elder.handle_orders(&[to_bob.clone(), to_carol.clone(), to_bob.clone()]);
    assert!(first[0].is_ok());
    assert_eq!(first[1], Err(LedgerError::ConflictingOrder { voted: to_bob.order.digest() }));
    assert_eq!(first[2], first[0], "a repeat inside the group gets the same vote");
    let hash = elder.state().state_hash();
    assert_eq!(elder.handle_orders(&[to_carol, to_bob]), vec![first[1].clone(), first[0].clone()]);
    assert_eq!(hash, elder.state().state_hash());

    let certificates = committee.transfer_batch(&[order_from(&committee.network(), &owner, &key(7, 1), 100, 0)]);
    let certificate = certificates[0].clone().expect("certified");
    let repeated = committee.members[1].elder.handle_certificates(&[certificate.clone(), certificate]);
    assert_eq!(repeated[0], repeated[1]);
    let bob = AccountId::of(&key(7, 1));
    assert_eq!(committee.members[1].elder.state().account(&bob).map(|a| a.balance.nanos()), Some(100));
}

/// The same elder keys run two networks, and the same key holds credits on both: an order
/// signed for one is refused on the other, by every elder, and so is its certificate.
#[test]
fn an_order_for_one_network_never_replays_on_another() {
    let mut here = funded(4);
    let mut there = LocalCommittee::in_memory(4, 44);
    assert_eq!(here.committee, there.committee, "one set of elder keys");
    there.genesis(&[
        Allocation { account: AccountId::of(&key(7, 0)), amount: Amount::from_nanos(FUNDS).expect("amount") },
        Allocation { account: AccountId::of(&key(7, 3)), amount: Amount::from_nanos(1).expect("amount") },
    ]);
    assert_ne!(here.network(), there.network(), "another genesis, another network");
    let order = order_from(&here.network(), &key(7, 0), &key(7, 1), 100, 0);
    let before = state_hashes(&there);
    let (_, answers) = there.collect_votes(&all(&there), &order);
    for answer in &answers {
        assert!(matches!(answer, Err(LedgerError::WrongNetwork { got, .. }) if *got == here.network()), "{answers:?}");
    }
    let certificate = here.transfer(&order).expect("certified where it was signed for");
    for member in &mut there.members {
        assert!(matches!(member.elder.handle_certificate(&certificate), Err(LedgerError::WrongNetwork { .. })));
    }
    assert_eq!(state_hashes(&there), before, "nothing moved on the other network");
}
