//! Orchestration and scheduling with real processes: global services, constraints, spread,
//! max-per-node limits, restart limits, restart delays across a leader change, and jobs. Small
//! cases run real containers; cases needing more than three nodes use simulated ones.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use swarm_model::NodeState;
use swarm_model::TaskState;
use swarm_model::Timestamp;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::tasks_of;
use crate::support::view::NodeView;
use crate::support::view::TaskView;

const IMAGE: &str = "swarm-test/busybox:latest";

/// Node ID → hostname, from node `i`'s view.
async fn hostnames(c: &Cluster, i: usize) -> HashMap<String, String> {
    let nodes: Vec<Value> = c.nodes[i].client().get("/nodes").await.unwrap_or_default();
    nodes
        .iter()
        .map(|n| {
            (
                n["ID"].as_str().unwrap_or_default().to_string(),
                n["Description"]["Hostname"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Hostnames of the nodes running the service's RUNNING tasks (one entry per task).
async fn running_hosts(c: &Cluster, i: usize, service: &str) -> Option<Vec<String>> {
    let tasks = tasks_of(c, i, service).await?;
    let names = hostnames(c, i).await;
    let mut hosts: Vec<String> = tasks
        .iter()
        .filter(|t| t.state() == TaskState::Running && t.desired() == TaskState::Running)
        .map(|t| names.get(t["NodeID"].as_str()?).cloned())
        .collect::<Option<Vec<_>>>()?;
    hosts.sort();
    Some(hosts)
}

async fn wait_ready_nodes(c: &Cluster, i: usize, n: usize) {
    eventually(&format!("{n} ready nodes"), Duration::from_secs(60), || {
        let client = c.nodes[i].client();
        async move {
            let nodes: Vec<Value> = client.get("/nodes").await.ok()?;
            let ready = nodes.iter().filter(|n| n.node_state() == NodeState::Ready).count();
            (ready == n).then_some(())
        }
    })
    .await;
}

/// `docker inspect` times of a service's containers: (started, finished) in Unix nanoseconds.
fn container_times(service: &str) -> Vec<(i128, i128)> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|id| {
            let out = std::process::Command::new("docker")
                .args(["inspect", "-f", "{{.State.StartedAt}} {{.State.FinishedAt}}", id])
                .output()
                .expect("docker inspect");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut parts = text.split_whitespace();
            let mut next = || {
                Timestamp::parse(parts.next().unwrap_or_default())
                    .ok()
                    .and_then(|t| t.unix_nanos())
                    .unwrap_or(0)
            };
            (next(), next())
        })
        .collect()
}

/// A global service runs one task per node; a node that joins gets one; draining a node moves
/// its work off (the global task stops, replicated tasks move). A node that is down can be
/// removed and is refused when it comes back; one that is up cannot be removed without force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_services_follow_the_nodes_and_drain_moves_work_off() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &["--hostname", "m1"]);
    let wt = c.token(m, "worker");
    c.join("w1", &wt, m);
    c.join("w2", &wt, m);
    wait_ready_nodes(&c, m, 3).await;

    tracing_phase("a global service gets one task on each of the 3 nodes");
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "g",
            "--mode",
            "global",
            "--stop-grace-period",
            "1s",
            IMAGE,
            "sleep",
            "3600",
        ],
    );
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "r",
            "--replicas",
            "3",
            "--stop-grace-period",
            "1s",
            IMAGE,
            "sleep",
            "3600",
        ],
    );
    eventually("one g task per node", Duration::from_secs(60), || async {
        let hosts = running_hosts(&c, m, "g").await?;
        (hosts == ["m1", "w1", "w2"]).then_some(())
    })
    .await;

    tracing_phase("a fourth node that joins gets a fourth task");
    let w3 = c.join("w3", &wt, m);
    eventually("a g task on w3 too", Duration::from_secs(60), || async {
        let hosts = running_hosts(&c, m, "g").await?;
        (hosts == ["m1", "w1", "w2", "w3"]).then_some(())
    })
    .await;
    eventually("r runs 3 tasks", Duration::from_secs(60), || async {
        (running_hosts(&c, m, "r").await?.len() == 3).then_some(())
    })
    .await;

    tracing_phase("draining w1 moves its work off");
    c.ctl_ok(m, &["node", "update", "--availability", "drain", "w1"]);
    eventually("nothing runs on w1", Duration::from_secs(60), || async {
        let g = running_hosts(&c, m, "g").await?;
        let r = running_hosts(&c, m, "r").await?;
        (g == ["m1", "w2", "w3"] && r.len() == 3 && !r.contains(&"w1".to_string())).then_some(())
    })
    .await;
    let ls = c.ctl_ok(m, &["node", "ls"]);
    let w1_row = ls.lines().find(|l| l.contains(" w1 ")).expect("w1 in node ls");
    assert!(w1_row.contains("Drain"), "{ls}");

    tracing_phase("a node that is up cannot be removed without force");
    let out = c.ctl(m, &["node", "rm", "w2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not down and can't be removed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    tracing_phase("a node that died can be removed; coming back, it is refused");
    c.kill(w3);
    eventually("w3 is down", Duration::from_secs(30), || {
        let client = c.nodes[m].client();
        async move {
            let nodes: Vec<Value> = client.get("/nodes").await.ok()?;
            nodes
                .iter()
                .any(|n| n["Description"]["Hostname"] == "w3" && n.node_state() == NodeState::Down)
                .then_some(())
        }
    })
    .await;
    c.ctl_ok(m, &["node", "rm", "w3"]);
    let ls = c.ctl_ok(m, &["node", "ls"]);
    assert!(!ls.contains(" w3 "), "{ls}");
    let log_before = c.nodes[w3].log_text().len();
    c.restart(w3);
    eventually("the removed node is refused", Duration::from_secs(30), || {
        let log = c.nodes[w3].log_text();
        async move {
            log[log_before.min(log.len())..]
                .contains("was removed from swarm")
                .then_some(())
        }
    })
    .await;
    eventually(
        "g is back to the two usable nodes left",
        Duration::from_secs(30),
        || async { (running_hosts(&c, m, "g").await? == ["m1", "w2"]).then_some(()) },
    )
    .await;
}

/// Constraints and spread preferences on labelled (simulated) nodes; a label change moves the
/// tasks whose constraint no longer holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_and_spread_follow_node_labels() {
    let mut c = Cluster::new();
    let m = c.init("m1", &["--availability", "drain"]);
    let wt = c.token(m, "worker");
    c.simulate("z", 6, &wt, m);
    wait_ready_nodes(&c, m, 7).await;
    for (node, zone) in [
        ("z-0", "a"),
        ("z-1", "a"),
        ("z-2", "b"),
        ("z-3", "b"),
        ("z-4", "c"),
        ("z-5", "c"),
    ] {
        c.ctl_ok(m, &["node", "update", "--label-add", &format!("zone={zone}"), node]);
    }

    tracing_phase("node.labels.zone==a places tasks in zone a only");
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "only-a",
            "--replicas",
            "4",
            "--constraint",
            "node.labels.zone==a",
            IMAGE,
        ],
    );
    eventually("4 tasks on z-0 and z-1", Duration::from_secs(60), || async {
        let hosts = running_hosts(&c, m, "only-a").await?;
        (hosts == ["z-0", "z-0", "z-1", "z-1"]).then_some(())
    })
    .await;

    tracing_phase("9 replicas spread over zones a/b/c give 3/3/3");
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "spread",
            "--replicas",
            "9",
            "--placement-pref",
            "spread=node.labels.zone",
            IMAGE,
        ],
    );
    let zone_of = |h: &str| match h {
        "z-0" | "z-1" => 'a',
        "z-2" | "z-3" => 'b',
        _ => 'c',
    };
    let per_zone = eventually("9 spread tasks running", Duration::from_secs(60), || async {
        let hosts = running_hosts(&c, m, "spread").await?;
        (hosts.len() == 9).then_some(hosts)
    })
    .await
    .iter()
    .fold(HashMap::new(), |mut acc: HashMap<char, usize>, h| {
        *acc.entry(zone_of(h)).or_default() += 1;
        acc
    });
    assert_eq!(per_zone, HashMap::from([('a', 3), ('b', 3), ('c', 3)]));

    tracing_phase("z-1 leaves zone a: its only-a tasks move to z-0");
    c.ctl_ok(m, &["node", "update", "--label-add", "zone=c", "z-1"]);
    eventually("all only-a tasks on z-0", Duration::from_secs(60), || async {
        let hosts = running_hosts(&c, m, "only-a").await?;
        (hosts == ["z-0", "z-0", "z-0", "z-0"]).then_some(())
    })
    .await;
    let tasks = tasks_of(&c, m, "only-a").await.unwrap();
    assert!(
        tasks
            .iter()
            .any(|t| t.state() == TaskState::Rejected && t.err() == "assigned node no longer meets constraints"),
        "{tasks:?}"
    );
}

/// max_replicas_per_node 1 on 3 nodes with 4 replicas: 3 run, 1 waits with the reason shown on
/// the service; it starts once a fourth node joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_fits_nowhere_waits_with_its_reason_until_a_node_joins() {
    let mut c = Cluster::new();
    let m = c.init("m1", &["--availability", "drain"]);
    let wt = c.token(m, "worker");
    c.simulate("p", 3, &wt, m);
    wait_ready_nodes(&c, m, 4).await;
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "capped",
            "--replicas",
            "4",
            "--replicas-max-per-node",
            "1",
            IMAGE,
        ],
    );
    let pending = eventually("3 running and 1 pending", Duration::from_secs(60), || async {
        let tasks = tasks_of(&c, m, "capped").await?;
        let running = tasks.iter().filter(|t| t.state() == TaskState::Running).count();
        let pending: Vec<&Value> = tasks
            .iter()
            .filter(|t| t.state() == TaskState::Pending && !t.err().is_empty())
            .collect();
        (running == 3 && pending.len() == 1).then(|| pending[0].clone())
    })
    .await;
    let reason = pending["Status"]["Err"].as_str().unwrap();
    assert!(
        reason.starts_with("no suitable node (max replicas per node limit exceed"),
        "{reason}"
    );
    let ls = c.ctl_ok(m, &["service", "ls"]);
    assert!(ls.contains("3/4 (max 1 per node) [1 pending]"), "{ls}");
    let inspect: Value = serde_json::from_str(&c.ctl_ok(m, &["service", "inspect", "capped"])).unwrap();
    assert_eq!(inspect[0]["SchedulingStatus"]["PendingTasks"], 1);
    assert_eq!(inspect[0]["SchedulingStatus"]["Reason"], reason);

    c.simulate("q", 1, &wt, m);
    eventually("4 running once a 4th node joined", Duration::from_secs(60), || async {
        (running_hosts(&c, m, "capped").await?.len() == 4).then_some(())
    })
    .await;
    let ls = c.ctl_ok(m, &["service", "ls"]);
    assert!(ls.contains("4/4 (max 1 per node)") && !ls.contains("pending"), "{ls}");
}

/// on-failure with max_attempts 2 and a command that exits 1: the slot's history holds exactly
/// three tasks (the first and two restarts), then nothing more happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_attempts_are_limited() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "flaky",
            "--restart-condition",
            "on-failure",
            "--restart-max-attempts",
            "2",
            "--restart-delay",
            "1s",
            IMAGE,
            "sh",
            "-c",
            "exit 1",
        ],
    );
    eventually("three failed tasks", Duration::from_secs(60), || async {
        let tasks = tasks_of(&c, m, "flaky").await?;
        (tasks.len() == 3
            && tasks
                .iter()
                .all(|t| t.state() == TaskState::Failed && t.desired() == TaskState::Shutdown))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tasks = tasks_of(&c, m, "flaky").await.unwrap();
    assert_eq!(tasks.len(), 3, "no further restarts: {tasks:?}");
    assert!(tasks.iter().all(|t| t.slot() == 1));
    assert!(tasks.iter().all(|t| t.err() == "task: non-zero exit (1)"));
    let ps = c.ctl_ok(m, &["service", "ps", "flaky"]);
    assert_eq!(ps.lines().filter(|l| l.contains("\\_ flaky.1")).count(), 2, "{ps}");

    tracing_phase("with a history limit of 2, a slot that keeps restarting holds at most 2 tasks");
    let out = c.ctl_ok(m, &["swarm", "update", "--task-history-limit", "2"]);
    assert!(out.contains("Swarm updated."), "{out}");
    let swarm: Value = c.nodes[m].client().get("/swarm").await.unwrap();
    assert_eq!(swarm["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"], 2);
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "churn",
            "--restart-delay",
            "1s",
            IMAGE,
            "sh",
            "-c",
            "exit 1",
        ],
    );
    eventually("churn restarted a few times", Duration::from_secs(60), || async {
        let tasks = tasks_of(&c, m, "churn").await?;
        let restarts = tasks
            .iter()
            .filter(|t| !t["RestartOf"].as_str().unwrap_or("").is_empty())
            .count();
        (restarts >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    eventually(
        "the churning slot is trimmed to 2 tasks",
        Duration::from_secs(10),
        || async {
            let tasks = tasks_of(&c, m, "churn").await?;
            (tasks.len() <= 2).then_some(())
        },
    )
    .await;
}

/// Killing the leader of three managers during a 10 s restart delay: the new leader restarts
/// the task exactly once, and not before the delay has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_during_a_restart_delay_restarts_once_after_the_delay() {
    let mut c = Cluster::docker();
    let m1 = c.init("m1", &["--availability", "drain"]);
    let mt = c.token(m1, "manager");
    let m2 = c.join_with("m2", &mt, m1, &["--availability", "drain"]);
    let m3 = c.join_with("m3", &mt, m1, &["--availability", "drain"]);
    let wt = c.token(m1, "worker");
    c.join("w1", &wt, m1);
    wait_ready_nodes(&c, m1, 4).await;
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "delayed",
            "--restart-condition",
            "on-failure",
            "--restart-delay",
            "10s",
            "--restart-max-attempts",
            "1",
            "--stop-grace-period",
            "1s",
            IMAGE,
            "sh",
            "-c",
            "sleep 2; exit 1",
        ],
    );
    let replacement = eventually(
        "the first task failed and its replacement waits",
        Duration::from_secs(60),
        || async {
            let tasks = tasks_of(&c, m1, "delayed").await?;
            let failed = tasks.iter().any(|t| t.state() == TaskState::Failed);
            let held = tasks.iter().find(|t| t.desired() == TaskState::Ready).cloned();
            if failed { held } else { None }
        },
    )
    .await;
    let id = replacement["ID"].as_str().unwrap().to_string();
    let created = Timestamp::parse(replacement["CreatedAt"].as_str().unwrap())
        .unwrap()
        .unix_nanos()
        .unwrap();

    let leader = c.wait_leader(Duration::from_secs(10)).await;
    c.kill(leader);
    let survivor = [m1, m2, m3].into_iter().find(|i| *i != leader).unwrap();
    c.wait_leader(Duration::from_secs(30)).await;

    let ran = eventually("the replacement ran and failed", Duration::from_secs(60), || {
        let (c, id) = (&c, id.clone());
        async move {
            let tasks = tasks_of(c, survivor, "delayed").await?;
            tasks
                .iter()
                .find(|t| t.id() == id && t.state() == TaskState::Failed)
                .cloned()
        }
    })
    .await;
    let container = ran["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.StartedAt}}", &container])
        .output()
        .unwrap();
    let started = Timestamp::parse(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap()
        .unix_nanos()
        .unwrap();
    let waited = (started - created) as f64 / 1e9;
    assert!(
        waited >= 9.9,
        "the replacement started {waited:.1} s after it was created, before the 10 s delay"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tasks = tasks_of(&c, survivor, "delayed").await.unwrap();
    assert_eq!(tasks.len(), 2, "exactly one restart: {tasks:?}");
}

/// A replicated job with TotalCompletions 5 and MaxConcurrent 2 completes 5 tasks, never more
/// than 2 at a time, and is then done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_job_completes_its_tasks_two_at_a_time() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "batch",
            "--mode",
            "replicated-job",
            "--replicas",
            "5",
            "--max-concurrent",
            "2",
            IMAGE,
            "sleep",
            "2",
        ],
    );
    eventually("5 completed tasks", Duration::from_secs(90), || async {
        let tasks = tasks_of(&c, m, "batch").await?;
        (tasks.iter().filter(|t| t.state() == TaskState::Complete).count() == 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tasks = tasks_of(&c, m, "batch").await.unwrap();
    assert_eq!(tasks.len(), 5, "nothing more after completion: {tasks:?}");
    let mut slots: Vec<u64> = tasks.iter().map(|t| t.slot()).collect();
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3, 4, 5]);
    assert!(tasks.iter().all(|t| t.desired() == TaskState::Complete));

    let times = container_times("batch");
    assert_eq!(times.len(), 5);
    let mut events: Vec<(i128, i32)> = times.iter().flat_map(|(s, f)| [(*s, 1), (*f, -1)]).collect();
    events.sort();
    let mut running = 0;
    let mut most = 0;
    for (_, d) in events {
        running += d;
        most = most.max(running);
    }
    assert_eq!(most, 2, "at most two at a time, and two did run together: {times:?}");

    let ls = c.ctl_ok(m, &["service", "ls"]);
    assert!(ls.contains("replicated job") && ls.contains("(5/5 completed)"), "{ls}");
    let svc: Value = c.nodes[m].client().get("/services/batch").await.unwrap();
    assert_eq!(svc["JobStatus"]["JobIteration"]["Index"], 0);
    assert!(svc["JobStatus"]["LastExecution"].is_string());
}

/// Marks a phase of a test in its output.
fn tracing_phase(what: &str) {
    eprintln!("--- {what}");
}
