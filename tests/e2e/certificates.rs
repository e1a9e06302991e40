//! Node certificates renew in place, and a node whose certificate expired while it was off
//! comes back (issue 15, item 1).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;

use crate::docker_cli::Docker;
use crate::support::Cluster;
use crate::support::container_field;
use crate::support::eventually;
use crate::support::tasks_of;
use crate::support::view::NodeView;
use crate::support::view::TaskView;

/// The test-only lifetime override (docs/security.md); the API keeps Swarm's one-hour minimum.
const EXPIRY_ENV: &str = "SWARMD_TEST_CERT_EXPIRY_SECS";

/// A copy of a node's data dir, without its lock.
fn copy_data_dir(from: &std::path::Path, to: &std::path::Path) {
    let copied = std::process::Command::new("cp")
        .args(["-a"])
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(copied.success());
    let _ = std::fs::remove_file(to.join("lock"));
}

fn node_cert(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.nodes[i].data_dir.join("certs/node.pem")).unwrap_or_default()
}

/// Tasks of `service` as (task ID, container ID, state) as node `i` shows them.
async fn task_table(c: &Cluster, i: usize, service: &str) -> Option<BTreeSet<(String, String, String)>> {
    let tasks = tasks_of(c, i, service).await?;
    Some(
        tasks
            .iter()
            .map(|t| {
                (
                    t.id().to_string(),
                    t.container_id().to_string(),
                    format!("{:?}", t.state()),
                )
            })
            .collect(),
    )
}

fn started_at(container: &str) -> String {
    container_field(container, "{{.State.StartedAt}} {{.RestartCount}}")
}

/// Three managers and a worker whose certificates live 40 seconds run for two minutes while a
/// second service is scaled up and down: every node renews at least twice, and the certificates
/// in use are always valid (a node joins at the end through every manager's listener), yet no
/// task of the steady service is replaced or restarted and raft never elects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_of_40_seconds_renew_under_load_without_restarts_or_elections() {
    let mut c = Cluster::docker();
    c.env.push((EXPIRY_ENV.to_string(), "40".to_string()));
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    let m2 = c.join("m2", &token, m1);
    let m3 = c.join("m3", &token, m1);
    let worker_token = c.token(m1, "worker");
    let w1 = c.join("w1", &worker_token, m1);
    let leader = c.wait_leader(Duration::from_secs(30)).await;

    // The lifetime the API shows is the cluster's; the API refuses less than Swarm's hour.
    let docker = Docker::new(&c, m1);
    docker.ok(&["swarm", "update", "--cert-expiry", "2h"]);
    let info = docker.ok(&["info"]);
    assert!(info.contains("Expiry Duration: 2 hours"), "{info}");
    let short = c.ctl(m1, &["swarm", "update", "--cert-expiry", "30m"]);
    assert!(!short.status.success(), "a lifetime under one hour is refused");

    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "steady",
            "--replicas",
            "4",
            "swarm-test/busybox:latest",
            "sleep",
            "3600",
        ],
    );
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "churn",
            "--replicas",
            "1",
            "swarm-test/busybox:latest",
            "sleep",
            "3600",
        ],
    );
    let steady = eventually("steady runs 4 tasks", Duration::from_secs(60), || {
        let c = &c;
        async move {
            task_table(c, m1, "steady").await.filter(|t| {
                t.len() == 4
                    && t.iter()
                        .all(|(_, container, state)| !container.is_empty() && state == "Running")
            })
        }
    })
    .await;
    let starts: BTreeMap<String, String> = steady.iter().map(|(_, c, _)| (c.clone(), started_at(c))).collect();
    let term = c.raft(leader).await.expect("raft status")["term"].clone();

    let nodes = [m1, m2, m3, w1];
    let mut seen: Vec<BTreeSet<String>> = nodes.iter().map(|&i| BTreeSet::from([node_cert(&c, i)])).collect();
    let until = Instant::now() + Duration::from_secs(120);
    let mut replicas = 1;
    while Instant::now() < until {
        replicas = if replicas == 1 { 3 } else { 1 };
        let via = nodes[replicas % 3];
        let out = c.ctl(via, &["service", "scale", &format!("churn={replicas}"), "-d"]);
        assert!(
            out.status.success(),
            "scaling through {} failed: {}",
            c.nodes[via].name,
            String::from_utf8_lossy(&out.stderr)
        );
        for (k, &i) in nodes.iter().enumerate() {
            seen[k].insert(node_cert(&c, i));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    for (k, &i) in nodes.iter().enumerate() {
        // The first certificate, and at least two renewals.
        assert!(
            seen[k].len() >= 3,
            "{} used {} certificates in 2 minutes of 40-second ones",
            c.nodes[i].name,
            seen[k].len()
        );
        assert!(c.nodes[i].log_text().contains("renewed this node's certificate"));
    }
    for &i in &[m1, m2, m3] {
        let raft = c.raft(i).await.expect("raft status");
        assert_eq!(raft["term"], term, "{} saw an election: {raft}", c.nodes[i].name);
    }
    assert_eq!(
        task_table(&c, m1, "steady").await.expect("steady's tasks"),
        steady,
        "no steady task was replaced"
    );
    for (container, started) in &starts {
        assert_eq!(&started_at(container), started, "container {container} restarted");
    }
    let nodes_now: Vec<Value> = c.nodes[m1].client().get("/nodes").await.expect("nodes");
    assert!(
        nodes_now
            .iter()
            .all(|n| n.node_state() == swarm_model::NodeState::Ready),
        "every node stayed ready: {nodes_now:?}"
    );
    // Every manager's listener presents a valid certificate: a node can join through each, and
    // the worker's agent still reports (its session reconnected with its renewed certificate).
    for (k, &via) in [m1, m2, m3].iter().enumerate() {
        c.join(&format!("late{k}"), &worker_token, via);
    }
    c.ctl_ok(m2, &["service", "scale", "churn=8", "-d"]);
    eventually("churn runs 8 tasks", Duration::from_secs(60), || {
        let c = &c;
        async move {
            task_table(c, m1, "churn")
                .await
                .filter(|t| t.iter().filter(|(_, _, state)| state == "Running").count() == 8)
        }
    })
    .await;
}

/// A worker and its manager are off until their certificates have expired. The manager signs
/// itself a new one from its replica of the CA (in Swarm it could not even start,
/// moby/moby#24132). The worker is told what to do; a copy of its data dir with another key
/// is refused even with the token; with the token and its own key it comes back as the same
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_certificate_expired_while_off_comes_back_only_with_its_old_key() {
    let mut c = Cluster::new();
    c.env.push((EXPIRY_ENV.to_string(), "12".to_string()));
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "worker");
    let w1 = c.join("w1", &token, m1);
    let worker_id = c.node_id(w1);
    // Its data dir as first issued: a genuine key, but not the newest once it has renewed.
    let stale_dir = c.root.path().join("stale");
    copy_data_dir(&c.nodes[w1].data_dir, &stale_dir);
    let key_of = |c: &Cluster| {
        let client = c.nodes[m1].client();
        let id = worker_id.clone();
        async move {
            let node: Value = client.get(&format!("/nodes/{id}")).await.ok()?;
            node["SwarmRsCertificateKey"].as_str().map(str::to_string)
        }
    };
    let first_key = eventually("the worker's key is recorded", Duration::from_secs(10), || key_of(&c)).await;
    eventually("the worker uses a renewed certificate", Duration::from_secs(60), || {
        let (c, first) = (&c, first_key.clone());
        async move { key_of(c).await.filter(|k| *k != first) }
    })
    .await;
    c.stop(w1);
    c.stop(m1);
    tokio::time::sleep(Duration::from_secs(14)).await;

    // The manager renews itself.
    let before = c.nodes[m1].log_text().len();
    c.restart(m1);
    eventually(
        "the manager renewed its own certificate",
        Duration::from_secs(30),
        || {
            let text = c.nodes[m1].log_text();
            async move {
                let since_restart = text.get(before..).unwrap_or_default();
                (since_restart.contains("expired while it was off")
                    && since_restart.contains("renewed this node's certificate"))
                .then_some(())
            }
        },
    )
    .await;

    // The worker without a token: a message that says what to do.
    let before = c.nodes[w1].log_text().len();
    c.start_run_as("w1", &[]);
    let status = c.wait_exit(w1, Duration::from_secs(20)).expect("the worker stops");
    assert!(!status.success());
    let log = c.nodes[w1].log_text();
    let log = log.get(before..).unwrap_or_default();
    assert!(log.contains("expired at") && log.contains("--rejoin-token"), "{log}");

    // A token alone does not take over the node: a copy of its data dir with another key.
    let thief_dir = c.root.path().join("thief");
    copy_data_dir(&c.nodes[w1].data_dir, &thief_dir);
    std::fs::copy(
        c.nodes[m1].data_dir.join("certs/node.key"),
        thief_dir.join("certs/node.key"),
    )
    .expect("another key");
    let thief = c.start_run_as("thief", &["--rejoin-token", &token]);
    let status = c.wait_exit(thief, Duration::from_secs(30)).expect("the thief stops");
    assert!(!status.success());
    let log = c.nodes[thief].log_text();
    assert!(log.contains("not signed by the key of the node's certificate"), "{log}");

    // Nor does the key of an earlier certificate of the node, from a backup, say.
    let stale = c.start_run_as("stale", &["--rejoin-token", &token]);
    let status = c
        .wait_exit(stale, Duration::from_secs(30))
        .expect("the stale copy stops");
    assert!(!status.success());
    let log = c.nodes[stale].log_text();
    assert!(log.contains("is not node") && log.contains("newest"), "{log}");

    // With the token and its own key, the worker is back under its node ID.
    c.start_run_as("w1", &["--rejoin-token", &token]);
    c.wait_api(w1);
    assert_eq!(c.node_id(w1), worker_id);
    eventually("the worker is ready again", Duration::from_secs(30), || {
        let client = c.nodes[m1].client();
        let id = worker_id.clone();
        async move {
            let node: Value = client.get(&format!("/nodes/{id}")).await.ok()?;
            (node.node_state() == swarm_model::NodeState::Ready).then_some(())
        }
    })
    .await;
    let nodes: Vec<Value> = c.nodes[m1].client().get("/nodes").await.expect("nodes");
    assert_eq!(nodes.len(), 2, "no new node was created: {nodes:?}");
}
