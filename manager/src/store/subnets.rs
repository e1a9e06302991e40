//! Subnet allocation for overlay networks.
//!
//! Runs inside the state machine, as port allocation does, so that every manager gives a new
//! network the same subnet and two concurrent creates can never take overlapping ones. The
//! subnet asked for (`--subnet`) must overlap no other network; without one, the first free
//! subnet of the cluster's address pool is taken (`DefaultAddrPool`, `SubnetSize`; Swarm's
//! defaults `10.0.0.0/8` and /24). The gateway is the one asked for, or the first address.
//! Each network also gets its VXLAN ID, from 4096 up as in Swarm, unless one was asked for
//! with the `com.docker.network.driver.overlay.vxlanid_list` option.

use std::collections::BTreeSet;

use swarm_model::Cluster;
use swarm_model::IpamConfig;
use swarm_model::Network;
use swarm_model::Node;
use swarm_model::VXLAN_ID_OPTION;

use crate::ipam::DEFAULT_POOL;
use crate::ipam::DEFAULT_SUBNET_SIZE;
use crate::ipam::IpamError;
use crate::ipam::Ipv4Net;
use crate::ipam::check_pools;
use crate::ipam::pick_gateway;
use crate::ipam::pick_subnet;

/// The cluster's address pools and subnet size.
fn pools_of(cluster: Option<&Cluster>) -> Result<(Vec<Ipv4Net>, u8), IpamError> {
    let size = cluster
        .map(|c| c.subnet_size)
        .filter(|s| *s != 0)
        .and_then(|s| u8::try_from(s).ok())
        .unwrap_or(DEFAULT_SUBNET_SIZE);
    let pools = match cluster.and_then(|c| c.default_addr_pool.as_ref()) {
        Some(p) if !p.is_empty() => p.clone(),
        _ => vec![DEFAULT_POOL.to_string()],
    };
    Ok((check_pools(&pools, size)?, size))
}

/// Gives `net` its subnet and gateway (`IPAM.Config[0]`), or says why it cannot have them.
/// A subnet picked from the pool also avoids `host_networks`, the networks the nodes use
/// themselves; one asked for explicitly may overlap them, as in Swarm.
pub fn allocate<'a>(
    net: &mut Network,
    cluster: Option<&Cluster>,
    others: impl Iterator<Item = &'a Network>,
    host_networks: &[Ipv4Net],
) -> Result<(), IpamError> {
    let configs = net.ipam.config.get_or_insert_with(Vec::new);
    if configs.len() > 1 {
        return Err(IpamError::TooManySubnets { count: configs.len() });
    }
    let asked = configs.first().cloned().unwrap_or_default();
    let asked_subnet = match asked.subnet.as_str() {
        "" => None,
        text => Some(text.parse::<Ipv4Net>()?),
    };
    let others: Vec<&Network> = others.filter(|o| o.id != net.id).collect();
    let mut taken: Vec<Ipv4Net> = others
        .iter()
        .flat_map(|o| o.ipam.config.iter().flatten())
        .filter_map(|c| c.subnet.parse().ok())
        .collect();
    // Lowest first, so that an overlap is reported the same way every time.
    taken.sort();
    let (pools, size) = pools_of(cluster)?;
    // The first pool with room, or the last pool's reason; an asked subnet is checked once.
    let mut picked = Err(IpamError::NoPool);
    for pool in pools {
        picked = pick_subnet(pool, size, asked_subnet, &taken, host_networks);
        if picked.is_ok() || asked_subnet.is_some() {
            break;
        }
    }
    let subnet = picked?;
    let gateway = pick_gateway(subnet, &asked.gateway)?;
    *configs = vec![IpamConfig {
        subnet: subnet.to_string(),
        ip_range: asked.ip_range,
        gateway: gateway.to_string(),
    }];
    let ids: BTreeSet<u32> = others.iter().filter_map(|o| o.vxlan_id()).collect();
    let id = pick_vxlan_id(net, &ids)?;
    net.options.insert(VXLAN_ID_OPTION.to_string(), id.to_string());
    Ok(())
}

/// The networks the nodes report using themselves (their routes and resolvers), which a
/// subnet picked from the pool stays clear of.
pub fn host_networks<'a>(nodes: impl Iterator<Item = &'a Node>) -> Vec<Ipv4Net> {
    nodes
        .flat_map(|node| node.description.host_networks.iter().flatten())
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Swarm's first VXLAN ID; IDs below it are left to other uses of VXLAN on the hosts.
pub const FIRST_VXLAN_ID: u32 = 4096;
const MAX_VXLAN_ID: u32 = (1 << 24) - 1;

/// The VXLAN ID asked for in the network's options, if free, or the lowest free one.
fn pick_vxlan_id(net: &Network, taken: &BTreeSet<u32>) -> Result<u32, IpamError> {
    if let Some(text) = net.options.get(VXLAN_ID_OPTION) {
        let id = text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|id| (1..=MAX_VXLAN_ID).contains(id))
            .ok_or_else(|| IpamError::BadVxlanId(text.clone()))?;
        if taken.contains(&id) {
            return Err(IpamError::VxlanIdInUse(id));
        }
        return Ok(id);
    }
    (FIRST_VXLAN_ID..=MAX_VXLAN_ID)
        .find(|id| !taken.contains(id))
        .ok_or(IpamError::VxlanIdsExhausted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(id: &str, subnet: &str, gateway: &str) -> Network {
        let mut n = Network {
            id: id.to_string(),
            ..Default::default()
        };
        if !subnet.is_empty() || !gateway.is_empty() {
            n.ipam.config = Some(vec![IpamConfig {
                subnet: subnet.to_string(),
                gateway: gateway.to_string(),
                ..Default::default()
            }]);
        }
        n
    }

    fn config(n: &Network) -> (String, String) {
        let c = &n.ipam.config.as_ref().unwrap()[0];
        (c.subnet.clone(), c.gateway.clone())
    }

    #[test]
    fn networks_get_the_next_free_subnet_of_the_pool() {
        let existing = [network("a", "10.0.0.0/24", "10.0.0.1"), network("b", "10.0.2.0/24", "")];
        let mut n = network("n", "", "");
        allocate(&mut n, None, existing.iter(), &[]).unwrap();
        assert_eq!(config(&n), ("10.0.1.0/24".to_string(), "10.0.1.1".to_string()));
        assert_eq!(n.vxlan_id(), Some(FIRST_VXLAN_ID));
    }

    #[test]
    fn vxlan_ids_are_the_lowest_free_or_the_one_asked_for() {
        let mut a = network("a", "", "");
        allocate(&mut a, None, std::iter::empty(), &[]).unwrap();
        let mut b = network("b", "", "");
        b.options.insert(VXLAN_ID_OPTION.to_string(), "5000".to_string());
        allocate(&mut b, None, [&a].into_iter(), &[]).unwrap();
        let mut c = network("c", "", "");
        allocate(&mut c, None, [&a, &b].into_iter(), &[]).unwrap();
        let ids: Vec<_> = [&a, &b, &c].iter().map(|n| n.vxlan_id()).collect();
        assert_eq!(ids, vec![Some(4096), Some(5000), Some(4097)]);

        let refused = |asked: &str| {
            let mut n = network("n", "", "");
            n.options.insert(VXLAN_ID_OPTION.to_string(), asked.to_string());
            allocate(&mut n, None, [&a, &b].into_iter(), &[])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(refused("5000"), "VXLAN ID 5000 is used by another network");
        assert_eq!(refused("0"), "VXLAN ID \"0\" is not a number from 1 to 16777215");
        assert_eq!(
            refused("4096,4097"),
            "VXLAN ID \"4096,4097\" is not a number from 1 to 16777215"
        );
    }

    #[test]
    fn the_clusters_pool_and_size_are_used() {
        let cluster = Cluster {
            default_addr_pool: Some(vec!["172.20.0.0/16".to_string()]),
            subnet_size: 26,
            ..Default::default()
        };
        let mut n = network("n", "", "");
        allocate(&mut n, Some(&cluster), std::iter::empty(), &[]).unwrap();
        assert_eq!(config(&n), ("172.20.0.0/26".to_string(), "172.20.0.1".to_string()));
    }

    #[test]
    fn an_asked_subnet_and_gateway_are_kept_or_refused_clearly() {
        let existing = [network("a", "10.0.0.0/24", "")];
        let mut n = network("n", "192.168.5.0/24", "192.168.5.254");
        allocate(&mut n, None, existing.iter(), &[]).unwrap();
        assert_eq!(config(&n), ("192.168.5.0/24".to_string(), "192.168.5.254".to_string()));

        let refused = |subnet: &str, gateway: &str| {
            let mut n = network("n", subnet, gateway);
            allocate(&mut n, None, existing.iter(), &[]).unwrap_err().to_string()
        };
        assert_eq!(refused("10.0.0.0/16", ""), "subnet 10.0.0.0/16 overlaps 10.0.0.0/24");
        assert!(refused("10.1.0.7/24", "").contains("host bits"));
        assert!(refused("nonsense", "").starts_with("invalid subnet \"nonsense\""));
        assert!(refused("10.9.0.0/24", "10.8.0.1").contains("not a host address of subnet 10.9.0.0/24"));
        assert!(refused("10.9.0.0/24", "10.9.0.255").contains("not a host address"));
    }

    #[test]
    fn pooled_subnets_avoid_the_hosts_networks_but_asked_ones_may_overlap_them() {
        let host: Vec<Ipv4Net> = ["10.0.0.0/23", "10.0.2.53/32"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut n = network("n", "", "");
        allocate(&mut n, None, std::iter::empty(), &host).unwrap();
        assert_eq!(config(&n).0, "10.0.3.0/24");
        let mut asked = network("m", "10.0.1.0/24", "");
        allocate(&mut asked, None, std::iter::empty(), &host).unwrap();
        assert_eq!(config(&asked).0, "10.0.1.0/24");
    }

    #[test]
    fn a_network_keeps_its_own_subnet_when_checked_again() {
        let mut n = network("n", "10.0.7.0/24", "10.0.7.1");
        let same = n.clone();
        allocate(&mut n, None, [same].iter(), &[]).unwrap();
        assert_eq!(config(&n).0, "10.0.7.0/24");
    }
}
