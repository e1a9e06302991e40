//! Merging several `-c` files, by docker's rules (`loader/merge.go`): later files override,
//! maps merge per key, plain lists append, and a few lists merge by a key.

use crate::value::Map;
use crate::value::Value;

/// Merges normalised files in order.
pub fn merge_files(files: Vec<Map>) -> Map {
    let mut files = files.into_iter();
    let mut base = files.next().unwrap_or_default();
    for over in files {
        for (section, value) in over {
            match (section.as_str(), base.remove(&section), value) {
                ("services", Some(Value::Map(mut services)), Value::Map(overrides)) => {
                    for (name, service) in overrides {
                        let merged = match (services.remove(&name), service) {
                            (Some(Value::Map(b)), Value::Map(o)) => Value::Map(merge_service(b, o)),
                            (_, o) => o,
                        };
                        services.insert(name, merged);
                    }
                    base.insert(section, Value::Map(services));
                }
                (_, Some(Value::Map(mut entries)), Value::Map(overrides)) if !section.starts_with("x-") => {
                    entries.extend(overrides);
                    base.insert(section, Value::Map(entries));
                }
                (_, _, value) => {
                    base.insert(section, value);
                }
            }
        }
    }
    base
}

/// The key a list item merges by, for the lists docker merges by key.
fn merge_key(list: &str) -> Option<&'static str> {
    match list {
        "ports" => Some("published"),
        "volumes" => Some("target"),
        "secrets" | "configs" => Some("source"),
        _ => None,
    }
}

fn merge_service(mut base: Map, over: Map) -> Map {
    for (key, value) in over {
        let merged = match (key.as_str(), base.remove(&key), value) {
            ("command" | "entrypoint" | "healthcheck", _, v) => v,
            ("logging", Some(Value::Map(b)), Value::Map(o)) => {
                let driver = |m: &Map| m.get("driver").cloned();
                if driver(&o).is_some() && driver(&b) != driver(&o) {
                    Value::Map(o)
                } else {
                    merge_value(Value::Map(b), Value::Map(o))
                }
            }
            (list, Some(Value::Seq(b)), Value::Seq(o)) if merge_key(list).is_some() => {
                let by = merge_key(list).unwrap_or_default();
                Value::Seq(merge_by(b, o, by))
            }
            ("networks" | "ulimits", Some(Value::Map(mut b)), Value::Map(o)) => {
                b.extend(o);
                Value::Map(b)
            }
            (_, Some(b), o) => merge_value(b, o),
            (_, None, o) => o,
        };
        base.insert(key, merged);
    }
    base
}

fn merge_by(base: Vec<Value>, over: Vec<Value>, key: &str) -> Vec<Value> {
    let id = |v: &Value| v.as_map().and_then(|m| m.get(key)).cloned();
    let mut out: Vec<Value> = Vec::new();
    for item in base.into_iter().chain(over) {
        let item_id = id(&item);
        match out
            .iter_mut()
            .find(|existing| item_id.is_some() && id(existing) == item_id)
        {
            Some(existing) => *existing = item,
            None => out.push(item),
        }
    }
    out
}

/// mergo with override and appended slices: maps recurse, lists append, scalars override
/// unless the override is an empty string.
fn merge_value(base: Value, over: Value) -> Value {
    match (base, over) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(existing) => merge_value(existing, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Map(b)
        }
        (Value::Seq(mut b), Value::Seq(o)) => {
            b.extend(o);
            Value::Seq(b)
        }
        (b, Value::String(s)) if s.is_empty() => b,
        (_, o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::parse_yaml;

    fn map(y: &str) -> Map {
        parse_yaml(y).unwrap().as_map().unwrap().clone()
    }

    #[test]
    fn overrides_merge_by_docker_rules() {
        let base = map(
            "services:\n  web:\n    image: a\n    command: [x, y]\n    environment: {A: '1', B: '2'}\n    \
             ports: [{target: 80, published: 8080}, {target: 81, published: 8081}]\n    deploy: {replicas: 3, labels: {a: b}}\n",
        );
        let over = map(
            "services:\n  web:\n    image: b\n    command: [z]\n    environment: {B: '3'}\n    \
             ports: [{target: 90, published: 8080}]\n    deploy: {replicas: 0}\n  db:\n    image: pg\n",
        );
        let merged = merge_files(vec![base, over]);
        let services = merged["services"].as_map().unwrap();
        let web = services["web"].as_map().unwrap();
        assert_eq!(web["image"], Value::String("b".into()));
        assert_eq!(web["command"], map("a: [z]")["a"]);
        assert_eq!(web["environment"], map("a: {A: '1', B: '3'}")["a"]);
        assert_eq!(
            web["ports"],
            map("a: [{target: 90, published: 8080}, {target: 81, published: 8081}]")["a"]
        );
        assert_eq!(web["deploy"], map("a: {replicas: 0, labels: {a: b}}")["a"]);
        assert!(services.contains_key("db"));
    }
}
