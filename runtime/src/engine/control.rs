//! What operators do and see: approvals, pause, resume, cancel, and the runs, reverts and
//! suppressions the API lists.

use super::*;

impl Engine {
    /// Approves (or rejects) the tasks of a run that wait for a human: `task` names one, or
    /// all of them when `None`. With [`ApprovalGroups::Member`], every task decided whose
    /// approval names a group must name one of the approver's, or nothing is decided.
    pub async fn decide(
        &self,
        run: i64,
        task: Option<String>,
        decision: Decision,
        groups: &ApprovalGroups,
    ) -> Result<Vec<String>, EngineError> {
        self.active_check(run).await?;
        let tasks: Vec<String> = {
            let active = self
                .inner
                .active
                .lock()
                .map_err(|_| EngineError::NotActive(run))?;
            let entry = active.get(&run).ok_or(EngineError::NotActive(run))?;
            let tasks: Vec<String> = entry
                .awaiting
                .iter()
                .filter(|awaiting| task.as_ref().is_none_or(|task| task == *awaiting))
                .cloned()
                .collect();
            if let ApprovalGroups::Member(member_of) = groups {
                for task in &tasks {
                    if let Some(group) = entry.approval_groups.get(task)
                        && !member_of.contains(group)
                    {
                        return Err(EngineError::NotInGroup {
                            run,
                            task: task.clone(),
                            group: group.clone(),
                            who: match &decision {
                                Decision::Approved { by } | Decision::Rejected { by, .. } => {
                                    by.clone()
                                }
                            },
                        });
                    }
                }
            }
            tasks
        };
        if tasks.is_empty() {
            return Err(EngineError::NoApproval {
                run,
                which: task
                    .map(|task| format!(" named `{task}`"))
                    .unwrap_or_default(),
            });
        }
        let (state, detail) = match &decision {
            Decision::Approved { by } => ("approved", by.clone()),
            Decision::Rejected { by, reason } => ("rejected", format!("{by}: {reason}")),
        };
        let at = self.inner.clock.now_ms();
        let journaled = tasks.clone();
        let detail_owned = detail.clone();
        self.inner
            .journal
            .call(move |journal| {
                for task in &journaled {
                    journal.task_event(run, task, state, &detail_owned, at)?;
                }
                Ok(())
            })
            .await?;
        self.with_control(run, |control| {
            for task in &tasks {
                control.decisions.insert(task.clone(), decision.clone());
            }
        })?;
        tracing::info!(run, ?tasks, state, %detail, "approval decided");
        Ok(tasks)
    }

    pub async fn pause(&self, run: i64, paused: bool, by: &str) -> Result<(), EngineError> {
        self.active_check(run).await?;
        let state = if paused { "paused" } else { "running" };
        let event = if paused { "paused" } else { "resumed" };
        let at = self.inner.clock.now_ms();
        let by = by.to_string();
        self.inner
            .journal
            .call(move |journal| {
                journal.run_state(run, state)?;
                journal.task_event(run, "", event, &by, at)
            })
            .await?;
        self.with_control(run, |control| control.paused = paused)
    }

    pub async fn cancel(&self, run: i64, by: &str) -> Result<(), EngineError> {
        self.active_check(run).await?;
        let reason = format!("by {by}");
        let at = self.inner.clock.now_ms();
        let detail = reason.clone();
        self.inner
            .journal
            .call(move |journal| journal.task_event(run, "", "cancel_requested", &detail, at))
            .await?;
        self.with_control(run, |control| {
            control.cancelled.get_or_insert(reason);
        })
    }

    /// `NoRun` for a run that never existed, `NotActive` for one that has ended.
    pub(super) async fn active_check(&self, run: i64) -> Result<(), EngineError> {
        let active = self
            .inner
            .active
            .lock()
            .is_ok_and(|active| active.contains_key(&run));
        if active {
            return Ok(());
        }
        let exists = self
            .inner
            .journal
            .call(move |journal| journal.run(run))
            .await?
            .is_some();
        Err(if exists {
            EngineError::NotActive(run)
        } else {
            EngineError::NoRun(run)
        })
    }

    pub(super) fn with_control(
        &self,
        run: i64,
        change: impl FnOnce(&mut Control),
    ) -> Result<(), EngineError> {
        let active = self
            .inner
            .active
            .lock()
            .map_err(|_| EngineError::NotActive(run))?;
        let entry = active.get(&run).ok_or(EngineError::NotActive(run))?;
        entry.control.send_modify(change);
        Ok(())
    }

    /// The ids of the runs in progress.
    pub fn active_runs(&self) -> Vec<i64> {
        self.inner
            .active
            .lock()
            .map(|active| active.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Reverts in a state: `pending`, `reverting`, `reverted`, `failed`, `skipped` or
    /// `needs_attention` (the ones a human must look at).
    pub async fn reverts(&self, state: String) -> Result<Vec<RevertRow>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.reverts(&state))
            .await?)
    }

    /// The most recent suppressions (matched rules that did not run, and why), newest first.
    pub async fn suppressions(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::journal::SuppressionRow>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.suppressions(limit))
            .await?)
    }

    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRow>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.runs(limit))
            .await?)
    }

    pub async fn run(&self, run: i64) -> Result<RunDetail, EngineError> {
        let (row, events, reverts, definition) = self
            .inner
            .journal
            .call(move |journal| {
                Ok((
                    journal.run(run)?,
                    journal.task_events(run)?,
                    journal.reverts_of_run(run)?,
                    journal.run_definition(run)?,
                ))
            })
            .await?;
        let row = row.ok_or(EngineError::NoRun(run))?;
        let awaiting_approval = self
            .inner
            .active
            .lock()
            .ok()
            .and_then(|active| {
                active
                    .get(&run)
                    .map(|entry| entry.awaiting.iter().cloned().collect())
            })
            .unwrap_or_default();
        let mut unreadable = BTreeMap::new();
        let definition = match definition.as_deref().map(serde_json::from_str) {
            Some(Ok(definition)) => Some(definition),
            Some(Err(error)) => {
                unreadable.insert("definition".to_string(), error.to_string());
                None
            }
            None => {
                unreadable.insert("definition".to_string(), "missing".to_string());
                None
            }
        };
        Ok(RunDetail {
            run: row,
            awaiting_approval,
            events,
            reverts,
            definition,
            unreadable,
        })
    }
}
