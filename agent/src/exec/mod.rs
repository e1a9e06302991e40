//! Executors run tasks. SwarmKit's split: an [`Executor`] describes the node and makes a
//! [`Controller`] per task; the controller walks the task through prepare, start, wait,
//! shutdown and remove.

pub mod docker;
pub mod memory_dir;
pub mod sim;
pub mod template;

use std::future::Future;
use std::pin::Pin;

use swarm_model::EngineDescription;
use swarm_model::Resources;
use swarm_model::Task;
use swarm_protocol::dispatcher::FileKind;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogOptions;
use swarm_protocol::dispatcher::OverlayPeer;
use swarm_protocol::dispatcher::ServiceRecord;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type BoxStream<T> = Pin<Box<dyn futures_util::Stream<Item = T> + Send + 'static>>;

/// The name of a task's service: the name it was created with, else the service's ID.
pub fn service_name(task: &Task) -> String {
    task.service_annotations
        .as_ref()
        .map(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| task.service_id.clone())
}

/// Swarm's name of a task (`naming.Task`), which its container also gets and templates show as
/// `{{.Task.Name}}`: `<service>.<slot>.<task id>`, or `<service>.<node id>.<task id>` for a
/// global task.
pub fn task_name(task: &Task) -> String {
    format!("{}.{}", task.display_name(&service_name(task)), task.id)
}

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

/// A file owner that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file {what} {value:?} is not a number")]
pub struct OwnerError {
    /// `UID` or `GID`.
    pub what: &'static str,
    pub value: String,
}

/// A secret or config file a task's container sees, with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// `secret` or `config`, and the object's name, for messages.
    pub kind: &'static str,
    pub name: String,
    /// Absolute path inside the container (`/run/secrets/<name>` for a bare secret target).
    pub target: String,
    /// `(uid, gid)`, or why the stored owner cannot be given (not a number): the task is
    /// then rejected rather than the file silently given to root.
    pub owner: Result<(u32, u32), OwnerError>,
    pub mode: u32,
    /// `None` when the managers did not send the data: the task cannot start.
    pub data: Option<Vec<u8>>,
}

impl TaskFile {
    /// The files of `task`: its secret and config references, with the data `lookup` has.
    pub fn of_task(task: &Task, mut lookup: impl FnMut(FileKind, &str) -> Option<Vec<u8>>) -> Vec<TaskFile> {
        let Some(cs) = task.spec.container_spec.as_ref() else {
            return Vec::new();
        };
        // Empty means root, as in dockerd; anything else must be a number (the API checks
        // this at create, but a service stored before that check may still hold a name).
        let number = |what: &'static str, s: &str| match s {
            "" => Ok(0),
            s => s.parse::<u32>().map_err(|_| OwnerError {
                what,
                value: s.to_string(),
            }),
        };
        let secrets = cs
            .secrets
            .iter()
            .flatten()
            .map(|r| (FileKind::Secret, &r.secret_name, &r.secret_id, &r.file));
        let configs = cs
            .configs
            .iter()
            .flatten()
            .map(|r| (FileKind::Config, &r.config_name, &r.config_id, &r.file));
        let mut out = Vec::new();
        for (kind, name, id, file) in secrets.chain(configs) {
            let Some(file) = file.as_ref() else { continue };
            let (word, dir) = match kind {
                FileKind::Secret => ("secret", "/run/secrets/"),
                FileKind::Config => ("config", "/"),
            };
            let target = if file.name.starts_with('/') {
                file.name.clone()
            } else {
                format!("{dir}{}", file.name)
            };
            out.push(TaskFile {
                kind: word,
                name: name.clone(),
                target,
                owner: number("UID", &file.uid).and_then(|uid| Ok((uid, number("GID", &file.gid)?))),
                mode: file.mode,
                data: lookup(kind, id),
            });
        }
        out
    }
}

/// Runs the tasks of one node.
pub trait Executor: Send + Sync + 'static {
    fn describe(&self) -> BoxFuture<'_, Result<EngineFacts, ExecError>>;
    /// A controller for `task` on node `node_id`, whose container gets `files`.
    fn controller(&self, task: &Task, node_id: &str, files: Vec<TaskFile>) -> Box<dyn Controller>;
    /// IDs of tasks that have a container on this node (any state), for adoption and cleanup.
    fn task_ids(&self, node_id: &str) -> BoxFuture<'_, Result<Vec<String>, ExecError>>;
    /// Removes whatever belongs to task `task_id` on this node.
    fn remove_task(&self, node_id: &str, task_id: &str) -> BoxFuture<'_, Result<(), ExecError>>;
    /// The overlay peers the managers last sent, for the node's overlay networks. Executors
    /// without overlays ignore them.
    fn set_overlay_peers(&self, peers: Vec<OverlayPeer>) -> BoxFuture<'_, ()> {
        let _ = peers;
        Box::pin(async {})
    }
    /// The service directory the managers last sent, for the node's resolvers, virtual IPs and
    /// routing mesh, with the node's own address on ingress while the mesh is active.
    /// Executors without overlays ignore it.
    fn set_service_directory(
        &self,
        records: Vec<ServiceRecord>,
        ingress: Option<swarm_model::NetworkAttachment>,
    ) -> BoxFuture<'_, ()> {
        let _ = (records, ingress);
        Box::pin(async {})
    }
    /// Removes the node's overlay networks, when it leaves the swarm.
    fn remove_networks(&self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async { Ok(()) })
    }
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
    /// The host-mode ports the node publishes for the task, for its status (`service ps`).
    fn published_ports(&self) -> Vec<swarm_model::PortConfig> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use swarm_model::ConfigReference;
    use swarm_model::ContainerSpec;
    use swarm_model::FileTarget;
    use swarm_model::SecretReference;

    use super::*;

    fn target(name: &str, mode: u32) -> Option<FileTarget> {
        Some(FileTarget {
            name: name.into(),
            uid: "1000".into(),
            gid: "".into(),
            mode,
        })
    }

    #[test]
    fn secrets_land_in_run_secrets_and_configs_at_the_root() {
        let mut task = Task::default();
        task.spec.container_spec = Some(ContainerSpec {
            secrets: Some(vec![
                SecretReference {
                    file: target("db", 0o400),
                    secret_id: "s1".into(),
                    secret_name: "db_pass".into(),
                },
                SecretReference {
                    file: target("/etc/key", 0o444),
                    secret_id: "s2".into(),
                    secret_name: "key".into(),
                },
            ]),
            configs: Some(vec![ConfigReference {
                file: target("app.conf", 0o444),
                runtime: None,
                config_id: "c1".into(),
                config_name: "conf".into(),
            }]),
            ..ContainerSpec::default()
        });
        let files = TaskFile::of_task(&task, |kind, id| {
            (kind == FileKind::Secret && id == "s1").then(|| b"x".to_vec())
        });
        let summary: Vec<_> = files
            .iter()
            .map(|f| (f.kind, f.target.as_str(), f.owner.clone(), f.mode, f.data.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                ("secret", "/run/secrets/db", Ok((1000, 0)), 0o400, true),
                ("secret", "/etc/key", Ok((1000, 0)), 0o444, false),
                ("config", "/app.conf", Ok((1000, 0)), 0o444, false),
            ]
        );
    }

    #[test]
    fn an_owner_that_is_not_a_number_is_refused_not_read_as_root() {
        let mut task = Task::default();
        let file = |uid: &str, gid: &str| FileTarget {
            name: "db".into(),
            uid: uid.into(),
            gid: gid.into(),
            mode: 0o400,
        };
        let secret = |f: FileTarget| SecretReference {
            file: Some(f),
            secret_id: "s1".into(),
            secret_name: "db_pass".into(),
        };
        task.spec.container_spec = Some(ContainerSpec {
            secrets: Some(vec![
                secret(file("nobody", "")),
                secret(file("", "staff")),
                secret(file("", "")),
            ]),
            ..ContainerSpec::default()
        });
        let owners: Vec<_> = TaskFile::of_task(&task, |_, _| None)
            .into_iter()
            .map(|f| f.owner)
            .collect();
        assert_eq!(
            owners,
            [
                Err(OwnerError {
                    what: "UID",
                    value: "nobody".to_string()
                }),
                Err(OwnerError {
                    what: "GID",
                    value: "staff".to_string()
                }),
                Ok((0, 0)),
            ]
        );
    }
}
