//! Acre's ledger: what every elder of a section keeps, as a pure state machine.
//!
//! An account's owner signs a [`TransferOrder`] for one network ([`network_id`]: the
//! genesis hash, so an order never replays on another network). Each elder checks it and votes
//! ([`ElderState::handle_order`]), first making its vote lock durable; a quorum of votes
//! is a [`Certificate`] and the transfer is final. Any holder of the certificate hands it
//! to the elders, who apply it ([`ElderState::handle_certificate`]). No total order is
//! needed: an account's own sequence numbers order its payments.
//!
//! Handlers take a message and return [`Effects`] — an answer and the writes to make
//! durable first. [`DurableElder`] binds an elder to a [`store::Store`] (RocksDB on disk,
//! or memory in tests) and keeps that rule. No sockets, clocks or tasks live here.
//!
//! ```
//! use acre_ledger::{store::MemoryStore, *};
//! use ed25519_dalek::SigningKey;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let elder_keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
//! let committee = Committee::new(elder_keys.iter().map(AccountId::of))?;
//! let alice = SigningKey::from_bytes(&[10; 32]);
//! let bob = AccountId::of(&SigningKey::from_bytes(&[11; 32]));
//! let funds = vec![Allocation { account: AccountId::of(&alice), amount: "100".parse()? }];
//!
//! let mut elders = Vec::new();
//! for key in &elder_keys {
//!     let mut elder = DurableElder::open(committee.clone(), key.clone(), MemoryStore::new())?;
//!     elder.genesis(funds.clone())?;
//!     elders.push(elder);
//! }
//!
//! let order = TransferOrder {
//!     network: network_id(&committee, &funds),
//!     from: AccountId::of(&alice), to: bob, amount: "12.5".parse()?,
//!     sequence: 0, app: None, memo: String::new(), hidden: None,
//! }
//! .sign(&alice);
//! let mut builder = CertificateBuilder::new(committee.clone(), order.order.clone());
//! for elder in &mut elders {
//!     builder.add(&elder.handle_order(&order)?)?;
//! }
//! let certificate = builder.certificate().ok_or("no quorum")?;
//! for elder in &mut elders {
//!     elder.handle_certificate(&certificate)?;
//!     assert_eq!(elder.state().account(&bob).map(|a| a.balance.to_string()), Some("12.5".into()));
//! }
//! # Ok(())
//! # }
//! ```

mod amount;
pub mod apps;
mod certificate;
pub mod confidential;
mod durable;
pub mod economics;
mod elder;
pub mod epoch;
mod error;
mod gathering;
mod ids;
#[cfg(feature = "openapi")]
mod openapi;
mod order;
mod record;
pub mod section_state;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use amount::{Amount, AmountError, MAX_CREDITS, NANOS_PER_CREDIT};
pub use apps::{App, AppAction, AppCommand, SignedAppCommand};
pub use certificate::{
    quorum, vote_message, Certificate, CertificateBuilder, Committee, CommitteeError, ElderSignature,
    VerifiedCertificate, Vote,
};
pub use durable::{DurableElder, GroupAnswers};
pub use elder::{ElderState, ProofDuty};
pub use epoch::{BeaconShare, EpochRecord, EpochReport, Farmer, MintItem, Verdict};
pub use error::LedgerError;
pub use gathering::{ElderAnswer, GatherError, Gathering};
pub use ids::{AccountId, AppId, Digest, EncodeError, IdError, SignatureBytes, ACCOUNT_HRP};
pub use order::{verify_orders, SignedOrder, TransferOrder, VerifiedOrder, VoteSigner, MAX_MEMO_BYTES};
pub use record::{
    network_id, AccountState, Allocation, Change, Confirmation, Effects, GenesisRecord, HistoryEntry, Lock, Write,
    WriteBatch,
};
