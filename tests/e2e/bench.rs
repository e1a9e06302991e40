//! `make bench`: service creates per second on three managers. Ignored in `make test`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;

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
        rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "service creates/s on 3 managers, {label}: median {:.0} (runs: {})",
            rates[1],
            rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
        );
    }
}
