//! The parser's fast path: a hand-written recursive descent over the items a check spends its
//! time on (imports, rules, playbooks), building exactly the tree that the pest grammar and
//! [`super::Builder`] build, about ten times faster (note 031).
//!
//! It never reports anything. On any input it is not sure of (a syntax error, a literal the
//! builder would refuse, a tree over the depth limit, a test or a stdlib declaration) it gives
//! up, and the chunk goes through pest, which stays the grammar of record and the source of
//! every syntax diagnostic. Where it answers, it follows the grammar's PEG rules literally:
//! ordered choices in the grammar's order, greedy repetitions, implicit whitespace and
//! comments between the tokens of non-atomic rules, and spans from a construct's first token
//! to its last (what the builder's trimmed pair spans are). The tests parse every `.ops` file
//! of the repository, and thousands of mutations of them, both ways, and require the same
//! tree whenever this path answers.

use super::MAX_EXPR_DEPTH;
use crate::ast::{self, Span};

/// The items of the chunk `text[start..end]`, or `None` when pest must parse it.
/// `comments` are the scanner's: a comment the grammar skips where the scanner saw none (the
/// two disagree on some broken strings) would be left inside the builder's spans, so it
/// sends the chunk to pest.
pub(super) fn chunk(
    text: &str,
    start: usize,
    end: usize,
    comments: &[ast::Comment],
) -> Option<Vec<ast::Item>> {
    let bytes = text.as_bytes().get(..end)?;
    let mut parser = Fast {
        text,
        bytes,
        comments,
        unknown_comment: false,
        pos: start,
        last_end: start,
    };
    let mut items = Vec::new();
    parser.skip();
    while parser.pos < end {
        items.push(parser.item()?);
    }
    (!parser.unknown_comment).then_some(items)
}

/// The grammar's `keyword` rule: words that are never names.
const RESERVED: &[&str] = &[
    "import", "rule", "playbook", "task", "and", "or", "not", "in", "true", "false",
];

/// An expression and the depth of its tree, as the builder counts it.
type Built = (ast::Expr, u32);

/// Binding powers of pest's Pratt parser as `pratt()` configures it (each level 10 above
/// the previous, the first at 20).
const OR: u32 = 20;
const AND: u32 = 30;
const NOT: u32 = 40;
const COMPARE: u32 = 50;
const COALESCE: u32 = 60;
const SUM: u32 = 70;
const PRODUCT: u32 = 80;
const NEG: u32 = 90;

fn is_name_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn digits(bytes: &[u8], at: usize) -> Option<usize> {
    let mut end = at;
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    (end > at).then_some(end)
}

fn exactly_digits(bytes: &[u8], at: usize, count: usize) -> Option<usize> {
    let end = at + count;
    bytes
        .get(at..end)?
        .iter()
        .all(u8::is_ascii_digit)
        .then_some(end)
}

fn byte_at(bytes: &[u8], at: usize, byte: u8) -> Option<usize> {
    (bytes.get(at) == Some(&byte)).then_some(at + 1)
}

fn not_name_char(bytes: &[u8], at: usize) -> Option<usize> {
    (!bytes.get(at).copied().is_some_and(is_name_char)).then_some(at)
}

/// `("." ~ ASCII_DIGIT+)?`
fn optional_fraction(bytes: &[u8], at: usize) -> usize {
    byte_at(bytes, at, b'.')
        .and_then(|after| digits(bytes, after))
        .unwrap_or(at)
}

fn time_lit(bytes: &[u8], at: usize) -> Option<usize> {
    let at = exactly_digits(bytes, at, 4)?;
    let at = byte_at(bytes, at, b'-')?;
    let at = exactly_digits(bytes, at, 2)?;
    let at = byte_at(bytes, at, b'-')?;
    let at = exactly_digits(bytes, at, 2)?;
    let at = byte_at(bytes, at, b'T')?;
    let at = exactly_digits(bytes, at, 2)?;
    let at = byte_at(bytes, at, b':')?;
    let at = exactly_digits(bytes, at, 2)?;
    let at = byte_at(bytes, at, b':')?;
    let at = exactly_digits(bytes, at, 2)?;
    let at = optional_fraction(bytes, at);
    if let Some(end) = byte_at(bytes, at, b'Z') {
        return Some(end);
    }
    let at = byte_at(bytes, at, b'+').or_else(|| byte_at(bytes, at, b'-'))?;
    let at = exactly_digits(bytes, at, 2)?;
    let at = byte_at(bytes, at, b':')?;
    exactly_digits(bytes, at, 2)
}

fn duration_lit(bytes: &[u8], at: usize) -> Option<usize> {
    let mut end = at;
    let mut parts = 0;
    while let Some(number_end) = digits(bytes, end) {
        let unit_end = if bytes.get(number_end..number_end + 2) == Some(b"ms") {
            number_end + 2
        } else if bytes
            .get(number_end)
            .is_some_and(|unit| b"smhdw".contains(unit))
        {
            number_end + 1
        } else {
            break;
        };
        end = unit_end;
        parts += 1;
    }
    if parts == 0 {
        return None;
    }
    not_name_char(bytes, end)
}

fn size_lit(bytes: &[u8], at: usize) -> Option<usize> {
    let at = optional_fraction(bytes, digits(bytes, at)?);
    let unit = ["KiB", "MiB", "GiB", "TiB", "KB", "MB", "GB", "TB", "B"]
        .iter()
        .find(|unit| bytes.get(at..at + unit.len()) == Some(unit.as_bytes()))?;
    not_name_char(bytes, at + unit.len())
}

fn percent_lit(bytes: &[u8], at: usize) -> Option<usize> {
    let at = optional_fraction(bytes, digits(bytes, at)?);
    byte_at(bytes, at, b'%')
}

fn float_lit(bytes: &[u8], at: usize) -> Option<usize> {
    let at = byte_at(bytes, digits(bytes, at)?, b'.')?;
    not_name_char(bytes, digits(bytes, at)?)
}

fn int_lit(bytes: &[u8], at: usize) -> Option<usize> {
    not_name_char(bytes, digits(bytes, at)?)
}

fn expr(kind: ast::ExprKind, span: Span) -> ast::Expr {
    ast::Expr { kind, span, ty: () }
}

/// The builder's `deepen`, except that a tree over the limit makes the fast path give up.
fn deepen(built: ast::Expr, depth: u32) -> Option<Built> {
    (depth <= MAX_EXPR_DEPTH).then_some((built, depth))
}

fn push_text(parts: &mut Vec<ast::StrPart>, text: &str, span: Span) {
    if let Some(ast::StrPart::Text(existing, existing_span)) = parts.last_mut() {
        existing.push_str(text);
        *existing_span = existing_span.to(span);
        return;
    }
    parts.push(ast::StrPart::Text(text.to_string(), span));
}

struct Fast<'t> {
    text: &'t str,
    /// The file's bytes up to the chunk's end (pest sees the chunk alone).
    bytes: &'t [u8],
    comments: &'t [ast::Comment],
    /// Set when a comment was skipped that the scanner did not record.
    unknown_comment: bool,
    pos: usize,
    /// Where the last token consumed ends: spans end there, not after the trivia skipped.
    last_end: usize,
}

impl<'t> Fast<'t> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    /// The grammar's implicit `(WHITESPACE | COMMENT)*`, from `at`.
    fn skip_from(&self, mut at: usize) -> usize {
        while let Some(byte) = self.bytes.get(at) {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => at += 1,
                b'/' if self.bytes.get(at + 1) == Some(&b'/') => {
                    while self.bytes.get(at).is_some_and(|byte| *byte != b'\n') {
                        at += 1;
                    }
                }
                _ => break,
            }
        }
        at
    }

    fn skip(&mut self) {
        let from = self.pos;
        self.pos = self.skip_from(from);
        // Comments are rare between tokens: check the skipped ones against the scanner's.
        let skipped = self.bytes.get(from..self.pos).unwrap_or(&[]);
        if skipped.contains(&b'/') {
            let mut at = from;
            while let Some(offset) = self
                .bytes
                .get(at..self.pos)
                .and_then(|rest| rest.windows(2).position(|pair| pair == b"//"))
            {
                let comment_start = at + offset;
                let known = self
                    .comments
                    .binary_search_by_key(&comment_start, |comment| comment.span.start as usize)
                    .is_ok();
                if !known {
                    self.unknown_comment = true;
                }
                // The comment runs to its line's end.
                at = self
                    .bytes
                    .get(comment_start..self.pos)
                    .and_then(|rest| rest.iter().position(|byte| *byte == b'\n'))
                    .map_or(self.pos, |offset| comment_start + offset);
            }
        }
    }

    /// Consumes `len` bytes as one token and the trivia after it; the token's span.
    fn token(&mut self, len: usize) -> Span {
        let start = self.pos;
        self.pos += len;
        self.last_end = self.pos;
        self.skip();
        Span::new(start, self.last_end)
    }

    fn span_from(&self, start: usize) -> Span {
        Span::new(start, self.last_end)
    }

    /// The run of name characters at `at` (a keyword token matches when it is the whole run).
    fn word_at(&self, at: usize) -> &'t str {
        let mut end = at;
        while self.bytes.get(end).copied().is_some_and(is_name_char) {
            end += 1;
        }
        self.text.get(at..end).unwrap_or("")
    }

    fn word(&self) -> &'t str {
        self.word_at(self.pos)
    }

    fn keyword(&mut self, keyword: &str) -> Option<Span> {
        (self.word() == keyword).then(|| self.token(keyword.len()))
    }

    fn punct(&mut self, byte: u8) -> Option<Span> {
        (self.peek() == Some(byte)).then(|| self.token(1))
    }

    fn ident(&mut self) -> Option<ast::Ident> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let word = self.word();
        if RESERVED.contains(&word) {
            return None;
        }
        let span = self.token(word.len());
        Some(ast::Ident {
            name: word.to_string(),
            span,
        })
    }

    // ------------------------------------------------------------ items

    fn item(&mut self) -> Option<ast::Item> {
        match self.word() {
            "import" => self.import(),
            "rule" => self.rule(),
            "playbook" => self.playbook(),
            _ => None,
        }
    }

    fn import(&mut self) -> Option<ast::Item> {
        let start = self.pos;
        self.keyword("import")?;
        let root = self.ident()?;
        let mut names = Vec::new();
        let mut braced = false;
        if self.punct(b'.').is_some() {
            if self.punct(b'{').is_some() {
                braced = true;
                names.push(self.ident()?);
                while self.punct(b',').is_some() {
                    if self.peek() == Some(b'}') {
                        break;
                    }
                    names.push(self.ident()?);
                }
                self.punct(b'}')?;
            } else {
                names.push(self.ident()?);
            }
        }
        Some(ast::Item::Import(ast::Import {
            root,
            names,
            braced,
            span: self.span_from(start),
        }))
    }

    fn rule(&mut self) -> Option<ast::Item> {
        let start = self.pos;
        self.keyword("rule")?;
        let name = self.ident()?;
        self.punct(b'{')?;
        let mut clauses = Vec::new();
        while self.peek() != Some(b'}') {
            clauses.push(self.rule_clause()?);
        }
        self.punct(b'}')?;
        Some(ast::Item::Rule(ast::Rule {
            name,
            clauses,
            span: self.span_from(start),
        }))
    }

    fn rule_clause(&mut self) -> Option<ast::RuleClause> {
        let start = self.pos;
        Some(match self.word() {
            "on" => {
                self.keyword("on")?;
                let lifecycle = match self.word() {
                    "resolved" => {
                        self.keyword("resolved")?;
                        ast::Lifecycle::Resolved
                    }
                    "any" => {
                        self.keyword("any")?;
                        ast::Lifecycle::Any
                    }
                    _ => ast::Lifecycle::Firing,
                };
                self.keyword("alert")?;
                let mut names = Vec::new();
                if self.punct(b'*').is_none() {
                    names.push(self.plain_string()?);
                    while self.punct(b',').is_some() {
                        names.push(self.plain_string()?);
                    }
                }
                ast::RuleClause::On(ast::OnClause {
                    lifecycle,
                    names,
                    span: self.span_from(start),
                })
            }
            "when" => {
                self.keyword("when")?;
                let (condition, _) = self.expr()?;
                ast::RuleClause::When(condition, self.span_from(start))
            }
            "run" => {
                self.keyword("run")?;
                let playbook = self.ident()?;
                let (args, _) = self.call_args()?;
                ast::RuleClause::Run(ast::RunClause {
                    playbook,
                    args,
                    span: self.span_from(start),
                })
            }
            word @ ("cooldown" | "concurrency") => {
                let is_cooldown = word == "cooldown";
                self.keyword(word)?;
                let (value, _) = self.unary()?;
                let per = match self.keyword("per") {
                    Some(_) => Some(self.expr()?.0),
                    None => None,
                };
                let limit = ast::Limit {
                    value,
                    per,
                    span: self.span_from(start),
                };
                if is_cooldown {
                    ast::RuleClause::Cooldown(limit)
                } else {
                    ast::RuleClause::Concurrency(limit)
                }
            }
            "priority" => {
                self.keyword("priority")?;
                let (value, _) = self.unary()?;
                ast::RuleClause::Priority(value, self.span_from(start))
            }
            "continue" => ast::RuleClause::Continue(self.token("continue".len())),
            _ => return None,
        })
    }

    fn playbook(&mut self) -> Option<ast::Item> {
        let start = self.pos;
        self.keyword("playbook")?;
        let name = self.ident()?;
        self.punct(b'(')?;
        let mut params = Vec::new();
        if self.peek() != Some(b')') {
            loop {
                params.push(self.param()?);
                if self.punct(b',').is_none() || self.peek() == Some(b')') {
                    break;
                }
            }
        }
        self.punct(b')')?;
        self.punct(b'{')?;
        let mut body = Vec::new();
        while self.peek() != Some(b'}') {
            let item_start = self.pos;
            body.push(match self.word() {
                "timeout" => {
                    self.keyword("timeout")?;
                    let (value, _) = self.unary()?;
                    ast::PlaybookItem::Timeout(value, self.span_from(item_start))
                }
                "task" => ast::PlaybookItem::Task(self.task()?),
                _ => return None,
            });
        }
        self.punct(b'}')?;
        Some(ast::Item::Playbook(ast::Playbook {
            name,
            params,
            body,
            span: self.span_from(start),
        }))
    }

    fn param(&mut self) -> Option<ast::Param> {
        let start = self.pos;
        let guard = self.keyword("guard").is_some();
        let name = self.ident()?;
        self.punct(b':')?;
        let ty = self.type_expr()?;
        let default = match self.punct(b'=') {
            Some(_) => Some(self.expr()?.0),
            None => None,
        };
        Some(ast::Param {
            guard,
            name,
            ty,
            default,
            span: self.span_from(start),
        })
    }

    fn type_expr(&mut self) -> Option<ast::TypeExpr> {
        let start = self.pos;
        let kind = match self.peek()? {
            b'[' => {
                self.token(1);
                let element = self.type_expr()?;
                self.punct(b']')?;
                ast::TypeExprKind::List(Box::new(element))
            }
            b'{' => {
                self.token(1);
                let key = self.type_expr()?;
                self.punct(b':')?;
                let value = self.type_expr()?;
                self.punct(b'}')?;
                ast::TypeExprKind::Map(Box::new(key), Box::new(value))
            }
            _ => {
                let first = self.ident()?;
                if self.punct(b'.').is_some() {
                    ast::TypeExprKind::Named {
                        module: Some(first),
                        name: self.ident()?,
                    }
                } else {
                    ast::TypeExprKind::Named {
                        module: None,
                        name: first,
                    }
                }
            }
        };
        let base = ast::TypeExpr {
            kind,
            span: self.span_from(start),
        };
        Some(match self.punct(b'?') {
            Some(_) => ast::TypeExpr {
                kind: ast::TypeExprKind::Optional(Box::new(base)),
                span: self.span_from(start),
            },
            None => base,
        })
    }

    fn task(&mut self) -> Option<ast::Task> {
        let start = self.pos;
        self.keyword("task")?;
        let name = self.ident()?;
        self.punct(b'=')?;
        let (call, _) = self.expr()?;
        let mut clauses = Vec::new();
        let has_block = self.punct(b'{').is_some();
        if has_block {
            while self.peek() != Some(b'}') {
                clauses.push(self.task_clause()?);
                self.punct(b';');
            }
            self.punct(b'}')?;
        }
        Some(ast::Task {
            name,
            call,
            has_block,
            clauses,
            span: self.span_from(start),
        })
    }

    fn task_clause(&mut self) -> Option<ast::TaskClause> {
        let start = self.pos;
        Some(match self.word() {
            "after" => {
                self.keyword("after")?;
                let mut names = vec![self.ident()?];
                while self.punct(b',').is_some() {
                    names.push(self.ident()?);
                }
                ast::TaskClause::After(names, self.span_from(start))
            }
            "when" => {
                self.keyword("when")?;
                let (condition, _) = self.expr()?;
                ast::TaskClause::When(condition, self.span_from(start))
            }
            "retry" => {
                self.keyword("retry")?;
                let (attempts, _) = self.unary()?;
                let backoff = match self.keyword("backoff") {
                    Some(_) => Some(self.unary()?.0),
                    None => None,
                };
                ast::TaskClause::Retry {
                    attempts,
                    backoff,
                    span: self.span_from(start),
                }
            }
            "timeout" => {
                self.keyword("timeout")?;
                let (value, _) = self.unary()?;
                ast::TaskClause::Timeout(value, self.span_from(start))
            }
            "on" => {
                self.keyword("on")?;
                self.keyword("failure")?;
                let policy = match self.word() {
                    "abort" => ast::FailurePolicy::Abort,
                    "continue" => ast::FailurePolicy::Continue,
                    "escalate" => ast::FailurePolicy::Escalate,
                    _ => return None,
                };
                self.token(policy.as_str().len());
                ast::TaskClause::OnFailure(policy, self.span_from(start))
            }
            "approval" => {
                self.keyword("approval")?;
                let by = match self.keyword("by") {
                    Some(_) => Some(self.plain_string()?),
                    None => None,
                };
                let timeout = match self.keyword("within") {
                    Some(_) => Some(self.unary()?.0),
                    None => None,
                };
                ast::TaskClause::Approval {
                    by,
                    timeout,
                    span: self.span_from(start),
                }
            }
            "revert" => {
                self.keyword("revert")?;
                if self.keyword("after").is_some() {
                    let (after, _) = self.unary()?;
                    ast::TaskClause::RevertAfter(after, self.span_from(start))
                } else {
                    self.keyword("on")?;
                    self.keyword("resolve")?;
                    ast::TaskClause::RevertOnResolve(self.span_from(start))
                }
            }
            _ => return None,
        })
    }

    // ------------------------------------------------------------ expressions

    /// `expr`: prefixes, operands and infix operators.
    fn expr(&mut self) -> Option<Built> {
        self.pratt(0, true, &mut 0)
    }

    /// `unary` (and `expr_unit`): prefixes and one operand, no infix operator.
    fn unary(&mut self) -> Option<Built> {
        self.pratt(0, false, &mut 0)
    }

    /// pest's Pratt algorithm (`expr`, `nud`, `led`, `lbp`), run as the tokens are read.
    /// `prefixes` counts the prefix operators of the whole expression, which the builder
    /// limits before folding.
    fn pratt(&mut self, rbp: u32, infix: bool, prefixes: &mut usize) -> Option<Built> {
        let (mut lhs, mut depth) = match self.prefix_op() {
            Some((op, power)) => {
                *prefixes += 1;
                if *prefixes > MAX_EXPR_DEPTH as usize {
                    return None;
                }
                let op_span = self.token(if op == ast::UnaryOp::Not { 3 } else { 1 });
                let (operand, depth) = self.pratt(power - 1, infix, prefixes)?;
                let span = op_span.to(operand.span);
                deepen(
                    expr(ast::ExprKind::Unary(op, Box::new(operand)), span),
                    depth + 1,
                )?
            }
            None => self.primary_chain()?,
        };
        // A `unary` has no infix operator.
        while let Some((op, end, power)) = self.infix_op().filter(|_| infix) {
            if rbp >= power {
                break;
            }
            let start = self.pos;
            if op == ast::BinaryOp::NotIn {
                // Two tokens: the trivia between them is skipped (and its comments checked).
                self.token(3);
                self.token(2);
            } else {
                self.token(end - start);
            }
            let op_span = Span::new(start, self.last_end);
            let (rhs, rhs_depth) = self.pratt(power, infix, prefixes)?;
            let span = lhs.span.to(rhs.span);
            (lhs, depth) = deepen(
                expr(
                    ast::ExprKind::Binary(op, op_span, Box::new(lhs), Box::new(rhs)),
                    span,
                ),
                depth.max(rhs_depth) + 1,
            )?;
        }
        Some((lhs, depth))
    }

    fn prefix_op(&self) -> Option<(ast::UnaryOp, u32)> {
        match self.peek()? {
            b'-' => Some((ast::UnaryOp::Neg, NEG)),
            b'n' if self.word() == "not" => Some((ast::UnaryOp::Not, NOT)),
            _ => None,
        }
    }

    /// The infix operator at the position (in the grammar's order of trial), where it ends,
    /// and its binding power.
    fn infix_op(&self) -> Option<(ast::BinaryOp, usize, u32)> {
        use ast::BinaryOp as B;
        let at = self.pos;
        let next = self.peek_at(1);
        let (op, len, power) = match self.peek()? {
            b'o' if self.word() == "or" => (B::Or, 2, OR),
            b'a' if self.word() == "and" => (B::And, 3, AND),
            b'n' if self.word() == "not" => {
                let in_at = self.skip_from(at + 3);
                if self.word_at(in_at) != "in" {
                    return None;
                }
                return Some((B::NotIn, in_at + 2, COMPARE));
            }
            b'i' if self.word() == "in" => (B::In, 2, COMPARE),
            b'=' if next == Some(b'=') => (B::Eq, 2, COMPARE),
            b'=' if next == Some(b'~') => (B::Match, 2, COMPARE),
            b'!' if next == Some(b'=') => (B::Ne, 2, COMPARE),
            b'!' if next == Some(b'~') => (B::NotMatch, 2, COMPARE),
            b'<' if next == Some(b'=') => (B::Le, 2, COMPARE),
            b'>' if next == Some(b'=') => (B::Ge, 2, COMPARE),
            b'<' => (B::Lt, 1, COMPARE),
            b'>' => (B::Gt, 1, COMPARE),
            b'?' if next == Some(b'?') => (B::Coalesce, 2, COALESCE),
            b'+' => (B::Add, 1, SUM),
            b'-' => (B::Sub, 1, SUM),
            b'*' => (B::Mul, 1, PRODUCT),
            b'/' => (B::Div, 1, PRODUCT),
            _ => return None,
        };
        Some((op, at + len, power))
    }

    fn primary_chain(&mut self) -> Option<Built> {
        let (mut chain, mut depth) = self.primary()?;
        loop {
            let postfix_start = self.pos;
            let kind = match self.peek() {
                Some(b'.') => {
                    self.token(1);
                    let field = self.ident()?;
                    ast::ExprKind::Field(Box::new(chain), field)
                }
                Some(b'(') => {
                    let (args, args_depth) = self.call_args()?;
                    depth = depth.max(args_depth);
                    ast::ExprKind::Call(Box::new(chain), args)
                }
                Some(b'[') => {
                    self.token(1);
                    let (index, index_depth) = self.expr()?;
                    self.punct(b']')?;
                    depth = depth.max(index_depth);
                    ast::ExprKind::Index(Box::new(chain), Box::new(index))
                }
                _ => break,
            };
            let span = Span::new(postfix_start, self.last_end);
            let span = match &kind {
                ast::ExprKind::Field(inner, _)
                | ast::ExprKind::Call(inner, _)
                | ast::ExprKind::Index(inner, _) => inner.span.to(span),
                _ => span,
            };
            (chain, depth) = deepen(expr(kind, span), depth + 1)?;
        }
        Some((chain, depth))
    }

    /// `call_args`: the arguments and the depth of the deepest.
    fn call_args(&mut self) -> Option<(Vec<ast::Arg>, u32)> {
        self.punct(b'(')?;
        let mut args = Vec::new();
        let mut deepest = 0;
        if self.peek() != Some(b')') {
            loop {
                let start = self.pos;
                let name = self.arg_name();
                let (value, depth) = self.expr()?;
                deepest = deepest.max(depth);
                args.push(ast::Arg {
                    name,
                    value,
                    span: self.span_from(start),
                });
                if self.punct(b',').is_none() || self.peek() == Some(b')') {
                    break;
                }
            }
        }
        self.punct(b')')?;
        Some((args, deepest))
    }

    /// `(ident ~ ":" ~ !":")?` at the start of an argument.
    fn arg_name(&mut self) -> Option<ast::Ident> {
        let (pos, last_end) = (self.pos, self.last_end);
        let name = self.ident()?;
        if self.punct(b':').is_some() && self.peek() != Some(b':') {
            return Some(name);
        }
        (self.pos, self.last_end) = (pos, last_end);
        None
    }

    fn primary(&mut self) -> Option<Built> {
        let start = self.pos;
        let first = self.peek()?;
        if first == b'r' && matches!(self.peek_at(1), Some(b'"' | b'#')) {
            return self.string_expr();
        }
        let kind = match first {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => match self.word() {
                "true" => {
                    self.token(4);
                    ast::ExprKind::Bool(true)
                }
                "false" => {
                    self.token(5);
                    ast::ExprKind::Bool(false)
                }
                _ => ast::ExprKind::Name(self.ident()?),
            },
            b'0'..=b'9' => self.number()?,
            b'"' => return self.string_expr(),
            b'(' => {
                self.token(1);
                let (inner, depth) = self.expr()?;
                self.punct(b')')?;
                let span = self.span_from(start);
                return deepen(expr(ast::ExprKind::Paren(Box::new(inner)), span), depth + 1);
            }
            b'[' => {
                self.token(1);
                let mut elements = Vec::new();
                let mut depth = 0;
                if self.peek() != Some(b']') {
                    loop {
                        let (element, element_depth) = self.expr()?;
                        depth = depth.max(element_depth);
                        elements.push(element);
                        if self.punct(b',').is_none() || self.peek() == Some(b']') {
                            break;
                        }
                    }
                }
                self.punct(b']')?;
                let span = self.span_from(start);
                return deepen(expr(ast::ExprKind::List(elements), span), depth + 1);
            }
            b'{' => {
                self.token(1);
                let mut entries = Vec::new();
                let mut depth = 0;
                if self.peek() != Some(b'}') {
                    loop {
                        let key = match self.peek() {
                            Some(b'"' | b'r') if self.string_ahead() => {
                                let literal = self.plain_string()?;
                                ast::Ident {
                                    name: literal.value,
                                    span: literal.span,
                                }
                            }
                            _ => self.ident()?,
                        };
                        self.punct(b':')?;
                        let (value, value_depth) = self.expr()?;
                        depth = depth.max(value_depth);
                        entries.push(ast::RecordEntry { key, value });
                        if self.punct(b',').is_none() || self.peek() == Some(b'}') {
                            break;
                        }
                    }
                }
                self.punct(b'}')?;
                let span = self.span_from(start);
                return deepen(expr(ast::ExprKind::Record(entries), span), depth + 1);
            }
            _ => return None,
        };
        Some((expr(kind, self.span_from(start)), 1))
    }

    /// Whether a string literal (quoted, or raw behind the grammar's `r"`/`r#` lookahead)
    /// starts at the position.
    fn string_ahead(&self) -> bool {
        match self.peek() {
            Some(b'"') => true,
            Some(b'r') => matches!(self.peek_at(1), Some(b'"' | b'#')),
            _ => false,
        }
    }

    /// A number literal, trying the grammar's literals in its order.
    fn number(&mut self) -> Option<ast::ExprKind> {
        let bytes = self.bytes;
        let at = self.pos;
        let text = |end: usize| self.text.get(at..end).unwrap_or("");
        let (kind, end) = if let Some(end) = time_lit(bytes, at) {
            (
                ast::ExprKind::Time(crate::units::parse_time(text(end)).ok()?),
                end,
            )
        } else if let Some(end) = duration_lit(bytes, at) {
            (
                ast::ExprKind::Duration(crate::units::parse_duration(text(end)).ok()?),
                end,
            )
        } else if let Some(end) = size_lit(bytes, at) {
            (
                ast::ExprKind::Size(crate::units::parse_size(text(end)).ok()?),
                end,
            )
        } else if let Some(end) = percent_lit(bytes, at) {
            let value = text(end).trim_end_matches('%').parse::<f64>().ok()?;
            (
                ast::ExprKind::Percent(value.is_finite().then_some(value)?),
                end,
            )
        } else if let Some(end) = float_lit(bytes, at) {
            let value = text(end).parse::<f64>().ok()?;
            (
                ast::ExprKind::Float(value.is_finite().then_some(value)?),
                end,
            )
        } else {
            let end = int_lit(bytes, at)?;
            (ast::ExprKind::Int(text(end).parse::<i64>().ok()?), end)
        };
        self.token(end - at);
        Some(kind)
    }

    fn string_expr(&mut self) -> Option<Built> {
        let (parts, style, span, depth) = self.string()?;
        deepen(expr(ast::ExprKind::Str(parts, style), span), depth + 1)
    }

    /// A string used where interpolation makes no sense (the builder refuses one there).
    fn plain_string(&mut self) -> Option<ast::StrLit> {
        let (parts, _, span, _) = self.string()?;
        let mut value = String::new();
        for part in parts {
            match part {
                ast::StrPart::Text(text, _) => value.push_str(&text),
                ast::StrPart::Interpolation(_) => return None,
            }
        }
        Some(ast::StrLit { value, span })
    }

    /// A span of text inside a string, without its trailing whitespace (as the builder's
    /// pair spans are). The builder also trims a trailing comment, but the scanner records
    /// no comment inside a string's text, so there is none to trim.
    fn text_span(&self, start: usize, end: usize) -> Span {
        let mut trimmed = end;
        while trimmed > start
            && self
                .bytes
                .get(trimmed - 1)
                .is_some_and(u8::is_ascii_whitespace)
        {
            trimmed -= 1;
        }
        Span::new(start, trimmed)
    }

    /// `string`: its parts, style, span and the depth of its deepest interpolation.
    fn string(&mut self) -> Option<(Vec<ast::StrPart>, ast::StrStyle, Span, u32)> {
        let start = self.pos;
        let mut parts = Vec::new();
        if self.peek() == Some(b'r') {
            let mut at = start + 1;
            while self.bytes.get(at) == Some(&b'#') {
                at += 1;
            }
            let hashes = at - start - 1;
            byte_at(self.bytes, at, b'"')?;
            let text_start = at + 1;
            let mut end = text_start;
            loop {
                match self.bytes.get(end)? {
                    b'\n' => return None,
                    b'"' if (1..=hashes)
                        .all(|offset| self.bytes.get(end + offset) == Some(&b'#')) =>
                    {
                        break;
                    }
                    _ => end += 1,
                }
            }
            if end > text_start {
                parts.push(ast::StrPart::Text(
                    self.text.get(text_start..end)?.to_string(),
                    self.text_span(text_start, end),
                ));
            }
            let span = self.token(end + 1 + hashes - start);
            let style = ast::StrStyle::Raw {
                hashes: u32::try_from(hashes).unwrap_or(u32::MAX),
            };
            return Some((parts, style, span, 0));
        }
        byte_at(self.bytes, start, b'"')?;
        self.pos = start + 1;
        let mut deepest = 0;
        loop {
            let part_start = self.pos;
            match self.peek()? {
                b'"' => break,
                b'\n' => return None,
                b'\\' => {
                    let decoded = match self.peek_at(1)? {
                        b'n' => "\n",
                        b't' => "\t",
                        b'\\' => "\\",
                        b'"' => "\"",
                        b'{' => "{",
                        b'}' => "}",
                        _ => return None,
                    };
                    self.pos += 2;
                    push_text(&mut parts, decoded, Span::new(part_start, self.pos));
                }
                b'{' => {
                    self.pos += 1;
                    self.skip();
                    let (inner, depth) = self.expr()?;
                    if self.peek() != Some(b'}') {
                        return None;
                    }
                    self.pos += 1;
                    deepest = deepest.max(depth);
                    parts.push(ast::StrPart::Interpolation(inner));
                }
                _ => {
                    let mut end = self.pos;
                    while self
                        .bytes
                        .get(end)
                        .is_some_and(|byte| !matches!(byte, b'"' | b'\\' | b'{' | b'\n'))
                    {
                        end += 1;
                    }
                    let text = self.text.get(part_start..end)?;
                    self.pos = end;
                    push_text(&mut parts, text, self.text_span(part_start, end));
                }
            }
        }
        // The closing quote.
        self.pos += 1;
        self.last_end = self.pos;
        self.skip();
        Some((
            parts,
            ast::StrStyle::Quoted,
            Span::new(start, self.last_end),
            deepest,
        ))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
mod tests {
    use super::super::{FileId, pest_chunk, scan};
    use std::path::{Path, PathBuf};

    fn ops_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = Vec::new();
        let mut stack: Vec<PathBuf> = ["examples", "stdlib", "tests", "docs"]
            .iter()
            .map(|dir| root.join(dir))
            .collect();
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|ext| ext == "ops") {
                    files.push(path);
                }
            }
        }
        files.sort();
        assert!(
            files.len() > 100,
            "the corpus is the repository's .ops files"
        );
        files
    }

    /// Parses every chunk of `text` both ways; wherever the fast path answers, pest must
    /// accept the chunk without a diagnostic and build the same tree. Returns how many
    /// chunks there were and how many the fast path answered.
    fn agree(text: &str) -> (usize, usize) {
        let scanned = scan(text);
        let mut answered = 0;
        for chunk in &scanned.chunks {
            if chunk.too_deep_at.is_some() || chunk.unterminated_string_at.is_some() {
                continue;
            }
            let Some(fast) = super::chunk(text, chunk.start, chunk.end, &scanned.comments) else {
                continue;
            };
            answered += 1;
            let mut diagnostics = Vec::new();
            let mut slow = Vec::new();
            pest_chunk(
                FileId(0),
                text,
                chunk,
                &scanned.comments,
                &mut diagnostics,
                &mut slow,
            );
            let chunk_text = &text[chunk.start..chunk.end];
            assert!(
                diagnostics.is_empty(),
                "the fast path accepted a chunk pest refuses: {diagnostics:?}\n{chunk_text}"
            );
            assert_eq!(
                format!("{fast:#?}"),
                format!("{slow:#?}"),
                "the trees differ for\n{chunk_text}"
            );
        }
        (scanned.chunks.len(), answered)
    }

    #[test]
    fn the_fast_path_builds_pests_tree_for_every_file_of_the_repository() {
        let mut answered = 0;
        for path in ops_files() {
            let text = std::fs::read_to_string(&path).unwrap();
            answered += agree(&text).1;
        }
        assert!(answered > 200, "only {answered} chunks took the fast path");
    }

    #[test]
    fn the_fast_path_answers_every_rule_and_playbook_of_the_examples() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for name in ["order_cpu", "disk_full", "inventory_db", "payment_latency"] {
            let text = std::fs::read_to_string(root.join(format!("examples/{name}.ops"))).unwrap();
            let (chunks, answered) = agree(&text);
            assert_eq!(answered, chunks, "{name}.ops");
        }
    }

    #[test]
    fn every_form_of_expression_and_literal_agrees() {
        let text = r##"import std.{prom, notify,}
import std.http
import std

rule everything {
  on resolved alert "A", r"B", "C\"\{"
  when not a.b == -c and d or e in [1, 2,] and f not in {x: 1, "y": 2, r"z": 3,} and g =~ r#"a"b"#
  when a ?? b + c * d / e - f < g <= h > i >= j != k !~ "x{y}z" and --x and not not y
  when 2024-01-02T03:04:05.5Z < t and 2024-01-02T03:04:05+02:00 > t and 1h30m > d and 500ms < d
  when 1.5GiB > s and 10KB < s and 3B > s and 90.5% > p and 5% < p and 1.25 > f and 0 < i and true and false
  when m["k"][0].f(1, x: 2, y: 3,)(z)  .  g  ( ) and (((a)))
  run pb(service: alert.service, since: alert.starts_at - 10m, "x", [a, b], {k: v})
  cooldown 15m per alert.service
  concurrency 1 per alert.labels["team"]
  priority -5
  continue
}

rule star { on any alert * }

playbook pb(service: String, guard since: Time = now() - 1h, tags: [String]?, m: {String: Int}, x: prom.Result?) {
  timeout 10m
  task a = http.get("http://{service}/health?q={ {a: [1, {b: c}]}.a[0] }  ") {
    retry 3 backoff 2s; timeout 30s
    after b, c
    when a.ok and (b ?? 100%) < 10%
    on failure continue
    approval by "sre" within 10m
    revert after 30m
    revert on resolve
  }
  task b = f() {}
  task c = g(  // a comment
    x: 1, // another
  ) // trailing
  /// doc
  task d = "{"nested {"deeper"}"}\t\n\\\{\}"
}
"##;
        let (chunks, answered) = agree(text);
        assert_eq!((chunks, answered), (6, 6));
    }

    #[test]
    fn too_many_prefix_operators_are_left_to_pest_even_when_the_tree_is_shallow() {
        // 130 prefix operators at a depth of 67: the builder refuses it for the count alone.
        let terms = vec!["-a*-a"; 65].join(" + ");
        let text = format!("rule deep {{\n  when {terms} > 0\n}}\n");
        let scanned = scan(&text);
        let [chunk] = scanned.chunks.as_slice() else {
            panic!("one chunk")
        };
        assert!(super::chunk(&text, chunk.start, chunk.end, &scanned.comments).is_none());
        let mut diagnostics = Vec::new();
        let mut items = Vec::new();
        pest_chunk(
            FileId(0),
            &text,
            chunk,
            &scanned.comments,
            &mut diagnostics,
            &mut items,
        );
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        // A comment between `not` and `in` is checked like any other.
        let text = "rule t {\n  when a not // c\n in b\n}\n";
        assert_eq!(agree(text), (1, 1));
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % bound.max(1) as u64) as usize
        }
    }

    #[test]
    fn mutated_chunks_agree_or_take_pests_path() {
        // Chunks of the repository's files, each cut, doubled, or given a stray character
        // at random places: wherever the fast path still answers, pest must agree.
        let mut chunks = Vec::new();
        for path in ops_files() {
            let text = std::fs::read_to_string(&path).unwrap();
            for chunk in scan(&text).chunks {
                if let Some(piece) = text.get(chunk.start..chunk.end)
                    && piece.len() < 2_000
                {
                    chunks.push(piece.to_string());
                }
            }
        }
        let stray = [
            " ", "\n", "(", ")", "{", "}", "[", "]", ",", ".", ":", "=", "\"", "r", "#", "-", "+",
            "*", "/", "?", "<", ">", "!", "~", "%", "0", "9", "m", "s", "_", "a", "not ", "in ",
            "and ", "or ", "//", ";", "\\", "é", "true", "per ", "by ", "T",
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut answered = 0;
        for _ in 0..20_000 {
            let mut text = chunks[rng.below(chunks.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let mut at = rng.below(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                match rng.below(4) {
                    0 => {
                        let mut end = (at + 1 + rng.below(4)).min(text.len());
                        while !text.is_char_boundary(end) {
                            end += 1;
                        }
                        text.replace_range(at..end, "");
                    }
                    1 => {
                        let mut end = (at + 1 + rng.below(8)).min(text.len());
                        while !text.is_char_boundary(end) {
                            end += 1;
                        }
                        let copy = text[at..end].to_string();
                        text.insert_str(at, &copy);
                    }
                    _ => text.insert_str(at, stray[rng.below(stray.len())]),
                }
            }
            answered += agree(&text).1;
        }
        // Most mutations break the chunk; many do not, and those must agree.
        assert!(
            answered > 2_000,
            "only {answered} mutated chunks took the fast path"
        );
    }
}
