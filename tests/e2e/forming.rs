use std::time::Duration;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::eventually;

/// `swarmd init` plus two `swarmd join --token <manager token>` give three managers; `node ls`
/// on any of them shows all three with exactly one Leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_managers_form_a_cluster_with_one_leader() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let init_out = c.nodes[m1].stdout();
    assert!(
        init_out.contains("swarmd join --token SWMTKN-1-"),
        "init prints join commands:\n{init_out}"
    );
    let token = c.token(m1, "manager");
    assert!(
        token.starts_with("SWMTKN-1-") && token.len() == 9 + 50 + 1 + 25,
        "{token}"
    );
    let m2 = c.join("m2", &token, m1);
    let m3 = c.join("m3", &token, m2);

    for i in [m1, m2, m3] {
        let table = eventually("three ready managers in node ls", Duration::from_secs(30), || {
            let out = c.ctl_ok(i, &["node", "ls"]);
            async move {
                let rows: Vec<&str> = out.lines().skip(1).collect();
                let leaders = rows.iter().filter(|r| r.contains("Leader")).count();
                let reachable = rows.iter().filter(|r| r.contains("Reachable")).count();
                let ready = rows.iter().filter(|r| r.contains("Ready")).count();
                (rows.len() == 3 && leaders == 1 && reachable == 2 && ready == 3).then_some(out.clone())
            }
        })
        .await;
        let star = table.lines().filter(|l| l.contains(" * ")).count();
        assert_eq!(star, 1, "the local node is marked with *:\n{table}");
    }

    // The JSON form carries the same facts.
    let nodes: Vec<Value> = serde_json::from_str(&c.ctl_ok(m3, &["node", "ls", "--format", "json"])).unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["Spec"]["Role"] == "manager"));
    assert_eq!(nodes.iter().filter(|n| n["ManagerStatus"]["Leader"] == true).count(), 1);

    // /info reports a manager with the cluster and three managers.
    let info: Value = c.nodes[m2].client().get("/info").await.unwrap();
    assert_eq!(info["Swarm"]["ControlAvailable"], true);
    assert_eq!(info["Swarm"]["Managers"], 3);
    assert_eq!(info["Swarm"]["RemoteManagers"].as_array().unwrap().len(), 3);
    assert!(info["Swarm"]["Cluster"]["JoinTokens"].is_null(), "no tokens in /info");
    let swarm: Value = c.nodes[m2].client().get("/swarm").await.unwrap();
    assert!(swarm["RootCA"].is_null(), "the CA key is never shown");
    assert!(swarm["JoinTokens"]["Worker"].as_str().unwrap().starts_with("SWMTKN-1-"));

    // A worker joins and registers; it is listed without manager status.
    let wt = c.token(m1, "worker");
    let w = c.join("w1", &wt, m3);
    let nodes: Vec<Value> = serde_json::from_str(&c.ctl_ok(m1, &["node", "ls", "--format", "json"])).unwrap();
    let worker: Vec<&Value> = nodes.iter().filter(|n| n["Spec"]["Role"] == "worker").collect();
    assert_eq!(worker.len(), 1);
    assert!(worker[0]["ManagerStatus"].is_null());
    // The worker's own socket refuses cluster state like dockerd does.
    let out = c.ctl(w, &["node", "ls"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a swarm manager"));

    // A worker restarts from its data dir without flags.
    assert!(c.stop(w).unwrap().success());
    c.restart(w);
    let out = c.ctl(w, &["node", "ls"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a swarm manager"));

    // SIGTERM stops every node cleanly.
    for i in 0..c.nodes.len() {
        let status = c.stop(i).expect("was running");
        assert!(status.success(), "{} exited with {status}", c.nodes[i].name);
        assert!(!c.nodes[i].socket().exists(), "control socket removed on exit");
    }
}
