//! What the devnet tests share: a devnet of real processes, a wallet pointed at it, and
//! HTTP helpers. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use acre_api::devnet::Manifest;
use acre_ledger::{AccountId, Amount, Certificate, Committee, SignedOrder, TransferOrder};
use acre_tests::{eventually, workspace_binary, DevnetProcess};
use ed25519_dalek::SigningKey;
use serde_json::Value;

/// A devnet of elder processes and a wallet pointed at it.
pub(crate) struct Fixture {
    /// The devnet.
    pub(crate) devnet: DevnetProcess,
    /// Its manifest.
    pub(crate) manifest: Manifest,
    /// The wallet's keystore.
    pub(crate) keystore: PathBuf,
    /// A client for raw HTTP.
    pub(crate) http: reqwest::blocking::Client,
    /// Where the devnet lives: dropped last, after the devnet has stopped (and kept the
    /// logs of a failed test).
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts a devnet of `nodes` elders and waits until they are all connected.
    pub(crate) fn start(nodes: usize) -> Self {
        Self::start_with(nodes, DevnetProcess::start)
    }

    /// Starts a devnet as `make devnet` does, storing a seed file from its faucet.
    pub(crate) fn start_seeded(nodes: usize) -> Self {
        Self::start_with(nodes, DevnetProcess::start_seeded)
    }

    fn start_with(nodes: usize, start: fn(&std::path::Path, &std::path::Path, usize) -> DevnetProcess) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let devnet = start(&workspace_binary("acre-node"), &dir.path().join("devnet"), nodes);
        let manifest = Manifest::read(&devnet.dir).expect("manifest");
        assert_eq!(manifest.nodes.len(), nodes);
        let keystore = dir.path().join("keys");
        let http = reqwest::blocking::Client::new();
        let fixture = Fixture { _dir: dir, devnet, manifest, keystore, http };
        // Every elder must see the others before the first transfer can gather a quorum.
        fixture.wait_connected(&all_apis(&fixture));
        fixture
    }

    /// Waits until each of these nodes is connected to every elder.
    pub(crate) fn wait_connected(&self, apis: &[&str]) {
        let elders = self.manifest.nodes.len();
        for api in apis {
            eventually("every elder is connected to the others", || {
                let section = self.get(api, "/v1/section");
                let connected = section["elders"].as_array()?.iter().filter(|e| e["connected"] == true).count();
                (connected == elders).then_some(())
            });
        }
    }

    /// Every placed member's placement name as node `api` serves them: where the section
    /// put it in the XOR space at the first close after it joined, which decides the
    /// chunks it holds. A member admitted since the last close has none yet.
    pub(crate) fn placement_names(&self, api: &str) -> std::collections::BTreeMap<AccountId, [u8; 32]> {
        let view = self.get(api, "/v1/section/members");
        let members = view["members"].as_array().expect("members");
        let named = |member: &Value| -> Option<(AccountId, [u8; 32])> {
            let node = member["node"].as_str().and_then(|text| text.parse().ok()).expect("a node id");
            let name: acre_ledger::Digest = member["placement_name"].as_str()?.parse().expect("a placement name");
            Some((node, name.0))
        };
        members.iter().filter_map(named).collect()
    }

    /// Runs `acre` against the devnet (found through `ACRE_DEVNET`, as a user's would be).
    pub(crate) fn wallet(&self, args: &[&str]) -> Output {
        self.wallet_command(args).env("ACRE_PASSWORD", "correct horse").output().expect("run acre")
    }

    /// Runs `acre` with no password to give, off a terminal: a command that asks for one fails.
    pub(crate) fn wallet_without_password(&self, args: &[&str]) -> Output {
        self.wallet_command(args).env_remove("ACRE_PASSWORD").output().expect("run acre")
    }

    fn wallet_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(workspace_binary("acre"));
        command
            .arg("--json")
            .arg("--keystore")
            .arg(&self.keystore)
            .args(args)
            .env("ACRE_DEVNET", &self.devnet.dir)
            .env_remove("ACRE_NODE")
            .stdin(std::process::Stdio::null());
        command
    }

    pub(crate) fn wallet_json(&self, args: &[&str]) -> Value {
        let output = self.wallet(args);
        assert!(
            output.status.success(),
            "acre {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("one JSON document")
    }

    pub(crate) fn get(&self, api: &str, path: &str) -> Value {
        let response = self.http.get(format!("{api}{path}")).send().expect("GET");
        response.json().unwrap_or(Value::Null)
    }

    /// POSTs `body` and returns the status, the content type and the JSON answer.
    pub(crate) fn post(&self, api: &str, path: &str, body: reqwest::blocking::Body) -> (u16, String, Value) {
        let response = self
            .http
            .post(format!("{api}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("POST");
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (status, content_type, response.json().unwrap_or(Value::Null))
    }

    /// The devnet's network identity, as its first node names it.
    pub(crate) fn network(&self) -> acre_ledger::Digest {
        serde_json::from_value(self.get(self.api(0), "/v1/section")["network"].clone()).expect("network")
    }

    /// A signed order on the devnet's network.
    pub(crate) fn order(&self, from: &SigningKey, to: AccountId, amount: &str, sequence: u64) -> SignedOrder {
        let amount: Amount = amount.parse().expect("amount");
        let network = self.network();
        let memo = String::new();
        TransferOrder { network, from: AccountId::of(from), to, amount, sequence, app: None, memo, hidden: None }
            .sign(from)
    }

    pub(crate) fn post_order(&self, api: &str, order: &SignedOrder) -> (u16, String, Value) {
        self.post(api, "/v1/orders", serde_json::to_vec(order).expect("json").into())
    }

    pub(crate) fn api(&self, index: usize) -> &str {
        &self.manifest.nodes[index].api
    }

    /// A fresh key funded from the faucet through the CLI.
    pub(crate) fn funded_key(&self, credits: &str) -> SigningKey {
        let key = SigningKey::from_bytes(&rand_secret());
        let address = AccountId::of(&key).to_string();
        let sent = self.wallet_json(&["faucet", &address, credits]);
        assert_eq!(sent["certificate"]["order"]["to"], address.as_str());
        key
    }

    pub(crate) fn balance(&self, api: &str, account: &AccountId) -> Option<String> {
        let view = self.get(api, &format!("/v1/accounts/{account}"));
        view["balance"].as_str().map(str::to_owned)
    }

    pub(crate) fn state_hash(&self, api: &str) -> Option<String> {
        self.get(api, "/v1/health")["state_hash"].as_str().map(str::to_owned)
    }

    /// Waits until every listed node reports the same state hash, and returns it.
    pub(crate) fn converged(&self, apis: &[&str]) -> String {
        eventually("the elders' state hashes agree", || {
            let hashes: Vec<String> = apis.iter().map(|api| self.state_hash(api)).collect::<Option<_>>()?;
            hashes.windows(2).all(|pair| pair[0] == pair[1]).then(|| hashes[0].clone())
        })
    }

    pub(crate) fn committee(&self) -> Committee {
        Committee::new(self.manifest.elders()).expect("committee")
    }
}

pub(crate) fn rand_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    getrandom(&mut secret);
    secret
}

/// Test keys from the OS, so concurrent tests never share an account.
pub(crate) fn getrandom(bytes: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(bytes)).expect("/dev/urandom");
}

pub(crate) fn certificate_of(answer: &Value) -> Certificate {
    serde_json::from_value(answer["certificate"].clone()).expect("a certificate")
}

pub(crate) fn all_apis(fixture: &Fixture) -> Vec<&str> {
    fixture.manifest.nodes.iter().map(|node| node.api.as_str()).collect()
}

/// Starts a transport of its own with `key`, dialling `bootstrap`, and waits until each of
/// `peers` answers `probe` on protocol `P`, for tests that speak a protocol themselves.
pub(crate) async fn connect<P: acre_node::transport::Routed>(
    key: &SigningKey,
    bootstrap: &[String],
    peers: &[libp2p::PeerId],
    probe: &P::Request,
    within: std::time::Duration,
) -> acre_node::transport::NetworkHandle {
    use acre_node::transport::{identity_of, Network, NetworkConfig, RefuseAll};
    let config = NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("address")],
        bootstrap: bootstrap.iter().map(|a| a.parse().expect("a libp2p address")).collect(),
        keep_connected: peers.to_vec(),
        request_timeout: std::time::Duration::from_secs(10),
    };
    let (network, handle) = Network::new(identity_of(key).expect("identity"), config).expect("transport");
    tokio::spawn(network.run(RefuseAll));
    let deadline = std::time::Instant::now() + within;
    for peer in peers {
        while handle.request::<P>(*peer, probe).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "{peer} never answered over libp2p");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    handle
}
