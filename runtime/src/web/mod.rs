//! The web page of `medic serve` for the on-call engineer (`/ui`): the runs, newest first,
//! with the runs waiting for a human on top, and a run with its DAG drawn as SVG, its
//! tasks' arguments, outcomes and errors, its events and its reverts. HTML is written with
//! maud, which escapes every interpolated value, so alert data is always text. Pages read
//! without JavaScript.
//!
//! With a token configured, the pages need a login: the token (or a user's token) posted to
//! `/ui/login` is kept in an HttpOnly, SameSite=Strict cookie and checked as the API checks
//! a bearer token. The cookie is honoured by the pages only, never by the API, so a forged
//! cross-site request cannot act through it.

mod controls;
pub mod dag;
mod history;
mod live;
mod runs;

pub use live::LiveQuery;

use crate::server::{ServerState, identify_token};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use std::sync::Arc;

/// The cookie that holds the page's credential (hex of the token).
const COOKIE: &str = "medic_token";

pub fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", get(logout))
        .route("/ui/runs", get(runs::runs_page))
        .route("/ui/runs/{id}", get(runs::run_page))
        .route("/ui/alerts", get(history::alerts_page))
        .route("/ui/suppressions", get(history::suppressions_page))
        .route("/ui/audit", get(history::audit_page))
        .route("/ui/stats", get(history::stats_page))
        .route("/ui/confirm", post(controls::confirm))
        .route("/ui/act", post(controls::act))
        .route("/ui/live", get(live::live))
        .route("/ui/live.js", get(live::live_script))
}

/// The form field that proves a POST comes from a page Medic served to this browser: a
/// hash of the cookie's token and a secret of this process, which another site can neither
/// read nor compute (also when no token is configured and the token is empty).
fn csrf_of(token: &str) -> String {
    hex::encode(crate::server::sha256(&format!(
        "medic-csrf:{}:{token}",
        process_secret()
    )))
}

/// 128 random bits drawn once per process (from the standard library's randomly keyed
/// hasher, which the OS seeds).
fn process_secret() -> &'static str {
    use std::hash::{BuildHasher, Hasher};
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| {
        let draw = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        format!("{:016x}{:016x}", draw(), draw())
    })
}

/// The token of the page's cookie.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| hex::decode(value).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Who may read the page: for an operator, with the CSRF field its control forms carry.
/// Otherwise the answer: the login page, or 403 for a role that does not read runs.
fn reader(state: &ServerState, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
    let token = cookie_token(headers);
    let identity = identify_token(&state.auth.identities, token.as_deref())
        .map_err(|_| Box::new(Redirect::to("/ui/login").into_response()))?;
    if !identity.role.reads() {
        return Err(Box::new(forbidden(&identity)));
    }
    Ok((identity.role == crate::server::Role::Operator)
        .then(|| csrf_of(token.as_deref().unwrap_or(""))))
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = page("refused", html! { p.error { (message) } });
    *response.status_mut() = status;
    response
}

fn page(title: &str, body: Markup) -> Response {
    live_page(title, None, body)
}

/// A page whose `main` follows the server-sent events of `live` (`/ui/live?...`).
fn live_page(title: &str, live: Option<&str>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Medic" }
                style { (maud::PreEscaped(STYLE)) }
                @if live.is_some() { script src="/ui/live.js" defer {} }
            }
            body {
                header {
                    a.brand href="/ui/runs" { "Medic" }
                    nav {
                        a href="/ui/runs" { "Runs" } a href="/ui/alerts" { "Alerts" }
                        a href="/ui/suppressions" { "Suppressions" } a href="/ui/stats" { "Effectiveness" }
                        a href="/ui/audit" { "Audit" }
                        a href="/ui/logout" { "Log out" }
                    }
                    span.title { (title) }
                }
                main data-live=[live] { (body) }
            }
        }
    };
    let mut response = markup.into_response();
    let headers = response.headers_mut();
    // No script, style or frame from anywhere else; the page is not to be framed.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn forbidden(identity: &crate::server::Identity) -> Response {
    let mut response = page(
        "not allowed",
        html! {
            p.error { (identity.name) " has the role " (identity.role.as_str())
                ", which does not read runs: the page needs the viewer or operator role." }
            a href="/ui/login" { "Log in as someone else" }
        },
    );
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

async fn login_form() -> Response {
    page(
        "log in",
        html! {
            form method="post" action="/ui/login" {
                label { "Token " input type="password" name="token" autocomplete="current-password" autofocus; }
                " " button type="submit" { "Log in" }
            }
        },
    )
}

/// Whether the browser reached the page over HTTPS through a proxy that says so
/// (`X-Forwarded-Proto: https`): the cookie is then `Secure`, never sent over plain HTTP.
fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Forgets the cookie.
async fn logout(headers: HeaderMap) -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    let secure = if behind_https(&headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn login(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let token = form_urlencoded::parse(body.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if identify_token(&state.auth.identities, Some(&token)).is_err() {
        let mut response = page(
            "log in",
            html! {
                p.error { "That token is not known." }
                a href="/ui/login" { "Try again" }
            },
        );
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let mut response = Redirect::to("/ui/runs").into_response();
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/ui{}",
        hex::encode(token.as_bytes()),
        if behind_https(&headers) {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1f24; }
header { background: #1b1f24; color: #fff; padding: 8px 16px; }
header a { color: #fff; text-decoration: none; }
header a.brand { font-weight: 600; margin-right: 16px; }
header nav { display: inline; } header nav a { margin-right: 12px; opacity: 0.85; }
header .title { float: right; opacity: 0.7; }
main { padding: 8px 16px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 8px; text-align: left; vertical-align: top; }
td.output { max-width: 40em; overflow-wrap: anywhere; white-space: pre-wrap; }
.state { border-radius: 4px; padding: 0 6px; }
.ok { background: #dafbe1; } .failed { background: #ffebe9; } .skipped { background: #eaeef2; }
.running { background: #ddf4ff; } .waiting { background: #fff8c5; } .pending { background: #f6f8fa; }
.error { color: #cf222e; }
section.finding { border-left: 3px solid #0969da; padding-left: 12px; margin: 12px 0; }
p.summary { font-weight: 600; }
details.report pre { background: #f6f8fa; padding: 8px; overflow-x: auto; }
dl.value { margin: 0; } dl.value dt { font-weight: 600; } dl.value dd { margin-left: 16px; }
.filters label { margin-right: 8px; white-space: nowrap; display: inline-block; }
svg.dag .edge { stroke: #8c959f; stroke-width: 1.5; }
svg.dag rect { stroke: #57606a; }
svg.dag .ok rect { fill: #dafbe1; } svg.dag .failed rect { fill: #ffebe9; }
svg.dag .skipped rect { fill: #eaeef2; } svg.dag .running rect { fill: #ddf4ff; }
svg.dag .waiting rect { fill: #fff8c5; } svg.dag .pending rect { fill: #ffffff; }
svg.dag .folded rect { fill: #f6f8fa; }
svg.dag text { font-size: 12px; } svg.dag text.detail { fill: #57606a; font-size: 11px; }
";
