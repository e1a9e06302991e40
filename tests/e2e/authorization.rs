use std::sync::Arc;
use std::time::Duration;

use swarm_net::peer_client::PeerClient;
use swarm_net::peer_client::PeerError;
use swarm_net::peer_client::full;
use swarm_net::tls;

use crate::support::Cluster;

fn status_of(r: Result<bytes::Bytes, PeerError>) -> (u16, String) {
    match r {
        Err(PeerError::Status { status, message, .. }) => (status, message),
        other => panic!("expected an HTTP error status, got {other:?}"),
    }
}

/// A worker certificate cannot reach raft or the manager-only endpoints; a caller without a
/// certificate is turned away too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_certificates_cannot_reach_raft() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let wt = c.token(m1, "worker");
    let w = c.join("w1", &wt, m1);
    let certs = c.nodes[w].data_dir.join("certs");
    let read = |f: &str| std::fs::read_to_string(certs.join(f)).unwrap();
    let (ca, cert, key) = (read("ca.pem"), read("node.pem"), read("node.key"));
    let addr = c.nodes[m1].addr.clone();

    let worker = Arc::new(PeerClient::new(
        tls::client_config(&ca, tls::NodeIdentity::new(&cert, &key).unwrap()).unwrap(),
    ));
    let t = Duration::from_secs(10);
    for path in [
        "/raft/append",
        "/raft/vote",
        "/raft/forward",
        "/raft/membership",
        "/raft/snapshot",
        "/join/raft",
    ] {
        let (status, message) = status_of(worker.call(&addr, path, Some(full(vec![1, 2, 3])), t).await);
        assert_eq!(status, 403, "{path}: {message}");
        assert!(
            message.contains("is a worker") && message.contains("managers only"),
            "{path}: {message}"
        );
    }
    let (status, _) = status_of(worker.call(&addr, "/raft/ping", None, t).await);
    assert_eq!(status, 403);

    let anonymous = PeerClient::new(tls::pinned_client_config(&ca).unwrap());
    let (status, message) = status_of(anonymous.call(&addr, "/raft/append", Some(full(vec![0])), t).await);
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("client certificate"), "{message}");
    // The CA itself is public: joiners need it to check their token.
    let ca_served = anonymous.call(&addr, "/ca", None, t).await.unwrap();
    assert_eq!(ca_served, ca.as_bytes());
}

fn join_error(c: &mut Cluster, name: &str, token: &str, via: usize) -> String {
    let i = c.start_join(name, token, via);
    let status = c.wait_exit(i, Duration::from_secs(60)).expect("join gives up");
    assert!(!status.success(), "join with a bad token must fail");
    c.nodes[i].log_text()
}

/// Wrong, rotated, foreign and malformed tokens are refused, each with a message that names
/// the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_join_tokens_are_refused_with_the_reason() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let good = c.token(m1, "worker");

    // Right cluster, wrong secret.
    let (prefix, _) = good.rsplit_once('-').unwrap();
    let wrong = format!("{prefix}-{}", "0".repeat(25));
    let log = join_error(&mut c, "wrong", &wrong, m1);
    assert!(
        log.contains("matches neither the worker nor the manager token"),
        "{log}"
    );

    // A rotated token.
    c.ctl_ok(m1, &["swarm", "join-token", "--rotate", "worker"]);
    let log = join_error(&mut c, "rotated", &good, m1);
    assert!(log.contains("has been rotated"), "{log}");
    let fresh = c.token(m1, "worker");
    assert_ne!(fresh, good);
    c.join("ok", &fresh, m1);

    // A token of another cluster: the joiner sees the CA digest mismatch before sending a CSR.
    let other = c.init("other", &[]);
    let foreign = c.token(other, "worker");
    let log = join_error(&mut c, "foreign", &foreign, m1);
    assert!(log.contains("does not match the join token"), "{log}");

    // Not a token at all.
    let log = join_error(&mut c, "garbage", "SWMTKN-1-nope", m1);
    assert!(log.contains("invalid join token"), "{log}");
}
