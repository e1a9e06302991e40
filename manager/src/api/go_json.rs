//! Request bodies read the way dockerd reads them, with Go's `encoding/json`: a key names a
//! struct field exactly or, failing that, case-insensitively (`"replicated"` is `Replicated`);
//! a key that names no field is skipped rather than refused, so clients that spell fields
//! differently or send newer fields keep working; `null` leaves a value at its zero value
//! (`["a", null]` is `["a", ""]`); and when two keys name one field, the later one wins (the
//! later value replaces the earlier one, where Go would merge two objects).
//!
//! This is one layer between the JSON text and any `Deserialize` type, so every request type
//! gets the same rules without a per-type attribute. The skipped keys are reported back so the
//! API can warn about them instead of dropping them silently.

use std::cell::RefCell;
use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::DeserializeSeed;
use serde::de::Deserializer;
use serde::de::IntoDeserializer;
use serde::de::MapAccess;
use serde::de::SeqAccess;
use serde::de::Visitor;
use serde_json::Number;
use serde_json::Value;

/// A decoded body and the keys that named no field, as paths like `TaskTemplate.Foo`.
#[derive(Debug)]
pub struct GoDecoded<T> {
    pub value: T,
    pub ignored: Vec<String>,
}

/// Why a body could not be decoded: malformed JSON, or a value of the wrong shape at `path`.
#[derive(Debug)]
pub enum GoDecodeError {
    Syntax(serde_json::Error),
    Value { path: String, source: serde_json::Error },
}

/// Decodes `body` into `T` with Go's rules (see the module documentation).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<GoDecoded<T>, GoDecodeError> {
    let json: Json = serde_json::from_slice(body).map_err(GoDecodeError::Syntax)?;
    let ignored = RefCell::new(Vec::new());
    let value = serde_path_to_error::deserialize(GoValue {
        json,
        path: String::new(),
        ignored: &ignored,
    })
    .map_err(|e| {
        let path = e.path().to_string();
        GoDecodeError::Value {
            path: if path == "." { String::new() } else { path },
            source: e.into_inner(),
        }
    })?;
    Ok(GoDecoded {
        value,
        ignored: ignored.into_inner(),
    })
}

/// Whether a key names a field the way Go's decoder folds case: ASCII case, plus the two
/// non-ASCII letters that fold to ASCII ones (the long s and the Kelvin sign).
fn same_name_folded(field: &str, key: &str) -> bool {
    let fold = |c: char| match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    field.chars().map(fold).eq(key.chars().map(fold))
}

/// The field a key names: an exact match first, then a case-insensitive one.
fn field_for<'f>(fields: &[&'f str], key: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| same_name_folded(f, key)))
        .copied()
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// JSON as written, object keys in their order and duplicates kept, so that the later of two
/// keys for one field wins, as in Go.
enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn into_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n),
            Json::String(s) => Value::String(s),
            Json::Array(items) => Value::Array(items.into_iter().map(Json::into_value).collect()),
            Json::Object(entries) => Value::Object(entries.into_iter().map(|(k, v)| (k, v.into_value())).collect()),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Json, E> {
        Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// A value being decoded, where it sits in the body, and the list of skipped keys.
struct GoValue<'a> {
    json: Json,
    path: String,
    ignored: &'a RefCell<Vec<String>>,
}

/// Leaves and shapes the Go rules do not touch go to `serde_json`'s own deserializer, so
/// errors and conversions stay exactly as before.
macro_rules! forward_to_value {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
                self.json.into_value().$method(visitor)
            }
        )*
    };
}

/// Like [`forward_to_value`], except that `null` gives the type's zero value, as Go's decoder
/// leaves a value untouched (at zero) for `null`: `["a", null]` is `["a", ""]`.
macro_rules! zero_for_null {
    ($($method:ident => $zero:expr;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
                match self.json {
                    Json::Null => $zero(visitor),
                    json => json.into_value().$method(visitor),
                }
            }
        )*
    };
}

impl GoValue<'_> {
    /// An empty object, for a struct or map that was `null`.
    fn empty_map(&self) -> GoEntries<'_> {
        GoEntries {
            entries: Vec::new().into_iter(),
            pending: None,
            ignored: self.ignored,
        }
    }
}

impl<'de> Deserializer<'de> for GoValue<'_> {
    type Error = serde_json::Error;

    forward_to_value! {
        deserialize_any deserialize_char deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    zero_for_null! {
        deserialize_bool => |v: V| v.visit_bool(false);
        deserialize_i8 => |v: V| v.visit_i64(0);
        deserialize_i16 => |v: V| v.visit_i64(0);
        deserialize_i32 => |v: V| v.visit_i64(0);
        deserialize_i64 => |v: V| v.visit_i64(0);
        deserialize_i128 => |v: V| v.visit_i64(0);
        deserialize_u8 => |v: V| v.visit_u64(0);
        deserialize_u16 => |v: V| v.visit_u64(0);
        deserialize_u32 => |v: V| v.visit_u64(0);
        deserialize_u64 => |v: V| v.visit_u64(0);
        deserialize_u128 => |v: V| v.visit_u64(0);
        deserialize_f32 => |v: V| v.visit_f64(0.0);
        deserialize_f64 => |v: V| v.visit_f64(0.0);
        deserialize_str => |v: V| v.visit_str("");
        deserialize_string => |v: V| v.visit_str("");
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.json {
            Json::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        self.json.into_value().deserialize_unit_struct(name, visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.json {
            Json::Array(items) => {
                let base = self.path.clone();
                let elements = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (format!("{base}[{i}]"), item))
                    .collect::<Vec<_>>()
                    .into_iter();
                visitor.visit_seq(GoElements {
                    elements,
                    ignored: self.ignored,
                })
            }
            Json::Null => visitor.visit_seq(GoElements {
                elements: Vec::new().into_iter(),
                ignored: self.ignored,
            }),
            other => other.into_value().deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.json.into_value().deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.json.into_value().deserialize_tuple_struct(name, len, visitor)
    }

    /// A map's keys are data, not field names: they are kept as written.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.json {
            Json::Object(entries) => {
                let base = self.path.clone();
                let entries = entries
                    .into_iter()
                    .map(|(k, v)| (child_path(&base, &k), k, v))
                    .collect::<Vec<_>>()
                    .into_iter();
                visitor.visit_map(GoEntries {
                    entries,
                    pending: None,
                    ignored: self.ignored,
                })
            }
            Json::Null => visitor.visit_map(self.empty_map()),
            other => other.into_value().deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let entries = match self.json {
            Json::Object(entries) => entries,
            Json::Null => return visitor.visit_map(self.empty_map()),
            other => return other.into_value().deserialize_struct(name, fields, visitor),
        };
        let mut named: Vec<(String, String, Json)> = Vec::with_capacity(entries.len());
        for (key, json) in entries {
            let Some(field) = field_for(fields, &key) else {
                self.ignored.borrow_mut().push(child_path(&self.path, &key));
                continue;
            };
            // `null` leaves the field as it is (Go's rule for values), also after an earlier key.
            if matches!(json, Json::Null) {
                continue;
            }
            named.retain(|(_, f, _)| f != field);
            named.push((child_path(&self.path, field), field.to_string(), json));
        }
        visitor.visit_map(GoEntries {
            entries: named.into_iter(),
            pending: None,
            ignored: self.ignored,
        })
    }

    /// Enums in the model are Go strings, whose values (unlike field names) match exactly.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.json.into_value().deserialize_enum(name, variants, visitor)
    }
}

/// An object's entries as (path, key, value).
struct GoEntries<'a> {
    entries: std::vec::IntoIter<(String, String, Json)>,
    pending: Option<(String, Json)>,
    ignored: &'a RefCell<Vec<String>>,
}

impl<'de> MapAccess<'de> for GoEntries<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some((path, key, json)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((path, json));
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let (path, json) = self
            .pending
            .take()
            .ok_or_else(|| serde::de::Error::custom("a map value was asked for before its key"))?;
        seed.deserialize(GoValue {
            json,
            path,
            ignored: self.ignored,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An array's elements as (path, value).
struct GoElements<'a> {
    elements: std::vec::IntoIter<(String, Json)>,
    ignored: &'a RefCell<Vec<String>>,
}

impl<'de> SeqAccess<'de> for GoElements<'_> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        let Some((path, json)) = self.elements.next() else {
            return Ok(None);
        };
        let value = GoValue {
            json,
            path,
            ignored: self.ignored,
        };
        seed.deserialize(value).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.elements.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
    struct Outer {
        name: String,
        #[serde(rename = "ID")]
        id: String,
        mode: Option<Mode>,
        labels: BTreeMap<String, String>,
        items: Vec<Inner>,
        count: u64,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
    struct Mode {
        replicated: Option<Inner>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
    struct Inner {
        replicas: u64,
    }

    fn go<T: DeserializeOwned>(body: &str) -> GoDecoded<T> {
        match decode(body.as_bytes()) {
            Ok(d) => d,
            Err(e) => panic!("{body}: {e:?}"),
        }
    }

    #[test]
    fn field_names_match_in_any_case() {
        let d: GoDecoded<Outer> = go(r#"{"name":"web","id":"x","mode":{"replicated":{"REPLICAS":2}},"Count":3}"#);
        assert_eq!(d.value.name, "web");
        assert_eq!(d.value.id, "x");
        assert_eq!(
            d.value.mode,
            Some(Mode {
                replicated: Some(Inner { replicas: 2 })
            })
        );
        assert_eq!(d.value.count, 3);
        assert!(d.ignored.is_empty(), "{:?}", d.ignored);
    }

    #[test]
    fn unknown_keys_are_skipped_and_reported_with_their_path() {
        let d: GoDecoded<Outer> = go(r#"{"Name":"web","Foo":1,"Items":[{"Replicas":1},{"Bar":{"x":1}}]}"#);
        assert_eq!(d.value.name, "web");
        assert_eq!(d.value.items, vec![Inner { replicas: 1 }, Inner::default()]);
        assert_eq!(d.ignored, vec!["Foo".to_string(), "Items[1].Bar".to_string()]);
    }

    #[test]
    fn map_keys_are_data_and_keep_their_case() {
        let d: GoDecoded<Outer> = go(r#"{"labels":{"Name":"a","name":"b"}}"#);
        assert_eq!(d.value.labels.get("Name").map(String::as_str), Some("a"));
        assert_eq!(d.value.labels.get("name").map(String::as_str), Some("b"));
        assert!(d.ignored.is_empty());
    }

    #[test]
    fn the_later_of_two_keys_for_one_field_wins() {
        let d: GoDecoded<Outer> = go(r#"{"name":"a","Name":"b"}"#);
        assert_eq!(d.value.name, "b");
        let d: GoDecoded<Outer> = go(r#"{"Name":"a","NAME":"b"}"#);
        assert_eq!(d.value.name, "b");
    }

    #[test]
    fn null_leaves_a_field_at_its_zero_value() {
        let d: GoDecoded<Outer> = go(r#"{"Name":null,"Labels":null,"Items":null,"Mode":null}"#);
        assert_eq!(d.value, Outer::default());
    }

    #[test]
    fn null_items_and_map_values_are_zero_values() {
        let d: GoDecoded<Outer> =
            go(r#"{"Labels":{"a":null},"Items":[null,{"Replicas":null}],"Name":"x","name":null}"#);
        assert_eq!(d.value.labels.get("a").map(String::as_str), Some(""));
        assert_eq!(d.value.items, vec![Inner::default(), Inner::default()]);
        assert_eq!(d.value.name, "x", "a later null does not erase a value");
    }

    #[test]
    fn go_folds_the_long_s_and_the_kelvin_sign() {
        assert!(same_name_folded("Labels", "label\u{17f}"));
        assert!(same_name_folded("Kind", "\u{212a}ind"));
        assert!(!same_name_folded("Name", "Names"));
    }

    #[test]
    fn a_wrong_type_is_an_error_at_the_canonical_path() {
        let Err(GoDecodeError::Value { path, .. }) = decode::<Outer>(br#"{"mode":{"replicated":{"replicas":"two"}}}"#)
        else {
            panic!("a string for a number must be refused")
        };
        assert_eq!(path, "Mode.Replicated.Replicas");
    }

    #[test]
    fn malformed_json_is_a_syntax_error() {
        assert!(matches!(decode::<Outer>(b"{nope"), Err(GoDecodeError::Syntax(_))));
    }
}
