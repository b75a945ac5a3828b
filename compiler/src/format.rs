//! The canonical layout of `.ops` files (`medic fmt`).
//!
//! The formatter prints the syntax tree, not the text, so the layout depends only on the
//! program: two-space indentation, one clause per line, one blank line between items,
//! canonical spacing around operators, calls broken one argument per line when a line would
//! exceed [`MAX_WIDTH`]. Comments are not in the tree; they are re-attached by position:
//! each comment is printed on its own line before the first node that starts after it, or
//! at the end of the line of the node it trails. Blank lines between clauses, tasks and
//! fields are kept (at most one). Formatting a formatted file changes nothing.
//!
//! Files with syntax errors are not formatted (the caller gets the diagnostics instead):
//! printing a partial tree would drop the broken text.

use crate::ast::{self, ExprKind, StrPart};

pub const MAX_WIDTH: usize = 100;
const INDENT: &str = "  ";

/// Formats a parsed file. `source` is the text the file was parsed from.
pub fn format_file(file: &ast::File, source: &str) -> String {
    let mut printer = Printer {
        source,
        comments: &file.comments,
        next_comment: 0,
        out: String::new(),
        indent: 0,
        last_end: 0,
        block_start: true,
    };
    let mut previous: Option<&ast::Item> = None;
    for item in &file.items {
        let both_imports =
            matches!(previous, Some(ast::Item::Import(_))) && matches!(item, ast::Item::Import(_));
        if previous.is_some() && !both_imports {
            printer.blank_line();
        }
        printer.leading(
            item.span().start as usize,
            previous.is_none() || both_imports,
        );
        printer.item(item);
        previous = Some(item);
    }
    printer.rest();
    let mut out = printer.out;
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The canonical text of one expression (used for lints that compare conditions).
pub fn expr_text<T>(expr: &ast::Expr<T>, source: &str) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr, source);
    out
}

struct Printer<'a> {
    source: &'a str,
    comments: &'a [ast::Comment],
    next_comment: usize,
    out: String,
    indent: usize,
    /// Source offset of the end of the last printed node or comment.
    last_end: usize,
    /// True right after an opening brace: no blank line goes there.
    block_start: bool,
}

impl Printer<'_> {
    fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.out.push('\n');
        self.block_start = false;
    }

    fn blank_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") && !self.block_start {
            self.out.push('\n');
        }
    }

    fn gap_has_blank_line(&self, from: usize, to: usize) -> bool {
        self.source
            .get(from.min(to)..to)
            .is_some_and(|gap| gap.matches('\n').count() >= 2)
    }

    /// Prints the comments that come before `offset`, keeping one blank line where the
    /// source had blank lines. `keep_blank_before` allows a blank line before the first one.
    fn leading(&mut self, offset: usize, keep_blank_before: bool) {
        let mut first = true;
        while let Some(comment) = self.comments.get(self.next_comment) {
            if comment.span.start as usize >= offset {
                break;
            }
            if (!first || keep_blank_before)
                && self.gap_has_blank_line(self.last_end, comment.span.start as usize)
            {
                self.blank_line();
            }
            first = false;
            let text = self.comment_text(comment);
            self.line(&text);
            self.last_end = comment.span.end as usize;
            self.next_comment += 1;
        }
        if (!first || keep_blank_before) && self.gap_has_blank_line(self.last_end, offset) {
            self.blank_line();
        }
        self.last_end = offset;
    }

    fn comment_text(&self, comment: &ast::Comment) -> String {
        let marker = match comment.kind {
            ast::CommentKind::Line => "//",
            ast::CommentKind::Doc => "///",
            ast::CommentKind::InnerDoc => "//!",
        };
        format!("{marker}{}", comment.text)
    }

    /// Ends the line of a node that ends at `end`, appending a comment that trails it on
    /// the same source line.
    fn trailing(&mut self, end: usize) {
        self.last_end = self.last_end.max(end);
        let Some(comment) = self.comments.get(self.next_comment) else {
            return;
        };
        let start = comment.span.start as usize;
        if start < end {
            return;
        }
        let same_line = self
            .source
            .get(end..start)
            .is_some_and(|gap| !gap.contains('\n') && gap.chars().all(char::is_whitespace));
        if !same_line {
            return;
        }
        if self.out.ends_with('\n') {
            self.out.pop();
        }
        let text = self.comment_text(comment);
        self.out.push_str("  ");
        self.out.push_str(&text);
        self.out.push('\n');
        self.last_end = comment.span.end as usize;
        self.next_comment += 1;
    }

    /// Prints the comments after the last item.
    fn rest(&mut self) {
        self.indent = 0;
        self.leading(self.source.len() + 1, true);
    }

    fn open(&mut self, text: &str) {
        self.line(text);
        self.indent += 1;
        self.block_start = true;
    }

    fn close(&mut self, end: usize) {
        // Comments inside the block after its last node.
        self.leading(end.saturating_sub(1), false);
        self.indent = self.indent.saturating_sub(1);
        self.line("}");
        self.trailing(end);
    }

    fn item(&mut self, item: &ast::Item) {
        match item {
            ast::Item::Import(import) => {
                let text = if import.braced {
                    let names: Vec<&str> =
                        import.names.iter().map(|name| name.name.as_str()).collect();
                    format!("import {}.{{{}}}", import.root.name, names.join(", "))
                } else if let Some(name) = import.names.first() {
                    format!("import {}.{}", import.root.name, name.name)
                } else {
                    format!("import {}", import.root.name)
                };
                self.line(&text);
                self.trailing(import.span.end as usize);
            }
            ast::Item::Rule(rule) => self.rule(rule),
            ast::Item::Playbook(playbook) => self.playbook(playbook),
            ast::Item::Module(module) => {
                self.line(&format!("module {}", module.name.name));
                self.trailing(module.span.end as usize);
            }
            ast::Item::Record(record) => {
                self.open(&format!("record {} {{", record.name.name));
                for field in &record.fields {
                    self.leading(field.span.start as usize, true);
                    let text = format!("{}: {},", field.name.name, type_text(&field.ty));
                    self.line(&text);
                    self.trailing(field.span.end as usize + 1);
                }
                self.close(record.span.end as usize);
            }
            ast::Item::Enum(decl) => {
                let variants: Vec<&str> = decl
                    .variants
                    .iter()
                    .map(|variant| variant.name.as_str())
                    .collect();
                self.line(&format!(
                    "enum {} {{ {} }}",
                    decl.name.name,
                    variants.join(", ")
                ));
                self.trailing(decl.span.end as usize);
            }
            ast::Item::Function(function) => {
                let effect = match function.effect {
                    ast::Effect::Query => "query",
                    ast::Effect::Action => "action",
                };
                let params = self.params_text(&function.params);
                let revertible = if function.revertible {
                    " revertible"
                } else {
                    ""
                };
                let text = format!(
                    "{effect} fn {}({params}) -> {}{revertible}",
                    function.name.name,
                    type_text(&function.returns)
                );
                self.line(&text);
                self.trailing(function.span.end as usize);
            }
            ast::Item::Test(test) => self.test(test),
            ast::Item::Error(span) => {
                // Not reached for files without syntax errors; print the text unchanged.
                let text = self
                    .source
                    .get(span.range())
                    .unwrap_or("")
                    .trim_end()
                    .to_string();
                self.out.push_str(&text);
                self.out.push('\n');
            }
        }
    }

    /// `test "name" { ... }`: one statement per line, blank lines and comments kept.
    fn test(&mut self, test: &ast::Test) {
        let name = self.source.get(test.name.span.range()).unwrap_or("\"\"");
        self.open(&format!("test {name} {{"));
        for step in &test.steps {
            let span = match step {
                ast::TestStep::Event { span, .. } => *span,
                ast::TestStep::Mock(mock) => mock.span,
                ast::TestStep::Expect(expectation) => expectation.span,
            };
            self.leading(span.start as usize, true);
            let text = self.test_step(step);
            let fits = self.indent * INDENT.len() + text.len() <= MAX_WIDTH;
            match step {
                // A long mock puts each later answer on a line of its own.
                ast::TestStep::Mock(mock) if !fits && mock.answers.len() > 1 => {
                    let mut answers = text.split(" then ");
                    self.line(answers.next().unwrap_or(""));
                    self.indent += 1;
                    for answer in answers {
                        self.line(&format!("then {answer}"));
                    }
                    self.indent -= 1;
                }
                // A long expected call breaks like a call.
                ast::TestStep::Expect(ast::Expectation {
                    kind:
                        ast::ExpectKind::Action {
                            module,
                            function,
                            args: Some(args),
                            negated,
                        },
                    ..
                }) if !fits => {
                    let no = if *negated { "no " } else { "" };
                    let prefix = format!("expect {no}action {}.{}", module.name, function.name);
                    self.call_line(&prefix, args, "");
                }
                ast::TestStep::Expect(ast::Expectation {
                    kind:
                        ast::ExpectKind::Run {
                            playbook,
                            args: Some(args),
                        },
                    ..
                }) if !fits => {
                    self.call_line(&format!("expect run {}", playbook.name), args, "");
                }
                _ => self.line(&text),
            }
            self.trailing(span.end as usize);
        }
        self.close(test.span.end as usize);
    }

    fn test_step(&self, step: &ast::TestStep) -> String {
        let source = self.source;
        let args = |args: &Option<Vec<ast::Arg>>| match args {
            Some(args) => format!(
                "({})",
                args.iter()
                    .map(|arg| arg_text(arg, source))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        match step {
            ast::TestStep::Event { at, event, .. } => {
                let at = at.as_ref().map_or(String::new(), |at| {
                    format!("at +{} ", expr_text(at, source))
                });
                let event = match event {
                    ast::TestEvent::Fire {
                        name: Some(name),
                        alert,
                    } => format!("fire {} = {}", name.name, expr_text(alert, source)),
                    ast::TestEvent::Fire { name: None, alert } => {
                        format!("fire {}", expr_text(alert, source))
                    }
                    ast::TestEvent::Resolve(name) => format!("resolve {}", name.name),
                    ast::TestEvent::Decide { task, approve } => format!(
                        "{} {}",
                        if *approve { "approve" } else { "reject" },
                        task.name
                    ),
                };
                format!("{at}{event}")
            }
            ast::TestStep::Mock(mock) => {
                let answers: Vec<String> = mock
                    .answers
                    .iter()
                    .map(|answer| match answer {
                        ast::MockAnswer::Value(expr) => expr_text(expr, source),
                        ast::MockAnswer::Fail(Some(why), _) => {
                            format!("fail {}", source.get(why.span.range()).unwrap_or("\"\""))
                        }
                        ast::MockAnswer::Fail(None, _) => "fail".to_string(),
                    })
                    .collect();
                format!(
                    "mock {}.{}{} = {}",
                    mock.module.name,
                    mock.function.name,
                    args(&mock.args),
                    answers.join(" then ")
                )
            }
            ast::TestStep::Expect(expectation) => {
                let what = match &expectation.kind {
                    ast::ExpectKind::NoMatch => "no match".to_string(),
                    ast::ExpectKind::Matched(rules) => format!(
                        "matched {}",
                        rules
                            .iter()
                            .map(|rule| rule.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    ast::ExpectKind::Suppressed { rule, reason } => match reason {
                        Some(reason) => format!("suppressed {} by {}", rule.name, reason.name),
                        None => format!("suppressed {}", rule.name),
                    },
                    ast::ExpectKind::Runs(count, _) => format!("runs {count}"),
                    ast::ExpectKind::Run {
                        playbook,
                        args: given,
                    } => {
                        format!("run {}{}", playbook.name, args(given))
                    }
                    ast::ExpectKind::Task { task, state } => {
                        format!("task {} {}", task.name, state.name)
                    }
                    ast::ExpectKind::Action {
                        module,
                        function,
                        args: given,
                        negated,
                    } => format!(
                        "{}action {}.{}{}",
                        if *negated { "no " } else { "" },
                        module.name,
                        function.name,
                        args(given)
                    ),
                    ast::ExpectKind::Outcome(outcome) => format!("outcome {}", outcome.name),
                    ast::ExpectKind::Revert { task, at } => match at {
                        Some(at) => format!("revert {} at +{}", task.name, expr_text(at, source)),
                        None => format!("revert {}", task.name),
                    },
                };
                format!("expect {what}")
            }
        }
    }

    fn params_text(&self, params: &[ast::Param]) -> String {
        params
            .iter()
            .map(|param| {
                let mut text = String::new();
                if param.guard {
                    text.push_str("guard ");
                }
                text.push_str(&param.name.name);
                text.push_str(": ");
                text.push_str(&type_text(&param.ty));
                if let Some(default) = &param.default {
                    text.push_str(" = ");
                    text.push_str(&expr_text(default, self.source));
                }
                text
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn rule(&mut self, rule: &ast::Rule) {
        self.open(&format!("rule {} {{", rule.name.name));
        for clause in &rule.clauses {
            let span = clause.span();
            self.leading(span.start as usize, true);
            match clause {
                ast::RuleClause::On(on) => {
                    let lifecycle = match on.lifecycle {
                        ast::Lifecycle::Firing => "",
                        ast::Lifecycle::Resolved => "resolved ",
                        ast::Lifecycle::Any => "any ",
                    };
                    let names = if on.names.is_empty() {
                        "*".to_string()
                    } else {
                        on.names
                            .iter()
                            .map(|name| {
                                self.source
                                    .get(name.span.range())
                                    .unwrap_or("\"\"")
                                    .to_string()
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    self.line(&format!("on {lifecycle}alert {names}"));
                }
                ast::RuleClause::When(expr, _) => {
                    let text = format!("when {}", expr_text(expr, self.source));
                    self.line(&text);
                }
                ast::RuleClause::Run(run) => {
                    let prefix = format!("run {}", run.playbook.name);
                    self.call_line(&prefix, &run.args, "");
                }
                ast::RuleClause::Cooldown(limit) => self.limit_line("cooldown", limit),
                ast::RuleClause::Concurrency(limit) => self.limit_line("concurrency", limit),
                ast::RuleClause::Priority(expr, _) => {
                    let text = format!("priority {}", expr_text(expr, self.source));
                    self.line(&text);
                }
                ast::RuleClause::Continue(_) => self.line("continue"),
            }
            self.trailing(span.end as usize);
        }
        self.close(rule.span.end as usize);
    }

    fn limit_line(&mut self, keyword: &str, limit: &ast::Limit) {
        let mut text = format!("{keyword} {}", expr_text(&limit.value, self.source));
        if let Some(per) = &limit.per {
            text.push_str(" per ");
            text.push_str(&expr_text(per, self.source));
        }
        self.line(&text);
    }

    /// Prints `prefix(args)suffix`, one argument per line when it does not fit.
    fn call_line(&mut self, prefix: &str, args: &[ast::Arg], suffix: &str) {
        let args_text: Vec<String> = args.iter().map(|arg| arg_text(arg, self.source)).collect();
        let one_line = format!("{prefix}({}){suffix}", args_text.join(", "));
        if self.indent * INDENT.len() + one_line.len() <= MAX_WIDTH || args.is_empty() {
            self.line(&one_line);
            return;
        }
        self.line(&format!("{prefix}("));
        self.indent += 1;
        for arg in args_text {
            self.line(&format!("{arg},"));
        }
        self.indent -= 1;
        self.line(&format!("){suffix}"));
    }

    fn playbook(&mut self, playbook: &ast::Playbook) {
        let params = self.params_text(&playbook.params);
        let header = format!("playbook {}({params}) {{", playbook.name.name);
        if self.indent * INDENT.len() + header.len() <= MAX_WIDTH || playbook.params.is_empty() {
            self.open(&header);
        } else {
            self.line(&format!("playbook {}(", playbook.name.name));
            self.indent += 1;
            for param in &playbook.params {
                let text = self.params_text(std::slice::from_ref(param));
                self.line(&format!("{text},"));
            }
            self.indent -= 1;
            self.open(") {");
        }
        let mut previous_was_timeout = false;
        for (index, item) in playbook.body.iter().enumerate() {
            let span = item.span();
            // A blank line separates the playbook's own settings from its tasks.
            if index > 0 && previous_was_timeout && matches!(item, ast::PlaybookItem::Task(_)) {
                self.blank_line();
            }
            self.leading(span.start as usize, true);
            match item {
                ast::PlaybookItem::Timeout(expr, _) => {
                    let text = format!("timeout {}", expr_text(expr, self.source));
                    self.line(&text);
                    self.trailing(span.end as usize);
                    previous_was_timeout = true;
                }
                ast::PlaybookItem::Task(task) => {
                    self.task(task);
                    previous_was_timeout = false;
                }
            }
        }
        self.close(playbook.span.end as usize);
    }

    fn task(&mut self, task: &ast::Task) {
        let prefix = format!("task {} = ", task.name.name);
        let suffix = if task.clauses.is_empty() { "" } else { " {" };
        match &task.call.kind {
            ExprKind::Call(callee, args) => {
                let prefix = format!("{prefix}{}", expr_text(callee, self.source));
                self.call_line(&prefix, args, suffix);
            }
            _ => {
                let text = format!("{prefix}{}{suffix}", expr_text(&task.call, self.source));
                self.line(&text);
            }
        }
        if task.clauses.is_empty() {
            self.trailing(task.span.end as usize);
            return;
        }
        self.indent += 1;
        self.block_start = true;
        for clause in &task.clauses {
            let span = clause.span();
            self.leading(span.start as usize, true);
            let text = match clause {
                ast::TaskClause::After(names, _) => {
                    let names: Vec<&str> = names.iter().map(|name| name.name.as_str()).collect();
                    format!("after {}", names.join(", "))
                }
                ast::TaskClause::When(expr, _) => format!("when {}", expr_text(expr, self.source)),
                ast::TaskClause::Retry {
                    attempts, backoff, ..
                } => {
                    let mut text = format!("retry {}", expr_text(attempts, self.source));
                    if let Some(backoff) = backoff {
                        text.push_str(" backoff ");
                        text.push_str(&expr_text(backoff, self.source));
                    }
                    text
                }
                ast::TaskClause::Timeout(expr, _) => {
                    format!("timeout {}", expr_text(expr, self.source))
                }
                ast::TaskClause::OnFailure(policy, _) => format!("on failure {}", policy.as_str()),
                ast::TaskClause::Approval { by, timeout, .. } => {
                    let mut text = "approval".to_string();
                    if let Some(by) = by {
                        text.push_str(" by ");
                        text.push_str(self.source.get(by.span.range()).unwrap_or("\"\""));
                    }
                    if let Some(timeout) = timeout {
                        text.push_str(" within ");
                        text.push_str(&expr_text(timeout, self.source));
                    }
                    text
                }
                ast::TaskClause::RevertAfter(expr, _) => {
                    format!("revert after {}", expr_text(expr, self.source))
                }
                ast::TaskClause::RevertOnResolve(_) => "revert on resolve".to_string(),
            };
            self.line(&text);
            self.trailing(span.end as usize);
        }
        self.close(task.span.end as usize);
    }
}

/// Words that cannot be bare record keys.
const RESERVED: &[&str] = &[
    "import", "rule", "playbook", "task", "and", "or", "not", "in", "true", "false",
];

/// Writes text as the inside of an `.ops` string literal (escapes, braces).
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
}

fn type_text(ty: &ast::TypeExpr) -> String {
    match &ty.kind {
        ast::TypeExprKind::Named { module, name } => match module {
            Some(module) => format!("{}.{}", module.name, name.name),
            None => name.name.clone(),
        },
        ast::TypeExprKind::List(element) => format!("[{}]", type_text(element)),
        ast::TypeExprKind::Map(key, value) => {
            format!("{{{}: {}}}", type_text(key), type_text(value))
        }
        ast::TypeExprKind::Optional(inner) => format!("{}?", type_text(inner)),
    }
}

fn arg_text<T>(arg: &ast::Arg<T>, source: &str) -> String {
    let value = expr_text(&arg.value, source);
    match &arg.name {
        Some(name) => format!("{}: {value}", name.name),
        None => value,
    }
}

fn write_expr<T>(out: &mut String, expr: &ast::Expr<T>, source: &str) {
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Duration(_)
        | ExprKind::Percent(_)
        | ExprKind::Size(_)
        | ExprKind::Time(_)
        | ExprKind::Error => out.push_str(source.get(expr.span.range()).unwrap_or("")),
        // A raw string holds no escapes and no interpolations: its source text is its layout.
        ExprKind::Str(_, ast::StrStyle::Raw { .. }) => {
            out.push_str(source.get(expr.span.range()).unwrap_or("\"\""));
        }
        ExprKind::Str(parts, ast::StrStyle::Quoted) => {
            out.push('"');
            for part in parts {
                match part {
                    StrPart::Text(text, _) => escape_into(out, text),
                    StrPart::Interpolation(inner) => {
                        out.push('{');
                        write_expr(out, inner, source);
                        out.push('}');
                    }
                }
            }
            out.push('"');
        }
        ExprKind::List(elements) => {
            out.push('[');
            for (index, element) in elements.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_expr(out, element, source);
            }
            out.push(']');
        }
        ExprKind::Record(entries) => {
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{ ");
            for (index, entry) in entries.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                let key_is_ident = !RESERVED.contains(&entry.key.name.as_str())
                    && entry
                        .key
                        .name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && entry
                        .key
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                let raw_key = source
                    .get(entry.key.span.range())
                    .filter(|written| written.starts_with('r'));
                if key_is_ident {
                    out.push_str(&entry.key.name);
                } else if let Some(raw_key) = raw_key {
                    out.push_str(raw_key);
                } else {
                    out.push('"');
                    escape_into(out, &entry.key.name);
                    out.push('"');
                }
                out.push_str(": ");
                write_expr(out, &entry.value, source);
            }
            out.push_str(" }");
        }
        ExprKind::Name(ident) | ExprKind::Variant(ident) => out.push_str(&ident.name),
        ExprKind::Field(base, field) => {
            write_expr(out, base, source);
            out.push('.');
            out.push_str(&field.name);
        }
        ExprKind::Call(callee, args) => {
            write_expr(out, callee, source);
            out.push('(');
            for (index, arg) in args.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(&arg_text(arg, source));
            }
            out.push(')');
        }
        ExprKind::Index(base, index) => {
            write_expr(out, base, source);
            out.push('[');
            write_expr(out, index, source);
            out.push(']');
        }
        ExprKind::Unary(op, operand) => {
            match op {
                ast::UnaryOp::Not => out.push_str("not "),
                ast::UnaryOp::Neg => out.push('-'),
            }
            write_expr(out, operand, source);
        }
        ExprKind::Binary(op, _, left, right) => {
            write_expr(out, left, source);
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            write_expr(out, right, source);
        }
        ExprKind::Paren(inner) => {
            out.push('(');
            write_expr(out, inner, source);
            out.push(')');
        }
    }
}
