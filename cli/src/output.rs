//! Rendering diagnostics: miette for people, and three machine formats for CI.
//!
//! The JSON format is versioned (`format_version`) and documented in docs/check-json.md;
//! lines and columns are 1-based everywhere, columns counted in characters.

use crate::Format;
use medic_compiler::diagnostic::WithSource;
use medic_compiler::{Analysis, Diagnostic, LineIndex};
use serde_json::{Value, json};
use std::fmt::Write as _;

pub const JSON_FORMAT_VERSION: u32 = 1;

pub fn render(analysis: &Analysis, format: Format, file_count: usize) -> String {
    match format {
        Format::Human => human(analysis, file_count),
        Format::Json => {
            let value = json_report(analysis, file_count);
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        }
        Format::Github => github(analysis),
        Format::Sarif => {
            let value = sarif(analysis);
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        }
    }
}

/// Renders diagnostics of one file with miette's graphical handler (no colour when the
/// output is not a terminal).
pub fn render_diagnostics(name: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let handler = miette::GraphicalReportHandler::new();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let with_source = WithSource::new(diagnostic, name, text);
        let _ = handler.render_report(&mut out, &with_source);
        out.push('\n');
    }
    out
}

fn human(analysis: &Analysis, file_count: usize) -> String {
    let mut out = String::new();
    for diagnostic in &analysis.diagnostics {
        let Some(file) = analysis.file(diagnostic.file) else {
            continue;
        };
        out.push_str(&render_diagnostics(
            &file.name,
            &file.text,
            std::slice::from_ref(diagnostic),
        ));
    }
    let files = if file_count == 1 { "file" } else { "files" };
    let _ = writeln!(
        out,
        "checked {file_count} {files}: {} error{}, {} warning{}",
        analysis.errors(),
        if analysis.errors() == 1 { "" } else { "s" },
        analysis.warnings(),
        if analysis.warnings() == 1 { "" } else { "s" },
    );
    out
}

struct Located {
    file: String,
    start: (usize, usize),
    end: (usize, usize),
}

fn locate(
    analysis: &Analysis,
    diagnostic: &Diagnostic,
    span: medic_compiler::ast::Span,
) -> Located {
    let Some(file) = analysis.file(diagnostic.file) else {
        return Located {
            file: String::new(),
            start: (1, 1),
            end: (1, 1),
        };
    };
    let index = LineIndex::new(&file.text);
    let start = index.position(&file.text, span.start as usize);
    let end = index.position(&file.text, span.end as usize);
    Located {
        file: file.name.clone(),
        start: (start.line + 1, start.column + 1),
        end: (end.line + 1, end.column + 1),
    }
}

fn range_json(located: &Located, span: medic_compiler::ast::Span) -> Value {
    json!({
        "start": {"line": located.start.0, "column": located.start.1, "offset": span.start},
        "end": {"line": located.end.0, "column": located.end.1, "offset": span.end},
    })
}

pub fn json_report(analysis: &Analysis, file_count: usize) -> Value {
    let diagnostics: Vec<Value> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| {
            let span = diagnostic.span();
            let located = locate(analysis, diagnostic, span);
            let labels = diagnostic.labels();
            let primary_label = labels
                .iter()
                .find(|label| label.offset() == span.start as usize)
                .and_then(|label| label.label().map(str::to_string));
            let related: Vec<Value> = labels
                .iter()
                .filter(|label| label.offset() != span.start as usize || label.len() != span.len())
                .map(|label| {
                    let label_span = medic_compiler::ast::Span::new(
                        label.offset(),
                        label.offset() + label.len(),
                    );
                    let label_located = locate(analysis, diagnostic, label_span);
                    json!({
                        "message": label.label().unwrap_or(""),
                        "range": range_json(&label_located, label_span),
                    })
                })
                .collect();
            let suggestion = diagnostic.suggestion.as_ref().map(|suggestion| {
                let suggestion_located = locate(analysis, diagnostic, suggestion.span);
                json!({
                    "replacement": suggestion.replacement,
                    "range": range_json(&suggestion_located, suggestion.span),
                })
            });
            json!({
                "file": located.file,
                "severity": diagnostic.severity().as_str(),
                "code": diagnostic.code(),
                "message": diagnostic.message(),
                "label": primary_label,
                "help": diagnostic.help(),
                "range": range_json(&located, span),
                "related": related,
                "suggestion": suggestion,
            })
        })
        .collect();
    json!({
        "format_version": JSON_FORMAT_VERSION,
        "tool": {"name": "medic", "version": env!("CARGO_PKG_VERSION")},
        "summary": {
            "files": file_count,
            "errors": analysis.errors(),
            "warnings": analysis.warnings(),
        },
        "diagnostics": diagnostics,
    })
}

/// GitHub Actions workflow commands: `::error file=...,line=...::message`.
fn github(analysis: &Analysis) -> String {
    let mut out = String::new();
    for diagnostic in &analysis.diagnostics {
        let span = diagnostic.span();
        let located = locate(analysis, diagnostic, span);
        let level = match diagnostic.severity() {
            medic_compiler::Severity::Error => "error",
            medic_compiler::Severity::Warning => "warning",
        };
        let mut message = diagnostic.message();
        if let Some(help) = diagnostic.help() {
            message.push_str("\nhelp: ");
            message.push_str(&help);
        }
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}",
            escape_property(&located.file),
            located.start.0,
            located.start.1,
            located.end.0,
            located.end.1,
            escape_property(&diagnostic.code()),
            escape_data(&message),
        );
    }
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// SARIF 2.1.0, one rule per diagnostic code.
fn sarif(analysis: &Analysis) -> Value {
    let mut rule_ids: Vec<String> = analysis.diagnostics.iter().map(Diagnostic::code).collect();
    rule_ids.sort();
    rule_ids.dedup();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| json!({"id": id, "name": id}))
        .collect();
    let results: Vec<Value> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| {
            let span = diagnostic.span();
            let located = locate(analysis, diagnostic, span);
            let level = match diagnostic.severity() {
                medic_compiler::Severity::Error => "error",
                medic_compiler::Severity::Warning => "warning",
            };
            let mut text = diagnostic.message();
            if let Some(help) = diagnostic.help() {
                text.push_str(". help: ");
                text.push_str(&help);
            }
            json!({
                "ruleId": diagnostic.code(),
                "level": level,
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": located.file},
                        "region": {
                            "startLine": located.start.0,
                            "startColumn": located.start.1,
                            "endLine": located.end.0,
                            "endColumn": located.end.1,
                        }
                    }
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "medic",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/medic/medic",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
