//! The standard library declarations: they parse and check clean, every function has a doc
//! comment and a record output, and every function can be called from a task.

use crate::support::{check_text, render};
use medic_compiler::types::Type;

#[test]
fn stdlib_is_clean_and_documented() {
    let analysis = check_text("empty.ops", "");
    assert!(analysis.diagnostics.is_empty(), "{}", render(&analysis));
    assert_eq!(
        analysis.env.modules.keys().cloned().collect::<Vec<_>>(),
        [
            "alert", "diagnose", "http", "k8s", "logs", "notify", "prom", "trace"
        ]
    );
    for function in &analysis.env.functions {
        assert!(
            function.doc.is_some(),
            "{} has no doc comment",
            function.qualified_name()
        );
        assert!(
            matches!(function.returns, Type::Record(_)),
            "{} must return a record",
            function.qualified_name()
        );
    }
    for record in &analysis.env.records {
        assert!(
            record.doc.is_some(),
            "record {}.{} has no doc comment",
            record.module,
            record.name
        );
    }
    for def in &analysis.env.enums {
        assert!(
            def.doc.is_some(),
            "enum {}.{} has no doc comment",
            def.module,
            def.name
        );
    }
    assert!(
        analysis
            .env
            .modules
            .values()
            .all(|module| module.doc.is_some())
    );
}

/// Builds a call of every stdlib function with a value for each required parameter, in a
/// playbook whose rule has a cooldown, and checks that the whole program is clean.
#[test]
fn every_stdlib_function_can_be_called_from_a_task() {
    let analysis = check_text("empty.ops", "");
    let env = &analysis.env;
    let mut program =
        String::from("import std.{diagnose, http, k8s, logs, notify, prom, trace}\n\n");
    program.push_str(
        "rule every {\n  on alert \"A\"\n  run all(when_: alert.starts_at)\n  cooldown 5m\n}\n\n",
    );
    program.push_str("playbook all(when_: Time) {\n");
    let mut names = Vec::new();
    for (index, function) in env.functions.iter().enumerate() {
        let args: Vec<String> = function
            .params
            .iter()
            .filter(|param| param.required())
            .map(|param| {
                let value = match &param.ty {
                    Type::String => "\"x\"".to_string(),
                    Type::Url => "\"http://x\"".to_string(),
                    Type::Int => "1".to_string(),
                    Type::Time => "when_".to_string(),
                    Type::List(_) => "[\"x\"]".to_string(),
                    Type::Duration => "1m".to_string(),
                    other => panic!("no sample value for {other:?}"),
                };
                format!("{}: {value}", param.name)
            })
            .collect();
        let name = format!("t{index}");
        program.push_str(&format!(
            "  task {name} = {}({})\n",
            function.qualified_name(),
            args.join(", ")
        ));
        names.push(name);
    }
    let reads: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    program.push_str(&format!(
        "  task done = notify.slack(channel: \"#x\", text: \"done\") {{\n    after {}\n  }}\n}}\n",
        reads.join(", ")
    ));
    let checked = check_text("all.ops", &program);
    assert!(
        checked.diagnostics.is_empty(),
        "{program}\n{}",
        render(&checked)
    );
    assert_eq!(
        checked.program.playbooks[0].tasks.len(),
        env.functions.len() + 1
    );
}
