//! The margin under the audit answer deadline, measured on this machine over libp2p on
//! 127.0.0.1: how long an honest holder takes to answer one round's challenges (16
//! chunks, 4 blocks each, sent at once as an elder sends them, read from its chunk
//! store on disk and signed), beside how long a holder that keeps nothing needs before it
//! can answer the same round: fetching the 16 chunks from a co-holder (`Chunks::Fetch`)
//! and building their proofs. A deadline between the two passes the first and fails the
//! second; the ratio says how wide that gap is here, where the network is a loopback.
//!
//! `cargo run --release -p acre-benches --bin audit-bench`

use std::sync::Arc;
use std::time::{Duration, Instant};

use acre_benches::connected_transports;
use acre_core::storage::SignedAnswer;
use acre_core::wire::{self, AuditReply, Audits, ChunkReply, ChunkRequest, Chunks, Protocol};
use acre_ledger::testkit::key;
use acre_node::storage::chunk_store::ChunkStore;
use acre_node::transport::{refusal, InboundHandler, NetworkHandle, ProtocolId};
use acre_proofs::challenge::{answer, Answer, Challenge, ChallengeItem, Outboard, BLOCKS_PER_ITEM};
use acre_proofs::{Chunk, MAX_CHUNK_BYTES};
use anyhow::{ensure, Context, Result};
use ed25519_dalek::SigningKey;
use futures::future::try_join_all;
use libp2p::PeerId;

/// Chunks an elder challenges per holder per round (the default `audit_chunks`).
const CHUNKS: usize = 16;
/// Rounds measured of each kind.
const ROUNDS: usize = 60;

/// A holder: answers challenges from its chunk store, signed, and hands out chunks.
struct Holder {
    store: Arc<ChunkStore>,
    key: SigningKey,
}

impl Holder {
    async fn reply(&self, protocol: ProtocolId, request: &[u8]) -> Result<Vec<u8>> {
        let store = Arc::clone(&self.store);
        match protocol {
            ProtocolId::Audits => {
                let challenge: Challenge = wire::decode(Audits::NAME, request)?;
                let asked = challenge.clone();
                let proofs = tokio::task::spawn_blocking(move || {
                    challenge.items.iter().map(|item| store.answer(item)).collect::<Result<Vec<_>, _>>()
                })
                .await??;
                let signed = SignedAnswer::sign(&self.key, &asked, Answer { nonce: asked.nonce, proofs });
                Ok(wire::encode(Audits::NAME, &AuditReply::Answer(signed))?)
            }
            ProtocolId::Chunks => {
                let ChunkRequest::Fetch(address) = wire::decode(Chunks::NAME, request)? else {
                    anyhow::bail!("only fetches are served here");
                };
                let bytes = tokio::task::spawn_blocking(move || store.get(&address)).await??;
                Ok(wire::encode(Chunks::NAME, &ChunkReply::Chunk(bytes.map(serde_bytes::ByteBuf::from)))?)
            }
            _ => anyhow::bail!("not served here"),
        }
    }
}

impl InboundHandler for Holder {
    async fn answer(&self, _peer: PeerId, protocol: ProtocolId, request: Vec<u8>) -> Vec<u8> {
        match self.reply(protocol, &request).await {
            Ok(reply) => reply,
            Err(error) => refusal(protocol, error.to_string()),
        }
    }
}

fn main() -> Result<()> {
    let root = tempfile::tempdir()?;
    let store = Arc::new(ChunkStore::open(root.path().join("chunks"), 1 << 30)?);
    let mut addresses = Vec::with_capacity(CHUNKS);
    for index in 0..CHUNKS as u8 {
        let mut bytes = vec![0u8; MAX_CHUNK_BYTES];
        blake3::Hasher::new().update(b"audit bench").update(&[index]).finalize_xof().fill(&mut bytes);
        let chunk = Chunk::new(bytes)?;
        store.put(&chunk)?;
        addresses.push(chunk.address());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (honest, fetched) = runtime.block_on(async {
        let holder_key = key(95, 0);
        let (holder, peer, elder) =
            connected_transports(Holder { store, key: holder_key.clone() }, &holder_key, &key(95, 1)).await?;
        let mut honest = Vec::with_capacity(ROUNDS);
        let mut fetched = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS as u64 {
            let randomness: [u8; 32] = rand::random();
            let items: Vec<ChallengeItem> = addresses
                .iter()
                .map(|address| {
                    ChallengeItem::for_holder(&randomness, &[2; 32], &[1; 32], round, *address, MAX_CHUNK_BYTES as u64)
                })
                .collect();
            honest.push(honest_round(&elder, peer, round, &items).await?);
            fetched.push(fetching_round(&elder, peer, &items).await?);
        }
        drop(holder);
        Ok::<_, anyhow::Error>((honest, fetched))
    })?;
    let (honest_p50, honest_p99) = percentiles(honest);
    let (fetched_p50, fetched_p99) = percentiles(fetched);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("acre audit-bench: one round of {CHUNKS} single-chunk challenges of {BLOCKS_PER_ITEM} blocks, libp2p on 127.0.0.1");
    println!(
        "honest holder, answers from its disk, signed       p50 {:>8.2} ms   p99 {:>8.2} ms",
        ms(honest_p50),
        ms(honest_p99)
    );
    println!(
        "a holder keeping nothing: fetch {CHUNKS} MiB and prove  p50 {:>8.2} ms   p99 {:>8.2} ms",
        ms(fetched_p50),
        ms(fetched_p99)
    );
    println!(
        "margin: fetching's p50 / honest p99 = {:.1}   (a deadline between the two separates them; goal > 2)",
        fetched_p50.as_secs_f64() / honest_p99.as_secs_f64()
    );
    println!(
        "fetch rate on this loopback: {:.0} MB/s; over a 100 Mbit/s link the {CHUNKS} MiB alone take {:.0} ms",
        (CHUNKS * MAX_CHUNK_BYTES) as f64 / fetched_p50.as_secs_f64() / 1e6,
        (CHUNKS * MAX_CHUNK_BYTES * 8) as f64 / 100e6 * 1e3
    );
    Ok(())
}

/// One challenge per chunk, all at once, until every signed answer is back.
async fn honest_round(elder: &NetworkHandle, peer: PeerId, round: u64, items: &[ChallengeItem]) -> Result<Duration> {
    let started = Instant::now();
    let answers = try_join_all(items.iter().map(|item| {
        let challenge =
            Challenge { nonce: round, seed: [0; 32], holder: [1; 32], challenger: [2; 32], items: vec![item.clone()] };
        async move { elder.request::<Audits>(peer, &challenge).await }
    }))
    .await?;
    let elapsed = started.elapsed();
    ensure!(answers.iter().all(|reply| matches!(reply, AuditReply::Answer(_))), "the holder did not answer");
    Ok(elapsed)
}

/// What a holder that keeps nothing must do before it can answer: fetch every challenged
/// chunk whole from a co-holder, then build its outboard and the proofs.
async fn fetching_round(elder: &NetworkHandle, peer: PeerId, items: &[ChallengeItem]) -> Result<Duration> {
    let started = Instant::now();
    let proofs = try_join_all(items.iter().map(|item| async move {
        let reply = elder.request::<Chunks>(peer, &ChunkRequest::Fetch(item.address)).await?;
        let ChunkReply::Chunk(Some(bytes)) = reply else { anyhow::bail!("the co-holder did not hand the chunk over") };
        let item = item.clone();
        tokio::task::spawn_blocking(move || prove(&item, bytes.into_vec())).await?
    }))
    .await?;
    let elapsed = started.elapsed();
    ensure!(proofs.len() == items.len(), "a proof is missing");
    Ok(elapsed)
}

fn prove(item: &ChallengeItem, bytes: Vec<u8>) -> Result<Vec<u8>> {
    let chunk = Chunk::new(bytes)?;
    ensure!(chunk.address() == item.address, "the fetched bytes are another chunk");
    let outboard = Outboard::create(&chunk);
    answer(item, chunk.size(), chunk.bytes(), &outboard).context("proving the fetched chunk")
}

/// The median and the 99th percentile.
fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let at = |fraction: f64| times[((times.len() - 1) as f64 * fraction).round() as usize];
    (at(0.5), at(0.99))
}
