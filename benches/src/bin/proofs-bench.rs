//! Prints how fast storage-challenge answers verify, beside BLAKE3's hashing rate
//! measured in the same run: an answer for one 1 KiB block of a 1 MiB chunk hashes the
//! block and the ten hash pairs above it (1,664 bytes), so hashing speed bounds it.
//!
//! Then chunk ingest into a node's chunk store (each 1 MiB chunk and its outboard synced
//! before `put` returns) beside the lesser of BLAKE3's rate and this disk's synced
//! sequential write rate, both measured in the same run.
//!
//! Then the same through one node's API (`POST /v1/chunks`, a section of one). Last,
//! `acre put` of 64 MiB files on a 7-node devnet of real processes (each chunk synced on
//! its 4 holders before the upload goes on), beside a quarter of the one-node API rate:
//! every byte is written four times on the same disk; encrypted (the default) beside
//! `--public`, and ChaCha20-Poly1305's own rate beside self-encryption's.
//!
//! `cargo run --release -p acre-benches --bin proofs-bench`

use std::path::Path;
use std::time::Duration;

use std::io::Write;
use std::time::Instant;

use acre_api::storage::{ChunkEntry, StorePayment};
use acre_benches::{devnet_wallet, rate, sibling_binary};
use acre_ledger::economics::store_memo;
use acre_ledger::{AccountId, TransferOrder};
use acre_node::storage::chunk_store::ChunkStore;
use acre_proofs::challenge::{answer, verify, ChallengeItem, Outboard};
use acre_proofs::{Chunk, MAX_CHUNK_BYTES};
use acre_tests::{DevnetProcess, NodeProcess};
use acre_wallet::client::NodeClient;
use anyhow::{ensure, Context, Result};

const MIN_TIME: Duration = Duration::from_millis(1500);
/// Bytes an answer for one block makes the verifier hash: the block and ten hash pairs.
const HASHED_PER_ANSWER: f64 = 1024.0 + 10.0 * 64.0;

fn main() -> Result<()> {
    let chunk = Chunk::new((0..MAX_CHUNK_BYTES).map(|i| (i % 251) as u8).collect())?;
    let hashing = rate(1, MIN_TIME, || {
        std::hint::black_box(blake3::hash(chunk.bytes()));
    }) * MAX_CHUNK_BYTES as f64;
    // BLAKE3 hashes a whole MiB with SIMD across chunks; a proof's pieces hash one at a
    // time, so the bound below uses the single-chunk rate too.
    let block = &chunk.bytes()[..1024];
    let single = rate(1, MIN_TIME, || {
        std::hint::black_box(blake3::hash(block));
    }) * 1024.0;
    let outboard = Outboard::create(&chunk);
    let items: Vec<ChallengeItem> =
        (0..256u64).map(|nonce| ChallengeItem::draw(&[3; 32], nonce, chunk.address(), chunk.size(), 1)).collect();
    let proofs =
        items.iter().map(|item| answer(item, chunk.size(), chunk.bytes(), &outboard)).collect::<Result<Vec<_>, _>>()?;
    let mut index = 0;
    let verified = rate(1, MIN_TIME, || {
        index = (index + 1) % items.len();
        assert!(verify(&items[index], chunk.size(), &proofs[index]).is_ok());
    });
    let answered = rate(1, MIN_TIME, || {
        index = (index + 1) % items.len();
        std::hint::black_box(answer(&items[index], chunk.size(), chunk.bytes(), &outboard).ok());
    });
    let bound = single / HASHED_PER_ANSWER;
    println!("acre proofs-bench: one 1 KiB block of a 1 MiB chunk per answer, one core");
    println!("BLAKE3, 1 MiB at a time           {:>10.0} MB/s", hashing / 1e6);
    println!("BLAKE3, 1 KiB at a time           {:>10.0} MB/s", single / 1e6);
    println!("answers verified                  {verified:>10.0} /s   (target >= 200,000/s)");
    println!("  bound: 1 KiB-rate / {HASHED_PER_ANSWER} bytes = {bound:.0}/s; ratio {:.2}", verified / bound);
    println!(
        "answers made by a holder          {answered:>10.0} /s   (encodes the 16 KiB group of the block, from memory)"
    );

    // Every phase writes under one directory, removed only at the end: files a phase
    // deleted would slow the next phase's file creations (ext4 passes over inodes freed in
    // the last minute when it allocates one), charging one phase for another's cleanup.
    let scratch = tempfile::tempdir()?;
    let disk = synced_write_rate(&scratch.path().join("disk"))?;
    let ingest = chunk_ingest_rate(&scratch.path().join("store"))?;
    let through_node = node_ingest_rate(&scratch.path().join("node"))?;
    let bound = disk.min(hashing);
    println!("\nchunk ingest, 1 MiB chunks, each synced before it is acknowledged");
    println!("disk, synced 1 MiB sequential writes {:>7.0} MB/s", disk / 1e6);
    println!(
        "chunk store alone                 {:>10.0} MB/s   ratio to min(BLAKE3, disk) {:.2}",
        ingest / 1e6,
        ingest / bound
    );
    println!(
        "one node, PUT /v1/chunks raw      {:>10.0} MB/s   ratio to min(BLAKE3, disk) {:.2}   (target >= 0.50)",
        through_node / 1e6,
        through_node / bound
    );

    let sealing = sealing_rates()?;
    let upload = devnet_uploads(&scratch.path().join("devnet"))?;
    println!("\nacre put, 64 MiB, 7-node devnet on this machine, 4 synced copies of every chunk");
    println!(
        "upload, encrypted (the default)   {:>10.1} MB/s   ratio to one node's PUT rate / 4 copies {:.2}   (target >= 0.80)",
        upload.encrypted / 1e6,
        upload.encrypted / (through_node / 4.0)
    );
    println!(
        "upload, --public (no encryption)  {:>10.1} MB/s   encrypted / public {:.2}   (target >= 0.90)",
        upload.public / 1e6,
        upload.encrypted / upload.public
    );
    println!(
        "ChaCha20-Poly1305, 1 MiB seals    {:>10.0} MB/s   self-encryption of 64 MiB {:.0} MB/s ({:.2} of the cipher)",
        sealing.cipher / 1e6,
        sealing.self_encryption / 1e6,
        sealing.self_encryption / sealing.cipher
    );
    // The devnet puts vary by more than encryption costs; this share is the steadier figure.
    println!(
        "self-encryption's share of an encrypted put's time: {:.1}%   (target < 10%)",
        100.0 * upload.encrypted / sealing.self_encryption
    );
    Ok(())
}

/// In-process rates of what `acre put` adds to a public upload.
struct Sealing {
    /// ChaCha20-Poly1305 sealing 1 MiB pieces, one core.
    cipher: f64,
    /// `encrypt_file` on 64 MiB: key derivation, sealing and the address of each piece.
    self_encryption: f64,
}

fn sealing_rates() -> Result<Sealing> {
    use chacha20poly1305::aead::{Aead, KeyInit};
    let piece = vec![5u8; acre_proofs::encryption::MAX_PIECE_BYTES];
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&[9u8; 32].into());
    let nonce = [0u8; 12].into();
    let sealed = rate(1, MIN_TIME, || {
        std::hint::black_box(cipher.encrypt(&nonce, piece.as_slice()).ok());
    }) * piece.len() as f64;
    let mut file = vec![0u8; 64 << 20];
    blake3::Hasher::new().update(b"sealing bench").finalize_xof().fill(&mut file);
    let started = Instant::now();
    std::hint::black_box(acre_proofs::encrypt_file(&file, acre_proofs::Privacy::Convergent)?);
    let self_encryption = file.len() as f64 / started.elapsed().as_secs_f64();
    Ok(Sealing { cipher: sealed, self_encryption })
}

/// `acre put` rates with and without encryption, on one devnet.
struct Uploads {
    encrypted: f64,
    public: f64,
}

/// Bytes per second of `acre put` of fresh 64 MiB files on a new 7-node devnet, payment
/// included: encrypted and `--public` alternately, twice each, so neither mode gets the
/// emptier disks; each mode's figure is its total bytes over its total time.
fn devnet_uploads(dir: &Path) -> Result<Uploads> {
    const FILE_BYTES: usize = 64 << 20;
    let devnet_dir = dir.join("devnet");
    let mut devnet = DevnetProcess::start(&sibling_binary("acre-node")?, &devnet_dir, 7);
    let wallet = devnet_wallet(dir.join("keys"), devnet_dir.clone())?;
    wallet(&["key", "new", "payer"])?;
    wallet(&["faucet", "payer", "1000"])?;
    let mut times = [Duration::ZERO; 2];
    for (round, public) in [false, true, true, false].into_iter().enumerate() {
        let mut content = vec![0u8; FILE_BYTES];
        blake3::Hasher::new().update(b"upload bench").update(&[round as u8]).finalize_xof().fill(&mut content);
        let file = dir.join(format!("file-{round}.bin"));
        std::fs::write(&file, &content)?;
        let path = file.to_str().context("a UTF-8 path")?;
        let mut args = vec!["--json", "put", path, "--from", "payer", "--yes"];
        if public {
            args.push("--public");
        }
        let started = Instant::now();
        wallet(&args)?;
        times[usize::from(public)] += started.elapsed();
    }
    devnet.stop();
    let rate_of = |time: Duration| (2 * FILE_BYTES) as f64 / time.as_secs_f64();
    Ok(Uploads { encrypted: rate_of(times[0]), public: rate_of(times[1]) })
}

/// Bytes per second of distinct 1 MiB chunks put raw to one node's API (a section of one,
/// so one copy), 4 requests in flight, after one payment for all of them.
fn node_ingest_rate(dir: &Path) -> Result<f64> {
    const IN_FLIGHT: usize = 4;
    let data_dir = dir.join("node");
    let binary = sibling_binary("acre-node")?;
    let init = std::process::Command::new(&binary).arg("init").arg("--data-dir").arg(&data_dir).output()?;
    ensure!(init.status.success(), "init: {}", String::from_utf8_lossy(&init.stderr));
    let payer = acre_ledger::testkit::key(40, 0);
    let genesis_path = data_dir.join("genesis.json");
    let mut genesis: serde_json::Value = serde_json::from_slice(&std::fs::read(&genesis_path)?)?;
    genesis["allocations"] = serde_json::json!([{ "account": AccountId::of(&payer).to_string(), "amount": "1000" }]);
    std::fs::write(&genesis_path, genesis.to_string())?;
    let node = NodeProcess::start(&binary, &data_dir);
    let client = NodeClient::new(&node.api)?;

    let chunks: Vec<Chunk> = (0..INGEST_CHUNKS as u32)
        .map(|i| Chunk::new((0..MAX_CHUNK_BYTES as u32).map(|j| (j.wrapping_mul(2_246_822_519) ^ i) as u8).collect()))
        .collect::<Result<_, _>>()?;
    let listed: Vec<ChunkEntry> = chunks.iter().map(|c| ChunkEntry { address: c.address(), size: c.size() }).collect();
    let named: Vec<([u8; 32], u64)> = chunks.iter().map(|c| (c.address().0, c.size())).collect();
    let quote = client.quote(named.iter().map(|(_, size)| size).sum(), None)?;
    let order = TransferOrder {
        network: client.section()?.network,
        from: AccountId::of(&payer),
        to: quote.pool,
        amount: quote.price.context("the node quotes nothing")?,
        sequence: 0,
        app: None,
        memo: store_memo(&named),
        hidden: None,
    }
    .sign(&payer);
    let payment = StorePayment { certificate: client.submit_order(&order)?.certificate, chunks: listed };
    let id = client.accept_payment(&payment)?.id;
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = chunks
            .chunks(chunks.len().div_ceil(IN_FLIGHT))
            .map(|share| {
                let client = client.clone();
                scope.spawn(move || {
                    share
                        .iter()
                        .try_for_each(|chunk| client.put_chunk(&chunk.address(), chunk.bytes(), Some(&id)).map(|_| ()))
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| anyhow::anyhow!("an upload thread panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();
    node.stop();
    Ok((INGEST_CHUNKS * MAX_CHUNK_BYTES) as f64 / elapsed.as_secs_f64())
}

/// Chunks the ingest and disk measurements write.
const INGEST_CHUNKS: usize = 256;

/// Bytes per second of 1 MiB appends to a file, each followed by `fdatasync`.
fn synced_write_rate(dir: &Path) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::File::create(dir.join("disk"))?;
    let block = vec![7u8; MAX_CHUNK_BYTES];
    let started = Instant::now();
    for _ in 0..INGEST_CHUNKS {
        file.write_all(&block)?;
        file.sync_data()?;
    }
    Ok((INGEST_CHUNKS * MAX_CHUNK_BYTES) as f64 / started.elapsed().as_secs_f64())
}

/// Bytes per second of distinct 1 MiB chunks through `ChunkStore::put`, hashing included.
fn chunk_ingest_rate(dir: &Path) -> Result<f64> {
    let store = ChunkStore::open(dir, u64::MAX)?;
    let payloads: Vec<Vec<u8>> = (0..INGEST_CHUNKS as u32)
        .map(|i| (0..MAX_CHUNK_BYTES as u32).map(|j| (j.wrapping_mul(2_654_435_761) ^ i) as u8).collect())
        .collect();
    let started = Instant::now();
    for payload in payloads {
        store.put(&Chunk::new(payload)?)?;
    }
    Ok((INGEST_CHUNKS * MAX_CHUNK_BYTES) as f64 / started.elapsed().as_secs_f64())
}
