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
    let svg = dag::svg(playbook, &states).into_string();
    assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
    // Three edges: health → scale, again → scale, scale → tell.
    assert_eq!(svg.matches("<line").count(), 3, "{svg}");
    assert!(svg.contains("class=\"task ok\""), "{svg}");
    assert!(svg.contains("class=\"task waiting\""), "{svg}");
    assert_eq!(svg.matches("class=\"task pending\"").count(), 2, "{svg}");
}
