//! A Prometheus for the sandbox world: PromQL (the subset runbooks and the `diagnose`
//! health checks use) evaluated over an in-memory [`SeriesStore`], served on loopback with
//! the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`), so the demo exercises
//! Medic's real Prometheus adapter. `sandbox/tests/promql_vs_prometheus.rs` holds its
//! answers to a real Prometheus's on the same samples: the Debian `prometheus` 2.42.0, whose
//! semantics (closed windows, `extrapolatedRate`, `bucketQuantile`) are the ones followed.
//!
//! # Supported
//!
//! - number and string literals, parentheses, unary minus;
//! - instant and range selectors with `=`, `!=`, `=~`, `!~` (regexes fully anchored) and the
//!   metric name, `offset` and `@` (`@ start()` and `@ end()` are the query's start and
//!   end); an instant selector reads the newest sample in `[t - 5m, t]`, a range selector
//!   the samples in `[t - range, t]` (Prometheus 2.x's closed windows);
//! - `rate`, `increase`, `delta` (Prometheus's extrapolation), `irate`, `avg_over_time`,
//!   `max_over_time`, `min_over_time`, `sum_over_time`, `count_over_time`, `last_over_time`
//!   over a range selector; `histogram_quantile` over classic `le` buckets; `abs`, `ceil`,
//!   `floor`, `round`, `clamp`, `clamp_min`, `clamp_max`, `scalar`, `vector`, `time`,
//!   `absent`;
//! - `sum`, `avg`, `min`, `max`, `count`, `group`, `topk`, `bottomk` with `by` / `without`;
//! - `+ - * / % ^`, comparisons (filtering or with `bool`) between scalars and vectors,
//!   vector matching one-to-one with `on` / `ignoring` and many-to-one / one-to-many with
//!   `group_left` / `group_right`, and `and`, `or`, `unless`.
//!
//! Anything else (subqueries, `atan2`, other functions and aggregations, `or` inside
//! selector braces, `fill` modifiers) is refused as `bad_data` naming it.
//!
//! # Not like Prometheus
//!
//! - Floats are summed in order without Kahan compensation, so sums and averages may differ
//!   from Prometheus's in the last bits.
//! - `topk` / `bottomk` break ties by label order, not by Prometheus's heap order.
//! - Parse errors carry promql-parser's message, not Prometheus's (`1:5: parse error: ...`).
//! - Range queries step in whole milliseconds, so a step under 1 ms is 1 ms.
//! - There are no native histograms and no staleness markers.
//! - Queries are bounded where Prometheus's are not: at most 64 KiB of text, brackets and
//!   the parsed tree at most 100 levels deep, at most 2,000 operators and names (a deeper
//!   tree could exhaust the stack). Past them a query is `bad_data` saying which bound.

mod api;
mod check;
mod eval;
mod functions;
pub mod store;
#[cfg(test)]
mod tests;

pub use api::PrometheusServer;
pub use store::{Labels, Series, SeriesStore};

use promql_parser::parser::value::ValueType;

/// Points a range query may answer per series, as Prometheus allows (`11,000`).
pub const MAX_POINTS: i64 = 11_000;

/// What an instant query evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Vector(Vec<(Labels, f64)>),
    Matrix(Vec<Series>),
    Scalar(f64),
    String(String),
}

/// Why a query could not be evaluated, as Prometheus names it (`errorType`, `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct QueryError {
    /// `bad_data` (a query that does not parse or uses what the sandbox does not support),
    /// `execution`.
    pub kind: &'static str,
    pub message: String,
}

/// Evaluates `query` at `at_ms`. Vectors are in label order.
pub fn instant(store: &SeriesStore, query: &str, at_ms: i64) -> Result<QueryValue, QueryError> {
    let expr = check::parse(query)?;
    let evaluator = eval::Evaluator {
        store,
        at_ms,
        start_ms: at_ms,
        end_ms: at_ms,
    };
    Ok(match evaluator.eval(&expr)? {
        QueryValue::Vector(mut vector) => {
            vector.sort_by(|(a, _), (b, _)| a.cmp(b));
            QueryValue::Vector(vector)
        }
        QueryValue::Matrix(mut matrix) => {
            matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
            QueryValue::Matrix(matrix)
        }
        other => other,
    })
}

/// Evaluates `query` at every step from `start_ms` to `end_ms`: one series per label set,
/// in label order; a series has a sample at each step where it had a value. Refused as
/// Prometheus refuses it: an end before the start, a step that is not positive, more than
/// [`MAX_POINTS`] steps, a query that is not a scalar or an instant vector.
pub fn range(
    store: &SeriesStore,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<Vec<Series>, QueryError> {
    if end_ms < start_ms {
        return Err(eval::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    if step_ms <= 0 {
        return Err(eval::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end_ms - start_ms) / step_ms > MAX_POINTS {
        return Err(eval::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let expr = check::parse(query)?;
    let documented = match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => None,
        ValueType::Matrix => Some("range vector"),
        ValueType::String => Some("string"),
    };
    if let Some(kind) = documented {
        return Err(eval::bad_data(format!(
            "invalid expression type \"{kind}\" for range query, must be Scalar or instant Vector"
        )));
    }
    let mut series: std::collections::BTreeMap<Labels, Vec<(i64, f64)>> = Default::default();
    let mut at_ms = start_ms;
    while at_ms <= end_ms {
        let evaluator = eval::Evaluator {
            store,
            at_ms,
            start_ms,
            end_ms,
        };
        match evaluator.eval(&expr)? {
            QueryValue::Scalar(value) => series
                .entry(Labels::new())
                .or_default()
                .push((at_ms, value)),
            QueryValue::Vector(vector) => {
                for (labels, value) in vector {
                    series.entry(labels).or_default().push((at_ms, value));
                }
            }
            QueryValue::Matrix(_) | QueryValue::String(_) => {
                return Err(eval::bad_data(
                    "a range query evaluates to a scalar or an instant vector at each step",
                ));
            }
        }
        let Some(next) = at_ms.checked_add(step_ms) else {
            break;
        };
        at_ms = next;
    }
    Ok(series
        .into_iter()
        .map(|(labels, samples)| Series { labels, samples })
        .collect())
}
