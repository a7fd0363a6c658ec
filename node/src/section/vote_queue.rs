//! Orders on their way to one elder, batched. While a request to the elder is in flight,
//! the orders that arrive meanwhile wait and go together in the next one: one request per
//! elder and one group commit there however many orders a node gathers at once, and a lone
//! order still goes at once. An order may bring its sender's previous certificate, for an
//! elder it may not have reached yet; it goes in the same request, ahead of the orders.

use std::time::Duration;

use acre_ledger::{Certificate, ElderAnswer, SignedOrder};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use crate::ledger::LedgerHandle;
use crate::section::request_within;
use crate::transport::{NetworkHandle, MAX_BATCH};
use acre_core::wire::{Ledger, LedgerReply, LedgerRequest};

/// Most certificates handed over in one request. They only save round trips, and must
/// not push a full batch of orders past the protocol's 4 MiB request: a certificate is at
/// most a few KiB (a hidden one carries its range proof), so these take well under 1 MiB.
const MAX_HANDED: usize = 256;

/// An order, a certificate to hand over with it, and where its answer goes.
type Job = (SignedOrder, Option<Certificate>, oneshot::Sender<ElderAnswer>);

/// Where a queue's orders are voted on.
#[derive(Debug, Clone)]
pub(crate) enum Voter {
    /// This node's own ledger.
    Local(LedgerHandle),
    /// Another elder, over the network.
    Remote {
        /// The network task.
        network: NetworkHandle,
        /// The elder's peer.
        peer: PeerId,
        /// How long it may take to answer.
        timeout: Duration,
    },
}

impl Voter {
    /// The elder's answer to each order, in order, once it has applied `handed`; silence
    /// for all if it gave none.
    async fn votes(&self, orders: Vec<SignedOrder>, handed: Vec<Certificate>) -> Vec<ElderAnswer> {
        let count = orders.len();
        let started = std::time::Instant::now();
        let answers = match self {
            // This node made the certificates it hands over: its own ledger has them.
            Voter::Local(ledger) => ledger.orders(orders).await.ok(),
            Voter::Remote { network, peer, timeout } => {
                let request = if handed.is_empty() {
                    LedgerRequest::Orders(orders)
                } else {
                    LedgerRequest::OrdersAfter { handed, orders }
                };
                match request_within::<Ledger>(network, *peer, request, *timeout).await {
                    Some(LedgerReply::Votes(votes)) => Some(votes),
                    _ => None,
                }
            }
        };
        let elder = if matches!(self, Voter::Local(_)) { "local" } else { "remote" };
        metrics::histogram!("acre_vote_seconds", "elder" => elder).record(started.elapsed().as_secs_f64());
        match answers {
            Some(answers) if answers.len() == count => answers
                .into_iter()
                .map(|answer| match answer {
                    Ok(vote) => ElderAnswer::Voted(vote),
                    Err(refusal) => ElderAnswer::Refused(refusal),
                })
                .collect(),
            _ => vec![ElderAnswer::Silent; count],
        }
    }
}

/// The queue of orders for one elder, served by its own task until the queue is dropped.
#[derive(Debug)]
pub(crate) struct VoteQueue {
    jobs: mpsc::Sender<Job>,
}

impl VoteQueue {
    /// Starts the task that sends this queue's orders to `voter`.
    pub(crate) fn spawn(voter: Voter) -> Self {
        let (jobs, queue) = mpsc::channel(MAX_BATCH);
        tokio::spawn(serve(voter, queue));
        VoteQueue { jobs }
    }

    /// The elder's answer to `order`, handed `previous` first if given. A full queue (the
    /// elder is not keeping up) is silence at once rather than a wait: the other elders
    /// make the quorum.
    pub(crate) async fn ask(&self, order: SignedOrder, previous: Option<Certificate>) -> ElderAnswer {
        let (reply, answer) = oneshot::channel();
        if self.jobs.try_send((order, previous, reply)).is_err() {
            return ElderAnswer::Silent;
        }
        answer.await.unwrap_or(ElderAnswer::Silent)
    }
}

/// Sends whatever is queued as one request, waits for its answer, and repeats.
async fn serve(voter: Voter, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut handed: Vec<Certificate> = Vec::new();
        let mut orders = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (order, previous, reply) in batch {
            orders.push(order);
            // Past the bound a certificate stays behind: the elder is handed it if it asks.
            if let Some(previous) = previous.filter(|p| handed.len() < MAX_HANDED && !handed.contains(p)) {
                handed.push(previous);
            }
            replies.push(reply);
        }
        for (reply, answer) in replies.into_iter().zip(voter.votes(orders, handed).await) {
            // The asker may have its quorum already and be gone.
            let _ = reply.send(answer);
        }
    }
}
