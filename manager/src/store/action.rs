//! What goes through raft: transactions of store actions, checked and applied atomically.

use serde::Deserialize;
use serde::Serialize;
use swarm_model::Kind;
use swarm_model::NodeDescription;
use swarm_model::NodeStatus;
use swarm_model::Object;
use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::UpdateStatus;
use swarm_model::Version;

/// One raft entry: independent transactions, each applied all-or-nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub txs: Vec<Transaction>,
}

/// Actions that succeed or fail together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub actions: Vec<StoreAction>,
}

impl Transaction {
    pub fn one(action: StoreAction) -> Self {
        Self { actions: vec![action] }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StoreAction {
    /// Insert a new object. Fails if the ID or (for named kinds) the name is taken.
    Create(Object),
    /// Replace an object. The object's `Version` must be the stored one: the version the writer
    /// read. Otherwise the update is "out of sequence" and refused.
    Update(Object),
    /// Delete an object, optionally only at a given version.
    Remove {
        kind: Kind,
        id: String,
        version: Option<Version>,
    },
    /// Record a status a node reported for a task. Ignored if it would move the task backwards
    /// (task states only move forward), so late or repeated reports are harmless.
    TaskStatus { id: String, status: TaskStatus },
    /// Raise a task's desired state (READY to RUNNING, RUNNING to SHUTDOWN or REMOVE). Ignored
    /// if it would lower it.
    TaskDesired { id: String, desired: TaskState },
    /// Assign an unassigned task to a node (or confirm the node a global task was created for).
    /// Ignored if the task is already assigned, or was created for another node.
    TaskAssign {
        id: String,
        node_id: String,
        status: TaskStatus,
    },
    /// Set a service's update status, as part of the update of `spec_version`: ignored once
    /// the service's spec has changed again (a newer update superseded it).
    ServiceUpdateStatus {
        id: String,
        spec_version: Option<Version>,
        status: Option<UpdateStatus>,
    },
    /// Record what a node says about itself (its status and, optionally, its description)
    /// without touching its spec.
    NodeStatus {
        id: String,
        status: NodeStatus,
        description: Option<NodeDescription>,
    },
    /// Record the key of the certificate just issued to a node (`Node.certificate_key`).
    NodeCertificate { id: String, key: String },
}

/// Why a transaction was refused. Deterministic: every manager refuses the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: Kind, id: String },
    #[error("name conflicts with an existing object: {kind} {name} already exists")]
    NameConflict { kind: Kind, name: String },
    #[error("{kind} with ID {id} already exists")]
    IdConflict { kind: Kind, id: String },
    #[error("update out of sequence")]
    OutOfSequence { kind: Kind, id: String },
    #[error("invalid proposal: {0}")]
    Invalid(String),
    /// A well-formed change that the cluster's state does not allow (e.g. a port in use).
    #[error("{0}")]
    Refused(String),
}

/// The per-transaction outcome returned by the state machine.
pub type TxResults = Vec<Result<(), StoreError>>;
