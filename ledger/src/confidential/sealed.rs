//! Openings sealed to one account: x25519 with the account's own ed25519 key (in its
//! Montgomery form) and ChaCha20-Poly1305, so the ledger can carry an opening that only
//! its recipient reads, and an owner can recover its balance from the ledger and its key.

use std::fmt;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConfidentialError, Opening};
use crate::ids::{deserialize_array, deserialize_text, fixed_bytes, hex_text, IdError};
use crate::AccountId;

/// Key-derivation context of the AEAD key from the x25519 shared secret.
const SEAL_CONTEXT: &str = "acre 2026 sealed opening v1";
/// An ephemeral x25519 key, a 40-byte opening and a 16-byte tag.
const SEALED_LEN: usize = 32 + 40 + 16;

fixed_bytes!(
    /// An [`Opening`] sealed to one account: an ephemeral x25519 public key, then the
    /// opening under ChaCha20-Poly1305 with a key derived from the shared secret. Its
    /// associated data names the order it belongs to, so it cannot be moved to another.
    SealedOpening,
    88
);
hex_text!(SealedOpening, 88);

/// The AEAD key for one ephemeral key and recipient. Every seal uses a fresh ephemeral
/// key, so every key is used once and a zero nonce is safe.
fn cipher(shared: &MontgomeryPoint, ephemeral: &MontgomeryPoint, to: &AccountId) -> ChaCha20Poly1305 {
    let mut hasher = blake3::Hasher::new_derive_key(SEAL_CONTEXT);
    hasher.update(shared.as_bytes());
    hasher.update(ephemeral.as_bytes());
    hasher.update(&to.0);
    ChaCha20Poly1305::new(hasher.finalize().as_bytes().into())
}

impl SealedOpening {
    /// Seals `opening` so only the owner of `to` can open it; `context` is bound to it.
    pub fn seal(
        opening: &Opening,
        to: &AccountId,
        context: &[u8],
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> Result<SealedOpening, ConfidentialError> {
        let recipient = to.verifying_key().ok_or(ConfidentialError::InvalidRecipient)?.to_montgomery();
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let ephemeral = MontgomeryPoint::mul_base_clamped(secret);
        let shared = recipient.mul_clamped(secret);
        let message = opening.to_bytes();
        let sealed = cipher(&shared, &ephemeral, to)
            .encrypt(&Default::default(), Payload { msg: &message, aad: context })
            .map_err(|_| ConfidentialError::WrongOpening)?;
        let mut bytes = [0u8; SEALED_LEN];
        bytes[..32].copy_from_slice(ephemeral.as_bytes());
        bytes[32..].copy_from_slice(&sealed);
        Ok(SealedOpening(bytes))
    }

    /// Opens the seal with the recipient's key. Fails for anyone else's key, for another
    /// `context`, and for altered bytes.
    pub fn open(&self, key: &SigningKey, context: &[u8]) -> Result<Opening, ConfidentialError> {
        let mut ephemeral = [0u8; 32];
        ephemeral.copy_from_slice(&self.0[..32]);
        let ephemeral = MontgomeryPoint(ephemeral);
        let shared = ephemeral.mul_clamped(key.to_scalar_bytes());
        // A low-order ephemeral key gives a shared secret anyone can compute.
        if shared == MontgomeryPoint([0; 32]) {
            return Err(ConfidentialError::WrongOpening);
        }
        let opened = cipher(&shared, &ephemeral, &AccountId::of(key))
            .decrypt(&Default::default(), Payload { msg: &self.0[32..], aad: context })
            .map_err(|_| ConfidentialError::WrongOpening)?;
        Opening::from_bytes(&opened).ok_or(ConfidentialError::WrongOpening)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn only_the_recipient_with_the_same_context_opens_a_seal() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let eve = SigningKey::from_bytes(&[2; 32]);
        let opening = Opening::random(42, &mut OsRng);
        let sealed = SealedOpening::seal(&opening, &AccountId::of(&alice), b"order 1", &mut OsRng).expect("seal");
        assert_eq!(sealed.open(&alice, b"order 1").expect("open"), opening);
        assert_eq!(sealed.open(&eve, b"order 1"), Err(ConfidentialError::WrongOpening));
        assert_eq!(sealed.open(&alice, b"order 2"), Err(ConfidentialError::WrongOpening));
        let mut altered = sealed;
        altered.0[40] ^= 1;
        assert_eq!(altered.open(&alice, b"order 1"), Err(ConfidentialError::WrongOpening));
    }
}
