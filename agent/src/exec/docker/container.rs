//! What container a task becomes: its name, labels, mounts, resources and healthcheck, as the
//! engine's create body. Pure: no engine, no files.

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use bollard::models::HealthConfig;
use bollard::models::HostConfig;
use bollard::models::HostConfigIsolationEnum;
use bollard::models::HostConfigLogConfig;
use bollard::models::Mount;
use bollard::models::MountBindOptions;
use bollard::models::MountBindOptionsPropagationEnum;
use bollard::models::MountTmpfsOptions;
use bollard::models::MountType;
use bollard::models::MountVolumeOptions;
use bollard::models::MountVolumeOptionsDriverConfig;
use bollard::models::ResourcesUlimits;
use swarm_model::Privileges;
use swarm_model::Task;
use swarm_model::defaults::DEFAULT_STOP_GRACE_PERIOD;

use crate::exec::service_name;

pub const LABEL_NODE: &str = "com.docker.swarm.node.id";
pub const LABEL_SERVICE_ID: &str = "com.docker.swarm.service.id";
pub const LABEL_SERVICE_NAME: &str = "com.docker.swarm.service.name";
pub const LABEL_TASK_ID: &str = "com.docker.swarm.task.id";
pub const LABEL_TASK_NAME: &str = "com.docker.swarm.task.name";

/// `name` → `name:latest` unless the reference has a tag or a digest.
pub fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Stop timeouts beyond a day are clamped (the engine takes seconds as a 32-bit integer).
pub fn grace_secs(grace_ns: i64) -> i64 {
    (grace_ns.max(0).saturating_add(999_999_999) / 1_000_000_000).min(86_400)
}

/// The container's labels: the spec's, then dockerd's swarm labels, which the executor finds
/// its containers by.
pub fn labels(task: &Task, node_id: &str, name: &str) -> HashMap<String, String> {
    let spec = task.spec.container_spec.clone().unwrap_or_default();
    let mut labels: HashMap<String, String> = spec.labels.unwrap_or_default().into_iter().collect();
    labels.insert(LABEL_NODE.to_string(), node_id.to_string());
    labels.insert(LABEL_SERVICE_ID.to_string(), task.service_id.clone());
    labels.insert(LABEL_SERVICE_NAME.to_string(), service_name(task));
    labels.insert(LABEL_TASK_ID.to_string(), task.id.clone());
    labels.insert(LABEL_TASK_NAME.to_string(), name.to_string());
    labels.insert("com.docker.swarm.task".to_string(), String::new());
    labels
}

/// A part of a task's spec that cannot be given to the engine. The task is rejected with this
/// message rather than started without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerSpecError {
    #[error("Privileges.CredentialSpec: credential specs apply to Windows containers only, and this node runs {os}")]
    CredentialSpec { os: &'static str },
    #[error("Privileges.Seccomp.Mode: unknown mode {0:?} (expected default, unconfined or custom)")]
    SeccompMode(String),
    #[error("Privileges.Seccomp: mode custom needs a Profile")]
    SeccompProfile,
    #[error("Privileges.AppArmor.Mode: unknown mode {0:?} (expected default or disabled)")]
    AppArmorMode(String),
    #[error("Mounts: bind propagation {0:?} is not one of private, rprivate, shared, rshared, slave, rslave")]
    Propagation(String),
    #[error("Isolation: unknown isolation {0:?} (expected default, process or hyperv)")]
    Isolation(String),
}

fn propagation_of(p: &str) -> Option<MountBindOptionsPropagationEnum> {
    use MountBindOptionsPropagationEnum as P;
    Some(match p {
        "private" => P::PRIVATE,
        "rprivate" => P::RPRIVATE,
        "shared" => P::SHARED,
        "rshared" => P::RSHARED,
        "slave" => P::SLAVE,
        "rslave" => P::RSLAVE,
        _ => return None,
    })
}

fn isolation_of(i: &str) -> Option<HostConfigIsolationEnum> {
    Some(match i {
        "default" => HostConfigIsolationEnum::DEFAULT,
        "process" => HostConfigIsolationEnum::PROCESS,
        "hyperv" => HostConfigIsolationEnum::HYPERV,
        _ => return None,
    })
}

/// The engine's `SecurityOpt` for a task's privileges, as Swarm's executor writes them.
pub fn security_opts(privileges: &Privileges) -> Result<Vec<String>, ContainerSpecError> {
    let mut opts = Vec::new();
    if privileges.credential_spec.is_some() {
        return Err(ContainerSpecError::CredentialSpec {
            os: swarm_protocol::host::os(),
        });
    }
    if let Some(se) = &privileges.selinux_context {
        if se.disable {
            opts.push("label=disable".to_string());
        }
        for (what, value) in [
            ("user", &se.user),
            ("role", &se.role),
            ("type", &se.type_),
            ("level", &se.level),
        ] {
            if !value.is_empty() {
                opts.push(format!("label={what}:{value}"));
            }
        }
    }
    if let Some(seccomp) = &privileges.seccomp {
        match seccomp.mode.as_str() {
            "" | "default" => {}
            "unconfined" => opts.push("seccomp=unconfined".to_string()),
            "custom" => match seccomp.profile.as_deref() {
                Some(profile) if !profile.is_empty() => opts.push(format!("seccomp={profile}")),
                _ => return Err(ContainerSpecError::SeccompProfile),
            },
            other => return Err(ContainerSpecError::SeccompMode(other.to_string())),
        }
    }
    if let Some(apparmor) = &privileges.app_armor {
        match apparmor.mode.as_str() {
            "" | "default" => {}
            "disabled" => opts.push("apparmor=unconfined".to_string()),
            other => return Err(ContainerSpecError::AppArmorMode(other.to_string())),
        }
    }
    if privileges.no_new_privileges {
        opts.push("no-new-privileges=true".to_string());
    }
    Ok(opts)
}

/// The engine's mount for a spec's mount: every option the engine knows.
fn engine_mount(m: swarm_model::Mount) -> Result<Mount, ContainerSpecError> {
    let bind_options = match m.bind_options {
        None => None,
        Some(b) => Some(MountBindOptions {
            propagation: match b.propagation.as_str() {
                "" => None,
                p => Some(propagation_of(p).ok_or_else(|| ContainerSpecError::Propagation(p.to_string()))?),
            },
            non_recursive: Some(b.non_recursive),
            create_mountpoint: Some(b.create_mountpoint),
            read_only_non_recursive: Some(b.read_only_non_recursive),
            read_only_force_recursive: Some(b.read_only_force_recursive),
        }),
    };
    Ok(Mount {
        target: Some(m.target),
        source: (!m.source.is_empty()).then_some(m.source),
        typ: Some(match m.type_.as_str() {
            "bind" => MountType::BIND,
            "tmpfs" => MountType::TMPFS,
            "npipe" => MountType::NPIPE,
            _ => MountType::VOLUME,
        }),
        read_only: Some(m.read_only),
        consistency: (!m.consistency.is_empty()).then_some(m.consistency),
        bind_options,
        volume_options: m.volume_options.map(|v| MountVolumeOptions {
            no_copy: Some(v.no_copy),
            labels: v.labels.map(|l| l.into_iter().collect()),
            driver_config: v.driver_config.map(|d| MountVolumeOptionsDriverConfig {
                name: (!d.name.is_empty()).then_some(d.name),
                options: d.options.map(|o| o.into_iter().collect()),
            }),
            subpath: (!v.subpath.is_empty()).then_some(v.subpath),
        }),
        tmpfs_options: m.tmpfs_options.map(|t| MountTmpfsOptions {
            size_bytes: t.size_bytes,
            mode: t.mode.map(i64::from),
            options: t.options,
        }),
        ..Default::default()
    })
}

/// Adds mounts after the spec's own, e.g. those that put a task's secrets and configs in place.
pub fn add_mounts(body: &mut ContainerCreateBody, extra: Vec<Mount>) {
    if extra.is_empty() {
        return;
    }
    let host = body.host_config.get_or_insert_with(HostConfig::default);
    host.mounts.get_or_insert_with(Vec::new).extend(extra);
}

/// The container to create for `task` on `node_id`, named `name`.
pub fn create_body(task: &Task, node_id: &str, name: &str) -> Result<ContainerCreateBody, ContainerSpecError> {
    let spec = task.spec.container_spec.clone().unwrap_or_default();
    let mounts = spec
        .mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(engine_mount)
        .collect::<Result<Vec<_>, _>>()?;
    let resources = task.spec.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let grace_ns = spec.stop_grace_period.unwrap_or(DEFAULT_STOP_GRACE_PERIOD);
    let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
        test: h.test.clone(),
        interval: h.interval,
        timeout: h.timeout,
        retries: h.retries,
        start_period: h.start_period,
        start_interval: h.start_interval,
    });
    let dns = spec.dns_config.clone().unwrap_or_default();
    let security_opt = match &spec.privileges {
        Some(p) => security_opts(p)?,
        None => Vec::new(),
    };
    let isolation = match spec.isolation.as_str() {
        "" => None,
        i => Some(isolation_of(i).ok_or_else(|| ContainerSpecError::Isolation(i.to_string()))?),
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: (!spec.hostname.is_empty()).then(|| spec.hostname.clone()),
        user: (!spec.user.is_empty()).then(|| spec.user.clone()),
        working_dir: (!spec.dir.is_empty()).then(|| spec.dir.clone()),
        env: spec.env.clone(),
        entrypoint: spec.command.clone(),
        cmd: spec.args.clone(),
        tty: Some(spec.tty),
        open_stdin: Some(spec.open_stdin),
        labels: Some(labels(task, node_id, name)),
        stop_signal: (!spec.stop_signal.is_empty()).then(|| spec.stop_signal.clone()),
        stop_timeout: Some(grace_secs(grace_ns)),
        healthcheck,
        host_config: Some(HostConfig {
            mounts: (!mounts.is_empty()).then_some(mounts),
            nano_cpus: (limits.nano_cpus > 0).then_some(limits.nano_cpus),
            memory: (limits.memory_bytes > 0).then_some(limits.memory_bytes),
            pids_limit: (limits.pids > 0).then_some(limits.pids),
            init: spec.init.filter(|i| *i),
            cap_add: spec.capability_add.clone(),
            cap_drop: spec.capability_drop.clone(),
            sysctls: spec.sysctls.clone().map(|s| s.into_iter().collect()),
            ulimits: spec.ulimits.clone().map(|u| {
                u.into_iter()
                    .map(|u| ResourcesUlimits {
                        name: Some(u.name),
                        soft: Some(u.soft),
                        hard: Some(u.hard),
                    })
                    .collect()
            }),
            extra_hosts: spec.hosts.clone().map(|hosts| {
                // Swarm writes "IP host", dockerd wants "host:IP".
                hosts
                    .into_iter()
                    .filter_map(|h| {
                        let mut parts = h.split_whitespace();
                        let ip = parts.next()?;
                        Some(parts.map(|name| format!("{name}:{ip}")).collect::<Vec<_>>())
                    })
                    .flatten()
                    .collect()
            }),
            dns: dns.nameservers,
            dns_search: dns.search,
            dns_options: dns.options,
            readonly_rootfs: spec.read_only.then_some(true),
            group_add: spec.groups.clone(),
            oom_score_adj: spec.oom_score_adj,
            security_opt: (!security_opt.is_empty()).then_some(security_opt),
            // The task's log driver (the dispatcher fills in the cluster's default); without
            // one, the engine's own default applies.
            log_config: task.spec.log_driver.as_ref().map(|d| HostConfigLogConfig {
                typ: Some(d.name.clone()),
                config: d.options.clone().map(|o| o.into_iter().collect()),
            }),
            isolation,
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_images_get_latest() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(with_default_tag("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(with_default_tag("localhost:5000/app:v2"), "localhost:5000/app:v2");
        assert_eq!(with_default_tag("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn grace_periods_round_up_and_clamp() {
        assert_eq!(grace_secs(1), 1);
        assert_eq!(grace_secs(10_000_000_000), 10);
        assert_eq!(grace_secs(i64::MAX), 86_400);
        assert_eq!(grace_secs(-5), 0);
    }

    fn task() -> Task {
        let mut t = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            slot: 2,
            ..Task::default()
        };
        t.service_annotations = Some(swarm_model::Annotations {
            name: "web".into(),
            ..Default::default()
        });
        t.spec.container_spec = Some(swarm_model::ContainerSpec {
            image: "busybox".into(),
            hosts: Some(vec!["10.0.0.1 db cache".into()]),
            labels: Some([("team".to_string(), "a".to_string())].into()),
            mounts: Some(vec![swarm_model::Mount {
                type_: "tmpfs".into(),
                target: "/scratch".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        t
    }

    #[test]
    fn a_task_becomes_a_container_labelled_like_dockerds() {
        let t = task();
        let name = crate::exec::task_name(&t);
        assert_eq!(name, "web.2.t1");
        let secret = Mount {
            target: Some("/run/secrets/db".into()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        };
        let mut body = create_body(&t, "n1", &name).unwrap();
        add_mounts(&mut body, vec![secret.clone()]);
        let labels = body.labels.unwrap_or_default();
        assert_eq!(labels.get(LABEL_NODE).map(String::as_str), Some("n1"));
        assert_eq!(labels.get(LABEL_TASK_NAME).map(String::as_str), Some("web.2.t1"));
        assert_eq!(labels.get(LABEL_SERVICE_NAME).map(String::as_str), Some("web"));
        assert_eq!(
            labels.get("team").map(String::as_str),
            Some("a"),
            "the spec's labels stay"
        );
        let host = body.host_config.unwrap_or_default();
        // Swarm's "IP host..." lines become dockerd's host:IP entries.
        assert_eq!(
            host.extra_hosts,
            Some(vec!["db:10.0.0.1".to_string(), "cache:10.0.0.1".to_string()])
        );
        let mounts = host.mounts.unwrap_or_default();
        assert_eq!(mounts.len(), 2, "the spec's mount, then the task's files");
        assert_eq!(mounts[0].typ, Some(MountType::TMPFS));
        assert_eq!(mounts[1], secret);
        assert_eq!(body.stop_timeout, Some(10), "Swarm's default grace period");
        assert_eq!(host.memory, None, "no limit asked, none set");
    }
}
