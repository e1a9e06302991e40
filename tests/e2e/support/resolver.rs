//! A stand-in for a node's upstream resolver: a UDP DNS server inside a test's network
//! namespace that knows a few names and says NXDOMAIN for the rest. It counts the questions it
//! got, so a test can tell an answer that came through it. It stops when dropped.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

pub struct FakeResolver {
    asked: Arc<AtomicUsize>,
    serving: tokio::task::JoinHandle<()>,
}

impl FakeResolver {
    /// Serves `names` (name → address) on UDP `addr` inside network namespace `netns`.
    pub async fn start(netns: &str, addr: SocketAddr, names: &[(&str, Ipv4Addr)]) -> Self {
        let path = Path::new("/run/netns").join(netns);
        let bound = swarm_agent::overlay::spawn_in_netns(&path, move || {
            let socket = std::net::UdpSocket::bind(addr)
                .map_err(|e| swarm_agent::overlay::OverlayError::Missing(e.to_string()))?;
            socket
                .set_nonblocking(true)
                .map_err(|e| swarm_agent::overlay::OverlayError::Missing(e.to_string()))?;
            Ok(socket)
        });
        let socket = tokio::task::spawn_blocking(move || bound.join())
            .await
            .expect("the binding thread ends")
            .expect("the binding thread does not panic")
            .unwrap_or_else(|e| panic!("cannot bind the fake resolver at {addr} in {netns}: {e}"));
        let socket = tokio::net::UdpSocket::from_std(socket).expect("a tokio socket");
        let names: BTreeMap<String, Ipv4Addr> = names.iter().map(|(n, a)| (n.to_ascii_lowercase(), *a)).collect();
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let serving = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if let Some(answer) = answer(&buf[..n], &names) {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        FakeResolver { asked, serving }
    }

    /// How many questions it answered.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::Relaxed)
    }
}

impl Drop for FakeResolver {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// The answer to one query: the header and question echoed, with an A record when the name is
/// known and the question is for A, NXDOMAIN when it is not known.
fn answer(query: &[u8], names: &BTreeMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question_end = at + 4;
    let mut out = query.get(..question_end)?.to_vec();
    let found = names.get(&labels.join("."));
    // QR, the query's opcode and RD; RA; the rcode; one question; no other section.
    out[2] = 0x80 | (query[2] & 0x79);
    out[3] = 0x80 | if found.is_some() { 0 } else { 3 };
    out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    if let (Some(addr), 1) = (found, qtype) {
        out[7] = 1;
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend_from_slice(&addr.octets());
    }
    Some(out)
}
