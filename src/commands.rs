//! `swarmd`'s commands: create a cluster (`init`), join one (`join`), restart from a data dir
//! (`run`), and join many simulated workers from one process (`simulate`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use swarm_agent::Agent;
use swarm_agent::exec::Executor;
use swarm_agent::exec::sim::SimExecutor;
use swarm_ca as ca;
use swarm_ca::CertIdentity;
use swarm_ca::JoinToken;
use swarm_manager::ipam;
use swarm_manager::store::StoreAction;
use swarm_model::Availability;
use swarm_model::Cluster;
use swarm_model::ClusterSpec;
use swarm_model::Ipam;
use swarm_model::JoinTokens;
use swarm_model::Labels;
use swarm_model::Network;
use swarm_model::Node;
use swarm_model::NodeRole;
use swarm_model::NodeSpec;
use swarm_model::NodeState;
use swarm_model::NodeStatus;
use swarm_model::RootCaState;
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::new_id;
use swarm_model::new_raft_id;
use swarm_net::peer_client::PeerClient;
use swarm_net::tls;
use swarm_protocol::host;
use swarm_protocol::peer::JoinRequest;
use swarm_raft::ManagerAddr;
use tokio::sync::watch;

use crate::api_listener::ApiTlsOptions;
use crate::api_listener::api_settings;
use crate::assembly::Unlocked;
use crate::assembly::cert_expiry_override;
use crate::assembly::leave_swarm;
use crate::assembly::new_manager_key;
use crate::assembly::serve_api;
use crate::assembly::shutdown_signal;
use crate::assembly::start_manager;
use crate::assembly::start_worker;
use crate::assembly::stop;
use crate::assembly::wait_for_unlock;
use crate::data_key;
use crate::datadir::DataDir;
use crate::datadir::NodeConfig;
use crate::error::DaemonError;
use crate::identity::become_raft_member;
use crate::identity::check_listen;
use crate::identity::expired_at;
use crate::identity::ip_of;
use crate::identity::local_description;
use crate::identity::obtain_identity;
use crate::identity::rejoin;
use crate::identity::resolve_advertise;
use crate::role_change;

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub listen_addr: String,
    pub advertise_addr: Option<String>,
    pub hostname: Option<String>,
    pub api_addr: Option<String>,
    /// TLS (or knowingly plain text) for the TCP API.
    pub api_tls: ApiTlsOptions,
    pub snapshot_interval: Option<u64>,
    pub log_entries_for_slow_followers: Option<u64>,
    pub availability: Option<Availability>,
    /// `docker` (default) or `sim`.
    pub executor: String,
    /// Where containers' resolvers forward names outside the cluster (IP or IP:PORT); the
    /// host's resolvers when empty.
    pub dns_upstream: Vec<String>,
    /// Where overlay subnets come from (Swarm's `--default-addr-pool`); empty: `10.0.0.0/8`.
    pub default_addr_pool: Vec<String>,
    /// The size of each overlay subnet (`--default-addr-pool-mask-length`); default 24.
    pub default_addr_pool_mask_length: Option<u8>,
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
    /// TLS (or knowingly plain text) for the TCP API.
    pub api_tls: ApiTlsOptions,
    pub labels: Labels,
    pub availability: Option<Availability>,
    /// `docker` (default) or `sim`.
    pub executor: String,
    /// Where containers' resolvers forward names outside the cluster (IP or IP:PORT); the
    /// host's resolvers when empty.
    pub dns_upstream: Vec<String>,
}

/// Creates a new cluster with this node as its only manager, then runs until stopped.
pub async fn init(opts: InitOptions) -> Result<(), DaemonError> {
    let subnet_size = opts.default_addr_pool_mask_length.unwrap_or(ipam::DEFAULT_SUBNET_SIZE);
    match opts.default_addr_pool.is_empty() {
        true => ipam::check_pools(&[ipam::DEFAULT_POOL.to_string()], subnet_size)?,
        false => ipam::check_pools(&opts.default_addr_pool, subnet_size)?,
    };
    let api_tls = api_settings(opts.api_addr.as_deref(), &opts.api_tls)?;
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

    let (ca_pem, ca_key_pem) = ca::generate_root()?;
    let (key_pem, csr) = ca::new_key_and_csr()?;
    let who = CertIdentity {
        node_id: node_id.clone(),
        role: NodeRole::Manager,
        cluster_id: cluster_id.clone(),
    };
    let expiry = cert_expiry_override()?.unwrap_or(ca::NODE_CERT_EXPIRY);
    let cert_pem = ca::issue_node_cert(&ca_pem, &ca_key_pem, &csr, &who, expiry)?;
    dir.save_certs(&ca_pem, &cert_pem, &key_pem)?;
    let mut cfg = NodeConfig::new(node_id.clone(), cluster_id.clone(), NodeRole::Manager);
    cfg.raft_id = Some(raft_id);
    cfg.hostname = hostname.clone();
    cfg.listen_addr = opts.listen_addr.clone();
    cfg.advertise_addr = advertise.clone();
    cfg.api_addr = opts.api_addr.clone();
    cfg.api_tls = api_tls.clone();
    cfg.insecure_api = opts.api_tls.insecure_api;
    cfg.executor = opts.executor.clone();
    cfg.dns_upstream = opts.dns_upstream.clone();
    dir.save_config(&cfg)?;

    let key = new_manager_key(&dir)?;
    let (mut running, manager) = start_manager(dir.clone(), &cfg, lock, key).await?;
    manager
        .raft
        .bootstrap(ManagerAddr {
            node_id: node_id.clone(),
            addr: advertise.clone(),
        })
        .await
        .map_err(DaemonError::Bootstrap)?;

    let digest = ca::root_digest(&ca_pem);
    let mut spec = ClusterSpec::defaults();
    if let Some(n) = opts.snapshot_interval {
        if n == 0 {
            return Err(DaemonError::SnapshotInterval);
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
        default_addr_pool: (!opts.default_addr_pool.is_empty()).then(|| opts.default_addr_pool.clone()),
        subnet_size: u32::from(subnet_size),
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
            unlock_key: None,
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
        .committer
        .commit(vec![
            StoreAction::Create(cluster.into_object()),
            StoreAction::Create(node.into_object()),
            StoreAction::Create(ingress_network(now).into_object()),
        ])
        .await
        .map_err(DaemonError::CreateCluster)?;
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

/// The routing mesh's network, which Swarm makes with the cluster. The state machine gives it
/// the pool's first subnet and the first VXLAN ID, as Swarm's ingress usually has.
fn ingress_network(now: Timestamp) -> Network {
    Network {
        name: "ingress".to_string(),
        id: new_id(),
        created_at: now,
        updated_at: now,
        scope: "swarm".to_string(),
        driver: "overlay".to_string(),
        ipam: Ipam {
            driver: "default".to_string(),
            ..Default::default()
        },
        ingress: true,
        ..Default::default()
    }
}

/// Joins an existing cluster as a worker or a manager (the token decides), then runs.
pub async fn join(opts: JoinOptions) -> Result<(), DaemonError> {
    let api_tls = api_settings(opts.api_addr.as_deref(), &opts.api_tls)?;
    let dir = DataDir::new(&opts.data_dir);
    let lock = dir.lock()?;
    dir.ensure_fresh()?;
    let token = JoinToken::parse(&opts.token)?;
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
    cfg.api_tls = api_tls.clone();
    cfg.insecure_api = opts.api_tls.insecure_api;
    cfg.managers = resp.managers.clone();
    cfg.executor = opts.executor.clone();
    cfg.dns_upstream = opts.dns_upstream.clone();
    dir.save_config(&cfg)?;

    let mut running = match resp.role {
        NodeRole::Manager => {
            let key = new_manager_key(&dir)?;
            let (running, _) = start_manager(dir.clone(), &cfg, lock, key).await?;
            let raft_id = resp.raft_id.ok_or(DaemonError::NoRaftId)?;
            if let Err(source) = become_raft_member(&running.peers, remote, raft_id, &advertise).await {
                stop(running).await;
                return Err(DaemonError::NotRaftMember {
                    node_id: resp.node_id,
                    dir: dir.root().to_path_buf(),
                    source,
                });
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

/// Restarts a node from its data dir, with the settings it was created with. A worker whose
/// certificate expired while it was off comes back with `rejoin_token` (a join token) and proof
/// of its old key; a manager renews its own certificate from its replica of the CA.
pub async fn run(data_dir: PathBuf, rejoin_token: Option<String>) -> Result<(), DaemonError> {
    let dir = DataDir::new(&data_dir);
    let lock = dir.lock()?;
    if dir.finish_interrupted_switch()? {
        tracing::info!("completed a role switch that was interrupted");
    }
    let mut cfg = dir.load_config()?;
    if let Some(token) = rejoin_token {
        let cert_pem = dir.load_node_cert()?;
        match (expired_at(&cert_pem), cfg.role) {
            (Some(_), NodeRole::Worker) => rejoin(&dir, &mut cfg, &token).await?,
            (Some(_), NodeRole::Manager) => {
                tracing::info!("--rejoin-token is not needed: a manager renews its own certificate")
            }
            (None, _) => tracing::info!("--rejoin-token is not needed: the node certificate is still valid"),
        }
    }
    // Data dirs from older versions may be more open than today's.
    dir.restrict()?;
    // A manager that is not yet in raft (a promotion or a join that was interrupted) joins
    // once it runs; anything else half set up cannot continue.
    let joining_manager = cfg.role == NodeRole::Manager && cfg.raft_id.is_some();
    if !cfg.initialised && !joining_manager {
        return Err(DaemonError::Unfinished(dir.root().to_path_buf()));
    }
    let mut running = match cfg.role {
        NodeRole::Manager => {
            // Autolock: a sealed data key waits for the unlock key first.
            let key = match data_key::unlocked(&dir)? {
                Ok(key) => key,
                Err(sealed) => match wait_for_unlock(&dir, &cfg, sealed).await? {
                    Unlocked::Key(key) => key,
                    Unlocked::Leave => return leave_swarm(&dir, &cfg, lock).await,
                    Unlocked::Stopped => return Ok(()),
                },
            };
            // A full disk (a manager killed while its disk was full, say) is waited out.
            let mut lock = Some(lock);
            let running = role_change::retry_while_out_of_space("starting the manager", || {
                let (dir, held, cfg, key) = (dir.clone(), lock.take(), &cfg, key.clone());
                async move {
                    let held = match held {
                        Some(l) => l,
                        None => dir.lock()?,
                    };
                    Ok(start_manager(dir, cfg, held, key).await?.0)
                }
            })
            .await?;
            if cfg.initialised {
                role_change::await_local_recovery(&running, Duration::from_secs(60)).await;
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
    let token = JoinToken::parse(&opts.token)?;
    if !(0.0..=1.0).contains(&opts.failure_rate) {
        return Err(DaemonError::FailureRate);
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
                return Err(DaemonError::SimulateNeedsWorkerToken);
            }
            let tls = tls::client_config(&ca, tls::NodeIdentity::new(&resp.cert_pem, &key)?)?;
            Ok((hostname, resp, Arc::new(PeerClient::new(tls))))
        });
    }
    while let Some(res) = joins.join_next().await {
        let (hostname, resp, peers) = res??;
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
