//! The checked program: rules and playbooks with every name resolved and every expression
//! typed. This is what lowering into a plan consumes; it holds no unresolved names, and a
//! rule or task whose parts failed to check is still present with `Type::Error` nodes so
//! that tools can navigate it.

use crate::FileId;
use crate::ast::{self, Span};
use crate::types::{FnId, Type};

pub type Expr = ast::Expr<Type>;

#[derive(Debug, Clone, Default)]
pub struct Program {
    pub rules: Vec<Rule>,
    pub playbooks: Vec<Playbook>,
    /// The `test` blocks, in source order (docs/notes/026).
    pub tests: Vec<Test>,
    /// Position of each playbook by name, kept by [`Program::add_playbook`].
    playbook_index: std::collections::HashMap<String, usize>,
}

impl Program {
    pub fn playbook(&self, name: &str) -> Option<&Playbook> {
        self.playbook_index
            .get(name)
            .and_then(|&index| self.playbooks.get(index))
    }

    pub fn add_playbook(&mut self, playbook: Playbook) {
        self.playbook_index
            .entry(playbook.name.clone())
            .or_insert(self.playbooks.len());
        self.playbooks.push(playbook);
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub doc: Option<String>,
    pub file: FileId,
    pub span: Span,
    pub name_span: Span,
    pub lifecycle: ast::Lifecycle,
    /// Empty means any alert name.
    pub alert_names: Vec<String>,
    pub when: Option<Expr>,
    /// The playbook run, with one argument per parameter (defaults filled in).
    pub run: Option<RunCall>,
    pub cooldown: Option<Limit>,
    pub concurrency: Option<Limit>,
    pub priority: i64,
    /// Whether matching continues with later rules after this one matched.
    pub continue_matching: bool,
}

#[derive(Debug, Clone)]
pub struct RunCall {
    pub playbook: String,
    pub args: Vec<(String, Expr)>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Limit {
    /// Milliseconds for a cooldown, a count for concurrency.
    pub value: i64,
    pub per: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub name: String,
    pub doc: Option<String>,
    pub file: FileId,
    pub span: Span,
    pub name_span: Span,
    pub params: Vec<Param>,
    /// Milliseconds.
    pub timeout: Option<i64>,
    pub tasks: Vec<Task>,
    /// The first action task, if any: rules that run this playbook need a limit.
    pub first_action: Option<Span>,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: Type,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub span: Span,
    pub name_span: Span,
    pub function: Option<FnId>,
    pub effect: ast::Effect,
    /// One argument per parameter of the function, defaults filled in, in declaration order.
    pub args: Vec<(String, Expr)>,
    /// The output type as seen by other tasks (optional when the task may not produce it).
    pub output: Type,
    /// Tasks this one reads (data flow) or waits for (`after`), in source order, deduplicated.
    pub depends_on: Vec<String>,
    pub after: Vec<String>,
    pub when: Option<Expr>,
    pub retry: Option<Retry>,
    /// Milliseconds.
    pub timeout: Option<i64>,
    pub on_failure: ast::FailurePolicy,
    pub approval: Option<Approval>,
    /// Milliseconds.
    pub revert_after: Option<i64>,
    pub revert_on_resolve: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    /// Milliseconds between attempts (doubling each time).
    pub backoff: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub by: Option<String>,
    /// Milliseconds.
    pub timeout: Option<i64>,
}

/// A checked `test` block: its events in time order, its mocks and its expectations.
#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    pub file: FileId,
    pub span: Span,
    pub name_span: Span,
    pub events: Vec<TestEvent>,
    pub mocks: Vec<Mock>,
    pub expects: Vec<Expect>,
}

#[derive(Debug, Clone)]
pub struct TestEvent {
    /// Milliseconds after the test's start.
    pub at: i64,
    pub kind: TestEventKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TestEventKind {
    /// An alert fires: `alert` names it (for `resolve` and firing it again); `fields` are
    /// the `alert.Alert` fields the test gives (a record expression).
    Fire {
        alert: String,
        fields: Expr,
    },
    Resolve {
        alert: String,
    },
    Decide {
        task: String,
        approve: bool,
    },
}

/// `mock f(args) = answer then answer`: the arguments are those the test lists.
#[derive(Debug, Clone)]
pub struct Mock {
    pub function: String,
    pub args: Vec<(String, Expr)>,
    pub answers: Vec<MockAnswer>,
    /// The function's output type, to fill in the optional fields an answer leaves out.
    pub returns: Type,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum MockAnswer {
    Value(Expr),
    Fail(String),
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub kind: ExpectKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExpectKind {
    NoMatch,
    Matched(Vec<String>),
    Suppressed {
        rule: String,
        reason: Option<String>,
    },
    Runs(i64),
    Run {
        playbook: String,
        args: Vec<(String, Expr)>,
    },
    Task {
        task: String,
        state: String,
    },
    Action {
        function: String,
        args: Vec<(String, Expr)>,
        negated: bool,
    },
    Outcome(String),
    /// Milliseconds after the test's start that the revert is due.
    Revert {
        task: String,
        at: Option<i64>,
    },
}
