//! Running a node until it is stopped, and switching it between worker and manager when the
//! managers promote or demote it.
//!
//! The agent hears the wanted role from the dispatcher. The node then asks the leader for a
//! certificate for the role the cluster gives it (signed in with its current one; a demoted
//! manager gets it only once it is out of raft), stops what it runs (task containers keep
//! running), and starts again in the new role: a new manager joins raft with the raft id the
//! promotion gave it (retrying until it is in, also after a restart), a former manager drops
//! its raft state. The worker part adopts the running containers as after a restart.

use std::time::Duration;

use swarm_ca as ca;
use swarm_model::NodeRole;
use swarm_net::peer_client::full;
use swarm_protocol::peer::RenewRequest;
use swarm_protocol::peer::RenewResponse;

use crate::assembly::Running;
use crate::assembly::leave_swarm;
use crate::assembly::new_manager_key;
use crate::assembly::serve_api;
use crate::assembly::shutdown_signal;
use crate::assembly::start_manager;
use crate::assembly::start_worker;
use crate::assembly::stop;
use crate::data_key::ManagerKey;
use crate::datadir::NodeConfig;
use crate::error::DaemonError;
use crate::identity::become_raft_member;
use crate::identity::expired_since;

/// How long to wait between rounds of asking the managers.
const RETRY: Duration = Duration::from_secs(2);

/// Runs the node until SIGTERM or SIGINT, changing its role whenever the managers ask. A wish
/// is kept until it is carried out or overtaken by a newer one, however long that takes.
pub(crate) async fn supervise(mut running: Running, mut cfg: NodeConfig) -> Result<(), DaemonError> {
    // Resolves to true when asked to leave the swarm, false on a signal.
    let leave = running.leave.clone();
    let stop_asked = async move {
        tokio::select! {
            _ = shutdown_signal() => false,
            _ = leave.notified() => true,
        }
    };
    tokio::pin!(stop_asked);
    let leaving: bool;
    let mut wanted: Option<(NodeRole, Option<u64>)> = None;
    let mut agent_gone = false;
    // Where in its certificate's lifetime this node renews it, chosen anew for each one, and
    // when to try again after a failed attempt.
    let mut renewal_point = ca::random_renewal_point();
    let mut retry_renewal = tokio::time::Instant::now();
    // Checks in a row that found this manager without a leader.
    let mut leaderless_rounds = 0u32;
    loop {
        let current = (cfg.role, cfg.raft_id);
        let pending = wanted.filter(|w| *w != current);
        let joining = cfg.role == NodeRole::Manager && !cfg.initialised;
        if pending.is_none() && !joining {
            if agent_gone {
                // The agent is gone (it could not reach an engine, say): only a signal ends this.
                leaving = (&mut stop_asked).await;
                break;
            }
            let renew_at = renewal_due(&running, renewal_point).max(retry_renewal);
            let raft_fault = running.manager.clone();
            tokio::select! {
                l = &mut stop_asked => {
                    leaving = l;
                    break;
                }
                why = async move {
                    match raft_fault {
                        Some(m) => m.raft.stopped_by_fault().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::error!(error = %why, "raft stopped on a fault; starting this manager again from its data dir");
                    running = restart_manager(running, &cfg).await?;
                    continue;
                }
                r = running.roles.recv() => match r {
                    Some(w) => wanted = Some(w),
                    None => agent_gone = true,
                },
                _ = tokio::time::sleep(RETRY), if running.manager.is_some() => {
                    // A manager hears of its role through its own agent, which opens its session
                    // with this manager. Demoted (or demoted and promoted again) while it was
                    // down, it is out of raft, never has a leader, and would never hear of it:
                    // so a manager without a leader asks the leader what it is now.
                    let leaderless = running.manager.as_ref().is_some_and(|m| cut_off(&m.raft.status()));
                    if !leaderless {
                        leaderless_rounds = 0;
                        continue;
                    }
                    leaderless_rounds += 1;
                    if leaderless_rounds < 2 {
                        continue;
                    }
                    let answer = tokio::select! {
                        l = &mut stop_asked => {
                            leaving = l;
                            break;
                        }
                        // Bounded: a manager cut off from the others must not hold back a
                        // restart after a raft fault.
                        r = tokio::time::timeout(RETRY * 2, role_changed_by_leader(&running, &cfg)) => r.ok().flatten(),
                    };
                    if let Some(w) = answer {
                        tracing::info!(to = w.0.name(), "the managers changed this node's role while it was out of raft");
                        wanted = Some(w);
                    }
                }
                _ = tokio::time::sleep_until(renew_at) => {
                    // A renewal waits on managers: a signal or a leave must not wait for it.
                    let renewed = tokio::select! {
                        l = &mut stop_asked => {
                            leaving = l;
                            break;
                        }
                        r = renew(&running, &cfg) => r,
                    };
                    match renewed {
                        Ok(Renewed::InPlace) => renewal_point = ca::random_renewal_point(),
                        Ok(Renewed::OtherRole(w)) => wanted = Some(w),
                        Err(why) => {
                            if expired_since(&running.identity.certificate()).is_some() && running.manager.is_none() {
                                tracing::error!(error = %why, "this node's certificate has expired and no manager renewed it in time; \
                                    restart it with `swarmd run --rejoin-token TOKEN` (the worker join token)");
                            } else {
                                tracing::warn!(error = %why, "cannot renew this node's certificate yet; retrying");
                            }
                            retry_renewal = tokio::time::Instant::now() + RETRY;
                        }
                    }
                }
            }
            continue;
        }
        let progressed = if pending.is_some() {
            let answer = tokio::select! {
                l = &mut stop_asked => {
                    leaving = l;
                    break;
                }
                r = ask_for_certificate(&running, &cfg) => r,
            };
            match answer {
                // The leader sees this node as it runs: the change was undone meanwhile.
                Some((_, resp, _)) if (resp.role, resp.raft_id) == current => {
                    wanted = None;
                    true
                }
                Some((key_pem, resp, _)) => {
                    tracing::info!(
                        from = cfg.role.name(),
                        to = resp.role.name(),
                        "the managers changed this node's role; switching"
                    );
                    running = switch(running, &mut cfg, key_pem, resp).await?;
                    wanted = None;
                    true
                }
                None => false,
            }
        } else {
            let joined = tokio::select! {
                l = &mut stop_asked => {
                    leaving = l;
                    break;
                }
                r = join_raft_or_learn_role(&running, &cfg) => r,
            };
            match joined {
                Joining::Member => {
                    cfg.initialised = true;
                    running.dir.save_config(&cfg)?;
                    tracing::info!("this manager is a raft member now");
                    true
                }
                Joining::OtherRole(w) => {
                    tracing::info!(
                        to = w.0.name(),
                        "the managers changed this node's role before it joined raft"
                    );
                    wanted = Some(w);
                    true
                }
                Joining::NotYet => false,
            }
        };
        if !progressed {
            tokio::select! {
                l = &mut stop_asked => {
                    leaving = l;
                    break;
                }
                r = running.roles.recv(), if !agent_gone => match r {
                    Some(w) => wanted = Some(w),
                    None => agent_gone = true,
                },
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
    let dir = running.dir.clone();
    let lock = stop(running).await;
    if leaving {
        leave_swarm(&dir, &cfg, lock).await?;
        println!("Node left the swarm.");
    }
    Ok(())
}

/// When the certificate in use is due for renewal, at `point` of its lifetime.
fn renewal_due(running: &Running, point: f64) -> tokio::time::Instant {
    let now = swarm_model::wall_clock_now().unix_timestamp_nanos() as f64 / 1e9;
    let delay = ca::renewal_delay(&running.identity.certificate(), now, point).unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + delay
}

/// What a renewal came to.
enum Renewed {
    /// A new certificate for the same role is in use.
    InPlace,
    /// The leader answered for another role: the role change takes over.
    OtherRole((NodeRole, Option<u64>)),
}

/// Renews this node's certificate for the role it runs in, without stopping anything: a manager
/// signs its own from its replica of the root CA, a worker asks the leader. The new pair is
/// written to disk, then presented by every new connection, and the cached connections are
/// dropped so that the managers see it at once.
async fn renew(running: &Running, cfg: &NodeConfig) -> Result<Renewed, String> {
    let (key_pem, cert_pem) = match &running.manager {
        Some(m) => {
            let (key_pem, csr_pem) = ca::new_key_and_csr().map_err(|e| e.to_string())?;
            let cert_pem = m.issue_own_certificate(&csr_pem).map_err(|e| e.to_string())?;
            (key_pem, cert_pem)
        }
        None => {
            let (key_pem, resp, _) = ask_for_certificate(running, cfg)
                .await
                .ok_or_else(|| "no manager issued a certificate".to_string())?;
            if (resp.role, resp.raft_id) != (cfg.role, cfg.raft_id) {
                return Ok(Renewed::OtherRole((resp.role, resp.raft_id)));
            }
            (key_pem, resp.cert_pem)
        }
    };
    running
        .dir
        .save_node_certificate(&cert_pem, &key_pem)
        .map_err(|e| e.to_string())?;
    running
        .identity
        .replace(&cert_pem, &key_pem)
        .map_err(|e| e.to_string())?;
    running.peers.reconnect_all().await;
    let expires = ca::first_cert_der(&cert_pem)
        .and_then(|der| ca::cert_not_after(&der))
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(|t| t.to_string())
        .unwrap_or_default();
    tracing::info!(%expires, "renewed this node's certificate");
    Ok(Renewed::InPlace)
}

/// One round of asking the managers (only the leader answers) for a certificate for the role
/// the cluster now gives this node. `None` if nobody issued one this round.
async fn ask_for_certificate(running: &Running, cfg: &NodeConfig) -> Option<(String, RenewResponse, String)> {
    let (key_pem, csr_pem) = match ca::new_key_and_csr() {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot make a key for the new role");
            return None;
        }
    };
    let body = serde_json::to_vec(&RenewRequest {
        csr_pem,
        advertise_addr: cfg.advertise_addr.clone(),
    })
    .ok()?;
    for addr in managers_to_ask(running, cfg) {
        match running
            .peers
            .call(&addr, "/ca/renew", Some(full(body.clone())), Duration::from_secs(10))
            .await
        {
            Ok(bytes) => match serde_json::from_slice::<RenewResponse>(&bytes) {
                Ok(resp) => return Some((key_pem, resp, addr)),
                Err(e) => tracing::warn!(manager = %addr, error = %e, "unexpected certificate answer"),
            },
            Err(e) => tracing::debug!(manager = %addr, error = %e, "no certificate for the new role yet"),
        }
    }
    None
}

/// Where a new manager's attempt to join raft stands.
enum Joining {
    Member,
    /// The cluster gives this node another role now (demoted before it could join): its
    /// agent cannot hear that from the local manager, which is outside raft, so the leader
    /// is asked.
    OtherRole((NodeRole, Option<u64>)),
    NotYet,
}

/// One round of asking the managers to add this manager to raft; if none does, one round of
/// asking the leader which role the cluster gives this node now.
async fn join_raft_or_learn_role(running: &Running, cfg: &NodeConfig) -> Joining {
    if join_raft(running, cfg).await {
        return Joining::Member;
    }
    match role_changed_by_leader(running, cfg).await {
        Some(w) => Joining::OtherRole(w),
        None => Joining::NotYet,
    }
}

/// Whether this manager cannot hear from a leader: it knows none it can reach, or it is not a
/// raft member at all. A manager restarted with a membership change in its log that removed it
/// may even apply that change itself, while leading: it then names itself as leader, but it is
/// no member, and nobody sends to it any more (seed 36152794).
fn cut_off(raft: &swarm_raft::RaftStatus) -> bool {
    let member = raft.voters.contains_key(&raft.id) || raft.learners.contains_key(&raft.id);
    !member || raft.leader_addr().is_none()
}

/// The role and raft id the leader gives this node, if they are not the ones it runs with: for
/// a node whose agent cannot hear of role changes (its own manager is outside raft).
async fn role_changed_by_leader(running: &Running, cfg: &NodeConfig) -> Option<(NodeRole, Option<u64>)> {
    let (_, resp, _) = ask_for_certificate(running, cfg).await?;
    let given = (resp.role, resp.raft_id);
    (given != (cfg.role, cfg.raft_id)).then_some(given)
}

/// One round of asking the managers to add this manager to raft. True once it is a member.
async fn join_raft(running: &Running, cfg: &NodeConfig) -> bool {
    let Some(raft_id) = cfg.raft_id else {
        return false;
    };
    for addr in managers_to_ask(running, cfg) {
        match become_raft_member(&running.peers, &addr, raft_id, &cfg.advertise_addr).await {
            Ok(()) => return true,
            Err(why) => tracing::warn!(manager = %addr, error = %why, "cannot join raft yet; retrying"),
        }
    }
    false
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

/// How many times a manager whose raft stopped on a fault is started again, [`RETRY`] apart,
/// before the daemon gives up and exits with the error.
const RESTARTS_AFTER_FAULT: u32 = 60;

/// Starts a manager again in place after its raft stopped on a fault (a full disk, say): what
/// raft acknowledged is on disk, so a fresh start from the data dir carries on. While the fault
/// lasts (no space yet) starting fails or raft stops again, and it is tried again.
async fn restart_manager(running: Running, cfg: &NodeConfig) -> Result<Running, DaemonError> {
    let dir = running.dir.clone();
    let leave = running.leave.clone();
    let Some(data_key) = running.data_key.clone() else {
        return Ok(running);
    };
    // Under autolock the key file stays sealed with the cluster's current unlock key.
    let sealed_with = running
        .manager
        .as_ref()
        .and_then(|m| {
            m.store
                .view(|s| s.cluster().and_then(swarm_manager::settings::wanted_unlock_key))
        })
        .and_then(|k| ca::UnlockKey::parse(&k).ok());
    let key = ManagerKey {
        key: data_key,
        sealed_with,
    };
    let mut lock = Some(stop(running).await);
    // Paced: while the fault lasts, a started manager stops again at its first write.
    tokio::time::sleep(RETRY).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let held = match lock.take() {
            Some(l) => l,
            None => dir.lock()?,
        };
        match start_manager(dir.clone(), cfg, held, key.clone()).await {
            Ok((mut running, _)) => {
                running.leave = leave;
                // Bounded tighter than at start: raft may stop on the fault again meanwhile.
                await_local_recovery(&running, Duration::from_secs(10)).await;
                serve_api(&mut running, cfg).await?;
                tracing::info!(attempt, "manager started again after the raft fault");
                return Ok(running);
            }
            Err(e) if attempt < RESTARTS_AFTER_FAULT => {
                tracing::warn!(error = %e, attempt, "cannot start the manager again yet; retrying");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until a started manager has re-applied what it had committed before it stopped, so
/// its first answers never go back in time (seed 909357675: a manager restarted after a raft
/// fault served before that); after `within` it serves anyway, saying so.
pub(crate) async fn await_local_recovery(running: &Running, within: Duration) {
    if let Some(m) = &running.manager
        && !m.raft.wait_for_local_recovery(within).await
    {
        tracing::warn!("state is still being re-applied from the log; serving reads anyway");
    }
}

/// Runs `step` again every [`RETRY`] while it fails for want of disk space, at most
/// [`RESTARTS_AFTER_FAULT`] times; any other error is returned at once.
pub(crate) async fn retry_while_out_of_space<T, F, Fut>(what: &str, mut step: F) -> Result<T, DaemonError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DaemonError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match step().await {
            Err(e) if e.is_out_of_space() && attempt < RESTARTS_AFTER_FAULT => {
                tracing::warn!(error = %e, attempt, "{what} failed for want of disk space; retrying");
                tokio::time::sleep(RETRY).await;
            }
            other => return other,
        }
    }
}

/// Stops the node and starts it again in the role of its new certificate. A new manager starts
/// outside raft; [`supervise`] then has it join.
async fn switch(
    running: Running,
    cfg: &mut NodeConfig,
    key_pem: String,
    resp: RenewResponse,
) -> Result<Running, DaemonError> {
    if resp.role == NodeRole::Manager && resp.raft_id.is_none() {
        return Err(DaemonError::NoRaftId);
    }
    let dir = running.dir.clone();
    let leave = running.leave.clone();
    let lock = stop(running).await;
    cfg.role = resp.role;
    cfg.raft_id = resp.raft_id;
    if !resp.managers.is_empty() {
        cfg.managers = resp.managers.clone();
    }
    cfg.initialised = resp.role == NodeRole::Worker;
    // One resumable step: a crash is completed on the next start (datadir::switch_role). A full
    // disk is waited out here rather than ending the daemon halfway.
    retry_while_out_of_space("the role switch", || {
        let done = dir
            .switch_role(cfg, &resp.cert_pem, &key_pem)
            .map_err(DaemonError::from);
        async move { done }
    })
    .await?;
    let mut lock = Some(lock);
    let started = {
        let cfg = &*cfg;
        retry_while_out_of_space("starting in the new role", || {
            let (dir, held) = (dir.clone(), lock.take());
            async move {
                let held = match held {
                    Some(l) => l,
                    None => dir.lock()?,
                };
                match cfg.role {
                    NodeRole::Manager => {
                        let key = new_manager_key(&dir)?;
                        Ok(start_manager(dir, cfg, held, key).await?.0)
                    }
                    NodeRole::Worker => start_worker(dir, cfg, held),
                }
            }
        })
        .await
    };
    let mut running = started?;
    running.leave = leave;
    serve_api(&mut running, cfg).await?;
    Ok(running)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use swarm_raft::ManagerAddr;
    use swarm_raft::RaftStatus;

    use super::cut_off;

    fn status(id: u64, leader: Option<u64>, voters: &[u64]) -> RaftStatus {
        RaftStatus {
            id,
            state: "follower".into(),
            leader,
            term: 3,
            voters: voters
                .iter()
                .map(|v| {
                    let addr = ManagerAddr {
                        node_id: format!("n{v}"),
                        addr: format!("127.0.0.1:{v}"),
                    };
                    (*v, addr)
                })
                .collect::<BTreeMap<_, _>>(),
            ..RaftStatus::default()
        }
    }

    #[test]
    fn a_member_that_knows_its_leader_is_not_cut_off() {
        assert!(!cut_off(&status(1, Some(2), &[1, 2, 3])));
        assert!(!cut_off(&status(1, Some(1), &[1, 2, 3])));
    }

    #[test]
    fn a_manager_without_a_leader_or_outside_raft_is_cut_off() {
        assert!(cut_off(&status(1, None, &[1, 2, 3])));
        // It applied its own removal while leading: it still names itself.
        assert!(cut_off(&status(1, Some(1), &[2, 3])));
        assert!(cut_off(&status(1, Some(2), &[2, 3])));
    }
}
