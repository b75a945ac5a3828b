//! The engine end to end on tokio's paused clock: Alertmanager payloads in, runs, suppressions,
//! reverts and metrics out, with a recording toolbox and a real journal (in memory, or on disk
//! for the restarts).
//!
//! The journal answers from its own thread, and the paused clock jumps to the next timer as
//! soon as every task waits, even when one waits for that thread. So the tests wait for the
//! journal in real time with the clock held still (`eventually`), ask the journal whether
//! every alert was matched (`settle`, instead of `Engine::idle`), and keep a short timer
//! armed (`Ticker`) while a 30-minute revert timer is pending, so that the engine's own
//! journal calls cannot fire it early.

use medic_compiler::plan::{self, Plan, Value};
use medic_runtime::engine::{self, ApprovalGroups, Engine, EngineConfig, EngineError};
use medic_runtime::executor::{
    CallError, CallFuture, Clock, Decision, RunOutcome, RunReport, Toolbox,
};
use medic_runtime::ingest::{self, Alert};
use medic_runtime::journal::{Journal, JournalHandle, RevertRow};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The approver of the tests that are not about approval groups.
const UNENFORCED: ApprovalGroups = ApprovalGroups::Unenforced;

/// 2026-11-27T11:46:40Z.
const CLOCK_START: i64 = 1_795_780_000_000;

const SOURCE: &str = r##"
import std.{http, k8s, notify}

/// Scales the service up and tells the team.
rule cpu {
  on alert "High_CPU_Usage"
  run scale_up(deployment: alert.service)
  cooldown 15m per alert.service
}

/// Tells the team when the CPU alert resolves.
rule cpu_resolved {
  on resolved alert "High_CPU_Usage"
  run tell(text: "{alert.service}: CPU back to normal")
  cooldown 1m
}

/// Scales up for half an hour.
rule backlog {
  on alert "Queue_Backlog"
  run scale_for_a_while(deployment: alert.service)
  cooldown 15m
}

/// Scales up for half an hour at most, and not after the alert resolved.
rule traffic {
  on alert "Traffic_Spike"
  run scale_while_firing(deployment: alert.service)
  cooldown 15m
}

/// Scales up once a human approved.
rule latency {
  on alert "Service_Latency_Exceeded"
  run gated(deployment: alert.service)
  cooldown 15m
}

/// Checks health, then tells the team.
rule errors {
  on alert "Error_Rate_High"
  run checked(deployment: alert.service)
  concurrency 1
}

/// Scales up, and hands over to a human when that fails.
rule escalating {
  on alert "Pods_Crashing"
  run escalating(deployment: alert.service)
  cooldown 15m
}

playbook escalating(deployment: String) {
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    on failure escalate
  }
}

/// Scales up for a while, then tells the team.
rule disk {
  on alert "Disk_Full"
  run scale_then_tell(deployment: alert.service)
  cooldown 15m
}

playbook scale_then_tell(deployment: String) {
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    revert after 30m
  }
  task tell = notify.slack(channel: "#oncall", text: "{scale.summary}")
}

playbook scale_up(deployment: String) {
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5)
  task tell = notify.slack(channel: "#oncall", text: "{scale.summary}")
}

playbook tell(text: String) {
  task tell = notify.slack(channel: "#oncall", text: text)
}

playbook scale_for_a_while(deployment: String) {
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    revert after 30m
  }
}

playbook scale_while_firing(deployment: String) {
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    revert after 30m
    revert on resolve
  }
}

playbook gated(deployment: String) {
  task health = http.get("http://{deployment}/health")
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    after health
    approval by "sre"
  }
  task tell = notify.slack(channel: "#oncall", text: "{scale.summary}")
}

/// Only looks: a query-only rule needs no cooldown.
rule probe {
  on alert "Probe"
  run probe(service: alert.service)
}

playbook probe(service: String) {
  task health = http.get("http://checks.internal/{service}")
}

/// Retries its action.
rule flapping {
  on alert "Flapping"
  run retrying(deployment: alert.service)
  cooldown 15m
}

playbook retrying(deployment: String) {
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    retry 3 backoff 1s
  }
}

playbook checked(deployment: String) {
  task health = http.get("http://{deployment}/health")
  task tell = notify.slack(channel: "#oncall", text: "{deployment}: health {health.status}")
}
"##;

fn plan() -> Plan {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("x.ops", SOURCE)]);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
    plan::lower(&analysis).unwrap()
}

/// An Alertmanager (version 4) webhook payload with one alert of the `order-service`.
fn payload(name: &str, status: &str, starts_at: &str) -> Vec<u8> {
    let labels = BTreeMap::from([
        ("alertname".to_string(), name.to_string()),
        ("service".to_string(), "order-service".to_string()),
        ("severity".to_string(), "critical".to_string()),
    ]);
    let ends_at = if status == "resolved" {
        "2026-11-27T13:00:00Z"
    } else {
        "0001-01-01T00:00:00Z"
    };
    let body = serde_json::json!({
        "receiver": "medic",
        "status": status,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": {"summary": "order-service runs hot", "value": "95%"},
            "startsAt": starts_at,
            "endsAt": ends_at,
            "generatorURL": "",
            "fingerprint": ingest::fingerprint_of(&labels),
        }],
        "groupLabels": {},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    });
    serde_json::to_vec(&body).unwrap()
}

fn alerts(body: &[u8]) -> Vec<Alert> {
    ingest::alertmanager(body).unwrap()
}

fn record(fields: &[(&str, Value)]) -> Value {
    Value::record(
        fields
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone())),
    )
}

fn scale_output() -> Value {
    record(&[
        ("from", Value::Int(3)),
        ("to", Value::Int(4)),
        ("changed", Value::Bool(true)),
        (
            "summary",
            Value::String("order-service: 3 → 4 replicas (max 5)".into()),
        ),
    ])
}

type Call = (String, BTreeMap<String, Value>);

/// A revert as the toolbox saw it: function, arguments of the action, output of the action.
type Revert = (String, BTreeMap<String, Value>, Value);

/// Answers `k8s.scale`, `notify.slack` and `http.get` at once and records every call and
/// revert. Calls of `held` functions wait for [`Recorder::release`]; calls of `hanging`
/// functions never return, as if the server died during them.
struct Recorder {
    calls: Mutex<Vec<Call>>,
    reverts: Mutex<Vec<Revert>>,
    held: BTreeSet<String>,
    hanging: BTreeSet<String>,
    failing: BTreeSet<String>,
    gate: Arc<Semaphore>,
    /// Calls in flight now, and the most ever in flight at once.
    in_flight: Arc<(
        std::sync::atomic::AtomicUsize,
        std::sync::atomic::AtomicUsize,
    )>,
    /// How many of the next reverts fail.
    revert_failures: std::sync::atomic::AtomicU32,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            calls: Mutex::new(Vec::new()),
            reverts: Mutex::new(Vec::new()),
            held: BTreeSet::new(),
            hanging: BTreeSet::new(),
            failing: BTreeSet::new(),
            gate: Arc::new(Semaphore::new(0)),
            in_flight: Arc::default(),
            revert_failures: std::sync::atomic::AtomicU32::new(0),
        }
    }

    fn holding(mut self, function: &str) -> Recorder {
        self.held.insert(function.into());
        self
    }

    fn failing(mut self, function: &str) -> Recorder {
        self.failing.insert(function.into());
        self
    }

    fn hanging(mut self, function: &str) -> Recorder {
        self.hanging.insert(function.into());
        self
    }

    /// Lets one held call through.
    fn release(&self) {
        self.gate.add_permits(1);
    }

    fn called(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(function, _)| function.clone())
            .collect()
    }

    fn args_of(&self, function: &str) -> BTreeMap<String, Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .find(|(name, _)| name == function)
            .unwrap()
            .1
            .clone()
    }

    fn reverts(&self) -> Vec<Revert> {
        self.reverts.lock().unwrap().clone()
    }
}

impl Toolbox for Recorder {
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture {
        self.calls
            .lock()
            .unwrap()
            .push((function.to_string(), args));
        let result = match function {
            _ if self.failing.contains(function) => {
                Err(CallError::Failed(format!("{function}: 403 forbidden")))
            }
            "k8s.scale" => Ok(scale_output()),
            "notify.slack" | "notify.webhook" => Ok(record(&[
                ("delivered", Value::Bool(true)),
                ("detail", Value::String("ok".into())),
            ])),
            "http.get" => Ok(record(&[
                ("ok", Value::Bool(true)),
                ("status", Value::Int(200)),
                ("latency", Value::Duration(12)),
                ("body", Value::String("healthy".into())),
            ])),
            other => Err(CallError::Unknown(other.into())),
        };
        let hangs = self.hanging.contains(function);
        let gate = self.held.contains(function).then(|| Arc::clone(&self.gate));
        let in_flight = Arc::clone(&self.in_flight);
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            let now = in_flight.0.fetch_add(1, SeqCst) + 1;
            in_flight.1.fetch_max(now, SeqCst);
            if hangs {
                std::future::pending::<()>().await;
            }
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            in_flight.0.fetch_sub(1, SeqCst);
            result
        })
    }

    fn revert(&self, function: &str, args: BTreeMap<String, Value>, output: Value) -> CallFuture {
        self.reverts
            .lock()
            .unwrap()
            .push((function.to_string(), args, output));
        let fail = self
            .revert_failures
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |left| left.checked_sub(1),
            )
            .is_ok();
        Box::pin(async move {
            if fail {
                return Err(CallError::Failed("the API server answered 503".into()));
            }
            Ok(Value::String("order-service: back to 3 replicas".into()))
        })
    }
}

/// Keeps a timer 10ms ahead while it lives. The paused clock jumps to the next timer when
/// every task waits, also when one waits for the journal's thread; with a 30-minute revert
/// timer armed, any journal call would otherwise fire it at once.
struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    fn start() -> Ticker {
        Ticker(tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Harness {
    engine: Engine,
    toolbox: Arc<Recorder>,
}

async fn start(toolbox: Recorder, config: EngineConfig) -> Harness {
    let journal = JournalHandle::spawn(Journal::in_memory().unwrap()).unwrap();
    start_on(journal, toolbox, config, CLOCK_START).await
}

async fn start_on(
    journal: JournalHandle,
    toolbox: Recorder,
    config: EngineConfig,
    wall_ms: i64,
) -> Harness {
    let toolbox = Arc::new(toolbox);
    // On tokio's paused clock, time jumps to the next timer whenever the engine waits for
    // the journal's thread; the default playbook timeout would be that timer. Its own test
    // is in executor.rs.
    let config = EngineConfig {
        default_playbook_timeout_ms: None,
        ..config
    };
    let engine = Engine::start(
        plan(),
        journal,
        toolbox.clone(),
        Clock::starting_at(wall_ms),
        config,
    )
    .await
    .unwrap();
    Harness { engine, toolbox }
}

/// Waits until `check` holds; fails loudly after about ten seconds of real time.
///
/// Between checks it waits a millisecond of real time on the blocking pool: tokio does not
/// auto-advance a paused clock while a blocking task runs, so the journal's thread gets real
/// time to answer while virtual time stands still. (Sleeping on the paused clock instead
/// would let virtual time run on for as long as the journal takes, and a fixed number of
/// such sleeps can be over before a slow fsync is.)
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..10_000 {
        if check().await {
            return;
        }
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
            .await
            .unwrap();
    }
    panic!("gave up waiting until {what}");
}

/// Waits until every accepted alert was matched and no run is in progress: first until the
/// journal holds no unprocessed alert and no run is active (real time passes while the
/// journal answers, virtual time stands still), then [`Engine::idle`], which also covers
/// the runs of a batch whose admission committed but that the worker has not started yet.
async fn settle(engine: &Engine) {
    eventually(
        "every alert was matched and every run finished",
        async || {
            let unprocessed = engine
                .journal()
                .call(|journal| journal.unprocessed_alerts())
                .await
                .unwrap();
            unprocessed.is_empty() && engine.active_runs().is_empty()
        },
    )
    .await;
    // An alert is marked processed in the journal write that admits its runs, and the
    // matching worker starts them once it hears of that commit: `idle` waits for the
    // worker to be done with every alert, and for the runs it started.
    engine.idle().await;
}

/// Ingests a payload and waits until it started a run of some rule; returns the run's id.
async fn start_run(engine: &Engine, body: &[u8]) -> i64 {
    let before = engine.runs(100).await.unwrap().len();
    engine.ingest("alertmanager", alerts(body)).await.unwrap();
    let mut newest = None;
    eventually("the alert started a run", async || {
        let runs = engine.runs(100).await.unwrap();
        newest = runs.first().map(|run| run.id);
        runs.len() > before
    })
    .await;
    newest.unwrap()
}

/// The journaled transitions of a run, as `(task, state, detail)`.
async fn events(engine: &Engine, run: i64) -> Vec<(String, String, String)> {
    engine
        .run(run)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|event| (event.task, event.state, event.detail))
        .collect()
}

async fn has_event(engine: &Engine, run: i64, task: &str, state: &str) -> bool {
    events(engine, run)
        .await
        .iter()
        .any(|(event_task, event_state, _)| event_task == task && event_state == state)
}

async fn report(engine: &Engine, run: i64) -> serde_json::Value {
    let detail = engine.run(run).await.unwrap();
    serde_json::from_str(detail.run.report.as_deref().unwrap()).unwrap()
}

async fn reverts(engine: &Engine, state: &'static str) -> Vec<RevertRow> {
    engine
        .journal()
        .call(move |journal| journal.reverts(state))
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn one_firing_episode_delivered_ten_times_runs_once() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let body = payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z");
    for _ in 0..10 {
        harness
            .engine
            .ingest("alertmanager", alerts(&body))
            .await
            .unwrap();
    }
    settle(&harness.engine).await;
    let runs = harness.engine.runs(100).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].rule, "cpu");
    assert_eq!(runs[0].state, "succeeded");
    assert_eq!(harness.toolbox.called(), ["k8s.scale", "notify.slack"]);
    let suppressions = harness
        .engine
        .journal()
        .call(|journal| journal.suppressions(100))
        .await
        .unwrap();
    assert_eq!(suppressions.len(), 9, "{suppressions:?}");
    for suppression in &suppressions {
        assert_eq!(suppression.rule, "cpu");
        assert_eq!(suppression.reason, "duplicate");
        assert_eq!(
            suppression.detail,
            format!("run {} already handles this firing episode", runs[0].id)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_episode_waits_for_the_cooldown() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let first = start_run(
        &harness.engine,
        &payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    // The alert resolved and fired again ten minutes later: a new episode, same service.
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    harness
        .engine
        .ingest(
            "alertmanager",
            alerts(&payload("High_CPU_Usage", "firing", "2026-11-27T11:55:00Z")),
        )
        .await
        .unwrap();
    settle(&harness.engine).await;
    assert_eq!(harness.engine.runs(100).await.unwrap().len(), 1);
    let suppressions = harness
        .engine
        .journal()
        .call(|journal| journal.suppressions(100))
        .await
        .unwrap();
    assert_eq!(suppressions.len(), 1);
    assert_eq!(suppressions[0].reason, "cooldown");
    assert!(
        suppressions[0].detail.starts_with(&format!(
            "cooldown for \"order-service\": run {first} started recently"
        )),
        "{}",
        suppressions[0].detail
    );
    // Fifteen minutes after the first run started, the cooldown is over.
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    let second = start_run(
        &harness.engine,
        &payload("High_CPU_Usage", "firing", "2026-11-27T12:10:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert_ne!(first, second);
    assert_eq!(harness.engine.runs(100).await.unwrap().len(), 2);
    assert_eq!(
        harness.toolbox.called(),
        ["k8s.scale", "notify.slack", "k8s.scale", "notify.slack"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_resolved_alert_starts_only_rules_on_resolved_alerts() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    harness
        .engine
        .ingest(
            "alertmanager",
            alerts(&payload(
                "High_CPU_Usage",
                "resolved",
                "2026-11-27T11:40:00Z",
            )),
        )
        .await
        .unwrap();
    settle(&harness.engine).await;
    let runs = harness.engine.runs(100).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].rule, "cpu_resolved");
    assert_eq!(runs[0].state, "succeeded");
    assert_eq!(
        harness.toolbox.called(),
        ["notify.slack"],
        "the firing rule does not scale"
    );
    assert_eq!(
        harness.toolbox.args_of("notify.slack")["text"],
        Value::String("order-service: CPU back to normal".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_resolved_alert_cancels_the_run_its_firing_started() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let run = start_run(
        &harness.engine,
        &payload("Service_Latency_Exceeded", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    eventually("the scale waits for approval", async || {
        harness.engine.run(run).await.unwrap().awaiting_approval == ["scale"]
    })
    .await;
    harness
        .engine
        .ingest(
            "alertmanager",
            alerts(&payload(
                "Service_Latency_Exceeded",
                "resolved",
                "2026-11-27T11:40:00Z",
            )),
        )
        .await
        .unwrap();
    settle(&harness.engine).await;
    assert_eq!(
        harness.engine.run(run).await.unwrap().run.state,
        "cancelled"
    );
    let report = report(&harness.engine, run).await;
    assert_eq!(report["stopped"], "cancelled: the alert resolved");
    assert_eq!(harness.toolbox.called(), ["http.get"], "nothing is scaled");
}

/// Ingests a resolved notification and waits until it was processed (runs may go on).
async fn resolve(engine: &Engine, name: &str, starts_at: &str) {
    engine
        .ingest(
            "alertmanager",
            alerts(&payload(name, "resolved", starts_at)),
        )
        .await
        .unwrap();
    eventually("the resolve was processed", async || {
        engine
            .journal()
            .call(|journal| journal.unprocessed_alerts())
            .await
            .unwrap()
            .is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_late_resolve_of_an_older_episode_does_not_cancel_a_newer_one() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let first = start_run(
        &harness.engine,
        &payload("Service_Latency_Exceeded", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    // Past the rule's 15-minute cooldown, the same alert fires again: a new episode.
    tokio::time::sleep(Duration::from_secs(16 * 60)).await;
    let second = start_run(
        &harness.engine,
        &payload("Service_Latency_Exceeded", "firing", "2026-11-27T12:40:00Z"),
    )
    .await;
    eventually("both wait for approval", async || {
        harness.engine.run(first).await.unwrap().awaiting_approval == ["scale"]
            && harness.engine.run(second).await.unwrap().awaiting_approval == ["scale"]
    })
    .await;
    // The first episode's resolve arrives late, after the second episode started.
    resolve(
        &harness.engine,
        "Service_Latency_Exceeded",
        "2026-11-27T11:40:00Z",
    )
    .await;
    eventually("the first run ends", async || {
        harness.engine.run(first).await.unwrap().run.state == "cancelled"
    })
    .await;
    let newer = harness.engine.run(second).await.unwrap();
    assert_eq!(newer.run.state, "running");
    assert_eq!(newer.awaiting_approval, ["scale"]);
    // A resolve of an episode nobody knows ends nothing either.
    resolve(
        &harness.engine,
        "Service_Latency_Exceeded",
        "2026-11-27T09:00:00Z",
    )
    .await;
    assert_eq!(
        harness.engine.run(second).await.unwrap().run.state,
        "running"
    );
    // Its own resolve ends it.
    resolve(
        &harness.engine,
        "Service_Latency_Exceeded",
        "2026-11-27T12:40:00Z",
    )
    .await;
    settle(&harness.engine).await;
    assert_eq!(
        harness.engine.run(second).await.unwrap().run.state,
        "cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn out_of_order_and_replayed_resolves_revert_only_their_own_episode() {
    let _ticker = Ticker::start();
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let started = tokio::time::Instant::now();
    start_run(
        &harness.engine,
        &payload("Traffic_Spike", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    tokio::time::sleep(Duration::from_secs(16 * 60)).await;
    start_run(
        &harness.engine,
        &payload("Traffic_Spike", "firing", "2026-11-27T12:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert_eq!(reverts(&harness.engine, "pending").await.len(), 2);
    // The older episode's resolve, then the same resolve replayed, then one of an unknown
    // episode: only the older episode's scale-up is reverted, once.
    resolve(&harness.engine, "Traffic_Spike", "2026-11-27T11:40:00Z").await;
    resolve(&harness.engine, "Traffic_Spike", "2026-11-27T11:40:00Z").await;
    resolve(&harness.engine, "Traffic_Spike", "2026-11-27T08:00:00Z").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    settle(&harness.engine).await;
    assert_eq!(harness.toolbox.reverts().len(), 1);
    assert_eq!(reverts(&harness.engine, "reverted").await.len(), 1);
    assert_eq!(reverts(&harness.engine, "pending").await.len(), 1);
    // The newer episode resolves: its own revert happens.
    resolve(&harness.engine, "Traffic_Spike", "2026-11-27T12:40:00Z").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    settle(&harness.engine).await;
    assert_eq!(harness.toolbox.reverts().len(), 2);
    assert!(reverts(&harness.engine, "pending").await.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(30 * 60),
        "by the resolves, not by the timers ({:?})",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_revert_can_be_retried_or_acknowledged_by_a_human() {
    let _ticker = Ticker::start();
    let recorder = Recorder::new();
    recorder
        .revert_failures
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let harness = start(recorder, EngineConfig::default()).await;
    let first = start_run(
        &harness.engine,
        &payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    let second = start_run(
        &harness.engine,
        &payload("Traffic_Spike", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    tokio::time::sleep(Duration::from_secs(31 * 60)).await;
    eventually("both reverts failed", async || {
        reverts(&harness.engine, "failed").await.len() == 2
    })
    .await;
    harness.engine.refresh_revert_metrics().await.unwrap();
    let metrics = harness.engine.metrics().render();
    assert!(
        metrics.contains("medic_reverts{state=\"failed\"} 2"),
        "{metrics}"
    );
    let failed = reverts(&harness.engine, "failed").await;
    let of = |run: i64| {
        failed
            .iter()
            .find(|revert| revert.run_id == run)
            .unwrap()
            .id
    };

    // A retry performs it now.
    let retried = harness
        .engine
        .retry_revert(of(first), "alice")
        .await
        .unwrap();
    assert_eq!(retried.state, "reverted");
    assert_eq!(harness.toolbox.reverts().len(), 3);
    // It cannot be retried again, nor acknowledged: it is done.
    assert!(matches!(
        harness.engine.retry_revert(of(first), "alice").await,
        Err(EngineError::RevertNotOpen { ref state, .. }) if state == "reverted"
    ));
    // The other is acknowledged: undone by hand.
    let acknowledged = harness
        .engine
        .acknowledge_revert(of(second), "bob", "scaled down by hand")
        .await
        .unwrap();
    assert_eq!(acknowledged.state, "acknowledged");
    assert_eq!(acknowledged.detail, "bob: scaled down by hand");
    assert_eq!(harness.toolbox.reverts().len(), 3, "nothing is performed");
    assert!(matches!(
        harness.engine.retry_revert(9_999, "alice").await,
        Err(EngineError::NoRevert(9_999))
    ));
    // Both are journaled on their runs, with who.
    let events_first = events(&harness.engine, first).await;
    assert!(
        events_first
            .iter()
            .any(|(_, state, detail)| state == "revert_retry_requested" && detail == "alice"),
        "{events_first:?}"
    );
    let events_second = events(&harness.engine, second).await;
    assert!(
        events_second
            .iter()
            .any(|(_, state, detail)| state == "revert_acknowledged"
                && detail == "bob: scaled down by hand"),
        "{events_second:?}"
    );
    harness.engine.refresh_revert_metrics().await.unwrap();
    let metrics = harness.engine.metrics().render();
    assert!(
        metrics.contains("medic_reverts{state=\"failed\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("medic_reverts{state=\"acknowledged\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("medic_reverts{state=\"reverted\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_temporary_action_is_reverted_on_time_with_its_output() {
    let _ticker = Ticker::start();
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let run = start_run(
        &harness.engine,
        &payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    let detail = harness.engine.run(run).await.unwrap();
    assert_eq!(detail.run.state, "succeeded");
    assert!(harness.toolbox.reverts().is_empty(), "not yet");
    let pending = reverts(&harness.engine, "pending").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].due_at,
        Some(detail.run.finished_at.unwrap() + 30 * 60_000)
    );
    tokio::time::sleep(Duration::from_secs(25 * 60)).await;
    assert!(harness.toolbox.reverts().is_empty(), "not after 25 minutes");
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    eventually("the revert was journaled", async || {
        reverts(&harness.engine, "reverted").await.len() == 1
    })
    .await;
    assert_eq!(
        harness.toolbox.reverts(),
        [(
            "k8s.scale".to_string(),
            harness.toolbox.args_of("k8s.scale"),
            scale_output()
        )]
    );
    let reverted = reverts(&harness.engine, "reverted").await;
    assert_eq!(reverted[0].run_id, run);
    assert!(
        reverted[0].detail.contains("back to 3 replicas"),
        "{}",
        reverted[0].detail
    );
}

/// With an inline journal, tokio's paused clock is a virtual clock (what `medic test` needs):
/// no ticker, no polling in real time; the clock moves only when every task waits for a
/// timer, so the run finishes at the time it started and the revert fires at its minute.
#[tokio::test(start_paused = true)]
async fn on_an_inline_journal_the_paused_clock_moves_only_to_due_timers() {
    let journal = JournalHandle::inline(Journal::in_memory().unwrap());
    let harness = start_on(
        journal,
        Recorder::new(),
        EngineConfig::default(),
        CLOCK_START,
    )
    .await;
    let started = tokio::time::Instant::now();
    harness
        .engine
        .ingest(
            "alertmanager",
            alerts(&payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z")),
        )
        .await
        .unwrap();
    harness.engine.idle().await;
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no timer fired on the way"
    );
    let runs = harness.engine.runs(10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, "succeeded");
    assert_eq!(runs[0].finished_at, Some(CLOCK_START));
    let pending = reverts(&harness.engine, "pending").await;
    assert_eq!(pending[0].due_at, Some(CLOCK_START + 30 * 60_000));
    tokio::time::sleep(Duration::from_secs(30 * 60 - 1)).await;
    assert!(harness.toolbox.reverts().is_empty(), "not a second early");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(harness.toolbox.reverts().len(), 1);
    assert_eq!(reverts(&harness.engine, "reverted").await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_resolved_alert_reverts_at_once_and_the_timer_does_not_revert_again() {
    let _ticker = Ticker::start();
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let started = tokio::time::Instant::now();
    start_run(
        &harness.engine,
        &payload("Traffic_Spike", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert!(harness.toolbox.reverts().is_empty());
    harness
        .engine
        .ingest(
            "alertmanager",
            alerts(&payload(
                "Traffic_Spike",
                "resolved",
                "2026-11-27T11:40:00Z",
            )),
        )
        .await
        .unwrap();
    settle(&harness.engine).await;
    assert_eq!(
        harness.toolbox.reverts(),
        [(
            "k8s.scale".to_string(),
            harness.toolbox.args_of("k8s.scale"),
            scale_output()
        )]
    );
    assert!(
        started.elapsed() < Duration::from_secs(30 * 60),
        "reverted when the alert resolved, before the timer came due ({:?})",
        started.elapsed()
    );
    assert_eq!(reverts(&harness.engine, "reverted").await.len(), 1);
    // The timer comes due: the revert was taken, so nothing happens.
    tokio::time::sleep(Duration::from_secs(31 * 60)).await;
    settle(&harness.engine).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(harness.toolbox.reverts().len(), 1);
    assert_eq!(reverts(&harness.engine, "reverted").await.len(), 1);
    assert!(reverts(&harness.engine, "pending").await.is_empty());
    assert!(reverts(&harness.engine, "reverting").await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_action_waits_for_approval_through_the_engine() {
    let harness = start(Recorder::new().holding("http.get"), EngineConfig::default()).await;
    let run = start_run(
        &harness.engine,
        &payload("Service_Latency_Exceeded", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    eventually("the health check was called", async || {
        harness.toolbox.called() == ["http.get"]
    })
    .await;
    // The health check runs: nothing waits for approval yet.
    let early = harness
        .engine
        .decide(
            run,
            None,
            Decision::Approved { by: "alice".into() },
            &UNENFORCED,
        )
        .await;
    assert!(
        matches!(&early, Err(EngineError::NoApproval { run: r, which }) if *r == run && which.is_empty()),
        "{early:?}"
    );
    harness.toolbox.release();
    eventually("the scale waits for approval", async || {
        harness.engine.run(run).await.unwrap().awaiting_approval == ["scale"]
    })
    .await;
    assert_eq!(
        harness.toolbox.called(),
        ["http.get"],
        "the action waits for a human"
    );
    let wrong = harness
        .engine
        .decide(
            run,
            Some("tell".into()),
            Decision::Approved { by: "alice".into() },
            &UNENFORCED,
        )
        .await;
    assert!(
        matches!(&wrong, Err(EngineError::NoApproval { which, .. }) if which == " named `tell`"),
        "{wrong:?}"
    );
    let approved = harness
        .engine
        .decide(
            run,
            None,
            Decision::Approved { by: "alice".into() },
            &UNENFORCED,
        )
        .await
        .unwrap();
    assert_eq!(approved, ["scale"]);
    settle(&harness.engine).await;
    let detail = harness.engine.run(run).await.unwrap();
    assert_eq!(detail.run.state, "succeeded");
    assert!(detail.awaiting_approval.is_empty());
    assert_eq!(
        harness.toolbox.called(),
        ["http.get", "k8s.scale", "notify.slack"]
    );
    assert!(events(&harness.engine, run).await.contains(&(
        "scale".into(),
        "approved".into(),
        "alice".into()
    )));
    let late = harness
        .engine
        .decide(
            run,
            None,
            Decision::Approved { by: "alice".into() },
            &UNENFORCED,
        )
        .await;
    assert!(
        matches!(late, Err(EngineError::NotActive(r)) if r == run),
        "{late:?}"
    );
    let unknown = harness
        .engine
        .decide(
            9_999,
            None,
            Decision::Approved { by: "alice".into() },
            &UNENFORCED,
        )
        .await;
    assert!(
        matches!(unknown, Err(EngineError::NoRun(9_999))),
        "{unknown:?}"
    );
    let missing = harness.engine.run(9_999).await;
    assert!(
        matches!(missing, Err(EngineError::NoRun(9_999))),
        "{:?}",
        missing.map(|detail| detail.run)
    );
}

#[tokio::test(start_paused = true)]
async fn only_a_member_of_the_approval_group_may_decide() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    // The playbook times out after an hour; the ticker keeps the paused clock from jumping
    // there while the journal answers.
    let _ticker = Ticker::start();
    let run = start_gated_run(&harness.engine).await;
    eventually("the scale waits for approval", async || {
        harness.engine.run(run).await.unwrap().awaiting_approval == ["scale"]
    })
    .await;
    // `approval by "sre"`: someone only in `dba` can neither approve nor reject.
    let dba = ApprovalGroups::Member(BTreeSet::from(["dba".to_string()]));
    for decision in [
        Decision::Approved { by: "bob".into() },
        Decision::Rejected {
            by: "bob".into(),
            reason: "no".into(),
        },
    ] {
        let refused = harness.engine.decide(run, None, decision, &dba).await;
        assert!(
            matches!(&refused, Err(EngineError::NotInGroup { task, group, who, .. })
                if task == "scale" && group == "sre" && who == "bob"),
            "{refused:?}"
        );
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("the group `sre`"), "{message}");
    }
    assert_eq!(
        harness.engine.run(run).await.unwrap().awaiting_approval,
        ["scale"],
        "a refused decision decides nothing: {:?}",
        events(&harness.engine, run).await
    );
    assert!(
        !events(&harness.engine, run)
            .await
            .iter()
            .any(|(_, state, _)| state == "approved" || state == "rejected")
    );
    let sre = ApprovalGroups::Member(BTreeSet::from(["dba".to_string(), "sre".to_string()]));
    let approved = harness
        .engine
        .decide(run, None, Decision::Approved { by: "alice".into() }, &sre)
        .await
        .unwrap();
    assert_eq!(approved, ["scale"]);
    settle(&harness.engine).await;
    assert_eq!(
        harness.engine.run(run).await.unwrap().run.state,
        "succeeded"
    );
    assert!(events(&harness.engine, run).await.contains(&(
        "scale".into(),
        "approved".into(),
        "alice".into()
    )));
    assert_eq!(
        harness.toolbox.called(),
        ["http.get", "k8s.scale", "notify.slack"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_run_stops_and_starts_nothing_more() {
    let harness = start(Recorder::new().holding("http.get"), EngineConfig::default()).await;
    let run = start_run(
        &harness.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    eventually("the health check was called", async || {
        harness.toolbox.called() == ["http.get"]
    })
    .await;
    harness.engine.cancel(run, "carol").await.unwrap();
    settle(&harness.engine).await;
    let detail = harness.engine.run(run).await.unwrap();
    assert_eq!(detail.run.state, "cancelled");
    let report = report(&harness.engine, run).await;
    assert_eq!(report["stopped"], "cancelled: by carol");
    let events = events(&harness.engine, run).await;
    assert!(
        events.contains(&("".into(), "cancel_requested".into(), "by carol".into())),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(task, state, _)| task == "health" && state == "cancelled"),
        "{events:?}"
    );
    assert!(!events.iter().any(|(task, _, _)| task == "tell"));
    assert_eq!(harness.toolbox.called(), ["http.get"]);
    let again = harness.engine.cancel(run, "carol").await;
    assert!(
        matches!(again, Err(EngineError::NotActive(r)) if r == run),
        "{again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_run_starts_nothing_new_until_resumed() {
    let harness = start(Recorder::new().holding("http.get"), EngineConfig::default()).await;
    let run = start_run(
        &harness.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    eventually("the health check was called", async || {
        harness.toolbox.called() == ["http.get"]
    })
    .await;
    harness.engine.pause(run, true, "dave").await.unwrap();
    assert_eq!(harness.engine.run(run).await.unwrap().run.state, "paused");
    // The health check was already running: it finishes, and nothing after it starts.
    harness.toolbox.release();
    eventually("the health check finished", async || {
        has_event(&harness.engine, run, "health", "succeeded").await
    })
    .await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!has_event(&harness.engine, run, "tell", "started").await);
    }
    assert_eq!(harness.toolbox.called(), ["http.get"]);
    assert_eq!(harness.engine.active_runs(), [run]);
    harness.engine.pause(run, false, "dave").await.unwrap();
    settle(&harness.engine).await;
    assert_eq!(
        harness.engine.run(run).await.unwrap().run.state,
        "succeeded"
    );
    assert_eq!(harness.toolbox.called(), ["http.get", "notify.slack"]);
    let after = harness.engine.pause(run, true, "dave").await;
    assert!(
        matches!(after, Err(EngineError::NotActive(r)) if r == run),
        "{after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_kill_switch_suppresses_rules_that_act_and_refuses_actions_in_flight() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    harness.engine.set_kill_switch(true).await.unwrap();
    assert!(harness.engine.kill_switch());
    harness
        .engine
        .ingest(
            "alertmanager",
            alerts(&payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z")),
        )
        .await
        .unwrap();
    settle(&harness.engine).await;
    assert!(harness.engine.runs(100).await.unwrap().is_empty());
    assert!(harness.toolbox.called().is_empty());
    let suppressions = harness
        .engine
        .journal()
        .call(|journal| journal.suppressions(100))
        .await
        .unwrap();
    assert_eq!(suppressions.len(), 1);
    assert_eq!(
        (
            suppressions[0].rule.as_str(),
            suppressions[0].reason.as_str()
        ),
        ("cpu", "kill_switch")
    );

    // Switched on while a run waits for approval: the approved action is refused.
    harness.engine.set_kill_switch(false).await.unwrap();
    let run = start_run(
        &harness.engine,
        &payload("Service_Latency_Exceeded", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    eventually("the scale waits for approval", async || {
        harness.engine.run(run).await.unwrap().awaiting_approval == ["scale"]
    })
    .await;
    harness.engine.set_kill_switch(true).await.unwrap();
    harness
        .engine
        .decide(
            run,
            None,
            Decision::Approved { by: "alice".into() },
            &UNENFORCED,
        )
        .await
        .unwrap();
    settle(&harness.engine).await;
    assert_eq!(harness.engine.run(run).await.unwrap().run.state, "failed");
    assert_eq!(harness.toolbox.called(), ["http.get"]);
    let report = report(&harness.engine, run).await;
    let scale = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["id"] == "scale")
        .unwrap();
    assert_eq!(
        scale["outcome"]["reason"],
        "the kill switch is on: no action may run"
    );
}

#[tokio::test(start_paused = true)]
async fn actions_beyond_the_rate_limit_fail() {
    let config = EngineConfig {
        actions_per_minute: Some(1),
        ..EngineConfig::default()
    };
    let harness = start(Recorder::new(), config).await;
    let run = start_run(
        &harness.engine,
        &payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert_eq!(harness.engine.run(run).await.unwrap().run.state, "failed");
    assert_eq!(
        harness.toolbox.called(),
        ["k8s.scale"],
        "the message is not sent"
    );
    let events = events(&harness.engine, run).await;
    let (_, _, detail) = events
        .iter()
        .find(|(task, state, _)| task == "tell" && state == "failed")
        .unwrap_or_else(|| panic!("tell must fail: {events:?}"));
    assert!(detail.contains("rate limited"), "{detail}");
    // A minute later the next action may run.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let next = start_run(
        &harness.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:45:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert_eq!(
        harness.engine.run(next).await.unwrap().run.state,
        "succeeded"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_of_a_permitted_action_do_not_count_against_the_rate_limit() {
    let config = EngineConfig {
        actions_per_minute: Some(2),
        ..EngineConfig::default()
    };
    let harness = start(Recorder::new().failing("k8s.scale"), config).await;
    let run = start_run(
        &harness.engine,
        &payload("Flapping", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert_eq!(harness.engine.run(run).await.unwrap().run.state, "failed");
    // Every attempt was made: the retries finish the one permitted action.
    assert_eq!(harness.toolbox.called(), ["k8s.scale"; 4]);
    // Within the same minute, one more action fits in the budget of two.
    let next = start_run(
        &harness.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:45:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert_eq!(
        harness.engine.run(next).await.unwrap().run.state,
        "succeeded"
    );
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_window_survives_a_restart() {
    let path = journal_path("rate-window");
    let config = || EngineConfig {
        actions_per_minute: Some(1),
        ..EngineConfig::default()
    };
    let first = start_on(on_disk(&path), Recorder::new(), config(), CLOCK_START).await;
    let run = start_run(
        &first.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&first.engine).await;
    assert_eq!(first.engine.run(run).await.unwrap().run.state, "succeeded");
    drop(first);
    // Started again ten seconds later (a crash loop, say): the action of the last minute
    // still counts, so the next one is refused.
    let second = start_on(
        on_disk(&path),
        Recorder::new(),
        config(),
        CLOCK_START + 10_000,
    )
    .await;
    let next = start_run(
        &second.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:45:00Z"),
    )
    .await;
    settle(&second.engine).await;
    assert_eq!(second.engine.run(next).await.unwrap().run.state, "failed");
    let events = events(&second.engine, next).await;
    assert!(
        events
            .iter()
            .any(|(_, state, detail)| state == "failed" && detail.contains("rate limited")),
        "{events:?}"
    );
    assert_eq!(
        second.toolbox.called(),
        ["http.get"],
        "the query ran, the message was not sent"
    );
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_runs_run_at_once() {
    let config = EngineConfig {
        max_runs: 5,
        ..EngineConfig::default()
    };
    let harness = start(Recorder::new().holding("http.get"), config).await;
    let alerts: Vec<serde_json::Value> = (0..1_000)
        .map(|index| {
            let labels = BTreeMap::from([
                ("alertname".to_string(), "Probe".to_string()),
                ("service".to_string(), format!("svc-{index}")),
                ("severity".to_string(), "critical".to_string()),
            ]);
            serde_json::json!({
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": "2026-11-27T11:40:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": ingest::fingerprint_of(&labels),
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "receiver": "medic", "status": "firing", "alerts": alerts, "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "version": "4",
        "groupKey": "{}:{}", "truncatedAlerts": 0,
    }))
    .unwrap();
    harness
        .engine
        .ingest("alertmanager", ingest::alertmanager(&body).unwrap())
        .await
        .unwrap();
    let in_flight = Arc::clone(&harness.toolbox.in_flight);
    let now = || in_flight.0.load(std::sync::atomic::Ordering::SeqCst);
    eventually("five runs hold a call", async || now() == 5).await;
    eventually("every alert started a run", async || {
        harness.engine.runs(2_000).await.unwrap().len() == 1_000
    })
    .await;
    assert_eq!(now(), 5, "the other runs wait for a slot");
    // Let the calls through one at a time: each finished run frees a slot for the next.
    for _ in 0..1_000 {
        harness.toolbox.release();
    }
    settle(&harness.engine).await;
    assert_eq!(harness.toolbox.called().len(), 1_000);
    assert_eq!(
        harness
            .toolbox
            .in_flight
            .1
            .load(std::sync::atomic::Ordering::SeqCst),
        5
    );
    let runs = harness.engine.runs(2_000).await.unwrap();
    assert!(runs.iter().all(|run| run.state == "succeeded"));
}

#[tokio::test(start_paused = true)]
async fn the_metrics_count_alerts_and_runs() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let body = payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z");
    for _ in 0..2 {
        harness
            .engine
            .ingest("alertmanager", alerts(&body))
            .await
            .unwrap();
    }
    settle(&harness.engine).await;
    let text = harness.engine.metrics().render();
    for line in [
        "medic_alerts_received_total{source=\"alertmanager\"} 2",
        "medic_runs_total{playbook=\"scale_up\",outcome=\"succeeded\"} 1",
        "medic_suppressions_total{reason=\"duplicate\"} 1",
        "medic_active_runs 0",
        "medic_queue_depth 0",
    ] {
        assert!(
            text.lines().any(|candidate| candidate == line),
            "no line {line:?} in:\n{text}"
        );
    }
}

/// `Engine::idle` is documented as waiting until no alert waits to be matched and no run is
/// in progress. An alert the worker took off the queue and is still admitting (waiting for
/// the journal) is neither queued nor running, so `idle` can return before its run exists
/// or before it finished. A journal on disk (one fsync per commit) makes that window wide.
#[tokio::test(start_paused = true)]
async fn idle_waits_for_an_alert_taken_off_the_queue() {
    let path = journal_path("idle");
    let harness = start_on(
        on_disk(&path),
        Recorder::new(),
        EngineConfig::default(),
        CLOCK_START,
    )
    .await;
    for minute in 0..10 {
        let starts_at = format!("2026-11-27T11:{:02}:00Z", 10 + minute);
        harness
            .engine
            .ingest(
                "alertmanager",
                alerts(&payload("Error_Rate_High", "firing", &starts_at)),
            )
            .await
            .unwrap();
        harness.engine.idle().await;
        let runs: Vec<(i64, String)> = harness
            .engine
            .runs(100)
            .await
            .unwrap()
            .into_iter()
            .map(|run| (run.id, run.state))
            .collect();
        assert!(
            runs.len() == minute + 1 && runs.iter().all(|(_, state)| state == "succeeded"),
            "idle returned before the alert of minute {minute} was matched and run: {runs:?}"
        );
    }
}

/// `journal.db` in a fresh folder of the temp directory. The folder is deleted when this is
/// dropped (also when the test panics), so a test holds it across every life of its engine.
struct JournalPath {
    path: PathBuf,
    _directory: tempfile::TempDir,
}

impl std::ops::Deref for JournalPath {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

fn journal_path(name: &str) -> JournalPath {
    let directory = tempfile::Builder::new()
        .prefix(&format!("medic-engine-{name}-"))
        .tempdir()
        .unwrap();
    JournalPath {
        path: directory.path().join("journal.db"),
        _directory: directory,
    }
}

fn on_disk(path: &Path) -> JournalHandle {
    JournalHandle::spawn(Journal::open(path).unwrap()).unwrap()
}

/// A runtime for one life of the server, on a paused clock.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_alert_accepted_but_never_matched_is_matched_on_start() {
    let path = journal_path("unprocessed");
    let alert = alerts(&payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z")).remove(0);
    {
        // The server accepted the alert, then died before matching it.
        let mut journal = Journal::open(&path).unwrap();
        journal
            .accept(&[engine::stored::accepted(&alert, false)], CLOCK_START)
            .unwrap();
    }
    let harness = start_on(
        on_disk(&path),
        Recorder::new(),
        EngineConfig::default(),
        CLOCK_START + 60_000,
    )
    .await;
    settle(&harness.engine).await;
    let runs = harness.engine.runs(100).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].rule, "cpu");
    assert_eq!(runs[0].state, "succeeded");
    assert_eq!(harness.toolbox.called(), ["k8s.scale", "notify.slack"]);
    assert_eq!(
        harness.toolbox.args_of("k8s.scale")["deployment"],
        Value::String("order-service".into())
    );
}

/// One life of a server that dies once `life` returns: every task of its runtime is dropped
/// where it stands, as in a crash. Its journal connection is returned to be kept open and
/// unused, as a crash leaves it (closed cleanly, it would checkpoint, and could do so while
/// the next life opens the file).
fn crash_after<T>(
    path: &Path,
    toolbox: Recorder,
    life: impl AsyncFnOnce(&Harness) -> T,
) -> (T, JournalHandle) {
    let runtime = paused_runtime();
    let journal = on_disk(path);
    let result = runtime.block_on(async {
        let harness = start_on(
            journal.clone(),
            toolbox,
            EngineConfig::default(),
            CLOCK_START,
        )
        .await;
        life(&harness).await
    });
    runtime.shutdown_background();
    (result, journal)
}

/// Starts a run of `gated` and waits until its scale waits for approval, journaled.
async fn start_gated_run(engine: &Engine) -> i64 {
    let run = start_run(
        engine,
        &payload("Service_Latency_Exceeded", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    eventually("the wait for approval was journaled", async || {
        has_event(engine, run, "scale", "awaiting_approval").await
    })
    .await;
    run
}

/// A first life that dies while `k8s.scale` is in flight; returns the run.
fn crash_during_the_scale(path: &Path) -> (i64, JournalHandle) {
    crash_after(
        path,
        Recorder::new().hanging("k8s.scale"),
        async |harness: &Harness| {
            let run = start_run(
                &harness.engine,
                &payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z"),
            )
            .await;
            // "started" is journaled before the action is called.
            eventually("the scale was called", async || {
                harness.toolbox.called() == ["k8s.scale"]
            })
            .await;
            assert!(has_event(&harness.engine, run, "scale", "started").await);
            run
        },
    )
}

#[test]
fn an_action_in_flight_at_a_crash_is_closed_for_a_human_and_not_repeated() {
    let path = journal_path("in-flight");
    let (run, _first_journal) = crash_during_the_scale(&path);
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        settle(&harness.engine).await;
        let detail = harness.engine.run(run).await.unwrap();
        assert_eq!(detail.run.state, "interrupted");
        let report = report(&harness.engine, run).await;
        assert_eq!(report["outcome"], "interrupted");
        let stopped = report["stopped"].as_str().unwrap();
        assert!(
            stopped.contains("`scale` (k8s.scale)") && stopped.contains("check it by hand"),
            "{stopped}"
        );
        assert!(
            harness.toolbox.called().is_empty(),
            "neither the scale nor what follows it runs again: {:?}",
            harness.toolbox.called()
        );
        assert_eq!(harness.engine.runs(100).await.unwrap().len(), 1);
    });
}

#[test]
fn an_interrupted_run_is_counted_under_its_playbook() {
    let path = journal_path("interrupted-metrics");
    let (run, _first_journal) = crash_during_the_scale(&path);
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        assert_eq!(
            harness.engine.run(run).await.unwrap().run.state,
            "interrupted"
        );
        let text = harness.engine.metrics().render();
        let line = "medic_runs_total{playbook=\"scale_up\",outcome=\"interrupted\"} 1";
        assert!(
            text.lines().any(|candidate| candidate == line),
            "no line {line:?} in:\n{text}"
        );
    });
}

#[test]
fn a_pending_revert_is_timed_again_after_a_restart() {
    let path = journal_path("pending-revert");
    let ((run, arguments), _first_journal) =
        crash_after(&path, Recorder::new(), async |harness: &Harness| {
            let _ticker = Ticker::start();
            let run = start_run(
                &harness.engine,
                &payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z"),
            )
            .await;
            settle(&harness.engine).await;
            assert_eq!(reverts(&harness.engine, "pending").await.len(), 1);
            (run, harness.toolbox.args_of("k8s.scale"))
        });
    // The server died with the revert due in 30 minutes, and comes back 10 minutes later.
    paused_runtime().block_on(async {
        let _ticker = Ticker::start();
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 10 * 60_000,
        )
        .await;
        settle(&harness.engine).await;
        assert!(harness.toolbox.reverts().is_empty(), "not due yet");
        tokio::time::sleep(Duration::from_secs(21 * 60)).await;
        eventually("the revert was journaled", async || {
            reverts(&harness.engine, "reverted").await.len() == 1
        })
        .await;
        assert_eq!(
            harness.toolbox.reverts(),
            [("k8s.scale".to_string(), arguments, scale_output())],
            "the second life reverts with what the first life did"
        );
        assert_eq!(reverts(&harness.engine, "reverted").await[0].run_id, run);
        assert!(harness.toolbox.called().is_empty());
    });
}

#[test]
fn a_run_continued_after_a_crash_does_not_repeat_finished_queries() {
    let path = journal_path("continued");
    // The server dies while the scale waits for a human.
    let (run, _first_journal) = crash_after(&path, Recorder::new(), async |harness: &Harness| {
        let run = start_gated_run(&harness.engine).await;
        assert_eq!(harness.toolbox.called(), ["http.get"]);
        run
    });
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        eventually("the continued scale waits for approval", async || {
            harness.engine.run(run).await.unwrap().awaiting_approval == ["scale"]
        })
        .await;
        assert!(
            harness.toolbox.called().is_empty(),
            "the finished health check is not repeated"
        );
        harness
            .engine
            .decide(
                run,
                None,
                Decision::Approved { by: "alice".into() },
                &UNENFORCED,
            )
            .await
            .unwrap();
        settle(&harness.engine).await;
        let detail = harness.engine.run(run).await.unwrap();
        assert_eq!(detail.run.state, "succeeded");
        assert_eq!(harness.toolbox.called(), ["k8s.scale", "notify.slack"]);
        let report: RunReport =
            serde_json::from_str(detail.run.report.as_deref().unwrap()).unwrap();
        assert_eq!(report.outcome, RunOutcome::Succeeded);
        let health = report
            .tasks
            .iter()
            .find(|task| task.id == "health")
            .unwrap();
        assert_eq!(health.attempts, 1, "the first life's attempt");
        assert_eq!(harness.engine.runs(100).await.unwrap().len(), 1);
    });
}

#[test]
fn the_kill_switch_survives_a_restart() {
    let path = journal_path("kill-switch");
    let ((), _first_journal) = crash_after(&path, Recorder::new(), async |harness: &Harness| {
        harness.engine.set_kill_switch(true).await.unwrap();
    });
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        assert!(
            harness.engine.kill_switch(),
            "turned on before the crash, still on"
        );
        let run = harness
            .engine
            .ingest(
                "alertmanager",
                alerts(&payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z")),
            )
            .await
            .unwrap();
        assert_eq!(run.len(), 1);
        settle(&harness.engine).await;
        assert!(harness.engine.runs(10).await.unwrap().is_empty());
        assert!(harness.toolbox.called().is_empty());
    });
}

#[test]
fn an_interrupted_run_still_reverts_what_it_finished() {
    let path = journal_path("interrupted-revert");
    let (run, _first_journal) = crash_after(
        &path,
        Recorder::new().hanging("notify.slack"),
        async |harness: &Harness| {
            let run = start_run(
                &harness.engine,
                &payload("Disk_Full", "firing", "2026-11-27T11:40:00Z"),
            )
            .await;
            eventually("the notification was called", async || {
                harness.toolbox.called() == ["k8s.scale", "notify.slack"]
            })
            .await;
            assert!(has_event(&harness.engine, run, "tell", "started").await);
            run
        },
    );
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        settle(&harness.engine).await;
        let detail = harness.engine.run(run).await.unwrap();
        assert_eq!(detail.run.state, "interrupted");
        assert_eq!(detail.reverts.len(), 1, "{:?}", detail.reverts);
        assert_eq!(detail.reverts[0].task, "scale");
        let due = detail.reverts[0].due_at.unwrap();
        assert!(
            (CLOCK_START + 30 * 60_000..CLOCK_START + 31 * 60_000).contains(&due),
            "due 30m after the scale finished, not after the restart: {due}"
        );
        let report = report(&harness.engine, run).await;
        assert_eq!(report["tasks"][0]["outcome"]["state"], "succeeded");
        assert_eq!(report["tasks"][1]["outcome"]["state"], "failed");
        assert!(harness.toolbox.called().is_empty(), "nothing is re-issued");
    });
}

#[tokio::test(start_paused = true)]
async fn an_escalated_run_is_told_to_the_configured_receiver() {
    let harness = start(
        Recorder::new().failing("k8s.scale"),
        EngineConfig {
            escalate_to: Some("oncall".into()),
            ..EngineConfig::default()
        },
    )
    .await;
    let run = start_run(
        &harness.engine,
        &payload("Pods_Crashing", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    let detail = harness.engine.run(run).await.unwrap();
    assert_eq!(detail.run.state, "escalated");
    let told = harness.toolbox.args_of("notify.webhook");
    assert_eq!(told["name"], Value::String("oncall".into()));
    let Value::String(text) = &told["text"] else {
        panic!("{told:?}")
    };
    assert!(
        text.contains("playbook escalating: escalated")
            && text.contains("task scale (k8s.scale) failed: k8s.scale: 403 forbidden"),
        "{text}"
    );
    assert!(
        detail
            .events
            .iter()
            .any(|event| event.state == "escalated_to")
    );
}

#[test]
fn a_paused_run_continued_after_a_crash_can_be_approved_before_it_resumes() {
    let path = journal_path("paused-approval");
    let (run, _first_journal) = crash_after(&path, Recorder::new(), async |harness: &Harness| {
        let run = start_gated_run(&harness.engine).await;
        harness.engine.pause(run, true, "dave").await.unwrap();
        run
    });
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        assert_eq!(harness.engine.run(run).await.unwrap().run.state, "paused");
        assert_eq!(
            harness.engine.run(run).await.unwrap().awaiting_approval,
            ["scale"],
            "the pending approval is open while the run stays paused"
        );
        harness
            .engine
            .decide(
                run,
                None,
                Decision::Approved { by: "alice".into() },
                &UNENFORCED,
            )
            .await
            .unwrap();
        assert!(
            harness.toolbox.called().is_empty(),
            "nothing runs while paused"
        );
        harness.engine.pause(run, false, "dave").await.unwrap();
        settle(&harness.engine).await;
        assert_eq!(
            harness.engine.run(run).await.unwrap().run.state,
            "succeeded"
        );
        assert_eq!(harness.toolbox.called(), ["k8s.scale", "notify.slack"]);
    });
}

/// Changes the journal on disk behind the engine's back, as damage or a bug would.
fn corrupt(path: &Path, sql: &str, parameters: impl rusqlite::Params) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    let changed = connection.execute(sql, parameters).unwrap();
    assert!(changed > 0, "{sql} changed nothing");
}

#[test]
fn a_revert_whose_journaled_arguments_cannot_be_read_needs_attention() {
    let path = journal_path("unreadable-revert");
    let (run, _first_journal) = crash_after(&path, Recorder::new(), async |harness: &Harness| {
        let _ticker = Ticker::start();
        let run = start_run(
            &harness.engine,
            &payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z"),
        )
        .await;
        settle(&harness.engine).await;
        assert_eq!(reverts(&harness.engine, "pending").await.len(), 1);
        run
    });
    corrupt(
        &path,
        "UPDATE reverts SET arguments = '{\"deployment\": ' WHERE run_id = ?1",
        [run],
    );
    // Back after the revert came due: it is not performed with made-up arguments.
    paused_runtime().block_on(async {
        let _ticker = Ticker::start();
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 31 * 60_000,
        )
        .await;
        eventually("the revert was handed to a human", async || {
            reverts(&harness.engine, "needs_attention").await.len() == 1
        })
        .await;
        let revert = reverts(&harness.engine, "needs_attention").await.remove(0);
        assert_eq!(revert.run_id, run);
        assert!(
            revert
                .detail
                .starts_with("not performed: its journaled arguments cannot be read back (")
                && revert.detail.ends_with("undo the action by hand"),
            "{}",
            revert.detail
        );
        assert!(reverts(&harness.engine, "reverted").await.is_empty());
        assert!(
            harness.toolbox.reverts().is_empty(),
            "{:?}",
            harness.toolbox.reverts()
        );
    });
}

#[test]
fn a_revert_whose_journaled_output_cannot_be_read_needs_attention() {
    let path = journal_path("unreadable-revert-output");
    let (run, _first_journal) = crash_after(&path, Recorder::new(), async |harness: &Harness| {
        let _ticker = Ticker::start();
        let run = start_run(
            &harness.engine,
            &payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z"),
        )
        .await;
        settle(&harness.engine).await;
        run
    });
    corrupt(
        &path,
        "UPDATE reverts SET output = 'three replicas' WHERE run_id = ?1",
        [run],
    );
    paused_runtime().block_on(async {
        let _ticker = Ticker::start();
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 31 * 60_000,
        )
        .await;
        eventually("the revert was handed to a human", async || {
            reverts(&harness.engine, "needs_attention").await.len() == 1
        })
        .await;
        let revert = reverts(&harness.engine, "needs_attention").await.remove(0);
        assert!(
            revert
                .detail
                .contains("the action's journaled output cannot be read back"),
            "{}",
            revert.detail
        );
        assert!(harness.toolbox.reverts().is_empty());
    });
}

#[tokio::test(start_paused = true)]
async fn an_alert_journaled_with_an_unknown_status_is_refused_not_taken_as_firing() {
    let path = journal_path("unknown-status");
    let alert = alerts(&payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z")).remove(0);
    {
        let mut journal = Journal::open(&path).unwrap();
        journal
            .accept(&[engine::stored::accepted(&alert, false)], CLOCK_START)
            .unwrap();
    }
    corrupt(
        &path,
        "UPDATE alerts SET payload = replace(payload, '\"status\":\"firing\"', '\"status\":\"smouldering\"')",
        [],
    );
    let harness = start_on(
        on_disk(&path),
        Recorder::new(),
        EngineConfig::default(),
        CLOCK_START + 60_000,
    )
    .await;
    settle(&harness.engine).await;
    assert!(harness.engine.runs(10).await.unwrap().is_empty());
    assert!(harness.toolbox.called().is_empty());
    let suppressions = harness.engine.suppressions(10).await.unwrap();
    assert_eq!(suppressions.len(), 1, "{suppressions:?}");
    assert_eq!(suppressions[0].reason, "unreadable");
    assert_eq!(suppressions[0].rule, "");
    assert!(
        suppressions[0]
            .detail
            .contains(r#"unknown alert status "smouldering""#),
        "{}",
        suppressions[0].detail
    );
    let metrics = harness.engine.metrics().render();
    assert!(
        metrics.contains(r#"medic_suppressions_total{reason="unreadable"} 1"#),
        "{metrics}"
    );
}

/// A first life that dies while the gated scale waits for approval, then `damage` to its
/// journal (`?1` is the run), then a second life a minute later, given to `check`.
fn restart_a_gated_run_after(name: &str, damage: &str, check: impl AsyncFnOnce(&Harness, i64)) {
    let path = journal_path(name);
    let (run, _first_journal) = crash_after(&path, Recorder::new(), async |harness: &Harness| {
        start_gated_run(&harness.engine).await
    });
    corrupt(&path, damage, [run]);
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        settle(&harness.engine).await;
        check(&harness, run).await;
    });
}

/// The run was closed for a human with `stopped` containing `why`, and nothing ran.
async fn closed_for_a_human(harness: &Harness, run: i64, why: &str) {
    let detail = harness.engine.run(run).await.unwrap();
    assert_eq!(detail.run.state, "interrupted");
    assert!(detail.awaiting_approval.is_empty());
    let report = report(&harness.engine, run).await;
    let stopped = report["stopped"].as_str().unwrap();
    assert!(stopped.contains(why), "{stopped}");
    assert!(
        harness.toolbox.called().is_empty(),
        "{:?}",
        harness.toolbox.called()
    );
}

#[test]
fn an_unreadable_approval_deadline_closes_the_run_for_a_human() {
    restart_a_gated_run_after(
        "unreadable-deadline",
        "UPDATE task_events SET detail = 'tomorrow' WHERE run_id = ?1 AND state = 'awaiting_approval'",
        async |harness: &Harness, run| {
            closed_for_a_human(
                harness,
                run,
                r#"its journaled event "awaiting_approval" of task `scale` cannot be read back: the approval deadline "tomorrow" is not a time"#,
            )
            .await;
        },
    );
}

#[test]
fn a_finished_task_whose_event_cannot_be_read_is_not_run_again() {
    restart_a_gated_run_after(
        "unreadable-finished",
        "UPDATE task_events SET detail = '{}' WHERE run_id = ?1 AND state = 'succeeded'",
        async |harness: &Harness, run| {
            closed_for_a_human(
                harness,
                run,
                r#"its journaled event "succeeded" of task `health` cannot be read back: missing field"#,
            )
            .await;
        },
    );
}

#[test]
fn a_run_in_an_unknown_state_or_with_an_unknown_event_is_not_resumed() {
    restart_a_gated_run_after(
        "unknown-run-state",
        "UPDATE runs SET state = 'hibernating' WHERE id = ?1",
        async |harness: &Harness, run| {
            closed_for_a_human(
                harness,
                run,
                r#"its journaled state "hibernating" is not a state of a run in progress"#,
            )
            .await;
        },
    );
    restart_a_gated_run_after(
        "unknown-event",
        "UPDATE task_events SET state = 'teleported' WHERE run_id = ?1 AND state = 'succeeded'",
        async |harness: &Harness, run| {
            closed_for_a_human(
                harness,
                run,
                r#"its journaled event "teleported" of task `health` cannot be read back: no such event"#,
            )
            .await;
        },
    );
}

#[test]
fn a_run_whose_playbook_cannot_be_read_says_so() {
    restart_a_gated_run_after(
        "unreadable-definition",
        "UPDATE runs SET definition = '{\"name\": 3}' WHERE id = ?1",
        async |harness: &Harness, run| {
            closed_for_a_human(
                harness,
                run,
                "its journaled playbook cannot be read back: invalid type",
            )
            .await;
            let detail = harness.engine.run(run).await.unwrap();
            assert!(detail.definition.is_none());
            assert!(
                detail.unreadable["definition"].contains("invalid type"),
                "{:?}",
                detail.unreadable
            );
        },
    );
}

#[test]
fn a_pending_revert_that_nothing_would_ever_perform_needs_attention() {
    let path = journal_path("revert-without-trigger");
    let (run, _first_journal) = crash_after(&path, Recorder::new(), async |harness: &Harness| {
        let _ticker = Ticker::start();
        let run = start_run(
            &harness.engine,
            &payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z"),
        )
        .await;
        settle(&harness.engine).await;
        run
    });
    corrupt(
        &path,
        "UPDATE reverts SET due_at = NULL WHERE run_id = ?1 AND on_resolve = 0",
        [run],
    );
    paused_runtime().block_on(async {
        let harness = start_on(
            on_disk(&path),
            Recorder::new(),
            EngineConfig::default(),
            CLOCK_START + 60_000,
        )
        .await;
        let attention = reverts(&harness.engine, "needs_attention").await;
        assert_eq!(attention.len(), 1, "{attention:?}");
        assert!(
            attention[0]
                .detail
                .contains("has neither a due time nor revert on resolve"),
            "{}",
            attention[0].detail
        );
        assert!(reverts(&harness.engine, "pending").await.is_empty());
        assert!(harness.toolbox.reverts().is_empty());
    });
}

/// A storm through the pipelined matching worker: batches decided while the next ones are
/// matched still see each other's admissions, so one cooldown key starts one run, and the
/// alerts no rule matches are stored processed without a suppression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_episodes_under_one_cooldown_starts_one_run() {
    let harness = start(Recorder::new(), EngineConfig::default()).await;
    let episode = |index: usize| {
        let starts_at = format!("2026-11-27T11:{:02}:{:02}Z", index / 60, index % 60);
        alerts(&payload("High_CPU_Usage", "firing", &starts_at))
    };
    let mut unmatched = Vec::new();
    for request in 0..10 {
        let mut storm: Vec<Alert> = (0..100)
            .flat_map(|offset| episode(request * 100 + offset))
            .collect();
        storm.extend(alerts(&payload(
            "Unwatched",
            "firing",
            &format!("2026-11-27T10:00:{request:02}Z"),
        )));
        let ids = harness.engine.ingest("alertmanager", storm).await.unwrap();
        unmatched.push(*ids.last().unwrap());
    }
    settle(&harness.engine).await;
    let runs = harness.engine.runs(2_000).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].rule, "cpu");
    let first = harness
        .engine
        .journal()
        .call(|journal| journal.alert(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.id, runs[0].alert_id,
        "the first episode in arrival order ran"
    );
    let suppressions = harness
        .engine
        .journal()
        .call(|journal| journal.suppressions(2_000))
        .await
        .unwrap();
    assert_eq!(suppressions.len(), 999);
    assert!(
        suppressions
            .iter()
            .all(|suppression| suppression.reason == "cooldown"),
        "{:?}",
        suppressions.iter().find(|s| s.reason != "cooldown")
    );
    assert!(
        suppressions
            .iter()
            .all(|suppression| !unmatched.contains(&suppression.alert_id))
    );
}

/// The engine on the PostgreSQL store (issue 14): a store of its own on a real PostgreSQL.
fn on_postgres(server: &medic_sandbox::postgres::RealPostgres) -> JournalHandle {
    let store = medic_runtime::journal::pg::PgJournal::open(&server.url()).unwrap();
    JournalHandle::spawn(store).unwrap()
}

#[tokio::test(start_paused = true)]
async fn on_postgresql_one_episode_delivered_ten_times_runs_once_and_its_revert_is_on_time() {
    let _ticker = Ticker::start();
    let server =
        medic_sandbox::postgres::RealPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let harness = start_on(
        on_postgres(&server),
        Recorder::new(),
        EngineConfig::default(),
        CLOCK_START,
    )
    .await;
    let body = payload("High_CPU_Usage", "firing", "2026-11-27T11:40:00Z");
    for _ in 0..10 {
        harness
            .engine
            .ingest("alertmanager", alerts(&body))
            .await
            .unwrap();
    }
    settle(&harness.engine).await;
    let runs = harness.engine.runs(100).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, "succeeded");
    assert_eq!(harness.toolbox.called(), ["k8s.scale", "notify.slack"]);
    let suppressions = harness
        .engine
        .journal()
        .call(|journal| journal.suppressions(100))
        .await
        .unwrap();
    assert_eq!(suppressions.len(), 9);
    assert_eq!(
        server.psql("SELECT count(*) FROM runs").unwrap(),
        "1",
        "the rows are in PostgreSQL"
    );

    let run = start_run(
        &harness.engine,
        &payload("Queue_Backlog", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&harness.engine).await;
    assert_eq!(
        harness.engine.run(run).await.unwrap().run.state,
        "succeeded"
    );
    assert_eq!(reverts(&harness.engine, "pending").await.len(), 1);
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    eventually("the revert was journaled", async || {
        reverts(&harness.engine, "reverted").await.len() == 1
    })
    .await;
    assert_eq!(harness.toolbox.reverts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn on_postgresql_the_rate_limit_window_survives_a_restart() {
    let server =
        medic_sandbox::postgres::RealPostgres::start().unwrap_or_else(|error| panic!("{error}"));
    let config = || EngineConfig {
        actions_per_minute: Some(1),
        ..EngineConfig::default()
    };
    let first = start_on(on_postgres(&server), Recorder::new(), config(), CLOCK_START).await;
    let run = start_run(
        &first.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:40:00Z"),
    )
    .await;
    settle(&first.engine).await;
    assert_eq!(first.engine.run(run).await.unwrap().run.state, "succeeded");
    drop(first);
    let second = start_on(
        on_postgres(&server),
        Recorder::new(),
        config(),
        CLOCK_START + 10_000,
    )
    .await;
    let next = start_run(
        &second.engine,
        &payload("Error_Rate_High", "firing", "2026-11-27T11:45:00Z"),
    )
    .await;
    settle(&second.engine).await;
    assert_eq!(second.engine.run(next).await.unwrap().run.state, "failed");
    assert_eq!(second.toolbox.called(), ["http.get"]);
}
