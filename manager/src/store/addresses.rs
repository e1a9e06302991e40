//! Overlay addresses for tasks and virtual IPs for services, as Swarm's allocator gives them.
//!
//! Runs inside the state machine, as subnet and port allocation do: every manager hands out the
//! same address, two tasks can never hold one address, and addresses survive a leader change
//! because they live in the replicated objects. A task gets one address on each network its
//! service names (and on `ingress` when the service publishes ingress ports) when it leaves
//! NEW; a service in `vip` mode gets one virtual IP per such network. An address is free again
//! once its task is dead (stopped and not wanted running) or removed, and a virtual IP once its
//! service leaves the network or is removed. The task keeps showing the address it had.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use swarm_model::Network;
use swarm_model::NetworkAttachment;
use swarm_model::NetworkAttachmentConfig;
use swarm_model::Node;
use swarm_model::Service;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::VirtualIp;

use super::state::StoreState;
use crate::ipam::Ipv4Net;
use crate::ipam::address_of;
use crate::ipam::pick_address;

/// Why a task or service cannot have its addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("network {0} not found")]
    NetworkNotFound(String),
    #[error("network {name} has no subnet")]
    NoSubnet { name: String },
    #[error("network {name} ({subnet}) has no free address left")]
    Exhausted { name: String, subnet: String },
    #[error("service {service} publishes ingress ports, but no ingress network is present")]
    NoIngress { service: String },
}

/// The addresses in use on each network (by network ID), for picking free ones quickly.
/// Derived from the tasks and services, so it is rebuilt, not stored.
#[derive(Debug, Clone, Default)]
pub struct AddressIndex {
    held: BTreeMap<String, BTreeSet<u32>>,
}

static NONE_HELD: BTreeSet<u32> = BTreeSet::new();

impl AddressIndex {
    /// The addresses held on `network_id`.
    pub fn held(&self, network_id: &str) -> &BTreeSet<u32> {
        self.held.get(network_id).unwrap_or(&NONE_HELD)
    }

    pub(crate) fn add_task(&mut self, t: &Task) {
        self.hold(task_addresses(t));
    }

    pub(crate) fn remove_task(&mut self, t: &Task) {
        self.release(task_addresses(t));
    }

    pub(crate) fn add_node(&mut self, n: &Node) {
        self.hold(attachment_addresses(n.attachments.iter().flatten()));
    }

    pub(crate) fn remove_node(&mut self, n: &Node) {
        self.release(attachment_addresses(n.attachments.iter().flatten()));
    }

    pub(crate) fn add_service(&mut self, s: &Service) {
        self.hold(service_addresses(s));
    }

    pub(crate) fn remove_service(&mut self, s: &Service) {
        self.release(service_addresses(s));
    }

    fn hold<'a>(&mut self, addresses: impl Iterator<Item = (&'a str, u32)>) {
        for (net, addr) in addresses {
            self.held.entry(net.to_string()).or_default().insert(addr);
        }
    }

    fn release<'a>(&mut self, addresses: impl Iterator<Item = (&'a str, u32)>) {
        for (net, addr) in addresses {
            if let Some(set) = self.held.get_mut(net) {
                set.remove(&addr);
                if set.is_empty() {
                    self.held.remove(net);
                }
            }
        }
    }
}

/// Whether `t` still holds its addresses: it has not both stopped and been told to stay
/// stopped. A completed job task is wanted COMPLETE, so it keeps them until it is removed.
pub fn holds_addresses(t: &Task) -> bool {
    !(t.status.state.is_terminal() && t.desired_state > TaskState::Running)
}

fn task_addresses(t: &Task) -> impl Iterator<Item = (&str, u32)> {
    attachment_addresses(t.networks_attachments.iter().flatten().filter(|_| holds_addresses(t)))
}

fn attachment_addresses<'a>(
    attachments: impl Iterator<Item = &'a NetworkAttachment>,
) -> impl Iterator<Item = (&'a str, u32)> {
    attachments.flat_map(|a| {
        a.addresses
            .iter()
            .filter_map(|c| address_of(c))
            .map(move |addr| (a.network.id.as_str(), u32::from(addr)))
    })
}

fn service_addresses(s: &Service) -> impl Iterator<Item = (&str, u32)> {
    s.endpoint
        .virtual_ips
        .iter()
        .flatten()
        .filter_map(|v| address_of(&v.addr).map(|a| (v.network_id.as_str(), u32::from(a))))
}

/// Whether the service publishes a port through the routing mesh, which puts its tasks on the
/// ingress network.
pub fn publishes_ingress(s: &Service) -> bool {
    s.endpoint.ports.iter().flatten().any(super::ports::is_ingress)
}

/// A network a task joins, with the task's extra DNS names there.
pub(crate) type Wanted<'a> = (&'a Network, Option<Vec<String>>);

/// The networks a service's tasks join, in order (ingress first), each with its aliases.
pub(crate) fn wanted_networks<'a>(
    s: &'a StoreState,
    service_name: &str,
    own: &[NetworkAttachmentConfig],
    ingress: bool,
) -> Result<Vec<Wanted<'a>>, AllocError> {
    let mut out: Vec<Wanted<'a>> = Vec::new();
    if ingress {
        let net = s.ingress_network().ok_or_else(|| AllocError::NoIngress {
            service: service_name.to_string(),
        })?;
        out.push((net, None));
    }
    for att in own {
        let net = s
            .networks
            .get(&att.target)
            .or_else(|| s.networks.by_name(&att.target))
            .ok_or_else(|| AllocError::NetworkNotFound(att.target.clone()))?;
        if !out.iter().any(|(n, _)| n.id == net.id) {
            out.push((net, att.aliases.clone()));
        }
    }
    Ok(out)
}

/// The subnet of `net` and its lowest free address.
fn next_free(s: &StoreState, net: &Network) -> Result<(Ipv4Net, std::net::Ipv4Addr), AllocError> {
    let config = net.ipam_config();
    let subnet: Ipv4Net = config
        .and_then(|c| c.subnet.parse().ok())
        .ok_or_else(|| AllocError::NoSubnet { name: net.name.clone() })?;
    let gateway = config.and_then(|c| c.gateway.parse().ok());
    let addr = pick_address(subnet, gateway, s.addresses.held(&net.id)).ok_or_else(|| AllocError::Exhausted {
        name: net.name.clone(),
        subnet: subnet.to_string(),
    })?;
    Ok((subnet, addr))
}

/// Gives `t` one address on each network it joins (`NetworksAttachments`).
pub fn allocate_task(s: &StoreState, t: &mut Task) -> Result<(), AllocError> {
    let service = s.services.get(&t.service_id);
    let own = t
        .spec
        .networks
        .clone()
        .or_else(|| service.and_then(|svc| svc.spec.networks.clone()))
        .unwrap_or_default();
    let name = service.map(|svc| svc.spec.name.as_str()).unwrap_or_default();
    let wanted = wanted_networks(s, name, &own, service.is_some_and(publishes_ingress))?;
    let mut attachments = Vec::new();
    for (net, aliases) in wanted {
        let (subnet, addr) = next_free(s, net)?;
        attachments.push(NetworkAttachment {
            network: net.into(),
            addresses: vec![format!("{addr}/{}", subnet.prefix())],
            aliases,
        });
    }
    t.networks_attachments = (!attachments.is_empty()).then_some(attachments);
    Ok(())
}

/// Gives node `n` its address on the ingress network, keeping the one it had there (`previous`)
/// so that the address survives every node update. No ingress network, no address; a full
/// ingress leaves the node without one (its routing mesh stays off) rather than refusing the
/// node's own updates.
pub fn allocate_node(s: &StoreState, n: &mut Node, previous: Option<&Node>) {
    let Some(ingress) = s.ingress_network() else {
        n.attachments = None;
        return;
    };
    let kept = previous
        .and_then(|p| p.attachments.as_ref())
        .and_then(|atts| atts.iter().find(|a| a.network.id == ingress.id));
    n.attachments = match kept {
        Some(a) => Some(vec![a.clone()]),
        None => next_free(s, ingress).ok().map(|(subnet, addr)| {
            vec![NetworkAttachment {
                network: ingress.into(),
                addresses: vec![format!("{addr}/{}", subnet.prefix())],
                aliases: None,
            }]
        }),
    };
}

/// Gives a `vip`-mode service one virtual IP on each network its tasks join, keeping those it
/// had (`previous`) on networks it still joins. A `dnsrr` service has none.
pub fn allocate_vips(s: &StoreState, svc: &mut Service, previous: Option<&Service>) -> Result<(), AllocError> {
    let mode = svc.spec.endpoint_spec.as_ref().map(|e| e.mode.as_str()).unwrap_or("");
    if mode == "dnsrr" {
        svc.endpoint.virtual_ips = None;
        return Ok(());
    }
    let own = svc
        .spec
        .task_template
        .networks
        .clone()
        .or_else(|| svc.spec.networks.clone())
        .unwrap_or_default();
    let wanted = wanted_networks(s, &svc.spec.name, &own, publishes_ingress(svc))?;
    let kept = previous.and_then(|p| p.endpoint.virtual_ips.as_ref());
    let mut vips = Vec::new();
    for (net, _) in wanted {
        match kept.into_iter().flatten().find(|v| v.network_id == net.id) {
            Some(v) => vips.push(v.clone()),
            None => {
                let (subnet, addr) = next_free(s, net)?;
                vips.push(VirtualIp {
                    network_id: net.id.clone(),
                    addr: format!("{addr}/{}", subnet.prefix()),
                });
            }
        }
    }
    svc.endpoint.virtual_ips = (!vips.is_empty()).then_some(vips);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use swarm_model::EndpointSpec;
    use swarm_model::IpamConfig;
    use swarm_model::Kind;
    use swarm_model::Object;
    use swarm_model::PortConfig;
    use swarm_model::StoreObject;
    use swarm_model::TaskStatus;

    use super::*;
    use crate::store::StoreAction;
    use crate::store::StoreError;

    /// A store state and the next raft index, driven through the normal apply path.
    struct Fixture {
        state: StoreState,
        index: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let mut f = Fixture {
                state: StoreState::default(),
                index: 0,
            };
            f.ok(StoreAction::Create(network("ing", "ingress", "", true).into_object()));
            f
        }

        fn apply(&mut self, action: StoreAction) -> Result<(), StoreError> {
            self.index += 1;
            self.state.apply_tx(self.index, vec![action], &mut Vec::new())
        }

        fn ok(&mut self, action: StoreAction) {
            if let Err(e) = self.apply(action) {
                panic!("refused: {e}");
            }
        }

        fn status(&mut self, id: &str, state: TaskState) -> Result<(), StoreError> {
            self.apply(StoreAction::TaskStatus {
                id: id.to_string(),
                status: TaskStatus {
                    state,
                    ..Default::default()
                },
            })
        }

        fn new_task(&mut self, id: &str, service: &str) {
            let svc = self.state.services.get(service).cloned().unwrap_or_default();
            let task = Task {
                id: id.to_string(),
                service_id: service.to_string(),
                spec: svc.spec.task_template.clone(),
                ..Default::default()
            };
            self.ok(StoreAction::Create(task.into_object()));
        }

        fn task(&self, id: &str) -> Task {
            self.state.tasks.get(id).cloned().unwrap_or_default()
        }

        /// The task's address on each network, by network name.
        fn addresses(&self, id: &str) -> BTreeMap<String, String> {
            self.task(id)
                .networks_attachments
                .iter()
                .flatten()
                .map(|a| (a.network.spec.name.clone(), a.addresses.join(",")))
                .collect()
        }

        fn vips(&self, service: &str) -> Vec<String> {
            let svc = self.state.services.get(service).cloned().unwrap_or_default();
            svc.endpoint
                .virtual_ips
                .iter()
                .flatten()
                .map(|v| v.addr.clone())
                .collect()
        }
    }

    fn network(id: &str, name: &str, subnet: &str, ingress: bool) -> Network {
        let mut n = Network {
            id: id.to_string(),
            name: name.to_string(),
            ingress,
            ..Default::default()
        };
        if !subnet.is_empty() {
            n.ipam.config = Some(vec![IpamConfig {
                subnet: subnet.to_string(),
                ..Default::default()
            }]);
        }
        n
    }

    fn service(id: &str, networks: &[&str], ports: &[u32], mode: &str) -> Service {
        let mut s = Service {
            id: id.to_string(),
            ..Default::default()
        };
        s.spec.name = format!("svc-{id}");
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
            ports: Some(
                ports
                    .iter()
                    .map(|p| PortConfig {
                        target_port: 80,
                        published_port: Some(*p),
                        ..Default::default()
                    })
                    .collect(),
            ),
        });
        s
    }

    #[test]
    fn tasks_and_services_get_addresses_on_their_networks_and_free_them() {
        let mut f = Fixture::new();
        f.ok(StoreAction::Create(network("back", "back", "", false).into_object()));
        f.ok(StoreAction::Create(
            service("web", &["back"], &[8080], "").into_object(),
        ));
        // The ingress network took the pool's first subnet; `back` the next.
        assert_eq!(f.vips("web"), vec!["10.0.0.2/24", "10.0.1.2/24"]);

        f.new_task("t1", "web");
        f.new_task("t2", "web");
        assert_eq!(f.task("t1").networks_attachments, None, "no address while NEW");
        f.status("t1", TaskState::Pending).unwrap();
        f.status("t2", TaskState::Pending).unwrap();
        let want = |i: u8| {
            BTreeMap::from([
                ("back".to_string(), format!("10.0.1.{i}/24")),
                ("ingress".to_string(), format!("10.0.0.{i}/24")),
            ])
        };
        assert_eq!(f.addresses("t1"), want(3));
        assert_eq!(f.addresses("t2"), want(4));
        let back = f.task("t1").networks_attachments.unwrap()[1].clone();
        assert_eq!(back.aliases, Some(vec!["web".to_string()]));
        assert_eq!(back.network.ipam_options.configs[0].subnet, "10.0.1.0/24");

        // A writer cannot drop or change a task's addresses.
        let mut t1 = f.task("t1");
        t1.networks_attachments = None;
        f.ok(StoreAction::Update(t1.into_object()));
        assert_eq!(f.addresses("t1"), want(3));

        // A dead task frees its addresses (but still shows them); the next task takes them.
        f.ok(StoreAction::TaskDesired {
            id: "t1".to_string(),
            desired: TaskState::Shutdown,
        });
        f.status("t1", TaskState::Running).unwrap();
        assert_eq!(
            f.state.addresses.held("back").len(),
            3,
            "a running task holds its address"
        );
        f.status("t1", TaskState::Shutdown).unwrap();
        assert_eq!(f.addresses("t1"), want(3));
        f.new_task("t3", "web");
        f.status("t3", TaskState::Pending).unwrap();
        assert_eq!(f.addresses("t3"), want(3));

        // Leaving a network frees the service's virtual IP there; removal frees the rest.
        let mut web = f.state.services.get("web").cloned().unwrap();
        web.spec.task_template.networks = None;
        f.ok(StoreAction::Update(web.into_object()));
        assert_eq!(f.vips("web"), vec!["10.0.0.2/24"]);
        assert_eq!(f.state.addresses.held("back").len(), 2, "t2 and t3");
        for id in ["t2", "t3"] {
            f.ok(StoreAction::Remove {
                kind: Kind::Task,
                id: id.to_string(),
                version: None,
            });
        }
        f.ok(StoreAction::Remove {
            kind: Kind::Service,
            id: "web".to_string(),
            version: None,
        });
        assert!(f.state.addresses.held("back").is_empty());
        assert!(f.state.addresses.held("ing").is_empty());
    }

    #[test]
    fn dnsrr_services_have_no_virtual_ip_and_vips_survive_updates() {
        let mut f = Fixture::new();
        f.ok(StoreAction::Create(network("back", "back", "", false).into_object()));
        f.ok(StoreAction::Create(
            service("db", &["back"], &[], "dnsrr").into_object(),
        ));
        assert!(f.vips("db").is_empty());
        f.ok(StoreAction::Create(service("app", &["back"], &[], "vip").into_object()));
        assert_eq!(f.vips("app"), vec!["10.0.1.2/24"]);
        f.new_task("t1", "db");
        f.status("t1", TaskState::Pending).unwrap();
        assert_eq!(f.addresses("t1")["back"], "10.0.1.3/24");
        let mut app = f.state.services.get("app").cloned().unwrap();
        app.spec.labels.insert("changed".to_string(), "yes".to_string());
        f.ok(StoreAction::Update(app.into_object()));
        assert_eq!(f.vips("app"), vec!["10.0.1.2/24"], "an update keeps the virtual IP");
    }

    #[test]
    fn a_full_network_keeps_tasks_new_with_the_reason_until_an_address_is_free() {
        let mut f = Fixture::new();
        // A /29 has six host addresses: the gateway, the service's VIP and four tasks.
        f.ok(StoreAction::Create(
            network("small", "small", "10.9.0.0/29", false).into_object(),
        ));
        f.ok(StoreAction::Create(service("web", &["small"], &[], "").into_object()));
        for i in 1..=5 {
            f.new_task(&format!("t{i}"), "web");
        }
        let txs = crate::orchestrator::allocator::decide(&f.state, swarm_model::Timestamp::now());
        assert_eq!(txs.len(), 5);
        let mut results = Vec::new();
        for tx in txs {
            f.index += 1;
            results.push(f.state.apply_tx(f.index, tx.actions, &mut Vec::new()));
        }
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
        let refused = results.iter().find_map(|r| r.clone().err()).unwrap();
        assert_eq!(
            refused.to_string(),
            "task t5: network small (10.9.0.0/29) has no free address left"
        );
        // The allocator then says why the task waits, once.
        let txs = crate::orchestrator::allocator::decide(&f.state, swarm_model::Timestamp::now());
        assert_eq!(txs.len(), 1);
        for tx in txs {
            f.index += 1;
            f.state.apply_tx(f.index, tx.actions, &mut Vec::new()).unwrap();
        }
        let t5 = f.task("t5");
        assert_eq!(t5.status.state, TaskState::New);
        assert_eq!(t5.status.err, "network small (10.9.0.0/29) has no free address left");
        assert!(crate::orchestrator::allocator::decide(&f.state, swarm_model::Timestamp::now()).is_empty());
        // A task is removed: t5 moves on.
        f.ok(StoreAction::Remove {
            kind: Kind::Task,
            id: "t1".to_string(),
            version: None,
        });
        let txs = crate::orchestrator::allocator::decide(&f.state, swarm_model::Timestamp::now());
        for tx in txs {
            f.index += 1;
            f.state.apply_tx(f.index, tx.actions, &mut Vec::new()).unwrap();
        }
        assert_eq!(f.task("t5").status.state, TaskState::Pending);
        assert_eq!(f.addresses("t5")["small"], "10.9.0.3/29");
    }

    /// Each node has its own routing-mesh address on ingress: a node that exists before the
    /// ingress network gets one when it is created, a new node at once; updates keep it, a
    /// writer cannot set it, and removing the node frees it.
    #[test]
    fn nodes_hold_their_own_ingress_address() {
        let mut f = Fixture {
            state: StoreState::default(),
            index: 0,
        };
        let node = |id: &str| Node {
            id: id.to_string(),
            ..Default::default()
        };
        let ingress_addr = |f: &Fixture, id: &str| {
            f.state
                .nodes
                .get(id)
                .and_then(|n| n.attachments.clone())
                .map(|a| a.iter().map(|a| a.addresses.join(",")).collect::<Vec<_>>().join(" "))
        };
        f.ok(StoreAction::Create(node("n1").into_object()));
        assert_eq!(ingress_addr(&f, "n1"), None, "no ingress, no address");
        f.ok(StoreAction::Create(network("ing", "ingress", "", true).into_object()));
        assert_eq!(ingress_addr(&f, "n1").as_deref(), Some("10.0.0.2/24"));
        f.ok(StoreAction::Create(node("n2").into_object()));
        assert_eq!(ingress_addr(&f, "n2").as_deref(), Some("10.0.0.3/24"));
        // An update that says otherwise keeps the node's address.
        let mut n2 = f.state.nodes.get("n2").cloned().unwrap_or_default();
        n2.attachments = None;
        n2.spec.labels.insert("zone".to_string(), "a".to_string());
        f.ok(StoreAction::Update(n2.into_object()));
        assert_eq!(ingress_addr(&f, "n2").as_deref(), Some("10.0.0.3/24"));
        // Tasks never get a node's address; a removed node's address is free again.
        f.ok(StoreAction::Create(service("web", &[], &[8080], "").into_object()));
        assert_eq!(f.vips("web"), vec!["10.0.0.4/24"]);
        f.ok(StoreAction::Remove {
            kind: Kind::Node,
            id: "n1".to_string(),
            version: None,
        });
        f.new_task("t1", "web");
        f.status("t1", TaskState::Pending).unwrap();
        assert_eq!(f.addresses("t1")["ingress"], "10.0.0.2/24");
    }

    #[test]
    fn ingress_ports_need_the_ingress_network_and_there_is_one() {
        let mut f = Fixture {
            state: StoreState::default(),
            index: 0,
        };
        let err = f.apply(StoreAction::Create(service("web", &[], &[8080], "").into_object()));
        assert_eq!(
            err.unwrap_err().to_string(),
            "service svc-web publishes ingress ports, but no ingress network is present"
        );
        f.ok(StoreAction::Create(network("ing", "ingress", "", true).into_object()));
        let err = f.apply(StoreAction::Create(network("ing2", "mesh", "", true).into_object()));
        assert_eq!(
            err.unwrap_err().to_string(),
            "network mesh: an ingress network already exists (ingress); a swarm has one"
        );
        f.ok(StoreAction::Create(service("web", &[], &[8080], "").into_object()));
        assert_eq!(f.vips("web"), vec!["10.0.0.2/24"]);
    }

    #[test]
    fn the_index_is_rebuilt_from_a_snapshot() {
        let mut f = Fixture::new();
        f.ok(StoreAction::Create(network("back", "back", "", false).into_object()));
        f.ok(StoreAction::Create(service("web", &["back"], &[], "").into_object()));
        f.new_task("t1", "web");
        f.status("t1", TaskState::Pending).unwrap();
        let restored = StoreState::from_snapshot(f.state.to_snapshot());
        assert_eq!(restored.addresses.held("back"), f.state.addresses.held("back"));
        assert_eq!(restored.addresses.held("back").len(), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create,
        Pend(usize),
        Run(usize),
        Kill(usize),
        Remove(usize),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Create),
            3 => (0usize..40).prop_map(Op::Pend),
            1 => (0usize..40).prop_map(Op::Run),
            2 => (0usize..40).prop_map(Op::Kill),
            2 => (0usize..40).prop_map(Op::Remove),
            1 => Just(Op::Snapshot),
        ]
    }

    proptest! {
        /// Whatever tasks come and go, no two holders share an address on a network, every
        /// address is a host address of the subnet other than the gateway, and the index is
        /// exactly what the objects hold.
        #[test]
        fn addresses_are_never_shared(ops in proptest::collection::vec(op(), 1..120)) {
            let mut f = Fixture::new();
            f.ok(StoreAction::Create(network("small", "small", "10.9.0.0/28", false).into_object()));
            f.ok(StoreAction::Create(service("web", &["small"], &[8080], "").into_object()));
            let mut created = 0usize;
            for op in ops {
                let id = |i: usize| format!("t{}", i % created.max(1));
                match op {
                    Op::Create => {
                        f.new_task(&format!("t{created}"), "web");
                        created += 1;
                    }
                    Op::Pend(i) => { let _ = f.status(&id(i), TaskState::Pending); }
                    Op::Run(i) => { let _ = f.status(&id(i), TaskState::Running); }
                    Op::Kill(i) => {
                        let _ = f.apply(StoreAction::TaskDesired { id: id(i), desired: TaskState::Shutdown });
                        let _ = f.status(&id(i), TaskState::Failed);
                    }
                    Op::Remove(i) => {
                        let _ = f.apply(StoreAction::Remove { kind: Kind::Task, id: id(i), version: None });
                    }
                    Op::Snapshot => f.state = StoreState::from_snapshot(f.state.to_snapshot()),
                }
                let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
                let holders = f.state.tasks.iter().filter(|t| holds_addresses(t)).map(|t| t.clone().into_object())
                    .chain(f.state.services.iter().map(|s| s.clone().into_object()));
                for obj in holders {
                    let held: Vec<(String, u32)> = match &obj {
                        Object::Task(t) => task_addresses(t).map(|(n, a)| (n.to_string(), a)).collect(),
                        Object::Service(s) => service_addresses(s).map(|(n, a)| (n.to_string(), a)).collect(),
                        _ => Vec::new(),
                    };
                    for (net, addr) in held {
                        let subnet: Ipv4Net = f.state.networks.get(&net).and_then(|n| n.ipam_config())
                            .and_then(|c| c.subnet.parse().ok()).unwrap();
                        let ip = std::net::Ipv4Addr::from(addr);
                        prop_assert!(subnet.contains(ip) && ip != subnet.network() && ip != subnet.gateway());
                        if let Some(other) = seen.insert((net.clone(), addr), obj.id().to_string()) {
                            prop_assert!(false, "{} held by {} and {}", ip, other, obj.id());
                        }
                    }
                }
                let indexed: usize = ["ing", "small"].iter().map(|n| f.state.addresses.held(n).len()).sum();
                prop_assert_eq!(indexed, seen.len());
            }
        }
    }
}
