//! Expectations against what the engine did, over the whole timeline. Each failure says
//! what differs first ("expected 1 run, got 2"), then what was seen.

use crate::drive::{Observed, ObservedRun, offset};
use crate::mock::{render_args, render_call, render_value, same};
use medic_compiler::plan::Value;
use medic_compiler::plan::suite::{Expect, Expectation, TestCase};
use std::collections::BTreeMap;

/// One way a test failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// 1-based line in the test's file, when a line of the test is to blame.
    pub line: Option<u32>,
    pub message: String,
}

/// Every failure of a test: calls no mock answered, timeline events the engine could not
/// take, then each expectation that does not hold.
pub fn failures(case: &TestCase, observed: &Observed) -> Vec<Failure> {
    let mut failures = Vec::new();
    for call in observed
        .calls
        .iter()
        .filter(|call| call.mock.is_none() && !call.revert)
    {
        failures.push(Failure {
            line: None,
            message: format!(
                "unmocked call {} at {}: add `mock {} = ...`",
                render_call(&call.function, &call.args),
                offset(call.at_ms),
                call.function
            ),
        });
    }
    for problem in &observed.problems {
        failures.push(Failure {
            line: None,
            message: problem.clone(),
        });
    }
    for expectation in &case.expects {
        if let Some(message) = check(expectation, observed) {
            failures.push(Failure {
                line: Some(expectation.source.line),
                message: format!("{}: {message}", expectation.text),
            });
        }
    }
    failures
}

fn check(expectation: &Expectation, observed: &Observed) -> Option<String> {
    match &expectation.kind {
        Expect::NoMatch => (!observed.matched.is_empty()).then(|| {
            format!(
                "expected no rule to match, got {}",
                observed.matched.join(", ")
            )
        }),
        Expect::Matched(rules) => (observed.matched != *rules).then(|| {
            format!(
                "expected rules matched {}, got {}",
                rules.join(", "),
                list_or_none(&observed.matched)
            )
        }),
        Expect::Suppressed { rule, reason } => {
            let found = observed.suppressions.iter().any(|row| {
                row.rule == *rule && reason.as_ref().is_none_or(|reason| row.reason == *reason)
            });
            (!found).then(|| {
                let seen: Vec<String> = observed
                    .suppressions
                    .iter()
                    .map(|row| format!("{} by {} ({})", row.rule, row.reason, row.detail))
                    .collect();
                format!(
                    "expected {rule} suppressed{}, got {}",
                    reason
                        .as_ref()
                        .map_or(String::new(), |reason| format!(" by {reason}")),
                    if seen.is_empty() {
                        "no suppression".to_string()
                    } else {
                        seen.join("; ")
                    }
                )
            })
        }
        Expect::Runs(count) => {
            let got = observed.runs.len() as i64;
            (got != *count).then(|| {
                format!(
                    "expected {count} run{}, got {got}{}",
                    plural(*count),
                    runs_list(&observed.runs)
                )
            })
        }
        Expect::Run { playbook, args } => {
            let found = observed
                .runs
                .iter()
                .any(|run| run.playbook == *playbook && includes(&run.arguments, args));
            (!found).then(|| {
                format!(
                    "expected a run of {playbook}{}, got {}",
                    with(args),
                    if observed.runs.is_empty() {
                        "no run".to_string()
                    } else {
                        observed
                            .runs
                            .iter()
                            .map(|run| format!("{}({})", run.playbook, render_args(&run.arguments)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )
            })
        }
        Expect::Task { task, state } => {
            let states: Vec<(i64, String)> = observed
                .runs
                .iter()
                .filter_map(|run| task_state(run, task).map(|got| (run.id, got)))
                .collect();
            if states.is_empty() {
                return Some(format!(
                    "expected task {task} {state}, but no run has a task {task}{}",
                    runs_list(&observed.runs)
                ));
            }
            let wrong: Vec<String> = states
                .iter()
                .filter(|(_, got)| got != state)
                .map(|(run, got)| format!("{got} in run {run}"))
                .collect();
            (!wrong.is_empty())
                .then(|| format!("expected task {task} {state}, got {}", wrong.join(", ")))
        }
        Expect::Action {
            function,
            args,
            negated,
        } => {
            let calls: Vec<&crate::mock::Call> = observed
                .calls
                .iter()
                .filter(|call| !call.revert && call.function == *function)
                .collect();
            let matching = calls.iter().any(|call| includes(&call.args, args));
            match (negated, matching) {
                (false, false) if calls.is_empty() => Some(format!(
                    "expected action {function}{}, got no call of it",
                    with(args)
                )),
                (false, false) => Some(format!(
                    "expected action {function}{}, got {}",
                    with(args),
                    calls
                        .iter()
                        .map(|call| differing(&call.args, args))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                (true, true) => Some(format!(
                    "expected no action {function}{}, got {}",
                    with(args),
                    calls
                        .iter()
                        .filter(|call| includes(&call.args, args))
                        .map(|call| format!(
                            "{} at {}",
                            render_call(&call.function, &call.args),
                            offset(call.at_ms)
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                _ => None,
            }
        }
        Expect::Outcome(outcome) => {
            if observed.runs.is_empty() {
                return Some(format!("expected outcome {outcome}, but nothing ran"));
            }
            let wrong: Vec<String> = observed
                .runs
                .iter()
                .filter(|run| run.state != *outcome)
                .map(|run| {
                    let why = run
                        .report
                        .as_ref()
                        .and_then(|report| report.stopped.clone())
                        .map_or(String::new(), |why| format!(": {why}"));
                    format!("{} (run {} of {}{why})", run.state, run.id, run.playbook)
                })
                .collect();
            (!wrong.is_empty())
                .then(|| format!("expected outcome {outcome}, got {}", wrong.join(", ")))
        }
        Expect::Revert { task, at_ms } => {
            let reverts: Vec<&medic_runtime::journal::RevertRow> = observed
                .runs
                .iter()
                .flat_map(|run| &run.reverts)
                .filter(|revert| revert.task == *task)
                .collect();
            if reverts.is_empty() {
                return Some(format!("expected a revert of {task}, got none scheduled"));
            }
            let Some(at) = at_ms else {
                return None;
            };
            // When a revert was performed (`revert on resolve`, or its due time come), that
            // is its time; until then, its due time.
            let times = |revert: &medic_runtime::journal::RevertRow| -> (Option<i64>, Option<i64>) {
                let due = revert.due_at.map(|due| due - crate::drive::START_MS);
                let args: BTreeMap<String, Value> =
                    serde_json::from_str(&revert.arguments).unwrap_or_default();
                let performed = observed
                    .calls
                    .iter()
                    .filter(|call| {
                        call.revert
                            && call.function == revert.function
                            && includes(&call.args, &args)
                    })
                    .map(|call| call.at_ms)
                    .find(|performed| *performed == *at)
                    .or_else(|| {
                        observed
                            .calls
                            .iter()
                            .find(|call| {
                                call.revert
                                    && call.function == revert.function
                                    && includes(&call.args, &args)
                            })
                            .map(|call| call.at_ms)
                    });
                (due, performed)
            };
            let fits = |revert: &&medic_runtime::journal::RevertRow| match times(revert) {
                (_, Some(performed)) => performed == *at,
                (due, None) => due == Some(*at),
            };
            (!reverts.iter().any(fits)).then(|| {
                format!(
                    "expected a revert of {task} at {}, got {}",
                    offset(*at),
                    reverts
                        .iter()
                        .map(|revert| {
                            let (due, performed) = times(revert);
                            let due = due.map_or("on resolve".to_string(), |due| {
                                format!("due at {}", offset(due))
                            });
                            match performed {
                                Some(performed) => {
                                    format!("one {} at {} ({due})", revert.state, offset(performed))
                                }
                                None => format!("one {due} ({})", revert.state),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        }
    }
}

/// The final state of `task` in a run, when its playbook has it.
pub fn task_state(run: &ObservedRun, task: &str) -> Option<String> {
    if let Some(report) = &run.report
        && let Some(found) = report.tasks.iter().find(|report| report.id == task)
    {
        return Some(found.outcome.state().to_string());
    }
    run.events
        .iter()
        .rev()
        .find(|event| event.task == task)
        .map(|event| event.state.clone())
}

fn includes(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) -> bool {
    want.iter()
        .all(|(name, want)| got.get(name).is_some_and(|got| same(got, want)))
}

/// The arguments of a call that differ from those expected: `by: 2` for `by: 1`.
fn differing(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) -> String {
    let parts: Vec<String> = want
        .iter()
        .filter(|(name, want)| !got.get(*name).is_some_and(|got| same(got, want)))
        .map(|(name, _)| match got.get(name) {
            Some(value) => format!("{name}: {}", render_value(value)),
            None => format!("no {name}"),
        })
        .collect();
    parts.join(", ")
}

fn with(args: &BTreeMap<String, Value>) -> String {
    if args.is_empty() {
        String::new()
    } else {
        format!(" with {}", render_args(args))
    }
}

fn plural(count: i64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn list_or_none(rules: &[String]) -> String {
    if rules.is_empty() {
        "no match".to_string()
    } else {
        rules.join(", ")
    }
}

fn runs_list(runs: &[ObservedRun]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    format!(
        " ({})",
        runs.iter()
            .map(|run| format!(
                "run {} of {} by {} at {}: {}",
                run.id,
                run.playbook,
                run.rule,
                offset(run.started_ms),
                run.state
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )
}
