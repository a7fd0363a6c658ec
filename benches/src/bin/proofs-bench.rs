//! Prints how fast storage-challenge answers verify, beside BLAKE3's hashing rate
//! measured in the same run: an answer for one 1 KiB block of a 1 MiB chunk hashes the
//! block and the ten hash pairs above it (1,664 bytes), so hashing speed bounds it.
//!
//! `cargo run --release -p acre-benches --bin proofs-bench`

use std::time::Duration;

use acre_benches::rate;
use acre_proofs::challenge::{answer, verify, ChallengeItem, Outboard};
use acre_proofs::{Chunk, MAX_CHUNK_BYTES};
use anyhow::Result;

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
    let proofs = items.iter().map(|item| answer(item, chunk.bytes(), &outboard)).collect::<Result<Vec<_>, _>>()?;
    let mut index = 0;
    let verified = rate(1, MIN_TIME, || {
        index = (index + 1) % items.len();
        assert!(verify(&items[index], chunk.size(), &proofs[index]).is_ok());
    });
    let answered = rate(1, MIN_TIME, || {
        index = (index + 1) % items.len();
        std::hint::black_box(answer(&items[index], chunk.bytes(), &outboard).ok());
    });
    let bound = single / HASHED_PER_ANSWER;
    println!("acre proofs-bench: one 1 KiB block of a 1 MiB chunk per answer, one core");
    println!("BLAKE3, 1 MiB at a time           {:>10.0} MB/s", hashing / 1e6);
    println!("BLAKE3, 1 KiB at a time           {:>10.0} MB/s", single / 1e6);
    println!("answers verified                  {verified:>10.0} /s   (target >= 200,000/s)");
    println!("  bound: 1 KiB-rate / {HASHED_PER_ANSWER} bytes = {bound:.0}/s; ratio {:.2}", verified / bound);
    println!("answers made by a holder          {answered:>10.0} /s   (reads and re-hashes one 16 KiB group)");
    Ok(())
}
