//! Subnet allocation for overlay networks.
//!
//! Runs inside the state machine, as port allocation does, so that every manager gives a new
//! network the same subnet and two concurrent creates can never take overlapping ones. The
//! subnet asked for (`--subnet`) must overlap no other network; without one, the first free
//! subnet of the cluster's address pool is taken (`DefaultAddrPool`, `SubnetSize`; Swarm's
//! defaults `10.0.0.0/8` and /24). The gateway is the one asked for, or the first address.

use swarm_model::Cluster;
use swarm_model::IpamConfig;
use swarm_model::Network;

use crate::ipam::DEFAULT_POOL;
use crate::ipam::DEFAULT_SUBNET_SIZE;
use crate::ipam::IpamError;
use crate::ipam::Ipv4Net;
use crate::ipam::pick_gateway;
use crate::ipam::pick_subnet;

/// The cluster's address pool and subnet size.
fn pool_of(cluster: Option<&Cluster>) -> Result<(Ipv4Net, u8), IpamError> {
    let pool = cluster
        .and_then(|c| c.default_addr_pool.as_ref())
        .and_then(|p| p.first())
        .map(String::as_str)
        .unwrap_or(DEFAULT_POOL)
        .parse()?;
    let size = cluster
        .map(|c| c.subnet_size)
        .filter(|s| *s != 0)
        .and_then(|s| u8::try_from(s).ok())
        .unwrap_or(DEFAULT_SUBNET_SIZE);
    Ok((pool, size))
}

/// Gives `net` its subnet and gateway (`IPAM.Config[0]`), or says why it cannot have them.
pub fn allocate<'a>(
    net: &mut Network,
    cluster: Option<&Cluster>,
    others: impl Iterator<Item = &'a Network>,
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
    let taken: Vec<Ipv4Net> = others
        .filter(|o| o.id != net.id)
        .flat_map(|o| o.ipam.config.iter().flatten())
        .filter_map(|c| c.subnet.parse().ok())
        .collect();
    let (pool, size) = pool_of(cluster)?;
    let subnet = pick_subnet(pool, size, asked_subnet, &taken, &[])?;
    let gateway = pick_gateway(subnet, &asked.gateway)?;
    *configs = vec![IpamConfig {
        subnet: subnet.to_string(),
        ip_range: asked.ip_range,
        gateway: gateway.to_string(),
    }];
    Ok(())
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
        allocate(&mut n, None, existing.iter()).unwrap();
        assert_eq!(config(&n), ("10.0.1.0/24".to_string(), "10.0.1.1".to_string()));
    }

    #[test]
    fn the_clusters_pool_and_size_are_used() {
        let cluster = Cluster {
            default_addr_pool: Some(vec!["172.20.0.0/16".to_string()]),
            subnet_size: 26,
            ..Default::default()
        };
        let mut n = network("n", "", "");
        allocate(&mut n, Some(&cluster), std::iter::empty()).unwrap();
        assert_eq!(config(&n), ("172.20.0.0/26".to_string(), "172.20.0.1".to_string()));
    }

    #[test]
    fn an_asked_subnet_and_gateway_are_kept_or_refused_clearly() {
        let existing = [network("a", "10.0.0.0/24", "")];
        let mut n = network("n", "192.168.5.0/24", "192.168.5.254");
        allocate(&mut n, None, existing.iter()).unwrap();
        assert_eq!(config(&n), ("192.168.5.0/24".to_string(), "192.168.5.254".to_string()));

        let refused = |subnet: &str, gateway: &str| {
            let mut n = network("n", subnet, gateway);
            allocate(&mut n, None, existing.iter()).unwrap_err().to_string()
        };
        assert_eq!(refused("10.0.0.0/16", ""), "subnet 10.0.0.0/16 overlaps 10.0.0.0/24");
        assert!(refused("10.1.0.7/24", "").contains("host bits"));
        assert!(refused("nonsense", "").starts_with("invalid subnet \"nonsense\""));
        assert!(refused("10.9.0.0/24", "10.8.0.1").contains("not a host address of subnet 10.9.0.0/24"));
        assert!(refused("10.9.0.0/24", "10.9.0.255").contains("not a host address"));
    }

    #[test]
    fn a_network_keeps_its_own_subnet_when_checked_again() {
        let mut n = network("n", "10.0.7.0/24", "10.0.7.1");
        let same = n.clone();
        allocate(&mut n, None, [same].iter()).unwrap();
        assert_eq!(config(&n).0, "10.0.7.0/24");
    }
}
