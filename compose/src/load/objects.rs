//! The top-level networks, volumes, secrets and configs a stack declares.

use crate::error::ComposeError;
use crate::schema::Obj;
use crate::schema::join;
use crate::schema::labels_value;
use crate::schema::list_or_dict;
use crate::schema::must_be;
use crate::schema::object_list;
use crate::syntax::clean_path;
use crate::units::parse_ram_bytes;
use crate::value::Map;
use crate::value::Value;

use super::Context;

impl Context<'_> {
    /// `external: true` or the deprecated `external: {name}`, checked against `name:`.
    pub(super) fn external(
        &mut self,
        kind: &str,
        key: &str,
        o: &mut Obj,
        out: &mut Map,
        name_since: u32,
    ) -> Result<bool, ComposeError> {
        let Some(v) = o.get("external", 0) else {
            return Ok(false);
        };
        let external_name = match v {
            Value::Bool(false) => return Ok(false),
            Value::Bool(true) => None,
            Value::Map(_) => {
                let mut e = Obj::new(&o.path("external"), v, self.version, false)?;
                let n = e.string("name", 0)?;
                e.finish()?;
                n
            }
            _ => return Err(must_be(&o.path("external"), &["boolean", "object"])),
        };
        let name = out.get("name").and_then(Value::as_str).map(str::to_string);
        let final_name = match (external_name, name) {
            (Some(_), Some(_)) => {
                return Err(ComposeError::Invalid(format!(
                    "{kind} {key}: {kind}.external.name and {kind}.name conflict; only use {kind}.name"
                )));
            }
            (Some(ext), None) => {
                if self.v(name_since) {
                    self.warnings.push(format!(
                        "{kind} {key}: {kind}.external.name is deprecated in favor of {kind}.name"
                    ));
                }
                ext
            }
            (None, Some(n)) => n,
            (None, None) => key.to_string(),
        };
        out.insert("name".to_string(), Value::String(final_name));
        out.insert("external".to_string(), Value::Bool(true));
        Ok(true)
    }

    pub(super) fn network(&mut self, path: &str, key: &str, value: &Value) -> Result<Value, ComposeError> {
        if value.is_null() {
            return Ok(Value::Map(Map::new()));
        }
        let mut o = Obj::new(path, value, self.version, self.v(7)).map_err(|_| must_be(path, &["object", "null"]))?;
        let mut out = Map::new();
        if let Some(s) = o.string("name", 5)? {
            out.insert("name".to_string(), Value::String(s));
        }
        if let Some(s) = o.string("driver", 0)? {
            out.insert("driver".to_string(), Value::String(s));
        }
        if let Some(v) = o.get("driver_opts", 0) {
            out.insert("driver_opts".to_string(), driver_opts(&o.path("driver_opts"), v)?);
        }
        if let Some(v) = o.get("ipam", 0) {
            let mut i = Obj::new(&o.path("ipam"), v, self.version, false)?;
            let mut ipam = Map::new();
            if let Some(s) = i.string("driver", 0)? {
                ipam.insert("driver".to_string(), Value::String(s));
            }
            if let Some(c) = i.get("config", 0) {
                let list = object_list(&i.path("config"), c, self.version, |s| {
                    let mut m = Map::new();
                    if let Some(subnet) = s.string("subnet", 0)? {
                        m.insert("subnet".to_string(), Value::String(subnet));
                    }
                    Ok(m)
                })?;
                ipam.insert("config".to_string(), list);
            }
            i.finish()?;
            out.insert("ipam".to_string(), Value::Map(ipam));
        }
        for (flag, since) in [("internal", 0), ("attachable", 2)] {
            if let Some(b) = o.boolean(flag, since)? {
                out.insert(flag.to_string(), Value::Bool(b));
            }
        }
        if let Some(v) = o.get("labels", 0) {
            out.insert("labels".to_string(), labels_value(list_or_dict(&o.path("labels"), v)?));
        }
        if self.external("network", key, &mut o, &mut out, 5)? {
            for conflicting in ["driver", "driver_opts", "ipam", "labels"] {
                if out.contains_key(conflicting) {
                    return Err(ComposeError::Invalid(format!(
                        "conflicting parameters \"external\" and \"{conflicting}\" specified for network \"{key}\""
                    )));
                }
            }
        }
        o.extensions_into(&mut out);
        o.finish()?;
        Ok(Value::Map(out))
    }

    pub(super) fn volume(&mut self, path: &str, key: &str, value: &Value) -> Result<Value, ComposeError> {
        if value.is_null() {
            return Ok(Value::Map(Map::new()));
        }
        let mut o = Obj::new(path, value, self.version, self.v(7)).map_err(|_| must_be(path, &["object", "null"]))?;
        let mut out = Map::new();
        if let Some(s) = o.string("name", 4)? {
            out.insert("name".to_string(), Value::String(s));
        }
        if let Some(s) = o.string("driver", 0)? {
            out.insert("driver".to_string(), Value::String(s));
        }
        if let Some(v) = o.get("driver_opts", 0) {
            out.insert("driver_opts".to_string(), driver_opts(&o.path("driver_opts"), v)?);
        }
        if let Some(v) = o.get("labels", 0) {
            out.insert("labels".to_string(), labels_value(list_or_dict(&o.path("labels"), v)?));
        }
        if let Some(v) = o.get("x-cluster-spec", 10) {
            out.insert(
                "x-cluster-spec".to_string(),
                cluster_spec(&o.path("x-cluster-spec"), v)?,
            );
        }
        if self.external("volume", key, &mut o, &mut out, 4)? {
            for conflicting in ["driver", "driver_opts", "labels"] {
                if out.contains_key(conflicting) {
                    return Err(ComposeError::Invalid(format!(
                        "conflicting parameters \"external\" and \"{conflicting}\" specified for volume \"{key}\""
                    )));
                }
            }
        }
        o.extensions_into(&mut out);
        o.finish()?;
        Ok(Value::Map(out))
    }

    /// A top-level secret or config.
    pub(super) fn file_object(
        &mut self,
        path: &str,
        key: &str,
        value: &Value,
        secret: bool,
    ) -> Result<Value, ComposeError> {
        let kind = if secret { "secret" } else { "config" };
        let mut o = Obj::new(path, value, self.version, self.v(7))?;
        let mut out = Map::new();
        if let Some(s) = o.string("name", 5)? {
            out.insert("name".to_string(), Value::String(s));
        }
        let file = o.string("file", 0)?;
        if let Some(v) = o.get("labels", 0) {
            out.insert("labels".to_string(), labels_value(list_or_dict(&o.path("labels"), v)?));
        }
        if let Some(s) = o.string("template_driver", 8)? {
            out.insert("template_driver".to_string(), Value::String(s));
        }
        if secret {
            if let Some(s) = o.string("driver", 8)? {
                out.insert("driver".to_string(), Value::String(s));
            }
            if let Some(v) = o.get("driver_opts", 8) {
                out.insert("driver_opts".to_string(), driver_opts(&o.path("driver_opts"), v)?);
            }
        }
        let external = self.external(kind, key, &mut o, &mut out, 5)?;
        if secret && file.is_some() && out.contains_key("driver") {
            return Err(ComposeError::Invalid(format!(
                "secret {key}: secret.driver and secret.file conflict; only use secret.driver"
            )));
        }
        if !external && !out.contains_key("driver") {
            let f = file.unwrap_or_default();
            out.insert("file".to_string(), Value::String(clean_path(&self.absolute(&f))));
        }
        o.extensions_into(&mut out);
        o.finish()?;
        Ok(Value::Map(out))
    }
}

/// A cluster volume's spec: sizes in bytes, topology segments as maps; the rest as written.
pub(super) fn cluster_spec(path: &str, value: &Value) -> Result<Value, ComposeError> {
    let Value::Map(spec) = value else {
        return Err(must_be(path, &["object"]));
    };
    let mut out = spec.clone();
    if let Some(Value::Map(range)) = out.get_mut("capacity_range") {
        for key in ["required_bytes", "limit_bytes"] {
            if let Some(Value::String(size)) = range.get(key) {
                let bytes = parse_ram_bytes(size)
                    .map_err(|e| ComposeError::Invalid(format!("{path}.capacity_range.{key}: {e}")))?;
                range.insert(key.to_string(), Value::String(bytes.to_string()));
            }
        }
    }
    if let Some(Value::Map(requirements)) = out.get_mut("accessibility_requirements") {
        for key in ["requisite", "preferred"] {
            let Some(Value::Seq(topologies)) = requirements.get_mut(key) else {
                continue;
            };
            for (i, topology) in topologies.iter_mut().enumerate() {
                if let Value::Map(t) = topology
                    && let Some(segments) = t.get("segments")
                {
                    let p = format!("{path}.accessibility_requirements.{key}.{i}.segments");
                    t.insert("segments".to_string(), labels_value(list_or_dict(&p, segments)?));
                }
            }
        }
    }
    Ok(Value::Map(out))
}

pub(super) fn driver_opts(path: &str, value: &Value) -> Result<Value, ComposeError> {
    let Value::Map(options) = value else {
        return Err(must_be(path, &["object"]));
    };
    let mut out = Map::new();
    for (k, v) in options {
        match v {
            Value::String(_) | Value::Int(_) | Value::Float(_) => {
                out.insert(k.clone(), Value::String(v.scalar_text().unwrap_or_default()));
            }
            _ => return Err(must_be(&join(path, k), &["string", "number"])),
        }
    }
    Ok(Value::Map(out))
}
