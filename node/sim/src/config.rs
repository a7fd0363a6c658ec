//! What a run simulates: the section's size and length, the seed, the faults, and the
//! timings the machines run with.

use std::fmt;

/// The kinds of fault a run injects. Each is off unless named, so a run without faults is
/// the baseline the faulty runs are read against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSet {
    /// Nodes are killed (memory lost, unsynced writes lost) and restarted from their disk;
    /// some kills are power cuts in the middle of a ledger write.
    pub kill: bool,
    /// The nodes split into two groups that cannot reach each other until healed.
    pub partition: bool,
    /// A node's disk answers late: its ledger writes finish hundreds of ms later.
    pub slow_disk: bool,
    /// Some elders lie: forged reports, equivocating votes, or silence; and a wallet
    /// signs two orders for one sequence.
    pub byzantine: bool,
}

/// Why a list of faults did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault `{0}`; expected kill, partition, slow-disk, byzantine, all or none")]
pub struct UnknownFault(pub String);

impl FaultSet {
    /// No faults: the network still delays, reorders and loses messages.
    pub const NONE: FaultSet = FaultSet { kill: false, partition: false, slow_disk: false, byzantine: false };
    /// Every fault at once.
    pub const ALL: FaultSet = FaultSet { kill: true, partition: true, slow_disk: true, byzantine: true };

    /// Parses a comma list (`kill,partition,slow-disk,byzantine`), `all` or `none`, as the
    /// command line takes it.
    pub fn parse(list: &str) -> Result<FaultSet, UnknownFault> {
        let mut faults = FaultSet::NONE;
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match name {
                "all" => faults = FaultSet::ALL,
                "none" => {}
                "kill" => faults.kill = true,
                "partition" => faults.partition = true,
                "slow-disk" => faults.slow_disk = true,
                "byzantine" => faults.byzantine = true,
                other => return Err(UnknownFault(other.to_owned())),
            }
        }
        Ok(faults)
    }

    /// Whether any fault is on.
    pub fn any(&self) -> bool {
        self.kill || self.partition || self.slow_disk || self.byzantine
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.kill, "kill"),
            (self.partition, "partition"),
            (self.slow_disk, "slow-disk"),
            (self.byzantine, "byzantine"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// A fault at a chosen moment, for checks that need one exactly (a node down for several
/// epochs), on top of or instead of the seeded ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptedFault {
    /// Kill node `node` (an index into the founders, in the order the keys were made) at
    /// `at_ms` and restart it `down_ms` later.
    Kill {
        /// The node.
        node: usize,
        /// When, in simulated ms.
        at_ms: u64,
        /// For how long.
        down_ms: u64,
    },
    /// Cut `minority` off from the other nodes at `at_ms`, healed `heal_after_ms` later.
    Partition {
        /// The nodes on the smaller side.
        minority: Vec<usize>,
        /// When, in simulated ms.
        at_ms: u64,
        /// For how long.
        heal_after_ms: u64,
    },
}

/// Where an elder that joins a session late — restarted, or back from a partition —
/// gets the items ordered while it was away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionReplay {
    /// From the session's ordered log itself, as long as a quorum of the session's elders
    /// is up on its side, whether or not any of them still runs the session.
    #[default]
    FromLog,
    /// Only from peers still running the session (what each of them received), as
    /// aleph-bft, whose elders end a session at its close and drop its frames after:
    /// an elder left alone in a finished session must catch up by fetching outcomes.
    FromPeers,
}

/// How messages travel between nodes, and between wallets and nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSettings {
    /// The least a message takes, in ms.
    pub base_latency_ms: u64,
    /// Up to this much more, drawn per message: messages overtake each other.
    pub jitter_ms: u64,
    /// The chance that a message is lost, in `[0, 1)`.
    pub loss: f64,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings { base_latency_ms: 10, jitter_ms: 40, loss: 0.01 }
    }
}

/// One run of the simulator. [`SimConfig::new`] gives the defaults the command line uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Nodes, all founders of the section; the first 7 by id are the elders and the
    /// committee that certifies transfers.
    pub nodes: usize,
    /// The run ends once the section has closed this many epochs and rests.
    pub epochs: u64,
    /// Every random choice of the run follows from it.
    pub seed: u64,
    /// The faults injected.
    pub faults: FaultSet,
    /// Byzantine elders when `faults.byzantine` is on; `None` is the most a section
    /// tolerates, f = (elders − 1) / 3.
    pub byzantine: Option<usize>,
    /// Wallets sending transfers (one of them double-spends when Byzantine faults are on).
    pub wallets: usize,
    /// Credits each wallet holds at genesis.
    pub wallet_credits: u64,
    /// How long an epoch runs before the elders report, in simulated ms.
    pub epoch_ms: u64,
    /// How long an elder waits for missing reports once a quorum is in, in ms.
    pub report_grace_ms: u64,
    /// How long a member may be unreachable before elders complain, in ms.
    pub unresponsive_after_ms: u64,
    /// How often a node outside the session asks for closed epochs, in ms.
    pub follow_interval_ms: u64,
    /// How often every node's clock ticks, in ms.
    pub tick_ms: u64,
    /// How often a node pulls certificates it lacks from the committee, in ms.
    pub ledger_sync_ms: u64,
    /// The network.
    pub network: NetworkSettings,
    /// Chunks stored per node (each on its 4 closest members).
    pub chunks_per_node: usize,
    /// A wallet starts a transfer every this many ms on average.
    pub transfer_every_ms: u64,
    /// Faults at chosen moments.
    pub scripted: Vec<ScriptedFault>,
    /// How long the section may take to settle once the last epoch closed, in ms, before
    /// the run is reported as not finished.
    pub settle_deadline_ms: u64,
    /// Whether the report lists what happened when (faults, closes, membership).
    pub timeline: bool,
    /// Where a late elder gets a session's items.
    pub replay: SessionReplay,
}

impl SimConfig {
    /// `nodes` founders running `epochs` epochs with `seed`, no faults, and the timings of
    /// a devnet: 10 s epochs, 30 s before a member counts as unresponsive, followers
    /// asking every 2 s.
    pub fn new(nodes: usize, epochs: u64, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            epochs,
            seed,
            faults: FaultSet::NONE,
            byzantine: None,
            wallets: 6,
            wallet_credits: 10_000,
            epoch_ms: 10_000,
            report_grace_ms: 1_000,
            unresponsive_after_ms: 30_000,
            follow_interval_ms: 2_000,
            tick_ms: 250,
            ledger_sync_ms: 1_000,
            network: NetworkSettings::default(),
            chunks_per_node: 2,
            transfer_every_ms: 2_500,
            scripted: Vec::new(),
            settle_deadline_ms: 300_000,
            timeline: false,
            replay: SessionReplay::FromLog,
        }
    }

    /// The same run with these faults.
    pub fn with_faults(mut self, faults: FaultSet) -> SimConfig {
        self.faults = faults;
        self
    }

    /// Why this configuration cannot run, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.nodes < 4 {
            return Some(format!("{} nodes: a section needs at least 4 to tolerate one fault", self.nodes));
        }
        if self.epochs == 0 {
            return Some("the run must close at least one epoch".into());
        }
        if !(0.0..1.0).contains(&self.network.loss) {
            return Some(format!("loss {} is not in [0, 1)", self.network.loss));
        }
        if self.tick_ms == 0 || self.epoch_ms == 0 || self.ledger_sync_ms == 0 || self.transfer_every_ms == 0 {
            return Some("every interval must be at least 1 ms".into());
        }
        if self.wallets == 0 {
            return Some("genesis needs at least one wallet to hold the credits".into());
        }
        if self.wallet_credits == 0 || self.wallet_credits > 1_000_000 {
            return Some("a wallet holds between 1 and 1,000,000 credits at genesis".into());
        }
        let scripted_nodes = self.scripted.iter().flat_map(|fault| match fault {
            ScriptedFault::Kill { node, .. } => vec![*node],
            ScriptedFault::Partition { minority, .. } => minority.clone(),
        });
        if let Some(node) = scripted_nodes.into_iter().find(|node| *node >= self.nodes) {
            return Some(format!("a scripted fault names node {node} of {}", self.nodes));
        }
        None
    }
}
