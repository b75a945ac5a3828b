//! Results for people (`--format human`), for programs (`json`) and for CI systems that
//! read JUnit XML (`junit`).

use crate::TestResult;
use crate::drive::{Observed, offset};
use crate::expect::task_state;
use crate::mock::{render_args, render_call};
use medic_runtime::executor::TaskOutcome;

/// What the engine did, one line each, for a failing test's report.
pub fn trace(observed: &Observed) -> Vec<String> {
    let mut lines = Vec::new();
    for run in &observed.runs {
        lines.push(format!(
            "run {} at {}: rule {} → {}({}): {}",
            run.id,
            offset(run.started_ms),
            run.rule,
            run.playbook,
            render_args(&run.arguments),
            run.state
        ));
        if let Some(report) = &run.report {
            for task in &report.tasks {
                let why = match &task.outcome {
                    TaskOutcome::Skipped { reason }
                    | TaskOutcome::Failed { reason }
                    | TaskOutcome::Cancelled { reason } => format!(": {reason}"),
                    _ => String::new(),
                };
                lines.push(format!(
                    "  {} {} {}{why}",
                    task.id,
                    task.function,
                    task.outcome.state()
                ));
            }
        } else {
            let mut tasks: Vec<&str> = run.events.iter().map(|event| event.task.as_str()).collect();
            tasks.dedup();
            for task in tasks {
                if let Some(state) = task_state(run, task) {
                    lines.push(format!("  {task} {state}"));
                }
            }
        }
        for revert in &run.reverts {
            lines.push(format!(
                "  revert of {}: {}{}",
                revert.task,
                revert.state,
                revert
                    .due_at
                    .map_or(" (on resolve)".to_string(), |due| format!(
                        " (due at {})",
                        offset(due - crate::drive::START_MS)
                    ))
            ));
        }
    }
    for row in &observed.suppressions {
        lines.push(format!(
            "suppressed at {}: rule {} by {} ({})",
            offset(row.at - crate::drive::START_MS),
            row.rule,
            row.reason,
            row.detail
        ));
    }
    for call in &observed.calls {
        lines.push(format!(
            "{} at {}: {}{}",
            if call.revert { "revert" } else { "call" },
            offset(call.at_ms),
            render_call(&call.function, &call.args),
            match (call.revert, call.mock) {
                (true, _) => String::new(),
                (false, Some(_)) => String::new(),
                (false, None) => " (no mock)".to_string(),
            }
        ));
    }
    lines
}

/// `PASS` and `FAIL` lines, each failure with what differs, then the trace; a summary.
pub fn human(results: &[TestResult], verbose: bool) -> String {
    let mut out = String::new();
    for result in results {
        let mark = if result.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!(
            "{mark} {}:{} {}\n",
            result.file, result.line, result.name
        ));
        for failure in &result.failures {
            match failure.line {
                Some(line) => out.push_str(&format!("  line {line}: {}\n", failure.message)),
                None => out.push_str(&format!("  {}\n", failure.message)),
            }
        }
        if !result.passed || verbose {
            if !result.trace.is_empty() {
                out.push_str("  what happened:\n");
            }
            for line in &result.trace {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out.push_str(&summary(results));
    out
}

pub fn summary(results: &[TestResult]) -> String {
    let failed = results.iter().filter(|result| !result.passed).count();
    let millis: f64 = results.iter().map(|result| result.millis).sum();
    format!(
        "{} test{}: {} passed, {failed} failed ({millis:.0} ms of test time)\n",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        results.len() - failed
    )
}

pub fn json(results: &[TestResult], coverage: Option<&crate::coverage::Coverage>) -> String {
    let failed = results.iter().filter(|result| !result.passed).count();
    let mut value = serde_json::json!({
        "tests": results,
        "passed": results.len() - failed,
        "failed": failed,
    });
    if let (Some(coverage), Some(object)) = (coverage, value.as_object_mut()) {
        object.insert(
            "coverage".into(),
            serde_json::to_value(coverage).unwrap_or_default(),
        );
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// JUnit XML: one `testsuite` per file, one `testcase` per test.
pub fn junit(results: &[TestResult]) -> String {
    let mut files: Vec<&str> = results.iter().map(|result| result.file.as_str()).collect();
    files.dedup();
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|file| seen.insert(*file));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for file in files {
        let cases: Vec<&TestResult> = results
            .iter()
            .filter(|result| result.file == file)
            .collect();
        let failures = cases.iter().filter(|result| !result.passed).count();
        let seconds: f64 = cases.iter().map(|result| result.millis).sum::<f64>() / 1000.0;
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{seconds:.3}\">\n",
            xml(file),
            cases.len()
        ));
        for case in cases {
            out.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                xml(&case.name),
                xml(file),
                case.millis / 1000.0
            ));
            if case.passed {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            let first = case
                .failures
                .first()
                .map_or(String::new(), |failure| failure.message.clone());
            let mut body: Vec<String> = case
                .failures
                .iter()
                .map(|failure| failure.message.clone())
                .collect();
            body.extend(case.trace.iter().cloned());
            out.push_str(&format!(
                "      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                xml(&first),
                xml(&body.join("\n"))
            ));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
