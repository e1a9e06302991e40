//! `swarmctl`: the command line client. It speaks only the Engine API, like the docker CLI.

pub mod table;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use clap::Parser;
use clap::Subcommand;
use serde_json::Value;

use crate::client::ApiClient;
use crate::client::ClientError;
use crate::client::encode_query;
use crate::model::Cluster;
use crate::model::ContainerSpec;
use crate::model::Node;
use crate::model::Placement;
use crate::model::Service;
use crate::model::ServiceMode;
use crate::model::ServiceSpec;
use crate::model::Task;
use crate::model::TaskSpec;
use crate::model::TaskState;
use crate::model::Timestamp;

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

#[derive(Subcommand)]
pub enum NodeCmd {
    /// List nodes.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Show nodes in detail (JSON).
    Inspect { nodes: Vec<String> },
    /// List the tasks on nodes (default: this node).
    Ps {
        nodes: Vec<String>,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Subcommand)]
pub enum SwarmCmd {
    /// Show or rotate a join token.
    JoinToken {
        /// `worker` or `manager`.
        role: String,
        /// Replace the token; the old one stops working for new joins.
        #[arg(long)]
        rotate: bool,
        /// Print only the token.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the swarm object (JSON).
    Inspect,
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

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Create a service.
    Create(CreateArgs),
    /// List services.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Show services in detail (JSON).
    Inspect { services: Vec<String> },
    /// Remove services.
    #[command(alias = "remove")]
    Rm { services: Vec<String> },
    /// List the tasks of services, with their history.
    Ps {
        #[arg(required = true)]
        services: Vec<String>,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: Option<String>,
    /// Number of tasks (replicated mode).
    #[arg(long)]
    pub replicas: Option<u64>,
    /// `replicated` or `global`.
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Environment variable, `KEY=VALUE` (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Service label, `key=value` (repeatable).
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Placement constraint, e.g. `node.role==manager` (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User inside the container.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    pub image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
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

pub async fn run(cli: Cli) -> Result<(), CtlError> {
    let client = ApiClient::from_host(&cli.host)?;
    match cli.command {
        Command::Node(NodeCmd::Ls(args)) => node_ls(&client, args).await,
        Command::Node(NodeCmd::Inspect { nodes }) => {
            let mut out = Vec::new();
            for n in nodes {
                out.push(client.get::<Value>(&format!("/nodes/{}", encode_query(&n))).await?);
            }
            print_json(&out)
        }
        Command::Node(NodeCmd::Ps { nodes, list }) => node_ps(&client, nodes, list).await,
        Command::Service(ServiceCmd::Ps { services, list }) => service_ps(&client, services, list).await,
        Command::Swarm(SwarmCmd::JoinToken { role, rotate, quiet }) => join_token(&client, &role, rotate, quiet).await,
        Command::Swarm(SwarmCmd::Inspect) => print_json(&client.get::<Value>("/swarm").await?),
        Command::Service(ServiceCmd::Create(args)) => service_create(&client, args).await,
        Command::Service(ServiceCmd::Ls(args)) => service_ls(&client, args).await,
        Command::Service(ServiceCmd::Inspect { services }) => {
            let mut out = Vec::new();
            for s in services {
                out.push(
                    client
                        .get::<Value>(&format!("/services/{}?insertDefaults=true", encode_query(&s)))
                        .await?,
                );
            }
            print_json(&out)
        }
        Command::Service(ServiceCmd::Rm { services }) => {
            let mut failed = Vec::new();
            for s in services {
                match client.delete(&format!("/services/{}", encode_query(&s))).await {
                    Ok(()) => println!("{s}"),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed.push(s);
                    }
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(CtlError::Partial(format!("could not remove: {}", failed.join(", "))))
            }
        }
    }
}

async fn node_ls(client: &ApiClient, args: ListArgs) -> Result<(), CtlError> {
    check_format(&args.format)?;
    let mut nodes: Vec<Node> = client.get("/nodes").await?;
    nodes.sort_by(|a, b| {
        a.description
            .hostname
            .cmp(&b.description.hostname)
            .then(a.id.cmp(&b.id))
    });
    if args.quiet {
        for n in &nodes {
            println!("{}", n.id);
        }
        return Ok(());
    }
    if args.format == "json" {
        return print_json(&nodes);
    }
    let info: Value = client.get("/info").await?;
    let me = info["Swarm"]["NodeID"].as_str().unwrap_or_default().to_string();
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let id = if n.id == me {
                format!("{} *", n.id)
            } else {
                n.id.clone()
            };
            let status = serde_json::to_value(n.status.state).ok();
            let avail = serde_json::to_value(n.spec.availability).ok();
            let manager = match &n.manager_status {
                Some(ms) if ms.leader => "Leader".to_string(),
                Some(ms) => table::title(
                    serde_json::to_value(ms.reachability)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                        .as_str(),
                ),
                None => String::new(),
            };
            vec![
                id,
                n.description.hostname.clone(),
                table::title(status.as_ref().and_then(|v| v.as_str()).unwrap_or("")),
                table::title(avail.as_ref().and_then(|v| v.as_str()).unwrap_or("")),
                manager,
                n.description.engine.engine_version.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "ID",
                "HOSTNAME",
                "STATUS",
                "AVAILABILITY",
                "MANAGER STATUS",
                "ENGINE VERSION"
            ],
            &rows
        )
    );
    Ok(())
}

async fn join_token(client: &ApiClient, role: &str, rotate: bool, quiet: bool) -> Result<(), CtlError> {
    if role != "worker" && role != "manager" {
        return Err(CtlError::Usage(format!(
            "unknown role {role:?}: expected worker or manager"
        )));
    }
    if rotate {
        let swarm: Cluster = client.get("/swarm").await?;
        let flag = if role == "worker" {
            "rotateWorkerToken"
        } else {
            "rotateManagerToken"
        };
        let path = format!("/swarm/update?version={}&{flag}=true", swarm.version.index);
        let _: Value = client.post(&path, &swarm.spec).await?;
        if !quiet {
            println!("Successfully rotated {role} join token.\n");
        }
    }
    let swarm: Cluster = client.get("/swarm").await?;
    let tokens = swarm.join_tokens.unwrap_or_default();
    let token = if role == "worker" {
        tokens.worker
    } else {
        tokens.manager
    };
    if quiet {
        println!("{token}");
        return Ok(());
    }
    let info: Value = client.get("/info").await?;
    let me = info["Swarm"]["NodeID"].as_str().unwrap_or_default().to_string();
    let node: Node = client.get(&format!("/nodes/{me}")).await?;
    let addr = node.manager_status.map(|m| m.addr).unwrap_or_default();
    println!("To add a {role} to this swarm, run the following command:\n");
    println!("    swarmd join --token {token} {addr}\n");
    Ok(())
}

async fn service_create(client: &ApiClient, args: CreateArgs) -> Result<(), CtlError> {
    let mode = match args.mode.as_str() {
        "replicated" => ServiceMode::replicated(args.replicas.unwrap_or(1)),
        "global" => {
            if args.replicas.is_some() {
                return Err(CtlError::Usage(
                    "--replicas can only be used with replicated mode".to_string(),
                ));
            }
            ServiceMode {
                global: Some(Default::default()),
                ..Default::default()
            }
        }
        other => {
            return Err(CtlError::Usage(format!(
                "unknown --mode {other:?}: expected replicated or global"
            )));
        }
    };
    let spec = ServiceSpec {
        name: args.name.unwrap_or_default(),
        labels: parse_labels(&args.labels)?,
        task_template: TaskSpec {
            container_spec: Some(ContainerSpec {
                image: args.image,
                args: (!args.command.is_empty()).then_some(args.command),
                env: (!args.env.is_empty()).then_some(args.env),
                dir: args.workdir.unwrap_or_default(),
                user: args.user.unwrap_or_default(),
                ..Default::default()
            }),
            placement: (!args.constraints.is_empty()).then(|| Placement {
                constraints: Some(args.constraints),
                ..Default::default()
            }),
            ..Default::default()
        },
        mode,
        ..Default::default()
    };
    let resp: Value = client.post("/services/create", &spec).await?;
    println!("{}", resp["ID"].as_str().unwrap_or_default());
    Ok(())
}

async fn service_ls(client: &ApiClient, args: ListArgs) -> Result<(), CtlError> {
    check_format(&args.format)?;
    let mut services: Vec<Service> = client.get("/services?status=true").await?;
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    if args.quiet {
        for s in &services {
            println!("{}", s.id);
        }
        return Ok(());
    }
    if args.format == "json" {
        return print_json(&services);
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let st = s.service_status.clone().unwrap_or_default();
            let mut replicas = format!("{}/{}", st.running_tasks, st.desired_tasks);
            let max = s
                .spec
                .task_template
                .placement
                .as_ref()
                .map(|p| p.max_replicas)
                .unwrap_or(0);
            if max > 0 {
                replicas.push_str(&format!(" (max {max} per node)"));
            }
            let image = s
                .spec
                .task_template
                .container_spec
                .as_ref()
                .map(|c| c.image.split('@').next().unwrap_or_default().to_string())
                .unwrap_or_default();
            let ports = s
                .endpoint
                .ports
                .iter()
                .flatten()
                .map(|p| format!("*:{}->{}/{}", p.published_port.unwrap_or(0), p.target_port, p.protocol))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                s.id.chars().take(12).collect(),
                s.spec.name.clone(),
                s.spec.mode.describe().to_string(),
                replicas,
                image,
                ports,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows)
    );
    Ok(())
}

fn filters_query(key: &str, values: &[String]) -> String {
    let mut map = serde_json::Map::new();
    let inner: serde_json::Map<String, Value> = values.iter().map(|v| (v.clone(), Value::Bool(true))).collect();
    map.insert(key.to_string(), Value::Object(inner));
    encode_query(&Value::Object(map).to_string())
}

async fn service_ps(client: &ApiClient, refs: Vec<String>, list: ListArgs) -> Result<(), CtlError> {
    check_format(&list.format)?;
    let mut ids = Vec::new();
    for r in &refs {
        let svc: Service = client
            .get(&format!("/services/{}", encode_query(r)))
            .await
            .map_err(|e| match e {
                ClientError::Api { status, .. } if status.as_u16() == 404 => {
                    CtlError::Usage(format!("no such service: {r}"))
                }
                other => other.into(),
            })?;
        ids.push(svc.id);
    }
    let tasks: Vec<Task> = client
        .get(&format!("/tasks?filters={}", filters_query("service", &ids)))
        .await?;
    print_tasks(client, tasks, &list).await
}

async fn node_ps(client: &ApiClient, refs: Vec<String>, list: ListArgs) -> Result<(), CtlError> {
    check_format(&list.format)?;
    let refs = if refs.is_empty() {
        let info: Value = client.get("/info").await?;
        vec![info["Swarm"]["NodeID"].as_str().unwrap_or_default().to_string()]
    } else {
        refs
    };
    let mut ids = Vec::new();
    for r in &refs {
        let node: Node = client.get(&format!("/nodes/{}", encode_query(r))).await?;
        ids.push(node.id);
    }
    let tasks: Vec<Task> = client
        .get(&format!("/tasks?filters={}", filters_query("node", &ids)))
        .await?;
    print_tasks(client, tasks, &list).await
}

/// `5 seconds ago`, as docker prints times.
pub fn human_since(then: &Timestamp) -> String {
    let (Some(then), Some(now)) = (then.unix_nanos(), Timestamp::now().unix_nanos()) else {
        return String::new();
    };
    let secs = ((now - then).max(0) / 1_000_000_000) as u64;
    let text = match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    };
    format!("{text} ago")
}

async fn print_tasks(client: &ApiClient, mut tasks: Vec<Task>, list: &ListArgs) -> Result<(), CtlError> {
    if list.quiet {
        for t in &tasks {
            println!("{}", t.id);
        }
        return Ok(());
    }
    if list.format == "json" {
        return print_json(&tasks);
    }
    let services: Vec<Service> = client.get("/services").await?;
    let nodes: Vec<Node> = client.get("/nodes").await?;
    let svc_name = |id: &str| {
        services
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.spec.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let node_name = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| {
                if n.spec.name.is_empty() {
                    n.description.hostname.clone()
                } else {
                    n.spec.name.clone()
                }
            })
            .unwrap_or_default()
    };
    // Group by slot (or node for global tasks), newest first within a group.
    let group_node = |t: &Task| if t.slot == 0 { t.node_id.clone() } else { String::new() };
    tasks.sort_by(|a, b| {
        (svc_name(&a.service_id), a.slot, group_node(a))
            .cmp(&(svc_name(&b.service_id), b.slot, group_node(b)))
            .then(b.created_at.cmp(&a.created_at))
    });
    let mut rows = Vec::new();
    let mut last_group: Option<(String, u64, String)> = None;
    for t in &tasks {
        let group = (t.service_id.clone(), t.slot, group_node(t));
        let name = t.display_name(&svc_name(&t.service_id));
        let name = if last_group.as_ref() == Some(&group) {
            format!(" \\_ {name}")
        } else {
            name
        };
        last_group = Some(group);
        let state = |s: TaskState| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(table::title))
                .unwrap_or_default()
        };
        let image = t
            .spec
            .container_spec
            .as_ref()
            .map(|c| c.image.split('@').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        rows.push(vec![
            t.id.chars().take(12).collect(),
            name,
            image,
            node_name(&t.node_id),
            state(t.desired_state),
            format!("{} {}", state(t.status.state), human_since(&t.status.timestamp)),
            t.status.err.clone(),
            String::new(),
        ]);
    }
    print!(
        "{}",
        table::render(
            &[
                "ID",
                "NAME",
                "IMAGE",
                "NODE",
                "DESIRED STATE",
                "CURRENT STATE",
                "ERROR",
                "PORTS"
            ],
            &rows
        )
    );
    Ok(())
}

/// Where a data dir's control socket is, for tests and scripts.
pub fn socket_of(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("swarmd.sock")
}
