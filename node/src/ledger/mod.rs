//! The ledger's own thread. Everything that touches the ledger — API handlers, peers'
//! requests, catch-up — sends it a job through one bounded channel. The thread drains
//! whatever is queued and hands runs of orders, and runs of certificates, to the group
//! commit of [`DurableElder`]: one fsync answers them all, so load from the API and
//! the elder network shares the disk's sync instead of queueing behind it.
//!
//! Signatures — most of the work — are checked before a job is queued, and the votes
//! signed there too ([`acre_ledger::VerifiedOrder::signed_ahead`]): on the blocking pool,
//! so they use every core while the ledger thread decides and syncs, except a lone
//! order's, which costs less than the hop to another thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use acre_ledger::store::RocksStore;
use acre_ledger::{
    verify_orders, AccountId, Certificate, Committee, Confirmation, Digest, DurableElder, EpochRecord, LedgerError,
    ProofDuty, SignedOrder, TransferOrder, VerifiedCertificate, VerifiedOrder, Vote, VoteSigner,
};
use tokio::sync::{mpsc, oneshot};

/// Jobs waiting for the ledger; senders wait when it is full (backpressure).
const QUEUE_DEPTH: usize = 4096;
/// Most messages decided under one sync.
const GROUP_LIMIT: usize = 1024;

type Read = Box<dyn FnOnce(&DurableElder<RocksStore>) + Send>;

type Checked<T> = Vec<Result<T, LedgerError>>;

enum Job {
    Orders(Checked<VerifiedOrder>, oneshot::Sender<Vec<Result<Vote, LedgerError>>>),
    Certificates(Checked<VerifiedCertificate>, oneshot::Sender<Vec<Result<Confirmation, LedgerError>>>),
    /// Certificates another elder handed over, applied without a sync of their own.
    Handed(Checked<VerifiedCertificate>, oneshot::Sender<Vec<Result<Confirmation, LedgerError>>>),
    Read(Read),
    Epoch(Box<EpochRecord>, Vec<Certificate>, AccountId, oneshot::Sender<Result<Digest, LedgerError>>),
}

impl Job {
    fn len(&self) -> usize {
        match self {
            Job::Orders(orders, _) => orders.len(),
            Job::Certificates(certificates, _) => certificates.len(),
            Job::Handed(certificates, _) => certificates.len(),
            Job::Read(_) | Job::Epoch(..) => 1,
        }
    }
}

/// The ledger thread stopped (the node is shutting down or its store failed).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the ledger has stopped")]
pub struct LedgerStopped;

impl From<LedgerStopped> for LedgerError {
    fn from(_: LedgerStopped) -> Self {
        LedgerError::Storage { message: "the ledger has stopped".into() }
    }
}

/// A cheap, cloneable way to reach the ledger thread.
#[derive(Clone)]
pub struct LedgerHandle {
    jobs: mpsc::Sender<Job>,
    committee: Committee,
    /// The network's identity, which orders name and hidden orders' range proofs are bound to.
    network: Digest,
    /// This elder's key, to sign votes where the orders are checked, off the ledger thread.
    signer: VoteSigner,
    /// The votes this elder gave lately, for answering replays.
    recent: Arc<Recent<Vote>>,
    /// The certificates applied here lately, so one handed over twice (with an order and
    /// in the background) has its votes checked once.
    applied: Arc<Recent<Confirmation>>,
}

/// Entries in each of [`Recent`]'s two generations at most.
const RECENT_ENTRIES: usize = 32_768;

/// What this elder answered lately, by digest, so a message that comes again is answered
/// without checking its signatures a second time. For votes: an order sent again (a
/// wallet's retry, a gathering node asking twice, or anyone replaying an order it saw) gets
/// the vote at once. The vote is no secret (every certificate carries it) and the digest
/// names exactly the order it is for. The owner's signature is not part of the digest, so
/// a replay with a broken one gets the vote too: nothing it did not already have, since
/// the vote is for the order the owner signed. For certificates: one applied here names
/// a transfer this ledger holds, so a copy of it, whatever its votes, changes nothing and
/// is confirmed as the first was; only handed-over copies are answered so, since they
/// promise no sync of their own.
///
/// Two generations of at most [`RECENT_ENTRIES`]: when the newer fills it becomes the
/// older and the older goes, so it stays bounded whatever is sent, and a message older
/// than that is checked again and answered by the ledger from its store, as before.
struct Recent<T> {
    generations: Mutex<[HashMap<Digest, T>; 2]>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent { generations: Mutex::new([HashMap::new(), HashMap::new()]) }
    }
}

impl<T: Copy> Recent<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<Digest, T>; 2]> {
        // The maps stay consistent whatever a panicking holder was doing: each insert is whole.
        crate::lock(&self.generations)
    }

    /// The answer given for each digest, if it is known here.
    fn find(&self, digests: &[Digest]) -> Vec<Option<T>> {
        let generations = self.lock();
        digests.iter().map(|digest| generations.iter().find_map(|known| known.get(digest)).copied()).collect()
    }

    /// Keeps answers just given (durably, for votes: the ledger answered them).
    fn remember(&self, answers: impl Iterator<Item = (Digest, T)>) {
        let mut generations = self.lock();
        for (digest, answer) in answers {
            if generations[0].len() >= RECENT_ENTRIES {
                generations.swap(0, 1);
                generations[0].clear();
            }
            generations[0].insert(digest, answer);
        }
    }
}

impl std::fmt::Debug for LedgerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerHandle").field("queued", &(QUEUE_DEPTH - self.jobs.capacity())).finish()
    }
}

impl LedgerHandle {
    /// Starts the ledger thread, which owns `elder` until every handle is dropped; then
    /// the thread ends and the store closes.
    pub fn spawn(elder: DurableElder<RocksStore>) -> std::io::Result<(LedgerHandle, std::thread::JoinHandle<()>)> {
        let committee = elder.state().committee().clone();
        let network = elder.state().network();
        let signer = elder.state().vote_signer();
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new().name("ledger".into()).spawn(move || serve(elder, queue))?;
        let (recent, applied) = (Arc::default(), Arc::default());
        Ok((LedgerHandle { jobs, committee, network, signer, recent, applied }, thread))
    }

    /// The network every order must name (see [`acre_ledger::network_id`]).
    pub fn network(&self) -> Digest {
        self.network
    }

    /// Votes on orders (see [`DurableElder::handle_orders`]). An order this elder voted on
    /// lately is answered with that vote at once ([`Recent`]); the rest are checked
    /// and decided.
    pub async fn orders(&self, orders: Vec<SignedOrder>) -> Result<Vec<Result<Vote, LedgerError>>, LedgerStopped> {
        let digests: Vec<Digest> = orders.iter().map(|signed| signed.order.digest()).collect();
        let known = self.recent.find(&digests);
        let fresh: Vec<SignedOrder> =
            orders.into_iter().zip(&known).filter(|(_, known)| known.is_none()).map(|(signed, _)| signed).collect();
        let mut decided = if fresh.is_empty() { Vec::new() } else { self.decide(fresh).await? }.into_iter();
        let answers: Vec<Result<Vote, LedgerError>> = known
            .into_iter()
            .map(|known| match known {
                Some(vote) => Ok(vote),
                None => decided.next().unwrap_or(Err(LedgerError::from(LedgerStopped))),
            })
            .collect();
        self.recent.remember(answers.iter().filter_map(|answer| answer.as_ref().ok()).map(|vote| (vote.order, *vote)));
        Ok(answers)
    }

    /// Applies `handed` (the senders' previous certificates, on their way here in the
    /// background too) without a sync of their own, then votes on `orders`, which see
    /// them: the votes' sync covers both. The certificates' answers come first.
    pub async fn orders_after(
        &self,
        handed: Vec<Certificate>,
        orders: Vec<SignedOrder>,
    ) -> Result<(Checked<Confirmation>, Checked<Vote>), LedgerStopped> {
        // Queued before the orders' job: the thread takes jobs in the order they came, and
        // applies handed certificates before the orders drained with them.
        let applied = self.hand(handed).await?;
        let votes = self.orders(orders).await?;
        Ok((applied.await?, votes))
    }

    /// Checks and decides orders none of which is known to [`Recent`].
    async fn decide(&self, orders: Vec<SignedOrder>) -> Result<Vec<Result<Vote, LedgerError>>, LedgerStopped> {
        // A range proof costs a millisecond: the ledger first refuses what it would refuse
        // anyway, and says which proofs its decision does not depend on.
        let hidden = orders.iter().any(|o| o.order.hidden.is_some());
        // One signature check and one vote signature cost less than handing them to another
        // thread and waking again, which a lone transfer pays on every elder; a range proof
        // always goes.
        let in_place = !hidden && orders.len() <= CHECKED_IN_PLACE;
        let duties: Vec<Result<ProofDuty, LedgerError>> = if hidden {
            let heads: Vec<TransferOrder> = orders.iter().map(|o| o.order.clone()).collect();
            self.read(move |elder| heads.iter().map(|order| elder.state().precheck(order)).collect()).await?
        } else {
            vec![Ok(ProofDuty::ALWAYS); orders.len()]
        };
        let network = self.network;
        let signer = self.signer.clone();
        let sign_ahead = move |checked: Vec<Result<VerifiedOrder, LedgerError>>| -> Vec<_> {
            checked.into_iter().map(|order| order.map(|order| order.signed_ahead(&signer))).collect()
        };
        let checks: Vec<_> = orders.into_iter().zip(duties).collect();
        // Two or fewer are checked strictly, one by one, by `verify_orders` itself.
        let check = move || sign_ahead(verify_orders(checks, &network));
        let checked = if in_place { check() } else { off_thread(check).await? };
        self.submit(|reply| Job::Orders(checked, reply)).await
    }

    /// Applies certificates another elder made and hands over in the background, without
    /// a sync of their own (see [`DurableElder::handle_handed_certificates`]).
    pub async fn handed_certificates(
        &self,
        certificates: Vec<Certificate>,
    ) -> Result<Vec<Result<Confirmation, LedgerError>>, LedgerStopped> {
        self.hand(certificates).await?.await
    }

    /// Queues handed-over certificates for the ledger thread once their votes are checked,
    /// and returns their answers to come. A certificate applied here lately is confirmed at
    /// once ([`Recent`]): it was handed over with an order and in the background too.
    async fn hand(
        &self,
        certificates: Vec<Certificate>,
    ) -> Result<impl std::future::Future<Output = Result<Checked<Confirmation>, LedgerStopped>>, LedgerStopped> {
        let ids: Vec<Digest> = certificates.iter().map(Certificate::id).collect();
        let known = self.applied.find(&ids);
        let fresh: Vec<Certificate> =
            certificates.into_iter().zip(&known).filter(|(_, known)| known.is_none()).map(|(c, _)| c).collect();
        let answer = if fresh.is_empty() {
            None
        } else {
            let committee = self.committee.clone();
            let checked = off_thread(move || committee.verify_all(fresh)).await?;
            let (reply, answer) = oneshot::channel();
            self.jobs.send(Job::Handed(checked, reply)).await.map_err(|_| LedgerStopped)?;
            Some(answer)
        };
        let applied = Arc::clone(&self.applied);
        Ok(async move {
            let mut decided = match answer {
                Some(answer) => answer.await.map_err(|_| LedgerStopped)?,
                None => Vec::new(),
            }
            .into_iter();
            let answers: Checked<Confirmation> = known
                .into_iter()
                .map(|known| known.map_or_else(|| decided.next().unwrap_or(Err(LedgerError::from(LedgerStopped))), Ok))
                .collect();
            remember_applied(&applied, &answers);
            Ok(answers)
        })
    }

    /// Applies certificates already checked (a certificate this node gathered: each vote
    /// was checked as it came in).
    pub async fn verified_certificates(
        &self,
        certificates: Vec<VerifiedCertificate>,
    ) -> Result<Vec<Result<Confirmation, LedgerError>>, LedgerStopped> {
        let checked = certificates.into_iter().map(Ok).collect();
        let answers = self.submit(|reply| Job::Certificates(checked, reply)).await?;
        remember_applied(&self.applied, &answers);
        Ok(answers)
    }

    /// Applies certificates (see [`DurableElder::handle_certificates`]).
    pub async fn certificates(
        &self,
        certificates: Vec<Certificate>,
    ) -> Result<Vec<Result<Confirmation, LedgerError>>, LedgerStopped> {
        // Their votes are checked on the blocking pool, off the ledger thread.
        let committee = self.committee.clone();
        let checked = off_thread(move || committee.verify_all(certificates)).await?;
        let answers = self.submit(|reply| Job::Certificates(checked, reply)).await?;
        remember_applied(&self.applied, &answers);
        Ok(answers)
    }

    /// Applies an agreed epoch record once, after the payments it was closed with (see
    /// [`DurableElder::handle_epoch`]); `pool` pays out the store payments it carries.
    pub async fn epoch(
        &self,
        record: EpochRecord,
        payments: Vec<Certificate>,
        pool: AccountId,
    ) -> Result<Result<Digest, LedgerError>, LedgerStopped> {
        self.submit(|reply| Job::Epoch(Box::new(record), payments, pool, reply)).await
    }

    /// Queues the job `make` builds around where its answer goes, and waits for the answer.
    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Job) -> Result<T, LedgerStopped> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(make(reply)).await.map_err(|_| LedgerStopped)?;
        answer.await.map_err(|_| LedgerStopped)
    }

    /// Runs a query on the ledger thread, in turn with the writes.
    pub async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&DurableElder<RocksStore>) -> T + Send + 'static,
    ) -> Result<T, LedgerStopped> {
        let (reply, answer) = oneshot::channel();
        let job: Read = Box::new(move |elder| {
            // The asker may have gone (a timed-out request); the answer is then moot.
            let _ = reply.send(query(elder));
        });
        self.jobs.send(Job::Read(job)).await.map_err(|_| LedgerStopped)?;
        answer.await.map_err(|_| LedgerStopped)
    }
}

/// Keeps the certificates just applied, for handed-over copies of them ([`Recent`]).
fn remember_applied(applied: &Recent<Confirmation>, answers: &Checked<Confirmation>) {
    applied.remember(answers.iter().filter_map(|answer| answer.as_ref().ok()).map(|c| (c.certificate, *c)));
}

/// The thread's loop: take what is queued and answer it, certificates and orders each as
/// one group commit. Jobs drained together were all waiting at once, so none of their
/// senders has seen another's answer, and any order of deciding them is a valid one.
fn serve(mut elder: DurableElder<RocksStore>, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut messages = first.len();
        let mut drained = vec![first];
        while messages < GROUP_LIMIT {
            let Ok(job) = queue.try_recv() else { break };
            messages += job.len();
            drained.push(job);
        }
        let (mut orders, mut certificates, mut reads, mut epochs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for job in drained {
            match job {
                Job::Orders(batch, reply) => orders.push((batch, reply)),
                Job::Certificates(batch, reply) => certificates.push((batch, reply)),
                // Applied first, so that orders drained with them see them; the group's
                // sync then covers them too.
                Job::Handed(batch, reply) => {
                    let _ = reply.send(elder.handle_handed_certificates(batch));
                }
                Job::Read(query) => reads.push(query),
                Job::Epoch(record, payments, pool, reply) => epochs.push((record, payments, pool, reply)),
            }
        }
        group_commit(&mut elder, certificates, orders);
        for (record, payments, pool, reply) in epochs {
            let _ = reply.send(elder.handle_epoch(&record, &pool, &payments));
        }
        for query in reads {
            query(&elder);
        }
    }
}

/// The jobs of one kind drained together, each with where its answers go.
type Jobs<M, T> = Vec<(Checked<M>, oneshot::Sender<Checked<T>>)>;

/// How many answers each job is owed, and where they go.
type Replies<T> = Vec<(usize, oneshot::Sender<Checked<T>>)>;

/// Decides every certificate and then every order drained together under one sync, and
/// splits the answers back among the jobs, in order.
fn group_commit(
    elder: &mut DurableElder<RocksStore>,
    certificates: Jobs<VerifiedCertificate, Confirmation>,
    orders: Jobs<VerifiedOrder, Vote>,
) {
    if certificates.is_empty() && orders.is_empty() {
        return;
    }
    let started = Instant::now();
    let (all_certificates, certificate_replies) = gather(certificates);
    let (all_orders, order_replies) = gather(orders);
    let sizes = (all_certificates.len(), all_orders.len());
    let (confirmations, votes) = elder.handle_verified_group(all_certificates, all_orders);
    answer(certificate_replies, confirmations);
    answer(order_replies, votes);
    metrics::histogram!("acre_ledger_group_size", "kind" => "certificates").record(sizes.0 as f64);
    metrics::histogram!("acre_ledger_group_size", "kind" => "orders").record(sizes.1 as f64);
    metrics::histogram!("acre_ledger_call_seconds", "kind" => "group").record(started.elapsed().as_secs_f64());
}

/// The messages of several jobs as one run, and how many answers each job is owed.
fn gather<M, T>(jobs: Jobs<M, T>) -> (Checked<M>, Replies<T>) {
    let mut replies = Vec::with_capacity(jobs.len());
    let mut all = Vec::new();
    for (messages, reply) in jobs {
        replies.push((messages.len(), reply));
        all.extend(messages);
    }
    (all, replies)
}

/// Hands each job its share of `answers`, in order.
fn answer<T>(replies: Replies<T>, answers: Checked<T>) {
    let mut answers = answers.into_iter();
    for (count, reply) in replies {
        let share = answers.by_ref().take(count).collect();
        // A sender that gave up (a timed-out request) no longer needs its answer.
        let _ = reply.send(share);
    }
}

/// Most plain orders whose signatures are checked on the asking task itself rather than
/// on the blocking pool.
const CHECKED_IN_PLACE: usize = 2;

/// Runs CPU-heavy checking on the blocking pool, off the async workers and the ledger.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, LedgerStopped> {
    tokio::task::spawn_blocking(work).await.map_err(|_| LedgerStopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use acre_ledger::SignatureBytes;

    fn vote(n: u32) -> Vote {
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&n.to_le_bytes());
        Vote { order: Digest(digest), elder: AccountId([1; 32]), signature: SignatureBytes([2; 64]) }
    }

    #[test]
    fn recent_votes_answer_replays_and_stay_bounded() {
        let recent = Recent::default();
        let count = u32::try_from(RECENT_ENTRIES).expect("fits") * 2 + 1;
        recent.remember((0..count).map(vote).map(|vote| (vote.order, vote)));
        let found = recent.find(&[vote(0).order, vote(count - 1).order, vote(count).order]);
        assert_eq!(found, vec![None, Some(vote(count - 1)), None], "the oldest went, the newest is known");
        let held: usize = recent.lock().iter().map(HashMap::len).sum();
        assert!(held <= 2 * RECENT_ENTRIES, "{held}");
    }
}
