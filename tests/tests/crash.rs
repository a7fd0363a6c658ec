//! A real crash: an elder process is killed with SIGKILL while it votes and applies
//! certificates; its RocksDB store must hold everything it acknowledged, and the elder
//! must never contradict a vote it gave.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use acre_ledger::store::{RocksStore, Store};
use acre_ledger::testkit::{key, order_from};
use acre_ledger::{
    AccountId, Allocation, Amount, CertificateBuilder, Committee, DurableElder, LedgerError, SignedOrder, Vote,
};
use ed25519_dalek::SigningKey;

const CHILD_DIR: &str = "ACRE_CRASH_CHILD_DIR";
const ACCOUNTS: u64 = 4_000;
const KILL_AFTER: usize = 300;
const GROUP: usize = 7;

fn elder_keys() -> Vec<SigningKey> {
    (0..4).map(|i| key(900, i)).collect()
}

fn committee() -> Committee {
    Committee::new(elder_keys().iter().map(AccountId::of)).expect("committee")
}

fn account(index: u64) -> SigningKey {
    key(901, index)
}

fn sink() -> SigningKey {
    key(902, 0)
}

fn allocations() -> Vec<Allocation> {
    (0..ACCOUNTS)
        .map(|i| Allocation { account: AccountId::of(&account(i)), amount: Amount::from_nanos(100).expect("amount") })
        .collect()
}

/// Hashed once: the genesis lists every account.
fn network() -> acre_ledger::Digest {
    static NETWORK: std::sync::OnceLock<acre_ledger::Digest> = std::sync::OnceLock::new();
    *NETWORK.get_or_init(|| acre_ledger::network_id(&committee(), &allocations()))
}

fn order(index: u64) -> SignedOrder {
    order_from(&network(), &account(index), &sink(), 10, 0)
}

fn open_elder(dir: &std::path::Path) -> DurableElder<RocksStore> {
    let store = RocksStore::open(dir).expect("open store");
    DurableElder::open(committee(), elder_keys()[0].clone(), store).expect("open elder")
}

/// The child: votes on and applies one transfer per account, printing each answer only
/// after the handler returned it (so after it was synced), until it is killed.
#[test]
#[ignore = "run by sigkill_loses_nothing_acknowledged as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let mut elder = open_elder(std::path::Path::new(&dir));
    elder.genesis(allocations()).expect("genesis");
    let mut stdout = std::io::stdout().lock();
    let indices: Vec<u64> = (0..ACCOUNTS).collect();
    // Small groups through the group-commit path: every answer printed left after its sync.
    for group in indices.chunks(GROUP) {
        let orders: Vec<SignedOrder> = group.iter().map(|&i| order(i)).collect();
        let mut certificates = Vec::with_capacity(group.len());
        for (index, (order, vote)) in group.iter().zip(orders.iter().zip(elder.handle_orders(&orders))) {
            let vote = vote.expect("vote");
            writeln!(stdout, "vote {index}").expect("stdout");
            certificates.push(certify(order, &vote));
        }
        stdout.flush().expect("flush");
        for (index, confirmation) in group.iter().zip(elder.handle_certificates(&certificates)) {
            confirmation.expect("apply");
            writeln!(stdout, "certificate {index}").expect("stdout");
        }
        stdout.flush().expect("flush");
    }
}

/// A certificate of `order` from this elder's vote and two other elders'.
fn certify(order: &SignedOrder, vote: &Vote) -> acre_ledger::Certificate {
    let mut builder = CertificateBuilder::new(committee(), order.order.clone());
    builder.add(vote).expect("own vote");
    let keys = elder_keys();
    let others = keys[1..3].iter().map(|other| builder.add(&Vote::sign(other, order.order.digest())));
    others.last().and_then(Result::ok).flatten().expect("quorum")
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut voted = Vec::new();
    let mut applied = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let mut words = line.split_whitespace();
        match (words.next(), words.next().and_then(|n| n.parse::<u64>().ok())) {
            (Some("vote"), Some(index)) => voted.push(index),
            (Some("certificate"), Some(index)) => applied.push(index),
            _ => continue,
        }
        if voted.len() + applied.len() >= KILL_AFTER {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    child.wait().expect("reap child");
    assert!(voted.len() + applied.len() >= KILL_AFTER, "the child stopped before it was killed");

    let mut elder = open_elder(dir.path());
    let sink_id = AccountId::of(&sink());
    let sink_balance = elder.state().account(&sink_id).map_or(0, |a| a.balance.nanos());
    assert!(sink_balance >= 10 * applied.len() as u64, "an acknowledged certificate was lost");
    for &index in &applied {
        let state = elder.state().account(&AccountId::of(&account(index))).expect("account");
        assert_eq!((state.next_sequence, state.balance.nanos()), (1, 90), "account {index}");
    }
    let before = elder.state().state_hash();
    for &index in &voted {
        let lock = elder.store().lock(&AccountId::of(&account(index)), 0).expect("read").expect("lock survived");
        // A retry gets the same vote back; a rival order for the same sequence gets none.
        assert_eq!(elder.handle_order(&order(index)).expect("same vote"), lock.vote);
        let rival = order_from(&network(), &account(index), &key(903, 0), 10, 0);
        let answer = elder.handle_order(&rival);
        assert!(
            matches!(answer, Err(LedgerError::ConflictingOrder { .. } | LedgerError::UnexpectedSequence { .. })),
            "the restarted elder voted for a rival order: {answer:?}"
        );
    }
    assert_eq!(before, elder.state().state_hash());
    let genesis = elder.state().genesis_record().expect("genesis survived").total;
    assert_eq!(elder.state().circulating(), Some(genesis));
}
