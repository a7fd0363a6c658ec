//! Criterion micro-benchmarks of the ledger's hot paths and the ed25519 work they bound.

// `criterion_main!` generates undocumented public items.
#![allow(missing_docs)]

use acre_benches::signed_messages;
use acre_ledger::store::MemoryStore;
use acre_ledger::testkit::{key, order_from};
use acre_ledger::{AccountId, Allocation, Amount, CertificateBuilder, Committee, DurableElder, Vote};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::Signature;

fn crypto(c: &mut Criterion) {
    let samples = signed_messages(64);
    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_strict", |b| {
        let (message, signature, key) = &samples[0];
        b.iter(|| key.verify_strict(message.as_bytes(), signature).is_ok())
    });
    let messages: Vec<&[u8]> = samples.iter().map(|s| s.0.as_bytes().as_slice()).collect();
    let signatures: Vec<Signature> = samples.iter().map(|s| s.1).collect();
    let keys: Vec<_> = samples.iter().map(|s| s.2).collect();
    group.throughput(Throughput::Elements(64));
    group.bench_function("verify_batch_64", |b| {
        b.iter(|| ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok())
    });
    group.finish();
}

fn elder(c: &mut Criterion) {
    let elder_keys: Vec<_> = (0..4).map(|i| key(1, i)).collect();
    let committee = Committee::new(elder_keys.iter().map(AccountId::of)).expect("committee");
    let (alice, bob) = (key(2, 0), key(2, 1));
    let mut elder = DurableElder::open(committee.clone(), elder_keys[0].clone(), MemoryStore::new()).expect("open");
    elder
        .genesis(vec![Allocation { account: AccountId::of(&alice), amount: Amount::from_credits(1).expect("amount") }])
        .expect("genesis");
    let order = order_from(&elder.state().network(), &alice, &bob, 1, 0);
    let state = elder.state().clone();
    let mut group = c.benchmark_group("elder");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decide_order", |b| b.iter(|| state.handle_order(&order).is_ok()));
    let mut builder = CertificateBuilder::new(committee.clone(), order.order.clone());
    let certificate = elder_keys[..3]
        .iter()
        .filter_map(|k| builder.add(&Vote::sign(k, order.order.digest())).expect("vote"))
        .last()
        .expect("quorum");
    group.bench_function("decide_certificate", |b| b.iter(|| state.handle_certificate(&certificate).is_ok()));
    group.finish();
}

criterion_group!(benches, crypto, elder);
criterion_main!(benches);
