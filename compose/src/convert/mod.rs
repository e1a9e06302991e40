//! A loaded stack file to what `stack deploy` sends: networks, secrets and configs to create,
//! and one `ServiceSpec` per service, shaped as docker's `convert` package shapes them so
//! that `docker stack deploy` and `swarmctl stack deploy` store identical specs.

mod attachments;
mod deploy;
mod image;
mod service;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::PathBuf;

use swarm_model::Driver;
use swarm_model::Labels;
use swarm_model::ServiceSpec;

use crate::error::ComposeError;
use crate::units::parse_duration;
use crate::value::Map;
use crate::value::Value;

pub use self::attachments::is_builtin_network;
pub use self::image::check_image_reference;
use self::service::convert_service;

/// Label every stack object carries; listing, removal and redeploy filter on it.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Label keeping the image as written in the file.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";
/// Driver for stack networks that name none.
pub const DEFAULT_NETWORK_DRIVER: &str = "overlay";

/// A network the stack needs created.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPlan {
    pub name: String,
    pub driver: String,
    pub options: Labels,
    pub labels: Labels,
    pub internal: bool,
    pub attachable: bool,
    /// `(driver, subnets)` when the file sets IPAM.
    pub ipam: Option<(String, Vec<String>)>,
}

/// A secret or config the stack creates (or updates), with where its data comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct FileObjectPlan {
    pub name: String,
    pub labels: Labels,
    /// The file holding the data; `None` for driver-backed secrets.
    pub file: Option<PathBuf>,
    pub driver: Option<Driver>,
    pub templating: Option<Driver>,
}

/// Everything a deploy sends, in docker's order.
#[derive(Debug, Clone, PartialEq)]
pub struct StackPlan {
    pub networks: Vec<NetworkPlan>,
    /// Names of external networks services use; they must already exist with swarm scope.
    pub external_networks: Vec<String>,
    pub secrets: Vec<FileObjectPlan>,
    pub configs: Vec<FileObjectPlan>,
    /// Specs sorted by name. Secret and config references carry names; the caller fills IDs.
    pub services: Vec<ServiceSpec>,
}

/// Checks a stack name: docker only refuses one that is empty after trimming spaces and quotes.
pub fn validate_stack_name(name: &str) -> Result<(), ComposeError> {
    if name
        .trim_matches(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .is_empty()
    {
        return Err(ComposeError::Invalid(format!("invalid stack name: {name:?}")));
    }
    Ok(())
}

fn scope(stack: &str, name: &str) -> String {
    format!("{stack}_{name}")
}

/// A declared network, volume, secret or config's real name: its `name:`, else `STACK_key`.
fn object_name(stack: &str, key: &str, declared: Option<&Map>) -> String {
    match declared.and_then(|d| d.get("name")).and_then(Value::as_str) {
        Some(name) => name.to_string(),
        None => scope(stack, key),
    }
}

fn with_stack_label(stack: &str, labels: Option<&Value>) -> Labels {
    let mut out = string_map(labels);
    out.insert(NAMESPACE_LABEL.to_string(), stack.to_string());
    out
}

fn string_map(value: Option<&Value>) -> Labels {
    value
        .and_then(Value::as_map)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.scalar_text().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_seq)
        .map(|items| items.iter().filter_map(Value::scalar_text).collect())
        .unwrap_or_default()
}

fn opt_strings(value: Option<&Value>) -> Option<Vec<String>> {
    value.map(|v| strings(Some(v)))
}

fn text(map: &Map, key: &str) -> String {
    map.get(key).and_then(Value::scalar_text).unwrap_or_default()
}

fn duration(map: &Map, key: &str) -> Option<i64> {
    map.get(key)
        .and_then(Value::as_str)
        .and_then(|d| parse_duration(d).ok())
}

fn section(config: &Map, key: &str) -> Map {
    config.get(key).and_then(Value::as_map).cloned().unwrap_or_default()
}

/// Converts a loaded file for the stack `stack`.
pub fn convert(config: &Map, stack: &str) -> Result<StackPlan, ComposeError> {
    validate_stack_name(stack)?;
    let services = section(config, "services");
    let networks = section(config, "networks");
    let volumes = section(config, "volumes");
    let secrets = section(config, "secrets");
    let configs = section(config, "configs");

    let mut used_networks = BTreeSet::new();
    for service in services.values() {
        match service.as_map().and_then(|s| s.get("networks")).and_then(Value::as_map) {
            Some(n) if !n.is_empty() => used_networks.extend(n.keys().cloned()),
            _ => {
                used_networks.insert("default".to_string());
            }
        }
    }
    let mut network_plans = Vec::new();
    let mut external_networks = Vec::new();
    for key in &used_networks {
        let declared = networks.get(key).and_then(Value::as_map).cloned().unwrap_or_default();
        if declared.get("external").and_then(Value::as_bool) == Some(true) {
            external_networks.push(text(&declared, "name"));
            continue;
        }
        let name = object_name(stack, key, Some(&declared));
        let ipam = declared.get("ipam").and_then(Value::as_map).map(|ipam| {
            let subnets: Vec<String> = ipam
                .get("config")
                .and_then(Value::as_seq)
                .map(|c| c.iter().filter_map(|s| s.as_map().map(|m| text(m, "subnet"))).collect())
                .unwrap_or_default();
            (text(ipam, "driver"), subnets)
        });
        let driver = match text(&declared, "driver") {
            d if d.is_empty() => DEFAULT_NETWORK_DRIVER.to_string(),
            d => d,
        };
        network_plans.push(NetworkPlan {
            name,
            driver,
            options: string_map(declared.get("driver_opts")),
            labels: with_stack_label(stack, declared.get("labels")),
            internal: declared.get("internal").and_then(Value::as_bool).unwrap_or(false),
            attachable: declared.get("attachable").and_then(Value::as_bool).unwrap_or(false),
            ipam: ipam.filter(|(d, s)| !d.is_empty() || !s.is_empty()),
        });
    }

    let mut specs = Vec::new();
    for (name, service) in &services {
        let service = service.as_map().cloned().unwrap_or_default();
        check_image_reference(&text(&service, "image")).map_err(|problem| ComposeError::ImageReference {
            service: name.clone(),
            problem,
        })?;
        let spec =
            convert_service(stack, name, &service, &networks, &volumes, &secrets, &configs).map_err(|problem| {
                ComposeError::Service {
                    service: name.clone(),
                    problem,
                }
            })?;
        specs.push(spec);
    }
    Ok(StackPlan {
        networks: network_plans,
        external_networks,
        secrets: file_objects(stack, &secrets, true),
        configs: file_objects(stack, &configs, false),
        services: specs,
    })
}

fn file_objects(stack: &str, declared: &Map, secret: bool) -> Vec<FileObjectPlan> {
    let mut out = Vec::new();
    for (key, object) in declared {
        let object = object.as_map().cloned().unwrap_or_default();
        if object.get("external").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let name = object_name(stack, key, Some(&object));
        let driver: Option<Driver> = (secret && object.contains_key("driver")).then(|| Driver {
            name: text(&object, "driver"),
            options: Some(string_map(object.get("driver_opts"))),
        });
        out.push(FileObjectPlan {
            name,
            labels: with_stack_label(stack, object.get("labels")),
            file: object.get("file").and_then(Value::as_str).map(PathBuf::from),
            driver,
            templating: object.get("template_driver").and_then(Value::as_str).map(|t| Driver {
                name: t.to_string(),
                options: None,
            }),
        });
    }
    out
}

/// Options docker would warn about for this loaded file: unsupported and deprecated keys.
pub fn warnings(config: &Map) -> Vec<String> {
    let services = section(config, "services");
    let mut unsupported = BTreeSet::new();
    let mut deprecated = BTreeMap::new();
    for service in services.values().filter_map(Value::as_map) {
        for key in crate::load::UNSUPPORTED {
            if service.contains_key(*key) {
                unsupported.insert(key.to_string());
            }
        }
        for (key, message) in crate::load::DEPRECATED {
            if service.contains_key(*key) {
                deprecated.insert(key.to_string(), message.to_string());
            }
        }
    }
    let mut out = Vec::new();
    if !unsupported.is_empty() {
        out.push(format!(
            "Ignoring unsupported options: {}",
            unsupported.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !deprecated.is_empty() {
        let lines: Vec<String> = deprecated.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        out.push(format!("Ignoring deprecated options:\n\n{}", lines.join("\n\n")));
    }
    out
}
