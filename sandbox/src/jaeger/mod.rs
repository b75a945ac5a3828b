//! An in-process Jaeger query service for tests and the demo: an axum server on loopback
//! holding traces and dependency links that a test adds directly
//! ([`JaegerServer::add_trace`], [`JaegerServer::set_dependencies`]) and answering the
//! query APIs Medic reads, in their documented shapes.
//!
//! # Served
//!
//! - The v1 HTTP JSON API the Jaeger UI uses (`cmd/query/app/http_handler.go` in
//!   jaegertracing/jaeger; <https://www.jaegertracing.io/docs/latest/apis/>):
//!   `GET /api/services`, `GET /api/traces?service=&start=&end=&limit=` (microseconds),
//!   `GET /api/dependencies?endTs=&lookback=` (milliseconds). Answers are the
//!   `structuredResponse` envelope `{"data", "total", "limit", "offset", "errors"}`; traces
//!   in the UI model (`model/json`: `traceID`, `spans[{traceID, spanID, operationName,
//!   references[{refType, traceID, spanID}], startTime, duration, tags, logs, processID,
//!   warnings}]`, `processes{p1: {serviceName, tags}}`, `warnings`), process ids `p1`, `p2`,
//!   ... in order of first use; links `{parent, child, callCount}`. Refusals are
//!   `{"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [{"code", "msg"}]}`,
//!   written by Go's `http.Error` (so `text/plain; charset=utf-8`, a trailing newline).
//! - api_v3 over HTTP (`cmd/query/app/apiv3/http_gateway.go`;
//!   <https://www.jaegertracing.io/docs/latest/architecture/apis/#api-v3>):
//!   `GET /api/v3/services` (`{"services": [...]}`) and
//!   `GET /api/v3/traces?query.service_name=&query.start_time_min=&query.start_time_max=&query.num_traces=`
//!   (RFC 3339 times, both required), answering OTLP JSON inside the gateway wrapper
//!   `{"result": {"resourceSpans": [...]}}` (hex ids, `startTimeUnixNano` and
//!   `endTimeUnixNano` as decimal strings, `service.name` as a resource attribute) and, when
//!   nothing matched, 404 with `{"error": {"httpCode": 404, "message": "No traces found"}}`.
//!   Bad parameters are 400 with the same error object. Parameter names changed over
//!   Jaeger's versions (snake_case, then camelCase with snake_case aliases, announced to
//!   become camelCase only), and the first gateway answered without the `result` wrapper;
//!   [`ApiV3`] selects the generation.
//! - Any other path is the UI's `index.html` (200, `text/html`), as the UI's catch-all
//!   (`StaticAssetsHandler.notFound`) answers, except unknown `/api/*` paths on a Jaeger with
//!   api_v3, which recent Jaeger answers with Go's `404 page not found`. Jaeger before api_v3
//!   answers `/api/v3/traces` with the UI's page, so that is what [`Apis::V1Only`] does.
//!   [`JaegerServer::serve_ui`]`(false)` answers every unknown path with the 404 (a proxy
//!   that forwards only `/api/`).
//!
//! The fixtures in `sandbox/fixtures/jaeger/` pin these shapes; `tests` checks the server
//! against them.
//!
//! # Switches
//!
//! - [`Apis`]: both APIs (Jaeger 1.x with api_v3), v1 only (Jaeger before api_v3 had an HTTP
//!   gateway: `/api/v3/*` is 404 page not found), v3 only (recent Jaeger, whose v1 search
//!   `/api/traces` is gone; `/api/dependencies` and `/api/services` stay).
//! - [`JaegerServer::refuse`]: every data route answers its API's error object (a storage
//!   failure, say). [`JaegerServer::stall`]: requests are accepted and never answered.
//! - [`JaegerServer::require_token`]: a bearer token is required (401 otherwise), as an
//!   authenticating proxy in front of the query service would; Jaeger itself has none.
//!
//! # Live traffic
//!
//! [`JaegerServer::feed`] keeps a long-running server's traces current: a backfill over the
//! retention window, then one new trace per tick from a [`TraceGenerator`], with
//! [`JaegerServer::set_slow`] to change the slow service while it runs.
//!
//! # Simplified
//!
//! - Without [`JaegerServer::set_dependencies`], links are derived from the stored traces in
//!   the window (parent span's service to child span's service, one call per span), as the
//!   in-memory store does; with it, the links set are the answer for any window (an
//!   Elasticsearch-backed Jaeger whose dependencies job ran, or did not: `vec![]`).
//! - A trace matches a search when a span of the service started in the window; matches are
//!   newest first, cut at the limit (v1 default 100, as `defaultQueryLimit`). No tag,
//!   operation or duration filters; no `lookback` parameter; no adjusters (clock skew).
//! - Every span is `kind` 2 (SERVER) with an empty `status` in OTLP; no tags, logs or events.

mod model;
#[cfg(test)]
mod tests;

pub use model::{Span, SpanRef, Trace, TraceBuilder, TraceGenerator};

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

/// Which query APIs the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Apis {
    /// v1 and api_v3, as Jaeger 1.x since api_v3's HTTP gateway.
    #[default]
    Both,
    /// v1 only: an older Jaeger (its UI's page answers `/api/v3/*`).
    V1Only,
    /// api_v3 and v1's `/api/services` and `/api/dependencies`, without the v1 search.
    V3Only,
}

/// Which generation of api_v3's HTTP gateway the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiV3 {
    /// The first gateway (Jaeger 1.x, gorilla/mux): snake_case parameters
    /// (`query.service_name`, `query.start_time_min`, `query.num_traces`), the OTLP
    /// `TracesData` written bare (`{"resourceSpans": [...]}`), and `{}` with 200 when no trace
    /// matched.
    Early,
    /// snake_case parameters, answers wrapped in `{"result": ...}`, 404 "No traces found".
    SnakeCase,
    /// Today's gateway: camelCase parameters (`query.serviceName`, `query.startTimeMin`,
    /// `query.startTimeMax`, `query.searchDepth`), the snake_case ones kept as deprecated
    /// aliases (the camelCase value wins when both are given), wrapped answers, the 404.
    #[default]
    Current,
    /// Once the snake_case aliases are gone (announced for Jaeger 2.20).
    CamelCaseOnly,
}

/// One dependency link, as `/api/dependencies` answers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
}

impl Dependency {
    pub fn new(parent: &str, child: &str, call_count: u64) -> Dependency {
        Dependency {
            parent: parent.to_string(),
            child: child.to_string(),
            call_count,
        }
    }
}

/// One request the server received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The query's parameters, decoded, in their order.
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
}

impl Recorded {
    /// The first value of the query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The newest requests kept.
const REQUESTS_KEPT: usize = 10_000;

/// The start of the Jaeger UI's page, which its catch-all answers.
const INDEX_HTML: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Jaeger UI</title></head><body><div id=\"jaeger-ui-root\"></div></body></html>";

/// `defaultQueryLimit` of Jaeger's v1 search.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Default)]
struct ServerState {
    traces: Vec<Trace>,
    dependencies: Option<Vec<Dependency>>,
    apis: Apis,
    requests: Vec<Recorded>,
    token: Option<String>,
    refusal: Option<(u16, String)>,
    stalled: bool,
    without_ui: bool,
    api_v3: ApiV3,
    feed: Option<Feed>,
}

/// Live traffic: what [`JaegerServer::feed`] generates a trace from every tick.
#[derive(Debug)]
struct Feed {
    generator: TraceGenerator,
    root: String,
    retention_us: i64,
}

/// Traces a feed backfills at most.
const BACKFILL_LIMIT: usize = 100_000;

type Shared = Arc<Mutex<ServerState>>;

fn lock(shared: &Shared) -> MutexGuard<'_, ServerState> {
    // Nothing panics while holding the lock; a poisoned state is still consistent.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running server. Dropping it shuts it down.
pub struct JaegerServer {
    shared: Shared,
    address: SocketAddr,
    background: crate::serving::Background,
    feeder: Mutex<Option<tokio::task::AbortHandle>>,
}

impl JaegerServer {
    /// Binds 127.0.0.1 on a free port and starts serving both APIs.
    pub async fn start() -> std::io::Result<JaegerServer> {
        JaegerServer::start_on(0).await
    }

    /// Binds 127.0.0.1 on `port` (0: a free one) and starts serving (`medic-sandbox`, whose
    /// servers have the fixed ports examples/medic.toml names).
    pub async fn start_on(port: u16) -> std::io::Result<JaegerServer> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(ServerState::default()));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let background = crate::serving::Background::serve(listener, app, "jaeger sandbox server");
        Ok(JaegerServer {
            shared,
            address,
            background,
            feeder: Mutex::new(None),
        })
    }

    /// Live traffic for a long-running server (the demo, `scripts/try-examples`): traces
    /// from `generator` entering at `root`, one every `every` over the last `retention`
    /// at once, then one every `every` as time passes, traces older than `retention`
    /// dropped. Replaces an earlier feed; [`JaegerServer::set_slow`] changes it while it runs.
    pub fn feed(
        &self,
        mut generator: TraceGenerator,
        root: &str,
        every: Duration,
        retention: Duration,
    ) {
        let every = every.max(Duration::from_millis(1));
        let now = now_us();
        let retention_us = model::micros(retention);
        let count = usize::try_from(retention.as_micros() / every.as_micros().max(1))
            .unwrap_or(BACKFILL_LIMIT)
            .min(BACKFILL_LIMIT);
        let first = now.saturating_sub(model::micros(every).saturating_mul(count as i64));
        let backfill = generator.traces(root, count, first, every);
        {
            let mut state = lock(&self.shared);
            state.traces.extend(backfill);
            state.feed = Some(Feed {
                generator,
                root: root.to_string(),
                retention_us,
            });
        }
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let now = now_us();
                let mut state = lock(&shared);
                let state = &mut *state;
                let Some(feed) = state.feed.as_mut() else {
                    return;
                };
                let trace = feed.generator.trace(&feed.root, now);
                let oldest = now.saturating_sub(feed.retention_us);
                state.traces.retain(|trace| trace.start_us() >= oldest);
                state.traces.push(trace);
            }
        });
        let mut feeder = self
            .feeder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(previous) = feeder.replace(task.abort_handle()) {
            previous.abort();
        }
    }

    /// Changes which service the feed makes slow (`None`: none), from the next trace on.
    pub fn set_slow(&self, slow: Option<(&str, Duration)>) {
        if let Some(feed) = lock(&self.shared).feed.as_mut() {
            feed.generator.set_slow(slow);
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Which APIs are served from now on.
    pub fn serve(&self, apis: Apis) {
        lock(&self.shared).apis = apis;
    }

    pub fn add_trace(&self, trace: Trace) {
        lock(&self.shared).traces.push(trace);
    }

    pub fn add_traces(&self, traces: impl IntoIterator<Item = Trace>) {
        lock(&self.shared).traces.extend(traces);
    }

    /// Drops the traces that started before `oldest_us` (a long-running world's retention).
    pub fn retain_since(&self, oldest_us: i64) {
        lock(&self.shared)
            .traces
            .retain(|trace| trace.start_us() >= oldest_us);
    }

    /// Which generation of api_v3 is served from now on.
    pub fn api_v3(&self, generation: ApiV3) {
        lock(&self.shared).api_v3 = generation;
    }

    /// Whether paths nothing else answers get the UI's page (the default) or a 404.
    pub fn serve_ui(&self, ui: bool) {
        lock(&self.shared).without_ui = !ui;
    }

    /// The links `/api/dependencies` answers from now on, whatever the window.
    pub fn set_dependencies(&self, dependencies: Vec<Dependency>) {
        lock(&self.shared).dependencies = Some(dependencies);
    }

    /// Every data route answers its API's error object with `status` and `message`.
    pub fn refuse(&self, status: u16, message: &str) {
        lock(&self.shared).refusal = Some((status, message.to_string()));
    }

    /// Requests are recorded and never answered.
    pub fn stall(&self) {
        lock(&self.shared).stalled = true;
    }

    /// Requires `Authorization: Bearer <token>`.
    pub fn require_token(&self, token: &str) {
        lock(&self.shared).token = Some(token.to_string());
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    /// Stops accepting, lets open connections finish (at most five seconds) and returns.
    pub async fn stop(mut self) {
        self.background.stop().await;
    }
}

impl Drop for JaegerServer {
    fn drop(&mut self) {
        if let Ok(mut feeder) = self.feeder.lock()
            && let Some(feeder) = feeder.take()
        {
            feeder.abort();
        }
        // A stalled request would hold a graceful shutdown open forever.
        self.background.abort();
    }
}

/// An answer: status, content type and body.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Answer {
    /// What Go's `json.NewEncoder(w).Encode` / jsonpb writes with a content type set.
    fn json(status: u16, body: &Json) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    /// What Go's `http.Error(w, text, status)` writes.
    fn go_error(status: u16, text: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{text}\n"),
        }
    }

    fn not_found() -> Answer {
        Answer::go_error(404, "404 page not found")
    }

    /// v1's `handleError`: the envelope with one error, through `http.Error`.
    fn v1_error(status: u16, message: &str) -> Answer {
        let body = json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": status, "msg": message}],
        });
        Answer::go_error(status, &body.to_string())
    }

    /// api_v3's `tryHandleError`: `GRPCGatewayError` through `http.Error`.
    fn v3_error(status: u16, message: &str) -> Answer {
        let body = json!({"error": {"httpCode": status, "message": message}});
        Answer::go_error(status, &body.to_string())
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let query: Vec<(String, String)> = uri.query().map(url_decode_pairs).unwrap_or_default();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let (answer, stalled) = {
        let mut state = lock(&shared);
        if state.requests.len() >= REQUESTS_KEPT {
            state.requests.remove(0);
        }
        state.requests.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: query.clone(),
            authorization: authorization.clone(),
        });
        let authorized = match &state.token {
            None => true,
            Some(token) => authorization.as_deref() == Some(format!("Bearer {token}").as_str()),
        };
        let answer = if !authorized {
            Answer::go_error(401, "Unauthorized")
        } else {
            state.answer(&method, uri.path(), &query)
        };
        (answer, state.stalled)
    };
    if stalled {
        std::future::pending::<()>().await;
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response();
    if answer.content_type.starts_with("text/plain") && !status.is_success() {
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
    }
    response
}

/// `a=1&b=x%20y` as decoded pairs (`+` is a space, as Go's `url.ParseQuery` reads it).
fn url_decode_pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

impl ServerState {
    fn answer(&self, method: &Method, path: &str, query: &[(String, String)]) -> Answer {
        let v1_search = self.apis != Apis::V3Only;
        let v3 = self.apis != Apis::V1Only;
        let route = match path {
            "/api/services" => Route::V1Services,
            "/api/traces" if v1_search => Route::V1Traces,
            "/api/dependencies" => Route::V1Dependencies,
            "/api/v3/services" if v3 => Route::V3Services,
            "/api/v3/traces" if v3 => Route::V3Traces,
            _ => return self.unrouted(path),
        };
        if method != Method::GET {
            return Answer::go_error(405, "Method Not Allowed");
        }
        let is_v3 = matches!(route, Route::V3Services | Route::V3Traces);
        if let Some((status, message)) = &self.refusal {
            return if is_v3 {
                Answer::v3_error(*status, message)
            } else {
                Answer::v1_error(*status, message)
            };
        }
        let param = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .filter(|value| !value.is_empty())
        };
        match route {
            Route::V1Services => {
                let services = self.services();
                Answer::json(
                    200,
                    &json!({"data": services, "total": services.len(), "limit": 0, "offset": 0, "errors": null}),
                )
            }
            Route::V3Services => Answer::json(200, &json!({"services": self.services()})),
            Route::V1Dependencies => {
                let now_ms = now_us() / 1000;
                let end = match param("endTs")
                    .map(|text| parse_int(text, "endTs"))
                    .transpose()
                {
                    Ok(end) => end.unwrap_or(now_ms),
                    Err(message) => return Answer::v1_error(400, &message),
                };
                let lookback = match param("lookback")
                    .map(|text| parse_int(text, "lookback"))
                    .transpose()
                {
                    Ok(lookback) => lookback.unwrap_or(24 * 3600 * 1000),
                    Err(message) => return Answer::v1_error(400, &message),
                };
                let links = self.links(end.saturating_sub(lookback), end);
                let data: Vec<Json> = links
                    .iter()
                    .map(|link| json!({"parent": link.parent, "child": link.child, "callCount": link.call_count}))
                    .collect();
                Answer::json(
                    200,
                    &json!({"data": data, "total": 0, "limit": 0, "offset": 0, "errors": null}),
                )
            }
            Route::V1Traces => {
                let Some(service) = param("service") else {
                    return Answer::v1_error(400, "parameter 'service' is required");
                };
                let now = now_us();
                let number = |name: &str, default: i64| -> Result<i64, String> {
                    param(name).map_or(Ok(default), |text| parse_int(text, name))
                };
                let (start, end, limit) = match (
                    number("start", now - 3600 * 1_000_000),
                    number("end", now),
                    number("limit", DEFAULT_LIMIT as i64),
                ) {
                    (Ok(start), Ok(end), Ok(limit)) => (start, end, limit),
                    (Err(message), _, _) | (_, Err(message), _) | (_, _, Err(message)) => {
                        return Answer::v1_error(400, &message);
                    }
                };
                let limit = usize::try_from(limit).unwrap_or(0);
                let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
                let data: Vec<Json> = self
                    .search(service, start, end, limit)
                    .into_iter()
                    .map(v1_trace)
                    .collect();
                Answer::json(
                    200,
                    &json!({"data": data, "total": 0, "limit": 0, "offset": 0, "errors": null}),
                )
            }
            Route::V3Traces => {
                let generation = self.api_v3;
                // Which spelling of a parameter this generation reads, canonical first.
                let resolve = |canonical: &'static str,
                               snake: &'static [&'static str]|
                 -> Option<(&str, &'static str)> {
                    let names: Vec<&'static str> = match generation {
                        ApiV3::Early | ApiV3::SnakeCase => snake.to_vec(),
                        ApiV3::Current => std::iter::once(canonical)
                            .chain(snake.iter().copied())
                            .collect(),
                        ApiV3::CamelCaseOnly => vec![canonical],
                    };
                    names
                        .into_iter()
                        .find_map(|name| param(name).map(|value| (value, name)))
                };
                let (Some((min, min_name)), Some((max, max_name))) = (
                    resolve("query.startTimeMin", &["query.start_time_min"]),
                    resolve("query.startTimeMax", &["query.start_time_max"]),
                ) else {
                    return Answer::v3_error(
                        400,
                        match generation {
                            ApiV3::Early | ApiV3::SnakeCase => {
                                "query.start_time_min and query.start_time_max are required"
                            }
                            ApiV3::Current | ApiV3::CamelCaseOnly => {
                                "query.startTimeMin and query.startTimeMax are required"
                            }
                        },
                    );
                };
                let malformed = |name: &str, text: &str| {
                    Answer::v3_error(
                        400,
                        &format!(
                            "malformed parameter {name}: parsing time {text:?} as \"2006-01-02T15:04:05.999999999Z07:00\": cannot parse"
                        ),
                    )
                };
                let Some(min_us) = parse_rfc3339_us(min) else {
                    return malformed(min_name, min);
                };
                let Some(max_us) = parse_rfc3339_us(max) else {
                    return malformed(max_name, max);
                };
                let depth = match generation {
                    ApiV3::Early | ApiV3::SnakeCase => resolve("", &["query.num_traces"]),
                    _ => resolve(
                        "query.searchDepth",
                        &["query.num_traces", "query.search_depth"],
                    ),
                };
                let limit = match depth {
                    None => DEFAULT_LIMIT,
                    Some((text, name)) => match text.parse::<usize>() {
                        Ok(0) => DEFAULT_LIMIT,
                        Ok(limit) => limit,
                        Err(_) => {
                            return Answer::v3_error(
                                400,
                                &format!(
                                    "malformed parameter {name}: strconv.Atoi: parsing {text:?}: invalid syntax"
                                ),
                            );
                        }
                    },
                };
                let service = resolve("query.serviceName", &["query.service_name"])
                    .map_or("", |(value, _)| value);
                let found = self.search(service, min_us, max_us, limit);
                if generation == ApiV3::Early {
                    // The first HTTP gateway wrote TracesData itself, and nothing (jsonpb
                    // leaves out an empty list) when no trace matched.
                    let resource_spans: Vec<Json> =
                        found.into_iter().flat_map(v3_resource_spans).collect();
                    let body = if resource_spans.is_empty() {
                        json!({})
                    } else {
                        json!({"resourceSpans": resource_spans})
                    };
                    return Answer {
                        status: 200,
                        content_type: "text/plain; charset=utf-8",
                        body: body.to_string(),
                    };
                }
                if found.is_empty() {
                    return Answer::v3_error(404, "No traces found");
                }
                let resource_spans: Vec<Json> =
                    found.into_iter().flat_map(v3_resource_spans).collect();
                Answer {
                    // jsonpb writes without a content type; Go sniffs JSON as text/plain.
                    status: 200,
                    content_type: "text/plain; charset=utf-8",
                    body: json!({"result": {"resourceSpans": resource_spans}}).to_string(),
                }
            }
        }
    }

    /// The answer to a path no API route takes: the UI's page, or Go's 404.
    fn unrouted(&self, path: &str) -> Answer {
        let api = path == "/api" || path.starts_with("/api/");
        if self.without_ui || (api && self.apis != Apis::V1Only) {
            return Answer::not_found();
        }
        Answer {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: INDEX_HTML.to_string(),
        }
    }

    /// Every service with a span, by name.
    fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self
            .traces
            .iter()
            .flat_map(|trace| trace.spans.iter().map(|span| span.service.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        services.sort();
        services
    }

    /// Traces with a span of `service` (any service when empty) started in the window,
    /// newest first, at most `limit`.
    fn search(&self, service: &str, min_us: i64, max_us: i64, limit: usize) -> Vec<&Trace> {
        let mut found: Vec<&Trace> = self
            .traces
            .iter()
            .filter(|trace| {
                if service.is_empty() {
                    trace.start_us() >= min_us && trace.start_us() <= max_us
                } else {
                    trace.has_span_of(service, min_us, max_us)
                }
            })
            .collect();
        found.sort_by(|a, b| {
            b.start_us()
                .cmp(&a.start_us())
                .then_with(|| a.trace_id.cmp(&b.trace_id))
        });
        found.truncate(limit);
        found
    }

    /// The links of the window `[from_ms, to_ms]`, by parent then child.
    fn links(&self, from_ms: i64, to_ms: i64) -> Vec<Dependency> {
        if let Some(set) = &self.dependencies {
            let mut set = set.clone();
            set.sort();
            return set;
        }
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for trace in &self.traces {
            let start_ms = trace.start_us() / 1000;
            if start_ms < from_ms || start_ms > to_ms {
                continue;
            }
            let services: BTreeMap<&str, &str> = trace
                .spans
                .iter()
                .map(|span| (span.span_id.as_str(), span.service.as_str()))
                .collect();
            for span in &trace.spans {
                let parent = span
                    .parent_id
                    .as_deref()
                    .and_then(|parent| services.get(parent));
                if let Some(parent) = parent
                    && *parent != span.service
                {
                    *counts
                        .entry((parent.to_string(), span.service.clone()))
                        .or_insert(0) += 1;
                }
            }
        }
        counts
            .into_iter()
            .map(|((parent, child), call_count)| Dependency {
                parent,
                child,
                call_count,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Route {
    V1Services,
    V1Traces,
    V1Dependencies,
    V3Services,
    V3Traces,
}

/// A trace in the UI model (`model/json`).
fn v1_trace(trace: &Trace) -> Json {
    let mut process_of: BTreeMap<&str, String> = BTreeMap::new();
    let mut processes = serde_json::Map::new();
    for span in &trace.spans {
        if !process_of.contains_key(span.service.as_str()) {
            let id = format!("p{}", process_of.len() + 1);
            processes.insert(id.clone(), json!({"serviceName": span.service, "tags": []}));
            process_of.insert(&span.service, id);
        }
    }
    let spans: Vec<Json> = trace
        .spans
        .iter()
        .map(|span| {
            let references: Vec<Json> = span
                .parent_id
                .iter()
                .map(|parent| json!({"refType": "CHILD_OF", "traceID": trace.trace_id, "spanID": parent}))
                .collect();
            json!({
                "traceID": trace.trace_id,
                "spanID": span.span_id,
                "operationName": span.operation,
                "references": references,
                "startTime": span.start_us,
                "duration": span.duration_us,
                "tags": [],
                "logs": [],
                "processID": process_of.get(span.service.as_str()),
                "warnings": null,
            })
        })
        .collect();
    json!({"traceID": trace.trace_id, "spans": spans, "processes": processes, "warnings": null})
}

/// A trace as OTLP `ResourceSpans`, one per service in order of first span.
fn v3_resource_spans(trace: &Trace) -> Vec<Json> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_service: BTreeMap<&str, Vec<Json>> = BTreeMap::new();
    for span in &trace.spans {
        if !by_service.contains_key(span.service.as_str()) {
            order.push(&span.service);
        }
        let end_us = span.start_us.saturating_add(span.duration_us);
        by_service.entry(&span.service).or_default().push(json!({
            "traceId": trace.trace_id,
            "spanId": span.span_id,
            "parentSpanId": span.parent_id.clone().unwrap_or_default(),
            "name": span.operation,
            "kind": 2,
            "startTimeUnixNano": (i128::from(span.start_us) * 1000).to_string(),
            "endTimeUnixNano": (i128::from(end_us) * 1000).to_string(),
            "status": {},
        }));
    }
    order
        .into_iter()
        .map(|service| {
            json!({
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {}, "spans": by_service.remove(service).unwrap_or_default()}],
            })
        })
        .collect()
}

/// v1's integer parameters, with the message of its `newParseError` / strconv.
fn parse_int(text: &str, name: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|_| {
        format!(
            "unable to parse param '{name}': strconv.ParseInt: parsing {text:?}: invalid syntax"
        )
    })
}

/// RFC 3339 with optional fraction and a `Z` or `±hh:mm` offset (what Go's
/// `time.Parse(time.RFC3339Nano, ...)` reads), as microseconds since the Unix epoch.
pub(crate) fn parse_rfc3339_us(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|byte| byte.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let at = |index: usize| bytes.get(index).copied();
    if at(4) != Some(b'-') || at(7) != Some(b'-') || !matches!(at(10), Some(b'T' | b't')) {
        return None;
    }
    if at(13) != Some(b':') || at(16) != Some(b':') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut index = 19;
    let mut micros = 0_i64;
    if at(index) == Some(b'.') {
        index += 1;
        let start = index;
        while at(index).is_some_and(|byte| byte.is_ascii_digit()) {
            index += 1;
        }
        let fraction = text.get(start..index)?;
        if fraction.is_empty() {
            return None;
        }
        let padded: String = fraction
            .chars()
            .chain(std::iter::repeat('0'))
            .take(6)
            .collect();
        micros = padded.parse().ok()?;
    }
    let offset_seconds = match text.get(index..)? {
        "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if zone.len() != 6 || zone.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let hours: i64 = zone.get(1..3)?.parse().ok()?;
            let minutes: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

/// Howard Hinnant's `days_from_civil`: a proleptic Gregorian date to days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}
