//! Why each rule of a plan matched one alert or did not: the routing question an
//! Alertmanager user answers by hand (`medic explain`). Pure computation on a plan and an
//! alert record.
//!
//! The verdicts are [`Plan::match_alert`]'s own outcome, not a second matcher: this module
//! only adds what led to it, each `and`-ed part of a rule's `when` with the values its
//! operands had.

use super::ir::{Ir, Value, Vars};
use super::{Loc, Plan, Rule, render};
use crate::ast::BinaryOp;
use serde::Serialize;
use std::collections::BTreeMap;

/// Every rule of the plan, in matching order, with what it made of the alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub alert: String,
    pub status: String,
    pub rules: Vec<RuleExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleExplanation {
    pub rule: String,
    pub source: Loc,
    pub verdict: Verdict,
    /// `on alert ...`: the names the rule is for (empty: every name), and whether the
    /// alert's is one of them.
    pub names: Vec<String>,
    pub name_matches: bool,
    /// `on [resolved|any] alert`: the lifecycle, and whether the alert's status fits it.
    pub lifecycle: String,
    pub lifecycle_matches: bool,
    /// Each `and`-ed part of `when`, evaluated whether or not an earlier part failed.
    pub parts: Vec<Part>,
    /// The playbook and its arguments, evaluated, when the rule matched.
    pub run: Option<Run>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// Matched; `stops` when no later rule is tried (the rule does not `continue`).
    Matched { stops: bool },
    /// Not matched, with the first reason.
    NotMatched { reason: String },
    /// Its `when` could not be evaluated, so it did not match.
    Unevaluable { error: String },
    /// It would have matched, but an earlier rule matched and stopped the matching.
    NotReached { by: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    /// The part as written in the plan's notation.
    pub text: String,
    /// Its operands (for a comparison or a match) with their values.
    pub operands: Vec<Operand>,
    /// `true`, `false`, or why it could not be evaluated.
    #[serde(serialize_with = "outcome")]
    pub result: Result<bool, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operand {
    pub text: String,
    #[serde(serialize_with = "outcome")]
    pub value: Result<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub playbook: String,
    /// Each parameter's value as text, or why it could not be evaluated.
    #[serde(serialize_with = "outcomes")]
    pub arguments: BTreeMap<String, Result<String, String>>,
}

/// A result in JSON: `{"value": ...}` or `{"error": "..."}`.
fn outcome<T: Serialize, S: serde::Serializer>(
    result: &Result<T, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(1))?;
    match result {
        Ok(value) => map.serialize_entry("value", value)?,
        Err(error) => map.serialize_entry("error", error)?,
    }
    map.end()
}

fn outcomes<S: serde::Serializer>(
    results: &BTreeMap<String, Result<String, String>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct One<'a>(&'a Result<String, String>);
    impl Serialize for One<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            outcome(self.0, serializer)
        }
    }
    serializer.collect_map(results.iter().map(|(name, result)| (name, One(result))))
}

struct AlertScope<'a>(&'a Value);

impl Vars for AlertScope<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        (name == "alert").then_some(self.0)
    }
}

/// Explains how `plan` routes `alert` (an `std.alert.Alert` record).
pub fn explain(plan: &Plan, alert: &Value) -> Explanation {
    let field = |name: &str| match alert {
        Value::Record(fields) => match fields.get(name) {
            Some(Value::String(value)) => value.clone(),
            Some(Value::Enum { name, .. }) => name.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    let name = field("name");
    let status = match field("status") {
        status if status.is_empty() => "firing".to_string(),
        status => status,
    };
    let outcome = plan.match_alert(alert);
    let scope = AlertScope(alert);
    let mut stopped_by: Option<String> = None;
    let mut rules = Vec::with_capacity(plan.rules.len());
    for (index, rule) in plan.rules.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let name_matches = rule.alerts.is_empty() || rule.alerts.contains(&name);
        let lifecycle_matches = rule.lifecycle.accepts(&status);
        let parts: Vec<Part> = rule
            .condition
            .as_ref()
            .map(|condition| {
                conjuncts(condition)
                    .into_iter()
                    .map(|part| explain_part(part, &scope))
                    .collect()
            })
            .unwrap_or_default();
        let matched = outcome.matched.contains(&index);
        let verdict = if matched {
            Verdict::Matched {
                stops: !rule.continue_matching,
            }
        } else if let Some((_, error)) = outcome.errors.iter().find(|(i, _)| *i == index) {
            Verdict::Unevaluable {
                error: error.to_string(),
            }
        } else if !name_matches {
            Verdict::NotMatched {
                reason: format!(
                    "it is for {}, and the alert is {name:?}",
                    names_text(&rule.alerts)
                ),
            }
        } else if !lifecycle_matches {
            Verdict::NotMatched {
                reason: format!(
                    "it is for {} alerts, and the alert is {status}",
                    rule.lifecycle.as_str()
                ),
            }
        } else if let Some(failed) = parts.iter().find(|part| part.result != Ok(true)) {
            Verdict::NotMatched {
                reason: format!("`{}` is false", failed.text),
            }
        } else if let Some(by) = &stopped_by {
            Verdict::NotReached { by: by.clone() }
        } else {
            // Not reachable when the plan and this walk agree; said rather than hidden.
            Verdict::NotMatched {
                reason: "the matcher did not select it".into(),
            }
        };
        let run = matched.then(|| run_of(plan, rule, &scope));
        if matched && !rule.continue_matching && stopped_by.is_none() {
            stopped_by = Some(rule.name.clone());
        }
        rules.push(RuleExplanation {
            rule: rule.name.clone(),
            source: rule.source.clone(),
            verdict,
            names: rule.alerts.clone(),
            name_matches,
            lifecycle: rule.lifecycle.as_str().into(),
            lifecycle_matches,
            parts,
            run,
        });
    }
    Explanation {
        alert: name,
        status,
        rules,
    }
}

fn names_text(names: &[String]) -> String {
    if names.is_empty() {
        return "every alert".into();
    }
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `and`-ed parts of a condition, left to right.
fn conjuncts(ir: &Ir) -> Vec<&Ir> {
    match ir {
        Ir::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            let mut parts = conjuncts(left);
            parts.extend(conjuncts(right));
            parts
        }
        other => vec![other],
    }
}

fn value_of(ir: &Ir, scope: &AlertScope<'_>) -> Result<String, String> {
    ir.eval(scope)
        .map(|value| render::value_text(&value))
        .map_err(|error| error.to_string())
}

fn explain_part(part: &Ir, scope: &AlertScope<'_>) -> Part {
    let operand = |ir: &Ir| Operand {
        text: render::ir_text(ir),
        value: value_of(ir, scope),
    };
    let operands = match part {
        Ir::Binary { left, right, .. } => vec![operand(left), operand(right)],
        Ir::Regex { left, .. } => vec![operand(left)],
        Ir::Not { arg } => vec![operand(arg)],
        _ => Vec::new(),
    };
    Part {
        text: render::ir_text(part),
        operands,
        result: part.eval_bool(scope).map_err(|error| error.to_string()),
    }
}

fn run_of(plan: &Plan, rule: &Rule, scope: &AlertScope<'_>) -> Run {
    let arguments = plan
        .playbook(&rule.playbook)
        .map(|playbook| {
            playbook
                .params
                .iter()
                .map(|param| {
                    let value = match rule.argument(param, scope) {
                        Some(value) => value
                            .map(|value| render::value_text(&value))
                            .map_err(|error| error.to_string()),
                        None => Err("no value".into()),
                    };
                    (param.name.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    Run {
        playbook: rule.playbook.clone(),
        arguments,
    }
}

/// The explanation as text, one block per rule.
pub fn text(explanation: &Explanation) -> String {
    let mut out = format!("alert {:?} ({})\n", explanation.alert, explanation.status);
    if explanation.rules.is_empty() {
        out.push_str("  the plan has no rules\n");
    }
    let matched = explanation
        .rules
        .iter()
        .filter(|rule| matches!(rule.verdict, Verdict::Matched { .. }))
        .count();
    for (number, rule) in explanation.rules.iter().enumerate() {
        let verdict = match &rule.verdict {
            Verdict::Matched { stops: true } => "MATCHED; matching stops here".to_string(),
            Verdict::Matched { stops: false } => "MATCHED; matching continues".to_string(),
            Verdict::NotMatched { reason } => format!("no: {reason}"),
            Verdict::Unevaluable { error } => {
                format!("no: its `when` could not be evaluated: {error}")
            }
            Verdict::NotReached { by } => {
                format!("not reached: rule {by} matched first and does not `continue`")
            }
        };
        out.push_str(&format!(
            "  {}. rule {} ({}:{}): {verdict}\n",
            number + 1,
            rule.rule,
            rule.source.file,
            rule.source.line
        ));
        if !rule.name_matches {
            continue;
        }
        for part in &rule.parts {
            let result = match &part.result {
                Ok(true) => "true".to_string(),
                Ok(false) => "false".to_string(),
                Err(error) => format!("error: {error}"),
            };
            out.push_str(&format!("       when {}: {result}", part.text));
            let operands: Vec<String> = part
                .operands
                .iter()
                .filter(|operand| operand.text != operand.value.clone().unwrap_or_default())
                .map(|operand| match &operand.value {
                    Ok(value) => format!("{} = {value}", operand.text),
                    Err(error) => format!("{}: {error}", operand.text),
                })
                .collect();
            if !operands.is_empty() {
                out.push_str(&format!(" ({})", operands.join("; ")));
            }
            out.push('\n');
        }
        if let Some(run) = &rule.run {
            let arguments: Vec<String> = run
                .arguments
                .iter()
                .map(|(name, value)| match value {
                    Ok(value) => format!("{name}: {value}"),
                    Err(error) => format!("{name}: <{error}>"),
                })
                .collect();
            out.push_str(&format!(
                "       runs {}({})\n",
                run.playbook,
                arguments.join(", ")
            ));
        }
    }
    out.push_str(&match matched {
        0 => "  no rule matched\n".to_string(),
        1 => "  1 rule matched (cooldowns, concurrency and duplicates are decided by the server's journal, not here)\n".to_string(),
        n => format!("  {n} rules matched (cooldowns, concurrency and duplicates are decided by the server's journal, not here)\n"),
    });
    out
}
