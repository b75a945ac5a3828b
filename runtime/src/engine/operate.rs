//! Operators' actions through one door, for the API, the CLI's client commands and the web
//! page alike: each is performed and then written to the audit log, done or refused, with
//! who asked (the identity the server authenticated) and through what. Also the answers to
//! "did this run fix it?" and the statistics computed from the journal's history.

use super::*;
use crate::journal::{AuditEntry, FeedbackRow, NewAuditEntry};
use crate::stats::{self, Stats};

/// Who acts, as the server authenticated them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    /// `operator`, `viewer`, `sender`: as the audit log shows it.
    pub role: &'static str,
    pub groups: ApprovalGroups,
    /// `api` or `web`.
    pub via: &'static str,
}

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Approve {
        run: i64,
        task: Option<String>,
    },
    Reject {
        run: i64,
        task: Option<String>,
        reason: String,
    },
    Pause {
        run: i64,
    },
    Resume {
        run: i64,
    },
    Cancel {
        run: i64,
    },
    KillSwitch {
        on: bool,
    },
    RetryRevert {
        revert: i64,
    },
    AcknowledgeRevert {
        revert: i64,
        reason: String,
    },
    /// "Did this run fix it?"
    Feedback {
        run: i64,
        verdict: String,
        note: String,
    },
}

impl Operation {
    /// The audit log's name for it.
    pub fn action(&self) -> &'static str {
        match self {
            Operation::Approve { .. } => "approve",
            Operation::Reject { .. } => "reject",
            Operation::Pause { .. } => "pause",
            Operation::Resume { .. } => "resume",
            Operation::Cancel { .. } => "cancel",
            Operation::KillSwitch { .. } => "kill_switch",
            Operation::RetryRevert { .. } => "retry_revert",
            Operation::AcknowledgeRevert { .. } => "ack_revert",
            Operation::Feedback { .. } => "feedback",
        }
    }

    fn run(&self) -> Option<i64> {
        match self {
            Operation::Approve { run, .. }
            | Operation::Reject { run, .. }
            | Operation::Pause { run }
            | Operation::Resume { run }
            | Operation::Cancel { run }
            | Operation::Feedback { run, .. } => Some(*run),
            Operation::KillSwitch { .. }
            | Operation::RetryRevert { .. }
            | Operation::AcknowledgeRevert { .. } => None,
        }
    }

    fn revert(&self) -> Option<i64> {
        match self {
            Operation::RetryRevert { revert } | Operation::AcknowledgeRevert { revert, .. } => {
                Some(*revert)
            }
            _ => None,
        }
    }

    /// What was asked, in words, for the audit log.
    fn detail(&self) -> String {
        let task = |task: &Option<String>| match task {
            Some(task) => format!("task {task}"),
            None => "every task waiting".to_string(),
        };
        match self {
            Operation::Approve { task: which, .. } => task(which),
            Operation::Reject {
                task: which,
                reason,
                ..
            } => format!("{}: {reason}", task(which)),
            Operation::Pause { .. } | Operation::Resume { .. } | Operation::Cancel { .. } => {
                String::new()
            }
            Operation::KillSwitch { on } => if *on { "on" } else { "off" }.to_string(),
            Operation::RetryRevert { .. } => String::new(),
            Operation::AcknowledgeRevert { reason, .. } => reason.clone(),
            Operation::Feedback { verdict, note, .. } if note.is_empty() => verdict.clone(),
            Operation::Feedback { verdict, note, .. } => format!("{verdict}: {note}"),
        }
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// The tasks approved or rejected.
    Decided(Vec<String>),
    /// The revert as it stands afterwards.
    Revert(RevertRow),
    Other,
}

/// The longest note an answer keeps, in characters.
const NOTE_LIMIT: usize = 2_000;

impl Engine {
    /// Performs `operation` for `actor` and writes it to the audit log, done or refused.
    pub async fn operate(&self, actor: &Actor, operation: Operation) -> Result<Done, EngineError> {
        let result = self.perform(actor, &operation).await;
        let error = result.as_ref().err().map(ToString::to_string);
        self.audit(
            actor,
            operation.action(),
            operation.run(),
            operation.revert(),
            operation.detail(),
            error,
        )
        .await;
        result
    }

    async fn perform(&self, actor: &Actor, operation: &Operation) -> Result<Done, EngineError> {
        if self.elsewhere(operation) {
            return self.forward(actor, operation).await;
        }
        self.perform_here(actor, operation).await
    }

    /// Performs `operation` on this node (the node asked, or the one that runs the run).
    pub(super) async fn perform_here(
        &self,
        actor: &Actor,
        operation: &Operation,
    ) -> Result<Done, EngineError> {
        let by = actor.name.clone();
        Ok(match operation.clone() {
            Operation::Approve { run, task } => Done::Decided(
                self.decide(run, task, Decision::Approved { by }, &actor.groups)
                    .await?,
            ),
            Operation::Reject { run, task, reason } => Done::Decided(
                self.decide(run, task, Decision::Rejected { by, reason }, &actor.groups)
                    .await?,
            ),
            Operation::Pause { run } => {
                self.pause(run, true, &by).await?;
                Done::Other
            }
            Operation::Resume { run } => {
                self.pause(run, false, &by).await?;
                Done::Other
            }
            Operation::Cancel { run } => {
                self.cancel(run, &by).await?;
                Done::Other
            }
            Operation::KillSwitch { on } => {
                self.set_kill_switch(on).await?;
                tracing::warn!(by = %actor.name, via = actor.via, on, "kill switch set");
                Done::Other
            }
            Operation::RetryRevert { revert } => {
                // On its own task: a client that hangs up, or the request timeout, must not
                // drop a revert halfway (claimed, not finished), which no human could retry.
                let engine = self.clone();
                let retried = tokio::spawn(async move { engine.retry_revert(revert, &by).await })
                    .await
                    .map_err(|error| EngineError::Stopped(error.to_string()))??;
                Done::Revert(retried)
            }
            Operation::AcknowledgeRevert { revert, reason } => {
                if reason.trim().is_empty() {
                    return Err(EngineError::BadRequest(
                        "acknowledging a revert needs a `reason`: what was done instead".into(),
                    ));
                }
                Done::Revert(self.acknowledge_revert(revert, &by, &reason).await?)
            }
            Operation::Feedback { run, verdict, note } => {
                self.feedback(run, &by, &verdict, &note).await?;
                Done::Other
            }
        })
    }

    /// Writes an entry to the audit log. A failure is logged: the action it records has
    /// happened (or was refused) whatever the log says.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        run_id: Option<i64>,
        revert_id: Option<i64>,
        detail: String,
        error: Option<String>,
    ) {
        let entry = NewAuditEntry {
            at: self.inner.clock.now_ms(),
            actor: actor.name.clone(),
            role: actor.role.to_string(),
            via: actor.via.to_string(),
            action: action.to_string(),
            run_id,
            revert_id,
            detail,
            error,
        };
        if let Err(error) = self
            .inner
            .journal
            .call(move |journal| journal.audit(&entry))
            .await
        {
            tracing::error!(%error, action, by = %actor.name, "could not write the audit log");
        }
    }

    /// The audit log, newest first (see `Journal::audit_log`).
    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<i64>,
        run: Option<i64>,
    ) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.audit_log(limit, before, run))
            .await?)
    }

    /// Records an operator's answer to "did this run fix it?" about a run, finished or not.
    async fn feedback(
        &self,
        run: i64,
        by: &str,
        verdict: &str,
        note: &str,
    ) -> Result<(), EngineError> {
        if !stats::VERDICTS.contains(&verdict) {
            return Err(EngineError::BadRequest(format!(
                "no answer {verdict:?}: use {}",
                stats::VERDICTS.join(", ")
            )));
        }
        if note.chars().count() > NOTE_LIMIT {
            return Err(EngineError::BadRequest(format!(
                "the note is longer than {NOTE_LIMIT} characters"
            )));
        }
        let row = FeedbackRow {
            run_id: run,
            at: self.inner.clock.now_ms(),
            by: by.to_string(),
            verdict: verdict.to_string(),
            note: note.trim().to_string(),
        };
        let recorded = self
            .inner
            .journal
            .call(move |journal| {
                if journal.run(row.run_id)?.is_none() {
                    return Ok(false);
                }
                journal.add_feedback(&row)?;
                Ok(true)
            })
            .await?;
        if recorded {
            Ok(())
        } else {
            Err(EngineError::NoRun(run))
        }
    }

    /// Each playbook's and rule's effectiveness over the runs started in the last
    /// `since_ms`, an alert counting as resolved after a run within `within_ms`.
    pub async fn stats(&self, since_ms: i64, within_ms: i64) -> Result<Stats, EngineError> {
        let now = self.inner.clock.now_ms();
        let since = now.saturating_sub(since_ms);
        let facts = self
            .inner
            .journal
            .call(move |journal| journal.facts(since))
            .await?;
        tokio::task::spawn_blocking(move || stats::compute(&facts, since, now, within_ms))
            .await
            .map_err(|error| EngineError::Stopped(error.to_string()))
    }
}
