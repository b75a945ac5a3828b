//! A deterministic generator of incident scenarios for the dependency walk: a service
//! graph of 10+ services with a database and a cache, metric series before and after an
//! alert, trace self times, and one injected fault (or none).
//!
//! What is guaranteed:
//! - the same seed and [`Options`] give the same scenario, on every machine (a SplitMix64
//!   generator, no global state, no clock);
//! - the fault's service is always downstream of (or is) the alerted service;
//! - distractor services have noisy but normal metrics: heavy noise, short bursts of one
//!   or two samples, a daily-like wave, a slight level shift;
//! - one service in seven on average has no traces, so some causes have only metrics;
//! - the alert time can be shifted (`shift_seconds`), which moves where `since` splits the
//!   series into baseline and current window, as an alert a minute early or late does.
//!
//! The numbers (magnitudes, noise) are plausible, not fitted: the walk's rule never reads
//! them, and the accuracy program runs many seeds.

use crate::diagnosis::{Check, Input, Kind, SelfTime, ServiceData, Window};
use std::collections::{BTreeMap, BTreeSet};

/// Seconds between samples.
pub const STEP_SECONDS: i64 = 30;
/// The baseline window before `since`.
pub const BASELINE_SECONDS: i64 = 60 * 60;
/// `since` is this long before the alert (as the example playbooks ask).
pub const LEAD_SECONDS: i64 = 10 * 60;
/// The diagnosis runs this long after the alert.
pub const AFTER_SECONDS: i64 = 5 * 60;

/// The share of services without traces (no self time).
pub const UNTRACED: f64 = 0.15;

/// What is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// CPU saturated: CPU at its limit, the service slower.
    Cpu,
    /// Memory near its limit: GC pauses, some requests fail.
    Memory,
    /// The service itself slow (a lock, a slow dependency call inside it).
    Latency,
    /// The service answers errors.
    Errors,
    /// The database's connections exhausted: errors and slow queries.
    DatabaseSaturation,
    /// A slow service whose caller's own metrics look healthy.
    SlowCalleeBehindHealthyCaller,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Cpu,
        FaultKind::Memory,
        FaultKind::Latency,
        FaultKind::Errors,
        FaultKind::DatabaseSaturation,
        FaultKind::SlowCalleeBehindHealthyCaller,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Cpu => "cpu",
            FaultKind::Memory => "memory",
            FaultKind::Latency => "latency",
            FaultKind::Errors => "errors",
            FaultKind::DatabaseSaturation => "database_saturation",
            FaultKind::SlowCalleeBehindHealthyCaller => "slow_callee",
        }
    }
}

/// How a scenario is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub seed: u64,
    /// None: a no-fault case (the alert was noise).
    pub fault: Option<FaultKind>,
    /// Moves the alert, hence `since`, by this many seconds (positive: later).
    pub shift_seconds: i64,
}

/// One generated incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub options: Options,
    /// The service whose fault was injected; none for a no-fault case.
    pub root_cause: Option<String>,
    /// What the walk is given.
    pub input: Input,
    /// Unix seconds (from an arbitrary epoch) of the fault's onset, the alert and `since`.
    pub onset: i64,
    pub alert: i64,
    pub since: i64,
    /// The full series of each service and check, one sample per [`STEP_SECONDS`] from
    /// `since - BASELINE_SECONDS` (for a demo or a backfill).
    pub series: BTreeMap<String, BTreeMap<Check, Vec<f64>>>,
    /// Services given noisy but normal metrics.
    pub distractors: BTreeSet<String>,
}

/// SplitMix64: small, fast and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for upper in (1..items.len()).rev() {
            let other = self.below(upper + 1);
            items.swap(upper, other);
        }
    }
}

const SERVICES: [&str; 15] = [
    "auth-service",
    "user-service",
    "payment-service",
    "order-service",
    "inventory-service",
    "catalog-service",
    "search-service",
    "shipping-service",
    "notification-service",
    "recommendation-service",
    "pricing-service",
    "cart-service",
    "review-service",
    "fraud-service",
    "ledger-service",
];
const DATABASES: [&str; 3] = ["orders-db", "inventory-db", "users-db"];
const CACHES: [&str; 2] = ["redis-cache", "session-cache"];
const ROOT: &str = "api-gateway";

/// The steady-state parameters of one node.
#[derive(Debug, Clone)]
struct Profile {
    kind: Kind,
    /// p99 latency spent in the node itself, seconds.
    self_latency: f64,
    /// Multiplicative noise of latency samples (log-normal sigma).
    noise: f64,
    error_base: f64,
    cpu_base: f64,
    memory_base: f64,
    connections_base: f64,
    db_errors_base: f64,
    /// Amplitude of a slow wave, as a share.
    wave: f64,
    /// Chance of a one- or two-sample burst at each sample.
    burst: f64,
    /// A level change in the current window that is within normal (a share).
    drift: f64,
}

/// What a fault does to its node from the onset on.
#[derive(Debug, Clone, Copy, Default)]
struct Effect {
    latency_factor: f64,
    latency_extra: f64,
    errors: f64,
    cpu: Option<f64>,
    memory: Option<f64>,
    connections: Option<f64>,
    db_errors: f64,
    self_factor: f64,
    /// The caller whose own metrics must not show the slowdown.
    hidden_behind: Option<usize>,
}

struct Graph {
    names: Vec<String>,
    /// Callees of each node by index, with the share of the callee's p99 that reaches the
    /// caller's p99.
    calls: Vec<Vec<(usize, f64)>>,
    profiles: Vec<Profile>,
}

impl Graph {
    fn add(&mut self, name: &str, profile: Profile) -> usize {
        self.names.push(name.to_string());
        self.calls.push(Vec::new());
        self.profiles.push(profile);
        self.names.len() - 1
    }

    fn call(&mut self, caller: usize, callee: usize, weight: f64) {
        if let Some(callees) = self.calls.get_mut(caller)
            && !callees.iter().any(|(known, _)| *known == callee)
        {
            callees.push((callee, weight));
        }
    }

    /// Indexes of nodes from which `target` is reachable (itself included).
    fn ancestors(&self, target: usize) -> Vec<usize> {
        let mut found = BTreeSet::from([target]);
        loop {
            let before = found.len();
            for (caller, callees) in self.calls.iter().enumerate() {
                if callees.iter().any(|(callee, _)| found.contains(callee)) {
                    found.insert(caller);
                }
            }
            if found.len() == before {
                return found.into_iter().collect();
            }
        }
    }

    /// Nodes in an order where every callee comes before its callers (the graph is
    /// layered, so reverse insertion order works).
    fn bottom_up(&self) -> Vec<usize> {
        (0..self.names.len()).rev().collect()
    }
}

fn profile(rng: &mut Rng, kind: Kind) -> Profile {
    Profile {
        kind,
        self_latency: match kind {
            Kind::Service => rng.range(0.01, 0.12),
            Kind::Database => rng.range(0.005, 0.05),
            Kind::Cache => rng.range(0.001, 0.005),
        },
        noise: rng.range(0.04, 0.12),
        error_base: rng.range(0.0, 0.004),
        cpu_base: rng.range(0.15, 0.6),
        memory_base: rng.range(0.3, 0.7),
        connections_base: rng.range(0.15, 0.55),
        db_errors_base: rng.range(0.0, 0.03),
        wave: rng.range(0.0, 0.08),
        burst: 0.0,
        drift: rng.range(-0.08, 0.1),
    }
}

fn build_graph(rng: &mut Rng) -> Graph {
    let mut graph = Graph {
        names: Vec::new(),
        calls: Vec::new(),
        profiles: Vec::new(),
    };
    let root_profile = profile(rng, Kind::Service);
    let root = graph.add(ROOT, root_profile);
    let mut pool: Vec<&str> = SERVICES.to_vec();
    rng.shuffle(&mut pool);
    let count = 10 + rng.below(4);
    let mut layers: Vec<Vec<usize>> = vec![vec![root]];
    let sizes = [3, 4 + rng.below(2)];
    let mut taken = 0;
    for size in sizes.into_iter().chain(std::iter::once(usize::MAX)) {
        let mut layer = Vec::new();
        while layer.len() < size && taken < count {
            let Some(name) = pool.get(taken) else { break };
            let node_profile = profile(rng, Kind::Service);
            layer.push(graph.add(name, node_profile));
            taken += 1;
        }
        if layer.is_empty() {
            break;
        }
        layers.push(layer);
    }
    // Each node of a layer is called by one or two nodes of the layer above.
    for pair in layers.windows(2) {
        let (Some(above), Some(layer)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        for &node in layer {
            let parents = 1 + usize::from(rng.chance(0.4));
            for _ in 0..parents {
                if let Some(&parent) = rng.pick(above) {
                    let weight = rng.range(0.4, 0.9);
                    graph.call(parent, node, weight);
                }
            }
        }
        // A caller without callees is fine; a node without callers cannot happen.
    }
    let middle: Vec<usize> = layers.iter().skip(1).take(2).flatten().copied().collect();
    let lower: Vec<usize> = layers.iter().skip(2).flatten().copied().collect();
    let database_name = rng.pick(&DATABASES).copied().unwrap_or("orders-db");
    let database_profile = profile(rng, Kind::Database);
    let database = graph.add(database_name, database_profile);
    for _ in 0..(1 + rng.below(3)) {
        if let Some(&caller) = rng.pick(&lower) {
            let weight = rng.range(0.5, 0.9);
            graph.call(caller, database, weight);
        }
    }
    let cache_name = rng.pick(&CACHES).copied().unwrap_or("redis-cache");
    let cache_profile = profile(rng, Kind::Cache);
    let cache = graph.add(cache_name, cache_profile);
    for _ in 0..(1 + rng.below(3)) {
        if let Some(&caller) = rng.pick(&middle) {
            let weight = rng.range(0.5, 0.9);
            graph.call(caller, cache, weight);
        }
    }
    // Nothing calls the database or the cache when every pick missed: give each one caller.
    for leaf in [database, cache] {
        let called = graph
            .calls
            .iter()
            .any(|callees| callees.iter().any(|(callee, _)| *callee == leaf));
        if !called && let Some(&caller) = lower.first().or(middle.first()) {
            graph.call(caller, leaf, 0.7);
        }
    }
    graph
}

/// Generates one scenario.
pub fn generate(options: Options) -> Scenario {
    let mut rng = Rng::new(options.seed);
    let mut graph = build_graph(&mut rng);
    let nodes = graph.names.len();

    // The fault: where, and what it does.
    let mut effects: Vec<Effect> = vec![Effect::default(); nodes];
    let services: Vec<usize> = (0..nodes)
        .filter(|&node| {
            graph
                .profiles
                .get(node)
                .is_some_and(|p| p.kind == Kind::Service)
        })
        .collect();
    let database = (0..nodes).find(|&node| {
        graph
            .profiles
            .get(node)
            .is_some_and(|p| p.kind == Kind::Database)
    });
    let mut target = None;
    if let Some(kind) = options.fault {
        let (node, effect) = match kind {
            FaultKind::Cpu => (
                rng.pick(&services).copied(),
                Effect {
                    cpu: Some(rng.range(0.9, 1.0)),
                    latency_factor: rng.range(1.5, 4.0),
                    latency_extra: rng.range(0.02, 0.5),
                    self_factor: 0.0,
                    ..Effect::default()
                },
            ),
            FaultKind::Memory => (
                rng.pick(&services).copied(),
                Effect {
                    memory: Some(rng.range(0.92, 0.99)),
                    latency_factor: rng.range(1.5, 2.5),
                    latency_extra: rng.range(0.05, 0.3),
                    errors: rng.range(0.005, 0.03),
                    ..Effect::default()
                },
            ),
            FaultKind::Latency => {
                let all: Vec<usize> = (1..nodes).collect();
                (
                    rng.pick(&all).copied(),
                    Effect {
                        latency_factor: rng.range(2.0, 10.0),
                        latency_extra: rng.range(0.05, 1.0),
                        ..Effect::default()
                    },
                )
            }
            FaultKind::Errors => (
                rng.pick(&services).copied(),
                Effect {
                    errors: rng.range(0.03, 0.3),
                    latency_factor: 1.0,
                    ..Effect::default()
                },
            ),
            FaultKind::DatabaseSaturation => (
                database,
                Effect {
                    connections: Some(rng.range(0.95, 1.0)),
                    db_errors: rng.range(1.0, 10.0),
                    latency_factor: rng.range(3.0, 8.0),
                    latency_extra: rng.range(0.2, 0.8),
                    errors: rng.range(0.02, 0.15),
                    ..Effect::default()
                },
            ),
            FaultKind::SlowCalleeBehindHealthyCaller => {
                // A callee two or more hops down, and one of its callers that is not the root.
                let mut pairs = Vec::new();
                for (caller, callees) in graph.calls.iter().enumerate().skip(1) {
                    for (callee, _) in callees {
                        pairs.push((caller, *callee));
                    }
                }
                let pair = rng.pick(&pairs).copied();
                (
                    pair.map(|(_, callee)| callee),
                    Effect {
                        latency_factor: rng.range(3.0, 10.0),
                        latency_extra: rng.range(0.1, 1.0),
                        hidden_behind: pair.map(|(caller, _)| caller),
                        ..Effect::default()
                    },
                )
            }
        };
        if let Some(node) = node
            && let Some(slot) = effects.get_mut(node)
        {
            *slot = Effect {
                self_factor: if effect.self_factor > 0.0 {
                    effect.self_factor
                } else {
                    effect.latency_factor
                },
                ..effect
            };
            target = Some(node);
        }
    }

    // Distractors: noisy but normal, anywhere but the fault.
    let mut others: Vec<usize> = (0..nodes).filter(|&node| Some(node) != target).collect();
    rng.shuffle(&mut others);
    let distractor_count = 2 + rng.below(3);
    let distractors: BTreeSet<usize> = others.into_iter().take(distractor_count).collect();
    for &node in &distractors {
        if let Some(profile) = graph.profiles.get_mut(node) {
            profile.noise = rng.range(0.15, 0.3);
            profile.burst = rng.range(0.01, 0.04);
            profile.wave = rng.range(0.05, 0.15);
        }
    }

    // The timeline: the alert fires one to ten minutes after the onset; `since` is ten
    // minutes before the (possibly shifted) alert.
    let onset_before_alert = 60 * (1 + rng.below(10)) as i64;
    let alert = 1_800_000_000 + options.shift_seconds;
    let onset = 1_800_000_000 - onset_before_alert;
    let since = alert - LEAD_SECONDS;
    let start = since - BASELINE_SECONDS;
    let end = alert + AFTER_SECONDS;
    let points = ((end - start) / STEP_SECONDS) as usize;
    let split = ((since - start) / STEP_SECONDS) as usize;
    let onset_point = ((onset - start) / STEP_SECONDS).max(0) as usize;

    let (series, visible) = simulate(&graph, &effects, &mut rng, points, split, onset_point);

    // The alerted service: where the symptom shows, as an alert rule would see it; the
    // root when it shows there (mostly), else another affected ancestor of the fault, else
    // the faulty service itself (a CPU alert on it, say).
    let shows = |node: usize| visible.get(node).copied().unwrap_or(false);
    let is_service = |node: usize| {
        graph
            .profiles
            .get(node)
            .is_some_and(|profile| profile.kind == Kind::Service)
    };
    let alerted = match target {
        None => 0,
        Some(node) => {
            let affected: Vec<usize> = graph
                .ancestors(node)
                .into_iter()
                .filter(|&candidate| is_service(candidate) && shows(candidate))
                .collect();
            if affected.contains(&0) && rng.chance(0.75) {
                0
            } else if let Some(&other) = rng.pick(&affected) {
                other
            } else if is_service(node) {
                node
            } else {
                0
            }
        }
    };

    // Self times, as Jaeger would give them for the baseline and the current window.
    let mut data: BTreeMap<String, ServiceData> = BTreeMap::new();
    for (node, name) in graph.names.iter().enumerate() {
        let (Some(profile), Some(effect)) = (graph.profiles.get(node), effects.get(node)) else {
            continue;
        };
        let base_ms = profile.self_latency * 1000.0;
        // A window's p99 over thousands of spans moves less than one metric sample does.
        let jitter = 0.05 + 0.5 * profile.noise;
        let baseline_ms = base_ms * (1.0 + jitter * rng.normal()).max(0.3);
        // A p99 over the current window is the slow part's as soon as more than a few per
        // cent of it is after the onset, which it always is here.
        let factor = if effect.self_factor > 0.0 && base_ms > 0.0 {
            effect.self_factor + effect.latency_extra * 1000.0 / base_ms
        } else {
            1.0
        };
        let current_ms = base_ms * factor * (1.0 + jitter * rng.normal()).max(0.3);
        let checks = series.get(node).cloned().unwrap_or_default();
        let metrics = checks
            .iter()
            .map(|(check, values)| {
                (
                    *check,
                    Window {
                        baseline: values.iter().take(split).copied().collect(),
                        current: values.iter().skip(split).copied().collect(),
                    },
                )
            })
            .collect();
        // Not every service is traced.
        let traced = !rng.chance(UNTRACED);
        data.insert(
            name.clone(),
            ServiceData {
                kind: profile.kind,
                metrics,
                self_time: traced.then_some(SelfTime {
                    baseline_ms: Some(baseline_ms),
                    current_ms,
                }),
                logs: Vec::new(),
            },
        );
    }
    let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (caller, callees) in graph.calls.iter().enumerate() {
        let Some(caller_name) = graph.names.get(caller) else {
            continue;
        };
        for (callee, _) in callees {
            if let Some(callee_name) = graph.names.get(*callee) {
                calls
                    .entry(caller_name.clone())
                    .or_default()
                    .insert(callee_name.clone());
            }
        }
    }
    let name_of = |node: usize| graph.names.get(node).cloned().unwrap_or_default();
    Scenario {
        options,
        root_cause: target.map(name_of),
        input: Input {
            alerted: name_of(alerted),
            depth: 4,
            calls,
            services: data,
        },
        onset,
        alert,
        since,
        series: series
            .into_iter()
            .enumerate()
            .map(|(node, checks)| (name_of(node), checks))
            .collect(),
        distractors: distractors.into_iter().map(name_of).collect(),
    }
}

/// The samples of every node and check.
fn simulate(
    graph: &Graph,
    effects: &[Effect],
    rng: &mut Rng,
    points: usize,
    split: usize,
    onset: usize,
) -> (Vec<BTreeMap<Check, Vec<f64>>>, Vec<bool>) {
    let nodes = graph.names.len();
    // True (noise-free) p99 and error ratio per node and point, with the fault and, for a
    // hidden slowdown, without it.
    let mut latency = vec![vec![0.0; points]; nodes];
    let mut latency_unfaulted = vec![vec![0.0; points]; nodes];
    let mut errors = vec![vec![0.0; points]; nodes];
    // Per-point noise of each node, shared by its checks' samples.
    for node in graph.bottom_up() {
        let (Some(profile), Some(effect), Some(callees)) = (
            graph.profiles.get(node),
            effects.get(node),
            graph.calls.get(node),
        ) else {
            continue;
        };
        let mut own_latency = Vec::with_capacity(points);
        let mut own_unfaulted = Vec::with_capacity(points);
        let mut own_errors = Vec::with_capacity(points);
        for point in 0..points {
            // A fault ramps in over two samples.
            let ramp = (point as f64 - onset as f64 + 1.0).clamp(0.0, 2.0) / 2.0;
            let wave = 1.0 + profile.wave * (point as f64 / 40.0).sin();
            let drift = if point >= split {
                1.0 + profile.drift
            } else {
                1.0
            };
            let base = profile.self_latency * wave * drift;
            let faulted = if effect.latency_factor > 0.0 {
                base * (1.0 + (effect.latency_factor - 1.0) * ramp) + effect.latency_extra * ramp
            } else {
                base
            };
            let mut total = faulted;
            let mut total_unfaulted = base;
            let mut error = profile.error_base + effect.errors * ramp;
            for &(callee, weight) in callees {
                let hidden = effects
                    .get(callee)
                    .and_then(|effect| effect.hidden_behind)
                    .is_some_and(|caller| caller == node);
                let callee_latency = latency
                    .get(callee)
                    .and_then(|values| values.get(point))
                    .copied()
                    .unwrap_or(0.0);
                let callee_unfaulted = latency_unfaulted
                    .get(callee)
                    .and_then(|values| values.get(point))
                    .copied()
                    .unwrap_or(0.0);
                total += weight * callee_latency;
                total_unfaulted += weight
                    * if hidden {
                        callee_unfaulted
                    } else {
                        callee_latency
                    };
                let callee_profile_errors = graph
                    .profiles
                    .get(callee)
                    .map_or(0.0, |profile| profile.error_base);
                let callee_error = errors
                    .get(callee)
                    .and_then(|values| values.get(point))
                    .copied()
                    .unwrap_or(0.0);
                error += 0.8 * weight * (callee_error - callee_profile_errors).max(0.0);
            }
            own_latency.push(total);
            own_unfaulted.push(total_unfaulted);
            own_errors.push(error.min(1.0));
        }
        if let Some(slot) = latency.get_mut(node) {
            *slot = own_latency;
        }
        if let Some(slot) = latency_unfaulted.get_mut(node) {
            *slot = own_unfaulted;
        }
        if let Some(slot) = errors.get_mut(node) {
            *slot = own_errors;
        }
    }
    // Which callers report the unfaulted latency (the healthy-looking caller).
    let hidden_callers: BTreeSet<usize> = effects
        .iter()
        .filter_map(|effect| effect.hidden_behind)
        .collect();

    // Whether a node's reported p99 or error ratio visibly changed (noise-free): the end of
    // the series against its baseline part.
    let visible: Vec<bool> = (0..nodes)
        .map(|node| {
            let reported = if hidden_callers.contains(&node) {
                latency_unfaulted.get(node)
            } else {
                latency.get(node)
            };
            let mean = |values: Option<&Vec<f64>>, from: usize, to: usize| {
                let part: Vec<f64> = values
                    .into_iter()
                    .flatten()
                    .skip(from)
                    .take(to.saturating_sub(from))
                    .copied()
                    .collect();
                part.iter().sum::<f64>() / part.len().max(1) as f64
            };
            let slower =
                mean(reported, points.saturating_sub(5), points) >= 1.3 * mean(reported, 0, split);
            let failing = mean(errors.get(node), points.saturating_sub(5), points)
                >= mean(errors.get(node), 0, split) + 0.02;
            slower || failing
        })
        .collect();

    let mut out = Vec::with_capacity(nodes);
    for node in 0..nodes {
        let (Some(profile), Some(effect)) = (graph.profiles.get(node), effects.get(node)) else {
            out.push(BTreeMap::new());
            continue;
        };
        let truth = if hidden_callers.contains(&node) {
            latency_unfaulted.get(node)
        } else {
            latency.get(node)
        };
        let mut checks: BTreeMap<Check, Vec<f64>> = BTreeMap::new();
        let mut burst_left = 0usize;
        let mut burst_size = 1.0;
        for point in 0..points {
            let ramp = (point as f64 - onset as f64 + 1.0).clamp(0.0, 2.0) / 2.0;
            if burst_left == 0 && profile.burst > 0.0 && rng.chance(profile.burst) {
                burst_left = 1 + rng.below(2);
                burst_size = rng.range(1.8, 3.5);
            }
            let burst = if burst_left > 0 {
                burst_left -= 1;
                burst_size
            } else {
                1.0
            };
            let wave = 1.0 + profile.wave * (point as f64 / 40.0 + 1.0).sin();
            let true_latency = truth
                .and_then(|values| values.get(point))
                .copied()
                .unwrap_or(0.0);
            let true_error = errors
                .get(node)
                .and_then(|values| values.get(point))
                .copied()
                .unwrap_or(0.0);
            let mut push = |check: Check, value: f64| {
                checks.entry(check).or_default().push(value);
            };
            let lognormal = (profile.noise * rng.normal()).exp();
            if profile.kind != Kind::Database {
                push(Check::LatencyP99, true_latency * lognormal * burst);
            }
            if profile.kind == Kind::Service {
                let noise = (1.0 + 0.6 * rng.normal()).max(0.0);
                push(
                    Check::ErrorRate,
                    (true_error * noise * burst.min(2.0)).min(1.0),
                );
            }
            let cpu = profile.cpu_base * wave * (1.0 + 0.5 * profile.noise * rng.normal());
            let cpu = match effect.cpu {
                Some(level) => cpu + (level - cpu) * ramp,
                None => cpu,
            };
            push(Check::Cpu, cpu.clamp(0.0, 1.2));
            // Memory creeps up to its faulty level over ten minutes.
            let creep = ((point as f64 - onset as f64 + 1.0) / 20.0).clamp(0.0, 1.0);
            let memory = profile.memory_base * (1.0 + 0.02 * rng.normal());
            let memory = match effect.memory {
                Some(level) => memory + (level - memory) * creep.max(ramp * 0.5),
                None => memory,
            };
            push(Check::Memory, memory.clamp(0.0, 1.0));
            if profile.kind == Kind::Database {
                let connections = profile.connections_base
                    * wave
                    * (1.0 + 0.5 * profile.noise * rng.normal())
                    * burst.min(1.5);
                let connections = match effect.connections {
                    Some(level) => connections + (level - connections) * ramp,
                    None => connections,
                };
                push(Check::Connections, connections.clamp(0.0, 1.0));
                let db_errors = (profile.db_errors_base * (1.0 + rng.normal())).max(0.0)
                    + effect.db_errors * ramp;
                push(Check::DbErrors, db_errors);
            }
        }
        out.push(checks);
    }
    (out, visible)
}

/// Fault kinds and no-fault cases for each seed, in a fixed order.
pub fn suite(seeds: std::ops::Range<u64>, shift_seconds: i64) -> Vec<Scenario> {
    let kinds: Vec<Option<FaultKind>> = FaultKind::ALL
        .into_iter()
        .map(Some)
        .chain(std::iter::once(None))
        .collect();
    seeds
        .flat_map(|seed| {
            kinds.iter().map(move |fault| {
                generate(Options {
                    seed: seed
                        .wrapping_mul(0x1000_0000_0000_0001)
                        .wrapping_add(fault.map_or(0, |kind| kind as u64 + 1)),
                    fault: *fault,
                    shift_seconds,
                })
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_deterministic_and_large_enough() {
        let options = Options {
            seed: 7,
            fault: Some(FaultKind::DatabaseSaturation),
            shift_seconds: 60,
        };
        let first = generate(options);
        assert_eq!(first, generate(options));
        assert!(
            first.input.services.len() >= 12,
            "{:?}",
            first.input.services.keys()
        );
        let kinds: BTreeSet<Kind> = first.input.services.values().map(|s| s.kind).collect();
        assert!(kinds.contains(&Kind::Database) && kinds.contains(&Kind::Cache));
        let root = first.root_cause.unwrap();
        assert_eq!(first.input.services[&root].kind, Kind::Database);
    }
}
