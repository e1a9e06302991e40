//! Overlay networks across nodes that really are separate hosts (network namespaces).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::containers_of_service;
use crate::support::eventually;
use crate::support::hosts::Hosts;
use crate::support::resolver::FakeResolver;
use crate::support::tasks_of;

const IMAGE: &str = "swarm-test/busybox:latest";

/// A manager and a worker, each in its own namespace with its own address: the cluster forms
/// over the test's underlay, the nodes are known by those addresses, a service on an overlay
/// gets one task on each with distinct addresses, and each node hears of the other's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_separate_hosts_share_an_overlays_addresses() {
    let Some(hosts) = Hosts::new("a", 2) else { return };
    let (c, m1) = cluster_on(&hosts, 2, &[]);
    let w1 = m1 + 1;

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

    // Removing the services leaves nothing behind on either node: no bridge, VXLAN device or
    // veth, no FDB entry, no NAT rule. Their addresses are free again: a new service on the
    // network gets the same ones.
    let app_addresses = addresses_held(&c, m1, "app").await;
    assert_eq!(app_addresses.len(), 3, "a VIP and two tasks: {app_addresses:?}");
    let app: Value = c.nodes[m1].client().get("/services/app").await.expect("app");
    let app_id = app["ID"].as_str().unwrap_or_default().to_string();
    c.ctl_ok(m1, &["service", "rm", "app"]);
    left_clean(&hosts, 2).await;
    // A task's addresses are free once the managers know it stopped.
    eventually("app's tasks are known to have stopped", Duration::from_secs(60), || {
        let (client, app_id) = (c.nodes[m1].client(), app_id.clone());
        async move {
            let tasks: Vec<Value> = client.get("/tasks").await.ok()?;
            let live = [
                "new",
                "pending",
                "assigned",
                "accepted",
                "preparing",
                "ready",
                "starting",
                "running",
            ];
            tasks
                .iter()
                .filter(|t| t["ServiceID"] == app_id.as_str())
                .all(|t| !live.contains(&t["Status"]["State"].as_str().unwrap_or_default()))
                .then_some(())
        }
    })
    .await;
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "app2",
            "--replicas",
            "2",
            "--network",
            "appnet",
            IMAGE,
            "sleep",
            "3600",
        ],
    );
    assert_eq!(addresses_held(&c, m1, "app2").await, app_addresses);
    let appnet_subnet = subnet_of(&c, m1, "appnet").await;
    c.ctl_ok(m1, &["service", "rm", "app2"]);
    left_clean(&hosts, 2).await;
    c.ctl_ok(m1, &["network", "rm", "appnet", "sealed"]);
    // The subnet is back in the pool too.
    c.ctl_ok(m1, &["network", "create", "again"]);
    assert_eq!(subnet_of(&c, m1, "again").await, appnet_subnet);
    c.ctl_ok(m1, &["network", "rm", "again"]);
}

/// The VIP and the addresses of the two running tasks of service `name`.
async fn addresses_held(c: &Cluster, m1: usize, name: &str) -> BTreeSet<String> {
    let svc: Value = c.nodes[m1]
        .client()
        .get(&format!("/services/{name}"))
        .await
        .expect("the service");
    let mut held: BTreeSet<String> = running(c, m1, name, 2).await.iter().map(overlay_addr).collect();
    let vip = svc["Endpoint"]["VirtualIPs"][0]["Addr"].as_str().unwrap_or_default();
    held.insert(vip.split('/').next().unwrap_or_default().to_string());
    held
}

/// The subnet of network `name`.
async fn subnet_of(c: &Cluster, m1: usize, name: &str) -> String {
    let net: Value = c.nodes[m1]
        .client()
        .get(&format!("/networks/{name}"))
        .await
        .expect("the network");
    net["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until none of the `count` hosts keeps anything of an overlay: no bridge, VXLAN device
/// or container veth, no FDB entry for a task's MAC, and no NAT table of ours.
async fn left_clean(hosts: &Hosts, count: usize) {
    for i in 1..=count {
        let ns = hosts.ns(i);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let links: Vec<String> = links_in(&ns)
                .into_iter()
                .filter(|l| ["swbr", "swvx", "swh"].iter().any(|p| l.starts_with(p)))
                .collect();
            let fdb = ip_tool("bridge", &["-n", &ns, "fdb", "show"]);
            let task_macs: Vec<&str> = fdb.lines().filter(|l| l.starts_with("02:42:0a")).collect();
            let nat = ip_tool("ip", &["netns", "exec", &ns, "nft", "list", "ruleset"]);
            if links.is_empty() && task_macs.is_empty() && !nat.contains("swarm") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "left on host {i} after 60 s: links {links:?}, FDB {task_macs:?}, nft {nat}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What `tool args` prints (an empty string when it fails).
fn ip_tool(tool: &str, args: &[&str]) -> String {
    std::process::Command::new(tool)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A stack on two hosts whose `app` calls `db` by its short name, as in every Swarm tutorial:
/// the name resolves to db's VIP inside app's container, `tasks.db` to its running tasks, other
/// names go to the node's upstream resolver (a fake one given with `--dns-upstream`), the VIP
/// spreads connections over all three tasks on both nodes, and a killed task leaves the VIP's
/// rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stacks_services_reach_each_other_by_name_across_hosts() {
    let Some(hosts) = Hosts::new("d", 2) else { return };
    hosts.add_address(1, "198.18.0.250/24");
    let outside: std::net::Ipv4Addr = "192.0.2.77".parse().expect("an address");
    let upstream = FakeResolver::start(
        &hosts.ns(1),
        "198.18.0.250:53".parse().expect("a socket address"),
        &[("outside.example", outside)],
    )
    .await;
    let (c, m1) = cluster_on(&hosts, 2, &["--dns-upstream", "198.18.0.250"]);
    ready(&c, m1, 2).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stack.yml");
    std::fs::write(
        &file,
        format!(
            r#"services:
  db:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    deploy:
      replicas: 3
  app:
    image: {IMAGE}
    command: ["sleep", "3600"]
"#
        ),
    )
    .expect("stack file");
    c.ctl_ok(m1, &["stack", "deploy", "-c", file.to_str().expect("utf-8"), "st"]);
    let db = running(&c, m1, "st_db", 3).await;
    running(&c, m1, "st_app", 1).await;
    let db_nodes: BTreeSet<&str> = db.iter().filter_map(|t| t["NodeID"].as_str()).collect();
    assert_eq!(db_nodes.len(), 2, "db runs on both hosts: {db:?}");
    let task_addrs: BTreeSet<String> = db.iter().map(overlay_addr).collect();
    let service: Value = c.nodes[m1].client().get("/services/st_db").await.expect("st_db");
    let vip = service["Endpoint"]["VirtualIPs"][0]["Addr"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .expect("db has a VIP")
        .to_string();
    let app = containers_of_service("st_app")
        .into_iter()
        .find(|(_, _, up)| *up)
        .map(|(name, _, _)| name)
        .expect("app's container");

    // Names: the short alias and the full name give the VIP, tasks.db every running task.
    let started = std::time::Instant::now();
    let found = eventually("app resolves db", Duration::from_secs(30), || {
        let out = exec(&app, &["nslookup", "db"]);
        let found = out.contains(&vip);
        async move { found.then_some(out) }
    })
    .await;
    eprintln!("name to VIP, from app's start: {:?}", started.elapsed());
    assert!(found.contains("127.0.0.11"), "asked the node's resolver: {found}");
    assert!(exec(&app, &["nslookup", "st_db"]).contains(&vip));
    let tasks = exec(&app, &["nslookup", "tasks.db"]);
    for a in &task_addrs {
        assert!(tasks.contains(a.as_str()), "tasks.db gives {a}: {tasks}");
    }
    assert!(!tasks.contains(&vip), "{tasks}");
    // Any other name is the upstream's.
    let before = upstream.asked();
    let out = exec(&app, &["nslookup", "outside.example"]);
    assert!(out.contains("192.0.2.77"), "forwarded upstream: {out}");
    assert!(upstream.asked() > before);
    let out = exec(&app, &["nslookup", "missing.example"]);
    assert!(!out.contains("Address: 1") && !out.contains("Address: 2"), "{out}");

    // The VIP spreads connections over the three tasks, on both hosts.
    let db_hosts: BTreeSet<String> = containers_of_service("st_db")
        .into_iter()
        .filter(|(_, _, up)| *up)
        .map(|(name, _, _)| exec(&name, &["hostname"]).trim().to_string())
        .collect();
    assert_eq!(db_hosts.len(), 3, "{db_hosts:?}");
    let served = fetch_many(&app, "db", 30);
    assert_eq!(served.len(), 30, "every request is answered: {served:?}");
    let spread: BTreeSet<String> = served.iter().cloned().collect();
    assert_eq!(spread, db_hosts, "30 connections reach all three tasks");

    // A killed task leaves the rotation: soon every request is answered by the others.
    let (victim, _, _) = containers_of_service("st_db")
        .into_iter()
        .find(|(_, _, up)| *up)
        .expect("a db container");
    let victim_host = exec(&victim, &["hostname"]).trim().to_string();
    let out = std::process::Command::new("docker")
        .args(["kill", &victim])
        .output()
        .expect("docker kill");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let killed = std::time::Instant::now();
    eventually(
        "the killed task is out of db's rotation",
        Duration::from_secs(60),
        || {
            let served = fetch_many(&app, "db", 10);
            let done = served.len() == 10 && !served.contains(&victim_host);
            async move { done.then_some(()) }
        },
    )
    .await;
    eprintln!("killed task out of the VIP's rotation after {:?}", killed.elapsed());
    c.ctl_ok(m1, &["stack", "rm", "st"]);
}

/// The first command of any Swarm tutorial, `service create --publish 8080:80`, on three hosts:
/// the port answers on every node's address, also on the manager that runs no task of the
/// service, and connections to any node spread over both tasks on the two workers; udp flows
/// too. When the last service publishing leaves, the port stops answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_port_answers_on_every_node() {
    let Some(hosts) = Hosts::new("m", 3) else { return };
    let (c, m1) = cluster_on(&hosts, 3, &[]);
    ready(&c, m1, 3).await;

    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "edge",
            "--replicas",
            "2",
            "--replicas-max-per-node",
            "1",
            "--constraint",
            "node.role==worker",
            "--publish",
            "8080:80",
            "--publish",
            "5300:5353/udp",
            IMAGE,
            "sh",
            "-c",
            "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    );
    let tasks = running(&c, m1, "edge", 2).await;
    let on: BTreeSet<&str> = tasks.iter().filter_map(|t| t["NodeID"].as_str()).collect();
    assert_eq!(on.len(), 2, "one task on each worker: {tasks:?}");
    assert!(!on.contains(c.node_id(m1).as_str()), "none on the manager");
    let web_hosts: BTreeSet<String> = containers_of_service("edge")
        .into_iter()
        .filter(|(_, _, up)| *up)
        .map(|(name, _, _)| exec(&name, &["hostname"]).trim().to_string())
        .collect();
    assert_eq!(web_hosts.len(), 2, "{web_hosts:?}");

    // Every node answers, from another host's namespace, and spreads over both tasks.
    let client = hosts.ns(1);
    let started = std::time::Instant::now();
    for i in 1..=3 {
        let addr = format!("{}:8080", Hosts::addr(i));
        let served = spread_over(&format!("{addr} answers for both tasks"), 10, 2, || {
            let (client, addr) = (client.clone(), addr.clone());
            async move { fetch_in(&client, &addr, 10).await }
        })
        .await;
        assert_eq!(served, web_hosts, "{addr} reaches both tasks");
    }
    eprintln!(
        "published port answering on all three nodes after {:?}",
        started.elapsed()
    );

    // udp: busybox has no udp server, so the test serves one inside each task's namespace.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let servers: Vec<_> = containers_of_service("edge")
        .into_iter()
        .filter(|(_, _, up)| *up)
        .map(|(name, _, _)| udp_echo_in(&name, 5353, stop.clone()))
        .collect();
    for i in 1..=3 {
        let addr = format!("{}:5300", Hosts::addr(i));
        let spread = spread_over(&format!("{addr}/udp answers for both tasks"), 10, 2, || {
            let (client, addr) = (client.clone(), addr.clone());
            async move { udp_flows_in(&client, &addr, 10).await }
        })
        .await;
        assert_eq!(spread, web_hosts, "{addr}/udp reaches both tasks");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in servers {
        s.join().expect("the udp server ends");
    }

    c.ctl_ok(m1, &["service", "rm", "edge"]);
    eventually("the port stops answering", Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            fetch_in(&client, &format!("{}:8080", Hosts::addr(2)), 1)
                .await
                .is_empty()
                .then_some(())
        }
    })
    .await;
}

/// The seed-style stack on a manager and two workers: `web` (2 replicas, published through
/// the routing mesh) on `frontend`, `db` on `backend`, and `app` on both. It is deployed twice
/// side by side, once by the real docker CLI and once by swarmctl, and each deployment works
/// the same way: app reaches db and web by their short names; web shares no network with db
/// and cannot reach it; the published port answers on every node for both web tasks; after db
/// scales from 1 to 3, 30 connections from app reach all three; and with the overlays' VXLAN
/// devices down on app's node, a db task on another node is out of reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_stack_works_deployed_by_docker_and_by_swarmctl() {
    let Some(()) = crate::docker_cli::docker_available() else {
        return;
    };
    let Some(hosts) = Hosts::new("s", 3) else { return };
    let (c, m1) = cluster_on(&hosts, 3, &[]);
    ready(&c, m1, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = |port: u16| {
        format!(
            r#"services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["{port}:80"]
    networks: [frontend]
    deploy:
      replicas: 2
  app:
    image: {IMAGE}
    command: ["sleep", "3600"]
    networks: [frontend, backend]
  db:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
    networks: [backend]
networks:
  frontend: {{}}
  backend: {{}}
"#
        )
    };
    std::fs::write(dir.path().join("dk.yml"), stack(8086)).expect("stack file");
    std::fs::write(dir.path().join("sw.yml"), stack(8087)).expect("stack file");
    let docker = crate::docker_cli::Docker::new(&c, m1);
    let out = docker.run_in(dir.path(), &["stack", "deploy", "-c", "dk.yml", "dk"]);
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("sw.yml");
    c.ctl_ok(m1, &["stack", "deploy", "-c", file.to_str().expect("utf-8"), "sw"]);

    for (stack, port) in [("dk", 8086), ("sw", 8087)] {
        let name = |s: &str| format!("{stack}_{s}");
        running(&c, m1, &name("web"), 2).await;
        running(&c, m1, &name("db"), 1).await;
        let app_task = running(&c, m1, &name("app"), 1).await.remove(0);
        let app = container_of(app_task["ID"].as_str().unwrap_or_default());
        let web = containers_of_service(&name("web"));
        let web_hosts: BTreeSet<String> = web
            .iter()
            .filter(|(_, _, up)| *up)
            .map(|(n, _, _)| exec(n, &["hostname"]).trim().to_string())
            .collect();
        assert_eq!(web_hosts.len(), 2, "{stack}: {web_hosts:?}");

        // By short name, from app.
        eventually(
            &format!("{stack}: app reaches db and web"),
            Duration::from_secs(30),
            || {
                let ok = fetch_many(&app, "db", 1).len() == 1 && fetch_many(&app, "web", 1).len() == 1;
                async move { ok.then_some(()) }
            },
        )
        .await;
        // web and db share no network: no name, no way there.
        let db_task = running(&c, m1, &name("db"), 1).await.remove(0);
        let db_addr = overlay_addr(&db_task);
        let (web_container, _, _) = web.iter().find(|(_, _, up)| *up).expect("a web container").clone();
        assert!(
            fetch_many(&web_container, "db", 1).is_empty(),
            "{stack}: web resolves db"
        );
        assert!(
            fetch_many(&web_container, &db_addr, 1).is_empty(),
            "{stack}: web reaches db at {db_addr}"
        );

        // The published port, on every node.
        for i in 1..=3 {
            let addr = format!("{}:{port}", Hosts::addr(i));
            let served = spread_over(&format!("{stack}: {addr} answers"), 10, 2, || {
                let (client, addr) = (hosts.ns(1), addr.clone());
                async move { fetch_in(&client, &addr, 10).await }
            })
            .await;
            assert_eq!(served, web_hosts, "{stack}: {addr} reaches both web tasks");
        }

        // db from 1 to 3: the VIP spreads over all three.
        c.ctl_ok(m1, &["service", "scale", &format!("{}=3", name("db"))]);
        let db = running(&c, m1, &name("db"), 3).await;
        let all_running = std::time::Instant::now();
        let db_hosts: BTreeSet<String> = containers_of_service(&name("db"))
            .into_iter()
            .filter(|(_, _, up)| *up)
            .map(|(n, _, _)| exec(&n, &["hostname"]).trim().to_string())
            .collect();
        assert_eq!(db_hosts.len(), 3, "{stack}: {db_hosts:?}");
        let spread = spread_over(&format!("{stack}: 30 connections reach the 3 db tasks"), 30, 3, || {
            let served = fetch_many(&app, "db", 30);
            async move { served }
        })
        .await;
        assert_eq!(spread, db_hosts);
        eprintln!(
            "{stack}: new db tasks receiving VIP traffic {:?} after the API shows them running",
            all_running.elapsed()
        );

        // Only through the overlay: with the VXLAN devices down on app's node, a db task on
        // another node is out of reach, and back once they are up.
        let app_node = app_task["NodeID"].as_str().unwrap_or_default();
        let host = (1..=3).find(|i| c.node_id(i - 1) == app_node).expect("app's host");
        let Some(remote) = db
            .iter()
            .find(|t| t["NodeID"].as_str() != Some(app_node))
            .map(overlay_addr)
        else {
            panic!("{stack}: no db task on another node than app's: {db:?}");
        };
        assert!(pings(&app, &remote), "{stack}: app reaches db at {remote}");
        let ns = hosts.ns(host);
        let vxlans: Vec<String> = links_in(&ns).into_iter().filter(|l| l.starts_with("swvx")).collect();
        for v in &vxlans {
            ip(&["-n", &ns, "link", "set", v, "down"]);
        }
        let cut_off = !pings(&app, &remote);
        for v in &vxlans {
            ip(&["-n", &ns, "link", "set", v, "up"]);
        }
        assert!(
            cut_off,
            "{stack}: with the VXLAN devices down, {remote} is out of reach"
        );
        eventually(&format!("{stack}: db back in reach"), Duration::from_secs(30), || {
            let ok = pings(&app, &remote);
            async move { ok.then_some(()) }
        })
        .await;
    }
    let out = docker.run_in(dir.path(), &["stack", "rm", "dk"]);
    assert!(
        out.status.success(),
        "docker stack rm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.ctl_ok(m1, &["stack", "rm", "sw"]);
}

/// Host mode and source addresses on three hosts. The port published in host mode answers
/// only on the worker that runs the task; the one published through the mesh answers on
/// every node. The service asked for PROXY v2 headers, so through both the task learns the
/// client's own address (moby/moby#25526), and the task's status shows its host port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_mode_port_answers_only_where_its_task_runs_and_tasks_learn_the_client() {
    let Some(hosts) = Hosts::new("h", 3) else { return };
    let (c, m1) = cluster_on(&hosts, 3, &[]);
    ready(&c, m1, 3).await;

    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "pinned",
            "--constraint",
            "node.role==worker",
            "--label",
            "swarm-rs.proxy-protocol=v2",
            "--publish",
            "mode=host,published=8081,target=80",
            "--publish",
            "published=8082,target=80",
            IMAGE,
            "sh",
            "-c",
            "exec nc -ll -p 80 -e cat",
        ],
    );
    let task = running(&c, m1, "pinned", 1).await.remove(0);
    let node = task["NodeID"].as_str().unwrap_or_default().to_string();
    let on = (1..=3)
        .find(|i| c.node_id(i - 1) == node)
        .expect("the task runs on one of the hosts");
    assert_ne!(on, 1, "not on the manager: {task}");
    let ports = &task["Status"]["PortStatus"]["Ports"];
    assert_eq!(ports[0]["PublishedPort"], 8081, "{task}");
    assert_eq!(ports[0]["PublishMode"], "host", "{task}");
    let ps = c.ctl_ok(m1, &["service", "ps", "pinned"]);
    assert!(ps.contains("*:8081->80/tcp"), "{ps}");

    // The client is on host 1, which runs nothing of the service.
    let client = hosts.ns(1);
    for i in 1..=3 {
        let host_mode = format!("{}:8081", Hosts::addr(i));
        if i == on {
            let echoed = eventually(&format!("{host_mode} answers"), Duration::from_secs(30), || {
                let (client, addr) = (client.clone(), host_mode.clone());
                async move { echo_in(&client, &addr, b"hello").await }
            })
            .await;
            assert_proxied(&echoed, &Hosts::addr(1), &host_mode, b"hello");
        } else {
            assert_eq!(
                echo_in(&client, &host_mode, b"hello").await,
                None,
                "{host_mode} runs no task of the service and publishes nothing"
            );
        }
        let meshed = format!("{}:8082", Hosts::addr(i));
        let echoed = eventually(&format!("{meshed} answers"), Duration::from_secs(30), || {
            let (client, addr) = (client.clone(), meshed.clone());
            async move { echo_in(&client, &addr, b"mesh").await }
        })
        .await;
        assert_proxied(&echoed, &Hosts::addr(1), &meshed, b"mesh");
    }

    // Gone with the service.
    c.ctl_ok(m1, &["service", "rm", "pinned"]);
    let published_on = format!("{}:8081", Hosts::addr(on));
    eventually("the host-mode port closes", Duration::from_secs(60), || {
        let (client, addr) = (client.clone(), published_on.clone());
        async move { echo_in(&client, &addr, b"x").await.is_none().then_some(()) }
    })
    .await;
}

/// Swarm's worst networking complaint (moby/moby#26672) and a leader failover, on three
/// managers on three hosts. While db rolls through an update, and then while the leader is
/// killed, three clients keep going: one in a container opens a new connection to `db` every
/// 100 ms through its VIP, one opens a new connection every 100 ms to db's published port, and
/// one holds a single connection through the routing mesh to an echo service and sends on it
/// every 100 ms. None of them sees a failure, and the failover keeps every address and VIP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_no_failure_through_a_rolling_update_and_a_leader_failover() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::Ordering;

    let Some(hosts) = Hosts::new("z", 3) else { return };
    let mut c = Cluster::docker();
    let m1 = c.init_in("m1", &hosts.ns(1), &format!("{}:2377", Hosts::addr(1)), &[]);
    let token = c.token(m1, "manager");
    let m2 = c.join_in("m2", &hosts.ns(2), &format!("{}:2377", Hosts::addr(2)), &token, m1, &[]);
    c.join_in("m3", &hosts.ns(3), &format!("{}:2377", Hosts::addr(3)), &token, m1, &[]);
    ready(&c, m1, 3).await;
    assert_eq!(c.wait_leader(Duration::from_secs(30)).await, m1);
    // Nothing the clients use runs beside the leader that is killed.
    let away = format!("node.id!={}", c.node_id(m1));
    c.ctl_ok(m1, &["network", "create", "--driver", "overlay", "back"]);
    let httpd = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";
    for (name, replicas, port, command) in [
        ("zdb", "3", "8084:80", httpd),
        ("zecho", "1", "8085:80", "exec nc -ll -p 80 -e cat"),
        ("zprobe", "1", "", "exec sleep 3600"),
    ] {
        let mut args = vec![
            "service",
            "create",
            "--name",
            name,
            "--replicas",
            replicas,
            "--network",
            "back",
            "--constraint",
            &away,
            "--stop-grace-period",
            "1s",
        ];
        if !port.is_empty() {
            args.extend(["--publish", port]);
        }
        args.extend([IMAGE, "sh", "-c", command]);
        c.ctl_ok(m1, &args);
    }
    running(&c, m1, "zdb", 3).await;
    running(&c, m1, "zecho", 1).await;
    running(&c, m1, "zprobe", 1).await;
    let probe = containers_of_service("zprobe")
        .into_iter()
        .find(|(_, _, up)| *up)
        .map(|(name, _, _)| name)
        .expect("the probe's container");
    eventually("db answers by name", Duration::from_secs(30), || {
        let answered = fetch_many(&probe, "zdb", 1).len() == 1;
        async move { answered.then_some(()) }
    })
    .await;

    // The clients. The one in the container stops when /stop exists.
    let in_container = {
        let script = "ok=0; failed=0; while [ ! -e /stop ]; do \
             r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 zdb 80 2>/err | tail -n 1); \
             if [ -n \"$r\" ]; then ok=$((ok+1)); else failed=$((failed+1)); echo \"failed at $(date +%T): $(cat /err)\"; fi; \
             sleep 0.1; done; echo \"ok=$ok failed=$failed\"";
        let probe = probe.clone();
        std::thread::spawn(move || exec(&probe, &["sh", "-c", script]))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let published = format!("{}:8084", Hosts::addr(2));
    let new_connections = client_loop(&hosts.ns(1), stop.clone(), move || fetch_once(&published).is_some());
    let echo_at: std::net::SocketAddr = format!("{}:8085", Hosts::addr(3)).parse().expect("address");
    let mut held: Option<std::net::TcpStream> = None;
    let long_connection = client_loop(&hosts.ns(1), stop.clone(), move || {
        use std::io::Read;
        use std::io::Write;
        if held.is_none() {
            held = std::net::TcpStream::connect_timeout(&echo_at, Duration::from_secs(3)).ok();
            if let Some(s) = &held {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            }
        }
        let Some(s) = held.as_mut() else { return false };
        let mut back = [0u8; 5];
        let ok = s.write_all(b"ping\n").is_ok() && s.read_exact(&mut back).is_ok() && &back == b"ping\n";
        if !ok {
            // Counted, and the next round opens a new one.
            held = None;
        }
        ok
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A rolling update of db, one task at a time (swarmctl waits for it to end).
    let before: BTreeSet<String> = tasks_of(&c, m1, "zdb")
        .await
        .unwrap_or_default()
        .iter()
        .filter(|t| t["DesiredState"] == "running")
        .map(|t| t["ID"].as_str().unwrap_or_default().to_string())
        .collect();
    c.ctl_ok(
        m1,
        &["service", "update", "--env-add", "V=2", "--update-monitor", "1s", "zdb"],
    );
    let after = running(&c, m1, "zdb", 3).await;
    assert!(
        after
            .iter()
            .all(|t| !before.contains(t["ID"].as_str().unwrap_or_default())),
        "every task was replaced: {before:?} {after:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The leader dies; the clients go on for 10 s after.
    let addresses = |tasks: &[Value]| tasks.iter().map(overlay_addr).collect::<BTreeSet<_>>();
    let vip_of = |svc: Value| svc["Endpoint"]["VirtualIPs"].to_string();
    let addrs_before = addresses(&after);
    let vip_before = vip_of(c.nodes[m1].client().get("/services/zdb").await.expect("zdb"));
    c.kill(m1);
    let killed = std::time::Instant::now();
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    assert_ne!(leader, m1);
    let kept = running(&c, m2, "zdb", 3).await;
    assert_eq!(addresses(&kept), addrs_before, "the tasks keep their addresses");
    let vip_after = vip_of(c.nodes[m2].client().get("/services/zdb").await.expect("zdb"));
    assert_eq!(vip_after, vip_before, "db keeps its VIP");
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed.elapsed())).await;

    stop.store(true, Ordering::Relaxed);
    exec(&probe, &["touch", "/stop"]);
    let vip_report = in_container.join().expect("the container's client ends");
    let (ok, failed) = new_connections.join().expect("the published port's client ends");
    eprintln!("new connections to the published port: {ok} answered, {failed} failed");
    assert!(ok > 50 && failed == 0, "published port: {ok} answered, {failed} failed");
    let (ok, failed) = long_connection.join().expect("the long connection's client ends");
    eprintln!("long connection through the mesh: {ok} echoes, {failed} failed");
    assert!(ok > 50 && failed == 0, "long connection: {ok} echoes, {failed} failed");
    eprintln!("through db's VIP: {vip_report}");
    let last = vip_report.lines().last().unwrap_or_default();
    assert!(last.ends_with(" failed=0"), "through the VIP: {vip_report}");
    let ok: u32 = last
        .strip_prefix("ok=")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(ok > 50, "through the VIP: {vip_report}");
}

/// Runs `step` every 100 ms in namespace `netns` until `stop`, counting (succeeded, failed).
fn client_loop(
    netns: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut step: impl FnMut() -> bool + Send + 'static,
) -> std::thread::JoinHandle<(u32, u32)> {
    let path = std::path::Path::new("/run/netns").join(netns);
    let running = swarm_agent::overlay::spawn_in_netns(&path, move || {
        let (mut ok, mut failed) = (0, 0);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if step() {
                ok += 1;
            } else {
                failed += 1;
                eprintln!("a client failed at {:?}", std::time::SystemTime::now());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok((ok, failed))
    });
    std::thread::spawn(move || {
        running
            .join()
            .expect("the client does not panic")
            .expect("entering the namespace")
    })
}

/// The body (last line) of one HTTP request to `addr`, from the calling thread's namespace.
fn fetch_once(addr: &str) -> Option<String> {
    use std::io::Read;
    use std::io::Write;
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let body = reply.lines().rev().find(|l| !l.trim().is_empty())?;
    (!body.starts_with("HTTP/")).then(|| body.trim().to_string())
}

/// What an echoing task sent back, through a PROXY v2 header: it names `client` as the source
/// and `to` as the destination, and `payload` follows.
fn assert_proxied(echoed: &[u8], client: &str, to: &str, payload: &[u8]) {
    assert!(echoed.len() >= 28, "too short for a PROXY v2 header: {echoed:?}");
    assert_eq!(&echoed[..12], b"\r\n\r\n\0\r\nQUIT\n", "{echoed:?}");
    assert_eq!((echoed[12], echoed[13]), (0x21, 0x11), "PROXY, TCP over IPv4");
    let ip = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string();
    assert_eq!(ip(&echoed[16..20]), client, "the client's address reaches the task");
    let to: std::net::SocketAddr = to.parse().expect("an address");
    assert_eq!(ip(&echoed[20..24]), to.ip().to_string());
    assert_eq!(u16::from_be_bytes([echoed[26], echoed[27]]), to.port());
    assert_eq!(&echoed[28..], payload);
}

/// What `addr` sends back to a connection from namespace `netns` that sends `payload` and
/// closes its side; None when the connection is refused or nothing comes back within 3 s.
async fn echo_in(netns: &str, addr: &str, payload: &'static [u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::io::Write;
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    in_host(netns, move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let mut back = Vec::new();
        let ok = s.write_all(payload).is_ok()
            && s.shutdown(std::net::Shutdown::Write).is_ok()
            && s.read_to_end(&mut back).is_ok();
        (ok && !back.is_empty()).then_some(back)
    })
    .await
}

/// What `f` returns, run on a thread inside the test's network namespace `netns`.
async fn in_host<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = std::path::Path::new("/run/netns").join(netns);
    let thread = swarm_agent::overlay::spawn_in_netns(&path, move || Ok(f()));
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("the thread in the namespace ends")
        .expect("the thread in the namespace does not panic")
        .expect("entering the namespace")
}

/// Serves udp `port` inside `container`'s namespace until `stop`: each datagram is answered
/// with the container's hostname.
fn udp_echo_in(
    container: &str,
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let hostname = exec(container, &["hostname"]).trim().to_string();
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.State.Pid}}", container])
        .output()
        .expect("docker inspect");
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let serving = swarm_agent::overlay::spawn_in_netns(&path, move || {
        let socket = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("bind udp in the task");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((_, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(hostname.as_bytes(), from);
            }
        }
        Ok(())
    });
    std::thread::spawn(move || {
        serving
            .join()
            .expect("the udp server does not panic")
            .expect("entering the task's namespace")
    })
}

/// The answers to `count` udp flows (each from a new socket) to `addr`, from inside network
/// namespace `netns`, for those answered within 3 s.
async fn udp_flows_in(netns: &str, addr: &str, count: usize) -> Vec<String> {
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    in_host(netns, move || {
        let mut answers = Vec::new();
        for _ in 0..count {
            let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") else {
                continue;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let mut buf = [0u8; 512];
            if s.send_to(b"?", addr).is_ok()
                && let Ok(n) = s.recv(&mut buf)
            {
                answers.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        answers
    })
    .await
}

/// A cluster on `count` hosts: a manager on host 1 (returned with the cluster) and a worker on
/// each other host, in order after it, all started with `extra`.
fn cluster_on(hosts: &Hosts, count: usize, extra: &[&str]) -> (Cluster, usize) {
    let mut c = Cluster::docker();
    let m1 = c.init_in("m1", &hosts.ns(1), &format!("{}:2377", Hosts::addr(1)), extra);
    let token = c.token(m1, "worker");
    for i in 2..=count {
        let addr = format!("{}:2377", Hosts::addr(i));
        c.join_in(&format!("w{}", i - 1), &hosts.ns(i), &addr, &token, m1, extra);
    }
    (c, m1)
}

/// Waits until `count` nodes are ready.
async fn ready(c: &Cluster, m1: usize, count: usize) {
    eventually("all nodes ready", Duration::from_secs(60), || async move {
        let nodes: Vec<Value> = c.nodes[m1].client().get("/nodes").await.ok()?;
        (nodes.iter().filter(|n| n["Status"]["State"] == "ready").count() == count).then_some(())
    })
    .await;
}

/// The bodies (last line each) of `count` fresh HTTP connections to `addr`, made from inside
/// network namespace `netns`, for those that were answered within 3 s.
async fn fetch_in(netns: &str, addr: &str, count: usize) -> Vec<String> {
    let addr = addr.to_string();
    in_host(netns, move || (0..count).filter_map(|_| fetch_once(&addr)).collect()).await
}

/// Waits until `count` requests made by `ask` are all answered, by `tasks` different tasks;
/// their answers.
async fn spread_over<F, Fut>(what: &str, count: usize, tasks: usize, mut ask: F) -> BTreeSet<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    eventually(what, Duration::from_secs(60), || {
        let answering = ask();
        async move {
            let answers = answering.await;
            let spread: BTreeSet<String> = answers.iter().cloned().collect();
            (answers.len() == count && spread.len() == tasks).then_some(spread)
        }
    })
    .await
}

/// The running tasks of `service`, once there are `count`.
async fn running(c: &Cluster, i: usize, service: &str, count: usize) -> Vec<Value> {
    eventually(
        &format!("{count} running tasks of {service}"),
        Duration::from_secs(90),
        || async move {
            let tasks = tasks_of(c, i, service).await?;
            let running: Vec<Value> = tasks
                .into_iter()
                .filter(|t| t["Status"]["State"] == "running")
                .collect();
            (running.len() == count).then_some(running)
        },
    )
    .await
}

/// A task's address on its first network, without the prefix length.
fn overlay_addr(task: &Value) -> String {
    task["NetworksAttachments"][0]["Addresses"][0]
        .as_str()
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_string()
}

/// What `args` prints in `container`.
fn exec(container: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .arg("exec")
        .arg(container)
        .args(args)
        .output()
        .expect("docker exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bodies (one line each) of `count` fresh HTTP connections to port 80 of `host` from
/// `container`, for those that were answered. (busybox-static's wget crashes in glibc's
/// service lookup without NSS files, so this speaks HTTP with nc.)
fn fetch_many(container: &str, host: &str, count: usize) -> Vec<String> {
    let script = format!(
        "for i in $(seq {count}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} 80 | tail -n 1; echo; done"
    );
    exec(container, &["sh", "-c", &script])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The Docker network mode `container` was created with.
fn network_mode(container: &str) -> String {
    crate::support::container_field(container, "{{.HostConfig.NetworkMode}}")
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
