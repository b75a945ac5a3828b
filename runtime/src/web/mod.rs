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

pub mod dag;

use crate::executor::{RunReport, TaskOutcome};
use crate::server::{Failure, ServerState, identify_token};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The cookie that holds the page's credential (hex of the token).
const COOKIE: &str = "medic_token";
/// Runs on one page of the list.
const PAGE: usize = 50;
/// How many of the newest runs the list filters (a first version: no query by column).
const WINDOW: u32 = 5_000;

pub fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/runs", get(runs_page))
        .route("/ui/runs/{id}", get(run_page))
        .route("/ui/confirm", post(confirm))
        .route("/ui/act", post(act))
        .route("/ui/live", get(live))
        .route("/ui/live.js", get(live_script))
}

/// `/ui/live?run=ID` (or without `run`, for the list).
#[derive(Debug, Default, serde::Deserialize)]
pub struct LiveQuery {
    pub run: Option<i64>,
}

/// What the page shows changes when this text does: the run's state, events and reverts, or
/// for the list the newest run and the state of every run in progress.
async fn version(engine: &crate::engine::Engine, run: Option<i64>) -> String {
    match run {
        Some(run) => match engine.run(run).await {
            Ok(detail) => format!(
                "{}:{}:{}:{}",
                detail.run.state,
                detail.events.len(),
                detail.awaiting_approval.join(","),
                detail
                    .reverts
                    .iter()
                    .map(|revert| revert.state.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(error) => format!("error: {error}"),
        },
        None => {
            let newest = engine
                .runs(1)
                .await
                .ok()
                .and_then(|runs| runs.first().map(|run| format!("{}:{}", run.id, run.state)))
                .unwrap_or_default();
            let mut active = Vec::new();
            for run in engine.active_runs() {
                if let Ok(detail) = engine.run(run).await {
                    active.push(format!(
                        "{run}:{}:{}",
                        detail.events.len(),
                        detail.awaiting_approval.len()
                    ));
                }
            }
            format!("{newest}|{}", active.join(","))
        }
    }
}

/// Server-sent events: a `change` event with the page's version when it first connects and
/// whenever the version changes (checked twice a second). A browser's EventSource reconnects
/// by itself and is told the version again, so a change while it was away is not missed.
async fn live(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Response {
    if let Err(refused) = reader(&state, &headers) {
        return *refused;
    }
    let engine = state.engine.clone();
    let stream =
        futures::stream::unfold((engine, None::<String>), move |(engine, last)| async move {
            loop {
                let now = version(&engine, query.run).await;
                if last.as_ref() != Some(&now) {
                    let event = axum::response::sse::Event::default()
                        .event("change")
                        .data(now.clone());
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (engine, Some(now)),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
    axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
}

/// The page's only script: on a `change` event with a new version, the page is fetched
/// again and its `main` replaced (not while a field of it has the focus). Without it the
/// page still reads; it just does not move.
const LIVE_SCRIPT: &str = r#"(function () {
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource || !window.fetch) { return; }
  var last = null;
  var source = new EventSource(main.getAttribute("data-live"));
  source.addEventListener("change", function (event) {
    if (last === null) { last = event.data; return; }
    if (event.data === last) { return; }
    var focused = document.activeElement;
    if (focused && main.contains(focused) && focused.tagName === "INPUT") { return; }
    last = event.data;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (answer) { return answer.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        if (fresh) { main.innerHTML = fresh.innerHTML; }
      });
  });
})();
"#;

async fn live_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        LIVE_SCRIPT,
    )
        .into_response()
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

/// The fields of a control form: the action, and the run or revert it is about.
#[derive(Debug, Default)]
struct ControlForm {
    csrf: String,
    action: String,
    run: Option<i64>,
    revert: Option<i64>,
    task: Option<String>,
    reason: Option<String>,
}

fn control_form(body: &str) -> ControlForm {
    let mut form = ControlForm::default();
    for (name, value) in form_urlencoded::parse(body.as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "csrf" => form.csrf = value,
            "action" => form.action = value,
            "task" if !value.is_empty() => form.task = Some(value),
            "run" => form.run = value.parse().ok(),
            "revert" => form.revert = value.parse().ok(),
            "reason" if !value.trim().is_empty() => form.reason = Some(value),
            _ => {}
        }
    }
    form
}

/// The operator a control form comes from, or the answer that refuses it.
fn operator(
    state: &ServerState,
    headers: &HeaderMap,
    form: &ControlForm,
) -> Result<crate::server::Identity, Box<Response>> {
    let token = cookie_token(headers);
    let identity = identify_token(&state.auth.identities, token.as_deref())
        .map_err(|_| Box::new(Redirect::to("/ui/login").into_response()))?;
    let expected = csrf_of(token.as_deref().unwrap_or(""));
    if !crate::server::constant_time_equal(form.csrf.as_bytes(), expected.as_bytes()) {
        return Err(Box::new(refusal(
            StatusCode::FORBIDDEN,
            "The form did not come from this page (its CSRF token is missing or wrong): reload the run and try again.",
        )));
    }
    if identity.role != crate::server::Role::Operator {
        return Err(Box::new(refusal(
            StatusCode::FORBIDDEN,
            &format!(
                "{} has the role {}: only an operator acts on runs.",
                identity.name,
                identity.role.as_str()
            ),
        )));
    }
    Ok(identity)
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = page("refused", html! { p.error { (message) } });
    *response.status_mut() = status;
    response
}

/// What an action will do, in words, or why there is no such action.
fn describe_action(form: &ControlForm) -> Result<String, String> {
    let task = form.task.as_deref();
    let reason = form.reason.as_deref();
    Ok(match (form.action.as_str(), form.run, form.revert, task) {
        ("approve", Some(run), None, Some(task)) => {
            format!("Approve task `{task}` of run {run}: the task then runs.")
        }
        ("reject", Some(run), None, Some(task)) => format!(
            "Reject task `{task}` of run {run} ({}): the task does not run, and its failure policy applies.",
            reason.unwrap_or("no reason given")
        ),
        ("pause", Some(run), None, None) => {
            format!("Pause run {run}: no new task starts; running tasks finish.")
        }
        ("resume", Some(run), None, None) => format!("Resume run {run}."),
        ("cancel", Some(run), None, None) => format!(
            "Cancel run {run}: running tasks are stopped and no other task starts; reverts it scheduled still happen."
        ),
        ("kill_on", None, None, None) => "Turn the kill switch on: every action of every run is refused from now on (queries still run), until it is turned off; it stays on across restarts.".to_string(),
        ("kill_off", None, None, None) => "Turn the kill switch off: actions are performed again.".to_string(),
        ("retry_revert", None, Some(revert), None) => {
            format!("Retry revert {revert}: its undo is called again now.")
        }
        ("ack_revert", None, Some(revert), None) => match reason {
            Some(reason) => format!(
                "Acknowledge revert {revert} ({reason}): it ends acknowledged and is not tried again."
            ),
            None => return Err("acknowledging a revert needs a reason".into()),
        },
        (action, ..) => {
            return Err(format!(
                "no action {action:?} with these fields: approve and reject name a run and a task; pause, resume and cancel a run; retry_revert and ack_revert a revert; kill_on and kill_off nothing"
            ));
        }
    })
}

/// Where the page goes after an action: the run, else the list.
fn back_to(form: &ControlForm) -> String {
    match form.run {
        Some(run) => format!("/ui/runs/{run}"),
        None => "/ui/runs".to_string(),
    }
}

/// The confirmation page: what exactly will happen, and a button that does it.
async fn confirm(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = control_form(&body);
    if let Err(refused) = operator(&state, &headers, &form) {
        return *refused;
    }
    let what = match describe_action(&form) {
        Ok(what) => what,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, &why),
    };
    page(
        "confirm",
        html! {
            p { (what) }
            form method="post" action="/ui/act" {
                input type="hidden" name="csrf" value=(form.csrf);
                input type="hidden" name="action" value=(form.action);
                @if let Some(run) = form.run { input type="hidden" name="run" value=(run); }
                @if let Some(revert) = form.revert { input type="hidden" name="revert" value=(revert); }
                @if let Some(task) = &form.task { input type="hidden" name="task" value=(task); }
                @if let Some(reason) = &form.reason { input type="hidden" name="reason" value=(reason); }
                button type="submit" { "Yes" }
                " " a href=(back_to(&form)) { "No, go back" }
            }
        },
    )
}

/// Does what the confirmation page said, as the logged-in operator, then goes back.
async fn act(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: String) -> Response {
    let form = control_form(&body);
    let identity = match operator(&state, &headers, &form) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    if let Err(why) = describe_action(&form) {
        return refusal(StatusCode::BAD_REQUEST, &why);
    }
    let engine = &state.engine;
    let by = identity.name.clone();
    let run = form.run.unwrap_or_default();
    let revert = form.revert.unwrap_or_default();
    let reason = form
        .reason
        .clone()
        .unwrap_or_else(|| "no reason given".into());
    let done = match form.action.as_str() {
        "approve" => engine
            .decide(
                run,
                form.task.clone(),
                crate::executor::Decision::Approved { by },
                &identity.groups,
            )
            .await
            .map(|_| ()),
        "reject" => engine
            .decide(
                run,
                form.task.clone(),
                crate::executor::Decision::Rejected { by, reason },
                &identity.groups,
            )
            .await
            .map(|_| ()),
        "pause" => engine.pause(run, true, &by).await,
        "resume" => engine.pause(run, false, &by).await,
        "cancel" => engine.cancel(run, &by).await,
        "kill_on" => engine.set_kill_switch(true).await,
        "kill_off" => engine.set_kill_switch(false).await,
        "retry_revert" => engine.retry_revert(revert, &by).await.map(|_| ()),
        _ => engine
            .acknowledge_revert(revert, &by, &reason)
            .await
            .map(|_| ()),
    };
    if matches!(form.action.as_str(), "kill_on" | "kill_off") && done.is_ok() {
        tracing::warn!(by = %identity.name, on = form.action == "kill_on", "kill switch set from the web page");
    }
    match done {
        Ok(()) => Redirect::to(&back_to(&form)).into_response(),
        Err(error) => {
            let failure = Failure::from(error);
            refusal(failure.0, &failure.1)
        }
    }
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
                header { a href="/ui/runs" { "Medic" } " · " (title) }
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

async fn login(State(state): State<Arc<ServerState>>, body: String) -> Response {
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
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/ui",
        hex::encode(token.as_bytes())
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The filters of the runs list, from its query string.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RunFilter {
    pub state: Option<String>,
    pub rule: Option<String>,
    pub playbook: Option<String>,
    /// A run id.
    pub id: Option<i64>,
    /// 0-based.
    pub page: Option<usize>,
}

impl RunFilter {
    fn keeps(&self, run: &crate::journal::RunRow) -> bool {
        fn given(filter: &Option<String>) -> Option<&str> {
            filter.as_deref().filter(|text| !text.is_empty())
        }
        given(&self.state).is_none_or(|state| run.state == state)
            && given(&self.rule).is_none_or(|rule| run.rule == rule)
            && given(&self.playbook).is_none_or(|playbook| run.playbook == playbook)
            && self.id.is_none_or(|id| run.id == id)
    }
}

async fn runs_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(filter): Query<RunFilter>,
) -> Response {
    let csrf = match reader(&state, &headers) {
        Ok(csrf) => csrf,
        Err(refused) => return *refused,
    };
    let engine = &state.engine;
    let mut open_reverts = Vec::new();
    for revert_state in ["failed", "needs_attention"] {
        match engine.reverts(revert_state.into()).await {
            Ok(rows) => open_reverts.extend(rows),
            Err(error) => return Failure::from(error).into_response(),
        }
    }
    let kill_switch = engine.kill_switch();
    let runs = match engine.runs(WINDOW).await {
        Ok(runs) => runs,
        Err(error) => return Failure::from(error).into_response(),
    };
    // Waiting for a human: approvals of the runs in progress.
    let mut waiting: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for run in engine.active_runs() {
        if let Ok(detail) = engine.run(run).await
            && !detail.awaiting_approval.is_empty()
        {
            waiting.insert(run, detail.awaiting_approval);
        }
    }
    let page_index = filter.page.unwrap_or(0);
    let kept: Vec<&crate::journal::RunRow> = runs.iter().filter(|run| filter.keeps(run)).collect();
    let pinned: Vec<&crate::journal::RunRow> = runs
        .iter()
        .filter(|run| {
            waiting.contains_key(&run.id)
                || matches!(run.state.as_str(), "escalated" | "interrupted")
        })
        .take(PAGE)
        .collect();
    let shown: Vec<&&crate::journal::RunRow> =
        kept.iter().skip(page_index * PAGE).take(PAGE).collect();
    let value = |text: &Option<String>| text.clone().unwrap_or_default();
    live_page(
        "runs",
        Some("/ui/live"),
        html! {
            p {
                "Kill switch: "
                @if kill_switch { strong.error { "on — every action is refused" } } @else { "off" }
                @if let Some(csrf) = &csrf {
                    form.control method="post" action="/ui/confirm" style="display: inline" {
                        input type="hidden" name="csrf" value=(csrf);
                        @if kill_switch {
                            " " button type="submit" name="action" value="kill_off" { "Turn off" }
                        } @else {
                            " " button type="submit" name="action" value="kill_on" { "Turn on" }
                        }
                    }
                }
            }
            @if !open_reverts.is_empty() {
                h2 { "Reverts that need a human" }
                table {
                    thead { tr { th { "revert" } th { "run" } th { "task" } th { "state" } th { "detail" } th {} } }
                    tbody { @for revert in &open_reverts {
                        tr {
                            td { (revert.id) }
                            td { a href={ "/ui/runs/" (revert.run_id) } { (revert.run_id) } }
                            td { (revert.task) " (" (revert.function) ")" }
                            td { span class={ "state " (dag::state_class(&revert.state)) } { (revert.state) } }
                            td.output { (revert.detail) }
                            td { @if let Some(csrf) = &csrf {
                                form.control method="post" action="/ui/confirm" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="revert" value=(revert.id);
                                    button type="submit" name="action" value="retry_revert" { "Retry" }
                                    " or reason " input name="reason" size="20";
                                    " " button type="submit" name="action" value="ack_revert" { "Acknowledge" }
                                }
                            } }
                        }
                    } }
                }
            }
            form.filters method="get" action="/ui/runs" {
                label { "state " input name="state" value=(value(&filter.state)) size="10"; }
                label { " rule " input name="rule" value=(value(&filter.rule)) size="14"; }
                label { " playbook " input name="playbook" value=(value(&filter.playbook)) size="14"; }
                label { " run " input name="id" value=(filter.id.map(|id| id.to_string()).unwrap_or_default()) size="6"; }
                " " button type="submit" { "Filter" }
            }
            @if !pinned.is_empty() {
                h2 { "Waiting for a human" }
                (runs_table(&pinned.iter().collect::<Vec<_>>(), &waiting))
            }
            h2 { "Runs" }
            @if shown.is_empty() {
                p { "No run." }
            } @else {
                (runs_table(&shown, &waiting))
            }
            nav {
                @if page_index > 0 {
                    a href={ "/ui/runs?" (query(&filter, page_index - 1)) } { "newer" } " "
                }
                @if kept.len() > (page_index + 1) * PAGE {
                    a href={ "/ui/runs?" (query(&filter, page_index + 1)) } { "older" }
                }
            }
        },
    )
}

/// The query string of the list with `filter` at `page`.
fn query(filter: &RunFilter, page: usize) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("state", &filter.state),
        ("rule", &filter.rule),
        ("playbook", &filter.playbook),
    ] {
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
            out.append_pair(name, value);
        }
    }
    out.append_pair("page", &page.to_string());
    out.finish()
}

fn runs_table(runs: &[&&crate::journal::RunRow], waiting: &BTreeMap<i64, Vec<String>>) -> Markup {
    html! {
        table {
            thead { tr { th { "run" } th { "state" } th { "rule" } th { "playbook" } th { "started" } th { "finished" } } }
            tbody {
                @for run in runs {
                    tr {
                        td { a href={ "/ui/runs/" (run.id) } { (run.id) } }
                        td {
                            span class={ "state " (dag::state_class(&run.state)) } { (run.state) }
                            @if let Some(tasks) = waiting.get(&run.id) {
                                " · approval of " (tasks.join(", "))
                            }
                        }
                        td { (run.rule) }
                        td { (run.playbook) }
                        td { (time(run.started_at)) }
                        td { (run.finished_at.map(time).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

async fn run_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    // Operators get the controls, with the form field that proves they come from here.
    let csrf = match reader(&state, &headers) {
        Ok(csrf) => csrf,
        Err(refused) => return *refused,
    };
    let Ok(id) = id.parse::<i64>() else {
        return Failure(StatusCode::BAD_REQUEST, format!("{id:?} is not a run id")).into_response();
    };
    let detail = match state.engine.run(id).await {
        Ok(detail) => detail,
        Err(error) => return Failure::from(error).into_response(),
    };
    let report: Option<RunReport> = detail
        .run
        .report
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    let arguments: BTreeMap<String, medic_compiler::plan::Value> =
        serde_json::from_str(&detail.run.arguments).unwrap_or_default();
    // Each task's state: the report's when the run ended, else its last event.
    let mut states: BTreeMap<String, String> = BTreeMap::new();
    for event in &detail.events {
        states.insert(event.task.clone(), event.state.clone());
    }
    if let Some(report) = &report {
        for task in &report.tasks {
            states.insert(task.id.clone(), task.outcome.state().to_string());
        }
    }
    for task in &detail.awaiting_approval {
        states.insert(task.clone(), "awaiting_approval".into());
    }
    let run = &detail.run;
    // The alert that started it, and why its rule matches it (with the plan served now).
    let alert_id = run.alert_id;
    let alert = state
        .engine
        .journal()
        .call(move |journal| journal.alert(alert_id))
        .await
        .ok()
        .flatten()
        .and_then(|stored| crate::engine::stored::from_json(&stored.payload).ok());
    let why = alert.as_ref().and_then(|alert| {
        medic_compiler::plan::explain::explain(&state.engine.plan(), &alert.to_value())
            .rules
            .into_iter()
            .find(|rule| rule.rule == run.rule)
    });
    let live = format!("/ui/live?run={id}");
    live_page(
        &format!("run {id}"),
        Some(&live),
        html! {
            h1 { "Run " (id) ": " span class={ "state " (dag::state_class(&run.state)) } { (run.state) } }
            p {
                "Rule " strong { (run.rule) } " ran playbook " strong { (run.playbook) }
                " at " (time(run.started_at))
                @if let Some(finished) = run.finished_at { ", ended " (time(finished)) }
                "."
            }
            @if !detail.awaiting_approval.is_empty() {
                p.waiting { "Waiting for approval: " (detail.awaiting_approval.join(", ")) "." }
            }
            @if let Some(csrf) = &csrf {
                @for task in &detail.awaiting_approval {
                    form.control method="post" action="/ui/confirm" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="run" value=(id);
                        input type="hidden" name="task" value=(task);
                        (task) ": "
                        button type="submit" name="action" value="approve" { "Approve" }
                        " or reason " input name="reason" size="30";
                        " " button type="submit" name="action" value="reject" { "Reject" }
                    }
                }
                @if state.engine.active_runs().contains(&id) {
                    form.control method="post" action="/ui/confirm" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="run" value=(id);
                        "Run " (id) ": "
                        button type="submit" name="action" value="pause" { "Pause" } " "
                        button type="submit" name="action" value="resume" { "Resume" } " "
                        button type="submit" name="action" value="cancel" { "Cancel" }
                    }
                }
            }
            @if let Some(stopped) = report.as_ref().and_then(|report| report.stopped.as_ref()) {
                p.error { "Stopped: " (stopped) }
            }
            @if let Some(alert) = &alert {
                h2 { "Alert" }
                dl.alert {
                    dt { "name" } dd { (alert.name) " (" (alert.status.as_str()) ", " (alert.severity.as_str()) ")" }
                    @if !alert.service.is_empty() { dt { "service" } dd { (alert.service) } }
                    @if !alert.instance.is_empty() { dt { "instance" } dd { (alert.instance) } }
                    @if !alert.namespace.is_empty() { dt { "namespace" } dd { (alert.namespace) } }
                    dt { "value" } dd { @match &alert.value { Ok(value) => (medic_compiler::plan::Value::Quantity((*value).into()).to_text()), Err(why) => (why.to_string()) } }
                    @if !alert.summary.is_empty() { dt { "summary" } dd { (alert.summary) } }
                    dt { "started" } dd { (time(alert.starts_at)) }
                    dt { "labels" } dd { @for (name, value) in &alert.labels { span.label { (name) "=" (value) } " " } }
                    dt { "source" } dd { (alert.source) ", fingerprint " (alert.fingerprint) }
                }
            }
            @if let Some(why) = &why {
                h2 { "Why rule " (run.rule) " matches it" }
                ul.why {
                    li { "on alert " @if why.names.is_empty() { "*" } @else { (why.names.join(", ")) }
                        ": " (if why.name_matches { "yes" } else { "no" }) }
                    li { "lifecycle " (why.lifecycle) ": " (if why.lifecycle_matches { "yes" } else { "no" }) }
                    @for part in &why.parts {
                        li {
                            code { (part.text) } ": "
                            @match &part.result { Ok(true) => "true", Ok(false) => "false", Err(error) => (error) }
                            @for operand in &part.operands {
                                " · " code { (operand.text) } " = "
                                @match &operand.value { Ok(value) => (value), Err(error) => (error) }
                            }
                        }
                    }
                }
                p.note { "(with the plan the server runs now)" }
            }
            h2 { "Arguments" }
            dl { @for (name, value) in &arguments { dt { (name) } dd { (value.to_text()) } } }
            @if let Some(definition) = &detail.definition {
                h2 { "Tasks" }
                div.graph { (dag::svg(definition, &states)) }
            }
            @if let Some(report) = &report {
                table {
                    thead { tr { th { "task" } th { "function" } th { "outcome" } th { "attempts" } th { "arguments" } th { "output or reason" } } }
                    tbody {
                        @for task in &report.tasks {
                            tr {
                                td { (task.id) }
                                td { (task.function) }
                                td { span class={ "state " (dag::state_class(task.outcome.state())) } { (task.outcome.state()) } }
                                td { (task.attempts) }
                                td { @if let Some(arguments) = &task.arguments {
                                    @for (name, value) in arguments { div { (name) ": " (value.to_text()) } }
                                } }
                                td.output { (outcome_text(&task.outcome)) }
                            }
                        }
                    }
                }
            }
            h2 { "Events" }
            table {
                thead { tr { th { "time" } th { "task" } th { "state" } th { "detail" } } }
                tbody { @for event in &detail.events {
                    tr { td { (time(event.at)) } td { (event.task) } td { (event.state) } td.output { (event.detail) } }
                } }
            }
            @if !detail.reverts.is_empty() {
                h2 { "Reverts" }
                table {
                    thead { tr { th { "task" } th { "function" } th { "due" } th { "state" } th { "detail" } } }
                    tbody { @for revert in &detail.reverts {
                        tr {
                            td { (revert.task) } td { (revert.function) }
                            td { (revert.due_at.map(time).unwrap_or_else(|| "on resolve".into())) }
                            td { (revert.state) } td.output { (revert.detail) }
                        }
                    } }
                }
            }
        },
    )
}

fn outcome_text(outcome: &TaskOutcome) -> String {
    match outcome {
        TaskOutcome::Succeeded { output } => output.to_text(),
        TaskOutcome::Skipped { reason }
        | TaskOutcome::Failed { reason }
        | TaskOutcome::Cancelled { reason } => reason.clone(),
        TaskOutcome::WouldRun { args, .. } => format!("would run with {} arguments", args.len()),
        TaskOutcome::NotRun => String::new(),
    }
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1f24; }
header { background: #1b1f24; color: #fff; padding: 8px 16px; }
header a { color: #fff; font-weight: 600; text-decoration: none; }
main { padding: 8px 16px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 8px; text-align: left; vertical-align: top; }
td.output { max-width: 40em; overflow-wrap: anywhere; white-space: pre-wrap; }
.state { border-radius: 4px; padding: 0 6px; }
.ok { background: #dafbe1; } .failed { background: #ffebe9; } .skipped { background: #eaeef2; }
.running { background: #ddf4ff; } .waiting { background: #fff8c5; } .pending { background: #f6f8fa; }
.error { color: #cf222e; }
.filters label { margin-right: 8px; }
svg.dag .edge { stroke: #8c959f; stroke-width: 1.5; }
svg.dag rect { stroke: #57606a; }
svg.dag .ok rect { fill: #dafbe1; } svg.dag .failed rect { fill: #ffebe9; }
svg.dag .skipped rect { fill: #eaeef2; } svg.dag .running rect { fill: #ddf4ff; }
svg.dag .waiting rect { fill: #fff8c5; } svg.dag .pending rect { fill: #ffffff; }
svg.dag text { font-size: 12px; } svg.dag text.detail { fill: #57606a; font-size: 11px; }
";
