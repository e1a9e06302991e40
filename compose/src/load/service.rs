//! A service's keys, normalised: build, environment, healthcheck, logging, ulimits, networks,
//! ports, volumes, secrets and configs, extra hosts.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;

use crate::error::ComposeError;
use crate::schema::Obj;
use crate::schema::check_unique;
use crate::schema::join;
use crate::schema::labels_value;
use crate::schema::list_or_dict;
use crate::schema::must_be;
use crate::schema::string_list;
use crate::schema::string_or_list;
use crate::schema::strings_value;
use crate::schema::unique_string_list;
use crate::syntax::clean_path;
use crate::syntax::is_windows_path;
use crate::syntax::parse_env_file;
use crate::syntax::parse_port_spec;
use crate::syntax::parse_volume_spec;
use crate::syntax::shell_split;
use crate::value::Map;
use crate::value::Value;

use super::Context;
use super::objects::driver_opts;

impl Context<'_> {
    pub(super) fn service(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut o = Obj::new(path, value, self.version, self.v(7))?;
        let mut out = Map::new();
        let plain_strings: &[(&str, u32)] = &[
            ("cgroup_parent", 0),
            ("cgroupns_mode", 9),
            ("container_name", 0),
            ("domainname", 0),
            ("hostname", 0),
            ("image", 0),
            ("ipc", 0),
            ("isolation", 5),
            ("mac_address", 0),
            ("network_mode", 0),
            ("restart", 0),
            ("stop_signal", 0),
            ("user", 0),
            ("userns_mode", 0),
            ("working_dir", 0),
        ];
        for (key, since) in plain_strings {
            if let Some(s) = o.string(key, *since)? {
                out.insert(key.to_string(), Value::String(s));
            }
        }
        for key in ["privileged", "read_only", "stdin_open", "tty"] {
            if let Some(b) = o.boolean(key, 0)? {
                out.insert(key.to_string(), Value::Bool(b));
            }
        }
        if let Some(b) = o.boolean("init", 7)? {
            out.insert("init".to_string(), Value::Bool(b));
        }
        if let Some(d) = o.duration("stop_grace_period", 0)? {
            out.insert("stop_grace_period".to_string(), Value::String(d));
        }
        // oom_score_adj is validated but dropped, as docker's loader drops it (quirk 2).
        o.integer("oom_score_adj", 13)?;
        for key in [
            "cap_add",
            "cap_drop",
            "devices",
            "external_links",
            "links",
            "security_opt",
            "depends_on",
        ] {
            if let Some(v) = o.get(key, 0) {
                out.insert(key.to_string(), strings_value(unique_string_list(&o.path(key), v)?));
            }
        }
        for key in ["dns", "dns_search", "env_file", "tmpfs"] {
            if let Some(v) = o.get(key, 0) {
                out.insert(key.to_string(), strings_value(string_or_list(&o.path(key), v, true)?));
            }
        }
        if let Some(v) = o.get("pid", 0) {
            match v {
                Value::Null => {}
                Value::String(s) => {
                    out.insert("pid".to_string(), Value::String(s.clone()));
                }
                _ => return Err(must_be(&o.path("pid"), &["string", "null"])),
            }
        }
        if let Some(v) = o.get("shm_size", 0) {
            match v {
                Value::String(_) | Value::Int(_) | Value::Float(_) => {
                    out.insert(
                        "shm_size".to_string(),
                        Value::String(v.scalar_text().unwrap_or_default()),
                    );
                }
                _ => return Err(must_be(&o.path("shm_size"), &["number", "string"])),
            }
        }
        for key in ["command", "entrypoint"] {
            if let Some(v) = o.get(key, 0) {
                let p = o.path(key);
                let words = match v {
                    Value::String(s) => shell_split(s).map_err(|e| ComposeError::schema(&p, e.to_string()))?,
                    Value::Null => continue,
                    _ => string_list(&p, v).map_err(|_| must_be(&p, &["string", "array"]))?,
                };
                out.insert(key.to_string(), strings_value(words));
            }
        }
        if let Some(v) = o.get("build", 0) {
            let built = match v {
                Value::String(s) => Value::Map([("context".to_string(), Value::String(s.clone()))].into()),
                Value::Map(_) => self.build(&o.path("build"), v)?,
                _ => return Err(must_be(&o.path("build"), &["string", "object"])),
            };
            if built.as_map().is_some_and(|b| !b.is_empty()) {
                out.insert("build".to_string(), built);
            }
        }
        if let Some(v) = o.get("expose", 0) {
            let p = o.path("expose");
            let Value::Seq(items) = v else {
                return Err(must_be(&p, &["array"]));
            };
            check_unique(&p, items)?;
            let mut list = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(_) | Value::Int(_) => list.push(item.scalar_text().unwrap_or_default()),
                    _ => return Err(must_be(&join(&p, &i.to_string()), &["string", "number"])),
                }
            }
            out.insert("expose".to_string(), strings_value(list));
        }
        if let Some(v) = o.get("labels", 0) {
            out.insert("labels".to_string(), labels_value(list_or_dict(&o.path("labels"), v)?));
        }
        if let Some(v) = o.get("sysctls", 0) {
            out.insert(
                "sysctls".to_string(),
                labels_value(list_or_dict(&o.path("sysctls"), v)?),
            );
        }
        if let Some(v) = o.get("extra_hosts", 0) {
            out.insert(
                "extra_hosts".to_string(),
                strings_value(extra_hosts(&o.path("extra_hosts"), v)?),
            );
        }
        let env_files = match out.get("env_file") {
            Some(Value::Seq(files)) => files.iter().filter_map(|f| f.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        let environment = match o.get("environment", 0) {
            Some(v) => Some(list_or_dict(&o.path("environment"), v)?),
            None => None,
        };
        if environment.is_some() || !env_files.is_empty() {
            let env = self.resolve_environment(path, environment.unwrap_or_default(), &env_files)?;
            out.insert("environment".to_string(), env);
        }
        if let Some(v) = o.get("healthcheck", 0) {
            out.insert("healthcheck".to_string(), self.healthcheck(&o.path("healthcheck"), v)?);
        }
        if let Some(v) = o.get("logging", 0) {
            out.insert("logging".to_string(), self.logging(&o.path("logging"), v)?);
        }
        if let Some(v) = o.get("credential_spec", 3) {
            let mut c = Obj::new(&o.path("credential_spec"), v, self.version, false)?;
            let mut spec = Map::new();
            for (key, since) in [("config", 8), ("file", 3), ("registry", 3)] {
                if let Some(s) = c.string(key, since)? {
                    spec.insert(key.to_string(), Value::String(s));
                }
            }
            c.finish()?;
            out.insert("credential_spec".to_string(), Value::Map(spec));
        }
        if let Some(v) = o.get("ulimits", 0) {
            out.insert("ulimits".to_string(), self.ulimits(&o.path("ulimits"), v)?);
        }
        if let Some(v) = o.get("networks", 0) {
            out.insert("networks".to_string(), self.service_networks(&o.path("networks"), v)?);
        }
        if let Some(v) = o.get("ports", 0) {
            out.insert("ports".to_string(), self.ports(&o.path("ports"), v)?);
        }
        if let Some(v) = o.get("volumes", 0) {
            out.insert("volumes".to_string(), self.service_volumes(&o.path("volumes"), v)?);
        }
        if let Some(v) = o.get("secrets", 1) {
            out.insert("secrets".to_string(), self.file_refs(&o.path("secrets"), v)?);
        }
        if let Some(v) = o.get("configs", 3) {
            out.insert("configs".to_string(), self.file_refs(&o.path("configs"), v)?);
        }
        if let Some(v) = o.get("deploy", 0) {
            match v {
                Value::Null => {}
                Value::Map(_) => {
                    out.insert("deploy".to_string(), self.deploy(&o.path("deploy"), v)?);
                }
                _ => return Err(must_be(&o.path("deploy"), &["object", "null"])),
            }
        }
        o.extensions_into(&mut out);
        o.finish()?;
        Ok(Value::Map(out))
    }

    pub(super) fn build(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut b = Obj::new(path, value, self.version, false)?;
        let mut out = Map::new();
        for (key, since) in [("context", 0), ("dockerfile", 0), ("network", 4), ("target", 4)] {
            if let Some(s) = b.string(key, since)? {
                out.insert(key.to_string(), Value::String(s));
            }
        }
        for (key, since) in [("args", 0), ("labels", 3)] {
            if let Some(v) = b.get(key, since) {
                out.insert(key.to_string(), labels_value(list_or_dict(&b.path(key), v)?));
            }
        }
        if let Some(v) = b.get("cache_from", 2) {
            out.insert(
                "cache_from".to_string(),
                strings_value(unique_string_list(&b.path("cache_from"), v)?),
            );
        }
        if let Some(v) = b.get("extra_hosts", 9) {
            out.insert(
                "extra_hosts".to_string(),
                strings_value(extra_hosts(&b.path("extra_hosts"), v)?),
            );
        }
        if let Some(v) = b.get("shm_size", 5) {
            out.insert(
                "shm_size".to_string(),
                Value::String(v.scalar_text().unwrap_or_default()),
            );
        }
        if !self.v(11) {
            b.finish()?;
        }
        Ok(Value::Map(out))
    }

    /// env_file entries in order, then `environment`, then empty values filled from the process.
    pub(super) fn resolve_environment(
        &mut self,
        service_path: &str,
        environment: BTreeMap<String, Option<String>>,
        env_files: &[String],
    ) -> Result<Value, ComposeError> {
        let mut merged: BTreeMap<String, Option<String>> = BTreeMap::new();
        for file in env_files {
            let full = self.absolute(file);
            if !self.env_files.contains_key(&full) {
                let text = std::fs::read_to_string(&full).map_err(|e| ComposeError::File {
                    path: format!("{} (env_file of {service_path})", full.display()),
                    problem: e.to_string(),
                })?;
                let parsed = parse_env_file(&text, &self.details.env);
                self.env_files.insert(full.clone(), parsed);
            }
            for (k, v) in self.env_files.get(&full).into_iter().flatten() {
                merged.insert(k.clone(), Some(v.clone()));
            }
        }
        for (k, v) in environment {
            merged.insert(k, v);
        }
        let mut out = Map::new();
        for (k, v) in merged {
            let value = match v {
                Some(s) if !s.is_empty() => Value::String(s),
                other => match self.details.env.get(&k) {
                    Some(from_env) => Value::String(from_env.clone()),
                    None => other.map(Value::String).unwrap_or(Value::Null),
                },
            };
            out.insert(k, value);
        }
        Ok(Value::Map(out))
    }

    pub(super) fn absolute(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.details.working_dir.join(p)
        }
    }

    pub(super) fn healthcheck(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut h = Obj::new(path, value, self.version, false)?;
        let mut out = Map::new();
        if let Some(v) = h.get("test", 0) {
            let test = match v {
                Value::String(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                _ => string_list(&h.path("test"), v).map_err(|_| must_be(&h.path("test"), &["string", "array"]))?,
            };
            out.insert("test".to_string(), strings_value(test));
        }
        for (key, since) in [
            ("timeout", 0),
            ("interval", 0),
            ("start_period", 4),
            ("start_interval", 12),
        ] {
            if let Some(d) = h.duration(key, since)? {
                out.insert(key.to_string(), Value::String(d));
            }
        }
        if let Some(n) = h.number("retries", 0)? {
            out.insert("retries".to_string(), n);
        }
        if let Some(b) = h.boolean("disable", 0)? {
            out.insert("disable".to_string(), Value::Bool(b));
        }
        h.finish()?;
        Ok(Value::Map(out))
    }

    pub(super) fn logging(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut l = Obj::new(path, value, self.version, false)?;
        let mut out = Map::new();
        if let Some(d) = l.string("driver", 0)? {
            out.insert("driver".to_string(), Value::String(d));
        }
        if let Some(v) = l.get("options", 0) {
            let p = l.path("options");
            let Value::Map(options) = v else {
                return Err(must_be(&p, &["object"]));
            };
            let mut opts = Map::new();
            for (k, v) in options {
                match v {
                    Value::Null => opts.insert(k.clone(), Value::Null),
                    Value::String(_) | Value::Int(_) | Value::Float(_) => {
                        opts.insert(k.clone(), Value::String(v.scalar_text().unwrap_or_default()))
                    }
                    _ => return Err(must_be(&join(&p, k), &["string", "number", "null"])),
                };
            }
            out.insert("options".to_string(), Value::Map(opts));
        }
        l.finish()?;
        Ok(Value::Map(out))
    }

    pub(super) fn ulimits(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let Value::Map(limits) = value else {
            return Err(must_be(path, &["object"]));
        };
        let mut out = Map::new();
        for (name, limit) in limits {
            let p = join(path, name);
            let normalised = match limit {
                Value::Int(n) => Value::Int(*n),
                Value::Map(_) => {
                    let mut u = Obj::new(&p, limit, self.version, false)?;
                    let soft = u.integer("soft", 0)?;
                    let hard = u.integer("hard", 0)?;
                    u.finish()?;
                    let (Some(soft), Some(hard)) = (soft, hard) else {
                        let missing = if soft.is_none() { "soft" } else { "hard" };
                        return Err(ComposeError::schema(&p, format!("{missing} is required")));
                    };
                    Value::Map(
                        [
                            ("soft".to_string(), Value::Int(soft)),
                            ("hard".to_string(), Value::Int(hard)),
                        ]
                        .into(),
                    )
                }
                _ => return Err(must_be(&p, &["integer", "object"])),
            };
            out.insert(name.clone(), normalised);
        }
        Ok(Value::Map(out))
    }

    pub(super) fn service_networks(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut out = Map::new();
        match value {
            Value::Seq(_) => {
                for name in unique_string_list(path, value)? {
                    out.insert(name, Value::Null);
                }
            }
            Value::Map(networks) => {
                for (name, network) in networks {
                    let p = join(path, name);
                    let normalised = match network {
                        Value::Null => Value::Null,
                        Value::Map(_) => {
                            let mut n = Obj::new(&p, network, self.version, false)?;
                            let mut m = Map::new();
                            if let Some(v) = n.get("aliases", 0) {
                                m.insert(
                                    "aliases".to_string(),
                                    strings_value(unique_string_list(&n.path("aliases"), v)?),
                                );
                            }
                            for key in ["ipv4_address", "ipv6_address"] {
                                if let Some(s) = n.string(key, 0)? {
                                    m.insert(key.to_string(), Value::String(s));
                                }
                            }
                            if let Some(v) = n.get("driver_opts", 13) {
                                m.insert("driver_opts".to_string(), driver_opts(&n.path("driver_opts"), v)?);
                            }
                            n.finish()?;
                            Value::Map(m)
                        }
                        _ => return Err(must_be(&p, &["object", "null"])),
                    };
                    out.insert(name.clone(), normalised);
                }
            }
            _ => return Err(must_be(path, &["array", "object"])),
        }
        Ok(Value::Map(out))
    }

    pub(super) fn ports(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let Value::Seq(items) = value else {
            return Err(must_be(path, &["array"]));
        };
        check_unique(path, items)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = join(path, &i.to_string());
            match item {
                Value::Int(_) | Value::String(_) => {
                    let spec = item.scalar_text().unwrap_or_default();
                    let ports = parse_port_spec(&spec)
                        .map_err(|_| ComposeError::schema(&p, "Does not match format 'ports'"))?;
                    for port in ports {
                        if let Some(ip) = &port.host_ip {
                            let proto = &port.protocol;
                            let published = port.published.map(|n| n.to_string()).unwrap_or_default();
                            self.warnings.push(format!(
                                "ignoring IP-address ({ip}:{published}:{}/{proto}) service will listen on '0.0.0.0'",
                                port.target
                            ));
                        }
                        let mut m = Map::new();
                        m.insert("mode".to_string(), Value::String("ingress".to_string()));
                        m.insert("target".to_string(), Value::Int(port.target.into()));
                        if let Some(published) = port.published {
                            m.insert("published".to_string(), Value::Int(published.into()));
                        }
                        m.insert("protocol".to_string(), Value::String(port.protocol));
                        out.push(Value::Map(m));
                    }
                }
                Value::Map(_) if self.v(2) => {
                    let mut o = Obj::new(&p, item, self.version, false)?;
                    let mut m = Map::new();
                    for key in ["mode", "protocol"] {
                        if let Some(s) = o.string(key, 2)? {
                            m.insert(key.to_string(), Value::String(s));
                        }
                    }
                    for key in ["target", "published"] {
                        if let Some(n) = o.integer(key, 2)? {
                            if !(0..=65535).contains(&n) {
                                return Err(ComposeError::schema(&o.path(key), "must be a valid port number"));
                            }
                            m.insert(key.to_string(), Value::Int(n));
                        }
                    }
                    o.finish()?;
                    out.push(Value::Map(m));
                }
                _ => return Err(must_be(&p, &["number", "string"])),
            }
        }
        Ok(Value::Seq(out))
    }

    pub(super) fn service_volumes(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let Value::Seq(items) = value else {
            return Err(must_be(path, &["array"]));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = join(path, &i.to_string());
            let mut m = match item {
                Value::String(spec) => {
                    parse_volume_spec(spec).map_err(|e| ComposeError::Invalid(format!("{p}: {e}")))?
                }
                Value::Map(_) if self.v(2) => {
                    let mut o = Obj::new(&p, item, self.version, false)?;
                    let mut m = Map::new();
                    let Some(kind) = o.string("type", 2)? else {
                        return Err(ComposeError::schema(&p, "type is required"));
                    };
                    m.insert("type".to_string(), Value::String(kind));
                    for key in ["source", "target", "consistency"] {
                        if let Some(s) = o.string(key, 2)? {
                            m.insert(key.to_string(), Value::String(s));
                        }
                    }
                    if let Some(b) = o.boolean("read_only", 2)? {
                        m.insert("read_only".to_string(), Value::Bool(b));
                    }
                    if let Some(v) = o.get("bind", 2) {
                        let mut b = Obj::new(&o.path("bind"), v, self.version, false)?;
                        let mut bind = Map::new();
                        if let Some(s) = b.string("propagation", 2)? {
                            bind.insert("propagation".to_string(), Value::String(s));
                        }
                        b.finish()?;
                        m.insert("bind".to_string(), Value::Map(bind));
                    }
                    if let Some(v) = o.get("volume", 2) {
                        let mut b = Obj::new(&o.path("volume"), v, self.version, false)?;
                        let mut vol = Map::new();
                        if let Some(n) = b.boolean("nocopy", 2)? {
                            vol.insert("nocopy".to_string(), Value::Bool(n));
                        }
                        b.finish()?;
                        m.insert("volume".to_string(), Value::Map(vol));
                    }
                    if let Some(v) = o.get("tmpfs", 6) {
                        let mut b = Obj::new(&o.path("tmpfs"), v, self.version, false)?;
                        let mut tmpfs = Map::new();
                        if let Some(n) = b.integer("size", 6)? {
                            if n < 0 {
                                return Err(ComposeError::schema(
                                    &b.path("size"),
                                    "Must be greater than or equal to 0",
                                ));
                            }
                            if n > 0 {
                                tmpfs.insert("size".to_string(), Value::Int(n));
                            }
                        }
                        b.finish()?;
                        m.insert("tmpfs".to_string(), Value::Map(tmpfs));
                    }
                    o.finish()?;
                    m
                }
                _ => return Err(must_be(&p, &["string", "object"])),
            };
            if m.get("type").and_then(Value::as_str) == Some("bind") {
                let source = m.get("source").and_then(Value::as_str).unwrap_or_default().to_string();
                if source.is_empty() {
                    return Err(ComposeError::Invalid(
                        "invalid mount config for type \"bind\": field Source must not be empty".to_string(),
                    ));
                }
                m.insert("source".to_string(), Value::String(self.bind_source(&source)));
            }
            out.push(Value::Map(m));
        }
        Ok(Value::Seq(out))
    }

    /// `~` becomes $HOME, relative paths join the working directory; Windows paths are kept.
    pub(super) fn bind_source(&mut self, source: &str) -> String {
        if is_windows_path(source) {
            return source.to_string();
        }
        let expanded = if source == "~" || source.starts_with("~/") {
            match self.details.env.get("HOME") {
                Some(home) => format!("{home}{}", &source[1..]),
                None => {
                    self.warnings
                        .push("cannot expand '~', because the environment lacks HOME".to_string());
                    source.to_string()
                }
            }
        } else {
            source.to_string()
        };
        if Path::new(&expanded).is_absolute() {
            return expanded;
        }
        clean_path(&self.details.working_dir.join(&expanded))
    }

    pub(super) fn file_refs(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let Value::Seq(items) = value else {
            return Err(must_be(path, &["array"]));
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = join(path, &i.to_string());
            let m = match item {
                Value::String(s) => [("source".to_string(), Value::String(s.clone()))].into(),
                Value::Map(_) => {
                    // Docker tolerates extra keys in long-syntax references; so do we.
                    let mut o = Obj::new(&p, item, self.version, false)?;
                    let mut m = Map::new();
                    for key in ["source", "target", "uid", "gid"] {
                        if let Some(s) = o.string(key, 0)? {
                            m.insert(key.to_string(), Value::String(s));
                        }
                    }
                    if let Some(n) = o.number("mode", 0)? {
                        m.insert("mode".to_string(), n);
                    }
                    m
                }
                _ => return Err(must_be(&p, &["string", "object"])),
            };
            out.push(Value::Map(m));
        }
        Ok(Value::Seq(out))
    }
}

/// `extra_hosts` as `host:ip` strings: list order kept (`=` accepted, entries without a
/// separator dropped), map form sorted; IPv6 brackets stripped.
fn extra_hosts(path: &str, value: &Value) -> Result<Vec<String>, ComposeError> {
    let strip = |ip: &str| {
        ip.strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip)
            .to_string()
    };
    match value {
        Value::Map(map) => Ok(map
            .iter()
            .map(|(host, ip)| format!("{host}:{}", strip(&ip.scalar_text().unwrap_or_default())))
            .collect()),
        Value::Seq(_) => {
            let mut out = Vec::new();
            for entry in unique_string_list(path, value)? {
                let split = match (entry.find('='), entry.find(':')) {
                    (Some(e), Some(c)) => Some(e.min(c)),
                    (Some(e), None) => Some(e),
                    (None, Some(c)) => Some(c),
                    (None, None) => None,
                };
                if let Some(at) = split {
                    out.push(format!("{}:{}", &entry[..at], strip(&entry[at + 1..])));
                }
            }
            Ok(out)
        }
        _ => Err(must_be(path, &["object"])),
    }
}
