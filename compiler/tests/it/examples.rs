//! Every example checks clean, alone and together.

use crate::support::{ops_files, render};
use medic_compiler::Source;

#[test]
fn every_example_checks_clean() {
    let files = ops_files("examples");
    assert!(files.len() >= 4);
    let mut all = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // A `*_test.ops` file tests the file beside it: the two check together.
        let mut alone = vec![Source::new(name.clone(), text.clone())];
        if let Some(tested) = name.strip_suffix("_test.ops") {
            let beside = path.with_file_name(format!("{tested}.ops"));
            alone.insert(
                0,
                Source::new(
                    format!("{tested}.ops"),
                    std::fs::read_to_string(beside).unwrap(),
                ),
            );
        }
        let analysis = medic_compiler::check(alone);
        assert!(
            analysis.diagnostics.is_empty(),
            "{name}:\n{}",
            render(&analysis)
        );
        all.push(Source::new(name, text));
    }
    let analysis = medic_compiler::check(all);
    assert!(analysis.diagnostics.is_empty(), "{}", render(&analysis));
    assert_eq!(analysis.program.rules.len(), 4);
}

#[test]
fn payment_example_has_the_runbook_shape() {
    let text =
        std::fs::read_to_string(crate::support::repo_root().join("examples/payment_latency.ops"))
            .unwrap();
    let analysis = crate::support::check_text("payment_latency.ops", &text);
    let playbook = analysis.program.playbook("payment_troubleshoot").unwrap();
    let names: Vec<&str> = playbook
        .tasks
        .iter()
        .map(|task| task.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["status", "logs", "deps", "diagnosis", "scale", "report"]
    );
    let scale = &playbook.tasks[4];
    assert_eq!(scale.depends_on, ["status", "logs"]);
    assert_eq!(scale.revert_after, Some(30 * 60 * 1000));
    assert!(
        scale.output.is_optional(),
        "a task with `when` may be skipped"
    );
    let rule = &analysis.program.rules[0];
    assert_eq!(rule.cooldown.as_ref().unwrap().value, 15 * 60 * 1000);
    assert_eq!(rule.alert_names, ["Service_Latency_Exceeded"]);
}
