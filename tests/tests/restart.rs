//! A node restarted after a crash takes up what it had accepted: a store payment it took
//! just before it was killed with SIGKILL, while the section log could order nothing, is
//! still collected into the pool and paid out.

mod common;

use std::time::Duration;

use acre_ledger::{AccountId, Amount};
use acre_tests::{eventually_within, send_signal, workspace_binary, NodeProcess};
use common::{rand_secret, Fixture};

/// Epochs close about every 11 s on the devnet; a few of them, with 2 cores shared.
const EPOCHS: Duration = Duration::from_secs(120);

fn latest_epoch(fixture: &Fixture, api: &str) -> u64 {
    fixture.get(api, "/v1/epochs/latest")["record"]["epoch"].as_u64().unwrap_or(0)
}

fn amount(value: &serde_json::Value) -> Amount {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_else(|| panic!("not an amount: {value}"))
}

/// A store payment a node accepted just before it crashed, while the log could order
/// nothing, is still collected into the pool and paid out once the node starts again:
/// the node takes its unordered payments back from its payment records, rather than losing
/// them with its memory.
#[test]
fn a_payment_accepted_just_before_a_crash_is_collected_after_the_restart() {
    let fixture = Fixture::start_seeded(4);
    let (crashing, observer) = (&fixture.manifest.nodes[0], fixture.api(3));
    eventually_within(EPOCHS, "an epoch mints for the seed file", || {
        let minted: Amount = fixture.get(observer, "/v1/epochs/latest")["record"]["minted"].as_str()?.parse().ok()?;
        (minted > Amount::ZERO).then_some(())
    });

    // A payment far above the price, so its payout stands out from the seed file's.
    let seed_price = amount(&fixture.get(observer, &format!("/v1/quote?bytes={}", 1 << 20))["price"]);
    assert!(seed_price < "1".parse().expect("amount"), "the seed file cost {seed_price}");
    let payer = fixture.funded_key("20");
    let chunk = acre_proofs::Chunk::new(rand_secret().repeat(32)).expect("a chunk");
    let quote = fixture.get(&crashing.api, &format!("/v1/quote?bytes={}", chunk.size()));
    let pool: AccountId = quote["pool"].as_str().expect("the pool").parse().expect("an account");
    let paid: Amount = "10".parse().expect("amount");
    let order = acre_ledger::TransferOrder {
        memo: acre_ledger::economics::store_memo(&[(chunk.address().0, chunk.size())]),
        ..fixture.order(&payer, pool, "10", 0).order
    }
    .sign(&payer);
    let (status, _, answer) = fixture.post_order(&crashing.api, &order);
    assert_eq!(status, 200, "{answer}");
    let certificate = common::certificate_of(&answer);

    // Two of the four elders stop: no quorum, so the log orders nothing the node proposes.
    let stopped = [&fixture.manifest.nodes[1], &fixture.manifest.nodes[2]];
    stopped.iter().for_each(|node| send_signal(node.pid, "STOP"));
    let before = latest_epoch(&fixture, observer);
    let payment = serde_json::json!({
        "certificate": certificate,
        "chunks": [{ "address": chunk.address().to_string(), "size": chunk.size() }],
    });
    let (status, _, answer) = fixture.post(&crashing.api, "/v1/payments", payment.to_string().into());
    assert_eq!(status, 200, "the payment is accepted: {answer}");
    send_signal(crashing.pid, "KILL");
    stopped.iter().for_each(|node| send_signal(node.pid, "CONT"));
    let _restarted = NodeProcess::start_with(&workspace_binary("acre-node"), &crashing.data_dir, &[]);

    let paid_out = eventually_within(EPOCHS, "an epoch pays the payment out of the pool", || {
        let latest = latest_epoch(&fixture, observer);
        (before + 1..=latest)
            .filter_map(|epoch| {
                fixture.get(observer, &format!("/v1/epochs/{epoch}"))["record"]["from_pool"].as_str()?.parse().ok()
            })
            .find(|from_pool: &Amount| *from_pool >= paid)
    });
    assert!(paid_out >= paid, "{paid_out}");
}
