//! A 4-elder devnet of real processes talking over libp2p on 127.0.0.1: transfers through
//! the `acre` CLI and raw HTTP, an elder killed with SIGKILL mid-stream that catches up
//! after a restart, two conflicting orders raced through different nodes, an elder handed
//! an order's missing predecessor with the order, and requests that are malformed,
//! oversized or wrongly signed.

mod common;

use acre_api::devnet::Manifest;
use std::time::Duration;

use acre_core::wire::{Ledger, LedgerReply, LedgerRequest};
use acre_ledger::{AccountId, Certificate, CertificateBuilder, LedgerError, TransferOrder};
use acre_tests::{eventually, send_signal, workspace_binary, DevnetProcess, NodeProcess};
use common::{all_apis, certificate_of, rand_secret, Fixture};
use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use serde_json::{json, Value};

#[test]
fn transfers_through_the_cli_and_http_reach_every_elder() {
    let mut fixture = Fixture::start(4);
    let alice = fixture.wallet_json(&["key", "new", "alice"])["address"].as_str().expect("address").to_owned();
    let bob = fixture.wallet_json(&["key", "new", "bob"])["address"].as_str().expect("address").to_owned();
    let funded = fixture.wallet_json(&["faucet", "alice", "500"]);
    certificate_of(&funded);

    // A second devnet in the same directory names the first instead of failing on its nodes.
    let second = std::process::Command::new(workspace_binary("acre-node"))
        .args(["devnet", "--no-seed", "--dir"])
        .arg(&fixture.devnet.dir)
        .output()
        .expect("run a second devnet");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second devnet started: {said}");
    assert!(said.contains("already running") && said.contains(&format!("pid {}", fixture.devnet.pid())), "{said}");

    // A mistyped address is reported as one, not as a key name that is missing.
    let mut typo = bob.clone();
    let last = if typo.ends_with('q') { "p" } else { "q" };
    typo.replace_range(typo.len() - 1.., last);
    let refused = fixture.wallet(&["send", &typo, "1", "--from", "alice", "--yes"]);
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success() && said.contains("not a valid address") && !said.contains("no key"), "{said}");
    // More than the balance is refused before any password is asked (none is given here).
    let too_much =
        fixture.wallet_without_password(&["send", "bob", "501", "--from", "alice", "--yes", "--allow-new-recipient"]);
    let said = String::from_utf8_lossy(&too_much.stdout);
    assert!(!too_much.status.success() && said.contains("less than the 501"), "{said}");

    let sent = fixture.wallet_json(&["send", "bob", "120", "--from", "alice", "--yes", "--allow-new-recipient"]);
    let certificate = certificate_of(&sent);
    fixture.committee().verify_certificate(&certificate).expect("a certificate of the devnet's elders");
    assert_eq!(fixture.wallet_json(&["balance", "alice"])["balance"], "380");

    // Raw HTTP, through another node than the wallet's.
    let carol = fixture.funded_key("10");
    let bob_id: AccountId = bob.parse().expect("address");
    let (status, _, answer) = fixture.post_order(fixture.api(2), &fixture.order(&carol, bob_id, "5", 0));
    assert_eq!(status, 200, "{answer}");
    fixture.committee().verify_certificate(&certificate_of(&answer)).expect("valid certificate");

    for api in all_apis(&fixture) {
        eventually("every elder applied both transfers to bob", || {
            (fixture.balance(api, &bob_id)? == "125").then_some(())
        });
    }
    let alice_id: AccountId = alice.parse().expect("address");
    assert!(all_apis(&fixture).iter().all(|api| fixture.balance(api, &alice_id).as_deref() == Some("380")));
    let settled = fixture.converged(&all_apis(&fixture));
    let supply = fixture.wallet_json(&["supply"]);
    assert_eq!(supply["minted"], "0", "{supply}");
    assert_eq!(supply["circulating"], supply["genesis"], "transfers conserve supply: {supply}");
    let metrics =
        fixture.http.get(format!("{}/metrics", fixture.api(0))).send().and_then(|r| r.text()).expect("metrics");
    assert!(metrics.contains("acre_peers 3"), "node 0 counts its three peers: {metrics}");
    assert!(metrics.contains("acre_orders_total{result=\"ok\"}"), "{metrics}");

    // Stopped and started again on the same directory, the devnet resumes from disk.
    let dir = fixture.devnet.dir.clone();
    fixture.devnet.stop();
    let mut devnet = DevnetProcess::start(&workspace_binary("acre-node"), &dir, 4);
    let resumed = Manifest::read(&dir).expect("manifest");
    assert_eq!(resumed.elders(), fixture.manifest.elders(), "the same elders");
    fixture.wait_connected(&resumed.nodes.iter().map(|node| node.api.as_str()).collect::<Vec<_>>());
    for node in &resumed.nodes {
        assert_eq!(fixture.state_hash(&node.api), Some(settled.clone()), "node {} lost state", node.id);
    }
    let again = fixture.wallet_json(&["send", "bob", "1", "--from", "alice", "--yes"]);
    fixture.committee().verify_certificate(&certificate_of(&again)).expect("valid certificate");
    devnet.stop();
}

#[test]
fn an_elder_killed_mid_stream_catches_up_after_restart() {
    let mut fixture = Fixture::start(4);
    let payer = fixture.funded_key("1000");
    let payee = AccountId::of(&SigningKey::from_bytes(&rand_secret()));
    let victim = &fixture.manifest.nodes[3];
    let mut sequence = 0;
    let mut pay = |api: &str| {
        let (status, _, answer) = fixture.post_order(api, &fixture.order(&payer, payee, "1", sequence));
        assert_eq!(status, 200, "transfer {sequence}: {answer}");
        sequence += 1;
    };
    for _ in 0..10 {
        pay(fixture.api(0));
    }
    send_signal(victim.pid, "KILL");
    // Three of four elders are a quorum: the stream goes on without the killed one.
    for index in 0..20 {
        pay(fixture.api(index % 3));
    }
    let survivors = [fixture.api(0), fixture.api(1), fixture.api(2)];
    let settled = fixture.converged(&survivors);

    let restarted = NodeProcess::start_with(&workspace_binary("acre-node"), &victim.data_dir, &[]);
    assert_eq!(restarted.api, victim.api, "the node comes back on its configured address");
    eventually("the restarted elder has caught up", || (fixture.state_hash(&restarted.api)? == settled).then_some(()));
    assert_eq!(fixture.balance(&restarted.api, &payee).as_deref(), Some("30"));

    // It votes again: a transfer through it gathers a quorum that may include it.
    fixture.wait_connected(&[&restarted.api]);
    pay(&restarted.api);
    for api in all_apis(&fixture) {
        eventually("every elder applied the last transfer", || (fixture.balance(api, &payee)? == "31").then_some(()));
    }
    restarted.stop();
    fixture.devnet.stop();
}

/// A sender who signs two orders for one sequence and races them through two nodes gets
/// at most one certified; if the elders split between them, neither, and only that
/// sender's account is stuck at that sequence. Every race here uses a fresh sender.
#[test]
fn conflicting_orders_raced_through_two_nodes_certify_at_most_one() {
    let mut fixture = Fixture::start(4);
    let mut certified = 0;
    for _ in 0..5 {
        let payer = fixture.funded_key("100");
        let left = AccountId::of(&SigningKey::from_bytes(&rand_secret()));
        let right = AccountId::of(&SigningKey::from_bytes(&rand_secret()));
        let orders = [fixture.order(&payer, left, "1", 0), fixture.order(&payer, right, "1", 0)];
        let shared = &fixture;
        let answers: Vec<(u16, String, Value)> = std::thread::scope(|scope| {
            let racers: Vec<_> = orders
                .iter()
                .enumerate()
                .map(|(index, order)| scope.spawn(move || shared.post_order(shared.api(index), order)))
                .collect();
            racers.into_iter().map(|racer| racer.join().expect("racer")).collect()
        });
        let confirmed: Vec<usize> = (0..2).filter(|&i| answers[i].0 == 200).collect();
        assert!(confirmed.len() <= 1, "at most one certificate per (account, sequence), got {answers:?}");
        for (index, (status, content_type, problem)) in answers.iter().enumerate() {
            if *status != 200 {
                assert_eq!(content_type, "application/problem+json");
                let code = problem["code"].as_str();
                assert!(matches!(code, Some("conflicting_order" | "no_quorum")), "order {index}: {problem}");
            }
        }
        // Both orders again, through every node: whatever was certified is what every
        // retry returns, and the other never is.
        fixture.converged(&all_apis(&fixture));
        let winner = confirmed.first().map(|&index| [left, right][index]);
        for (order, recipient) in orders.iter().zip([left, right]) {
            for api in all_apis(&fixture) {
                let (status, _, _) = fixture.post_order(api, order);
                assert_eq!(status == 200, winner == Some(recipient), "a retry through {api} changes nothing");
            }
        }
        for api in all_apis(&fixture) {
            eventually("every elder holds the same outcome", || {
                let paid = [left, right].map(|r| fixture.balance(api, &r));
                let expected = [left, right].map(|r| (winner == Some(r)).then(|| "1".to_owned()));
                (paid == expected).then_some(())
            });
        }
        certified += confirmed.len();
    }
    assert!(certified >= 1, "races are not all splits: the elders' refusals settle most of them");
    fixture.converged(&all_apis(&fixture));
    fixture.devnet.stop();
}

/// A wallet's next order often reaches an elder before the background delivery of its
/// last certificate does, and takes that certificate along (`OrdersAfter`). Spoken over
/// libp2p to an elder that lacks the certificate: the order alone is refused, with a
/// forged predecessor it is still refused and nothing is applied, and with the real one
/// the elder applies it and votes at once.
#[test]
fn an_elder_votes_at_once_on_an_order_that_brings_its_missing_predecessor() {
    let fixture = Fixture::start(4);
    let carol = fixture.funded_key("100");
    let bob = AccountId::of(&SigningKey::from_bytes(&rand_secret()));
    let (network, committee) = (fixture.network(), fixture.committee());
    let order = |sequence| {
        let (memo, amount) = (String::new(), "1".parse().expect("amount"));
        TransferOrder { network, from: AccountId::of(&carol), to: bob, amount, sequence, app: None, memo, hidden: None }
            .sign(&carol)
    };
    let (first, second) = (order(0), order(1));
    let voters = &fixture.manifest.nodes[1..];
    let peers: Vec<PeerId> = voters.iter().map(|node| node.peer_id.parse().expect("peer id")).collect();
    let behind = *peers.last().expect("three voters");
    let bootstrap: Vec<String> = voters.iter().flat_map(|node| node.libp2p.clone()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let stranger = SigningKey::from_bytes(&rand_secret());
        let probe = LedgerRequest::AppliedSince { position: u64::MAX, limit: 0 };
        let wire = common::connect::<Ledger>(&stranger, &bootstrap, &peers, &probe, Duration::from_secs(10)).await;
        let ask = |peer: PeerId, request: LedgerRequest| {
            let wire = wire.clone();
            async move {
                match wire.request::<Ledger>(peer, &request).await.expect("an answer") {
                    LedgerReply::Votes(mut votes) if votes.len() == 1 => votes.remove(0),
                    other => panic!("expected one vote or refusal, got {other:?}"),
                }
            }
        };
        // Carol's first order is certified by three elders and applied by none of them.
        let mut builder = CertificateBuilder::new(committee.clone(), first.order.clone());
        for &peer in &peers {
            builder.add(&ask(peer, LedgerRequest::Orders(vec![first.clone()])).await.expect("a vote")).expect("valid");
        }
        let certificate = builder.certificate().expect("a quorum of votes");

        let refused = ask(behind, LedgerRequest::Orders(vec![second.clone()])).await;
        assert!(matches!(refused, Err(LedgerError::UnexpectedSequence { expected: 0, got: 1 })), "{refused:?}");
        // Below a quorum of votes: a certificate anyone could make up.
        let mut forged = certificate.clone();
        forged.votes.truncate(committee.quorum() - 1);
        let with_forged = LedgerRequest::OrdersAfter { handed: vec![forged], orders: vec![second.clone()] };
        let refused = ask(behind, with_forged).await;
        assert!(matches!(refused, Err(LedgerError::UnexpectedSequence { expected: 0, got: 1 })), "{refused:?}");

        let with_real = LedgerRequest::OrdersAfter { handed: vec![certificate], orders: vec![second.clone()] };
        let vote = ask(behind, with_real).await.expect("a vote once the predecessor is applied");
        committee.verify_vote(&second.order.digest(), &vote).expect("a valid vote on the second order");
    });
    let behind_api = &fixture.manifest.nodes[3].api;
    assert_eq!(
        fixture.balance(behind_api, &AccountId::of(&carol)).as_deref(),
        Some("99"),
        "the first is applied there"
    );
}

#[test]
fn malformed_oversized_and_wrongly_signed_requests_change_nothing() {
    let mut fixture = Fixture::start(4);
    let payer = fixture.funded_key("50");
    let payee = AccountId::of(&SigningKey::from_bytes(&rand_secret()));
    let before = fixture.converged(&all_apis(&fixture));
    let api = fixture.api(1);

    let refusals: Vec<(&str, (u16, String, Value))> = vec![
        ("malformed JSON", fixture.post(api, "/v1/orders", "{\"order\": ".into())),
        ("wrong shape", fixture.post(api, "/v1/orders", "{\"hello\": 1}".into())),
        ("oversized", fixture.post(api, "/v1/orders", vec![b' '; 100_000].into())),
        ("oversized certificate", fixture.post(api, "/v1/certificates", vec![b' '; 100_000].into())),
        ("wrong signature", {
            let mut signed = fixture.order(&payer, payee, "1", 0);
            signed.order.amount = "2".parse().expect("amount");
            fixture.post_order(api, &signed)
        }),
        ("signed by another key", {
            let mut signed = fixture.order(&SigningKey::from_bytes(&rand_secret()), payee, "1", 0);
            signed.order.from = AccountId::of(&payer);
            fixture.post_order(api, &signed)
        }),
        ("overflowing amount", {
            let mut body = serde_json::to_value(fixture.order(&payer, payee, "1", 0)).expect("json");
            body["order"]["amount"] = json!("18446744073709551616");
            fixture.post(api, "/v1/orders", body.to_string().into())
        }),
        ("overdraft", fixture.post_order(api, &fixture.order(&payer, payee, "51", 0))),
        (
            "unknown sender",
            fixture.post_order(api, &fixture.order(&SigningKey::from_bytes(&rand_secret()), payee, "1", 0)),
        ),
        ("forged certificate", {
            let certificate = Certificate { order: fixture.order(&payer, payee, "50", 0).order, votes: vec![] };
            fixture.post(api, "/v1/certificates", serde_json::to_vec(&certificate).expect("json").into())
        }),
    ];
    for (what, (status, content_type, problem)) in &refusals {
        assert!((400..500).contains(status), "{what}: status {status} {problem}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert!(problem["code"].as_str().is_some_and(|code| !code.is_empty()), "{what}: {problem}");
    }
    let code = |what: &str| refusals.iter().find(|(w, _)| *w == what).map(|(_, answer)| answer.2["code"].clone());
    assert_eq!(code("wrong signature"), Some(json!("invalid_signature")));
    assert_eq!(code("oversized"), Some(json!("payload_too_large")));
    assert_eq!(code("unknown sender"), Some(json!("unknown_account")));

    // Nothing moved, nothing locked: the honest order at sequence 0 still goes through.
    assert_eq!(fixture.converged(&all_apis(&fixture)), before);
    let (status, _, answer) = fixture.post_order(api, &fixture.order(&payer, payee, "50", 0));
    assert_eq!(status, 200, "{answer}");
    fixture.devnet.stop();
}
