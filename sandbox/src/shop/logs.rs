//! The shop's logs: ECS documents (`@timestamp`, `service.name`, `log.level`, `message`,
//! `error.type`, `error.stack_trace`) as the services' log shippers would index them. Each
//! service writes a sample of ordinary INFO lines every tick (what its access log keeps of
//! its requests, with the model's latencies in them) and each incident its own lines, at
//! rates chosen so the incident shows in `logs.aggregate` without drowning the rest:
//! payment-gateway's timeouts stay a few percent of its lines.

use super::model::{Incident, LOGGING_NODE, Noise, State, TICK_MS};
use serde_json::{Value as Json, json};

/// The index the shop logs to.
pub const INDEX: &str = "logs-shop";

/// Ordinary lines per tick per service.
const LINES_PER_TICK: &[(&str, usize)] = &[
    ("gateway", 4),
    ("payment-gateway", 8),
    ("order-service", 4),
    ("inventory-service", 4),
];

/// The log lines of the tick ending at `state.at_ms`, spread over it, oldest first.
pub fn lines(noise: &mut Noise, state: &State) -> Vec<Json> {
    let mut lines: Vec<(i64, Json)> = Vec::new();
    let at = |noise: &mut Noise| state.at_ms - (noise.next() * TICK_MS as f64) as i64;
    for (service, count) in LINES_PER_TICK {
        let Some(current) = state.service(service) else {
            continue;
        };
        for _ in 0..*count {
            let when = at(noise);
            let id = noise.next_u64();
            let took = (current.latency_ms * (noise.normal() * 0.15).exp()).round();
            let message = match *service {
                "gateway" => format!("POST /api/checkout 200 {took}ms"),
                "payment-gateway" => {
                    format!("payment {:08x} authorized in {took}ms", id % (1 << 32))
                }
                "order-service" => format!(
                    "order {} created with {} items in {took}ms",
                    id % 1_000_000,
                    1 + id % 5
                ),
                _ => format!(
                    "reserved {} items for order {} in {took}ms",
                    1 + id % 5,
                    id % 1_000_000
                ),
            };
            lines.push((when, document(when, service, "INFO", &message, None)));
        }
    }
    let order_hot = state
        .service("order-service")
        .and_then(|order| order.utilization)
        .is_some_and(|u| u > 0.9);
    if state.incidents.contains(&Incident::OrderCpu) {
        let when = at(noise);
        let processed = 800 + noise.next_u64() % 400;
        lines.push((
            when,
            document(
                when,
                "order-service",
                "INFO",
                &format!("batch job reconcile-orders: processed {processed} orders"),
                None,
            ),
        ));
    }
    if order_hot {
        let when = at(noise);
        let queued = 100 + noise.next_u64() % 150;
        lines.push((
            when,
            document(
                when,
                "order-service",
                "WARN",
                &format!("worker pool saturated: {queued} requests queued"),
                None,
            ),
        ));
    }
    if state.incidents.contains(&Incident::PaymentLatency) {
        for _ in 0..noise.count(0.5) {
            let when = at(noise);
            let id = noise.next_u64();
            let message = format!(
                "call to order-service timed out after 1000ms (payment {:08x}, attempt {})",
                id % (1 << 32),
                1 + id % 3
            );
            lines.push((
                when,
                document(
                    when,
                    "payment-gateway",
                    "ERROR",
                    &message,
                    Some(TIMEOUT_TRACE),
                ),
            ));
        }
        let slow = state
            .service("order-service")
            .map_or(0.0, |order| order.own_ms);
        for _ in 0..2 {
            let when = at(noise);
            let took = (slow * noise.around(1.0, 0.1)).round();
            let customer = noise.next_u64() % 100_000;
            let message = format!(
                "slow query ({took}ms): SELECT o.id, i.sku, i.quantity FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.customer_id = {customer} (seq scan on order_items)"
            );
            lines.push((
                when,
                document(when, "order-service", "WARN", &message, None),
            ));
        }
    }
    if state.incidents.contains(&Incident::InventoryDb) {
        for _ in 0..3 {
            let when = at(noise);
            let pool = noise.next_u64() % 4;
            let message = format!(
                "could not get a connection to inventory-db:5432: too many connections (pool {pool}, 20 of 20 in use)"
            );
            lines.push((
                when,
                document(
                    when,
                    "inventory-service",
                    "ERROR",
                    &message,
                    Some(POOL_TRACE),
                ),
            ));
        }
    }
    if noise.next() < 0.25 {
        let when = at(noise);
        let message = format!(
            "rotated /var/log/shop/app.log ({} MiB)",
            50 + noise.next_u64() % 50
        );
        lines.push((when, document(when, LOGGING_NODE, "INFO", &message, None)));
    }
    if state.incidents.contains(&Incident::DiskFull) {
        let when = at(noise);
        let message = format!(
            "filesystem /var/log is {:.0}% full (debug logging of order-service enabled)",
            state.disk_used * 100.0
        );
        lines.push((when, document(when, LOGGING_NODE, "WARN", &message, None)));
    }
    lines.sort_by_key(|(when, _)| *when);
    lines.into_iter().map(|(_, line)| line).collect()
}

/// One line of an event that happened at `at_ms` (a cleanup, a deploy).
pub fn event(at_ms: i64, service: &str, level: &str, message: &str) -> Json {
    document(at_ms, service, level, message, None)
}

/// An ECS document.
fn document(at_ms: i64, service: &str, level: &str, message: &str, trace: Option<&str>) -> Json {
    let mut document = json!({
        "@timestamp": rfc3339(at_ms),
        "service": {"name": service},
        "log": {"level": level},
        "message": message,
    });
    if let (Some(trace), Some(fields)) = (trace, document.as_object_mut()) {
        let kind = trace
            .lines()
            .next()
            .and_then(|line| line.split(':').next())
            .unwrap_or_default();
        fields.insert(
            "error".into(),
            json!({"type": kind, "message": trace.lines().next().unwrap_or_default(), "stack_trace": trace}),
        );
    }
    document
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}

const TIMEOUT_TRACE: &str =
    "java.util.concurrent.TimeoutException: order-service did not answer within 1000ms
\tat com.shop.payments.OrderClient.reserve(OrderClient.java:88)
\tat com.shop.payments.PaymentService.authorize(PaymentService.java:141)
\tat com.shop.payments.PaymentController.pay(PaymentController.java:52)";

/// A connection-pool failure's stack trace (also the static world's, `world.rs`).
pub(crate) const POOL_TRACE: &str =
    "org.postgresql.util.PSQLException: FATAL: sorry, too many clients already
\tat org.postgresql.core.v3.ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)
\tat com.zaxxer.hikari.pool.HikariPool.createPoolEntry(HikariPool.java:477)
\tat com.shop.inventory.StockRepository.reserve(StockRepository.java:64)";
