//! The resolver each container asks, at 127.0.0.11 as in Docker. Its sockets are opened inside
//! the container's network namespace (so no redirect rule is needed), and served by this
//! process with `hickory-server`. It answers from the service directory the managers push, for
//! the networks the container is on, and forwards every other name to the node's upstream
//! resolvers from the node's own namespace.

use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::Header;
use hickory_server::proto::op::HeaderCounts;
use hickory_server::proto::op::Message;
use hickory_server::proto::op::Metadata;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RData;
use hickory_server::proto::rr::Record;
use hickory_server::proto::rr::RecordType;
use hickory_server::proto::rr::rdata::A;
use hickory_server::server::Request;
use hickory_server::server::RequestHandler;
use hickory_server::server::ResponseHandler;
use hickory_server::server::ResponseInfo;
use hickory_server::zone_handler::MessageResponseBuilder;
use swarm_protocol::dispatcher::ServiceRecord;
use tokio::sync::watch;

/// Where a container's resolver listens, inside the container.
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// How long an upstream resolver has to answer before the next one is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The directory as the resolvers and virtual IPs read it.
pub type Directory = watch::Receiver<Arc<Vec<ServiceRecord>>>;

/// What the cluster says about a name, for a container on `networks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A cluster name, with its addresses (none: a `dnsrr` service with no running task).
    /// `stable` when it is a virtual IP, which does not change while the service lives.
    Ours { addrs: Vec<Ipv4Addr>, stable: bool },
    /// Not a name of the cluster: ask upstream.
    Elsewhere,
}

/// Looks `name` up in `records` for a container on `networks` (in its order of attachment):
/// a service name or alias gives the virtual IP (or, in `dnsrr` mode, the running tasks'
/// addresses), and `tasks.<name>` the running tasks' addresses. The ingress network gives no
/// names, as in Swarm.
pub fn lookup(records: &[ServiceRecord], networks: &[String], name: &str) -> Answer {
    let name = name.trim_end_matches('.');
    let (tasks_only, wanted) = match name.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("tasks.") => (true, &name[6..]),
        _ => (false, name),
    };
    for net in networks {
        let found = records
            .iter()
            .filter(|r| !r.ingress && &r.network_id == net)
            .find(|r| r.names.iter().any(|n| n.eq_ignore_ascii_case(wanted)));
        if let Some(r) = found {
            return match (tasks_only, r.vip) {
                (false, Some(vip)) => Answer::Ours {
                    addrs: vec![vip],
                    stable: true,
                },
                _ => Answer::Ours {
                    addrs: r.tasks.clone(),
                    stable: false,
                },
            };
        }
    }
    Answer::Elsewhere
}

/// The resolver of one container.
pub struct ContainerResolver {
    directory: Directory,
    /// The container's networks, by ID, in the order it joined them.
    networks: Vec<String>,
    upstream: Arc<Vec<SocketAddr>>,
    /// Rotates `dnsrr` and `tasks.` answers, so clients that take the first address spread.
    turn: AtomicUsize,
}

impl ContainerResolver {
    pub fn new(directory: Directory, networks: Vec<String>, upstream: Arc<Vec<SocketAddr>>) -> Self {
        ContainerResolver {
            directory,
            networks,
            upstream,
            turn: AtomicUsize::new(0),
        }
    }
}

/// Sends the raw `query` to each upstream resolver in turn and gives the first answer.
async fn forward(query: &[u8], id: u16, upstream: &[SocketAddr]) -> Option<Message> {
    for server in upstream {
        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        if socket.send_to(query, server).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        // Skip anything that is not the answer to this query.
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            if from != *server {
                continue;
            }
            match Message::from_vec(&buf[..n]) {
                Ok(m) if m.metadata.id == id => return Some(m),
                _ => continue,
            }
        }
        tracing::debug!(%server, "an upstream resolver did not answer");
    }
    None
}

/// A response header for when the answer could not be sent.
fn unsent(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for ContainerResolver {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return response.send_response(msg).await.unwrap_or_else(|_| unsent(request));
        };
        let query = info.query;
        let answer = {
            let records = self.directory.borrow().clone();
            lookup(&records, &self.networks, &query.name().to_string())
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let sent = match answer {
            Answer::Ours { mut addrs, stable } => {
                metadata.authoritative = true;
                if !addrs.is_empty() {
                    let turn = self.turn.fetch_add(1, Ordering::Relaxed) % addrs.len();
                    addrs.rotate_left(turn);
                }
                // A name with no address of this type is NOERROR with no answer, not NXDOMAIN,
                // so clients asking A and AAAA together keep the A answer.
                let ttl = if stable { 10 } else { 0 };
                let records: Vec<Record> = match query.query_type() {
                    RecordType::A => addrs
                        .into_iter()
                        .map(|a| Record::from_rdata(query.original().name().clone(), ttl, RData::A(A(a))))
                        .collect(),
                    _ => Vec::new(),
                };
                let msg = builder.build(metadata, records.iter(), [], [], []);
                response.send_response(msg).await
            }
            Answer::Elsewhere => match forward(request.as_slice(), request.metadata.id, &self.upstream).await {
                Some(upstream) => {
                    metadata.response_code = upstream.metadata.response_code;
                    metadata.recursion_available = upstream.metadata.recursion_available;
                    metadata.truncation = upstream.metadata.truncation;
                    let msg = builder.build(
                        metadata,
                        upstream.answers.iter(),
                        upstream.authorities.iter(),
                        [],
                        upstream.additionals.iter(),
                    );
                    response.send_response(msg).await
                }
                None => {
                    let msg = builder.error_msg(&request.metadata, ResponseCode::ServFail);
                    response.send_response(msg).await
                }
            },
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot send a DNS answer");
            unsent(request)
        })
    }
}

/// An upstream resolver given as `IP` (port 53) or `IP:PORT`.
pub fn upstream_addr(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

/// The upstream resolvers of a node: those given, or else the host's (`/etc/resolv.conf`).
pub fn upstream_resolvers(given: &[String]) -> Vec<SocketAddr> {
    if !given.is_empty() {
        return given.iter().filter_map(|s| upstream_addr(s)).collect();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| nameservers(&text))
        .unwrap_or_default()
}

/// The resolvers in a `resolv.conf` text, on port 53.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn record(network: &str, names: &[&str], vip: Option<&str>, tasks: &[&str]) -> ServiceRecord {
        ServiceRecord {
            service_id: names[0].to_string(),
            network_id: network.to_string(),
            ingress: network == "ingress",
            names: names.iter().map(|n| n.to_string()).collect(),
            vip: vip.map(ip),
            tasks: tasks.iter().map(|t| ip(t)).collect(),
            proxied: Vec::new(),
            mesh_ports: Vec::new(),
        }
    }

    #[test]
    fn names_resolve_on_shared_networks_only() {
        let records = vec![
            record("back", &["stack_db", "db"], Some("10.0.1.2"), &["10.0.1.3", "10.0.1.4"]),
            record("back", &["stack_app"], None, &["10.0.1.5"]),
            record("front", &["stack_web"], Some("10.0.2.2"), &["10.0.2.3"]),
            record("ingress", &["stack_web"], Some("10.0.0.2"), &["10.0.0.3"]),
        ];
        let on_back = vec!["back".to_string()];
        let ours = |addrs: &[&str], stable| Answer::Ours {
            addrs: addrs.iter().map(|a| ip(a)).collect(),
            stable,
        };
        assert_eq!(lookup(&records, &on_back, "db"), ours(&["10.0.1.2"], true));
        assert_eq!(lookup(&records, &on_back, "STACK_DB."), ours(&["10.0.1.2"], true));
        assert_eq!(
            lookup(&records, &on_back, "tasks.db"),
            ours(&["10.0.1.3", "10.0.1.4"], false)
        );
        assert_eq!(
            lookup(&records, &on_back, "stack_app"),
            ours(&["10.0.1.5"], false),
            "dnsrr"
        );
        assert_eq!(
            lookup(&records, &on_back, "stack_web"),
            Answer::Elsewhere,
            "no shared network; ingress gives no names"
        );
        assert_eq!(lookup(&records, &on_back, "example.org"), Answer::Elsewhere);
        assert_eq!(lookup(&records, &on_back, "tasks.example.org"), Answer::Elsewhere);
        let on_both = vec!["front".to_string(), "back".to_string()];
        assert_eq!(lookup(&records, &on_both, "stack_web"), ours(&["10.0.2.2"], true));
    }

    #[test]
    fn an_upstream_is_an_ip_with_an_optional_port() {
        assert_eq!(upstream_addr("198.18.0.250"), "198.18.0.250:53".parse().ok());
        assert_eq!(upstream_addr("198.18.0.250:5353"), "198.18.0.250:5353".parse().ok());
        assert_eq!(upstream_addr("resolver.example"), None);
    }

    #[test]
    fn upstream_resolvers_come_from_resolv_conf() {
        let text = "# generated\nsearch example.org\nnameserver 10.255.255.53\nnameserver ::1\noptions ndots:2\nnameserver bad\n";
        assert_eq!(
            nameservers(text),
            vec![
                "10.255.255.53:53"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                "[::1]:53".parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            ]
        );
    }
}
