//! The Docker Engine API's swarm endpoints, served on the control socket (and optionally TCP),
//! so `swarmctl` and the real docker CLI drive the cluster the same way.

pub mod body;
pub mod browsers;
mod current_reads;
pub mod error;
mod events;
pub mod filters;
mod go_json;
mod logs;
mod networks;
mod nodes;
mod references;
mod secrets;
mod services;
mod swarm;
mod system;
mod tasks;
pub mod unlock;
pub mod validate;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::routing::get;
use axum::routing::post;
use swarm_model::Config;
use swarm_model::Secret;

use crate::runtime::LocalNode;
use crate::runtime::Manager;

/// The API version this server speaks; docker CLI 28 then uses it for every request.
pub const API_VERSION: &str = "1.47";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub local: LocalNode,
    /// `None` on a worker: swarm endpoints then answer 503 like dockerd.
    pub manager: Option<Arc<Manager>>,
    /// Manager addresses a worker knows about, for `/info`.
    pub remote_managers: Vec<(String, String)>,
    /// Tells the daemon to leave the swarm (`POST /swarm/leave`): it stops, removes this node's
    /// containers and state, and exits.
    pub leave: Arc<tokio::sync::Notify>,
    /// Set while this manager is locked (autolock): cluster requests are refused until
    /// `POST /swarm/unlock` brings the key.
    pub locked: Option<unlock::Unlocker>,
}

impl ApiState {
    pub fn manager(&self) -> Result<&Arc<Manager>, error::ApiError> {
        if self.locked.is_some() {
            return Err(error::ApiError::unavailable(unlock::LOCKED_MESSAGE));
        }
        self.manager.as_ref().ok_or_else(error::ApiError::not_a_manager)
    }
}

/// The routes, without the version prefix handling (see [`strip_version`]).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/update", post(swarm::update))
        .route("/swarm/init", post(swarm::already_in_swarm))
        .route("/swarm/join", post(swarm::already_in_swarm))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/unlockkey", get(swarm::unlock_key))
        .route("/swarm/unlock", post(unlock::unlock))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/nodes/{id}/update", post(nodes::update))
        .route("/services", get(services::list))
        .route("/services/create", post(services::create))
        .route("/services/{id}", get(services::inspect).delete(services::remove))
        .route("/services/{id}/update", post(services::update))
        .route("/services/{id}/logs", get(logs::service_logs))
        .route("/secrets", get(secrets::list::<Secret>))
        .route("/secrets/create", post(secrets::create::<Secret>))
        .route(
            "/secrets/{id}",
            get(secrets::inspect::<Secret>).delete(secrets::remove::<Secret>),
        )
        .route("/secrets/{id}/update", post(secrets::update::<Secret>))
        .route("/configs", get(secrets::list::<Config>))
        .route("/configs/create", post(secrets::create::<Config>))
        .route(
            "/configs/{id}",
            get(secrets::inspect::<Config>).delete(secrets::remove::<Config>),
        )
        .route("/configs/{id}/update", post(secrets::update::<Config>))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/{id}", get(networks::inspect).delete(networks::remove))
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::connect))
        .route("/events", get(events::events))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::inspect))
        .route("/tasks/{id}/logs", get(logs::task_logs))
        .route("/swarm-rs/raft", get(system::raft_status))
        .fallback(system::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            current_reads::current_reads,
        ))
        .with_state(state)
}

/// The routes as a listener serves them: behind the browser checks (the Host check only where
/// the API is addressed by IP or loopback name, not on TLS), with the version prefix removed
/// before routing.
pub fn served(routes: Router, check_host: bool) -> Router {
    let guarded = if check_host {
        routes.layer(axum::middleware::from_fn(browsers::refuse_browsers))
    } else {
        routes.layer(axum::middleware::from_fn(browsers::refuse_browsers_any_host))
    };
    Router::new()
        .fallback_service(guarded)
        .layer(axum::middleware::map_request(|req: Request| async move {
            strip_version(req)
        }))
}

/// Removes a `/v1.NN` prefix so versioned and unversioned paths reach the same routes. Must
/// wrap the whole router: a layer added inside it would run after routing.
pub fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let is_version = ver.split('.').count() == 2
            && ver
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if is_version {
            let tail = if tail.is_empty() { "/" } else { tail };
            let new = match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_string(),
            };
            if let Ok(uri) = new.parse::<Uri>() {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(path: &str) -> String {
        let req = Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
        strip_version(req).uri().to_string()
    }

    #[test]
    fn version_prefix_is_removed_and_query_kept() {
        assert_eq!(strip("/v1.47/services?status=true"), "/services?status=true");
        assert_eq!(strip("/v1.41/_ping"), "/_ping");
        assert_eq!(strip("/services"), "/services");
        assert_eq!(strip("/version"), "/version");
        assert_eq!(strip("/v1x/foo"), "/v1x/foo");
    }
}
