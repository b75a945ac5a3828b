//! What the adapter tests share: compile a test program, run its first playbook through a
//! toolbox, and read a task's outcome.

use medic_compiler::plan::{self, Plan, Value};
use medic_runtime::executor::{self, RunOptions, RunReport, TaskOutcome, Toolbox};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The plan of a test program, which must compile (the diagnostics say why not).
pub fn compile(source: &str) -> Plan {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("test.ops", source)]);
    let errors: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| format!("{diagnostic:?}"))
        .collect();
    plan::lower(&analysis).unwrap_or_else(|_| panic!("the test program compiles: {errors:?}"))
}

/// Runs the plan's first playbook with these arguments, for real (not a dry run).
pub async fn run_playbook(
    plan: &Plan,
    arguments: &[(&str, Value)],
    toolbox: Arc<dyn Toolbox>,
) -> RunReport {
    let arguments = arguments
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    executor::run(
        &plan.playbooks[0],
        arguments,
        toolbox,
        RunOptions { dry_run: false },
    )
    .await
}

pub fn outcome<'r>(report: &'r RunReport, task: &str) -> &'r TaskOutcome {
    &report
        .tasks
        .iter()
        .find(|report| report.id == task)
        .unwrap()
        .outcome
}

/// The reason a task failed; a test failure when it did not.
pub fn failure(report: &RunReport, task: &str) -> String {
    match outcome(report, task) {
        TaskOutcome::Failed { reason } => reason.clone(),
        other => panic!("{task} should have failed, it ended {other:?}"),
    }
}

/// The fields of a task's output record; a test failure when it did not succeed.
pub fn output(report: &RunReport, task: &str) -> BTreeMap<String, Value> {
    match outcome(report, task) {
        TaskOutcome::Succeeded {
            output: Value::Record(fields),
        } => (**fields).clone(),
        other => panic!("{task} should have succeeded, it ended {other:?}"),
    }
}
