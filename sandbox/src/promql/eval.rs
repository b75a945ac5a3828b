//! PromQL evaluation over a [`SeriesStore`], without I/O: a tree that `check` accepted,
//! evaluated at one time ([`Evaluator::eval`]) as Prometheus 2.42's engine does
//! (promql/engine.go: selectors, aggregations, binary operators and vector matching; the
//! numeric functions are in `functions`). A range query is the instant evaluation at each
//! step, which is what Prometheus's step-by-step `rangeEval` amounts to for the supported
//! subset.
//!
//! What is guaranteed:
//! - windows are closed at both ends, as in Prometheus 2.x: an instant selector reads the
//!   newest sample in `[t - 5m, t]`, a range selector `[t - range, t]` (Prometheus 3 made
//!   both left-open);
//! - labels are dropped and kept as Prometheus does (the metric name goes with arithmetic,
//!   `bool` comparisons and functions other than `last_over_time`); a result with two
//!   elements of one label set is an `execution` error, as in Prometheus;
//! - evaluation recurses only as deep as the tree, which `check` bounded.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::BinModifier;
use promql_parser::parser::token::TokenType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset,
    VectorMatchCardinality, VectorSelector,
};

use super::functions::{go_max, go_min, histogram_quantile, over_time};
use super::store::{Labels, Series, SeriesStore};
use super::{QueryError, QueryValue};

/// How far back an instant selector looks for a sample (Prometheus's default
/// `--query.lookback-delta`).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

const METRIC_NAME: &str = "__name__";

pub(crate) fn bad_data(message: impl Into<String>) -> QueryError {
    QueryError {
        kind: "bad_data",
        message: message.into(),
    }
}

pub(crate) fn execution(message: impl Into<String>) -> QueryError {
    QueryError {
        kind: "execution",
        message: message.into(),
    }
}

pub(crate) fn unsupported(what: &str) -> QueryError {
    bad_data(format!("{what} is not supported by the sandbox's PromQL"))
}

/// A binary operator, decoded once from promql-parser's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    /// The operator of `token`; none for one the sandbox does not evaluate (`atan2`).
    pub(crate) fn of(token: TokenType) -> Option<BinaryOp> {
        use promql_parser::parser::token::{
            T_ADD, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
            T_MUL, T_NEQ, T_POW, T_SUB,
        };
        Some(match token.id() {
            T_ADD => BinaryOp::Add,
            T_SUB => BinaryOp::Sub,
            T_MUL => BinaryOp::Mul,
            T_DIV => BinaryOp::Div,
            T_MOD => BinaryOp::Mod,
            T_POW => BinaryOp::Pow,
            T_EQLC => BinaryOp::Eq,
            T_NEQ => BinaryOp::Ne,
            T_GTR => BinaryOp::Gt,
            T_LSS => BinaryOp::Lt,
            T_GTE => BinaryOp::Ge,
            T_LTE => BinaryOp::Le,
            T_LAND => BinaryOp::And,
            T_LOR => BinaryOp::Or,
            T_LUNLESS => BinaryOp::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Gt | BinaryOp::Lt | BinaryOp::Ge | BinaryOp::Le
        )
    }
}

/// An aggregation, decoded once from promql-parser's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregation {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    TopK,
    BottomK,
}

impl Aggregation {
    /// The aggregation of `token`; none for one the sandbox does not evaluate.
    pub(crate) fn of(token: TokenType) -> Option<Aggregation> {
        use promql_parser::parser::token::{
            T_AVG, T_BOTTOMK, T_COUNT, T_GROUP, T_MAX, T_MIN, T_SUM, T_TOPK,
        };
        Some(match token.id() {
            T_SUM => Aggregation::Sum,
            T_AVG => Aggregation::Avg,
            T_MIN => Aggregation::Min,
            T_MAX => Aggregation::Max,
            T_COUNT => Aggregation::Count,
            T_GROUP => Aggregation::Group,
            T_TOPK => Aggregation::TopK,
            T_BOTTOMK => Aggregation::BottomK,
            _ => return None,
        })
    }
}

/// One evaluation: the store, the time evaluated at, and the query's start and end (what
/// `@ start()` and `@ end()` mean).
pub struct Evaluator<'a> {
    pub store: &'a SeriesStore,
    pub at_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A vector: labels and a value per series.
type Vector = Vec<(Labels, f64)>;

impl Evaluator<'_> {
    pub fn eval(&self, expr: &Expr) -> Result<QueryValue, QueryError> {
        match expr {
            Expr::NumberLiteral(number) => Ok(QueryValue::Scalar(number.val)),
            Expr::StringLiteral(text) => Ok(QueryValue::String(text.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr),
            Expr::Unary(unary) => match self.eval(&unary.expr)? {
                QueryValue::Scalar(value) => Ok(QueryValue::Scalar(-value)),
                QueryValue::Vector(vector) => Ok(QueryValue::Vector(unique(
                    vector
                        .into_iter()
                        .map(|(labels, value)| (without_name(labels), -value))
                        .collect(),
                )?)),
                _ => Err(bad_data("unary minus applies to a scalar or a vector")),
            },
            Expr::VectorSelector(selector) => Ok(QueryValue::Vector(self.instant(selector))),
            Expr::MatrixSelector(selector) => Ok(QueryValue::Matrix(self.matrix(selector).0)),
            Expr::Call(call) => self.call(call),
            Expr::Aggregate(aggregate) => self.aggregate(aggregate),
            Expr::Binary(binary) => self.binary(binary),
            Expr::Subquery(_) => Err(unsupported("a subquery")),
            Expr::Extension(_) => Err(unsupported("an extension expression")),
        }
    }

    fn scalar(&self, expr: &Expr) -> Result<f64, QueryError> {
        match self.eval(expr)? {
            QueryValue::Scalar(value) => Ok(value),
            _ => Err(bad_data(format!("expected a scalar: {expr}"))),
        }
    }

    fn vector(&self, expr: &Expr) -> Result<Vector, QueryError> {
        match self.eval(expr)? {
            QueryValue::Vector(vector) => Ok(vector),
            _ => Err(bad_data(format!("expected an instant vector: {expr}"))),
        }
    }

    /// The time a selector reads at: the evaluation time, or its `@`, minus its offset.
    fn reference_ms(&self, offset: Option<&Offset>, at: Option<&AtModifier>) -> i64 {
        let base = match at {
            None => self.at_ms,
            Some(AtModifier::Start) => self.start_ms,
            Some(AtModifier::End) => self.end_ms,
            Some(AtModifier::At(time)) => system_time_ms(*time),
        };
        base.saturating_sub(offset_ms(offset))
    }

    fn instant(&self, selector: &VectorSelector) -> Vector {
        let reference = self.reference_ms(selector.offset.as_ref(), selector.at.as_ref());
        self.store
            .select(
                |labels| selects(selector, labels),
                reference.saturating_sub(LOOKBACK_MS),
                reference,
            )
            .into_iter()
            .filter_map(|series| {
                let (_, value) = series.samples.last().copied()?;
                Some((series.labels, value))
            })
            .collect()
    }

    /// The series of a range selector with their samples in `[end - range, end]`, and the
    /// window's `(start, end)`.
    fn matrix(&self, selector: &MatrixSelector) -> (Vec<Series>, (i64, i64)) {
        let end = self.reference_ms(selector.vs.offset.as_ref(), selector.vs.at.as_ref());
        let start = end.saturating_sub(duration_ms(selector.range));
        let series = self
            .store
            .select(|labels| selects(&selector.vs, labels), start, end);
        (series, (start, end))
    }

    fn call(&self, call: &Call) -> Result<QueryValue, QueryError> {
        let args: Vec<&Expr> = call.args.args.iter().map(|arg| &**arg).collect();
        let name = call.func.name;
        let vector = |result: Vector| -> Result<QueryValue, QueryError> {
            Ok(QueryValue::Vector(unique(result)?))
        };
        match (name, args.as_slice()) {
            ("time", []) => Ok(QueryValue::Scalar(self.at_ms as f64 / 1000.0)),
            ("vector", [arg]) => Ok(QueryValue::Vector(vec![(Labels::new(), self.scalar(arg)?)])),
            ("scalar", [arg]) => {
                let vector = self.vector(arg)?;
                Ok(QueryValue::Scalar(match vector.as_slice() {
                    [(_, value)] => *value,
                    _ => f64::NAN,
                }))
            }
            ("absent", [arg]) => {
                if !self.vector(arg)?.is_empty() {
                    return Ok(QueryValue::Vector(Vec::new()));
                }
                Ok(QueryValue::Vector(vec![(absent_labels(arg), 1.0)]))
            }
            ("histogram_quantile", [quantile, arg]) => {
                let quantile = self.scalar(quantile)?;
                vector(histogram_quantile(quantile, self.vector(arg)?))
            }
            ("abs" | "ceil" | "floor", [arg]) => {
                let apply: fn(f64) -> f64 = match name {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    _ => f64::floor,
                };
                vector(map_values(self.vector(arg)?, apply))
            }
            ("round", [arg, rest @ ..]) => {
                let to_nearest = match rest {
                    [] => 1.0,
                    [to_nearest] => self.scalar(to_nearest)?,
                    _ => return Err(bad_data("round takes one or two arguments")),
                };
                // As Prometheus: the inverse causes fewer floating point accuracy issues,
                // and ties round up.
                let inverse = 1.0 / to_nearest;
                vector(map_values(self.vector(arg)?, |value| {
                    (value * inverse + 0.5).floor() / inverse
                }))
            }
            ("clamp", [arg, min, max]) => {
                let (min, max) = (self.scalar(min)?, self.scalar(max)?);
                if max < min {
                    return Ok(QueryValue::Vector(Vec::new()));
                }
                vector(map_values(self.vector(arg)?, |value| {
                    go_max(min, go_min(max, value))
                }))
            }
            ("clamp_min", [arg, min]) => {
                let min = self.scalar(min)?;
                vector(map_values(self.vector(arg)?, |value| go_max(min, value)))
            }
            ("clamp_max", [arg, max]) => {
                let max = self.scalar(max)?;
                vector(map_values(self.vector(arg)?, |value| go_min(max, value)))
            }
            (_, [Expr::MatrixSelector(selector)]) => {
                let (series, window) = self.matrix(selector);
                let keep_name = name == "last_over_time";
                let mut result = Vec::new();
                for series in series {
                    let Some(value) = over_time(name, &series.samples, window) else {
                        continue;
                    };
                    let labels = if keep_name {
                        series.labels
                    } else {
                        without_name(series.labels)
                    };
                    result.push((labels, value));
                }
                vector(result)
            }
            _ => Err(bad_data(format!(
                "the sandbox cannot evaluate this call of `{name}`: {call}"
            ))),
        }
    }

    fn aggregate(&self, aggregate: &AggregateExpr) -> Result<QueryValue, QueryError> {
        let Some(op) = Aggregation::of(aggregate.op) else {
            return Err(unsupported(&format!("the aggregation `{}`", aggregate.op)));
        };
        let input = self.vector(&aggregate.expr)?;
        let grouping = aggregate.modifier.as_ref();
        if matches!(op, Aggregation::TopK | Aggregation::BottomK) {
            let Some(param) = &aggregate.param else {
                return Err(bad_data(format!("`{}` needs a parameter", aggregate.op)));
            };
            let k = self.scalar(param)?;
            if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&k) {
                return Err(execution(format!("Scalar value {k} overflows int64")));
            }
            // Truncated towards zero as Go's int64(f) is.
            let k = k as i64;
            if k < 1 {
                return Ok(QueryValue::Vector(Vec::new()));
            }
            return Ok(QueryValue::Vector(top(
                input,
                grouping,
                k,
                op == Aggregation::TopK,
            )));
        }
        let mut groups: BTreeMap<Labels, Group> = BTreeMap::new();
        for (labels, value) in input {
            let key = group_labels(&labels, grouping);
            match groups.get_mut(&key) {
                None => {
                    groups.insert(
                        key,
                        Group {
                            value,
                            mean: value,
                            count: 1,
                        },
                    );
                }
                Some(group) => group.add(op, value),
            }
        }
        Ok(QueryValue::Vector(
            groups
                .into_iter()
                .map(|(labels, group)| {
                    let value = match op {
                        Aggregation::Avg => group.mean,
                        Aggregation::Count => group.count as f64,
                        Aggregation::Group => 1.0,
                        _ => group.value,
                    };
                    (labels, value)
                })
                .collect(),
        ))
    }

    fn binary(&self, binary: &BinaryExpr) -> Result<QueryValue, QueryError> {
        let Some(op) = BinaryOp::of(binary.op) else {
            return Err(unsupported(&format!("the operator `{}`", binary.op)));
        };
        let modifier = binary.modifier.as_ref();
        let return_bool = modifier.is_some_and(|modifier| modifier.return_bool);
        let matching = modifier.and_then(|modifier| modifier.matching.as_ref());
        let lhs = self.eval(&binary.lhs)?;
        let rhs = self.eval(&binary.rhs)?;
        let comparison = op.is_comparison();
        match (lhs, rhs) {
            (QueryValue::Scalar(lhs), QueryValue::Scalar(rhs)) => {
                let (value, keep) = operate(op, lhs, rhs)?;
                Ok(QueryValue::Scalar(if comparison {
                    f64::from(u8::from(keep))
                } else {
                    value
                }))
            }
            (QueryValue::Vector(vector), QueryValue::Scalar(scalar)) => Ok(QueryValue::Vector(
                unique(vector_scalar(op, vector, scalar, false, return_bool)?)?,
            )),
            (QueryValue::Scalar(scalar), QueryValue::Vector(vector)) => Ok(QueryValue::Vector(
                unique(vector_scalar(op, vector, scalar, true, return_bool)?)?,
            )),
            (QueryValue::Vector(lhs), QueryValue::Vector(rhs)) => {
                Ok(QueryValue::Vector(match op {
                    BinaryOp::And => {
                        let keys: BTreeSet<Labels> =
                            rhs.iter().map(|(l, _)| signature(l, matching)).collect();
                        lhs.into_iter()
                            .filter(|(l, _)| keys.contains(&signature(l, matching)))
                            .collect()
                    }
                    BinaryOp::Unless => {
                        let keys: BTreeSet<Labels> =
                            rhs.iter().map(|(l, _)| signature(l, matching)).collect();
                        lhs.into_iter()
                            .filter(|(l, _)| !keys.contains(&signature(l, matching)))
                            .collect()
                    }
                    BinaryOp::Or => {
                        let keys: BTreeSet<Labels> =
                            lhs.iter().map(|(l, _)| signature(l, matching)).collect();
                        let mut result = lhs;
                        result.extend(
                            rhs.into_iter()
                                .filter(|(l, _)| !keys.contains(&signature(l, matching))),
                        );
                        result
                    }
                    _ => unique(vector_vector(op, lhs, rhs, modifier)?)?,
                }))
            }
            _ => Err(bad_data(format!(
                "the operator `{}` applies to scalars and instant vectors",
                binary.op
            ))),
        }
    }
}

/// A group of an aggregation being accumulated, as Prometheus's `groupedAggregation`.
struct Group {
    value: f64,
    mean: f64,
    count: u64,
}

impl Group {
    fn add(&mut self, op: Aggregation, value: f64) {
        match op {
            Aggregation::Sum => self.value += value,
            Aggregation::Avg => {
                self.count += 1;
                if self.mean.is_infinite() {
                    // Inf of the same sign stays; a finite value cannot move an infinite
                    // mean (the update below would make it Inf - Inf, NaN).
                    if value.is_infinite() && (self.mean > 0.0) == (value > 0.0) {
                        return;
                    }
                    if value.is_finite() {
                        return;
                    }
                }
                let count = self.count as f64;
                self.mean += value / count - self.mean / count;
            }
            Aggregation::Max => {
                if self.value < value || self.value.is_nan() {
                    self.value = value;
                }
            }
            Aggregation::Min => {
                if self.value > value || self.value.is_nan() {
                    self.value = value;
                }
            }
            _ => self.count += 1,
        }
    }
}

/// `topk` / `bottomk`: the `k` largest (smallest) of each group, with their own labels.
fn top(input: Vector, grouping: Option<&LabelModifier>, k: i64, largest: bool) -> Vector {
    let mut groups: BTreeMap<Labels, Vector> = BTreeMap::new();
    for (labels, value) in input {
        groups
            .entry(group_labels(&labels, grouping))
            .or_default()
            .push((labels, value));
    }
    let take = usize::try_from(k).unwrap_or(usize::MAX);
    let mut result = Vec::new();
    for (_, mut members) in groups {
        // NaN ranks below every number for topk and above every number for bottomk, as
        // Prometheus's heaps replace NaN first.
        members.sort_by(|(_, a), (_, b)| match (a.is_nan(), b.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) if largest => b.total_cmp(a),
            (false, false) => a.total_cmp(b),
        });
        result.extend(members.into_iter().take(take));
    }
    result
}

/// The labels of an aggregation's group: only the `by` labels, or all but the `without`
/// labels and the metric name; none without a modifier.
fn group_labels(labels: &Labels, grouping: Option<&LabelModifier>) -> Labels {
    match grouping {
        None => Labels::new(),
        Some(LabelModifier::Include(names)) => labels
            .iter()
            .filter(|(name, _)| names.labels.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        Some(LabelModifier::Exclude(names)) => labels
            .iter()
            .filter(|(name, _)| *name != METRIC_NAME && !names.labels.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    }
}

/// The labels two series of a binary operation are matched on: the `on` labels, or all but
/// the `ignoring` labels and the metric name.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(names)) => labels
            .iter()
            .filter(|(name, _)| names.labels.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        Some(LabelModifier::Exclude(names)) => labels
            .iter()
            .filter(|(name, _)| *name != METRIC_NAME && !names.labels.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        None => labels
            .iter()
            .filter(|(name, _)| *name != METRIC_NAME)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    }
}

/// Prometheus's `vectorElemBinop`: the value and, for comparisons, whether it holds.
fn operate(op: BinaryOp, lhs: f64, rhs: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        BinaryOp::Add => (lhs + rhs, true),
        BinaryOp::Sub => (lhs - rhs, true),
        BinaryOp::Mul => (lhs * rhs, true),
        BinaryOp::Div => (lhs / rhs, true),
        BinaryOp::Mod => (lhs % rhs, true),
        BinaryOp::Pow => (lhs.powf(rhs), true),
        BinaryOp::Eq => (lhs, lhs == rhs),
        BinaryOp::Ne => (lhs, lhs != rhs),
        BinaryOp::Gt => (lhs, lhs > rhs),
        BinaryOp::Lt => (lhs, lhs < rhs),
        BinaryOp::Ge => (lhs, lhs >= rhs),
        BinaryOp::Le => (lhs, lhs <= rhs),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => {
            return Err(bad_data("set operators apply to two instant vectors"));
        }
    })
}

/// Prometheus's `VectorscalarBinop`; `swapped` when the scalar is on the left.
fn vector_scalar(
    op: BinaryOp,
    vector: Vector,
    scalar: f64,
    swapped: bool,
    return_bool: bool,
) -> Result<Vector, QueryError> {
    let comparison = op.is_comparison();
    let mut result = Vec::new();
    for (labels, element) in vector {
        let (lhs, rhs) = if swapped {
            (scalar, element)
        } else {
            (element, scalar)
        };
        let (mut value, mut keep) = operate(op, lhs, rhs)?;
        // The vector's element is the value a comparison keeps, whichever side it is on.
        if comparison && swapped {
            value = rhs;
        }
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if keep {
            let labels = if !comparison || return_bool {
                without_name(labels)
            } else {
                labels
            };
            result.push((labels, value));
        }
    }
    Ok(result)
}

/// Prometheus's `VectorBinop`: one-to-one matching, or many-to-one (`group_left`) and
/// one-to-many (`group_right`, evaluated as `group_left` with the sides swapped).
fn vector_vector(
    op: BinaryOp,
    lhs: Vector,
    rhs: Vector,
    modifier: Option<&BinModifier>,
) -> Result<Vector, QueryError> {
    let return_bool = modifier.is_some_and(|modifier| modifier.return_bool);
    let matching = modifier.and_then(|modifier| modifier.matching.as_ref());
    let card = modifier.map_or(&VectorMatchCardinality::OneToOne, |modifier| &modifier.card);
    let (include, swapped) = match card {
        VectorMatchCardinality::ManyToOne(labels) => (Some(&labels.labels), false),
        VectorMatchCardinality::OneToMany(labels) => (Some(&labels.labels), true),
        VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => (None, false),
    };
    let (lhs, rhs) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: BTreeMap<Labels, (Labels, f64)> = BTreeMap::new();
    for (labels, value) in rhs {
        let key = signature(&labels, matching);
        if let Some((duplicate, _)) = right.get(&key) {
            let side = if swapped { "left" } else { "right" };
            return Err(execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                render_labels(&key),
                render_labels(&labels),
                render_labels(duplicate)
            )));
        }
        right.insert(key, (labels, value));
    }
    let comparison = op.is_comparison();
    // Per match group: for one-to-one whether it matched, for many-to-one the result
    // label sets it gave.
    let mut matched: BTreeMap<Labels, Vec<Labels>> = BTreeMap::new();
    let mut result = Vec::new();
    for (labels, left_value) in lhs {
        let key = signature(&labels, matching);
        let Some((right_labels, right_value)) = right.get(&key) else {
            continue;
        };
        let (lv, rv) = if swapped {
            (*right_value, left_value)
        } else {
            (left_value, *right_value)
        };
        let (mut value, keep) = operate(op, lv, rv)?;
        if return_bool {
            value = f64::from(u8::from(keep));
        } else if !keep {
            continue;
        }
        let mut metric: Labels = match (include, matching) {
            (None, Some(LabelModifier::Include(names))) => labels
                .into_iter()
                .filter(|(name, _)| names.labels.contains(name))
                .collect(),
            (None, Some(LabelModifier::Exclude(names))) => labels
                .into_iter()
                .filter(|(name, _)| !names.labels.contains(name))
                .collect(),
            _ => labels,
        };
        if !comparison || return_bool {
            metric.remove(METRIC_NAME);
        }
        // group_x's labels come from the "one" side.
        for name in include.into_iter().flatten() {
            match right_labels.get(name) {
                Some(value) => {
                    metric.insert(name.clone(), value.clone());
                }
                None => {
                    metric.remove(name);
                }
            }
        }
        let group = matched.entry(key).or_default();
        match include {
            None if !group.is_empty() => {
                return Err(execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            Some(_) if group.contains(&metric) => {
                return Err(execution(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            _ => group.push(metric.clone()),
        }
        result.push((metric, value));
    }
    Ok(result)
}

/// Refuses a vector with two elements of one label set, as Prometheus does.
fn unique(vector: Vector) -> Result<Vector, QueryError> {
    let mut seen = BTreeSet::new();
    for (labels, _) in &vector {
        if !seen.insert(labels) {
            return Err(execution(
                "vector cannot contain metrics with the same labelset",
            ));
        }
    }
    Ok(vector)
}

pub(crate) fn without_name(mut labels: Labels) -> Labels {
    labels.remove(METRIC_NAME);
    labels
}

fn map_values(vector: Vector, apply: impl Fn(f64) -> f64) -> Vector {
    vector
        .into_iter()
        .map(|(labels, value)| (without_name(labels), apply(value)))
        .collect()
}

/// Whether a series' labels satisfy a selector (a missing label matches as empty).
fn selects(selector: &VectorSelector, labels: &Labels) -> bool {
    let value = |name: &str| labels.get(name).map_or(String::new(), String::clone);
    if let Some(name) = &selector.name
        && value(METRIC_NAME) != *name
    {
        return false;
    }
    matches_all(&selector.matchers, labels)
}

fn matches_all(matchers: &Matchers, labels: &Labels) -> bool {
    matchers
        .matchers
        .iter()
        .all(|matcher| matcher.is_match(labels.get(&matcher.name).map_or("", String::as_str)))
}

/// The labels `absent` answers with: the selector's equality matchers, except names matched
/// more than once or otherwise (Prometheus's `createLabelsForAbsentFunction`).
fn absent_labels(arg: &Expr) -> Labels {
    let matchers = match arg {
        Expr::VectorSelector(selector) => &selector.matchers,
        Expr::MatrixSelector(selector) => &selector.vs.matchers,
        _ => return Labels::new(),
    };
    let mut labels = Labels::new();
    let mut seen = BTreeSet::new();
    for matcher in &matchers.matchers {
        if matcher.name == METRIC_NAME {
            continue;
        }
        if matcher.op == MatchOp::Equal && !seen.contains(&matcher.name) {
            labels.insert(matcher.name.clone(), matcher.value.clone());
            seen.insert(matcher.name.clone());
        } else {
            labels.remove(&matcher.name);
        }
    }
    // Prometheus has no labels with empty values.
    labels.retain(|_, value| !value.is_empty());
    labels
}

fn duration_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: Option<&Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(duration)) => duration_ms(*duration),
        Some(Offset::Neg(duration)) => -duration_ms(*duration),
    }
}

fn system_time_ms(time: std::time::SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => duration_ms(after),
        Err(before) => -duration_ms(before.duration()),
    }
}

/// Labels as Prometheus prints them in messages: `{a="1", b="2"}`.
pub(crate) fn render_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}
