//! A service's `deploy:` section: mode, replicas, update and rollback configs, resources,
//! restart policy, placement.

use crate::error::ComposeError;
use crate::schema::Obj;
use crate::schema::labels_value;
use crate::schema::list_or_dict;
use crate::schema::object_list;
use crate::schema::string_list;
use crate::schema::strings_value;
use crate::units::parse_ram_bytes;
use crate::value::Map;
use crate::value::Value;

use super::Context;

impl Context<'_> {
    pub(super) fn deploy(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut d = Obj::new(path, value, self.version, false)?;
        let mut out = Map::new();
        if let Some(s) = d.string("mode", 0)? {
            out.insert("mode".to_string(), Value::String(s));
        }
        if let Some(n) = d.integer("replicas", 0)? {
            out.insert("replicas".to_string(), Value::Int(n));
        }
        if let Some(v) = d.get("labels", 0) {
            out.insert("labels".to_string(), labels_value(list_or_dict(&d.path("labels"), v)?));
        }
        for (key, since) in [("update_config", 0), ("rollback_config", 7)] {
            if let Some(v) = d.get(key, since) {
                out.insert(key.to_string(), self.update_config(&d.path(key), v)?);
            }
        }
        if let Some(v) = d.get("resources", 0) {
            out.insert("resources".to_string(), self.resources(&d.path("resources"), v)?);
        }
        if let Some(v) = d.get("restart_policy", 0) {
            let mut r = Obj::new(&d.path("restart_policy"), v, self.version, false)?;
            let mut m = Map::new();
            if let Some(s) = r.string("condition", 0)? {
                m.insert("condition".to_string(), Value::String(s));
            }
            for key in ["delay", "window"] {
                if let Some(s) = r.duration(key, 0)? {
                    m.insert(key.to_string(), Value::String(s));
                }
            }
            if let Some(n) = r.integer("max_attempts", 0)? {
                m.insert("max_attempts".to_string(), Value::Int(n));
            }
            r.finish()?;
            out.insert("restart_policy".to_string(), Value::Map(m));
        }
        if let Some(v) = d.get("placement", 0) {
            let mut p = Obj::new(&d.path("placement"), v, self.version, false)?;
            let mut m = Map::new();
            if let Some(c) = p.get("constraints", 0) {
                m.insert(
                    "constraints".to_string(),
                    strings_value(string_list(&p.path("constraints"), c)?),
                );
            }
            if let Some(prefs) = p.get("preferences", 3) {
                let list = object_list(&p.path("preferences"), prefs, self.version, |o| {
                    let mut pref = Map::new();
                    if let Some(s) = o.string("spread", 3)? {
                        pref.insert("spread".to_string(), Value::String(s));
                    }
                    Ok(pref)
                })?;
                m.insert("preferences".to_string(), list);
            }
            if let Some(n) = p.integer("max_replicas_per_node", 8)? {
                m.insert("max_replicas_per_node".to_string(), Value::Int(n));
            }
            p.finish()?;
            out.insert("placement".to_string(), Value::Map(m));
        }
        if let Some(s) = d.string("endpoint_mode", 2)? {
            out.insert("endpoint_mode".to_string(), Value::String(s));
        }
        d.finish()?;
        if let Some(Value::Int(n)) = out.get("replicas")
            && *n < 0
        {
            return Err(ComposeError::Invalid(format!(
                "{path}.replicas: cannot parse 'Deploy.Replicas', {n} overflows uint"
            )));
        }
        Ok(Value::Map(out))
    }

    pub(super) fn update_config(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut u = Obj::new(path, value, self.version, false)?;
        let mut m = Map::new();
        if let Some(n) = u.integer("parallelism", 0)? {
            m.insert("parallelism".to_string(), Value::Int(n));
        }
        for key in ["delay", "monitor"] {
            if let Some(s) = u.duration(key, 0)? {
                m.insert(key.to_string(), Value::String(s));
            }
        }
        if let Some(s) = u.string("failure_action", 0)? {
            m.insert("failure_action".to_string(), Value::String(s));
        }
        if let Some(n) = u.number("max_failure_ratio", 0)? {
            m.insert("max_failure_ratio".to_string(), n);
        }
        if let Some(s) = u.string("order", 4)? {
            if s != "start-first" && s != "stop-first" {
                let p = u.path("order");
                return Err(ComposeError::schema(
                    &p,
                    format!("{p} must be one of the following: \"start-first\", \"stop-first\""),
                ));
            }
            m.insert("order".to_string(), Value::String(s));
        }
        u.finish()?;
        Ok(Value::Map(m))
    }

    pub(super) fn resources(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut r = Obj::new(path, value, self.version, false)?;
        let mut out = Map::new();
        for key in ["limits", "reservations"] {
            let Some(v) = r.get(key, 0) else { continue };
            let mut l = Obj::new(&r.path(key), v, self.version, false)?;
            let mut m = Map::new();
            if let Some(cpus) = l.string("cpus", 0)? {
                // docker parses the value only when it is not empty.
                (!cpus.is_empty())
                    .then(|| crate::units::parse_nano_cpus(&cpus))
                    .transpose()
                    .map_err(|e| ComposeError::Invalid(format!("{}: {e}", l.path("cpus"))))?;
                m.insert("cpus".to_string(), Value::String(cpus));
            }
            if let Some(memory) = l.string("memory", 0)? {
                let field = if key == "limits" { "Limits" } else { "Reservations" };
                let bytes = parse_ram_bytes(&memory).map_err(|e| {
                    ComposeError::Invalid(format!(
                        "decoding failed due to the following error(s):\n\nerror decoding 'Deploy.Resources.{field}.memory': {e}"
                    ))
                })?;
                m.insert("memory".to_string(), Value::String(bytes.to_string()));
            }
            if key == "limits" {
                if let Some(n) = l.integer("pids", 9)? {
                    m.insert("pids".to_string(), Value::Int(n));
                }
            } else if let Some(v) = l.get("generic_resources", 5) {
                m.insert(
                    "generic_resources".to_string(),
                    self.generic_resources(&l.path("generic_resources"), v)?,
                );
            }
            l.finish()?;
            out.insert(key.to_string(), Value::Map(m));
        }
        r.finish()?;
        Ok(Value::Map(out))
    }

    pub(super) fn generic_resources(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let version = self.version;
        object_list(path, value, version, |g| {
            let mut m = Map::new();
            if let Some(v) = g.get("discrete_resource_spec", 5) {
                let mut d = Obj::new(&g.path("discrete_resource_spec"), v, version, false)?;
                let mut spec = Map::new();
                if let Some(s) = d.string("kind", 5)? {
                    spec.insert("kind".to_string(), Value::String(s));
                }
                if let Some(n) = d.number("value", 5)? {
                    spec.insert("value".to_string(), n);
                }
                d.finish()?;
                m.insert("discrete_resource_spec".to_string(), Value::Map(spec));
            }
            Ok(m)
        })
    }
}
