//! What the ledger's endpoints answer: accounts, history, transfers, supply, the section's
//! elders and the node's health.

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
    /// The sum of every balance; equals `genesis + minted`, checked on every call.
    pub circulating: Amount,
    /// Epoch records applied.
    pub epochs: usize,
}

/// `GET /v1/section`: the elders a client checks certificates against.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SectionView {
    /// The section's prefix of the XOR address space, in bits; empty while one section
    /// covers it all.
    pub prefix: String,
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
