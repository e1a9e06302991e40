//! [`RaftNode`]: the narrow interface the rest of swarm-rs uses instead of openraft.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::ServerState;
use openraft::SnapshotPolicy;
use openraft::alias::SnapshotOf;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use serde::Deserialize;
use serde::Serialize;
use swarm_sync::lock;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::codec;
use crate::log_store::LogOwner;
use crate::log_store::LogStore;
use crate::log_store::LogWriteStats;
use crate::network::NetworkFactory;
use crate::network::Rpc;
use crate::network::Transport;
use crate::network::TransportError;
use crate::quorum;
use crate::snapshot_store::SnapshotFile;
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::App;
use crate::state_machine::StateMachineStore;
use crate::types::Command;
use crate::types::ManagerAddr;
use crate::types::RaftId;
use crate::types::TypeConfig;
use crate::types::Vote;

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
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(200),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            propose_timeout: Duration::from_secs(5),
            snapshot_timeout: Duration::from_secs(120),
            catch_up_timeout: Duration::from_secs(120),
        }
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

/// Why a proposal did not commit. Every variant says what the caller can conclude.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error(
        "no leader: no manager was elected leader within {waited_ms} ms; a majority of managers may be down or unreachable (no quorum)"
    )]
    NoLeader { waited_ms: u64 },
    #[error(
        "no quorum: the write was not committed within {waited_ms} ms; a majority of managers may be down or unreachable. It may still be applied if they return"
    )]
    NoQuorum { waited_ms: u64 },
    #[error("the write was discarded by a leader change; it may or may not have been applied, check before retrying")]
    Discarded,
    #[error(
        "lost the connection to the leader ({leader}) while forwarding the write: {reason}; it may or may not have been applied, check before retrying"
    )]
    LeaderUnreachable { leader: String, reason: String },
    #[error("the leader ({leader}) refused the forwarded write: {reason}")]
    LeaderRefused { leader: String, reason: String },
    #[error("raft is not running on this manager: {0}")]
    Stopped(String),
    #[error("this manager is not the raft leader")]
    NotLeader,
}

/// Why a membership change was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    #[error("{0}")]
    QuorumRisk(String),
    #[error("{0}")]
    Propose(#[from] ProposeError),
    #[error("manager {0} did not catch up with the leader in time; it stays a non-voting learner")]
    CatchUpTimeout(String),
    #[error("membership change failed: {0}")]
    Failed(String),
}

/// A membership change, as forwarded to the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a manager: first as a learner that catches up, then as a voter.
    AddManager { id: RaftId, addr: ManagerAddr },
    /// Remove a manager from the voters and from the membership.
    RemoveManager { id: RaftId },
}

#[derive(Debug, Serialize, Deserialize)]
enum ForwardError {
    NotLeader,
    Propose(ProposeError),
    Membership(MembershipError),
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
    /// Opens the raft state in `dir` (`log/` and `snapshots/`) and starts the node. The
    /// application is restored from the newest snapshot, then openraft re-applies the log up to
    /// the committed index that was persisted before the last shutdown or crash.
    pub async fn open(
        dir: &Path,
        owner: LogOwner,
        app: Arc<A>,
        transport: Arc<dyn Transport>,
        config: RaftConfig,
    ) -> Result<Self, OpenError> {
        let log = LogStore::open(&dir.join("log"), &owner).await?;
        let recovered_commit = log.committed_index();
        let snapshots = SnapshotStore::new(&dir.join("snapshots"))?;
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
    /// it within `2 × election_timeout_max` (a single voter is its own quorum). openraft keeps
    /// an isolated leader in the Leader state, so leader-only duties check this instead.
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
        let lease = (self.config.election_timeout_max * 2).as_millis() as u64;
        s.millis_since_quorum_ack.is_some_and(|ms| ms <= lease)
    }

    /// Voters that acknowledged the leader recently, including the leader. Empty on followers.
    fn healthy_voters(&self) -> BTreeSet<RaftId> {
        let m = self.raft.metrics().borrow_watched().clone();
        let mut healthy = BTreeSet::new();
        if m.state != ServerState::Leader {
            return healthy;
        }
        healthy.insert(self.id);
        let fresh = self.config.election_timeout_max * 2;
        if let Some(heartbeats) = &m.heartbeat {
            for (id, acked) in heartbeats {
                if let Some(at) = acked
                    && openraft::Instant::elapsed(&**at) <= fresh
                {
                    healthy.insert(*id);
                }
            }
        }
        healthy
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

    /// Commits a command only if this node is the leader; never forwards. Leader-side controllers
    /// use it so that a deposed leader cannot push decisions made on a stale view.
    pub async fn propose_as_leader(&self, command: Vec<u8>) -> Result<Proposed, ProposeError> {
        let start = Instant::now();
        if !self.status().is_leader() {
            return Err(ProposeError::NotLeader);
        }
        match self
            .propose_local(command, start + self.config.propose_timeout, start)
            .await
        {
            Ok(p) => Ok(p),
            Err(ForwardError::NotLeader) => Err(ProposeError::NotLeader),
            Err(ForwardError::Propose(e)) => Err(e),
            Err(ForwardError::Membership(e)) => Err(ProposeError::Stopped(e.to_string())),
        }
    }

    /// Commits a command through raft from any manager: on the leader directly, on a follower by
    /// forwarding it to the leader. Returns once the entry is committed and applied here, or
    /// fails within the proposal deadline.
    pub async fn propose(&self, command: Vec<u8>) -> Result<Proposed, ProposeError> {
        let start = Instant::now();
        let deadline = start + self.config.propose_timeout;
        let mut saw_leader = false;
        loop {
            let status = self.status();
            match status.leader {
                Some(leader) if leader == self.id && status.is_leader() => {
                    saw_leader = true;
                    match self.propose_local(command.clone(), deadline, start).await {
                        Err(ForwardError::NotLeader) => {}
                        Err(ForwardError::Propose(e)) => return Err(e),
                        Err(ForwardError::Membership(e)) => return Err(ProposeError::Stopped(e.to_string())),
                        Ok(p) => return Ok(p),
                    }
                }
                Some(_) => {
                    saw_leader = true;
                    if let Some(addr) = status.leader_addr().cloned() {
                        let body = codec::encode(&Command(command.clone()))
                            .map_err(|e| ProposeError::Stopped(e.to_string()))?;
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        match self.transport.call(&addr, Rpc::Forward, body, remaining).await {
                            Ok(bytes) => {
                                let res: Result<Proposed, ForwardError> =
                                    codec::decode(&bytes, "forwarded write result").map_err(|e| {
                                        ProposeError::LeaderUnreachable {
                                            leader: addr.to_string(),
                                            reason: e.to_string(),
                                        }
                                    })?;
                                match res {
                                    Ok(p) => {
                                        // Read-your-writes on this manager: the write is committed,
                                        // so wait a little past the deadline for it to arrive here.
                                        let grace = deadline.max(Instant::now()) + Duration::from_secs(2);
                                        if !self.wait_applied(p.index, grace).await {
                                            tracing::warn!(
                                                index = p.index,
                                                applied = self.applied_index(),
                                                "committed write not yet applied on this manager"
                                            );
                                        }
                                        return Ok(p);
                                    }
                                    Err(ForwardError::NotLeader) => {}
                                    Err(ForwardError::Propose(e)) => return Err(e),
                                    Err(ForwardError::Membership(e)) => {
                                        return Err(ProposeError::Stopped(e.to_string()));
                                    }
                                }
                            }
                            // Never sent: safe to try again once the leader is known again.
                            Err(TransportError::Unreachable { .. }) => {}
                            Err(TransportError::Timeout { .. }) => {
                                return Err(ProposeError::NoQuorum {
                                    waited_ms: start.elapsed().as_millis() as u64,
                                });
                            }
                            Err(e @ TransportError::Refused { .. }) => {
                                return Err(ProposeError::LeaderRefused {
                                    leader: addr.to_string(),
                                    reason: e.to_string(),
                                });
                            }
                            Err(e) => {
                                return Err(ProposeError::LeaderUnreachable {
                                    leader: addr.to_string(),
                                    reason: e.to_string(),
                                });
                            }
                        }
                    }
                }
                None => {}
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                let waited_ms = start.elapsed().as_millis() as u64;
                return Err(if saw_leader {
                    ProposeError::NoQuorum { waited_ms }
                } else {
                    ProposeError::NoLeader { waited_ms }
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn propose_local(
        &self,
        command: Vec<u8>,
        deadline: Instant,
        start: Instant,
    ) -> Result<Proposed, ForwardError> {
        match tokio::time::timeout_at(deadline, self.raft.client_write(Command(command))).await {
            Err(_) => Err(ForwardError::Propose(ProposeError::NoQuorum {
                waited_ms: start.elapsed().as_millis() as u64,
            })),
            Ok(Ok(resp)) => Ok(Proposed {
                index: resp.log_id.index,
                result: resp.data.0,
            }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(ForwardError::NotLeader),
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => {
                Err(ForwardError::Propose(ProposeError::Discarded))
            }
            Ok(Err(RaftError::APIError(e))) => Err(ForwardError::Propose(ProposeError::Stopped(e.to_string()))),
            Ok(Err(RaftError::Fatal(e))) => Err(ForwardError::Propose(ProposeError::Stopped(e.to_string()))),
        }
    }

    /// Adds or removes a manager, from any manager (forwarded to the leader). Refused when the
    /// change could leave the cluster without a quorum.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let start = Instant::now();
        let deadline = start + self.config.propose_timeout;
        loop {
            let status = self.status();
            match status.leader {
                Some(leader) if leader == self.id && status.is_leader() => {
                    return self.change_membership_local(change).await;
                }
                Some(_) => {
                    if let Some(addr) = status.leader_addr().cloned() {
                        let body = codec::encode(&change).map_err(|e| MembershipError::Failed(e.to_string()))?;
                        // Catching up may take a while; give it the catch-up deadline.
                        let timeout = self.config.catch_up_timeout + self.config.propose_timeout;
                        match self.transport.call(&addr, Rpc::Membership, body, timeout).await {
                            Ok(bytes) => {
                                let res: Result<(), ForwardError> =
                                    codec::decode(&bytes, "membership change result")
                                        .map_err(|e| MembershipError::Failed(e.to_string()))?;
                                match res {
                                    Ok(()) => return Ok(()),
                                    Err(ForwardError::NotLeader) => {}
                                    Err(ForwardError::Propose(e)) => return Err(e.into()),
                                    Err(ForwardError::Membership(e)) => return Err(e),
                                }
                            }
                            Err(TransportError::Unreachable { .. }) => {}
                            Err(e) => return Err(MembershipError::Failed(e.to_string())),
                        }
                    }
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(ProposeError::NoLeader {
                    waited_ms: start.elapsed().as_millis() as u64,
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn change_membership_local(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let _serialized = self.membership_lock.lock().await;
        // openraft refuses a change while the previous one is still being committed.
        let settle = Instant::now() + self.config.propose_timeout;
        loop {
            let m = self.raft.metrics().borrow_watched().clone();
            if m.membership_config.log_id() == m.committed_membership_config.log_id() {
                break;
            }
            if Instant::now() >= settle {
                return Err(MembershipError::Failed(
                    "the previous membership change has not committed yet; try again".to_string(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = self.status();
        let voters: BTreeSet<RaftId> = status.voters.keys().copied().collect();
        let healthy = self.healthy_voters();
        match change {
            MembershipChange::AddManager { id, addr } => {
                if voters.contains(&id) {
                    return Ok(());
                }
                quorum::check_add(&voters, &healthy).map_err(|e| MembershipError::QuorumRisk(e.to_string()))?;
                tracing::info!(raft_id = %format!("{id:x}"), %addr, "adding manager as learner");
                let added = tokio::time::timeout(
                    self.config.catch_up_timeout,
                    self.raft.add_learner(id, addr.clone(), true),
                )
                .await;
                match added {
                    Err(_) => return Err(MembershipError::CatchUpTimeout(addr.to_string())),
                    Ok(Err(e)) => return Err(membership_failed(e)),
                    Ok(Ok(_)) => {}
                }
                // Re-check: a voter may have gone away while the learner caught up.
                let healthy = self.healthy_voters();
                quorum::check_add(&voters, &healthy).map_err(|e| MembershipError::QuorumRisk(e.to_string()))?;
                tracing::info!(raft_id = %format!("{id:x}"), %addr, "promoting manager to voter");
                let promote = self
                    .raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false);
                match tokio::time::timeout(self.config.propose_timeout, promote).await {
                    Err(_) => Err(ProposeError::NoQuorum {
                        waited_ms: self.config.propose_timeout.as_millis() as u64,
                    }
                    .into()),
                    Ok(Err(e)) => Err(membership_failed(e)),
                    Ok(Ok(_)) => Ok(()),
                }
            }
            MembershipChange::RemoveManager { id } => {
                if !voters.contains(&id) {
                    if status.learners.contains_key(&id) {
                        let remove = self
                            .raft
                            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false);
                        return match tokio::time::timeout(self.config.propose_timeout, remove).await {
                            Err(_) => Err(ProposeError::NoQuorum {
                                waited_ms: self.config.propose_timeout.as_millis() as u64,
                            }
                            .into()),
                            Ok(Err(e)) => Err(membership_failed(e)),
                            Ok(Ok(_)) => Ok(()),
                        };
                    }
                    return Ok(());
                }
                quorum::check_remove(&voters, &healthy, id).map_err(|e| MembershipError::QuorumRisk(e.to_string()))?;
                let remove = self
                    .raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false);
                match tokio::time::timeout(self.config.propose_timeout, remove).await {
                    Err(_) => Err(ProposeError::NoQuorum {
                        waited_ms: self.config.propose_timeout.as_millis() as u64,
                    }
                    .into()),
                    Ok(Err(e)) => Err(membership_failed(e)),
                    Ok(Ok(_)) => {
                        if id == self.id {
                            self.hand_over_leadership(&healthy).await;
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    /// A leader that removed itself from the voters still leads (raft allows it) until it
    /// stops; it hands leadership to a healthy voter instead, so the cluster does not depend on
    /// a manager on its way out.
    async fn hand_over_leadership(&self, healthy: &BTreeSet<RaftId>) {
        let voters: BTreeSet<RaftId> = self.status().voters.keys().copied().collect();
        let Some(to) = healthy.iter().find(|v| **v != self.id && voters.contains(v)).copied() else {
            return;
        };
        tracing::info!(to = %format!("{to:x}"), "no longer a voter: handing leadership over");
        if let Err(e) = self.raft.trigger().transfer_leader(to).await {
            tracing::warn!(error = %e, "cannot hand leadership over");
        }
    }

    /// Handles a raft RPC that arrived from another manager and returns the encoded response.
    /// The caller must already have checked that the peer is a manager of this cluster.
    pub async fn handle_rpc(&self, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, io::Error> {
        match rpc {
            Rpc::Append => {
                let req = codec::decode(body, "append-entries request")?;
                codec::encode(&self.raft.append_entries(req).await)
            }
            Rpc::Vote => {
                let req = codec::decode(body, "vote request")?;
                codec::encode(&self.raft.vote(req).await)
            }
            Rpc::PreVote => {
                let req = codec::decode(body, "pre-vote request")?;
                codec::encode(&self.raft.pre_vote(req).await)
            }
            Rpc::Transfer => {
                let req = codec::decode(body, "transfer-leader request")?;
                let res: Result<_, RaftError<TypeConfig>> =
                    self.raft.handle_transfer_leader(req).await.map_err(RaftError::Fatal);
                codec::encode(&res)
            }
            Rpc::Forward => {
                let Command(command) = codec::decode(body, "forwarded write")?;
                let start = Instant::now();
                let res = if self.status().is_leader() {
                    self.propose_local(command, start + self.config.propose_timeout, start)
                        .await
                } else {
                    Err(ForwardError::NotLeader)
                };
                codec::encode(&res)
            }
            Rpc::Membership => {
                let change: MembershipChange = codec::decode(body, "membership change")?;
                let res = if self.status().is_leader() {
                    self.change_membership_local(change)
                        .await
                        .map_err(ForwardError::Membership)
                } else {
                    Err(ForwardError::NotLeader)
                };
                codec::encode(&res)
            }
        }
    }

    /// Receives a snapshot stream sent by [`Transport::send_snapshot`]: writes it to a temp file,
    /// verifies it, installs it, and returns the encoded response for the leader.
    pub async fn receive_snapshot<R>(&self, mut reader: R) -> Result<Vec<u8>, io::Error>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len);
        if len > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "snapshot stream header is implausibly long",
            ));
        }
        let mut vote = vec![0u8; len as usize];
        reader.read_exact(&mut vote).await?;
        let vote: Vote = codec::decode(&vote, "snapshot vote")?;

        let path = self.snapshots.incoming_path();
        let received = async {
            let mut file = tokio::fs::File::create(&path).await?;
            let bytes = tokio::io::copy(&mut reader, &mut file).await?;
            file.flush().await?;
            file.sync_all().await?;
            let check = path.clone();
            let snapshot = tokio::task::spawn_blocking(move || SnapshotFile::open(&check))
                .await
                .map_err(|e| io::Error::other(e.to_string()))??;
            tracing::info!(bytes, last_log_id = ?snapshot.meta.last_log_id, "received snapshot");
            Ok::<_, io::Error>(snapshot)
        }
        .await;
        let snapshot = match received {
            Ok(s) => s,
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: snapshot.meta.clone(),
            snapshot,
        };
        let res = self.raft.install_full_snapshot(vote, snapshot).await;
        let _ = tokio::fs::remove_file(&path).await;
        codec::encode(&res)
    }

    /// Stops raft and closes the log. Pending proposals fail with [`ProposeError::Stopped`];
    /// once this returns, the log's directory can be removed or opened again.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown reported an error");
        }
        let log = lock(&self.log).take();
        if let Some(log) = log
            && !log.close(Duration::from_secs(10)).await
        {
            tracing::warn!("raft log still in use 10s after raft stopped; it closes when the last task ends");
        }
    }
}

fn membership_failed<E: std::fmt::Display>(e: E) -> MembershipError {
    MembershipError::Failed(e.to_string())
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
