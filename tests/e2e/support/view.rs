//! Typed reads of the Engine API's JSON, so a test says what it reads (a task's state, its
//! slot, a node's state) instead of how the answer nests it. A field that is missing or not of
//! its type fails the test with the object shown, rather than reading as empty.

use serde::de::DeserializeOwned;
use serde_json::Value;
use swarm_model::NodeState;
use swarm_model::TaskState;

fn typed<T: DeserializeOwned>(v: &Value, path: &[&str]) -> T {
    let field = path.iter().fold(v, |v, k| &v[*k]);
    serde_json::from_value(field.clone())
        .unwrap_or_else(|e| panic!("{} of {v} is not what a test expects: {e}", path.join(".")))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or_default()
}

/// A task (`GET /tasks`, `GET /tasks/{id}`) as tests read it.
pub trait TaskView {
    fn id(&self) -> &str;
    /// `Status.State`.
    fn state(&self) -> TaskState;
    /// `DesiredState`.
    fn desired(&self) -> TaskState;
    /// `Status.Err`, empty when there is none.
    fn err(&self) -> &str;
    /// `Slot`; 0 (not shown) for global tasks.
    fn slot(&self) -> u64;
    /// `NodeID`, empty while unassigned.
    fn node_id(&self) -> &str;
    /// `Spec.ContainerSpec.Image`.
    fn image(&self) -> &str;
    /// `Status.ContainerStatus.ContainerID`, empty before there is a container.
    fn container_id(&self) -> &str;
    /// Running and meant to run.
    fn is_live(&self) -> bool {
        self.state() == TaskState::Running && self.desired() == TaskState::Running
    }
}

impl TaskView for Value {
    fn id(&self) -> &str {
        text(self, &["ID"])
    }

    fn state(&self) -> TaskState {
        typed(self, &["Status", "State"])
    }

    fn desired(&self) -> TaskState {
        typed(self, &["DesiredState"])
    }

    fn err(&self) -> &str {
        text(self, &["Status", "Err"])
    }

    fn slot(&self) -> u64 {
        match &self["Slot"] {
            Value::Null => 0,
            _ => typed(self, &["Slot"]),
        }
    }

    fn node_id(&self) -> &str {
        text(self, &["NodeID"])
    }

    fn image(&self) -> &str {
        text(self, &["Spec", "ContainerSpec", "Image"])
    }

    fn container_id(&self) -> &str {
        text(self, &["Status", "ContainerStatus", "ContainerID"])
    }
}

/// A node (`GET /nodes`) as tests read it.
pub trait NodeView {
    /// `Status.State`.
    fn node_state(&self) -> NodeState;
    /// `Description.Hostname`.
    fn hostname(&self) -> &str;
}

impl NodeView for Value {
    fn node_state(&self) -> NodeState {
        typed(self, &["Status", "State"])
    }

    fn hostname(&self) -> &str {
        text(self, &["Description", "Hostname"])
    }
}
