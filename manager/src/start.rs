//! Assembling a manager: its raft node over the mutual-TLS transport, the store, the handles the
//! APIs use, the listener other nodes call, and the background tasks every manager runs (peer
//! pings, local settings, the event log, and the leader's duties while it leads).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use swarm_net::peer_client::PeerClient;
use swarm_net::raft_transport::RaftTransport;
use swarm_net::server::serve_tls;
use swarm_net::tls;
use swarm_net::tls::NodeIdentity;
use swarm_net::tls::TlsError;
use swarm_raft::DataKey;
use swarm_raft::LogOwner;
use swarm_raft::OpenError;
use swarm_raft::RaftConfig;
use swarm_raft::RaftNode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::commit::Committer;
use crate::dispatcher::Dispatcher;
use crate::events;
use crate::health::PeerHealth;
use crate::leader::LeaderDuties;
use crate::peer::peer_router;
use crate::runtime::LocalNode;
use crate::runtime::Manager;
use crate::settings;
use crate::store::Store;

/// What a manager starts from: who it is, where it listens, its raft incarnation and state,
/// and its certificates.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub local: LocalNode,
    pub listen_addr: String,
    pub raft_id: u64,
    /// Raft's log and snapshots.
    pub raft_dir: PathBuf,
    /// This manager has been a raft member: its log must exist, never be created afresh.
    pub existing_log: bool,
    /// The key raft's log and snapshots are sealed with on disk (kept by the daemon).
    pub data_key: DataKey,
    pub ca_pem: String,
    /// The node certificate and key, which renewal replaces in place.
    pub identity: Arc<NodeIdentity>,
    /// Overrides the cluster's node certificate lifetime (tests of renewal only: the API keeps
    /// Swarm's minimum of one hour).
    pub cert_expiry_override: Option<Duration>,
}

/// A started manager: its handles, and the tasks to wait for once shutdown is signalled.
pub struct StartedManager {
    pub manager: Arc<Manager>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Why a manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the node certificate cannot be used for TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot start raft in {}: {source}", dir.display())]
    Raft { dir: PathBuf, source: OpenError },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

/// Opens raft, binds the manager listener and starts every background task; they all stop when
/// `shutdown` turns true. Raft itself stops with [`RaftNode::shutdown`].
pub async fn start(cfg: ManagerConfig, shutdown: watch::Receiver<bool>) -> Result<StartedManager, StartError> {
    let server_tls = tls::server_config(&cfg.ca_pem, cfg.identity.clone())?;
    let client_tls = tls::client_config(&cfg.ca_pem, cfg.identity.clone())?;
    let peers = Arc::new(PeerClient::new(client_tls));
    let store = Arc::new(Store::new());
    let transport = Arc::new(RaftTransport { peers: peers.clone() });
    let owner = LogOwner {
        cluster_id: cfg.local.cluster_id.clone(),
        raft_id: cfg.raft_id,
    };
    let raft_config = RaftConfig {
        existing_log: cfg.existing_log,
        ..RaftConfig::default()
    };
    let raft = RaftNode::open(
        &cfg.raft_dir,
        owner,
        &cfg.data_key,
        store.clone(),
        transport,
        raft_config,
    )
    .await
    .map_err(|source| StartError::Raft {
        dir: cfg.raft_dir.clone(),
        source,
    })?;
    let raft = Arc::new(raft);
    let committer = Arc::new(Committer::new(raft.clone()));
    let dispatcher = Arc::new(Dispatcher::new(store.clone(), raft.clone(), committer.clone()));
    let manager = Arc::new(Manager {
        local: cfg.local.clone(),
        store: store.clone(),
        raft: raft.clone(),
        committer: committer.clone(),
        dispatcher: dispatcher.clone(),
        peers: peers.clone(),
        health: Arc::new(PeerHealth::default()),
        events: Arc::default(),
        cert_expiry_override: cfg.cert_expiry_override,
    });
    let listener = TcpListener::bind(&cfg.listen_addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: cfg.listen_addr.clone(),
            source,
        })?;
    let duties = LeaderDuties {
        raft: raft.clone(),
        store: store.clone(),
        committer,
        dispatcher,
    };
    let tasks = vec![
        tokio::spawn(serve_tls(
            listener,
            server_tls,
            peer_router(manager.clone()),
            shutdown.clone(),
        )),
        tokio::spawn(
            manager
                .health
                .clone()
                .run(raft.clone(), peers, cfg.local.node_id.clone(), shutdown.clone()),
        ),
        tokio::spawn(settings::apply_cluster_settings(store.clone(), raft, shutdown.clone())),
        tokio::spawn(events::record_store_changes(
            store,
            manager.events.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(duties.run(shutdown)),
    ];
    tracing::info!(
        node_id = %cfg.local.node_id,
        listen = %cfg.listen_addr,
        advertise = %cfg.local.advertise_addr,
        "manager started"
    );
    Ok(StartedManager { manager, tasks })
}
