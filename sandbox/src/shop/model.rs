//! The shop's model: what each service's load, utilization, CPU, latency and error share are
//! at one tick, given the replicas the cluster runs and the incidents under way. No I/O and
//! no clock: [`Model::step`] is a function of its inputs and of the seeded generator, so a
//! seed gives the same world.
//!
//! - Load is requests per second, steady with a few percent of noise (one traffic factor for
//!   the whole shop, as every checkout passes every service, and a little of each service's).
//! - Utilization `u = load / (replicas × capacity)`; CPU per pod (a fraction of its 1-core
//!   limit) is `u`, capped at the limit.
//! - Own latency is `base × (1 + K·u/(1−u))` (`u` capped below 1: an M/M/1-like queueing
//!   delay) plus an incident's extra; a service's latency is its own plus its callees', one
//!   call after the other. Latencies are medians of a log-normal distribution of spread
//!   [`SIGMA`].
//! - Requests beyond capacity fail (`1 − 1/u` of them), as an overloaded service sheds them.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Virtual milliseconds between two ticks (and two scrapes).
pub const TICK_MS: i64 = 15_000;

/// The log-normal spread of request latencies around their median.
pub const SIGMA: f64 = 0.15;

/// `p99 / median` of the latency distribution: `exp(z₀.₉₉ · σ)`.
pub fn p99_factor() -> f64 {
    (2.326 * SIGMA).exp()
}

/// How steeply latency grows with utilization.
const QUEUEING: f64 = 0.05;

/// Utilization at most used in the latency formula.
const MAX_QUEUEING_UTILIZATION: f64 = 0.98;

/// An incident the world can be put in; each ends by itself after [`Incident::duration_ms`]
/// (the disk stays full until it is cleaned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Incident {
    /// A batch job adds load to order-service: about 95% CPU at 2 replicas, 63% at 3.
    OrderCpu,
    /// A deploy made one of order-service's queries slow (+450 ms of its own work), so
    /// payment-gateway, waiting for it, breaches its 500 ms p99 objective.
    PaymentLatency,
    /// Debug logging fills logging-node's disk to about 91%.
    DiskFull,
    /// inventory-db runs out of connections (99 of 100): inventory-service fails about 8%
    /// of its requests.
    InventoryDb,
}

impl Incident {
    pub const ALL: [Incident; 4] = [
        Incident::OrderCpu,
        Incident::PaymentLatency,
        Incident::DiskFull,
        Incident::InventoryDb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Incident::OrderCpu => "order-cpu",
            Incident::PaymentLatency => "payment-latency",
            Incident::DiskFull => "disk-full",
            Incident::InventoryDb => "inventory-db",
        }
    }

    pub fn parse(name: &str) -> Option<Incident> {
        Incident::ALL
            .into_iter()
            .find(|incident| incident.name() == name)
    }

    /// Virtual milliseconds the incident lasts; `None`: until it is cleaned up or ended.
    pub fn duration_ms(self) -> Option<i64> {
        match self {
            Incident::OrderCpu => Some(8 * 60_000),
            Incident::PaymentLatency => Some(10 * 60_000),
            Incident::DiskFull => None,
            Incident::InventoryDb => Some(8 * 60_000),
        }
    }
}

/// One service of the shop.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// Median of its own work at no load, in milliseconds.
    pub base_ms: f64,
    /// Requests per second it serves in steady state.
    pub load: f64,
    /// Requests per second one replica serves at 100% CPU; `None` for what is not a
    /// deployment of the cluster (the databases, the cache).
    pub capacity: Option<f64>,
    pub replicas: i32,
    /// The services it calls, in call order.
    pub callees: &'static [&'static str],
}

/// The services, callers before their callees (the latency sum relies on it).
pub const SERVICES: &[Spec] = &[
    Spec {
        name: "gateway",
        base_ms: 8.0,
        load: 40.0,
        capacity: Some(60.0),
        replicas: 2,
        callees: &["payment-gateway"],
    },
    Spec {
        name: "payment-gateway",
        base_ms: 35.0,
        load: 40.0,
        capacity: Some(50.0),
        replicas: 2,
        callees: &["order-service", "payments-db"],
    },
    Spec {
        name: "order-service",
        base_ms: 25.0,
        load: 40.0,
        capacity: Some(50.0),
        replicas: 2,
        callees: &["inventory-service", "order-cache"],
    },
    Spec {
        name: "inventory-service",
        base_ms: 15.0,
        load: 40.0,
        capacity: Some(60.0),
        replicas: 2,
        callees: &["inventory-db"],
    },
    Spec {
        name: "inventory-db",
        base_ms: 6.0,
        load: 40.0,
        capacity: None,
        replicas: 1,
        callees: &[],
    },
    Spec {
        name: "payments-db",
        base_ms: 6.0,
        load: 40.0,
        capacity: None,
        replicas: 1,
        callees: &[],
    },
    Spec {
        name: "order-cache",
        base_ms: 1.5,
        load: 40.0,
        capacity: None,
        replicas: 1,
        callees: &[],
    },
];

/// The databases postgres_exporter watches.
pub const DATABASES: &[&str] = &["inventory-db", "payments-db"];

/// The node whose disk fills.
pub const LOGGING_NODE: &str = "logging-node";

/// Extra requests per second of order-service's batch job.
const BATCH_LOAD: f64 = 55.0;
/// Extra milliseconds of order-service's slow query.
const SLOW_QUERY_MS: f64 = 450.0;
/// Extra milliseconds inventory-service waits for a pooled connection.
const POOL_WAIT_MS: f64 = 60.0;
/// Share of inventory-service's requests failing for want of a connection.
const POOL_ERROR_SHARE: f64 = 0.08;
/// Share of payment-gateway's requests timing out waiting for a slow order-service.
const TIMEOUT_SHARE: f64 = 0.005;

/// Disk share the logging node's disk fills to, and what a cleanup leaves.
pub const DISK_FULL: f64 = 0.91;
pub const DISK_CLEAN: f64 = 0.40;
/// How fast the full disk fills per tick, and the ordinary growth of logs per tick.
const DISK_FILL_PER_TICK: f64 = 0.08;
const DISK_GROWTH_PER_TICK: f64 = 0.000_05;
/// The logging node's disk size in bytes.
pub const DISK_BYTES: f64 = 200.0 * 1024.0 * 1024.0 * 1024.0;

pub const MAX_CONNECTIONS: f64 = 100.0;

/// One service at one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceState {
    /// `None` for what is not a deployment.
    pub replicas: Option<i32>,
    pub load: f64,
    pub utilization: Option<f64>,
    /// CPU per pod, as a fraction of its limit.
    pub cpu: Option<f64>,
    /// Median of its own work, in milliseconds.
    pub own_ms: f64,
    /// Median end-to-end latency (own work and calls), in milliseconds.
    pub latency_ms: f64,
    pub error_share: f64,
    /// What its `/health` says.
    pub healthy: bool,
}

impl ServiceState {
    pub fn p99_ms(&self) -> f64 {
        self.latency_ms * p99_factor()
    }
}

/// One database at one tick, as postgres_exporter sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseState {
    pub active: f64,
    pub idle: f64,
    pub max_connections: f64,
    /// Rolled back transactions per second.
    pub rollbacks: f64,
    /// Deadlocks per second.
    pub deadlocks: f64,
    /// The longest running active transaction, in seconds.
    pub max_tx_seconds: f64,
    /// Connection attempts refused per second (what its clients count as errors).
    pub refused: f64,
}

/// The world at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub at_ms: i64,
    pub services: BTreeMap<&'static str, ServiceState>,
    pub databases: BTreeMap<&'static str, DatabaseState>,
    /// The logging node's disk, used share.
    pub disk_used: f64,
    pub incidents: BTreeSet<Incident>,
}

impl State {
    pub fn service(&self, name: &str) -> Option<&ServiceState> {
        self.services.get(name)
    }
}

/// A small deterministic generator (SplitMix64), as `world.rs` has it.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed)
    }

    /// Uniform in `[0, 1)`.
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn next_u64(&mut self) -> u64 {
        (self.next() * (1u64 << 53) as f64) as u64
    }

    /// A value near `center`, varying by about `spread` of it either way.
    pub fn around(&mut self, center: f64, spread: f64) -> f64 {
        center * (1.0 + spread * (self.next() * 2.0 - 1.0))
    }

    /// A standard normal value (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let first = self.next().max(f64::MIN_POSITIVE);
        let second = self.next();
        (-2.0 * first.ln()).sqrt() * (std::f64::consts::TAU * second).cos()
    }

    /// A whole number near `mean` (its fraction decides the rounding at random), for
    /// "about 0.4 lines a tick".
    pub fn count(&mut self, mean: f64) -> usize {
        let whole = mean.max(0.0).floor();
        let extra = if self.next() < mean.max(0.0) - whole {
            1.0
        } else {
            0.0
        };
        (whole + extra) as usize
    }
}

/// The model's own state between ticks: the generator and the disk.
#[derive(Debug, Clone)]
pub struct Model {
    noise: Noise,
    pub disk_used: f64,
}

impl Model {
    pub fn new(seed: u64) -> Model {
        Model {
            noise: Noise::new(seed ^ 0x5eed_0001),
            disk_used: 0.36,
        }
    }

    /// The world at `at_ms` with `replicas` per deployment (a deployment missing from it
    /// runs its spec's count) and `incidents` under way.
    pub fn step(
        &mut self,
        at_ms: i64,
        replicas: &BTreeMap<String, i32>,
        incidents: &BTreeSet<Incident>,
    ) -> State {
        let traffic = self.noise.around(1.0, 0.02);
        let mut services: BTreeMap<&'static str, ServiceState> = BTreeMap::new();
        // Callees come after their callers, so the reversed order has every callee's
        // latency ready when its caller needs it.
        for spec in SERVICES.iter().rev() {
            let mut load = spec.load * traffic * self.noise.around(1.0, 0.01);
            if spec.name == "order-service" && incidents.contains(&Incident::OrderCpu) {
                load += BATCH_LOAD * self.noise.around(1.0, 0.01);
            }
            let replica_count = spec
                .capacity
                .map(|_| replicas.get(spec.name).copied().unwrap_or(spec.replicas));
            let utilization = match (spec.capacity, replica_count) {
                (Some(capacity), Some(count)) if count > 0 => {
                    Some(load / (f64::from(count) * capacity))
                }
                // No replica serves anything: every request fails.
                (Some(_), Some(_)) => Some(f64::INFINITY),
                _ => None,
            };
            let queueing = utilization.map_or(0.0, |u| {
                let u = u.min(MAX_QUEUEING_UTILIZATION);
                QUEUEING * u / (1.0 - u)
            });
            let mut own_ms = spec.base_ms * (1.0 + queueing) * self.noise.around(1.0, 0.02);
            let mut error_share = self.noise.around(0.002, 0.5);
            let mut healthy = true;
            match spec.name {
                "order-service" if incidents.contains(&Incident::PaymentLatency) => {
                    own_ms += SLOW_QUERY_MS * self.noise.around(1.0, 0.03);
                }
                "payment-gateway" if incidents.contains(&Incident::PaymentLatency) => {
                    error_share += TIMEOUT_SHARE;
                }
                "inventory-service" if incidents.contains(&Incident::InventoryDb) => {
                    own_ms += POOL_WAIT_MS * self.noise.around(1.0, 0.05);
                    error_share += POOL_ERROR_SHARE * self.noise.around(1.0, 0.05);
                    healthy = false;
                }
                "inventory-db" if incidents.contains(&Incident::InventoryDb) => {
                    own_ms += 20.0 * self.noise.around(1.0, 0.05);
                }
                _ => {}
            }
            if let Some(u) = utilization.filter(|u| *u > 1.0) {
                error_share += 1.0 - 1.0 / u;
            }
            let callees_ms: f64 = spec
                .callees
                .iter()
                .filter_map(|callee| services.get(callee))
                .map(|callee| callee.latency_ms)
                .sum();
            services.insert(
                spec.name,
                ServiceState {
                    replicas: replica_count,
                    load,
                    utilization,
                    cpu: utilization.map(|u| u.min(1.0)),
                    own_ms,
                    latency_ms: own_ms + callees_ms,
                    error_share: error_share.min(1.0),
                    healthy,
                },
            );
        }
        let databases = DATABASES
            .iter()
            .map(|name| (*name, self.database(name, incidents)))
            .collect();
        self.disk_used = if incidents.contains(&Incident::DiskFull) {
            let target = self.noise.around(DISK_FULL, 0.002);
            (self.disk_used + DISK_FILL_PER_TICK).min(target.max(self.disk_used))
        } else {
            (self.disk_used + DISK_GROWTH_PER_TICK * self.noise.around(1.0, 0.5)).min(0.8)
        };
        State {
            at_ms,
            services,
            databases,
            disk_used: self.disk_used,
            incidents: incidents.clone(),
        }
    }

    fn database(&mut self, name: &str, incidents: &BTreeSet<Incident>) -> DatabaseState {
        let saturated = name == "inventory-db" && incidents.contains(&Incident::InventoryDb);
        if saturated {
            let active = (92.0 + self.noise.next() * 2.0).round();
            DatabaseState {
                active,
                idle: 99.0 - active,
                max_connections: MAX_CONNECTIONS,
                rollbacks: self.noise.around(0.7, 0.2),
                deadlocks: self.noise.around(0.02, 0.5),
                max_tx_seconds: self.noise.around(3.5, 0.2),
                refused: self.noise.around(3.2, 0.1),
            }
        } else {
            let active = self.noise.around(6.0, 0.3).round();
            DatabaseState {
                active,
                idle: self.noise.around(16.0, 0.2).round(),
                max_connections: MAX_CONNECTIONS,
                rollbacks: self.noise.around(0.02, 0.5),
                deadlocks: 0.0,
                max_tx_seconds: self.noise.around(0.15, 0.5),
                refused: 0.0,
            }
        }
    }

    /// Frees the logging node's disk down to about [`DISK_CLEAN`]; answers the used share
    /// before and after.
    pub fn clean_disk(&mut self) -> (f64, f64) {
        let before = self.disk_used;
        let after = self.noise.around(DISK_CLEAN, 0.02).min(before);
        self.disk_used = after;
        (before, after)
    }
}

/// The deployments of the cluster and their initial replicas.
pub fn deployments() -> impl Iterator<Item = (&'static str, i32)> {
    SERVICES
        .iter()
        .filter(|spec| spec.capacity.is_some())
        .map(|spec| (spec.name, spec.replicas))
}

/// The services with an HTTP API (`/health`, request metrics): the deployments.
pub fn http_services() -> impl Iterator<Item = &'static str> {
    deployments().map(|(name, _)| name)
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26, error below
/// 1.5e-7), for filling histogram buckets from a log-normal latency.
pub fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}
