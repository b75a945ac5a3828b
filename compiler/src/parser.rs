//! Text to [`ast::File`], never stopping at the first error.
//!
//! pest stops at the first syntax error, so the file is first cut into top-level chunks by a
//! small scanner: a chunk starts at every line that begins (in column 0) with a top-level
//! keyword. Each chunk is parsed on its own; a broken chunk becomes an `Item::Error` with its
//! diagnostic and the next chunk parses normally. The scanner also collects comments (the
//! grammar skips them) and measures bracket nesting, so that input nested deeper than
//! [`MAX_NESTING`] is refused with a diagnostic before pest's recursive descent could exhaust
//! the stack. Expression trees deeper than [`MAX_EXPR_DEPTH`] (long operator chains) are
//! refused while building, for the same reason in later recursive phases.

use crate::FileId;
use crate::ast::{self, Span};
use crate::diagnostic::{Diagnostic, SyntaxError};
use pest::Parser as _;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::OnceLock;

mod fast;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct OpsParser;

/// Deepest bracket nesting accepted.
pub const MAX_NESTING: usize = 48;
/// Deepest expression tree accepted (operators chained, fields accessed, ...).
pub const MAX_EXPR_DEPTH: u32 = 128;
/// Largest file accepted.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

const TOP_LEVEL_KEYWORDS: &[&str] = &[
    "import", "rule", "playbook", "test", "module", "record", "enum", "query", "action",
];

/// Parses of top-level items, reused when the same item text appears again (at any
/// position): an editor re-analysing a file after a keystroke re-parses only the item that
/// changed. Only items that parsed without diagnostics are kept; entries not used by the
/// latest analysis are dropped by [`ParseCache::sweep`].
#[derive(Debug, Default)]
pub struct ParseCache {
    /// A default cache stores nothing: one-shot callers (`medic check`) would only pay for it.
    enabled: bool,
    entries: std::collections::HashMap<String, CachedChunk>,
    generation: u64,
}

#[derive(Debug)]
struct CachedChunk {
    offset: usize,
    items: Vec<ast::Item>,
    used: u64,
}

impl ParseCache {
    /// A cache that keeps item parses between calls.
    pub fn new() -> ParseCache {
        ParseCache {
            enabled: true,
            ..ParseCache::default()
        }
    }

    /// Drops the entries that the parses since the previous sweep did not use.
    pub fn sweep(&mut self) {
        let generation = self.generation;
        self.entries.retain(|_, chunk| chunk.used == generation);
        self.generation += 1;
    }

    /// Whether parses are kept (a default cache keeps none).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parses one file. Diagnostics are appended to `diagnostics`.
pub fn parse(file: FileId, text: &str, diagnostics: &mut Vec<Diagnostic>) -> ast::File {
    parse_cached(file, text, diagnostics, &mut ParseCache::default())
}

/// [`parse`], reusing (and filling) a cache of item parses.
pub fn parse_cached(
    file: FileId,
    text: &str,
    diagnostics: &mut Vec<Diagnostic>,
    cache: &mut ParseCache,
) -> ast::File {
    if text.len() > MAX_FILE_BYTES {
        diagnostics.push(Diagnostic::new(
            file,
            SyntaxError::FileTooLarge {
                span: Span::new(0, 0),
                limit: MAX_FILE_BYTES,
            },
        ));
        return ast::File::default();
    }
    let scan = scan(text);
    let mut items = Vec::new();
    for chunk in &scan.chunks {
        let Some(chunk_text) = text.get(chunk.start..chunk.end) else {
            continue;
        };
        if let Some(at) = chunk.too_deep_at {
            diagnostics.push(Diagnostic::new(
                file,
                SyntaxError::TooDeep {
                    span: Span::new(at, at + 1),
                    limit: MAX_NESTING,
                },
            ));
            items.push(ast::Item::Error(Span::new(chunk.start, chunk.end)));
            continue;
        }
        if let Some(at) = chunk.unterminated_string_at {
            diagnostics.push(Diagnostic::new(
                file,
                SyntaxError::UnterminatedString {
                    span: Span::new(at, at + 1),
                },
            ));
            items.push(ast::Item::Error(Span::new(chunk.start, chunk.end)));
            continue;
        }
        if let Some(cached) = cache.entries.get_mut(chunk_text) {
            cached.used = cache.generation;
            let delta = chunk.start as i64 - cached.offset as i64;
            for item in &cached.items {
                let mut item = item.clone();
                use ast::Shift;
                item.shift(delta);
                items.push(item);
            }
            continue;
        }
        let diagnostics_before = diagnostics.len();
        let items_before = items.len();
        match fast::chunk(text, chunk.start, chunk.end, &scan.comments) {
            Some(mut parsed) => items.append(&mut parsed),
            None => pest_chunk(file, text, chunk, &scan.comments, diagnostics, &mut items),
        }
        if cache.enabled && diagnostics.len() == diagnostics_before {
            cache.entries.insert(
                chunk_text.to_string(),
                CachedChunk {
                    offset: chunk.start,
                    items: items.get(items_before..).unwrap_or(&[]).to_vec(),
                    used: cache.generation,
                },
            );
        }
    }
    let mut broken_playbooks = Vec::new();
    for item in &items {
        if let ast::Item::Error(span) = item {
            broken_playbooks.extend(playbook_names(text.get(span.range()).unwrap_or("")));
        }
    }
    let has_syntax_errors = items.iter().any(|item| matches!(item, ast::Item::Error(_)));
    ast::File {
        items,
        comments: scan.comments,
        broken_playbooks,
        has_syntax_errors,
    }
}

/// The chunk's items through the pest grammar and the builder, with their diagnostics (the
/// path for everything [`fast::chunk`] declines).
fn pest_chunk(
    file: FileId,
    text: &str,
    chunk: &Chunk,
    comments: &[ast::Comment],
    diagnostics: &mut Vec<Diagnostic>,
    items: &mut Vec<ast::Item>,
) {
    let chunk_text = text.get(chunk.start..chunk.end).unwrap_or("");
    match OpsParser::parse(Rule::chunk, chunk_text) {
        Ok(pairs) => {
            let mut builder = Builder {
                file,
                offset: chunk.start,
                text,
                comments,
                diagnostics,
                carried_depth: 0,
            };
            builder.chunk(pairs, items);
        }
        Err(error) => {
            diagnostics.push(syntax_error(file, text, chunk.start, &error));
            items.push(ast::Item::Error(Span::new(chunk.start, chunk.end)));
        }
    }
}

// ---------------------------------------------------------------- scanner

struct Chunk {
    start: usize,
    end: usize,
    too_deep_at: Option<usize>,
    unterminated_string_at: Option<usize>,
}

struct Scan {
    chunks: Vec<Chunk>,
    comments: Vec<ast::Comment>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Code,
    /// Inside a `{...}` interpolation opened at the given bracket depth.
    Interpolation(usize),
    /// Inside a string literal opened at the given offset.
    Str(usize),
}

/// Splits the text into chunks, collects comments and measures nesting. Strings are tracked
/// (including `{...}` interpolations, which may hold strings) so that `//` inside a URL is
/// not taken for a comment.
fn scan(text: &str) -> Scan {
    let bytes = text.as_bytes();
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut comments = Vec::new();
    let new_chunk = |start| Chunk {
        start,
        end: text.len(),
        too_deep_at: None,
        unterminated_string_at: None,
    };
    let mut current = new_chunk(0);
    // The stack of modes: a string inside an interpolation inside a string, and so on.
    let mut modes: Vec<Mode> = vec![Mode::Code];
    let mut depth: usize = 0;
    let mut index = 0;
    let mut line_start = true;
    while let Some(&byte) = bytes.get(index) {
        let mode = modes.last().copied().unwrap_or(Mode::Code);
        if line_start
            && modes.len() == 1
            && index > current.start
            && starts_item(bytes, index)
            && text.get(current.start..index).is_some_and(has_code)
        {
            current.end = index;
            chunks.push(current);
            current = new_chunk(index);
            depth = 0;
        }
        line_start = false;
        match mode {
            Mode::Code | Mode::Interpolation(_) => match byte {
                b'/' if bytes.get(index + 1) == Some(&b'/') => {
                    let end = text
                        .get(index..)
                        .and_then(|rest| rest.find('\n'))
                        .map_or(text.len(), |offset| index + offset);
                    comments.push(comment(text, index, end));
                    index = end;
                    continue;
                }
                b'"' => modes.push(Mode::Str(index)),
                // A raw string has no escapes and no interpolations: skip it whole, so that
                // its `"`, `{` and `//` are text.
                b'r' if raw_string_opens(bytes, index) => {
                    match raw_string_end(bytes, index) {
                        Ok(end) => index = end,
                        Err(line_end) => {
                            if current.unterminated_string_at.is_none() {
                                current.unterminated_string_at = Some(index);
                            }
                            index = line_end;
                        }
                    }
                    continue;
                }
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_NESTING && current.too_deep_at.is_none() {
                        current.too_deep_at = Some(index);
                    }
                }
                b')' | b']' | b'}' => {
                    if byte == b'}' && mode == Mode::Interpolation(depth) {
                        modes.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                b'\n' => {
                    // Strings cannot span lines: a line break inside an interpolation
                    // means its string was never closed.
                    if let Some(Mode::Str(opened_at)) =
                        modes.iter().find(|mode| matches!(mode, Mode::Str(_)))
                    {
                        if current.unterminated_string_at.is_none() {
                            current.unterminated_string_at = Some(*opened_at);
                        }
                        modes.truncate(1);
                    }
                    line_start = true;
                }
                _ => {}
            },
            Mode::Str(opened_at) => match byte {
                b'\\' => {
                    index += 2;
                    continue;
                }
                b'"' => {
                    modes.pop();
                }
                b'{' => {
                    depth += 1;
                    if depth > MAX_NESTING && current.too_deep_at.is_none() {
                        current.too_deep_at = Some(index);
                    }
                    modes.push(Mode::Interpolation(depth));
                }
                b'\n' => {
                    if current.unterminated_string_at.is_none() {
                        current.unterminated_string_at = Some(opened_at);
                    }
                    modes.truncate(1);
                    line_start = true;
                }
                _ => {}
            },
        }
        index += 1;
    }
    if let Some(Mode::Str(opened_at)) = modes.last().copied()
        && current.unterminated_string_at.is_none()
    {
        current.unterminated_string_at = Some(opened_at);
    }
    current.end = text.len();
    chunks.push(current);
    Scan { chunks, comments }
}

/// Whether a raw string (`r"`, `r#"`, ...) starts at `index`: an `r` that does not end a
/// longer name, then `#`s, then `"`.
fn raw_string_opens(bytes: &[u8], index: usize) -> bool {
    let ends_name = index
        .checked_sub(1)
        .and_then(|before| bytes.get(before))
        .is_some_and(|byte| byte.is_ascii_alphanumeric() || *byte == b'_');
    if ends_name {
        return false;
    }
    let mut after = index + 1;
    while bytes.get(after) == Some(&b'#') {
        after += 1;
    }
    bytes.get(after) == Some(&b'"')
}

/// The offset just after the raw string opened at `index`, or, when the line (or the text)
/// ends first, the offset of that line's end.
fn raw_string_end(bytes: &[u8], index: usize) -> Result<usize, usize> {
    let mut hashes = 0;
    let mut at = index + 1;
    while bytes.get(at) == Some(&b'#') {
        hashes += 1;
        at += 1;
    }
    // `at` is the opening quote.
    at += 1;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\n' => return Err(at),
            b'"' if (1..=hashes).all(|offset| bytes.get(at + offset) == Some(&b'#')) => {
                return Ok(at + 1 + hashes);
            }
            _ => at += 1,
        }
    }
    Err(bytes.len())
}

fn comment(text: &str, start: usize, end: usize) -> ast::Comment {
    let raw = text.get(start..end).unwrap_or("");
    let (kind, body) = if let Some(body) = raw
        .strip_prefix("///")
        .filter(|body| !body.starts_with('/'))
    {
        (ast::CommentKind::Doc, body)
    } else if let Some(body) = raw.strip_prefix("//!") {
        (ast::CommentKind::InnerDoc, body)
    } else {
        (ast::CommentKind::Line, raw.get(2..).unwrap_or(""))
    };
    ast::Comment {
        kind,
        span: Span::new(start, end),
        text: body.trim_end().to_string(),
    }
}

/// The names after `playbook` at the start of lines of a broken chunk.
fn playbook_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("playbook"))
        .filter(|rest| rest.starts_with([' ', '\t']))
        .filter_map(|rest| {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Whether a top-level item starts here: a keyword, blanks, then a name.
fn starts_item(bytes: &[u8], index: usize) -> bool {
    TOP_LEVEL_KEYWORDS.iter().any(|keyword| {
        if !starts_with_word(bytes, index, keyword) {
            return false;
        }
        let mut after = index + keyword.len();
        let mut blanks = 0;
        while bytes
            .get(after)
            .is_some_and(|byte| *byte == b' ' || *byte == b'\t')
        {
            after += 1;
            blanks += 1;
        }
        blanks > 0
            && bytes.get(after).is_some_and(|byte| {
                byte.is_ascii_alphabetic()
                        || *byte == b'_'
                        // A test is named by a string.
                        || (*keyword == "test" && *byte == b'"')
            })
    })
}

fn starts_with_word(bytes: &[u8], index: usize, word: &str) -> bool {
    let end = index + word.len();
    bytes.get(index..end) == Some(word.as_bytes())
        && !bytes
            .get(end)
            .is_some_and(|next| next.is_ascii_alphanumeric() || *next == b'_')
}

/// Whether a piece of text holds anything but whitespace and comments.
fn has_code(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        !line.is_empty() && !line.starts_with("//")
    })
}

// ---------------------------------------------------------------- pest errors

fn syntax_error(
    file: FileId,
    text: &str,
    chunk_start: usize,
    error: &pest::error::Error<Rule>,
) -> Diagnostic {
    let position = match error.location {
        pest::error::InputLocation::Pos(position) => position,
        pest::error::InputLocation::Span((start, _)) => start,
    } + chunk_start;
    let rest = text.get(position..).unwrap_or("");
    let token: String = if rest.is_empty() {
        String::new()
    } else if rest
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
    {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .take(40)
            .collect()
    } else {
        rest.chars().take(1).collect()
    };
    let found = if token.is_empty() {
        "end of file".to_string()
    } else if token.chars().all(char::is_whitespace) {
        "end of line".to_string()
    } else {
        format!("`{token}`")
    };
    let expected = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => describe_expected(positives),
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let help = syntax_help(&token, &expected);
    let span_len = token.len().max(1);
    let span = if token.is_empty() {
        Span::new(position, position)
    } else {
        Span::new(position, position + span_len)
    };
    Diagnostic::new(
        file,
        SyntaxError::Unexpected {
            span,
            found,
            expected,
            help,
        },
    )
}

fn syntax_help(token: &str, expected: &str) -> Option<String> {
    if token == "=" && expected.contains("operator") {
        return Some(
            "compare with `==`; `=` only appears in `task name = ...` and defaults".into(),
        );
    }
    if token == "&" || token == "|" {
        return Some("write `and` / `or`".into());
    }
    if token == "!" {
        return Some("write `not`".into());
    }
    if token == "'" {
        return Some("strings use double quotes".into());
    }
    None
}

/// Turns pest's list of expected rules into words a runbook author understands.
fn describe_expected(positives: &[Rule]) -> String {
    let mut words: Vec<String> = Vec::new();
    for expected_rule in positives {
        let word = match expected_rule {
            Rule::ident => "a name".to_string(),
            Rule::expr | Rule::unary | Rule::expr_unit | Rule::primary_chain => {
                "an expression".into()
            }
            Rule::int_lit
            | Rule::float_lit
            | Rule::percent_lit
            | Rule::duration_lit
            | Rule::size_lit
            | Rule::time_lit
            | Rule::bool_lit
            | Rule::string
            | Rule::list
            | Rule::record_lit
            | Rule::paren
            | Rule::op_not
            | Rule::op_neg => "an expression".into(),
            Rule::kw_and
            | Rule::kw_or
            | Rule::kw_in
            | Rule::kw_not
            | Rule::op_or
            | Rule::op_and
            | Rule::op_in
            | Rule::op_not_in
            | Rule::op_eq
            | Rule::op_ne
            | Rule::op_match
            | Rule::op_not_match
            | Rule::op_le
            | Rule::op_ge
            | Rule::op_lt
            | Rule::op_gt
            | Rule::op_coalesce
            | Rule::op_add
            | Rule::op_sub
            | Rule::op_mul
            | Rule::op_div => "an operator".into(),
            // Wherever an operand may continue, an operator may follow too (the grammar tests
            // operators behind a one-character lookahead, which pest does not list).
            Rule::field_access | Rule::call_args | Rule::index => {
                if !words.iter().any(|word| word == "an operator") {
                    words.push("an operator".into());
                }
                "`.`, `(` or `[`".into()
            }
            Rule::import | Rule::k_import => "`import`".into(),
            Rule::rule | Rule::k_rule => "`rule`".into(),
            Rule::playbook | Rule::k_playbook => "`playbook`".into(),
            Rule::module_decl
            | Rule::record_decl
            | Rule::enum_decl
            | Rule::fn_decl
            | Rule::effect => {
                continue;
            }
            Rule::EOI => "end of file".into(),
            Rule::on_clause => "`on alert`".into(),
            Rule::when_clause => "`when`".into(),
            Rule::run_clause => "`run`".into(),
            Rule::cooldown_clause => "`cooldown`".into(),
            Rule::concurrency_clause => "`concurrency`".into(),
            Rule::priority_clause => "`priority`".into(),
            Rule::continue_clause => "`continue`".into(),
            Rule::task => "`task`".into(),
            Rule::timeout_clause => "`timeout`".into(),
            Rule::task_block => "`{`".into(),
            Rule::after_clause => "`after`".into(),
            Rule::retry_clause => "`retry`".into(),
            Rule::failure_clause => "`on failure`".into(),
            Rule::approval_clause => "`approval`".into(),
            Rule::revert_clause => "`revert`".into(),
            Rule::failure_policy => "`abort`, `continue` or `escalate`".into(),
            Rule::lifecycle => "`resolved` or `any`".into(),
            Rule::alert_names | Rule::any_alert => "an alert name string or `*`".into(),
            Rule::params | Rule::param => "a parameter".into(),
            Rule::args | Rule::arg => "an argument".into(),
            Rule::type_expr | Rule::named_type | Rule::list_type | Rule::map_type => {
                "a type".into()
            }
            Rule::optional_mark => "`?`".into(),
            Rule::guard_kw => "a parameter".into(),
            Rule::import_list => "a module name".into(),
            Rule::record_entry => "a field".into(),
            Rule::field_decl => "a field".into(),
            other => {
                let name = format!("{other:?}");
                match name.strip_prefix("k_") {
                    Some(keyword) => format!("`{keyword}`"),
                    None => name.replace('_', " "),
                }
            }
        };
        if !words.contains(&word) {
            words.push(word);
        }
    }
    match words.len() {
        0 => "something else".into(),
        1 => words.join(""),
        _ => {
            let last = words.pop().unwrap_or_default();
            format!("{} or {last}", words.join(", "))
        }
    }
}

// ---------------------------------------------------------------- pest pairs to AST

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::op_or, Assoc::Left))
            .op(Op::infix(Rule::op_and, Assoc::Left))
            .op(Op::prefix(Rule::op_not))
            .op(Op::infix(Rule::op_eq, Assoc::Left)
                | Op::infix(Rule::op_ne, Assoc::Left)
                | Op::infix(Rule::op_lt, Assoc::Left)
                | Op::infix(Rule::op_le, Assoc::Left)
                | Op::infix(Rule::op_gt, Assoc::Left)
                | Op::infix(Rule::op_ge, Assoc::Left)
                | Op::infix(Rule::op_in, Assoc::Left)
                | Op::infix(Rule::op_not_in, Assoc::Left)
                | Op::infix(Rule::op_match, Assoc::Left)
                | Op::infix(Rule::op_not_match, Assoc::Left))
            .op(Op::infix(Rule::op_coalesce, Assoc::Left))
            .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
            .op(Op::infix(Rule::op_mul, Assoc::Left) | Op::infix(Rule::op_div, Assoc::Left))
            .op(Op::prefix(Rule::op_neg))
    })
}

struct Builder<'d> {
    file: FileId,
    offset: usize,
    /// The whole file, and its comments, to trim trailing trivia off spans.
    text: &'d str,
    comments: &'d [ast::Comment],
    diagnostics: &'d mut Vec<Diagnostic>,
    /// The deepest tree among the last arguments or interpolations built, so that nesting
    /// through calls, indexes and strings counts toward [`MAX_EXPR_DEPTH`] too.
    carried_depth: u32,
}

/// An expression with the depth of its tree, so that overly deep trees can be cut off
/// while building instead of overflowing the stack later.
type Built = (ast::Expr, u32);

fn is_keyword_token(token: Rule) -> bool {
    matches!(
        token,
        Rule::k_import
            | Rule::k_rule
            | Rule::k_playbook
            | Rule::k_task
            | Rule::k_on
            | Rule::k_alert
            | Rule::k_when
            | Rule::k_run
            | Rule::k_cooldown
            | Rule::k_per
            | Rule::k_concurrency
            | Rule::k_priority
            | Rule::k_timeout
            | Rule::k_after
            | Rule::k_retry
            | Rule::k_backoff
            | Rule::k_failure
            | Rule::k_approval
            | Rule::k_by
            | Rule::k_revert
            | Rule::k_resolve
            | Rule::k_module
            | Rule::k_record
            | Rule::k_enum
            | Rule::k_fn
            | Rule::k_within
            | Rule::k_test
            | Rule::k_at
            | Rule::k_fire
            | Rule::k_mock
            | Rule::k_then
            | Rule::k_fail
            | Rule::k_expect
            | Rule::k_no
            | Rule::k_match
            | Rule::k_action
            | Rule::k_matched
            | Rule::k_suppressed
            | Rule::k_runs
            | Rule::k_outcome
    )
}

/// The children of a pair, without the keyword tokens.
fn children(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner()
        .filter(|child| !is_keyword_token(child.as_rule()))
}

impl Builder<'_> {
    /// The span of a pair without trailing whitespace and comments (pest's implicit
    /// whitespace can leave them inside a pair that ends with an optional part).
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        let start = self.offset + span.start();
        let mut end = self.offset + span.end();
        loop {
            while end > start
                && self
                    .text
                    .as_bytes()
                    .get(end - 1)
                    .is_some_and(|byte| byte.is_ascii_whitespace())
            {
                end -= 1;
            }
            // The comment the span ends in, if any (a comment's span runs to its line's end,
            // trailing blanks included).
            let index = self
                .comments
                .partition_point(|comment| (comment.span.end as usize) < end);
            match self.comments.get(index) {
                Some(comment)
                    if (comment.span.start as usize) < end
                        && comment.span.start as usize >= start =>
                {
                    end = comment.span.start as usize;
                }
                _ => break,
            }
        }
        Span::new(start, end)
    }

    fn error(&mut self, error: impl Into<crate::diagnostic::CompileError>) {
        self.diagnostics.push(Diagnostic::new(self.file, error));
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> ast::Ident {
        ast::Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn chunk(&mut self, pairs: Pairs<'_, Rule>, items: &mut Vec<ast::Item>) {
        for chunk in pairs {
            for pair in chunk.into_inner() {
                let item = match pair.as_rule() {
                    Rule::import => self.import(pair),
                    Rule::rule => self.rule(pair),
                    Rule::playbook => self.playbook(pair),
                    Rule::test_decl => self.test(pair),
                    Rule::module_decl => self.module_decl(pair),
                    Rule::record_decl => self.record_decl(pair),
                    Rule::enum_decl => self.enum_decl(pair),
                    Rule::fn_decl => self.fn_decl(pair),
                    _ => continue,
                };
                items.push(item);
            }
        }
    }

    fn import(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let mut root = None;
        let mut names = Vec::new();
        let mut braced = false;
        for child in children(pair) {
            match child.as_rule() {
                Rule::import_path => {
                    root = child.into_inner().next().map(|ident| self.ident(ident));
                }
                Rule::import_list => {
                    braced = true;
                    names.extend(child.into_inner().map(|ident| self.ident(ident)));
                }
                Rule::ident => names.push(self.ident(child)),
                _ => {}
            }
        }
        match root {
            Some(root) => ast::Item::Import(ast::Import {
                root,
                names,
                braced,
                span,
            }),
            None => ast::Item::Error(span),
        }
    }

    fn rule(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let Some(name) = inner.next().map(|ident| self.ident(ident)) else {
            return ast::Item::Error(span);
        };
        let mut clauses = Vec::new();
        for clause in inner {
            let clause_span = self.span(&clause);
            let built = match clause.as_rule() {
                Rule::on_clause => {
                    let mut lifecycle = ast::Lifecycle::Firing;
                    let mut names = Vec::new();
                    for child in children(clause) {
                        match child.as_rule() {
                            Rule::lifecycle => {
                                lifecycle = if child.as_str().starts_with("resolved") {
                                    ast::Lifecycle::Resolved
                                } else {
                                    ast::Lifecycle::Any
                                };
                            }
                            Rule::alert_names => {
                                for name in child.into_inner() {
                                    if name.as_rule() == Rule::string {
                                        names.push(self.plain_string(name));
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    ast::RuleClause::On(ast::OnClause {
                        lifecycle,
                        names,
                        span: clause_span,
                    })
                }
                Rule::when_clause => {
                    let expr = self.first_expr(clause);
                    ast::RuleClause::When(expr, clause_span)
                }
                Rule::run_clause => {
                    let mut inner = children(clause);
                    let Some(playbook) = inner.next().map(|ident| self.ident(ident)) else {
                        continue;
                    };
                    let args = inner.next().map(|args| self.args(args)).unwrap_or_default();
                    ast::RuleClause::Run(ast::RunClause {
                        playbook,
                        args,
                        span: clause_span,
                    })
                }
                Rule::cooldown_clause | Rule::concurrency_clause => {
                    let is_cooldown = clause.as_rule() == Rule::cooldown_clause;
                    let mut inner = children(clause);
                    let value = inner
                        .next()
                        .map(|value| self.expr_any(value))
                        .unwrap_or_else(|| error_expr(clause_span));
                    let per = inner.next().map(|per| self.expr_any(per));
                    let limit = ast::Limit {
                        value,
                        per,
                        span: clause_span,
                    };
                    if is_cooldown {
                        ast::RuleClause::Cooldown(limit)
                    } else {
                        ast::RuleClause::Concurrency(limit)
                    }
                }
                Rule::priority_clause => {
                    let expr = self.first_expr(clause);
                    ast::RuleClause::Priority(expr, clause_span)
                }
                Rule::continue_clause => ast::RuleClause::Continue(clause_span),
                _ => continue,
            };
            clauses.push(built);
        }
        ast::Item::Rule(ast::Rule {
            name,
            clauses,
            span,
        })
    }

    fn playbook(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let Some(name) = inner.next().map(|ident| self.ident(ident)) else {
            return ast::Item::Error(span);
        };
        let mut params = Vec::new();
        let mut body = Vec::new();
        for child in inner {
            match child.as_rule() {
                Rule::params => params = self.params(child),
                Rule::timeout_clause => {
                    let clause_span = self.span(&child);
                    let expr = self.first_expr(child);
                    body.push(ast::PlaybookItem::Timeout(expr, clause_span));
                }
                Rule::task => body.push(ast::PlaybookItem::Task(self.task(child))),
                _ => {}
            }
        }
        ast::Item::Playbook(ast::Playbook {
            name,
            params,
            body,
            span,
        })
    }

    fn test(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let Some(name) = inner.next().map(|name| self.plain_string(name)) else {
            return ast::Item::Error(span);
        };
        let mut steps = Vec::new();
        for step in inner {
            let step_span = self.span(&step);
            let built = match step.as_rule() {
                Rule::test_event => {
                    let mut at = None;
                    let mut event = None;
                    for part in children(step) {
                        match part.as_rule() {
                            Rule::at_offset => at = Some(self.first_expr(part)),
                            Rule::fire_event => {
                                let mut name = None;
                                let mut alert = error_expr(step_span);
                                for child in children(part) {
                                    match child.as_rule() {
                                        Rule::ident => name = Some(self.ident(child)),
                                        Rule::expr => alert = self.expr_any(child),
                                        _ => {}
                                    }
                                }
                                event = Some(ast::TestEvent::Fire { name, alert });
                            }
                            Rule::resolve_event => {
                                event = children(part)
                                    .next()
                                    .map(|name| ast::TestEvent::Resolve(self.ident(name)));
                            }
                            Rule::decide_event => {
                                let mut approve = true;
                                let mut task = None;
                                for child in children(part) {
                                    match child.as_rule() {
                                        Rule::decision => approve = child.as_str() == "approve",
                                        Rule::ident => task = Some(self.ident(child)),
                                        _ => {}
                                    }
                                }
                                event = task.map(|task| ast::TestEvent::Decide { task, approve });
                            }
                            _ => {}
                        }
                    }
                    let Some(event) = event else { continue };
                    ast::TestStep::Event {
                        at,
                        event,
                        span: step_span,
                    }
                }
                Rule::mock_stmt => {
                    let mut path = None;
                    let mut args = None;
                    let mut answers = Vec::new();
                    for child in children(step) {
                        match child.as_rule() {
                            Rule::fn_path => path = Some(self.fn_path(child)),
                            Rule::call_args => {
                                args = Some(
                                    child
                                        .into_inner()
                                        .next()
                                        .map(|args| self.args(args))
                                        .unwrap_or_default(),
                                );
                            }
                            Rule::mock_answer => {
                                let answer_span = self.span(&child);
                                let Some(answer) = child.into_inner().next() else {
                                    continue;
                                };
                                answers.push(match answer.as_rule() {
                                    Rule::mock_fail => ast::MockAnswer::Fail(
                                        children(answer).next().map(|why| self.plain_string(why)),
                                        answer_span,
                                    ),
                                    _ => ast::MockAnswer::Value(self.expr_any(answer)),
                                });
                            }
                            _ => {}
                        }
                    }
                    let Some((module, function)) = path else {
                        continue;
                    };
                    ast::TestStep::Mock(ast::Mock {
                        module,
                        function,
                        args,
                        answers,
                        span: step_span,
                    })
                }
                Rule::expect_stmt => {
                    let Some(kind) = children(step)
                        .next()
                        .and_then(|what| self.expectation(what))
                    else {
                        continue;
                    };
                    ast::TestStep::Expect(ast::Expectation {
                        kind,
                        span: step_span,
                    })
                }
                _ => continue,
            };
            steps.push(built);
        }
        ast::Item::Test(ast::Test { name, steps, span })
    }

    fn fn_path(&mut self, pair: Pair<'_, Rule>) -> (ast::Ident, ast::Ident) {
        let span = self.span(&pair);
        let mut names = pair.into_inner().map(|ident| self.ident(ident));
        let missing = || ast::Ident {
            name: String::new(),
            span,
        };
        let module = names.next().unwrap_or_else(missing);
        let function = names.next().unwrap_or_else(missing);
        (module, function)
    }

    fn expectation(&mut self, pair: Pair<'_, Rule>) -> Option<ast::ExpectKind> {
        let which = pair.as_rule();
        let parts: Vec<Pair<'_, Rule>> = children(pair).collect();
        let mut idents = Vec::new();
        let mut path = None;
        let mut args = None;
        let mut expr = None;
        let mut count = None;
        for part in parts {
            match part.as_rule() {
                Rule::ident => idents.push(self.ident(part)),
                Rule::fn_path => path = Some(self.fn_path(part)),
                Rule::call_args => {
                    args = Some(
                        part.into_inner()
                            .next()
                            .map(|args| self.args(args))
                            .unwrap_or_default(),
                    );
                }
                Rule::expr_unit => expr = Some(self.expr_any(part)),
                Rule::int_lit => {
                    let span = self.span(&part);
                    count = Some((part.as_str().parse::<i64>().ok()?, span));
                }
                _ => {}
            }
        }
        let mut idents = idents.into_iter();
        Some(match which {
            Rule::expect_no_match => ast::ExpectKind::NoMatch,
            Rule::expect_matched => ast::ExpectKind::Matched(idents.collect()),
            Rule::expect_suppressed => ast::ExpectKind::Suppressed {
                rule: idents.next()?,
                reason: idents.next(),
            },
            Rule::expect_runs => {
                let (count, span) = count?;
                ast::ExpectKind::Runs(count, span)
            }
            Rule::expect_run => ast::ExpectKind::Run {
                playbook: idents.next()?,
                args,
            },
            Rule::expect_task => ast::ExpectKind::Task {
                task: idents.next()?,
                state: idents.next()?,
            },
            Rule::expect_action | Rule::expect_no_action => {
                let (module, function) = path?;
                ast::ExpectKind::Action {
                    module,
                    function,
                    args,
                    negated: which == Rule::expect_no_action,
                }
            }
            Rule::expect_outcome => ast::ExpectKind::Outcome(idents.next()?),
            Rule::expect_revert => ast::ExpectKind::Revert {
                task: idents.next()?,
                at: expr,
            },
            _ => return None,
        })
    }

    fn params(&mut self, pair: Pair<'_, Rule>) -> Vec<ast::Param> {
        let mut params = Vec::new();
        for param in pair.into_inner() {
            let span = self.span(&param);
            let mut guard = false;
            let mut name = None;
            let mut ty = None;
            let mut default = None;
            for child in children(param) {
                match child.as_rule() {
                    Rule::guard_kw => guard = true,
                    Rule::ident => name = Some(self.ident(child)),
                    Rule::type_expr => ty = Some(self.type_expr(child)),
                    Rule::expr => default = Some(self.expr_any(child)),
                    _ => {}
                }
            }
            if let (Some(name), Some(ty)) = (name, ty) {
                params.push(ast::Param {
                    guard,
                    name,
                    ty,
                    default,
                    span,
                });
            }
        }
        params
    }

    fn task(&mut self, pair: Pair<'_, Rule>) -> ast::Task {
        let span = self.span(&pair);
        let mut name = ast::Ident {
            name: String::new(),
            span,
        };
        let mut call = error_expr(span);
        let mut clauses = Vec::new();
        let mut has_block = false;
        for child in children(pair) {
            match child.as_rule() {
                Rule::ident => name = self.ident(child),
                Rule::expr => call = self.expr_any(child),
                Rule::task_block => {
                    has_block = true;
                    for clause in child.into_inner() {
                        if let Some(clause) = self.task_clause(clause) {
                            clauses.push(clause);
                        }
                    }
                }
                _ => {}
            }
        }
        ast::Task {
            name,
            call,
            has_block,
            clauses,
            span,
        }
    }

    fn task_clause(&mut self, clause: Pair<'_, Rule>) -> Option<ast::TaskClause> {
        let span = self.span(&clause);
        Some(match clause.as_rule() {
            Rule::after_clause => ast::TaskClause::After(
                children(clause).map(|ident| self.ident(ident)).collect(),
                span,
            ),
            Rule::when_clause => ast::TaskClause::When(self.first_expr(clause), span),
            Rule::retry_clause => {
                let mut inner = children(clause);
                let attempts = inner
                    .next()
                    .map(|value| self.expr_any(value))
                    .unwrap_or_else(|| error_expr(span));
                let backoff = inner.next().map(|value| self.expr_any(value));
                ast::TaskClause::Retry {
                    attempts,
                    backoff,
                    span,
                }
            }
            Rule::timeout_clause => ast::TaskClause::Timeout(self.first_expr(clause), span),
            Rule::failure_clause => {
                let policy = match children(clause)
                    .next()
                    .map(|policy| policy.as_str().to_string())
                    .as_deref()
                {
                    Some("continue") => ast::FailurePolicy::Continue,
                    Some("escalate") => ast::FailurePolicy::Escalate,
                    _ => ast::FailurePolicy::Abort,
                };
                ast::TaskClause::OnFailure(policy, span)
            }
            Rule::approval_clause => {
                let mut by = None;
                let mut timeout = None;
                for child in children(clause) {
                    match child.as_rule() {
                        Rule::string => by = Some(self.plain_string(child)),
                        Rule::expr_unit => timeout = Some(self.expr_any(child)),
                        _ => {}
                    }
                }
                ast::TaskClause::Approval { by, timeout, span }
            }
            Rule::revert_clause => {
                let inner = children(clause).next()?;
                match inner.as_rule() {
                    Rule::revert_after => {
                        let expr = self.first_expr(inner);
                        ast::TaskClause::RevertAfter(expr, span)
                    }
                    _ => ast::TaskClause::RevertOnResolve(span),
                }
            }
            _ => return None,
        })
    }

    fn module_decl(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        match children(pair).next() {
            Some(ident) => ast::Item::Module(ast::ModuleDecl {
                name: self.ident(ident),
                span,
            }),
            None => ast::Item::Error(span),
        }
    }

    fn record_decl(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let Some(name) = inner.next().map(|ident| self.ident(ident)) else {
            return ast::Item::Error(span);
        };
        let mut fields = Vec::new();
        for field in inner {
            let field_span = self.span(&field);
            let mut parts = field.into_inner();
            if let (Some(name), Some(ty)) = (parts.next(), parts.next()) {
                fields.push(ast::FieldDecl {
                    name: self.ident(name),
                    ty: self.type_expr(ty),
                    span: field_span,
                });
            }
        }
        ast::Item::Record(ast::RecordDecl { name, fields, span })
    }

    fn enum_decl(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let Some(name) = inner.next().map(|ident| self.ident(ident)) else {
            return ast::Item::Error(span);
        };
        let variants = inner.map(|ident| self.ident(ident)).collect();
        ast::Item::Enum(ast::EnumDecl {
            name,
            variants,
            span,
        })
    }

    fn fn_decl(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let span = self.span(&pair);
        let mut effect = ast::Effect::Query;
        let mut name = None;
        let mut params = Vec::new();
        let mut returns = None;
        let mut revertible = false;
        for child in children(pair) {
            match child.as_rule() {
                Rule::effect if child.as_str().starts_with("action") => {
                    effect = ast::Effect::Action;
                }
                Rule::ident => name = Some(self.ident(child)),
                Rule::params => params = self.params(child),
                Rule::type_expr => returns = Some(self.type_expr(child)),
                Rule::revertible => revertible = true,
                _ => {}
            }
        }
        match (name, returns) {
            (Some(name), Some(returns)) => ast::Item::Function(ast::FnDecl {
                effect,
                name,
                params,
                returns,
                revertible,
                span,
            }),
            _ => ast::Item::Error(span),
        }
    }

    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> ast::TypeExpr {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let Some(atom) = inner.next() else {
            return named_type("Error", span);
        };
        let atom_span = self.span(&atom);
        let base = match atom.as_rule() {
            Rule::list_type => {
                let element = atom
                    .into_inner()
                    .next()
                    .map(|element| self.type_expr(element))
                    .unwrap_or_else(|| named_type("Error", atom_span));
                ast::TypeExpr {
                    kind: ast::TypeExprKind::List(Box::new(element)),
                    span: atom_span,
                }
            }
            Rule::map_type => {
                let mut parts = atom.into_inner();
                let key = parts
                    .next()
                    .map(|key| self.type_expr(key))
                    .unwrap_or_else(|| named_type("Error", atom_span));
                let value = parts
                    .next()
                    .map(|value| self.type_expr(value))
                    .unwrap_or_else(|| named_type("Error", atom_span));
                ast::TypeExpr {
                    kind: ast::TypeExprKind::Map(Box::new(key), Box::new(value)),
                    span: atom_span,
                }
            }
            _ => {
                let idents: Vec<ast::Ident> =
                    atom.into_inner().map(|ident| self.ident(ident)).collect();
                match idents.as_slice() {
                    [module, name] => ast::TypeExpr {
                        kind: ast::TypeExprKind::Named {
                            module: Some(module.clone()),
                            name: name.clone(),
                        },
                        span: atom_span,
                    },
                    [name] => ast::TypeExpr {
                        kind: ast::TypeExprKind::Named {
                            module: None,
                            name: name.clone(),
                        },
                        span: atom_span,
                    },
                    _ => named_type("Error", atom_span),
                }
            }
        };
        if inner.next().is_some() {
            ast::TypeExpr {
                kind: ast::TypeExprKind::Optional(Box::new(base)),
                span,
            }
        } else {
            base
        }
    }

    fn args(&mut self, pair: Pair<'_, Rule>) -> Vec<ast::Arg> {
        let mut args = Vec::new();
        let mut deepest = 0;
        for arg in pair.into_inner() {
            let span = self.span(&arg);
            let mut name = None;
            let mut value = None;
            for child in arg.into_inner() {
                match child.as_rule() {
                    Rule::ident => name = Some(self.ident(child)),
                    _ => {
                        let (built, depth) = self.built(child);
                        deepest = deepest.max(depth);
                        value = Some(built);
                    }
                }
            }
            args.push(ast::Arg {
                name,
                value: value.unwrap_or_else(|| error_expr(span)),
                span,
            });
        }
        self.carried_depth = deepest;
        args
    }

    /// The expression inside a clause pair (its first non-keyword child).
    fn first_expr(&mut self, pair: Pair<'_, Rule>) -> ast::Expr {
        let span = self.span(&pair);
        match children(pair).next() {
            Some(expr) => self.expr_any(expr),
            None => error_expr(span),
        }
    }

    /// An `expr`, `expr_unit` or `unary` pair, with the depth limit applied.
    fn expr_any(&mut self, pair: Pair<'_, Rule>) -> ast::Expr {
        let (expr, _) = self.built(pair);
        expr
    }

    fn built(&mut self, pair: Pair<'_, Rule>) -> Built {
        match pair.as_rule() {
            Rule::expr_unit => match pair.into_inner().next() {
                Some(inner) => self.built(inner),
                None => (error_expr(Span::default()), 1),
            },
            Rule::expr | Rule::unary => self.pratt_expr(pair),
            _ => self.primary_chain(pair),
        }
    }

    fn pratt_expr(&mut self, pair: Pair<'_, Rule>) -> Built {
        let span = self.span(&pair);
        // pest's Pratt parser recurses once per prefix operator: refuse long runs of them
        // before it starts.
        let mut prefixes = 0usize;
        for child in pair.clone().into_inner() {
            if matches!(child.as_rule(), Rule::op_not | Rule::op_neg) {
                prefixes += 1;
                if prefixes > MAX_EXPR_DEPTH as usize {
                    self.error(SyntaxError::TooDeep {
                        span,
                        limit: MAX_EXPR_DEPTH as usize,
                    });
                    return (error_expr(span), MAX_EXPR_DEPTH + 2);
                }
            }
        }
        // The closures of the Pratt parser cannot borrow `self` mutably more than once,
        // so diagnostics raised inside are collected here and appended afterwards.
        let cell = std::cell::RefCell::new(&mut *self);
        pratt()
            .map_primary(|primary| cell.borrow_mut().primary_chain(primary))
            .map_prefix(|op, (operand, depth)| {
                let op_span = cell.borrow().span(&op);
                let unary = match op.as_rule() {
                    Rule::op_not => ast::UnaryOp::Not,
                    _ => ast::UnaryOp::Neg,
                };
                let span = op_span.to(operand.span);
                cell.borrow_mut().deepen(
                    ast::Expr {
                        kind: ast::ExprKind::Unary(unary, Box::new(operand)),
                        span,
                        ty: (),
                    },
                    depth + 1,
                )
            })
            .map_infix(|(left, left_depth), op, (right, right_depth)| {
                let op_span = cell.borrow().span(&op);
                let binary = match op.as_rule() {
                    Rule::op_or => ast::BinaryOp::Or,
                    Rule::op_and => ast::BinaryOp::And,
                    Rule::op_eq => ast::BinaryOp::Eq,
                    Rule::op_ne => ast::BinaryOp::Ne,
                    Rule::op_lt => ast::BinaryOp::Lt,
                    Rule::op_le => ast::BinaryOp::Le,
                    Rule::op_gt => ast::BinaryOp::Gt,
                    Rule::op_ge => ast::BinaryOp::Ge,
                    Rule::op_in => ast::BinaryOp::In,
                    Rule::op_not_in => ast::BinaryOp::NotIn,
                    Rule::op_match => ast::BinaryOp::Match,
                    Rule::op_not_match => ast::BinaryOp::NotMatch,
                    Rule::op_coalesce => ast::BinaryOp::Coalesce,
                    Rule::op_add => ast::BinaryOp::Add,
                    Rule::op_sub => ast::BinaryOp::Sub,
                    Rule::op_mul => ast::BinaryOp::Mul,
                    _ => ast::BinaryOp::Div,
                };
                let span = left.span.to(right.span);
                cell.borrow_mut().deepen(
                    ast::Expr {
                        kind: ast::ExprKind::Binary(
                            binary,
                            op_span,
                            Box::new(left),
                            Box::new(right),
                        ),
                        span,
                        ty: (),
                    },
                    left_depth.max(right_depth) + 1,
                )
            })
            .parse(pair.into_inner())
    }

    /// Applies the depth limit: a tree deeper than [`MAX_EXPR_DEPTH`] becomes one error node.
    fn deepen(&mut self, expr: ast::Expr, depth: u32) -> Built {
        if depth <= MAX_EXPR_DEPTH {
            return (expr, depth);
        }
        if depth == MAX_EXPR_DEPTH + 1 {
            self.error(SyntaxError::TooDeep {
                span: expr.span,
                limit: MAX_EXPR_DEPTH as usize,
            });
        }
        // Replacing the tree by an error node keeps depth bounded; the error is reported
        // once because an error node's depth stays just above the limit.
        (error_expr(expr.span), MAX_EXPR_DEPTH + 2)
    }

    fn primary_chain(&mut self, pair: Pair<'_, Rule>) -> Built {
        let mut inner = pair.into_inner();
        let Some(primary) = inner.next() else {
            return (error_expr(Span::default()), 1);
        };
        let (mut expr, mut depth) = self.primary(primary);
        for postfix in inner {
            let postfix_span = self.span(&postfix);
            let span = expr.span.to(postfix_span);
            let kind = match postfix.as_rule() {
                Rule::field_access => {
                    let Some(ident) = postfix.into_inner().next() else {
                        continue;
                    };
                    ast::ExprKind::Field(Box::new(expr), self.ident(ident))
                }
                Rule::call_args => {
                    self.carried_depth = 0;
                    let args = postfix
                        .into_inner()
                        .next()
                        .map(|args| self.args(args))
                        .unwrap_or_default();
                    depth = depth.max(std::mem::take(&mut self.carried_depth));
                    ast::ExprKind::Call(Box::new(expr), args)
                }
                _ => {
                    let index = postfix
                        .into_inner()
                        .next()
                        .map(|index| {
                            let (index, index_depth) = self.built(index);
                            depth = depth.max(index_depth);
                            index
                        })
                        .unwrap_or_else(|| error_expr(postfix_span));
                    ast::ExprKind::Index(Box::new(expr), Box::new(index))
                }
            };
            (expr, depth) = self.deepen(ast::Expr { kind, span, ty: () }, depth + 1);
        }
        (expr, depth)
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Built {
        let span = self.span(&pair);
        let text = pair.as_str();
        let kind = match pair.as_rule() {
            Rule::ident => ast::ExprKind::Name(self.ident(pair)),
            Rule::bool_lit => ast::ExprKind::Bool(text == "true"),
            Rule::int_lit => match text.parse::<i64>() {
                Ok(value) => ast::ExprKind::Int(value),
                Err(_) => {
                    self.error(SyntaxError::InvalidNumber {
                        span,
                        reason: "too large for a 64-bit integer".into(),
                        help: Some(
                            "integers range from -9223372036854775808 to 9223372036854775807"
                                .into(),
                        ),
                    });
                    ast::ExprKind::Error
                }
            },
            Rule::float_lit => match text.parse::<f64>() {
                Ok(value) if value.is_finite() => ast::ExprKind::Float(value),
                _ => {
                    self.error(SyntaxError::InvalidNumber {
                        span,
                        reason: "not a finite number".into(),
                        help: None,
                    });
                    ast::ExprKind::Error
                }
            },
            Rule::percent_lit => match text.trim_end_matches('%').parse::<f64>() {
                Ok(value) if value.is_finite() => ast::ExprKind::Percent(value),
                _ => {
                    self.error(SyntaxError::InvalidNumber {
                        span,
                        reason: "not a finite percentage".into(),
                        help: None,
                    });
                    ast::ExprKind::Error
                }
            },
            Rule::duration_lit => match crate::units::parse_duration(text) {
                Ok(millis) => ast::ExprKind::Duration(millis),
                Err(reason) => {
                    self.error(SyntaxError::InvalidNumber {
                        span,
                        reason,
                        help: Some(
                            "durations are written like 500ms, 30s, 10m, 2h, 1d or 1h30m".into(),
                        ),
                    });
                    ast::ExprKind::Error
                }
            },
            Rule::size_lit => match crate::units::parse_size(text) {
                Ok(bytes) => ast::ExprKind::Size(bytes),
                Err(reason) => {
                    self.error(SyntaxError::InvalidNumber {
                        span,
                        reason,
                        help: None,
                    });
                    ast::ExprKind::Error
                }
            },
            Rule::time_lit => match crate::units::parse_time(text) {
                Ok(millis) => ast::ExprKind::Time(millis),
                Err(reason) => {
                    self.error(SyntaxError::InvalidTime { span, reason });
                    ast::ExprKind::Error
                }
            },
            Rule::string => {
                self.carried_depth = 0;
                let (parts, style) = self.string_parts(pair);
                let depth = std::mem::take(&mut self.carried_depth);
                return self.deepen(
                    ast::Expr {
                        kind: ast::ExprKind::Str(parts, style),
                        span,
                        ty: (),
                    },
                    depth + 1,
                );
            }
            Rule::paren => {
                let Some(inner) = pair.into_inner().next() else {
                    return (error_expr(span), 1);
                };
                let (inner, depth) = self.built(inner);
                return self.deepen(
                    ast::Expr {
                        kind: ast::ExprKind::Paren(Box::new(inner)),
                        span,
                        ty: (),
                    },
                    depth + 1,
                );
            }
            Rule::list => {
                let mut depth = 0;
                let mut elements = Vec::new();
                for element in pair.into_inner() {
                    let (element, element_depth) = self.built(element);
                    depth = depth.max(element_depth);
                    elements.push(element);
                }
                return self.deepen(
                    ast::Expr {
                        kind: ast::ExprKind::List(elements),
                        span,
                        ty: (),
                    },
                    depth + 1,
                );
            }
            Rule::record_lit => {
                let mut depth = 0;
                let mut entries = Vec::new();
                for entry in pair.into_inner() {
                    let mut parts = entry.into_inner();
                    let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    let key = if key.as_rule() == Rule::string {
                        let literal = self.plain_string(key);
                        ast::Ident {
                            name: literal.value,
                            span: literal.span,
                        }
                    } else {
                        self.ident(key)
                    };
                    let (value, value_depth) = self.built(value);
                    depth = depth.max(value_depth);
                    entries.push(ast::RecordEntry { key, value });
                }
                return self.deepen(
                    ast::Expr {
                        kind: ast::ExprKind::Record(entries),
                        span,
                        ty: (),
                    },
                    depth + 1,
                );
            }
            _ => ast::ExprKind::Error,
        };
        (ast::Expr { kind, span, ty: () }, 1)
    }

    fn string_parts(&mut self, pair: Pair<'_, Rule>) -> (Vec<ast::StrPart>, ast::StrStyle) {
        let mut parts: Vec<ast::StrPart> = Vec::new();
        let mut style = ast::StrStyle::Quoted;
        let mut deepest = 0;
        for part in pair.into_inner() {
            let span = self.span(&part);
            match part.as_rule() {
                Rule::raw_string => {
                    for raw_part in part.into_inner() {
                        match raw_part.as_rule() {
                            Rule::raw_hashes => {
                                let hashes =
                                    u32::try_from(raw_part.as_str().len()).unwrap_or(u32::MAX);
                                style = ast::StrStyle::Raw { hashes };
                            }
                            // Like `""`, an empty raw string has no parts.
                            Rule::raw_text if !raw_part.as_str().is_empty() => {
                                let span = self.span(&raw_part);
                                parts.push(ast::StrPart::Text(raw_part.as_str().to_string(), span));
                            }
                            _ => {}
                        }
                    }
                }
                Rule::string_text => push_text(&mut parts, part.as_str(), span),
                Rule::string_escape => {
                    let decoded = match part.as_str() {
                        "\\n" => "\n",
                        "\\t" => "\t",
                        "\\\\" => "\\",
                        "\\\"" => "\"",
                        "\\{" => "{",
                        "\\}" => "}",
                        other => {
                            self.error(SyntaxError::InvalidEscape {
                                span,
                                sequence: other.to_string(),
                            });
                            ""
                        }
                    };
                    push_text(&mut parts, decoded, span);
                }
                Rule::interpolation => {
                    if let Some(expr) = part.into_inner().next() {
                        let (built, depth) = self.built(expr);
                        deepest = deepest.max(depth);
                        parts.push(ast::StrPart::Interpolation(built));
                    }
                }
                _ => {}
            }
        }
        self.carried_depth = deepest;
        (parts, style)
    }

    /// A string literal used where interpolation makes no sense (alert names, groups);
    /// interpolations are kept as their source text.
    fn plain_string(&mut self, pair: Pair<'_, Rule>) -> ast::StrLit {
        let span = self.span(&pair);
        let mut value = String::new();
        for part in self.string_parts(pair).0 {
            match part {
                ast::StrPart::Text(text, _) => value.push_str(&text),
                ast::StrPart::Interpolation(expr) => self.error(SyntaxError::Unexpected {
                    span: expr.span,
                    found: "interpolation".into(),
                    expected: "plain text".into(),
                    help: Some("alert names and approval groups are fixed strings; write a literal `{` as `\\{`".into()),
                }),
            }
        }
        ast::StrLit { value, span }
    }
}

fn push_text(parts: &mut Vec<ast::StrPart>, text: &str, span: Span) {
    if let Some(ast::StrPart::Text(existing, existing_span)) = parts.last_mut() {
        existing.push_str(text);
        *existing_span = existing_span.to(span);
        return;
    }
    parts.push(ast::StrPart::Text(text.to_string(), span));
}

fn error_expr(span: Span) -> ast::Expr {
    ast::Expr {
        kind: ast::ExprKind::Error,
        span,
        ty: (),
    }
}

fn named_type(name: &str, span: Span) -> ast::TypeExpr {
    ast::TypeExpr {
        kind: ast::TypeExprKind::Named {
            module: None,
            name: ast::Ident {
                name: name.to_string(),
                span,
            },
        },
        span,
    }
}
