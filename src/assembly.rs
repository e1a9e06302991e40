//! Assembling a node from its data dir: a manager (through [`swarm_manager::start`]) or a
//! worker, the agent that runs its tasks, the Engine API on the control socket, and taking it
//! all down again, to stop, to switch roles or to leave the swarm.

use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use swarm_agent::Agent;
use swarm_agent::ManagersChanged;
use swarm_agent::RoleWanted;
use swarm_agent::exec::Executor;
use swarm_agent::exec::docker::DockerExecutor;
use swarm_agent::exec::memory_dir;
use swarm_agent::exec::memory_dir::Backing;
use swarm_agent::exec::sim::SimExecutor;
use swarm_ca::UnlockKey;
use swarm_ca::UnlockKeyError;
use swarm_manager::ManagerConfig;
use swarm_manager::api;
use swarm_manager::api::ApiState;
use swarm_manager::api::unlock::UnlockAttempt;
use swarm_manager::api::unlock::Unlocker;
use swarm_manager::runtime::LocalNode;
use swarm_manager::runtime::Manager;
use swarm_manager::settings::follow_cluster;
use swarm_manager::settings::wanted_unlock_key;
use swarm_model::NodeRole;
use swarm_net::peer_client::PeerClient;
use swarm_net::tls;
use swarm_net::tls::NodeIdentity;
use tokio::net::TcpListener;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api_listener::check_not_cluster_ca;
use crate::api_listener::load as load_api_tls;
use crate::api_listener::plain_text_allowed;
use crate::data_key;
use crate::data_key::ManagerKey;
use crate::data_key::StoredKey;
use crate::data_key::keep_sealed_as_wanted;
use crate::datadir::DataDir;
use crate::datadir::DataDirError;
use crate::datadir::NodeConfig;
use crate::error::DaemonError;
use crate::identity::check_certs;
use crate::identity::expired_at;

/// A started node: its background tasks and what shutting it down needs.
pub(crate) struct Running {
    pub(crate) manager: Option<Arc<Manager>>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    pub(crate) dir: DataDir,
    pub(crate) lock: File,
    /// This node's client identity towards the managers.
    pub(crate) peers: Arc<PeerClient>,
    /// The certificate and key this node presents, on its listener and to the managers;
    /// renewal replaces them in place.
    pub(crate) identity: Arc<NodeIdentity>,
    /// Roles (and a manager's raft id) the managers want for this node, as its agent hears them.
    pub(crate) roles: mpsc::UnboundedReceiver<(NodeRole, Option<u64>)>,
    /// Notified by `POST /swarm/leave`; kept across role switches.
    pub(crate) leave: Arc<tokio::sync::Notify>,
    /// A manager's data key, to start it again in place if its raft stops on a fault.
    pub(crate) data_key: Option<swarm_raft::DataKey>,
}

/// Starts a manager from its data dir (its agent too) and returns it with its handles.
pub(crate) async fn start_manager(
    dir: DataDir,
    cfg: &NodeConfig,
    lock: File,
    key: ManagerKey,
) -> Result<(Running, Arc<Manager>), DaemonError> {
    // A role switch rebuilds the raft dir, which holds the CA key: private again every time.
    dir.restrict()?;
    // Under autolock the node key is sealed with a key made from the data key; a crash while
    // autolock was being turned on or off is evened out here.
    let sealer = UnlockKey::from_secret(key.key.as_bytes()).map_err(|e| DataDirError::Damaged {
        dir: dir.root().display().to_string(),
        problem: format!("the raft data key cannot seal the node key: {e}"),
    })?;
    dir.use_node_key_sealer(Some(sealer));
    dir.seal_node_key(key.sealed_with.is_some())?;
    let (ca_pem, cert_pem, key_pem) = dir.load_certs()?;
    check_certs(cfg, &cert_pem, &dir)?;
    if let Some(expired) = expired_at(&cert_pem) {
        // Every manager holds the root CA: it signs itself a new certificate as soon as its
        // store is back (see role_change::renew).
        tracing::warn!(%expired, "this manager's certificate expired while it was off; it renews it itself");
    }
    let identity = NodeIdentity::new(&cert_pem, &key_pem)?;
    let damaged = |problem: String| DataDirError::Damaged {
        dir: dir.root().display().to_string(),
        problem,
    };
    let raft_id = cfg
        .raft_id
        .ok_or_else(|| damaged("a manager without a raft id".to_string()))?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let started = swarm_manager::start(
        ManagerConfig {
            local: local_node(cfg, &dir),
            listen_addr: cfg.listen_addr.clone(),
            raft_id,
            raft_dir: dir.raft(),
            // A member's log must be there: raft refuses to start it empty (its votes would
            // be forgotten), and says to join again.
            existing_log: cfg.initialised,
            data_key: key.key.clone(),
            ca_pem,
            identity: identity.clone(),
            cert_expiry_override: cert_expiry_override()?,
        },
        shutdown_rx,
    )
    .await?;
    let manager = started.manager;
    let (role_tx, roles) = mpsc::unbounded_channel();
    let mut running = Running {
        manager: Some(manager.clone()),
        shutdown,
        tasks: started.tasks,
        dir,
        lock,
        peers: manager.peers.clone(),
        identity,
        roles,
        leave: Arc::default(),
        data_key: Some(key.key.clone()),
    };
    start_agent(&mut running, cfg, role_tx);
    // Autolock: this manager's data key follows the cluster's unlock key.
    let (wanted_tx, wanted) = watch::channel(key.sealed_with.as_ref().map(|k| k.to_string()));
    running.tasks.push(tokio::spawn(follow_cluster(
        manager.store.clone(),
        running.shutdown.subscribe(),
        move |c| {
            wanted_tx.send_if_modified(|w| std::mem::replace(w, wanted_unlock_key(c)) != *w);
        },
    )));
    running
        .tasks
        .push(tokio::spawn(keep_sealed_as_wanted(running.dir.clone(), key, wanted)));
    Ok((running, manager))
}

/// The data key for a manager that cannot be locked: a new manager, or one switching roles
/// (either way its raft dir is new).
pub(crate) fn new_manager_key(dir: &DataDir) -> Result<ManagerKey, DaemonError> {
    data_key::unlocked(dir)?.map_err(|_| {
        DaemonError::DataDir(DataDirError::Damaged {
            dir: dir.root().display().to_string(),
            problem: "a manager being set up has a sealed data key already".to_string(),
        })
    })
}

/// The environment variable that shortens node certificate lifetimes below the API's one-hour
/// minimum, for tests of renewal only (docs/security.md). Seconds; read by managers.
pub const TEST_CERT_EXPIRY_ENV: &str = "SWARMD_TEST_CERT_EXPIRY_SECS";

pub(crate) fn cert_expiry_override() -> Result<Option<Duration>, DaemonError> {
    match std::env::var(TEST_CERT_EXPIRY_ENV) {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(secs) if secs >= 10 => {
                tracing::warn!(
                    secs,
                    "{TEST_CERT_EXPIRY_ENV} is set: node certificates are issued for {secs} s (tests only)"
                );
                Ok(Some(Duration::from_secs(secs)))
            }
            _ => Err(DaemonError::TestCertExpiry(v)),
        },
    }
}

/// Who this node is, as the Engine API and the manager see it.
fn local_node(cfg: &NodeConfig, dir: &DataDir) -> LocalNode {
    LocalNode {
        node_id: cfg.node_id.clone(),
        cluster_id: cfg.cluster_id.clone(),
        hostname: cfg.hostname.clone(),
        advertise_addr: cfg.advertise_addr.clone(),
        role: cfg.role,
        data_dir: dir.root().to_path_buf(),
    }
}

pub(crate) fn start_worker(dir: DataDir, cfg: &NodeConfig, lock: File) -> Result<Running, DaemonError> {
    let (ca_pem, cert_pem, key_pem) = dir.load_certs()?;
    check_certs(cfg, &cert_pem, &dir)?;
    if let Some(expired) = expired_at(&cert_pem) {
        return Err(DaemonError::CertificateExpired {
            path: dir.cert_path(),
            expired,
            node_id: cfg.node_id.clone(),
        });
    }
    let identity = NodeIdentity::new(&cert_pem, &key_pem)?;
    let client_tls = tls::client_config(&ca_pem, identity.clone())?;
    let (shutdown, _) = watch::channel(false);
    tracing::info!(node_id = %cfg.node_id, "worker started");
    let (role_tx, roles) = mpsc::unbounded_channel();
    let mut running = Running {
        manager: None,
        shutdown,
        tasks: Vec::new(),
        dir,
        lock,
        peers: Arc::new(PeerClient::new(client_tls)),
        identity,
        roles,
        leave: Arc::default(),
        data_key: None,
    };
    start_agent(&mut running, cfg, role_tx);
    Ok(running)
}

/// Connects the executor a node was set up with; the Docker engine is retried until reachable.
pub(crate) async fn connect_executor(
    kind: &str,
    files_root: &Path,
    hostname: &str,
    advertise_addr: &str,
    dns_upstream: &[String],
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Arc<dyn Executor>> {
    if kind == "sim" {
        return Some(Arc::new(SimExecutor {
            start_delay: Duration::from_millis(100),
            failure_rate: 0.0,
        }));
    }
    loop {
        let overlay_local = overlay_address(advertise_addr);
        let upstream = swarm_agent::dns::upstream_resolvers(dns_upstream);
        match DockerExecutor::connect(files_root.to_path_buf(), hostname.to_string(), overlay_local, upstream).await {
            Ok(d) => return Some(Arc::new(d)),
            Err(e) => {
                tracing::error!(error = %e, "this node runs no tasks until the Docker engine answers; retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.wait_for(|s| *s) => return None,
                }
            }
        }
    }
}

/// The node's underlay address for overlay networks: its advertised IPv4 address. A node that
/// advertises a loopback address shares its host with the other nodes (a one-machine cluster),
/// so it builds no overlays and its containers keep the engine's default network.
fn overlay_address(advertise_addr: &str) -> Option<std::net::Ipv4Addr> {
    let ip: std::net::Ipv4Addr = crate::identity::ip_of(advertise_addr).parse().ok()?;
    if ip.is_loopback() || ip.is_unspecified() {
        tracing::info!(%ip, "this node advertises a loopback address: it builds no overlay networks");
        return None;
    }
    Some(ip)
}

/// Puts the task files dir on a tmpfs so secrets stay off the disk; says where they are kept.
async fn keep_task_files_in_memory(dir: PathBuf) {
    let root = dir.clone();
    match tokio::task::spawn_blocking(move || memory_dir::keep_in_memory(&root)).await {
        Ok(Backing::Memory { fs, mounted_now }) => tracing::info!(
            dir = %dir.display(),
            fs,
            mounted_now,
            "task secret and config files are kept in memory"
        ),
        Ok(Backing::Disk { why }) => tracing::warn!(
            dir = %dir.display(),
            why,
            "task secret and config files are kept on disk, not in memory"
        ),
        Err(e) => tracing::warn!(error = %e, "checking where task files are kept failed"),
    }
}

/// Starts the node's agent, which runs the tasks the managers assign to this node and passes
/// on the role they want for it.
fn start_agent(running: &mut Running, cfg: &NodeConfig, roles: mpsc::UnboundedSender<(NodeRole, Option<u64>)>) {
    let peers = running.peers.clone();
    let managers = if cfg.role == NodeRole::Manager {
        vec![(cfg.node_id.clone(), cfg.advertise_addr.clone())]
    } else {
        cfg.managers.clone()
    };
    let on_managers: Option<ManagersChanged> = (cfg.role == NodeRole::Worker).then(|| {
        let dir = running.dir.clone();
        let cb: ManagersChanged = Arc::new(move |managers: &[(String, String)]| {
            // Remember the managers for the next start, in case the ones from the join are gone.
            match dir.load_config() {
                Ok(mut c) => {
                    c.managers = managers.to_vec();
                    if let Err(e) = dir.save_config(&c) {
                        tracing::warn!(error = %e, "cannot save the manager list");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot save the manager list"),
            }
        });
        cb
    });
    let (node_id, hostname, kind, runs_as, advertise, upstream) = (
        cfg.node_id.clone(),
        cfg.hostname.clone(),
        cfg.executor.clone(),
        (cfg.role, cfg.raft_id),
        cfg.advertise_addr.clone(),
        cfg.dns_upstream.clone(),
    );
    let mut shutdown = running.shutdown.subscribe();
    let files_root = running.dir.task_files();
    running.tasks.push(tokio::spawn(async move {
        if kind != "sim" {
            keep_task_files_in_memory(files_root.clone()).await;
        }
        let Some(executor) =
            connect_executor(&kind, &files_root, &hostname, &advertise, &upstream, &mut shutdown).await
        else {
            return;
        };
        let on_role: RoleWanted = Arc::new(move |role, raft_id| {
            if (role, raft_id) != runs_as {
                let _ = roles.send((role, raft_id));
            }
        });
        let agent = Arc::new(Agent::new(node_id, hostname, peers, managers, executor, on_managers).on_role(on_role));
        agent.run(shutdown).await;
    }));
}

/// Serves the Engine API on the control socket (and on TCP if configured).
pub(crate) async fn serve_api(running: &mut Running, cfg: &NodeConfig) -> Result<(), DaemonError> {
    let state = ApiState {
        local: local_node(cfg, &running.dir),
        manager: running.manager.clone(),
        remote_managers: cfg.managers.clone(),
        leave: running.leave.clone(),
        locked: None,
    };
    serve_api_for(state, &running.dir, cfg, &running.shutdown, &mut running.tasks).await
}

/// Serves `state` as the Engine API on the control socket (and on TCP if configured) until
/// `shutdown`; the servers' tasks are added to `tasks`.
async fn serve_api_for(
    state: ApiState,
    dir: &DataDir,
    cfg: &NodeConfig,
    shutdown: &watch::Sender<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<(), DaemonError> {
    let routes = api::router(state);
    let socket = dir.socket();
    if socket.exists() {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Err(DaemonError::SocketInUse(socket));
        }
        let _ = std::fs::remove_file(&socket);
    }
    let listener = UnixListener::bind(&socket).map_err(|source| DaemonError::Socket {
        path: socket.clone(),
        source,
    })?;
    dir.secure_socket()?;
    serve_plain(
        shutdown,
        tasks,
        listener,
        api::served(routes.clone(), true),
        "control socket",
    );
    if let Some(addr) = &cfg.api_addr {
        // Checked again on every start: the files may have changed since.
        let tls_config = match &cfg.api_tls {
            Some(files) => {
                let ca_pem = dir.load_ca()?;
                check_not_cluster_ca(files, &ca_pem)?;
                Some(load_api_tls(files)?)
            }
            None => None,
        };
        let listener = TcpListener::bind(addr).await.map_err(|source| DaemonError::ApiListen {
            addr: addr.clone(),
            source,
        })?;
        match tls_config {
            Some(tls_config) => {
                let rx = shutdown.subscribe();
                let tcp_app = api::served(routes, false);
                tasks.push(tokio::spawn(swarm_net::server::serve_api_tls(
                    listener, tls_config, tcp_app, rx,
                )));
            }
            None => {
                if plain_text_allowed(addr, cfg.insecure_api)? {
                    tracing::warn!(%addr, "the Engine API is served in plain text without authentication (--insecure-api): anyone who reaches it is root on every node");
                }
                serve_plain(shutdown, tasks, listener, api::served(routes, true), "TCP API");
            }
        }
    }
    tracing::info!(socket = %socket.display(), tcp = ?cfg.api_addr, "Engine API listening");
    Ok(())
}

/// Serves the API without TLS (the control socket, or TCP) until `shutdown`.
fn serve_plain<L>(
    shutdown: &watch::Sender<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
    listener: L,
    app: axum::Router,
    what: &'static str,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let mut rx = shutdown.subscribe();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "{what} server failed");
        }
    }));
}

/// How a locked manager's wait ended.
pub(crate) enum Unlocked {
    /// With the unlock key: the data key is open and the manager can start.
    Key(ManagerKey),
    /// `docker swarm leave --force` while locked.
    Leave,
    /// SIGTERM or SIGINT.
    Stopped,
}

/// A locked manager (autolock, `sealed` being its data key): serves only what a locked dockerd
/// serves, `/_ping`, `/version`, `/info` as `locked`, `/swarm/unlock` and leaving, until the
/// unlock key arrives. Every other request gets Swarm's "needs to be unlocked" error.
pub(crate) async fn wait_for_unlock(
    dir: &DataDir,
    cfg: &NodeConfig,
    sealed: StoredKey,
) -> Result<Unlocked, DaemonError> {
    let (attempts_tx, mut attempts) = mpsc::channel::<UnlockAttempt>(4);
    let leave = Arc::new(tokio::sync::Notify::new());
    let state = ApiState {
        local: local_node(cfg, dir),
        manager: None,
        remote_managers: cfg.managers.clone(),
        leave: leave.clone(),
        locked: Some(Unlocker(attempts_tx)),
    };
    let (shutdown, _) = watch::channel(false);
    let mut tasks = Vec::new();
    serve_api_for(state, dir, cfg, &shutdown, &mut tasks).await?;
    tracing::warn!(
        socket = %dir.socket().display(),
        "this manager is locked: autolock is on, and its raft data is sealed with the swarm's unlock key. \
         Unlock it with `docker swarm unlock` (or `swarmctl swarm unlock`) on this socket"
    );
    let outcome = loop {
        tokio::select! {
            attempt = attempts.recv() => {
                let Some(attempt) = attempt else { break Unlocked::Stopped };
                let opened = UnlockKey::parse(&attempt.key)
                    .and_then(|unlock| sealed.open(&unlock).map(|key| ManagerKey { key, sealed_with: Some(unlock) }));
                match opened {
                    Ok(key) => {
                        let _ = attempt.answer.send(Ok(()));
                        tracing::info!("unlocked with the unlock key");
                        break Unlocked::Key(key);
                    }
                    Err(e) => {
                        let why = match e {
                            UnlockKeyError::Wrong => e.to_string(),
                            other => format!("swarm could not be unlocked: {other}"),
                        };
                        tracing::warn!(reason = %why, "unlock refused");
                        let _ = attempt.answer.send(Err(why));
                    }
                }
            }
            _ = leave.notified() => break Unlocked::Leave,
            _ = shutdown_signal() => break Unlocked::Stopped,
        }
    };
    shutdown.send_replace(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = std::fs::remove_file(dir.socket());
    Ok(outcome)
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::SignalKind;
    use tokio::signal::unix::signal;
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// Stops everything the node runs and hands back its data dir lock.
pub(crate) async fn stop(running: Running) -> File {
    if let Some(m) = &running.manager {
        m.raft.hand_over_before_stop(Duration::from_secs(1)).await;
    }
    let _ = running.shutdown.send(true);
    for t in running.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if let Some(m) = &running.manager {
        m.raft.shutdown().await;
    }
    let _ = std::fs::remove_file(running.dir.socket());
    tracing::info!("stopped");
    running.lock
}

/// What leaving the swarm leaves behind: nothing. The node's task containers are removed and
/// its data dir emptied (certificates, raft state, node.json), so the dir can join again.
pub(crate) async fn leave_swarm(dir: &DataDir, cfg: &NodeConfig, lock: File) -> Result<(), DaemonError> {
    let mut never = watch::channel(false).1;
    let executor = tokio::time::timeout(
        Duration::from_secs(15),
        connect_executor(
            &cfg.executor,
            &dir.task_files(),
            &cfg.hostname,
            &cfg.advertise_addr,
            &cfg.dns_upstream,
            &mut never,
        ),
    )
    .await
    .ok()
    .flatten();
    match executor {
        Some(executor) => {
            match executor.task_ids(&cfg.node_id).await {
                Ok(ids) => {
                    for id in ids {
                        if let Err(e) = executor.remove_task(&cfg.node_id, &id).await {
                            tracing::warn!(task_id = %id, error = %e, "cannot remove the task's container");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list this node's containers to remove them"),
            }
            if let Err(e) = executor.remove_networks().await {
                tracing::warn!(error = %e, "cannot remove this node's overlay networks");
            }
        }
        None => tracing::warn!("the engine did not answer; this node's containers are left as they are"),
    }
    memory_dir::release(&dir.task_files()).map_err(DaemonError::TaskFiles)?;
    let entries = std::fs::read_dir(dir.root()).map_err(|source| DaemonError::Io {
        action: "read",
        path: dir.root().to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == "lock" {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|source| DaemonError::Io {
            action: "remove",
            path: path.clone(),
            source,
        })?;
    }
    drop(lock);
    let _ = std::fs::remove_file(dir.root().join("lock"));
    tracing::info!(node_id = %cfg.node_id, "left the swarm");
    Ok(())
}
