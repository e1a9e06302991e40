//! The Docker executor: each task is a container on the local engine (bollard), named
//! `<service>.<slot>.<task id>` and labelled like dockerd's swarm containers.

use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerCreateBody;
use bollard::models::ContainerStateStatusEnum;
use bollard::models::HealthConfig;
use bollard::models::HealthStatusEnum;
use bollard::models::HostConfig;
use bollard::models::Mount;
use bollard::models::MountBindOptions;
use bollard::models::MountTmpfsOptions;
use bollard::models::MountType;
use bollard::models::MountVolumeOptions;
use bollard::models::ResourcesUlimits;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::query_parameters::LogsOptionsBuilder;
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::query_parameters::StopContainerOptionsBuilder;
use bollard::query_parameters::WaitContainerOptionsBuilder;
use futures_util::StreamExt;
use swarm_model::EngineDescription;
use swarm_model::Resources;
use swarm_model::Task;
use swarm_model::Timestamp;
use swarm_model::defaults::DEFAULT_STOP_GRACE_PERIOD;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogOptions;

use super::BoxFuture;
use super::BoxStream;
use super::Controller;
use super::EngineFacts;
use super::ExecError;
use super::Executor;
use super::Existing;
use super::Exit;
use super::TaskFile;

pub const LABEL_NODE: &str = "com.docker.swarm.node.id";
pub const LABEL_SERVICE_ID: &str = "com.docker.swarm.service.id";
pub const LABEL_SERVICE_NAME: &str = "com.docker.swarm.service.name";
pub const LABEL_TASK_ID: &str = "com.docker.swarm.task.id";
pub const LABEL_TASK_NAME: &str = "com.docker.swarm.task.name";

/// Deadline for engine calls that should be quick (create, start, inspect, remove).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for pulling an image.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct DockerExecutor {
    docker: Docker,
    /// Where each task's secret and config files live (`<root>/<task id>/`, on a tmpfs when
    /// the node may mount one), bind-mounted read-only into its container and deleted with it.
    files_root: PathBuf,
}

/// The engine's own message for an error.
fn engine_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code: 404, .. })
}

async fn timed<T>(
    what: &str,
    d: Duration,
    f: impl std::future::Future<Output = Result<T, DockerError>>,
) -> Result<T, ExecError> {
    match tokio::time::timeout(d, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ExecError::Engine(format!("{what}: {}", engine_message(&e)))),
        Err(_) => Err(ExecError::Engine(format!(
            "{what}: the engine did not answer within {d:?}"
        ))),
    }
}

impl DockerExecutor {
    /// Connects to the local engine (`DOCKER_HOST` or `/var/run/docker.sock`) and negotiates
    /// the API version. Task secret and config files go under `files_root` (which the daemon
    /// puts on a tmpfs, see [`super::memory_dir`]).
    pub async fn connect(files_root: PathBuf) -> Result<Self, ExecError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| ExecError::Engine(format!("cannot reach the Docker engine: {e}")))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| ExecError::Engine("the Docker engine did not answer within 10 s".to_string()))?
            .map_err(|e| ExecError::Engine(format!("cannot negotiate the Docker API version: {e}")))?;
        Ok(Self { docker, files_root })
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
            name: container_name(task),
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
            for (id, _) in self.containers_of(&node_id, Some(&task_id)).await? {
                remove(&self.docker, &id).await?;
            }
            remove_files(&self.files_root.join(&task_id))
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

fn service_name(task: &Task) -> String {
    task.service_annotations
        .as_ref()
        .map(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| task.service_id.clone())
}

/// `<service>.<slot>.<task id>`, or `<service>.<node id>.<task id>` for a global task.
pub fn container_name(task: &Task) -> String {
    format!("{}.{}", task.display_name(&service_name(task)), task.id)
}

/// `name` → `name:latest` unless the reference has a tag or a digest.
pub fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Stop timeouts beyond a day are clamped (the engine takes seconds as a 32-bit integer).
fn grace_secs(grace_ns: i64) -> i64 {
    (grace_ns.max(0).saturating_add(999_999_999) / 1_000_000_000).min(86_400)
}

async fn remove(docker: &Docker, id: &str) -> Result<(), ExecError> {
    let opts = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
    match tokio::time::timeout(ENGINE_TIMEOUT, docker.remove_container(id, Some(opts))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_not_found(&e) => Ok(()),
        Ok(Err(DockerError::DockerResponseServerError {
            status_code: 409,
            message,
        })) if message.contains("in progress") => Ok(()),
        Ok(Err(e)) => Err(ExecError::Engine(format!("removing container: {}", engine_message(&e)))),
        Err(_) => Err(ExecError::Engine(
            "removing container: the engine did not answer".to_string(),
        )),
    }
}

/// Deletes a task's secret and config files.
fn remove_files(dir: &Path) -> Result<(), ExecError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ExecError::Engine(format!(
            "removing the task's files in {}: {e}",
            dir.display()
        ))),
    }
}

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

struct DockerController {
    files_dir: PathBuf,
    files: Vec<TaskFile>,
    docker: Docker,
    task: Task,
    node_id: String,
    name: String,
    container_id: String,
    pid: i64,
    has_health: bool,
}

impl DockerController {
    fn labels(&self) -> HashMap<String, String> {
        let spec = self.task.spec.container_spec.clone().unwrap_or_default();
        let mut labels: HashMap<String, String> = spec.labels.unwrap_or_default().into_iter().collect();
        labels.insert(LABEL_NODE.to_string(), self.node_id.clone());
        labels.insert(LABEL_SERVICE_ID.to_string(), self.task.service_id.clone());
        labels.insert(LABEL_SERVICE_NAME.to_string(), service_name(&self.task));
        labels.insert(LABEL_TASK_ID.to_string(), self.task.id.clone());
        labels.insert(LABEL_TASK_NAME.to_string(), self.name.clone());
        labels.insert("com.docker.swarm.task".to_string(), String::new());
        labels
    }

    /// The container to create; `file_mounts` put the task's secrets and configs in place.
    fn create_body(&self, file_mounts: Vec<Mount>) -> ContainerCreateBody {
        let spec = self.task.spec.container_spec.clone().unwrap_or_default();
        let mut mounts: Vec<Mount> = spec
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| Mount {
                target: Some(m.target),
                source: (!m.source.is_empty()).then_some(m.source),
                typ: Some(match m.type_.as_str() {
                    "bind" => MountType::BIND,
                    "tmpfs" => MountType::TMPFS,
                    "npipe" => MountType::NPIPE,
                    _ => MountType::VOLUME,
                }),
                read_only: Some(m.read_only),
                consistency: (!m.consistency.is_empty()).then_some(m.consistency),
                bind_options: m.bind_options.map(|b| MountBindOptions {
                    propagation: None,
                    non_recursive: Some(b.non_recursive),
                    create_mountpoint: Some(b.create_mountpoint),
                    ..Default::default()
                }),
                volume_options: m.volume_options.map(|v| MountVolumeOptions {
                    no_copy: Some(v.no_copy),
                    labels: v.labels.map(|l| l.into_iter().collect()),
                    ..Default::default()
                }),
                tmpfs_options: m.tmpfs_options.map(|t| MountTmpfsOptions {
                    size_bytes: t.size_bytes,
                    mode: t.mode.map(i64::from),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        mounts.extend(file_mounts);
        let resources = self.task.spec.resources.clone().unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        let grace_ns = spec.stop_grace_period.unwrap_or(DEFAULT_STOP_GRACE_PERIOD);
        let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: h.test.clone(),
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries,
            start_period: h.start_period,
            start_interval: h.start_interval,
        });
        let dns = spec.dns_config.clone().unwrap_or_default();
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: (!spec.hostname.is_empty()).then(|| spec.hostname.clone()),
            user: (!spec.user.is_empty()).then(|| spec.user.clone()),
            working_dir: (!spec.dir.is_empty()).then(|| spec.dir.clone()),
            env: spec.env.clone(),
            entrypoint: spec.command.clone(),
            cmd: spec.args.clone(),
            tty: Some(spec.tty),
            open_stdin: Some(spec.open_stdin),
            labels: Some(self.labels()),
            stop_signal: (!spec.stop_signal.is_empty()).then(|| spec.stop_signal.clone()),
            stop_timeout: Some(grace_secs(grace_ns)),
            healthcheck,
            host_config: Some(HostConfig {
                mounts: (!mounts.is_empty()).then_some(mounts),
                nano_cpus: (limits.nano_cpus > 0).then_some(limits.nano_cpus),
                memory: (limits.memory_bytes > 0).then_some(limits.memory_bytes),
                pids_limit: (limits.pids > 0).then_some(limits.pids),
                init: spec.init.filter(|i| *i),
                cap_add: spec.capability_add.clone(),
                cap_drop: spec.capability_drop.clone(),
                sysctls: spec.sysctls.clone().map(|s| s.into_iter().collect()),
                ulimits: spec.ulimits.clone().map(|u| {
                    u.into_iter()
                        .map(|u| ResourcesUlimits {
                            name: Some(u.name),
                            soft: Some(u.soft),
                            hard: Some(u.hard),
                        })
                        .collect()
                }),
                extra_hosts: spec.hosts.clone().map(|hosts| {
                    // Swarm writes "IP host", dockerd wants "host:IP".
                    hosts
                        .into_iter()
                        .filter_map(|h| {
                            let mut parts = h.split_whitespace();
                            let ip = parts.next()?;
                            Some(parts.map(|name| format!("{name}:{ip}")).collect::<Vec<_>>())
                        })
                        .flatten()
                        .collect()
                }),
                dns: dns.nameservers,
                dns_search: dns.search,
                dns_options: dns.options,
                readonly_rootfs: spec.read_only.then_some(true),
                group_add: spec.groups.clone(),
                oom_score_adj: spec.oom_score_adj,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

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
            self.pull_if_missing(&image).await?;
            let opts = CreateContainerOptionsBuilder::new().name(&self.name).build();
            let file_mounts = match self.files.is_empty() {
                true => Vec::new(),
                false => write_files(&self.files_dir, &self.files)?,
            };
            let body = self.create_body(file_mounts);
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
            tokio::select! {
                r = exited => r,
                e = unhealthy => Err(e),
            }
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
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
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if is_not_found(&e) => Ok(()),
                Ok(Err(DockerError::DockerResponseServerError { status_code: 304, .. })) => Ok(()),
                Ok(Err(e)) => Err(ExecError::Engine(format!("stopping container: {}", engine_message(&e)))),
                Err(_) => Err(ExecError::Engine(
                    "stopping container: the engine did not answer".to_string(),
                )),
            }
        })
    }

    fn remove(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            remove(&self.docker, &self.name).await?;
            remove_files(&self.files_dir)
        })
    }

    fn container(&self) -> (String, i64) {
        (self.container_id.clone(), self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_images_get_latest() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(with_default_tag("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(with_default_tag("localhost:5000/app:v2"), "localhost:5000/app:v2");
        assert_eq!(with_default_tag("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn grace_periods_round_up_and_clamp() {
        assert_eq!(grace_secs(1), 1);
        assert_eq!(grace_secs(10_000_000_000), 10);
        assert_eq!(grace_secs(i64::MAX), 86_400);
        assert_eq!(grace_secs(-5), 0);
    }
}
