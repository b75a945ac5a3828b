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
    AcceptedAlert, Admission, Admitted, Definition, Journal, JournalError, JournalHandle,
    RevertRow, RunRow, Submitted, TaskEventRow,
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

mod admit;
mod cluster;
mod control;
mod forward;
mod join;
mod operate;
mod recover;
mod reverts;
mod runs;
pub mod stored;

pub(crate) use cluster::LeaseClock;
pub use cluster::{ClusterConfig, DEFAULT_LEASE_MS};
pub use operate::{Actor, Done, Operation};

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
    /// One node of several on a PostgreSQL store (docs/ha.md); `None`: the only node.
    pub cluster: Option<ClusterConfig>,
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
            cluster: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the backlog is full ({capacity} alerts and runs wait, the oldest for {oldest_seconds} s); retry later"
    )]
    QueueFull {
        capacity: usize,
        oldest_seconds: i64,
    },
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
    #[error("there is no revert {0}")]
    NoRevert(i64),
    /// Only a revert that `failed` or `needs_attention` can be retried or acknowledged.
    #[error(
        "revert {revert} is {state}: only a failed revert or one that needs attention can be {action}"
    )]
    RevertNotOpen {
        revert: i64,
        state: String,
        action: &'static str,
    },
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
    /// The request is malformed in a way only the engine can tell (an unknown answer, an
    /// empty reason).
    #[error("{0}")]
    BadRequest(String),
    /// On a cluster, the node that runs the run could not do what was asked, or did not
    /// answer (`forward.rs`).
    #[error("{0}")]
    Elsewhere(String),
    /// Work the engine handed to a task of its own stopped before it finished.
    #[error("the operation stopped: {0}")]
    Stopped(String),
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
    /// With the fingerprint, the firing episode it belongs to: only that episode's resolve
    /// ends it. `None` when its alert is no longer journaled (nothing resolves it then).
    episode_starts_at: Option<i64>,
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
    /// How the webhook matched it: the matching worker reuses it under the same plan.
    matched: Option<Matched>,
}

/// An alert matched against a plan: its record and the outcome.
pub(super) struct Matched {
    pub(super) planned: Arc<Planned>,
    pub(super) value: Value,
    pub(super) outcome: plan::MatchOutcome,
}

/// What waits, and since when (clock ms): accepted alerts not yet matched, by alert id, and
/// admitted runs waiting for a slot, by run id. Ids grow with time, so the first entry of
/// each is its oldest.
#[derive(Default)]
struct Backlog {
    alerts: BTreeMap<i64, i64>,
    runs: BTreeMap<i64, i64>,
}

impl Backlog {
    fn len(&self) -> usize {
        self.alerts.len() + self.runs.len()
    }

    /// When the oldest of it began to wait.
    fn oldest(&self) -> Option<i64> {
        let first = |waiting: &BTreeMap<i64, i64>| waiting.values().next().copied();
        match (first(&self.alerts), first(&self.runs)) {
            (Some(alert), Some(run)) => Some(alert.min(run)),
            (alert, run) => alert.or(run),
        }
    }
}

/// The plan alerts are matched against, and each of its playbooks as the journal stores
/// it (serialized once per plan, not once per run).
pub(super) struct Planned {
    pub(super) plan: Arc<Plan>,
    pub(super) definitions: BTreeMap<String, Definition>,
}

impl Planned {
    fn new(plan: Plan) -> Arc<Planned> {
        let definitions = plan
            .playbooks
            .iter()
            .map(|playbook| {
                let json = serde_json::to_string(playbook).unwrap_or_default();
                (playbook.name.clone(), Definition::new(json))
            })
            .collect();
        Arc::new(Planned {
            plan: Arc::new(plan),
            definitions,
        })
    }
}

struct Inner {
    plan: RwLock<Arc<Planned>>,
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
    /// What waits; `queue_capacity` bounds it.
    backlog: Mutex<Backlog>,
    metrics: Metrics,
    /// Held from an episode's lookup to its alerts' commit (`join.rs`), one per share of
    /// the fingerprints.
    joining: [tokio::sync::Mutex<()>; join::SHARDS],
    /// This node's lease and runs, on a PostgreSQL store shared with other nodes.
    cluster: Option<cluster::Cluster>,
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
    /// Operators' answers to "did this run fix it?", oldest first.
    pub feedback: Vec<crate::journal::FeedbackRow>,
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
        // A node of a cluster registers first: what it recovers is then its own.
        let registered = match config.cluster.clone() {
            Some(cluster) => Some(
                tokio::task::spawn_blocking(move || cluster::register(&cluster))
                    .await
                    .map_err(|error| EngineError::Stopped(error.to_string()))??,
            ),
            None => None,
        };
        // The rate limit's window as the journal has it: a restart (a crash loop included)
        // does not give the actions of the last minute back.
        let since = clock.now_ms().saturating_sub(60_000);
        let recent: VecDeque<i64> = journal
            .call(move |journal| journal.action_starts_since(since))
            .await?
            .into();
        let guardrails = Arc::new(Guardrails {
            kill_switch: AtomicBool::new(config.kill_switch),
            // In a cluster, the store decides the rate window for every node at once.
            actions_per_minute: config
                .actions_per_minute
                .filter(|_| config.cluster.is_none()),
            recent: Mutex::new(recent),
            clock,
            lease: registered.as_ref().map(|(_, _, lease)| Arc::clone(lease)),
        });
        let cluster = match (&config.cluster, &registered) {
            (Some(config), Some((_, _, lease))) => Some(cluster::Cluster {
                config: config.clone(),
                lease: Arc::clone(lease),
                tasks: Mutex::new(BTreeMap::new()),
                orphans: Mutex::new(BTreeSet::new()),
                sweeping: tokio::sync::Mutex::new(()),
            }),
            _ => None,
        };
        let engine = Engine {
            inner: Arc::new(Inner {
                plan: RwLock::new(Planned::new(plan)),
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
                backlog: Mutex::new(Backlog::default()),
                metrics: Metrics::new(),
                joining: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
                cluster,
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
        if let Some((heartbeat, lease, _)) = registered {
            engine.join_cluster(heartbeat, lease).await?;
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
        Arc::clone(&self.planned().plan)
    }

    pub(super) fn planned(&self) -> Arc<Planned> {
        match self.inner.plan.read() {
            Ok(planned) => Arc::clone(&planned),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the plan for alerts matched from now on; runs in progress keep the
    /// definition they started with.
    pub fn replace_plan(&self, plan: Plan) {
        let plan = Planned::new(plan);
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
    pub async fn ingest(
        &self,
        source: &str,
        mut alerts: Vec<Alert>,
    ) -> Result<Vec<i64>, EngineError> {
        let capacity = self.inner.config.queue_capacity.max(1);
        if alerts.len() > capacity {
            return Err(EngineError::TooManyAlerts {
                count: alerts.len(),
                capacity,
            });
        }
        // Alerts that do not carry their episode's start take it from the journal, and hold
        // their turn until they are committed.
        let _turns = self.join_open_episodes(&mut alerts).await?;
        let full = || EngineError::QueueFull {
            capacity: self.inner.config.queue_capacity,
            oldest_seconds: self.backlog_age_ms().unwrap_or(0) / 1000,
        };
        // The limit is on everything that waits, alerts to match and runs for a slot: an
        // alert storm is refused while the engine is behind, not queued for minutes.
        let waiting = self.inner.backlog.lock().map_or(0, |backlog| backlog.len());
        if waiting.saturating_add(alerts.len()) > capacity {
            return Err(full());
        }
        // A firing alert that no rule matches (nor fails to evaluate on) has nothing to
        // wait for: it is journaled as processed and never queued, so the part of a storm
        // no runbook is about costs one insert. It is matched against the plan in force
        // when it arrives, as a queued alert is against the plan when its turn comes.
        let planned = self.planned();
        let mut matches: Vec<Option<Matched>> = Vec::with_capacity(alerts.len());
        let to_match: Vec<bool> = alerts
            .iter()
            .map(|alert| {
                if alert.status != Status::Firing {
                    matches.push(None);
                    return true;
                }
                let value = alert.to_value();
                let outcome = planned.plan.match_alert(&value);
                let queued = !outcome.matched.is_empty() || !outcome.errors.is_empty();
                matches.push(queued.then(|| Matched {
                    planned: Arc::clone(&planned),
                    value,
                    outcome,
                }));
                queued
            })
            .collect();
        let queued = to_match.iter().filter(|queued| **queued).count();
        let permits = self
            .inner
            .queue
            .try_reserve_many(queued)
            .map_err(|_| full())?;
        let accepted: Vec<AcceptedAlert> = alerts
            .iter()
            .zip(&to_match)
            .map(|(alert, queued)| stored::accepted(alert, !queued))
            .collect();
        let received_at = self.inner.clock.now_ms();
        let ids = self
            .inner
            .journal
            .call_urgent(move |journal| journal.accept(&accepted, received_at))
            .await?;
        self.inner
            .metrics
            .alert_received(source, u64::try_from(ids.len()).unwrap_or(u64::MAX));
        let matched: Vec<((Alert, i64), Option<Matched>)> = alerts
            .into_iter()
            .zip(ids.iter().copied())
            .zip(matches)
            .zip(to_match)
            .filter_map(|(matched, queued)| queued.then_some(matched))
            .collect();
        if let Ok(mut backlog) = self.inner.backlog.lock() {
            for ((_, id), _) in &matched {
                backlog.alerts.insert(*id, received_at);
            }
        }
        for (permit, ((alert, alert_id), matched)) in permits.zip(matched) {
            self.inner.metrics.queue_depth.inc();
            self.inner.pending.fetch_add(1, Ordering::SeqCst);
            permit.send(Queued {
                alert_id,
                alert,
                matched,
            });
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
    pub(super) async fn mark_processed(&self, alert_ids: Vec<i64>) {
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

    /// How long the oldest alert or run of the backlog has waited (clock ms); `None` when
    /// nothing waits.
    pub fn backlog_age_ms(&self) -> Option<i64> {
        let oldest = self.inner.backlog.lock().ok()?.oldest()?;
        Some(self.inner.clock.now_ms().saturating_sub(oldest).max(0))
    }

    /// Sets the backlog gauges (`GET /metrics`).
    pub fn refresh_backlog_metrics(&self) {
        let (alerts, runs) = self
            .inner
            .backlog
            .lock()
            .map_or((0, 0), |backlog| (backlog.alerts.len(), backlog.runs.len()));
        let age = self.backlog_age_ms().unwrap_or(0);
        self.inner.metrics.set_backlog(alerts, runs, age);
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
    episode_starts_at: Option<i64>,
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

/// Matches queued alerts in arrival order, as many as wait (up to [`admit::MATCH_BATCH`])
/// at a time: their admissions and `processed` marks are one journal write, so an alert
/// storm costs a write per batch, not per alert. Up to [`MATCH_PIPELINE`] batches of firing
/// alerts are in the journal at once: the next is matched while the journal decides the
/// last, and their runs start in arrival order. A batch with a resolved alert waits for
/// those before it. After a crash, at most the batches in the journal are matched again
/// (admission is idempotent per episode).
async fn worker(engine: Engine, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(admit::MATCH_BATCH);
    let mut in_flight: VecDeque<(usize, admit::Deciding)> = VecDeque::new();
    let done = |count: usize| {
        engine.inner.pending.fetch_sub(count, Ordering::SeqCst);
        engine.inner.progress.notify_waiters();
    };
    loop {
        // Nothing more to match now: start the runs of what the journal has decided.
        if (receiver.is_empty() || in_flight.len() >= MATCH_PIPELINE)
            && let Some((count, deciding)) = in_flight.pop_front()
        {
            engine.complete_decisions(deciding).await;
            done(count);
            continue;
        }
        if receiver.recv_many(&mut batch, admit::MATCH_BATCH).await == 0 {
            break;
        }
        let count = batch.len();
        let alerts: Vec<(i64, Alert, Option<Matched>)> = batch
            .drain(..)
            .map(|queued| (queued.alert_id, queued.alert, queued.matched))
            .collect();
        if let Ok(mut backlog) = engine.inner.backlog.lock() {
            for (alert_id, _, _) in &alerts {
                backlog.alerts.remove(alert_id);
            }
        }
        for _ in 0..count {
            engine.inner.metrics.queue_depth.dec();
        }
        if alerts
            .iter()
            .any(|(_, alert, _)| alert.status == Status::Resolved)
        {
            while let Some((count, deciding)) = in_flight.pop_front() {
                engine.complete_decisions(deciding).await;
                done(count);
            }
            engine
                .process_batch(
                    alerts
                        .into_iter()
                        .map(|(alert_id, alert, _)| (alert_id, alert))
                        .collect(),
                )
                .await;
            done(count);
        } else {
            in_flight.push_back((count, engine.submit_firing(alerts)));
        }
    }
    while let Some((count, deciding)) = in_flight.pop_front() {
        engine.complete_decisions(deciding).await;
        done(count);
    }
}

/// How many batches of alerts the matching worker has in the journal at most.
const MATCH_PIPELINE: usize = 4;

/// Opens a journal in memory for one-shot runs (`medic run`).
pub fn memory_journal() -> Result<JournalHandle, JournalError> {
    JournalHandle::spawn(Journal::in_memory()?)
}
