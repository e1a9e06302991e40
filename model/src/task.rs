//! Tasks: one run of a service's task template in one slot (or on one node, for global ones).

use serde::Deserialize;
use serde::Serialize;

use super::Labels;
use super::PortConfig;
use super::TaskSpec;
use super::Timestamp;
use super::Version;

/// Task states in Swarm's order; a task only ever moves forward through them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    #[default]
    New,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    /// A task in a terminal state never runs again.
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }

    /// As a desired state: the managers want the task stopped. COMPLETE is what job tasks are
    /// desired to reach, so it still means "run".
    pub fn wants_stop(self) -> bool {
        self >= TaskState::Shutdown
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub spec: TaskSpec,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    #[serde(default, skip_serializing_if = "super::service::is_zero_u64")]
    pub slot: u64,
    #[serde(rename = "NodeID", default, skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    #[serde(default)]
    pub status: TaskStatus,
    #[serde(default)]
    pub desired_state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks_attachments: Option<Vec<super::NetworkAttachment>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_iteration: Option<Version>,
    /// The service spec version this task was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<Version>,
    /// The service's name and labels when the task was created, so a worker can name and
    /// label the container without looking the service up (as SwarmKit's task carries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_annotations: Option<Annotations>,
    /// The task this one replaced after a restart. Restart attempts are counted from these, so
    /// the count lives in the store and survives a leader change.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restart_of: String,
    /// The restart policy declined to replace this task (condition, or attempts used up): its
    /// slot, or its node for a global service, stays as it is until the task template changes.
    #[serde(default, skip_serializing_if = "super::service::is_false")]
    pub restart_declined: bool,
    /// The task this one replaces in a rolling update (not a restart: it does not count as an
    /// attempt).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub update_of: String,
    /// The ports its service published in host mode when the task was created, for the node
    /// that runs it to publish (SwarmKit's task carries its service's endpoint the same way).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<super::PortConfig>,
    /// When the task first reported RUNNING, recorded by the store: a rolling update counts a
    /// failure within its monitor period from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Timestamp>,
}

/// A name and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Annotations {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
}

impl Task {
    /// `service.slot`, or `service.nodeid` for a global task, as `service ps` names tasks.
    pub fn display_name(&self, service_name: &str) -> String {
        if self.slot != 0 {
            format!("{service_name}.{}", self.slot)
        } else {
            format!("{service_name}.{}", self.node_id)
        }
    }

    /// Whether its service asked for PROXY v2 headers when the task was created: the task's
    /// server expects them (or not) for its whole life.
    pub fn wants_proxy_protocol(&self) -> bool {
        self.service_annotations
            .as_ref()
            .and_then(|a| a.labels.get(super::PROXY_PROTOCOL_LABEL))
            .is_some_and(|v| v == "v2")
    }

    /// Whether the task occupies its slot: managers still want it to run (or to be ready, or,
    /// for a job, to run to completion).
    pub fn is_runnable(&self) -> bool {
        !self.desired_state.wants_stop()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    #[serde(default)]
    pub timestamp: Timestamp,
    #[serde(default)]
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub err: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    #[serde(default)]
    pub port_status: PortStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerStatus {
    #[serde(rename = "ContainerID", default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    #[serde(rename = "PID", default, skip_serializing_if = "super::service::is_zero_i64")]
    pub pid: i64,
    #[serde(default, skip_serializing_if = "super::service::is_zero_i64")]
    pub exit_code: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortConfig>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_like_swarm() {
        assert!(TaskState::New < TaskState::Pending);
        assert!(TaskState::Running < TaskState::Complete);
        assert!(TaskState::Complete.is_terminal());
        assert!(!TaskState::Running.is_terminal());
        assert_eq!(serde_json::to_string(&TaskState::Running).unwrap(), "\"running\"");
    }
}
