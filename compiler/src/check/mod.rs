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

mod env;
mod expr;
mod lints;
mod operators;
mod playbook;
mod promql;
mod rule;
pub(crate) mod test;

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
    /// PromQL literals found while checking, parsed together afterwards
    /// ([`Checker::check_promql`]) on every core.
    pub(super) promql: Vec<promql::PendingQuery>,
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
            promql: Vec::new(),
        }
    }

    pub(super) fn reference(&mut self, span: Span, symbol: Symbol, definition: bool) {
        self.references.push(Reference {
            file: self.file,
            span,
            symbol,
            definition,
        });
    }

    pub(super) fn report(&mut self, error: impl Into<CompileError>) {
        self.diagnostics.push(Diagnostic::new(self.file, error));
    }

    pub(super) fn report_with_fix(
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

    pub(super) fn text(&self, span: Span) -> &'a str {
        self.files
            .get(self.file.0 as usize)
            .and_then(|file| file.text.get(span.range()))
            .unwrap_or("")
    }

    pub(super) fn doc(&self, file: FileId, offset: u32) -> Option<String> {
        let parsed = self.files.get(file.0 as usize)?;
        parsed.ast.doc_before(&parsed.text, offset)
    }

    // ------------------------------------------------------------ the standard library

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

        // The playbooks' PromQL literals (most of a PromQL-heavy check: promql-parser compiles
        // every regex matcher) are parsed on the other cores while this one checks the rules.
        let early = std::mem::take(&mut self.promql);
        let (refusals, ()) = crate::parallel::map_alongside(&early, promql::refusal, || {
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
            self.tests(&mut program);

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
        });
        self.report_promql(&early, refusals);

        self.check_promql();
        program
    }

    pub(super) fn import(&mut self, import: &ast::Import, imports: &mut BTreeMap<String, Span>) {
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
}

/// Whether a value of type `from` may be used where `to` is expected.
pub(crate) fn compatible(from: &Type, to: &Type) -> bool {
    match (from, to) {
        (Type::Error, _) | (_, Type::Error) => true,
        (a, b) if a == b => true,
        (Type::Int, Type::Float) => true,
        // A URL can be written as text; text never becomes a URL (it could point anywhere).
        (Type::Url, Type::String) => true,
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

/// The text of a string literal without interpolation.
fn plain_text(expr: &typed::Expr) -> Option<String> {
    let ExprKind::Str(parts, _) = &expr.unparen().kind else {
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
        ExprKind::Str(parts, _) => parts
            .iter()
            .all(|part| matches!(part, ast::StrPart::Text(..))),
        ExprKind::List(elements) => elements.iter().all(is_constant),
        ExprKind::Record(entries) => entries.iter().all(|entry| is_constant(&entry.value)),
        ExprKind::Unary(UnaryOp::Neg, inner) | ExprKind::Paren(inner) => is_constant(inner),
        _ => false,
    }
}
