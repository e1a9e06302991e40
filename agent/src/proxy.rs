//! The L4 proxy behind every port a node publishes, for the routing mesh and for host mode:
//! tcp connections and udp flows are sent round robin over a route's upstreams, skipping one
//! that refuses. An upstream is either an address the node reaches (a task on ingress) or a
//! port on the loopback inside a container's own network namespace (a task on this node).
//!
//! A proxy hides the client's address from the task. A service that wants it opts in to a
//! PROXY protocol v2 header, sent first on each tcp connection to its tasks created since.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tokio::sync::watch;

use crate::overlay::call_in_netns;

/// How long an upstream has to accept a connection before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a UDP client's flow is kept without traffic in either direction.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// Where a proxied connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address the node reaches: a task's address on ingress.
    Addr(SocketAddr),
    /// A port on the loopback inside a container's network namespace (`/proc/PID/ns/net`):
    /// reached whatever network the container has, or none.
    Netns { netns: PathBuf, port: u16 },
}

/// One task behind a published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub to: Target,
    /// Its server expects a PROXY protocol v2 header first on each tcp connection (decided
    /// when the task was created, so a rollout that turns headers on never sends one to a task
    /// that does not expect it).
    pub proxy_protocol: bool,
}

/// Where one published port sends its traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub upstreams: Vec<Upstream>,
}

/// Serves `listener` until aborted, each connection along the route current when it arrives.
pub async fn serve_tcp(listener: TcpListener, route: watch::Receiver<Arc<Route>>) {
    let turn = AtomicUsize::new(0);
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let route = route.borrow().clone();
        let start = turn.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(relay_tcp(client, route, start));
    }
}

/// Sends `client` to the first upstream that accepts, from the `start`th on; with none, the
/// client's connection is closed.
async fn relay_tcp(mut client: TcpStream, route: Arc<Route>, start: usize) {
    let _ = client.set_nodelay(true);
    let ups = &route.upstreams;
    for i in 0..ups.len() {
        let upstream = &ups[(start + i) % ups.len()];
        match connect_tcp(&upstream.to).await {
            Ok(mut task) => {
                let _ = task.set_nodelay(true);
                if upstream.proxy_protocol {
                    let (Ok(from), Ok(to)) = (client.peer_addr(), client.local_addr()) else {
                        return;
                    };
                    if task.write_all(&proxy_v2_header(from, to)).await.is_err() {
                        return;
                    }
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut task).await;
                return;
            }
            Err(e) => tracing::debug!(?upstream, error = %e, "an upstream did not accept; trying the next"),
        }
    }
}

async fn connect_tcp(target: &Target) -> io::Result<TcpStream> {
    match target {
        Target::Addr(addr) => tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?,
        Target::Netns { netns, port } => {
            let to = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
            let stream = call_in_netns(netns, move || {
                let s = std::net::TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .await?;
            TcpStream::from_std(stream)
        }
    }
}

async fn connect_udp(target: &Target) -> io::Result<UdpSocket> {
    match target {
        Target::Addr(addr) => {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
            socket.connect(addr).await?;
            Ok(socket)
        }
        Target::Netns { netns, port } => {
            let port = *port;
            let socket = call_in_netns(netns, move || {
                let s = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
                s.connect((Ipv4Addr::LOCALHOST, port))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .await?;
            UdpSocket::from_std(socket)
        }
    }
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

/// Serves `socket` until aborted. Each client address is a flow with its own socket to one
/// upstream, so the answers go back to that client; a flow ends after [`UDP_IDLE`] without an
/// answer, and every flow ends with the port (they are this task's own), so neither the port
/// nor a container's namespace outlives it.
pub async fn serve_udp(socket: Arc<UdpSocket>, route: watch::Receiver<Arc<Route>>) {
    let flows: Flows = Arc::default();
    let mut answering = tokio::task::JoinSet::new();
    let turn = AtomicUsize::new(0);
    let mut buf = vec![0u8; 65_536];
    loop {
        while answering.try_join_next().is_some() {}
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let existing = flows.lock().await.get(&client).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let route = route.borrow().clone();
                if route.upstreams.is_empty() {
                    continue;
                }
                let target = &route.upstreams[turn.fetch_add(1, Ordering::Relaxed) % route.upstreams.len()];
                let Ok(u) = connect_udp(&target.to).await else {
                    continue;
                };
                let u = Arc::new(u);
                flows.lock().await.insert(client, u.clone());
                answering.spawn(answer_udp(socket.clone(), u.clone(), client, flows.clone()));
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

async fn answer_udp(socket: Arc<UdpSocket>, upstream: Arc<UdpSocket>, client: SocketAddr, flows: Flows) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = socket.send_to(&buf[..n], client).await;
    }
    flows.lock().await.remove(&client);
}

/// The PROXY protocol v2 header for a tcp connection from `from` to `to` (haproxy's
/// proxy-protocol.txt, section 2.2).
pub fn proxy_v2_header(from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
    let mut out = SIGNATURE.to_vec();
    // Version 2, command PROXY.
    out.push(0x21);
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    };
    match (v4(from.ip()), v4(to.ip())) {
        (Some(src), Some(dst)) => {
            // AF_INET, STREAM; 12 bytes of addresses.
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        _ => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            // AF_INET6, STREAM; 36 bytes of addresses.
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(from.ip()).octets());
            out.extend_from_slice(&v6(to.ip()).octets());
        }
    }
    out.extend_from_slice(&from.port().to_be_bytes());
    out.extend_from_slice(&to.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_v2_header_carries_both_ends() {
        let from: SocketAddr = "192.168.7.2:40000".parse().expect("addr");
        let to: SocketAddr = "10.255.0.2:8080".parse().expect("addr");
        let h = proxy_v2_header(from, to);
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(h[12], 0x21, "version 2, PROXY");
        assert_eq!(h[13], 0x11, "TCP over IPv4");
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[192, 168, 7, 2]);
        assert_eq!(&h[20..24], &[10, 255, 0, 2]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 40000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 8080);
        assert_eq!(h.len(), 28);

        let v6: SocketAddr = "[fd00::1]:5000".parse().expect("addr");
        let h = proxy_v2_header(v6, to);
        assert_eq!((h[13], u16::from_be_bytes([h[14], h[15]]), h.len()), (0x21, 36, 52));
    }
}
