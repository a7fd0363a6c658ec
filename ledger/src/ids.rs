//! Identifiers: accounts (ed25519 keys shown as bech32m), hashes and signatures, each
//! as text in JSON and as raw bytes in the binary encoding.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The human-readable part of account addresses.
pub const ACCOUNT_HRP: &str = "acre";

/// Why a text is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not bech32m with the `acre` prefix, or a checksum that does not match (a typo).
    #[error("not an acre address: {0}")]
    Address(String),
    /// Not the expected number of hexadecimal characters.
    #[error("expected {expected} hexadecimal characters")]
    Hex {
        /// Characters expected.
        expected: usize,
    },
}

/// Fixed-size byte strings: their text form in JSON, raw bytes in the binary codec.
macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl Default for $name {
            /// All zero bytes: the value of "none yet".
            fn default() -> Self {
                $name([0; $len])
            }
        }

        impl $name {
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    serializer.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    deserialize_text(deserializer)
                } else {
                    Ok($name(deserialize_array(deserializer)?))
                }
            }
        }
    };
}

/// Hexadecimal text for a [`fixed_bytes!`] type.
macro_rules! hex_text {
    ($name:ident, $len:expr) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}…)", stringify!($name), &hex::encode(&self.0[..6]))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(text, &mut bytes).map_err(|_| IdError::Hex { expected: 2 * $len })?;
                Ok($name(bytes))
            }
        }
    };
}

fixed_bytes!(
    /// A BLAKE3 hash: order digests (which are also certificate ids), state hashes.
    Digest,
    32
);
fixed_bytes!(
    /// An ed25519 signature.
    SignatureBytes,
    64
);
fixed_bytes!(
    /// An app's id: the hash of its owner and name (`AppId::of`).
    AppId,
    32
);
fixed_bytes!(
    /// An account: the ed25519 public key that signs its orders. Elders are named the
    /// same way, by their node key. Its text is bech32m with the `acre` prefix.
    AccountId,
    32
);
hex_text!(Digest, 32);
hex_text!(SignatureBytes, 64);
hex_text!(AppId, 32);

pub(crate) use {fixed_bytes, hex_text};

/// Parses a value from its text form, for human-readable formats.
pub(crate) fn deserialize_text<'de, D: Deserializer<'de>, T>(deserializer: D) -> Result<T, D::Error>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(de::Error::custom)
}

pub(crate) fn deserialize_array<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
) -> Result<[u8; N], D::Error> {
    struct ArrayVisitor<const N: usize>;
    impl<'de, const N: usize> de::Visitor<'de> for ArrayVisitor<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{N} bytes")
        }
        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<[u8; N], E> {
            bytes.try_into().map_err(|_| E::invalid_length(bytes.len(), &self))
        }
    }
    deserializer.deserialize_bytes(ArrayVisitor::<N>)
}

/// A value whose canonical encoding could not be made, so it has no digest. A digest of
/// nothing in its place would let unequal values compare equal.
#[derive(Debug, thiserror::Error)]
#[error("could not encode the value to hash it: {0}")]
pub struct EncodeError(#[from] postcard::Error);

impl Digest {
    /// The domain-separated hash of `value`'s canonical (postcard) encoding, streamed into
    /// the hasher rather than buffered.
    pub fn of_encoded<T: serde::Serialize + ?Sized>(context: &str, value: &T) -> Result<Digest, EncodeError> {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        postcard::to_io(value, &mut hasher)?;
        Ok(Digest(*hasher.finalize().as_bytes()))
    }

    /// The domain-separated hash of `parts`; every kind of signed or hashed object has
    /// its own `context`, so a signature over one can never be replayed as another.
    pub fn derive(context: &str, parts: &[&[u8]]) -> Digest {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        for part in parts {
            hasher.update(part);
        }
        Digest(*hasher.finalize().as_bytes())
    }
}

impl SignatureBytes {
    /// Signs a digest.
    pub fn sign(key: &SigningKey, digest: &Digest) -> Self {
        SignatureBytes(key.sign(digest.as_bytes()).to_bytes())
    }

    /// The dalek form, for verification.
    pub fn to_dalek(self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(&self.0)
    }
}

impl AccountId {
    /// The account of a signing key.
    pub fn of(key: &SigningKey) -> Self {
        AccountId(key.verifying_key().to_bytes())
    }

    /// The public key, or `None` if the bytes are not a point on the curve or are a weak
    /// (small-order) point: no strict signature verifies under either, so credits sent
    /// there would be lost and votes from there would be worthless.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok().filter(|key| !key.is_weak())
    }
}

impl From<VerifyingKey> for AccountId {
    fn from(key: VerifyingKey) -> Self {
        AccountId(key.to_bytes())
    }
}

fn account_hrp() -> Hrp {
    Hrp::parse_unchecked(ACCOUNT_HRP)
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bech32::encode_to_fmt::<Bech32m, _>(f, account_hrp(), &self.0).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_string();
        write!(f, "{}…", &text[..text.len().min(14)])
    }
}

impl FromStr for AccountId {
    type Err = IdError;

    /// Accepts only bech32m (not bech32) with the `acre` prefix and 32 bytes of key.
    fn from_str(text: &str) -> Result<Self, IdError> {
        let checked = CheckedHrpstring::new::<Bech32m>(text).map_err(|error| IdError::Address(error.to_string()))?;
        if checked.hrp() != account_hrp() {
            return Err(IdError::Address(format!("prefix must be {ACCOUNT_HRP:?}")));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let key: [u8; 32] = bytes.try_into().map_err(|_| IdError::Address("an account is 32 bytes".into()))?;
        Ok(AccountId(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        AccountId::of(&SigningKey::from_bytes(&[7; 32]))
    }

    #[test]
    fn address_round_trips_and_catches_typos() {
        let id = account();
        let text = id.to_string();
        assert!(text.starts_with("acre1"));
        assert_eq!(text.parse::<AccountId>(), Ok(id));
        let mut typo = text.clone().into_bytes();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == b'q' { b'p' } else { b'q' };
        let typo = String::from_utf8(typo).expect("ascii");
        assert!(typo.parse::<AccountId>().is_err());
    }

    #[test]
    fn refuses_bech32_without_m_and_other_prefixes() {
        let id = account();
        let plain = bech32::encode::<bech32::Bech32>(account_hrp(), &id.0).expect("encode");
        assert!(plain.parse::<AccountId>().is_err());
        let other = bech32::encode::<Bech32m>(Hrp::parse_unchecked("bc"), &id.0).expect("encode");
        assert!(other.parse::<AccountId>().is_err());
    }

    #[test]
    fn binary_and_json_forms_round_trip() {
        let id = account();
        let json = serde_json::to_string(&id).expect("json");
        assert_eq!(serde_json::from_str::<AccountId>(&json).expect("parse"), id);
        let bytes = postcard::to_allocvec(&id).expect("encode");
        assert_eq!(postcard::from_bytes::<AccountId>(&bytes).expect("decode"), id);
        let digest = Digest::derive("test", &[b"x"]);
        let json = serde_json::to_string(&digest).expect("json");
        assert_eq!(json.len(), 66);
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("parse"), digest);
    }
}
