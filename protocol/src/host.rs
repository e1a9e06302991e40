//! Facts about the local machine: what a node reports about itself when it joins and opens a
//! session, and what a manager's `/info` shows. Read from `/proc` and the build target.

/// The machine's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// CPU architecture as Docker names it (`x86_64`, `aarch64`).
pub fn architecture() -> &'static str {
    std::env::consts::ARCH
}

pub fn os() -> &'static str {
    std::env::consts::OS
}

pub fn cpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// Total memory in bytes, from /proc/meminfo.
pub fn memory_bytes() -> i64 {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

pub fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn operating_system() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| os().to_string())
}

/// The IPv4 networks this host uses, as CIDR strings: the destinations of its routes (which
/// include the subnets of its own addresses) and its resolvers, so that managers never give an
/// overlay a subnet that would hide them. The default route is left out: it covers everything.
pub fn networks() -> Vec<String> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = routed_networks(&routes);
    out.extend(resolvers(&resolv).into_iter().map(|r| format!("{r}/32")));
    out.sort();
    out.dedup();
    out
}

/// Route destinations from `/proc/net/route`, whose addresses and masks are hex in the
/// kernel's (little-endian) byte order.
fn routed_networks(table: &str) -> Vec<String> {
    // The kernel prints each network-order value as a native-endian number.
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| u32::from(std::net::Ipv4Addr::from(v.to_ne_bytes())))
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dest = hex(fields.get(1)?)?;
            let mask = hex(fields.get(7)?)?;
            (mask != 0 && mask.leading_ones() + mask.trailing_zeros() == 32)
                .then(|| format!("{}/{}", std::net::Ipv4Addr::from(dest & mask), mask.leading_ones()))
        })
        .collect()
}

/// The IPv4 `nameserver` lines of a resolv.conf.
pub fn resolvers(resolv_conf: &str) -> Vec<std::net::Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_resolvers_are_read_without_the_default_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            bad\tzz\n";
        assert_eq!(routed_networks(table), ["172.17.0.0/16", "192.0.2.0/24"]);
        let conf = "# comment\nnameserver 10.255.255.53\nnameserver ::1\nsearch example\n";
        assert_eq!(resolvers(conf), [std::net::Ipv4Addr::new(10, 255, 255, 53)]);
    }

    #[test]
    fn facts_are_plausible() {
        assert!(!hostname().is_empty());
        assert!(cpus() >= 1);
        assert!(memory_bytes() > 0);
    }
}
