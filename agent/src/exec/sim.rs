//! The simulated executor: no containers, a configurable start delay and failure rate. For
//! scale tests and benchmarks only; it runs behind the same agent, session and dispatcher as
//! real workers.

use std::sync::Arc;
use std::time::Duration;

use swarm_model::EngineDescription;
use swarm_model::Resources;
use swarm_model::Task;
use swarm_model::random_bytes;
use tokio::sync::Notify;

use super::BoxFuture;
use super::Controller;
use super::EngineFacts;
use super::ExecError;
use super::Executor;
use super::Existing;
use super::Exit;
use super::TaskFile;

#[derive(Debug, Clone)]
pub struct SimExecutor {
    /// How long preparing a task takes.
    pub start_delay: Duration,
    /// Probability that a started task fails after a while, 0.0 to 1.0.
    pub failure_rate: f64,
}

fn chance() -> f64 {
    let mut b = [0u8; 4];
    random_bytes(&mut b);
    u32::from_be_bytes(b) as f64 / u32::MAX as f64
}

impl Executor for SimExecutor {
    fn describe(&self) -> BoxFuture<'_, Result<EngineFacts, ExecError>> {
        Box::pin(async {
            Ok(EngineFacts {
                engine: EngineDescription {
                    engine_version: "sim".to_string(),
                    labels: None,
                    plugins: None,
                },
                resources: Resources {
                    nano_cpus: 4_000_000_000,
                    memory_bytes: 8 << 30,
                    generic_resources: None,
                },
            })
        })
    }

    fn controller(&self, task: &Task, _node_id: &str, _files: Vec<TaskFile>) -> Box<dyn Controller> {
        Box::new(SimController {
            exec: self.clone(),
            id: format!("sim-{}", task.id),
            stopped: Arc::new(Notify::new()),
        })
    }

    fn task_ids(&self, _node_id: &str) -> BoxFuture<'_, Result<Vec<String>, ExecError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn remove_task(&self, _node_id: &str, _task_id: &str) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async { Ok(()) })
    }
}

struct SimController {
    exec: SimExecutor,
    id: String,
    stopped: Arc<Notify>,
}

impl Controller for SimController {
    fn existing(&mut self) -> BoxFuture<'_, Result<Option<Existing>, ExecError>> {
        Box::pin(async { Ok(None) })
    }

    fn prepare(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        let delay = self.exec.start_delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(())
        })
    }

    fn start(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async { Ok(()) })
    }

    fn wait_ready(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async { Ok(()) })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, ExecError>> {
        let fails = chance() < self.exec.failure_rate;
        let stopped = self.stopped.clone();
        Box::pin(async move {
            if fails {
                let after = Duration::from_millis(500 + (chance() * 4500.0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(after) => return Ok(Exit { code: 1 }),
                    _ = stopped.notified() => return Ok(Exit { code: 0 }),
                }
            }
            stopped.notified().await;
            Ok(Exit { code: 0 })
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        self.stopped.notify_waiters();
        self.stopped.notify_one();
        Box::pin(async { Ok(()) })
    }

    fn remove(&mut self) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async { Ok(()) })
    }

    fn container(&self) -> (String, i64) {
        (self.id.clone(), 0)
    }
}
