//! The scrape: every tick, the series a Prometheus scraping the shop would store, appended
//! to the [`SeriesStore`]. Names and labels are those of the exporters that write them
//! (the services' own HTTP metrics, cAdvisor, kube-state-metrics, postgres_exporter,
//! node_exporter's disk as a ratio), with `service` added to the container series as a
//! scrape relabelling from the pod's `app` label would, since `diagnose`'s templates and the
//! alert rules select by it. Counters are kept here and only grow; histograms are filled
//! analytically from the model's log-normal latency, not request by request.

use super::model::{self, DATABASES, LOGGING_NODE, Noise, SIGMA, State, TICK_MS};
use crate::promql::{Labels, SeriesStore};
use std::collections::BTreeMap;

/// Upper bounds of `http_request_duration_seconds`' buckets, in seconds.
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// Bytes of each container's memory limit.
const MEMORY_LIMIT: f64 = 1024.0 * 1024.0 * 1024.0;

/// A label set from a metric name and pairs.
pub fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    labels.insert("__name__".into(), name.into());
    labels
}

/// The pods each deployment runs: new names as it scales up (so a new pod's counters start
/// at zero, as a real pod's do), the newest removed first as it scales down.
#[derive(Debug, Clone, Default)]
pub struct Pods {
    live: BTreeMap<String, Vec<String>>,
    serial: u64,
}

impl Pods {
    /// Brings `deployment` to `replicas` pods.
    pub fn sync(&mut self, deployment: &str, replicas: i32) {
        let wanted = usize::try_from(replicas).unwrap_or(0);
        let pods = self.live.entry(deployment.to_string()).or_default();
        pods.truncate(wanted);
        while pods.len() < wanted {
            self.serial += 1;
            pods.push(pod_name(deployment, self.serial));
        }
    }

    pub fn of(&self, deployment: &str) -> &[String] {
        self.live.get(deployment).map_or(&[], Vec::as_slice)
    }
}

/// `NAME-<template hash>-<suffix>`, as a ReplicaSet names its pods.
fn pod_name(deployment: &str, serial: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let hash = fnv(deployment.as_bytes());
    let code = |mut value: u64, length: usize| {
        let mut text = String::new();
        for _ in 0..length {
            let index = usize::try_from(value % ALPHABET.len() as u64).unwrap_or(0);
            text.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'x')));
            value /= ALPHABET.len() as u64;
        }
        text
    };
    let template = code(hash, 10);
    let suffix = code(fnv(&serial.to_le_bytes()) ^ hash, 5);
    format!("{deployment}-{template}-{suffix}")
}

/// FNV-1a, 64 bits.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What one scrape writes, and the counters it keeps.
#[derive(Debug, Clone)]
pub struct Scraper {
    namespace: String,
    /// `logging-node:PORT`: the instance the disk series and the Disk_Full alert name.
    disk_instance: String,
    counters: BTreeMap<Labels, f64>,
    noise: Noise,
}

impl Scraper {
    pub fn new(namespace: &str, disk_instance: &str, seed: u64) -> Scraper {
        Scraper {
            namespace: namespace.to_string(),
            disk_instance: disk_instance.to_string(),
            counters: BTreeMap::new(),
            noise: Noise::new(seed ^ 0x5c4a_9e00),
        }
    }

    /// Appends one scrape of `state` at `at_ms`.
    pub fn scrape(&mut self, store: &SeriesStore, state: &State, pods: &Pods, at_ms: i64) {
        let seconds = TICK_MS as f64 / 1000.0;
        let namespace = self.namespace.clone();
        let ns = namespace.as_str();
        for service in model::http_services() {
            let Some(current) = state.service(service) else {
                continue;
            };
            let requests = current.load * seconds;
            let base = [("namespace", ns), ("service", service)];
            // The histogram, cumulative per bucket, from the log-normal around the median.
            let median_s = current.latency_ms / 1000.0;
            for le in BUCKETS {
                let share = model::normal_cdf((le / median_s).ln() / SIGMA);
                let le_text = le.to_string();
                let series = labels(
                    "http_request_duration_seconds_bucket",
                    &[base[0], base[1], ("le", &le_text)],
                );
                self.count(store, series, at_ms, requests * share, true);
            }
            let inf = labels(
                "http_request_duration_seconds_bucket",
                &[base[0], base[1], ("le", "+Inf")],
            );
            self.count(store, inf, at_ms, requests, true);
            let count = labels("http_request_duration_seconds_count", &base);
            self.count(store, count, at_ms, requests, true);
            let mean_s = median_s * (SIGMA * SIGMA / 2.0).exp();
            let sum = labels("http_request_duration_seconds_sum", &base);
            self.count(store, sum, at_ms, requests * mean_s, false);
            let errors = requests * current.error_share;
            let ok = labels("http_requests_total", &[base[0], base[1], ("code", "200")]);
            self.count(store, ok, at_ms, requests - errors, true);
            let failed = labels("http_requests_total", &[base[0], base[1], ("code", "500")]);
            self.count(store, failed, at_ms, errors, true);
            // Container series, one per pod.
            let cpu = current.cpu.unwrap_or(0.0);
            for pod in pods.of(service) {
                let pod_labels = [
                    ("namespace", ns),
                    ("pod", pod.as_str()),
                    ("container", service),
                    ("service", service),
                ];
                let used = (cpu * self.noise.around(1.0, 0.02)).min(1.0) * seconds;
                let cpu_series = labels("container_cpu_usage_seconds_total", &pod_labels);
                self.count(store, cpu_series, at_ms, used, false);
                let memory = (280.0 + 40.0 * cpu) * 1024.0 * 1024.0 * self.noise.around(1.0, 0.02);
                store.append(
                    &labels("container_memory_working_set_bytes", &pod_labels),
                    at_ms,
                    memory.round(),
                );
                for (resource, unit, limit) in
                    [("cpu", "core", 1.0), ("memory", "byte", MEMORY_LIMIT)]
                {
                    let limit_labels = labels(
                        "kube_pod_container_resource_limits",
                        &[
                            pod_labels[0],
                            pod_labels[1],
                            pod_labels[2],
                            pod_labels[3],
                            ("resource", resource),
                            ("unit", unit),
                        ],
                    );
                    store.append(&limit_labels, at_ms, limit);
                }
            }
            if let Some(replicas) = current.replicas {
                store.append(
                    &labels(
                        "kube_deployment_spec_replicas",
                        &[("namespace", ns), ("deployment", service)],
                    ),
                    at_ms,
                    f64::from(replicas),
                );
            }
            let instance = format!("{service}:8080");
            store.append(
                &labels(
                    "up",
                    &[
                        ("job", service),
                        ("instance", &instance),
                        ("namespace", ns),
                        ("service", service),
                    ],
                ),
                at_ms,
                1.0,
            );
        }
        // The connection errors inventory-service counts (its pool's failed checkouts).
        if let Some(inventory) = state.databases.get("inventory-db") {
            let series = labels(
                "db_client_connection_errors_total",
                &[
                    ("namespace", ns),
                    ("service", "inventory-service"),
                    ("database", "inventory-db"),
                ],
            );
            self.count(store, series, at_ms, inventory.refused * seconds, true);
        }
        for database in DATABASES {
            self.database(store, state, database, at_ms);
        }
        self.disk(store, state, at_ms);
    }

    fn database(&mut self, store: &SeriesStore, state: &State, database: &str, at_ms: i64) {
        let Some(current) = state.databases.get(database) else {
            return;
        };
        let seconds = TICK_MS as f64 / 1000.0;
        let datname = database.trim_end_matches("-db");
        let instance = format!("{database}:9187");
        let base = [
            ("service", database),
            ("instance", instance.as_str()),
            ("job", "postgres-exporter"),
        ];
        fn with<'a>(
            base: &[(&'a str, &'a str)],
            extra: &[(&'a str, &'a str)],
        ) -> Vec<(&'a str, &'a str)> {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            pairs
        }
        store.append(&labels("pg_up", &base), at_ms, 1.0);
        store.append(&labels("up", &base), at_ms, 1.0);
        store.append(
            &labels("pg_settings_max_connections", &base),
            at_ms,
            current.max_connections,
        );
        for (state_name, count) in [("active", current.active), ("idle", current.idle)] {
            store.append(
                &labels(
                    "pg_stat_activity_count",
                    &with(&base, &[("datname", datname), ("state", state_name)]),
                ),
                at_ms,
                count,
            );
        }
        store.append(
            &labels(
                "pg_stat_activity_max_tx_duration",
                &with(&base, &[("datname", datname), ("state", "active")]),
            ),
            at_ms,
            current.max_tx_seconds,
        );
        let rollbacks = labels(
            "pg_stat_database_xact_rollback",
            &with(&base, &[("datname", datname)]),
        );
        self.count(store, rollbacks, at_ms, current.rollbacks * seconds, true);
        let deadlocks = labels(
            "pg_stat_database_deadlocks",
            &with(&base, &[("datname", datname)]),
        );
        self.count(store, deadlocks, at_ms, current.deadlocks * seconds, true);
    }

    fn disk(&mut self, store: &SeriesStore, state: &State, at_ms: i64) {
        store.append(&self.disk_labels(), at_ms, state.disk_used);
        store.append(
            &labels(
                "up",
                &[
                    ("job", "node-exporter"),
                    ("instance", &self.disk_instance),
                    ("service", LOGGING_NODE),
                ],
            ),
            at_ms,
            1.0,
        );
    }

    /// `disk_used_ratio` of the logging node's `/var/log`.
    pub fn disk_labels(&self) -> Labels {
        labels(
            "disk_used_ratio",
            &[
                ("instance", &self.disk_instance),
                ("service", LOGGING_NODE),
                ("mountpoint", "/var/log"),
                ("device", "sda1"),
            ],
        )
    }

    /// Adds `delta` to a counter and appends it (rounded to a whole number when `whole`:
    /// request counts are; CPU seconds are not).
    fn count(&mut self, store: &SeriesStore, series: Labels, at_ms: i64, delta: f64, whole: bool) {
        let value = self.counters.entry(series.clone()).or_insert(0.0);
        *value += delta.max(0.0);
        let shown = if whole { value.floor() } else { *value };
        store.append(&series, at_ms, shown);
    }
}
