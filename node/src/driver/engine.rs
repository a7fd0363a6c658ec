//! The section's agreed log on `aleph-bft`: the elders order [`SectionEvent`]s (audit
//! reports, pool payments, joins, removals) into one sequence that every elder applies to
//! its own `SectionState`. This module is the glue the engine needs — the elders' ed25519
//! keys as its keychain, a transport of opaque frames, a provider of this elder's pending
//! events, a handler of finalized batches, a synced unit backup — and nothing of the
//! protocol itself.
//!
//! One engine session runs per elder set (its `session_id`), as Fedimint runs one per
//! block; a change of elders starts a new session.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use acre_ledger::Digest;
use aleph_bft::{
    Index, Keychain, MultiKeychain, NodeCount, NodeIndex, PartialMultisignature, Recipient, SignatureSet, SpawnHandle,
    TaskHandle,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use futures::channel::oneshot;
use futures::FutureExt;
use parity_scale_codec::{Decode, Encode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

/// Hash context of the keychain's signing domain.
const DOMAIN_CONTEXT: &str = "acre 2026 section log v1";
/// The last round of a session; the default delays reach it after hours, and the
/// elders start a new session long before (each elder-set change does).
const MAX_ROUND: u16 = 5000;
/// Events one unit carries at most.
const EVENTS_PER_UNIT: usize = 256;
/// Frames waiting to be sent; beyond this they are dropped (the engine retransmits).
pub const OUTBOUND_FRAMES: usize = 4096;

/// The engine's hash: BLAKE3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Blake3;

impl aleph_bft::Hasher for Blake3 {
    type Hash = [u8; 32];

    fn hash(bytes: &[u8]) -> [u8; 32] {
        *blake3::hash(bytes).as_bytes()
    }
}

/// An elder's signature in the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub struct ElderSignature(pub [u8; 64]);

/// The elders' keys, in the session's order, and this elder's own: what the engine signs
/// and checks units with. Every message is signed under a domain that hashes the network
/// (its genesis), the session and the whole elder list, so an elder with another view of
/// the set cannot sign validly, and a unit signed for one network is worth nothing on
/// another whose elders hold the same keys.
#[derive(Clone)]
pub struct ElderKeychain {
    index: NodeIndex,
    signer: Arc<SigningKey>,
    elders: Arc<Vec<VerifyingKey>>,
    domain: [u8; 32],
}

impl std::fmt::Debug for ElderKeychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElderKeychain").field("index", &self.index.0).field("elders", &self.elders.len()).finish()
    }
}

impl ElderKeychain {
    /// The keychain of `signer` among `elders` (sorted as every elder sorts them) for
    /// `session` of `network`; `None` if the signer is not one of them.
    pub fn new(signer: SigningKey, elders: Vec<VerifyingKey>, network: Digest, session: u64) -> Option<Self> {
        let index = elders.iter().position(|key| *key == signer.verifying_key())?;
        let mut hasher = blake3::Hasher::new_derive_key(DOMAIN_CONTEXT);
        hasher.update(&network.0);
        hasher.update(&session.to_le_bytes());
        for key in &elders {
            hasher.update(key.as_bytes());
        }
        let domain = *hasher.finalize().as_bytes();
        Some(ElderKeychain { index: NodeIndex(index), signer: Arc::new(signer), elders: Arc::new(elders), domain })
    }

    fn message(&self, msg: &[u8]) -> Vec<u8> {
        [self.domain.as_slice(), msg].concat()
    }
}

impl Index for ElderKeychain {
    fn index(&self) -> NodeIndex {
        self.index
    }
}

impl Keychain for ElderKeychain {
    type Signature = ElderSignature;

    fn node_count(&self) -> NodeCount {
        NodeCount(self.elders.len())
    }

    fn sign(&self, msg: &[u8]) -> ElderSignature {
        ElderSignature(self.signer.sign(&self.message(msg)).to_bytes())
    }

    fn verify(&self, msg: &[u8], signature: &ElderSignature, index: NodeIndex) -> bool {
        self.elders
            .get(index.0)
            .is_some_and(|key| key.verify_strict(&self.message(msg), &Signature::from_bytes(&signature.0)).is_ok())
    }
}

impl MultiKeychain for ElderKeychain {
    type PartialMultisignature = SignatureSet<ElderSignature>;

    fn bootstrap_multi(&self, signature: &ElderSignature, index: NodeIndex) -> Self::PartialMultisignature {
        SignatureSet::with_size(self.node_count()).add_signature(signature, index)
    }

    /// Complete with a quorum of signatures, every one of them valid.
    fn is_complete(&self, msg: &[u8], partial: &Self::PartialMultisignature) -> bool {
        let quorum = self.node_count().consensus_threshold();
        partial.size() == self.node_count()
            && partial.item_count() >= quorum.0
            && partial.iter().all(|(index, signature)| self.verify(msg, signature, index))
    }
}

/// The engine's transport: frames out to a recipient, frames in from anyone. The node
/// carries them over libp2p; tests carry them over channels.
pub struct FrameNetwork {
    outbound: mpsc::Sender<(Recipient, Vec<u8>)>,
    inbound: mpsc::Receiver<Vec<u8>>,
}

impl FrameNetwork {
    /// A transport over these channels.
    pub fn new(outbound: mpsc::Sender<(Recipient, Vec<u8>)>, inbound: mpsc::Receiver<Vec<u8>>) -> Self {
        FrameNetwork { outbound, inbound }
    }
}

/// Transports for `count` elders in one process, joined by channels (for tests and
/// benchmarks): a frame to `Everyone` reaches every other elder. Call within a tokio
/// runtime; the routing tasks end when the transports are dropped.
pub fn in_memory_networks(count: usize) -> Vec<FrameNetwork> {
    let (inboxes, inbound): (Vec<_>, Vec<_>) = (0..count).map(|_| mpsc::channel(OUTBOUND_FRAMES)).unzip();
    inbound
        .into_iter()
        .enumerate()
        .map(|(index, inbound)| {
            let (outbound, mut frames) = mpsc::channel::<(Recipient, Vec<u8>)>(OUTBOUND_FRAMES);
            let inboxes: Vec<mpsc::Sender<Vec<u8>>> = inboxes.clone();
            tokio::spawn(async move {
                while let Some((recipient, frame)) = frames.recv().await {
                    for (to, inbox) in inboxes.iter().enumerate() {
                        let wanted = match recipient {
                            Recipient::Everyone => to != index,
                            Recipient::Node(node) => node.0 == to,
                        };
                        if wanted {
                            let _ = inbox.try_send(frame.clone());
                        }
                    }
                }
            });
            FrameNetwork::new(outbound, inbound)
        })
        .collect()
}

/// What the engine sends between elders.
pub type Frame = aleph_bft::NetworkData<Blake3, Vec<u8>, ElderSignature, SignatureSet<ElderSignature>>;

#[async_trait::async_trait]
impl aleph_bft::Network<Frame> for FrameNetwork {
    fn send(&self, data: Frame, recipient: Recipient) {
        // A full queue drops the frame; the engine retransmits what matters.
        let _ = self.outbound.try_send((recipient, data.encode()));
    }

    async fn next_event(&mut self) -> Option<Frame> {
        loop {
            // Cancel-safe: a dropped `recv` loses nothing.
            match self.inbound.recv().await {
                Some(frame) => match Frame::decode(&mut frame.as_slice()) {
                    Ok(data) => return Some(data),
                    Err(_) => continue,
                },
                // The node is stopping; ending the session is the terminator's job.
                None => futures::future::pending::<()>().await,
            }
        }
    }
}

/// Hands the engine this elder's pending items, a batch per unit.
pub struct EventProvider<T> {
    pending: mpsc::Receiver<T>,
}

impl<T> EventProvider<T> {
    /// A provider fed by `pending`.
    pub fn new(pending: mpsc::Receiver<T>) -> Self {
        EventProvider { pending }
    }
}

#[async_trait::async_trait]
impl<T: Serialize + Send + 'static> aleph_bft::DataProvider for EventProvider<T> {
    type Output = Vec<u8>;

    async fn get_data(&mut self) -> Option<Vec<u8>> {
        let mut batch = Vec::new();
        while batch.len() < EVENTS_PER_UNIT {
            match self.pending.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return None;
        }
        postcard::to_stdvec(&batch).ok()
    }
}

/// An item in the agreed order, with the index (in the session's elder list) of the elder
/// whose unit carried it: the engine has checked that elder's signature on the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered<T> {
    /// The proposing elder's index.
    pub creator: usize,
    /// The item.
    pub item: T,
}

/// Passes finalized units on, in the agreed order, as items with their creators.
pub struct EventSink<T> {
    finalized: mpsc::UnboundedSender<Ordered<T>>,
}

impl<T> EventSink<T> {
    /// A sink into `finalized`.
    pub fn new(finalized: mpsc::UnboundedSender<Ordered<T>>) -> Self {
        EventSink { finalized }
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> aleph_bft::UnitFinalizationHandler for EventSink<T> {
    type Data = Vec<u8>;
    type Hasher = Blake3;

    fn batch_finalized(&mut self, batch: Vec<aleph_bft::OrderedUnit<Vec<u8>, Blake3>>) {
        for unit in batch {
            // A batch that does not decode came from a faulty elder; every elder skips it alike.
            let Some(items) = unit.data.and_then(|data| postcard::from_bytes::<Vec<T>>(&data).ok()) else { continue };
            for item in items {
                let _ = self.finalized.send(Ordered { creator: unit.creator.0, item });
            }
        }
    }
}

/// The unit backup: appended and synced on every flush, so a restarted elder replays what
/// it sent and never contradicts it.
pub struct SyncedFile(File);

impl SyncedFile {
    /// Opens `path` for appending (the saver), creating it if needed.
    pub fn append(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        crate::config::sync_parent(path)?;
        Ok(SyncedFile(file))
    }
}

impl futures::AsyncWrite for SyncedFile {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let file = &mut self.get_mut().0;
        // Every unit the engine sends is synced first; the sync must not hold up the
        // worker's other tasks (frames, votes, the API).
        Poll::Ready(crate::blocking::blocking(|| file.flush().and_then(|()| file.sync_data())))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Runs the engine's tasks on tokio.
#[derive(Debug, Clone, Copy)]
pub struct TokioSpawner;

impl SpawnHandle for TokioSpawner {
    fn spawn(&self, _name: &'static str, task: impl futures::Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }

    fn spawn_essential(
        &self,
        _name: &'static str,
        task: impl futures::Future<Output = ()> + Send + 'static,
    ) -> TaskHandle {
        let (done, finished) = oneshot::channel();
        tokio::spawn(async move {
            task.await;
            let _ = done.send(());
        });
        Box::pin(finished.map(|result| result.map_err(|_| ())))
    }
}

/// Why the log could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// This node is not one of the session's elders.
    #[error("this node is not an elder of the session")]
    NotAnElder,
    /// The engine refused its configuration.
    #[error("the engine refused its configuration")]
    Config,
    /// The backup could not be opened.
    #[error("unit backup: {0}")]
    Backup(#[from] std::io::Error),
}

/// One elder's part in a session of the section log.
pub struct LogSession {
    /// The network the section belongs to (see [`acre_ledger::network_id`]).
    pub network: Digest,
    /// The session's number (one per elder set).
    pub session: u64,
    /// This elder's key.
    pub signer: SigningKey,
    /// The session's elders, in the order every elder sorts them.
    pub elders: Vec<VerifyingKey>,
    /// Where the unit backup lives.
    pub backup: std::path::PathBuf,
    /// The delay between this elder's units (rounds).
    pub round_delay: Duration,
}

/// Runs the session until `exit` fires: pending events from `pending` go into units,
/// finalized events come out of `finalized` in the agreed order.
pub async fn run<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
    session: LogSession,
    network: FrameNetwork,
    pending: mpsc::Receiver<T>,
    finalized: mpsc::UnboundedSender<Ordered<T>>,
    exit: oneshot::Receiver<()>,
) -> Result<(), LogError> {
    let keychain = ElderKeychain::new(session.signer, session.elders, session.network, session.session)
        .ok_or(LogError::NotAnElder)?;
    let round_millis = session.round_delay.as_millis() as f64;
    let delays = aleph_bft::DelayConfig {
        // The first unit waits a little for the other elders to start the session too.
        unit_creation_delay: Arc::new(move |round| match round {
            0 => Duration::from_secs(1),
            _ => aleph_bft::exponential_slowdown(round, round_millis, 3000, 1.005),
        }),
        ..aleph_bft::default_delay_config()
    };
    let config = aleph_bft::create_config(
        keychain.node_count(),
        keychain.index(),
        session.session,
        MAX_ROUND,
        delays,
        Duration::from_secs(60),
    )
    .map_err(|_| LogError::Config)?;
    let loader = futures::io::AllowStdIo::new(
        std::fs::OpenOptions::new().create(true).read(true).append(true).open(&session.backup)?,
    );
    let saver = SyncedFile::append(&session.backup)?;
    let io = aleph_bft::LocalIO::new_with_unit_finalization_handler(
        EventProvider::new(pending),
        EventSink::new(finalized),
        saver,
        loader,
    );
    let terminator = aleph_bft::Terminator::create_root(exit, "section log");
    aleph_bft::run_session(config, io, network, keychain, TokioSpawner, terminator).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::section_state::SectionEvent;
    use acre_ledger::{Amount, Digest};

    fn keys(count: u8) -> Vec<SigningKey> {
        let mut keys: Vec<SigningKey> = (0..count).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
        keys.sort_by_key(|k| k.verifying_key().to_bytes());
        keys
    }

    const NETWORK: Digest = Digest([5; 32]);

    #[test]
    fn signatures_bind_the_network_the_session_and_the_elder_set() {
        let keys = keys(4);
        let elders: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let chain = ElderKeychain::new(keys[1].clone(), elders.clone(), NETWORK, 7).expect("an elder");
        let signature = chain.sign(b"unit");
        assert!(chain.verify(b"unit", &signature, NodeIndex(1)));
        assert!(!chain.verify(b"unit", &signature, NodeIndex(2)), "another elder's index");
        assert!(!chain.verify(b"unit", &signature, NodeIndex(9)), "out of range");
        let other_session = ElderKeychain::new(keys[0].clone(), elders.clone(), NETWORK, 8).expect("an elder");
        assert!(!other_session.verify(b"unit", &signature, NodeIndex(1)), "another session");
        let other_network = ElderKeychain::new(keys[0].clone(), elders.clone(), Digest([6; 32]), 7).expect("an elder");
        assert!(!other_network.verify(b"unit", &signature, NodeIndex(1)), "another network, the same keys");
        let mut multi = chain.bootstrap_multi(&signature, NodeIndex(1));
        assert!(!chain.is_complete(b"unit", &multi));
        for (index, key) in keys.iter().enumerate().filter(|(i, _)| *i != 1).take(2) {
            let signer = ElderKeychain::new(key.clone(), elders.clone(), NETWORK, 7).expect("an elder");
            multi = multi.add_signature(&signer.sign(b"unit"), NodeIndex(index));
        }
        assert!(chain.is_complete(b"unit", &multi), "a quorum of 3 of 4");
        assert!(ElderKeychain::new(SigningKey::from_bytes(&[99; 32]), elders, NETWORK, 7).is_none());
    }

    /// Four elders over in-memory channels: each proposes its own events, and all of them
    /// finalize every event, in one and the same order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_elders_agree_on_one_order_of_everyones_events() {
        let keys = keys(4);
        let elders: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outputs = Vec::new();
        let mut exits = Vec::new();
        let mut tasks = Vec::new();
        for (index, network) in in_memory_networks(4).into_iter().enumerate() {
            let (propose, pending) = mpsc::channel(64);
            for n in 0..3u8 {
                let id = Digest([index as u8 * 10 + n; 32]);
                propose
                    .send(SectionEvent::PoolPayment {
                        id,
                        amount: Amount::from_nanos(1).expect("amount"),
                        app_fee: None,
                        chunks: Vec::new(),
                    })
                    .await
                    .expect("queue");
            }
            let (finalized, output) = mpsc::unbounded_channel::<Ordered<SectionEvent>>();
            let (exit, stop) = oneshot::channel();
            let session = LogSession {
                network: NETWORK,
                session: 1,
                signer: keys[index].clone(),
                elders: elders.clone(),
                backup: dir.path().join(format!("backup-{index}")),
                round_delay: Duration::from_millis(100),
            };
            tasks.push(tokio::spawn(run(session, network, pending, finalized, stop)));
            outputs.push((output, propose));
            exits.push(exit);
        }
        let mut sequences = Vec::new();
        for (output, _propose) in &mut outputs {
            let mut seen = Vec::new();
            while seen.len() < 12 {
                let event = tokio::time::timeout(Duration::from_secs(60), output.recv())
                    .await
                    .expect("finalized in time")
                    .expect("an event");
                seen.push(event.item);
            }
            sequences.push(seen);
        }
        for sequence in &sequences[1..] {
            assert_eq!(sequence, &sequences[0], "one order at every elder");
        }
        let distinct: std::collections::BTreeSet<Vec<u8>> =
            sequences[0].iter().map(|e| postcard::to_stdvec(e).expect("encode")).collect();
        assert_eq!(distinct.len(), 12, "every elder's events, each once");
        for exit in exits {
            let _ = exit.send(());
        }
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}
