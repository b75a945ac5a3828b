//! What the journal remembers, as pages: the alerts with what became of each (a run, a
//! suppression and its reason, or no rule), the suppressions, the audit log of operators'
//! actions, and each playbook's effectiveness (`crate::stats`).

use super::{dag, live_page, page, reader, refusal, time};
use crate::server::{Failure, STATS_SINCE_MS, ServerState, duration_parameter};
use crate::stats::{Effectiveness, Stats};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::sync::Arc;

/// Rows on one page of the alerts, suppressions and audit lists.
const ROWS: u32 = 100;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertsQuery {
    /// Alerts older than this alert id (paging).
    before: Option<i64>,
    name: Option<String>,
}

/// `/ui/alerts`: the newest alerts and why each did or did not start a run.
pub(super) async fn alerts_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Response {
    if let Err(refused) = reader(&state, &headers) {
        return *refused;
    }
    let Ok(Query(query)) = query else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "The alerts page takes `before` (an alert id) and `name`.",
        );
    };
    let name = query.name.clone().filter(|name| !name.trim().is_empty());
    let alerts = match state
        .engine
        .alert_summaries(ROWS, query.before, name.clone())
        .await
    {
        Ok(alerts) => alerts,
        Err(error) => return Failure::from(error).into_response(),
    };
    let older = alerts
        .last()
        .filter(|_| alerts.len() == ROWS as usize)
        .map(|alert| match &name {
            Some(name) => format!("/ui/alerts?before={}&name={}", alert.id, url(name)),
            None => format!("/ui/alerts?before={}", alert.id),
        });
    live_page(
        "alerts",
        Some("/ui/live"),
        html! {
            form.filters method="get" action="/ui/alerts" {
                label { "alert name " input name="name" value=(name.clone().unwrap_or_default()) size="20"; }
                " " button type="submit" { "Filter" }
            }
            @if alerts.is_empty() { p { "No alert." } } @else {
                table {
                    thead { tr { th { "alert" } th { "received" } th { "name" } th { "status" } th { "source" } th { "fingerprint" } th { "what became of it" } } }
                    tbody { @for alert in &alerts {
                        tr id={ "alert-" (alert.id) } {
                            td { (alert.id) }
                            td { (time(alert.received_at)) }
                            td { a href={ "/ui/runs?alert=" (url(&alert.name)) } { (alert.name) } }
                            td { (alert.status) }
                            td { (alert.source) }
                            td.output { (alert.fingerprint) }
                            td {
                                @for (run, rule) in &alert.runs {
                                    div { "started " a href={ "/ui/runs/" (run) } { "run " (run) } " of rule " (rule) }
                                }
                                @for suppression in &alert.suppressions {
                                    div { "rule " (suppression.rule) " did not run: "
                                        span class={ "state " (dag::state_class("skipped")) } { (suppression.reason) }
                                        @if !suppression.detail.is_empty() { " — " (suppression.detail) } }
                                }
                                @if alert.runs.is_empty() && alert.suppressions.is_empty() {
                                    @if !alert.processed { "waiting to be matched" }
                                    @else if alert.status == "resolved" { "resolved notification: ends its episode's runs and reverts on resolve" }
                                    @else { "no rule matched" }
                                }
                            }
                        }
                    } }
                }
            }
            @if let Some(older) = older {
                nav { a href=(older) { "older" } }
            }
        },
    )
}

/// `/ui/suppressions`: matched rules that did not start a run, and why.
pub(super) async fn suppressions_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = reader(&state, &headers) {
        return *refused;
    }
    let suppressions = match state.engine.suppressions(ROWS).await {
        Ok(rows) => rows,
        Err(error) => return Failure::from(error).into_response(),
    };
    live_page(
        "suppressions",
        Some("/ui/live"),
        html! {
            p { "A rule matched these alerts and did not start a run: the episode already had one (duplicate), the cooldown or concurrency limit held, or the rule could not be evaluated." }
            @if suppressions.is_empty() { p { "No suppression." } } @else {
                table {
                    thead { tr { th { "time" } th { "alert" } th { "rule" } th { "reason" } th { "detail" } } }
                    tbody { @for row in &suppressions {
                        tr {
                            td { (time(row.at)) }
                            td { a href={ "/ui/alerts?before=" (row.alert_id + 1) "#alert-" (row.alert_id) } { (row.alert_id) } }
                            td { (row.rule) }
                            td { (row.reason) }
                            td.output { (row.detail) }
                        }
                    } }
                }
            }
        },
    )
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    before: Option<i64>,
}

/// `/ui/audit`: every operator action, done or refused, newest first.
pub(super) async fn audit_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    if let Err(refused) = reader(&state, &headers) {
        return *refused;
    }
    let before = query.ok().and_then(|Query(query)| query.before);
    let entries = match state.engine.audit_log(ROWS, before, None).await {
        Ok(entries) => entries,
        Err(error) => return Failure::from(error).into_response(),
    };
    let older = entries
        .last()
        .map(|entry| entry.id)
        .filter(|_| entries.len() == ROWS as usize);
    page(
        "audit log",
        html! {
            (audit_table(&entries))
            @if let Some(older) = older { nav { a href={ "/ui/audit?before=" (older) } { "older" } } }
        },
    )
}

pub(super) fn audit_table(entries: &[crate::journal::AuditEntry]) -> Markup {
    html! {
        @if entries.is_empty() { p { "No operator action." } } @else {
            table.audit {
                thead { tr { th { "time" } th { "who" } th { "via" } th { "action" } th { "on" } th { "detail" } th { "outcome" } } }
                tbody { @for entry in entries {
                    tr {
                        td { (time(entry.at)) }
                        td { (entry.actor) " (" (entry.role) ")" }
                        td { (entry.via) }
                        td { (entry.action) }
                        td {
                            @if let Some(run) = entry.run_id { a href={ "/ui/runs/" (run) } { "run " (run) } }
                            @if let Some(revert) = entry.revert_id { "revert " (revert) }
                        }
                        td.output { (entry.detail) }
                        td {
                            @match &entry.error {
                                None => span class={ "state " (dag::state_class("succeeded")) } { "done" },
                                Some(error) => { span class={ "state " (dag::state_class("failed")) } { "refused" } " " (error) },
                            }
                        }
                    }
                } }
            }
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    since: Option<String>,
    within: Option<String>,
}

/// `/ui/stats`: each playbook's and rule's effectiveness, and time to resolve with a run
/// against without one.
pub(super) async fn stats_page(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Response {
    if let Err(refused) = reader(&state, &headers) {
        return *refused;
    }
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let since = duration_parameter("since", query.since.as_deref(), STATS_SINCE_MS);
    let within = duration_parameter(
        "within",
        query.within.as_deref(),
        crate::stats::DEFAULT_WITHIN_MS,
    );
    let (since, within) = match (since, within) {
        (Ok(since), Ok(within)) => (since, within),
        (Err(failure), _) | (_, Err(failure)) => return refusal(failure.0, &failure.1),
    };
    let stats = match state.engine.stats(since, within).await {
        Ok(stats) => stats,
        Err(error) => return Failure::from(error).into_response(),
    };
    page("effectiveness", stats_markup(&stats, &query))
}

fn stats_markup(stats: &Stats, query: &StatsQuery) -> Markup {
    let within = medic_compiler::units::format_duration(stats.within_ms);
    html! {
        form.filters method="get" action="/ui/stats" {
            label { "runs started in the last " input name="since" value=(query.since.clone().unwrap_or_else(|| "7d".into())) size="6"; }
            label { " · resolved within " input name="within" value=(query.within.clone().unwrap_or_else(|| "30m".into())) size="6"; " after the run" }
            " " button type="submit" { "Show" }
        }
        p { (stats.runs) " runs since " (time(stats.since)) ". "
            "After a run, its alert " strong { "resolved" } " (within " (within) ", and did not fire again within " (within) "), "
            strong { "fired again" } " (resolved, then the same alert fired within " (within) "), or "
            strong { "kept firing" } "; " strong { "open" } ": too early to say." }
        h2 { "Playbooks" }
        (effectiveness_table(&stats.playbooks))
        h2 { "Rules" }
        (effectiveness_table(&stats.rules))
        h2 { "Time to resolve" }
        @if stats.alerts.is_empty() { p { "No alert with a run." } } @else {
            table {
                thead { tr { th { "alert" } th { "episodes with a run" } th { "MTTR with a run" } th { "episodes without" } th { "MTTR without" } } }
                tbody { @for alert in &stats.alerts {
                    tr {
                        td { (alert.alert) }
                        td { (alert.with_run.episodes) " (" (alert.with_run.resolved) " resolved)" }
                        td { (crate::stats::seconds_text(alert.with_run.mttr_seconds)) }
                        td { (alert.without_run.episodes) " (" (alert.without_run.resolved) " resolved)" }
                        td { (crate::stats::seconds_text(alert.without_run.mttr_seconds)) }
                    }
                } }
            }
        }
    }
}

fn effectiveness_table(rows: &[Effectiveness]) -> Markup {
    html! {
        @if rows.is_empty() { p { "No run." } } @else {
            table.stats {
                thead { tr {
                    th { "name" } th { "runs" } th { "outcomes" } th { "median" } th { "p90" }
                    th { "resolved" } th { "fired again" } th { "kept firing" } th { "open" }
                    th { "actions" } th { "reverted" } th { "approvals" } th { "did it fix it?" }
                } }
                tbody { @for row in rows {
                    tr {
                        td { a href={ "/ui/runs?playbook=" (url(&row.name)) } { (row.name) } }
                        td { (row.runs) }
                        td { @for (outcome, count) in &row.outcomes {
                            span class={ "state " (dag::state_class(outcome)) } { (outcome) " " (count) } " "
                        } }
                        td { (crate::stats::seconds_text(row.run_seconds_median)) }
                        td { (crate::stats::seconds_text(row.run_seconds_p90)) }
                        td { (row.after.resolved) @if let Some(ratio) = row.resolved_ratio { " (" (format!("{:.0}", ratio * 100.0)) "%)" } }
                        td { (row.after.fired_again) }
                        td { (row.after.kept_firing) }
                        td { (row.after.open) }
                        td { (row.actions) }
                        td { (row.reverted) }
                        td { (row.approvals.asked) " asked, " (row.approvals.approved) " approved, " (row.approvals.rejected) " rejected"
                            @if let Some(wait) = row.approvals.wait_seconds_median { ", median wait " (crate::stats::seconds_text(Some(wait))) } }
                        td { "yes " (row.feedback.yes) ", partly " (row.feedback.partly) ", no " (row.feedback.no) }
                    }
                } }
            }
        }
    }
}

fn url(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
