//! Operators in the loop, on tokio's paused clock: approval gates (approved, rejected, timed
//! out), pause and resume, cancel, and a run continued after a restart.

use medic_compiler::plan::{self, Plan, Value};
use medic_runtime::executor::{
    self, CallError, CallFuture, Clock, Control, Decision, Observer, Prior, RunContext, RunOptions,
    RunOutcome, TaskOutcome, Toolbox, Transition, TransitionFuture,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const SOURCE: &str = r##"
import std.{http, k8s, notify}

rule gate {
  on alert "High_CPU_Usage"
  run gated(deployment: alert.service)
  cooldown 15m per alert.service
}

playbook gated(deployment: String) {
  task health = http.get("http://{deployment}/health") {
    timeout 5s
  }
  task scale = k8s.scale(deployment: deployment, by: 1, max: 5) {
    after health
    approval by "sre" within 10m
    on failure escalate
  }
  task tell = notify.slack(channel: "#oncall", text: "{scale.summary ?? "not scaled"}") {
    after scale
  }
}
"##;

fn plan() -> Plan {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("gated.ops", SOURCE)]);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
    plan::lower(&analysis).unwrap()
}

/// Answers every call after `delay`, recording the calls.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    delay: Duration,
}

impl Toolbox for Recorder {
    fn call(&self, function: &str, _args: BTreeMap<String, Value>) -> CallFuture {
        self.calls.lock().unwrap().push(function.to_string());
        let delay = self.delay;
        let output = match function {
            "k8s.scale" => Value::record([(
                "summary".to_string(),
                Value::String("api: 3 → 4 replicas".into()),
            )]),
            _ => Value::record([("ok".to_string(), Value::Bool(true))]),
        };
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok::<Value, CallError>(output)
        })
    }
}

/// Keeps every transition, as a journal would.
#[derive(Default)]
struct Transitions(Mutex<Vec<(String, Transition)>>);

impl Observer for Transitions {
    fn transition(&self, task: &str, transition: Transition, _at_ms: i64) -> TransitionFuture {
        self.0.lock().unwrap().push((task.to_string(), transition));
        Box::pin(async { Ok(()) })
    }
}

impl Transitions {
    fn awaiting(&self, task: &str) -> bool {
        self.0.lock().unwrap().iter().any(|(id, transition)| {
            id == task && matches!(transition, Transition::AwaitingApproval { .. })
        })
    }
}

struct Harness {
    toolbox: Arc<Recorder>,
    transitions: Arc<Transitions>,
    control: watch::Sender<Control>,
    run: tokio::task::JoinHandle<executor::RunReport>,
}

fn start(delay: Duration, prior: BTreeMap<String, Prior>) -> Harness {
    let toolbox = Arc::new(Recorder {
        delay,
        ..Recorder::default()
    });
    let transitions = Arc::new(Transitions::default());
    let (control, receiver) = watch::channel(Control::default());
    let clock = Clock::starting_at(1_795_780_000_000);
    let context = RunContext {
        toolbox: toolbox.clone(),
        options: RunOptions::default(),
        observer: transitions.clone(),
        gate: Arc::new(executor::AllowAll),
        control: receiver,
        prior,
        clock,
        started_at: clock.now_ms(),
        // These playbooks wait on operators for hours of virtual time.
        default_timeout_ms: None,
    };
    let run = tokio::spawn(async move {
        let plan = plan();
        let playbook = plan.playbook("gated").unwrap().clone();
        let arguments = BTreeMap::from([("deployment".to_string(), Value::String("api".into()))]);
        executor::run_with(&playbook, arguments, context).await
    });
    Harness {
        toolbox,
        transitions,
        control,
        run,
    }
}

fn outcome<'a>(report: &'a executor::RunReport, id: &str) -> &'a TaskOutcome {
    &report
        .tasks
        .iter()
        .find(|task| task.id == id)
        .unwrap()
        .outcome
}

async fn settle() {
    // Lets every spawned task run until it waits on the (paused) clock or a channel.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_approved_action_runs_after_the_approval() {
    let harness = start(Duration::ZERO, BTreeMap::new());
    settle().await;
    assert!(harness.transitions.awaiting("scale"));
    assert_eq!(
        *harness.toolbox.calls.lock().unwrap(),
        ["http.get"],
        "the action waits for a human"
    );
    harness.control.send_modify(|control| {
        control
            .decisions
            .insert("scale".into(), Decision::Approved { by: "alice".into() });
    });
    let report = harness.run.await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    assert_eq!(
        *harness.toolbox.calls.lock().unwrap(),
        ["http.get", "k8s.scale", "notify.slack"]
    );
    assert!(
        harness
            .transitions
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(task, transition)| task == "scale"
                && *transition == Transition::Approved { by: "alice".into() })
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_approval_takes_the_failure_policy() {
    let harness = start(Duration::ZERO, BTreeMap::new());
    settle().await;
    harness.control.send_modify(|control| {
        control.decisions.insert(
            "scale".into(),
            Decision::Rejected {
                by: "bob".into(),
                reason: "not during the sale".into(),
            },
        );
    });
    let report = harness.run.await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Escalated, "on failure escalate");
    assert!(matches!(
        outcome(&report, "scale"),
        TaskOutcome::Failed { reason } if reason == "approval rejected by bob: not during the sale"
    ));
    assert!(
        !harness
            .toolbox
            .calls
            .lock()
            .unwrap()
            .contains(&"k8s.scale".to_string())
    );
}

#[tokio::test(start_paused = true)]
async fn an_approval_that_times_out_takes_the_failure_policy() {
    let harness = start(Duration::ZERO, BTreeMap::new());
    let started = tokio::time::Instant::now();
    let report = harness.run.await.unwrap();
    assert_eq!(
        tokio::time::Instant::now() - started,
        Duration::from_secs(600)
    );
    assert_eq!(report.outcome, RunOutcome::Escalated);
    assert!(matches!(
        outcome(&report, "scale"),
        TaskOutcome::Failed { reason } if reason == "approval timed out after 10m"
    ));
    // Escalation stops the run and hands it to a human.
    assert_eq!(*harness.toolbox.calls.lock().unwrap(), ["http.get"]);
    assert_eq!(outcome(&report, "tell"), &TaskOutcome::NotRun);
}

#[tokio::test(start_paused = true)]
async fn a_paused_run_starts_nothing_new_until_resumed() {
    let harness = start(Duration::from_secs(1), BTreeMap::new());
    settle().await;
    harness.control.send_modify(|control| control.paused = true);
    // The health check was already running: it finishes, nothing after it starts.
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    assert_eq!(*harness.toolbox.calls.lock().unwrap(), ["http.get"]);
    assert!(!harness.transitions.awaiting("scale"));
    assert!(!harness.run.is_finished(), "a paused run waits");
    harness.control.send_modify(|control| {
        control.paused = false;
        control
            .decisions
            .insert("scale".into(), Decision::Approved { by: "alice".into() });
    });
    let report = harness.run.await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    assert_eq!(
        *harness.toolbox.calls.lock().unwrap(),
        ["http.get", "k8s.scale", "notify.slack"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_run_stops_what_runs_and_starts_nothing() {
    let harness = start(Duration::from_secs(4), BTreeMap::new());
    tokio::time::sleep(Duration::from_secs(1)).await;
    harness
        .control
        .send_modify(|control| control.cancelled = Some("by carol".into()));
    let report = harness.run.await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Cancelled);
    assert_eq!(report.stopped.as_deref(), Some("cancelled: by carol"));
    assert!(matches!(
        outcome(&report, "health"),
        TaskOutcome::Cancelled { .. }
    ));
    assert_eq!(outcome(&report, "scale"), &TaskOutcome::NotRun);
    assert_eq!(outcome(&report, "tell"), &TaskOutcome::NotRun);
}

#[tokio::test(start_paused = true)]
async fn a_continued_run_keeps_what_finished_and_its_pending_approval_deadline() {
    let clock_start = 1_795_780_000_000;
    let prior = BTreeMap::from([
        (
            "health".to_string(),
            Prior::Finished {
                outcome: TaskOutcome::Succeeded {
                    output: Value::record([("ok".to_string(), Value::Bool(true))]),
                },
                attempts: 1,
                arguments: None,
                finished_at: None,
            },
        ),
        (
            "scale".to_string(),
            Prior::AwaitingApproval {
                deadline: Some(clock_start + 60_000),
            },
        ),
    ]);
    let harness = start(Duration::ZERO, prior);
    let started = tokio::time::Instant::now();
    let report = harness.run.await.unwrap();
    assert_eq!(
        tokio::time::Instant::now() - started,
        Duration::from_secs(60),
        "the deadline from before the restart holds, not a fresh 10m"
    );
    assert!(
        !harness
            .toolbox
            .calls
            .lock()
            .unwrap()
            .contains(&"http.get".to_string()),
        "a finished task is not run again"
    );
    assert!(matches!(
        outcome(&report, "scale"),
        TaskOutcome::Failed { reason } if reason.starts_with("approval timed out")
    ));
}

#[tokio::test(start_paused = true)]
async fn a_failure_from_before_a_restart_still_takes_its_policy() {
    let prior = BTreeMap::from([(
        "health".to_string(),
        Prior::Finished {
            outcome: TaskOutcome::Failed {
                reason: "connection refused".into(),
            },
            attempts: 1,
            arguments: None,
            finished_at: None,
        },
    )]);
    let harness = start(Duration::ZERO, prior);
    let report = harness.run.await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Failed, "on failure abort");
    assert_eq!(outcome(&report, "scale"), &TaskOutcome::NotRun);
    assert!(harness.toolbox.calls.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn what_finished_before_a_restart_stays_in_the_report_when_the_run_stops_early() {
    let prior = BTreeMap::from([
        (
            "health".to_string(),
            Prior::Finished {
                outcome: TaskOutcome::Failed {
                    reason: "connection refused".into(),
                },
                attempts: 1,
                arguments: None,
                finished_at: None,
            },
        ),
        (
            "scale".to_string(),
            Prior::Finished {
                outcome: TaskOutcome::Succeeded {
                    output: Value::record([("summary".to_string(), Value::String("3 → 4".into()))]),
                },
                attempts: 1,
                arguments: None,
                finished_at: Some(1_795_780_000_000),
            },
        ),
    ]);
    let harness = start(Duration::ZERO, prior);
    let report = harness.run.await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Failed);
    assert!(
        matches!(outcome(&report, "scale"), TaskOutcome::Succeeded { .. }),
        "the scale from before the restart must keep its outcome (and so its revert): {report:?}"
    );
    assert_eq!(outcome(&report, "tell"), &TaskOutcome::NotRun);
}

/// Records nothing: every `Started` fails, as a journal that cannot commit would.
struct Unrecordable;

impl Observer for Unrecordable {
    fn transition(&self, _task: &str, transition: Transition, _at_ms: i64) -> TransitionFuture {
        let result = match transition {
            Transition::Started { .. } => Err("disk I/O error".to_string()),
            _ => Ok(()),
        };
        Box::pin(async move { result })
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_start_cannot_be_recorded_is_not_made() {
    let toolbox = Arc::new(Recorder::default());
    let (control, receiver) = watch::channel(Control::default());
    control.send_modify(|control| {
        control
            .decisions
            .insert("scale".into(), Decision::Approved { by: "alice".into() });
    });
    let clock = Clock::starting_at(1_795_780_000_000);
    let context = RunContext {
        toolbox: toolbox.clone(),
        options: RunOptions::default(),
        observer: Arc::new(Unrecordable),
        gate: Arc::new(executor::AllowAll),
        control: receiver,
        prior: BTreeMap::new(),
        clock,
        started_at: clock.now_ms(),
        // These playbooks wait on operators for hours of virtual time.
        default_timeout_ms: None,
    };
    let plan = plan();
    let arguments = BTreeMap::from([("deployment".to_string(), Value::String("api".into()))]);
    let report = executor::run_with(plan.playbook("gated").unwrap(), arguments, context).await;
    assert!(
        toolbox.calls.lock().unwrap().is_empty(),
        "no call without a recorded start"
    );
    assert!(matches!(
        outcome(&report, "health"),
        TaskOutcome::Failed { reason } if reason.contains("the start could not be recorded") && reason.contains("disk I/O error")
    ));
    assert_eq!(report.outcome, RunOutcome::Failed);
    drop(control);
}
