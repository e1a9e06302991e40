//! The agent on every node: keeps one session with the leader's dispatcher, sends heartbeats
//! and task statuses over it, and hands assignments to the [`worker::Worker`]. When a manager
//! dies the agent reconnects to another; its tasks keep running meanwhile.

pub mod dns;
pub mod exec;
pub mod host_ports;
pub mod mesh;
pub mod overlay;
pub mod proxy;
pub mod worker;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use http_body_util::BodyExt;
use swarm_model::NodeDescription;
use swarm_model::NodeRole;
use swarm_model::Platform;
use swarm_net::pace::Pacer;
use swarm_net::peer_client::PeerClient;
use swarm_net::peer_client::PeerError;
use swarm_net::peer_client::full;
use swarm_protocol::dispatcher::HeartbeatRequest;
use swarm_protocol::dispatcher::HeartbeatResponse;
use swarm_protocol::dispatcher::LogBatch;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogRequest;
use swarm_protocol::dispatcher::NotLeader;
use swarm_protocol::dispatcher::OverlayPeer;
use swarm_protocol::dispatcher::ServiceRecord;
use swarm_protocol::dispatcher::SessionMessage;
use swarm_protocol::dispatcher::SessionRequest;
use swarm_protocol::dispatcher::StatusRequest;
use swarm_protocol::dispatcher::unframe;
use swarm_sync::lock;
use tokio::sync::watch;

use self::exec::Executor;
use self::worker::Worker;

/// Called when the manager list changes, e.g. to save it for the next start.
pub type ManagersChanged = Arc<dyn Fn(&[(String, String)]) + Send + Sync>;
/// Called with the role the managers want this node to have (and a manager's raft id), at each
/// session start and when it changes.
pub type RoleWanted = Arc<dyn Fn(NodeRole, Option<u64>) + Send + Sync>;

pub struct Agent {
    pub node_id: String,
    pub hostname: String,
    peers: Arc<PeerClient>,
    managers: Mutex<Vec<(String, String)>>,
    executor: Arc<dyn Executor>,
    pub worker: Arc<Worker>,
    on_managers: Option<ManagersChanged>,
    on_role: Option<RoleWanted>,
    /// The overlay peers the managers last sent, for the node's overlay networks.
    overlay_peers: watch::Sender<Vec<OverlayPeer>>,
    /// The service directory the managers last sent, for the node's resolvers, virtual IPs
    /// and routing mesh.
    directory: watch::Sender<(Vec<ServiceRecord>, Option<swarm_model::NetworkAttachment>)>,
}

enum SessionEnd {
    /// The manager is not the leader; try the leader next.
    Redirect(String),
    Failed(String),
}

impl Agent {
    pub fn new(
        node_id: String,
        hostname: String,
        peers: Arc<PeerClient>,
        managers: Vec<(String, String)>,
        executor: Arc<dyn Executor>,
        on_managers: Option<ManagersChanged>,
    ) -> Self {
        let worker = Arc::new(Worker::new(node_id.clone(), executor.clone()));
        Self {
            node_id,
            hostname,
            peers,
            managers: Mutex::new(managers),
            executor,
            worker,
            on_managers,
            on_role: None,
            overlay_peers: watch::Sender::new(Vec::new()),
            directory: watch::Sender::new((Vec::new(), None)),
        }
    }

    /// The overlay peers this node needs, as the managers last sent them; changes wake
    /// receivers.
    pub fn overlay_peers(&self) -> watch::Receiver<Vec<OverlayPeer>> {
        self.overlay_peers.subscribe()
    }

    /// Lets the daemon know which role the managers want for this node.
    pub fn on_role(mut self, cb: RoleWanted) -> Self {
        self.on_role = Some(cb);
        self
    }

    fn manager_addrs(&self) -> Vec<String> {
        lock(&self.managers).iter().map(|(_, a)| a.clone()).collect()
    }

    fn set_managers(&self, managers: Vec<(String, String)>) {
        if managers.is_empty() {
            return;
        }
        let mut current = lock(&self.managers);
        if *current != managers {
            *current = managers;
            if let Some(cb) = &self.on_managers {
                cb(&current);
            }
        }
    }

    /// Runs until `shutdown`: adopts leftover containers, then keeps a session open. At the end
    /// the tasks' containers are left running, for the next start to adopt.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        // The executor applies the latest peer set, one at a time, so an older set never
        // lands after a newer one.
        let mut peers = self.overlay_peers();
        let executor = self.executor.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = peers.changed() => if changed.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return,
                }
                let latest = peers.borrow_and_update().clone();
                executor.set_overlay_peers(latest).await;
            }
        });
        // The same for the service directory.
        let mut directory = self.directory.subscribe();
        let executor = self.executor.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = directory.changed() => if changed.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return,
                }
                let latest = directory.borrow_and_update().clone();
                executor.set_service_directory(latest.0, latest.1).await;
            }
        });
        self.worker.scan().await;
        self.keep_session(shutdown).await;
        self.worker.detach();
    }

    async fn keep_session(&self, mut shutdown: watch::Receiver<bool>) {
        // A node must reach the new leader well within the dispatcher's grace period after a
        // failover, so managers are tried in turn without waiting, and the pause after a whole
        // round of failures stays short.
        let mut pause = Duration::from_millis(100);
        let mut next: Option<String> = None;
        let mut turn = 0usize;
        // Attempts that ended (failed, redirected, or a session that closed at once) since the
        // last one that lasted; after a whole round of them, pause.
        let mut short_lived = 0usize;
        loop {
            let addrs = self.manager_addrs();
            if addrs.is_empty() {
                tracing::error!("no manager address known; cannot open a session");
                return;
            }
            let addr = match next.take() {
                Some(a) => a,
                None => {
                    turn += 1;
                    addrs[turn % addrs.len()].clone()
                }
            };
            let started = tokio::time::Instant::now();
            let ended = tokio::select! {
                r = self.session(&addr) => r,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            match ended {
                Ok(()) => {}
                Err(SessionEnd::Redirect(leader)) => next = Some(leader),
                Err(SessionEnd::Failed(why)) => tracing::warn!(manager = %addr, error = %why, "session failed"),
            }
            if started.elapsed() > Duration::from_secs(10) {
                short_lived = 0;
                pause = Duration::from_millis(100);
                continue;
            }
            short_lived += 1;
            if short_lived > addrs.len() {
                short_lived = 0;
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }

    async fn description(&self) -> NodeDescription {
        let facts = self.executor.describe().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot describe the engine");
            Default::default()
        });
        NodeDescription {
            hostname: self.hostname.clone(),
            platform: Platform {
                architecture: swarm_protocol::host::architecture().to_string(),
                os: swarm_protocol::host::os().to_string(),
            },
            resources: facts.resources,
            engine: facts.engine,
            tls_info: Default::default(),
            host_networks: Some(swarm_protocol::host::networks()),
        }
    }

    async fn session(&self, addr: &str) -> Result<(), SessionEnd> {
        let req = SessionRequest {
            description: self.description().await,
        };
        let body = swarm_protocol::codec::encode(&req).map_err(|e| SessionEnd::Failed(e.to_string()))?;
        let mut stream = match self
            .peers
            .open_stream(addr, "/dispatcher/session", full(body), Duration::from_secs(10))
            .await
        {
            Ok(s) => s,
            Err(PeerError::Status {
                status: 503, message, ..
            }) => {
                let leader = NotLeader::leader_in(&message);
                return Err(match leader {
                    Some(l) if l != addr => SessionEnd::Redirect(l),
                    _ => SessionEnd::Failed(format!("no leader to open a session with: {message}")),
                });
            }
            Err(e) => {
                // The cached connection may be stalled (a peer's retransmissions backing off
                // after a partition): the next attempt connects anew.
                self.peers.forget(addr).await;
                return Err(SessionEnd::Failed(e.to_string()));
            }
        };
        let mut buf = Vec::new();
        let mut pending = std::collections::VecDeque::new();
        // The first message names the session.
        let (session_id, period) = loop {
            if let Some(msg) = pending.pop_front() {
                match msg {
                    SessionMessage::Welcome {
                        session_id,
                        heartbeat_period_ms,
                        managers,
                    } => {
                        self.set_managers(managers);
                        break (session_id, Duration::from_millis(heartbeat_period_ms.max(100)));
                    }
                    _ => return Err(SessionEnd::Failed("session did not start with a welcome".into())),
                }
            }
            let Ok(frame) = tokio::time::timeout(Duration::from_secs(10), stream.frame()).await else {
                self.peers.forget(addr).await;
                return Err(SessionEnd::Failed("no welcome within 10 s".into()));
            };
            match frame {
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        buf.extend_from_slice(&data);
                        pending.extend(unframe(&mut buf).map_err(|e| SessionEnd::Failed(e.to_string()))?);
                    }
                }
                Some(Err(e)) => return Err(SessionEnd::Failed(e.to_string())),
                None => return Err(SessionEnd::Failed("session closed before its welcome".into())),
            }
        };
        tracing::info!(manager = %addr, %session_id, "session opened");
        // A new session, maybe with a new leader: it must learn every current status.
        self.worker.reporter.mark_all_dirty();
        let (end_tx, mut end) = watch::channel(None::<String>);
        let heartbeats = tokio::spawn(heartbeat_loop(
            self.peers.clone(),
            addr.to_string(),
            session_id.clone(),
            period,
            end_tx.clone(),
        ));
        let statuses = tokio::spawn(status_loop(
            self.peers.clone(),
            addr.to_string(),
            session_id.clone(),
            self.worker.reporter.clone(),
            end_tx,
        ));
        let result = loop {
            while let Some(msg) = pending.pop_front() {
                match msg {
                    SessionMessage::Assignments {
                        full,
                        tasks,
                        removed,
                        files,
                    } => self.worker.apply(full, tasks, removed, files),
                    SessionMessage::Managers { managers } => self.set_managers(managers),
                    SessionMessage::Role { role, raft_id } => {
                        if let Some(cb) = &self.on_role {
                            cb(role, raft_id);
                        }
                    }
                    SessionMessage::Logs(req) => {
                        tokio::spawn(stream_logs(
                            self.peers.clone(),
                            addr.to_string(),
                            session_id.clone(),
                            self.executor.clone(),
                            self.node_id.clone(),
                            req,
                        ));
                    }
                    SessionMessage::Directory { records, ingress } => {
                        let count = records.len();
                        let latest = (records, ingress.map(|b| *b));
                        let changed = self.directory.send_if_modified(|current| {
                            let changed = *current != latest;
                            *current = latest;
                            changed
                        });
                        if changed {
                            tracing::debug!(records = count, "service directory changed");
                        }
                    }
                    SessionMessage::Peers { peers } => {
                        let count = peers.len();
                        let changed = self.overlay_peers.send_if_modified(|current| {
                            let changed = *current != peers;
                            *current = peers;
                            changed
                        });
                        if changed {
                            tracing::info!(peers = count, "overlay peers changed");
                        }
                    }
                    SessionMessage::Welcome { .. } => {}
                }
            }
            tokio::select! {
                frame = stream.frame() => match frame {
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            buf.extend_from_slice(&data);
                            match unframe(&mut buf) {
                                Ok(msgs) => pending.extend(msgs),
                                Err(e) => break Err(SessionEnd::Failed(e.to_string())),
                            }
                        }
                    }
                    Some(Err(e)) => break Err(SessionEnd::Failed(format!("session stream broke: {e}"))),
                    None => break Ok(()),
                },
                _ = end.changed() => {
                    let why = end.borrow().clone().unwrap_or_default();
                    break Err(SessionEnd::Failed(why));
                }
            }
        };
        heartbeats.abort();
        statuses.abort();
        tracing::info!(manager = %addr, %session_id, "session ended");
        result
    }
}

/// Sends the output of the requested tasks to the leader, in batches, until it is all sent (or,
/// following, until the leader says nobody reads it any more).
async fn stream_logs(
    peers: Arc<PeerClient>,
    addr: String,
    session_id: String,
    executor: Arc<dyn Executor>,
    node_id: String,
    req: LogRequest,
) {
    use futures_util::StreamExt;
    let streams: Vec<_> = req
        .tasks
        .iter()
        .map(|t| executor.logs(&node_id, t, &req.options))
        .collect();
    let mut merged = futures_util::stream::select_all(streams);
    let mut lines = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // While following quiet tasks, ask now and then whether anybody still reads.
    let mut quiet_ticks = 0u32;
    let send = |lines: Vec<LogLine>, done: bool| {
        let body = swarm_protocol::codec::encode(&LogBatch {
            session_id: session_id.clone(),
            subscription: req.subscription.clone(),
            lines,
            done,
        });
        let (peers, addr) = (peers.clone(), addr.clone());
        async move {
            let Ok(body) = body else { return false };
            peers
                .call(&addr, "/dispatcher/logs", Some(full(body)), Duration::from_secs(30))
                .await
                .is_ok()
        }
    };
    loop {
        tokio::select! {
            item = merged.next() => match item {
                Some(Ok(line)) => {
                    lines.push(line);
                    if lines.len() >= 200 && !send(std::mem::take(&mut lines), false).await {
                        return;
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "reading task output"),
                None => {
                    send(std::mem::take(&mut lines), true).await;
                    return;
                }
            },
            _ = tick.tick() => {
                quiet_ticks += 1;
                if (!lines.is_empty() || quiet_ticks >= 50) && !send(std::mem::take(&mut lines), false).await {
                    return;
                }
                if quiet_ticks >= 50 {
                    quiet_ticks = 0;
                }
            }
        }
    }
}

async fn heartbeat_loop(
    peers: Arc<PeerClient>,
    addr: String,
    session_id: String,
    mut period: Duration,
    end: watch::Sender<Option<String>>,
) {
    let mut failures = 0;
    // Beats on a fixed schedule, so slow answers do not stretch the period.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let body = match swarm_protocol::codec::encode(&HeartbeatRequest {
            session_id: session_id.clone(),
        }) {
            Ok(b) => b,
            Err(_) => return,
        };
        match peers
            .call(&addr, "/dispatcher/heartbeat", Some(full(body)), period * 2)
            .await
        {
            Ok(bytes) => {
                failures = 0;
                if let Ok(r) = swarm_protocol::codec::decode::<HeartbeatResponse>(&bytes, "heartbeat answer") {
                    let new = Duration::from_millis(r.period_ms.max(100));
                    if new != period {
                        period = new;
                        tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                }
            }
            Err(PeerError::Status { message, .. }) => {
                let _ = end.send(Some(format!("heartbeat refused: {message}")));
                return;
            }
            Err(e) => {
                failures += 1;
                if matches!(e, PeerError::Timeout { .. }) {
                    // A stalled connection stays stalled until the peer's next retransmission,
                    // which backs off to seconds after a partition: beat on a new one.
                    peers.forget(&addr).await;
                }
                if failures >= 3 {
                    let _ = end.send(Some(format!("heartbeats failing: {e}")));
                    return;
                }
            }
        }
    }
}

async fn status_loop(
    peers: Arc<PeerClient>,
    addr: String,
    session_id: String,
    reporter: Arc<worker::Reporter>,
    end: watch::Sender<Option<String>>,
) {
    let mut pacer = Pacer::new(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = reporter.changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        // A lone change is reported at once, a burst in one report per 50 ms.
        pacer.ready().await;
        let mut updates = reporter.take_dirty();
        while !updates.is_empty() {
            let rest = updates.split_off(updates.len().min(1000));
            let ids: Vec<String> = updates.iter().map(|(id, _)| id.clone()).collect();
            let body = swarm_protocol::codec::encode(&StatusRequest {
                session_id: session_id.clone(),
                updates,
            });
            let sent = match body {
                Ok(b) => {
                    peers
                        .call(&addr, "/dispatcher/status", Some(full(b)), Duration::from_secs(10))
                        .await
                }
                Err(e) => Err(PeerError::Failed {
                    addr: addr.clone(),
                    reason: e.to_string(),
                }),
            };
            match sent {
                Ok(_) => {}
                Err(e) => {
                    reporter.restore(ids);
                    reporter.restore(rest.iter().map(|(id, _)| id.clone()));
                    if let PeerError::Status { message, .. } = e {
                        let _ = end.send(Some(format!("status report refused: {message}")));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
            updates = rest;
        }
    }
}
