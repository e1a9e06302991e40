//! [`RaftNode`]: the narrow interface the rest of swarm-rs uses instead of openraft. Opening,
//! status and shutdown are here; writes in [`propose`], membership in [`membership`], both
//! routed to the leader by [`route`], and what other managers send in [`rpc`].

mod error;
mod membership;
mod propose;
mod read;
mod route;
mod rpc;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use error::MembershipError;
pub use error::ProposeError;
pub use error::ReadError;
pub use membership::MembershipChange;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use openraft::async_runtime::WatchReceiver;
use serde::Deserialize;
use serde::Serialize;
use swarm_sync::lock;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::log_store::LogOwner;
use crate::log_store::LogStore;
use crate::log_store::LogWriteStats;
use crate::network::NetworkFactory;
use crate::network::Transport;
use crate::sealing::DataKey;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::App;
use crate::state_machine::StateMachineStore;
use crate::types::ManagerAddr;
use crate::types::RaftId;
use crate::types::TypeConfig;

type Raft<A> = openraft::Raft<TypeConfig, StateMachineStore<A>>;

/// Timing of one manager's raft node.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Every proposal has this deadline; past it the caller gets "no quorum / no leader".
    pub propose_timeout: Duration,
    /// Deadline for streaming and installing one snapshot.
    pub snapshot_timeout: Duration,
    /// Deadline for a joining manager to catch up before it is made a voter.
    pub catch_up_timeout: Duration,
    /// The log must already exist (its owner record must be found): a manager that has been a
    /// raft member must never start over with an empty log, which would forget its votes.
    pub existing_log: bool,
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            // openraft elects after `election_timeout_max` (its fixed leader lease) plus a
            // random timeout in [min, max): 3–4 s of silence from the leader. 300–400 ms
            // (elections after 700–800 ms, failover in 0.8 s) saw no spurious election in
            // 5 minutes at 900 writes/s, but with 1,000 simulated nodes and 100,000 tasks on
            // 2 cores the managers starved each other and elected dozens of times a minute.
            // docs/benchmarks.md has both runs; a raft core on its own thread is the next step.
            heartbeat_interval: Duration::from_millis(200),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            propose_timeout: Duration::from_secs(5),
            snapshot_timeout: Duration::from_secs(120),
            catch_up_timeout: Duration::from_secs(120),
            existing_log: false,
        }
    }
}

impl RaftConfig {
    /// How recent a voter's acknowledgement must be for it to count as healthy: twice the
    /// longest election timeout, and never under 2 s, so that a leader on busy cores does not
    /// drop its leader-only duties, or count a voter lost, over one slow round trip.
    pub fn quorum_ack_window(&self) -> Duration {
        (self.election_timeout_max * 2).max(Duration::from_secs(2))
    }
}

/// Why [`RaftNode::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Storage(#[from] io::Error),
    #[error("invalid raft timing: {0}")]
    Config(String),
    #[error("cannot start raft: {0}")]
    Start(String),
}

/// A committed and applied proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposed {
    /// The raft log index of the entry; the application uses it as the version of what changed.
    pub index: u64,
    /// What the application's state machine returned.
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
}

/// A point-in-time view of this node's raft state, for `/info`, `node ls` and tests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RaftStatus {
    pub id: RaftId,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: String,
    pub leader: Option<RaftId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    /// The term of the last applied entry: with `applied`, the entry's identity, which must be
    /// the same on every manager that applied it (the fault suite checks that committed entries
    /// never change).
    #[serde(default)]
    pub applied_term: Option<u64>,
    pub snapshot: Option<u64>,
    pub purged: Option<u64>,
    pub voters: BTreeMap<RaftId, ManagerAddr>,
    pub learners: BTreeMap<RaftId, ManagerAddr>,
    /// Milliseconds since a quorum last acknowledged this leader; only on the leader.
    pub millis_since_quorum_ack: Option<u64>,
    /// Log entries written and fsyncs taken by this process: many entries per fsync means
    /// concurrent proposals were group-committed. Only filled by [`RaftNode::detailed_status`].
    #[serde(default)]
    pub log_writes: LogWriteStats,
}

impl RaftStatus {
    pub fn leader_addr(&self) -> Option<&ManagerAddr> {
        let leader = self.leader?;
        self.voters.get(&leader).or_else(|| self.learners.get(&leader))
    }

    pub fn is_leader(&self) -> bool {
        self.state == "leader"
    }
}

/// When to snapshot and how much log to keep behind a snapshot; the application sets it from
/// its replicated cluster settings.
#[derive(Debug)]
struct LogPolicy {
    snapshot_interval: AtomicU64,
    keep_entries: AtomicU64,
}

/// One manager's raft node.
pub struct RaftNode<A: App> {
    id: RaftId,
    raft: Raft<A>,
    transport: Arc<dyn Transport>,
    config: RaftConfig,
    snapshots: SnapshotStore,
    applied: watch::Receiver<u64>,
    membership_lock: tokio::sync::Mutex<()>,
    policy: Arc<LogPolicy>,
    recovered_commit: Option<u64>,
    /// Our handle on the log, for statistics; released at shutdown so the WAL closes.
    log: std::sync::Mutex<Option<LogStore>>,
}

impl<A: App> RaftNode<A> {
    /// Opens the raft state in `dir` (`log/` and `snapshots/`, sealed with `data_key`) and starts
    /// the node. The
    /// application is restored from the newest snapshot, then openraft re-applies the log up to
    /// the committed index that was persisted before the last shutdown or crash.
    pub async fn open(
        dir: &Path,
        owner: LogOwner,
        data_key: &DataKey,
        app: Arc<A>,
        transport: Arc<dyn Transport>,
        config: RaftConfig,
    ) -> Result<Self, OpenError> {
        let log = LogStore::open(&dir.join("log"), &owner, config.existing_log, data_key).await?;
        let recovered_commit = log.committed_index();
        let snapshots = SnapshotStore::new(&dir.join("snapshots"), data_key)?;
        let sm = StateMachineStore::open(app, snapshots.clone())?;
        let applied = sm.applied_index();
        // A log purged past the newest snapshot means entries are gone that no snapshot holds:
        // starting would silently lose state, so refuse.
        if let Some(purged) = log.purged_index() {
            let covered = *applied.borrow();
            if covered < purged {
                return Err(OpenError::Storage(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the raft log in {} is purged up to index {purged}, but the newest snapshot in {} only \
                         covers index {covered}: the snapshot is missing or old, and committed state would be lost",
                        dir.join("log").display(),
                        dir.join("snapshots").display()
                    ),
                )));
            }
        }

        let raft_config = openraft::Config {
            cluster_name: "swarm-rs".to_string(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: config.election_timeout_min.as_millis() as u64,
            election_timeout_max: config.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: config.snapshot_timeout.as_millis() as u64,
            // Snapshots and purges are driven by `run_log_policy` from the cluster settings.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            enable_pre_vote: Some(true),
            // A leader sends entries before its own write of them is done. If that write fails
            // (a full disk) or never reaches the disk, a leader that resumed its old term after a
            // restart would write other entries under log ids the followers already hold, and
            // the stores would part. Restarted, it must win a new term, as in etcd's raft.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
        .validate()
        .map_err(|e| OpenError::Config(e.to_string()))?;

        let network = NetworkFactory {
            transport: transport.clone(),
        };
        let raft = openraft::Raft::new(owner.raft_id, Arc::new(raft_config), network, log.clone(), sm)
            .await
            .map_err(|e| OpenError::Start(e.to_string()))?;
        // openraft starts with blank metrics (term 0, nothing applied) until its core has
        // loaded the state and reported it: a status served before would show the term and
        // applied index going back (seed 909357675). Wait for that first report.
        let mut metrics = raft.metrics();
        if !matches!(
            tokio::time::timeout(Duration::from_secs(5), metrics.changed()).await,
            Ok(Ok(()))
        ) {
            tracing::warn!("raft has not reported its state 5 s after it started");
        }

        let policy = Arc::new(LogPolicy {
            snapshot_interval: AtomicU64::new(10_000),
            keep_entries: AtomicU64::new(500),
        });
        tokio::spawn(run_log_policy(raft.clone(), policy.clone()));

        Ok(Self {
            id: owner.raft_id,
            raft,
            transport,
            config,
            snapshots,
            applied,
            membership_lock: tokio::sync::Mutex::new(()),
            policy,
            recovered_commit,
            log: std::sync::Mutex::new(Some(log)),
        })
    }

    pub fn id(&self) -> RaftId {
        self.id
    }

    /// Resolves when raft stopped by itself, with the reason: a storage error (a full disk, say)
    /// stops openraft for good, while the process around it would go on serving. Never
    /// resolves for a stop asked with [`RaftNode::shutdown`].
    pub async fn stopped_by_fault(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_watched().running_state
                && !matches!(fatal, openraft::errors::Fatal::Stopped)
            {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Waits until the state machine has re-applied everything that was committed before the
    /// restart, so reads never go back in time. Returns false on timeout.
    pub async fn wait_for_local_recovery(&self, timeout: Duration) -> bool {
        match self.recovered_commit {
            None => true,
            Some(index) => self.wait_applied(index, Instant::now() + timeout).await,
        }
    }

    /// Whether this node has ever been part of a cluster (has a log or a vote).
    pub async fn is_initialized(&self) -> Result<bool, ProposeError> {
        self.raft
            .is_initialized()
            .await
            .map_err(|e| ProposeError::Stopped(e.to_string()))
    }

    /// Makes this node the single voter of a new cluster.
    pub async fn bootstrap(&self, me: ManagerAddr) -> Result<(), ProposeError> {
        let mut members = BTreeMap::new();
        members.insert(self.id, me);
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ProposeError::Stopped(e.to_string()))
    }

    /// Sets when to snapshot (every `snapshot_interval` applied entries, 0 = never) and how many
    /// entries to keep behind a snapshot for slow followers.
    pub fn set_log_policy(&self, snapshot_interval: u64, keep_entries: u64) {
        self.policy
            .snapshot_interval
            .store(snapshot_interval, Ordering::Relaxed);
        self.policy.keep_entries.store(keep_entries, Ordering::Relaxed);
    }

    /// Asks for a snapshot now, whatever the policy says.
    pub async fn trigger_snapshot(&self) -> Result<(), ProposeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ProposeError::Stopped(e.to_string()))
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voter_ids: BTreeSet<RaftId> = membership.voter_ids().collect();
        let mut voters = BTreeMap::new();
        let mut learners = BTreeMap::new();
        for (id, node) in membership.nodes() {
            if voter_ids.contains(id) {
                voters.insert(*id, node.clone());
            } else {
                learners.insert(*id, node.clone());
            }
        }
        let state = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        RaftStatus {
            id: self.id,
            state: state.to_string(),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed: m.local_committed.as_ref().map(|l| l.index),
            applied: m.last_applied.as_ref().map(|l| l.index),
            applied_term: m.last_applied.as_ref().map(|l| l.leader_id.term),
            snapshot: m.snapshot.as_ref().map(|l| l.index),
            purged: m.purged.as_ref().map(|l| l.index),
            voters,
            learners,
            millis_since_quorum_ack: m
                .last_quorum_acked
                .as_ref()
                .map(|at| openraft::Instant::elapsed(&**at).as_millis() as u64),
            log_writes: LogWriteStats::default(),
        }
    }

    /// [`RaftNode::status`] plus the log's write statistics (takes the log lock; not for hot paths).
    pub fn detailed_status(&self) -> RaftStatus {
        let mut s = self.status();
        let log = lock(&self.log).clone();
        if let Some(log) = log {
            s.log_writes = log.write_stats();
        }
        s
    }

    /// Whether this node leads with a quorum behind it: it is leader and a majority acknowledged
    /// it within [`RaftConfig::quorum_ack_window`] (a single voter is its own quorum). openraft
    /// keeps an isolated leader in the Leader state, so leader-only duties check this instead.
    pub fn leads_with_quorum(&self) -> bool {
        let s = self.status();
        // A leader outside the voters (it just removed itself) no longer leads the cluster's
        // work, even while raft still names it.
        if !s.is_leader() || !s.voters.contains_key(&self.id) {
            return false;
        }
        if s.voters.len() <= 1 {
            return true;
        }
        let lease = self.config.quorum_ack_window().as_millis() as u64;
        s.millis_since_quorum_ack.is_some_and(|ms| ms <= lease)
    }

    /// Waits until this node has applied `index`. Returns false if `deadline` passes first.
    pub async fn wait_applied(&self, index: u64, deadline: Instant) -> bool {
        let mut rx = self.applied.clone();
        let wait = rx.wait_for(|applied| *applied >= index);
        matches!(tokio::time::timeout_at(deadline, wait).await, Ok(Ok(_)))
    }

    /// The index this node has applied up to.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Stops raft and closes the log. Pending proposals fail with [`ProposeError::Stopped`];
    /// once this returns, the log's directory can be removed or opened again.
    pub async fn shutdown(&self) {
        // After a storage fault openraft may have panicked in a request handler while its core
        // quit, poisoning a lock that its shutdown then unwraps (seed 235059859). Raft is dead
        // by then: shut it down on a task of its own, so such a panic ends that task, not the
        // daemon, and the log is still closed.
        let raft = self.raft.clone();
        match tokio::spawn(async move { raft.shutdown().await }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "raft shutdown reported an error"),
            Err(e) => tracing::error!(error = %e, "raft shutdown panicked inside openraft; going on without it"),
        }
        let log = lock(&self.log).take();
        if let Some(log) = log
            && !log.close(Duration::from_secs(10)).await
        {
            tracing::warn!("raft log still in use 10s after raft stopped; it closes when the last task ends");
        }
    }
}

/// Triggers snapshots every `snapshot_interval` applied entries and purges the log behind each
/// snapshot, keeping `keep_entries` for followers that lag a little.
async fn run_log_policy<A: App>(raft: Raft<A>, policy: Arc<LogPolicy>) {
    let mut metrics = raft.metrics();
    let mut last_trigger: Option<(u64, Instant)> = None;
    let mut purge_requested = 0u64;
    loop {
        let changed = tokio::time::timeout(Duration::from_millis(500), metrics.changed()).await;
        if let Ok(Err(_)) = changed {
            return; // raft stopped
        }
        let m = metrics.borrow_watched().clone();
        if m.state == ServerState::Shutdown {
            return;
        }
        let applied = m.last_applied.as_ref().map(|l| l.index).unwrap_or(0);
        let snapshot = m.snapshot.as_ref().map(|l| l.index).unwrap_or(0);
        let purged = m.purged.as_ref().map(|l| l.index).unwrap_or(0);
        let interval = policy.snapshot_interval.load(Ordering::Relaxed);
        if interval > 0 && applied >= snapshot + interval {
            let recently = last_trigger
                .map(|(at_snapshot, when)| at_snapshot == snapshot && when.elapsed() < Duration::from_secs(10))
                .unwrap_or(false);
            if !recently {
                tracing::debug!(applied, snapshot, interval, "triggering snapshot");
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                last_trigger = Some((snapshot, Instant::now()));
            }
        }
        let keep = policy.keep_entries.load(Ordering::Relaxed);
        let upto = snapshot.saturating_sub(keep);
        if snapshot > 0 && upto > purged && upto > purge_requested {
            if raft.trigger().purge_log(upto).await.is_err() {
                return;
            }
            purge_requested = upto;
        }
    }
}
