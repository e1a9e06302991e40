//! What the scheduler knows about one node while it places a batch: the tasks it holds, what
//! they reserve, the host ports they publish and where services failed recently. Built from a
//! store view, then updated in memory as tasks are placed within the same pass.

use std::collections::HashMap;
use std::collections::HashSet;

use swarm_model::GenericResource;
use swarm_model::Node;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;

use crate::store::StoreState;

/// A node is tried last for a service that failed on it this many times recently.
pub const MAX_RECENT_FAILURES: usize = 5;
/// How far back failures count: 5 minutes, as in Swarm.
pub const FAILURE_WINDOW_NS: i128 = 5 * 60 * 1_000_000_000;

/// What a group of tasks asks of a node, beyond the static checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// Discrete generic resources: kind → count.
    pub generic: Vec<(String, i64)>,
}

impl Reservation {
    pub fn of(task: &Task) -> Self {
        let Some(r) = task.spec.resources.as_ref().and_then(|r| r.reservations.as_ref()) else {
            return Self::default();
        };
        Self {
            nano_cpus: r.nano_cpus,
            memory_bytes: r.memory_bytes,
            generic: r
                .generic_resources
                .iter()
                .flatten()
                .filter_map(|g| g.discrete_resource_spec.as_ref())
                .map(|d| (d.kind.clone(), d.value))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nano_cpus == 0 && self.memory_bytes == 0 && self.generic.is_empty()
    }
}

/// How much of each generic resource kind a node offers: discrete counts, or the number of
/// named items of that kind.
fn generic_capacity(resources: &[GenericResource]) -> HashMap<String, i64> {
    let mut cap: HashMap<String, i64> = HashMap::new();
    for g in resources {
        if let Some(d) = &g.discrete_resource_spec {
            *cap.entry(d.kind.clone()).or_default() += d.value;
        }
        if let Some(n) = &g.named_resource_spec {
            *cap.entry(n.kind.clone()).or_default() += 1;
        }
    }
    cap
}

#[derive(Debug, Clone)]
pub struct NodeInfo<'a> {
    pub node: &'a Node,
    /// Tasks on the node that are placed and not finished.
    pub total_tasks: usize,
    pub tasks_by_service: HashMap<&'a str, usize>,
    pub reserved_cpus: i64,
    pub reserved_memory: i64,
    pub reserved_generic: HashMap<String, i64>,
    generic_capacity: HashMap<String, i64>,
    /// `(protocol, port)` published in host mode by the node's tasks.
    pub host_ports: HashSet<(String, u32)>,
    /// Recent failures by (service, spec version).
    recent_failures: HashMap<(&'a str, u64), usize>,
}

/// Whether a task counts on its node: placed (at least ASSIGNED) and not past RUNNING.
pub fn occupies_node(t: &Task) -> bool {
    !t.node_id.is_empty() && t.status.state >= TaskState::Assigned && t.status.state <= TaskState::Running
}

impl<'a> NodeInfo<'a> {
    pub fn new(node: &'a Node) -> Self {
        Self {
            node,
            total_tasks: 0,
            tasks_by_service: HashMap::new(),
            reserved_cpus: 0,
            reserved_memory: 0,
            reserved_generic: HashMap::new(),
            generic_capacity: generic_capacity(node.description.resources.generic_resources.as_deref().unwrap_or(&[])),
            host_ports: HashSet::new(),
            recent_failures: HashMap::new(),
        }
    }

    /// Every node of the store, sorted by ID, with what its tasks hold.
    pub fn build_all(s: &'a StoreState, now: Timestamp) -> Vec<NodeInfo<'a>> {
        let mut infos: Vec<NodeInfo<'a>> = s.nodes.iter().map(NodeInfo::new).collect();
        infos.sort_by(|a, b| a.node.id.cmp(&b.node.id));
        let index: HashMap<&str, usize> = infos.iter().enumerate().map(|(i, n)| (n.node.id.as_str(), i)).collect();
        let now_ns = now.unix_nanos().unwrap_or(0);
        for t in s.tasks.iter() {
            let Some(&i) = index.get(t.node_id.as_str()) else {
                continue;
            };
            let info = &mut infos[i];
            if occupies_node(t) {
                // Reservations are held while the task may still run, whatever it is told.
                info.reserve(&Reservation::of(t));
                if t.is_runnable() {
                    info.count(&t.service_id);
                }
                if let Some(svc) = s.services.get(&t.service_id) {
                    for p in host_mode_ports(svc) {
                        info.host_ports.insert(p);
                    }
                }
            }
            let failed = matches!(t.status.state, TaskState::Failed | TaskState::Rejected);
            let recent = t
                .status
                .timestamp
                .unix_nanos()
                .is_some_and(|ts| now_ns - ts <= FAILURE_WINDOW_NS);
            if failed && recent && t.slot != 0 {
                let key = (t.service_id.as_str(), t.spec_version.map(|v| v.index).unwrap_or(0));
                *info.recent_failures.entry(key).or_default() += 1;
            }
        }
        infos
    }

    fn count(&mut self, service_id: &'a str) {
        self.total_tasks += 1;
        *self.tasks_by_service.entry(service_id).or_default() += 1;
    }

    fn reserve(&mut self, r: &Reservation) {
        self.reserved_cpus += r.nano_cpus;
        self.reserved_memory += r.memory_bytes;
        for (kind, n) in &r.generic {
            *self.reserved_generic.entry(kind.clone()).or_default() += n;
        }
    }

    /// Records a task placed on this node in the current pass.
    pub fn place(&mut self, service_id: &'a str, r: &Reservation, ports: &[(String, u32)]) {
        self.count(service_id);
        self.reserve(r);
        self.host_ports.extend(ports.iter().cloned());
    }

    pub fn service_tasks(&self, service_id: &str) -> usize {
        self.tasks_by_service.get(service_id).copied().unwrap_or(0)
    }

    /// Whether the reservation fits in what is left of the node's capacity.
    pub fn fits(&self, r: &Reservation) -> bool {
        let res = &self.node.description.resources;
        if r.nano_cpus > 0 && self.reserved_cpus + r.nano_cpus > res.nano_cpus {
            return false;
        }
        if r.memory_bytes > 0 && self.reserved_memory + r.memory_bytes > res.memory_bytes {
            return false;
        }
        r.generic.iter().all(|(kind, n)| {
            let cap = self.generic_capacity.get(kind).copied().unwrap_or(0);
            let used = self.reserved_generic.get(kind).copied().unwrap_or(0);
            used + n <= cap
        })
    }

    /// Failures of this service (at this spec version) on the node in the last 5 minutes.
    pub fn recent_failures(&self, service_id: &str, spec_version: u64) -> usize {
        self.recent_failures
            .get(&(service_id, spec_version))
            .copied()
            .unwrap_or(0)
    }
}

/// The `(protocol, port)` pairs a service publishes in host mode.
pub fn host_mode_ports(svc: &swarm_model::Service) -> Vec<(String, u32)> {
    svc.spec
        .endpoint_spec
        .iter()
        .flat_map(|e| e.ports.iter().flatten())
        .filter(|p| p.publish_mode == "host")
        .filter_map(|p| {
            let port = p.published_port.filter(|pp| *pp > 0)?;
            let proto = if p.protocol.is_empty() {
                "tcp"
            } else {
                p.protocol.as_str()
            };
            Some((proto.to_string(), port))
        })
        .collect()
}
