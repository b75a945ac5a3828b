//! Playbook bodies: tasks, their clauses, data-flow dependencies, call guardrails and
//! cycles.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn playbook(
        &mut self,
        playbook: &ast::Playbook,
        imports: BTreeSet<String>,
    ) -> typed::Playbook {
        self.used.clear();
        self.quantity_unit = None;
        self.absent_reasons.clear();
        self.current_playbook = playbook.name.name.clone();
        self.reference(
            playbook.name.span,
            Symbol::Playbook(playbook.name.name.clone()),
            true,
        );
        for param in &playbook.params {
            let symbol = Symbol::Param {
                playbook: playbook.name.name.clone(),
                param: param.name.name.clone(),
            };
            self.reference(param.name.span, symbol, true);
        }
        let sig = self
            .playbook_sigs
            .get(&playbook.name.name)
            .cloned()
            .map(|sig| sig.params)
            .unwrap_or_default();
        let mut scope = Scope {
            bindings: BTreeMap::new(),
            imports,
        };
        for param in &sig {
            scope.bindings.insert(
                param.name.clone(),
                Binding {
                    ty: param.ty.clone(),
                    kind: BindingKind::Param,
                },
            );
        }

        // Playbook timeout.
        let mut timeout: Option<(i64, Span)> = None;
        let mut timeout_span: Option<Span> = None;
        for item in &playbook.body {
            if let ast::PlaybookItem::Timeout(expr, span) = item {
                if let Some(first) = timeout_span {
                    self.report(SyntaxError::DuplicateClause {
                        span: *span,
                        first,
                        clause: "timeout".into(),
                    });
                    continue;
                }
                timeout_span = Some(*span);
                timeout = self
                    .const_duration(expr, &scope, "a playbook timeout")
                    .map(|millis| (millis, expr.span));
            }
        }

        // Task names and output types first: tasks may refer to tasks declared later.
        let tasks: Vec<&ast::Task> = playbook
            .body
            .iter()
            .filter_map(|item| match item {
                ast::PlaybookItem::Task(task) => Some(task),
                ast::PlaybookItem::Timeout(..) => None,
            })
            .collect();
        let mut functions: Vec<Option<FnId>> = Vec::new();
        let mut task_spans: BTreeMap<String, Span> = BTreeMap::new();
        for task in &tasks {
            let function = self.task_function(&task.call);
            functions.push(function);
            if let Some(first) = task_spans.get(&task.name.name) {
                self.report(ResolveError::Duplicate {
                    span: task.name.span,
                    first: *first,
                    kind: "task".into(),
                    name: task.name.name.clone(),
                    help: Some("rename one of them".into()),
                });
                continue;
            }
            if let Some(param) = sig.iter().find(|param| param.name == task.name.name) {
                self.report(ResolveError::Duplicate {
                    span: task.name.span,
                    first: param.span,
                    kind: "name".into(),
                    name: task.name.name.clone(),
                    help: Some("rename one of them".into()),
                });
                continue;
            }
            task_spans.insert(task.name.name.clone(), task.name.span);
            let symbol = Symbol::Task {
                playbook: playbook.name.name.clone(),
                task: task.name.name.clone(),
            };
            self.reference(task.name.span, symbol, true);
            let output = function
                .and_then(|id| self.env.function(id))
                .map_or(Type::Error, |function| function.returns.clone());
            let conditional = task
                .clauses
                .iter()
                .any(|clause| matches!(clause, ast::TaskClause::When(..)));
            let continues = task.clauses.iter().any(|clause| {
                matches!(
                    clause,
                    ast::TaskClause::OnFailure(ast::FailurePolicy::Continue, _)
                )
            });
            let absent_reason = if conditional {
                Some("runs only when its `when` condition holds")
            } else if continues {
                Some("continues on failure")
            } else {
                None
            };
            let ty = match absent_reason {
                Some(reason) => {
                    self.absent_reasons.insert(task.name.name.clone(), reason);
                    output.optional()
                }
                None => output,
            };
            scope.bindings.insert(
                task.name.name.clone(),
                Binding {
                    ty,
                    kind: BindingKind::Task,
                },
            );
        }

        let mut typed_tasks = Vec::new();
        let mut read_tasks: BTreeSet<String> = BTreeSet::new();
        for (task, function) in tasks.iter().zip(functions) {
            let typed_task = self.task(task, function, &scope, timeout);
            read_tasks.extend(typed_task.depends_on.iter().cloned());
            typed_tasks.push(typed_task);
        }

        self.check_cycles(&typed_tasks);

        // A playbook that only looks reports what it found: every query's result is the
        // point. In a playbook that acts, a query no task reads is a check the actions do not
        // depend on, usually a forgotten `when` or a misspelt task name.
        let acts = typed_tasks
            .iter()
            .any(|task| task.effect == ast::Effect::Action);
        for task in &typed_tasks {
            if acts
                && task.effect == ast::Effect::Query
                && task.function.is_some()
                && !read_tasks.contains(&task.name)
            {
                self.report(Lint::UnusedTask {
                    span: task.name_span,
                    name: task.name.clone(),
                });
            }
        }
        for param in &sig {
            if !self.used.contains(&param.name) {
                self.report(Lint::UnusedParameter {
                    span: param.span,
                    name: param.name.clone(),
                });
            }
        }

        let first_action = typed_tasks
            .iter()
            .find(|task| task.effect == ast::Effect::Action && task.function.is_some())
            .map(|task| task.span);
        typed::Playbook {
            name: playbook.name.name.clone(),
            doc: self.doc(self.file, playbook.span.start),
            file: self.file,
            span: playbook.span,
            name_span: playbook.name.span,
            params: sig
                .iter()
                .map(|param| typed::Param {
                    name: param.name.clone(),
                    ty: param.ty.clone(),
                    default: param.default.clone(),
                    span: param.span,
                })
                .collect(),
            timeout: timeout.map(|(millis, _)| millis),
            tasks: typed_tasks,
            first_action,
        }
    }

    /// Resolves the function a task calls, without checking its arguments.
    pub(super) fn task_function(&mut self, call: &ast::Expr) -> Option<FnId> {
        let ExprKind::Call(callee, _) = &call.unparen().kind else {
            return None;
        };
        let ExprKind::Field(base, name) = &callee.kind else {
            return None;
        };
        let module = base.as_name()?;
        self.env.lookup_function(&module.name, &name.name)
    }

    pub(super) fn task(
        &mut self,
        task: &ast::Task,
        function: Option<FnId>,
        scope: &Scope,
        playbook_timeout: Option<(i64, Span)>,
    ) -> typed::Task {
        self.task_refs.clear();
        let def: Option<FnDef> = function.and_then(|id| self.env.function(id)).cloned();
        // The call itself.
        let call = task.call.unparen();
        let mut args = Vec::new();
        match &call.kind {
            ExprKind::Call(callee, call_args) => {
                self.calls_allowed = true;
                let (typed_call, _) = self.call(call, callee, call_args, scope);
                self.calls_allowed = false;
                if let ExprKind::Call(_, typed_args) = typed_call.kind {
                    args = typed_args
                        .into_iter()
                        .filter_map(|arg| arg.name.map(|name| (name.name, arg.value)))
                        .collect();
                }
            }
            ExprKind::Error => {}
            _ => {
                let _ = self.expr(call, scope, None);
                self.report(TypeError::TaskNotCall { span: call.span });
            }
        }
        if let Some(def) = &def {
            self.call_guards(def, &args);
            self.promql_call(def, &args);
        }

        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut after = Vec::new();
        let mut when = None;
        let mut retry = None;
        let mut timeout = None;
        let mut on_failure = ast::FailurePolicy::Abort;
        let mut approval = None;
        let mut revert_after = None;
        let mut revert_on_resolve = false;
        let effect = def.as_ref().map_or(ast::Effect::Query, |def| def.effect);
        let function_name = def.as_ref().map(FnDef::qualified_name).unwrap_or_default();
        for clause in &task.clauses {
            let keyword = clause.keyword();
            if keyword != "after" {
                if let Some(first) = seen.get(keyword) {
                    self.report(SyntaxError::DuplicateClause {
                        span: clause.span(),
                        first: *first,
                        clause: keyword.into(),
                    });
                    continue;
                }
                seen.insert(keyword, clause.span());
            }
            match clause {
                ast::TaskClause::After(names, _) => {
                    for name in names {
                        match scope.bindings.get(&name.name) {
                            Some(Binding {
                                kind: BindingKind::Task,
                                ..
                            }) => {
                                after.push(name.name.clone());
                                self.task_refs.push(name.name.clone());
                                let symbol = Symbol::Task {
                                    playbook: self.current_playbook.clone(),
                                    task: name.name.clone(),
                                };
                                self.reference(name.span, symbol, false);
                            }
                            _ => {
                                let tasks = scope.bindings.iter().filter_map(|(name, binding)| {
                                    matches!(binding.kind, BindingKind::Task)
                                        .then_some(name.as_str())
                                });
                                let suggestion = suggest(&name.name, tasks);
                                self.report_with_fix(
                                    ResolveError::UnknownTask {
                                        span: name.span,
                                        name: name.name.clone(),
                                        help: did_you_mean(&suggestion),
                                    },
                                    name.span,
                                    &suggestion,
                                );
                            }
                        }
                    }
                }
                ast::TaskClause::When(expr, _) => {
                    let typed = self.expr(expr, scope, Some(&Type::Bool));
                    self.expect_value(&typed, &Type::Bool);
                    self.constant_condition(&typed);
                    when = Some(typed);
                }
                ast::TaskClause::Retry {
                    attempts, backoff, ..
                } => {
                    let count = self.const_int(attempts, scope, "retry count", 0, MAX_RETRIES);
                    let backoff = match backoff {
                        Some(backoff) => self.const_duration(backoff, scope, "a retry backoff"),
                        None => Some(1_000),
                    };
                    if let (Some(count), Some(backoff)) = (count, backoff) {
                        retry = Some(typed::Retry {
                            attempts: u32::try_from(count).unwrap_or(0),
                            backoff,
                        });
                    }
                }
                ast::TaskClause::Timeout(expr, _) => {
                    timeout = self.const_duration(expr, scope, "a task timeout");
                    if let (Some(task_timeout), Some((playbook_millis, playbook_span))) =
                        (timeout, playbook_timeout)
                        && task_timeout > playbook_millis
                    {
                        self.report(Lint::TimeoutExceedsPlaybook {
                            span: expr.span,
                            playbook_span,
                            task: crate::units::format_duration(task_timeout),
                            playbook: crate::units::format_duration(playbook_millis),
                        });
                    }
                }
                ast::TaskClause::OnFailure(policy, _) => on_failure = *policy,
                ast::TaskClause::Approval {
                    by,
                    timeout: approval_timeout,
                    span,
                } => {
                    if def.is_some() && effect == ast::Effect::Query {
                        self.report(GuardError::ApprovalOnQuery {
                            span: *span,
                            function: function_name.clone(),
                        });
                    }
                    let approval_timeout = approval_timeout
                        .as_ref()
                        .and_then(|expr| self.const_duration(expr, scope, "an approval timeout"));
                    approval = Some(typed::Approval {
                        by: by.as_ref().map(|by| by.value.clone()),
                        timeout: approval_timeout,
                    });
                }
                ast::TaskClause::RevertAfter(expr, span) => {
                    self.revertible(&def, *span);
                    revert_after = self.const_duration(expr, scope, "a revert delay");
                }
                ast::TaskClause::RevertOnResolve(span) => {
                    self.revertible(&def, *span);
                    revert_on_resolve = true;
                }
            }
        }

        let mut depends_on: Vec<String> = Vec::new();
        for name in self.task_refs.drain(..) {
            if !depends_on.contains(&name) {
                depends_on.push(name);
            }
        }
        let output = scope
            .bindings
            .get(&task.name.name)
            .map_or(Type::Error, |binding| binding.ty.clone());
        typed::Task {
            name: task.name.name.clone(),
            span: task.span,
            name_span: task.name.span,
            function,
            effect,
            args,
            output,
            depends_on,
            after,
            when,
            retry,
            timeout,
            on_failure,
            approval,
            revert_after,
            revert_on_resolve,
        }
    }

    pub(super) fn revertible(&mut self, def: &Option<FnDef>, span: Span) {
        let Some(def) = def else {
            return;
        };
        if !def.revertible {
            self.report(GuardError::NotRevertible {
                span,
                function: def.qualified_name(),
                kind: match def.effect {
                    ast::Effect::Query => "query".into(),
                    ast::Effect::Action => "action".into(),
                },
            });
        }
    }

    /// Guardrails on constant arguments: a limit below 1, a value above its limit.
    pub(super) fn call_guards(&mut self, def: &FnDef, args: &[(String, typed::Expr)]) {
        let constant = |name: &str| {
            args.iter()
                .find(|(arg, _)| arg == name)
                .and_then(|(_, value)| match &value.unparen().kind {
                    ExprKind::Int(value) => Some((*value, value_span(args, name))),
                    ExprKind::Unary(UnaryOp::Neg, inner) => match inner.unparen().kind {
                        ExprKind::Int(value) => Some((-value, value_span(args, name))),
                        _ => None,
                    },
                    _ => None,
                })
        };
        fn value_span(args: &[(String, typed::Expr)], name: &str) -> Span {
            args.iter()
                .find(|(arg, _)| arg == name)
                .map(|(_, value)| value.span)
                .unwrap_or_default()
        }
        for param in def.params.iter().filter(|param| param.guard) {
            let Some((limit, limit_span)) = constant(&param.name) else {
                continue;
            };
            if limit < 1 {
                self.report(TypeError::OutOfRange {
                    span: limit_span,
                    what: format!("`{}`", param.name),
                    bound: "at least 1".into(),
                    help: Some(
                        "a limit of zero would forbid the action; remove the task instead".into(),
                    ),
                });
                continue;
            }
            for bounded in ["replicas", "min"] {
                if let Some((value, span)) = constant(bounded)
                    && value > limit
                {
                    self.report(GuardError::ExceedsLimit {
                        span,
                        limit_span,
                        what: format!("`{bounded}`"),
                        value: value.to_string(),
                        limit: format!("`{}: {limit}`", param.name),
                    });
                }
            }
        }
    }

    pub(super) fn check_cycles(&mut self, tasks: &[typed::Task]) {
        use petgraph::graphmap::DiGraphMap;
        let mut graph: DiGraphMap<usize, ()> = DiGraphMap::default();
        let index: BTreeMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .map(|(position, task)| (task.name.as_str(), position))
            .collect();
        for (position, task) in tasks.iter().enumerate() {
            graph.add_node(position);
            for dependency in &task.depends_on {
                if let Some(&from) = index.get(dependency.as_str()) {
                    graph.add_edge(from, position, ());
                }
            }
        }
        for mut component in petgraph::algo::tarjan_scc(&graph) {
            let self_loop = component
                .first()
                .is_some_and(|&node| component.len() == 1 && graph.contains_edge(node, node));
            if component.len() < 2 && !self_loop {
                continue;
            }
            component.sort_unstable();
            let members: Vec<&typed::Task> = component
                .iter()
                .filter_map(|&node| tasks.get(node))
                .collect();
            let Some(first) = members.first() else {
                continue;
            };
            let mut path: Vec<String> = members
                .iter()
                .map(|task| format!("`{}`", task.name))
                .collect();
            path.push(format!("`{}`", first.name));
            let others = members
                .iter()
                .skip(1)
                .map(|task| {
                    miette::LabeledSpan::new_with_span(
                        Some(format!("`{}` is on the cycle", task.name)),
                        miette::SourceSpan::from(task.name_span),
                    )
                })
                .collect();
            self.report(ResolveError::Cycle {
                span: first.name_span,
                path: path.join(" → "),
                others,
            });
        }
    }

    // ------------------------------------------------------------ rules
}
