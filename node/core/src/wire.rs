//! What nodes say to each other: one request type and one reply type per protocol.
//!
//! The transport only frames bytes; every protocol's messages are encoded here (postcard,
//! the ledger's own encoding) and each protocol is negotiated under its own name, so a
//! node answers each with the component that owns it and a peer can never send a ledger
//! message where a chunk was expected. A reply that does not decode, or a reply of the
//! wrong kind, is the same to the asker as no reply: nothing is trusted for arriving.

use acre_ledger::store::AppliedPage;
use acre_ledger::{
    AccountId, AppId, Certificate, Confirmation, Digest, LedgerError, SignatureBytes, SignedOrder, Vote,
};
use acre_proofs::challenge::Challenge;
use acre_proofs::ChunkAddress;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::log::{EpochOutcome, LogItem};
use crate::storage::SignedAnswer;

/// Most messages in one batched request (orders, certificates); larger batches are
/// refused unread.
pub const MAX_BATCH: usize = 4096;

/// A protocol: its name on the wire, what is asked and what is answered.
pub trait Protocol: Send + Sync + 'static {
    /// The name it is negotiated under, with its version.
    const NAME: &'static str;
    /// Largest request a node reads.
    const MAX_REQUEST_BYTES: u64;
    /// Largest reply a node reads.
    const MAX_REPLY_BYTES: u64;
    /// What is asked.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What is answered.
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// The reply refusing a request as a whole (unreadable, too large, not served here).
    fn refused(reason: String) -> Self::Reply;
}

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {protocol} message does not decode: {reason}")]
pub struct WireError {
    /// The protocol it came on.
    pub protocol: &'static str,
    /// The decoder's message.
    pub reason: String,
}

/// A message's bytes on the wire.
pub fn encode<T: Serialize>(protocol: &'static str, message: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(message).map_err(|error| WireError { protocol, reason: error.to_string() })
}

/// A message from its bytes.
pub fn decode<T: DeserializeOwned>(protocol: &'static str, bytes: &[u8]) -> Result<T, WireError> {
    postcard::from_bytes(bytes).map_err(|error| WireError { protocol, reason: error.to_string() })
}

/// Transfers: orders to vote on, certificates to apply, and catching up on certificates.
#[derive(Debug, Clone, Copy)]
pub struct Ledger;

/// A ledger request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LedgerRequest {
    /// Vote on these orders.
    Orders(Vec<SignedOrder>),
    /// Apply these certificates.
    Certificates(Vec<Certificate>),
    /// Apply these certificates, which another elder made a moment ago and hands over in
    /// the background, without a sync of their own: the next synced write covers them.
    Handed(Vec<Certificate>),
    /// Send up to `limit` certificates in the order you applied them, from `position` on.
    AppliedSince {
        /// Where to start in the peer's own order.
        position: u64,
        /// Most certificates wanted.
        limit: u32,
    },
    /// Send the certificates you applied for `account` at sequences `from` on (up to
    /// `limit`, stopping at the first you lack): what a node behind on one sender needs.
    CertificatesOf {
        /// The sender.
        account: AccountId,
        /// The first sequence wanted.
        from: u64,
        /// Most certificates wanted.
        limit: u32,
    },
    /// Apply these certificates, then vote on these orders: the certificates are the
    /// senders' previous ones, made a moment ago by the asking node and still on their way
    /// to this elder in the background, which the orders would otherwise be refused for.
    /// They are applied without a sync of their own, as [`LedgerRequest::Handed`] are;
    /// the votes' sync covers them. Last, so the variants before it keep their encoding.
    OrdersAfter {
        /// Certificates the orders follow.
        handed: Vec<Certificate>,
        /// The orders to vote on.
        orders: Vec<SignedOrder>,
    },
}

/// A ledger reply, one result per message for batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LedgerReply {
    /// Votes or refusals, in the order of the orders.
    Votes(Vec<Result<Vote, LedgerError>>),
    /// Confirmations or refusals, in the order of the certificates.
    Confirmations(Vec<Result<Confirmation, LedgerError>>),
    /// A page of applied certificates.
    Applied(AppliedPage),
    /// The request as a whole was refused.
    Refused(String),
}

impl Protocol for Ledger {
    const NAME: &'static str = "/acre/ledger/2";
    const MAX_REQUEST_BYTES: u64 = 4 << 20;
    const MAX_REPLY_BYTES: u64 = 16 << 20;
    type Request = LedgerRequest;
    type Reply = LedgerReply;

    fn refused(reason: String) -> LedgerReply {
        LedgerReply::Refused(reason)
    }
}

/// Chunks between members: placing, fetching, asking who holds what, fullness, the
/// registry.
#[derive(Debug, Clone, Copy)]
pub struct Chunks;

/// A chunk request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChunkRequest {
    /// Keep this chunk: you are one of its holders (from a section member only).
    Store(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Send this chunk's bytes, if you hold it.
    Fetch(ChunkAddress),
    /// Which of these chunks do you hold?
    Holds(Vec<ChunkAddress>),
    /// How many bytes of chunks do you hold, of how many offered?
    Status,
    /// A store payment (its certificate and the chunks its memo names) accepted by the
    /// member that takes the upload: the chunks it lists may now be stored here (from a
    /// member only).
    Pay {
        /// The certified transfer to the pool.
        certificate: Certificate,
        /// The chunks and sizes it pays for.
        chunks: Vec<(ChunkAddress, u64)>,
    },
    /// Answer this challenge, as an audit is answered (from a member only): a member about
    /// to delete its extra copy of a chunk asks it of the chunk's holders rather than
    /// taking their word. It is checked as an elder's is (`check_challenge`): it must name
    /// this holder, the asking member as its challenger, and blocks its seed draws for the
    /// two, so a member cannot have a co-holder prove the blocks of its own audit.
    Prove(Challenge),
    /// An elder's audit found your copy of this chunk wrong or missing: check it, and if it
    /// is, fetch a good copy from the chunk's other holders (from an elder only). The holder
    /// pulls the bytes once however many elders say so, and checks them against the
    /// address; a lying elder only makes it read its own copy.
    Recheck(ChunkAddress),
}

/// A chunk reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChunkReply {
    /// Taken: the payment is kept, or the recheck is under way.
    Done,
    /// The chunk is stored (now or before), durably: the holder's signed receipt.
    Stored(crate::log::StoreReceipt),
    /// The chunk store is full.
    Full {
        /// Bytes held.
        used: u64,
        /// Bytes offered.
        capacity: u64,
    },
    /// No payment this holder kept lists the chunk, and the section names it nowhere:
    /// hand it the payment (`Pay`) and ask again.
    NotPaid,
    /// A chunk's bytes, or `None` if not held here.
    Chunk(Option<serde_bytes::ByteBuf>),
    /// Per chunk asked, whether it is held here.
    Held(Vec<bool>),
    /// The answer to a `Prove`, as an audit's.
    Proved(AuditReply),
    /// This node's chunk store.
    Status {
        /// Bytes held.
        used: u64,
        /// Bytes offered.
        capacity: u64,
    },
    /// The request as a whole was refused.
    Refused(String),
}

impl Protocol for Chunks {
    const NAME: &'static str = "/acre/chunks/1";
    const MAX_REQUEST_BYTES: u64 = 4 << 20;
    const MAX_REPLY_BYTES: u64 = 4 << 20;
    type Request = ChunkRequest;
    type Reply = ChunkReply;

    fn refused(reason: String) -> ChunkReply {
        ChunkReply::Refused(reason)
    }
}

/// Audits: an elder's challenge and the holder's proofs.
#[derive(Debug, Clone, Copy)]
pub struct Audits;

/// An audit reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AuditReply {
    /// The proofs the challenge asked for, signed by the holder.
    Answer(SignedAnswer),
    /// A challenged chunk is not held here.
    Missing(ChunkAddress),
    /// The challenge was refused (not from an elder, not naming this holder, too large,
    /// a damaged copy).
    Refused(String),
}

impl Protocol for Audits {
    const NAME: &'static str = "/acre/audits/1";
    const MAX_REQUEST_BYTES: u64 = 1 << 20;
    const MAX_REPLY_BYTES: u64 = 16 << 20;
    type Request = Challenge;
    type Reply = AuditReply;

    fn refused(reason: String) -> AuditReply {
        AuditReply::Refused(reason)
    }
}

/// The section log: the engine's frames, proposals, signatures and closed epochs.
#[derive(Debug, Clone, Copy)]
pub struct Log;

/// A section-log request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LogRequest {
    /// A frame of the section log's engine (from an elder of that session only).
    Frame {
        /// The session (the epoch it orders).
        session: u64,
        /// The engine's frame.
        #[serde(with = "serde_bytes")]
        frame: Vec<u8>,
    },
    /// Put this into the section log: an item that proves itself.
    Propose(Box<LogItem>),
    /// Send the outcome of this closed epoch, if you have it.
    Outcome(u64),
    /// The sender's signature on the outcome of a closed epoch.
    Signature {
        /// The epoch.
        epoch: u64,
        /// The signature over the outcome's digest.
        signature: SignatureBytes,
    },
}

/// A section-log reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LogReply {
    /// Taken (which says nothing about whether it will count).
    Done,
    /// A closed epoch's outcome, or `None` if it is not closed here.
    Outcome(Option<Box<EpochOutcome>>),
    /// The request was refused.
    Refused(String),
}

impl Protocol for Log {
    const NAME: &'static str = "/acre/log/1";
    const MAX_REQUEST_BYTES: u64 = 4 << 20;
    const MAX_REPLY_BYTES: u64 = 16 << 20;
    type Request = LogRequest;
    type Reply = LogReply;

    fn refused(reason: String) -> LogReply {
        LogReply::Refused(reason)
    }
}

/// Reads through apps: a member's attestation, and a read that a holder attests too.
#[derive(Debug, Clone, Copy)]
pub struct Meter;

/// A metering request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MeterRequest {
    /// The sender took part in serving one read through this app (from a member only):
    /// a read counts once two members attest the same `use_id`.
    Attest {
        /// The app.
        app: AppId,
        /// The read's id, the same from the node that took the request and the holder that
        /// sent the bytes.
        use_id: Digest,
    },
    /// Send this chunk's bytes for a read through `app`, and attest the read to the elders.
    FetchForApp {
        /// The chunk.
        address: ChunkAddress,
        /// The app.
        app: AppId,
        /// The read's id.
        use_id: Digest,
    },
}

/// A metering reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MeterReply {
    /// The attestation was taken.
    Done,
    /// The chunk's bytes, or `None` if not held here.
    Chunk(Option<serde_bytes::ByteBuf>),
    /// The request was refused.
    Refused(String),
}

impl Protocol for Meter {
    const NAME: &'static str = "/acre/meter/1";
    const MAX_REQUEST_BYTES: u64 = 64 << 10;
    const MAX_REPLY_BYTES: u64 = 4 << 20;
    type Request = MeterRequest;
    type Reply = MeterReply;

    fn refused(reason: String) -> MeterReply {
        MeterReply::Refused(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal (and the values inside it) comes back from the wire as it was sent.
    #[test]
    fn ledger_refusals_cross_the_wire_intact() {
        let refusals = vec![
            LedgerError::ConflictingOrder { voted: Digest([1; 32]) },
            LedgerError::UnexpectedSequence { expected: 3, got: 5 },
            LedgerError::UnknownAccount { account: AccountId([7; 32]) },
            LedgerError::InsufficientBalance {
                balance: "1.5".parse().expect("amount"),
                amount: "2".parse().expect("amount"),
            },
            LedgerError::InvalidSignature,
            LedgerError::Storage { message: "disk full".into() },
        ];
        let reply = LedgerReply::Votes(refusals.iter().cloned().map(Err).collect());
        let bytes = encode(Ledger::NAME, &reply).expect("encode");
        let LedgerReply::Votes(back) = decode(Ledger::NAME, &bytes).expect("decode") else { panic!("not votes") };
        let back: Vec<LedgerError> = back.into_iter().filter_map(Result::err).collect();
        assert_eq!(back, refusals);
    }

    #[test]
    fn bytes_that_are_no_message_are_an_error_not_a_panic() {
        for bytes in [&[][..], &[0xff; 3][..], &[9, 9, 9, 9, 9, 9, 9, 9, 9][..]] {
            assert!(decode::<LedgerRequest>(Ledger::NAME, bytes).is_err());
            assert!(decode::<LogReply>(Log::NAME, bytes).is_err());
        }
        let store = encode(Chunks::NAME, &ChunkRequest::Store(vec![1, 2, 3])).expect("encode");
        assert!(matches!(decode(Chunks::NAME, &store), Ok(ChunkRequest::Store(bytes)) if bytes == [1, 2, 3]));
    }
}
