//! PromQL in `prom.query` and `prom.range` calls, checked when the runbook is checked.
//!
//! A `promql` argument written as a literal without interpolations (raw or quoted) is parsed
//! with promql-parser, the grammar Prometheus uses; a refusal is `ops::promql::syntax` with
//! its span inside the literal, at the place the query stops making sense. A literal with
//! interpolations is not parsed (the values are only known at run time, and a value spliced
//! into a query can change it): it gets the `ops::lint::promql_splice` warning pointing to
//! `where:`. Literal `where:` keys must be Prometheus label names (`ops::promql::label_name`).
//! What is not checked here: queries held in names or built by concatenation, whether the
//! metrics exist, and anything Prometheus only decides when it evaluates (a range too long,
//! a result too large).

use super::*;

/// The stdlib functions whose `promql` argument is PromQL and whose `where` argument holds
/// label matchers. Named here rather than by a type of their own: a `PromQL` type would
/// have to travel through plans, values and adapters for the sake of one check.
const PROMQL_FUNCTIONS: &[&str] = &["prom.query", "prom.range"];

/// Longest query whose error position is searched for (the search parses each prefix a few
/// times); a longer one that does not parse gets the error on the whole literal.
const POSITION_SEARCH_LIMIT: usize = 2048;

/// Text put after a prefix of a broken query to see whether the prefix can still become a
/// valid query: nothing, an operand, a string, a range, a grouping, a matcher's rest.
const FILLERS: &[&str] = &[
    "", "x", "1", "\"x\"", "[1m]", "x[1m]", "(x)", "()", "=\"x\"", "x=\"x\"", "1m",
];

/// A PromQL literal without interpolations, waiting to be parsed.
pub(crate) struct PendingQuery {
    file: FileId,
    /// The literal's span, quotes included.
    span: Span,
    style: ast::StrStyle,
    /// The literal's value: the query.
    text: String,
}

impl Checker<'_> {
    /// Checks the PromQL arguments of a `prom.query` or `prom.range` call (`args` in
    /// declaration order, defaults filled in); other calls are left alone.
    pub(super) fn promql_call(&mut self, def: &FnDef, args: &[(String, typed::Expr)]) {
        if !PROMQL_FUNCTIONS.contains(&def.qualified_name().as_str()) {
            return;
        }
        for (name, value) in args {
            match name.as_str() {
                "promql" => self.promql_query(value),
                "where" => self.promql_where(value),
                _ => {}
            }
        }
    }

    fn promql_query(&mut self, query: &typed::Expr) {
        let query = query.unparen();
        let ExprKind::Str(parts, style) = &query.kind else {
            return;
        };
        let mut text = String::new();
        for part in parts {
            match part {
                ast::StrPart::Text(value, _) => text.push_str(value),
                ast::StrPart::Interpolation(inner) => {
                    self.report(Lint::PromqlSplice { span: inner.span });
                    return;
                }
            }
        }
        self.promql.push(PendingQuery {
            file: self.file,
            span: query.span,
            style: *style,
            text,
        });
    }

    /// Parses the PromQL literals the check collected, on every core (promql-parser's work,
    /// its regex compilation above all, is most of a check of a PromQL-heavy tree), and
    /// reports the ones that do not parse.
    pub(super) fn check_promql(&mut self) {
        let pending = std::mem::take(&mut self.promql);
        let refusals = crate::parallel::map(&pending, refusal);
        self.report_promql(&pending, refusals);
    }

    /// Reports the queries that did not parse (`refusals` in the order of `pending`).
    pub(super) fn report_promql(
        &mut self,
        pending: &[PendingQuery],
        refusals: Vec<Option<String>>,
    ) {
        for (query, refusal) in pending.iter().zip(refusals) {
            let Some(reason) = refusal else {
                continue;
            };
            self.file = query.file;
            let literal = self.text(query.span);
            let offsets = source_offsets(literal, query.style);
            let at = |offset: usize| {
                offsets
                    .get(offset)
                    .or(offsets.last())
                    .map_or(query.span.start as usize, |inside| {
                        query.span.start as usize + inside
                    })
            };
            let (span, place) = match error_position(&query.text) {
                Some((start, end)) if start >= query.text.len() => (
                    Span::new(at(start), at(end)),
                    "the query ends here".to_string(),
                ),
                Some((start, end)) => (Span::new(at(start), at(end)), "here".to_string()),
                None => (query.span, "in this query".to_string()),
            };
            self.report(TypeError::PromqlSyntax {
                span,
                reason,
                place,
            });
        }
    }

    fn promql_where(&mut self, labels: &typed::Expr) {
        let ExprKind::Record(entries) = &labels.unparen().kind else {
            return;
        };
        for entry in entries {
            if !is_label_name(&entry.key.name) {
                self.report(TypeError::PromqlLabelName {
                    span: entry.key.span,
                    name: entry.key.name.clone(),
                });
            }
        }
    }
}

/// Why promql-parser refuses a pending query, if it does.
pub(super) fn refusal(_: usize, query: &PendingQuery) -> Option<String> {
    promql_parser::parser::parse(&query.text).err()
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the label names every Prometheus accepts unquoted. (The
/// runtime applies the same rule to keys only known at run time.)
fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
}

/// For each byte of a string literal's value, its offset in the literal's source text, then
/// one more entry for the end of the value (the closing quote). Quoted literals are decoded
/// again here so that an escape (`\"`, `\\`, `\{`) moves the positions after it; the
/// literal reaching this point has no interpolations and only valid escapes.
fn source_offsets(literal: &str, style: ast::StrStyle) -> Vec<usize> {
    match style {
        ast::StrStyle::Raw { hashes } => {
            let start = 2 + hashes as usize;
            let content = literal.len().saturating_sub(start + 1 + hashes as usize);
            (start..=start + content).collect()
        }
        ast::StrStyle::Quoted => {
            let mut offsets = Vec::new();
            let bytes = literal.as_bytes();
            let mut at = 1;
            while let Some(&byte) = bytes.get(at) {
                match byte {
                    b'"' => break,
                    // Every escape decodes to one byte: `\n`, `\t`, `\\`, `\"`, `\{`, `\}`.
                    b'\\' => {
                        offsets.push(at);
                        at += 2;
                    }
                    _ => {
                        offsets.push(at);
                        at += 1;
                    }
                }
            }
            offsets.push(at);
            offsets
        }
    }
}

/// Where a query that promql-parser refuses goes wrong, as a byte range of the query.
///
/// promql-parser reports a message and no position (its generated parser's errors, which
/// have spans, are dropped inside `parse`). So the position is found from the outside: the
/// query is cut into rough tokens, and the error is placed at the first token after the
/// longest prefix that can still become a valid query — that some filler ([`FILLERS`]) and
/// the brackets it leaves open, closed, make parse. For an unexpected character that is the
/// character; for an unterminated string, the string; for a missing `)`, the end (a range
/// `start == query.len()`); for a function given the wrong type, the argument's end, where
/// a `[5m]` would go. `None` when the query is too long to search.
fn error_position(query: &str) -> Option<(usize, usize)> {
    if query.len() > POSITION_SEARCH_LIMIT {
        return None;
    }
    let tokens = rough_tokens(query);
    let cuts = std::iter::once(0).chain(tokens.iter().map(|&(_, end)| end));
    let cuts: Vec<usize> = cuts.collect();
    for &cut in cuts.iter().rev() {
        let prefix = query.get(..cut)?;
        if completable(prefix, &tokens) {
            let next = tokens.iter().find(|&&(start, _)| start >= cut);
            return Some(next.copied().unwrap_or((query.len(), query.len())));
        }
    }
    None
}

/// Whether a prefix of the query (cut at a token end) parses with some filler and its open
/// brackets closed.
fn completable(prefix: &str, tokens: &[(usize, usize)]) -> bool {
    let mut open: Vec<char> = Vec::new();
    for &(start, end) in tokens.iter().filter(|&&(_, end)| end <= prefix.len()) {
        match prefix.get(start..end) {
            Some("(") => open.push(')'),
            Some("[") => open.push(']'),
            Some("{") => open.push('}'),
            Some(")" | "]" | "}") => {
                open.pop();
            }
            _ => {}
        }
    }
    let closers: String = open.iter().rev().collect();
    FILLERS.iter().any(|filler| {
        let candidate = format!("{prefix} {filler} {closers}");
        promql_parser::parser::parse(&candidate).is_ok()
    })
}

/// The query cut into rough tokens (byte ranges): quoted strings (to their closing quote or
/// the end), runs of name and number characters, two-character operators, single
/// characters, a `#` comment to the end. Whitespace separates and is not a token. Close
/// enough to PromQL's lexer for placing an error, which is all it is used for.
fn rough_tokens(query: &str) -> Vec<(usize, usize)> {
    let mut tokens = Vec::new();
    let mut characters = query.char_indices().peekable();
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '.';
    while let Some((start, character)) = characters.next() {
        if character.is_whitespace() {
            continue;
        }
        let mut end = start + character.len_utf8();
        match character {
            '#' => {
                tokens.push((start, query.len()));
                break;
            }
            '"' | '\'' | '`' => {
                let mut escaped = false;
                for (at, inner) in characters.by_ref() {
                    end = at + inner.len_utf8();
                    if escaped {
                        escaped = false;
                    } else if inner == '\\' && character != '`' {
                        escaped = true;
                    } else if inner == character {
                        break;
                    }
                }
            }
            c if is_word(c) => {
                while let Some(&(at, next)) = characters.peek() {
                    if !is_word(next) {
                        break;
                    }
                    end = at + next.len_utf8();
                    characters.next();
                }
            }
            '=' | '!' | '<' | '>' => {
                if let Some(&(at, next)) = characters.peek()
                    && matches!(
                        (character, next),
                        ('=' | '!' | '<' | '>', '=') | ('=' | '!', '~')
                    )
                {
                    end = at + next.len_utf8();
                    characters.next();
                }
            }
            _ => {}
        }
        tokens.push((start, end));
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(query: &str) -> Option<(usize, usize)> {
        error_position(query)
    }

    #[test]
    fn errors_are_placed_where_the_query_stops_making_sense() {
        // An unexpected character.
        assert_eq!(at("up{job=\"a\"} $ 1"), Some((12, 13)));
        // A missing closing parenthesis: the end.
        assert_eq!(at("max(disk_used_ratio"), Some((19, 19)));
        // An unterminated string: the string.
        assert_eq!(at("up{job=\"a}"), Some((7, 10)));
        // A function given an instant vector where a range goes: after the argument.
        assert_eq!(at("rate(x)"), Some((6, 7)));
        // Two operators in a row: the second.
        assert_eq!(at("a + * b"), Some((4, 5)));
    }

    #[test]
    fn escapes_move_the_offsets_of_quoted_literals() {
        let literal = r#""a\"b""#;
        assert_eq!(source_offsets(literal, ast::StrStyle::Quoted), [1, 2, 4, 5]);
        let literal = r##"r#"a"b"#"##;
        assert_eq!(
            source_offsets(literal, ast::StrStyle::Raw { hashes: 1 }),
            [3, 4, 5, 6]
        );
    }

    #[test]
    fn label_names() {
        assert!(is_label_name("instance"));
        assert!(is_label_name("_a1"));
        assert!(!is_label_name("1a"));
        assert!(!is_label_name("a-b"));
        assert!(!is_label_name(""));
        assert!(!is_label_name("é"));
    }
}
#[cfg(test)]
mod timing_scratch {
    #[test]
    fn scratch_timing() {
        let mut query = String::from(") ");
        while query.len() < 2000 {
            query.push_str("sum(rate(http_requests_total{code=~\"5..\"}[5m])) + ");
        }
        query.push('1');
        let started = std::time::Instant::now();
        let at = super::error_position(&query);
        eprintln!(
            "TIMING {:?} {:?} len {}",
            started.elapsed(),
            at,
            query.len()
        );
    }
}
