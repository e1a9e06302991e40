//! `swarmctl node …`: list, inspect, update, promote, demote, remove, and the tasks on nodes.

use clap::Subcommand;
use serde_json::Value;
use swarm_model::Availability;
use swarm_model::Node;
use swarm_model::NodeRole;
use swarm_model::Task;

use super::CtlError;
use super::ListArgs;
use super::check_format;
use super::for_each;
use super::parse_labels;
use super::print_json;
use super::table;
use super::tasks::filters_query;
use super::tasks::print_tasks;
use crate::client::ApiClient;
use crate::client::encode_query;

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
    /// Change a node's availability or labels.
    Update {
        /// `active`, `pause` (no new tasks) or `drain` (move its tasks off).
        #[arg(long)]
        availability: Option<String>,
        /// Add or change a label, `key=value` (repeatable).
        #[arg(long = "label-add")]
        label_add: Vec<String>,
        /// Remove a label by key (repeatable).
        #[arg(long = "label-rm")]
        label_rm: Vec<String>,
        node: String,
    },
    /// Make workers managers.
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Make managers workers.
    Demote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Remove nodes from the swarm.
    #[command(alias = "remove")]
    Rm {
        /// Remove a node even if it is up.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

pub async fn run(client: &ApiClient, cmd: NodeCmd) -> Result<(), CtlError> {
    match cmd {
        NodeCmd::Ls(args) => node_ls(client, args).await,
        NodeCmd::Inspect { nodes } => {
            let mut out = Vec::new();
            for n in nodes {
                out.push(client.get::<Value>(&format!("/nodes/{}", encode_query(&n))).await?);
            }
            print_json(&out)
        }
        NodeCmd::Ps { nodes, list } => node_ps(client, nodes, list).await,
        NodeCmd::Update {
            availability,
            label_add,
            label_rm,
            node,
        } => {
            let availability = availability
                .map(|a| match a.as_str() {
                    "active" => Ok(Availability::Active),
                    "pause" => Ok(Availability::Pause),
                    "drain" => Ok(Availability::Drain),
                    other => Err(CtlError::Usage(format!(
                        "invalid --availability {other:?}: expected active, pause or drain"
                    ))),
                })
                .transpose()?;
            let add = parse_labels(&label_add)?;
            update_node(client, &node, |n| {
                if let Some(a) = availability {
                    n.spec.availability = a;
                }
                for k in &label_rm {
                    n.spec.labels.remove(k);
                }
                n.spec.labels.extend(add.clone());
                true
            })
            .await?;
            println!("{node}");
            Ok(())
        }
        NodeCmd::Promote { nodes } => {
            for_each(nodes, "promote", |n| async move {
                let changed = update_node(client, &n, |node| {
                    let change = node.spec.role != NodeRole::Manager;
                    node.spec.role = NodeRole::Manager;
                    change
                })
                .await?;
                if changed {
                    println!("Node {n} promoted to a manager in the swarm.");
                } else {
                    println!("Node {n} is already a manager.");
                }
                Ok(())
            })
            .await
        }
        NodeCmd::Demote { nodes } => {
            for_each(nodes, "demote", |n| async move {
                let changed = update_node(client, &n, |node| {
                    let change = node.spec.role != NodeRole::Worker;
                    node.spec.role = NodeRole::Worker;
                    change
                })
                .await?;
                if changed {
                    println!("Manager {n} demoted in the swarm.");
                } else {
                    println!("Node {n} is already a worker.");
                }
                Ok(())
            })
            .await
        }
        NodeCmd::Rm { force, nodes } => {
            for_each(nodes, "remove", |n| async move {
                let q = if force { "?force=1" } else { "" };
                client.delete(&format!("/nodes/{}{q}", encode_query(&n))).await?;
                println!("{n}");
                Ok(())
            })
            .await
        }
    }
}

/// Reads a node, changes its spec with `change` and writes it back at the version read, as the
/// docker CLI does. `change` returns false when there is nothing to write.
async fn update_node(
    client: &ApiClient,
    reference: &str,
    change: impl FnOnce(&mut Node) -> bool,
) -> Result<bool, CtlError> {
    let mut node: Node = client.get(&format!("/nodes/{}", encode_query(reference))).await?;
    if !change(&mut node) {
        return Ok(false);
    }
    let path = format!("/nodes/{}/update?version={}", node.id, node.version.index);
    let _: Value = client.post(&path, &node.spec).await?;
    Ok(true)
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
