//! The farmer's dashboard, opened in headless Chromium (installed by `make deps`) on a
//! seeded 4-node devnet: every reward, proven byte count, disk figure and member on the
//! page is the one the JSON API gives.

mod common;

use std::process::Command;

use acre_api::routes;
use acre_tests::eventually;
use common::Fixture;
use serde_json::Value;

/// The page at `url` as Chromium renders it.
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().expect("tempdir");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap_or_else(|error| panic!("chromium did not start ({error}); `make deps` installs it"));
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 page")
}

/// The values of `attribute` on the elements that carry `marker`, in page order.
fn attribute_after(dom: &str, marker: &str, attribute: &str) -> Vec<String> {
    dom.match_indices(marker)
        .filter_map(|(at, _)| {
            let tag_end = dom[at..].find('>')? + at;
            let tag = &dom[at..tag_end];
            let start = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
            let len = tag[start..].find('"')?;
            Some(tag[start..start + len].to_owned())
        })
        .collect()
}

fn one(dom: &str, marker: &str, attribute: &str) -> String {
    let values = attribute_after(dom, marker, attribute);
    assert_eq!(values.len(), 1, "{marker} {attribute} once on the page: {values:?}");
    values[0].clone()
}

#[test]
fn the_dashboard_shows_what_the_api_says() {
    let fixture = Fixture::start_seeded(4);
    let api = fixture.api(1);
    let node = fixture.manifest.nodes[1].id.to_string();
    eventually("the seeded devnet pays node 1 a reward", || {
        let statement = fixture.get(api, &routes::statement(&node));
        let lines = statement["epochs"].as_array()?;
        lines.iter().any(|line| line["reward"].as_str().is_some_and(|r| r != "0")).then_some(())
    });

    let epoch_before = fixture.get(api, routes::MEMBERS)["epoch"].as_u64().expect("open epoch");
    let dom = rendered(&format!("{api}/"));
    let statement = fixture.get(api, &routes::statement(&node));
    let members = fixture.get(api, routes::MEMBERS);
    let farmer = fixture.get(api, &routes::farmer(&node));

    assert!(dom.contains(&node), "the page names its node");
    let open: u64 = one(&dom, "id=\"open-epoch\"", "data-epoch").parse().expect("epoch number");
    assert!((epoch_before..=members["epoch"].as_u64().expect("epoch")).contains(&open), "open epoch {open}");

    // Every epoch row equals the statement's line for that epoch.
    let epochs = attribute_after(&dom, "<tr data-epoch=", "data-epoch");
    let proven = attribute_after(&dom, "<tr data-epoch=", "data-proven-bytes");
    let rewards = attribute_after(&dom, "<tr data-epoch=", "data-reward");
    assert!(!epochs.is_empty(), "the page lists closed epochs");
    let lines = statement["epochs"].as_array().expect("lines");
    for ((epoch, bytes), reward) in epochs.iter().zip(&proven).zip(&rewards) {
        let epoch_number: u64 = epoch.parse().expect("epoch number");
        let line: &Value = lines.iter().find(|line| line["epoch"] == epoch_number).expect("the API has it");
        assert_eq!(line["proven_bytes"].to_string(), *bytes, "proven bytes of epoch {epoch}");
        assert_eq!(line["reward"].as_str(), Some(reward.as_str()), "reward of epoch {epoch}");
    }
    assert!(rewards.iter().any(|reward| reward != "0"), "a reward on the page: {rewards:?}");
    assert_eq!(dom.matches("class=\"bar\"").count(), epochs.len(), "one bar per epoch");

    // Per epoch, the challenges this node put equal the sum over members' statements.
    let audit_epochs = attribute_after(&dom, "<tr data-audit-epoch=", "data-audit-epoch");
    let audit_passed = attribute_after(&dom, "<tr data-audit-epoch=", "data-passed");
    assert_eq!(audit_epochs, epochs, "an audit row for every epoch row");
    let statements: Vec<Value> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| fixture.get(api, &routes::statement(member["node"].as_str().expect("node"))))
        .collect();
    for (epoch, passed) in audit_epochs.iter().zip(&audit_passed) {
        let summed: u64 = statements
            .iter()
            .filter_map(|statement| {
                let lines = statement["epochs"].as_array()?;
                let number: u64 = epoch.parse().ok()?;
                let line = lines.iter().find(|line| line["epoch"] == number)?;
                line["challenges"]["passed"].as_u64()
            })
            .sum();
        assert_eq!(summed.to_string(), *passed, "challenges passed in epoch {epoch}");
    }
    assert!(audit_passed.iter().any(|passed| passed != "0"), "node 1 audits as an elder: {audit_passed:?}");

    for (attribute, field) in [("data-chunks", "chunks"), ("data-bytes", "bytes"), ("data-capacity", "capacity")] {
        assert_eq!(one(&dom, "id=\"disk\"", attribute), farmer[field].to_string(), "{field}");
    }

    let mut on_page = attribute_after(&dom, "<tr data-node=", "data-node");
    let mut listed: Vec<String> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| member["node"].as_str().expect("node").to_owned())
        .collect();
    on_page.sort();
    listed.sort();
    assert_eq!(on_page, listed, "the page lists the section's members");
}
