use std::sync::Arc;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::service_spec;

/// Many writers at once: their proposals share raft appends and fsyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_fsyncs() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let before = c.raft(m1).await.unwrap()["log_writes"].clone();
    let client = Arc::new(c.nodes[m1].client());
    let mut tasks = Vec::new();
    for w in 0..32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..25 {
                let _: Value = client
                    .post("/services/create", &service_spec(&format!("gc-{w}-{k}")))
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = c.raft(m1).await.unwrap()["log_writes"].clone();
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    let (entries, fsyncs) = (delta("entries_written"), delta("fsyncs"));
    eprintln!("800 concurrent creates: {entries} log entries, {fsyncs} fsyncs");
    assert!(entries >= 800, "{after}");
    assert!(
        entries as f64 >= 1.5 * fsyncs as f64,
        "32 concurrent writers should share fsyncs: {entries} entries took {fsyncs} fsyncs"
    );
    let list: Vec<Value> = c.nodes[m1].client().get("/services").await.unwrap();
    assert_eq!(list.len(), 800);
}
