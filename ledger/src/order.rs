//! Transfer orders as their owners sign them.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{AccountId, Amount, AppId, Digest, LedgerError, SignatureBytes};

/// Longest memo the ledger stores, in bytes.
pub const MAX_MEMO_BYTES: usize = 256;

/// Hash context of order digests; a certificate's id is its order's digest.
const ORDER_CONTEXT: &str = "acre 2026 transfer order v1";

/// A payment as its owner means it: `amount` from `from` to `to`, at `from`'s next
/// `sequence`, optionally on behalf of an app.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferOrder {
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
}

impl TransferOrder {
    /// The order's digest: what the owner signs and the certificate's id.
    ///
    /// Hashes a fixed field layout rather than a serializer's output, so the signed bytes
    /// cannot change with a codec's version.
    pub fn digest(&self) -> Digest {
        let (app_flag, app) = match &self.app {
            Some(app) => ([1u8], app.0),
            None => ([0u8], [0u8; 32]),
        };
        Digest::derive(
            ORDER_CONTEXT,
            &[
                &self.from.0,
                &self.to.0,
                &self.amount.nanos().to_le_bytes(),
                &self.sequence.to_le_bytes(),
                &app_flag,
                &app,
                &(self.memo.len() as u64).to_le_bytes(),
                self.memo.as_bytes(),
            ],
        )
    }

    /// Checks what needs no state: a positive amount, two different valid accounts, a
    /// memo within bounds.
    pub fn check_well_formed(&self) -> Result<(), LedgerError> {
        if self.amount.is_zero() {
            return Err(LedgerError::ZeroAmount);
        }
        if self.from == self.to {
            return Err(LedgerError::SelfTransfer);
        }
        if self.memo.len() > MAX_MEMO_BYTES {
            return Err(LedgerError::MemoTooLong { len: self.memo.len(), max: MAX_MEMO_BYTES });
        }
        Ok(())
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

    /// Checks the owner's signature once, so an elder can take the order without checking
    /// it again ([`crate::DurableElder::handle_verified_orders`]).
    pub fn into_verified(self) -> Result<VerifiedOrder, LedgerError> {
        self.verify()?;
        Ok(VerifiedOrder(self))
    }

    /// Verifies the owner's signature, decoding the sender's key first.
    pub fn verify(&self) -> Result<(), LedgerError> {
        let sender = self.order.from.verifying_key().ok_or(LedgerError::InvalidAccount { account: self.order.from })?;
        self.verify_with(&sender)
    }
}

/// A signed order whose owner signature has been checked ([`SignedOrder::into_verified`]).
/// The check is the costly part of voting; a node runs it on other threads than the one
/// that holds the ledger. Only `into_verified` makes one, so none skips the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOrder(SignedOrder);

impl VerifiedOrder {
    /// The order and its signature.
    pub fn signed(&self) -> &SignedOrder {
        &self.0
    }
}
