//! The one error type every ledger handler returns. Each variant has a stable `code`
//! ([`LedgerError::code`]) that the API shows, and the whole value crosses the wire
//! between nodes unchanged, in any serde format (it is externally tagged, so binary
//! encodings carry it as well as JSON).

use serde::{Deserialize, Serialize};

use crate::{AccountId, Amount, Digest};

/// Why the ledger refused a message. Each variant's `code` is part of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerError {
    /// The order moves nothing.
    #[error("the amount must be above zero")]
    ZeroAmount,
    /// An epoch record whose items do not add up to what it says it pays.
    #[error("the items of the record for epoch {epoch} do not add up to its total")]
    EpochUnbalanced {
        /// The epoch.
        epoch: u64,
    },
    /// A different record was already applied for this epoch.
    #[error("a different record for epoch {epoch} was applied here")]
    EpochConflict {
        /// The epoch.
        epoch: u64,
    },
    /// An account cannot pay itself: it would only burn a sequence number.
    #[error("an account cannot send to itself")]
    SelfTransfer,
    /// The memo is longer than the ledger keeps.
    #[error("the memo is {len} bytes; at most {max} are allowed")]
    MemoTooLong {
        /// The memo's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes of an account are not an ed25519 public key; nobody could ever spend
    /// what was sent there.
    #[error("{account} is not a valid public key")]
    InvalidAccount {
        /// The offending account.
        account: AccountId,
    },
    /// The owner's signature over the order does not verify.
    #[error("the order's signature does not verify against its sender")]
    InvalidSignature,
    /// The sender has never held credits.
    #[error("account {account} is unknown")]
    UnknownAccount {
        /// The account.
        account: AccountId,
    },
    /// The order's sequence is not the sender's next one.
    #[error("sequence {got} is not the next one for this account ({expected})")]
    UnexpectedSequence {
        /// The account's next sequence.
        expected: u64,
        /// The sequence in the order.
        got: u64,
    },
    /// This elder already voted for a different order at this sequence. The owner
    /// signed two orders for one sequence; neither may ever be certified by this elder.
    #[error("a different order ({voted}) already holds this sequence")]
    ConflictingOrder {
        /// The digest of the order this elder voted for.
        voted: Digest,
    },
    /// The balance does not cover the amount.
    #[error("balance {balance} does not cover {amount}")]
    InsufficientBalance {
        /// What the account holds.
        balance: Amount,
        /// What the order moves.
        amount: Amount,
    },
    /// A credit would take a balance or the supply above the cap.
    #[error("the amount would exceed the supply cap")]
    AmountOverflow,
    /// A certificate has fewer distinct valid votes than the quorum.
    #[error("{got} votes; a certificate needs {quorum}")]
    NotEnoughVotes {
        /// Votes present.
        got: usize,
        /// Votes needed.
        quorum: usize,
    },
    /// A certificate names the same elder twice.
    #[error("elder {elder} voted twice in one certificate")]
    DuplicateVoter {
        /// The repeated elder.
        elder: AccountId,
    },
    /// A vote comes from a key outside the committee.
    #[error("{elder} is not an elder of this committee")]
    UnknownVoter {
        /// The outsider.
        elder: AccountId,
    },
    /// A vote does not verify, or signs another order.
    #[error("the vote of {elder} does not verify")]
    InvalidVote {
        /// The elder whose vote failed.
        elder: AccountId,
    },
    /// A certificate skips sequences this elder has not applied yet; apply the missing
    /// certificates first (they are final elsewhere).
    #[error("certificates before sequence {expected} are missing here")]
    MissingPredecessor {
        /// The sequence this elder would apply next.
        expected: u64,
    },
    /// A certified debit exceeds the balance here because credits the quorum already saw
    /// have not reached this elder yet; apply those certificates first.
    #[error("credits that fund this certificate have not been applied here yet")]
    CreditsNotYetApplied,
    /// Genesis was already made with other allocations.
    #[error("genesis was already made with other allocations")]
    GenesisConflict,
    /// Genesis allocations are empty, repeat an account, or hold a zero amount.
    #[error("invalid genesis: {reason}")]
    InvalidGenesis {
        /// What is wrong.
        reason: String,
    },
    /// A hidden order whose fields do not fit its kind, or whose commitments are not
    /// points of the group.
    #[error("invalid confidential order: {reason}")]
    InvalidConfidential {
        /// What is wrong.
        reason: String,
    },
    /// A hidden order's range proof does not verify for it: a value out of range, a
    /// proof lifted from another order, or altered bytes.
    #[error("the range proof does not verify for this order")]
    InvalidRangeProof,
    /// The spendable commitment a hidden order states is not the sender's commitment
    /// after it (the one before, plus what it folds in, minus what it moves): it spends
    /// what the sender does not hold, or was made against another state.
    #[error("the order's spendable commitment does not follow from the sender's hidden balance")]
    HiddenMismatch,
    /// A hidden order folds in an incoming credit this elder does not hold: not applied
    /// here yet, or already folded in.
    #[error("incoming credit {certificate} is not held here")]
    UnknownIncoming {
        /// The certificate that made the credit.
        certificate: Digest,
    },
    /// The order names another network: signed for one network, it is never valid on
    /// another where the same key holds credits.
    #[error("the order is for network {got}, not this one ({expected})")]
    WrongNetwork {
        /// This network's identity.
        expected: Digest,
        /// The order's.
        got: Digest,
    },
    /// The durable store failed; nothing was acknowledged.
    #[error("storage failed: {message}")]
    Storage {
        /// The store's own message.
        message: String,
    },
}

impl LedgerError {
    /// The stable machine-readable code (the `code` field on the wire).
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::ZeroAmount => "zero_amount",
            LedgerError::SelfTransfer => "self_transfer",
            LedgerError::MemoTooLong { .. } => "memo_too_long",
            LedgerError::InvalidAccount { .. } => "invalid_account",
            LedgerError::InvalidSignature => "invalid_signature",
            LedgerError::UnknownAccount { .. } => "unknown_account",
            LedgerError::UnexpectedSequence { .. } => "unexpected_sequence",
            LedgerError::ConflictingOrder { .. } => "conflicting_order",
            LedgerError::InsufficientBalance { .. } => "insufficient_balance",
            LedgerError::AmountOverflow => "amount_overflow",
            LedgerError::NotEnoughVotes { .. } => "not_enough_votes",
            LedgerError::DuplicateVoter { .. } => "duplicate_voter",
            LedgerError::UnknownVoter { .. } => "unknown_voter",
            LedgerError::InvalidVote { .. } => "invalid_vote",
            LedgerError::MissingPredecessor { .. } => "missing_predecessor",
            LedgerError::CreditsNotYetApplied => "credits_not_yet_applied",
            LedgerError::GenesisConflict => "genesis_conflict",
            LedgerError::EpochConflict { .. } => "epoch_conflict",
            LedgerError::EpochUnbalanced { .. } => "epoch_unbalanced",
            LedgerError::InvalidGenesis { .. } => "invalid_genesis",
            LedgerError::InvalidConfidential { .. } => "invalid_confidential",
            LedgerError::InvalidRangeProof => "invalid_range_proof",
            LedgerError::HiddenMismatch => "hidden_mismatch",
            LedgerError::UnknownIncoming { .. } => "unknown_incoming",
            LedgerError::WrongNetwork { .. } => "wrong_network",
            LedgerError::Storage { .. } => "storage",
        }
    }

    /// Whether the same message may succeed later without change: this elder has not yet
    /// applied certificates that are final elsewhere (an order ahead of its sequence, a
    /// balance still missing credits, a certificate's predecessors), or its disk failed.
    /// Everything else is final for that message.
    pub fn is_retryable(&self) -> bool {
        match self {
            LedgerError::UnexpectedSequence { expected, got } => got > expected,
            LedgerError::InsufficientBalance { .. }
            | LedgerError::MissingPredecessor { .. }
            | LedgerError::CreditsNotYetApplied
            | LedgerError::UnknownIncoming { .. }
            | LedgerError::Storage { .. } => true,
            _ => false,
        }
    }
}

impl From<crate::confidential::ConfidentialError> for LedgerError {
    fn from(error: crate::confidential::ConfidentialError) -> Self {
        use crate::confidential::ConfidentialError;
        match error {
            ConfidentialError::InvalidRangeProof => LedgerError::InvalidRangeProof,
            other => LedgerError::InvalidConfidential { reason: other.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_round_trip_through_json_and_postcard() {
        let errors = [
            LedgerError::ZeroAmount,
            LedgerError::UnexpectedSequence { expected: 2, got: 5 },
            LedgerError::NotEnoughVotes { got: 2, quorum: 3 },
            LedgerError::Storage { message: "disk full".into() },
        ];
        for error in errors {
            let json = serde_json::to_value(&error).expect("json");
            assert_eq!(serde_json::from_value::<LedgerError>(json).expect("parse"), error);
            let bytes = postcard::to_stdvec(&error).expect("postcard");
            assert_eq!(postcard::from_bytes::<LedgerError>(&bytes).expect("decode"), error);
        }
    }
}
