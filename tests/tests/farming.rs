//! Farming on a 7-node devnet of real processes: the elders order the section log over
//! libp2p, every epoch closes into one record all elders sign with identical state
//! hashes, proven storage mints rewards to reward addresses, a holder that deleted its
//! chunks stops earning for them, an elder killed with SIGKILL is missed by a log that
//! goes on with 6 and catches up after its restart, a new node joins and earns, and a node
//! killed for good has its chunks copied to their next holders within seconds, long
//! before it is removed.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use acre_ledger::{AccountId, Amount};
use acre_proofs::placement::{closest, COPIES};
use acre_proofs::{encrypt_file, ChunkAddress, Privacy};
use acre_tests::{eventually_within, send_signal, workspace_binary, NodeProcess};
use common::{rand_secret, Fixture};
use serde_json::Value;

/// Epochs close about every 11 s on the devnet; a few of them, with 2 cores shared.
const EPOCHS: Duration = Duration::from_secs(120);
/// The bound this test states for a dead holder's chunks to stand on 4 holders again:
/// 20 s unreachable before the elders report it, the epoch in which their reports are
/// ordered, and the copies.
const REPAIRED_WITHIN: Duration = Duration::from_secs(150);
/// The bound this test states for a dead holder's chunks to stand on 4 live copies: its
/// connection's loss counts once the 5 s grace for restarts has passed, at the next 2 s
/// audit round, and the copies of 12 MiB follow. Its removal waits 20 s of silence and then
/// a quorum's complaints.
const STOOD_IN_WITHIN: Duration = Duration::from_secs(18);
/// The bound this test states for copies placed elsewhere after a join to be deleted: the
/// newcomer serves its 3 epochs (about 11 s each), then the next sweep (every 10 s) finds
/// the copy placed elsewhere and its four holders holding it.
const SWEPT_WITHIN: Duration = Duration::from_secs(90);

/// The chunks whose files are in `data_dir`.
fn held_chunks(data_dir: &Path) -> BTreeSet<ChunkAddress> {
    chunk_files(data_dir).iter().filter_map(|path| path.file_name()?.to_str()?.parse::<ChunkAddress>().ok()).collect()
}

fn amount(value: &Value) -> Amount {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_else(|| panic!("not an amount: {value}"))
}

fn latest_epoch(fixture: &Fixture, api: &str) -> u64 {
    fixture.get(api, "/v1/epochs/latest")["record"]["epoch"].as_u64().unwrap_or(0)
}

/// Waits until `api` has closed an epoch past `after`, and returns its number.
fn epoch_after(fixture: &Fixture, api: &str, after: u64) -> u64 {
    eventually_within(EPOCHS, &format!("an epoch after {after} closes"), || {
        let latest = latest_epoch(fixture, api);
        (latest > after).then_some(latest)
    })
}

/// Puts a file of `bytes` random bytes through `acre put` and returns its sealed chunks' addresses.
fn put_file(fixture: &Fixture, dir: &Path, name: &str, bytes: usize) -> Vec<String> {
    let mut content = Vec::with_capacity(bytes);
    while content.len() < bytes {
        content.extend_from_slice(&rand_secret());
    }
    content.truncate(bytes);
    let file = dir.join(name);
    std::fs::write(&file, &content).expect("write file");
    fixture.wallet_json(&["put", file.to_str().expect("utf-8 path"), "--from", "alice", "--yes"]);
    let sealed = encrypt_file(&content, Privacy::Convergent).expect("encrypt");
    sealed.chunks.iter().map(|chunk| chunk.address().to_string()).collect()
}

fn item_of<'a>(record: &'a Value, farmer: &AccountId) -> Option<&'a Value> {
    let farmer = farmer.to_string();
    record["items"].as_array()?.iter().find(|item| item["farmer"] == farmer.as_str())
}

fn chunk_files(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(shards) = std::fs::read_dir(data_dir.join("chunks")) else { return vec![] };
    shards
        .flatten()
        .filter(|shard| shard.file_name() != "incoming")
        .flat_map(|shard| std::fs::read_dir(shard.path()).into_iter().flatten().flatten())
        .map(|entry| entry.path())
        .collect()
}

#[test]
fn every_elder_closes_the_same_epochs_and_proven_storage_is_rewarded() {
    let fixture = Fixture::start(7);
    let dir = tempfile::tempdir().expect("tempdir");
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["faucet", "alice", "1000"]);
    let chunks = put_file(&fixture, dir.path(), "data.bin", 3 << 20);
    let holders: Vec<AccountId> = fixture.get(fixture.api(0), &format!("/v1/chunks/{}/holders", chunks[0]))["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| h["node"].as_str().expect("node").parse().expect("id"))
        .collect();

    // An epoch that paid the holders: emission plus the store payments, split by proof.
    let paid = eventually_within(EPOCHS, "an epoch pays the holders", || {
        let record = fixture.get(fixture.api(0), "/v1/epochs/latest")["record"].clone();
        let paid = holders.iter().all(|holder| item_of(&record, holder).is_some());
        paid.then(|| record["epoch"].as_u64().expect("epoch"))
    });

    // Every elder has the same record and state hash for it, signed by a quorum.
    let views: Vec<Value> = (0..7)
        .map(|node| {
            eventually_within(EPOCHS, "every elder closed the epoch", || {
                let view = fixture.get(fixture.api(node), &format!("/v1/epochs/{paid}"));
                view["record"].is_object().then_some(view)
            })
        })
        .collect();
    for view in &views[1..] {
        assert_eq!(view["record"], views[0]["record"], "one record at every elder");
        assert_eq!(view["state_hash"], views[0]["state_hash"], "one state at every elder");
    }
    // Signatures arrive from the other elders after each closes the epoch itself.
    eventually_within(EPOCHS, "a quorum of the 7 elders signed the epoch", || {
        let view = fixture.get(fixture.api(0), &format!("/v1/epochs/{paid}"));
        (view["signatures"].as_array()?.len() >= 5).then_some(())
    });
    let record = &views[0]["record"];
    let items: Vec<Amount> = record["items"].as_array().expect("items").iter().map(|i| amount(&i["amount"])).collect();
    let sum = items.iter().try_fold(Amount::ZERO, |sum, a| sum.checked_add(*a)).expect("sum");
    assert_eq!(sum, amount(&record["total"]), "the items add up to the total");
    assert!(amount(&record["minted"]) > Amount::ZERO, "proven storage mints");

    // Supply = genesis + every record's mint, on every elder, once the records are applied.
    for node in 0..7 {
        eventually_within(EPOCHS, "the ledger's supply is genesis plus the records' mints", || {
            let supply = fixture.get(fixture.api(node), "/v1/supply");
            let epochs = supply["epochs"].as_u64()?;
            let minted: Amount = (1..=epochs)
                .map(|epoch| {
                    amount(&fixture.get(fixture.api(node), &format!("/v1/epochs/{epoch}"))["record"]["minted"])
                })
                .try_fold(Amount::ZERO, |sum, a| sum.checked_add(a))?;
            (epochs >= paid
                && amount(&supply["minted"]) == minted
                && amount(&supply["genesis"]).checked_add(minted) == Some(amount(&supply["circulating"])))
            .then_some(())
        });
    }

    // The farmer's statement adds up and its reward address (its node id) was credited.
    let farmer = holders[0];
    let statement = fixture.wallet_json(&["farmer", "statement", &farmer.to_string()]);
    let lines = statement["epochs"].as_array().expect("lines");
    assert!(lines.iter().any(|line| amount(&line["reward"]) > Amount::ZERO), "{statement}");
    let total = amount(&statement["total_reward"]);
    let credited = eventually_within(EPOCHS, "the rewards are applied", || {
        let balance = fixture.balance(fixture.api(0), &farmer)?;
        Some(balance.parse::<Amount>().ok()?).filter(|balance| *balance >= total)
    });
    assert!(credited >= total, "the reward address holds what the statement says");

    // A holder whose chunks are deleted fails its audits, the elders that find it hand it
    // good copies at once, and from the next epoch on it proves, and is paid for, all of
    // its duty again. (A holder that keeps nothing is paid nothing: the simulator's
    // freeloader and the epoch property test.)
    let deleted = fixture.manifest.nodes.iter().find(|n| n.id == holders[1]).expect("a devnet node");
    let files = chunk_files(&deleted.data_dir);
    let at_deletion = latest_epoch(&fixture, fixture.api(0));
    for path in &files {
        std::fs::remove_file(path).expect("delete chunk");
    }
    eventually_within(EPOCHS, "the deleted copies are made again", || {
        (chunk_files(&deleted.data_dir).len() == files.len()).then_some(())
    });
    let later = epoch_after(&fixture, fixture.api(0), latest_epoch(&fixture, fixture.api(0)).max(at_deletion) + 1);
    let record = fixture.get(fixture.api(0), &format!("/v1/epochs/{later}"))["record"].clone();
    let duty = fixture.get(fixture.api(0), &format!("/v1/farmers/{}", deleted.id))["bytes"].as_u64().expect("bytes");
    let item = item_of(&record, &deleted.id).unwrap_or_else(|| panic!("the repaired holder is paid: {record}"));
    assert_eq!(item["proven_bytes"].as_u64(), Some(duty), "for all it holds again: {record}");
    assert!(item_of(&record, &holders[0]).is_some(), "the honest holders still are: {record}");

    // An elder killed with SIGKILL: the log goes on with 6, and after a restart it catches
    // up to the same records and state hashes.
    let victim = &fixture.manifest.nodes[6];
    send_signal(victim.pid, "KILL");
    let before = latest_epoch(&fixture, fixture.api(0));
    // The first epoch to close after the kill is one the dead elder cannot sign; it is
    // restarted soon after, well before the 20 s after which elders report it.
    let without = epoch_after(&fixture, fixture.api(0), before);
    let view = eventually_within(EPOCHS, "six elders sign the epoch", || {
        let view = fixture.get(fixture.api(0), &format!("/v1/epochs/{without}"));
        (view["signatures"].as_array()?.len() >= 5).then_some(view)
    });
    let signers: Vec<&str> =
        view["signatures"].as_array().expect("signatures").iter().filter_map(|s| s["elder"].as_str()).collect();
    assert!(!signers.contains(&victim.id.to_string().as_str()), "the dead elder signed nothing");
    assert!(signers.len() >= 5, "six elders still make a quorum");
    let restarted = NodeProcess::start_with(&workspace_binary("acre-node"), &victim.data_dir, &[]);
    let caught_up = fixture.get(fixture.api(0), &format!("/v1/epochs/{without}"));
    eventually_within(EPOCHS, "the restarted elder has the epochs it missed", || {
        let there = fixture.get(&restarted.api, &format!("/v1/epochs/{without}"));
        (there["record"] == caught_up["record"] && there["state_hash"] == caught_up["state_hash"]).then_some(())
    });
    eventually_within(EPOCHS, "the restarted elder signs new epochs again", || {
        let latest = fixture.get(&restarted.api, "/v1/epochs/latest");
        let signed = latest["signatures"].as_array()?.iter().any(|s| s["elder"] == victim.id.to_string().as_str());
        (signed && latest["record"]["epoch"].as_u64()? > without).then_some(())
    });
}

#[test]
fn a_new_node_joins_and_earns_and_a_dead_one_is_replaced_by_copies() {
    let fixture = Fixture::start(7);
    let dir = tempfile::tempdir().expect("tempdir");
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["faucet", "alice", "1000"]);
    let reward = fixture.wallet_json(&["key", "new", "payee"])["address"].as_str().expect("address").to_owned();
    // Data stored before the join: the newcomer takes some of it from an old holder.
    let earlier: Vec<ChunkAddress> =
        put_file(&fixture, dir.path(), "earlier.bin", 6 << 20).iter().map(|c| c.parse().expect("address")).collect();
    eventually_within(EPOCHS, "the earlier chunks are in the registry", || {
        earlier
            .iter()
            .all(|chunk| !fixture.get(fixture.api(1), &format!("/v1/chunks/{chunk}/holders"))["size"].is_null())
            .then_some(())
    });

    // A new node, from the devnet's genesis, bootstrapping from its elders.
    let joiner_dir = dir.path().join("joiner");
    let genesis = fixture.manifest.nodes[0].data_dir.join("genesis.json");
    let init = std::process::Command::new(workspace_binary("acre-node"))
        .args(["init", "--data-dir"])
        .arg(&joiner_dir)
        .arg("--genesis")
        .arg(&genesis)
        .output()
        .expect("init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let joiner_id: AccountId = String::from_utf8_lossy(&init.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("node "))
        .and_then(|id| id.trim().parse().ok())
        .expect("init names the node");
    let mut flags = vec!["--api".to_owned(), "127.0.0.1:0".to_owned(), "--reward-address".to_owned(), reward.clone()];
    for node in &fixture.manifest.nodes {
        flags.push("--bootstrap".into());
        flags.push(node.libp2p[0].clone());
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let joiner = NodeProcess::start_with(&workspace_binary("acre-node"), &joiner_dir, &flags);
    assert_eq!(fixture.get(&joiner.api, "/v1/health")["node"], joiner_id.to_string().as_str());
    let members = eventually_within(EPOCHS, "the section admits the new node", || {
        let view = fixture.get(fixture.api(0), "/v1/section/members");
        let members = view["members"].as_array()?.clone();
        members.iter().any(|m| m["node"] == joiner_id.to_string().as_str()).then_some(members)
    });
    let entry = members.iter().find(|m| m["node"] == joiner_id.to_string().as_str()).expect("member");
    assert_eq!(entry["reward_address"], reward.as_str(), "its configured reward address");
    assert_eq!(entry["elder"], false, "a newcomer is not an elder among 7 older members");
    // It is placed at the first close after its admission, at a name drawn then.
    eventually_within(EPOCHS, "the section names the new node", || {
        fixture.placement_names(fixture.api(0)).contains_key(&joiner_id).then_some(())
    });

    // Every earlier chunk ends on exactly its 4 closest members: the newcomer was handed
    // its copies, and the holders it displaced deleted theirs.
    let everyone: Vec<(AccountId, PathBuf)> = fixture
        .manifest
        .nodes
        .iter()
        .map(|node| (node.id, node.data_dir.clone()))
        .chain([(joiner_id, joiner_dir.clone())])
        .collect();
    let named = fixture.placement_names(fixture.api(0));
    let name_of = |id: &AccountId| *named.get(id).expect("a member's placement name");
    let names: Vec<[u8; 32]> = everyone.iter().map(|(id, _)| name_of(id)).collect();
    let moved = earlier.iter().filter(|chunk| closest(chunk, &names, COPIES).contains(&name_of(&joiner_id)));
    assert!(moved.count() > 0, "some earlier chunk moves to the newcomer");
    eventually_within(SWEPT_WITHIN, "each earlier chunk is held by its 4 closest members and nobody else", || {
        let held: Vec<BTreeSet<ChunkAddress>> = everyone.iter().map(|(_, dir)| held_chunks(dir)).collect();
        earlier
            .iter()
            .all(|chunk| {
                let placed = closest(chunk, &names, COPIES);
                names.iter().zip(&held).all(|(name, held)| held.contains(chunk) == placed.contains(name))
            })
            .then_some(())
    });

    // Data put now lands partly on it; it is audited and paid like the others.
    let chunks = put_file(&fixture, dir.path(), "data.bin", 12 << 20);
    eventually_within(EPOCHS, "the new node earns a reward", || {
        let record = fixture.get(fixture.api(0), "/v1/epochs/latest")["record"].clone();
        let item = item_of(&record, &joiner_id)?;
        (item["reward_address"] == reward.as_str() && amount(&item["amount"]) > Amount::ZERO).then_some(())
    });
    // Its farmer status is served like a genesis member's: it is a member, not a stranger.
    let status = fixture.wallet_json(&["farmer", "status", &joiner_id.to_string()]);
    assert_eq!(status["node"], joiner_id.to_string().as_str(), "{status}");
    assert!(status["chunks"].as_u64().is_some_and(|chunks| chunks > 0), "it must hold some of the data: {status}");

    // A holder killed for good is removed, and its chunks stand on 4 live holders again.
    let holders_of = |chunk: &str| -> Vec<(String, bool)> {
        fixture.get(fixture.api(0), &format!("/v1/chunks/{chunk}/holders"))["holders"]
            .as_array()
            .map(|holders| {
                holders.iter().map(|h| (h["node"].as_str().unwrap_or_default().to_owned(), h["held"] == true)).collect()
            })
            .unwrap_or_default()
    };
    let dead = fixture
        .manifest
        .nodes
        .iter()
        .skip(1)
        .find(|node| holders_of(&chunks[0]).iter().any(|(id, _)| *id == node.id.to_string()))
        .expect("a holder other than node 0");
    send_signal(dead.pid, "KILL");
    // Copied for at once, while it is still a member: every chunk it held stands on the 4
    // live members closest to it, the 4 that will hold it once the dead node is removed.
    let live: Vec<(AccountId, PathBuf)> = fixture
        .manifest
        .nodes
        .iter()
        .filter(|node| node.id != dead.id)
        .map(|node| (node.id, node.data_dir.clone()))
        .chain([(joiner_id, joiner_dir.clone())])
        .collect();
    let names: Vec<[u8; 32]> = live.iter().map(|(id, _)| name_of(id)).collect();
    let addresses: Vec<ChunkAddress> = chunks.iter().map(|chunk| chunk.parse().expect("address")).collect();
    // Which copies are still missing, each time that changes: a failure says which.
    let mut missing_before = Vec::new();
    eventually_within(STOOD_IN_WITHIN, "the dead node's chunks stand on 4 live copies", || {
        let held: Vec<BTreeSet<ChunkAddress>> = live.iter().map(|(_, dir)| held_chunks(dir)).collect();
        let missing: Vec<(ChunkAddress, AccountId)> = addresses
            .iter()
            .flat_map(|address| {
                let placed = closest(address, &names, COPIES);
                let held = &held;
                names
                    .iter()
                    .zip(held)
                    .zip(&live)
                    .filter(move |((name, held), _)| placed.contains(name) && !held.contains(address))
                    .map(move |(_, (id, _))| (*address, *id))
            })
            .collect();
        if missing != missing_before {
            eprintln!("copies missing on their live holders: {missing:?}");
            missing_before.clone_from(&missing);
        }
        missing.is_empty().then_some(())
    });
    let view = fixture.get(fixture.api(0), "/v1/section/members");
    let still = view["members"].as_array().expect("members").iter().any(|m| m["node"] == dead.id.to_string().as_str());
    assert!(still, "the copies came before the removal, not with it");
    eventually_within(REPAIRED_WITHIN, "the dead node is removed", || {
        let view = fixture.get(fixture.api(0), "/v1/section/members");
        let members = view["members"].as_array()?;
        members.iter().all(|m| m["node"] != dead.id.to_string().as_str()).then_some(())
    });
    eventually_within(REPAIRED_WITHIN, "every chunk stands on 4 live holders again", || {
        chunks
            .iter()
            .all(|chunk| {
                let holders = holders_of(chunk);
                holders.len() == 4 && holders.iter().all(|(id, held)| *held && *id != dead.id.to_string())
            })
            .then_some(())
    });
}

/// A devnet started as `make devnet` starts it stores a seed file from its faucet, so its
/// epochs mint before anyone uploads, and go on minting every epoch.
#[test]
fn a_seeded_devnet_mints_every_epoch_without_an_upload() {
    let fixture = Fixture::start_seeded(4);
    let api = fixture.api(0);
    let seed_file = fixture.devnet.dir.join("seed.json");
    let seed: Value = eventually_within(EPOCHS, "the devnet stores its seed file", || {
        serde_json::from_slice(&std::fs::read(&seed_file).ok()?).ok()
    });
    let minting = eventually_within(EPOCHS, "an epoch mints for the seed file", || {
        let record = fixture.get(api, "/v1/epochs/latest")["record"].clone();
        let minted: Amount = record["minted"].as_str()?.parse().ok()?;
        (minted > Amount::ZERO).then(|| record["epoch"].as_u64()).flatten()
    });
    epoch_after(&fixture, api, minting + 1);
    for next in minting + 1..=minting + 2 {
        let record = &fixture.get(api, &format!("/v1/epochs/{next}"))["record"];
        assert!(amount(&record["minted"]) > Amount::ZERO, "epoch {next} mints too: {record}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("seed.bin");
    let address = seed["file"].as_str().expect("the seed file's address");
    fixture.wallet_json(&["get", address, "-o", copy.to_str().expect("utf-8 path")]);
    assert_eq!(std::fs::metadata(&copy).expect("read back").len(), 1 << 20);
}
