//! The server's Prometheus metrics (`GET /metrics`, text exposition format): alerts received
//! by source, runs by playbook and outcome, task durations by function, suppressions by
//! reason, the ingest queue's depth, the runs in progress, and the reverts by state (read
//! from the journal at each scrape, so a revert stuck for a human pages after a restart too).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

type Labels = Vec<(String, String)>;

/// The states a revert can be in; each always has a gauge.
pub const REVERT_STATES: &[&str] = &[
    "pending",
    "reverting",
    "reverted",
    "failed",
    "needs_attention",
    "acknowledged",
    "skipped",
];

fn task_histogram() -> Histogram {
    // 1 ms to about 17 minutes.
    Histogram::new(exponential_buckets(0.001, 4.0, 11))
}

pub struct Metrics {
    registry: Registry,
    alerts: Family<Labels, Counter>,
    runs: Family<Labels, Counter>,
    tasks: Family<Labels, Histogram, fn() -> Histogram>,
    suppressions: Family<Labels, Counter>,
    pub queue_depth: Gauge,
    pub active_runs: Gauge,
    reverts: Family<Labels, Gauge>,
    backlog: Family<Labels, Gauge>,
    backlog_age: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("medic");
        let alerts = Family::<Labels, Counter>::default();
        let runs = Family::<Labels, Counter>::default();
        let tasks = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            task_histogram as fn() -> Histogram,
        );
        let suppressions = Family::<Labels, Counter>::default();
        let queue_depth = Gauge::default();
        let active_runs = Gauge::default();
        let reverts = Family::<Labels, Gauge>::default();
        let backlog = Family::<Labels, Gauge>::default();
        let backlog_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "backlog",
            "What waits: accepted alerts to match (kind=alerts) and admitted runs waiting for a slot (kind=runs); limits.queue bounds their sum",
            backlog.clone(),
        );
        registry.register(
            "backlog_oldest_seconds",
            "How long the oldest alert or run of the backlog has waited (0 when nothing waits)",
            backlog_age.clone(),
        );
        registry.register(
            "alerts_received",
            "Alerts accepted into the journal, by source",
            alerts.clone(),
        );
        registry.register(
            "runs",
            "Finished runs, by playbook and outcome",
            runs.clone(),
        );
        registry.register(
            "task_duration_seconds",
            "Time from a task's first attempt to its outcome, by function",
            tasks.clone(),
        );
        registry.register(
            "suppressions",
            "Matched rules that did not start a run, by reason",
            suppressions.clone(),
        );
        registry.register(
            "queue_depth",
            "Accepted alerts waiting to be matched",
            queue_depth.clone(),
        );
        registry.register("active_runs", "Runs in progress", active_runs.clone());
        registry.register(
            "reverts",
            "Reverts in the journal, by state (failed and needs_attention wait for a human)",
            reverts.clone(),
        );
        Metrics {
            registry,
            alerts,
            runs,
            tasks,
            suppressions,
            queue_depth,
            active_runs,
            reverts,
            backlog,
            backlog_age,
        }
    }

    /// Sets the backlog gauges: alerts to match, runs waiting for a slot, and the age of
    /// the oldest of them in milliseconds.
    pub fn set_backlog(&self, alerts: usize, runs: usize, oldest_ms: i64) {
        for (kind, count) in [("alerts", alerts), ("runs", runs)] {
            self.backlog
                .get_or_create(&vec![("kind".into(), kind.into())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.backlog_age.set(oldest_ms as f64 / 1000.0);
    }

    /// Sets the revert gauges from the journal's counts; every known state is written, so a
    /// state that emptied reads 0 rather than keeping its last value.
    pub fn set_reverts(&self, counts: &BTreeMap<String, i64>) {
        for state in REVERT_STATES
            .iter()
            .copied()
            .map(str::to_string)
            .chain(counts.keys().cloned())
        {
            let count = counts.get(&state).copied().unwrap_or(0);
            self.reverts
                .get_or_create(&vec![("state".into(), state)])
                .set(count);
        }
    }

    pub fn alert_received(&self, source: &str, count: u64) {
        self.alerts
            .get_or_create(&vec![("source".into(), source.into())])
            .inc_by(count);
    }

    pub fn run_finished(&self, playbook: &str, outcome: &str) {
        self.runs
            .get_or_create(&vec![
                ("playbook".into(), playbook.into()),
                ("outcome".into(), outcome.into()),
            ])
            .inc();
    }

    pub fn task_finished(&self, function: &str, seconds: f64) {
        self.tasks
            .get_or_create(&vec![("function".into(), function.into())])
            .observe(seconds);
    }

    pub fn suppressed(&self, reason: &str) {
        self.suppressions
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
