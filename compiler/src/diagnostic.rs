//! Diagnostics are data: one enum per phase, each variant with a stable code, a labelled
//! span, a short lower-case message and a help line.
//!
//! Rendering happens at the edges (miette in the CLI, LSP diagnostics in the language
//! server, JSON/SARIF/GitHub annotations for CI); this module only describes problems.
//! Codes name the problem, never the fix, and never change once published: CI scripts and
//! editor settings key on them.

use crate::FileId;
use crate::ast::Span;
use miette::{Diagnostic as MietteDiagnostic, LabeledSpan};
use thiserror::Error;

/// One finding in one file, plus an optional machine-applicable fix.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: FileId,
    pub error: CompileError,
    /// A replacement that fixes the problem (the `did you mean` suggestions); the language
    /// server offers it as a code action.
    pub suggestion: Option<Suggestion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub span: Span,
    pub replacement: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl Diagnostic {
    pub fn new(file: FileId, error: impl Into<CompileError>) -> Diagnostic {
        Diagnostic {
            file,
            error: error.into(),
            suggestion: None,
        }
    }

    pub fn with_suggestion(mut self, span: Span, replacement: impl Into<String>) -> Diagnostic {
        self.suggestion = Some(Suggestion {
            span,
            replacement: replacement.into(),
        });
        self
    }

    pub fn severity(&self) -> Severity {
        match self.error.severity() {
            Some(miette::Severity::Warning) | Some(miette::Severity::Advice) => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The stable code, such as `ops::type::unknown_field`.
    pub fn code(&self) -> String {
        self.error
            .code()
            .map(|code| code.to_string())
            .unwrap_or_default()
    }

    pub fn message(&self) -> String {
        self.error.to_string()
    }

    pub fn help(&self) -> Option<String> {
        self.error.help().map(|help| help.to_string())
    }

    /// All labelled spans, primary first.
    pub fn labels(&self) -> Vec<LabeledSpan> {
        self.error
            .labels()
            .map(|labels| labels.collect())
            .unwrap_or_default()
    }

    /// The span the diagnostic points at.
    pub fn span(&self) -> Span {
        self.labels()
            .into_iter()
            .find(|label| label.primary())
            .or_else(|| self.labels().into_iter().next())
            .map(|label| Span::new(label.offset(), label.offset() + label.len()))
            .unwrap_or_default()
    }
}

/// Every diagnostic the compiler can produce.
#[derive(Debug, Clone, Error, MietteDiagnostic)]
pub enum CompileError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Syntax(#[from] SyntaxError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Type(#[from] TypeError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lint(#[from] Lint),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Test(#[from] TestError),
}

/// Problems in `test` blocks (docs/language.md, "Tests").
#[derive(Debug, Clone, Error, MietteDiagnostic)]
pub enum TestError {
    #[error("missing field `{field}` in {ty}")]
    #[diagnostic(
        code("ops::test::missing_field"),
        help("a mock answers with the whole output record: add `{field}: {field_type}`")
    )]
    MissingField {
        #[label("this {ty} has no `{field}`")]
        span: Span,
        field: String,
        field_type: String,
        ty: String,
    },
    #[error("unknown {kind} `{name}`")]
    #[diagnostic(code("ops::test::unknown_name"))]
    UnknownName {
        #[label("no {kind} with this name")]
        span: Span,
        kind: String,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("`{name}` is not {expected}")]
    #[diagnostic(code("ops::test::unknown_word"))]
    UnknownWord {
        #[label("expected {expected}")]
        span: Span,
        name: String,
        expected: String,
        #[help]
        help: Option<String>,
    },
    #[error("an event before the one above it: the timeline runs forwards")]
    #[diagnostic(
        code("ops::test::time_goes_back"),
        help("write the events in the order they happen; `at +5m` counts from the test's start")
    )]
    TimeGoesBack {
        #[label("at {at}, before {previous}")]
        span: Span,
        at: String,
        previous: String,
    },
    #[error("test \"{name}\" is defined more than once")]
    #[diagnostic(code("ops::test::duplicate"), help("rename one of them"))]
    Duplicate {
        #[label("defined again here")]
        span: Span,
        #[label("first defined here")]
        first: Span,
        name: String,
    },
    #[error("test \"{name}\" fires no alert")]
    #[diagnostic(
        code("ops::test::no_alert"),
        help("add `fire {{ name: \"...\" }}`: a test follows what the engine does with alerts")
    )]
    NoAlert {
        #[label("no `fire` in this test")]
        span: Span,
        name: String,
    },
}

/// Problems found while reading the text.
#[derive(Debug, Clone, Error, MietteDiagnostic)]
pub enum SyntaxError {
    #[error("unexpected {found}")]
    #[diagnostic(code("ops::syntax::unexpected"))]
    Unexpected {
        #[label("expected {expected}")]
        span: Span,
        found: String,
        expected: String,
        #[help]
        help: Option<String>,
    },
    #[error("unterminated string")]
    #[diagnostic(
        code("ops::syntax::unterminated_string"),
        help("close the string with `\"` on the same line; strings cannot span lines")
    )]
    UnterminatedString {
        #[label("this string is never closed")]
        span: Span,
    },
    #[error("nesting is deeper than {limit} levels")]
    #[diagnostic(
        code("ops::syntax::too_deep"),
        help("split the expression into smaller parts; runbooks never need this much nesting")
    )]
    TooDeep {
        #[label("too deeply nested")]
        span: Span,
        limit: usize,
    },
    #[error("file is larger than {limit} bytes")]
    #[diagnostic(
        code("ops::syntax::file_too_large"),
        help("split the file into several files")
    )]
    FileTooLarge {
        #[label("file starts here")]
        span: Span,
        limit: usize,
    },
    #[error("invalid number: {reason}")]
    #[diagnostic(code("ops::syntax::invalid_number"))]
    InvalidNumber {
        #[label("this number")]
        span: Span,
        reason: String,
        #[help]
        help: Option<String>,
    },
    #[error("invalid time: {reason}")]
    #[diagnostic(
        code("ops::syntax::invalid_time"),
        help("write times in RFC 3339 form, such as 2026-11-27T12:00:00Z")
    )]
    InvalidTime {
        #[label("this time")]
        span: Span,
        reason: String,
    },
    #[error("unknown escape sequence `{sequence}`")]
    #[diagnostic(
        code("ops::syntax::invalid_escape"),
        help("valid escapes are \\n, \\t, \\\\, \\\", \\{{ and \\}}")
    )]
    InvalidEscape {
        #[label("unknown escape")]
        span: Span,
        sequence: String,
    },
    #[error("`{clause}` is given more than once")]
    #[diagnostic(
        code("ops::syntax::duplicate_clause"),
        help("keep one `{clause}` clause")
    )]
    DuplicateClause {
        #[label("repeated here")]
        span: Span,
        #[label("first given here")]
        first: Span,
        clause: String,
    },
    #[error("{item} `{name}` has no `{clause}` clause")]
    #[diagnostic(code("ops::syntax::missing_clause"))]
    MissingClause {
        #[label("missing `{clause}`")]
        span: Span,
        item: String,
        name: String,
        clause: String,
        #[help]
        help: Option<String>,
    },
    #[error("{kind} declarations are only allowed in the standard library")]
    #[diagnostic(
        code("ops::syntax::declaration_outside_stdlib"),
        help(
            "runbook files hold imports, rules and playbooks; types and functions come from `std`"
        )
    )]
    DeclarationOutsideStdlib {
        #[label("declared here")]
        span: Span,
        kind: String,
    },
}

/// Problems with names: what does this refer to?
#[derive(Debug, Clone, Error, MietteDiagnostic)]
pub enum ResolveError {
    #[error("unknown module `{name}`")]
    #[diagnostic(code("ops::resolve::unknown_module"))]
    UnknownModule {
        #[label("not a module of std")]
        span: Span,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("module `{module}` is not imported")]
    #[diagnostic(
        code("ops::resolve::module_not_imported"),
        help("add `import std.{module}` at the top of the file")
    )]
    ModuleNotImported {
        #[label("used here")]
        span: Span,
        module: String,
    },
    #[error("unknown function `{module}.{name}`")]
    #[diagnostic(code("ops::resolve::unknown_function"))]
    UnknownFunction {
        #[label("not declared in `std.{module}`")]
        span: Span,
        module: String,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("unknown playbook `{name}`")]
    #[diagnostic(code("ops::resolve::unknown_playbook"))]
    UnknownPlaybook {
        #[label("no playbook with this name")]
        span: Span,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("unknown name `{name}`")]
    #[diagnostic(code("ops::resolve::unknown_name"))]
    UnknownName {
        #[label("not defined here")]
        span: Span,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("unknown task `{name}`")]
    #[diagnostic(code("ops::resolve::unknown_task"))]
    UnknownTask {
        #[label("no task with this name in the playbook")]
        span: Span,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("unknown type `{name}`")]
    #[diagnostic(code("ops::resolve::unknown_type"))]
    UnknownType {
        #[label("not a type")]
        span: Span,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("`{name}` is not a variant of `{enum_name}`")]
    #[diagnostic(code("ops::resolve::unknown_variant"))]
    UnknownVariant {
        #[label("unknown variant")]
        span: Span,
        name: String,
        enum_name: String,
        #[help]
        help: Option<String>,
    },
    #[error("{kind} `{name}` is defined more than once")]
    #[diagnostic(code("ops::resolve::duplicate_definition"))]
    Duplicate {
        #[label("defined again here")]
        span: Span,
        #[label("first defined here")]
        first: Span,
        kind: String,
        name: String,
        #[help]
        help: Option<String>,
    },
    #[error("tasks depend on each other in a cycle: {path}")]
    #[diagnostic(
        code("ops::graph::cycle"),
        help(
            "a playbook is a DAG: remove one of the `after` clauses or data references on the cycle"
        )
    )]
    Cycle {
        #[label("this task depends on itself through the cycle")]
        span: Span,
        path: String,
        #[label(collection, "on the cycle")]
        others: Vec<LabeledSpan>,
    },
}

/// Problems with types, units, arguments and effects.
#[derive(Debug, Clone, Error, MietteDiagnostic)]
pub enum TypeError {
    #[error("a URL must start with its scheme and host written here")]
    #[diagnostic(code("ops::type::url_origin"))]
    UrlOrigin {
        #[label("{found}")]
        span: Span,
        found: String,
        #[help]
        help: Option<String>,
    },
    #[error("a URL must not carry a user name or password")]
    #[diagnostic(
        code("ops::type::url_userinfo"),
        help(
            "send credentials as a header: `headers: {{\"Authorization\": ...}}` or `[http.headers]` in medic.toml"
        )
    )]
    UrlUserinfo {
        #[label("`@` in the host part")]
        span: Span,
    },
    #[error("expected {expected}, found {found}")]
    #[diagnostic(code("ops::type::mismatch"))]
    Mismatch {
        #[label("this is {found}")]
        span: Span,
        expected: String,
        found: String,
        #[help]
        help: Option<String>,
    },
    #[error("cannot {action} {left} and {right}")]
    #[diagnostic(code("ops::type::unit_mismatch"))]
    UnitMismatch {
        #[label("{left} {op} {right}")]
        span: Span,
        action: String,
        op: String,
        left: String,
        right: String,
        #[help]
        help: Option<String>,
    },
    #[error("alert value is compared with {unit} here but with {first_unit} earlier")]
    #[diagnostic(
        code("ops::type::inconsistent_unit"),
        help("an alert value has one unit; compare it with values of one unit in each rule")
    )]
    InconsistentUnit {
        #[label("compared with {unit}")]
        span: Span,
        #[label("compared with {first_unit} here")]
        first: Span,
        unit: String,
        first_unit: String,
    },
    #[error("{ty} has no field `{field}`")]
    #[diagnostic(code("ops::type::unknown_field"))]
    UnknownField {
        #[label("unknown field")]
        span: Span,
        field: String,
        ty: String,
        #[help]
        help: Option<String>,
    },
    #[error("`{function}` has no parameter `{name}`")]
    #[diagnostic(code("ops::type::unknown_argument"))]
    UnknownArgument {
        #[label("unknown parameter")]
        span: Span,
        name: String,
        function: String,
        #[help]
        help: Option<String>,
    },
    #[error("missing argument `{name}` in call to `{function}`")]
    #[diagnostic(
        code("ops::type::missing_argument"),
        help("`{function}` needs `{name}: {ty}`")
    )]
    MissingArgument {
        #[label("`{name}` is not given")]
        span: Span,
        name: String,
        function: String,
        ty: String,
    },
    #[error("argument `{name}` is given more than once")]
    #[diagnostic(code("ops::type::duplicate_argument"), help("remove one of them"))]
    DuplicateArgument {
        #[label("given again here")]
        span: Span,
        #[label("first given here")]
        first: Span,
        name: String,
    },
    #[error("`{function}` takes at most {max} arguments")]
    #[diagnostic(
        code("ops::type::too_many_arguments"),
        help("remove the extra arguments")
    )]
    TooManyArguments {
        #[label("extra argument")]
        span: Span,
        function: String,
        max: usize,
    },
    #[error("positional argument after a named one")]
    #[diagnostic(
        code("ops::type::positional_after_named"),
        help("name this argument, or move it before the named ones")
    )]
    PositionalAfterNamed {
        #[label("positional argument")]
        span: Span,
    },
    #[error("{what} may be absent")]
    #[diagnostic(code("ops::type::unhandled_optional"))]
    UnhandledOptional {
        #[label("this is {ty}")]
        span: Span,
        what: String,
        ty: String,
        #[help]
        help: Option<String>,
    },
    #[error("{ty} values cannot be compared with `{op}`")]
    #[diagnostic(
        code("ops::type::not_comparable"),
        help("only numbers, units, times, strings and enums are ordered")
    )]
    NotComparable {
        #[label("not ordered")]
        span: Span,
        ty: String,
        op: String,
    },
    #[error("`{op}` is not defined for {left} and {right}")]
    #[diagnostic(code("ops::type::bad_operands"))]
    BadOperands {
        #[label("{left} {op} {right}")]
        span: Span,
        op: String,
        left: String,
        right: String,
        #[help]
        help: Option<String>,
    },
    #[error("{ty} cannot be indexed")]
    #[diagnostic(
        code("ops::type::not_indexable"),
        help("only maps and lists can be indexed with `[...]`")
    )]
    NotIndexable {
        #[label("indexed here")]
        span: Span,
        ty: String,
    },
    #[error("default value must be a constant")]
    #[diagnostic(
        code("ops::type::non_constant_default"),
        help("use a literal; compute other values in the rule that runs the playbook")
    )]
    NonConstantDefault {
        #[label("not a constant")]
        span: Span,
    },
    #[error("a task must call a standard library function")]
    #[diagnostic(
        code("ops::type::task_not_call"),
        help("write `task name = module.function(args)`")
    )]
    TaskNotCall {
        #[label("not a function call")]
        span: Span,
    },
    #[error("`{function}` can only be called as a task")]
    #[diagnostic(
        code("ops::type::call_outside_task"),
        help(
            "declare `task name = {function}(...)` and use `name` here, so the call is part of the plan"
        )
    )]
    CallOutsideTask {
        #[label("called here")]
        span: Span,
        function: String,
    },
    #[error("playbook `{name}` cannot be called from a task")]
    #[diagnostic(
        code("ops::type::playbook_call"),
        help(
            "rules run playbooks; a task calls a standard library function such as `http.get(...)`"
        )
    )]
    PlaybookCall {
        #[label("a playbook, not a function")]
        span: Span,
        name: String,
    },
    #[error("this is not a function")]
    #[diagnostic(
        code("ops::type::not_callable"),
        help("calls are written `module.function(args)`")
    )]
    NotCallable {
        #[label("not callable")]
        span: Span,
    },
    #[error("invalid regular expression: {reason}")]
    #[diagnostic(
        code("ops::type::invalid_regex"),
        help("patterns use Rust regex syntax (RE2 flavour)")
    )]
    InvalidRegex {
        #[label("this pattern")]
        span: Span,
        reason: String,
    },
    /// A PromQL literal that promql-parser refuses; the span points inside the literal.
    #[error("invalid PromQL: {reason}")]
    #[diagnostic(
        code("ops::promql::syntax"),
        help("the query is checked with promql-parser, which follows Prometheus's grammar")
    )]
    PromqlSyntax {
        #[label("{place}")]
        span: Span,
        reason: String,
        /// What the label says: where the problem was found.
        place: String,
    },
    /// A `where:` key that Prometheus would not accept as a label name.
    #[error("`{name}` is not a Prometheus label name")]
    #[diagnostic(
        code("ops::promql::label_name"),
        help("label names are letters, digits and `_`, not starting with a digit")
    )]
    PromqlLabelName {
        #[label("not a label name")]
        span: Span,
        name: String,
    },
    #[error("{what} must be {bound}")]
    #[diagnostic(code("ops::type::out_of_range"))]
    OutOfRange {
        #[label("out of range")]
        span: Span,
        what: String,
        bound: String,
        #[help]
        help: Option<String>,
    },
}

/// Missing or violated guardrails on actions.
#[derive(Debug, Clone, Error, MietteDiagnostic)]
pub enum GuardError {
    #[error("rule `{rule}` runs actions without a cooldown or concurrency limit")]
    #[diagnostic(
        code("ops::guard::missing_cooldown"),
        help(
            "add `cooldown 15m per alert.service` (or `concurrency 1 per ...`) so a flapping alert cannot repeat the action"
        )
    )]
    MissingCooldown {
        #[label("this rule runs `{playbook}`")]
        span: Span,
        rule: String,
        playbook: String,
        #[label("which performs this action")]
        action: Span,
    },
    #[error("action `{function}` needs a `{param}` limit")]
    #[diagnostic(
        code("ops::guard::missing_limit"),
        help("add `{param}: ...` to bound what the action may do")
    )]
    MissingLimit {
        #[label("no `{param}` given")]
        span: Span,
        function: String,
        param: String,
    },
    #[error("`{function}` cannot be reverted")]
    #[diagnostic(
        code("ops::guard::not_revertible"),
        help("only revertible actions (such as k8s.scale) take `revert`; remove the clause")
    )]
    NotRevertible {
        #[label("`revert` on a {kind} that cannot be undone")]
        span: Span,
        function: String,
        kind: String,
    },
    #[error("{what} {value} exceeds the limit {limit}")]
    #[diagnostic(
        code("ops::guard::exceeds_limit"),
        help("raise the limit or lower the value")
    )]
    ExceedsLimit {
        #[label("{what} {value}")]
        span: Span,
        #[label("limit {limit}")]
        limit_span: Span,
        what: String,
        value: String,
        limit: String,
    },
    #[error("`approval` on query `{function}` has no effect")]
    #[diagnostic(
        code("ops::guard::approval_on_query"),
        help("approval gates guard actions; queries only read, so remove the clause")
    )]
    ApprovalOnQuery {
        #[label("this task only reads")]
        span: Span,
        function: String,
    },
}

/// Warnings: the program is valid but probably not what was meant.
#[derive(Debug, Clone, Error, MietteDiagnostic)]
pub enum Lint {
    #[error("a value is spliced into a PromQL query")]
    #[diagnostic(
        code("ops::lint::promql_splice"),
        severity(Warning),
        help(
            "pass alert data as label matchers, which are added to every selector and escaped: `prom.query(r#\"up\"#, where: {{instance: alert.instance}})`"
        )
    )]
    PromqlSplice {
        #[label("interpolated into the query text, where it can change the query")]
        span: Span,
    },
    #[error("task `{name}` is never used")]
    #[diagnostic(
        code("ops::lint::unused_task"),
        severity(Warning),
        help(
            "this playbook acts, but no task reads this check: use it (`when`, `after`), or remove the task"
        )
    )]
    UnusedTask {
        #[label("query result never read")]
        span: Span,
        name: String,
    },
    #[error("parameter `{name}` is never used")]
    #[diagnostic(
        code("ops::lint::unused_parameter"),
        severity(Warning),
        help("remove it, or use it in a task")
    )]
    UnusedParameter {
        #[label("unused")]
        span: Span,
        name: String,
    },
    #[error("module `{name}` is imported but never used")]
    #[diagnostic(
        code("ops::lint::unused_import"),
        severity(Warning),
        help("remove it from the import")
    )]
    UnusedImport {
        #[label("unused import")]
        span: Span,
        name: String,
    },
    #[error("rule `{rule}` can never match")]
    #[diagnostic(code("ops::lint::never_matches"), severity(Warning))]
    NeverMatches {
        #[label("{reason}")]
        span: Span,
        rule: String,
        reason: String,
        #[help]
        help: Option<String>,
    },
    #[error("rule `{rule}` is shadowed by rule `{by}`")]
    #[diagnostic(
        code("ops::lint::shadowed_rule"),
        severity(Warning),
        help(
            "every alert this rule matches is taken first by `{by}`; add `continue` to `{by}`, give this rule a higher priority, or remove it"
        )
    )]
    ShadowedRule {
        #[label("never reached")]
        span: Span,
        #[label("matches first")]
        by_span: Span,
        rule: String,
        by: String,
    },
    #[error("condition is always {value}")]
    #[diagnostic(
        code("ops::lint::constant_condition"),
        severity(Warning),
        help("remove the `when` clause, or test something that can vary")
    )]
    ConstantCondition {
        #[label("always {value}")]
        span: Span,
        value: bool,
    },
    #[error("task timeout {task} is longer than the playbook timeout {playbook}")]
    #[diagnostic(
        code("ops::lint::timeout_exceeds_playbook"),
        severity(Warning),
        help("the playbook timeout ends the run first; lower the task timeout")
    )]
    TimeoutExceedsPlaybook {
        #[label("task timeout")]
        span: Span,
        #[label("playbook timeout")]
        playbook_span: Span,
        task: String,
        playbook: String,
    },
}

/// A diagnostic together with the text of its file, as renderers (miette's graphical
/// handler, for one) need it.
#[derive(Debug)]
pub struct WithSource<'a> {
    pub diagnostic: &'a Diagnostic,
    pub source: miette::NamedSource<String>,
}

impl<'a> WithSource<'a> {
    pub fn new(diagnostic: &'a Diagnostic, name: &str, text: &str) -> WithSource<'a> {
        WithSource {
            diagnostic,
            source: miette::NamedSource::new(name, text.to_string()),
        }
    }
}

impl std::fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.diagnostic.error, f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl MietteDiagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.diagnostic.error.code()
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.diagnostic.error.severity()
    }

    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.diagnostic.error.help()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.diagnostic.error.labels()
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
}
