//! The HTTP face of the engine (`medic serve`): webhooks for Alertmanager, Grafana, Zabbix
//! and Medic's generic JSON, the runs API, reload, the kill switch, `/healthz` and
//! `/metrics`.
//!
//! Every handler turns every error into a status and a JSON `{"error": ...}` naming the
//! problem: 400/422 for a bad payload, 401 for missing or wrong credentials, 413 for a body
//! over the limit, 503 when the queue is full (Alertmanager retries only on 5xx). A webhook
//! answers 2xx only once its alerts are committed to the journal. Credentials are compared
//! in constant time and never logged.

use crate::engine::{Engine, EngineError};
use crate::executor::Decision;
use crate::ingest::{self, IngestError};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use medic_compiler::plan::Plan;
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Compiles the plans again for `POST /api/reload`; the error is the diagnostics as text.
pub type Reloader = Arc<dyn Fn() -> Result<Plan, String> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Auth {
    /// Required as `Authorization: Bearer <token>` on every endpoint but `/healthz`.
    pub token: Option<String>,
    /// Accepted on the generic webhook as `X-Medic-Signature: sha256=<hex HMAC of the body>`.
    pub hmac_secret: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line, even through a debug print.
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub struct ServerState {
    pub engine: Engine,
    pub auth: Auth,
    pub body_limit: usize,
    pub reload: Reloader,
}

/// A JSON error answer.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Failure {
        let status = match &error {
            EngineError::QueueFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::TooManyAlerts { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            EngineError::Journal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            EngineError::NoRun(_) => StatusCode::NOT_FOUND,
            EngineError::NotActive(_) | EngineError::NoApproval { .. } => StatusCode::CONFLICT,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "request failed");
        }
        Failure(status, error.to_string())
    }
}

pub fn router(state: Arc<ServerState>) -> Router {
    let limit = state.body_limit;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/webhook/{source}", post(webhook))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(show_run))
        .route("/api/suppressions", get(list_suppressions))
        .route("/api/reverts", get(list_reverts))
        .route("/api/runs/{id}/{action}", post(act_on_run))
        .route("/api/reload", post(reload))
        .route("/api/kill-switch", get(kill_switch).post(set_kill_switch))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn constant_time_equal(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

fn bearer_ok(state: &ServerState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.auth.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_equal(given.trim().as_bytes(), token.as_bytes()))
}

fn signature_ok(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(given) = headers
        .get("x-medic-signature")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("sha256="))
        .and_then(|hex_text| hex::decode(hex_text).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

fn require_bearer(state: &ServerState, headers: &HeaderMap) -> Result<(), Failure> {
    if bearer_ok(state, headers) {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        ))
    }
}

async fn not_found(uri: axum::http::Uri) -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!("no endpoint at {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Failure {
    Failure(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A path parameter, or a JSON error naming what was wrong with it.
fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, Failure> {
    path.map(|Path(value)| value).map_err(|rejection| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("bad path: {}", rejection.body_text()),
        )
    })
}

/// A request body within the limit, or a JSON error.
fn body_bytes(state: &ServerState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Failure> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Failure(
                status,
                format!(
                    "the body is larger than the limit of {} bytes",
                    state.body_limit
                ),
            )
        } else {
            Failure(status, rejection.body_text())
        }
    })
}

/// A query string, or a JSON error naming what was wrong with it.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Failure> {
    query.map(|Query(value)| value).map_err(|rejection| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("bad query: {}", rejection.body_text()),
        )
    })
}

fn list_limit(list: Result<Query<ListQuery>, QueryRejection>) -> Result<u32, Failure> {
    Ok(query(list)?.limit.unwrap_or(50).min(1_000))
}

/// A run row for the API: its JSON columns (arguments, report) as JSON, not strings.
fn run_json(run: &crate::journal::RunRow) -> serde_json::Value {
    let mut value = serde_json::to_value(run).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        let parsed = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        object.insert("arguments".into(), parsed(&run.arguments));
        object.insert(
            "report".into(),
            run.report
                .as_deref()
                .map_or(serde_json::Value::Null, parsed),
        );
    }
    value
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.engine.metrics().render(),
    )
        .into_response())
}

async fn webhook(
    State(state): State<Arc<ServerState>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let body = body_bytes(&state, body)?;
    let read: fn(&[u8]) -> Result<Vec<ingest::Alert>, IngestError> = match source.as_str() {
        "alertmanager" => ingest::alertmanager,
        "grafana" => ingest::grafana,
        "zabbix" => ingest::zabbix,
        "generic" => ingest::generic,
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no webhook for {other:?}: use alertmanager, grafana, zabbix or generic"),
            ));
        }
    };
    // Deny by default once configured: the bearer token on every webhook, and on the
    // generic webhook the body's signature as well.
    require_bearer(&state, &headers)?;
    if source == "generic"
        && let Some(secret) = state.auth.hmac_secret.as_deref()
        && !signature_ok(secret, &headers, &body)
    {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-Medic-Signature (sha256=<hex HMAC-SHA256 of the body>)".into(),
        ));
    }
    let alerts = read(&body).map_err(|error| {
        let status = match error {
            IngestError::BadAlert { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        tracing::info!(%source, %error, "payload refused");
        Failure(status, error.to_string())
    })?;
    let count = alerts.len();
    // On its own task: if the client hangs up mid-request, the alerts it sent are still
    // committed and queued together (never committed and left unqueued).
    let engine = state.engine.clone();
    let ids = tokio::spawn(async move { engine.ingest(&source, alerts).await })
        .await
        .map_err(|error| Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))??;
    Ok(Json(json!({ "accepted": count, "alerts": ids })).into_response())
}

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

async fn list_runs(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    let runs = state.engine.runs(list_limit(query)?).await?;
    let runs: Vec<serde_json::Value> = runs.iter().map(run_json).collect();
    Ok(Json(json!({ "runs": runs })).into_response())
}

#[derive(serde::Deserialize)]
struct RevertQuery {
    state: Option<String>,
}

const REVERT_STATES: [&str; 6] = [
    "pending",
    "reverting",
    "reverted",
    "failed",
    "skipped",
    "needs_attention",
];

async fn list_reverts(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    revert_query: Result<Query<RevertQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    let query = query(revert_query)?;
    let wanted = query.state.unwrap_or_else(|| "needs_attention".into());
    if !REVERT_STATES.contains(&wanted.as_str()) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "no revert state {wanted:?}: use one of {}",
                REVERT_STATES.join(", ")
            ),
        ));
    }
    let reverts = state.engine.reverts(wanted).await?;
    Ok(Json(json!({ "reverts": reverts })).into_response())
}

async fn list_suppressions(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    let suppressions = state.engine.suppressions(list_limit(query)?).await?;
    Ok(Json(json!({ "suppressions": suppressions })).into_response())
}

async fn show_run(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    let id = path(id)?;
    let detail = state.engine.run(id).await?;
    let mut body = serde_json::to_value(&detail).unwrap_or_default();
    if let (Some(object), Some(row)) = (body.as_object_mut(), run_json(&detail.run).as_object()) {
        for (key, value) in row {
            object.insert(key.clone(), value.clone());
        }
    }
    Ok(Json(body).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    by: Option<String>,
    task: Option<String>,
    reason: Option<String>,
}

async fn act_on_run(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    id_and_action: Result<Path<(i64, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    let (id, action) = path(id_and_action)?;
    let body = body_bytes(&state, body)?;
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("the request body is not valid: {error}"),
            )
        })?
    };
    let by = body.by.unwrap_or_else(|| "api".into());
    let engine = &state.engine;
    let answer = match action.as_str() {
        "approve" => {
            let tasks = engine
                .decide(id, body.task, Decision::Approved { by })
                .await?;
            json!({ "run": id, "approved": tasks })
        }
        "reject" => {
            let reason = body.reason.unwrap_or_else(|| "no reason given".into());
            let tasks = engine
                .decide(id, body.task, Decision::Rejected { by, reason })
                .await?;
            json!({ "run": id, "rejected": tasks })
        }
        "pause" => {
            engine.pause(id, true, &by).await?;
            json!({ "run": id, "state": "paused" })
        }
        "resume" => {
            engine.pause(id, false, &by).await?;
            json!({ "run": id, "state": "running" })
        }
        "cancel" => {
            engine.cancel(id, &by).await?;
            json!({ "run": id, "state": "cancelling" })
        }
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no action {other:?}: use approve, reject, pause, resume or cancel"),
            ));
        }
    };
    Ok(Json(answer).into_response())
}

async fn reload(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    let reloader = Arc::clone(&state.reload);
    let compiled = tokio::task::spawn_blocking(move || reloader())
        .await
        .map_err(|error| Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    match compiled {
        Ok(plan) => {
            let answer = json!({
                "rules": plan.rules.len(),
                "playbooks": plan.playbooks.len(),
                "content_hash": plan.content_hash,
            });
            state.engine.replace_plan(plan);
            tracing::info!("plans reloaded");
            Ok(Json(answer).into_response())
        }
        Err(diagnostics) => Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the plans do not compile; the running plan is kept:\n{diagnostics}"),
        )),
    }
}

async fn kill_switch(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    Ok(Json(json!({ "on": state.engine.kill_switch() })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KillSwitchBody {
    on: bool,
}

async fn set_kill_switch(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    require_bearer(&state, &headers)?;
    let body = body_bytes(&state, body)?;
    let body: KillSwitchBody = serde_json::from_slice(&body).map_err(|error| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"on\": true|false}}: {error}"),
        )
    })?;
    state.engine.set_kill_switch(body.on).await?;
    Ok(Json(json!({ "on": body.on })).into_response())
}
