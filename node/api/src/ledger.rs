//! What the ledger's endpoints answer: accounts, history, transfers, supply, the section's
//! elders and the node's health.

use acre_ledger::confidential::{Commitment, HiddenAccount, IncomingCredit, SupplyAudit};
use acre_ledger::{AccountId, Amount, Certificate, Digest, HistoryEntry, SignedOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// "ok" while the ledger answers.
    pub status: String,
    /// This node's id.
    pub node: AccountId,
    /// Accounts the ledger holds.
    pub accounts: usize,
    /// The ledger's state hash, to compare with other elders.
    pub state_hash: Digest,
    /// Peers connected now.
    pub peers: usize,
}

/// `GET /v1/accounts/{address}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// The account.
    pub address: AccountId,
    /// Credits held.
    pub balance: Amount,
    /// The sequence its next order must use.
    pub next_sequence: u64,
    /// The order this node voted for at that sequence, not yet certified.
    pub pending_order: Option<SignedOrder>,
}

/// `GET /v1/accounts/{address}/history`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    /// Entries from the cursor on, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Cursor of the next page, absent on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /v1/supply`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SupplyView {
    /// Credits created at genesis.
    pub genesis: Amount,
    /// Credits minted by epoch records since.
    pub minted: Amount,
    /// The most credits that can ever exist.
    pub cap: Amount,
    /// The sum of every public balance.
    pub circulating: Amount,
    /// What is held in hidden balances: `genesis + minted − circulating`. Checked on
    /// every call: the ledger's commitments must sum to a commitment to exactly this
    /// with no blinding (`GET /v1/supply/audit` gives the data to check it yourself).
    pub hidden: Amount,
    /// The sum of every commitment the ledger holds.
    #[schema(value_type = String)]
    pub commitment_sum: Commitment,
    /// Epoch records applied.
    pub epochs: usize,
}

/// `GET /v1/supply/audit`: every public balance and every commitment, so anyone can run
/// the supply audit without trusting the node's own check.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SupplyAuditView {
    /// Credits created at genesis.
    pub genesis: Amount,
    /// Credits minted by epoch records since.
    pub minted: Amount,
    /// Every account's public balance.
    pub balances: Vec<BalanceLine>,
    /// Every spendable commitment and incoming credit.
    pub commitments: Vec<CommitmentLine>,
    /// The node's own run of the audit over these figures.
    pub audit: SupplyAudit,
}

/// One account's public balance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalanceLine {
    /// The account.
    pub account: AccountId,
    /// Its public balance.
    pub balance: Amount,
}

/// One commitment the ledger holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommitmentLine {
    /// The account it belongs to.
    pub account: AccountId,
    /// The commitment.
    #[schema(value_type = String)]
    pub commitment: Commitment,
}

/// `GET /v1/accounts/{address}/hidden`: what an owner needs to open its hidden balance
/// and to make its next hidden order. Nothing here reveals an amount to anyone without
/// the owner's key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HiddenView {
    /// The account.
    pub address: AccountId,
    /// The network's identity, which a hidden order's range proof is bound to.
    pub network: Digest,
    /// The sequence the account's next order must use.
    pub next_sequence: u64,
    /// The spendable commitment with its opening sealed to the owner, once there is one.
    pub spendable: Option<HiddenAccount>,
    /// Hidden amounts sent to the account and not yet folded in.
    pub incoming: Vec<IncomingCredit>,
}

/// `GET /v1/section`: the elders a client checks certificates against.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SectionView {
    /// The section's prefix of the XOR address space, in bits; empty while one section
    /// covers it all.
    pub prefix: String,
    /// The network's identity, its genesis hash: every order must name it.
    pub network: Digest,
    /// This node's id.
    pub node: AccountId,
    /// "elder" if this node votes, else "member".
    pub role: String,
    /// This node's libp2p addresses.
    pub listen: Vec<String>,
    /// The elders.
    pub elders: Vec<ElderView>,
    /// Votes a certificate needs.
    pub quorum: usize,
}

/// One elder as this node sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ElderView {
    /// The elder's key.
    pub id: AccountId,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Addresses it is known at (none for this node itself: see `listen`).
    pub addresses: Vec<String>,
    /// Whether this node is connected to it now (always true for itself).
    pub connected: bool,
}

/// A certified transfer: the answer to `POST /v1/orders` and `GET /v1/transfers/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// The certificate's id (its order's digest).
    pub id: Digest,
    /// The certificate.
    pub certificate: Certificate,
}
