//! The cluster object (the Engine API's "swarm"): settings, trust root and join tokens.

use serde::Deserialize;
use serde::Serialize;

use super::Driver;
use super::Labels;
use super::Timestamp;
use super::TlsInfo;
use super::Version;

/// The one cluster object, named `default`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Cluster {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub spec: ClusterSpec,
    #[serde(rename = "TLSInfo", default)]
    pub tls_info: TlsInfo,
    #[serde(default)]
    pub root_rotation_in_progress: bool,
    #[serde(default)]
    pub default_addr_pool: Option<Vec<String>>,
    #[serde(default)]
    pub subnet_size: u32,
    #[serde(default)]
    pub data_path_port: u32,
    /// Shown by `GET /swarm` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_tokens: Option<JoinTokens>,
    /// The CA's private key and the token secrets: replicated to every manager, never shown by
    /// the API (the API handlers strip it).
    #[serde(rename = "RootCA", default, skip_serializing_if = "Option::is_none")]
    pub root_ca: Option<RootCaState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

/// Private CA material, kept in raft so any manager can sign node certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootCaState {
    #[serde(rename = "CACert")]
    pub ca_cert_pem: String,
    #[serde(rename = "CAKey")]
    pub ca_key_pem: String,
    /// Join tokens that were rotated away, so a joiner using one is told it was rotated.
    #[serde(default)]
    pub rotated_tokens: Vec<String>,
    /// Nodes removed from the cluster (ID → when): their certificates are refused from then on.
    #[serde(default)]
    pub removed_nodes: std::collections::BTreeMap<String, Timestamp>,
    /// The managers' unlock key (`SWMKEY-1-…`) while autolock is on. Like the CA key, it is
    /// never shown by `GET /swarm`, only by `GET /swarm/unlockkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ClusterSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub orchestration: OrchestrationConfig,
    #[serde(default)]
    pub raft: RaftSettings,
    #[serde(default)]
    pub dispatcher: DispatcherConfig,
    #[serde(rename = "CAConfig", default)]
    pub ca_config: CaConfig,
    #[serde(default)]
    pub task_defaults: TaskDefaults,
    #[serde(default)]
    pub encryption_config: EncryptionConfig,
}

impl ClusterSpec {
    /// Swarm's defaults, with swarm-rs' faster failure detection.
    pub fn defaults() -> Self {
        Self {
            name: "default".to_string(),
            labels: Labels::new(),
            orchestration: OrchestrationConfig {
                task_history_retention_limit: Some(5),
            },
            raft: RaftSettings {
                snapshot_interval: 10_000,
                keep_old_snapshots: Some(0),
                log_entries_for_slow_followers: 500,
                election_tick: 10,
                heartbeat_tick: 1,
            },
            dispatcher: DispatcherConfig {
                heartbeat_period: Some(1_000_000_000),
            },
            ca_config: CaConfig {
                node_cert_expiry: Some(2160 * 3600 * 1_000_000_000),
                ..Default::default()
            },
            task_defaults: TaskDefaults::default(),
            encryption_config: EncryptionConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct OrchestrationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_history_retention_limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RaftSettings {
    #[serde(default)]
    pub snapshot_interval: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_old_snapshots: Option<u64>,
    #[serde(default)]
    pub log_entries_for_slow_followers: u64,
    #[serde(default)]
    pub election_tick: u64,
    #[serde(default)]
    pub heartbeat_tick: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DispatcherConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_period: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_cert_expiry: Option<i64>,
    #[serde(rename = "ExternalCAs", default, skip_serializing_if = "Option::is_none")]
    pub external_cas: Option<Vec<serde_json::Value>>,
    #[serde(rename = "SigningCACert", default, skip_serializing_if = "String::is_empty")]
    pub signing_ca_cert: String,
    #[serde(rename = "SigningCAKey", default, skip_serializing_if = "String::is_empty")]
    pub signing_ca_key: String,
    #[serde(default, skip_serializing_if = "super::service::is_zero_u64")]
    pub force_rotate: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TaskDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct EncryptionConfig {
    #[serde(default)]
    pub auto_lock_managers: bool,
}
