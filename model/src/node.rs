//! Nodes: every manager and worker that joined the cluster.

use serde::Deserialize;
use serde::Serialize;

use super::Labels;
use super::Timestamp;
use super::Version;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    #[default]
    Worker,
    Manager,
}

impl NodeRole {
    /// The certificate OU for this role.
    pub fn ou(self) -> &'static str {
        match self {
            NodeRole::Worker => "swarm-worker",
            NodeRole::Manager => "swarm-manager",
        }
    }

    pub fn from_ou(ou: &str) -> Option<Self> {
        match ou {
            "swarm-worker" => Some(NodeRole::Worker),
            "swarm-manager" => Some(NodeRole::Manager),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Worker => "worker",
            NodeRole::Manager => "manager",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    #[default]
    Unknown,
    Unreachable,
    Reachable,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default)]
    pub description: NodeDescription,
    #[serde(default)]
    pub status: NodeStatus,
    /// Filled in at read time from raft and peer health; `None` for workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
    /// The raft id of this manager's current incarnation.
    #[serde(rename = "RaftID", default, skip_serializing_if = "Option::is_none")]
    pub raft_id: Option<u64>,
    /// The node's own address on the ingress network, where its routing mesh connects from
    /// (SwarmKit's `Node.Attachments`). Given by the state machine, never by a writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<crate::NetworkAttachment>>,
    /// SHA-256 (base64) of the public key of the newest certificate the leader issued to this
    /// node: a node whose certificate expired must prove this key to rejoin, not an older one.
    #[serde(rename = "SwarmRsCertificateKey", default, skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub role: NodeRole,
    #[serde(default)]
    pub availability: Availability,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDescription {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub platform: super::Platform,
    #[serde(default)]
    pub resources: super::Resources,
    #[serde(default)]
    pub engine: EngineDescription,
    #[serde(rename = "TLSInfo", default)]
    pub tls_info: TlsInfo,
    /// The IPv4 networks the node itself uses (routes and resolvers, as CIDRs): overlay
    /// subnets are picked around them. Not in Swarm, which overlaps them silently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_networks: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineDescription {
    #[serde(default)]
    pub engine_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginDescription>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PluginDescription {
    pub type_: String,
    pub name: String,
}

/// The trust root and issuer, as shown on nodes and on the swarm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TlsInfo {
    #[serde(default)]
    pub trust_root: String,
    #[serde(default)]
    pub cert_issuer_subject: String,
    #[serde(default)]
    pub cert_issuer_public_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeStatus {
    #[serde(default)]
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default)]
    pub addr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManagerStatus {
    #[serde(default, skip_serializing_if = "super::service::is_false")]
    pub leader: bool,
    #[serde(default)]
    pub reachability: Reachability,
    #[serde(default)]
    pub addr: String,
}
