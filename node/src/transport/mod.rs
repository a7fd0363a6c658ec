//! The node's transport over libp2p: TCP (noise, yamux) and QUIC, identify, and one
//! request/reply stream per protocol of [`acre_core::wire`] (ledger, chunks, audits, the
//! section log, metering), each negotiated under its own name and capped at its own size.
//! It frames bytes only: messages are encoded and decoded by the typed [`NetworkHandle::request`]
//! on the way out and by the [`InboundHandler`] (the node's router) on the way in.
//!
//! One task owns the swarm ([`Network::run`]). Others reach it through a
//! [`NetworkHandle`] over a bounded channel; every outbound request gets libp2p's request
//! id and a timeout. Inbound requests are answered on tasks of their own, so a slow disk
//! never stalls the swarm.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use acre_core::wire::{self, Audits, Chunks, Ledger, Log, Meter, Protocol};
use acre_ledger::AccountId;
use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};

mod frames;
use frames::FrameCodec;

pub use acre_core::wire::MAX_BATCH;

/// Sent in identify, so peers can tell an Acre node from anything else.
const AGENT_PROTOCOL: &str = "/acre/1";
/// Commands waiting for the swarm task.
const COMMAND_DEPTH: usize = 1024;
/// How often unreachable bootstrap peers and elders are dialled again.
const REDIAL_INTERVAL: Duration = Duration::from_secs(1);
/// Most inbound streams open at once per connection and protocol.
const CONCURRENT_STREAMS: usize = 256;
/// A chunk store writes and syncs up to a MiB on a disk that may be busy with every other
/// upload: it is given this many times the usual request timeout, so a holder that is
/// slow is waited for instead of being reported silent (at the defaults, 9 s: under the
/// API's 10 s, so the client hears which holder was silent rather than a bare timeout).
pub const STORE_PATIENCE: u32 = 3;

/// Which protocol a frame travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolId {
    /// [`acre_core::wire::Ledger`].
    Ledger,
    /// [`acre_core::wire::Chunks`].
    Chunks,
    /// [`acre_core::wire::Audits`].
    Audits,
    /// [`acre_core::wire::Log`].
    Log,
    /// [`acre_core::wire::Meter`].
    Meter,
}

impl ProtocolId {
    /// Its name on the wire, which metrics label it with.
    fn name(self) -> &'static str {
        match self {
            ProtocolId::Ledger => Ledger::NAME,
            ProtocolId::Chunks => Chunks::NAME,
            ProtocolId::Audits => Audits::NAME,
            ProtocolId::Log => Log::NAME,
            ProtocolId::Meter => Meter::NAME,
        }
    }
}

/// The [`ProtocolId`] of a typed protocol.
pub trait Routed: Protocol {
    /// Its id.
    const ID: ProtocolId;
}

impl Routed for Ledger {
    const ID: ProtocolId = ProtocolId::Ledger;
}
impl Routed for Chunks {
    const ID: ProtocolId = ProtocolId::Chunks;
}
impl Routed for Audits {
    const ID: ProtocolId = ProtocolId::Audits;
}
impl Routed for Log {
    const ID: ProtocolId = ProtocolId::Log;
}
impl Routed for Meter {
    const ID: ProtocolId = ProtocolId::Meter;
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
    /// The reply did not decode as the protocol's reply: as good as none.
    #[error(transparent)]
    Malformed(#[from] wire::WireError),
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
    /// When it last answered a request of this node's.
    pub last_answer: Option<std::time::Instant>,
    /// How many times a connection to it opened while none was open: a restart between
    /// two looks at `connected` shows here.
    pub sessions: u64,
}

/// Where an outbound request's reply bytes (or its failure) go.
type ReplySlot = oneshot::Sender<Result<Vec<u8>, NetworkError>>;

/// What the swarm task is asked to do.
enum Command {
    Request {
        peer: PeerId,
        protocol: ProtocolId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    ListenAddresses(oneshot::Sender<Vec<Multiaddr>>),
}

/// Answers peers' requests: the node's router, or a client that serves nothing.
pub trait InboundHandler: Send + Sync + 'static {
    /// The reply's bytes to `request`'s, which came from `peer` on `protocol`.
    fn answer(
        &self,
        peer: PeerId,
        protocol: ProtocolId,
        request: Vec<u8>,
    ) -> impl std::future::Future<Output = Vec<u8>> + Send;
}

/// Refuses every request: for clients that only send.
#[derive(Debug, Clone, Copy)]
pub struct RefuseAll;

impl InboundHandler for RefuseAll {
    async fn answer(&self, _peer: PeerId, protocol: ProtocolId, _request: Vec<u8>) -> Vec<u8> {
        refusal(protocol, "this peer serves no requests".into())
    }
}

/// The encoded refusal of a whole request on `protocol`.
pub fn refusal(protocol: ProtocolId, reason: String) -> Vec<u8> {
    fn refuse<P: Protocol>(reason: String) -> Vec<u8> {
        // A refusal is a short string; if even it cannot be encoded, an empty reply
        // fails to decode at the asker, which is what a refusal amounts to there.
        wire::encode(P::NAME, &P::refused(reason)).unwrap_or_else(|error| {
            tracing::error!(%error, "cannot encode a refusal");
            Vec::new()
        })
    }
    match protocol {
        ProtocolId::Ledger => refuse::<Ledger>(reason),
        ProtocolId::Chunks => refuse::<Chunks>(reason),
        ProtocolId::Audits => refuse::<Audits>(reason),
        ProtocolId::Log => refuse::<Log>(reason),
        ProtocolId::Meter => refuse::<Meter>(reason),
    }
}

/// One request/reply stream of frames.
type Frames = request_response::Behaviour<FrameCodec>;

#[derive(NetworkBehaviour)]
struct Behaviour {
    ledger: Frames,
    chunks: Frames,
    audits: Frames,
    log: Frames,
    meter: Frames,
    identify: identify::Behaviour,
}

impl Behaviour {
    fn frames(&mut self, protocol: ProtocolId) -> &mut Frames {
        match protocol {
            ProtocolId::Ledger => &mut self.ledger,
            ProtocolId::Chunks => &mut self.chunks,
            ProtocolId::Audits => &mut self.audits,
            ProtocolId::Log => &mut self.log,
            ProtocolId::Meter => &mut self.meter,
        }
    }
}

/// The frames behaviour of protocol `P`, capped at its sizes.
fn frames<P: Protocol>(timeout: Duration) -> Frames {
    let codec = FrameCodec::new(P::MAX_REQUEST_BYTES as usize, P::MAX_REPLY_BYTES as usize);
    let settings = request_response::Config::default()
        .with_request_timeout(timeout)
        .with_max_concurrent_streams(CONCURRENT_STREAMS);
    request_response::Behaviour::with_codec(codec, [(StreamProtocol::new(P::NAME), ProtocolSupport::Full)], settings)
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
    /// Outbound requests waiting for their answer, by protocol and libp2p's id (ids are
    /// counted per protocol's behaviour).
    pending: HashMap<(ProtocolId, OutboundRequestId), (ReplySlot, std::time::Instant)>,
    book: AddressBook,
    /// Answers to inbound requests, made on other tasks, for the swarm to send.
    answers: mpsc::Sender<Answered>,
    answered: mpsc::Receiver<Answered>,
}

/// An inbound request's answer and the channel it goes back on.
type Answered = (ProtocolId, ResponseChannel<Vec<u8>>, Vec<u8>);

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

/// The account whose key a peer id was made from, if it was made from an ed25519 key
/// (as every node's is): what a connection authenticates a peer outside the section as.
pub fn account_of_peer(peer: &PeerId) -> Option<AccountId> {
    let multihash = peer.as_ref();
    // Ed25519 peer ids inline the key itself, under the identity hash (code 0).
    if multihash.code() != 0 {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?.try_into_ed25519().ok()?;
    Some(AccountId(key.to_bytes()))
}

/// The libp2p identity of a node key.
pub fn identity_of(key: &ed25519_dalek::SigningKey) -> Result<identity::Keypair, identity::DecodingError> {
    identity::Keypair::ed25519_from_bytes(key.to_bytes())
}

impl Network {
    /// Builds the swarm and starts listening.
    pub fn new(identity: identity::Keypair, config: NetworkConfig) -> anyhow::Result<(Network, NetworkHandle)> {
        let local = identity.public().to_peer_id();
        let timeout = config.request_timeout;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
            .with_quic()
            .with_behaviour(|key| Behaviour {
                ledger: frames::<Ledger>(timeout),
                chunks: frames::<Chunks>(timeout * STORE_PATIENCE),
                audits: frames::<Audits>(timeout),
                log: frames::<Log>(timeout),
                meter: frames::<Meter>(timeout),
                identify: identify::Behaviour::new(identify::Config::new(AGENT_PROTOCOL.into(), key.public())),
            })?
            // Elders talk all the time; an idle connection is kept rather than redialled.
            // Each request opens a substream for one protocol, which every node speaks:
            // the request follows its protocol's name at once rather than after the
            // listener's confirmation, which would cost every request a second round trip.
            // A peer that does not speak it resets the substream, and the request fails as
            // it would have.
            .with_swarm_config(|c| {
                c.with_idle_connection_timeout(Duration::from_secs(300))
                    .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
            })
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
                Some((protocol, channel, reply)) = self.answered.recv() => {
                    // Fails only if the peer gave up waiting; nothing is owed then.
                    let _ = self.swarm.behaviour_mut().frames(protocol).send_response(channel, reply);
                }
                _ = redial.tick() => self.redial(),
                event = self.swarm.select_next_some() => self.event(event, &handler),
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Request { peer, protocol, bytes, reply } => {
                let id = self.swarm.behaviour_mut().frames(protocol).send_request(&peer, bytes);
                self.pending.insert((protocol, id), (reply, std::time::Instant::now()));
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
                        last_answer: self.book.answered.get(peer).copied(),
                        sessions: self.book.sessions.get(peer).copied().unwrap_or(0),
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
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                if num_established.get() == 1 {
                    self.book.count_session(peer_id, |peer| self.swarm.is_connected(peer));
                }
                if endpoint.is_dialer() {
                    let address = endpoint.get_remote_address().clone();
                    self.book.dialled.insert(without_peer_id(&address), peer_id);
                    let swarm = &self.swarm;
                    self.book.learn(peer_id, address, |peer| swarm.is_connected(peer));
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
                    let swarm = &self.swarm;
                    // What the book refuses (a peer announcing a flood of addresses, a
                    // flood of peers) the swarm is not told either.
                    if self.book.learn(peer_id, address.clone(), |peer| swarm.is_connected(peer)) {
                        self.swarm.add_peer_address(peer_id, address);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(event)) => {
                self.frames_event(ProtocolId::Ledger, event, handler)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Chunks(event)) => {
                self.frames_event(ProtocolId::Chunks, event, handler)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Audits(event)) => {
                self.frames_event(ProtocolId::Audits, event, handler)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Log(event)) => self.frames_event(ProtocolId::Log, event, handler),
            SwarmEvent::Behaviour(BehaviourEvent::Meter(event)) => self.frames_event(ProtocolId::Meter, event, handler),
            _ => {}
        }
    }

    fn frames_event(
        &mut self,
        protocol: ProtocolId,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
        handler: &Arc<impl InboundHandler>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let handler = Arc::clone(handler);
                    let answers = self.answers.clone();
                    tokio::spawn(async move {
                        let reply = handler.answer(peer, protocol, request).await;
                        let _ = answers.send((protocol, channel, reply)).await;
                    });
                }
                request_response::Message::Response { request_id, response } => {
                    self.book.answered.insert(peer, std::time::Instant::now());
                    if let Some((reply, sent)) = self.pending.remove(&(protocol, request_id)) {
                        metrics::histogram!("acre_request_seconds", "protocol" => protocol.name())
                            .record(sent.elapsed().as_secs_f64());
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some((reply, _)) = self.pending.remove(&(protocol, request_id)) {
                    let _ = reply.send(Err(NetworkError::Failed { peer, reason: error.to_string() }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, ?protocol, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// Most peers whose sessions are counted at once (see [`AddressBook::count_session`]).
const MAX_SESSION_PEERS: usize = 4096;

/// Addresses learnt from identify and from dialling.
#[derive(Default)]
struct AddressBook {
    addresses: HashMap<PeerId, HashSet<Multiaddr>>,
    /// Which peer answered at each bootstrap address.
    dialled: HashMap<Multiaddr, PeerId>,
    /// When each peer last answered a request: a process that is stopped keeps its
    /// connections open but answers nothing.
    answered: HashMap<PeerId, std::time::Instant>,
    /// Per peer, the connections opened while none was open.
    sessions: HashMap<PeerId, u64>,
}

impl AddressBook {
    /// Counts a new session of `peer`. Anyone can connect under fresh keys, so past
    /// [`MAX_SESSION_PEERS`] the counts of peers not connected now are dropped (a member
    /// among them loses only the excuse for a restart it had between two looks).
    fn count_session(&mut self, peer: PeerId, connected: impl Fn(&PeerId) -> bool) {
        if self.sessions.len() >= MAX_SESSION_PEERS && !self.sessions.contains_key(&peer) {
            self.sessions.retain(|known, _| connected(known));
        }
        *self.sessions.entry(peer).or_default() += 1;
    }

    /// Keeps `address` for `peer`, if the book has room; whether it holds it now. Anyone can
    /// connect under fresh keys and announce any addresses, so a peer keeps at most
    /// [`ADDRESSES_PER_PEER`], and past [`MAX_ADDRESS_PEERS`] peers the addresses of those
    /// not connected now are dropped (a member among them is learnt again when it next
    /// connects, and the elders' own are dialled from the bootstrap list).
    fn learn(&mut self, peer: PeerId, address: Multiaddr, connected: impl Fn(&PeerId) -> bool) -> bool {
        if self.addresses.len() >= MAX_ADDRESS_PEERS && !self.addresses.contains_key(&peer) {
            self.addresses.retain(|known, _| connected(known));
            self.answered.retain(|known, _| connected(known));
            if self.addresses.len() >= MAX_ADDRESS_PEERS {
                return false;
            }
        }
        let known = self.addresses.entry(peer).or_default();
        let address = without_peer_id(&address);
        if known.len() >= ADDRESSES_PER_PEER && !known.contains(&address) {
            return false;
        }
        known.insert(address);
        true
    }
}

/// Peers whose addresses the book keeps at once (see [`AddressBook::learn`]).
const MAX_ADDRESS_PEERS: usize = 4096;
/// Addresses kept per peer: a node listens on a few (TCP and QUIC, a few interfaces).
const ADDRESSES_PER_PEER: usize = 8;

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

    /// Sends `request` to `peer` on protocol `P` and waits for its reply (or the request
    /// timeout).
    pub async fn request<P: Routed>(&self, peer: PeerId, request: &P::Request) -> Result<P::Reply, NetworkError> {
        let bytes = wire::encode(P::NAME, request)?;
        let (reply, answer) = oneshot::channel();
        let command = Command::Request { peer, protocol: P::ID, bytes, reply };
        self.commands.send(command).await.map_err(|_| NetworkError::Stopped)?;
        let bytes = answer.await.map_err(|_| NetworkError::Stopped)??;
        Ok(wire::decode(P::NAME, &bytes)?)
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

    fn address(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("address")
    }

    #[test]
    fn the_address_book_stays_bounded_whatever_peers_announce() {
        let mut book = AddressBook::default();
        let flooder = PeerId::random();
        let kept = (1..=100).filter(|port| book.learn(flooder, address(*port), |_| true)).count();
        assert_eq!(kept, ADDRESSES_PER_PEER, "a peer keeps a few addresses");
        assert!(book.learn(flooder, address(1), |_| true), "a known one is still held");
        let member = PeerId::random();
        book.learn(member, address(7070), |_| true);
        for _ in 0..MAX_ADDRESS_PEERS * 2 {
            book.learn(PeerId::random(), address(9), |peer| *peer == member);
        }
        assert!(book.addresses.len() <= MAX_ADDRESS_PEERS, "{}", book.addresses.len());
        assert!(book.addresses.contains_key(&member), "a connected peer's addresses stay");
        while book.addresses.len() < MAX_ADDRESS_PEERS {
            book.learn(PeerId::random(), address(9), |_| true);
        }
        assert!(!book.learn(PeerId::random(), address(9), |_| true), "with every known peer connected, newcomers wait");
    }
}
