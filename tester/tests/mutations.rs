//! The examples' tests catch changes to the runbooks: each mutation below (a changed limit,
//! threshold, cooldown or retry, a removed `when` or revert) still checks, and makes at
//! least one test of its example fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use medic_compiler::Source;
use std::path::PathBuf;
use std::sync::Arc;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example `name` with `from` replaced by `to` (which must occur), with its tests:
/// how many tests fail.
fn failing_after(name: &str, from: &str, to: &str) -> usize {
    let runbook = std::fs::read_to_string(examples().join(format!("{name}.ops"))).unwrap();
    let tests = std::fs::read_to_string(examples().join(format!("{name}_test.ops"))).unwrap();
    assert!(runbook.contains(from), "{name}.ops has no {from:?}");
    let mutated = runbook.replacen(from, to, 1);
    let analysis = medic_compiler::check(vec![
        Source::new(format!("{name}.ops"), mutated),
        Source::new(format!("{name}_test.ops"), tests),
    ]);
    assert_eq!(
        analysis.errors(),
        0,
        "the mutation {from:?} → {to:?} of {name}.ops does not check"
    );
    let plan = medic_compiler::plan::lower(&analysis).unwrap();
    let suite = medic_compiler::plan::suite::suite(&analysis).unwrap();
    let results = medic_tester::run_all(Arc::new(plan), &suite.tests, 2);
    assert!(!results.is_empty());
    results.iter().filter(|result| !result.passed).count()
}

#[test]
fn the_examples_pass_as_they_are() {
    for name in ["order_cpu", "payment_latency", "disk_full", "inventory_db"] {
        assert_eq!(failing_after(name, "rule", "rule"), 0, "{name}");
    }
}

#[test]
fn every_mutation_of_an_example_fails_one_of_its_tests() {
    let mutations = [
        ("order_cpu", "max: 5", "max: 6"),
        ("order_cpu", "by: 1", "by: 2"),
        ("order_cpu", "alert.value > 90%", "alert.value > 80%"),
        ("order_cpu", "alert.value > 90%", "alert.value >= 90%"),
        ("order_cpu", "cooldown 15m", "cooldown 10m"),
        ("order_cpu", "revert after 30m", "revert after 20m"),
        ("order_cpu", "on failure escalate", "on failure abort"),
        ("order_cpu", " and alert.severity >= critical", ""),
        (
            "payment_latency",
            "alert.value > 500ms",
            "alert.value > 400ms",
        ),
        (
            "payment_latency",
            "when (status.ok ?? false) and (logs.error_rate ?? 100%) < 10%",
            "when (status.ok ?? false)",
        ),
        ("payment_latency", "max: 5", "max: 4"),
        (
            "payment_latency",
            "retry 3 backoff 2s",
            "retry 2 backoff 2s",
        ),
        ("disk_full", "alert.value > 85%", "alert.value > 90%"),
        ("disk_full", "cooldown 1h", "cooldown 30m"),
        ("disk_full", "retry 2 backoff 10s", "retry 1 backoff 10s"),
        ("inventory_db", "alert.value > 5", "alert.value > 6"),
        ("inventory_db", "cooldown 30m", "cooldown 20m"),
        ("inventory_db", "retry 2 backoff 5s", "retry 3 backoff 5s"),
    ];
    let missed: Vec<String> = mutations
        .iter()
        .filter(|(name, from, to)| failing_after(name, from, to) == 0)
        .map(|(name, from, to)| format!("{name}: {from:?} → {to:?}"))
        .collect();
    assert!(missed.is_empty(), "no test caught: {missed:#?}");
}
