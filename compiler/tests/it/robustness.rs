//! Hostile inputs: deep nesting, long operator chains, huge files, odd bytes. None may
//! panic, overflow the stack or take long, and each gets exactly the diagnostic that names
//! its problem (no follow-on errors from the part that was refused).

use crate::support::check_text;
use medic_compiler::Analysis;
use std::time::{Duration, Instant};

/// Each diagnostic as `(code, message)`, in the order the checker reports them.
fn found(analysis: &Analysis) -> Vec<(String, String)> {
    analysis
        .diagnostics
        .iter()
        .map(|diagnostic| (diagnostic.code(), diagnostic.message()))
        .collect()
}

/// Checks `text` and returns its diagnostics as `(code, message)` pairs.
fn diagnostics(text: &str) -> Vec<(String, String)> {
    found(&check_text("x.ops", text))
}

/// The one diagnostic a refused nesting gets: the bracket limit (48) or the expression-tree
/// limit (128).
fn too_deep(levels: u32) -> Vec<(String, String)> {
    vec![(
        "ops::syntax::too_deep".to_string(),
        format!("nesting is deeper than {levels} levels"),
    )]
}

#[test]
fn deep_parentheses_are_refused_with_a_diagnostic() {
    let depth = 100_000;
    let text = format!(
        "rule r {{\n  on alert \"A\"\n  when {}true{}\n  run p()\n}}\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    assert_eq!(diagnostics(&text), too_deep(48));
}

#[test]
fn deep_lists_and_interpolations_are_refused() {
    let text = format!(
        "playbook p() {{\n  task t = http.get({}\"x\"{})\n}}\n",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    assert_eq!(diagnostics(&text), too_deep(48));
    let nested = format!(
        "playbook p() {{\n  task t = http.get(\"{}\")\n}}\n",
        "{\"".repeat(3_000)
    );
    assert_eq!(diagnostics(&nested), too_deep(48));
}

#[test]
fn long_operator_chains_are_refused_not_overflowed() {
    let chain = vec!["alert.value > 1"; 20_000].join(" and ");
    let text = format!(
        "rule r {{\n  on alert \"A\"\n  when {chain}\n  run p()\n}}\nplaybook p() {{\n}}\n"
    );
    assert_eq!(diagnostics(&text), too_deep(128));
    let nots = format!(
        "rule r {{\n  on alert \"A\"\n  when {}true\n  run p()\n}}\nplaybook p() {{\n}}\n",
        "not ".repeat(20_000)
    );
    assert_eq!(diagnostics(&nots), too_deep(128));
    let fields = format!(
        "rule r {{\n  on alert \"A\"\n  when alert{} == 1\n  run p()\n}}\nplaybook p() {{\n}}\n",
        ".x".repeat(20_000)
    );
    assert_eq!(diagnostics(&fields), too_deep(128));
}

#[test]
fn a_ten_megabyte_file_parses() {
    let rule = "rule r{n} {\n  on alert \"A{n}\"\n  when alert.service == \"svc-{n}\" and alert.value > 90%\n  run p(service: alert.service)\n  cooldown 10m per alert.service\n}\n\n";
    let mut text = String::from(
        "import std.{http, notify}\n\nplaybook p(service: String) {\n  task t = http.get(\"http://{service}/health\")\n  task u = http.get(\"http://{service}/ready\") {\n    when t.ok\n  }\n  task tell = notify.slack(channel: \"#oncall\", text: \"{service}\")\n}\n\n",
    );
    let mut n = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&rule.replace("{n}", &n.to_string()));
        n += 1;
    }
    let analysis = check_text("big.ops", &text);
    assert_eq!(analysis.program.rules.len(), n);
    assert_eq!(
        analysis.program.rules.last().map(|rule| rule.name.as_str()),
        Some(format!("r{}", n - 1).as_str())
    );
    // Only the warning that the check `u` is read by nothing (the playbook acts, so its
    // checks should matter), nothing per rule.
    let codes: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code())
        .collect();
    assert_eq!(codes, ["ops::lint::unused_task"], "{:?}", found(&analysis));
    assert_eq!(analysis.errors(), 0);
}

#[test]
fn binary_garbage_gets_diagnostics_not_panics() {
    // Each input, and the code of the one syntax error it gets from the checker and the
    // formatter alike (none: the input is valid).
    let inputs = [
        (
            "\u{0}\u{1}\u{2}",
            Some(("ops::syntax::unexpected", "unexpected `\0`")),
        ),
        (
            "rule \u{feff} {",
            Some(("ops::syntax::unexpected", "unexpected `\u{feff}`")),
        ),
        (
            "\"",
            Some(("ops::syntax::unterminated_string", "unterminated string")),
        ),
        (
            "rule r { on alert \"\\",
            Some(("ops::syntax::unterminated_string", "unterminated string")),
        ),
        ("}}}}}", Some(("ops::syntax::unexpected", "unexpected `}`"))),
        (
            "playbook p(",
            Some(("ops::syntax::unexpected", "unexpected end of file")),
        ),
        (
            "{\"",
            Some(("ops::syntax::unterminated_string", "unterminated string")),
        ),
        ("//!", None),
    ];
    for (input, expected) in inputs {
        let analysis = check_text("x.ops", input);
        let expected_pairs: Vec<(String, String)> = expected
            .iter()
            .map(|(code, message)| (code.to_string(), message.to_string()))
            .collect();
        assert_eq!(found(&analysis), expected_pairs, "{input:?}");
        // Every diagnostic points inside the input.
        for diagnostic in &analysis.diagnostics {
            let span = diagnostic.span();
            assert!(
                span.start <= span.end && span.end as usize <= input.len(),
                "{input:?}: span {span:?} outside the input"
            );
        }
        match (medic_compiler::format(input), expected) {
            (Ok(formatted), None) => assert_eq!(formatted, format!("{input}\n")),
            (Err(refused), Some((code, _))) => {
                let codes: Vec<String> =
                    refused.iter().map(|diagnostic| diagnostic.code()).collect();
                assert_eq!(codes, [code], "{input:?}");
            }
            (result, _) => panic!("{input:?}: the formatter answered {result:?}"),
        }
    }
}

#[test]
fn prefix_operators_spread_through_a_chain_are_refused() {
    let chain = vec!["true == not true"; 10_000].join(" == ");
    let text = format!(
        "rule r {{\n  on alert \"A\"\n  when {chain}\n  run p()\n}}\nplaybook p() {{\n}}\n"
    );
    assert_eq!(diagnostics(&text), too_deep(128));
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
    assert_eq!(diagnostics(&text), too_deep(128));
}

#[test]
fn very_long_names_get_no_suggestion_and_no_quadratic_time() {
    let long = "a".repeat(80_000);
    let text = format!(
        "import std.{{notify}}\n\nplaybook p({long}: String) {{\n  task t = notify.slack(channel: \"#x\", text: {long}b)\n}}\n"
    );
    let started = Instant::now();
    let analysis = check_text("long.ops", &text);
    let elapsed = started.elapsed();
    let codes: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code())
        .collect();
    assert_eq!(
        codes,
        ["ops::lint::unused_parameter", "ops::resolve::unknown_name"]
    );
    let unknown = &analysis.diagnostics[1];
    assert_eq!(unknown.message(), format!("unknown name `{long}b`"));
    // `{long}b` is one edit away from `{long}`, but names this long get no `did you mean`.
    assert!(unknown.suggestion.is_none(), "{:?}", unknown.suggestion);
    assert!(
        !unknown.help().unwrap_or_default().contains("did you mean"),
        "{:?}",
        unknown.help()
    );
    // An edit distance over two 80,000-byte names would take minutes; checking takes well
    // under a second, so this bound is far from the real time even on a loaded machine.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}
