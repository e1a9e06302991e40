//! What swarm-rs processes say to each other, and nothing that does the talking: the messages
//! between a node's agent and the leader's dispatcher, the requests of joining and renewing
//! nodes, the Engine API's contract with its clients, and the facts a node reports about its
//! machine. Both sides of every conversation import it from here, so neither reaches into the
//! other's insides.
//!
//! Pure data and encodings: no sockets, no runtime.

pub mod codec;
pub mod dispatcher;
pub mod engine;
pub mod host;
pub mod peer;

/// The `message` of a `{"message": ...}` error body, as both the Engine API and the manager
/// listener answer errors; otherwise the body as text, or `status` when there is no body.
pub fn error_message(body: &[u8], status: impl std::fmt::Display) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message,
        Err(_) if body.is_empty() => status.to_string(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_gives_its_message_or_its_text() {
        assert_eq!(
            error_message(br#"{"message":"no such service"}"#, 404),
            "no such service"
        );
        assert_eq!(error_message(b"plain words", 500), "plain words");
        assert_eq!(error_message(b"", "503 Service Unavailable"), "503 Service Unavailable");
    }
}
