//! The simulated network: a message takes a base latency plus seeded jitter (so messages
//! overtake each other), may be lost, and is dropped while a partition separates its two
//! ends. Wallets are clients on the open internet: a partition splits the section's
//! nodes, not them.

use acre_core::LogItem;
use acre_ledger::store::AppliedPage;
use acre_ledger::{Certificate, Confirmation, LedgerError, SignatureBytes, SignedOrder, Vote};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::NetworkSettings;
use crate::disk::KeptOutcome;
use crate::scheduler::Millis;

/// One end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    /// A node, by index.
    Node(usize),
    /// A wallet, by index.
    Wallet(usize),
}

/// What travels between nodes, and between wallets and elders: the requests of the
/// node's peer protocol that the section machine and the ledger need.
#[derive(Debug, Clone)]
pub(crate) enum Message {
    /// Please propose this item (`Effect::SendProposal`, a wallet's pool payment).
    Propose(LogItem),
    /// The sender's signature on a closed epoch's outcome.
    Signature {
        /// The epoch.
        epoch: u64,
        /// The signature.
        signature: SignatureBytes,
    },
    /// `PeerRequest::Outcome`: the sender's outcome of `epoch`, please.
    FetchRequest {
        /// The epoch.
        epoch: u64,
        /// The requester's number for it, to match the answer.
        request: u64,
    },
    /// The answer: the outcome, or nothing if this peer has not closed the epoch.
    FetchAnswer {
        /// The request answered.
        request: u64,
        /// The outcome, as the peer keeps it (its log shared, not copied, in flight).
        outcome: Option<Box<KeptOutcome>>,
    },
    /// A frame of the atomic broadcast's session `session` reached this node.
    Frame {
        /// The session.
        session: u64,
    },
    /// `PeerRequest::AppliedSince`: the certificates the peer applied from `position` on.
    AppliedSince {
        /// Where to start.
        position: u64,
    },
    /// The page answering it.
    Applied {
        /// The certificates, in the order the peer applied them.
        page: AppliedPage,
    },
    /// A wallet's order, after the certificates the elder lacks to vote on it.
    Order {
        /// The wallet's gathering it belongs to.
        attempt: u64,
        /// Which of the attempt's orders (a double-spender sends two).
        ballot: usize,
        /// The order.
        order: SignedOrder,
        /// The sender's earlier certificates, for an elder that is behind on it.
        handover: Vec<Certificate>,
    },
    /// An elder's answer to an order.
    Voted {
        /// The gathering.
        attempt: u64,
        /// The order.
        ballot: usize,
        /// The vote or the refusal.
        answer: Result<Vote, LedgerError>,
    },
    /// Certificates for the elder to apply, in order.
    Certificates(Vec<Certificate>),
    /// What became of each.
    Confirmed(Vec<Result<Confirmation, LedgerError>>),
}

/// Delays, losses and partitions, all drawn from one seeded stream.
pub(crate) struct Network {
    settings: NetworkSettings,
    rng: StdRng,
    /// While partitioned, each node's side; `None` while the network is whole.
    sides: Option<Vec<u8>>,
    /// Messages handed to the network.
    pub(crate) sent: u64,
    /// Lost on the way.
    pub(crate) lost: u64,
    /// Dropped at a partition.
    pub(crate) partitioned: u64,
    /// Arrived at a node that was down.
    pub(crate) undeliverable: u64,
    /// Partitions made and healed: who reaches whom changed this often.
    pub(crate) changes: u64,
}

impl Network {
    /// A whole network drawing its delays and losses from `seed`.
    pub(crate) fn new(settings: NetworkSettings, seed: u64) -> Self {
        Network {
            settings,
            rng: StdRng::seed_from_u64(seed),
            sides: None,
            sent: 0,
            lost: 0,
            partitioned: 0,
            undeliverable: 0,
            changes: 0,
        }
    }

    /// How long the next message takes.
    pub(crate) fn latency(&mut self) -> Millis {
        self.settings.base_latency_ms + self.rng.gen_range(0..=self.settings.jitter_ms)
    }

    /// Whether the next message is lost on the way.
    pub(crate) fn loses(&mut self) -> bool {
        self.settings.loss > 0.0 && self.rng.gen_bool(self.settings.loss)
    }

    /// Whether a message from `a` reaches `b` as the network stands now.
    pub(crate) fn reachable(&self, a: Endpoint, b: Endpoint) -> bool {
        match (a, b, &self.sides) {
            (Endpoint::Node(a), Endpoint::Node(b), Some(sides)) => sides.get(a) == sides.get(b),
            _ => true,
        }
    }

    /// Whether node `a` reaches node `b`.
    pub(crate) fn nodes_reach(&self, a: usize, b: usize) -> bool {
        self.reachable(Endpoint::Node(a), Endpoint::Node(b))
    }

    /// Splits the nodes: `sides[i]` is node i's side.
    pub(crate) fn partition(&mut self, sides: Vec<u8>) {
        self.sides = Some(sides);
        self.changes += 1;
    }

    /// Makes the network whole again.
    pub(crate) fn heal(&mut self) {
        self.sides = None;
        self.changes += 1;
    }

    /// Node `node`'s side while partitioned, `None` while the network is whole.
    pub(crate) fn side_of(&self, node: usize) -> Option<u8> {
        self.sides.as_ref().and_then(|sides| sides.get(node).copied())
    }

    /// Whether a partition stands.
    pub(crate) fn is_partitioned(&self) -> bool {
        self.sides.is_some()
    }
}
