//! A real `acre-node` process: initialised, run on a free port, asked over HTTP, refusing
//! bad requests with problem+json, stopped by SIGTERM and restarted on the same ledger.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acre_ledger::AccountId;
use ed25519_dalek::SigningKey;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_acre-node");
const DEADLINE: Duration = Duration::from_secs(60);

/// A running node that is killed if the test fails before stopping it.
struct NodeProcess {
    child: Child,
    api: String,
}

impl NodeProcess {
    fn start(data_dir: &Path) -> Self {
        let address_file = data_dir.join("api-address");
        let _ = std::fs::remove_file(&address_file);
        let child = Command::new(BINARY)
            .args(["run", "--api", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn acre-node");
        let started = Instant::now();
        let api = loop {
            if let Ok(text) = std::fs::read_to_string(&address_file) {
                break text.trim().to_owned();
            }
            assert!(started.elapsed() < DEADLINE, "the node never wrote its API address");
            std::thread::sleep(Duration::from_millis(20));
        };
        NodeProcess { child, api }
    }

    /// Sends SIGTERM and expects a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "the node exited with {status} on SIGTERM");
                return;
            }
            assert!(started.elapsed() < DEADLINE, "the node ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

fn init(data_dir: &Path) -> std::process::Output {
    Command::new(BINARY).arg("init").arg("--data-dir").arg(data_dir).output().expect("init")
}

#[tokio::test]
async fn a_node_serves_its_ledger_refuses_bad_requests_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node");
    assert!(init(&data_dir).status.success());
    assert!(!init(&data_dir).status.success(), "a second init must not overwrite the node");

    let alice = AccountId::of(&SigningKey::from_bytes(&[5; 32]));
    let bob = AccountId::of(&SigningKey::from_bytes(&[6; 32]));
    let genesis_path = data_dir.join("genesis.json");
    let mut genesis: Value = serde_json::from_slice(&std::fs::read(&genesis_path).expect("genesis")).expect("json");
    genesis["allocations"] = serde_json::json!([{ "account": alice.to_string(), "amount": "100.5" }]);
    std::fs::write(&genesis_path, genesis.to_string()).expect("write genesis");

    let node = NodeProcess::start(&data_dir);
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
    let hash = health["state_hash"].clone();
    node.stop();

    let node = NodeProcess::start(&data_dir);
    let (_, _, health) = get(&node.api, "/v1/health").await;
    assert_eq!(health["state_hash"], hash, "the ledger changed across a restart");
    let (_, _, account) = get(&node.api, &format!("/v1/accounts/{alice}")).await;
    assert_eq!(account["balance"], "100.5");
    node.stop();
}
