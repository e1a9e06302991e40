//! Network cuts between the schedule's hosts: nftables rules in each receiving host's namespace
//! (a table of the suite's own, beside whatever the daemon sets up) that drop packets from the
//! hosts it must not hear. Overlapping cuts add up; ending one takes back only its own drops.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::process::Stdio;

use crate::support::hosts::Hosts;

use super::schedule::NODES;

#[derive(Default)]
pub struct Cuts {
    /// How many active cuts drop packets (from, to).
    active: BTreeMap<(usize, usize), usize>,
}

impl Cuts {
    pub fn add(&mut self, hosts: &Hosts, drops: &[(usize, usize)]) {
        for d in drops {
            *self.active.entry(*d).or_default() += 1;
        }
        self.apply(hosts, drops);
    }

    pub fn remove(&mut self, hosts: &Hosts, drops: &[(usize, usize)]) {
        for d in drops {
            if let Some(n) = self.active.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    self.active.remove(d);
                }
            }
        }
        self.apply(hosts, drops);
    }

    pub fn heal(&mut self, hosts: &Hosts) {
        let all: Vec<(usize, usize)> = self.active.keys().copied().collect();
        self.active.clear();
        self.apply(hosts, &all);
    }

    /// Rewrites the rules of every host that receives one of `changed`.
    fn apply(&self, hosts: &Hosts, changed: &[(usize, usize)]) {
        let mut receivers: Vec<usize> = changed.iter().map(|(_, to)| *to).collect();
        receivers.sort_unstable();
        receivers.dedup();
        for to in receivers {
            let senders: Vec<String> = (0..NODES)
                .filter(|from| self.active.contains_key(&(*from, to)))
                .map(|from| Hosts::addr(from + 1))
                .collect();
            let mut rules = String::from(
                "table inet swarm_chaos\ndelete table inet swarm_chaos\ntable inet swarm_chaos {\n  chain input {\n    type filter hook input priority -300; policy accept;\n",
            );
            if !senders.is_empty() {
                rules.push_str(&format!("    ip saddr {{ {} }} drop\n", senders.join(", ")));
            }
            rules.push_str("  }\n}\n");
            nft(&hosts.ns(to + 1), &rules);
        }
    }
}

fn nft(ns: &str, rules: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft in a host's namespace");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(rules.as_bytes())
        .expect("write nft rules");
    let out = child.wait_with_output().expect("nft finishes");
    assert!(
        out.status.success(),
        "nft in {ns}: {}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
}
