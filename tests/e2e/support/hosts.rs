//! Nodes that really are separate hosts: each a network namespace with a veth to a "switch"
//! namespace (a bridge of its own, so the host's firewall never sees the traffic), node i at
//! 198.18.0.i/24. The benchmarking range 198.18.0.0/15 exists only inside these namespaces.
//! Everything is deleted on drop, also when the test fails; declare the `Hosts` before the
//! `Cluster` so that the nodes stop first.

use std::process::Command;

pub struct Hosts {
    prefix: String,
    made: Vec<String>,
}

impl Hosts {
    /// `nodes` hosts, or None (with the reason printed) when this is not root.
    pub fn new(tag: &str, nodes: usize) -> Option<Self> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipping: separate hosts need root to make network namespaces");
            return None;
        }
        let mut h = Hosts {
            prefix: format!("swe{}{tag}", std::process::id() % 100_000),
            made: Vec::new(),
        };
        h.add_namespace("sw");
        let sw = h.name("sw");
        h.ip(&format!("-n {sw} link add br0 type bridge"));
        h.ip(&format!("-n {sw} link set br0 up"));
        for i in 1..=nodes {
            let ns = h.add_namespace(&format!("n{i}"));
            let (outer, inner) = (h.name(&format!("o{i}")), h.name(&format!("i{i}")));
            h.ip(&format!("link add {outer} type veth peer name {inner}"));
            h.ip(&format!("link set {outer} netns {sw}"));
            h.ip(&format!("link set {inner} netns {ns}"));
            h.ip(&format!("-n {sw} link set {outer} master br0 up"));
            h.ip(&format!("-n {ns} addr add {}/24 dev {inner}", Self::addr(i)));
            h.ip(&format!("-n {ns} link set {inner} up"));
        }
        Some(h)
    }

    /// Gives node i (from 1) one more address on its underlay interface, e.g. to stand for a
    /// LAN the host is on.
    pub fn add_address(&self, i: usize, cidr: &str) {
        let (ns, inner) = (self.ns(i), self.name(&format!("i{i}")));
        self.ip(&format!("-n {ns} addr add {cidr} dev {inner}"));
    }

    /// Node i's address (from 1).
    pub fn addr(i: usize) -> String {
        format!("198.18.0.{i}")
    }

    /// Node i's namespace name (from 1).
    pub fn ns(&self, i: usize) -> String {
        self.name(&format!("n{i}"))
    }

    fn name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    fn add_namespace(&mut self, what: &str) -> String {
        let name = self.name(what);
        self.ip(&format!("netns add {name}"));
        self.made.push(name.clone());
        self.ip(&format!("-n {name} link set lo up"));
        name
    }

    fn ip(&self, args: &str) {
        let out = Command::new("ip")
            .args(args.split_whitespace())
            .output()
            .expect("the ip command (iproute2) runs");
        assert!(
            out.status.success(),
            "ip {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}
