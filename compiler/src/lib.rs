//! The `.ops` language front end: parse, resolve, type-check, format.
//!
//! This crate is pure: it does no I/O and knows nothing of tokio, HTTP or files. Callers
//! hand it source text ([`Source`]) and get back an [`Analysis`]: the parsed files, the typed
//! program and every diagnostic. The standard library's declarations (`stdlib/*.ops`) are
//! embedded at build time and parsed like any other file.
//!
//! Guarantees: every AST node has a span; analysis never stops at the first error; no input
//! makes it panic, recurse without bound or hang (see `parser` for the limits); diagnostics
//! come out in a deterministic order (file, then position).

pub mod ast;
pub(crate) mod check;
pub mod diagnostic;
pub mod format;
pub mod line_index;
mod parallel;
pub mod parser;
pub mod plan;
pub mod symbols;
pub mod typed;
pub mod types;
pub mod units;

pub use diagnostic::{Diagnostic, Severity};
pub use line_index::LineIndex;

/// Identifies one file of an [`Analysis`]: an index into [`Analysis::files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// One file handed to the compiler.
#[derive(Debug, Clone)]
pub struct Source {
    /// How the file is shown in diagnostics, usually its path.
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// A file after parsing.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub name: String,
    pub text: String,
    pub ast: ast::File,
    pub is_stdlib: bool,
}

/// The standard library sources, embedded at build time.
pub const STDLIB: &[(&str, &str)] = &[
    ("std/alert.ops", include_str!("../../stdlib/alert.ops")),
    (
        "std/diagnose.ops",
        include_str!("../../stdlib/diagnose.ops"),
    ),
    ("std/http.ops", include_str!("../../stdlib/http.ops")),
    ("std/k8s.ops", include_str!("../../stdlib/k8s.ops")),
    ("std/logs.ops", include_str!("../../stdlib/logs.ops")),
    ("std/notify.ops", include_str!("../../stdlib/notify.ops")),
    ("std/prom.ops", include_str!("../../stdlib/prom.ops")),
    ("std/trace.ops", include_str!("../../stdlib/trace.ops")),
];

/// Everything the compiler learned about a set of files.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The standard library files first, then the user files in the order given.
    pub files: Vec<ParsedFile>,
    pub env: types::Env,
    pub program: typed::Program,
    /// Sorted by file, then position.
    pub diagnostics: Vec<Diagnostic>,
    /// Every resolved name, for editor navigation (see `symbols`).
    pub references: Vec<symbols::Reference>,
}

impl Analysis {
    pub fn file(&self, id: FileId) -> Option<&ParsedFile> {
        self.files.get(id.0 as usize)
    }

    /// The ids of the user files (not the standard library), in the order given.
    pub fn user_files(&self) -> impl Iterator<Item = FileId> + '_ {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, file)| !file.is_stdlib)
            .map(|(index, _)| FileId(index as u32))
    }

    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.severity() == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

/// Parses and checks a set of files together: playbooks and rules may refer to each
/// other across files.
pub fn check(sources: Vec<Source>) -> Analysis {
    check_cached(sources, &mut parser::ParseCache::default())
}

/// [`check`], reusing the parses of items that did not change since the previous call with
/// the same cache (the language server keeps one per workspace).
pub fn check_cached(sources: Vec<Source>, cache: &mut parser::ParseCache) -> Analysis {
    let inputs: Vec<(String, String, bool)> = STDLIB
        .iter()
        .map(|(name, text)| ((*name).to_string(), (*text).to_string(), true))
        .chain(
            sources
                .into_iter()
                .map(|source| (source.name, source.text, false)),
        )
        .collect();
    let parse = |index: usize, text: &str, cache: &mut parser::ParseCache| {
        let mut diagnostics = Vec::new();
        let ast = parser::parse_cached(FileId(index as u32), text, &mut diagnostics, cache);
        (ast, diagnostics)
    };
    // A cache (the language server's) is one per workspace and mostly hits: parse in order.
    // Without one (`medic check`), the files are parsed on every core.
    let parsed: Vec<(ast::File, Vec<Diagnostic>)> = if cache.is_enabled() {
        inputs
            .iter()
            .enumerate()
            .map(|(index, (_, text, _))| parse(index, text, cache))
            .collect()
    } else {
        parallel::map(&inputs, |index, (_, text, _)| {
            parse(index, text, &mut parser::ParseCache::default())
        })
    };
    let mut diagnostics = Vec::new();
    let mut files = Vec::with_capacity(inputs.len());
    for ((name, text, is_stdlib), (ast, mut found)) in inputs.into_iter().zip(parsed) {
        diagnostics.append(&mut found);
        files.push(ParsedFile {
            name,
            text,
            ast,
            is_stdlib,
        });
    }
    cache.sweep();
    let mut checker = check::Checker::new(&files);
    checker.build_env();
    let program = checker.check_program();
    diagnostics.append(&mut checker.diagnostics);
    let env = checker.env;
    let references = checker.references;
    diagnostics.sort_by_key(|diagnostic| {
        let span = diagnostic.span();
        (diagnostic.file, span.start, span.end, diagnostic.code())
    });
    Analysis {
        files,
        env,
        program,
        diagnostics,
        references,
    }
}

/// Formats one file. Returns the diagnostics instead when the file has syntax errors.
pub fn format(text: &str) -> Result<String, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let file = parser::parse(FileId(0), text, &mut diagnostics);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    Ok(format::format_file(&file, text))
}
