//! The run graph's layout: a task in the column after its deepest dependency, in plan
//! order within a column, and its state as its class.

use medic_runtime::web::dag;
use std::collections::BTreeMap;

const SOURCE: &str = r##"
import std.{http, k8s, notify}

rule slow {
  on alert "Slow"
  run look(service: alert.service)
  cooldown 10m per alert.service
}

playbook look(service: String) {
  task health = http.get("http://api.internal/health")
  task again = http.get("http://api.internal/ready")
  task scale = k8s.scale(deployment: service, by: 1, max: 5) {
    when health.ok and again.ok
  }
  task tell = notify.slack(channel: "#oncall", text: "{scale.summary ?? "not scaled"}")
}
"##;

#[test]
fn tasks_are_laid_out_by_depth_and_drawn_with_their_state() {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("x.ops", SOURCE)]);
    assert_eq!(analysis.errors(), 0, "{:?}", analysis.diagnostics);
    let plan = medic_compiler::plan::lower(&analysis).unwrap();
    let playbook = &plan.playbooks[0];
    let layout = dag::layout(playbook);
    assert_eq!(layout["health"], (0, 0));
    assert_eq!(layout["again"], (0, 1));
    assert_eq!(layout["scale"], (1, 0));
    assert_eq!(layout["tell"], (2, 0));
    let states = BTreeMap::from([
        ("health".to_string(), "succeeded".to_string()),
        ("scale".to_string(), "awaiting_approval".to_string()),
    ]);
    let svg = dag::svg(playbook, &states, false).into_string();
    assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
    // Three edges: health → scale, again → scale, scale → tell.
    assert_eq!(svg.matches("<line").count(), 3, "{svg}");
    assert!(svg.contains("class=\"task ok\""), "{svg}");
    assert!(svg.contains("class=\"task waiting\""), "{svg}");
    assert_eq!(svg.matches("class=\"task pending\"").count(), 2, "{svg}");
}

/// A playbook whose first task fans out to `width` checks, which all feed one report.
fn fan_out(width: usize) -> medic_compiler::plan::Playbook {
    let mut source = String::from(
        "import std.{http, notify}\n\nrule wide {\n  on alert \"Wide\"\n  run wide()\n  cooldown 10m per alert.service\n}\n\nplaybook wide() {\n  task start = http.get(\"http://api.internal/start\")\n",
    );
    let mut checks = Vec::new();
    for index in 0..width {
        source.push_str(&format!(
            "  task check{index} = http.get(\"http://api.internal/{index}\") {{\n    after start\n  }}\n"
        ));
        checks.push(format!("{{check{index}.status}}"));
    }
    source.push_str(&format!(
        "  task report = notify.slack(channel: \"#oncall\", text: \"{}\")\n}}\n",
        checks.join(" ")
    ));
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("wide.ops", &source)]);
    assert_eq!(analysis.errors(), 0, "{:?}\n{source}", analysis.diagnostics);
    medic_compiler::plan::lower(&analysis)
        .unwrap()
        .playbooks
        .remove(0)
}

#[test]
fn a_wide_fan_out_is_folded_keeping_the_tasks_that_need_a_look() {
    let playbook = fan_out(30);
    let mut states = BTreeMap::new();
    for index in 0..30 {
        states.insert(format!("check{index}"), "succeeded".to_string());
    }
    states.insert("check17".to_string(), "failed".to_string());
    states.insert("check25".to_string(), "awaiting_approval".to_string());
    let folded = dag::fold(&playbook, &states, dag::FAN_LIMIT);
    let column: Vec<&String> = folded
        .placed
        .iter()
        .filter(|(_, (column, _))| *column == 1)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(column.len(), dag::FAN_LIMIT - 1, "{column:?}");
    assert!(
        folded.placed.contains_key("check17"),
        "the failed task stays"
    );
    assert!(
        folded.placed.contains_key("check25"),
        "the waiting task stays"
    );
    let (row, hidden) = &folded.hidden[&1];
    assert_eq!(*row, (dag::FAN_LIMIT - 1) as i64);
    assert_eq!(hidden.len(), 30 - (dag::FAN_LIMIT - 1));
    let svg = dag::svg(&playbook, &states, false).into_string();
    assert!(svg.contains("+23 more"), "{svg}");
    assert!(svg.contains("23 succeeded"), "{svg}");
    // start + 7 checks + the summary + report; every edge into the summary drawn once.
    assert_eq!(svg.matches("<rect").count(), 10, "{svg}");
    assert_eq!(svg.matches("<line").count(), 7 + 1 + 7 + 1, "{svg}");
    // Asked for, every task has its box.
    let all = dag::svg(&playbook, &states, true).into_string();
    assert_eq!(all.matches("<rect").count(), 32, "{all}");
    assert!(!all.contains("more"), "{all}");
}
