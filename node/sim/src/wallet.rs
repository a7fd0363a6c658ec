//! Wallets: clients holding genesis credits that pay each other, the nodes and the
//! section's pool, the way the node's gatherer does it (`specs/network.md`): the order to
//! every committee elder at once, votes gathered with `acre_ledger::Gathering`, the
//! certificate handed to every elder until each acknowledges it. An elder behind on the
//! sender is handed the sender's earlier certificates with the order. A pool payment,
//! once certified, is given to an elder to propose to the section log.
//!
//! With Byzantine faults on, one wallet double-spends: it signs two orders for one
//! sequence and sends each to half of the honest elders, and both to the lying elders,
//! which vote for both; then it tries its first order on every elder. Another pays the
//! pool once and withholds the certificate from every elder, handing it only inside the
//! payment it proposes, and then goes silent: the elders must apply it from the log.

use std::collections::{BTreeMap, BTreeSet};

use acre_core::LogItem;
use acre_ledger::economics::store_memo;
use acre_ledger::{
    AccountId, Amount, Certificate, ElderAnswer, GatherError, Gathering, LedgerError, SignedOrder, TransferOrder, Vote,
    NANOS_PER_CREDIT,
};
use acre_proofs::ChunkAddress;
use ed25519_dalek::SigningKey;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::network::{Endpoint, Message};
use crate::scheduler::Millis;
use crate::world::{Event, Phase, Simulation};
use crate::NodeRole;

/// How long a wallet waits for votes before it counts the rest as silent.
const GATHER_TIMEOUT_MS: Millis = 2_000;
/// The most one transfer moves, in credits.
const MOST_CREDITS_SENT: u64 = 50;

/// One transfer until it is certified or cannot be: its orders and the elders each goes to.
#[derive(Debug, Clone)]
pub(crate) struct Transfer {
    ballots: Vec<(SignedOrder, Vec<usize>)>,
    /// A double-spend's first round: each order to its half, every answer awaited.
    split: bool,
}

/// One order's votes in one round.
#[derive(Debug, Clone)]
struct Ballot {
    order: SignedOrder,
    gathering: Gathering,
    asked: BTreeSet<usize>,
    answered: BTreeSet<usize>,
    /// Elders handed the sender's earlier certificates in this round.
    handed: BTreeSet<usize>,
}

/// One round of asking the elders.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    id: u64,
    ballots: Vec<Ballot>,
    split: bool,
}

/// How a wallet behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalletRole {
    /// Pays and hands every certificate to every elder.
    Honest,
    /// Signs two orders per sequence, with the lying elders' help.
    DoubleSpender,
    /// Pays the pool once, gives the certificate to no elder's ledger, and stops.
    Withholder,
}

/// A client with genesis credits.
#[derive(Debug)]
pub(crate) struct Wallet {
    /// The owner's key, which signs its orders.
    pub(crate) key: SigningKey,
    /// Its account.
    pub(crate) id: AccountId,
    /// How it misbehaves, if it does.
    pub(crate) role: WalletRole,
    /// The sequence its next order uses.
    pub(crate) next_sequence: u64,
    /// Its certificates, by sequence.
    pub(crate) certificates: BTreeMap<u64, Certificate>,
    /// Per committee elder, the sequences it has not acknowledged.
    pub(crate) unacked: BTreeMap<usize, BTreeSet<u64>>,
    /// The transfer in progress.
    pub(crate) pending: Option<Transfer>,
    attempt: Option<Attempt>,
    /// It makes no more transfers: its account is locked at a sequence no order can be
    /// certified at (it equivocated), or it withheld a payment and went silent.
    pub(crate) stuck: bool,
    /// Nanos its certified orders moved.
    spent: u64,
}

impl Wallet {
    /// A wallet with nothing sent yet.
    pub(crate) fn new(key: SigningKey, role: WalletRole) -> Wallet {
        Wallet {
            id: AccountId::of(&key),
            key,
            role,
            next_sequence: 0,
            certificates: BTreeMap::new(),
            unacked: BTreeMap::new(),
            pending: None,
            attempt: None,
            stuck: false,
            spent: 0,
        }
    }
}

impl Simulation {
    /// A wallet's clock: certificates not yet acknowledged go out again, a stalled
    /// transfer is asked again, and while the section runs a new transfer may start.
    pub(crate) fn wallet_tick(&mut self, wallet: usize) {
        let every = self.config.transfer_every_ms;
        let next = self.wallet_rng.gen_range(every / 2..=every + every / 2);
        self.scheduler.after(next.max(1), Event::WalletTick(wallet));
        let elders: Vec<usize> = self.wallets[wallet].unacked.keys().copied().collect();
        for elder in elders {
            self.redeliver(wallet, elder);
        }
        if self.wallets[wallet].attempt.is_some() {
            return;
        }
        if self.wallets[wallet].pending.is_none() && self.phase == Phase::Running && !self.wallets[wallet].stuck {
            self.wallets[wallet].pending = self.new_transfer(wallet);
        }
        self.launch(wallet);
    }

    /// The next transfer: to another wallet, a node or the pool, within what is left.
    fn new_transfer(&mut self, wallet: usize) -> Option<Transfer> {
        let allocation = self.config.wallet_credits * NANOS_PER_CREDIT;
        let mut nanos = self.wallet_rng.gen_range(NANOS_PER_CREDIT..=MOST_CREDITS_SENT * NANOS_PER_CREDIT);
        let this = &self.wallets[wallet];
        if this.role == WalletRole::Withholder {
            // More than the pool could hold from payments that were never ordered.
            nanos = allocation / 2;
        }
        if this.spent + nanos > allocation {
            return None;
        }
        let others: Vec<AccountId> = self.wallets.iter().map(|w| w.id).filter(|id| *id != this.id).collect();
        let choice = self.wallet_rng.gen_range(0..10);
        let (to, memo) = if choice < 2 || this.role == WalletRole::Withholder {
            (
                self.pool,
                store_memo(
                    &paid_chunks(&this.id, this.next_sequence).iter().map(|(c, s)| (c.0, *s)).collect::<Vec<_>>(),
                ),
            )
        } else if choice < 6 && !others.is_empty() {
            (others[self.wallet_rng.gen_range(0..others.len())], String::new())
        } else {
            (self.ids[self.wallet_rng.gen_range(0..self.ids.len())], String::new())
        };
        let amount = Amount::from_nanos(nanos).ok()?;
        let order = |to: AccountId, memo: String| {
            TransferOrder {
                network: self.network_id,
                from: this.id,
                to,
                amount,
                sequence: this.next_sequence,
                app: None,
                memo,
                hidden: None,
            }
            .sign(&this.key)
        };
        let first = order(to, memo);
        if this.role != WalletRole::DoubleSpender {
            return Some(Transfer { ballots: vec![(first, self.committee_nodes.clone())], split: false });
        }
        // The rival pays someone else; the lying elders get both, the others one each.
        let rival_to = others.iter().copied().find(|id| *id != to).unwrap_or(self.ids[0]);
        let rival = order(rival_to, "the same credits again".into());
        let (liars, others): (Vec<usize>, Vec<usize>) =
            self.committee_nodes.iter().partition(|node| self.nodes[**node].role == NodeRole::Liar);
        let (half, rest) = others.split_at(others.len() / 2);
        let mut first_elders: Vec<usize> = half.iter().chain(&liars).copied().collect();
        let mut rival_elders: Vec<usize> = rest.iter().chain(&liars).copied().collect();
        first_elders.sort_unstable();
        rival_elders.sort_unstable();
        self.stats.double_spends += 1;
        Some(Transfer { ballots: vec![(first, first_elders), (rival, rival_elders)], split: true })
    }

    /// Starts a round of the pending transfer: every order to its elders.
    fn launch(&mut self, wallet: usize) {
        let Some(transfer) = self.wallets[wallet].pending.clone() else { return };
        let id = self.requests;
        self.requests += 1;
        let ballots = transfer
            .ballots
            .iter()
            .map(|(order, elders)| Ballot {
                order: order.clone(),
                gathering: Gathering::new(self.committee.clone(), order.order.clone(), elders.len()),
                asked: elders.iter().copied().collect(),
                answered: BTreeSet::new(),
                handed: BTreeSet::new(),
            })
            .collect();
        self.wallets[wallet].attempt = Some(Attempt { id, ballots, split: transfer.split });
        for (ballot, (order, elders)) in transfer.ballots.into_iter().enumerate() {
            for elder in elders {
                let message = Message::Order { attempt: id, ballot, order: order.clone(), handover: Vec::new() };
                self.send(Endpoint::Wallet(wallet), Endpoint::Node(elder), message);
            }
        }
        self.scheduler.after(GATHER_TIMEOUT_MS, Event::GatherTimeout { wallet, attempt: id });
    }

    /// A message reaches a wallet.
    pub(crate) fn wallet_receives(&mut self, from: Endpoint, wallet: usize, message: Message) {
        let Endpoint::Node(elder) = from else { return };
        match message {
            Message::Voted { attempt, ballot, answer } => self.voted(wallet, elder, attempt, ballot, answer),
            Message::Confirmed(answers) => {
                let this = &mut self.wallets[wallet];
                let id = this.id;
                if let Some(unacked) = this.unacked.get_mut(&elder) {
                    for confirmation in answers.iter().flatten().filter(|confirmation| confirmation.from == id) {
                        unacked.remove(&confirmation.sequence);
                    }
                    if unacked.is_empty() {
                        this.unacked.remove(&elder);
                    }
                }
            }
            _ => {}
        }
    }

    fn voted(&mut self, wallet: usize, elder: usize, attempt: u64, ballot: usize, answer: Result<Vote, LedgerError>) {
        let this = &mut self.wallets[wallet];
        let Some(round) = this.attempt.as_mut().filter(|round| round.id == attempt) else { return };
        let Some(entry) = round.ballots.get_mut(ballot) else { return };
        if !entry.asked.contains(&elder) || entry.answered.contains(&elder) {
            return;
        }
        if let Err(LedgerError::UnexpectedSequence { expected, got }) = &answer {
            // Behind on this sender: hand it what it lacks, once per round, and ask again.
            if got > expected && !entry.handed.contains(&elder) {
                let earlier: Option<Vec<Certificate>> =
                    (*expected..*got).map(|sequence| this.certificates.get(&sequence).cloned()).collect();
                if let Some(handover) = earlier.filter(|handover| !handover.is_empty()) {
                    entry.handed.insert(elder);
                    let message = Message::Order { attempt, ballot, order: entry.order.clone(), handover };
                    self.send(Endpoint::Wallet(wallet), Endpoint::Node(elder), message);
                    return;
                }
            }
        }
        entry.answered.insert(elder);
        entry.gathering.record(match answer {
            Ok(vote) => ElderAnswer::Voted(vote),
            Err(refusal) => ElderAnswer::Refused(refusal),
        });
        let complete = round.ballots.iter().all(|ballot| {
            ballot.answered.len() == ballot.asked.len() || (!round.split && ballot.gathering.is_settled())
        });
        if complete {
            self.finish_attempt(wallet);
        }
    }

    /// Votes not in by now count as silence.
    pub(crate) fn gather_timed_out(&mut self, wallet: usize, attempt: u64) {
        let Some(round) = self.wallets[wallet].attempt.as_mut().filter(|round| round.id == attempt) else { return };
        for ballot in &mut round.ballots {
            for _ in ballot.answered.len()..ballot.asked.len() {
                ballot.gathering.record(ElderAnswer::Silent);
            }
        }
        self.finish_attempt(wallet);
    }

    /// The round is over: a certificate, a conflict that settles the sequence, or a
    /// round to try again.
    fn finish_attempt(&mut self, wallet: usize) {
        let Some(round) = self.wallets[wallet].attempt.take() else { return };
        let mut certified: Option<Certificate> = None;
        let mut conflict = false;
        for ballot in round.ballots {
            match ballot.gathering.finish() {
                Ok(certificate) => {
                    let order = &certificate.order;
                    let ids = self.stats.certified.entry((order.from, order.sequence)).or_default();
                    ids.insert(certificate.id());
                    certified.get_or_insert(certificate);
                }
                Err(GatherError::Refused(LedgerError::ConflictingOrder { .. })) => conflict = true,
                Err(_) => {}
            }
        }
        if let Some(certificate) = certified {
            self.certified(wallet, certificate);
            return;
        }
        if conflict {
            self.stats.conflicts_refused += 1;
        }
        let this = &mut self.wallets[wallet];
        match this.pending.take() {
            // The halves refused each other's order or stayed short: try the first on all.
            Some(Transfer { ballots, split: true }) => {
                let first = ballots.into_iter().next();
                this.pending = first
                    .map(|(order, _)| Transfer { ballots: vec![(order, self.committee_nodes.clone())], split: false });
            }
            // Another order holds the sequence at some elders: no order can ever be
            // certified there. The owner's own doing, and only its account is stuck.
            Some(_) if conflict => this.stuck = true,
            // Too few answered or some were behind: the same order again on the next tick.
            other => this.pending = other,
        }
    }

    fn certified(&mut self, wallet: usize, certificate: Certificate) {
        self.stats.transfers_certified += 1;
        let sequence = certificate.order.sequence;
        let pays_pool = certificate.order.to == self.pool;
        let this = &mut self.wallets[wallet];
        this.pending = None;
        this.spent += certificate.order.amount.nanos();
        this.next_sequence = sequence + 1;
        this.certificates.insert(sequence, certificate.clone());
        if this.role == WalletRole::Withholder && pays_pool {
            this.stuck = true;
        } else {
            for &elder in &self.committee_nodes {
                this.unacked.entry(elder).or_default().insert(sequence);
            }
            for elder in self.committee_nodes.clone() {
                self.redeliver(wallet, elder);
            }
        }
        if pays_pool {
            self.stats.pool_payments += 1;
            let elders = self.broadcast.latest_elders();
            if let Some(&elder) = elders.choose(&mut self.wallet_rng) {
                let chunks = paid_chunks(&certificate.order.from, sequence);
                let message = Message::Propose(LogItem::Payment { certificate, chunks });
                self.send(Endpoint::Wallet(wallet), Endpoint::Node(elder), message);
            }
        }
    }

    /// Sends `elder` every certificate of the wallet it has not acknowledged, in order.
    fn redeliver(&mut self, wallet: usize, elder: usize) {
        let this = &self.wallets[wallet];
        let Some(sequences) = this.unacked.get(&elder) else { return };
        let certificates: Vec<Certificate> =
            sequences.iter().filter_map(|sequence| this.certificates.get(sequence).cloned()).collect();
        if !certificates.is_empty() {
            self.send(Endpoint::Wallet(wallet), Endpoint::Node(elder), Message::Certificates(certificates));
        }
    }
}

/// The chunk a wallet's pool payment at `sequence` pays for: one 1 MiB chunk named by the
/// payer and sequence, so the memo and the list the payment is proposed with agree. No
/// holder ever signs for it, so it pays the pool and lapses.
fn paid_chunks(payer: &AccountId, sequence: u64) -> Vec<(ChunkAddress, u64)> {
    let chunk = blake3::derive_key(
        "acre-sim 2026 paid chunk",
        &[payer.as_bytes().as_slice(), &sequence.to_le_bytes()].concat(),
    );
    vec![(ChunkAddress(chunk), 1 << 20)]
}
