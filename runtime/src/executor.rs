//! Executes one playbook of a plan: tasks in dependency order, independent tasks at the same
//! time, with `when` conditions, per-task timeouts, retries with doubling backoff, failure
//! policies, and dry runs that never perform an action.
//!
//! The executor names no adapter: every stdlib call goes through the [`Toolbox`] trait, so
//! the sandbox, test doubles and the real adapters plug in alike. Time is tokio's clock, so
//! tests run on a paused, virtual clock (`tokio::time::pause`). Durable state (the journal),
//! approvals, pause/resume and revert timers are built on top of this in the runtime issue.

use medic_compiler::plan::{self, Effect, EvalError, OnFailure, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Why a stdlib call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("no implementation of `{0}`")]
    Unknown(String),
    #[error("{0}")]
    Failed(String),
}

pub type CallFuture = Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send>>;

/// The implementations of the standard library functions.
pub trait Toolbox: Send + Sync {
    /// Calls `function` (`module.name`) with its arguments, one per parameter.
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Evaluate everything and run queries, but perform no action.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    Succeeded(Value),
    /// Its `when` condition was false (or could not be evaluated: the reason says which).
    Skipped(String),
    /// A dry run: the action that would have been performed, with its arguments.
    WouldRun(BTreeMap<String, Value>),
    Failed(String),
    /// Not started because the run stopped first.
    NotRun,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    pub id: String,
    pub function: String,
    pub outcome: TaskOutcome,
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    /// A task failed with `on failure abort`, or the playbook timed out.
    Failed,
    /// A task failed with `on failure escalate`: a human takes over.
    Escalated,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub playbook: String,
    pub outcome: RunOutcome,
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

/// Runs a playbook with its arguments (one per parameter, as the rule evaluated them).
pub async fn run(
    playbook: &plan::Playbook,
    arguments: BTreeMap<String, Value>,
    toolbox: Arc<dyn Toolbox>,
    options: RunOptions,
) -> RunReport {
    let body = execute(playbook, arguments, toolbox, options);
    match playbook.timeout_ms {
        Some(millis) => {
            match tokio::time::timeout(Duration::from_millis(millis.unsigned_abs()), body).await {
                Ok(report) => report,
                Err(_) => RunReport {
                    playbook: playbook.name.clone(),
                    outcome: RunOutcome::Failed,
                    tasks: playbook
                        .tasks
                        .iter()
                        .map(|task| TaskReport {
                            id: task.id.clone(),
                            function: task.function.clone(),
                            outcome: TaskOutcome::Failed(format!(
                                "playbook timed out after {}",
                                medic_compiler::units::format_duration(millis)
                            )),
                            attempts: 0,
                        })
                        .collect(),
                },
            }
        }
        None => body.await,
    }
}

async fn execute(
    playbook: &plan::Playbook,
    arguments: BTreeMap<String, Value>,
    toolbox: Arc<dyn Toolbox>,
    options: RunOptions,
) -> RunReport {
    let tasks = &playbook.tasks;
    let position: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| (task.id.as_str(), index))
        .collect();
    // Kahn's bookkeeping: how many dependencies each task still waits for, and who waits for it.
    let mut waiting: Vec<usize> = Vec::with_capacity(tasks.len());
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (index, task) in tasks.iter().enumerate() {
        let known: Vec<usize> = task
            .depends_on
            .iter()
            .filter_map(|dependency| position.get(dependency.as_str()).copied())
            .collect();
        for &dependency in &known {
            if let Some(list) = dependents.get_mut(dependency) {
                list.push(index);
            }
        }
        waiting.push(known.len());
    }
    let mut ready: std::collections::VecDeque<usize> = waiting
        .iter()
        .enumerate()
        .filter(|(_, count)| **count == 0)
        .map(|(index, _)| index)
        .collect();
    let mut variables = arguments;
    let mut outcomes: Vec<Option<(TaskOutcome, u32)>> = vec![None; tasks.len()];
    let mut running: JoinSet<(usize, TaskOutcome, u32)> = JoinSet::new();
    let mut run_outcome = RunOutcome::Succeeded;
    loop {
        // Start every ready task; tasks that finish without a call free their dependents at once.
        if run_outcome == RunOutcome::Succeeded {
            while let Some(index) = ready.pop_front() {
                let Some(task) = tasks.get(index) else {
                    continue;
                };
                match prepare(task, &variables, options) {
                    Prepared::Done(outcome) => {
                        // Skipped, dry-run and unevaluable tasks have no output.
                        finish(
                            index,
                            outcome,
                            0,
                            tasks,
                            &mut variables,
                            &mut outcomes,
                            &mut waiting,
                            &dependents,
                            &mut ready,
                        );
                    }
                    Prepared::Call(args) => {
                        let toolbox = Arc::clone(&toolbox);
                        let task = task.clone();
                        running.spawn(async move {
                            let (outcome, attempts) = call_with_policy(&task, args, toolbox).await;
                            (index, outcome, attempts)
                        });
                    }
                }
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let Ok((index, outcome, attempts)) = joined else {
            // A task panicked inside an adapter; the run cannot trust its state.
            run_outcome = RunOutcome::Failed;
            continue;
        };
        if let TaskOutcome::Failed(_) = outcome {
            match tasks
                .get(index)
                .map_or(OnFailure::Abort, |task| task.on_failure)
            {
                OnFailure::Continue => {}
                OnFailure::Abort => run_outcome = RunOutcome::Failed,
                OnFailure::Escalate => {
                    if run_outcome != RunOutcome::Failed {
                        run_outcome = RunOutcome::Escalated;
                    }
                }
            }
        }
        finish(
            index,
            outcome,
            attempts,
            tasks,
            &mut variables,
            &mut outcomes,
            &mut waiting,
            &dependents,
            &mut ready,
        );
    }
    let reports = tasks
        .iter()
        .zip(outcomes)
        .map(|(task, outcome)| {
            let (outcome, attempts) = outcome.unwrap_or((TaskOutcome::NotRun, 0));
            TaskReport {
                id: task.id.clone(),
                function: task.function.clone(),
                outcome,
                attempts,
            }
        })
        .collect();
    RunReport {
        playbook: playbook.name.clone(),
        outcome: run_outcome,
        tasks: reports,
    }
}

/// Records a finished task: its output becomes a variable (absent unless it succeeded) and
/// its dependents that no longer wait for anything become ready.
#[allow(
    clippy::too_many_arguments,
    reason = "the executor's loop state, kept as locals"
)]
fn finish(
    index: usize,
    outcome: TaskOutcome,
    attempts: u32,
    tasks: &[plan::Task],
    variables: &mut BTreeMap<String, Value>,
    outcomes: &mut [Option<(TaskOutcome, u32)>],
    waiting: &mut [usize],
    dependents: &[Vec<usize>],
    ready: &mut std::collections::VecDeque<usize>,
) {
    if let Some(task) = tasks.get(index) {
        let value = match &outcome {
            TaskOutcome::Succeeded(value) => value.clone(),
            _ => Value::Null,
        };
        variables.insert(task.id.clone(), value);
    }
    if let Some(slot) = outcomes.get_mut(index) {
        *slot = Some((outcome, attempts));
    }
    for &dependent in dependents.get(index).map_or(&[][..], Vec::as_slice) {
        if let Some(count) = waiting.get_mut(dependent) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                ready.push_back(dependent);
            }
        }
    }
}

enum Prepared {
    Done(TaskOutcome),
    Call(BTreeMap<String, Value>),
}

/// Evaluates a task's condition and arguments against the run's variables.
fn prepare(
    task: &plan::Task,
    variables: &BTreeMap<String, Value>,
    options: RunOptions,
) -> Prepared {
    let scope = Scope(variables);
    if let Some(condition) = &task.when {
        match condition.eval_bool(&scope) {
            Ok(true) => {}
            Ok(false) => {
                return Prepared::Done(TaskOutcome::Skipped(format!(
                    "`when {}` is false",
                    plan::render::ir_text(condition)
                )));
            }
            Err(error) => {
                return Prepared::Done(TaskOutcome::Skipped(format!(
                    "`when` could not be evaluated: {error}"
                )));
            }
        }
    }
    let args: Result<BTreeMap<String, Value>, EvalError> = task
        .args
        .iter()
        .map(|(name, value)| Ok((name.clone(), value.eval(&scope)?)))
        .collect();
    let args = match args {
        Ok(args) => args,
        Err(error) => {
            return Prepared::Done(TaskOutcome::Failed(format!(
                "arguments could not be evaluated: {error}"
            )));
        }
    };
    if options.dry_run && task.effect == Effect::Action {
        return Prepared::Done(TaskOutcome::WouldRun(args));
    }
    Prepared::Call(args)
}

/// One task's call with its timeout and retries (the backoff doubles after each attempt).
async fn call_with_policy(
    task: &plan::Task,
    args: BTreeMap<String, Value>,
    toolbox: Arc<dyn Toolbox>,
) -> (TaskOutcome, u32) {
    let attempts = 1 + task.retry.map_or(0, |retry| retry.attempts);
    let mut backoff = task
        .retry
        .map_or(0, |retry| retry.backoff_ms.unsigned_abs());
    let mut last_error = String::new();
    for attempt in 1..=attempts {
        let call = toolbox.call(&task.function, args.clone());
        let result = match task.timeout_ms {
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
        };
        match result {
            Ok(value) => return (TaskOutcome::Succeeded(value), attempt),
            Err(error) => last_error = error.to_string(),
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = backoff.saturating_mul(2);
        }
    }
    (TaskOutcome::Failed(last_error), attempts)
}
