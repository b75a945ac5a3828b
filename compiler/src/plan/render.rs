//! Plans for people: text (for review), Graphviz DOT and Mermaid (for pictures), and the
//! canonical text of IR expressions, which the text form and the diff share.

use super::ir::{Ir, Value};
use super::{EdgeKind, Effect, Plan, Playbook, Rule, Task};
use crate::units;
use std::fmt::Write as _;

/// The text of an expression, in `.ops` syntax.
pub fn ir_text(ir: &Ir) -> String {
    let mut out = String::new();
    write_ir(&mut out, ir, 0);
    out
}

fn precedence(ir: &Ir) -> u8 {
    match ir {
        Ir::Binary { op, .. } => op.precedence(),
        Ir::Regex { .. } => 4,
        Ir::Not { .. } => 3,
        _ => 10,
    }
}

fn write_ir(out: &mut String, ir: &Ir, parent: u8) {
    let own = precedence(ir);
    let parens = own < parent;
    if parens {
        out.push('(');
    }
    match ir {
        Ir::Const { value } => out.push_str(&value_text(value)),
        Ir::Var { name } => out.push_str(name),
        Ir::Field { base, field } => {
            write_ir(out, base, 10);
            out.push('.');
            out.push_str(field);
        }
        Ir::Index { base, index } => {
            write_ir(out, base, 10);
            out.push('[');
            write_ir(out, index, 0);
            out.push(']');
        }
        Ir::Not { arg } => {
            out.push_str("not ");
            write_ir(out, arg, 4);
        }
        Ir::Neg { arg } => {
            out.push('-');
            write_ir(out, arg, 10);
        }
        Ir::Binary { op, left, right } => {
            write_ir(out, left, own);
            let _ = write!(out, " {} ", op.as_str());
            // Left-associative: a right operand of equal precedence needs parentheses.
            write_ir(out, right, own + 1);
        }
        Ir::Regex {
            negated,
            left,
            pattern,
        } => {
            write_ir(out, left, 5);
            out.push_str(if *negated { " !~ " } else { " =~ " });
            out.push_str(&quote(&pattern.source));
        }
        Ir::List { items } => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_ir(out, item, 0);
            }
            out.push(']');
        }
        Ir::Record { fields } if fields.is_empty() => out.push_str("{}"),
        Ir::Record { fields } => {
            out.push_str("{ ");
            for (index, (key, value)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{key}: ");
                write_ir(out, value, 0);
            }
            out.push_str(" }");
        }
        Ir::Unit { arg, .. } | Ir::UrlEscape { arg, .. } => write_ir(out, arg, parent),
        Ir::Concat { parts } | Ir::Url { base: None, parts } => write_template(out, None, parts),
        Ir::Url {
            base: Some(base),
            parts,
        } => write_template(out, Some(base), parts),
    }
    if parens {
        out.push(')');
    }
}

/// A string or URL template as it was written: `"http://{service}/health"`.
fn write_template(out: &mut String, base: Option<&Ir>, parts: &[Ir]) {
    out.push('"');
    if let Some(base) = base {
        out.push('{');
        write_ir(out, base, 0);
        out.push('}');
    }
    for part in parts {
        match part {
            Ir::Const {
                value: Value::String(text),
            } => {
                let quoted = quote(text);
                out.push_str(quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or(""));
            }
            other => {
                out.push('{');
                write_ir(out, other, 0);
                out.push('}');
            }
        }
    }
    out.push('"');
}

/// A value written as an `.ops` literal.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(text) => quote(text),
        Value::Url(url) => quote(&url.href),
        Value::Duration(millis) => units::format_duration(*millis),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_text(),
    }
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    crate::format::escape_into(&mut out, text);
    out.push('"');
    out
}

/// The plan as text for reviewers: rules in matching order, then playbooks with their tasks
/// in execution order.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan {} (format {})",
        plan.content_hash.get(..12).unwrap_or(""),
        plan.format_version
    );
    let _ = writeln!(out, "sources: {}", plan.sources.join(", "));
    for (position, rule) in plan.rules.iter().enumerate() {
        out.push('\n');
        rule_text(&mut out, position, rule);
    }
    for playbook in &plan.playbooks {
        out.push('\n');
        playbook_text(&mut out, playbook);
    }
    out
}

fn rule_text(out: &mut String, position: usize, rule: &Rule) {
    let _ = writeln!(
        out,
        "rule #{} {}  ({}:{})",
        position + 1,
        rule.name,
        rule.source.file,
        rule.source.line
    );
    let alerts = if rule.alerts.is_empty() {
        "*".to_string()
    } else {
        rule.alerts
            .iter()
            .map(|name| quote(name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  on {} alert {alerts}", rule.lifecycle.as_str());
    if let Some(condition) = &rule.condition {
        let _ = writeln!(out, "  when {}", ir_text(condition));
    }
    let args: Vec<String> = rule
        .args
        .iter()
        .map(|(name, value)| format!("{name}: {}", ir_text(value)))
        .collect();
    let _ = writeln!(out, "  run {}({})", rule.playbook, args.join(", "));
    if let Some(limit) = &rule.cooldown {
        let _ = writeln!(
            out,
            "  cooldown {}{}",
            units::format_duration(limit.value),
            per(&limit.key)
        );
    }
    if let Some(limit) = &rule.concurrency {
        let _ = writeln!(out, "  concurrency {}{}", limit.value, per(&limit.key));
    }
    if rule.priority != 0 {
        let _ = writeln!(out, "  priority {}", rule.priority);
    }
    let _ = writeln!(
        out,
        "  then {}",
        if rule.continue_matching {
            "continue matching"
        } else {
            "stop matching"
        }
    );
}

fn per(key: &Option<Ir>) -> String {
    key.as_ref()
        .map(|key| format!(" per {}", ir_text(key)))
        .unwrap_or_default()
}

fn playbook_text(out: &mut String, playbook: &Playbook) {
    let params: Vec<String> = playbook
        .params
        .iter()
        .map(|param| match &param.default {
            Some(default) => format!("{}: {} = {}", param.name, param.ty, ir_text(default)),
            None => format!("{}: {}", param.name, param.ty),
        })
        .collect();
    let _ = writeln!(
        out,
        "playbook {}({})  ({}:{})",
        playbook.name,
        params.join(", "),
        playbook.source.file,
        playbook.source.line
    );
    if let Some(timeout) = playbook.timeout_ms {
        let _ = writeln!(out, "  timeout {}", units::format_duration(timeout));
    }
    for (position, task) in playbook.tasks.iter().enumerate() {
        task_text(out, position, task);
    }
}

fn task_text(out: &mut String, position: usize, task: &Task) {
    let effect = match task.effect {
        Effect::Query => "query",
        Effect::Action => "ACTION",
    };
    let args: Vec<String> = task
        .args
        .iter()
        .map(|(name, value)| format!("{name}: {}", ir_text(value)))
        .collect();
    let _ = writeln!(
        out,
        "  {}. {} = {}({})  [{effect}]",
        position + 1,
        task.id,
        task.function,
        args.join(", ")
    );
    for line in policies(task) {
        let _ = writeln!(out, "       {line}");
    }
}

/// The task's policies, one phrase each, as the text form and the diff show them.
pub fn policies(task: &Task) -> Vec<String> {
    let mut lines = Vec::new();
    if !task.depends_on.is_empty() {
        lines.push(format!("needs {}", task.depends_on.join(", ")));
    }
    if let Some(when) = &task.when {
        lines.push(format!("when {}", ir_text(when)));
    }
    if let Some(retry) = task.retry {
        lines.push(format!(
            "retry {} backoff {}",
            retry.attempts,
            units::format_duration(retry.backoff_ms)
        ));
    }
    if let Some(timeout) = task.timeout_ms {
        lines.push(format!("timeout {}", units::format_duration(timeout)));
    }
    lines.push(format!("on failure {}", task.on_failure.as_str()));
    if let Some(approval) = &task.approval {
        let mut line = "approval".to_string();
        if let Some(by) = &approval.by {
            line.push_str(&format!(" by {}", quote(by)));
        }
        if let Some(within) = approval.within_ms {
            line.push_str(&format!(" within {}", units::format_duration(within)));
        }
        lines.push(line);
    }
    if let Some(after) = task.revert_after_ms {
        lines.push(format!("revert after {}", units::format_duration(after)));
    }
    if task.revert_on_resolve {
        lines.push("revert on resolve".into());
    }
    lines
}

fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz: one cluster per playbook, actions as boxes, `after` edges dashed.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for (index, playbook) in plan.playbooks.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{index} {{\n    label={};",
            dot_id(&playbook.name)
        );
        for task in &playbook.tasks {
            let shape = match task.effect {
                Effect::Query => "ellipse",
                Effect::Action => "box",
            };
            let _ = writeln!(
                out,
                "    {} [label={}, shape={shape}];",
                dot_id(&format!("{}.{}", playbook.name, task.id)),
                dot_id(&format!("{}\\n{}", task.id, task.function))
            );
        }
        for edge in &playbook.edges {
            let style = match edge.kind {
                EdgeKind::Data => "",
                EdgeKind::After => " [style=dashed]",
            };
            let _ = writeln!(
                out,
                "    {} -> {}{style};",
                dot_id(&format!("{}.{}", playbook.name, edge.from)),
                dot_id(&format!("{}.{}", playbook.name, edge.to))
            );
        }
        out.push_str("  }\n");
    }
    for rule in &plan.rules {
        let _ = writeln!(
            out,
            "  {} [shape=note];",
            dot_id(&format!("rule {}", rule.name))
        );
        let first = plan.playbook(&rule.playbook).and_then(|playbook| {
            playbook
                .tasks
                .iter()
                .find(|task| task.depends_on.is_empty())
        });
        if let Some(task) = first {
            let _ = writeln!(
                out,
                "  {} -> {} [style=dotted];",
                dot_id(&format!("rule {}", rule.name)),
                dot_id(&format!("{}.{}", rule.playbook, task.id))
            );
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid_id(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() {
                character
            } else {
                '_'
            }
        })
        .collect()
}

/// Mermaid flowchart: one subgraph per playbook.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for playbook in &plan.playbooks {
        let _ = writeln!(
            out,
            "  subgraph {}[\"playbook {}\"]",
            mermaid_id(&format!("pb_{}", playbook.name)),
            playbook.name
        );
        for task in &playbook.tasks {
            let id = mermaid_id(&format!("{}__{}", playbook.name, task.id));
            let label = format!("{}<br/>{}", task.id, task.function);
            match task.effect {
                Effect::Query => {
                    let _ = writeln!(out, "    {id}([\"{label}\"])");
                }
                Effect::Action => {
                    let _ = writeln!(out, "    {id}[\"{label}\"]");
                }
            }
        }
        for edge in &playbook.edges {
            let arrow = match edge.kind {
                EdgeKind::Data => "-->",
                EdgeKind::After => "-.->",
            };
            let _ = writeln!(
                out,
                "    {} {arrow} {}",
                mermaid_id(&format!("{}__{}", playbook.name, edge.from)),
                mermaid_id(&format!("{}__{}", playbook.name, edge.to))
            );
        }
        out.push_str("  end\n");
    }
    for rule in &plan.rules {
        let id = mermaid_id(&format!("rule_{}", rule.name));
        let _ = writeln!(
            out,
            "  {id}>\"rule {}\"] --> {}",
            rule.name,
            mermaid_id(&format!("pb_{}", rule.playbook))
        );
    }
    out
}
