//! `medic demo` as a new user and CI run it: the four incidents of the original runbook
//! against the sandbox world, checked from the journal it leaves (`--store`), not from what
//! it prints. The demo's own exit code covers what it saw in the world (the scale-ups
//! applied and reverted there, the disk freed).

use super::medic;
use medic_compiler::plan::Value;
use medic_runtime::executor::{RunReport, TaskOutcome};

struct Run {
    id: i64,
    state: String,
    report: RunReport,
}

fn runs(store: &std::path::Path) -> std::collections::BTreeMap<String, Vec<Run>> {
    let db = rusqlite::Connection::open(store).unwrap();
    let mut statement = db
        .prepare("SELECT id, rule, state, report FROM runs ORDER BY id")
        .unwrap();
    let mut runs = std::collections::BTreeMap::<String, Vec<Run>>::new();
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, rule, state, report) = row.unwrap();
        let report: RunReport =
            serde_json::from_str(&report.expect("a finished run has a report")).unwrap();
        runs.entry(rule)
            .or_default()
            .push(Run { id, state, report });
    }
    runs
}

fn reverts(store: &std::path::Path, run: i64) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(store).unwrap();
    let mut statement = db
        .prepare("SELECT task, state FROM reverts WHERE run_id = ?1 ORDER BY id")
        .unwrap();
    statement
        .query_map([run], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn output<'r>(run: &'r Run, task: &str) -> &'r Value {
    let task = run
        .report
        .tasks
        .iter()
        .find(|candidate| candidate.id == task)
        .unwrap_or_else(|| panic!("run {} has no task {task}", run.id));
    match &task.outcome {
        TaskOutcome::Succeeded { output } => output,
        other => panic!("task {} of run {}: {other:?}", task.id, run.id),
    }
}

fn field<'v>(value: &'v Value, name: &str) -> &'v Value {
    match value {
        Value::Record(fields) => fields
            .get(name)
            .unwrap_or_else(|| panic!("no field {name} in {value:?}")),
        other => panic!("not a record: {other:?}"),
    }
}

fn float(value: &Value) -> f64 {
    match value {
        Value::Float(number) => *number,
        Value::Int(number) => *number as f64,
        Value::Percent(points) => points / 100.0,
        other => panic!("not a number: {other:?}"),
    }
}

/// Runs `medic ARGS`, killed if it has not ended within `limit`; its status and output.
fn demo_within(args: &[&str], limit: std::time::Duration) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "medic demo did not end within {limit:?}:\n{}\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    (
        status,
        format!("{}\n{}", out.join().unwrap(), err.join().unwrap()),
    )
}

#[test]
fn the_demo_handles_the_four_incidents_and_the_journal_shows_how() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo.db");
    // Half the default speed: other tests share the machine, and at 60× a stalled second is
    // a minute of the shop's time.
    let (status, printed) = demo_within(
        &["demo", "--speed", "30", "--store", store.to_str().unwrap()],
        std::time::Duration::from_secs(300),
    );
    assert!(status.success(), "{printed}");

    let runs = runs(&store);
    let rules: Vec<&str> = runs.keys().map(String::as_str).collect();
    assert_eq!(
        rules,
        ["disk_full", "inventory_db", "order_cpu", "payment_latency"],
        "{printed}"
    );
    for (rule, runs) in &runs {
        assert_eq!(
            runs.len(),
            1,
            "one run of {rule}, exactly once per incident: {printed}"
        );
        assert_eq!(runs[0].state, "succeeded", "{rule}: {printed}");
    }

    // order-service CPU: one more replica, told on Slack, reverted when the alert resolved.
    let cpu = &runs["order_cpu"][0];
    let scale = output(cpu, "scale");
    assert_eq!(field(scale, "from"), &Value::Int(2));
    assert_eq!(field(scale, "to"), &Value::Int(3));
    output(cpu, "tell");
    assert_eq!(
        reverts(&store, cpu.id),
        [("scale".to_string(), "reverted".to_string())]
    );

    // payment-gateway latency: healthy, logs read, the walk names order-service, scaled
    // through its HPA while the alert lasted, reported by mail.
    let latency = &runs["payment_latency"][0];
    assert_eq!(field(output(latency, "status"), "ok"), &Value::Bool(true));
    assert!(float(field(output(latency, "logs"), "error_rate")) < 0.10);
    assert_eq!(
        field(output(latency, "diagnosis"), "root_cause"),
        &Value::String("order-service".into())
    );
    let scale = output(latency, "scale");
    assert_eq!(
        field(scale, "autoscaler"),
        &Value::String("payment-gateway".into())
    );
    assert_eq!(field(scale, "to"), &Value::Int(3));
    output(latency, "report");
    assert_eq!(
        reverts(&store, latency.id),
        [("scale".to_string(), "reverted".to_string())]
    );

    // Disk full: the cleanup freed the disk, as Prometheus saw before and after.
    let disk = &runs["disk_full"][0];
    output(disk, "cleanup");
    assert!(float(field(output(disk, "before"), "value")) > 0.85);
    assert!(float(field(output(disk, "after_cleanup"), "value")) < 0.85);

    // inventory-db: saturated, the walk names it, the owners paged.
    let database = &runs["inventory_db"][0];
    assert!(float(field(output(database, "db"), "saturation")) > 0.9);
    assert_eq!(
        field(output(database, "walk"), "root_cause"),
        &Value::String("inventory-db".into())
    );
    output(database, "page");
}

#[test]
fn an_unknown_incident_is_refused_with_the_names_it_knows() {
    let demo = medic(&["demo", "--incident", "meteor-strike"]);
    assert_eq!(demo.status.code(), Some(2), "a usage error: {demo:?}");
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(
        stderr.contains("meteor-strike") && stderr.contains("payment-latency"),
        "{stderr}"
    );
}

#[test]
fn a_journal_kept_with_store_can_be_played_again() {
    // An earlier demo's runs lie ahead of wall time (its clock ran fast); the next demo's
    // clock starts after them instead of running into their cooldowns.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo.db");
    let args = [
        "demo",
        "--incident",
        "disk-full",
        "--store",
        store.to_str().unwrap(),
    ];
    for attempt in 1..=2 {
        let (status, printed) = demo_within(&args, std::time::Duration::from_secs(120));
        assert!(status.success(), "attempt {attempt}: {printed}");
    }
    let runs = runs(&store);
    assert_eq!(runs["disk_full"].len(), 2);
    assert!(runs["disk_full"].iter().all(|run| run.state == "succeeded"));
}
