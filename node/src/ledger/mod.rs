//! The ledger's own thread. Everything that touches the ledger — API handlers, peers'
//! requests, catch-up — sends it a job through one bounded channel. The thread drains
//! whatever is queued and hands runs of orders, and runs of certificates, to the group
//! commit of [`DurableElder`]: one fsync answers them all, so load from the API and
//! the elder network shares the disk's sync instead of queueing behind it.
//!
//! Signatures — most of the work — are checked before a job is queued, on the blocking
//! pool, so they use every core while the ledger thread decides and syncs.

use std::time::Instant;

use acre_ledger::store::RocksStore;
use acre_ledger::{
    AccountId, Certificate, Committee, Confirmation, Digest, DurableElder, EpochRecord, LedgerError, ProofDuty,
    SignedOrder, TransferOrder, VerifiedCertificate, VerifiedOrder, Vote,
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
    Read(Read),
    Epoch(Box<EpochRecord>, Vec<Certificate>, AccountId, oneshot::Sender<Result<Digest, LedgerError>>),
}

impl Job {
    fn len(&self) -> usize {
        match self {
            Job::Orders(orders, _) => orders.len(),
            Job::Certificates(certificates, _) => certificates.len(),
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
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new().name("ledger".into()).spawn(move || serve(elder, queue))?;
        Ok((LedgerHandle { jobs, committee, network }, thread))
    }

    /// The network every order must name (see [`acre_ledger::network_id`]).
    pub fn network(&self) -> Digest {
        self.network
    }

    /// Votes on orders (see [`DurableElder::handle_orders`]).
    pub async fn orders(&self, orders: Vec<SignedOrder>) -> Result<Vec<Result<Vote, LedgerError>>, LedgerStopped> {
        // A range proof costs a millisecond: the ledger first refuses what it would refuse
        // anyway, and says which proofs its decision does not depend on.
        let duties: Vec<Result<ProofDuty, LedgerError>> = if orders.iter().any(|o| o.order.hidden.is_some()) {
            let heads: Vec<TransferOrder> = orders.iter().map(|o| o.order.clone()).collect();
            self.read(move |elder| heads.iter().map(|order| elder.state().precheck(order)).collect()).await?
        } else {
            vec![Ok(ProofDuty::ALWAYS); orders.len()]
        };
        let network = self.network;
        let checked = off_thread(move || {
            let checks = orders.into_iter().zip(duties);
            checks.map(|(order, duty)| duty.and_then(|duty| order.into_verified_given(&network, duty))).collect()
        })
        .await?;
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Orders(checked, reply)).await.map_err(|_| LedgerStopped)?;
        answer.await.map_err(|_| LedgerStopped)
    }

    /// Applies certificates (see [`DurableElder::handle_certificates`]).
    pub async fn certificates(
        &self,
        certificates: Vec<Certificate>,
    ) -> Result<Vec<Result<Confirmation, LedgerError>>, LedgerStopped> {
        let committee = self.committee.clone();
        let checked = off_thread(move || committee.verify_all(certificates)).await?;
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Certificates(checked, reply)).await.map_err(|_| LedgerStopped)?;
        answer.await.map_err(|_| LedgerStopped)
    }

    /// Applies an agreed epoch record once, after the payments it was closed with (see
    /// [`DurableElder::handle_epoch`]); `pool` pays out the store payments it carries.
    pub async fn epoch(
        &self,
        record: EpochRecord,
        payments: Vec<Certificate>,
        pool: AccountId,
    ) -> Result<Result<Digest, LedgerError>, LedgerStopped> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Epoch(Box::new(record), payments, pool, reply)).await.map_err(|_| LedgerStopped)?;
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
                Job::Read(query) => reads.push(query),
                Job::Epoch(record, payments, pool, reply) => epochs.push((record, payments, pool, reply)),
            }
        }
        group_commit(certificates, "certificates", |all| elder.handle_verified_certificates(all));
        group_commit(orders, "orders", |all| elder.handle_verified_orders(all));
        for (record, payments, pool, reply) in epochs {
            let _ = reply.send(elder.handle_epoch(&record, &pool, &payments));
        }
        for query in reads {
            query(&elder);
        }
    }
}

/// Decides the messages of several jobs in one call and splits the answers back among
/// the jobs, in order.
fn group_commit<M, T>(
    jobs: Vec<(Vec<M>, oneshot::Sender<Vec<T>>)>,
    kind: &'static str,
    decide: impl FnOnce(Vec<M>) -> Vec<T>,
) {
    if jobs.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut replies = Vec::with_capacity(jobs.len());
    let mut all = Vec::new();
    for (messages, reply) in jobs {
        replies.push((messages.len(), reply));
        all.extend(messages);
    }
    let size = all.len();
    let mut answers = decide(all).into_iter();
    for (count, reply) in replies {
        // A sender that gave up (a timed-out request) no longer needs its answer.
        let _ = reply.send(answers.by_ref().take(count).collect());
    }
    metrics::histogram!("acre_ledger_group_size", "kind" => kind).record(size as f64);
    metrics::histogram!("acre_ledger_call_seconds", "kind" => kind).record(started.elapsed().as_secs_f64());
}

/// Runs CPU-heavy checking on the blocking pool, off the async workers and the ledger.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, LedgerStopped> {
    tokio::task::spawn_blocking(work).await.map_err(|_| LedgerStopped)
}
