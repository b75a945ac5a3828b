//! What the sandbox's PromQL accepts: a query is bounded in size and nesting before it is
//! parsed, parsed by promql-parser, then walked for constructs the evaluator does not
//! support, each refused as `bad_data` naming it, so nothing is evaluated approximately
//! and a hostile query cannot exhaust the stack.

use promql_parser::parser::{Expr, VectorSelector};

use super::QueryError;
use super::eval::{Aggregation, BinaryOp, bad_data, unsupported};

/// The deepest query tree evaluated.
pub const MAX_DEPTH: usize = 100;

/// The longest query text parsed.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Parses `query` and checks that the sandbox evaluates everything in it.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(bad_data(format!(
            "the query is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    check_size(query)?;
    let expr = promql_parser::parser::parse(query).map_err(bad_data)?;
    check(&expr, 0)?;
    Ok(expr)
}

/// The most operators and names a query may hold: each can add a level to the parsed tree,
/// and a tree thousands of levels deep exhausts the stack when it is dropped.
pub const MAX_TERMS: usize = 2_000;

/// Refuses, before parsing, a query whose brackets nest deeper than [`MAX_DEPTH`] or that
/// has more than [`MAX_TERMS`] operators and names (outside strings and comments).
fn check_size(query: &str) -> Result<(), QueryError> {
    let mut depth = 0usize;
    let mut terms = 0usize;
    let mut in_word = false;
    let mut characters = query.chars();
    while let Some(character) = characters.next() {
        let word = character.is_alphanumeric() || character == '_' || character == ':';
        if word && !in_word {
            terms += 1;
        }
        in_word = word;
        match character {
            '"' | '\'' => {
                let mut escaped = false;
                for inner in characters.by_ref() {
                    match inner {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        _ if inner == character => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                characters.by_ref().find(|inner| *inner == '`');
            }
            '#' => {
                characters.by_ref().find(|inner| *inner == '\n');
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(bad_data(format!(
                        "the query is nested deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' => terms += 1,
            _ => {}
        }
        if terms > MAX_TERMS {
            return Err(bad_data(format!(
                "the query has more than {MAX_TERMS} operators and names"
            )));
        }
    }
    Ok(())
}

/// The functions evaluated, by name.
const FUNCTIONS: [&str; 22] = [
    "rate",
    "increase",
    "irate",
    "delta",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "histogram_quantile",
    "abs",
    "ceil",
    "floor",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "scalar",
    "vector",
    "time",
    "absent",
];

/// Refuses what the evaluator does not support, naming it.
fn check(expr: &Expr, depth: usize) -> Result<(), QueryError> {
    if depth > MAX_DEPTH {
        return Err(bad_data(format!(
            "the query is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let next = depth + 1;
    match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(selector) => check_selector(selector),
        Expr::MatrixSelector(selector) => check_selector(&selector.vs),
        Expr::Paren(paren) => check(&paren.expr, next),
        Expr::Unary(unary) => check(&unary.expr, next),
        Expr::Subquery(_) => Err(unsupported("a subquery")),
        Expr::Extension(_) => Err(unsupported("an extension expression")),
        Expr::Aggregate(aggregate) => {
            if Aggregation::of(aggregate.op).is_none() {
                return Err(unsupported(&format!("the aggregation `{}`", aggregate.op)));
            }
            if let Some(param) = &aggregate.param {
                check(param, next)?;
            }
            check(&aggregate.expr, next)
        }
        Expr::Call(call) => {
            if !FUNCTIONS.contains(&call.func.name) {
                return Err(unsupported(&format!("the function `{}`", call.func.name)));
            }
            call.args.args.iter().try_for_each(|arg| check(arg, next))
        }
        Expr::Binary(binary) => {
            if let Some(modifier) = &binary.modifier
                && (modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some())
            {
                return Err(unsupported("a `fill` modifier"));
            }
            if BinaryOp::of(binary.op).is_none() {
                return Err(unsupported(&format!("the operator `{}`", binary.op)));
            }
            check(&binary.lhs, next)?;
            check(&binary.rhs, next)
        }
    }
}

fn check_selector(selector: &VectorSelector) -> Result<(), QueryError> {
    if !selector.matchers.or_matchers.is_empty() {
        return Err(unsupported("`or` inside a selector's braces"));
    }
    Ok(())
}
