//! `swarmctl`: the command line client. It speaks only the Engine API, like the docker CLI.

mod node;
mod progress;
mod service;
mod swarm;
pub mod table;
mod tasks;
pub mod units;
mod update;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use clap::Parser;
use clap::Subcommand;

pub use self::node::NodeCmd;
pub use self::service::CreateArgs;
pub use self::service::ServiceCmd;
pub use self::swarm::SwarmCmd;
pub use self::tasks::human_since;
use crate::client::ApiClient;
use crate::client::ClientError;

/// The default control socket: the one `swarmd` creates in its default data dir.
pub fn default_host() -> String {
    format!("unix://{}/swarmd.sock", crate::daemon::DEFAULT_DATA_DIR)
}

#[derive(Parser)]
#[command(
    name = "swarmctl",
    version,
    about = "Control a swarm-rs cluster through the Engine API"
)]
pub struct Cli {
    /// Daemon to talk to: unix:///path/to/swarmd.sock or tcp://host:port.
    #[arg(short = 'H', long = "host", env = "SWARM_HOST", default_value_t = default_host())]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Manage nodes.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Manage the swarm.
    #[command(subcommand)]
    Swarm(SwarmCmd),
    /// Manage services.
    #[command(subcommand)]
    Service(ServiceCmd),
}

#[derive(Args)]
pub struct ListArgs {
    /// Print only IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// What went wrong, for the exit message.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Partial(String),
}

fn print_json(v: &impl serde::Serialize) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CtlError::Usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn check_format(format: &str) -> Result<(), CtlError> {
    match format {
        "table" | "json" => Ok(()),
        other => Err(CtlError::Usage(format!(
            "unknown --format {other:?}: expected table or json"
        ))),
    }
}

fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, CtlError> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !l.is_empty() => Ok((l.clone(), String::new())),
            _ => Err(CtlError::Usage(format!("invalid label {l:?}: expected key=value"))),
        })
        .collect()
}

/// Runs `each` on every item, reporting failures as they happen; fails if any did.
async fn for_each<F, Fut>(items: Vec<String>, what: &str, mut each: F) -> Result<(), CtlError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), CtlError>>,
{
    let mut failed = Vec::new();
    for item in items {
        if let Err(e) = each(item.clone()).await {
            eprintln!("Error: {e}");
            failed.push(item);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Partial(format!("could not {what}: {}", failed.join(", "))))
    }
}

pub async fn run(cli: Cli) -> Result<(), CtlError> {
    let client = ApiClient::from_host(&cli.host)?;
    match cli.command {
        Command::Node(cmd) => node::run(&client, cmd).await,
        Command::Swarm(cmd) => swarm::run(&client, cmd).await,
        Command::Service(cmd) => service::run(&client, cmd).await,
    }
}

/// Where a data dir's control socket is, for tests and scripts.
pub fn socket_of(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("swarmd.sock")
}
