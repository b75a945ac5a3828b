//! Lowering a checked program into a [`Plan`]: expressions to IR, playbooks to DAGs in a
//! deterministic topological order, rules sorted into matching order, and the match index.

use super::ir::{Ir, Pattern, UrlPart, Value};
use super::{
    Approval, Edge, EdgeKind, Effect, Limit, Loc, MatchIndex, NameBucket, OnFailure, Param, Plan,
    Playbook, Retry, Rule, Task,
};
use crate::ast::{self, ExprKind, Span, StrPart};
use crate::types::{Env, Type};
use crate::{Analysis, FileId, LineIndex, typed};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    #[error("the program has {0} errors; fix them before planning")]
    HasErrors(usize),
    #[error("test \"{test}\": {message}")]
    Test { test: String, message: String },
}

/// Compiles an error-free analysis into a plan.
pub fn lower(analysis: &Analysis) -> Result<Plan, LowerError> {
    if analysis.errors() > 0 {
        return Err(LowerError::HasErrors(analysis.errors()));
    }
    let lowerer = Lowerer::new(analysis);
    let sources = analysis
        .user_files()
        .filter_map(|file| analysis.file(file).map(|parsed| parsed.name.clone()))
        .collect();

    let playbooks: Vec<Playbook> = analysis
        .program
        .playbooks
        .iter()
        .map(|playbook| lowerer.playbook(playbook))
        .collect();

    // Matching order: priority (higher first), then the order of the sources.
    let mut order: Vec<&typed::Rule> = analysis.program.rules.iter().collect();
    order.sort_by_key(|rule| std::cmp::Reverse(rule.priority));
    let rules: Vec<Rule> = order
        .iter()
        .map(|rule| {
            let performs_actions = analysis
                .program
                .playbook(rule.run.as_ref().map_or("", |run| run.playbook.as_str()))
                .is_some_and(|playbook| playbook.first_action.is_some());
            lowerer.rule(rule, performs_actions)
        })
        .collect();
    let index = build_index(&order, &rules);
    let mut plan = Plan {
        format_version: super::FORMAT_VERSION,
        content_hash: String::new(),
        sources,
        rules,
        playbooks,
        index,
    };
    plan.seal();
    Ok(plan)
}

pub(super) struct Lowerer<'a> {
    analysis: &'a Analysis,
    env: &'a Env,
    line_indexes: Vec<LineIndex>,
}

impl<'a> Lowerer<'a> {
    pub(super) fn new(analysis: &'a Analysis) -> Lowerer<'a> {
        Lowerer {
            analysis,
            env: &analysis.env,
            line_indexes: analysis
                .files
                .iter()
                .map(|file| LineIndex::new(&file.text))
                .collect(),
        }
    }

    pub(super) fn loc(&self, file: FileId, span: Span) -> Loc {
        let parsed = self.analysis.file(file);
        let (name, text) = parsed.map_or(("", ""), |parsed| {
            (parsed.name.as_str(), parsed.text.as_str())
        });
        let position = self
            .line_indexes
            .get(file.0 as usize)
            .map(|index| index.position(text, span.start as usize));
        Loc {
            file: name.to_string(),
            line: position.map_or(1, |position| position.line as u32 + 1),
            column: position.map_or(1, |position| position.column as u32 + 1),
            start: span.start,
            end: span.end,
        }
    }

    fn rule(&self, rule: &typed::Rule, performs_actions: bool) -> Rule {
        let limit = |limit: &Option<typed::Limit>| {
            limit.as_ref().map(|limit| Limit {
                value: limit.value,
                key: limit.per.as_ref().map(|per| self.expr(per)),
            })
        };
        Rule {
            name: rule.name.clone(),
            source: self.loc(rule.file, rule.name_span),
            lifecycle: match rule.lifecycle {
                ast::Lifecycle::Firing => super::Lifecycle::Firing,
                ast::Lifecycle::Resolved => super::Lifecycle::Resolved,
                ast::Lifecycle::Any => super::Lifecycle::Any,
            },
            alerts: rule.alert_names.clone(),
            condition: rule.when.as_ref().map(|when| self.expr(when)),
            playbook: rule
                .run
                .as_ref()
                .map(|run| run.playbook.clone())
                .unwrap_or_default(),
            args: rule
                .run
                .as_ref()
                .map(|run| {
                    let params = self
                        .analysis
                        .program
                        .playbook(&run.playbook)
                        .map(|playbook| &playbook.params);
                    run.args
                        .iter()
                        .map(|(name, value)| {
                            let target = params
                                .and_then(|params| params.iter().find(|param| param.name == *name))
                                .map(|param| &param.ty);
                            (name.clone(), self.argument(value, target))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            cooldown: limit(&rule.cooldown),
            concurrency: limit(&rule.concurrency),
            priority: rule.priority,
            continue_matching: rule.continue_matching,
            performs_actions,
        }
    }

    fn playbook(&self, playbook: &typed::Playbook) -> Playbook {
        let order = topological_order(&playbook.tasks);
        let tasks: Vec<Task> = order
            .iter()
            .filter_map(|&index| playbook.tasks.get(index))
            .map(|task| self.task(task, playbook.file))
            .collect();
        let mut edges = Vec::new();
        for &index in &order {
            let Some(task) = playbook.tasks.get(index) else {
                continue;
            };
            let mut dependencies: Vec<&String> = task.depends_on.iter().collect();
            dependencies.sort();
            for dependency in dependencies {
                let reads = task_reads(task).contains(dependency.as_str());
                edges.push(Edge {
                    from: dependency.clone(),
                    to: task.name.clone(),
                    kind: if reads {
                        EdgeKind::Data
                    } else {
                        EdgeKind::After
                    },
                });
            }
        }
        Playbook {
            name: playbook.name.clone(),
            source: self.loc(playbook.file, playbook.name_span),
            params: playbook
                .params
                .iter()
                .map(|param| Param {
                    name: param.name.clone(),
                    ty: self.env.type_name(&param.ty),
                    default: param.default.as_ref().map(|default| self.expr(default)),
                })
                .collect(),
            timeout_ms: playbook.timeout,
            tasks,
            edges,
        }
    }

    fn task(&self, task: &typed::Task, file: FileId) -> Task {
        let function = task.function.and_then(|id| self.env.function(id));
        let mut depends_on = task.depends_on.clone();
        depends_on.sort();
        Task {
            id: task.name.clone(),
            source: self.loc(file, task.name_span),
            function: function
                .map(|function| function.qualified_name())
                .unwrap_or_default(),
            effect: match task.effect {
                ast::Effect::Query => Effect::Query,
                ast::Effect::Action => Effect::Action,
            },
            revertible: function.is_some_and(|function| function.revertible),
            args: task
                .args
                .iter()
                .map(|(name, value)| {
                    let target = function
                        .and_then(|function| {
                            function.params.iter().find(|param| param.name == *name)
                        })
                        .map(|param| &param.ty);
                    (name.clone(), self.argument(value, target))
                })
                .collect(),
            when: task.when.as_ref().map(|when| self.expr(when)),
            retry: task.retry.map(|retry| Retry {
                attempts: retry.attempts,
                backoff_ms: retry.backoff,
            }),
            timeout_ms: task.timeout,
            on_failure: match task.on_failure {
                ast::FailurePolicy::Abort => OnFailure::Abort,
                ast::FailurePolicy::Continue => OnFailure::Continue,
                ast::FailurePolicy::Escalate => OnFailure::Escalate,
            },
            approval: task.approval.as_ref().map(|approval| Approval {
                by: approval.by.clone(),
                within_ms: approval.timeout,
            }),
            revert_after_ms: task.revert_after,
            revert_on_resolve: task.revert_on_resolve,
            depends_on,
        }
    }

    /// An argument: an alert quantity passed where a unit is expected is checked against
    /// that unit when evaluated.
    fn argument(&self, value: &typed::Expr, target: Option<&Type>) -> Ir {
        let lowered = self.expr(value);
        let unit = target.and_then(|target| target.unwrap_optional().unit_name());
        match (value.ty.unwrap_optional(), unit) {
            (Type::Quantity, Some(unit)) => Ir::Unit {
                arg: Box::new(lowered),
                unit: unit.to_string(),
            },
            _ => lowered,
        }
    }

    /// Typed expression to IR. Enum variants were marked by the checker, so every remaining
    /// bare name is a variable.
    pub(super) fn expr(&self, expr: &typed::Expr) -> Ir {
        match &expr.kind {
            ExprKind::Int(value) => constant(Value::Int(*value)),
            ExprKind::Float(value) => constant(Value::Float(*value)),
            ExprKind::Bool(value) => constant(Value::Bool(*value)),
            ExprKind::Duration(value) => constant(Value::Duration(*value)),
            ExprKind::Percent(value) => constant(Value::Percent(*value)),
            ExprKind::Size(value) => constant(Value::Size(*value)),
            ExprKind::Time(value) => constant(Value::Time(*value)),
            ExprKind::Str(parts, _) if expr.ty.unwrap_optional() == &Type::Url => {
                url(parts, |inner| self.expr(inner))
            }
            ExprKind::Str(parts, _) => {
                let lowered: Vec<Ir> = parts
                    .iter()
                    .map(|part| match part {
                        StrPart::Text(text, _) => constant(Value::String(text.clone())),
                        StrPart::Interpolation(inner) => self.expr(inner),
                    })
                    .collect();
                match lowered.as_slice() {
                    [] => constant(Value::String(String::new())),
                    [
                        Ir::Const {
                            value: Value::String(text),
                        },
                    ] => constant(Value::String(text.clone())),
                    _ => Ir::Concat { parts: lowered },
                }
            }
            ExprKind::List(items) => {
                let items: Vec<Ir> = items.iter().map(|item| self.expr(item)).collect();
                if items.iter().all(|item| matches!(item, Ir::Const { .. })) {
                    constant(Value::List(
                        items
                            .into_iter()
                            .filter_map(|item| match item {
                                Ir::Const { value } => Some(value),
                                _ => None,
                            })
                            .collect(),
                    ))
                } else {
                    Ir::List { items }
                }
            }
            ExprKind::Record(entries) => Ir::Record {
                fields: entries
                    .iter()
                    .map(|entry| (entry.key.name.clone(), self.expr(&entry.value)))
                    .collect(),
            },
            ExprKind::Name(ident) => Ir::Var {
                name: ident.name.clone(),
            },
            ExprKind::Variant(ident) => {
                let index = match &expr.ty {
                    Type::Enum(id) => self
                        .env
                        .enum_def(*id)
                        .and_then(|def| {
                            def.variants
                                .iter()
                                .position(|variant| *variant == ident.name)
                        })
                        .unwrap_or(0),
                    _ => 0,
                };
                constant(Value::Enum {
                    name: ident.name.clone(),
                    index: index as u32,
                })
            }
            ExprKind::Field(base, field) => Ir::Field {
                base: Box::new(self.expr(base)),
                field: field.name.clone(),
            },
            ExprKind::Index(base, index) => Ir::Index {
                base: Box::new(self.expr(base)),
                index: Box::new(self.expr(index)),
            },
            ExprKind::Unary(ast::UnaryOp::Not, arg) => Ir::Not {
                arg: Box::new(self.expr(arg)),
            },
            ExprKind::Unary(ast::UnaryOp::Neg, arg) => match self.expr(arg) {
                Ir::Const {
                    value: Value::Int(value),
                } => constant(Value::Int(value.saturating_neg())),
                Ir::Const {
                    value: Value::Float(value),
                } => constant(Value::Float(-value)),
                Ir::Const {
                    value: Value::Duration(value),
                } => constant(Value::Duration(value.saturating_neg())),
                Ir::Const {
                    value: Value::Percent(value),
                } => constant(Value::Percent(-value)),
                lowered => Ir::Neg {
                    arg: Box::new(lowered),
                },
            },
            ExprKind::Binary(op, _, left, right) => {
                let left_ir = self.expr(left);
                let right_ir = self.expr(right);
                if let (
                    ast::BinaryOp::Match | ast::BinaryOp::NotMatch,
                    Ir::Const {
                        value: Value::String(pattern),
                    },
                ) = (op, &right_ir)
                {
                    return Ir::Regex {
                        negated: *op == ast::BinaryOp::NotMatch,
                        left: Box::new(left_ir),
                        pattern: Pattern::new(pattern.clone()),
                    };
                }
                Ir::Binary {
                    op: *op,
                    left: Box::new(left_ir),
                    right: Box::new(right_ir),
                }
            }
            ExprKind::Paren(inner) => self.expr(inner),
            // Not reached: plans are only built from programs without errors.
            ExprKind::Call(..) | ExprKind::Error => constant(Value::Null),
        }
    }
}

fn constant(value: Value) -> Ir {
    Ir::Const { value }
}

/// Names of the tasks a task reads in its arguments or condition (as opposed to only
/// waiting for them with `after`).
fn task_reads(task: &typed::Task) -> BTreeSet<&str> {
    task.depends_on
        .iter()
        .map(String::as_str)
        .filter(|name| read_in_expressions(task, name))
        .collect()
}

fn read_in_expressions(task: &typed::Task, name: &str) -> bool {
    let mut found = false;
    let mut visit = |expr: &typed::Expr| {
        if mentions(expr, name) {
            found = true;
        }
    };
    for (_, value) in &task.args {
        visit(value);
    }
    if let Some(when) = &task.when {
        visit(when);
    }
    found
}

fn mentions(expr: &typed::Expr, name: &str) -> bool {
    match &expr.kind {
        ExprKind::Name(ident) => ident.name == name,
        ExprKind::Str(parts, _) => parts.iter().any(|part| match part {
            StrPart::Interpolation(inner) => mentions(inner, name),
            StrPart::Text(..) => false,
        }),
        ExprKind::List(items) => items.iter().any(|item| mentions(item, name)),
        ExprKind::Record(entries) => entries.iter().any(|entry| mentions(&entry.value, name)),
        ExprKind::Field(base, _) | ExprKind::Unary(_, base) | ExprKind::Paren(base) => {
            mentions(base, name)
        }
        ExprKind::Index(base, index) => mentions(base, name) || mentions(index, name),
        ExprKind::Binary(_, _, left, right) => mentions(left, name) || mentions(right, name),
        ExprKind::Call(callee, args) => {
            mentions(callee, name) || args.iter().any(|arg| mentions(&arg.value, name))
        }
        _ => false,
    }
}

/// Kahn's algorithm, always taking the ready task that comes first in the source, so the
/// order is deterministic and as close to the author's order as the dependencies allow.
fn topological_order(tasks: &[typed::Task]) -> Vec<usize> {
    let position: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| (task.name.as_str(), index))
        .collect();
    let mut waiting: Vec<usize> = tasks
        .iter()
        .map(|task| {
            task.depends_on
                .iter()
                .filter(|name| position.contains_key(name.as_str()))
                .count()
        })
        .collect();
    let mut ready: BTreeSet<usize> = waiting
        .iter()
        .enumerate()
        .filter(|(_, count)| **count == 0)
        .map(|(index, _)| index)
        .collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(index) = ready.pop_first() {
        order.push(index);
        let Some(done) = tasks.get(index) else {
            continue;
        };
        for (other_index, other) in tasks.iter().enumerate() {
            if other.depends_on.contains(&done.name)
                && let Some(count) = waiting.get_mut(other_index)
            {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    ready.insert(other_index);
                }
            }
        }
    }
    order
}

/// Builds the match index. For each alert name, the alert field that the most rules test
/// with `alert.FIELD == "literal"` (as a top-level `and` part) becomes the bucket's key.
fn build_index(order: &[&typed::Rule], rules: &[Rule]) -> MatchIndex {
    let mut index = MatchIndex::default();
    let mut by_name: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (position, rule) in rules.iter().enumerate() {
        if rule.alerts.is_empty() {
            index.any_name.push(position as u32);
        }
        for name in &rule.alerts {
            by_name
                .entry(name.as_str())
                .or_default()
                .push(position as u32);
        }
    }
    for (name, members) in by_name {
        let equalities: Vec<BTreeMap<String, String>> = members
            .iter()
            .map(|&position| {
                order
                    .get(position as usize)
                    .and_then(|rule| rule.when.as_ref())
                    .map(equality_tests)
                    .unwrap_or_default()
            })
            .collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for tests in &equalities {
            for field in tests.keys() {
                *counts.entry(field.as_str()).or_default() += 1;
            }
        }
        let field = counts
            .iter()
            .max_by_key(|(field, count)| (**count, std::cmp::Reverse(**field)))
            .map(|(field, _)| field.to_string());
        let mut bucket = NameBucket {
            field: field.clone(),
            ..NameBucket::default()
        };
        for (&position, tests) in members.iter().zip(&equalities) {
            match field.as_ref().and_then(|field| tests.get(field)) {
                Some(value) => bucket
                    .by_value
                    .entry(value.clone())
                    .or_default()
                    .push(position),
                None => bucket.other.push(position),
            }
        }
        index.by_name.insert(name.to_string(), bucket);
    }
    index
}

/// `alert.f == "v"` (or an enum variant) parts of a condition's top-level `and`.
fn equality_tests(condition: &typed::Expr) -> BTreeMap<String, String> {
    let mut tests = BTreeMap::new();
    for part in crate::check::conjuncts(condition) {
        let ExprKind::Binary(ast::BinaryOp::Eq, _, left, right) = &part.kind else {
            continue;
        };
        let (field, literal) = match (field_of_alert(left), field_of_alert(right)) {
            (Some(field), None) => (field, right),
            (None, Some(field)) => (field, left),
            _ => continue,
        };
        let value = match &literal.unparen().kind {
            ExprKind::Str(parts, _) => match parts.as_slice() {
                [] => String::new(),
                [StrPart::Text(text, _)] => text.clone(),
                _ => continue,
            },
            ExprKind::Variant(ident) => ident.name.clone(),
            _ => continue,
        };
        // Only string and enum fields are indexed (values are compared as text).
        tests.entry(field).or_insert(value);
    }
    tests
}

fn field_of_alert(expr: &typed::Expr) -> Option<String> {
    match &expr.unparen().kind {
        ExprKind::Field(base, field) if base.as_name().is_some_and(|name| name.name == "alert") => {
            matches!(expr.ty, Type::String | Type::Enum(_)).then(|| field.name.clone())
        }
        _ => None,
    }
}

/// A URL template (an expression of type `Url`): the literal text fixes the scheme and the
/// host; each interpolated value is escaped for the part of the URL it stands in, read from
/// the literal text before it. A `Url` value at the start is the base the rest extends (the
/// checker made sure the text after it starts a path, a query or a fragment).
fn url(parts: &[StrPart<Type>], mut lower: impl FnMut(&typed::Expr) -> Ir) -> Ir {
    let mut base = None;
    let mut seen = String::new();
    let mut lowered = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        match part {
            StrPart::Text(text, _) => {
                seen.push_str(text);
                lowered.push(constant(Value::String(text.clone())));
            }
            StrPart::Interpolation(inner)
                if index == 0 && inner.ty.unwrap_optional() == &Type::Url =>
            {
                base = Some(Box::new(lower(inner)));
                // What follows a base URL is its path, query or fragment.
                seen.push_str("base://base");
            }
            StrPart::Interpolation(inner) => {
                let after_scheme = seen
                    .find("://")
                    .and_then(|end| seen.get(end + 3..))
                    .unwrap_or("");
                let part = if after_scheme.contains(['?', '#']) {
                    UrlPart::Query
                } else if after_scheme.contains('/') {
                    UrlPart::Path
                } else {
                    UrlPart::Host
                };
                seen.push('x');
                lowered.push(Ir::UrlEscape {
                    arg: Box::new(lower(inner)),
                    part,
                });
            }
        }
    }
    Ir::Url {
        base,
        parts: lowered,
    }
}
