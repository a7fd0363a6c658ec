//! Where an elder's ledger lives between restarts. Handlers never touch a store; the
//! shell around them commits their [`WriteBatch`]es and reads back on recovery and for
//! queries.

mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

use crate::confidential::{HiddenAccount, IncomingCredit};
use crate::epoch::EpochRecord;
use crate::{AccountId, AccountState, Certificate, Digest, GenesisRecord, HistoryEntry, Lock, WriteBatch};

/// A store's failure. Nothing of a batch whose commit failed may be acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused a read or write (full disk, I/O error, locked directory).
    #[error("database: {0}")]
    Database(String),
    /// A stored value does not decode: the files were damaged or written by another format.
    #[error("corrupt record in {column}: {reason}")]
    Corrupt {
        /// The column family.
        column: &'static str,
        /// The decoder's message.
        reason: String,
    },
}

impl From<StoreError> for crate::LedgerError {
    fn from(error: StoreError) -> Self {
        crate::LedgerError::Storage { message: error.to_string() }
    }
}

/// When a commit's writes must reach stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced before `commit` returns.
    Synced,
    /// Visible at once and ordered, but synced only by the next [`Store::sync`]; for group
    /// commit, where one sync covers many messages before any answer is released.
    Buffered,
}

/// The ledger's durable state, by column: accounts, locks, certificates (with an index
/// by sender and sequence), history, genesis.
pub trait Store {
    /// Stores one message's writes atomically.
    fn commit(&mut self, batch: &WriteBatch, durability: Durability) -> Result<(), StoreError>;

    /// Makes every buffered commit durable.
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Stores many messages' writes, each atomically, with one sync for the group.
    fn commit_group(&mut self, batches: &[WriteBatch]) -> Result<(), StoreError> {
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            self.commit(batch, Durability::Buffered)?;
        }
        self.sync()
    }

    /// Every account, for recovery and state hashing.
    fn accounts(&self) -> Result<Vec<(AccountId, AccountState)>, StoreError>;

    /// One account.
    fn account(&self, id: &AccountId) -> Result<Option<AccountState>, StoreError>;

    /// This elder's lock at (account, sequence), if it voted there.
    fn lock(&self, account: &AccountId, sequence: u64) -> Result<Option<Lock>, StoreError>;

    /// A certificate by id.
    fn certificate(&self, id: &Digest) -> Result<Option<Certificate>, StoreError>;

    /// The id of the certificate applied at (account, sequence).
    fn certificate_at(&self, account: &AccountId, sequence: u64) -> Result<Option<Digest>, StoreError>;

    /// Up to `limit` history entries of `account` from index `from` on.
    fn history(&self, account: &AccountId, from: u64, limit: usize) -> Result<Vec<HistoryEntry>, StoreError>;

    /// The genesis record, once made.
    fn genesis(&self) -> Result<Option<GenesisRecord>, StoreError>;

    /// Every applied epoch record, by epoch.
    fn epochs(&self) -> Result<Vec<EpochRecord>, StoreError>;

    /// Every spendable commitment, for recovery.
    fn hidden_accounts(&self) -> Result<Vec<(AccountId, HiddenAccount)>, StoreError>;

    /// Every incoming credit not yet folded in, for recovery.
    fn incoming_credits(&self) -> Result<Vec<(AccountId, IncomingCredit)>, StoreError>;

    /// Up to `limit` certificates in the order this store applied them, from `position`
    /// on. Every prefix of that order is a valid order to apply them in, which is what a
    /// peer catching up needs.
    fn applied_since(&self, position: u64, limit: usize) -> Result<AppliedPage, StoreError>;
}

/// A page of a store's applied certificates.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct AppliedPage {
    /// Certificates in the order they were applied.
    pub certificates: Vec<Certificate>,
    /// The position to ask from next.
    pub next: u64,
}

/// Key of per-account sequenced records: the account then the big-endian number, so a
/// prefix scan walks one account in order.
#[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
pub(crate) fn account_key(account: &AccountId, number: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(&account.0);
    key[32..].copy_from_slice(&number.to_be_bytes());
    key
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every store must share, run against each implementation.

    use super::*;
    use crate::testkit::{keys, order_from};
    use crate::{AccountState, Amount, Change, Vote, Write};

    pub(crate) fn round_trips_every_column(store: &mut dyn Store) {
        let [alice, bob] = keys::<2>(1);
        let order = order_from(&crate::Digest::default(), &alice, &bob, 5, 0);
        let vote = Vote::sign(&bob, order.order.digest());
        let certificate = crate::Certificate { order: order.order.clone(), votes: vec![] };
        let state = AccountState { balance: Amount::from_nanos(9).expect("amount"), next_sequence: 1, history_len: 1 };
        let entry = crate::HistoryEntry {
            index: 0,
            source: certificate.id(),
            change: Change::Sent { to: AccountId::of(&bob), sequence: 0 },
            amount: Amount::from_nanos(5).expect("amount"),
            balance_after: state.balance,
        };
        let genesis = GenesisRecord { allocations: vec![], total: Amount::ZERO };
        let batch = WriteBatch {
            writes: vec![
                Write::Account(AccountId::of(&alice), state),
                Write::Lock(Lock { order: order.clone(), vote }),
                Write::Certificate(certificate.clone()),
                Write::History(AccountId::of(&alice), entry),
                Write::Genesis(genesis.clone()),
            ],
        };
        store.commit(&batch, Durability::Synced).expect("commit");
        let alice_id = AccountId::of(&alice);
        assert_eq!(store.account(&alice_id).expect("read"), Some(state));
        assert_eq!(store.accounts().expect("read"), vec![(alice_id, state)]);
        assert_eq!(store.lock(&alice_id, 0).expect("read").map(|l| l.vote), Some(vote));
        assert_eq!(store.lock(&alice_id, 1).expect("read"), None);
        assert_eq!(store.certificate(&certificate.id()).expect("read"), Some(certificate.clone()));
        assert_eq!(store.certificate_at(&alice_id, 0).expect("read"), Some(certificate.id()));
        assert_eq!(store.history(&alice_id, 0, 10).expect("read"), vec![entry]);
        assert_eq!(store.history(&alice_id, 1, 10).expect("read"), vec![]);
        assert_eq!(store.history(&AccountId::of(&bob), 0, 10).expect("read"), vec![]);
        assert_eq!(store.genesis().expect("read"), Some(genesis));
        let later = crate::Certificate {
            order: order_from(&crate::Digest::default(), &alice, &bob, 5, 1).order,
            votes: vec![],
        };
        store
            .commit(&WriteBatch { writes: vec![Write::Certificate(later.clone())] }, Durability::Buffered)
            .expect("commit");
        store.sync().expect("sync");
        let all = store.applied_since(0, 10).expect("read");
        assert_eq!(all, AppliedPage { certificates: vec![certificate, later.clone()], next: 2 });
        assert_eq!(store.applied_since(1, 10).expect("read"), AppliedPage { certificates: vec![later], next: 2 });
        assert_eq!(store.applied_since(1, 0).expect("read").next, 1);
        assert_eq!(store.applied_since(7, 10).expect("read"), AppliedPage { certificates: vec![], next: 7 });

        let hidden = crate::confidential::HiddenAccount {
            spendable: crate::confidential::Commitment::to_public(5),
            note: crate::confidential::SealedOpening([7; 88]),
            sequence: 3,
        };
        let credit = |certificate| crate::confidential::IncomingCredit {
            certificate,
            from: AccountId::of(&bob),
            sequence: 1,
            amount: crate::confidential::Commitment::to_public(2),
            opening: crate::confidential::SealedOpening([9; 88]),
        };
        let (first, second) = (Digest([1; 32]), Digest([2; 32]));
        let writes = vec![
            Write::Hidden(alice_id, hidden),
            Write::Incoming(alice_id, credit(first)),
            Write::Incoming(alice_id, credit(second)),
        ];
        store.commit(&WriteBatch { writes }, Durability::Synced).expect("commit");
        store
            .commit(&WriteBatch { writes: vec![Write::Absorbed(alice_id, first)] }, Durability::Synced)
            .expect("commit");
        assert_eq!(store.hidden_accounts().expect("read"), vec![(alice_id, hidden)]);
        assert_eq!(
            store.incoming_credits().expect("read"),
            vec![(alice_id, credit(second))],
            "an absorbed credit is gone"
        );
    }
}
