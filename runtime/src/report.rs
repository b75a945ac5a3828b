//! A run's report as text for people (`medic run`, `medic runs ID`): what was checked, what
//! was found, what was done (or, in a dry run, what would have been), and why each task
//! ran, was skipped or stopped. Deterministic: tasks in plan order, fields in name order.

use crate::executor::{Preview, RunReport, TaskOutcome};
use medic_compiler::plan::{self, Effect, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

fn arguments_text(args: &BTreeMap<String, Value>) -> String {
    args.iter()
        .map(|(name, value)| format!("{name}: {}", short(&plan::render::value_text(value))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Long values (HTTP bodies) are cut for the report; the journal keeps them whole.
/// Characters of a value shown on a report's line.
const SHORT_LIMIT: usize = 160;

fn short(text: &str) -> String {
    if text.chars().count() <= SHORT_LIMIT {
        return text.to_string();
    }
    let cut: String = text.chars().take(SHORT_LIMIT).collect();
    format!("{cut}…")
}

/// The report of one run of `playbook`.
pub fn text(
    heading: &str,
    report: &RunReport,
    playbook: Option<&plan::Playbook>,
    dry_run: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{heading}: playbook {} {}{}",
        report.playbook,
        report.outcome.as_str(),
        if dry_run {
            " (dry run: no action was performed)"
        } else {
            ""
        }
    );
    if let Some(stopped) = &report.stopped {
        let _ = writeln!(out, "  stopped: {stopped}");
    }
    let width = report
        .tasks
        .iter()
        .map(|task| task.id.chars().count())
        .max()
        .unwrap_or(0);
    for task_report in &report.tasks {
        let task = playbook.and_then(|playbook| playbook.task(&task_report.id));
        let kind = match task.map(|task| task.effect) {
            Some(Effect::Action) => "action",
            _ => "query",
        };
        let (mark, what) = match &task_report.outcome {
            TaskOutcome::Succeeded { output } => (
                "done",
                format!("→ {}", short(&plan::render::value_text(output))),
            ),
            TaskOutcome::Skipped { reason } => ("skipped", reason.clone()),
            TaskOutcome::WouldRun {
                args,
                unknown,
                preview,
            } => {
                let mut line = format!("with {}", arguments_text(args));
                match preview {
                    Some(Preview::Accepted(value)) => {
                        // A result's own summary line says it best, and whole.
                        let said = match value {
                            Value::Record(fields) => match fields.get("summary") {
                                Some(Value::String(summary)) => summary.clone(),
                                _ => short(&plan::render::value_text(value)),
                            },
                            _ => short(&plan::render::value_text(value)),
                        };
                        let _ = write!(line, "; the system says it would do: {said}");
                    }
                    Some(Preview::Refused(reason)) => {
                        let _ = write!(line, "; the system would REFUSE it: {reason}");
                    }
                    None => {}
                }
                for (name, expression) in unknown {
                    let _ = write!(
                        line,
                        "{}{name}: <{expression}, known only after the actions before it run>",
                        if line.ends_with("with ") { "" } else { ", " }
                    );
                }
                ("WOULD RUN", line)
            }
            TaskOutcome::Failed { reason } => ("FAILED", reason.clone()),
            TaskOutcome::Cancelled { reason } => ("cancelled", reason.clone()),
            TaskOutcome::NotRun => ("not run", "the run stopped before it".into()),
        };
        let attempts = if task_report.attempts > 1 {
            format!(" after {} attempts", task_report.attempts)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {} ({kind}): {mark}{attempts}{}{what}",
            task_report.id,
            task_report.function,
            match task_report.outcome {
                TaskOutcome::Succeeded { .. } | TaskOutcome::WouldRun { .. } => " ",
                _ => ": ",
            },
            width = width
        );
        // A result's own summary line is what a reader wants whole.
        // Shown when the output above was cut short.
        if let TaskOutcome::Succeeded { output } = &task_report.outcome
            && let Value::Record(fields) = output
            && let Some(Value::String(summary)) = fields.get("summary")
            && plan::render::value_text(output).chars().count() > SHORT_LIMIT
        {
            let _ = writeln!(out, "  {:<width$}    summary: {summary}", "", width = width);
        }
        if let Some(arguments) = &task_report.arguments
            && !matches!(task_report.outcome, TaskOutcome::WouldRun { .. })
        {
            let _ = writeln!(
                out,
                "  {:<width$}    called with {}",
                "",
                arguments_text(arguments),
                width = width
            );
        }
        if let Some(task) = task {
            let policies: Vec<String> = plan::render::policies(task)
                .into_iter()
                .filter(|policy| policy != "on failure abort")
                .collect();
            if !policies.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<width$}    policy: {}",
                    "",
                    policies.join(" · "),
                    width = width
                );
            }
        }
    }
    out
}
