//! 100,000 replicas on 1,000 simulated nodes: three drained managers and `swarmd simulate` on
//! this machine, from `service create` to every task RUNNING; the leader's memory at rest, at
//! its peak, and after the service is removed.

use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use swarm_model::NodeState;

use super::report::Figure;
use super::report::Goal;
use super::report::record;
use crate::support::Cluster;
use crate::support::eventually;
use crate::support::view::NodeView;

const GROUP: &str = "Scale";
const NODES: usize = 1_000;
const REPLICAS: u64 = 100_000;

/// A field of /proc/PID/status in MiB (VmRSS: now; VmHWM: the peak so far).
fn mem_mib(pid: u32, field: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.trim_start_matches(':').split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

async fn running_tasks(c: &Cluster, i: usize) -> Option<u64> {
    let svcs: Vec<Value> = c.nodes[i].client().get("/services?status=true").await.ok()?;
    svcs.first()?["ServiceStatus"]["RunningTasks"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with make bench"]
async fn bench_100k_tasks_on_1k_simulated_nodes() {
    let mut runs = Vec::new();
    let (mut idle, mut peak, mut followers, mut elections) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // SCALE_ROUNDS=1 gives one quick round while profiling; the report wants 3.
    let rounds = std::env::var("SCALE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for round in 0..rounds {
        let mut c = Cluster::new();
        let m1 = c.init("m1", &["--availability", "drain"]);
        let mt = c.token(m1, "manager");
        c.join_with("m2", &mt, m1, &["--availability", "drain"]);
        c.join_with("m3", &mt, m1, &["--availability", "drain"]);
        let wt = c.token(m1, "worker");
        c.simulate("sim", NODES, &wt, m1);
        eventually("every simulated node ready", Duration::from_secs(300), || {
            let client = c.nodes[m1].client();
            async move {
                let nodes: Vec<Value> = client.get("/nodes").await.ok()?;
                let ready = nodes.iter().filter(|n| n.node_state() == NodeState::Ready).count();
                (ready == NODES + 3).then_some(())
            }
        })
        .await;
        let leader = c.wait_leader(Duration::from_secs(30)).await;
        let leader_pid = c.nodes[leader].pid().expect("the leader runs");
        tokio::time::sleep(Duration::from_secs(3)).await;
        idle.push(mem_mib(leader_pid, "VmRSS"));
        println!("round {round}: the leader is pid {leader_pid}; creating the service");

        let term_before = super::failover::term(&mut c).await;
        let start = Instant::now();
        c.ctl_ok(
            m1,
            &[
                "service",
                "create",
                "--name",
                "big",
                "--replicas",
                &REPLICAS.to_string(),
                "swarm-test/busybox:latest",
                "sleep",
                "3600",
            ],
        );
        eventually("every task running", Duration::from_secs(600), || {
            let c = &c;
            async move { (running_tasks(c, leader).await? == REPLICAS).then_some(()) }
        })
        .await;
        let took = start.elapsed().as_secs_f64();
        println!("round {round}: {REPLICAS} tasks on {NODES} nodes running after {took:.1} s");
        runs.push(took);
        let elected = super::failover::term(&mut c).await.saturating_sub(term_before);
        println!("round {round}: {elected} elections during the run");
        elections.push(elected as f64);
        peak.push(mem_mib(leader_pid, "VmHWM"));
        let follower_peak = (0..3)
            .filter(|&i| i != leader)
            .filter_map(|i| c.nodes[i].pid())
            .map(|pid| mem_mib(pid, "VmHWM"))
            .fold(0.0, f64::max);
        followers.push(follower_peak);
    }
    record(
        Figure::new(
            GROUP,
            "100,000 tasks on 1,000 simulated nodes, service create to all RUNNING",
            "s",
            runs,
            Goal::AtMost(10.0),
        )
        .note(
            "3 drained managers and `swarmd simulate --nodes 1000` on this machine; RunningTasks polled every 100 ms",
        ),
    );
    record(
        Figure::new(
            GROUP,
            "elections during the 100,000-task run",
            "elections",
            elections,
            Goal::AtMost(0.0),
        )
        .note("raft term after all tasks run minus the term before the create, the highest any manager reports"),
    );
    record(
        Figure::new(
            GROUP,
            "leader RSS peak at 100,000 tasks",
            "MiB",
            peak,
            Goal::AtMost(1024.0),
        )
        .note(format!(
            "VmHWM of the leader's process; the followers peaked at {:.0} MiB",
            super::report::median(&followers)
        )),
    );
    record(
        Figure::new(
            GROUP,
            "leader RSS idle, 1,003 nodes and no services",
            "MiB",
            idle,
            Goal::AtMost(50.0),
        )
        .note("VmRSS of the leader 3 s after every node is ready"),
    );
}
