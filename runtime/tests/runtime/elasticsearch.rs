//! `logs.aggregate` through the standard toolbox against the sandbox's Elasticsearch
//! (`medic_sandbox::elasticsearch`): counts and error rate, keywords, templates against the
//! baseline window, stack traces, paging over a point in time, the `max_lines` limit,
//! Elasticsearch's refusals and a server that does not answer.

use super::support::{compile, failure, output, run_playbook};
use medic_compiler::plan::Value;
use medic_runtime::adapters::elasticsearch::{AggregateQuery, Elasticsearch};
use medic_runtime::adapters::{
    ElasticsearchConfig, EsAuth, EsFields, StandardToolbox, ToolboxConfig,
};
use medic_runtime::executor::RunReport;
use medic_sandbox::elasticsearch::{Credentials, ElasticsearchServer};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SERVICE: &str = "payment-gateway";
const MINUTE: i64 = 60_000;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `at` as ECS writes `@timestamp`: RFC 3339 in UTC with milliseconds.
fn iso(at: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One ECS log document.
fn line(at: i64, service: &str, level: &str, message: &str) -> Json {
    json!({
        "@timestamp": iso(at),
        "service": {"name": service},
        "log": {"level": level},
        "message": message,
    })
}

fn config(server: &ElasticsearchServer) -> ElasticsearchConfig {
    ElasticsearchConfig {
        url: server.url(),
        index: "logs-*".into(),
        timeout: Duration::from_secs(10),
        auth: EsAuth::None,
        fields: EsFields::default(),
        max_lines: 100_000,
    }
}

fn toolbox(elasticsearch: Option<ElasticsearchConfig>) -> Arc<StandardToolbox> {
    Arc::new(
        StandardToolbox::new(ToolboxConfig {
            elasticsearch,
            ..ToolboxConfig::default()
        })
        .unwrap(),
    )
}

const AGGREGATE: &str = r#"
import std.{logs}
playbook check(service: String, since: Time) {
  task logs = logs.aggregate(service: service, since: since, keywords: ["TIMEOUT", "payment failed"], baseline: 10m)
}
"#;

/// Runs [`AGGREGATE`] (or `source`) over the last ten minutes.
async fn aggregate(source: &str, toolbox: Arc<StandardToolbox>, now: i64) -> RunReport {
    run_playbook(
        &compile(source),
        &[
            ("service", Value::String(SERVICE.into())),
            ("since", Value::Time(now - 10 * MINUTE)),
        ],
        toolbox,
    )
    .await
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(count) => *count,
        other => panic!("not an Int: {other:?}"),
    }
}

fn list(value: &Value) -> Vec<BTreeMap<String, Value>> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| match item {
                Value::Record(fields) => (**fields).clone(),
                other => panic!("not a record: {other:?}"),
            })
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

fn text(value: &Value) -> &str {
    match value {
        Value::String(text) => text,
        other => panic!("not a String: {other:?}"),
    }
}

/// The window (the last ten minutes) of a typical incident, its baseline before it, and
/// lines the filter must leave out.
fn incident(now: i64) -> Vec<Json> {
    let mut docs = Vec::new();
    let window = now - 10 * MINUTE;
    for index in 0..90 {
        let at = window + 1000 + index * 5000;
        docs.push(line(
            at,
            SERVICE,
            "INFO",
            &format!("GET /orders/{index} 200 in {}ms", 10 + index),
        ));
    }
    for (index, level) in ["ERROR", "error", "Fatal", "ERROR", "CRITICAL", "ERROR"]
        .iter()
        .enumerate()
    {
        let at = window + 2000 + index as i64 * 60_000;
        docs.push(line(
            at,
            SERVICE,
            level,
            &format!("payment failed for order {}", 7000 + index),
        ));
    }
    for index in 0..4 {
        let at = window + 3000 + index * 60_000;
        docs.push(line(
            at,
            SERVICE,
            "WARN",
            &format!("TIMEOUT calling bank after {}ms", 3000 + index),
        ));
    }
    // Another service, the baseline window, and a line stamped after now: none counted.
    docs.push(line(
        window + 5000,
        "checkout",
        "ERROR",
        "payment failed for order 1",
    ));
    docs.push(line(
        window - 5 * MINUTE,
        SERVICE,
        "ERROR",
        "payment failed for order 2",
    ));
    docs.push(line(
        now + 5 * MINUTE,
        SERVICE,
        "ERROR",
        "payment failed for order 3",
    ));
    docs
}

#[tokio::test]
async fn counts_and_error_rate_are_of_the_window_and_service() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    server.index("logs-payments-2026.03", incident(now));
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    let summary = output(&report, "logs");
    assert_eq!(summary["total"], Value::Int(100));
    // Six at an error level (any case), four more matching the TIMEOUT keyword.
    assert_eq!(summary["errors"], Value::Int(10));
    assert_eq!(summary["error_rate"], Value::Percent(10.0));
    assert_eq!(
        summary["by_keyword"],
        Value::record([
            ("TIMEOUT".to_string(), Value::Int(4)),
            ("payment failed".to_string(), Value::Int(6)),
        ])
    );
    // The point in time was opened on the configured pattern and closed.
    let requests = server.requests();
    assert_eq!(requests[0].path, "/logs-*/_pit");
    assert_eq!(requests[0].query, "keep_alive=1m");
    assert_eq!(requests.last().unwrap().method, "DELETE");
    assert_eq!(requests.last().unwrap().path, "/_pit");
    assert_eq!(server.open_points_in_time(), 0);
    // The aggregation search: the service term and the time range, as JSON values.
    let counts = requests[1].json();
    assert_eq!(counts["size"], 0);
    assert_eq!(
        counts["query"]["bool"]["filter"][0],
        json!({"term": {"service.name": SERVICE}})
    );
    assert_eq!(
        counts["query"]["bool"]["filter"][1]["range"]["@timestamp"]["gte"],
        json!(now - 10 * MINUTE)
    );
}

/// Alert data reaches Elasticsearch as JSON values only: a service or keyword made to break
/// out of a hand-built query narrows the search to nothing.
#[tokio::test]
async fn hostile_services_and_keywords_stay_json_values() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    server.index("logs-1", incident(now));
    let hostile = "x\"}}, {\"match_all\": {}}, {\"term\": {\"a\": \"";
    let source = r#"
import std.{logs}
playbook check(service: String, since: Time, keyword: String) {
  task logs = logs.aggregate(service: service, since: since, keywords: [keyword])
}
"#;
    let report = run_playbook(
        &compile(source),
        &[
            ("service", Value::String(hostile.into())),
            ("since", Value::Time(now - 10 * MINUTE)),
            ("keyword", Value::String(hostile.into())),
        ],
        toolbox(Some(config(&server))),
    )
    .await;
    let summary = output(&report, "logs");
    assert_eq!(summary["total"], Value::Int(0));
    assert_eq!(
        summary["by_keyword"],
        Value::record([(hostile.to_string(), Value::Int(0))])
    );
    let counts = server.requests()[1].json();
    assert_eq!(
        counts["query"]["bool"]["filter"][0]["term"]["service.name"],
        json!(hostile)
    );
    assert_eq!(
        counts["aggs"]["keywords"]["filters"]["filters"]["0"]["match_phrase"]["message"],
        json!(hostile)
    );
}

#[tokio::test]
async fn keywords_are_phrases_matched_in_the_message_whatever_the_case() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    let window = now - 10 * MINUTE;
    server.index(
        "logs-1",
        vec![
            line(window + 1000, SERVICE, "INFO", "Payment FAILED, retrying"),
            line(window + 2000, SERVICE, "INFO", "payment was not failed"),
            line(window + 3000, SERVICE, "INFO", "upstream timeout: bank"),
            line(window + 4000, SERVICE, "INFO", "TIMEOUTS are counted apart"),
            line(window + 5000, SERVICE, "INFO", "all good"),
        ],
    );
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    let summary = output(&report, "logs");
    assert_eq!(summary["total"], Value::Int(5));
    assert_eq!(
        summary["by_keyword"],
        Value::record([
            ("TIMEOUT".to_string(), Value::Int(1)),
            ("payment failed".to_string(), Value::Int(1)),
        ])
    );
    // A line matching a keyword is an error, whatever its level.
    assert_eq!(summary["errors"], Value::Int(2));
    assert_eq!(summary["error_rate"], Value::Percent(40.0));
}

#[tokio::test]
async fn a_template_new_in_the_window_is_ranked_first() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    let window = now - 10 * MINUTE;
    let mut docs = Vec::new();
    for index in 0..40 {
        docs.push(line(
            window - 9 * MINUTE + index * 1000,
            SERVICE,
            "INFO",
            &format!("GET /orders/{index} 200 in {index}ms"),
        ));
        docs.push(line(
            window + index * 1000,
            SERVICE,
            "INFO",
            &format!("GET /orders/{} 200 in {index}ms", 100 + index),
        ));
    }
    for index in 0..3 {
        docs.push(line(
            window + 50_000 + index * 1000,
            SERVICE,
            "ERROR",
            &format!(
                "connection pool exhausted for payments-db after {}ms",
                5000 + index
            ),
        ));
    }
    server.index("logs-1", docs);
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    let templates = list(&output(&report, "logs")["templates"]);
    assert_eq!(templates.len(), 2, "{templates:?}");
    assert!(
        text(&templates[0]["pattern"]).starts_with("connection pool exhausted"),
        "{templates:?}"
    );
    assert_eq!(templates[0]["new"], Value::Bool(true));
    assert_eq!(templates[0]["count"], Value::Int(3));
    assert_eq!(templates[0]["baseline"], Value::Int(0));
    assert!(
        text(&templates[1]["pattern"]).starts_with("GET"),
        "{templates:?}"
    );
    assert_eq!(templates[1]["new"], Value::Bool(false));
    assert_eq!(templates[1]["count"], Value::Int(40));
    assert_eq!(templates[1]["baseline"], Value::Int(40));
}

#[tokio::test]
async fn a_spiking_template_comes_before_steadier_more_frequent_ones() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    let window = now - 10 * MINUTE;
    let mut docs = Vec::new();
    for index in 0..60 {
        docs.push(line(
            window - 9 * MINUTE + index * 1000,
            SERVICE,
            "INFO",
            &format!("GET /orders/{index} 200 in {index}ms"),
        ));
        docs.push(line(
            window + index * 1000,
            SERVICE,
            "INFO",
            &format!("GET /orders/{index} 200 in {index}ms"),
        ));
    }
    for index in 0..2 {
        docs.push(line(
            window - 5 * MINUTE + index * 1000,
            SERVICE,
            "WARN",
            &format!("retrying charge {} attempt 2", 100 + index),
        ));
    }
    for index in 0..30 {
        docs.push(line(
            window + 70_000 + index * 1000,
            SERVICE,
            "WARN",
            &format!("retrying charge {} attempt 2", 200 + index),
        ));
    }
    server.index("logs-1", docs);
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    let templates = list(&output(&report, "logs")["templates"]);
    assert_eq!(templates.len(), 2, "{templates:?}");
    assert!(
        text(&templates[0]["pattern"]).starts_with("retrying charge"),
        "{templates:?}"
    );
    assert_eq!(templates[0]["count"], Value::Int(30));
    assert_eq!(templates[0]["baseline"], Value::Int(2));
    assert_eq!(templates[0]["new"], Value::Bool(false));
    assert_eq!(templates[1]["count"], Value::Int(60));
}

const JAVA_TRACE: &str = "java.lang.IllegalStateException: pool closed\n\tat com.example.pay.Pool.take(Pool.java:40)\n\tat com.example.pay.Charger.charge(Charger.java:12)\n\tat java.base/java.lang.Thread.run(Thread.java:833)";

#[tokio::test]
async fn stack_traces_are_grouped_from_messages_and_the_stack_trace_field() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    let window = now - 10 * MINUTE;
    let mut docs = Vec::new();
    // ECS: the message says what failed, error.stack_trace holds the whole trace.
    for index in 0..3 {
        let mut doc = line(window + index * 1000, SERVICE, "ERROR", "charge failed");
        doc["error"] =
            json!({"type": "java.lang.IllegalStateException", "stack_trace": JAVA_TRACE});
        docs.push(doc);
    }
    // A shipper without multi-line joining: one document per line of the same trace.
    for (offset, text) in JAVA_TRACE.lines().enumerate() {
        docs.push(line(
            window + 10_000 + offset as i64,
            SERVICE,
            "ERROR",
            text,
        ));
    }
    // A Python traceback in one message, twice.
    let python = "Traceback (most recent call last):\n  File \"/app/charge.py\", line 12, in charge\n    card = cards[order.card_id]\nKeyError: 'card-77'";
    docs.push(line(window + 20_000, SERVICE, "ERROR", python));
    docs.push(line(window + 21_000, SERVICE, "ERROR", python));
    server.index("logs-1", docs);
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    let traces = list(&output(&report, "logs")["stack_traces"]);
    assert_eq!(traces.len(), 2, "{traces:?}");
    assert_eq!(
        text(&traces[0]["exception"]),
        "java.lang.IllegalStateException"
    );
    assert_eq!(text(&traces[0]["message"]), "pool closed");
    assert_eq!(traces[0]["count"], Value::Int(4));
    assert_eq!(
        traces[0]["frames"],
        Value::List(vec![
            Value::String("com.example.pay.Pool.take(Pool.java:40)".into()),
            Value::String("com.example.pay.Charger.charge(Charger.java:12)".into()),
            Value::String("java.base/java.lang.Thread.run(Thread.java:833)".into()),
        ])
    );
    assert_eq!(text(&traces[1]["exception"]), "KeyError");
    assert_eq!(traces[1]["count"], Value::Int(2));
    assert_eq!(
        traces[1]["frames"],
        Value::List(vec![Value::String("charge (/app/charge.py:12)".into())])
    );
}

/// `count` lines of one template, one every 100 ms from `from`.
fn many(from: i64, count: i64, level: &str) -> Vec<Json> {
    (0..count)
        .map(|index| {
            line(
                from + index * 100,
                SERVICE,
                level,
                &format!("charged order {index} in {}ms", index % 90),
            )
        })
        .collect()
}

fn template_total(report: &RunReport) -> i64 {
    list(&output(report, "logs")["templates"])
        .iter()
        .map(|template| int(&template["count"]))
        .sum()
}

#[tokio::test]
async fn messages_are_paged_with_search_after_over_one_point_in_time() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    let window = now - 10 * MINUTE;
    server.index("logs-a", many(window - 8 * MINUTE, 1200, "INFO"));
    server.index("logs-b", many(window + 1000, 2500, "INFO"));
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    assert_eq!(output(&report, "logs")["total"], Value::Int(2500));
    assert_eq!(template_total(&report), 2500);
    let requests = server.requests();
    let searches: Vec<Json> = requests
        .iter()
        .filter(|request| request.path == "/_search")
        .map(|request| request.json())
        .collect();
    // The counts, two baseline pages (1000 + 200), three window pages (1000 + 1000 + 500).
    assert_eq!(searches.len(), 6, "{searches:#?}");
    let pit = searches[0]["pit"]["id"].clone();
    assert!(searches.iter().all(|search| search["pit"]["id"] == pit));
    let sizes: Vec<&Json> = searches.iter().map(|search| &search["size"]).collect();
    assert_eq!(
        sizes,
        [
            &json!(0),
            &json!(1000),
            &json!(1000),
            &json!(1000),
            &json!(1000),
            &json!(1000)
        ]
    );
    assert!(searches[1].get("search_after").is_none());
    assert!(searches[2]["search_after"].is_array());
    assert!(searches[3].get("search_after").is_none());
    assert!(searches[4]["search_after"].is_array());
    assert!(searches[5]["search_after"].is_array());
    assert_eq!(
        requests
            .iter()
            .filter(|request| request.path.ends_with("/_pit"))
            .count(),
        2
    );
    assert_eq!(server.open_points_in_time(), 0);
}

#[tokio::test]
async fn the_max_lines_limit_bounds_what_is_read_and_is_reported() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    let window = now - 10 * MINUTE;
    server.index("logs-a", many(window + 1000, 2500, "INFO"));
    let limited = ElasticsearchConfig {
        max_lines: 1500,
        ..config(&server)
    };
    let report = aggregate(AGGREGATE, toolbox(Some(limited.clone())), now).await;
    // Counts are of every line; templates of the lines read; the summary says so.
    assert_eq!(output(&report, "logs")["total"], Value::Int(2500));
    assert_eq!(output(&report, "logs")["lines_read"], Value::Int(1500));
    assert_eq!(output(&report, "logs")["truncated"], Value::Bool(true));
    assert_eq!(template_total(&report), 1500);
    let sizes: Vec<Json> = server
        .requests()
        .iter()
        .filter(|request| request.path == "/_search")
        .map(|request| request.json()["size"].clone())
        .collect();
    assert_eq!(sizes, [json!(0), json!(1000), json!(1000), json!(500)]);
    // The Rust API also says it of the baseline.
    let adapter = Elasticsearch::new(Some(limited)).unwrap();
    let summary = adapter
        .aggregate(&AggregateQuery {
            service: SERVICE.into(),
            since: window,
            keywords: Vec::new(),
            baseline: Duration::from_secs(600),
            index: None,
        })
        .await
        .unwrap();
    assert!(summary.limited);
    assert_eq!(summary.lines_read, 1500);
    assert!(!summary.baseline_limited);
    assert_eq!(summary.baseline_lines_read, 0);
}

#[tokio::test]
async fn elasticsearch_refusals_are_the_task_failure() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    server.index("logs-1", incident(now));
    let missing = r#"
import std.{logs}
playbook check(service: String, since: Time) {
  task logs = logs.aggregate(service: service, since: since, index: "logs-x")
}
"#;
    let report = aggregate(missing, toolbox(Some(config(&server))), now).await;
    assert_eq!(
        failure(&report, "logs"),
        "elasticsearch refused the search (index_not_found_exception): no such index [logs-x]"
    );

    server.require(Some(Credentials::ApiKey("a2V5OnNlY3JldA==".into())));
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    assert_eq!(
        failure(&report, "logs"),
        "elasticsearch refused the search (security_exception): missing authentication credentials for REST request [/logs-*/_pit]"
    );
    let with_key = ElasticsearchConfig {
        auth: EsAuth::ApiKey("a2V5OnNlY3JldA==".into()),
        ..config(&server)
    };
    let report = aggregate(AGGREGATE, toolbox(Some(with_key)), now).await;
    assert_eq!(output(&report, "logs")["total"], Value::Int(100));
    assert_eq!(
        server.requests().last().unwrap().authorization.as_deref(),
        Some("ApiKey a2V5OnNlY3JldA==")
    );

    server.require(Some(Credentials::Basic {
        username: "elastic".into(),
        password: "changeme".into(),
    }));
    let basic = |password: &str| ElasticsearchConfig {
        auth: EsAuth::Basic {
            username: "elastic".into(),
            password: password.into(),
        },
        ..config(&server)
    };
    let report = aggregate(AGGREGATE, toolbox(Some(basic("wrong"))), now).await;
    assert_eq!(
        failure(&report, "logs"),
        "elasticsearch refused the search (security_exception): unable to authenticate user [elastic] for REST request [/logs-*/_pit]"
    );
    let report = aggregate(AGGREGATE, toolbox(Some(basic("changeme"))), now).await;
    assert_eq!(output(&report, "logs")["errors"], Value::Int(10));
    // `medic doctor`'s check uses the same credentials.
    let adapter = Elasticsearch::new(Some(basic("changeme"))).unwrap();
    assert_eq!(
        adapter.check().await.unwrap(),
        "Elasticsearch 8.15.0 answered"
    );
    let adapter = Elasticsearch::new(Some(basic("wrong"))).unwrap();
    assert!(
        adapter
            .check()
            .await
            .unwrap_err()
            .to_string()
            .contains("security_exception")
    );
    assert_eq!(server.open_points_in_time(), 0);
}

#[tokio::test]
async fn a_refusal_after_the_point_in_time_opened_still_closes_it() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    server.index("logs-1", incident(now));
    // The counts (size 0) pass; the first page of messages (size 1000) is refused.
    server.max_result_window(500);
    let report = aggregate(AGGREGATE, toolbox(Some(config(&server))), now).await;
    let reason = failure(&report, "logs");
    assert!(
        reason.starts_with(
            "elasticsearch refused the search (illegal_argument_exception): Result window is too large, from + size must be less than or equal to: [500] but was [1000]."
        ),
        "{reason}"
    );
    let requests = server.requests();
    assert_eq!(requests.last().unwrap().method, "DELETE");
    assert_eq!(server.open_points_in_time(), 0);
}

#[tokio::test]
async fn a_silent_elasticsearch_fails_within_the_timeout() {
    let server = ElasticsearchServer::start().await.unwrap();
    server.delay(Duration::from_secs(30));
    let quick = ElasticsearchConfig {
        timeout: Duration::from_millis(500),
        ..config(&server)
    };
    let started = Instant::now();
    let report = aggregate(AGGREGATE, toolbox(Some(quick)), now_ms()).await;
    assert_eq!(
        failure(&report, "logs"),
        "elasticsearch did not answer within 500ms"
    );
    // The call's timeout, then at most the point-in-time close's own (none was opened).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_closed_port_and_no_configuration_fail_saying_so() {
    let report = aggregate(AGGREGATE, toolbox(None), now_ms()).await;
    assert_eq!(
        failure(&report, "logs"),
        "no Elasticsearch is configured ([elasticsearch] url in medic.toml)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = ElasticsearchConfig {
        url: format!("http://127.0.0.1:{port}"),
        index: "logs-*".into(),
        timeout: Duration::from_secs(5),
        auth: EsAuth::None,
        fields: EsFields::default(),
        max_lines: 10,
    };
    let report = aggregate(AGGREGATE, toolbox(Some(closed)), now_ms()).await;
    let reason = failure(&report, "logs");
    assert!(
        reason.starts_with("elasticsearch could not be reached: "),
        "{reason}"
    );
}

#[tokio::test]
async fn configured_field_names_are_the_ones_searched_and_read() {
    let server = ElasticsearchServer::start().await.unwrap();
    let now = now_ms();
    let window = now - 10 * MINUTE;
    server.index(
        "app",
        vec![
            json!({"ts": window + 1000, "svc": SERVICE, "severity": "error", "msg": "disk full on /var", "trace": JAVA_TRACE}),
            json!({"ts": window + 2000, "svc": SERVICE, "severity": "info", "msg": "ok"}),
        ],
    );
    let custom = ElasticsearchConfig {
        index: "app".into(),
        fields: EsFields {
            timestamp: "ts".into(),
            message: "msg".into(),
            level: "severity".into(),
            service: "svc".into(),
            host: "host".into(),
            error_type: "kind".into(),
            stack_trace: "trace".into(),
        },
        ..config(&server)
    };
    let report = aggregate(AGGREGATE, toolbox(Some(custom)), now).await;
    let summary = output(&report, "logs");
    assert_eq!(summary["total"], Value::Int(2));
    assert_eq!(summary["errors"], Value::Int(1));
    assert_eq!(list(&summary["stack_traces"]).len(), 1);
}

/// A listener that answers every request with `answer` after reading its head and body.
async fn listener(answer: Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|value| value.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = stream.write_all(&answer).await;
            });
        }
    });
    port
}

fn http_answer(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

async fn reason_from(answer: Vec<u8>) -> String {
    let port = listener(answer).await;
    let odd = ElasticsearchConfig {
        url: format!("http://127.0.0.1:{port}"),
        index: "logs-*".into(),
        timeout: Duration::from_secs(10),
        auth: EsAuth::None,
        fields: EsFields::default(),
        max_lines: 10,
    };
    failure(
        &aggregate(AGGREGATE, toolbox(Some(odd)), now_ms()).await,
        "logs",
    )
}

#[tokio::test]
async fn answers_elasticsearch_never_gives_fail_naming_what_was_wrong() {
    let reason = reason_from(http_answer(
        "502 Bad Gateway",
        "text/html",
        b"<html><body>502 Bad Gateway</body></html>",
    ))
    .await;
    assert_eq!(
        reason,
        "elasticsearch answered HTTP 502 without a search API answer: \"<html><body>502 Bad Gateway</body></html>\""
    );
    let reason = reason_from(http_answer("200 OK", "text/plain", b"hello")).await;
    assert!(
        reason.starts_with("elasticsearch's answer is not JSON ("),
        "{reason}"
    );
    let reason = reason_from(http_answer(
        "200 OK",
        "application/json",
        b"{\"no\": \"id\"}",
    ))
    .await;
    assert_eq!(
        reason,
        "elasticsearch's answer is not a search API answer: the point in time has no `id`"
    );
    // A redirect is not followed: its status is the failure.
    let redirect = b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec();
    assert_eq!(
        reason_from(redirect).await,
        "elasticsearch answered HTTP 302 without a search API answer: (empty)"
    );
    let huge = vec![b' '; medic_runtime::adapters::elasticsearch::ANSWER_LIMIT + 1];
    assert_eq!(
        reason_from(http_answer("200 OK", "application/json", &huge)).await,
        "elasticsearch's answer is larger than 32 MiB, so it was not read"
    );
}
