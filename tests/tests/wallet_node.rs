//! The `acre` wallet against a real `acre-node` process: balances, a confirmed send with
//! the certificate checked against the elders, its retry, history, and refusals that exit
//! with 1 (refused by the network) or 2 (local error).

use std::path::Path;
use std::process::{Command, Output};

use acre_ledger::AccountId;
use acre_tests::{workspace_binary, NodeProcess};
use ed25519_dalek::SigningKey;
use serde_json::Value;

const ALICE_SECRET: [u8; 32] = [21; 32];

struct Wallet {
    binary: std::path::PathBuf,
    keystore: std::path::PathBuf,
    node: String,
}

impl Wallet {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .arg("--keystore")
            .arg(&self.keystore)
            .args(["--node", &self.node, "--json"])
            .args(args)
            .env("ACRE_PASSWORD", "pw")
            .output()
            .expect("run acre")
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(output.status.success(), "acre {args:?}: {}", String::from_utf8_lossy(&output.stdout));
        serde_json::from_slice(&output.stdout).expect("one JSON document")
    }
}

fn funded_node(dir: &Path, alice: AccountId) -> std::path::PathBuf {
    let node_binary = workspace_binary("acre-node");
    let data_dir = dir.join("node");
    let init = Command::new(&node_binary).arg("init").arg("--data-dir").arg(&data_dir).output().expect("init");
    assert!(init.status.success());
    let genesis_path = data_dir.join("genesis.json");
    let mut genesis: Value = serde_json::from_slice(&std::fs::read(&genesis_path).expect("read")).expect("json");
    genesis["allocations"] = serde_json::json!([{ "account": alice.to_string(), "amount": "50" }]);
    std::fs::write(&genesis_path, genesis.to_string()).expect("write");
    data_dir
}

#[test]
fn a_wallet_sends_through_a_node_and_verifies_what_it_gets_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = AccountId::of(&SigningKey::from_bytes(&ALICE_SECRET));
    let data_dir = funded_node(dir.path(), alice);
    let node = NodeProcess::start(&workspace_binary("acre-node"), &data_dir);
    let wallet = Wallet { binary: workspace_binary("acre"), keystore: dir.path().join("keys"), node: node.api.clone() };

    let secret = dir.path().join("alice.secret");
    std::fs::write(&secret, hex_encode(&ALICE_SECRET)).expect("secret");
    let imported = wallet.json(&["key", "import", "alice", "--secret-file", secret.to_str().expect("utf-8")]);
    assert_eq!(imported["address"], alice.to_string());
    let bob = wallet.json(&["key", "new", "bob"])["address"].as_str().expect("address").to_owned();

    assert_eq!(wallet.json(&["balance", "alice"])["balance"], "50");

    // Bob has never held credits: refused locally unless allowed; no --yes, no send.
    let refused = wallet.run(&["send", "bob", "12.5", "--from", "alice", "--yes"]);
    assert_eq!(refused.status.code(), Some(2));
    let unconfirmed = wallet.run(&["send", "bob", "12.5", "--from", "alice", "--allow-new-recipient"]);
    assert_eq!(unconfirmed.status.code(), Some(2), "a script must say --yes");

    let sent =
        wallet.json(&["send", "bob", "12.5", "--from", "alice", "--yes", "--allow-new-recipient", "--memo", "hi"]);
    assert_eq!(sent["certificate"]["order"]["to"], bob.as_str());
    assert_eq!(wallet.json(&["balance", &bob])["balance"], "12.5");
    assert_eq!(wallet.json(&["balance", "alice"])["next_sequence"], 1);

    let history = wallet.json(&["history", "alice"]);
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "genesis and the payment");
    assert_eq!(entries[1]["source"], sent["id"]);

    // More than alice holds: the network refuses, exit code 1 with its code.
    let overdraft = wallet.run(&["send", "bob", "1000", "--from", "alice", "--yes"]);
    assert_eq!(overdraft.status.code(), Some(1));
    let problem: Value = serde_json::from_slice(&overdraft.stdout).expect("json");
    assert_eq!(problem["code"], "insufficient_balance");
    assert_eq!(wallet.json(&["balance", "alice"])["balance"], "37.5", "a refused send moves nothing");

    let typo = wallet.run(&["balance", "acre1qqqqqqqq"]);
    assert_eq!(typo.status.code(), Some(2));
    node.stop();
}

#[test]
fn an_unreachable_node_is_a_local_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let wallet = Wallet { binary: workspace_binary("acre"), keystore: dir.path().join("keys"), node: closed };
    let address = AccountId::of(&SigningKey::from_bytes(&ALICE_SECRET)).to_string();
    let output = wallet.run(&["balance", &address]);
    assert_eq!(output.status.code(), Some(2));
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_send_cut_short_is_finished_by_repeating_it_and_never_paid_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice_key = SigningKey::from_bytes(&ALICE_SECRET);
    let alice = AccountId::of(&alice_key);
    let data_dir = funded_node(dir.path(), alice);
    let node = NodeProcess::start(&workspace_binary("acre-node"), &data_dir);
    let wallet = Wallet { binary: workspace_binary("acre"), keystore: dir.path().join("keys"), node: node.api.clone() };
    let secret = dir.path().join("alice.secret");
    std::fs::write(&secret, hex_encode(&ALICE_SECRET)).expect("secret");
    wallet.json(&["key", "import", "alice", "--secret-file", secret.to_str().expect("utf-8")]);
    let carol = AccountId::of(&SigningKey::from_bytes(&[22; 32]));

    // A send that signed and journaled its order, then died before reaching the node.
    let section: serde_json::Value =
        reqwest::blocking::get(format!("{}/v1/section", node.api)).expect("GET").json().expect("json");
    let order = acre_ledger::TransferOrder {
        network: serde_json::from_value(section["network"].clone()).expect("the network's identity"),
        from: alice,
        to: carol,
        amount: "2".parse().expect("amount"),
        sequence: 0,
        app: None,
        memo: String::new(),
        hidden: None,
    }
    .sign(&alice_key);
    let journal = dir.path().join("keys").join("pending").join(format!("{alice}.json"));
    std::fs::create_dir_all(journal.parent().expect("dir")).expect("mkdir");
    std::fs::write(&journal, serde_json::to_vec(&order).expect("json")).expect("journal");

    // Another payment must wait for it; repeating it finishes it.
    let other = wallet.run(&["send", &carol.to_string(), "3", "--from", "alice", "--yes", "--allow-new-recipient"]);
    assert_eq!(other.status.code(), Some(2), "{}", String::from_utf8_lossy(&other.stdout));
    let carol_text = carol.to_string();
    let finish = ["send", carol_text.as_str(), "2", "--from", "alice", "--yes", "--allow-new-recipient"];
    let sent = wallet.json(&finish);
    assert_eq!(sent["id"], order.order.digest().to_string());
    assert!(!journal.exists(), "a settled send leaves no journal");

    // The wallet died after the node certified but before it cleared the journal.
    std::fs::write(&journal, serde_json::to_vec(&order).expect("json")).expect("journal");
    let again = wallet.json(&finish);
    assert_eq!(again["id"], sent["id"]);
    assert_eq!(wallet.json(&["balance", &carol_text])["balance"], "2", "paid once");
    assert_eq!(wallet.json(&["balance", "alice"])["next_sequence"], 1);
    node.stop();
}
