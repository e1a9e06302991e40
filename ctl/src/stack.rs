//! `swarmctl stack`: deploy a compose file as a stack, and list, inspect and remove stacks.
//!
//! Parsing and conversion are the `swarm-compose` crate's; this module only talks to the
//! Engine API, in docker's order: networks, secrets and configs, then services. Unlike docker,
//! the whole file is converted and every secret/config file read before anything is created,
//! so a bad file deploys nothing.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;

use clap::ArgAction;
use clap::Args;
use clap::Subcommand;
use serde_json::Value as Json;
use serde_json::json;
use swarm_compose::ComposeError;
use swarm_compose::Details;
use swarm_compose::FileObjectPlan;
use swarm_compose::NAMESPACE_LABEL;
use swarm_compose::StackPlan;
use swarm_compose::is_builtin_network;
use swarm_model::Network;
use swarm_model::Secret;
use swarm_model::SecretSpec;
use swarm_model::Service;
use swarm_model::ServiceSpec;
use swarm_model::Task;
use swarm_model::defaults::normalize_service_spec;

use super::CtlError;
use super::ListArgs;
use super::check_format;
use super::for_each;
use super::print_json;
use super::service::print_services;
use super::table;
use super::tasks::filters_query;
use super::tasks::print_tasks;
use crate::client::ApiClient;

#[derive(Subcommand)]
pub enum StackCmd {
    /// Deploy a new stack or update an existing one from compose files.
    Deploy(DeployArgs),
    /// Print the merged, interpolated compose file, as deploy would read it.
    Config {
        /// Compose file (repeatable; later files override earlier ones; `-` reads stdin).
        #[arg(short = 'c', long = "compose-file", required = true)]
        files: Vec<String>,
    },
    /// List stacks.
    Ls {
        /// `table` (default) or `json`.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// List the services of a stack.
    Services {
        #[command(flatten)]
        list: ListArgs,
        stack: String,
    },
    /// List the tasks of a stack.
    Ps {
        #[command(flatten)]
        list: ListArgs,
        stack: String,
    },
    /// Remove stacks: their services, secrets, configs and networks.
    Rm {
        #[arg(required = true)]
        stacks: Vec<String>,
    },
}

#[derive(Args)]
pub struct DeployArgs {
    /// Compose file (repeatable; later files override earlier ones; `-` reads stdin).
    #[arg(short = 'c', long = "compose-file", required = true)]
    pub files: Vec<String>,
    /// Remove services of the stack that are no longer in the files.
    #[arg(long)]
    pub prune: bool,
    /// Return at once (default), or with `--detach=false` wait until every service converged.
    #[arg(short = 'd', long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub detach: bool,
    /// Print what would be created, updated or removed, with a per-service diff; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted for docker compatibility; images are never resolved against a registry.
    #[arg(long, default_value = "never")]
    pub resolve_image: String,
    /// Accepted for docker compatibility; there are no private registries to log in to.
    #[arg(long)]
    pub with_registry_auth: bool,
    pub stack: String,
}

pub async fn run(client: &ApiClient, cmd: StackCmd) -> Result<(), CtlError> {
    match cmd {
        StackCmd::Deploy(args) => deploy(client, args).await,
        StackCmd::Config { files } => {
            let loaded = load(&files)?;
            print_warnings(&loaded.warnings);
            let text = swarm_compose::to_yaml(&loaded.config).map_err(compose)?;
            print!("{text}");
            Ok(())
        }
        StackCmd::Ls { format } => stack_ls(client, &format).await,
        StackCmd::Services { list, stack } => {
            check_format(&list.format)?;
            let services = stack_services(client, &stack).await?;
            if services.is_empty() && !list.quiet {
                return Err(CtlError::Usage(format!("nothing found in stack: {stack}")));
            }
            print_services(services, &list)
        }
        StackCmd::Ps { list, stack } => {
            check_format(&list.format)?;
            let services = stack_services(client, &stack).await?;
            if services.is_empty() {
                return Err(CtlError::Usage(format!("nothing found in stack: {stack}")));
            }
            let ids: Vec<String> = services.iter().map(|s| s.id.clone()).collect();
            let tasks: Vec<Task> = client
                .get(&format!("/tasks?filters={}", filters_query("service", &ids)))
                .await?;
            print_tasks(client, tasks, &list).await
        }
        StackCmd::Rm { stacks } => {
            for_each(stacks, "remove stack", |stack| async move {
                remove_stack(client, &stack).await
            })
            .await
        }
    }
}

fn compose(e: ComposeError) -> CtlError {
    CtlError::Usage(e.to_string())
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("{w}");
    }
}

/// Reads the files (`-` is stdin) and loads them with the process environment.
fn load(files: &[String]) -> Result<swarm_compose::Loaded, CtlError> {
    let mut texts = Vec::new();
    for f in files {
        let text = if f == "-" {
            std::io::read_to_string(std::io::stdin()).map_err(|e| CtlError::Usage(format!("cannot read stdin: {e}")))?
        } else {
            std::fs::read_to_string(f).map_err(|e| CtlError::Usage(format!("cannot read {f}: {e}")))?
        };
        texts.push((f.clone(), text));
    }
    let first = files.first().map(String::as_str).unwrap_or("-");
    let working_dir = if first == "-" {
        std::env::current_dir().unwrap_or_default()
    } else {
        let parent = Path::new(first).parent().map(Path::to_path_buf).unwrap_or_default();
        let parent = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        };
        std::path::absolute(&parent).unwrap_or(parent)
    };
    let details = Details {
        working_dir,
        files: texts,
        env: std::env::vars().collect(),
    };
    swarm_compose::load(&details).map_err(compose)
}

fn namespace_filter(stack: &str) -> String {
    filters_query("label", &[format!("{NAMESPACE_LABEL}={stack}")])
}

async fn stack_services(client: &ApiClient, stack: &str) -> Result<Vec<Service>, CtlError> {
    let mut services: Vec<Service> = client
        .get(&format!("/services?status=true&filters={}", namespace_filter(stack)))
        .await?;
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(services)
}

async fn stack_ls(client: &ApiClient, format: &str) -> Result<(), CtlError> {
    check_format(format)?;
    let filter = filters_query("label", &[NAMESPACE_LABEL.to_string()]);
    let services: Vec<Service> = client.get(&format!("/services?filters={filter}")).await?;
    let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
    for s in &services {
        if let Some(stack) = s.spec.labels.get(NAMESPACE_LABEL) {
            *stacks.entry(stack.clone()).or_default() += 1;
        }
    }
    if format == "json" {
        let list: Vec<Json> = stacks.iter().map(|(n, c)| json!({"Name": n, "Services": c})).collect();
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = stacks.iter().map(|(n, c)| vec![n.clone(), c.to_string()]).collect();
    print!("{}", table::render(&["NAME", "SERVICES"], &rows));
    Ok(())
}

/// A secret or config with its data read, ready to send.
struct Blob {
    kind: &'static str,
    spec: SecretSpec,
}

fn read_blobs(plans: &[FileObjectPlan], kind: &'static str) -> Result<Vec<Blob>, CtlError> {
    plans
        .iter()
        .map(|p| {
            let data = match &p.file {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| CtlError::Usage(format!("{kind} {}: open {}: {e}", p.name, path.display())))?,
                ),
                None => None,
            };
            Ok(Blob {
                kind,
                spec: SecretSpec {
                    name: p.name.clone(),
                    labels: p.labels.clone(),
                    data,
                    driver: p.driver.clone(),
                    templating: p.templating.clone(),
                },
            })
        })
        .collect()
}

/// What a deploy will do to one service.
enum ServiceChange {
    Create(ServiceSpec),
    Update {
        id: String,
        version: u64,
        spec: ServiceSpec,
        diff: Vec<String>,
    },
    Unchanged(String),
}

/// `name → (ID, version)` of the existing secrets or configs of those names.
async fn existing_blobs(
    client: &ApiClient,
    kind: &str,
    names: &[String],
) -> Result<BTreeMap<String, (String, u64)>, CtlError> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list: Vec<Secret> = client
        .get(&format!("/{kind}s?filters={}", filters_query("names", names)))
        .await?;
    Ok(list
        .into_iter()
        .map(|s| (s.spec.name, (s.id, s.version.index)))
        .collect())
}

/// Every secret (or config) name the deploy touches: those it creates and those its services use.
fn blob_names(plan: &StackPlan, blobs: &[Blob], kind: &str) -> Vec<String> {
    let mut names: BTreeSet<String> = blobs
        .iter()
        .filter(|b| b.kind == kind)
        .map(|b| b.spec.name.clone())
        .collect();
    for cs in plan
        .services
        .iter()
        .filter_map(|s| s.task_template.container_spec.as_ref())
    {
        match kind {
            "secret" => names.extend(cs.secrets.iter().flatten().map(|r| r.secret_name.clone())),
            _ => names.extend(cs.configs.iter().flatten().map(|r| r.config_name.clone())),
        }
    }
    names.into_iter().collect()
}

async fn deploy(client: &ApiClient, args: DeployArgs) -> Result<(), CtlError> {
    swarm_compose::validate_stack_name(&args.stack).map_err(compose)?;
    let stack = args.stack.as_str();
    let loaded = load(&args.files)?;
    print_warnings(&loaded.warnings);
    print_warnings(&swarm_compose::warnings(&loaded.config));
    let plan = swarm_compose::convert(&loaded.config, stack).map_err(compose)?;
    let mut blobs = read_blobs(&plan.secrets, "secret")?;
    blobs.extend(read_blobs(&plan.configs, "config")?);

    // What exists, read once; objects created below are added as their IDs come back.
    let existing = stack_services(client, stack).await?;
    let networks: Vec<Network> = client.get("/networks").await?;
    let mut secrets = existing_blobs(client, "secret", &blob_names(&plan, &blobs, "secret")).await?;
    let mut configs = existing_blobs(client, "config", &blob_names(&plan, &blobs, "config")).await?;
    check_external_networks(&plan, &networks)?;
    let wanted: BTreeSet<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    let to_prune: Vec<&Service> = match args.prune {
        true => existing
            .iter()
            .filter(|s| !wanted.contains(s.spec.name.as_str()))
            .collect(),
        false => Vec::new(),
    };
    let existing_networks: BTreeSet<&str> = networks.iter().map(|n| n.name.as_str()).collect();
    let missing_networks: Vec<_> = plan
        .networks
        .iter()
        .filter(|n| !existing_networks.contains(n.name.as_str()))
        .collect();

    if args.dry_run {
        for s in &to_prune {
            println!("Would remove service {}", s.spec.name);
        }
        for n in &missing_networks {
            println!("Would create network {}", n.name);
        }
        for b in &blobs {
            let known = if b.kind == "secret" { &secrets } else { &configs };
            let verb = if known.contains_key(&b.spec.name) {
                "update"
            } else {
                "create"
            };
            println!("Would {verb} {} {}", b.kind, b.spec.name);
        }
        for change in plan_services(&plan, &existing, &networks, &secrets, &configs, true)? {
            match change {
                ServiceChange::Create(spec) => println!("Would create service {}", spec.name),
                ServiceChange::Unchanged(name) => println!("Would leave service {name} unchanged"),
                ServiceChange::Update { spec, diff, .. } => {
                    println!("Would update service {}:", spec.name);
                    for line in diff {
                        println!("    {line}");
                    }
                }
            }
        }
        return Ok(());
    }

    for s in &to_prune {
        println!("Removing service {}", s.spec.name);
        client.delete(&format!("/services/{}", s.id)).await?;
    }
    for n in missing_networks {
        println!("Creating network {}", n.name);
        let mut body = json!({
            "Name": n.name,
            "Driver": n.driver,
            "Options": n.options,
            "Labels": n.labels,
            "Internal": n.internal,
            "Attachable": n.attachable,
        });
        if let Some((driver, subnets)) = &n.ipam {
            let config: Vec<Json> = subnets.iter().map(|s| json!({"Subnet": s})).collect();
            body["IPAM"] = json!({"Driver": driver, "Config": config});
        }
        let _: Json = client.post("/networks/create", &body).await?;
    }
    for b in &blobs {
        let known = if b.kind == "secret" { &mut secrets } else { &mut configs };
        match known.get(&b.spec.name) {
            Some((id, version)) => {
                println!("Updating {} {}", b.kind, b.spec.name);
                let path = format!("/{}s/{id}/update?version={version}", b.kind);
                let _: Json = client.post(&path, &b.spec).await?;
            }
            None => {
                println!("Creating {} {}", b.kind, b.spec.name);
                let created: Json = client.post(&format!("/{}s/create", b.kind), &b.spec).await?;
                let id = created["ID"].as_str().unwrap_or_default().to_string();
                known.insert(b.spec.name.clone(), (id, 0));
            }
        }
    }
    let mut touched = Vec::new();
    for change in plan_services(&plan, &existing, &networks, &secrets, &configs, false)? {
        match change {
            ServiceChange::Create(spec) => {
                println!("Creating service {}", spec.name);
                let _: Json = client.post("/services/create", &spec).await?;
                touched.push(spec.name);
            }
            ServiceChange::Update { id, version, spec, .. } => {
                println!("Updating service {} (id: {id})", spec.name);
                let _: Json = client
                    .post(&format!("/services/{id}/update?version={version}"), &spec)
                    .await?;
                touched.push(spec.name);
            }
            ServiceChange::Unchanged(name) => println!("Service {name} is unchanged"),
        }
    }
    if !args.detach {
        for name in &touched {
            super::progress::wait_converged(client, name, false).await?;
        }
    }
    Ok(())
}

fn check_external_networks(plan: &StackPlan, networks: &[Network]) -> Result<(), CtlError> {
    for name in &plan.external_networks {
        if is_builtin_network(name) {
            continue;
        }
        match networks.iter().find(|n| &n.name == name || &n.id == name) {
            None => {
                return Err(CtlError::Usage(format!(
                    "network {name:?} is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed"
                )));
            }
            Some(n) if n.scope != "swarm" => {
                return Err(CtlError::Usage(format!(
                    "network {name:?} is declared as external, but it is not in the right scope: {:?} instead of \"swarm\"",
                    n.scope
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Fills secret/config IDs and decides create, update or nothing for every service: a pure
/// decision over what the deploy read.
fn plan_services(
    plan: &StackPlan,
    existing: &[Service],
    networks: &[Network],
    secrets: &BTreeMap<String, (String, u64)>,
    configs: &BTreeMap<String, (String, u64)>,
    dry_run: bool,
) -> Result<Vec<ServiceChange>, CtlError> {
    let network_names: BTreeMap<&str, &str> = networks.iter().map(|n| (n.id.as_str(), n.name.as_str())).collect();
    let id_of = |known: &BTreeMap<String, (String, u64)>, kind: &str, name: &str| match known.get(name) {
        Some((id, _)) => Ok(id.clone()),
        None if dry_run => Ok(String::new()),
        None => Err(CtlError::Usage(format!("{kind} not found: {name}"))),
    };
    let mut out = Vec::new();
    for spec in &plan.services {
        let mut spec = spec.clone();
        if let Some(cs) = spec.task_template.container_spec.as_mut() {
            for r in cs.secrets.iter_mut().flatten() {
                r.secret_id = id_of(secrets, "secret", &r.secret_name)?;
            }
            for r in cs.configs.iter_mut().flatten() {
                r.config_id = id_of(configs, "config", &r.config_name)?;
            }
            // docker stores a credential spec's config by ID.
            if let Some(cred) = cs.privileges.as_mut().and_then(|p| p.credential_spec.as_mut())
                && !cred.config.is_empty()
            {
                cred.config = id_of(configs, "config", &cred.config)?;
            }
        }
        let Some(current) = existing.iter().find(|s| s.spec.name == spec.name) else {
            out.push(ServiceChange::Create(spec));
            continue;
        };
        spec.task_template.force_update = current.spec.task_template.force_update;
        let diff = spec_diff(&current.spec, &spec, &network_names);
        if diff.is_empty() {
            out.push(ServiceChange::Unchanged(spec.name));
        } else {
            out.push(ServiceChange::Update {
                id: current.id.clone(),
                version: current.version.index,
                spec,
                diff,
            });
        }
    }
    Ok(out)
}

/// Lines `path: old -> new` for what differs between the stored spec and the new one, after
/// the manager's defaults are applied to the new one and network IDs are read as names.
fn spec_diff(current: &ServiceSpec, next: &ServiceSpec, network_names: &BTreeMap<&str, &str>) -> Vec<String> {
    let mut current = current.clone();
    for n in current.task_template.networks.iter_mut().flatten() {
        if let Some(name) = network_names.get(n.target.as_str()) {
            n.target = name.to_string();
        }
    }
    let mut next = next.clone();
    normalize_service_spec(&mut next);
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    flatten("", &serde_json::to_value(&current).unwrap_or_default(), &mut before);
    flatten("", &serde_json::to_value(&next).unwrap_or_default(), &mut after);
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(unset)".to_string());
            format!("{k}: {} -> {}", show(before.get(k)), show(after.get(k)))
        })
        .collect()
}

fn flatten(prefix: &str, value: &Json, out: &mut BTreeMap<String, String>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                flatten(
                    &if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    },
                    v,
                    out,
                );
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Json::Null => {}
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

async fn remove_stack(client: &ApiClient, stack: &str) -> Result<(), CtlError> {
    let filter = namespace_filter(stack);
    let services = stack_services(client, stack).await?;
    let secrets: Vec<Secret> = client.get(&format!("/secrets?filters={filter}")).await?;
    let configs: Vec<Secret> = client.get(&format!("/configs?filters={filter}")).await?;
    let mut networks: Vec<Network> = client.get(&format!("/networks?filters={filter}")).await?;
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    // Docker's order: services, then secrets, configs and networks.
    let mut doomed: Vec<(&str, &str, String)> = Vec::new();
    doomed.extend(
        services
            .iter()
            .map(|s| ("service", s.spec.name.as_str(), format!("/services/{}", s.id))),
    );
    doomed.extend(
        secrets
            .iter()
            .map(|s| ("secret", s.spec.name.as_str(), format!("/secrets/{}", s.id))),
    );
    doomed.extend(
        configs
            .iter()
            .map(|c| ("config", c.spec.name.as_str(), format!("/configs/{}", c.id))),
    );
    doomed.extend(
        networks
            .iter()
            .map(|n| ("network", n.name.as_str(), format!("/networks/{}", n.id))),
    );
    if doomed.is_empty() {
        println!("Nothing found in stack: {stack}");
        return Ok(());
    }
    let mut failed = false;
    for (what, name, path) in doomed {
        println!("Removing {what} {name}");
        if let Err(e) = client.delete(&path).await {
            eprintln!("Failed to remove {what} {name}: {e}");
            failed = true;
        }
    }
    match failed {
        true => Err(CtlError::Partial(format!(
            "failed to remove some resources from stack: {stack}"
        ))),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_ignores_manager_defaults_and_network_ids() {
        let mut current = ServiceSpec {
            name: "s_web".into(),
            ..ServiceSpec::default()
        };
        current.task_template.networks = Some(vec![swarm_model::NetworkAttachmentConfig {
            target: "net-id".into(),
            ..Default::default()
        }]);
        let mut next = current.clone();
        next.task_template.networks.as_mut().unwrap()[0].target = "s_default".into();
        normalize_service_spec(&mut current);
        let names: BTreeMap<&str, &str> = [("net-id", "s_default")].into();
        assert!(spec_diff(&current, &next, &names).is_empty());
        next.labels.insert("a".into(), "b".into());
        assert_eq!(
            spec_diff(&current, &next, &names),
            vec!["Labels.a: (unset) -> \"b\"".to_string()]
        );
    }
}
