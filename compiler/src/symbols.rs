//! Names and what they refer to: the table editors navigate with.
//!
//! The checker records every name it resolves as a [`Reference`] (definitions included), so
//! "go to definition", "find references", "rename" and "hover" are lookups in one table, and
//! they agree with the type checker by construction.

use crate::ast::Span;
use crate::types::{EnumId, FnId, RecordId, Type};
use crate::{Analysis, FileId};

/// Something a name can refer to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Symbol {
    Rule(String),
    Playbook(String),
    Task {
        playbook: String,
        task: String,
    },
    Param {
        playbook: String,
        param: String,
    },
    /// The `alert` variable of rules.
    Alert,
    Module(String),
    Function(FnId),
    Record(RecordId),
    Field(RecordId, String),
    Enum(EnumId),
    Variant(EnumId, String),
}

impl Symbol {
    /// Whether users may rename it (their own names, not the standard library's).
    pub fn renamable(&self) -> bool {
        matches!(
            self,
            Symbol::Playbook(_) | Symbol::Task { .. } | Symbol::Param { .. } | Symbol::Rule(_)
        )
    }
}

/// One occurrence of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub file: FileId,
    pub span: Span,
    pub symbol: Symbol,
    /// Whether this occurrence defines the symbol.
    pub definition: bool,
}

impl Analysis {
    /// The name at a byte offset of a file (the innermost when spans nest).
    pub fn reference_at(&self, file: FileId, offset: usize) -> Option<&Reference> {
        self.references
            .iter()
            .filter(|reference| reference.file == file && reference.span.contains(offset))
            .min_by_key(|reference| reference.span.len())
    }

    /// Where a symbol is defined.
    pub fn definition(&self, symbol: &Symbol) -> Option<(FileId, Span)> {
        if let Some(reference) = self
            .references
            .iter()
            .find(|reference| reference.definition && reference.symbol == *symbol)
        {
            return Some((reference.file, reference.span));
        }
        let env = &self.env;
        match symbol {
            Symbol::Module(name) => env
                .modules
                .get(name)
                .map(|module| (module.file, Span::new(0, 0))),
            Symbol::Function(id) => env
                .function(*id)
                .map(|function| (function.file, function.span)),
            Symbol::Record(id) => env.record(*id).map(|record| (record.file, record.span)),
            Symbol::Field(id, field) => {
                let record = env.record(*id)?;
                record.field(field).map(|def| (record.file, def.span))
            }
            Symbol::Enum(id) | Symbol::Variant(id, _) => {
                env.enum_def(*id).map(|def| (def.file, def.span))
            }
            Symbol::Alert => env
                .find_record(Some("alert"), "Alert")
                .and_then(|id| env.record(id))
                .map(|record| (record.file, record.span)),
            _ => None,
        }
    }

    /// Every occurrence of a symbol, definitions included, in file and position order.
    pub fn references_to(&self, symbol: &Symbol) -> Vec<&Reference> {
        let mut found: Vec<&Reference> = self
            .references
            .iter()
            .filter(|reference| reference.symbol == *symbol)
            .collect();
        found.sort_by_key(|reference| (reference.file, reference.span.start));
        found.dedup_by_key(|reference| (reference.file, reference.span));
        found
    }

    /// Markdown describing a symbol: its signature or type, and its documentation.
    pub fn describe(&self, symbol: &Symbol) -> String {
        let env = &self.env;
        let code = |text: String| format!("```ops\n{text}\n```");
        let with_doc = |head: String, doc: Option<&String>| match doc {
            Some(doc) => format!("{head}\n\n{doc}"),
            None => head,
        };
        match symbol {
            Symbol::Rule(name) => {
                let rule = self.program.rules.iter().find(|rule| rule.name == *name);
                with_doc(
                    code(format!("rule {name}")),
                    rule.and_then(|rule| rule.doc.as_ref()),
                )
            }
            Symbol::Playbook(name) => {
                let Some(playbook) = self.program.playbook(name) else {
                    return code(format!("playbook {name}"));
                };
                let params: Vec<String> = playbook
                    .params
                    .iter()
                    .map(|param| format!("{}: {}", param.name, env.type_name(&param.ty)))
                    .collect();
                with_doc(
                    code(format!("playbook {name}({})", params.join(", "))),
                    playbook.doc.as_ref(),
                )
            }
            Symbol::Task { playbook, task } => {
                let found = self.program.playbook(playbook).and_then(|playbook| {
                    playbook
                        .tasks
                        .iter()
                        .find(|candidate| candidate.name == *task)
                });
                let Some(found) = found else {
                    return code(format!("task {task}"));
                };
                let function = found.function.and_then(|id| env.function(id));
                let head = code(format!("task {task}: {}", env.type_name(&found.output)));
                let mut text = head;
                if let Some(function) = function {
                    text.push_str(&format!("\n\nresult of `{}`", function.qualified_name()));
                    if found.output.is_optional() {
                        text.push_str(
                            " (may be absent: the task has `when` or continues on failure)",
                        );
                    }
                }
                text
            }
            Symbol::Param { playbook, param } => {
                let ty = self
                    .program
                    .playbook(playbook)
                    .and_then(|playbook| {
                        playbook
                            .params
                            .iter()
                            .find(|candidate| candidate.name == *param)
                    })
                    .map_or_else(|| "?".to_string(), |param| env.type_name(&param.ty));
                code(format!("{param}: {ty}")) + &format!("\n\nparameter of playbook `{playbook}`")
            }
            Symbol::Alert => {
                let record = env
                    .find_record(Some("alert"), "Alert")
                    .and_then(|id| env.record(id));
                with_doc(
                    code("alert: alert.Alert".into()),
                    record.and_then(|record| record.doc.as_ref()),
                )
            }
            Symbol::Module(name) => {
                let module = env.modules.get(name);
                with_doc(
                    code(format!("module std.{name}")),
                    module.and_then(|module| module.doc.as_ref()),
                )
            }
            Symbol::Function(id) => {
                let Some(function) = env.function(*id) else {
                    return String::new();
                };
                with_doc(code(self.signature(*id)), function.doc.as_ref())
            }
            Symbol::Record(id) => {
                let Some(record) = env.record(*id) else {
                    return String::new();
                };
                let fields: Vec<String> = record
                    .fields
                    .iter()
                    .map(|field| format!("  {}: {},", field.name, env.type_name(&field.ty)))
                    .collect();
                with_doc(
                    code(format!(
                        "record {}.{} {{\n{}\n}}",
                        record.module,
                        record.name,
                        fields.join("\n")
                    )),
                    record.doc.as_ref(),
                )
            }
            Symbol::Field(id, field) => {
                let Some(record) = env.record(*id) else {
                    return String::new();
                };
                let Some(def) = record.field(field) else {
                    return String::new();
                };
                let mut text = code(format!("{}: {}", def.name, env.type_name(&def.ty)));
                text.push_str(&format!("\n\nfield of `{}.{}`", record.module, record.name));
                if let Some(unit) = unit_note(&def.ty) {
                    text.push_str(&format!(" · {unit}"));
                }
                if let Some(doc) = &def.doc {
                    text.push_str(&format!("\n\n{doc}"));
                }
                text
            }
            Symbol::Enum(id) | Symbol::Variant(id, _) => {
                let Some(def) = env.enum_def(*id) else {
                    return String::new();
                };
                let head = match symbol {
                    Symbol::Variant(_, variant) => format!("{}.{variant}", def.name),
                    _ => format!("enum {} {{ {} }}", def.name, def.variants.join(", ")),
                };
                with_doc(code(head), def.doc.as_ref())
            }
        }
    }

    /// `action fn k8s.scale(deployment: String, ...) -> k8s.ScaleResult revertible`.
    pub fn signature(&self, id: FnId) -> String {
        let env = &self.env;
        let Some(function) = env.function(id) else {
            return String::new();
        };
        let params: Vec<String> = function
            .params
            .iter()
            .map(|param| {
                let mut text = format!("{}: {}", param.name, env.type_name(&param.ty));
                if param.guard {
                    text = format!("guard {text}");
                }
                if let Some(default) = &param.default {
                    let source = self
                        .file(function.file)
                        .and_then(|file| file.text.get(default.span.range()))
                        .unwrap_or("…");
                    text.push_str(&format!(" = {source}"));
                }
                text
            })
            .collect();
        let effect = match function.effect {
            crate::ast::Effect::Query => "query",
            crate::ast::Effect::Action => "action",
        };
        let revertible = if function.revertible {
            " revertible"
        } else {
            ""
        };
        format!(
            "{effect} fn {}({}) -> {}{revertible}",
            function.qualified_name(),
            params.join(", "),
            env.type_name(&function.returns)
        )
    }
}

fn unit_note(ty: &Type) -> Option<&'static str> {
    match ty.unwrap_optional() {
        Type::Duration => Some("a Duration, written 500ms, 30s, 10m, 2h"),
        Type::Percent => Some("a Percent, written 90%"),
        Type::Size => Some("a Size, written 512MiB, 10GB"),
        Type::Time => Some("a Time; move it with a Duration: `t - 10m`"),
        Type::Quantity => Some("a number whose unit comes with the alert (750ms, 92%, 12)"),
        Type::Url => Some("a Url, written as a template: \"https://host/path/{value}\""),
        _ => None,
    }
}
