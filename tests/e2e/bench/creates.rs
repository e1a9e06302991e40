//! Service creates per second through the Engine API on three managers.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;

use super::report::Figure;
use super::report::Goal;
use super::report::record;
use crate::support::Cluster;
use crate::support::service_spec;

async fn run_round(c: &Cluster, round: usize, clients_per_node: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (n, node) in c.nodes.iter().enumerate() {
        for w in 0..clients_per_node {
            let client = node.client();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let mut k = 0;
                while Instant::now() < stop_at {
                    k += 1;
                    let name = format!("b{round}-{n}-{w}-{k}");
                    let res: Result<Value, _> = client.post("/services/create", &service_spec(&name)).await;
                    if res.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_service_creates_per_second_on_three_managers() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    c.join("m2", &token, m1);
    c.join("m3", &token, m1);
    c.wait_leader(Duration::from_secs(30)).await;
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    for (label, per_node) in [("1 client per manager", 1), ("8 clients per manager", 8)] {
        let mut rates = Vec::new();
        let before = c.raft(leader).await.unwrap()["log_writes"].clone();
        for round in 0..3 {
            rates.push(run_round(&c, round + per_node * 10, per_node, 5).await);
        }
        let after = c.raft(leader).await.unwrap()["log_writes"].clone();
        let delta = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
        println!(
            "leader log, {label}: {} entries in {} fsyncs ({:.1} entries per fsync)",
            delta("entries_written"),
            delta("fsyncs"),
            delta("entries_written") as f64 / delta("fsyncs").max(1) as f64
        );
        let goal = if per_node == 1 { 1_000.0 } else { 5_000.0 };
        record(
            Figure::new(
                "Engine API",
                &format!("service creates/s, 3 managers, {} clients", per_node * 3),
                "creates/s",
                rates,
                Goal::AtLeast(goal),
            )
            .note(format!(
                "{label}, 5 s per run, a new connection per request; the leader wrote {:.1} entries per fsync",
                delta("entries_written") as f64 / delta("fsyncs").max(1) as f64
            )),
        );
    }
}

/// p50 and p99 of `latencies` in milliseconds.
fn percentiles(mut latencies: Vec<f64>) -> (f64, f64) {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    (at(0.5), at(0.99))
}

/// API latency under a steady 20 changes a second: every 50 ms a create or an update of a
/// service (alternating) and an inspect, each sent to the next manager in turn, so two thirds
/// go through a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with make bench"]
async fn bench_api_latency_under_twenty_changes_per_second() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    c.join("m2", &token, m1);
    c.join("m3", &token, m1);
    c.wait_leader(Duration::from_secs(30)).await;
    let clients: Vec<_> = c.nodes.iter().map(|n| n.client()).collect();
    let (mut creates, mut updates, mut inspects) = (Vec::new(), Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut names: Vec<String> = Vec::new();
    for k in 0..1800usize {
        tick.tick().await;
        let client = &clients[k % clients.len()];
        if k % 2 == 0 || names.is_empty() {
            let name = format!("lat-{k}");
            let start = Instant::now();
            let res: Result<Value, _> = client.post("/services/create", &service_spec(&name)).await;
            if res.is_ok() {
                creates.push(start.elapsed().as_secs_f64() * 1000.0);
                names.push(name);
            }
        } else {
            let name = &names[k % names.len()];
            let Ok(svc) = client.get::<Value>(&format!("/services/{name}")).await else {
                continue;
            };
            let version = svc["Version"]["Index"].as_u64().unwrap_or(0);
            let mut spec = svc["Spec"].clone();
            spec["Labels"] = serde_json::json!({ "round": k.to_string() });
            let start = Instant::now();
            let res: Result<Value, _> = client
                .post(&format!("/services/{name}/update?version={version}"), &spec)
                .await;
            if res.is_ok() {
                updates.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        if let Some(name) = names.last() {
            let start = Instant::now();
            if client.get::<Value>(&format!("/services/{name}")).await.is_ok() {
                inspects.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    for (what, lat) in [("create", creates), ("update", updates), ("inspect", inspects)] {
        let n = lat.len();
        let (p50, p99) = percentiles(lat);
        record(
            Figure::new("Engine API", &format!("{what} latency p99 under 20 changes/s"), "ms", vec![p99], Goal::AtMost(20.0))
                .note(format!(
                    "3 managers, requests spread over all three (a new connection each); {n} calls over 90 s, p50 {p50:.1} ms"
                )),
        );
    }
}
