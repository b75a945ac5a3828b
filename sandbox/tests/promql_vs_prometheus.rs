//! The sandbox's Prometheus against the real one: the same samples (an hour of 15 s scrapes
//! of counters, gauges, a histogram, a counter reset, a series starting late, one stopping
//! early, one scraped with jitter) backfilled into a real Prometheus
//! ([`medic_sandbox::prometheus::RealPrometheus`], the Debian `prometheus`, 2.42.0 when this
//! was written) and put into a [`SeriesStore`] served by [`PrometheusServer`]; every query
//! is asked of both over HTTP, at several times and as range queries, and the answers must
//! be the same: result type, label sets, timestamps, values within 1e-9 relative (NaN equal
//! to NaN), and for refusals the HTTP status and `errorType`.
//!
//! Without the `prometheus` binary the test fails with the install command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, bail};
use medic_sandbox::clock::SimClock;
use medic_sandbox::prometheus::RealPrometheus;
use medic_sandbox::promql::{Labels, PrometheusServer, SeriesStore};
use serde_json::Value as Json;

/// Seconds between scrapes.
const SCRAPE: i64 = 15;
/// Seconds of data.
const SPAN: i64 = 3600;

/// A deterministic noise source (an LCG), so both servers get exactly the same samples.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One series: name, labels, samples as (milliseconds, value).
struct Written {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    samples: Vec<(i64, f64)>,
}

/// The samples, from `start_s` (Unix seconds) for [`SPAN`] seconds.
fn samples(start_s: i64) -> Vec<Written> {
    let mut noise = Noise(42);
    let scrapes: Vec<i64> = (0..=SPAN / SCRAPE)
        .map(|k| (start_s + k * SCRAPE) * 1000)
        .collect();
    let mut out = Vec::new();
    let labels = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    // Request counters from zero, by service and code; service "x" errors more later.
    for service in ["x", "payment-gateway"] {
        for (code, per_scrape) in [("200", 40.0), ("500", 1.5), ("503", 0.5)] {
            let mut total = 0.0;
            let mut series = Vec::new();
            for (index, at) in scrapes.iter().enumerate() {
                let boost = if service == "x" && code != "200" && index > 120 {
                    4.0
                } else {
                    1.0
                };
                series.push((*at, total));
                total += (per_scrape * boost * (0.5 + noise.next())).round();
            }
            out.push(Written {
                name: "http_requests_total",
                labels: labels(&[("service", service), ("code", code)]),
                samples: series,
            });
        }
    }
    // Latency buckets for two services; payment-gateway slows down after half an hour.
    let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    let limits = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, f64::INFINITY];
    for service in ["x", "payment-gateway"] {
        let mut cumulative = [0.0_f64; 7];
        let mut series: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 7];
        for (index, at) in scrapes.iter().enumerate() {
            for (bucket, count) in cumulative.iter().enumerate() {
                series[bucket].push((*at, *count));
            }
            let median = if service == "payment-gateway" && index > 120 {
                0.6
            } else {
                0.08
            };
            for _ in 0..30 {
                let latency = median * (0.3 + 1.7 * noise.next());
                for (bucket, limit) in limits.iter().enumerate() {
                    if latency <= *limit {
                        cumulative[bucket] += 1.0;
                    }
                }
            }
        }
        for (bucket, samples) in series.into_iter().enumerate() {
            out.push(Written {
                name: "http_request_duration_seconds_bucket",
                labels: labels(&[("service", service), ("le", bounds[bucket])]),
                samples,
            });
        }
    }
    // CPU counters of two pods of container "x", the second scraped with jitter.
    for (pod, jitter) in [("x-1", false), ("x-2", true)] {
        let mut used = 0.0;
        let mut series = Vec::new();
        for at in &scrapes {
            let at = if jitter {
                at + (noise.next() * 900.0) as i64 + 37
            } else {
                *at
            };
            series.push((at, used));
            used += 15.0 * (0.2 + 0.3 * noise.next());
        }
        out.push(Written {
            name: "container_cpu_usage_seconds_total",
            labels: labels(&[("container", "x"), ("pod", pod)]),
            samples: series,
        });
        out.push(Written {
            name: "container_memory_working_set_bytes",
            labels: labels(&[("container", "x"), ("pod", pod)]),
            samples: scrapes
                .iter()
                .map(|at| {
                    (
                        *at,
                        (300.0 * 1024.0 * 1024.0 * (0.9 + 0.2 * noise.next())).round(),
                    )
                })
                .collect(),
        });
        for (resource, limit) in [("cpu", 0.5), ("memory", 512.0 * 1024.0 * 1024.0)] {
            out.push(Written {
                name: "kube_pod_container_resource_limits",
                labels: labels(&[("container", "x"), ("pod", pod), ("resource", resource)]),
                samples: scrapes.iter().map(|at| (*at, limit)).collect(),
            });
        }
    }
    // Disk usage of two instances; "y" grows.
    for (instance, base, slope) in [("x", 0.55, 0.0), ("y", 0.3, 0.5)] {
        out.push(Written {
            name: "disk_used_ratio",
            labels: labels(&[("instance", instance)]),
            samples: scrapes
                .iter()
                .enumerate()
                .map(|(index, at)| {
                    let grown = slope * index as f64 / scrapes.len() as f64;
                    (*at, base + grown + 0.05 * noise.next())
                })
                .collect(),
        });
    }
    // postgres_exporter's series for two databases.
    for database in ["inventory-db", "payments-db"] {
        let service = [("service", database)];
        out.push(Written {
            name: "pg_up",
            labels: labels(&service),
            samples: scrapes
                .iter()
                .enumerate()
                .map(|(index, at)| {
                    let down = database == "inventory-db" && (150..160).contains(&index);
                    (*at, if down { 0.0 } else { 1.0 })
                })
                .collect(),
        });
        out.push(Written {
            name: "pg_settings_max_connections",
            labels: labels(&service),
            samples: scrapes.iter().map(|at| (*at, 100.0)).collect(),
        });
        for state in ["active", "idle"] {
            out.push(Written {
                name: "pg_stat_activity_count",
                labels: labels(&[("service", database), ("state", state)]),
                samples: scrapes
                    .iter()
                    .map(|at| (*at, (30.0 * noise.next()).round()))
                    .collect(),
            });
            out.push(Written {
                name: "pg_stat_activity_max_tx_duration",
                labels: labels(&[("service", database), ("state", state)]),
                samples: scrapes
                    .iter()
                    .map(|at| (*at, 10.0 * noise.next()))
                    .collect(),
            });
        }
        for name in [
            "pg_stat_database_xact_rollback",
            "pg_stat_database_deadlocks",
        ] {
            let mut counter = 0.0;
            out.push(Written {
                name,
                labels: labels(&service),
                samples: scrapes
                    .iter()
                    .map(|at| {
                        counter += (3.0 * noise.next()).round();
                        (*at, counter)
                    })
                    .collect(),
            });
        }
    }
    // A counter that resets at minute 31, one that starts at minute 40 (not from zero), a
    // gauge that stops at minute 30.
    let mut counter = 0.0;
    out.push(Written {
        name: "reset_counter_total",
        labels: labels(&[("job", "a")]),
        samples: scrapes
            .iter()
            .enumerate()
            .map(|(index, at)| {
                if index == 124 {
                    counter = 3.0;
                } else {
                    counter += (10.0 * noise.next()).round();
                }
                (*at, counter)
            })
            .collect(),
    });
    let mut late = 50.0;
    out.push(Written {
        name: "late_counter_total",
        labels: labels(&[("job", "a")]),
        samples: scrapes
            .iter()
            .filter(|at| **at >= (start_s + 2400) * 1000)
            .map(|at| {
                late += (5.0 * noise.next()).round();
                (at + 7000, late)
            })
            .collect(),
    });
    out.push(Written {
        name: "stopped_gauge",
        labels: labels(&[("job", "a")]),
        samples: scrapes
            .iter()
            .filter(|at| **at <= (start_s + 1800) * 1000)
            .map(|at| (*at, 2.0 * noise.next()))
            .collect(),
    });
    // Buckets that are not monotonic and have bounds at and below zero; and buckets
    // without +Inf.
    for (le, value) in [
        ("-0.5", 1.0),
        ("0", 3.0),
        ("1", 2.0),
        ("2", 7.0),
        ("+Inf", 8.0),
    ] {
        out.push(Written {
            name: "odd_bucket",
            labels: labels(&[("le", le)]),
            samples: scrapes.iter().map(|at| (*at, value)).collect(),
        });
    }
    for (le, value) in [("1", 2.0), ("2", 5.0)] {
        out.push(Written {
            name: "noinf_bucket",
            labels: labels(&[("le", le)]),
            samples: scrapes.iter().map(|at| (*at, value)).collect(),
        });
    }
    out
}

/// The samples as OpenMetrics text, one family per metric name.
fn openmetrics(series: &[Written]) -> String {
    let mut by_name: BTreeMap<&str, Vec<&Written>> = BTreeMap::new();
    for written in series {
        by_name.entry(written.name).or_default().push(written);
    }
    let mut out = String::new();
    for (name, members) in by_name {
        match name.strip_suffix("_bucket") {
            Some(family) if name.starts_with("http_") => {
                writeln!(out, "# TYPE {family} histogram").unwrap();
            }
            _ => writeln!(out, "# TYPE {name} gauge").unwrap(),
        }
        for written in members {
            let labels: Vec<String> = written
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            for (at, value) in &written.samples {
                writeln!(
                    out,
                    "{name}{{{}}} {value} {}.{:03}",
                    labels.join(","),
                    at / 1000,
                    at % 1000
                )
                .unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn store_of(series: &[Written]) -> SeriesStore {
    let store = SeriesStore::new();
    for written in series {
        let mut labels: Labels = written
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        labels.insert("__name__".into(), written.name.into());
        for (at, value) in &written.samples {
            store.append(&labels, *at, *value);
        }
    }
    store
}

/// An answer, as compared.
#[derive(Debug)]
enum Answer {
    Vector(BTreeMap<Labels, (i64, f64)>),
    Matrix(BTreeMap<Labels, Vec<(i64, f64)>>),
    Scalar(i64, f64),
    String(i64, String),
    Refused { status: u16, error_type: String },
}

fn point(json: &Json) -> anyhow::Result<(i64, f64)> {
    let pair = json.as_array().context("a point is not a list")?;
    let at = pair[0].as_f64().context("a point's time is not a number")?;
    let value: f64 = pair[1]
        .as_str()
        .context("a point's value is not a string")?
        .parse()?;
    Ok(((at * 1000.0).round() as i64, value))
}

fn metric(json: &Json) -> anyhow::Result<Labels> {
    Ok(json["metric"]
        .as_object()
        .context("no metric")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect())
}

async fn ask(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    form: &[(&str, String)],
    get: bool,
) -> anyhow::Result<Answer> {
    let request = if get {
        client.get(format!("{base}{path}")).query(form)
    } else {
        client.post(format!("{base}{path}")).form(form)
    };
    let response = request.send().await?;
    let status = response.status().as_u16();
    let json: Json = response.json().await?;
    if json["status"] == "error" {
        return Ok(Answer::Refused {
            status,
            error_type: json["errorType"].as_str().unwrap_or_default().to_string(),
        });
    }
    let result = &json["data"]["result"];
    Ok(match json["data"]["resultType"].as_str() {
        Some("vector") => Answer::Vector(
            result
                .as_array()
                .context("vector result is not a list")?
                .iter()
                .map(|item| Ok((metric(item)?, point(&item["value"])?)))
                .collect::<anyhow::Result<_>>()?,
        ),
        Some("matrix") => Answer::Matrix(
            result
                .as_array()
                .context("matrix result is not a list")?
                .iter()
                .map(|item| {
                    let values = item["values"]
                        .as_array()
                        .context("no values")?
                        .iter()
                        .map(point)
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    Ok((metric(item)?, values))
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        Some("scalar") => {
            let (at, value) = point(result)?;
            Answer::Scalar(at, value)
        }
        Some("string") => Answer::String(
            (result[0].as_f64().context("no time")? * 1000.0).round() as i64,
            result[1].as_str().context("no string")?.to_string(),
        ),
        other => bail!("unknown resultType {other:?}: {json}"),
    })
}

/// The real Prometheus's answer and the sandbox's to the same request: a form POSTed as
/// Medic's adapter sends it, or (`get`) the same parameters in a GET's URL.
async fn both(
    client: &reqwest::Client,
    (real, sandbox): &(String, String),
    path: &str,
    form: &[(&str, String)],
    get: bool,
) -> anyhow::Result<(Answer, Answer)> {
    Ok((
        ask(client, real, path, form, get).await?,
        ask(client, sandbox, path, form, get).await?,
    ))
}

fn has_data(answer: &Answer) -> bool {
    match answer {
        Answer::Vector(vector) => !vector.is_empty(),
        Answer::Matrix(matrix) => !matrix.is_empty(),
        Answer::Scalar(..) | Answer::String(..) => true,
        Answer::Refused { .. } => false,
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn same_points(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ta, va), (tb, vb))| ta == tb && close(*va, *vb))
}

/// Why two answers differ, if they do.
fn difference(real: &Answer, sandbox: &Answer) -> Option<String> {
    let labels_differ = |real: Vec<&Labels>, sandbox: Vec<&Labels>| {
        format!("label sets differ:\n  real:    {real:?}\n  sandbox: {sandbox:?}")
    };
    match (real, sandbox) {
        (Answer::Vector(real), Answer::Vector(sandbox)) => {
            if real.keys().ne(sandbox.keys()) {
                return Some(labels_differ(
                    real.keys().collect(),
                    sandbox.keys().collect(),
                ));
            }
            real.iter().zip(sandbox).find_map(|((labels, a), (_, b))| {
                (!same_points(&[*a], &[*b]))
                    .then(|| format!("{labels:?}: real {a:?}, sandbox {b:?}"))
            })
        }
        (Answer::Matrix(real), Answer::Matrix(sandbox)) => {
            if real.keys().ne(sandbox.keys()) {
                return Some(labels_differ(
                    real.keys().collect(),
                    sandbox.keys().collect(),
                ));
            }
            real.iter().zip(sandbox).find_map(|((labels, a), (_, b))| {
                (!same_points(a, b))
                    .then(|| format!("{labels:?}:\n  real    {a:?}\n  sandbox {b:?}"))
            })
        }
        (Answer::Scalar(ta, a), Answer::Scalar(tb, b)) => {
            (!same_points(&[(*ta, *a)], &[(*tb, *b)]))
                .then(|| format!("real {ta} {a}, sandbox {tb} {b}"))
        }
        (Answer::String(ta, a), Answer::String(tb, b)) => {
            (ta != tb || a != b).then(|| format!("real {ta} {a:?}, sandbox {tb} {b:?}"))
        }
        (
            Answer::Refused {
                status: a,
                error_type: ta,
            },
            Answer::Refused {
                status: b,
                error_type: tb,
            },
        ) => (a != b || ta != tb).then(|| format!("real {a} {ta}, sandbox {b} {tb}")),
        (real, sandbox) => Some(format!("real {real:?}\n  sandbox {sandbox:?}")),
    }
}

/// The queries asked as instant queries at every time of [`instant_times`].
const INSTANT_QUERIES: &[&str] = &[
    // The diagnose health checks and the demo's alert rules.
    r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="payment-gateway"}[5m])))"#,
    r#"sum(rate(http_requests_total{code=~"5..",service="x"}[5m])) / sum(rate(http_requests_total{service="x"}[5m]))"#,
    r#"sum(rate(container_cpu_usage_seconds_total{container="x"}[5m])) / sum(kube_pod_container_resource_limits{resource="cpu",container="x"})"#,
    r#"sum(container_memory_working_set_bytes{container="x"}) / sum(kube_pod_container_resource_limits{resource="memory",container="x"})"#,
    r#"max(disk_used_ratio{instance="x"})"#,
    "max(pg_stat_activity_count) / max(pg_settings_max_connections)",
    "sum(rate(pg_stat_database_xact_rollback[5m])) + sum(rate(pg_stat_database_deadlocks[5m]))",
    "min(pg_up)",
    r#"count(pg_stat_activity_max_tx_duration{state="active"} > 5)"#,
    // The shapes of the demo shop's alert rules (sandbox/src/shop/alerting.rs).
    r#"sum by (container) (rate(container_cpu_usage_seconds_total{container="x"}[2m])) / sum by (container) (kube_pod_container_resource_limits{container="x", resource="cpu"}) > 0.5"#,
    r#"histogram_quantile(0.99, sum by (le, service) (rate(http_request_duration_seconds_bucket{service="payment-gateway"}[2m]))) > 0.5"#,
    "max by (instance) (disk_used_ratio) > 0.6",
    "sum by (service) (increase(pg_stat_database_deadlocks[1m])) > 5",
    // Histograms.
    "histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.9, sum by (service, le) (rate(http_request_duration_seconds_bucket[10m])))",
    "histogram_quantile(0.05, odd_bucket)",
    "histogram_quantile(0.5, odd_bucket)",
    "histogram_quantile(0.99, odd_bucket)",
    "histogram_quantile(1, odd_bucket) + histogram_quantile(0, odd_bucket)",
    "histogram_quantile(0.5, noinf_bucket)",
    "histogram_quantile(1.5, odd_bucket)",
    // Aggregations.
    "sum by (service) (rate(http_requests_total[5m]))",
    "sum without (code) (increase(http_requests_total[10m]))",
    "avg by (container) (container_memory_working_set_bytes)",
    "sum(http_requests_total) by (service)",
    "count without (le) (http_request_duration_seconds_bucket)",
    "min without (state) (pg_stat_activity_count)",
    "max by (__name__) ({__name__=~\"pg_stat_.*\"})",
    "topk(2, rate(http_requests_total[5m]))",
    "bottomk(1, disk_used_ratio)",
    "group by (service) (pg_up)",
    // Range functions.
    r#"irate(http_requests_total{service="x"}[1m])"#,
    "increase(reset_counter_total[5m])",
    "rate(reset_counter_total[2m])",
    "rate(late_counter_total[5m])",
    "increase(late_counter_total[10m])",
    "delta(disk_used_ratio[10m])",
    "rate(container_cpu_usage_seconds_total[1m])",
    "avg_over_time(disk_used_ratio[10m])",
    "max_over_time(pg_stat_activity_count[15m])",
    "min_over_time(pg_stat_activity_count[15m])",
    "sum_over_time(pg_up[5m])",
    "count_over_time(container_cpu_usage_seconds_total[3m])",
    "last_over_time(stopped_gauge[1h])",
    // Selectors, lookback, offset.
    "stopped_gauge",
    "http_request_duration_seconds_bucket{le=~\"0.1|\\\\+Inf\",service!=\"x\"}",
    "{__name__=~\"pg_up|pg_settings_.*\", service!~\"pay.*\"}",
    "disk_used_ratio offset 10m",
    "disk_used_ratio - disk_used_ratio offset 10m",
    "disk_used_ratio offset -2m",
    "rate(http_requests_total{code=\"200\"}[5m] offset 1m)",
    "increase(reset_counter_total[2m] offset 30s)",
    "-disk_used_ratio",
    "+disk_used_ratio",
    "-vector(1)",
    // Binary operators and matching.
    "http_requests_total > 1000",
    "rate(http_requests_total[5m]) > bool 0.5",
    "0.5 < disk_used_ratio",
    "2 >= bool disk_used_ratio",
    r#"http_requests_total{code="500"} / ignoring(code) http_requests_total{code="200"}"#,
    r#"rate(http_requests_total{code="500"}[5m]) / on(service) rate(http_requests_total{code="200"}[5m])"#,
    "disk_used_ratio == bool on(instance) disk_used_ratio",
    "disk_used_ratio > on(instance) (disk_used_ratio offset 30m)",
    "(disk_used_ratio > 0.5) and on(instance) (disk_used_ratio < 0.9)",
    "disk_used_ratio{instance=\"x\"} or pg_up",
    "pg_stat_activity_count unless on(state) pg_stat_activity_count{state=\"idle\"}",
    "-disk_used_ratio % 0.3 + 2 ^ disk_used_ratio * 3",
    "disk_used_ratio / 0",
    "(disk_used_ratio - disk_used_ratio) / 0",
    // Functions.
    "abs(delta(disk_used_ratio[10m]))",
    "clamp_max(disk_used_ratio, 0.6)",
    "clamp_min(disk_used_ratio, 0.6)",
    "clamp(disk_used_ratio, 0.4, 0.6)",
    "clamp(disk_used_ratio, 0.6, 0.4)",
    "round(disk_used_ratio, 0.1)",
    "round(pg_stat_activity_max_tx_duration)",
    "ceil(disk_used_ratio * 10) - floor(disk_used_ratio * 10)",
    "scalar(sum(pg_up)) * 2",
    "scalar(disk_used_ratio)",
    "vector(1)",
    "time()",
    "vector(time()) - 5",
    r#"absent(nonexistent{job="a",instance=~"b"})"#,
    "absent(pg_up)",
    "2 ^ 3 % 5",
    "1 / 0",
    "-1 / 0",
    "0 / 0",
    "\"hello\"",
    "disk_used_ratio[1m]",
    "disk_used_ratio + on(instance) group_left disk_used_ratio",
    "pg_stat_activity_count / on(service) group_left pg_settings_max_connections",
    "pg_settings_max_connections * on(service) group_right pg_stat_activity_count",
    "pg_stat_activity_count > on(service) group_left(job) (pg_up * 10)",
    "pg_stat_activity_count - ignoring(state) group_left(__name__) pg_up",
    "disk_used_ratio * on() group_left(service) max(pg_up)",
    // Refused by both.
    "sum(",
    "rate(disk_used_ratio)",
    "http_requests_total / ignoring(code) http_requests_total",
    "disk_used_ratio * on() group_left(service) pg_up",
    "pg_stat_activity_count / ignoring(state) group_right pg_up",
];

/// The queries asked as range queries.
const RANGE_QUERIES: &[&str] = &[
    r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="payment-gateway"}[5m])))"#,
    r#"sum(rate(http_requests_total{code=~"5..",service="x"}[5m])) / sum(rate(http_requests_total{service="x"}[5m]))"#,
    "sum(rate(pg_stat_database_xact_rollback[5m])) + sum(rate(pg_stat_database_deadlocks[5m]))",
    "min(pg_up)",
    r#"histogram_quantile(0.99, sum by (le, service) (rate(http_request_duration_seconds_bucket{service="payment-gateway"}[2m]))) > 0.5"#,
    "sum by (service) (increase(pg_stat_database_deadlocks[1m])) > 5",
    "increase(reset_counter_total[5m])",
    "rate(late_counter_total[5m])",
    "stopped_gauge",
    "disk_used_ratio > 0.6",
    "avg_over_time(disk_used_ratio[10m])",
    "disk_used_ratio @ start()",
    "disk_used_ratio - disk_used_ratio @ end()",
    "rate(http_requests_total{service=\"x\",code=\"500\"}[5m] @ end())",
    "sum by (service) (rate(http_requests_total[5m])) > bool 30",
    "time()",
    "scalar(min(pg_up))",
    "absent(stopped_gauge)",
    // Refused by both.
    "disk_used_ratio[5m]",
    "\"text\"",
];

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_answers_as_the_real_prometheus_does() -> anyhow::Result<()> {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    // An hour of data ending two hours ago, starting on a whole minute.
    let start_s = (now_s - 3 * 3600) / 60 * 60;
    let series = samples(start_s);
    let text = openmetrics(&series);
    let real = tokio::task::spawn_blocking(move || RealPrometheus::start(&text))
        .await?
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let store = store_of(&series);
    let clock = SimClock::starting_at(start_s * 1000, Instant::now(), 1);
    let sandbox = PrometheusServer::start(store, clock).await?;
    let client = reqwest::Client::new();
    let urls = (real.url(), sandbox.url());
    let start_ms = start_s * 1000;

    let instant_times = [
        start_ms,             // the first sample
        start_ms + 30_000,    // near the start: windows only partly filled
        start_ms + 150_500,   // between samples
        start_ms + 1_800_000, // on a sample: window edges exactly on samples
        start_ms + 1_893_217, // stopped_gauge's last sample falls out of lookback soon
        start_ms + 2_100_000, // stopped_gauge exactly five minutes after its last sample
        start_ms + 2_407_000, // on late_counter's first sample
        start_ms + 2_640_700,
        start_ms + SPAN * 1000,           // the last sample
        start_ms + SPAN * 1000 + 300_000, // five minutes after the last sample
        start_ms + SPAN * 1000 + 300_001, // just beyond
    ];
    let mut mismatches = Vec::new();
    let mut compared = 0;
    // Answers with something in them, so that agreeing on nothing cannot pass for agreeing.
    let mut substantial = 0;
    for query in INSTANT_QUERIES {
        for at in instant_times {
            let form = [("query", (*query).to_string()), ("time", seconds(at))];
            let (expected, got) =
                both(&client, &urls, "/api/v1/query", &form, compared % 3 == 0).await?;
            compared += 1;
            substantial += usize::from(has_data(&expected));
            if let Some(why) = difference(&expected, &got) {
                mismatches.push(format!("instant {query} at {}: {why}", seconds(at)));
            }
        }
    }
    // Queries naming times of the data: `@` a time, `time` as RFC 3339.
    let at_query = format!(
        "disk_used_ratio @ {} - disk_used_ratio",
        seconds(start_ms + 600_250)
    );
    let rfc3339 = chrono::DateTime::from_timestamp_millis(start_ms + 1_234_567)
        .context("a time out of range")?
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for form in [
        vec![
            ("query", at_query.clone()),
            ("time", seconds(start_ms + 900_000)),
        ],
        vec![("query", "disk_used_ratio".to_string()), ("time", rfc3339)],
        vec![
            ("query", "rate(http_requests_total[5m])".to_string()),
            ("time", seconds(start_ms + 2_000_000)),
            ("timeout", "10s".to_string()),
        ],
    ] {
        let (expected, got) =
            both(&client, &urls, "/api/v1/query", &form, compared % 3 == 0).await?;
        compared += 1;
        substantial += usize::from(has_data(&expected));
        if let Some(why) = difference(&expected, &got) {
            mismatches.push(format!("instant {form:?}: {why}"));
        }
    }
    let ranges = [
        (start_ms, start_ms + SPAN * 1000 + 600_000, "30"),
        (start_ms + 17_300, start_ms + 2_000_000, "1m"),
        (start_ms + 1_000_000, start_ms + 1_200_000, "7.5"),
    ];
    for query in RANGE_QUERIES {
        for (from, to, step) in ranges {
            let form = [
                ("query", (*query).to_string()),
                ("start", seconds(from)),
                ("end", seconds(to)),
                ("step", step.to_string()),
            ];
            let (expected, got) = both(
                &client,
                &urls,
                "/api/v1/query_range",
                &form,
                compared % 3 == 0,
            )
            .await?;
            compared += 1;
            substantial += usize::from(has_data(&expected));
            if let Some(why) = difference(&expected, &got) {
                mismatches.push(format!(
                    "range {query} from {} to {} step {step}: {why}",
                    seconds(from),
                    seconds(to)
                ));
            }
        }
    }
    // Refused parameters: too many points, a bad step, an end before the start.
    for (from, to, step) in [
        (start_ms, start_ms + 11_001_000, "1"),
        (start_ms, start_ms + 11_000_000, "1"),
        (start_ms, start_ms + 1000, "0"),
        (start_ms, start_ms + 1000, "soon"),
        (start_ms + 1000, start_ms, "1"),
    ] {
        let form = [
            ("query", "vector(1)".to_string()),
            ("start", seconds(from)),
            ("end", seconds(to)),
            ("step", step.to_string()),
        ];
        let (expected, got) = both(
            &client,
            &urls,
            "/api/v1/query_range",
            &form,
            compared % 3 == 0,
        )
        .await?;
        compared += 1;
        if let Some(why) = difference(&expected, &got) {
            mismatches.push(format!("range parameters {from} {to} {step}: {why}"));
        }
    }
    sandbox.stop().await;
    drop(real);
    assert!(
        substantial * 10 >= compared * 7,
        "only {substantial} of {compared} answers hold data: the samples or the times are off"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {compared} answers differ from Prometheus's:\n\n{}",
        mismatches.len(),
        mismatches.join("\n\n")
    );
    Ok(())
}
