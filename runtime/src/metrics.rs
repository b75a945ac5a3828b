//! The server's Prometheus metrics (`GET /metrics`, text exposition format): alerts received
//! by source, runs by playbook and outcome, task durations by function, suppressions by
//! reason, the ingest queue's depth, the runs in progress, and the reverts by state (read
//! from the journal at each scrape, so a revert stuck for a human pages after a restart too),
//! and each playbook's effectiveness over the last 7 days (`crate::stats`, computed again at
//! most once a minute).

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
    /// Runs this node took over from a node whose lease lapsed (or from its own earlier
    /// registration), on a PostgreSQL store.
    runs_taken_over: Counter,
    reverts: Family<Labels, Gauge>,
    backlog: Family<Labels, Gauge>,
    backlog_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    after_runs: Family<Labels, Gauge>,
    resolved_ratio: Family<Labels, FloatGauge>,
    run_seconds: Family<Labels, FloatGauge>,
    feedback: Family<Labels, Gauge>,
    mttr: Family<Labels, FloatGauge>,
    /// When the effectiveness gauges were last set (monotonic), to compute them at most
    /// once per [`STATS_EVERY`].
    stats_at: std::sync::Mutex<Option<std::time::Instant>>,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// How often the effectiveness gauges are computed again, at most.
pub const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

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
        let runs_taken_over = Counter::default();
        registry.register(
            "runs_taken_over",
            "Runs this node took over from a node whose lease lapsed (several nodes on PostgreSQL)",
            runs_taken_over.clone(),
        );
        registry.register(
            "reverts",
            "Reverts in the journal, by state (failed and needs_attention wait for a human)",
            reverts.clone(),
        );
        let after_runs = Family::<Labels, Gauge>::default();
        let resolved_ratio = Family::<Labels, FloatGauge>::default();
        let run_seconds = Family::<Labels, FloatGauge>::default();
        let feedback = Family::<Labels, Gauge>::default();
        let mttr = Family::<Labels, FloatGauge>::default();
        registry.register(
            "playbook_runs_after",
            "Runs started in the last 7 days, by playbook and what their alert did after (resolved, fired_again, kept_firing, open)",
            after_runs.clone(),
        );
        registry.register(
            "playbook_resolved_ratio",
            "Of the runs of the last 7 days whose effect is known, the share after which the alert resolved within 30 minutes",
            resolved_ratio.clone(),
        );
        registry.register(
            "playbook_run_seconds",
            "Median (quantile=0.5) and p90 (quantile=0.9) run time over the last 7 days, by playbook",
            run_seconds.clone(),
        );
        registry.register(
            "playbook_feedback",
            "Operators' answers to \"did this run fix it?\" about runs of the last 7 days, by playbook and verdict",
            feedback.clone(),
        );
        registry.register(
            "alert_mttr_seconds",
            "Mean time to resolve over the last 7 days, by alert name, for episodes with a run (run=yes) and without (run=no)",
            mttr.clone(),
        );
        Metrics {
            registry,
            after_runs,
            resolved_ratio,
            run_seconds,
            feedback,
            mttr,
            stats_at: std::sync::Mutex::new(None),
            alerts,
            runs,
            tasks,
            suppressions,
            queue_depth,
            active_runs,
            runs_taken_over,
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

    pub fn run_taken_over(&self) {
        self.runs_taken_over.inc();
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

    /// Whether the effectiveness gauges are due to be computed again (and if so, marks
    /// them as computed now).
    pub fn stats_due(&self) -> bool {
        let Ok(mut at) = self.stats_at.lock() else {
            return false;
        };
        let due = at.is_none_or(|at| at.elapsed() >= STATS_EVERY);
        if due {
            *at = Some(std::time::Instant::now());
        }
        due
    }

    /// Sets the effectiveness gauges from `stats`; playbooks and alerts no longer in the
    /// window go.
    pub fn set_stats(&self, stats: &crate::stats::Stats) {
        self.after_runs.clear();
        self.resolved_ratio.clear();
        self.run_seconds.clear();
        self.feedback.clear();
        self.mttr.clear();
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_string(), (*value).to_string()))
                .collect()
        };
        let count = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        for playbook in &stats.playbooks {
            let name = playbook.name.as_str();
            for (after, value) in [
                ("resolved", playbook.after.resolved),
                ("fired_again", playbook.after.fired_again),
                ("kept_firing", playbook.after.kept_firing),
                ("open", playbook.after.open),
            ] {
                self.after_runs
                    .get_or_create(&labels(&[("playbook", name), ("after", after)]))
                    .set(count(value));
            }
            if let Some(ratio) = playbook.resolved_ratio {
                self.resolved_ratio
                    .get_or_create(&labels(&[("playbook", name)]))
                    .set(ratio);
            }
            for (quantile, value) in [
                ("0.5", playbook.run_seconds_median),
                ("0.9", playbook.run_seconds_p90),
            ] {
                if let Some(value) = value {
                    self.run_seconds
                        .get_or_create(&labels(&[("playbook", name), ("quantile", quantile)]))
                        .set(value);
                }
            }
            for (verdict, value) in [
                ("yes", playbook.feedback.yes),
                ("partly", playbook.feedback.partly),
                ("no", playbook.feedback.no),
            ] {
                self.feedback
                    .get_or_create(&labels(&[("playbook", name), ("verdict", verdict)]))
                    .set(count(value));
            }
        }
        for alert in &stats.alerts {
            for (ran, resolution) in [("yes", &alert.with_run), ("no", &alert.without_run)] {
                if let Some(mttr) = resolution.mttr_seconds {
                    self.mttr
                        .get_or_create(&labels(&[("alert", &alert.alert), ("run", ran)]))
                        .set(mttr);
                }
            }
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
