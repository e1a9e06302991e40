//! A service's `deploy:` section to the spec's mode, update and rollback configs, resources
//! and restart policy.

use swarm_model::DiscreteGenericResource;
use swarm_model::Empty;
use swarm_model::GenericResource;
use swarm_model::Limit;
use swarm_model::ReplicatedJob;
use swarm_model::ReplicatedService;
use swarm_model::ResourceRequirements;
use swarm_model::Resources;
use swarm_model::RestartPolicy;
use swarm_model::ServiceMode;
use swarm_model::UpdateConfig;

use crate::error::ServiceProblem;
use crate::units::UnitError;
use crate::units::parse_nano_cpus;
use crate::value::Map;
use crate::value::Value;

use super::*;

pub(super) fn mode(deploy: &Map) -> Result<ServiceMode, ServiceProblem> {
    let replicas = deploy.get("replicas").and_then(Value::as_i64).map(|r| r.max(0) as u64);
    let mode = text(deploy, "mode");
    match mode.as_str() {
        "global" | "global-job" if replicas.is_some() => Err(ServiceProblem::ReplicasWithoutReplicatedMode),
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
        other => Err(ServiceProblem::UnknownMode(other.to_string())),
    }
}

pub(super) fn update_config(u: &Map) -> UpdateConfig {
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

pub(super) fn resources(value: Option<&Value>) -> Result<ResourceRequirements, ServiceProblem> {
    let empty = Map::new();
    let r = value.and_then(Value::as_map).unwrap_or(&empty);
    let cpus = |m: &Map| -> Result<i64, UnitError> {
        match m.get("cpus").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => parse_nano_cpus(c),
            _ => Ok(0),
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

pub(super) fn restart_policy(
    policy: Option<&Value>,
    legacy: Option<&Value>,
) -> Result<Option<RestartPolicy>, ServiceProblem> {
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
                .map_err(|_| ServiceProblem::RestartCount(c.to_string()))?;
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
        other => Err(ServiceProblem::RestartPolicy(other.to_string())),
    }
}
