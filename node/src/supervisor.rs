//! The node's long-running tasks, watched: each of them (the network, the section driver,
//! the audits, the catch-up) runs for the node's whole life, so one that ends or panics
//! leaves a node whose API still answers while its core is dead. The supervisor notices the
//! first such end, says which task it was and why, and has the node stop with an error;
//! on an ordinary shutdown it cancels them all and waits until they have ended.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::{Id, JoinSet};

/// Names a task may be made to panic by in debug builds, for the test that a dead task
/// stops the node. Release builds ignore it.
pub const PANIC_TASK_VARIABLE: &str = "ACRE_TEST_PANIC_TASK";

/// Tasks that must live as long as the node.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    /// Starts `task` under `name`.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let doomed = cfg!(debug_assertions) && std::env::var(PANIC_TASK_VARIABLE).is_ok_and(|wanted| wanted == name);
        let handle = self.set.spawn(async move {
            assert!(!doomed, "{PANIC_TASK_VARIABLE} asked the {name} task to panic");
            task.await;
        });
        self.names.insert(handle.id(), name);
    }

    /// Watches the tasks in the background. The returned [`Supervisor`] stops them all;
    /// the future resolves with what happened once one has died, and never while all live.
    pub fn supervise(self) -> (Supervisor, impl Future<Output = String> + Send + 'static) {
        let (died_tx, died) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel();
        let watch = tokio::spawn(watch(self, died_tx, stop_rx));
        let died = async move {
            match died.await {
                Ok(reason) => reason,
                // The watch is gone only after `stop`: nothing died.
                Err(_) => std::future::pending().await,
            }
        };
        (Supervisor { stop, watch }, died)
    }
}

/// The running watch over the node's tasks.
pub struct Supervisor {
    stop: oneshot::Sender<()>,
    watch: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// Cancels every task that still runs and waits until all have ended.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.watch.await;
    }
}

async fn watch(mut tasks: Tasks, died: oneshot::Sender<String>, mut stop: oneshot::Receiver<()>) {
    tokio::select! {
        ended = tasks.set.join_next_with_id() => {
            let reason = match ended {
                Some(Ok((id, ()))) => format!("the {} task ended", name_of(&tasks.names, id)),
                Some(Err(error)) if error.is_panic() => format!("the {} task panicked", name_of(&tasks.names, error.id())),
                Some(Err(error)) => format!("the {} task was cancelled", name_of(&tasks.names, error.id())),
                None => "no task was running".to_owned(),
            };
            tracing::error!(%reason, "a core task stopped; the node stops");
            let _ = died.send(reason);
            let _ = (&mut stop).await;
        }
        _ = &mut stop => {}
    }
    tasks.set.shutdown().await;
}

fn name_of(names: &HashMap<Id, &'static str>, id: Id) -> &'static str {
    names.get(&id).copied().unwrap_or("unnamed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_task_to_end_is_named_and_the_rest_are_cancelled() {
        let mut tasks = Tasks::default();
        let (_keep, forever) = oneshot::channel::<()>();
        let cancelled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = std::sync::Arc::clone(&cancelled);
        tasks.spawn("forever", async move {
            let _ = forever.await;
            flag.store(false, std::sync::atomic::Ordering::SeqCst);
        });
        tasks.spawn("short", async {});
        let (supervisor, died) = tasks.supervise();
        assert_eq!(died.await, "the short task ended");
        supervisor.stop().await;
        assert!(cancelled.load(std::sync::atomic::Ordering::SeqCst), "the other task was cancelled, not finished");
    }

    #[tokio::test]
    async fn a_panic_is_reported_as_one() {
        let mut tasks = Tasks::default();
        tasks.spawn("fragile", async { panic!("broken") });
        let (supervisor, died) = tasks.supervise();
        assert_eq!(died.await, "the fragile task panicked");
        supervisor.stop().await;
    }
}
