//! Request bodies and query strings, with errors that name the offending field.

use axum::body::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Decodes a JSON body; a bad field is reported with its path, e.g.
/// `Mode.Replicated.Replicas: invalid type: string "x", expected u64`.
pub fn decode_json<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(format!(
            "{what}: request body is empty; expected JSON"
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("invalid {what}: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid {what}: {path}: {inner}"))
        }
    })
}

/// A boolean query parameter the way dockerd reads them: `1`/`true` are true, absent is false.
pub fn query_bool(value: Option<&String>) -> Result<bool, ApiError> {
    match value.map(|v| v.as_str()) {
        None | Some("") => Ok(false),
        Some("1") | Some("true") | Some("True") | Some("TRUE") => Ok(true),
        Some("0") | Some("false") | Some("False") | Some("FALSE") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!("invalid boolean query value {other:?}"))),
    }
}

/// A required `version` query parameter (the object version the client read).
pub fn query_version(value: Option<&String>) -> Result<u64, ApiError> {
    let v = value
        .ok_or_else(|| ApiError::bad_request("the version query parameter is required (the Version.Index you read)"))?;
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid version {v:?}: expected a non-negative integer")))
}

#[cfg(test)]
mod tests {
    use swarm_model::ServiceSpec;

    use super::*;

    #[test]
    fn a_bad_field_is_named_with_its_path() {
        let body = Bytes::from_static(br#"{"Name":"x","Mode":{"Replicated":{"Replicas":"two"}}}"#);
        let err = decode_json::<ServiceSpec>(&body, "service spec").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("Mode.Replicated.Replicas"), "{}", err.message);
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let body = Bytes::from_static(br#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"a","Imgae":"b"}}}"#);
        let err = decode_json::<ServiceSpec>(&body, "service spec").unwrap_err();
        assert!(err.message.contains("Imgae"), "{}", err.message);
        assert!(err.message.contains("TaskTemplate.ContainerSpec"), "{}", err.message);
    }

    #[test]
    fn malformed_json_is_a_400() {
        let err = decode_json::<ServiceSpec>(&Bytes::from_static(b"{nope"), "service spec").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.starts_with("invalid service spec"), "{}", err.message);
    }
}
