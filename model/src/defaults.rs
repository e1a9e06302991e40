//! Swarm's defaults: what dockerd stores for fields a client left out, and what
//! `insertDefaults=true` shows for fields nobody set. Orchestrators, executors, the Engine API
//! and `stack deploy` all read them here, so every layer agrees on one set.

use crate::DnsConfig;
use crate::EndpointSpec;
use crate::Limit;
use crate::Placement;
use crate::ResourceRequirements;
use crate::Resources;
use crate::RestartPolicy;
use crate::ServiceMode;
use crate::ServiceSpec;
use crate::UpdateConfig;

/// Swarm's default stop grace period: 10 s.
pub const DEFAULT_STOP_GRACE_PERIOD: i64 = 10_000_000_000;
/// Swarm's default restart delay: 5 s.
pub const DEFAULT_RESTART_DELAY: i64 = 5_000_000_000;
/// Swarm's default update monitor period: 5 s.
pub const DEFAULT_MONITOR: i64 = 5_000_000_000;

/// Fills in what dockerd stores for fields a client left out, so that what a client reads back
/// and sends again in an update is identical.
pub fn normalize_service_spec(spec: &mut ServiceSpec) {
    let tt = &mut spec.task_template;
    if let Some(cs) = tt.container_spec.as_mut() {
        if cs.isolation.is_empty() {
            cs.isolation = "default".to_string();
        }
        if cs.dns_config.is_none() {
            cs.dns_config = Some(DnsConfig::default());
        }
        if cs.init.is_none() {
            cs.init = Some(false);
        }
    }
    let res = tt.resources.get_or_insert_with(ResourceRequirements::default);
    res.limits.get_or_insert_with(Limit::default);
    res.reservations.get_or_insert_with(Resources::default);
    tt.placement.get_or_insert_with(Placement::default);
    if tt.runtime.is_empty() {
        tt.runtime = "container".to_string();
    }
    // Like dockerd: no mode at all means one replica.
    if spec.mode.count_set() == 0 {
        spec.mode = ServiceMode::replicated(1);
    }
    if let Some(r) = spec.mode.replicated.as_mut() {
        r.replicas.get_or_insert(1);
    }
    // Like dockerd: one task at a time, and as many completions as may run at once.
    if let Some(j) = spec.mode.replicated_job.as_mut() {
        let concurrent = *j.max_concurrent.get_or_insert(1);
        j.total_completions.get_or_insert(concurrent);
    }
    let ep = spec.endpoint_spec.get_or_insert_with(EndpointSpec::default);
    if ep.mode.is_empty() {
        ep.mode = "vip".to_string();
    }
    if let Some(ports) = ep.ports.as_mut() {
        for p in ports {
            if p.protocol.is_empty() {
                p.protocol = "tcp".to_string();
            }
            if p.publish_mode.is_empty() {
                p.publish_mode = "ingress".to_string();
            }
        }
    }
}

/// The spec as `insertDefaults=true` shows it: Swarm's defaults for everything unset.
pub fn with_defaults(spec: &ServiceSpec) -> ServiceSpec {
    let mut s = spec.clone();
    let update_default = || UpdateConfig {
        parallelism: 1,
        failure_action: "pause".to_string(),
        monitor: DEFAULT_MONITOR,
        order: "stop-first".to_string(),
        ..Default::default()
    };
    let fill = |u: &mut UpdateConfig| {
        if u.failure_action.is_empty() {
            u.failure_action = "pause".to_string();
        }
        if u.monitor == 0 {
            u.monitor = DEFAULT_MONITOR;
        }
        if u.order.is_empty() {
            u.order = "stop-first".to_string();
        }
    };
    fill(s.update_config.get_or_insert_with(update_default));
    fill(s.rollback_config.get_or_insert_with(update_default));
    let rp = s
        .task_template
        .restart_policy
        .get_or_insert_with(RestartPolicy::default);
    if rp.condition.is_empty() {
        rp.condition = "any".to_string();
    }
    rp.delay.get_or_insert(DEFAULT_RESTART_DELAY);
    rp.max_attempts.get_or_insert(0);
    if let Some(cs) = s.task_template.container_spec.as_mut() {
        cs.stop_grace_period.get_or_insert(DEFAULT_STOP_GRACE_PERIOD);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContainerSpec;
    use crate::TaskSpec;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            task_template: TaskSpec {
                container_spec: Some(ContainerSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            mode: ServiceMode::replicated(2),
            ..Default::default()
        }
    }

    #[test]
    fn normalising_is_idempotent_and_fills_what_dockerd_stores() {
        let mut s = spec();
        normalize_service_spec(&mut s);
        let once = s.clone();
        normalize_service_spec(&mut s);
        assert_eq!(s, once);
        assert_eq!(s.task_template.runtime, "container");
        assert_eq!(s.endpoint_spec.as_ref().map(|e| e.mode.as_str()), Some("vip"));
    }

    #[test]
    fn defaults_match_swarm() {
        let d = with_defaults(&spec());
        let u = d.update_config.unwrap();
        assert_eq!(
            (u.parallelism, u.failure_action.as_str(), u.monitor, u.order.as_str()),
            (1, "pause", DEFAULT_MONITOR, "stop-first")
        );
        let rp = d.task_template.restart_policy.unwrap();
        assert_eq!(
            (rp.condition.as_str(), rp.delay, rp.max_attempts),
            ("any", Some(DEFAULT_RESTART_DELAY), Some(0))
        );
    }
}
