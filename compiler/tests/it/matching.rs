//! Rule matching through the plan's index and the IR evaluator.

use crate::support::{check_text, render};
use medic_compiler::plan::ir::QuantityValue;
use medic_compiler::plan::{self, Plan, Value};
use std::collections::BTreeMap;

fn plan(text: &str) -> Plan {
    let analysis = check_text("rules.ops", text);
    assert_eq!(analysis.errors(), 0, "{}", render(&analysis));
    plan::lower(&analysis).unwrap()
}

pub fn alert(
    name: &str,
    service: &str,
    severity: (&str, u32),
    value: QuantityValue,
    status: &str,
) -> Value {
    Value::record([
        ("name".to_string(), Value::String(name.into())),
        ("service".to_string(), Value::String(service.into())),
        (
            "severity".to_string(),
            Value::Enum {
                name: severity.0.into(),
                index: severity.1,
            },
        ),
        (
            "status".to_string(),
            Value::Enum {
                name: status.into(),
                index: u32::from(status == "resolved"),
            },
        ),
        ("value".to_string(), Value::Quantity(value)),
        ("starts_at".to_string(), Value::Time(1_795_780_000_000)),
        (
            "labels".to_string(),
            Value::record([("disk".to_string(), Value::String("/var".into()))]),
        ),
    ])
}

const CRITICAL: (&str, u32) = ("critical", 2);
const WARNING: (&str, u32) = ("warning", 1);

const RULES: &str = r##"import std.{notify}

rule payment {
  on alert "Latency"
  when alert.service == "payment" and alert.severity >= critical and alert.value > 500ms
  run tell(text: "payment {alert.value}")
  cooldown 5m
}

rule audit {
  on any alert *
  when alert.labels["disk"] == "/var"
  run tell(text: "audit {alert.name}")
  cooldown 5m
  priority 10
  continue
}

rule order {
  on alert "Latency"
  when alert.service =~ "^order-"
  run tell(text: "order")
  cooldown 5m
}

rule resolved {
  on resolved alert "Latency"
  run tell(text: "resolved")
  cooldown 5m
}

playbook tell(text: String) {
  task send = notify.slack(channel: "#oncall", text: text)
}
"##;

fn names(plan: &Plan, outcome: &plan::MatchOutcome) -> Vec<String> {
    outcome
        .matched
        .iter()
        .map(|&index| plan.rules[index as usize].name.clone())
        .collect()
}

#[test]
fn first_match_with_continue_priority_and_lifecycle() {
    let plan = plan(RULES);
    let firing = alert(
        "Latency",
        "payment",
        CRITICAL,
        QuantityValue::Duration(750),
        "firing",
    );
    let outcome = plan.match_alert(&firing);
    assert_eq!(
        names(&plan, &outcome),
        ["audit", "payment"],
        "audit has priority and continues"
    );
    let slow_enough = alert(
        "Latency",
        "payment",
        CRITICAL,
        QuantityValue::Duration(400),
        "firing",
    );
    assert_eq!(names(&plan, &plan.match_alert(&slow_enough)), ["audit"]);
    let warning = alert(
        "Latency",
        "payment",
        WARNING,
        QuantityValue::Duration(900),
        "firing",
    );
    assert_eq!(names(&plan, &plan.match_alert(&warning)), ["audit"]);
    let order = alert(
        "Latency",
        "order-api",
        CRITICAL,
        QuantityValue::Duration(900),
        "firing",
    );
    assert_eq!(names(&plan, &plan.match_alert(&order)), ["audit", "order"]);
    let resolved = alert(
        "Latency",
        "payment",
        CRITICAL,
        QuantityValue::Duration(900),
        "resolved",
    );
    assert_eq!(
        names(&plan, &plan.match_alert(&resolved)),
        ["audit", "resolved"],
        "firing rules ignore resolved alerts"
    );
}

#[test]
fn a_value_in_another_unit_does_not_match_and_says_why() {
    let plan = plan(RULES);
    let percent = alert(
        "Latency",
        "payment",
        CRITICAL,
        QuantityValue::Percent(95.0),
        "firing",
    );
    let outcome = plan.match_alert(&percent);
    assert_eq!(names(&plan, &outcome), ["audit"]);
    let (rule, error) = &outcome.errors[0];
    assert_eq!(plan.rules[*rule as usize].name, "payment");
    assert_eq!(
        error.to_string(),
        "alert value is a Percent, but the rule compares it with a Duration"
    );
}

#[test]
fn the_index_narrows_candidates() {
    let mut text = String::from(
        "import std.{notify}\n\nplaybook tell(text: String) {\n  task send = notify.slack(channel: \"#oncall\", text: text)\n}\n",
    );
    for index in 0..1_000 {
        text.push_str(&format!(
            "\nrule r{index} {{\n  on alert \"A{}\"\n  when alert.service == \"svc-{index}\" and alert.value > 90%\n  run tell(text: \"r{index}\")\n  cooldown 5m\n}}\n",
            index % 10
        ));
    }
    let plan = plan(&text);
    let bucket = &plan.index.by_name["A7"];
    assert_eq!(bucket.field.as_deref(), Some("service"));
    let outcome = plan.match_alert(&alert(
        "A7",
        "svc-417",
        CRITICAL,
        QuantityValue::Percent(95.0),
        "firing",
    ));
    assert_eq!(names(&plan, &outcome), ["r417"]);
    assert_eq!(outcome.evaluated, 1, "only the candidate rule is evaluated");
    let none = plan.match_alert(&alert(
        "Nope",
        "svc-417",
        CRITICAL,
        QuantityValue::Percent(95.0),
        "firing",
    ));
    assert!(none.matched.is_empty() && none.evaluated == 0);
}

#[test]
fn arguments_evaluate_against_the_alert() {
    let plan = plan(RULES);
    let firing = alert(
        "Latency",
        "payment",
        CRITICAL,
        QuantityValue::Duration(750),
        "firing",
    );
    let rule = plan
        .rules
        .iter()
        .find(|rule| rule.name == "payment")
        .unwrap();
    let vars: BTreeMap<String, Value> = BTreeMap::from([("alert".to_string(), firing)]);
    assert_eq!(
        rule.args["text"].eval(&vars).unwrap(),
        Value::String("payment 750ms".into())
    );
}

#[test]
fn time_and_unit_arithmetic() {
    let plan = plan(
        "import std.{notify}\n\nrule r {\n  on alert \"A\"\n  run tell(since: alert.starts_at - 10m, limit: 2 * 15m, share: 50% / 2)\n  cooldown 5m\n}\n\nplaybook tell(since: Time, limit: Duration, share: Percent) {\n  task send = notify.slack(channel: \"#x\", text: \"{since} {limit} {share}\")\n}\n",
    );
    let vars: BTreeMap<String, Value> = BTreeMap::from([(
        "alert".to_string(),
        alert("A", "x", CRITICAL, QuantityValue::Number(1.0), "firing"),
    )]);
    let args = &plan.rules[0].args;
    assert_eq!(
        args["since"].eval(&vars).unwrap(),
        Value::Time(1_795_780_000_000 - 600_000)
    );
    assert_eq!(
        args["limit"].eval(&vars).unwrap(),
        Value::Duration(1_800_000)
    );
    assert_eq!(args["share"].eval(&vars).unwrap(), Value::Percent(25.0));
}

#[test]
fn review_fixes_in_evaluation() {
    // A variant is a constant even when a parameter has the same name.
    let compiled = plan(
        "import std.{trace, notify}\n\nrule r {\n  on alert \"A\"\n  run p(downstream: alert.service, since: alert.starts_at)\n  cooldown 5m\n}\n\nplaybook p(downstream: String, since: Time) {\n  task deps = trace.dependencies(downstream, since: since)\n  task tell = notify.slack(channel: \"#x\", text: \"{deps.services}\")\n}\n",
    );
    let task = compiled.playbooks[0].task("deps").unwrap();
    assert_eq!(
        task.args["direction"],
        plan::Ir::Const {
            value: Value::Enum {
                name: "downstream".into(),
                index: 1
            }
        }
    );
    // An alert value passed to a Percent parameter must be a percentage.
    let compiled = plan(
        "import std.{notify}\n\nrule r {\n  on alert \"A\"\n  run p(limit: alert.value)\n  cooldown 5m\n}\n\nplaybook p(limit: Percent) {\n  task tell = notify.slack(channel: \"#x\", text: \"{limit}\")\n}\n",
    );
    let percent: BTreeMap<String, Value> = BTreeMap::from([(
        "alert".to_string(),
        alert("A", "x", CRITICAL, QuantityValue::Percent(92.0), "firing"),
    )]);
    assert_eq!(
        compiled.rules[0].args["limit"].eval(&percent).unwrap(),
        Value::Percent(92.0)
    );
    let duration: BTreeMap<String, Value> = BTreeMap::from([(
        "alert".to_string(),
        alert("A", "x", CRITICAL, QuantityValue::Duration(750), "firing"),
    )]);
    assert!(compiled.rules[0].args["limit"].eval(&duration).is_err());
    // A percentage is not a plain number.
    let compiled = plan(
        "import std.{notify}\n\nrule r {\n  on alert \"A\"\n  when alert.value > 90\n  run p()\n  cooldown 5m\n}\n\nplaybook p() {\n  task tell = notify.slack(channel: \"#x\", text: \"x\")\n}\n",
    );
    let outcome = compiled.match_alert(&alert(
        "A",
        "x",
        CRITICAL,
        QuantityValue::Percent(92.0),
        "firing",
    ));
    assert!(outcome.matched.is_empty() && outcome.errors.len() == 1);
    // Chained defaults type-check.
    let analysis = check_text(
        "chain.ops",
        "import std.{notify}\n\nrule r {\n  on alert \"A\"\n  when (alert.labels[\"x\"] ?? alert.labels[\"y\"] ?? \"z\") == \"a\"\n  run p()\n  cooldown 5m\n}\n\nplaybook p() {\n  task tell = notify.slack(channel: \"#x\", text: \"x\")\n}\n",
    );
    assert_eq!(analysis.errors(), 0, "{}", render(&analysis));
}

#[test]
fn plan_diff_sees_defaults_and_small_numbers() {
    let before = plan(
        "import std.{notify}\n\nrule r {\n  on alert \"A\"\n  when alert.value > 0.00001\n  run p()\n  cooldown 5m\n}\n\nplaybook p(channel: String = \"#a\") {\n  task tell = notify.slack(channel: channel, text: \"x\")\n}\n",
    );
    let after = plan(
        "import std.{notify}\n\nrule r {\n  on alert \"A\"\n  when alert.value > 0.00004\n  run p()\n  cooldown 5m\n}\n\nplaybook p(channel: String = \"#b\") {\n  task tell = notify.slack(channel: channel, text: \"x\")\n}\n",
    );
    let changes: Vec<String> = plan::diff::diff(&before, &after)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        changes.iter().any(|change| change
            .contains("condition changed from alert.value > 0.00001 to alert.value > 0.00004")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|change| change.contains("parameters changed")),
        "{changes:?}"
    );
}

#[test]
fn explain_gives_each_rule_its_verdict_and_each_part_its_values() {
    use medic_compiler::plan::explain::{self, Verdict};
    let plan = plan(RULES);
    let slow = alert(
        "Latency",
        "payment",
        WARNING,
        QuantityValue::Duration(750),
        "firing",
    );
    let explanation = explain::explain(&plan, &slow);
    let verdicts: Vec<(&str, &Verdict)> = explanation
        .rules
        .iter()
        .map(|rule| (rule.rule.as_str(), &rule.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("audit", &Verdict::Matched { stops: false }),
            (
                "payment",
                &Verdict::NotMatched {
                    reason: "`alert.severity >= critical` is false".into()
                }
            ),
            (
                "order",
                &Verdict::NotMatched {
                    reason: "`alert.service =~ \"^order-\"` is false".into()
                }
            ),
            (
                "resolved",
                &Verdict::NotMatched {
                    reason: "it is for resolved alerts, and the alert is firing".into()
                }
            ),
        ]
    );
    // Every part is evaluated, also after one failed, with its operands' values and units.
    let payment = &explanation.rules[1];
    let results: Vec<(&str, Result<bool, String>)> = payment
        .parts
        .iter()
        .map(|part| (part.text.as_str(), part.result.clone()))
        .collect();
    assert_eq!(
        results,
        [
            ("alert.service == \"payment\"", Ok(true)),
            ("alert.severity >= critical", Ok(false)),
            ("alert.value > 500ms", Ok(true)),
        ]
    );
    let text = explain::text(&explanation);
    assert!(
        text.contains("       when alert.value > 500ms: true (alert.value = 750ms)\n"),
        "{text}"
    );
    assert!(
        text.contains("       when alert.severity >= critical: false (alert.severity = warning)\n"),
        "{text}"
    );
    assert!(
        text.contains("runs tell(text: \"audit Latency\")"),
        "{text}"
    );
    // The verdicts are the matcher's own.
    let outcome = plan.match_alert(&slow);
    let matched: Vec<String> = explanation
        .rules
        .iter()
        .filter(|rule| matches!(rule.verdict, Verdict::Matched { .. }))
        .map(|rule| rule.rule.clone())
        .collect();
    assert_eq!(matched, names(&plan, &outcome));
}

#[test]
fn explain_says_which_rule_stopped_the_matching() {
    use medic_compiler::plan::explain::{self, Verdict};
    let plan = plan(
        r##"import std.{notify}

rule first {
  on alert "Latency"
  run tell(text: "first")
  cooldown 5m
}

rule second {
  on alert "Latency"
  when alert.value > 1s
  run tell(text: "second")
  cooldown 5m
}

rule other {
  on alert "Disk_Full"
  run tell(text: "other")
  cooldown 5m
}

playbook tell(text: String) {
  task send = notify.slack(channel: "#oncall", text: text)
}
"##,
    );
    let explanation = explain::explain(
        &plan,
        &alert(
            "Latency",
            "payment",
            CRITICAL,
            QuantityValue::Duration(2_000),
            "firing",
        ),
    );
    assert_eq!(
        explanation.rules[0].verdict,
        Verdict::Matched { stops: true }
    );
    assert_eq!(
        explanation.rules[1].verdict,
        Verdict::NotReached { by: "first".into() }
    );
    assert_eq!(
        explanation.rules[2].verdict,
        Verdict::NotMatched {
            reason: "it is for \"Disk_Full\", and the alert is \"Latency\"".into()
        }
    );
    let text = explain::text(&explanation);
    assert!(
        text.contains("not reached: rule first matched first and does not `continue`"),
        "{text}"
    );
    assert!(text.ends_with("  1 rule matched (cooldowns, concurrency and duplicates are decided by the server's journal, not here)\n"), "{text}");
}
