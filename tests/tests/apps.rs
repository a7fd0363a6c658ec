//! Apps on a 7-node devnet of real processes: a developer registers an app and sets its
//! price through `acre`, a user uploads and reads through it, and the developer's payout
//! account receives exactly the app's fees plus its share of use, epoch by epoch; a
//! non-owner cannot change the app, a replayed command does nothing, a registration
//! without its fee is refused, a free app works, and supply stays genesis + mints. Reads
//! looped through an app earn it nothing beyond what was paid to the farmers through it.

mod common;

use std::time::Duration;

use acre_ledger::{AccountId, Amount, AppAction, AppCommand, AppId};
use acre_tests::eventually_within;
use common::{rand_secret, Fixture};
use ed25519_dalek::SigningKey;
use serde_json::Value;

/// Epochs close about every 11 s on the devnet; fees and use are paid at a close.
const EPOCHS: Duration = Duration::from_secs(120);

fn amount(value: &Value) -> Amount {
    value.as_str().and_then(|text| text.parse().ok()).unwrap_or_else(|| panic!("not an amount: {value}"))
}

fn post_command(fixture: &Fixture, command: AppCommand, signer: &SigningKey) -> (u16, String, Value) {
    let signed = command.sign(signer);
    fixture.post(fixture.api(1), "/v1/apps", serde_json::to_vec(&signed).expect("json").into())
}

#[test]
fn a_developer_is_paid_exactly_its_fees_and_share_of_use() {
    let fixture = Fixture::start(7);
    let dir = tempfile::tempdir().expect("tempdir");
    // The developer's key, imported so the test can also sign commands by hand.
    let secret = rand_secret();
    let developer = SigningKey::from_bytes(&secret);
    let secret_file = dir.path().join("dev.secret");
    std::fs::write(&secret_file, secret.iter().map(|b| format!("{b:02x}")).collect::<String>()).expect("secret");
    fixture.wallet_json(&["key", "import", "dev", "--secret-file", secret_file.to_str().expect("utf-8")]);
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["faucet", "alice", "1000"]);
    // Two registrations' fees: photos now, free at the end.
    fixture.wallet_json(&["faucet", "dev", "2"]);

    let registered = fixture.wallet_json(&["app", "register", "photos", "--price", "0.5", "--from", "dev"]);
    let app: AppId = registered["id"].as_str().expect("id").parse().expect("app id");
    assert_eq!(app, AppId::of(&AccountId::of(&developer), "photos"));
    assert_eq!(registered["price_per_put"], "0.5");
    let priced = fixture.wallet_json(&["app", "set-price", "photos", "0.25", "--from", "dev"]);
    assert_eq!(priced["price_per_put"], "0.25");
    assert_eq!(priced["next_nonce"], 2);

    // A non-owner's command for the app is refused; so is a replay of the owner's.
    let stranger = SigningKey::from_bytes(&rand_secret());
    let forged = AppCommand {
        network: fixture.network(),
        owner: AccountId::of(&developer),
        name: "photos".into(),
        nonce: 2,
        action: AppAction::SetPayout(AccountId::of(&stranger)),
    };
    let (status, content_type, problem) = post_command(&fixture, forged, &stranger);
    assert_eq!((status, problem["code"].as_str()), (422, Some("invalid_signature")), "{problem}");
    assert!(content_type.starts_with("application/problem+json"));
    let replayed = AppCommand {
        network: fixture.network(),
        owner: AccountId::of(&developer),
        name: "photos".into(),
        nonce: 1,
        action: AppAction::SetPrice(Amount::from_credits(9).expect("amount")),
    };
    let (status, _, problem) = post_command(&fixture, replayed, &developer);
    assert_eq!((status, problem["code"].as_str()), (409, Some("stale_nonce")), "{problem}");
    // Registering costs a fee: an account that never held a credit registers nothing.
    let unpaid = AppCommand {
        network: fixture.network(),
        owner: AccountId::of(&stranger),
        name: "spam".into(),
        nonce: 0,
        action: AppAction::Register { payout: AccountId::of(&stranger), price_per_put: Amount::ZERO },
    };
    let (status, _, problem) = post_command(&fixture, unpaid, &stranger);
    assert_eq!((status, problem["code"].as_str()), (422, Some("app_unpaid")), "{problem}");
    let shown = fixture.wallet_json(&["app", "show", &app.to_string()]);
    assert_eq!(shown["price_per_put"], "0.25", "nothing changed the price");
    assert_eq!(shown["payout"], AccountId::of(&developer).to_string().as_str(), "nor the payout account");

    // A user uploads through the app, seeing its price in the quote, and reads it back.
    let file = dir.path().join("photo.bin");
    let content: Vec<u8> = (0..3 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&file, &content).expect("file");
    let file = file.to_str().expect("utf-8");
    let quote = fixture.wallet_json(&["quote", file, "--app", &app.to_string()]);
    assert_eq!(quote["quote"]["app_price"], "0.25", "{quote}");
    let put = fixture.wallet_json(&["put", file, "--from", "alice", "--yes", "--app", &app.to_string()]);
    let address = put["file"].as_str().expect("address").to_owned();
    let copy = dir.path().join("copy.bin");
    for _ in 0..3 {
        fixture.wallet_json(&["get", &address, "-o", copy.to_str().expect("utf-8"), "--app", &app.to_string()]);
    }

    // The epochs pay the fee and a share of the emission for the agreed use.
    let payouts = eventually_within(EPOCHS, "the app is paid its fee and a share of use", || {
        let page = fixture.get(fixture.api(0), &format!("/v1/apps/{app}/payouts"));
        let lines = page["payouts"].as_array()?.clone();
        let fees: Amount = lines.iter().map(|l| amount(&l["fees"])).try_fold(Amount::ZERO, |s, a| s.checked_add(a))?;
        let used = lines.iter().any(|line| amount(&line["usage_share"]) > Amount::ZERO);
        (fees == Amount::from_nanos(250_000_000).expect("amount") && used).then_some(lines)
    });
    let mut total = Amount::ZERO;
    for line in &payouts {
        let sum = amount(&line["fees"]).checked_add(amount(&line["usage_share"])).expect("sum");
        assert_eq!(sum, amount(&line["amount"]), "each line adds up: {line}");
        total = total.checked_add(sum).expect("total");
    }
    let developer_id = AccountId::of(&developer);
    eventually_within(EPOCHS, "the developer's payout account holds exactly the payouts", || {
        let page = fixture.get(fixture.api(0), &format!("/v1/apps/{app}/payouts"));
        let total: Amount = page["payouts"]
            .as_array()?
            .iter()
            .map(|l| amount(&l["amount"]))
            .try_fold(Amount::ZERO, |s, a| s.checked_add(a))?;
        let balance: Amount = fixture.balance(fixture.api(0), &developer_id)?.parse().ok()?;
        // What is left of the fees, one credit, is for the second registration.
        (balance == total.checked_add(Amount::ONE_CREDIT)?).then_some(())
    });
    assert!(total > Amount::ZERO);
    let shown = fixture.wallet_json(&["app", "show", &app.to_string()]);
    assert!(amount(&shown["lifetime_earnings"]) >= total, "{shown}");

    // A free app works: the upload pays the store cost alone.
    fixture.wallet_json(&["app", "register", "free", "--price", "0", "--from", "dev"]);
    let free = AppId::of(&developer_id, "free");
    let other = dir.path().join("other.bin");
    std::fs::write(&other, b"stored through a free app").expect("file");
    let stored = fixture.wallet_json(&[
        "put",
        other.to_str().expect("utf-8"),
        "--from",
        "alice",
        "--yes",
        "--app",
        &free.to_string(),
    ]);
    assert_eq!(stored["newly_stored"], 2, "{stored}");

    // Supply is still genesis + mints.
    let supply = fixture.get(fixture.api(0), "/v1/supply");
    assert_eq!(amount(&supply["genesis"]).checked_add(amount(&supply["minted"])), Some(amount(&supply["circulating"])));
}

/// Reads cost their reader nothing, so anyone can loop them through an app. An app earns
/// from its use only what was paid to the farmers through it: looped reads through an app
/// nobody stored through earn it nothing, while the same reads through an app a user
/// stored through earn it a share. The two apps are read alike, so the uses of both are
/// agreed by the same closes.
#[test]
fn looped_reads_earn_an_app_nothing_beyond_what_was_paid_through_it() {
    let fixture = Fixture::start(4);
    let dir = tempfile::tempdir().expect("tempdir");
    fixture.wallet_json(&["key", "new", "mallory"]);
    fixture.wallet_json(&["faucet", "mallory", "2"]);
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["faucet", "alice", "100"]);
    let register = |name: &str| -> AppId {
        let registered = fixture.wallet_json(&["app", "register", name, "--price", "0", "--from", "mallory"]);
        registered["id"].as_str().expect("id").parse().expect("app id")
    };
    let (looped, paid) = (register("looped"), register("paid"));

    let file = dir.path().join("file.bin");
    std::fs::write(&file, (0..1u32 << 20).map(|i| (i.wrapping_mul(40_503) >> 7) as u8).collect::<Vec<u8>>())
        .expect("file");
    let put = fixture.wallet_json(&[
        "put",
        file.to_str().expect("utf-8"),
        "--from",
        "alice",
        "--yes",
        "--app",
        &paid.to_string(),
    ]);
    let address = put["file"].as_str().expect("address").to_owned();
    // The store payment through it reaches the section state through the log.
    let allowance = eventually_within(EPOCHS, "the payment through the app gives it an allowance", || {
        let shown = fixture.get(fixture.api(0), &format!("/v1/apps/{paid}"));
        let allowance = amount(&shown["use_allowance"]);
        (allowance > Amount::ZERO).then_some(allowance)
    });
    let copy = dir.path().join("copy.bin");
    for _ in 0..5 {
        for app in [looped, paid] {
            fixture.wallet_json(&["get", &address, "-o", copy.to_str().expect("utf-8"), "--app", &app.to_string()]);
        }
    }

    let payouts = |app: AppId| -> Vec<Value> {
        let page = fixture.get(fixture.api(0), &format!("/v1/apps/{app}/payouts"));
        page["payouts"].as_array().cloned().expect("a list of payouts")
    };
    eventually_within(EPOCHS, "the paid app earns a share of its use", || {
        payouts(paid).iter().any(|line| amount(&line["usage_share"]) > Amount::ZERO).then_some(())
    });
    assert_eq!(payouts(looped), Vec::<Value>::new(), "looped reads earned the app nothing");
    let shown = fixture.wallet_json(&["app", "show", &looped.to_string()]);
    assert_eq!(amount(&shown["use_allowance"]), Amount::ZERO, "{shown}");
    assert_eq!(amount(&shown["lifetime_earnings"]), Amount::ZERO, "{shown}");
    let earned = payouts(paid)
        .iter()
        .map(|line| amount(&line["usage_share"]))
        .try_fold(Amount::ZERO, |sum, a| sum.checked_add(a));
    assert!(earned.expect("a sum") <= allowance, "use earned no more than was paid through the app");
}
