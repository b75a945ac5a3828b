//! A small simulated shop — payment-gateway → order-service → inventory-service →
//! inventory-db, with a payments database and an order cache — and what its systems say
//! during one of the original runbook's incidents: Prometheus series (as OpenMetrics text to
//! backfill a real Prometheus with), Jaeger traces (a [`TraceGenerator`] with the fault) and
//! Elasticsearch log documents. Deterministic for a given seed and time. Used by
//! `medic-sandbox --world` (scripts/try-examples) and, later, `medic demo`.

use crate::jaeger::TraceGenerator;
use crate::shop::logs::POOL_TRACE;
use serde_json::{Value as Json, json};
use std::fmt::Write;
use std::time::Duration;

/// Each service and the services it calls, in call order.
pub const CALLS: &[(&str, &[&str])] = &[
    ("payment-gateway", &["order-service", "payments-db"]),
    ("order-service", &["inventory-service", "order-cache"]),
    ("inventory-service", &["inventory-db"]),
];

/// The services with HTTP metrics (the databases and the cache have their own).
const HTTP_SERVICES: &[&str] = &["payment-gateway", "order-service", "inventory-service"];

/// Histogram buckets of `http_request_duration_seconds`, in seconds.
const BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Requests per minute per service.
const REQUESTS_PER_MINUTE: u32 = 300;

/// Minutes of history before now.
const HISTORY_MINUTES: i64 = 150;

/// Which incident the world is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incident {
    /// order-service is slow in its own work; payment-gateway, waiting for it, breaches its
    /// latency objective (the payment_latency example).
    SlowOrderService,
    /// inventory-db runs out of connections; inventory-service logs connection errors (the
    /// inventory_db example).
    InventoryDbSaturated,
}

impl Incident {
    pub fn parse(name: &str) -> Option<Incident> {
        match name {
            "payment" => Some(Incident::SlowOrderService),
            "inventory" => Some(Incident::InventoryDbSaturated),
            _ => None,
        }
    }
}

/// The world at a time, with a fault that began `fault_minutes` before it.
#[derive(Debug, Clone)]
pub struct World {
    pub incident: Incident,
    /// Seconds since the Unix epoch: the newest sample.
    pub now_s: i64,
    pub fault_minutes: i64,
    pub seed: u64,
}

/// A small deterministic generator (SplitMix64).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value near `center`, varying by about `spread` of it either way.
    fn around(&mut self, center: f64, spread: f64) -> f64 {
        center * (1.0 + spread * (self.next() * 2.0 - 1.0))
    }
}

impl World {
    pub fn new(incident: Incident, now_s: i64) -> World {
        World {
            incident,
            now_s,
            fault_minutes: 15,
            seed: 7,
        }
    }

    /// The traces Jaeger holds: the fault's service is slow in its own work.
    pub fn traces(&self) -> TraceGenerator {
        let generator = TraceGenerator::new(CALLS, self.seed);
        match self.incident {
            Incident::SlowOrderService => {
                generator.slow("order-service", Duration::from_millis(450))
            }
            Incident::InventoryDbSaturated => {
                generator.slow("inventory-db", Duration::from_millis(300))
            }
        }
    }

    fn faulty(&self, minute: i64) -> bool {
        minute > HISTORY_MINUTES - self.fault_minutes
    }

    /// Median latency of `service`'s own work in seconds at `minute` (0 = the oldest).
    fn own_latency(&self, service: &str, minute: i64) -> f64 {
        let base = match service {
            "payment-gateway" => 0.040,
            "order-service" => 0.030,
            "inventory-service" => 0.020,
            "inventory-db" | "payments-db" => 0.008,
            _ => 0.003,
        };
        let extra = match (self.incident, service) {
            (Incident::SlowOrderService, "order-service") if self.faulty(minute) => 0.450,
            (Incident::InventoryDbSaturated, "inventory-db") if self.faulty(minute) => 0.300,
            _ => 0.0,
        };
        base + extra
    }

    /// Median end-to-end latency of `service`: its own work and its calls, one after the other.
    fn latency(&self, service: &str, minute: i64) -> f64 {
        let callees = CALLS
            .iter()
            .find(|(caller, _)| *caller == service)
            .map(|(_, callees)| *callees)
            .unwrap_or_default();
        self.own_latency(service, minute)
            + callees
                .iter()
                .map(|callee| self.latency(callee, minute))
                .sum::<f64>()
    }

    /// The Prometheus series of the last [`HISTORY_MINUTES`] minutes, one sample a minute,
    /// as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
    pub fn openmetrics(&self) -> String {
        let mut noise = Noise(self.seed);
        let mut out = String::new();
        let first = self.now_s - HISTORY_MINUTES * 60;
        let minutes = 0..=HISTORY_MINUTES;
        // http_request_duration_seconds and http_requests_total, counters from zero.
        let _ = writeln!(out, "# HELP http_request_duration_seconds request latency");
        let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
        let mut errors_by_service = Vec::new();
        for service in HTTP_SERVICES {
            let mut cumulative = vec![0u64; BUCKETS.len() + 1];
            let mut totals = (0u64, 0u64);
            let mut samples = Vec::new();
            for minute in minutes.clone() {
                let median = self.latency(service, minute);
                for _ in 0..REQUESTS_PER_MINUTE {
                    // Most requests near the median, a tail up to three times it.
                    let factor = if noise.next() < 0.97 {
                        noise.around(1.0, 0.25)
                    } else {
                        1.5 + noise.next() * 1.5
                    };
                    let latency = median * factor;
                    let bucket = BUCKETS
                        .iter()
                        .position(|le| latency <= *le)
                        .unwrap_or(BUCKETS.len());
                    for count in cumulative.iter_mut().skip(bucket) {
                        *count += 1;
                    }
                }
                let error_share = match (self.incident, *service) {
                    (Incident::InventoryDbSaturated, "inventory-service")
                        if self.faulty(minute) =>
                    {
                        0.08
                    }
                    (Incident::SlowOrderService, "payment-gateway") if self.faulty(minute) => 0.01,
                    _ => noise.around(0.002, 0.5),
                };
                let errors = (f64::from(REQUESTS_PER_MINUTE) * error_share).round() as u64;
                totals.0 += u64::from(REQUESTS_PER_MINUTE) - errors;
                totals.1 += errors;
                samples.push((first + minute * 60, cumulative.clone(), totals));
            }
            for (at, cumulative, _) in &samples {
                for (index, count) in cumulative.iter().enumerate() {
                    let le = BUCKETS
                        .get(index)
                        .map_or_else(|| "+Inf".to_string(), |le| le.to_string());
                    let _ = writeln!(
                        out,
                        "http_request_duration_seconds_bucket{{service=\"{service}\",le=\"{le}\"}} {count} {at}"
                    );
                }
            }
            errors_by_service.push((service, samples));
        }
        let _ = writeln!(out, "# HELP http_requests_total requests by status code");
        let _ = writeln!(out, "# TYPE http_requests_total counter");
        for (service, samples) in &errors_by_service {
            for (at, _, (ok, errors)) in samples {
                let _ = writeln!(
                    out,
                    "http_requests_total{{service=\"{service}\",code=\"200\"}} {ok} {at}"
                );
                let _ = writeln!(
                    out,
                    "http_requests_total{{service=\"{service}\",code=\"500\"}} {errors} {at}"
                );
            }
        }
        // CPU and memory of every container, against their limits.
        let containers: Vec<&str> = HTTP_SERVICES.to_vec();
        let _ = writeln!(out, "# HELP container_cpu_usage_seconds_total cpu time");
        let _ = writeln!(out, "# TYPE container_cpu_usage_seconds_total counter");
        for container in &containers {
            let mut used = 0.0;
            for minute in minutes.clone() {
                used += noise.around(0.30, 0.15) * 60.0;
                let _ = writeln!(
                    out,
                    "container_cpu_usage_seconds_total{{container=\"{container}\"}} {used:.3} {}",
                    first + minute * 60
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP container_memory_working_set_bytes memory in use"
        );
        let _ = writeln!(out, "# TYPE container_memory_working_set_bytes gauge");
        for container in &containers {
            for minute in minutes.clone() {
                let bytes = noise.around(300.0 * 1024.0 * 1024.0, 0.05);
                let _ = writeln!(
                    out,
                    "container_memory_working_set_bytes{{container=\"{container}\"}} {bytes:.0} {}",
                    first + minute * 60
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP kube_pod_container_resource_limits container limits"
        );
        let _ = writeln!(out, "# TYPE kube_pod_container_resource_limits gauge");
        for container in &containers {
            for minute in minutes.clone() {
                let at = first + minute * 60;
                let _ = writeln!(
                    out,
                    "kube_pod_container_resource_limits{{container=\"{container}\",resource=\"cpu\"}} 1 {at}"
                );
                let _ = writeln!(
                    out,
                    "kube_pod_container_resource_limits{{container=\"{container}\",resource=\"memory\"}} 1073741824 {at}"
                );
            }
        }
        // postgres_exporter's series of both databases.
        for (name, kind) in [
            ("pg_up", "gauge"),
            ("pg_stat_activity_count", "gauge"),
            ("pg_settings_max_connections", "gauge"),
            ("pg_stat_database_xact_rollback", "counter"),
            ("pg_stat_database_deadlocks", "counter"),
        ] {
            let _ = writeln!(out, "# HELP {name} postgres_exporter");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for database in ["inventory-db", "payments-db"] {
                let mut counter = 0.0;
                for minute in minutes.clone() {
                    let saturated = self.incident == Incident::InventoryDbSaturated
                        && database == "inventory-db"
                        && self.faulty(minute);
                    let value = match name {
                        "pg_up" => 1.0,
                        "pg_stat_activity_count" if saturated => {
                            noise.around(99.0, 0.01).min(100.0)
                        }
                        "pg_stat_activity_count" => noise.around(22.0, 0.2).round(),
                        "pg_settings_max_connections" => 100.0,
                        "pg_stat_database_xact_rollback" => {
                            counter += if saturated {
                                40.0
                            } else {
                                noise.around(1.0, 0.5)
                            };
                            counter
                        }
                        _ => counter,
                    };
                    let _ = writeln!(
                        out,
                        "{name}{{service=\"{database}\"}} {value:.0} {}",
                        first + minute * 60
                    );
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }

    /// The log documents (ECS fields) of the last two hours: ordinary lines throughout, and
    /// the fault's own lines since it began.
    pub fn logs(&self) -> Vec<Json> {
        let mut noise = Noise(self.seed ^ 0x51);
        let mut docs = Vec::new();
        let first_ms = (self.now_s - HISTORY_MINUTES * 60) * 1000;
        for minute in 0..=HISTORY_MINUTES {
            for second in (0..60).step_by(5) {
                let at = first_ms + (minute * 60 + second) * 1000;
                let id = (noise.next() * 1e9) as u64;
                let took = (noise.around(40.0, 0.3)) as u64;
                docs.push(document(
                    at,
                    "payment-gateway",
                    "INFO",
                    &format!("payment {id:08x} authorized in {took}ms"),
                    None,
                ));
                docs.push(document(
                    at,
                    "inventory-service",
                    "INFO",
                    &format!("reserved {} items for order {}", 1 + id % 5, id % 100_000),
                    None,
                ));
                if !self.faulty(minute) {
                    continue;
                }
                match self.incident {
                    Incident::SlowOrderService if second % 10 == 0 => docs.push(document(
                        at,
                        "payment-gateway",
                        "ERROR",
                        &format!(
                            "call to order-service timed out after 500ms (payment {id:08x}, attempt {})",
                            1 + id % 3
                        ),
                        Some(TIMEOUT_TRACE),
                    )),
                    Incident::InventoryDbSaturated => docs.push(document(
                        at,
                        "inventory-service",
                        "ERROR",
                        &format!(
                            "could not get a connection to inventory-db:5432 within 2000ms: too many connections (pool {})",
                            id % 4
                        ),
                        Some(POOL_TRACE),
                    )),
                    Incident::SlowOrderService => {}
                }
            }
        }
        docs
    }
}

fn document(at_ms: i64, service: &str, level: &str, message: &str, trace: Option<&str>) -> Json {
    let mut document = json!({
        "@timestamp": crate::shop::logs::rfc3339(at_ms),
        "service": {"name": service},
        "log": {"level": level},
        "message": message,
    });
    if let (Some(trace), Some(fields)) = (trace, document.as_object_mut()) {
        fields.insert(
            "error".into(),
            json!({"type": trace.lines().next().unwrap_or_default(), "stack_trace": trace}),
        );
    }
    document
}

const TIMEOUT_TRACE: &str =
    "java.util.concurrent.TimeoutException: order-service did not answer within 500ms
\tat com.shop.payments.OrderClient.reserve(OrderClient.java:88)
\tat com.shop.payments.PaymentService.authorize(PaymentService.java:141)
\tat com.shop.payments.PaymentController.pay(PaymentController.java:52)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_is_deterministic_and_the_fault_is_where_it_is_said() {
        let world = World::new(Incident::SlowOrderService, 1_800_000_000);
        assert_eq!(world.openmetrics(), world.openmetrics());
        assert!(world.openmetrics().ends_with("# EOF\n"));
        let before = world.latency("payment-gateway", 0);
        let during = world.latency("payment-gateway", HISTORY_MINUTES);
        assert!(during > before + 0.4, "{before} → {during}");
        assert!(
            (world.latency("inventory-service", 0)
                - world.latency("inventory-service", HISTORY_MINUTES))
            .abs()
                < 1e-9
        );
        let errors = world
            .logs()
            .iter()
            .filter(|doc| doc.pointer("/log/level").and_then(Json::as_str) == Some("ERROR"))
            .count();
        assert!(errors > 0);
    }
}
