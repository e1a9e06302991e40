//! `swarmd`'s lifecycle: create a cluster (`init`), join one (`join`), restart (`run`), and shut
//! down cleanly on SIGTERM or SIGINT.

pub mod datadir;
mod role_change;

use std::fs::File;
use std::net::IpAddr;
use std::net::SocketAddr;
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
use swarm_ca as ca;
use swarm_ca::CertIdentity;
use swarm_ca::JoinToken;
use swarm_manager::api;
use swarm_manager::api::ApiState;
use swarm_manager::peer_api::peer_router;
use swarm_manager::runtime::LocalNode;
use swarm_manager::runtime::Manager;
use swarm_manager::runtime::PeerHealth;
use swarm_manager::store::Store;
use swarm_manager::store::StoreAction;
use swarm_model::Availability;
use swarm_model::Cluster;
use swarm_model::ClusterSpec;
use swarm_model::JoinTokens;
use swarm_model::Labels;
use swarm_model::Node;
use swarm_model::NodeDescription;
use swarm_model::NodeRole;
use swarm_model::NodeSpec;
use swarm_model::NodeState;
use swarm_model::NodeStatus;
use swarm_model::Platform;
use swarm_model::Resources;
use swarm_model::RootCaState;
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::new_id;
use swarm_model::new_raft_id;
use swarm_net::peer_client::PeerClient;
use swarm_net::peer_client::PeerError;
use swarm_net::peer_client::full;
use swarm_net::raft_transport::RaftTransport;
use swarm_net::server::serve_tls;
use swarm_net::tls;
use swarm_protocol::host;
use swarm_protocol::peer::JoinRaftRequest;
use swarm_protocol::peer::JoinRequest;
use swarm_protocol::peer::JoinResponse;
use swarm_raft::LogOwner;
use swarm_raft::ManagerAddr;
use swarm_raft::RaftConfig;
use swarm_raft::RaftNode;
use tokio::net::TcpListener;
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::Layer;

use self::datadir::DataDir;
use self::datadir::DataDirError;
use self::datadir::NodeConfig;

/// Where `swarmd` keeps its state unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/swarmd";
/// Swarm's well-known manager port.
pub const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:2377";

/// Why swarmd could not start or keep running. The message says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DaemonError(pub String);

impl From<DataDirError> for DaemonError {
    fn from(e: DataDirError) -> Self {
        Self(e.to_string())
    }
}

fn err(msg: impl Into<String>) -> DaemonError {
    DaemonError(msg.into())
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub listen_addr: String,
    pub advertise_addr: Option<String>,
    pub hostname: Option<String>,
    pub api_addr: Option<String>,
    pub snapshot_interval: Option<u64>,
    pub log_entries_for_slow_followers: Option<u64>,
    pub availability: Option<Availability>,
    /// `docker` (default) or `sim`.
    pub executor: String,
}

#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub data_dir: PathBuf,
    pub token: String,
    pub remote_addr: String,
    pub listen_addr: String,
    pub advertise_addr: Option<String>,
    pub hostname: Option<String>,
    pub api_addr: Option<String>,
    pub labels: Labels,
    pub availability: Option<Availability>,
    /// `docker` (default) or `sim`.
    pub executor: String,
}

/// A started node: its background tasks and what shutting it down needs.
struct Running {
    manager: Option<Arc<Manager>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    dir: DataDir,
    lock: File,
    /// This node's client identity towards the managers.
    peers: Arc<PeerClient>,
    /// Roles (and a manager's raft id) the managers want for this node, as its agent hears them.
    roles: mpsc::UnboundedReceiver<(NodeRole, Option<u64>)>,
    /// Notified by `POST /swarm/leave`; kept across role switches.
    leave: Arc<tokio::sync::Notify>,
}

/// Fails early, before anything is written, if the listen address cannot be bound.
fn check_listen(listen: &str) -> Result<(), DaemonError> {
    std::net::TcpListener::bind(listen)
        .map(drop)
        .map_err(|e| err(format!("cannot listen on {listen}: {e}")))
}

/// Picks the address other nodes dial. An explicit `--advertise-addr` wins (its port defaults to
/// the listen port); otherwise the listen IP, or the address of the default route's interface.
pub fn resolve_advertise(listen: &str, advertise: Option<&str>) -> Result<String, DaemonError> {
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| err(format!("--listen-addr {listen:?} is not a valid IP:PORT")))?;
    if let Some(a) = advertise {
        if let Ok(sa) = a.parse::<SocketAddr>() {
            return Ok(sa.to_string());
        }
        if let Ok(ip) = a.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, listen.port()).to_string());
        }
        return Err(err(format!("--advertise-addr {a:?} is not a valid IP or IP:PORT")));
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen.to_string());
    }
    // Connecting a UDP socket sends nothing; it only asks the kernel which source address the
    // default route would use.
    let detected = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    match detected {
        Some(ip) => Ok(SocketAddr::new(ip, listen.port()).to_string()),
        None => Err(err(
            "cannot determine an address to advertise to other nodes; pass --advertise-addr IP[:PORT]",
        )),
    }
}

fn local_description(hostname: &str, ca_pem: &str) -> NodeDescription {
    NodeDescription {
        hostname: hostname.to_string(),
        platform: Platform {
            architecture: host::architecture().to_string(),
            os: host::os().to_string(),
        },
        resources: Resources {
            nano_cpus: host::cpus() * 1_000_000_000,
            memory_bytes: host::memory_bytes(),
            generic_resources: None,
        },
        engine: Default::default(),
        tls_info: ca::tls_info(ca_pem),
    }
}

fn ip_of(addr: &str) -> String {
    addr.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default()
}

/// Checks the certificate on disk against node.json before trusting either.
fn check_certs(cfg: &NodeConfig, cert_pem: &str, dir: &DataDir) -> Result<(), DaemonError> {
    let der = ca::first_cert_der(cert_pem).map_err(|e| err(format!("{}: {e}", dir.cert_path().display())))?;
    let who = ca::cert_identity(&der).map_err(|e| err(format!("{}: {e}", dir.cert_path().display())))?;
    if who.node_id != cfg.node_id || who.cluster_id != cfg.cluster_id || who.role != cfg.role {
        return Err(err(format!(
            "data dir {} is damaged: {} is for {} {} of cluster {}, but node.json describes {} {} of cluster {}",
            dir.root().display(),
            dir.cert_path().display(),
            who.role.name(),
            who.node_id,
            who.cluster_id,
            cfg.role.name(),
            cfg.node_id,
            cfg.cluster_id
        )));
    }
    let not_after = ca::cert_not_after(&der).map_err(|e| err(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if not_after < now {
        return Err(err(format!(
            "the node certificate {} expired at {}; this node must rejoin the cluster with a fresh data dir",
            dir.cert_path().display(),
            time::OffsetDateTime::from_unix_timestamp(not_after)
                .map(|t| t.to_string())
                .unwrap_or_default()
        )));
    }
    Ok(())
}

async fn start_manager(dir: DataDir, cfg: &NodeConfig, lock: File) -> Result<Running, DaemonError> {
    let (ca_pem, cert_pem, key_pem) = dir.load_certs()?;
    check_certs(cfg, &cert_pem, &dir)?;
    let raft_id = cfg.raft_id.ok_or_else(|| {
        err(format!(
            "data dir {} is damaged: a manager without a raft id",
            dir.root().display()
        ))
    })?;
    if cfg.initialised {
        let log_dir = dir.raft().join("log");
        let has_log = std::fs::read_dir(&log_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !has_log {
            return Err(err(format!(
                "data dir {} is damaged: the raft log {} is missing, so this manager's state and votes are lost. \
                 Remove the data dir and join the cluster again as a new manager",
                dir.root().display(),
                log_dir.display()
            )));
        }
    }
    let server_tls = tls::server_config(&ca_pem, &cert_pem, &key_pem).map_err(|e| err(e.to_string()))?;
    let client_tls = tls::client_config(&ca_pem, &cert_pem, &key_pem).map_err(|e| err(e.to_string()))?;
    let peers = Arc::new(PeerClient::new(client_tls));
    let store = Arc::new(Store::new());
    let transport = Arc::new(RaftTransport { peers: peers.clone() });
    let owner = LogOwner {
        cluster_id: cfg.cluster_id.clone(),
        raft_id,
    };
    let raft = RaftNode::open(&dir.raft(), owner, store.clone(), transport, RaftConfig::default())
        .await
        .map_err(|e| err(format!("cannot start raft in {}: {e}", dir.raft().display())))?;
    let manager = Arc::new(Manager {
        dispatcher: Arc::default(),
        local: LocalNode {
            node_id: cfg.node_id.clone(),
            cluster_id: cfg.cluster_id.clone(),
            hostname: cfg.hostname.clone(),
            advertise_addr: cfg.advertise_addr.clone(),
            role: NodeRole::Manager,
            data_dir: dir.root().to_path_buf(),
        },
        store,
        raft: Arc::new(raft),
        peers: peers.clone(),
        health: Arc::new(PeerHealth::default()),
        events: Arc::default(),
    });
    let listener = TcpListener::bind(&cfg.listen_addr)
        .await
        .map_err(|e| err(format!("cannot listen on {}: {e}", cfg.listen_addr)))?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(serve_tls(
            listener,
            server_tls,
            peer_router(manager.clone()),
            shutdown_rx.clone(),
        )),
        tokio::spawn(
            manager
                .health
                .clone()
                .run(manager.raft.clone(), peers, cfg.node_id.clone(), shutdown_rx.clone()),
        ),
        tokio::spawn(manager.clone().run_settings_controller(shutdown_rx.clone())),
        tokio::spawn(manager.clone().run_event_log(shutdown_rx.clone())),
        tokio::spawn(swarm_manager::leader::run(manager.clone(), shutdown_rx)),
    ];
    tracing::info!(node_id = %cfg.node_id, listen = %cfg.listen_addr, advertise = %cfg.advertise_addr, "manager started");
    let (role_tx, roles) = mpsc::unbounded_channel();
    let mut running = Running {
        manager: Some(manager.clone()),
        shutdown,
        tasks,
        dir,
        lock,
        peers: manager.peers.clone(),
        roles,
        leave: Arc::default(),
    };
    start_agent(&mut running, cfg, role_tx);
    Ok(running)
}

fn start_worker(dir: DataDir, cfg: &NodeConfig, lock: File) -> Result<Running, DaemonError> {
    let (ca_pem, cert_pem, key_pem) = dir.load_certs()?;
    check_certs(cfg, &cert_pem, &dir)?;
    let client_tls = tls::client_config(&ca_pem, &cert_pem, &key_pem).map_err(|e| err(e.to_string()))?;
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
        roles,
        leave: Arc::default(),
    };
    start_agent(&mut running, cfg, role_tx);
    Ok(running)
}

/// Connects the executor a node was set up with; the Docker engine is retried until reachable.
async fn connect_executor(
    kind: &str,
    files_root: &Path,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Arc<dyn Executor>> {
    if kind == "sim" {
        return Some(Arc::new(SimExecutor {
            start_delay: Duration::from_millis(100),
            failure_rate: 0.0,
        }));
    }
    loop {
        match DockerExecutor::connect(files_root.to_path_buf()).await {
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
    let (node_id, hostname, kind, runs_as) = (
        cfg.node_id.clone(),
        cfg.hostname.clone(),
        cfg.executor.clone(),
        (cfg.role, cfg.raft_id),
    );
    let mut shutdown = running.shutdown.subscribe();
    let files_root = running.dir.task_files();
    running.tasks.push(tokio::spawn(async move {
        if kind != "sim" {
            keep_task_files_in_memory(files_root.clone()).await;
        }
        let Some(executor) = connect_executor(&kind, &files_root, &mut shutdown).await else {
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
async fn serve_api(running: &mut Running, cfg: &NodeConfig) -> Result<(), DaemonError> {
    let state = ApiState {
        local: LocalNode {
            node_id: cfg.node_id.clone(),
            cluster_id: cfg.cluster_id.clone(),
            hostname: cfg.hostname.clone(),
            advertise_addr: cfg.advertise_addr.clone(),
            role: cfg.role,
            data_dir: running.dir.root().to_path_buf(),
        },
        manager: running.manager.clone(),
        remote_managers: cfg.managers.clone(),
        leave: running.leave.clone(),
    };
    let app = tower::util::MapRequestLayer::new(api::strip_version).layer(api::router(state));
    let socket = running.dir.socket();
    if socket.exists() {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Err(err(format!("{} is served by another process", socket.display())));
        }
        let _ = std::fs::remove_file(&socket);
    }
    let listener = UnixListener::bind(&socket)
        .map_err(|e| err(format!("cannot create control socket {}: {e}", socket.display())))?;
    running.dir.secure_socket()?;
    let mut rx = running.shutdown.subscribe();
    let unix_app = app.clone();
    running.tasks.push(tokio::spawn(async move {
        let serve =
            axum::serve(listener, axum::ServiceExt::into_make_service(unix_app)).with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "control socket server failed");
        }
    }));
    if let Some(addr) = &cfg.api_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| err(format!("cannot listen for the Engine API on {addr}: {e}")))?;
        let mut rx = running.shutdown.subscribe();
        running.tasks.push(tokio::spawn(async move {
            let serve =
                axum::serve(listener, axum::ServiceExt::into_make_service(app)).with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "TCP API server failed");
            }
        }));
    }
    tracing::info!(socket = %socket.display(), tcp = ?cfg.api_addr, "Engine API listening");
    Ok(())
}

async fn shutdown_signal() {
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
async fn stop(running: Running) -> File {
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
async fn leave_swarm(dir: &DataDir, cfg: &NodeConfig, lock: File) -> Result<(), DaemonError> {
    let mut never = watch::channel(false).1;
    let executor = tokio::time::timeout(
        Duration::from_secs(15),
        connect_executor(&cfg.executor, &dir.task_files(), &mut never),
    )
    .await
    .ok()
    .flatten();
    match executor {
        Some(executor) => match executor.task_ids(&cfg.node_id).await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = executor.remove_task(&cfg.node_id, &id).await {
                        tracing::warn!(task_id = %id, error = %e, "cannot remove the task's container");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list this node's containers to remove them"),
        },
        None => tracing::warn!("the engine did not answer; this node's containers are left as they are"),
    }
    if let Err(why) = memory_dir::release(&dir.task_files()) {
        return Err(err(format!("cannot remove the task files' tmpfs: {why}")));
    }
    let entries =
        std::fs::read_dir(dir.root()).map_err(|e| err(format!("cannot read {}: {e}", dir.root().display())))?;
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
        removed.map_err(|e| err(format!("cannot remove {}: {e}", path.display())))?;
    }
    drop(lock);
    let _ = std::fs::remove_file(dir.root().join("lock"));
    tracing::info!(node_id = %cfg.node_id, "left the swarm");
    Ok(())
}

/// Creates a new cluster with this node as its only manager, then runs until stopped.
pub async fn init(opts: InitOptions) -> Result<(), DaemonError> {
    let dir = DataDir::new(&opts.data_dir);
    let lock = dir.lock()?;
    dir.ensure_fresh()?;
    let advertise = resolve_advertise(&opts.listen_addr, opts.advertise_addr.as_deref())?;
    check_listen(&opts.listen_addr)?;
    dir.restrict()?;
    let hostname = opts.hostname.clone().unwrap_or_else(host::hostname);
    let cluster_id = new_id();
    let node_id = new_id();
    let raft_id = new_raft_id();

    let (ca_pem, ca_key_pem) = ca::generate_root().map_err(|e| err(e.to_string()))?;
    let (key_pem, csr) = ca::new_key_and_csr().map_err(|e| err(e.to_string()))?;
    let who = CertIdentity {
        node_id: node_id.clone(),
        role: NodeRole::Manager,
        cluster_id: cluster_id.clone(),
    };
    let cert_pem =
        ca::issue_node_cert(&ca_pem, &ca_key_pem, &csr, &who, ca::NODE_CERT_EXPIRY).map_err(|e| err(e.to_string()))?;
    dir.save_certs(&ca_pem, &cert_pem, &key_pem)?;
    let mut cfg = NodeConfig::new(node_id.clone(), cluster_id.clone(), NodeRole::Manager);
    cfg.raft_id = Some(raft_id);
    cfg.hostname = hostname.clone();
    cfg.listen_addr = opts.listen_addr.clone();
    cfg.advertise_addr = advertise.clone();
    cfg.api_addr = opts.api_addr.clone();
    cfg.executor = opts.executor.clone();
    dir.save_config(&cfg)?;

    let mut running = start_manager(dir.clone(), &cfg, lock).await?;
    let manager = running.manager.clone().ok_or_else(|| err("manager did not start"))?;
    manager
        .raft
        .bootstrap(ManagerAddr {
            node_id: node_id.clone(),
            addr: advertise.clone(),
        })
        .await
        .map_err(|e| err(format!("cannot bootstrap raft: {e}")))?;

    let digest = ca::root_digest(&ca_pem);
    let mut spec = ClusterSpec::defaults();
    if let Some(n) = opts.snapshot_interval {
        if n == 0 {
            return Err(err("--snapshot-interval must be at least 1"));
        }
        spec.raft.snapshot_interval = n;
    }
    if let Some(n) = opts.log_entries_for_slow_followers {
        spec.raft.log_entries_for_slow_followers = n;
    }
    let now = Timestamp::now();
    let cluster = Cluster {
        id: cluster_id.clone(),
        created_at: now,
        updated_at: now,
        spec,
        tls_info: ca::tls_info(&ca_pem),
        default_addr_pool: None,
        subnet_size: 24,
        data_path_port: 4789,
        join_tokens: Some(JoinTokens {
            worker: JoinToken::generate(&digest),
            manager: JoinToken::generate(&digest),
        }),
        root_ca: Some(RootCaState {
            ca_cert_pem: ca_pem.clone(),
            ca_key_pem,
            rotated_tokens: Vec::new(),
            removed_nodes: Default::default(),
        }),
        ..Default::default()
    };
    let node = Node {
        id: node_id.clone(),
        created_at: now,
        updated_at: now,
        spec: NodeSpec {
            role: NodeRole::Manager,
            availability: opts.availability.unwrap_or_default(),
            ..Default::default()
        },
        description: local_description(&hostname, &ca_pem),
        status: NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: ip_of(&advertise),
        },
        raft_id: Some(raft_id),
        ..Default::default()
    };
    let tokens = cluster.join_tokens.clone().unwrap_or_default();
    manager
        .commit(vec![
            StoreAction::Create(cluster.into_object()),
            StoreAction::Create(node.into_object()),
        ])
        .await
        .map_err(|e| err(format!("cannot create the cluster: {}", e.message)))?;
    cfg.initialised = true;
    dir.save_config(&cfg)?;
    serve_api(&mut running, &cfg).await?;

    println!("Swarm initialized: current node ({node_id}) is now a manager.\n");
    println!("To add a worker to this swarm, run the following command:\n");
    println!("    swarmd join --token {} {advertise}\n", tokens.worker);
    println!("To add a manager to this swarm, run the following command:\n");
    println!("    swarmd join --token {} {advertise}\n", tokens.manager);
    println!("Control socket: {}", dir.socket().display());
    role_change::supervise(running, cfg).await
}

/// The join handshake: downloads the root CA without trusting anyone, pins it through the
/// token's digest, then sends a CSR with the token over TLS verified against that CA. Returns
/// (CA PEM, private key PEM, the manager's answer).
async fn obtain_identity(
    remote: &str,
    raw_token: &str,
    token: &JoinToken,
    mut req: JoinRequest,
) -> Result<(String, String, JoinResponse), DaemonError> {
    let unverified = PeerClient::new(tls::unverified_client_config());
    let ca_pem = unverified
        .call(remote, "/ca", None, Duration::from_secs(10))
        .await
        .map_err(|e| err(format!("cannot fetch the root CA from the manager at {remote}: {e}")))?;
    let ca_pem = String::from_utf8(ca_pem.to_vec()).map_err(|_| err("the root CA from the manager is not text"))?;
    if ca::root_digest(&ca_pem) != token.ca_digest {
        return Err(err(format!(
            "the manager at {remote} presented a root CA whose digest does not match the join token: the token is \
             for another cluster, or the connection is being intercepted. Refusing to join"
        )));
    }
    let (key_pem, csr_pem) = ca::new_key_and_csr().map_err(|e| err(e.to_string()))?;
    let pinned = PeerClient::new(tls::pinned_client_config(&ca_pem).map_err(|e| err(e.to_string()))?);
    let desc = local_description(&req.hostname, &ca_pem);
    req.token = raw_token.trim().to_string();
    req.csr_pem = csr_pem;
    req.platform = desc.platform;
    req.resources = desc.resources;
    let body = serde_json::to_vec(&req).map_err(|e| err(e.to_string()))?;
    let resp = pinned
        .call(remote, "/join", Some(full(body)), Duration::from_secs(30))
        .await
        .map_err(|e| match e {
            PeerError::Status { message, .. } => err(format!("the manager at {remote} refused the join: {message}")),
            other => err(format!("cannot join through the manager at {remote}: {other}")),
        })?;
    let resp: JoinResponse =
        serde_json::from_slice(&resp).map_err(|e| err(format!("the manager's join answer is not understood: {e}")))?;
    if resp.ca_pem != ca_pem {
        return Err(err(
            "the manager answered with a different root CA than the one pinned; refusing to join",
        ));
    }
    Ok((ca_pem, key_pem, resp))
}

/// Joins an existing cluster as a worker or a manager (the token decides), then runs.
pub async fn join(opts: JoinOptions) -> Result<(), DaemonError> {
    let dir = DataDir::new(&opts.data_dir);
    let lock = dir.lock()?;
    dir.ensure_fresh()?;
    let token = JoinToken::parse(&opts.token).map_err(|e| err(e.to_string()))?;
    let advertise = resolve_advertise(&opts.listen_addr, opts.advertise_addr.as_deref())?;
    check_listen(&opts.listen_addr)?;
    dir.restrict()?;
    let hostname = opts.hostname.clone().unwrap_or_else(host::hostname);
    let remote = &opts.remote_addr;

    let (ca_pem, key_pem, resp) = obtain_identity(
        remote,
        &opts.token,
        &token,
        JoinRequest {
            token: opts.token.trim().to_string(),
            csr_pem: String::new(),
            hostname: hostname.clone(),
            advertise_addr: advertise.clone(),
            platform: Default::default(),
            resources: Default::default(),
            engine: Default::default(),
            labels: opts.labels.clone(),
            availability: opts.availability,
        },
    )
    .await?;

    // 3. Keep the identity, then start.
    dir.save_certs(&ca_pem, &resp.cert_pem, &key_pem)?;
    let mut cfg = NodeConfig::new(resp.node_id.clone(), resp.cluster_id.clone(), resp.role);
    cfg.raft_id = resp.raft_id;
    cfg.hostname = hostname;
    cfg.listen_addr = opts.listen_addr.clone();
    cfg.advertise_addr = advertise.clone();
    cfg.api_addr = opts.api_addr.clone();
    cfg.managers = resp.managers.clone();
    cfg.executor = opts.executor.clone();
    dir.save_config(&cfg)?;

    let mut running = match resp.role {
        NodeRole::Manager => {
            let running = start_manager(dir.clone(), &cfg, lock).await?;
            let raft_id = resp
                .raft_id
                .ok_or_else(|| err("the manager did not assign a raft id"))?;
            if let Err(why) = become_raft_member(&running, remote, raft_id, &advertise).await {
                stop(running).await;
                return Err(err(format!(
                    "registered as node {} but could not become a raft member: {why}. Remove {} and join again",
                    resp.node_id,
                    dir.root().display()
                )));
            }
            running
        }
        NodeRole::Worker => start_worker(dir.clone(), &cfg, lock)?,
    };
    cfg.initialised = true;
    dir.save_config(&cfg)?;
    serve_api(&mut running, &cfg).await?;
    println!(
        "This node joined a swarm as a {}. Node ID: {}",
        resp.role.name(),
        resp.node_id
    );
    println!("Control socket: {}", dir.socket().display());
    role_change::supervise(running, cfg).await
}

/// Asks the manager at `remote` to add this (started) manager to raft: as a learner until it
/// has caught up, then as a voter.
async fn become_raft_member(running: &Running, remote: &str, raft_id: u64, advertise: &str) -> Result<(), String> {
    let body = serde_json::to_vec(&JoinRaftRequest {
        raft_id,
        addr: advertise.to_string(),
    })
    .map_err(|e| e.to_string())?;
    running
        .peers
        .call(remote, "/join/raft", Some(full(body)), Duration::from_secs(300))
        .await
        .map(drop)
        .map_err(|e| match e {
            PeerError::Status { message, .. } => message,
            other => other.to_string(),
        })
}

/// Restarts a node from its data dir, with the settings it was created with.
pub async fn run(data_dir: PathBuf) -> Result<(), DaemonError> {
    let dir = DataDir::new(&data_dir);
    let lock = dir.lock()?;
    let cfg = dir.load_config()?;
    // Data dirs from older versions may be more open than today's.
    dir.restrict()?;
    // A manager that is not yet in raft (a promotion or a join that was interrupted) joins
    // once it runs; anything else half set up cannot continue.
    let joining_manager = cfg.role == NodeRole::Manager && cfg.raft_id.is_some();
    if !cfg.initialised && !joining_manager {
        return Err(err(format!(
            "data dir {} was not fully set up (swarmd init or join was interrupted); remove it and run init or join again",
            dir.root().display()
        )));
    }
    let mut running = match cfg.role {
        NodeRole::Manager => {
            let running = start_manager(dir.clone(), &cfg, lock).await?;
            if cfg.initialised
                && let Some(m) = &running.manager
                && !m.raft.wait_for_local_recovery(Duration::from_secs(60)).await
            {
                tracing::warn!("state is still being re-applied from the log; serving reads anyway");
            }
            running
        }
        NodeRole::Worker => start_worker(dir.clone(), &cfg, lock)?,
    };
    serve_api(&mut running, &cfg).await?;
    role_change::supervise(running, cfg).await
}

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub nodes: usize,
    pub token: String,
    pub remote_addr: String,
    pub start_delay: Duration,
    pub failure_rate: f64,
    pub hostname_prefix: String,
}

/// Joins `nodes` simulated workers from this one process, each with its own identity and its
/// own dispatcher session, running tasks with the simulated executor. For scale tests.
pub async fn simulate(opts: SimulateOptions) -> Result<(), DaemonError> {
    let token = JoinToken::parse(&opts.token).map_err(|e| err(e.to_string()))?;
    if !(0.0..=1.0).contains(&opts.failure_rate) {
        return Err(err("--failure-rate must be between 0 and 1"));
    }
    let executor: Arc<dyn Executor> = Arc::new(SimExecutor {
        start_delay: opts.start_delay,
        failure_rate: opts.failure_rate,
    });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let started = std::time::Instant::now();
    let mut joined = 0usize;
    let mut handles = Vec::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..opts.nodes {
        let (limit, remote, raw, token) = (
            limit.clone(),
            opts.remote_addr.clone(),
            opts.token.clone(),
            token.clone(),
        );
        let hostname = format!("{}-{i}", opts.hostname_prefix);
        joins.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let req = JoinRequest {
                token: String::new(),
                csr_pem: String::new(),
                hostname: hostname.clone(),
                advertise_addr: String::new(),
                platform: Default::default(),
                resources: Default::default(),
                engine: Default::default(),
                labels: Labels::new(),
                availability: None,
            };
            let (ca, key, resp) = obtain_identity(&remote, &raw, &token, req).await?;
            if resp.role != NodeRole::Worker {
                return Err(err("simulate needs a worker token: simulated nodes cannot be managers"));
            }
            let tls = tls::client_config(&ca, &resp.cert_pem, &key).map_err(|e| err(e.to_string()))?;
            Ok((hostname, resp, Arc::new(PeerClient::new(tls))))
        });
    }
    while let Some(res) = joins.join_next().await {
        let (hostname, resp, peers) = res.map_err(|e| err(e.to_string()))??;
        let agent = Arc::new(Agent::new(
            resp.node_id,
            hostname,
            peers,
            resp.managers,
            executor.clone(),
            None,
        ));
        handles.push(tokio::spawn(agent.run(shutdown.clone())));
        joined += 1;
    }
    println!(
        "simulating {joined} worker nodes (joined in {:.1} s); stop with SIGTERM or Ctrl-C",
        started.elapsed().as_secs_f64()
    );
    shutdown_signal().await;
    let _ = shutdown_tx.send(true);
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
    }
    Ok(())
}
