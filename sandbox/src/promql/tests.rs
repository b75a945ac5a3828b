//! Hand-computed cases for the evaluator (extrapolation, histograms, aggregation, matching,
//! refusals) and the HTTP API's shapes. `tests/promql_vs_prometheus.rs` holds the same
//! evaluator to a real Prometheus.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use super::api::{format_value, parse_duration_ns, parse_time, timestamp};
use super::*;

/// A time on a whole minute, so that hand-computed windows are easy to read.
const T: i64 = 1_700_000_040_000;

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.insert("__name__".into(), name.into());
    labels
}

/// A store with one series per entry: samples at `T + seconds`.
fn store(series: &[(Labels, &[(i64, f64)])]) -> SeriesStore {
    let store = SeriesStore::new();
    for (labels, samples) in series {
        for (seconds, value) in *samples {
            store.append(labels, T + seconds * 1000, *value);
        }
    }
    store
}

fn vector(store: &SeriesStore, query: &str, at_seconds: i64) -> Vec<(Labels, f64)> {
    match instant(store, query, T + at_seconds * 1000) {
        Ok(QueryValue::Vector(vector)) => vector,
        other => panic!("{query}: {other:?}"),
    }
}

/// The single value of a one-element vector.
fn one(store: &SeriesStore, query: &str, at_seconds: i64) -> f64 {
    match vector(store, query, at_seconds).as_slice() {
        [(_, value)] => *value,
        other => panic!("{query}: {other:?}"),
    }
}

fn assert_close(got: f64, expected: f64, what: &str) {
    assert!(
        (got - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: got {got}, expected {expected}"
    );
}

fn refusal(store: &SeriesStore, query: &str) -> QueryError {
    match instant(store, query, T) {
        Err(error) => error,
        Ok(value) => panic!("{query} was evaluated: {value:?}"),
    }
}

#[test]
fn rate_extrapolates_to_the_window_edges() {
    // Samples 5 s after the window's start and 10 s before its end, 15 s apart: both gaps
    // are under 1.1 intervals, so the change (45) is extrapolated over the whole minute.
    let s = store(&[(
        labels("c_total", &[("job", "a")]),
        &[(5, 10.0), (20, 25.0), (35, 40.0), (50, 55.0)],
    )]);
    assert_close(one(&s, "increase(c_total[1m])", 60), 60.0, "increase");
    assert_close(one(&s, "rate(c_total[1m])", 60), 1.0, "rate");
    // The function's result has no metric name.
    assert_eq!(
        vector(&s, "rate(c_total[1m])", 60)[0].0,
        Labels::from([("job".to_string(), "a".to_string())])
    );
}

#[test]
fn rate_corrects_counter_resets() {
    // 10 → 25, reset, 5 → 20: the change is 10 + 25 = 35, over 45 s of samples,
    // extrapolated to 60 s.
    let s = store(&[(
        labels("c_total", &[]),
        &[(5, 10.0), (20, 25.0), (35, 5.0), (50, 20.0)],
    )]);
    assert_close(
        one(&s, "increase(c_total[1m])", 60),
        35.0 * 60.0 / 45.0,
        "increase",
    );
    assert_close(one(&s, "rate(c_total[1m])", 60), 35.0 / 45.0, "rate");
    // irate after a reset is the new value over the interval.
    let s = store(&[(labels("c_total", &[]), &[(30, 10.0), (45, 25.0), (60, 5.0)])]);
    assert_close(one(&s, "irate(c_total[1m])", 60), 5.0 / 15.0, "irate");
    assert_close(
        one(&s, "irate(c_total[1m])", 50),
        15.0 / 15.0,
        "irate before",
    );
}

#[test]
fn a_series_starting_inside_the_window_is_extrapolated_no_further_than_zero() {
    // From 2 at 30 s to 32 at 60 s: 30 s to the window's start is beyond 1.1 intervals,
    // but the counter would reach zero 2 s before its first sample, so that is the start.
    let s = store(&[(labels("c_total", &[]), &[(30, 2.0), (45, 17.0), (60, 32.0)])]);
    assert_close(one(&s, "increase(c_total[1m])", 60), 32.0, "increase");
    assert_close(one(&s, "rate(c_total[1m])", 60), 32.0 / 60.0, "rate");
    // Starting high, zero is far: half an interval (7.5 s) is added instead.
    let s = store(&[(
        labels("c_total", &[]),
        &[(30, 100.0), (45, 115.0), (60, 130.0)],
    )]);
    assert_close(one(&s, "increase(c_total[1m])", 60), 37.5, "increase");
    // delta has no zero rule and no reset correction: from 5 to 3 over 15 s, extrapolated
    // by half an interval at the start (30 s away) and 15 s at the end.
    let s = store(&[(labels("g", &[]), &[(30, 5.0), (45, 3.0)])]);
    assert_close(one(&s, "delta(g[1m])", 60), -2.0 * 37.5 / 15.0, "delta");
    // One sample is not enough.
    let s = store(&[(labels("c_total", &[]), &[(30, 5.0)])]);
    assert!(vector(&s, "rate(c_total[1m])", 60).is_empty());
}

#[test]
fn windows_are_closed_at_both_ends() {
    let s = store(&[(labels("g", &[]), &[(0, 1.0), (60, 2.0)])]);
    // The instant selector sees a sample exactly five minutes old, not older.
    assert_eq!(one(&s, "g", 360), 2.0);
    assert!(matches!(
        instant(&s, "g", T + 360_001),
        Ok(QueryValue::Vector(v)) if v.is_empty()
    ));
    // A range selector includes a sample exactly at its start.
    assert_eq!(one(&s, "count_over_time(g[1m])", 60), 2.0);
    assert_eq!(one(&s, "count_over_time(g[1m])", 61), 1.0);
    assert_eq!(one(&s, "g offset 1m", 60), 1.0);
}

fn buckets(service: &str, counts: &[(&str, f64)]) -> Vec<(Labels, Vec<(i64, f64)>)> {
    counts
        .iter()
        .map(|(le, count)| {
            (
                labels("h_bucket", &[("service", service), ("le", le)]),
                vec![(0, *count)],
            )
        })
        .collect()
}

fn store_of(series: Vec<(Labels, Vec<(i64, f64)>)>) -> SeriesStore {
    let borrowed: Vec<(Labels, &[(i64, f64)])> = series
        .iter()
        .map(|(labels, samples)| (labels.clone(), samples.as_slice()))
        .collect();
    store(&borrowed)
}

#[test]
fn histogram_quantile_interpolates_within_buckets() {
    let mut series = buckets(
        "a",
        &[("0.1", 10.0), ("0.5", 30.0), ("1", 40.0), ("+Inf", 40.0)],
    );
    series.extend(buckets("b", &[("0.1", 10.0), ("+Inf", 20.0)]));
    let s = store_of(series);
    let quantiles = vector(&s, "histogram_quantile(0.5, h_bucket)", 0);
    // One result per group (all labels but `le`), without the metric name.
    let a = Labels::from([("service".to_string(), "a".to_string())]);
    let b = Labels::from([("service".to_string(), "b".to_string())]);
    assert_eq!(quantiles.len(), 2);
    assert_eq!(quantiles[0].0, a);
    // Rank 20 lies in (0.1, 0.5], which holds 20 observations, 10 of them below rank.
    assert_close(quantiles[0].1, 0.3, "p50 of a");
    // Rank 10 of b is in the first bucket: interpolated from zero.
    assert_eq!(quantiles[1].0, b);
    assert_close(quantiles[1].1, 0.1, "p50 of b");
    assert_close(
        one(&s, "histogram_quantile(0.99, h_bucket{service=\"a\"})", 0),
        0.98,
        "p99",
    );
    // A rank in the +Inf bucket answers the highest finite bound.
    assert_close(
        one(&s, "histogram_quantile(0.9, h_bucket{service=\"b\"})", 0),
        0.1,
        "p90 of b",
    );
    assert!(one(&s, "histogram_quantile(-1, h_bucket{service=\"b\"})", 0).is_infinite());
    assert!(one(&s, "histogram_quantile(2, h_bucket{service=\"b\"})", 0) > 0.0);
}

#[test]
fn histogram_quantile_needs_inf_and_fixes_monotonicity() {
    let mut series = buckets("no-inf", &[("0.1", 10.0), ("0.5", 30.0)]);
    // Falling counts are raised to the previous bucket's.
    series.extend(buckets(
        "falling",
        &[("0.1", 10.0), ("0.5", 8.0), ("+Inf", 20.0)],
    ));
    // A lowest bucket bounded at or below zero answers its bound.
    series.extend(buckets(
        "negative",
        &[("0", 5.0), ("1", 10.0), ("+Inf", 10.0)],
    ));
    let s = store_of(series);
    assert!(
        one(
            &s,
            "histogram_quantile(0.5, h_bucket{service=\"no-inf\"})",
            0
        )
        .is_nan()
    );
    assert_close(
        one(
            &s,
            "histogram_quantile(0.5, h_bucket{service=\"falling\"})",
            0,
        ),
        0.1,
        "monotonic",
    );
    assert_eq!(
        one(
            &s,
            "histogram_quantile(0.2, h_bucket{service=\"negative\"})",
            0
        ),
        0.0
    );
}

fn requests() -> SeriesStore {
    store(&[
        (
            labels("req", &[("service", "a"), ("code", "200")]),
            &[(0, 10.0)],
        ),
        (
            labels("req", &[("service", "a"), ("code", "500")]),
            &[(0, 2.0)],
        ),
        (
            labels("req", &[("service", "b"), ("code", "200")]),
            &[(0, 6.0)],
        ),
        (labels("limit", &[("service", "a")]), &[(0, 4.0)]),
        (labels("limit", &[("service", "b")]), &[(0, 12.0)]),
    ])
}

fn pairs(vector: &[(Labels, f64)]) -> Vec<(String, f64)> {
    vector
        .iter()
        .map(|(labels, value)| (super::eval::render_labels(labels), *value))
        .collect()
}

#[test]
fn aggregations_group_by_and_without() {
    let s = requests();
    assert_eq!(
        pairs(&vector(&s, "sum by (service) (req)", 0)),
        [
            ("{service=\"a\"}".into(), 12.0),
            ("{service=\"b\"}".into(), 6.0)
        ]
    );
    assert_eq!(
        pairs(&vector(&s, "count without (service) (req)", 0)),
        [
            ("{code=\"200\"}".into(), 2.0),
            ("{code=\"500\"}".into(), 1.0)
        ]
    );
    assert_eq!(one(&s, "avg(req)", 0), 6.0);
    assert_eq!(one(&s, "max(req)", 0), 10.0);
    assert_eq!(one(&s, "min(req)", 0), 2.0);
    // topk keeps the series' own labels, metric name included.
    assert_eq!(
        pairs(&vector(&s, "topk(1, req)", 0)),
        [(
            "{__name__=\"req\", code=\"200\", service=\"a\"}".into(),
            10.0
        )]
    );
    assert_eq!(vector(&s, "bottomk(1, req) by (service)", 0).len(), 2);
}

#[test]
fn vectors_match_one_to_one_on_and_ignoring() {
    let s = requests();
    // Without a modifier every label but the name must match, and `code` has no partner.
    assert!(vector(&s, "req / limit", 0).is_empty());
    assert_eq!(
        pairs(&vector(&s, "req{code=\"200\"} / on(service) limit", 0)),
        [
            ("{service=\"a\"}".into(), 2.5),
            ("{service=\"b\"}".into(), 0.5)
        ]
    );
    assert_eq!(
        pairs(&vector(&s, "req{code=\"200\"} / ignoring(code) limit", 0)),
        [
            ("{service=\"a\"}".into(), 2.5),
            ("{service=\"b\"}".into(), 0.5)
        ]
    );
    // Two series of one match group on the "one" side are refused.
    let error = refusal(&s, "limit / on(service) req");
    assert_eq!(error.kind, "execution");
    assert!(error.message.contains("duplicate series"), "{error}");
    // group_left takes the many side's labels.
    assert_eq!(
        pairs(&vector(&s, "req / on(service) group_left limit", 0)),
        [
            ("{code=\"200\", service=\"a\"}".into(), 2.5),
            ("{code=\"200\", service=\"b\"}".into(), 0.5),
            ("{code=\"500\", service=\"a\"}".into(), 0.5),
        ]
    );
    assert_eq!(
        pairs(&vector(&s, "req{code=\"500\"} and on(service) limit", 0)),
        [(
            "{__name__=\"req\", code=\"500\", service=\"a\"}".into(),
            2.0
        )]
    );
    assert_eq!(
        vector(&s, "limit unless on(service) req{code=\"500\"}", 0).len(),
        1
    );
    assert_eq!(vector(&s, "limit or req", 0).len(), 5);
}

#[test]
fn comparisons_filter_or_answer_bool() {
    let s = requests();
    // A filter keeps the element's value and its metric name.
    assert_eq!(
        pairs(&vector(&s, "limit > 5", 0)),
        [("{__name__=\"limit\", service=\"b\"}".into(), 12.0)]
    );
    // The vector's value is kept even when the scalar is on the left.
    assert_eq!(
        pairs(&vector(&s, "5 < limit", 0)),
        [("{__name__=\"limit\", service=\"b\"}".into(), 12.0)]
    );
    // With bool, every element answers 0 or 1 and loses its name.
    assert_eq!(
        pairs(&vector(&s, "limit > bool 5", 0)),
        [
            ("{service=\"a\"}".into(), 0.0),
            ("{service=\"b\"}".into(), 1.0)
        ]
    );
    assert_eq!(
        pairs(&vector(&s, "req{code=\"200\"} >= on(service) limit", 0)),
        [("{service=\"a\"}".into(), 10.0)]
    );
    assert!(matches!(
        instant(&s, "1 < bool 2", T),
        Ok(QueryValue::Scalar(value)) if value == 1.0
    ));
    // Arithmetic drops the name.
    assert_eq!(
        pairs(&vector(&s, "limit * 2", 0)),
        [
            ("{service=\"a\"}".into(), 8.0),
            ("{service=\"b\"}".into(), 24.0)
        ]
    );
}

#[test]
fn functions_of_instant_vectors() {
    let s = store(&[
        (labels("g", &[("i", "1")]), &[(0, -1.25)]),
        (labels("g", &[("i", "2")]), &[(0, 2.5)]),
    ]);
    let values = |query: &str| -> Vec<f64> {
        vector(&s, query, 0)
            .into_iter()
            .map(|(_, value)| value)
            .collect()
    };
    assert_eq!(values("abs(g)"), [1.25, 2.5]);
    assert_eq!(values("round(g)"), [-1.0, 3.0]);
    assert_eq!(values("round(g, 2)"), [-2.0, 2.0]);
    assert_eq!(values("ceil(g)"), [-1.0, 3.0]);
    assert_eq!(values("floor(g)"), [-2.0, 2.0]);
    assert_eq!(values("clamp(g, 0, 1)"), [0.0, 1.0]);
    assert_eq!(values("clamp_min(g, 0)"), [0.0, 2.5]);
    assert_eq!(values("clamp_max(g, 0)"), [-1.25, 0.0]);
    assert!(values("clamp(g, 1, 0)").is_empty());
    assert!(matches!(instant(&s, "scalar(g)", T), Ok(QueryValue::Scalar(v)) if v.is_nan()));
    assert!(matches!(
        instant(&s, "scalar(g{i=\"2\"})", T),
        Ok(QueryValue::Scalar(v)) if v == 2.5
    ));
    assert!(
        matches!(instant(&s, "time()", T), Ok(QueryValue::Scalar(v)) if v == T as f64 / 1000.0)
    );
    assert_eq!(
        pairs(&vector(&s, "absent(nothing{job=\"a\", x=~\"y\"})", 0)),
        [("{job=\"a\"}".into(), 1.0)]
    );
    assert!(vector(&s, "absent(g)", 0).is_empty());
    // Two series that become one label set after the name is dropped are refused.
    let s = store(&[
        (labels("a", &[("i", "1")]), &[(0, 1.0)]),
        (labels("b", &[("i", "1")]), &[(0, 1.0)]),
    ]);
    let error = refusal(&s, "abs({i=\"1\"})");
    assert_eq!(error.kind, "execution");
    assert!(error.message.contains("same labelset"), "{error}");
}

#[test]
fn matchers_are_anchored_regexes() {
    let s = requests();
    assert_eq!(vector(&s, "req{code=~\"5..\"}", 0).len(), 1);
    assert_eq!(vector(&s, "req{code=~\"5\"}", 0).len(), 0);
    assert_eq!(vector(&s, "req{code!~\"2.*\"}", 0).len(), 1);
    assert_eq!(
        vector(&s, "{__name__=~\"lim.*\", service!=\"a\"}", 0).len(),
        1
    );
    // A matcher on a missing label matches the empty value.
    assert_eq!(vector(&s, "limit{code=\"\"}", 0).len(), 2);
}

#[test]
fn unsupported_constructs_and_bad_syntax_are_bad_data_naming_them() {
    let s = requests();
    for (query, named) in [
        ("max_over_time(rate(req[1m])[5m:1m])", "subquery"),
        (
            "label_replace(req, \"a\", \"b\", \"c\", \"d\")",
            "label_replace",
        ),
        ("quantile(0.5, req)", "quantile"),
        ("stddev(req)", "stddev"),
        ("req atan2 req", "atan2"),
        ("req{code=\"200\" or code=\"500\"}", "`or`"),
        ("sum(", "unclosed left parenthesis"),
        ("req[", "unexpected end of input"),
        ("", "no expression found"),
    ] {
        let error = refusal(&s, query);
        assert_eq!(error.kind, "bad_data", "{query}");
        assert!(error.message.contains(named), "{query}: {error}");
    }
    // A range query refuses what is not a scalar or an instant vector.
    let error = range(&s, "req[1m]", T, T + 60_000, 15_000).unwrap_err();
    assert!(error.message.contains("range vector"), "{error}");
    let error = range(&s, "req", T, T + 11_001_000, 1000).unwrap_err();
    assert!(error.message.contains("11,000"), "{error}");
    assert!(range(&s, "req", T, T + 11_000_000, 1000).is_ok());
}

#[test]
fn range_queries_evaluate_at_every_step() {
    let s = store(&[(
        labels("g", &[("i", "1")]),
        &[(0, 1.0), (60, 2.0), (120, 3.0)],
    )]);
    let series = range(&s, "g * 10", T, T + 600_000, 60_000).unwrap();
    assert_eq!(series.len(), 1);
    let values: Vec<(i64, f64)> = series[0]
        .samples
        .iter()
        .map(|(at, value)| ((at - T) / 1000, *value))
        .collect();
    // The last sample is seen for five minutes after it.
    assert_eq!(
        values,
        [
            (0, 10.0),
            (60, 20.0),
            (120, 30.0),
            (180, 30.0),
            (240, 30.0),
            (300, 30.0),
            (360, 30.0),
            (420, 30.0)
        ]
    );
    let scalar = range(&s, "time()", T, T + 120_000, 60_000).unwrap();
    assert_eq!(scalar.len(), 1);
    assert!(scalar[0].labels.is_empty());
    assert_eq!(scalar[0].samples.len(), 3);
}

#[test]
fn values_times_and_durations_are_written_and_read_as_prometheus_does() {
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(1.0), "1");
    assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
    assert_eq!(format_value(1e21), "1000000000000000000000");
    assert_eq!(format_value(1.5e-7), "0.00000015");
    assert_eq!(timestamp(1_700_000_000_000), "1700000000");
    assert_eq!(timestamp(1_700_000_000_050), "1700000000.050");
    assert_eq!(timestamp(-1_500), "-1.500");
    assert_eq!(parse_time("1700000000.0506"), Ok(1_700_000_000_051));
    assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
    assert!(parse_time("soon").unwrap_err().contains("\"soon\""));
    assert_eq!(parse_duration_ns("15s"), Ok(15_000_000_000));
    assert_eq!(parse_duration_ns("1h30m"), Ok(5_400_000_000_000));
    assert_eq!(parse_duration_ns("1.5"), Ok(1_500_000_000));
    assert_eq!(parse_duration_ns("0"), Ok(0));
    assert!(parse_duration_ns("30m1h").is_err());
    assert!(parse_duration_ns("").is_err());
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_http_api_answers_in_prometheus_shapes() {
    let s = store(&[(labels("g", &[("i", "1")]), &[(0, 0.5)])]);
    // The clock reads T + 60 s: a query without `time` is evaluated then.
    let clock = crate::clock::SimClock::starting_at(T + 60_000, std::time::Instant::now(), 1);
    let server = PrometheusServer::start(s, clock).await.unwrap();
    let url = server.url();

    let (status, body) = get(&format!("{url}/api/v1/query?query=g")).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "success");
    assert_eq!(json["data"]["resultType"], "vector");
    assert_eq!(json["data"]["result"][0]["metric"]["__name__"], "g");
    assert_eq!(json["data"]["result"][0]["value"][1], "0.5");
    let at = json["data"]["result"][0]["value"][0].as_f64().unwrap();
    assert!((at - (T + 60_000) as f64 / 1000.0).abs() < 30.0, "{body}");

    // A POSTed form, as Medic's adapter sends it; its values win over the URL's.
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/query?query=nothing"))
        .form(&[("query", "g / 0 + 1"), ("time", &(T / 1000).to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"i":"1"},"value":[1700000040,"+Inf"]}]}}"#
    );
    let (_, body) = get(&format!(
        "{url}/api/v1/query?query=0%2F0&time={}.5",
        T / 1000
    ))
    .await;
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000040.500,"NaN"]}}"#
    );

    let (status, body) = get(&format!(
        "{url}/api/v1/query_range?query=g&start={}&end={}&step=30s",
        T / 1000,
        T / 1000 + 60
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"g","i":"1"},"values":[[1700000040,"0.5"],[1700000070,"0.5"],[1700000100,"0.5"]]}]}}"#
    );

    // Refusals: 400 bad_data for queries and parameters, 422 for evaluation errors.
    for (path, status, kind, says) in [
        (
            "/api/v1/query?query=sum(",
            400,
            "bad_data",
            "invalid parameter \\\"query\\\"",
        ),
        (
            "/api/v1/query?query=g&time=soon",
            400,
            "bad_data",
            "invalid parameter \\\"time\\\"",
        ),
        (
            "/api/v1/query?query=max_over_time(g[5m:1m])",
            400,
            "bad_data",
            "subquery",
        ),
        (
            "/api/v1/query?query=abs({i=\"1\"})%20or%20-g",
            200,
            "",
            "success",
        ),
        (
            "/api/v1/query_range?query=g&start=0&end=11001&step=1",
            400,
            "bad_data",
            "11,000",
        ),
        (
            "/api/v1/query_range?query=g&start=10&end=0&step=1",
            400,
            "bad_data",
            "end timestamp",
        ),
        (
            "/api/v1/query_range?query=g&start=0&end=10&step=0",
            400,
            "bad_data",
            "zero or negative",
        ),
    ] {
        let (got, body) = get(&format!("{url}{path}")).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(kind), "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let two = store(&[
        (labels("a", &[("i", "1")]), &[(0, 1.0)]),
        (labels("b", &[("i", "1")]), &[(0, 1.0)]),
    ]);
    let other = PrometheusServer::start(two, clock).await.unwrap();
    let (status, body) = get(&format!(
        "{}/api/v1/query?query=abs({{i=\"1\"}})&time={}",
        other.url(),
        T / 1000
    ))
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(r#""errorType":"execution""#), "{body}");
    other.stop().await;

    let (status, body) = get(&format!("{url}/api/v1/status/buildinfo")).await;
    assert_eq!(status, 200);
    assert!(body.contains("medic-sandbox"), "{body}");
    assert_eq!(
        get(&format!("{url}/-/ready")).await,
        (200, "Prometheus Server is Ready.\n".into())
    );
    assert_eq!(
        get(&format!("{url}/-/healthy")).await,
        (200, "Prometheus Server is Healthy.\n".into())
    );
    assert_eq!(
        get(&format!("{url}/nothing")).await,
        (404, "404 page not found\n".into())
    );
    let response = reqwest::Client::new()
        .delete(format!("{url}/api/v1/query"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    server.stop().await;
}

#[test]
fn deeply_nested_queries_are_refused_not_crashed_on() {
    let s = requests();
    for depth in [101, 5_000, 20_000] {
        for query in [
            format!("{}1{}", "(".repeat(depth), ")".repeat(depth)),
            format!("{}req{}", "-(".repeat(depth), ")".repeat(depth)),
        ] {
            let error = refusal(&s, &query);
            assert_eq!(error.kind, "bad_data");
            assert!(error.message.contains("nested deeper"), "{error}");
        }
    }
    for query in [
        format!("{}1", "-".repeat(30_000)),
        vec!["req"; 9_000].join(" or "),
        vec!["1"; 20_000].join("+"),
    ] {
        let error = refusal(&s, &query);
        assert!(error.message.contains("operators and names"), "{error}");
    }
    // Below the limits, deep trees are evaluated (or refused by the depth check) without
    // exhausting the stack.
    let unary = format!("{}1", "-".repeat(1_998));
    assert!(matches!(instant(&s, &unary, T), Ok(QueryValue::Scalar(v)) if v == 1.0));
    let unary = format!("{}req", "-".repeat(1_998));
    assert!(refusal(&s, &unary).message.contains("nested deeper"));
    let chain = vec!["req"; 600].join(" or ");
    assert!(refusal(&s, &chain).message.contains("nested deeper"));
    assert_eq!(one(&s, "-(-(limit{service=\"a\"}))", 0), 4.0);
    // Strings and comments do not count.
    let long = format!(
        "absent(nothing{{a=\"{}\"}}) # {}",
        "(-".repeat(5_000),
        "(".repeat(500)
    );
    assert_eq!(one(&s, &long, 0), 1.0);
}
