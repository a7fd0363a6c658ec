//! Making hidden orders, as a wallet does: from the openings the owner holds to a
//! complete order whose proof the elders will accept.

use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;

use super::{
    note_context, opening_context, Commitment, ConfidentialError, HiddenKind, HiddenMove, Opening, RangeProofBytes,
    SealedOpening,
};
use crate::{AccountId, Amount, Digest, TransferOrder};

/// What a hidden order moves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HiddenAction {
    /// Public credits into the owner's hidden balance.
    Shield {
        /// The amount, public at the boundary.
        amount: Amount,
    },
    /// Hidden credits out to a public balance (the owner's own, or another's).
    Unshield {
        /// The account credited publicly.
        to: AccountId,
        /// The amount, public at the boundary.
        amount: Amount,
    },
    /// A hidden amount to another account.
    Transfer {
        /// The recipient.
        to: AccountId,
        /// The amount, which only the two parties learn.
        amount: Amount,
    },
}

impl std::fmt::Debug for HiddenAction {
    /// Names the move, never its amount: a debug print must not undo what it hides.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HiddenAction::Shield { .. } => f.write_str("Shield"),
            HiddenAction::Unshield { to, .. } => write!(f, "Unshield(to {to})"),
            HiddenAction::Transfer { to, .. } => write!(f, "Transfer(to {to})"),
        }
    }
}

/// Everything the owner needs to make a hidden order.
#[derive(Clone)]
pub struct HiddenSpend<'a> {
    /// The owner's key, which signs and to which its note is sealed.
    pub key: &'a SigningKey,
    /// The network's identity ([`crate::network_id`]), which the order names and the proof is bound to.
    pub network: Digest,
    /// The owner's next sequence.
    pub sequence: u64,
    /// The opening of the owner's spendable commitment now ([`Opening::ZERO`] if none).
    pub spendable: Opening,
    /// Incoming credits to fold in, each with its opening (checked by the caller with
    /// [`super::IncomingCredit::open`]).
    pub absorb: Vec<(Digest, Opening)>,
    /// What moves.
    pub action: HiddenAction,
    /// Free text for the parties.
    pub memo: String,
}

impl std::fmt::Debug for HiddenSpend<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HiddenSpend").field("sequence", &self.sequence).field("action", &self.action).finish()
    }
}

impl<'a> HiddenSpend<'a> {
    /// A spend that folds in no incoming credits and carries no memo.
    pub fn new(key: &'a SigningKey, network: Digest, sequence: u64, spendable: Opening, action: HiddenAction) -> Self {
        HiddenSpend { key, network, sequence, spendable, absorb: vec![], action, memo: String::new() }
    }

    /// The order, unsigned, and the opening of the owner's spendable commitment after it.
    pub fn build(
        self,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> Result<(TransferOrder, Opening), ConfidentialError> {
        let from = AccountId::of(self.key);
        let overflow = ConfidentialError::Malformed("hidden amounts overflow");
        let available =
            self.absorb.iter().try_fold(self.spendable, |sum, (_, o)| sum.checked_add(*o)).ok_or(overflow)?;
        let short = |amount: Amount| ConfidentialError::NotEnoughHidden {
            available: Amount::from_nanos(available.value).unwrap_or(Amount::MAX),
            amount,
        };
        let (to, public_amount, kind, after, proven) = match self.action {
            HiddenAction::Shield { amount } => {
                let after = available.checked_add(Opening::public(amount)).ok_or(overflow)?;
                (from, amount, HiddenKind::Shield, after, vec![])
            }
            HiddenAction::Unshield { to, amount } => {
                let after = available.checked_sub(Opening::public(amount)).ok_or_else(|| short(amount))?;
                (to, amount, HiddenKind::Unshield, after, vec![after])
            }
            HiddenAction::Transfer { to, amount } => {
                let moved = Opening::random(amount.nanos(), rng);
                let less_one = moved
                    .checked_sub(Opening { value: 1, blinding: Scalar::ZERO })
                    .ok_or(ConfidentialError::Malformed("a confidential transfer moves at least one nano"))?;
                let after = available.checked_sub(moved).ok_or_else(|| short(amount))?;
                let committed = Commitment::of(&moved);
                let context = opening_context(&from, &to, self.sequence, &committed);
                let opening = SealedOpening::seal(&moved, &to, &context, rng)?;
                (to, Amount::ZERO, HiddenKind::Transfer { amount: committed, opening }, after, vec![less_one, after])
            }
        };
        let spendable = Commitment::of(&after);
        let note = SealedOpening::seal(&after, &from, &note_context(&from, self.sequence), rng)?;
        let absorb = self.absorb.iter().map(|(id, _)| *id).collect();
        let hidden = HiddenMove { kind, absorb, spendable, note, proof: None };
        let mut order = TransferOrder {
            network: self.network,
            from,
            to,
            amount: public_amount,
            sequence: self.sequence,
            app: None,
            memo: self.memo,
            hidden: Some(Box::new(hidden)),
        };
        if !proven.is_empty() {
            let proof = RangeProofBytes::prove(&self.network, &order.statement(), &proven)?;
            if let Some(hidden) = order.hidden.as_mut() {
                hidden.proof = Some(proof);
            }
        }
        Ok((order, after))
    }
}
