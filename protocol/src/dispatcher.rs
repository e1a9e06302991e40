//! What travels between a node's agent and the dispatcher on the leader, over mutual TLS:
//!
//! | call | body | answer |
//! |---|---|---|
//! | `POST /dispatcher/session` | [`SessionRequest`] | a stream of [`SessionMessage`] frames |
//! | `POST /dispatcher/heartbeat` | [`HeartbeatRequest`] | [`HeartbeatResponse`] |
//! | `POST /dispatcher/status` | [`StatusRequest`] | empty |
//! | `POST /dispatcher/logs` | [`LogBatch`] | empty; 410 once nobody reads the subscription |
//!
//! Bodies are MessagePack; stream frames are a `u32` big-endian length then the message. A
//! manager that is not the leader answers 503 with a JSON [`NotLeader`] naming the leader.

use serde::Deserialize;
use serde::Serialize;
use swarm_model::NodeDescription;
use swarm_model::NodeRole;
use swarm_model::Task;
use swarm_model::TaskStatus;
use swarm_model::Timestamp;

use crate::codec::frame_value;
use crate::codec::unframe_values;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    /// What the node reports about itself: hostname, platform, resources, engine.
    pub description: NodeDescription,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SessionMessage {
    /// First message of a session.
    Welcome {
        session_id: String,
        heartbeat_period_ms: u64,
        /// `(node ID, address)` of every manager, to reconnect elsewhere if this one dies.
        managers: Vec<(String, String)>,
    },
    /// The node's tasks: the full set first, then changes; with the data of the secrets and
    /// configs these tasks use (only nodes running such tasks ever receive the data).
    Assignments {
        full: bool,
        tasks: Vec<Task>,
        removed: Vec<String>,
        files: Vec<FileData>,
    },
    /// The manager list changed.
    Managers { managers: Vec<(String, String)> },
    /// The role the node should have, and for a manager its raft incarnation (sent at the start
    /// of a session and when either changes): a node told something else than it runs gets a
    /// certificate for it and restarts in it.
    Role { role: NodeRole, raft_id: Option<u64> },
    /// Send the output of these tasks' containers to `POST /dispatcher/logs`.
    Logs(LogRequest),
    /// The whole set of overlay peers the node needs (sent when it changes): tasks on other
    /// nodes that share a network with one of this node's tasks.
    Peers { peers: Vec<OverlayPeer> },
    /// The whole service directory the node needs (sent when it changes): each service on a
    /// network one of this node's tasks is on, and every service published through the
    /// routing mesh. The node's resolvers, virtual IPs and mesh answer from it.
    Directory {
        records: Vec<ServiceRecord>,
        /// The node's own address on `ingress` while some service publishes through the
        /// routing mesh: the node joins ingress with it to reach the tasks it forwards to.
        #[serde(default)]
        ingress: Option<Box<swarm_model::NetworkAttachment>>,
    },
}

/// A service as containers on one network find it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub service_id: String,
    pub network_id: String,
    /// Whether this is the `ingress` network, which carries the routing mesh but no names.
    pub ingress: bool,
    /// The service's name, then its aliases on this network.
    pub names: Vec<String>,
    /// Its virtual IP here; none in `dnsrr` mode.
    pub vip: Option<std::net::Ipv4Addr>,
    /// The addresses here of its tasks that are running and wanted running: the rotation.
    pub tasks: Vec<std::net::Ipv4Addr>,
    /// Those of `tasks` whose servers expect a PROXY protocol v2 header (created while the
    /// service asked for one); on the ingress record only.
    #[serde(default)]
    pub proxied: Vec<std::net::Ipv4Addr>,
    /// Ports published through the routing mesh (on the ingress record only).
    pub mesh_ports: Vec<MeshPort>,
}

/// A port every node publishes for a service, sending connections to `target` on its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MeshPort {
    pub udp: bool,
    pub published: u16,
    pub target: u16,
}

/// A task on another node, as an overlay on this node reaches it: its address on the network
/// with VXLAN ID `vni`, and the address of the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OverlayPeer {
    pub vni: u32,
    pub addr: std::net::Ipv4Addr,
    pub node: std::net::Ipv4Addr,
}

/// Whether a [`FileData`] is a secret's or a config's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    Secret,
    Config,
}

/// The data of one secret or config, for the tasks that mount it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileData {
    pub kind: FileKind,
    pub id: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A log subscription, as the leader hands it to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub subscription: String,
    pub tasks: Vec<String>,
    pub options: LogOptions,
}

/// Which output `docker service logs` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Only lines from this Unix time on.
    pub since_secs: Option<i64>,
    /// Only the last N lines of each task.
    pub tail: Option<u64>,
}

/// One line of a task's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub task_id: String,
    pub stderr: bool,
    pub timestamp: Timestamp,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Lines a node sends for a subscription; `done` once it has sent all it will.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogBatch {
    pub session_id: String,
    pub subscription: String,
    pub lines: Vec<LogLine>,
    pub done: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub session_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub period_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusRequest {
    pub session_id: String,
    /// `(task ID, status)`, oldest first.
    pub updates: Vec<(String, TaskStatus)>,
}

/// The 503 answer of a manager that is not the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotLeader {
    pub message: String,
    /// The leader's address, if known.
    pub leader: Option<String>,
}

impl NotLeader {
    /// The leader named in the message of a 503 refusal, if it is one and names it.
    pub fn leader_in(message: &str) -> Option<String> {
        serde_json::from_str::<NotLeader>(message).ok().and_then(|n| n.leader)
    }
}

/// Frames a message for a session stream. Inline: only the two ends of a session build the
/// (large) encoding of a session message, not this crate.
#[inline]
pub fn frame(msg: &SessionMessage) -> Result<Vec<u8>, std::io::Error> {
    frame_value(msg)
}

/// Splits complete session messages off the front of `buf`.
#[inline]
pub fn unframe(buf: &mut Vec<u8>) -> Result<Vec<SessionMessage>, std::io::Error> {
    unframe_values(buf, "session message")
}

/// A manager asking the leader for task output on behalf of a client: the answer is a stream
/// of framed [`LogLine`]s.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSubscribe {
    /// Task IDs by node ID.
    pub tasks: std::collections::HashMap<String, Vec<String>>,
    pub options: LogOptions,
}
