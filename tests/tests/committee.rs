//! Transfers through in-process committees of 4 and 7 elders, with one elder voting under
//! a wrong key and one offline.

use acre_ledger::store::{MemoryStore, Store};
use acre_ledger::testkit::{key, order_from, LocalCommittee};
use acre_ledger::{AccountId, Allocation, Amount, Change, LedgerError};

const FUNDS: u64 = 1_000_000;

/// Elder 1 votes under a wrong key if `wrong_key`; elder 2 is offline if `offline`.
fn committee_with_faults(size: usize, wrong_key: bool, offline: bool) -> LocalCommittee<MemoryStore> {
    let mut committee = LocalCommittee::in_memory(size, size as u64);
    if wrong_key {
        committee.give_wrong_key(1, MemoryStore::new());
    }
    committee.members[2].online = !offline;
    let alice = key(0, 0);
    committee
        .genesis(&[Allocation { account: AccountId::of(&alice), amount: Amount::from_nanos(FUNDS).expect("amount") }]);
    committee
}

fn transfers_complete_despite(size: usize, wrong_key: bool, offline: bool) {
    let mut committee = committee_with_faults(size, wrong_key, offline);
    let (alice, bob) = (key(0, 0), key(0, 1));
    let mut certificates = Vec::new();
    for sequence in 0..5 {
        let order = order_from(&committee.network(), &alice, &bob, 1_000, sequence);
        let certificate = committee.transfer(&order).expect("transfer certified and applied");
        assert!(
            certificate.votes.iter().all(|vote| committee.committee.contains(&vote.elder)),
            "only committee members' votes make the certificate"
        );
        let impostor = AccountId::of(&committee.signers[1]);
        assert!(!wrong_key || certificate.votes.iter().all(|vote| vote.elder != impostor));
        certificates.push(certificate);
    }
    let honest = [0, 3];
    for &index in &honest {
        let state = committee.members[index].elder.state();
        assert_eq!(state.account(&AccountId::of(&bob)).map(|a| a.balance.nanos()), Some(5_000));
        assert_eq!(state.account(&AccountId::of(&alice)).map(|a| a.next_sequence), Some(5));
        assert_eq!(state.circulating().map(Amount::nanos), Some(FUNDS));
    }
    assert_eq!(committee.members[0].elder.state().state_hash(), committee.members[3].elder.state().state_hash());

    if !offline {
        return;
    }
    // The offline elder comes back and catches up from the certificates it missed.
    committee.members[2].online = true;
    let behind = committee.members[2].elder.state().state_hash();
    for certificate in &certificates {
        committee.members[2].elder.handle_certificate(certificate).expect("catch-up applies");
    }
    let caught_up = committee.members[2].elder.state().state_hash();
    assert_ne!(behind, caught_up);
    assert_eq!(caught_up, committee.members[0].elder.state().state_hash());

    let history = committee.members[2].elder.history(&AccountId::of(&alice), 0, 100).expect("history");
    assert_eq!(history.len(), 6, "genesis and five payments");
    assert!(matches!(history[0].change, Change::Genesis));
    assert_eq!(history[5].balance_after.nanos(), FUNDS - 5_000);
    let page = committee.members[2].elder.history(&AccountId::of(&alice), 4, 100).expect("history");
    assert_eq!(page.iter().map(|e| e.index).collect::<Vec<_>>(), vec![4, 5]);
}

#[test]
fn committee_of_4_transfers_with_one_elder_on_a_wrong_key() {
    transfers_complete_despite(4, true, false);
}

#[test]
fn committee_of_4_transfers_with_one_elder_offline() {
    transfers_complete_despite(4, false, true);
}

#[test]
fn committee_of_7_transfers_with_one_wrong_key_and_one_offline() {
    transfers_complete_despite(7, true, true);
}

#[test]
fn two_faults_in_a_committee_of_4_leave_no_quorum() {
    let mut committee = committee_with_faults(4, true, true);
    let order = order_from(&committee.network(), &key(0, 0), &key(0, 1), 10, 0);
    let refusals = committee.transfer(&order).expect_err("only one valid vote is possible");
    assert!(refusals.is_empty(), "no elder refused; too few valid votes came back: {refusals:?}");
    assert_eq!(committee.members[0].elder.state().account(&AccountId::of(&key(0, 1))), None);
}

#[test]
fn a_lagging_elder_applies_certificates_once_their_predecessors_arrive() {
    let mut committee = LocalCommittee::in_memory(4, 9);
    let (alice, bob, carol) = (key(1, 0), key(1, 1), key(1, 2));
    committee
        .genesis(&[Allocation { account: AccountId::of(&alice), amount: Amount::from_nanos(100).expect("amount") }]);
    committee.members[3].online = false;
    let to_bob = committee.transfer(&order_from(&committee.network(), &alice, &bob, 60, 0)).expect("alice pays bob");
    let to_carol = committee.transfer(&order_from(&committee.network(), &bob, &carol, 50, 0)).expect("bob pays carol");
    let lagging = &mut committee.members[3].elder;
    assert_eq!(lagging.handle_certificate(&to_carol), Err(LedgerError::CreditsNotYetApplied));
    assert!(LedgerError::CreditsNotYetApplied.is_retryable());
    lagging.handle_certificate(&to_bob).expect("first certificate");
    lagging.handle_certificate(&to_carol).expect("second certificate");
    assert_eq!(lagging.state().account(&AccountId::of(&carol)).map(|a| a.balance.nanos()), Some(50));
    assert_eq!(lagging.store().certificate_at(&AccountId::of(&bob), 0).expect("read"), Some(to_carol.id()));
}
