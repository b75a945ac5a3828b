//! The sandbox against the recorded shapes of `sandbox/fixtures/elasticsearch/` and against
//! the behaviour the documentation describes (paging, snapshots, filters, errors, auth).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use super::{Credentials, ElasticsearchServer, base64};
use serde_json::{Value as Json, json};
use std::path::Path;

fn fixture(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/elasticsearch")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The keys at every level and the JSON type of every value; a list by its first item.
fn shape(json: &Json) -> Json {
    match json {
        Json::Null => json!("null"),
        Json::Bool(_) => json!("bool"),
        Json::Number(_) => json!("number"),
        Json::String(_) => json!("string"),
        Json::Array(items) => Json::Array(items.first().map(shape).into_iter().collect()),
        Json::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
    }
}

/// Lists of different lengths compare by their items' shapes, each; a `_source` is the
/// document's, so only its being an object is compared.
fn same_shape(found: &Json, recorded: &Json, place: &str) {
    if place.ends_with("._source") {
        assert!(found.is_object() && recorded.is_object(), "{place}");
        return;
    }
    match (found, recorded) {
        (Json::Array(found), Json::Array(recorded)) => {
            for (index, (found, recorded)) in found.iter().zip(recorded).enumerate() {
                same_shape(found, recorded, &format!("{place}[{index}]"));
            }
        }
        (Json::Object(found_fields), Json::Object(recorded_fields)) => {
            let found_keys: Vec<&String> = found_fields.keys().collect();
            let recorded_keys: Vec<&String> = recorded_fields.keys().collect();
            assert_eq!(found_keys, recorded_keys, "the keys of {place}");
            for (key, value) in found_fields {
                same_shape(value, &recorded_fields[key], &format!("{place}.{key}"));
            }
        }
        _ => assert_eq!(shape(found), shape(recorded), "{place}"),
    }
}

fn documents() -> Vec<Json> {
    (0..6)
        .map(|second| {
            let level = if second % 3 == 0 { "ERROR" } else { "INFO" };
            json!({
                "@timestamp": format!("2021-05-20T05:30:0{second}.832Z"),
                "message": format!("{level} request {second} warning"),
                "log": {"level": level},
                "service.name": if second < 5 { "search" } else { "other" },
            })
        })
        .collect()
}

async fn post(server: &ElasticsearchServer, path: &str, body: Json) -> (u16, Json) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["x-elastic-product"],
        "Elasticsearch",
        "{path}"
    );
    (status, response.json().await.unwrap())
}

async fn open(server: &ElasticsearchServer, target: &str) -> String {
    let (status, answer) = post(server, &format!("/{target}/_pit?keep_alive=1m"), json!({})).await;
    assert_eq!(status, 200, "{answer}");
    answer["id"].as_str().unwrap().to_string()
}

async fn close(server: &ElasticsearchServer, id: &str) -> (u16, Json) {
    let response = reqwest::Client::new()
        .delete(format!("{}/_pit", server.url()))
        .json(&json!({ "id": id }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn point_in_time_answers_have_the_recorded_shapes() {
    let server = ElasticsearchServer::start().await.unwrap();
    server.index("my-index-000001", documents());
    let (status, answer) = post(&server, "/my-index-000001/_pit?keep_alive=1m", json!({})).await;
    assert_eq!(status, 200);
    same_shape(&answer, &fixture("open_pit.json"), "open");
    let id = answer["id"].as_str().unwrap().to_string();

    let (status, answer) = post(
        &server,
        "/_search",
        json!({
            "size": 1,
            "pit": {"id": id, "keep_alive": "1m"},
            "sort": [{"@timestamp": {"order": "asc", "format": "strict_date_optional_time_nanos"}}],
            "track_total_hits": false,
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    same_shape(&answer, &fixture("search_pit_sorted.json"), "search");
    assert_eq!(answer["pit_id"], json!(id));
    assert_eq!(
        answer["hits"]["hits"][0]["sort"][0],
        "2021-05-20T05:30:00.832Z"
    );

    let (status, answer) = close(&server, &id).await;
    assert_eq!(status, 200);
    same_shape(&answer, &fixture("close_pit.json"), "close");
    assert_eq!(answer, json!({"succeeded": true, "num_freed": 1}));
    // Closing it again frees nothing: 404, still `succeeded`.
    assert_eq!(
        close(&server, &id).await,
        (404, json!({"succeeded": true, "num_freed": 0}))
    );
    assert_eq!(server.open_points_in_time(), 0);
}

#[tokio::test]
async fn aggregations_have_the_recorded_shapes_and_counts() {
    let server = ElasticsearchServer::start().await.unwrap();
    server.index("logs-search", documents());
    let (status, answer) = post(
        &server,
        "/logs-*/_search",
        json!({
            "size": 0,
            "track_total_hits": true,
            "aggs": {
                "errors": {"filter": {"term": {"log.level": {"value": "error", "case_insensitive": true}}}},
                "messages": {"filters": {"filters": {
                    "errors": {"match_phrase": {"message": "error"}},
                    "warnings": {"match_phrase": {"message": {"query": "Warning"}}},
                }}},
                "levels": {"terms": {"field": "log.level"}},
            },
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    same_shape(
        &answer,
        &fixture("search_aggregations.json"),
        "aggregations",
    );
    let aggregations = &answer["aggregations"];
    assert_eq!(
        answer["hits"]["total"],
        json!({"value": 6, "relation": "eq"})
    );
    assert_eq!(aggregations["errors"]["doc_count"], 2);
    assert_eq!(
        aggregations["messages"]["buckets"]["errors"]["doc_count"],
        2
    );
    assert_eq!(
        aggregations["messages"]["buckets"]["warnings"]["doc_count"],
        6
    );
    assert_eq!(
        aggregations["levels"]["buckets"],
        json!([{"key": "INFO", "doc_count": 4}, {"key": "ERROR", "doc_count": 2}])
    );
}

#[tokio::test]
async fn errors_have_the_recorded_envelopes() {
    let server = ElasticsearchServer::start().await.unwrap();
    server.index("logs-search", documents());
    let (status, answer) = post(&server, "/logs-x/_search", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(answer, fixture("error_index_not_found.json"));
    // A pattern that matches nothing is no index, not an error.
    let (status, answer) = post(&server, "/nothing-*/_search", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["hits"]["hits"], json!([]));

    let (status, answer) = post(&server, "/_search", json!({"query": {"foo": {}}})).await;
    assert_eq!(status, 400);
    let mut recorded = fixture("error_parsing.json");
    let strip = |object: &mut Json| {
        let fields = object.as_object_mut().unwrap();
        for simplified in ["line", "col", "caused_by"] {
            fields.remove(simplified);
        }
    };
    strip(&mut recorded["error"]);
    strip(&mut recorded["error"]["root_cause"][0]);
    assert_eq!(answer, recorded);

    server.require(Some(Credentials::ApiKey("a2V5OnNlY3JldA==".into())));
    let (status, answer) = post(&server, "/_search", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(answer, fixture("error_security.json"));
}

#[tokio::test]
async fn search_after_pages_a_point_in_time_that_does_not_see_later_documents() {
    let server = ElasticsearchServer::start().await.unwrap();
    // Two indices, several documents at the same millisecond: the tiebreaker keeps pages
    // from repeating or skipping any of them.
    let batch = |name: &str, count: usize| -> Vec<Json> {
        (0..count)
            .map(|index| {
                json!({
                    "@timestamp": 1_700_000_000_000_i64 + (index as i64 / 4) * 1000,
                    "message": format!("{name} {index}"),
                })
            })
            .collect()
    };
    server.index("logs-a", batch("a", 13));
    server.index("logs-b", batch("b", 12));
    server.index("other", batch("other", 5));
    let id = open(&server, "logs-*").await;
    server.index("logs-a", batch("late", 3));
    let mut seen = Vec::new();
    let mut after: Option<Json> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({
            "size": 10,
            "pit": {"id": id, "keep_alive": "1m"},
            "sort": [{"@timestamp": "asc"}],
            "_source": ["message"],
            "track_total_hits": false,
        });
        if let Some(after) = &after {
            body["search_after"] = after.clone();
        }
        let (status, answer) = post(&server, "/_search", body).await;
        assert_eq!(status, 200, "{answer}");
        let hits = answer["hits"]["hits"].as_array().unwrap().clone();
        if hits.is_empty() {
            break;
        }
        pages += 1;
        for hit in &hits {
            // A date sorts as epoch milliseconds, then the `_shard_doc` tiebreaker.
            assert_eq!(hit["sort"].as_array().unwrap().len(), 2, "{hit}");
            assert!(hit["sort"][0].is_i64() || hit["sort"][0].is_u64(), "{hit}");
            assert_eq!(hit["_source"].as_object().unwrap().len(), 1, "{hit}");
            seen.push(hit["_source"]["message"].as_str().unwrap().to_string());
        }
        after = Some(hits.last().unwrap()["sort"].clone());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 25, "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|message| message.starts_with("late") || message.starts_with("other"))
    );
    // Without a point in time, the late documents are there.
    let (_, answer) = post(&server, "/logs-a/_search", json!({"size": 0})).await;
    assert_eq!(answer["hits"]["total"]["value"], 16);
    close(&server, &id).await;
}

#[tokio::test]
async fn a_bool_filter_on_service_and_time_range_selects_the_window() {
    let server = ElasticsearchServer::start().await.unwrap();
    server.index(
        "logs-1",
        vec![
            json!({"@timestamp": "2026-03-14T09:00:00Z", "service": {"name": "checkout"}, "message": "a"}),
            json!({"@timestamp": "2026-03-14T10:00:00.000+01:00", "service.name": "checkout", "message": "b"}),
            json!({"@timestamp": "2026-03-14T09:30:00.5Z", "service.name": "checkout", "message": "c"}),
            json!({"@timestamp": "2026-03-14T10:00:00Z", "service.name": "checkout", "message": "d"}),
            json!({"@timestamp": "2026-03-14T09:10:00Z", "service.name": "payments", "message": "e"}),
        ],
    );
    let from = 1_773_478_800_000_i64; // 2026-03-14T09:00:00Z
    let until = from + 3_600_000;
    for (lower, upper) in [
        (json!(from), json!(until)),
        (json!(from.to_string()), json!(until.to_string())),
        (json!("2026-03-14T09:00:00Z"), json!("2026-03-14T10:00:00Z")),
    ] {
        let (status, answer) = post(
            &server,
            "/logs-*/_search",
            json!({
                "query": {"bool": {"filter": [
                    {"term": {"service.name": "checkout"}},
                    {"range": {"@timestamp": {"gte": lower, "lt": upper, "format": "epoch_millis"}}},
                ]}},
                "sort": [{"@timestamp": {"order": "desc"}}],
            }),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let messages: Vec<&str> = answer["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["_source"]["message"].as_str().unwrap())
            .collect();
        // b is 09:00 UTC; d is the excluded upper bound.
        assert_eq!(messages, ["c", "a", "b"], "{lower} {upper}");
    }
}

#[tokio::test]
async fn requests_outside_the_api_are_refused_in_its_words() {
    let server = ElasticsearchServer::start().await.unwrap();
    server.index("logs-1", documents());
    let id = open(&server, "logs-1").await;
    let cases = [
        (
            "/_search",
            json!({"size": 10_001}),
            400,
            "illegal_argument_exception",
        ),
        (
            "/logs-1/_search",
            json!({"pit": {"id": id}}),
            400,
            "action_request_validation_exception",
        ),
        (
            "/_search",
            json!({"pit": {"id": id}, "sort": ["@timestamp"], "search_after": [1]}),
            400,
            "illegal_argument_exception",
        ),
        (
            "/_search",
            json!({"pit": {"id": "nope"}}),
            404,
            "search_context_missing_exception",
        ),
        ("/_search", json!({"querry": {}}), 400, "parsing_exception"),
        (
            "/_search",
            json!({"query": {"bool": {"shoud": []}}}),
            400,
            "parsing_exception",
        ),
        (
            "/logs-1/_pit",
            json!({}),
            400,
            "action_request_validation_exception",
        ),
    ];
    for (path, body, status, kind) in cases {
        let (found, answer) = post(&server, path, body.clone()).await;
        assert_eq!(found, status, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["type"], kind, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["root_cause"][0]["type"], kind);
        assert_eq!(answer["status"], status);
    }
    let (_, answer) = post(
        &server,
        "/_search",
        json!({"pit": {"id": id}, "sort": ["@timestamp"], "search_after": [1]}),
    )
    .await;
    assert_eq!(
        answer["error"]["reason"],
        "search_after has 1 value(s) but sort has 2."
    );
}

#[tokio::test]
async fn credentials_are_required_once_set() {
    let server = ElasticsearchServer::start().await.unwrap();
    server.index("logs-1", documents());
    let client = reqwest::Client::new();
    let search = |authorization: Option<String>| {
        let mut request = client
            .post(format!("{}/_search", server.url()))
            .json(&json!({}));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(search(None).await, 200);
    server.require(Some(Credentials::Basic {
        username: "elastic".into(),
        password: "changeme".into(),
    }));
    assert_eq!(search(None).await, 401);
    assert_eq!(
        search(Some(format!("Basic {}", base64(b"elastic:wrong")))).await,
        401
    );
    assert_eq!(
        search(Some(format!("Basic {}", base64(b"elastic:changeme")))).await,
        200
    );
    server.require(Some(Credentials::ApiKey("a2V5OnNlY3JldA==".into())));
    assert_eq!(search(Some("ApiKey a2V5OnNlY3JldA==".into())).await, 200);
    assert_eq!(search(Some("ApiKey other".into())).await, 401);
    assert_eq!(
        server.requests().last().unwrap().authorization.as_deref(),
        Some("ApiKey other")
    );
}

#[test]
fn dates_round_trip() {
    use super::query::{format_date, parse_date};
    assert_eq!(parse_date("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_date("2026-03-14T09:00:00Z"), Some(1_773_478_800_000));
    assert_eq!(
        parse_date("2026-03-14T10:00:00+01:00"),
        Some(1_773_478_800_000)
    );
    assert_eq!(parse_date("2026-03-14"), Some(1_773_446_400_000));
    assert_eq!(
        parse_date("2026-03-14T09:00:00.123456Z"),
        Some(1_773_478_800_123)
    );
    assert_eq!(parse_date("not a date"), None);
    assert_eq!(parse_date("2026-13-01"), None);
    assert_eq!(format_date(1_773_478_800_123), "2026-03-14T09:00:00.123Z");
    assert_eq!(format_date(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(base64(b"elastic:changeme"), "ZWxhc3RpYzpjaGFuZ2VtZQ==");
}
