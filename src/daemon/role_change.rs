//! Running a node until it is stopped, and switching it between worker and manager when the
//! managers promote or demote it.
//!
//! The agent hears the wanted role from the dispatcher. The node then asks a manager for a
//! certificate for that role (signed in with its current one; a demoted manager gets it only
//! once it is out of raft), stops what it runs (task containers keep running), and starts again
//! in the new role: a new manager joins raft with the raft id the promotion gave it, a former
//! manager drops its raft state. The worker part adopts the running containers as after a
//! restart.

use std::time::Duration;

use super::DaemonError;
use super::NodeConfig;
use super::Running;
use super::become_raft_member;
use super::err;
use super::serve_api;
use super::shutdown_signal;
use super::start_manager;
use super::start_worker;
use super::stop;
use crate::manager::ca;
use crate::manager::peer_api::RenewRequest;
use crate::manager::peer_api::RenewResponse;
use crate::model::NodeRole;
use crate::net::peer_client::full;

/// How long a node keeps asking for its new certificate before it gives up on the change.
const RENEW_DEADLINE: Duration = Duration::from_secs(300);

/// Runs the node until SIGTERM or SIGINT, changing its role whenever the managers ask.
pub(super) async fn supervise(mut running: Running, mut cfg: NodeConfig) -> Result<(), DaemonError> {
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let wanted = tokio::select! {
            _ = &mut signal => break,
            r = running.roles.recv() => r,
        };
        let Some(wanted) = wanted else {
            // The agent is gone (it could not reach an engine, say): only a signal ends this.
            (&mut signal).await;
            break;
        };
        if wanted == cfg.role {
            continue;
        }
        tracing::info!(
            from = cfg.role.name(),
            to = wanted.name(),
            "the managers changed this node's role; getting a certificate for it"
        );
        let renewed = tokio::select! {
            _ = &mut signal => break,
            r = obtain_certificate(&running, &cfg, wanted) => r,
        };
        let (key_pem, resp, via) = match renewed {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot change this node's role; it keeps its current one");
                continue;
            }
        };
        running = switch(running, &mut cfg, key_pem, resp, &via).await?;
        tracing::info!(role = cfg.role.name(), "this node now runs as a {}", cfg.role.name());
    }
    stop(running).await;
    Ok(())
}

/// Asks the managers, in turn, for a certificate for `wanted` until one answers with it.
async fn obtain_certificate(
    running: &Running,
    cfg: &NodeConfig,
    wanted: NodeRole,
) -> Result<(String, RenewResponse, String), String> {
    let (key_pem, csr_pem) = ca::new_key_and_csr().map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&RenewRequest {
        csr_pem,
        advertise_addr: cfg.advertise_addr.clone(),
    })
    .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + RENEW_DEADLINE;
    let mut last = String::from("no manager known");
    loop {
        for addr in managers_to_ask(running, cfg) {
            match running
                .peers
                .call(&addr, "/ca/renew", Some(full(body.clone())), Duration::from_secs(10))
                .await
            {
                Ok(bytes) => match serde_json::from_slice::<RenewResponse>(&bytes) {
                    Ok(resp) if resp.role == wanted => return Ok((key_pem, resp, addr)),
                    // That manager has not seen the change yet.
                    Ok(resp) => last = format!("{addr} still sees this node as a {}", resp.role.name()),
                    Err(e) => last = format!("{addr} answered something unexpected: {e}"),
                },
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "no certificate for the new role within {RENEW_DEADLINE:?}: {last}"
            ));
        }
        tracing::debug!(error = %last, "certificate for the new role not issued yet; retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The other managers this node knows of: the raft voters for a manager, the saved list for a
/// worker (kept up to date by its agent).
fn managers_to_ask(running: &Running, cfg: &NodeConfig) -> Vec<String> {
    let mut out: Vec<String> = match &running.manager {
        Some(m) => m
            .raft
            .status()
            .voters
            .values()
            .filter(|a| a.node_id != cfg.node_id)
            .map(|a| a.addr.clone())
            .collect(),
        None => Vec::new(),
    };
    let saved = running.dir.load_config().map(|c| c.managers).unwrap_or_default();
    for (id, addr) in saved.into_iter().chain(cfg.managers.iter().cloned()) {
        if id != cfg.node_id && !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// Stops the node and starts it again in the role of its new certificate.
async fn switch(
    running: Running,
    cfg: &mut NodeConfig,
    key_pem: String,
    resp: RenewResponse,
    via: &str,
) -> Result<Running, DaemonError> {
    let dir = running.dir.clone();
    let (ca_pem, _, _) = dir.load_certs()?;
    let lock = stop(running).await;
    // Raft state belongs to one manager incarnation; a new role starts without it.
    let raft_dir = dir.raft();
    if raft_dir.exists() {
        std::fs::remove_dir_all(&raft_dir)
            .map_err(|e| err(format!("cannot remove the old raft state {}: {e}", raft_dir.display())))?;
    }
    dir.save_certs(&ca_pem, &resp.cert_pem, &key_pem)?;
    cfg.role = resp.role;
    cfg.raft_id = resp.raft_id;
    if !resp.managers.is_empty() {
        cfg.managers = resp.managers.clone();
    }
    cfg.initialised = resp.role == NodeRole::Worker;
    dir.save_config(cfg)?;
    let mut running = match resp.role {
        NodeRole::Manager => {
            let raft_id = resp
                .raft_id
                .ok_or_else(|| err("the manager certificate came without a raft id"))?;
            let running = start_manager(dir.clone(), cfg, lock).await?;
            if let Err(why) = become_raft_member(&running, via, raft_id, &cfg.advertise_addr).await {
                stop(running).await;
                return Err(err(format!(
                    "promoted, but could not become a raft member: {why}. Demote node {} and promote it again",
                    cfg.node_id
                )));
            }
            cfg.initialised = true;
            dir.save_config(cfg)?;
            running
        }
        NodeRole::Worker => start_worker(dir.clone(), cfg, lock)?,
    };
    serve_api(&mut running, cfg).await?;
    Ok(running)
}
