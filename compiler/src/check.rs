//! Name resolution, type checking, guardrails and lints, in one pass over the parsed files.
//!
//! The checker never stops at the first error: a broken expression gets `Type::Error`, which
//! is compatible with everything, so no follow-on error is reported for it. It produces the
//! typed program (`typed::Program`) and the diagnostics together.
//!
//! Order of work: the standard library declarations become an [`Env`]; then playbook
//! signatures (so rules and playbooks can refer to each other in any order and any file);
//! then playbook bodies; then rules; then the whole-program lints (shadowed rules, rules that
//! can never match, unused imports).

use crate::ast::{self, BinaryOp, ExprKind, Span, UnaryOp};
use crate::diagnostic::{
    CompileError, Diagnostic, GuardError, Lint, ResolveError, SyntaxError, TypeError,
};
use crate::symbols::{Reference, Symbol};
use crate::typed;
use crate::types::{
    BUILTIN_TYPES, EnumDef, Env, FieldDef, FnDef, FnId, ModuleDef, ParamDef, RecordDef, Type,
    builtin_type,
};
use crate::{FileId, ParsedFile};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Limits that keep automation sane; values outside are almost certainly typos.
const MAX_RETRIES: i64 = 20;

#[derive(Debug, Clone)]
struct Binding {
    ty: Type,
    kind: BindingKind,
}

#[derive(Debug, Clone)]
enum BindingKind {
    Alert,
    Param,
    Task,
}

#[derive(Debug, Default)]
struct Scope {
    bindings: BTreeMap<String, Binding>,
    imports: BTreeSet<String>,
}

/// A playbook's signature, known before any body is checked.
#[derive(Debug, Clone)]
struct PlaybookSig {
    file: FileId,
    span: Span,
    params: Vec<ParamDef>,
}

pub(crate) struct Checker<'a> {
    files: &'a [ParsedFile],
    pub(crate) env: Env,
    pub(crate) diagnostics: Vec<Diagnostic>,
    file: FileId,
    /// Names read in the current rule or playbook.
    used: BTreeSet<String>,
    /// Tasks read by the expression being checked.
    task_refs: Vec<String>,
    /// Modules used per file, for the unused-import lint.
    used_modules: BTreeSet<(FileId, String)>,
    /// The unit `alert.value` was first compared with in the current rule.
    quantity_unit: Option<(&'static str, Span)>,
    /// Whether a call may appear here (only as the right-hand side of a task).
    calls_allowed: bool,
    playbook_sigs: BTreeMap<String, PlaybookSig>,
    /// Why each task of the playbook being checked may have no output.
    absent_reasons: BTreeMap<String, &'static str>,
    /// The playbook being checked, for naming its tasks and parameters.
    current_playbook: String,
    /// Every resolved name: what the editor navigates with.
    pub(crate) references: Vec<Reference>,
}

fn suggest<'n>(name: &str, candidates: impl IntoIterator<Item = &'n str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    // Edit distances cost the product of the lengths: long names get no suggestion.
    if name.len() > 64 {
        return None;
    }
    for candidate in candidates {
        if candidate == name
            || candidate.len() > 64
            || candidate.len().abs_diff(name.len()) > 3 + name.len() / 2
        {
            continue;
        }
        let score = strsim::jaro_winkler(name, candidate);
        let close = score >= 0.8 || strsim::levenshtein(name, candidate) <= 2.max(name.len() / 4);
        if close && best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate.to_string())
}

fn did_you_mean(suggestion: &Option<String>) -> Option<String> {
    suggestion
        .as_ref()
        .map(|suggestion| format!("did you mean `{suggestion}`?"))
}

fn typed_error(span: Span) -> typed::Expr {
    ast::Expr {
        kind: ExprKind::Error,
        span,
        ty: Type::Error,
    }
}

impl<'a> Checker<'a> {
    pub(crate) fn new(files: &'a [ParsedFile]) -> Checker<'a> {
        Checker {
            files,
            env: Env::default(),
            diagnostics: Vec::new(),
            file: FileId(0),
            used: BTreeSet::new(),
            task_refs: Vec::new(),
            used_modules: BTreeSet::new(),
            quantity_unit: None,
            calls_allowed: false,
            playbook_sigs: BTreeMap::new(),
            absent_reasons: BTreeMap::new(),
            current_playbook: String::new(),
            references: Vec::new(),
        }
    }

    fn reference(&mut self, span: Span, symbol: Symbol, definition: bool) {
        self.references.push(Reference {
            file: self.file,
            span,
            symbol,
            definition,
        });
    }

    fn report(&mut self, error: impl Into<CompileError>) {
        self.diagnostics.push(Diagnostic::new(self.file, error));
    }

    fn report_with_fix(
        &mut self,
        error: impl Into<CompileError>,
        span: Span,
        fix: &Option<String>,
    ) {
        let mut diagnostic = Diagnostic::new(self.file, error);
        if let Some(fix) = fix {
            diagnostic = diagnostic.with_suggestion(span, fix.clone());
        }
        self.diagnostics.push(diagnostic);
    }

    fn text(&self, span: Span) -> &'a str {
        self.files
            .get(self.file.0 as usize)
            .and_then(|file| file.text.get(span.range()))
            .unwrap_or("")
    }

    fn doc(&self, file: FileId, offset: u32) -> Option<String> {
        let parsed = self.files.get(file.0 as usize)?;
        parsed.ast.doc_before(&parsed.text, offset)
    }

    // ------------------------------------------------------------ the standard library

    pub(crate) fn build_env(&mut self) {
        // First the names, so declarations may refer to each other in any order.
        let mut modules: Vec<(FileId, String)> = Vec::new();
        for (index, parsed) in self.files.iter().enumerate() {
            if !parsed.is_stdlib {
                continue;
            }
            let file = FileId(index as u32);
            let name = parsed
                .ast
                .items
                .iter()
                .find_map(|item| match item {
                    ast::Item::Module(module) => Some(module.name.name.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    parsed
                        .name
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                        .trim_end_matches(".ops")
                        .to_string()
                });
            let mut module = ModuleDef {
                name: name.clone(),
                doc: parsed.ast.inner_doc(),
                file,
                records: BTreeMap::new(),
                enums: BTreeMap::new(),
                functions: BTreeMap::new(),
            };
            for item in &parsed.ast.items {
                match item {
                    ast::Item::Record(record) => {
                        let id = crate::types::RecordId(self.env.records.len() as u32);
                        module.records.insert(record.name.name.clone(), id);
                        self.env.records.push(RecordDef {
                            module: name.clone(),
                            name: record.name.name.clone(),
                            fields: Vec::new(),
                            doc: self.doc(file, record.span.start),
                            file,
                            span: record.name.span,
                        });
                    }
                    ast::Item::Enum(decl) => {
                        let id = crate::types::EnumId(self.env.enums.len() as u32);
                        module.enums.insert(decl.name.name.clone(), id);
                        self.env.enums.push(EnumDef {
                            module: name.clone(),
                            name: decl.name.name.clone(),
                            variants: decl
                                .variants
                                .iter()
                                .map(|variant| variant.name.clone())
                                .collect(),
                            doc: self.doc(file, decl.span.start),
                            file,
                            span: decl.name.span,
                        });
                    }
                    _ => {}
                }
            }
            self.env.modules.insert(name.clone(), module);
            modules.push((file, name));
        }
        // Then the fields and signatures.
        for (file, module_name) in modules {
            self.file = file;
            let Some(parsed) = self.files.get(file.0 as usize) else {
                continue;
            };
            for item in &parsed.ast.items {
                match item {
                    ast::Item::Record(record) => {
                        let fields: Vec<FieldDef> = record
                            .fields
                            .iter()
                            .map(|field| FieldDef {
                                name: field.name.name.clone(),
                                ty: self.resolve_type(&field.ty, Some(&module_name)),
                                doc: self.doc(file, field.span.start),
                                span: field.name.span,
                            })
                            .collect();
                        if let Some(id) =
                            self.env.find_record(Some(&module_name), &record.name.name)
                            && let Some(def) = self.env.records.get_mut(id.0 as usize)
                        {
                            def.fields = fields;
                        }
                    }
                    ast::Item::Function(function) => {
                        let params = self.param_defs(&function.params, Some(&module_name));
                        let returns = self.resolve_type(&function.returns, Some(&module_name));
                        let id = FnId(self.env.functions.len() as u32);
                        self.env.functions.push(FnDef {
                            module: module_name.clone(),
                            name: function.name.name.clone(),
                            effect: function.effect,
                            params,
                            returns,
                            revertible: function.revertible,
                            doc: self.doc(file, function.span.start),
                            file,
                            span: function.name.span,
                        });
                        if let Some(module) = self.env.modules.get_mut(&module_name) {
                            module.functions.insert(function.name.name.clone(), id);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn param_defs(&mut self, params: &[ast::Param], module: Option<&str>) -> Vec<ParamDef> {
        let mut defs: Vec<ParamDef> = Vec::new();
        for param in params {
            if let Some(first) = defs.iter().find(|def| def.name == param.name.name) {
                let first = first.span;
                self.report(ResolveError::Duplicate {
                    span: param.name.span,
                    first,
                    kind: "parameter".into(),
                    name: param.name.name.clone(),
                    help: Some("rename one of them".into()),
                });
                continue;
            }
            let ty = self.resolve_type(&param.ty, module);
            let default = param.default.as_ref().map(|default| {
                if !is_constant(default) {
                    self.report(TypeError::NonConstantDefault { span: default.span });
                    return typed_error(default.span);
                }
                let scope = Scope::default();
                let typed = self.expr(default, &scope, Some(&ty));
                self.expect(&typed, &ty);
                typed
            });
            defs.push(ParamDef {
                name: param.name.name.clone(),
                ty,
                default,
                guard: param.guard,
                span: param.name.span,
            });
        }
        defs
    }

    fn resolve_type(&mut self, ty: &ast::TypeExpr, module: Option<&str>) -> Type {
        match &ty.kind {
            ast::TypeExprKind::Optional(inner) => self.resolve_type(inner, module).optional(),
            ast::TypeExprKind::List(element) => {
                Type::List(Box::new(self.resolve_type(element, module)))
            }
            ast::TypeExprKind::Map(key, value) => {
                let key_type = self.resolve_type(key, module);
                if !matches!(key_type, Type::String | Type::Error) {
                    self.report(TypeError::Mismatch {
                        span: key.span,
                        expected: "a String".into(),
                        found: self.env.describe(&key_type),
                        help: Some("map keys are always strings".into()),
                    });
                }
                Type::Map(Box::new(self.resolve_type(value, module)))
            }
            ast::TypeExprKind::Named {
                module: qualifier,
                name,
            } => {
                if name.name == "Error" {
                    return Type::Error;
                }
                if qualifier.is_none()
                    && let Some(builtin) = builtin_type(&name.name)
                {
                    return builtin;
                }
                let lookup_module = qualifier.as_ref().map(|q| q.name.as_str()).or(module);
                if let Some(id) = self.env.find_record(lookup_module, &name.name) {
                    self.reference(name.span, Symbol::Record(id), false);
                    return Type::Record(id);
                }
                if let Some(id) = self.env.find_enum(lookup_module, &name.name) {
                    self.reference(name.span, Symbol::Enum(id), false);
                    return Type::Enum(id);
                }
                let mut candidates: Vec<String> =
                    BUILTIN_TYPES.iter().map(|name| name.to_string()).collect();
                for module in self.env.modules.values() {
                    candidates.extend(module.records.keys().cloned());
                    candidates.extend(module.enums.keys().cloned());
                }
                let suggestion = suggest(&name.name, candidates.iter().map(String::as_str));
                self.report_with_fix(
                    ResolveError::UnknownType {
                        span: name.span,
                        name: name.name.clone(),
                        help: did_you_mean(&suggestion).or_else(|| {
                            Some(format!("built-in types are {}", BUILTIN_TYPES.join(", ")))
                        }),
                    },
                    name.span,
                    &suggestion,
                );
                Type::Error
            }
        }
    }

    // ------------------------------------------------------------ user files

    pub(crate) fn check_program(&mut self) -> typed::Program {
        let user_files: Vec<FileId> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, parsed)| !parsed.is_stdlib)
            .map(|(index, _)| FileId(index as u32))
            .collect();

        // Imports per file, and declarations that belong to the stdlib only.
        let mut imports: BTreeMap<FileId, BTreeMap<String, Span>> = BTreeMap::new();
        for &file in &user_files {
            self.file = file;
            let mut file_imports: BTreeMap<String, Span> = BTreeMap::new();
            let Some(parsed) = self.files.get(file.0 as usize) else {
                continue;
            };
            for item in &parsed.ast.items {
                match item {
                    ast::Item::Import(import) => self.import(import, &mut file_imports),
                    ast::Item::Module(_)
                    | ast::Item::Record(_)
                    | ast::Item::Enum(_)
                    | ast::Item::Function(_) => {
                        let kind = match item {
                            ast::Item::Module(_) => "module",
                            ast::Item::Record(_) => "record",
                            ast::Item::Enum(_) => "enum",
                            _ => "function",
                        };
                        self.report(SyntaxError::DeclarationOutsideStdlib {
                            span: item.span(),
                            kind: kind.into(),
                        });
                    }
                    _ => {}
                }
            }
            imports.insert(file, file_imports);
        }

        // Playbook signatures.
        let mut playbooks: Vec<(FileId, &'a ast::Playbook)> = Vec::new();
        let mut rules: Vec<(FileId, &'a ast::Rule)> = Vec::new();
        let files = self.files;
        for &file in &user_files {
            let Some(parsed) = files.get(file.0 as usize) else {
                continue;
            };
            for item in &parsed.ast.items {
                match item {
                    ast::Item::Playbook(playbook) => playbooks.push((file, playbook)),
                    ast::Item::Rule(rule) => rules.push((file, rule)),
                    _ => {}
                }
            }
        }
        let mut program = typed::Program::default();
        let mut checked_playbooks: Vec<(FileId, &'a ast::Playbook)> = Vec::new();
        for &(file, playbook) in &playbooks {
            self.file = file;
            if let Some(existing) = self.playbook_sigs.get(&playbook.name.name) {
                let first = existing.span;
                let same_file = existing.file == file;
                self.report(ResolveError::Duplicate {
                    span: playbook.name.span,
                    first: if same_file { first } else { playbook.name.span },
                    kind: "playbook".into(),
                    name: playbook.name.name.clone(),
                    help: Some("rename one of them".into()),
                });
                continue;
            }
            for param in playbook.params.iter().filter(|param| param.guard) {
                self.report(SyntaxError::DeclarationOutsideStdlib {
                    span: param.span,
                    kind: "`guard` parameter".into(),
                });
            }
            let params = self.param_defs(&playbook.params, None);
            self.playbook_sigs.insert(
                playbook.name.name.clone(),
                PlaybookSig {
                    file,
                    span: playbook.name.span,
                    params,
                },
            );
            checked_playbooks.push((file, playbook));
        }
        for (file, playbook) in checked_playbooks {
            self.file = file;
            let scope_imports = imports
                .get(&file)
                .map(|imports| imports.keys().cloned().collect())
                .unwrap_or_default();
            let typed = self.playbook(playbook, scope_imports);
            program.add_playbook(typed);
        }

        let mut rule_names: BTreeMap<String, (FileId, Span)> = BTreeMap::new();
        for (file, rule) in rules {
            self.file = file;
            if let Some((first_file, first)) = rule_names.get(&rule.name.name) {
                let first = if *first_file == file {
                    *first
                } else {
                    rule.name.span
                };
                self.report(ResolveError::Duplicate {
                    span: rule.name.span,
                    first,
                    kind: "rule".into(),
                    name: rule.name.name.clone(),
                    help: Some("rename one of them".into()),
                });
            } else {
                rule_names.insert(rule.name.name.clone(), (file, rule.name.span));
            }
            let scope_imports = imports
                .get(&file)
                .map(|imports| imports.keys().cloned().collect())
                .unwrap_or_default();
            if let Some(typed) = self.rule(rule, scope_imports, &program) {
                program.rules.push(typed);
            }
        }

        self.rule_lints(&program);

        for (file, file_imports) in imports {
            self.file = file;
            if self
                .files
                .get(file.0 as usize)
                .is_some_and(|parsed| parsed.ast.has_syntax_errors)
            {
                continue;
            }
            for (module, span) in file_imports {
                if module != "alert" && !self.used_modules.contains(&(file, module.clone())) {
                    self.report(Lint::UnusedImport { span, name: module });
                }
            }
        }
        program
    }

    fn import(&mut self, import: &ast::Import, imports: &mut BTreeMap<String, Span>) {
        if import.root.name != "std" {
            let suggestion = Some("std".to_string());
            self.report_with_fix(
                ResolveError::UnknownModule {
                    span: import.root.span,
                    name: import.root.name.clone(),
                    help: Some(
                        "imports come from the standard library: `import std.{http, logs}`".into(),
                    ),
                },
                import.root.span,
                &suggestion,
            );
            // Still record the modules named, so their uses are not reported again.
            for name in &import.names {
                if self.env.modules.contains_key(&name.name) {
                    imports.entry(name.name.clone()).or_insert(name.span);
                    self.used_modules.insert((self.file, name.name.clone()));
                }
            }
            return;
        }
        if import.names.is_empty() {
            self.report(SyntaxError::Unexpected {
                span: import.span,
                found: "`import std` without modules".into(),
                expected: "`import std.{module, ...}`".into(),
                help: None,
            });
        }
        for name in &import.names {
            if !self.env.modules.contains_key(&name.name) {
                let suggestion = suggest(&name.name, self.env.modules.keys().map(String::as_str));
                self.report_with_fix(
                    ResolveError::UnknownModule {
                        span: name.span,
                        name: name.name.clone(),
                        help: did_you_mean(&suggestion).or_else(|| {
                            Some(format!(
                                "std has {}",
                                self.env
                                    .modules
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        }),
                    },
                    name.span,
                    &suggestion,
                );
                continue;
            }
            if let Some(first) = imports.get(&name.name) {
                self.report(ResolveError::Duplicate {
                    span: name.span,
                    first: *first,
                    kind: "import".into(),
                    name: name.name.clone(),
                    help: Some("remove one of them".into()),
                });
                continue;
            }
            imports.insert(name.name.clone(), name.span);
        }
    }

    // ------------------------------------------------------------ playbooks

    fn playbook(&mut self, playbook: &ast::Playbook, imports: BTreeSet<String>) -> typed::Playbook {
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

        for task in &typed_tasks {
            if task.effect == ast::Effect::Query
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
    fn task_function(&mut self, call: &ast::Expr) -> Option<FnId> {
        let ExprKind::Call(callee, _) = &call.unparen().kind else {
            return None;
        };
        let ExprKind::Field(base, name) = &callee.kind else {
            return None;
        };
        let module = base.as_name()?;
        self.env.lookup_function(&module.name, &name.name)
    }

    fn task(
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

    fn revertible(&mut self, def: &Option<FnDef>, span: Span) {
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
    fn call_guards(&mut self, def: &FnDef, args: &[(String, typed::Expr)]) {
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

    fn check_cycles(&mut self, tasks: &[typed::Task]) {
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

    fn rule(
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

    fn limit_key(&mut self, limit: &ast::Limit, scope: &Scope) -> Option<typed::Expr> {
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

    fn run(&mut self, run: &ast::RunClause, scope: &Scope) -> Option<typed::RunCall> {
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

    fn rule_lints(&mut self, program: &typed::Program) {
        // Rules that can never match.
        for rule in &program.rules {
            self.file = rule.file;
            if let Some(reason) = self.contradiction(rule) {
                self.report(Lint::NeverMatches {
                    span: rule.when.as_ref().map_or(rule.name_span, |when| when.span),
                    rule: rule.name.clone(),
                    reason,
                    help: Some("fix the condition or remove the rule".into()),
                });
            }
        }
        // Shadowed rules: an earlier rule (in matching order) without `continue` that matches
        // every alert the later one matches.
        let mut order: Vec<usize> = (0..program.rules.len()).collect();
        order.sort_by_key(|&index| {
            let rule = program.rules.get(index);
            (
                std::cmp::Reverse(rule.map_or(0, |rule| rule.priority)),
                index,
            )
        });
        let conjunct_texts: Vec<BTreeSet<String>> = program
            .rules
            .iter()
            .map(|rule| {
                let text = self
                    .files
                    .get(rule.file.0 as usize)
                    .map_or("", |file| file.text.as_str());
                rule.when
                    .as_ref()
                    .map(|when| {
                        conjuncts(when)
                            .into_iter()
                            .map(|expr| crate::format::expr_text(expr, text))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        // Earlier rules (without `continue`) by their exact set of conditions, so that the
        // rules that could shadow a rule are found by looking up the subsets of its own
        // conditions: linear in the number of rules, not quadratic.
        type Conditions = Vec<String>;
        let mut wildcard: HashMap<Conditions, Vec<usize>> = HashMap::new();
        let mut named: HashMap<&str, HashMap<Conditions, Vec<usize>>> = HashMap::new();
        let mut position = vec![0usize; program.rules.len()];
        for (rank, &index) in order.iter().enumerate() {
            if let Some(slot) = position.get_mut(index) {
                *slot = rank;
            }
        }
        for &index in &order {
            let Some(rule) = program.rules.get(index) else {
                continue;
            };
            let Some(conditions) = conjunct_texts.get(index) else {
                continue;
            };
            let conditions: Vec<&String> = conditions.iter().collect();
            let mut shadow: Option<usize> = None;
            for key in subsets(&conditions) {
                let lists = std::iter::once(wildcard.get(&key)).chain(
                    rule.alert_names
                        .iter()
                        .map(|name| named.get(name.as_str()).and_then(|sets| sets.get(&key))),
                );
                for list in lists.flatten() {
                    let covering = list.iter().copied().find(|&earlier_index| {
                        program.rules.get(earlier_index).is_some_and(|earlier| {
                            let covers_lifecycle = earlier.lifecycle == rule.lifecycle
                                || earlier.lifecycle == ast::Lifecycle::Any;
                            let covers_names = earlier.alert_names.is_empty()
                                || (!rule.alert_names.is_empty()
                                    && rule
                                        .alert_names
                                        .iter()
                                        .all(|name| earlier.alert_names.contains(name)));
                            covers_lifecycle && covers_names
                        })
                    });
                    if let Some(found) = covering {
                        let rank = |candidate: usize| {
                            position.get(candidate).copied().unwrap_or(usize::MAX)
                        };
                        if shadow.is_none_or(|current| rank(found) < rank(current)) {
                            shadow = Some(found);
                        }
                    }
                }
            }
            if let Some(earlier) = shadow.and_then(|earlier_index| program.rules.get(earlier_index))
            {
                self.file = rule.file;
                let same_file = earlier.file == rule.file;
                self.report(Lint::ShadowedRule {
                    span: rule.name_span,
                    by_span: if same_file {
                        earlier.name_span
                    } else {
                        rule.name_span
                    },
                    rule: rule.name.clone(),
                    by: earlier.name.clone(),
                });
            }
            if !rule.continue_matching {
                let key: Conditions = conditions
                    .iter()
                    .map(|condition| (*condition).clone())
                    .collect();
                if rule.alert_names.is_empty() {
                    wildcard.entry(key).or_default().push(index);
                } else {
                    for name in &rule.alert_names {
                        named
                            .entry(name.as_str())
                            .or_default()
                            .entry(key.clone())
                            .or_default()
                            .push(index);
                    }
                }
            }
        }
    }

    /// Why a rule's conditions contradict each other, if they do.
    fn contradiction(&self, rule: &typed::Rule) -> Option<String> {
        // Allowed values per alert field; absent means unconstrained.
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut excluded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if !rule.alert_names.is_empty() {
            allowed.insert("name".into(), rule.alert_names.iter().cloned().collect());
        }
        match rule.lifecycle {
            ast::Lifecycle::Firing => {
                allowed.insert("status".into(), BTreeSet::from(["firing".to_string()]));
            }
            ast::Lifecycle::Resolved => {
                allowed.insert("status".into(), BTreeSet::from(["resolved".to_string()]));
            }
            ast::Lifecycle::Any => {}
        }
        let conditions = rule.when.as_ref().map(conjuncts).unwrap_or_default();
        for condition in conditions {
            let Some((field, set, negated)) = self.constraint(condition) else {
                continue;
            };
            if negated {
                excluded.entry(field.clone()).or_default().extend(set);
            } else {
                let entry = allowed.entry(field.clone());
                match entry {
                    std::collections::btree_map::Entry::Vacant(vacant) => {
                        vacant.insert(set);
                    }
                    std::collections::btree_map::Entry::Occupied(mut occupied) => {
                        let intersection: BTreeSet<String> =
                            occupied.get().intersection(&set).cloned().collect();
                        occupied.insert(intersection);
                    }
                }
            }
            let remaining = allowed.get(&field).map(|values| {
                values
                    .iter()
                    .filter(|value| !excluded.get(&field).is_some_and(|ex| ex.contains(*value)))
                    .count()
            });
            if remaining == Some(0) {
                return Some(format!(
                    "no alert satisfies every condition on `alert.{field}`"
                ));
            }
        }
        None
    }

    /// Reads `alert.f == "x"`, `alert.f in [...]`, `alert.severity >= critical` and their
    /// negations as a set of allowed (or, when negated, excluded) values of one field.
    fn constraint(&self, expr: &typed::Expr) -> Option<(String, BTreeSet<String>, bool)> {
        let ExprKind::Binary(op, _, left, right) = &expr.unparen().kind else {
            return None;
        };
        let field_of = |expr: &typed::Expr| -> Option<String> {
            match &expr.unparen().kind {
                ExprKind::Field(base, field)
                    if base.as_name().is_some_and(|name| name.name == "alert") =>
                {
                    Some(field.name.clone())
                }
                _ => None,
            }
        };
        let literal = |expr: &typed::Expr| -> Option<String> {
            match &expr.unparen().kind {
                ExprKind::Str(parts) => {
                    let mut text = String::new();
                    for part in parts {
                        match part {
                            ast::StrPart::Text(value, _) => text.push_str(value),
                            ast::StrPart::Interpolation(_) => return None,
                        }
                    }
                    Some(text)
                }
                ExprKind::Variant(ident) => Some(ident.name.clone()),
                _ => None,
            }
        };
        let field = field_of(left)?;
        match op {
            BinaryOp::Eq | BinaryOp::Ne => {
                let value = literal(right)?;
                Some((field, BTreeSet::from([value]), *op == BinaryOp::Ne))
            }
            BinaryOp::In | BinaryOp::NotIn => {
                let ExprKind::List(elements) = &right.unparen().kind else {
                    return None;
                };
                let values: Option<BTreeSet<String>> = elements.iter().map(literal).collect();
                Some((field, values?, *op == BinaryOp::NotIn))
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let Type::Enum(id) = right.ty else {
                    return None;
                };
                let variant = literal(right)?;
                let variants = &self.env.enum_def(id)?.variants;
                let position = variants
                    .iter()
                    .position(|candidate| *candidate == variant)?;
                let set = variants
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| match op {
                        BinaryOp::Lt => *index < position,
                        BinaryOp::Le => *index <= position,
                        BinaryOp::Gt => *index > position,
                        _ => *index >= position,
                    })
                    .map(|(_, name)| name.clone())
                    .collect();
                Some((field, set, false))
            }
            _ => None,
        }
    }

    fn constant_condition(&mut self, expr: &typed::Expr) {
        if let ExprKind::Bool(value) = expr.unparen().kind {
            self.report(Lint::ConstantCondition {
                span: expr.span,
                value,
            });
        }
    }

    // ------------------------------------------------------------ constants in clauses

    fn const_duration(&mut self, expr: &ast::Expr, scope: &Scope, what: &str) -> Option<i64> {
        let typed = self.expr(expr, scope, Some(&Type::Duration));
        if typed.ty.is_error() {
            return None;
        }
        match typed.unparen().kind {
            ExprKind::Duration(millis) if millis > 0 => Some(millis),
            ExprKind::Duration(_) => {
                self.report(TypeError::OutOfRange {
                    span: typed.span,
                    what: what.to_string(),
                    bound: "longer than zero".into(),
                    help: None,
                });
                None
            }
            _ => {
                self.report(TypeError::Mismatch {
                    span: typed.span,
                    expected: "a Duration literal such as 15m".into(),
                    found: self.env.describe(&typed.ty),
                    help: Some(format!("{what} is fixed when the runbook is written")),
                });
                None
            }
        }
    }

    fn const_int(
        &mut self,
        expr: &ast::Expr,
        scope: &Scope,
        what: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let typed = self.expr(expr, scope, Some(&Type::Int));
        if typed.ty.is_error() {
            return None;
        }
        let value = match &typed.unparen().kind {
            ExprKind::Int(value) => Some(*value),
            ExprKind::Unary(UnaryOp::Neg, inner) => match inner.unparen().kind {
                ExprKind::Int(value) => Some(-value),
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(value) if (min..=max).contains(&value) => Some(value),
            Some(_) => {
                self.report(TypeError::OutOfRange {
                    span: typed.span,
                    what: format!("the {what}"),
                    bound: format!("between {min} and {max}"),
                    help: None,
                });
                None
            }
            None => {
                self.report(TypeError::Mismatch {
                    span: typed.span,
                    expected: "an Int literal".into(),
                    found: self.env.describe(&typed.ty),
                    help: Some(format!("the {what} is fixed when the runbook is written")),
                });
                None
            }
        }
    }

    // ------------------------------------------------------------ expressions

    /// Checks an expression. `expected` only guides resolution (bare enum variants, empty
    /// lists, record literals); callers check the result with [`Checker::expect`].
    fn expr(&mut self, expr: &ast::Expr, scope: &Scope, expected: Option<&Type>) -> typed::Expr {
        let span = expr.span;
        let (kind, ty) = match &expr.kind {
            ExprKind::Int(value) => (ExprKind::Int(*value), Type::Int),
            ExprKind::Float(value) => (ExprKind::Float(*value), Type::Float),
            ExprKind::Bool(value) => (ExprKind::Bool(*value), Type::Bool),
            ExprKind::Duration(value) => (ExprKind::Duration(*value), Type::Duration),
            ExprKind::Percent(value) => (ExprKind::Percent(*value), Type::Percent),
            ExprKind::Size(value) => (ExprKind::Size(*value), Type::Size),
            ExprKind::Time(value) => (ExprKind::Time(*value), Type::Time),
            ExprKind::Str(parts) => {
                let mut typed_parts = Vec::new();
                for part in parts {
                    match part {
                        ast::StrPart::Text(text, span) => {
                            typed_parts.push(ast::StrPart::Text(text.clone(), *span))
                        }
                        ast::StrPart::Interpolation(inner) => {
                            let typed = self.expr(inner, scope, None);
                            let ty = self.value_type(&typed);
                            if matches!(ty, Type::Record(_) | Type::Map(_) | Type::AnonRecord(_)) {
                                self.report(TypeError::Mismatch {
                                    span: typed.span,
                                    expected: "a value that can be written as text".into(),
                                    found: self.env.describe(&ty),
                                    help: Some("interpolate one of its fields instead".into()),
                                });
                            }
                            typed_parts.push(ast::StrPart::Interpolation(typed));
                        }
                    }
                }
                (ExprKind::Str(typed_parts), Type::String)
            }
            ExprKind::List(elements) => {
                let expected_element = match expected.map(Type::unwrap_optional) {
                    Some(Type::List(element)) => Some((**element).clone()),
                    _ => None,
                };
                let mut element_type: Option<Type> = expected_element.clone();
                let mut typed_elements = Vec::new();
                for element in elements {
                    let typed = self.expr(element, scope, element_type.as_ref());
                    match &element_type {
                        Some(want) => self.expect(&typed, want),
                        None => element_type = Some(typed.ty.clone()),
                    }
                    typed_elements.push(typed);
                }
                let ty = Type::List(Box::new(element_type.unwrap_or(Type::Error)));
                (ExprKind::List(typed_elements), ty)
            }
            ExprKind::Record(entries) => {
                let mut fields: Vec<(String, Type)> = Vec::new();
                let mut typed_entries = Vec::new();
                for entry in entries {
                    let field_expected = match expected.map(Type::unwrap_optional) {
                        Some(Type::Record(id)) => self
                            .env
                            .record(*id)
                            .and_then(|record| record.field(&entry.key.name))
                            .map(|field| field.ty.clone()),
                        Some(Type::Map(value)) => Some((**value).clone()),
                        _ => None,
                    };
                    if fields.iter().any(|(name, _)| *name == entry.key.name) {
                        self.report(ResolveError::Duplicate {
                            span: entry.key.span,
                            first: entries
                                .iter()
                                .find(|other| other.key.name == entry.key.name)
                                .map_or(entry.key.span, |other| other.key.span),
                            kind: "field".into(),
                            name: entry.key.name.clone(),
                            help: Some("rename one of them".into()),
                        });
                    }
                    let typed = self.expr(&entry.value, scope, field_expected.as_ref());
                    fields.push((entry.key.name.clone(), typed.ty.clone()));
                    typed_entries.push(ast::RecordEntry {
                        key: entry.key.clone(),
                        value: typed,
                    });
                }
                (ExprKind::Record(typed_entries), Type::AnonRecord(fields))
            }
            ExprKind::Name(ident) => {
                let (ty, variant) = self.name(ident, scope, expected);
                if variant {
                    (ExprKind::Variant(ident.clone()), ty)
                } else {
                    (ExprKind::Name(ident.clone()), ty)
                }
            }
            ExprKind::Field(base, field) => return self.field(expr, base, field, scope),
            ExprKind::Call(callee, args) => {
                let (typed, _) = self.call(expr, callee, args, scope);
                return typed;
            }
            ExprKind::Index(base, index) => {
                let typed_base = self.expr(base, scope, None);
                let base_type = self.value_type(&typed_base);
                let (key_type, ty) = match &base_type {
                    Type::Map(value) => (Type::String, (**value).clone().optional()),
                    Type::List(element) => (Type::Int, (**element).clone().optional()),
                    Type::Error => (Type::Error, Type::Error),
                    other => {
                        self.report(TypeError::NotIndexable {
                            span: typed_base.span,
                            ty: self.env.describe(other),
                        });
                        (Type::Error, Type::Error)
                    }
                };
                let typed_index = self.expr(index, scope, Some(&key_type));
                self.expect_value(&typed_index, &key_type);
                (
                    ExprKind::Index(Box::new(typed_base), Box::new(typed_index)),
                    ty,
                )
            }
            ExprKind::Unary(op, operand) => {
                let want = match op {
                    UnaryOp::Not => Some(Type::Bool),
                    UnaryOp::Neg => None,
                };
                let typed = self.expr(operand, scope, want.as_ref());
                let operand_type = self.value_type(&typed);
                let ty = match op {
                    UnaryOp::Not => {
                        self.expect(&typed, &Type::Bool);
                        Type::Bool
                    }
                    UnaryOp::Neg => match operand_type {
                        Type::Int | Type::Float | Type::Duration | Type::Percent | Type::Error => {
                            operand_type
                        }
                        other => {
                            self.report(TypeError::Mismatch {
                                span: typed.span,
                                expected: "a number, Duration or Percent".into(),
                                found: self.env.describe(&other),
                                help: None,
                            });
                            Type::Error
                        }
                    },
                };
                (ExprKind::Unary(*op, Box::new(typed)), ty)
            }
            ExprKind::Binary(op, op_span, left, right) => {
                return self.binary(expr, *op, *op_span, left, right, scope);
            }
            ExprKind::Paren(inner) => {
                let typed = self.expr(inner, scope, expected);
                let ty = typed.ty.clone();
                (ExprKind::Paren(Box::new(typed)), ty)
            }
            // Only the checker produces variants; an untyped tree never holds one.
            ExprKind::Variant(_) | ExprKind::Error => (ExprKind::Error, Type::Error),
        };
        ast::Expr { kind, span, ty }
    }

    /// Resolves a bare name; the flag says whether it is an enum variant.
    fn name(&mut self, ident: &ast::Ident, scope: &Scope, expected: Option<&Type>) -> (Type, bool) {
        if let Some(binding) = scope.bindings.get(&ident.name) {
            self.used.insert(ident.name.clone());
            let symbol = match binding.kind {
                BindingKind::Task => {
                    self.task_refs.push(ident.name.clone());
                    Symbol::Task {
                        playbook: self.current_playbook.clone(),
                        task: ident.name.clone(),
                    }
                }
                BindingKind::Param => Symbol::Param {
                    playbook: self.current_playbook.clone(),
                    param: ident.name.clone(),
                },
                BindingKind::Alert => Symbol::Alert,
            };
            self.reference(ident.span, symbol, false);
            return (binding.ty.clone(), false);
        }
        if let Some(Type::Enum(id)) = expected.map(Type::unwrap_optional) {
            let id = *id;
            if let Some(def) = self.env.enum_def(id) {
                if def.variants.contains(&ident.name) {
                    self.reference(ident.span, Symbol::Variant(id, ident.name.clone()), false);
                    return (Type::Enum(id), true);
                }
                let suggestion = suggest(&ident.name, def.variants.iter().map(String::as_str));
                let help = did_you_mean(&suggestion)
                    .or_else(|| Some(format!("`{}` has {}", def.name, def.variants.join(", "))));
                let enum_name = def.name.clone();
                self.report_with_fix(
                    ResolveError::UnknownVariant {
                        span: ident.span,
                        name: ident.name.clone(),
                        enum_name,
                        help,
                    },
                    ident.span,
                    &suggestion,
                );
                return (Type::Error, false);
            }
        }
        let help = if ident.name == "alert" {
            Some(
                "`alert` exists only in rules; pass what the playbook needs as a parameter"
                    .to_string(),
            )
        } else if self.env.modules.contains_key(&ident.name) {
            Some(format!(
                "`{}` is a module; call its functions in a task: `{}.function(...)`",
                ident.name, ident.name
            ))
        } else {
            None
        };
        let suggestion = suggest(&ident.name, scope.bindings.keys().map(String::as_str));
        self.report_with_fix(
            ResolveError::UnknownName {
                span: ident.span,
                name: ident.name.clone(),
                help: help.or_else(|| did_you_mean(&suggestion)),
            },
            ident.span,
            &suggestion,
        );
        (Type::Error, false)
    }

    fn field(
        &mut self,
        expr: &ast::Expr,
        base: &ast::Expr,
        field: &ast::Ident,
        scope: &Scope,
    ) -> typed::Expr {
        // `Severity.critical`: a qualified enum variant.
        if let Some(name) = base.as_name()
            && !scope.bindings.contains_key(&name.name)
            && let Some(id) = self.env.find_enum(None, &name.name)
        {
            let variants = self
                .env
                .enum_def(id)
                .map(|def| def.variants.clone())
                .unwrap_or_default();
            let ty = if variants.contains(&field.name) {
                self.reference(name.span, Symbol::Enum(id), false);
                self.reference(field.span, Symbol::Variant(id, field.name.clone()), false);
                Type::Enum(id)
            } else {
                let suggestion = suggest(&field.name, variants.iter().map(String::as_str));
                self.report_with_fix(
                    ResolveError::UnknownVariant {
                        span: field.span,
                        name: field.name.clone(),
                        enum_name: name.name.clone(),
                        help: did_you_mean(&suggestion),
                    },
                    field.span,
                    &suggestion,
                );
                Type::Error
            };
            return ast::Expr {
                kind: ExprKind::Variant(field.clone()),
                span: expr.span,
                ty,
            };
        }
        let typed_base = self.expr(base, scope, None);
        let base_type = typed_base.ty.clone();
        let optional = base_type.is_optional();
        let field_type = match base_type.unwrap_optional() {
            Type::Error => Type::Error,
            Type::Record(id) => {
                let record = self.env.record(*id);
                match record.and_then(|record| record.field(&field.name)) {
                    Some(def) => {
                        let ty = def.ty.clone();
                        self.reference(field.span, Symbol::Field(*id, field.name.clone()), false);
                        ty
                    }
                    None => {
                        let names: Vec<String> = record
                            .map(|record| {
                                record
                                    .fields
                                    .iter()
                                    .map(|field| field.name.clone())
                                    .collect()
                            })
                            .unwrap_or_default();
                        let suggestion = suggest(&field.name, names.iter().map(String::as_str));
                        let help = did_you_mean(&suggestion)
                            .or_else(|| Some(format!("its fields are {}", names.join(", "))));
                        self.report_with_fix(
                            TypeError::UnknownField {
                                span: field.span,
                                field: field.name.clone(),
                                ty: self.env.type_name(base_type.unwrap_optional()),
                                help,
                            },
                            field.span,
                            &suggestion,
                        );
                        Type::Error
                    }
                }
            }
            Type::AnonRecord(fields) => match fields.iter().find(|(name, _)| *name == field.name) {
                Some((_, ty)) => ty.clone(),
                None => {
                    self.report(TypeError::UnknownField {
                        span: field.span,
                        field: field.name.clone(),
                        ty: "this record".into(),
                        help: None,
                    });
                    Type::Error
                }
            },
            other => {
                let help = if matches!(other, Type::Map(_)) {
                    Some(format!("maps are read with `[\"{}\"]`", field.name))
                } else {
                    None
                };
                self.report(TypeError::UnknownField {
                    span: field.span,
                    field: field.name.clone(),
                    ty: self.env.type_name(other),
                    help,
                });
                Type::Error
            }
        };
        // Reading a field of a value that may be absent gives a value that may be absent.
        let ty = if optional {
            field_type.optional()
        } else {
            field_type
        };
        ast::Expr {
            kind: ExprKind::Field(Box::new(typed_base), field.clone()),
            span: expr.span,
            ty,
        }
    }

    /// Checks a call `module.function(args)`. Returns the typed call (arguments normalized:
    /// every parameter named, in declaration order, defaults filled in) and the function.
    fn call(
        &mut self,
        expr: &ast::Expr,
        callee: &ast::Expr,
        args: &[ast::Arg],
        scope: &Scope,
    ) -> (typed::Expr, Option<FnId>) {
        let calls_allowed = std::mem::replace(&mut self.calls_allowed, false);
        let mut resolved: Option<FnId> = None;
        if let ExprKind::Field(base, name) = &callee.kind {
            // In callee position a module name wins over a task or parameter of the same
            // name (`task logs = logs.aggregate(...)`): only module functions can be called.
            let is_module = |name: &ast::Ident| {
                let has_functions = self
                    .env
                    .modules
                    .get(&name.name)
                    .is_some_and(|module| !module.functions.is_empty());
                has_functions || !scope.bindings.contains_key(&name.name)
            };
            if let Some(module) = base.as_name().filter(|module| is_module(module)) {
                if let Some(module_def) = self.env.modules.get(&module.name).cloned() {
                    if !scope.imports.contains(&module.name) && module.name != "alert" {
                        self.report(ResolveError::ModuleNotImported {
                            span: module.span,
                            module: module.name.clone(),
                        });
                    }
                    self.used_modules.insert((self.file, module.name.clone()));
                    self.reference(module.span, Symbol::Module(module.name.clone()), false);
                    match module_def.functions.get(&name.name) {
                        Some(id) => {
                            resolved = Some(*id);
                            self.reference(name.span, Symbol::Function(*id), false);
                        }
                        None => {
                            let suggestion = suggest(
                                &name.name,
                                module_def.functions.keys().map(String::as_str),
                            );
                            let help = did_you_mean(&suggestion).or_else(|| {
                                Some(format!(
                                    "std.{} has {}",
                                    module.name,
                                    module_def
                                        .functions
                                        .keys()
                                        .cloned()
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                            });
                            self.report_with_fix(
                                ResolveError::UnknownFunction {
                                    span: name.span,
                                    module: module.name.clone(),
                                    name: name.name.clone(),
                                    help,
                                },
                                name.span,
                                &suggestion,
                            );
                        }
                    }
                } else {
                    let suggestion =
                        suggest(&module.name, self.env.modules.keys().map(String::as_str));
                    self.report_with_fix(
                        ResolveError::UnknownModule {
                            span: module.span,
                            name: module.name.clone(),
                            help: did_you_mean(&suggestion),
                        },
                        module.span,
                        &suggestion,
                    );
                }
            } else {
                // `value.method()`: check the value; the call is the one mistake.
                let _ = self.expr(base, scope, None);
                self.report(TypeError::NotCallable { span: callee.span });
            }
        } else if !matches!(callee.kind, ExprKind::Error) {
            if let Some(name) = callee
                .as_name()
                .filter(|name| self.playbook_sigs.contains_key(&name.name))
            {
                self.report(TypeError::PlaybookCall {
                    span: callee.span,
                    name: name.name.clone(),
                });
            } else {
                let _ = self.expr(callee, scope, None);
                self.report(TypeError::NotCallable { span: callee.span });
            }
        }

        let def = resolved.and_then(|id| self.env.function(id)).cloned();
        let Some(def) = def else {
            for arg in args {
                let _ = self.expr(&arg.value, scope, None);
            }
            return (typed_error(expr.span), None);
        };
        if !calls_allowed {
            self.report(TypeError::CallOutsideTask {
                span: expr.span,
                function: def.qualified_name(),
            });
        }
        let checked = self.args(&def.qualified_name(), &def.params, args, expr.span, scope);
        let typed_args = checked
            .into_iter()
            .map(|(name, value, span)| ast::Arg {
                name: Some(ast::Ident { name, span }),
                value,
                span,
            })
            .collect();
        let typed_callee = ast::Expr {
            kind: ExprKind::Name(ast::Ident {
                name: def.qualified_name(),
                span: callee.span,
            }),
            span: callee.span,
            ty: Type::Error,
        };
        (
            ast::Expr {
                kind: ExprKind::Call(Box::new(typed_callee), typed_args),
                span: expr.span,
                ty: def.returns.clone(),
            },
            resolved,
        )
    }

    /// Matches arguments to parameters. Returns one entry per parameter, in declaration
    /// order: its name, its value (given, default, or an error node) and the argument span.
    fn args(
        &mut self,
        function: &str,
        params: &[ParamDef],
        args: &[ast::Arg],
        call_span: Span,
        scope: &Scope,
    ) -> Vec<(String, typed::Expr, Span)> {
        let mut given: Vec<Option<(typed::Expr, Span)>> = vec![None; params.len()];
        let mut seen_named = false;
        // After a broken argument, a "missing argument" would only repeat the same mistake.
        let mut broken_argument = false;
        for (position, arg) in args.iter().enumerate() {
            let index = match &arg.name {
                Some(name) => {
                    seen_named = true;
                    match params.iter().position(|param| param.name == name.name) {
                        Some(index) => index,
                        None => {
                            let suggestion =
                                suggest(&name.name, params.iter().map(|param| param.name.as_str()));
                            let help = did_you_mean(&suggestion).or_else(|| {
                                Some(format!(
                                    "its parameters are {}",
                                    params
                                        .iter()
                                        .map(|param| param.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                            });
                            self.report_with_fix(
                                TypeError::UnknownArgument {
                                    span: name.span,
                                    name: name.name.clone(),
                                    function: function.to_string(),
                                    help,
                                },
                                name.span,
                                &suggestion,
                            );
                            let _ = self.expr(&arg.value, scope, None);
                            broken_argument = true;
                            continue;
                        }
                    }
                }
                None => {
                    if seen_named {
                        self.report(TypeError::PositionalAfterNamed { span: arg.span });
                        let _ = self.expr(&arg.value, scope, None);
                        broken_argument = true;
                        continue;
                    }
                    if position >= params.len() {
                        self.report(TypeError::TooManyArguments {
                            span: arg.span,
                            function: function.to_string(),
                            max: params.len(),
                        });
                        let _ = self.expr(&arg.value, scope, None);
                        continue;
                    }
                    position
                }
            };
            let Some(param) = params.get(index) else {
                continue;
            };
            if let Some(Some((_, first))) = given.get(index) {
                self.report(TypeError::DuplicateArgument {
                    span: arg.span,
                    first: *first,
                    name: param.name.clone(),
                });
                let _ = self.expr(&arg.value, scope, None);
                continue;
            }
            let typed = self.expr(&arg.value, scope, Some(&param.ty));
            self.expect(&typed, &param.ty);
            if let Some(slot) = given.get_mut(index) {
                *slot = Some((typed, arg.span));
            }
        }
        let mut result = Vec::new();
        for (param, value) in params.iter().zip(given) {
            let (value, span) = match value {
                Some(value) => value,
                None => {
                    if param.required() && !broken_argument {
                        if param.guard {
                            self.report(GuardError::MissingLimit {
                                span: call_span,
                                function: function.to_string(),
                                param: param.name.clone(),
                            });
                        } else {
                            self.report(TypeError::MissingArgument {
                                span: call_span,
                                name: param.name.clone(),
                                function: function.to_string(),
                                ty: self.env.type_name(&param.ty),
                            });
                        }
                    }
                    let default = param
                        .default
                        .clone()
                        .unwrap_or_else(|| typed_error(call_span));
                    (default, call_span)
                }
            };
            result.push((param.name.clone(), value, span));
        }
        result
    }

    fn binary(
        &mut self,
        expr: &ast::Expr,
        op: BinaryOp,
        op_span: Span,
        left: &ast::Expr,
        right: &ast::Expr,
        scope: &Scope,
    ) -> typed::Expr {
        // A bare enum variant on the left resolves against the right side's type.
        let left_is_bare = left
            .as_name()
            .is_some_and(|name| !scope.bindings.contains_key(&name.name));
        let (typed_left, typed_right) = if left_is_bare
            && right
                .as_name()
                .is_none_or(|name| scope.bindings.contains_key(&name.name))
        {
            let typed_right = self.expr(right, scope, None);
            let hint = typed_right.ty.clone();
            let typed_left = self.expr(left, scope, Some(&hint));
            (typed_left, typed_right)
        } else {
            let left_hint = match op {
                BinaryOp::And | BinaryOp::Or => Some(Type::Bool),
                _ => None,
            };
            let typed_left = self.expr(left, scope, left_hint.as_ref());
            let right_hint = match op {
                BinaryOp::And | BinaryOp::Or => Some(Type::Bool),
                // Only enums need the hint, to resolve bare variants in the list.
                BinaryOp::In | BinaryOp::NotIn => match typed_left.ty.unwrap_optional() {
                    element @ Type::Enum(_) => Some(Type::List(Box::new(element.clone()))),
                    _ => None,
                },
                BinaryOp::Coalesce => Some(typed_left.ty.unwrap_optional().clone()),
                _ => Some(typed_left.ty.unwrap_optional().clone()),
            };
            let typed_right = self.expr(right, scope, right_hint.as_ref());
            (typed_left, typed_right)
        };
        let span = expr.span;
        let ty = match op {
            BinaryOp::And | BinaryOp::Or => {
                self.expect_value(&typed_left, &Type::Bool);
                self.expect_value(&typed_right, &Type::Bool);
                Type::Bool
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                let left_type = typed_left.ty.unwrap_optional().clone();
                let right_type = typed_right.ty.unwrap_optional().clone();
                let compatible =
                    compatible(&right_type, &left_type) || compatible(&left_type, &right_type);
                if compatible {
                    self.quantity_pair(&left_type, &right_type, span);
                } else {
                    self.operand_mismatch(
                        "compare",
                        op,
                        &left_type,
                        &right_type,
                        span,
                        &typed_right,
                    );
                }
                Type::Bool
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let left_type = self.value_type(&typed_left);
                let right_type = self.value_type(&typed_right);
                self.ordering(op, &left_type, &right_type, span, &typed_right);
                Type::Bool
            }
            BinaryOp::In | BinaryOp::NotIn => {
                let left_type = self.value_type(&typed_left);
                let right_type = self.value_type(&typed_right);
                match &right_type {
                    Type::List(element) => {
                        self.quantity_pair(&left_type, element, span);
                        if !compatible(&left_type, element) && !compatible(element, &left_type) {
                            self.report(TypeError::Mismatch {
                                span: typed_left.span,
                                expected: self.env.describe(element),
                                found: self.env.describe(&left_type),
                                help: Some(
                                    "`in` tests membership in a list of the same type".into(),
                                ),
                            });
                        }
                    }
                    Type::Map(_) => self.expect(&typed_left, &Type::String),
                    Type::Error => {}
                    other => {
                        self.report(TypeError::Mismatch {
                            span: typed_right.span,
                            expected: "a list or a map".into(),
                            found: self.env.describe(other),
                            help: None,
                        });
                    }
                }
                Type::Bool
            }
            BinaryOp::Match | BinaryOp::NotMatch => {
                self.expect_value(&typed_left, &Type::String);
                self.expect_value(&typed_right, &Type::String);
                if let Some(pattern) = plain_text(&typed_right)
                    // The evaluator compiles with the same crate and size limits.
                    && let Err(error) = regex::Regex::new(&pattern)
                {
                    let reason = match &error {
                        regex::Error::Syntax(text) => text
                            .lines()
                            .rev()
                            .find(|line| line.starts_with("error:"))
                            .map_or_else(
                                || text.clone(),
                                |line| line.trim_start_matches("error: ").to_string(),
                            ),
                        other => other.to_string(),
                    };
                    self.report(TypeError::InvalidRegex {
                        span: typed_right.span,
                        reason,
                    });
                }
                Type::Bool
            }
            BinaryOp::Coalesce => {
                let left_type = typed_left.ty.clone();
                let inner = left_type.unwrap_optional().clone();
                // `a ?? b ?? c`: a middle default may itself be absent.
                let wanted = if left_type.is_optional() {
                    inner.clone().optional()
                } else {
                    inner.clone()
                };
                self.expect(&typed_right, &wanted);
                if left_type.is_optional() {
                    if typed_right.ty.is_optional() {
                        typed_right.ty.clone()
                    } else {
                        inner
                    }
                } else {
                    left_type
                }
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                let left_type = self.value_type(&typed_left);
                let right_type = self.value_type(&typed_right);
                match arithmetic(op, &left_type, &right_type) {
                    Some(ty) => {
                        self.quantity_pair(&left_type, &right_type, span);
                        ty
                    }
                    None => {
                        let verb = match op {
                            BinaryOp::Add => "add",
                            BinaryOp::Sub => "subtract",
                            BinaryOp::Mul => "multiply",
                            _ => "divide",
                        };
                        if left_type.is_unit() && right_type.is_unit() {
                            self.report(TypeError::UnitMismatch {
                                span,
                                action: verb.into(),
                                op: op.as_str().into(),
                                left: self.env.type_name(&left_type),
                                right: self.env.type_name(&right_type),
                                help: unit_help(&left_type, &right_type),
                            });
                        } else {
                            let help = if matches!(
                                (&left_type, &right_type),
                                (Type::String, Type::String)
                            ) && op == BinaryOp::Add
                            {
                                Some("build text with interpolation: \"{a}{b}\"".into())
                            } else {
                                None
                            };
                            self.report(TypeError::BadOperands {
                                span,
                                op: op.as_str().into(),
                                left: self.env.describe(&left_type),
                                right: self.env.describe(&right_type),
                                help,
                            });
                        }
                        Type::Error
                    }
                }
            }
        };
        ast::Expr {
            kind: ExprKind::Binary(op, op_span, Box::new(typed_left), Box::new(typed_right)),
            span,
            ty,
        }
    }

    fn ordering(
        &mut self,
        op: BinaryOp,
        left: &Type,
        right: &Type,
        span: Span,
        right_expr: &typed::Expr,
    ) {
        if left.is_error() || right.is_error() {
            return;
        }
        let ordered = |ty: &Type| {
            matches!(
                ty,
                Type::Int
                    | Type::Float
                    | Type::Duration
                    | Type::Percent
                    | Type::Size
                    | Type::Time
                    | Type::String
                    | Type::Enum(_)
                    | Type::Quantity
            )
        };
        for side in [left, right] {
            if !ordered(side) {
                self.report(TypeError::NotComparable {
                    span,
                    ty: self.env.type_name(side),
                    op: op.as_str().into(),
                });
                return;
            }
        }
        let same = left == right
            || (left.is_numeric() && right.is_numeric())
            || (matches!(left, Type::Quantity) && right.unit_name().is_some())
            || (matches!(right, Type::Quantity) && left.unit_name().is_some());
        if same {
            self.quantity_pair(left, right, span);
            return;
        }
        self.operand_mismatch("compare", op, left, right, span, right_expr);
    }

    fn operand_mismatch(
        &mut self,
        action: &str,
        op: BinaryOp,
        left: &Type,
        right: &Type,
        span: Span,
        right_expr: &typed::Expr,
    ) {
        if left.is_error() || right.is_error() {
            return;
        }
        if left.is_unit() && right.is_unit() {
            self.report(TypeError::UnitMismatch {
                span,
                action: action.into(),
                op: op.as_str().into(),
                left: self.env.type_name(left),
                right: self.env.type_name(right),
                help: unit_help(left, right),
            });
        } else {
            self.report(TypeError::Mismatch {
                span: right_expr.span,
                expected: self.env.describe(left),
                found: self.env.describe(right),
                help: None,
            });
        }
    }

    /// Keeps the unit of `alert.value` consistent within one rule.
    fn quantity_pair(&mut self, left: &Type, right: &Type, span: Span) {
        let other = match (left, right) {
            (Type::Quantity, other) | (other, Type::Quantity) => other,
            _ => return,
        };
        self.note_quantity_unit(other, span);
    }

    fn note_quantity_unit(&mut self, ty: &Type, span: Span) {
        let Some(unit) = ty.unit_name() else {
            return;
        };
        match self.quantity_unit {
            None => self.quantity_unit = Some((unit, span)),
            Some((first_unit, first)) if first_unit != unit => {
                self.report(TypeError::InconsistentUnit {
                    span,
                    first,
                    unit: unit.into(),
                    first_unit: first_unit.into(),
                });
            }
            Some(_) => {}
        }
    }

    /// The type of a value that is about to be used (compared, computed with, written):
    /// an optional is reported once and its inner type returned.
    fn value_type(&mut self, expr: &typed::Expr) -> Type {
        match &expr.ty {
            Type::Optional(inner) => {
                self.unhandled_optional(expr);
                (**inner).clone()
            }
            other => other.clone(),
        }
    }

    fn unhandled_optional(&mut self, expr: &typed::Expr) {
        let text = self.text(expr.span).to_string();
        let mut root = expr;
        loop {
            match &root.kind {
                ExprKind::Field(base, _) | ExprKind::Index(base, _) => root = base,
                ExprKind::Paren(inner) => root = inner,
                _ => break,
            }
        }
        let reason = match &root.kind {
            ExprKind::Name(name) => match self.scope_reason(name) {
                Some(reason) => format!(
                    "task `{}` {reason}, so its output may be missing; ",
                    name.name
                ),
                None => String::new(),
            },
            _ => String::new(),
        };
        self.report(TypeError::UnhandledOptional {
            span: expr.span,
            what: format!("`{text}`"),
            ty: self.env.describe(&expr.ty),
            help: Some(format!("{reason}give a default with `{text} ?? ...`")),
        });
    }

    fn scope_reason(&self, name: &ast::Ident) -> Option<&'static str> {
        self.absent_reasons.get(&name.name).copied()
    }

    /// Reports a value whose type is not assignable to `want`.
    fn expect(&mut self, expr: &typed::Expr, want: &Type) {
        let found = &expr.ty;
        if compatible(found, want) {
            if matches!(found.unwrap_optional(), Type::Quantity) {
                self.note_quantity_unit(want.unwrap_optional(), expr.span);
            }
            return;
        }
        if let Type::Optional(inner) = found
            && compatible(inner, want)
        {
            self.unhandled_optional(expr);
            return;
        }
        let help = match (found, want) {
            (Type::Int, Type::Duration) => Some("give a unit: `5s`, `10m`".into()),
            (Type::Int | Type::Float, Type::Percent) => {
                Some("write a percentage with `%`: `90%`".into())
            }
            (Type::String, Type::Enum(id)) => self.env.enum_def(*id).map(|def| {
                format!(
                    "write the variant without quotes: one of {}",
                    def.variants.join(", ")
                )
            }),
            _ => None,
        };
        self.report(TypeError::Mismatch {
            span: expr.span,
            expected: self.env.describe(want),
            found: self.env.describe(found),
            help,
        });
    }

    /// Like [`Checker::expect`] for values that are used directly (conditions, operands).
    fn expect_value(&mut self, expr: &typed::Expr, want: &Type) {
        if expr.ty.is_optional() && !want.is_optional() {
            let inner = expr.ty.unwrap_optional();
            if compatible(inner, want) {
                self.unhandled_optional(expr);
                return;
            }
        }
        self.expect(expr, want);
    }
}

/// Whether a value of type `from` may be used where `to` is expected.
pub(crate) fn compatible(from: &Type, to: &Type) -> bool {
    match (from, to) {
        (Type::Error, _) | (_, Type::Error) => true,
        (a, b) if a == b => true,
        (Type::Int, Type::Float) => true,
        (Type::Quantity, other) => other.unit_name().is_some(),
        (Type::Optional(inner_from), Type::Optional(inner_to)) => compatible(inner_from, inner_to),
        (from, Type::Optional(inner)) => compatible(from, inner),
        (Type::List(a), Type::List(b)) | (Type::Map(a), Type::Map(b)) => compatible(a, b),
        (Type::AnonRecord(fields), Type::Map(value)) => {
            fields.iter().all(|(_, ty)| compatible(ty, value))
        }
        _ => false,
    }
}

fn arithmetic(op: BinaryOp, left: &Type, right: &Type) -> Option<Type> {
    use Type::*;
    if left.is_error() || right.is_error() {
        return Some(Error);
    }
    let number = |ty: &Type| matches!(ty, Int | Float);
    Some(match (op, left, right) {
        (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul, Int, Int) => Int,
        (BinaryOp::Div, Int, Int) => Float,
        (_, l, r) if number(l) && number(r) => Float,
        (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Duration,
        (BinaryOp::Add, Time, Duration)
        | (BinaryOp::Add, Duration, Time)
        | (BinaryOp::Sub, Time, Duration) => Time,
        (BinaryOp::Sub, Time, Time) => Duration,
        (BinaryOp::Add | BinaryOp::Sub, Percent, Percent) => Percent,
        (BinaryOp::Add | BinaryOp::Sub, Size, Size) => Size,
        (BinaryOp::Mul, Duration, r) if number(r) => Duration,
        (BinaryOp::Mul, l, Duration) if number(l) => Duration,
        (BinaryOp::Mul, Percent, r) if number(r) => Percent,
        (BinaryOp::Mul, l, Percent) if number(l) => Percent,
        (BinaryOp::Mul, Size, r) if number(r) => Size,
        (BinaryOp::Mul, l, Size) if number(l) => Size,
        (BinaryOp::Div, Duration, r) if number(r) => Duration,
        (BinaryOp::Div, Percent, r) if number(r) => Percent,
        (BinaryOp::Div, Size, r) if number(r) => Size,
        (BinaryOp::Div, Duration, Duration) | (BinaryOp::Div, Size, Size) => Float,
        _ => return None,
    })
}

fn unit_help(left: &Type, right: &Type) -> Option<String> {
    match (left, right) {
        (Type::Time, Type::Time) => Some("subtract times to get a Duration: `a - b`".into()),
        (Type::Time, _) | (_, Type::Time) => {
            Some("a Time moves by a Duration: `alert.starts_at - 10m`".into())
        }
        (Type::Duration, Type::Int | Type::Float) | (Type::Int | Type::Float, Type::Duration) => {
            Some("give the number a unit, such as `500ms` or `10m`".into())
        }
        (Type::Percent, Type::Int | Type::Float) | (Type::Int | Type::Float, Type::Percent) => {
            Some("write the number as a percentage, such as `90%`".into())
        }
        _ => Some("values of different units cannot be mixed".into()),
    }
}

/// The text of a string literal without interpolation.
fn plain_text(expr: &typed::Expr) -> Option<String> {
    let ExprKind::Str(parts) = &expr.unparen().kind else {
        return None;
    };
    let mut text = String::new();
    for part in parts {
        match part {
            ast::StrPart::Text(value, _) => text.push_str(value),
            ast::StrPart::Interpolation(_) => return None,
        }
    }
    Some(text)
}

/// The `and`-ed parts of a condition.
pub(crate) fn conjuncts(expr: &typed::Expr) -> Vec<&typed::Expr> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(expr) = stack.pop() {
        match &expr.unparen().kind {
            ExprKind::Binary(BinaryOp::And, _, left, right) => {
                stack.push(right);
                stack.push(left);
            }
            _ => out.push(expr.unparen()),
        }
    }
    out
}

/// Every subset of a rule's (sorted) conditions, as sorted lists. Rules with more than 10
/// conditions are only compared on the empty and the full set: the lint may then miss a
/// shadowing rule, but it stays fast.
fn subsets(conditions: &[&String]) -> Vec<Vec<String>> {
    if conditions.len() > 10 {
        return vec![
            Vec::new(),
            conditions
                .iter()
                .map(|condition| (*condition).clone())
                .collect(),
        ];
    }
    (0u32..(1 << conditions.len()))
        .map(|mask| {
            conditions
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, condition)| (*condition).clone())
                .collect()
        })
        .collect()
}

/// Whether a default value is a constant: literals, lists and records of constants, enum
/// variants, negated numbers.
fn is_constant(expr: &ast::Expr) -> bool {
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Duration(_)
        | ExprKind::Percent(_)
        | ExprKind::Size(_)
        | ExprKind::Time(_)
        | ExprKind::Name(_)
        | ExprKind::Error => true,
        ExprKind::Str(parts) => parts
            .iter()
            .all(|part| matches!(part, ast::StrPart::Text(..))),
        ExprKind::List(elements) => elements.iter().all(is_constant),
        ExprKind::Record(entries) => entries.iter().all(|entry| is_constant(&entry.value)),
        ExprKind::Unary(UnaryOp::Neg, inner) | ExprKind::Paren(inner) => is_constant(inner),
        _ => false,
    }
}
