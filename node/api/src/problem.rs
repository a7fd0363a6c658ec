//! Problem documents (RFC 9457): every refusal the API gives, with a code from one closed
//! list so clients match on a value the compiler checks rather than on text.

use acre_ledger::apps::AppError;
use acre_ledger::economics::StorePaymentError;
use acre_ledger::{GatherError, LedgerError};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type every refusal is answered with.
pub const PROBLEM: &str = "application/problem+json";

/// Why a request was refused: stable, machine-readable, `snake_case` in JSON. A client
/// reading a code from a newer node that it does not know gets [`ProblemCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // Each code is explained by the detail that comes with it.
pub enum ProblemCode {
    // Requests the API cannot read.
    InvalidJson,
    PayloadTooLarge,
    InvalidPath,
    InvalidQuery,
    InvalidRange,
    InvalidAddress,
    InvalidId,
    InvalidNode,
    InvalidEpoch,
    InvalidApp,
    InvalidContent,
    NotFound,
    MethodNotAllowed,
    Timeout,
    // The node's own state.
    Starting,
    Unavailable,
    Internal,
    Storage,
    NoQuorum,
    // Orders and certificates, as the ledger refuses them.
    ZeroAmount,
    SelfTransfer,
    MemoTooLong,
    InvalidAccount,
    InvalidSignature,
    UnknownAccount,
    UnexpectedSequence,
    ConflictingOrder,
    InsufficientBalance,
    AmountOverflow,
    NotEnoughVotes,
    DuplicateVoter,
    UnknownVoter,
    InvalidVote,
    MissingPredecessor,
    CreditsNotYetApplied,
    GenesisConflict,
    EpochConflict,
    EpochUnbalanced,
    InvalidGenesis,
    WrongNetwork,
    UnknownTransfer,
    // Confidential orders.
    InvalidConfidential,
    InvalidRangeProof,
    HiddenMismatch,
    UnknownIncoming,
    // Storage.
    InvalidChunk,
    AddressMismatch,
    PaymentRequired,
    UnknownPayment,
    InvalidPaymentCertificate,
    PaymentWrongAccount,
    PaymentMemoMismatch,
    PaymentNotForChunk,
    PaymentTooSmall,
    SectionFull,
    HolderFull,
    HoldersUnavailable,
    UnknownChunk,
    UnknownFarmer,
    // Farming and apps.
    UnknownEpoch,
    UnknownApp,
    AppExists,
    StaleNonce,
    AppUnpaid,
    TooManyApps,
    /// A code this client does not know (a newer node's).
    #[serde(other)]
    Other,
}

impl ProblemCode {
    /// The code as it appears in JSON.
    pub fn as_str(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(text)) => text,
            _ => "other".to_owned(),
        }
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl From<&LedgerError> for ProblemCode {
    fn from(error: &LedgerError) -> Self {
        match error {
            LedgerError::ZeroAmount => ProblemCode::ZeroAmount,
            LedgerError::SelfTransfer => ProblemCode::SelfTransfer,
            LedgerError::MemoTooLong { .. } => ProblemCode::MemoTooLong,
            LedgerError::InvalidAccount { .. } => ProblemCode::InvalidAccount,
            LedgerError::InvalidSignature => ProblemCode::InvalidSignature,
            LedgerError::UnknownAccount { .. } => ProblemCode::UnknownAccount,
            LedgerError::UnexpectedSequence { .. } => ProblemCode::UnexpectedSequence,
            LedgerError::ConflictingOrder { .. } => ProblemCode::ConflictingOrder,
            LedgerError::InsufficientBalance { .. } => ProblemCode::InsufficientBalance,
            LedgerError::AmountOverflow => ProblemCode::AmountOverflow,
            LedgerError::NotEnoughVotes { .. } => ProblemCode::NotEnoughVotes,
            LedgerError::DuplicateVoter { .. } => ProblemCode::DuplicateVoter,
            LedgerError::UnknownVoter { .. } => ProblemCode::UnknownVoter,
            LedgerError::InvalidVote { .. } => ProblemCode::InvalidVote,
            LedgerError::MissingPredecessor { .. } => ProblemCode::MissingPredecessor,
            LedgerError::CreditsNotYetApplied => ProblemCode::CreditsNotYetApplied,
            LedgerError::GenesisConflict => ProblemCode::GenesisConflict,
            LedgerError::EpochConflict { .. } => ProblemCode::EpochConflict,
            LedgerError::EpochUnbalanced { .. } => ProblemCode::EpochUnbalanced,
            LedgerError::InvalidGenesis { .. } => ProblemCode::InvalidGenesis,
            LedgerError::InvalidConfidential { .. } => ProblemCode::InvalidConfidential,
            LedgerError::InvalidRangeProof => ProblemCode::InvalidRangeProof,
            LedgerError::HiddenMismatch => ProblemCode::HiddenMismatch,
            LedgerError::UnknownIncoming { .. } => ProblemCode::UnknownIncoming,
            LedgerError::WrongNetwork { .. } => ProblemCode::WrongNetwork,
            LedgerError::Storage { .. } => ProblemCode::Storage,
        }
    }
}

impl From<&StorePaymentError> for ProblemCode {
    fn from(error: &StorePaymentError) -> Self {
        match error {
            StorePaymentError::WrongAccount { .. } => ProblemCode::PaymentWrongAccount,
            StorePaymentError::MemoMismatch => ProblemCode::PaymentMemoMismatch,
            StorePaymentError::NotForChunk => ProblemCode::PaymentNotForChunk,
            StorePaymentError::TooSmall { .. } => ProblemCode::PaymentTooSmall,
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The stable machine-readable code.
    pub code: ProblemCode,
}

impl Problem {
    /// A problem with `status`, stable `code` and a `detail` for this occurrence.
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:acre:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
        }
    }

    /// A failure of the node itself, not of the request.
    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, ProblemCode::Internal, detail)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.code)
    }
}

impl From<GatherError> for Problem {
    fn from(error: GatherError) -> Self {
        match error {
            GatherError::Refused(refusal) => refusal.into(),
            error @ GatherError::NoQuorum { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, ProblemCode::NoQuorum, format!("{error}; retry later"))
            }
        }
    }
}

impl From<LedgerError> for Problem {
    fn from(error: LedgerError) -> Self {
        let status = match &error {
            LedgerError::Storage { .. } => StatusCode::SERVICE_UNAVAILABLE,
            LedgerError::UnknownAccount { .. } => StatusCode::NOT_FOUND,
            LedgerError::ConflictingOrder { .. } | LedgerError::GenesisConflict => StatusCode::CONFLICT,
            error if error.is_retryable() => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let detail = match &error {
            // The store's own message names files and internals; it goes to the log instead.
            LedgerError::Storage { message } => {
                tracing::error!(%message, "ledger store failed");
                "the node's store failed; nothing was acknowledged, so the request may be retried".to_owned()
            }
            error => error.to_string(),
        };
        Problem::new(status, ProblemCode::from(&error), detail)
    }
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        let (status, code) = match error {
            AppError::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::InvalidSignature),
            AppError::Exists => (StatusCode::CONFLICT, ProblemCode::AppExists),
            AppError::Unpaid => (StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::AppUnpaid),
            AppError::Full => (StatusCode::CONFLICT, ProblemCode::TooManyApps),
            AppError::Unknown => (StatusCode::NOT_FOUND, ProblemCode::UnknownApp),
            AppError::Nonce { .. } => (StatusCode::CONFLICT, ProblemCode::StaleNonce),
        };
        Problem::new(status, code, error.to_string())
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match serde_json::to_vec(&self) {
            Ok(body) => (status, [(http::header::CONTENT_TYPE, PROBLEM)], body).into_response(),
            // A problem that cannot be encoded still answers with its status and says why,
            // never with an empty problem document.
            Err(error) => (status, format!("{}: {} ({error})", self.code, self.detail)).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_an_unknown_one_is_other() {
        let problem = Problem::new(StatusCode::NOT_FOUND, ProblemCode::UnknownAccount, "none");
        let json = serde_json::to_value(&problem).expect("json");
        assert_eq!(json["code"], "unknown_account");
        assert_eq!(json["type"], "urn:acre:problem:unknown_account");
        let newer: ProblemCode = serde_json::from_value(serde_json::json!("a_code_from_the_future")).expect("decodes");
        assert_eq!(newer, ProblemCode::Other);
    }

    #[test]
    fn every_ledger_refusal_keeps_the_code_the_ledger_gives_it() {
        let error =
            LedgerError::InsufficientBalance { balance: acre_ledger::Amount::ZERO, amount: acre_ledger::Amount::ZERO };
        assert_eq!(ProblemCode::from(&error).as_str(), error.code());
    }
}
