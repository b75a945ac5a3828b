//! Runs: started with a journaling observer, finished with their report and reverts in one
//! commit, and escalated to a human when they end needing one.

use super::*;

impl Engine {
    pub(super) fn spawn_run(&self, resumable: Resumable) {
        let Resumable {
            run,
            rule,
            playbook,
            arguments,
            prior,
            control,
            started_at,
            fingerprint,
            episode_starts_at,
            performs_actions,
        } = resumable;
        // A run cancelled because its alert resolved (also before a restart) reverts its
        // `revert on resolve` actions as soon as it ends.
        let resolved = control.cancelled.as_deref() == Some(RESOLVED);
        let (sender, receiver) = watch::channel(control);
        if let Ok(mut active) = self.inner.active.lock() {
            active.insert(
                run,
                Active {
                    control: sender,
                    fingerprint: fingerprint.clone(),
                    episode_starts_at,
                    performs_actions,
                    // Approvals pending before a restart can be decided at once, even while
                    // the run is paused and their tasks have not started again.
                    awaiting: prior
                        .iter()
                        .filter(|(_, prior)| matches!(prior, Prior::AwaitingApproval { .. }))
                        .map(|(task, _)| task.clone())
                        .collect(),
                    approval_groups: playbook
                        .tasks
                        .iter()
                        .filter_map(|task| {
                            let group = task.approval.as_ref()?.by.clone()?;
                            Some((task.id.clone(), group))
                        })
                        .collect(),
                    resolved,
                },
            );
        }
        self.inner.metrics.active_runs.inc();
        let observer = Arc::new(RunObserver {
            run,
            engine: self.clone(),
            functions: playbook
                .tasks
                .iter()
                .map(|task| (task.id.clone(), task.function.clone()))
                .collect(),
            first_attempt: Mutex::new(BTreeMap::new()),
            counted: Arc::new(Mutex::new(BTreeSet::new())),
            durable_first: if self.inner.config.dry_run {
                BTreeSet::new()
            } else {
                playbook
                    .tasks
                    .iter()
                    .filter(|task| task.effect == Effect::Action)
                    .map(|task| task.id.clone())
                    .collect()
            },
        });
        let context = RunContext {
            toolbox: self.toolbox_for(run),
            options: RunOptions {
                dry_run: self.inner.config.dry_run,
            },
            observer,
            gate: self.inner.guardrails.clone(),
            control: receiver,
            prior,
            clock: self.inner.clock,
            started_at,
            default_timeout_ms: self.inner.config.default_playbook_timeout_ms,
        };
        let engine = self.clone();
        let span = tracing::info_span!("run", run, rule = %rule, playbook = %playbook.name);
        let slots = Arc::clone(&self.inner.run_slots);
        if let Ok(mut backlog) = self.inner.backlog.lock() {
            backlog.runs.insert(run, self.inner.clock.now_ms());
        }
        let task = tokio::spawn(
            async move {
                // Beyond `max_runs`, a run waits here for a slot (the semaphore is fair, so
                // in the order the runs were admitted). The slot is held until it ends.
                let slot = slots.acquire_owned().await;
                if let Ok(mut backlog) = engine.inner.backlog.lock() {
                    backlog.runs.remove(&run);
                }
                let report = executor::run_with(&playbook, arguments, context).await;
                // The slot bounds the runs that execute; one whose report is on its way to
                // the disk executes nothing more, and the next may start.
                drop(slot);
                engine.finish(run, &playbook, &fingerprint, report).await;
            }
            .instrument(span),
        );
        self.track_run(run, task);
    }

    /// Closes a run: its report and its reverts are written in one group commit, so a
    /// crash cannot leave a finished temporary action without its revert.
    pub(super) async fn finish(
        &self,
        run: i64,
        playbook: &plan::Playbook,
        fingerprint: &str,
        report: RunReport,
    ) {
        let at = self.inner.clock.now_ms();
        let mut reverts = Vec::new();
        for task_report in &report.tasks {
            let Some(task) = playbook.task(&task_report.id) else {
                continue;
            };
            let TaskOutcome::Succeeded { output } = &task_report.outcome else {
                continue;
            };
            if task.effect != Effect::Action
                || !task.revertible
                || (task.revert_after_ms.is_none() && !task.revert_on_resolve)
            {
                continue;
            }
            reverts.push((
                task.id.clone(),
                task.function.clone(),
                // Arguments that were not recorded are written as `null`, which the revert
                // refuses (needs_attention) rather than reverting with none.
                serde_json::to_string(&task_report.arguments).unwrap_or_default(),
                serde_json::to_string(output).unwrap_or_default(),
                task.revert_after_ms
                    .map(|after| task_report.finished_at.unwrap_or(at).saturating_add(after)),
                task.revert_on_resolve,
            ));
        }
        let outcome = report.outcome.as_str();
        let report_json = serde_json::to_string(&report).unwrap_or_default();
        let fingerprint_owned = fingerprint.to_string();
        let scheduled = self
            .inner
            .journal
            .call(move |journal| {
                journal.finish_run(run, outcome, &report_json, at)?;
                reverts
                    .into_iter()
                    .map(|(task, function, arguments, output, due_at, on_resolve)| {
                        journal
                            .schedule_revert(
                                run,
                                &task,
                                &function,
                                &arguments,
                                &output,
                                &fingerprint_owned,
                                due_at,
                                on_resolve,
                            )
                            .map(|id| (id, due_at, on_resolve))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
        // Read after the reverts are committed: an alert resolving from here on finds them in
        // the journal itself, and one that resolved before has set the flag.
        let resolved = self
            .inner
            .active
            .lock()
            .ok()
            .and_then(|active| active.get(&run).map(|entry| entry.resolved))
            .unwrap_or(false);
        match scheduled {
            Ok(scheduled) => {
                for (revert, due_at, on_resolve) in scheduled {
                    if on_resolve && resolved {
                        // The alert resolved while the run went on: undo at once.
                        self.revert(revert).await;
                    } else if let Some(due_at) = due_at {
                        self.revert_at(revert, due_at);
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, run, "could not journal the end of the run");
                if !matches!(error, JournalError::Fenced { .. }) {
                    self.orphaned(run);
                }
            }
        }
        // Counted before it leaves the active runs: whoever sees it gone (`idle`) sees it
        // counted.
        self.inner.metrics.run_finished(&playbook.name, outcome);
        let was_active = self
            .inner
            .active
            .lock()
            .is_ok_and(|mut active| active.remove(&run).is_some());
        if was_active {
            self.inner.metrics.active_runs.dec();
        }
        if matches!(
            report.outcome,
            executor::RunOutcome::Escalated | executor::RunOutcome::Interrupted
        ) {
            let mut text = format!("run {run} of playbook {}: {outcome}", playbook.name);
            if let Some(stopped) = &report.stopped {
                text.push_str(&format!("; {stopped}"));
            }
            for task in &report.tasks {
                if let TaskOutcome::Failed { reason } = &task.outcome {
                    text.push_str(&format!(
                        "; task {} ({}) failed: {reason}",
                        task.id, task.function
                    ));
                }
            }
            self.escalate(run, format!("medic: run {run} needs a human"), text)
                .await;
        }
        self.inner.progress.notify_waiters();
        tracing::info!(
            run,
            outcome,
            stopped = report.stopped.as_deref().unwrap_or(""),
            "run finished"
        );
    }

    /// Tells the configured receiver that a human must take over, and journals whether it
    /// heard.
    pub(super) async fn escalate(&self, run: i64, title: String, text: String) {
        let Some(name) = self.inner.config.escalate_to.clone() else {
            return;
        };
        let args = BTreeMap::from([
            ("name".to_string(), Value::String(name)),
            ("title".to_string(), Value::String(title)),
            ("text".to_string(), Value::String(text)),
        ]);
        let delivered = match self.inner.toolbox.call("notify.webhook", args).await {
            Ok(Value::Record(fields)) => match fields.get("delivered") {
                Some(Value::Bool(false)) => Err(fields
                    .get("detail")
                    .map(plan::render::value_text)
                    .unwrap_or_default()),
                _ => Ok(()),
            },
            Ok(_) => Ok(()),
            Err(error) => Err(error.to_string()),
        };
        let (state, detail) = match delivered {
            Ok(()) => ("escalated_to", String::new()),
            Err(error) => {
                tracing::error!(run, %error, "the escalation was not delivered");
                ("escalation_failed", error)
            }
        };
        let at = self.inner.clock.now_ms();
        if let Err(error) = self
            .inner
            .journal
            .call(move |journal| journal.task_event(run, "", state, &detail, at))
            .await
        {
            tracing::error!(%error, run, "could not journal an escalation");
        }
    }
}

/// Journals a run's transitions, keeps the list of tasks awaiting approval, and times tasks
/// for metrics.
///
/// An action's transitions (outside a dry run) and a pending approval are awaited: an
/// action's `started` is durable before it is called, and its outcome before anything
/// depends on it. A query's transitions, and all of a dry run's, are queued without waiting
/// for their commit: the journal's queue keeps them in order, ahead of the run's next
/// awaited write and of its end, and a crash before they commit only means a query is
/// asked again when the run resumes.
struct RunObserver {
    run: i64,
    engine: Engine,
    functions: BTreeMap<String, String>,
    first_attempt: Mutex<BTreeMap<String, i64>>,
    /// The actions whose start took its place in the rate window (once per action, however
    /// many attempts, also when an attempt's start was refused).
    counted: Arc<Mutex<BTreeSet<String>>>,
    /// The tasks whose transitions are awaited until durable.
    durable_first: BTreeSet<String>,
}

impl Observer for RunObserver {
    fn transition(&self, task: &str, transition: Transition, at_ms: i64) -> TransitionFuture {
        let run = self.run;
        let engine = self.engine.clone();
        let task = task.to_string();
        let (state, detail) = match &transition {
            Transition::Started { attempt } => {
                if let Ok(mut first) = self.first_attempt.lock() {
                    first.entry(task.clone()).or_insert(at_ms);
                }
                ("started".to_string(), attempt.to_string())
            }
            Transition::AwaitingApproval { deadline } => {
                self.set_awaiting(&task, true);
                (
                    "awaiting_approval".to_string(),
                    deadline.map(|at| at.to_string()).unwrap_or_default(),
                )
            }
            Transition::Approved { .. } => {
                self.set_awaiting(&task, false);
                // The decision itself was journaled when it was made.
                return Box::pin(async { Ok(()) });
            }
            Transition::Finished {
                outcome,
                attempts,
                arguments,
            } => {
                self.set_awaiting(&task, false);
                let started = self
                    .first_attempt
                    .lock()
                    .ok()
                    .and_then(|first| first.get(&task).copied());
                if let (Some(started), Some(function)) = (started, self.functions.get(&task)) {
                    let seconds = (at_ms.saturating_sub(started)) as f64 / 1_000.0;
                    self.engine.inner.metrics.task_finished(function, seconds);
                }
                let detail = FinishedDetail {
                    outcome: outcome.clone(),
                    attempts: *attempts,
                    arguments: arguments.clone(),
                };
                (
                    outcome.state().to_string(),
                    serde_json::to_string(&detail).unwrap_or_default(),
                )
            }
        };
        let awaited = matches!(transition, Transition::AwaitingApproval { .. })
            || self.durable_first.contains(&task);
        if !awaited {
            let queued = engine
                .inner
                .journal
                .send("a task transition", move |journal| {
                    journal.task_event(run, &task, &state, &detail, at_ms)
                });
            return Box::pin(async move {
                queued.map_err(|error| {
                    tracing::error!(%error, run, "could not journal a task transition");
                    error.to_string()
                })
            });
        }
        // An action's start also takes its place in the rate limit's window on disk (its
        // first attempt), in the same write, so that a restart reads the window back; on
        // PostgreSQL the store decides there the kill switch and the window for every node.
        let action_start = state == "started" && self.durable_first.contains(&task);
        let count = action_start
            && self
                .counted
                .lock()
                .is_ok_and(|counted| !counted.contains(&task));
        let limit = engine.inner.config.actions_per_minute;
        let counted = Arc::clone(&self.counted);
        Box::pin(async move {
            let counted_task = task.clone();
            let result = engine
                .inner
                .journal
                .call(move |journal| {
                    journal.task_event(run, &task, &state, &detail, at_ms)?;
                    if action_start {
                        journal.start_action(at_ms, count, limit)?;
                    }
                    Ok(())
                })
                .await;
            if result.is_ok()
                && count
                && let Ok(mut counted) = counted.lock()
            {
                counted.insert(counted_task);
            }
            result.map_err(|error| {
                if matches!(error, JournalError::Fenced { .. }) {
                    engine.lose_run(run);
                } else if !matches!(error, JournalError::Refused(_)) {
                    tracing::error!(%error, run, "could not journal a task transition");
                }
                error.to_string()
            })
        })
    }
}

impl RunObserver {
    fn set_awaiting(&self, task: &str, awaiting: bool) {
        if let Ok(mut active) = self.engine.inner.active.lock()
            && let Some(entry) = active.get_mut(&self.run)
        {
            if awaiting {
                entry.awaiting.insert(task.to_string());
            } else {
                entry.awaiting.remove(task);
            }
        }
    }
}
