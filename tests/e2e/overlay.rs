//! Overlay networks across nodes that really are separate hosts (network namespaces).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::hosts::Hosts;
use crate::support::tasks_of;

const IMAGE: &str = "swarm-test/busybox:latest";

/// A manager and a worker, each in its own namespace with its own address: the cluster forms
/// over the test's underlay, the nodes are known by those addresses, a service on an overlay
/// gets one task on each with distinct addresses, and each node hears of the other's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_separate_hosts_share_an_overlays_addresses() {
    let Some(hosts) = Hosts::new("a", 2) else { return };
    let mut c = Cluster::docker();
    let m1 = c.init_in("m1", &hosts.ns(1), &format!("{}:2377", Hosts::addr(1)), &[]);
    let token = c.token(m1, "worker");
    let w1 = c.join_in("w1", &hosts.ns(2), &format!("{}:2377", Hosts::addr(2)), &token, m1);

    let addrs = eventually(
        "both nodes ready at their own addresses",
        Duration::from_secs(60),
        || {
            let c = &c;
            async move {
                let nodes: Vec<Value> = c.nodes[m1].client().get("/nodes").await.ok()?;
                let ready: BTreeSet<String> = nodes
                    .iter()
                    .filter(|n| n["Status"]["State"] == "ready")
                    .filter_map(|n| n["Status"]["Addr"].as_str().map(str::to_string))
                    .collect();
                (ready.len() == 2).then_some(ready)
            }
        },
    )
    .await;
    assert_eq!(addrs, BTreeSet::from([Hosts::addr(1), Hosts::addr(2)]));

    c.ctl_ok(m1, &["network", "create", "appnet"]);
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "app",
            "--replicas",
            "2",
            "--replicas-max-per-node",
            "1",
            "--network",
            "appnet",
            IMAGE,
            "sleep",
            "3600",
        ],
    );
    let tasks = eventually("one running task per node", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let tasks = tasks_of(c, m1, "app").await?;
            let running: Vec<Value> = tasks
                .into_iter()
                .filter(|t| t["Status"]["State"] == "running")
                .collect();
            (running.len() == 2).then_some(running)
        }
    })
    .await;
    let nodes: BTreeSet<&str> = tasks.iter().filter_map(|t| t["NodeID"].as_str()).collect();
    assert_eq!(nodes.len(), 2, "{tasks:?}");
    let addresses: BTreeSet<&str> = tasks
        .iter()
        .filter_map(|t| t["NetworksAttachments"][0]["Addresses"][0].as_str())
        .collect();
    assert_eq!(addresses.len(), 2, "distinct overlay addresses: {tasks:?}");
    // Each node is told of the other's task.
    for i in [m1, w1] {
        eventually("the node has its overlay peer", Duration::from_secs(30), || {
            let log = c.nodes[i].log_text();
            async move { log.contains("overlay peers changed peers=1").then_some(()) }
        })
        .await;
    }
}
