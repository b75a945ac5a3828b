//! The reverts table: actions to undo later, claimed at most once, finished by the engine or
//! by a human.

use super::{Journal, JournalError, REVERT_COLUMNS, RevertRow, revert_row, write_error};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

impl Journal {
    /// Schedules the undoing of an action; returns the revert's id.
    #[expect(clippy::too_many_arguments, reason = "one column each")]
    pub fn schedule_revert(
        &mut self,
        run_id: i64,
        task: &str,
        function: &str,
        arguments: &str,
        output: &str,
        fingerprint: &str,
        due_at: Option<i64>,
        on_resolve: bool,
    ) -> Result<i64, JournalError> {
        self.connection
            .execute(
                "INSERT INTO reverts (run_id, task, function, arguments, output, fingerprint, due_at, on_resolve, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
                params![run_id, task, function, arguments, output, fingerprint, due_at, on_resolve],
            )
            .map_err(write_error("scheduling a revert"))?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Takes a pending revert for performing it; `None` when another timer or the resolved
    /// alert took it first (a revert is performed at most once).
    pub fn claim_revert(&mut self, revert_id: i64) -> Result<Option<RevertRow>, JournalError> {
        let changed = self
            .connection
            .execute(
                "UPDATE reverts SET state = 'reverting' WHERE id = ?1 AND state = 'pending'",
                [revert_id],
            )
            .map_err(write_error("claiming a revert"))?;
        if changed == 0 {
            return Ok(None);
        }
        self.connection
            .query_row(
                &format!("SELECT {REVERT_COLUMNS} FROM reverts WHERE id = ?1"),
                [revert_id],
                revert_row,
            )
            .optional()
            .map_err(write_error("claiming a revert"))
    }

    /// The pending reverts of a firing episode's fingerprint that wait for it to resolve.
    /// The pending `revert on resolve` reverts of one firing episode: the fingerprint, and
    /// the `startsAt` of the alert whose run made them.
    pub fn reverts_on_resolve(
        &self,
        fingerprint: &str,
        starts_at: i64,
    ) -> Result<Vec<i64>, JournalError> {
        self.revert_ids(
            "SELECT reverts.id FROM reverts \
             JOIN runs ON runs.id = reverts.run_id \
             JOIN alerts ON alerts.id = runs.alert_id \
             WHERE reverts.state = 'pending' AND reverts.on_resolve = 1 \
             AND reverts.fingerprint = ?1 AND alerts.starts_at = ?2 ORDER BY reverts.id",
            rusqlite::params![fingerprint, starts_at],
        )
    }

    /// The ids a query of revert ids answers.
    fn revert_ids(
        &self,
        sql: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<i64>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(sql)
            .map_err(write_error("reading reverts"))?;
        let rows = statement
            .query_map(parameters, |row| row.get(0))
            .map_err(write_error("reading reverts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading reverts"))
    }

    /// Reverts in a given state (`pending` to schedule after a restart, `reverting` to
    /// hand to a human: they were in flight when the server stopped).
    pub fn reverts(&self, state: &str) -> Result<Vec<RevertRow>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {REVERT_COLUMNS} FROM reverts WHERE state = ?1 ORDER BY id"
            ))
            .map_err(write_error("reading reverts"))?;
        let rows = statement
            .query_map([state], revert_row)
            .map_err(write_error("reading reverts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading reverts"))
    }

    /// Pending `revert on resolve` reverts whose episode's resolved alert was already
    /// processed: a crash came between processing the resolve and performing them, and no
    /// later resolve will come for them.
    pub fn reverts_already_resolved(&self) -> Result<Vec<i64>, JournalError> {
        self.revert_ids(
            "SELECT reverts.id FROM reverts \
             JOIN runs ON runs.id = reverts.run_id \
             JOIN alerts AS fired ON fired.id = runs.alert_id \
             WHERE reverts.state = 'pending' AND reverts.on_resolve = 1 \
             AND EXISTS (SELECT 1 FROM alerts AS resolved \
               WHERE resolved.fingerprint = reverts.fingerprint \
               AND resolved.starts_at = fired.starts_at \
               AND resolved.status = 'resolved' AND resolved.processed = 1) \
             ORDER BY reverts.id",
            [],
        )
    }

    /// One revert, in any state.
    pub fn revert(&self, revert_id: i64) -> Result<Option<RevertRow>, JournalError> {
        self.connection
            .query_row(
                &format!("SELECT {REVERT_COLUMNS} FROM reverts WHERE id = ?1"),
                [revert_id],
                revert_row,
            )
            .optional()
            .map_err(write_error("reading a revert"))
    }

    /// A human asks for a revert that `failed` or `needs_attention` to be tried again: it is
    /// `pending` once more (and then claimed and performed like any other), and the run's
    /// events say who asked. False when the revert is in another state.
    pub fn reopen_revert(
        &mut self,
        revert_id: i64,
        by: &str,
        at: i64,
    ) -> Result<bool, JournalError> {
        let changed = self
            .connection
            .execute(
                "UPDATE reverts SET state = 'pending', done_at = NULL \
                 WHERE id = ?1 AND state IN ('failed', 'needs_attention')",
                [revert_id],
            )
            .map_err(write_error("reopening a revert"))?;
        if changed == 0 {
            return Ok(false);
        }
        self.revert_event(revert_id, "revert_retry_requested", by, at)?;
        Ok(true)
    }

    /// A human says a revert that `failed` or `needs_attention` is taken care of (undone by
    /// hand, or not to be undone): it is `acknowledged`, with who and why in its detail and
    /// in the run's events. False when the revert is in another state.
    pub fn acknowledge_revert(
        &mut self,
        revert_id: i64,
        by: &str,
        reason: &str,
        at: i64,
    ) -> Result<bool, JournalError> {
        let detail = format!("{by}: {reason}");
        let changed = self
            .connection
            .execute(
                "UPDATE reverts SET state = 'acknowledged', detail = ?2, done_at = ?3 \
                 WHERE id = ?1 AND state IN ('failed', 'needs_attention')",
                params![revert_id, detail, at],
            )
            .map_err(write_error("acknowledging a revert"))?;
        if changed == 0 {
            return Ok(false);
        }
        self.revert_event(revert_id, "revert_acknowledged", &detail, at)?;
        Ok(true)
    }

    /// An event on the run of a revert, under the reverted task's name.
    fn revert_event(
        &mut self,
        revert_id: i64,
        state: &str,
        detail: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        self.connection
            .execute(
                "INSERT INTO task_events (run_id, task, state, at, detail) \
                 SELECT run_id, task, ?2, ?3, ?4 FROM reverts WHERE id = ?1",
                params![revert_id, state, at, detail],
            )
            .map_err(write_error("journaling a revert event"))?;
        Ok(())
    }

    /// How many reverts are in each state.
    pub fn revert_counts(&self) -> Result<BTreeMap<String, i64>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT state, COUNT(*) FROM reverts GROUP BY state")
            .map_err(write_error("counting reverts"))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(write_error("counting reverts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("counting reverts"))
    }

    pub fn revert_done(
        &mut self,
        revert_id: i64,
        state: &str,
        detail: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        self.connection
            .execute(
                "UPDATE reverts SET state = ?2, detail = ?3, done_at = ?4 WHERE id = ?1",
                params![revert_id, state, detail, at],
            )
            .map_err(write_error("finishing a revert"))?;
        Ok(())
    }

    /// The reverts a run scheduled, in order.
    pub fn reverts_of_run(&self, run_id: i64) -> Result<Vec<RevertRow>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {REVERT_COLUMNS} FROM reverts WHERE run_id = ?1 ORDER BY id"
            ))
            .map_err(write_error("reading reverts"))?;
        let rows = statement
            .query_map([run_id], revert_row)
            .map_err(write_error("reading reverts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading reverts"))
    }
}
