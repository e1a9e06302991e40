//! `swarmd`: the swarm-rs node daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clap::Subcommand;
use swarm_daemon as daemon;
use swarm_model::Availability;
use swarm_model::Labels;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "swarmd",
    version,
    about = "swarm-rs node daemon: a Docker Swarm-compatible manager or worker"
)]
struct Cli {
    /// Where this node keeps its state.
    #[arg(long, global = true, env = "SWARMD_DATA_DIR", default_value = daemon::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Log filter, e.g. `info` or `swarm=debug` (overridden by RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new cluster with this node as its first manager.
    Init {
        /// Address to listen on for other nodes.
        #[arg(long, default_value = daemon::DEFAULT_LISTEN_ADDR)]
        listen_addr: String,
        /// Address other nodes dial (IP or IP:PORT).
        #[arg(long)]
        advertise_addr: Option<String>,
        /// Node hostname, if not the machine's.
        #[arg(long)]
        hostname: Option<String>,
        /// Also serve the Engine API on this TCP address: with --tlsverify, on loopback, or with
        /// --insecure-api.
        #[arg(long)]
        api_addr: Option<String>,
        #[command(flatten)]
        api_tls: ApiTlsFlags,
        /// Raft log entries between snapshots (Swarm's --snapshot-interval).
        #[arg(long)]
        snapshot_interval: Option<u64>,
        /// Log entries kept behind a snapshot for slow managers.
        #[arg(long)]
        log_entries_for_slow_followers: Option<u64>,
        /// Whether this node takes tasks: active, pause or drain.
        #[arg(long, value_parser = parse_availability)]
        availability: Option<Availability>,
        /// How tasks run on this node: docker or sim (simulated, for benchmarks).
        #[arg(long, default_value = "docker", value_parser = ["docker", "sim"])]
        executor: String,
        /// Resolver (IP or IP:PORT) that containers' names outside the cluster are forwarded
        /// to, instead of the host's (repeatable).
        #[arg(long = "dns-upstream", value_parser = parse_upstream)]
        dns_upstream: Vec<String>,
        /// Address pool (CIDR) that overlay subnets come from, instead of 10.0.0.0/8 (repeatable).
        #[arg(long)]
        default_addr_pool: Vec<String>,
        /// Prefix length of each overlay subnet taken from the pool.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=32))]
        default_addr_pool_mask_length: Option<u8>,
    },
    /// Join a cluster as a worker or a manager; the token decides which.
    Join {
        /// A join token from `swarmctl swarm join-token worker|manager`.
        #[arg(long)]
        token: String,
        #[arg(long, default_value = daemon::DEFAULT_LISTEN_ADDR)]
        listen_addr: String,
        #[arg(long)]
        advertise_addr: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long)]
        api_addr: Option<String>,
        #[command(flatten)]
        api_tls: ApiTlsFlags,
        /// Node label, `key=value` (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Whether this node takes tasks: active, pause or drain.
        #[arg(long, value_parser = parse_availability)]
        availability: Option<Availability>,
        /// How tasks run on this node: docker or sim (simulated, for benchmarks).
        #[arg(long, default_value = "docker", value_parser = ["docker", "sim"])]
        executor: String,
        /// Resolver (IP or IP:PORT) that containers' names outside the cluster are forwarded
        /// to, instead of the host's (repeatable).
        #[arg(long = "dns-upstream", value_parser = parse_upstream)]
        dns_upstream: Vec<String>,
        /// A manager's address, HOST:PORT.
        manager_addr: String,
    },
    /// Restart a node from its data dir (the default when no command is given).
    Run {
        /// A join token, for a worker whose certificate expired while it was off: it comes back
        /// under its node ID, proving with its old key that it is that node.
        #[arg(long)]
        rejoin_token: Option<String>,
    },
    /// Join N simulated worker nodes from this process (scale tests and benchmarks).
    Simulate {
        /// How many nodes.
        #[arg(long)]
        nodes: usize,
        /// A worker join token.
        #[arg(long)]
        token: String,
        /// How long preparing a simulated task takes, in milliseconds.
        #[arg(long, default_value_t = 100)]
        start_delay_ms: u64,
        /// Probability that a simulated task fails after a while (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        failure_rate: f64,
        /// Hostnames are `<prefix>-<n>`.
        #[arg(long, default_value = "sim")]
        hostname_prefix: String,
        /// A manager's address, HOST:PORT.
        manager_addr: String,
    },
}

/// How the TCP Engine API is protected, with dockerd's flags.
#[derive(clap::Args)]
struct ApiTlsFlags {
    /// Serve the TCP API with TLS, and accept only clients whose certificate --tlscacert issued.
    #[arg(long)]
    tlsverify: bool,
    /// The CA that issues API client certificates (yours, never the cluster's).
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    /// The API's server certificate.
    #[arg(long)]
    tlscert: Option<PathBuf>,
    /// The API's server key.
    #[arg(long)]
    tlskey: Option<PathBuf>,
    /// Serve the TCP API in plain text on a non-loopback address: anyone who reaches it is root
    /// on every node.
    #[arg(long)]
    insecure_api: bool,
}

impl From<ApiTlsFlags> for daemon::ApiTlsOptions {
    fn from(f: ApiTlsFlags) -> Self {
        Self {
            tlsverify: f.tlsverify,
            tlscacert: f.tlscacert,
            tlscert: f.tlscert,
            tlskey: f.tlskey,
            insecure_api: f.insecure_api,
        }
    }
}

/// A flag value swarmd cannot use.
#[derive(Debug, thiserror::Error)]
enum FlagError {
    #[error("invalid availability {0:?}: expected active, pause or drain")]
    Availability(String),
    #[error("invalid label {0:?}: expected key=value")]
    Label(String),
    #[error("invalid DNS upstream {0:?}: expected an IP address or IP:PORT")]
    Upstream(String),
}

fn parse_upstream(s: &str) -> Result<String, FlagError> {
    match swarm_agent::dns::upstream_addr(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(FlagError::Upstream(s.to_string())),
    }
}

fn parse_availability(s: &str) -> Result<Availability, FlagError> {
    match s {
        "active" => Ok(Availability::Active),
        "pause" => Ok(Availability::Pause),
        "drain" => Ok(Availability::Drain),
        other => Err(FlagError::Availability(other.to_string())),
    }
}

fn parse_label(s: &str) -> Result<(String, String), FlagError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(FlagError::Label(s.to_string())),
    }
}

/// Fault injection for the fault suite (tests/e2e/chaos): when set, this file holds how many
/// milliseconds this daemon's wall clock runs off the system clock, re-read as it changes.
const WALL_CLOCK_SKEW_FILE: &str = "SWARMD_WALL_CLOCK_SKEW_FILE";

/// Keeps this process's wall-clock skew equal to what the skew file says (a missing or
/// unreadable file means no skew), so a test can jump one daemon's clock while it runs.
fn follow_wall_clock_skew(path: std::path::PathBuf) {
    std::thread::spawn(move || {
        loop {
            let millis = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0);
            swarm_model::set_wall_clock_skew(millis.saturating_mul(1_000_000));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            EnvFilter::try_new(format!(
                "{},openraft=warn,raft_log=warn,chunked_wal=warn,hickory_server=warn,hickory_proto=warn",
                cli.log_level
            ))
        })
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    if let Some(path) = std::env::var_os(WALL_CLOCK_SKEW_FILE) {
        follow_wall_clock_skew(path.into());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("swarmd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let data_dir = cli.data_dir.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Init {
                listen_addr,
                advertise_addr,
                hostname,
                api_addr,
                api_tls,
                snapshot_interval,
                log_entries_for_slow_followers,
                availability,
                executor,
                dns_upstream,
                default_addr_pool,
                default_addr_pool_mask_length,
            }) => {
                daemon::init(daemon::InitOptions {
                    data_dir,
                    listen_addr,
                    advertise_addr,
                    hostname,
                    api_addr,
                    api_tls: api_tls.into(),
                    snapshot_interval,
                    log_entries_for_slow_followers,
                    availability,
                    executor,
                    dns_upstream,
                    default_addr_pool,
                    default_addr_pool_mask_length,
                })
                .await
            }
            Some(Command::Join {
                token,
                listen_addr,
                advertise_addr,
                hostname,
                api_addr,
                api_tls,
                labels,
                availability,
                executor,
                dns_upstream,
                manager_addr,
            }) => {
                daemon::join(daemon::JoinOptions {
                    data_dir,
                    token,
                    remote_addr: manager_addr,
                    listen_addr,
                    advertise_addr,
                    hostname,
                    api_addr,
                    api_tls: api_tls.into(),
                    labels: labels.into_iter().collect::<Labels>(),
                    availability,
                    executor,
                    dns_upstream,
                })
                .await
            }
            Some(Command::Run { rejoin_token }) => daemon::run(data_dir, rejoin_token).await,
            None => daemon::run(data_dir, None).await,
            Some(Command::Simulate {
                nodes,
                token,
                start_delay_ms,
                failure_rate,
                hostname_prefix,
                manager_addr,
            }) => {
                daemon::simulate(daemon::SimulateOptions {
                    nodes,
                    token,
                    remote_addr: manager_addr,
                    start_delay: std::time::Duration::from_millis(start_delay_ms),
                    failure_rate,
                    hostname_prefix,
                })
                .await
            }
        }
    });
    // Do not wait for lingering connection tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmd: {e}");
            ExitCode::FAILURE
        }
    }
}
