//! Where a group of tasks goes: the preference tree and, at its leaves, the node order.
//!
//! Nodes are ordered by (recent failures of this service when there are at least five, tasks of
//! this service, tasks overall), best first, and each task goes to the best node that passes
//! every filter; the node is checked again after each placement. With `spread` preferences the
//! nodes form a tree, one level per preference, branches keyed by label value (nodes without the
//! label share the `""` branch). Each level shares the tasks out so branch totals (existing tasks
//! of the service plus new ones) end as even as possible; a branch that cannot take its share is
//! full and the others absorb the rest.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use swarm_model::Node;

use super::filter::Requirements;
use super::filter::first_failure;
use super::node_info::MAX_RECENT_FAILURES;
use super::node_info::NodeInfo;

/// A `spread=` descriptor as a label lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadKey {
    NodeLabel(String),
    EngineLabel(String),
}

impl SpreadKey {
    /// `node.labels.X` or `engine.labels.X` (prefix case-insensitive); anything else is ignored,
    /// as Swarm does.
    pub fn parse(descriptor: &str) -> Option<Self> {
        let lower = descriptor.to_ascii_lowercase();
        for (prefix, node) in [("node.labels.", true), ("engine.labels.", false)] {
            if lower.starts_with(prefix) && descriptor.len() > prefix.len() {
                let key = descriptor[prefix.len()..].to_string();
                return Some(if node {
                    SpreadKey::NodeLabel(key)
                } else {
                    SpreadKey::EngineLabel(key)
                });
            }
        }
        None
    }

    pub fn value_of<'n>(&self, node: &'n Node) -> &'n str {
        let v = match self {
            SpreadKey::NodeLabel(k) => node.spec.labels.get(k),
            SpreadKey::EngineLabel(k) => node.description.engine.labels.as_ref().and_then(|l| l.get(k)),
        };
        v.map(String::as_str).unwrap_or("")
    }
}

/// Node indexes grouped by preference levels.
#[derive(Debug)]
enum Tree {
    Leaf(Vec<usize>),
    Branches(Vec<Tree>),
}

fn build_tree(nodes: Vec<usize>, keys: &[SpreadKey], infos: &[NodeInfo]) -> Tree {
    let Some((key, rest)) = keys.split_first() else {
        return Tree::Leaf(nodes);
    };
    let mut by_value: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in nodes {
        by_value.entry(key.value_of(infos[i].node)).or_default().push(i);
    }
    Tree::Branches(
        by_value
            .into_values()
            .map(|branch| build_tree(branch, rest, infos))
            .collect(),
    )
}

fn tree_nodes(t: &Tree, out: &mut Vec<usize>) {
    match t {
        Tree::Leaf(n) => out.extend(n),
        Tree::Branches(b) => b.iter().for_each(|c| tree_nodes(c, out)),
    }
}

/// The order key of a node for this group: smaller is better.
fn rank(req: &Requirements, info: &NodeInfo, i: usize) -> (usize, usize, usize, usize) {
    let failures = info.recent_failures(req.service_id, req.spec_version);
    let penalty = if failures >= MAX_RECENT_FAILURES { failures } else { 0 };
    (penalty, info.service_tasks(req.service_id), info.total_tasks, i)
}

/// Places up to `n` tasks on `nodes`; returns the chosen node of each placed task, in order.
fn place_on_nodes<'a>(
    n: usize,
    nodes: &[usize],
    req: &Requirements<'a>,
    infos: &mut [NodeInfo<'a>],
    out: &mut Vec<usize>,
) -> usize {
    let mut ready: BTreeSet<(usize, usize, usize, usize)> = nodes
        .iter()
        .filter(|i| first_failure(req, &infos[**i]).is_none())
        .map(|i| rank(req, &infos[*i], *i))
        .collect();
    let mut placed = 0;
    while placed < n {
        let Some(best) = ready.pop_first() else { break };
        let i = best.3;
        infos[i].place(req.service_id, &req.reservation, &req.host_ports);
        out.push(i);
        placed += 1;
        if first_failure(req, &infos[i]).is_none() {
            ready.insert(rank(req, &infos[i], i));
        }
    }
    placed
}

/// How many of `n` new tasks each branch should get so that `counts[i] + share[i]` is as even as
/// possible: the lowest branches are filled first; the last few tasks go to the branches that
/// come first in `counts` order among the lowest.
pub fn water_fill(counts: &[usize], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|i| (counts[*i], *i));
    let mut share = vec![0; counts.len()];
    if counts.is_empty() {
        return share;
    }
    // Raise the lowest j branches to a common level, growing j while the next branch is below it.
    let mut j = 1;
    let mut sum = counts[order[0]];
    loop {
        let level = (sum + n) / j;
        if j < order.len() && counts[order[j]] < level {
            sum += counts[order[j]];
            j += 1;
            continue;
        }
        let mut left = n;
        for &b in &order[..j] {
            share[b] = level - counts[b];
            left -= share[b];
        }
        for &b in order[..j].iter().take(left) {
            share[b] += 1;
        }
        return share;
    }
}

fn place_on_tree<'a>(
    tree: &Tree,
    n: usize,
    req: &Requirements<'a>,
    infos: &mut [NodeInfo<'a>],
    out: &mut Vec<usize>,
) -> usize {
    let branches = match tree {
        Tree::Leaf(nodes) => return place_on_nodes(n, nodes, req, infos, out),
        Tree::Branches(b) => b,
    };
    // Tasks of the service each branch already holds, on all its nodes.
    let mut counts: Vec<usize> = branches
        .iter()
        .map(|b| {
            let mut nodes = Vec::new();
            tree_nodes(b, &mut nodes);
            nodes.iter().map(|i| infos[*i].service_tasks(req.service_id)).sum()
        })
        .collect();
    let mut usable: Vec<usize> = (0..branches.len()).collect();
    let mut placed = 0;
    while placed < n && !usable.is_empty() {
        let shares = water_fill(&usable.iter().map(|b| counts[*b]).collect::<Vec<_>>(), n - placed);
        let mut full = Vec::new();
        for (k, &b) in usable.iter().enumerate() {
            if shares[k] == 0 {
                continue;
            }
            let got = place_on_tree(&branches[b], shares[k], req, infos, out);
            counts[b] += got;
            placed += got;
            if got < shares[k] {
                full.push(b);
            }
        }
        // Every round either places everything or finds a full branch, so this ends.
        usable.retain(|b| !full.contains(b));
    }
    placed
}

/// Places up to `n` tasks with requirements `req` on the candidate nodes `nodes` (indexes into
/// `infos`), spreading over `spread` levels. Returns the node index of each placed task.
pub fn place<'a>(
    n: usize,
    nodes: Vec<usize>,
    spread: &[SpreadKey],
    req: &Requirements<'a>,
    infos: &mut [NodeInfo<'a>],
) -> Vec<usize> {
    let tree = build_tree(nodes, spread, infos);
    let mut out = Vec::with_capacity(n);
    place_on_tree(&tree, n, req, infos, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn water_fill_evens_out_from_the_bottom() {
        assert_eq!(water_fill(&[0, 0, 0], 9), vec![3, 3, 3]);
        assert_eq!(water_fill(&[0, 0, 0], 10), vec![4, 3, 3]);
        assert_eq!(water_fill(&[5, 0, 0], 4), vec![0, 2, 2]);
        assert_eq!(water_fill(&[5, 0, 0], 13), vec![1, 6, 6]);
        assert_eq!(water_fill(&[2, 1], 0), vec![0, 0]);
        assert_eq!(water_fill(&[], 3), Vec::<usize>::new());
    }

    proptest! {
        #[test]
        fn water_fill_hands_out_everything_evenly(counts in proptest::collection::vec(0usize..20, 1..6), n in 0usize..60) {
            let share = water_fill(&counts, n);
            prop_assert_eq!(share.iter().sum::<usize>(), n);
            let end: Vec<usize> = counts.iter().zip(&share).map(|(c, s)| c + s).collect();
            // Branches that got tasks end within one of each other and no higher than any other
            // branch plus one.
            let min = *end.iter().min().unwrap();
            for (i, s) in share.iter().enumerate() {
                if *s > 0 {
                    prop_assert!(end[i] <= min + 1, "{:?} + {:?}", counts, share);
                }
            }
        }
    }
}
