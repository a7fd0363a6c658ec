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

/// An elder stopped with SIGSTOP keeps its connections open but answers nothing: the
/// other elders go by unanswered requests, not by the connection, and remove it.
#[test]
fn a_stopped_elder_that_keeps_its_connections_is_removed() {
    let fixture = Fixture::start(7);
    let stopped = fixture.manifest.nodes.last().expect("a node");
    let section = fixture.get(fixture.api(0), "/v1/section/members");
    let listed = section["members"]
        .as_array()
        .expect("members")
        .iter()
        .any(|m| m["node"] == stopped.id.to_string().as_str() && m["elder"] == true);
    assert!(listed, "the node is an elder before it stops: {section}");
    send_signal(stopped.pid, "STOP");
    let _continue = Continue(stopped.pid);
    eventually_within(REMOVED_WITHIN, "the stopped elder is removed", || {
        let view = fixture.get(fixture.api(0), "/v1/section/members");
        let members = view["members"].as_array()?;
        members.iter().all(|m| m["node"] != stopped.id.to_string().as_str()).then_some(())
    });
}
