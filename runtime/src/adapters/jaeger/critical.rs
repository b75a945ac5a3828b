//! Where a trace's time goes: each span's share of the trace's **critical path**, and the
//! per-operation summary of `trace.slowest_spans`. Pure: no I/O, deterministic.
//!
//! The critical path is the chain of spans that the trace's end waited on, found much as
//! the Jaeger UI's critical-path view finds it: walking back from the end of a span, the
//! child that finished last (before the point reached so far) is on the path; the time
//! between that child's end and the point reached is the parent's own time; the walk
//! continues inside the child, then from the child's start among the remaining children. A
//! child that outlives its parent is cut at the parent's end; children running in parallel
//! with the one the parent waited on get nothing. So each microsecond of a root span is
//! given to exactly one span, and a slow callee's time is the callee's, never its caller's.
//!
//! One difference from the UI: when the walk reaches a child's start while a sibling that
//! started earlier is still running, the UI skips that sibling (it only takes children that
//! *ended* before that point) and gives the overlap to the parent; here the sibling is on
//! the path, cut at that point, because the parent was waiting on it. The UI's rule would
//! blame a caller for time its callees spent, which is what this module exists to avoid.
//!
//! The walk is O(n log n) in a span's children (a sort, then one pass), so a span with tens
//! of thousands of children (a batch job's queries) stays cheap.

use std::collections::{BTreeMap, BTreeSet};

/// Deepest chain of child spans walked; deeper spans count as their ancestor's own time
/// (real traces are far shallower, and the walk must not exhaust the stack).
pub const MAX_SPAN_DEPTH: usize = 256;

/// One span, as both query APIs describe it; times in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub span_id: String,
    /// The `CHILD_OF` parent (v1) or `parentSpanId` (v3); none for a root.
    pub parent_id: Option<String>,
    pub service: String,
    pub operation: String,
    pub start_us: i64,
    pub duration_us: i64,
}

impl Span {
    fn end_us(&self) -> i64 {
        self.start_us.saturating_add(self.duration_us.max(0))
    }
}

/// One trace: its spans in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
}

/// A span's time on its trace's critical path, by (service, operation), for one trace, and
/// the trace's length (the sum of its roots' durations).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attribution {
    pub self_us: BTreeMap<(String, String), i64>,
    pub total_us: i64,
}

/// The critical-path self time of every (service, operation) of `trace`. Spans whose parent
/// is not in the trace are roots (a partly collected trace still counts).
pub fn attribute(trace: &Trace) -> Attribution {
    let ids: BTreeSet<&str> = trace
        .spans
        .iter()
        .map(|span| span.span_id.as_str())
        .collect();
    let mut children: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    let mut roots: Vec<&Span> = Vec::new();
    for span in &trace.spans {
        match span.parent_id.as_deref() {
            Some(parent) if parent != span.span_id && ids.contains(parent) => {
                children.entry(parent).or_default().push(span)
            }
            _ => roots.push(span),
        }
    }
    let mut attribution = Attribution::default();
    // Every operation of the trace is listed, those off the critical path with 0.
    for span in &trace.spans {
        attribution
            .self_us
            .entry((span.service.clone(), span.operation.clone()))
            .or_insert(0);
    }
    let mut visited: BTreeSet<&str> = BTreeSet::new();
    for root in roots {
        attribution.total_us = attribution.total_us.saturating_add(root.duration_us.max(0));
        walk(
            root,
            root.end_us(),
            &children,
            &mut visited,
            &mut attribution,
            0,
        );
    }
    attribution
}

/// Gives `span`'s part of the path up to `limit_us` to it and to its children on the path.
fn walk<'t>(
    span: &'t Span,
    limit_us: i64,
    children: &BTreeMap<&str, Vec<&'t Span>>,
    visited: &mut BTreeSet<&'t str>,
    attribution: &mut Attribution,
    depth: usize,
) {
    // A span reached twice (duplicate ids) is counted once.
    if !visited.insert(span.span_id.as_str()) {
        return;
    }
    let end = span.end_us().min(limit_us);
    let mut cursor = end;
    let mut own = 0_i64;
    let empty = Vec::new();
    let mine = if depth < MAX_SPAN_DEPTH {
        children.get(span.span_id.as_str()).unwrap_or(&empty)
    } else {
        &empty
    };
    // The children that overlap the span's part of the path, latest end first (then
    // earliest start, then id); those wholly outside it never delay it.
    let mut kids: Vec<&Span> = mine
        .iter()
        .copied()
        .filter(|child| child.start_us < end && child.end_us() > span.start_us)
        .collect();
    kids.sort_by(|a, b| {
        b.end_us()
            .cmp(&a.end_us())
            .then(a.start_us.cmp(&b.start_us))
            .then(a.span_id.cmp(&b.span_id))
    });
    // The cursor only moves back, so each child is looked at once after the sort: a child
    // that ends at or after the cursor is either the one waited on now (the earliest
    // starting of them, which moves the cursor to its start) or, starting later than that
    // one, never a candidate again.
    let mut next_index = 0;
    loop {
        let mut overlapping: Option<&Span> = None;
        while let Some(child) = kids.get(next_index).copied() {
            if child.end_us() < cursor {
                break;
            }
            next_index += 1;
            let earlier = overlapping.is_none_or(|best| {
                (child.start_us, &child.span_id) < (best.start_us, &best.span_id)
            });
            if child.start_us < cursor && earlier {
                overlapping = Some(child);
            }
        }
        // Without an overlapping child, the latest one that ended before the cursor.
        let next = match overlapping {
            Some(child) => child,
            None => match kids.get(next_index).copied() {
                Some(child) => {
                    next_index += 1;
                    child
                }
                None => break,
            },
        };
        let child_end = next.end_us().min(cursor);
        own = own.saturating_add(cursor - child_end);
        walk(next, child_end, children, visited, attribution, depth + 1);
        cursor = next.start_us.max(span.start_us).min(child_end);
    }
    own = own.saturating_add((cursor - span.start_us).max(0));
    let key = (span.service.clone(), span.operation.clone());
    let total = attribution.self_us.entry(key).or_insert(0);
    *total = total.saturating_add(own);
}

/// One (service, operation) over many traces.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationTime {
    pub service: String,
    pub operation: String,
    /// The 99th percentile (nearest rank) of its critical-path time per trace, over the
    /// traces it appears in.
    pub p99_self_us: i64,
    /// Its critical-path time over the length of all traces, 0 to 1.
    pub share: f64,
    /// Its critical-path time in all traces.
    pub total_us: i64,
}

/// The operations of `traces`, the largest share first (then by service and operation).
pub fn summarize(traces: &[Trace]) -> Vec<OperationTime> {
    let mut per_trace: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    let mut length = 0_i64;
    for trace in traces {
        let attribution = attribute(trace);
        length = length.saturating_add(attribution.total_us);
        for (key, self_us) in attribution.self_us {
            per_trace.entry(key).or_default().push(self_us);
        }
    }
    let mut operations: Vec<OperationTime> = per_trace
        .into_iter()
        .map(|((service, operation), mut times)| {
            times.sort_unstable();
            let total_us = times
                .iter()
                .fold(0_i64, |sum, time| sum.saturating_add(*time));
            OperationTime {
                service,
                operation,
                p99_self_us: nearest_rank(&times, 0.99),
                share: if length > 0 {
                    total_us as f64 / length as f64
                } else {
                    0.0
                },
                total_us,
            }
        })
        .collect();
    operations.sort_by(|a, b| {
        b.total_us
            .cmp(&a.total_us)
            .then_with(|| a.service.cmp(&b.service))
            .then_with(|| a.operation.cmp(&b.operation))
    });
    operations
}

/// The service with the most critical-path time in `operations`; none when there is no
/// time at all. Ties go to the first name.
pub fn hotspot(operations: &[OperationTime]) -> Option<String> {
    let mut per_service: BTreeMap<&str, i64> = BTreeMap::new();
    for operation in operations {
        let total = per_service.entry(operation.service.as_str()).or_insert(0);
        *total = total.saturating_add(operation.total_us);
    }
    let mut best: Option<(&str, i64)> = None;
    for (service, total) in per_service {
        if total > 0 && best.is_none_or(|(_, most)| total > most) {
            best = Some((service, total));
        }
    }
    best.map(|(service, _)| service.to_string())
}

/// The nearest-rank percentile of sorted `values` (0 for none).
fn nearest_rank(sorted: &[i64], quantile: f64) -> i64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, service: &str, start: i64, duration: i64) -> Span {
        Span {
            span_id: id.into(),
            parent_id: parent.map(str::to_string),
            service: service.into(),
            operation: format!("{service}-op"),
            start_us: start,
            duration_us: duration,
        }
    }

    fn self_of(attribution: &Attribution, service: &str) -> i64 {
        attribution.self_us[&(service.to_string(), format!("{service}-op"))]
    }

    #[test]
    fn a_slow_callee_is_its_own_time_not_its_callers() {
        // gw 0..1000 calls pay 10..990, which calls db 20..970.
        let trace = Trace {
            trace_id: "t".into(),
            spans: vec![
                span("1", None, "gw", 0, 1000),
                span("2", Some("1"), "pay", 10, 980),
                span("3", Some("2"), "db", 20, 950),
            ],
        };
        let attribution = attribute(&trace);
        assert_eq!(attribution.total_us, 1000);
        assert_eq!(self_of(&attribution, "db"), 950);
        assert_eq!(self_of(&attribution, "pay"), 30);
        assert_eq!(self_of(&attribution, "gw"), 20);
        let operations = summarize(&[trace]);
        assert_eq!(hotspot(&operations).as_deref(), Some("db"));
        assert_eq!(operations[0].service, "db");
        assert!((operations[0].share - 0.95).abs() < 1e-9);
    }

    #[test]
    fn parallel_children_only_the_awaited_one_counts() {
        // Two parallel calls: the one finishing last is on the path; the other overlaps it.
        let trace = Trace {
            trace_id: "t".into(),
            spans: vec![
                span("1", None, "gw", 0, 100),
                span("2", Some("1"), "fast", 10, 30),
                span("3", Some("1"), "slow", 10, 80),
                // Outlives its parent: cut at the parent's end.
                span("4", Some("3"), "late", 50, 500),
            ],
        };
        let attribution = attribute(&trace);
        assert_eq!(self_of(&attribution, "fast"), 0);
        assert_eq!(self_of(&attribution, "late"), 40);
        assert_eq!(self_of(&attribution, "slow"), 40);
        assert_eq!(self_of(&attribution, "gw"), 20);
        let sum: i64 = attribution.self_us.values().sum();
        assert_eq!(sum, 100);
    }

    #[test]
    fn an_overlapping_sibling_is_waited_on_up_to_the_next_ones_start() {
        // a 10..60 and b 50..90 under gw 0..100: b is awaited last, a until b started.
        let trace = Trace {
            trace_id: "t".into(),
            spans: vec![
                span("1", None, "gw", 0, 100),
                span("2", Some("1"), "a", 10, 50),
                span("3", Some("1"), "b", 50, 40),
                // Wholly before its parent: ignored.
                span("4", Some("1"), "early", -50, 10),
            ],
        };
        let attribution = attribute(&trace);
        assert_eq!(self_of(&attribution, "b"), 40);
        assert_eq!(self_of(&attribution, "a"), 40);
        assert_eq!(self_of(&attribution, "gw"), 20);
        assert_eq!(self_of(&attribution, "early"), 0);
    }

    #[test]
    fn a_wide_fan_out_is_walked_in_one_pass() {
        // 50 000 sequential calls of 1 µs with 1 µs gaps; done in well under a second.
        let mut spans = vec![span("root", None, "job", 0, 100_000)];
        for index in 0..50_000 {
            spans.push(span(&format!("c{index}"), Some("root"), "db", index * 2, 1));
        }
        let started = std::time::Instant::now();
        let attribution = attribute(&Trace {
            trace_id: "t".into(),
            spans,
        });
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(self_of(&attribution, "db"), 50_000);
        assert_eq!(self_of(&attribution, "job"), 50_000);
    }

    #[test]
    fn sequential_children_each_count_and_gaps_are_the_parents() {
        let trace = Trace {
            trace_id: "t".into(),
            spans: vec![
                span("1", None, "gw", 0, 100),
                span("2", Some("1"), "a", 10, 20),
                span("3", Some("1"), "b", 40, 50),
            ],
        };
        let attribution = attribute(&trace);
        assert_eq!(self_of(&attribution, "a"), 20);
        assert_eq!(self_of(&attribution, "b"), 50);
        assert_eq!(self_of(&attribution, "gw"), 30);
    }

    #[test]
    fn cycles_do_not_loop_and_spans_without_their_parent_are_roots() {
        let trace = Trace {
            trace_id: "t".into(),
            spans: vec![
                span("1", Some("2"), "a", 0, 10),
                span("2", Some("1"), "b", 0, 10),
                span("3", Some("missing"), "c", 0, 5),
            ],
        };
        let attribution = attribute(&trace);
        assert_eq!(attribution.total_us, 5);
        assert_eq!(self_of(&attribution, "c"), 5);
        assert_eq!(nearest_rank(&[], 0.99), 0);
        assert_eq!(nearest_rank(&[1, 2, 3], 0.99), 3);
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 0.99), 99);
    }
}
