//! Rules: their clauses, limit keys, guardrails and the `run` call of a playbook.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn rule(
        &mut self,
        rule: &ast::Rule,
        imports: BTreeSet<String>,
        program: &typed::Program,
    ) -> Option<typed::Rule> {
        self.used.clear();
        self.current_playbook.clear();
        self.reference(rule.name.span, Symbol::Rule(rule.name.name.clone()), true);
        self.quantity_unit = None;
        let mut scope = Scope {
            bindings: BTreeMap::new(),
            imports,
        };
        scope.bindings.insert(
            "alert".into(),
            Binding {
                ty: self.env.alert_type(),
                kind: BindingKind::Alert,
            },
        );
        let mut typed_rule = typed::Rule {
            name: rule.name.name.clone(),
            doc: self.doc(self.file, rule.span.start),
            file: self.file,
            span: rule.span,
            name_span: rule.name.span,
            lifecycle: ast::Lifecycle::Firing,
            alert_names: Vec::new(),
            when: None,
            run: None,
            cooldown: None,
            concurrency: None,
            priority: 0,
            continue_matching: false,
        };
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut run_playbook: Option<(String, Span)> = None;
        for clause in &rule.clauses {
            let keyword = clause.keyword();
            if let Some(first) = seen.get(keyword) {
                self.report(SyntaxError::DuplicateClause {
                    span: clause.span(),
                    first: *first,
                    clause: keyword.into(),
                });
                continue;
            }
            seen.insert(keyword, clause.span());
            match clause {
                ast::RuleClause::On(on) => {
                    typed_rule.lifecycle = on.lifecycle;
                    typed_rule.alert_names.clear();
                    for name in &on.names {
                        if let Some(first) = on
                            .names
                            .iter()
                            .find(|other| other.value == name.value)
                            .filter(|other| other.span != name.span)
                        {
                            self.report(ResolveError::Duplicate {
                                span: name.span,
                                first: first.span,
                                kind: "alert name".into(),
                                name: name.value.clone(),
                                help: Some("remove one of them".into()),
                            });
                            continue;
                        }
                        typed_rule.alert_names.push(name.value.clone());
                        if name.value.trim().is_empty() {
                            self.report(TypeError::OutOfRange {
                                span: name.span,
                                what: "an alert name".into(),
                                bound: "non-empty".into(),
                                help: Some("write `on alert *` to match every alert".into()),
                            });
                        }
                    }
                }
                ast::RuleClause::When(expr, _) => {
                    let typed = self.expr(expr, &scope, Some(&Type::Bool));
                    self.expect_value(&typed, &Type::Bool);
                    self.constant_condition(&typed);
                    typed_rule.when = Some(typed);
                }
                ast::RuleClause::Run(run) => {
                    run_playbook = Some((run.playbook.name.clone(), run.playbook.span));
                    typed_rule.run = self.run(run, &scope);
                }
                ast::RuleClause::Cooldown(limit) => {
                    let millis = self.const_duration(&limit.value, &scope, "a cooldown");
                    let per = self.limit_key(limit, &scope);
                    typed_rule.cooldown = millis.map(|value| typed::Limit {
                        value,
                        per,
                        span: limit.span,
                    });
                }
                ast::RuleClause::Concurrency(limit) => {
                    let count = self.const_int(&limit.value, &scope, "concurrency", 1, 10_000);
                    let per = self.limit_key(limit, &scope);
                    typed_rule.concurrency = count.map(|value| typed::Limit {
                        value,
                        per,
                        span: limit.span,
                    });
                }
                ast::RuleClause::Priority(expr, _) => {
                    if let Some(priority) =
                        self.const_int(expr, &scope, "priority", -1_000_000, 1_000_000)
                    {
                        typed_rule.priority = priority;
                    }
                }
                ast::RuleClause::Continue(_) => typed_rule.continue_matching = true,
            }
        }
        if !seen.contains_key("on alert") {
            self.report(SyntaxError::MissingClause {
                span: rule.name.span,
                item: "rule".into(),
                name: rule.name.name.clone(),
                clause: "on alert".into(),
                help: Some(
                    "say which alerts the rule reacts to: `on alert \"High_CPU_Usage\"`".into(),
                ),
            });
        }
        if !seen.contains_key("run") {
            self.report(SyntaxError::MissingClause {
                span: rule.name.span,
                item: "rule".into(),
                name: rule.name.name.clone(),
                clause: "run".into(),
                help: Some(
                    "say which playbook the rule runs: `run scale_up(service: alert.service)`"
                        .into(),
                ),
            });
        }
        // Guardrail: actions need a cooldown or a concurrency limit.
        if let Some((playbook_name, _)) = &run_playbook
            && !seen.contains_key("cooldown")
            && !seen.contains_key("concurrency")
            && let Some(playbook) = program.playbook(playbook_name)
            && let Some(action) = playbook.first_action
        {
            let same_file = playbook.file == self.file;
            self.report(GuardError::MissingCooldown {
                span: rule.name.span,
                rule: rule.name.name.clone(),
                playbook: playbook_name.clone(),
                action: if same_file { action } else { rule.name.span },
            });
        }
        Some(typed_rule)
    }

    pub(super) fn limit_key(&mut self, limit: &ast::Limit, scope: &Scope) -> Option<typed::Expr> {
        let per = limit.per.as_ref()?;
        let typed = self.expr(per, scope, None);
        let ty = self.value_type(&typed);
        if matches!(
            ty,
            Type::List(_) | Type::Map(_) | Type::Record(_) | Type::AnonRecord(_)
        ) {
            self.report(TypeError::Mismatch {
                span: typed.span,
                expected: "a string, number or enum".into(),
                found: self.env.describe(&ty),
                help: Some("limits are kept per key, such as `per alert.service`".into()),
            });
        }
        Some(typed)
    }

    pub(super) fn run(&mut self, run: &ast::RunClause, scope: &Scope) -> Option<typed::RunCall> {
        if self.playbook_sigs.contains_key(&run.playbook.name) {
            self.reference(
                run.playbook.span,
                Symbol::Playbook(run.playbook.name.clone()),
                false,
            );
        }
        let Some(sig) = self.playbook_sigs.get(&run.playbook.name).cloned() else {
            let broken = self
                .files
                .iter()
                .any(|file| file.ast.broken_playbooks.contains(&run.playbook.name));
            if broken {
                // Its syntax error was reported; checking against it would only guess.
                for arg in &run.args {
                    let _ = self.expr(&arg.value, scope, None);
                }
                return None;
            }
            let suggestion = suggest(
                &run.playbook.name,
                self.playbook_sigs.keys().map(String::as_str),
            );
            self.report_with_fix(
                ResolveError::UnknownPlaybook {
                    span: run.playbook.span,
                    name: run.playbook.name.clone(),
                    help: did_you_mean(&suggestion),
                },
                run.playbook.span,
                &suggestion,
            );
            // Check the arguments anyway, so their own errors are reported.
            for arg in &run.args {
                let _ = self.expr(&arg.value, scope, None);
            }
            return None;
        };
        let args = self.args(&run.playbook.name, &sig.params, &run.args, run.span, scope);
        // Named arguments name the playbook's parameters: renaming one must rename them.
        for arg in &run.args {
            if let Some(name) = arg
                .name
                .as_ref()
                .filter(|name| sig.params.iter().any(|param| param.name == name.name))
            {
                let symbol = Symbol::Param {
                    playbook: run.playbook.name.clone(),
                    param: name.name.clone(),
                };
                self.reference(name.span, symbol, false);
            }
        }
        Some(typed::RunCall {
            playbook: run.playbook.name.clone(),
            args: args
                .into_iter()
                .map(|(name, value, _)| (name, value))
                .collect(),
            span: run.span,
        })
    }

    // ------------------------------------------------------------ whole-program lints
}
