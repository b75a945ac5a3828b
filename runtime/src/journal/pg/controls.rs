//! Operators' requests for runs another node owns (issue 14, docs/ha.md): approve, reject,
//! pause, resume and cancel act on a run's task in the memory of the node running it, so a
//! node asked for a run it does not own writes the request here and waits for the answer;
//! the owner, woken by `NOTIFY`, claims the request, performs it and writes the answer.
//!
//! A request moves `requested` → `claimed` (by the owner) → `answered`, or `requested` →
//! `expired` when the node that asked gave up waiting: each step is one conditional
//! `UPDATE`, so a request is performed at most once, and never after its asker answered the
//! operator that it was not. Requests go to whichever node owns the run when it claims, so
//! one written just before a takeover is performed by the node that took the run. The
//! request and the answer are the engine's JSON; this module does not read them.

use super::{Lease, PgJournal, database_error, first_column, lease_holds};
use crate::journal::JournalError;
use postgres::fallible_iterator::FallibleIterator;
use std::time::Duration;

/// The channel nodes are woken on.
const CHANNEL: &str = "medic_controls";

/// What a connection that listens for requests runs (again after a reconnection).
pub(super) const LISTEN: &str = "LISTEN medic_controls";

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// There is no such run.
    NoRun,
    /// The run has ended: there is nothing to control.
    Finished,
    /// Written, for the node that owns the run now (`None`: nobody, until a takeover).
    Sent { id: i64, owner: Option<String> },
}

/// A request claimed by the node that owns its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    pub id: i64,
    pub run_id: i64,
    pub request: String,
}

impl PgJournal {
    /// Writes a request for `run_id` and wakes the nodes, in one transaction (the
    /// notification is delivered when it commits).
    pub fn request_control(
        &mut self,
        run_id: i64,
        request: &str,
    ) -> Result<Requested, JournalError> {
        let node = self
            .lease
            .as_ref()
            .map_or_else(String::new, |lease| lease.node.clone());
        self.atomically("asking the node of a run", |transaction| {
            let Some(row) = transaction.query_opt(
                "SELECT finished_at IS NULL, owner FROM runs WHERE id = $1",
                &[&run_id],
            )?
            else {
                return Ok(Requested::NoRun);
            };
            let unfinished: bool = row.try_get(0)?;
            if !unfinished {
                return Ok(Requested::Finished);
            }
            let owner: Option<String> = row.try_get(1)?;
            let id: i64 = transaction
                .query_one(
                    "INSERT INTO controls (run_id, request, requested_by, requested_at)
                     VALUES ($1, $2, $3, medic_now()) RETURNING id",
                    &[&run_id, &request, &node],
                )?
                .try_get(0)?;
            transaction.execute("SELECT pg_notify($1, '')", &[&CHANNEL])?;
            Ok(Requested::Sent { id, owner })
        })
    }

    /// The answer to request `id`, once there is one.
    pub fn control_answer(&mut self, id: i64) -> Result<Option<String>, JournalError> {
        Ok(self
            .row(
                "reading the answer of a node",
                "SELECT answer FROM controls WHERE id = $1 AND state = 'answered'",
                &[&id],
                first_column::<Option<String>>,
            )?
            .flatten())
    }

    /// Gives up request `id`: `false` when its node claimed it first (the answer comes).
    pub fn expire_control(&mut self, id: i64) -> Result<bool, JournalError> {
        Ok(self.execute(
            "giving up a request to another node",
            "UPDATE controls SET state = 'expired' WHERE id = $1 AND state = 'requested'",
            &[&id],
        )? > 0)
    }

    /// Claims the requests for the runs this node owns under its current lease.
    pub fn claim_controls(&mut self) -> Result<Vec<ControlRequest>, JournalError> {
        let Some(lease) = self.lease.clone() else {
            return Ok(Vec::new());
        };
        self.atomically("claiming operators' requests", |transaction| {
            if !lease_holds(transaction, &lease)? {
                return Ok(Vec::new());
            }
            transaction
                .query(
                    "UPDATE controls SET state = 'claimed'
                     WHERE id IN (SELECT controls.id FROM controls JOIN runs ON runs.id = controls.run_id
                         WHERE controls.state = 'requested' AND runs.owner = $1 AND runs.fence = $2
                         FOR UPDATE OF controls SKIP LOCKED)
                     RETURNING id, run_id, request",
                    &[&lease.node, &lease.fence],
                )?
                .iter()
                .map(|row| {
                    Ok(ControlRequest {
                        id: row.try_get(0)?,
                        run_id: row.try_get(1)?,
                        request: row.try_get(2)?,
                    })
                })
                .collect()
        })
    }

    /// Writes the answer to a request this node claimed.
    pub fn answer_control(&mut self, id: i64, answer: &str) -> Result<(), JournalError> {
        let node = self
            .lease
            .as_ref()
            .map_or_else(String::new, |lease: &Lease| lease.node.clone());
        self.execute(
            "answering an operator's request",
            "UPDATE controls SET state = 'answered', answer = $2, answered_by = $3, answered_at = medic_now()
             WHERE id = $1 AND state = 'claimed'",
            &[&id, &answer, &node],
        )
        .map(drop)
    }

    /// The tasks of unfinished runs (of any node) whose last event asks for approval.
    pub fn awaiting_approval(&mut self) -> Result<Vec<(i64, String)>, JournalError> {
        self.rows(
            "reading the approvals runs wait for",
            "SELECT run_id, task FROM (
                 SELECT DISTINCT ON (events.run_id, events.task) events.run_id, events.task, events.state
                 FROM task_events events JOIN runs ON runs.id = events.run_id
                 WHERE runs.finished_at IS NULL AND events.task <> ''
                 ORDER BY events.run_id, events.task, events.id DESC) last
             WHERE state = 'awaiting_approval'",
            &[],
            |row| Ok((row.try_get(0)?, row.try_get(1)?)),
        )
    }

    /// From now on this connection is woken by requests ([`PgJournal::wait_for_request`]),
    /// also after it is replaced.
    pub fn listen(&mut self) -> Result<(), JournalError> {
        self.client()?
            .batch_execute(LISTEN)
            .map_err(database_error("listening for operators' requests"))?;
        self.listening = true;
        Ok(())
    }

    /// Waits at most `within` for a request to be written (by any node): `true` when one
    /// was. An error when the connection is broken (the caller waits out `within` itself
    /// rather than retrying at once).
    pub fn wait_for_request(&mut self, within: Duration) -> Result<bool, JournalError> {
        let client = self.client()?;
        let mut notifications = client.notifications();
        let woken = notifications
            .timeout_iter(within)
            .next()
            .map_err(|source| JournalError::Database {
                operation: "waiting for operators' requests",
                source,
            })?
            .is_some();
        // Every request waiting is claimed at once: the others need not wake it again.
        while let Ok(Some(_)) = notifications.iter().next() {}
        drop(notifications);
        if !woken && client.is_closed() {
            return Err(JournalError::Commit(
                "the connection to PostgreSQL closed while waiting for requests".into(),
            ));
        }
        Ok(woken)
    }
}
