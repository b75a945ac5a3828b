//! Plans of the examples as snapshots (text and JSON), determinism, and the semantic diff.

use crate::support::{ops_files, render, repo_root};
use medic_compiler::Source;
use medic_compiler::plan::{self, Plan};

fn plan_of(paths: &[std::path::PathBuf]) -> Plan {
    let sources = paths
        .iter()
        .map(|path| {
            let name = path
                .strip_prefix(repo_root())
                .unwrap()
                .display()
                .to_string();
            Source::new(name, std::fs::read_to_string(path).unwrap())
        })
        .collect();
    let analysis = medic_compiler::check(sources);
    assert_eq!(analysis.errors(), 0, "{}", render(&analysis));
    plan::lower(&analysis).unwrap()
}

#[test]
fn example_plans() {
    insta::glob!("../../../examples", "*.ops", |path| {
        // Tests are not part of a plan.
        if path.to_string_lossy().ends_with("_test.ops") {
            return;
        }
        let plan = plan_of(&[path.to_path_buf()]);
        insta::assert_snapshot!("text", plan::render::text(&plan));
        insta::assert_snapshot!("json", plan.to_json());
    });
}

#[test]
fn plans_are_deterministic_and_round_trip() {
    let files = ops_files("examples");
    let first = plan_of(&files).to_json();
    let second = plan_of(&files).to_json();
    assert_eq!(first, second);
    let parsed = Plan::from_json(&first).unwrap();
    assert_eq!(
        parsed.to_json(),
        first,
        "reading and writing a plan must not change it"
    );
    let mut resealed = parsed.clone();
    resealed.seal();
    assert_eq!(
        resealed.content_hash, parsed.content_hash,
        "the hash covers exactly the content"
    );
}

#[test]
fn old_format_versions_are_refused() {
    let json = plan_of(&ops_files("examples"))
        .to_json()
        .replace("\"format_version\": 1", "\"format_version\": 99");
    let error = Plan::from_json(&json).unwrap_err();
    assert!(error.contains("version 99 is not supported"), "{error}");
    assert!(
        Plan::from_json("{}")
            .unwrap_err()
            .contains("no format_version")
    );
    assert!(
        Plan::from_json("not json")
            .unwrap_err()
            .starts_with("not a plan")
    );
}

#[test]
fn tasks_are_in_dependency_order_with_typed_edges() {
    let plan = plan_of(&[repo_root().join("examples/payment_latency.ops")]);
    let playbook = plan.playbook("payment_troubleshoot").unwrap();
    let ids: Vec<&str> = playbook.tasks.iter().map(|task| task.id.as_str()).collect();
    assert_eq!(
        ids,
        ["status", "logs", "deps", "diagnosis", "scale", "report"]
    );
    let edges: Vec<(String, String, String)> = playbook
        .edges
        .iter()
        .map(|edge| {
            (
                edge.from.clone(),
                edge.to.clone(),
                format!("{:?}", edge.kind),
            )
        })
        .collect();
    assert!(edges.contains(&("logs".into(), "deps".into(), "After".into())));
    assert!(edges.contains(&("status".into(), "scale".into(), "Data".into())));
    assert!(edges.contains(&("scale".into(), "report".into(), "Data".into())));
    assert!(edges.contains(&("diagnosis".into(), "report".into(), "Data".into())));
    let scale = playbook.task("scale").unwrap();
    assert_eq!(plan::render::ir_text(&scale.args["max"]), "5");
    assert_eq!(scale.revert_after_ms, Some(30 * 60_000));
}

#[test]
fn plan_diff_names_changes_in_plain_words() {
    let before = plan_of(&[repo_root().join("tests/plan-diff/order_cpu.before.ops")]);
    let after = plan_of(&[repo_root().join("tests/plan-diff/order_cpu.after.ops")]);
    let changes: Vec<String> = plan::diff::diff(&before, &after)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(changes.contains(
        &"playbook scale_up, task scale: argument `max` changed from 5 to 10".to_string()
    ));
    assert!(
        changes
            .contains(&"rule order_cpu: cooldown removed (was 15m per alert.service)".to_string())
    );
    insta::assert_snapshot!(changes.join("\n"));
    assert!(plan::diff::diff(&before, &before).is_empty());
}

#[test]
fn a_cycle_is_reported_with_every_task_on_it() {
    let text = "import std.{http}\n\nplaybook p() {\n  task a = http.get(\"x\") {\n    after c\n  }\n  task b = http.get(\"y\") {\n    after a\n  }\n  task c = http.get(\"z\") {\n    when b.ok\n  }\n}\n";
    let analysis = crate::support::check_text("cycle.ops", text);
    let cycle = analysis
        .diagnostics
        .iter()
        .find(|diagnostic| diagnostic.code() == "ops::graph::cycle")
        .expect("a cycle diagnostic");
    assert!(
        cycle.message().contains("`a` → `b` → `c` → `a`"),
        "{}",
        cycle.message()
    );
    assert_eq!(cycle.labels().len(), 3, "one label per task on the cycle");
    assert!(
        plan::lower(&analysis).is_err(),
        "no plan for a program with errors"
    );
}

#[test]
fn every_playbook_is_an_acyclic_petgraph_in_task_order() {
    let plan = plan_of(&ops_files("examples"));
    for playbook in &plan.playbooks {
        let dag = playbook.dag();
        assert_eq!(dag.node_count(), playbook.tasks.len());
        assert_eq!(dag.edge_count(), playbook.edges.len());
        assert!(
            !petgraph::algo::is_cyclic_directed(&dag),
            "{}",
            playbook.name
        );
        // The stored order is a topological order of the graph.
        for edge in dag.edge_indices() {
            let (from, to) = dag.edge_endpoints(edge).unwrap();
            assert!(
                dag[from] < dag[to],
                "{}: {} before {}",
                playbook.name,
                dag[from],
                dag[to]
            );
        }
    }
}

#[test]
fn values_interpolated_into_urls_are_escaped_for_where_they_stand() {
    let source = r##"import std.{http}

rule probe {
  on alert "Down"
  run probe(host: alert.instance, item: alert.service, query: alert.summary, base: "http://svc:9000/v2")
  cooldown 1m
}

playbook probe(host: String, item: String, query: String, base: Url) {
  task path = http.get("http://{host}/items/{item}/status?q={query}")
  task fixed = http.get("https://api.example.com/items/{item}")
  task whole = http.get("{base}/health")
}
"##;
    let analysis = medic_compiler::check(vec![Source::new("probe.ops", source)]);
    assert_eq!(analysis.errors(), 0, "{}", render(&analysis));
    let plan = plan::lower(&analysis).unwrap();
    let playbook = plan.playbook("probe").unwrap();
    let base = plan::Value::Url(plan::UrlValue {
        href: "http://svc:9000/v2".into(),
        host_from_data: false,
    });
    let url = |task: &str, vars: &[(&str, &str)]| {
        let mut vars: std::collections::BTreeMap<String, plan::Value> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), plan::Value::String(value.to_string())))
            .collect();
        vars.insert("base".into(), base.clone());
        match playbook.task(task).unwrap().args["url"].eval(&vars) {
            Ok(plan::Value::Url(url)) => Ok((url.href, url.host_from_data)),
            Ok(other) => Err(format!("not a Url: {other:?}")),
            Err(error) => Err(error.to_string()),
        }
    };
    let normal = [
        ("host", "10.0.0.1:8080"),
        ("item", "cart"),
        ("query", "p99 > 1s"),
    ];
    assert_eq!(
        url("path", &normal),
        Ok((
            "http://10.0.0.1:8080/items/cart/status?q=p99%20%3E%201s".to_string(),
            true
        ))
    );
    // The host of `fixed` is the runbook's own: no allow-list is needed for it.
    assert_eq!(
        url("fixed", &normal),
        Ok(("https://api.example.com/items/cart".to_string(), false))
    );
    // Alert data cannot climb out of its segment, add a query, or move the host.
    let hostile = [
        ("host", "10.0.0.1:8080"),
        ("item", "../admin?x=1#"),
        ("query", "a&drop=1"),
    ];
    assert_eq!(
        url("path", &hostile),
        Ok((
            "http://10.0.0.1:8080/items/..%2Fadmin%3Fx%3D1%23/status?q=a%26drop%3D1".to_string(),
            true
        ))
    );
    for dots in ["..", "."] {
        let climbing = [("host", "10.0.0.1"), ("item", dots), ("query", "y")];
        assert_eq!(
            url("fixed", &climbing),
            Err(format!(
                "a URL path segment {dots:?} would move the request up or across the path"
            ))
        );
    }
    let moved = [
        ("host", "evil.example@internal"),
        ("item", "x"),
        ("query", "y"),
    ];
    assert_eq!(
        url("path", &moved),
        Err("\"evil.example@internal\" cannot stand as a URL's host".to_string())
    );
    let with_path = [
        ("host", "127.0.0.1:18081/attacker-chosen-path?x="),
        ("item", "x"),
        ("query", "y"),
    ];
    assert!(
        url("path", &with_path)
            .unwrap_err()
            .contains("cannot stand as a URL's host")
    );
    // A base URL is extended after its path; its host stays its own.
    assert_eq!(
        url("whole", &normal),
        Ok(("http://svc:9000/v2/health".to_string(), false))
    );
    // The plan text still reads like the source.
    assert!(
        plan::render::text(&plan).contains(r#"url: "http://{host}/items/{item}/status?q={query}""#),
        "{}",
        plan::render::text(&plan)
    );
}

#[test]
fn urls_whose_origin_is_not_written_in_the_runbook_are_compile_errors() {
    let cases = [
        // A String parameter used as a URL: it could point anywhere.
        (
            "playbook p(url: String) {\n  task t = http.get(url)\n}\n",
            "ops::type::mismatch",
        ),
        // A URL that starts with a String value.
        (
            "playbook p(base: String) {\n  task t = http.get(\"{base}/health\")\n}\n",
            "ops::type::url_origin",
        ),
        // No scheme.
        (
            "playbook p() {\n  task t = http.get(\"example.com/health\")\n}\n",
            "ops::type::url_origin",
        ),
        (
            "playbook p() {\n  task t = http.get(\"ftp://example.com/x\")\n}\n",
            "ops::type::url_origin",
        ),
        // Credentials in the URL.
        (
            "playbook p(user: String) {\n  task t = http.get(\"http://{user}@example.com/x\")\n}\n",
            "ops::type::url_userinfo",
        ),
        // A backslash, which URL parsers read as a path separator.
        (
            "playbook p(id: String) {\n  task t = http.get(\"http://api.internal\\\\v1\\\\{id}\")\n}\n",
            "ops::type::url_origin",
        ),
        // Text after a base URL that could extend its host.
        (
            "playbook p(base: Url) {\n  task t = http.get(\"{base}.evil.com/x\")\n}\n",
            "ops::type::url_origin",
        ),
        // A rule passing a String where the playbook takes a Url.
        (
            "rule r {\n  on alert \"A\"\n  run p(url: alert.service)\n}\nplaybook p(url: Url) {\n  task t = http.get(url)\n}\n",
            "ops::type::mismatch",
        ),
    ];
    for (body, code) in cases {
        let source = format!("import std.{{http}}\n\n{body}");
        let analysis = medic_compiler::check(vec![Source::new("url.ops", &source)]);
        let codes: Vec<String> = analysis
            .diagnostics
            .iter()
            .map(|diagnostic| diagnostic.code().to_string())
            .filter(|code| !code.starts_with("ops::lint::"))
            .collect();
        assert_eq!(codes, vec![code.to_string()], "{source}");
    }
    // A rule may build a URL from alert data for a Url parameter; its host is then checked
    // against the configuration when the request is made.
    let source = "import std.{http}\n\nrule r {\n  on alert \"A\"\n  run p(url: \"http://{alert.service}/health\")\n}\nplaybook p(url: Url) {\n  task t = http.get(url)\n}\n";
    let analysis = medic_compiler::check(vec![Source::new("url.ops", source)]);
    assert_eq!(analysis.errors(), 0, "{}", render(&analysis));
}

#[test]
fn a_playbook_that_only_looks_checks_clean_and_one_that_acts_is_told_of_unread_checks() {
    let looks = r#"import std.{diagnose, http}

rule api_slow {
  on alert "ApiSlow"
  run look(service: alert.service, since: alert.starts_at)
}

playbook look(service: String, since: Time) {
  task walk = diagnose.walk(service: service, since: since)
  task health = http.get("https://status.example.com/{service}")
}
"#;
    let analysis = medic_compiler::check(vec![Source::new("looks.ops", looks)]);
    assert!(analysis.diagnostics.is_empty(), "{}", render(&analysis));
    let acts = looks
        .replace("import std.{diagnose, http}", "import std.{diagnose, http, notify}")
        .replace(
            "  task health",
            "  task tell = notify.slack(channel: \"#oncall\", text: \"{walk.summary}\")\n  task health",
        )
        .replace("  run look(", "  cooldown 5m\n  run look(");
    let analysis = medic_compiler::check(vec![Source::new("acts.ops", &acts)]);
    let codes: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code())
        .collect();
    assert_eq!(codes, ["ops::lint::unused_task"], "{}", render(&analysis));
}

#[test]
fn dots_in_a_query_value_climb_nothing() {
    let source = "import std.{http}\n\nplaybook p(next: String) {\n  task t = http.get(\"https://login.example.com/start?next=/{next}\")\n}\n";
    let analysis = medic_compiler::check(vec![Source::new("q.ops", source)]);
    let plan = plan::lower(&analysis).unwrap();
    let vars: std::collections::BTreeMap<String, plan::Value> =
        [("next".to_string(), plan::Value::String("..".into()))].into();
    let url = plan.playbook("p").unwrap().task("t").unwrap().args["url"]
        .eval(&vars)
        .unwrap();
    assert_eq!(url.to_text(), "https://login.example.com/start?next=/..");
}

#[test]
fn percents_read_with_at_most_two_decimals_and_floats_exactly() {
    let text = |value: plan::Value| value.to_text();
    assert_eq!(text(plan::Value::Percent(32.075471698113205)), "32.08%");
    assert_eq!(text(plan::Value::Percent(90.0)), "90%");
    assert_eq!(text(plan::Value::Percent(0.5)), "0.5%");
    assert_eq!(text(plan::Value::Percent(-0.001)), "0%");
    assert_eq!(text(plan::Value::Percent(99.999)), "100%");
    // A Float may go into PromQL or a URL: it keeps every digit.
    assert_eq!(
        text(plan::Value::Float(0.9106771209579299)),
        "0.9106771209579299"
    );
}
