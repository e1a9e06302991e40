use std::time::Duration;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::service_spec;

fn sorted_services(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| a["ID"].as_str().cmp(&b["ID"].as_str()));
    v
}

/// Stop all three managers and start them again: the state is identical, versions included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_keeps_state_and_versions() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    c.join("m2", &token, m1);
    c.join("m3", &token, m1);
    let client = c.nodes[m1].client();
    for i in 0..10 {
        let _: Value = client
            .post("/services/create", &service_spec(&format!("svc{i}")))
            .await
            .unwrap();
    }
    // An update moves the version forward; a rotation changes the cluster.
    let svc: Value = client.get("/services/svc3").await.unwrap();
    let version = svc["Version"]["Index"].as_u64().unwrap();
    let mut spec = svc["Spec"].clone();
    spec["Labels"]["tier"] = "db".into();
    let _: Value = client
        .post(&format!("/services/svc3/update?version={version}"), &spec)
        .await
        .unwrap();
    c.ctl_ok(m1, &["swarm", "join-token", "--rotate", "worker"]);
    c.ctl_ok(m1, &["service", "rm", "svc9"]);

    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let before_services = sorted_services(c.nodes[leader].client().get("/services").await.unwrap());
    let before_swarm: Value = c.nodes[leader].client().get("/swarm").await.unwrap();
    assert_eq!(before_services.len(), 9);

    for i in 0..3 {
        let status = c.stop(i).unwrap();
        assert!(status.success());
    }
    // Start them together: each waits for the others to form a quorum.
    for i in 0..3 {
        c.start_run(i);
    }
    for i in 0..3 {
        eventually("restarted manager serves its state", Duration::from_secs(60), || {
            let client = c.nodes[i].client();
            let before = before_services.clone();
            async move {
                let after: Vec<Value> = client.get("/services").await.ok()?;
                (sorted_services(after) == before).then_some(())
            }
        })
        .await;
        let swarm: Value = c.nodes[i].client().get("/swarm").await.unwrap();
        assert_eq!(swarm, before_swarm, "cluster object identical on {}", c.nodes[i].name);
    }
    c.wait_leader(Duration::from_secs(30)).await;
    // Writes work again, on top of the old versions.
    let _: Value = c.nodes[2]
        .client()
        .post("/services/create", &service_spec("after"))
        .await
        .unwrap();
    let after: Value = c.nodes[0].client().get("/services/after").await.unwrap();
    let max_before = before_services
        .iter()
        .map(|s| s["Version"]["Index"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(after["Version"]["Index"].as_u64().unwrap() > max_before);
}
