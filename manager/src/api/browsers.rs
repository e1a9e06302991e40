//! Refusing requests that a web browser could be tricked into sending: the Engine API can run
//! privileged services, so a web page must not be able to reach it through the user's browser,
//! neither cross-site (CSRF) nor through a DNS name rebound to a loopback address.
//!
//! The docker CLI and swarmctl never send an `Origin` header, always label JSON bodies
//! `application/json`, and name the daemon by IP, `localhost`, `*.localhost` (the docker CLI's
//! `api.moby.localhost` on the socket), `docker` or `swarm`.

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;

use crate::api::error::ApiError;

/// Why a request looks like one a browser sent on a web page's behalf.
pub fn browser_request_problem(headers: &HeaderMap, check_host: bool) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return Some(format!(
            "cross-site requests are refused: the request carries Origin {:?}, which only browsers send",
            origin.to_str().unwrap_or("(not text)")
        ));
    }
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)").to_ascii_lowercase());
    let essence = content_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_string());
    if let Some(kind) = essence.as_deref()
        && (kind == "application/x-www-form-urlencoded" || kind == "multipart/form-data")
    {
        return Some(format!("form submissions are refused (Content-Type {kind}); send JSON"));
    }
    if has_body && essence.as_deref() != Some("application/json") {
        return Some(format!(
            "a request body must be JSON with Content-Type application/json, not {}",
            content_type.as_deref().unwrap_or("none")
        ));
    }
    if check_host && let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !is_local_name(host) {
            return Some(format!(
                "Host {host:?} is refused: address the API by IP or as localhost (a DNS name could be rebound to \
                 this address by a web page)"
            ));
        }
    }
    None
}

/// IP literals (with or without a port), `localhost` and its subdomains, and the names the docker
/// CLI and swarmctl use on the control socket.
fn is_local_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => return rest.split(']').next().is_some_and(|ip| ip.parse::<IpAddr>().is_ok()),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.is_empty()
        || name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || name == "docker"
        || name == "swarm"
}

/// Middleware for the control socket and plain TCP: every check.
pub async fn refuse_browsers(req: Request, next: Next) -> Response {
    guard(req, next, true).await
}

/// Middleware for TLS with client certificates, where the operator may name the daemon by any
/// DNS name: the Host check is left out.
pub async fn refuse_browsers_any_host(req: Request, next: Next) -> Response {
    guard(req, next, false).await
}

async fn guard(req: Request, next: Next, check_host: bool) -> Response {
    match browser_request_problem(req.headers(), check_host) {
        Some(problem) => ApiError::new(StatusCode::FORBIDDEN, problem).into_response(),
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn what_the_docker_cli_and_swarmctl_send_passes() {
        for h in [
            headers(&[("host", "api.moby.localhost")]),
            headers(&[("host", "docker"), ("content-type", "text/plain")]),
            headers(&[
                ("host", "swarm"),
                ("content-type", "application/json"),
                ("content-length", "12"),
            ]),
            headers(&[
                ("host", "127.0.0.1:2375"),
                ("content-type", "application/json; charset=utf-8"),
                ("transfer-encoding", "chunked"),
            ]),
            headers(&[("host", "[::1]:2375")]),
            headers(&[("host", "10.1.2.3:2375")]),
            headers(&[("host", "localhost")]),
            headers(&[]),
        ] {
            assert_eq!(browser_request_problem(&h, true), None, "{h:?}");
        }
    }

    #[test]
    fn what_a_web_page_can_make_a_browser_send_is_refused() {
        for (h, needle) in [
            (
                headers(&[("origin", "https://evil.example"), ("host", "localhost")]),
                "Origin",
            ),
            (
                headers(&[("content-type", "text/plain"), ("content-length", "40")]),
                "must be JSON",
            ),
            (
                headers(&[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("content-length", "0"),
                ]),
                "form",
            ),
            (headers(&[("content-type", "multipart/form-data; boundary=x")]), "form"),
            (headers(&[("content-length", "5")]), "not none"),
            (headers(&[("host", "rebound.evil.example:2375")]), "Host"),
            (headers(&[("host", "localhost.evil.example")]), "Host"),
        ] {
            let problem = browser_request_problem(&h, true).unwrap_or_default();
            assert!(problem.contains(needle), "{h:?}: {problem:?}");
        }
        let named = headers(&[("host", "manager.example.com:2376")]);
        assert_eq!(browser_request_problem(&named, false), None, "TLS may use DNS names");
    }
}
