//! What the ledger keeps: account states, vote locks, history entries, the genesis
//! record, and the writes that carry them to a store.

use serde::{Deserialize, Serialize};

use crate::confidential::{HiddenAccount, IncomingCredit};
use crate::epoch::EpochRecord;

use crate::{AccountId, Amount, Certificate, Digest, SignedOrder, Vote};

/// Hash context of the genesis record's id.
const GENESIS_CONTEXT: &str = "acre 2026 genesis v1";

/// One account as every honest elder agrees on it once the same certificates are applied.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountState {
    /// Credits held.
    pub balance: Amount,
    /// The sequence the account's next order must use.
    pub next_sequence: u64,
    /// Number of history entries, which is also the next entry's index.
    pub history_len: u64,
}

/// An elder's vote at an account's sequence, with the order it was cast for: the lock
/// that keeps the elder from ever voting for another order there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The order voted for, signed by its owner.
    pub order: SignedOrder,
    /// The elder's vote.
    pub vote: Vote,
}

/// How one history entry changed an account. Externally tagged, so the binary codec can
/// store it (internally tagged enums need a self-describing format).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Credits from the genesis record.
    Genesis,
    /// A certified payment out.
    Sent {
        /// The recipient.
        to: AccountId,
        /// The sender's sequence it used.
        sequence: u64,
    },
    /// A certified payment in.
    Received {
        /// The sender.
        from: AccountId,
        /// The sender's sequence it used.
        sequence: u64,
    },
    /// An epoch's reward, minted or paid from the section's pool.
    Reward {
        /// The epoch.
        epoch: u64,
    },
    /// Store payments paid out of the section's pool to farmers.
    PoolPayout {
        /// The epoch.
        epoch: u64,
    },
    /// An app's earnings for an epoch (its fees and its share of use), to its payout account.
    AppPayout {
        /// The epoch.
        epoch: u64,
        /// The app.
        app: crate::AppId,
    },
    /// Public credits moved into the account's own hidden balance (the amount is public).
    Shielded {
        /// The account's sequence it used.
        sequence: u64,
    },
    /// Hidden credits moved out to a public balance (the amount is public); when `to` is
    /// the account itself, its public balance rose by the amount.
    Unshielded {
        /// The account credited publicly.
        to: AccountId,
        /// The sender's sequence it used.
        sequence: u64,
    },
    /// A confidential payment out; the entry's amount is zero, the real one hidden.
    SentHidden {
        /// The recipient.
        to: AccountId,
        /// The sender's sequence it used.
        sequence: u64,
    },
    /// A confidential payment in, waiting as an incoming credit; the amount is hidden.
    ReceivedHidden {
        /// The sender.
        from: AccountId,
        /// The sender's sequence it used.
        sequence: u64,
    },
}

/// One line of an account's history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position in the account's history, from 0.
    pub index: u64,
    /// The certificate (or genesis record) that made the change.
    pub source: Digest,
    /// What happened.
    pub change: Change,
    /// Credits moved.
    pub amount: Amount,
    /// The balance afterwards.
    pub balance_after: Amount,
}

/// Credits created for one account at genesis.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The funded account.
    pub account: AccountId,
    /// Its initial balance.
    pub amount: Amount,
}

/// The initial mint, recorded so the supply can always be reconciled against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisRecord {
    /// Who got what.
    pub allocations: Vec<Allocation>,
    /// The sum of the allocations.
    pub total: Amount,
}

impl GenesisRecord {
    /// The record's id, named by its accounts' genesis history entries.
    pub fn id(&self) -> Digest {
        allocations_digest(&self.allocations)
    }
}

fn allocations_digest(allocations: &[Allocation]) -> Digest {
    let mut bytes = Vec::with_capacity(allocations.len() * 40);
    for allocation in allocations {
        bytes.extend_from_slice(&allocation.account.0);
        bytes.extend_from_slice(&allocation.amount.nanos().to_le_bytes());
    }
    Digest::derive(GENESIS_CONTEXT, &[&bytes])
}

/// Hash context of a network's identity.
const NETWORK_CONTEXT: &str = "acre 2026 network v1";

/// A network's identity, its genesis hash: the committee that certifies its transfers and
/// the credits its genesis created (none for a network that starts unfunded). Every
/// order names it, so nothing signed for one network is valid on another.
pub fn network_id(committee: &crate::Committee, allocations: &[Allocation]) -> Digest {
    let genesis = allocations_digest(allocations);
    Digest::derive(NETWORK_CONTEXT, &[committee.id().as_bytes(), genesis.as_bytes()])
}

/// One durable change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// An account's new state.
    Account(AccountId, AccountState),
    /// A vote lock at the order's (sender, sequence).
    Lock(Lock),
    /// An applied certificate, also indexed by (sender, sequence).
    Certificate(Certificate),
    /// A history entry for an account.
    History(AccountId, HistoryEntry),
    /// The genesis record.
    Genesis(GenesisRecord),
    /// An applied epoch record.
    Epoch(EpochRecord),
    /// An account's new spendable commitment.
    Hidden(AccountId, HiddenAccount),
    /// A hidden amount sent to an account, until folded in.
    Incoming(AccountId, IncomingCredit),
    /// An incoming credit folded into the account's spendable commitment: removed.
    Absorbed(AccountId, Digest),
}

/// The writes one handled message makes: stored atomically, and durable before the
/// message's answer is released.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteBatch {
    /// The writes, in order.
    pub writes: Vec<Write>,
}

impl WriteBatch {
    /// Whether the message changed nothing (a repeat).
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// An answer together with the writes that must be durable before it is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effects<T> {
    /// What to answer the sender.
    pub answer: T,
    /// What to store first. Empty when the message was a repeat.
    pub writes: WriteBatch,
}

/// An elder's answer to a certificate: the transfer it applied (now or before).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The certificate's id.
    pub certificate: Digest,
    /// The sender.
    pub from: AccountId,
    /// The sequence it used.
    pub sequence: u64,
}
