//! Executes one playbook of a plan: tasks in dependency order, independent tasks at the same
//! time, with `when` conditions, per-task timeouts, retries with doubling backoff, failure
//! policies, approval gates, pause/resume/cancel, and dry runs that never perform an action.
//!
//! The executor names no adapter: every stdlib call goes through the [`Toolbox`] trait, so
//! the sandbox, test doubles and the real adapters plug in alike. It names no store either:
//! every transition goes to an [`Observer`] and is awaited before the executor goes on, so
//! a journaling observer has made "this action started" durable before the action is
//! called. Time is tokio's clock (see [`Clock`]), so tests run on a paused, virtual clock.
//!
//! A run can be continued after a crash: [`RunContext::prior`] carries the tasks that
//! finished in an earlier life (they are not run again; their outputs are restored) and the
//! approvals that were pending (they keep their original deadline).

use medic_compiler::plan::{self, Effect, EvalError, OnFailure, Value};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// How long a playbook without a `timeout` clause may run: one hour.
pub const DEFAULT_PLAYBOOK_TIMEOUT_MS: i64 = 60 * 60 * 1000;

/// The longest wait between two attempts of a retried task: the backoff doubles after each
/// attempt up to this, so `retry 20 backoff 1m` waits at most five minutes between attempts.
pub const MAX_BACKOFF_MS: u64 = 5 * 60 * 1000;

/// Who makes a call: the run, and the fencing number of the lease its node holds the run
/// under (docs/ha.md). A target that remembers the highest number it saw for a run can
/// refuse a call made under a lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub run: i64,
    pub fence: i64,
}

/// Why a stdlib call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("no implementation of `{0}`")]
    Unknown(String),
    #[error("{0}")]
    Failed(String),
    /// A revert that found the system changed since the action and left it alone: a human
    /// must decide (the revert ends `needs_attention`, not `failed`).
    #[error("{0}")]
    NeedsAttention(String),
}

pub type CallFuture = Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send>>;
/// Whether a transition was recorded (for a journal: durably); the error says why not.
pub type TransitionFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The implementations of the standard library functions.
pub trait Toolbox: Send + Sync {
    /// Calls `function` (`module.name`) with its arguments, one per parameter.
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture;

    /// The form of a call's arguments that may be journaled and reported: credentials
    /// (header values, secret query parameters) removed. A revertible action's journaled
    /// arguments are what its revert is called with, so they must keep what it needs.
    fn journaled(
        &self,
        _function: &str,
        args: &BTreeMap<String, Value>,
    ) -> BTreeMap<String, Value> {
        args.clone()
    }

    /// As [`Toolbox::call`], on behalf of `caller` (a run on a node of a cluster): an
    /// adapter that can tell its target who calls (`http.*`'s `Medic-Run` and
    /// `Medic-Fence` headers) does.
    fn call_as(
        &self,
        function: &str,
        args: BTreeMap<String, Value>,
        _caller: &Caller,
    ) -> CallFuture {
        self.call(function, args)
    }

    /// Undoes what a revertible action did, given its arguments and its output (for
    /// `k8s.scale`, the replica count it started from).
    fn revert(&self, function: &str, _args: BTreeMap<String, Value>, _output: Value) -> CallFuture {
        let function = function.to_string();
        Box::pin(async move { Err(CallError::Unknown(format!("revert of {function}"))) })
    }

    /// Asks the system what an action would do without doing it (for `k8s.*`, the API
    /// server's `dryRun=All`), for a dry run's report. `None`: the function has no such
    /// preview, and the report shows its arguments only.
    fn preview(&self, _function: &str, _args: BTreeMap<String, Value>) -> Option<CallFuture> {
        None
    }
}

/// Wall time that advances with tokio's clock: on a paused tokio clock (tests) it is a
/// virtual clock that jumps when every task waits; in production it is the system time
/// read once at start, then carried by the monotonic clock (no jumps backwards).
///
/// A clock may run `speed` times faster than wall time ([`Clock::scaled`], for `medic
/// demo`'s sandbox world): what is scheduled by time (`revert after`, cooldowns, retry
/// backoffs, a playbook's `timeout`) then passes that much faster. A call's own timeout
/// stays wall time: it protects against a system that does not answer.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin_wall_ms: i64,
    origin: tokio::time::Instant,
    speed: u32,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::starting_at(system_ms())
    }

    /// A clock that reads `wall_ms` now (tests pin it to a known time).
    pub fn starting_at(wall_ms: i64) -> Clock {
        Clock::scaled(wall_ms, tokio::time::Instant::now(), 1)
    }

    /// A clock that reads `origin_wall_ms` at `origin` and runs `speed` times faster than
    /// wall time (at least 1) from there.
    pub fn scaled(origin_wall_ms: i64, origin: tokio::time::Instant, speed: u32) -> Clock {
        Clock {
            origin_wall_ms,
            origin,
            speed: speed.max(1),
        }
    }

    /// How many times faster than wall time the clock runs (1 in production).
    pub fn speed(&self) -> u32 {
        self.speed
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let elapsed = self
            .origin
            .elapsed()
            .as_nanos()
            .saturating_mul(u128::from(self.speed))
            / 1_000_000;
        self.origin_wall_ms
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    /// Sleeps until the clock reads `at_ms` (at once if it has passed).
    pub async fn sleep_until(&self, at_ms: i64) {
        let remaining = at_ms.saturating_sub(self.now_ms());
        if remaining > 0 {
            self.sleep(Duration::from_millis(remaining.unsigned_abs()))
                .await;
        }
    }

    /// Sleeps for `duration` of the clock's time.
    pub async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration / self.speed).await;
    }
}

/// The system's wall time in milliseconds since the Unix epoch.
pub fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Evaluate everything and run queries, but perform no action.
    pub dry_run: bool,
}

/// A human's answer to an approval gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approved { by: String },
    Rejected { by: String, reason: String },
}

/// What operators asked of a run: the executor watches it while the run goes on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    /// No new task starts while paused; running tasks finish.
    pub paused: bool,
    /// Set to stop the run: running tasks are stopped, the rest never start.
    pub cancelled: Option<String>,
    /// Answers to approval gates, by task id.
    pub decisions: BTreeMap<String, Decision>,
}

/// One state change of a task, reported to the [`Observer`] as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// An attempt at the call is about to be made.
    Started {
        attempt: u32,
    },
    /// The task waits for a human; after `deadline` (wall ms) the approval times out.
    AwaitingApproval {
        deadline: Option<i64>,
    },
    Approved {
        by: String,
    },
    Finished {
        outcome: TaskOutcome,
        attempts: u32,
        arguments: Option<BTreeMap<String, Value>>,
    },
}

/// Receives every transition of a run, in order, and is awaited before the run goes on. An
/// action whose `Started` could not be recorded is not called: after a crash, an unrecorded
/// start would look like a task that never ran, and it would run again.
pub trait Observer: Send + Sync {
    fn transition(&self, task: &str, transition: Transition, at_ms: i64) -> TransitionFuture;
}

/// Ignores transitions (dry runs of `medic run`, benchmarks).
pub struct Unobserved;

impl Observer for Unobserved {
    fn transition(&self, _task: &str, _transition: Transition, _at_ms: i64) -> TransitionFuture {
        Box::pin(async { Ok(()) })
    }
}

/// Decides, right before each attempt of an action, whether it may be made: the kill switch
/// (every attempt) and the global rate limit on actions (the first attempt only: a retry
/// finishes an action that was already permitted) live behind this.
pub trait ActionGate: Send + Sync {
    fn permit(&self, task: &plan::Task, attempt: u32) -> Result<(), String>;

    /// Asked once more after the action's `started` is durable, right before the call: a
    /// node whose lease lapsed in between (paused, cut off) does not call it.
    fn confirm(&self) -> Result<(), String> {
        Ok(())
    }
}

pub struct AllowAll;

impl ActionGate for AllowAll {
    fn permit(&self, _task: &plan::Task, _attempt: u32) -> Result<(), String> {
        Ok(())
    }
}

/// What a task did in an earlier life of this run (before a restart).
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    Finished {
        outcome: TaskOutcome,
        attempts: u32,
        arguments: Option<BTreeMap<String, Value>>,
        finished_at: Option<i64>,
    },
    AwaitingApproval {
        deadline: Option<i64>,
    },
}

/// Everything a run needs besides its playbook and arguments.
pub struct RunContext {
    pub toolbox: Arc<dyn Toolbox>,
    pub options: RunOptions,
    pub observer: Arc<dyn Observer>,
    pub gate: Arc<dyn ActionGate>,
    pub control: watch::Receiver<Control>,
    pub prior: BTreeMap<String, Prior>,
    pub clock: Clock,
    /// When the run started (wall ms): the playbook's timeout counts from here, also
    /// across a restart.
    pub started_at: i64,
    /// The timeout of a playbook that has no `timeout` clause ([`DEFAULT_PLAYBOOK_TIMEOUT_MS`]
    /// unless configured; `None` lets such a run wait forever).
    pub default_timeout_ms: Option<i64>,
}

impl RunContext {
    /// A context with no observer, no gate, no prior life and no operator.
    pub fn new(toolbox: Arc<dyn Toolbox>, options: RunOptions) -> RunContext {
        let clock = Clock::system();
        // The sender is dropped at once: nobody will ever pause or cancel this run.
        let (_, control) = watch::channel(Control::default());
        RunContext {
            toolbox,
            options,
            observer: Arc::new(Unobserved),
            gate: Arc::new(AllowAll),
            control,
            prior: BTreeMap::new(),
            started_at: clock.now_ms(),
            clock,
            default_timeout_ms: Some(DEFAULT_PLAYBOOK_TIMEOUT_MS),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TaskOutcome {
    Succeeded {
        output: Value,
    },
    /// Its `when` condition was false (or could not be evaluated: the reason says which).
    Skipped {
        reason: String,
    },
    /// A dry run: the action that would have been performed, with the arguments that could
    /// be evaluated and, for the others, the expression they wait for.
    WouldRun {
        args: BTreeMap<String, Value>,
        unknown: BTreeMap<String, String>,
        /// What the system said it would do, for functions that can ask it
        /// ([`Toolbox::preview`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preview: Option<Preview>,
    },
    Failed {
        reason: String,
    },
    /// It was running when the run was cancelled or timed out.
    Cancelled {
        reason: String,
    },
    /// Not started because the run stopped first.
    NotRun,
}

/// The answer of a [`Toolbox::preview`]: what the action would have done, or why the
/// system would have refused it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preview {
    Accepted(Value),
    Refused(String),
}

impl TaskOutcome {
    pub fn state(&self) -> &'static str {
        match self {
            TaskOutcome::Succeeded { .. } => "succeeded",
            TaskOutcome::Skipped { .. } => "skipped",
            TaskOutcome::WouldRun { .. } => "would_run",
            TaskOutcome::Failed { .. } => "failed",
            TaskOutcome::Cancelled { .. } => "cancelled",
            TaskOutcome::NotRun => "not_run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskReport {
    pub id: String,
    pub function: String,
    pub outcome: TaskOutcome,
    pub attempts: u32,
    /// The arguments it was called with (absent when it was never called).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<BTreeMap<String, Value>>,
    /// When it reached its outcome (wall ms); absent when it never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    /// A task failed with `on failure abort`, or the playbook timed out.
    Failed,
    /// A task failed with `on failure escalate`: a human takes over.
    Escalated,
    /// An operator (or the alert resolving) cancelled it.
    Cancelled,
    /// Closed after a restart because an action was in flight when the server stopped: a
    /// human checks it. The engine decides this; the executor never returns it.
    Interrupted,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Escalated => "escalated",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    pub playbook: String,
    pub outcome: RunOutcome,
    /// Why the run stopped early, when it did.
    pub stopped: Option<String>,
    /// In the plan's task order.
    pub tasks: Vec<TaskReport>,
}

/// Variables of one run: the playbook's parameters and the outputs of finished tasks.
struct Scope<'a>(&'a BTreeMap<String, Value>);

impl plan::Vars for Scope<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// Runs a playbook with its arguments, with no observer and no operator.
pub async fn run(
    playbook: &plan::Playbook,
    arguments: BTreeMap<String, Value>,
    toolbox: Arc<dyn Toolbox>,
    options: RunOptions,
) -> RunReport {
    run_with(playbook, arguments, RunContext::new(toolbox, options)).await
}

/// The executor's bookkeeping for one run (Kahn's algorithm over the task list).
struct State<'p> {
    tasks: &'p [plan::Task],
    waiting: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    ready: VecDeque<usize>,
    variables: BTreeMap<String, Value>,
    outcomes: Vec<Option<(TaskOutcome, u32)>>,
    arguments: Vec<Option<BTreeMap<String, Value>>>,
    finished_at: Vec<Option<i64>>,
}

impl State<'_> {
    /// Records a finished task: its output becomes a variable (absent unless it succeeded)
    /// and its dependents that no longer wait for anything become ready.
    fn finish(&mut self, index: usize, outcome: TaskOutcome, attempts: u32, at: i64) {
        if let Some(slot) = self.finished_at.get_mut(index) {
            *slot = Some(at);
        }
        if let Some(task) = self.tasks.get(index) {
            let value = match &outcome {
                TaskOutcome::Succeeded { output } => Some(output.clone()),
                // What an action would have returned is unknown in a dry run: expressions
                // reading it cannot be evaluated, and the report says what they wait for.
                TaskOutcome::WouldRun { .. } => None,
                _ => Some(Value::Null),
            };
            if let Some(value) = value {
                self.variables.insert(task.id.clone(), value);
            }
        }
        if let Some(slot) = self.outcomes.get_mut(index) {
            *slot = Some((outcome, attempts));
        }
        for &dependent in self.dependents.get(index).map_or(&[][..], Vec::as_slice) {
            if let Some(count) = self.waiting.get_mut(dependent) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.ready.push_back(dependent);
                }
            }
        }
    }
}

/// Runs a playbook with its arguments (one per parameter, as the rule evaluated them).
pub async fn run_with(
    playbook: &plan::Playbook,
    arguments: BTreeMap<String, Value>,
    context: RunContext,
) -> RunReport {
    let tasks = &playbook.tasks;
    let position: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| (task.id.as_str(), index))
        .collect();
    let mut state = State {
        tasks,
        waiting: Vec::with_capacity(tasks.len()),
        dependents: vec![Vec::new(); tasks.len()],
        ready: VecDeque::new(),
        variables: arguments,
        outcomes: vec![None; tasks.len()],
        arguments: vec![None; tasks.len()],
        finished_at: vec![None; tasks.len()],
    };
    for (index, task) in tasks.iter().enumerate() {
        let known: Vec<usize> = task
            .depends_on
            .iter()
            .filter_map(|dependency| position.get(dependency.as_str()).copied())
            .collect();
        for &dependency in &known {
            if let Some(list) = state.dependents.get_mut(dependency) {
                list.push(index);
            }
        }
        state.waiting.push(known.len());
    }
    state.ready = state
        .waiting
        .iter()
        .enumerate()
        .filter(|(_, count)| **count == 0)
        .map(|(index, _)| index)
        .collect();

    let RunContext {
        toolbox,
        options,
        observer,
        gate,
        mut control,
        prior,
        clock,
        started_at,
        default_timeout_ms,
    } = context;
    // A playbook without `timeout` gets the default one, so nothing waits forever.
    let timeout_ms = playbook.timeout_ms.or(default_timeout_ms);
    let deadline = timeout_ms.map(|millis| started_at.saturating_add(millis));
    let mut running: JoinSet<(usize, TaskOutcome, u32)> = JoinSet::new();
    let mut in_flight: BTreeMap<tokio::task::Id, usize> = BTreeMap::new();
    let mut run_outcome = RunOutcome::Succeeded;
    let mut stopped: Option<String> = None;
    // Once every sender is gone, nobody can pause, resume, cancel or approve any more.
    let mut controllable = true;
    loop {
        // Only what the loop needs is read; the decisions are the jobs' business.
        let paused = {
            let current = control.borrow_and_update();
            if stopped.is_none()
                && let Some(reason) = &current.cancelled
            {
                run_outcome = RunOutcome::Cancelled;
                stopped = Some(format!("cancelled: {reason}"));
            }
            current.paused
        };
        if stopped.is_some() {
            break;
        }
        // Start every ready task; tasks that finish without a call free their dependents
        // at once.
        if run_outcome == RunOutcome::Succeeded && !paused {
            while let Some(index) = state.ready.pop_front() {
                let Some(task) = tasks.get(index) else {
                    continue;
                };
                let mut approval_deadline = None;
                match prior.get(&task.id) {
                    Some(Prior::Finished {
                        outcome,
                        attempts,
                        arguments,
                        finished_at,
                    }) => {
                        if let Some(slot) = state.arguments.get_mut(index) {
                            slot.clone_from(arguments);
                        }
                        // A failure from before the restart still takes its policy.
                        apply_policy(outcome, task, &mut run_outcome);
                        state.finish(
                            index,
                            outcome.clone(),
                            *attempts,
                            finished_at.unwrap_or_else(|| clock.now_ms()),
                        );
                        if run_outcome != RunOutcome::Succeeded {
                            break;
                        }
                        continue;
                    }
                    Some(Prior::AwaitingApproval { deadline }) => approval_deadline = *deadline,
                    None => {}
                }
                let prepared = match prepare(task, &state.variables, options, toolbox.as_ref()) {
                    Prepared::Preview(args) => {
                        Prepared::Done(preview(toolbox.as_ref(), task, args).await)
                    }
                    other => other,
                };
                match prepared {
                    Prepared::Preview(_) => {}
                    Prepared::Done(outcome) => {
                        finished_without_call(observer.as_ref(), &task.id, &outcome, clock).await;
                        apply_policy(&outcome, task, &mut run_outcome);
                        state.finish(index, outcome, 0, clock.now_ms());
                        if run_outcome != RunOutcome::Succeeded {
                            break;
                        }
                    }
                    Prepared::Call(args) => {
                        let journaled = toolbox.journaled(&task.function, &args);
                        if let Some(slot) = state.arguments.get_mut(index) {
                            *slot = Some(journaled.clone());
                        }
                        let job = Job {
                            task: task.clone(),
                            args,
                            journaled,
                            toolbox: Arc::clone(&toolbox),
                            observer: Arc::clone(&observer),
                            gate: Arc::clone(&gate),
                            control: control.clone(),
                            clock,
                            approval_deadline,
                        };
                        let span = tracing::info_span!(
                            "task",
                            task = %task.id,
                            function = %task.function
                        );
                        let handle = running.spawn(
                            async move {
                                let (outcome, attempts) = job.run().await;
                                job.observer
                                    .transition(
                                        &job.task.id,
                                        Transition::Finished {
                                            outcome: outcome.clone(),
                                            attempts,
                                            arguments: Some(job.journaled.clone()),
                                        },
                                        job.clock.now_ms(),
                                    )
                                    .await
                                    .unwrap_or_else(|error| {
                                        tracing::error!(%error, "a task's outcome was not recorded");
                                    });
                                (index, outcome, attempts)
                            }
                            .instrument(span),
                        );
                        in_flight.insert(handle.id(), index);
                    }
                }
            }
        }
        if running.is_empty() && (run_outcome != RunOutcome::Succeeded || !paused) {
            break;
        }
        let timeout = async {
            match deadline {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A task that finished is recorded before a cancel or a timeout is looked at.
            biased;
            joined = running.join_next_with_id(), if !running.is_empty() => {
                let (index, outcome, attempts) = match joined {
                    Some(Ok((id, result))) => {
                        in_flight.remove(&id);
                        result
                    }
                    Some(Err(error)) => {
                        // A task panicked inside an adapter; the run cannot trust its state.
                        let index = in_flight.remove(&error.id()).unwrap_or(usize::MAX);
                        run_outcome = RunOutcome::Failed;
                        stopped = Some("a task's adapter crashed".into());
                        (index, TaskOutcome::Failed { reason: "the adapter crashed".into() }, 0)
                    }
                    None => continue,
                };
                if let Some(task) = tasks.get(index) {
                    apply_policy(&outcome, task, &mut run_outcome);
                }
                state.finish(index, outcome, attempts, clock.now_ms());
            }
            changed = control.changed(), if controllable => {
                if changed.is_err() {
                    controllable = false;
                }
            }
            () = timeout => {
                run_outcome = RunOutcome::Failed;
                stopped = Some(format!(
                    "playbook timed out after {}",
                    medic_compiler::units::format_duration(timeout_ms.unwrap_or(0))
                ));
            }
            // Paused with nothing running and nobody left to resume: the run ends here.
            () = std::future::ready(()), if !controllable && running.is_empty() => {
                run_outcome = RunOutcome::Cancelled;
                stopped = Some("paused, and nobody can resume it".into());
            }
        }
    }
    // Whatever is still running was stopped by a cancel or the playbook's timeout.
    if let Some(reason) = &stopped {
        running.abort_all();
        while let Some(joined) = running.join_next_with_id().await {
            match joined {
                // It finished before the abort took hold: its real outcome stands (a
                // temporary action that succeeded must still be reverted).
                Ok((id, (index, outcome, attempts))) => {
                    in_flight.remove(&id);
                    state.finish(index, outcome, attempts, clock.now_ms());
                }
                Err(error) => {
                    let Some(index) = in_flight.remove(&error.id()) else {
                        continue;
                    };
                    let Some(task) = tasks.get(index) else {
                        continue;
                    };
                    let reason = if task.effect == Effect::Action {
                        format!(
                            "stopped while running ({reason}); if its call had begun, it may have taken effect: check it"
                        )
                    } else {
                        reason.clone()
                    };
                    let outcome = TaskOutcome::Cancelled { reason };
                    finished_without_call(observer.as_ref(), &task.id, &outcome, clock).await;
                    if let Some(slot) = state.outcomes.get_mut(index) {
                        *slot = Some((outcome, 0));
                    }
                }
            }
        }
    }
    let reports = tasks
        .iter()
        .zip(state.outcomes)
        .zip(state.arguments)
        .zip(state.finished_at)
        .map(|(((task, outcome), arguments), finished_at)| {
            let (outcome, attempts, arguments, finished_at) = match (outcome, prior.get(&task.id)) {
                (Some((outcome, attempts)), _) => (outcome, attempts, arguments, finished_at),
                // A task that finished in an earlier life keeps that outcome even when this
                // life stopped before replaying it (a temporary action keeps its revert).
                (
                    None,
                    Some(Prior::Finished {
                        outcome,
                        attempts,
                        arguments,
                        finished_at,
                    }),
                ) => (outcome.clone(), *attempts, arguments.clone(), *finished_at),
                (None, _) => (TaskOutcome::NotRun, 0, arguments, finished_at),
            };
            TaskReport {
                id: task.id.clone(),
                function: task.function.clone(),
                outcome,
                attempts,
                arguments,
                finished_at,
            }
        })
        .collect();
    RunReport {
        playbook: playbook.name.clone(),
        outcome: run_outcome,
        stopped,
        tasks: reports,
    }
}

/// Reports the outcome of a task that reached it without (finishing) a call.
async fn finished_without_call(
    observer: &dyn Observer,
    task: &str,
    outcome: &TaskOutcome,
    clock: Clock,
) {
    let transition = Transition::Finished {
        outcome: outcome.clone(),
        attempts: 0,
        arguments: None,
    };
    if let Err(error) = observer.transition(task, transition, clock.now_ms()).await {
        tracing::error!(%error, task, "a task's outcome was not recorded");
    }
}

/// A failed task's `on failure` policy decides what becomes of the run.
fn apply_policy(outcome: &TaskOutcome, task: &plan::Task, run_outcome: &mut RunOutcome) {
    if !matches!(outcome, TaskOutcome::Failed { .. }) {
        return;
    }
    match task.on_failure {
        OnFailure::Continue => {}
        OnFailure::Abort => *run_outcome = RunOutcome::Failed,
        OnFailure::Escalate => {
            if *run_outcome != RunOutcome::Failed {
                *run_outcome = RunOutcome::Escalated;
            }
        }
    }
}

enum Prepared {
    Done(TaskOutcome),
    /// A dry run's action whose arguments are all known: the system may be asked what it
    /// would do.
    Preview(BTreeMap<String, Value>),
    Call(BTreeMap<String, Value>),
}

/// Evaluates a task's condition and arguments against the run's variables.
fn prepare(
    task: &plan::Task,
    variables: &BTreeMap<String, Value>,
    options: RunOptions,
    toolbox: &dyn Toolbox,
) -> Prepared {
    let scope = Scope(variables);
    if let Some(condition) = &task.when {
        match condition.eval_bool(&scope) {
            Ok(true) => {}
            Ok(false) => {
                return Prepared::Done(TaskOutcome::Skipped {
                    reason: format!("`when {}` is false", plan::render::ir_text(condition)),
                });
            }
            Err(error) => {
                return Prepared::Done(TaskOutcome::Skipped {
                    reason: format!("`when` could not be evaluated: {error}"),
                });
            }
        }
    }
    if options.dry_run && task.effect == Effect::Action {
        // In a dry run an argument may read the output of an action that was not performed;
        // the report then shows the expression it waits for.
        let mut args = BTreeMap::new();
        let mut unknown = BTreeMap::new();
        for (name, value) in &task.args {
            match value.eval(&scope) {
                Ok(value) => {
                    args.insert(name.clone(), value);
                }
                Err(_) => {
                    unknown.insert(name.clone(), plan::render::ir_text(value));
                }
            }
        }
        if unknown.is_empty() {
            return Prepared::Preview(args);
        }
        let args = toolbox.journaled(&task.function, &args);
        return Prepared::Done(TaskOutcome::WouldRun {
            args,
            unknown,
            preview: None,
        });
    }
    let args: Result<BTreeMap<String, Value>, EvalError> = task
        .args
        .iter()
        .map(|(name, value)| Ok((name.clone(), value.eval(&scope)?)))
        .collect();
    match args {
        Ok(args) => Prepared::Call(args),
        Err(error) => Prepared::Done(TaskOutcome::Failed {
            reason: format!("arguments could not be evaluated: {error}"),
        }),
    }
}

/// A dry run's action: its arguments, and what the system says it would do when the
/// toolbox can ask (within the task's timeout, else the adapter's own deadline).
async fn preview(
    toolbox: &dyn Toolbox,
    task: &plan::Task,
    args: BTreeMap<String, Value>,
) -> TaskOutcome {
    let journaled = toolbox.journaled(&task.function, &args);
    let preview = match toolbox.preview(&task.function, args) {
        None => None,
        Some(call) => {
            let answer = match task.timeout_ms.and_then(|ms| u64::try_from(ms).ok()) {
                Some(ms) => tokio::time::timeout(Duration::from_millis(ms), call)
                    .await
                    .unwrap_or_else(|_| {
                        Err(CallError::Failed(format!("no answer within {ms} ms")))
                    }),
                None => call.await,
            };
            Some(match answer {
                Ok(value) => Preview::Accepted(value),
                Err(error) => Preview::Refused(error.to_string()),
            })
        }
    };
    TaskOutcome::WouldRun {
        args: journaled,
        unknown: BTreeMap::new(),
        preview,
    }
}

/// One task's work once it is ready: its approval gate, then its call.
struct Job {
    task: plan::Task,
    args: BTreeMap<String, Value>,
    /// `args` as they may be journaled (see [`Toolbox::journaled`]).
    journaled: BTreeMap<String, Value>,
    toolbox: Arc<dyn Toolbox>,
    observer: Arc<dyn Observer>,
    gate: Arc<dyn ActionGate>,
    control: watch::Receiver<Control>,
    clock: Clock,
    /// A pending approval's deadline carried over from before a restart.
    approval_deadline: Option<i64>,
}

impl Job {
    async fn run(&self) -> (TaskOutcome, u32) {
        if let Some(approval) = &self.task.approval {
            let deadline = self.approval_deadline.or_else(|| {
                approval
                    .within_ms
                    .map(|within| self.clock.now_ms().saturating_add(within))
            });
            if let Err(error) = self
                .observer
                .transition(
                    &self.task.id,
                    Transition::AwaitingApproval { deadline },
                    self.clock.now_ms(),
                )
                .await
            {
                tracing::error!(%error, "a pending approval was not recorded");
            }
            match self.wait_for_decision(deadline).await {
                Ok(by) => {
                    if let Err(error) = self
                        .observer
                        .transition(
                            &self.task.id,
                            Transition::Approved { by },
                            self.clock.now_ms(),
                        )
                        .await
                    {
                        tracing::error!(%error, "an approval was not recorded");
                    }
                }
                Err(outcome) => return (outcome, 0),
            }
        }
        self.call_with_policy().await
    }

    /// Waits while the run is paused (an approval given during a pause, or a retry's next
    /// attempt, waits for the resume).
    async fn wait_while_paused(&self) {
        let mut control = self.control.clone();
        while control.borrow_and_update().paused {
            if control.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits for an operator's answer; a rejection or a timeout is a failure of the task,
    /// which then takes its failure policy.
    async fn wait_for_decision(&self, deadline: Option<i64>) -> Result<String, TaskOutcome> {
        let mut control = self.control.clone();
        let mut controllable = true;
        loop {
            match control.borrow_and_update().decisions.get(&self.task.id) {
                Some(Decision::Approved { by }) => return Ok(by.clone()),
                Some(Decision::Rejected { by, reason }) => {
                    return Err(TaskOutcome::Failed {
                        reason: format!("approval rejected by {by}: {reason}"),
                    });
                }
                None => {}
            }
            let timeout = async {
                match deadline {
                    Some(at) => self.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = control.changed(), if controllable => {
                    if changed.is_err() {
                        controllable = false;
                    }
                }
                () = timeout => {
                    let within = self
                        .task
                        .approval
                        .as_ref()
                        .and_then(|approval| approval.within_ms)
                        .map_or_else(String::new, |millis| {
                            format!(" after {}", medic_compiler::units::format_duration(millis))
                        });
                    return Err(TaskOutcome::Failed {
                        reason: format!("approval timed out{within}"),
                    });
                }
            }
        }
    }

    /// The call with its timeout and retries (the backoff doubles after each attempt, up to
    /// [`MAX_BACKOFF_MS`]).
    async fn call_with_policy(&self) -> (TaskOutcome, u32) {
        let task = &self.task;
        let attempts = 1 + task.retry.map_or(0, |retry| retry.attempts);
        let mut backoff = task
            .retry
            .map_or(0, |retry| retry.backoff_ms.unsigned_abs())
            .min(MAX_BACKOFF_MS);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            self.wait_while_paused().await;
            // The gate is asked before every attempt of an action.
            if task.effect == Effect::Action
                && let Err(reason) = self.gate.permit(task, attempt)
            {
                return (TaskOutcome::Failed { reason }, attempt - 1);
            }
            if let Err(error) = self
                .observer
                .transition(
                    &task.id,
                    Transition::Started { attempt },
                    self.clock.now_ms(),
                )
                .await
            {
                last_error =
                    format!("the start could not be recorded, so the call was not made: {error}");
            } else if task.effect == Effect::Action
                && let Err(reason) = self.gate.confirm()
            {
                return (TaskOutcome::Failed { reason }, attempt - 1);
            } else {
                let result = self.attempt().await;
                match result {
                    Ok(output) => return (TaskOutcome::Succeeded { output }, attempt),
                    Err(error) => last_error = error.to_string(),
                }
            }
            if attempt < attempts {
                self.clock.sleep(Duration::from_millis(backoff)).await;
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF_MS);
            }
        }
        (TaskOutcome::Failed { reason: last_error }, attempts)
    }

    /// One call, bounded by the task's timeout.
    async fn attempt(&self) -> Result<Value, CallError> {
        let task = &self.task;
        let call = self.toolbox.call(&task.function, self.args.clone());
        match task.timeout_ms {
            Some(millis) => {
                match tokio::time::timeout(Duration::from_millis(millis.unsigned_abs()), call).await
                {
                    Ok(result) => result,
                    Err(_) => Err(CallError::Failed(format!(
                        "timed out after {}",
                        medic_compiler::units::format_duration(millis)
                    ))),
                }
            }
            None => call.await,
        }
    }
}
