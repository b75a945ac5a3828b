//! `diagnose.walk` and `diagnose.database`: link troubleshooting from Prometheus, Jaeger and
//! the declared topology; the reasoning itself is `medic_analysis::diagnosis` (no I/O).
//!
//! What is guaranteed:
//! - every health check is a PromQL template (defaults below, overridable in `[diagnose]`
//!   of medic.toml) into which the service's name goes as a label matcher, injected into
//!   every selector by [`super::prometheus::with_matchers`], never spliced into the text;
//! - each check is asked twice: over the baseline window before `since` (`[diagnose]
//!   baseline`, an hour by default) and over the current window from `since` until now,
//!   both in steps of `[diagnose] step`;
//! - the graph is Jaeger's dependencies merged with `[topology]` (`Jaeger::graph`); self
//!   times come from the alerted service's traces in both windows (`Jaeger::self_times`).
//!   Without Jaeger the topology alone gives the graph and there are no span findings,
//!   which the summary says; a Jaeger failure is said too, never a failure of the walk;
//! - without Prometheus both functions fail ([`DiagnoseError::NoPrometheus`]); a query
//!   Prometheus refuses or cannot answer fails the call, naming the check and the service;
//! - the answer is the stdlib's `diagnose.Diagnosis` or `diagnose.Database` record.

use super::args::{ArgError, Args};
use super::jaeger::{Direction, Jaeger, JaegerError};
use super::prometheus::{Prometheus, PrometheusError, with_matchers};
use super::topology::Topology;
use crate::executor::Clock;
use medic_analysis::diagnosis::{self, Check, Input, Kind, SelfTime, ServiceData, Window};
use medic_compiler::plan::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The baseline window before `since` when `[diagnose]` names none.
pub const DEFAULT_BASELINE: Duration = Duration::from_secs(3600);

/// The step of the range queries when `[diagnose]` names none.
pub const DEFAULT_STEP: Duration = Duration::from_secs(30);

/// Services checked at most in one walk (each costs a dozen queries).
pub const MAX_SERVICES: usize = 64;

/// Points Prometheus answers per series at most (its own limit is 11,000): a longer window
/// is asked with a coarser step.
pub const MAX_POINTS: i64 = 10_000;

/// Range queries in flight at once.
const CONCURRENT_QUERIES: usize = 8;

/// The names of the templates `[diagnose.checks]` can override: the six checks of the
/// walk, then the four extra ones of `diagnose.database`.
pub const TEMPLATE_NAMES: [&str; 10] = [
    "latency_p99",
    "error_rate",
    "cpu",
    "memory",
    "connections",
    "db_errors",
    "up",
    "active_connections",
    "max_connections",
    "slow_queries",
];

/// One health check's PromQL and the label that names the service in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// PromQL without the service's matcher; it is added to every selector.
    pub query: String,
    /// The label that must equal the service's (or database's) name.
    pub label: String,
}

impl Template {
    fn new(query: &str, label: &str) -> Template {
        Template {
            query: query.to_string(),
            label: label.to_string(),
        }
    }
}

/// The PromQL of the health checks (overridable in `[diagnose]`).
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnoseConfig {
    /// By name, one of [`TEMPLATE_NAMES`].
    pub templates: BTreeMap<String, Template>,
    pub baseline: Duration,
    pub step: Duration,
}

impl Default for DiagnoseConfig {
    fn default() -> DiagnoseConfig {
        let templates = [
            (
                "latency_p99",
                Template::new(
                    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
                    "service",
                ),
            ),
            (
                "error_rate",
                Template::new(
                    r#"sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#,
                    "service",
                ),
            ),
            (
                "cpu",
                Template::new(
                    r#"sum(rate(container_cpu_usage_seconds_total[5m])) / sum(kube_pod_container_resource_limits{resource="cpu"})"#,
                    "container",
                ),
            ),
            (
                "memory",
                Template::new(
                    r#"sum(container_memory_working_set_bytes) / sum(kube_pod_container_resource_limits{resource="memory"})"#,
                    "container",
                ),
            ),
            (
                "connections",
                Template::new(
                    "sum(pg_stat_activity_count) / max(pg_settings_max_connections)",
                    "service",
                ),
            ),
            (
                "db_errors",
                Template::new(
                    "sum(rate(pg_stat_database_xact_rollback[5m])) + sum(rate(pg_stat_database_deadlocks[5m]))",
                    "service",
                ),
            ),
            ("up", Template::new("min(pg_up)", "service")),
            (
                "active_connections",
                Template::new("sum(pg_stat_activity_count)", "service"),
            ),
            (
                "max_connections",
                Template::new("max(pg_settings_max_connections)", "service"),
            ),
            (
                "slow_queries",
                Template::new(
                    r#"count(pg_stat_activity_max_tx_duration{state="active"} > 5)"#,
                    "service",
                ),
            ),
        ];
        DiagnoseConfig {
            templates: templates
                .into_iter()
                .map(|(name, template)| (name.to_string(), template))
                .collect(),
            baseline: DEFAULT_BASELINE,
            step: DEFAULT_STEP,
        }
    }
}

impl DiagnoseConfig {
    /// The defaults with `overrides` (by template name) put in place, each checked: a known
    /// name, a label name, a query promql-parser reads and can add the matcher to.
    pub fn with_overrides(
        overrides: BTreeMap<String, Template>,
        baseline: Duration,
        step: Duration,
    ) -> Result<DiagnoseConfig, DiagnoseError> {
        let mut config = DiagnoseConfig {
            baseline,
            step,
            ..DiagnoseConfig::default()
        };
        let points = baseline.as_millis() / step.as_millis().max(1);
        if step.is_zero() || points < 1 || points > MAX_POINTS.unsigned_abs().into() {
            return Err(DiagnoseError::BadTemplate {
                name: "step".into(),
                reason: format!(
                    "`baseline` must be between one and {MAX_POINTS} steps (it is {points})"
                ),
            });
        }
        for (name, template) in overrides {
            if !TEMPLATE_NAMES.contains(&name.as_str()) {
                return Err(DiagnoseError::BadTemplate {
                    reason: format!("unknown check (known: {})", TEMPLATE_NAMES.join(", ")),
                    name,
                });
            }
            let probe = BTreeMap::from([(template.label.clone(), "probe".to_string())]);
            if let Err(error) = check_label(&template.label)
                .and_then(|()| with_matchers(&template.query, &probe).map(|_| ()))
            {
                return Err(DiagnoseError::BadTemplate {
                    name,
                    reason: match error {
                        PrometheusError::Unmatchable(reason) => {
                            format!("the query cannot take the service's matcher: {reason}")
                        }
                        other => other.to_string(),
                    },
                });
            }
            config.templates.insert(name, template);
        }
        Ok(config)
    }

    fn template(&self, name: &str) -> Result<&Template, DiagnoseError> {
        self.templates
            .get(name)
            .ok_or_else(|| DiagnoseError::BadTemplate {
                name: name.to_string(),
                reason: "no template".into(),
            })
    }
}

fn check_label(label: &str) -> Result<(), PrometheusError> {
    let mut characters = label.chars();
    let valid = characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|rest| rest.is_ascii_alphanumeric() || rest == '_');
    if valid {
        Ok(())
    } else {
        Err(PrometheusError::Unmatchable(format!(
            "{label:?} is not a Prometheus label name"
        )))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiagnoseError {
    #[error("diagnose needs Prometheus ([prometheus] url in medic.toml)")]
    NoPrometheus,
    #[error(transparent)]
    Argument(#[from] ArgError),
    #[error("`{function}`: {reason}")]
    BadArgument { function: String, reason: String },
    #[error("[diagnose] check {name:?}: {reason}")]
    BadTemplate { name: String, reason: String },
    #[error("the {check} check of {service:?} failed: {source}")]
    Query {
        check: String,
        service: String,
        #[source]
        source: Box<PrometheusError>,
    },
    #[error(
        "prometheus has no {check} series for database {name:?} (label {label:?}); is its exporter scraped, and is the label right?"
    )]
    NoData {
        name: String,
        check: String,
        label: String,
    },
}

/// The decoded arguments of `diagnose.walk`.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkCall {
    pub service: String,
    /// Milliseconds since the Unix epoch.
    pub since: i64,
    pub depth: usize,
}

impl WalkCall {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<WalkCall, DiagnoseError> {
        let mut args = Args::new("diagnose.walk", values);
        let service = args.string("service")?;
        let since = args.time("since")?;
        let depth = args.int("depth")?;
        args.finish()?;
        let bad = |reason: &str| DiagnoseError::BadArgument {
            function: "diagnose.walk".into(),
            reason: reason.into(),
        };
        if service.trim().is_empty() {
            return Err(bad("`service` is empty"));
        }
        let depth = usize::try_from(depth).map_err(|_| bad("`depth` must not be negative"))?;
        Ok(WalkCall {
            service,
            since,
            depth: depth.min(diagnosis::MAX_DEPTH),
        })
    }
}

/// The decoded arguments of `diagnose.database`.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseCall {
    pub name: String,
    pub since: i64,
}

impl DatabaseCall {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<DatabaseCall, DiagnoseError> {
        let mut args = Args::new("diagnose.database", values);
        let call = DatabaseCall {
            name: args.string("name")?,
            since: args.time("since")?,
        };
        args.finish()?;
        if call.name.trim().is_empty() {
            return Err(DiagnoseError::BadArgument {
                function: "diagnose.database".into(),
                reason: "`name` is empty".into(),
            });
        }
        Ok(call)
    }
}

/// The diagnose adapter: what it reads from, and how.
pub struct Diagnose {
    prometheus: Option<Arc<Prometheus>>,
    jaeger: Arc<Jaeger>,
    topology: Topology,
    config: DiagnoseConfig,
    clock: Clock,
}

/// The windows of one call, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
struct Windows {
    baseline_start: i64,
    since: i64,
    now: i64,
}

impl Diagnose {
    pub fn new(
        prometheus: Option<Arc<Prometheus>>,
        jaeger: Arc<Jaeger>,
        topology: Topology,
        config: DiagnoseConfig,
        clock: Clock,
    ) -> Diagnose {
        Diagnose {
            prometheus,
            jaeger,
            topology,
            config,
            clock,
        }
    }

    /// Runs `diagnose.walk` or `diagnose.database` with the call's arguments.
    pub async fn call(
        &self,
        function: &str,
        values: BTreeMap<String, Value>,
    ) -> Result<Value, DiagnoseError> {
        let prometheus = self
            .prometheus
            .as_deref()
            .ok_or(DiagnoseError::NoPrometheus)?;
        if function == "diagnose.database" {
            let call = DatabaseCall::decode(values)?;
            self.database(prometheus, &call, self.clock.now_ms()).await
        } else {
            let call = WalkCall::decode(values)?;
            let diagnosis = self.walk(prometheus, &call, self.clock.now_ms()).await?;
            Ok(diagnosis_value(&diagnosis))
        }
    }

    fn windows(&self, since: i64, now: i64) -> Windows {
        let baseline_ms = i64::try_from(self.config.baseline.as_millis()).unwrap_or(i64::MAX);
        Windows {
            baseline_start: since.saturating_sub(baseline_ms),
            since,
            now: now.max(since),
        }
    }

    /// The walk, evaluated as of `now` (milliseconds since the Unix epoch).
    pub async fn walk(
        &self,
        prometheus: &Prometheus,
        call: &WalkCall,
        now: i64,
    ) -> Result<diagnosis::Diagnosis, DiagnoseError> {
        let windows = self.windows(call.since, now);
        let mut notes: Vec<String> = Vec::new();
        let calls = self.graph(call, windows, &mut notes).await;
        let mut services: Vec<String> = vec![call.service.clone()];
        let mut seen = BTreeSet::from([call.service.clone()]);
        for callee in calls.values().flatten() {
            if services.len() >= MAX_SERVICES {
                notes.push(format!(
                    "Only the first {MAX_SERVICES} services of the graph were checked."
                ));
                break;
            }
            if seen.insert(callee.clone()) {
                services.push(callee.clone());
            }
        }
        let self_times = self.self_times(&call.service, windows, &mut notes).await;

        let mut jobs = Vec::new();
        for service in &services {
            for check in Check::ALL {
                jobs.push((service.clone(), check));
            }
        }
        let mut found: BTreeMap<String, ServiceData> = BTreeMap::new();
        for chunk in jobs.chunks(CONCURRENT_QUERIES) {
            let answers =
                futures::future::join_all(chunk.iter().map(|(service, check)| {
                    self.window(prometheus, check.name(), service, windows)
                }))
                .await;
            for ((service, check), answer) in chunk.iter().zip(answers) {
                let data = found.entry(service.clone()).or_default();
                if let Some(window) = answer? {
                    if matches!(check, Check::Connections | Check::DbErrors) {
                        data.kind = Kind::Database;
                    }
                    data.metrics.insert(*check, window);
                }
            }
        }
        for (service, time) in self_times {
            found.entry(service).or_default().self_time = Some(time);
        }
        let input = Input {
            alerted: call.service.clone(),
            depth: call.depth,
            calls,
            services: found,
        };
        let mut diagnosis = diagnosis::diagnose(&input, &diagnosis::Settings::default());
        for note in notes {
            diagnosis.summary.push(' ');
            diagnosis.summary.push_str(&note);
        }
        Ok(diagnosis)
    }

    /// Each service's callees: Jaeger's graph merged with the topology, or the topology
    /// alone when Jaeger cannot answer.
    async fn graph(
        &self,
        call: &WalkCall,
        windows: Windows,
        notes: &mut Vec<String>,
    ) -> BTreeMap<String, BTreeSet<String>> {
        let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        match self
            .jaeger
            .graph(
                &call.service,
                Direction::Downstream,
                call.depth,
                Some(windows.baseline_start),
            )
            .await
        {
            Ok(graph) => {
                for edge in graph.edges {
                    calls.entry(edge.parent).or_default().insert(edge.child);
                }
            }
            Err(JaegerError::NoGraph) => {
                notes.push(
                    "No service graph is known (no [jaeger] and no [topology]), so only the service itself was checked."
                        .into(),
                );
            }
            Err(error) => {
                notes.push(format!(
                    "Jaeger's dependencies could not be read ({error}); the declared topology was walked."
                ));
                for (caller, callees) in &self.topology.calls {
                    calls.insert(caller.clone(), callees.clone());
                }
            }
        }
        calls
    }

    /// The p99 self time of each service in the alerted service's traces, in the current
    /// and the baseline window (the worst operation of each service).
    async fn self_times(
        &self,
        service: &str,
        windows: Windows,
        notes: &mut Vec<String>,
    ) -> BTreeMap<String, SelfTime> {
        let current = self
            .jaeger
            .self_times(service, windows.since, windows.now)
            .await;
        let baseline = self
            .jaeger
            .self_times(service, windows.baseline_start, windows.since)
            .await;
        let worst = |times: &[super::jaeger::ServiceTime]| {
            let mut by_service: BTreeMap<String, f64> = BTreeMap::new();
            for time in times {
                let entry = by_service.entry(time.service.clone()).or_insert(0.0);
                *entry = entry.max(time.p99_self_ms);
            }
            by_service
        };
        let (current, baseline) = match (current, baseline) {
            (Ok(current), Ok(baseline)) => (worst(&current), worst(&baseline)),
            (Err(JaegerError::NotConfigured), _) | (_, Err(JaegerError::NotConfigured)) => {
                notes.push("No [jaeger] is configured, so no trace evidence was read.".into());
                return BTreeMap::new();
            }
            (Err(error), _) | (_, Err(error)) => {
                notes.push(format!(
                    "Traces could not be read ({error}), so no trace evidence was used."
                ));
                return BTreeMap::new();
            }
        };
        current
            .into_iter()
            .map(|(name, current_ms)| {
                let time = SelfTime {
                    baseline_ms: baseline.get(&name).copied(),
                    current_ms,
                };
                (name, time)
            })
            .collect()
    }

    /// One check of one service over the baseline and the current window; none when
    /// Prometheus has no series for it.
    async fn window(
        &self,
        prometheus: &Prometheus,
        name: &str,
        service: &str,
        windows: Windows,
    ) -> Result<Option<Window>, DiagnoseError> {
        let baseline = self
            .values(
                prometheus,
                name,
                service,
                windows.baseline_start,
                windows.since.saturating_sub(1),
            )
            .await?;
        let current = self
            .values(prometheus, name, service, windows.since, windows.now)
            .await?;
        Ok(match (baseline, current) {
            (Some(baseline), Some(current)) => Some(Window { baseline, current }),
            _ => None,
        })
    }

    /// The values of a template for one service over a window. When the template answers
    /// several series, the worst (the one with the largest value) stands for the service.
    async fn values(
        &self,
        prometheus: &Prometheus,
        name: &str,
        service: &str,
        start: i64,
        end: i64,
    ) -> Result<Option<Vec<f64>>, DiagnoseError> {
        let template = self.config.template(name)?;
        let labels = BTreeMap::from([(template.label.clone(), service.to_string())]);
        // A window longer than MAX_POINTS steps (a `since` days ago) is asked coarser.
        let span_ms = u64::try_from(end.saturating_sub(start)).unwrap_or(0);
        let step = self.config.step.max(Duration::from_millis(
            span_ms.div_ceil(MAX_POINTS.unsigned_abs()),
        ));
        let series = prometheus
            .series(&template.query, &labels, start, end, step)
            .await
            .map_err(|source| DiagnoseError::Query {
                check: name.to_string(),
                service: service.to_string(),
                source: Box::new(source),
            })?;
        let peak = |values: &Vec<f64>| {
            values
                .iter()
                .copied()
                .filter(|value| value.is_finite())
                .fold(f64::NEG_INFINITY, f64::max)
        };
        Ok(series
            .into_iter()
            .map(|(_, values)| values)
            .filter(|values| values.iter().any(|value| value.is_finite()))
            .max_by(|a, b| peak(a).total_cmp(&peak(b))))
    }

    /// `diagnose.database`: the `diagnose.Database` record, as of `now`.
    pub async fn database(
        &self,
        prometheus: &Prometheus,
        call: &DatabaseCall,
        now: i64,
    ) -> Result<Value, DiagnoseError> {
        let windows = self.windows(call.since, now);
        let name = call.name.as_str();
        let current = |check: &'static str| async move {
            self.values(prometheus, check, name, windows.since, windows.now)
                .await
        };
        let no_data = |check: &str| DiagnoseError::NoData {
            name: name.to_string(),
            check: check.to_string(),
            label: self
                .config
                .templates
                .get(check)
                .map(|template| template.label.clone())
                .unwrap_or_default(),
        };
        let up = current("up").await?.ok_or_else(|| no_data("up"))?;
        let reachable = up.last().is_some_and(|value| *value >= 1.0);
        let last = |values: Option<Vec<f64>>| values.and_then(|values| values.last().copied());
        let active = last(current("active_connections").await?);
        let max = last(current("max_connections").await?);
        let slow_queries = last(current("slow_queries").await?).unwrap_or(0.0);
        let connections = self
            .window(prometheus, "connections", name, windows)
            .await?;
        let errors = self.window(prometheus, "db_errors", name, windows).await?;
        let judge = |window: &Option<Window>, check: Check| {
            window.as_ref().and_then(|window| {
                medic_analysis::anomaly::score(&window.baseline, &window.current, &check.rule())
            })
        };
        let saturation = match (active, max) {
            (Some(active), Some(max)) if max > 0.0 => active / max,
            _ => 0.0,
        };
        let saturated = saturation >= 0.9
            || judge(&connections, Check::Connections).is_some_and(|score| score.abnormal);
        let errors_abnormal = judge(&errors, Check::DbErrors).is_some_and(|score| score.abnormal);
        // The errors of the window: the mean rate over it times its length.
        let window_seconds = (windows.now - windows.since) as f64 / 1000.0;
        let connection_errors = errors
            .as_ref()
            .map(|window| {
                let finite: Vec<f64> = window
                    .current
                    .iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .collect();
                finite.iter().sum::<f64>() / finite.len().max(1) as f64 * window_seconds
            })
            .unwrap_or(0.0);
        let int = |value: f64| Value::Int(value.round().clamp(0.0, i64::MAX as f64) as i64);
        Ok(Value::record([
            ("reachable".to_string(), Value::Bool(reachable)),
            ("active_connections".to_string(), int(active.unwrap_or(0.0))),
            ("max_connections".to_string(), int(max.unwrap_or(0.0))),
            ("connection_errors".to_string(), int(connection_errors)),
            ("slow_queries".to_string(), int(slow_queries)),
            (
                "saturation".to_string(),
                Value::Percent((saturation * 1000.0).round() / 10.0),
            ),
            (
                "ok".to_string(),
                Value::Bool(reachable && !saturated && !errors_abnormal),
            ),
        ]))
    }
}

/// The stdlib's `diagnose.Diagnosis` record.
pub fn diagnosis_value(diagnosis: &diagnosis::Diagnosis) -> Value {
    Value::record([
        (
            "root_cause".to_string(),
            diagnosis
                .root_cause
                .clone()
                .map_or(Value::Null, Value::String),
        ),
        (
            "path".to_string(),
            Value::List(diagnosis.path.iter().cloned().map(Value::String).collect()),
        ),
        (
            "evidence".to_string(),
            Value::List(
                diagnosis
                    .evidence
                    .iter()
                    .map(|evidence| {
                        Value::record([
                            (
                                "service".to_string(),
                                Value::String(evidence.service.clone()),
                            ),
                            ("check".to_string(), Value::String(evidence.check.clone())),
                            ("value".to_string(), Value::String(evidence.value.clone())),
                            ("abnormal".to_string(), Value::Bool(evidence.abnormal)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "summary".to_string(),
            Value::String(diagnosis.summary.clone()),
        ),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_default_templates_take_their_matcher() {
        let config = DiagnoseConfig::default();
        assert_eq!(config.templates.len(), TEMPLATE_NAMES.len());
        for (name, template) in &config.templates {
            let labels = BTreeMap::from([(template.label.clone(), "a\"} or vector(1)".into())]);
            assert!(
                with_matchers(&template.query, &labels).is_ok(),
                "{name}: {}",
                template.query
            );
        }
    }

    #[test]
    fn overrides_are_checked() {
        let bad = |name: &str, query: &str, label: &str| {
            DiagnoseConfig::with_overrides(
                BTreeMap::from([(name.to_string(), Template::new(query, label))]),
                DEFAULT_BASELINE,
                DEFAULT_STEP,
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad("latency", "up", "service").contains("unknown check"));
        assert!(bad("cpu", "sum(", "service").contains("[diagnose] check \"cpu\""));
        assert!(bad("cpu", "1 + 1", "service").contains("no selector"));
        assert!(bad("cpu", "up", "a-b").contains("not a Prometheus label name"));
        let steps = |baseline: u64, step: u64| {
            DiagnoseConfig::with_overrides(
                BTreeMap::new(),
                Duration::from_secs(baseline),
                Duration::from_secs(step),
            )
            .map(|_| ())
            .map_err(|error| error.to_string())
        };
        assert_eq!(steps(3600, 30), Ok(()));
        assert!(
            steps(10, 30)
                .unwrap_err()
                .contains("between one and 10000 steps")
        );
        assert!(steps(86_400, 1).unwrap_err().contains("(it is 86400)"));
        let config = DiagnoseConfig::with_overrides(
            BTreeMap::from([("cpu".to_string(), Template::new("my_cpu_ratio", "app"))]),
            DEFAULT_BASELINE,
            DEFAULT_STEP,
        )
        .unwrap();
        assert_eq!(
            config.templates["cpu"],
            Template::new("my_cpu_ratio", "app")
        );
    }
}
