//! The backlog: what waits (alerts to match, runs for a slot) is bounded by
//! `queue_capacity` and shown in `/metrics` with its age, so an alert storm is refused
//! while the engine is behind instead of queued for minutes.

use medic_compiler::plan::{self, Value};
use medic_runtime::engine::{Engine, EngineConfig, EngineError};
use medic_runtime::executor::{CallFuture, Clock, Toolbox};
use medic_runtime::ingest;
use medic_runtime::journal::{Journal, JournalHandle};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const SOURCE: &str = r#"import std.{http}

rule hot {
  on alert "Hot"
  run act(fingerprint: alert.fingerprint)
  cooldown 1m per alert.fingerprint
}

playbook act(fingerprint: String) {
  task call = http.post(url: "http://127.0.0.1:9/{fingerprint}", body: "")
}
"#;

/// Answers a call only when the test lets one through.
struct Gate(Arc<Semaphore>);

impl Toolbox for Gate {
    fn call(&self, _function: &str, _args: BTreeMap<String, Value>) -> CallFuture {
        let gate = Arc::clone(&self.0);
        Box::pin(async move {
            let _permit = gate.acquire().await;
            Ok(Value::record([("status".to_string(), Value::Int(200))]))
        })
    }
}

fn alerts(fingerprints: &[&str]) -> Vec<ingest::Alert> {
    let alerts: Vec<serde_json::Value> = fingerprints
        .iter()
        .map(|fingerprint| {
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": "Hot", "service": "api", "instance": fingerprint},
                "annotations": {},
                "startsAt": "2026-11-27T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    let body = serde_json::json!({
        "receiver": "medic", "status": "firing", "alerts": alerts, "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0,
    });
    ingest::alertmanager(body.to_string().as_bytes()).unwrap()
}

fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_waiting_for_a_slot_count_against_the_queue_and_show_in_metrics() {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("x.ops", SOURCE)]);
    let plan = plan::lower(&analysis).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let journal = JournalHandle::spawn(Journal::in_memory().unwrap()).unwrap();
    let engine = Engine::start(
        plan,
        journal,
        Arc::new(Gate(Arc::clone(&gate))),
        Clock::system(),
        EngineConfig {
            queue_capacity: 3,
            max_runs: 1,
            actions_per_minute: None,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    engine
        .ingest("alertmanager", alerts(&["a", "b", "c"]))
        .await
        .unwrap();
    // One run holds the only slot; the other two wait for it.
    let mut waiting = 0.0;
    for _ in 0..500 {
        engine.refresh_backlog_metrics();
        waiting = gauge(&engine.metrics().render(), "medic_backlog{kind=\"runs\"}");
        if waiting == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waiting, 2.0, "{}", engine.metrics().render());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    engine.refresh_backlog_metrics();
    let metrics = engine.metrics().render();
    assert!(
        gauge(&metrics, "medic_backlog_oldest_seconds") >= 1.0,
        "{metrics}"
    );
    assert!(engine.backlog_age_ms().unwrap() >= 1000);

    // Two waiting runs and two new alerts are more than the queue's 3: refused, nothing
    // journaled; one more alert fits.
    let refused = engine.ingest("alertmanager", alerts(&["d", "e"])).await;
    assert!(
        matches!(refused, Err(EngineError::QueueFull { capacity: 3, oldest_seconds }) if oldest_seconds >= 1),
        "{refused:?}"
    );
    let stored = engine
        .journal()
        .call(|journal| journal.alert_count())
        .await
        .unwrap();
    assert_eq!(stored, 3);
    engine.ingest("alertmanager", alerts(&["f"])).await.unwrap();

    // Once the runs go through, the backlog empties.
    gate.add_permits(100);
    tokio::time::timeout(Duration::from_secs(10), engine.idle())
        .await
        .unwrap();
    engine.refresh_backlog_metrics();
    let metrics = engine.metrics().render();
    assert_eq!(
        gauge(&metrics, "medic_backlog{kind=\"runs\"}"),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        gauge(&metrics, "medic_backlog{kind=\"alerts\"}"),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        gauge(&metrics, "medic_backlog_oldest_seconds"),
        0.0,
        "{metrics}"
    );
    assert_eq!(engine.backlog_age_ms(), None);
}
