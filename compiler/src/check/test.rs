//! `test` blocks: the timeline's alerts against `alert.Alert` (every field optional), mocks
//! against their function's output record (every field that is not optional required),
//! and expectations against the rules, playbooks and tasks they name (docs/notes/026).

use super::*;
use crate::diagnostic::TestError;

use crate::plan::suite::{RUN_OUTCOMES, SUPPRESSION_REASONS, TASK_STATES};

impl<'a> Checker<'a> {
    /// Checks every test of the program once rules and playbooks are known.
    pub(super) fn tests(&mut self, program: &mut typed::Program) {
        let files = self.files;
        let mut seen: BTreeMap<String, (FileId, Span)> = BTreeMap::new();
        for (index, parsed) in files.iter().enumerate() {
            if parsed.is_stdlib {
                continue;
            }
            self.file = FileId(index as u32);
            for item in &parsed.ast.items {
                let ast::Item::Test(test) = item else {
                    continue;
                };
                if let Some((file, first)) = seen.get(&test.name.value)
                    && *file == self.file
                {
                    self.report(TestError::Duplicate {
                        span: test.name.span,
                        first: *first,
                        name: test.name.value.clone(),
                    });
                }
                seen.insert(test.name.value.clone(), (self.file, test.name.span));
                let typed = self.test(test, program);
                program.tests.push(typed);
            }
        }
    }

    fn test(&mut self, test: &ast::Test, program: &typed::Program) -> typed::Test {
        let scope = Scope::default();
        let mut events = Vec::new();
        let mut mocks = Vec::new();
        let mut expects = Vec::new();
        let mut alerts: BTreeSet<String> = BTreeSet::new();
        let mut now: i64 = 0;
        let mut fired = 0usize;
        for step in &test.steps {
            match step {
                ast::TestStep::Event { at, event, span } => {
                    if let Some(at) = at
                        && let Some(offset) = self.offset(at, &scope)
                    {
                        if offset < now {
                            self.report(TestError::TimeGoesBack {
                                span: at.span,
                                at: render_ms(offset),
                                previous: render_ms(now),
                            });
                        } else {
                            now = offset;
                        }
                    }
                    let kind = match event {
                        ast::TestEvent::Fire { name, alert } => {
                            fired += 1;
                            let again = match (name, &alert.kind) {
                                (None, ExprKind::Name(ident)) => Some(ident),
                                _ => None,
                            };
                            if let Some(ident) = again {
                                if !alerts.contains(&ident.name) {
                                    self.unknown(ident, "alert", alerts.iter());
                                    continue;
                                }
                                let fields = typed_error(ident.span);
                                typed::TestEventKind::Fire {
                                    alert: ident.name.clone(),
                                    fields,
                                }
                            } else {
                                let ty = self.env.alert_type();
                                let fields = self.value(alert, &ty, false, &scope);
                                let alert = match name {
                                    Some(name) => name.name.clone(),
                                    None => format!("alert {fired}"),
                                };
                                alerts.insert(alert.clone());
                                typed::TestEventKind::Fire { alert, fields }
                            }
                        }
                        ast::TestEvent::Resolve(ident) => {
                            if !alerts.contains(&ident.name) {
                                self.unknown(ident, "alert", alerts.iter());
                                continue;
                            }
                            typed::TestEventKind::Resolve {
                                alert: ident.name.clone(),
                            }
                        }
                        ast::TestEvent::Decide { task, approve } => {
                            let with_approval = program
                                .playbooks
                                .iter()
                                .flat_map(|playbook| {
                                    playbook
                                        .tasks
                                        .iter()
                                        .filter(|task| task.approval.is_some())
                                        .map(|task| (playbook.name.as_str(), task.name.as_str()))
                                })
                                .collect::<Vec<_>>();
                            match with_approval.iter().find(|(_, name)| *name == task.name) {
                                Some((playbook, _)) => self.reference(
                                    task.span,
                                    Symbol::Task {
                                        playbook: (*playbook).to_string(),
                                        task: task.name.clone(),
                                    },
                                    false,
                                ),
                                None => {
                                    self.unknown(
                                        task,
                                        "task with an approval",
                                        with_approval.iter().map(|(_, name)| *name),
                                    );
                                    continue;
                                }
                            }
                            typed::TestEventKind::Decide {
                                task: task.name.clone(),
                                approve: *approve,
                            }
                        }
                    };
                    events.push(typed::TestEvent {
                        at: now,
                        kind,
                        span: *span,
                    });
                }
                ast::TestStep::Mock(mock) => {
                    if let Some(typed) = self.mock(mock, &scope) {
                        mocks.push(typed);
                    }
                }
                ast::TestStep::Expect(expectation) => {
                    if let Some(kind) = self.expectation(&expectation.kind, program, &scope) {
                        expects.push(typed::Expect {
                            kind,
                            span: expectation.span,
                        });
                    }
                }
            }
        }
        if fired == 0 {
            self.report(TestError::NoAlert {
                span: test.name.span,
                name: test.name.value.clone(),
            });
        }
        typed::Test {
            name: test.name.value.clone(),
            file: self.file,
            span: test.span,
            name_span: test.name.span,
            events,
            mocks,
            expects,
        }
    }

    /// `+5m`: a Duration literal, zero or more.
    fn offset(&mut self, expr: &ast::Expr, scope: &Scope) -> Option<i64> {
        let typed = self.expr(expr, scope, Some(&Type::Duration));
        match typed.unparen().kind {
            ExprKind::Duration(millis) if millis >= 0 => Some(millis),
            ExprKind::Error => None,
            _ => {
                self.report(TypeError::Mismatch {
                    span: typed.span,
                    expected: "a Duration literal such as +5m".into(),
                    found: self.env.describe(&typed.ty),
                    help: Some("a test's times count from its start".into()),
                });
                None
            }
        }
    }

    fn unknown<'n>(
        &mut self,
        ident: &ast::Ident,
        kind: &str,
        candidates: impl IntoIterator<Item = &'n (impl AsRef<str> + 'n + ?Sized)>,
    ) {
        let candidates: Vec<String> = candidates
            .into_iter()
            .map(|candidate| candidate.as_ref().to_string())
            .collect();
        let suggestion = suggest(&ident.name, candidates.iter().map(String::as_str));
        let help = did_you_mean(&suggestion).or_else(|| {
            (!candidates.is_empty()).then(|| format!("known: {}", candidates.join(", ")))
        });
        self.report_with_fix(
            TestError::UnknownName {
                span: ident.span,
                kind: kind.to_string(),
                name: ident.name.clone(),
                help,
            },
            ident.span,
            &suggestion,
        );
    }

    fn word(&mut self, ident: &ast::Ident, expected: &str, words: &[&str]) -> Option<String> {
        if words.contains(&ident.name.as_str()) {
            return Some(ident.name.clone());
        }
        let suggestion = suggest(&ident.name, words.iter().copied());
        let help =
            did_you_mean(&suggestion).or_else(|| Some(format!("one of {}", words.join(", "))));
        self.report_with_fix(
            TestError::UnknownWord {
                span: ident.span,
                name: ident.name.clone(),
                expected: expected.to_string(),
                help,
            },
            ident.span,
            &suggestion,
        );
        None
    }

    /// A standard library function named in a test (no import needed: tests do not call).
    fn function_path(&mut self, module: &ast::Ident, function: &ast::Ident) -> Option<FnDef> {
        let Some(module_def) = self.env.modules.get(&module.name).cloned() else {
            let suggestion = suggest(&module.name, self.env.modules.keys().map(String::as_str));
            self.report_with_fix(
                ResolveError::UnknownModule {
                    span: module.span,
                    name: module.name.clone(),
                    help: did_you_mean(&suggestion),
                },
                module.span,
                &suggestion,
            );
            return None;
        };
        self.reference(module.span, Symbol::Module(module.name.clone()), false);
        let Some(id) = module_def.functions.get(&function.name).copied() else {
            let suggestion = suggest(
                &function.name,
                module_def.functions.keys().map(String::as_str),
            );
            self.report_with_fix(
                ResolveError::UnknownFunction {
                    span: function.span,
                    module: module.name.clone(),
                    name: function.name.clone(),
                    help: did_you_mean(&suggestion),
                },
                function.span,
                &suggestion,
            );
            return None;
        };
        self.reference(function.span, Symbol::Function(id), false);
        self.env.function(id).cloned()
    }

    fn mock(&mut self, mock: &ast::Mock, scope: &Scope) -> Option<typed::Mock> {
        let def = self.function_path(&mock.module, &mock.function)?;
        let args = match &mock.args {
            Some(args) => self.partial_args(&def.qualified_name(), &def.params, args, scope),
            None => Vec::new(),
        };
        let answers = mock
            .answers
            .iter()
            .map(|answer| match answer {
                ast::MockAnswer::Value(expr) => {
                    typed::MockAnswer::Value(self.value(expr, &def.returns, true, scope))
                }
                ast::MockAnswer::Fail(why, _) => typed::MockAnswer::Fail(
                    why.as_ref()
                        .map_or_else(|| "the mock fails".to_string(), |why| why.value.clone()),
                ),
            })
            .collect();
        Some(typed::Mock {
            function: def.qualified_name(),
            args,
            answers,
            returns: def.returns.clone(),
            span: mock.span,
        })
    }

    fn expectation(
        &mut self,
        kind: &ast::ExpectKind,
        program: &typed::Program,
        scope: &Scope,
    ) -> Option<typed::ExpectKind> {
        let rule = |checker: &mut Checker<'a>, ident: &ast::Ident| -> Option<String> {
            if program.rules.iter().any(|rule| rule.name == ident.name) {
                checker.reference(ident.span, Symbol::Rule(ident.name.clone()), false);
                Some(ident.name.clone())
            } else {
                checker.unknown(
                    ident,
                    "rule",
                    program.rules.iter().map(|rule| rule.name.as_str()),
                );
                None
            }
        };
        let task = |checker: &mut Checker<'a>,
                    ident: &ast::Ident,
                    filter: &dyn Fn(&typed::Task) -> bool,
                    kind: &str|
         -> Option<String> {
            let tasks: Vec<(&str, &str)> = program
                .playbooks
                .iter()
                .flat_map(|playbook| {
                    playbook
                        .tasks
                        .iter()
                        .filter(|task| filter(task))
                        .map(|task| (playbook.name.as_str(), task.name.as_str()))
                })
                .collect();
            match tasks.iter().find(|(_, name)| *name == ident.name) {
                Some((playbook, _)) => {
                    checker.reference(
                        ident.span,
                        Symbol::Task {
                            playbook: (*playbook).to_string(),
                            task: ident.name.clone(),
                        },
                        false,
                    );
                    Some(ident.name.clone())
                }
                None => {
                    checker.unknown(ident, kind, tasks.iter().map(|(_, name)| *name));
                    None
                }
            }
        };
        Some(match kind {
            ast::ExpectKind::NoMatch => typed::ExpectKind::NoMatch,
            ast::ExpectKind::Matched(rules) => {
                let mut names = Vec::new();
                for ident in rules {
                    names.push(rule(self, ident)?);
                }
                typed::ExpectKind::Matched(names)
            }
            ast::ExpectKind::Suppressed { rule: name, reason } => {
                let name = rule(self, name)?;
                let reason = match reason {
                    Some(reason) => Some(self.word(
                        reason,
                        "a reason a rule is suppressed",
                        SUPPRESSION_REASONS,
                    )?),
                    None => None,
                };
                typed::ExpectKind::Suppressed { rule: name, reason }
            }
            ast::ExpectKind::Runs(count, span) => {
                if *count < 0 {
                    self.report(TypeError::OutOfRange {
                        span: *span,
                        what: "a number of runs".into(),
                        bound: "zero or more".into(),
                        help: None,
                    });
                    return None;
                }
                typed::ExpectKind::Runs(*count)
            }
            ast::ExpectKind::Run { playbook, args } => {
                let Some(sig) = self.playbook_sigs.get(&playbook.name).cloned() else {
                    self.unknown(
                        playbook,
                        "playbook",
                        self.playbook_sigs
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .iter(),
                    );
                    return None;
                };
                self.reference(
                    playbook.span,
                    Symbol::Playbook(playbook.name.clone()),
                    false,
                );
                let args = match args {
                    Some(args) => self.partial_args(&playbook.name, &sig.params, args, scope),
                    None => Vec::new(),
                };
                typed::ExpectKind::Run {
                    playbook: playbook.name.clone(),
                    args,
                }
            }
            ast::ExpectKind::Task { task: name, state } => {
                let name = task(self, name, &|_| true, "task")?;
                let state = self.word(state, "a task state", TASK_STATES)?;
                typed::ExpectKind::Task { task: name, state }
            }
            ast::ExpectKind::Action {
                module,
                function,
                args,
                negated,
            } => {
                let def = self.function_path(module, function)?;
                let args = match args {
                    Some(args) => {
                        self.partial_args(&def.qualified_name(), &def.params, args, scope)
                    }
                    None => Vec::new(),
                };
                typed::ExpectKind::Action {
                    function: def.qualified_name(),
                    args,
                    negated: *negated,
                }
            }
            ast::ExpectKind::Outcome(outcome) => {
                typed::ExpectKind::Outcome(self.word(outcome, "a run outcome", RUN_OUTCOMES)?)
            }
            ast::ExpectKind::Revert { task: name, at } => {
                let name = task(
                    self,
                    name,
                    &|task| task.revert_after.is_some() || task.revert_on_resolve,
                    "task with a revert",
                )?;
                let at = match at {
                    Some(at) => Some(self.offset(at, scope)?),
                    None => None,
                };
                typed::ExpectKind::Revert { task: name, at }
            }
        })
    }

    /// The arguments a test lists, checked against the parameters; the others are not
    /// constrained.
    fn partial_args(
        &mut self,
        function: &str,
        params: &[ParamDef],
        args: &[ast::Arg],
        scope: &Scope,
    ) -> Vec<(String, typed::Expr)> {
        let mut result: Vec<(String, typed::Expr)> = Vec::new();
        for (position, arg) in args.iter().enumerate() {
            let param = match &arg.name {
                Some(name) => match params.iter().find(|param| param.name == name.name) {
                    Some(param) => param,
                    None => {
                        let suggestion =
                            suggest(&name.name, params.iter().map(|param| param.name.as_str()));
                        self.report_with_fix(
                            TypeError::UnknownArgument {
                                span: name.span,
                                name: name.name.clone(),
                                function: function.to_string(),
                                help: did_you_mean(&suggestion),
                            },
                            name.span,
                            &suggestion,
                        );
                        continue;
                    }
                },
                None => match params.get(position) {
                    Some(param) => param,
                    None => {
                        self.report(TypeError::TooManyArguments {
                            span: arg.span,
                            function: function.to_string(),
                            max: params.len(),
                        });
                        continue;
                    }
                },
            };
            if let Some((_, first)) = result.iter().find(|(name, _)| *name == param.name) {
                self.report(TypeError::DuplicateArgument {
                    span: arg.span,
                    first: first.span,
                    name: param.name.clone(),
                });
                continue;
            }
            let value = self.value(&arg.value, &param.ty, true, scope);
            result.push((param.name.clone(), value));
        }
        result
    }

    /// A constant value of type `ty`. Record literals are checked field by field against
    /// the record: unknown fields are errors, and so are missing fields that are not
    /// optional when `complete` (a mock's answer), never for an alert.
    fn value(&mut self, expr: &ast::Expr, ty: &Type, complete: bool, scope: &Scope) -> typed::Expr {
        let want = ty.unwrap_optional();
        match (&expr.unparen().kind, want) {
            (ExprKind::Record(entries), Type::Record(id)) => {
                let Some(record) = self.env.record(*id).cloned() else {
                    return typed_error(expr.span);
                };
                let mut typed_entries = Vec::new();
                let mut misspelt = false;
                for entry in entries {
                    let Some(field) = record.field(&entry.key.name) else {
                        misspelt = true;
                        let suggestion = suggest(
                            &entry.key.name,
                            record.fields.iter().map(|field| field.name.as_str()),
                        );
                        self.report_with_fix(
                            TypeError::UnknownField {
                                span: entry.key.span,
                                field: entry.key.name.clone(),
                                ty: record.name.clone(),
                                help: did_you_mean(&suggestion),
                            },
                            entry.key.span,
                            &suggestion,
                        );
                        continue;
                    };
                    if typed_entries
                        .iter()
                        .any(|typed: &ast::RecordEntry<Type>| typed.key.name == entry.key.name)
                    {
                        self.report(ResolveError::Duplicate {
                            span: entry.key.span,
                            first: entry.key.span,
                            kind: "field".into(),
                            name: entry.key.name.clone(),
                            help: Some("remove one of them".into()),
                        });
                        continue;
                    }
                    self.reference(
                        entry.key.span,
                        Symbol::Field(*id, field.name.clone()),
                        false,
                    );
                    let value = self.value(&entry.value, &field.ty, complete, scope);
                    typed_entries.push(ast::RecordEntry {
                        key: entry.key.clone(),
                        value,
                    });
                }
                // A misspelt field is most likely the one missing: it is reported once.
                if complete && !misspelt {
                    for field in &record.fields {
                        if !field.ty.is_optional()
                            && !entries.iter().any(|entry| entry.key.name == field.name)
                        {
                            self.report(TestError::MissingField {
                                span: expr.span,
                                field: field.name.clone(),
                                field_type: self.env.type_name(&field.ty),
                                ty: record.name.clone(),
                            });
                        }
                    }
                }
                ast::Expr {
                    kind: ExprKind::Record(typed_entries),
                    span: expr.span,
                    ty: want.clone(),
                }
            }
            (ExprKind::List(elements), Type::List(element)) => {
                let typed = elements
                    .iter()
                    .map(|value| self.value(value, element, complete, scope))
                    .collect();
                ast::Expr {
                    kind: ExprKind::List(typed),
                    span: expr.span,
                    ty: want.clone(),
                }
            }
            (_, Type::Quantity) => {
                let typed = self.expr(expr, scope, None);
                if !matches!(
                    typed.ty,
                    Type::Int
                        | Type::Float
                        | Type::Duration
                        | Type::Percent
                        | Type::Size
                        | Type::Error
                ) {
                    self.report(TypeError::Mismatch {
                        span: typed.span,
                        expected: "a number, Duration, Percent or Size".into(),
                        found: self.env.describe(&typed.ty),
                        help: Some(
                            "an alert's value carries its unit: `95%`, `750ms`, `12`".into(),
                        ),
                    });
                }
                typed
            }
            _ => {
                let typed = self.expr(expr, scope, Some(ty));
                if !is_constant(expr) {
                    self.report(TypeError::Mismatch {
                        span: typed.span,
                        expected: "a constant".into(),
                        found: "an expression".into(),
                        help: Some("a test gives values as literals".into()),
                    });
                    return typed_error(expr.span);
                }
                self.expect(&typed, ty);
                typed
            }
        }
    }
}

/// `90000` as `+1m30s`, for messages about the timeline.
fn render_ms(millis: i64) -> String {
    let seconds = millis / 1000;
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = String::from("+");
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || text == "+" {
        text.push_str(&format!("{seconds}s"));
    }
    text
}
