//! What the farming endpoints answer: closed epochs, farmers' statements and the
//! section's members.

use acre_ledger::{AccountId, Amount, Digest, EpochRecord, SignatureBytes};

use crate::storage::ChallengeTally;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A farmer's statement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    /// The farmer.
    pub node: AccountId,
    /// One line per closed epoch in the range.
    pub epochs: Vec<StatementLine>,
    /// The sum of the lines' rewards.
    pub total_reward: Amount,
}

/// One member of the section.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// Its node id.
    pub node: AccountId,
    /// Epochs served.
    pub age: u64,
    /// Where its rewards go.
    pub reward_address: AccountId,
    /// Whether it is an elder.
    pub elder: bool,
    /// Where it sits in the XOR space (hex), assigned by the section at the first epoch
    /// close after it joined (none until then): it holds, is audited on and is paid for
    /// the chunks whose 4 closest names include it.
    pub placement_name: Option<Digest>,
}

/// The section's members by the agreed log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MembersView {
    /// The epoch open.
    pub epoch: u64,
    /// The state hash as of the last epoch closed or membership change this node applied.
    pub state_hash: Digest,
    /// Credits in existence by the log (genesis plus mints).
    pub supply: Amount,
    /// Store payments waiting in the pool.
    pub pool: Amount,
    /// Every member.
    pub members: Vec<MemberView>,
}

/// A closed epoch as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EpochView {
    /// The record.
    #[schema(value_type = Object)]
    pub record: EpochRecord,
    /// The section state's hash after the close.
    pub state_hash: Digest,
    /// Elders' signatures over the epoch, the record's id and the state hash.
    pub signatures: Vec<ElderSignatureView>,
    /// Items ordered in the epoch's session.
    pub log_items: usize,
}

/// One elder's signature on an epoch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ElderSignatureView {
    /// The elder.
    pub elder: AccountId,
    /// Its signature.
    pub signature: SignatureBytes,
}

/// A farmer's line for one epoch, for its statement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatementLine {
    /// The epoch.
    pub epoch: u64,
    /// Bytes it proved to a quorum of elders.
    pub proven_bytes: u64,
    /// Chunks it proved.
    pub proven_chunks: u64,
    /// Challenges by result, as this node's audits saw them.
    pub challenges: ChallengeTally,
    /// Its reward.
    pub reward: Amount,
    /// Where the reward went.
    pub reward_address: Option<AccountId>,
}
