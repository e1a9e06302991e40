//! From file texts to one normalised compose tree: docker's `loader.Load` order of checks
//! (version, forbidden keys, interpolation, schema, normalisation), then the multi-file merge.
//!
//! The normalised tree is what `stack config` prints and what conversion reads: short syntax
//! expanded (ports, volumes, secrets), lists-or-maps made maps, durations and sizes in docker's
//! canonical spelling, bind paths absolute, environment resolved.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;

use crate::error::ComposeError;
use crate::interpolate::interpolate_file;
use crate::merge::merge_files;
use crate::schema::Obj;
use crate::schema::SchemaVersion;
use crate::schema::check_unique;
use crate::schema::join;
use crate::schema::labels_value;
use crate::schema::list_or_dict;
use crate::schema::must_be;
use crate::schema::object_list;
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
use crate::units::parse_ram_bytes;
use crate::value::Map;
use crate::value::NON_STRING_KEY;
use crate::value::Value;
use crate::value::parse_yaml;

/// Everything a load needs, handed in by the caller: the crate reads nothing else.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// Directory relative paths resolve against: the directory of the first file.
    pub working_dir: PathBuf,
    /// `(name, text)` of each `-c` file, in order.
    pub files: Vec<(String, String)>,
    /// The process environment; the only source of `${VAR}` values (docker ignores `.env`).
    pub env: BTreeMap<String, String>,
}

/// A loaded stack file: the merged tree plus what docker would warn about.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Map,
    pub warnings: Vec<String>,
}

/// Keys docker refuses, with its words (`types/types.go`).
pub const FORBIDDEN: &[(&str, &str)] = &[
    ("extends", "Support for `extends` is not implemented yet."),
    (
        "volume_driver",
        "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
    ),
    (
        "volumes_from",
        "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.",
    ),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    ("memswap_limit", "Set resource limits using deploy.resources"),
];

/// Service keys stack deploy accepts but ignores, with a warning.
pub const UNSUPPORTED: &[&str] = &[
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// Deprecated service keys, ignored with docker's explanation.
pub const DEPRECATED: &[(&str, &str)] = &[
    ("container_name", "Setting the container name is not supported."),
    (
        "expose",
        "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
    ),
];

/// Loads, validates, normalises and merges the files.
pub fn load(details: &Details) -> Result<Loaded, ComposeError> {
    if details.files.is_empty() {
        return Err(ComposeError::Invalid("no compose file given".to_string()));
    }
    let mut parsed = Vec::new();
    for (name, text) in &details.files {
        parsed.push((name.clone(), parse_file(name, text)?));
    }
    let first_version = version_text(&parsed[0].1)?;
    for (_, file) in &parsed[1..] {
        let v = version_text(file)?;
        if v != first_version {
            return Err(ComposeError::VersionMismatch(
                first_version.unwrap_or_default(),
                v.unwrap_or_default(),
            ));
        }
    }
    for (_, file) in &parsed {
        check_forbidden(file)?;
    }
    let version = schema_version(first_version.as_deref())?;
    let mut ctx = Context {
        version,
        details,
        warnings: Vec::new(),
        env_files: BTreeMap::new(),
    };
    let mut normalised = Vec::new();
    for (_, file) in &parsed {
        let interpolated = interpolate_file(file, &details.env)?;
        normalised.push(ctx.top_level(&interpolated)?);
    }
    let mut config = merge_files(normalised);
    config
        .entry("services".to_string())
        .or_insert_with(|| Value::Map(Map::new()));
    config.insert("version".to_string(), Value::String(format!("3.{}", version.0)));
    Ok(Loaded {
        config,
        warnings: ctx.warnings,
    })
}

fn parse_file(name: &str, text: &str) -> Result<Map, ComposeError> {
    match parse_yaml(text) {
        Ok(Value::Map(m)) => Ok(m),
        Ok(_) => Err(ComposeError::TopLevelNotMapping),
        Err(message) if message.contains(NON_STRING_KEY) => Err(ComposeError::Yaml {
            file: name.to_string(),
            message: format!("mapping keys must be strings ({})", message.trim()),
        }),
        Err(message) => Err(ComposeError::Yaml {
            file: name.to_string(),
            message: message.trim().to_string(),
        }),
    }
}

fn version_text(file: &Map) -> Result<Option<String>, ComposeError> {
    match file.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ComposeError::VersionNotString),
    }
}

fn schema_version(text: Option<&str>) -> Result<SchemaVersion, ComposeError> {
    let text = match text {
        None | Some("") | Some("3") => return Ok(SchemaVersion::LATEST),
        Some(t) => t,
    };
    let minor = text
        .strip_prefix("3.")
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|m| *m <= 13);
    match minor {
        Some(m) if text == format!("3.{m}") => Ok(SchemaVersion(m)),
        _ => Err(ComposeError::UnsupportedVersion(text.to_string())),
    }
}

fn check_forbidden(file: &Map) -> Result<(), ComposeError> {
    let Some(Value::Map(services)) = file.get("services") else {
        return Ok(());
    };
    let mut found: Vec<(String, String)> = Vec::new();
    for service in services.values() {
        let Value::Map(service) = service else { continue };
        for (key, message) in FORBIDDEN {
            if service.contains_key(*key) && !found.iter().any(|(k, _)| k == key) {
                found.push((key.to_string(), message.to_string()));
            }
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(ComposeError::Forbidden(found))
    }
}

struct Context<'d> {
    version: SchemaVersion,
    details: &'d Details,
    warnings: Vec<String>,
    /// Each env_file read so far, parsed: services sharing one read it once.
    env_files: BTreeMap<PathBuf, Vec<(String, String)>>,
}

impl Context<'_> {
    fn v(&self, minor: u32) -> bool {
        self.version.at_least(minor)
    }

    fn top_level(&mut self, file: &Map) -> Result<Map, ComposeError> {
        let mut root = Obj::of_map("", file, self.version, self.v(4));
        let mut out = Map::new();
        root.get("version", 0);
        for (key, since) in [
            ("services", 0),
            ("networks", 0),
            ("volumes", 0),
            ("secrets", 1),
            ("configs", 3),
        ] {
            let Some(section) = root.get(key, since) else { continue };
            let Value::Map(entries) = section else {
                return Err(must_be(key, &["object"]));
            };
            let mut normalised = Map::new();
            for (name, entry) in entries {
                let path = join(key, name);
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    if key == "networks" {
                        continue;
                    }
                    return Err(ComposeError::schema(
                        key,
                        format!("Additional property {name} is not allowed"),
                    ));
                }
                let value = match key {
                    "services" => self.service(&path, entry)?,
                    "networks" => self.network(&path, name, entry)?,
                    "volumes" => self.volume(&path, name, entry)?,
                    "secrets" => self.file_object(&path, name, entry, true)?,
                    _ => self.file_object(&path, name, entry, false)?,
                };
                normalised.insert(name.clone(), value);
            }
            out.insert(key.to_string(), Value::Map(normalised));
        }
        root.extensions_into(&mut out);
        root.finish()?;
        Ok(out)
    }

    fn service(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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
                    Value::String(s) => shell_split(s).map_err(|e| ComposeError::schema(&p, e))?,
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

    fn build(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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
    fn resolve_environment(
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

    fn absolute(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.details.working_dir.join(p)
        }
    }

    fn healthcheck(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn logging(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn ulimits(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn service_networks(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn ports(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn service_volumes(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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
    fn bind_source(&mut self, source: &str) -> String {
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

    fn file_refs(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn deploy(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn update_config(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn resources(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
        let mut r = Obj::new(path, value, self.version, false)?;
        let mut out = Map::new();
        for key in ["limits", "reservations"] {
            let Some(v) = r.get(key, 0) else { continue };
            let mut l = Obj::new(&r.path(key), v, self.version, false)?;
            let mut m = Map::new();
            if let Some(cpus) = l.string("cpus", 0)? {
                crate::units::parse_nano_cpus(&cpus)
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

    fn generic_resources(&mut self, path: &str, value: &Value) -> Result<Value, ComposeError> {
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

    /// `external: true` or the deprecated `external: {name}`, checked against `name:`.
    fn external(
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

    fn network(&mut self, path: &str, key: &str, value: &Value) -> Result<Value, ComposeError> {
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

    fn volume(&mut self, path: &str, key: &str, value: &Value) -> Result<Value, ComposeError> {
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
    fn file_object(&mut self, path: &str, key: &str, value: &Value, secret: bool) -> Result<Value, ComposeError> {
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
fn cluster_spec(path: &str, value: &Value) -> Result<Value, ComposeError> {
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

fn driver_opts(path: &str, value: &Value) -> Result<Value, ComposeError> {
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
