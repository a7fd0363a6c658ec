//! Pedersen commitments to hidden amounts, and their openings.

use std::fmt;
use std::str::FromStr;

use bulletproofs::PedersenGens;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfidentialError;
use crate::ids::{deserialize_array, deserialize_text, fixed_bytes, hex_text, IdError};
use crate::Amount;

fixed_bytes!(
    /// A Pedersen commitment `v·B + r·B̃` to a hidden amount `v` in nanos with blinding `r`
    /// (the `bulletproofs` generators), as a compressed Ristretto point. All zero bytes
    /// are the identity: a commitment to nothing with no blinding.
    Commitment,
    32
);
hex_text!(Commitment, 32);

/// The generators every commitment and range proof uses: `B` is Ristretto's base point,
/// `B̃` a hash to the curve of it, so nobody knows a discrete log between them.
pub(crate) fn pedersen() -> PedersenGens {
    PedersenGens::default()
}

impl Commitment {
    /// A commitment to `nanos` with no blinding: what a public amount is on the hidden
    /// side of the boundary, and what the supply audit compares the sum against.
    pub fn to_public(nanos: u64) -> Commitment {
        Commitment::from_point(pedersen().commit(Scalar::from(nanos), Scalar::ZERO))
    }

    /// The commitment an opening opens.
    pub fn of(opening: &Opening) -> Commitment {
        Commitment::from_point(opening.point())
    }

    pub(crate) fn from_point(point: RistrettoPoint) -> Commitment {
        Commitment(point.compress().to_bytes())
    }

    /// The point, or why these bytes are none: a commitment from the wire is checked here
    /// before any arithmetic touches it.
    pub fn point(&self) -> Result<RistrettoPoint, ConfidentialError> {
        CompressedRistretto(self.0).decompress().ok_or(ConfidentialError::InvalidCommitment)
    }

    pub(crate) fn compressed(&self) -> CompressedRistretto {
        CompressedRistretto(self.0)
    }

    /// Adds commitments: the result commits to the sum of the values and of the blindings.
    pub fn sum<'a>(commitments: impl IntoIterator<Item = &'a Commitment>) -> Result<Commitment, ConfidentialError> {
        let mut total = RistrettoPoint::identity();
        for commitment in commitments {
            total += commitment.point()?;
        }
        Ok(Commitment::from_point(total))
    }
}

/// What opens a commitment: the amount in nanos and the blinding. Only the account's
/// owner (and, for one transfer, its sender) ever holds it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// The hidden amount in nanos.
    pub value: u64,
    /// The blinding factor.
    pub blinding: Scalar,
}

impl fmt::Debug for Opening {
    /// Never prints the value or blinding: logs must not undo what the commitment hides.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opening(…)")
    }
}

impl Opening {
    /// Nothing, unblinded: the opening of the identity, an account's start.
    pub const ZERO: Opening = Opening { value: 0, blinding: Scalar::ZERO };

    /// A fresh opening of `value` with a random blinding.
    pub fn random(value: u64, rng: &mut (impl rand::RngCore + rand::CryptoRng)) -> Opening {
        Opening { value, blinding: Scalar::random(rng) }
    }

    /// A public amount on the hidden side: no blinding.
    pub fn public(amount: Amount) -> Opening {
        Opening { value: amount.nanos(), blinding: Scalar::ZERO }
    }

    fn point(&self) -> RistrettoPoint {
        pedersen().commit(Scalar::from(self.value), self.blinding)
    }

    /// The sum of two openings, or `None` if the values overflow.
    pub fn checked_add(self, other: Opening) -> Option<Opening> {
        Some(Opening { value: self.value.checked_add(other.value)?, blinding: self.blinding + other.blinding })
    }

    /// The difference of two openings, or `None` if the value would go below zero.
    pub fn checked_sub(self, other: Opening) -> Option<Opening> {
        Some(Opening { value: self.value.checked_sub(other.value)?, blinding: self.blinding - other.blinding })
    }

    /// The value as credits, if it is a possible balance.
    pub fn amount(&self) -> Result<Amount, ConfidentialError> {
        Amount::from_nanos(self.value).map_err(|_| ConfidentialError::WrongOpening)
    }

    /// Whether this opens `commitment`.
    pub fn opens(&self, commitment: &Commitment) -> bool {
        Commitment::of(self) == *commitment
    }

    pub(crate) fn to_bytes(self) -> [u8; 40] {
        let mut bytes = [0u8; 40];
        bytes[..8].copy_from_slice(&self.value.to_le_bytes());
        bytes[8..].copy_from_slice(self.blinding.as_bytes());
        bytes
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Opening> {
        let value = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let blinding: [u8; 32] = bytes.get(8..40)?.try_into().ok()?;
        let blinding = Option::from(Scalar::from_canonical_bytes(blinding))?;
        Some(Opening { value, blinding })
    }
}
