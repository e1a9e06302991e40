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
pub struct Cluster {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: Timestamp,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: Timestamp,
    #[serde(rename = "Spec")]
    pub spec: ClusterSpec,
    #[serde(rename = "TLSInfo", default)]
    pub tls_info: TlsInfo,
    #[serde(rename = "RootRotationInProgress", default)]
    pub root_rotation_in_progress: bool,
    #[serde(rename = "DefaultAddrPool", default)]
    pub default_addr_pool: Option<Vec<String>>,
    #[serde(rename = "SubnetSize", default)]
    pub subnet_size: u32,
    #[serde(rename = "DataPathPort", default)]
    pub data_path_port: u32,
    /// Shown by `GET /swarm` only.
    #[serde(rename = "JoinTokens", default, skip_serializing_if = "Option::is_none")]
    pub join_tokens: Option<JoinTokens>,
    /// The CA's private key and the token secrets: replicated to every manager, never shown by
    /// the API (the API handlers strip it).
    #[serde(rename = "RootCA", default, skip_serializing_if = "Option::is_none")]
    pub root_ca: Option<RootCaState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokens {
    #[serde(rename = "Worker")]
    pub worker: String,
    #[serde(rename = "Manager")]
    pub manager: String,
}

/// Private CA material, kept in raft so any manager can sign node certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCaState {
    #[serde(rename = "CACert")]
    pub ca_cert_pem: String,
    #[serde(rename = "CAKey")]
    pub ca_key_pem: String,
    /// Join tokens that were rotated away, so a joiner using one is told it was rotated.
    #[serde(rename = "RotatedTokens", default)]
    pub rotated_tokens: Vec<String>,
    /// Nodes removed from the cluster (ID → when): their certificates are refused from then on.
    #[serde(rename = "RemovedNodes", default)]
    pub removed_nodes: std::collections::BTreeMap<String, Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
    #[serde(rename = "Orchestration", default)]
    pub orchestration: OrchestrationConfig,
    #[serde(rename = "Raft", default)]
    pub raft: RaftSettings,
    #[serde(rename = "Dispatcher", default)]
    pub dispatcher: DispatcherConfig,
    #[serde(rename = "CAConfig", default)]
    pub ca_config: CaConfig,
    #[serde(rename = "TaskDefaults", default)]
    pub task_defaults: TaskDefaults,
    #[serde(rename = "EncryptionConfig", default)]
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
#[serde(deny_unknown_fields)]
pub struct OrchestrationConfig {
    #[serde(
        rename = "TaskHistoryRetentionLimit",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub task_history_retention_limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSettings {
    #[serde(rename = "SnapshotInterval", default)]
    pub snapshot_interval: u64,
    #[serde(rename = "KeepOldSnapshots", default, skip_serializing_if = "Option::is_none")]
    pub keep_old_snapshots: Option<u64>,
    #[serde(rename = "LogEntriesForSlowFollowers", default)]
    pub log_entries_for_slow_followers: u64,
    #[serde(rename = "ElectionTick", default)]
    pub election_tick: u64,
    #[serde(rename = "HeartbeatTick", default)]
    pub heartbeat_tick: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherConfig {
    #[serde(rename = "HeartbeatPeriod", default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_period: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    #[serde(rename = "NodeCertExpiry", default, skip_serializing_if = "Option::is_none")]
    pub node_cert_expiry: Option<i64>,
    #[serde(rename = "ExternalCAs", default, skip_serializing_if = "Option::is_none")]
    pub external_cas: Option<Vec<serde_json::Value>>,
    #[serde(rename = "SigningCACert", default, skip_serializing_if = "String::is_empty")]
    pub signing_ca_cert: String,
    #[serde(rename = "SigningCAKey", default, skip_serializing_if = "String::is_empty")]
    pub signing_ca_key: String,
    #[serde(rename = "ForceRotate", default, skip_serializing_if = "super::service::is_zero_u64")]
    pub force_rotate: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDefaults {
    #[serde(rename = "LogDriver", default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    #[serde(rename = "AutoLockManagers", default)]
    pub auto_lock_managers: bool,
}
