//! A thousand tests of one file, checked, lowered and run: what `medic test` costs a CI job.
//! Each test fires an alert, waits out a cooldown of 15 virtual minutes for a second
//! episode, and expects a revert due 30 minutes later (so the virtual clock moves), with
//! mocks for both calls. Run with `cargo bench -p medic-tester --bench thousand`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use medic_compiler::Source;
use std::sync::Arc;

const RUNBOOK: &str = r##"
import std.{k8s, notify}

rule cpu {
  on alert "High_CPU"
  when alert.value > 90%
  run scale_up(deployment: alert.service)
  cooldown 15m per alert.service
}

playbook scale_up(deployment: String) {
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    retry 2 backoff 10s
    revert after 30m
  }
  task tell = notify.slack(channel: "#oncall", text: "scaled: {scale.summary}") {
    when scale.changed
  }
}
"##;

fn tests(count: usize) -> String {
    let mut text = String::new();
    for index in 0..count {
        text.push_str(&format!(
            r##"
test "service {index} is scaled once per cooldown" {{
  fire a = {{ name: "High_CPU", service: "svc-{index}", value: 95% }}
  at +5m fire {{ name: "High_CPU", service: "svc-{index}", value: 96%, labels: {{ "pod": "b" }} }}
  at +20m fire {{ name: "High_CPU", service: "svc-{index}", value: 97%, labels: {{ "pod": "c" }} }}
  mock k8s.scale = fail "timeout" then {{ from: 2, to: 3, changed: true, autoscaler: "", summary: "2 → 3" }}
  mock notify.slack = {{ delivered: true, detail: "ok" }}
  expect runs 2
  expect suppressed cpu by cooldown
  expect action k8s.scale(deployment: "svc-{index}", by: 1, max: 5)
  expect revert scale at +30m10s
}}
"##
        ));
    }
    text
}

fn main() {
    divan::main();
}

/// Check, lower and run every test on both cores, as `medic test` does.
#[divan::bench(sample_count = 5)]
fn thousand_tests(bencher: divan::Bencher) {
    let text = tests(1000);
    bencher.bench(|| {
        let analysis = medic_compiler::check(vec![
            Source::new("runbook.ops", RUNBOOK),
            Source::new("runbook_test.ops", text.clone()),
        ]);
        assert_eq!(analysis.errors(), 0);
        let plan = medic_compiler::plan::lower(&analysis).unwrap();
        let suite = medic_compiler::plan::suite::suite(&analysis).unwrap();
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let results = medic_tester::run_all(Arc::new(plan), &suite.tests, jobs);
        assert!(
            results.iter().all(|result| result.passed),
            "{:#?}",
            results[0].failures
        );
        results.len()
    });
}
