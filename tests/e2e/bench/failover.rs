//! Failover and failure detection on real `swarmd` processes (simulated executor):
//! - leader failover: `kill -9` of the leader to the first write accepted by a survivor, over
//!   repeated trials under load, and the number of elections in a loaded run with no fault
//!   (any is spurious);
//! - a dead worker: `kill -9` of the node that runs a service's tasks to all of them running on
//!   the other worker.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use swarm_ctl::client::ApiClient;

use super::report::Figure;
use super::report::Goal;
use super::report::record;
use crate::support::Cluster;
use crate::support::eventually;
use crate::support::service_spec;
use crate::support::tasks_of;

const GROUP: &str = "Failover and failure detection";
const TRIALS: usize = 10;
/// The fault-free loaded run in which every election counts as spurious.
const QUIET_RUN: Duration = Duration::from_secs(300);

/// Creates then removes services in a loop on every client in turn until `stop`; counts the
/// writes that succeeded.
fn start_load(
    clients: Vec<ApiClient>,
    per_client: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<AtomicU64>) {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (n, client) in clients.into_iter().enumerate() {
        for w in 0..per_client {
            let (client, stop, done) = (client.clone(), stop.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let name = format!("load-{n}-{w}-{k}");
                    let created: Result<Value, _> = client.post("/services/create", &service_spec(&name)).await;
                    if created.is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    if client.delete(&format!("/services/{name}")).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    (tasks, done)
}

/// The highest term any running manager reports.
pub(super) async fn term(c: &mut Cluster) -> u64 {
    let mut t = 0;
    for i in 0..c.nodes.len() {
        if c.nodes[i].is_running()
            && let Some(r) = c.raft(i).await
        {
            t = t.max(r["term"].as_u64().unwrap_or(0));
        }
    }
    t
}

/// Time from `killed_at` to the first create accepted by a survivor, each survivor trying
/// again as soon as an attempt fails.
async fn first_accepted_write(c: &Cluster, survivors: &[usize], killed_at: Instant, trial: usize) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel(survivors.len());
    let mut probes = Vec::new();
    for &i in survivors {
        let client = c.nodes[i].client().with_timeout(Duration::from_secs(10));
        let tx = tx.clone();
        probes.push(tokio::spawn(async move {
            for k in 0.. {
                let name = format!("probe-{trial}-{i}-{k}");
                let res: Result<Value, _> = client.post("/services/create", &service_spec(&name)).await;
                if res.is_ok() {
                    let _ = tx.send(killed_at.elapsed()).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let first = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .ok()
        .flatten()
        .expect("a write accepted within 60 s of the leader's death");
    for p in probes {
        p.abort();
    }
    first.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_leader_failover_and_spurious_elections() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    c.join("m2", &token, m1);
    c.join("m3", &token, m1);
    c.wait_leader(Duration::from_secs(30)).await;

    // Fault-free loaded run: two writers per manager.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<ApiClient> = c.nodes.iter().map(|n| n.client()).collect();
    let (load, done) = start_load(clients, 2, stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let term_before = term(&mut c).await;
    let writes_before = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(QUIET_RUN).await;
    let writes = done.load(Ordering::Relaxed) - writes_before;
    let elections = term(&mut c).await - term_before;
    record(
        Figure::new(
            GROUP,
            &format!("spurious elections in {} s under load, no faults", QUIET_RUN.as_secs()),
            "elections",
            vec![elections as f64],
            Goal::AtMost(0.0),
        )
        .note(format!(
            "3 managers, 6 writers creating and removing services: {:.0} writes/s; raft term before and after",
            writes as f64 / started.elapsed().as_secs_f64()
        )),
    );
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.await;
    }

    // Failover trials, each under a light load from one writer per manager.
    let mut times = Vec::new();
    for trial in 0..TRIALS {
        let leader = c.wait_leader(Duration::from_secs(30)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<ApiClient> = (0..c.nodes.len())
            .filter(|&i| i != leader)
            .map(|i| c.nodes[i].client().with_timeout(Duration::from_secs(10)))
            .collect();
        let (load, _) = start_load(clients, 1, stop.clone());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let killed_at = Instant::now();
        c.kill(leader);
        let survivors: Vec<usize> = (0..c.nodes.len()).filter(|&i| i != leader).collect();
        let t = first_accepted_write(&c, &survivors, killed_at, trial).await;
        println!("failover trial {trial}: {t:.3} s");
        times.push(t);
        stop.store(true, Ordering::Relaxed);
        for l in load {
            let _ = l.await;
        }
        c.restart(leader);
        // The restarted manager catches up before the next trial.
        let new_leader = c.wait_leader(Duration::from_secs(30)).await;
        eventually("the restarted manager caught up", Duration::from_secs(60), || {
            let c = &c;
            async move {
                let want = c.raft(new_leader).await?["committed"].as_u64()?;
                (c.raft(leader).await?["applied"].as_u64()? >= want).then_some(())
            }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[((sorted.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)];
    record(
        Figure::new(
            GROUP,
            "leader failover, kill -9 to first accepted write",
            "s",
            times,
            Goal::None,
        )
        .note("3 managers, 1 writer on each survivor; each survivor retries a create every 5 ms after the kill"),
    );
    record(
        Figure::new(
            GROUP,
            "leader failover, p99 of the trials",
            "s",
            vec![p99],
            Goal::AtMost(1.0),
        )
        .note(format!("the slowest of {TRIALS} trials")),
    );
}

/// The node (worker index) that runs every task of `service`, once all `replicas` run there.
async fn all_running_on(c: &Cluster, via: usize, service: &str, replicas: usize) -> Option<String> {
    let tasks = tasks_of(c, via, service).await?;
    let running: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
        .collect();
    let node = running.first()?["NodeID"].as_str()?.to_string();
    (running.len() == replicas && running.iter().all(|t| t["NodeID"] == node.as_str())).then_some(node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_dead_worker_tasks_running_elsewhere() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &["--hostname", "m1"]);
    let manager_id = c.node_id(m1);
    c.ctl_ok(m1, &["node", "update", "--availability", "drain", &manager_id]);
    let token = c.token(m1, "worker");
    let w1 = c.join("w1", &token, m1);
    let w2 = c.join("w2", &token, m1);
    let ids = [(w1, c.node_id(w1)), (w2, c.node_id(w2))];
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "victim",
            "--replicas",
            "4",
            "swarm-test/busybox:latest",
            "sleep",
            "3600",
        ],
    );
    // Put every task on one worker: drain the other until they all run there.
    c.ctl_ok(m1, &["node", "update", "--availability", "drain", &ids[1].1]);
    eventually("all tasks on w1", Duration::from_secs(60), || {
        let c = &c;
        async move { all_running_on(c, m1, "victim", 4).await }
    })
    .await;
    c.ctl_ok(m1, &["node", "update", "--availability", "active", &ids[1].1]);

    let mut times = Vec::new();
    let mut silent_times = Vec::new();
    for trial in 0..8 {
        // Five kills (the connection closes at once), then three silent failures: SIGSTOP
        // leaves the connection open, so only the missed heartbeats tell.
        let silent = trial >= 5;
        let holder = all_running_on(&c, m1, "victim", 4)
            .await
            .expect("all tasks on one worker");
        let (victim, other) = if holder == ids[0].1 {
            (ids[0].0, &ids[1].1)
        } else {
            (ids[1].0, &ids[0].1)
        };
        let pid = c.nodes[victim].pid().expect("the worker runs").to_string();
        let killed_at = Instant::now();
        if silent {
            let _ = std::process::Command::new("kill").args(["-STOP", &pid]).status();
        } else {
            c.kill(victim);
        }
        let other = other.clone();
        eventually("the tasks running on the other worker", Duration::from_secs(60), || {
            let (c, other) = (&c, other.clone());
            async move { all_running_on(c, m1, "victim", 4).await.filter(|n| *n == other) }
        })
        .await;
        let t = killed_at.elapsed().as_secs_f64();
        println!(
            "dead worker trial {trial} ({}): {t:.3} s",
            if silent { "SIGSTOP" } else { "kill -9" }
        );
        if silent {
            silent_times.push(t);
            let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
        } else {
            times.push(t);
            c.restart(victim);
        }
        let victim_id = c.node_id(victim);
        eventually("the restarted worker is ready", Duration::from_secs(60), || {
            let (c, id) = (&c, victim_id.clone());
            async move {
                let node: Value = c.nodes[m1].client().get(&format!("/nodes/{id}")).await.ok()?;
                (node["Status"]["State"] == "ready").then_some(())
            }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    record(
        Figure::new(GROUP, "dead worker, kill -9 to its tasks running elsewhere", "s", times, Goal::AtMost(2.0))
            .note("a drained manager and two workers (simulated executor), 4 replicas; the API's task list polled every 100 ms"),
    );
    record(
        Figure::new(
            GROUP,
            "silent worker (SIGSTOP), to its tasks running elsewhere",
            "s",
            silent_times,
            Goal::AtMost(2.0),
        )
        .note("as above, but the worker is stopped, not killed: its connection stays open, so only missed heartbeats tell"),
    );
}
