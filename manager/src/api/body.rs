//! Request bodies and query strings, with errors that name the offending field.

use axum::body::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::go_json;
use super::go_json::GoDecodeError;
use super::go_json::GoDecoded;

/// Decodes a JSON body as dockerd does (see [`go_json`]): field names in any case, unknown keys
/// skipped. A bad value is reported with its path, e.g.
/// `Mode.Replicated.Replicas: invalid type: string "x", expected u64`.
pub fn decode_json<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<GoDecoded<T>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(format!(
            "{what}: request body is empty; expected JSON"
        )));
    }
    go_json::decode(body).map_err(|e| match e {
        GoDecodeError::Syntax(inner) => invalid(what, "", inner),
        GoDecodeError::Value { path, source } => invalid(what, &path, source),
    })
}

/// A 400 that names the body and, when known, the field: `invalid service spec: Mode: ...`.
fn invalid(what: &str, path: &str, problem: impl std::fmt::Display) -> ApiError {
    if path.is_empty() || path == "." {
        ApiError::bad_request(format!("invalid {what}: {problem}"))
    } else {
        ApiError::bad_request(format!("invalid {what}: {path}: {problem}"))
    }
}

/// A body of the managers' own peer protocol, decoded strictly: both sides are swarm-rs, so an
/// unknown or misspelt field is a bug to report, not a client to tolerate.
pub fn decode_exact<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| invalid(what, &e.path().to_string(), e.into_inner()))
}

/// [`decode_json`] for endpoints whose response has no place for warnings: each skipped key is
/// logged, so none is dropped silently.
pub fn decode_json_logged<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    let decoded = decode_json(body, what)?;
    ignored_key_warnings(&decoded.ignored, "", what);
    Ok(decoded.value)
}

/// The warnings dockerd would not give but a client should see: each key of the body that
/// named no field, under `root` (what the body is, e.g. `Spec`). They are logged as well.
pub fn ignored_key_warnings(ignored: &[String], root: &str, what: &str) -> Vec<String> {
    ignored
        .iter()
        .map(|path| {
            let full = if root.is_empty() {
                path.clone()
            } else {
                format!("{root}.{path}")
            };
            tracing::warn!(field = %full, "{what}: unknown field ignored");
            format!("unknown field {full} ignored")
        })
        .collect()
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
    fn an_unknown_field_is_skipped_and_named_in_a_warning() {
        let body = Bytes::from_static(br#"{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"a","Imgae":"b"}}}"#);
        let decoded = decode_json::<ServiceSpec>(&body, "service spec").unwrap();
        assert_eq!(
            decoded.value.task_template.container_spec.map(|c| c.image),
            Some("a".to_string())
        );
        assert_eq!(
            ignored_key_warnings(&decoded.ignored, "Spec", "service create"),
            vec!["unknown field Spec.TaskTemplate.ContainerSpec.Imgae ignored".to_string()]
        );
    }

    #[test]
    fn malformed_json_is_a_400() {
        let err = decode_json::<ServiceSpec>(&Bytes::from_static(b"{nope"), "service spec").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.starts_with("invalid service spec"), "{}", err.message);
    }

    /// Every field of every request body, written in other cases and with an unknown key added
    /// to each object, decodes to what the canonical body decodes to, and every added key is
    /// reported. The canonical bodies are the golden samples, which set every field.
    mod every_field {
        use serde::Serialize;
        use serde::de::DeserializeOwned;
        use serde_json::Value;
        use swarm_model::ClusterSpec;
        use swarm_model::NodeSpec;
        use swarm_model::SecretSpec;

        use super::*;

        const SERVICE: &str = include_str!("../../../model/golden/ServiceSpec.json");
        const NODE: &str = include_str!("../../../model/golden/NodeSpec.json");
        const CLUSTER: &str = include_str!("../../../model/golden/ClusterSpec.json");
        const SECRET: &str = include_str!("../../../model/golden/SecretSpec.json");

        type Recase = fn(&str) -> String;

        fn mixed(key: &str) -> String {
            key.chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect()
        }

        const CASES: [(&str, Recase); 3] = [
            ("lower", |k| k.to_ascii_lowercase()),
            ("upper", |k| k.to_ascii_uppercase()),
            ("mixed", mixed),
        ];

        /// Field names start with a letter; the samples' map keys (labels, options) are
        /// timestamps, so they are data and stay as written.
        fn is_field_name(key: &str) -> bool {
            key.starts_with(|c: char| c.is_ascii_alphabetic())
        }

        /// `v` with every field name recased and an unknown key in each struct object; returns
        /// the paths of the added keys.
        fn vary(v: &Value, recase: Recase, path: &str, added: &mut Vec<String>) -> Value {
            match v {
                Value::Object(map) => {
                    let is_struct = map.keys().any(|k| is_field_name(k));
                    let mut out = serde_json::Map::new();
                    for (k, child) in map {
                        let child_path = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        let key = if is_field_name(k) { recase(k) } else { k.clone() };
                        out.insert(key, vary(child, recase, &child_path, added));
                    }
                    if is_struct {
                        out.insert("XNotAField".to_string(), Value::from(1));
                        added.push(if path.is_empty() {
                            "XNotAField".to_string()
                        } else {
                            format!("{path}.XNotAField")
                        });
                    }
                    Value::Object(out)
                }
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| vary(item, recase, &format!("{path}[{i}]"), added))
                        .collect(),
                ),
                other => other.clone(),
            }
        }

        fn check<T: DeserializeOwned + Serialize>(what: &str, golden: &str) {
            let samples: Vec<Value> = serde_json::from_str(golden).unwrap();
            for sample in samples {
                let strict: T = serde_json::from_value(sample.clone()).unwrap();
                let strict = serde_json::to_value(&strict).unwrap();
                let canonical = decode_json::<T>(&Bytes::from(sample.to_string()), what).unwrap();
                assert_eq!(serde_json::to_value(&canonical.value).unwrap(), strict, "{what}");
                assert!(canonical.ignored.is_empty(), "{what}: {:?}", canonical.ignored);
                for (case, recase) in CASES {
                    let mut added = Vec::new();
                    let variant = vary(&sample, recase, "", &mut added);
                    assert!(!added.is_empty(), "{what}: the sample has objects");
                    let decoded = decode_json::<T>(&Bytes::from(variant.to_string()), what)
                        .unwrap_or_else(|e| panic!("{what} in {case} case: {}", e.message));
                    assert_eq!(
                        serde_json::to_value(&decoded.value).unwrap(),
                        strict,
                        "{what} in {case} case"
                    );
                    let mut ignored = decoded.ignored;
                    ignored.sort();
                    added.sort();
                    assert_eq!(ignored, added, "{what} in {case} case");
                }
            }
        }

        #[test]
        fn service_spec() {
            check::<ServiceSpec>("service spec", SERVICE);
        }

        #[test]
        fn node_spec() {
            check::<NodeSpec>("node spec", NODE);
        }

        #[test]
        fn swarm_spec() {
            check::<ClusterSpec>("swarm spec", CLUSTER);
        }

        #[test]
        fn secret_and_config_spec() {
            check::<SecretSpec>("secret spec", SECRET);
        }
    }
}
