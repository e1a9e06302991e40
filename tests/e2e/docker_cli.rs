//! Compatibility suite: the real `docker` CLI against a swarm-rs cluster of one manager and
//! one worker running real containers. Each command's exit code and output (columns, counts,
//! states) are checked as they would be against Docker Swarm.
//!
//! The tests share one cluster ([`docker_pair`]), one at a time: each starts from two ready
//! nodes and no services, and leaves the cluster so.
//!
//! The suite fails when the docker binary is missing; `SWARM_SKIP_DOCKER_CLI_TESTS=1` is the
//! only way to skip it.

use std::path::Path;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use crate::support::Cluster;
use crate::support::LineStream;
use crate::support::eventually;
use crate::support::header;
use crate::support::is_swarm_id;
use crate::support::now_secs;
use crate::support::rows;
use crate::support::shared::DockerPair;
use crate::support::shared::docker_pair;

const IMAGE: &str = "swarm-test/busybox:latest";

/// None when the suite is skipped on purpose; panics when docker is missing.
pub(crate) fn docker_available() -> Option<()> {
    if std::env::var("SWARM_SKIP_DOCKER_CLI_TESTS").as_deref() == Ok("1") {
        eprintln!("SWARM_SKIP_DOCKER_CLI_TESTS=1: skipping the docker CLI compatibility suite");
        return None;
    }
    let out = Command::new("docker").arg("--version").output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        _ => panic!(
            "the docker CLI is required by the compatibility suite and was not found or does not run \
             (install it, or set SWARM_SKIP_DOCKER_CLI_TESTS=1 to skip this suite)"
        ),
    }
}

/// The docker CLI pointed at one node's API socket, with its own empty config.
pub(crate) struct Docker {
    host: String,
    config: tempfile::TempDir,
}

impl Docker {
    pub(crate) fn new(c: &Cluster, i: usize) -> Self {
        Self {
            host: c.nodes[i].host(),
            config: tempfile::tempdir().expect("docker config dir"),
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .stdin(Stdio::null());
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run docker")
    }

    pub(crate) fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(args).current_dir(dir).output().expect("run docker")
    }

    /// Runs and asserts success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts exit code 1 with `needle` on stderr.
    fn fails(&self, args: &[&str], needle: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "docker {} should fail; stdout: {} stderr: {err}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            err.contains(needle),
            "docker {}: expected {needle:?} in {err:?}",
            args.join(" ")
        );
    }

    /// A streaming command (events, logs -f), killed when dropped.
    fn stream(&self, args: &[&str]) -> LineStream {
        let mut cmd = self.command(args);
        cmd.stderr(Stdio::null());
        LineStream::spawn(cmd)
    }
}

/// The shared pair with both nodes ready, and the docker CLI pointed at the manager.
async fn pair() -> (tokio::sync::MutexGuard<'static, DockerPair>, Docker) {
    let pair = docker_pair().await;
    let d = Docker::new(&pair.cluster, pair.m1);
    wait_nodes_ready(&d, 2).await;
    (pair, d)
}

async fn wait_nodes_ready(d: &Docker, n: usize) {
    eventually("every node ready", Duration::from_secs(60), || async {
        let out = d.ok(&["node", "ls"]);
        let r = rows(&out);
        (r.len() == n && r.iter().all(|row| row.iter().any(|c| c == "Ready"))).then_some(())
    })
    .await;
}

/// Removes services; their containers stop in the background (a `sleep` as PID 1 ignores
/// SIGTERM, so that takes the grace period), under names no other test uses.
fn remove_services(d: &Docker, names: &[&str]) {
    let mut args = vec!["service", "rm"];
    args.extend_from_slice(names);
    let out = d.ok(&args);
    assert_eq!(out.lines().collect::<Vec<_>>(), names, "{out}");
}

/// Creates a service of `replicas` sleeping tasks, with `extra` flags, and waits until they all
/// run. They stop within a second (a `sleep` as PID 1 ignores SIGTERM and waits out the grace
/// period).
async fn run_service(d: &Docker, name: &str, replicas: usize, extra: &[&str]) {
    let count = replicas.to_string();
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        &count,
        "--stop-grace-period",
        "1s",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "sleep", "3600"]);
    d.ok(&args);
    wait_replicas(d, name, &format!("{replicas}/{replicas}")).await;
}

/// Waits until `service ls` shows `replicas` (e.g. `3/3`) for `service`.
async fn wait_replicas(d: &Docker, service: &str, replicas: &str) {
    eventually(&format!("{service} at {replicas}"), Duration::from_secs(90), || async {
        let ls = d.ok(&["service", "ls", "--filter", &format!("name={service}")]);
        rows(&ls)
            .iter()
            .any(|row| row[1] == service && row[3] == replicas)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn version_and_info_describe_the_swarm() {
    let Some(()) = docker_available() else { return };
    let (pair, d) = pair().await;
    let m1_id = pair.cluster.node_id(pair.m1);
    let version = d.ok(&["version"]);
    assert!(version.contains("Server:"), "{version}");
    assert!(
        version.contains("API version:") && version.contains("1.47"),
        "{version}"
    );
    let info = d.ok(&["info"]);
    for needle in [
        "Swarm: active",
        &format!("NodeID: {m1_id}"),
        "Is Manager: true",
        "Managers: 1",
        "Nodes: 2",
        "Task History Retention Limit: 5",
    ] {
        assert!(info.contains(needle), "docker info lacks {needle:?}:\n{info}");
    }
    let swarm = d.ok(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Managers}} {{.Swarm.Nodes}}",
    ]);
    assert_eq!(swarm.trim(), "active true 1 2");
}

#[tokio::test(flavor = "multi_thread")]
async fn join_tokens_show_rotate_and_init_or_join_are_refused() {
    let Some(()) = docker_available() else { return };
    let (pair, d) = pair().await;
    let c = &pair.cluster;
    let worker_token = d.ok(&["swarm", "join-token", "-q", "worker"]).trim().to_string();
    assert_eq!(worker_token, c.token(pair.m1, "worker"));
    assert!(worker_token.starts_with("SWMTKN-1-"), "{worker_token}");
    let manager_token = d.ok(&["swarm", "join-token", "-q", "manager"]).trim().to_string();
    assert_ne!(manager_token, worker_token);
    let text = d.ok(&["swarm", "join-token", "worker"]);
    assert!(
        text.contains("To add a worker to this swarm, run the following command:"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "docker swarm join --token {worker_token} {}",
            c.nodes[pair.m1].addr
        )),
        "{text}"
    );
    let rotated = d.ok(&["swarm", "join-token", "--rotate", "worker"]);
    assert!(rotated.contains("Successfully rotated worker join token."), "{rotated}");
    let new_worker = d.ok(&["swarm", "join-token", "-q", "worker"]).trim().to_string();
    assert_ne!(new_worker, worker_token, "--rotate gives a new worker token");
    assert_eq!(d.ok(&["swarm", "join-token", "-q", "manager"]).trim(), manager_token);
    d.fails(&["swarm", "init"], "This node is already part of a swarm.");
    d.fails(
        &["swarm", "join", "--token", &new_worker, "127.0.0.1:2377"],
        "This node is already part of a swarm.",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swarm_update_sets_the_task_history_limit() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    assert!(
        d.ok(&["swarm", "update", "--task-history-limit", "3"])
            .contains("Swarm updated.")
    );
    let info = d.ok(&["info"]);
    assert!(info.contains("Task History Retention Limit: 3"), "{info}");
    d.ok(&["swarm", "update", "--task-history-limit", "5"]);
    let info = d.ok(&["info"]);
    assert!(info.contains("Task History Retention Limit: 5"), "{info}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_ls_and_inspect_show_both_nodes() {
    let Some(()) = docker_available() else { return };
    let (pair, d) = pair().await;
    let m1_id = pair.cluster.node_id(pair.m1);
    let w1_id = pair.cluster.node_id(pair.w1);
    let ls = d.ok(&["node", "ls"]);
    assert_eq!(
        header(&ls),
        [
            "ID",
            "HOSTNAME",
            "STATUS",
            "AVAILABILITY",
            "MANAGER STATUS",
            "ENGINE VERSION"
        ]
    );
    let r = rows(&ls);
    assert_eq!(r.len(), 2, "{ls}");
    let m1_row = r.iter().find(|row| row[0].starts_with(&m1_id)).expect("m1 row");
    assert_eq!(m1_row[0], format!("{m1_id} *"), "the local node is marked with *: {ls}");
    assert_eq!(&m1_row[1..5], ["m1", "Ready", "Active", "Leader"], "{ls}");
    let w1_row = r.iter().find(|row| row[0] == w1_id).expect("w1 row");
    assert_eq!(&w1_row[1..4], ["w1", "Ready", "Active"], "{ls}");
    assert!(!w1_row.iter().any(|c| c == "Leader" || c == "Reachable"), "{ls}");
    assert_eq!(d.ok(&["node", "ls", "-q"]).lines().count(), 2);
    let managers = d.ok(&["node", "ls", "--filter", "role=manager", "-q"]);
    assert_eq!(managers.trim(), m1_id);
    assert_eq!(
        d.ok(&[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.ID}} {{.Description.Hostname}} {{.Spec.Role}}"
        ])
        .trim(),
        format!("{m1_id} m1 manager")
    );
    let pretty = d.ok(&["node", "inspect", "--pretty", "w1"]);
    for needle in [
        "ID:",
        "Hostname:",
        "w1",
        "Status:",
        "State:",
        "Ready",
        "Availability:",
        "Active",
    ] {
        assert!(
            pretty.contains(needle),
            "node inspect --pretty lacks {needle:?}:\n{pretty}"
        );
    }
    d.fails(&["node", "inspect", "nosuchnode"], "node nosuchnode not found");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_update_changes_availability_and_labels() {
    let Some(()) = docker_available() else { return };
    let (pair, d) = pair().await;
    let w1_id = pair.cluster.node_id(pair.w1);
    assert_eq!(d.ok(&["node", "update", "--availability", "drain", "w1"]).trim(), "w1");
    assert_eq!(
        d.ok(&["node", "inspect", "w1", "--format", "{{.Spec.Availability}}"])
            .trim(),
        "drain"
    );
    assert!(
        rows(&d.ok(&["node", "ls"]))
            .iter()
            .any(|row| row[0] == w1_id && row.contains(&"Drain".to_string()))
    );
    d.ok(&[
        "node",
        "update",
        "--availability",
        "active",
        "--label-add",
        "zone=a",
        "--label-add",
        "disk=ssd",
        "w1",
    ]);
    d.ok(&["node", "update", "--label-rm", "disk", "w1"]);
    assert_eq!(
        d.ok(&[
            "node",
            "inspect",
            "w1",
            "--format",
            "{{.Spec.Availability}} {{json .Spec.Labels}}"
        ])
        .trim(),
        r#"active {"zone":"a"}"#
    );
    d.fails(
        &["node", "update", "--availability", "sideways", "w1"],
        "Availability: unknown variant `sideways`, expected one of `active`, `pause`, `drain`",
    );
    d.ok(&["node", "update", "--label-rm", "zone", "w1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_promote_and_demote_switch_a_workers_role() {
    let Some(()) = docker_available() else { return };
    let (pair, d) = pair().await;
    let c = &pair.cluster;
    let m1_id = c.node_id(pair.m1);
    let w1_id = c.node_id(pair.w1);
    let out = d.ok(&["node", "promote", "w1"]);
    assert!(out.contains("Node w1 promoted to a manager in the swarm."), "{out}");
    eventually("w1 a reachable manager", Duration::from_secs(90), || async {
        let ls = d.ok(&["node", "ls"]);
        rows(&ls)
            .iter()
            .any(|row| row[0] == w1_id && row.contains(&"Reachable".to_string()) && row.contains(&"Ready".to_string()))
            .then_some(())
    })
    .await;
    let out = d.ok(&["node", "promote", "w1"]);
    assert!(out.contains(&format!("Node {w1_id} is already a manager.")), "{out}");
    let out = d.ok(&["node", "demote", "w1"]);
    assert!(out.contains("Manager w1 demoted in the swarm."), "{out}");
    eventually("w1 a worker again", Duration::from_secs(90), || async {
        let ls = d.ok(&["node", "ls"]);
        let r = rows(&ls);
        let w = r.iter().find(|row| row[0] == w1_id)?;
        (w[1..4] == ["w1", "Ready", "Active"] && !w.iter().any(|c| c == "Reachable")).then_some(())
    })
    .await;
    // The managers record the demotion before w1 has restarted as a worker; wait for w1 itself.
    let w1_api = Docker::new(c, pair.w1);
    eventually("w1 itself no longer a manager", Duration::from_secs(90), || async {
        let out = w1_api.run(&["node", "ls"]);
        let refused = String::from_utf8_lossy(&out.stderr).contains("This node is not a swarm manager.");
        (!out.status.success() && refused).then_some(())
    })
    .await;
    assert_eq!(d.ok(&["node", "ls", "--filter", "role=manager", "-q"]).trim(), m1_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_ps_lists_each_nodes_tasks() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "nodeps",
        "--replicas",
        "2",
        IMAGE,
        "sleep",
        "3600",
    ]);
    eventually("2 running tasks", Duration::from_secs(60), || async {
        let ps = d.ok(&[
            "service",
            "ps",
            "nodeps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ]);
        (ps.lines().filter(|state| state.starts_with("Running")).count() == 2).then_some(())
    })
    .await;
    let ps_all: usize = ["m1", "w1"]
        .iter()
        .map(|n| {
            let out = d.ok(&["node", "ps", n]);
            assert_eq!(
                header(&out),
                [
                    "ID",
                    "NAME",
                    "IMAGE",
                    "NODE",
                    "DESIRED STATE",
                    "CURRENT STATE",
                    "ERROR",
                    "PORTS"
                ]
            );
            let r = rows(&out);
            assert!(
                r.iter().all(|row| row[3] == *n),
                "node ps {n} shows only {n}'s tasks:\n{out}"
            );
            r.iter().filter(|row| row[1].starts_with("nodeps.")).count()
        })
        .sum();
    let listing = d.ok(&["service", "ps", "nodeps"]);
    assert_eq!(ps_all, 2, "the two tasks are on m1 or w1:\n{listing}");
    let self_ps = d.ok(&["node", "ps", "self"]);
    assert!(rows(&self_ps).iter().all(|row| row[3] == "m1"), "{self_ps}");
    remove_services(&d, &["nodeps"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_rm_refuses_a_live_node_unless_forced() {
    let Some(()) = docker_available() else { return };
    let (mut pair, d) = pair().await;
    let m1 = pair.m1;
    let token = pair.cluster.token(m1, "worker");
    let w2 = pair.cluster.join("w2", &token, m1);
    let w2_id = pair.cluster.node_id(w2);
    wait_nodes_ready(&d, 3).await;
    d.fails(&["node", "rm", "w2"], "is not down and can't be removed");
    assert_eq!(d.ok(&["node", "rm", "--force", "w2"]).trim(), "w2");
    pair.cluster.kill(w2);
    let left = d.ok(&["node", "ls", "-q"]);
    assert!(!left.contains(&w2_id), "{left}");
    assert_eq!(left.lines().count(), 2);
    d.fails(&["node", "rm", "nosuchnode"], "node nosuchnode not found");
    d.fails(
        &["node", "rm", "m1"],
        "is a cluster manager and is a member of the raft cluster",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swarm_leave_is_refused_to_the_last_manager_and_empties_a_worker() {
    let Some(()) = docker_available() else { return };
    let (mut pair, d) = pair().await;
    d.fails(
        &["swarm", "leave"],
        "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm.",
    );
    Docker::new(&pair.cluster, pair.w1).fails(&["node", "ls"], "This node is not a swarm manager.");
    // A worker of its own leaves, so that the shared pair stays whole.
    let m1 = pair.m1;
    let token = pair.cluster.token(m1, "worker");
    let w3 = pair.cluster.join("w3", &token, m1);
    let w3_id = pair.cluster.node_id(w3);
    wait_nodes_ready(&d, 3).await;
    // A container of w3's that leaving must remove.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "onw3",
        "--constraint",
        "node.hostname==w3",
        IMAGE,
        "sleep",
        "3600",
    ]);
    eventually("a container on w3", Duration::from_secs(60), || async {
        let ps = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.swarm.node.id={w3_id}"),
            ])
            .output()
            .ok()?;
        (!String::from_utf8_lossy(&ps.stdout).trim().is_empty()).then_some(())
    })
    .await;
    let on_w3 = Docker::new(&pair.cluster, w3);
    assert_eq!(on_w3.ok(&["swarm", "leave"]).trim(), "Node left the swarm.");
    let status = pair
        .cluster
        .wait_exit(w3, Duration::from_secs(60))
        .expect("w3 exits after leaving");
    assert!(status.success(), "w3 exited with {status}");
    let left = std::fs::read_dir(&pair.cluster.nodes[w3].data_dir)
        .map(|d| d.flatten().count())
        .unwrap_or(usize::MAX);
    assert_eq!(left, 0, "the data dir of a node that left is empty");
    let w3_containers = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.swarm.node.id={w3_id}"),
        ])
        .output()
        .expect("docker ps");
    assert_eq!(
        String::from_utf8_lossy(&w3_containers.stdout).trim(),
        "",
        "a node that left removed its containers"
    );
    eventually("w3 down", Duration::from_secs(60), || async {
        let ls = d.ok(&["node", "ls"]);
        rows(&ls)
            .iter()
            .any(|row| row[0] == w3_id && row[2] == "Down")
            .then_some(())
    })
    .await;
    assert_eq!(d.ok(&["node", "rm", "w3"]).trim(), "w3");
    assert_eq!(d.ok(&["info", "--format", "{{.Swarm.Nodes}}"]).trim(), "2");
    d.ok(&["service", "rm", "onw3"]);
}

/// A scratch directory with a secret's and a config's file.
fn object_files() -> tempfile::TempDir {
    let files = tempfile::tempdir().expect("tempdir");
    std::fs::write(files.path().join("secret.txt"), "s3cret").expect("write");
    std::fs::write(files.path().join("app.conf"), "listen 80\n").expect("write");
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_created_listed_inspected_held_and_removed() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    let files = object_files();
    let id = d
        .ok(&[
            "secret",
            "create",
            "--label",
            "team=db",
            "db_pass",
            &files.path().join("secret.txt").to_string_lossy(),
        ])
        .trim()
        .to_string();
    assert!(is_swarm_id(&id), "secret ID {id:?} looks like Swarm's");
    d.fails(
        &[
            "secret",
            "create",
            "db_pass",
            &files.path().join("secret.txt").to_string_lossy(),
        ],
        "db_pass",
    );
    let ls = d.ok(&["secret", "ls"]);
    assert_eq!(header(&ls), ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]);
    let r = rows(&ls);
    assert_eq!(r.len(), 1, "{ls}");
    assert_eq!(r[0][..2], [id.clone(), "db_pass".to_string()]);
    assert_eq!(d.ok(&["secret", "ls", "-q", "--filter", "label=team=db"]).trim(), id);
    assert_eq!(d.ok(&["secret", "ls", "-q", "--filter", "label=team=web"]).trim(), "");
    assert_eq!(
        d.ok(&["secret", "inspect", "db_pass", "--format", "{{.ID}} {{.Spec.Name}}"])
            .trim(),
        format!("{id} db_pass")
    );
    let json = d.ok(&["secret", "inspect", &id[..6]]);
    assert!(
        !json.contains("s3cret") && !json.contains("czNjcmV0"),
        "secret data is never returned: {json}"
    );
    let pretty = d.ok(&["secret", "inspect", "--pretty", "db_pass"]);
    assert!(pretty.contains("Name:") && pretty.contains("db_pass"), "{pretty}");
    d.fails(&["secret", "inspect", "nosuch"], "secret nosuch not found");

    // A service using the secret holds it.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "usesecret",
        "--secret",
        "db_pass",
        IMAGE,
        "sleep",
        "3600",
    ]);
    d.fails(
        &["secret", "rm", "db_pass"],
        "is in use by the following service: usesecret",
    );
    remove_services(&d, &["usesecret"]);
    assert_eq!(d.ok(&["secret", "rm", "db_pass"]).trim(), "db_pass");
    assert_eq!(rows(&d.ok(&["secret", "ls"])).len(), 0);
    d.fails(
        &["service", "create", "-d", "--name", "x", "--secret", "nosuch", IMAGE],
        "nosuch",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configs_are_created_inspected_and_removed() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    let files = object_files();
    let id = d
        .ok(&[
            "config",
            "create",
            "app_conf",
            &files.path().join("app.conf").to_string_lossy(),
        ])
        .trim()
        .to_string();
    assert!(is_swarm_id(&id), "config ID {id:?}");
    let ls = d.ok(&["config", "ls"]);
    assert_eq!(header(&ls), ["ID", "NAME", "CREATED", "UPDATED"]);
    assert_eq!(rows(&ls).len(), 1, "{ls}");
    let pretty = d.ok(&["config", "inspect", "--pretty", "app_conf"]);
    assert!(
        pretty.contains("listen 80"),
        "config data is shown by --pretty: {pretty}"
    );
    assert_eq!(
        d.ok(&["config", "inspect", "app_conf", "--format", "{{.ID}}"]).trim(),
        id
    );
    assert_eq!(d.ok(&["config", "rm", "app_conf"]).trim(), "app_conf");
    d.fails(&["config", "rm", "app_conf"], "config app_conf not found");
}

#[tokio::test(flavor = "multi_thread")]
async fn overlay_networks_are_created_used_and_removed() {
    let Some(()) = docker_available() else { return };
    let (pair, d) = pair().await;
    // The routing mesh's network exists from the start, with the pool's first subnet.
    let ingress = d.ok(&[
        "network",
        "inspect",
        "ingress",
        "--format",
        "{{.Ingress}} {{.Scope}} {{json .IPAM.Config}} {{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
    ]);
    assert_eq!(
        ingress.trim(),
        r#"true swarm [{"Subnet":"10.0.0.0/24","Gateway":"10.0.0.1"}] 4096"#
    );
    let id = d
        .ok(&["network", "create", "-d", "overlay", "--attachable", "backend"])
        .trim()
        .to_string();
    assert!(!id.is_empty());
    d.fails(
        &["network", "create", "-d", "overlay", "backend"],
        "network with name backend already exists",
    );
    let ls = d.ok(&["network", "ls", "--filter", "driver=overlay"]);
    assert_eq!(header(&ls), ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    let r = rows(&ls);
    assert!(r.iter().any(|row| row[1..] == ["backend", "overlay", "swarm"]), "{ls}");
    assert!(r.iter().any(|row| row[1..] == ["ingress", "overlay", "swarm"]), "{ls}");
    assert_eq!(
        d.ok(&[
            "network",
            "inspect",
            "backend",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}} {{.Attachable}}"
        ])
        .trim(),
        "backend overlay swarm true"
    );
    // The network has a subnet of the default pool and its first address as the gateway.
    let ipam = d.ok(&["network", "inspect", "backend", "--format", "{{json .IPAM.Config}}"]);
    let ipam: serde_json::Value = serde_json::from_str(ipam.trim()).expect("IPAM config JSON");
    let subnet = ipam[0]["Subnet"].as_str().unwrap_or_default().to_string();
    assert!(subnet.starts_with("10.") && subnet.ends_with(".0/24"), "{ipam}");
    assert_eq!(ipam[0]["Gateway"], subnet.replace(".0/24", ".1"), "{ipam}");
    d.fails(
        &["network", "create", "-d", "overlay", "--subnet", "10.0.0.0/8", "clash"],
        "network clash: subnet 10.0.0.0/8 overlaps 10.0.",
    );
    d.fails(
        &["network", "create", "-d", "overlay", "--opt", "encrypted=false", "secret-net"],
        "network secret-net: encrypted overlay networks are not supported yet, and swarm-rs will not send their traffic in plaintext",
    );
    d.fails(
        &["network", "create", "-d", "overlay", "--ingress", "mesh2"],
        "network mesh2: an ingress network already exists (ingress)",
    );
    d.fails(
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.77.0.0/16",
            "--gateway",
            "10.77.255.255",
            "badgw",
        ],
        "gateway \"10.77.255.255\" is not a host address of subnet 10.77.0.0/16",
    );
    d.fails(&["network", "inspect", "clash"], "network clash not found");
    run_service(&d, "usesnet", 2, &["--network", "backend", "--publish", "18080:80"]).await;
    check_addresses(&d, &pair, &subnet);
    // With one task on each node, each node hears of the other's task on ingress and backend,
    // and, as the service publishes through the routing mesh, of the other node's own ingress
    // address.
    let nodes: std::collections::BTreeSet<String> = d
        .ok(&["service", "ps", "usesnet", "--format", "{{.Node}}"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        nodes.len(),
        2,
        "the scheduler spreads the two tasks over both nodes: {nodes:?}"
    );
    for i in [pair.m1, pair.w1] {
        eventually("each node has its three overlay peers", Duration::from_secs(30), || {
            let log = pair.cluster.nodes[i].log_text();
            async move { log.contains("overlay peers changed peers=3").then_some(()) }
        })
        .await;
    }
    let target = d.ok(&[
        "service",
        "inspect",
        "usesnet",
        "--format",
        "{{range .Spec.TaskTemplate.Networks}}{{.Target}}{{end}}",
    ]);
    assert!(
        id.starts_with(target.trim()) && !target.trim().is_empty(),
        "network target {target:?} is the ID {id}"
    );
    d.fails(
        &["network", "connect", "backend", "some-container"],
        "swarm-rs runs no standalone containers yet",
    );
    d.fails(
        &["network", "disconnect", "ingress", "some-container"],
        "network ingress not manually attachable",
    );
    d.fails(
        &["network", "rm", "backend"],
        "network backend is in use by service usesnet",
    );
    remove_services(&d, &["usesnet"]);
    assert_eq!(d.ok(&["network", "rm", "backend"]).trim(), "backend");
    d.fails(&["network", "inspect", "backend"], "network backend not found");
    d.fails(
        &["network", "create", "-d", "overlay", "--scope", "local", "x"],
        "network scope \"local\" is not supported",
    );
    d.fails(
        &["network", "create", "-d", "bridge", "y"],
        "network driver \"bridge\" is not supported",
    );
}

/// `usesnet`'s two tasks and its virtual IPs have distinct addresses on `backend` (whose
/// subnet is `subnet`) and on ingress, as `docker inspect` and `network inspect --verbose` show.
fn check_addresses(d: &Docker, pair: &DockerPair, subnet: &str) {
    let prefix = subnet.trim_end_matches("0/24");
    let vips = d.ok(&[
        "service",
        "inspect",
        "usesnet",
        "--format",
        "{{json .Endpoint.VirtualIPs}}",
    ]);
    let vips: serde_json::Value = serde_json::from_str(vips.trim()).expect("VirtualIPs JSON");
    let vip_addrs: Vec<&str> = vips
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["Addr"].as_str())
        .collect();
    assert_eq!(vip_addrs.len(), 2, "one on ingress, one on backend: {vips}");
    assert!(
        vip_addrs[0].starts_with("10.0.0.") && vip_addrs[1].starts_with(prefix),
        "{vips}"
    );
    let mut seen: Vec<String> = vip_addrs.iter().map(|a| a.to_string()).collect();
    for task in d.ok(&["service", "ps", "-q", "usesnet"]).lines() {
        let att = d.ok(&["inspect", "--format", "{{json .NetworksAttachments}}", task.trim()]);
        let att: serde_json::Value = serde_json::from_str(att.trim()).expect("NetworksAttachments JSON");
        let names: Vec<&str> = att
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["Network"]["Spec"]["Name"].as_str())
            .collect();
        assert_eq!(names, ["ingress", "backend"], "{att}");
        for a in att.as_array().into_iter().flatten() {
            let addr = a["Addresses"][0].as_str().unwrap_or_default().to_string();
            assert!(
                addr.ends_with("/24") && !addr.ends_with(".1/24"),
                "not the gateway: {addr}"
            );
            assert!(!seen.contains(&addr), "{addr} given twice: {seen:?}");
            seen.push(addr);
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    let verbose = d.ok(&[
        "network",
        "inspect",
        "--verbose",
        "backend",
        "--format",
        "{{json .Services}}",
    ]);
    let verbose: serde_json::Value = serde_json::from_str(verbose.trim()).expect("Services JSON");
    let svc = &verbose["usesnet"];
    assert_eq!(
        Some(svc["VIP"].as_str().unwrap_or_default()),
        vip_addrs[1].strip_suffix("/24"),
        "{verbose}"
    );
    let ips: Vec<&str> = svc["Tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["EndpointIP"].as_str())
        .collect();
    assert_eq!(ips.len(), 2, "{verbose}");
    assert!(ips.iter().all(|ip| ip.starts_with(prefix)), "{verbose}");
    let out = pair.cluster.ctl(pair.m1, &["network", "rm", "ingress"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("ingress network cannot be removed because service usesnet depends on it"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_by_type_and_replay_from_history() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    let files = object_files();
    // History is asked for by the second: start on a fresh one, after the previous test's events.
    let start = now_secs() + 1;
    while now_secs() < start {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let services = d.stream(&[
        "events",
        "--filter",
        "type=service",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let nodes = d.stream(&[
        "events",
        "--filter",
        "type=node",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    // Let both subscribe before anything happens.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let secret = files.path().join("secret.txt");
    d.ok(&["secret", "create", "ev_secret", &secret.to_string_lossy()]);
    d.ok(&["secret", "rm", "ev_secret"]);
    let conf = files.path().join("app.conf");
    d.ok(&["config", "create", "ev_conf", &conf.to_string_lossy()]);
    d.ok(&["config", "rm", "ev_conf"]);
    d.ok(&["service", "create", "-d", "--name", "ev_svc", "--replicas", "0", IMAGE]);
    d.ok(&["service", "rm", "ev_svc"]);
    d.ok(&["node", "update", "--label-add", "e=1", "m1"]);
    d.ok(&["node", "update", "--label-rm", "e", "m1"]);
    let seen = services.until(Duration::from_secs(30), "service create and remove events", |l| {
        l.iter().any(|x| x == "service create ev_svc") && l.iter().any(|x| x == "service remove ev_svc")
    });
    assert!(
        seen.iter().all(|l| l.starts_with("service ")),
        "only service events pass the filter: {seen:?}"
    );
    let seen = nodes.until(Duration::from_secs(30), "a node update event", |l| {
        l.iter().any(|x| x == "node update m1")
    });
    assert!(seen.iter().all(|l| l.starts_with("node ")), "{seen:?}");
    let until = now_secs() + 1;
    let history = d.ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=secret",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines,
        ["secret create ev_secret", "secret remove ev_secret"],
        "{history}"
    );
    let created = d.ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=config",
        "--filter",
        "event=create",
    ]);
    assert_eq!(created.lines().count(), 1, "{created}");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_create_waits_for_convergence_and_shows_in_ls_ps_inspect() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    let out = d.run(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        IMAGE,
        "sleep",
        "3600",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout.lines().next().unwrap_or_default().trim().to_string();
    assert!(is_swarm_id(&id), "the first line is the service ID: {stdout}");
    // docker names the service by the ID create returned, as it does against Swarm.
    assert!(
        stdout.trim_end().ends_with(&format!("verify: Service {id} converged")),
        "{stdout}"
    );
    assert!(stdout.contains("overall progress: 3 out of 3 tasks"), "{stdout}");

    let ls = d.ok(&["service", "ls"]);
    assert_eq!(header(&ls), ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]);
    assert_eq!(
        rows(&ls),
        [[
            id[..12].to_string(),
            "web".into(),
            "replicated".into(),
            "3/3".into(),
            IMAGE.into()
        ]]
    );
    let ps = d.ok(&["service", "ps", "web"]);
    assert_eq!(
        header(&ps),
        [
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
            "PORTS"
        ]
    );
    let r = rows(&ps);
    let mut names: Vec<&str> = r.iter().map(|row| row[1].as_str()).collect();
    names.sort();
    assert_eq!(names, ["web.1", "web.2", "web.3"], "{ps}");
    for row in &r {
        assert!(row[3] == "m1" || row[3] == "w1", "{ps}");
        assert_eq!(row[4], "Running", "{ps}");
        assert!(row[5].starts_with("Running "), "{ps}");
    }
    assert_eq!(d.ok(&["service", "ps", "-q", &id[..8]]).lines().count(), 3);
    assert_eq!(
        d.ok(&["service", "inspect", "web", "--format", "{{.ID}} {{.Spec.Mode.Replicated.Replicas}} {{.Spec.UpdateConfig.Parallelism}} {{.Spec.TaskTemplate.ContainerSpec.StopGracePeriod}}"])
            .trim(),
        format!("{id} 3 1 10s"),
        "inspect fills in Swarm's defaults"
    );
    let pretty = d.ok(&["service", "inspect", "--pretty", "web"]);
    for needle in [
        "ID:",
        &id,
        "Name:",
        "web",
        "Replicated",
        "Replicas:",
        "3",
        "Image:",
        IMAGE,
        "Args:",
        "sleep 3600",
    ] {
        assert!(
            pretty.contains(needle),
            "service inspect --pretty lacks {needle:?}:\n{pretty}"
        );
    }
    d.fails(&["service", "inspect", "nosuch"], "no such service: nosuch");
    d.fails(&["service", "ps", "nosuch"], "no such service: nosuch");
    assert_eq!(container_ids("web").len(), 3);
    remove_services(&d, &["web"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_scale_keeps_the_running_tasks() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    run_service(&d, "scaled", 3, &[]).await;
    let before = container_ids("scaled");
    assert_eq!(before.len(), 3);
    let out = d.ok(&["service", "scale", "scaled=5"]);
    assert!(out.contains("scaled scaled to 5"), "{out}");
    assert!(
        out.replace('\r', "\n").contains("verify: Service scaled converged"),
        "{out}"
    );
    let ls = d.ok(&["service", "ls", "--filter", "name=scaled"]);
    assert_eq!(rows(&ls)[0][3], "5/5", "{ls}");
    let after = container_ids("scaled");
    assert_eq!(after.len(), 5);
    assert!(before.iter().all(|c| after.contains(c)), "scaling up restarted nothing");
    remove_services(&d, &["scaled"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_update_replaces_every_task_and_rollback_restores() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    // Short monitor periods: the test is about what docker shows, not how long Swarm watches.
    run_service(&d, "upd", 3, &["--update-monitor", "1s", "--rollback-monitor", "1s"]).await;
    let before = container_ids("upd");
    let out = d.ok(&[
        "service",
        "update",
        "--env-add",
        "STAGE=2",
        "--update-parallelism",
        "3",
        "upd",
    ]);
    let out = out.replace('\r', "\n");
    assert!(out.starts_with("upd\n"), "{out}");
    assert!(out.contains("verify: Service upd converged"), "{out}");
    wait_inspect(
        &d,
        "upd",
        "{{.Spec.TaskTemplate.ContainerSpec.Env}} {{.UpdateStatus.State}}",
        "[STAGE=2] completed",
    )
    .await;
    let updated = container_ids("upd");
    assert_eq!(
        updated.len(),
        before.len(),
        "as many running containers after the update"
    );
    assert!(
        updated.iter().all(|c| !before.contains(c)),
        "the update replaced every task"
    );
    let out = d.ok(&["service", "rollback", "upd"]).replace('\r', "\n");
    assert!(out.contains("rollback: manually requested rollback"), "{out}");
    assert!(out.contains("verify: Service upd converged"), "{out}");
    wait_inspect(
        &d,
        "upd",
        "{{.Spec.TaskTemplate.ContainerSpec.Env}} {{.UpdateStatus.State}}",
        "[] rollback_completed",
    )
    .await;
    remove_services(&d, &["upd"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_to_a_missing_image_rolls_back_by_itself() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    run_service(&d, "badimg", 2, &["--update-monitor", "1s", "--rollback-monitor", "1s"]).await;
    let out = d.run(&[
        "service",
        "update",
        "--image",
        "swarm-test/nosuchimage:missing",
        "--update-failure-action",
        "rollback",
        "badimg",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(
        stdout.contains("rollback: update rolled back due to failure or early termination of task"),
        "docker reports the rollback: {stdout}"
    );
    assert!(stdout.contains("verify: Service badimg converged"), "{stdout}");
    wait_inspect(
        &d,
        "badimg",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.UpdateStatus.State}}",
        &format!("{IMAGE} rollback_completed"),
    )
    .await;
    let ps = d.ok(&["service", "ps", "badimg", "--filter", "desired-state=shutdown"]);
    assert!(
        ps.contains("swarm-test/nosuchimage:missing"),
        "the failed task stays in history: {ps}"
    );
    remove_services(&d, &["badimg"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_service_runs_once_per_node_and_ports_are_published() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    let out = d.ok(&[
        "service", "create", "--mode", "global", "--name", "agent", IMAGE, "sleep", "3600",
    ]);
    assert!(out.replace('\r', "\n").contains("converged"), "{out}");
    let ps = d.ok(&["service", "ps", "agent"]);
    let mut nodes: Vec<String> = rows(&ps).iter().map(|r| r[3].clone()).collect();
    nodes.sort();
    assert_eq!(nodes, ["m1", "w1"], "one global task per node: {ps}");
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "pub",
        "--replicas",
        "0",
        "-p",
        "8080:80",
        "-p",
        "9000",
        IMAGE,
    ]);
    let ls = d.ok(&["service", "ls", "--filter", "mode=global"]);
    assert_eq!(rows(&ls).len(), 1);
    assert_eq!(rows(&ls)[0][3], "2/2", "{ls}");
    let ls = d.ok(&["service", "ls", "--filter", "name=pub"]);
    let row = &rows(&ls)[0];
    assert_eq!(row[3], "0/0", "{ls}");
    assert_eq!(
        row[5], "*:8080->80/tcp, *:30000->9000/tcp",
        "assigned ports are listed: {ls}"
    );
    d.fails(
        &["service", "create", "-d", "--name", "clash", "-p", "8080:81", IMAGE],
        "port '8080' is already in use",
    );
    remove_services(&d, &["agent", "pub"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_logs_show_each_replicas_lines_and_follow() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "talk",
        "--replicas",
        "2",
        IMAGE,
        "sh",
        "-c",
        "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done",
    ]);
    let logs = eventually("3 lines from each replica", Duration::from_secs(60), || async {
        let out = d.ok(&["service", "logs", "talk"]);
        let ok = ["talk.1.", "talk.2."]
            .iter()
            .all(|p| out.lines().filter(|l| l.starts_with(p)).count() >= 3);
        ok.then_some(out)
    })
    .await;
    for l in logs.lines() {
        let (prefix, msg) = l.split_once(" | ").unwrap_or_else(|| panic!("{l:?} has a task prefix"));
        let (name, node) = prefix.trim().split_once('@').expect("prefix is name@node");
        assert!(node == "m1" || node == "w1", "{l}");
        assert!(name.starts_with("talk.1.") || name.starts_with("talk.2."), "{l}");
        assert!(msg.starts_with("line "), "{l}");
    }
    let raw = d.ok(&["service", "logs", "--raw", "talk"]);
    assert!(!raw.trim().is_empty(), "--raw prints the lines");
    assert!(
        raw.lines().all(|l| l.starts_with("line ")),
        "--raw has no prefixes: {raw}"
    );
    let ts = d.ok(&["service", "logs", "--timestamps", "--tail", "1", "talk"]);
    let ts_lines: Vec<&str> = ts.lines().collect();
    assert_eq!(ts_lines.len(), 2, "--tail 1 gives one line per task: {ts}");
    for l in &ts_lines {
        let stamp = l.split(' ').next().unwrap_or_default();
        assert!(stamp.len() > 20 && stamp.contains('T') && stamp.ends_with('Z'), "{l}");
    }
    let none = d.ok(&["service", "logs", "--since", "2099-01-01T00:00:00Z", "talk"]);
    assert_eq!(none, "", "--since in the future gives nothing");
    // A --since in the past drops the lines before it and keeps the ones after.
    let all = d.ok(&["service", "logs", "--timestamps", "talk"]);
    let mut seconds: Vec<&str> = all.lines().filter_map(|l| l.get(..19)).collect();
    seconds.sort();
    let cut = seconds[seconds.len() / 2];
    assert!(seconds[0] < cut, "the log spans several seconds: {all}");
    let recent = d.ok(&["service", "logs", "--timestamps", "--since", &format!("{cut}Z"), "talk"]);
    assert!(!recent.is_empty(), "lines after --since {cut} are kept");
    assert!(
        recent.lines().all(|l| l.get(..19).is_some_and(|sec| sec >= cut)),
        "--since {cut} drops earlier lines: {recent}"
    );
    let task = d.ok(&["service", "ps", "-q", "--filter", "name=talk.1", "talk"]);
    let task = task.lines().next().unwrap_or_default().trim().to_string();
    let one = d.ok(&["service", "logs", "--tail", "2", &task]);
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(one.lines().all(|l| l.starts_with("talk.1.")), "a task's logs: {one}");
    d.fails(&["service", "logs", "nosuch"], "no such task or service");

    let follow = d.stream(&["service", "logs", "-f", "--tail", "0", "talk"]);
    let streamed = follow.until(Duration::from_secs(30), "followed lines from both replicas", |l| {
        ["talk.1.", "talk.2."]
            .iter()
            .all(|p| l.iter().filter(|x| x.starts_with(p)).count() >= 2)
    });
    assert!(streamed.iter().all(|l| l.contains(" | line ")), "{streamed:?}");
    drop(follow);
    remove_services(&d, &["talk"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_is_deployed_listed_redeployed_and_removed() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token.txt"), "t0ken").expect("write");
    std::fs::write(
        dir.path().join("compose.yml"),
        format!(
            "version: \"3.8\"\nservices:\n  app:\n    image: {IMAGE}\n    command: sleep 3600\n    deploy:\n      replicas: 2\n    \
             networks: [front]\n    secrets: [token]\n  side:\n    image: {IMAGE}\n    command: sleep 3600\nnetworks:\n  front: {{}}\n\
             secrets:\n  token:\n    file: ./token.txt\n"
        ),
    )
    .expect("write compose file");
    let out = d.run_in(dir.path(), &["stack", "deploy", "-c", "compose.yml", "demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "Creating network demo_front",
        "Creating network demo_default",
        "Creating secret demo_token",
        "Creating service demo_app",
        "Creating service demo_side",
    ] {
        assert!(text.contains(needle), "stack deploy lacks {needle:?}:\n{text}");
    }
    let ls = d.ok(&["stack", "ls"]);
    assert_eq!(header(&ls), ["NAME", "SERVICES"]);
    assert_eq!(rows(&ls), [["demo", "2"]]);
    eventually("the stack's 3 tasks running", Duration::from_secs(60), || async {
        let out = d.ok(&["stack", "services", "demo"]);
        let r = rows(&out);
        (r.len() == 2
            && r.iter().any(|row| row[1] == "demo_app" && row[3] == "2/2")
            && r.iter().any(|row| row[1] == "demo_side" && row[3] == "1/1"))
        .then_some(())
    })
    .await;
    let ps = d.ok(&["stack", "ps", "demo"]);
    let mut names: Vec<String> = rows(&ps).iter().map(|r| r[1].clone()).collect();
    names.sort();
    assert_eq!(names, ["demo_app.1", "demo_app.2", "demo_side.1"], "{ps}");
    let redeploy = d.run_in(dir.path(), &["stack", "deploy", "-c", "compose.yml", "demo"]);
    let text = String::from_utf8_lossy(&redeploy.stdout);
    assert!(
        redeploy.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&redeploy.stderr)
    );
    assert!(text.contains("Updating service demo_app"), "{text}");
    let out = d.ok(&["stack", "rm", "demo"]);
    for needle in [
        "Removing service demo_app",
        "Removing service demo_side",
        "Removing secret demo_token",
        "Removing network demo_front",
        "Removing network demo_default",
    ] {
        assert!(out.contains(needle), "stack rm lacks {needle:?}:\n{out}");
    }
    assert_eq!(rows(&d.ok(&["stack", "ls"])).len(), 0);
    assert_eq!(d.ok(&["secret", "ls", "-q"]).trim(), "");
    eventually("the stack's containers removed", Duration::from_secs(60), || async {
        ["demo_app", "demo_side"]
            .iter()
            .all(|s| crate::support::containers_of_service(s).is_empty())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn task_events_stream_and_service_rm_takes_several() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    let tasks = d.stream(&["events", "--filter", "type=task", "--format", "{{.Type}} {{.Action}}"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in ["one", "two"] {
        d.ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--stop-grace-period",
            "1s",
            IMAGE,
            "sleep",
            "3600",
        ]);
    }
    let seen = tasks.until(Duration::from_secs(30), "task events", |l| l.len() >= 3);
    assert!(seen.iter().all(|l| l.starts_with("task ")), "{seen:?}");
    let out = d.ok(&["service", "rm", "one", "two"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two"]);
    d.fails(&["service", "rm", "one"], "service one not found");
    eventually("every container removed", Duration::from_secs(60), || async {
        ["one", "two"]
            .iter()
            .all(|s| crate::support::containers_of_service(s).is_empty())
            .then_some(())
    })
    .await;
    assert_eq!(
        d.ok(&["service", "ls", "-q"]).trim(),
        "",
        "no test left a service behind"
    );
}

/// Swarm's templates are expanded per task on the node: hostname, environment and a mount's
/// source; a template that does not parse rejects the task with a message naming it.
#[tokio::test(flavor = "multi_thread")]
async fn service_templates_are_expanded_per_task() {
    let Some(()) = docker_available() else { return };
    let (_pair, d) = pair().await;
    run_service(
        &d,
        "tmpl",
        1,
        &[
            "--constraint",
            "node.hostname==m1",
            "--hostname",
            "h-{{.Service.Name}}-{{.Task.Slot}}",
            "--env",
            "NODE={{.Node.Hostname}}",
            "--env",
            "WHERE={{.Node.Platform.OS}}/{{.Task.Name}}",
            "--mount",
            "type=volume,source=swarm-e2e-tmpl-{{.Task.Slot}},target=/data",
        ],
    )
    .await;
    let ids = container_ids("tmpl");
    assert_eq!(ids.len(), 1);
    let inspect = |format: &str| {
        let out = Command::new("docker")
            .args(["inspect", "--format", format, &ids[0]])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(inspect("{{.Config.Hostname}}"), "h-tmpl-1");
    let env = inspect("{{json .Config.Env}}");
    assert!(env.contains("\"NODE=m1\""), "{env}");
    let task_name = inspect("{{index .Config.Labels \"com.docker.swarm.task.name\"}}");
    assert!(env.contains(&format!("\"WHERE=linux/{task_name}\"")), "{env}");
    assert_eq!(inspect("{{range .Mounts}}{{.Name}}{{end}}"), "swarm-e2e-tmpl-1");
    remove_services(&d, &["tmpl"]);

    // A template that does not parse: the task is rejected, no container starts.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "badtmpl",
        "--hostname",
        "{{.Service.Nme}}",
        IMAGE,
        "sleep",
        "3600",
    ]);
    let err = eventually("the bad template rejects the task", Duration::from_secs(60), || async {
        let out = d.ok(&[
            "service",
            "ps",
            "badtmpl",
            "--no-trunc",
            "--format",
            "{{.CurrentState}}|{{.Error}}",
        ]);
        out.lines().find(|l| l.starts_with("Rejected")).map(str::to_string)
    })
    .await;
    assert!(err.contains("{{.Service.Nme}}"), "{err}");
    assert!(container_ids("badtmpl").is_empty());
    remove_services(&d, &["badtmpl"]);
    eventually("the tmpl container is gone", Duration::from_secs(60), || async {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", "label=com.docker.swarm.service.name=tmpl"])
            .output()
            .ok()?;
        out.stdout.trim_ascii().is_empty().then_some(())
    })
    .await;
    let _ = Command::new("docker")
        .args(["volume", "rm", "swarm-e2e-tmpl-1"])
        .output();
}

/// Waits for `service inspect --format` to print `expected`. docker stops waiting once the new
/// tasks are stable; the service records the update as completed one Monitor period after its
/// last slot, so the two may be a moment apart.
async fn wait_inspect(d: &Docker, service: &str, format: &str, expected: &str) {
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        last = d
            .ok(&["service", "inspect", service, "--format", format])
            .trim()
            .to_string();
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("service inspect {service}: expected {expected:?}, still {last:?}");
}

/// IDs of the running containers of a service.
fn container_ids(service: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
            "--filter",
            "status=running",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
