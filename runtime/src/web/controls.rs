//! Operators' controls: every form posts to `/ui/confirm`, which says exactly what will
//! happen, and its button posts to `/ui/act`, which does it through `Engine::operate` (so it
//! is in the audit log) as the logged-in operator.

use super::{cookie_token, csrf_of, page, refusal};
use crate::engine::Operation;
use crate::server::{Failure, ServerState, identify_token};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::sync::Arc;

/// The fields of a control form: the action, and the run or revert it is about.
#[derive(Debug, Default)]
struct ControlForm {
    csrf: String,
    action: String,
    run: Option<i64>,
    revert: Option<i64>,
    task: Option<String>,
    reason: Option<String>,
    /// `feedback`: yes, no or partly.
    verdict: Option<String>,
    /// `feedback`: what the operator saw.
    note: Option<String>,
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
            "verdict" if !value.is_empty() => form.verdict = Some(value),
            "note" if !value.trim().is_empty() => form.note = Some(value),
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
        ("feedback", Some(run), None, None) => {
            let verdict = match form.verdict.as_deref() {
                Some("yes") => "it fixed the problem",
                Some("no") => "it did not fix the problem",
                Some("partly") => "it partly fixed the problem",
                _ => return Err("feedback needs an answer: yes, no or partly".into()),
            };
            match form.note.as_deref() {
                Some(note) => format!("Record that run {run}: {verdict} (\"{note}\")."),
                None => format!("Record that run {run}: {verdict}."),
            }
        }
        (action, ..) => {
            return Err(format!(
                "no action {action:?} with these fields: approve and reject name a run and a task; pause, resume, cancel and feedback a run; retry_revert and ack_revert a revert; kill_on and kill_off nothing"
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
pub(super) async fn confirm(
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
                @if let Some(verdict) = &form.verdict { input type="hidden" name="verdict" value=(verdict); }
                @if let Some(note) = &form.note { input type="hidden" name="note" value=(note); }
                button type="submit" { "Yes" }
                " " a href=(back_to(&form)) { "No, go back" }
            }
        },
    )
}

/// Does what the confirmation page said, as the logged-in operator, then goes back.
pub(super) async fn act(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = control_form(&body);
    let identity = match operator(&state, &headers, &form) {
        Ok(identity) => identity,
        Err(refused) => {
            // Someone logged in without the operator role tried to act: audited, refused.
            let token = cookie_token(&headers);
            if let Ok(identity) = identify_token(&state.auth.identities, token.as_deref())
                && identity.role != crate::server::Role::Operator
            {
                state
                    .engine
                    .audit(
                        &identity.actor("web"),
                        "denied",
                        form.run,
                        form.revert,
                        format!("{} from the page", form.action),
                        Some(format!(
                            "{} has the role {}: only an operator acts",
                            identity.name,
                            identity.role.as_str()
                        )),
                    )
                    .await;
            }
            return *refused;
        }
    };
    if let Err(why) = describe_action(&form) {
        return refusal(StatusCode::BAD_REQUEST, &why);
    }
    let run = form.run.unwrap_or_default();
    let revert = form.revert.unwrap_or_default();
    let reason = form
        .reason
        .clone()
        .unwrap_or_else(|| "no reason given".into());
    let operation = match form.action.as_str() {
        "approve" => Operation::Approve {
            run,
            task: form.task.clone(),
        },
        "reject" => Operation::Reject {
            run,
            task: form.task.clone(),
            reason,
        },
        "pause" => Operation::Pause { run },
        "resume" => Operation::Resume { run },
        "cancel" => Operation::Cancel { run },
        "kill_on" => Operation::KillSwitch { on: true },
        "kill_off" => Operation::KillSwitch { on: false },
        "retry_revert" => Operation::RetryRevert { revert },
        "feedback" => Operation::Feedback {
            run,
            verdict: form.verdict.clone().unwrap_or_default(),
            note: form.note.clone().unwrap_or_default(),
        },
        _ => Operation::AcknowledgeRevert { revert, reason },
    };
    let done = state
        .engine
        .operate(&identity.actor("web"), operation)
        .await;
    match done {
        Ok(_) => Redirect::to(&back_to(&form)).into_response(),
        Err(error) => {
            let failure = Failure::from(error);
            refusal(failure.0, &failure.1)
        }
    }
}
