//! A node: one `SectionMachine` and one `DurableElder` on a simulated disk, and the shell
//! that runs every effect the machine returns the way the real node does and feeds the
//! results back as inputs. `Effect::TakeAudits` is answered by `Input::Audits` at once,
//! before any other input; effects run in the order given.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use acre_core::{Effect, Input, LogItem, Proposer, RecordToApply, RecordsApplied, SectionMachine};
use acre_ledger::section_state::SectionState;
use acre_ledger::store::Store;
use acre_ledger::{AccountId, Certificate, Digest, DurableElder, LedgerError};
use ed25519_dalek::SigningKey;

use crate::disk::{PowerSwitch, SectionFiles, SimStore};
use crate::network::{Endpoint, Message};
use crate::scheduler::Millis;
use crate::world::{Event, LedgerJob, SimError, Simulation};
use crate::NodeRole;

/// How long a node waits for a peer's outcome before asking the next.
const FETCH_TIMEOUT_MS: Millis = 1_000;
/// What one ledger write costs on a healthy disk (the fsync).
const DISK_MS: Millis = 2;
/// Certificates per catch-up page, as the node asks for them.
const CATCH_UP_PAGE: usize = 512;
/// Closed epochs a restarted machine is handed, for late signatures.
const RECENT_OUTCOMES: usize = 16;

/// A node's machine and ledger while it runs.
#[derive(Debug)]
pub(crate) struct Running {
    /// The section driver.
    pub(crate) machine: SectionMachine,
    /// The ledger on the node's disk.
    pub(crate) ledger: DurableElder<SimStore>,
}

/// Whether a node runs.
#[derive(Debug)]
pub(crate) enum Life {
    /// Up, with its machine and ledger in memory.
    Up(Box<Running>),
    /// Down: only its disk remains.
    Down(Box<SimStore>),
    /// A silent Byzantine node: connected, running nothing, answering nothing.
    Silent,
}

/// One node of the section.
#[derive(Debug)]
pub(crate) struct Node {
    /// Its key: it signs votes, outcomes and enrolments with it.
    pub(crate) key: SigningKey,
    /// Its id, the key's public half.
    pub(crate) id: AccountId,
    /// How it behaves.
    pub(crate) role: NodeRole,
    /// Whether it runs.
    pub(crate) life: Life,
    /// Bumped at every crash and restart: work started in an earlier life is dropped.
    pub(crate) incarnation: u64,
    /// The section machine's files, which survive crashes.
    pub(crate) files: SectionFiles,
    /// The members as the machine last named them.
    pub(crate) members: Vec<AccountId>,
    /// Extra time each ledger write takes while the disk is slow.
    pub(crate) slow_disk_ms: Millis,
    /// When the slow disk recovers.
    pub(crate) slow_until: Millis,
    /// Ledger jobs waiting for the disk; they go together as one group commit once
    /// the disk is free.
    pub(crate) disk_queue: Vec<LedgerJob>,
    /// Whether a group commit is on the disk now.
    pub(crate) disk_busy: bool,
    /// Outcome requests in flight, by number, with the peer asked.
    pub(crate) fetches: BTreeMap<u64, AccountId>,
    /// When the node next pulls certificates from the committee.
    pub(crate) next_sync_at: Millis,
    /// Committee elders whose page waits on this node's disk: not asked again until it
    /// is applied, so a slow disk does not pile up pages.
    pub(crate) pages_queued: BTreeSet<usize>,
    /// The switch of the disk's power, to cut it in the middle of a write.
    pub(crate) power: PowerSwitch,
    /// A power cut is armed; the node stays down this long once it hits.
    pub(crate) cut_down_ms: Option<Millis>,
    /// Times it was restarted.
    pub(crate) restarts: u64,
    /// The most epochs the section was ahead of this node when it restarted.
    pub(crate) most_behind: u64,
    /// A lying elder's votes, to count its equivocations.
    pub(crate) votes: BTreeMap<(AccountId, u64), BTreeSet<Digest>>,
}

impl Node {
    /// A node with an empty disk, not yet booted.
    pub(crate) fn new(key: SigningKey, role: NodeRole) -> Node {
        let store = SimStore::new();
        Node {
            id: AccountId::of(&key),
            key,
            role,
            power: store.power_switch(),
            life: if role == NodeRole::Silent { Life::Silent } else { Life::Down(Box::new(store)) },
            incarnation: 0,
            files: SectionFiles::default(),
            members: Vec::new(),
            slow_disk_ms: 0,
            slow_until: 0,
            disk_queue: Vec::new(),
            disk_busy: false,
            fetches: BTreeMap::new(),
            next_sync_at: 0,
            pages_queued: BTreeSet::new(),
            cut_down_ms: None,
            restarts: 0,
            most_behind: 0,
            votes: BTreeMap::new(),
        }
    }

    /// Whether the node runs its machine.
    pub(crate) fn is_running(&self) -> bool {
        matches!(self.life, Life::Up(_))
    }

    /// Whether the node is up at all (a silent node is, though it runs nothing).
    pub(crate) fn is_up(&self) -> bool {
        !matches!(self.life, Life::Down(_))
    }

    /// The machine and ledger, while up.
    pub(crate) fn running(&self) -> Option<&Running> {
        match &self.life {
            Life::Up(running) => Some(running),
            _ => None,
        }
    }

    fn running_mut(&mut self) -> Option<&mut Running> {
        match &mut self.life {
            Life::Up(running) => Some(running),
            _ => None,
        }
    }
}

impl Simulation {
    /// Starts a down node from its disk: the ledger recovered from what was synced, the
    /// machine from the last state it saved (the founding state if none), then `start`.
    /// On the first boot the ledger makes genesis.
    pub(crate) fn boot(&mut self, node: usize, first: bool) -> Result<(), SimError> {
        let now = self.scheduler.now();
        let highest = self.highest_closed();
        let committee = self.committee.clone();
        let settings = self.settings(node);
        let state = self.nodes[node].files.state.clone().unwrap_or_else(|| self.founding.clone());
        let allocations = self.allocations.clone();
        let pool = self.pool;
        let this = &mut self.nodes[node];
        let store = match std::mem::replace(&mut this.life, Life::Silent) {
            Life::Down(store) => store,
            // Up already, or silent: nothing to boot.
            other => {
                this.life = other;
                return Ok(());
            }
        };
        let ledger_error = |error| SimError::Ledger { node, error };
        let mut ledger = DurableElder::open(committee.clone(), this.key.clone(), *store).map_err(ledger_error)?;
        if first {
            ledger.genesis(allocations).map_err(ledger_error)?;
        } else {
            this.restarts += 1;
            this.most_behind = this.most_behind.max(highest.saturating_sub(state.epoch().saturating_sub(1)));
        }
        let recent = this.files.recent(RECENT_OUTCOMES);
        let usage = this.files.usage.clone();
        let mut machine = SectionMachine::new(this.key.clone(), committee, pool, settings, state, usage, &recent);
        let effects = machine.start(Duration::from_millis(now));
        this.life = Life::Up(Box::new(Running { machine, ledger }));
        this.incarnation += 1;
        this.next_sync_at = now;
        self.lives_changed += 1;
        let open = this.files.state.as_ref().map_or(1, SectionState::epoch);
        if !first {
            self.note(|| format!("node {node} restarts with epoch {open} open"));
        }
        self.execute(node, effects);
        Ok(())
    }

    /// Crashes a node: memory gone, unsynced writes gone, the session left.
    pub(crate) fn crash(&mut self, node: usize) {
        let this = &mut self.nodes[node];
        let running = match std::mem::replace(&mut this.life, Life::Silent) {
            Life::Up(running) => running,
            // Down already, or silent: nothing to crash.
            other => {
                this.life = other;
                return;
            }
        };
        let mut store = running.ledger.into_store();
        store.crash();
        this.life = Life::Down(Box::new(store));
        this.incarnation += 1;
        this.fetches.clear();
        this.pages_queued.clear();
        this.disk_queue.clear();
        this.disk_busy = false;
        this.cut_down_ms = None;
        self.lives_changed += 1;
        self.broadcast.unregister(node);
        self.note(|| format!("node {node} crashes"));
    }

    /// Gives the machine one input and runs what it returns.
    pub(crate) fn feed(&mut self, node: usize, input: Input) {
        let Some(running) = self.nodes[node].running_mut() else { return };
        let effects = running.machine.handle(input);
        self.execute(node, effects);
    }

    fn execute(&mut self, node: usize, effects: Vec<Effect>) {
        for effect in effects {
            if !self.nodes[node].is_running() {
                return;
            }
            self.execute_one(node, effect);
        }
    }

    fn execute_one(&mut self, node: usize, effect: Effect) {
        let me = Endpoint::Node(node);
        match effect {
            Effect::StartSession { epoch, elders, proposals } => {
                if self.config.timeline {
                    let elder_nodes: Vec<usize> =
                        elders.iter().filter_map(|id| self.index_of.get(id).copied()).collect();
                    self.note(|| format!("node {node} starts session {epoch} among {elder_nodes:?}"));
                }
                let registration = self.broadcast.register(node, epoch, elders);
                for item in proposals {
                    self.propose(node, registration, item);
                }
            }
            Effect::EndSession => {
                if self.broadcast.registration(node).is_some() {
                    self.note(|| format!("node {node} leaves its session"));
                }
                self.broadcast.unregister(node);
            }
            // Backups, readers' views and chunk copies have no counterpart here: the
            // broadcast keeps every session's log, nobody reads the API, and chunks stay
            // where placement first put them (see `storage`).
            Effect::RemoveBackups { .. } | Effect::Publish { .. } | Effect::Repair { .. } => {}
            Effect::ToSession(item) => {
                if let Some(registration) = self.broadcast.registration(node) {
                    self.propose(node, registration.id, item);
                }
            }
            Effect::SendProposal { to, item } => {
                for elder in to {
                    if let Some(&peer) = self.index_of.get(&elder) {
                        self.send(me, Endpoint::Node(peer), Message::Propose(item.clone()));
                    }
                }
            }
            Effect::TakeAudits => {
                let nodes = &self.nodes;
                let summary = self.chunks.audit(node, &self.ids, |holder| nodes[holder].is_running());
                self.feed(node, Input::Audits(summary));
            }
            Effect::Persist { outcome, state, usage } => {
                let epoch = outcome.record.epoch;
                let members = state.members().len();
                self.nodes[node].files.persist(*outcome, *state, usage, &mut self.logs);
                let honest = self.nodes[node].role == NodeRole::Honest;
                if honest && !self.stats.closed_at.contains_key(&epoch) {
                    self.stats.closed_at.insert(epoch, self.scheduler.now());
                    self.note(|| format!("epoch {epoch} closed first at node {node}; {members} members"));
                } else {
                    self.note(|| format!("node {node} closed epoch {epoch}; {members} members"));
                }
                if honest && epoch >= self.config.epochs && self.phase == crate::world::Phase::Running {
                    self.scheduler.after(0, Event::Rest);
                }
            }
            Effect::Membership { members, .. } => self.nodes[node].members = members,
            Effect::BroadcastSignature { to, epoch, signature } => {
                for member in to {
                    if let Some(&peer) = self.index_of.get(&member) {
                        self.send(me, Endpoint::Node(peer), Message::Signature { epoch, signature });
                    }
                }
            }
            Effect::AddSignature { epoch, signer, signature } => {
                self.nodes[node].files.add_signature(epoch, signer, signature);
            }
            Effect::ApplyRecords(records) => self.ledger_job(node, LedgerJob::Records(records)),
            Effect::Fetch { epoch, from } => {
                let request = self.requests;
                self.requests += 1;
                let incarnation = self.nodes[node].incarnation;
                self.nodes[node].fetches.insert(request, from);
                if let Some(&peer) = self.index_of.get(&from) {
                    self.send(me, Endpoint::Node(peer), Message::FetchRequest { epoch, request });
                }
                self.scheduler.after(FETCH_TIMEOUT_MS, Event::FetchTimeout { node, incarnation, request });
            }
        }
    }

    /// Sends an item to the broadcast. A lying elder forges its reports on the way.
    fn propose(&mut self, node: usize, registration: u64, item: LogItem) {
        let items = match (&item, self.nodes[node].role) {
            (LogItem::Report(report), NodeRole::Liar) => self.forged_reports(node, report),
            _ => vec![item],
        };
        for item in items {
            let delay = self.network.latency();
            self.scheduler.after(delay, Event::Proposal { node, registration, item });
        }
    }

    /// Queues a ledger job on the node's disk; an idle disk starts on it at once.
    pub(crate) fn ledger_job(&mut self, node: usize, job: LedgerJob) {
        self.nodes[node].disk_queue.push(job);
        if !self.nodes[node].disk_busy {
            self.start_disk(node);
        }
    }

    /// Starts one group commit of every job waiting, as the node's ledger thread does: one
    /// sync, slower while the disk is slow.
    fn start_disk(&mut self, node: usize) {
        let this = &mut self.nodes[node];
        if this.disk_queue.is_empty() {
            this.disk_busy = false;
            return;
        }
        this.disk_busy = true;
        let jobs = std::mem::take(&mut this.disk_queue);
        let (incarnation, delay) = (this.incarnation, DISK_MS + this.slow_disk_ms);
        self.scheduler.after(delay, Event::LedgerDone { node, incarnation, jobs });
    }

    /// A node's clock: the machine's tick, and now and then a pull of the certificates
    /// it lacks from every other committee elder.
    pub(crate) fn tick(&mut self, node: usize) {
        let now = self.scheduler.now();
        self.scheduler.after(self.config.tick_ms, Event::Tick(node));
        if !self.nodes[node].is_running() {
            return;
        }
        let connected = self.connected(node);
        self.feed(node, Input::Tick { now: Duration::from_millis(now), connected });
        if self.nodes[node].is_running() && now >= self.nodes[node].next_sync_at {
            self.nodes[node].next_sync_at = now + self.config.ledger_sync_ms;
            for peer in self.committee_nodes.clone() {
                if peer != node && !self.nodes[node].pages_queued.contains(&peer) {
                    let position = self.nodes[node].files.catch_up.get(&peer).copied().unwrap_or(0);
                    self.send(Endpoint::Node(node), Endpoint::Node(peer), Message::AppliedSince { position });
                }
            }
        }
    }

    /// The nodes `node` can reach now: those up on its side of any partition. The
    /// machine looks its members up in it. Kept per side until a node goes down or up or
    /// the network changes, as the node's connection table would be.
    fn connected(&mut self, node: usize) -> BTreeSet<AccountId> {
        let version = (self.lives_changed, self.network.changes);
        let side = self.network.side_of(node);
        if let Some((_, set)) = self.connected_cache.iter().find(|(key, _)| *key == (version, side)) {
            return set.clone();
        }
        let set: BTreeSet<AccountId> = (0..self.nodes.len())
            .filter(|peer| self.nodes[*peer].is_up() && self.network.nodes_reach(node, *peer))
            .map(|peer| self.ids[peer])
            .collect();
        self.connected_cache.retain(|(key, _)| key.0 == version);
        self.connected_cache.push(((version, side), set.clone()));
        set
    }

    /// A message reaches a node.
    pub(crate) fn node_receives(&mut self, from: Endpoint, node: usize, message: Message) {
        if !self.nodes[node].is_running() {
            if !self.nodes[node].is_up() {
                self.network.undeliverable += 1;
            }
            return;
        }
        let me = Endpoint::Node(node);
        match (message, from) {
            // A wallet's payment comes as through the node's own API; a node's as from a
            // member, or from outside the section.
            (Message::Propose(item), from) => {
                let from = match from {
                    Endpoint::Wallet(_) => Proposer::Local,
                    Endpoint::Node(peer) => {
                        let id = self.ids[peer];
                        let member =
                            self.nodes[node].running().is_some_and(|r| r.machine.current().members().contains_key(&id));
                        if member {
                            Proposer::Member(id)
                        } else {
                            Proposer::Outsider(id)
                        }
                    }
                };
                self.feed(node, Input::Propose { from, item })
            }
            (Message::Signature { epoch, signature }, Endpoint::Node(signer)) => {
                let signer = self.ids[signer];
                self.feed(node, Input::Signature { signer, epoch, signature });
            }
            (Message::FetchRequest { epoch, request }, Endpoint::Node(_)) => {
                let outcome = self.nodes[node].files.outcomes.get(&epoch).cloned().map(Box::new);
                self.send(me, from, Message::FetchAnswer { request, outcome });
            }
            (Message::FetchAnswer { request, outcome }, _) => {
                if let Some(peer) = self.nodes[node].fetches.remove(&request) {
                    if outcome.is_some() {
                        self.stats.outcomes_fetched += 1;
                    }
                    let outcome = outcome.map(|kept| Box::new(kept.outcome()));
                    self.feed(node, Input::Fetched { from: peer, outcome });
                }
            }
            (Message::Frame { session }, _) => self.feed(node, Input::PeerAhead { session }),
            (Message::AppliedSince { position }, Endpoint::Node(_)) => {
                let Some(running) = self.nodes[node].running() else { return };
                // A read of memory that cannot fail in this store; a peer that cannot
                // read simply sends nothing, as a node that times out.
                if let Ok(page) = running.ledger.applied_since(position, CATCH_UP_PAGE) {
                    if !page.certificates.is_empty() {
                        self.send(me, from, Message::Applied { page });
                    }
                }
            }
            (Message::Applied { page }, Endpoint::Node(peer)) if !self.nodes[node].pages_queued.contains(&peer) => {
                self.nodes[node].pages_queued.insert(peer);
                self.ledger_job(node, LedgerJob::Page { peer, page });
            }
            (Message::Order { attempt, ballot, order, handover }, Endpoint::Wallet(wallet)) => {
                self.ledger_job(node, LedgerJob::Order { wallet, attempt, ballot, order: Box::new(order), handover });
            }
            (Message::Certificates(certificates), Endpoint::Wallet(wallet)) => {
                self.ledger_job(node, LedgerJob::Certificates { wallet, certificates });
            }
            // Anything else is not a request a node serves from that sender.
            _ => {}
        }
    }

    /// No answer to a fetch in time: the machine hears `None` and asks the next peer.
    pub(crate) fn fetch_timed_out(&mut self, node: usize, incarnation: u64, request: u64) {
        if self.nodes[node].incarnation != incarnation {
            return;
        }
        if let Some(peer) = self.nodes[node].fetches.remove(&request) {
            self.feed(node, Input::Fetched { from: peer, outcome: None });
        }
    }

    /// A node's disk finished a group commit: run its jobs on the ledger, answering each
    /// unless the power went in the middle, then start on what queued meanwhile.
    pub(crate) fn ledger_done(&mut self, node: usize, incarnation: u64, jobs: Vec<LedgerJob>) {
        for job in jobs {
            if self.nodes[node].incarnation != incarnation || !self.nodes[node].is_running() {
                return;
            }
            self.ledger_job_done(node, job);
        }
        if self.nodes[node].incarnation == incarnation {
            self.start_disk(node);
        }
    }

    fn ledger_job_done(&mut self, node: usize, job: LedgerJob) {
        let pool = self.pool;
        let honest = self.nodes[node].role == NodeRole::Honest;
        match job {
            LedgerJob::Order { wallet, attempt, ballot, order, handover } => {
                // The sender's earlier certificates first, so an elder behind on it can vote.
                let applied = self.apply_certificates(node, &handover);
                if honest {
                    self.count_certificate_conflicts(&applied);
                }
                let answer = if self.nodes[node].role == NodeRole::Liar {
                    Some(Ok(self.equivocating_vote(node, &order)))
                } else {
                    let Some(running) = self.nodes[node].running_mut() else { return };
                    running.ledger.handle_orders(std::slice::from_ref(&order)).into_iter().next()
                };
                if self.power_went(node) {
                    return;
                }
                if let Some(answer) = answer {
                    self.send(
                        Endpoint::Node(node),
                        Endpoint::Wallet(wallet),
                        Message::Voted { attempt, ballot, answer },
                    );
                }
            }
            LedgerJob::Certificates { wallet, certificates } => {
                let answers = self.apply_certificates(node, &certificates);
                if self.power_went(node) {
                    return;
                }
                if honest {
                    self.count_certificate_conflicts(&answers);
                }
                self.send(Endpoint::Node(node), Endpoint::Wallet(wallet), Message::Confirmed(answers));
            }
            LedgerJob::Records(records) => {
                let Some(running) = self.nodes[node].running_mut() else { return };
                let mut done = Vec::new();
                let mut conflicts = 0;
                for RecordToApply { record, payments } in &records {
                    match running.ledger.handle_epoch(record, &pool, payments) {
                        Ok(_) => done.push(record.epoch),
                        Err(LedgerError::EpochConflict { .. }) => {
                            conflicts += 1;
                            done.push(record.epoch);
                        }
                        // Not yet (a pool payment's certificate has not arrived), or the
                        // disk failed: the machine hands the record over again.
                        Err(_) => {}
                    }
                }
                if self.power_went(node) {
                    return;
                }
                if honest {
                    self.stats.epoch_conflicts += conflicts;
                }
                self.feed(node, Input::RecordsApplied(RecordsApplied { done }));
            }
            LedgerJob::Page { peer, page } => {
                self.nodes[node].pages_queued.remove(&peer);
                let answers = self.apply_certificates(node, &page.certificates);
                if self.power_went(node) {
                    return;
                }
                if honest {
                    self.count_certificate_conflicts(&answers);
                }
                // Only a page applied whole moves the position on.
                if answers.iter().all(Result::is_ok) {
                    self.nodes[node].files.catch_up.insert(peer, page.next);
                }
            }
        }
    }

    /// Applies certificates on the node's ledger, skipping those it already applied
    /// (their answer would only repeat the confirmation), with one group commit.
    fn apply_certificates(
        &mut self,
        node: usize,
        certificates: &[Certificate],
    ) -> Vec<Result<acre_ledger::Confirmation, LedgerError>> {
        let Some(running) = self.nodes[node].running_mut() else { return Vec::new() };
        let ledger = &mut running.ledger;
        let already: Vec<bool> = certificates
            .iter()
            .map(|certificate| {
                let order = &certificate.order;
                matches!(ledger.store().certificate_at(&order.from, order.sequence), Ok(Some(id)) if id == certificate.id())
            })
            .collect();
        let fresh: Vec<Certificate> = certificates
            .iter()
            .zip(&already)
            .filter(|(_, done)| !**done)
            .map(|(certificate, _)| certificate.clone())
            .collect();
        let mut fresh_answers = ledger.handle_certificates(&fresh).into_iter();
        certificates
            .iter()
            .zip(already)
            .map(|(certificate, done)| {
                if done {
                    Ok(acre_ledger::Confirmation {
                        certificate: certificate.id(),
                        from: certificate.order.from,
                        sequence: certificate.order.sequence,
                    })
                } else {
                    fresh_answers
                        .next()
                        .unwrap_or_else(|| Err(LedgerError::Storage { message: "the ledger gave no answer".into() }))
                }
            })
            .collect()
    }

    fn count_certificate_conflicts(&mut self, answers: &[Result<acre_ledger::Confirmation, LedgerError>]) {
        let conflicts = answers.iter().filter(|answer| matches!(answer, Err(LedgerError::ConflictingOrder { .. })));
        self.stats.certificate_conflicts += conflicts.count() as u64;
    }

    /// If an armed power cut hit the write just made, the node crashes now, before any
    /// answer leaves, and comes back after the time the kill chose.
    fn power_went(&mut self, node: usize) -> bool {
        if !self.nodes[node].power.was_cut() {
            return false;
        }
        let down_ms = self.nodes[node].cut_down_ms.unwrap_or(0);
        self.stats.power_cuts += 1;
        self.stats.kills += 1;
        self.crash(node);
        let incarnation = self.nodes[node].incarnation;
        self.scheduler.after(down_ms, Event::Fault(crate::world::FaultEvent::Restart { node, incarnation }));
        true
    }
}
