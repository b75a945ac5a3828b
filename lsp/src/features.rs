//! Answers to editor requests, computed from an analysis. Pure functions of their inputs:
//! no locks, no I/O, and `None` (or an empty list) for anything they cannot answer.
//!
//! Positions are converted through the line index of the text they belong to (`Lines`),
//! never by scanning a text from its start, so that a request over a large file (semantic
//! tokens, symbols, diagnostics) stays O(n log n).

use crate::position::{Lines, Utf16Position, Walker};
use crate::workspace::Snapshot;
use medic_compiler::FileId;
use medic_compiler::ast::Span;
use medic_compiler::symbols::Symbol;
use medic_compiler::types::Type;
use std::collections::{BTreeMap, BTreeSet};
use tower_lsp::lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CompletionItem, CompletionItemKind,
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, DocumentSymbol, Documentation,
    Hover, HoverContents, Location, MarkupContent, MarkupKind, NumberOrString, Position, Range,
    SemanticToken, SemanticTokenType, SymbolKind, TextEdit, Url, WorkspaceEdit,
};

pub fn range(lines: Lines<'_>, span: Span) -> Range {
    Range {
        start: position(lines, span.start as usize),
        end: position(lines, span.end as usize),
    }
}

pub fn position(lines: Lines<'_>, offset: usize) -> Position {
    let Utf16Position { line, character } = lines.to_lsp(offset);
    Position { line, character }
}

pub fn offset(lines: Lines<'_>, position: Position) -> usize {
    lines.from_lsp(Utf16Position {
        line: position.line,
        character: position.character,
    })
}

/// The file of a document in an analysis, with its text and line index.
fn file_lines<'a>(snapshot: &'a Snapshot, uri: &Url) -> Option<(FileId, Lines<'a>)> {
    let file = snapshot.file_id(uri)?;
    Some((file, snapshot.lines(file)?))
}

/// Diagnostics for every document of the workspace (empty lists clear old ones).
pub fn diagnostics(snapshot: &Snapshot) -> Vec<(Url, Vec<Diagnostic>)> {
    let mut by_file: BTreeMap<FileId, Vec<Diagnostic>> = BTreeMap::new();
    for file in snapshot.analysis.user_files() {
        by_file.insert(file, Vec::new());
    }
    for diagnostic in &snapshot.analysis.diagnostics {
        let Some(lines) = snapshot.lines(diagnostic.file) else {
            continue;
        };
        let primary = diagnostic.span();
        let uri = snapshot.uri(diagnostic.file).cloned();
        let related: Vec<DiagnosticRelatedInformation> = diagnostic
            .labels()
            .iter()
            .filter(|label| label.offset() != primary.start as usize)
            .filter_map(|label| {
                Some(DiagnosticRelatedInformation {
                    location: Location {
                        uri: uri.clone()?,
                        range: range(
                            lines,
                            Span::new(label.offset(), label.offset() + label.len()),
                        ),
                    },
                    message: label.label().unwrap_or("").to_string(),
                })
            })
            .collect();
        let mut message = diagnostic.message();
        // Syntax errors say what was expected in their label; keep it.
        let expected = diagnostic
            .labels()
            .into_iter()
            .find(|label| label.offset() == primary.start as usize)
            .and_then(|label| label.label().map(str::to_string))
            .filter(|label| label.starts_with("expected"));
        if let Some(expected) = expected {
            message.push_str(&format!(" ({expected})"));
        }
        if let Some(help) = diagnostic.help() {
            message.push_str("\nhelp: ");
            message.push_str(&help);
        }
        by_file
            .entry(diagnostic.file)
            .or_default()
            .push(Diagnostic {
                range: range(lines, primary),
                severity: Some(match diagnostic.severity() {
                    medic_compiler::Severity::Error => DiagnosticSeverity::ERROR,
                    medic_compiler::Severity::Warning => DiagnosticSeverity::WARNING,
                }),
                code: Some(NumberOrString::String(diagnostic.code())),
                source: Some("medic".into()),
                message,
                related_information: (!related.is_empty()).then_some(related),
                ..Diagnostic::default()
            });
    }
    by_file
        .into_iter()
        .filter_map(|(file, diagnostics)| Some((snapshot.uri(file)?.clone(), diagnostics)))
        .collect()
}

pub fn hover(snapshot: &Snapshot, uri: &Url, at: Position) -> Option<Hover> {
    let file = snapshot.file_id(uri)?;
    let lines = snapshot.lines(file)?;
    let reference = snapshot.analysis.reference_at(file, offset(lines, at))?;
    let markdown = snapshot.analysis.describe(&reference.symbol);
    if markdown.is_empty() {
        return None;
    }
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: markdown,
        }),
        range: Some(range(lines, reference.span)),
    })
}

pub fn definition(snapshot: &Snapshot, uri: &Url, at: Position) -> Option<Location> {
    let file = snapshot.file_id(uri)?;
    let reference = snapshot
        .analysis
        .reference_at(file, offset(snapshot.lines(file)?, at))?;
    let (target, span) = snapshot.analysis.definition(&reference.symbol)?;
    Some(Location {
        uri: snapshot.uri(target)?.clone(),
        range: range(snapshot.lines(target)?, span),
    })
}

pub fn references(
    snapshot: &Snapshot,
    uri: &Url,
    at: Position,
    include_declaration: bool,
) -> Vec<Location> {
    let Some((file, lines)) = file_lines(snapshot, uri) else {
        return Vec::new();
    };
    let Some(reference) = snapshot.analysis.reference_at(file, offset(lines, at)) else {
        return Vec::new();
    };
    snapshot
        .analysis
        .references_to(&reference.symbol)
        .into_iter()
        .filter(|found| include_declaration || !found.definition)
        .filter_map(|found| {
            Some(Location {
                uri: snapshot.uri(found.file)?.clone(),
                range: range(snapshot.lines(found.file)?, found.span),
            })
        })
        .collect()
}

/// The range of a renamable name at a position.
pub fn prepare_rename(snapshot: &Snapshot, uri: &Url, at: Position) -> Option<Range> {
    let (file, lines) = file_lines(snapshot, uri)?;
    let reference = snapshot.analysis.reference_at(file, offset(lines, at))?;
    reference
        .symbol
        .renamable()
        .then(|| range(lines, reference.span))
}

pub fn rename(
    snapshot: &Snapshot,
    uri: &Url,
    at: Position,
    new_name: &str,
) -> Result<Option<WorkspaceEdit>, String> {
    let valid = new_name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && new_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && ![
            "import", "rule", "playbook", "task", "and", "or", "not", "in", "true", "false",
        ]
        .contains(&new_name);
    if !valid {
        return Err(format!("`{new_name}` is not a valid name"));
    }
    let Some((file, lines)) = file_lines(snapshot, uri) else {
        return Ok(None);
    };
    let Some(reference) = snapshot.analysis.reference_at(file, offset(lines, at)) else {
        return Ok(None);
    };
    if !reference.symbol.renamable() {
        return Err("only rules, playbooks, tasks and parameters can be renamed".into());
    }
    let mut changes: std::collections::HashMap<Url, Vec<TextEdit>> =
        std::collections::HashMap::new();
    for found in snapshot.analysis.references_to(&reference.symbol) {
        let (Some(target), Some(target_lines)) =
            (snapshot.uri(found.file), snapshot.lines(found.file))
        else {
            continue;
        };
        changes.entry(target.clone()).or_default().push(TextEdit {
            range: range(target_lines, found.span),
            new_text: new_name.to_string(),
        });
    }
    Ok(Some(WorkspaceEdit {
        changes: Some(changes),
        ..WorkspaceEdit::default()
    }))
}

#[allow(
    deprecated,
    reason = "DocumentSymbol has a deprecated field that must still be set"
)]
pub fn document_symbols(snapshot: &Snapshot, uri: &Url) -> Vec<DocumentSymbol> {
    let Some((file, lines)) = file_lines(snapshot, uri) else {
        return Vec::new();
    };
    let program = &snapshot.analysis.program;
    let mut symbols: Vec<(u32, DocumentSymbol)> = Vec::new();
    for rule in program.rules.iter().filter(|rule| rule.file == file) {
        symbols.push((
            rule.span.start,
            DocumentSymbol {
                name: rule.name.clone(),
                detail: Some(format!(
                    "runs {}",
                    rule.run.as_ref().map_or("?", |run| run.playbook.as_str())
                )),
                kind: SymbolKind::EVENT,
                tags: None,
                deprecated: None,
                range: range(lines, rule.span),
                selection_range: range(lines, rule.name_span),
                children: None,
            },
        ));
    }
    for playbook in program
        .playbooks
        .iter()
        .filter(|playbook| playbook.file == file)
    {
        let children = playbook
            .tasks
            .iter()
            .map(|task| DocumentSymbol {
                name: task.name.clone(),
                detail: task
                    .function
                    .and_then(|id| snapshot.analysis.env.function(id))
                    .map(|function| function.qualified_name()),
                kind: SymbolKind::METHOD,
                tags: None,
                deprecated: None,
                range: range(lines, task.span),
                selection_range: range(lines, task.name_span),
                children: None,
            })
            .collect();
        symbols.push((
            playbook.span.start,
            DocumentSymbol {
                name: playbook.name.clone(),
                detail: Some("playbook".into()),
                kind: SymbolKind::FUNCTION,
                tags: None,
                deprecated: None,
                range: range(lines, playbook.span),
                selection_range: range(lines, playbook.name_span),
                children: Some(children),
            },
        ));
    }
    symbols.sort_by_key(|(start, _)| *start);
    symbols.into_iter().map(|(_, symbol)| symbol).collect()
}

/// The whole document in canonical layout, or `None` when it has syntax errors.
pub fn formatting(lines: Lines<'_>) -> Option<Vec<TextEdit>> {
    let text = lines.text();
    let formatted = medic_compiler::format(text).ok()?;
    if formatted == text {
        return Some(Vec::new());
    }
    Some(vec![TextEdit {
        range: Range {
            start: Position {
                line: 0,
                character: 0,
            },
            end: position(lines, text.len()),
        },
        new_text: formatted,
    }])
}

/// Quick fixes for the `did you mean` suggestions in a range.
pub fn code_actions(snapshot: &Snapshot, uri: &Url, wanted: Range) -> Vec<CodeActionOrCommand> {
    let Some((file, lines)) = file_lines(snapshot, uri) else {
        return Vec::new();
    };
    let (start, end) = (offset(lines, wanted.start), offset(lines, wanted.end));
    snapshot
        .analysis
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.file == file)
        .filter_map(|diagnostic| {
            let suggestion = diagnostic.suggestion.as_ref()?;
            let span = diagnostic.span();
            let overlaps = (span.start as usize) <= end && start <= (span.end as usize);
            if !overlaps {
                return None;
            }
            let edit = TextEdit {
                range: range(lines, suggestion.span),
                new_text: suggestion.replacement.clone(),
            };
            let mut changes = std::collections::HashMap::new();
            changes.insert(uri.clone(), vec![edit]);
            Some(CodeActionOrCommand::CodeAction(CodeAction {
                title: format!("replace with `{}`", suggestion.replacement),
                kind: Some(CodeActionKind::QUICKFIX),
                is_preferred: Some(true),
                edit: Some(WorkspaceEdit {
                    changes: Some(changes),
                    ..WorkspaceEdit::default()
                }),
                ..CodeAction::default()
            }))
        })
        .collect()
}

// ---------------------------------------------------------------- completion

const RULE_KEYWORDS: &[&str] = &[
    "on alert",
    "when",
    "run",
    "cooldown",
    "concurrency",
    "priority",
    "continue",
];
const TASK_KEYWORDS: &[&str] = &[
    "task",
    "timeout",
    "after",
    "when",
    "retry",
    "backoff",
    "on failure",
    "approval",
    "revert after",
    "revert on resolve",
];
const TOP_KEYWORDS: &[&str] = &["import std.", "rule", "playbook"];

/// The item the cursor is in, found from the text (so it works while the file is broken):
/// the nearest line above that starts with `rule NAME` or `playbook NAME`.
/// Inside a `test` block: the statements, what follows `expect`, and the names each
/// statement takes (rules, playbooks, tasks, states, outcomes, reasons, modules). `None`
/// where the general completion applies (`k8s.|`, arguments).
fn test_completion(snapshot: &Snapshot, prefix: &str) -> Option<Vec<CompletionItem>> {
    use medic_compiler::plan::suite::{
        EXPECTATIONS, RUN_OUTCOMES, STATEMENTS, SUPPRESSION_REASONS, TASK_STATES,
    };
    let program = &snapshot.analysis.program;
    let words = |words: &[&str], kind| -> Vec<CompletionItem> {
        words
            .iter()
            .map(|word| item(word, kind, None, None))
            .collect()
    };
    let rules = || -> Vec<CompletionItem> {
        program
            .rules
            .iter()
            .map(|rule| {
                item(
                    &rule.name,
                    CompletionItemKind::FUNCTION,
                    Some("rule".into()),
                    rule.doc.clone(),
                )
            })
            .collect()
    };
    let tasks = |filter: &dyn Fn(&medic_compiler::typed::Task) -> bool| -> Vec<CompletionItem> {
        program
            .playbooks
            .iter()
            .flat_map(|playbook| {
                playbook
                    .tasks
                    .iter()
                    .filter(|task| filter(task))
                    .map(|task| {
                        item(
                            &task.name,
                            CompletionItemKind::VARIABLE,
                            Some(format!("task of {}", playbook.name)),
                            None,
                        )
                    })
            })
            .collect()
    };
    let modules = || -> Vec<CompletionItem> {
        snapshot
            .analysis
            .env
            .modules
            .iter()
            .filter(|(_, module)| !module.functions.is_empty())
            .map(|(name, module)| {
                item(
                    name,
                    CompletionItemKind::MODULE,
                    Some(format!("std.{name}")),
                    module.doc.clone(),
                )
            })
            .collect()
    };
    let line = prefix.trim_start();
    // `at +5m fire ...` is completed as `fire ...`.
    let line = match line.strip_prefix("at ") {
        Some(rest) => rest
            .split_once(' ')
            .map_or("", |(_, statement)| statement.trim_start()),
        None => line,
    };
    let words_of: Vec<&str> = line.split_whitespace().collect();
    let typing = !line.ends_with(' ');
    // The words before the one being typed.
    let done: &[&str] = if typing {
        words_of.split_last().map_or(&[], |(_, rest)| rest)
    } else {
        &words_of
    };
    if line.contains('.') || line.contains('(') || line.contains('{') || line.contains('=') {
        return None;
    }
    Some(match done {
        [] => words(STATEMENTS, CompletionItemKind::KEYWORD),
        ["expect"] => words(EXPECTATIONS, CompletionItemKind::KEYWORD),
        ["expect", "matched", ..] | ["expect", "suppressed"] => rules(),
        ["expect", "suppressed", _] => words(&["by"], CompletionItemKind::KEYWORD),
        ["expect", "suppressed", _, "by"] => {
            words(SUPPRESSION_REASONS, CompletionItemKind::ENUM_MEMBER)
        }
        ["expect", "task"] => tasks(&|_| true),
        ["expect", "task", _] => words(TASK_STATES, CompletionItemKind::ENUM_MEMBER),
        ["expect", "outcome"] => words(RUN_OUTCOMES, CompletionItemKind::ENUM_MEMBER),
        ["expect", "revert"] => {
            tasks(&|task| task.revert_after.is_some() || task.revert_on_resolve)
        }
        ["expect", "run"] => program
            .playbooks
            .iter()
            .map(|playbook| {
                item(
                    &playbook.name,
                    CompletionItemKind::FUNCTION,
                    Some("playbook".into()),
                    playbook.doc.clone(),
                )
            })
            .collect(),
        ["approve" | "reject"] => tasks(&|task| task.approval.is_some()),
        ["mock"] | ["expect", "action"] | ["expect", "no", "action"] => modules(),
        ["expect", "no"] => words(&["match", "action"], CompletionItemKind::KEYWORD),
        _ => return None,
    })
}

fn enclosing_item(text: &str, cursor: usize) -> Option<(&'static str, String)> {
    let before = text.get(..cursor)?;
    for line in before.lines().rev() {
        if let Some(rest) = line.strip_prefix("test \"") {
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            return Some(("test", name));
        }
        for keyword in ["rule", "playbook"] {
            if let Some(rest) = line
                .strip_prefix(keyword)
                .filter(|rest| rest.starts_with(' '))
            {
                let name: String = rest
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                return Some((keyword, name));
            }
        }
    }
    None
}

/// The task whose header or block holds the cursor, found from the text like
/// [`enclosing_item`]: the nearest line above, inside the same item, that starts with
/// `task NAME`, provided the cursor is still on that line or inside a bracket opened there.
fn enclosing_task(text: &str, cursor: usize) -> Option<String> {
    let before = text.get(..cursor)?;
    let mut end = before.len();
    loop {
        let start = before.get(..end)?.rfind('\n').map_or(0, |index| index + 1);
        let line = before.get(start..end)?;
        if line.starts_with("rule ") || line.starts_with("playbook ") {
            return None;
        }
        if let Some(rest) = line.trim_start().strip_prefix("task ") {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return (!name.is_empty() && still_open(before.get(start..)?)).then_some(name);
        }
        end = start.checked_sub(1)?;
    }
}

/// Whether `text` (from the start of a task header to the cursor) is still inside that
/// task: it is one line, or every line break lies inside a bracket opened after the start.
/// Strings and comments are skipped, as the lexer does; neither spans lines.
fn still_open(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let (mut in_string, mut in_comment, mut escaped) = (false, false, false);
    // Where the raw string being skipped ends: its quotes and brackets are text.
    let mut raw_until = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if index < raw_until {
            continue;
        }
        if !in_string && !in_comment && byte == b'r' && raw_string_opens(bytes, index) {
            raw_until = raw_string_end(bytes, index);
            continue;
        }
        if byte == b'\n' {
            if depth <= 0 {
                return false;
            }
            (in_string, in_comment, escaped) = (false, false, false);
            continue;
        }
        if in_comment {
            continue;
        }
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'/' if bytes.get(index + 1) == Some(&b'/') => in_comment = true,
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    true
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: Option<String>,
    documentation: Option<String>,
) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail,
        documentation: documentation.map(|value| {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            })
        }),
        ..CompletionItem::default()
    }
}

/// Completions at a position of the current text of a document (which may not parse),
/// using `snapshot` (the last analysis in which the file parsed) for names and types.
pub fn completion(snapshot: &Snapshot, document: Lines<'_>, at: Position) -> Vec<CompletionItem> {
    let text = document.text();
    let cursor = offset(document, at);
    let line_start = text
        .get(..cursor)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |index| index + 1);
    let prefix = text.get(line_start..cursor).unwrap_or("");
    let analysis = &snapshot.analysis;
    let env = &analysis.env;
    let enclosing = enclosing_item(text, cursor);
    // A task cannot name itself, nor a task that depends on it: either makes a cycle.
    let tasks = playbook_tasks(
        snapshot,
        &enclosing,
        enclosing_task(text, cursor).as_deref(),
    );

    if matches!(enclosing, Some(("test", _)))
        && let Some(items) = test_completion(snapshot, prefix)
    {
        return items;
    }
    // `after a, |` — task names.
    if let Some(rest) = prefix.trim_start().strip_prefix("after ")
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ',' || c == ' ')
    {
        return tasks
            .into_iter()
            .map(|(name, detail)| item(&name, CompletionItemKind::VARIABLE, Some(detail), None))
            .collect();
    }
    // `run |` — playbooks.
    if let Some(rest) = prefix.trim_start().strip_prefix("run ")
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return analysis
            .program
            .playbooks
            .iter()
            .map(|playbook| {
                let describe = analysis.describe(&Symbol::Playbook(playbook.name.clone()));
                item(
                    &playbook.name,
                    CompletionItemKind::FUNCTION,
                    Some("playbook".into()),
                    Some(describe),
                )
            })
            .collect();
    }
    // `a.b.|` — members.
    let chain: String = prefix
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if chain.contains('.') {
        return member_completion(snapshot, &chain, &enclosing);
    }
    // Inside `module.function(` — named arguments first.
    let mut items = Vec::new();
    let callee = open_call(text, cursor);
    if let Some(callee) = &callee {
        let params: Vec<(String, String)> = match callee.split_once('.') {
            Some((module, function)) => env
                .lookup_function(module, function)
                .and_then(|id| env.function(id))
                .map(|function| {
                    function
                        .params
                        .iter()
                        .map(|param| (param.name.clone(), env.type_name(&param.ty)))
                        .collect()
                })
                .unwrap_or_default(),
            None => analysis
                .program
                .playbook(callee)
                .map(|playbook| {
                    playbook
                        .params
                        .iter()
                        .map(|param| (param.name.clone(), env.type_name(&param.ty)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        for (name, ty) in params {
            let mut completion = item(
                &format!("{name}:"),
                CompletionItemKind::FIELD,
                Some(ty),
                None,
            );
            completion.insert_text = Some(format!("{name}: "));
            completion.sort_text = Some(format!("0{name}"));
            items.push(completion);
        }
    }
    // Keywords start a clause or an item; inside an argument list only values fit.
    let keywords: &[&[&str]] = match (&enclosing, &callee) {
        (_, Some(_)) => &[],
        (Some(("rule", _)), None) => &[RULE_KEYWORDS, TOP_KEYWORDS],
        (Some(("playbook", _)), None) => &[TASK_KEYWORDS, TOP_KEYWORDS],
        _ => &[TOP_KEYWORDS],
    };
    // Names in scope.
    match &enclosing {
        Some(("rule", _)) => {
            items.push(item(
                "alert",
                CompletionItemKind::VARIABLE,
                Some("alert.Alert".into()),
                None,
            ));
        }
        Some(("playbook", name)) => {
            if let Some(playbook) = analysis.program.playbook(name) {
                for param in &playbook.params {
                    items.push(item(
                        &param.name,
                        CompletionItemKind::VARIABLE,
                        Some(env.type_name(&param.ty)),
                        None,
                    ));
                }
            }
            for (task, detail) in tasks {
                items.push(item(
                    &task,
                    CompletionItemKind::VARIABLE,
                    Some(detail),
                    None,
                ));
            }
        }
        _ => {}
    }
    for keyword in keywords.iter().copied().flatten() {
        items.push(item(keyword, CompletionItemKind::KEYWORD, None, None));
    }
    for (name, module) in &env.modules {
        if !module.functions.is_empty() {
            items.push(item(
                name,
                CompletionItemKind::MODULE,
                Some(format!("std.{name}")),
                module.doc.clone(),
            ));
        }
    }
    items
}

/// The tasks of the enclosing playbook with their output types, leaving out `current` (the
/// task the cursor is in) and every task that depends on it, directly or through others.
fn playbook_tasks(
    snapshot: &Snapshot,
    enclosing: &Option<(&'static str, String)>,
    current: Option<&str>,
) -> Vec<(String, String)> {
    let Some(("playbook", name)) = enclosing else {
        return Vec::new();
    };
    let Some(playbook) = snapshot.analysis.program.playbook(name) else {
        return Vec::new();
    };
    let excluded = current.map_or_else(BTreeSet::new, |task| task_and_dependents(playbook, task));
    let env = &snapshot.analysis.env;
    playbook
        .tasks
        .iter()
        .filter(|task| !excluded.contains(task.name.as_str()))
        .map(|task| (task.name.clone(), env.type_name(&task.output)))
        .collect()
}

/// `task` and every task of `playbook` that reads it or waits for it, transitively: one
/// walk over the reversed dependency edges, so linear in the size of the playbook.
fn task_and_dependents<'a>(
    playbook: &'a medic_compiler::typed::Playbook,
    task: &'a str,
) -> BTreeSet<&'a str> {
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for candidate in &playbook.tasks {
        for dependency in candidate.depends_on.iter().chain(&candidate.after) {
            dependents
                .entry(dependency.as_str())
                .or_default()
                .push(candidate.name.as_str());
        }
    }
    let mut excluded = BTreeSet::from([task]);
    let mut pending = vec![task];
    while let Some(name) = pending.pop() {
        for &dependent in dependents.get(name).into_iter().flatten() {
            if excluded.insert(dependent) {
                pending.push(dependent);
            }
        }
    }
    excluded
}

/// The callee of the innermost call left open before the cursor: `k8s.scale` or a playbook.
fn open_call(text: &str, cursor: usize) -> Option<String> {
    let window_start = cursor.saturating_sub(4_000);
    let mut start = window_start;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let window = text.get(start..cursor)?;
    let mut depth = 0i32;
    let mut in_string = false;
    let mut open_at = None;
    let bytes = window.as_bytes();
    let raw = raw_string_ranges(bytes);
    let mut index = bytes.len();
    while index > 0 {
        index -= 1;
        // A raw string's quotes and brackets are text: jump to its start.
        if let Some(&(raw_start, _)) = raw.iter().find(|(_, end)| index + 1 == *end) {
            index = raw_start;
            continue;
        }
        let byte = bytes.get(index).copied().unwrap_or(b' ');
        if byte == b'"' {
            in_string = !in_string;
            continue;
        }
        if in_string {
            continue;
        }
        match byte {
            b')' => depth += 1,
            b'(' if depth == 0 => {
                open_at = Some(index);
                break;
            }
            b'(' => depth -= 1,
            b'{' | b'}' if depth == 0 => return None,
            _ => {}
        }
    }
    let before = window.get(..open_at?)?;
    let callee: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!callee.is_empty()).then_some(callee)
}

fn member_completion(
    snapshot: &Snapshot,
    chain: &str,
    enclosing: &Option<(&'static str, String)>,
) -> Vec<CompletionItem> {
    let analysis = &snapshot.analysis;
    let env = &analysis.env;
    let mut parts: Vec<&str> = chain.split('.').collect();
    parts.pop(); // the partial name being typed
    let Some(root) = parts.first().copied() else {
        return Vec::new();
    };
    if parts.len() == 1 {
        if let Some(module) = env
            .modules
            .get(root)
            .filter(|module| !module.functions.is_empty())
        {
            return module
                .functions
                .values()
                .filter_map(|id| {
                    let function = env.function(*id)?;
                    Some(item(
                        &function.name,
                        CompletionItemKind::FUNCTION,
                        Some(analysis.signature(*id)),
                        function.doc.clone(),
                    ))
                })
                .collect();
        }
        if let Some(id) = env.find_enum(None, root) {
            return env
                .enum_def(id)
                .map(|def| {
                    def.variants
                        .iter()
                        .map(|variant| {
                            item(
                                variant,
                                CompletionItemKind::ENUM_MEMBER,
                                Some(def.name.clone()),
                                None,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
    }
    let mut ty = match enclosing {
        Some(("rule", _)) if root == "alert" => env.alert_type(),
        Some(("playbook", name)) => {
            let playbook = analysis.program.playbook(name);
            let param = playbook
                .and_then(|playbook| playbook.params.iter().find(|param| param.name == root));
            let task =
                playbook.and_then(|playbook| playbook.tasks.iter().find(|task| task.name == root));
            match (param, task) {
                (Some(param), _) => param.ty.clone(),
                (None, Some(task)) => task.output.clone(),
                _ => return Vec::new(),
            }
        }
        _ => return Vec::new(),
    };
    for field in parts.iter().skip(1) {
        let next = match ty.unwrap_optional() {
            Type::Record(id) => env
                .record(*id)
                .and_then(|record| record.field(field))
                .map(|field| field.ty.clone()),
            _ => None,
        };
        let Some(next) = next else {
            return Vec::new();
        };
        ty = next;
    }
    let Type::Record(id) = ty.unwrap_optional() else {
        return Vec::new();
    };
    env.record(*id)
        .map(|record| {
            record
                .fields
                .iter()
                .map(|field| {
                    item(
                        &field.name,
                        CompletionItemKind::FIELD,
                        Some(env.type_name(&field.ty)),
                        field.doc.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- semantic tokens

/// The token types, in the order of the legend the server announces.
pub const TOKEN_TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::NAMESPACE,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::ENUM_MEMBER,
    SemanticTokenType::TYPE,
    SemanticTokenType::KEYWORD,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::COMMENT,
];

const NAMESPACE: u32 = 0;
const FUNCTION: u32 = 1;
const VARIABLE: u32 = 2;
const PARAMETER: u32 = 3;
const PROPERTY: u32 = 4;
const ENUM_MEMBER: u32 = 5;
const TYPE: u32 = 6;
const KEYWORD: u32 = 7;
const STRING: u32 = 8;
const NUMBER: u32 = 9;
const COMMENT: u32 = 10;

const KEYWORDS: &[&str] = &[
    "import",
    "rule",
    "playbook",
    "task",
    "on",
    "alert",
    "resolved",
    "any",
    "when",
    "run",
    "cooldown",
    "per",
    "concurrency",
    "priority",
    "continue",
    "timeout",
    "after",
    "retry",
    "backoff",
    "failure",
    "abort",
    "escalate",
    "approval",
    "by",
    "within",
    "revert",
    "resolve",
    "and",
    "or",
    "not",
    "in",
    "true",
    "false",
    "module",
    "record",
    "enum",
    "query",
    "action",
    "fn",
    "guard",
    "revertible",
];

pub fn semantic_tokens(snapshot: &Snapshot, uri: &Url) -> Vec<SemanticToken> {
    let Some((file, lines)) = file_lines(snapshot, uri) else {
        return Vec::new();
    };
    let text = lines.text();
    let resolved: std::collections::HashSet<usize> = snapshot
        .analysis
        .references
        .iter()
        .filter(|reference| reference.file == file)
        .map(|reference| reference.span.start as usize)
        .collect();
    // Names resolved by the checker override the lexical guess (`alert` is a variable).
    let mut tokens: Vec<(usize, usize, u32)> = lexical_tokens(text)
        .into_iter()
        .filter(|(start, _, _)| !resolved.contains(start))
        .collect();
    for reference in snapshot
        .analysis
        .references
        .iter()
        .filter(|reference| reference.file == file)
    {
        let kind = match reference.symbol {
            Symbol::Module(_) => NAMESPACE,
            Symbol::Function(_) | Symbol::Playbook(_) => FUNCTION,
            Symbol::Task { .. } | Symbol::Alert => VARIABLE,
            Symbol::Param { .. } => PARAMETER,
            Symbol::Field(..) => PROPERTY,
            Symbol::Variant(..) => ENUM_MEMBER,
            Symbol::Record(_) | Symbol::Enum(_) | Symbol::Rule(_) => TYPE,
        };

        tokens.push((reference.span.start as usize, reference.span.len(), kind));
    }
    tokens.sort_unstable();
    // The tokens are sorted by start, so one walk over the text converts them all.
    let mut walker = Walker::new(lines);
    let mut encoded = Vec::with_capacity(tokens.len());
    let (mut previous_line, mut previous_start, mut covered_until) = (0u32, 0u32, 0usize);
    for (start, length, kind) in tokens {
        if start < covered_until || length == 0 {
            continue;
        }
        covered_until = start + length;
        let begin = walker.to_lsp(start);
        let end = walker.to_lsp(start + length);
        if end.line != begin.line {
            continue;
        }
        let delta_line = begin.line - previous_line;
        let delta_start = if delta_line == 0 {
            begin.character - previous_start
        } else {
            begin.character
        };
        encoded.push(SemanticToken {
            delta_line,
            delta_start,
            length: end.character - begin.character,
            token_type: kind,
            token_modifiers_bitset: 0,
        });
        previous_line = begin.line;
        previous_start = begin.character;
    }
    encoded
}

/// The byte ranges of the raw strings in `bytes`, found by a forward pass that skips quoted
/// strings (so an `r"` inside one is text).
fn raw_string_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let (mut at, mut in_quoted) = (0, false);
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\\' if in_quoted => at += 1,
            b'"' | b'\n' => in_quoted = byte == b'"' && !in_quoted,
            b'r' if !in_quoted && raw_string_opens(bytes, at) => {
                let end = raw_string_end(bytes, at);
                ranges.push((at, end));
                at = end;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    ranges
}

/// Whether a raw string starts at `index`: an `r` that does not end a longer name, `#`s, `"`.
fn raw_string_opens(bytes: &[u8], index: usize) -> bool {
    let ends_name = index
        .checked_sub(1)
        .and_then(|before| bytes.get(before))
        .is_some_and(|byte| byte.is_ascii_alphanumeric() || *byte == b'_');
    let hashes = bytes.get(index + 1..).map_or(0, |rest| {
        rest.iter().take_while(|byte| **byte == b'#').count()
    });
    !ends_name && bytes.get(index + 1 + hashes) == Some(&b'"')
}

/// The offset after the raw string opened at `index` (its closing quote and hashes), or the
/// end of its line when it is not closed there.
fn raw_string_end(bytes: &[u8], index: usize) -> usize {
    let hashes = bytes.get(index + 1..).map_or(0, |rest| {
        rest.iter().take_while(|byte| **byte == b'#').count()
    });
    let mut at = index + hashes + 2;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\n' => return at,
            b'"' if (1..=hashes).all(|offset| bytes.get(at + offset) == Some(&b'#')) => {
                return at + 1 + hashes;
            }
            _ => at += 1,
        }
    }
    bytes.len()
}

/// Keywords, numbers, strings (split around interpolations) and comments.
fn lexical_tokens(text: &str) -> Vec<(usize, usize, u32)> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    // Modes: 0 = code; 1 = string. The stack holds interpolation depths.
    let mut in_string: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut index = 0;
    let mut string_start: Option<usize> = None;
    while let Some(&byte) = bytes.get(index) {
        if string_start.is_some() {
            match byte {
                b'\\' => index += 2,
                b'"' | b'\n' => {
                    if let Some(start) = string_start.take() {
                        tokens.push((start, index + 1 - start, STRING));
                    }
                    index += 1;
                }
                b'{' => {
                    if let Some(start) = string_start.take() {
                        tokens.push((start, index - start, STRING));
                    }
                    depth += 1;
                    in_string.push(depth);
                    index += 1;
                }
                _ => index += 1,
            }
            continue;
        }
        match byte {
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                let end = text
                    .get(index..)
                    .and_then(|rest| rest.find('\n'))
                    .map_or(text.len(), |offset| index + offset);
                tokens.push((index, end - index, COMMENT));
                index = end;
            }
            b'"' => {
                string_start = Some(index);
                index += 1;
            }
            // A raw string (`r"..."`, `r#"..."#`) is one string token: no escapes, no
            // interpolations, up to its closing quote and hashes or the end of the line.
            b'r' if raw_string_opens(bytes, index) => {
                let end = raw_string_end(bytes, index);
                tokens.push((index, end - index, STRING));
                index = end;
            }
            b'{' => {
                depth += 1;
                index += 1;
            }
            b'}' => {
                if in_string.last() == Some(&depth) {
                    in_string.pop();
                    string_start = Some(index);
                }
                depth = depth.saturating_sub(1);
                index += 1;
            }
            b'0'..=b'9' => {
                let end = index
                    + text.get(index..).map_or(0, |rest| {
                        rest.find(|c: char| {
                            !(c.is_ascii_alphanumeric()
                                || c == '.'
                                || c == '%'
                                || c == ':'
                                || c == '-')
                        })
                        .unwrap_or(rest.len())
                    });
                tokens.push((index, end - index, NUMBER));
                index = end.max(index + 1);
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = index
                    + text.get(index..).map_or(0, |rest| {
                        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(rest.len())
                    });
                if let Some(word) = text.get(index..end)
                    && KEYWORDS.contains(&word)
                {
                    tokens.push((index, end - index, KEYWORD));
                }
                index = end.max(index + 1);
            }
            _ => index += 1,
        }
    }
    tokens
}
