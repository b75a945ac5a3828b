//! The service graph of `trace.dependencies`: Jaeger's links merged with the declared
//! topology, walked breadth-first. Pure: no I/O, and the same input gives the same output
//! (ordered maps only).

use super::super::topology::Topology;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Which way to follow calls between services (`trace.Direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards the callers of the service.
    Upstream,
    /// Towards the services it calls.
    Downstream,
    /// Both walks, merged (not the services reachable by mixing the two directions).
    Both,
}

impl Direction {
    /// The variant of `trace.Direction` named `name`.
    pub fn from_name(name: &str) -> Option<Direction> {
        match name {
            "upstream" => Some(Direction::Upstream),
            "downstream" => Some(Direction::Downstream),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }
}

/// One edge of the service graph: `parent` calls `child`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub parent: String,
    pub child: String,
    /// Calls Jaeger saw in the window; 0 for an edge only the topology declares.
    pub calls: u64,
}

/// The services around one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Graph {
    /// Services reached, nearest first (then by name), without the starting service.
    pub services: Vec<String>,
    /// The edges walked, by parent then child.
    pub edges: Vec<Edge>,
}

/// Every known edge, `(parent, child)` to calls: Jaeger's links (calls summed when a pair
/// repeats) and the topology's (0 calls unless Jaeger saw the pair too). Self-calls are
/// dropped: they add no service to a walk.
pub fn merge(jaeger: &[Edge], topology: &Topology) -> BTreeMap<(String, String), u64> {
    let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (parent, children) in &topology.calls {
        for child in children {
            if parent != child {
                edges.insert((parent.clone(), child.clone()), 0);
            }
        }
    }
    for edge in jaeger {
        if edge.parent != edge.child {
            let calls = edges
                .entry((edge.parent.clone(), edge.child.clone()))
                .or_insert(0);
            *calls = calls.saturating_add(edge.calls);
        }
    }
    edges
}

/// Walks `edges` from `start` at most `depth` hops in `direction`.
pub fn walk(
    edges: &BTreeMap<(String, String), u64>,
    start: &str,
    direction: Direction,
    depth: usize,
) -> Graph {
    let mut downstream: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut upstream: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (parent, child) in edges.keys() {
        downstream.entry(parent).or_default().insert(child);
        upstream.entry(child).or_default().insert(parent);
    }
    let mut distance: BTreeMap<String, usize> = BTreeMap::new();
    let mut walked: BTreeSet<(String, String)> = BTreeSet::new();
    if matches!(direction, Direction::Downstream | Direction::Both) {
        breadth_first(&downstream, start, depth, &mut distance, &mut |from, to| {
            walked.insert((from.to_string(), to.to_string()));
        });
    }
    if matches!(direction, Direction::Upstream | Direction::Both) {
        breadth_first(&upstream, start, depth, &mut distance, &mut |from, to| {
            walked.insert((to.to_string(), from.to_string()));
        });
    }
    distance.remove(start);
    let mut services: Vec<(usize, String)> = distance
        .into_iter()
        .map(|(service, hops)| (hops, service))
        .collect();
    services.sort();
    Graph {
        services: services.into_iter().map(|(_, service)| service).collect(),
        edges: walked
            .into_iter()
            .map(|(parent, child)| Edge {
                calls: edges
                    .get(&(parent.clone(), child.clone()))
                    .copied()
                    .unwrap_or(0),
                parent,
                child,
            })
            .collect(),
    }
}

/// One breadth-first walk over `next`, recording each service's smallest hop count into
/// `distance` (kept across the two walks of [`Direction::Both`]) and each edge followed.
fn breadth_first<'a>(
    next: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    start: &'a str,
    depth: usize,
    distance: &mut BTreeMap<String, usize>,
    followed: &mut dyn FnMut(&str, &str),
) {
    let mut seen: BTreeSet<&str> = BTreeSet::from([start]);
    let mut queue: VecDeque<(&str, usize)> = VecDeque::from([(start, 0)]);
    while let Some((service, hops)) = queue.pop_front() {
        if hops >= depth {
            continue;
        }
        for neighbour in next.get(service).into_iter().flatten() {
            followed(service, neighbour);
            if seen.insert(neighbour) {
                let known = distance.entry((*neighbour).to_string()).or_insert(hops + 1);
                *known = (*known).min(hops + 1);
                queue.push_back((neighbour, hops + 1));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn edge(parent: &str, child: &str, calls: u64) -> Edge {
        Edge {
            parent: parent.into(),
            child: child.into(),
            calls,
        }
    }

    fn topology(pairs: &[(&str, &[&str])]) -> Topology {
        Topology {
            calls: pairs
                .iter()
                .map(|(parent, children)| {
                    (
                        parent.to_string(),
                        children.iter().map(|child| child.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn jaeger_and_topology_merge_and_walk_nearest_first() {
        let jaeger = [
            edge("gw", "pay", 10),
            edge("pay", "order", 7),
            edge("gw", "pay", 2),
        ];
        let declared = topology(&[("pay", &["db"]), ("order", &["inventory"])]);
        let edges = merge(&jaeger, &declared);
        let graph = walk(&edges, "gw", Direction::Downstream, 2);
        assert_eq!(graph.services, ["pay", "db", "order"]);
        assert_eq!(
            graph.edges,
            [
                edge("gw", "pay", 12),
                edge("pay", "db", 0),
                edge("pay", "order", 7)
            ]
        );
        let graph = walk(&edges, "order", Direction::Upstream, 5);
        assert_eq!(graph.services, ["pay", "gw"]);
        let graph = walk(&edges, "pay", Direction::Both, 1);
        assert_eq!(graph.services, ["db", "gw", "order"]);
        assert_eq!(walk(&edges, "pay", Direction::Both, 0), Graph::default());
    }

    #[test]
    fn cycles_end_and_the_start_is_never_listed() {
        let edges = merge(
            &[edge("a", "b", 1), edge("b", "a", 1), edge("a", "a", 3)],
            &Topology::default(),
        );
        let graph = walk(&edges, "a", Direction::Downstream, 10);
        assert_eq!(graph.services, ["b"]);
        assert_eq!(graph.edges, [edge("a", "b", 1), edge("b", "a", 1)]);
    }
}
