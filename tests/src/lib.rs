//! Cross-crate tests of Acre live in `tests/`: in-process committees of elders driven
//! through the ledger's handlers, crash recovery of the RocksDB store with real
//! `SIGKILL`s, attacks on the transfer protocol, property tests of its invariants, and
//! the `acre` wallet against a real `acre-node` process. This library holds what those
//! tests share: running node processes.

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
        let address_file = data_dir.join("api-address");
        let _ = std::fs::remove_file(&address_file);
        let mut child = Command::new(binary)
            .args(["run", "--api", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let started = Instant::now();
        let api = loop {
            if let Ok(text) = std::fs::read_to_string(&address_file) {
                break text.trim().to_owned();
            }
            if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
                panic!("the node exited during start with {status}");
            }
            assert!(started.elapsed() < DEADLINE, "the node never wrote its API address");
            std::thread::sleep(Duration::from_millis(20));
        };
        NodeProcess { child, api }
    }

    /// Sends SIGTERM and expects a clean exit within the deadline.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap_or_else(|e| panic!("wait: {e}")) {
                assert!(status.success(), "the node exited with {status} on SIGTERM");
                return;
            }
            assert!(started.elapsed() < DEADLINE, "the node ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
