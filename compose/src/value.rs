//! A YAML document as plain data: the tree every later stage (interpolation, validation,
//! normalisation, conversion) works on.
//!
//! We keep our own tree rather than `serde_json::Value` because docker treats non-string keys
//! and YAML 1.2 scalars in specific ways that the tree must be able to tell apart.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;
use serde::de::MapAccess;
use serde::de::SeqAccess;
use serde::de::Visitor;

/// Map of a YAML mapping; sorted, as docker prints (Go maps marshal sorted).
pub type Map = BTreeMap<String, Value>;

/// One YAML node after anchors, aliases and merge keys are resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Value>),
    Map(Map),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A scalar as text, the way Go's `fmt` prints it (numbers and booleans stringified).
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::String(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(format_float(*f)),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// A float as text: integral values without a fraction (`2`, `1000000`), others as Rust
/// prints them (`3.14`).
pub fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Why a text is not a YAML document docker would read: the parser's own words, without its
/// advice about parser options (a compose file cannot set them).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.to_string().replace(", set DuplicateKeyPolicy in Options if acceptable", ""))]
pub struct YamlError(serde_saphyr::Error);

/// Parses one YAML document the way docker's yaml.v3 reads compose files: YAML 1.2 booleans,
/// legacy `0755` octal, merge keys, duplicate keys refused.
pub fn parse_yaml(text: &str) -> Result<Value, YamlError> {
    let options = serde_saphyr::options! {
        legacy_octal_numbers: true,
        strict_booleans: true,
        non_finite_float_policy: serde_saphyr::options::NonFiniteFloatPolicy::AsString,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(YamlError)
}

/// A mapping key: docker accepts only string keys.
enum Key {
    Text(String),
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key, E> {
                Ok(Key::Text(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key::Other(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key::Other(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key::Other(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key::Other(format_float(v)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Key, E> {
                Ok(Key::Other("null".to_string()))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Key, E> {
                Ok(Key::Other("null".to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Key::Other("a mapping".to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Key, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Key::Other("a list".to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// Marker text of the error a non-string key produces; the loader turns it into docker's words.
pub const NON_STRING_KEY: &str = "non-string key";

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64)))
            }
            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
                Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64)))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
                Ok(i64::try_from(v).map(Value::Int).unwrap_or(Value::Float(v as f64)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::String(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::String(v))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Value, E> {
                Ok(Value::String(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Value, D2::Error> {
                Value::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Text(k) => {
                            let v = map.next_value::<Value>()?;
                            out.insert(k, v);
                        }
                        Key::Other(k) => {
                            return Err(serde::de::Error::custom(format!("{NON_STRING_KEY} {k}")));
                        }
                    }
                }
                Ok(Value::Map(out))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(v) => s.serialize_str(v),
            Value::Seq(items) => items.serialize(s),
            Value::Map(m) => m.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_follow_yaml_1_2_with_legacy_octal() {
        let v = parse_yaml("a: 0440\nb: yes\nc: 3.8\nd: ~\ne: '12'\nf: true\n").unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m["a"], Value::Int(288));
        assert_eq!(m["b"], Value::String("yes".into()));
        assert_eq!(m["c"], Value::Float(3.8));
        assert_eq!(m["d"], Value::Null);
        assert_eq!(m["e"], Value::String("12".into()));
        assert_eq!(m["f"], Value::Bool(true));
    }

    #[test]
    fn merge_keys_are_resolved_and_local_keys_win() {
        let v = parse_yaml("x: &a {p: 1, q: 2}\ny:\n  <<: *a\n  q: 3\n").unwrap();
        let y = v.as_map().unwrap()["y"].as_map().unwrap().clone();
        assert_eq!(y["p"], Value::Int(1));
        assert_eq!(y["q"], Value::Int(3));
    }

    #[test]
    fn duplicate_and_non_string_keys_are_refused() {
        assert!(
            parse_yaml("a: 1\na: 2\n")
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
        assert!(
            parse_yaml("services:\n  123: a\n")
                .unwrap_err()
                .to_string()
                .contains(NON_STRING_KEY)
        );
    }
}
