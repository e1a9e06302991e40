//! The Docker controller of one task: pull, create, start, health-gated readiness, wait, stop
//! and remove its container, and the task's secret and config files beside it.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerStateStatusEnum;
use bollard::models::HealthStatusEnum;
use bollard::models::Mount;
use bollard::models::MountType;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::query_parameters::StopContainerOptionsBuilder;
use bollard::query_parameters::WaitContainerOptionsBuilder;
use futures_util::StreamExt;
use swarm_model::PortConfig;
use swarm_model::Task;
use swarm_model::defaults::DEFAULT_STOP_GRACE_PERIOD;

use super::ENGINE_TIMEOUT;
use super::PULL_TIMEOUT;
use super::container::add_mounts;
use super::container::create_body;
use super::container::grace_secs;
use super::container::with_default_tag;
use super::engine_message;
use super::is_not_found;
use super::overlays::NodeOverlays;
use super::remove;
use super::remove_files;
use crate::exec::BoxFuture;
use crate::exec::Controller;
use crate::exec::ExecError;
use crate::exec::Existing;
use crate::exec::Exit;
use crate::exec::TaskFile;
use crate::exec::template::TemplateContext;
use crate::host_ports::HostPorts;

/// Writes a task's secret and config files (each with its owner and mode) into `dir`, and
/// returns the read-only bind mounts that put them at their targets.
fn write_files(dir: &Path, files: &[TaskFile]) -> Result<Vec<Mount>, ExecError> {
    use std::os::unix::fs::DirBuilderExt;
    use std::os::unix::fs::PermissionsExt;
    let failed = |what: &str, e: std::io::Error| ExecError::Failed(format!("{what} in {}: {e}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed("creating the task's file dir", e))?;
    let mut mounts = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(data) = &f.data else {
            return Err(ExecError::Rejected(format!(
                "{} {} was not sent to this node",
                f.kind, f.name
            )));
        };
        let path = dir.join(format!("{i}-{}", f.kind));
        let (uid, gid) = f
            .owner
            .clone()
            .map_err(|why| ExecError::Rejected(format!("{} {}: {why}", f.kind, f.name)))?;
        std::fs::write(&path, data).map_err(|e| failed("writing a file", e))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|e| {
            ExecError::Failed(format!(
                "{} {}: cannot give its file to uid {uid}, gid {gid} (changing file owners needs swarmd to run as root): {e}",
                f.kind, f.name
            ))
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode & 0o7777))
            .map_err(|e| failed("setting a file's mode", e))?;
        mounts.push(Mount {
            target: Some(f.target.clone()),
            source: Some(path.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        });
    }
    Ok(mounts)
}

pub(super) struct DockerController {
    pub(super) files_dir: PathBuf,
    pub(super) files: Vec<TaskFile>,
    pub(super) docker: Docker,
    pub(super) task: Task,
    pub(super) node_id: String,
    /// This node's hostname, for `{{.Node.Hostname}}` in templates.
    pub(super) hostname: String,
    /// The node's overlays, when it builds them: the container is joined to the task's
    /// networks once it runs (and starts with no Docker network if they are all internal).
    pub(super) overlays: Option<Arc<NodeOverlays>>,
    /// The node's host-mode ports: the task's are published once its container runs.
    pub(super) host_ports: Arc<HostPorts>,
    /// The task's host-mode ports as published, for its status.
    pub(super) published: Vec<PortConfig>,
    pub(super) name: String,
    pub(super) container_id: String,
    pub(super) pid: i64,
    pub(super) has_health: bool,
}

impl DockerController {
    async fn inspect(&mut self) -> Result<Option<bollard::models::ContainerInspectResponse>, ExecError> {
        match tokio::time::timeout(ENGINE_TIMEOUT, self.docker.inspect_container(&self.name, None)).await {
            Ok(Ok(c)) => {
                if let Some(id) = &c.id {
                    self.container_id = id.clone();
                }
                if let Some(state) = &c.state {
                    self.pid = state.pid.unwrap_or(0);
                    self.has_health = state.health.is_some();
                }
                Ok(Some(c))
            }
            Ok(Err(e)) if is_not_found(&e) => Ok(None),
            Ok(Err(e)) => Err(ExecError::Engine(format!(
                "inspecting container: {}",
                engine_message(&e)
            ))),
            Err(_) => Err(ExecError::Engine(
                "inspecting container: the engine did not answer".to_string(),
            )),
        }
    }

    async fn pull_if_missing(&self, image: &str) -> Result<(), ExecError> {
        match tokio::time::timeout(ENGINE_TIMEOUT, self.docker.inspect_image(image)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if is_not_found(&e) => {}
            Ok(Err(e)) => return Err(ExecError::Engine(format!("inspecting image: {}", engine_message(&e)))),
            Err(_) => {
                return Err(ExecError::Engine(
                    "inspecting image: the engine did not answer".to_string(),
                ));
            }
        }
        tracing::info!(%image, "pulling image");
        // Without a tag the engine would pull every tag of the repository.
        let reference = with_default_tag(image);
        let opts = CreateImageOptionsBuilder::new().from_image(&reference).build();
        let pull = async {
            let mut stream = self.docker.create_image(Some(opts), None, None);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    return Err(ExecError::Rejected(engine_message(&e)));
                }
            }
            Ok(())
        };
        tokio::time::timeout(PULL_TIMEOUT, pull)
            .await
            .map_err(|_| ExecError::Rejected(format!("pulling {image} did not finish within {PULL_TIMEOUT:?}")))?
    }

    /// Gives up what the node holds for the task's network once its container has stopped:
    /// its host-mode ports, free for the task that replaces it, and its overlay sandbox. The
    /// resolver's sockets would otherwise keep the dead container's namespace alive, still
    /// holding the task's overlay address, which the managers hand to a new task as soon as
    /// this one ends.
    async fn release_network(&self) {
        self.host_ports.unpublish(&self.task.id);
        if let Some(o) = &self.overlays
            && let Err(e) = o.leave(&self.task.id).await
        {
            tracing::warn!(task_id = %self.task.id, error = %e, "cannot take the task off its overlay networks");
        }
    }

    /// The container's health, if it has a healthcheck.
    async fn health(&mut self) -> Result<Option<HealthStatusEnum>, ExecError> {
        let c = self.inspect().await?;
        Ok(c.and_then(|c| c.state).and_then(|s| {
            if !s.running.unwrap_or(false) {
                return None;
            }
            s.health.and_then(|h| h.status)
        }))
    }
}

/// How long a task on overlays keeps serving after it left the rotations, before its stop
/// signal: the time for the other nodes to hear of it and update their rules.
const ROTATION_DRAIN: Duration = Duration::from_secs(1);

impl Controller for DockerController {
    fn existing(&mut self) -> BoxFuture<'_, Result<Option<Existing>, ExecError>> {
        Box::pin(async move {
            let Some(c) = self.inspect().await? else {
                return Ok(None);
            };
            let id = self.container_id.clone();
            let state = c.state.unwrap_or_default();
            Ok(Some(match state.status {
                Some(ContainerStateStatusEnum::RUNNING) | Some(ContainerStateStatusEnum::RESTARTING) => {
                    if let Some(o) = &self.overlays
                        && NodeOverlays::wants(&self.task)
                        && let Err(e) = o.adopt(&self.task, state.pid.unwrap_or(0)).await
                    {
                        tracing::warn!(task_id = %self.task.id, error = %e, "cannot rebuild the task's overlay networks");
                    }
                    // The listeners went with the previous swarmd process.
                    match self.host_ports.publish(&self.task, state.pid.unwrap_or(0)).await {
                        Ok(published) => self.published = published,
                        Err(e) => {
                            tracing::warn!(task_id = %self.task.id, error = %e, "cannot publish the task's host-mode ports again")
                        }
                    }
                    Existing::Running {
                        container_id: id,
                        pid: state.pid.unwrap_or(0),
                    }
                }
                Some(ContainerStateStatusEnum::CREATED) => Existing::Created { container_id: id },
                _ => Existing::Exited {
                    container_id: id,
                    code: state.exit_code.unwrap_or(0),
                },
            }))
        })
    }

    fn prepare(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            let image = self
                .task
                .spec
                .container_spec
                .as_ref()
                .map(|c| c.image.clone())
                .unwrap_or_default();
            // Swarm's templates (`{{.Task.Slot}}`, `{{.Node.Hostname}}`, ...) are expanded
            // here, on the node; a bad one rejects the task instead of reaching the container.
            // Like anything else the engine could not be given, that is found before a pull.
            let mut task = self.task.clone();
            if let Some(spec) = task.spec.container_spec.as_ref() {
                let context = TemplateContext::for_task(&task, &self.node_id, &self.hostname);
                let expanded = context
                    .expand_container_spec(spec)
                    .map_err(|e| ExecError::Rejected(format!("expanding the container spec: {e}")))?;
                task.spec.container_spec = Some(expanded);
            }
            let mut body =
                create_body(&task, &self.node_id, &self.name).map_err(|e| ExecError::Rejected(e.to_string()))?;
            if self.overlays.is_some() && NodeOverlays::wants(&task) {
                let host = body.host_config.get_or_insert_with(Default::default);
                if NodeOverlays::isolated(&task) {
                    host.network_mode = Some("none".to_string());
                }
                // The node's resolver for this container, unless the service names its own.
                if host.dns.as_ref().is_none_or(|d| d.is_empty()) {
                    host.dns = Some(vec![crate::dns::RESOLVER_ADDR.to_string()]);
                }
            }
            self.pull_if_missing(&image).await?;
            if !self.files.is_empty() {
                add_mounts(&mut body, write_files(&self.files_dir, &self.files)?);
            }
            let opts = CreateContainerOptionsBuilder::new().name(&self.name).build();
            let created = tokio::time::timeout(
                ENGINE_TIMEOUT,
                self.docker.create_container(Some(opts.clone()), body.clone()),
            )
            .await;
            let created = match created {
                Ok(Err(DockerError::DockerResponseServerError { status_code: 409, .. })) => {
                    // A container of this task was left half-created; start over.
                    remove(&self.docker, &self.name).await?;
                    tokio::time::timeout(ENGINE_TIMEOUT, self.docker.create_container(Some(opts), body)).await
                }
                other => other,
            };
            match created {
                Ok(Ok(resp)) => {
                    self.container_id = resp.id;
                    Ok(())
                }
                Ok(Err(e)) => Err(ExecError::Rejected(engine_message(&e))),
                Err(_) => Err(ExecError::Engine(
                    "creating container: the engine did not answer".to_string(),
                )),
            }
        })
    }

    fn start(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            match tokio::time::timeout(ENGINE_TIMEOUT, self.docker.start_container(&self.name, None)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(ExecError::Failed(engine_message(&e))),
                Err(_) => {
                    return Err(ExecError::Failed(
                        "starting container: the engine did not answer".to_string(),
                    ));
                }
            }
            self.inspect().await?;
            if let Some(o) = &self.overlays
                && NodeOverlays::wants(&self.task)
            {
                o.join(&self.task, self.pid)
                    .await
                    .map_err(|e| ExecError::Failed(format!("joining the task's overlay networks: {e}")))?;
            }
            self.published = self
                .host_ports
                .publish(&self.task, self.pid)
                .await
                .map_err(|e| ExecError::Failed(e.to_string()))?;
            Ok(())
        })
    }

    fn wait_ready(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            if !self.has_health {
                return Ok(());
            }
            loop {
                match self.health().await? {
                    Some(HealthStatusEnum::HEALTHY) => return Ok(()),
                    Some(HealthStatusEnum::UNHEALTHY) => return Err(ExecError::Unhealthy),
                    Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) => return Ok(()),
                    // Not running any more: the exit is reported by wait().
                    None => return Ok(()),
                    Some(HealthStatusEnum::STARTING) => {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, ExecError>> {
        Box::pin(async move {
            let docker = self.docker.clone();
            let name = self.name.clone();
            let exited = async move {
                let opts = WaitContainerOptionsBuilder::new().condition("not-running").build();
                let mut stream = docker.wait_container(&name, Some(opts));
                match stream.next().await {
                    Some(Ok(r)) => Ok(Exit { code: r.status_code }),
                    // bollard reports a non-zero exit as an error carrying the code.
                    Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(Exit { code }),
                    Some(Err(e)) if is_not_found(&e) => {
                        Err(ExecError::Failed("task: container was removed".to_string()))
                    }
                    Some(Err(e)) => Err(ExecError::Failed(format!(
                        "waiting for container: {}",
                        engine_message(&e)
                    ))),
                    None => Err(ExecError::Failed(
                        "waiting for container: the engine closed the stream".to_string(),
                    )),
                }
            };
            let has_health = self.has_health;
            let unhealthy = async {
                if !has_health {
                    return std::future::pending().await;
                }
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(Some(HealthStatusEnum::UNHEALTHY)) = self.health().await {
                        return ExecError::Unhealthy;
                    }
                }
            };
            let exit = tokio::select! {
                r = exited => r,
                e = unhealthy => return Err(e),
            };
            self.release_network().await;
            exit
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            self.host_ports.unpublish(&self.task.id);
            // The managers took the task out of every VIP, name and mesh rotation when they
            // asked for the stop; give the other nodes that long to apply it before the
            // container stops taking connections (moby/moby#26672).
            if self.overlays.is_some() && NodeOverlays::wants(&self.task) {
                tokio::time::sleep(ROTATION_DRAIN).await;
            }
            let grace_ns = self
                .task
                .spec
                .container_spec
                .as_ref()
                .and_then(|c| c.stop_grace_period)
                .unwrap_or(DEFAULT_STOP_GRACE_PERIOD);
            let secs = grace_secs(grace_ns) as i32;
            let opts = StopContainerOptionsBuilder::new().t(secs).build();
            let deadline = Duration::from_secs(secs as u64) + ENGINE_TIMEOUT;
            match tokio::time::timeout(deadline, self.docker.stop_container(&self.name, Some(opts))).await {
                Ok(Ok(())) | Ok(Err(DockerError::DockerResponseServerError { status_code: 304, .. })) => {
                    self.release_network().await;
                    Ok(())
                }
                Ok(Err(e)) if is_not_found(&e) => {
                    self.release_network().await;
                    Ok(())
                }
                Ok(Err(e)) => Err(ExecError::Engine(format!("stopping container: {}", engine_message(&e)))),
                Err(_) => Err(ExecError::Engine(
                    "stopping container: the engine did not answer".to_string(),
                )),
            }
        })
    }

    fn remove(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            self.host_ports.unpublish(&self.task.id);
            remove(&self.docker, &self.name).await?;
            if let Some(o) = &self.overlays
                && let Err(e) = o.leave(&self.task.id).await
            {
                tracing::warn!(task_id = %self.task.id, error = %e, "cannot take the task off its overlay networks");
            }
            remove_files(&self.files_dir)
        })
    }

    fn container(&self) -> (String, i64) {
        (self.container_id.clone(), self.pid)
    }

    fn published_ports(&self) -> Vec<PortConfig> {
        self.published.clone()
    }
}
