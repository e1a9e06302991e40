//! `swarmctl service update` and `service rollback`, with docker's flags: read the service,
//! change the spec as the flags say, write it back at the version read, and (without `-d`)
//! wait until it has converged, as the docker CLI does.

use clap::Args;
use serde_json::Value;
use swarm_model::ContainerSpec;
use swarm_model::HealthConfig;
use swarm_model::Limit;
use swarm_model::PlacementPreference;
use swarm_model::ResourceRequirements;
use swarm_model::Resources;
use swarm_model::RestartPolicy;
use swarm_model::Service;
use swarm_model::ServiceSpec;
use swarm_model::SpreadOver;
use swarm_model::UpdateConfig;

use super::CtlError;
use super::parse_labels;
use super::progress::wait_converged;
use super::units::parse_bytes;
use super::units::parse_cpus;
use super::units::parse_duration;
use crate::client::ApiClient;
use crate::client::encode_query;

/// Flags of one update config (`--update-*` or `--rollback-*`).
#[derive(Args, Default)]
pub struct UpdateConfigArgs {
    /// Slots updated at once (0: all).
    #[arg(long = "update-parallelism", id = "update_parallelism")]
    pub parallelism: Option<u64>,
    /// Pause between slots, e.g. `10s`.
    #[arg(long = "update-delay", id = "update_delay")]
    pub delay: Option<String>,
    /// How long a new task is watched for failure after it starts, e.g. `5s`.
    #[arg(long = "update-monitor", id = "update_monitor")]
    pub monitor: Option<String>,
    /// `pause`, `continue` or `rollback`.
    #[arg(long = "update-failure-action", id = "update_failure_action")]
    pub failure_action: Option<String>,
    /// Failures tolerated, as a fraction of the slots (0 to 1).
    #[arg(long = "update-max-failure-ratio", id = "update_max_failure_ratio")]
    pub max_failure_ratio: Option<f64>,
    /// `stop-first` or `start-first`.
    #[arg(long = "update-order", id = "update_order")]
    pub order: Option<String>,
}

/// The same flags for the rollback config.
#[derive(Args, Default)]
pub struct RollbackConfigArgs {
    #[arg(long = "rollback-parallelism", id = "rollback_parallelism")]
    pub parallelism: Option<u64>,
    #[arg(long = "rollback-delay", id = "rollback_delay")]
    pub delay: Option<String>,
    #[arg(long = "rollback-monitor", id = "rollback_monitor")]
    pub monitor: Option<String>,
    #[arg(long = "rollback-failure-action", id = "rollback_failure_action")]
    pub failure_action: Option<String>,
    #[arg(long = "rollback-max-failure-ratio", id = "rollback_max_failure_ratio")]
    pub max_failure_ratio: Option<f64>,
    #[arg(long = "rollback-order", id = "rollback_order")]
    pub order: Option<String>,
}

/// Healthcheck flags, as docker's.
#[derive(Args, Default, Clone)]
pub struct HealthArgs {
    /// Command run in the container to check its health (through the shell).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between checks, e.g. `30s`.
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Longest a check may take.
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make the container unhealthy.
    #[arg(long)]
    pub health_retries: Option<i64>,
    /// Time the container gets to start before failures count.
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable any healthcheck, the image's included.
    #[arg(long)]
    pub no_healthcheck: bool,
}

#[derive(Args)]
pub struct UpdateArgs {
    #[arg(long)]
    pub image: Option<String>,
    /// Add or change an environment variable, `KEY=VALUE` (repeatable).
    #[arg(long = "env-add")]
    pub env_add: Vec<String>,
    /// Remove an environment variable by name (repeatable).
    #[arg(long = "env-rm")]
    pub env_rm: Vec<String>,
    /// The command's arguments, as one string split like a shell would.
    #[arg(long, allow_hyphen_values = true)]
    pub args: Option<String>,
    #[arg(long)]
    pub replicas: Option<u64>,
    #[arg(long = "label-add")]
    pub label_add: Vec<String>,
    #[arg(long = "label-rm")]
    pub label_rm: Vec<String>,
    #[arg(long = "container-label-add")]
    pub container_label_add: Vec<String>,
    #[arg(long = "container-label-rm")]
    pub container_label_rm: Vec<String>,
    #[arg(long = "constraint-add")]
    pub constraint_add: Vec<String>,
    #[arg(long = "constraint-rm")]
    pub constraint_rm: Vec<String>,
    /// `spread=node.labels.KEY` (repeatable).
    #[arg(long = "placement-pref-add")]
    pub placement_pref_add: Vec<String>,
    #[arg(long = "placement-pref-rm")]
    pub placement_pref_rm: Vec<String>,
    #[arg(long)]
    pub reserve_cpu: Option<String>,
    #[arg(long)]
    pub limit_cpu: Option<String>,
    #[arg(long)]
    pub reserve_memory: Option<String>,
    #[arg(long)]
    pub limit_memory: Option<String>,
    #[arg(long)]
    pub restart_condition: Option<String>,
    #[arg(long)]
    pub restart_delay: Option<String>,
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    #[arg(long)]
    pub restart_window: Option<String>,
    #[command(flatten)]
    pub update: UpdateConfigArgs,
    #[command(flatten)]
    pub rollback_config: RollbackConfigArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    /// Replace every task even if nothing changed.
    #[arg(long)]
    pub force: bool,
    /// Go back to the previous spec.
    #[arg(long)]
    pub rollback: bool,
    /// Do not wait for the service to converge.
    #[arg(short = 'd', long)]
    pub detach: bool,
    pub service: String,
}

fn usage(e: impl ToString) -> CtlError {
    CtlError::Usage(e.to_string())
}

/// Splits `text` into words as docker's shlex does (the compose crate's splitter, shared with
/// `command:` in compose files).
pub fn shell_words(text: &str) -> Result<Vec<String>, CtlError> {
    swarm_compose::shell_split(text).map_err(|e| usage(format!("invalid --args {text:?}: {e}")))
}

/// The update config after the flags: the current one (or Swarm's defaults) with each given
/// flag applied, as the docker CLI does.
#[allow(clippy::too_many_arguments)]
fn apply_config(
    current: Option<UpdateConfig>,
    parallelism: Option<u64>,
    delay: &Option<String>,
    monitor: &Option<String>,
    failure_action: &Option<String>,
    max_failure_ratio: Option<f64>,
    order: &Option<String>,
    what: &str,
) -> Result<Option<UpdateConfig>, CtlError> {
    let given = parallelism.is_some()
        || delay.is_some()
        || monitor.is_some()
        || failure_action.is_some()
        || max_failure_ratio.is_some()
        || order.is_some();
    if !given {
        return Ok(current);
    }
    let mut c = current.unwrap_or(UpdateConfig {
        parallelism: 1,
        failure_action: "pause".to_string(),
        order: "stop-first".to_string(),
        ..Default::default()
    });
    if let Some(p) = parallelism {
        c.parallelism = p;
    }
    if let Some(d) = delay {
        c.delay = parse_duration(d).map_err(usage)?;
    }
    if let Some(m) = monitor {
        c.monitor = parse_duration(m).map_err(usage)?;
    }
    if let Some(a) = failure_action {
        if !["pause", "continue", "rollback"].contains(&a.as_str()) {
            return Err(usage(format!(
                "invalid --{what}-failure-action {a:?}: expected pause, continue or rollback"
            )));
        }
        c.failure_action = a.clone();
    }
    if let Some(r) = max_failure_ratio {
        if !(0.0..=1.0).contains(&r) {
            return Err(usage(format!(
                "invalid --{what}-max-failure-ratio {r}: must be between 0 and 1"
            )));
        }
        c.max_failure_ratio = r;
    }
    if let Some(o) = order {
        if !["stop-first", "start-first"].contains(&o.as_str()) {
            return Err(usage(format!(
                "invalid --{what}-order {o:?}: expected stop-first or start-first"
            )));
        }
        c.order = o.clone();
    }
    Ok(Some(c))
}

/// The healthcheck the flags ask for, if any.
pub fn health_of(h: &HealthArgs, current: Option<HealthConfig>) -> Result<Option<HealthConfig>, CtlError> {
    if h.no_healthcheck {
        return Ok(Some(HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..Default::default()
        }));
    }
    let given = h.health_cmd.is_some()
        || h.health_interval.is_some()
        || h.health_timeout.is_some()
        || h.health_retries.is_some()
        || h.health_start_period.is_some();
    if !given {
        return Ok(current);
    }
    let dur = |v: &Option<String>| v.as_deref().map(parse_duration).transpose().map_err(usage);
    let mut c = current.unwrap_or_default();
    if let Some(cmd) = &h.health_cmd {
        c.test = Some(vec!["CMD-SHELL".to_string(), cmd.clone()]);
    }
    if let Some(d) = dur(&h.health_interval)? {
        c.interval = Some(d);
    }
    if let Some(d) = dur(&h.health_timeout)? {
        c.timeout = Some(d);
    }
    if let Some(r) = h.health_retries {
        c.retries = Some(r);
    }
    if let Some(d) = dur(&h.health_start_period)? {
        c.start_period = Some(d);
    }
    Ok(Some(c))
}

fn spread(p: &str) -> Result<PlacementPreference, CtlError> {
    match p.split_once('=') {
        Some(("spread", d)) if !d.is_empty() => Ok(PlacementPreference {
            spread: Some(SpreadOver {
                spread_descriptor: d.to_string(),
            }),
        }),
        _ => Err(usage(format!(
            "invalid placement preference {p:?}: expected spread=node.labels.KEY"
        ))),
    }
}

/// The spec after the flags.
pub fn apply(mut spec: ServiceSpec, a: &UpdateArgs) -> Result<ServiceSpec, CtlError> {
    if let Some(n) = a.replicas {
        match spec.mode.replicated.as_mut() {
            Some(r) => r.replicas = Some(n),
            None => {
                return Err(usage(format!(
                    "--replicas can only be used with replicated mode, not {}",
                    spec.mode.describe()
                )));
            }
        }
    }
    for k in &a.label_rm {
        spec.labels.remove(k);
    }
    spec.labels.extend(parse_labels(&a.label_add)?);
    let tt = &mut spec.task_template;
    let cs = tt.container_spec.get_or_insert_with(ContainerSpec::default);
    if let Some(image) = &a.image {
        cs.image = image.clone();
    }
    if !a.env_add.is_empty() || !a.env_rm.is_empty() {
        let mut env = cs.env.take().unwrap_or_default();
        let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| !a.env_rm.contains(&key(e)));
        for add in &a.env_add {
            env.retain(|e| key(e) != key(add));
            env.push(add.clone());
        }
        cs.env = (!env.is_empty()).then_some(env);
    }
    if let Some(args) = &a.args {
        let words = shell_words(args)?;
        cs.args = (!words.is_empty()).then_some(words);
    }
    if !a.container_label_add.is_empty() || !a.container_label_rm.is_empty() {
        let mut labels = cs.labels.take().unwrap_or_default();
        for k in &a.container_label_rm {
            labels.remove(k);
        }
        labels.extend(parse_labels(&a.container_label_add)?);
        cs.labels = (!labels.is_empty()).then_some(labels);
    }
    cs.healthcheck = health_of(&a.health, cs.healthcheck.take())?;
    if !a.constraint_add.is_empty()
        || !a.constraint_rm.is_empty()
        || !a.placement_pref_add.is_empty()
        || !a.placement_pref_rm.is_empty()
    {
        let p = tt.placement.get_or_insert_with(Default::default);
        let mut constraints = p.constraints.take().unwrap_or_default();
        constraints.retain(|c| !a.constraint_rm.contains(c));
        for c in &a.constraint_add {
            if !constraints.contains(c) {
                constraints.push(c.clone());
            }
        }
        p.constraints = (!constraints.is_empty()).then_some(constraints);
        let mut prefs = p.preferences.take().unwrap_or_default();
        for r in &a.placement_pref_rm {
            let gone = spread(r)?;
            prefs.retain(|x| *x != gone);
        }
        for add in &a.placement_pref_add {
            prefs.push(spread(add)?);
        }
        p.preferences = (!prefs.is_empty()).then_some(prefs);
    }
    let cpus = |v: &Option<String>| v.as_deref().map(parse_cpus).transpose().map_err(usage);
    let bytes = |v: &Option<String>| v.as_deref().map(parse_bytes).transpose().map_err(usage);
    let (rc, lc, rm, lm) = (
        cpus(&a.reserve_cpu)?,
        cpus(&a.limit_cpu)?,
        bytes(&a.reserve_memory)?,
        bytes(&a.limit_memory)?,
    );
    if rc.is_some() || lc.is_some() || rm.is_some() || lm.is_some() {
        let r = tt.resources.get_or_insert_with(ResourceRequirements::default);
        let res = r.reservations.get_or_insert_with(Resources::default);
        if let Some(v) = rc {
            res.nano_cpus = v;
        }
        if let Some(v) = rm {
            res.memory_bytes = v;
        }
        let lim = r.limits.get_or_insert_with(Limit::default);
        if let Some(v) = lc {
            lim.nano_cpus = v;
        }
        if let Some(v) = lm {
            lim.memory_bytes = v;
        }
    }
    if a.restart_condition.is_some()
        || a.restart_delay.is_some()
        || a.restart_max_attempts.is_some()
        || a.restart_window.is_some()
    {
        let p = tt.restart_policy.get_or_insert_with(RestartPolicy::default);
        if let Some(c) = &a.restart_condition {
            p.condition = c.clone();
        }
        if let Some(d) = &a.restart_delay {
            p.delay = Some(parse_duration(d).map_err(usage)?);
        }
        if let Some(n) = a.restart_max_attempts {
            p.max_attempts = Some(n);
        }
        if let Some(w) = &a.restart_window {
            p.window = Some(parse_duration(w).map_err(usage)?);
        }
    }
    if a.force {
        tt.force_update += 1;
    }
    let u = &a.update;
    spec.update_config = apply_config(
        spec.update_config.take(),
        u.parallelism,
        &u.delay,
        &u.monitor,
        &u.failure_action,
        u.max_failure_ratio,
        &u.order,
        "update",
    )?;
    let r = &a.rollback_config;
    spec.rollback_config = apply_config(
        spec.rollback_config.take(),
        r.parallelism,
        &r.delay,
        &r.monitor,
        &r.failure_action,
        r.max_failure_ratio,
        &r.order,
        "rollback",
    )?;
    Ok(spec)
}

/// `service update`: change, write at the version read, then wait unless detached.
pub async fn update(client: &ApiClient, a: UpdateArgs) -> Result<(), CtlError> {
    let svc: Service = client
        .get(&format!("/services/{}?insertDefaults=false", encode_query(&a.service)))
        .await?;
    let spec = if a.rollback {
        svc.spec.clone()
    } else {
        apply(svc.spec.clone(), &a)?
    };
    let rollback = if a.rollback { "&rollback=previous" } else { "" };
    let path = format!("/services/{}/update?version={}{rollback}", svc.id, svc.version.index);
    let _: Value = client.post(&path, &spec).await?;
    println!("{}", a.service);
    if a.detach {
        return Ok(());
    }
    wait_converged(client, &svc.id, a.rollback).await
}

/// `service rollback`: back to the previous spec, with the rollback config.
pub async fn rollback(client: &ApiClient, service: &str, detach: bool) -> Result<(), CtlError> {
    let svc: Service = client
        .get(&format!("/services/{}?insertDefaults=false", encode_query(service)))
        .await?;
    let path = format!(
        "/services/{}/update?version={}&rollback=previous",
        svc.id, svc.version.index
    );
    let _: Value = client.post(&path, &svc.spec).await?;
    println!("{service}");
    if detach {
        return Ok(());
    }
    wait_converged(client, &svc.id, true).await
}

/// `SERVICE=REPLICAS`, as `service scale` takes it.
fn scale_spec(arg: &str) -> Result<(&str, u64), CtlError> {
    let bad = || CtlError::Usage(format!("invalid scale specifier {arg:?}: expected SERVICE=REPLICAS"));
    let (name, n) = arg.split_once('=').ok_or_else(bad)?;
    let n = n.parse().map_err(|_| bad())?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok((name, n))
}

/// `service scale`: every specifier is parsed before any service changes, then each one is
/// scaled; without `detach`, waits for each to converge.
pub async fn scale(client: &ApiClient, scales: &[String], detach: bool) -> Result<(), CtlError> {
    let wanted = scales.iter().map(|a| scale_spec(a)).collect::<Result<Vec<_>, _>>()?;
    let mut scaled = Vec::new();
    for (name, replicas) in wanted {
        let svc: Service = client
            .get(&format!("/services/{}?insertDefaults=false", encode_query(name)))
            .await?;
        let mut spec = svc.spec.clone();
        if let Some(r) = spec.mode.replicated.as_mut() {
            r.replicas = Some(replicas);
        } else if let Some(j) = spec.mode.replicated_job.as_mut() {
            j.total_completions = Some(replicas);
        } else {
            return Err(CtlError::Usage(format!(
                "{name}: scale can only be used with replicated or replicated-job mode"
            )));
        }
        let path = format!("/services/{}/update?version={}", svc.id, svc.version.index);
        let _: Value = client.post(&path, &spec).await?;
        println!("{name} scaled to {replicas}");
        scaled.push(svc.id);
    }
    if !detach {
        for id in scaled {
            wait_converged(client, &id, false).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_specifiers_name_a_service_and_a_count() {
        assert_eq!(scale_spec("web=3").unwrap(), ("web", 3));
        for bad in ["web", "web=x", "=3", "web=-1"] {
            let e = scale_spec(bad).unwrap_err().to_string();
            assert!(e.contains("invalid scale specifier") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn args_split_like_a_shell() {
        assert_eq!(shell_words("sleep 3600").unwrap(), vec!["sleep", "3600"]);
        assert_eq!(
            shell_words(r#"sh -c "echo 'hi there'""#).unwrap(),
            vec!["sh", "-c", "echo 'hi there'"]
        );
        assert_eq!(shell_words(r"a\ b ''").unwrap(), vec!["a b", ""]);
        assert!(shell_words("'open").is_err());
    }

    #[test]
    fn update_flags_change_only_what_they_name() {
        let mut spec = ServiceSpec {
            mode: swarm_model::ServiceMode::replicated(2),
            ..Default::default()
        };
        spec.task_template.container_spec = Some(ContainerSpec {
            image: "a:1".into(),
            env: Some(vec!["A=1".into(), "B=2".into()]),
            ..Default::default()
        });
        let cli = <super::super::Cli as clap::Parser>::try_parse_from([
            "swarmctl",
            "service",
            "update",
            "--image",
            "a:2",
            "--env-add",
            "B=3",
            "--env-rm",
            "A",
            "--update-parallelism",
            "2",
            "--update-order",
            "start-first",
            "--force",
            "web",
        ])
        .unwrap();
        let super::super::Command::Service(super::super::ServiceCmd::Update(a)) = cli.command else {
            panic!("not an update");
        };
        let out = apply(spec, &a).unwrap();
        let cs = out.task_template.container_spec.as_ref().unwrap();
        assert_eq!(cs.image, "a:2");
        assert_eq!(cs.env, Some(vec!["B=3".to_string()]));
        assert_eq!(out.task_template.force_update, 1);
        let u = out.update_config.unwrap();
        assert_eq!(
            (u.parallelism, u.order.as_str(), u.failure_action.as_str()),
            (2, "start-first", "pause")
        );
        assert_eq!(out.rollback_config, None);
        assert_eq!(out.mode.replicated.unwrap().replicas, Some(2));
    }
}
