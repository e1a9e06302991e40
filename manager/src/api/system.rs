//! `/_ping`, `/version`, `/info` and swarm-rs' own `/swarm-rs/raft`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::Value;
use serde_json::json;
use swarm_model::NodeRole;
use swarm_protocol::host;

use super::API_VERSION;
use super::ApiState;
use super::MIN_API_VERSION;
use super::error::ApiError;
use super::error::ApiResult;

fn ping_headers(state: &ApiState) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    let swarm = match state.local.role {
        NodeRole::Manager => "active/manager",
        NodeRole::Worker => "active/worker",
    };
    h.insert("Swarm", HeaderValue::from_static(swarm));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert("Content-Type", HeaderValue::from_static("text/plain; charset=utf-8"));
    h
}

pub async fn ping(State(state): State<ApiState>) -> Response {
    (ping_headers(&state), "OK").into_response()
}

pub async fn ping_head(State(state): State<ApiState>) -> Response {
    let mut h = ping_headers(&state);
    h.insert("Content-Length", HeaderValue::from_static("0"));
    (h, "").into_response()
}

pub async fn version() -> Json<Value> {
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": { "Name": "swarm-rs" },
        "Components": [{ "Name": "swarm-rs", "Version": v, "Details": { "ApiVersion": API_VERSION } }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": option_env!("SWARM_RS_GIT_COMMIT").unwrap_or("unknown"),
        "GoVersion": "n/a (Rust)",
        "Os": host::os(),
        "Arch": host::architecture(),
        "KernelVersion": host::kernel_version(),
        "BuildTime": "",
        "Experimental": false,
    }))
}

pub async fn info(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let local = &state.local;
    let node_addr = local
        .advertise_addr
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_default();
    let swarm = match &state.manager {
        _ if state.locked.is_some() => super::unlock::locked_swarm_info(&local.node_id, &node_addr),
        Some(m) => {
            let raft = m.raft.status();
            let remote: Vec<Value> = raft
                .voters
                .values()
                .map(|a| json!({ "NodeID": a.node_id, "Addr": a.addr }))
                .collect();
            let (nodes, managers, cluster) = m.store.view(|s| {
                let managers = s.nodes.iter().filter(|n| n.spec.role == NodeRole::Manager).count();
                (s.nodes.len(), managers, s.cluster().cloned())
            });
            let cluster = cluster.map(|mut c| {
                c.join_tokens = None;
                c.root_ca = None;
                c
            });
            json!({
                "NodeID": local.node_id,
                "NodeAddr": node_addr,
                "LocalNodeState": "active",
                "ControlAvailable": true,
                "Error": "",
                "RemoteManagers": remote,
                "Nodes": nodes,
                "Managers": managers,
                "Cluster": cluster,
            })
        }
        None => {
            let remote: Vec<Value> = state
                .remote_managers
                .iter()
                .map(|(id, addr)| json!({ "NodeID": id, "Addr": addr }))
                .collect();
            json!({
                "NodeID": local.node_id,
                "NodeAddr": node_addr,
                "LocalNodeState": "active",
                "ControlAvailable": false,
                "Error": "",
                "RemoteManagers": remote,
            })
        }
    };
    Ok(Json(json!({
        "ID": local.node_id,
        "Name": local.hostname,
        "ServerVersion": format!("swarm-rs {}", env!("CARGO_PKG_VERSION")),
        "OSType": host::os(),
        "Architecture": host::architecture(),
        "NCPU": host::cpus(),
        "MemTotal": host::memory_bytes(),
        "OperatingSystem": host::operating_system(),
        "KernelVersion": host::kernel_version(),
        "Driver": "",
        "Plugins": { "Volume": null, "Network": null, "Authorization": null, "Log": null },
        "Containers": 0,
        "Images": 0,
        "Labels": [],
        "Swarm": swarm,
    })))
}

/// swarm-rs' own view of raft on this manager: role, term, indexes, snapshot and membership.
pub async fn raft_status(State(state): State<ApiState>) -> ApiResult<Json<swarm_raft::RaftStatus>> {
    Ok(Json(state.manager()?.raft.detailed_status()))
}

pub async fn not_found(uri: Uri, _body: axum::body::Bytes) -> ApiError {
    ApiError::not_found(format!(
        "page not found: {} is not an endpoint of this server",
        uri.path()
    ))
}
