//! The traces a [`super::JaegerServer`] holds, a builder for them, and a generator of
//! realistic traces over a service graph with one slow service.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One span; times in microseconds since the Unix epoch (Jaeger's v1 unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// 16 lower-case hex digits.
    pub span_id: String,
    /// The `CHILD_OF` parent, none for a root.
    pub parent_id: Option<String>,
    pub service: String,
    pub operation: String,
    pub start_us: i64,
    pub duration_us: i64,
}

/// One trace: 32 lower-case hex digits of id and its spans in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
}

impl Trace {
    /// The earliest span start (0 for a trace without spans).
    pub fn start_us(&self) -> i64 {
        self.spans
            .iter()
            .map(|span| span.start_us)
            .min()
            .unwrap_or(0)
    }

    /// Whether a span of `service` started within `[min_us, max_us]`.
    pub fn has_span_of(&self, service: &str, min_us: i64, max_us: i64) -> bool {
        self.spans.iter().any(|span| {
            span.service == service && span.start_us >= min_us && span.start_us <= max_us
        })
    }
}

/// A span added to a [`TraceBuilder`], to name as a parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRef(usize);

/// Builds one trace: spans placed by their offset from the trace's start.
///
/// ```
/// use medic_sandbox::jaeger::TraceBuilder;
/// use std::time::Duration;
/// let mut trace = TraceBuilder::new(1, 1_700_000_000_000_000);
/// let root = trace.span("payment-gateway", "POST /pay", None, Duration::ZERO, Duration::from_millis(120));
/// trace.span("order-service", "GET /order", Some(root), Duration::from_millis(5), Duration::from_millis(100));
/// assert_eq!(trace.build().spans.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct TraceBuilder {
    trace_id: String,
    start_us: i64,
    spans: Vec<Span>,
}

impl TraceBuilder {
    /// A trace whose id is `id` in 32 hex digits, starting at `start_us`.
    pub fn new(id: u128, start_us: i64) -> TraceBuilder {
        TraceBuilder {
            trace_id: format!("{id:032x}"),
            start_us,
            spans: Vec::new(),
        }
    }

    /// Adds a span of `service` running `duration` from `offset` after the trace's start.
    /// Span ids are the trace id's low half plus the span's position, so they are stable.
    pub fn span(
        &mut self,
        service: &str,
        operation: &str,
        parent: Option<SpanRef>,
        offset: Duration,
        duration: Duration,
    ) -> SpanRef {
        let position = self.spans.len();
        let low = self
            .trace_id
            .get(16..)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or(0);
        let span_id = format!(
            "{:016x}",
            low.wrapping_mul(1000).wrapping_add(position as u64 + 1)
        );
        let parent_id = parent
            .and_then(|SpanRef(index)| self.spans.get(index))
            .map(|span| span.span_id.clone());
        self.spans.push(Span {
            span_id,
            parent_id,
            service: service.to_string(),
            operation: operation.to_string(),
            start_us: self.start_us.saturating_add(micros(offset)),
            duration_us: micros(duration),
        });
        SpanRef(position)
    }

    /// Sets the duration of a span added before (a parent's, once its children are known).
    pub fn set_duration(&mut self, span: SpanRef, duration: Duration) {
        let SpanRef(index) = span;
        if let Some(span) = self.spans.get_mut(index) {
            span.duration_us = micros(duration);
        }
    }

    pub fn build(self) -> Trace {
        Trace {
            trace_id: self.trace_id,
            spans: self.spans,
        }
    }
}

pub(crate) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Deepest call chain a generated trace follows (a cyclic graph still ends).
const MAX_GENERATED_DEPTH: usize = 16;

/// Generates traces over a service graph: each request enters at a root service, which does
/// some work of its own and calls its dependencies one after the other; every service does
/// the same. Work times vary pseudo-randomly (a fixed seed gives the same traces), and one
/// service can be made slow, adding its delay to its *own* work only — what a saturated
/// database or a CPU-starved service looks like in traces, a slow callee behind callers that
/// merely wait for it.
#[derive(Debug, Clone)]
pub struct TraceGenerator {
    calls: BTreeMap<String, Vec<String>>,
    slow: Option<(String, Duration)>,
    state: u64,
    next_id: u128,
}

impl TraceGenerator {
    /// `calls`: each service and the services it calls, in call order.
    pub fn new(calls: &[(&str, &[&str])], seed: u64) -> TraceGenerator {
        TraceGenerator {
            calls: calls
                .iter()
                .map(|(service, callees)| {
                    (
                        service.to_string(),
                        callees.iter().map(|callee| callee.to_string()).collect(),
                    )
                })
                .collect(),
            slow: None,
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            next_id: u128::from(seed) << 64,
        }
    }

    /// Makes `service` take `extra` longer on every request.
    pub fn slow(mut self, service: &str, extra: Duration) -> TraceGenerator {
        self.slow = Some((service.to_string(), extra));
        self
    }

    /// Makes `service` take `extra` longer from now on, or no service slow with `None` (the
    /// demo's scaling lowers a service's latency this way).
    pub fn set_slow(&mut self, slow: Option<(&str, Duration)>) {
        self.slow = slow.map(|(service, extra)| (service.to_string(), extra));
    }

    /// The operation name of a service's server span: `SELECT` for a database (a name ending
    /// in `-db`), `GET /cache` for a cache (ending in `-cache`), else `GET /<service>`.
    pub fn operation(service: &str) -> String {
        if service.ends_with("-db") {
            "SELECT".to_string()
        } else if service.ends_with("-cache") {
            "GET /cache".to_string()
        } else {
            format!("GET /{service}")
        }
    }

    /// `count` traces entering at `root`, the first at `start_us`, one every `every`.
    pub fn traces(
        &mut self,
        root: &str,
        count: usize,
        start_us: i64,
        every: Duration,
    ) -> Vec<Trace> {
        (0..count)
            .map(|index| {
                let start = start_us.saturating_add(micros(every).saturating_mul(index as i64));
                self.trace(root, start)
            })
            .collect()
    }

    /// One trace entering at `root` at `start_us`.
    pub fn trace(&mut self, root: &str, start_us: i64) -> Trace {
        self.next_id = self.next_id.wrapping_add(1);
        let mut builder = TraceBuilder::new(self.next_id, start_us);
        let mut path = BTreeSet::new();
        self.visit(&mut builder, root, None, 0, &mut path, 0);
        builder.build()
    }

    /// Adds the span of `service` starting `offset_us` into the trace and its callees';
    /// answers its duration.
    fn visit(
        &mut self,
        builder: &mut TraceBuilder,
        service: &str,
        parent: Option<SpanRef>,
        offset_us: i64,
        path: &mut BTreeSet<String>,
        depth: usize,
    ) -> i64 {
        // Own work before the calls, between them and after: 0.5 to 3 ms each.
        let before = self.work_us(500, 3000);
        let slow_us = match &self.slow {
            Some((slow, extra)) if slow == service => micros(*extra),
            _ => 0,
        };
        let operation = TraceGenerator::operation(service);
        // The span is added first (with its duration patched below) so parents precede
        // children, as instrumented services report them.
        let me = builder.span(service, &operation, parent, us(offset_us), Duration::ZERO);
        let mut cursor = offset_us.saturating_add(before).saturating_add(slow_us);
        path.insert(service.to_string());
        let callees = if depth < MAX_GENERATED_DEPTH {
            self.calls.get(service).cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        for callee in callees {
            if path.contains(&callee) {
                continue;
            }
            // Network time on the way there and back.
            cursor = cursor.saturating_add(self.work_us(100, 400));
            let took = self.visit(builder, &callee, Some(me), cursor, path, depth + 1);
            cursor = cursor
                .saturating_add(took)
                .saturating_add(self.work_us(100, 400));
        }
        path.remove(service);
        cursor = cursor.saturating_add(self.work_us(500, 3000));
        let duration = cursor.saturating_sub(offset_us);
        let SpanRef(index) = me;
        if let Some(span) = builder.spans.get_mut(index) {
            span.duration_us = duration;
        }
        duration
    }

    /// A pseudo-random whole number of microseconds in `[low, high)` (xorshift64*).
    fn work_us(&mut self, low: i64, high: i64) -> i64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let value = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let span = u64::try_from(high.saturating_sub(low).max(1)).unwrap_or(1);
        low.saturating_add(i64::try_from(value % span).unwrap_or(0))
    }
}

fn us(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}
