//! What the journal remembers for people rather than for the engine: the audit log of
//! operators' actions, their answers to "did this run fix it?", and the facts the
//! effectiveness statistics are computed from ([`crate::stats`], which does no I/O).

use super::{Journal, JournalError, write_error};
use crate::stats::{EpisodeFact, Facts, FeedbackFact, RunFact};
use rusqlite::params;
use std::collections::BTreeMap;

/// One operator action, as the audit log keeps it: who, through what, what, and whether it
/// was done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    /// The user the credential names (`anonymous` without one, `token` for the single token).
    pub actor: String,
    pub role: String,
    /// `api` (the HTTP API and the CLI's client commands) or `web` (the page).
    pub via: String,
    /// `approve`, `reject`, `pause`, `resume`, `cancel`, `kill_switch`, `retry_revert`,
    /// `ack_revert`, `feedback`, `reload`, or `denied` (a credential without the operator
    /// role tried one; `detail` names the request).
    pub action: String,
    pub run_id: Option<i64>,
    pub revert_id: Option<i64>,
    /// What was asked, in words (the task, the reason, the verdict, the switch's state).
    pub detail: String,
    /// `done`, or `refused` with why in `error`.
    pub outcome: String,
    pub error: Option<String>,
}

/// An audit entry to write; the journal gives it its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at: i64,
    pub actor: String,
    pub role: String,
    pub via: String,
    pub action: String,
    pub run_id: Option<i64>,
    pub revert_id: Option<i64>,
    pub detail: String,
    pub error: Option<String>,
}

/// An operator's answer to "did this run fix it?".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FeedbackRow {
    pub run_id: i64,
    pub at: i64,
    pub by: String,
    /// `yes`, `no` or `partly`.
    pub verdict: String,
    pub note: String,
}

/// The task-event states the statistics read: outcomes of tasks and approvals.
pub(super) const FACT_STATES: &str = "'succeeded', 'awaiting_approval', 'approved', 'rejected'";

impl Journal {
    pub fn audit(&mut self, entry: &NewAuditEntry) -> Result<i64, JournalError> {
        self.connection
            .prepare_cached(
                "INSERT INTO audit (at, actor, role, via, action, run_id, revert_id, detail, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    entry.at,
                    entry.actor,
                    entry.role,
                    entry.via,
                    entry.action,
                    entry.run_id,
                    entry.revert_id,
                    entry.detail,
                    if entry.error.is_some() { "refused" } else { "done" },
                    entry.error,
                ])
            })
            .map_err(write_error("writing the audit log"))?;
        Ok(self.connection.last_insert_rowid())
    }

    /// The audit log, newest first: at most `limit` entries older than the entry `before`
    /// (all when `None`), of one run when `run` is given.
    pub fn audit_log(
        &self,
        limit: u32,
        before: Option<i64>,
        run: Option<i64>,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id, at, actor, role, via, action, run_id, revert_id, detail, outcome, error
                 FROM audit WHERE (?2 IS NULL OR id < ?2) AND (?3 IS NULL OR run_id = ?3)
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(write_error("reading the audit log"))?;
        let rows = statement
            .query_map(params![i64::from(limit), before, run], |row| {
                Ok(AuditEntry {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    actor: row.get(2)?,
                    role: row.get(3)?,
                    via: row.get(4)?,
                    action: row.get(5)?,
                    run_id: row.get(6)?,
                    revert_id: row.get(7)?,
                    detail: row.get(8)?,
                    outcome: row.get(9)?,
                    error: row.get(10)?,
                })
            })
            .map_err(write_error("reading the audit log"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading the audit log"))
    }

    pub fn add_feedback(&mut self, feedback: &FeedbackRow) -> Result<(), JournalError> {
        self.connection
            .prepare_cached(
                "INSERT INTO feedback (run_id, at, by, verdict, note) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    feedback.run_id,
                    feedback.at,
                    feedback.by,
                    feedback.verdict,
                    feedback.note
                ])
            })
            .map_err(write_error("recording feedback"))?;
        Ok(())
    }

    /// The answers given about one run, oldest first.
    pub fn feedback_of_run(&self, run_id: i64) -> Result<Vec<FeedbackRow>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT run_id, at, by, verdict, note FROM feedback WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(write_error("reading feedback"))?;
        let rows = statement
            .query_map([run_id], feedback_row)
            .map_err(write_error("reading feedback"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading feedback"))
    }

    /// What the statistics of runs started at or after `since` (wall ms) are computed from:
    /// those runs with their tasks' outcomes and approvals, the firing episodes of alerts
    /// received since then, and the feedback on those runs. Which tasks are actions is read
    /// from the playbook definitions the runs started with, each parsed once.
    pub fn facts(&self, since: i64) -> Result<Facts, JournalError> {
        let failed = || write_error("reading the history");
        let mut runs: BTreeMap<i64, RunFact> = BTreeMap::new();
        let mut definition_of: BTreeMap<i64, String> = BTreeMap::new();
        {
            let mut statement = self
                .connection
                .prepare_cached(
                    "SELECT runs.id, runs.rule, runs.playbook, runs.state, runs.started_at,
                            runs.finished_at, runs.performs_actions, runs.definition,
                            alerts.name, alerts.fingerprint, alerts.starts_at
                     FROM runs JOIN alerts ON alerts.id = runs.alert_id
                     WHERE runs.started_at >= ?1 ORDER BY runs.id",
                )
                .map_err(failed())?;
            let mut rows = statement.query([since]).map_err(failed())?;
            while let Some(row) = rows.next().map_err(failed())? {
                let id: i64 = row.get(0).map_err(failed())?;
                let fact = (|| {
                    Ok::<_, rusqlite::Error>(RunFact {
                        id,
                        rule: row.get(1)?,
                        playbook: row.get(2)?,
                        state: row.get(3)?,
                        started_at: row.get(4)?,
                        finished_at: row.get(5)?,
                        performs_actions: row.get(6)?,
                        alert_name: row.get(8)?,
                        fingerprint: row.get(9)?,
                        episode_starts_at: row.get(10)?,
                        ..RunFact::default()
                    })
                })()
                .map_err(failed())?;
                let definition: String = row.get(7).map_err(failed())?;
                definition_of.insert(id, definition);
                runs.insert(id, fact);
            }
        }
        // Which tasks of each playbook version are actions.
        let mut actions_of: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for key in definition_of.values() {
            if actions_of.contains_key(key) {
                continue;
            }
            let body: Option<String> = self
                .connection
                .prepare_cached("SELECT body FROM definitions WHERE key = ?1")
                .and_then(|mut statement| {
                    use rusqlite::OptionalExtension as _;
                    statement.query_row([key], |row| row.get(0)).optional()
                })
                .map_err(failed())?;
            // A version 1 row holds the JSON itself.
            let actions = action_tasks(&body.unwrap_or_else(|| key.clone()));
            actions_of.insert(key.clone(), actions);
        }
        {
            let sql = format!(
                "SELECT task_events.run_id, task_events.task, task_events.state, task_events.at
                 FROM task_events JOIN runs ON runs.id = task_events.run_id
                 WHERE runs.started_at >= ?1 AND task_events.state IN ({FACT_STATES})
                 ORDER BY task_events.rowid"
            );
            let mut statement = self.connection.prepare_cached(&sql).map_err(failed())?;
            let mut rows = statement.query([since]).map_err(failed())?;
            while let Some(row) = rows.next().map_err(failed())? {
                let (run_id, task, state, at): (i64, String, String, i64) = (|| {
                    Ok::<_, rusqlite::Error>((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })()
                .map_err(failed())?;
                let Some(run) = runs.get_mut(&run_id) else {
                    continue;
                };
                let is_action = definition_of
                    .get(&run_id)
                    .and_then(|key| actions_of.get(key))
                    .is_some_and(|actions| actions.contains(&task));
                task_fact(run, is_action, task, &state, at);
            }
        }
        {
            let mut statement = self
                .connection
                .prepare_cached(
                    "SELECT reverts.run_id, reverts.state FROM reverts
                     JOIN runs ON runs.id = reverts.run_id WHERE runs.started_at >= ?1",
                )
                .map_err(failed())?;
            let mut rows = statement.query([since]).map_err(failed())?;
            while let Some(row) = rows.next().map_err(failed())? {
                let (run_id, state): (i64, String) =
                    (|| Ok::<_, rusqlite::Error>((row.get(0)?, row.get(1)?)))().map_err(failed())?;
                if let Some(run) = runs.get_mut(&run_id)
                    && state == "reverted"
                {
                    run.reverted += 1;
                }
            }
        }
        let episodes = {
            let mut statement = self
                .connection
                .prepare_cached(
                    "SELECT MIN(CASE WHEN status = 'firing' THEN name END), fingerprint, starts_at,
                            MIN(CASE WHEN status = 'firing' THEN received_at END),
                            MIN(CASE WHEN status = 'resolved' THEN received_at END)
                     FROM alerts WHERE received_at >= ?1
                     GROUP BY fingerprint, starts_at",
                )
                .map_err(failed())?;
            let rows = statement
                .query_map([since], |row| {
                    Ok(EpisodeFact {
                        name: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        fingerprint: row.get(1)?,
                        starts_at: row.get(2)?,
                        fired_at: row.get(3)?,
                        resolved_at: row.get(4)?,
                    })
                })
                .map_err(failed())?;
            rows.collect::<Result<Vec<_>, _>>().map_err(failed())?
        };
        let feedback = {
            let mut statement = self
                .connection
                .prepare_cached(
                    "SELECT feedback.run_id, feedback.at, feedback.by, feedback.verdict, feedback.note
                     FROM feedback JOIN runs ON runs.id = feedback.run_id
                     WHERE runs.started_at >= ?1 ORDER BY feedback.id",
                )
                .map_err(failed())?;
            let rows = statement
                .query_map([since], feedback_row)
                .map_err(failed())?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(failed())?
                .into_iter()
                .map(|row| FeedbackFact {
                    run_id: row.run_id,
                    by: row.by,
                    verdict: row.verdict,
                })
                .collect()
        };
        Ok(facts(runs, episodes, feedback))
    }
}

/// The tasks of a playbook as planned (its definition's JSON) that are actions; none when
/// the JSON does not read as a plan.
pub(super) fn action_tasks(definition: &str) -> std::collections::BTreeSet<String> {
    serde_json::from_str::<medic_compiler::plan::Playbook>(definition)
        .map(|playbook| {
            playbook
                .tasks
                .iter()
                .filter(|task| task.effect == medic_compiler::plan::Effect::Action)
                .map(|task| task.id.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// What one task event of a run (in journal order) adds to its facts.
pub(super) fn task_fact(run: &mut RunFact, is_action: bool, task: String, state: &str, at: i64) {
    match state {
        "succeeded" if is_action => run.actions += 1,
        "awaiting_approval" => {
            run.approvals_asked.insert(task, at);
        }
        "approved" | "rejected" => {
            if let Some(asked) = run.approvals_asked.get(&task) {
                run.approval_waits_ms.push(at.saturating_sub(*asked));
            }
            if state == "approved" {
                run.approved += 1;
            } else {
                run.rejected += 1;
            }
        }
        _ => {}
    }
}

/// The facts, from the runs (by id), the episodes of the window (those that fired in it)
/// and the feedback on the runs.
pub(super) fn facts(
    runs: BTreeMap<i64, RunFact>,
    episodes: Vec<EpisodeFact>,
    feedback: Vec<FeedbackFact>,
) -> Facts {
    Facts {
        runs: runs.into_values().collect(),
        episodes: episodes
            .into_iter()
            .filter(|episode| episode.fired_at.is_some())
            .collect(),
        feedback,
    }
}

fn feedback_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FeedbackRow> {
    Ok(FeedbackRow {
        run_id: row.get(0)?,
        at: row.get(1)?,
        by: row.get(2)?,
        verdict: row.get(3)?,
        note: row.get(4)?,
    })
}

/// An alert as the alerts page lists it, with what became of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlertSummary {
    pub id: i64,
    pub received_at: i64,
    pub source: String,
    pub name: String,
    pub status: String,
    pub fingerprint: String,
    pub starts_at: i64,
    /// Matched and acted upon (or nothing to do); false while it waits in the queue.
    pub processed: bool,
    /// The runs it started, with their rules.
    pub runs: Vec<(i64, String)>,
    /// The rules it matched that did not start a run, and why.
    pub suppressions: Vec<super::SuppressionRow>,
}

impl Journal {
    /// The newest alerts (older than the alert `before` when given, of one name when
    /// `name` is given), each with the runs it started and its suppressions.
    pub fn alert_summaries(
        &self,
        limit: u32,
        before: Option<i64>,
        name: Option<&str>,
    ) -> Result<Vec<AlertSummary>, JournalError> {
        let failed = || write_error("reading alerts");
        let mut alerts: Vec<AlertSummary> = {
            let mut statement = self
                .connection
                .prepare_cached(
                    "SELECT id, received_at, source, name, status, fingerprint, starts_at, processed
                     FROM alerts WHERE (?2 IS NULL OR id < ?2) AND (?3 IS NULL OR name = ?3)
                     ORDER BY id DESC LIMIT ?1",
                )
                .map_err(failed())?;
            let rows = statement
                .query_map(params![i64::from(limit), before, name], |row| {
                    Ok(AlertSummary {
                        id: row.get(0)?,
                        received_at: row.get(1)?,
                        source: row.get(2)?,
                        name: row.get(3)?,
                        status: row.get(4)?,
                        fingerprint: row.get(5)?,
                        starts_at: row.get(6)?,
                        processed: row.get(7)?,
                        runs: Vec::new(),
                        suppressions: Vec::new(),
                    })
                })
                .map_err(failed())?;
            rows.collect::<Result<_, _>>().map_err(failed())?
        };
        for alert in &mut alerts {
            let mut runs = self
                .connection
                .prepare_cached("SELECT id, rule FROM runs WHERE alert_id = ?1 ORDER BY id")
                .map_err(failed())?;
            alert.runs = runs
                .query_map([alert.id], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(failed())?
                .collect::<Result<_, _>>()
                .map_err(failed())?;
            let mut suppressions = self
                .connection
                .prepare_cached(
                    "SELECT alert_id, rule, reason, detail, at FROM suppressions
                     WHERE alert_id = ?1 ORDER BY rowid",
                )
                .map_err(failed())?;
            alert.suppressions = suppressions
                .query_map([alert.id], super::suppression_row)
                .map_err(failed())?
                .collect::<Result<_, _>>()
                .map_err(failed())?;
        }
        Ok(alerts)
    }

    /// One firing episode: its first firing and resolved notifications.
    pub fn episode(
        &self,
        fingerprint: &str,
        starts_at: i64,
    ) -> Result<Option<EpisodeFact>, JournalError> {
        use rusqlite::OptionalExtension as _;
        self.connection
            .prepare_cached(
                "SELECT MIN(CASE WHEN status = 'firing' THEN name END),
                        MIN(CASE WHEN status = 'firing' THEN received_at END),
                        MIN(CASE WHEN status = 'resolved' THEN received_at END)
                 FROM alerts WHERE fingerprint = ?1 AND starts_at = ?2
                 HAVING COUNT(*) > 0",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![fingerprint, starts_at], |row| {
                        Ok(EpisodeFact {
                            name: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                            fingerprint: fingerprint.to_string(),
                            starts_at,
                            fired_at: row.get(1)?,
                            resolved_at: row.get(2)?,
                        })
                    })
                    .optional()
            })
            .map_err(write_error("reading an episode"))
    }
}

/// What the runs list asks for: every field optional, all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    pub state: Option<String>,
    pub rule: Option<String>,
    pub playbook: Option<String>,
    /// The name of the alert that started the run.
    pub alert: Option<String>,
    /// A label of that alert, and its value.
    pub label: Option<(String, String)>,
    /// Started at or after (wall ms).
    pub from: Option<i64>,
    /// Started before (wall ms).
    pub until: Option<i64>,
    /// The run with this id.
    pub id: Option<i64>,
    /// The runs of the alert with this id.
    pub alert_id: Option<i64>,
    pub offset: u32,
    pub limit: u32,
}

impl Journal {
    /// The runs `query` selects, newest first. Only the conditions given are in the SQL
    /// (so SQLite can use an index for them): the list scans runs newest first and stops at
    /// the page's end, so its cost does not grow with the journal for filters that match.
    pub fn runs_page(&self, query: &RunQuery) -> Result<Vec<super::RunRow>, JournalError> {
        let mut conditions: Vec<&str> = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut text = |condition: &'static str, value: &Option<String>| {
            if let Some(value) = value {
                conditions.push(condition);
                values.push(value.clone().into());
            }
        };
        text("state = ?", &query.state);
        text("rule = ?", &query.rule);
        text("playbook = ?", &query.playbook);
        text(
            "(SELECT name FROM alerts WHERE alerts.id = runs.alert_id) = ?",
            &query.alert,
        );
        if let Some((name, value)) = &query.label {
            // A JSON path of one key, quoted so that dots and brackets in it stay its own.
            conditions.push(
                "(SELECT json_extract(alerts.payload, ?) FROM alerts WHERE alerts.id = runs.alert_id) = ?",
            );
            values.push(format!("$.labels.\"{}\"", name.replace(['"', '\\'], "")).into());
            values.push(value.clone().into());
        }
        let mut number = |condition: &'static str, value: Option<i64>| {
            if let Some(value) = value {
                conditions.push(condition);
                values.push(value.into());
            }
        };
        number("started_at >= ?", query.from);
        number("started_at < ?", query.until);
        number("id = ?", query.id);
        number("alert_id = ?", query.alert_id);
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        values.push(i64::from(query.limit).into());
        values.push(i64::from(query.offset).into());
        let sql = format!(
            "SELECT {} FROM runs {filter} ORDER BY id DESC LIMIT ? OFFSET ?",
            super::RUN_COLUMNS
        );
        self.query_runs(&sql, rusqlite::params_from_iter(values))
    }

    /// Runs escalated or interrupted (they wait for a human) that started at or after
    /// `since`, newest first: read from the partial index of those states, so the list's
    /// pinned section costs nothing when there are none, however many runs there are.
    pub fn runs_needing_a_human(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<super::RunRow>, JournalError> {
        self.query_runs(
            &format!(
                "SELECT {} FROM runs INDEXED BY runs_needing_a_human
                 WHERE state IN ('escalated', 'interrupted') AND started_at >= ?1
                 ORDER BY id DESC LIMIT ?2",
                super::RUN_COLUMNS
            ),
            params![since, i64::from(limit)],
        )
    }
}
