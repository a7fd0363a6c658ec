//! Confidential amounts on a 4-node devnet of real processes, through the `acre` CLI:
//! shield, hidden sends (one to an account that never held credits), an unshield, and the
//! supply audit; then what every node's API and disk show of the hidden amounts (nothing),
//! and a proof lifted into another order refused through the API.

mod common;

use std::path::Path;

use acre_ledger::confidential::{HiddenAction, HiddenSpend, Opening};
use acre_ledger::AccountId;
use common::{rand_secret, Fixture};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use serde_json::Value;

/// The hidden amounts, chosen so their digits (and their bytes) are recognisable.
const SENT: &str = "123.456789123";
const SENT_NANOS: u64 = 123_456_789_123;
const RETURNED: &str = "23.456789123";
const RETURNED_NANOS: u64 = 23_456_789_123;

fn hidden_total(fixture: &Fixture, key: &str) -> Value {
    fixture.wallet_json(&["balance", key])["hidden"]["opened"]["total"].clone()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[test]
fn hidden_amounts_move_through_the_cli_and_no_node_shows_them() {
    let fixture = Fixture::start(4);
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["key", "new", "bob"]);
    fixture.wallet_json(&["faucet", "alice", "1000"]);

    let shielded = fixture.wallet_json(&["shield", "500", "--from", "alice", "--yes"]);
    assert!(shielded["certificate"]["order"]["hidden"].is_object());
    let alice = fixture.wallet_json(&["balance", "alice"]);
    assert_eq!((alice["balance"].clone(), alice["hidden"]["opened"]["total"].clone()), ("500".into(), "500".into()));

    // Bob has never held credits: refused unless allowed, as for a public send.
    let refused = fixture.wallet(&["send", "bob", SENT, "--confidential", "--from", "alice", "--yes"]);
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stdout));
    let sent = fixture.wallet_json(&[
        "send",
        "bob",
        SENT,
        "--confidential",
        "--from",
        "alice",
        "--yes",
        "--allow-new-recipient",
    ]);
    assert_eq!(sent["certificate"]["order"]["amount"], "0", "the order shows no amount");
    let bob = fixture.wallet_json(&["balance", "bob"]);
    assert_eq!(bob["balance"], "0");
    assert_eq!(bob["hidden"]["opened"]["total"], SENT);
    assert_eq!(bob["hidden"]["opened"]["incoming"], SENT, "waiting as an incoming credit");
    let locked = fixture.wallet_without_password(&["balance", "bob"]);
    assert!(locked.status.success(), "the public balance shows without a password");
    let locked: Value = serde_json::from_slice(&locked.stdout).expect("json");
    assert_eq!((locked["balance"].clone(), locked["hidden"].clone()), ("0".into(), "locked".into()));

    // Bob folds the credit in with his next hidden order, pays some back and unshields the rest.
    fixture.wallet_json(&["send", "alice", RETURNED, "--confidential", "--from", "bob", "--yes"]);
    assert_eq!(hidden_total(&fixture, "bob"), "100");
    fixture.wallet_json(&["unshield", "100", "--from", "bob", "--yes"]);
    assert_eq!(fixture.wallet_json(&["balance", "bob"])["balance"], "100");
    assert_eq!(hidden_total(&fixture, "alice"), "400");
    let over = fixture.wallet(&["unshield", "401", "--from", "alice", "--yes"]);
    assert_eq!(over.status.code(), Some(2), "more than the hidden balance is refused before anything is signed");

    let supply = fixture.wallet_json(&["supply"]);
    assert_eq!(supply["audit"]["audit"]["holds"], true, "{supply}");
    assert_eq!(supply["audit"]["audit"]["hidden"], "400");
    assert_eq!(supply["hidden"], "400");

    // Nothing any node serves, nor any file any node wrote, shows a hidden amount.
    let apis: Vec<&str> = fixture.manifest.nodes.iter().map(|node| node.api.as_str()).collect();
    fixture.converged(&apis);
    let addresses = ["alice", "bob"].map(|name| fixture.wallet_json(&["key", "show", name])["address"].clone());
    let transfer = sent["id"].as_str().expect("transfer id");
    for api in &apis {
        let mut served = vec![
            fixture.get(api, "/v1/supply"),
            fixture.get(api, "/v1/supply/audit"),
            fixture.get(api, &format!("/v1/transfers/{transfer}")),
        ];
        for address in &addresses {
            let address = address.as_str().expect("address");
            for path in ["", "/history?limit=500", "/hidden"] {
                served.push(fixture.get(api, &format!("/v1/accounts/{address}{path}")));
            }
        }
        let text = Value::Array(served).to_string();
        for shown in [SENT, RETURNED, &SENT_NANOS.to_string(), &RETURNED_NANOS.to_string()] {
            assert!(!text.contains(shown), "{api} shows {shown}");
        }
    }
    let patterns = [SENT_NANOS.to_le_bytes(), RETURNED_NANOS.to_le_bytes(), SENT_NANOS.to_be_bytes()];
    let mut scanned = 0;
    for node in &fixture.manifest.nodes {
        for path in files(&node.data_dir) {
            let Ok(bytes) = std::fs::read(&path) else { continue };
            scanned += 1;
            for pattern in &patterns {
                assert!(!bytes.windows(8).any(|w| w == pattern), "{} holds a hidden amount", path.display());
            }
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(SENT) && !text.contains(RETURNED), "{} holds a hidden amount", path.display());
        }
    }
    assert!(scanned > 20, "the nodes' ledgers, logs and configuration were read ({scanned} files)");
}

#[test]
fn a_proof_lifted_into_another_order_is_refused_through_the_api() {
    let fixture = Fixture::start(4);
    let carol = fixture.funded_key("50");
    let dave = AccountId::of(&SigningKey::from_bytes(&rand_secret()));
    let network = fixture.network();
    let api = fixture.api(2);
    let spend = |sequence, spendable, action| HiddenSpend::new(&carol, network, sequence, spendable, action);
    let (shield, held) = spend(0, Opening::ZERO, HiddenAction::Shield { amount: "20".parse().expect("amount") })
        .build(&mut OsRng)
        .expect("order");
    let (status, _, answer) = fixture.post_order(api, &shield.sign(&carol));
    assert_eq!(status, 200, "{answer}");

    let action = HiddenAction::Transfer { to: dave, amount: "5".parse().expect("amount") };
    let (honest, _) = spend(1, held, action).build(&mut OsRng).expect("order");
    let mut lifted = honest.clone();
    lifted.memo = "another order".into();
    let (status, content_type, problem) = fixture.post_order(api, &lifted.sign(&carol));
    assert_eq!((status, content_type.as_str()), (422, "application/problem+json"), "{problem}");
    assert_eq!(problem["code"], "invalid_range_proof");
    let mut replayed = honest.clone();
    replayed.sequence = 2;
    let honest = honest.sign(&carol);
    let (status, _, answer) = fixture.post_order(api, &honest);
    assert_eq!(status, 200, "the untouched order is certified: {answer}");
    let (status, _, replay) = fixture.post_order(api, &honest);
    assert_eq!((status, answer["id"].clone()), (200, replay["id"].clone()), "a repeat gets the same certificate");
    // The same move at the sequence that is now next: its proof was made for sequence 1,
    // and its remainder for the balance before it (the elders see that first).
    let (status, _, problem) = fixture.post_order(api, &replayed.sign(&carol));
    assert_eq!(status, 422, "{problem}");
    assert!(matches!(problem["code"].as_str(), Some("hidden_mismatch" | "invalid_range_proof")), "{problem}");
}
