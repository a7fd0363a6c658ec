//! Benchmarks of Acre. Every figure is printed beside a limit measured in the same run on
//! the same machine (ed25519 signing and verification rates), so a ratio, not an absolute
//! time, says whether the code is fast. `make bench` builds the release binaries and runs
//! `ledger-bench` (the ledger in-process) and `elder-bench` (one elder process fed over
//! libp2p); `cargo bench -p acre-benches` runs the criterion micro-benchmarks.

use std::time::{Duration, Instant};

use acre_ledger::testkit::key;
use acre_ledger::{vote_message, Digest};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Operations per second of `work`, which performs `count` operations per call, over at
/// least `min_time`.
pub fn rate(count: usize, min_time: Duration, mut work: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut done = 0usize;
    while done == 0 || start.elapsed() < min_time {
        work();
        done += count;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// This machine's ed25519 rates, one core, measured now.
#[derive(Debug, Clone, Copy)]
pub struct CryptoLimits {
    /// Signatures made per second.
    pub signs: f64,
    /// Single strict verifications per second.
    pub verifies: f64,
    /// Signatures verified per second in batches of 64.
    pub batch_verifies: f64,
}

/// Signed vote messages from distinct keys, as certificates carry them.
pub fn signed_messages(count: usize) -> Vec<(Digest, Signature, VerifyingKey)> {
    (0..count as u64)
        .map(|i| {
            let signer: SigningKey = key(77, i);
            let message = vote_message(&Digest::derive("bench", &[&i.to_le_bytes()]));
            (message, signer.sign(message.as_bytes()), signer.verifying_key())
        })
        .collect()
}

impl CryptoLimits {
    /// Measures signing, verification and batch-of-64 verification for `min_time` each.
    pub fn measure(min_time: Duration) -> Self {
        let samples = signed_messages(64);
        let signer = key(78, 0);
        let mut index = 0;
        let signs = rate(1, min_time, || {
            index = (index + 1) % samples.len();
            std::hint::black_box(signer.sign(samples[index].0.as_bytes()));
        });
        let verifies = rate(1, min_time, || {
            index = (index + 1) % samples.len();
            let (message, signature, key) = &samples[index];
            assert!(key.verify_strict(message.as_bytes(), signature).is_ok());
        });
        let messages: Vec<&[u8]> = samples.iter().map(|s| s.0.as_bytes().as_slice()).collect();
        let signatures: Vec<Signature> = samples.iter().map(|s| s.1).collect();
        let keys: Vec<VerifyingKey> = samples.iter().map(|s| s.2).collect();
        let batch_verifies = rate(64, min_time, || {
            assert!(ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok());
        });
        CryptoLimits { signs, verifies, batch_verifies }
    }

    /// Orders per second if an order cost only its one verification and one signature.
    pub fn order_bound(&self) -> f64 {
        1.0 / (1.0 / self.verifies + 1.0 / self.signs)
    }

    /// Certificates per second if one cost only `quorum` batch-verified signatures.
    pub fn certificate_bound(&self, quorum: usize) -> f64 {
        self.batch_verifies / quorum as f64
    }

    /// Whole transfers per second through `elders` elders on one core, if each cost only
    /// its cryptography: every elder verifies and signs the order, the client verifies
    /// every vote, and every elder batch-verifies a quorum of votes.
    pub fn transfer_bound(&self, elders: usize, quorum: usize) -> f64 {
        let n = elders as f64;
        let seconds = n * (2.0 / self.verifies + 1.0 / self.signs) + n * quorum as f64 / self.batch_verifies;
        1.0 / seconds
    }
}
