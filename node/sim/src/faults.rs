//! Faults: seeded kills (some of them power cuts in the middle of a ledger write),
//! partitions and slow disks while the section runs, scripted ones at chosen moments,
//! and the end of all of them when the section comes to rest.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::config::ScriptedFault;
use crate::scheduler::Millis;
use crate::world::{Event, FaultEvent, Phase, SimError, Simulation};
use crate::NodeRole;

/// How often a seeded fault may strike.
pub(crate) const FAULT_EVERY_MS: Millis = 4_000;
/// The chance that one does, each time.
const FAULT_CHANCE: f64 = 0.7;
/// How long an armed power cut waits for a write before the node is killed plainly.
const POWER_CUT_WAIT_MS: Millis = 2_000;

impl Simulation {
    /// Puts the configured scripted faults on the agenda.
    pub(crate) fn schedule_scripted_faults(&mut self) {
        let nodes = self.nodes.len();
        for fault in self.config.scripted.clone() {
            match fault {
                ScriptedFault::Kill { node, at_ms, down_ms } => {
                    self.scheduler.at(at_ms, Event::Fault(FaultEvent::Kill { node, power_cut: false, down_ms }));
                }
                ScriptedFault::Partition { minority, at_ms, heal_after_ms } => {
                    let mut sides = vec![0; nodes];
                    for node in minority {
                        sides[node] = 1;
                    }
                    self.scheduler.at(at_ms, Event::Fault(FaultEvent::Partition { sides, heal_after_ms }));
                }
            }
        }
    }

    /// Runs a fault event.
    pub(crate) fn fault(&mut self, fault: FaultEvent) -> Result<(), SimError> {
        let now = self.scheduler.now();
        let running = self.phase == Phase::Running;
        match fault {
            FaultEvent::Plan => {
                if running {
                    self.scheduler.after(FAULT_EVERY_MS, Event::Fault(FaultEvent::Plan));
                    self.plan_fault();
                }
            }
            FaultEvent::Kill { node, power_cut, down_ms } => {
                if !running || !self.nodes[node].is_running() || self.nodes[node].cut_down_ms.is_some() {
                    return Ok(());
                }
                self.note(|| {
                    format!(
                        "kill node {node} for {} s{}",
                        down_ms / 1000,
                        if power_cut { " at its next sync" } else { "" }
                    )
                });
                if power_cut {
                    let incarnation = self.nodes[node].incarnation;
                    self.nodes[node].power.arm();
                    self.nodes[node].cut_down_ms = Some(down_ms);
                    self.scheduler
                        .after(POWER_CUT_WAIT_MS, Event::Fault(FaultEvent::CutFallback { node, incarnation }));
                } else {
                    self.stats.kills += 1;
                    self.crash(node);
                    let incarnation = self.nodes[node].incarnation;
                    self.scheduler.after(down_ms, Event::Fault(FaultEvent::Restart { node, incarnation }));
                }
            }
            FaultEvent::CutFallback { node, incarnation } => {
                let this = &mut self.nodes[node];
                if this.incarnation == incarnation && this.power.is_armed() {
                    this.power.disarm();
                    let down_ms = this.cut_down_ms.take().unwrap_or(0);
                    if running {
                        self.stats.kills += 1;
                        self.crash(node);
                        let incarnation = self.nodes[node].incarnation;
                        self.scheduler.after(down_ms, Event::Fault(FaultEvent::Restart { node, incarnation }));
                    }
                }
            }
            FaultEvent::Restart { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation && !self.nodes[node].is_up() {
                    self.stats.restarts += 1;
                    self.boot(node, false)?;
                }
            }
            FaultEvent::Partition { sides, heal_after_ms } => {
                if running && !self.network.is_partitioned() {
                    let minority: Vec<usize> = (0..sides.len()).filter(|node| sides[*node] == 1).collect();
                    self.note(|| format!("partition {minority:?} from the rest for {} s", heal_after_ms / 1000));
                    self.network.partition(sides);
                    self.partitions_made += 1;
                    self.stats.partitions += 1;
                    let partition = self.partitions_made;
                    self.scheduler.after(heal_after_ms, Event::Fault(FaultEvent::Heal { partition }));
                }
            }
            FaultEvent::Heal { partition } => {
                if partition == self.partitions_made && self.network.is_partitioned() {
                    self.note(|| "heal the partition".to_owned());
                    self.network.heal();
                }
            }
            FaultEvent::SlowDisk { node, extra_ms, for_ms } => {
                if running {
                    self.note(|| format!("node {node}'s disk slows by {extra_ms} ms for {} s", for_ms / 1000));
                    self.stats.slow_disks += 1;
                    self.nodes[node].slow_disk_ms = extra_ms;
                    self.nodes[node].slow_until = now + for_ms;
                    self.scheduler.after(for_ms, Event::Fault(FaultEvent::DiskRecovered { node }));
                }
            }
            FaultEvent::DiskRecovered { node } => {
                if now >= self.nodes[node].slow_until {
                    self.nodes[node].slow_disk_ms = 0;
                }
            }
        }
        Ok(())
    }

    /// Draws the next seeded fault among those enabled: a kill while few honest nodes
    /// are down, a partition while the network is whole, a slow disk.
    fn plan_fault(&mut self) {
        let faults = self.config.faults;
        let kinds: Vec<u8> = [(faults.kill, 0), (faults.partition, 1), (faults.slow_disk, 2)]
            .into_iter()
            .filter_map(|(on, kind)| on.then_some(kind))
            .collect();
        let Some(&kind) = kinds.choose(&mut self.fault_rng) else { return };
        if !self.fault_rng.gen_bool(FAULT_CHANCE) {
            return;
        }
        let nodes = self.nodes.len();
        let honest_running: Vec<usize> = self
            .honest_nodes()
            .filter(|node| self.nodes[*node].is_running() && self.nodes[*node].cut_down_ms.is_none())
            .collect();
        let event = match kind {
            0 => {
                let down = self.honest_nodes().filter(|node| !self.nodes[*node].is_running()).count();
                let most_down = if nodes >= 20 { 2 } else { 1 };
                let Some(&node) = honest_running.choose(&mut self.fault_rng).filter(|_| down < most_down) else {
                    return;
                };
                let power_cut = self.fault_rng.gen_bool(0.5);
                let down_ms = self.fault_rng.gen_range(2_000..=40_000);
                FaultEvent::Kill { node, power_cut, down_ms }
            }
            1 => {
                if self.network.is_partitioned() {
                    return;
                }
                let mut order: Vec<usize> = (0..nodes).collect();
                order.shuffle(&mut self.fault_rng);
                let minority = self.fault_rng.gen_range(1..=((nodes - 1) / 2).max(1));
                let mut sides = vec![0; nodes];
                for &node in &order[..minority] {
                    sides[node] = 1;
                }
                let heal_after_ms = self.fault_rng.gen_range(2_000..=15_000);
                FaultEvent::Partition { sides, heal_after_ms }
            }
            _ => {
                let idle: Vec<usize> =
                    honest_running.iter().copied().filter(|node| self.nodes[*node].slow_disk_ms == 0).collect();
                let Some(&node) = idle.choose(&mut self.fault_rng) else { return };
                let extra_ms = self.fault_rng.gen_range(100..=2_000);
                let for_ms = self.fault_rng.gen_range(5_000..=20_000);
                FaultEvent::SlowDisk { node, extra_ms, for_ms }
            }
        };
        self.scheduler.after(0, Event::Fault(event));
    }

    /// The last epoch closed: transfers and faults stop, every node comes back up on a
    /// whole network with healthy disks, and reports for later epochs are no longer
    /// ordered, so the section rests with the next epoch open.
    pub(crate) fn begin_rest(&mut self) -> Result<(), SimError> {
        if self.phase != Phase::Running {
            return Ok(());
        }
        self.phase = Phase::Resting { since: self.scheduler.now() };
        self.note(|| "the last epoch closed: faults and transfers stop, the section rests".to_owned());
        self.broadcast.stop_reports_after(self.config.epochs);
        self.network.heal();
        for node in &mut self.nodes {
            node.power.disarm();
            node.cut_down_ms = None;
            node.slow_disk_ms = 0;
        }
        for node in 0..self.nodes.len() {
            if self.nodes[node].role != NodeRole::Silent && !self.nodes[node].is_up() {
                self.stats.restarts += 1;
                self.boot(node, false)?;
            }
        }
        Ok(())
    }
}
