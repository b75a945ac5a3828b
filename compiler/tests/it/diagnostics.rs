//! One snapshot per bad-input file under `tests/diagnostics/`. Each file also carries its
//! expectations as trailing comments (`// error: ops::type::mismatch`) on the line where
//! each diagnostic starts; the test checks that set exactly, then snapshots the rendering.

use crate::support::{check_text, render};
use medic_compiler::LineIndex;
use std::collections::BTreeSet;

fn expectations(text: &str) -> BTreeSet<(usize, String, String)> {
    let mut expected = BTreeSet::new();
    for (line, content) in text.lines().enumerate() {
        for severity in ["error", "warning"] {
            let marker = format!("// {severity}: ");
            if let Some(position) = content.find(&marker) {
                let codes = &content[position + marker.len()..];
                for code in codes.split(',') {
                    expected.insert((line + 1, severity.to_string(), code.trim().to_string()));
                }
            }
        }
    }
    expected
}

#[test]
fn diagnostic_cases() {
    let files = crate::support::ops_files("tests/diagnostics");
    assert!(
        files.len() >= 40,
        "expected at least 40 diagnostic cases, found {}",
        files.len()
    );
    insta::glob!("../../../tests/diagnostics", "*.ops", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = format!(
            "tests/diagnostics/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let analysis = check_text(&name, &text);
        let file = analysis.user_files().next().unwrap();
        let index = LineIndex::new(&text);
        let found: BTreeSet<(usize, String, String)> = analysis
            .diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.file == file)
            .map(|diagnostic| {
                let line = index.position(&text, diagnostic.span().start as usize).line + 1;
                (
                    line,
                    diagnostic.severity().as_str().to_string(),
                    diagnostic.code(),
                )
            })
            .collect();
        assert_eq!(
            found,
            expectations(&text),
            "diagnostics of {name} differ from its annotations"
        );
        assert!(!found.is_empty(), "{name} produces no diagnostic");
        insta::assert_snapshot!(format!(
            "{text}\n---- diagnostics ----\n\n{}",
            render(&analysis)
        ));
    });
}

#[test]
fn three_independent_errors_in_three_items_are_all_reported() {
    let text = r#"import std.{k8s}

rule a {
  on alert "A"
  when alert.servce == "x"
  run p()
  cooldown 5m
}

playbook p() {
  task t = k8s.scale(deployment: "x", by: 1)
}

rule b {
  on alert "B"
  run missing()
  cooldown 5m
}
"#;
    let analysis = check_text("three.ops", text);
    let index = LineIndex::new(text);
    let found: Vec<(usize, String)> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| {
            (
                index.position(text, diagnostic.span().start as usize).line + 1,
                diagnostic.code(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (5, "ops::type::unknown_field".to_string()),
            (11, "ops::guard::missing_limit".to_string()),
            (16, "ops::resolve::unknown_playbook".to_string()),
        ]
    );
}

#[test]
fn syntax_errors_in_separate_items_are_each_reported() {
    let text = "rule a {\n  on alert\n}\n\nrule b {\n  on alert \"B\" when\n}\n\nplaybook p( {\n}\n\nrule ok {\n  on alert \"C\"\n  run p2()\n}\n\nplaybook p2() {\n}\n";
    let analysis = check_text("syntax.ops", text);
    let index = LineIndex::new(text);
    let lines: Vec<usize> = analysis
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.code() == "ops::syntax::unexpected")
        .map(|diagnostic| index.position(text, diagnostic.span().start as usize).line + 1)
        .collect();
    assert_eq!(lines, vec![3, 7, 9], "{}", render(&analysis));
    // The valid items after the broken ones are still checked: `ok` resolves `p2`.
    assert!(
        analysis
            .program
            .rules
            .iter()
            .any(|rule| rule.name == "ok" && rule.run.is_some())
    );
}
