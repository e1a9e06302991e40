//! The worker: one runner per assigned task, each walking its task through the controller's
//! lifecycle and reporting every state change. Tasks keep running while the session to the
//! managers comes and goes.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use swarm_model::ContainerStatus;
use swarm_model::PortStatus;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::Timestamp;
use swarm_protocol::dispatcher::FileData;
use swarm_protocol::dispatcher::FileKind;
use swarm_sync::lock;
use tokio::sync::Notify;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::exec::Controller;
use super::exec::ExecError;
use super::exec::Executor;
use super::exec::Existing;
use super::exec::TaskFile;

/// The latest status of every task and which ones the managers have not seen yet.
#[derive(Default)]
pub struct Reporter {
    latest: Mutex<HashMap<String, TaskStatus>>,
    dirty: Mutex<HashSet<String>>,
    pub changed: Notify,
}

impl Reporter {
    pub fn report(&self, task_id: &str, status: TaskStatus) {
        tracing::debug!(task_id, state = ?status.state, message = %status.message, err = %status.err, "task status");
        lock(&self.latest).insert(task_id.to_string(), status);
        lock(&self.dirty).insert(task_id.to_string());
        self.changed.notify_one();
    }

    /// Takes the statuses not yet delivered, oldest state first within each task.
    pub fn take_dirty(&self) -> Vec<(String, TaskStatus)> {
        let ids: Vec<String> = lock(&self.dirty).drain().collect();
        let latest = lock(&self.latest);
        ids.into_iter()
            .filter_map(|id| latest.get(&id).map(|s| (id, s.clone())))
            .collect()
    }

    /// Puts back statuses that could not be delivered.
    pub fn restore(&self, ids: impl IntoIterator<Item = String>) {
        lock(&self.dirty).extend(ids);
        self.changed.notify_one();
    }

    /// A new session (perhaps with a new leader) must learn every current status.
    pub fn mark_all_dirty(&self) {
        let ids: Vec<String> = lock(&self.latest).keys().cloned().collect();
        self.restore(ids);
    }

    fn forget(&self, task_id: &str) {
        lock(&self.latest).remove(task_id);
        lock(&self.dirty).remove(task_id);
    }

    pub fn status_of(&self, task_id: &str) -> Option<TaskStatus> {
        lock(&self.latest).get(task_id).cloned()
    }
}

struct Runner {
    desired: watch::Sender<TaskState>,
    handle: JoinHandle<()>,
}

pub struct Worker {
    pub node_id: String,
    executor: Arc<dyn Executor>,
    runners: Mutex<HashMap<String, Runner>>,
    pub reporter: Arc<Reporter>,
    /// Task containers found when the worker started, until the first full assignment says
    /// which of them are still wanted.
    leftovers: Mutex<Option<HashSet<String>>>,
    /// Secret and config data the managers sent for this node's tasks; memory only.
    files: Mutex<HashMap<(FileKind, String), Vec<u8>>>,
}

impl Worker {
    pub fn new(node_id: String, executor: Arc<dyn Executor>) -> Self {
        Self {
            node_id,
            executor,
            runners: Mutex::new(HashMap::new()),
            reporter: Arc::new(Reporter::default()),
            leftovers: Mutex::new(None),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Stops driving every task without touching its container, so another worker in this
    /// process (after a role change) can adopt them.
    pub fn detach(&self) {
        for (_, r) in self.lock_runners().drain() {
            r.handle.abort();
        }
    }

    /// Notes the containers left from before a restart, so they are adopted or removed.
    pub async fn scan(&self) {
        match self.executor.task_ids(&self.node_id).await {
            Ok(ids) => {
                if !ids.is_empty() {
                    tracing::info!(count = ids.len(), "found task containers from before the restart");
                }
                *lock(&self.leftovers) = Some(ids.into_iter().collect());
            }
            Err(e) => tracing::warn!(error = %e, "cannot list existing task containers"),
        }
    }

    fn lock_runners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Runner>> {
        lock(&self.runners)
    }

    /// The secret and config files of `task`, with the data this node was sent.
    fn files_of(&self, task: &Task) -> Vec<TaskFile> {
        let files = lock(&self.files);
        TaskFile::of_task(task, |kind, id| files.get(&(kind, id.to_string())).cloned())
    }

    /// Applies assignments from the managers: the full set or changes, with the secret and
    /// config data those tasks use.
    pub fn apply(self: &Arc<Self>, full: bool, tasks: Vec<Task>, removed: Vec<String>, files: Vec<FileData>) {
        {
            let mut known = lock(&self.files);
            if full {
                known.clear();
            }
            known.extend(files.into_iter().map(|f| ((f.kind, f.id), f.data)));
        }
        let wanted: HashSet<String> = tasks.iter().map(|t| t.id.clone()).collect();
        if full {
            let stale: Vec<String> = self
                .lock_runners()
                .keys()
                .filter(|id| !wanted.contains(*id))
                .cloned()
                .collect();
            for id in stale {
                self.drop_task(&id);
            }
            let leftovers = lock(&self.leftovers).take();
            for id in leftovers.into_iter().flatten() {
                if !wanted.contains(&id) {
                    self.remove_container(id);
                }
            }
        }
        for t in tasks {
            let mut runners = self.lock_runners();
            if let Some(r) = runners.get(&t.id) {
                r.desired.send_if_modified(|d| {
                    let changed = *d != t.desired_state;
                    *d = t.desired_state;
                    changed
                });
                continue;
            }
            // A task that already ended (e.g. reported before a restart) has nothing to run;
            // its container, if any, goes when the task is removed.
            if t.status.state > TaskState::Running {
                drop(runners);
                if t.desired_state == TaskState::Remove {
                    self.remove_container(t.id.clone());
                } else if full && t.desired_state.wants_stop() {
                    // Ended in the managers' view (e.g. rejected by the constraint enforcer)
                    // while its container may still run from before this worker started.
                    self.stop_container(t.clone());
                }
                continue;
            }
            let (tx, rx) = watch::channel(t.desired_state);
            let me = self.clone();
            let id = t.id.clone();
            let handle = tokio::spawn(async move { me.run_task(t, rx).await });
            runners.insert(id, Runner { desired: tx, handle });
        }
        for id in removed {
            self.drop_task(&id);
        }
    }

    /// The task is gone from the managers' view: stop and remove its container.
    fn drop_task(&self, id: &str) {
        let runner = self.lock_runners().remove(id);
        match runner {
            Some(r) => {
                // The runner sees the channel close, cleans up and forgets the task.
                drop(r.desired);
                drop(r.handle);
            }
            None => {
                self.remove_container(id.to_string());
                self.reporter.forget(id);
            }
        }
    }

    fn stop_container(&self, task: Task) {
        let mut ctl = self.executor.controller(&task, &self.node_id, Vec::new());
        tokio::spawn(async move {
            if let Err(e) = ctl.shutdown().await {
                tracing::debug!(task_id = %task.id, error = %e, "cannot stop the ended task's container");
            }
        });
    }

    fn remove_container(&self, id: String) {
        let exec = self.executor.clone();
        let node = self.node_id.clone();
        tokio::spawn(async move {
            for attempt in 1..=5 {
                match exec.remove_task(&node, &id).await {
                    Ok(()) => return,
                    Err(e) if attempt == 5 => {
                        tracing::warn!(task_id = %id, error = %e, "cannot remove the task's container; giving up")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_secs(attempt)).await,
                }
            }
        });
    }

    fn report(&self, task_id: &str, ctl: &dyn Controller, state: TaskState, message: &str, err: &str, exit: i64) {
        let (container_id, pid) = ctl.container();
        let container_status = (!container_id.is_empty()).then(|| ContainerStatus {
            container_id,
            pid: if state == TaskState::Running { pid } else { 0 },
            exit_code: exit,
        });
        self.reporter.report(
            task_id,
            TaskStatus {
                timestamp: Timestamp::now(),
                state,
                message: message.to_string(),
                err: err.to_string(),
                container_status,
                port_status: PortStatus {
                    ports: Some(ctl.published_ports()).filter(|p| state == TaskState::Running && !p.is_empty()),
                },
            },
        );
    }

    async fn run_task(self: Arc<Self>, task: Task, mut desired: watch::Receiver<TaskState>) {
        let id = task.id.clone();
        let mut ctl = self.executor.controller(&task, &self.node_id, self.files_of(&task));
        if self.drive(&task, ctl.as_mut(), &mut desired).await {
            // The task has ended as far as the managers know, but its container may still run
            // (one that could not be inspected, say): stop it once the managers want that.
            if desired.wait_for(|d| d.wants_stop()).await.is_ok()
                && let Err(e) = ctl.shutdown().await
            {
                tracing::debug!(task_id = %id, error = %e, "stopping an ended task's container");
            }
            // Keep the stopped container until the managers remove the task (or delete it).
            let _ = desired.wait_for(|d| *d == TaskState::Remove).await;
            remove_with_retries(&id, ctl.as_mut()).await;
        }
        // Forget the task once the managers have deleted it (the channel closes then), so its
        // last status is delivered first and not reported again by later sessions.
        while desired.changed().await.is_ok() {}
        self.reporter.forget(&id);
    }

    /// Runs the task to an end state. Returns false if the task was deleted meanwhile (the
    /// container is then removed here).
    async fn drive(&self, task: &Task, ctl: &mut dyn Controller, desired: &mut watch::Receiver<TaskState>) -> bool {
        let id = task.id.as_str();
        // Job tasks are wanted COMPLETE: they run like any other until they exit.
        let stop_wanted = |d: &TaskState| d.wants_stop();
        let mut existing = ctl.existing().await;
        for _ in 0..3 {
            if existing.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            existing = ctl.existing().await;
        }
        // Never guess: a container that cannot be looked up must not be replaced or removed.
        let existing = match existing {
            Ok(e) => e,
            Err(e) => {
                self.report(
                    id,
                    ctl,
                    TaskState::Failed,
                    "cannot inspect the container",
                    &e.to_string(),
                    0,
                );
                return true;
            }
        };
        let mut adopted_running = false;
        match existing {
            Some(Existing::Running { .. }) => adopted_running = true,
            Some(Existing::Exited { code, .. }) => {
                self.report_exit(id, ctl, code);
                return true;
            }
            Some(Existing::Created { .. }) => {}
            // The task had started before, but its container is gone (removed while this
            // worker was down): it failed, and the managers replace it.
            None if task.status.state >= TaskState::Starting => {
                self.report(
                    id,
                    ctl,
                    TaskState::Failed,
                    "container vanished",
                    "task: the container was removed",
                    0,
                );
                return true;
            }
            None => {
                if stop_wanted(&desired.borrow()) {
                    self.report(id, ctl, TaskState::Shutdown, "shutdown before start", "", 0);
                    return true;
                }
                self.report(id, ctl, TaskState::Accepted, "accepted", "", 0);
                self.report(id, ctl, TaskState::Preparing, "preparing", "", 0);
                if let Err(e) = ctl.prepare().await {
                    let state = match e {
                        ExecError::Rejected(_) => TaskState::Rejected,
                        _ => TaskState::Failed,
                    };
                    self.report(id, ctl, state, "preparing failed", &e.to_string(), 0);
                    return true;
                }
                self.report(id, ctl, TaskState::Ready, "prepared", "", 0);
            }
        }
        if !adopted_running {
            // Wait for the go-ahead: a replacement is held READY during its restart delay.
            let go = desired.wait_for(|d| *d >= TaskState::Running).await.map(|d| *d);
            // wait_for also answers Ok for the last value after the task was deleted.
            let deleted = desired.has_changed().is_err();
            match go {
                Err(_) => {
                    remove_with_retries(id, ctl).await;
                    return false;
                }
                Ok(_) if deleted => {
                    remove_with_retries(id, ctl).await;
                    return false;
                }
                Ok(d) if d.wants_stop() => {
                    self.report(id, ctl, TaskState::Shutdown, "shutdown before start", "", 0);
                    return true;
                }
                Ok(_) => {}
            }
            self.report(id, ctl, TaskState::Starting, "starting", "", 0);
            if let Err(e) = ctl.start().await {
                self.report(id, ctl, TaskState::Failed, "starting failed", &e.to_string(), 0);
                return true;
            }
            let ready = tokio::select! {
                r = ctl.wait_ready() => Some(r),
                _ = desired.wait_for(stop_wanted) => None,
            };
            match ready {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    let _ = ctl.shutdown().await;
                    self.report(id, ctl, TaskState::Failed, "task failed", &e.to_string(), 0);
                    return true;
                }
                None => return self.stop(id, ctl, desired).await,
            }
        }
        self.report(id, ctl, TaskState::Running, "started", "", 0);
        let outcome = tokio::select! {
            r = ctl.wait() => Some(r),
            _ = desired.wait_for(stop_wanted) => None,
        };
        match outcome {
            None => self.stop(id, ctl, desired).await,
            Some(Ok(exit)) => {
                self.report_exit(id, ctl, exit.code);
                true
            }
            Some(Err(e)) => {
                let _ = ctl.shutdown().await;
                self.report(id, ctl, TaskState::Failed, "task failed", &e.to_string(), 0);
                true
            }
        }
    }

    async fn stop(&self, id: &str, ctl: &mut dyn Controller, desired: &watch::Receiver<TaskState>) -> bool {
        let mut stopped = ctl.shutdown().await;
        for attempt in 1..5u64 {
            if stopped.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(attempt)).await;
            stopped = ctl.shutdown().await;
        }
        match stopped {
            Ok(()) => self.report(id, ctl, TaskState::Shutdown, "shutdown", "", 0),
            // Say so rather than claim a shutdown: the container may still be running.
            Err(e) => self.report(
                id,
                ctl,
                TaskState::Failed,
                "shutdown failed",
                &format!("cannot stop the container: {e}"),
                0,
            ),
        }
        // A closed channel means the task was deleted: clean up now.
        if desired.has_changed().is_err() {
            remove_with_retries(id, ctl).await;
            return false;
        }
        true
    }

    fn report_exit(&self, id: &str, ctl: &dyn Controller, code: i64) {
        if code == 0 {
            self.report(id, ctl, TaskState::Complete, "finished", "", 0);
        } else {
            let err = format!("task: non-zero exit ({code})");
            self.report(id, ctl, TaskState::Failed, "started", &err, code);
        }
    }
}

/// Removes a task's container, retrying a few times before giving up with a warning.
async fn remove_with_retries(id: &str, ctl: &mut dyn Controller) {
    for attempt in 1..=5u64 {
        match ctl.remove().await {
            Ok(()) => return,
            Err(e) if attempt == 5 => {
                tracing::warn!(task_id = %id, error = %e, "cannot remove the task's container; giving up")
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(attempt)).await,
        }
    }
}
