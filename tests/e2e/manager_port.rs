//! The manager port against strangers: callers without a certificate must not be able to run a
//! manager out of memory (issue 15, item 2).

use std::time::Duration;

use bytes::Bytes;
use swarm_net::peer_client::PeerClient;
use swarm_net::peer_client::full;
use swarm_net::tls::unverified_client_config;

use crate::support::Cluster;

/// The manager's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// 200 clients without a certificate each send an 8 MiB body to node and manager routes
/// (1.6 GiB in all) and keep their connections open; the manager's peak memory grows by less
/// than 64 MiB, it refuses them all, and services can still be created (raft commits flow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_without_a_certificate_cannot_grow_a_managers_memory() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let pid = c.nodes[m1].pid().expect("the manager runs");
    c.ctl_ok(m1, &["service", "create", "--name", "before", "busybox"]);
    let before = peak_rss_kib(pid);
    let addr = c.nodes[m1].addr.clone();
    let body = Bytes::from(vec![0u8; 8 << 20]);
    let routes = ["/dispatcher/status", "/raft/append", "/join/raft", "/dispatcher/logs"];
    let mut calls = Vec::new();
    let mut clients = Vec::new();
    for i in 0..200 {
        let client = std::sync::Arc::new(PeerClient::new(unverified_client_config()));
        clients.push(client.clone());
        let (addr, body, route) = (addr.clone(), body.clone(), routes[i % routes.len()]);
        calls.push(tokio::spawn(async move {
            client
                .call(&addr, route, Some(full(body)), Duration::from_secs(60))
                .await
        }));
    }
    let mut refused = 0;
    for call in calls {
        if let Ok(Err(_)) = call.await {
            refused += 1;
        }
    }
    assert_eq!(refused, 200, "every call without a certificate is refused");
    // The connections stay open while raft keeps committing.
    c.ctl_ok(m1, &["service", "create", "--name", "after", "busybox"]);
    let grown = peak_rss_kib(pid).saturating_sub(before);
    eprintln!("manager peak RSS grew by {} KiB under 200 strangers", grown);
    assert!(grown < 64 * 1024, "the manager's peak RSS grew by {grown} KiB");
    drop(clients);
}
