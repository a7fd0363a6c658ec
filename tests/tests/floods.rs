//! A member that floods an elder with proposals, on a 4-node devnet of real processes: the
//! test kills one node, takes over its key (a member's, as the section knows it) and
//! sends an elder, over libp2p, enrolments signed by thousands of fresh keys, each of
//! which proves itself. Keys cost nothing, so proving is not enough: the elder proposes a
//! member's items only within its budget per epoch, the section admits one join per
//! epoch, and the epochs go on closing. In a test binary of its own, so its devnet does
//! not share the machine with other devnet tests'.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use acre_core::wire::{Log, LogReply, LogRequest};
use acre_core::{Enrolment, LogItem};
use acre_ledger::AccountId;
use acre_tests::{eventually_within, send_signal};
use common::{rand_secret, Fixture};
use ed25519_dalek::SigningKey;
use libp2p::PeerId;

/// Enrolments sent: about 1.4 MiB of them, more than a member's 1 MiB per epoch.
const FLOOD: usize = 8_000;
/// Sent at once.
const IN_FLIGHT: usize = 64;

/// The open epoch and the ids of the section's members.
fn epoch_and_members(fixture: &Fixture) -> Option<(u64, BTreeSet<String>)> {
    let view = fixture.get(fixture.api(0), "/v1/section/members");
    let members: Option<BTreeSet<String>> =
        view["members"].as_array()?.iter().map(|m| m["node"].as_str().map(str::to_owned)).collect();
    Some((view["epoch"].as_u64()?, members?))
}

#[test]
fn a_members_flood_of_proposals_neither_stalls_the_epochs_nor_fills_the_section() {
    let fixture = Fixture::start(4);
    let member = &fixture.manifest.nodes[3];
    let key = acre_node::config::key::load(&member.data_dir.join(acre_node::config::KEY_FILE)).expect("key");
    send_signal(member.pid, "KILL");
    let elder = &fixture.manifest.nodes[0];
    let peer: PeerId = elder.peer_id.parse().expect("peer id");
    let network = fixture.network();
    let (first_epoch, first_members) = epoch_and_members(&fixture).expect("the section's members");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let taken = runtime.block_on(async {
        let probe = LogRequest::Outcome(0);
        let wire = common::connect::<Log>(&key, &elder.libp2p, &[peer], &probe, Duration::from_secs(10)).await;
        let mut taken = 0;
        for _ in 0..FLOOD / IN_FLIGHT {
            let mut sends = tokio::task::JoinSet::new();
            for _ in 0..IN_FLIGHT {
                let fresh = SigningKey::from_bytes(&rand_secret());
                let enrolment = Enrolment::new(&fresh, AccountId::of(&fresh), network, first_epoch);
                let request = LogRequest::Propose(Box::new(LogItem::Enrol(enrolment)));
                let wire = wire.clone();
                sends.spawn(async move { wire.request::<Log>(peer, &request).await });
            }
            taken += sends.join_all().await.into_iter().filter(|reply| matches!(reply, Ok(LogReply::Done))).count();
        }
        taken
    });
    // Each proves itself, so the elder takes them; whether it proposes them is its budget's call.
    assert_eq!(taken, FLOOD / IN_FLIGHT * IN_FLIGHT, "every enrolment was answered");

    // Joined nodes that never answer are removed again: every member seen is counted.
    let (flooded_epoch, _) = epoch_and_members(&fixture).expect("the section's members");
    let mut joined = BTreeSet::new();
    let epoch = eventually_within(Duration::from_secs(90), "two more epochs close", || {
        let (epoch, members) = epoch_and_members(&fixture)?;
        joined.extend(members.difference(&first_members).cloned());
        (epoch >= flooded_epoch + 2).then_some(epoch)
    });
    // One join per epoch at most, whatever was proposed.
    assert!(joined.len() as u64 <= epoch - first_epoch, "{} joins in {} epochs", joined.len(), epoch - first_epoch);
}
