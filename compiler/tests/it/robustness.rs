//! Hostile inputs: deep nesting, long operator chains, huge files, odd bytes. None may
//! panic, overflow the stack or take long.

use crate::support::check_text;

fn codes(text: &str) -> Vec<String> {
    check_text("x.ops", text)
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code())
        .collect()
}

#[test]
fn deep_parentheses_are_refused_with_a_diagnostic() {
    let depth = 100_000;
    let text = format!(
        "rule r {{\n  on alert \"A\"\n  when {}true{}\n  run p()\n}}\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    assert!(codes(&text).contains(&"ops::syntax::too_deep".to_string()));
}

#[test]
fn deep_lists_and_interpolations_are_refused() {
    let text = format!(
        "playbook p() {{\n  task t = http.get({}\"x\"{})\n}}\n",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    assert!(codes(&text).contains(&"ops::syntax::too_deep".to_string()));
    let nested = format!(
        "playbook p() {{\n  task t = http.get(\"{}\")\n}}\n",
        "{\"".repeat(3_000)
    );
    let found = codes(&nested);
    assert!(!found.is_empty());
}

#[test]
fn long_operator_chains_are_refused_not_overflowed() {
    let chain = vec!["alert.value > 1"; 20_000].join(" and ");
    let text = format!(
        "rule r {{\n  on alert \"A\"\n  when {chain}\n  run p()\n}}\nplaybook p() {{\n}}\n"
    );
    assert!(codes(&text).contains(&"ops::syntax::too_deep".to_string()));
    let nots = format!(
        "rule r {{\n  on alert \"A\"\n  when {}true\n  run p()\n}}\nplaybook p() {{\n}}\n",
        "not ".repeat(20_000)
    );
    assert!(codes(&nots).contains(&"ops::syntax::too_deep".to_string()));
    let fields = format!(
        "rule r {{\n  on alert \"A\"\n  when alert{} == 1\n  run p()\n}}\nplaybook p() {{\n}}\n",
        ".x".repeat(20_000)
    );
    assert!(codes(&fields).contains(&"ops::syntax::too_deep".to_string()));
}

#[test]
fn a_ten_megabyte_file_parses() {
    let rule = "rule r{n} {\n  on alert \"A{n}\"\n  when alert.service == \"svc-{n}\" and alert.value > 90%\n  run p(service: alert.service)\n  cooldown 10m per alert.service\n}\n\n";
    let mut text = String::from(
        "import std.{http}\n\nplaybook p(service: String) {\n  task t = http.get(\"http://{service}/health\")\n  task u = http.get(\"http://{service}/ready\") {\n    when t.ok\n  }\n}\n\n",
    );
    let mut n = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&rule.replace("{n}", &n.to_string()));
        n += 1;
    }
    let analysis = check_text("big.ops", &text);
    assert_eq!(analysis.program.rules.len(), n);
    // Only the unused-task warning of `u`, nothing per rule.
    assert_eq!(analysis.errors(), 0);
}

#[test]
fn binary_garbage_gets_diagnostics_not_panics() {
    let inputs = [
        "\u{0}\u{1}\u{2}",
        "rule \u{feff} {",
        "\"",
        "rule r { on alert \"\\",
        "}}}}}",
        "playbook p(",
        "{\"",
        "//!",
    ];
    for input in inputs {
        let _ = check_text("x.ops", input);
        let _ = medic_compiler::format(input);
    }
}

#[test]
fn prefix_operators_spread_through_a_chain_are_refused() {
    let chain = vec!["true == not true"; 10_000].join(" == ");
    let text = format!(
        "rule r {{\n  on alert \"A\"\n  when {chain}\n  run p()\n}}\nplaybook p() {{\n}}\n"
    );
    assert!(codes(&text).contains(&"ops::syntax::too_deep".to_string()));
}

#[test]
fn nesting_through_indexes_and_calls_counts_toward_the_limit() {
    let mut expr = String::from("\"a\"");
    for _ in 0..6 {
        let chain = vec!["\"a\""; 100].join(" ?? ");
        expr = format!("alert.labels[{expr} ?? {chain}]");
    }
    let text = format!(
        "rule r {{\n  on alert \"A\"\n  when {expr} == \"x\"\n  run p()\n}}\nplaybook p() {{\n}}\n"
    );
    assert!(codes(&text).contains(&"ops::syntax::too_deep".to_string()));
}

#[test]
fn very_long_names_get_no_suggestion_and_no_quadratic_time() {
    let long = "a".repeat(80_000);
    let text = format!(
        "import std.{{notify}}\n\nplaybook p({long}: String) {{\n  task t = notify.slack(channel: \"#x\", text: {long}b)\n}}\n"
    );
    let analysis = check_text("long.ops", &text);
    assert!(
        analysis
            .diagnostics
            .iter()
            .any(|diagnostic| diagnostic.code() == "ops::resolve::unknown_name")
    );
}
