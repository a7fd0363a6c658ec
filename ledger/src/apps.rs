//! Apps: a developer registers an app under its own key, sets what each upload through it
//! costs, and names where its earnings go. Commands are signed by the owner and carry
//! the owner's next nonce, so each is applied once and never replayed; the section log
//! orders them among the payments, so a price change applies to payments ordered after
//! it. Pure: the section state applies commands and meters use; the epoch record pays.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::{AccountId, Amount, AppId, Certificate, Digest, SignatureBytes};

/// Hash context of app ids.
const APP_ID_CONTEXT: &str = "acre 2026 app id v1";
/// Hash context of what an owner signs.
const APP_COMMAND_CONTEXT: &str = "acre 2026 app command v2";
/// Longest app name, in bytes.
pub const MAX_APP_NAME_BYTES: usize = 64;
/// What registering an app costs, paid to the section's pool and so to its farmers: every
/// app is kept by every member in the section state for good, and a free registration let
/// an account that never held a credit add apps as fast as it could sign them.
pub const APP_REGISTRATION_FEE: Amount = Amount::ONE_CREDIT;
/// Apps a section keeps at most, whatever anyone pays: its state stays bounded.
pub const MAX_APPS: usize = 4_096;
/// The memo of the payment that registers `app`, so one fee registers one app.
pub fn registration_memo(app: &AppId) -> String {
    format!("app registration {app}")
}

impl AppId {
    /// The id of the app `name` registered by `owner`.
    pub fn of(owner: &AccountId, name: &str) -> AppId {
        AppId(Digest::derive(APP_ID_CONTEXT, &[owner.as_bytes(), name.as_bytes()]).0)
    }
}

/// What an owner asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppAction {
    /// Creates the app.
    Register {
        /// Where its earnings go.
        payout: AccountId,
        /// What one upload through it costs, on top of the store cost.
        price_per_put: Amount,
    },
    /// Changes the price for payments ordered after this.
    SetPrice(Amount),
    /// Changes where earnings go.
    SetPayout(AccountId),
}

/// An owner's command for its app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCommand {
    /// The network it is for ([`crate::network_id`]), so it never applies on another.
    pub network: Digest,
    /// The owner, whose key signs.
    pub owner: AccountId,
    /// The app's name, unique per owner.
    pub name: String,
    /// The owner's next app nonce: 0 for the registration, then one more each time.
    pub nonce: u64,
    /// What to do.
    pub action: AppAction,
}

impl AppCommand {
    /// The app this command is for.
    pub fn app(&self) -> AppId {
        AppId::of(&self.owner, &self.name)
    }

    /// What the owner signs: every field, each length-prefixed or fixed-size, so no two
    /// different commands share a digest.
    fn digest(&self) -> Digest {
        let (tag, account, amount) = match &self.action {
            AppAction::Register { payout, price_per_put } => (0u8, payout, *price_per_put),
            AppAction::SetPrice(price) => (1, &self.owner, *price),
            AppAction::SetPayout(payout) => (2, payout, Amount::ZERO),
        };
        Digest::derive(
            APP_COMMAND_CONTEXT,
            &[
                &self.network.0,
                &self.owner.0,
                &(self.name.len() as u64).to_le_bytes(),
                self.name.as_bytes(),
                &self.nonce.to_le_bytes(),
                &[tag],
                &account.0,
                &amount.nanos().to_le_bytes(),
            ],
        )
    }

    /// Signs the command with the owner's key.
    pub fn sign(self, owner: &SigningKey) -> SignedAppCommand {
        let signature = SignatureBytes::sign(owner, &self.digest());
        SignedAppCommand { command: self, signature, fee: None }
    }
}

/// A command with its owner's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAppCommand {
    /// The command.
    pub command: AppCommand,
    /// The owner's signature over it.
    pub signature: SignatureBytes,
    /// For a registration: the certified payment of [`APP_REGISTRATION_FEE`] from the
    /// owner to the section's pool, with the app's [`registration_memo`]. Its votes are
    /// checked against the committee by whoever admits the command. (Absent in JSON is
    /// none; never skipped when encoding, which the log's binary encoding relies on.)
    #[serde(default)]
    pub fee: Option<Certificate>,
}

impl SignedAppCommand {
    /// Whether the owner signed it and its fields are possible.
    pub fn is_valid(&self) -> bool {
        let command = &self.command;
        let well_formed = !command.name.is_empty()
            && command.name.len() <= MAX_APP_NAME_BYTES
            && match &command.action {
                AppAction::Register { payout, .. } | AppAction::SetPayout(payout) => payout.verifying_key().is_some(),
                AppAction::SetPrice(_) => true,
            };
        well_formed
            && command
                .owner
                .verifying_key()
                .is_some_and(|key| key.verify_strict(command.digest().as_bytes(), &self.signature.to_dalek()).is_ok())
    }
}

/// A registered app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Its owner.
    pub owner: AccountId,
    /// Its name.
    pub name: String,
    /// Where its earnings go.
    pub payout: AccountId,
    /// What one upload through it costs.
    pub price_per_put: Amount,
    /// The next nonce the owner must use.
    pub next_nonce: u64,
    /// Fees collected since the last epoch paid them out.
    pub unpaid_fees: Amount,
    /// What store payments through it paid the farmers beyond its fees, less what its
    /// use has earned it: the most its use can still earn.
    pub use_allowance: Amount,
    /// Everything paid to it so far.
    pub lifetime_earnings: Amount,
    /// Uses already paid for (agreed running total).
    pub usage_paid: u64,
}

/// Why an app command was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The signature or a field is wrong.
    #[error("the command is not signed by its owner or names an impossible account")]
    Invalid,
    /// The app exists already (a second registration).
    #[error("the app is registered already")]
    Exists,
    /// A registration without its fee: none, too little, from another account, to
    /// another account than the pool, or for another app.
    #[error("a registration needs a certified payment of {APP_REGISTRATION_FEE} credits from the owner to the pool with the memo `app registration APP`")]
    Unpaid,
    /// The section keeps [`MAX_APPS`] apps already.
    #[error("the section keeps {MAX_APPS} apps already")]
    Full,
    /// There is no such app (a change before the registration, or another owner's).
    #[error("no such app of this owner")]
    Unknown,
    /// The nonce is not the next one: a replay, or one out of order.
    #[error("nonce {got} is not the next, {expected}")]
    Nonce {
        /// The next nonce.
        expected: u64,
        /// The command's.
        got: u64,
    },
}

impl SignedAppCommand {
    /// For a registration, whether its fee pays the pool `pool` enough, from the owner,
    /// for this app (the certificate's votes are the caller's to check); other commands
    /// need none.
    pub fn check_fee(&self, pool: &AccountId) -> Result<(), AppError> {
        if !matches!(self.command.action, AppAction::Register { .. }) {
            return Ok(());
        }
        let order = &self.fee.as_ref().ok_or(AppError::Unpaid)?.order;
        let paid = order.from == self.command.owner
            && order.to == *pool
            && order.amount >= APP_REGISTRATION_FEE
            && order.hidden.is_none()
            && order.memo == registration_memo(&self.command.app());
        paid.then_some(()).ok_or(AppError::Unpaid)
    }
}

/// Applies an owner's command to the apps, or says why not (changing nothing). A
/// registration's fee must already have been checked ([`SignedAppCommand::check_fee`]).
pub fn apply_command(apps: &mut BTreeMap<AppId, App>, signed: &SignedAppCommand) -> Result<AppId, AppError> {
    if !signed.is_valid() {
        return Err(AppError::Invalid);
    }
    let command = &signed.command;
    let id = command.app();
    match (&command.action, apps.get_mut(&id)) {
        (AppAction::Register { payout, price_per_put }, None) => {
            if command.nonce != 0 {
                return Err(AppError::Nonce { expected: 0, got: command.nonce });
            }
            if apps.len() >= MAX_APPS {
                return Err(AppError::Full);
            }
            apps.insert(
                id,
                App {
                    owner: command.owner,
                    name: command.name.clone(),
                    payout: *payout,
                    price_per_put: *price_per_put,
                    next_nonce: 1,
                    unpaid_fees: Amount::ZERO,
                    use_allowance: Amount::ZERO,
                    lifetime_earnings: Amount::ZERO,
                    usage_paid: 0,
                },
            );
        }
        (AppAction::Register { .. }, Some(_)) => return Err(AppError::Exists),
        (_, None) => return Err(AppError::Unknown),
        (action, Some(app)) => {
            if command.nonce != app.next_nonce {
                return Err(AppError::Nonce { expected: app.next_nonce, got: command.nonce });
            }
            app.next_nonce += 1;
            match action {
                AppAction::SetPrice(price) => app.price_per_put = *price,
                AppAction::SetPayout(payout) => app.payout = *payout,
                AppAction::Register { .. } => {}
            }
        }
    }
    Ok(id)
}

/// Uses of each app the section agrees on from the elders' reports: for each app, the
/// largest count that at least `quorum` of the reports reach. One elder, or any fewer
/// than a quorum, claiming use nobody else saw moves nothing.
pub fn agreed_usage(reports: &[&BTreeMap<AppId, u64>], quorum: usize) -> BTreeMap<AppId, u64> {
    if quorum == 0 || reports.len() < quorum {
        return BTreeMap::new();
    }
    let apps: BTreeSet<AppId> = reports.iter().flat_map(|report| report.keys().copied()).collect();
    apps.into_iter()
        .filter_map(|app| {
            let mut counts: Vec<u64> = reports.iter().map(|report| report.get(&app).copied().unwrap_or(0)).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let agreed = counts[quorum - 1];
            (agreed > 0).then_some((app, agreed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::key;

    fn register(owner: &SigningKey, name: &str, price: u64) -> SignedAppCommand {
        AppCommand {
            network: Digest::default(),
            owner: AccountId::of(owner),
            name: name.into(),
            nonce: 0,
            action: AppAction::Register {
                payout: AccountId::of(owner),
                price_per_put: Amount::from_nanos(price).expect("amount"),
            },
        }
        .sign(owner)
    }

    #[test]
    fn every_field_of_a_command_is_signed() {
        let (owner, other) = (AccountId::of(&key(81, 1)), AccountId::of(&key(81, 2)));
        let network = Digest::default();
        let base =
            AppCommand { network, owner, name: "photos".into(), nonce: 3, action: AppAction::SetPrice(Amount::ZERO) };
        let variants = [
            AppCommand { owner: other, ..base.clone() },
            AppCommand { network: Digest([1; 32]), ..base.clone() },
            AppCommand { name: "photo".into(), ..base.clone() },
            AppCommand { nonce: 4, ..base.clone() },
            AppCommand { action: AppAction::SetPrice(Amount::from_nanos(1).expect("amount")), ..base.clone() },
            AppCommand { action: AppAction::SetPayout(owner), ..base.clone() },
            AppCommand { action: AppAction::Register { payout: owner, price_per_put: Amount::ZERO }, ..base.clone() },
        ];
        let mut digests: BTreeSet<Digest> = variants.iter().map(AppCommand::digest).collect();
        digests.insert(base.digest());
        assert_eq!(digests.len(), variants.len() + 1, "two different commands share a digest");
    }

    #[test]
    fn only_the_owner_changes_an_app_and_each_command_applies_once() {
        let (owner, other) = (key(80, 1), key(80, 2));
        let mut apps = BTreeMap::new();
        let id = apply_command(&mut apps, &register(&owner, "photos", 5)).expect("registered");
        assert_eq!(id, AppId::of(&AccountId::of(&owner), "photos"));
        assert_eq!(apply_command(&mut apps, &register(&owner, "photos", 9)), Err(AppError::Exists));

        let price = |signer: &SigningKey, owner: &SigningKey, nonce: u64, nanos: u64| {
            AppCommand {
                network: Digest::default(),
                owner: AccountId::of(owner),
                name: "photos".into(),
                nonce,
                action: AppAction::SetPrice(Amount::from_nanos(nanos).expect("amount")),
            }
            .sign(signer)
        };
        assert_eq!(apply_command(&mut apps, &price(&other, &owner, 1, 1)), Err(AppError::Invalid), "not the owner");
        assert_eq!(
            apply_command(&mut apps, &price(&other, &other, 0, 1)),
            Err(AppError::Unknown),
            "another owner names another app"
        );
        let change = price(&owner, &owner, 1, 7);
        apply_command(&mut apps, &change).expect("the owner's change");
        assert_eq!(apply_command(&mut apps, &change), Err(AppError::Nonce { expected: 2, got: 1 }), "a replay");
        assert_eq!(apps[&id].price_per_put, Amount::from_nanos(7).expect("amount"));

        let mut tampered = price(&owner, &owner, 2, 1);
        tampered.command.action = AppAction::SetPayout(AccountId::of(&other));
        assert_eq!(apply_command(&mut apps, &tampered), Err(AppError::Invalid));
        assert_eq!(apps[&id].payout, AccountId::of(&owner));
    }

    /// A registration is paid by its owner, to the pool, enough, for this app: a fee
    /// from someone else, too small, elsewhere or for another app registers nothing; and
    /// however many are paid, the section keeps at most MAX_APPS.
    #[test]
    fn a_registration_needs_its_own_fee_and_the_apps_stay_bounded() {
        let (owner, other) = (key(82, 1), key(82, 2));
        let pool = crate::economics::pool_account("");
        let mut command = register(&owner, "photos", 5);
        let app = command.command.app();
        let fee = |from: &SigningKey, to: AccountId, amount: Amount, memo: String| Certificate {
            order: crate::TransferOrder {
                network: Digest::default(),
                from: AccountId::of(from),
                to,
                amount,
                sequence: 0,
                app: None,
                memo,
                hidden: None,
            },
            votes: vec![],
        };
        assert_eq!(command.check_fee(&pool), Err(AppError::Unpaid), "no fee");
        let memo = registration_memo(&app);
        let small = Amount::from_nanos(APP_REGISTRATION_FEE.nanos() - 1).expect("amount");
        let other_app = registration_memo(&AppId::of(&AccountId::of(&owner), "video"));
        for wrong in [
            fee(&other, pool, APP_REGISTRATION_FEE, memo.clone()),
            fee(&owner, AccountId::of(&other), APP_REGISTRATION_FEE, memo.clone()),
            fee(&owner, pool, small, memo.clone()),
            fee(&owner, pool, APP_REGISTRATION_FEE, other_app),
        ] {
            command.fee = Some(wrong);
            assert_eq!(command.check_fee(&pool), Err(AppError::Unpaid));
        }
        command.fee = Some(fee(&owner, pool, APP_REGISTRATION_FEE, memo));
        assert_eq!(command.check_fee(&pool), Ok(()));

        let mut apps = BTreeMap::new();
        for n in 0..MAX_APPS {
            apply_command(&mut apps, &register(&owner, &format!("app {n}"), 0)).expect("registered");
        }
        assert_eq!(apply_command(&mut apps, &register(&owner, "one more", 0)), Err(AppError::Full));
        assert_eq!(apps.len(), MAX_APPS);
    }

    #[test]
    fn use_counts_only_as_far_as_a_quorum_of_reports_agree() {
        let app = AppId([1; 32]);
        let honest: BTreeMap<AppId, u64> = [(app, 10)].into();
        let liar: BTreeMap<AppId, u64> = [(app, 1_000_000), (AppId([2; 32]), 500)].into();
        let silent = BTreeMap::new();
        let usage = agreed_usage(&[&honest, &honest, &honest, &honest, &liar], 5);
        assert_eq!(usage.get(&app), Some(&10), "the liar cannot raise it");
        assert_eq!(usage.get(&AppId([2; 32])), None, "nor invent an app's use");
        assert!(agreed_usage(&[&silent, &silent, &silent, &silent, &liar], 5).is_empty());
        assert!(agreed_usage(&[&honest], 5).is_empty(), "fewer reports than a quorum");
    }
}
