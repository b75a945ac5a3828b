//! Front-end speed: parse and check a generated program of 10,000 rules and 1,000
//! playbooks (target: under 1 s on a 2-core machine), and raw parse throughput.
//!
//! Run with `cargo bench -p medic-compiler --bench check`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use medic_compiler::Source;

fn main() {
    divan::main();
}

/// A realistic program: 1,000 playbooks of five tasks (queries, an action with guardrails,
/// a notification), 10,000 rules spread over them with conditions on several fields.
pub fn generate(rules: usize, playbooks: usize) -> String {
    let mut text = String::from("import std.{http, logs, trace, k8s, notify}\n\n");
    for index in 0..playbooks {
        text.push_str(&format!(
            "/// Playbook {index}.\nplaybook pb{index}(service: String, since: Time) {{\n  timeout 10m\n\n  task status = http.get(\"http://{{service}}/health\") {{\n    retry 3 backoff 2s\n  }}\n  task logs = logs.aggregate(service: service, since: since, keywords: [\"ERROR\", \"TIMEOUT\"]) {{\n    on failure continue\n  }}\n  task deps = trace.dependencies(service, direction: downstream) {{\n    after logs\n  }}\n  task scale = k8s.scale(deployment: service, by: 1, max: 5) {{\n    when status.ok and (logs.error_rate ?? 100%) < 10%\n    revert after 30m\n  }}\n  task report = notify.slack(channel: \"#oncall\", text: \"{{scale.summary ?? \"skipped\"}} {{deps.services}}\")\n}}\n\n"
        ));
    }
    for index in 0..rules {
        let playbook = index % playbooks;
        text.push_str(&format!(
            "/// Rule {index}.\nrule r{index} {{\n  on alert \"Alert_{}\"\n  when alert.service == \"svc-{index}\" and alert.severity >= warning and alert.value > {}ms\n  run pb{playbook}(service: alert.service, since: alert.starts_at - 10m)\n  cooldown 15m per alert.service\n}}\n\n",
            index % 500,
            100 + index % 900,
        ));
    }
    text
}

#[divan::bench(sample_count = 5)]
fn check_10k_rules_1k_playbooks(bencher: divan::Bencher) {
    let text = generate(10_000, 1_000);
    let analysis = medic_compiler::check(vec![Source::new("gen.ops", text.clone())]);
    assert_eq!(analysis.errors(), 0);
    bencher.bench(|| medic_compiler::check(vec![Source::new("gen.ops", text.clone())]));
}

#[divan::bench(sample_count = 5)]
fn parse_only_throughput(bencher: divan::Bencher) {
    let text = generate(10_000, 1_000);
    bencher
        .counter(divan::counter::BytesCount::of_str(&text))
        .bench(|| {
            let mut diagnostics = Vec::new();
            medic_compiler::parser::parse(medic_compiler::FileId(0), &text, &mut diagnostics)
        });
}
