//! What the apps' endpoints take and answer.

use acre_ledger::{AccountId, Amount, AppId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A command accepted for ordering.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// The app it is for.
    #[schema(value_type = String)]
    pub app: AppId,
    /// `proposed`: it is in the section log's queue; `GET /v1/apps/{id}` shows it once ordered.
    pub status: String,
}

/// An app as the section log says.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    /// Its id: the hash of owner and name.
    #[schema(value_type = String)]
    pub id: AppId,
    /// Its owner.
    pub owner: AccountId,
    /// Its name.
    pub name: String,
    /// Where its earnings go.
    pub payout: AccountId,
    /// What one upload through it costs, on top of the store cost.
    pub price_per_put: Amount,
    /// The nonce the owner's next command must carry.
    pub next_nonce: u64,
    /// Fees collected this epoch, paid out when it closes.
    pub unpaid_fees: Amount,
    /// What store payments through it paid the farmers beyond its fees, less what its use
    /// has earned: the most its use can still earn. Reads cost their readers nothing, so
    /// use earns only against what was paid in.
    pub use_allowance: Amount,
    /// Uses agreed in the last closed epoch.
    pub usage_last_epoch: u64,
    /// Everything paid to it so far.
    pub lifetime_earnings: Amount,
}

/// One epoch's payout to an app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutLine {
    /// The epoch.
    pub epoch: u64,
    /// Where it went.
    pub payout: AccountId,
    /// Fees its users paid.
    pub fees: Amount,
    /// Uses a quorum of elders agreed on.
    pub usage: u64,
    /// Its part of the apps' share of the emission.
    pub usage_share: Amount,
    /// `fees + usage_share`.
    pub amount: Amount,
}

/// A page of an app's payouts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutsPage {
    /// Oldest first.
    pub payouts: Vec<PayoutLine>,
    /// The cursor of the next page, if there is more.
    pub next_cursor: Option<u64>,
}
