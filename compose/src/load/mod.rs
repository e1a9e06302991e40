//! From file texts to one normalised compose tree: docker's `loader.Load` order of checks
//! (version, forbidden keys, interpolation, schema, normalisation), then the multi-file merge.
//!
//! The normalised tree is what `stack config` prints and what conversion reads: short syntax
//! expanded (ports, volumes, secrets), lists-or-maps made maps, durations and sizes in docker's
//! canonical spelling, bind paths absolute, environment resolved.

mod deploy;
mod objects;
mod service;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::ComposeError;
use crate::interpolate::interpolate_file;
use crate::merge::merge_files;
use crate::schema::Obj;
use crate::schema::SchemaVersion;
use crate::schema::join;
use crate::schema::must_be;
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
        Err(e) => {
            let message = e.to_string();
            let message = message.trim();
            Err(ComposeError::Yaml {
                file: name.to_string(),
                message: if message.contains(NON_STRING_KEY) {
                    format!("mapping keys must be strings ({message})")
                } else {
                    message.to_string()
                },
            })
        }
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
}
