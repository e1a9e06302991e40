//! The checkers, run after healing: on the recorded history (linearizability per service,
//! monotonic reads per manager), on the observed raft states (one leader per term, committed
//! entries that never change, an applied index that never goes back) and on the healed
//! cluster's tasks (convergence). Each returns the anomalies it found, described.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::linearizable::Operation;
use crate::support::linearizable::ServiceModel;
use crate::support::linearizable::ServiceOp;
use crate::support::linearizable::ServiceResult;
use crate::support::linearizable::check;

use super::workload::Op;

/// One poll of a manager's raft status.
#[derive(Debug, Clone)]
pub struct Observation {
    pub node: usize,
    /// Microseconds since the workload started.
    pub at: u64,
    pub raft_id: u64,
    pub term: u64,
    pub leader: bool,
    pub applied: Option<u64>,
    pub applied_term: Option<u64>,
}

impl Observation {
    pub fn from_status(node: usize, at: u64, status: &Value) -> Option<Self> {
        Some(Self {
            node,
            at,
            raft_id: status["id"].as_u64()?,
            term: status["term"].as_u64()?,
            leader: status["state"] == "leader",
            applied: status["applied"].as_u64(),
            applied_term: status["applied_term"].as_u64(),
        })
    }
}

/// Raft's safety properties as the polls saw them.
pub fn raft_anomalies(observations: &[Observation]) -> Vec<String> {
    let mut out = Vec::new();
    let mut leaders: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut entries: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut last: BTreeMap<(usize, u64), &Observation> = BTreeMap::new();
    let mut sorted: Vec<&Observation> = observations.iter().collect();
    sorted.sort_by_key(|o| o.at);
    for o in sorted {
        if o.leader {
            leaders.entry(o.term).or_default().insert(o.raft_id);
        }
        if let (Some(index), Some(term)) = (o.applied, o.applied_term) {
            match entries.get(&index) {
                Some((t, n)) if *t != term => out.push(format!(
                    "committed entry {index} changed: applied with term {t} on node {n}, with term {term} on node {}",
                    o.node
                )),
                Some(_) => {}
                None => {
                    entries.insert(index, (term, o.node));
                }
            }
        }
        // One raft member's own history: across restarts of its process too.
        if let Some(prev) = last.get(&(o.node, o.raft_id)) {
            if o.term < prev.term {
                out.push(format!(
                    "node {} went back from term {} to {} (at {} µs)",
                    o.node, prev.term, o.term, o.at
                ));
            }
            if o.applied < prev.applied {
                out.push(format!(
                    "node {} went back from applied index {:?} to {:?} (at {} µs)",
                    o.node, prev.applied, o.applied, o.at
                ));
            }
        }
        last.insert((o.node, o.raft_id), o);
    }
    for (term, ids) in leaders {
        if ids.len() > 1 {
            out.push(format!("term {term} had {} leaders: raft ids {ids:?}", ids.len()));
        }
    }
    out
}

/// Linearizability of every service's history, and monotonic reads on each manager.
pub fn history_anomalies(ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_service: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_service.entry(op.service.as_str()).or_default().push(op);
    }
    for (service, ops) in &by_service {
        let history: Vec<Operation<ServiceOp, ServiceResult>> = ops
            .iter()
            .map(|o| Operation {
                invoked: o.invoked,
                returned: o.returned.clone(),
                input: o.input.clone(),
            })
            .collect();
        if !check(&ServiceModel, &history) {
            let mut text = format!("service {service}: its history is not linearizable:");
            let mut sorted = ops.clone();
            sorted.sort_by_key(|o| o.invoked);
            for o in sorted {
                text.push_str(&format!(
                    "\n    client {} on node {}: {:?} invoked {} returned {:?} version {:?} {}",
                    o.client,
                    o.node,
                    o.input,
                    o.invoked,
                    o.returned,
                    o.version,
                    o.error.as_deref().unwrap_or("")
                ));
            }
            out.push(text);
        }
        // A manager never serves an older version of a service than it served before.
        let mut reads: Vec<&&Op> = ops
            .iter()
            .filter(|o| o.input == ServiceOp::Read && o.version.is_some())
            .collect();
        reads.sort_by_key(|o| o.invoked);
        for (i, later) in reads.iter().enumerate() {
            for earlier in &reads[..i] {
                let Some((returned, _)) = &earlier.returned else {
                    continue;
                };
                if earlier.node == later.node && *returned < later.invoked && later.version < earlier.version {
                    out.push(format!(
                        "service {service}: node {} served version {:?} at {} µs after serving {:?}",
                        later.node, later.version, later.invoked, earlier.version
                    ));
                }
            }
        }
    }
    out
}

/// What keeps the healed cluster from having converged, from the leader's services (listed
/// with their status), tasks and nodes: every service has exactly its replicas running on
/// nodes that are up, no slot runs twice, and the API's running count leaves out tasks on Down
/// nodes. Empty when converged.
pub fn convergence_problems(services: &[Value], tasks: &[Value], nodes: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let down: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n["Status"]["State"] != "ready")
        .filter_map(|n| n["ID"].as_str())
        .collect();
    for s in services {
        let (Some(id), Some(name)) = (s["ID"].as_str(), s["Spec"]["Name"].as_str()) else {
            continue;
        };
        let Some(replicas) = s["Spec"]["Mode"]["Replicated"]["Replicas"].as_u64() else {
            continue;
        };
        let running: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["ServiceID"] == id && t["Status"]["State"] == "running")
            .filter(|t| t["NodeID"].as_str().is_some_and(|n| !down.contains(n)))
            .collect();
        if running.len() as u64 != replicas {
            out.push(format!(
                "service {name}: {} running tasks, {replicas} wanted",
                running.len()
            ));
        }
        if let Some(counted) = s["ServiceStatus"]["RunningTasks"].as_u64()
            && counted != running.len() as u64
        {
            out.push(format!(
                "service {name}: the API counts {counted} running tasks, {} run on nodes that are up",
                running.len()
            ));
        }
        let mut slots: BTreeMap<u64, usize> = BTreeMap::new();
        for t in &running {
            *slots.entry(t["Slot"].as_u64().unwrap_or(0)).or_default() += 1;
        }
        for (slot, n) in slots {
            if n > 1 {
                out.push(format!("service {name}: slot {slot} has {n} running tasks"));
            }
        }
    }
    for n in nodes {
        if n["Status"]["State"] != "ready" {
            out.push(format!(
                "node {} is {}",
                n["Description"]["Hostname"], n["Status"]["State"]
            ));
        }
    }
    out
}

/// What keeps the engine's containers from matching the healed cluster: per service, at most
/// one running container per slot and as many running as the store has tasks running on the
/// engine's nodes (`wanted`, by service name); no running container of a removed service.
/// `containers` are (service name, slot, running).
pub fn container_problems(wanted: &BTreeMap<String, u64>, containers: &[(String, u64, bool)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut running: BTreeMap<&str, BTreeMap<u64, usize>> = BTreeMap::new();
    for (service, slot, is_running) in containers {
        if *is_running {
            *running.entry(service).or_default().entry(*slot).or_default() += 1;
        }
    }
    for (service, slots) in &running {
        let total: usize = slots.values().sum();
        match wanted.get(*service) {
            None => out.push(format!(
                "removed service {service} still has {total} running containers"
            )),
            Some(w) if *w != total as u64 => {
                out.push(format!("service {service}: {total} running containers, {w} wanted"))
            }
            Some(_) => {}
        }
        for (slot, n) in slots {
            if *n > 1 {
                out.push(format!("service {service}: slot {slot} has {n} running containers"));
            }
        }
    }
    for (service, w) in wanted {
        if *w > 0 && !running.contains_key(service.as_str()) {
            out.push(format!("service {service}: no running containers, {w} wanted"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obs(node: usize, at: u64, term: u64, leader: bool, applied: (u64, u64)) -> Observation {
        Observation {
            node,
            at,
            raft_id: node as u64 + 1,
            term,
            leader,
            applied: Some(applied.0),
            applied_term: Some(applied.1),
        }
    }

    #[test]
    fn two_leaders_in_a_term_a_changed_entry_and_a_step_back_are_anomalies() {
        let fine = vec![
            obs(0, 1, 2, true, (10, 2)),
            obs(1, 2, 2, false, (10, 2)),
            obs(1, 3, 3, true, (12, 3)),
        ];
        assert!(raft_anomalies(&fine).is_empty());
        let two_leaders = vec![obs(0, 1, 2, true, (10, 2)), obs(1, 2, 2, true, (10, 2))];
        assert_eq!(raft_anomalies(&two_leaders).len(), 1);
        let changed = vec![obs(0, 1, 2, true, (10, 2)), obs(1, 2, 3, false, (10, 3))];
        assert!(raft_anomalies(&changed)[0].contains("committed entry 10 changed"));
        let back = vec![obs(0, 1, 2, true, (10, 2)), obs(0, 2, 2, true, (9, 2))];
        assert!(raft_anomalies(&back)[0].contains("went back from applied index"));
    }

    #[test]
    fn convergence_needs_the_replicas_running_once_per_slot_on_ready_nodes() {
        let services = vec![json!({"ID": "s1", "Spec": {"Name": "a", "Mode": {"Replicated": {"Replicas": 2}}}})];
        let nodes = vec![
            json!({"ID": "n1", "Status": {"State": "ready"}}),
            json!({"ID": "n2", "Status": {"State": "down"}, "Description": {"Hostname": "w2"}}),
        ];
        let task = |slot: u64, node: &str| json!({"ID": "t", "ServiceID": "s1", "Slot": slot, "NodeID": node, "Status": {"State": "running"}});
        let problems = convergence_problems(&services, &[task(1, "n1"), task(2, "n1")], &nodes[..1]);
        assert!(problems.is_empty(), "{problems:?}");
        let problems = convergence_problems(&services, &[task(1, "n1"), task(1, "n1")], &nodes[..1]);
        assert!(problems.iter().any(|p| p.contains("slot 1 has 2")), "{problems:?}");
        let problems = convergence_problems(&services, &[task(1, "n1"), task(2, "n2")], &nodes);
        assert!(
            problems.iter().any(|p| p.contains("1 running tasks, 2 wanted")),
            "{problems:?}"
        );
        let mut counted = services.clone();
        counted[0]["ServiceStatus"] = json!({"RunningTasks": 2});
        let problems = convergence_problems(&counted, &[task(1, "n1"), task(2, "n2")], &nodes);
        assert!(problems.iter().any(|p| p.contains("the API counts 2")), "{problems:?}");
        let wanted = BTreeMap::from([("a".to_string(), 1)]);
        assert!(container_problems(&wanted, &[("a".into(), 1, true), ("a".into(), 1, false)]).is_empty());
        assert_eq!(
            container_problems(&wanted, &[("a".into(), 1, true), ("gone".into(), 1, true)]).len(),
            1
        );
    }
}
