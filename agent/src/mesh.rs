//! The routing mesh: every node accepts connections on each port published in ingress mode
//! and sends them to one of the service's running tasks, wherever it runs, over the ingress
//! overlay (the node has its own address there).
//!
//! Swarm does this in the kernel with IPVS, which this machine kind lacks; this first version is
//! a userspace L4 proxy ([`crate::proxy`]). Its costs: each byte is copied once through swarmd,
//! and the task sees the node's ingress address as the source, not the client's, unless the
//! service opts in to a PROXY protocol v2 header.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::sync::Arc;

use swarm_protocol::dispatcher::ServiceRecord;
use tokio::net::TcpListener;
use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::proxy::Route;
use crate::proxy::Target;
use crate::proxy::Upstream;
use crate::proxy::serve_tcp;
use crate::proxy::serve_udp;

/// A published port: udp or tcp, and its number.
pub type PortKey = (bool, u16);

/// Where each published port sends its connections: the tasks in rotation, at the target port.
pub fn mesh_targets(records: &[ServiceRecord]) -> BTreeMap<PortKey, Route> {
    let mut out = BTreeMap::new();
    for r in records.iter().filter(|r| r.ingress) {
        for p in &r.mesh_ports {
            let upstreams = r
                .tasks
                .iter()
                .map(|a| Upstream {
                    to: Target::Addr(SocketAddr::from((*a, p.target))),
                    proxy_protocol: r.proxied.contains(a),
                })
                .collect();
            out.insert((p.udp, p.published), Route { upstreams });
        }
    }
    out
}

type Routes = watch::Sender<Arc<Route>>;

/// The ports this node publishes, each served by its own task until it is no longer wanted.
pub struct Mesh {
    listen: Ipv4Addr,
    ports: Mutex<BTreeMap<PortKey, (Routes, JoinHandle<()>)>>,
}

impl Mesh {
    /// A mesh listening on `listen` (all of the node's addresses when unspecified).
    pub fn new(listen: Ipv4Addr) -> Self {
        Mesh {
            listen,
            ports: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes exactly the ports in `wanted`, with their current routes.
    pub async fn set(&self, wanted: BTreeMap<PortKey, Route>) {
        let listen = self.listen;
        let mut ports = self.ports.lock().await;
        ports.retain(|key, (_, serving)| {
            let keep = wanted.contains_key(key);
            if !keep {
                serving.abort();
            }
            keep
        });
        for (key, route) in wanted {
            if let Some((current, _)) = ports.get(&key) {
                current.send_if_modified(|now| {
                    let changed = **now != route;
                    *now = Arc::new(route.clone());
                    changed
                });
                continue;
            }
            let (udp, port) = key;
            let sender = watch::Sender::new(Arc::new(route));
            let serving = if udp {
                match UdpSocket::bind((listen, port)).await {
                    Ok(socket) => tokio::spawn(serve_udp(Arc::new(socket), sender.subscribe())),
                    Err(e) => {
                        tracing::warn!(port, error = %e, "cannot publish udp port on this node");
                        continue;
                    }
                }
            } else {
                match TcpListener::bind((listen, port)).await {
                    Ok(listener) => tokio::spawn(serve_tcp(listener, sender.subscribe())),
                    Err(e) => {
                        tracing::warn!(port, error = %e, "cannot publish tcp port on this node");
                        continue;
                    }
                }
            };
            tracing::info!(port, proto = if udp { "udp" } else { "tcp" }, "routing mesh publishes");
            ports.insert(key, (sender, serving));
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for (_, serving) in self.ports.get_mut().values() {
            serving.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use swarm_protocol::dispatcher::MeshPort;
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    use super::*;

    fn ingress(tasks: &[Ipv4Addr], ports: &[MeshPort]) -> ServiceRecord {
        ServiceRecord {
            service_id: "web".to_string(),
            network_id: "ingress".to_string(),
            ingress: true,
            names: vec!["web".to_string()],
            vip: None,
            tasks: tasks.to_vec(),
            proxied: Vec::new(),
            mesh_ports: ports.to_vec(),
        }
    }

    /// A TCP server on loopback that answers each connection with `name`.
    async fn tcp_server(ip: Ipv4Addr, name: &'static str) -> u16 {
        let l = TcpListener::bind((ip, 0)).await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        port
    }

    /// A UDP server on loopback that answers each datagram with `name` and the datagram.
    async fn udp_server(ip: Ipv4Addr, port: u16, name: &'static str) {
        let s = UdpSocket::bind((ip, port)).await.expect("bind");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let mut reply = name.as_bytes().to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.send_to(&reply, from).await;
            }
        });
    }

    fn free_port(udp: bool) -> u16 {
        if udp {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .unwrap_or(0)
        } else {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .unwrap_or(0)
        }
    }

    #[test]
    fn each_published_port_targets_the_rotation_at_its_target_port() {
        let a = Ipv4Addr::new(10, 0, 0, 3);
        let b = Ipv4Addr::new(10, 0, 0, 4);
        let ports = [
            MeshPort {
                udp: false,
                published: 8080,
                target: 80,
            },
            MeshPort {
                udp: true,
                published: 5353,
                target: 53,
            },
        ];
        let mut named = ingress(&[a], &ports);
        named.ingress = false;
        let mut published = ingress(&[a, b], &ports);
        published.proxied = vec![a];
        let t = mesh_targets(&[published, named]);
        assert_eq!(t.len(), 2);
        // a's server expects PROXY headers (its task was created after they were turned on).
        let at = |port| Route {
            upstreams: vec![
                Upstream {
                    to: Target::Addr((a, port).into()),
                    proxy_protocol: true,
                },
                Upstream {
                    to: Target::Addr((b, port).into()),
                    proxy_protocol: false,
                },
            ],
        };
        assert_eq!(t[&(false, 8080)], at(80));
        assert_eq!(t[&(true, 5353)], at(53));
    }

    /// Two "tasks" on 127.0.0.2 and 127.0.0.3: tcp connections and udp flows through the mesh
    /// reach both, a task that left the rotation gets nothing new, and an unpublished port is
    /// closed.
    #[tokio::test]
    async fn connections_and_datagrams_spread_over_the_rotation() {
        let (a, b) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
        let target = tcp_server(a, "a").await;
        // The same port on b, as tasks of one service listen on the same target port.
        let l = TcpListener::bind((b, target)).await.expect("bind b");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"b").await;
            }
        });
        let udp_target = free_port(true);
        udp_server(a, udp_target, "a").await;
        udp_server(b, udp_target, "b").await;
        let (published, udp_published) = (free_port(false), free_port(true));
        let mesh = Mesh::new(Ipv4Addr::LOCALHOST);
        let ports = [
            MeshPort {
                udp: false,
                published,
                target,
            },
            MeshPort {
                udp: true,
                published: udp_published,
                target: udp_target,
            },
        ];
        mesh.set(mesh_targets(&[ingress(&[a, b], &ports)])).await;

        let fetch = || async move {
            let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, published)).await.ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).await.ok()?;
            Some(body)
        };
        let mut seen = BTreeSet::new();
        for _ in 0..10 {
            seen.insert(fetch().await.expect("an answer through the mesh"));
        }
        assert_eq!(seen, BTreeSet::from(["a".to_string(), "b".to_string()]));

        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            // A new client socket is a new flow.
            let c = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("client");
            c.send_to(b"?", (Ipv4Addr::LOCALHOST, udp_published))
                .await
                .expect("send");
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf))
                .await
                .expect("a udp answer in time")
                .expect("recv");
            seen.insert(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(seen, BTreeSet::from(["a?".to_string(), "b?".to_string()]));

        // b leaves the rotation: every new connection goes to a.
        mesh.set(mesh_targets(&[ingress(&[a], &ports)])).await;
        for _ in 0..6 {
            assert_eq!(fetch().await.as_deref(), Some("a"));
        }
        // Nothing published any more: the port is closed.
        mesh.set(BTreeMap::new()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, published)).await.is_err());
    }

    /// Connections per second through the mesh against straight to the task, on loopback: one
    /// client, each connection opened, answered with a few bytes and closed. Medians of three
    /// runs of 2 s. `make bench` runs it; the figures feed docs/benchmarks.md.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn bench_mesh_against_direct() {
        let task = Ipv4Addr::new(127, 0, 0, 2);
        let target = tcp_server(task, "hello").await;
        let published = free_port(false);
        let mesh = Mesh::new(Ipv4Addr::LOCALHOST);
        let port = MeshPort {
            udp: false,
            published,
            target,
        };
        mesh.set(mesh_targets(&[ingress(&[task], &[port])])).await;
        let per_second = |to: SocketAddr| async move {
            let started = std::time::Instant::now();
            let mut done = 0u32;
            while started.elapsed() < Duration::from_secs(2) {
                let mut s = TcpStream::connect(to).await.expect("connect");
                let mut body = Vec::new();
                s.read_to_end(&mut body).await.expect("read");
                assert_eq!(body, b"hello");
                done += 1;
            }
            f64::from(done) / started.elapsed().as_secs_f64()
        };
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mut direct, mut meshed) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            direct.push(per_second(SocketAddr::from((task, target))).await);
            meshed.push(per_second(SocketAddr::from((Ipv4Addr::LOCALHOST, published))).await);
        }
        let (direct, meshed) = (median(direct), median(meshed));
        println!("connections/s direct to the task: {direct:.0}");
        println!("connections/s through the mesh:   {meshed:.0}");
        println!("mesh / direct: {:.2}", meshed / direct);
    }
}
