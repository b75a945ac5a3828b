//! `trace.dependencies` and `trace.slowest_spans` through the standard toolbox against the
//! sandbox's Jaeger query service (`medic_sandbox::jaeger`), with and without a declared
//! topology, over both query APIs, and against a Jaeger that refuses or never answers.

use super::support::{compile, failure, output, run_playbook};
use medic_compiler::plan::Value;
use medic_runtime::adapters::jaeger::{Direction, Edge, Jaeger, JaegerConfig};
use medic_runtime::adapters::{StandardToolbox, ToolboxConfig, Topology};
use medic_runtime::executor::{Clock, RunReport};
use medic_sandbox::jaeger::{ApiV3, Apis, Dependency, JaegerServer, TraceBuilder, TraceGenerator};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn config(server: &JaegerServer) -> JaegerConfig {
    JaegerConfig {
        url: server.url(),
        timeout: Duration::from_secs(10),
        bearer_token: None,
    }
}

fn topology(pairs: &[(&str, &[&str])]) -> Topology {
    Topology {
        calls: pairs
            .iter()
            .map(|(service, callees)| {
                (
                    service.to_string(),
                    callees.iter().map(|callee| callee.to_string()).collect(),
                )
            })
            .collect(),
    }
}

fn toolbox(jaeger: Option<JaegerConfig>, topology: Topology) -> Arc<StandardToolbox> {
    Arc::new(
        StandardToolbox::new(ToolboxConfig {
            jaeger,
            topology,
            ..ToolboxConfig::default()
        })
        .unwrap(),
    )
}

async fn run(
    source: &str,
    arguments: &[(&str, Value)],
    toolbox: Arc<StandardToolbox>,
) -> RunReport {
    run_playbook(&compile(source), arguments, toolbox).await
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                other => panic!("not a string: {other:?}"),
            })
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

/// The edges of a `trace.Dependencies` record as (parent, child, calls).
fn edges(value: &Value) -> Vec<(String, String, i64)> {
    let Value::List(items) = value else {
        panic!("not a list: {value:?}");
    };
    items
        .iter()
        .map(|item| {
            let Value::Record(fields) = item else {
                panic!("not a record: {item:?}");
            };
            let text = |name: &str| match &fields[name] {
                Value::String(text) => text.clone(),
                other => panic!("{name}: {other:?}"),
            };
            let Value::Int(calls) = fields["calls"] else {
                panic!("calls: {:?}", fields["calls"]);
            };
            (text("parent"), text("child"), calls)
        })
        .collect()
}

fn edge(parent: &str, child: &str, calls: i64) -> (String, String, i64) {
    (parent.to_string(), child.to_string(), calls)
}

const DEPENDENCIES: &str = r#"
import std.{trace}
playbook deps(since: Time) {
  task near = trace.dependencies("payment-gateway", direction: downstream, depth: 1, since: since)
  task deep = trace.dependencies("payment-gateway", direction: downstream, depth: 3, since: since)
  task callers = trace.dependencies("order-service", direction: upstream, since: since)
  task around = trace.dependencies("order-service", direction: both, depth: 1, since: since)
}
"#;

const DEPENDENCIES_LAST_HOUR: &str = r#"
import std.{trace}
playbook deps() {
  task deep = trace.dependencies("payment-gateway")
}
"#;

/// gateway → order (Jaeger and the topology), order → inventory (Jaeger), gateway →
/// payments-db and inventory → inventory-db (the topology only).
fn payment_topology() -> Topology {
    topology(&[
        ("payment-gateway", &["order-service", "payments-db"]),
        ("inventory-service", &["inventory-db"]),
    ])
}

#[tokio::test]
async fn dependencies_merge_jaeger_with_the_topology_by_depth_and_direction() {
    let server = JaegerServer::start().await.unwrap();
    server.set_dependencies(vec![
        Dependency::new("payment-gateway", "order-service", 120),
        Dependency::new("order-service", "inventory-service", 80),
        Dependency::new("checkout", "payment-gateway", 40),
    ]);
    let since = now_ms() - 15 * 60 * 1000;
    let report = run(
        DEPENDENCIES,
        &[("since", Value::Time(since))],
        toolbox(Some(config(&server)), payment_topology()),
    )
    .await;
    let near = output(&report, "near");
    assert_eq!(strings(&near["services"]), ["order-service", "payments-db"]);
    assert_eq!(
        edges(&near["edges"]),
        [
            edge("payment-gateway", "order-service", 120),
            edge("payment-gateway", "payments-db", 0),
        ]
    );
    let deep = output(&report, "deep");
    assert_eq!(
        strings(&deep["services"]),
        [
            "order-service",
            "payments-db",
            "inventory-service",
            "inventory-db"
        ]
    );
    assert_eq!(
        edges(&deep["edges"]),
        [
            edge("inventory-service", "inventory-db", 0),
            edge("order-service", "inventory-service", 80),
            edge("payment-gateway", "order-service", 120),
            edge("payment-gateway", "payments-db", 0),
        ]
    );
    let callers = output(&report, "callers");
    assert_eq!(
        strings(&callers["services"]),
        ["payment-gateway", "checkout"]
    );
    let around = output(&report, "around");
    assert_eq!(
        strings(&around["services"]),
        ["inventory-service", "payment-gateway"]
    );
    // Each call asked for the links from `since` until now, in milliseconds.
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!(request.path, "/api/dependencies");
        let end: i64 = request.param("endTs").unwrap().parse().unwrap();
        let lookback: i64 = request.param("lookback").unwrap().parse().unwrap();
        assert!((now_ms() - end).abs() < 60_000, "{request:?}");
        assert_eq!(end - lookback, since, "{request:?}");
    }
}

#[tokio::test]
async fn dependencies_without_since_cover_the_last_hour() {
    let server = JaegerServer::start().await.unwrap();
    server.set_dependencies(vec![Dependency::new("payment-gateway", "order-service", 3)]);
    let report = run(
        DEPENDENCIES_LAST_HOUR,
        &[],
        toolbox(Some(config(&server)), Topology::default()),
    )
    .await;
    assert_eq!(
        strings(&output(&report, "deep")["services"]),
        ["order-service"]
    );
    assert_eq!(server.requests()[0].param("lookback"), Some("3600000"));
}

#[tokio::test]
async fn dependencies_come_from_the_topology_alone_without_jaeger() {
    let report = run(
        DEPENDENCIES,
        &[("since", Value::Time(now_ms()))],
        toolbox(
            None,
            topology(&[
                ("payment-gateway", &["order-service", "payments-db"]),
                ("order-service", &["inventory-service"]),
            ]),
        ),
    )
    .await;
    let deep = output(&report, "deep");
    assert_eq!(
        strings(&deep["services"]),
        ["order-service", "payments-db", "inventory-service"]
    );
    assert_eq!(
        edges(&deep["edges"]),
        [
            edge("order-service", "inventory-service", 0),
            edge("payment-gateway", "order-service", 0),
            edge("payment-gateway", "payments-db", 0),
        ]
    );
    assert_eq!(
        strings(&output(&report, "callers")["services"]),
        ["payment-gateway"]
    );
}

/// An empty Jaeger graph (Elasticsearch-backed, no dependencies job) still walks the
/// topology.
#[tokio::test]
async fn an_empty_jaeger_graph_still_walks_the_topology() {
    let server = JaegerServer::start().await.unwrap();
    server.set_dependencies(vec![]);
    let report = run(
        DEPENDENCIES_LAST_HOUR,
        &[],
        toolbox(Some(config(&server)), payment_topology()),
    )
    .await;
    assert_eq!(
        strings(&output(&report, "deep")["services"]),
        ["order-service", "payments-db"]
    );
}

const SLOWEST: &str = r#"
import std.{trace}
playbook slow(since: Time) {
  task spans = trace.slowest_spans("payment-gateway", since: since, limit: 3)
  task again = trace.slowest_spans("payment-gateway", since: since) {
    after spans
  }
}
"#;

/// The payment graph's traces over the last minutes, inventory-db 250 ms slow.
fn slow_database_traces(server: &JaegerServer) {
    let mut generator = TraceGenerator::new(
        &[
            ("payment-gateway", &["order-service", "payments-db"]),
            ("order-service", &["inventory-service"]),
            ("inventory-service", &["inventory-db"]),
        ],
        11,
    )
    .slow("inventory-db", Duration::from_millis(250));
    let start_us = (now_ms() - 5 * 60 * 1000) * 1000;
    server.add_traces(generator.traces("payment-gateway", 40, start_us, Duration::from_secs(5)));
}

/// The (service, operation, p99 ms, share %) of each span of a `trace.SlowSpans` record.
fn slow_spans(
    record: &std::collections::BTreeMap<String, Value>,
) -> Vec<(String, String, i64, f64)> {
    let Value::List(spans) = &record["spans"] else {
        panic!("{record:?}");
    };
    spans
        .iter()
        .map(|span| {
            let Value::Record(fields) = span else {
                panic!("{span:?}");
            };
            let (
                Value::String(service),
                Value::String(operation),
                Value::Duration(p99),
                Value::Percent(share),
            ) = (
                &fields["service"],
                &fields["operation"],
                &fields["p99"],
                &fields["share"],
            )
            else {
                panic!("{fields:?}");
            };
            (service.clone(), operation.clone(), *p99, *share)
        })
        .collect()
}

fn assert_the_database_is_the_hotspot(record: &std::collections::BTreeMap<String, Value>) {
    assert_eq!(record["hotspot"], Value::String("inventory-db".into()));
    let spans = slow_spans(record);
    assert_eq!(spans.len(), 3, "{spans:?}");
    let (service, operation, p99, share) = &spans[0];
    assert_eq!(
        (service.as_str(), operation.as_str()),
        ("inventory-db", "SELECT")
    );
    assert!((250..300).contains(p99), "{spans:?}");
    assert!(*share > 80.0, "{spans:?}");
    // Its callers wait for it but are not blamed: a few milliseconds of their own each.
    for (service, _, p99, share) in &spans[1..] {
        assert_ne!(service, "inventory-db");
        assert!(*p99 < 10 && *share < 5.0, "{spans:?}");
    }
}

#[tokio::test]
async fn slowest_spans_blame_a_slow_callee_not_its_callers_over_api_v3() {
    // Every generation of api_v3's gateway: each reads its own parameter names.
    for generation in [
        ApiV3::Early,
        ApiV3::SnakeCase,
        ApiV3::Current,
        ApiV3::CamelCaseOnly,
    ] {
        let server = JaegerServer::start().await.unwrap();
        server.serve(Apis::V3Only);
        server.api_v3(generation);
        slow_database_traces(&server);
        let since = now_ms() - 10 * 60 * 1000;
        let report = run(
            SLOWEST,
            &[("since", Value::Time(since))],
            toolbox(Some(config(&server)), Topology::default()),
        )
        .await;
        assert_the_database_is_the_hotspot(&output(&report, "spans"));
        assert_eq!(
            slow_spans(&output(&report, "again")).len(),
            5,
            "{generation:?}"
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{generation:?}");
        for request in &requests {
            assert_eq!(request.path, "/api/v3/traces");
            for (camel, snake) in [
                ("query.serviceName", "query.service_name"),
                ("query.searchDepth", "query.num_traces"),
                ("query.startTimeMin", "query.start_time_min"),
                ("query.startTimeMax", "query.start_time_max"),
            ] {
                assert_eq!(request.param(camel), request.param(snake), "{request:?}");
            }
            assert_eq!(request.param("query.serviceName"), Some("payment-gateway"));
            assert_eq!(request.param("query.searchDepth"), Some("100"));
            let time = |name: &str| {
                chrono::DateTime::parse_from_rfc3339(request.param(name).unwrap())
                    .unwrap()
                    .timestamp_millis()
            };
            assert_eq!(time("query.startTimeMin"), since);
            assert!((now_ms() - time("query.startTimeMax")).abs() < 60_000);
        }
    }
}

#[tokio::test]
async fn slowest_spans_fall_back_to_the_v1_search_and_remember_it() {
    // Jaeger before api_v3 answers /api/v3/traces with its UI's page; behind a proxy that
    // forwards only /api/, with a plain 404. Either way the route is missing.
    for ui in [true, false] {
        let server = JaegerServer::start().await.unwrap();
        server.serve(Apis::V1Only);
        server.serve_ui(ui);
        slow_database_traces(&server);
        let since = now_ms() - 10 * 60 * 1000;
        let report = run(
            SLOWEST,
            &[("since", Value::Time(since))],
            toolbox(Some(config(&server)), Topology::default()),
        )
        .await;
        assert_the_database_is_the_hotspot(&output(&report, "spans"));
        let paths: Vec<String> = server
            .requests()
            .iter()
            .map(|request| request.path.clone())
            .collect();
        // v3 once, found missing; then v1, also for the second call.
        assert_eq!(
            paths,
            ["/api/v3/traces", "/api/traces", "/api/traces"],
            "ui: {ui}"
        );
        let v1 = &server.requests()[1];
        assert_eq!(v1.param("service"), Some("payment-gateway"));
        assert_eq!(v1.param("start"), Some((since * 1000).to_string().as_str()));
        assert_eq!(v1.param("limit"), Some("100"));
    }
}

#[tokio::test]
async fn no_traces_is_an_empty_answer_on_both_apis() {
    for (apis, generation) in [
        (Apis::Both, ApiV3::Current),
        (Apis::Both, ApiV3::Early),
        (Apis::V1Only, ApiV3::Current),
    ] {
        let server = JaegerServer::start().await.unwrap();
        server.serve(apis);
        server.api_v3(generation);
        let report = run(
            SLOWEST,
            &[("since", Value::Time(now_ms() - 60_000))],
            toolbox(Some(config(&server)), Topology::default()),
        )
        .await;
        let spans = output(&report, "spans");
        assert_eq!(spans["spans"], Value::List(vec![]), "{apis:?}");
        assert_eq!(spans["hotspot"], Value::String(String::new()), "{apis:?}");
        if apis == Apis::Both {
            // v3's 404 "No traces found" is not a missing route: v1 is never asked.
            assert!(
                server
                    .requests()
                    .iter()
                    .all(|request| request.path == "/api/v3/traces")
            );
        }
    }
}

#[tokio::test]
async fn jaegers_refusals_are_the_failure() {
    let server = JaegerServer::start().await.unwrap();
    server.refuse(500, "elasticsearch: index_not_found_exception");
    let report = run(
        SLOWEST,
        &[("since", Value::Time(now_ms() - 60_000))],
        toolbox(Some(config(&server)), Topology::default()),
    )
    .await;
    assert_eq!(
        failure(&report, "spans"),
        "jaeger refused the request (code 500): elasticsearch: index_not_found_exception"
    );
    let report = run(
        DEPENDENCIES_LAST_HOUR,
        &[],
        toolbox(Some(config(&server)), payment_topology()),
    )
    .await;
    assert_eq!(
        failure(&report, "deep"),
        "jaeger refused the request (code 500): elasticsearch: index_not_found_exception"
    );
}

#[tokio::test]
async fn a_jaeger_that_never_answers_fails_within_the_timeout() {
    let server = JaegerServer::start().await.unwrap();
    server.stall();
    let mut config = config(&server);
    config.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let report = run(
        SLOWEST,
        &[("since", Value::Time(now_ms() - 60_000))],
        toolbox(Some(config), Topology::default()),
    )
    .await;
    assert_eq!(
        failure(&report, "spans"),
        "jaeger did not answer within 300ms"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_bearer_token_goes_to_jaeger() {
    let server = JaegerServer::start().await.unwrap();
    server.require_token("s3cret");
    server.set_dependencies(vec![Dependency::new("payment-gateway", "order-service", 1)]);
    let report = run(
        DEPENDENCIES_LAST_HOUR,
        &[],
        toolbox(Some(config(&server)), Topology::default()),
    )
    .await;
    assert!(failure(&report, "deep").starts_with("jaeger answered HTTP 401"));
    let mut with_token = config(&server);
    with_token.bearer_token = Some("s3cret".into());
    let report = run(
        DEPENDENCIES_LAST_HOUR,
        &[],
        toolbox(Some(with_token), Topology::default()),
    )
    .await;
    assert_eq!(
        strings(&output(&report, "deep")["services"]),
        ["order-service"]
    );
    assert_eq!(
        server.requests().last().unwrap().authorization.as_deref(),
        Some("Bearer s3cret")
    );
}

#[tokio::test]
async fn slowest_spans_need_jaeger_even_with_a_topology() {
    let report = run(
        SLOWEST,
        &[("since", Value::Time(now_ms()))],
        toolbox(None, payment_topology()),
    )
    .await;
    assert_eq!(
        failure(&report, "spans"),
        "no Jaeger is configured ([jaeger] url in medic.toml)"
    );
}

/// The Rust API `diagnose` calls: `graph` and `self_times`.
#[tokio::test]
async fn the_rust_api_answers_graphs_and_self_times() {
    let server = JaegerServer::start().await.unwrap();
    let start_us = (now_ms() - 60_000) * 1000;
    // A caller whose own time is long, calling a fast callee: the caller is the hotspot.
    for index in 0..10 {
        let mut trace =
            TraceBuilder::new(index + 1, start_us + i64::try_from(index).unwrap() * 1000);
        let root = trace.span(
            "order-service",
            "GET /order",
            None,
            Duration::ZERO,
            Duration::from_millis(200),
        );
        trace.span(
            "inventory-service",
            "GET /stock",
            Some(root),
            Duration::from_millis(150),
            Duration::from_millis(20),
        );
        server.add_trace(trace.build());
    }
    let jaeger = Jaeger::new(Some(config(&server)), payment_topology(), Clock::system()).unwrap();
    let graph = jaeger
        .graph("payment-gateway", Direction::Downstream, 2, None)
        .await
        .unwrap();
    // Links derived from the traces (order → inventory) joined to the topology's.
    assert_eq!(
        graph.services,
        ["order-service", "payments-db", "inventory-service"]
    );
    assert!(graph.edges.contains(&Edge {
        parent: "order-service".into(),
        child: "inventory-service".into(),
        calls: 10,
    }));
    let times = jaeger
        .self_times("order-service", now_ms() - 120_000, now_ms())
        .await
        .unwrap();
    assert_eq!(times.len(), 2);
    assert_eq!(
        (times[0].service.as_str(), times[0].operation.as_str()),
        ("order-service", "GET /order")
    );
    assert!((times[0].p99_self_ms - 180.0).abs() < 1e-9, "{times:?}");
    assert!((times[0].share - 0.9).abs() < 1e-9, "{times:?}");
    assert!((times[1].p99_self_ms - 20.0).abs() < 1e-9, "{times:?}");
}

/// A loopback listener that answers every request with `answer` (status line, headers and
/// body as given), then `extra` zero bytes, and closes.
async fn raw_server(answer: String, extra: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let mut left = extra;
                while left > 0 {
                    let size = left.min(chunk.len());
                    if stream.write_all(&chunk[..size]).await.is_err() {
                        return;
                    }
                    left -= size;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

fn http_answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// What Jaeger never answers: each is an error saying what was wrong, never a graph.
#[tokio::test]
async fn answers_jaeger_never_gives_are_errors_naming_what_was_wrong() {
    let cases = [
        (
            http_answer("200 OK", "application/json", "not json"),
            0,
            "jaeger's answer is not JSON (expected ident at line 1 column 2): \"not json\"",
        ),
        (
            http_answer("502 Bad Gateway", "text/html", "<html>Bad Gateway</html>"),
            0,
            "jaeger answered HTTP 502 without a query API answer: \"<html>Bad Gateway</html>\"",
        ),
        (
            http_answer("200 OK", "application/json", r#"{"data": [{"parent": "a"}]}"#),
            0,
            "jaeger's answer is not the query API's: data[0] has no `child`",
        ),
        // A redirect is not followed (it could lead the token elsewhere).
        (
            "HTTP/1.1 302 Found\r\nlocation: http://192.0.2.1/api/dependencies\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
            0,
            "jaeger answered HTTP 302 without a query API answer: (empty)",
        ),
        (
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                17 * 1024 * 1024
            ),
            17 * 1024 * 1024,
            "jaeger's answer is larger than 16 MiB, so it was not read",
        ),
    ];
    for (answer, extra, expected) in cases {
        let url = raw_server(answer, extra).await;
        let config = JaegerConfig {
            url,
            timeout: Duration::from_secs(10),
            bearer_token: Some("s3cret".into()),
        };
        let report = run(
            DEPENDENCIES_LAST_HOUR,
            &[],
            toolbox(Some(config), Topology::default()),
        )
        .await;
        assert_eq!(failure(&report, "deep"), expected);
    }
}

/// `Jaeger::check`, for `medic doctor`: the services through api_v3, or through v1.
#[tokio::test]
async fn the_check_lists_services_through_either_api() {
    let server = JaegerServer::start().await.unwrap();
    server.add_trace(
        TraceGenerator::new(&[("payment-gateway", &["order-service"])], 3)
            .trace("payment-gateway", (now_ms() - 1000) * 1000),
    );
    let jaeger = Jaeger::new(Some(config(&server)), Topology::default(), Clock::system()).unwrap();
    assert_eq!(jaeger.check().await.unwrap(), "api_v3 lists 2 services");
    server.serve(Apis::V1Only);
    assert_eq!(
        jaeger.check().await.unwrap(),
        "the v1 API lists 2 services (api_v3 is not served; traces are read through the v1 search)"
    );
    server.refuse(503, "storage is down");
    assert_eq!(
        jaeger.check().await.unwrap_err().to_string(),
        "jaeger refused the request (code 503): storage is down"
    );
    let unconfigured = Jaeger::new(None, Topology::default(), Clock::system()).unwrap();
    assert_eq!(
        unconfigured.check().await.unwrap_err().to_string(),
        "no Jaeger is configured ([jaeger] url in medic.toml)"
    );
}
