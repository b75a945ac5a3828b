//! The syntax tree of one `.ops` file.
//!
//! Every node carries a [`Span`] into its file's text. Expressions are generic over the
//! type annotation `T`: the parser produces `Expr<()>`, the checker produces `Expr<Type>`
//! (the Gleam pattern), so later phases never re-derive a type. A broken construct is an
//! `Error` node; later phases skip it silently, so one mistake yields one diagnostic.

use std::fmt;

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(self) -> usize {
        (self.end.saturating_sub(self.start)) as usize
    }

    pub fn is_empty(self) -> bool {
        self.start >= self.end
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn contains(self, offset: usize) -> bool {
        (self.start as usize) <= offset && offset <= (self.end as usize)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new((span.start as usize).into(), span.len())
    }
}

/// A name as written, with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A comment found by the scanner. Comments are not part of the tree; the formatter
/// re-attaches them by position and the checker reads doc comments through [`File::doc_before`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub kind: CommentKind,
    pub span: Span,
    /// The text after the comment marker, without the trailing newline.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentKind {
    /// `// ...`
    Line,
    /// `/// ...`, documents the item that follows.
    Doc,
    /// `//! ...`, documents the file.
    InnerDoc,
}

/// One parsed file.
#[derive(Debug, Clone, Default)]
pub struct File {
    pub items: Vec<Item>,
    pub comments: Vec<Comment>,
    /// Names of playbooks whose text failed to parse, so that uses of them are not
    /// reported again as unknown.
    pub broken_playbooks: Vec<String>,
    /// Whether any item failed to parse (some lints are unreliable then).
    pub has_syntax_errors: bool,
}

impl File {
    /// The `///` comments directly above `offset` (only whitespace in between), joined.
    pub fn doc_before(&self, source: &str, offset: u32) -> Option<String> {
        let mut index = self
            .comments
            .partition_point(|comment| comment.span.end <= offset);
        let mut lines = Vec::new();
        let mut boundary = offset as usize;
        while index > 0 {
            index -= 1;
            let Some(comment) = self.comments.get(index) else {
                break;
            };
            let gap = source
                .get(comment.span.end as usize..boundary)
                .unwrap_or("x");
            if comment.kind != CommentKind::Doc || !gap.chars().all(char::is_whitespace) {
                break;
            }
            // A blank line between the doc comment and the item detaches it.
            if gap.matches('\n').count() > 1 {
                break;
            }
            lines.push(
                comment
                    .text
                    .strip_prefix(' ')
                    .unwrap_or(&comment.text)
                    .to_string(),
            );
            boundary = comment.span.start as usize;
        }
        if lines.is_empty() {
            return None;
        }
        lines.reverse();
        Some(lines.join("\n"))
    }

    /// The `//!` comments of the file, joined.
    pub fn inner_doc(&self) -> Option<String> {
        let lines: Vec<&str> = self
            .comments
            .iter()
            .filter(|comment| comment.kind == CommentKind::InnerDoc)
            .map(|comment| comment.text.strip_prefix(' ').unwrap_or(&comment.text))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

#[derive(Debug, Clone)]
pub enum Item {
    Import(Import),
    Rule(Rule),
    Playbook(Playbook),
    Test(Test),
    Module(ModuleDecl),
    Record(RecordDecl),
    Enum(EnumDecl),
    Function(FnDecl),
    /// A top-level item that failed to parse; its diagnostic was already reported.
    Error(Span),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import(import) => import.span,
            Item::Rule(rule) => rule.span,
            Item::Playbook(playbook) => playbook.span,
            Item::Test(test) => test.span,
            Item::Module(module) => module.span,
            Item::Record(record) => record.span,
            Item::Enum(decl) => decl.span,
            Item::Function(function) => function.span,
            Item::Error(span) => *span,
        }
    }
}

/// `import std.{http, logs}` or `import std.http`.
#[derive(Debug, Clone)]
pub struct Import {
    pub root: Ident,
    pub names: Vec<Ident>,
    pub braced: bool,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Ident,
    pub clauses: Vec<RuleClause>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum RuleClause {
    On(OnClause),
    When(Expr, Span),
    Run(RunClause),
    Cooldown(Limit),
    Concurrency(Limit),
    Priority(Expr, Span),
    Continue(Span),
}

impl RuleClause {
    pub fn span(&self) -> Span {
        match self {
            RuleClause::On(on) => on.span,
            RuleClause::When(_, span)
            | RuleClause::Priority(_, span)
            | RuleClause::Continue(span) => *span,
            RuleClause::Run(run) => run.span,
            RuleClause::Cooldown(limit) | RuleClause::Concurrency(limit) => limit.span,
        }
    }

    pub fn keyword(&self) -> &'static str {
        match self {
            RuleClause::On(_) => "on alert",
            RuleClause::When(..) => "when",
            RuleClause::Run(_) => "run",
            RuleClause::Cooldown(_) => "cooldown",
            RuleClause::Concurrency(_) => "concurrency",
            RuleClause::Priority(..) => "priority",
            RuleClause::Continue(_) => "continue",
        }
    }
}

/// `test "name" { ... }`: a timeline, mocks and expectations (docs/notes/026).
#[derive(Debug, Clone)]
pub struct Test {
    pub name: StrLit,
    pub steps: Vec<TestStep>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TestStep {
    /// Something that happens at `at` (a Duration expression; the test's start when absent).
    Event {
        at: Option<Expr>,
        event: TestEvent,
        span: Span,
    },
    Mock(Mock),
    Expect(Expectation),
}

#[derive(Debug, Clone)]
pub enum TestEvent {
    /// `fire NAME = ALERT`, `fire ALERT` or `fire NAME` (the named alert again).
    Fire { name: Option<Ident>, alert: Expr },
    /// `resolve NAME`.
    Resolve(Ident),
    /// `approve TASK` (true) or `reject TASK` (false).
    Decide { task: Ident, approve: bool },
}

/// `mock module.function(args)? = answer (then answer)*`.
#[derive(Debug, Clone)]
pub struct Mock {
    pub module: Ident,
    pub function: Ident,
    /// The arguments a call must have for this mock to answer it; `None` answers any call.
    pub args: Option<Vec<Arg>>,
    pub answers: Vec<MockAnswer>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum MockAnswer {
    Value(Expr),
    /// `fail` or `fail "why"`.
    Fail(Option<StrLit>, Span),
}

#[derive(Debug, Clone)]
pub struct Expectation {
    pub kind: ExpectKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExpectKind {
    NoMatch,
    /// Every rule matched over the timeline, in order.
    Matched(Vec<Ident>),
    Suppressed {
        rule: Ident,
        reason: Option<Ident>,
    },
    Runs(i64, Span),
    Run {
        playbook: Ident,
        args: Option<Vec<Arg>>,
    },
    Task {
        task: Ident,
        state: Ident,
    },
    Action {
        module: Ident,
        function: Ident,
        args: Option<Vec<Arg>>,
        negated: bool,
    },
    Outcome(Ident),
    Revert {
        task: Ident,
        at: Option<Expr>,
    },
}

/// Which states of an alert a rule reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lifecycle {
    /// `on alert`: firing alerts only (the default).
    Firing,
    /// `on resolved alert`: resolved alerts only.
    Resolved,
    /// `on any alert`: both.
    Any,
}

#[derive(Debug, Clone)]
pub struct OnClause {
    pub lifecycle: Lifecycle,
    /// Empty means `*`: any alert name.
    pub names: Vec<StrLit>,
    pub span: Span,
}

/// A string literal without interpolation (alert names, approval groups).
#[derive(Debug, Clone)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct RunClause {
    pub playbook: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

/// `cooldown 15m per alert.service`, `concurrency 1 per alert.service`.
#[derive(Debug, Clone)]
pub struct Limit {
    pub value: Expr,
    pub per: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<PlaybookItem>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum PlaybookItem {
    Timeout(Expr, Span),
    Task(Task),
}

impl PlaybookItem {
    pub fn span(&self) -> Span {
        match self {
            PlaybookItem::Timeout(_, span) => *span,
            PlaybookItem::Task(task) => task.span,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    /// `guard` marks a stdlib parameter whose absence is a guardrail error.
    pub guard: bool,
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Ident,
    pub call: Expr,
    /// Whether the source had a `{ ... }` block (kept so the formatter can keep `{}`).
    pub has_block: bool,
    pub clauses: Vec<TaskClause>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TaskClause {
    After(Vec<Ident>, Span),
    When(Expr, Span),
    Retry {
        attempts: Expr,
        backoff: Option<Expr>,
        span: Span,
    },
    Timeout(Expr, Span),
    OnFailure(FailurePolicy, Span),
    Approval {
        by: Option<StrLit>,
        timeout: Option<Expr>,
        span: Span,
    },
    RevertAfter(Expr, Span),
    RevertOnResolve(Span),
}

impl TaskClause {
    pub fn span(&self) -> Span {
        match self {
            TaskClause::After(_, span)
            | TaskClause::When(_, span)
            | TaskClause::Timeout(_, span)
            | TaskClause::OnFailure(_, span)
            | TaskClause::RevertAfter(_, span)
            | TaskClause::RevertOnResolve(span) => *span,
            TaskClause::Retry { span, .. } | TaskClause::Approval { span, .. } => *span,
        }
    }

    pub fn keyword(&self) -> &'static str {
        match self {
            TaskClause::After(..) => "after",
            TaskClause::When(..) => "when",
            TaskClause::Retry { .. } => "retry",
            TaskClause::Timeout(..) => "timeout",
            TaskClause::OnFailure(..) => "on failure",
            TaskClause::Approval { .. } => "approval",
            TaskClause::RevertAfter(..) => "revert after",
            TaskClause::RevertOnResolve(_) => "revert on resolve",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailurePolicy {
    /// Stop the run; it ends as failed. The default.
    Abort,
    /// Record the failure and go on; the task's output is absent.
    Continue,
    /// Stop the run and hand it to a human.
    Escalate,
}

impl FailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Abort => "abort",
            FailurePolicy::Continue => "continue",
            FailurePolicy::Escalate => "escalate",
        }
    }
}

// ---------------------------------------------------------------- stdlib declarations

#[derive(Debug, Clone)]
pub struct ModuleDecl {
    pub name: Ident,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct RecordDecl {
    pub name: Ident,
    pub fields: Vec<FieldDecl>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct FieldDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct EnumDecl {
    pub name: Ident,
    pub variants: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Query,
    Action,
}

#[derive(Debug, Clone)]
pub struct FnDecl {
    pub effect: Effect,
    pub name: Ident,
    pub params: Vec<Param>,
    pub returns: TypeExpr,
    pub revertible: bool,
    pub span: Span,
}

// ---------------------------------------------------------------- types

#[derive(Debug, Clone)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TypeExprKind {
    Named { module: Option<Ident>, name: Ident },
    List(Box<TypeExpr>),
    Map(Box<TypeExpr>, Box<TypeExpr>),
    Optional(Box<TypeExpr>),
}

// ---------------------------------------------------------------- expressions

#[derive(Debug, Clone)]
pub struct Expr<T = ()> {
    pub kind: ExprKind<T>,
    pub span: Span,
    pub ty: T,
}

#[derive(Debug, Clone)]
pub enum ExprKind<T = ()> {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A string, possibly with `{expr}` interpolations (a raw string has one text part).
    Str(Vec<StrPart<T>>, StrStyle),
    /// Milliseconds.
    Duration(i64),
    /// Percent points: `90%` is `90.0`.
    Percent(f64),
    /// Bytes.
    Size(u64),
    /// Milliseconds since the Unix epoch, UTC.
    Time(i64),
    List(Vec<Expr<T>>),
    Record(Vec<RecordEntry<T>>),
    Name(Ident),
    /// An enum variant, written bare (`critical`) or qualified (`Severity.critical`).
    /// Produced by the checker only: the parser cannot tell a variant from a name.
    Variant(Ident),
    Field(Box<Expr<T>>, Ident),
    Call(Box<Expr<T>>, Vec<Arg<T>>),
    Index(Box<Expr<T>>, Box<Expr<T>>),
    Unary(UnaryOp, Box<Expr<T>>),
    Binary(BinaryOp, Span, Box<Expr<T>>, Box<Expr<T>>),
    Paren(Box<Expr<T>>),
    /// A broken expression; its diagnostic was already reported.
    Error,
}

/// How a string literal was written. Only the formatter (which prints it back as written) and
/// positions inside the literal (PromQL diagnostics) care; its value is the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrStyle {
    /// `"..."`: escapes and `{expr}` interpolations.
    #[default]
    Quoted,
    /// `r"..."`, `r#"..."#`: the text as written, between `r`, `hashes` `#` and `"`.
    Raw { hashes: u32 },
}

#[derive(Debug, Clone)]
pub enum StrPart<T = ()> {
    /// Literal text, escapes already decoded.
    Text(String, Span),
    Interpolation(Expr<T>),
}

#[derive(Debug, Clone)]
pub struct RecordEntry<T = ()> {
    pub key: Ident,
    pub value: Expr<T>,
}

#[derive(Debug, Clone)]
pub struct Arg<T = ()> {
    pub name: Option<Ident>,
    pub value: Expr<T>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Match,
    NotMatch,
    Coalesce,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "not in",
            BinaryOp::Match => "=~",
            BinaryOp::NotMatch => "!~",
            BinaryOp::Coalesce => "??",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }

    /// Binding power, higher binds tighter. Shared by the parser and the formatter so
    /// that the formatter adds exactly the parentheses the parser needs.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::In
            | BinaryOp::NotIn
            | BinaryOp::Match
            | BinaryOp::NotMatch => 4,
            BinaryOp::Coalesce => 5,
            BinaryOp::Add | BinaryOp::Sub => 6,
            BinaryOp::Mul | BinaryOp::Div => 7,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 4
    }
}

impl<T> Expr<T> {
    /// The identifier when this expression is a bare name.
    pub fn as_name(&self) -> Option<&Ident> {
        match &self.kind {
            ExprKind::Name(ident) => Some(ident),
            _ => None,
        }
    }

    /// Strips any number of parentheses.
    pub fn unparen(&self) -> &Expr<T> {
        let mut expr = self;
        while let ExprKind::Paren(inner) = &expr.kind {
            expr = inner;
        }
        expr
    }
}

// ---------------------------------------------------------------- moving nodes

/// Moves every span of a node by a byte distance: used to reuse the parse of an unchanged
/// top-level item whose position in the file changed (`parser::ParseCache`).
pub trait Shift {
    fn shift(&mut self, delta: i64);
}

impl Shift for Span {
    fn shift(&mut self, delta: i64) {
        let move_by = |offset: u32| u32::try_from(i64::from(offset) + delta).unwrap_or(offset);
        self.start = move_by(self.start);
        self.end = move_by(self.end);
    }
}

impl Shift for Ident {
    fn shift(&mut self, delta: i64) {
        self.span.shift(delta);
    }
}

impl Shift for StrLit {
    fn shift(&mut self, delta: i64) {
        self.span.shift(delta);
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(&mut self, delta: i64) {
        if let Some(inner) = self {
            inner.shift(delta);
        }
    }
}

impl<T: Shift> Shift for Vec<T> {
    fn shift(&mut self, delta: i64) {
        for inner in self {
            inner.shift(delta);
        }
    }
}

impl<T: Shift> Shift for Box<T> {
    fn shift(&mut self, delta: i64) {
        (**self).shift(delta);
    }
}

impl Shift for Item {
    fn shift(&mut self, delta: i64) {
        match self {
            Item::Import(import) => {
                import.root.shift(delta);
                import.names.shift(delta);
                import.span.shift(delta);
            }
            Item::Rule(rule) => {
                rule.name.shift(delta);
                rule.clauses.shift(delta);
                rule.span.shift(delta);
            }
            Item::Playbook(playbook) => {
                playbook.name.shift(delta);
                playbook.params.shift(delta);
                playbook.body.shift(delta);
                playbook.span.shift(delta);
            }
            Item::Module(module) => {
                module.name.shift(delta);
                module.span.shift(delta);
            }
            Item::Record(record) => {
                record.name.shift(delta);
                for field in &mut record.fields {
                    field.name.shift(delta);
                    field.ty.shift(delta);
                    field.span.shift(delta);
                }
                record.span.shift(delta);
            }
            Item::Enum(decl) => {
                decl.name.shift(delta);
                decl.variants.shift(delta);
                decl.span.shift(delta);
            }
            Item::Function(function) => {
                function.name.shift(delta);
                function.params.shift(delta);
                function.returns.shift(delta);
                function.span.shift(delta);
            }
            Item::Test(test) => {
                test.name.span.shift(delta);
                test.steps.shift(delta);
                test.span.shift(delta);
            }
            Item::Error(span) => span.shift(delta),
        }
    }
}

impl Shift for TestStep {
    fn shift(&mut self, delta: i64) {
        match self {
            TestStep::Event { at, event, span } => {
                at.shift(delta);
                match event {
                    TestEvent::Fire { name, alert } => {
                        name.shift(delta);
                        alert.shift(delta);
                    }
                    TestEvent::Resolve(name) => name.shift(delta),
                    TestEvent::Decide { task, .. } => task.shift(delta),
                }
                span.shift(delta);
            }
            TestStep::Mock(mock) => {
                mock.module.shift(delta);
                mock.function.shift(delta);
                mock.args.shift(delta);
                for answer in &mut mock.answers {
                    match answer {
                        MockAnswer::Value(expr) => expr.shift(delta),
                        MockAnswer::Fail(why, span) => {
                            if let Some(why) = why {
                                why.span.shift(delta);
                            }
                            span.shift(delta);
                        }
                    }
                }
                mock.span.shift(delta);
            }
            TestStep::Expect(expectation) => {
                match &mut expectation.kind {
                    ExpectKind::NoMatch => {}
                    ExpectKind::Matched(rules) => rules.shift(delta),
                    ExpectKind::Suppressed { rule, reason } => {
                        rule.shift(delta);
                        reason.shift(delta);
                    }
                    ExpectKind::Runs(_, span) => span.shift(delta),
                    ExpectKind::Run { playbook, args } => {
                        playbook.shift(delta);
                        args.shift(delta);
                    }
                    ExpectKind::Task { task, state } => {
                        task.shift(delta);
                        state.shift(delta);
                    }
                    ExpectKind::Action {
                        module,
                        function,
                        args,
                        ..
                    } => {
                        module.shift(delta);
                        function.shift(delta);
                        args.shift(delta);
                    }
                    ExpectKind::Outcome(outcome) => outcome.shift(delta),
                    ExpectKind::Revert { task, at } => {
                        task.shift(delta);
                        at.shift(delta);
                    }
                }
                expectation.span.shift(delta);
            }
        }
    }
}

impl Shift for RuleClause {
    fn shift(&mut self, delta: i64) {
        match self {
            RuleClause::On(on) => {
                on.names.shift(delta);
                on.span.shift(delta);
            }
            RuleClause::When(expr, span) | RuleClause::Priority(expr, span) => {
                expr.shift(delta);
                span.shift(delta);
            }
            RuleClause::Run(run) => {
                run.playbook.shift(delta);
                run.args.shift(delta);
                run.span.shift(delta);
            }
            RuleClause::Cooldown(limit) | RuleClause::Concurrency(limit) => {
                limit.value.shift(delta);
                limit.per.shift(delta);
                limit.span.shift(delta);
            }
            RuleClause::Continue(span) => span.shift(delta),
        }
    }
}

impl Shift for PlaybookItem {
    fn shift(&mut self, delta: i64) {
        match self {
            PlaybookItem::Timeout(expr, span) => {
                expr.shift(delta);
                span.shift(delta);
            }
            PlaybookItem::Task(task) => {
                task.name.shift(delta);
                task.call.shift(delta);
                task.clauses.shift(delta);
                task.span.shift(delta);
            }
        }
    }
}

impl Shift for TaskClause {
    fn shift(&mut self, delta: i64) {
        match self {
            TaskClause::After(names, span) => {
                names.shift(delta);
                span.shift(delta);
            }
            TaskClause::When(expr, span)
            | TaskClause::Timeout(expr, span)
            | TaskClause::RevertAfter(expr, span) => {
                expr.shift(delta);
                span.shift(delta);
            }
            TaskClause::Retry {
                attempts,
                backoff,
                span,
            } => {
                attempts.shift(delta);
                backoff.shift(delta);
                span.shift(delta);
            }
            TaskClause::OnFailure(_, span) | TaskClause::RevertOnResolve(span) => span.shift(delta),
            TaskClause::Approval { by, timeout, span } => {
                by.shift(delta);
                timeout.shift(delta);
                span.shift(delta);
            }
        }
    }
}

impl Shift for Param {
    fn shift(&mut self, delta: i64) {
        self.name.shift(delta);
        self.ty.shift(delta);
        self.default.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for TypeExpr {
    fn shift(&mut self, delta: i64) {
        self.span.shift(delta);
        match &mut self.kind {
            TypeExprKind::Named { module, name } => {
                module.shift(delta);
                name.shift(delta);
            }
            TypeExprKind::List(inner) | TypeExprKind::Optional(inner) => inner.shift(delta),
            TypeExprKind::Map(key, value) => {
                key.shift(delta);
                value.shift(delta);
            }
        }
    }
}

impl Shift for Arg {
    fn shift(&mut self, delta: i64) {
        self.name.shift(delta);
        self.value.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for Expr {
    fn shift(&mut self, delta: i64) {
        self.span.shift(delta);
        match &mut self.kind {
            ExprKind::Str(parts, _) => {
                for part in parts {
                    match part {
                        StrPart::Text(_, span) => span.shift(delta),
                        StrPart::Interpolation(inner) => inner.shift(delta),
                    }
                }
            }
            ExprKind::List(items) => items.shift(delta),
            ExprKind::Record(entries) => {
                for entry in entries {
                    entry.key.shift(delta);
                    entry.value.shift(delta);
                }
            }
            ExprKind::Name(ident) | ExprKind::Variant(ident) => ident.shift(delta),
            ExprKind::Field(base, field) => {
                base.shift(delta);
                field.shift(delta);
            }
            ExprKind::Call(callee, args) => {
                callee.shift(delta);
                args.shift(delta);
            }
            ExprKind::Index(base, index) => {
                base.shift(delta);
                index.shift(delta);
            }
            ExprKind::Unary(_, operand) | ExprKind::Paren(operand) => operand.shift(delta),
            ExprKind::Binary(_, op_span, left, right) => {
                op_span.shift(delta);
                left.shift(delta);
                right.shift(delta);
            }
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Duration(_)
            | ExprKind::Percent(_)
            | ExprKind::Size(_)
            | ExprKind::Time(_)
            | ExprKind::Error => {}
        }
    }
}
