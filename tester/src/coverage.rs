//! Coverage: for each file, which of its rules some test matched, for each rule `when`
//! whether some alert of the rule's name made it false as well, which tasks ran, and for
//! each task `when` whether some run skipped the task as well. Pure computation over the
//! plan and what the tests observed.

use crate::drive::Observed;
use medic_compiler::plan::Plan;
use medic_compiler::plan::explain::{Verdict, explain};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    pub files: Vec<FileCoverage>,
    pub covered: usize,
    pub total: usize,
    /// `covered / total` in percent (100 when there is nothing to cover).
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileCoverage {
    pub file: String,
    pub covered: usize,
    pub total: usize,
    pub percent: f64,
    /// What no test exercised, one line each (`rule order_cpu: its when never false`).
    pub missing: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub line: u32,
    pub what: String,
}

/// Coverage of the plan's files by the observations of every test run.
pub fn coverage<'o>(plan: &Plan, observed: impl IntoIterator<Item = &'o Observed>) -> Coverage {
    let mut matched: BTreeSet<String> = BTreeSet::new();
    let mut when_false: BTreeSet<String> = BTreeSet::new();
    // (playbook, task) → states seen.
    let mut states: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for observed in observed {
        matched.extend(observed.matched.iter().cloned());
        for alert in &observed.alerts {
            for rule in explain(plan, alert).rules {
                if rule.name_matches
                    && rule.lifecycle_matches
                    && !matches!(rule.verdict, Verdict::Matched { .. })
                {
                    when_false.insert(rule.rule);
                }
            }
        }
        for run in &observed.runs {
            let Some(playbook) = plan.playbooks.iter().find(|p| p.name == run.playbook) else {
                continue;
            };
            for task in &playbook.tasks {
                if let Some(state) = crate::expect::task_state(run, &task.id) {
                    states
                        .entry((playbook.name.clone(), task.id.clone()))
                        .or_default()
                        .insert(state);
                }
            }
        }
    }
    let mut files: BTreeMap<String, FileCoverage> = BTreeMap::new();
    let mut add = |file: &str, line: u32, what: String, seen: bool| {
        let entry = files
            .entry(file.to_string())
            .or_insert_with(|| FileCoverage {
                file: file.to_string(),
                covered: 0,
                total: 0,
                percent: 100.0,
                missing: Vec::new(),
            });
        entry.total += 1;
        if seen {
            entry.covered += 1;
        } else {
            entry.missing.push(Item { line, what });
        }
    };
    for rule in &plan.rules {
        let (file, line) = (rule.source.file.as_str(), rule.source.line);
        add(
            file,
            line,
            format!("rule {}: never matched", rule.name),
            matched.contains(&rule.name),
        );
        if rule.condition.is_some() {
            add(
                file,
                line,
                format!("rule {}: its `when` was never false", rule.name),
                when_false.contains(&rule.name),
            );
        }
    }
    for playbook in &plan.playbooks {
        for task in &playbook.tasks {
            let seen = states
                .get(&(playbook.name.clone(), task.id.clone()))
                .cloned()
                .unwrap_or_default();
            let (file, line) = (task.source.file.as_str(), task.source.line);
            let ran = seen
                .iter()
                .any(|state| matches!(state.as_str(), "succeeded" | "failed" | "cancelled"));
            add(
                file,
                line,
                format!("task {}.{}: never ran", playbook.name, task.id),
                ran,
            );
            if task.when.is_some() {
                add(
                    file,
                    line,
                    format!(
                        "task {}.{}: its `when` was never false (never skipped)",
                        playbook.name, task.id
                    ),
                    seen.contains("skipped"),
                );
            }
        }
    }
    let mut files: Vec<FileCoverage> = files.into_values().collect();
    for file in &mut files {
        file.percent = percent(file.covered, file.total);
    }
    let covered = files.iter().map(|file| file.covered).sum();
    let total = files.iter().map(|file| file.total).sum();
    Coverage {
        files,
        covered,
        total,
        percent: percent(covered, total),
    }
}

fn percent(covered: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        covered as f64 * 100.0 / total as f64
    }
}

/// One line per file, then what is missing.
pub fn text(coverage: &Coverage) -> String {
    let mut out = String::from("coverage:\n");
    for file in &coverage.files {
        out.push_str(&format!(
            "  {} {:.1}% ({} of {})\n",
            file.file, file.percent, file.covered, file.total
        ));
        for item in &file.missing {
            out.push_str(&format!("    line {}: {}\n", item.line, item.what));
        }
    }
    out.push_str(&format!(
        "  total {:.1}% ({} of {})\n",
        coverage.percent, coverage.covered, coverage.total
    ));
    out
}
