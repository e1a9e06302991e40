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

    // The two containers reach each other over the overlay, and only through it.
    let (a, b) = (&tasks[0], &tasks[1]);
    let b_addr = b["NetworksAttachments"][0]["Addresses"][0]
        .as_str()
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_string();
    let a_container = container_of(a["ID"].as_str().unwrap_or_default());
    let a_ns = if a["NodeID"] == c.node_id(m1).as_str() {
        hosts.ns(1)
    } else {
        hosts.ns(2)
    };
    eventually("a reaches b over the overlay", Duration::from_secs(30), || {
        let ok = pings(&a_container, &b_addr);
        async move { ok.then_some(()) }
    })
    .await;
    ip(&["-n", &a_ns, "link", "set", &vxlan_of(&a_ns), "down"]);
    assert!(
        !pings(&a_container, &b_addr),
        "with the VXLAN device down, b is out of reach"
    );
    ip(&["-n", &a_ns, "link", "set", &vxlan_of(&a_ns), "up"]);
    eventually("and back in reach", Duration::from_secs(30), || {
        let ok = pings(&a_container, &b_addr);
        async move { ok.then_some(()) }
    })
    .await;

    // The way out: app's containers keep the engine's network (for outbound traffic) beside
    // the overlay; a task on --internal networks only gets none.
    assert_ne!(network_mode(&a_container), "none");
    c.ctl_ok(m1, &["network", "create", "--internal", "sealed"]);
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "iso",
            "--network",
            "sealed",
            IMAGE,
            "sleep",
            "3600",
        ],
    );
    let iso = eventually("iso runs", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let tasks = tasks_of(c, m1, "iso").await?;
            let t = tasks.into_iter().find(|t| t["Status"]["State"] == "running")?;
            Some(container_of(t["ID"].as_str()?))
        }
    })
    .await;
    assert_eq!(network_mode(&iso), "none");
    c.ctl_ok(m1, &["service", "rm", "iso"]);

    // Removing the services leaves no overlay device on either node.
    c.ctl_ok(m1, &["service", "rm", "app"]);
    for ns in [hosts.ns(1), hosts.ns(2)] {
        eventually("no overlay device left", Duration::from_secs(60), || {
            let links = links_in(&ns);
            async move { (!links.iter().any(|l| l.starts_with("swbr") || l.starts_with("swvx"))).then_some(()) }
        })
        .await;
    }
    c.ctl_ok(m1, &["network", "rm", "appnet", "sealed"]);
}

/// The Docker network mode `container` was created with.
fn network_mode(container: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.HostConfig.NetworkMode}}", container])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The names of the links in namespace `ns`.
fn links_in(ns: &str) -> Vec<String> {
    ip(&["-n", ns, "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The overlay's VXLAN device in namespace `ns` (the test makes one network).
fn vxlan_of(ns: &str) -> String {
    links_in(ns)
        .into_iter()
        .find(|l| l.starts_with("swvx"))
        .unwrap_or_else(|| panic!("no VXLAN device in {ns}"))
}

/// The container of task `task_id`.
fn container_of(task_id: &str) -> String {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.task.id={task_id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether one ping from `container` to `addr` is answered within two seconds.
fn pings(container: &str, addr: &str) -> bool {
    std::process::Command::new("docker")
        .args(["exec", container, "ping", "-c", "1", "-W", "2", addr])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
