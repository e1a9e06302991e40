//! Overlay address management, as Swarm's allocator does it: each network gets a subnet carved
//! from the cluster's pool (`10.0.0.0/8` in /24s by default) that overlaps no other network and
//! none of the nodes' own networks; inside a subnet the first address is the gateway.
//!
//! Pure: what is taken is handed in (read from the store), and the answer is a value the
//! caller commits through raft, so two managers never hand out one address.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Swarm's default address pool and subnet size.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
pub const DEFAULT_SUBNET_SIZE: u8 = 24;

/// An IPv4 network: an address with a prefix length, e.g. `10.0.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    network: u32,
    prefix: u8,
}

/// Why an address or subnet could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid subnet {text:?}: {problem}")]
    Malformed { text: String, problem: &'static str },
    #[error("subnet {subnet} overlaps {other}")]
    Overlaps { subnet: Ipv4Net, other: Ipv4Net },
    #[error("subnet {subnet} is too small for a network (at most /{max})", max = MAX_PREFIX)]
    TooSmall { subnet: Ipv4Net },
    #[error("address pool {pool} has no free /{size} left")]
    PoolExhausted { pool: Ipv4Net, size: u8 },
    #[error("subnet size /{size} does not fit in address pool {pool}")]
    BadSize { pool: Ipv4Net, size: u8 },
    #[error("gateway {gateway:?} is not a host address of subnet {subnet}")]
    BadGateway { gateway: String, subnet: Ipv4Net },
    #[error("a network has one IPv4 subnet here; {count} were given")]
    TooManySubnets { count: usize },
    #[error("VXLAN ID {0:?} is not a number from 1 to 16777215")]
    BadVxlanId(String),
    #[error("VXLAN ID {0} is used by another network")]
    VxlanIdInUse(u32),
    #[error("the cluster has no address pool")]
    NoPool,
    #[error("no free VXLAN ID is left")]
    VxlanIdsExhausted,
}

/// The smallest subnet that still holds a gateway and a task: /29 (6 hosts).
const MAX_PREFIX: u8 = 29;

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
}

impl Ipv4Net {
    /// The network containing `addr`, with host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Net {
            network: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    fn last(&self) -> u32 {
        self.network | !mask(self.prefix)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.network
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.network <= other.last() && other.network <= self.last()
    }

    /// The gateway: the first address after the network address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = IpamError;

    /// `a.b.c.d/n`; host bits must be zero, as dockerd requires of `--subnet`.
    fn from_str(text: &str) -> Result<Self, IpamError> {
        let bad = |problem| IpamError::Malformed {
            text: text.to_string(),
            problem,
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("the prefix length is not a number"))?;
        let net = Ipv4Net::new(addr, prefix).ok_or_else(|| bad("the prefix length is over 32"))?;
        if net.network() != addr {
            return Err(bad("host bits are set (the address is not the network's first)"));
        }
        Ok(net)
    }
}

/// The subnet for a new network: the one asked for, if it overlaps nothing taken, else the
/// first free `size` subnet of `pool`. `taken` are the other networks' subnets; `avoid` are
/// networks the nodes themselves use (their addresses, routes and resolvers), which only a
/// picked subnet stays clear of.
pub fn pick_subnet(
    pool: Ipv4Net,
    size: u8,
    asked: Option<Ipv4Net>,
    taken: &[Ipv4Net],
    avoid: &[Ipv4Net],
) -> Result<Ipv4Net, IpamError> {
    if let Some(subnet) = asked {
        if subnet.prefix > MAX_PREFIX {
            return Err(IpamError::TooSmall { subnet });
        }
        if let Some(other) = taken.iter().find(|o| o.overlaps(&subnet)) {
            return Err(IpamError::Overlaps { subnet, other: *other });
        }
        return Ok(subnet);
    }
    if size < pool.prefix || size > MAX_PREFIX {
        return Err(IpamError::BadSize { pool, size });
    }
    let step = 1u64 << (32 - size);
    let mut candidate = u64::from(pool.network);
    let end = u64::from(pool.network) + pool.size();
    while candidate < end {
        let net = Ipv4Net {
            network: candidate as u32,
            prefix: size,
        };
        match taken
            .iter()
            .chain(avoid)
            .filter(|o| o.overlaps(&net))
            .map(|o| u64::from(o.last()))
            .max()
        {
            None => return Ok(net),
            // Skip past whatever is in the way, aligned to the next subnet boundary.
            Some(last) => candidate = (last + 1).div_ceil(step).max(candidate / step + 1) * step,
        }
    }
    Err(IpamError::PoolExhausted { pool, size })
}

/// Checks a cluster's address pools and subnet size (`--default-addr-pool`,
/// `--default-addr-pool-mask-length`) when the cluster is made, not at its first network.
pub fn check_pools(pools: &[String], size: u8) -> Result<Vec<Ipv4Net>, IpamError> {
    let mut out = Vec::new();
    for text in pools {
        let pool: Ipv4Net = text.parse()?;
        if size < pool.prefix || size > MAX_PREFIX {
            return Err(IpamError::BadSize { pool, size });
        }
        out.push(pool);
    }
    Ok(out)
}

/// The gateway asked for (`--gateway`), which must be a host address of `subnet`, or the
/// subnet's first address.
pub fn pick_gateway(subnet: Ipv4Net, asked: &str) -> Result<Ipv4Addr, IpamError> {
    if asked.is_empty() {
        return Ok(subnet.gateway());
    }
    let bad = || IpamError::BadGateway {
        gateway: asked.to_string(),
        subnet,
    };
    let gateway: Ipv4Addr = asked.parse().map_err(|_| bad())?;
    let host = subnet.contains(gateway) && gateway != subnet.network() && u32::from(gateway) != subnet.last();
    if host { Ok(gateway) } else { Err(bad()) }
}

/// The lowest host address of `subnet` that is neither its gateway nor `taken` (addresses as
/// numbers). Lowest-first keeps allocation deterministic, which every manager's state machine
/// needs; a freed address is only handed out again after its task has stopped.
pub fn pick_address(subnet: Ipv4Net, gateway: Option<Ipv4Addr>, taken: &BTreeSet<u32>) -> Option<Ipv4Addr> {
    let first = subnet.network + 1;
    let last = subnet.last().checked_sub(1)?;
    let gateway = gateway.map(u32::from);
    let mut candidate = first;
    // `taken` is sorted: walk it alongside the candidates instead of probing each one.
    for held in taken.range(first..=last) {
        while candidate < *held {
            if Some(candidate) != gateway {
                return Some(Ipv4Addr::from(candidate));
            }
            candidate += 1;
        }
        candidate = held + 1;
    }
    while candidate <= last {
        if Some(candidate) != gateway {
            return Some(Ipv4Addr::from(candidate));
        }
        candidate += 1;
    }
    None
}

/// The address part of a CIDR string such as `10.0.1.5/24`.
pub fn address_of(cidr: &str) -> Option<Ipv4Addr> {
    cidr.split_once('/').map_or(cidr, |(a, _)| a).parse().ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_and_refuse_host_bits() {
        assert_eq!(net("10.0.1.0/24").to_string(), "10.0.1.0/24");
        for bad in [
            "10.0.1.5/24",
            "10.0.1.0",
            "10.0.1.0/33",
            "10.0.1/24",
            "x/24",
            "10.0.0.0/a",
        ] {
            assert!(
                matches!(bad.parse::<Ipv4Net>(), Err(IpamError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_default_pool_gives_the_first_free_slash_24s() {
        let pool = net(DEFAULT_POOL);
        let first = pick_subnet(pool, 24, None, &[], &[]).unwrap();
        assert_eq!(first, net("10.0.0.0/24"));
        let second = pick_subnet(pool, 24, None, &[first], &[]).unwrap();
        assert_eq!(second, net("10.0.1.0/24"));
        assert_eq!(first.gateway(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn a_node_network_inside_the_pool_is_never_picked() {
        // A resolver at 10.0.0.2 on the host (common in clouds) and a /16 route.
        let avoid = [net("10.0.0.0/30"), net("10.1.0.0/16")];
        let pool = net(DEFAULT_POOL);
        assert_eq!(pick_subnet(pool, 24, None, &[], &avoid).unwrap(), net("10.0.1.0/24"));
        let taken: Vec<Ipv4Net> = (1..=255).map(|i| net(&format!("10.0.{i}.0/24"))).collect();
        assert_eq!(pick_subnet(pool, 24, None, &taken, &avoid).unwrap(), net("10.2.0.0/24"));
    }

    #[test]
    fn an_asked_subnet_that_overlaps_is_refused_naming_both() {
        let err = pick_subnet(
            net(DEFAULT_POOL),
            24,
            Some(net("10.0.0.0/16")),
            &[net("10.0.5.0/24")],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "subnet 10.0.0.0/16 overlaps 10.0.5.0/24");
        let err = pick_subnet(net(DEFAULT_POOL), 24, Some(net("10.9.0.0/30")), &[], &[]).unwrap_err();
        assert!(matches!(err, IpamError::TooSmall { .. }), "{err}");
    }

    #[test]
    fn a_full_pool_says_so() {
        let pool = net("192.168.0.0/23");
        let taken = [net("192.168.0.0/24"), net("192.168.1.0/24")];
        let err = pick_subnet(pool, 24, None, &taken, &[]).unwrap_err();
        assert_eq!(err.to_string(), "address pool 192.168.0.0/23 has no free /24 left");
        assert!(matches!(
            pick_subnet(pool, 22, None, &[], &[]),
            Err(IpamError::BadSize { .. })
        ));
    }

    #[test]
    fn addresses_skip_the_network_the_gateway_the_broadcast_and_what_is_taken() {
        let subnet = net("10.0.1.0/29");
        let gw = Some(Ipv4Addr::new(10, 0, 1, 1));
        let taken = |v: &[u8]| {
            v.iter()
                .map(|o| u32::from(Ipv4Addr::new(10, 0, 1, *o)))
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(pick_address(subnet, gw, &taken(&[])), Some(Ipv4Addr::new(10, 0, 1, 2)));
        assert_eq!(
            pick_address(subnet, gw, &taken(&[2, 3, 5])),
            Some(Ipv4Addr::new(10, 0, 1, 4))
        );
        assert_eq!(pick_address(subnet, gw, &taken(&[2, 3, 4, 5, 6])), None);
        let other_gw = Some(Ipv4Addr::new(10, 0, 1, 6));
        assert_eq!(
            pick_address(subnet, other_gw, &taken(&[2, 3, 4, 5])),
            Some(Ipv4Addr::new(10, 0, 1, 1))
        );
        assert_eq!(address_of("10.0.1.9/24"), Some(Ipv4Addr::new(10, 0, 1, 9)));
        assert_eq!(address_of("nonsense"), None);
    }

    fn any_net() -> impl Strategy<Value = Ipv4Net> {
        (any::<u32>(), 8u8..=30).prop_map(|(a, p)| Ipv4Net::new(Ipv4Addr::from(a), p).unwrap())
    }

    proptest! {

        /// A picked address is a free host address of the subnet, and the lowest such one.
        #[test]
        fn picked_addresses_are_the_lowest_free(
            prefix in 24u8..=29,
            held in proptest::collection::btree_set(0u32..256, 0..256),
            gw_offset in 0u32..8,
        ) {
            let subnet = net("10.7.0.0/24");
            let subnet = Ipv4Net::new(subnet.network(), prefix).unwrap();
            let taken: BTreeSet<u32> = held.iter().map(|o| subnet.network + o).collect();
            let gateway = Ipv4Addr::from(subnet.network + 1 + gw_offset % 4);
            let free = |a: u32| a > subnet.network && a < subnet.last() && a != u32::from(gateway) && !taken.contains(&a);
            let want = (subnet.network..=subnet.last()).find(|a| free(*a)).map(Ipv4Addr::from);
            prop_assert_eq!(pick_address(subnet, Some(gateway), &taken), want);
        }
        /// Whatever is taken or avoided, a picked subnet lies in the pool, has the asked size,
        /// and overlaps nothing; if none is found, every candidate was indeed in the way.
        #[test]
        fn picked_subnets_never_overlap(
            taken in proptest::collection::vec(any_net(), 0..20),
            avoid in proptest::collection::vec(any_net(), 0..5),
            pool_addr in any::<u32>(),
            pool_prefix in 8u8..=20,
            extra in 0u8..=8,
        ) {
            let pool = Ipv4Net::new(Ipv4Addr::from(pool_addr), pool_prefix).unwrap();
            let size = pool_prefix + extra;
            match pick_subnet(pool, size, None, &taken, &avoid) {
                Ok(s) => {
                    prop_assert_eq!(s.prefix(), size);
                    prop_assert!(pool.contains(s.network()) && pool.contains(Ipv4Addr::from(s.last())));
                    prop_assert!(taken.iter().chain(&avoid).all(|o| !o.overlaps(&s)));
                }
                Err(IpamError::PoolExhausted { .. }) => {
                    let step = 1u64 << (32 - size);
                    let count = pool.size() / step;
                    for i in 0..count.min(4096) {
                        let n = Ipv4Net { network: (u64::from(pool.network) + i * step) as u32, prefix: size };
                        prop_assert!(taken.iter().chain(&avoid).any(|o| o.overlaps(&n)), "{} was free", n);
                    }
                }
                Err(e) => prop_assert!(false, "{}", e),
            }
        }
    }
}
