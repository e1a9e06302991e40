//! The overlay between two nodes that really are separate hosts: each node is a network
//! namespace with a veth to a "switch" namespace (so the host's firewall never sees the
//! traffic), and each container a namespace of its own that only the overlay reaches. The
//! test's addresses (198.18.0.0/15, the benchmarking range) exist only inside its namespaces,
//! and every namespace is deleted when the test ends, failed or not.

use std::io::Read;
use std::io::Write;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::net::TcpListener;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::*;

/// Namespaces made for one test, deleted on drop.
struct TestHosts {
    prefix: String,
    made: Vec<String>,
}

impl TestHosts {
    /// None (with the reason printed) where namespaces cannot be made: not root, or no `ip`.
    fn new(tag: &str) -> Option<Self> {
        let root = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            eprintln!("skipping the overlay test: it needs root to make network namespaces");
            return None;
        }
        Some(TestHosts {
            prefix: format!("swt{}{tag}", std::process::id() % 100_000),
            made: Vec::new(),
        })
    }

    fn ip(&self, args: &str) -> String {
        let out = Command::new("ip")
            .args(args.split_whitespace())
            .output()
            .expect("the ip command (iproute2) runs");
        assert!(
            out.status.success(),
            "ip {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    fn path(&self, what: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(self.name(what))
    }

    fn add_namespace(&mut self, what: &str) {
        let name = self.name(what);
        self.ip(&format!("netns add {name}"));
        self.made.push(name.clone());
        self.ip(&format!("-n {name} link set lo up"));
    }

    /// A switch namespace with a bridge, and `nodes` node namespaces wired to it, node i at
    /// 198.18.0.(i+1)/24.
    fn underlay(&mut self, nodes: usize) -> Vec<Ipv4Addr> {
        self.add_namespace("sw");
        let sw = self.name("sw");
        self.ip(&format!("-n {sw} link add br0 type bridge"));
        self.ip(&format!("-n {sw} link set br0 up"));
        let mut addrs = Vec::new();
        for i in 1..=nodes {
            let node = format!("n{i}");
            self.add_namespace(&node);
            let (outer, inner) = (self.name(&format!("o{i}")), self.name(&format!("i{i}")));
            let ns = self.name(&node);
            self.ip(&format!("link add {outer} type veth peer name {inner}"));
            self.ip(&format!("link set {outer} netns {sw}"));
            self.ip(&format!("link set {inner} netns {ns}"));
            self.ip(&format!("-n {sw} link set {outer} master br0 up"));
            self.ip(&format!("-n {ns} addr add 198.18.0.{i}/24 dev {inner}"));
            self.ip(&format!("-n {ns} link set {inner} up"));
            addrs.push(Ipv4Addr::new(198, 18, 0, i as u8));
        }
        addrs
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for name in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Whether a TCP connection from namespace `from` to `to:port` (served in namespace
/// `server`) gets the server's reply within two seconds.
fn reaches(from: &std::path::Path, server: &std::path::Path, to: Ipv4Addr, port: u16) -> bool {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = spawn_in_netns(server, move || {
        let l = TcpListener::bind((to, port)).map_err(|e| OverlayError::Missing(e.to_string()))?;
        l.set_nonblocking(false)
            .map_err(|e| OverlayError::Missing(e.to_string()))?;
        let _ = ready_tx.send(());
        // One connection, or give up when the client did.
        let _ = l.set_nonblocking(true);
        for _ in 0..40 {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.set_nonblocking(false);
                let _ = s.write_all(b"pong");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    });
    if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
        panic!("the test server did not start: {:?}", listener.join());
    }
    let client = spawn_in_netns(from, move || {
        let addr = SocketAddr::from((to, port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| OverlayError::Missing(e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| OverlayError::Missing(e.to_string()))?;
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        Ok(reply == "pong")
    });
    let reached = matches!(client.join(), Ok(Ok(true)));
    let _ = listener.join();
    reached
}

/// Whether a link is one the overlay makes.
fn ours(name: &str) -> bool {
    ["swbr", "swvx", "swh", "swc"].iter().any(|p| name.starts_with(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_on_two_nodes_reach_each_other_only_through_the_overlay() {
    let Some(mut hosts) = TestHosts::new("a") else { return };
    let vni = 4097;
    let (nodes, tasks) = two_node_overlay(&mut hosts, vni).await;
    let (c1, c2) = (hosts.path("c1"), hosts.path("c2"));
    assert!(reaches(&c1, &c2, tasks[1], 7001), "c1 reaches c2 over the overlay");
    assert!(reaches(&c2, &c1, tasks[0], 7002), "and back");
    // Both ends of the container's veth have the overlay's MTU, room for the VXLAN header.
    let eth0 = hosts.ip(&format!("-n {} link show eth0", hosts.name("c1")));
    assert!(eth0.contains("mtu 1450 "), "{eth0}");
    // Nothing but the overlay connects them: with node 1's VXLAN device down, they are cut off.
    hosts.ip(&format!("-n {} link set {} down", hosts.name("n1"), vxlan_name(vni)));
    assert!(!reaches(&c1, &c2, tasks[1], 7003), "the traffic took the overlay");
    hosts.ip(&format!("-n {} link set {} up", hosts.name("n1"), vxlan_name(vni)));
    assert!(reaches(&c1, &c2, tasks[1], 7004), "and takes it again");

    // Forgetting the peer on node 1 cuts c1 off from it; removing the network leaves nothing.
    let n1 = hosts.path("n1");
    let (peer, peer_node) = (tasks[1], nodes[1]);
    let ep = Endpoint {
        name: "task0".to_string(),
        ifname: "eth0".to_string(),
        addr: tasks[0],
        prefix: 24,
        mtu: 1450,
    };
    in_netns(&n1, move |h| async move {
        remove_peer(&h, vni, peer, peer_node).await?;
        // Twice is fine.
        remove_peer(&h, vni, peer, peer_node).await
    })
    .await
    .expect("remove peer");
    assert!(!reaches(&c1, &c2, tasks[1], 7005), "no entry, no path");
    let links = in_netns(&n1, move |h| async move {
        detach(&h, &ep).await?;
        detach(&h, &ep).await?;
        remove_network(&h, vni).await?;
        remove_network(&h, vni).await?;
        let names: Vec<String> = links(&h).await?.into_iter().map(|(_, n)| n).collect();
        Ok(names)
    })
    .await
    .expect("remove network");
    assert!(
        !links.iter().any(|n| ours(n)),
        "no bridge, VXLAN device or veth left on node 1: {links:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attach_leaves_nothing_and_errors_say_what_failed() {
    let Some(mut hosts) = TestHosts::new("b") else { return };
    let nodes = hosts.underlay(1);
    let spec = OverlaySpec {
        vni: 4098,
        mtu: 1450,
        local: nodes[0],
    };
    let ep = Endpoint {
        name: "lost".to_string(),
        ifname: "eth0".to_string(),
        addr: Ipv4Addr::new(10, 0, 2, 3),
        prefix: 24,
        mtu: 1450,
    };
    let missing = PathBuf::from("/run/netns/swarm-rs-no-such-namespace");
    let (err, links) = in_netns(&hosts.path("n1"), move |h| async move {
        ensure_network(&h, &spec).await?;
        let err = attach(&h, 4098, &missing, &ep).await.err();
        let names: Vec<String> = links(&h).await?.into_iter().map(|(_, n)| n).collect();
        let no_bridge = attach(&h, 4999, &missing, &ep).await.err();
        Ok((err.map(|e| e.to_string()).zip(no_bridge.map(|e| e.to_string())), names))
    })
    .await
    .expect("work in node 1");
    let (err, no_bridge) = err.expect("both attaches fail");
    assert!(
        err.starts_with("cannot enter network namespace /run/netns/swarm-rs-no-such-namespace"),
        "{err}"
    );
    assert_eq!(no_bridge, "link swbr4999 does not exist");
    assert!(
        !links.iter().any(|n| n.starts_with("swh") || n.starts_with("swc")),
        "{links:?}"
    );
    assert_eq!(mac_for(Ipv4Addr::new(10, 0, 1, 3)), [0x02, 0x42, 10, 0, 1, 3]);
}

/// Two nodes with one container each on an overlay; returns the node and task addresses.
async fn two_node_overlay(hosts: &mut TestHosts, vni: u32) -> (Vec<Ipv4Addr>, [Ipv4Addr; 2]) {
    let nodes = hosts.underlay(2);
    hosts.add_namespace("c1");
    hosts.add_namespace("c2");
    let tasks = [Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)];
    for me in 0..2 {
        let other = 1 - me;
        let spec = OverlaySpec {
            vni,
            mtu: 1450,
            local: nodes[me],
        };
        let container = hosts.path(&format!("c{}", me + 1));
        let ep = Endpoint {
            name: format!("task{me}"),
            ifname: "eth0".to_string(),
            addr: tasks[me],
            prefix: 24,
            mtu: 1450,
        };
        let (peer, peer_node) = (tasks[other], nodes[other]);
        in_netns(&hosts.path(&format!("n{}", me + 1)), move |h| async move {
            ensure_network(&h, &spec).await?;
            // A second call changes nothing.
            ensure_network(&h, &spec).await?;
            add_peer(&h, vni, peer, peer_node).await?;
            attach(&h, vni, &container, &ep).await
        })
        .await
        .unwrap_or_else(|e| panic!("node {}: {e}", me + 1));
    }
    (nodes, tasks)
}

/// Bytes per second from namespace `from` to a server at `to` in namespace `server`, over
/// `secs` seconds of 128 KiB writes.
fn throughput(from: &std::path::Path, server: &std::path::Path, to: Ipv4Addr, port: u16, secs: u64) -> f64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = spawn_in_netns(server, move || {
        let l = TcpListener::bind((to, port)).map_err(|e| OverlayError::Missing(e.to_string()))?;
        let _ = ready_tx.send(());
        let (mut s, _) = l.accept().map_err(|e| OverlayError::Missing(e.to_string()))?;
        let mut buf = vec![0u8; 1 << 17];
        let mut total = 0u64;
        let start = std::time::Instant::now();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        Ok(total as f64 / start.elapsed().as_secs_f64())
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("sink ready");
    let _ = spawn_in_netns(from, move || {
        let mut s = TcpStream::connect((to, port)).map_err(|e| OverlayError::Missing(e.to_string()))?;
        let buf = vec![7u8; 1 << 17];
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            s.write_all(&buf).map_err(|e| OverlayError::Missing(e.to_string()))?;
        }
        Ok(())
    })
    .join();
    sink.join().expect("sink thread").expect("sink")
}

/// The median round trip of a one-byte request and reply, in microseconds, over `count`.
fn round_trip_us(from: &std::path::Path, server: &std::path::Path, to: Ipv4Addr, port: u16, count: usize) -> f64 {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let echo = spawn_in_netns(server, move || {
        let l = TcpListener::bind((to, port)).map_err(|e| OverlayError::Missing(e.to_string()))?;
        let _ = ready_tx.send(());
        let (mut s, _) = l.accept().map_err(|e| OverlayError::Missing(e.to_string()))?;
        let _ = s.set_nodelay(true);
        let mut b = [0u8; 1];
        while let Ok(1) = s.read(&mut b) {
            if s.write_all(&b).is_err() {
                break;
            }
        }
        Ok(())
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).expect("echo ready");
    let mut times = spawn_in_netns(from, move || {
        let mut s = TcpStream::connect((to, port)).map_err(|e| OverlayError::Missing(e.to_string()))?;
        let _ = s.set_nodelay(true);
        let mut times = Vec::with_capacity(count);
        let mut b = [1u8; 1];
        for _ in 0..count {
            let start = std::time::Instant::now();
            s.write_all(&b).map_err(|e| OverlayError::Missing(e.to_string()))?;
            s.read_exact(&mut b).map_err(|e| OverlayError::Missing(e.to_string()))?;
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        Ok(times)
    })
    .join()
    .expect("client thread")
    .expect("client");
    let _ = echo.join();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Cross-node throughput and latency, overlay against the veth underlay it runs on, as
/// medians of three runs (`make bench`; figures in docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by make bench"]
async fn bench_overlay_against_underlay() {
    let Some(mut hosts) = TestHosts::new("z") else { return };
    let (nodes, tasks) = two_node_overlay(&mut hosts, 4200).await;
    let (n1, n2, c1, c2) = (hosts.path("n1"), hosts.path("n2"), hosts.path("c1"), hosts.path("c2"));
    let mut port = 7100;
    let mut next = || {
        port += 1;
        port
    };
    let runs = 3;
    let under_bps = median((0..runs).map(|_| throughput(&n1, &n2, nodes[1], next(), 5)).collect());
    let over_bps = median((0..runs).map(|_| throughput(&c1, &c2, tasks[1], next(), 5)).collect());
    let under_rtt = median(
        (0..runs)
            .map(|_| round_trip_us(&n1, &n2, nodes[1], next(), 5000))
            .collect(),
    );
    let over_rtt = median(
        (0..runs)
            .map(|_| round_trip_us(&c1, &c2, tasks[1], next(), 5000))
            .collect(),
    );
    let gbit = |bps: f64| bps * 8.0 / 1e9;
    println!("| path | throughput (Gbit/s) | round trip, median (µs) |");
    println!("|---|---|---|");
    println!(
        "| underlay (veth to veth through the switch namespace) | {:.2} | {:.1} |",
        gbit(under_bps),
        under_rtt
    );
    println!(
        "| overlay (container to container over VXLAN) | {:.2} | {:.1} |",
        gbit(over_bps),
        over_rtt
    );
    println!(
        "overlay/underlay: throughput {:.2}x, round trip {:.2}x",
        over_bps / under_bps,
        over_rtt / under_rtt
    );
    assert!(over_bps > 0.0 && under_bps > 0.0);
}
