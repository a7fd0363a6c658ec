//! Transfer orders as their owners sign them.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::confidential::HiddenMove;
use crate::{AccountId, Amount, AppId, Digest, LedgerError, SignatureBytes, Vote};

/// Longest memo the ledger stores, in bytes.
pub const MAX_MEMO_BYTES: usize = 256;

/// Hash context of order digests; a certificate's id is its order's digest.
const ORDER_CONTEXT: &str = "acre 2026 transfer order v2";
/// Hash context of a hidden order's statement: what its range proof is bound to.
const STATEMENT_CONTEXT: &str = "acre 2026 confidential statement v1";

/// A payment as its owner means it: `amount` from `from` to `to`, at `from`'s next
/// `sequence`, optionally on behalf of an app.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferOrder {
    /// The network it is for ([`crate::network_id`]): an order signed for one network is
    /// refused on every other, even where the same key holds credits.
    pub network: Digest,
    /// The paying account, whose key signs.
    pub from: AccountId,
    /// The receiving account.
    pub to: AccountId,
    /// What moves.
    pub amount: Amount,
    /// The sender's sequence number this order uses; each is spent once.
    pub sequence: u64,
    /// The app whose use this pays for, if any.
    pub app: Option<AppId>,
    /// Free text for the parties, at most [`MAX_MEMO_BYTES`].
    pub memo: String,
    /// For a shield, an unshield or a confidential transfer: the commitments, sealed
    /// openings and range proof (see [`crate::confidential`]). Absent for a public payment.
    /// Boxed: most orders are public, and an order travels inside many messages.
    #[serde(default)]
    pub hidden: Option<Box<HiddenMove>>,
}

impl TransferOrder {
    /// The order's digest: what the owner signs and the certificate's id.
    ///
    /// Hashes a fixed field layout rather than a serializer's output, so the signed bytes
    /// cannot change with a codec's version.
    ///
    /// A public order's digest covers its public fields only, as it always has; a hidden
    /// order's adds its statement and its proof.
    pub fn digest(&self) -> Digest {
        let public = self.public_fields();
        let mut parts: Vec<&[u8]> = public.iter().map(Vec::as_slice).collect();
        let statement;
        let proof_len;
        if let Some(hidden) = &self.hidden {
            statement = self.statement();
            // A presence flag, so "no proof" and "an empty proof" are different orders.
            let (flag, proof): (&[u8], &[u8]) = match &hidden.proof {
                Some(proof) => (&[1], &proof.0),
                None => (&[0], &[]),
            };
            proof_len = (proof.len() as u64).to_le_bytes();
            parts.extend([&b"hidden"[..], statement.as_bytes(), flag, &proof_len, proof]);
        }
        Digest::derive(ORDER_CONTEXT, &parts)
    }

    fn public_fields(&self) -> [Vec<u8>; 9] {
        let (app_flag, app) = match &self.app {
            Some(app) => (1u8, app.0),
            None => (0u8, [0u8; 32]),
        };
        [
            self.network.0.to_vec(),
            self.from.0.to_vec(),
            self.to.0.to_vec(),
            self.amount.nanos().to_le_bytes().to_vec(),
            self.sequence.to_le_bytes().to_vec(),
            vec![app_flag],
            app.to_vec(),
            (self.memo.len() as u64).to_le_bytes().to_vec(),
            self.memo.as_bytes().to_vec(),
        ]
    }

    /// What a hidden order's range proof is bound to: every field of the order but the
    /// proof itself. Another sender, recipient, amount, sequence, app, memo, commitment
    /// or sealed opening is another statement, under which the proof fails.
    pub fn statement(&self) -> Digest {
        let public = self.public_fields();
        let hidden = self.hidden.as_ref().map(|hidden| hidden.statement_bytes()).unwrap_or_default();
        let mut parts: Vec<&[u8]> = public.iter().map(Vec::as_slice).collect();
        parts.push(&hidden);
        Digest::derive(STATEMENT_CONTEXT, &parts)
    }

    /// Checks what needs no state: a positive amount, two different valid accounts, a
    /// memo within bounds; for a hidden order, the fields its kind requires.
    pub fn check_well_formed(&self) -> Result<(), LedgerError> {
        if self.memo.len() > MAX_MEMO_BYTES {
            return Err(LedgerError::MemoTooLong { len: self.memo.len(), max: MAX_MEMO_BYTES });
        }
        if self.hidden.is_some() {
            // The kind decides which amounts and recipients are allowed
            // (`HiddenMove::check`).
            return Ok(());
        }
        if self.amount.is_zero() {
            return Err(LedgerError::ZeroAmount);
        }
        if self.from == self.to {
            return Err(LedgerError::SelfTransfer);
        }
        Ok(())
    }

    /// The stateless checks of a hidden order, range proof included, for the network
    /// whose identity is `network` ([`crate::network_id`]). A public order passes.
    pub fn check_hidden(&self, network: &Digest) -> Result<(), LedgerError> {
        match &self.hidden {
            Some(hidden) => Ok(hidden.check(network, &self.statement(), self.amount, &self.from, &self.to)?),
            None => Ok(()),
        }
    }

    /// Signs the order with the sender's key.
    pub fn sign(self, key: &SigningKey) -> SignedOrder {
        let signature = SignatureBytes::sign(key, &self.digest());
        SignedOrder { order: self, signature }
    }
}

/// An order with its owner's signature: what an elder votes on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOrder {
    /// The order.
    pub order: TransferOrder,
    /// The sender's signature over [`TransferOrder::digest`].
    pub signature: SignatureBytes,
}

impl SignedOrder {
    /// Verifies the owner's signature against `sender` (the decoded `order.from`),
    /// strictly, so no second encoding of the same signature is accepted.
    pub fn verify_with(&self, sender: &VerifyingKey) -> Result<(), LedgerError> {
        sender
            .verify_strict(self.order.digest().as_bytes(), &self.signature.to_dalek())
            .map_err(|_| LedgerError::InvalidSignature)
    }

    /// Checks the owner's signature, and a hidden order's range proof for the section
    /// `network`, once, so an elder can take the order without checking them again
    /// ([`crate::DurableElder::handle_verified_orders`]).
    pub fn into_verified(self, network: &Digest) -> Result<VerifiedOrder, LedgerError> {
        self.into_verified_given(network, crate::ProofDuty::ALWAYS)
    }

    /// [`SignedOrder::into_verified`], verifying the range proof only if `duty` (from
    /// [`crate::ElderState::precheck`]) says the elder's decision depends on it.
    pub fn into_verified_given(self, network: &Digest, duty: crate::ProofDuty) -> Result<VerifiedOrder, LedgerError> {
        self.order.check_well_formed()?;
        self.verify()?;
        if duty.needed() {
            self.order.check_hidden(network)?;
        }
        Ok(VerifiedOrder(self, None))
    }

    /// Verifies the owner's signature, decoding the sender's key first.
    pub fn verify(&self) -> Result<(), LedgerError> {
        let sender = self.order.from.verifying_key().ok_or(LedgerError::InvalidAccount { account: self.order.from })?;
        self.verify_with(&sender)
    }
}

/// Most signatures [`verify_orders`] checks strictly one by one rather than in a batch.
const STRICT_UP_TO: usize = 2;

/// Checks many orders as [`SignedOrder::into_verified_given`] checks one, each with the
/// proof duty the ledger gave it (an order it already refused keeps that refusal), but
/// with one ed25519 batch verification of all the owners' signatures. Only if the batch
/// fails are the signatures checked one by one, strictly, to say which failed.
///
/// A batch is not strict: an owner can craft a signature of its own order that the batch
/// takes and a strict check refuses (`specs/ledger.md`, *Signature checks*). Only its own
/// order is at stake, whose votes it can split that way no more than by signing two
/// orders; nobody without its key can make such a signature.
pub fn verify_orders(
    orders: Vec<(SignedOrder, Result<crate::ProofDuty, LedgerError>)>,
    network: &Digest,
) -> Vec<Result<VerifiedOrder, LedgerError>> {
    let mut batch = crate::certificate::SignatureBatch::default();
    let decoded: Vec<Result<(SignedOrder, crate::ProofDuty, VerifyingKey), LedgerError>> = orders
        .into_iter()
        .map(|(signed, duty)| {
            let duty = duty?;
            signed.order.check_well_formed()?;
            let sender =
                signed.order.from.verifying_key().ok_or(LedgerError::InvalidAccount { account: signed.order.from })?;
            batch.push(signed.order.digest(), signed.signature, sender);
            Ok((signed, duty, sender))
        })
        .collect();
    // A batch of one or two saves nothing and is not strict; those are checked strictly.
    let all_signed = batch.len() > STRICT_UP_TO && batch.verify();
    decoded
        .into_iter()
        .map(|decoded| {
            let (signed, duty, sender) = decoded?;
            if !all_signed {
                signed.verify_with(&sender)?;
            }
            if duty.needed() {
                signed.order.check_hidden(network)?;
            }
            Ok(VerifiedOrder(signed, None))
        })
        .collect()
}

/// A signed order whose owner signature (and range proof, if hidden) has been checked
/// ([`SignedOrder::into_verified`], [`verify_orders`]). The check is the costly part of
/// voting; a node runs it on other threads than the one that holds the ledger. Only those
/// make one, so none skips the check. It may carry this elder's vote signed ahead
/// ([`VerifiedOrder::signed_ahead`]).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedOrder(SignedOrder, Option<Vote>);

/// Leaves out the vote signed ahead: it may be for an order the ledger then refuses, and
/// such a vote must never leave, not even in a log line.
impl std::fmt::Debug for VerifiedOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VerifiedOrder").field(&self.0).field(&self.1.is_some()).finish()
    }
}

impl VerifiedOrder {
    /// The order and its signature.
    pub fn signed(&self) -> &SignedOrder {
        &self.0
    }

    /// Signs the vote this elder would give the order, on the checking thread rather than
    /// the ledger's, which otherwise signs every vote one after another. The vote leaves
    /// only if the ledger decides for the order and its lock is durable; ed25519 is
    /// deterministic, so it is the vote the ledger would have signed.
    pub fn signed_ahead(self, signer: &VoteSigner) -> VerifiedOrder {
        let vote = Vote::sign(&signer.0, self.0.order.digest());
        VerifiedOrder(self.0, Some(vote))
    }

    /// The vote signed ahead, if `elder` signed it.
    pub(crate) fn vote_ahead(&self, elder: &AccountId) -> Option<Vote> {
        self.1.filter(|vote| vote.elder == *elder)
    }
}

/// An elder's key as the order checks hold it: it signs votes ahead
/// ([`VerifiedOrder::signed_ahead`]) and nothing else (see
/// [`crate::ElderState::vote_signer`]).
#[derive(Clone)]
pub struct VoteSigner(SigningKey);

impl VoteSigner {
    pub(crate) fn new(key: SigningKey) -> VoteSigner {
        VoteSigner(key)
    }
}

impl std::fmt::Debug for VoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VoteSigner").field(&AccountId::of(&self.0)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{keys, order_from};
    use crate::ProofDuty;

    #[test]
    fn a_batch_with_one_forged_signature_refuses_that_order_alone() {
        let network = Digest::derive("acre test batch network", &[]);
        let [alice, bob, carol, mallory] = keys::<4>(71);
        let honest: Vec<SignedOrder> =
            [&alice, &bob, &carol].iter().map(|key| order_from(&network, key, &mallory, 5, 0)).collect();
        // Mallory signs an order paying from Alice's account with its own key.
        let mut forged = order_from(&network, &alice, &mallory, 500, 1);
        forged.signature = SignatureBytes::sign(&mallory, &forged.order.digest());
        let refused_before = (honest[2].clone(), Err(LedgerError::UnknownAccount { account: AccountId::of(&carol) }));
        let batch = vec![
            (honest[0].clone(), Ok(ProofDuty::ALWAYS)),
            (forged, Ok(ProofDuty::ALWAYS)),
            (honest[1].clone(), Ok(ProofDuty::ALWAYS)),
            refused_before,
        ];

        let checked = verify_orders(batch, &network);

        assert_eq!(checked.len(), 4);
        assert_eq!(checked[0].as_ref().map(VerifiedOrder::signed), Ok(&honest[0]));
        assert_eq!(checked[1].as_ref().err(), Some(&LedgerError::InvalidSignature));
        assert_eq!(checked[2].as_ref().map(VerifiedOrder::signed), Ok(&honest[1]));
        assert_eq!(
            checked[3].as_ref().err(),
            Some(&LedgerError::UnknownAccount { account: AccountId::of(&carol) }),
            "a refusal given before the check is kept"
        );
    }

    #[test]
    fn a_batch_of_honest_orders_passes_whole_and_an_empty_one_is_empty() {
        let network = Digest::derive("acre test batch network", &[]);
        let senders = keys::<64>(72);
        let [recipient] = keys::<1>(73);
        let orders: Vec<_> =
            senders.iter().map(|key| (order_from(&network, key, &recipient, 1, 3), Ok(ProofDuty::ALWAYS))).collect();
        assert!(verify_orders(orders, &network).iter().all(Result::is_ok));
        assert!(verify_orders(Vec::new(), &network).is_empty());
    }
}
