//! A locked manager (autolock): its raft data key is sealed with the unlock key, so it cannot
//! start raft. Until `POST /swarm/unlock` brings the key, it answers `/_ping`, `/version` and
//! `/info` (as `locked`) and refuses every cluster request, as dockerd does.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use super::ApiState;
use super::body::decode_json_logged;
use super::error::ApiError;
use super::error::ApiResult;

/// dockerd's words for any cluster request to a locked manager.
pub const LOCKED_MESSAGE: &str = "Swarm is encrypted and needs to be unlocked before it can be used. \
     Please use \"docker swarm unlock\" to unlock it.";

/// One `POST /swarm/unlock`: the key the operator gave, and where the daemon answers whether
/// it opened the data key.
pub struct UnlockAttempt {
    pub key: String,
    pub answer: oneshot::Sender<Result<(), String>>,
}

/// Hands unlock attempts to the daemon, which holds the sealed data key.
#[derive(Clone)]
pub struct Unlocker(pub mpsc::Sender<UnlockAttempt>);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UnlockRequest {
    #[serde(default)]
    unlock_key: String,
}

pub async fn unlock(State(state): State<ApiState>, body: Bytes) -> ApiResult<StatusCode> {
    let Some(Unlocker(attempts)) = &state.locked else {
        // dockerd's answer on a node that is not locked.
        return Err(ApiError::conflict("swarm is not locked"));
    };
    let request: UnlockRequest = decode_json_logged(&body, "unlock request")?;
    let (answer, answered) = oneshot::channel();
    let attempt = UnlockAttempt {
        key: request.unlock_key,
        answer,
    };
    let gone = || ApiError::unavailable("the manager is starting; try again");
    attempts.send(attempt).await.map_err(|_| gone())?;
    match answered.await.map_err(|_| gone())? {
        Ok(()) => Ok(StatusCode::OK),
        Err(why) => Err(ApiError::new(StatusCode::UNAUTHORIZED, why)),
    }
}

/// What `/info` says under `Swarm` while locked.
pub fn locked_swarm_info(node_id: &str, node_addr: &str) -> serde_json::Value {
    serde_json::json!({
        "NodeID": node_id,
        "NodeAddr": node_addr,
        "LocalNodeState": "locked",
        "ControlAvailable": false,
        "Error": "",
        "RemoteManagers": null,
    })
}
