//! Reverts of temporary actions, on time or when their alert resolves, and what a resolved
//! alert ends.

use super::*;
use crate::executor::CallError;

impl Engine {
    /// A human asks for a revert that failed or needs attention to be tried again, now: it
    /// is performed like any revert (claimed once, its journaled arguments read strictly),
    /// and the run's events say who asked. Answers the revert as it stands afterwards.
    pub async fn retry_revert(&self, revert: i64, by: &str) -> Result<RevertRow, EngineError> {
        let by = by.to_string();
        let at = self.inner.clock.now_ms();
        let reopened = self
            .inner
            .journal
            .call(move |journal| journal.reopen_revert(revert, &by, at))
            .await?;
        if !reopened {
            return Err(self.not_open(revert, "retried").await);
        }
        tracing::info!(revert, "revert retried by a human");
        self.revert(revert).await;
        self.revert_row(revert).await
    }

    /// A human says a revert that failed or needs attention is taken care of: it ends
    /// `acknowledged`, with who and why journaled.
    pub async fn acknowledge_revert(
        &self,
        revert: i64,
        by: &str,
        reason: &str,
    ) -> Result<RevertRow, EngineError> {
        let (by, reason) = (by.to_string(), reason.to_string());
        let at = self.inner.clock.now_ms();
        let acknowledged = self
            .inner
            .journal
            .call(move |journal| journal.acknowledge_revert(revert, &by, &reason, at))
            .await?;
        if !acknowledged {
            return Err(self.not_open(revert, "acknowledged").await);
        }
        tracing::info!(revert, "revert acknowledged by a human");
        self.revert_row(revert).await
    }

    async fn revert_row(&self, revert: i64) -> Result<RevertRow, EngineError> {
        self.inner
            .journal
            .call(move |journal| journal.revert(revert))
            .await?
            .ok_or(EngineError::NoRevert(revert))
    }

    /// Why a revert cannot be retried or acknowledged: it does not exist, or its state.
    async fn not_open(&self, revert: i64, action: &'static str) -> EngineError {
        match self.revert_row(revert).await {
            Ok(row) => EngineError::RevertNotOpen {
                revert,
                state: row.state,
                action,
            },
            Err(error) => error,
        }
    }

    /// Sets the revert gauges of `/metrics` from the journal.
    pub async fn refresh_revert_metrics(&self) -> Result<(), EngineError> {
        let counts = self
            .inner
            .journal
            .call(|journal| journal.revert_counts())
            .await?;
        self.inner.metrics.set_reverts(&counts);
        Ok(())
    }

    pub(super) fn revert_at(&self, revert: i64, due_at: i64) {
        let engine = self.clone();
        tokio::spawn(async move {
            engine.inner.clock.sleep_until(due_at).await;
            engine.revert(revert).await;
        });
    }

    /// Performs a revert unless it was already taken.
    pub(super) async fn revert(&self, revert: i64) {
        let claimed = self
            .inner
            .journal
            .call(move |journal| journal.claim_revert(revert))
            .await;
        let row: RevertRow = match claimed {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, revert, "could not claim a revert");
                return;
            }
        };
        // A node whose lease lapsed since the claim (it was paused or cut off) does not act:
        // the node that takes its reverts over hands this one to a human.
        if let Some(cluster) = self.cluster()
            && !cluster.lease.holds()
        {
            // Nothing was done: the claim is given back, and the revert is performed by
            // whichever node's timer claims it next (the sweep's, once it is overdue).
            let released = self
                .inner
                .journal
                .call(move |journal| match journal.postgres() {
                    Some(pg) => pg.release_revert(revert),
                    None => Ok(()),
                })
                .await;
            tracing::warn!(
                revert,
                released = released.is_ok(),
                "not performed: this node's lease lapsed after it claimed the revert"
            );
            return;
        }
        // A revert is only performed with exactly what the action had: reverting with
        // other arguments (`{}` for unreadable ones) would undo something else, or nothing.
        let recorded = serde_json::from_str::<BTreeMap<String, Value>>(&row.arguments)
            .map_err(|error| format!("its journaled arguments cannot be read back ({error})"))
            .and_then(|arguments| {
                serde_json::from_str::<Value>(&row.output)
                    .map(|output| (arguments, output))
                    .map_err(|error| {
                        format!("the action's journaled output cannot be read back ({error})")
                    })
            });
        let (state, detail) = match recorded {
            _ if self.inner.config.dry_run => ("skipped", "dry run".to_string()),
            Err(reason) => (
                "needs_attention",
                format!("not performed: {reason}; undo the action by hand"),
            ),
            Ok((arguments, output)) => match self
                .inner
                .toolbox
                .revert(&row.function, arguments, output)
                .await
            {
                Ok(value) => ("reverted", plan::render::value_text(&value)),
                Err(CallError::NeedsAttention(detail)) => ("needs_attention", detail),
                Err(error) => ("failed", error.to_string()),
            },
        };
        tracing::info!(revert, run = row.run_id, task = %row.task, state, %detail, "revert");
        if state == "needs_attention" {
            self.escalate(
                row.run_id,
                format!("medic: revert of run {} needs a human", row.run_id),
                format!(
                    "the revert of task {} ({}) needs a human: {detail}",
                    row.task, row.function
                ),
            )
            .await;
        } else if state == "failed" {
            self.escalate(
                row.run_id,
                format!("medic: revert of run {} failed", row.run_id),
                format!(
                    "the revert of task {} ({}) failed: {detail}; undo it by hand",
                    row.task, row.function
                ),
            )
            .await;
        }
        let at = self.inner.clock.now_ms();
        if let Err(error) = self
            .inner
            .journal
            .call(move |journal| journal.revert_done(revert, state, &detail, at))
            .await
        {
            tracing::error!(%error, revert, "could not journal a revert");
        }
    }

    /// A resolved alert ends what its own firing episode started (the fingerprint and the
    /// `startsAt`, docs/notes/011-resolved-alerts.md): that episode's unfinished runs that
    /// act are cancelled and its `revert on resolve` actions are undone. A late or replayed
    /// resolve of an older episode touches nothing of a newer one; a resolve whose episode is
    /// unknown or already closed finds nothing to end (it is journaled all the same).
    /// Says whether the journal answered every read and write it needed.
    pub(super) async fn resolved(&self, fingerprint: &str, starts_at: i64) -> bool {
        let mut cancelled = Vec::new();
        if let Ok(mut active) = self.inner.active.lock() {
            for (run, entry) in active.iter_mut() {
                if entry.fingerprint != fingerprint || entry.episode_starts_at != Some(starts_at) {
                    continue;
                }
                entry.resolved = true;
                if entry.performs_actions {
                    tracing::info!(run, "cancelled: its alert resolved");
                    cancelled.push(*run);
                    entry.control.send_modify(|control| {
                        control.cancelled.get_or_insert_with(|| RESOLVED.into());
                    });
                }
            }
        }
        let at = self.inner.clock.now_ms();
        if !cancelled.is_empty()
            && let Err(error) = self
                .inner
                .journal
                .call(move |journal| {
                    for run in &cancelled {
                        journal.task_event(*run, "", "cancel_requested", RESOLVED, at)?;
                    }
                    Ok(())
                })
                .await
        {
            tracing::error!(%error, "could not journal a cancel");
            return false;
        }
        let fingerprint = fingerprint.to_string();
        let reverts = match self
            .inner
            .journal
            .call(move |journal| journal.reverts_on_resolve(&fingerprint, starts_at))
            .await
        {
            Ok(reverts) => reverts,
            Err(error) => {
                tracing::error!(%error, "could not read the reverts waiting for this alert to resolve");
                return false;
            }
        };
        // Reverts call adapters that may be slow; they must not hold up matching.
        for revert in reverts {
            let engine = self.clone();
            tokio::spawn(async move { engine.revert(revert).await });
        }
        true
    }
}
