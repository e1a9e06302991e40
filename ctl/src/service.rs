//! `swarmctl service …`: create, list, inspect, remove and the tasks of services.

use clap::Args;
use clap::Subcommand;
use serde_json::Value;
use swarm_model::ContainerSpec;
use swarm_model::DiscreteGenericResource;
use swarm_model::GenericResource;
use swarm_model::Limit;
use swarm_model::NetworkAttachmentConfig;
use swarm_model::Placement;
use swarm_model::PlacementPreference;
use swarm_model::ReplicatedJob;
use swarm_model::ResourceRequirements;
use swarm_model::Resources;
use swarm_model::RestartPolicy;
use swarm_model::Service;
use swarm_model::ServiceMode;
use swarm_model::ServiceSpec;
use swarm_model::SpreadOver;
use swarm_model::Task;
use swarm_model::TaskSpec;

use super::CtlError;
use super::ListArgs;
use super::check_format;
use super::endpoint::endpoint_spec_of;
use super::endpoint::parse_network;
use super::for_each;
use super::logs::LogsArgs;
use super::parse_labels;
use super::print_json;
use super::table;
use super::tasks::filters_query;
use super::tasks::print_tasks;
use super::units::parse_bytes;
use super::units::parse_cpus;
use super::units::parse_duration;
use super::update::HealthArgs;
use super::update::UpdateArgs;
use super::update::health_of;
use crate::client::ApiClient;
use crate::client::ClientError;
use crate::client::encode_query;

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Create a service.
    Create(Box<CreateArgs>),
    /// List services.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Show services in detail (JSON).
    Inspect { services: Vec<String> },
    /// Remove services.
    #[command(alias = "remove")]
    Rm { services: Vec<String> },
    /// Change a service; without -d, wait until its tasks run the new spec.
    Update(Box<UpdateArgs>),
    /// Set the replicas of replicated services, `SERVICE=REPLICAS` each; without -d, wait
    /// until they run.
    Scale {
        /// Do not wait for the services to converge.
        #[arg(short = 'd', long)]
        detach: bool,
        #[arg(required = true)]
        scales: Vec<String>,
    },
    /// Go back to a service's previous spec.
    Rollback {
        /// Do not wait for the service to converge.
        #[arg(short = 'd', long)]
        detach: bool,
        service: String,
    },
    /// Print the output of a service's tasks, or of one task.
    Logs(LogsArgs),
    /// List the tasks of services, with their history.
    Ps {
        #[arg(required = true)]
        services: Vec<String>,
        #[command(flatten)]
        list: ListArgs,
    },
}

/// `service create` flags, named as docker's.
#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub name: Option<String>,
    /// Number of tasks (replicated), or of completions (replicated-job).
    #[arg(long)]
    pub replicas: Option<u64>,
    /// `replicated`, `global`, `replicated-job` or `global-job`.
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Job tasks that may run at once (replicated-job; default: --replicas).
    #[arg(long)]
    pub max_concurrent: Option<u64>,
    /// Environment variable, `KEY=VALUE` (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Service label, `key=value` (repeatable).
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Container label, `key=value` (repeatable).
    #[arg(long = "container-label")]
    pub container_labels: Vec<String>,
    /// Placement constraint, e.g. `node.role==manager` (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    /// Placement preference, `spread=node.labels.KEY` (repeatable; one tree level each).
    #[arg(long = "placement-pref")]
    pub placement_prefs: Vec<String>,
    /// Most tasks of the service on one node (0 = no limit).
    #[arg(long)]
    pub replicas_max_per_node: Option<u64>,
    /// CPUs reserved per task, e.g. `0.5`.
    #[arg(long)]
    pub reserve_cpu: Option<String>,
    /// Memory reserved per task, e.g. `256m`.
    #[arg(long)]
    pub reserve_memory: Option<String>,
    /// CPU limit per task.
    #[arg(long)]
    pub limit_cpu: Option<String>,
    /// Memory limit per task.
    #[arg(long)]
    pub limit_memory: Option<String>,
    /// Generic resource reserved per task, `KIND=COUNT` (repeatable).
    #[arg(long = "generic-resource")]
    pub generic_resources: Vec<String>,
    /// `none`, `on-failure` or `any`.
    #[arg(long)]
    pub restart_condition: Option<String>,
    /// Wait before a restart, e.g. `5s`.
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Restarts allowed (0 = unlimited).
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window in which restart attempts count, e.g. `1m`.
    #[arg(long)]
    pub restart_window: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User inside the container.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Container hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Time to wait before killing a container, e.g. `10s`.
    #[arg(long)]
    pub stop_grace_period: Option<String>,
    /// Signal that stops a container.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Network to attach to: `NAME` or `name=NAME,alias=A` (repeatable).
    #[arg(long = "network")]
    pub networks: Vec<String>,
    /// Port to publish: `[PUBLISHED:]TARGET[/PROTO]` or `target=T,published=P,mode=host` (repeatable).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// How the service is reached: `vip` (a virtual IP) or `dnsrr` (its tasks' addresses).
    #[arg(long, value_parser = ["vip", "dnsrr"])]
    pub endpoint_mode: Option<String>,
    #[command(flatten)]
    pub health: HealthArgs,
    pub image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub async fn run(client: &ApiClient, cmd: ServiceCmd) -> Result<(), CtlError> {
    match cmd {
        ServiceCmd::Create(args) => service_create(client, *args).await,
        ServiceCmd::Ls(args) => service_ls(client, args).await,
        ServiceCmd::Update(args) => super::update::update(client, *args).await,
        ServiceCmd::Rollback { detach, service } => super::update::rollback(client, &service, detach).await,
        ServiceCmd::Scale { detach, scales } => super::update::scale(client, &scales, detach).await,
        ServiceCmd::Ps { services, list } => service_ps(client, services, list).await,
        ServiceCmd::Logs(args) => super::logs::run(client, args).await,
        ServiceCmd::Inspect { services } => {
            let mut out = Vec::new();
            for s in services {
                out.push(
                    client
                        .get::<Value>(&format!("/services/{}?insertDefaults=true", encode_query(&s)))
                        .await?,
                );
            }
            print_json(&out)
        }
        ServiceCmd::Rm { services } => {
            for_each(services, "remove", |s| async move {
                client.delete(&format!("/services/{}", encode_query(&s))).await?;
                println!("{s}");
                Ok(())
            })
            .await
        }
    }
}

fn usage(e: impl ToString) -> CtlError {
    CtlError::Usage(e.to_string())
}

fn mode_of(args: &CreateArgs) -> Result<ServiceMode, CtlError> {
    let no_replicas = |mode: &str| {
        if args.replicas.is_some() {
            Err(usage(format!(
                "--replicas can only be used with replicated or replicated-job mode, not {mode}"
            )))
        } else {
            Ok(())
        }
    };
    if args.max_concurrent.is_some() && args.mode != "replicated-job" {
        return Err(usage(
            "--max-concurrent can only be used with replicated-job mode".to_string(),
        ));
    }
    Ok(match args.mode.as_str() {
        "replicated" => ServiceMode::replicated(args.replicas.unwrap_or(1)),
        "global" => {
            no_replicas("global")?;
            ServiceMode {
                global: Some(Default::default()),
                ..Default::default()
            }
        }
        "replicated-job" => {
            let total = args.replicas.unwrap_or(1);
            ServiceMode {
                replicated_job: Some(ReplicatedJob {
                    max_concurrent: Some(args.max_concurrent.unwrap_or(total)),
                    total_completions: Some(total),
                }),
                ..Default::default()
            }
        }
        "global-job" => {
            no_replicas("global-job")?;
            ServiceMode {
                global_job: Some(Default::default()),
                ..Default::default()
            }
        }
        other => {
            return Err(usage(format!(
                "unknown --mode {other:?}: expected replicated, global, replicated-job or global-job"
            )));
        }
    })
}

fn placement_of(args: &CreateArgs) -> Result<Option<Placement>, CtlError> {
    let preferences = args
        .placement_prefs
        .iter()
        .map(|p| match p.split_once('=') {
            Some(("spread", d)) if !d.is_empty() => Ok(PlacementPreference {
                spread: Some(SpreadOver {
                    spread_descriptor: d.to_string(),
                }),
            }),
            _ => Err(usage(format!(
                "invalid --placement-pref {p:?}: expected spread=node.labels.KEY"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let placement = Placement {
        constraints: (!args.constraints.is_empty()).then(|| args.constraints.clone()),
        preferences: (!preferences.is_empty()).then_some(preferences),
        max_replicas: args.replicas_max_per_node.unwrap_or(0),
        platforms: None,
    };
    Ok((placement != Placement::default()).then_some(placement))
}

fn resources_of(args: &CreateArgs) -> Result<Option<ResourceRequirements>, CtlError> {
    let cpus = |v: &Option<String>| v.as_deref().map(parse_cpus).transpose().map_err(usage);
    let bytes = |v: &Option<String>| v.as_deref().map(parse_bytes).transpose().map_err(usage);
    let generic = args
        .generic_resources
        .iter()
        .map(|g| {
            let parsed = g
                .split_once('=')
                .and_then(|(k, v)| Some((k, v.parse::<i64>().ok()?)))
                .filter(|(k, v)| !k.is_empty() && *v > 0);
            match parsed {
                Some((kind, value)) => Ok(GenericResource {
                    named_resource_spec: None,
                    discrete_resource_spec: Some(DiscreteGenericResource {
                        kind: kind.to_string(),
                        value,
                    }),
                }),
                None => Err(usage(format!(
                    "invalid --generic-resource {g:?}: expected KIND=COUNT, e.g. gpu=1"
                ))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reservations = Resources {
        nano_cpus: cpus(&args.reserve_cpu)?.unwrap_or(0),
        memory_bytes: bytes(&args.reserve_memory)?.unwrap_or(0),
        generic_resources: (!generic.is_empty()).then_some(generic),
    };
    let limits = Limit {
        nano_cpus: cpus(&args.limit_cpu)?.unwrap_or(0),
        memory_bytes: bytes(&args.limit_memory)?.unwrap_or(0),
        pids: 0,
    };
    if reservations == Resources::default() && limits == Limit::default() {
        return Ok(None);
    }
    Ok(Some(ResourceRequirements {
        limits: Some(limits),
        reservations: Some(reservations),
    }))
}

fn restart_policy_of(args: &CreateArgs, job: bool) -> Result<Option<RestartPolicy>, CtlError> {
    let dur = |v: &Option<String>| v.as_deref().map(parse_duration).transpose().map_err(usage);
    let mut p = RestartPolicy {
        condition: args.restart_condition.clone().unwrap_or_default(),
        delay: dur(&args.restart_delay)?,
        max_attempts: args.restart_max_attempts,
        window: dur(&args.restart_window)?,
    };
    // Like docker: a job restarts only on failure unless told otherwise.
    if job && p.condition.is_empty() {
        p.condition = "on-failure".to_string();
    }
    Ok((p != RestartPolicy::default()).then_some(p))
}

fn networks_of(flags: &[String]) -> Result<Option<Vec<NetworkAttachmentConfig>>, CtlError> {
    let networks = flags.iter().map(|n| parse_network(n)).collect::<Result<Vec<_>, _>>()?;
    Ok((!networks.is_empty()).then_some(networks))
}

async fn service_create(client: &ApiClient, args: CreateArgs) -> Result<(), CtlError> {
    let mode = mode_of(&args)?;
    let grace = args
        .stop_grace_period
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(usage)?;
    let container_labels = parse_labels(&args.container_labels)?;
    let spec = ServiceSpec {
        name: args.name.clone().unwrap_or_default(),
        labels: parse_labels(&args.labels)?,
        task_template: TaskSpec {
            container_spec: Some(ContainerSpec {
                image: args.image.clone(),
                labels: (!container_labels.is_empty()).then_some(container_labels),
                args: (!args.command.is_empty()).then(|| args.command.clone()),
                env: (!args.env.is_empty()).then(|| args.env.clone()),
                dir: args.workdir.clone().unwrap_or_default(),
                user: args.user.clone().unwrap_or_default(),
                hostname: args.hostname.clone().unwrap_or_default(),
                stop_grace_period: grace,
                stop_signal: args.stop_signal.clone().unwrap_or_default(),
                healthcheck: health_of(&args.health, None)?,
                ..Default::default()
            }),
            placement: placement_of(&args)?,
            resources: resources_of(&args)?,
            restart_policy: restart_policy_of(&args, mode.is_job())?,
            networks: networks_of(&args.networks)?,
            ..Default::default()
        },
        mode,
        endpoint_spec: endpoint_spec_of(args.endpoint_mode.as_deref(), &args.publish)?,
        ..Default::default()
    };
    let resp: Value = client.post("/services/create", &spec).await?;
    println!("{}", resp["ID"].as_str().unwrap_or_default());
    Ok(())
}

/// The REPLICAS column: `running/desired`, with docker's additions for limits and jobs, and
/// swarm-rs' mark for tasks that cannot be placed.
fn replicas_column(s: &Service) -> String {
    let st = s.service_status.clone().unwrap_or_default();
    let mut out = format!("{}/{}", st.running_tasks, st.desired_tasks);
    let mode = &s.spec.mode;
    if let Some(job) = &mode.replicated_job {
        let total = job.total_completions.unwrap_or(0);
        out.push_str(&format!(" ({}/{total} completed)", st.completed_tasks));
    } else if mode.global_job.is_some() {
        let total = st.desired_tasks + st.completed_tasks;
        out.push_str(&format!(" ({}/{total} completed)", st.completed_tasks));
    }
    let max = s
        .spec
        .task_template
        .placement
        .as_ref()
        .map(|p| p.max_replicas)
        .unwrap_or(0);
    if max > 0 {
        out.push_str(&format!(" (max {max} per node)"));
    }
    if let Some(sched) = &s.scheduling_status {
        out.push_str(&format!(" [{} pending]", sched.pending_tasks));
    }
    out
}

async fn service_ls(client: &ApiClient, args: ListArgs) -> Result<(), CtlError> {
    check_format(&args.format)?;
    let mut services: Vec<Service> = client.get("/services?status=true").await?;
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    print_services(services, &args)
}

/// Prints services as `service ls` does (also used by `stack services`).
pub(super) fn print_services(services: Vec<Service>, args: &ListArgs) -> Result<(), CtlError> {
    if args.quiet {
        for s in &services {
            println!("{}", s.id);
        }
        return Ok(());
    }
    if args.format == "json" {
        return print_json(&services);
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let image = s
                .spec
                .task_template
                .container_spec
                .as_ref()
                .map(|c| c.image.split('@').next().unwrap_or_default().to_string())
                .unwrap_or_default();
            let ports = s
                .endpoint
                .ports
                .iter()
                .flatten()
                .map(|p| format!("*:{}->{}/{}", p.published_port.unwrap_or(0), p.target_port, p.protocol))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                s.id.chars().take(12).collect(),
                s.spec.name.clone(),
                s.spec.mode.describe().to_string(),
                replicas_column(s),
                image,
                ports,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], &rows)
    );
    Ok(())
}

async fn service_ps(client: &ApiClient, refs: Vec<String>, list: ListArgs) -> Result<(), CtlError> {
    check_format(&list.format)?;
    let mut ids = Vec::new();
    for r in &refs {
        let svc: Service = client
            .get(&format!("/services/{}", encode_query(r)))
            .await
            .map_err(|e| match e {
                ClientError::Api { status, .. } if status.as_u16() == 404 => {
                    CtlError::Usage(format!("no such service: {r}"))
                }
                other => other.into(),
            })?;
        ids.push(svc.id);
    }
    let tasks: Vec<Task> = client
        .get(&format!("/tasks?filters={}", filters_query("service", &ids)))
        .await?;
    print_tasks(client, tasks, &list).await
}

#[cfg(test)]
mod tests {
    use swarm_model::SchedulingStatus;
    use swarm_model::ServiceStatus;

    use super::*;

    #[test]
    fn replicas_show_limits_jobs_and_pending_tasks() {
        let mut s = Service::default();
        s.spec.mode = ServiceMode::replicated(4);
        s.spec.task_template.placement = Some(Placement {
            max_replicas: 1,
            ..Default::default()
        });
        s.service_status = Some(ServiceStatus {
            running_tasks: 3,
            desired_tasks: 4,
            completed_tasks: 0,
        });
        s.scheduling_status = Some(SchedulingStatus {
            pending_tasks: 1,
            reason: "no suitable node".into(),
        });
        assert_eq!(replicas_column(&s), "3/4 (max 1 per node) [1 pending]");
        let mut j = Service::default();
        j.spec.mode = ServiceMode {
            replicated_job: Some(ReplicatedJob {
                max_concurrent: Some(2),
                total_completions: Some(5),
            }),
            ..Default::default()
        };
        j.service_status = Some(ServiceStatus {
            running_tasks: 2,
            desired_tasks: 2,
            completed_tasks: 3,
        });
        assert_eq!(replicas_column(&j), "2/2 (3/5 completed)");
    }
}
