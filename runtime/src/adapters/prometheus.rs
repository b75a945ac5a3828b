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
//!   no proxy from the environment is used and redirects are not followed.

use super::args::{ArgError, Args};
use super::http::without_url;
use medic_compiler::plan::Value;
use reqwest::Url;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest answer read; a larger one is an error, not a truncated parse.
pub const ANSWER_LIMIT: usize = 8 * 1024 * 1024;

/// A call's time limit when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Characters of a non-API answer quoted in an error.
const EXCERPT_CHARS: usize = 200;

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
}

/// The decoded arguments of `prom.query`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantQuery {
    pub promql: String,
    /// Milliseconds since the Unix epoch; none means now.
    pub at: Option<i64>,
}

impl InstantQuery {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<InstantQuery, PrometheusError> {
        let mut args = Args::new("prom.query", values);
        let query = InstantQuery {
            promql: args.string("promql")?,
            at: args.optional_time("at")?,
        };
        args.finish()?;
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
}

impl RangeQuery {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<RangeQuery, PrometheusError> {
        let mut args = Args::new("prom.range", values);
        let query = RangeQuery {
            promql: args.string("promql")?,
            since: args.time("since")?,
            step: args.duration("step")?,
        };
        args.finish()?;
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
}

impl Prometheus {
    pub fn new(config: PrometheusConfig) -> Result<Prometheus, PrometheusError> {
        let bad = |reason: &str| PrometheusError::BadUrl {
            url: config.url.clone(),
            reason: reason.to_string(),
        };
        let base = Url::parse(&config.url).map_err(|error| bad(&error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("not an http or https URL"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad(
                "a URL must not carry a user name or password (use bearer_token_env or bearer_token_file)",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("the base URL must not have a query or a fragment"));
        }
        let endpoint = |last: &str| -> Result<Url, PrometheusError> {
            let mut url = base.clone();
            url.path_segments_mut()
                .map_err(|()| bad("it cannot be a base URL"))?
                .pop_if_empty()
                .extend(["api", "v1", last]);
            Ok(url)
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| PrometheusError::Client(error.to_string()))?;
        Ok(Prometheus {
            client,
            query_url: endpoint("query")?,
            range_url: endpoint("query_range")?,
            timeout: config.timeout,
            bearer_token: config.bearer_token,
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
        let at = query.at.unwrap_or_else(now_ms);
        let form = [
            ("query", query.promql),
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
        ]))
    }

    /// `prom.range`: the `prom.Range` record summarizing the first series of a range query.
    pub async fn range(&self, query: RangeQuery) -> Result<Value, PrometheusError> {
        let step_ms = i64::try_from(query.step.as_millis()).unwrap_or(i64::MAX);
        let form = [
            ("query", query.promql),
            ("start", seconds(query.since)),
            ("end", seconds(now_ms())),
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
        ]))
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
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| failed(error, true))?
        {
            if body.len().saturating_add(chunk.len()) > ANSWER_LIMIT {
                // The rest is never read: dropping the response closes the connection.
                return Err(PrometheusError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
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

/// The start of an answer, as text, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty)".into();
    }
    let mut kept: String = text.chars().take(EXCERPT_CHARS).collect();
    if kept.len() < text.len() {
        kept.push_str("...");
    }
    format!("{kept:?}")
}

/// Milliseconds since the Unix epoch as the decimal seconds Prometheus reads.
fn seconds(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let magnitude = millis.unsigned_abs();
    format!("{sign}{}.{:03}", magnitude / 1000, magnitude % 1000)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_decimal_seconds() {
        assert_eq!(seconds(1_795_780_060_250), "1795780060.250");
        assert_eq!(seconds(60_000), "60.000");
        assert_eq!(seconds(-1), "-0.001");
    }

    #[test]
    fn special_values_parse() {
        let json: Json = serde_json::json!([1.5, "+Inf"]);
        assert_eq!(sample(Some(&json), "v", false), Ok(f64::INFINITY));
        let json: Json = serde_json::json!([1.5, "NaN"]);
        assert!(sample(Some(&json), "v", false).is_ok_and(f64::is_nan));
    }
}
