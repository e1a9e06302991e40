//! `swarmctl`: the command line client. It speaks only the Engine API, like the docker CLI.

pub mod client;
mod endpoint;
mod events;
mod logs;
mod network;
mod node;
mod progress;
mod secret;
mod service;
mod stack;
mod swarm;
pub mod table;
mod tasks;
pub mod tls;
pub mod units;
mod update;

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;
use clap::Parser;
use clap::Subcommand;
use swarm_model::Config;
use swarm_model::Secret;
use swarm_model::Timestamp;

pub use self::events::EventsArgs;
pub use self::network::NetworkCmd;
pub use self::node::NodeCmd;
pub use self::secret::BlobCmd;
pub use self::service::CreateArgs;
pub use self::service::ServiceCmd;
pub use self::stack::StackCmd;
pub use self::swarm::SwarmCmd;
pub use self::tasks::human_since;
use crate::client::ApiClient;
use crate::client::ClientError;
use crate::client::encode_query;

#[derive(Parser)]
#[command(
    name = "swarmctl",
    version,
    about = "Control a swarm-rs cluster through the Engine API"
)]
pub struct Cli {
    /// Daemon to talk to: unix:///path/to/swarmd.sock or tcp://host:port.
    #[arg(short = 'H', long = "host", env = "SWARM_HOST", default_value_t = swarm_protocol::engine::default_host())]
    pub host: String,
    /// Speak TLS to a tcp:// host and verify it, presenting a client certificate, as the docker
    /// CLI does (also with DOCKER_TLS_VERIFY set).
    #[arg(long)]
    pub tlsverify: bool,
    /// The CA the daemon's certificate must come from (default: DOCKER_CERT_PATH/ca.pem).
    #[arg(long)]
    pub tlscacert: Option<std::path::PathBuf>,
    /// This client's certificate (default: DOCKER_CERT_PATH/cert.pem).
    #[arg(long)]
    pub tlscert: Option<std::path::PathBuf>,
    /// This client's key (default: DOCKER_CERT_PATH/key.pem).
    #[arg(long)]
    pub tlskey: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The TLS files to use, if TLS is asked for: flags first, then the docker CLI's
/// `DOCKER_CERT_PATH` (default `~/.docker`).
fn tls_files(cli: &Cli) -> Option<tls::TlsFiles> {
    let from_env = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    if !cli.tlsverify && !from_env {
        return None;
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"));
    let default = tls::TlsFiles::in_dir(&dir);
    Some(tls::TlsFiles {
        ca: cli.tlscacert.clone().unwrap_or(default.ca),
        cert: cli.tlscert.clone().unwrap_or(default.cert),
        key: cli.tlskey.clone().unwrap_or(default.key),
    })
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
    /// Manage secrets: data for services that the API never shows again.
    #[command(subcommand)]
    Secret(BlobCmd),
    /// Manage configs: data for services, shown by the API.
    #[command(subcommand)]
    Config(BlobCmd),
    /// Manage overlay networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Print cluster events as they happen (or those of a past window, with --until).
    Events(EventsArgs),
    /// Manage stacks: services, networks, secrets and configs from compose files.
    #[command(subcommand)]
    Stack(StackCmd),
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

/// A list that the daemon can filter, as docker's `ls --filter`.
#[derive(Args)]
pub struct FilteredListArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Show only what matches `key=value` (repeatable).
    #[arg(short = 'f', long = "filter")]
    pub filters: Vec<String>,
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
    /// A streamed answer that cannot be read.
    #[error("{0}")]
    Stream(String),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
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

/// `--filter key=value` flags as the `filters` query value docker sends,
/// `{"key":{"value":true,...}}`, encoded; `None` without filters.
fn filters_arg(items: &[String]) -> Result<Option<String>, CtlError> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in items {
        match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.entry(k.to_string()).or_default().insert(v.to_string(), true);
            }
            _ => return Err(CtlError::Usage(format!("invalid --filter {f:?}: expected key=value"))),
        }
    }
    let json = serde_json::to_string(&map).map_err(|e| CtlError::Usage(format!("cannot encode the filters: {e}")))?;
    Ok(Some(encode_query(&json)))
}

/// `?filters=...` for a list request, or nothing without filters.
fn list_query(items: &[String]) -> Result<String, CtlError> {
    Ok(filters_arg(items)?.map(|f| format!("?filters={f}")).unwrap_or_default())
}

/// A `--since`/`--until` value as the API takes it. A duration (`10m`) means that long before
/// now and becomes Unix seconds, as docker computes it on the client; Unix seconds and RFC3339
/// times go as given, the daemon reads them.
fn time_arg(value: &str) -> String {
    match units::parse_duration(value) {
        Ok(d) if value != "0" => {
            let now = Timestamp::now().unix_nanos().unwrap_or(0);
            ((now - d as i128) / 1_000_000_000).to_string()
        }
        _ => value.to_string(),
    }
}

/// Writes streamed output at once, since someone may be watching it. `Ok(false)` when the
/// reader has gone (a closed pipe): the stream then ends quietly.
fn emit(to_stderr: bool, bytes: &[u8]) -> Result<bool, CtlError> {
    let result = if to_stderr {
        let mut err = std::io::stderr().lock();
        err.write_all(bytes).and_then(|_| err.flush())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|_| out.flush())
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(CtlError::Output(e)),
    }
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
    let mut client = ApiClient::from_host(&cli.host)?;
    if let Some(files) = tls_files(&cli) {
        client = client.with_tls(&files)?;
    }
    match cli.command {
        Command::Node(cmd) => node::run(&client, cmd).await,
        Command::Swarm(cmd) => swarm::run(&client, cmd).await,
        Command::Service(cmd) => service::run(&client, cmd).await,
        Command::Secret(cmd) => secret::run::<Secret>(&client, cmd).await,
        Command::Config(cmd) => secret::run::<Config>(&client, cmd).await,
        Command::Network(cmd) => network::run(&client, cmd).await,
        Command::Events(args) => events::run(&client, args).await,
        Command::Stack(cmd) => stack::run(&client, cmd).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap checks argument definitions only in debug builds, when a command is parsed; two
    /// flags with one id would share a value in release builds. Check every command here.
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn filters_merge_per_key_as_docker_sends_them() {
        let f = filters_arg(&["label=team=db".into(), "name=a".into(), "name=b".into()])
            .expect("valid filters")
            .expect("some filters");
        assert_eq!(
            f,
            encode_query(r#"{"label":{"team=db":true},"name":{"a":true,"b":true}}"#)
        );
        assert_eq!(filters_arg(&[]).expect("no filters"), None);
        assert_eq!(list_query(&[]).expect("no filters"), "");
        let err = filters_arg(&["nonsense".into()]).expect_err("no =");
        assert!(err.to_string().contains("\"nonsense\""), "{err}");
    }

    #[test]
    fn durations_become_unix_seconds() {
        let now = Timestamp::now().unix_nanos().unwrap_or(0) / 1_000_000_000;
        let ten_min_ago: i128 = time_arg("10m").parse().expect("Unix seconds");
        assert!((now - 600 - ten_min_ago).abs() <= 1, "{ten_min_ago} vs {now}");
        assert_eq!(time_arg("1700000000"), "1700000000");
        assert_eq!(time_arg("0"), "0");
        assert_eq!(time_arg("2026-01-02T03:04:05Z"), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn new_commands_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        assert!(matches!(
            parse(&["swarmctl", "secret", "create", "-l", "a=b", "db", "-"]),
            Ok(Command::Secret(BlobCmd::Create { .. }))
        ));
        assert!(matches!(
            parse(&["swarmctl", "config", "ls", "-q", "-f", "name=x", "--format", "json"]),
            Ok(Command::Config(BlobCmd::Ls(_)))
        ));
        assert!(matches!(
            parse(&[
                "swarmctl",
                "network",
                "create",
                "-d",
                "overlay",
                "--attachable",
                "--internal",
                "n"
            ]),
            Ok(Command::Network(NetworkCmd::Create { .. }))
        ));
        assert!(matches!(
            parse(&[
                "swarmctl",
                "events",
                "--since",
                "10m",
                "--until",
                "0",
                "-f",
                "type=secret"
            ]),
            Ok(Command::Events(_))
        ));
        assert!(matches!(
            parse(&[
                "swarmctl", "service", "logs", "-f", "--raw", "-t", "-n", "5", "--since", "1m", "web"
            ]),
            Ok(Command::Service(ServiceCmd::Logs(_)))
        ));
        assert!(parse(&["swarmctl", "secret", "rm"]).is_err(), "rm needs a name");
    }
}
