//! Bulletproofs range proofs over the commitments an order creates, bound by a Merlin
//! transcript to the order's statement and the section it is for.

use std::sync::OnceLock;

use bulletproofs::{BulletproofGens, RangeProof};
use merlin::Transcript;
use serde::{Deserialize, Serialize};

use super::{pedersen, Commitment, ConfidentialError, Opening};
use crate::Digest;

/// Bits every hidden amount is proven to fit in: amounts are `u64` nanos.
pub const RANGE_BITS: usize = 64;
/// Most values one proof covers: a transfer's amount and the sender's remainder.
const MAX_PARTIES: usize = 2;
/// The longest proof an order may carry: an aggregated proof of two 64-bit values is
/// `(2·log2(128) + 9)·32` bytes.
pub const MAX_PROOF_BYTES: usize = (2 * 7 + 9) * 32;
/// Label of the transcript every order's proof starts from.
const TRANSCRIPT_LABEL: &[u8] = b"acre 2026 confidential order v1";

/// The generators for up to two 64-bit values, made once per process.
fn generators() -> &'static BulletproofGens {
    static GENERATORS: OnceLock<BulletproofGens> = OnceLock::new();
    GENERATORS.get_or_init(|| BulletproofGens::new(RANGE_BITS, MAX_PARTIES))
}

/// The transcript a proof for `statement` in the section `network` is made and checked
/// under. The statement digest covers every field of the order but the proof, so a
/// proof is valid for exactly one order: another sender, recipient, sequence, memo or
/// commitment gives another transcript and the proof fails.
fn transcript(network: &Digest, statement: &Digest) -> Transcript {
    let mut transcript = Transcript::new(TRANSCRIPT_LABEL);
    transcript.append_message(b"network", network.as_bytes());
    transcript.append_message(b"statement", statement.as_bytes());
    transcript
}

/// A serialized range proof that each of an order's new commitments hides a value in
/// `[0, 2^64)`: for a transfer the amount and the sender's remainder (one aggregated
/// proof), for an unshield the remainder.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeProofBytes(#[serde(with = "super::hex_bytes")] pub Vec<u8>);

impl std::fmt::Debug for RangeProofBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RangeProofBytes({} bytes)", self.0.len())
    }
}

impl RangeProofBytes {
    /// Proves the openings' values are in range, for `statement` in `network`.
    pub fn prove(network: &Digest, statement: &Digest, openings: &[Opening]) -> Result<Self, ConfidentialError> {
        let values: Vec<u64> = openings.iter().map(|o| o.value).collect();
        let blindings: Vec<_> = openings.iter().map(|o| o.blinding).collect();
        let (proof, _) = RangeProof::prove_multiple(
            generators(),
            &pedersen(),
            &mut transcript(network, statement),
            &values,
            &blindings,
            RANGE_BITS,
        )
        .map_err(|_| ConfidentialError::InvalidRangeProof)?;
        Ok(RangeProofBytes(proof.to_bytes()))
    }

    /// Checks the proof for `commitments`, `statement` and `network`.
    pub fn verify(
        &self,
        network: &Digest,
        statement: &Digest,
        commitments: &[Commitment],
    ) -> Result<(), ConfidentialError> {
        if self.0.len() > MAX_PROOF_BYTES || commitments.is_empty() || commitments.len() > MAX_PARTIES {
            return Err(ConfidentialError::InvalidRangeProof);
        }
        let proof = RangeProof::from_bytes(&self.0).map_err(|_| ConfidentialError::InvalidRangeProof)?;
        let compressed: Vec<_> = commitments.iter().map(Commitment::compressed).collect();
        proof
            .verify_multiple(generators(), &pedersen(), &mut transcript(network, statement), &compressed, RANGE_BITS)
            .map_err(|_| ConfidentialError::InvalidRangeProof)
    }
}
