//! The service directory a node needs, as a pure function of the store: what its containers'
//! resolvers answer, where its virtual IPs send connections, and what its routing mesh
//! publishes. Pushed by the managers, like the overlay peers, so a name follows the store as
//! soon as the dispatcher sees a task start or stop.

use std::collections::BTreeSet;

use swarm_model::NetworkAttachment;
use swarm_model::Service;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_protocol::dispatcher::MeshPort;
use swarm_protocol::dispatcher::ServiceRecord;

use crate::ipam::address_of;
use crate::store::StoreState;
use crate::store::addresses::holds_addresses;
use crate::store::addresses::publishes_ingress;
use crate::store::addresses::wanted_networks;
use crate::store::ports::is_ingress;

/// Whether `t` takes new connections: it runs (healthy, if it has a healthcheck, since the
/// agent reports RUNNING only then) and nobody asked it to stop. A task told to stop leaves the
/// rotation at once, before its container gets the signal.
pub fn in_rotation(t: &Task) -> bool {
    t.status.state == TaskState::Running && t.desired_state == TaskState::Running
}

/// Node `node_id`'s address on ingress, while the routing mesh has anything to publish.
pub fn mesh_endpoint_for(s: &StoreState, node_id: &str) -> Option<NetworkAttachment> {
    if !mesh_active(s) {
        return None;
    }
    let ingress = s.ingress_network()?;
    s.nodes
        .get(node_id)?
        .attachments
        .iter()
        .flatten()
        .find(|a| a.network.id == ingress.id)
        .cloned()
}

/// What a node's `Directory` message holds: its records and its own ingress address.
pub fn node_directory(s: &StoreState, node_id: &str) -> (Vec<ServiceRecord>, Option<NetworkAttachment>) {
    (directory_for(s, node_id), mesh_endpoint_for(s, node_id))
}

/// Whether any service publishes a port through the routing mesh, so every node serves it.
pub fn mesh_active(s: &StoreState) -> bool {
    s.services.iter().any(publishes_ingress)
}

/// The records of node `node_id`: every service on a network that one of its tasks holds an
/// address on, and every service on `ingress` (the node's routing mesh serves them all).
pub fn directory_for(s: &StoreState, node_id: &str) -> Vec<ServiceRecord> {
    let ingress = s.ingress_network().map(|n| n.id.clone());
    let mut networks: BTreeSet<String> = s
        .tasks_by_node(node_id)
        .filter(|t| holds_addresses(t))
        .flat_map(|t| t.networks_attachments.iter().flatten())
        .map(|a| a.network.id.clone())
        .collect();
    networks.extend(ingress.clone());
    let mut out = Vec::new();
    for svc in s.services.iter() {
        out.extend(records_of(s, svc, &networks, ingress.as_deref()));
    }
    out.sort();
    out
}

/// The records of one service on the networks in `networks`.
fn records_of(s: &StoreState, svc: &Service, networks: &BTreeSet<String>, ingress: Option<&str>) -> Vec<ServiceRecord> {
    let own = svc
        .spec
        .task_template
        .networks
        .clone()
        .or_else(|| svc.spec.networks.clone())
        .unwrap_or_default();
    // A service whose networks are gone has no addresses to give out either.
    let Ok(wanted) = wanted_networks(s, &svc.spec.name, &own, publishes_ingress(svc)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (net, aliases) in wanted {
        if !networks.contains(&net.id) {
            continue;
        }
        let on_ingress = ingress == Some(net.id.as_str());
        let vip = svc
            .endpoint
            .virtual_ips
            .iter()
            .flatten()
            .find(|v| v.network_id == net.id)
            .and_then(|v| address_of(&v.addr));
        let addresses_here = |t: &Task| -> Vec<_> {
            t.networks_attachments
                .iter()
                .flatten()
                .filter(|a| a.network.id == net.id)
                .flat_map(|a| a.addresses.iter().filter_map(|c| address_of(c)))
                .collect()
        };
        let rotation: Vec<&Task> = s.tasks_by_service(&svc.id).filter(|t| in_rotation(t)).collect();
        let tasks: BTreeSet<_> = rotation.iter().flat_map(|t| addresses_here(t)).collect();
        let proxied: BTreeSet<_> = if on_ingress {
            rotation
                .iter()
                .filter(|t| t.wants_proxy_protocol())
                .flat_map(|t| addresses_here(t))
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut names = vec![svc.spec.name.clone()];
        for alias in aliases.into_iter().flatten() {
            if !names.contains(&alias) {
                names.push(alias);
            }
        }
        out.push(ServiceRecord {
            service_id: svc.id.clone(),
            network_id: net.id.clone(),
            ingress: on_ingress,
            names,
            vip,
            tasks: tasks.into_iter().collect(),
            proxied: proxied.into_iter().collect(),
            mesh_ports: if on_ingress { mesh_ports(svc) } else { Vec::new() },
        });
    }
    out
}

/// The service's tcp and udp ports published through the routing mesh.
fn mesh_ports(svc: &Service) -> Vec<MeshPort> {
    svc.endpoint
        .ports
        .iter()
        .flatten()
        .filter(|p| is_ingress(p))
        .filter_map(|p| {
            let udp = match p.protocol.as_str() {
                "" | "tcp" => false,
                "udp" => true,
                _ => return None,
            };
            Some(MeshPort {
                udp,
                published: u16::try_from(p.published_port?).ok()?,
                target: u16::try_from(p.target_port).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use swarm_model::EndpointSpec;
    use swarm_model::Network;
    use swarm_model::NetworkAttachmentConfig;
    use swarm_model::PortConfig;
    use swarm_model::StoreObject;
    use swarm_model::TaskStatus;

    use super::*;
    use crate::store::StoreAction;

    struct Fixture {
        state: StoreState,
        index: u64,
    }

    impl Fixture {
        fn ok(&mut self, action: StoreAction) {
            self.index += 1;
            if let Err(e) = self.state.apply_tx(self.index, vec![action], &mut Vec::new()) {
                panic!("refused: {e}");
            }
        }

        fn network(&mut self, id: &str, ingress: bool) {
            let n = Network {
                id: id.to_string(),
                name: id.to_string(),
                ingress,
                ..Default::default()
            };
            self.ok(StoreAction::Create(n.into_object()));
        }

        fn service(&mut self, id: &str, networks: &[&str], mode: &str, published: Option<u32>) {
            let mut s = Service {
                id: id.to_string(),
                ..Default::default()
            };
            s.spec.name = format!("stack_{id}");
            s.spec.task_template.networks = Some(
                networks
                    .iter()
                    .map(|n| NetworkAttachmentConfig {
                        target: n.to_string(),
                        aliases: Some(vec![id.to_string()]),
                        driver_opts: None,
                    })
                    .collect(),
            );
            s.spec.endpoint_spec = Some(EndpointSpec {
                mode: mode.to_string(),
                ports: published.map(|p| {
                    vec![PortConfig {
                        target_port: 80,
                        published_port: Some(p),
                        ..Default::default()
                    }]
                }),
            });
            self.ok(StoreAction::Create(s.into_object()));
        }

        /// A task of `service` on `node`, allocated, in `state`, wanted `desired`.
        fn task(&mut self, id: &str, service: &str, node: &str, state: TaskState, desired: TaskState) {
            let spec = self.state.services.get(service).map(|s| s.spec.task_template.clone());
            let task = Task {
                id: id.to_string(),
                service_id: service.to_string(),
                spec: spec.unwrap_or_default(),
                ..Default::default()
            };
            self.ok(StoreAction::Create(task.into_object()));
            self.status(id, TaskState::Pending);
            let mut t = self.state.tasks.get(id).cloned().unwrap_or_default();
            t.node_id = node.to_string();
            t.desired_state = desired;
            self.ok(StoreAction::Update(t.into_object()));
            self.status(id, state);
        }

        fn status(&mut self, id: &str, state: TaskState) {
            self.ok(StoreAction::TaskStatus {
                id: id.to_string(),
                status: TaskStatus {
                    state,
                    ..Default::default()
                },
            });
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    #[test]
    fn a_node_learns_the_services_of_its_networks_with_their_rotation() {
        let mut f = Fixture {
            state: StoreState::default(),
            index: 0,
        };
        f.network("ing", true); // 10.0.0.0/24
        f.network("back", false); // 10.0.1.0/24
        f.network("other", false); // 10.0.2.0/24
        f.service("db", &["back"], "", None); // VIP 10.0.1.2
        f.service("app", &["back"], "dnsrr", None);
        f.service("web", &["other"], "", Some(8080)); // VIPs 10.0.0.2, 10.0.2.2
        f.task("db1", "db", "n1", TaskState::Running, TaskState::Running); // 10.0.1.3
        f.task("db2", "db", "n2", TaskState::Running, TaskState::Running); // 10.0.1.4
        f.task("db3", "db", "n2", TaskState::Running, TaskState::Shutdown); // 10.0.1.5, leaving
        f.task("db4", "db", "n2", TaskState::Starting, TaskState::Running); // 10.0.1.6, not yet
        f.task("app1", "app", "n2", TaskState::Running, TaskState::Running); // 10.0.1.7

        let n1 = directory_for(&f.state, "n1");
        let db = n1.iter().find(|r| r.service_id == "db").unwrap();
        assert_eq!(db.names, vec!["stack_db", "db"], "the stack's short name is an alias");
        assert_eq!(db.vip, Some(ip("10.0.1.2")));
        assert_eq!(
            db.tasks,
            vec![ip("10.0.1.3"), ip("10.0.1.4")],
            "a task told to stop, or not running yet, takes no connections"
        );
        let app = n1.iter().find(|r| r.service_id == "app").unwrap();
        assert_eq!(
            (app.vip, app.tasks.clone()),
            (None, vec![ip("10.0.1.7")]),
            "dnsrr: no VIP"
        );
        // n1 has nothing on `other`, but serves web's published port on ingress.
        let web: Vec<_> = n1.iter().filter(|r| r.service_id == "web").collect();
        assert_eq!(web.len(), 1);
        assert!(web[0].ingress);
        assert_eq!(web[0].vip, Some(ip("10.0.0.2")));
        assert_eq!(
            web[0].mesh_ports,
            vec![MeshPort {
                udp: false,
                published: 8080,
                target: 80,
            }]
        );
        // A node with no task only has the mesh.
        let n3 = directory_for(&f.state, "n3");
        assert!(n3.iter().all(|r| r.ingress), "{n3:?}");
    }
}
