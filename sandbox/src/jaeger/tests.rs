//! The server against the fixtures of `sandbox/fixtures/jaeger/` (whose shapes come from
//! Jaeger's sources, see the README there), and the switches, the builder and the generator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use super::*;

/// 2026-11-27T11:47:40Z in microseconds.
const T0: i64 = 1_795_780_060_000_000;

fn fixture(name: &str) -> Json {
    let path = format!("{}/fixtures/jaeger/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// gw calls pay, which calls the database.
fn checkout_trace() -> Trace {
    let mut trace = TraceBuilder::new(0x96_0000_0000_0000_00a0, T0);
    let root = trace.span(
        "payment-gateway",
        "POST /pay",
        None,
        Duration::ZERO,
        Duration::from_millis(120),
    );
    let order = trace.span(
        "order-service",
        "GET /order",
        Some(root),
        Duration::from_millis(5),
        Duration::from_millis(100),
    );
    trace.span(
        "payments-db",
        "SELECT",
        Some(order),
        Duration::from_millis(10),
        Duration::from_millis(80),
    );
    trace.build()
}

struct Got {
    status: u16,
    content_type: String,
    body: String,
}

async fn get(server: &JaegerServer, path_and_query: &str) -> Got {
    let response = reqwest::get(format!("{}{path_and_query}", server.url()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    Got {
        status,
        content_type,
        body: response.text().await.unwrap(),
    }
}

fn json_of(got: &Got) -> Json {
    serde_json::from_str(&got.body).unwrap_or_else(|error| panic!("{error}: {}", got.body))
}

#[tokio::test]
async fn v1_answers_match_the_fixtures() {
    let server = JaegerServer::start().await.unwrap();
    server.add_trace(checkout_trace());
    let services = get(&server, "/api/services").await;
    assert_eq!(
        (services.status, services.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(json_of(&services), fixture("v1_services.json"));
    let start = T0 - 1_000_000;
    let end = T0 + 1_000_000;
    let traces = get(
        &server,
        &format!("/api/traces?service=order-service&start={start}&end={end}&limit=20"),
    )
    .await;
    assert_eq!(traces.status, 200);
    assert_eq!(json_of(&traces), fixture("v1_traces.json"));
    let dependencies = get(
        &server,
        &format!(
            "/api/dependencies?endTs={}&lookback=60000",
            T0 / 1000 + 30_000
        ),
    )
    .await;
    assert_eq!(json_of(&dependencies), fixture("v1_dependencies.json"));
    let refused = get(&server, "/api/traces?start=1").await;
    assert_eq!(
        (refused.status, refused.content_type.as_str()),
        (400, "text/plain; charset=utf-8")
    );
    assert!(refused.body.ends_with('\n'));
    assert_eq!(json_of(&refused), fixture("v1_error.json"));
    // Outside the window: none, as an empty list.
    let none = get(&server, "/api/traces?service=order-service&start=1&end=2").await;
    assert_eq!(json_of(&none)["data"], json!([]));
}

#[tokio::test]
async fn v3_answers_match_the_fixtures() {
    let server = JaegerServer::start().await.unwrap();
    server.add_trace(checkout_trace());
    let services = get(&server, "/api/v3/services").await;
    assert_eq!(json_of(&services), fixture("v3_services.json"));
    let traces = get(
        &server,
        "/api/v3/traces?query.service_name=payments-db&query.start_time_min=2026-11-27T11:47:39Z\
         &query.start_time_max=2026-11-27T12:47:41.5%2B01:00&query.num_traces=20",
    )
    .await;
    assert_eq!(traces.status, 200, "{}", traces.body);
    assert_eq!(json_of(&traces), fixture("v3_traces.json"));
    let none = get(
        &server,
        "/api/v3/traces?query.service_name=payments-db&query.start_time_min=2020-01-01T00:00:00Z\
         &query.start_time_max=2020-01-01T00:00:01Z",
    )
    .await;
    assert_eq!(
        (none.status, none.content_type.as_str()),
        (404, "text/plain; charset=utf-8")
    );
    assert_eq!(json_of(&none), fixture("v3_no_traces.json"));
    let refused = get(&server, "/api/v3/traces?query.service_name=x").await;
    assert_eq!(refused.status, 400);
    assert_eq!(json_of(&refused), fixture("v3_error.json"));
    let malformed = get(
        &server,
        "/api/v3/traces?query.start_time_min=yesterday&query.start_time_max=2020-01-01T00:00:01Z",
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed
            .body
            .contains("malformed parameter query.start_time_min")
    );
}

#[tokio::test]
async fn api_v3_generations_read_their_parameter_names_and_answer_their_shapes() {
    let server = JaegerServer::start().await.unwrap();
    server.add_trace(checkout_trace());
    let window =
        "query.start_time_min=2026-11-27T11:47:39Z&query.start_time_max=2026-11-27T11:47:41Z";
    let camel = "query.startTimeMin=2026-11-27T11:47:39Z&query.startTimeMax=2026-11-27T11:47:41Z";
    let expected = fixture("v3_traces.json");
    // Today's gateway reads both spellings; the camelCase one wins.
    let both = get(&server, &format!("/api/v3/traces?query.serviceName=payments-db&query.service_name=nobody&{camel}&{window}")).await;
    assert_eq!(json_of(&both), expected);
    server.api_v3(ApiV3::CamelCaseOnly);
    let snake = get(
        &server,
        &format!("/api/v3/traces?query.service_name=payments-db&{window}"),
    )
    .await;
    assert_eq!(snake.status, 400);
    assert_eq!(json_of(&snake), fixture("v3_error.json"));
    assert_eq!(
        get(
            &server,
            &format!("/api/v3/traces?query.serviceName=payments-db&{camel}")
        )
        .await
        .status,
        200
    );
    server.api_v3(ApiV3::SnakeCase);
    let camel_only = get(
        &server,
        &format!("/api/v3/traces?query.serviceName=payments-db&{camel}"),
    )
    .await;
    assert_eq!(
        json_of(&camel_only)["error"]["message"],
        "query.start_time_min and query.start_time_max are required"
    );
    assert_eq!(
        json_of(
            &get(
                &server,
                &format!("/api/v3/traces?query.service_name=payments-db&{window}")
            )
            .await
        ),
        expected
    );
    // The first gateway: TracesData unwrapped, and `{}` for no match.
    server.api_v3(ApiV3::Early);
    let early = get(
        &server,
        &format!("/api/v3/traces?query.service_name=payments-db&{window}"),
    )
    .await;
    assert_eq!(json_of(&early), expected["result"]);
    let none = get(&server, "/api/v3/traces?query.service_name=x&query.start_time_min=2020-01-01T00:00:00Z&query.start_time_max=2020-01-01T00:00:01Z").await;
    assert_eq!((none.status, json_of(&none)), (200, json!({})));
}

#[tokio::test]
async fn the_switches_remove_routes_refuse_and_require_a_token() {
    let server = JaegerServer::start().await.unwrap();
    server.add_trace(checkout_trace());
    server.serve(Apis::V1Only);
    // Jaeger before api_v3: the UI's catch-all answers.
    let absent = get(&server, "/api/v3/traces").await;
    assert_eq!(
        (absent.status, absent.content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(absent.body.contains("Jaeger UI"));
    server.serve_ui(false);
    let absent = get(&server, "/api/v3/traces").await;
    assert_eq!(
        (absent.status, absent.body.as_str()),
        (404, "404 page not found\n")
    );
    server.serve_ui(true);
    server.serve(Apis::V3Only);
    let absent = get(&server, "/api/traces?service=x").await;
    assert_eq!(
        (absent.status, absent.body.as_str()),
        (404, "404 page not found\n")
    );
    assert_eq!(
        get(&server, "/search").await.content_type,
        "text/html; charset=utf-8"
    );
    assert_eq!(get(&server, "/api/dependencies").await.status, 200);
    assert_eq!(get(&server, "/api/v3/services").await.status, 200);
    server.refuse(500, "elasticsearch: no such index");
    let v1 = json_of(&get(&server, "/api/dependencies").await);
    assert_eq!(
        v1["errors"][0],
        json!({"code": 500, "msg": "elasticsearch: no such index"})
    );
    assert_eq!(v1["data"], Json::Null);
    let v3 = json_of(&get(&server, "/api/v3/services").await);
    assert_eq!(
        v3,
        json!({"error": {"httpCode": 500, "message": "elasticsearch: no such index"}})
    );
    server.require_token("s3cret");
    assert_eq!(get(&server, "/api/services").await.status, 401);
    let authorized = reqwest::Client::new()
        .get(format!("{}/api/services", server.url()))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status().as_u16(), 500);
    let recorded = server.requests();
    assert_eq!(
        recorded.last().unwrap().authorization.as_deref(),
        Some("Bearer s3cret")
    );
    assert_eq!(recorded.first().unwrap().path, "/api/v3/traces");
}

#[tokio::test]
async fn a_stalled_server_never_answers() {
    let server = JaegerServer::start().await.unwrap();
    server.stall();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client
        .get(format!("{}/api/services", server.url()))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn dependencies_come_from_the_traces_or_from_what_was_set() {
    let server = JaegerServer::start().await.unwrap();
    let mut generator = TraceGenerator::new(
        &[
            ("payment-gateway", &["order-service", "payments-db"]),
            ("order-service", &["inventory-service"]),
        ],
        7,
    );
    let now = now_us();
    server.add_traces(generator.traces(
        "payment-gateway",
        3,
        now - 60_000_000,
        Duration::from_secs(1),
    ));
    let links = json_of(&get(&server, "/api/dependencies").await);
    assert_eq!(
        links["data"],
        json!([
            {"parent": "order-service", "child": "inventory-service", "callCount": 3},
            {"parent": "payment-gateway", "child": "order-service", "callCount": 3},
            {"parent": "payment-gateway", "child": "payments-db", "callCount": 3},
        ])
    );
    server.set_dependencies(vec![]);
    assert_eq!(
        json_of(&get(&server, "/api/dependencies").await)["data"],
        json!([])
    );
}

#[test]
fn the_generator_is_deterministic_and_slows_only_the_slow_service() {
    let graph: &[(&str, &[&str])] = &[
        ("payment-gateway", &["order-service"]),
        ("order-service", &["inventory-db"]),
    ];
    let make = || {
        TraceGenerator::new(graph, 42)
            .slow("inventory-db", Duration::from_millis(300))
            .traces("payment-gateway", 5, T0, Duration::from_secs(1))
    };
    let traces = make();
    assert_eq!(traces, make());
    for trace in &traces {
        assert_eq!(trace.spans.len(), 3);
        let [gateway, order, db] = [&trace.spans[0], &trace.spans[1], &trace.spans[2]];
        assert_eq!(db.operation, "SELECT");
        assert_eq!(order.parent_id.as_deref(), Some(gateway.span_id.as_str()));
        assert_eq!(db.parent_id.as_deref(), Some(order.span_id.as_str()));
        // The database's own time holds the delay; its callers only wait (a few ms more).
        assert!(db.duration_us > 300_000, "{db:?}");
        assert!(order.duration_us - db.duration_us < 10_000, "{order:?}");
        assert!(
            order.start_us < db.start_us
                && db.start_us + db.duration_us < order.start_us + order.duration_us
        );
    }
    // A cyclic graph still ends.
    let cyclic = TraceGenerator::new(&[("a", &["b"]), ("b", &["a"])], 1).trace("a", T0);
    assert_eq!(cyclic.spans.len(), 2);
}

#[test]
fn rfc3339_parses_as_go_reads_it() {
    assert_eq!(parse_rfc3339_us("2026-11-27T11:47:40Z"), Some(T0));
    assert_eq!(
        parse_rfc3339_us("2026-11-27T11:47:40.250Z"),
        Some(T0 + 250_000)
    );
    assert_eq!(
        parse_rfc3339_us("2026-11-27T12:47:40.000001+01:00"),
        Some(T0 + 1)
    );
    assert_eq!(parse_rfc3339_us("1970-01-01T00:00:00Z"), Some(0));
    for bad in [
        "2026-11-27",
        "2026-11-27T11:47:40",
        "2026-13-01T00:00:00Z",
        "2026-11-27T11:47:40.Z",
        "x",
    ] {
        assert_eq!(parse_rfc3339_us(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn a_feed_backfills_keeps_adding_and_changes_its_slow_service() {
    let server = JaegerServer::start().await.unwrap();
    let generator = TraceGenerator::new(&[("payment-gateway", &["payments-db"])], 5)
        .slow("payments-db", Duration::from_millis(400));
    let started = now_us();
    server.feed(
        generator,
        "payment-gateway",
        Duration::from_millis(20),
        Duration::from_secs(2),
    );
    let backfilled = lock(&server.shared).traces.clone();
    assert_eq!(backfilled.len(), 100);
    assert!(
        backfilled
            .iter()
            .all(|trace| trace.start_us() >= started - 2_000_000)
    );
    server.set_slow(None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = lock(&server.shared);
    // New traces came and old ones went: about as many as before.
    assert!(
        (90..=110).contains(&state.traces.len()),
        "{}",
        state.traces.len()
    );
    let newest = state.traces.last().unwrap();
    assert!(newest.start_us() > started + 100_000, "{newest:?}");
    let db = newest
        .spans
        .iter()
        .find(|span| span.service == "payments-db")
        .unwrap();
    assert!(db.duration_us < 100_000, "{db:?}");
    assert!(
        state
            .traces
            .iter()
            .all(|trace| trace.start_us() >= started - 2_000_000)
    );
}
