//! Executors run tasks. SwarmKit's split: an [`Executor`] describes the node and makes a
//! [`Controller`] per task; the controller walks the task through prepare, start, wait,
//! shutdown and remove.

pub mod docker;
pub mod sim;

use std::future::Future;
use std::pin::Pin;

use crate::manager::dispatcher::protocol::LogLine;
use crate::manager::dispatcher::protocol::LogOptions;
use crate::model::EngineDescription;
use crate::model::Resources;
use crate::model::Task;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type BoxStream<T> = Pin<Box<dyn futures_util::Stream<Item = T> + Send + 'static>>;

/// Why an executor operation failed. The message is what the task's `Err` shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The task cannot run here at all (e.g. its image cannot be pulled): REJECTED.
    #[error("{0}")]
    Rejected(String),
    /// Running failed: FAILED.
    #[error("{0}")]
    Failed(String),
    /// The container reported unhealthy: FAILED.
    #[error("task: container is unhealthy")]
    Unhealthy,
    /// The engine could not be reached or answered oddly.
    #[error("{0}")]
    Engine(String),
}

/// What the node's engine says about itself.
#[derive(Debug, Clone, Default)]
pub struct EngineFacts {
    pub engine: EngineDescription,
    pub resources: Resources,
}

/// How a finished task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
}

/// What an existing container of a task is doing, for adoption after a worker restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Running { container_id: String, pid: i64 },
    Exited { container_id: String, code: i64 },
    Created { container_id: String },
}

/// Runs the tasks of one node.
pub trait Executor: Send + Sync + 'static {
    fn describe(&self) -> BoxFuture<'_, Result<EngineFacts, ExecError>>;
    /// A controller for `task` on node `node_id`.
    fn controller(&self, task: &Task, node_id: &str) -> Box<dyn Controller>;
    /// IDs of tasks that have a container on this node (any state), for adoption and cleanup.
    fn task_ids(&self, node_id: &str) -> BoxFuture<'_, Result<Vec<String>, ExecError>>;
    /// Removes whatever belongs to task `task_id` on this node.
    fn remove_task(&self, node_id: &str, task_id: &str) -> BoxFuture<'_, Result<(), ExecError>>;
    /// The output of task `task_id`'s container, as `options` ask. Executors without output
    /// have none.
    fn logs(&self, node_id: &str, task_id: &str, options: &LogOptions) -> BoxStream<Result<LogLine, ExecError>> {
        let _ = (node_id, task_id, options);
        Box::pin(futures_util::stream::empty())
    }
}

/// One task's container.
pub trait Controller: Send + Sync {
    /// The task's container if one exists already.
    fn existing(&mut self) -> BoxFuture<'_, Result<Option<Existing>, ExecError>>;
    /// Pulls the image if needed and creates the container.
    fn prepare(&mut self) -> BoxFuture<'_, Result<(), ExecError>>;
    fn start(&mut self) -> BoxFuture<'_, Result<(), ExecError>>;
    /// Returns once the task counts as running: at once without a healthcheck, otherwise when
    /// the container is healthy. [`ExecError::Unhealthy`] if it turns unhealthy first.
    fn wait_ready(&mut self) -> BoxFuture<'_, Result<(), ExecError>>;
    /// Waits for the container to exit; [`ExecError::Unhealthy`] if it turns unhealthy.
    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, ExecError>>;
    /// Stops the container (stop signal, then kill after the grace period).
    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExecError>>;
    /// Removes the container.
    fn remove(&mut self) -> BoxFuture<'_, Result<(), ExecError>>;
    /// The container's ID and process, for the task status.
    fn container(&self) -> (String, i64);
}
