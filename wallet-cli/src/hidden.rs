//! Hidden balances in the wallet: opening them with the key, the orders that shield,
//! unshield and send hidden amounts, and the supply audit run here from public data.
//!
//! The wallet keeps nothing of its own about hidden balances: the ledger holds every
//! commitment with its opening sealed to the owner, so the key alone recovers them.

use std::path::PathBuf;

use acre_api::ledger::HiddenView;
use acre_ledger::confidential::{self, HiddenAction, HiddenSpend, Opening, MAX_ABSORB};
use acre_ledger::{AccountId, Amount, Digest};
use acre_wallet::client::NodeClient;
use acre_wallet::keystore::KeyFile;
use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::{confirm, node_client, password, read_journal, submit, Cli};

/// An account's hidden balance as its key opens it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HiddenBalance {
    /// Spendable and incoming together: what the owner can move.
    pub(crate) total: Amount,
    /// Of which sent to the account and folded in by its next hidden order.
    pub(crate) incoming: Amount,
    /// Incoming credits whose sealed opening does not match their commitment: a sender
    /// sealed a wrong one. They are never folded in.
    pub(crate) unopenable: usize,
    #[serde(skip)]
    spendable: Opening,
    #[serde(skip)]
    absorb: Vec<(Digest, Opening)>,
}

/// Opens `view` with `key`: the spendable commitment, and every incoming credit that
/// opens to its commitment (at most [`MAX_ABSORB`] are folded in per order).
pub(crate) fn open(view: &HiddenView, key: &SigningKey) -> Result<HiddenBalance> {
    let spendable = match &view.spendable {
        Some(hidden) => hidden.open(key).context("the hidden balance's opening does not open with this key")?,
        None => Opening::ZERO,
    };
    let mut absorb = Vec::new();
    let mut unopenable = 0;
    for credit in &view.incoming {
        match credit.open(key) {
            Ok(opening) if absorb.len() < MAX_ABSORB => absorb.push((credit.certificate, opening)),
            Ok(_) => {}
            Err(_) => unopenable += 1,
        }
    }
    let incoming = absorb.iter().try_fold(Opening::ZERO, |sum, (_, o)| sum.checked_add(*o));
    let total = incoming.and_then(|incoming| incoming.checked_add(spendable)).context("hidden amounts overflow")?;
    Ok(HiddenBalance {
        total: total.amount()?,
        incoming: incoming.context("hidden amounts overflow")?.amount()?,
        unopenable,
        spendable,
        absorb,
    })
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
    if let Some(pending) = &account.pending_order {
        bail!("an earlier order is pending at sequence {}; repeat that send to finish it", pending.order.sequence);
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
    let balance = open(&view, &key)?;
    let moved = match request.action {
        HiddenAction::Shield { .. } => Amount::ZERO,
        HiddenAction::Unshield { amount, .. } | HiddenAction::Transfer { amount, .. } => amount,
    };
    if balance.total < moved {
        bail!("{} holds {} hidden credits, less than the {moved} to move", file.name, balance.total);
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
    if let Some(dir) = journal.parent() {
        acre_wallet::keystore::create_private_dir(dir)?;
    }
    std::fs::write(&journal, serde_json::to_vec(&signed)?).with_context(|| format!("writing {}", journal.display()))?;
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
