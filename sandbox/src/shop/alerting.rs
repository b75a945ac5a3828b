//! The shop's alerting: Prometheus alert rules over the scraped series, evaluated every tick
//! with the sandbox's PromQL as Prometheus's rule manager evaluates them (rules/alerting.go):
//! a series the expression answers makes an alert pending; pending for `for`, it fires; once
//! the expression stops answering it, a firing alert keeps firing for `keep_firing_for`,
//! then resolves (a pending one is dropped). Annotations are templated with `$labels` and
//! `$value` at each evaluation. Firing and resolving are the notifications Alertmanager
//! would send, one alert per group (grouped by `alertname`); [`super::webhook`] posts them.

use super::metrics::fnv;
use crate::promql::{self, Labels, QueryValue, SeriesStore};
use serde::Serialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One alerting rule, as a rules file would have it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub alert: &'static str,
    pub expr: String,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: Vec<(&'static str, &'static str)>,
    /// Annotation templates: `{{ $labels.NAME }}`, `{{ $value }}` and `{{ $value | F }}`
    /// with F one of `humanizePercentage`, `humanizeDuration`, `printf "%.0f"`.
    pub annotations: Vec<(&'static str, &'static str)>,
}

const MINUTE: i64 = 60_000;

/// How often a firing alert is sent again (Alertmanager's `repeat_interval` in the shop's
/// route): a run refused by a cooldown starts at a repeat once the cooldown has passed.
pub const REPEAT_INTERVAL_MS: i64 = 10 * MINUTE;

/// The shop's rules; `namespace` is the cluster namespace the services run in.
pub fn rules(namespace: &str) -> Vec<Rule> {
    vec![
        Rule {
            alert: "High_CPU_Usage",
            expr: format!(
                r#"sum by (namespace, service) (rate(container_cpu_usage_seconds_total{{namespace="{namespace}"}}[2m])) / sum by (namespace, service) (kube_pod_container_resource_limits{{namespace="{namespace}", resource="cpu"}}) > 0.9"#
            ),
            for_ms: MINUTE,
            keep_firing_for_ms: 5 * MINUTE,
            labels: vec![("severity", "critical")],
            annotations: vec![
                (
                    "summary",
                    "{{ $labels.service }} CPU above 90% of its limit for 1 minute",
                ),
                ("value", "{{ $value | humanizePercentage }}"),
            ],
        },
        Rule {
            alert: "Service_Latency_Exceeded",
            expr: format!(
                r#"histogram_quantile(0.99, sum by (le, namespace, service) (rate(http_request_duration_seconds_bucket{{namespace="{namespace}", service="payment-gateway"}}[2m]))) > 0.5"#
            ),
            for_ms: MINUTE,
            keep_firing_for_ms: 3 * MINUTE,
            labels: vec![("severity", "critical")],
            annotations: vec![
                (
                    "summary",
                    "{{ $labels.service }} p99 latency above its 500ms objective",
                ),
                ("value", "{{ $value | humanizeDuration }}"),
            ],
        },
        Rule {
            alert: "Disk_Full",
            expr: "max by (instance, service, mountpoint) (disk_used_ratio) > 0.85".to_string(),
            for_ms: MINUTE,
            keep_firing_for_ms: 0,
            labels: vec![("severity", "warning")],
            annotations: vec![
                (
                    "summary",
                    "{{ $labels.mountpoint }} is {{ $value | humanizePercentage }} full on {{ $labels.instance }}",
                ),
                ("value", "{{ $value | humanizePercentage }}"),
            ],
        },
        Rule {
            alert: "DB_Connection_Error",
            expr: format!(
                r#"sum by (service, database) (increase(db_client_connection_errors_total{{namespace="{namespace}"}}[1m])) > 5"#
            ),
            for_ms: MINUTE,
            keep_firing_for_ms: 2 * MINUTE,
            labels: vec![("severity", "critical")],
            annotations: vec![
                (
                    "summary",
                    "{{ $labels.service }}: {{ $value | printf \"%.0f\" }} connection errors to {{ $labels.database }} in the last minute",
                ),
                ("value", "{{ $value | printf \"%.0f\" }}"),
            ],
        },
    ]
}

/// The rules as a Prometheus rules file (YAML), for the docs and for a real Prometheus.
pub fn rules_file(rules: &[Rule]) -> String {
    let mut out = String::from("groups:\n  - name: shop\n    interval: 15s\n    rules:\n");
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    for rule in rules {
        let _ = writeln!(out, "      - alert: {}", rule.alert);
        let _ = writeln!(out, "        expr: {}", quote(&rule.expr));
        let _ = writeln!(out, "        for: {}", duration(rule.for_ms));
        if rule.keep_firing_for_ms > 0 {
            let _ = writeln!(
                out,
                "        keep_firing_for: {}",
                duration(rule.keep_firing_for_ms)
            );
        }
        out.push_str("        labels:\n");
        for (key, value) in &rule.labels {
            let _ = writeln!(out, "          {key}: {value}");
        }
        out.push_str("        annotations:\n");
        for (key, value) in &rule.annotations {
            let _ = writeln!(out, "          {key}: {}", quote(value));
        }
    }
    out
}

fn duration(ms: i64) -> String {
    if ms % MINUTE == 0 {
        format!("{}m", ms / MINUTE)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// Whether a notification says an alert fires or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert as Alertmanager forwards it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub status: AlertStatus,
    /// `alertname` included.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub expr: String,
}

impl Notification {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// Prometheus's fingerprint of the label set, in 16 hex digits.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::new();
        for (name, value) in &self.labels {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0xff);
            bytes.extend_from_slice(value.as_bytes());
            bytes.push(0xff);
        }
        format!("{:016x}", fnv(&bytes))
    }

    /// The Alertmanager webhook (version 4) carrying this alert alone.
    pub fn payload(&self, external_url: &str) -> Json {
        let time = |ms: Option<i64>| {
            ms.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), super::logs::rfc3339)
        };
        let name = self.name();
        let generator = format!(
            "http://prometheus.shop:9090/graph?g0.expr={}&g0.tab=1",
            percent_encode(&self.expr)
        );
        json!({
            "version": "4",
            "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
            "truncatedAlerts": 0,
            "status": self.status.as_str(),
            "receiver": "medic",
            "groupLabels": {"alertname": name},
            "commonLabels": self.labels,
            "commonAnnotations": self.annotations,
            "externalURL": external_url,
            "alerts": [{
                "status": self.status.as_str(),
                "labels": self.labels,
                "annotations": self.annotations,
                "startsAt": time(Some(self.starts_at_ms)),
                "endsAt": time(self.ends_at_ms),
                "generatorURL": generator,
                "fingerprint": self.fingerprint(),
            }],
        })
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// An alert of a rule, pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Active {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub last_true_ms: i64,
    /// When its last firing notification was made.
    pub notified_at_ms: i64,
}

/// The rules and their alerts between evaluations.
#[derive(Debug, Clone)]
pub struct Evaluator {
    rules: Vec<Rule>,
    /// Per rule (by index), its alerts by label set.
    active: Vec<BTreeMap<Labels, Active>>,
    /// The last error of each rule, reported once until the rule works again.
    errors: Vec<Option<String>>,
}

impl Evaluator {
    pub fn new(rules: Vec<Rule>) -> Evaluator {
        let count = rules.len();
        Evaluator {
            rules,
            active: vec![BTreeMap::new(); count],
            errors: vec![None; count],
        }
    }

    /// Evaluates every rule at `at_ms`; answers the notifications to send.
    pub fn evaluate(&mut self, store: &SeriesStore, at_ms: i64) -> Vec<Notification> {
        let mut notifications = Vec::new();
        for ((rule, active), error) in self
            .rules
            .iter()
            .zip(self.active.iter_mut())
            .zip(self.errors.iter_mut())
        {
            let samples = match promql::instant(store, &rule.expr, at_ms) {
                Ok(QueryValue::Vector(samples)) => samples,
                Ok(QueryValue::Scalar(value)) => vec![(Labels::new(), value)],
                Ok(other) => {
                    report(error, rule, format!("answered {other:?}, not a vector"));
                    continue;
                }
                // As Prometheus does, a rule that fails leaves its alerts as they were.
                Err(failure) => {
                    report(error, rule, failure.to_string());
                    continue;
                }
            };
            *error = None;
            let mut seen = Vec::new();
            for (series, value) in samples {
                let mut labels = series;
                labels.remove("__name__");
                for (key, label) in &rule.labels {
                    labels.insert((*key).to_string(), (*label).to_string());
                }
                labels.insert("alertname".into(), rule.alert.to_string());
                let annotations = rule
                    .annotations
                    .iter()
                    .map(|(key, template)| (key.to_string(), expand(template, &labels, value)))
                    .collect();
                let alert = active.entry(labels.clone()).or_insert_with(|| Active {
                    labels: labels.clone(),
                    annotations: BTreeMap::new(),
                    value,
                    active_at_ms: at_ms,
                    fired_at_ms: None,
                    last_true_ms: at_ms,
                    notified_at_ms: at_ms,
                });
                alert.value = value;
                alert.annotations = annotations;
                alert.last_true_ms = at_ms;
                seen.push(labels);
            }
            let mut resolved = Vec::new();
            for (labels, alert) in active.iter_mut() {
                let answered = seen.contains(labels);
                match alert.fired_at_ms {
                    None if !answered => resolved.push((labels.clone(), None)),
                    None if at_ms - alert.active_at_ms >= rule.for_ms => {
                        alert.fired_at_ms = Some(at_ms);
                        alert.notified_at_ms = at_ms;
                        notifications.push(Notification {
                            status: AlertStatus::Firing,
                            labels: alert.labels.clone(),
                            annotations: alert.annotations.clone(),
                            starts_at_ms: at_ms,
                            ends_at_ms: None,
                            expr: rule.expr.clone(),
                        });
                    }
                    Some(fired)
                        if !answered && at_ms - alert.last_true_ms >= rule.keep_firing_for_ms =>
                    {
                        resolved.push((labels.clone(), Some(fired)));
                    }
                    // Still firing: sent again every repeat interval, with the same
                    // `startsAt` (the same firing episode), as Alertmanager repeats it.
                    Some(fired) if at_ms - alert.notified_at_ms >= REPEAT_INTERVAL_MS => {
                        alert.notified_at_ms = at_ms;
                        notifications.push(Notification {
                            status: AlertStatus::Firing,
                            labels: alert.labels.clone(),
                            annotations: alert.annotations.clone(),
                            starts_at_ms: fired,
                            ends_at_ms: None,
                            expr: rule.expr.clone(),
                        });
                    }
                    _ => {}
                }
            }
            for (labels, fired) in resolved {
                if let (Some(alert), Some(fired)) = (active.remove(&labels), fired) {
                    notifications.push(Notification {
                        status: AlertStatus::Resolved,
                        labels: alert.labels,
                        annotations: alert.annotations,
                        starts_at_ms: fired,
                        ends_at_ms: Some(at_ms),
                        expr: rule.expr.clone(),
                    });
                }
            }
        }
        notifications
    }

    /// The alerts firing now.
    pub fn firing(&self) -> Vec<Active> {
        self.active
            .iter()
            .flat_map(BTreeMap::values)
            .filter(|alert| alert.fired_at_ms.is_some())
            .cloned()
            .collect()
    }
}

fn report(last: &mut Option<String>, rule: &Rule, message: String) {
    if last.as_deref() != Some(message.as_str()) {
        tracing::warn!(alert = rule.alert, error = %message, "shop alert rule failed");
    }
    *last = Some(message);
}

/// Expands an annotation template.
pub fn expand(template: &str, labels: &Labels, value: f64) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find("}}") else {
            out.push_str(rest.get(start..).unwrap_or_default());
            return out;
        };
        let inner = after.get(..end).unwrap_or_default().trim();
        let (subject, filter) = match inner.split_once('|') {
            Some((subject, filter)) => (subject.trim(), Some(filter.trim())),
            None => (inner, None),
        };
        if let Some(label) = subject.strip_prefix("$labels.") {
            out.push_str(labels.get(label).map_or("", String::as_str));
        } else if subject == "$value" {
            out.push_str(&humanize(value, filter));
        }
        rest = after.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// `$value` through one of the template functions the rules use, as Prometheus writes it
/// (`humanizePercentage`: `%.4g` of the percentage; `humanizeDuration` under a second: whole
/// milliseconds here, where Prometheus keeps `%.4g`).
fn humanize(value: f64, filter: Option<&str>) -> String {
    match filter {
        Some("humanizePercentage") => format!("{}%", significant(value * 100.0)),
        Some("humanizeDuration") if value.abs() < 1.0 => {
            format!("{:.0}ms", value * 1000.0)
        }
        Some("humanizeDuration") => format!("{}s", significant(value)),
        Some(filter) if filter.starts_with("printf") => format!("{value:.0}"),
        _ => format!("{value}"),
    }
}

/// A value with at most four significant digits and no trailing zeros (Go's `%.4g` for the
/// magnitudes alerts have).
fn significant(value: f64) -> String {
    let digits = if value.abs() >= 1000.0 {
        0
    } else if value.abs() >= 100.0 {
        1
    } else if value.abs() >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}
