//! Tests lowered to values: what `medic test` runs against the plan. Tests are not part of
//! the [`Plan`](super::Plan) (a plan is what `serve` runs, and a test changes nothing of
//! it); they compile from the same analysis, with every value a constant.

use super::Loc;
use super::ir::Value;
use super::lower::{LowerError, Lowerer};
use crate::ast::ExprKind;
use crate::types::{Env, Type};
use crate::{Analysis, typed};
use serde::Serialize;
use std::collections::BTreeMap;

/// What `expect task T STATE` may say, as the run report names task outcomes.
pub const TASK_STATES: &[&str] = &["succeeded", "failed", "skipped", "cancelled", "not_run"];
/// What `expect outcome O` may say, as the run report names run outcomes.
pub const RUN_OUTCOMES: &[&str] = &["succeeded", "failed", "escalated", "cancelled"];
/// Why a matched rule did not run (`expect suppressed R by REASON`).
pub const SUPPRESSION_REASONS: &[&str] = &["cooldown", "concurrency", "duplicate", "unevaluable"];
/// What may follow `expect`.
pub const EXPECTATIONS: &[&str] = &[
    "matched",
    "no match",
    "suppressed",
    "runs",
    "run",
    "task",
    "action",
    "no action",
    "outcome",
    "revert",
];
/// The statements of a test.
pub const STATEMENTS: &[&str] = &[
    "fire", "resolve", "approve", "reject", "at +", "mock", "expect",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suite {
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestCase {
    pub name: String,
    pub source: Loc,
    /// In time order.
    pub events: Vec<Event>,
    /// In source order: the first whose arguments match answers a call.
    pub mocks: Vec<Mock>,
    pub expects: Vec<Expectation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Milliseconds after the test's start.
    pub at_ms: i64,
    pub kind: EventKind,
    pub source: Loc,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `fields` are the `alert.Alert` fields the test gave; `again` fires the alert named
    /// `alert` once more, as it was first fired.
    Fire {
        alert: String,
        fields: BTreeMap<String, Value>,
        again: bool,
    },
    Resolve {
        alert: String,
    },
    Decide {
        task: String,
        approve: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mock {
    /// `module.function`.
    pub function: String,
    /// The arguments a call must have (equal values) for this mock to answer it.
    pub args: BTreeMap<String, Value>,
    /// One per call in turn; the last repeats.
    pub answers: Vec<Answer>,
    pub source: Loc,
    /// The mock as written, for messages.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Value(Value),
    Fail(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    pub kind: Expect,
    pub source: Loc,
    /// The expectation as written (`expect action k8s.scale(by: 1)`), for messages.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    NoMatch,
    Matched(Vec<String>),
    Suppressed {
        rule: String,
        reason: Option<String>,
    },
    Runs(i64),
    Run {
        playbook: String,
        args: BTreeMap<String, Value>,
    },
    Task {
        task: String,
        state: String,
    },
    Action {
        function: String,
        args: BTreeMap<String, Value>,
        negated: bool,
    },
    Outcome(String),
    Revert {
        task: String,
        /// Milliseconds after the test's start.
        at_ms: Option<i64>,
    },
}

/// Lowers the tests of an error-free analysis.
pub fn suite(analysis: &Analysis) -> Result<Suite, LowerError> {
    if analysis.errors() > 0 {
        return Err(LowerError::HasErrors(analysis.errors()));
    }
    let lowerer = Lowerer::new(analysis);
    let tests = analysis
        .program
        .tests
        .iter()
        .map(|test| lower_test(&lowerer, analysis, test))
        .collect::<Result<_, _>>()?;
    Ok(Suite { tests })
}

fn lower_test(
    lowerer: &Lowerer,
    analysis: &Analysis,
    test: &typed::Test,
) -> Result<TestCase, LowerError> {
    let text = |span: crate::ast::Span| -> String {
        analysis
            .file(test.file)
            .and_then(|file| file.text.get(span.range()))
            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let value = |expr: &typed::Expr| -> Result<Value, LowerError> {
        lowerer
            .expr(expr)
            .eval(&BTreeMap::<String, Value>::new())
            .map_err(|error| LowerError::Test {
                test: test.name.clone(),
                message: format!("`{}`: {error}", text(expr.span)),
            })
    };
    let args = |args: &[(String, typed::Expr)]| -> Result<BTreeMap<String, Value>, LowerError> {
        args.iter()
            .map(|(name, expr)| Ok((name.clone(), value(expr)?)))
            .collect()
    };
    let mut events = Vec::new();
    for event in &test.events {
        let kind = match &event.kind {
            typed::TestEventKind::Fire { alert, fields } => {
                let again = matches!(fields.kind, ExprKind::Error);
                let fields = match (again, value(fields)?) {
                    (true, _) => BTreeMap::new(),
                    (false, Value::Record(fields)) => (*fields).clone(),
                    (false, other) => {
                        return Err(LowerError::Test {
                            test: test.name.clone(),
                            message: format!("an alert is a record, not {}", other.type_name()),
                        });
                    }
                };
                EventKind::Fire {
                    alert: alert.clone(),
                    fields,
                    again,
                }
            }
            typed::TestEventKind::Resolve { alert } => EventKind::Resolve {
                alert: alert.clone(),
            },
            typed::TestEventKind::Decide { task, approve } => EventKind::Decide {
                task: task.clone(),
                approve: *approve,
            },
        };
        events.push(Event {
            at_ms: event.at,
            kind,
            source: lowerer.loc(test.file, event.span),
        });
    }
    let mut mocks = Vec::new();
    for mock in &test.mocks {
        let mut answers = Vec::new();
        for answer in &mock.answers {
            answers.push(match answer {
                typed::MockAnswer::Value(expr) => {
                    Answer::Value(complete(value(expr)?, &mock.returns, &analysis.env))
                }
                typed::MockAnswer::Fail(why) => Answer::Fail(why.clone()),
            });
        }
        mocks.push(Mock {
            function: mock.function.clone(),
            args: args(&mock.args)?,
            answers,
            source: lowerer.loc(test.file, mock.span),
            text: text(mock.span),
        });
    }
    let mut expects = Vec::new();
    for expect in &test.expects {
        let kind = match &expect.kind {
            typed::ExpectKind::NoMatch => Expect::NoMatch,
            typed::ExpectKind::Matched(rules) => Expect::Matched(rules.clone()),
            typed::ExpectKind::Suppressed { rule, reason } => Expect::Suppressed {
                rule: rule.clone(),
                reason: reason.clone(),
            },
            typed::ExpectKind::Runs(count) => Expect::Runs(*count),
            typed::ExpectKind::Run {
                playbook,
                args: given,
            } => Expect::Run {
                playbook: playbook.clone(),
                args: args(given)?,
            },
            typed::ExpectKind::Task { task, state } => Expect::Task {
                task: task.clone(),
                state: state.clone(),
            },
            typed::ExpectKind::Action {
                function,
                args: given,
                negated,
            } => Expect::Action {
                function: function.clone(),
                args: args(given)?,
                negated: *negated,
            },
            typed::ExpectKind::Outcome(outcome) => Expect::Outcome(outcome.clone()),
            typed::ExpectKind::Revert { task, at } => Expect::Revert {
                task: task.clone(),
                at_ms: *at,
            },
        };
        expects.push(Expectation {
            kind,
            source: lowerer.loc(test.file, expect.span),
            text: text(expect.span),
        });
    }
    Ok(TestCase {
        name: test.name.clone(),
        source: lowerer.loc(test.file, test.name_span),
        events,
        mocks,
        expects,
    })
}

/// A mock's answer with the optional fields it left out present and absent (`Null`), as
/// the adapter's output would have them.
fn complete(value: Value, ty: &Type, env: &Env) -> Value {
    match (value, ty.unwrap_optional()) {
        (Value::Record(fields), Type::Record(id)) => {
            let Some(record) = env.record(*id) else {
                return Value::Record(fields);
            };
            let mut fields = (*fields).clone();
            for field in &record.fields {
                let present = fields.remove(&field.name);
                let value = match present {
                    Some(value) => complete(value, &field.ty, env),
                    None => Value::Null,
                };
                fields.insert(field.name.clone(), value);
            }
            Value::Record(std::sync::Arc::new(fields))
        }
        (Value::List(elements), Type::List(element)) => Value::List(
            elements
                .into_iter()
                .map(|value| complete(value, element, env))
                .collect(),
        ),
        (value, _) => value,
    }
}
