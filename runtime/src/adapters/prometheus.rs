//! `prom.query` and `prom.range`: PromQL queries to the Prometheus of the configuration.
//!
//! What is guaranteed:
//! - requests go only to `[prometheus] url` (never to a server named by alert data); the
//!   query text, the only place alert data reaches, is sent as a form parameter that reqwest
//!   encodes, never spliced into a URL;
//! - `prom.query` evaluates at `at:` (now when it is none); `prom.range` runs from `since`
//!   until now in steps of `step`;
//! - every call has a timeout (also passed to Prometheus as `timeout`, so it stops
//!   evaluating), and the answer is read as a stream and refused past [`ANSWER_LIMIT`];
//! - Prometheus's own refusal (`status: "error"`) is the call's failure with its `errorType`
//!   and `error`; an answer that is not JSON or not the API's shape is an error naming what
//!   was wrong, never a made-up number;
//! - the bearer token goes only to that server, marked sensitive, and `Debug` redacts it;
//!   no proxy from the environment is used and redirects are not followed;
//! - `where:` entries become equality matchers in every vector and matrix selector of the
//!   parsed query (inside aggregations, function arguments, both sides of binary operators
//!   and subqueries: prom-label-proxy's reach), so alert data can only narrow the series a
//!   query reads. Keys must be label names; values are escaped by promql-parser's rendering,
//!   and the rendered query is parsed again and must give back exactly the injected tree, or
//!   the call fails without sending anything (see [`with_matchers`]).

use super::args::{ArgError, Args};
use super::endpoint::excerpt;
use super::http::without_url;
use crate::executor::Clock;
use medic_compiler::plan::Value;
use reqwest::Url;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest answer read; a larger one is an error, not a truncated parse.
pub const ANSWER_LIMIT: usize = 8 * 1024 * 1024;

/// A call's time limit when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Prometheus server queried (`[prometheus]` in medic.toml).
#[derive(Clone)]
pub struct PrometheusConfig {
    /// The base URL, such as `http://127.0.0.1:9090` or `https://example.com/prometheus`.
    pub url: String,
    /// Time limit of one call, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer ...`; a secret.
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for PrometheusConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PrometheusConfig")
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
pub enum PrometheusError {
    #[error("no Prometheus is configured ([prometheus] url in medic.toml)")]
    NotConfigured,
    #[error("[prometheus] url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot build the Prometheus client: {0}")]
    Client(String),
    #[error(transparent)]
    Argument(#[from] ArgError),
    #[error("`{function}`: {reason}")]
    BadArgument { function: String, reason: String },
    /// No answer at all: a failure, so the task's `retry` and `on failure` apply.
    #[error("prometheus could not be reached: {0}")]
    NoAnswer(String),
    #[error("prometheus did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("prometheus's answer could not be read: {0}")]
    Unreadable(String),
    #[error("prometheus's answer is larger than {} MiB, so it was not read", ANSWER_LIMIT / (1024 * 1024))]
    TooLarge,
    /// Prometheus answered with its API's error object.
    #[error("prometheus refused the query ({error_type}): {message}")]
    Refused { error_type: String, message: String },
    /// An HTTP error status without the API's error object (a proxy's page, say).
    #[error("prometheus answered HTTP {status} without a query API answer: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("prometheus's answer is not JSON ({reason}): {excerpt}")]
    NotJson { reason: String, excerpt: String },
    #[error("prometheus's answer is not a query API answer: {0}")]
    Shape(String),
    /// `where:` was given but the query could not be taken apart to add its matchers.
    #[error("the query cannot take the `where:` matchers: {0}")]
    Unmatchable(String),
}

/// The decoded arguments of `prom.query`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantQuery {
    pub promql: String,
    /// Milliseconds since the Unix epoch; none means now.
    pub at: Option<i64>,
    /// `where:`: label name to the value every selector must match.
    pub labels: BTreeMap<String, String>,
}

impl InstantQuery {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<InstantQuery, PrometheusError> {
        let mut args = Args::new("prom.query", values);
        let query = InstantQuery {
            promql: args.string("promql")?,
            at: args.optional_time("at")?,
            labels: args.string_map("where")?,
        };
        args.finish()?;
        check_label_names("prom.query", &query.labels)?;
        Ok(query)
    }
}

/// The decoded arguments of `prom.range`.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    pub promql: String,
    /// Milliseconds since the Unix epoch.
    pub since: i64,
    pub step: Duration,
    /// `where:`, as for [`InstantQuery::labels`].
    pub labels: BTreeMap<String, String>,
}

impl RangeQuery {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<RangeQuery, PrometheusError> {
        let mut args = Args::new("prom.range", values);
        let query = RangeQuery {
            promql: args.string("promql")?,
            since: args.time("since")?,
            step: args.duration("step")?,
            labels: args.string_map("where")?,
        };
        args.finish()?;
        check_label_names("prom.range", &query.labels)?;
        if query.step.is_zero() {
            return Err(PrometheusError::BadArgument {
                function: "prom.range".into(),
                reason: "`step` must be longer than zero".into(),
            });
        }
        Ok(query)
    }
}

/// One series of an answer: its labels and its values in time order.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    labels: BTreeMap<String, String>,
    values: Vec<f64>,
}

/// The Prometheus adapter: one client and the endpoints of the configured server.
pub struct Prometheus {
    client: reqwest::Client,
    query_url: Url,
    range_url: Url,
    timeout: Duration,
    bearer_token: Option<String>,
    clock: Clock,
}

impl Prometheus {
    /// Reads "now" (a query without `at:`, the end of a range) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Prometheus {
        self.clock = clock;
        self
    }

    pub fn new(config: PrometheusConfig) -> Result<Prometheus, PrometheusError> {
        let bad = |reason: &str| PrometheusError::BadUrl {
            url: config.url.clone(),
            reason: reason.to_string(),
        };
        let base = super::endpoint::base_url(&config.url, "bearer_token_env or bearer_token_file")
            .map_err(|reason| bad(&reason))?;
        let endpoint = |last: &str| -> Result<Url, PrometheusError> {
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|()| bad("it cannot be a base URL"))?
                .pop_if_empty()
                .extend(["api", "v1", last]);
            Ok(url)
        };
        let client = super::endpoint::api_client()
            .map_err(|error| PrometheusError::Client(error.to_string()))?;
        Ok(Prometheus {
            client,
            query_url: endpoint("query")?,
            range_url: endpoint("query_range")?,
            timeout: config.timeout,
            bearer_token: config.bearer_token,
            clock: Clock::system(),
        })
    }

    /// Runs `prom.query` or `prom.range` with the call's arguments.
    pub async fn call(
        &self,
        function: &str,
        values: BTreeMap<String, Value>,
    ) -> Result<Value, PrometheusError> {
        if function == "prom.range" {
            self.range(RangeQuery::decode(values)?).await
        } else {
            self.query(InstantQuery::decode(values)?).await
        }
    }

    /// `prom.query`: the `prom.Sample` record of an instant query.
    pub async fn query(&self, query: InstantQuery) -> Result<Value, PrometheusError> {
        let at = query.at.unwrap_or_else(|| self.clock.now_ms());
        let promql = with_matchers(&query.promql, &query.labels)?;
        let form = [
            ("query", promql.clone()),
            ("time", seconds(at)),
            ("timeout", self.timeout_seconds()),
        ];
        let series = self.post(&self.query_url, &form).await?;
        let first = series.first();
        Ok(Value::record([
            ("found".to_string(), Value::Bool(first.is_some())),
            (
                "value".to_string(),
                Value::Float(
                    first
                        .and_then(|series| series.values.last().copied())
                        .unwrap_or(0.0),
                ),
            ),
            (
                "series".to_string(),
                Value::Int(i64::try_from(series.len()).unwrap_or(i64::MAX)),
            ),
            (
                "labels".to_string(),
                Value::record(
                    first
                        .map(|series| series.labels.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(name, value)| (name, Value::String(value))),
                ),
            ),
            ("query".to_string(), Value::String(promql)),
        ]))
    }

    /// `prom.range`: the `prom.Range` record summarizing the first series of a range query.
    pub async fn range(&self, query: RangeQuery) -> Result<Value, PrometheusError> {
        let step_ms = i64::try_from(query.step.as_millis()).unwrap_or(i64::MAX);
        let promql = with_matchers(&query.promql, &query.labels)?;
        let form = [
            ("query", promql.clone()),
            ("start", seconds(query.since)),
            ("end", seconds(self.clock.now_ms())),
            ("step", seconds(step_ms)),
            ("timeout", self.timeout_seconds()),
        ];
        let series = self.post(&self.range_url, &form).await?;
        let values = series
            .into_iter()
            .next()
            .map(|series| series.values)
            .unwrap_or_default();
        let found = !values.is_empty();
        let (min, max, sum) = values.iter().fold(
            (f64::INFINITY, f64::NEG_INFINITY, 0.0),
            |(min, max, sum), value| (min.min(*value), max.max(*value), sum + value),
        );
        let count = values.len();
        let summary = |value: f64| Value::Float(if found { value } else { 0.0 });
        Ok(Value::record([
            ("found".to_string(), Value::Bool(found)),
            ("min".to_string(), summary(min)),
            ("max".to_string(), summary(max)),
            ("avg".to_string(), summary(sum / count.max(1) as f64)),
            (
                "last".to_string(),
                summary(values.last().copied().unwrap_or(0.0)),
            ),
            (
                "points".to_string(),
                Value::Int(i64::try_from(count).unwrap_or(i64::MAX)),
            ),
            ("query".to_string(), Value::String(promql)),
        ]))
    }

    /// Whether the query API answers with this configuration (URL, token): evaluates
    /// `vector(1)` now (`medic doctor`).
    pub async fn check(&self) -> Result<String, PrometheusError> {
        let form = [
            ("query", "vector(1)".to_string()),
            ("time", seconds(self.clock.now_ms())),
            ("timeout", self.timeout_seconds()),
        ];
        match self.post(&self.query_url, &form).await?.first() {
            Some(series) if series.values.last() == Some(&1.0) => {
                Ok("the query API evaluated vector(1)".into())
            }
            _ => Err(PrometheusError::Shape(
                "vector(1) did not evaluate to 1".into(),
            )),
        }
    }

    fn timeout_seconds(&self) -> String {
        seconds(i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX))
    }

    /// Posts a query form and reads the series of the answer.
    async fn post(
        &self,
        url: &Url,
        form: &[(&str, String)],
    ) -> Result<Vec<Series>, PrometheusError> {
        let mut request = self
            .client
            .post(url.clone())
            .form(form)
            .timeout(self.timeout);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        let failed = |error: reqwest::Error, while_reading: bool| {
            if error.is_timeout() {
                PrometheusError::TimedOut(self.timeout)
            } else if while_reading {
                PrometheusError::Unreadable(without_url(&error))
            } else {
                PrometheusError::NoAnswer(without_url(&error))
            }
        };
        let mut response = request.send().await.map_err(|error| failed(error, false))?;
        let status = response.status();
        let body = super::endpoint::read_capped(&mut response, ANSWER_LIMIT)
            .await
            .map_err(|error| match error {
                super::endpoint::ReadError::TooLarge => PrometheusError::TooLarge,
                super::endpoint::ReadError::Read(error) => failed(error, true),
            })?;
        let json: Json = match serde_json::from_slice(&body) {
            Ok(json) => json,
            Err(_) if !status.is_success() => {
                return Err(PrometheusError::Status {
                    status: status.as_u16(),
                    excerpt: excerpt(&body),
                });
            }
            Err(error) => {
                return Err(PrometheusError::NotJson {
                    reason: error.to_string(),
                    excerpt: excerpt(&body),
                });
            }
        };
        parse_answer(&json).map_err(|error| match error {
            // A JSON document that is not the API's, with an error status: say the status.
            PrometheusError::Shape(_) if !status.is_success() => PrometheusError::Status {
                status: status.as_u16(),
                excerpt: excerpt(&body),
            },
            other => other,
        })
    }

    /// The series of a range query from `start_ms` to `end_ms` in steps of `step`, with
    /// `labels` injected into every selector as `where:` does ([`with_matchers`]): each
    /// series' labels and its values in time order (for `diagnose`). Timestamps are not
    /// kept: a stretch without samples is simply absent, so callers ask one query per
    /// window rather than split one answer by position.
    pub async fn series(
        &self,
        promql: &str,
        labels: &BTreeMap<String, String>,
        start_ms: i64,
        end_ms: i64,
        step: Duration,
    ) -> Result<Vec<(BTreeMap<String, String>, Vec<f64>)>, PrometheusError> {
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
        let promql = with_matchers(promql, labels)?;
        let form = [
            ("query", promql),
            ("start", seconds(start_ms)),
            ("end", seconds(end_ms.max(start_ms))),
            ("step", seconds(step_ms)),
            ("timeout", self.timeout_seconds()),
        ];
        Ok(self
            .post(&self.range_url, &form)
            .await?
            .into_iter()
            .map(|series| (series.labels, series.values))
            .collect())
    }
}

/// Deepest query tree walked when adding matchers; deeper queries are refused (no runbook
/// needs them, and the walk must not exhaust the stack).
const MAX_QUERY_DEPTH: usize = 200;

/// Whether `name` is a label name every Prometheus accepts unquoted:
/// `[a-zA-Z_][a-zA-Z0-9_]*` (the compiler checks literal keys with the same rule).
fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
}

fn check_label_names(
    function: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), PrometheusError> {
    match labels.keys().find(|name| !is_label_name(name)) {
        Some(name) => Err(PrometheusError::BadArgument {
            function: function.to_string(),
            reason: format!(
                "`where:` key {name:?} is not a Prometheus label name (letters, digits and `_`, not starting with a digit)"
            ),
        }),
        None => Ok(()),
    }
}

/// The query with `label="value"` added to every vector and matrix selector, rendered as
/// text; the query as given when `labels` is empty.
///
/// Values are never written into the text by hand: the matchers go into promql-parser's
/// tree and its rendering writes them, escaping `\`, `"`, line breaks and tabs inside the
/// quotes (`escape_string` in promql-parser 0.11, pinned by this module's tests and by the
/// real-Prometheus tests). Because a future version could render differently, the rendered
/// text is parsed again and must give back exactly the tree that was rendered; otherwise the
/// query is refused rather than sent. An existing matcher on the same label stays: both
/// must hold, so a `where:` can narrow a query but never widen it (prom-label-proxy would
/// replace it instead).
pub fn with_matchers(
    promql: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String, PrometheusError> {
    if labels.is_empty() {
        return Ok(promql.to_string());
    }
    let mut tree = promql_parser::parser::parse(promql).map_err(PrometheusError::Unmatchable)?;
    let matchers: Vec<promql_parser::label::Matcher> = labels
        .iter()
        .map(|(name, value)| {
            promql_parser::label::Matcher::new(promql_parser::label::MatchOp::Equal, name, value)
        })
        .collect();
    let mut add = |selector: &mut promql_parser::label::Matchers| {
        extend_matchers(selector, &matchers);
    };
    let selectors = each_selector(&mut tree, &mut add, 0)?;
    if selectors == 0 {
        return Err(PrometheusError::Unmatchable(
            "it has no selector to add them to".into(),
        ));
    }
    let rendered = tree.to_string();
    let unfaithful = || {
        PrometheusError::Unmatchable(format!(
            "its rendering with them ({rendered:?}) does not read back as the same query"
        ))
    };
    let mut reparsed = promql_parser::parser::parse(&rendered).map_err(|_| unfaithful())?;
    sort_matchers(&mut tree)?;
    sort_matchers(&mut reparsed)?;
    if reparsed != tree {
        return Err(unfaithful());
    }
    Ok(rendered)
}

/// Calls `visit` with the matchers of every selector under `expr`; returns how many
/// selectors there were.
fn each_selector(
    expr: &mut promql_parser::parser::Expr,
    visit: &mut dyn FnMut(&mut promql_parser::label::Matchers),
    depth: usize,
) -> Result<usize, PrometheusError> {
    use promql_parser::parser::Expr;
    if depth > MAX_QUERY_DEPTH {
        return Err(PrometheusError::Unmatchable(format!(
            "it is nested deeper than {MAX_QUERY_DEPTH} levels"
        )));
    }
    let mut walk = |inner: &mut Expr| each_selector(inner, &mut *visit, depth + 1);
    match expr {
        Expr::VectorSelector(selector) => {
            visit(&mut selector.matchers);
            Ok(1)
        }
        Expr::MatrixSelector(selector) => {
            visit(&mut selector.vs.matchers);
            Ok(1)
        }
        Expr::Aggregate(aggregate) => {
            let mut count = walk(&mut aggregate.expr)?;
            if let Some(param) = &mut aggregate.param {
                count += walk(param)?;
            }
            Ok(count)
        }
        Expr::Unary(unary) => walk(&mut unary.expr),
        Expr::Binary(binary) => Ok(walk(&mut binary.lhs)? + walk(&mut binary.rhs)?),
        Expr::Paren(paren) => walk(&mut paren.expr),
        Expr::Subquery(subquery) => walk(&mut subquery.expr),
        Expr::Call(call) => {
            let mut count = 0;
            for arg in &mut call.args.args {
                count += walk(arg)?;
            }
            Ok(count)
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(0),
        // promql-parser never produces extensions; one here is nothing this walk knows.
        Expr::Extension(_) => Err(PrometheusError::Unmatchable(
            "it holds an extension node".into(),
        )),
    }
}

/// Puts each selector's matchers in the order promql-parser renders them (by name, then
/// value), so that a tree and the parse of its rendering compare equal.
fn sort_matchers(expr: &mut promql_parser::parser::Expr) -> Result<usize, PrometheusError> {
    let key = |matcher: &promql_parser::label::Matcher| {
        (
            matcher.name.clone(),
            matcher.value.clone(),
            matcher.op.to_string(),
        )
    };
    let mut sort = |matchers: &mut promql_parser::label::Matchers| {
        matchers.matchers.sort_by_key(key);
        for alternative in &mut matchers.or_matchers {
            alternative.sort_by_key(key);
        }
    };
    each_selector(expr, &mut sort, 0)
}

/// Adds the matchers to a selector's list; with `or` alternatives (`{a="1" or b="2"}`), to
/// every alternative, so each one is narrowed.
fn extend_matchers(
    selector: &mut promql_parser::label::Matchers,
    matchers: &[promql_parser::label::Matcher],
) {
    if selector.or_matchers.is_empty() {
        selector.matchers.extend_from_slice(matchers);
        return;
    }
    for alternative in &mut selector.or_matchers {
        alternative.extend_from_slice(matchers);
    }
    if !selector.matchers.is_empty() {
        selector.matchers.extend_from_slice(matchers);
    }
}

/// The series of a query API answer (`{"status": ..., "data": {"resultType", "result"}}`).
fn parse_answer(json: &Json) -> Result<Vec<Series>, PrometheusError> {
    let shape = |reason: String| PrometheusError::Shape(reason);
    let object = json
        .as_object()
        .ok_or_else(|| shape(format!("expected a JSON object, found {}", kind(json))))?;
    match object.get("status").and_then(Json::as_str) {
        Some("success") => {}
        Some("error") => {
            let text = |key: &str| {
                object
                    .get(key)
                    .and_then(Json::as_str)
                    .unwrap_or("(not given)")
                    .to_string()
            };
            return Err(PrometheusError::Refused {
                error_type: text("errorType"),
                message: text("error"),
            });
        }
        Some(other) => return Err(shape(format!("unknown `status` {other:?}"))),
        None => return Err(shape("no `status` string".into())),
    }
    let data = object
        .get("data")
        .and_then(Json::as_object)
        .ok_or_else(|| shape("no `data` object".into()))?;
    let result = data
        .get("result")
        .ok_or_else(|| shape("no `data.result`".into()))?;
    match data.get("resultType").and_then(Json::as_str) {
        Some("vector") => list(result, "data.result")?
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let place = format!("data.result[{index}]");
                let object = item
                    .as_object()
                    .ok_or_else(|| shape(format!("{place} is not an object")))?;
                Ok(Series {
                    labels: labels(object.get("metric"), &place)?,
                    values: vec![sample(
                        object.get("value"),
                        &format!("{place}.value"),
                        object.contains_key("histogram"),
                    )?],
                })
            })
            .collect(),
        Some("matrix") => list(result, "data.result")?
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let place = format!("data.result[{index}]");
                let object = item
                    .as_object()
                    .ok_or_else(|| shape(format!("{place} is not an object")))?;
                let histograms = object.contains_key("histograms");
                let values = match object.get("values") {
                    Some(values) => list(values, &format!("{place}.values"))?
                        .iter()
                        .enumerate()
                        .map(|(point, value)| {
                            sample(Some(value), &format!("{place}.values[{point}]"), false)
                        })
                        .collect::<Result<Vec<f64>, PrometheusError>>()?,
                    None if histograms => {
                        return Err(shape(format!(
                            "{place} holds native histograms, which have no single value"
                        )));
                    }
                    None => return Err(shape(format!("{place} has no `values`"))),
                };
                Ok(Series {
                    labels: labels(object.get("metric"), &place)?,
                    values,
                })
            })
            .collect(),
        Some("scalar" | "string") => Ok(vec![Series {
            labels: BTreeMap::new(),
            values: vec![sample(Some(result), "data.result", false)?],
        }]),
        Some(other) => Err(shape(format!("unknown `data.resultType` {other:?}"))),
        None => Err(shape("no `data.resultType` string".into())),
    }
}

fn list<'j>(json: &'j Json, place: &str) -> Result<&'j Vec<Json>, PrometheusError> {
    json.as_array()
        .ok_or_else(|| PrometheusError::Shape(format!("{place} is {}, not a list", kind(json))))
}

/// The labels of a series (`metric`); a series without labels may leave it out.
fn labels(json: Option<&Json>, place: &str) -> Result<BTreeMap<String, String>, PrometheusError> {
    let Some(json) = json else {
        return Ok(BTreeMap::new());
    };
    let object = json.as_object().ok_or_else(|| {
        PrometheusError::Shape(format!("{place}.metric is {}, not an object", kind(json)))
    })?;
    object
        .iter()
        .map(|(name, value)| match value.as_str() {
            Some(text) => Ok((name.clone(), text.to_string())),
            None => Err(PrometheusError::Shape(format!(
                "{place}.metric.{name} is {}, not a string",
                kind(value)
            ))),
        })
        .collect()
}

/// One sample, `[unix seconds, "value"]`; the value is a string so that `NaN` and `+Inf`
/// survive JSON.
fn sample(json: Option<&Json>, place: &str, histogram: bool) -> Result<f64, PrometheusError> {
    let shape = |reason: String| PrometheusError::Shape(reason);
    let Some(json) = json else {
        return Err(shape(if histogram {
            format!("{place} is a native histogram, which has no single value")
        } else {
            format!("{place} is missing")
        }));
    };
    let pair = match json.as_array().map(Vec::as_slice) {
        Some([time, value]) if time.is_number() => value,
        _ => {
            return Err(shape(format!(
                "{place} is not a [time, \"value\"] pair: {}",
                excerpt(json.to_string().as_bytes())
            )));
        }
    };
    let text = pair.as_str().ok_or_else(|| {
        shape(format!(
            "the value of {place} is {}, not a string",
            kind(pair)
        ))
    })?;
    text.parse::<f64>()
        .map_err(|_| shape(format!("the value of {place}, {text:?}, is not a number")))
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// Milliseconds since the Unix epoch as the decimal seconds Prometheus reads.
fn seconds(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let magnitude = millis.unsigned_abs();
    format!("{sign}{}.{:03}", magnitude / 1000, magnitude % 1000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn times_are_decimal_seconds() {
        assert_eq!(seconds(1_795_780_060_250), "1795780060.250");
        assert_eq!(seconds(60_000), "60.000");
        assert_eq!(seconds(-1), "-0.001");
    }

    fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// Every selector of a parsed query, with its equality matchers as (name, value).
    fn selectors(expr: &promql_parser::parser::Expr, out: &mut Vec<Vec<(String, String)>>) {
        use promql_parser::parser::Expr;
        let equal = |matchers: &promql_parser::label::Matchers| {
            matchers
                .matchers
                .iter()
                .chain(matchers.or_matchers.iter().flatten())
                .filter(|matcher| matcher.op == promql_parser::label::MatchOp::Equal)
                .map(|matcher| (matcher.name.clone(), matcher.value.clone()))
                .collect::<Vec<_>>()
        };
        match expr {
            Expr::VectorSelector(selector) => out.push(equal(&selector.matchers)),
            Expr::MatrixSelector(selector) => out.push(equal(&selector.vs.matchers)),
            Expr::Aggregate(aggregate) => {
                selectors(&aggregate.expr, out);
                if let Some(param) = &aggregate.param {
                    selectors(param, out);
                }
            }
            Expr::Unary(unary) => selectors(&unary.expr, out),
            Expr::Binary(binary) => {
                selectors(&binary.lhs, out);
                selectors(&binary.rhs, out);
            }
            Expr::Paren(paren) => selectors(&paren.expr, out),
            Expr::Subquery(subquery) => selectors(&subquery.expr, out),
            Expr::Call(call) => call.args.args.iter().for_each(|arg| selectors(arg, out)),
            _ => {}
        }
    }

    #[test]
    fn where_matchers_reach_every_selector() {
        let labels = labels_of(&[("instance", "a:9100"), ("job", "node")]);
        assert_eq!(
            with_matchers("max(disk_used_ratio)", &labels).unwrap(),
            r#"max(disk_used_ratio{instance="a:9100",job="node"})"#
        );
        let query = "topk(3, rate(a{x=\"1\"}[5m])) / on (job) sum(b offset 5m) \
                     + max_over_time((c - d)[10m:1m]) > bool scalar(e) or {__name__=\"f\"}";
        let rendered = with_matchers(query, &labels).unwrap();
        let mut found = Vec::new();
        selectors(
            &promql_parser::parser::parse(&rendered).unwrap(),
            &mut found,
        );
        assert_eq!(found.len(), 6, "{rendered}");
        for matchers in &found {
            for (name, value) in &labels {
                assert!(
                    matchers.contains(&(name.clone(), value.clone())),
                    "{rendered}: {matchers:?}"
                );
            }
        }
        // A query with nothing to narrow is refused rather than sent unnarrowed.
        assert_eq!(
            with_matchers("1 + 2", &labels),
            Err(PrometheusError::Unmatchable(
                "it has no selector to add them to".into()
            ))
        );
        // Without `where:` the query goes as written, even one promql-parser would refuse.
        assert_eq!(with_matchers("sum(", &BTreeMap::new()).unwrap(), "sum(");
    }

    /// promql-parser's rendering of matcher values is what keeps hostile values inside their
    /// quotes: every value must come back, byte for byte, as the value of the one matcher.
    #[test]
    fn hostile_values_stay_label_values() {
        let hostile = [
            "\"",
            "\\",
            "\\\"",
            "\"}",
            "\"} or vector(1) #",
            "a\"} or vector(1) # \n",
            "line\nbreak\r\ttab",
            "\\n",
            "{{}}",
            "`'",
            "ünïcødé ✓ 🚀",
            "\u{0}\u{1b}[31m",
            "",
        ];
        for value in hostile {
            let labels = labels_of(&[("instance", value)]);
            let rendered = with_matchers("sum(rate(x[5m])) + y", &labels).unwrap();
            let mut found = Vec::new();
            selectors(
                &promql_parser::parser::parse(&rendered).unwrap(),
                &mut found,
            );
            assert_eq!(
                found,
                vec![
                    vec![("instance".to_string(), value.to_string())],
                    vec![("instance".to_string(), value.to_string())],
                ],
                "{value:?} rendered as {rendered}"
            );
        }
    }

    #[test]
    fn where_keys_must_be_label_names() {
        let values = BTreeMap::from([
            ("promql".to_string(), Value::String("up".into())),
            ("at".to_string(), Value::Null),
            (
                "where".to_string(),
                Value::record([("a-b".to_string(), Value::String("x".into()))]),
            ),
        ]);
        assert_eq!(
            InstantQuery::decode(values).unwrap_err().to_string(),
            "`prom.query`: `where:` key \"a-b\" is not a Prometheus label name (letters, digits and `_`, not starting with a digit)"
        );
    }

    #[test]
    fn special_values_parse() {
        let json: Json = serde_json::json!([1.5, "+Inf"]);
        assert_eq!(sample(Some(&json), "v", false), Ok(f64::INFINITY));
        let json: Json = serde_json::json!([1.5, "NaN"]);
        assert!(sample(Some(&json), "v", false).is_ok_and(f64::is_nan));
    }
}
