//! The `filters` query parameter: `{"key":{"value":true}}` (or the legacy `{"key":["value"]}`).
//! Values of one key are OR'ed, different keys are AND'ed.

use std::collections::BTreeMap;

use swarm_model::Labels;

use super::error::ApiError;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses `raw`, refusing keys outside `allowed` like dockerd: `Invalid filter 'x'`.
    pub fn parse(raw: Option<&String>, allowed: &[&str]) -> Result<Self, ApiError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Self::default());
        };
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("invalid filters {raw:?}: expected a JSON object")))?;
        let mut out = BTreeMap::new();
        for (key, vals) in obj {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!("Invalid filter '{key}'")));
            }
            let list: Vec<String> = match vals {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, v)| v.as_bool().unwrap_or(false))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            ApiError::bad_request(format!("invalid filters: values of '{key}' must be strings"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filters: values of '{key}' must be an object or a list"
                    )));
                }
            };
            out.insert(key.clone(), list);
        }
        Ok(Self(out))
    }

    pub fn values(&self, key: &str) -> &[String] {
        self.0.get(key).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// True when `key` is not filtered, or when `pred` holds for one of its values.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        let vals = self.values(key);
        vals.is_empty() || vals.iter().any(|v| pred(v))
    }

    /// Label filters: `k` means the label is present, `k=v` means it has that value. All must hold.
    pub fn labels_match(&self, key: &str, labels: &Labels) -> bool {
        self.values(key).iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).map(|x| x == v).unwrap_or(false),
            None => labels.contains_key(f.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_parse() {
        let f = Filters::parse(Some(&r#"{"name":{"web":true,"db":true}}"#.to_string()), &["name"]).unwrap();
        assert!(f.any("name", |v| v == "db"));
        let f = Filters::parse(Some(&r#"{"name":["web"]}"#.to_string()), &["name"]).unwrap();
        assert_eq!(f.values("name"), ["web"]);
        assert!(f.any("id", |_| false), "unfiltered key matches everything");
    }

    #[test]
    fn unknown_keys_are_refused_like_dockerd() {
        let err = Filters::parse(Some(&r#"{"bogus":{"x":true}}"#.to_string()), &["name"]).unwrap_err();
        assert_eq!(err.message, "Invalid filter 'bogus'");
    }

    #[test]
    fn labels_match_presence_and_value() {
        let mut labels = Labels::new();
        labels.insert("a".into(), "1".into());
        let f = Filters::parse(Some(&r#"{"label":{"a":true,"a=1":true}}"#.to_string()), &["label"]).unwrap();
        assert!(f.labels_match("label", &labels));
        let f = Filters::parse(Some(&r#"{"label":{"a=2":true}}"#.to_string()), &["label"]).unwrap();
        assert!(!f.labels_match("label", &labels));
    }
}
