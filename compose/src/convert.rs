//! A loaded stack file to what `stack deploy` sends: networks, secrets and configs to create,
//! and one `ServiceSpec` per service, shaped as docker's `convert` package shapes them so
//! that `docker stack deploy` and `swarmctl stack deploy` store identical specs.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::PathBuf;

use swarm_model::ConfigReference;
use swarm_model::ContainerSpec;
use swarm_model::CredentialSpec;
use swarm_model::DiscreteGenericResource;
use swarm_model::DnsConfig;
use swarm_model::Driver;
use swarm_model::Empty;
use swarm_model::EndpointSpec;
use swarm_model::FileTarget;
use swarm_model::GenericResource;
use swarm_model::HealthConfig;
use swarm_model::Labels;
use swarm_model::Limit;
use swarm_model::Mount;
use swarm_model::NetworkAttachmentConfig;
use swarm_model::Placement;
use swarm_model::PlacementPreference;
use swarm_model::PortConfig;
use swarm_model::Privileges;
use swarm_model::ReplicatedJob;
use swarm_model::ReplicatedService;
use swarm_model::ResourceRequirements;
use swarm_model::Resources;
use swarm_model::RestartPolicy;
use swarm_model::SecretReference;
use swarm_model::ServiceMode;
use swarm_model::ServiceSpec;
use swarm_model::SpreadOver;
use swarm_model::TaskSpec;
use swarm_model::TmpfsOptions;
use swarm_model::Ulimit;
use swarm_model::UpdateConfig;
use swarm_model::VolumeOptions;

use crate::error::ComposeError;
use crate::units::parse_duration;
use crate::units::parse_nano_cpus;
use crate::value::Map;
use crate::value::Value;

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
        check_image_reference(&text(&service, "image")).map_err(|problem| {
            ComposeError::Invalid(format!("invalid image reference for service {name}: {problem}"))
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

fn convert_service(
    stack: &str,
    name: &str,
    service: &Map,
    networks: &Map,
    volumes: &Map,
    secrets: &Map,
    configs: &Map,
) -> Result<ServiceSpec, String> {
    let empty = Map::new();
    let deploy = service.get("deploy").and_then(Value::as_map).unwrap_or(&empty);
    let image = text(service, "image");
    let mut labels = with_stack_label(stack, deploy.get("labels"));
    labels.insert(IMAGE_LABEL.to_string(), image.clone());

    let (capability_add, capability_drop) =
        effective_capabilities(&strings(service.get("cap_add")), &strings(service.get("cap_drop")));
    let dns = strings(service.get("dns"));
    let dns_search = strings(service.get("dns_search"));
    let mut credential_spec = credential_spec(service.get("credential_spec"))?;
    let mut config_refs = file_references(stack, service.get("configs"), configs, "config")?
        .into_iter()
        .map(|(file, name)| ConfigReference {
            file: Some(file),
            runtime: None,
            config_id: String::new(),
            config_name: name,
        })
        .collect::<Vec<_>>();
    // A credential spec from a config names the config; the deployer swaps in its ID.
    if let Some(spec) = credential_spec.as_mut()
        && !spec.config.is_empty()
    {
        let Some(declared) = configs.get(&spec.config).and_then(Value::as_map) else {
            return Err(format!("undefined config {:?}", spec.config));
        };
        let config_name = object_name(stack, &spec.config, Some(declared));
        spec.config = config_name.clone();
        config_refs.push(ConfigReference {
            file: None,
            runtime: Some(Empty {}),
            config_id: String::new(),
            config_name,
        });
    }
    let secret_refs = file_references(stack, service.get("secrets"), secrets, "secret")?
        .into_iter()
        .map(|(file, name)| SecretReference {
            file: Some(file),
            secret_id: String::new(),
            secret_name: name,
        })
        .collect::<Vec<_>>();

    let container = ContainerSpec {
        image,
        labels: Some(with_stack_label(stack, service.get("labels"))),
        command: opt_strings(service.get("entrypoint")),
        args: opt_strings(service.get("command")),
        hostname: text(service, "hostname"),
        env: Some(environment(service.get("environment"))).filter(|e| !e.is_empty()),
        dir: text(service, "working_dir"),
        user: text(service, "user"),
        privileges: Some(Privileges {
            credential_spec,
            ..Privileges::default()
        }),
        tty: service.get("tty").and_then(Value::as_bool).unwrap_or(false),
        open_stdin: service.get("stdin_open").and_then(Value::as_bool).unwrap_or(false),
        read_only: service.get("read_only").and_then(Value::as_bool).unwrap_or(false),
        mounts: Some(mounts(stack, service.get("volumes"), volumes)?).filter(|m| !m.is_empty()),
        stop_signal: text(service, "stop_signal"),
        stop_grace_period: duration(service, "stop_grace_period"),
        healthcheck: healthcheck(service.get("healthcheck"))?,
        hosts: Some(hosts(service.get("extra_hosts"))).filter(|h| !h.is_empty()),
        dns_config: (!dns.is_empty() || !dns_search.is_empty()).then(|| DnsConfig {
            nameservers: Some(dns).filter(|d| !d.is_empty()),
            search: Some(dns_search).filter(|d| !d.is_empty()),
            options: None,
        }),
        secrets: Some(secret_refs).filter(|s| !s.is_empty()),
        configs: Some(config_refs).filter(|c| !c.is_empty()),
        isolation: text(service, "isolation"),
        init: service.get("init").and_then(Value::as_bool),
        sysctls: service
            .get("sysctls")
            .map(|s| string_map(Some(s)))
            .filter(|s| !s.is_empty()),
        capability_add,
        capability_drop,
        ulimits: ulimits(service.get("ulimits")),
        ..ContainerSpec::default()
    };

    let placement_map = deploy.get("placement").and_then(Value::as_map).unwrap_or(&empty);
    let preferences: Vec<PlacementPreference> = placement_map
        .get("preferences")
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_map)
        .map(|p| PlacementPreference {
            spread: Some(SpreadOver {
                spread_descriptor: text(p, "spread"),
            }),
        })
        .collect();
    let placement = Placement {
        constraints: opt_strings(placement_map.get("constraints")),
        preferences: Some(preferences).filter(|p| !p.is_empty()),
        max_replicas: placement_map
            .get("max_replicas_per_node")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0) as u64,
        platforms: None,
    };

    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(resources(deploy.get("resources"))?),
        restart_policy: restart_policy(deploy.get("restart_policy"), service.get("restart"))?,
        placement: Some(placement),
        networks: Some(service_networks(stack, name, service.get("networks"), networks)?),
        log_driver: service.get("logging").and_then(Value::as_map).map(|l| Driver {
            name: text(l, "driver"),
            options: l.get("options").map(|o| string_map(Some(o))),
        }),
        ..TaskSpec::default()
    };

    Ok(ServiceSpec {
        name: scope(stack, name),
        labels,
        task_template: task,
        mode: mode(deploy)?,
        update_config: deploy.get("update_config").and_then(Value::as_map).map(update_config),
        rollback_config: deploy.get("rollback_config").and_then(Value::as_map).map(update_config),
        networks: None,
        endpoint_spec: Some(EndpointSpec {
            mode: text(deploy, "endpoint_mode").to_ascii_lowercase(),
            // Go omits an empty port list, so docker sends none.
            ports: Some(ports(service.get("ports"))).filter(|p| !p.is_empty()),
        }),
    })
}

/// Checks an image reference as docker's `reference.ParseAnyReference` does:
/// `[domain/]path[:tag][@digest]`, lower-case path components.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    const BAD: &str = "invalid reference format";
    if image.is_empty() {
        return Err("no image specified".to_string());
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (algorithm, hex) = d.split_once(':').ok_or(BAD)?;
        let algorithm_ok = algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
            && algorithm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c));
        // Registered algorithms have fixed lengths; others need at least 32 hex digits.
        let length_ok = match algorithm {
            "sha256" => hex.len() == 64,
            "sha384" => hex.len() == 96,
            "sha512" => hex.len() == 128,
            _ => hex.len() >= 32,
        };
        if !algorithm_ok || !length_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(BAD.to_string());
        }
    }
    let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err(BAD.to_string());
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1 && (first.contains(['.', ':']) || first == "localhost");
    if has_domain {
        components.remove(0);
    }
    let mut lower_case_needed = false;
    for component in &components {
        let lower = component.to_ascii_lowercase();
        if !path_component_ok(&lower) {
            return Err(BAD.to_string());
        }
        lower_case_needed |= lower != *component;
    }
    if lower_case_needed {
        let shown = if has_domain || components.len() > 1 {
            name.to_string()
        } else {
            format!("library/{name}")
        };
        return Err(format!("{BAD}: repository name ({shown}) must be lowercase"));
    }
    Ok(())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn path_component_ok(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut separator = String::new();
    for &b in bytes {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            if !(separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.bytes().all(|s| s == b'-'))
            {
                return false;
            }
            separator.clear();
        } else if b == b'.' || b == b'_' || b == b'-' {
            separator.push(b as char);
        } else {
            return false;
        }
    }
    true
}

/// docker's `convertCredentialSpec`: nothing set means none; at most one of config, file
/// and registry.
fn credential_spec(value: Option<&Value>) -> Result<Option<CredentialSpec>, String> {
    let Some(c) = value.and_then(Value::as_map) else {
        return Ok(None);
    };
    let spec = CredentialSpec {
        config: text(c, "config"),
        file: text(c, "file"),
        registry: text(c, "registry"),
    };
    let set: Vec<&str> = [
        ("\"Config\"", &spec.config),
        ("\"File\"", &spec.file),
        ("\"Registry\"", &spec.registry),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, _)| *k)
    .collect();
    match set.as_slice() {
        [] => Ok(None),
        [_] => Ok(Some(spec)),
        [a, b] => Err(format!("invalid credential spec: cannot specify both {a} and {b}")),
        [rest @ .., last] => Err(format!(
            "invalid credential spec: cannot specify both {}, and {last}",
            rest.join(", ")
        )),
    }
}

fn mode(deploy: &Map) -> Result<ServiceMode, String> {
    let replicas = deploy.get("replicas").and_then(Value::as_i64).map(|r| r.max(0) as u64);
    let mode = text(deploy, "mode");
    match mode.as_str() {
        "global" | "global-job" if replicas.is_some() => {
            Err("replicas can only be used with replicated or replicated-job mode".to_string())
        }
        "global" => Ok(ServiceMode {
            global: Some(Empty {}),
            ..ServiceMode::default()
        }),
        "global-job" => Ok(ServiceMode {
            global_job: Some(Empty {}),
            ..ServiceMode::default()
        }),
        "replicated-job" => Ok(ServiceMode {
            replicated_job: Some(ReplicatedJob {
                max_concurrent: replicas,
                total_completions: replicas,
            }),
            ..ServiceMode::default()
        }),
        "" | "replicated" => Ok(ServiceMode {
            replicated: Some(ReplicatedService { replicas }),
            ..ServiceMode::default()
        }),
        other => Err(format!("unknown mode: {other}")),
    }
}

fn update_config(u: &Map) -> UpdateConfig {
    UpdateConfig {
        parallelism: u
            .get("parallelism")
            .and_then(Value::as_i64)
            .map(|p| p.max(0) as u64)
            .unwrap_or(1),
        delay: duration(u, "delay").unwrap_or(0),
        failure_action: text(u, "failure_action"),
        monitor: duration(u, "monitor").unwrap_or(0),
        max_failure_ratio: u
            .get("max_failure_ratio")
            .and_then(Value::as_f64)
            .map(|r| r as f32 as f64)
            .unwrap_or(0.0),
        order: text(u, "order"),
    }
}

fn resources(value: Option<&Value>) -> Result<ResourceRequirements, String> {
    let empty = Map::new();
    let r = value.and_then(Value::as_map).unwrap_or(&empty);
    let cpus = |m: &Map| -> Result<i64, String> {
        match m.get("cpus").and_then(Value::as_str) {
            Some(c) => parse_nano_cpus(c),
            None => Ok(0),
        }
    };
    let memory = |m: &Map| {
        m.get("memory")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let limits = match r.get("limits").and_then(Value::as_map) {
        Some(l) => Some(Limit {
            nano_cpus: cpus(l)?,
            memory_bytes: memory(l),
            pids: l.get("pids").and_then(Value::as_i64).unwrap_or(0),
        }),
        None => None,
    };
    let reservations = match r.get("reservations").and_then(Value::as_map) {
        Some(l) => {
            let generic: Vec<GenericResource> = l
                .get("generic_resources")
                .and_then(Value::as_seq)
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_map)
                .map(|g| GenericResource {
                    named_resource_spec: None,
                    discrete_resource_spec: g.get("discrete_resource_spec").and_then(Value::as_map).map(|d| {
                        DiscreteGenericResource {
                            kind: text(d, "kind"),
                            value: d.get("value").and_then(Value::as_i64).unwrap_or(0),
                        }
                    }),
                })
                .collect();
            Some(Resources {
                nano_cpus: cpus(l)?,
                memory_bytes: memory(l),
                generic_resources: Some(generic).filter(|g| !g.is_empty()),
            })
        }
        None => None,
    };
    Ok(ResourceRequirements { limits, reservations })
}

fn restart_policy(policy: Option<&Value>, legacy: Option<&Value>) -> Result<Option<RestartPolicy>, String> {
    if let Some(p) = policy.and_then(Value::as_map) {
        return Ok(Some(RestartPolicy {
            condition: text(p, "condition"),
            delay: duration(p, "delay"),
            max_attempts: p.get("max_attempts").and_then(Value::as_i64).map(|n| n.max(0) as u64),
            window: duration(p, "window"),
        }));
    }
    let Some(restart) = legacy.and_then(Value::as_str) else {
        return Ok(None);
    };
    let (name, count) = match restart.split_once(':') {
        Some((n, c)) => {
            let count = c
                .parse::<u64>()
                .map_err(|_| format!("invalid restart policy: maximum retry count must be an integer: {c}"))?;
            (n, count)
        }
        None => (restart, 0),
    };
    let policy = |condition: &str, max_attempts| RestartPolicy {
        condition: condition.to_string(),
        delay: None,
        max_attempts,
        window: None,
    };
    match name {
        "" | "no" => Ok(None),
        "always" | "unless-stopped" => Ok(Some(policy("any", (count > 0).then_some(count)))),
        "on-failure" => Ok(Some(policy("on-failure", Some(count)))),
        other => Err(format!(
            "invalid restart policy: unknown policy '{other}' (must be one of 'no', 'always', 'on-failure', or 'unless-stopped')"
        )),
    }
}

fn environment(value: Option<&Value>) -> Vec<String> {
    let mut env: Vec<String> = value
        .and_then(Value::as_map)
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    Value::Null => k.clone(),
                    other => format!("{k}={}", other.scalar_text().unwrap_or_default()),
                })
                .collect()
        })
        .unwrap_or_default();
    env.sort();
    env
}

fn hosts(value: Option<&Value>) -> Vec<String> {
    strings(value)
        .into_iter()
        .filter_map(|entry| entry.split_once(':').map(|(host, ip)| format!("{ip} {host}")))
        .collect()
}

fn ports(value: Option<&Value>) -> Vec<PortConfig> {
    let mut out: Vec<PortConfig> = value
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_map)
        .map(|p| PortConfig {
            name: String::new(),
            protocol: text(p, "protocol"),
            target_port: p.get("target").and_then(Value::as_i64).unwrap_or(0).clamp(0, 65535) as u32,
            published_port: p
                .get("published")
                .and_then(Value::as_i64)
                .map(|n| n.clamp(0, 65535) as u32),
            publish_mode: text(p, "mode"),
        })
        .collect();
    out.sort_by_key(|p| p.published_port.unwrap_or(0));
    out
}

fn ulimits(value: Option<&Value>) -> Option<Vec<Ulimit>> {
    let limits = value.and_then(Value::as_map)?;
    let out: Vec<Ulimit> = limits
        .iter()
        .map(|(name, limit)| match limit {
            Value::Map(m) => Ulimit {
                name: name.clone(),
                soft: m.get("soft").and_then(Value::as_i64).unwrap_or(0),
                hard: m.get("hard").and_then(Value::as_i64).unwrap_or(0),
            },
            single => {
                let n = single.as_i64().unwrap_or(0);
                Ulimit {
                    name: name.clone(),
                    soft: n,
                    hard: n,
                }
            }
        })
        .collect();
    Some(out).filter(|u| !u.is_empty())
}

/// Docker's `EffectiveCapAddCapDrop`: upper-case, `CAP_` prefix, ALL dominates, add beats drop.
fn effective_capabilities(add: &[String], drop: &[String]) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let normalise = |caps: &[String]| -> BTreeSet<String> {
        caps.iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .map(|c| {
                if c == "ALL" || c.starts_with("CAP_") {
                    c
                } else {
                    format!("CAP_{c}")
                }
            })
            .collect()
    };
    let mut add = normalise(add);
    let mut drop = normalise(drop);
    if add.contains("ALL") {
        add = ["ALL".to_string()].into();
    }
    if drop.contains("ALL") {
        drop = ["ALL".to_string()].into();
    }
    drop.retain(|c| !add.contains(c));
    let list = |s: BTreeSet<String>| Some(s.into_iter().collect::<Vec<_>>()).filter(|v| !v.is_empty());
    (list(add), list(drop))
}

fn healthcheck(value: Option<&Value>) -> Result<Option<HealthConfig>, String> {
    let Some(h) = value.and_then(Value::as_map) else {
        return Ok(None);
    };
    if h.get("disable").and_then(Value::as_bool) == Some(true) {
        if h.contains_key("test") {
            return Err("test and disable can't be set at the same time".to_string());
        }
        return Ok(Some(HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..HealthConfig::default()
        }));
    }
    let nonzero = |n: Option<i64>| n.filter(|d| *d != 0);
    Ok(Some(HealthConfig {
        test: opt_strings(h.get("test")),
        interval: nonzero(duration(h, "interval")),
        timeout: nonzero(duration(h, "timeout")),
        retries: nonzero(h.get("retries").and_then(Value::as_i64)),
        start_period: nonzero(duration(h, "start_period")),
        start_interval: nonzero(duration(h, "start_interval")),
    }))
}

/// The engine's own networks (and `container:<id>`), which a stack neither creates nor checks
/// and whose attachments get no service-name alias.
pub fn is_builtin_network(name: &str) -> bool {
    matches!(name, "default" | "bridge" | "host" | "none") || name.starts_with("container:")
}

/// `(file target, object name)` pairs for a service's secrets or configs, sorted by target.
fn file_references(
    stack: &str,
    refs: Option<&Value>,
    declared: &Map,
    kind: &str,
) -> Result<Vec<(FileTarget, String)>, String> {
    let mut out: Vec<(FileTarget, String)> = Vec::new();
    let mut targets = BTreeSet::new();
    for reference in refs
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_map)
    {
        let source = text(reference, "source");
        let Some(object) = declared.get(&source).and_then(Value::as_map) else {
            return Err(format!("undefined {kind} {source:?}"));
        };
        let name = object_name(stack, &source, Some(object));
        let target = match text(reference, "target") {
            t if t.is_empty() => source.clone(),
            t => t,
        };
        if !targets.insert(target.clone()) {
            return Err(format!("duplicate {kind} target for {source} not allowed"));
        }
        let or_zero = |key: &str| match text(reference, key) {
            s if s.is_empty() => "0".to_string(),
            s => s,
        };
        let mode = reference
            .get("mode")
            .and_then(Value::as_i64)
            .map(|m| m.clamp(0, 0o7777) as u32)
            .unwrap_or(0o444);
        out.push((
            FileTarget {
                name: target,
                uid: or_zero("uid"),
                gid: or_zero("gid"),
                mode,
            },
            name,
        ));
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

fn service_networks(
    stack: &str,
    service: &str,
    value: Option<&Value>,
    declared: &Map,
) -> Result<Vec<NetworkAttachmentConfig>, String> {
    let mut requested: Map = value.and_then(Value::as_map).cloned().unwrap_or_default();
    if requested.is_empty() {
        requested.insert("default".to_string(), Value::Null);
    }
    let mut out = Vec::new();
    for (key, attachment) in &requested {
        let network = declared.get(key).and_then(Value::as_map);
        if key != "default" && !declared.contains_key(key) {
            return Err(format!("undefined network {key:?}"));
        }
        let target = object_name(stack, key, network);
        let attachment = attachment.as_map();
        let mut aliases = strings(attachment.and_then(|a| a.get("aliases")));
        if !is_builtin_network(&target) {
            aliases.push(service.to_string());
        }
        out.push(NetworkAttachmentConfig {
            target,
            aliases: Some(aliases).filter(|a| !a.is_empty()),
            driver_opts: attachment
                .and_then(|a| a.get("driver_opts"))
                .map(|d| string_map(Some(d))),
        });
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}

fn mounts(stack: &str, value: Option<&Value>, declared: &Map) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for volume in value
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_map)
    {
        let kind = text(volume, "type");
        let mut mount = Mount {
            type_: kind.clone(),
            source: text(volume, "source"),
            target: text(volume, "target"),
            read_only: volume.get("read_only").and_then(Value::as_bool).unwrap_or(false),
            consistency: text(volume, "consistency"),
            ..Mount::default()
        };
        let has = |k: &str| volume.contains_key(k);
        match kind.as_str() {
            "volume" => {
                if has("tmpfs") {
                    return Err("tmpfs options are incompatible with type volume".to_string());
                }
                if has("bind") {
                    return Err("bind options are incompatible with type volume".to_string());
                }
                if !mount.source.is_empty() {
                    let Some(stack_volume) = declared
                        .get(&mount.source)
                        .map(|v| v.as_map().cloned().unwrap_or_default())
                    else {
                        return Err(format!("undefined volume {:?}", mount.source));
                    };
                    let no_copy = volume
                        .get("volume")
                        .and_then(Value::as_map)
                        .and_then(|v| v.get("nocopy"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let mut options = VolumeOptions {
                        no_copy,
                        ..VolumeOptions::default()
                    };
                    mount.source = object_name(stack, &mount.source, Some(&stack_volume));
                    if stack_volume.get("external").and_then(Value::as_bool) != Some(true) {
                        options.labels = Some(with_stack_label(stack, stack_volume.get("labels")));
                        if stack_volume.contains_key("driver") || stack_volume.contains_key("driver_opts") {
                            options.driver_config = Some(Driver {
                                name: text(&stack_volume, "driver"),
                                options: stack_volume.get("driver_opts").map(|o| string_map(Some(o))),
                            });
                        }
                    }
                    mount.volume_options = Some(options);
                }
            }
            "bind" => {
                if has("tmpfs") {
                    return Err("tmpfs options are incompatible with type bind".to_string());
                }
                if has("volume") {
                    return Err("volume options are incompatible with type bind".to_string());
                }
                if let Some(b) = volume.get("bind").and_then(Value::as_map) {
                    mount.bind_options = Some(swarm_model::BindOptions {
                        propagation: text(b, "propagation"),
                        ..Default::default()
                    });
                }
            }
            "tmpfs" => {
                if !mount.source.is_empty() {
                    return Err("invalid tmpfs source, source must be empty".to_string());
                }
                if let Some(t) = volume.get("tmpfs").and_then(Value::as_map) {
                    mount.tmpfs_options = Some(TmpfsOptions {
                        size_bytes: t.get("size").and_then(Value::as_i64),
                        ..TmpfsOptions::default()
                    });
                }
            }
            "npipe" | "cluster" => {}
            _ => return Err("volume type must be volume, bind, tmpfs, npipe, or cluster".to_string()),
        }
        out.push(mount);
    }
    Ok(out)
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
