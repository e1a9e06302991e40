use std::collections::BTreeSet;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use swarm_ctl::client::ApiClient;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::service_names;
use crate::support::service_spec;

/// The service's virtual IPs and its tasks' overlay addresses as node `i` shows them, keyed by
/// "vip NETWORK" and "TASKID NETWORK"; None until every task has its addresses.
async fn addresses_of(c: &Cluster, i: usize, service: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let svc: Value = c.nodes[i].client().get(&format!("/services/{service}")).await.ok()?;
    let mut out = std::collections::BTreeMap::new();
    for vip in svc["Endpoint"]["VirtualIPs"].as_array().into_iter().flatten() {
        out.insert(format!("vip {}", vip["NetworkID"]), vip["Addr"].as_str()?.to_string());
    }
    for t in crate::support::tasks_of(c, i, service).await? {
        let attachments = t["NetworksAttachments"].as_array()?;
        for a in attachments {
            out.insert(
                format!("{} {}", t["ID"], a["Network"]["ID"]),
                a["Addresses"][0].as_str()?.to_string(),
            );
        }
    }
    Some(out)
}

#[derive(Default)]
struct LoadLog {
    /// (name, started, finished) of every create that returned success.
    ok: Vec<(String, Instant, Instant)>,
    failed: Vec<String>,
}

/// Kill -9 the leader under a steady stream of `service create` calls: the others elect a
/// leader and accept writes again, every acknowledged create survives, and the killed manager
/// restarts with `swarmd run` and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_under_load_loses_no_acknowledged_write() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    c.join("m2", &token, m1);
    c.join("m3", &token, m1);
    let leader = c.wait_leader(Duration::from_secs(30)).await;

    // Addresses: a service on an overlay, whose VIP and task addresses must outlive the leader.
    c.ctl_ok(m1, &["network", "create", "pinned-net"]);
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "pinned",
            "--replicas",
            "3",
            "--network",
            "pinned-net",
        ]
        .into_iter()
        .chain(["swarm-test/busybox:latest", "sleep", "3600"])
        .collect::<Vec<_>>(),
    );
    let addresses_before = eventually("pinned has its addresses", Duration::from_secs(30), || {
        let c = &c;
        async move { addresses_of(c, m1, "pinned").await.filter(|a| a.len() == 4) }
    })
    .await;

    // Phase: steady load from four clients spread over all managers.
    let clients: Vec<ApiClient> = c
        .nodes
        .iter()
        .map(|n| n.client().with_timeout(Duration::from_secs(15)))
        .collect();
    let dead: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let log: Arc<Mutex<LoadLog>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (clients, dead, log, stop) = (clients.clone(), dead.clone(), log.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let target = (w + n) % clients.len();
                n += 1;
                if dead.lock().unwrap().contains(&target) {
                    continue;
                }
                let name = format!("load-{w}-{n}");
                let started = Instant::now();
                let res: Result<Value, _> = clients[target].post("/services/create", &service_spec(&name)).await;
                let finished = Instant::now();
                match res {
                    Ok(_) => log.lock().unwrap().ok.push((name, started, finished)),
                    Err(e) => {
                        log.lock().unwrap().failed.push(format!("{name}: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = log.lock().unwrap().ok.len();
    assert!(
        before_kill > 10,
        "the load is flowing before the kill ({before_kill} creates)"
    );

    // Phase: kill -9 the leader.
    dead.lock().unwrap().insert(leader);
    let killed_at = Instant::now();
    c.kill(leader);

    // Phase: wait for the first create that started after the kill to succeed, then a bit more.
    let first_after = eventually(
        "a write accepted after the leader was killed",
        Duration::from_secs(60),
        || {
            let log = log.clone();
            async move {
                let log = log.lock().unwrap();
                log.ok
                    .iter()
                    .filter(|(_, started, _)| *started >= killed_at)
                    .map(|(_, _, finished)| *finished)
                    .min()
            }
        },
    )
    .await;
    let failover = first_after - killed_at;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (acked, failed) = {
        let log = log.lock().unwrap();
        let acked: BTreeSet<String> = log.ok.iter().map(|(n, _, _)| n.clone()).collect();
        (acked, log.failed.clone())
    };
    eprintln!(
        "leader failover: kill -9 -> first accepted write = {:.2} s; {} creates acknowledged, {} failed",
        failover.as_secs_f64(),
        acked.len(),
        failed.len()
    );
    for f in failed.iter().take(5) {
        eprintln!("  failed: {f}");
    }
    assert!(
        failed.iter().all(|f| f.contains("quorum")
            || f.contains("leader")
            || f.contains("connect")
            || f.contains("discarded")
            || f.contains("did not answer")),
        "failures name the cause: {failed:?}"
    );

    // Phase: every acknowledged create is on both survivors.
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &i in &survivors {
        eventually(
            "survivor has every acknowledged service",
            Duration::from_secs(30),
            || {
                let acked = acked.clone();
                let c = &c;
                async move {
                    let names = service_names(c, i).await?;
                    let missing: Vec<_> = acked.difference(&names).collect();
                    missing.is_empty().then_some(())
                }
            },
        )
        .await;
    }

    // Phase: the new leader and every survivor show the same addresses, still distinct.
    for &i in &survivors {
        assert_eq!(addresses_of(&c, i, "pinned").await.as_ref(), Some(&addresses_before));
    }
    let distinct: BTreeSet<&String> = addresses_before.values().collect();
    assert_eq!(distinct.len(), addresses_before.len(), "{addresses_before:?}");

    // Phase: the killed manager restarts without flags and catches up.
    c.restart(leader);
    eventually(
        "restarted manager has every acknowledged service",
        Duration::from_secs(60),
        || {
            let acked = acked.clone();
            let c = &c;
            async move {
                let names = service_names(c, leader).await?;
                acked.is_subset(&names).then_some(())
            }
        },
    )
    .await;
    let leaders = eventually("exactly one leader among the three", Duration::from_secs(30), || {
        let out = c.ctl_ok(leader, &["node", "ls"]);
        async move {
            let leaders = out.lines().filter(|l| l.contains("Leader")).count();
            let reachable = out.lines().filter(|l| l.contains("Reachable")).count();
            (leaders == 1 && reachable == 2).then_some(leaders)
        }
    })
    .await;
    assert_eq!(leaders, 1);
}
