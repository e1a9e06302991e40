//! Raft state is encrypted at rest, and autolock keeps a restarted manager out of the cluster
//! until it gets the unlock key (issue 15, item 4), driven by the real docker CLI.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::docker_cli::Docker;
use crate::docker_cli::docker_available;
use crate::support::Cluster;
use crate::support::SWARMCTL;
use crate::support::eventually;

const SECRET: &[u8] = b"autolock-e2e-secret-value-4f9c";

/// Every byte of every file under `dir`.
fn bytes_under(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                all.extend(bytes);
            }
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The unlock key in what `docker swarm update --autolock` or `unlock-key` printed.
fn key_in(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no unlock key in {text:?}"))
        .to_string()
}

fn sealed_key_file(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.nodes[i].data_dir.join("raft/data-key.json")).unwrap_or_default()
}

fn node_key(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.nodes[i].data_dir.join("certs/node.key")).unwrap_or_default()
}

fn node_cert(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.nodes[i].data_dir.join("certs/node.pem")).unwrap_or_default()
}

/// The admin commands, through the docker CLI unless the suite is skipped on purpose, then
/// through swarmctl (same API).
struct Admin {
    docker: Vec<Option<Docker>>,
}

impl Admin {
    fn run(&self, c: &Cluster, i: usize, docker: &[&str], ctl: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = match &self.docker[i] {
            Some(d) => d.command(docker),
            None => {
                let mut cmd = Command::new(SWARMCTL);
                cmd.args(["-H", &c.nodes[i].host()]).args(ctl);
                cmd
            }
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run the CLI");
        if let Some(input) = stdin {
            let _ = child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{input}\n").as_bytes());
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("CLI output")
    }

    fn ok(&self, c: &Cluster, i: usize, docker: &[&str], ctl: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(c, i, docker, ctl, stdin);
        assert!(
            out.status.success(),
            "{docker:?} on node {i} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, c: &Cluster, i: usize, docker: &[&str], ctl: &[&str], stdin: Option<&str>, needle: &str) {
        let out = self.run(c, i, docker, ctl, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{docker:?} on node {i} should fail");
        assert!(err.contains(needle), "{docker:?}: expected {needle:?} in {err:?}");
    }
}

/// Waits until `holds` is true of the files of each of `nodes`.
async fn wait_files(c: &Cluster, nodes: &[usize], what: &str, holds: impl Fn(&Cluster, usize) -> bool) {
    for &i in nodes {
        let holds = &holds;
        eventually(
            what,
            Duration::from_secs(40),
            || async move { holds(c, i).then_some(()) },
        )
        .await;
    }
}

/// Waits until node `i` is up and says it is locked (`/info`'s LocalNodeState).
async fn wait_locked(c: &Cluster, i: usize) {
    eventually(
        "the restarted manager is locked",
        Duration::from_secs(60),
        || async move {
            let info = c.nodes[i].client().get::<Value>("/info").await.ok()?;
            (info["Swarm"]["LocalNodeState"] == "locked").then_some(())
        },
    )
    .await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_state_is_sealed_and_autolocked_managers_wait_for_their_key() {
    let with_docker = docker_available().is_some();
    let mut c = Cluster::new();
    // Short certificates, so that a renewal happens while autolock is on.
    c.env.push(("SWARMD_TEST_CERT_EXPIRY_SECS".into(), "20".into()));
    let m0 = c.init("m0", &["--snapshot-interval", "20"]);
    let token = c.token(m0, "manager");
    let m1 = c.join("m1", &token, m0);
    let m2 = c.join("m2", &token, m0);
    let admin = Admin {
        docker: (0..3).map(|i| with_docker.then(|| Docker::new(&c, i))).collect(),
    };

    // Secrets and the CA key are in raft: the log and snapshots hold them sealed only.
    let secret_file = c.root.path().join("secret.txt");
    std::fs::write(&secret_file, SECRET).unwrap();
    c.ctl_ok(m0, &["secret", "create", "db-password", secret_file.to_str().unwrap()]);
    for n in 0..30 {
        c.ctl_ok(m0, &["network", "create", "--driver", "overlay", &format!("net-{n}")]);
    }
    for i in [m0, m1, m2] {
        let raft_dir = c.nodes[i].data_dir.join("raft");
        let snapshots = std::fs::read_dir(raft_dir.join("snapshots"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(snapshots > 0, "node {i} has taken or received a snapshot");
        let bytes = bytes_under(&raft_dir);
        assert!(
            !contains(&bytes, SECRET),
            "node {i}: the secret is on disk in plain text"
        );
        assert!(
            !contains(&bytes, b"PRIVATE KEY"),
            "node {i}: the CA key is on disk in plain text"
        );
    }

    // Autolock on: every manager's data key gets sealed with the unlock key.
    let out = admin.ok(
        &c,
        m0,
        &["swarm", "update", "--autolock=true"],
        &["swarm", "update", "--autolock", "true"],
        None,
    );
    let key = key_in(&out);
    let shown = admin.ok(
        &c,
        m1,
        &["swarm", "unlock-key", "-q"],
        &["swarm", "unlock-key", "-q"],
        None,
    );
    assert_eq!(shown.trim(), key, "every manager shows the same key");
    let node_key_sealed = |c: &Cluster, i: usize| {
        let key = node_key(c, i);
        key.contains("SEALED NODE KEY") && !key.contains("PRIVATE KEY")
    };
    wait_files(
        &c,
        &[m0, m1, m2],
        "every manager seals its data key and node key",
        |c, i| sealed_key_file(c, i).contains("\"Sealed\"") && node_key_sealed(c, i),
    )
    .await;
    // A certificate renewed under autolock is stored with its key sealed too.
    let cert_before = node_cert(&c, m1);
    wait_files(&c, &[m1], "m1 renews its certificate", |c, i| {
        node_cert(c, i) != cert_before
    })
    .await;
    assert!(
        node_key_sealed(&c, m1),
        "the renewed key is sealed: {}",
        node_key(&c, m1)
    );

    // A restarted manager is locked: it answers /info, and nothing else, until unlocked.
    c.stop(m1);
    c.start_run(m1);
    wait_locked(&c, m1).await;
    if with_docker {
        let info = admin.ok(&c, m1, &["info"], &[], None);
        assert!(info.contains("Swarm: locked"), "{info}");
    }
    admin.fails(
        &c,
        m1,
        &["node", "ls"],
        &["node", "ls"],
        None,
        "Swarm is encrypted and needs to be unlocked",
    );
    let wrong = format!("SWMKEY-1-{}", "A".repeat(43));
    admin.fails(
        &c,
        m1,
        &["swarm", "unlock"],
        &["swarm", "unlock"],
        Some(&wrong),
        "invalid key provided",
    );
    admin.fails(
        &c,
        m1,
        &["swarm", "unlock"],
        &["swarm", "unlock"],
        Some("not-a-key"),
        "SWMKEY-1-",
    );
    let status = c.raft(m0).await.expect("raft status of m0");
    let voters = status["voters"].as_object().map(|v| v.len()).unwrap_or(0);
    assert_eq!(voters, 3, "the locked manager is still a member, just not running raft");
    admin.ok(&c, m1, &["swarm", "unlock"], &["swarm", "unlock"], Some(&key));
    c.wait_api(m1);
    let nodes = admin.ok(&c, m1, &["node", "ls", "-q"], &["node", "ls", "-q"], None);
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    admin.fails(
        &c,
        m1,
        &["swarm", "unlock"],
        &["swarm", "unlock"],
        Some(&key),
        "not locked",
    );

    // Rotation: managers are re-sealed with the new key, and the old one no longer opens them.
    let before = sealed_key_file(&c, m2);
    let out = admin.ok(
        &c,
        m0,
        &["swarm", "unlock-key", "--rotate"],
        &["swarm", "unlock-key", "--rotate"],
        None,
    );
    let rotated = key_in(&out);
    assert_ne!(rotated, key);
    wait_files(&c, &[m2], "m2 is re-sealed with the rotated key", |c, i| {
        sealed_key_file(c, i) != before
    })
    .await;
    c.stop(m2);
    c.start_run(m2);
    wait_locked(&c, m2).await;
    admin.fails(
        &c,
        m2,
        &["swarm", "unlock"],
        &["swarm", "unlock"],
        Some(&key),
        "invalid key provided",
    );
    admin.ok(&c, m2, &["swarm", "unlock"], &["swarm", "unlock"], Some(&rotated));
    c.wait_api(m2);

    // Autolock off: managers are stored unsealed again and restart on their own.
    admin.ok(
        &c,
        m0,
        &["swarm", "update", "--autolock=false"],
        &["swarm", "update", "--autolock", "false"],
        None,
    );
    admin.fails(
        &c,
        m0,
        &["swarm", "unlock-key"],
        &["swarm", "unlock-key"],
        None,
        "no unlock key is set",
    );
    wait_files(&c, &[m0, m1, m2], "every manager stores its keys unsealed", |c, i| {
        sealed_key_file(c, i).contains("\"Key\"") && node_key(c, i).contains("PRIVATE KEY")
    })
    .await;
    c.stop(m0);
    c.restart(m0);
    let secrets = c.ctl_ok(m0, &["secret", "ls", "-q"]);
    assert_eq!(
        secrets.lines().count(),
        1,
        "the secret survived every restart: {secrets}"
    );
    let bytes = bytes_under(&c.nodes[m0].data_dir.join("raft"));
    assert!(!contains(&bytes, SECRET), "still sealed after autolock is off");
}
