//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: task output, gathered from the nodes
//! through the leader's dispatcher (a manager that does not lead asks the leader), and written
//! as dockerd does: stdcopy frames (raw bytes for TTY services), each line optionally with its
//! timestamp and the node, service and task it came from.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use swarm_model::Task;
use swarm_model::Timestamp;
use swarm_net::peer_client::full;
use swarm_protocol::codec::unframe_values;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogOptions;
use swarm_protocol::dispatcher::LogSubscribe;

use super::ApiState;
use super::body::query_bool;
use super::error::ApiError;
use super::error::ApiResult;
use super::services::resolve_service;
use super::tasks::resolve_task;
use crate::runtime::Manager;

type LineStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = LogLine> + Send>>;

fn options(q: &HashMap<String, String>) -> Result<LogOptions, ApiError> {
    let stdout = query_bool(q.get("stdout"))?;
    let stderr = query_bool(q.get("stderr"))?;
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let since_secs = match q.get("since").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(v) => Some(match v.parse::<f64>() {
            Ok(secs) => secs as i64,
            Err(_) => Timestamp::parse(v)
                .ok()
                .and_then(|t| t.unix_nanos())
                .map(|n| (n / 1_000_000_000) as i64)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("invalid since {v:?}: expected Unix seconds or an RFC3339 time"))
                })?,
        }),
    };
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail {v:?}: expected a number or all")))?,
        ),
    };
    Ok(LogOptions {
        follow: query_bool(q.get("follow"))?,
        stdout,
        stderr,
        since_secs,
        tail,
    })
}

/// The lines of `tasks`, from the leader's dispatcher here or through the leader.
async fn lines(m: &Manager, tasks: &[Task], opts: LogOptions) -> Result<LineStream, ApiError> {
    let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
    for t in tasks.iter().filter(|t| !t.node_id.is_empty()) {
        by_node.entry(t.node_id.clone()).or_default().push(t.id.clone());
    }
    if m.raft.leads_with_quorum() {
        let rx = m.dispatcher.subscribe_logs(by_node, opts).await?;
        return Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|l| (l, rx))
        })));
    }
    let leader = m
        .raft
        .status()
        .leader_addr()
        .map(|a| a.addr.clone())
        .ok_or_else(|| ApiError::unavailable("no leader to gather task output from; try again shortly"))?;
    let body = swarm_protocol::codec::encode(&LogSubscribe {
        tasks: by_node,
        options: opts,
    })
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let incoming = m
        .peers
        .open_stream(&leader, "/logs/subscribe", full(body), Duration::from_secs(10))
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot reach the leader for task output: {e}")))?;
    let frames = incoming.into_data_stream();
    Ok(Box::pin(futures_util::stream::unfold(
        (frames, Vec::new(), std::collections::VecDeque::new()),
        |(mut frames, mut buf, mut ready)| async move {
            loop {
                if let Some(line) = ready.pop_front() {
                    return Some((line, (frames, buf, ready)));
                }
                match frames.next().await {
                    Some(Ok(chunk)) => {
                        buf.extend_from_slice(&chunk);
                        match unframe_values::<LogLine>(&mut buf, "log line") {
                            Ok(lines) => ready.extend(lines),
                            Err(_) => return None,
                        }
                    }
                    _ => return None,
                }
            }
        },
    )))
}

/// dockerd's `details`: where the line came from, as URL-encoded `k=v` pairs.
fn details(task: &Task) -> String {
    format!(
        "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={}",
        task.node_id, task.service_id, task.id
    )
}

async fn serve(m: &Manager, tasks: Vec<Task>, q: HashMap<String, String>) -> ApiResult<Response> {
    let opts = options(&q)?;
    let with_details = query_bool(q.get("details"))?;
    let timestamps = query_bool(q.get("timestamps"))?;
    let tty = tasks
        .iter()
        .any(|t| t.spec.container_spec.as_ref().is_some_and(|c| c.tty));
    let by_id: HashMap<String, Task> = tasks.iter().map(|t| (t.id.clone(), t.clone())).collect();
    let stream = lines(m, &tasks, opts).await?.map(move |line| {
        let mut payload = Vec::with_capacity(line.data.len() + 160);
        if timestamps {
            payload.extend_from_slice(line.timestamp.to_string().as_bytes());
            payload.push(b' ');
        }
        if with_details && let Some(t) = by_id.get(&line.task_id) {
            payload.extend_from_slice(details(t).as_bytes());
            payload.push(b' ');
        }
        payload.extend_from_slice(&line.data);
        if !payload.ends_with(b"\n") {
            payload.push(b'\n');
        }
        if tty {
            return Ok::<Bytes, std::io::Error>(Bytes::from(payload));
        }
        let mut frame = vec![if line.stderr { 2 } else { 1 }, 0, 0, 0];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        Ok(Bytes::from(frame))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let kind = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(resp)
}

pub async fn service_logs(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let m = state.manager()?;
    let tasks = m
        .store
        .view(|s| resolve_service(s, &id).map(|svc| s.tasks_by_service(&svc.id).cloned().collect::<Vec<_>>()))?;
    serve(m, tasks, q).await
}

pub async fn task_logs(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let m = state.manager()?;
    let task = m.store.view(|s| resolve_task(s, &id))?;
    serve(m, vec![task], q).await
}
