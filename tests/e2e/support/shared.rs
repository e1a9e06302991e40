//! One cluster shared by the tests of a group, started by the first of them that runs.
//!
//! Tests take turns with it (a lock), so each may assume it is alone on the cluster, and each
//! leaves it as it found it: two nodes, `m1` (manager) and `w1` (worker), with no services.
//! A static is never dropped, so the cluster cannot clean up after itself as [`Cluster`] does:
//! a reaper process, started with it and outliving this test process, waits for the process to
//! end and then kills the cluster's swarmd processes, removes its nodes' containers and tmpfs
//! mounts, and deletes its directory, also when a test panicked or the run was interrupted.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::sync::MutexGuard;

use super::Cluster;
use super::remove_containers_of;

const REAP_FOR: &str = "SWARM_E2E_REAP_FOR_PID";
const REAP_ROOT: &str = "SWARM_E2E_REAP_ROOT";

/// A manager and a worker that run real containers.
pub struct DockerPair {
    pub cluster: Cluster,
    pub m1: usize,
    pub w1: usize,
}

static PAIR: OnceLock<Mutex<DockerPair>> = OnceLock::new();

/// The shared pair, started on first use; held until the guard drops, so tests take turns
/// (across their awaits, hence an async lock). A test that failed while holding it does not
/// stop the next one from using it.
pub async fn docker_pair() -> MutexGuard<'static, DockerPair> {
    PAIR.get_or_init(|| {
        let mut cluster = Cluster::docker();
        start_reaper(cluster.root.path());
        let m1 = cluster.init("m1", &["--hostname", "m1"]);
        let token = cluster.token(m1, "worker");
        let w1 = cluster.join("w1", &token, m1);
        Mutex::new(DockerPair { cluster, m1, w1 })
    })
    .lock()
    .await
}

/// Starts this test binary again as the reaper of `root`, in its own process group so that an
/// interrupt of the test run does not stop it.
#[allow(
    clippy::zombie_processes,
    reason = "the reaper outlives this process by design; it ends only after this process has"
)]
fn start_reaper(root: &Path) {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args(["--exact", "support::shared::reaper", "--ignored", "--test-threads=1"])
        .env(REAP_FOR, std::process::id().to_string())
        .env(REAP_ROOT, root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the shared cluster's reaper");
}

/// Not a test: the reaper the shared cluster starts. Run by hand it finds nothing to do.
#[test]
#[ignore = "started by the shared cluster to clean up after the test process"]
fn reaper() {
    let (Ok(pid), Ok(root)) = (std::env::var(REAP_FOR), std::env::var(REAP_ROOT)) else {
        return;
    };
    let root = PathBuf::from(root);
    while Path::new("/proc").join(&pid).exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    reap(&root);
}

/// Kills every process started with a data dir under `root`, removes the containers of the
/// nodes whose state is there, unmounts their task files and deletes `root`.
fn reap(root: &Path) {
    let marker = root.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&marker) {
            let _ = Command::new("kill").args(["-9", &pid]).output();
        }
    }
    for node in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let config = std::fs::read_to_string(node.path().join("node.json")).unwrap_or_default();
        if let Some(id) = serde_json::from_str::<serde_json::Value>(&config)
            .ok()
            .and_then(|v| v["node_id"].as_str().map(str::to_string))
        {
            remove_containers_of(&id);
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(node.path().join("task-files"))
            .output();
    }
    let _ = std::fs::remove_dir_all(root);
}
