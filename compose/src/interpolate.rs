//! `${VAR}` substitution from the process environment, then docker's type casts.
//!
//! Only values are interpolated, never keys, and before validation, so `replicas: ${N}` is
//! checked as the integer it becomes.

use std::collections::BTreeMap;

use crate::error::CastError;
use crate::error::ComposeError;
use crate::value::Map;
use crate::value::Value;

/// Why one template could not be substituted.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateError {
    /// The text is not a valid template (docker quotes the whole original string).
    Malformed,
    /// `${V:?msg}` or `${V?msg}` with the variable missing.
    Required { name: String, message: String },
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Substitutes one string: `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`
/// and `$$`. Unset variables become `""`; defaults run to the first `}` and do not nest.
pub fn substitute(text: &str, env: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        match next {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some(n) if is_name_start(n) => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && is_name_char(chars[end]) {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                out.push_str(env.get(&name).map(String::as_str).unwrap_or(""));
                i = end;
            }
            Some('{') => {
                let close = chars[i + 2..].iter().position(|&c| c == '}').map(|p| p + i + 2);
                let Some(close) = close else {
                    return Err(TemplateError::Malformed);
                };
                let inner: String = chars[i + 2..close].iter().collect();
                out.push_str(&braced(&inner, env)?);
                i = close + 1;
            }
            _ => return Err(TemplateError::Malformed),
        }
    }
    Ok(out)
}

/// The inside of `${...}`.
fn braced(inner: &str, env: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let name_len = inner.chars().take_while(|&c| is_name_char(c)).count();
    let name = &inner[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(TemplateError::Malformed);
    }
    let rest = &inner[name_len..];
    let value = env.get(name);
    if rest.is_empty() {
        return Ok(value.cloned().unwrap_or_default());
    }
    let (empty_counts, op, arg) = if let Some(r) = rest.strip_prefix(":-") {
        (true, '-', r)
    } else if let Some(r) = rest.strip_prefix(":?") {
        (true, '?', r)
    } else if let Some(r) = rest.strip_prefix('-') {
        (false, '-', r)
    } else if let Some(r) = rest.strip_prefix('?') {
        (false, '?', r)
    } else {
        return Err(TemplateError::Malformed);
    };
    let missing = match value {
        None => true,
        Some(v) => empty_counts && v.is_empty(),
    };
    match (missing, op) {
        (false, _) => Ok(value.cloned().unwrap_or_default()),
        (true, '-') => Ok(arg.to_string()),
        _ => Err(TemplateError::Required {
            name: name.to_string(),
            message: arg.to_string(),
        }),
    }
}

/// Which type a value at a path is cast to after interpolation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// Paths whose string values docker casts (`loader/interpolate.go`); `*` is one key, `[]` a list item.
const CASTS: &[(&str, Cast)] = &[
    ("services.*.configs.[].mode", Cast::Int),
    ("services.*.secrets.[].mode", Cast::Int),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    ("services.*.deploy.update_config.max_failure_ratio", Cast::Float),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    ("services.*.deploy.rollback_config.max_failure_ratio", Cast::Float),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    ("services.*.deploy.placement.max_replicas_per_node", Cast::Int),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.ports.[].published", Cast::Int),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.read_only", Cast::Bool),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.init", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("services.*.volumes.[].tmpfs.size", Cast::Int),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

fn cast_for(path: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        let parts: Vec<&str> = pattern.split('.').collect();
        let matches = parts.len() == path.len()
            && parts
                .iter()
                .zip(path)
                .all(|(p, seg)| *p == "*" && seg != "[]" || *p == seg);
        matches.then_some(*cast)
    })
}

fn cast(text: &str, cast: Cast) -> Result<Value, CastError> {
    match cast {
        Cast::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| CastError::Int(text.to_string())),
        Cast::Float => text
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| CastError::Float(text.to_string())),
        Cast::Bool => match text.to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "n" | "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(CastError::Bool(text.to_string())),
        },
    }
}

/// Interpolates every string value of a whole file, then applies the type casts.
pub fn interpolate_file(root: &Map, env: &BTreeMap<String, String>) -> Result<Map, ComposeError> {
    let mut out = Map::new();
    for (key, value) in root {
        let mut path = vec![key.clone()];
        out.insert(key.clone(), walk(value, &mut path, env)?);
    }
    Ok(out)
}

fn walk(value: &Value, path: &mut Vec<String>, env: &BTreeMap<String, String>) -> Result<Value, ComposeError> {
    match value {
        Value::String(text) => {
            let substituted = substitute(text, env).map_err(|e| {
                let detail = match e {
                    TemplateError::Malformed => text.clone(),
                    TemplateError::Required { name, message } => {
                        format!("required variable {name} is missing a value: {message}")
                    }
                };
                ComposeError::Interpolation {
                    path: path.join("."),
                    detail,
                }
            })?;
            match cast_for(path) {
                Some(c) => cast(&substituted, c).map_err(|reason| ComposeError::Cast {
                    path: path.join("."),
                    reason,
                }),
                None => Ok(Value::String(substituted)),
            }
        }
        Value::Seq(items) => {
            path.push("[]".to_string());
            let out = items
                .iter()
                .map(|item| walk(item, path, env))
                .collect::<Result<Vec<_>, _>>();
            path.pop();
            Ok(Value::Seq(out?))
        }
        Value::Map(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                path.push(key.clone());
                let v = walk(item, path, env);
                path.pop();
                out.insert(key.clone(), v?);
            }
            Ok(Value::Map(out))
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("SET", "value"), ("EMPTY", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_substitution_form() {
        let e = env();
        assert_eq!(substitute("$SET/${SET}", &e).unwrap(), "value/value");
        assert_eq!(substitute("${UNSET}", &e).unwrap(), "");
        assert_eq!(
            substitute("${UNSET:-d} ${EMPTY:-d} ${SET:-d}", &e).unwrap(),
            "d d value"
        );
        assert_eq!(substitute("${UNSET-d} ${EMPTY-d}", &e).unwrap(), "d ");
        assert_eq!(substitute("$$SET $${SET}", &e).unwrap(), "$SET ${SET}");
        assert_eq!(substitute("${X:-/a:-b}", &e).unwrap(), "/a:-b");
        assert_eq!(substitute("${EMPTY?e}", &e).unwrap(), "");
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        let e = env();
        let err = TemplateError::Required {
            name: "EMPTY".into(),
            message: "must be set".into(),
        };
        assert_eq!(substitute("${EMPTY:?must be set}", &e), Err(err));
        assert!(matches!(
            substitute("${UNSET?x}", &e),
            Err(TemplateError::Required { .. })
        ));
    }

    #[test]
    fn malformed_templates_are_refused() {
        let e = env();
        for bad in ["${SET:+x}", "${ SET}", "${SET!}", "$", "a $1", "${SET", "${}"] {
            assert_eq!(substitute(bad, &e), Err(TemplateError::Malformed), "{bad}");
        }
    }

    #[test]
    fn casts_apply_only_on_their_paths() {
        let e: BTreeMap<String, String> = [("N".to_string(), "3".to_string())].into();
        let file =
            crate::value::parse_yaml("services:\n  web:\n    image: \"${N}\"\n    deploy:\n      replicas: \"${N}\"\n")
                .unwrap();
        let out = interpolate_file(file.as_map().unwrap(), &e).unwrap();
        let web = out["services"].as_map().unwrap()["web"].as_map().unwrap();
        assert_eq!(web["image"], Value::String("3".into()));
        assert_eq!(web["deploy"].as_map().unwrap()["replicas"], Value::Int(3));
    }

    #[test]
    fn a_failed_cast_names_the_path() {
        let file = crate::value::parse_yaml("services:\n  web:\n    deploy:\n      replicas: two\n").unwrap();
        let err = interpolate_file(file.as_map().unwrap(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "error while interpolating services.web.deploy.replicas: failed to cast to expected type: \
             strconv.Atoi: parsing \"two\": invalid syntax"
        );
    }
}
