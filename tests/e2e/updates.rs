//! Rolling updates and rollbacks with real containers: batches and order, health-gated
//! failures that pause or roll back, replicas-only updates, a leader killed mid-update, and
//! manual rollback.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use swarm_model::TaskState;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::tasks_of;
use crate::support::view::TaskView;

const V1: &str = "swarm-test/busybox:latest";
const V2: &str = "swarm-test/busybox:v2";

/// A second tag of the test image, so an update has something to change.
fn ensure_v2() {
    let out = std::process::Command::new("docker")
        .args(["tag", V1, V2])
        .output()
        .expect("docker tag");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn running_containers(service: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
            "--filter",
            "status=running",
        ])
        .output()
        .expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// Counts the service's running containers every 100 ms until stopped; returns the fewest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    fewest: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(service: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let fewest = Arc::new(AtomicUsize::new(usize::MAX));
        let (s, f, name) = (stop.clone(), fewest.clone(), service.to_string());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                f.fetch_min(running_containers(&name).len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            fewest,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.fewest.load(Ordering::Relaxed)
    }
}

/// Running tasks, by slot: (task ID, image).
async fn running_by_slot(c: &Cluster, i: usize, service: &str) -> Option<Vec<(u64, String, String)>> {
    let tasks = tasks_of(c, i, service).await?;
    let mut v: Vec<(u64, String, String)> = tasks
        .iter()
        .filter(|t| t.desired() == TaskState::Running && t.state() == TaskState::Running)
        .map(|t| {
            (
                t.slot(),
                t["ID"].as_str().unwrap_or_default().to_string(),
                t.image().to_string(),
            )
        })
        .collect();
    v.sort();
    Some(v)
}

async fn update_status(c: &Cluster, i: usize, service: &str) -> Value {
    let svc: Value = c.nodes[i].client().get(&format!("/services/{service}")).await.unwrap();
    svc["UpdateStatus"].clone()
}

async fn create_and_wait(c: &Cluster, i: usize, name: &str, replicas: usize) {
    c.ctl_ok(
        i,
        &[
            "service",
            "create",
            "--name",
            name,
            "--replicas",
            &replicas.to_string(),
            "--stop-grace-period",
            "1s",
            V1,
            "sleep",
            "3600",
        ],
    );
    eventually(&format!("{replicas} running"), Duration::from_secs(60), || async {
        (running_by_slot(c, i, name).await?.len() == replicas).then_some(())
    })
    .await;
}

/// stop-first, parallelism 2, delay 1 s: never more than two slots down, all six end on the new
/// image, completed. Then `service rollback` brings the previous spec back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_first_updates_two_at_a_time_and_rollback_restores() {
    ensure_v2();
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    create_and_wait(&c, m, "web", 6).await;

    let sampler = Sampler::start("web");
    let out = c.ctl_ok(
        m,
        &[
            "service",
            "update",
            "--image",
            V2,
            "--update-parallelism",
            "2",
            "--update-delay",
            "1s",
            "--update-monitor",
            "2s",
            "web",
        ],
    );
    let fewest = sampler.finish();
    assert!(out.contains("verify: Service web converged"), "{out}");
    assert!(fewest >= 4, "at most 2 of 6 down, saw {fewest} running");
    let slots = running_by_slot(&c, m, "web").await.unwrap();
    assert_eq!(slots.len(), 6);
    assert!(slots.iter().all(|(_, _, img)| img == V2), "{slots:?}");
    let st = update_status(&c, m, "web").await;
    assert_eq!(st["State"], "completed", "{st}");
    assert_eq!(st["Message"], "update completed");

    // Manual rollback.
    let out = c.ctl_ok(m, &["service", "rollback", "web"]);
    assert!(out.contains("converged"), "{out}");
    let slots = running_by_slot(&c, m, "web").await.unwrap();
    assert_eq!(slots.len(), 6);
    assert!(slots.iter().all(|(_, _, img)| img == V1), "{slots:?}");
    let st = update_status(&c, m, "web").await;
    assert_eq!(st["State"], "rollback_completed", "{st}");
    let svc: Value = c.nodes[m].client().get("/services/web").await.unwrap();
    assert_eq!(svc["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Image"], V2);
}

/// start-first: six running tasks never drop below six.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_first_never_drops_below_the_replica_count() {
    ensure_v2();
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    create_and_wait(&c, m, "web", 6).await;
    let sampler = Sampler::start("web");
    c.ctl_ok(
        m,
        &[
            "service",
            "update",
            "--image",
            V2,
            "--update-order",
            "start-first",
            "--update-parallelism",
            "2",
            "--update-monitor",
            "1s",
            "web",
        ],
    );
    let fewest = sampler.finish();
    assert!(fewest >= 6, "never below 6 running, saw {fewest}");
    let slots = running_by_slot(&c, m, "web").await.unwrap();
    assert_eq!(slots.len(), 6);
    assert!(slots.iter().all(|(_, _, img)| img == V2), "{slots:?}");
}

fn failing_health_update(action: &str) -> Vec<String> {
    [
        "service",
        "update",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--update-failure-action",
        action,
        "--update-monitor",
        "10s",
        "web",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A failing healthcheck with failure_action rollback: the service returns to the previous spec
/// by itself, rollback_completed naming the failed task; the CLI exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_healthcheck_rolls_the_update_back() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    create_and_wait(&c, m, "web", 3).await;
    let before = running_containers("web");
    let args = failing_health_update("rollback");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = c.ctl(m, &refs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the update was rolled back: {stdout}");
    assert!(
        stdout.contains("rollback: update rolled back due to failure"),
        "{stdout}"
    );
    assert!(stderr.contains("service rolled back"), "{stderr}");
    let st = update_status(&c, m, "web").await;
    assert_eq!(st["State"], "rollback_completed", "{st}");
    let message = st["Message"].as_str().unwrap();
    let failed = message
        .rsplit("early termination of task ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    let tasks = tasks_of(&c, m, "web").await.unwrap();
    assert!(
        tasks
            .iter()
            .any(|t| t["ID"] == failed && t.state() == TaskState::Failed),
        "the message names the failed task: {message}"
    );
    let svc: Value = c.nodes[m].client().get("/services/web").await.unwrap();
    assert!(
        svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"].is_null(),
        "{svc}"
    );
    let slots = running_by_slot(&c, m, "web").await.unwrap();
    assert_eq!(slots.len(), 3);
    // Only the first slot was tried: the others kept their containers.
    let after = running_containers("web");
    assert_eq!(
        before.iter().filter(|id| after.contains(id)).count(),
        2,
        "{before:?} {after:?}"
    );
}

/// A failing healthcheck with failure_action pause: the update pauses, and `service update`
/// without -d exits non-zero with the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_healthcheck_pauses_the_update() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    create_and_wait(&c, m, "web", 3).await;
    let args = failing_health_update("pause");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = c.ctl(m, &refs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("service update paused: update paused due to failure or early termination of task"),
        "{stderr}"
    );
    let st = update_status(&c, m, "web").await;
    assert_eq!(st["State"], "paused", "{st}");
    // Paused means paused: the other slots keep the old spec.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tasks = tasks_of(&c, m, "web").await.unwrap();
    let with_health = tasks
        .iter()
        .filter(|t| !t["Spec"]["ContainerSpec"]["Healthcheck"].is_null())
        .map(|t| t.slot())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(with_health.len(), 1, "only one slot tried: {tasks:?}");
}

/// Changing only the replica count, or only labels, restarts no container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_label_updates_restart_nothing() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    create_and_wait(&c, m, "web", 3).await;
    let before = running_containers("web");
    c.ctl_ok(m, &["service", "update", "--replicas", "5", "web"]);
    c.ctl_ok(m, &["service", "update", "--label-add", "tier=front", "web"]);
    // `service update` returns once the store has the change; the two new containers may
    // still be starting.
    let after = eventually("five web containers", Duration::from_secs(60), || async {
        let after = running_containers("web");
        (after.len() == 5).then_some(after)
    })
    .await;
    assert!(before.iter().all(|id| after.contains(id)), "{before:?} {after:?}");
    let st = update_status(&c, m, "web").await;
    assert!(st.is_null(), "no rolling update for a replicas or label change: {st}");
}

/// Three managers; the leader is killed with kill -9 in the middle of an update. The new
/// leader finishes the same update: every slot ends with exactly one running task of the new
/// spec, and the slots updated before the kill keep their tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_finishes_the_update_without_redoing_slots() {
    ensure_v2();
    let mut c = Cluster::docker();
    let m1 = c.init("m1", &["--availability", "drain"]);
    let mt = c.token(m1, "manager");
    let m2 = c.join_with("m2", &mt, m1, &["--availability", "drain"]);
    let m3 = c.join_with("m3", &mt, m1, &["--availability", "drain"]);
    let wt = c.token(m1, "worker");
    c.join("w1", &wt, m1);
    create_and_wait(&c, m1, "web", 4).await;
    c.ctl_ok(
        m1,
        &[
            "service",
            "update",
            "-d",
            "--image",
            V2,
            "--update-parallelism",
            "1",
            "--update-delay",
            "4s",
            "web",
        ],
    );
    let early = eventually("two slots updated", Duration::from_secs(60), || async {
        let slots = running_by_slot(&c, m1, "web").await?;
        let done: Vec<(u64, String)> = slots
            .iter()
            .filter(|(_, _, img)| img == V2)
            .map(|(s, id, _)| (*s, id.clone()))
            .collect();
        (done.len() >= 2).then_some(done)
    })
    .await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    c.kill(leader);
    let survivor = [m1, m2, m3].into_iter().find(|i| *i != leader).unwrap();
    eventually("the update completes", Duration::from_secs(120), || async {
        let svc: Value = c.nodes[survivor].client().get("/services/web").await.ok()?;
        (svc["UpdateStatus"]["State"] == "completed").then_some(())
    })
    .await;
    let tasks = tasks_of(&c, survivor, "web").await.unwrap();
    for slot in 1..=4u64 {
        let live: Vec<&Value> = tasks
            .iter()
            .filter(|t| t.slot() == slot && t.desired() == TaskState::Running)
            .collect();
        assert_eq!(live.len(), 1, "slot {slot}: {live:?}");
        assert_eq!(live[0].state(), TaskState::Running);
        assert_eq!(live[0].image(), V2);
    }
    for (slot, id) in &early {
        assert!(
            tasks
                .iter()
                .any(|t| t.slot() == *slot && t.id() == id && t.state() == TaskState::Running),
            "slot {slot} was updated again after the failover"
        );
    }
    let replacements = tasks
        .iter()
        .filter(|t| !t["UpdateOf"].as_str().unwrap_or("").is_empty())
        .count();
    assert_eq!(replacements, 4, "one replacement per slot, none duplicated");
}
