//! Ports published in host mode: the node that runs a task publishes them itself, on all of
//! its addresses, and sends each connection or udp flow into that task's container.
//!
//! The agent does it rather than the engine, because the engine publishes in its own network
//! namespace, which need not be the node's (each test node is a namespace of its own, sharing
//! one engine), and a container with no Docker network has no engine port at all. A
//! connection goes to the target port on the loopback inside the container's namespace, so the
//! service must listen there too (on all addresses, as servers do by default).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use swarm_model::PortConfig;
use swarm_model::Task;
use swarm_sync::lock;
use tokio::net::TcpListener;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::proxy::Route;
use crate::proxy::Target;
use crate::proxy::Upstream;
use crate::proxy::serve_tcp;
use crate::proxy::serve_udp;

/// A host-mode port the node could not publish.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish port {port}/{protocol} on this node: {problem}")]
pub struct HostPortError {
    pub port: u32,
    pub protocol: String,
    pub problem: String,
}

/// What one task publishes: the serving loops, and the routes they read.
struct Published {
    serving: Vec<JoinHandle<()>>,
    _routes: Vec<watch::Sender<Arc<Route>>>,
}

impl Drop for Published {
    fn drop(&mut self) {
        for s in &self.serving {
            s.abort();
        }
    }
}

/// The host-mode ports of the tasks on this node, by task ID.
pub struct HostPorts {
    listen: Ipv4Addr,
    tasks: Mutex<HashMap<String, Published>>,
}

impl HostPorts {
    /// Ports published on `listen` (all of the node's addresses when unspecified).
    pub fn new(listen: Ipv4Addr) -> Arc<Self> {
        Arc::new(HostPorts {
            listen,
            tasks: Mutex::new(HashMap::new()),
        })
    }

    /// Publishes `task`'s host-mode ports, sending to its container (process `pid`), and
    /// returns them as published: a port given no number gets a free one. Either every port is
    /// published or none is.
    pub async fn publish(&self, task: &Task, pid: i64) -> Result<Vec<PortConfig>, HostPortError> {
        self.unpublish(&task.id);
        if task.host_ports.is_empty() {
            return Ok(Vec::new());
        }
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let proxy_protocol = task.wants_proxy_protocol();
        let mut published = Published {
            serving: Vec::new(),
            _routes: Vec::new(),
        };
        let mut shown = Vec::new();
        for p in &task.host_ports {
            let wanted = p.published_port.unwrap_or(0);
            let failed = |problem: String| HostPortError {
                port: wanted,
                protocol: if p.protocol.is_empty() {
                    "tcp".to_string()
                } else {
                    p.protocol.clone()
                },
                problem,
            };
            let port = u16::try_from(wanted).map_err(|_| failed("not a port number".to_string()))?;
            let target =
                u16::try_from(p.target_port).map_err(|_| failed("the target is not a port number".to_string()))?;
            let route = watch::Sender::new(Arc::new(Route {
                upstreams: vec![Upstream {
                    to: Target::Netns {
                        netns: netns.clone(),
                        port: target,
                    },
                    proxy_protocol,
                }],
            }));
            let (serving, bound) = match p.protocol.as_str() {
                "" | "tcp" => {
                    let l = TcpListener::bind((self.listen, port))
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    let bound = l.local_addr().map_err(|e| failed(e.to_string()))?.port();
                    (tokio::spawn(serve_tcp(l, route.subscribe())), bound)
                }
                "udp" => {
                    let s = UdpSocket::bind((self.listen, port))
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    let bound = s.local_addr().map_err(|e| failed(e.to_string()))?.port();
                    (tokio::spawn(serve_udp(Arc::new(s), route.subscribe())), bound)
                }
                other => return Err(failed(format!("swarm-rs publishes tcp and udp ports, not {other}"))),
            };
            published.serving.push(serving);
            published._routes.push(route);
            shown.push(PortConfig {
                published_port: Some(u32::from(bound)),
                ..p.clone()
            });
        }
        tracing::info!(task_id = %task.id, ports = shown.len(), "host-mode ports published");
        lock(&self.tasks).insert(task.id.clone(), published);
        Ok(shown)
    }

    /// Closes `task_id`'s ports (connections already relayed go on).
    pub fn unpublish(&self, task_id: &str) {
        lock(&self.tasks).remove(task_id);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    use super::*;

    fn task(ports: Vec<PortConfig>, labels: &[(&str, &str)]) -> Task {
        Task {
            id: "t1".to_string(),
            host_ports: ports,
            service_annotations: Some(swarm_model::Annotations {
                name: "web".to_string(),
                labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            }),
            ..Default::default()
        }
    }

    fn port(published: Option<u32>, target: u32, protocol: &str) -> PortConfig {
        PortConfig {
            protocol: protocol.to_string(),
            target_port: target,
            published_port: published,
            publish_mode: "host".to_string(),
            ..Default::default()
        }
    }

    /// A server in this process's own namespace stands in for the container (`/proc/self`):
    /// connections reach it with a PROXY header naming the client when the service asked for
    /// one; a port in use fails the whole task with a message naming it; unpublished, the
    /// port is closed.
    #[tokio::test]
    async fn host_ports_reach_the_container_and_name_the_client_on_request() {
        let server = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let target = u32::from(server.local_addr().expect("addr").port());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = server.accept().await {
                tokio::spawn(async move {
                    let mut got = vec![0u8; 64];
                    let n = s.read(&mut got).await.unwrap_or(0);
                    let _ = s.write_all(&got[..n]).await;
                });
            }
        });
        let pid = i64::from(std::process::id());
        let ports = HostPorts::new(Ipv4Addr::LOCALHOST);
        let shown = ports
            .publish(
                &task(
                    vec![port(None, target, "tcp")],
                    &[(swarm_model::PROXY_PROTOCOL_LABEL, "v2")],
                ),
                pid,
            )
            .await
            .expect("published");
        let published = shown[0].published_port.expect("a port was chosen");
        assert_ne!(published, 0);

        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, published as u16))
            .await
            .expect("connect");
        let client = c.local_addr().expect("addr");
        c.write_all(b"hi").await.expect("write");
        let mut echoed = [0u8; 64];
        let mut n = 0;
        while n < 30 {
            let got = c.read(&mut echoed[n..]).await.expect("read");
            assert_ne!(got, 0, "the relay closed early");
            n += got;
        }
        assert_eq!(&echoed[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(&echoed[16..20], &[127, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([echoed[24], echoed[25]]), client.port());
        assert_eq!(&echoed[28..30], b"hi");

        // The same port for another task: it is taken, and the message says which.
        let mut other = task(vec![port(Some(published), target, "tcp")], &[]);
        other.id = "t2".to_string();
        let e = ports.publish(&other, pid).await.expect_err("the port is in use");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot publish port {published}/tcp on this node")),
            "{e}"
        );

        ports.unpublish("t1");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, published as u16))
                .await
                .is_err()
        );
    }
}
