//! The engine behind `medic serve` and `medic run`: accepted alerts are matched against the
//! plan, admitted (one run per rule per firing episode, cooldowns, per-key concurrency, the
//! kill switch), run by the executor with every transition journaled, and their temporary
//! actions reverted on time or when the alert resolves.
//!
//! Guarantees, and where they come from:
//! - nothing accepted is lost: [`Engine::ingest`] answers only after the journal's group
//!   commit, and alerts not yet processed are processed again on start;
//! - no episode runs a rule twice: admission is decided in the journal (`Journal::admit`);
//! - no action is repeated blindly after a crash: a run whose action was in flight is
//!   closed as `interrupted` for a human, other unfinished runs continue without rerunning
//!   what finished (`executor::Prior`);
//! - a revert happens at most once (`Journal::claim_revert`).

use crate::executor::{
    self, Clock, Control, Decision, Observer, Prior, RunContext, RunOptions, RunReport,
    TaskOutcome, Toolbox, Transition, TransitionFuture,
};
use crate::guardrails::Guardrails;
use crate::ingest::{Alert, Status};
use crate::journal::{
    AcceptedAlert, Admission, Admitted, Journal, JournalError, JournalHandle, RevertRow, RunRow,
    TaskEventRow,
};
use crate::metrics::Metrics;
use crate::normalize;
use medic_compiler::plan::{self, Effect, Plan, Value};
use medic_compiler::units::Quantity;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// Why a run is cancelled when its alert resolves (journaled; read back after a restart).
const RESOLVED: &str = "the alert resolved";

/// The journal setting that keeps the kill switch across restarts.
const KILL_SWITCH: &str = "kill_switch";

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Run everything but perform no action (`medic run --dry-run`, `serve --dry-run`).
    pub dry_run: bool,
    /// Accepted alerts waiting to be matched; beyond this the server answers 503.
    pub queue_capacity: usize,
    /// At most this many actions in any 60 seconds, across all runs.
    pub actions_per_minute: Option<u32>,
    /// Starts with every action refused.
    pub kill_switch: bool,
    /// The `notify.webhook` name that hears of runs that need a human: escalated,
    /// interrupted by a restart, or a revert that failed or was cut short.
    pub escalate_to: Option<String>,
    /// How long the journal keeps what has ended (runs, events, suppressions, alerts), in
    /// milliseconds; pruned at start and every hour. `None` keeps everything.
    pub retention_ms: Option<i64>,
    /// Runs in progress at once, across all rules; the runs admitted beyond it wait for a
    /// slot in the order they were admitted (`limits.max_runs`, default 100).
    pub max_runs: usize,
    /// The timeout of a playbook without a `timeout` clause (default one hour).
    pub default_playbook_timeout_ms: Option<i64>,
}

/// The default of [`EngineConfig::max_runs`].
pub const DEFAULT_MAX_RUNS: usize = 100;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            dry_run: false,
            queue_capacity: 10_000,
            actions_per_minute: Some(30),
            kill_switch: false,
            escalate_to: None,
            retention_ms: None,
            max_runs: DEFAULT_MAX_RUNS,
            default_playbook_timeout_ms: Some(executor::DEFAULT_PLAYBOOK_TIMEOUT_MS),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the ingest queue is full ({capacity} alerts wait to be matched); retry later")]
    QueueFull { capacity: usize },
    #[error(
        "the payload has {count} alerts, more than the ingest queue holds ({capacity}); split it"
    )]
    TooManyAlerts { count: usize, capacity: usize },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("there is no run {0}")]
    NoRun(i64),
    #[error("run {0} is not in progress")]
    NotActive(i64),
    #[error("run {run} has no task waiting for approval{which}")]
    NoApproval { run: i64, which: String },
    /// The approver is not in the group the task's `approval by "GROUP"` names.
    #[error(
        "{who} may not decide the approval of `{task}` in run {run}: it needs a member of the group `{group}`"
    )]
    NotInGroup {
        run: i64,
        task: String,
        group: String,
        who: String,
    },
}

/// The approval groups of whoever decides an approval, as the server authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalGroups {
    /// No users are configured, so membership cannot be known: anyone allowed to decide may
    /// decide any approval (`medic serve` warns about every `approval by` at start).
    Unenforced,
    /// The groups of an authenticated user: only approvals without a group, or with one of
    /// these, may be decided.
    Member(BTreeSet<String>),
}

/// A run in progress, as operators reach it.
struct Active {
    control: watch::Sender<Control>,
    fingerprint: String,
    performs_actions: bool,
    /// Tasks waiting for a human's approval.
    awaiting: BTreeSet<String>,
    /// The group named by `approval by "GROUP"`, for each task that has one.
    approval_groups: BTreeMap<String, String>,
    /// Its alert resolved while it ran: `revert on resolve` happens as soon as it ends.
    resolved: bool,
}

struct Queued {
    alert_id: i64,
    alert: Alert,
}

struct Inner {
    plan: RwLock<Arc<Plan>>,
    journal: JournalHandle,
    toolbox: Arc<dyn Toolbox>,
    clock: Clock,
    config: EngineConfig,
    guardrails: Arc<Guardrails>,
    /// One permit per run that may execute now ([`EngineConfig::max_runs`]).
    run_slots: Arc<tokio::sync::Semaphore>,
    active: Mutex<BTreeMap<i64, Active>>,
    queue: mpsc::Sender<Queued>,
    /// Alerts accepted and not yet processed (queued, or being matched).
    pending: std::sync::atomic::AtomicUsize,
    /// Woken whenever an alert is processed or a run finishes (see [`Engine::idle`]).
    progress: tokio::sync::Notify,
    metrics: Metrics,
}

/// The engine; cheap to clone (handles to one shared state).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What became of one matched rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    Started {
        rule: String,
        run: i64,
    },
    Suppressed {
        rule: String,
        reason: String,
        detail: String,
    },
}

/// A run as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunRow,
    pub awaiting_approval: Vec<String>,
    pub events: Vec<TaskEventRow>,
    /// The reverts the run scheduled and what became of them.
    pub reverts: Vec<RevertRow>,
    /// The playbook as the run ran it; `None` when it cannot be read back (see `unreadable`).
    pub definition: Option<plan::Playbook>,
    /// Stored fields that do not read, with why (`definition` here; the server adds
    /// `arguments` and `report`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, String>,
}

impl Engine {
    /// Starts the engine: recovers what the journal says was in progress, then matches
    /// queued alerts in the background. Must be called inside a tokio runtime.
    pub async fn start(
        plan: Plan,
        journal: JournalHandle,
        toolbox: Arc<dyn Toolbox>,
        clock: Clock,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let guardrails = Arc::new(Guardrails {
            kill_switch: AtomicBool::new(config.kill_switch),
            actions_per_minute: config.actions_per_minute,
            recent: Mutex::new(VecDeque::new()),
            clock,
        });
        let engine = Engine {
            inner: Arc::new(Inner {
                plan: RwLock::new(Arc::new(plan)),
                journal,
                toolbox,
                clock,
                run_slots: Arc::new(tokio::sync::Semaphore::new(config.max_runs.max(1))),
                config,
                guardrails,
                active: Mutex::new(BTreeMap::new()),
                queue,
                pending: std::sync::atomic::AtomicUsize::new(0),
                progress: tokio::sync::Notify::new(),
                metrics: Metrics::new(),
            }),
        };
        // A kill switch turned on through the API stays on across restarts; the config's
        // `kill_switch = true` turns it on at every start.
        let journaled = engine
            .inner
            .journal
            .call(|journal| journal.setting(KILL_SWITCH))
            .await?;
        if journaled.as_deref() == Some("on") {
            engine
                .inner
                .guardrails
                .kill_switch
                .store(true, Ordering::SeqCst);
        }
        engine.recover().await?;
        tokio::spawn(worker(engine.clone(), receiver));
        if let Some(retention) = engine.inner.config.retention_ms {
            tokio::spawn(prune_forever(engine.clone(), retention));
        }
        Ok(engine)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn plan(&self) -> Arc<Plan> {
        match self.inner.plan.read() {
            Ok(plan) => Arc::clone(&plan),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the plan for alerts matched from now on; runs in progress keep the
    /// definition they started with.
    pub fn replace_plan(&self, plan: Plan) {
        let plan = Arc::new(plan);
        match self.inner.plan.write() {
            Ok(mut current) => *current = plan,
            Err(poisoned) => *poisoned.into_inner() = plan,
        }
    }

    /// Turns the kill switch on or off; the setting is journaled and survives restarts.
    pub async fn set_kill_switch(&self, on: bool) -> Result<(), EngineError> {
        let value = if on { "on" } else { "off" };
        self.inner
            .journal
            .call(move |journal| journal.set_setting(KILL_SWITCH, value))
            .await?;
        self.inner
            .guardrails
            .kill_switch
            .store(on, Ordering::SeqCst);
        tracing::warn!(on, "kill switch changed");
        Ok(())
    }

    pub fn kill_switch(&self) -> bool {
        self.inner.guardrails.kill_switch.load(Ordering::SeqCst)
    }

    pub fn journal(&self) -> &JournalHandle {
        &self.inner.journal
    }

    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Makes alerts durable and queues them for matching; answers once they are on disk.
    /// A full queue refuses the whole batch before anything is written.
    pub async fn ingest(&self, source: &str, alerts: Vec<Alert>) -> Result<Vec<i64>, EngineError> {
        let capacity = self.inner.config.queue_capacity.max(1);
        if alerts.len() > capacity {
            return Err(EngineError::TooManyAlerts {
                count: alerts.len(),
                capacity,
            });
        }
        let permits = self
            .inner
            .queue
            .try_reserve_many(alerts.len())
            .map_err(|_| EngineError::QueueFull {
                capacity: self.inner.config.queue_capacity,
            })?;
        let accepted: Vec<AcceptedAlert> = alerts.iter().map(stored::accepted).collect();
        let received_at = self.inner.clock.now_ms();
        let ids = self
            .inner
            .journal
            .call(move |journal| journal.accept(&accepted, received_at))
            .await?;
        self.inner
            .metrics
            .alert_received(source, u64::try_from(ids.len()).unwrap_or(u64::MAX));
        for ((permit, alert), alert_id) in permits.zip(alerts).zip(ids.iter().copied()) {
            self.inner.metrics.queue_depth.inc();
            self.inner.pending.fetch_add(1, Ordering::SeqCst);
            permit.send(Queued { alert_id, alert });
        }
        Ok(ids)
    }

    /// Matches one accepted alert and starts what its rules ask for.
    pub async fn process(&self, alert_id: i64, alert: &Alert) -> Vec<Dispatch> {
        let (dispatches, journaled) = self.dispatch(alert_id, alert).await;
        if journaled {
            self.mark_processed(vec![alert_id]).await;
        } else {
            // Left unprocessed: the next start processes it again (admission is idempotent
            // per episode, so what did start is not started twice).
            tracing::error!(
                alert_id,
                "the journal failed while this alert was processed; it will be processed again at the next start"
            );
        }
        dispatches
    }

    /// Records that alerts were processed: a restart does not process them again. A crash
    /// before this is harmless, as admission is idempotent per episode.
    async fn mark_processed(&self, alert_ids: Vec<i64>) {
        if let Err(error) = self
            .inner
            .journal
            .call(move |journal| {
                for alert_id in &alert_ids {
                    journal.processed(*alert_id)?;
                }
                Ok(())
            })
            .await
        {
            tracing::error!(%error, "could not mark alerts processed; a restart will process them again");
        }
    }

    /// Matches one alert and starts what its rules ask for, without marking it processed.
    /// Also says whether every journal write it needed succeeded.
    async fn dispatch(&self, alert_id: i64, alert: &Alert) -> (Vec<Dispatch>, bool) {
        let span = tracing::info_span!("alert", alert_id, alertname = %alert.name, status = alert.status.as_str());
        self.dispatch_inner(alert_id, alert).instrument(span).await
    }

    async fn dispatch_inner(&self, alert_id: i64, alert: &Alert) -> (Vec<Dispatch>, bool) {
        let plan = self.plan();
        let mut journaled = true;
        if alert.status == Status::Resolved {
            journaled &= self.resolved(&alert.fingerprint).await;
        }
        let value = alert.to_value();
        let outcome = plan.match_alert(&value);
        let mut dispatches = Vec::new();
        for (rule_index, error) in &outcome.errors {
            if let Some(rule) = plan.rules.get(*rule_index as usize) {
                let detail = format!("`when` could not be evaluated: {error}");
                tracing::warn!(rule = %rule.name, %detail, "rule skipped");
                dispatches.push(
                    self.suppress(alert_id, &rule.name, "unevaluable", detail)
                        .await,
                );
            }
        }
        for rule_index in outcome.matched {
            let Some(rule) = plan.rules.get(rule_index as usize) else {
                continue;
            };
            dispatches.push(self.admit(&plan, rule, alert_id, alert, &value).await);
        }
        journaled &= !dispatches.iter().any(|dispatch| {
            matches!(dispatch, Dispatch::Suppressed { reason, .. } if reason == "journal")
        });
        (dispatches, journaled)
    }

    async fn suppress(&self, alert_id: i64, rule: &str, reason: &str, detail: String) -> Dispatch {
        self.inner.metrics.suppressed(reason);
        tracing::info!(rule, reason, %detail, "suppressed");
        let (rule_owned, reason_owned, detail_owned) =
            (rule.to_string(), reason.to_string(), detail.clone());
        let at = self.inner.clock.now_ms();
        if let Err(error) = self
            .inner
            .journal
            .call(move |journal| {
                journal.suppress(alert_id, &rule_owned, &reason_owned, &detail_owned, at)
            })
            .await
        {
            tracing::error!(%error, "could not journal a suppression");
        }
        Dispatch::Suppressed {
            rule: rule.into(),
            reason: reason.into(),
            detail,
        }
    }

    async fn admit(
        &self,
        plan: &Plan,
        rule: &plan::Rule,
        alert_id: i64,
        alert: &Alert,
        value: &Value,
    ) -> Dispatch {
        let Some(playbook) = plan.playbook(&rule.playbook) else {
            let detail = format!("the plan has no playbook `{}`", rule.playbook);
            return self
                .suppress(alert_id, &rule.name, "no_playbook", detail)
                .await;
        };
        let scope = AlertScope(value);
        let arguments = match arguments(rule, playbook, &scope) {
            Ok(arguments) => arguments,
            Err(detail) => {
                return self
                    .suppress(alert_id, &rule.name, "bad_arguments", detail)
                    .await;
            }
        };
        if rule.performs_actions && !self.inner.config.dry_run && self.kill_switch() {
            let detail = format!(
                "`{}` performs actions and the kill switch is on",
                rule.playbook
            );
            return self
                .suppress(alert_id, &rule.name, "kill_switch", detail)
                .await;
        }
        let key = |limit: &plan::Limit| match &limit.key {
            None => Ok(String::new()),
            Some(key) => key.eval(&scope).map(|value| match value {
                Value::String(text) => text,
                other => plan::render::value_text(&other),
            }),
        };
        // A limit's key (`per alert.service`), evaluated for this alert; no key is one
        // global key.
        let keyed = |limit: Option<&plan::Limit>, what: &str| match limit {
            None => Ok(None),
            Some(limit) => key(limit)
                .map(|key| Some((key, limit.value)))
                .map_err(|error| format!("the {what} key could not be evaluated: {error}")),
        };
        let (cooldown, concurrency) = match (
            keyed(rule.cooldown.as_ref(), "cooldown"),
            keyed(rule.concurrency.as_ref(), "concurrency"),
        ) {
            (Ok(cooldown), Ok(concurrency)) => (cooldown, concurrency),
            (Err(detail), _) | (_, Err(detail)) => {
                return self
                    .suppress(alert_id, &rule.name, "bad_arguments", detail)
                    .await;
            }
        };
        let admission = Admission {
            rule: rule.name.clone(),
            playbook: playbook.name.clone(),
            alert_id,
            fingerprint: alert.fingerprint.clone(),
            starts_at: alert.starts_at,
            cooldown: cooldown.clone(),
            concurrency,
            performs_actions: rule.performs_actions,
            arguments: serde_json::to_string(&arguments).unwrap_or_default(),
            definition: serde_json::to_string(playbook).unwrap_or_default(),
            at: self.inner.clock.now_ms(),
        };
        let admitted = match self
            .inner
            .journal
            .call(move |journal| journal.admit(&admission))
            .await
        {
            Ok(admitted) => admitted,
            Err(error) => {
                let detail = format!("the journal refused the run: {error}");
                tracing::error!(%detail);
                return self.suppress(alert_id, &rule.name, "journal", detail).await;
            }
        };
        match admitted {
            Admitted::Started(run) => {
                tracing::info!(run, rule = %rule.name, playbook = %playbook.name, "run started");
                self.spawn_run(Resumable {
                    run,
                    rule: rule.name.clone(),
                    playbook: playbook.clone(),
                    arguments,
                    prior: BTreeMap::new(),
                    control: Control::default(),
                    started_at: self.inner.clock.now_ms(),
                    fingerprint: alert.fingerprint.clone(),
                    performs_actions: rule.performs_actions,
                });
                Dispatch::Started {
                    rule: rule.name.clone(),
                    run,
                }
            }
            Admitted::Duplicate { existing_run } => {
                let detail = format!("run {existing_run} already handles this firing episode");
                self.suppress(alert_id, &rule.name, "duplicate", detail)
                    .await
            }
            Admitted::Cooldown { last_run, until } => {
                let key = cooldown.map(|(key, _)| key).unwrap_or_default();
                let detail = format!(
                    "cooldown for {key:?}: run {last_run} started recently; cools down until {}",
                    medic_compiler::units::format_time(until)
                );
                self.suppress(alert_id, &rule.name, "cooldown", detail)
                    .await
            }
            Admitted::Concurrency { running } => {
                let detail =
                    format!("{running} runs of this rule already hold its concurrency key");
                self.suppress(alert_id, &rule.name, "concurrency", detail)
                    .await
            }
        }
    }

    fn spawn_run(&self, resumable: Resumable) {
        let Resumable {
            run,
            rule,
            playbook,
            arguments,
            prior,
            control,
            started_at,
            fingerprint,
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
        });
        let context = RunContext {
            toolbox: Arc::clone(&self.inner.toolbox),
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
        tokio::spawn(
            async move {
                // Beyond `max_runs`, a run waits here for a slot (the semaphore is fair, so
                // in the order the runs were admitted). The slot is held until it ends.
                let _slot = slots.acquire_owned().await;
                let report = executor::run_with(&playbook, arguments, context).await;
                engine.finish(run, &playbook, &fingerprint, report).await;
            }
            .instrument(span),
        );
    }

    /// Closes a run: its report and its reverts are written in one group commit, so a
    /// crash cannot leave a finished temporary action without its revert.
    async fn finish(
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
            Err(error) => tracing::error!(%error, run, "could not journal the end of the run"),
        }
        let was_active = self
            .inner
            .active
            .lock()
            .is_ok_and(|mut active| active.remove(&run).is_some());
        if was_active {
            self.inner.metrics.active_runs.dec();
        }
        self.inner.metrics.run_finished(&playbook.name, outcome);
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
    async fn escalate(&self, run: i64, title: String, text: String) {
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

    fn revert_at(&self, revert: i64, due_at: i64) {
        let engine = self.clone();
        tokio::spawn(async move {
            engine.inner.clock.sleep_until(due_at).await;
            engine.revert(revert).await;
        });
    }

    /// Performs a revert unless it was already taken.
    async fn revert(&self, revert: i64) {
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
                Err(error) => ("failed", error.to_string()),
            },
        };
        tracing::info!(revert, run = row.run_id, task = %row.task, state, %detail, "revert");
        if state == "needs_attention" {
            self.escalate(
                row.run_id,
                format!("medic: revert of run {} needs a human", row.run_id),
                format!(
                    "the revert of task {} ({}) was {detail}",
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

    /// A resolved alert ends what its firing started: unfinished runs that act are
    /// cancelled and `revert on resolve` actions are undone.
    /// Says whether the journal answered every read and write it needed.
    async fn resolved(&self, fingerprint: &str) -> bool {
        let mut cancelled = Vec::new();
        if let Ok(mut active) = self.inner.active.lock() {
            for (run, entry) in active.iter_mut() {
                if entry.fingerprint != fingerprint {
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
            .call(move |journal| journal.reverts_on_resolve(&fingerprint))
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
    async fn active_check(&self, run: i64) -> Result<(), EngineError> {
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

    fn with_control(&self, run: i64, change: impl FnOnce(&mut Control)) -> Result<(), EngineError> {
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

    /// Waits until no alert waits in the queue and no run is in progress (`medic run`,
    /// tests). Revert timers are not waited for.
    pub async fn idle(&self) {
        loop {
            let progress = self.inner.progress.notified();
            tokio::pin!(progress);
            // Registered before checking, so a wake-up between the check and the wait is
            // not missed.
            progress.as_mut().enable();
            if self.inner.pending.load(Ordering::SeqCst) == 0 && self.active_runs().is_empty() {
                return;
            }
            progress.await;
        }
    }

    /// Continues after a restart: reverts in flight go to a human, unfinished runs continue
    /// or close, pending reverts are timed again, and unprocessed alerts are processed.
    async fn recover(&self) -> Result<(), EngineError> {
        let (runs, pending, in_flight, unprocessed) = self
            .inner
            .journal
            .call(|journal| {
                Ok((
                    journal.unfinished_runs()?,
                    journal.reverts("pending")?,
                    journal.reverts("reverting")?,
                    journal.unprocessed_alerts()?,
                ))
            })
            .await?;
        let at = self.inner.clock.now_ms();
        for revert in in_flight {
            let detail = format!(
                "the server stopped while this revert of `{}` was in flight: check it by hand",
                revert.function
            );
            tracing::warn!(revert = revert.id, %detail);
            let text = detail.clone();
            self.inner
                .journal
                .call(move |journal| journal.revert_done(revert.id, "needs_attention", &detail, at))
                .await?;
            self.escalate(
                revert.run_id,
                format!("medic: revert of run {} needs a human", revert.run_id),
                text,
            )
            .await;
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
                let text = detail.clone();
                self.inner
                    .journal
                    .call(move |journal| {
                        journal.revert_done(revert.id, "needs_attention", &detail, at)
                    })
                    .await?;
                self.escalate(
                    revert.run_id,
                    format!("medic: revert of run {} needs a human", revert.run_id),
                    text,
                )
                .await;
            }
        }
        for stored in unprocessed {
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
    async fn resume(&self, run: RunRow) -> Result<(), EngineError> {
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
            performs_actions: run.performs_actions,
        });
        Ok(())
    }

    async fn close_interrupted(
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

/// A run to start or continue.
struct Resumable {
    run: i64,
    rule: String,
    playbook: plan::Playbook,
    arguments: BTreeMap<String, Value>,
    prior: BTreeMap<String, Prior>,
    control: Control,
    started_at: i64,
    fingerprint: String,
    performs_actions: bool,
}

/// What the journal keeps of a finished task (the detail of its last event).
#[derive(serde::Serialize, serde::Deserialize)]
struct FinishedDetail {
    outcome: TaskOutcome,
    attempts: u32,
    #[serde(default)]
    arguments: Option<BTreeMap<String, Value>>,
}

/// Journals a run's transitions (each awaited, so "started" is durable before an action
/// is called), keeps the list of tasks awaiting approval, and times tasks for metrics.
struct RunObserver {
    run: i64,
    engine: Engine,
    functions: BTreeMap<String, String>,
    first_attempt: Mutex<BTreeMap<String, i64>>,
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
        Box::pin(async move {
            let result = engine
                .inner
                .journal
                .call(move |journal| journal.task_event(run, &task, &state, &detail, at_ms))
                .await;
            result.map_err(|error| {
                tracing::error!(%error, run, "could not journal a task transition");
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

/// Prunes the journal now and every hour.
async fn prune_forever(engine: Engine, retention: i64) {
    loop {
        let before = engine.inner.clock.now_ms().saturating_sub(retention);
        match engine
            .inner
            .journal
            .call(move |journal| journal.prune(before))
            .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "journal pruned"),
            Err(error) => tracing::error!(%error, "could not prune the journal"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(3_600)).await;
    }
}

/// Matches queued alerts in arrival order.
async fn worker(engine: Engine, mut receiver: mpsc::Receiver<Queued>) {
    while let Some(queued) = receiver.recv().await {
        engine.inner.metrics.queue_depth.dec();
        // Each alert is marked processed as soon as it is: after a crash, at most the one
        // being matched is matched again.
        engine.process(queued.alert_id, &queued.alert).await;
        engine.inner.pending.fetch_sub(1, Ordering::SeqCst);
        engine.inner.progress.notify_waiters();
    }
}

/// The `alert` variable of rule expressions.
struct AlertScope<'a>(&'a Value);

impl plan::Vars for AlertScope<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        (name == "alert").then_some(self.0)
    }
}

/// Evaluates a rule's arguments to its playbook; parameters it leaves out take their
/// (constant) defaults.
fn arguments(
    rule: &plan::Rule,
    playbook: &plan::Playbook,
    scope: &AlertScope<'_>,
) -> Result<BTreeMap<String, Value>, String> {
    let empty: BTreeMap<String, Value> = BTreeMap::new();
    let mut arguments = BTreeMap::new();
    for param in &playbook.params {
        let value = match (rule.args.get(&param.name), &param.default) {
            (Some(expression), _) => expression.eval(scope),
            (None, Some(default)) => default.eval(&empty),
            (None, None) => {
                return Err(format!("no value for the parameter `{}`", param.name));
            }
        };
        let value = value.map_err(|error| {
            format!(
                "the argument `{}` could not be evaluated: {error}",
                param.name
            )
        })?;
        arguments.insert(param.name.clone(), value);
    }
    Ok(arguments)
}

/// The journaled form of a normalized alert, so that an alert accepted before a crash is
/// processed afterwards exactly as it would have been.
pub mod stored {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Form {
        name: String,
        status: String,
        severity: String,
        service: String,
        instance: String,
        namespace: String,
        value: Option<plan::ir::QuantityValue>,
        value_error: Option<String>,
        summary: String,
        description: String,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        starts_at: i64,
        ends_at: Option<i64>,
        fingerprint: String,
        source: String,
    }

    /// The journal row of an alert: its identity and this journaled form.
    pub fn accepted(alert: &Alert) -> AcceptedAlert {
        AcceptedAlert {
            source: alert.source.clone(),
            name: alert.name.clone(),
            status: alert.status.as_str().into(),
            fingerprint: alert.fingerprint.clone(),
            starts_at: alert.starts_at,
            payload: to_json(alert),
        }
    }

    pub fn to_json(alert: &Alert) -> String {
        let form = Form {
            name: alert.name.clone(),
            status: alert.status.as_str().into(),
            severity: alert.severity.as_str().into(),
            service: alert.service.clone(),
            instance: alert.instance.clone(),
            namespace: alert.namespace.clone(),
            value: alert.value.as_ref().ok().map(|quantity| (*quantity).into()),
            value_error: alert.value.as_ref().err().map(ToString::to_string),
            summary: alert.summary.clone(),
            description: alert.description.clone(),
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            fingerprint: alert.fingerprint.clone(),
            source: alert.source.clone(),
        };
        serde_json::to_string(&form).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Alert, String> {
        let form: Form = serde_json::from_str(text).map_err(|error| error.to_string())?;
        let value = match (form.value, form.value_error) {
            (Some(value), _) => Ok(match value {
                plan::ir::QuantityValue::Number(number) => Quantity::Number(number),
                plan::ir::QuantityValue::Duration(millis) => Quantity::Duration(millis),
                plan::ir::QuantityValue::Percent(points) => Quantity::Percent(points),
                plan::ir::QuantityValue::Size(bytes) => Quantity::Size(bytes),
            }),
            (None, Some(error)) if error != normalize::ValueError::Missing.to_string() => {
                let reason = error.strip_prefix("alert value ").unwrap_or(&error);
                Err(normalize::ValueError::Unreadable(reason.to_string()))
            }
            (None, _) => Err(normalize::ValueError::Missing),
        };
        // Written by `to_json` from the typed values, so anything else is damage: refused, not
        // read as `firing` or `warning`.
        let status = match form.status.as_str() {
            "firing" => Status::Firing,
            "resolved" => Status::Resolved,
            other => return Err(format!("unknown alert status {other:?}")),
        };
        let severity = match form.severity.as_str() {
            "critical" => normalize::Severity::Critical,
            "warning" => normalize::Severity::Warning,
            "info" => normalize::Severity::Info,
            other => return Err(format!("unknown alert severity {other:?}")),
        };
        Ok(Alert {
            name: form.name,
            status,
            severity,
            service: form.service,
            instance: form.instance,
            namespace: form.namespace,
            value,
            summary: form.summary,
            description: form.description,
            labels: form.labels,
            annotations: form.annotations,
            starts_at: form.starts_at,
            ends_at: form.ends_at,
            fingerprint: form.fingerprint,
            source: form.source,
        })
    }
}

/// Opens a journal in memory for one-shot runs (`medic run`).
pub fn memory_journal() -> Result<JournalHandle, JournalError> {
    JournalHandle::spawn(Journal::in_memory()?)
}
