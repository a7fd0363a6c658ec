//! Files stored on a 7-node devnet of real processes: a 20 MiB file put and got back
//! through the `acre` CLI, every chunk on exactly 4 holders, and the elders' audits
//! catching a holder whose chunks were deleted (missing), one whose bytes were altered
//! (wrong bytes) and one killed with SIGKILL (timeout) while the others keep passing.
//! Payments that are absent, too small or reused are refused; a full node refuses new
//! chunks and keeps the old.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use acre_ledger::economics::store_memo;
use acre_ledger::{AccountId, Amount, Certificate, Digest, TransferOrder};
use acre_proofs::placement::{closest, COPIES};
use acre_proofs::{encrypt_file, Chunk, ChunkAddress, Privacy};
use acre_tests::{eventually, eventually_within, send_signal, workspace_binary, NodeProcess};
use common::{certificate_of, rand_secret, Fixture};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

/// Random bytes from the OS.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        bytes.extend_from_slice(&rand_secret());
    }
    bytes.truncate(len);
    bytes
}

/// The chunk files (not outboards) a node keeps under its data directory.
fn chunk_files(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(shards) = std::fs::read_dir(data_dir.join("chunks")) else { return vec![] };
    shards
        .flatten()
        .filter(|shard| shard.file_name() != "incoming")
        .flat_map(|shard| std::fs::read_dir(shard.path()).into_iter().flatten().flatten())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_none())
        .collect()
}

/// What `observer`'s audits say of `node`.
/// Waits until process `pid` is gone (or a zombie): only then are its files, its store's
/// lock and its ports free for a restart.
fn wait_exited(pid: u32, what: &str) {
    eventually(what, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        stat.map_or(true, |stat| stat.rsplit(") ").next().is_some_and(|rest| rest.starts_with('Z'))).then_some(())
    });
}

fn farmer(fixture: &Fixture, observer: &str, node: &AccountId) -> Value {
    fixture.get(observer, &format!("/v1/farmers/{node}"))
}

fn count(view: &Value, outcome: &str) -> u64 {
    view["challenges"][outcome].as_u64().unwrap_or(0)
}

#[test]
fn a_file_stands_on_four_holders_audits_tell_loss_rot_and_death_apart_and_bad_copies_are_replaced() {
    let fixture = Fixture::start(7);
    let dir = tempfile::tempdir().expect("tempdir");
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["faucet", "alice", "1000"]);
    let original = random_bytes(20 << 20);
    let file = dir.path().join("original.bin");
    std::fs::write(&file, &original).expect("write file");
    let file_arg = file.to_str().expect("utf-8 path");

    // Sealed as `acre put` seals it: the pieces' ciphertexts and the secret map.
    let sealed = encrypt_file(&original, Privacy::Convergent).expect("encrypt");
    let addresses: Vec<ChunkAddress> = sealed.chunks.iter().map(Chunk::address).collect();
    let quote = fixture.wallet_json(&["quote", file_arg]);
    assert_eq!(quote["chunks"], addresses.len(), "21 pieces and the secret map");
    assert!(quote["quote"]["price"].is_string(), "{quote}");

    let put = fixture.wallet_json(&["put", file_arg, "--from", "alice", "--yes"]);
    let address = put["file"].as_str().expect("file address").to_owned();
    assert_eq!(put["newly_stored"], addresses.len());
    assert_eq!(address, sealed.key.to_string(), "put prints what reads the file back");
    let balance = fixture.wallet_json(&["balance", "alice"])["balance"].clone();

    let copy = dir.path().join("copy.bin");
    fixture.wallet_json(&["get", &address, "-o", copy.to_str().expect("utf-8 path")]);
    assert!(std::fs::read(&copy).expect("read copy") == original, "the file comes back byte-identical");

    // A second put of the same file stores nothing new and pays nothing.
    let again = fixture.wallet_json(&["put", file_arg, "--from", "alice", "--yes"]);
    assert_eq!(again["newly_stored"], 0);
    assert_eq!(fixture.wallet_json(&["balance", "alice"])["balance"], balance, "not charged twice");

    // Every chunk stands on exactly its 4 holders.
    for chunk in &addresses {
        let holders = fixture.get(fixture.api(0), &format!("/v1/chunks/{chunk}/holders"));
        let held: Vec<&Value> = holders["holders"].as_array().expect("holders").iter().collect();
        assert_eq!(held.len(), 4, "{holders}");
        assert!(held.iter().all(|h| h["held"] == true), "{holders}");
    }
    let files: usize = fixture.manifest.nodes.iter().map(|node| chunk_files(&node.data_dir).len()).sum();
    assert_eq!(files, 4 * addresses.len(), "no chunk on more or fewer than 4 nodes");

    // Three holders of the first chunk go wrong in three ways; the fourth stays honest.
    let holder_ids: Vec<AccountId> = fixture.get(fixture.api(0), &format!("/v1/chunks/{}/holders", addresses[0]))
        ["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| h["node"].as_str().expect("node").parse().expect("id"))
        .collect();
    let node_of = |id: &AccountId| fixture.manifest.nodes.iter().find(|n| n.id == *id).expect("a devnet node");
    let (deleted, rotten, killed, honest) =
        (node_of(&holder_ids[0]), node_of(&holder_ids[1]), node_of(&holder_ids[2]), node_of(&holder_ids[3]));
    let observer = fixture.manifest.nodes.iter().find(|n| !holder_ids.contains(&n.id)).expect("a non-holder elder");
    let observer = observer.api.as_str();
    eventually("the observer has audited every holder", || {
        holder_ids.iter().all(|id| count(&farmer(&fixture, observer, id), "passed") > 0).then_some(())
    });

    let deleted_files = chunk_files(&deleted.data_dir);
    for path in &deleted_files {
        std::fs::remove_file(path).expect("delete chunk");
    }
    for path in chunk_files(&rotten.data_dir) {
        // Replaced whole (written aside, renamed over), so no answer reads a half-written file.
        let mut bytes = std::fs::read(&path).expect("read chunk");
        bytes.iter_mut().for_each(|byte| *byte ^= 0x5a);
        let aside = path.with_extension("altered");
        std::fs::write(&aside, bytes).expect("alter chunk");
        std::fs::rename(&aside, &path).expect("replace chunk");
    }
    send_signal(killed.pid, "KILL");

    // The holder replaces a bad copy once the first elder finds it, so the observer may see only
    // passes afterwards: any elder's tallies show the fault.
    let others: Vec<&str> = fixture
        .manifest
        .nodes
        .iter()
        .filter(|n| ![deleted.id, rotten.id, killed.id].contains(&n.id))
        .map(|n| n.api.as_str())
        .collect();
    let found = |holder: &AccountId, outcome: &str| {
        others.iter().map(|api| farmer(&fixture, api, holder)).find(|view| count(view, outcome) > 0)
    };
    eventually("the holder whose chunks were deleted fails as missing", || found(&deleted.id, "missing"));
    let rotten_view =
        eventually("the holder with altered bytes fails as wrong bytes", || found(&rotten.id, "wrong_bytes"));
    assert_eq!(count(&rotten_view, "missing"), 0, "{rotten_view}");
    // Each copy found wrong or missing is replaced from a good holder within two epochs
    // (the devnet's are 10 s) of being found, so re-putting the file never meets a rotten copy.
    let intact = |path: &PathBuf| {
        let bytes = std::fs::read(path).unwrap_or_default();
        let named = path.file_name().and_then(|name| name.to_str()).and_then(|name| name.parse::<ChunkAddress>().ok());
        Chunk::new(bytes).is_ok_and(|chunk| Some(chunk.address()) == named)
    };
    eventually_within(Duration::from_secs(20), "the rotten copies are replaced", || {
        chunk_files(&rotten.data_dir).iter().all(intact).then_some(())
    });
    // (It may hold more by then: it is the next holder of some of the killed node's chunks.)
    eventually_within(Duration::from_secs(20), "the deleted copies are made again", || {
        deleted_files.iter().all(intact).then_some(())
    });
    let killed_view = eventually("the killed holder fails as timeout", || {
        let view = farmer(&fixture, observer, &killed.id);
        (count(&view, "timeouts") > 0).then_some(view)
    });
    assert_eq!(count(&killed_view, "wrong_bytes") + count(&killed_view, "missing"), 0, "{killed_view}");

    let honest_before = count(&farmer(&fixture, observer, &honest.id), "passed");
    let honest_view = eventually("the honest holder keeps passing", || {
        let view = farmer(&fixture, observer, &honest.id);
        (count(&view, "passed") > honest_before).then_some(view)
    });
    let failures = ["wrong_bytes", "missing", "late", "timeouts"].iter().map(|k| count(&honest_view, k)).sum::<u64>();
    assert_eq!(failures, 0, "{honest_view}");
    // It holds its whole duty, and may hold more: the next holder of some of the killed
    // node's chunks holds them from the round their holder was lost.
    let duty = honest_view["chunks"].as_u64().expect("its duty");
    assert!(duty > 0 && duty <= chunk_files(&honest.data_dir).len() as u64, "{honest_view}");

    // A holder restarted within the grace period is excused, never timed out.
    send_signal(honest.pid, "TERM");
    // Gone, not only its API: the process holds its store's lock until it exits.
    wait_exited(honest.pid, "the honest holder has exited");
    let _back = NodeProcess::start_with(&workspace_binary("acre-node"), &honest.data_dir, &[]);
    let passed_before = count(&farmer(&fixture, observer, &honest.id), "passed");
    let after_restart = eventually("the restarted holder passes again", || {
        let view = farmer(&fixture, observer, &honest.id);
        (count(&view, "passed") > passed_before).then_some(view)
    });
    assert_eq!(count(&after_restart, "timeouts"), 0, "a restart is not a failure: {after_restart}");

    // The file is still whole from the holders that kept it.
    let second = dir.path().join("second.bin");
    fixture.wallet_json(&["--node", observer, "get", &address, "-o", second.to_str().expect("utf-8 path")]);
    assert!(std::fs::read(&second).expect("read") == original, "served from the honest copies");

    // A put cut short after paying (a chunk's holder is down) is finished by repeating it
    // once the node is back, with the same payment. The holder is stopped just before the
    // put, and placement taken from the section's members now: the node killed above may
    // have been removed meanwhile (it is, 20 s after it went silent).
    let named = fixture.placement_names(observer);
    let members: Vec<[u8; 32]> = named.values().copied().collect();
    let down = deleted;
    let down_name = *named.get(&down.id).expect("a live member");
    let stranded = std::iter::repeat_with(|| random_bytes(1 << 20))
        .find(|bytes| closest(&ChunkAddress::of(bytes), &members, COPIES).contains(&down_name))
        .expect("a chunk the stopped node must hold");
    send_signal(down.pid, "KILL");
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, [stranded.as_slice(), &random_bytes(5_000)].concat()).expect("write");
    let cut_arg = cut.to_str().expect("utf-8 path");
    // Public, so the stranded piece is stored as it is, at the address chosen above.
    let via = ["--node", observer, "put", cut_arg, "--public", "--from", "alice", "--yes"];
    // The wallet tries a chunk again for some seconds. Usually the dead holder is still
    // placed when it gives up, and the upload fails; on a slow run the section may have
    // removed it by then and placed the chunk elsewhere, and the upload succeeds. Either
    // way it paid once, and the put below finishes it without paying again.
    let first = fixture.wallet(&via);
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success() || first.status.code() == Some(1), "{said}");
    let paid = fixture.wallet_json(&["--node", observer, "balance", "alice"])["balance"].clone();
    assert_ne!(paid, balance, "the payment was made before the upload ended: {said}");
    wait_exited(down.pid, "the stopped node has exited");
    let _restarted = NodeProcess::start_with(&workspace_binary("acre-node"), &down.data_dir, &[]);
    // And the node killed earlier, so every elder is up again.
    let _killed_back = NodeProcess::start_with(&workspace_binary("acre-node"), &killed.data_dir, &[]);
    fixture.wait_connected(&[observer]);
    let finished = fixture.wallet_json(&via);
    assert_eq!(fixture.wallet_json(&["--node", observer, "balance", "alice"])["balance"], paid, "paid once");
    let back = dir.path().join("cut-back.bin");
    let file_address = finished["file"].as_str().expect("address");
    fixture.wallet_json(&["--node", observer, "get", file_address, "-o", back.to_str().expect("utf-8 path")]);
    assert!(std::fs::read(&back).expect("read") == std::fs::read(&cut).expect("read"));
}

/// A key funded from the faucet, with its next sequence.
struct Payer {
    key: SigningKey,
    sequence: u64,
}

impl Payer {
    /// Pays `amount` to `to` for `chunks`, through `api`; the answer's status and body.
    fn pay(
        &mut self,
        http: &reqwest::blocking::Client,
        api: &str,
        to: AccountId,
        amount: Amount,
        chunks: &[&Chunk],
    ) -> Certificate {
        let named: Vec<([u8; 32], u64)> = chunks.iter().map(|c| (c.address().0, c.size())).collect();
        let section: Value = http.get(format!("{api}/v1/section")).send().expect("GET").json().expect("json");
        let order = TransferOrder {
            network: serde_json::from_value(section["network"].clone()).expect("the network's identity"),
            from: AccountId::of(&self.key),
            to,
            amount,
            sequence: self.sequence,
            app: None,
            memo: store_memo(&named),
            hidden: None,
        }
        .sign(&self.key);
        self.sequence += 1;
        let answer: Value =
            http.post(format!("{api}/v1/orders")).json(&order).send().expect("POST").json().expect("json");
        certificate_of(&answer)
    }
}

/// Uploads a chunk as a wallet does: the payment (naming `listed`) to `POST /v1/payments`
/// first, if there is one, then the raw bytes to `PUT /v1/chunks/{address}` naming it.
/// The status, content type and answer of the payment if it was refused, else the upload's.
fn put_chunk(
    http: &reqwest::blocking::Client,
    api: &str,
    content: &[u8],
    payment: Option<(&Certificate, &[&Chunk])>,
) -> (u16, String, Value) {
    let id = match payment {
        Some((certificate, listed)) => {
            let chunks: Vec<Value> =
                listed.iter().map(|c| json!({ "address": c.address().to_string(), "size": c.size() })).collect();
            let answer = answer_of(
                http.post(format!("{api}/v1/payments"))
                    .json(&json!({ "certificate": certificate, "chunks": chunks }))
                    .send(),
            );
            if answer.0 != 200 {
                return answer;
            }
            answer.2["id"].as_str().map(str::to_owned)
        }
        None => None,
    };
    put_raw(http, api, &ChunkAddress::of(content).to_string(), content, id.as_deref())
}

/// `PUT /v1/chunks/{address}` with these bytes, naming payment `id`.
fn put_raw(
    http: &reqwest::blocking::Client,
    api: &str,
    address: &str,
    content: &[u8],
    id: Option<&str>,
) -> (u16, String, Value) {
    let url = match id {
        Some(id) => format!("{api}/v1/chunks/{address}?payment={id}"),
        None => format!("{api}/v1/chunks/{address}"),
    };
    answer_of(http.put(url).header("content-type", "application/octet-stream").body(content.to_vec()).send())
}

fn answer_of(response: reqwest::Result<reqwest::blocking::Response>) -> (u16, String, Value) {
    let response = response.expect("request");
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, kind, response.json().unwrap_or(Value::Null))
}

fn price(http: &reqwest::blocking::Client, api: &str, bytes: u64) -> (Amount, AccountId) {
    let quote: Value = http.get(format!("{api}/v1/quote?bytes={bytes}")).send().expect("GET").json().expect("json");
    let price = quote["price"].as_str().expect("a price").parse().expect("amount");
    (price, quote["pool"].as_str().expect("pool").parse().expect("account"))
}

#[test]
fn payments_that_are_absent_too_small_or_reused_are_refused() {
    let fixture = Fixture::start(7);
    let http = &fixture.http;
    let api = fixture.api(1);
    let mut payer = Payer { key: fixture.funded_key("50"), sequence: 0 };
    let chunk = Chunk::new(random_bytes(3_000)).expect("chunk");
    let other = Chunk::new(random_bytes(2_000)).expect("chunk");
    let refused = |(status, kind, answer): (u16, String, Value), expected_status: u16, code: &str| {
        assert_eq!(status, expected_status, "{answer}");
        assert_eq!(kind, "application/problem+json");
        assert_eq!(answer["code"], code, "{answer}");
    };

    refused(put_chunk(http, api, chunk.bytes(), None), 402, "payment_required");
    let (price, pool) = price(http, api, chunk.size());
    let short = payer.pay(http, api, pool, Amount::from_nanos(price.nanos() - 1).expect("amount"), &[&chunk]);
    refused(put_chunk(http, api, chunk.bytes(), Some((&short, &[&chunk]))), 422, "payment_too_small");
    let elsewhere = payer.pay(http, api, AccountId::of(&SigningKey::from_bytes(&rand_secret())), price, &[&chunk]);
    refused(put_chunk(http, api, chunk.bytes(), Some((&elsewhere, &[&chunk]))), 422, "payment_wrong_account");

    let paid = payer.pay(http, api, pool, price, &[&chunk]);
    let (status, _, placed) = put_chunk(http, api, chunk.bytes(), Some((&paid, &[&chunk])));
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["holders"].as_array().map(Vec::len), Some(4));
    let (status, _, again) = put_chunk(http, api, chunk.bytes(), None);
    assert_eq!((status, again["already_stored"].clone()), (200, Value::Bool(true)), "a stored chunk needs no payment");

    // The same certificate for another chunk: neither under its own list nor a new one.
    refused(put_chunk(http, api, other.bytes(), Some((&paid, &[&chunk]))), 422, "payment_not_for_chunk");
    refused(put_chunk(http, api, other.bytes(), Some((&paid, &[&other]))), 422, "payment_memo_mismatch");
    refused(
        put_chunk(http, fixture.api(2), other.bytes(), Some((&paid, &[&chunk, &other]))),
        422,
        "payment_memo_mismatch",
    );
    let (status, _, missing) = {
        let response = http.get(format!("{api}/v1/chunks/{}", other.address())).send().expect("GET");
        let status = response.status().as_u16();
        let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (status, kind, response.json::<Value>().unwrap_or(Value::Null))
    };
    assert_eq!((status, missing["code"].as_str()), (404, Some("unknown_chunk")), "nothing stored for refusals");
    let fetched = http.get(format!("{api}/v1/chunks/{}", chunk.address())).send().expect("GET").bytes().expect("bytes");
    assert_eq!(fetched.as_ref(), chunk.bytes());

    // A list naming an impossible size (to wrap the price around) is refused outright.
    let huge = json!({ "address": other.address().to_string(), "size": u64::MAX });
    let listed = json!([{ "address": chunk.address().to_string(), "size": chunk.size() }, huge]);
    let response = http.post(format!("{api}/v1/payments")).json(&json!({ "certificate": short, "chunks": listed }));
    let (status, _, answer) = answer_of(response.send());
    assert_eq!((status, answer["code"].as_str()), (422, Some("invalid_chunk")), "{answer}");

    // A payment this node never accepted, bytes under another chunk's address, a body
    // larger than a chunk, and malformed JSON: each a clear 4xx that stores nothing.
    let unknown = Digest([7; 32]).to_string();
    refused(put_raw(http, api, &other.address().to_string(), other.bytes(), Some(&unknown)), 402, "unknown_payment");
    refused(put_raw(http, api, &other.address().to_string(), chunk.bytes(), None), 422, "address_mismatch");
    let (status, _, _) = put_raw(http, api, &other.address().to_string(), &vec![0; (1 << 20) + 1], None);
    assert_eq!(status, 413);
    let garbage = http.post(format!("{api}/v1/payments")).header("content-type", "application/json").body("{not json");
    assert_eq!(garbage.send().expect("POST").status().as_u16(), 400);
    refused(put_chunk(http, api, &[], None), 422, "invalid_chunk");
}

#[test]
fn a_full_node_refuses_new_chunks_and_keeps_what_it_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node");
    let binary = workspace_binary("acre-node");
    let init = std::process::Command::new(&binary).args(["init", "--data-dir"]).arg(&data_dir).output().expect("init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let payer_key = SigningKey::from_bytes(&rand_secret());
    let genesis_path = data_dir.join("genesis.json");
    let mut genesis: Value = serde_json::from_slice(&std::fs::read(&genesis_path).expect("genesis")).expect("json");
    genesis["allocations"] = json!([{ "account": AccountId::of(&payer_key).to_string(), "amount": "1000" }]);
    std::fs::write(&genesis_path, genesis.to_string()).expect("write genesis");
    // Room for two 1 MiB chunks and a bit.
    let config = std::fs::read_to_string(data_dir.join("config.toml")).expect("config");
    let config: Vec<String> =
        config
            .lines()
            .map(|line| {
                if line.starts_with("capacity_bytes") {
                    "capacity_bytes = 2500000".to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect();
    std::fs::write(data_dir.join("config.toml"), config.join("\n")).expect("config");
    let node = NodeProcess::start(&binary, &data_dir);
    let http = reqwest::blocking::Client::new();
    let api = node.api.clone();
    let mut payer = Payer { key: payer_key, sequence: 0 };

    let mut stored = Vec::new();
    let refusal = loop {
        let chunk = Chunk::new(random_bytes(1 << 20)).expect("chunk");
        let quote: Value =
            http.get(format!("{api}/v1/quote?bytes={}", chunk.size())).send().expect("GET").json().expect("json");
        let Some(price) = quote["price"].as_str() else { break json!({ "code": "section_full", "quote": quote }) };
        let pool = quote["pool"].as_str().expect("pool").parse().expect("pool");
        let paid = payer.pay(&http, &api, pool, price.parse().expect("amount"), &[&chunk]);
        let (status, kind, answer) = put_chunk(&http, &api, chunk.bytes(), Some((&paid, &[&chunk])));
        if status != 201 {
            assert_eq!(status, 507, "{answer}");
            assert_eq!(kind, "application/problem+json");
            break answer;
        }
        stored.push(chunk);
        assert!(stored.len() <= 2, "a node with room for two chunks took a third");
    };
    assert_eq!(stored.len(), 2, "{refusal}");
    assert!(matches!(refusal["code"].as_str(), Some("holder_full" | "section_full")), "{refusal}");
    node.stop();
    let node = NodeProcess::start(&binary, &data_dir);
    for chunk in &stored {
        let fetched = http
            .get(format!("{}/v1/chunks/{}", node.api, chunk.address()))
            .send()
            .expect("GET")
            .bytes()
            .expect("bytes");
        assert_eq!(fetched.as_ref(), chunk.bytes(), "what was stored is kept");
    }
    node.stop();
}

/// What every file holder and every reader of the API sees of a file put with the
/// defaults: ciphertext only. The same file put again is paid once; it reads back only
/// with the key `put` printed; `--private` shares nothing with the convergent copy.
#[test]
fn files_are_sealed_before_they_leave_the_wallet() {
    const PATTERN: &[u8] = b"ACRE-RECOGNISABLE-PLAINTEXT ";
    let fixture = Fixture::start(4);
    let dir = tempfile::tempdir().expect("tempdir");
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["faucet", "alice", "1000"]);
    let original: Vec<u8> = PATTERN.iter().copied().cycle().take((2 << 20) + 777).collect();
    let file = dir.path().join("letter.txt");
    std::fs::write(&file, &original).expect("write file");
    let file_arg = file.to_str().expect("utf-8 path");

    let put = fixture.wallet_json(&["put", file_arg, "--from", "alice", "--yes"]);
    let key = put["file"].as_str().expect("file key").to_owned();
    assert_eq!(put["encrypted"], true);
    let sealed = encrypt_file(&original, Privacy::Convergent).expect("encrypt");
    assert_eq!(put["newly_stored"], sealed.chunks.len());

    let shows_plaintext = |bytes: &[u8]| bytes.windows(PATTERN.len()).any(|window| window == PATTERN);
    let mut on_disk = 0;
    for node in &fixture.manifest.nodes {
        for path in chunk_files(&node.data_dir) {
            on_disk += 1;
            assert!(!shows_plaintext(&std::fs::read(&path).expect("chunk file")), "{} is plaintext", path.display());
        }
    }
    assert_eq!(on_disk, 4 * sealed.chunks.len(), "every sealed chunk on its 4 holders");
    for chunk in &sealed.chunks {
        let served = fixture
            .http
            .get(format!("{}/v1/chunks/{}", fixture.api(1), chunk.address()))
            .send()
            .expect("GET")
            .bytes()
            .expect("bytes");
        assert_eq!(served.as_ref(), chunk.bytes(), "the API serves the ciphertext as stored");
        assert!(!shows_plaintext(&served));
    }

    // The same file again: nothing new stored, nothing paid.
    let balance = fixture.wallet_json(&["balance", "alice"])["balance"].clone();
    let again = fixture.wallet_json(&["put", file_arg, "--from", "alice", "--yes"]);
    assert_eq!((again["newly_stored"].clone(), again["payment"].clone()), (json!(0), Value::Null));
    assert_eq!(again["file"], key.as_str());
    assert_eq!(fixture.wallet_json(&["balance", "alice"])["balance"], balance, "not charged twice");

    let copy = dir.path().join("copy.txt");
    let copy_arg = copy.to_str().expect("utf-8 path");
    fixture.wallet_json(&["get", &key, "-o", copy_arg]);
    assert!(std::fs::read(&copy).expect("read copy") == original, "the file comes back byte-identical");

    let mut wrong = key.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    for (locator, says) in [(wrong.as_str(), "key does not open"), (&key[..64], "ADDRESS:KEY")] {
        let failed = fixture.wallet(&["get", locator, "-o", copy_arg]);
        let said = String::from_utf8_lossy(&failed.stdout);
        assert!(!failed.status.success() && said.contains(says), "get {locator}: {said}");
    }

    // Private: keys salted by alice's key, so its chunks are new ones.
    let private = fixture.wallet_json(&["put", file_arg, "--private", "--from", "alice", "--yes"]);
    assert_ne!(private["file"], key.as_str());
    assert_eq!(private["newly_stored"], sealed.chunks.len(), "no chunk shared with the convergent copy");
    let private_copy = dir.path().join("private.txt");
    fixture.wallet_json(&["get", private["file"].as_str().expect("key"), "-o", private_copy.to_str().expect("utf-8")]);
    assert!(std::fs::read(&private_copy).expect("read") == original);
}
