//! The tester on small runbooks: what a test sees of the engine, and how it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use medic_compiler::Source;
use medic_tester::{TestResult, run_all};
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
    revert on resolve
    on failure escalate
  }
  task ask = notify.slack(channel: "#oncall", text: "more?") {
    after scale
    approval within 10m
  }
  task tell = notify.slack(channel: "#oncall", text: "scaled: {scale.summary}") {
    when scale.changed
  }
}
"##;

const SCALED: &str = r##"{ from: 2, to: 3, changed: true, autoscaler: "", summary: "2 → 3" }"##;
const SENT: &str = r##"{ delivered: true, detail: "ok" }"##;

/// Checks the runbook with `tests`, runs every test and returns the results.
fn run(tests: &str) -> Vec<TestResult> {
    let text = tests.replace("SCALED", SCALED).replace("SENT", SENT);
    let analysis = medic_compiler::check(vec![
        Source::new("runbook.ops", RUNBOOK),
        Source::new("runbook_test.ops", text),
    ]);
    let problems: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| format!("{}: {}", diagnostic.code(), diagnostic.message()))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let plan = medic_compiler::plan::lower(&analysis).unwrap();
    let suite = medic_compiler::plan::suite::suite(&analysis).unwrap();
    run_all(Arc::new(plan), &suite.tests, 2)
}

fn only(results: &[TestResult]) -> &TestResult {
    assert_eq!(results.len(), 1);
    &results[0]
}

fn messages(result: &TestResult) -> Vec<String> {
    result
        .failures
        .iter()
        .map(|failure| failure.message.clone())
        .collect()
}

#[test]
fn a_passing_test_sees_the_run_its_actions_and_the_revert() {
    let results = run(r##"
test "scaled" {
  fire cpu = { name: "High_CPU", service: "api", value: 95% }
  at +1m approve ask
  mock k8s.scale = SCALED
  mock notify.slack = SENT
  expect matched cpu
  expect runs 1
  expect run scale_up(deployment: "api")
  expect action k8s.scale(deployment: "api", by: 1, max: 5)
  expect action notify.slack(text: "scaled: 2 → 3")
  expect task tell succeeded
  expect task ask succeeded
  expect outcome succeeded
  expect revert scale at +30m
}
"##);
    let result = only(&results);
    assert!(result.passed, "{:#?}", result.failures);
}

#[test]
fn an_unmocked_call_fails_the_test_naming_the_call_and_its_arguments() {
    let results = run(r##"
test "no slack mock" {
  fire { name: "High_CPU", service: "api", value: 95% }
  approve ask
  mock k8s.scale = SCALED
}
"##);
    let result = only(&results);
    assert!(!result.passed);
    let messages = messages(result);
    assert!(
        messages.iter().any(|message| message
            .starts_with("unmocked call notify.slack(channel: \"#oncall\", text: \"more?\")")),
        "{messages:#?}"
    );
}

#[test]
fn failures_say_what_differs_first() {
    let results = run(r##"
test "wrong expectations" {
  fire { name: "High_CPU", service: "api", value: 95% }
  approve ask
  mock k8s.scale = SCALED
  mock notify.slack = SENT
  expect runs 2
  expect action k8s.scale(by: 2)
  expect no action notify.slack
  expect revert scale at +20m
  expect task tell skipped
  expect outcome failed
  expect suppressed cpu
}
"##);
    let result = only(&results);
    let messages = messages(result);
    let expected = [
        "expect runs 2: expected 2 runs, got 1 (run 1 of scale_up by cpu at +0s: succeeded)",
        "expect action k8s.scale(by: 2): expected action k8s.scale with by: 2, got by: 1",
        "expect no action notify.slack: expected no action notify.slack, got",
        "expect revert scale at +20m: expected a revert of scale at +20m, got one reverted at +30m (due at +30m)",
        "expect task tell skipped: expected task tell skipped, got succeeded in run 1",
        "expect outcome failed: expected outcome failed, got succeeded (run 1 of scale_up)",
        "expect suppressed cpu: expected cpu suppressed, got no suppression",
    ];
    assert_eq!(messages.len(), expected.len(), "{messages:#?}");
    for (message, expected) in messages.iter().zip(expected) {
        assert!(
            message.starts_with(expected),
            "{message}\nexpected: {expected}"
        );
    }
    assert!(
        result
            .trace
            .iter()
            .any(|line| line.contains("k8s.scale(by: 1, deployment: \"api\"")),
        "{:#?}",
        result.trace
    );
}

#[test]
fn a_sequence_of_answers_tests_retry_on_the_virtual_clock() {
    let results = run(r##"
test "two failures then success" {
  fire { name: "High_CPU", service: "api", value: 95% }
  at +1m approve ask
  mock k8s.scale = fail "timeout" then fail "timeout" then SCALED
  mock notify.slack = SENT
  expect task scale succeeded
  expect outcome succeeded
}

test "three failures exhaust retry 2 and escalate" {
  fire { name: "High_CPU", service: "api", value: 95% }
  mock k8s.scale = fail "timeout"
  expect task scale failed
  expect task tell not_run
  expect outcome escalated
  expect no action notify.slack
}
"##);
    for result in &results {
        assert!(result.passed, "{}: {:#?}", result.name, result.failures);
    }
    // Three calls of k8s.scale, 10 s and then 20 s apart: the backoff on the virtual clock.
    let observed = results[0].observed.as_ref().unwrap();
    let times: Vec<i64> = observed
        .calls
        .iter()
        .filter(|call| call.function == "k8s.scale" && !call.revert)
        .map(|call| call.at_ms)
        .collect();
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(
        times[1] - times[0] >= 10_000 && times[2] - times[1] >= 20_000,
        "{times:?}"
    );
    // Virtual time: a test that waits 30 minutes for a revert takes no wall time to speak of.
    assert!(results[0].millis < 5_000.0, "{}", results[0].millis);
}

#[test]
fn cooldown_duplicate_and_resolve_follow_the_timeline() {
    let results = run(r##"
test "timeline" {
  fire a = { name: "High_CPU", service: "api", value: 95% }
  at +1m fire a
  at +5m fire { name: "High_CPU", service: "api", value: 97%, labels: { "pod": "api-2" } }
  at +6m resolve a
  at +20m fire { name: "High_CPU", service: "api", value: 99%, labels: { "pod": "api-3" } }
  at +20m approve ask
  at +21m fire { name: "High_CPU", service: "api", value: 80%, labels: { "pod": "api-4" } }
  mock k8s.scale = SCALED
  mock notify.slack = SENT
  expect matched cpu, cpu, cpu, cpu
  expect suppressed cpu by duplicate
  expect suppressed cpu by cooldown
  expect runs 2
}
"##);
    let result = only(&results);
    assert!(result.passed, "{:#?}\n{:#?}", result.failures, result.trace);
    let observed = result.observed.as_ref().unwrap();
    // The first run's scale was reverted when its alert resolved, at +6m, not at +30m.
    let first = &observed.runs[0];
    assert_eq!(first.reverts.len(), 1);
    assert_eq!(first.reverts[0].state, "reverted");
    let revert = observed.calls.iter().find(|call| call.revert).unwrap();
    assert_eq!(revert.at_ms, 6 * 60_000, "{:#?}", observed.calls);
}

#[test]
fn an_approval_left_undecided_times_out_and_one_nobody_waits_for_is_a_failure() {
    let results = run(r##"
test "undecided" {
  fire { name: "High_CPU", service: "api", value: 95% }
  mock k8s.scale = SCALED
  mock notify.slack = SENT
  expect task ask failed
}

test "approved too early" {
  at +1m approve ask
  fire { name: "High_CPU", service: "api", value: 95% }
  mock k8s.scale = SCALED
  mock notify.slack = SENT
}
"##);
    assert!(
        results[0].passed,
        "{:#?}\n{:#?}",
        results[0].failures, results[0].trace
    );
    let messages = messages(&results[1]);
    assert!(
        messages
            .iter()
            .any(|message| message.contains("no run was waiting for the approval of `ask`")),
        "{messages:#?}"
    );
}

#[test]
fn mocks_answer_by_argument_in_source_order() {
    let results = run(r##"
test "per argument" {
  fire { name: "High_CPU", service: "api", value: 95% }
  approve ask
  mock k8s.scale = SCALED
  mock notify.slack(text: "more?") = SENT
  mock notify.slack = fail "slack is down"
  expect task ask succeeded
  expect task tell failed
}
"##);
    let result = only(&results);
    assert!(result.passed, "{:#?}\n{:#?}", result.failures, result.trace);
}
