//! `swarmctl swarm …`: join tokens and cluster settings.

use clap::Subcommand;
use serde_json::Value;
use swarm_model::Cluster;
use swarm_model::Node;

use super::CtlError;
use super::print_json;
use super::units::parse_duration;
use crate::client::ApiClient;

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
    /// Change cluster settings.
    Update {
        /// Old tasks kept per slot (the running one included); negative keeps all.
        #[arg(long, allow_hyphen_values = true)]
        task_history_limit: Option<i64>,
        /// How often nodes send heartbeats, e.g. `1s`.
        #[arg(long)]
        dispatcher_heartbeat: Option<String>,
    },
}

pub async fn run(client: &ApiClient, cmd: SwarmCmd) -> Result<(), CtlError> {
    match cmd {
        SwarmCmd::JoinToken { role, rotate, quiet } => join_token(client, &role, rotate, quiet).await,
        SwarmCmd::Inspect => print_json(&client.get::<Value>("/swarm").await?),
        SwarmCmd::Update {
            task_history_limit,
            dispatcher_heartbeat,
        } => {
            if task_history_limit.is_none() && dispatcher_heartbeat.is_none() {
                return Err(CtlError::Usage(
                    "nothing to update: give --task-history-limit or --dispatcher-heartbeat".to_string(),
                ));
            }
            let mut swarm: Cluster = client.get("/swarm").await?;
            if let Some(limit) = task_history_limit {
                swarm.spec.orchestration.task_history_retention_limit = Some(limit);
            }
            if let Some(period) = dispatcher_heartbeat {
                let ns = parse_duration(&period).map_err(|e| CtlError::Usage(e.to_string()))?;
                swarm.spec.dispatcher.heartbeat_period = Some(ns);
            }
            let path = format!("/swarm/update?version={}", swarm.version.index);
            let _: Value = client.post(&path, &swarm.spec).await?;
            println!("Swarm updated.");
            Ok(())
        }
    }
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
