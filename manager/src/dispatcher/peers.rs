//! Which overlay peers a node needs, as a pure function of the store: the managers know every
//! task's address and node, so they push peer entries to the nodes instead of the nodes
//! gossiping them, as Swarm does.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use swarm_protocol::dispatcher::OverlayPeer;

use crate::ipam::address_of;
use crate::store::StoreState;
use crate::store::addresses::holds_addresses;

/// The peers of node `node_id`: on every network (by VXLAN ID) that one of its tasks holds an
/// address on, every task of another node that holds one too, with that node's address. While
/// the routing mesh is active every node is on ingress, and the other nodes' own ingress
/// addresses are peers too, since their meshes connect from them.
pub fn peers_for(s: &StoreState, node_id: &str) -> BTreeSet<OverlayPeer> {
    let mut vnis: BTreeSet<u32> = s
        .tasks_by_node(node_id)
        .filter(|t| holds_addresses(t))
        .flat_map(|t| t.networks_attachments.iter().flatten())
        .filter_map(|a| vni_of(s, &a.network.id))
        .collect();
    let mesh_ingress = super::directory::mesh_active(s)
        .then(|| s.ingress_network())
        .flatten()
        .and_then(|n| Some((n.id.as_str(), n.vxlan_id()?)));
    vnis.extend(mesh_ingress.map(|(_, vni)| vni));
    if vnis.is_empty() {
        return BTreeSet::new();
    }
    let mut out = BTreeSet::new();
    if let Some((ingress, vni)) = mesh_ingress {
        for n in s.nodes.iter().filter(|n| n.id != node_id) {
            let Ok(node) = n.status.addr.parse::<Ipv4Addr>() else {
                continue;
            };
            for a in n.attachments.iter().flatten().filter(|a| a.network.id == ingress) {
                for addr in a.addresses.iter().filter_map(|c| address_of(c)) {
                    out.insert(OverlayPeer { vni, addr, node });
                }
            }
        }
    }
    for t in s.tasks.iter() {
        if t.node_id.is_empty() || t.node_id == node_id || !holds_addresses(t) {
            continue;
        }
        let Some(node) = s
            .nodes
            .get(&t.node_id)
            .and_then(|n| n.status.addr.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        for a in t.networks_attachments.iter().flatten() {
            let Some(vni) = vni_of(s, &a.network.id).filter(|v| vnis.contains(v)) else {
                continue;
            };
            for addr in a.addresses.iter().filter_map(|c| address_of(c)) {
                out.insert(OverlayPeer { vni, addr, node });
            }
        }
    }
    out
}

/// The network's VXLAN ID, read from the store so that a network removed meanwhile gives none.
fn vni_of(s: &StoreState, network_id: &str) -> Option<u32> {
    s.networks.get(network_id).and_then(|n| n.vxlan_id())
}

#[cfg(test)]
mod tests {
    use swarm_model::Network;
    use swarm_model::NetworkAttachment;
    use swarm_model::Node;
    use swarm_model::StoreObject;
    use swarm_model::Task;
    use swarm_model::TaskState;

    use super::*;
    use crate::store::testing::store_with;

    fn network(id: &str, vni: &str) -> Network {
        let mut n = Network {
            id: id.to_string(),
            name: id.to_string(),
            ..Default::default()
        };
        n.options
            .insert(swarm_model::VXLAN_ID_OPTION.to_string(), vni.to_string());
        n
    }

    fn node(id: &str, addr: &str) -> Node {
        let mut n = Node {
            id: id.to_string(),
            ..Default::default()
        };
        n.status.addr = addr.to_string();
        n
    }

    /// A task as the store holds it once allocated.
    fn task(id: &str, node: &str, nets: &[(&str, &str)], state: TaskState) -> Task {
        let mut t = Task {
            id: id.to_string(),
            node_id: node.to_string(),
            desired_state: TaskState::Running,
            ..Default::default()
        };
        t.status.state = state;
        t.networks_attachments = Some(
            nets.iter()
                .map(|(net, addr)| NetworkAttachment {
                    network: swarm_model::SwarmNetwork {
                        id: net.to_string(),
                        ..Default::default()
                    },
                    addresses: vec![format!("{addr}/24")],
                    aliases: None,
                })
                .collect(),
        );
        t
    }

    fn state(tasks: Vec<Task>) -> StoreState {
        let objects = vec![
            network("front", "4097").into_object(),
            network("back", "4098").into_object(),
            network("other", "4099").into_object(),
            node("n1", "198.18.0.1").into_object(),
            node("n2", "198.18.0.2").into_object(),
            node("n3", "198.18.0.3").into_object(),
        ];
        let mut s = store_with(objects).view(|s| s.clone());
        // Tasks go in with their attachments, as the state machine leaves them once allocated.
        for t in tasks {
            s = with_task(s, t);
        }
        s
    }

    fn with_task(s: StoreState, t: Task) -> StoreState {
        let mut data = s.to_snapshot();
        data.tasks.retain(|o| o.id != t.id);
        data.tasks.push(t);
        StoreState::from_snapshot(data)
    }

    #[test]
    fn a_node_gets_the_other_nodes_tasks_on_its_networks_only() {
        let s = state(vec![
            task("a1", "n1", &[("front", "10.0.1.3")], TaskState::Running),
            task(
                "b2",
                "n2",
                &[("front", "10.0.1.4"), ("back", "10.0.2.3")],
                TaskState::Running,
            ),
            task("c3", "n3", &[("other", "10.0.3.3")], TaskState::Running),
            task("d2", "n2", &[("front", "10.0.1.5")], TaskState::Failed),
        ]);
        let peers: Vec<_> = peers_for(&s, "n1").into_iter().collect();
        // b2 on front only (n1 has nothing on back); not c3 (other network); d2 still holds its
        // address (failed but still wanted running) until the restart supervisor stops it.
        assert_eq!(
            peers,
            vec![
                OverlayPeer {
                    vni: 4097,
                    addr: Ipv4Addr::new(10, 0, 1, 4),
                    node: Ipv4Addr::new(198, 18, 0, 2)
                },
                OverlayPeer {
                    vni: 4097,
                    addr: Ipv4Addr::new(10, 0, 1, 5),
                    node: Ipv4Addr::new(198, 18, 0, 2)
                },
            ]
        );
        assert!(peers_for(&s, "n3").is_empty(), "no one shares n3's network");
        assert_eq!(peers_for(&s, "n2").len(), 1, "a1 on front");
    }

    #[test]
    fn dead_tasks_and_removed_networks_are_no_peers() {
        let mut dead = task("d2", "n2", &[("front", "10.0.1.5")], TaskState::Shutdown);
        dead.desired_state = TaskState::Shutdown;
        let s = state(vec![
            task(
                "a1",
                "n1",
                &[("front", "10.0.1.3"), ("gone", "10.0.9.3")],
                TaskState::Running,
            ),
            dead,
            task("g2", "n2", &[("gone", "10.0.9.4")], TaskState::Running),
        ]);
        assert!(peers_for(&s, "n1").is_empty(), "{:?}", peers_for(&s, "n1"));
    }
}
