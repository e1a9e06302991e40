//! Services and the task template they stamp out.

use serde::Deserialize;
use serde::Serialize;

use super::Labels;
use super::Timestamp;
use super::Version;

/// A service as the Engine API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: Timestamp,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: Timestamp,
    #[serde(rename = "Spec")]
    pub spec: ServiceSpec,
    #[serde(rename = "PreviousSpec", default, skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<ServiceSpec>,
    #[serde(rename = "Endpoint", default)]
    pub endpoint: Endpoint,
    #[serde(rename = "UpdateStatus", default, skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    /// Only in `GET /services?status=true`; computed, never stored.
    #[serde(rename = "ServiceStatus", default, skip_serializing_if = "Option::is_none")]
    pub service_status: Option<ServiceStatus>,
    #[serde(rename = "JobStatus", default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    /// Computed at read time, never stored: tasks the scheduler cannot place, and why. Swarm
    /// shows this only in each task's `Err`.
    #[serde(rename = "SchedulingStatus", default, skip_serializing_if = "Option::is_none")]
    pub scheduling_status: Option<SchedulingStatus>,
    /// The raft index at which the spec last changed; tasks built from an older spec are dirty.
    #[serde(rename = "SpecVersion", default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<Version>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
    #[serde(rename = "TaskTemplate", default)]
    pub task_template: TaskSpec,
    #[serde(rename = "Mode", default)]
    pub mode: ServiceMode,
    #[serde(rename = "UpdateConfig", default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(rename = "RollbackConfig", default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// Deprecated in the Engine API in favour of `TaskTemplate.Networks`; still accepted.
    #[serde(rename = "Networks", default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkAttachmentConfig>>,
    #[serde(rename = "EndpointSpec", default, skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
}

/// Exactly one of the four modes is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMode {
    #[serde(rename = "Replicated", default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<ReplicatedService>,
    #[serde(rename = "Global", default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Empty>,
    #[serde(rename = "ReplicatedJob", default, skip_serializing_if = "Option::is_none")]
    pub replicated_job: Option<ReplicatedJob>,
    #[serde(rename = "GlobalJob", default, skip_serializing_if = "Option::is_none")]
    pub global_job: Option<Empty>,
}

impl ServiceMode {
    pub fn replicated(replicas: u64) -> Self {
        Self {
            replicated: Some(ReplicatedService {
                replicas: Some(replicas),
            }),
            ..Default::default()
        }
    }

    /// `replicated`, `global`, `replicated job` or `global job`, as `service ls` prints it.
    pub fn describe(&self) -> &'static str {
        if self.global.is_some() {
            "global"
        } else if self.replicated_job.is_some() {
            "replicated job"
        } else if self.global_job.is_some() {
            "global job"
        } else {
            "replicated"
        }
    }

    /// Jobs run their tasks to completion instead of keeping them running.
    pub fn is_job(&self) -> bool {
        self.replicated_job.is_some() || self.global_job.is_some()
    }

    /// How many modes are set; a valid spec has exactly one.
    pub fn count_set(&self) -> usize {
        [
            self.replicated.is_some(),
            self.global.is_some(),
            self.replicated_job.is_some(),
            self.global_job.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// An empty JSON object, `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicatedService {
    #[serde(rename = "Replicas", default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicatedJob {
    #[serde(rename = "MaxConcurrent", default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(rename = "TotalCompletions", default, skip_serializing_if = "Option::is_none")]
    pub total_completions: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[serde(rename = "Parallelism", default)]
    pub parallelism: u64,
    #[serde(rename = "Delay", default, skip_serializing_if = "is_zero_i64")]
    pub delay: i64,
    #[serde(rename = "FailureAction", default, skip_serializing_if = "String::is_empty")]
    pub failure_action: String,
    #[serde(rename = "Monitor", default, skip_serializing_if = "is_zero_i64")]
    pub monitor: i64,
    #[serde(rename = "MaxFailureRatio", default)]
    pub max_failure_ratio: f64,
    #[serde(rename = "Order", default, skip_serializing_if = "String::is_empty")]
    pub order: String,
}

pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    #[serde(rename = "Mode", default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(rename = "Ports", default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "Protocol", default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(rename = "TargetPort", default)]
    pub target_port: u32,
    #[serde(rename = "PublishedPort", default, skip_serializing_if = "Option::is_none")]
    pub published_port: Option<u32>,
    #[serde(rename = "PublishMode", default, skip_serializing_if = "String::is_empty")]
    pub publish_mode: String,
}

/// Where a service can be reached: the resolved ports and virtual IPs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(rename = "Spec", default)]
    pub spec: EndpointSpec,
    #[serde(rename = "Ports", default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortConfig>>,
    #[serde(rename = "VirtualIPs", default, skip_serializing_if = "Option::is_none")]
    pub virtual_ips: Option<Vec<VirtualIp>>,
}

impl Endpoint {
    /// What a service with `spec` is reachable at.
    pub fn for_spec(spec: &ServiceSpec) -> Endpoint {
        let ep = spec.endpoint_spec.clone().unwrap_or_default();
        let ports = ep.ports.clone();
        Endpoint {
            spec: ep,
            ports,
            virtual_ips: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualIp {
    #[serde(rename = "NetworkID", default)]
    pub network_id: String,
    #[serde(rename = "Addr", default)]
    pub addr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused` or
    /// `rollback_completed`.
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "StartedAt", default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(rename = "CompletedAt", default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    #[serde(rename = "Message", default)]
    pub message: String,
    /// swarm-rs: the update's progress, kept in the replicated store so that a new leader
    /// carries on the same update (Swarm keeps it in the leader's memory).
    #[serde(rename = "Progress", default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<UpdateProgress>,
}

impl UpdateStatus {
    pub const UPDATING: &'static str = "updating";
    pub const PAUSED: &'static str = "paused";
    pub const COMPLETED: &'static str = "completed";
    pub const ROLLBACK_STARTED: &'static str = "rollback_started";
    pub const ROLLBACK_PAUSED: &'static str = "rollback_paused";
    pub const ROLLBACK_COMPLETED: &'static str = "rollback_completed";
}

/// What a rolling update has done so far, beyond what the tasks themselves show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProgress {
    /// Slots (nodes, for a global service) that needed the update when it started: failures
    /// are counted against this.
    #[serde(rename = "Slots", default)]
    pub slots: u64,
    /// Tasks of this update that failed before running or within the monitor period.
    #[serde(rename = "FailedTasks", default)]
    pub failed_tasks: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    #[serde(rename = "RunningTasks")]
    pub running_tasks: u64,
    #[serde(rename = "DesiredTasks")]
    pub desired_tasks: u64,
    #[serde(rename = "CompletedTasks")]
    pub completed_tasks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulingStatus {
    /// Tasks waiting for a node.
    #[serde(rename = "PendingTasks")]
    pub pending_tasks: u64,
    /// The scheduler's explanation, e.g. `no suitable node (…)`.
    #[serde(rename = "Reason", default)]
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    #[serde(rename = "JobIteration")]
    pub job_iteration: Version,
    #[serde(rename = "LastExecution", default, skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<Timestamp>,
}

/// What one task runs: the container and how it is placed, limited and restarted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    #[serde(rename = "PluginSpec", default, skip_serializing_if = "Option::is_none")]
    pub plugin_spec: Option<serde_json::Value>,
    #[serde(rename = "ContainerSpec", default, skip_serializing_if = "Option::is_none")]
    pub container_spec: Option<ContainerSpec>,
    #[serde(rename = "NetworkAttachmentSpec", default, skip_serializing_if = "Option::is_none")]
    pub network_attachment_spec: Option<serde_json::Value>,
    #[serde(rename = "Resources", default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(rename = "RestartPolicy", default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(rename = "Placement", default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(rename = "Networks", default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkAttachmentConfig>>,
    #[serde(rename = "LogDriver", default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
    #[serde(rename = "ForceUpdate", default)]
    pub force_update: u64,
    #[serde(rename = "Runtime", default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(rename = "Command", default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(rename = "Args", default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(rename = "Hostname", default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Dir", default, skip_serializing_if = "String::is_empty")]
    pub dir: String,
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(rename = "Groups", default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(rename = "Privileges", default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    #[serde(rename = "TTY", default, skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(rename = "OpenStdin", default, skip_serializing_if = "is_false")]
    pub open_stdin: bool,
    #[serde(rename = "ReadOnly", default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(rename = "Mounts", default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    #[serde(rename = "StopSignal", default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(rename = "StopGracePeriod", default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    #[serde(rename = "Healthcheck", default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(rename = "Hosts", default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(rename = "DNSConfig", default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfig>,
    #[serde(rename = "Secrets", default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<SecretReference>>,
    #[serde(rename = "Configs", default, skip_serializing_if = "Option::is_none")]
    pub configs: Option<Vec<ConfigReference>>,
    #[serde(rename = "Isolation", default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    #[serde(rename = "Init", default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(rename = "Sysctls", default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<Labels>,
    #[serde(rename = "CapabilityAdd", default, skip_serializing_if = "Option::is_none")]
    pub capability_add: Option<Vec<String>>,
    #[serde(rename = "CapabilityDrop", default, skip_serializing_if = "Option::is_none")]
    pub capability_drop: Option<Vec<String>>,
    #[serde(rename = "Ulimits", default, skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(rename = "OomScoreAdj", default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privileges {
    #[serde(rename = "CredentialSpec", default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
    #[serde(rename = "SELinuxContext", default, skip_serializing_if = "Option::is_none")]
    pub selinux_context: Option<SeLinuxContext>,
    #[serde(rename = "Seccomp", default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompOpts>,
    #[serde(rename = "AppArmor", default, skip_serializing_if = "Option::is_none")]
    pub app_armor: Option<AppArmorOpts>,
    #[serde(rename = "NoNewPrivileges", default, skip_serializing_if = "is_false")]
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    #[serde(rename = "Config", default, skip_serializing_if = "String::is_empty")]
    pub config: String,
    #[serde(rename = "File", default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(rename = "Registry", default, skip_serializing_if = "String::is_empty")]
    pub registry: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeLinuxContext {
    #[serde(rename = "Disable", default)]
    pub disable: bool,
    #[serde(rename = "User", default)]
    pub user: String,
    #[serde(rename = "Role", default)]
    pub role: String,
    #[serde(rename = "Type", default)]
    pub type_: String,
    #[serde(rename = "Level", default)]
    pub level: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompOpts {
    #[serde(rename = "Mode", default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(rename = "Profile", default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppArmorOpts {
    #[serde(rename = "Mode", default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    #[serde(rename = "Type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(rename = "Source", default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(rename = "Target", default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(rename = "ReadOnly", default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(rename = "Consistency", default, skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(rename = "BindOptions", default, skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(rename = "VolumeOptions", default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(rename = "TmpfsOptions", default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    #[serde(rename = "Propagation", default, skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    #[serde(rename = "NonRecursive", default, skip_serializing_if = "is_false")]
    pub non_recursive: bool,
    #[serde(rename = "CreateMountpoint", default, skip_serializing_if = "is_false")]
    pub create_mountpoint: bool,
    #[serde(rename = "ReadOnlyNonRecursive", default, skip_serializing_if = "is_false")]
    pub read_only_non_recursive: bool,
    #[serde(rename = "ReadOnlyForceRecursive", default, skip_serializing_if = "is_false")]
    pub read_only_force_recursive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    #[serde(rename = "NoCopy", default, skip_serializing_if = "is_false")]
    pub no_copy: bool,
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
    #[serde(rename = "Subpath", default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    #[serde(rename = "DriverConfig", default, skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    #[serde(rename = "SizeBytes", default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(rename = "Mode", default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(rename = "Options", default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<Vec<String>>>,
}

/// A log driver, a volume driver or a secret driver: a name and options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Driver {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Options", default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Labels>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(rename = "StartInterval", default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    #[serde(rename = "Nameservers", default, skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Vec<String>>,
    #[serde(rename = "Search", default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Vec<String>>,
    #[serde(rename = "Options", default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTarget {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "UID", default)]
    pub uid: String,
    #[serde(rename = "GID", default)]
    pub gid: String,
    #[serde(rename = "Mode", default)]
    pub mode: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretReference {
    #[serde(rename = "File", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    #[serde(rename = "SecretID", default)]
    pub secret_id: String,
    #[serde(rename = "SecretName", default)]
    pub secret_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigReference {
    #[serde(rename = "File", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    #[serde(rename = "Runtime", default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Empty>,
    #[serde(rename = "ConfigID", default)]
    pub config_id: String,
    #[serde(rename = "ConfigName", default)]
    pub config_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Soft", default)]
    pub soft: i64,
    #[serde(rename = "Hard", default)]
    pub hard: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRequirements {
    #[serde(rename = "Limits", default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limit>,
    #[serde(rename = "Reservations", default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resources>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(rename = "NanoCPUs", default, skip_serializing_if = "is_zero_i64")]
    pub nano_cpus: i64,
    #[serde(rename = "MemoryBytes", default, skip_serializing_if = "is_zero_i64")]
    pub memory_bytes: i64,
    #[serde(rename = "Pids", default, skip_serializing_if = "is_zero_i64")]
    pub pids: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(rename = "NanoCPUs", default, skip_serializing_if = "is_zero_i64")]
    pub nano_cpus: i64,
    #[serde(rename = "MemoryBytes", default, skip_serializing_if = "is_zero_i64")]
    pub memory_bytes: i64,
    #[serde(rename = "GenericResources", default, skip_serializing_if = "Option::is_none")]
    pub generic_resources: Option<Vec<GenericResource>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericResource {
    #[serde(rename = "NamedResourceSpec", default, skip_serializing_if = "Option::is_none")]
    pub named_resource_spec: Option<NamedGenericResource>,
    #[serde(rename = "DiscreteResourceSpec", default, skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteGenericResource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedGenericResource {
    #[serde(rename = "Kind", default)]
    pub kind: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscreteGenericResource {
    #[serde(rename = "Kind", default)]
    pub kind: String,
    #[serde(rename = "Value", default)]
    pub value: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(rename = "Condition", default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(rename = "Delay", default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<i64>,
    #[serde(rename = "MaxAttempts", default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(rename = "Window", default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(rename = "Constraints", default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<String>>,
    #[serde(rename = "Preferences", default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Vec<PlacementPreference>>,
    #[serde(rename = "MaxReplicas", default, skip_serializing_if = "is_zero_u64")]
    pub max_replicas: u64,
    #[serde(rename = "Platforms", default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<Platform>>,
}

pub(crate) fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementPreference {
    #[serde(rename = "Spread", default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<SpreadOver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpreadOver {
    #[serde(rename = "SpreadDescriptor", default)]
    pub spread_descriptor: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    #[serde(rename = "Architecture", default)]
    pub architecture: String,
    #[serde(rename = "OS", default)]
    pub os: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachmentConfig {
    #[serde(rename = "Target", default)]
    pub target: String,
    #[serde(rename = "Aliases", default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "DriverOpts", default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<Labels>,
}
