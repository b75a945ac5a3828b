//! The shop's traces: a few checkouts per tick entering at the gateway, each service's span
//! lasting its own work (the model's median, log-normally varied) plus its calls, one after
//! the other, with a little network time around each call. So a slow service shows as a long
//! span of its own behind callers that merely wait for it, which is what `diagnose.walk`'s
//! self-time evidence reads.

use super::model::{Noise, SERVICES, SIGMA, State, TICK_MS};
use crate::jaeger::{Dependency, SpanRef, Trace, TraceBuilder};
use std::time::Duration;

/// Traces per tick.
const TRACES_PER_TICK: usize = 3;

/// Deepest call chain followed (the graph is acyclic; this only bounds a mistake in it).
const MAX_DEPTH: usize = 16;

/// The service requests enter at.
pub const ROOT: &str = "gateway";

/// Generates the traces of the shop; ids are unique and follow from the seed.
#[derive(Debug, Clone)]
pub struct Tracer {
    noise: Noise,
    next_id: u128,
}

impl Tracer {
    pub fn new(seed: u64) -> Tracer {
        Tracer {
            noise: Noise::new(seed ^ 0x7ace_0000),
            next_id: u128::from(seed) << 64,
        }
    }

    /// The traces of the tick ending at `state.at_ms`, spread over it.
    pub fn traces(&mut self, state: &State) -> Vec<Trace> {
        let mut traces: Vec<Trace> = (0..TRACES_PER_TICK)
            .map(|_| {
                let start_ms = state.at_ms - (self.noise.next() * TICK_MS as f64) as i64;
                self.trace(state, start_ms.saturating_mul(1000))
            })
            .collect();
        traces.sort_by_key(Trace::start_us);
        traces
    }

    fn trace(&mut self, state: &State, start_us: i64) -> Trace {
        self.next_id = self.next_id.wrapping_add(1);
        let mut builder = TraceBuilder::new(self.next_id, start_us);
        self.visit(&mut builder, state, ROOT, None, 0, 0);
        builder.build()
    }

    /// Adds the span of `service` starting `offset_us` into the trace, and its callees';
    /// answers its duration in microseconds.
    fn visit(
        &mut self,
        builder: &mut TraceBuilder,
        state: &State,
        service: &str,
        parent: Option<SpanRef>,
        offset_us: i64,
        depth: usize,
    ) -> i64 {
        let own_ms = state.service(service).map_or(1.0, |current| current.own_ms);
        let own_us = (own_ms * 1000.0 * (self.noise.normal() * SIGMA).exp()) as i64;
        let callees = SERVICES
            .iter()
            .find(|spec| spec.name == service)
            .map_or(&[][..], |spec| spec.callees);
        // The span is added first and its duration set once its calls are known, so parents
        // precede children, as instrumented services report them.
        let me = builder.span(
            service,
            &operation(service),
            parent,
            micros(offset_us),
            Duration::ZERO,
        );
        // Half the own work before the calls, half after.
        let mut cursor = offset_us + own_us / 2;
        if depth < MAX_DEPTH {
            for callee in callees {
                cursor += self.network_us();
                cursor += self.visit(builder, state, callee, Some(me), cursor, depth + 1);
                cursor += self.network_us();
            }
        }
        cursor += own_us - own_us / 2;
        builder.set_duration(me, micros(cursor - offset_us));
        cursor - offset_us
    }

    fn network_us(&mut self) -> i64 {
        100 + (self.noise.next() * 300.0) as i64
    }
}

/// The operation of a service's server span.
fn operation(service: &str) -> String {
    match service {
        "gateway" => "POST /api/checkout".into(),
        "payment-gateway" => "POST /payments".into(),
        "order-service" => "POST /orders".into(),
        "inventory-service" => "POST /reservations".into(),
        "order-cache" => "GET".into(),
        name if name.ends_with("-db") => "SELECT".into(),
        name => format!("GET /{name}"),
    }
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

/// The dependency links of the graph, as Jaeger's dependencies job would count them over
/// a day of the shop's traffic.
pub fn dependencies() -> Vec<Dependency> {
    SERVICES
        .iter()
        .flat_map(|spec| {
            spec.callees.iter().map(|callee| {
                let calls = (spec.load * 86_400.0) as u64;
                Dependency::new(spec.name, callee, calls)
            })
        })
        .collect()
}
