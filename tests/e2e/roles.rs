//! Promotion and demotion of running nodes, each quorum-safe.

use std::time::Duration;

use serde_json::Value;
use swarm_model::NodeState;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::view::NodeView;

/// The raft voters node `i` knows of, as node IDs.
async fn voters(c: &Cluster, i: usize) -> Option<Vec<String>> {
    let r = c.raft(i).await?;
    let mut v: Vec<String> = r["voters"]
        .as_object()?
        .values()
        .filter_map(|a| a["node_id"].as_str().map(str::to_string))
        .collect();
    v.sort();
    Some(v)
}

/// `(role, manager status)` of a node by hostname, from `node ls` on node `i`.
async fn role_of(c: &Cluster, i: usize, host: &str) -> Option<(String, String)> {
    let nodes: Vec<Value> = c.nodes[i].client().get("/nodes").await.ok()?;
    let n = nodes.iter().find(|n| n["Description"]["Hostname"] == host)?;
    let status = if n["ManagerStatus"]["Leader"] == true {
        "leader".to_string()
    } else {
        n["ManagerStatus"]["Reachability"].as_str().unwrap_or("").to_string()
    };
    Some((n["Spec"]["Role"].as_str()?.to_string(), status))
}

fn fails_with(c: &Cluster, i: usize, args: &[&str], expect: &str) {
    let out = c.ctl(i, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "swarmctl {args:?} should fail");
    assert!(stderr.contains(expect), "swarmctl {args:?}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_promoted_and_managers_demoted_without_risking_quorum() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &["--hostname", "m1"]);
    let wt = c.token(m1, "worker");
    let w1 = c.join("w1", &wt, m1);
    let w2 = c.join("w2", &wt, m1);
    let ids = c.node_ids();
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "steady",
            "--replicas",
            "3",
            "swarm-test/busybox:latest",
        ],
    );

    eprintln!("--- the last manager cannot be demoted");
    fails_with(
        &c,
        m1,
        &["node", "demote", "m1"],
        "attempting to demote the last manager of the swarm",
    );

    eprintln!("--- promoted workers become raft voters and serve the manager API");
    let out = c.ctl_ok(m1, &["node", "promote", "w1", "w2"]);
    assert!(out.contains("Node w1 promoted to a manager in the swarm."), "{out}");
    let mut all = ids.clone();
    all.sort();
    eventually("three voters", Duration::from_secs(60), || async {
        (voters(&c, m1).await? == all).then_some(())
    })
    .await;
    for host in ["w1", "w2"] {
        eventually(
            "the promoted node is a reachable manager",
            Duration::from_secs(30),
            || async {
                let (role, status) = role_of(&c, m1, host).await?;
                (role == "manager" && status == "reachable").then_some(())
            },
        )
        .await;
    }
    let seen_by_w1: Vec<Value> = c.nodes[w1]
        .client()
        .get("/nodes")
        .await
        .expect("w1 serves the manager API");
    assert_eq!(seen_by_w1.len(), 3);
    // The raft state (which holds the CA key) is rebuilt by the switch: still private.
    for i in [w1, w2] {
        use std::os::unix::fs::PermissionsExt;
        let raft = c.nodes[i].data_dir.join("raft");
        let mode = std::fs::metadata(&raft).expect("the raft dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} after the promotion", raft.display());
    }
    let out = c.ctl_ok(m1, &["node", "promote", "w1"]);
    assert!(out.contains("already a manager"), "{out}");

    eprintln!("--- with w2 down, demoting w1 would leave no reachable majority: refused");
    c.kill(w2);
    eventually("w2 unreachable", Duration::from_secs(30), || async {
        (role_of(&c, m1, "w2").await?.1 == "unreachable").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    fails_with(&c, m1, &["node", "demote", "w1"], "loss of quorum");
    c.restart(w2);
    eventually("w2 reachable again", Duration::from_secs(60), || async {
        (role_of(&c, m1, "w2").await?.1 == "reachable").then_some(())
    })
    .await;

    eprintln!("--- the leader itself is demoted: it leaves raft and carries on as a worker");
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let leader_name = c.nodes[leader].name.clone();
    let out = c.ctl_ok(leader, &["node", "demote", &leader_name]);
    assert!(
        out.contains(&format!("Manager {leader_name} demoted in the swarm.")),
        "{out}"
    );
    let others: Vec<usize> = [m1, w1, w2].into_iter().filter(|i| *i != leader).collect();
    let mut remaining: Vec<String> = others.iter().map(|i| c.node_id(*i)).collect();
    remaining.sort();
    eventually("two voters left", Duration::from_secs(60), || async {
        (voters(&c, others[0]).await? == remaining).then_some(())
    })
    .await;
    eventually("the old leader is a ready worker", Duration::from_secs(60), || async {
        let nodes: Vec<Value> = c.nodes[others[0]].client().get("/nodes").await.ok()?;
        let n = nodes
            .iter()
            .find(|n| n["Description"]["Hostname"] == leader_name.as_str())?;
        (n["Spec"]["Role"] == "worker" && n["ManagerStatus"].is_null() && n.node_state() == NodeState::Ready)
            .then_some(())
    })
    .await;
    eventually("the demoted node runs as a worker", Duration::from_secs(60), || {
        let out = c.ctl(leader, &["node", "ls"]);
        async move { (!out.status.success()).then_some(()) }
    })
    .await;
    let new_leader = c.wait_leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader, "the demoted leader handed leadership over");
    eventually("its tasks still run", Duration::from_secs(60), || {
        let client = c.nodes[new_leader].client();
        async move {
            let svcs: Vec<Value> = client.get("/services?status=true").await.ok()?;
            (svcs.first()?["ServiceStatus"]["RunningTasks"] == 3).then_some(())
        }
    })
    .await;
    // Writes still work with the two remaining managers.
    c.ctl_ok(
        new_leader,
        &["service", "create", "--name", "after", "swarm-test/busybox:latest"],
    );
}

/// Found by the fault suite (seed 82395171): the leader, killed, then demoted and promoted again
/// while it was down, came back as a manager outside raft. It hears of its role through its
/// agent, whose session goes through its own manager, which had no leader (nobody sends to a
/// removed member), so it never learned either change. A manager without a leader now asks the
/// leader what it is, and takes the role the cluster gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_whose_role_changed_while_it_was_down_takes_its_new_role_on_restart() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &["--hostname", "m1"]);
    let mt = c.token(m1, "manager");
    let m2 = c.join("m2", &mt, m1);
    let _m3 = c.join("m3", &mt, m1);
    eventually("three voters", Duration::from_secs(60), || async {
        (voters(&c, m1).await?.len() == 3).then_some(())
    })
    .await;
    for other in ["m2", "m3"] {
        eventually("the others reachable", Duration::from_secs(60), || async {
            (role_of(&c, m1, other).await?.1 == "reachable").then_some(())
        })
        .await;
    }
    assert_eq!(c.wait_leader(Duration::from_secs(30)).await, m1);

    eprintln!("--- the leader, demoted and promoted again while down: a manager again, with a new raft id");
    let before = local_role(&c, m1);
    c.kill(m1);
    eventually("a new leader", Duration::from_secs(60), || async {
        (!c.raft(m2).await?["leader"].is_null() && voters(&c, m2).await?.len() == 3).then_some(())
    })
    .await;
    eventually("m1 demoted", Duration::from_secs(60), || async {
        c.ctl(m2, &["node", "demote", "m1"]).status.success().then_some(())
    })
    .await;
    eventually("m1 out of raft", Duration::from_secs(60), || async {
        (voters(&c, m2).await?.len() == 2).then_some(())
    })
    .await;
    c.ctl_ok(m2, &["node", "promote", "m1"]);
    c.restart(m1);
    eventually(
        "m1 a raft member again, under its new raft id",
        Duration::from_secs(90),
        || async {
            let (role, raft_id, initialised) = local_role(&c, m1);
            let member = !c.raft(m1).await?["leader"].is_null() && voters(&c, m1).await?.len() == 3;
            (role == "manager" && raft_id != before.1 && initialised && member).then_some(())
        },
    )
    .await;

    eprintln!("--- demoted while down: a worker on restart");
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let via = if leader == m1 { m2 } else { leader };
    if leader == m1 {
        // Hand the leadership over first: kill it and wait for the others to elect.
        c.kill(m1);
        eventually("a new leader", Duration::from_secs(60), || async {
            (!c.raft(m2).await?["leader"].is_null()).then_some(())
        })
        .await;
    } else {
        c.kill(m1);
    }
    eventually("m1 demoted", Duration::from_secs(60), || async {
        c.ctl(via, &["node", "demote", "m1"]).status.success().then_some(())
    })
    .await;
    c.restart(m1);
    eventually("m1 runs as a worker", Duration::from_secs(90), || async {
        (local_role(&c, m1).0 == "worker" && c.raft(m1).await.is_none()).then_some(())
    })
    .await;
    eventually(
        "m1 a ready worker in the node list",
        Duration::from_secs(60),
        || async {
            let nodes: Vec<Value> = c.nodes[via].client().get("/nodes").await.ok()?;
            let n = nodes.iter().find(|n| n["Description"]["Hostname"] == "m1")?;
            (n["Spec"]["Role"] == "worker" && n["ManagerStatus"].is_null() && n.node_state() == NodeState::Ready)
                .then_some(())
        },
    )
    .await;
}

/// `(role, raft id, initialised)` from node `i`'s own `node.json`: the role it runs in.
fn local_role(c: &Cluster, i: usize) -> (String, Option<u64>, bool) {
    let text = std::fs::read_to_string(c.nodes[i].data_dir.join("node.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    (
        v["role"].as_str().unwrap_or_default().to_string(),
        v["raft_id"].as_u64(),
        v["initialised"].as_bool().unwrap_or(false),
    )
}
