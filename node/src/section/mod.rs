//! This node's part in its section: gathering the elders' votes into certificates,
//! answering other nodes' requests, and catching up on certificates it missed.
//!
//! The rules live in `acre-ledger`; this module only moves messages between the ledger
//! thread and the network, and decides whom to ask and in what order.

mod vote_queue;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acre_ledger::section_state::{placement_name, Placement};
use acre_ledger::store::Store;
use acre_ledger::{
    AccountId, Certificate, Committee, Confirmation, ElderAnswer, GatherError, Gathering, LedgerError, SignedOrder,
};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tokio::sync::Notify;

use crate::config::write_atomically;
use crate::ledger::{LedgerHandle, LedgerStopped};
use crate::section::vote_queue::{VoteQueue, Voter};
use crate::transport::{peer_id_of, NetworkHandle, Routed, MAX_BATCH};
use acre_core::wire::{Ledger, LedgerReply, LedgerRequest};

/// Certificates per catch-up page.
const CATCH_UP_PAGE: u32 = 512;
/// Most certificate deliveries in flight in the background; past it a new certificate is
/// left to catch-up (and to the next vote on its sender), so a slow peer cannot make the
/// node pile up tasks.
const MAX_DELIVERIES: usize = 4096;

impl From<LedgerStopped> for GatherError {
    fn from(stopped: LedgerStopped) -> Self {
        GatherError::Refused(stopped.into())
    }
}

/// The node's ledger and network, and the section they serve.
#[derive(Debug)]
pub struct Section {
    ledger: LedgerHandle,
    network: NetworkHandle,
    committee: Committee,
    me: AccountId,
    elders: Vec<(AccountId, PeerId)>,
    /// How long one elder may take to answer.
    timeout: Duration,
    /// Woken when a certificate could not be applied for want of earlier ones.
    behind: Notify,
    /// Permits for background certificate deliveries ([`MAX_DELIVERIES`]).
    deliveries: Arc<tokio::sync::Semaphore>,
    /// Orders on their way to each elder, batched ([`VoteQueue`]).
    vote_queues: BTreeMap<AccountId, VoteQueue>,
    /// Each sender's last certificate made here while its background delivery is still on
    /// its way to some elders ([`InDelivery`]).
    in_delivery: std::sync::Mutex<HashMap<AccountId, InDelivery>>,
    /// The section's members as its agreed log last said, and which of them are its
    /// elders (who audit and order the log); the committee above certifies transfers.
    membership: std::sync::RwLock<Membership>,
}

/// A certificate this node made and the elders its background delivery has not reached
/// yet. A wallet's next order often comes before it does; that order takes it along to
/// those elders ([`LedgerRequest::OrdersAfter`]), so they can vote at once rather than
/// refuse, be handed it, and be asked again. At most one per sender, and only while
/// deliveries are in flight, so there are never more than [`MAX_DELIVERIES`] elders'
/// worth.
#[derive(Debug)]
struct InDelivery {
    certificate: Certificate,
    to: std::collections::BTreeSet<AccountId>,
}

/// Members of the section, by the agreed log.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    /// Every member, with its peer id.
    pub members: Vec<(AccountId, PeerId)>,
    /// The elders among them.
    pub elders: std::collections::BTreeSet<AccountId>,
    /// Who holds which chunk; shared, since every chunk's holders are read from it and
    /// the membership is cloned for each read.
    pub placement: Arc<Placement>,
}

impl Section {
    /// The section of `committee`, as seen by the node `me`.
    pub fn new(
        ledger: LedgerHandle,
        network: NetworkHandle,
        committee: Committee,
        me: AccountId,
        timeout: Duration,
    ) -> Self {
        let elders: Vec<(AccountId, PeerId)> =
            committee.members().filter_map(|id| Some((*id, peer_id_of(id)?))).collect();
        // The founders, named as the genesis names them, until the log says more.
        let network_id = ledger.network();
        let placement = Arc::new(Placement::new(committee.members().map(|id| (*id, placement_name(&network_id, id)))));
        let membership =
            Membership { members: elders.clone(), elders: committee.members().copied().collect(), placement };
        let vote_queues = elders
            .iter()
            .map(|&(elder, peer)| {
                let voter = if elder == me {
                    Voter::Local(ledger.clone())
                } else {
                    Voter::Remote { network: network.clone(), peer, timeout }
                };
                (elder, VoteQueue::spawn(voter))
            })
            .collect();
        Section {
            vote_queues,
            ledger,
            network,
            committee,
            me,
            elders,
            timeout,
            behind: Notify::new(),
            in_delivery: std::sync::Mutex::default(),
            deliveries: Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES)),
            membership: std::sync::RwLock::new(membership),
        }
    }

    /// The members and elders by the agreed log.
    pub fn membership(&self) -> Membership {
        self.membership.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Records what the agreed log now says about membership.
    /// Every member is one (it may propose, store, be watched and audit), placed or not;
    /// only the placed ones hold chunks.
    pub fn set_membership(
        &self,
        members: Vec<AccountId>,
        placed: Vec<(AccountId, [u8; 32])>,
        elders: std::collections::BTreeSet<AccountId>,
    ) {
        let members = members.iter().filter_map(|id| Some((*id, peer_id_of(id)?))).collect();
        let placement = Arc::new(Placement::new(placed));
        *self.membership.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Membership { members, elders, placement };
    }

    /// Whether this node is an elder: one of the oldest members by the agreed log, who
    /// audits, reports and orders the section's log.
    pub fn is_elder(&self) -> bool {
        self.membership().elders.contains(&self.me)
    }

    /// The ledger thread.
    pub fn ledger(&self) -> &LedgerHandle {
        &self.ledger
    }

    /// The network task.
    pub fn network(&self) -> &NetworkHandle {
        &self.network
    }

    /// The elders whose votes make certificates.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// This node's id.
    pub fn me(&self) -> AccountId {
        self.me
    }

    /// Whether this node is in the committee whose votes certify transfers (the genesis
    /// elders until elder handover moves the committee with the log's elders).
    pub fn votes_on_transfers(&self) -> bool {
        self.committee.contains(&self.me)
    }

    /// The elders' ids and peer ids.
    pub fn elders(&self) -> &[(AccountId, PeerId)] {
        &self.elders
    }

    /// Gathers a quorum of votes on `order`, applies the certificate here (durably) and
    /// returns it; handing it to the other elders goes on in the background. Safe to
    /// retry: elders answer a repeated order with the vote they stored for it, so a retry
    /// rebuilds the same certificate, and applying it again changes nothing.
    ///
    /// Every elder is asked at once: one round of votes. Two conflicting orders for one
    /// sequence (their owner signed both) may split the elders so that neither reaches a
    /// quorum; each elder's lock still votes once per (account, sequence), so at most one
    /// certificate can ever form, and only that owner's account loses its liveness.
    pub async fn certify(self: &Arc<Self>, order: SignedOrder) -> Result<Certificate, GatherError> {
        let started = std::time::Instant::now();
        let elders = self.elders.clone();
        let mut gathering = Gathering::new(self.committee.clone(), order.order.clone(), elders.len());
        let previous = self.previous_in_delivery(&order);
        let mut asks: FuturesUnordered<_> = elders
            .into_iter()
            .map(|elder| {
                let handed = previous.as_ref().filter(|(_, to)| to.contains(&elder.0)).map(|(c, _)| c.clone());
                self.ask(elder, &order, handed)
            })
            .collect();
        while !gathering.is_settled() {
            match asks.next().await {
                Some(answer) => gathering.record(answer),
                None => break,
            }
        }
        // The elders not heard from yet still vote; their answers are no longer needed.
        drop(asks);
        // Its votes were checked as they came in: it is applied without a second check.
        let certificate = gathering.finish_verified()?;
        let gathered = started.elapsed();
        metrics::histogram!("acre_certify_seconds", "stage" => "votes").record(gathered.as_secs_f64());
        let results = self.ledger.verified_certificates(vec![certificate.clone()]).await?;
        self.note_applied(&results);
        metrics::histogram!("acre_certify_seconds", "stage" => "applied")
            .record((started.elapsed() - gathered).as_secs_f64());
        let certificate = certificate.into_certificate();
        self.hand_to_elders(&certificate);
        Ok(certificate)
    }

    /// The peers connected now.
    pub async fn connected(&self) -> HashSet<PeerId> {
        let peers = self.network.peers().await.unwrap_or_default();
        peers.into_iter().filter(|peer| peer.connected).map(|peer| peer.peer).collect()
    }

    /// What the network says of each known peer's connection: open now, and how many
    /// sessions it has had.
    pub async fn links(&self) -> HashMap<PeerId, acre_core::storage::Link> {
        let peers = self.network.peers().await.unwrap_or_default();
        peers
            .into_iter()
            .map(|peer| (peer.peer, acre_core::storage::Link { up: peer.connected, sessions: peer.sessions }))
            .collect()
    }

    /// The peers that are connected and answered one of this node's requests within
    /// `window`: a stopped process keeps its connections but answers nothing, so liveness
    /// goes by answers, not by connection state.
    pub async fn responsive(&self, window: Duration) -> HashSet<PeerId> {
        let peers = self.network.peers().await.unwrap_or_default();
        peers
            .into_iter()
            .filter(|peer| peer.connected && peer.last_answer.is_some_and(|at| at.elapsed() <= window))
            .map(|peer| peer.peer)
            .collect()
    }

    /// One elder's vote on `order`, handed `previous` with it when given. An elder that is
    /// behind on the sender's account, or lacks incoming credits the order folds in, is
    /// sent the certificates it lacks (this node has them) and asked once more.
    async fn ask(
        &self,
        (elder, peer): (AccountId, PeerId),
        order: &SignedOrder,
        previous: Option<Certificate>,
    ) -> ElderAnswer {
        if previous.is_some() {
            metrics::counter!("acre_votes_asked_with_previous_total").increment(1);
        }
        match self.ask_once(elder, order, previous).await {
            ElderAnswer::Refused(refusal @ LedgerError::UnknownIncoming { .. }) if elder == self.me => {
                // This node lacks credits the order folds in: catch-up brings them.
                self.behind.notify_one();
                ElderAnswer::Refused(refusal)
            }
            ElderAnswer::Refused(refusal @ LedgerError::UnknownIncoming { .. }) => {
                let absorbed: Vec<_> = order.order.hidden.iter().flat_map(|hidden| hidden.absorb.clone()).collect();
                let held = self.ledger.read(move |ledger| {
                    let read = absorbed.iter().map(|id| ledger.store().certificate(id).map_err(LedgerError::from));
                    read.filter_map(Result::transpose).collect::<Result<Vec<_>, _>>()
                });
                self.hand_over((elder, peer), order, refusal, held.await).await
            }
            ElderAnswer::Refused(refusal @ LedgerError::UnexpectedSequence { expected, got }) if elder == self.me => {
                // This node is the one behind: the certificates it lacks were certified a
                // moment ago elsewhere, and are on their way; fetch them now.
                if expected < got
                    && got - expected <= u64::from(CATCH_UP_PAGE)
                    && self.fetch_certificates_of(order.order.from, expected, got).await
                {
                    return self.ask_once(elder, order, None).await;
                }
                self.behind.notify_one();
                ElderAnswer::Refused(refusal)
            }
            // Far behind is catch-up's work; a few missing certificates are sent here.
            ElderAnswer::Refused(refusal @ LedgerError::UnexpectedSequence { expected, got })
                if expected < got && got - expected <= u64::from(CATCH_UP_PAGE) =>
            {
                let from = order.order.from;
                let read_missing = || {
                    self.ledger.read(move |ledger| {
                        let read: Result<Vec<_>, _> =
                            (expected..got).map(|s| ledger.certificate_at(&from, s)).collect();
                        // Only the whole run is worth sending: the elder applies it in order.
                        read.map(|found| found.into_iter().collect::<Option<Vec<_>>>().unwrap_or_default())
                    })
                };
                let mut missing = read_missing().await;
                // This node may lack them too (they were certified elsewhere a moment ago and
                // are still on their way): fetch them, then hand them over.
                if matches!(&missing, Ok(Ok(found)) if found.is_empty())
                    && self.fetch_certificates_of(from, expected, got).await
                {
                    missing = read_missing().await;
                }
                self.hand_over((elder, peer), order, refusal, missing).await
            }
            asked => asked,
        }
    }

    /// Sends `elder` the certificates read for it from this node's ledger and asks it
    /// again; when this node holds none of them (or cannot read them), `refusal` stands.
    async fn hand_over(
        &self,
        (elder, peer): (AccountId, PeerId),
        order: &SignedOrder,
        refusal: LedgerError,
        held: Result<Result<Vec<Certificate>, LedgerError>, LedgerStopped>,
    ) -> ElderAnswer {
        match held {
            Ok(Ok(certificates)) if !certificates.is_empty() => {
                // A second round trip on the order's path: how often is worth watching.
                metrics::counter!("acre_votes_handed_over_total").increment(1);
                // The elder's next answer says whether they were applied.
                let _ = self.request::<Ledger>(peer, LedgerRequest::Certificates(certificates)).await;
                self.ask_once(elder, order, None).await
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "the certificates an elder lacks could not be read here");
                ElderAnswer::Refused(refusal)
            }
            _ => ElderAnswer::Refused(refusal),
        }
    }

    /// Asks the other elders at once for `account`'s certificates at sequences
    /// `from..to`, and applies the first complete answer here. Whether they now are.
    async fn fetch_certificates_of(&self, account: AccountId, from: u64, to: u64) -> bool {
        let limit = u32::try_from(to - from).unwrap_or(CATCH_UP_PAGE);
        let mut asks: FuturesUnordered<_> = self
            .elders
            .iter()
            .filter(|(elder, _)| *elder != self.me)
            .map(|&(_, peer)| self.request::<Ledger>(peer, LedgerRequest::CertificatesOf { account, from, limit }))
            .collect();
        while let Some(answer) = asks.next().await {
            let Some(LedgerReply::Applied(page)) = answer else { continue };
            // Only a complete run of the sender's certificates, in order, is worth applying;
            // each is checked against the committee when applied.
            let complete = page.certificates.len() as u64 == to - from
                && page.certificates.iter().zip(from..).all(|(c, s)| c.order.from == account && c.order.sequence == s);
            if complete {
                if let Ok(results) = self.accept(page.certificates).await {
                    return results.iter().all(Result::is_ok);
                }
            }
        }
        false
    }

    async fn ask_once(&self, elder: AccountId, order: &SignedOrder, previous: Option<Certificate>) -> ElderAnswer {
        match self.vote_queues.get(&elder) {
            Some(queue) => queue.ask(order.clone(), previous).await,
            None => ElderAnswer::Silent,
        }
    }

    /// A request to a peer on protocol `P`, given up after this section's timeout.
    pub async fn request<P: Routed>(&self, peer: PeerId, request: P::Request) -> Option<P::Reply> {
        request_within::<P>(&self.network, peer, request, self.timeout).await
    }

    /// A request to a peer on protocol `P`, given up after `timeout`; why, when it brought
    /// no reply.
    pub async fn request_or_why<P: Routed>(
        &self,
        peer: PeerId,
        request: P::Request,
        timeout: Duration,
    ) -> Result<P::Reply, Unanswered> {
        ask_within::<P>(&self.network, peer, request, timeout).await
    }

    /// How long a holder is given to store a chunk durably.
    pub fn store_timeout(&self) -> Duration {
        self.timeout * crate::transport::STORE_PATIENCE
    }

    /// Applies certificates here; a gap wakes the catch-up task.
    pub async fn accept(
        &self,
        certificates: Vec<Certificate>,
    ) -> Result<Vec<Result<Confirmation, LedgerError>>, LedgerStopped> {
        let results = self.ledger.certificates(certificates).await?;
        self.note_applied(&results);
        Ok(results)
    }

    /// Wakes the catch-up task if applying certificates showed this node behind.
    fn note_applied(&self, results: &[Result<Confirmation, LedgerError>]) {
        let mut behind = false;
        for error in results.iter().filter_map(|result| result.as_ref().err()) {
            match error {
                LedgerError::MissingPredecessor { .. }
                | LedgerError::CreditsNotYetApplied
                | LedgerError::UnknownIncoming { .. } => behind = true,
                LedgerError::ConflictingOrder { .. } => {
                    tracing::error!(%error, "a certificate conflicts with one applied here: the committee is unsafe")
                }
                _ => {}
            }
        }
        if behind {
            self.behind.notify_one();
        }
    }

    /// Sends a new certificate to every other elder, in the background: nobody's answer
    /// waits on it, and it costs them no sync of its own ([`LedgerRequest::Handed`]). An
    /// elder that misses it is handed it when next asked to vote on the sender's account
    /// ([`Section::ask`]), or catches up from its peers.
    fn hand_to_elders(self: &Arc<Self>, certificate: &Certificate) {
        let mut deliveries = Vec::new();
        for &(elder, peer) in self.elders.iter().filter(|(elder, _)| *elder != self.me) {
            match Arc::clone(&self.deliveries).try_acquire_owned() {
                Ok(permit) => deliveries.push((elder, peer, permit)),
                Err(_) => tracing::debug!(%elder, "too many deliveries in flight; the elder will catch up"),
            }
        }
        if deliveries.is_empty() {
            return;
        }
        // Noted before any delivery starts, so that one ending at once finds it to strike out.
        let to = deliveries.iter().map(|(elder, _, _)| *elder).collect();
        let delivery = InDelivery { certificate: certificate.clone(), to };
        let (from, id) = (certificate.order.from, certificate.id());
        crate::lock(&self.in_delivery).insert(from, delivery);
        for (elder, peer, permit) in deliveries {
            let section = Arc::clone(self);
            let request = LedgerRequest::Handed(vec![certificate.clone()]);
            tokio::spawn(async move {
                let _permit = permit;
                let answer = section.request::<Ledger>(peer, request).await;
                if !matches!(answer, Some(LedgerReply::Confirmations(ref c)) if c.iter().all(Result::is_ok)) {
                    tracing::debug!(%elder, "certificate not applied there yet; the elder will catch up");
                }
                section.delivered(from, id, elder);
            });
        }
    }

    /// Notes that the delivery of `from`'s certificate `id` to `elder` is over, whether or
    /// not it was applied there: an elder it failed to reach is handed it when next asked.
    fn delivered(&self, from: AccountId, id: acre_ledger::Digest, elder: AccountId) {
        let mut in_delivery = crate::lock(&self.in_delivery);
        if let std::collections::hash_map::Entry::Occupied(mut entry) = in_delivery.entry(from) {
            if entry.get().certificate.id() == id {
                entry.get_mut().to.remove(&elder);
                if entry.get().to.is_empty() {
                    entry.remove();
                }
            }
        }
    }

    /// The certificate just before `order` in its sender's account, if this node made it
    /// and is still delivering it, with the elders it has not reached yet.
    fn previous_in_delivery(
        &self,
        order: &SignedOrder,
    ) -> Option<(Certificate, std::collections::BTreeSet<AccountId>)> {
        let in_delivery = crate::lock(&self.in_delivery);
        let delivery = in_delivery.get(&order.order.from)?;
        (delivery.certificate.order.sequence.checked_add(1) == Some(order.order.sequence))
            .then(|| (delivery.certificate.clone(), delivery.to.clone()))
    }

    /// Forever: every `interval`, or at once when a certificate arrived ahead of its
    /// predecessors, asks each other elder for the certificates it applied since the last
    /// position seen there, and applies them in that order (a valid order, since the peer
    /// applied them so). Positions are kept in `cursors` so a restart resumes where it was.
    pub async fn catch_up(self: Arc<Self>, cursors: PathBuf, interval: Duration) {
        let mut positions = crate::blocking::blocking(|| read_cursors(&cursors));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.behind.notified() => {}
            }
            let connected = self.connected().await;
            let peers =
                self.elders.iter().copied().filter(|(elder, peer)| *elder != self.me && connected.contains(peer));
            for (elder, peer) in peers {
                let start = positions.get(&elder).copied().unwrap_or(0);
                let reached = match self.catch_up_from(peer, start).await {
                    Ok(reached) => reached,
                    Err(LedgerStopped) => return,
                };
                if reached != start {
                    positions.insert(elder, reached);
                    if let Err(error) = crate::blocking::blocking(|| write_cursors(&cursors, &positions)) {
                        tracing::warn!(%error, "catch-up positions not saved; a restart will ask again");
                    }
                }
            }
        }
    }

    /// Applies one peer's certificates from `position` until it has no more or one does
    /// not apply; returns the position reached.
    async fn catch_up_from(&self, peer: PeerId, mut position: u64) -> Result<u64, LedgerStopped> {
        loop {
            let request = LedgerRequest::AppliedSince { position, limit: CATCH_UP_PAGE };
            let Some(LedgerReply::Applied(page)) = self.request::<Ledger>(peer, request).await else {
                return Ok(position);
            };
            let count = page.certificates.len();
            if count == 0 {
                return Ok(position);
            }
            let results = self.accept(page.certificates).await?;
            if let Some(Err(error)) = results.into_iter().find(Result::is_err) {
                tracing::debug!(%peer, %error, "catch-up page not applied whole; trying again later");
                return Ok(position);
            }
            tracing::debug!(%peer, count, "caught up");
            position = page.next;
            if count < CATCH_UP_PAGE as usize {
                return Ok(position);
            }
        }
    }
}

impl Section {
    /// The answer to a peer's ledger request: votes only as an elder of the committee,
    /// batches no larger than [`MAX_BATCH`], catch-up pages no longer than a page.
    pub async fn answer(&self, request: LedgerRequest) -> LedgerReply {
        let started = std::time::Instant::now();
        let votes = matches!(request, LedgerRequest::Orders(_) | LedgerRequest::OrdersAfter { .. });
        let reply = self.answer_now(request).await;
        if votes {
            metrics::histogram!("acre_ledger_answer_seconds", "kind" => "orders")
                .record(started.elapsed().as_secs_f64());
        }
        reply
    }

    async fn answer_now(&self, request: LedgerRequest) -> LedgerReply {
        match request {
            LedgerRequest::Orders(orders) if orders.len() > MAX_BATCH => too_many(orders.len()),
            LedgerRequest::Orders(_) if !self.votes_on_transfers() => LedgerReply::Refused("not an elder".into()),
            LedgerRequest::Orders(orders) => {
                self.ledger.orders(orders).await.map_or_else(stopped_reply, LedgerReply::Votes)
            }
            LedgerRequest::OrdersAfter { handed, orders } if handed.len().max(orders.len()) > MAX_BATCH => {
                too_many(handed.len().max(orders.len()))
            }
            LedgerRequest::OrdersAfter { .. } if !self.votes_on_transfers() => {
                LedgerReply::Refused("not an elder".into())
            }
            LedgerRequest::OrdersAfter { handed, orders } => match self.ledger.orders_after(handed, orders).await {
                Ok((applied, votes)) => {
                    self.note_applied(&applied);
                    LedgerReply::Votes(votes)
                }
                Err(stopped) => stopped_reply(stopped),
            },
            LedgerRequest::Handed(certificates) if certificates.len() > MAX_BATCH => too_many(certificates.len()),
            LedgerRequest::Handed(certificates) => {
                let results = self.ledger.handed_certificates(certificates).await;
                results.map_or_else(stopped_reply, |results| {
                    self.note_applied(&results);
                    LedgerReply::Confirmations(results)
                })
            }
            LedgerRequest::Certificates(certificates) if certificates.len() > MAX_BATCH => too_many(certificates.len()),
            LedgerRequest::Certificates(certificates) => {
                self.accept(certificates).await.map_or_else(stopped_reply, LedgerReply::Confirmations)
            }
            LedgerRequest::AppliedSince { position, limit } => {
                let limit = limit.min(CATCH_UP_PAGE) as usize;
                match self.ledger.read(move |elder| elder.applied_since(position, limit)).await {
                    Ok(Ok(page)) => LedgerReply::Applied(page),
                    Ok(Err(error)) => LedgerReply::Refused(error.to_string()),
                    Err(stopped) => LedgerReply::Refused(stopped.to_string()),
                }
            }
            LedgerRequest::CertificatesOf { account, from, limit } => {
                let limit = u64::from(limit.min(CATCH_UP_PAGE));
                let read = self.ledger.read(move |elder| {
                    let sequences = from..from.saturating_add(limit);
                    let certificates: Vec<Certificate> =
                        sequences.map_while(|s| elder.certificate_at(&account, s).ok().flatten()).collect();
                    let next = from + certificates.len() as u64;
                    acre_ledger::store::AppliedPage { certificates, next }
                });
                read.await.map_or_else(|stopped| LedgerReply::Refused(stopped.to_string()), LedgerReply::Applied)
            }
        }
    }
}

/// The reply to any request once the ledger thread has stopped.
fn stopped_reply(_: LedgerStopped) -> LedgerReply {
    LedgerReply::Refused("the ledger has stopped".into())
}

/// Why a request to a peer brought no reply.
#[derive(Debug, thiserror::Error)]
pub enum Unanswered {
    /// The peer said nothing within the time allowed.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The network could not carry the request or its reply.
    #[error(transparent)]
    Network(#[from] crate::transport::NetworkError),
}

/// A request to a peer, given up after `timeout`; why, when it brought no reply.
pub async fn ask_within<P: Routed>(
    network: &NetworkHandle,
    peer: PeerId,
    request: P::Request,
    timeout: Duration,
) -> Result<P::Reply, Unanswered> {
    match tokio::time::timeout(timeout, network.request::<P>(peer, &request)).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(Unanswered::Timeout(timeout)),
    }
}

/// A request to a peer, given up after `timeout`: for callers to whom silence and a
/// failed request mean the same.
pub async fn request_within<P: Routed>(
    network: &NetworkHandle,
    peer: PeerId,
    request: P::Request,
    timeout: Duration,
) -> Option<P::Reply> {
    ask_within::<P>(network, peer, request, timeout)
        .await
        .inspect_err(|error| tracing::debug!(%error, %peer, "request failed"))
        .ok()
}

fn too_many(count: usize) -> LedgerReply {
    LedgerReply::Refused(format!("{count} messages in one request; at most {MAX_BATCH}"))
}

/// Where catch-up left off with each elder; from the start if unknown (which only
/// repeats work).
fn read_cursors(path: &std::path::Path) -> BTreeMap<AccountId, u64> {
    crate::config::read_json_or_empty(path)
}

fn write_cursors(path: &std::path::Path, positions: &BTreeMap<AccountId, u64>) -> std::io::Result<()> {
    write_atomically(path, serde_json::to_vec_pretty(positions)?)
}
