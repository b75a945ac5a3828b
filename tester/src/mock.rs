//! The toolbox a test runs with: every standard library call is answered by the test's
//! mocks, in source order, the first whose listed arguments the call has; a call no mock
//! answers fails the run's task and the test, named with its arguments.

use medic_compiler::plan::Value;
use medic_compiler::plan::suite::{Answer, Mock};
use medic_runtime::executor::{CallError, CallFuture, Clock, Toolbox};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One call the engine made, as the mocks saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub function: String,
    pub args: BTreeMap<String, Value>,
    /// Milliseconds after the test's start.
    pub at_ms: i64,
    /// Which mock answered (its index), `None` when none did.
    pub mock: Option<usize>,
    /// A revert the engine asked for, not a call of the runbook.
    pub revert: bool,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// How many calls each mock has answered.
    answered: Vec<usize>,
}

pub struct MockToolbox {
    mocks: Vec<Mock>,
    state: Mutex<State>,
    clock: Clock,
    start_ms: i64,
}

impl MockToolbox {
    pub fn new(mocks: Vec<Mock>, clock: Clock, start_ms: i64) -> Arc<MockToolbox> {
        let answered = vec![0; mocks.len()];
        Arc::new(MockToolbox {
            mocks,
            state: Mutex::new(State {
                calls: Vec::new(),
                answered,
            }),
            clock,
            start_ms,
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .calls
            .clone()
    }

    pub fn mocks(&self) -> &[Mock] {
        &self.mocks
    }

    /// The answer for a call, and which mock gave it.
    fn answer(&self, function: &str, args: &BTreeMap<String, Value>) -> (Option<usize>, Answer) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let found = self.mocks.iter().enumerate().find(|(_, mock)| {
            mock.function == function
                && mock
                    .args
                    .iter()
                    .all(|(name, want)| args.get(name).is_some_and(|got| same(got, want)))
        });
        let answer = match found {
            Some((index, mock)) => {
                let count = state.answered.get(index).copied().unwrap_or(0);
                if let Some(slot) = state.answered.get_mut(index) {
                    *slot += 1;
                }
                let answer = mock
                    .answers
                    .get(count)
                    .or(mock.answers.last())
                    .cloned()
                    .unwrap_or_else(|| Answer::Fail("the mock has no answer".into()));
                (Some(index), answer)
            }
            None => (
                None,
                Answer::Fail(format!("no mock answers {}", render_call(function, args))),
            ),
        };
        state.calls.push(Call {
            function: function.to_string(),
            args: args.clone(),
            at_ms: self.clock.now_ms() - self.start_ms,
            mock: answer.0,
            revert: false,
        });
        answer
    }
}

impl Toolbox for MockToolbox {
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture {
        let (_, answer) = self.answer(function, &args);
        Box::pin(async move {
            match answer {
                Answer::Value(value) => Ok(value),
                Answer::Fail(why) => Err(CallError::Failed(why)),
            }
        })
    }

    /// A revert succeeds: what it would find in the system is not part of the test.
    fn revert(&self, function: &str, args: BTreeMap<String, Value>, _output: Value) -> CallFuture {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.calls.push(Call {
            function: function.to_string(),
            args,
            at_ms: self.clock.now_ms() - self.start_ms,
            mock: None,
            revert: true,
        });
        Box::pin(async { Ok(Value::String("reverted (test)".into())) })
    }
}

/// Whether a value the engine passed equals one a test wrote: a URL equals its text, an
/// integer the same float.
pub fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Url(url), Value::String(text)) | (Value::String(text), Value::Url(url)) => {
            url.href == *text
        }
        // Where the host came from is the engine's business, not the test's.
        (Value::Url(a), Value::Url(b)) => a.href == b.href,
        (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => (*a as f64) == *b,
        (Value::List(a), Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Record(a), Value::Record(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| same(a, b)))
        }
        (a, b) => a == b,
    }
}

/// `k8s.scale(by: 1, deployment: "order-service")`.
pub fn render_call(function: &str, args: &BTreeMap<String, Value>) -> String {
    format!("{function}({})", render_args(args))
}

pub fn render_args(args: &BTreeMap<String, Value>) -> String {
    args.iter()
        .map(|(name, value)| format!("{name}: {}", render_value(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as a test would write it.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(text) => format!("{text:?}"),
        Value::Url(url) => format!("{:?}", url.href),
        Value::Enum { name, .. } => name.clone(),
        Value::List(elements) => format!(
            "[{}]",
            elements
                .iter()
                .map(render_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Record(fields) => format!(
            "{{ {} }}",
            fields
                .iter()
                .map(|(name, value)| format!("{name}: {}", render_value(value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_text(),
    }
}
