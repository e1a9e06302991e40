//! `swarmctl network …`: create, list, inspect and remove the swarm's overlay networks.

use clap::Subcommand;
use serde_json::Value;
use serde_json::json;
use swarm_model::Network;

use super::CtlError;
use super::FilteredListArgs;
use super::check_format;
use super::for_each;
use super::list_query;
use super::parse_labels;
use super::print_json;
use super::table;
use crate::client::ApiClient;
use crate::client::encode_query;

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network; prints its ID.
    Create {
        /// Network driver; a swarm-rs manager has `overlay` only.
        #[arg(short = 'd', long, default_value = "overlay")]
        driver: String,
        /// Let standalone containers attach too.
        #[arg(long)]
        attachable: bool,
        /// No access to the outside from the network.
        #[arg(long)]
        internal: bool,
        /// Make it the routing mesh's network (a swarm has one, made with the swarm).
        #[arg(long)]
        ingress: bool,
        /// Subnet in CIDR form, instead of the next free one of the cluster's pool.
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address inside the subnet, instead of its first address.
        #[arg(long)]
        gateway: Option<String>,
        /// Driver option, `key=value` (repeatable).
        #[arg(short = 'o', long = "opt")]
        opts: Vec<String>,
        /// Label, `key=value` (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls(FilteredListArgs),
    /// Show networks in detail (JSON).
    Inspect {
        /// Also show each service's virtual IP and its tasks' addresses and nodes.
        #[arg(short, long)]
        verbose: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a standalone container to an attachable network (as docker's; a swarm-rs
    /// manager answers why it cannot yet).
    Connect { network: String, container: String },
    /// Disconnect a standalone container from a network.
    Disconnect { network: String, container: String },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

pub async fn run(client: &ApiClient, cmd: NetworkCmd) -> Result<(), CtlError> {
    match cmd {
        NetworkCmd::Create {
            driver,
            attachable,
            internal,
            ingress,
            subnet,
            gateway,
            opts,
            labels,
            name,
        } => {
            let config = match (subnet, gateway) {
                (None, None) => json!([]),
                (None, Some(_)) => return Err(CtlError::Usage("--gateway needs --subnet".to_string())),
                (Some(subnet), gateway) => json!([{ "Subnet": subnet, "Gateway": gateway.unwrap_or_default() }]),
            };
            let body = json!({
                "Name": name,
                "Driver": driver,
                "Attachable": attachable,
                "Internal": internal,
                "Ingress": ingress,
                "IPAM": { "Driver": "default", "Config": config },
                "Options": parse_labels(&opts)
                    .map_err(|_| CtlError::Usage(format!("invalid --opt in {opts:?}: expected key=value")))?,
                "Labels": parse_labels(&labels)?,
            });
            let resp: Value = client.post("/networks/create", &body).await?;
            let id = resp["Id"]
                .as_str()
                .ok_or_else(|| CtlError::Usage(format!("the daemon's answer to network create has no Id: {resp}")))?;
            println!("{id}");
            Ok(())
        }
        NetworkCmd::Ls(args) => network_ls(client, args).await,
        NetworkCmd::Inspect { verbose, networks } => {
            let mut out = Vec::new();
            let query = if verbose { "?verbose=true" } else { "" };
            for n in networks {
                out.push(
                    client
                        .get::<Value>(&format!("/networks/{}{query}", encode_query(&n)))
                        .await?,
                );
            }
            print_json(&out)
        }
        NetworkCmd::Connect { network, container } => container_op(client, "connect", &network, &container).await,
        NetworkCmd::Disconnect { network, container } => container_op(client, "disconnect", &network, &container).await,
        NetworkCmd::Rm { networks } => {
            for_each(networks, "remove", |n| async move {
                client.delete(&format!("/networks/{}", encode_query(&n))).await?;
                println!("{n}");
                Ok(())
            })
            .await
        }
    }
}

/// `POST /networks/{network}/{verb}` for a standalone container.
async fn container_op(client: &ApiClient, verb: &str, network: &str, container: &str) -> Result<(), CtlError> {
    let _: Value = client
        .post(
            &format!("/networks/{}/{verb}", encode_query(network)),
            &json!({ "Container": container }),
        )
        .await?;
    Ok(())
}

/// The first 12 characters, as docker shows network IDs.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

async fn network_ls(client: &ApiClient, args: FilteredListArgs) -> Result<(), CtlError> {
    check_format(&args.list.format)?;
    let mut nets: Vec<Network> = client.get(&format!("/networks{}", list_query(&args.filters)?)).await?;
    nets.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    if args.list.quiet {
        // docker prints the short IDs here too.
        for n in &nets {
            println!("{}", short_id(&n.id));
        }
        return Ok(());
    }
    if args.list.format == "json" {
        return print_json(&nets);
    }
    print!("{}", render_ls(&nets));
    Ok(())
}

fn render_ls(nets: &[Network]) -> String {
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| vec![short_id(&n.id), n.name.clone(), n.driver.clone(), n.scope.clone()])
        .collect();
    table::render(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_in_the_table() {
        let n = Network {
            id: "4a31wc1zfzz8afliy2ztuqbg1".into(),
            name: "front".into(),
            driver: "overlay".into(),
            scope: "swarm".into(),
            ..Default::default()
        };
        assert_eq!(
            render_ls(&[n]),
            "NETWORK ID     NAME    DRIVER    SCOPE\n4a31wc1zfzz8   front   overlay   swarm\n"
        );
    }
}
