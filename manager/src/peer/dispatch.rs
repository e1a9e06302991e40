//! A node's dispatcher calls: its session, heartbeats, task statuses and log lines; and a
//! manager asking the leader for task output on behalf of its client.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use swarm_net::server::Peer;
use swarm_net::server::PeerAddr;
use swarm_net::server::PeerKey;
use swarm_protocol::codec::frame_value;
use swarm_protocol::dispatcher::HeartbeatRequest;
use swarm_protocol::dispatcher::HeartbeatResponse;
use swarm_protocol::dispatcher::LogBatch;
use swarm_protocol::dispatcher::LogSubscribe;
use swarm_protocol::dispatcher::SessionRequest;
use swarm_protocol::dispatcher::StatusRequest;

use super::decode_msgpack;
use super::encode_msgpack;
use super::require_manager;
use super::require_node;
use crate::api::error::ApiResult;
use crate::runtime::Manager;

pub(super) async fn session(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    Extension(addr): Extension<PeerAddr>,
    body: Bytes,
) -> ApiResult<Body> {
    let who = require_node(&peer, &m)?.clone();
    let req: SessionRequest = decode_msgpack(&body, "session request")?;
    let stream = m
        .dispatcher
        .open_session(&who.node_id, addr.0.ip().to_string(), req)
        .await?;
    Ok(Body::from_stream(stream))
}

pub(super) async fn heartbeat(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    key: Option<Extension<PeerKey>>,
    body: Bytes,
) -> ApiResult<Vec<u8>> {
    let who = require_node(&peer, &m)?;
    let req: HeartbeatRequest = decode_msgpack(&body, "heartbeat")?;
    let key = key.map(|Extension(PeerKey(k))| k);
    let period = m.dispatcher.heartbeat(&who.node_id, &req.session_id, key).await?;
    encode_msgpack(&HeartbeatResponse {
        period_ms: period.as_millis() as u64,
    })
}

pub(super) async fn status(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let who = require_node(&peer, &m)?;
    let req: StatusRequest = decode_msgpack(&body, "status report")?;
    m.dispatcher.report(&who.node_id, &req.session_id, req.updates)?;
    Ok(StatusCode::OK)
}

/// A node's lines for a log subscription.
pub(super) async fn publish_logs(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let who = require_node(&peer, &m)?;
    let batch: LogBatch = decode_msgpack(&body, "log batch")?;
    m.dispatcher.publish_logs(&who.node_id, batch).await?;
    Ok(StatusCode::OK)
}

/// Another manager's client wants task output: the leader subscribes and streams it back.
pub(super) async fn subscribe_logs(
    State(m): State<Arc<Manager>>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> ApiResult<Body> {
    require_manager(&peer, &m)?;
    let req: LogSubscribe = decode_msgpack(&body, "log subscription")?;
    let rx = m.dispatcher.subscribe_logs(req.tasks, req.options).await?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((frame_value(&line).map(Bytes::from), rx))
    });
    Ok(Body::from_stream(stream))
}
