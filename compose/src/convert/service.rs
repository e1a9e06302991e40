//! One service to its `ServiceSpec`: the container spec, task template, endpoint and
//! attachments, as docker's `convertService` builds them.

use std::collections::BTreeSet;

use swarm_model::ConfigReference;
use swarm_model::ContainerSpec;
use swarm_model::CredentialSpec;
use swarm_model::DnsConfig;
use swarm_model::Driver;
use swarm_model::Empty;
use swarm_model::EndpointSpec;
use swarm_model::HealthConfig;
use swarm_model::Placement;
use swarm_model::PlacementPreference;
use swarm_model::PortConfig;
use swarm_model::Privileges;
use swarm_model::SecretReference;
use swarm_model::ServiceSpec;
use swarm_model::SpreadOver;
use swarm_model::TaskSpec;
use swarm_model::Ulimit;

use crate::error::ServiceProblem;
use crate::value::Map;
use crate::value::Value;

use super::attachments::*;
use super::deploy::*;
use super::*;

pub(super) fn convert_service(
    stack: &str,
    name: &str,
    service: &Map,
    networks: &Map,
    volumes: &Map,
    secrets: &Map,
    configs: &Map,
) -> Result<ServiceSpec, ServiceProblem> {
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
            return Err(ServiceProblem::Undefined {
                kind: "config",
                name: spec.config.clone(),
            });
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

/// docker's `convertCredentialSpec`: nothing set means none; at most one of config, file
/// and registry.
pub(super) fn credential_spec(value: Option<&Value>) -> Result<Option<CredentialSpec>, ServiceProblem> {
    let Some(c) = value.and_then(Value::as_map) else {
        return Ok(None);
    };
    let spec = CredentialSpec {
        config: text(c, "config"),
        file: text(c, "file"),
        registry: text(c, "registry"),
    };
    let set: Vec<&'static str> = [
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
        _ => Err(ServiceProblem::CredentialSpec(set)),
    }
}

pub(super) fn environment(value: Option<&Value>) -> Vec<String> {
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

pub(super) fn hosts(value: Option<&Value>) -> Vec<String> {
    strings(value)
        .into_iter()
        .filter_map(|entry| entry.split_once(':').map(|(host, ip)| format!("{ip} {host}")))
        .collect()
}

pub(super) fn ports(value: Option<&Value>) -> Vec<PortConfig> {
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

pub(super) fn ulimits(value: Option<&Value>) -> Option<Vec<Ulimit>> {
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
pub(super) fn effective_capabilities(add: &[String], drop: &[String]) -> (Option<Vec<String>>, Option<Vec<String>>) {
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

pub(super) fn healthcheck(value: Option<&Value>) -> Result<Option<HealthConfig>, ServiceProblem> {
    let Some(h) = value.and_then(Value::as_map) else {
        return Ok(None);
    };
    if h.get("disable").and_then(Value::as_bool) == Some(true) {
        if h.contains_key("test") {
            return Err(ServiceProblem::HealthcheckTestAndDisable);
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
