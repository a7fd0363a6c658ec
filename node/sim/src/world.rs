//! The simulation itself: every node, wallet, the network, the broadcast and the disks,
//! and the one loop that takes the next event off the agenda and runs it. Every event is
//! hashed as it runs, so two runs are the same run exactly when their hashes are equal.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use acre_core::{session_elders, LogItem, SectionSettings};
use acre_ledger::economics::pool_account;
use acre_ledger::section_state::{placement_name, SectionState};
use acre_ledger::store::AppliedPage;
use acre_ledger::{AccountId, Allocation, Amount, Certificate, Committee, Digest, SignedOrder};
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::broadcast::{Broadcast, Delivery, Links};
use crate::config::SimConfig;
use crate::disk::LogShelf;
use crate::network::{Endpoint, Message, Network};
use crate::node::{Life, Node};
use crate::scheduler::{Millis, Scheduler};
use crate::storage::ChunkModel;
use crate::wallet::{Wallet, WalletRole};
use crate::NodeRole;

/// How often the broadcast retries waiting proposals and lagging deliveries: the
/// engine's round.
const BROADCAST_ROUND_MS: Millis = 100;
/// How often elders behind a later session see its frames.
const FRAMES_EVERY_MS: Millis = 1_000;
/// How often the run checks whether it is over.
const CHECK_MS: Millis = 500;

/// Why a run stopped before it could be judged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SimError {
    /// The configuration cannot run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The founders do not make a committee.
    #[error("the committee cannot be formed: {0}")]
    Committee(#[from] acre_ledger::CommitteeError),
    /// A ledger refused what the simulator needs of it to stand up a node.
    #[error("node {node}'s ledger: {error}")]
    Ledger {
        /// The node.
        node: usize,
        /// The refusal.
        error: acre_ledger::LedgerError,
    },
    /// An event could not be encoded into the run's hash.
    #[error("an event could not be encoded for the run hash: {0}")]
    Trace(#[from] postcard::Error),
}

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Epochs close, transfers flow, faults strike.
    Running,
    /// The last epoch closed at `since`: no new transfers or faults, no more reports;
    /// waiting for every honest node to settle.
    Resting {
        /// When the rest began.
        since: Millis,
    },
    /// Over.
    Done,
}

/// A ledger write a node's disk finishes later (slow disks finish it later still).
#[derive(Debug, Clone)]
pub(crate) enum LedgerJob {
    /// Vote on a wallet's order, after applying the certificates handed over with it.
    Order {
        /// The wallet.
        wallet: usize,
        /// Its gathering.
        attempt: u64,
        /// Which of its orders.
        ballot: usize,
        /// The order.
        order: Box<SignedOrder>,
        /// Earlier certificates of the sender.
        handover: Vec<Certificate>,
    },
    /// Apply a wallet's certificates.
    Certificates {
        /// The wallet.
        wallet: usize,
        /// The certificates.
        certificates: Vec<Certificate>,
    },
    /// `Effect::ApplyRecords`.
    Records(Vec<acre_core::RecordToApply>),
    /// Apply a page of a committee elder's certificates (ledger catch-up).
    Page {
        /// The elder.
        peer: usize,
        /// The page.
        page: AppliedPage,
    },
}

/// A fault, or the end of one.
#[derive(Debug, Clone)]
pub(crate) enum FaultEvent {
    /// Draw the next seeded fault.
    Plan,
    /// Kill a node for `down_ms`; a power cut waits for its next ledger sync.
    Kill {
        /// The node.
        node: usize,
        /// Whether the kill is a power cut during a write.
        power_cut: bool,
        /// How long it stays down.
        down_ms: Millis,
    },
    /// A power cut armed on `incarnation` found no write to cut: kill the node plainly.
    CutFallback {
        /// The node.
        node: usize,
        /// The life it was armed in.
        incarnation: u64,
    },
    /// Restart a node killed in the life before `incarnation`.
    Restart {
        /// The node.
        node: usize,
        /// Its life while down.
        incarnation: u64,
    },
    /// Split the nodes.
    Partition {
        /// Each node's side.
        sides: Vec<u8>,
        /// When to heal, from now.
        heal_after_ms: Millis,
    },
    /// Heal partition number `partition`.
    Heal {
        /// Which partition.
        partition: u64,
    },
    /// Slow a node's disk by `extra_ms` for `for_ms`.
    SlowDisk {
        /// The node.
        node: usize,
        /// Extra time per write.
        extra_ms: Millis,
        /// For how long.
        for_ms: Millis,
    },
    /// The slow disk may be back to normal.
    DiskRecovered {
        /// The node.
        node: usize,
    },
}

/// Everything that can happen.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A node's clock ticks.
    Tick(usize),
    /// A message arrives.
    Deliver {
        /// Its sender.
        from: Endpoint,
        /// Its receiver.
        to: Endpoint,
        /// The message.
        message: Message,
    },
    /// A node's disk finished a group commit.
    LedgerDone {
        /// The node.
        node: usize,
        /// The life that started it; a crash since cancels it.
        incarnation: u64,
        /// The jobs, in the order they were queued.
        jobs: Vec<LedgerJob>,
    },
    /// A fetched outcome did not come in time.
    FetchTimeout {
        /// The node.
        node: usize,
        /// The life that asked.
        incarnation: u64,
        /// The request.
        request: u64,
    },
    /// A proposal reached the broadcast.
    Proposal {
        /// The proposing node.
        node: usize,
        /// Its registration when it proposed.
        registration: u64,
        /// The item.
        item: LogItem,
    },
    /// The broadcast's round.
    Pump,
    /// Ordered items reach a node.
    Ordered(Delivery),
    /// A wallet's clock ticks.
    WalletTick(usize),
    /// A wallet's gathering timed out.
    GatherTimeout {
        /// The wallet.
        wallet: usize,
        /// The gathering.
        attempt: u64,
    },
    /// A fault.
    Fault(FaultEvent),
    /// The last epoch closed: the section rests.
    Rest,
    /// Is the run over?
    Check,
}

/// Counts of what happened, for the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    /// Nodes crashed by a fault.
    pub(crate) kills: u64,
    /// Of them, power cuts in the middle of a ledger write.
    pub(crate) power_cuts: u64,
    /// Nodes brought back up.
    pub(crate) restarts: u64,
    /// Partitions made.
    pub(crate) partitions: u64,
    /// Disks slowed.
    pub(crate) slow_disks: u64,
    /// Every certificate a wallet gathered, by (account, sequence).
    pub(crate) certified: BTreeMap<(AccountId, u64), BTreeSet<Digest>>,
    /// Orders a wallet gathered a certificate for.
    pub(crate) transfers_certified: u64,
    /// Of them, payments into the section's pool.
    pub(crate) pool_payments: u64,
    /// Rounds that ended on a `conflicting_order` refusal.
    pub(crate) conflicts_refused: u64,
    /// Double-spends a wallet tried.
    pub(crate) double_spends: u64,
    /// Votes a lying elder cast for a second order at one sequence.
    pub(crate) equivocating_votes: u64,
    /// Forged reports proposed.
    pub(crate) forged_reports: u64,
    /// `epoch_conflict` from an honest ledger: two records for one epoch.
    pub(crate) epoch_conflicts: u64,
    /// `conflicting_order` on a certificate at an honest ledger: two certificates.
    pub(crate) certificate_conflicts: u64,
    /// Outcomes a peer served to a node catching up.
    pub(crate) outcomes_fetched: u64,
    /// When an honest node first closed each epoch.
    pub(crate) closed_at: BTreeMap<u64, Millis>,
    /// What happened when, if the configuration asks for it.
    pub(crate) timeline: Vec<String>,
}

/// The whole simulated world.
pub(crate) struct Simulation {
    /// What is simulated.
    pub(crate) config: SimConfig,
    /// The clock and the agenda.
    pub(crate) scheduler: Scheduler<Event>,
    /// Delays, losses and partitions.
    pub(crate) network: Network,
    /// The model of the atomic broadcast.
    pub(crate) broadcast: Broadcast,
    /// The chunks audits look at.
    pub(crate) chunks: ChunkModel,
    /// Every kept epoch log, once.
    pub(crate) logs: LogShelf,
    /// The section's nodes, by index.
    pub(crate) nodes: Vec<Node>,
    /// Their ids, by index.
    pub(crate) ids: Vec<AccountId>,
    /// Their indexes, by id.
    pub(crate) index_of: BTreeMap<AccountId, usize>,
    /// The clients.
    pub(crate) wallets: Vec<Wallet>,
    /// The genesis elders, who certify transfers.
    pub(crate) committee: Committee,
    /// The committee's nodes, in the committee's order.
    pub(crate) committee_nodes: Vec<usize>,
    /// The state the section was founded with.
    pub(crate) founding: SectionState,
    /// The section's pool account.
    pub(crate) pool: AccountId,
    /// Genesis: the wallets' credits.
    pub(crate) allocations: Vec<Allocation>,
    /// The network's identity, which every order names.
    pub(crate) network_id: Digest,
    /// Their sum, the supply before any mint.
    pub(crate) genesis_total: Amount,
    /// The member whose disk holds nothing, with Byzantine faults on.
    pub(crate) freeloader: Option<usize>,
    /// The faults' random stream.
    pub(crate) fault_rng: StdRng,
    /// The wallets' random stream.
    pub(crate) wallet_rng: StdRng,
    /// Where the run is.
    pub(crate) phase: Phase,
    /// What happened, counted.
    pub(crate) stats: Stats,
    /// Numbers handed out to requests and gatherings.
    pub(crate) requests: u64,
    /// Partitions made so far; a heal names the one it ends.
    pub(crate) partitions_made: u64,
    /// Events processed.
    pub(crate) events: u64,
    /// Why the run failed, if it did.
    pub(crate) failure: Option<String>,
    /// Nodes went down or came up this often.
    pub(crate) lives_changed: u64,
    /// The nodes each side reaches, as of the last change of lives and network.
    pub(crate) connected_cache: Vec<(ReachKey, BTreeSet<AccountId>)>,
    /// Why the section had not settled at the last check, for the timeline.
    last_unsettled: Option<String>,
    /// The run's hash so far.
    trace: blake3::Hasher,
}

/// Which nodes a side of the network reaches depends on this: how often lives changed,
/// how often the network did, and the side.
pub(crate) type ReachKey = ((u64, u64), Option<u8>);

/// The nodes and the network as the broadcast sees them.
pub(crate) struct NodeLinks<'a> {
    nodes: &'a [Node],
    network: &'a Network,
}

impl Links for NodeLinks<'_> {
    fn running(&self, node: usize) -> bool {
        self.nodes.get(node).is_some_and(Node::is_running)
    }
    fn reach(&self, a: usize, b: usize) -> bool {
        self.network.nodes_reach(a, b)
    }
}

/// A key the run derives from its seed, one per (kind, index).
fn derived_key(seed: u64, kind: &str, index: usize) -> SigningKey {
    let mut material = Vec::with_capacity(24 + kind.len());
    material.extend_from_slice(&seed.to_le_bytes());
    material.extend_from_slice(kind.as_bytes());
    material.extend_from_slice(&(index as u64).to_le_bytes());
    SigningKey::from_bytes(&blake3::derive_key("acre-sim 2026 key", &material))
}

impl Simulation {
    /// Founds the section: keys, genesis, committee, roles, chunks; every node booted and
    /// every clock started.
    pub(crate) fn new(config: SimConfig) -> Result<Simulation, SimError> {
        if let Some(problem) = config.problem() {
            return Err(SimError::Config(problem));
        }
        let seed = config.seed;
        let keys: Vec<SigningKey> = (0..config.nodes).map(|index| derived_key(seed, "node", index)).collect();
        let ids: Vec<AccountId> = keys.iter().map(AccountId::of).collect();
        let index_of: BTreeMap<AccountId, usize> = ids.iter().enumerate().map(|(index, id)| (*id, index)).collect();
        let wallet_keys: Vec<SigningKey> =
            (0..config.wallets).map(|index| derived_key(seed, "wallet", index)).collect();
        let per_wallet = Amount::from_credits(config.wallet_credits)
            .map_err(|error| SimError::Config(format!("wallet credits: {error}")))?;
        let allocations: Vec<Allocation> =
            wallet_keys.iter().map(|key| Allocation { account: AccountId::of(key), amount: per_wallet }).collect();
        let genesis_total = (per_wallet.nanos())
            .checked_mul(config.wallets as u64)
            .and_then(|nanos| Amount::from_nanos(nanos).ok())
            .ok_or_else(|| SimError::Config("the wallets' credits pass the supply cap".into()))?;
        let founders: Vec<(AccountId, AccountId)> = ids.iter().map(|id| (*id, *id)).collect();
        // The founders' elders certify, and with the genesis they name the network.
        let elders = session_elders(&SectionState::new(Digest::default(), &founders, genesis_total));
        let committee = Committee::new(elders.iter().copied())?;
        let committee_nodes: Vec<usize> = elders.iter().filter_map(|id| index_of.get(id).copied()).collect();
        let network_id = acre_ledger::network_id(&committee, &allocations);
        let names: Vec<[u8; 32]> = ids.iter().map(|id| placement_name(&network_id, id)).collect();
        let mut chunk_rng = StdRng::seed_from_u64(seed ^ 0xc4_0c5);
        let placed = ChunkModel::new(&names, config.chunks_per_node, &mut chunk_rng, BTreeSet::new());
        let founding = SectionState::new(network_id, &founders, genesis_total).with_chunks(placed.registry());

        let mut fault_rng = StdRng::seed_from_u64(seed ^ 0xfa17);
        let mut roles = vec![NodeRole::Honest; config.nodes];
        if config.faults.byzantine {
            let count = config.byzantine.unwrap_or((committee_nodes.len() - 1) / 3).min(committee_nodes.len());
            let mut chosen = committee_nodes.clone();
            chosen.shuffle(&mut fault_rng);
            for (order, node) in chosen.into_iter().take(count).enumerate() {
                roles[node] = if order % 2 == 0 { NodeRole::Liar } else { NodeRole::Silent };
            }
        }
        let honest: Vec<usize> = (0..config.nodes).filter(|node| roles[*node] == NodeRole::Honest).collect();
        let freeloader = roles.contains(&NodeRole::Liar).then(|| honest.choose(&mut fault_rng).copied()).flatten();
        let mut chunk_rng = StdRng::seed_from_u64(seed ^ 0xc4_0c5);
        let chunks = ChunkModel::new(&names, config.chunks_per_node, &mut chunk_rng, freeloader.into_iter().collect());

        let nodes: Vec<Node> = keys.into_iter().zip(&roles).map(|(key, role)| Node::new(key, *role)).collect();
        let double_spending = config.faults.byzantine && roles.contains(&NodeRole::Liar);
        let wallets: Vec<Wallet> = wallet_keys
            .into_iter()
            .enumerate()
            .map(|(index, key)| {
                let role = match index {
                    0 if double_spending => WalletRole::DoubleSpender,
                    1 if config.faults.byzantine => WalletRole::Withholder,
                    _ => WalletRole::Honest,
                };
                Wallet::new(key, role)
            })
            .collect();

        let mut sim = Simulation {
            scheduler: Scheduler::new(),
            network: Network::new(config.network.clone(), seed ^ 0x0e7),
            broadcast: Broadcast::new(index_of.clone(), config.replay),
            chunks,
            logs: LogShelf::default(),
            nodes,
            ids,
            index_of,
            wallets,
            committee,
            committee_nodes,
            founding,
            pool: pool_account(""),
            network_id,
            allocations,
            genesis_total,
            freeloader,
            fault_rng,
            wallet_rng: StdRng::seed_from_u64(seed ^ 0x3a11e7),
            phase: Phase::Running,
            stats: Stats::default(),
            requests: 0,
            partitions_made: 0,
            events: 0,
            failure: None,
            lives_changed: 0,
            connected_cache: Vec::new(),
            last_unsettled: None,
            trace: blake3::Hasher::new_derive_key("acre-sim 2026 run"),
            config,
        };
        sim.found()?;
        Ok(sim)
    }

    /// Boots every node that runs a machine at time 0 and starts the clocks.
    fn found(&mut self) -> Result<(), SimError> {
        let mut clock_rng = StdRng::seed_from_u64(self.config.seed ^ 0xc10c);
        for node in 0..self.nodes.len() {
            if self.nodes[node].role != NodeRole::Silent {
                self.boot(node, true)?;
            }
            let offset = clock_rng.gen_range(0..self.config.tick_ms);
            self.scheduler.at(offset, Event::Tick(node));
        }
        for wallet in 0..self.wallets.len() {
            let offset = clock_rng.gen_range(0..self.config.transfer_every_ms);
            self.scheduler.at(offset, Event::WalletTick(wallet));
        }
        self.scheduler.at(BROADCAST_ROUND_MS, Event::Pump);
        self.scheduler.at(CHECK_MS, Event::Check);
        let faults = self.config.faults;
        if faults.kill || faults.partition || faults.slow_disk {
            self.scheduler.at(crate::faults::FAULT_EVERY_MS, Event::Fault(FaultEvent::Plan));
        }
        self.schedule_scripted_faults();
        Ok(())
    }

    /// The settings node `node`'s machine runs with.
    pub(crate) fn settings(&self, node: usize) -> SectionSettings {
        SectionSettings {
            epoch: Duration::from_millis(self.config.epoch_ms),
            report_grace: Duration::from_millis(self.config.report_grace_ms),
            unresponsive_after: Duration::from_millis(self.config.unresponsive_after_ms),
            reward_address: self.ids[node],
            follow_interval: Duration::from_millis(self.config.follow_interval_ms),
        }
    }

    /// Runs until the run is over or cannot go on.
    pub(crate) fn run_to_end(&mut self) {
        while self.phase != Phase::Done {
            let Some((now, event)) = self.scheduler.next() else {
                self.fail("the agenda ran empty".into());
                break;
            };
            if let Err(error) = self.trace(now, &event) {
                self.fail(error.to_string());
                break;
            }
            self.events += 1;
            if let Err(error) = self.dispatch(event) {
                self.fail(error.to_string());
            }
        }
    }

    /// Notes a moment of the run in the timeline, if one is kept.
    pub(crate) fn note(&mut self, what: impl FnOnce() -> String) {
        if self.config.timeline {
            let line = format!("{:>9.3} s  {}", self.scheduler.now() as f64 / 1000.0, what());
            self.stats.timeline.push(line);
        }
    }

    /// Ends the run as a failure.
    pub(crate) fn fail(&mut self, reason: String) {
        self.note(|| format!("the run fails: {reason}"));
        self.failure.get_or_insert(reason);
        self.phase = Phase::Done;
    }

    fn dispatch(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::Tick(node) => self.tick(node),
            Event::Deliver { from, to, message } => self.deliver(from, to, message),
            Event::LedgerDone { node, incarnation, jobs } => self.ledger_done(node, incarnation, jobs),
            Event::FetchTimeout { node, incarnation, request } => self.fetch_timed_out(node, incarnation, request),
            Event::Proposal { node, registration, item } => {
                self.broadcast.arrive(node, registration, item);
                self.pump();
            }
            Event::Pump => {
                self.pump();
                self.scheduler.after(BROADCAST_ROUND_MS, Event::Pump);
            }
            Event::Ordered(delivery) => self.deliver_ordered(delivery),
            Event::WalletTick(wallet) => self.wallet_tick(wallet),
            Event::GatherTimeout { wallet, attempt } => self.gather_timed_out(wallet, attempt),
            Event::Fault(fault) => self.fault(fault)?,
            Event::Rest => self.begin_rest()?,
            Event::Check => self.check(),
        }
        Ok(())
    }

    /// Hands a message to the network.
    pub(crate) fn send(&mut self, from: Endpoint, to: Endpoint, message: Message) {
        self.network.sent += 1;
        if self.network.loses() {
            self.network.lost += 1;
            return;
        }
        if !self.network.reachable(from, to) {
            self.network.partitioned += 1;
            return;
        }
        let delay = self.network.latency();
        self.scheduler.after(delay, Event::Deliver { from, to, message });
    }

    fn deliver(&mut self, from: Endpoint, to: Endpoint, message: Message) {
        if !self.network.reachable(from, to) {
            self.network.partitioned += 1;
            return;
        }
        match to {
            Endpoint::Node(node) => self.node_receives(from, node, message),
            Endpoint::Wallet(wallet) => self.wallet_receives(from, wallet, message),
        }
    }

    /// One broadcast round: order what can be ordered and send every lagging elder its
    /// items; once a second, frames of later sessions reach the elders behind them.
    pub(crate) fn pump(&mut self) {
        let links = NodeLinks { nodes: &self.nodes, network: &self.network };
        self.broadcast.pump(&links);
        let deliveries = self.broadcast.deliveries(&links);
        let frames = if self.scheduler.now() % FRAMES_EVERY_MS < BROADCAST_ROUND_MS {
            self.broadcast.frames(&links)
        } else {
            Vec::new()
        };
        for (sender, behind, session) in frames {
            self.send(Endpoint::Node(sender), Endpoint::Node(behind), Message::Frame { session });
        }
        for delivery in deliveries {
            let delay = self.network.latency();
            self.scheduler.after(delay, Event::Ordered(delivery));
        }
    }

    fn deliver_ordered(&mut self, delivery: Delivery) {
        let links = NodeLinks { nodes: &self.nodes, network: &self.network };
        let upto = self.broadcast.deliverable_now(delivery.node, delivery.registration, delivery.upto, &links);
        while let Some((session, creator, item)) = self.broadcast.next_item(delivery.node, delivery.registration, upto)
        {
            self.feed(delivery.node, acre_core::Input::Ordered { session, creator, item });
        }
    }

    /// Whether the run is over, or past its deadline.
    fn check(&mut self) {
        let now = self.scheduler.now();
        match self.phase {
            Phase::Running => {
                let deadline = self.config.epochs * self.config.epoch_ms * 20 + 120_000;
                if now > deadline {
                    let closed = self.highest_closed();
                    self.fail(format!(
                        "epoch {} was not closed by {} s of simulated time (the section reached epoch {closed})",
                        self.config.epochs,
                        now / 1000
                    ));
                    return;
                }
            }
            Phase::Resting { since } => match self.settled() {
                Ok(()) => {
                    self.phase = Phase::Done;
                    return;
                }
                Err(reason) if self.config.timeline && self.last_unsettled.as_deref() != Some(reason.as_str()) => {
                    self.note(|| format!("not settled: {reason}"));
                    self.last_unsettled = Some(reason);
                }
                Err(reason) if now > since + self.config.settle_deadline_ms => {
                    self.fail(format!(
                        "the section did not settle within {} s: {reason}",
                        self.config.settle_deadline_ms / 1000
                    ));
                    return;
                }
                Err(_) => {}
            },
            Phase::Done => return,
        }
        self.scheduler.after(CHECK_MS, Event::Check);
    }

    /// The highest epoch an honest node has closed.
    pub(crate) fn highest_closed(&self) -> u64 {
        self.honest_nodes()
            .filter_map(|node| self.nodes[node].files.outcomes.keys().next_back().copied())
            .max()
            .unwrap_or(0)
    }

    /// The honest nodes' indexes.
    pub(crate) fn honest_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|node| self.nodes[*node].role == NodeRole::Honest)
    }

    /// Whether the section has settled: every honest node up with the last epoch closed
    /// and its record applied, every wallet's certificates at every honest committee elder,
    /// and the honest nodes agreeing on the section state and on the ledger.
    pub(crate) fn settled(&self) -> Result<(), String> {
        let resting_epoch = self.config.epochs + 1;
        let mut section_hashes = BTreeSet::new();
        let mut ledger_hashes = BTreeSet::new();
        for node in self.honest_nodes() {
            let Life::Up(running) = &self.nodes[node].life else { return Err(format!("node {node} is down")) };
            let open = running.machine.state().epoch();
            if open != resting_epoch {
                return Err(format!("node {node} has epoch {open} open"));
            }
            if !running.machine.unapplied().is_empty() {
                return Err(format!("node {node}'s ledger has not taken every record"));
            }
            section_hashes.insert(running.machine.state().state_hash().map_err(|error| error.to_string())?);
            ledger_hashes.insert(running.ledger.state().state_hash());
        }
        for (index, wallet) in self.wallets.iter().enumerate() {
            if wallet.pending.is_some() {
                return Err(format!("wallet {index} has a transfer in progress"));
            }
            let honest_unacked = wallet
                .unacked
                .iter()
                .find(|(elder, sequences)| self.nodes[**elder].role == NodeRole::Honest && !sequences.is_empty());
            if let Some((elder, _)) = honest_unacked {
                return Err(format!("wallet {index}'s certificates have not all reached elder node {elder}"));
            }
        }
        if section_hashes.len() > 1 {
            return Err("honest nodes hold different section states".into());
        }
        if ledger_hashes.len() > 1 {
            return Err("honest ledgers differ".into());
        }
        Ok(())
    }

    /// Folds the event into the run's hash: its time, a tag, the node or wallet, and the
    /// encoding of what it carries.
    fn trace(&mut self, now: Millis, event: &Event) -> Result<(), postcard::Error> {
        let hasher = &mut self.trace;
        hasher.update(&now.to_le_bytes());
        let number = |hasher: &mut blake3::Hasher, value: u64| {
            hasher.update(&value.to_le_bytes());
        };
        match event {
            Event::Tick(node) => {
                hasher.update(b"tick");
                number(hasher, *node as u64);
            }
            Event::Deliver { from, to, message } => {
                hasher.update(b"deliver");
                encode(hasher, &(endpoint_code(from), endpoint_code(to)))?;
                trace_message(hasher, message)?;
            }
            Event::LedgerDone { node, incarnation, jobs } => {
                hasher.update(b"ledger");
                encode(hasher, &(*node as u64, *incarnation, jobs.len() as u64))?;
                for job in jobs {
                    trace_job(hasher, job)?;
                }
            }
            Event::FetchTimeout { node, incarnation, request } => {
                hasher.update(b"fetch-timeout");
                encode(hasher, &(*node as u64, *incarnation, *request))?;
            }
            Event::Proposal { node, registration, item } => {
                hasher.update(b"proposal");
                encode(hasher, &(*node as u64, *registration))?;
                encode(hasher, item)?;
            }
            Event::Pump => {
                hasher.update(b"pump");
            }
            Event::Ordered(delivery) => {
                hasher.update(b"ordered");
                encode(hasher, &(delivery.node as u64, delivery.registration, delivery.upto as u64))?;
            }
            Event::WalletTick(wallet) => {
                hasher.update(b"wallet-tick");
                number(hasher, *wallet as u64);
            }
            Event::GatherTimeout { wallet, attempt } => {
                hasher.update(b"gather-timeout");
                encode(hasher, &(*wallet as u64, *attempt))?;
            }
            Event::Fault(fault) => {
                hasher.update(b"fault");
                hasher.update(format!("{fault:?}").as_bytes());
            }
            Event::Rest => {
                hasher.update(b"rest");
            }
            Event::Check => {
                hasher.update(b"check");
            }
        }
        Ok(())
    }

    /// The run's hash so far.
    pub(crate) fn run_hash(&self) -> Digest {
        Digest(*self.trace.finalize().as_bytes())
    }
}

fn endpoint_code(endpoint: &Endpoint) -> (u8, u64) {
    match endpoint {
        Endpoint::Node(node) => (0, *node as u64),
        Endpoint::Wallet(wallet) => (1, *wallet as u64),
    }
}

fn encode<T: Serialize + ?Sized>(hasher: &mut blake3::Hasher, value: &T) -> Result<(), postcard::Error> {
    postcard::to_io(value, hasher).map(|_| ())
}

fn trace_job(hasher: &mut blake3::Hasher, job: &LedgerJob) -> Result<(), postcard::Error> {
    match job {
        LedgerJob::Order { wallet, attempt, ballot, order, handover } => encode(
            hasher,
            &("order", *wallet as u64, *attempt, *ballot as u64, order.order.digest(), handover.len() as u64),
        ),
        LedgerJob::Certificates { wallet, certificates } => {
            let ids: Vec<Digest> = certificates.iter().map(Certificate::id).collect();
            encode(hasher, &("certificates", *wallet as u64, ids))
        }
        LedgerJob::Records(records) => {
            let ids: Vec<Digest> = records.iter().map(|r| r.record.id()).collect();
            encode(hasher, &("records", ids))
        }
        LedgerJob::Page { peer, page } => {
            encode(hasher, &("page", *peer as u64, page.next, page.certificates.len() as u64))
        }
    }
}

fn trace_message(hasher: &mut blake3::Hasher, message: &Message) -> Result<(), postcard::Error> {
    match message {
        Message::Propose(item) => encode(hasher, &("propose", item)),
        Message::Signature { epoch, signature } => encode(hasher, &("signature", epoch, signature)),
        Message::FetchRequest { epoch, request } => encode(hasher, &("fetch", epoch, request)),
        Message::FetchAnswer { request, outcome } => {
            let outcome = outcome.as_ref().map(|kept| (kept.head.digest(), kept.head.signatures.len() as u64));
            encode(hasher, &("outcome", request, outcome))
        }
        Message::Frame { session } => encode(hasher, &("frame", session)),
        Message::AppliedSince { position } => encode(hasher, &("applied-since", position)),
        Message::Applied { page } => encode(hasher, &("applied", page)),
        Message::Order { attempt, ballot, order, handover } => {
            encode(hasher, &("order", attempt, *ballot as u64, order, handover))
        }
        Message::Voted { attempt, ballot, answer } => {
            let answer = answer.as_ref().map_err(|error| format!("{error:?}"));
            encode(hasher, &("voted", attempt, *ballot as u64, answer))
        }
        Message::Certificates(certificates) => encode(hasher, &("certificates", certificates)),
        Message::Confirmed(answers) => {
            let answers: Vec<Result<_, String>> =
                answers.iter().map(|answer| answer.as_ref().map_err(|error| format!("{error:?}"))).collect();
            encode(hasher, &("confirmed", answers))
        }
    }
}
