//! The dispatcher, on the leader: one long-lived session per node pushing its assignments,
//! heartbeats kept in memory (a node is Down after three missed periods), and task status
//! reports written to raft in batches.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use swarm_model::NodeState;
use swarm_model::NodeStatus;
use swarm_model::Object;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::TaskStatus;
use swarm_model::new_id;
use swarm_protocol::dispatcher::FileData;
use swarm_protocol::dispatcher::FileKind;
use swarm_protocol::dispatcher::LogBatch;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogOptions;
use swarm_protocol::dispatcher::LogRequest;
use swarm_protocol::dispatcher::NotLeader;
use swarm_protocol::dispatcher::SessionMessage;
use swarm_protocol::dispatcher::SessionRequest;
use swarm_protocol::dispatcher::frame;
use swarm_sync::lock;
use tokio::sync::Notify;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::time::Instant;

use super::api::error::ApiError;
use super::controller::commit_chunked;
use super::runtime::Manager;
use super::store::Event;
use super::store::StoreAction;
use super::store::StoreState;
use super::store::Transaction;

/// Heartbeats a node may miss before it is marked Down.
const MISSED_HEARTBEATS: u32 = 3;
/// After a leader change, nodes get this many periods to open a session with the new leader.
const FAILOVER_GRACE_PERIODS: u32 = 6;
/// Largest number of status updates written in one raft entry.
const STATUS_BATCH: usize = 1000;

struct SessionEntry {
    id: String,
    deadline: Instant,
    cancel: watch::Sender<bool>,
    /// Messages for the node that do not come from the store (log requests).
    extra: mpsc::Sender<SessionMessage>,
}

/// A log subscription on the leader: lines from the nodes go to whoever reads `lines`.
struct LogSubscription {
    lines: mpsc::Sender<LogLine>,
    /// Nodes that have not said they are done.
    pending: HashSet<String>,
}

/// The dispatcher of one manager; it serves sessions only while that manager leads.
#[derive(Default)]
pub struct Dispatcher {
    sessions: Mutex<HashMap<String, SessionEntry>>,
    active: AtomicBool,
    queue: Mutex<Vec<(String, TaskStatus)>>,
    queued: Notify,
    logs: Mutex<HashMap<String, LogSubscription>>,
}

/// The heartbeat period from the cluster settings (default 1 s).
pub fn heartbeat_period(s: &StoreState) -> Duration {
    let ns = s
        .cluster()
        .and_then(|c| c.spec.dispatcher.heartbeat_period)
        .filter(|p| *p > 0)
        .unwrap_or(1_000_000_000);
    Duration::from_nanos(ns as u64).max(Duration::from_millis(500))
}

/// The data of the secrets and configs `tasks` mount that this session has not `sent` yet, so a
/// node gets exactly what its tasks use, once per session (status updates resend no data).
fn files_of(s: &StoreState, tasks: &[Task], sent: &mut HashSet<(FileKind, String)>) -> Vec<FileData> {
    let mut out = Vec::new();
    // Only tasks that may still start need data: ended or stopping ones never read it.
    let may_start = |t: &&Task| !t.status.state.is_terminal() && !t.desired_state.wants_stop();
    for cs in tasks
        .iter()
        .filter(may_start)
        .filter_map(|t| t.spec.container_spec.as_ref())
    {
        let secrets = cs.secrets.iter().flatten().map(|r| (FileKind::Secret, &r.secret_id));
        let configs = cs.configs.iter().flatten().map(|r| (FileKind::Config, &r.config_id));
        for (kind, id) in secrets.chain(configs) {
            if !sent.insert((kind, id.clone())) {
                continue;
            }
            let spec = match kind {
                FileKind::Secret => s.secrets.get(id).map(|o| &o.spec),
                FileKind::Config => s.configs.get(id).map(|o| &o.spec),
            };
            if let Some(spec) = spec {
                out.push(FileData {
                    kind,
                    id: id.clone(),
                    data: spec.data.clone().unwrap_or_default(),
                });
            }
        }
    }
    out
}

/// The tasks a node is told about: those assigned to it.
fn assigned_to(t: &Task, node_id: &str) -> bool {
    t.node_id == node_id && t.status.state >= TaskState::Assigned
}

fn managers_of(m: &Manager) -> Vec<(String, String)> {
    m.raft
        .status()
        .voters
        .values()
        .map(|a| (a.node_id.clone(), a.addr.clone()))
        .collect()
}

impl Dispatcher {
    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        lock(&self.sessions)
    }

    /// The answer for a node that reached a manager which is not the leader.
    pub fn not_leader(m: &Manager) -> ApiError {
        let leader = m.raft.status().leader_addr().map(|a| a.addr.clone());
        let body = NotLeader {
            message: "this manager is not the leader; open the session with the leader".to_string(),
            leader,
        };
        ApiError::unavailable(serde_json::to_string(&body).unwrap_or_default())
    }

    /// Opens a session for `node_id`: marks the node Ready with its description, then streams
    /// its assignments (the full set, then changes) until the session ends.
    pub async fn open_session(
        self: &Arc<Self>,
        m: &Arc<Manager>,
        node_id: &str,
        remote_ip: String,
        req: SessionRequest,
    ) -> Result<Body, ApiError> {
        if !self.active.load(Ordering::Relaxed) {
            return Err(Self::not_leader(m));
        }
        let (node, period) = m.store.view(|s| (s.nodes.get(node_id).cloned(), heartbeat_period(s)));
        let node = node.ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                format!("node {node_id} is not registered in this cluster"),
            )
        })?;
        let mut description = req.description;
        description.tls_info = node.description.tls_info.clone();
        let status = NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: remote_ip,
        };
        m.commit_txs_as_leader(vec![Transaction::one(StoreAction::NodeStatus {
            id: node_id.to_string(),
            status,
            description: Some(description),
        })])
        .await?;

        let session_id = new_id();
        let (cancel_tx, mut cancel) = watch::channel(false);
        let (extra_tx, mut extra_rx) = mpsc::channel::<SessionMessage>(16);
        let replaced = self.lock_sessions().insert(
            node_id.to_string(),
            SessionEntry {
                id: session_id.clone(),
                deadline: Instant::now() + period * MISSED_HEARTBEATS,
                cancel: cancel_tx,
                extra: extra_tx,
            },
        );
        if let Some(old) = replaced {
            let _ = old.cancel.send(true);
        }
        tracing::info!(%node_id, %session_id, "node session opened");

        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let me = self.clone();
        let m = m.clone();
        let node_id = node_id.to_string();
        tokio::spawn(async move {
            // A node that stops reading must not hold this task: a send also ends on cancel.
            let cancel_send = cancel.clone();
            let send = |msg: SessionMessage| {
                let tx = tx.clone();
                let mut cancelled = cancel_send.clone();
                async move {
                    match frame(&msg) {
                        Ok(bytes) => tokio::select! {
                            r = tx.send(Ok(Bytes::from(bytes))) => r.is_ok(),
                            _ = cancelled.wait_for(|c| *c) => false,
                        },
                        Err(_) => false,
                    }
                }
            };
            let mut managers = managers_of(&m);
            let welcome = SessionMessage::Welcome {
                session_id: session_id.clone(),
                heartbeat_period_ms: period.as_millis() as u64,
                managers: managers.clone(),
            };
            // Secret and config data already sent in this session; a full set starts over.
            let mut sent: HashSet<(FileKind, String)> = HashSet::new();
            let full_set = |s: &StoreState, sent: &mut HashSet<(FileKind, String)>| {
                sent.clear();
                let tasks: Vec<Task> = s
                    .tasks_by_node(&node_id)
                    .filter(|t| assigned_to(t, &node_id))
                    .cloned()
                    .collect();
                let files = files_of(s, &tasks, sent);
                (tasks, files)
            };
            let ((tasks, files), mut watcher) = m.store.view_and_watch(|s| full_set(s, &mut sent));
            let role_of = |s: &StoreState| s.nodes.get(&node_id).map(|n| (n.spec.role, n.raft_id));
            let mut role = m.store.view(role_of);
            let mut alive = send(welcome).await
                && send(SessionMessage::Assignments {
                    full: true,
                    tasks,
                    removed: Vec::new(),
                    files,
                })
                .await;
            if let Some((r, raft_id)) = role {
                alive = alive && send(SessionMessage::Role { role: r, raft_id }).await;
            }
            // Raft membership changes are not store events: look at the managers on every
            // wake-up and at least every 5 s, so a node learns of new managers before it needs
            // them (a demoted leader's agent must find the next leader).
            let mut managers_tick = tokio::time::interval(Duration::from_secs(5));
            managers_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while alive {
                let now = managers_of(&m);
                if now != managers && !now.is_empty() {
                    managers = now;
                    alive = send(SessionMessage::Managers {
                        managers: managers.clone(),
                    })
                    .await;
                    if !alive {
                        break;
                    }
                }
                let mut updated: HashMap<String, Task> = HashMap::new();
                let mut removed: HashSet<String> = HashSet::new();
                let mut full_again = false;
                let mut role_changed = false;
                tokio::select! {
                    batch = watcher.next() => {
                        let Some(first) = batch else { break };
                        // Gather a burst of changes into one message.
                        let mut batches = vec![first];
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        while let Some(b) = watcher.try_next() {
                            batches.push(b);
                        }
                        for b in batches {
                            for e in b.iter() {
                                match e {
                                    Event::Create(Object::Task(t)) | Event::Update { new: Object::Task(t), .. }
                                        if assigned_to(t, &node_id) =>
                                    {
                                        removed.remove(&t.id);
                                        updated.insert(t.id.clone(), (**t).clone());
                                    }
                                    Event::Delete(Object::Task(t)) if t.node_id == node_id => {
                                        updated.remove(&t.id);
                                        removed.insert(t.id.clone());
                                    }
                                    Event::Update { new: Object::Node(n), .. }
                                        if n.id == node_id && role != Some((n.spec.role, n.raft_id)) =>
                                    {
                                        role = Some((n.spec.role, n.raft_id));
                                        role_changed = true;
                                    }
                                    Event::Restored { .. } => full_again = true,
                                    _ => {}
                                }
                            }
                        }
                    }
                    _ = cancel.changed() => break,
                    msg = extra_rx.recv() => {
                        match msg {
                            Some(msg) => alive = send(msg).await,
                            None => break,
                        }
                        continue;
                    }
                    _ = managers_tick.tick() => continue,
                }
                if full_again {
                    let now = m.store.view(role_of);
                    role_changed |= now != role;
                    role = now;
                }
                if role_changed && let Some((r, raft_id)) = role {
                    alive = send(SessionMessage::Role { role: r, raft_id }).await;
                    if !alive {
                        break;
                    }
                }
                if full_again {
                    let (tasks, files) = m.store.view(|s| full_set(s, &mut sent));
                    alive = send(SessionMessage::Assignments {
                        full: true,
                        tasks,
                        removed: Vec::new(),
                        files,
                    })
                    .await;
                } else if !updated.is_empty() || !removed.is_empty() {
                    let tasks: Vec<Task> = updated.into_values().collect();
                    let files = m.store.view(|s| files_of(s, &tasks, &mut sent));
                    alive = send(SessionMessage::Assignments {
                        full: false,
                        tasks,
                        removed: removed.into_iter().collect(),
                        files,
                    })
                    .await;
                }
            }
            let mut sessions = me.lock_sessions();
            if sessions.get(&node_id).is_some_and(|s| s.id == session_id) {
                sessions.remove(&node_id);
                drop(sessions);
                me.node_gone_from_logs(&node_id);
            }
            tracing::info!(%node_id, %session_id, "node session closed");
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Ok(Body::from_stream(stream.boxed()))
    }

    fn lock_logs(&self) -> std::sync::MutexGuard<'_, HashMap<String, LogSubscription>> {
        lock(&self.logs)
    }

    /// Asks the nodes running `tasks` (by node) for their output. Lines arrive on the returned
    /// channel until every node is done (or, following, until the reader drops it). Tasks on
    /// nodes without a session are skipped.
    pub async fn subscribe_logs(
        &self,
        m: &Manager,
        tasks: HashMap<String, Vec<String>>,
        options: LogOptions,
    ) -> Result<mpsc::Receiver<LogLine>, ApiError> {
        if !self.active.load(Ordering::Relaxed) {
            return Err(Self::not_leader(m));
        }
        let subscription = new_id();
        let (tx, rx) = mpsc::channel(256);
        let targets: Vec<(String, mpsc::Sender<SessionMessage>, Vec<String>)> = {
            let sessions = self.lock_sessions();
            tasks
                .into_iter()
                .filter_map(|(node, ids)| sessions.get(&node).map(|s| (node, s.extra.clone(), ids)))
                .collect()
        };
        if targets.is_empty() {
            // Nothing to read from: the stream ends at once.
            return Ok(rx);
        }
        self.lock_logs().insert(
            subscription.clone(),
            LogSubscription {
                lines: tx,
                pending: targets.iter().map(|(n, _, _)| n.clone()).collect(),
            },
        );
        for (node, extra, ids) in targets {
            let req = SessionMessage::Logs(LogRequest {
                subscription: subscription.clone(),
                tasks: ids,
                options: options.clone(),
            });
            if extra.send(req).await.is_err() {
                self.node_done(&subscription, &node);
            }
        }
        Ok(rx)
    }

    /// A node whose session ended sends no more lines: its subscriptions stop waiting for it.
    fn node_gone_from_logs(&self, node_id: &str) {
        self.lock_logs().retain(|_, sub| {
            sub.pending.remove(node_id);
            !sub.pending.is_empty()
        });
    }

    fn node_done(&self, subscription: &str, node_id: &str) {
        let mut subs = self.lock_logs();
        if let Some(sub) = subs.get_mut(subscription) {
            sub.pending.remove(node_id);
            if sub.pending.is_empty() {
                subs.remove(subscription);
            }
        }
    }

    /// Lines a node sent for a subscription. `Gone` once nobody reads it any more, so the node
    /// stops.
    pub async fn publish_logs(&self, node_id: &str, batch: LogBatch) -> Result<(), ApiError> {
        let gone = || ApiError::new(axum::http::StatusCode::GONE, "the log subscription has ended");
        let tx = {
            let sessions = self.lock_sessions();
            if sessions.get(node_id).is_none_or(|s| s.id != batch.session_id) {
                return Err(gone());
            }
            drop(sessions);
            let subs = self.lock_logs();
            let sub = subs.get(&batch.subscription).ok_or_else(gone)?;
            if !sub.pending.contains(node_id) {
                return Err(gone());
            }
            sub.lines.clone()
        };
        for line in batch.lines {
            if tx.send(line).await.is_err() {
                self.lock_logs().remove(&batch.subscription);
                return Err(gone());
            }
        }
        if batch.done {
            self.node_done(&batch.subscription, node_id);
        }
        Ok(())
    }

    /// Records a heartbeat; returns the period the node should keep. A node the store still
    /// shows as Down (a race with the heartbeat check) is marked Ready again.
    pub async fn heartbeat(&self, m: &Manager, node_id: &str, session_id: &str) -> Result<Duration, ApiError> {
        if !self.active.load(Ordering::Relaxed) {
            return Err(Self::not_leader(m));
        }
        let (period, status) = m
            .store
            .view(|s| (heartbeat_period(s), s.nodes.get(node_id).map(|n| n.status.clone())));
        {
            let mut sessions = self.lock_sessions();
            match sessions.get_mut(node_id) {
                Some(s) if s.id == session_id => s.deadline = Instant::now() + period * MISSED_HEARTBEATS,
                _ => {
                    return Err(ApiError::not_found(format!(
                        "session {session_id} of node {node_id} not found; open a new session"
                    )));
                }
            }
        }
        if let Some(status) = status.filter(|st| st.state == NodeState::Down) {
            m.commit_txs_as_leader(vec![Transaction::one(StoreAction::NodeStatus {
                id: node_id.to_string(),
                status: NodeStatus {
                    state: NodeState::Ready,
                    message: String::new(),
                    addr: status.addr,
                },
                description: None,
            })])
            .await?;
        }
        Ok(period)
    }

    /// Queues task status reports from a node's session; they are written in batches.
    pub fn report(
        &self,
        m: &Manager,
        node_id: &str,
        session_id: &str,
        updates: Vec<(String, TaskStatus)>,
    ) -> Result<(), ApiError> {
        if !self.active.load(Ordering::Relaxed) {
            return Err(Self::not_leader(m));
        }
        if self.lock_sessions().get(node_id).is_none_or(|s| s.id != session_id) {
            return Err(ApiError::not_found(format!(
                "session {session_id} of node {node_id} not found; open a new session"
            )));
        }
        // Statuses carry this manager's clock, not the node's: delays, monitor periods and
        // restart windows are all measured on managers. A report that changes nothing (a new
        // session repeats every status) is dropped.
        let now = swarm_model::Timestamp::now();
        let mine: Vec<(String, TaskStatus)> = m.store.view(|s| {
            updates
                .into_iter()
                .filter_map(|(id, mut status)| {
                    let t = s.tasks.get(&id).filter(|t| t.node_id == node_id)?;
                    let same = t.status.state == status.state
                        && t.status.message == status.message
                        && t.status.err == status.err
                        && t.status.container_status == status.container_status;
                    if same {
                        return None;
                    }
                    status.timestamp = now;
                    Some((id, status))
                })
                .collect()
        });
        if !mine.is_empty() {
            lock(&self.queue).extend(mine);
            self.queued.notify_one();
        }
        Ok(())
    }

    /// Ends every session: this manager stopped leading.
    pub fn step_down(&self) {
        self.active.store(false, Ordering::Relaxed);
        for (_, s) in self.lock_sessions().drain() {
            let _ = s.cancel.send(true);
        }
        // Readers see their streams end; nodes are told to stop when they next send.
        self.lock_logs().clear();
        lock(&self.queue).clear();
    }

    /// The leader-side loop: marks nodes Down when their heartbeats stop, and flushes status
    /// reports to raft in batches.
    pub async fn run_leader(self: Arc<Self>, m: Arc<Manager>, mut stop: watch::Receiver<bool>) {
        self.active.store(true, Ordering::Relaxed);
        let mut unseen_since: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = self.queued.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            // Let more reports join the batch.
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.flush_statuses(&m).await;
            self.check_heartbeats(&m, &mut unseen_since).await;
        }
        self.active.store(false, Ordering::Relaxed);
    }

    async fn flush_statuses(&self, m: &Manager) {
        let updates: Vec<(String, TaskStatus)> = {
            let mut q = lock(&self.queue);
            let n = q.len().min(STATUS_BATCH * 10);
            q.drain(..n).collect()
        };
        if updates.is_empty() {
            return;
        }
        let txs: Vec<Transaction> = updates
            .iter()
            .cloned()
            .map(|(id, status)| Transaction::one(StoreAction::TaskStatus { id, status }))
            .collect();
        if let Err(e) = commit_chunked(m, "dispatcher", txs).await {
            tracing::warn!(error = %e, "cannot write task status reports; will retry");
            // Put them back in front of newer reports (applying a report twice is harmless:
            // states only move forward). If this manager stops leading, the queue is dropped
            // and the nodes report everything again on their next session.
            if self.active.load(Ordering::Relaxed) {
                let mut q = lock(&self.queue);
                let newer = std::mem::take(&mut *q);
                *q = updates;
                q.extend(newer);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn check_heartbeats(&self, m: &Manager, unseen_since: &mut HashMap<String, Instant>) {
        let now = Instant::now();
        let period = m.store.view(heartbeat_period);
        let expired: Vec<String> = {
            let mut sessions = self.lock_sessions();
            let gone: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| s.deadline < now)
                .map(|(n, _)| n.clone())
                .collect();
            for n in &gone {
                if let Some(s) = sessions.remove(n) {
                    let _ = s.cancel.send(true);
                }
            }
            gone
        };
        for n in &expired {
            self.node_gone_from_logs(n);
        }
        let with_session: HashSet<String> = self.lock_sessions().keys().cloned().collect();
        let silent: Vec<(String, NodeStatus)> = m.store.view(|s| {
            s.nodes
                .iter()
                .filter(|n| n.status.state != NodeState::Down && !with_session.contains(&n.id))
                .map(|n| (n.id.clone(), n.status.clone()))
                .collect()
        });
        unseen_since.retain(|id, _| silent.iter().any(|(n, _)| n == id));
        let mut down = Vec::new();
        for (id, status) in silent {
            let since = *unseen_since.entry(id.clone()).or_insert(now);
            let grace = if expired.contains(&id) {
                Duration::ZERO
            } else {
                period * FAILOVER_GRACE_PERIODS
            };
            if now.duration_since(since) >= grace {
                down.push((id, status));
            }
        }
        // A session may have opened meanwhile.
        let with_session: HashSet<String> = self.lock_sessions().keys().cloned().collect();
        down.retain(|(id, _)| !with_session.contains(id));
        if down.is_empty() {
            return;
        }
        let txs: Vec<Transaction> = down
            .into_iter()
            .map(|(id, status)| {
                tracing::warn!(node_id = %id, "node missed its heartbeats: marking it down");
                Transaction::one(StoreAction::NodeStatus {
                    id,
                    status: NodeStatus {
                        state: NodeState::Down,
                        message: "heartbeat failure".to_string(),
                        addr: status.addr,
                    },
                    description: None,
                })
            })
            .collect();
        if let Err(e) = commit_chunked(m, "dispatcher", txs).await {
            tracing::warn!(error = %e, "cannot mark nodes down");
        }
    }
}
