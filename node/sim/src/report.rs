//! What a run showed: the section's progress, the money, and the checks every honest
//! node must pass — supply equals genesis plus mints, at most one certificate per
//! (account, sequence), every mint itemised, one record per epoch, one section state and
//! one ledger state among the honest.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use acre_ledger::store::Store;
use acre_ledger::{AccountId, Amount, Digest, EpochRecord};

use crate::config::FaultSet;
use crate::world::Simulation;
use crate::NodeRole;

/// One closed epoch, as the honest nodes recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochSummary {
    /// The epoch.
    pub epoch: u64,
    /// New credits.
    pub minted: Amount,
    /// Paid out of the pool.
    pub from_pool: Amount,
    /// The farmers paid, by node id.
    pub farmers: Vec<AccountId>,
    /// Whether its items add up to its total, and the total to minted plus pool.
    pub itemised: bool,
    /// When an honest node first closed it, in simulated ms.
    pub closed_at_ms: Option<u64>,
}

/// What one node ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's index among the founders.
    pub index: usize,
    /// Its id.
    pub id: AccountId,
    /// How it behaved.
    pub role: NodeRole,
    /// Whether it is in the committee that certifies transfers.
    pub committee: bool,
    /// The epoch open in its machine, if it runs one.
    pub open_epoch: Option<u64>,
    /// Its section state's hash as of the last close.
    pub section_state: Option<Digest>,
    /// Its ledger's state hash.
    pub ledger_state: Option<Digest>,
    /// Closed epochs whose outcome it keeps on disk.
    pub outcomes_held: usize,
    /// Epoch records its ledger applied.
    pub records_applied: usize,
    /// Times it was restarted.
    pub restarts: u64,
    /// The most epochs the section was ahead of it when it restarted.
    pub most_behind_at_restart: u64,
}

/// Faults that struck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Nodes killed (power cuts included).
    pub kills: u64,
    /// Kills that cut the power in the middle of a ledger write.
    pub power_cuts: u64,
    /// Restarts.
    pub restarts: u64,
    /// Partitions.
    pub partitions: u64,
    /// Disks slowed.
    pub slow_disks: u64,
}

/// What the network carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Messages sent.
    pub sent: u64,
    /// Lost on the way.
    pub lost: u64,
    /// Dropped at a partition.
    pub partitioned: u64,
    /// Arrived at a node that was down.
    pub undeliverable: u64,
    /// Items the broadcast ordered.
    pub ordered_items: u64,
    /// Closed epochs' outcomes served to nodes catching up.
    pub outcomes_fetched: u64,
}

/// The outcome of one run of [`crate::run`]. Equal seeds and configurations give equal
/// reports, `run_hash` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// Nodes simulated.
    pub nodes: usize,
    /// Epochs the run was to close.
    pub epochs: u64,
    /// The seed.
    pub seed: u64,
    /// The faults enabled.
    pub faults: FaultSet,
    /// Whether the section closed every epoch and settled before the deadline.
    pub finished: bool,
    /// Why not, if not.
    pub failure: Option<String>,
    /// Simulated time at the end, in ms.
    pub sim_time_ms: u64,
    /// Events processed.
    pub events: u64,
    /// The highest epoch an honest node closed.
    pub epochs_closed: u64,
    /// The genesis supply.
    pub genesis: Amount,
    /// Credits minted by every record (sum of the records' `minted`).
    pub minted: Amount,
    /// Credits paid out of the pool.
    pub paid_from_pool: Amount,
    /// Every closed epoch.
    pub records: Vec<EpochSummary>,
    /// Transfers the wallets got certificates for.
    pub transfers_certified: u64,
    /// Of them, payments to the pool.
    pub pool_payments: u64,
    /// Rounds ended by a `conflicting_order` refusal (double-spends).
    pub conflicts_refused: u64,
    /// Double-spends tried.
    pub double_spends: u64,
    /// Votes a lying elder cast for a second order at one sequence.
    pub equivocating_votes: u64,
    /// Forged reports proposed.
    pub forged_reports: u64,
    /// Whether every honest ledger's balances sum to genesis plus mints, its mints to
    /// the records', and every section state's supply agrees.
    pub supply_holds: bool,
    /// What broke it, if anything.
    pub supply_problems: Vec<String>,
    /// The most distinct certificates seen for one (account, sequence), by wallets and
    /// honest ledgers together: 1 is safe.
    pub most_certificates_per_sequence: usize,
    /// `conflicting_order` answers to certificates at honest ledgers.
    pub certificate_conflicts: u64,
    /// `epoch_conflict` answers at honest ledgers.
    pub epoch_conflicts: u64,
    /// Whether every mint is itemised: items add up to totals, totals to mint plus pool.
    pub every_mint_itemised: bool,
    /// Whether honest nodes kept the same record for every epoch, on disk and in the ledger.
    pub records_agree: bool,
    /// Whether every honest node ends with the same section state.
    pub section_states_agree: bool,
    /// Whether every honest node ends with the same ledger state.
    pub ledgers_agree: bool,
    /// Registrations to a session that named other elders than its first.
    pub session_disagreements: u64,
    /// The member that stores nothing, with Byzantine faults on.
    pub freeloader: Option<AccountId>,
    /// What the records paid it (the lying elders claim it passes).
    pub freeloader_minted: Amount,
    /// The honest farmer (the freeloader aside) paid least against its fair share, in
    /// thousandths: its share of everything the records paid farmers over the run, over
    /// its share of the duties of the farmers that store (all but the freeloader). 1,000 is exactly fair; `None`
    /// when nobody was paid.
    pub worst_honest_share_permille: Option<u64>,
    /// Every node.
    pub node_reports: Vec<NodeReport>,
    /// Faults that struck.
    pub faults_injected: FaultCounts,
    /// Traffic.
    pub traffic: TrafficCounts,
    /// What happened when, if the configuration asked for it.
    pub timeline: Vec<String>,
    /// BLAKE3 over every event processed: equal exactly for identical runs.
    pub run_hash: Digest,
}

impl SimReport {
    /// What is wrong with the run, if anything: empty for a run that finished and passed
    /// every check.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(failure) = &self.failure {
            problems.push(failure.clone());
        } else if !self.finished {
            problems.push("the run did not finish".into());
        }
        let checks = [
            (self.supply_holds, "supply is not genesis plus mints"),
            (self.most_certificates_per_sequence <= 1, "two certificates for one (account, sequence)"),
            (self.certificate_conflicts == 0, "an honest ledger saw a conflicting certificate"),
            (self.epoch_conflicts == 0, "an honest ledger saw two records for one epoch"),
            (self.every_mint_itemised, "a mint is not itemised"),
            (self.records_agree, "honest nodes hold different records"),
            (self.section_states_agree, "honest section states differ"),
            (self.ledgers_agree, "honest ledgers differ"),
            (self.freeloader_minted == Amount::ZERO, "the freeloader was paid"),
        ];
        problems.extend(checks.into_iter().filter(|(holds, _)| !holds).map(|(_, problem)| problem.to_owned()));
        problems.extend(self.supply_problems.iter().cloned());
        problems
    }

    /// Whether the run finished and passed every check.
    pub fn holds(&self) -> bool {
        self.problems().is_empty()
    }

    /// The report of a run that could not start.
    pub(crate) fn not_started(nodes: usize, epochs: u64, seed: u64, faults: FaultSet, failure: String) -> SimReport {
        SimReport {
            nodes,
            epochs,
            seed,
            faults,
            finished: false,
            failure: Some(failure),
            sim_time_ms: 0,
            events: 0,
            epochs_closed: 0,
            genesis: Amount::ZERO,
            minted: Amount::ZERO,
            paid_from_pool: Amount::ZERO,
            records: Vec::new(),
            transfers_certified: 0,
            pool_payments: 0,
            conflicts_refused: 0,
            double_spends: 0,
            equivocating_votes: 0,
            forged_reports: 0,
            supply_holds: false,
            supply_problems: Vec::new(),
            most_certificates_per_sequence: 0,
            certificate_conflicts: 0,
            epoch_conflicts: 0,
            every_mint_itemised: false,
            records_agree: false,
            section_states_agree: false,
            ledgers_agree: false,
            session_disagreements: 0,
            freeloader: None,
            freeloader_minted: Amount::ZERO,
            worst_honest_share_permille: None,
            node_reports: Vec::new(),
            faults_injected: FaultCounts::default(),
            traffic: TrafficCounts::default(),
            timeline: Vec::new(),
            run_hash: Digest::default(),
        }
    }
}

fn yes(holds: bool) -> &'static str {
    if holds {
        "yes"
    } else {
        "NO"
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "acre-sim: {} nodes, {} epochs, seed {}, faults {}",
            self.nodes, self.epochs, self.seed, self.faults
        )?;
        writeln!(
            f,
            "  finished                     {} at {:.1} s simulated, {} events",
            yes(self.finished),
            self.sim_time_ms as f64 / 1000.0,
            self.events
        )?;
        if let Some(failure) = &self.failure {
            writeln!(f, "  failure                      {failure}")?;
        }
        writeln!(f, "  epochs closed                {}", self.epochs_closed)?;
        writeln!(f, "  credits minted               {} (paid from the pool: {})", self.minted, self.paid_from_pool)?;
        writeln!(
            f,
            "  transfers certified          {} ({} to the pool); conflicts refused {}",
            self.transfers_certified, self.pool_payments, self.conflicts_refused
        )?;
        writeln!(
            f,
            "  byzantine                    {} double-spends, {} equivocating votes, {} forged reports",
            self.double_spends, self.equivocating_votes, self.forged_reports
        )?;
        if let Some(freeloader) = &self.freeloader {
            writeln!(f, "  freeloader                   {freeloader}: minted {}", self.freeloader_minted)?;
        }
        if let Some(share) = self.worst_honest_share_permille {
            writeln!(f, "  worst honest farmer's pay    {:.3} of its fair share", share as f64 / 1000.0)?;
        }
        writeln!(
            f,
            "  supply = genesis + minted    {} (genesis {}, minted {})",
            yes(self.supply_holds),
            self.genesis,
            self.minted
        )?;
        for problem in &self.supply_problems {
            writeln!(f, "    {problem}")?;
        }
        writeln!(
            f,
            "  one certificate per sequence {} (at most {} seen)",
            yes(self.most_certificates_per_sequence <= 1 && self.certificate_conflicts == 0),
            self.most_certificates_per_sequence
        )?;
        writeln!(f, "  every mint itemised          {}", yes(self.every_mint_itemised))?;
        writeln!(f, "  records agree                {}", yes(self.records_agree && self.epoch_conflicts == 0))?;
        writeln!(f, "  section states agree         {}", yes(self.section_states_agree))?;
        writeln!(f, "  ledger states agree          {}", yes(self.ledgers_agree))?;
        let faults = &self.faults_injected;
        writeln!(
            f,
            "  faults                       {} kills ({} power cuts), {} restarts, {} partitions, {} slow disks",
            faults.kills, faults.power_cuts, faults.restarts, faults.partitions, faults.slow_disks
        )?;
        let traffic = &self.traffic;
        writeln!(
            f,
            "  messages                     {} sent, {} lost, {} cut by partitions, {} to down nodes",
            traffic.sent, traffic.lost, traffic.partitioned, traffic.undeliverable
        )?;
        writeln!(
            f,
            "  log items ordered            {}; outcomes fetched by followers {}",
            traffic.ordered_items, traffic.outcomes_fetched
        )?;
        for record in &self.records {
            writeln!(
                f,
                "  epoch {:>3}: closed at {:>6.1} s, minted {}, from the pool {}, {} farmers paid, itemised {}",
                record.epoch,
                record.closed_at_ms.map_or(f64::NAN, |at| at as f64 / 1000.0),
                record.minted,
                record.from_pool,
                record.farmers.len(),
                yes(record.itemised)
            )?;
        }
        for node in self.node_reports.iter().filter(|node| node.role != NodeRole::Honest || node.restarts > 0) {
            writeln!(
                f,
                "  node {:>3} {:?}{}: epoch {}, {} restarts, at most {} epochs behind at a restart",
                node.index,
                node.role,
                if node.committee { " (committee)" } else { "" },
                node.open_epoch.map_or_else(|| "-".to_owned(), |epoch| epoch.to_string()),
                node.restarts,
                node.most_behind_at_restart
            )?;
        }
        for line in &self.timeline {
            writeln!(f, "  {line}")?;
        }
        let section = self.node_reports.iter().find_map(|node| node.section_state);
        let ledger = self.node_reports.iter().find_map(|node| node.ledger_state);
        if let (Some(section), Some(ledger)) = (section, ledger) {
            writeln!(f, "  section state {section}")?;
            writeln!(f, "  ledger state  {ledger}")?;
        }
        write!(f, "  run hash      {}", self.run_hash)
    }
}

fn itemised(record: &EpochRecord) -> bool {
    let items = record.items.iter().map(|item| u128::from(item.amount.nanos()));
    let apps = record.apps.iter().map(|item| u128::from(item.amount.nanos()));
    let sum: u128 = items.chain(apps).sum();
    sum == u128::from(record.total.nanos())
        && u128::from(record.total.nanos()) == u128::from(record.minted.nanos()) + u128::from(record.from_pool.nanos())
}

/// Nanos as credits for a message.
fn show(nanos: u64) -> String {
    Amount::from_nanos(nanos).map_or_else(|_| format!("{nanos} nanos"), |amount| amount.to_string())
}

/// A sum of mints as an amount. Sums stay under the supply cap; one that does not is
/// itself a finding.
fn capped(nanos: u64, problems: &mut Vec<String>) -> Amount {
    Amount::from_nanos(nanos).unwrap_or_else(|_| {
        problems.push(format!("{nanos} nanos pass the supply cap"));
        Amount::MAX
    })
}

/// Judges the run as it ended.
pub(crate) fn report(sim: &Simulation) -> SimReport {
    let honest: Vec<usize> = sim.honest_nodes().collect();
    let reference =
        honest.iter().copied().max_by_key(|node| (sim.nodes[*node].files.outcomes.len(), usize::MAX - node));
    let reference_outcomes: BTreeMap<u64, &EpochRecord> = match reference {
        Some(node) => sim.nodes[node].files.outcomes.iter().map(|(epoch, kept)| (*epoch, kept.record())).collect(),
        None => BTreeMap::new(),
    };

    let mut records = Vec::new();
    let mut minted = 0u64;
    let mut from_pool = 0u64;
    let mut freeloader_minted = 0u64;
    let freeloader = sim.freeloader.map(|node| sim.ids[node]);
    for (epoch, record) in &reference_outcomes {
        minted += record.minted.nanos();
        from_pool += record.from_pool.nanos();
        freeloader_minted += record
            .items
            .iter()
            .filter(|item| Some(item.farmer) == freeloader)
            .map(|item| item.amount.nanos())
            .sum::<u64>();
        records.push(EpochSummary {
            epoch: *epoch,
            minted: record.minted,
            from_pool: record.from_pool,
            farmers: record.items.iter().filter(|item| !item.amount.is_zero()).map(|item| item.farmer).collect(),
            itemised: itemised(record),
            closed_at_ms: sim.stats.closed_at.get(epoch).copied(),
        });
    }
    let mut supply_problems = Vec::new();
    let duties = reference.and_then(|node| sim.nodes[node].running()).map(|running| running.machine.state().farmers());
    let worst_honest_share_permille = duties.and_then(|duties| worst_honest_share(sim, &reference_outcomes, &duties));

    let mut every_mint_itemised = true;
    let mut records_agree = true;
    let mut section_states = BTreeSet::new();
    let mut ledger_states = BTreeSet::new();
    let genesis = sim.genesis_total.nanos();
    for &node in &honest {
        let this = &sim.nodes[node];
        for (epoch, kept) in &this.files.outcomes {
            every_mint_itemised &= itemised(kept.record());
            records_agree &= reference_outcomes.get(epoch).is_some_and(|record| record.id() == kept.record().id());
        }
        let Some(running) = this.running() else {
            if sim.failure.is_none() {
                supply_problems.push(format!("node {node} is down at the end"));
            }
            continue;
        };
        let ledger = running.ledger.state();
        for (epoch, id) in ledger.epochs() {
            records_agree &= reference_outcomes.get(epoch).is_some_and(|record| record.id() == *id);
        }
        match ledger.circulating() {
            Some(circulating)
                if u128::from(circulating.nanos()) == u128::from(genesis) + u128::from(ledger.minted().nanos()) => {}
            other => supply_problems.push(format!(
                "node {node}: balances sum to {other:?}, genesis {} + minted {}",
                sim.genesis_total,
                ledger.minted()
            )),
        }
        // Once settled every honest node holds every record; before, each is held to
        // the records it closed itself.
        let own_minted: u64 = if sim.failure.is_none() {
            minted
        } else {
            this.files.outcomes.values().map(|kept| kept.record().minted.nanos()).sum()
        };
        if sim.failure.is_none() && ledger.minted().nanos() != minted {
            supply_problems.push(format!(
                "node {node}: its ledger minted {}, the records {}",
                ledger.minted(),
                show(minted)
            ));
        }
        let supply = running.machine.state().supply().nanos();
        if u128::from(supply) != u128::from(genesis) + u128::from(own_minted) {
            supply_problems.push(format!("node {node}: the section state's supply is {}", show(supply)));
        }
        match running.machine.state().state_hash() {
            Ok(hash) => {
                section_states.insert(hash);
            }
            Err(error) => supply_problems.push(format!("node {node}: the section state does not hash: {error}")),
        }
        ledger_states.insert(ledger.state_hash());
    }

    // At most one certificate per (account, sequence): what wallets gathered and what
    // every honest ledger applied, together.
    let mut certificates: BTreeMap<(AccountId, u64), BTreeSet<Digest>> = sim.stats.certified.clone();
    for &node in &honest {
        let Some(running) = sim.nodes[node].running() else { continue };
        let store = running.ledger.store();
        for wallet in &sim.wallets {
            let next = running.ledger.state().account(&wallet.id).map_or(0, |account| account.next_sequence);
            for sequence in 0..next {
                if let Ok(Some(id)) = store.certificate_at(&wallet.id, sequence) {
                    certificates.entry((wallet.id, sequence)).or_default().insert(id);
                }
            }
        }
    }
    let most_certificates_per_sequence = certificates.values().map(BTreeSet::len).max().unwrap_or(0);

    let committee: BTreeSet<usize> = sim.committee_nodes.iter().copied().collect();
    let node_reports = sim
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let running = node.running();
            NodeReport {
                index,
                id: node.id,
                role: node.role,
                committee: committee.contains(&index),
                open_epoch: running.map(|running| running.machine.state().epoch()),
                section_state: running.and_then(|running| running.machine.state().state_hash().ok()),
                ledger_state: running.map(|running| running.ledger.state().state_hash()),
                outcomes_held: node.files.outcomes.len(),
                records_applied: running.map_or(0, |running| running.ledger.state().epochs().len()),
                restarts: node.restarts,
                most_behind_at_restart: node.most_behind,
            }
        })
        .collect();

    let minted_total = capped(minted, &mut supply_problems);
    let paid_from_pool = capped(from_pool, &mut supply_problems);
    let freeloader_minted = capped(freeloader_minted, &mut supply_problems);
    SimReport {
        nodes: sim.config.nodes,
        epochs: sim.config.epochs,
        seed: sim.config.seed,
        faults: sim.config.faults,
        finished: sim.failure.is_none(),
        failure: sim.failure.clone(),
        sim_time_ms: sim.scheduler.now(),
        events: sim.events,
        epochs_closed: sim.highest_closed(),
        genesis: sim.genesis_total,
        minted: minted_total,
        paid_from_pool,
        records,
        transfers_certified: sim.stats.transfers_certified,
        pool_payments: sim.stats.pool_payments,
        conflicts_refused: sim.stats.conflicts_refused,
        double_spends: sim.stats.double_spends,
        equivocating_votes: sim.stats.equivocating_votes,
        forged_reports: sim.stats.forged_reports,
        supply_holds: supply_problems.is_empty() && !honest.is_empty(),
        supply_problems,
        most_certificates_per_sequence,
        certificate_conflicts: sim.stats.certificate_conflicts,
        epoch_conflicts: sim.stats.epoch_conflicts,
        every_mint_itemised,
        records_agree,
        section_states_agree: section_states.len() == 1,
        ledgers_agree: ledger_states.len() == 1,
        session_disagreements: sim.broadcast.disagreements,
        freeloader,
        freeloader_minted,
        worst_honest_share_permille,
        node_reports,
        faults_injected: FaultCounts {
            kills: sim.stats.kills,
            power_cuts: sim.stats.power_cuts,
            restarts: sim.stats.restarts,
            partitions: sim.stats.partitions,
            slow_disks: sim.stats.slow_disks,
        },
        traffic: TrafficCounts {
            sent: sim.network.sent,
            lost: sim.network.lost,
            partitioned: sim.network.partitioned,
            undeliverable: sim.network.undeliverable,
            ordered_items: sim.broadcast.ordered,
            outcomes_fetched: sim.stats.outcomes_fetched,
        },
        timeline: sim.stats.timeline.clone(),
        run_hash: sim.run_hash(),
    }
}

/// The least any honest farmer was paid over the run against its fair share, in
/// thousandths (see [`SimReport::worst_honest_share_permille`]).
fn worst_honest_share(
    sim: &Simulation,
    records: &BTreeMap<u64, &EpochRecord>,
    duties: &BTreeMap<AccountId, acre_ledger::Farmer>,
) -> Option<u64> {
    let freeloader = sim.freeloader.map(|node| sim.ids[node]);
    let mut paid: BTreeMap<AccountId, u128> = BTreeMap::new();
    for item in records.values().flat_map(|record| &record.items) {
        *paid.entry(item.farmer).or_default() += u128::from(item.amount.nanos());
    }
    let paid_total: u128 = paid.values().sum();
    let duty_total: u128 =
        duties.iter().filter(|(id, _)| Some(**id) != freeloader).map(|(_, farmer)| u128::from(farmer.bytes)).sum();
    if paid_total == 0 || duty_total == 0 {
        return None;
    }
    sim.honest_nodes()
        .map(|node| sim.ids[node])
        .filter(|id| Some(*id) != freeloader)
        .filter_map(|id| duties.get(&id).filter(|farmer| farmer.bytes > 0).map(|farmer| (id, farmer.bytes)))
        .map(|(id, duty)| {
            let got = paid.get(&id).copied().unwrap_or(0);
            // (got / paid_total) / (duty / duty_total), in thousandths.
            let share = got * duty_total * 1000 / (paid_total * u128::from(duty));
            u64::try_from(share).unwrap_or(u64::MAX)
        })
        .min()
}
