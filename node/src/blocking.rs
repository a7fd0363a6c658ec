//! Disk work from async code. A sync or a read on a runtime worker stalls every task
//! queued behind it there; the node's code calls this around such work instead.

/// Runs `work`, which syncs, reads or stats files, without stalling the runtime's other
/// tasks: on tokio's multi-threaded runtime (the node's) the worker hands its queue to
/// another thread first; elsewhere (a test's single-threaded runtime, no runtime) it just
/// runs.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
