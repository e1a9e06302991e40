//! The dispatcher, on the leader: one long-lived session per node pushing its assignments
//! ([`session`]), heartbeats kept in memory (a node is Down after three missed periods), task
//! status reports written to raft in batches, and log subscriptions ([`logbroker`]).

pub mod directory;
mod logbroker;
pub mod peers;
mod session;
#[cfg(test)]
mod write_order_tests;

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use swarm_model::NodeState;
use swarm_model::NodeStatus;
use swarm_model::TaskStatus;
use swarm_net::pace::Pacer;
use swarm_protocol::dispatcher::LogBatch;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogOptions;
use swarm_raft::RaftNode;
use swarm_sync::lock;
use tokio::sync::Notify;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::time::Instant;

use self::logbroker::LogBroker;
use self::session::SessionEntry;
pub use self::session::SessionStream;
use crate::commit::CommitError;
use crate::commit::Committer;
use crate::store::Store;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Transaction;

/// How long a node, which beats once per heartbeat period (Swarm's `--dispatcher-heartbeat`,
/// 1 s by default), may stay silent before the heartbeat check marks it Down. Beating twice per
/// period and Down after 1.5 periods was tried: with 1,000 simulated nodes and 100,000 tasks on
/// 2 cores it marked hundreds of live nodes Down (docs/benchmarks.md). A killed node is found
/// sooner anyway: its connection closes (see [`reconnect_grace`]).
pub(crate) fn silence_limit(period: Duration) -> Duration {
    period * 3
}

/// How long a node whose session stream closed (its process died, or the connection broke)
/// has to open a new one before it is marked Down.
pub(crate) fn reconnect_grace(period: Duration) -> Duration {
    period / 2
}

/// At most one raft write of status reports, and one assignments message per node, per
/// window; a lone change goes at once (see [`Pacer`]).
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How often the leader looks for silent nodes (and flushes status reports if none woke it).
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// After a leader change, nodes get this many periods to open a session with the new leader.
const FAILOVER_GRACE_PERIODS: u32 = 6;
/// Largest number of status updates written in one raft entry.
const STATUS_BATCH: usize = 1000;

/// Why the dispatcher did not do what a node asked.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Only the leader dispatches; `leader` is where the node should go, if known.
    #[error("this manager is not the leader; open the session with the leader")]
    NotLeader { leader: Option<String> },
    #[error("node {0} is not registered in this cluster")]
    UnknownNode(String),
    #[error("session {session_id} of node {node_id} not found; open a new session")]
    NoSession { node_id: String, session_id: String },
    #[error("the log subscription has ended")]
    SubscriptionEnded,
    #[error("node {node_id} sent output of task {task_id}, which this subscription did not ask it for")]
    NotItsTask { node_id: String, task_id: String },
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// The longest status message or error a node may report: it is replicated through raft and
/// kept with the task, so a node must not be able to store megabytes per task.
pub const MAX_STATUS_TEXT: usize = 4096;

/// Cuts `text` to [`MAX_STATUS_TEXT`] bytes at a character boundary, saying so.
fn cap_text(text: &mut String) {
    if text.len() <= MAX_STATUS_TEXT {
        return;
    }
    let mut end = MAX_STATUS_TEXT - 20;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(" … (truncated)");
}

fn no_session(node_id: &str, session_id: &str) -> DispatchError {
    DispatchError::NoSession {
        node_id: node_id.to_string(),
        session_id: session_id.to_string(),
    }
}

/// The dispatcher of one manager; it serves sessions only while that manager leads.
pub struct Dispatcher {
    store: Arc<Store>,
    raft: Arc<RaftNode<Store>>,
    committer: Arc<Committer>,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    active: AtomicBool,
    queue: Mutex<Vec<(String, TaskStatus)>>,
    queued: Notify,
    logs: LogBroker,
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

impl Dispatcher {
    pub fn new(store: Arc<Store>, raft: Arc<RaftNode<Store>>, committer: Arc<Committer>) -> Self {
        Self {
            store,
            raft,
            committer,
            sessions: Mutex::default(),
            active: AtomicBool::new(false),
            queue: Mutex::default(),
            queued: Notify::new(),
            logs: LogBroker::default(),
        }
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        lock(&self.sessions)
    }

    /// The answer for a node that reached a manager which is not the leader (or is, but not yet
    /// or no longer dispatching): where the leader is, if known.
    pub fn not_leader(&self) -> DispatchError {
        DispatchError::NotLeader {
            leader: self.raft.status().leader_addr().map(|a| a.addr.clone()),
        }
    }

    fn check_leading(&self) -> Result<(), DispatchError> {
        if self.active.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(self.not_leader())
        }
    }

    /// `(node ID, address)` of every voting manager, for nodes to reconnect elsewhere.
    fn managers(&self) -> Vec<(String, String)> {
        self.raft
            .status()
            .voters
            .values()
            .map(|a| (a.node_id.clone(), a.addr.clone()))
            .collect()
    }

    /// Asks the nodes running `tasks` (by node) for their output. Lines arrive on the returned
    /// channel until every node is done (or, following, until the reader drops it). Tasks on
    /// nodes without a session are skipped.
    pub async fn subscribe_logs(
        &self,
        tasks: HashMap<String, Vec<String>>,
        options: LogOptions,
    ) -> Result<mpsc::Receiver<LogLine>, DispatchError> {
        self.check_leading()?;
        let targets = {
            let sessions = self.lock_sessions();
            tasks
                .into_iter()
                .filter_map(|(node, ids)| sessions.get(&node).map(|s| (node, s.extra.clone(), ids)))
                .collect()
        };
        Ok(self.logs.subscribe(targets, options).await)
    }

    /// Lines a node sent for a subscription. [`DispatchError::SubscriptionEnded`] once nobody
    /// reads it any more (or the node's session is not the one it was asked on), so the node
    /// stops.
    pub async fn publish_logs(&self, node_id: &str, batch: LogBatch) -> Result<(), DispatchError> {
        if self
            .lock_sessions()
            .get(node_id)
            .is_none_or(|s| s.id != batch.session_id)
        {
            return Err(DispatchError::SubscriptionEnded);
        }
        self.logs.publish(node_id, batch).await
    }

    /// Records a heartbeat; returns the period the node should keep. A node the store still
    /// shows as Down (a race with the heartbeat check) is marked Ready again. `key` is the key
    /// of the certificate the node used: once it uses a renewed one, that is the key a rejoin
    /// must prove (recorded on use, not on issue, so a node that never got its renewal can
    /// still rejoin with the key it has).
    pub async fn heartbeat(
        &self,
        node_id: &str,
        session_id: &str,
        key: Option<String>,
    ) -> Result<Duration, DispatchError> {
        self.check_leading()?;
        let (period, status, recorded) = self.store.view(|s| {
            let node = s.nodes.get(node_id);
            (
                heartbeat_period(s),
                node.map(|n| n.status.clone()),
                node.and_then(|n| n.certificate_key.clone()),
            )
        });
        {
            let mut sessions = self.lock_sessions();
            match sessions.get_mut(node_id) {
                Some(s) if s.id == session_id && !s.closed => s.deadline = Instant::now() + silence_limit(period),
                _ => return Err(no_session(node_id, session_id)),
            }
        }
        if let Some(key) = key.filter(|k| recorded.as_ref() != Some(k)) {
            self.committer
                .propose_as_leader(vec![Transaction::one(StoreAction::NodeCertificate {
                    id: node_id.to_string(),
                    key,
                })])
                .await?;
        }
        if status.is_some_and(|st| st.state == NodeState::Down) {
            self.ready_again(&[node_id.to_string()]).await?;
        }
        Ok(period)
    }

    /// Queues task status reports from a node's session; they are written in batches.
    pub fn report(
        &self,
        node_id: &str,
        session_id: &str,
        updates: Vec<(String, TaskStatus)>,
    ) -> Result<(), DispatchError> {
        self.check_leading()?;
        if self.lock_sessions().get(node_id).is_none_or(|s| s.id != session_id) {
            return Err(no_session(node_id, session_id));
        }
        // Statuses carry this manager's clock, not the node's: delays, monitor periods and
        // restart windows are all measured on managers. A report that changes nothing (a new
        // session repeats every status) is dropped.
        let now = swarm_model::Timestamp::now();
        let mine: Vec<(String, TaskStatus)> = self.store.view(|s| {
            updates
                .into_iter()
                .filter_map(|(id, mut status)| {
                    // Only the node's own tasks: another node's report is dropped.
                    let t = s.tasks.get(&id).filter(|t| t.node_id == node_id)?;
                    cap_text(&mut status.message);
                    cap_text(&mut status.err);
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
        self.logs.clear();
        lock(&self.queue).clear();
    }

    /// The leader-side loop: marks nodes Down when their heartbeats stop, and flushes status
    /// reports to raft in batches.
    pub async fn run_leader(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        self.active.store(true, Ordering::Relaxed);
        let mut unseen_since: HashMap<String, Instant> = HashMap::new();
        let mut last_check = Instant::now();
        let mut pacer = Pacer::new(BATCH_WINDOW);
        loop {
            let reports = tokio::select! {
                _ = self.queued.notified() => true,
                _ = tokio::time::sleep(CHECK_EVERY) => false,
                _ = stop.wait_for(|s| *s) => break,
            };
            if reports {
                pacer.ready().await;
            }
            self.flush_statuses().await;
            // A check that comes late means this manager was stalled (busy cores, a slow
            // write): the silence it saw meanwhile may be its own, so deadlines move by as much.
            let late = last_check.elapsed().saturating_sub(CHECK_EVERY + BATCH_WINDOW);
            if late > CHECK_EVERY {
                tracing::debug!(
                    late_ms = late.as_millis() as u64,
                    "heartbeat check ran late; extending deadlines"
                );
                for s in self.lock_sessions().values_mut() {
                    s.deadline += late;
                }
            }
            self.check_heartbeats(&mut unseen_since).await;
            last_check = Instant::now();
        }
        self.active.store(false, Ordering::Relaxed);
    }

    async fn flush_statuses(&self) {
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
        if let Err(e) = self.committer.commit_chunked("dispatcher", txs).await {
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

    async fn check_heartbeats(&self, unseen_since: &mut HashMap<String, Instant>) {
        let now = Instant::now();
        let period = self.store.view(heartbeat_period);
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
            self.logs.node_gone(n);
        }
        let with_session: HashSet<String> = self.lock_sessions().keys().cloned().collect();
        let silent: Vec<(String, NodeStatus)> = self.store.view(|s| {
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
        self.mark_down(down).await;
    }

    /// Marks `down` Down, then Ready again those that opened a session while that was being
    /// written: their session's Ready may have landed first.
    async fn mark_down(&self, down: Vec<(String, NodeStatus)>) {
        if down.is_empty() {
            return;
        }
        let ids: Vec<String> = down.iter().map(|(id, _)| id.clone()).collect();
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
        if let Err(e) = self.committer.commit_chunked("dispatcher", txs).await {
            tracing::warn!(error = %e, "cannot mark nodes down");
        }
        let reopened: Vec<String> = {
            let sessions = self.lock_sessions();
            ids.into_iter().filter(|id| sessions.contains_key(id)).collect()
        };
        if let Err(e) = self.ready_again(&reopened).await {
            tracing::warn!(error = %e, "cannot mark nodes with a new session ready");
        }
    }

    /// Marks Ready those of `ids` that the store shows as Down: they hold a session.
    async fn ready_again(&self, ids: &[String]) -> Result<(), DispatchError> {
        let txs: Vec<Transaction> = self.store.view(|s| {
            ids.iter()
                .filter_map(|id| s.nodes.get(id))
                .filter(|n| n.status.state == NodeState::Down)
                .map(|n| {
                    Transaction::one(StoreAction::NodeStatus {
                        id: n.id.clone(),
                        status: NodeStatus {
                            state: NodeState::Ready,
                            message: String::new(),
                            addr: n.status.addr.clone(),
                        },
                        description: None,
                    })
                })
                .collect()
        });
        if !txs.is_empty() {
            self.committer.commit_chunked("dispatcher", txs).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts_are_capped_at_a_character_boundary() {
        let mut short = "exit 1".to_string();
        cap_text(&mut short);
        assert_eq!(short, "exit 1");
        let mut long = "é".repeat(MAX_STATUS_TEXT);
        cap_text(&mut long);
        assert!(long.len() <= MAX_STATUS_TEXT, "{}", long.len());
        assert!(long.ends_with("(truncated)"));
    }
}
