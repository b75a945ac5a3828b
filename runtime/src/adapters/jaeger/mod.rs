//! `trace.dependencies` and `trace.slowest_spans`: the Jaeger of `[jaeger]` in medic.toml,
//! merged with the declared `[topology]`.
//!
//! What is guaranteed:
//! - `trace.dependencies` asks `GET /api/dependencies?endTs=&lookback=` (milliseconds;
//!   `endTs` now, `lookback` back to `since`, an hour when it is none), merges the links with
//!   the topology (an edge from either counts; Jaeger's call counts, 0 for declared-only
//!   edges) and walks them breadth-first to `depth` hops in the asked direction ([`graph`]).
//!   Without `[jaeger]` the topology alone answers;
//! - `trace.slowest_spans` reads the service's traces from api_v3 (`GET /api/v3/traces`,
//!   RFC 3339 times, each parameter under its camelCase and its older snake_case name) and
//!   falls back to the v1 search (`GET /api/traces`, microseconds) when
//!   the v3 route itself is missing (a 404 without api_v3's error object, or the UI's HTML
//!   page answered in its place) — not when v3 found no traces (its 404 "No traces found").
//!   The API that answered is remembered for later calls. Time is attributed along each
//!   trace's critical path ([`critical`]), so a slow callee is not blamed on its caller;
//! - requests go only to `[jaeger] url`, with the bearer token (marked sensitive) only
//!   there; no proxy from the environment; redirects are not followed; every call has the
//!   configured timeout; answers are read as a stream and refused past [`ANSWER_LIMIT`];
//! - Jaeger's refusals (v1 `errors[{code, msg}]`, api_v3 `error{httpCode, message}`) are the
//!   call's failure with Jaeger's message; an answer of another shape is an error naming
//!   the place that was wrong, never a made-up graph or span;
//! - every list in an answer is in a fixed order (see [`graph::Graph`] and
//!   [`Jaeger::self_times`]).

pub mod critical;
pub mod graph;
pub mod wire;

pub use graph::{Direction, Edge, Graph};

use super::args::{ArgError, Args};
use super::endpoint::excerpt;
use super::http::without_url;
use crate::executor::Clock;
use medic_compiler::plan::Value;
use reqwest::Url;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// A call's time limit when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read; a larger one is an error, not a truncated parse.
pub const ANSWER_LIMIT: usize = 16 * 1024 * 1024;

/// The window of `trace.dependencies` when `since` is none.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(3600);

/// Traces asked for per `trace.slowest_spans` (api_v3 `query.searchDepth`, v1 `limit`).
pub const TRACES_PER_CALL: usize = 100;

/// Hops walked at most, whatever `depth` asks (a service graph is never this deep).
pub const MAX_DEPTH: usize = 64;

/// The Jaeger query service asked (`[jaeger]` in medic.toml).
#[derive(Clone)]
pub struct JaegerConfig {
    /// The base URL of the query service, such as `http://127.0.0.1:16686`.
    pub url: String,
    /// Time limit of one call.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer ...`; a secret.
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for JaegerConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JaegerConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JaegerError {
    #[error("no Jaeger is configured ([jaeger] url in medic.toml)")]
    NotConfigured,
    #[error("no Jaeger and no [topology] are configured in medic.toml")]
    NoGraph,
    #[error("[jaeger] url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot build the Jaeger client: {0}")]
    Client(String),
    #[error(transparent)]
    Argument(#[from] ArgError),
    #[error("`{function}`: {reason}")]
    BadArgument { function: String, reason: String },
    /// No answer at all: a failure, so the task's `retry` and `on failure` apply.
    #[error("jaeger could not be reached: {0}")]
    NoAnswer(String),
    #[error("jaeger did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("jaeger's answer could not be read: {0}")]
    Unreadable(String),
    #[error("jaeger's answer is larger than {} MiB, so it was not read", ANSWER_LIMIT / (1024 * 1024))]
    TooLarge,
    /// Jaeger answered with its own error object.
    #[error("jaeger refused the request{}: {message}", code.map(|code| format!(" (code {code})")).unwrap_or_default())]
    Refused { code: Option<i64>, message: String },
    /// An HTTP error status without Jaeger's error object (a proxy's page, say).
    #[error("jaeger answered HTTP {status} without a query API answer: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("jaeger's answer is not JSON ({reason}): {excerpt}")]
    NotJson { reason: String, excerpt: String },
    #[error("jaeger's answer is not the query API's: {0}")]
    Shape(String),
    #[error(
        "jaeger serves neither api_v3 (/api/v3/traces) nor the v1 search (/api/traces) at [jaeger] url"
    )]
    NoTraceApi,
}

/// One operation's part of the traced time, for `diagnose` and `trace.slowest_spans`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTime {
    pub service: String,
    pub operation: String,
    /// 99th percentile of its critical-path (self) time per trace, in milliseconds.
    pub p99_self_ms: f64,
    /// Its critical-path time over the length of all traces read, from 0 to 1.
    pub share: f64,
}

/// The decoded arguments of `trace.dependencies`.
#[derive(Debug, Clone, PartialEq)]
pub struct DependenciesCall {
    pub service: String,
    pub direction: Direction,
    pub depth: usize,
    /// Milliseconds since the Unix epoch; none means the last [`DEFAULT_LOOKBACK`].
    pub since: Option<i64>,
}

impl DependenciesCall {
    pub fn decode(mut values: BTreeMap<String, Value>) -> Result<DependenciesCall, JaegerError> {
        const FUNCTION: &str = "trace.dependencies";
        let direction = match values.remove("direction") {
            Some(Value::Enum { name, .. }) => {
                Direction::from_name(&name).ok_or_else(|| JaegerError::BadArgument {
                    function: FUNCTION.into(),
                    reason: format!("`direction` {name:?} is not upstream, downstream or both"),
                })?
            }
            Some(other) => {
                return Err(ArgError::WrongType {
                    function: FUNCTION.into(),
                    name: "direction".into(),
                    expected: "a Direction",
                    found: other.type_name(),
                }
                .into());
            }
            None => {
                return Err(ArgError::Missing {
                    function: FUNCTION.into(),
                    name: "direction".into(),
                }
                .into());
            }
        };
        let mut args = Args::new(FUNCTION, values);
        let service = args.string("service")?;
        let depth = args.int("depth")?;
        let since = args.optional_time("since")?;
        args.finish()?;
        let depth = usize::try_from(depth).map_err(|_| JaegerError::BadArgument {
            function: FUNCTION.into(),
            reason: format!("`depth` must be zero or more, not {depth}"),
        })?;
        Ok(DependenciesCall {
            service,
            direction,
            depth,
            since,
        })
    }
}

/// The decoded arguments of `trace.slowest_spans`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowestSpansCall {
    pub service: String,
    /// Milliseconds since the Unix epoch.
    pub since: i64,
    pub limit: usize,
}

impl SlowestSpansCall {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<SlowestSpansCall, JaegerError> {
        const FUNCTION: &str = "trace.slowest_spans";
        let mut args = Args::new(FUNCTION, values);
        let service = args.string("service")?;
        let since = args.time("since")?;
        let limit = args.int("limit")?;
        args.finish()?;
        let limit = usize::try_from(limit).map_err(|_| JaegerError::BadArgument {
            function: FUNCTION.into(),
            reason: format!("`limit` must be zero or more, not {limit}"),
        })?;
        Ok(SlowestSpansCall {
            service,
            since,
            limit,
        })
    }
}

/// Which trace API a Jaeger was found to serve (kept in an [`AtomicU8`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceApi {
    V3 = 1,
    V1 = 2,
}

/// How one query API route answered.
enum Answer {
    Json {
        status: u16,
        json: Json,
    },
    /// The route is not served (a 404 without the API's error object, or an HTML page).
    Absent,
}

/// The client of one configured query service.
struct Client {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    bearer_token: Option<String>,
    /// 0 while unknown, else a [`TraceApi`].
    trace_api: AtomicU8,
    clock: Clock,
}

/// The Jaeger adapter: the query service of the configuration, if any, and the topology.
pub struct Jaeger {
    client: Option<Client>,
    topology: super::topology::Topology,
    clock: Clock,
}

impl Jaeger {
    pub fn new(
        config: Option<JaegerConfig>,
        topology: super::topology::Topology,
        clock: Clock,
    ) -> Result<Jaeger, JaegerError> {
        let client = match config {
            Some(config) => Some(Client::new(config, clock)?),
            None => None,
        };
        Ok(Jaeger {
            client,
            topology,
            clock,
        })
    }

    /// Runs `trace.dependencies` or `trace.slowest_spans` with the call's arguments.
    pub async fn call(
        &self,
        function: &str,
        values: BTreeMap<String, Value>,
    ) -> Result<Value, JaegerError> {
        if function == "trace.slowest_spans" {
            let call = SlowestSpansCall::decode(values)?;
            self.slowest_spans(&call).await
        } else {
            let call = DependenciesCall::decode(values)?;
            let graph = self
                .graph(&call.service, call.direction, call.depth, call.since)
                .await?;
            Ok(graph_value(&graph))
        }
    }

    /// The services around `service`: Jaeger's links since `since_ms` (the last hour when
    /// none) merged with the topology, walked `depth` hops in `direction`.
    pub async fn graph(
        &self,
        service: &str,
        direction: Direction,
        depth: usize,
        since_ms: Option<i64>,
    ) -> Result<Graph, JaegerError> {
        let jaeger_edges = match &self.client {
            Some(client) => client.dependencies(since_ms).await?,
            None if self.topology.is_empty() => return Err(JaegerError::NoGraph),
            None => Vec::new(),
        };
        let edges = graph::merge(&jaeger_edges, &self.topology);
        Ok(graph::walk(
            &edges,
            service,
            direction,
            depth.min(MAX_DEPTH),
        ))
    }

    /// Where the traces of `service` between `since_ms` and `until_ms` spend their time:
    /// per (service, operation) of those traces, its critical-path time; the largest share
    /// first, then by service and operation.
    pub async fn self_times(
        &self,
        service: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ServiceTime>, JaegerError> {
        Ok(self
            .operations(service, since_ms, until_ms)
            .await?
            .iter()
            .map(|operation| ServiceTime {
                service: operation.service.clone(),
                operation: operation.operation.clone(),
                p99_self_ms: operation.p99_self_us as f64 / 1000.0,
                share: operation.share,
            })
            .collect())
    }

    /// Whether the query service answers with this configuration (URL, token), for
    /// `medic doctor`: lists its services through api_v3, or through v1 when api_v3 is not
    /// served.
    pub async fn check(&self) -> Result<String, JaegerError> {
        let client = self.client.as_ref().ok_or(JaegerError::NotConfigured)?;
        client.check().await
    }

    async fn operations(
        &self,
        service: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<critical::OperationTime>, JaegerError> {
        let client = self.client.as_ref().ok_or(JaegerError::NotConfigured)?;
        let traces = client.traces(service, since_ms, until_ms).await?;
        Ok(critical::summarize(&traces))
    }

    /// `trace.slowest_spans`: the `trace.SlowSpans` record.
    async fn slowest_spans(&self, call: &SlowestSpansCall) -> Result<Value, JaegerError> {
        let operations = self
            .operations(&call.service, call.since, self.clock.now_ms())
            .await?;
        let hotspot = critical::hotspot(&operations).unwrap_or_default();
        let spans = operations
            .iter()
            .take(call.limit)
            .map(|operation| {
                Value::record([
                    (
                        "service".to_string(),
                        Value::String(operation.service.clone()),
                    ),
                    (
                        "operation".to_string(),
                        Value::String(operation.operation.clone()),
                    ),
                    (
                        "p99".to_string(),
                        // Microseconds to the nearest millisecond, a Duration's unit.
                        Value::Duration(operation.p99_self_us.saturating_add(500) / 1000),
                    ),
                    ("share".to_string(), Value::Percent(operation.share * 100.0)),
                ])
            })
            .collect();
        Ok(Value::record([
            ("spans".to_string(), Value::List(spans)),
            ("hotspot".to_string(), Value::String(hotspot)),
        ]))
    }
}

/// The `trace.Dependencies` record of a graph.
fn graph_value(graph: &Graph) -> Value {
    Value::record([
        (
            "services".to_string(),
            Value::List(
                graph
                    .services
                    .iter()
                    .map(|service| Value::String(service.clone()))
                    .collect(),
            ),
        ),
        (
            "edges".to_string(),
            Value::List(
                graph
                    .edges
                    .iter()
                    .map(|edge| {
                        Value::record([
                            ("parent".to_string(), Value::String(edge.parent.clone())),
                            ("child".to_string(), Value::String(edge.child.clone())),
                            (
                                "calls".to_string(),
                                Value::Int(i64::try_from(edge.calls).unwrap_or(i64::MAX)),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

impl Client {
    fn new(config: JaegerConfig, clock: Clock) -> Result<Client, JaegerError> {
        let bad = |reason: &str| JaegerError::BadUrl {
            url: config.url.clone(),
            reason: reason.to_string(),
        };
        let base = super::endpoint::base_url(&config.url, "bearer_token_env or bearer_token_file")
            .map_err(|reason| bad(&reason))?;
        let http = super::endpoint::api_client()
            .map_err(|error| JaegerError::Client(error.to_string()))?;
        Ok(Client {
            http,
            base,
            timeout: config.timeout,
            bearer_token: config.bearer_token,
            trace_api: AtomicU8::new(0),
            clock,
        })
    }

    /// The URL of `segments` under the base URL (which may have a path of its own).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `GET /api/dependencies`: the links of the window back to `since_ms`.
    async fn dependencies(&self, since_ms: Option<i64>) -> Result<Vec<Edge>, JaegerError> {
        let end = self.clock.now_ms();
        let default_lookback = i64::try_from(DEFAULT_LOOKBACK.as_millis()).unwrap_or(i64::MAX);
        let lookback = match since_ms {
            Some(since) => end.saturating_sub(since).max(1),
            None => default_lookback,
        };
        let url = self.endpoint(&["api", "dependencies"]);
        let query = [
            ("endTs", end.to_string()),
            ("lookback", lookback.to_string()),
        ];
        match self.get(url, &query).await? {
            Answer::Json { status, json } => {
                let edges = wire::v1_dependencies(&json);
                success_or_status(status, &json, edges)
            }
            Answer::Absent => Err(JaegerError::Status {
                status: 404,
                excerpt: "/api/dependencies is not served".into(),
            }),
        }
    }

    /// `GET /api/v3/services`, else `GET /api/services`: how many services Jaeger knows.
    async fn check(&self) -> Result<String, JaegerError> {
        let count = |json: &Json, key: &str| -> Result<usize, JaegerError> {
            json.get(key)
                .and_then(Json::as_array)
                .map(Vec::len)
                .ok_or_else(|| {
                    JaegerError::Shape(format!("the services answer has no `{key}` list"))
                })
        };
        match self
            .get(self.endpoint(&["api", "v3", "services"]), &[])
            .await?
        {
            Answer::Json { status, json } => {
                let decoded = match wire::v3_refusal(&json) {
                    Some((code, message)) => Err(JaegerError::Refused { code, message }),
                    None => count(&json, "services"),
                };
                let services = success_or_status(status, &json, decoded)?;
                Ok(format!("api_v3 lists {services} services"))
            }
            Answer::Absent => match self.get(self.endpoint(&["api", "services"]), &[]).await? {
                Answer::Json { status, json } => {
                    let decoded = match wire::v1_refusal(&json) {
                        Some(refusal) => Err(refusal),
                        // `data` is null when Jaeger knows no service.
                        None if json.get("data").is_some_and(Json::is_null) => Ok(0),
                        None => count(&json, "data"),
                    };
                    let services = success_or_status(status, &json, decoded)?;
                    Ok(format!(
                        "the v1 API lists {services} services (api_v3 is not served; traces are read through the v1 search)"
                    ))
                }
                Answer::Absent => Err(JaegerError::NoTraceApi),
            },
        }
    }

    /// The traces of `service` that started in the window, from the API this Jaeger serves.
    async fn traces(
        &self,
        service: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<critical::Trace>, JaegerError> {
        let order = match self.trace_api.load(Ordering::Relaxed) {
            2 => [TraceApi::V1, TraceApi::V3],
            _ => [TraceApi::V3, TraceApi::V1],
        };
        for api in order {
            let found = match api {
                TraceApi::V3 => self.v3_traces(service, since_ms, until_ms).await?,
                TraceApi::V1 => self.v1_traces(service, since_ms, until_ms).await?,
            };
            if let Some(traces) = found {
                self.trace_api.store(api as u8, Ordering::Relaxed);
                return Ok(traces);
            }
        }
        Err(JaegerError::NoTraceApi)
    }

    /// api_v3's `GET /api/v3/traces`; `None` when the route is not served.
    async fn v3_traces(
        &self,
        service: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Option<Vec<critical::Trace>>, JaegerError> {
        let url = self.endpoint(&["api", "v3", "traces"]);
        // Each parameter under both of its names: today's camelCase ones (which win when
        // both are given) and the snake_case ones of earlier gateways, kept as aliases until
        // their announced removal. One request then works with every generation.
        let (min, max) = (rfc3339(since_ms), rfc3339(until_ms));
        let depth = TRACES_PER_CALL.to_string();
        let query = [
            ("query.serviceName", service.to_string()),
            ("query.startTimeMin", min.clone()),
            ("query.startTimeMax", max.clone()),
            ("query.searchDepth", depth.clone()),
            ("query.service_name", service.to_string()),
            ("query.start_time_min", min),
            ("query.start_time_max", max),
            ("query.num_traces", depth),
        ];
        match self.get(url, &query).await? {
            Answer::Absent => Ok(None),
            // api_v3 answers "no traces" as a 404 with its error object.
            Answer::Json { status: 404, json } if wire::v3_refusal(&json).is_some() => {
                Ok(Some(Vec::new()))
            }
            Answer::Json { status, json } => {
                let traces = wire::v3_traces(&json);
                success_or_status(status, &json, traces).map(Some)
            }
        }
    }

    /// The v1 search `GET /api/traces`; `None` when the route is not served.
    async fn v1_traces(
        &self,
        service: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Option<Vec<critical::Trace>>, JaegerError> {
        let url = self.endpoint(&["api", "traces"]);
        let query = [
            ("service", service.to_string()),
            ("start", since_ms.saturating_mul(1000).to_string()),
            ("end", until_ms.saturating_mul(1000).to_string()),
            ("limit", TRACES_PER_CALL.to_string()),
        ];
        match self.get(url, &query).await? {
            Answer::Absent => Ok(None),
            Answer::Json { status, json } => {
                let traces = wire::v1_traces(&json);
                success_or_status(status, &json, traces).map(Some)
            }
        }
    }

    /// One GET, its answer read (bounded) and parsed as JSON.
    async fn get(&self, url: Url, query: &[(&str, String)]) -> Result<Answer, JaegerError> {
        let mut request = self
            .http
            .get(url)
            .query(query)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let failed = |error: reqwest::Error, while_reading: bool| {
            if error.is_timeout() {
                JaegerError::TimedOut(self.timeout)
            } else if while_reading {
                JaegerError::Unreadable(without_url(&error))
            } else {
                JaegerError::NoAnswer(without_url(&error))
            }
        };
        let mut response = request.send().await.map_err(|error| failed(error, false))?;
        let status = response.status();
        let html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        let body = super::endpoint::read_capped(&mut response, ANSWER_LIMIT)
            .await
            .map_err(|error| match error {
                super::endpoint::ReadError::TooLarge => JaegerError::TooLarge,
                super::endpoint::ReadError::Read(error) => failed(error, true),
            })?;
        match serde_json::from_slice::<Json>(&body) {
            Ok(json) => Ok(Answer::Json {
                status: status.as_u16(),
                json,
            }),
            // Go's ServeMux answers an unknown route "404 page not found"; Jaeger's UI
            // answers any path it does not route with its index.html.
            Err(_) if status == reqwest::StatusCode::NOT_FOUND || (status.is_success() && html) => {
                Ok(Answer::Absent)
            }
            Err(_) if !status.is_success() => Err(JaegerError::Status {
                status: status.as_u16(),
                excerpt: excerpt(&body),
            }),
            Err(error) => Err(JaegerError::NotJson {
                reason: error.to_string(),
                excerpt: excerpt(&body),
            }),
        }
    }
}

/// A decoded answer, except that a JSON document of the wrong shape under an error status is
/// reported as that status (a proxy's JSON error, say); Jaeger's own refusals stay refusals.
fn success_or_status<T>(
    status: u16,
    json: &Json,
    decoded: Result<T, JaegerError>,
) -> Result<T, JaegerError> {
    match decoded {
        Err(JaegerError::Shape(_)) if !(200..300).contains(&status) => Err(JaegerError::Status {
            status,
            excerpt: excerpt(json.to_string().as_bytes()),
        }),
        // A 2xx answer that decodes is the answer; an error status always fails.
        Ok(_) if !(200..300).contains(&status) => Err(JaegerError::Status {
            status,
            excerpt: excerpt(json.to_string().as_bytes()),
        }),
        other => other,
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC (api_v3 parses RFC3339Nano).
fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(1_795_780_060_250), "2026-11-27T11:47:40.250Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_base_url_keeps_its_path() {
        let client = Client::new(
            JaegerConfig {
                url: "https://example.com/jaeger/".into(),
                timeout: DEFAULT_TIMEOUT,
                bearer_token: None,
            },
            Clock::system(),
        )
        .unwrap();
        assert_eq!(
            client.endpoint(&["api", "v3", "traces"]).as_str(),
            "https://example.com/jaeger/api/v3/traces"
        );
        assert!(matches!(
            Client::new(
                JaegerConfig {
                    url: "http://user:secret@example.com".into(),
                    timeout: DEFAULT_TIMEOUT,
                    bearer_token: None,
                },
                Clock::system()
            ),
            Err(JaegerError::BadUrl { .. })
        ));
    }
}
