//! What the storage endpoints take and answer: quotes, chunk uploads with their payment,
//! holders, and farmers as audits see them.

use acre_ledger::{AccountId, Amount, AppId, Certificate, Digest};
use acre_proofs::audit::Outcome;
use acre_proofs::ChunkAddress;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Placed {
    /// The chunk.
    #[schema(value_type = String)]
    pub address: ChunkAddress,
    /// Its size.
    pub size: u64,
    /// The members that hold it, closest first.
    pub holders: Vec<AccountId>,
    /// Whether the section held it already (and nothing was charged).
    pub already_stored: bool,
}

/// The section's price for storing some bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    /// The bytes quoted.
    pub bytes: u64,
    /// The price, or `None` when the section is full.
    pub price: Option<Amount>,
    /// Where store payments go.
    pub pool: AccountId,
    /// Bytes of chunks the section's holders keep (every copy).
    pub used: u64,
    /// Bytes they offer.
    pub capacity: u64,
    /// How long the section honours this price, in seconds.
    pub valid_for_seconds: u64,
    /// The app quoted for, with its price per upload (paid on top, with the store cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub app: Option<AppId>,
    /// The app's price per upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_price: Option<Amount>,
}

/// A holder as an elder's audits see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FarmerView {
    /// The node.
    pub node: AccountId,
    /// Chunks it must hold.
    pub chunks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// What it last said it holds and offers.
    pub used: Option<u64>,
    /// Its capacity, as it last said.
    pub capacity: Option<u64>,
    /// Audits by outcome, as this elder ran them.
    pub challenges: ChallengeTally,
    /// The last audit.
    pub last: Option<AuditRecord>,
}

/// Audit outcomes counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChallengeTally {
    /// Every block proven.
    pub passed: u64,
    /// Answers that did not prove the blocks.
    pub wrong_bytes: u64,
    /// Answers saying a chunk is not held.
    pub missing: u64,
    /// Proofs that came after the answer deadline.
    pub late: u64,
    /// No answer in time.
    pub timeouts: u64,
    /// No answer, while the holder was (re)starting: not counted against it.
    pub excused: u64,
}

impl ChallengeTally {
    /// Counts one audit's outcome.
    pub fn add(&mut self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Passed => &mut self.passed,
            Outcome::WrongBytes => &mut self.wrong_bytes,
            Outcome::Missing => &mut self.missing,
            Outcome::Late => &mut self.late,
            Outcome::Timeout => &mut self.timeouts,
            Outcome::Excused => &mut self.excused,
        };
        *counter += 1;
    }

    /// Audits the holder failed: every outcome but passed and excused.
    pub fn failed(&self) -> u64 {
        self.wrong_bytes + self.missing + self.late + self.timeouts
    }

    /// The two tallies together.
    pub fn merged(self, other: &ChallengeTally) -> ChallengeTally {
        ChallengeTally {
            passed: self.passed + other.passed,
            wrong_bytes: self.wrong_bytes + other.wrong_bytes,
            missing: self.missing + other.missing,
            late: self.late + other.late,
            timeouts: self.timeouts + other.timeouts,
            excused: self.excused + other.excused,
        }
    }
}

/// One audit's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// The challenge round (its nonce).
    pub round: u64,
    /// What it showed.
    #[schema(value_type = String)]
    pub outcome: Outcome,
    /// How long the answer took, in milliseconds.
    pub latency_ms: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Chunks challenged.
    pub chunks: usize,
}

/// A store payment the node accepted: each chunk it lists may now be uploaded raw with
/// `PUT /v1/chunks/{address}?payment={id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AcceptedPayment {
    /// The payment's certificate id.
    #[schema(value_type = String)]
    pub id: Digest,
    /// How many chunks it pays for.
    pub chunks: usize,
}

/// `POST /v1/payments`: a store payment, its certificate and the chunks its memo names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StorePayment {
    /// The certified transfer.
    pub certificate: Certificate,
    /// Every chunk the payment is for, in the order its memo hashes them.
    pub chunks: Vec<ChunkEntry>,
}

/// A chunk named with its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChunkEntry {
    /// Its address (BLAKE3, hex).
    #[schema(value_type = String)]
    pub address: ChunkAddress,
    /// Its size in bytes.
    pub size: u64,
}

/// `GET /v1/chunks/{address}/holders`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HoldersView {
    /// The chunk.
    #[schema(value_type = String)]
    pub address: ChunkAddress,
    /// Its size, if the section has it registered.
    pub size: Option<u64>,
    /// The members that must hold it, closest first.
    pub holders: Vec<HolderView>,
}

/// One holder of a chunk.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HolderView {
    /// The member.
    pub node: AccountId,
    /// Whether it says it holds the chunk (`null`: it did not answer).
    pub held: Option<bool>,
}
