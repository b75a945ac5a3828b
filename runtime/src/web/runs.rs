//! The runs list (`/ui/runs`) and a run (`/ui/runs/{id}`).

use super::{dag, live_page, reader, time};
use crate::executor::{RunReport, TaskOutcome};
use crate::run_filter::RunFilter;
use crate::server::{Failure, ServerState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs on one page of the list.
const PAGE: usize = 50;

/// How long an escalated or interrupted run stays pinned on top of the list.
const PINNED_FOR_MS: i64 = 24 * 3_600 * 1_000;

pub(super) async fn runs_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    filter: Result<Query<RunFilter>, QueryRejection>,
) -> Response {
    let csrf = match reader(&state, &headers) {
        Ok(csrf) => csrf,
        Err(refused) => return *refused,
    };
    let engine = &state.engine;
    let now = engine.clock().now_ms();
    let (filter, problem) = match filter {
        Ok(Query(filter)) => (filter, None),
        Err(rejection) => (RunFilter::default(), Some(rejection.body_text())),
    };
    let (run_query, problem) = match (problem, filter.to_query(now, PAGE as u32 + 1)) {
        (None, Ok(query)) => (Some(query), None),
        (Some(problem), _) | (None, Err(problem)) => (None, Some(problem)),
    };
    let mut open_reverts = Vec::new();
    for revert_state in ["failed", "needs_attention"] {
        match engine.reverts(revert_state.into()).await {
            Ok(rows) => open_reverts.extend(rows),
            Err(error) => return Failure::from(error).into_response(),
        }
    }
    let kill_switch = engine.kill_switch();
    // One more than a page: whether there is an older page.
    let mut runs = match run_query {
        Some(mut query) => {
            query.limit = PAGE as u32 + 1;
            query.offset = filter.page.unwrap_or(0).saturating_mul(PAGE as u32);
            match engine.runs_page(query).await {
                Ok(runs) => runs,
                Err(error) => return Failure::from(error).into_response(),
            }
        }
        None => Vec::new(),
    };
    let older = runs.len() > PAGE;
    runs.truncate(PAGE);
    // Waiting for a human: approvals of the runs in progress, and runs escalated or
    // interrupted in the last day.
    let waiting = engine.awaiting_approvals_anywhere().await;
    let mut pinned = Vec::new();
    for run in waiting.keys() {
        if let Ok(detail) = engine.run(*run).await {
            pinned.push(detail.run);
        }
    }
    match engine
        .runs_needing_a_human(now.saturating_sub(PINNED_FOR_MS), PAGE as u32)
        .await
    {
        Ok(rows) => pinned.extend(rows),
        Err(error) => return Failure::from(error).into_response(),
    }
    pinned.sort_by_key(|run| std::cmp::Reverse(run.id));
    pinned.truncate(PAGE);
    let page_index = filter.page.unwrap_or(0);
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
                label { "state " input name="state" value=(value(&filter.state)) size="10" list="run-states"; }
                datalist id="run-states" { @for name in crate::run_filter::RUN_STATES { option value=(name) {} } }
                label { " rule " input name="rule" value=(value(&filter.rule)) size="14"; }
                label { " playbook " input name="playbook" value=(value(&filter.playbook)) size="14"; }
                label { " alert " input name="alert" value=(value(&filter.alert)) size="14"; }
                label { " label " input name="label" value=(value(&filter.label)) size="14" placeholder="name=value"; }
                label { " from " input name="from" value=(value(&filter.from)) size="16" placeholder="2h or 2026-12-01 10:00"; }
                label { " to " input name="to" value=(value(&filter.to)) size="16"; }
                label { " run " input name="id" value=(value(&filter.id)) size="6"; }
                label { " alert id " input name="alert_id" value=(value(&filter.alert_id)) size="6"; }
                " " button type="submit" { "Filter" }
            }
            @if let Some(problem) = &problem {
                p.error { (problem) }
            }
            @if !pinned.is_empty() {
                h2 { "Waiting for a human" }
                (runs_table(&pinned, &waiting))
            }
            h2 { "Runs" }
            @if runs.is_empty() {
                p { "No run." }
            } @else {
                (runs_table(&runs, &waiting))
            }
            nav {
                @if page_index > 0 {
                    a href={ "/ui/runs?" (query(&filter, page_index - 1)) } { "newer" } " "
                }
                @if older {
                    a href={ "/ui/runs?" (query(&filter, page_index + 1)) } { "older" }
                }
            }
        },
    )
}

/// The query string of the list with `filter` at `page`.
fn query(filter: &RunFilter, page: u32) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("state", &filter.state),
        ("rule", &filter.rule),
        ("playbook", &filter.playbook),
        ("alert", &filter.alert),
        ("label", &filter.label),
        ("from", &filter.from),
        ("to", &filter.to),
        ("id", &filter.id),
        ("alert_id", &filter.alert_id),
    ] {
        if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
            out.append_pair(name, value);
        }
    }
    out.append_pair("page", &page.to_string());
    out.finish()
}

fn runs_table(runs: &[crate::journal::RunRow], waiting: &BTreeMap<i64, Vec<String>>) -> Markup {
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

/// `?graph=all` draws every task of a wide playbook in its own box.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct RunPageQuery {
    graph: Option<String>,
}

pub(super) async fn run_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    page_query: Result<Query<RunPageQuery>, QueryRejection>,
) -> Response {
    let all_tasks = page_query.is_ok_and(|Query(query)| query.graph.as_deref() == Some("all"));
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
    let feedback = &detail.feedback;
    let audit = state
        .engine
        .audit_log(50, None, Some(id))
        .await
        .unwrap_or_default();
    let effect = state
        .engine
        .effect_of_run(run, crate::stats::DEFAULT_WITHIN_MS)
        .await
        .ok();
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
                @if state.engine.controllable(run) {
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
                div.graph { (dag::svg(definition, &states, all_tasks)) }
                @if all_tasks {
                    p { a href={ "/ui/runs/" (id) } { "Fold wide columns" } }
                } @else if !dag::fold(definition, &states, dag::FAN_LIMIT).hidden.is_empty() {
                    p { "Wide columns are folded (the tasks that failed, wait or run are shown first). "
                        a href={ "/ui/runs/" (id) "?graph=all" } { "Show all " (definition.tasks.len()) " tasks" } }
                }
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
            @if let Some(report) = &report {
                (findings(report))
                details.report {
                    summary { "The full report" }
                    pre { (crate::report::text(&format!("run {id}"), report, detail.definition.as_ref(), false)) }
                }
            }
            h2 { "Did this run fix it?" }
            @if let Some((effect, resolved)) = &effect {
                p { "Its alert: " (effect_text(*effect, *resolved, run.finished_at)) }
            }
            @if !feedback.is_empty() {
                ul.feedback { @for answer in feedback {
                    li { (time(answer.at)) " · " strong { (answer.by) } ": " (answer.verdict)
                        @if !answer.note.is_empty() { " — " (answer.note) } }
                } }
            }
            @if let Some(csrf) = &csrf {
                form.control method="post" action="/ui/confirm" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="run" value=(id);
                    input type="hidden" name="action" value="feedback";
                    label { input type="radio" name="verdict" value="yes"; " yes" } " "
                    label { input type="radio" name="verdict" value="partly"; " partly" } " "
                    label { input type="radio" name="verdict" value="no"; " no" } " "
                    " note " input name="note" size="40";
                    " " button type="submit" { "Answer" }
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
            @if !audit.is_empty() {
                h2 { "Operators' actions" }
                (super::history::audit_table(&audit))
            }
        },
    )
}

/// The functions whose answers are findings a person reads: the dependency walk and its
/// probes, log analysis, traces.
const FINDING_PREFIXES: [&str; 3] = ["diagnose.", "logs.", "trace."];

/// The diagnosis and log findings of a run as sections: one per task of those functions
/// that succeeded, its summary first, lists of records as tables.
fn findings(report: &RunReport) -> Markup {
    html! {
        @for task in &report.tasks {
            @if FINDING_PREFIXES.iter().any(|prefix| task.function.starts_with(prefix)) {
                @if let TaskOutcome::Succeeded { output } = &task.outcome {
                    section.finding {
                        h2 { "Findings of " (task.id) " (" (task.function) ")" }
                        @if let medic_compiler::plan::Value::Record(fields) = output {
                            @if let Some(medic_compiler::plan::Value::String(summary)) = fields.get("summary") {
                                p.summary { (summary) }
                            }
                            (value_markup(output, 0))
                        } @else {
                            p { (output.to_text()) }
                        }
                    }
                }
            }
        }
    }
}

/// A value as nested HTML: a record as a definition list, a list of records as a table,
/// another list as items; at most 4 levels deep (deeper values as text).
fn value_markup(value: &medic_compiler::plan::Value, depth: usize) -> Markup {
    use medic_compiler::plan::Value;
    match value {
        Value::Record(fields) if depth < 4 => html! {
            dl.value { @for (name, field) in fields.iter().filter(|(name, _)| depth > 0 || name.as_str() != "summary") {
                dt { (name) } dd { (value_markup(field, depth + 1)) }
            } }
        },
        Value::List(items)
            if depth < 4
                && items.iter().all(|item| matches!(item, Value::Record(_)))
                && !items.is_empty() =>
        {
            let mut columns: Vec<&String> = Vec::new();
            for item in items {
                if let Value::Record(fields) = item {
                    for name in fields.keys() {
                        if !columns.contains(&name) {
                            columns.push(name);
                        }
                    }
                }
            }
            html! {
                table.value {
                    thead { tr { @for column in &columns { th { (column) } } } }
                    tbody { @for item in items {
                        tr { @for column in &columns {
                            td { @if let Value::Record(fields) = item {
                                @if let Some(field) = fields.get(*column) { (value_markup(field, depth + 1)) }
                            } }
                        } }
                    } }
                }
            }
        }
        Value::List(items) if depth < 4 && !items.is_empty() => html! {
            ul.value { @for item in items { li { (value_markup(item, depth + 1)) } } }
        },
        other => html! { (other.to_text()) },
    }
}

/// How a run's alert fared after it, in words.
fn effect_text(
    effect: crate::stats::Effect,
    resolved: Option<i64>,
    finished: Option<i64>,
) -> String {
    use crate::stats::Effect;
    let window = medic_compiler::units::format_duration(crate::stats::DEFAULT_WITHIN_MS);
    let when = resolved.map(time).unwrap_or_default();
    match (effect, finished) {
        (Effect::Open, None) => "the run is still going.".to_string(),
        (Effect::Open, Some(_)) if resolved.is_some() => {
            format!(
                "resolved at {when}; it counts as fixed if it does not fire again within {window}."
            )
        }
        (Effect::Open, Some(_)) => {
            format!("still firing; it has {window} after the run to resolve.")
        }
        (Effect::Resolved, _) => {
            format!("resolved at {when}, and did not fire again within {window}.")
        }
        (Effect::FiredAgain, _) => {
            format!("resolved at {when}, then fired again within {window}.")
        }
        (Effect::KeptFiring, _) => {
            format!("kept firing: no resolve within {window} after the run.")
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::executor::{RunOutcome, TaskReport};
    use medic_compiler::plan::Value;

    fn text(value: &str) -> Value {
        Value::String(value.into())
    }

    #[test]
    fn a_diagnosis_is_a_section_with_its_summary_and_its_evidence_as_a_table() {
        let evidence = |service: &str, abnormal: bool| {
            Value::record([
                ("service".to_string(), text(service)),
                ("check".to_string(), text("p99 latency")),
                ("value".to_string(), text("<b>2.1 s</b>")),
                ("abnormal".to_string(), Value::Bool(abnormal)),
            ])
        };
        let diagnosis = Value::record([
            (
                "summary".to_string(),
                text("payments is slow because of db"),
            ),
            ("root_cause".to_string(), text("db")),
            (
                "path".to_string(),
                Value::List(vec![text("payments"), text("db")]),
            ),
            (
                "evidence".to_string(),
                Value::List(vec![evidence("payments", false), evidence("db", true)]),
            ),
        ]);
        let task = |id: &str, function: &str, output: Value| TaskReport {
            id: id.into(),
            function: function.into(),
            outcome: TaskOutcome::Succeeded { output },
            attempts: 1,
            arguments: None,
            finished_at: None,
        };
        let report = RunReport {
            playbook: "slow".into(),
            outcome: RunOutcome::Succeeded,
            stopped: None,
            tasks: vec![
                task("walk", "diagnose.walk", diagnosis),
                task("health", "http.get", text("not a finding")),
            ],
        };
        let html = findings(&report).into_string();
        assert!(html.contains("Findings of walk (diagnose.walk)"), "{html}");
        assert!(!html.contains("health"), "only findings: {html}");
        assert!(
            html.contains("<p class=\"summary\">payments is slow because of db</p>"),
            "{html}"
        );
        assert!(html.contains("<th>abnormal</th>"), "{html}");
        assert_eq!(
            html.matches("<tr>").count(),
            3,
            "a header and two rows: {html}"
        );
        assert!(html.contains("<li>payments</li><li>db</li>"), "{html}");
        assert!(html.contains("&lt;b&gt;2.1 s&lt;/b&gt;"), "escaped: {html}");
        assert_eq!(
            html.matches("summary").count(),
            1,
            "the summary once: {html}"
        );
    }
}
