use std::time::Duration;
use std::time::Instant;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::service_spec;

/// Without a quorum, writes fail within a few seconds with a "no quorum / no leader" error, so
/// do reads of services (they would be stale), the node list still answers so an operator can
/// see who is down, and a new manager cannot join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_and_service_reads_fail_fast_and_node_ls_answers() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    let m2 = c.join("m2", &token, m1);
    let m3 = c.join("m3", &token, m1);
    let _: Value = c.nodes[m1]
        .client()
        .post("/services/create", &service_spec("before"))
        .await
        .unwrap();
    c.wait_leader(Duration::from_secs(30)).await;

    c.kill(m2);
    c.kill(m3);
    let client = c.nodes[m1].client();
    let start = Instant::now();
    let err = client
        .post::<Value>("/services/create", &service_spec("during"))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("quorum") || msg.contains("no leader"), "{msg}");
    assert!(took < Duration::from_secs(15), "the write failed after {took:?}");

    // A read of services cannot be made current, and says why.
    let err = client.get::<Value>("/services").await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("quorum") || msg.contains("leader"), "{msg}");
    // The node list answers from this manager's own copy.
    let out = c.ctl_ok(m1, &["node", "ls"]);
    assert!(out.contains("Down") || out.contains("Unreachable"), "{out}");

    // A joining manager is refused with an explanation instead of hanging.
    let m4 = c.start_join("m4", &token, m1);
    let status = c.wait_exit(m4, Duration::from_secs(60)).expect("join gives up");
    assert!(!status.success());
    let log = c.nodes[m4].log_text();
    assert!(
        log.contains("quorum") || log.contains("no leader"),
        "join error explains:\n{log}"
    );
}
