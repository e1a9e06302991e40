use std::time::Duration;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::service_names;
use crate::support::service_spec;

/// With a short snapshot interval, snapshots are taken and the log is purged behind them, and a
/// manager that joins later catches up by receiving a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_catch_up_a_late_manager() {
    let mut c = Cluster::new();
    let m1 = c.init(
        "m1",
        &["--snapshot-interval", "20", "--log-entries-for-slow-followers", "5"],
    );
    let swarm: Value = c.nodes[m1].client().get("/swarm").await.unwrap();
    assert_eq!(swarm["Spec"]["Raft"]["SnapshotInterval"], 20);
    let token = c.token(m1, "manager");
    let m2 = c.join("m2", &token, m1);
    let client = c.nodes[m2].client();
    for i in 0..60 {
        let _: Value = client
            .post("/services/create", &service_spec(&format!("s{i}")))
            .await
            .unwrap();
    }

    for i in [m1, m2] {
        let status = eventually("a snapshot and a purged log", Duration::from_secs(30), || {
            let c = &c;
            async move {
                let r = c.raft(i).await?;
                let snapshot = r["snapshot"].as_u64()?;
                let purged = r["purged"].as_u64()?;
                (snapshot >= 40 && purged > 0 && purged <= snapshot).then_some(r)
            }
        })
        .await;
        let snaps: Vec<_> = std::fs::read_dir(c.nodes[i].data_dir.join("raft/snapshots"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
            .collect();
        assert_eq!(
            snaps.len(),
            1,
            "one snapshot file kept on {}: {status}",
            c.nodes[i].name
        );
    }

    // A third manager joins after the log was purged: it can only catch up from a snapshot.
    let m3 = c.join("m3", &token, m1);
    let r = eventually("late manager installed a snapshot", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let r = c.raft(m3).await?;
            r["snapshot"].as_u64().map(|_| r)
        }
    })
    .await;
    assert_eq!(
        r["voters"].as_object().unwrap().len(),
        3,
        "late manager became a voter: {r}"
    );
    let names = service_names(&c, m3).await.unwrap();
    assert_eq!(names.len(), 60);

    // It survives a restart from its own snapshot and log.
    c.stop(m3);
    c.restart(m3);
    let names = service_names(&c, m3).await.unwrap();
    assert_eq!(names.len(), 60);
}
