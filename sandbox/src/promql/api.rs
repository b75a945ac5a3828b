//! [`PrometheusServer`]: the Prometheus HTTP API over a [`SeriesStore`] on loopback, in the
//! shapes of Prometheus 2.42 (web/api/v1/api.go; <https://prometheus.io/docs/prometheus/latest/querying/api/>).
//!
//! # Served
//!
//! - `GET|POST /api/v1/query` (`query`, `time`, `timeout`) and `GET|POST /api/v1/query_range`
//!   (`query`, `start`, `end`, `step`, `timeout`): parameters from the URL or, for a POST, an
//!   `application/x-www-form-urlencoded` body (whose values win, as Go's `FormValue`).
//!   Times are Unix seconds with a fraction or RFC 3339; durations are seconds or
//!   Prometheus durations (`15s`, `1h30m`). A missing `time` is the [`SimClock`]'s now,
//!   never the system clock. `timeout` is checked and otherwise ignored.
//! - Answers `{"status": "success", "data": {"resultType", "result"}}`, samples as
//!   `[<unix seconds>, "<value>"]` with the time written as Prometheus writes it
//!   (milliseconds as a fraction of up to three digits) and the value as Go's
//!   `FormatFloat(v, 'f', -1, 64)` (`NaN`, `+Inf`, `-Inf`).
//! - Refusals `{"status": "error", "errorType", "error"}`: 400 `bad_data` for parameters and
//!   queries that do not parse or that the sandbox does not support (`invalid parameter
//!   "query": ...`, as Prometheus words it), 422 `execution` for evaluation errors.
//! - `GET /api/v1/status/buildinfo` (version `2.42.0+medic-sandbox`), `GET /-/ready`,
//!   `GET /-/healthy` with Prometheus's texts; 405 `Method Not Allowed` for other methods on
//!   these paths and Go's `404 page not found` elsewhere.
//!
//! Medic's Prometheus adapter uses `POST /api/v1/query` and `POST /api/v1/query_range` only
//! (`medic doctor` evaluates `vector(1)` through the first).

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::store::{Labels, Series, SeriesStore};
use super::{QueryError, QueryValue};
use crate::clock::SimClock;

/// The version `/api/v1/status/buildinfo` answers: the Prometheus the sandbox follows,
/// marked as the sandbox in semver build metadata.
pub const VERSION: &str = "2.42.0+medic-sandbox";

#[derive(Clone)]
struct Shared {
    store: SeriesStore,
    clock: SimClock,
}

/// The running server. Dropping it shuts it down.
pub struct PrometheusServer {
    address: SocketAddr,
    background: crate::serving::Background,
}

impl PrometheusServer {
    /// Binds 127.0.0.1 on a free port and serves `store`, reading now from `clock`.
    pub async fn start(store: SeriesStore, clock: SimClock) -> std::io::Result<PrometheusServer> {
        PrometheusServer::start_on(0, store, clock).await
    }

    /// Binds 127.0.0.1 on `port` (0: a free one) and serves `store`.
    pub async fn start_on(
        port: u16,
        store: SeriesStore,
        clock: SimClock,
    ) -> std::io::Result<PrometheusServer> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route(
                "/api/v1/query",
                get(query).post(query).fallback(method_not_allowed),
            )
            .route(
                "/api/v1/query_range",
                get(query_range)
                    .post(query_range)
                    .fallback(method_not_allowed),
            )
            .route(
                "/api/v1/status/buildinfo",
                get(buildinfo).fallback(method_not_allowed),
            )
            .route("/-/ready", get(ready).fallback(method_not_allowed))
            .route("/-/healthy", get(healthy).fallback(method_not_allowed))
            .fallback(not_found)
            .with_state(Shared { store, clock });
        let background =
            crate::serving::Background::serve(listener, app, "prometheus sandbox server");
        Ok(PrometheusServer {
            address,
            background,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops accepting, lets open connections finish (at most five seconds) and returns.
    pub async fn stop(mut self) {
        self.background.stop().await;
    }
}

/// A request's parameters: the form body's (for a POST) before the URL's.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Params {
        let mut pairs = Vec::new();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| {
                media
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if form && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(query) = uri.query() {
            pairs.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        Params(pairs)
    }

    /// The first value of `name`, empty when there is none (Go's `FormValue`).
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// A refusal: Prometheus's error object with the status of its kind.
fn refusal(error: &QueryError) -> Response {
    let status = match error.kind {
        "bad_data" => StatusCode::BAD_REQUEST,
        "execution" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = format!(
        r#"{{"status":"error","errorType":{},"error":{}}}"#,
        json_string(error.kind),
        json_string(&error.message)
    );
    json_response(status, body)
}

fn invalid_parameter(name: &str, reason: &str) -> QueryError {
    super::eval::bad_data(format!("invalid parameter {name:?}: {reason}"))
}

/// A query error as the API words it: the engine's parse refusals are about the
/// `query` parameter.
fn about_query(error: QueryError) -> QueryError {
    if error.kind == "bad_data" {
        invalid_parameter("query", &error.message)
    } else {
        error
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn success(result_type: &str, result: &str) -> Response {
    json_response(
        StatusCode::OK,
        format!(
            r#"{{"status":"success","data":{{"resultType":"{result_type}","result":{result}}}}}"#
        ),
    )
}

async fn query(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::read(&method, &uri, &headers, &body);
    let at_ms = match params.get("time") {
        "" => shared.clock.now_ms(),
        text => match parse_time(text) {
            Ok(at_ms) => at_ms,
            Err(reason) => return refusal(&invalid_parameter("time", &reason)),
        },
    };
    if let Err(error) = check_timeout(&params) {
        return refusal(&error);
    }
    let promql = params.get("query").to_string();
    let store = shared.store.clone();
    let evaluated =
        tokio::task::spawn_blocking(move || super::instant(&store, &promql, at_ms)).await;
    match evaluated {
        Ok(Ok(value)) => {
            let (result_type, result) = render_value(&value, at_ms);
            success(result_type, &result)
        }
        Ok(Err(error)) => refusal(&about_query(error)),
        Err(_) => refusal(&super::eval::execution("the evaluation did not finish")),
    }
}

async fn query_range(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::read(&method, &uri, &headers, &body);
    let parsed = (|| {
        let start_ms = parse_time(params.get("start"))
            .map_err(|reason| invalid_parameter("start", &reason))?;
        let end_ms =
            parse_time(params.get("end")).map_err(|reason| invalid_parameter("end", &reason))?;
        if end_ms < start_ms {
            return Err(super::eval::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        let step_ns = parse_duration_ns(params.get("step"))
            .map_err(|reason| invalid_parameter("step", &reason))?;
        if step_ns <= 0 {
            return Err(super::eval::bad_data(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        // As Prometheus: whole steps that fit, in nanoseconds.
        let span_ns = i128::from(end_ms - start_ms) * 1_000_000;
        if span_ns / step_ns > i128::from(super::MAX_POINTS) {
            return Err(super::eval::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        check_timeout(&params)?;
        // The engine steps in whole milliseconds.
        let step_ms = i64::try_from(step_ns / 1_000_000)
            .unwrap_or(i64::MAX)
            .max(1);
        Ok((start_ms, end_ms, step_ms))
    })();
    let (start_ms, end_ms, step_ms) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return refusal(&error),
    };
    let promql = params.get("query").to_string();
    let store = shared.store.clone();
    let evaluated = tokio::task::spawn_blocking(move || {
        super::range(&store, &promql, start_ms, end_ms, step_ms)
    })
    .await;
    match evaluated {
        Ok(Ok(matrix)) => success("matrix", &render_matrix(&matrix)),
        Ok(Err(error)) => refusal(&about_query(error)),
        Err(_) => refusal(&super::eval::execution("the evaluation did not finish")),
    }
}

fn check_timeout(params: &Params) -> Result<(), QueryError> {
    match params.get("timeout") {
        "" => Ok(()),
        text => parse_duration_ns(text)
            .map(|_| ())
            .map_err(|reason| invalid_parameter("timeout", &reason)),
    }
}

async fn buildinfo() -> Response {
    json_response(
        StatusCode::OK,
        format!(
            r#"{{"status":"success","data":{{"version":{},"revision":"medic-sandbox","branch":"medic-sandbox","buildUser":"medic","buildDate":"","goVersion":"none (the Medic sandbox's Prometheus)"}}}}"#,
            json_string(VERSION)
        ),
    )
}

async fn ready() -> Response {
    text_response(StatusCode::OK, "Prometheus Server is Ready.\n")
}

async fn healthy() -> Response {
    text_response(StatusCode::OK, "Prometheus Server is Healthy.\n")
}

async fn method_not_allowed() -> Response {
    text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
}

async fn not_found() -> Response {
    text_response(StatusCode::NOT_FOUND, "404 page not found\n")
}

fn text_response(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A time parameter as Prometheus's `parseTime` reads it: Unix seconds (rounded to the
/// millisecond) or RFC 3339; milliseconds since the epoch.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    let refused = || format!("cannot parse {text:?} to a valid timestamp");
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || seconds.abs() > 9.2e15 {
            return Err(refused());
        }
        let whole = seconds.trunc();
        let fraction = ((seconds - whole) * 1000.0).round();
        return Ok(whole as i64 * 1000 + fraction as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| refused())
}

/// A duration parameter as Prometheus's `parseDuration` reads it: seconds with a fraction,
/// or a Prometheus duration (`1h30m`, `15s`, `500ms`); nanoseconds.
pub(crate) fn parse_duration_ns(text: &str) -> Result<i128, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        let nanoseconds = seconds * 1e9;
        if !nanoseconds.is_finite()
            || nanoseconds > i64::MAX as f64
            || nanoseconds < i64::MIN as f64
        {
            return Err(format!(
                "cannot parse {text:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(nanoseconds as i128);
    }
    prometheus_duration_ms(text)
        .map(|ms| i128::from(ms) * 1_000_000)
        .ok_or_else(|| format!("cannot parse {text:?} to a valid duration"))
}

/// `model.ParseDuration`: units `y w d h m s ms`, each at most once and in that order.
fn prometheus_duration_ms(text: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, after) = rest.split_at(digits);
        let letters = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, tail) = after.split_at(letters);
        let number: i64 = number.parse().ok()?;
        let position = UNITS
            .iter()
            .skip(next_unit)
            .position(|(name, _)| *name == unit)?
            + next_unit;
        let (_, scale) = UNITS.get(position)?;
        total = total.checked_add(number.checked_mul(*scale)?)?;
        next_unit = position + 1;
        rest = tail;
    }
    Some(total)
}

/// The `resultType` and the `result` of an instant query's answer.
fn render_value(value: &QueryValue, at_ms: i64) -> (&'static str, String) {
    match value {
        QueryValue::Scalar(number) => (
            "scalar",
            format!("[{},\"{}\"]", timestamp(at_ms), format_value(*number)),
        ),
        QueryValue::String(text) => (
            "string",
            format!("[{},{}]", timestamp(at_ms), json_string(text)),
        ),
        QueryValue::Vector(vector) => {
            let items: Vec<String> = vector
                .iter()
                .map(|(labels, number)| {
                    format!(
                        r#"{{"metric":{},"value":[{},"{}"]}}"#,
                        render_metric(labels),
                        timestamp(at_ms),
                        format_value(*number)
                    )
                })
                .collect();
            ("vector", format!("[{}]", items.join(",")))
        }
        QueryValue::Matrix(matrix) => ("matrix", render_matrix(matrix)),
    }
}

fn render_matrix(matrix: &[Series]) -> String {
    let items: Vec<String> = matrix
        .iter()
        .map(|series| {
            let values: Vec<String> = series
                .samples
                .iter()
                .map(|(at, number)| format!("[{},\"{}\"]", timestamp(*at), format_value(*number)))
                .collect();
            format!(
                r#"{{"metric":{},"values":[{}]}}"#,
                render_metric(&series.labels),
                values.join(",")
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn render_metric(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{}:{}", json_string(name), json_string(value)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// Milliseconds as Prometheus's `MarshalTimestamp` writes them: seconds, and a fraction of
/// three digits unless it is zero.
pub(crate) fn timestamp(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let magnitude = ms.unsigned_abs();
    match magnitude % 1000 {
        0 => format!("{sign}{}", magnitude / 1000),
        fraction => format!("{sign}{}.{fraction:03}", magnitude / 1000),
    }
}

/// A value as Go's `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest decimal that reads
/// back, without an exponent (Rust's `Display` for `f64` is exactly that).
pub(crate) fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        value.to_string()
    }
}
