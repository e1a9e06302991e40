//! `GET /events`: cluster events as a stream of JSON lines, as dockerd serves them, with the
//! `since`, `until` and `filters` parameters `docker events` sends.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use swarm_model::Timestamp;
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use super::error::ApiError;
use super::error::ApiResult;
use super::filters::Filters;
use crate::events::EventMessage;

const FILTERS: &[&str] = &[
    "type", "event", "service", "node", "scope", "secret", "config", "network", "label",
];

/// A `since`/`until` value: Unix seconds (possibly with a fraction) or an RFC3339 time.
fn parse_time(name: &str, v: &str) -> Result<i128, ApiError> {
    if let Ok(secs) = v.parse::<f64>() {
        return Ok((secs * 1e9) as i128);
    }
    Timestamp::parse(v).ok().and_then(|t| t.unix_nanos()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid {name} {v:?}: expected Unix seconds or an RFC3339 time"
        ))
    })
}

fn matches(f: &Filters, e: &EventMessage) -> bool {
    let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str).unwrap_or("");
    let names_or_id = |key: &str, kind: &str| {
        f.any(key, |v| {
            if e.kind == kind {
                e.actor.id.starts_with(v) || attr("name") == v
            } else {
                // Tasks match their service and node too.
                e.kind == "task"
                    && ((kind == "service" && (attr("service") == v || attr("com.docker.swarm.service.name") == v))
                        || (kind == "node" && attr("node") == v))
            }
        })
    };
    f.any("type", |v| v == e.kind)
        && f.any("event", |v| v == e.action)
        && f.any("scope", |v| v == e.scope)
        && names_or_id("service", "service")
        && names_or_id("node", "node")
        && names_or_id("secret", "secret")
        && names_or_id("config", "config")
        && names_or_id("network", "network")
        && f.labels_match("label", &e.actor.attributes)
}

fn line(e: &EventMessage) -> Bytes {
    let mut v = serde_json::to_vec(e).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn events(State(state): State<ApiState>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let m = state.manager()?.clone();
    let filters = Filters::parse(q.get("filters"), FILTERS)?;
    for t in filters.values("type") {
        if !["service", "node", "task", "secret", "config", "network"].contains(&t.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid filter 'type={t}': a swarm-rs manager has service, node, task, secret, config and network events"
            )));
        }
    }
    let since = q
        .get("since")
        .filter(|v| !v.is_empty())
        .map(|v| parse_time("since", v))
        .transpose()?;
    let until = q
        .get("until")
        .filter(|v| !v.is_empty())
        .map(|v| parse_time("until", v))
        .transpose()?;
    let (past, live) = m.events.subscribe(since);
    let before_until = move |e: &EventMessage| until.is_none_or(|u| e.time_nano <= u);
    let past: Vec<Result<Bytes, std::io::Error>> = past
        .into_iter()
        .filter(|e| matches(&filters, e) && before_until(e))
        .map(|e| Ok(line(&e)))
        .collect();
    let now = Timestamp::now().unix_nanos().unwrap_or(0);
    // `until` in the past: only the replay.
    let live_wanted = until.is_none_or(|u| u > now);
    let live_stream = futures_util::stream::unfold(
        (live, filters, live_wanted),
        move |(mut live, filters, wanted)| async move {
            if !wanted {
                return None;
            }
            loop {
                let wait = match until {
                    Some(u) => {
                        let left = u - Timestamp::now().unix_nanos().unwrap_or(0);
                        if left <= 0 {
                            return None;
                        }
                        Duration::from_nanos(left as u64)
                    }
                    None => Duration::from_secs(3600 * 24 * 365),
                };
                match tokio::time::timeout(wait, live.recv()).await {
                    Err(_) => return None,
                    Ok(Ok(e)) if matches(&filters, &e) => return Some((Ok(line(&e)), (live, filters, wanted))),
                    Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => continue,
                    Ok(Err(RecvError::Closed)) => return None,
                }
            }
        },
    );
    let stream = futures_util::stream::iter(past).chain(live_stream);
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
