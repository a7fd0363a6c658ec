//! The elder network over libp2p: TCP (noise, yamux) and QUIC, identify, and one
//! request-response protocol carrying orders, votes, certificates, catch-up pages, chunks
//! and storage challenges.
//!
//! One task owns the swarm ([`Network::run`]). Others reach it through a
//! [`NetworkHandle`] over a bounded channel; every outbound request gets libp2p's request
//! id and a timeout. Inbound requests are answered by an [`InboundHandler`] on tasks of
//! their own, so a slow disk never stalls the swarm.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use acre_ledger::store::AppliedPage;
use acre_ledger::{
    AccountId, AppId, Certificate, Confirmation, Digest, LedgerError, SignatureBytes, SignedOrder, Vote,
};
use acre_proofs::challenge::{Answer, Challenge};
use acre_proofs::ChunkAddress;
use futures::StreamExt;
use libp2p::request_response::{self, cbor, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use acre_core::{EpochOutcome, LogItem};

/// The ledger protocol's name and version.
const LEDGER_PROTOCOL: &str = "/acre/ledger/1";
/// Sent in identify, so peers can tell an Acre node from anything else.
const AGENT_PROTOCOL: &str = "/acre/1";
/// Commands waiting for the swarm task.
const COMMAND_DEPTH: usize = 1024;
/// Most messages in one request; larger batches are refused unread.
pub const MAX_BATCH: usize = 4096;
/// Largest request and response on the wire.
const MAX_REQUEST_BYTES: u64 = 4 << 20;
const MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// How often unreachable bootstrap peers and elders are dialled again.
const REDIAL_INTERVAL: Duration = Duration::from_secs(1);

/// A request from one node to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Vote on these orders.
    Orders(Vec<SignedOrder>),
    /// Apply these certificates.
    Certificates(Vec<Certificate>),
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
    /// Keep this chunk: you are one of its holders (from a section member only).
    StoreChunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Send this chunk's bytes, if you hold it.
    FetchChunk(ChunkAddress),
    /// Which of these chunks do you hold?
    Holds(Vec<ChunkAddress>),
    /// Prove you hold these blocks.
    Challenge(Challenge),
    /// How many bytes of chunks do you hold, of how many offered?
    Status,
    /// These chunks are stored in the section, with their sizes (from a member only).
    Register(Vec<(ChunkAddress, u64)>),
    /// A frame of the section log's engine (from an elder of that session only).
    LogFrame {
        /// The session (the epoch it orders).
        session: u64,
        /// The engine's frame.
        #[serde(with = "serde_bytes")]
        frame: Vec<u8>,
    },
    /// Put this into the section log: an enrolment or a store payment, each of which
    /// proves itself.
    Propose(Box<LogItem>),
    /// Send the outcome of this closed epoch, if you have it.
    Outcome(u64),
    /// The sender took part in serving one read through this app (from a member only):
    /// a read counts once two members attest the same `use_id`.
    Metered {
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
    /// The sender's signature on the outcome of a closed epoch.
    EpochSignature {
        /// The epoch.
        epoch: u64,
        /// The signature over the outcome's digest.
        signature: SignatureBytes,
    },
}

/// The answer to a [`PeerRequest`], one result per message for batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Votes or refusals, in the order of the orders.
    Votes(Vec<Result<Vote, Refusal>>),
    /// Confirmations or refusals, in the order of the certificates.
    Confirmations(Vec<Result<Confirmation, Refusal>>),
    /// A page of applied certificates.
    Applied(AppliedPage),
    /// The request as a whole was refused (too large, or this node does not serve it).
    Refused(String),
    /// The chunk is stored (now or before), or the registrations are recorded.
    Done,
    /// The chunk store is full.
    Full {
        /// Bytes held.
        used: u64,
        /// Bytes offered.
        capacity: u64,
    },
    /// A chunk's bytes, or `None` if not held here.
    Chunk(Option<serde_bytes::ByteBuf>),
    /// Per chunk asked, whether it is held here.
    Held(Vec<bool>),
    /// The proofs a challenge asked for.
    Answer(Answer),
    /// A challenged chunk is not held here.
    Missing(ChunkAddress),
    /// A closed epoch's outcome, or `None` if it is not closed here.
    Outcome(Option<Box<EpochOutcome>>),
    /// This node's chunk store.
    Status {
        /// Bytes held.
        used: u64,
        /// Bytes offered.
        capacity: u64,
    },
}

/// A ledger refusal on the wire. [`LedgerError`] is internally tagged (its JSON carries a
/// `code` field), which serde can only read back from a self-describing text format; it
/// travels as its JSON text inside the CBOR message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub LedgerError);

impl Serialize for Refusal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Refusal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text).map(Refusal).map_err(serde::de::Error::custom)
    }
}

/// Results with their refusals in wire form.
pub fn to_wire<T>(results: Vec<Result<T, LedgerError>>) -> Vec<Result<T, Refusal>> {
    results.into_iter().map(|result| result.map_err(Refusal)).collect()
}

/// Why an outbound request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetworkError {
    /// The peer could not be reached, timed out, or closed the stream.
    #[error("peer {peer}: {reason}")]
    Failed {
        /// The peer asked.
        peer: PeerId,
        /// What libp2p reported.
        reason: String,
    },
    /// The network task has stopped.
    #[error("the network has stopped")]
    Stopped,
}

/// A node's view of another: its id and the addresses it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer.
    pub peer: PeerId,
    /// Addresses it listens on, as it announced them or as we dialled it.
    pub addresses: Vec<Multiaddr>,
    /// Whether a connection is open now.
    pub connected: bool,
}

/// What the swarm task is asked to do.
enum Command {
    Request { peer: PeerId, request: PeerRequest, reply: oneshot::Sender<Result<PeerResponse, NetworkError>> },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    ListenAddresses(oneshot::Sender<Vec<Multiaddr>>),
}

/// Answers peers' requests; a node with a ledger serves them, a load generator refuses.
pub trait InboundHandler: Send + Sync + 'static {
    /// The answer to `request` from `peer`.
    fn answer(&self, peer: PeerId, request: PeerRequest) -> impl std::future::Future<Output = PeerResponse> + Send;
}

/// Refuses every request: for clients that only send.
#[derive(Debug, Clone, Copy)]
pub struct RefuseAll;

impl InboundHandler for RefuseAll {
    async fn answer(&self, _peer: PeerId, _request: PeerRequest) -> PeerResponse {
        PeerResponse::Refused("this peer serves no requests".into())
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ledger: cbor::Behaviour<PeerRequest, PeerResponse>,
    identify: identify::Behaviour,
}

/// Settings of the network.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start and whenever their connection drops.
    pub bootstrap: Vec<Multiaddr>,
    /// Peers to keep connected to (the elders), dialled by id at the addresses learnt.
    pub keep_connected: Vec<PeerId>,
    /// How long an outbound request may take.
    pub request_timeout: Duration,
}

/// The swarm and the channel that commands it; consumed by [`Network::run`].
pub struct Network {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    config: NetworkConfig,
    /// Outbound requests waiting for their answer.
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<PeerResponse, NetworkError>>>,
    book: AddressBook,
    /// Answers to inbound requests, made on other tasks, for the swarm to send.
    answers: mpsc::Sender<Answered>,
    answered: mpsc::Receiver<Answered>,
}

/// An inbound request's answer and the channel it goes back on.
type Answered = (ResponseChannel<PeerResponse>, PeerResponse);

/// A cheap, cloneable way to reach the swarm task.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    local: PeerId,
}

/// The libp2p peer id of an account's key (an elder's node key), if it is one.
pub fn peer_id_of(account: &AccountId) -> Option<PeerId> {
    let key = identity::ed25519::PublicKey::try_from_bytes(account.as_bytes()).ok()?;
    Some(identity::PublicKey::from(key).to_peer_id())
}

/// The libp2p identity of a node key.
pub fn identity_of(key: &ed25519_dalek::SigningKey) -> Result<identity::Keypair, identity::DecodingError> {
    identity::Keypair::ed25519_from_bytes(key.to_bytes())
}

impl Network {
    /// Builds the swarm and starts listening.
    pub fn new(identity: identity::Keypair, config: NetworkConfig) -> anyhow::Result<(Network, NetworkHandle)> {
        let local = identity.public().to_peer_id();
        let request_timeout = config.request_timeout;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
            .with_quic()
            .with_behaviour(|key| {
                let codec = cbor::codec::Codec::default()
                    .set_request_size_maximum(MAX_REQUEST_BYTES)
                    .set_response_size_maximum(MAX_RESPONSE_BYTES);
                let protocols = [(StreamProtocol::new(LEDGER_PROTOCOL), ProtocolSupport::Full)];
                let settings = request_response::Config::default()
                    .with_request_timeout(request_timeout)
                    .with_max_concurrent_streams(256);
                Behaviour {
                    ledger: cbor::Behaviour::with_codec(codec, protocols, settings),
                    identify: identify::Behaviour::new(identify::Config::new(AGENT_PROTOCOL.into(), key.public())),
                }
            })?
            // Elders talk all the time; an idle connection is kept rather than redialled.
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        for address in &config.listen {
            swarm.listen_on(address.clone())?;
        }
        let (sender, commands) = mpsc::channel(COMMAND_DEPTH);
        let (answers, answered) = mpsc::channel(COMMAND_DEPTH);
        let network = Network {
            swarm,
            commands,
            config,
            pending: HashMap::new(),
            book: AddressBook::default(),
            answers,
            answered,
        };
        Ok((network, NetworkHandle { commands: sender, local }))
    }

    /// Runs the swarm until every handle is dropped.
    pub async fn run(mut self, handler: impl InboundHandler) {
        let handler = Arc::new(handler);
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    let Some(command) = command else { break };
                    self.command(command);
                }
                Some((channel, response)) = self.answered.recv() => {
                    // Fails only if the peer gave up waiting; nothing is owed then.
                    let _ = self.swarm.behaviour_mut().ledger.send_response(channel, response);
                }
                _ = redial.tick() => self.redial(),
                event = self.swarm.select_next_some() => self.event(event, &handler),
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Request { peer, request, reply } => {
                let id = self.swarm.behaviour_mut().ledger.send_request(&peer, request);
                self.pending.insert(id, reply);
            }
            Command::Peers(reply) => {
                let peers = self
                    .book
                    .addresses
                    .iter()
                    .map(|(peer, addresses)| PeerInfo {
                        peer: *peer,
                        addresses: addresses.iter().cloned().collect(),
                        connected: self.swarm.is_connected(peer),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::ListenAddresses(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
        }
    }

    /// Dials bootstrap addresses whose peer is not connected, and elders known by address.
    fn redial(&mut self) {
        for address in &self.config.bootstrap {
            let connected =
                self.book.dialled.get(&without_peer_id(address)).is_some_and(|peer| self.swarm.is_connected(peer));
            if !connected {
                // Failures arrive as events; the next tick tries again.
                let _ = self.swarm.dial(address.clone());
            }
        }
        for peer in &self.config.keep_connected {
            if *peer != *self.swarm.local_peer_id()
                && !self.swarm.is_connected(peer)
                && self.book.addresses.contains_key(peer)
            {
                let _ = self.swarm.dial(*peer);
            }
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>, handler: &Arc<impl InboundHandler>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                if endpoint.is_dialer() {
                    let address = endpoint.get_remote_address().clone();
                    self.book.dialled.insert(without_peer_id(&address), peer_id);
                    self.book.learn(peer_id, address);
                }
                tracing::debug!(peer = %peer_id, "connected");
                metrics::gauge!("acre_peers").set(self.swarm.connected_peers().count() as f64);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                if num_established == 0 {
                    tracing::debug!(peer = %peer_id, "disconnected");
                }
                metrics::gauge!("acre_peers").set(self.swarm.connected_peers().count() as f64);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for address in info.listen_addrs.into_iter().filter(is_dialable) {
                    self.swarm.add_peer_address(peer_id, address.clone());
                    self.book.learn(peer_id, address);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(event)) => self.ledger_event(event, handler),
            _ => {}
        }
    }

    fn ledger_event(
        &mut self,
        event: request_response::Event<PeerRequest, PeerResponse>,
        handler: &Arc<impl InboundHandler>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let handler = Arc::clone(handler);
                    let answers = self.answers.clone();
                    tokio::spawn(async move {
                        let response = handler.answer(peer, request).await;
                        let _ = answers.send((channel, response)).await;
                    });
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(NetworkError::Failed { peer, reason: error.to_string() }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// Addresses learnt from identify and from dialling.
#[derive(Default)]
struct AddressBook {
    addresses: HashMap<PeerId, HashSet<Multiaddr>>,
    /// Which peer answered at each bootstrap address.
    dialled: HashMap<Multiaddr, PeerId>,
}

impl AddressBook {
    fn learn(&mut self, peer: PeerId, address: Multiaddr) {
        self.addresses.entry(peer).or_default().insert(without_peer_id(&address));
    }
}

/// An address a peer can be dialled at: not the unspecified address.
fn is_dialable(address: &Multiaddr) -> bool {
    !address.iter().any(|part| {
        matches!(part, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_unspecified())
            || matches!(part, libp2p::multiaddr::Protocol::Ip6(ip) if ip.is_unspecified())
    })
}

fn without_peer_id(address: &Multiaddr) -> Multiaddr {
    address.iter().filter(|part| !matches!(part, libp2p::multiaddr::Protocol::P2p(_))).collect()
}

impl NetworkHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// Sends `request` to `peer` and waits for its answer (or the request timeout).
    pub async fn request(&self, peer: PeerId, request: PeerRequest) -> Result<PeerResponse, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Request { peer, request, reply }).await.map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Every peer known, with its addresses and whether it is connected.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Peers(reply)).await.map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }

    /// The addresses this node listens on.
    pub async fn listen_addresses(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::ListenAddresses(reply)).await.map_err(|_| NetworkError::Stopped)?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::{AccountId, Digest};
    use libp2p::request_response::Codec;

    /// Every refusal (and the values inside it) comes back from the wire as it was sent:
    /// the binary codec cannot carry the internally tagged error by itself.
    #[tokio::test]
    async fn responses_with_refusals_cross_the_wire_intact() {
        let elder = AccountId([7; 32]);
        let refusals = vec![
            LedgerError::ConflictingOrder { voted: Digest([1; 32]) },
            LedgerError::UnexpectedSequence { expected: 3, got: 5 },
            LedgerError::UnknownAccount { account: elder },
            LedgerError::InsufficientBalance {
                balance: "1.5".parse().expect("amount"),
                amount: "2".parse().expect("amount"),
            },
            LedgerError::InvalidSignature,
        ];
        let response = PeerResponse::Votes(refusals.iter().cloned().map(|r| Err(Refusal(r))).collect());
        let mut codec = cbor::codec::Codec::<PeerRequest, PeerResponse>::default();
        let protocol = StreamProtocol::new(LEDGER_PROTOCOL);
        let mut wire = futures::io::Cursor::new(Vec::new());
        codec.write_response(&protocol, &mut wire, response).await.expect("encode");
        let mut wire = futures::io::Cursor::new(wire.into_inner());
        let PeerResponse::Votes(back) = codec.read_response(&protocol, &mut wire).await.expect("decode") else {
            panic!("not votes");
        };
        let back: Vec<LedgerError> = back.into_iter().filter_map(|r| r.err()).map(|r| r.0).collect();
        assert_eq!(back, refusals);
    }
}
