//! A model of the atomic broadcast the elders run per epoch (aleph-bft in the node). It
//! keeps what the section machine relies on and nothing of how aleph-bft gets there:
//!
//! - one ordered log per session, the same for every elder that reads it;
//! - an item proposed by an elder is appended, tagged with the elder's index, only once
//!   its proposer runs the session and reaches a quorum of the session's elders that run
//!   it too (counting itself): a partitioned minority, or a section with too many elders
//!   down, orders nothing until the network heals or they restart;
//! - every elder running the session, on a side of the network with a quorum of the
//!   session's elders up and with a peer still running the session, is delivered the log
//!   from its cursor onward, in order;
//! - registering puts the cursor at 0: a restarted elder replays the session from its
//!   start — what it had been delivered before from its unit backup, alone; the rest
//!   only from peers still running the session. Once every peer has moved on, an elder
//!   left behind learns it from their frames of a later session (`Input::PeerAhead`) and
//!   must catch up by fetching outcomes, as in the node;
//! - a proposal still waiting when its proposer crashes or leaves the session is lost,
//!   like the units an engine had not yet sent.
//!
//! Not modelled: units, rounds, the engine's own signatures and received, frame queues;
//! a Byzantine elder cannot fork or stall the order here (aleph-bft's guarantee, which
//! its own tests establish), only propose lies into it.

use std::collections::BTreeMap;

use acre_core::LogItem;
use acre_ledger::{quorum, AccountId};

use crate::config::SessionReplay;

/// What the broadcast needs to know of the nodes and the network at a moment.
pub(crate) trait Links {
    /// Whether `node` is up and runs its section machine (a silent Byzantine node does not).
    fn running(&self, node: usize) -> bool;
    /// Whether node `a` reaches node `b`.
    fn reach(&self, a: usize, b: usize) -> bool;
}

/// A node's place in a session: which one, and how far it has been delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registration {
    /// The session (the epoch it orders).
    pub(crate) session: u64,
    /// Unique per registration, so a delivery meant for an earlier one is recognised.
    pub(crate) id: u64,
    /// Items delivered so far.
    cursor: usize,
    /// Items a delivery is already on its way for.
    scheduled: usize,
}

/// A proposal on its way into the order.
#[derive(Debug, Clone)]
struct Waiting {
    node: usize,
    registration: u64,
    creator: usize,
    item: LogItem,
}

/// One session's ordered log.
#[derive(Debug, Clone)]
struct SessionLog {
    elders: Vec<AccountId>,
    /// The node running each elder, in the session's order.
    elder_nodes: Vec<Option<usize>>,
    log: Vec<(usize, LogItem)>,
    waiting: Vec<Waiting>,
}

/// An item just appended to a session's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The session.
    pub(crate) session: u64,
    /// The node that proposed it.
    pub(crate) proposer: usize,
}

/// A delivery to schedule: `node`'s log up to `upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The node.
    pub(crate) node: usize,
    /// Its registration.
    pub(crate) registration: u64,
    /// Deliver up to this index.
    pub(crate) upto: usize,
}

/// Every session's log and every node's place in one.
#[derive(Debug)]
pub(crate) struct Broadcast {
    index_of: BTreeMap<AccountId, usize>,
    sessions: BTreeMap<u64, SessionLog>,
    registrations: BTreeMap<usize, Registration>,
    issued: u64,
    /// Reports for epochs past this are not ordered: the section rests at the run's end.
    report_limit: Option<u64>,
    /// Per (node, session), how much of the log reached the node while it ran the
    /// session: what its unit backup holds, and what it can hand a peer.
    received: BTreeMap<(usize, u64), usize>,
    /// Where a node that registers late gets the rest of a session's log.
    replay: SessionReplay,
    /// Registrations that named another elder set than the session's first.
    pub(crate) disagreements: u64,
    /// Items appended in all.
    pub(crate) ordered: u64,
}

impl Broadcast {
    /// No sessions yet; `index_of` finds the node that runs each elder.
    pub(crate) fn new(index_of: BTreeMap<AccountId, usize>, replay: SessionReplay) -> Self {
        Broadcast {
            index_of,
            sessions: BTreeMap::new(),
            registrations: BTreeMap::new(),
            issued: 0,
            report_limit: None,
            received: BTreeMap::new(),
            replay,
            disagreements: 0,
            ordered: 0,
        }
    }

    /// `Effect::StartSession`: `node` runs `session` among `elders` from the start,
    /// leaving any session it ran. Returns the registration's id.
    pub(crate) fn register(&mut self, node: usize, session: u64, elders: Vec<AccountId>) -> u64 {
        self.unregister(node);
        let index_of = &self.index_of;
        let log = self.sessions.entry(session).or_insert_with(|| SessionLog {
            elder_nodes: elders.iter().map(|elder| index_of.get(elder).copied()).collect(),
            elders: elders.clone(),
            log: Vec::new(),
            waiting: Vec::new(),
        });
        if log.elders != elders {
            self.disagreements += 1;
        }
        let id = self.issued;
        self.issued += 1;
        self.registrations.insert(node, Registration { session, id, cursor: 0, scheduled: 0 });
        id
    }

    /// `Effect::EndSession`, or a crash: `node` runs no session; its waiting proposals
    /// are lost.
    pub(crate) fn unregister(&mut self, node: usize) {
        if let Some(registration) = self.registrations.remove(&node) {
            if let Some(log) = self.sessions.get_mut(&registration.session) {
                log.waiting.retain(|waiting| waiting.node != node);
            }
        }
    }

    /// The session `node` runs, if any.
    pub(crate) fn registration(&self, node: usize) -> Option<Registration> {
        self.registrations.get(&node).copied()
    }

    /// From now on, reports for epochs after `epoch` are dropped instead of ordered.
    pub(crate) fn stop_reports_after(&mut self, epoch: u64) {
        self.report_limit = Some(epoch);
    }

    fn beyond_limit(limit: Option<u64>, item: &LogItem) -> bool {
        matches!((limit, item), (Some(limit), LogItem::Report(report)) if report.epoch > limit)
    }

    /// A proposal reached the broadcast: it waits to be ordered, if its proposer still
    /// runs the session it proposed it in and is one of its elders.
    pub(crate) fn arrive(&mut self, node: usize, registration: u64, item: LogItem) {
        let Some(current) = self.registrations.get(&node).filter(|current| current.id == registration) else {
            return;
        };
        if Self::beyond_limit(self.report_limit, &item) {
            return;
        }
        let Some(log) = self.sessions.get_mut(&current.session) else { return };
        let Some(creator) = log.elder_nodes.iter().position(|elder| *elder == Some(node)) else { return };
        log.waiting.push(Waiting { node, registration, creator, item });
    }

    /// Orders every waiting proposal whose proposer now reaches a quorum of the session's
    /// running elders; returns what was appended, in order.
    pub(crate) fn pump(&mut self, links: &impl Links) -> Vec<Appended> {
        let mut appended = Vec::new();
        let limit = self.report_limit;
        for (session, log) in self.sessions.iter_mut().filter(|(_, log)| !log.waiting.is_empty()) {
            let quorum = quorum(log.elders.len());
            let running: Vec<usize> = log
                .elder_nodes
                .iter()
                .flatten()
                .copied()
                .filter(|node| {
                    links.running(*node)
                        && self.registrations.get(node).is_some_and(|current| current.session == *session)
                })
                .collect();
            let registrations = &self.registrations;
            let received = &mut self.received;
            let mut kept = Vec::with_capacity(log.waiting.len());
            for waiting in std::mem::take(&mut log.waiting) {
                let current = registrations.get(&waiting.node).is_some_and(|r| r.id == waiting.registration);
                if !current || Self::beyond_limit(limit, &waiting.item) {
                    continue;
                }
                let reached = running.iter().filter(|peer| links.reach(waiting.node, **peer)).count();
                if links.running(waiting.node) && reached >= quorum {
                    log.log.push((waiting.creator, waiting.item));
                    // The units carrying it reach every elder running the session there.
                    for peer in running.iter().filter(|peer| links.reach(waiting.node, **peer)) {
                        received.insert((*peer, *session), log.log.len());
                    }
                    appended.push(Appended { session: *session, proposer: waiting.node });
                } else {
                    kept.push(waiting);
                }
            }
            log.waiting = kept;
        }
        self.ordered += appended.len() as u64;
        appended
    }

    /// How far `node`, running `session`, can be delivered now. What reached it while it
    /// ran the session replays from its backup alone. The rest needs a side of the
    /// network with a quorum of the session's elders up, and then comes from the log
    /// itself ([`SessionReplay::FromLog`]) or only from what peers still running the
    /// session received ([`SessionReplay::FromPeers`]).
    fn deliverable(&self, node: usize, session: u64, links: &impl Links) -> usize {
        let Some(log) = self.sessions.get(&session) else { return 0 };
        let own = self.received.get(&(node, session)).copied().unwrap_or(0);
        let reachable = |peer: usize| links.running(peer) && links.reach(node, peer);
        let up = log.elder_nodes.iter().flatten().filter(|peer| reachable(**peer)).count();
        if !links.running(node) || up < quorum(log.elders.len()) {
            return own.min(log.log.len());
        }
        let from_peers = match self.replay {
            SessionReplay::FromLog => log.log.len(),
            SessionReplay::FromPeers => self
                .registrations
                .iter()
                .filter(|(peer, registration)| **peer != node && registration.session == session && reachable(**peer))
                .filter_map(|(peer, _)| self.received.get(&(*peer, session)).copied())
                .max()
                .unwrap_or(0),
        };
        own.max(from_peers).min(log.log.len())
    }

    /// The deliveries to schedule now: every running node with items it can be delivered
    /// and has not been sent yet.
    pub(crate) fn deliveries(&mut self, links: &impl Links) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        let targets: Vec<(usize, Registration)> =
            self.registrations.iter().map(|(node, registration)| (*node, *registration)).collect();
        for (node, registration) in targets {
            let upto = self.deliverable(node, registration.session, links);
            if registration.scheduled < upto {
                if let Some(current) = self.registrations.get_mut(&node) {
                    current.scheduled = upto;
                }
                deliveries.push(Delivery { node, registration: registration.id, upto });
            }
        }
        deliveries
    }

    /// How far a delivery for `registration` may still go now; where it falls short, the
    /// items go out again with a later delivery.
    pub(crate) fn deliverable_now(&mut self, node: usize, registration: u64, upto: usize, links: &impl Links) -> usize {
        let Some(current) = self.registrations.get(&node).copied().filter(|current| current.id == registration) else {
            return 0;
        };
        let now = self.deliverable(node, current.session, links).min(upto);
        if now < upto {
            if let Some(current) = self.registrations.get_mut(&node) {
                current.scheduled = now.max(current.cursor);
            }
        }
        now
    }

    /// The next item for `node` under `registration`, below `upto`, moving its cursor;
    /// `None` once delivered up to there or once the node left the session.
    pub(crate) fn next_item(&mut self, node: usize, registration: u64, upto: usize) -> Option<(u64, usize, LogItem)> {
        let current = self.registrations.get_mut(&node).filter(|current| current.id == registration)?;
        let log = self.sessions.get(&current.session)?;
        if current.cursor >= upto.min(log.log.len()) {
            return None;
        }
        let (creator, item) = log.log[current.cursor].clone();
        current.cursor += 1;
        current.scheduled = current.scheduled.max(current.cursor);
        let backup = self.received.entry((node, current.session)).or_insert(0);
        *backup = (*backup).max(current.cursor);
        Some((current.session, creator, item))
    }

    /// Frames of a later session: for every node running a session, the elders of that
    /// session it reaches that are still in an earlier one, or in none. Units flow every
    /// round, with or without items, so these come whether or not anything is ordered.
    pub(crate) fn frames(&self, links: &impl Links) -> Vec<(usize, usize, u64)> {
        let mut frames = Vec::new();
        for (sender, registration) in &self.registrations {
            for behind in self.behind(registration.session) {
                if behind != *sender && links.running(behind) && links.reach(*sender, behind) {
                    frames.push((*sender, behind, registration.session));
                }
            }
        }
        frames
    }

    /// The nodes running an elder of `session` that are in an earlier session or none:
    /// a frame of `session` tells them they are behind.
    pub(crate) fn behind(&self, session: u64) -> Vec<usize> {
        let Some(log) = self.sessions.get(&session) else { return Vec::new() };
        log.elder_nodes
            .iter()
            .flatten()
            .copied()
            .filter(|node| self.registrations.get(node).is_none_or(|current| current.session < session))
            .collect()
    }

    /// The elders of the latest session anyone started: where a client sends a proposal.
    pub(crate) fn latest_elders(&self) -> Vec<usize> {
        self.sessions
            .values()
            .next_back()
            .map(|log| log.elder_nodes.iter().flatten().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Net {
        running: Vec<bool>,
        side: Vec<u8>,
    }

    impl Links for Net {
        fn running(&self, node: usize) -> bool {
            self.running[node]
        }
        fn reach(&self, a: usize, b: usize) -> bool {
            self.side[a] == self.side[b]
        }
    }

    fn setup() -> (Broadcast, Vec<AccountId>) {
        let ids: Vec<AccountId> =
            (1..=4u8).map(|n| AccountId::of(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]))).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        let index_of = ids.iter().enumerate().map(|(index, id)| (*id, index)).collect();
        (Broadcast::new(index_of, SessionReplay::FromPeers), sorted)
    }

    fn enrolment(n: u8) -> LogItem {
        let key = ed25519_dalek::SigningKey::from_bytes(&[n + 100; 32]);
        LogItem::Enrol(acre_core::Enrolment::new(&key, AccountId::of(&key), Default::default(), 1))
    }

    #[test]
    fn a_minority_orders_nothing_until_the_partition_heals_and_then_catches_up() {
        let (mut broadcast, elders) = setup();
        let registrations: Vec<u64> = (0..4).map(|node| broadcast.register(node, 1, elders.clone())).collect();
        let mut net = Net { running: vec![true; 4], side: vec![0, 0, 0, 1] };
        broadcast.arrive(3, registrations[3], enrolment(3));
        broadcast.arrive(0, registrations[0], enrolment(0));
        let appended = broadcast.pump(&net);
        assert_eq!(appended, vec![Appended { session: 1, proposer: 0 }], "three of four reach a quorum");
        let deliveries = broadcast.deliveries(&net);
        assert_eq!(deliveries.iter().map(|d| d.node).collect::<Vec<_>>(), vec![0, 1, 2], "the minority waits");
        for delivery in &deliveries {
            while broadcast.next_item(delivery.node, delivery.registration, delivery.upto).is_some() {}
        }

        net.side = vec![0; 4];
        assert_eq!(broadcast.pump(&net).len(), 1, "the minority's proposal is ordered after the heal");
        let late = broadcast.deliveries(&net);
        let to_three = late.iter().find(|d| d.node == 3).expect("a delivery to the healed node");
        let mut seen = Vec::new();
        while let Some((_, creator, _)) = broadcast.next_item(3, to_three.registration, to_three.upto) {
            seen.push(creator);
        }
        let creator_of = |node: usize| elders.iter().position(|id| broadcast.index_of[id] == node).expect("elder");
        assert_eq!(seen, vec![creator_of(0), creator_of(3)], "the same order as everyone else");
    }

    #[test]
    fn a_restarted_elder_replays_from_the_start_and_a_crash_loses_waiting_proposals() {
        let (mut broadcast, elders) = setup();
        let registrations: Vec<u64> = (0..4).map(|node| broadcast.register(node, 1, elders.clone())).collect();
        let mut net = Net { running: vec![true, true, true, false], side: vec![0; 4] };
        broadcast.unregister(3);
        broadcast.arrive(0, registrations[0], enrolment(0));
        broadcast.pump(&net);
        broadcast.arrive(1, registrations[1], enrolment(1));
        net.running = vec![true, false, true, false];
        broadcast.unregister(1);
        assert!(broadcast.pump(&net).is_empty(), "its proposal was lost with it");
        net.running[3] = true;
        let again = broadcast.register(3, 1, elders.clone());
        assert_eq!(broadcast.behind(2), Vec::<usize>::new(), "no session 2 yet");
        let delivery = broadcast.deliveries(&net).into_iter().find(|d| d.node == 3).expect("a replay");
        assert_eq!(delivery.registration, again);
        assert!(broadcast.next_item(3, again, delivery.upto).is_some(), "from the start");
        assert!(broadcast.next_item(3, registrations[3], 1).is_none(), "the old registration is gone");
    }

    #[test]
    fn once_every_peer_left_a_session_a_restarted_elder_replays_only_its_backup_and_sees_frames() {
        let (mut broadcast, elders) = setup();
        let net = Net { running: vec![true; 4], side: vec![0; 4] };
        let registrations: Vec<u64> = (0..4).map(|node| broadcast.register(node, 1, elders.clone())).collect();
        broadcast.arrive(0, registrations[0], enrolment(0));
        broadcast.pump(&net);
        for delivery in broadcast.deliveries(&net) {
            while broadcast.next_item(delivery.node, delivery.registration, delivery.upto).is_some() {}
        }
        broadcast.unregister(3);
        broadcast.arrive(1, registrations[1], enrolment(1));
        assert_eq!(broadcast.pump(&net).len(), 1, "three of four still order");
        for node in 0..3 {
            broadcast.register(node, 2, elders.clone());
        }
        let again = broadcast.register(3, 1, elders.clone());
        let replay = broadcast.deliveries(&net);
        assert_eq!(replay, vec![Delivery { node: 3, registration: again, upto: 1 }], "only what its backup holds");
        let frames = broadcast.frames(&net);
        assert_eq!(frames.iter().filter(|(_, to, session)| *to == 3 && *session == 2).count(), 3, "a frame from each");
    }
}
