//! The filter pipeline, in Swarm's order. A node fails at the first filter it misses; the
//! per-filter failure counts make the `no suitable node (…)` explanation.

use swarm_model::Availability;
use swarm_model::NodeState;
use swarm_model::Platform;
use swarm_model::Task;

use super::constraint::Constraint;
use super::constraint::all_match;
use super::constraint::normalize_arch;
use super::node_info::NodeInfo;
use super::node_info::Reservation;

/// One check a node must pass to take a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    /// Ready and active.
    Ready,
    /// CPU, memory and generic resource reservations fit.
    Resources,
    /// Placement constraints hold.
    Constraints,
    /// The node's OS and architecture are among the task's platforms.
    Platform,
    /// No other task on the node publishes the same host-mode port.
    HostPort,
    /// The node runs fewer of the service's tasks than `MaxReplicas`.
    MaxReplicas,
}

/// Pipeline order.
pub const PIPELINE: [Filter; 6] = [
    Filter::Ready,
    Filter::Resources,
    Filter::Constraints,
    Filter::Platform,
    Filter::HostPort,
    Filter::MaxReplicas,
];

impl Filter {
    /// Swarm's words for `n` nodes failing this filter.
    pub fn explain(self, n: usize) -> String {
        let nodes = if n == 1 {
            "1 node".to_string()
        } else {
            format!("{n} nodes")
        };
        match self {
            Filter::Ready => format!("{nodes} not available for new tasks"),
            Filter::Resources => format!("insufficient resources on {nodes}"),
            Filter::Constraints => format!("scheduling constraints not satisfied on {nodes}"),
            Filter::Platform => format!("unsupported platform on {nodes}"),
            Filter::HostPort => format!("host-mode port already in use on {nodes}"),
            Filter::MaxReplicas => "max replicas per node limit exceed".to_string(),
        }
    }
}

/// What a group of tasks (one service at one spec version) needs from a node.
#[derive(Debug, Clone)]
pub struct Requirements<'a> {
    pub service_id: &'a str,
    pub spec_version: u64,
    pub reservation: Reservation,
    /// `None` when a stored constraint does not parse: then no node satisfies it.
    pub constraints: Option<Vec<Constraint>>,
    pub platforms: Vec<Platform>,
    pub host_ports: Vec<(String, u32)>,
    /// 0 = no limit.
    pub max_replicas: u64,
}

impl<'a> Requirements<'a> {
    /// The requirements of `task`, whose service publishes `host_ports` in host mode.
    pub fn of(task: &'a Task, host_ports: Vec<(String, u32)>) -> Self {
        let placement = task.spec.placement.as_ref();
        let constraints = Constraint::parse_all(placement.and_then(|p| p.constraints.as_deref()).unwrap_or(&[])).ok();
        Self {
            service_id: &task.service_id,
            spec_version: task.spec_version.map(|v| v.index).unwrap_or(0),
            reservation: Reservation::of(task),
            constraints,
            platforms: placement.and_then(|p| p.platforms.clone()).unwrap_or_default(),
            host_ports,
            max_replicas: placement.map(|p| p.max_replicas).unwrap_or(0),
        }
    }
}

fn platform_ok(platforms: &[Platform], node: &swarm_model::Node) -> bool {
    if platforms.is_empty() {
        return true;
    }
    let p = &node.description.platform;
    platforms.iter().any(|want| {
        let arch_ok = want.architecture.is_empty()
            || p.architecture.is_empty()
            || normalize_arch(&want.architecture) == normalize_arch(&p.architecture);
        let os_ok = want.os.is_empty() || p.os.is_empty() || want.os.eq_ignore_ascii_case(&p.os);
        arch_ok && os_ok
    })
}

/// Whether `info` passes `filter` for a task with requirements `req`.
pub fn passes(filter: Filter, req: &Requirements, info: &NodeInfo) -> bool {
    let node = info.node;
    match filter {
        Filter::Ready => node.status.state == NodeState::Ready && node.spec.availability == Availability::Active,
        Filter::Resources => req.reservation.is_empty() || info.fits(&req.reservation),
        Filter::Constraints => req.constraints.as_ref().is_some_and(|c| all_match(c, node)),
        Filter::Platform => platform_ok(&req.platforms, node),
        Filter::HostPort => req.host_ports.iter().all(|p| !info.host_ports.contains(p)),
        Filter::MaxReplicas => req.max_replicas == 0 || (info.service_tasks(req.service_id) as u64) < req.max_replicas,
    }
}

/// The first filter the node fails, if any.
pub fn first_failure(req: &Requirements, info: &NodeInfo) -> Option<Filter> {
    PIPELINE.into_iter().find(|f| !passes(*f, req, info))
}

/// Why none of `infos` can take the task, most common reason first (ties in pipeline order),
/// e.g. `scheduling constraints not satisfied on 3 nodes; insufficient resources on 1 node`.
pub fn explain<'a>(req: &Requirements, infos: impl IntoIterator<Item = &'a NodeInfo<'a>>) -> String {
    let mut counts = [0usize; PIPELINE.len()];
    for info in infos {
        if let Some(f) = first_failure(req, info) {
            counts[PIPELINE.iter().position(|p| *p == f).unwrap_or(0)] += 1;
        }
    }
    let mut order: Vec<usize> = (0..PIPELINE.len()).filter(|i| counts[*i] > 0).collect();
    order.sort_by_key(|i| std::cmp::Reverse(counts[*i]));
    order
        .into_iter()
        .map(|i| PIPELINE[i].explain(counts[i]))
        .collect::<Vec<_>>()
        .join("; ")
}
