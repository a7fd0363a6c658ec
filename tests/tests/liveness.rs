//! Liveness on a 7-node devnet of real processes: an elder stopped with SIGSTOP keeps
//! its connections open but answers nothing, and the other elders remove it. In a test
//! binary of its own, so its devnet does not share the machine with the farming tests'.

mod common;

use std::time::Duration;

use acre_tests::{eventually_within, send_signal};
use common::Fixture;

/// Unanswered long enough to be complained about, the complaints ordered, the removal.
const REMOVED_WITHIN: Duration = Duration::from_secs(150);

/// Sends SIGCONT when dropped, so a stopped node can be stopped for good at the end,
/// whatever the test found.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        send_signal(self.0, "CONT");
    }
}

/// How long the audit rounds are watched while an elder is stopped.
const WATCHED: Duration = Duration::from_secs(20);
/// Fewest audit rounds in [`WATCHED`]: one every 2 s, and an audit of the stopped elder
/// times out within one (9 measured here). When each round first waited for every
/// member's fullness, the stopped elder's silence held each round to some 5 s (4 rounds).
const ROUNDS_WATCHED: u64 = 7;

/// The round of `observer`'s last audit of `holder`, if it audited it yet.
fn last_round(fixture: &Fixture, observer: usize, holder: &str) -> Option<u64> {
    fixture.get(fixture.api(observer), &format!("/v1/farmers/{holder}"))["last"]["round"].as_u64()
}

/// An elder stopped with SIGSTOP keeps its connections open but answers nothing: the
/// other elders go by unanswered requests, not by the connection, and remove it. Meanwhile
/// their audit rounds keep their pace: nothing in a round waits on the stopped elder for
/// longer than an audit's deadline.
#[test]
fn a_stopped_elder_that_keeps_its_connections_is_removed() {
    let fixture = Fixture::start_seeded(7);
    let stopped = fixture.manifest.nodes.last().expect("a node");
    // A holder node 0 audits, other than the one to stop: the seed file's chunks are on
    // 4 of the 7.
    let audited = eventually_within(REMOVED_WITHIN, "node 0 audits another holder", || {
        fixture.manifest.nodes[1..fixture.manifest.nodes.len() - 1]
            .iter()
            .map(|node| node.id.to_string())
            .find(|holder| last_round(&fixture, 0, holder).is_some())
    });
    let section = fixture.get(fixture.api(0), "/v1/section/members");
    let listed = section["members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["node"] == stopped.id.to_string().as_str() && m["elder"] == true);
    assert!(listed, "the node is an elder before it stops: {section}");
    send_signal(stopped.pid, "STOP");
    let _continue = Continue(stopped.pid);
    let before = last_round(&fixture, 0, &audited).expect("audited");
    std::thread::sleep(WATCHED);
    let rounds = last_round(&fixture, 0, &audited).expect("audited") - before;
    assert!(rounds >= ROUNDS_WATCHED, "{rounds} audit rounds in {WATCHED:?} with an elder stopped");
    eventually_within(REMOVED_WITHIN, "the stopped elder is removed", || {
        let view = fixture.get(fixture.api(0), "/v1/section/members");
        let members = view["members"].as_array()?;
        members.iter().all(|m| m["node"] != stopped.id.to_string().as_str()).then_some(())
    });
}
