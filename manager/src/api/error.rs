//! Errors as the Engine API returns them: `{"message": ...}` with the right status.

use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::response::Response;
use swarm_protocol::dispatcher::NotLeader;
use swarm_raft::ProposeError;

use crate::commit::CommitError;
use crate::dispatcher::DispatchError;
use crate::runtime::NotInitialised;
use crate::store::StoreError;

/// An error for an API client. The message names the thing and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// What dockerd answers on swarm endpoints of a worker node.
    pub fn not_a_manager() -> Self {
        Self::unavailable(
            "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. \
             Please run this command on a manager node or promote the current node to a manager.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::NameConflict { .. } | StoreError::IdConflict { .. } => StatusCode::CONFLICT,
            StoreError::OutOfSequence { .. } => StatusCode::CONFLICT,
            StoreError::Invalid(_) | StoreError::Refused(_) => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> Self {
        Self::unavailable(e.to_string())
    }
}

impl From<CommitError> for ApiError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Propose(e) => e.into(),
            CommitError::Refused(e) => e.into(),
            e @ (CommitError::Encode(_) | CommitError::Decode(_) | CommitError::ResultCount { .. }) => {
                Self::internal(e.to_string())
            }
        }
    }
}

impl From<NotInitialised> for ApiError {
    fn from(e: NotInitialised) -> Self {
        Self::unavailable(e.to_string())
    }
}

/// What nodes read from a dispatcher's refusal: a 503 whose message is a JSON [`NotLeader`]
/// naming the leader, so an agent can go there; 403, 404 and 410 for the node's own mistakes.
impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::NotLeader { ref leader } => {
                let body = NotLeader {
                    message: e.to_string(),
                    leader: leader.clone(),
                };
                Self::unavailable(serde_json::to_string(&body).unwrap_or_default())
            }
            DispatchError::UnknownNode(_) => Self::new(StatusCode::FORBIDDEN, e.to_string()),
            DispatchError::NoSession { .. } => Self::not_found(e.to_string()),
            DispatchError::SubscriptionEnded => Self::new(StatusCode::GONE, e.to_string()),
            DispatchError::NotItsTask { .. } => Self::new(StatusCode::FORBIDDEN, e.to_string()),
            DispatchError::Commit(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut resp = (self.status, body).into_response();
        // Exactly `application/json`: with a charset the docker CLI prints the raw JSON.
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
