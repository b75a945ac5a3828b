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

    /// The runs in progress that wait for a human's approval, with the tasks that wait.
    pub fn awaiting_approvals(&self) -> BTreeMap<i64, Vec<String>> {
        self.inner
            .active
            .lock()
            .map(|active| {
                active
                    .iter()
                    .filter(|(_, entry)| !entry.awaiting.is_empty())
                    .map(|(run, entry)| (*run, entry.awaiting.iter().cloned().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// [`Engine::awaiting_approvals`] of every node, on a cluster (from the store).
    pub async fn awaiting_approvals_anywhere(&self) -> BTreeMap<i64, Vec<String>> {
        let mut waiting = self.awaiting_approvals();
        if self.cluster().is_none() {
            return waiting;
        }
        let stored = self
            .inner
            .journal
            .call(|journal| match journal.postgres() {
                Some(pg) => pg.awaiting_approval(),
                None => Ok(Vec::new()),
            })
            .await;
        match stored {
            Ok(stored) => {
                for (run, task) in stored {
                    let tasks = waiting.entry(run).or_default();
                    if !tasks.contains(&task) {
                        tasks.push(task);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the approvals other nodes wait for"),
        }
        waiting
    }

    /// Whether operators can approve, pause or cancel `run` here: it is in progress on this
    /// node, or, on a cluster, on any.
    pub fn controllable(&self, run: &RunRow) -> bool {
        run.finished_at.is_none()
            && (self.cluster().is_some() || self.active_runs().contains(&run.id))
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

    /// The runs a list's filters select (`crate::run_filter`), newest first.
    pub async fn runs_page(
        &self,
        query: crate::journal::RunQuery,
    ) -> Result<Vec<RunRow>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.runs_page(&query))
            .await?)
    }

    /// Runs escalated or interrupted since `since` (`Journal::runs_needing_a_human`).
    pub async fn runs_needing_a_human(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<RunRow>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.runs_needing_a_human(since, limit))
            .await?)
    }

    /// The newest alerts with what became of each (`Journal::alert_summaries`).
    pub async fn alert_summaries(
        &self,
        limit: u32,
        before: Option<i64>,
        name: Option<String>,
    ) -> Result<Vec<crate::journal::AlertSummary>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.alert_summaries(limit, before, name.as_deref()))
            .await?)
    }

    /// How the alert of a run fared after it (`crate::stats::effect_of`), and when its
    /// episode resolved.
    pub async fn effect_of_run(
        &self,
        run: &RunRow,
        within_ms: i64,
    ) -> Result<(crate::stats::Effect, Option<i64>), EngineError> {
        let fact = crate::stats::RunFact {
            id: run.id,
            fingerprint: run.fingerprint.clone(),
            episode_starts_at: run.episode_starts_at.unwrap_or_default(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            ..crate::stats::RunFact::default()
        };
        let (fingerprint, starts_at) = (fact.fingerprint.clone(), fact.episode_starts_at);
        let episode = self
            .inner
            .journal
            .call(move |journal| journal.episode(&fingerprint, starts_at))
            .await?;
        let now = self.inner.clock.now_ms();
        let resolved = episode.as_ref().and_then(|episode| episode.resolved_at);
        Ok((
            crate::stats::effect_of(&fact, episode.as_ref(), now, within_ms),
            resolved,
        ))
    }

    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRow>, EngineError> {
        Ok(self
            .inner
            .journal
            .call(move |journal| journal.runs(limit))
            .await?)
    }

    pub async fn run(&self, run: i64) -> Result<RunDetail, EngineError> {
        let (row, events, reverts, definition, feedback) = self
            .inner
            .journal
            .call(move |journal| {
                Ok((
                    journal.run(run)?,
                    journal.task_events(run)?,
                    journal.reverts_of_run(run)?,
                    journal.run_definition(run)?,
                    journal.feedback_of_run(run)?,
                ))
            })
            .await?;
        let row = row.ok_or(EngineError::NoRun(run))?;
        let local: Option<Vec<String>> = self.inner.active.lock().ok().and_then(|active| {
            active
                .get(&run)
                .map(|entry| entry.awaiting.iter().cloned().collect())
        });
        // A run of another node: what waits is what its journal says waits.
        let awaiting_approval = match local {
            Some(local) => local,
            None if self.cluster().is_some() && row.finished_at.is_none() => awaiting_in(&events),
            None => Vec::new(),
        };
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
            feedback,
            definition,
            unreadable,
        })
    }
}

/// The tasks whose last event is a request for approval: what a run waits for, as its
/// journal tells it.
fn awaiting_in(events: &[crate::journal::TaskEventRow]) -> Vec<String> {
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for event in events.iter().filter(|event| !event.task.is_empty()) {
        last.insert(&event.task, &event.state);
    }
    last.into_iter()
        .filter(|(_, state)| *state == "awaiting_approval")
        .map(|(task, _)| task.to_string())
        .collect()
}
