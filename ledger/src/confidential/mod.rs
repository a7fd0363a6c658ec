//! Confidential amounts: balances and transfers whose amounts are Pedersen commitments,
//! with Bulletproofs range proofs in place of the balance check, and a supply audit anyone
//! can run from public data. `specs/confidential.md` gives the construction and why it holds.
//!
//! An account may hold, beside its public balance, a *spendable* commitment that only its
//! owner's certified orders change, and *incoming* credits: commitments other accounts
//! sent it, each waiting under the id of the certificate that made it. Incoming credits
//! arrive at each elder in its own order, so an owner folds them in explicitly, naming
//! them in its next hidden order (`absorb`); every elder then computes the same new
//! spendable commitment, and the proof made for it verifies everywhere.
//!
//! Three moves cross or stay behind the boundary:
//! - *shield*: a public amount leaves the public balance into the owner's spendable
//!   commitment, unblinded (`a·B`), so the amount is public exactly there;
//! - *unshield*: a public amount leaves the spendable commitment (again `a·B`) for a
//!   public balance, with a range proof that what stays is not negative;
//! - *transfer*: a commitment to the amount leaves the sender's spendable commitment and
//!   becomes an incoming credit of the recipient, with one aggregated range proof that
//!   the amount and the sender's remainder are both in `[0, 2^64)`.
//!
//! Blindings only move between accounts, and the boundary moves are unblinded, so the sum
//! of all commitments is `H·B` with no blinding at all, where `H` is what the public
//! balances lack of genesis plus mints: [`audit`] checks exactly that.

mod build;
mod commitment;
mod proof;
mod sealed;
#[cfg(test)]
mod tests;

pub use build::{HiddenAction, HiddenSpend};
pub(crate) use commitment::pedersen;
pub use commitment::{Commitment, Opening};
pub use proof::{RangeProofBytes, MAX_PROOF_BYTES, RANGE_BITS};
pub use sealed::SealedOpening;

use serde::{Deserialize, Serialize};

use crate::{AccountId, Amount, Digest};

/// Most incoming credits one order may fold in: bounds the work an order asks of an elder.
pub const MAX_ABSORB: usize = 16;

/// Why a confidential order, commitment or opening is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfidentialError {
    /// The bytes are not a point of the group.
    #[error("a commitment is not a valid Ristretto point")]
    InvalidCommitment,
    /// The range proof does not verify for this order's commitments and statement:
    /// a value out of range, a proof made for another order, or altered bytes.
    #[error("the range proof does not verify for this order")]
    InvalidRangeProof,
    /// A sealed opening that does not open with this key, or opens to values that do
    /// not match their commitment.
    #[error("the sealed opening does not open this commitment")]
    WrongOpening,
    /// The recipient of a seal is not a public key.
    #[error("the recipient is not a valid public key")]
    InvalidRecipient,
    /// The order's fields do not fit its kind.
    #[error("{0}")]
    Malformed(&'static str),
    /// The owner's hidden balance does not cover what it would move.
    #[error("the hidden balance {available} does not cover {amount}")]
    NotEnoughHidden {
        /// What the owner holds hidden, incoming credits folded in included.
        available: Amount,
        /// What the order would move.
        amount: Amount,
    },
}

/// What a hidden order does, beyond what every order says.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenKind {
    /// The order's public `amount` leaves the sender's public balance for its own
    /// spendable commitment. `to` must be the sender.
    Shield,
    /// The order's public `amount` leaves the sender's spendable commitment for `to`'s
    /// public balance.
    Unshield,
    /// A hidden amount leaves the sender's spendable commitment for an incoming credit of
    /// `to`. The order's public `amount` must be zero.
    Transfer {
        /// The commitment to the amount.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Commitment,
        /// The amount's opening, sealed to the recipient.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        opening: SealedOpening,
    },
}

/// The confidential part of an order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HiddenMove {
    /// What moves.
    pub kind: HiddenKind,
    /// Incoming credits, by the id of the certificate that made each, folded into the
    /// spendable commitment by this order; at most [`MAX_ABSORB`].
    pub absorb: Vec<Digest>,
    /// The sender's spendable commitment after this order. Every elder computes it from
    /// the one before and refuses the order if it differs.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub spendable: Commitment,
    /// The opening of `spendable`, sealed to the sender, so its key alone recovers the
    /// hidden balance from the ledger.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub note: SealedOpening,
    /// The range proof; absent for a shield, which only adds.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub proof: Option<RangeProofBytes>,
}

impl HiddenMove {
    /// The commitments the range proof covers, in the order it covers them. A transfer's
    /// amount is proven less one nano (`C − 1·B` in `[0, 2^64)`), so it moves at least one
    /// nano: a hidden transfer of nothing would create accounts and credits for free.
    pub fn proven_commitments(&self) -> Result<Vec<Commitment>, ConfidentialError> {
        Ok(match &self.kind {
            HiddenKind::Shield => vec![],
            HiddenKind::Unshield => vec![self.spendable],
            HiddenKind::Transfer { amount, .. } => {
                let less_one = amount.point()? - Commitment::to_public(1).point()?;
                vec![Commitment::from_point(less_one), self.spendable]
            }
        })
    }

    /// The bytes the statement digest covers: everything but the proof.
    pub(crate) fn statement_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(200 + 32 * self.absorb.len());
        match &self.kind {
            HiddenKind::Shield => bytes.push(1),
            HiddenKind::Unshield => bytes.push(2),
            HiddenKind::Transfer { amount, opening } => {
                bytes.push(3);
                bytes.extend_from_slice(&amount.0);
                bytes.extend_from_slice(&opening.0);
            }
        }
        bytes.extend_from_slice(&(self.absorb.len() as u64).to_le_bytes());
        for id in &self.absorb {
            bytes.extend_from_slice(&id.0);
        }
        bytes.extend_from_slice(&self.spendable.0);
        bytes.extend_from_slice(&self.note.0);
        bytes
    }

    /// The checks that need no ledger state: fields that fit the kind, valid points, a
    /// bounded list of distinct credits, and the range proof for `statement` in
    /// `network`. The proof is the costly part; a node runs it off the ledger's thread.
    pub fn check(
        &self,
        network: &Digest,
        statement: &Digest,
        public_amount: Amount,
        from: &AccountId,
        to: &AccountId,
    ) -> Result<(), ConfidentialError> {
        if self.absorb.len() > MAX_ABSORB {
            return Err(ConfidentialError::Malformed("an order folds in at most 16 incoming credits"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if !self.absorb.iter().all(|id| seen.insert(*id)) {
            return Err(ConfidentialError::Malformed("an incoming credit is named twice"));
        }
        match &self.kind {
            HiddenKind::Shield if to != from => {
                return Err(ConfidentialError::Malformed("a shield credits the sender's own hidden balance"))
            }
            HiddenKind::Shield | HiddenKind::Unshield if public_amount.is_zero() => {
                return Err(ConfidentialError::Malformed("the amount crossing the boundary must be above zero"))
            }
            HiddenKind::Transfer { .. } if !public_amount.is_zero() => {
                return Err(ConfidentialError::Malformed("a confidential transfer's public amount must be zero"))
            }
            HiddenKind::Transfer { .. } if to == from => {
                return Err(ConfidentialError::Malformed("an account cannot send to itself"))
            }
            _ => {}
        }
        self.spendable.point()?;
        let proven = self.proven_commitments()?;
        match (&self.proof, proven.is_empty()) {
            (None, true) => Ok(()),
            (Some(proof), false) => proof.verify(network, statement, &proven),
            (None, false) => Err(ConfidentialError::Malformed("this order needs a range proof")),
            (Some(_), true) => Err(ConfidentialError::Malformed("a shield carries no range proof")),
        }
    }
}

/// The associated data of the note an order seals to its sender.
pub fn note_context(owner: &AccountId, sequence: u64) -> Vec<u8> {
    [b"acre note".as_slice(), &owner.0, &sequence.to_le_bytes()].concat()
}

/// The associated data of a transfer's opening sealed to its recipient.
pub fn opening_context(from: &AccountId, to: &AccountId, sequence: u64, amount: &Commitment) -> Vec<u8> {
    [b"acre amount".as_slice(), &from.0, &to.0, &sequence.to_le_bytes(), &amount.0].concat()
}

/// An account's spendable commitment as the ledger holds it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenAccount {
    /// The commitment.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub spendable: Commitment,
    /// Its opening sealed to the owner by the order that set it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub note: SealedOpening,
    /// That order's sequence, which the note's seal is bound to.
    pub sequence: u64,
}

impl HiddenAccount {
    /// Opens the spendable commitment with the owner's key, checking the opening.
    pub fn open(&self, key: &ed25519_dalek::SigningKey) -> Result<Opening, ConfidentialError> {
        let opening = self.note.open(key, &note_context(&AccountId::of(key), self.sequence))?;
        if !opening.opens(&self.spendable) {
            return Err(ConfidentialError::WrongOpening);
        }
        Ok(opening)
    }
}

/// A hidden amount sent to an account and not yet folded into its spendable commitment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingCredit {
    /// The certificate that made it: the name an order absorbs it by.
    pub certificate: Digest,
    /// The sender.
    pub from: AccountId,
    /// The sender's sequence it used.
    pub sequence: u64,
    /// The commitment to the amount.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Commitment,
    /// The amount's opening, sealed to the recipient by the sender.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub opening: SealedOpening,
}

impl IncomingCredit {
    /// Opens the credit with the recipient's key. A sender can seal a wrong opening (the
    /// ledger cannot read it to check); this refuses it, and a wallet then leaves that
    /// credit unabsorbed rather than make its own balance unopenable.
    pub fn open(&self, key: &ed25519_dalek::SigningKey) -> Result<Opening, ConfidentialError> {
        let context = opening_context(&self.from, &AccountId::of(key), self.sequence, &self.amount);
        let opening = self.opening.open(key, &context)?;
        if !opening.opens(&self.amount) {
            return Err(ConfidentialError::WrongOpening);
        }
        Ok(opening)
    }
}

/// The outcome of the supply audit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyAudit {
    /// Genesis plus every mint.
    pub issued: Amount,
    /// The sum of public balances.
    pub public: Amount,
    /// What must be hidden: `issued − public`.
    pub hidden: Amount,
    /// The sum of every spendable commitment and incoming credit.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub commitment_sum: Commitment,
    /// Whether `commitment_sum` is `hidden·B` with no blinding: then public plus hidden
    /// value is exactly what was issued, and no hidden value was created.
    pub holds: bool,
}

/// Checks, from public data alone, that public balances plus hidden value equal genesis
/// plus mints: the commitments must sum to a commitment to `issued − public` with zero
/// blinding. Fails (`holds: false`) if the public balances exceed what was issued; errs
/// if a commitment is not a point at all.
pub fn audit<'a>(
    issued: Amount,
    public: impl IntoIterator<Item = Amount>,
    commitments: impl IntoIterator<Item = &'a Commitment>,
) -> Result<SupplyAudit, ConfidentialError> {
    let public = public
        .into_iter()
        .try_fold(Amount::ZERO, Amount::checked_add)
        .ok_or(ConfidentialError::Malformed("public balances overflow the supply cap"))?;
    let commitment_sum = Commitment::sum(commitments)?;
    let (hidden, holds) = match issued.checked_sub(public) {
        Some(hidden) => (hidden, commitment_sum == Commitment::to_public(hidden.nanos())),
        None => (Amount::ZERO, false),
    };
    Ok(SupplyAudit { issued, public, hidden, commitment_sum, holds })
}

/// Byte strings as hex text in JSON and raw bytes in the binary codec.
pub(crate) mod hex_bytes {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(bytes))
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            hex::decode(text).map_err(de::Error::custom)
        } else {
            serde_bytes::ByteBuf::deserialize(deserializer).map(serde_bytes::ByteBuf::into_vec)
        }
    }
}
