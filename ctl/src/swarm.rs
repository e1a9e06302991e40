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
        /// Lock restarted managers until they get the unlock key (`true` or `false`).
        #[arg(long)]
        autolock: Option<bool>,
    },
    /// Unlock a locked manager; the key is read from standard input.
    Unlock,
    /// Show or rotate the managers' unlock key (autolock).
    UnlockKey {
        /// Replace the key; managers are re-sealed with the new one.
        #[arg(long)]
        rotate: bool,
        /// Print only the key.
        #[arg(short, long)]
        quiet: bool,
    },
}

pub async fn run(client: &ApiClient, cmd: SwarmCmd) -> Result<(), CtlError> {
    match cmd {
        SwarmCmd::JoinToken { role, rotate, quiet } => join_token(client, &role, rotate, quiet).await,
        SwarmCmd::Inspect => print_json(&client.get::<Value>("/swarm").await?),
        SwarmCmd::Unlock => unlock(client).await,
        SwarmCmd::UnlockKey { rotate, quiet } => unlock_key(client, rotate, quiet).await,
        SwarmCmd::Update {
            task_history_limit,
            dispatcher_heartbeat,
            autolock,
        } => {
            if task_history_limit.is_none() && dispatcher_heartbeat.is_none() && autolock.is_none() {
                return Err(CtlError::Usage(
                    "nothing to update: give --task-history-limit, --dispatcher-heartbeat or --autolock".to_string(),
                ));
            }
            let mut swarm: Cluster = client.get("/swarm").await?;
            let was_locking = swarm.spec.encryption_config.auto_lock_managers;
            if let Some(autolock) = autolock {
                swarm.spec.encryption_config.auto_lock_managers = autolock;
            }
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
            if autolock == Some(true) && !was_locking {
                print_unlock_key(&current_unlock_key(client).await?);
            }
            Ok(())
        }
    }
}

async fn current_unlock_key(client: &ApiClient) -> Result<String, CtlError> {
    let answer: Value = client.get("/swarm/unlockkey").await?;
    match answer["UnlockKey"].as_str().unwrap_or_default() {
        "" => Err(CtlError::Usage("no unlock key is set: autolock is off".to_string())),
        key => Ok(key.to_string()),
    }
}

fn print_unlock_key(key: &str) {
    println!(
        "To unlock a swarm manager after it restarts, run `swarmctl swarm unlock` (or `docker swarm unlock`)\n\
         and provide the following key:\n\n    {key}\n\n\
         Remember to store this key in a password manager, since without it you\n\
         will not be able to restart the manager."
    );
}

async fn unlock_key(client: &ApiClient, rotate: bool, quiet: bool) -> Result<(), CtlError> {
    if rotate {
        let swarm: Cluster = client.get("/swarm").await?;
        if !swarm.spec.encryption_config.auto_lock_managers {
            return Err(CtlError::Usage(
                "cannot rotate because autolock is not turned on".to_string(),
            ));
        }
        let path = format!(
            "/swarm/update?version={}&rotateManagerUnlockKey=true",
            swarm.version.index
        );
        let _: Value = client.post(&path, &swarm.spec).await?;
        if !quiet {
            println!("Successfully rotated manager unlock key.\n");
        }
    }
    let key = current_unlock_key(client).await?;
    match quiet {
        true => println!("{key}"),
        false => print_unlock_key(&key),
    }
    Ok(())
}

async fn unlock(client: &ApiClient) -> Result<(), CtlError> {
    let info: Value = client.get("/info").await?;
    match info["Swarm"]["LocalNodeState"].as_str().unwrap_or_default() {
        "locked" => {}
        "inactive" => return Err(CtlError::Usage("this node is not part of a swarm".to_string())),
        _ => return Err(CtlError::Usage("swarm is not locked".to_string())),
    }
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .map_err(|e| CtlError::Usage(format!("cannot read the unlock key from standard input: {e}")))?;
    let _: Value = client
        .post("/swarm/unlock", &serde_json::json!({ "UnlockKey": key.trim() }))
        .await?;
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
