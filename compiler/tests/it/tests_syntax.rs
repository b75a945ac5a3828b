//! Test blocks parse into their steps (WIP: checking and running them come next).

use medic_compiler::ast::{ExpectKind, Item, MockAnswer, TestEvent, TestStep};
use medic_compiler::{FileId, parser};

const TEXT: &str = r##"
test "order-service above 90% CPU gets one more replica" {
  fire cpu = { name: "High_CPU_Usage", service: "order-service", severity: critical, value: 95% }
  at +5m fire cpu
  at 10m resolve cpu
  mock k8s.scale = { from: 2, to: 3, changed: true, autoscaler: "", summary: "2 → 3" }
  mock notify.slack(channel: "#oncall") = fail "down" then { delivered: true, detail: "ok" }
  at +2m approve scale
  expect matched order_cpu, order_cpu
  expect no match
  expect suppressed order_cpu by duplicate
  expect runs 1
  expect run scale_up(deployment: "order-service")
  expect task scale succeeded
  expect action k8s.scale(by: 1, max: 5)
  expect no action k8s.restart
  expect outcome succeeded
  expect revert scale at +10m
}
"##;

#[test]
fn a_test_block_parses_into_its_steps() {
    let mut diagnostics = Vec::new();
    let file = parser::parse(FileId(0), TEXT, &mut diagnostics);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let [Item::Test(test)] = file.items.as_slice() else {
        panic!("one test expected: {:?}", file.items);
    };
    assert_eq!(
        test.name.value,
        "order-service above 90% CPU gets one more replica"
    );
    assert_eq!(test.steps.len(), 16);
    assert!(matches!(
        &test.steps[0],
        TestStep::Event { at: None, event: TestEvent::Fire { name: Some(name), .. }, .. } if name.name == "cpu"
    ));
    assert!(matches!(
        &test.steps[2],
        TestStep::Event {
            at: Some(_),
            event: TestEvent::Resolve(_),
            ..
        }
    ));
    let TestStep::Mock(mock) = &test.steps[4] else {
        panic!("a mock expected");
    };
    assert_eq!(mock.function.name, "slack");
    assert_eq!(mock.args.as_ref().map(Vec::len), Some(1));
    assert!(matches!(
        mock.answers.as_slice(),
        [MockAnswer::Fail(Some(_), _), MockAnswer::Value(_)]
    ));
    let kinds: Vec<&ExpectKind> = test
        .steps
        .iter()
        .filter_map(|step| match step {
            TestStep::Expect(expectation) => Some(&expectation.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.len(), 10);
    assert!(matches!(kinds[1], ExpectKind::NoMatch));
    assert!(matches!(kinds[3], ExpectKind::Runs(1, _)));
    assert!(matches!(kinds[7], ExpectKind::Action { negated: true, .. }));
    assert!(matches!(kinds[9], ExpectKind::Revert { at: Some(_), .. }));
}
