//! One test on the real engine: the plan's matcher, admission and executor, an in-memory
//! journal written on the caller's thread, the mocks as the toolbox, and a paused tokio
//! clock that the timeline moves. Nothing waits for wall time: when every task waits, the
//! clock jumps to the next timer (a cooldown's end, a retry's backoff, an approval's
//! `within`, a revert's due time).

use crate::mock::{Call, MockToolbox};
use medic_compiler::plan::suite::{EventKind, TestCase};
use medic_compiler::plan::{Plan, Value};
use medic_compiler::units::Quantity;
use medic_runtime::engine::{ApprovalGroups, Engine, EngineConfig};
use medic_runtime::executor::{Clock, Decision, RunReport};
use medic_runtime::ingest::{Alert, Status, fingerprint_of};
use medic_runtime::journal::{
    Journal, JournalHandle, RevertRow, Store, SuppressionRow, TaskEventRow,
};
use medic_runtime::normalize::{Severity, ValueError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The virtual time a test starts at: 2026-01-01T00:00:00Z.
pub const START_MS: i64 = 1_767_225_600_000;
/// How long after its last event a test watches what the engine does (reverts due later,
/// retries, approvals that time out). An approval never decided and without `within`
/// waits until the playbook's timeout, which ends the run before this.
pub const HORIZON_MS: i64 = 24 * 3_600_000;

/// A run, as the journal kept it.
#[derive(Debug, Clone)]
pub struct ObservedRun {
    pub id: i64,
    pub rule: String,
    pub playbook: String,
    pub alert_id: i64,
    pub arguments: BTreeMap<String, Value>,
    /// `succeeded`, `failed`, ... or `running` when it had not ended at the horizon.
    pub state: String,
    /// Milliseconds after the test's start.
    pub started_ms: i64,
    pub report: Option<RunReport>,
    pub events: Vec<TaskEventRow>,
    pub reverts: Vec<RevertRow>,
}

/// What the engine did over a test's timeline.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub runs: Vec<ObservedRun>,
    /// Oldest first.
    pub suppressions: Vec<SuppressionRow>,
    /// Every rule that matched an alert (started a run or was suppressed other than for a
    /// `when` it could not evaluate), in order.
    pub matched: Vec<String>,
    pub calls: Vec<Call>,
    /// Events of the timeline the engine could not take (an approval nobody waited for).
    pub problems: Vec<String>,
    /// Every alert the timeline sent, as rules see it (`alert.Alert`), for coverage.
    pub alerts: Vec<Value>,
}

/// An in-memory journal written on the caller's thread, for the tests one thread runs
/// one after the other: each starts with it cleared, so the schema and the prepared
/// statements are made once per thread rather than once per test.
pub fn journal() -> Result<JournalHandle, String> {
    Ok(JournalHandle::inline(Journal::in_memory().map_err(
        |error| format!("cannot open a journal: {error}"),
    )?))
}

/// Runs one test on its own current-thread runtime with a paused clock.
pub fn observe(
    plan: Arc<Plan>,
    case: &TestCase,
    journal: &JournalHandle,
) -> Result<Observed, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|error| format!("cannot start a runtime: {error}"))?;
    runtime.block_on(drive(plan, case, journal.clone()))
}

async fn drive(
    plan: Arc<Plan>,
    case: &TestCase,
    journal: JournalHandle,
) -> Result<Observed, String> {
    journal
        .call(Store::clear)
        .await
        .map_err(|error| format!("cannot clear the journal: {error}"))?;
    let clock = Clock::starting_at(START_MS);
    let toolbox = MockToolbox::new(case.mocks.clone(), clock, START_MS);
    let config = EngineConfig::default();
    let engine = Engine::start((*plan).clone(), journal, toolbox.clone(), clock, config)
        .await
        .map_err(|error| format!("the engine did not start: {error}"))?;
    let mut alerts: BTreeMap<String, Alert> = BTreeMap::new();
    let mut sent: Vec<Value> = Vec::new();
    let mut problems = Vec::new();
    for event in &case.events {
        clock.sleep_until(START_MS + event.at_ms).await;
        let now = clock.now_ms();
        let at = format!("line {}, at {}", event.source.line, offset(event.at_ms));
        match &event.kind {
            EventKind::Fire {
                alert,
                fields,
                again,
            } => {
                let fired = match (again, alerts.get(alert)) {
                    (true, Some(first)) => Alert {
                        status: Status::Firing,
                        ends_at: None,
                        ..first.clone()
                    },
                    _ => alert_of(fields, now),
                };
                alerts.insert(alert.clone(), fired.clone());
                sent.push(fired.to_value());
                if let Err(error) = engine.ingest("test", vec![fired]).await {
                    problems.push(format!("{at}: the alert was refused: {error}"));
                }
            }
            EventKind::Resolve { alert } => match alerts.get(alert) {
                Some(firing) => {
                    let resolved = Alert {
                        status: Status::Resolved,
                        ends_at: Some(now),
                        ..firing.clone()
                    };
                    sent.push(resolved.to_value());
                    if let Err(error) = engine.ingest("test", vec![resolved]).await {
                        problems.push(format!("{at}: the alert was refused: {error}"));
                    }
                }
                None => problems.push(format!("{at}: `{alert}` was never fired")),
            },
            EventKind::Decide { task, approve } => {
                let mut decided = false;
                for run in engine.active_runs() {
                    let Ok(detail) = engine.run(run).await else {
                        continue;
                    };
                    if !detail.awaiting_approval.contains(task) {
                        continue;
                    }
                    let decision = if *approve {
                        Decision::Approved { by: "test".into() }
                    } else {
                        Decision::Rejected {
                            by: "test".into(),
                            reason: "rejected by the test".into(),
                        }
                    };
                    match engine
                        .decide(
                            run,
                            Some(task.clone()),
                            decision,
                            &ApprovalGroups::Unenforced,
                        )
                        .await
                    {
                        Ok(_) => decided = true,
                        Err(error) => problems.push(format!("{at}: {error}")),
                    }
                }
                if !decided {
                    problems.push(format!(
                        "{at}: no run was waiting for the approval of `{task}`"
                    ));
                }
            }
        }
        settle().await;
    }
    // What the timeline set in motion: runs finishing, then reverts falling due.
    let horizon = clock.now_ms() + HORIZON_MS;
    let _ = tokio::time::timeout(Duration::from_millis(HORIZON_MS as u64), engine.idle()).await;
    for _ in 0..1000 {
        let pending = engine
            .reverts("pending".into())
            .await
            .map_err(|error| format!("cannot read the reverts: {error}"))?;
        let Some(due) = pending
            .iter()
            .filter_map(|revert| revert.due_at)
            .filter(|due| *due <= horizon)
            .min()
        else {
            break;
        };
        clock.sleep_until(due).await;
        settle().await;
        let left = horizon - clock.now_ms();
        if left <= 0 {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(left as u64), engine.idle()).await;
    }
    let mut observed = collect(&engine, &plan, toolbox.calls(), problems).await?;
    observed.alerts = sent;
    Ok(observed)
}

/// Lets everything the last event set off at this instant happen: the clock moves only
/// when every task waits, so a millisecond's sleep returns after all of it.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn collect(
    engine: &Engine,
    plan: &Plan,
    calls: Vec<Call>,
    problems: Vec<String>,
) -> Result<Observed, String> {
    let read =
        |error: medic_runtime::engine::EngineError| format!("cannot read the journal: {error}");
    let mut rows = engine.runs(u32::MAX).await.map_err(read)?;
    rows.sort_by_key(|row| row.id);
    let mut runs = Vec::new();
    for row in rows {
        let detail = engine.run(row.id).await.map_err(read)?;
        let arguments = serde_json::from_str(&row.arguments).unwrap_or_default();
        let report = row
            .report
            .as_deref()
            .and_then(|text| serde_json::from_str::<RunReport>(text).ok());
        runs.push(ObservedRun {
            id: row.id,
            rule: row.rule.clone(),
            playbook: row.playbook.clone(),
            alert_id: row.alert_id,
            arguments,
            state: row.state.clone(),
            started_ms: row.started_at - START_MS,
            report,
            events: detail.events,
            reverts: detail.reverts,
        });
    }
    let mut suppressions = engine.suppressions(u32::MAX).await.map_err(read)?;
    suppressions.reverse();
    // In the order the engine matched them: by alert, then in the plan's matching order.
    let position = |rule: &str| {
        plan.rules
            .iter()
            .position(|candidate| candidate.name == rule)
    };
    let mut matched: Vec<(i64, Option<usize>, String)> = runs
        .iter()
        .map(|run| (run.alert_id, position(&run.rule), run.rule.clone()))
        .chain(
            // A `when` that could not be evaluated did not match.
            suppressions
                .iter()
                .filter(|row| row.reason != "unevaluable")
                .map(|row| (row.alert_id, position(&row.rule), row.rule.clone())),
        )
        .collect();
    matched.sort();
    Ok(Observed {
        runs,
        suppressions,
        matched: matched.into_iter().map(|(_, _, rule)| rule).collect(),
        calls,
        problems,
        alerts: Vec::new(),
    })
}

/// `+5m30s`.
pub fn offset(millis: i64) -> String {
    let mut text = String::from("+");
    let (hours, minutes, seconds, rest) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000,
    );
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s"), (rest, "ms")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    if text == "+" {
        text.push_str("0s");
    }
    text
}

/// An alert from the fields a test gave, with an Alertmanager alert's defaults for the
/// rest: the labels carry `alertname`, `severity`, `service`, `instance` and `namespace`,
/// it starts firing at the event's time, and its fingerprint is its labels'.
pub fn alert_of(fields: &BTreeMap<String, Value>, now: i64) -> Alert {
    let text = |name: &str| match fields.get(name) {
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    };
    let strings = |name: &str| -> BTreeMap<String, String> {
        match fields.get(name) {
            Some(Value::Record(entries)) => entries
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_text(),
                    };
                    (key.clone(), text)
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let name = match text("name") {
        name if name.is_empty() => "TestAlert".to_string(),
        name => name,
    };
    let severity = match fields.get("severity") {
        Some(Value::Enum { name, .. }) => match name.as_str() {
            "critical" => Severity::Critical,
            "info" => Severity::Info,
            _ => Severity::Warning,
        },
        _ => Severity::Warning,
    };
    let value = match fields.get("value") {
        Some(Value::Int(number)) => Ok(Quantity::Number(*number as f64)),
        Some(Value::Float(number)) => Ok(Quantity::Number(*number)),
        Some(Value::Percent(percent)) => Ok(Quantity::Percent(*percent)),
        Some(Value::Duration(millis)) => Ok(Quantity::Duration(*millis)),
        Some(Value::Size(bytes)) => Ok(Quantity::Size(*bytes)),
        _ => Err(ValueError::Missing),
    };
    let mut labels = strings("labels");
    labels.entry("alertname".into()).or_insert(name.clone());
    labels
        .entry("severity".into())
        .or_insert(severity.as_str().to_string());
    for field in ["service", "instance", "namespace"] {
        let value = text(field);
        if !value.is_empty() {
            labels.entry(field.into()).or_insert(value);
        }
    }
    let mut annotations = strings("annotations");
    for field in ["summary", "description"] {
        let value = text(field);
        if !value.is_empty() {
            annotations.entry(field.into()).or_insert(value);
        }
    }
    if let Ok(quantity) = &value {
        let text = match quantity {
            Quantity::Number(number) => number.to_string(),
            Quantity::Percent(percent) => format!("{percent}%"),
            Quantity::Duration(millis) => format!("{millis}ms"),
            Quantity::Size(bytes) => format!("{bytes}B"),
        };
        annotations.entry("value".into()).or_insert(text);
    }
    let fingerprint = match text("fingerprint") {
        fingerprint if fingerprint.is_empty() => fingerprint_of(&labels),
        fingerprint => fingerprint,
    };
    Alert {
        name,
        status: Status::Firing,
        severity,
        service: text("service"),
        instance: text("instance"),
        namespace: text("namespace"),
        value,
        summary: text("summary"),
        description: text("description"),
        labels,
        annotations,
        starts_at: match fields.get("starts_at") {
            Some(Value::Time(at)) => *at,
            _ => now,
        },
        ends_at: None,
        fingerprint,
        source: match text("source") {
            source if source.is_empty() => "alertmanager".to_string(),
            source => source,
        },
    }
}
