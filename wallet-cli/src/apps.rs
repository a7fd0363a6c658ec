//! `acre app …`: register an app, change its price, show it and its payouts. Commands are
//! signed with the owner's key and ordered by the section log; the CLI waits until the
//! section shows the change, so a command that returns has taken effect.

use std::time::{Duration, Instant};

use acre_ledger::apps::{registration_memo, APP_REGISTRATION_FEE};
use acre_ledger::economics::pool_account;
use acre_ledger::{AccountId, Amount, AppAction, AppCommand, AppId, TransferOrder};
use acre_wallet::client::NodeClient;
use acre_wallet::keystore::KeyFile;
use anyhow::{bail, Context, Result};

use crate::{node_client, password, Cli};

/// How long a command may take to be ordered before the CLI gives up waiting.
const ORDERED_WITHIN: Duration = Duration::from_secs(60);

/// An app named on the command line: its hex id, or a name the owner key registered.
pub(crate) fn resolve(app: &str, owner: Option<&KeyFile>) -> Result<AppId> {
    if let Ok(id) = app.parse::<AppId>() {
        return Ok(id);
    }
    let owner = owner.context("name the owner key with --from, or give the app's hex id")?;
    Ok(AppId::of(&owner.address, app))
}

/// `acre app register NAME --price AMOUNT --payout ADDRESS`: pays the registration fee
/// to the section's pool (its farmers), then registers the app with that payment.
pub(crate) fn register(cli: &Cli, owner: &KeyFile, name: &str, price: Amount, payout: AccountId) -> Result<()> {
    let client = node_client(cli)?;
    let network = client.section()?.network;
    let command = AppCommand {
        network,
        owner: owner.address,
        name: name.to_owned(),
        nonce: 0,
        action: AppAction::Register { payout, price_per_put: price },
    };
    let app = command.app();
    if client.app(&app)?.is_some() {
        bail!("app {app} is registered already");
    }
    let account = client.account(&owner.address)?.with_context(|| {
        format!("{} has never held credits; registering an app costs {APP_REGISTRATION_FEE} credits", owner.address)
    })?;
    let key = owner.unlock(&password(cli, &format!("Password for key {}: ", owner.name), false)?)?;
    let fee = TransferOrder {
        network,
        from: owner.address,
        to: pool_account(""),
        amount: APP_REGISTRATION_FEE,
        sequence: account.next_sequence,
        app: None,
        memo: registration_memo(&app),
        hidden: None,
    }
    .sign(&key);
    let paid = client.submit_order(&fee).context("paying the registration fee")?;
    let mut signed = command.sign(&key);
    signed.fee = Some(paid.certificate);
    client.submit_app(&signed)?;
    let view = wait(&client, &app, |_| true)?;
    print_app(cli, &view)
}

/// `acre app set-price APP AMOUNT`.
pub(crate) fn set_price(cli: &Cli, owner: &KeyFile, app: &AppId, price: Amount) -> Result<()> {
    let client = node_client(cli)?;
    let current = client.app(app)?.with_context(|| format!("no app {app} in this section"))?;
    if current.owner != owner.address {
        bail!("app {app} belongs to {}, not to key {}", current.owner, owner.name);
    }
    let nonce = current.next_nonce;
    let network = client.section()?.network;
    let action = AppAction::SetPrice(price);
    let command = AppCommand { network, owner: owner.address, name: current.name, nonce, action };
    submit(cli, &client, owner, command)?;
    let view = wait(&client, app, |view| view.next_nonce > nonce)?;
    print_app(cli, &view)
}

/// `acre app show APP`.
pub(crate) fn show(cli: &Cli, app: &AppId) -> Result<()> {
    let client = node_client(cli)?;
    let view = client.app(app)?.with_context(|| format!("no app {app} in this section"))?;
    print_app(cli, &view)
}

/// `acre app payouts APP`: every page, oldest first, and the total, checked against the
/// lines.
pub(crate) fn payouts(cli: &Cli, app: &AppId) -> Result<()> {
    let client = node_client(cli)?;
    let mut lines = Vec::new();
    let mut cursor = None;
    loop {
        let page = client.app_payouts(app, cursor)?;
        lines.extend(page.payouts);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let total = lines.iter().try_fold(Amount::ZERO, |sum, line| sum.checked_add(line.amount)).context("overflow")?;
    for line in &lines {
        if line.fees.checked_add(line.usage_share) != Some(line.amount) {
            bail!("the node's payout for epoch {} does not add up", line.epoch);
        }
    }
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "app": app, "payouts": lines, "total": total }))?
        );
        return Ok(());
    }
    println!(
        "{:>7}  {:>18}  {:>8}  {:>18}  {:>18}",
        "epoch", "fees (credits)", "uses", "for use (credits)", "paid (credits)"
    );
    for line in &lines {
        println!(
            "{:>7}  {:>18}  {:>8}  {:>18}  {:>18}",
            line.epoch,
            line.fees.to_string(),
            line.usage,
            line.usage_share.to_string(),
            line.amount.to_string()
        );
    }
    println!("total {total} over {} epochs", lines.len());
    Ok(())
}

fn submit(cli: &Cli, client: &NodeClient, owner: &KeyFile, command: AppCommand) -> Result<AppId> {
    let key = owner.unlock(&password(cli, &format!("Password for key {}: ", owner.name), false)?)?;
    let submitted = client.submit_app(&command.sign(&key))?;
    Ok(submitted.app)
}

/// Polls until the section shows the app and `done` holds.
fn wait(
    client: &NodeClient,
    app: &AppId,
    done: impl Fn(&acre_api::apps::AppView) -> bool,
) -> Result<acre_api::apps::AppView> {
    let started = Instant::now();
    loop {
        if let Some(view) = client.app(app)?.filter(|view| done(view)) {
            return Ok(view);
        }
        if started.elapsed() > ORDERED_WITHIN {
            bail!("the section did not order the command within {ORDERED_WITHIN:?}; repeat it to check");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn print_app(cli: &Cli, view: &acre_api::apps::AppView) -> Result<()> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(view)?);
        return Ok(());
    }
    println!("app {} ({})", view.id, view.name);
    println!("  owner              {}", view.owner);
    println!("  payout             {}", view.payout);
    println!("  price per put      {}", view.price_per_put);
    println!("  fees this epoch    {}", view.unpaid_fees);
    println!("  use earns at most  {}", view.use_allowance);
    println!("  uses last epoch    {}", view.usage_last_epoch);
    println!("  lifetime earnings  {}", view.lifetime_earnings);
    Ok(())
}
