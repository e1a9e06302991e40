//! Service spec checks: what Swarm refuses, with the field and the problem named. The defaults
//! dockerd fills in live in the model (`swarm_model::defaults`).

use swarm_model::ContainerSpec;
use swarm_model::ServiceSpec;
use swarm_model::UpdateConfig;
use swarm_model::random_bytes;

use super::error::ApiError;
use crate::scheduler::constraint::Constraint;
use crate::scheduler::constraint::ConstraintError;

fn bad(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("invalid service spec: {field}: {problem}"))
}

/// A Docker-style random name, `adjective_noun`, for services created without one.
pub fn random_service_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fervent", "gifted", "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky",
        "relaxed", "serene", "trusting", "vibrant", "wizardly", "zealous",
    ];
    const NAMES: &[&str] = &[
        "almeida", "bell", "curie", "darwin", "euler", "fermi", "gauss", "hopper", "joliot", "knuth", "lovelace",
        "meitner", "noether", "pasteur", "ritchie", "shannon", "turing", "wozniak",
    ];
    let mut b = [0u8; 2];
    random_bytes(&mut b);
    format!(
        "{}_{}",
        ADJ[b[0] as usize % ADJ.len()],
        NAMES[b[1] as usize % NAMES.len()]
    )
}

/// Whether `name` is valid as a DNS name component, as Swarm requires of object names.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks a placement constraint: `key==value` or `key!=value`, the key in Swarm's syntax.
pub fn check_constraint(expr: &str) -> Result<(), ConstraintError> {
    Constraint::parse(expr).map(|_| ())
}

fn check_duration(field: &str, v: Option<i64>) -> Result<(), ApiError> {
    match v {
        Some(d) if d < 0 => Err(bad(field, format!("duration must not be negative, got {d}"))),
        _ => Ok(()),
    }
}

fn check_container(cs: &ContainerSpec) -> Result<(), ApiError> {
    let f = "TaskTemplate.ContainerSpec";
    if cs.image.trim().is_empty() {
        return Err(bad(&format!("{f}.Image"), "image reference must be provided"));
    }
    if cs.image.chars().any(char::is_whitespace) {
        return Err(bad(
            &format!("{f}.Image"),
            format!("invalid image reference {:?}", cs.image),
        ));
    }
    check_duration(&format!("{f}.StopGracePeriod"), cs.stop_grace_period)?;
    if let Some(hc) = &cs.healthcheck {
        for (name, v) in [
            ("Interval", hc.interval),
            ("Timeout", hc.timeout),
            ("StartPeriod", hc.start_period),
            ("StartInterval", hc.start_interval),
        ] {
            check_duration(&format!("{f}.Healthcheck.{name}"), v)?;
        }
        if hc.retries.is_some_and(|r| r < 0) {
            return Err(bad(&format!("{f}.Healthcheck.Retries"), "must not be negative"));
        }
    }
    for (i, m) in cs.mounts.iter().flatten().enumerate() {
        let mf = format!("{f}.Mounts[{i}]");
        if m.target.is_empty() || !m.target.starts_with('/') {
            return Err(bad(&format!("{mf}.Target"), "must be an absolute path"));
        }
        match m.type_.as_str() {
            "bind" => {
                if !m.source.starts_with('/') {
                    return Err(bad(
                        &format!("{mf}.Source"),
                        "a bind mount needs an absolute source path",
                    ));
                }
            }
            "volume" | "" | "npipe" | "cluster" => {}
            "tmpfs" => {
                if !m.source.is_empty() {
                    return Err(bad(&format!("{mf}.Source"), "a tmpfs mount has no source"));
                }
            }
            other => {
                return Err(bad(
                    &format!("{mf}.Type"),
                    format!("unknown mount type {other:?} (expected bind, volume or tmpfs)"),
                ));
            }
        }
    }
    for (i, s) in cs.secrets.iter().flatten().enumerate() {
        if s.secret_id.is_empty() && s.secret_name.is_empty() {
            return Err(bad(&format!("{f}.Secrets[{i}]"), "SecretID or SecretName is required"));
        }
        check_file_owner(&format!("{f}.Secrets[{i}].File"), s.file.as_ref())?;
    }
    for (i, c) in cs.configs.iter().flatten().enumerate() {
        if c.config_id.is_empty() && c.config_name.is_empty() {
            return Err(bad(&format!("{f}.Configs[{i}]"), "ConfigID or ConfigName is required"));
        }
        check_file_owner(&format!("{f}.Configs[{i}].File"), c.file.as_ref())?;
    }
    Ok(())
}

/// A secret or config file's UID and GID are numbers (or empty, meaning root): the file is
/// written with that owner, so a name such as `nobody` would silently become root.
fn check_file_owner(field: &str, file: Option<&swarm_model::FileTarget>) -> Result<(), ApiError> {
    let Some(file) = file else { return Ok(()) };
    for (name, value) in [("UID", &file.uid), ("GID", &file.gid)] {
        if !value.is_empty() && value.parse::<u32>().is_err() {
            return Err(bad(
                &format!("{field}.{name}"),
                format!("{value:?} is not a numeric ID"),
            ));
        }
    }
    Ok(())
}

fn check_update_config(field: &str, u: &Option<UpdateConfig>) -> Result<(), ApiError> {
    let Some(u) = u else { return Ok(()) };
    check_duration(&format!("{field}.Delay"), Some(u.delay))?;
    check_duration(&format!("{field}.Monitor"), Some(u.monitor))?;
    if !["", "pause", "continue", "rollback"].contains(&u.failure_action.as_str()) {
        return Err(bad(
            &format!("{field}.FailureAction"),
            format!("{:?} is not one of pause, continue, rollback", u.failure_action),
        ));
    }
    if !["", "stop-first", "start-first"].contains(&u.order.as_str()) {
        return Err(bad(
            &format!("{field}.Order"),
            format!("{:?} is not one of stop-first, start-first", u.order),
        ));
    }
    if !(0.0..=1.0).contains(&u.max_failure_ratio) {
        return Err(bad(&format!("{field}.MaxFailureRatio"), "must be between 0 and 1"));
    }
    Ok(())
}

/// Refuses a spec Swarm would refuse, naming the field and the problem.
pub fn validate_service_spec(spec: &ServiceSpec) -> Result<(), ApiError> {
    if !valid_name(&spec.name) {
        return Err(bad(
            "Name",
            format!(
                "{:?} is not valid: names must be valid as a DNS name component \
                 (letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters)",
                spec.name
            ),
        ));
    }
    if spec.mode.count_set() != 1 {
        return Err(bad(
            "Mode",
            "exactly one of Replicated, Global, ReplicatedJob or GlobalJob must be set",
        ));
    }
    if let Some(job) = &spec.mode.replicated_job
        && job.max_concurrent == Some(0)
        && job.total_completions.unwrap_or(1) > 0
    {
        return Err(bad("Mode.ReplicatedJob.MaxConcurrent", "must be at least 1"));
    }
    let tt = &spec.task_template;
    if tt.plugin_spec.is_some() || tt.network_attachment_spec.is_some() {
        return Err(bad(
            "TaskTemplate",
            "only container tasks are supported (PluginSpec and NetworkAttachmentSpec are not)",
        ));
    }
    let cs = tt
        .container_spec
        .as_ref()
        .ok_or_else(|| bad("TaskTemplate.ContainerSpec", "must be provided"))?;
    check_container(cs)?;
    if !["", "container"].contains(&tt.runtime.as_str()) {
        return Err(bad(
            "TaskTemplate.Runtime",
            format!("{:?} is not supported (only \"container\")", tt.runtime),
        ));
    }
    if let Some(r) = &tt.resources {
        let neg = r
            .limits
            .as_ref()
            .is_some_and(|l| l.nano_cpus < 0 || l.memory_bytes < 0 || l.pids < 0)
            || r.reservations
                .as_ref()
                .is_some_and(|l| l.nano_cpus < 0 || l.memory_bytes < 0);
        if neg {
            return Err(bad(
                "TaskTemplate.Resources",
                "limits and reservations must not be negative",
            ));
        }
        for (i, g) in r
            .reservations
            .iter()
            .flat_map(|r| r.generic_resources.iter().flatten())
            .enumerate()
        {
            let field = format!("TaskTemplate.Resources.Reservations.GenericResources[{i}]");
            match (&g.named_resource_spec, &g.discrete_resource_spec) {
                (None, Some(d)) if !d.kind.is_empty() && d.value > 0 => {}
                (None, Some(d)) if d.kind.is_empty() => return Err(bad(&field, "Kind must be set")),
                (None, Some(d)) => {
                    return Err(bad(
                        &field,
                        format!("{} must be reserved at least once, not {}", d.kind, d.value),
                    ));
                }
                (Some(_), None) => {
                    return Err(bad(
                        &field,
                        "a reservation asks for a count (DiscreteResourceSpec), not a named resource",
                    ));
                }
                _ => {
                    return Err(bad(
                        &field,
                        "exactly one of NamedResourceSpec or DiscreteResourceSpec must be set",
                    ));
                }
            }
        }
    }
    if let Some(rp) = &tt.restart_policy {
        if !["", "none", "on-failure", "any"].contains(&rp.condition.as_str()) {
            return Err(bad(
                "TaskTemplate.RestartPolicy.Condition",
                format!("{:?} is not one of none, on-failure, any", rp.condition),
            ));
        }
        check_duration("TaskTemplate.RestartPolicy.Delay", rp.delay)?;
        check_duration("TaskTemplate.RestartPolicy.Window", rp.window)?;
    }
    if let Some(p) = &tt.placement {
        for (i, c) in p.constraints.iter().flatten().enumerate() {
            check_constraint(c).map_err(|e| bad(&format!("TaskTemplate.Placement.Constraints[{i}]"), e))?;
        }
        for (i, pref) in p.preferences.iter().flatten().enumerate() {
            let field = format!("TaskTemplate.Placement.Preferences[{i}]");
            let spread = pref
                .spread
                .as_ref()
                .ok_or_else(|| bad(&field, "only Spread preferences are supported"))?;
            let d = &spread.spread_descriptor;
            if !(d.starts_with("node.labels.") || d.starts_with("engine.labels.")) || d.ends_with('.') {
                return Err(bad(
                    &format!("{field}.Spread.SpreadDescriptor"),
                    format!("{d:?} must be node.labels.<key> or engine.labels.<key>"),
                ));
            }
        }
    }
    for (i, n) in tt
        .networks
        .iter()
        .flatten()
        .chain(spec.networks.iter().flatten())
        .enumerate()
    {
        if n.target.is_empty() {
            return Err(bad(
                &format!("TaskTemplate.Networks[{i}].Target"),
                "must name a network",
            ));
        }
    }
    check_update_config("UpdateConfig", &spec.update_config)?;
    check_update_config("RollbackConfig", &spec.rollback_config)?;
    if let Some(v) = spec.labels.get(swarm_model::PROXY_PROTOCOL_LABEL)
        && v != "v2"
    {
        return Err(bad(
            &format!("Labels[{}]", swarm_model::PROXY_PROTOCOL_LABEL),
            format!("{v:?} is not a PROXY protocol version swarm-rs sends; use v2"),
        ));
    }
    if let Some(ep) = &spec.endpoint_spec {
        if !["", "vip", "dnsrr"].contains(&ep.mode.as_str()) {
            return Err(bad(
                "EndpointSpec.Mode",
                format!("{:?} is not one of vip, dnsrr", ep.mode),
            ));
        }
        let mut published = std::collections::BTreeSet::new();
        for (i, p) in ep.ports.iter().flatten().enumerate() {
            let field = format!("EndpointSpec.Ports[{i}]");
            if p.target_port == 0 || p.target_port > 65535 {
                return Err(bad(&format!("{field}.TargetPort"), "must be between 1 and 65535"));
            }
            if p.published_port.is_some_and(|pp| pp > 65535) {
                return Err(bad(&format!("{field}.PublishedPort"), "must be between 0 and 65535"));
            }
            if !["", "tcp", "udp", "sctp"].contains(&p.protocol.as_str()) {
                return Err(bad(
                    &format!("{field}.Protocol"),
                    format!("{:?} is not one of tcp, udp, sctp", p.protocol),
                ));
            }
            if !["", "ingress", "host"].contains(&p.publish_mode.as_str()) {
                return Err(bad(
                    &format!("{field}.PublishMode"),
                    format!("{:?} is not one of ingress, host", p.publish_mode),
                ));
            }
            let ingress = p.publish_mode.is_empty() || p.publish_mode == "ingress";
            if ep.mode == "dnsrr" && ingress {
                return Err(bad(
                    &field,
                    "a port published with ingress mode can't be used with dnsrr mode",
                ));
            }
            if let Some(pp) = p.published_port.filter(|pp| *pp != 0) {
                let proto = if p.protocol.is_empty() {
                    "tcp"
                } else {
                    p.protocol.as_str()
                };
                if !published.insert((pp, proto.to_string())) {
                    return Err(bad(
                        &format!("{field}.PublishedPort"),
                        format!("port {pp}/{proto} is published twice"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use swarm_model::Placement;
    use swarm_model::ServiceMode;
    use swarm_model::TaskSpec;
    use swarm_model::defaults::normalize_service_spec;

    use super::*;

    fn spec(name: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.to_string(),
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
    fn secret_file_owners_must_be_numeric() {
        let mut s = spec("web");
        let file = |uid: &str| swarm_model::FileTarget {
            name: "db".into(),
            uid: uid.into(),
            gid: "".into(),
            mode: 0o400,
        };
        let cs = s.task_template.container_spec.as_mut().unwrap();
        cs.secrets = Some(vec![swarm_model::SecretReference {
            file: Some(file("1000")),
            secret_id: "id".into(),
            secret_name: "db".into(),
        }]);
        validate_service_spec(&s).unwrap();
        s.task_template
            .container_spec
            .as_mut()
            .unwrap()
            .secrets
            .as_mut()
            .unwrap()[0]
            .file = Some(file("nobody"));
        let err = validate_service_spec(&s).unwrap_err().to_string();
        assert!(
            err.contains("Secrets[0].File.UID: \"nobody\" is not a numeric ID"),
            "{err}"
        );
    }

    #[test]
    fn only_proxy_protocol_v2_is_offered() {
        let mut s = spec("web");
        s.labels.insert(swarm_model::PROXY_PROTOCOL_LABEL.into(), "v2".into());
        validate_service_spec(&s).unwrap();
        assert!(s.wants_proxy_protocol());
        s.labels.insert(swarm_model::PROXY_PROTOCOL_LABEL.into(), "v1".into());
        let e = validate_service_spec(&s).unwrap_err().message;
        assert!(
            e.contains("Labels[swarm-rs.proxy-protocol]: \"v1\" is not a PROXY protocol version"),
            "{e}"
        );
    }

    #[test]
    fn a_minimal_spec_is_valid_and_normalising_is_idempotent() {
        let mut s = spec("web");
        validate_service_spec(&s).unwrap();
        normalize_service_spec(&mut s);
        let once = s.clone();
        normalize_service_spec(&mut s);
        assert_eq!(s, once);
        assert_eq!(s.task_template.runtime, "container");
        assert_eq!(s.endpoint_spec.as_ref().unwrap().mode, "vip");
    }

    #[test]
    fn errors_name_the_field() {
        let mut s = spec("web");
        s.task_template.container_spec.as_mut().unwrap().image = String::new();
        let e = validate_service_spec(&s).unwrap_err();
        assert!(e.message.contains("TaskTemplate.ContainerSpec.Image"), "{}", e.message);

        let mut s = spec("web");
        s.mode.global = Some(Default::default());
        assert!(validate_service_spec(&s).unwrap_err().message.contains("Mode"));

        let mut s = spec("-bad");
        s.name = "-bad".into();
        assert!(validate_service_spec(&s).unwrap_err().message.contains("Name"));

        let mut s = spec("web");
        s.task_template.placement = Some(Placement {
            constraints: Some(vec!["node.role=manager".into()]),
            ..Default::default()
        });
        let e = validate_service_spec(&s).unwrap_err();
        assert!(e.message.contains("Constraints[0]"), "{}", e.message);
    }

    #[test]
    fn constraints_follow_swarm_syntax() {
        assert!(check_constraint("node.role == manager").is_ok());
        assert!(check_constraint("node.labels.zone!=east").is_ok());
        assert!(check_constraint("engine.labels.os==linux").is_ok());
        assert!(check_constraint("node.role==boss").is_err());
        assert!(check_constraint("foo.bar==1").is_err());
        assert!(check_constraint("node.id").is_err());
    }

    proptest! {
        #[test]
        fn valid_names_are_exactly_dns_components(name in "[a-zA-Z0-9._-]{0,70}") {
            let ok = valid_name(&name);
            let expected = !name.is_empty() && name.len() <= 63
                && name.chars().next().unwrap().is_ascii_alphanumeric()
                && name.chars().last().unwrap().is_ascii_alphanumeric();
            prop_assert_eq!(ok, expected);
        }
    }
}
