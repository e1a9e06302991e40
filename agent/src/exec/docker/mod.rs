//! Tasks as containers on the local Docker engine (bollard), named `<service>.<slot>.<task id>`
//! and labelled like dockerd's swarm containers: the [`executor`], one [`controller`] per task,
//! and the pure [`container`] spec a task becomes.

pub mod container;
mod controller;
mod executor;
#[cfg(test)]
mod field_walk;
pub mod overlays;

use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::RemoveContainerOptionsBuilder;

pub use self::executor::DockerExecutor;
use crate::exec::ExecError;

/// Deadline for engine calls that should be quick (create, start, inspect, remove).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for pulling an image.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

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
