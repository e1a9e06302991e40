//! The schema side of loading: a mapping walked key by key with the schema version that
//! introduced each key, and docker's wording for type and property errors.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::error::ComposeError;
use crate::units::format_duration;
use crate::units::parse_duration;
use crate::value::Map;
use crate::value::Value;

/// A schema version `3.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaVersion(pub u32);

impl SchemaVersion {
    pub(crate) const LATEST: SchemaVersion = SchemaVersion(13);

    pub(crate) fn at_least(self, minor: u32) -> bool {
        self.0 >= minor
    }
}

/// Human-readable type names as docker's validator prints them.
pub(crate) fn type_words(types: &[&str]) -> String {
    let words: Vec<&str> = types
        .iter()
        .map(|t| match *t {
            "object" => "mapping",
            "array" => "list",
            other => other,
        })
        .collect();
    match words.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

pub(crate) fn must_be(path: &str, types: &[&str]) -> ComposeError {
    ComposeError::schema(path, format!("must be a {}", type_words(types)))
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping being validated: keys are taken one by one, with the schema version that
/// introduced them; whatever is left over is an additional property.
pub(crate) struct Obj<'a> {
    path: String,
    map: &'a Map,
    taken: BTreeSet<&'a str>,
    version: SchemaVersion,
    /// Whether `x-*` keys are allowed here.
    extensions: bool,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(
        path: &str,
        value: &'a Value,
        version: SchemaVersion,
        extensions: bool,
    ) -> Result<Self, ComposeError> {
        match value {
            Value::Map(map) => Ok(Obj {
                path: path.to_string(),
                map,
                taken: BTreeSet::new(),
                version,
                extensions,
            }),
            _ => Err(must_be(path, &["object"])),
        }
    }

    pub(crate) fn of_map(path: &str, map: &'a Map, version: SchemaVersion, extensions: bool) -> Self {
        Obj {
            path: path.to_string(),
            map,
            taken: BTreeSet::new(),
            version,
            extensions,
        }
    }

    pub(crate) fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key` if the schema version knows it.
    pub(crate) fn get(&mut self, key: &'a str, since: u32) -> Option<&'a Value> {
        if !self.version.at_least(since) {
            return None;
        }
        let (k, v) = self.map.get_key_value(key)?;
        self.taken.insert(k.as_str());
        Some(v)
    }

    pub(crate) fn string(&mut self, key: &'a str, since: u32) -> Result<Option<String>, ComposeError> {
        match self.get(key, since) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(must_be(&self.path(key), &["string"])),
        }
    }

    pub(crate) fn boolean(&mut self, key: &'a str, since: u32) -> Result<Option<bool>, ComposeError> {
        match self.get(key, since) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(must_be(&self.path(key), &["boolean"])),
        }
    }

    pub(crate) fn integer(&mut self, key: &'a str, since: u32) -> Result<Option<i64>, ComposeError> {
        match self.get(key, since) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(v @ Value::Float(_)) if v.as_i64().is_some() => Ok(v.as_i64()),
            Some(_) => Err(must_be(&self.path(key), &["integer"])),
        }
    }

    pub(crate) fn number(&mut self, key: &'a str, since: u32) -> Result<Option<Value>, ComposeError> {
        match self.get(key, since) {
            None => Ok(None),
            Some(v @ (Value::Int(_) | Value::Float(_))) => Ok(Some(v.clone())),
            Some(_) => Err(must_be(&self.path(key), &["number"])),
        }
    }

    pub(crate) fn duration(&mut self, key: &'a str, since: u32) -> Result<Option<String>, ComposeError> {
        let Some(text) = self.string(key, since)? else {
            return Ok(None);
        };
        match parse_duration(&text) {
            Ok(n) => Ok(Some(format_duration(n))),
            Err(_) => Err(ComposeError::schema(
                &self.path(key),
                "Does not match format 'duration'",
            )),
        }
    }

    /// Keys not taken: the first (sorted) is reported, as docker reports one error.
    pub(crate) fn finish(self) -> Result<(), ComposeError> {
        for key in self.map.keys() {
            if self.taken.contains(key.as_str()) || (self.extensions && key.starts_with("x-")) {
                continue;
            }
            return Err(ComposeError::schema(
                &self.path,
                format!("Additional property {key} is not allowed"),
            ));
        }
        Ok(())
    }

    /// The `x-*` keys, kept in the output as docker keeps them.
    pub(crate) fn extensions_into(&self, out: &mut Map) {
        if self.extensions {
            for (k, v) in self.map.iter().filter(|(k, _)| k.starts_with("x-")) {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

/// An array of objects (`preferences`, `ipam.config`, `generic_resources`): each item is
/// checked to be an object at `path.N`, `fill` reads its keys, and any other key is refused.
pub(crate) fn object_list<'a>(
    path: &str,
    value: &'a Value,
    version: SchemaVersion,
    mut fill: impl FnMut(&mut Obj<'a>) -> Result<Map, ComposeError>,
) -> Result<Value, ComposeError> {
    let Value::Seq(items) = value else {
        return Err(must_be(path, &["array"]));
    };
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut o = Obj::new(&join(path, &i.to_string()), item, version, false)?;
        let fields = fill(&mut o)?;
        o.finish()?;
        list.push(Value::Map(fields));
    }
    Ok(Value::Seq(list))
}

pub(crate) fn string_list(path: &str, value: &Value) -> Result<Vec<String>, ComposeError> {
    let Value::Seq(items) = value else {
        return Err(must_be(path, &["array"]));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            _ => Err(must_be(&join(path, &i.to_string()), &["string"])),
        })
        .collect()
}

pub(crate) fn unique_string_list(path: &str, value: &Value) -> Result<Vec<String>, ComposeError> {
    if let Value::Seq(items) = value {
        check_unique(path, items)?;
    }
    string_list(path, value)
}

/// The schema's `uniqueItems`, with docker's message naming the first two equal items.
pub(crate) fn check_unique(path: &str, items: &[Value]) -> Result<(), ComposeError> {
    for (j, item) in items.iter().enumerate() {
        if let Some(i) = items[..j].iter().position(|earlier| earlier == item) {
            return Err(ComposeError::schema(
                path,
                format!("array items[{i},{j}] must be unique"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn strings_value(list: Vec<String>) -> Value {
    Value::Seq(list.into_iter().map(Value::String).collect())
}

/// `string_or_list`: a single string becomes a one-item list.
pub(crate) fn string_or_list(path: &str, value: &Value, unique: bool) -> Result<Vec<String>, ComposeError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Seq(_) if unique => unique_string_list(path, value),
        Value::Seq(_) => string_list(path, value),
        _ => Err(must_be(path, &["string", "array"])),
    }
}

/// `list_or_dict`: `[K=V, K]` or `{K: V}`; values stringified, a bare key (or null) stays null.
pub(crate) fn list_or_dict(path: &str, value: &Value) -> Result<BTreeMap<String, Option<String>>, ComposeError> {
    let mut out = BTreeMap::new();
    match value {
        Value::Map(map) => {
            for (k, v) in map {
                let text = match v {
                    Value::Null => None,
                    Value::String(_) | Value::Int(_) | Value::Float(_) => v.scalar_text(),
                    _ => return Err(must_be(&join(path, k), &["string", "number", "null"])),
                };
                out.insert(k.clone(), text);
            }
        }
        Value::Seq(_) => {
            for item in unique_string_list(path, value)? {
                match item.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(item, None),
                };
            }
        }
        _ => return Err(must_be(path, &["object"])),
    }
    Ok(out)
}

pub(crate) fn labels_value(map: BTreeMap<String, Option<String>>) -> Value {
    Value::Map(
        map.into_iter()
            .map(|(k, v)| (k, Value::String(v.unwrap_or_default())))
            .collect(),
    )
}
