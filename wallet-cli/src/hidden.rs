//! Hidden balances in the wallet: opening them with the key, the orders that shield,
//! unshield and send hidden amounts, and the supply audit run here from public data.
//!
//! The wallet keeps nothing of its own about hidden balances: the ledger holds every
//! commitment with its opening sealed to the owner, so the key alone recovers them.

use std::path::PathBuf;

use acre_api::ledger::HiddenView;
use acre_ledger::confidential::{self, HiddenAction, HiddenKind, HiddenSpend, IncomingCredit, Opening, MAX_ABSORB};
use acre_ledger::{AccountId, Amount, Committee, Digest};
use acre_wallet::client::NodeClient;
use acre_wallet::keystore::KeyFile;
use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::{committee_of, confirm, node_client, password, read_journal, submit, write_journal, Cli};

/// Incoming credits whose certificates the wallet checks, largest first: enough to fold
/// in and show, while a flood of tiny credits costs the wallet a bounded number of requests.
const CHECKED_CREDITS: usize = 4 * MAX_ABSORB;

/// An account's hidden balance as its key opens it.
#[derive(Clone, Serialize)]
pub(crate) struct HiddenBalance {
    /// Spendable and checked incoming credits together.
    pub(crate) total: Amount,
    /// Of which sent to the account and not folded in yet.
    pub(crate) incoming: Amount,
    /// Incoming credits left aside: a sealed opening that does not match its commitment
    /// (the sender sealed a wrong one), or no certificate from the section for it.
    pub(crate) unopenable: usize,
    /// Incoming credits beyond the largest ones checked, not counted in `total`.
    pub(crate) unchecked: usize,
    #[serde(skip)]
    spendable: Opening,
    #[serde(skip)]
    absorb: Vec<(Digest, Opening)>,
}

impl std::fmt::Debug for HiddenBalance {
    /// Shows no amount: a debug print must not undo what the commitments hide.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HiddenBalance(…)")
    }
}

/// Opens `view` with `key`. Each incoming credit must open to its commitment and be what a
/// certificate of `committee` says was sent to this account (a node could otherwise show
/// credits anyone can seal); the largest [`MAX_ABSORB`] are folded in by the next order.
pub(crate) fn open(
    client: &NodeClient,
    committee: &Committee,
    view: &HiddenView,
    key: &SigningKey,
) -> Result<HiddenBalance> {
    if view.network != client.section()?.network {
        bail!("the node names two networks; its hidden orders would be refused");
    }
    let spendable = match &view.spendable {
        Some(hidden) => hidden.open(key).context("the hidden balance's opening does not open with this key")?,
        None => Opening::ZERO,
    };
    let mut opened: Vec<(&IncomingCredit, Opening)> = Vec::new();
    let mut unopenable = 0;
    for credit in &view.incoming {
        match credit.open(key) {
            Ok(opening) => opened.push((credit, opening)),
            Err(_) => unopenable += 1,
        }
    }
    opened.sort_by_key(|(_, opening)| std::cmp::Reverse(opening.value));
    let unchecked = opened.len().saturating_sub(CHECKED_CREDITS);
    opened.truncate(CHECKED_CREDITS);
    let mut certified = Vec::with_capacity(opened.len());
    for (credit, opening) in opened {
        if is_certified(client, committee, &view.address, credit)? {
            certified.push((credit.certificate, opening));
        } else {
            unopenable += 1;
        }
    }
    let sum = |credits: &[(Digest, Opening)]| credits.iter().try_fold(Opening::ZERO, |sum, (_, o)| sum.checked_add(*o));
    let incoming = sum(&certified).context("hidden amounts overflow")?;
    let total = incoming.checked_add(spendable).context("hidden amounts overflow")?;
    certified.truncate(MAX_ABSORB);
    Ok(HiddenBalance {
        total: total.amount()?,
        incoming: incoming.amount()?,
        unopenable,
        unchecked,
        spendable,
        absorb: certified,
    })
}

/// Whether the section certified `credit`: a certificate of `committee` for a hidden
/// transfer to `owner` with exactly this commitment and sealed opening.
fn is_certified(
    client: &NodeClient,
    committee: &Committee,
    owner: &AccountId,
    credit: &IncomingCredit,
) -> Result<bool> {
    let Some(transfer) = client.transfer(&credit.certificate)? else { return Ok(false) };
    let certificate = &transfer.certificate;
    let order = &certificate.order;
    let matches = match order.hidden.as_ref().map(|hidden| &hidden.kind) {
        Some(HiddenKind::Transfer { amount, opening }) => *amount == credit.amount && *opening == credit.opening,
        _ => false,
    };
    Ok(matches
        && certificate.id() == credit.certificate
        && order.to == *owner
        && order.from == credit.from
        && order.sequence == credit.sequence
        && committee.verify_certificate(certificate).is_ok())
}

/// Whether the node shows anything hidden for the account.
pub(crate) fn holds_anything(view: &HiddenView) -> bool {
    view.spendable.is_some() || !view.incoming.is_empty()
}

/// The arguments of `acre shield`, `acre unshield` and `acre send --confidential`.
pub(crate) struct HiddenRequest {
    pub(crate) sender: KeyFile,
    pub(crate) action: HiddenAction,
    /// Where signed orders wait until settled (shared with public sends: one per account).
    pub(crate) journal_dir: PathBuf,
    pub(crate) memo: String,
    pub(crate) yes: bool,
    pub(crate) allow_new_recipient: bool,
}

/// Makes, signs and submits a hidden order. An earlier order still in the journal is
/// finished first (it holds the account's next sequence); then the user repeats.
pub(crate) fn run(cli: &Cli, request: HiddenRequest) -> Result<()> {
    let client = node_client(cli)?;
    let file = &request.sender;
    let journal = request.journal_dir.join(format!("{}.json", file.address));
    if let Some(previous) = read_journal(&journal)? {
        if client.transfer(&previous.order.digest())?.is_none() {
            eprintln!("finishing an earlier order at sequence {} first", previous.order.sequence);
            submit(cli, &client, &journal, &previous)?;
            bail!("the earlier order is settled; repeat this one");
        }
        std::fs::remove_file(&journal)?;
    }
    let account = client.account(&file.address)?.with_context(|| format!("{} has never held credits", file.address))?;
    if let Some(pending) = account.pending_order {
        // Elders voted for it and locked the sequence: only that very order can pass there.
        eprintln!("finishing the order pending at sequence {} first", pending.order.sequence);
        write_journal(&journal, &pending)?;
        submit(cli, &client, &journal, &pending)?;
        bail!("the pending order is settled; repeat this one");
    }
    match request.action {
        HiddenAction::Shield { amount } if account.balance < amount => {
            bail!("{} holds {} public credits, less than the {amount} to shield", file.name, account.balance)
        }
        HiddenAction::Transfer { to, .. } | HiddenAction::Unshield { to, .. }
            if to != file.address && !request.allow_new_recipient && client.account(&to)?.is_none() =>
        {
            bail!("{to} has never held credits: check the address, or pass --allow-new-recipient")
        }
        _ => {}
    }
    if !request.yes {
        confirm(&format!("{} from {}?", describe(&request.action), file.name))?;
    }
    let key = file.unlock(&password(cli, &format!("Password for key {}: ", file.name), false)?)?;
    let view = client.hidden(&file.address)?.with_context(|| format!("{} has never held credits", file.address))?;
    let balance = open(&client, &committee_of(&client)?, &view, &key)?;
    let moved = match request.action {
        HiddenAction::Shield { .. } => Amount::ZERO,
        HiddenAction::Unshield { amount, .. } | HiddenAction::Transfer { amount, .. } => amount,
    };
    if balance.total < moved {
        bail!("{} holds {} hidden credits, less than the {moved} to move", file.name, balance.total);
    }
    let foldable = balance.absorb.iter().try_fold(balance.spendable, |sum, (_, o)| sum.checked_add(*o));
    if foldable.is_none_or(|available| available.value < moved.nanos()) {
        bail!("one order folds in {MAX_ABSORB} incoming credits; shield a little first to fold in more, then repeat");
    }
    let spend = HiddenSpend {
        key: &key,
        network: view.network,
        sequence: view.next_sequence,
        spendable: balance.spendable,
        absorb: balance.absorb,
        action: request.action,
        memo: request.memo,
    };
    let (order, _) = spend.build(&mut rand::rngs::OsRng)?;
    let signed = order.sign(&key);
    write_journal(&journal, &signed)?;
    submit(cli, &client, &journal, &signed)
}

/// A hidden order's intent, in words; the hidden amount is shown only to its maker.
fn describe(action: &HiddenAction) -> String {
    match action {
        HiddenAction::Shield { amount } => format!("Shield {amount} credits (public) into the hidden balance"),
        HiddenAction::Unshield { to, amount } => format!("Unshield {amount} credits (public) to {to}"),
        HiddenAction::Transfer { to, amount } => format!("Send {amount} hidden credits to {to}"),
    }
}

/// The supply audit run here over the node's listing of every balance and commitment.
#[derive(Debug, Serialize)]
pub(crate) struct SupplyCheck {
    pub(crate) audit: confidential::SupplyAudit,
    pub(crate) balances: usize,
    pub(crate) commitments: usize,
}

/// Fetches every public balance and commitment and checks the supply invariant here.
pub(crate) fn audit_supply(client: &NodeClient) -> Result<SupplyCheck> {
    let listing = client.supply_audit()?;
    let issued = listing.genesis.checked_add(listing.minted).context("genesis plus minted overflows the cap")?;
    let mut seen = std::collections::BTreeSet::new();
    if !listing.balances.iter().all(|line| seen.insert(line.account)) {
        bail!("the node lists an account's balance twice");
    }
    let audit = confidential::audit(
        issued,
        listing.balances.iter().map(|line| line.balance),
        listing.commitments.iter().map(|line| &line.commitment),
    )
    .context("the node's listing holds a commitment that is not a point")?;
    Ok(SupplyCheck { audit, balances: listing.balances.len(), commitments: listing.commitments.len() })
}

/// The address a hidden order credits when none is given: the sender's own.
pub(crate) fn own_or(to: Option<AccountId>, sender: &KeyFile) -> AccountId {
    to.unwrap_or(sender.address)
}
