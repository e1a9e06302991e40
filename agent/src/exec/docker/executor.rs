//! The Docker executor: describes the engine, makes a controller per task, finds the containers
//! of this node's tasks by their labels, reads their logs, and removes them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use swarm_model::EngineDescription;
use swarm_model::Resources;
use swarm_model::Task;
use swarm_model::Timestamp;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogOptions;
use swarm_protocol::dispatcher::OverlayPeer;
use swarm_protocol::dispatcher::ServiceRecord;

use super::ENGINE_TIMEOUT;
use super::container::LABEL_NODE;
use super::container::LABEL_TASK_ID;
use super::controller::DockerController;
use super::engine_message;
use super::overlays::NodeOverlays;
use super::remove;
use super::remove_files;
use super::timed;
use crate::exec::BoxFuture;
use crate::exec::BoxStream;
use crate::exec::Controller;
use crate::exec::EngineFacts;
use crate::exec::ExecError;
use crate::exec::Executor;
use crate::exec::TaskFile;
use crate::exec::task_name;
use crate::host_ports::HostPorts;

#[derive(Clone)]
pub struct DockerExecutor {
    docker: Docker,
    /// Where each task's secret and config files live (`<root>/<task id>/`, on a tmpfs when
    /// the node may mount one), bind-mounted read-only into its container and deleted with it.
    files_root: PathBuf,
    /// This node's hostname, for `{{.Node.Hostname}}` in service templates.
    hostname: String,
    /// The node's overlay networks; None on a node that advertises a loopback address, whose
    /// containers keep the engine's default network.
    overlays: Option<Arc<NodeOverlays>>,
    /// The host-mode ports of the tasks here, which the node publishes itself.
    host_ports: Arc<HostPorts>,
}

impl DockerExecutor {
    /// Connects to the local engine (`DOCKER_HOST` or `/var/run/docker.sock`) and negotiates
    /// the API version. Task secret and config files go under `files_root` (which the daemon
    /// puts on a tmpfs, see [`crate::exec::memory_dir`]). `hostname` is this node's, as the
    /// managers know it, for service templates. `overlay_local` is the node's underlay address
    /// for overlay networks, if it builds them; `dns_upstream` is where its containers'
    /// resolvers forward names outside the cluster.
    pub async fn connect(
        files_root: PathBuf,
        hostname: String,
        overlay_local: Option<std::net::Ipv4Addr>,
        dns_upstream: Vec<std::net::SocketAddr>,
    ) -> Result<Self, ExecError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| ExecError::Engine(format!("cannot reach the Docker engine: {e}")))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| ExecError::Engine("the Docker engine did not answer within 10 s".to_string()))?
            .map_err(|e| ExecError::Engine(format!("cannot negotiate the Docker API version: {e}")))?;
        Ok(Self {
            docker,
            files_root,
            hostname,
            overlays: overlay_local.map(|local| NodeOverlays::new(local, dns_upstream)),
            host_ports: HostPorts::new(std::net::Ipv4Addr::UNSPECIFIED),
        })
    }

    async fn containers_of(&self, node_id: &str, task_id: Option<&str>) -> Result<Vec<(String, String)>, ExecError> {
        let mut labels = vec![format!("{LABEL_NODE}={node_id}")];
        if let Some(t) = task_id {
            labels.push(format!("{LABEL_TASK_ID}={t}"));
        }
        let mut filters = HashMap::new();
        filters.insert("label", labels);
        let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let list = timed(
            "listing containers",
            ENGINE_TIMEOUT,
            self.docker.list_containers(Some(opts)),
        )
        .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let task = c.labels.as_ref()?.get(LABEL_TASK_ID)?.clone();
                Some((c.id?, task))
            })
            .collect())
    }
}

impl Executor for DockerExecutor {
    fn describe(&self) -> BoxFuture<'_, Result<EngineFacts, ExecError>> {
        Box::pin(async move {
            let version = timed("engine version", ENGINE_TIMEOUT, self.docker.version()).await?;
            let info = timed("engine info", ENGINE_TIMEOUT, self.docker.info()).await?;
            let labels: HashMap<String, String> = info
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (l, String::new()),
                })
                .collect();
            Ok(EngineFacts {
                engine: EngineDescription {
                    engine_version: version.version.unwrap_or_default(),
                    labels: Some(labels.into_iter().collect()),
                    plugins: None,
                },
                resources: Resources {
                    nano_cpus: info.ncpu.unwrap_or(0) * 1_000_000_000,
                    memory_bytes: info.mem_total.unwrap_or(0),
                    generic_resources: None,
                },
            })
        })
    }

    fn controller(&self, task: &Task, node_id: &str, files: Vec<TaskFile>) -> Box<dyn Controller> {
        Box::new(DockerController {
            files_dir: self.files_root.join(&task.id),
            files,
            docker: self.docker.clone(),
            task: task.clone(),
            node_id: node_id.to_string(),
            hostname: self.hostname.clone(),
            overlays: self.overlays.clone(),
            host_ports: self.host_ports.clone(),
            published: Vec::new(),
            name: task_name(task),
            container_id: String::new(),
            pid: 0,
            has_health: false,
        })
    }

    fn task_ids(&self, node_id: &str) -> BoxFuture<'_, Result<Vec<String>, ExecError>> {
        let node_id = node_id.to_string();
        Box::pin(async move {
            Ok(self
                .containers_of(&node_id, None)
                .await?
                .into_iter()
                .map(|(_, t)| t)
                .collect())
        })
    }

    fn logs(&self, node_id: &str, task_id: &str, options: &LogOptions) -> BoxStream<Result<LogLine, ExecError>> {
        let docker = self.docker.clone();
        let (node_id, task_id, options) = (node_id.to_string(), task_id.to_string(), options.clone());
        let find = self.clone();
        let start = async move {
            let found = find.containers_of(&node_id, Some(&task_id)).await;
            (found, task_id)
        };
        Box::pin(
            futures_util::stream::once(start)
                .map(move |(found, task_id)| -> BoxStream<Result<LogLine, ExecError>> {
                    let container = match found {
                        Ok(list) => match list.into_iter().next() {
                            Some((id, _)) => id,
                            None => return Box::pin(futures_util::stream::empty()),
                        },
                        Err(e) => return Box::pin(futures_util::stream::once(async move { Err(e) })),
                    };
                    let mut b = LogsOptionsBuilder::new()
                        .follow(options.follow)
                        .stdout(options.stdout)
                        .stderr(options.stderr)
                        .timestamps(true);
                    if let Some(since) = options.since_secs {
                        b = b.since(since.clamp(0, i64::from(i32::MAX)) as i32);
                    }
                    b = b.tail(&options.tail.map(|n| n.to_string()).unwrap_or_else(|| "all".to_string()));
                    let task = task_id.clone();
                    Box::pin(docker.logs(&container, Some(b.build())).map(move |item| match item {
                        Ok(out) => Ok(log_line(&task, out)),
                        Err(e) => Err(ExecError::Engine(format!("reading logs: {}", engine_message(&e)))),
                    }))
                })
                .flatten(),
        )
    }

    fn remove_task(&self, node_id: &str, task_id: &str) -> BoxFuture<'_, Result<(), ExecError>> {
        let (node_id, task_id) = (node_id.to_string(), task_id.to_string());
        Box::pin(async move {
            self.host_ports.unpublish(&task_id);
            for (id, _) in self.containers_of(&node_id, Some(&task_id)).await? {
                remove(&self.docker, &id).await?;
            }
            if let Some(o) = &self.overlays
                && let Err(e) = o.leave(&task_id).await
            {
                tracing::warn!(%task_id, error = %e, "cannot take the task off its overlay networks");
            }
            remove_files(&self.files_root.join(&task_id))
        })
    }

    fn set_overlay_peers(&self, peers: Vec<OverlayPeer>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(o) = &self.overlays
                && let Err(e) = o.set_peers(peers).await
            {
                tracing::warn!(error = %e, "cannot apply the overlay peers");
            }
        })
    }

    fn set_service_directory(
        &self,
        records: Vec<ServiceRecord>,
        ingress: Option<swarm_model::NetworkAttachment>,
    ) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(o) = &self.overlays {
                o.set_directory(records, ingress).await;
            }
        })
    }

    fn remove_networks(&self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            match &self.overlays {
                Some(o) => o
                    .remove_all()
                    .await
                    .map_err(|e| ExecError::Failed(format!("removing overlay networks: {e}"))),
                None => Ok(()),
            }
        })
    }
}

/// One line of `docker logs --timestamps`: the engine's time, then the output.
fn log_line(task_id: &str, out: LogOutput) -> LogLine {
    let stderr = matches!(out, LogOutput::StdErr { .. });
    let bytes = out.into_bytes();
    let (timestamp, data) = match bytes.iter().position(|b| *b == b' ') {
        Some(i) => match std::str::from_utf8(&bytes[..i])
            .ok()
            .and_then(|t| Timestamp::parse(t).ok())
        {
            Some(ts) => (ts, bytes[i + 1..].to_vec()),
            None => (Timestamp::now(), bytes.to_vec()),
        },
        None => (Timestamp::now(), bytes.to_vec()),
    };
    LogLine {
        task_id: task_id.to_string(),
        stderr,
        timestamp,
        data,
    }
}
