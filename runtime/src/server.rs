//! The HTTP face of the engine (`medic serve`): webhooks for Alertmanager, Grafana, Zabbix
//! and Medic's generic JSON, the runs API, reload, the kill switch, `/healthz` and
//! `/metrics`.
//!
//! Every handler turns every error into a status and a JSON `{"error": ...}` naming the
//! problem: 400/422 for a bad payload, 401 for missing or wrong credentials, 403 for a
//! credential whose role or approval groups do not allow the request, 413 for a body over the
//! limit, 503 when the queue is full (Alertmanager retries only on 5xx). A webhook answers
//! 2xx only once its alerts are committed to the journal.
//!
//! Who a request comes from is decided by its credential alone, never by what it says about
//! itself: `authorize` runs before any handler (and so before any body is read), turns the
//! bearer token into an [`Identity`] (a user of the users file, the single configured token,
//! or `anonymous` when nothing is configured), refuses it when its [`Role`] does not allow
//! the endpoint, and hands it to the handler, which records its name as who decided. Tokens
//! are held only as SHA-256 hashes, compared in constant time, and never logged.
//!
//! Every request is bounded ([`ServerLimits`]): its body by `DefaultBodyLimit` (at most
//! [`MAX_BODY_BYTES`]), its time by tower's `Timeout`, and the number handled at once by a
//! concurrency limit that refuses the excess with 503 at once (`LoadShed`) rather than
//! queueing it without bound. `/healthz` is outside the limits, so a liveness probe does not
//! fail because the server is busy.

use crate::engine::{Actor, ApprovalGroups, Done, Engine, EngineError, Operation};
use crate::ingest::{self, IngestError};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use hmac::{Hmac, Mac};
use medic_compiler::plan::Plan;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Compiles the plans again for `POST /api/reload`; the error is the diagnostics as text.
pub type Reloader = Arc<dyn Fn() -> Result<Plan, String> + Send + Sync>;

/// What a credential may do. Roles are not ordered: a `sender` (a monitoring system) may
/// post alerts and do nothing else, a `viewer` may only read; an `operator` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads runs, suppressions, reverts, the kill switch and `/metrics`.
    Viewer,
    /// Posts alerts to the webhooks.
    Sender,
    /// Reads, posts alerts, approves, rejects, pauses, resumes, cancels, reloads and sets the
    /// kill switch.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Sender => "sender",
            Role::Operator => "operator",
        }
    }

    /// Whether it may read runs (the API's `GET`s, the web page).
    pub fn reads(self) -> bool {
        self.allows(Need::Read)
    }

    fn allows(self, need: Need) -> bool {
        match (self, need) {
            (Role::Operator, _) | (Role::Viewer, Need::Read) | (Role::Sender, Need::Send) => true,
            (Role::Viewer | Role::Sender, _) => false,
        }
    }
}

/// What an endpoint needs of its caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Send,
    Operate,
}

impl Need {
    fn description(self) -> &'static str {
        match self {
            Need::Read => "the viewer or operator role",
            Need::Send => "the sender or operator role",
            Need::Operate => "the operator role",
        }
    }
}

/// A user of the users file.
#[derive(Clone)]
pub struct User {
    pub name: String,
    /// The SHA-256 of the user's bearer token: the token itself is never configured.
    pub token_sha256: [u8; 32],
    pub role: Role,
    /// The groups whose `approval by "GROUP"` the user may decide.
    pub groups: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsersError {
    #[error("the users file defines no user")]
    NoUsers,
    #[error(
        "user {0:?}: a name is made of letters, digits and `.`, `_`, `-`, `@` (it is written in the journal as who decided)"
    )]
    BadName(String),
    #[error("user {user:?}: token_sha256 must be 64 hexadecimal digits (the SHA-256 of the token)")]
    BadHash { user: String },
    #[error("users {first:?} and {second:?} have the same token: a token must name one user")]
    SameToken { first: String, second: String },
    #[error("user {user:?}: a group name cannot be empty")]
    EmptyGroup { user: String },
}

/// Reads the hex SHA-256 of a token (`token_sha256` in the users file).
pub fn parse_token_sha256(user: &str, hex_text: &str) -> Result<[u8; 32], UsersError> {
    let bad = || UsersError::BadHash {
        user: user.to_string(),
    };
    let bytes = hex::decode(hex_text.trim()).map_err(|_| bad())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())
}

pub(crate) fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Where identities come from.
#[derive(Clone)]
pub enum Identities {
    /// Nothing is configured: every request is `anonymous`, an operator, and approval groups
    /// are not enforced.
    Open,
    /// The single `auth.token_env` / `auth.token_file`: whoever holds it is `token`, an
    /// operator; approval groups are not enforced (a shared token names nobody).
    Token { sha256: [u8; 32] },
    /// The users file: each token names one user, with a role and approval groups, which
    /// are enforced.
    Users(Vec<User>),
}

impl Identities {
    /// The single shared token (kept only as its hash).
    pub fn token(token: &str) -> Identities {
        Identities::Token {
            sha256: sha256(token),
        }
    }

    /// The users of a users file, checked: at least one, valid names and groups, and no two
    /// with the same token.
    pub fn users(users: Vec<User>) -> Result<Identities, UsersError> {
        if users.is_empty() {
            return Err(UsersError::NoUsers);
        }
        for (index, user) in users.iter().enumerate() {
            let name_ok = !user.name.is_empty()
                && user
                    .name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
            if !name_ok {
                return Err(UsersError::BadName(user.name.clone()));
            }
            if user.groups.iter().any(|group| group.trim().is_empty()) {
                return Err(UsersError::EmptyGroup {
                    user: user.name.clone(),
                });
            }
            if let Some(other) = users
                .iter()
                .skip(index + 1)
                .find(|other| other.token_sha256 == user.token_sha256)
            {
                return Err(UsersError::SameToken {
                    first: user.name.clone(),
                    second: other.name.clone(),
                });
            }
        }
        Ok(Identities::Users(users))
    }

    /// Whether `approval by "GROUP"` can be enforced (only users have groups).
    pub fn enforces_groups(&self) -> bool {
        matches!(self, Identities::Users(_))
    }

    /// Whether a request needs a credential at all.
    pub fn required(&self) -> bool {
        !matches!(self, Identities::Open)
    }
}

/// Who a request comes from, as its credential says.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Written in the journal as who decided, paused, resumed or cancelled.
    pub name: String,
    pub role: Role,
    pub groups: ApprovalGroups,
}

impl Identity {
    /// The identity as the engine's audit log records it, acting through `via`.
    pub fn actor(&self, via: &'static str) -> Actor {
        Actor {
            name: self.name.clone(),
            role: self.role.as_str(),
            groups: self.groups.clone(),
            via,
        }
    }
}

/// The default of [`Signing::tolerance`] (`auth.hmac_tolerance_seconds`): 5 minutes.
pub const DEFAULT_SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

/// The generic webhook's signature: `X-Medic-Signature: sha256=<hex>`, the HMAC-SHA256 of
/// `"{timestamp}.{body}"` keyed with `secret`, where `timestamp` is the `X-Medic-Timestamp`
/// header (unix seconds). A request whose timestamp is further than `tolerance` from the
/// server's clock is refused, so a captured request cannot be replayed after that.
#[derive(Clone)]
pub struct Signing {
    pub secret: String,
    pub tolerance: Duration,
}

#[derive(Clone)]
pub struct Auth {
    pub identities: Identities,
    /// Required on the generic webhook, in addition to the bearer token.
    pub signing: Option<Signing>,
    /// The CloudWatch webhook's SNS checks; without them `/webhook/cloudwatch` is 404.
    pub sns: Option<Arc<crate::sns::SnsVerifier>>,
}

impl Auth {
    /// No credential anywhere.
    pub fn open() -> Auth {
        Auth {
            identities: Identities::Open,
            signing: None,
            sns: None,
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line, even through a debug print; hashes are left out
        // too.
        let identities = match &self.identities {
            Identities::Open => "open".to_string(),
            Identities::Token { .. } => "token <redacted>".to_string(),
            Identities::Users(users) => format!("{} users", users.len()),
        };
        f.debug_struct("Auth")
            .field("identities", &identities)
            .field(
                "signing",
                &self
                    .signing
                    .as_ref()
                    .map(|signing| format!("<redacted>, tolerance {:?}", signing.tolerance)),
            )
            .field("sns", &self.sns)
            .finish()
    }
}

/// The default of [`ServerLimits::body_bytes`] (`limits.body_bytes`): 1 MiB.
pub const DEFAULT_BODY_BYTES: usize = 1 << 20;
/// The largest `limits.body_bytes` allowed: 64 MiB (the largest source file the compiler
/// reads, too). A request body is held in memory whole.
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// The default of [`ServerLimits::request_timeout`] (`limits.request_timeout_seconds`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default of [`ServerLimits::concurrent_requests`] (`limits.concurrent_requests`).
pub const DEFAULT_CONCURRENT_REQUESTS: usize = 256;

/// What one request may cost, and how many may be handled at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// The largest request body (413 beyond); at most [`MAX_BODY_BYTES`].
    pub body_bytes: usize,
    /// From the moment a request is handled (authentication included) to its answer,
    /// reading the body included; 503 beyond.
    pub request_timeout: Duration,
    /// Requests handled at once; one more gets 503 at once.
    pub concurrent_requests: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            body_bytes: DEFAULT_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            concurrent_requests: DEFAULT_CONCURRENT_REQUESTS,
        }
    }
}

pub struct ServerState {
    pub engine: Engine,
    pub auth: Auth,
    pub limits: ServerLimits,
    pub reload: Reloader,
}

/// A JSON error answer.
pub(crate) struct Failure(pub(crate) StatusCode, pub(crate) String);

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
            // The store did not take the write (unreachable, failing, or this node's lease
            // lapsed): nothing was acknowledged, and the sender should retry (this node
            // later, or another).
            EngineError::Journal(_) | EngineError::Elsewhere(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::NoRun(_) | EngineError::NoRevert(_) => StatusCode::NOT_FOUND,
            EngineError::RevertNotOpen { .. } => StatusCode::CONFLICT,
            EngineError::NotActive(_) | EngineError::NoApproval { .. } => StatusCode::CONFLICT,
            EngineError::NotInGroup { .. } => StatusCode::FORBIDDEN,
            EngineError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EngineError::Stopped(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR || matches!(error, EngineError::Journal(_)) {
            tracing::error!(%error, "request failed");
        }
        Failure(status, error.to_string())
    }
}

pub fn router(state: Arc<ServerState>) -> Router {
    let limits = state.limits;
    // Every endpoint but `/healthz` authorizes its caller before its handler, and so before
    // its body, is touched.
    let gate = |need: Need, route: MethodRouter<Arc<ServerState>>| {
        route.route_layer(middleware::from_fn_with_state(
            (Arc::clone(&state), need),
            authorize,
        ))
    };
    Router::new()
        .route("/metrics", gate(Need::Read, get(metrics)))
        // SNS cannot send a bearer token: its messages are authenticated by their signature
        // and their topic (`crate::sns`), which are mandatory.
        .route("/webhook/cloudwatch", post(crate::sns::webhook))
        .route("/webhook/{source}", gate(Need::Send, post(webhook)))
        .route("/api/runs", gate(Need::Read, get(list_runs)))
        .route("/api/runs/{id}", gate(Need::Read, get(show_run)))
        .route(
            "/api/suppressions",
            gate(Need::Read, get(list_suppressions)),
        )
        .route("/api/reverts", gate(Need::Read, get(list_reverts)))
        .route("/api/audit", gate(Need::Read, get(audit_log)))
        .route("/api/stats", gate(Need::Read, get(stats)))
        .route(
            "/api/reverts/{id}/{action}",
            gate(Need::Operate, post(act_on_revert)),
        )
        .route(
            "/api/runs/{id}/{action}",
            gate(Need::Operate, post(act_on_run)),
        )
        .route("/api/reload", gate(Need::Operate, post(reload)))
        .route(
            "/api/kill-switch",
            gate(Need::Read, get(kill_switch)).merge(gate(Need::Operate, post(set_kill_switch))),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(
            // Outermost first: errors to answers, refuse beyond the concurrency limit at once,
            // then hold a slot for at most the timeout.
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |error: tower::BoxError| {
                    std::future::ready(over_limit(&error, limits))
                }))
                .layer(tower::load_shed::LoadShedLayer::new())
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits.concurrent_requests.max(1),
                ))
                .layer(tower::timeout::TimeoutLayer::new(limits.request_timeout)),
        )
        .merge(crate::web::routes())
        // Added after the limits, so they do not apply to it.
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// The answer when a request ran into [`ServerLimits`]: 503, which senders such as
/// Alertmanager retry.
fn over_limit(error: &tower::BoxError, limits: ServerLimits) -> Failure {
    if error.is::<tower::timeout::error::Elapsed>() {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than the limit of {} s (limits.request_timeout_seconds)",
                limits.request_timeout.as_secs()
            ),
        )
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        let count = limits.concurrent_requests;
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is at its limit: {count} request{} in progress (limits.concurrent_requests); retry",
                if count == 1 { " is" } else { "s are" }
            ),
        )
    } else {
        tracing::error!(%error, "request failed");
        Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
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

pub(crate) fn constant_time_equal(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is matched in any case
/// (RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once([' ', '\t'])?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// The identity a request's credential names, or why it names none.
fn identify(identities: &Identities, headers: &HeaderMap) -> Result<Identity, Failure> {
    identify_token(identities, bearer(headers))
}

/// The identity a token names (the bearer token of the API, the cookie of the web page).
pub(crate) fn identify_token(
    identities: &Identities,
    token: Option<&str>,
) -> Result<Identity, Failure> {
    let unauthorized = || {
        Failure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
    };
    match identities {
        Identities::Open => Ok(Identity {
            name: "anonymous".into(),
            role: Role::Operator,
            groups: ApprovalGroups::Unenforced,
        }),
        Identities::Token { sha256: expected } => {
            let given = sha256(token.ok_or_else(unauthorized)?);
            if constant_time_equal(&given, expected) {
                Ok(Identity {
                    name: "token".into(),
                    role: Role::Operator,
                    groups: ApprovalGroups::Unenforced,
                })
            } else {
                Err(unauthorized())
            }
        }
        Identities::Users(users) => {
            let given = sha256(token.ok_or_else(unauthorized)?);
            // Every hash is compared, so the time taken does not say which user came close.
            let mut found = None;
            for user in users {
                if constant_time_equal(&given, &user.token_sha256) {
                    found = Some(user);
                }
            }
            let user = found.ok_or_else(unauthorized)?;
            Ok(Identity {
                name: user.name.clone(),
                role: user.role,
                groups: ApprovalGroups::Member(user.groups.clone()),
            })
        }
    }
}

/// Runs before every handler but `/healthz`'s: names the caller from its credential,
/// refuses it when its role does not allow the endpoint, and hands the [`Identity`] to the
/// handler. The body is not read here, so an unauthenticated upload is refused unread.
async fn authorize(
    State((state, need)): State<(Arc<ServerState>, Need)>,
    mut request: Request,
    next: Next,
) -> Response {
    let identity = match identify(&state.auth.identities, request.headers()) {
        Ok(identity) => identity,
        Err(failure) => return failure.into_response(),
    };
    if !identity.role.allows(need) {
        let refusal = format!(
            "{} has the role {} and may not {} {}: it needs {}",
            identity.name,
            identity.role.as_str(),
            request.method(),
            request.uri().path(),
            need.description()
        );
        // An attempt to act without the right is an operator action too: audited, refused.
        if need == Need::Operate {
            let attempted = format!("{} {}", request.method(), request.uri().path());
            state
                .engine
                .audit(
                    &identity.actor("api"),
                    "denied",
                    None,
                    None,
                    attempted,
                    Some(refusal.clone()),
                )
                .await;
        }
        return Failure(StatusCode::FORBIDDEN, refusal).into_response();
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// The `X-Medic-Timestamp` of a signed request, checked against the clock (`now_ms`) before
/// the body is read; the answer is the timestamp's text, which the signature covers.
fn fresh_timestamp(signing: &Signing, headers: &HeaderMap, now_ms: i64) -> Result<String, Failure> {
    let unauthorized = |message: String| Failure(StatusCode::UNAUTHORIZED, message);
    let text = headers
        .get("x-medic-timestamp")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
        .ok_or_else(|| {
            unauthorized(
                "missing or unreadable X-Medic-Timestamp: send the unix time in seconds, and sign \"{timestamp}.{body}\"".into(),
            )
        })?;
    let seconds: i64 = text.parse().map_err(|_| {
        unauthorized(format!(
            "X-Medic-Timestamp {text} is not a unix time in seconds"
        ))
    })?;
    let skew = (now_ms / 1_000).abs_diff(seconds);
    let tolerance = signing.tolerance.as_secs();
    if skew > tolerance {
        return Err(unauthorized(format!(
            "X-Medic-Timestamp {text} is {skew} s away from the server's clock, more than the {tolerance} s allowed (auth.hmac_tolerance_seconds): a replayed or delayed request, or a clock that is off"
        )));
    }
    Ok(text.to_string())
}

/// Whether `X-Medic-Signature` is the HMAC-SHA256 of `"{timestamp}.{body}"`.
fn signature_ok(secret: &str, timestamp: &str, headers: &HeaderMap, body: &[u8]) -> bool {
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
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
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
pub(crate) fn body_bytes(
    state: &ServerState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Failure> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Failure(
                status,
                format!(
                    "the body is larger than the limit of {} bytes",
                    state.limits.body_bytes
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

/// A run row for the API: its JSON columns (arguments, report) as JSON, not strings. A
/// column that does not read is `null`, and `unreadable` says which and why (the row is
/// shown, not dropped, and not shown as if it were empty).
fn run_json(
    run: &crate::journal::RunRow,
    unreadable: &std::collections::BTreeMap<String, String>,
) -> serde_json::Value {
    let mut value = serde_json::to_value(run).unwrap_or_default();
    let mut unreadable = unreadable.clone();
    if let Some(object) = value.as_object_mut() {
        let mut parsed = |field: &str, text: Option<&str>| match text.map(serde_json::from_str) {
            None => serde_json::Value::Null,
            Some(Ok(value)) => value,
            Some(Err(error)) => {
                unreadable.insert(field.to_string(), error.to_string());
                serde_json::Value::Null
            }
        };
        let arguments = parsed("arguments", Some(&run.arguments));
        let report = parsed("report", run.report.as_deref());
        object.insert("arguments".into(), arguments);
        object.insert("report".into(), report);
        if !unreadable.is_empty() {
            object.insert("unreadable".into(), json!(unreadable));
        }
    }
    value
}

/// How long `/healthz` waits for the journal.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 `ok` when the process answers and its journal answers a read within
/// two seconds (ahead of queued writes); 503 with the reason when it does not, so a probe
/// sees a journal that is gone or stuck (its writer thread dead, its file unreadable).
async fn healthz(State(state): State<Arc<ServerState>>) -> Response {
    if state.engine.store_reachable() == Some(false) {
        return Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store does not answer this node's heartbeat".into(),
        )
        .into_response();
    }
    let read = state
        .engine
        .journal()
        .call_urgent(|journal| journal.schema_version());
    match tokio::time::timeout(HEALTH_TIMEOUT, read).await {
        Ok(Ok(_)) => "ok\n".into_response(),
        Ok(Err(error)) => Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the journal does not answer: {error}"),
        )
        .into_response(),
        Err(_) => Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the journal did not answer within {} s",
                HEALTH_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Result<Response, Failure> {
    state.engine.refresh_revert_metrics().await?;
    state.engine.refresh_backlog_metrics();
    if state.engine.metrics().stats_due() {
        let stats = state
            .engine
            .stats(STATS_SINCE_MS, crate::stats::DEFAULT_WITHIN_MS)
            .await?;
        state.engine.metrics().set_stats(&stats);
    }
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
    request: Request,
) -> Result<Response, Failure> {
    let read: fn(&[u8]) -> Result<Vec<ingest::Alert>, IngestError> = match source.as_str() {
        "alertmanager" => ingest::alertmanager,
        "grafana" => ingest::grafana,
        "zabbix" => ingest::zabbix,
        "azure" => ingest::azure,
        "elastic" => ingest::elastic,
        "generic" => ingest::generic,
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!(
                    "no webhook for {other:?}: use alertmanager, grafana, zabbix, azure, cloudwatch, elastic or generic"
                ),
            ));
        }
    };
    // The generic webhook also needs a signature over a fresh timestamp and the body; the
    // timestamp is checked before the body is read.
    let signing = state.auth.signing.as_ref().filter(|_| source == "generic");
    let timestamp = match signing {
        Some(signing) => Some(fresh_timestamp(
            signing,
            &headers,
            state.engine.clock().now_ms(),
        )?),
        None => None,
    };
    // Read only now: the caller is authenticated (`authorize`) and the source exists.
    let body = body_bytes(&state, Bytes::from_request(request, &()).await)?;
    if let (Some(signing), Some(timestamp)) = (signing, &timestamp)
        && !signature_ok(&signing.secret, timestamp, &headers, &body)
    {
        return Err(Failure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-Medic-Signature (sha256=<hex HMAC-SHA256 of \"{timestamp}.{body}\">)"
                .into(),
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

/// `GET /api/runs`: newest first, filtered as `crate::run_filter::RunFilter` says.
async fn list_runs(
    State(state): State<Arc<ServerState>>,
    filter: Result<Query<crate::run_filter::RunFilter>, QueryRejection>,
) -> Result<Response, Failure> {
    let filter = query(filter)?;
    let run_query = filter
        .to_query(state.engine.clock().now_ms(), 50)
        .map_err(|why| Failure(StatusCode::BAD_REQUEST, why))?;
    let runs = state.engine.runs_page(run_query).await?;
    let none = std::collections::BTreeMap::new();
    let runs: Vec<serde_json::Value> = runs.iter().map(|run| run_json(run, &none)).collect();
    Ok(Json(json!({ "runs": runs })).into_response())
}

#[derive(serde::Deserialize)]
struct RevertQuery {
    state: Option<String>,
}

use crate::metrics::REVERT_STATES;

async fn list_reverts(
    State(state): State<Arc<ServerState>>,
    revert_query: Result<Query<RevertQuery>, QueryRejection>,
) -> Result<Response, Failure> {
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

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevertActionBody {
    /// Why a human acknowledges a revert (required for `ack`).
    reason: Option<String>,
}

/// `POST /api/reverts/{id}/retry` and `/ack`: a human finishes a revert that failed or
/// needs attention. Who acts is the credential's identity.
async fn act_on_revert(
    State(state): State<Arc<ServerState>>,
    Extension(identity): Extension<Identity>,
    id_and_action: Result<Path<(i64, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let (revert, action) = path(id_and_action)?;
    let body: RevertActionBody = object_body(&body_bytes(&state, body)?)?;
    let operation = match action.as_str() {
        "retry" => Operation::RetryRevert { revert },
        "ack" => Operation::AcknowledgeRevert {
            revert,
            reason: body.reason.unwrap_or_default(),
        },
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no revert action {other:?}: use retry or ack"),
            ));
        }
    };
    let row = match state
        .engine
        .operate(&identity.actor("api"), operation)
        .await?
    {
        Done::Revert(row) => Some(row),
        Done::Decided(_) | Done::Other => None,
    };
    Ok(Json(json!({ "revert": row })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    /// Entries older than this entry id (paging).
    before: Option<i64>,
    run: Option<i64>,
}

/// `GET /api/audit`: operators' actions, done and refused, newest first.
async fn audit_log(
    State(state): State<Arc<ServerState>>,
    audit_query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let query = query(audit_query)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let entries = state
        .engine
        .audit_log(limit, query.before, query.run)
        .await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// How far back: `7d`, `24h`, ... (default 7 days).
    since: Option<String>,
    /// How soon after a run its alert must resolve to count (default 30 minutes).
    within: Option<String>,
}

/// A duration parameter (`7d`, `30m`), or `default` when absent.
pub(crate) fn duration_parameter(
    name: &str,
    text: Option<&str>,
    default: i64,
) -> Result<i64, Failure> {
    let Some(text) = text else {
        return Ok(default);
    };
    match medic_compiler::units::parse_duration(text) {
        Ok(ms) if ms > 0 => Ok(ms),
        Ok(_) => Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("`{name}` must be longer than 0"),
        )),
        Err(why) => Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("`{name}` is not a duration ({why}): write 7d, 24h, 30m, ..."),
        )),
    }
}

/// The default of `since` for the statistics: 7 days.
pub const STATS_SINCE_MS: i64 = 7 * 24 * 3_600 * 1_000;

/// `GET /api/stats`: each playbook's and rule's effectiveness (`crate::stats`).
async fn stats(
    State(state): State<Arc<ServerState>>,
    stats_query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let query = query(stats_query)?;
    let since = duration_parameter("since", query.since.as_deref(), STATS_SINCE_MS)?;
    let within = duration_parameter(
        "within",
        query.within.as_deref(),
        crate::stats::DEFAULT_WITHIN_MS,
    )?;
    let stats = state.engine.stats(since, within).await?;
    Ok(Json(stats).into_response())
}

async fn list_suppressions(
    State(state): State<Arc<ServerState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let suppressions = state.engine.suppressions(list_limit(query)?).await?;
    Ok(Json(json!({ "suppressions": suppressions })).into_response())
}

async fn show_run(
    State(state): State<Arc<ServerState>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, Failure> {
    let id = path(id)?;
    let detail = state.engine.run(id).await?;
    let mut body = serde_json::to_value(&detail).unwrap_or_default();
    if let (Some(object), Some(row)) = (
        body.as_object_mut(),
        run_json(&detail.run, &detail.unreadable).as_object(),
    ) {
        for (key, value) in row {
            object.insert(key.clone(), value.clone());
        }
    }
    Ok(Json(body).into_response())
}

/// An optional JSON object body: empty (or only whitespace) is the default; anything else
/// must be a JSON object (serde's derive would read `[null, "task"]` as one too).
fn object_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map(|ingest::JsonObject(body)| body)
        .map_err(|error| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("the request body is not valid: {error}"),
            )
        })
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Refused when present: who acts is the credential's identity, not what a body says.
    by: Option<serde::de::IgnoredAny>,
    task: Option<String>,
    reason: Option<String>,
    /// `feedback`: yes, no or partly.
    verdict: Option<String>,
    /// `feedback`: what the operator saw.
    note: Option<String>,
}

/// `POST /api/runs/{id}/{approve|reject|pause|resume|cancel|feedback}`.
async fn act_on_run(
    State(state): State<Arc<ServerState>>,
    Extension(identity): Extension<Identity>,
    id_and_action: Result<Path<(i64, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let (run, action) = path(id_and_action)?;
    let body: ActionBody = object_body(&body_bytes(&state, body)?)?;
    if body.by.is_some() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "`by` is not accepted: the journal records who the credential names ({})",
                identity.name
            ),
        ));
    }
    let (operation, answer) = match action.as_str() {
        "approve" => (
            Operation::Approve {
                run,
                task: body.task,
            },
            "approved",
        ),
        "reject" => (
            Operation::Reject {
                run,
                task: body.task,
                reason: body.reason.unwrap_or_else(|| "no reason given".into()),
            },
            "rejected",
        ),
        "pause" => (Operation::Pause { run }, "paused"),
        "resume" => (Operation::Resume { run }, "running"),
        "cancel" => (Operation::Cancel { run }, "cancelling"),
        "feedback" => (
            Operation::Feedback {
                run,
                verdict: body.verdict.ok_or_else(|| {
                    Failure(
                        StatusCode::BAD_REQUEST,
                        "feedback needs a `verdict`: yes, no or partly".into(),
                    )
                })?,
                note: body.note.unwrap_or_default(),
            },
            "recorded",
        ),
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!(
                    "no action {other:?}: use approve, reject, pause, resume, cancel or feedback"
                ),
            ));
        }
    };
    let done = state
        .engine
        .operate(&identity.actor("api"), operation)
        .await?;
    Ok(Json(match done {
        Done::Decided(tasks) => json!({ "run": run, answer: tasks }),
        Done::Revert(_) | Done::Other if answer == "recorded" => {
            json!({ "run": run, "feedback": "recorded" })
        }
        Done::Revert(_) | Done::Other => json!({ "run": run, "state": answer }),
    })
    .into_response())
}

async fn reload(
    State(state): State<Arc<ServerState>>,
    Extension(identity): Extension<Identity>,
) -> Result<Response, Failure> {
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
            let detail = format!(
                "{} rules, {} playbooks, {}",
                plan.rules.len(),
                plan.playbooks.len(),
                plan.content_hash
            );
            state.engine.replace_plan(plan);
            tracing::info!(by = %identity.name, "plans reloaded");
            let actor = identity.actor("api");
            state
                .engine
                .audit(&actor, "reload", None, None, detail, None)
                .await;
            Ok(Json(answer).into_response())
        }
        Err(diagnostics) => {
            let actor = identity.actor("api");
            let error = "the plans do not compile; the running plan is kept".to_string();
            state
                .engine
                .audit(
                    &actor,
                    "reload",
                    None,
                    None,
                    String::new(),
                    Some(error.clone()),
                )
                .await;
            Err(Failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{error}:\n{diagnostics}"),
            ))
        }
    }
}

async fn kill_switch(State(state): State<Arc<ServerState>>) -> Result<Response, Failure> {
    Ok(Json(json!({ "on": state.engine.kill_switch() })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KillSwitchBody {
    on: bool,
}

async fn set_kill_switch(
    State(state): State<Arc<ServerState>>,
    Extension(identity): Extension<Identity>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let body = body_bytes(&state, body)?;
    let ingest::JsonObject(body): ingest::JsonObject<KillSwitchBody> =
        serde_json::from_slice(&body).map_err(|error| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"on\": true|false}}: {error}"),
            )
        })?;
    state
        .engine
        .operate(
            &identity.actor("api"),
            Operation::KillSwitch { on: body.on },
        )
        .await?;
    Ok(Json(json!({ "on": body.on })).into_response())
}
