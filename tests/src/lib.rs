//! Cross-crate tests of Acre live in `tests/`: in-process committees of elders driven
//! through the ledger's handlers, crash recovery of the RocksDB store with real
//! `SIGKILL`s, attacks on the transfer protocol, property tests of its invariants, and
//! the `acre` wallet against a real `acre-node` process. This library holds what those
//! tests share: running node processes and devnets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to start or stop before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A workspace binary built beside the running test (`cargo test --workspace` builds them).
pub fn workspace_binary(name: &str) -> PathBuf {
    let test = std::env::current_exe().unwrap_or_else(|e| panic!("test binary: {e}"));
    let profile_dir = test.parent().and_then(Path::parent).unwrap_or_else(|| panic!("no target directory"));
    let binary = profile_dir.join(name);
    assert!(binary.exists(), "{} is not built: run `cargo build --workspace --bins` first", binary.display());
    binary
}

/// A running `acre-node`, killed if the test ends without stopping it.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    /// The API's base URL, e.g. `http://127.0.0.1:40123`.
    pub api: String,
}

impl NodeProcess {
    /// Runs `binary run` on `data_dir` with the API on a free port, and waits until the
    /// node has written the address it bound.
    pub fn start(binary: &Path, data_dir: &Path) -> Self {
        Self::start_with(binary, data_dir, &["--api", "127.0.0.1:0"])
    }

    /// Runs `binary run` on `data_dir` with extra flags (none: as its configuration says),
    /// logging to `node.log` there, and waits until the node has written its API address.
    pub fn start_with(binary: &Path, data_dir: &Path, flags: &[&str]) -> Self {
        let address_file = data_dir.join("api-address");
        let _ = std::fs::remove_file(&address_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("node.log"))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let mut child = Command::new(binary)
            .arg("run")
            .args(flags)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let api = read_once_written(&mut child, &address_file, "the node").trim().to_owned();
        NodeProcess { child, api }
    }

    /// Sends SIGTERM and expects a clean exit within the deadline.
    pub fn stop(mut self) {
        terminate(&mut self.child, "the node");
    }
}

/// Sends `signal` (e.g. "KILL", "TERM") to the process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// SIGTERM, then a clean exit within the deadline.
fn terminate(child: &mut Child, what: &str) {
    send_signal(child.id(), "TERM");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            assert!(status.success(), "{what} exited with {status} on SIGTERM");
            return;
        }
        assert!(started.elapsed() < DEADLINE, "{what} ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `acre-node devnet`, stopped (with every node it started) if the test ends
/// without stopping it.
#[derive(Debug)]
pub struct DevnetProcess {
    child: Child,
    /// The devnet's directory, holding `devnet.json` while it runs.
    pub dir: PathBuf,
}

impl DevnetProcess {
    /// Starts a devnet of `nodes` in `dir` that stores only what the test stores, and
    /// waits for its manifest.
    pub fn start(binary: &Path, dir: &Path, nodes: usize) -> Self {
        Self::start_with(binary, dir, nodes, &["--no-seed"])
    }

    /// Starts a devnet as `make devnet` does: it stores a seed file from its faucet.
    pub fn start_seeded(binary: &Path, dir: &Path, nodes: usize) -> Self {
        Self::start_with(binary, dir, nodes, &[])
    }

    fn start_with(binary: &Path, dir: &Path, nodes: usize, flags: &[&str]) -> Self {
        let manifest = dir.join("devnet.json");
        let mut child = Command::new(binary)
            .args(["devnet", "--nodes", &nodes.to_string(), "--dir"])
            .arg(dir)
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        read_once_written(&mut child, &manifest, "the devnet");
        DevnetProcess { child, dir: dir.to_owned() }
    }

    /// The devnet process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the devnet and its nodes with SIGTERM, expecting a clean exit.
    pub fn stop(&mut self) {
        terminate(&mut self.child, "the devnet");
    }
}

impl Drop for DevnetProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            keep_logs(&self.dir);
        }
    }
}

/// Copies the `node.log` of every node under `dir` to a folder that outlives the test's
/// temporary directory, and says where: a devnet test that failed is read from its logs.
fn keep_logs(dir: &Path) {
    let Ok(nodes) = std::fs::read_dir(dir) else { return };
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis());
    let kept = std::env::temp_dir().join("acre-failed-devnets").join(format!("{stamp}-{}", std::process::id()));
    for node in nodes.flatten() {
        let log = node.path().join("node.log");
        let copy = kept.join(node.file_name()).with_extension("log");
        if log.is_file() && std::fs::create_dir_all(&kept).is_ok() && std::fs::copy(&log, &copy).is_ok() {
            eprintln!("kept {}", copy.display());
        }
    }
}

/// The file at `path` once the starting `child` (named `what`) has written it; fails the
/// test if the child exits first or the deadline passes.
fn read_once_written(child: &mut Child, path: &Path, what: &str) -> String {
    eventually(&format!("{what} has written {}", path.display()), || {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
            panic!("{what} exited during start with {status}");
        }
        std::fs::read_to_string(path).ok()
    })
}

/// Polls `check` until it returns `Some`, failing the test with `what` at the deadline.
pub fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(DEADLINE, what, check)
}

/// Polls `check` until it returns `Some`, failing the test with `what` after `deadline`.
pub fn eventually_within<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
