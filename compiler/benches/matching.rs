//! Rule matching: alerts per second against 1,000, 10,000 and 100,000 rules, with an alert
//! mix where about half the alerts match a rule. Targets: over 1,000,000 alerts/s per core at
//! 10,000 rules; at 100,000 rules at most twice the per-alert cost at 1,000.
//!
//! Run with `cargo bench -p medic-compiler --bench matching`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use medic_compiler::Source;
use medic_compiler::plan::ir::QuantityValue;
use medic_compiler::plan::{self, Plan, Value};

fn main() {
    divan::main();
}

const ALERT_NAMES: usize = 200;
const BATCH: usize = 1_000;

fn build(rules: usize) -> Plan {
    let mut text = String::from(
        "import std.{k8s}\n\nplaybook scale(service: String) {\n  task s = k8s.scale(deployment: service, by: 1, max: 5)\n}\n",
    );
    for index in 0..rules {
        text.push_str(&format!(
            "\nrule r{index} {{\n  on alert \"Alert_{}\"\n  when alert.service == \"svc-{index}\" and alert.severity >= warning and alert.value > 90%\n  run scale(service: alert.service)\n  cooldown 15m per alert.service\n}}\n",
            index % ALERT_NAMES
        ));
    }
    let analysis = medic_compiler::check(vec![Source::new("bench.ops", text)]);
    assert_eq!(analysis.errors(), 0);
    plan::lower(&analysis).unwrap()
}

fn alert(name: String, service: String, value: f64) -> Value {
    Value::record([
        ("name".to_string(), Value::String(name)),
        ("service".to_string(), Value::String(service)),
        (
            "severity".to_string(),
            Value::Enum {
                name: "critical".into(),
                index: 2,
            },
        ),
        (
            "status".to_string(),
            Value::Enum {
                name: "firing".into(),
                index: 0,
            },
        ),
        (
            "value".to_string(),
            Value::Quantity(QuantityValue::Percent(value)),
        ),
    ])
}

/// Half the alerts match a rule; a quarter name a service no rule knows; a quarter have a
/// value under the threshold.
fn alerts(rules: usize) -> Vec<Value> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..BATCH)
        .map(|position| {
            let rule = (next() % rules as u64) as usize;
            let name = format!("Alert_{}", rule % ALERT_NAMES);
            match position % 4 {
                0 | 1 => alert(name, format!("svc-{rule}"), 95.0),
                2 => alert(name, format!("svc-{}", rules + rule), 95.0),
                _ => alert(name, format!("svc-{rule}"), 50.0),
            }
        })
        .collect()
}

#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 100)]
fn match_alerts(bencher: divan::Bencher, rules: usize) {
    let plan = build(rules);
    let batch = alerts(rules);
    let matched = batch
        .iter()
        .filter(|alert| !plan.match_alert(alert).matched.is_empty())
        .count();
    assert!(
        (BATCH * 2 / 5..=BATCH * 3 / 5).contains(&matched),
        "about half must match, got {matched}"
    );
    bencher
        .counter(divan::counter::ItemsCount::new(BATCH))
        .bench(|| {
            for alert in &batch {
                divan::black_box(plan.match_alert(alert));
            }
        });
}
