use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use swarm_model::NodeState;
use swarm_model::TaskState;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::view::NodeView;
use crate::support::view::TaskView;

/// `swarmd simulate --nodes 200` against three managers brings 10,000 tasks to RUNNING, spread
/// evenly. Simulated nodes have their own identities and their own dispatcher sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_simulated_nodes_run_ten_thousand_tasks() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &["--availability", "drain"]);
    let mt = c.token(m1, "manager");
    c.join_with("m2", &mt, m1, &["--availability", "drain"]);
    c.join_with("m3", &mt, m1, &["--availability", "drain"]);
    let wt = c.token(m1, "worker");
    c.simulate("sim", 200, &wt, m1);
    eventually("203 ready nodes", Duration::from_secs(60), || {
        let client = c.nodes[m1].client();
        async move {
            let nodes: Vec<Value> = client.get("/nodes").await.ok()?;
            let ready = nodes.iter().filter(|n| n.node_state() == NodeState::Ready).count();
            (ready == 203).then_some(())
        }
    })
    .await;

    let start = Instant::now();
    let out = c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "big",
            "--replicas",
            "10000",
            "swarm-test/busybox:latest",
            "sleep",
            "3600",
        ],
    );
    assert_eq!(out.trim().len(), 25);
    eventually("10,000 running tasks", Duration::from_secs(300), || {
        let client = c.nodes[m1].client();
        async move {
            let svcs: Vec<Value> = client.get("/services?status=true").await.ok()?;
            let running = svcs.first()?["ServiceStatus"]["RunningTasks"].as_u64()?;
            (running == 10_000).then_some(())
        }
    })
    .await;
    let took = start.elapsed();
    println!(
        "scale: 10,000 tasks on 200 simulated nodes RUNNING {:.1} s after service create",
        took.as_secs_f64()
    );

    // Every manager comes to the same view (a follower may apply the last status reports a
    // moment after the leader counted them), and the tasks are spread evenly.
    for i in 0..3 {
        let name = c.nodes[i].name.clone();
        let tasks = eventually(
            &format!("10,000 running tasks on {name}"),
            Duration::from_secs(60),
            || {
                let client = c.nodes[i].client().with_timeout(Duration::from_secs(60));
                async move {
                    let tasks: Vec<Value> = client.get("/tasks").await.ok()?;
                    (tasks.len() == 10_000 && tasks.iter().all(|t| t.state() == TaskState::Running)).then_some(tasks)
                }
            },
        )
        .await;
        let mut per: std::collections::HashMap<&str, usize> = Default::default();
        for t in &tasks {
            *per.entry(t["NodeID"].as_str().unwrap()).or_default() += 1;
        }
        assert_eq!(per.len(), 200, "on {name}");
        assert!(per.values().all(|n| *n == 50), "50 tasks per node on {name}");
    }
}
