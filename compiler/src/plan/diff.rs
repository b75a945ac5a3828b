//! The semantic difference between two plans, in plain words for reviewers: rules added,
//! removed or changed; per playbook the tasks added or removed and the arguments, policies
//! and guardrails that changed ("task `scale`: argument `max` changed from 5 to 10").

use super::render::{ir_text, policies};
use super::{Limit, Plan, Playbook, Rule, Task};
use crate::units;
use std::collections::BTreeMap;

/// One change, with the item it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `rule payment_latency`, `playbook scale_up`, `playbook scale_up, task scale`.
    pub subject: String,
    pub description: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.description)
    }
}

/// The changes from `old` to `new`, rules first (by name), then playbooks (by name).
pub fn diff(old: &Plan, new: &Plan) -> Vec<Change> {
    let mut changes = Vec::new();
    let old_rules: BTreeMap<&str, (usize, &Rule)> = old
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| (rule.name.as_str(), (index, rule)))
        .collect();
    let new_rules: BTreeMap<&str, (usize, &Rule)> = new
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| (rule.name.as_str(), (index, rule)))
        .collect();
    for (name, (_, rule)) in &old_rules {
        if !new_rules.contains_key(name) {
            changes.push(change(
                format!("rule {name}"),
                format!("removed (it ran `{}`)", rule.playbook),
            ));
        }
    }
    for (name, (new_index, rule)) in &new_rules {
        match old_rules.get(name) {
            None => changes.push(change(
                format!("rule {name}"),
                format!("added (runs `{}`)", rule.playbook),
            )),
            Some((old_index, old_rule)) => {
                rule_changes(&mut changes, old_rule, rule);
                if old_index != new_index {
                    changes.push(change(
                        format!("rule {name}"),
                        format!(
                            "matching position changed from #{} to #{}",
                            old_index + 1,
                            new_index + 1
                        ),
                    ));
                }
            }
        }
    }
    let old_playbooks: BTreeMap<&str, &Playbook> =
        old.playbooks.iter().map(|p| (p.name.as_str(), p)).collect();
    let new_playbooks: BTreeMap<&str, &Playbook> =
        new.playbooks.iter().map(|p| (p.name.as_str(), p)).collect();
    for name in old_playbooks.keys() {
        if !new_playbooks.contains_key(name) {
            changes.push(change(format!("playbook {name}"), "removed".into()));
        }
    }
    for (name, playbook) in &new_playbooks {
        match old_playbooks.get(name) {
            None => changes.push(change(
                format!("playbook {name}"),
                format!("added with {} tasks", playbook.tasks.len()),
            )),
            Some(old_playbook) => playbook_changes(&mut changes, old_playbook, playbook),
        }
    }
    changes
}

fn change(subject: String, description: String) -> Change {
    Change {
        subject,
        description,
    }
}

fn compare(
    changes: &mut Vec<Change>,
    subject: &str,
    what: &str,
    old: Option<String>,
    new: Option<String>,
) {
    if old == new {
        return;
    }
    let description = match (old, new) {
        (None, Some(new)) => format!("{what} added: {new}"),
        (Some(old), None) => format!("{what} removed (was {old})"),
        (Some(old), Some(new)) => format!("{what} changed from {old} to {new}"),
        (None, None) => return,
    };
    changes.push(change(subject.to_string(), description));
}

fn limit_text(limit: &Option<Limit>, cooldown: bool) -> Option<String> {
    limit.as_ref().map(|limit| {
        let value = if cooldown {
            units::format_duration(limit.value)
        } else {
            limit.value.to_string()
        };
        match &limit.key {
            Some(key) => format!("{value} per {}", ir_text(key)),
            None => value,
        }
    })
}

fn rule_changes(changes: &mut Vec<Change>, old: &Rule, new: &Rule) {
    let subject = format!("rule {}", new.name);
    let alerts = |rule: &Rule| {
        Some(if rule.alerts.is_empty() {
            "*".to_string()
        } else {
            rule.alerts.join(", ")
        })
    };
    compare(changes, &subject, "alerts", alerts(old), alerts(new));
    compare(
        changes,
        &subject,
        "lifecycle",
        Some(old.lifecycle.as_str().to_string()),
        Some(new.lifecycle.as_str().to_string()),
    );
    compare(
        changes,
        &subject,
        "condition",
        old.condition.as_ref().map(ir_text),
        new.condition.as_ref().map(ir_text),
    );
    compare(
        changes,
        &subject,
        "playbook",
        Some(old.playbook.clone()),
        Some(new.playbook.clone()),
    );
    arg_changes(changes, &subject, &old.args, &new.args);
    compare(
        changes,
        &subject,
        "cooldown",
        limit_text(&old.cooldown, true),
        limit_text(&new.cooldown, true),
    );
    compare(
        changes,
        &subject,
        "concurrency",
        limit_text(&old.concurrency, false),
        limit_text(&new.concurrency, false),
    );
    compare(
        changes,
        &subject,
        "priority",
        Some(old.priority.to_string()),
        Some(new.priority.to_string()),
    );
    if old.continue_matching != new.continue_matching {
        changes.push(change(
            subject.clone(),
            if new.continue_matching {
                "now continues matching".into()
            } else {
                "now stops matching".into()
            },
        ));
    }
}

fn arg_changes(
    changes: &mut Vec<Change>,
    subject: &str,
    old: &BTreeMap<String, super::Ir>,
    new: &BTreeMap<String, super::Ir>,
) {
    for name in old
        .keys()
        .chain(new.keys().filter(|name| !old.contains_key(*name)))
    {
        compare(
            changes,
            subject,
            &format!("argument `{name}`"),
            old.get(name).map(ir_text),
            new.get(name).map(ir_text),
        );
    }
}

fn playbook_changes(changes: &mut Vec<Change>, old: &Playbook, new: &Playbook) {
    let subject = format!("playbook {}", new.name);
    let params = |playbook: &Playbook| {
        Some(
            playbook
                .params
                .iter()
                .map(|param| match &param.default {
                    Some(default) => format!("{}: {} = {}", param.name, param.ty, ir_text(default)),
                    None => format!("{}: {}", param.name, param.ty),
                })
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    compare(changes, &subject, "parameters", params(old), params(new));
    compare(
        changes,
        &subject,
        "timeout",
        old.timeout_ms.map(units::format_duration),
        new.timeout_ms.map(units::format_duration),
    );
    for task in &old.tasks {
        if new.task(&task.id).is_none() {
            changes.push(change(
                subject.clone(),
                format!("task `{}` removed ({})", task.id, task.function),
            ));
        }
    }
    for task in &new.tasks {
        match old.task(&task.id) {
            None => changes.push(change(
                subject.clone(),
                format!("task `{}` added ({})", task.id, task.function),
            )),
            Some(old_task) => task_changes(changes, &new.name, old_task, task),
        }
    }
}

fn task_changes(changes: &mut Vec<Change>, playbook: &str, old: &Task, new: &Task) {
    let subject = format!("playbook {playbook}, task {}", new.id);
    compare(
        changes,
        &subject,
        "function",
        Some(old.function.clone()),
        Some(new.function.clone()),
    );
    arg_changes(changes, &subject, &old.args, &new.args);
    let keyed = |task: &Task| -> BTreeMap<String, String> {
        policies(task)
            .into_iter()
            .map(|line| {
                let key = [
                    "on failure",
                    "revert after",
                    "revert on resolve",
                    "needs",
                    "when",
                    "retry",
                    "timeout",
                    "approval",
                ]
                .iter()
                .find(|key| line.starts_with(*key))
                .map_or_else(|| line.clone(), |key| key.to_string());
                let value = line.strip_prefix(&key).unwrap_or(&line).trim().to_string();
                (key, value)
            })
            .collect()
    };
    let old_policies = keyed(old);
    let new_policies = keyed(new);
    for key in old_policies.keys().chain(
        new_policies
            .keys()
            .filter(|key| !old_policies.contains_key(*key)),
    ) {
        let label = if key == "needs" {
            "dependencies".to_string()
        } else {
            format!("`{key}`")
        };
        let value = |map: &BTreeMap<String, String>| {
            map.get(key).map(|value| {
                if value.is_empty() {
                    "yes".to_string()
                } else {
                    value.clone()
                }
            })
        };
        compare(
            changes,
            &subject,
            &label,
            value(&old_policies),
            value(&new_policies),
        );
    }
}
