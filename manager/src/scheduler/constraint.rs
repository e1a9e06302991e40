//! Placement constraints, in Swarm's syntax: `key==value` or `key!=value`, ANDed. Values match
//! case-insensitively (label keys exactly); a missing label compares as empty, so
//! `node.labels.zone!=a` also matches nodes without a zone.
//!
//! Unlike Swarm, an unknown key or a malformed `node.ip` value is an error when the service is
//! created, not a constraint that silently never matches.

use std::net::IpAddr;

use swarm_model::Node;
use swarm_model::NodeRole;

/// What a constraint looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKey {
    NodeId,
    Hostname,
    Ip(IpMatch),
    Role,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
}

/// A `node.ip` value: one address, or a network in CIDR notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMatch {
    Addr(IpAddr),
    Net(IpAddr, u8),
}

impl IpMatch {
    fn parse(value: &str) -> Result<Self, ConstraintProblem> {
        match value.split_once('/') {
            None => value
                .parse()
                .map(IpMatch::Addr)
                .map_err(|_| ConstraintProblem::NotAnIp(value.to_string())),
            Some((addr, bits)) => {
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| ConstraintProblem::NotACidr(value.to_string()))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                match bits.parse::<u8>() {
                    Ok(b) if b <= max => Ok(IpMatch::Net(addr, b)),
                    _ => Err(ConstraintProblem::PrefixLength {
                        value: value.to_string(),
                        max,
                    }),
                }
            }
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            IpMatch::Addr(a) => a == ip,
            IpMatch::Net(net, bits) => match (net, ip) {
                (IpAddr::V4(n), IpAddr::V4(i)) => prefix_eq(&n.octets(), &i.octets(), bits),
                (IpAddr::V6(n), IpAddr::V6(i)) => prefix_eq(&n.octets(), &i.octets(), bits),
                _ => false,
            },
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// One parsed constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: ConstraintKey,
    /// `==` (true) or `!=` (false).
    pub equal: bool,
    pub value: String,
}

/// A constraint that cannot be parsed, with the expression and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid constraint {expr:?}: {problem}")]
pub struct ConstraintError {
    pub expr: String,
    pub problem: ConstraintProblem,
}

/// What is wrong with a constraint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintProblem {
    #[error("expected one operator from ==, != (KEY==VALUE or KEY!=VALUE)")]
    NoOperator,
    #[error("key {0:?} is invalid")]
    InvalidKey(String),
    #[error("value {0:?} is invalid")]
    InvalidValue(String),
    #[error("node.ip value {0:?} is neither an IP address nor a CIDR network")]
    NotAnIp(String),
    #[error("node.ip value {0:?} is not a valid CIDR network")]
    NotACidr(String),
    #[error("node.ip value {value:?} has an invalid prefix length (0 to {max})")]
    PrefixLength { value: String, max: u8 },
    #[error("node.role is manager or worker, not {0:?}")]
    Role(String),
    #[error(
        "unknown key {0:?} (expected node.id, node.hostname, node.ip, node.role, node.platform.os, \
         node.platform.arch, node.labels.<k> or engine.labels.<k>)"
    )]
    UnknownKey(String),
}

/// `x86_64` and `amd64` (and `aarch64` and `arm64`) name the same architecture.
pub fn normalize_arch(arch: &str) -> String {
    let a = arch.to_ascii_lowercase();
    match a.as_str() {
        "x86_64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        _ => a,
    }
}

fn key_is_valid(key: &str) -> bool {
    key.len() >= 2
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn value_is_valid(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ":-_.*()?+[]\\^$|/".contains(c))
}

impl Constraint {
    pub fn parse(expr: &str) -> Result<Self, ConstraintError> {
        let fail = |problem: ConstraintProblem| ConstraintError {
            expr: expr.to_string(),
            problem,
        };
        let (key, value, equal) = if let Some((k, v)) = expr.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = expr.split_once("!=") {
            (k, v, false)
        } else {
            return Err(fail(ConstraintProblem::NoOperator));
        };
        let (key, value) = (key.trim(), value.trim());
        if !key_is_valid(key) {
            return Err(fail(ConstraintProblem::InvalidKey(key.to_string())));
        }
        if !value_is_valid(value) || value.contains('=') || value.contains('!') {
            return Err(fail(ConstraintProblem::InvalidValue(value.to_string())));
        }
        let lower = key.to_ascii_lowercase();
        let key = match lower.as_str() {
            "node.id" => ConstraintKey::NodeId,
            "node.hostname" => ConstraintKey::Hostname,
            "node.ip" => ConstraintKey::Ip(IpMatch::parse(value).map_err(fail)?),
            "node.role" => {
                if !["manager", "worker"].contains(&value.to_ascii_lowercase().as_str()) {
                    return Err(fail(ConstraintProblem::Role(value.to_string())));
                }
                ConstraintKey::Role
            }
            "node.platform.os" => ConstraintKey::Os,
            "node.platform.arch" => ConstraintKey::Arch,
            _ if lower.starts_with("node.labels.") && key.len() > "node.labels.".len() => {
                ConstraintKey::NodeLabel(key["node.labels.".len()..].to_string())
            }
            _ if lower.starts_with("engine.labels.") && key.len() > "engine.labels.".len() => {
                ConstraintKey::EngineLabel(key["engine.labels.".len()..].to_string())
            }
            _ => {
                return Err(fail(ConstraintProblem::UnknownKey(key.to_string())));
            }
        };
        Ok(Constraint {
            key,
            equal,
            value: value.to_string(),
        })
    }

    /// Parses every expression; the first bad one is the error.
    pub fn parse_all(exprs: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
        exprs.iter().map(|e| Constraint::parse(e)).collect()
    }

    pub fn matches(&self, node: &Node) -> bool {
        let same = |actual: &str| actual.eq_ignore_ascii_case(&self.value);
        let hit = match &self.key {
            ConstraintKey::NodeId => same(&node.id),
            ConstraintKey::Hostname => same(&node.description.hostname),
            ConstraintKey::Ip(m) => node.status.addr.parse::<IpAddr>().is_ok_and(|ip| m.contains(ip)),
            ConstraintKey::Role => same(match node.spec.role {
                NodeRole::Manager => "manager",
                NodeRole::Worker => "worker",
            }),
            ConstraintKey::Os => same(&node.description.platform.os),
            ConstraintKey::Arch => {
                normalize_arch(&node.description.platform.architecture) == normalize_arch(&self.value)
            }
            ConstraintKey::NodeLabel(k) => same(node.spec.labels.get(k).map(String::as_str).unwrap_or("")),
            ConstraintKey::EngineLabel(k) => same(
                node.description
                    .engine
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(k))
                    .map(String::as_str)
                    .unwrap_or(""),
            ),
        };
        hit == self.equal
    }
}

/// Whether `node` satisfies every constraint.
pub fn all_match(constraints: &[Constraint], node: &Node) -> bool {
    constraints.iter().all(|c| c.matches(node))
}

#[cfg(test)]
mod tests {
    use swarm_model::Labels;

    use super::*;

    fn node() -> Node {
        let mut n = Node {
            id: "abc123".into(),
            ..Default::default()
        };
        n.description.hostname = "Worker-1".into();
        n.description.platform.os = "linux".into();
        n.description.platform.architecture = "x86_64".into();
        n.status.addr = "10.1.2.3".into();
        n.spec.labels = Labels::from([("zone".to_string(), "East".to_string())]);
        n.description.engine.labels = Some(Labels::from([("disk".to_string(), "ssd".to_string())]));
        n
    }

    fn holds(expr: &str) -> bool {
        Constraint::parse(expr).unwrap().matches(&node())
    }

    #[test]
    fn every_key_matches_case_insensitively() {
        assert!(holds("node.id==ABC123"));
        assert!(holds("node.hostname == worker-1"));
        assert!(holds("node.role==worker"));
        assert!(!holds("node.role==manager"));
        assert!(holds("node.role!=manager"));
        assert!(holds("node.platform.os==Linux"));
        assert!(holds("node.platform.arch==amd64"));
        assert!(holds("node.platform.arch==x86_64"));
        assert!(!holds("node.platform.arch==arm64"));
        assert!(holds("node.labels.zone==east"));
        assert!(holds("engine.labels.disk==SSD"));
        assert!(holds("NODE.LABELS.zone==east"));
    }

    #[test]
    fn a_missing_label_compares_as_empty() {
        assert!(!holds("node.labels.rack==r1"));
        assert!(holds("node.labels.rack!=r1"));
        // Label keys match exactly.
        assert!(!holds("node.labels.ZONE==east"));
    }

    #[test]
    fn node_ip_takes_addresses_and_networks() {
        assert!(holds("node.ip==10.1.2.3"));
        assert!(!holds("node.ip==10.1.2.4"));
        assert!(holds("node.ip==10.1.0.0/16"));
        assert!(holds("node.ip==10.1.2.0/30"));
        assert!(!holds("node.ip==10.2.0.0/16"));
        assert!(holds("node.ip!=192.168.0.0/16"));
        assert!(holds("node.ip==0.0.0.0/0"));
        assert!(!holds("node.ip==::1"));
    }

    #[test]
    fn bad_expressions_name_the_problem() {
        let err = |e: &str| Constraint::parse(e).unwrap_err().to_string();
        assert!(err("node.role=manager").contains("expected one operator"));
        assert!(err("1node==x").contains("key \"1node\" is invalid"));
        assert!(err("node.role==boss").contains("manager or worker"));
        assert!(err("foo.bar==1").contains("unknown key \"foo.bar\""));
        assert!(err("node.ip==10.0.0.0/40").contains("prefix length"));
        assert!(err("node.ip==banana").contains("neither an IP address"));
        assert!(err("node.labels.x==").contains("value \"\" is invalid"));
        assert!(err("node.labels.==a").contains("unknown key"));
        assert!(err("node.id==a==b").contains("invalid"));
    }
}
