//! `/swarm`: the cluster object, its settings and join-token rotation.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use serde_json::json;
use swarm_ca::JoinToken;
use swarm_ca::UnlockKey;
use swarm_ca::root_digest;
use swarm_model::Cluster;
use swarm_model::ClusterSpec;
use swarm_model::NodeRole;
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::Version;

use super::ApiState;
use super::body::decode_json_logged;
use super::body::query_bool;
use super::body::query_version;
use super::error::ApiError;
use super::error::ApiResult;
use crate::store::StoreAction;

/// How many rotated tokens are remembered to tell joiners their token was rotated.
const ROTATED_TOKENS_KEPT: usize = 16;

/// The cluster as `GET /swarm` shows it: with join tokens, without CA private material.
pub fn swarm_view(mut c: Cluster) -> Cluster {
    c.root_ca = None;
    c
}

pub async fn inspect(State(state): State<ApiState>) -> ApiResult<Json<Cluster>> {
    Ok(Json(swarm_view(state.manager()?.cluster()?)))
}

pub async fn update(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let m = state.manager()?;
    let version = query_version(q.get("version"))?;
    let rotate_worker = query_bool(q.get("rotateWorkerToken"))?;
    let rotate_manager = query_bool(q.get("rotateManagerToken"))?;
    let rotate_unlock = query_bool(q.get("rotateManagerUnlockKey"))?;
    let spec: ClusterSpec = decode_json_logged(&body, "swarm spec")?;
    validate_cluster_spec(&spec)?;
    m.raft
        .wait_applied(version, tokio::time::Instant::now() + std::time::Duration::from_secs(2))
        .await;
    let mut cluster = m.cluster()?;
    if cluster.version != Version::new(version) {
        return Err(ApiError::conflict("update out of sequence"));
    }
    let autolock = spec.encryption_config.auto_lock_managers;
    if rotate_unlock && !autolock {
        return Err(ApiError::bad_request(
            "rotateManagerUnlockKey: autolock is off (EncryptionConfig.AutoLockManagers), so there is no unlock key to rotate",
        ));
    }
    cluster.spec = spec;
    let ca = cluster
        .root_ca
        .clone()
        .ok_or_else(|| ApiError::internal("the cluster has no root CA"))?;
    let digest = root_digest(&ca.ca_cert_pem);
    if let (Some(tokens), Some(root)) = (cluster.join_tokens.as_mut(), cluster.root_ca.as_mut()) {
        if rotate_worker {
            root.rotated_tokens
                .push(std::mem::replace(&mut tokens.worker, JoinToken::generate(&digest)));
        }
        if rotate_manager {
            root.rotated_tokens
                .push(std::mem::replace(&mut tokens.manager, JoinToken::generate(&digest)));
        }
        let excess = root.rotated_tokens.len().saturating_sub(ROTATED_TOKENS_KEPT);
        root.rotated_tokens.drain(..excess);
    }
    if let Some(root) = cluster.root_ca.as_mut() {
        // As in Swarm: turning autolock on makes a key, rotating replaces it, and turning it
        // off drops it. Each manager follows by re-sealing its own data key.
        root.unlock_key = match (autolock, root.unlock_key.take()) {
            (false, _) => None,
            (true, Some(key)) if !rotate_unlock => Some(key),
            (true, _) => Some(UnlockKey::generate().to_string()),
        };
    }
    cluster.set_updated_at(Timestamp::now());
    m.committer
        .commit(vec![StoreAction::Update(cluster.into_object())])
        .await?;
    Ok(StatusCode::OK)
}

/// Refuses settings that cannot work, naming the field.
pub fn validate_cluster_spec(spec: &ClusterSpec) -> Result<(), ApiError> {
    if !spec.name.is_empty() && spec.name != "default" {
        return Err(ApiError::bad_request(format!(
            "Name: the swarm is always named \"default\", not {:?}",
            spec.name
        )));
    }
    if spec.raft.snapshot_interval == 0 {
        return Err(ApiError::bad_request("Raft.SnapshotInterval: must be at least 1"));
    }
    // Raft timing is fixed in swarm-rs (heartbeat 200 ms, election 1-2 s); only Swarm's
    // defaults, which the docker CLI sends back unchanged, are accepted.
    if spec.raft.election_tick != 10 {
        return Err(ApiError::bad_request(format!(
            "Raft.ElectionTick: {} is not supported; swarm-rs uses fixed raft timing (election after 1-2 s) and accepts only 10",
            spec.raft.election_tick
        )));
    }
    if spec.raft.heartbeat_tick != 1 {
        return Err(ApiError::bad_request(format!(
            "Raft.HeartbeatTick: {} is not supported; swarm-rs uses fixed raft timing (heartbeat every 200 ms) and accepts only 1",
            spec.raft.heartbeat_tick
        )));
    }
    if spec.raft.keep_old_snapshots.is_some_and(|k| k != 0) {
        return Err(ApiError::bad_request(
            "Raft.KeepOldSnapshots: swarm-rs keeps only the newest snapshot; only 0 is accepted",
        ));
    }
    if let Some(p) = spec.dispatcher.heartbeat_period
        && p <= 0
    {
        return Err(ApiError::bad_request("Dispatcher.HeartbeatPeriod: must be positive"));
    }
    if let Some(e) = spec.ca_config.node_cert_expiry
        && e < 3_600_000_000_000
    {
        return Err(ApiError::bad_request(
            "CAConfig.NodeCertExpiry: must be at least 1 hour",
        ));
    }
    if spec.ca_config.external_cas.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request(
            "CAConfig.ExternalCAs: external CAs are not supported by swarm-rs",
        ));
    }
    if !spec.ca_config.signing_ca_cert.is_empty() || !spec.ca_config.signing_ca_key.is_empty() {
        return Err(ApiError::bad_request(
            "CAConfig.SigningCACert: root CA rotation is not supported by swarm-rs yet",
        ));
    }
    Ok(())
}

/// Reads the request body first: answering before it is read makes hyper drop the
/// connection while the client is still writing, and docker then reports a broken pipe.
pub async fn already_in_swarm(_body: Bytes) -> ApiError {
    ApiError::unavailable(
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.",
    )
}

/// `POST /swarm/leave[?force=1]`: the node leaves, as with dockerd. A manager needs `force`,
/// with dockerd's explanation of what leaving costs the swarm. The daemon answers, then stops,
/// removes its task containers and its state, and exits.
pub async fn leave(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
    _body: Bytes,
) -> ApiResult<StatusCode> {
    let force = query_bool(q.get("force"))?;
    if state.local.role == NodeRole::Manager && !force {
        let mut msg =
            "You are attempting to leave the swarm on a node that is participating as a manager. ".to_string();
        match &state.manager {
            Some(m) => {
                let raft = m.raft.status();
                let total = raft.voters.len();
                let reachable = raft.voters.values().filter(|a| m.is_reachable(&a.node_id)).count();
                if removing_loses_quorum(reachable, total) {
                    if reachable <= 1 && total <= 1 {
                        msg.push_str(
                            "Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ",
                        );
                        return Err(ApiError::unavailable(msg));
                    }
                    msg.push_str(&format!(
                        "Removing this node leaves {} managers out of {total}. Without a Raft quorum your swarm will be inaccessible. ",
                        reachable.saturating_sub(1)
                    ));
                }
            }
            None => msg.push_str("Doing so may lose the consensus of your cluster. "),
        }
        msg.push_str(
            "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.",
        );
        return Err(ApiError::unavailable(msg));
    }
    tracing::info!(force, "leaving the swarm, as asked through the API");
    state.leave.notify_one();
    Ok(StatusCode::OK)
}

/// Swarm's rule: leaving loses quorum when the reachable managers left would be no majority.
fn removing_loses_quorum(reachable: usize, total: usize) -> bool {
    reachable.saturating_sub(1) <= total / 2
}

/// The managers' unlock key, empty while autolock is off (the docker CLI then says "no unlock
/// key is set").
pub async fn unlock_key(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let cluster = state.manager()?.cluster()?;
    let key = cluster.root_ca.and_then(|r| r.unlock_key).unwrap_or_default();
    Ok(Json(json!({ "UnlockKey": key })))
}
