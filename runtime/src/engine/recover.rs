//! After a restart: reverts in flight need a human, unfinished runs are resumed or closed as
//! `interrupted`, revert timers are armed again, unprocessed alerts are processed.

use super::*;

impl Engine {
    /// Continues after a restart: reverts in flight go to a human, unfinished runs continue
    /// or close, pending reverts are timed again, and unprocessed alerts are processed.
    pub(super) async fn recover(&self) -> Result<(), EngineError> {
        // On a cluster the sweeps have started: none runs until these runs are active, so a
        // run the first sweep takes is not also among those read here.
        let _sweeping = match self.cluster() {
            Some(cluster) => Some(cluster.sweeping.lock().await),
            None => None,
        };
        let (runs, pending, in_flight, unprocessed, resolved) = self
            .inner
            .journal
            .call(|journal| {
                Ok((
                    journal.unfinished_runs()?,
                    journal.reverts("pending")?,
                    journal.reverts("reverting")?,
                    journal.unprocessed_alerts()?,
                    journal.reverts_already_resolved()?,
                ))
            })
            .await?;
        // Their episode resolved before the stop, but they were not performed yet.
        for revert in resolved {
            tracing::info!(
                revert,
                "its alert resolved before the restart: reverting now"
            );
            let engine = self.clone();
            tokio::spawn(async move { engine.revert(revert).await });
        }
        let at = self.inner.clock.now_ms();
        for revert in in_flight {
            let detail = format!(
                "the server stopped while this revert of `{}` was in flight: check it by hand",
                revert.function
            );
            tracing::warn!(revert = revert.id, %detail);
            self.revert_needs_a_human(&revert, detail, at).await?;
        }
        for run in runs {
            self.resume(run).await?;
        }
        for revert in pending {
            if let Some(due_at) = revert.due_at {
                self.revert_at(revert.id, due_at);
            } else if !revert.on_resolve {
                // Neither a time nor the alert's resolution would ever perform it: a row
                // that says so is damaged, and waiting for nothing would hide it.
                let detail = format!(
                    "not performed: the journaled revert of `{}` has neither a due time nor revert on resolve; undo the action by hand",
                    revert.function
                );
                tracing::error!(revert = revert.id, %detail);
                self.revert_needs_a_human(&revert, detail, at).await?;
            }
        }
        for stored in unprocessed {
            self.process_stored(stored).await?;
        }
        Ok(())
    }

    /// Processes an alert accepted earlier (before a restart, or by a node that died).
    pub(super) async fn process_stored(
        &self,
        stored: crate::journal::StoredAlert,
    ) -> Result<(), EngineError> {
        {
            match stored::from_json(&stored.payload) {
                Ok(alert) => {
                    self.process(stored.id, &alert).await;
                }
                Err(error) => {
                    // Refused, and said where an operator looks: a suppression without a rule
                    // (`GET /api/suppressions`, `medic_suppressions_total{reason="unreadable"}`).
                    tracing::error!(alert = stored.id, %error, "a journaled alert cannot be read back");
                    self.inner.metrics.suppressed("unreadable");
                    let id = stored.id;
                    let detail = format!("the journaled alert cannot be read back: {error}");
                    let at = self.inner.clock.now_ms();
                    self.inner
                        .journal
                        .call(move |journal| {
                            journal.suppress(id, "", "unreadable", &detail, at)?;
                            journal.processed(id)
                        })
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Continues one run from its journal, or closes it when an action was in flight.
    pub(super) async fn resume(&self, run: RunRow) -> Result<(), EngineError> {
        let id = run.id;
        let (definition, events) = self
            .inner
            .journal
            .call(move |journal| Ok((journal.run_definition(id)?, journal.task_events(id)?)))
            .await?;
        // What the journal says is taken as it says it, or the run goes to a human: a
        // default in place of a row that does not read (no deadline, a task not finished, a
        // run not paused) would make the run do something nobody decided.
        let read = Restored::read(definition.as_deref(), &run, &events);
        let Restored {
            playbook,
            arguments,
            prior,
            control,
            in_flight,
        } = match read {
            Ok(restored) => restored,
            Err(detail) => return self.close_interrupted(id, &run.playbook, detail).await,
        };
        let actions_in_flight: Vec<String> = in_flight
            .keys()
            .filter(|task| {
                playbook
                    .task(task)
                    .is_some_and(|task| task.effect == Effect::Action)
            })
            .map(|task| {
                let function = playbook
                    .task(task)
                    .map_or("", |task| task.function.as_str());
                format!("`{task}` ({function})")
            })
            .collect();
        if !actions_in_flight.is_empty() {
            let detail = if actions_in_flight.len() == 1 {
                format!(
                    "the server stopped while the action {} was in flight; it may or may not have taken effect: check it by hand",
                    actions_in_flight.join(", ")
                )
            } else {
                format!(
                    "the server stopped while the actions {} were in flight; they may or may not have taken effect: check them by hand",
                    actions_in_flight.join(", ")
                )
            };
            let tasks = playbook
                .tasks
                .iter()
                .map(|task| {
                    let (outcome, attempts, arguments, finished_at) = match prior.get(&task.id) {
                        Some(Prior::Finished {
                            outcome,
                            attempts,
                            arguments,
                            finished_at,
                        }) => (outcome.clone(), *attempts, arguments.clone(), *finished_at),
                        _ if in_flight.contains_key(&task.id) => (
                            TaskOutcome::Failed {
                                reason: "in flight when the server stopped: check it by hand"
                                    .into(),
                            },
                            0,
                            None,
                            None,
                        ),
                        _ => (TaskOutcome::NotRun, 0, None, None),
                    };
                    executor::TaskReport {
                        id: task.id.clone(),
                        function: task.function.clone(),
                        outcome,
                        attempts,
                        arguments,
                        finished_at,
                    }
                })
                .collect();
            let report = RunReport {
                playbook: playbook.name.clone(),
                outcome: executor::RunOutcome::Interrupted,
                stopped: Some(detail.clone()),
                tasks,
            };
            tracing::warn!(run = id, %detail, "run interrupted");
            // Actions that finished before the crash still get their reverts.
            self.finish(id, &playbook, &run.fingerprint, report).await;
            return Ok(());
        }
        tracing::info!(
            run = id,
            finished = prior.len(),
            "resuming run after restart"
        );
        self.spawn_run(Resumable {
            run: id,
            rule: run.rule,
            playbook,
            arguments,
            prior,
            control,
            started_at: run.started_at,
            fingerprint: run.fingerprint,
            episode_starts_at: run.episode_starts_at,
            performs_actions: run.performs_actions,
        });
        Ok(())
    }

    /// Ends a revert `needs_attention` with why, and tells the escalation receiver.
    pub(super) async fn revert_needs_a_human(
        &self,
        revert: &RevertRow,
        detail: String,
        at: i64,
    ) -> Result<(), EngineError> {
        let id = revert.id;
        let text = detail.clone();
        self.inner
            .journal
            .call(move |journal| journal.revert_done(id, "needs_attention", &detail, at))
            .await?;
        self.escalate(
            revert.run_id,
            format!("medic: revert of run {} needs a human", revert.run_id),
            text,
        )
        .await;
        Ok(())
    }

    pub(super) async fn close_interrupted(
        &self,
        run: i64,
        playbook: &str,
        detail: String,
    ) -> Result<(), EngineError> {
        tracing::warn!(run, %detail, "run interrupted");
        let at = self.inner.clock.now_ms();
        let report = serde_json::json!({ "outcome": "interrupted", "stopped": detail }).to_string();
        self.inner
            .journal
            .call(move |journal| journal.finish_run(run, "interrupted", &report, at))
            .await?;
        self.inner.metrics.run_finished(playbook, "interrupted");
        Ok(())
    }
}

/// An unfinished run as its journal rows say it stood, read strictly.
struct Restored {
    playbook: plan::Playbook,
    arguments: BTreeMap<String, Value>,
    prior: BTreeMap<String, Prior>,
    control: Control,
    /// Tasks started and not finished.
    in_flight: BTreeMap<String, bool>,
}

impl Restored {
    /// Reads a run's playbook, arguments, state and events; the error says which row does
    /// not read, for the `interrupted` report.
    fn read(
        definition: Option<&str>,
        run: &RunRow,
        events: &[TaskEventRow],
    ) -> Result<Restored, String> {
        let playbook: plan::Playbook = match definition.map(serde_json::from_str) {
            Some(Ok(playbook)) => playbook,
            Some(Err(error)) => {
                return Err(format!(
                    "its journaled playbook cannot be read back: {error}"
                ));
            }
            None => return Err("its journaled playbook is missing".into()),
        };
        let arguments: BTreeMap<String, Value> = serde_json::from_str(&run.arguments)
            .map_err(|error| format!("its journaled arguments cannot be read back: {error}"))?;
        let paused = match run.state.as_str() {
            "running" => false,
            "paused" => true,
            other => {
                return Err(format!(
                    "its journaled state {other:?} is not a state of a run in progress"
                ));
            }
        };
        let mut prior = BTreeMap::new();
        let mut control = Control {
            paused,
            ..Control::default()
        };
        let mut in_flight: BTreeMap<String, bool> = BTreeMap::new();
        for event in events {
            let task = event.task.clone();
            let unreadable = |what: &str| {
                format!(
                    "its journaled event {:?} of task `{}` cannot be read back: {what}",
                    event.state, event.task
                )
            };
            // Run-level events have no task; every other event names a task of the playbook.
            if !task.is_empty() && playbook.task(&task).is_none() {
                return Err(unreadable("the playbook has no such task"));
            }
            match event.state.as_str() {
                "started" => {
                    in_flight.insert(task, true);
                }
                "awaiting_approval" => {
                    // Empty: no `within`, so no deadline. Anything else is the deadline.
                    let deadline = if event.detail.is_empty() {
                        None
                    } else {
                        let deadline = event.detail.parse::<i64>().map_err(|_| {
                            unreadable(&format!(
                                "the approval deadline {:?} is not a time",
                                event.detail
                            ))
                        })?;
                        Some(deadline)
                    };
                    prior.insert(task, Prior::AwaitingApproval { deadline });
                }
                "approved" => {
                    control.decisions.insert(
                        task,
                        Decision::Approved {
                            by: event.detail.clone(),
                        },
                    );
                }
                "rejected" => {
                    let (by, reason) = event
                        .detail
                        .split_once(": ")
                        .ok_or_else(|| unreadable("no `who: reason`"))?;
                    control.decisions.insert(
                        task,
                        Decision::Rejected {
                            by: by.into(),
                            reason: reason.into(),
                        },
                    );
                }
                "cancel_requested" => {
                    control.cancelled = Some(event.detail.clone());
                }
                // The run's state says whether it is paused; escalations change nothing.
                "paused" | "resumed" | "escalated_to" | "escalation_failed" => {}
                "succeeded" | "failed" | "skipped" | "would_run" | "cancelled" | "not_run" => {
                    let finished: FinishedDetail = serde_json::from_str(&event.detail)
                        .map_err(|error| unreadable(&error.to_string()))?;
                    in_flight.remove(&task);
                    prior.insert(
                        task,
                        Prior::Finished {
                            outcome: finished.outcome,
                            attempts: finished.attempts,
                            arguments: finished.arguments,
                            finished_at: Some(event.at),
                        },
                    );
                }
                _ => return Err(unreadable("no such event")),
            }
        }
        Ok(Restored {
            playbook,
            arguments,
            prior,
            control,
            in_flight,
        })
    }
}
