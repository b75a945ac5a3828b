//! `diagnose.walk` and `diagnose.database` through the real adapter against a real
//! Prometheus on loopback (medic_sandbox's `RealPrometheus`: the Debian binary over data
//! backfilled by promtool; the test fails with the install command when it is missing),
//! with the default health-check templates, the declared topology and the sandbox Jaeger's
//! traces for self times.

use super::support::{compile, failure, output, run_playbook};
use medic_compiler::plan::Value;
use medic_runtime::adapters::jaeger::JaegerConfig;
use medic_runtime::adapters::{PrometheusConfig, StandardToolbox, ToolboxConfig, Topology};
use medic_sandbox::jaeger::{JaegerServer, TraceGenerator};
use medic_sandbox::prometheus::RealPrometheus;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds between backfilled samples.
const STEP: i64 = 30;
/// Backfilled history: 80 minutes up to now.
const HISTORY: i64 = 80 * 60;
/// `since` of the calls: 15 minutes ago (the baseline is the hour before).
const SINCE_AGO: i64 = 15 * 60;
/// The fault starts 12 minutes ago.
const FAULT_AGO: i64 = 12 * 60;

const GRAPH: [(&str, &[&str]); 3] = [
    ("payment-gateway", &["order-service"]),
    ("order-service", &["inventory-service"]),
    ("inventory-service", &["inventory-db"]),
];

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// What is wrong in the backfilled world.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// inventory-service slow (its callers wait for it).
    SlowInventory,
    /// inventory-db's connections exhausted and transactions rolled back.
    SaturatedDatabase,
}

/// One series' samples: (unix seconds, value).
type Samples = Vec<(i64, f64)>;

/// Samples of each family by labels text, written as OpenMetrics.
#[derive(Default)]
struct Families(BTreeMap<&'static str, BTreeMap<String, Samples>>);

impl Families {
    fn push(&mut self, family: &'static str, labels: &str, time: i64, value: f64) {
        self.0
            .entry(family)
            .or_default()
            .entry(labels.to_string())
            .or_default()
            .push((time, value));
    }

    fn openmetrics(&self) -> String {
        let mut text = String::new();
        for (family, series) in &self.0 {
            writeln!(text, "# TYPE {family} gauge").unwrap();
            for (labels, samples) in series {
                for (time, value) in samples {
                    writeln!(text, "{family}{{{labels}}} {value} {time}").unwrap();
                }
            }
        }
        text.push_str("# EOF\n");
        text
    }
}

/// The p99 (seconds) of a service at `time`.
fn p99(service: &str, fault: Fault, faulty: bool) -> f64 {
    let normal = match service {
        "payment-gateway" => 0.3,
        "order-service" => 0.2,
        _ => 0.15,
    };
    match (fault, faulty) {
        (Fault::SlowInventory, true) => normal + 0.6,
        _ => normal,
    }
}

/// Eighty minutes of the payment graph's metrics under the conventional names.
fn world(now: i64, fault: Fault) -> String {
    let buckets = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
    let mut families = Families::default();
    let start = now - HISTORY;
    let services = ["payment-gateway", "order-service", "inventory-service"];
    for service in services {
        let mut cumulative = vec![0.0; buckets.len() + 1];
        let mut requests = 0.0;
        let mut errors = 0.0;
        let mut cpu_seconds = 0.0;
        for step in 0..(HISTORY / STEP) {
            let time = start + step * STEP;
            let faulty = time >= now - FAULT_AGO;
            // 1000 requests per step: 985 fast, 15 at the service's p99.
            let slow = p99(service, fault, faulty);
            for (index, bound) in buckets.iter().enumerate() {
                let fast = 985.0;
                let slow_here = if slow <= *bound { 15.0 } else { 0.0 };
                cumulative[index] += fast + slow_here;
            }
            cumulative[buckets.len()] += 1000.0;
            for (index, bound) in buckets.iter().enumerate() {
                families.push(
                    "http_request_duration_seconds_bucket",
                    &format!("le=\"{bound}\",service=\"{service}\""),
                    time,
                    cumulative[index],
                );
            }
            families.push(
                "http_request_duration_seconds_bucket",
                &format!("le=\"+Inf\",service=\"{service}\""),
                time,
                cumulative[buckets.len()],
            );
            // A little jitter so the baseline has a spread, the same on every run.
            let wobble = f64::from(u8::try_from(step % 5).unwrap());
            requests += 1000.0;
            errors += 1.0 + wobble * 0.2;
            families.push(
                "http_requests_total",
                &format!("code=\"200\",service=\"{service}\""),
                time,
                requests - errors,
            );
            families.push(
                "http_requests_total",
                &format!("code=\"500\",service=\"{service}\""),
                time,
                errors,
            );
            cpu_seconds += STEP as f64 * (0.3 + wobble * 0.01);
            families.push(
                "container_cpu_usage_seconds_total",
                &format!("container=\"{service}\""),
                time,
                cpu_seconds,
            );
            families.push(
                "container_memory_working_set_bytes",
                &format!("container=\"{service}\""),
                time,
                4.0e8 + wobble * 1.0e6,
            );
            families.push(
                "kube_pod_container_resource_limits",
                &format!("container=\"{service}\",resource=\"cpu\""),
                time,
                1.0,
            );
            families.push(
                "kube_pod_container_resource_limits",
                &format!("container=\"{service}\",resource=\"memory\""),
                time,
                1.0e9,
            );
        }
    }
    let database = "service=\"inventory-db\"";
    let mut rollbacks = 0.0;
    for step in 0..(HISTORY / STEP) {
        let time = start + step * STEP;
        let saturated = fault == Fault::SaturatedDatabase && time >= now - FAULT_AGO;
        let wobble = f64::from(u8::try_from(step % 5).unwrap());
        families.push("pg_up", database, time, 1.0);
        families.push("pg_settings_max_connections", database, time, 100.0);
        families.push(
            "pg_stat_activity_count",
            &format!("{database},state=\"active\""),
            time,
            if saturated { 97.0 } else { 20.0 + wobble },
        );
        rollbacks += if saturated { 300.0 } else { 1.0 + wobble * 0.1 };
        families.push("pg_stat_database_xact_rollback", database, time, rollbacks);
        families.push("pg_stat_database_deadlocks", database, time, 0.0);
    }
    families.openmetrics()
}

/// The payment graph's traces: 40 in the baseline hour, 40 since the fault, the second
/// set with inventory-service 600 ms slow when that is the fault.
fn traces(server: &JaegerServer, now: i64, fault: Fault) {
    let normal = TraceGenerator::new(&GRAPH, 5);
    let mut baseline = normal.clone();
    let baseline_start = (now - SINCE_AGO - 50 * 60) * 1_000_000;
    server.add_traces(baseline.traces(
        "payment-gateway",
        40,
        baseline_start,
        Duration::from_secs(60),
    ));
    let mut current = match fault {
        Fault::SlowInventory => {
            TraceGenerator::new(&GRAPH, 6).slow("inventory-service", Duration::from_millis(600))
        }
        _ => TraceGenerator::new(&GRAPH, 6),
    };
    let current_start = (now - FAULT_AGO + 30) * 1_000_000;
    server.add_traces(current.traces(
        "payment-gateway",
        40,
        current_start,
        Duration::from_secs(15),
    ));
}

struct World {
    prometheus: RealPrometheus,
    jaeger: JaegerServer,
    now: i64,
}

async fn start(fault: Fault) -> World {
    let now = unix_now();
    let text = world(now, fault);
    let prometheus = tokio::task::spawn_blocking(move || RealPrometheus::start(&text))
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("{error}"));
    let jaeger = JaegerServer::start().await.unwrap();
    traces(&jaeger, now, fault);
    World {
        prometheus,
        jaeger,
        now,
    }
}

fn toolbox(world: Option<&World>) -> Arc<StandardToolbox> {
    let topology = Topology {
        calls: GRAPH
            .iter()
            .map(|(service, callees)| {
                (
                    service.to_string(),
                    callees.iter().map(|callee| callee.to_string()).collect(),
                )
            })
            .collect(),
    };
    Arc::new(
        StandardToolbox::new(ToolboxConfig {
            prometheus: world.map(|world| PrometheusConfig {
                url: world.prometheus.url(),
                timeout: Duration::from_secs(10),
                bearer_token: None,
            }),
            jaeger: world.map(|world| JaegerConfig {
                url: world.jaeger.url(),
                timeout: Duration::from_secs(10),
                bearer_token: None,
            }),
            topology,
            ..ToolboxConfig::default()
        })
        .unwrap(),
    )
}

const PROGRAM: &str = r#"
import std.{diagnose}
playbook check(service: String, database: String, since: Time) {
  task walk = diagnose.walk(service: service, since: since, depth: 4)
  task db = diagnose.database(name: database, since: since)
}
"#;

async fn run(world: Option<&World>, service: &str, now: i64) -> medic_runtime::executor::RunReport {
    run_playbook(
        &compile(PROGRAM),
        &[
            ("service", Value::String(service.into())),
            ("database", Value::String("inventory-db".into())),
            ("since", Value::Time((now - SINCE_AGO) * 1000)),
        ],
        toolbox(world),
    )
    .await
}

fn text(value: &Value) -> &str {
    match value {
        Value::String(text) => text,
        other => panic!("not a string: {other:?}"),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::List(items) => items.iter().map(|item| text(item).to_string()).collect(),
        other => panic!("not a list: {other:?}"),
    }
}

/// The evidence of a diagnosis as (service, check, abnormal, value).
fn evidence(value: &Value) -> Vec<(String, String, bool, String)> {
    let Value::List(items) = value else {
        panic!("not a list: {value:?}")
    };
    items
        .iter()
        .map(|item| {
            let Value::Record(fields) = item else {
                panic!("not a record: {item:?}")
            };
            (
                text(&fields["service"]).to_string(),
                text(&fields["check"]).to_string(),
                fields["abnormal"] == Value::Bool(true),
                text(&fields["value"]).to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_walk_finds_a_slow_downstream_service() {
    let world = start(Fault::SlowInventory).await;
    let report = run(Some(&world), "payment-gateway", world.now).await;
    let walk = output(&report, "walk");
    let summary = text(&walk["summary"]).to_string();
    assert_eq!(
        walk["root_cause"],
        Value::String("inventory-service".into()),
        "{summary}\n{:#?}",
        evidence(&walk["evidence"])
    );
    assert_eq!(
        strings(&walk["path"]),
        ["payment-gateway", "order-service", "inventory-service"]
    );
    let found = evidence(&walk["evidence"]);
    let abnormal = |service: &str, check: &str| {
        found
            .iter()
            .any(|(s, c, abnormal, _)| s == service && c == check && *abnormal)
    };
    // Two kinds of evidence for the cause: its p99 against its baseline and its spans.
    assert!(abnormal("inventory-service", "latency_p99"), "{found:#?}");
    assert!(abnormal("inventory-service", "span"), "{found:#?}");
    // Its callers are slow too, but their own spans are not.
    assert!(abnormal("payment-gateway", "latency_p99"), "{found:#?}");
    assert!(!abnormal("order-service", "span"), "{found:#?}");
    assert!(!abnormal("inventory-service", "cpu"), "{found:#?}");
    assert!(
        summary.starts_with("inventory-service is the most likely root cause (confidence high)"),
        "{summary}"
    );
    // The database is healthy.
    let db = output(&report, "db");
    assert_eq!(db["ok"], Value::Bool(true), "{db:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_walk_is_inconclusive_on_a_healthy_graph() {
    let world = start(Fault::None).await;
    let report = run(Some(&world), "payment-gateway", world.now).await;
    let walk = output(&report, "walk");
    let summary = text(&walk["summary"]).to_string();
    assert_eq!(walk["root_cause"], Value::Null, "{summary}");
    assert_eq!(strings(&walk["path"]), ["payment-gateway"]);
    assert!(summary.starts_with("Inconclusive"), "{summary}");
    let found = evidence(&walk["evidence"]);
    assert!(
        found.iter().all(|(_, _, abnormal, _)| !abnormal),
        "{found:#?}"
    );
    // Every check of the alerted service answered, with the default templates.
    for check in ["latency_p99", "error_rate", "cpu", "memory", "span"] {
        assert!(
            found
                .iter()
                .any(|(service, c, _, _)| service == "payment-gateway" && c == check),
            "{check}: {found:#?}"
        );
    }
    // A service name made to end the matcher and add `or vector(1)` stays a label value:
    // nothing matches it, so nothing is judged, rather than every series at once.
    let hostile = "payment-gateway\"} or vector(1) #";
    let report = run(Some(&world), hostile, world.now).await;
    let walk = output(&report, "walk");
    let summary = text(&walk["summary"]).to_string();
    assert_eq!(walk["root_cause"], Value::Null, "{summary}");
    assert_eq!(evidence(&walk["evidence"]), []);
    assert!(summary.contains("0 of the 1 services"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_database_reports_a_saturated_database() {
    let world = start(Fault::SaturatedDatabase).await;
    let report = run(Some(&world), "inventory-service", world.now).await;
    let db = output(&report, "db");
    assert_eq!(db["reachable"], Value::Bool(true), "{db:?}");
    assert_eq!(db["active_connections"], Value::Int(97), "{db:?}");
    assert_eq!(db["max_connections"], Value::Int(100), "{db:?}");
    assert_eq!(db["saturation"], Value::Percent(97.0), "{db:?}");
    assert_eq!(db["ok"], Value::Bool(false), "{db:?}");
    let Value::Int(errors) = db["connection_errors"] else {
        panic!("{db:?}")
    };
    assert!(errors > 100, "{db:?}");
    // The walk from its caller (as examples/inventory_db.ops asks) ends at the database:
    // its connections against their baseline and the limit, and its rollbacks. Both are
    // metrics and the traces show nothing, so the summary says it is one kind of evidence.
    let walk = output(&report, "walk");
    let summary = text(&walk["summary"]).to_string();
    assert_eq!(
        walk["root_cause"],
        Value::String("inventory-db".into()),
        "{summary}"
    );
    assert_eq!(
        strings(&walk["path"]),
        ["inventory-service", "inventory-db"]
    );
    let found = evidence(&walk["evidence"]);
    for check in ["connections", "db_errors"] {
        assert!(
            found
                .iter()
                .any(|(s, c, abnormal, _)| s == "inventory-db" && c == check && *abnormal),
            "{check}: {found:#?}"
        );
    }
    assert!(summary.contains("Only one kind of evidence"), "{summary}");
}

#[tokio::test]
async fn diagnose_without_prometheus_fails_clearly() {
    let report = run(None, "payment-gateway", unix_now()).await;
    assert_eq!(
        failure(&report, "walk"),
        "diagnose needs Prometheus ([prometheus] url in medic.toml)"
    );
    assert_eq!(
        failure(&report, "db"),
        "diagnose needs Prometheus ([prometheus] url in medic.toml)"
    );
}
