//! A node's session with the leader's dispatcher: the node is marked Ready, then hears its
//! assignments (the full set, then changes), with the data of the secrets and configs those
//! tasks use, its role, the manager list, and log requests, until the session ends.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use swarm_model::NodeState;
use swarm_model::NodeStatus;
use swarm_model::Object;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::new_id;
use swarm_net::pace::Pacer;
use swarm_protocol::dispatcher::FileData;
use swarm_protocol::dispatcher::FileKind;
use swarm_protocol::dispatcher::SessionMessage;
use swarm_protocol::dispatcher::SessionRequest;
use swarm_protocol::dispatcher::frame;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::time::Instant;

use super::DispatchError;
use super::Dispatcher;
use super::directory::node_directory;
use super::heartbeat_period;
use super::no_session;
use super::peers::peers_for;
use super::reconnect_grace;
use super::silence_limit;
use crate::store::Event;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

/// How long one message to a node may wait for the node to read: the node's stream is bounded,
/// so a node that stops reading would otherwise hold its session (and the store events queued
/// for it) forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing a new session's Ready may take beyond the heartbeat deadline before the
/// session counts as silent; a node gives up on an open that takes longer anyway.
const OPEN_WRITE_LIMIT: Duration = Duration::from_secs(10);

/// The frames of a session, as the node reads them.
pub type SessionStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A live session, as the dispatcher keeps it.
pub(super) struct SessionEntry {
    pub(super) id: String,
    pub(super) deadline: Instant,
    pub(super) cancel: watch::Sender<bool>,
    /// Messages for the node that do not come from the store (log requests).
    pub(super) extra: mpsc::Sender<SessionMessage>,
    /// The node's end of the stream is gone: heartbeats on it are refused, and the entry only
    /// waits out [`reconnect_grace`] for a new session.
    pub(super) closed: bool,
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

/// A task as its node gets it: without a log driver of its own, it gets the cluster's default
/// (`TaskDefaults.LogDriver`), as Swarm gives it; without either, the engine's default applies.
fn as_sent(s: &StoreState, mut task: Task) -> Task {
    if task.spec.log_driver.is_none() {
        task.spec.log_driver = s.cluster().and_then(|c| c.spec.task_defaults.log_driver.clone());
    }
    task
}

/// Whether an event can change some node's overlay peers or service directory: a task,
/// service, node or network changed.
fn touches_peers(e: &Event) -> bool {
    match e {
        Event::Create(o) | Event::Delete(o) | Event::Update { new: o, .. } => {
            matches!(
                o,
                Object::Task(_) | Object::Service(_) | Object::Node(_) | Object::Network(_)
            )
        }
        Event::Restored { .. } => true,
        Event::Commit { .. } => false,
    }
}

/// The tasks a node is told about: those assigned to it.
fn assigned_to(t: &Task, node_id: &str) -> bool {
    t.node_id == node_id && t.status.state >= TaskState::Assigned
}

impl Dispatcher {
    /// Opens a session for `node_id`: marks the node Ready with its description, then streams
    /// its assignments (the full set, then changes) until the session ends.
    pub async fn open_session(
        self: &Arc<Self>,
        node_id: &str,
        remote_ip: String,
        req: SessionRequest,
    ) -> Result<SessionStream, DispatchError> {
        self.check_leading()?;
        let (node, period) = self
            .store
            .view(|s| (s.nodes.get(node_id).cloned(), heartbeat_period(s)));
        let node = node.ok_or_else(|| DispatchError::UnknownNode(node_id.to_string()))?;
        let mut description = req.description;
        description.tls_info = node.description.tls_info.clone();
        let status = NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: remote_ip,
        };

        // The session is in the map before the node is marked Ready, so the heartbeat check never
        // takes the node for silent between that write and the session: its Down would land
        // after the Ready and stick until the next heartbeat. The entry may wait for the write.
        let session_id = new_id();
        let (cancel_tx, mut cancel) = watch::channel(false);
        let (extra_tx, mut extra_rx) = mpsc::channel::<SessionMessage>(16);
        let replaced = self.lock_sessions().insert(
            node_id.to_string(),
            SessionEntry {
                id: session_id.clone(),
                deadline: Instant::now() + silence_limit(period) + OPEN_WRITE_LIMIT,
                cancel: cancel_tx,
                extra: extra_tx,
                closed: false,
            },
        );
        if let Some(old) = replaced {
            let _ = old.cancel.send(true);
        }
        let written = self
            .committer
            .propose_as_leader(vec![Transaction::one(StoreAction::NodeStatus {
                id: node_id.to_string(),
                status,
                description: Some(description),
            })])
            .await;
        {
            let mut sessions = self.lock_sessions();
            let ours = sessions.get_mut(node_id).filter(|s| s.id == session_id);
            match (written, ours) {
                (Ok(_), Some(entry)) => entry.deadline = Instant::now() + silence_limit(period),
                (Ok(_), None) => return Err(no_session(node_id, &session_id)),
                (Err(e), ours) => {
                    if ours.is_some() {
                        sessions.remove(node_id);
                    }
                    return Err(e.into());
                }
            }
        }
        tracing::info!(%node_id, %session_id, "node session opened");

        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let me = self.clone();
        let node_id = node_id.to_string();
        tokio::spawn(async move {
            // A node that stops reading must not hold this task: a send also ends on cancel.
            let cancel_send = cancel.clone();
            let send = |msg: SessionMessage| {
                let tx = tx.clone();
                let node_for_log = node_id.clone();
                let mut cancelled = cancel_send.clone();
                async move {
                    match frame(&msg) {
                        Ok(bytes) => tokio::select! {
                            r = tx.send(Ok(Bytes::from(bytes))) => r.is_ok(),
                            _ = cancelled.wait_for(|c| *c) => false,
                            // A node that reads nothing for this long is dropped; it resyncs
                            // with a new session when it comes back.
                            _ = tokio::time::sleep(SEND_TIMEOUT) => {
                                tracing::warn!(node_id = %node_for_log, "the node stopped reading its session; ending it");
                                false
                            }
                        },
                        Err(_) => false,
                    }
                }
            };
            let mut managers = me.managers();
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
                    .map(|t| as_sent(s, t.clone()))
                    .collect();
                let files = files_of(s, &tasks, sent);
                (tasks, files)
            };
            let ((tasks, files), mut watcher) = me.store.view_and_watch(|s| full_set(s, &mut sent));
            let role_of = |s: &StoreState| s.nodes.get(&node_id).map(|n| (n.spec.role, n.raft_id));
            let mut role = me.store.view(role_of);
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
            // Always, even empty: the node may still hold the set of an earlier session.
            let (mut peers, mut directory) = me.store.view(|s| (peers_for(s, &node_id), node_directory(s, &node_id)));
            alive = alive
                && send(SessionMessage::Peers {
                    peers: peers.iter().cloned().collect(),
                })
                .await
                && send(SessionMessage::Directory {
                    records: directory.0.clone(),
                    ingress: directory.1.clone().map(Box::new),
                })
                .await;
            // Raft membership changes are not store events: look at the managers on every
            // wake-up and at least every 5 s, so a node learns of new managers before it needs
            // them (a demoted leader's agent must find the next leader).
            let mut pacer = Pacer::new(super::BATCH_WINDOW);
            let mut managers_tick = tokio::time::interval(Duration::from_secs(5));
            managers_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while alive {
                let now = me.managers();
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
                let mut peers_may_change = false;
                tokio::select! {
                    batch = watcher.next() => {
                        let Some(first) = batch else { break };
                        // Gather a burst of changes into one message. Only changes that concern
                        // this node count against its pacing: the writes before an assignment
                        // (the service, its new tasks) must not hold back the assignment itself.
                        let concerns_node = |e: &Event| match e {
                            Event::Create(Object::Task(t)) | Event::Update { new: Object::Task(t), .. } => {
                                assigned_to(t, &node_id)
                            }
                            Event::Delete(Object::Task(t)) => t.node_id == node_id,
                            Event::Update { new: Object::Node(n), .. } => n.id == node_id,
                            Event::Restored { .. } => true,
                            other => touches_peers(other),
                        };
                        if first.iter().any(concerns_node) {
                            pacer.ready().await;
                        }
                        let mut batches = vec![first];
                        while let Some(b) = watcher.try_next() {
                            batches.push(b);
                        }
                        for b in batches {
                            for e in b.iter() {
                                peers_may_change |= touches_peers(e);
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
                                    Event::Restored { .. } => {
                                        full_again = true;
                                        peers_may_change = true;
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                    _ = cancel.changed() => break,
                    // The node's end is gone: a killed process closes its connection at once.
                    _ = tx.closed() => break,
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
                    let now = me.store.view(role_of);
                    role_changed |= now != role;
                    role = now;
                }
                if role_changed && let Some((r, raft_id)) = role {
                    alive = send(SessionMessage::Role { role: r, raft_id }).await;
                    if !alive {
                        break;
                    }
                }
                // The directory goes first: a task told to stop leaves every rotation before its
                // node gets the order to stop it.
                if peers_may_change {
                    let (now_peers, now_directory) =
                        me.store.view(|s| (peers_for(s, &node_id), node_directory(s, &node_id)));
                    if now_directory != directory {
                        directory = now_directory;
                        alive = send(SessionMessage::Directory {
                            records: directory.0.clone(),
                            ingress: directory.1.clone().map(Box::new),
                        })
                        .await;
                    }
                    if alive && now_peers != peers {
                        peers = now_peers;
                        alive = send(SessionMessage::Peers {
                            peers: peers.iter().cloned().collect(),
                        })
                        .await;
                    }
                    if !alive {
                        break;
                    }
                }
                if full_again {
                    let (tasks, files) = me.store.view(|s| full_set(s, &mut sent));
                    alive = send(SessionMessage::Assignments {
                        full: true,
                        tasks,
                        removed: Vec::new(),
                        files,
                    })
                    .await;
                } else if !updated.is_empty() || !removed.is_empty() {
                    let (tasks, files) = me.store.view(|s| {
                        let tasks: Vec<Task> = updated.into_values().map(|t| as_sent(s, t)).collect();
                        let files = files_of(s, &tasks, &mut sent);
                        (tasks, files)
                    });
                    alive = send(SessionMessage::Assignments {
                        full: false,
                        tasks,
                        removed: removed.into_iter().collect(),
                        files,
                    })
                    .await;
                }
            }
            // Still ours, so not replaced or expired: the stream closed, or the node stopped
            // reading. A live node opens a new session within the grace; the heartbeat check
            // marks a dead one Down when it runs out.
            if let Some(entry) = me.lock_sessions().get_mut(&node_id).filter(|s| s.id == session_id) {
                entry.closed = true;
                entry.deadline = entry.deadline.min(Instant::now() + reconnect_grace(period));
            }
            tracing::info!(%node_id, %session_id, "node session closed");
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use swarm_model::Cluster;
    use swarm_model::Driver;
    use swarm_model::StoreObject;
    use swarm_model::Task;

    use super::*;
    use crate::store::testing::store_with;

    fn driver(name: &str) -> Option<Driver> {
        Some(Driver {
            name: name.to_string(),
            options: Some([("max-size".to_string(), "1m".to_string())].into_iter().collect()),
        })
    }

    fn sent(task_driver: Option<Driver>, default: Option<Driver>) -> Option<Driver> {
        let mut cluster = Cluster {
            id: "c".into(),
            ..Default::default()
        };
        cluster.spec.task_defaults.log_driver = default;
        let store = store_with(vec![cluster.into_object()]);
        let mut task = Task::default();
        task.spec.log_driver = task_driver;
        store.view(|s| as_sent(s, task)).spec.log_driver
    }

    #[test]
    fn a_task_gets_its_own_log_driver_then_the_clusters_then_none() {
        assert_eq!(sent(driver("json-file"), driver("local")), driver("json-file"));
        assert_eq!(sent(None, driver("local")), driver("local"));
        assert_eq!(sent(None, None), None);
    }
}
