//! Reads that see every write acknowledged before them, on any manager. Swarm gets this by
//! sending every control API call to the leader; here a GET of cluster objects first passes a
//! raft read barrier (ReadIndex), then reads this manager's store. Without a leader that a
//! majority still follows, such reads fail like writes instead of showing stale state, except
//! the node list and the swarm object: an operator diagnosing a lost quorum needs to see which
//! managers are down, so those answer from this manager's copy then.

use axum::extract::Request;
use axum::extract::State;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;

use super::ApiState;
use super::error::ApiError;

/// The paths whose GETs read replicated cluster state.
const CLUSTER_OBJECTS: [&str; 7] = [
    "/swarm",
    "/nodes",
    "/services",
    "/tasks",
    "/secrets",
    "/configs",
    "/networks",
];

/// Middleware: holds a read of cluster objects until this manager's store is current.
pub async fn current_reads(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if reads_cluster_state(req.method(), path)
        && let Ok(m) = state.manager()
        && let Err(e) = m.raft.read_barrier().await
    {
        if !answers_without_quorum(path) {
            return ApiError::unavailable(e.to_string()).into_response();
        }
        tracing::debug!(path, error = %e, "read served from this manager's copy without a current leader");
    }
    next.run(req).await
}

/// Reads an operator needs while the managers have no quorum: who is down, and the swarm.
fn answers_without_quorum(path: &str) -> bool {
    path == "/swarm" || path == "/nodes" || path.starts_with("/nodes/")
}

/// Whether a request reads replicated objects. Logs are gathered from the nodes, not the store.
fn reads_cluster_state(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && !path.ends_with("/logs")
        && CLUSTER_OBJECTS
            .iter()
            .any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_cluster_objects_pass_the_barrier_and_nothing_else_does() {
        for path in [
            "/swarm",
            "/services",
            "/services/web",
            "/tasks",
            "/nodes/n1",
            "/networks",
            "/swarm/unlockkey",
        ] {
            assert!(reads_cluster_state(&Method::GET, path), "{path}");
        }
        for path in [
            "/swarm-rs/raft",
            "/info",
            "/_ping",
            "/version",
            "/events",
            "/services/web/logs",
            "/servicesx",
        ] {
            assert!(!reads_cluster_state(&Method::GET, path), "{path}");
        }
        assert!(!reads_cluster_state(&Method::POST, "/services/create"));
        assert!(!reads_cluster_state(&Method::DELETE, "/services/web"));
        assert!(answers_without_quorum("/nodes") && answers_without_quorum("/nodes/n1"));
        assert!(!answers_without_quorum("/services") && !answers_without_quorum("/tasks"));
    }
}
