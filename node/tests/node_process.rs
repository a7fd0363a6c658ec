//! A real `acre-node` process: initialised, run on a free port, asked over HTTP, refusing
//! bad requests with problem+json, stopped by SIGTERM and restarted on the same ledger.

use std::path::Path;
use std::process::Command;

use acre_ledger::{AccountId, Amount, Digest, SignedOrder, TransferOrder};
use acre_tests::NodeProcess;
use ed25519_dalek::SigningKey;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_acre-node");

async fn get(api: &str, path: &str) -> (u16, String, Value) {
    let response = reqwest::get(format!("{api}{path}")).await.expect("request");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, content_type, response.json().await.expect("JSON body"))
}

async fn expect_problem(api: &str, path: &str, status: u16, code: &str) {
    let (got, content_type, body) = get(api, path).await;
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path}: {body}");
    assert_eq!(content_type, "application/problem+json", "{path}");
    assert_eq!(body["status"], status);
}

async fn post(api: &str, path: &str, body: reqwest::Body) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{api}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn order(network: Digest, from: &SigningKey, to: AccountId, amount: &str, sequence: u64) -> SignedOrder {
    let amount: Amount = amount.parse().expect("amount");
    let memo = "rent".into();
    TransferOrder { network, from: AccountId::of(from), to, amount, sequence, app: None, memo, hidden: None }.sign(from)
}

fn json_of(order: &SignedOrder) -> reqwest::Body {
    serde_json::to_vec(order).expect("json").into()
}

/// A one-elder network certifies on its own vote: orders, retries, rivals and bad input.
async fn transfers_on_a_single_elder(api: &str, alice: &SigningKey, bob: AccountId) {
    let (status, _, section) = get(api, "/v1/section").await;
    assert_eq!((status, section["role"].as_str(), section["quorum"].as_u64()), (200, Some("elder"), Some(1)));
    let network: Digest = serde_json::from_value(section["network"].clone()).expect("the network's identity");

    let pay_bob = order(network, alice, bob, "0.5", 0);
    let (status, transfer) = post(api, "/v1/orders", json_of(&pay_bob)).await;
    assert_eq!(status, 200, "{transfer}");
    let (status, again) = post(api, "/v1/orders", json_of(&pay_bob)).await;
    assert_eq!((status, &again["id"]), (200, &transfer["id"]), "a retry gets the same certificate");
    let (_, _, account) = get(api, &format!("/v1/accounts/{bob}")).await;
    assert_eq!(account["balance"], "0.5");

    let id = transfer["id"].as_str().expect("id");
    let (status, _, fetched) = get(api, &format!("/v1/transfers/{id}")).await;
    assert_eq!((status, &fetched["certificate"]), (200, &transfer["certificate"]));
    let (status, confirmation) =
        post(api, "/v1/certificates", serde_json::to_vec(&transfer["certificate"]).expect("json").into()).await;
    assert_eq!((status, confirmation["sequence"].as_u64()), (200, Some(0)));

    let rival = order(network, alice, AccountId::of(&SigningKey::from_bytes(&[7; 32])), "0.5", 0);
    let (status, problem) = post(api, "/v1/orders", json_of(&rival)).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("conflicting_order")), "the sequence went to another");
    let mut forged = order(network, alice, bob, "1", 1);
    forged.order.amount = "100".parse().expect("amount");
    let (status, problem) = post(api, "/v1/orders", json_of(&forged)).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_signature")));
    let (status, problem) = post(api, "/v1/orders", json_of(&order(network, alice, bob, "1000", 1))).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("insufficient_balance")));
    let (status, problem) = post(api, "/v1/orders", "{\"order\": ".into()).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_json")));
    let (status, problem) = post(api, "/v1/orders", vec![b' '; 100_000].into()).await;
    assert_eq!((status, problem["code"].as_str()), (413, Some("payload_too_large")));
    expect_problem(api, "/v1/transfers/abc", 400, "invalid_id").await;
    expect_problem(api, &format!("/v1/transfers/{}", "0".repeat(64)), 404, "unknown_transfer").await;
}

fn init(data_dir: &Path) -> std::process::Output {
    Command::new(BINARY).arg("init").arg("--data-dir").arg(data_dir).output().expect("init")
}

#[tokio::test]
async fn a_node_serves_its_ledger_refuses_bad_requests_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node");
    assert!(init(&data_dir).status.success());
    assert!(!init(&data_dir).status.success(), "a second init must not overwrite the node");

    let alice_key = SigningKey::from_bytes(&[5; 32]);
    let alice = AccountId::of(&alice_key);
    let bob = AccountId::of(&SigningKey::from_bytes(&[6; 32]));
    let genesis_path = data_dir.join("genesis.json");
    let mut genesis: Value = serde_json::from_slice(&std::fs::read(&genesis_path).expect("genesis")).expect("json");
    genesis["allocations"] = serde_json::json!([{ "account": alice.to_string(), "amount": "100.5" }]);
    std::fs::write(&genesis_path, genesis.to_string()).expect("write genesis");

    let node = NodeProcess::start(Path::new(BINARY), &data_dir);
    let (status, _, health) = get(&node.api, "/v1/health").await;
    assert_eq!((status, health["status"].as_str(), health["accounts"].as_u64()), (200, Some("ok"), Some(1)));

    let (status, _, account) = get(&node.api, &format!("/v1/accounts/{alice}")).await;
    assert_eq!(status, 200);
    assert_eq!(account["balance"], "100.5");
    assert_eq!(account["next_sequence"], 0);
    assert!(account["pending_order"].is_null());

    let (status, _, page) = get(&node.api, &format!("/v1/accounts/{alice}/history?limit=1")).await;
    assert_eq!(status, 200);
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(1));
    assert!(page["next_cursor"].is_null());

    expect_problem(&node.api, "/v1/accounts/acre1notanaddress", 400, "invalid_address").await;
    expect_problem(&node.api, &format!("/v1/accounts/{bob}"), 404, "unknown_account").await;
    expect_problem(&node.api, &format!("/v1/accounts/{alice}/history?limit=many"), 400, "invalid_query").await;
    expect_problem(&node.api, &format!("/v1/accounts/{alice}/history?limit=0"), 400, "invalid_query").await;
    expect_problem(&node.api, "/v1/no-such-thing", 404, "not_found").await;
    expect_problem(&node.api, "/v1/orders", 405, "method_not_allowed").await;
    expect_problem(&node.api, "/v1/accounts/%FF", 400, "invalid_path").await;
    transfers_on_a_single_elder(&node.api, &alice_key, bob).await;
    let metrics = reqwest::get(format!("{}/metrics", node.api)).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("acre_orders_total{result=\"ok\"} 2"), "{metrics}");
    assert!(metrics.contains("acre_orders_total{result=\"invalid_signature\"} 1"), "{metrics}");
    assert!(metrics.contains("acre_ledger_call_seconds"), "{metrics}");
    let (_, _, health) = get(&node.api, "/v1/health").await;
    let hash = health["state_hash"].clone();
    node.stop();

    let node = NodeProcess::start(Path::new(BINARY), &data_dir);
    let (_, _, health) = get(&node.api, "/v1/health").await;
    assert_eq!(health["state_hash"], hash, "the ledger changed across a restart");
    let (_, _, account) = get(&node.api, &format!("/v1/accounts/{alice}")).await;
    assert_eq!((account["balance"].as_str(), account["next_sequence"].as_u64()), (Some("100"), Some(1)));
    node.stop();
}

/// A core task that dies takes the node down with it, naming the task, rather than leave
/// an API answering for a node whose network, driver, audits or catch-up is gone.
#[test]
fn a_node_whose_core_task_dies_stops_and_says_which() {
    let dir = tempfile::tempdir().expect("tempdir");
    let init = Command::new(BINARY).args(["init", "--data-dir"]).arg(dir.path()).output().expect("init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let mut node = Command::new(BINARY)
        .args(["run", "--api", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env(acre_node::supervisor::PANIC_TASK_VARIABLE, "audits")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + acre_tests::DEADLINE;
    let status = loop {
        if let Some(status) = node.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = node.kill();
            panic!("the node still runs with a dead audits task");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut node.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(!status.success(), "a dead core is a failure: {stderr}");
    assert!(stderr.contains("the audits task panicked"), "{stderr}");
}
