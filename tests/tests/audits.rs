//! Audits on the wire, against a 5-node devnet of real processes: a holder answers only a
//! challenge that names it, from the elder that sent it, and signs what it answers. The
//! test speaks the audit protocol itself, over libp2p on 127.0.0.1, as the one elder that
//! does not hold the chunk (its process killed, its key taken over): the member a
//! freeloader would need to fool.
//!
//! The relay attack this stops: a member that stores nothing receives its challenge and
//! hands it on to an honest co-holder, whose answer proves the same blocks — as it is,
//! or, from an elder, rewritten as a challenge of its own naming the co-holder. Each
//! holder used to answer any member's challenge about any blocks of any chunk it held.
//!
//! The same holder proves a chunk to a member about to delete its own extra copy
//! (`ChunkRequest::Prove`), under the same rules: a chunk it holds is proven, one it does
//! not is said missing, a challenge relayed from another holder's is refused, and so is an
//! outsider. And a member that asks the holder to keep a chunk nobody paid for is refused,
//! and the holder keeps nothing.

mod common;

use std::time::Duration;

use acre_core::storage::SignedAnswer;
use acre_core::wire::{AuditReply, Audits, ChunkReply, ChunkRequest, Chunks};
use acre_ledger::AccountId;
use acre_node::transport::NetworkHandle;
use acre_proofs::audit::{judge, Audit, Outcome};
use acre_proofs::challenge::{Challenge, ChallengeItem};
use acre_proofs::placement::node_name;
use acre_proofs::ChunkAddress;
use acre_tests::send_signal;
use common::{rand_secret, Fixture};
use ed25519_dalek::SigningKey;
use libp2p::PeerId;

/// Connects as `key` to `peer`, once it answers the audit protocol.
async fn connect(key: &SigningKey, bootstrap: &[String], peer: PeerId) -> NetworkHandle {
    let probe = Challenge { nonce: 0, seed: [0; 32], holder: [0; 32], challenger: [0; 32], items: vec![] };
    // Well inside the 20 s after which the elders would report the killed elder.
    common::connect::<Audits>(key, bootstrap, &[peer], &probe, Duration::from_secs(12)).await
}

fn refusal(reply: &AuditReply) -> &str {
    match reply {
        AuditReply::Refused(reason) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_holder_answers_only_its_own_challenge_from_the_elder_it_names_and_signs_what_it_answers() {
    let fixture = Fixture::start(5);
    let dir = tempfile::tempdir().expect("tempdir");
    fixture.wallet_json(&["key", "new", "alice"]);
    fixture.wallet_json(&["faucet", "alice", "100"]);
    let file = dir.path().join("one.bin");
    // Big enough that its chunks have many more blocks than a challenge asks.
    let content: Vec<u8> = (0..16_384).flat_map(|_| rand_secret()).collect();
    std::fs::write(&file, &content).expect("write file");
    fixture.wallet_json(&["put", file.to_str().expect("utf-8 path"), "--from", "alice", "--yes"]);
    let sealed = acre_proofs::encrypt_file(&content, acre_proofs::Privacy::Convergent).expect("encrypt");
    let chunk: ChunkAddress = sealed.chunks[0].address();
    let holders = fixture.get(fixture.api(0), &format!("/v1/chunks/{chunk}/holders"));
    let size = holders["size"].as_u64().expect("a registered chunk has a size");
    let holder_ids: Vec<AccountId> = holders["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| h["node"].as_str().expect("node").parse().expect("id"))
        .collect();
    assert_eq!(holder_ids.len(), 4, "{holders}");
    let nodes = &fixture.manifest.nodes;
    let elder = nodes.iter().find(|n| !holder_ids.contains(&n.id)).expect("the one node that does not hold it");
    let (asked, co_holder) = (
        nodes.iter().find(|n| n.id == holder_ids[0]).expect("a holder"),
        nodes.iter().find(|n| n.id == holder_ids[1]).expect("another holder"),
    );
    let elder_key = acre_node::config::key::load(&elder.data_dir.join(acre_node::config::KEY_FILE)).expect("key");
    send_signal(elder.pid, "KILL");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let peer: PeerId = asked.peer_id.parse().expect("peer id");
        let network = connect(&elder_key, &asked.libp2p, peer).await;
        let challenge = |holder: &AccountId, challenger: &AccountId, nonce: u64| {
            let (seed, holder, challenger) = (rand_secret(), node_name(&holder.0), node_name(&challenger.0));
            let item = ChallengeItem::for_holder(&seed, &challenger, &holder, nonce, chunk, size);
            Challenge { nonce, seed, holder, challenger, items: vec![item] }
        };
        let ask = |challenge: Challenge| {
            let network = network.clone();
            async move { network.request::<Audits>(peer, &challenge).await.expect("a reply") }
        };

        // The relay: a challenge for the co-holder, handed to this holder. Refused.
        let relayed = ask(challenge(&co_holder.id, &elder.id, 1)).await;
        assert!(refusal(&relayed).contains("another holder"), "{relayed:?}");
        // Posing as another elder: refused.
        let posed = ask(challenge(&asked.id, &co_holder.id, 2)).await;
        assert!(refusal(&posed).contains("another challenger"), "{posed:?}");
        // An elder asked about blocks of the chunk (here: the blocks a challenge to the
        // co-holder draws) puts them to this holder under a challenge of its own: the
        // seed does not draw them for this holder, so it is refused.
        let asked_of_co_holder = challenge(&co_holder.id, &elder.id, 6);
        let relayed_blocks = Challenge { holder: node_name(&asked.id.0), ..asked_of_co_holder };
        let reply = ask(relayed_blocks).await;
        assert!(refusal(&reply).contains("not drawn from the seed"), "{reply:?}");

        // Its own challenge, from the elder it names: answered, signed, proven.
        let own = challenge(&asked.id, &elder.id, 3);
        let AuditReply::Answer(signed) = ask(own.clone()).await else { panic!("the holder did not answer") };
        assert!(signed.is_from(&asked.id, &own), "the answer is the holder's own word on this challenge");
        assert!(!signed.is_from(&co_holder.id, &own));
        let audit = Audit { holder: own.holder, challenge: own.clone(), sizes: vec![size] };
        assert_eq!(judge(&audit, &signed.answer), Outcome::Passed);
        let replayed = challenge(&asked.id, &elder.id, 4);
        assert!(!signed.is_from(&asked.id, &replayed), "an answer does not carry over to another round");
        let forged = SignedAnswer::sign(&elder_key, &own, signed.answer.clone());
        assert!(!forged.is_from(&asked.id, &own), "nobody but the holder can sign its answer");

        // A peer that is no elder gets nothing, whatever it names.
        let stranger = SigningKey::from_bytes(&rand_secret());
        let outsider = connect(&stranger, &asked.libp2p, peer).await;
        let reply =
            outsider.request::<Audits>(peer, &challenge(&asked.id, &AccountId::of(&stranger), 5)).await.expect("reply");
        assert!(refusal(&reply).contains("only elders"), "{reply:?}");

        // Proofs for a member's sweep, under the audit's rules (the killed elder is still a
        // member, as any member would be).
        let prove = |challenge: Challenge| {
            let network = network.clone();
            async move {
                match network.request::<Chunks>(peer, &ChunkRequest::Prove(challenge)).await.expect("a reply") {
                    ChunkReply::Proved(reply) => reply,
                    other => panic!("not an answer to a proof: {other:?}"),
                }
            }
        };
        let own = challenge(&asked.id, &elder.id, 7);
        let AuditReply::Answer(signed) = prove(own.clone()).await else { panic!("the holder did not prove it") };
        let audit = Audit { holder: own.holder, challenge: own.clone(), sizes: vec![size] };
        assert!(signed.is_from(&asked.id, &own));
        assert_eq!(judge(&audit, &signed.answer), Outcome::Passed, "the chunk it holds is proven");
        let absent = ChunkAddress(rand_secret());
        let seed = rand_secret();
        let (holder_name, challenger_name) = (node_name(&asked.id.0), node_name(&elder.id.0));
        let item = ChallengeItem::for_holder(&seed, &challenger_name, &holder_name, 8, absent, size);
        let missing = Challenge { nonce: 8, seed, holder: holder_name, challenger: challenger_name, items: vec![item] };
        assert!(matches!(prove(missing).await, AuditReply::Missing(a) if a == absent), "a chunk it lacks is missing");
        // The relay through a proof: the blocks of another holder's challenge are refused.
        let relayed = Challenge { holder: node_name(&asked.id.0), ..challenge(&co_holder.id, &elder.id, 9) };
        let reply = prove(relayed).await;
        assert!(refusal(&reply).contains("not drawn from the seed"), "{reply:?}");
        let from_outsider = ChunkRequest::Prove(challenge(&asked.id, &AccountId::of(&stranger), 10));
        let reply = outsider.request::<Chunks>(peer, &from_outsider).await.expect("reply");
        assert!(matches!(&reply, ChunkReply::Refused(reason) if reason.contains("only members")), "{reply:?}");
        // Only an elder's audit sends a holder to fetch a chunk again.
        let recheck = ChunkRequest::Recheck(ChunkAddress(rand_secret()));
        let reply = outsider.request::<Chunks>(peer, &recheck).await.expect("reply");
        assert!(matches!(&reply, ChunkReply::Refused(reason) if reason.contains("only elders")), "{reply:?}");

        // A member asking a holder to keep a chunk no payment lists: refused, nothing kept.
        // Storing without paying would let one member fill every disk for free.
        let unpaid: Vec<u8> = (0..128).flat_map(|_| rand_secret()).collect();
        let address = acre_proofs::Chunk::new(unpaid.clone()).expect("a chunk").address();
        let reply = network.request::<Chunks>(peer, &ChunkRequest::Store(unpaid)).await.expect("a reply");
        assert!(matches!(reply, ChunkReply::NotPaid), "{reply:?}");
        let held = network.request::<Chunks>(peer, &ChunkRequest::Holds(vec![address])).await.expect("a reply");
        assert!(matches!(&held, ChunkReply::Held(held) if held == &[false]), "{held:?}");
    });
}
