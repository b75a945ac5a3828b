//! The payment example's playbook run against test doubles: dependency order, concurrency,
//! `when`, retries with backoff, failure policies and dry runs, all on tokio's paused clock.

use medic_compiler::plan::{self, Plan, Value};
use medic_runtime::executor::{
    self, CallError, CallFuture, RunOptions, RunOutcome, TaskOutcome, Toolbox,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn payment_plan() -> Plan {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new(
        "payment_latency.ops",
        include_str!("../../../examples/payment_latency.ops"),
    )]);
    plan::lower(&analysis).unwrap()
}

fn record(fields: &[(&str, Value)]) -> Value {
    Value::record(
        fields
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone())),
    )
}

/// A recorded call: function, arguments, and when it was made.
type Call = (String, BTreeMap<String, Value>, tokio::time::Instant);

/// Answers each function with a scripted result, after a scripted delay, and records calls.
#[derive(Default)]
struct Doubles {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<BTreeMap<String, u32>>,
    delay: BTreeMap<String, Duration>,
    healthy: bool,
    error_rate: f64,
}

impl Doubles {
    fn new(healthy: bool, error_rate: f64) -> Doubles {
        Doubles {
            healthy,
            error_rate,
            ..Doubles::default()
        }
    }

    fn failing(self, function: &str, times: u32) -> Doubles {
        self.failures.lock().unwrap().insert(function.into(), times);
        self
    }

    fn slow(mut self, function: &str, delay: Duration) -> Doubles {
        self.delay.insert(function.into(), delay);
        self
    }

    fn called(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(function, _, _)| function.clone())
            .collect()
    }

    fn args_of(&self, function: &str) -> BTreeMap<String, Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .find(|(name, _, _)| name == function)
            .unwrap()
            .1
            .clone()
    }
}

impl Toolbox for Doubles {
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture {
        self.calls.lock().unwrap().push((
            function.to_string(),
            args.clone(),
            tokio::time::Instant::now(),
        ));
        let fail = {
            let mut failures = self.failures.lock().unwrap();
            match failures.get_mut(function) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            }
        };
        let delay = self.delay.get(function).copied().unwrap_or_default();
        let result = match function {
            _ if fail => Err(CallError::Failed(format!("{function} refused"))),
            "http.get" => Ok(record(&[
                ("ok", Value::Bool(self.healthy)),
                ("status", Value::Int(200)),
            ])),
            "logs.aggregate" => Ok(record(&[
                ("error_rate", Value::Percent(self.error_rate)),
                ("errors", Value::Int(3)),
                ("summary", Value::String("3 errors.".into())),
            ])),
            "diagnose.walk" => Ok(record(&[(
                "summary",
                Value::String("order is the most likely root cause.".into()),
            )])),
            "trace.dependencies" => Ok(record(&[(
                "services",
                Value::List(vec![
                    Value::String("order".into()),
                    Value::String("inventory-db".into()),
                ]),
            )])),
            "k8s.scale" => Ok(record(&[(
                "summary",
                Value::String("payment-gateway: 3 → 4 replicas (max 5)".into()),
            )])),
            "notify.email" => Ok(record(&[("delivered", Value::Bool(true))])),
            other => Err(CallError::Unknown(other.into())),
        };
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            result
        })
    }
}

fn arguments() -> BTreeMap<String, Value> {
    BTreeMap::from([
        (
            "service".to_string(),
            Value::String("payment-gateway".into()),
        ),
        ("namespace".to_string(), Value::String("shop".into())),
        ("since".to_string(), Value::Time(1_795_780_000_000)),
    ])
}

async fn run(doubles: &Arc<Doubles>, options: RunOptions) -> executor::RunReport {
    let plan = payment_plan();
    let toolbox: Arc<dyn Toolbox> = doubles.clone();
    executor::run(
        plan.playbook("payment_troubleshoot").unwrap(),
        arguments(),
        toolbox,
        options,
    )
    .await
}

fn outcome<'a>(report: &'a executor::RunReport, id: &str) -> &'a TaskOutcome {
    &report
        .tasks
        .iter()
        .find(|task| task.id == id)
        .unwrap()
        .outcome
}

#[tokio::test(start_paused = true)]
async fn a_healthy_service_with_clean_logs_is_scaled_and_reported() {
    let doubles = Arc::new(Doubles::new(true, 2.0));
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    assert_eq!(
        doubles.called(),
        [
            "http.get",
            "logs.aggregate",
            "diagnose.walk",
            "trace.dependencies",
            "k8s.scale",
            "notify.email"
        ]
    );
    assert_eq!(
        doubles.args_of("http.get")["url"],
        Value::Url(plan::UrlValue {
            href: "http://payment-gateway/health".into(),
            host_from_data: true,
        })
    );
    assert_eq!(doubles.args_of("k8s.scale")["max"], Value::Int(5));
    assert_eq!(
        doubles.args_of("notify.email")["body"],
        Value::String(
            "order is the most likely root cause. Logs: 3 errors. payment-gateway: 3 → 4 replicas (max 5); downstream: order, inventory-db".into()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_service_is_not_scaled() {
    let doubles = Arc::new(Doubles::new(false, 2.0));
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    assert!(
        matches!(outcome(&report, "scale"), TaskOutcome::Skipped { reason } if reason.contains("is false"))
    );
    assert!(!doubles.called().contains(&"k8s.scale".to_string()));
    assert!(
        matches!(&doubles.args_of("notify.email")["body"], Value::String(body) if body.contains("not scaled"))
    );
}

#[tokio::test(start_paused = true)]
async fn failed_log_aggregation_continues_and_counts_as_the_worst_case() {
    let doubles = Arc::new(Doubles::new(true, 2.0).failing("logs.aggregate", 1));
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(
        report.outcome,
        RunOutcome::Succeeded,
        "logs has `on failure continue`"
    );
    assert!(
        matches!(outcome(&report, "logs"), TaskOutcome::Failed { reason } if reason == "logs.aggregate refused")
    );
    // `(logs.error_rate ?? 100%) < 10%` is false without logs: no scale-up.
    assert!(matches!(
        outcome(&report, "scale"),
        TaskOutcome::Skipped { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn health_checks_are_retried_with_doubling_backoff() {
    let doubles = Arc::new(Doubles::new(true, 2.0).failing("http.get", 2));
    let start = tokio::time::Instant::now();
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    let status = report
        .tasks
        .iter()
        .find(|task| task.id == "status")
        .unwrap();
    assert_eq!(status.attempts, 3);
    let times: Vec<Duration> = doubles
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(function, _, _)| function == "http.get")
        .map(|(_, _, at)| *at - start)
        .collect();
    assert_eq!(
        times,
        [
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(6)
        ],
        "backoff 2s then 4s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_check_that_keeps_failing_is_reported_and_nothing_is_scaled() {
    // No answer from the health endpoint is when the diagnosis matters most: the run goes
    // on (`on failure continue`), and the scale-up, which needs a healthy service, is skipped.
    let doubles = Arc::new(Doubles::new(true, 2.0).failing("http.get", 10));
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    let status = report
        .tasks
        .iter()
        .find(|task| task.id == "status")
        .unwrap();
    assert_eq!(status.attempts, 4);
    assert!(matches!(status.outcome, TaskOutcome::Failed { .. }));
    assert!(matches!(
        outcome(&report, "scale"),
        TaskOutcome::Skipped { .. }
    ));
    assert!(!doubles.called().contains(&"k8s.scale".to_string()));
    assert!(doubles.called().contains(&"diagnose.walk".to_string()));
    assert!(
        matches!(&doubles.args_of("notify.email")["body"], Value::String(body) if body.contains("not scaled"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_scale_up_escalates() {
    let doubles = Arc::new(Doubles::new(true, 2.0).failing("k8s.scale", 1));
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(report.outcome, RunOutcome::Escalated);
    assert_eq!(outcome(&report, "report"), &TaskOutcome::NotRun);
}

#[tokio::test(start_paused = true)]
async fn independent_tasks_run_at_the_same_time() {
    let doubles = Arc::new(
        Doubles::new(true, 2.0)
            .slow("http.get", Duration::from_secs(30))
            .slow("logs.aggregate", Duration::from_secs(30)),
    );
    let start = tokio::time::Instant::now();
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_secs(30),
        "status and logs overlap"
    );
}

#[tokio::test(start_paused = true)]
async fn the_playbook_timeout_stops_a_run_that_hangs() {
    let doubles =
        Arc::new(Doubles::new(true, 2.0).slow("trace.dependencies", Duration::from_secs(3_600)));
    let start = tokio::time::Instant::now();
    let report = run(&doubles, RunOptions::default()).await;
    assert_eq!(report.outcome, RunOutcome::Failed);
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_secs(600),
        "timeout 10m"
    );
    assert!(
        matches!(outcome(&report, "deps"), TaskOutcome::Cancelled { reason } if reason.contains("playbook timed out after 10m"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_performs_no_action_and_says_what_it_would_do() {
    let doubles = Arc::new(Doubles::new(true, 2.0));
    let report = run(&doubles, RunOptions { dry_run: true }).await;
    assert_eq!(report.outcome, RunOutcome::Succeeded);
    assert_eq!(
        doubles.called(),
        [
            "http.get",
            "logs.aggregate",
            "diagnose.walk",
            "trace.dependencies"
        ],
        "queries only"
    );
    let TaskOutcome::WouldRun { args, .. } = outcome(&report, "scale") else {
        panic!("scale must be a dry-run action: {report:?}");
    };
    assert_eq!(args["deployment"], Value::String("payment-gateway".into()));
    assert_eq!(args["by"], Value::Int(1));
    assert!(matches!(
        outcome(&report, "report"),
        TaskOutcome::WouldRun { .. }
    ));
}

fn single_playbook(source: &str) -> plan::Playbook {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("x.ops", source)]);
    plan::lower(&analysis).unwrap().playbooks[0].clone()
}

#[tokio::test(start_paused = true)]
async fn a_playbook_without_a_timeout_gets_the_default_one() {
    let playbook = single_playbook(
        "import std.{trace}\nplaybook hangs() {\n  task deps = trace.dependencies(service: \"x\")\n}\n",
    );
    assert_eq!(playbook.timeout_ms, None);
    let doubles =
        Arc::new(Doubles::new(true, 0.0).slow("trace.dependencies", Duration::from_secs(86_400)));
    let start = tokio::time::Instant::now();
    let context = executor::RunContext::new(doubles.clone(), RunOptions::default());
    let report = executor::run_with(&playbook, BTreeMap::new(), context).await;
    assert_eq!(report.outcome, RunOutcome::Failed);
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_secs(3_600)
    );
    assert_eq!(
        report.stopped.as_deref(),
        Some("playbook timed out after 1h")
    );
}

#[tokio::test(start_paused = true)]
async fn the_retry_backoff_doubles_up_to_five_minutes() {
    let playbook = single_playbook(
        "import std.{http}\nplaybook flaky() {\n  timeout 3h\n  task health = http.get(\"http://x/health\") {\n    retry 20 backoff 1m\n  }\n}\n",
    );
    let doubles = Arc::new(Doubles::new(true, 0.0).failing("http.get", 100));
    let report = executor::run(
        &playbook,
        BTreeMap::new(),
        doubles.clone(),
        RunOptions::default(),
    )
    .await;
    assert_eq!(report.outcome, RunOutcome::Failed);
    let calls = doubles.calls.lock().unwrap();
    assert_eq!(calls.len(), 21);
    let waits: Vec<u64> = calls
        .windows(2)
        .map(|pair| (pair[1].2 - pair[0].2).as_secs() / 60)
        .collect();
    // 1m, 2m, 4m, then never more than 5m (uncapped, the last wait would be 2^19 minutes).
    let mut expected = vec![1, 2, 4];
    expected.extend(std::iter::repeat_n(5, 17));
    assert_eq!(waits, expected);
}

#[tokio::test(start_paused = true)]
async fn a_scaled_clock_runs_faster_and_sleeps_for_less_wall_time() {
    let clock = medic_runtime::executor::Clock::scaled(1_000_000, tokio::time::Instant::now(), 60);
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    assert_eq!(clock.now_ms(), 1_060_000);
    let wall = tokio::time::Instant::now();
    // Half an hour of the clock's time (a `revert after 30m`) is half a minute of wall time.
    clock.sleep_until(1_060_000 + 30 * 60_000).await;
    assert_eq!(wall.elapsed(), std::time::Duration::from_secs(30));
    assert_eq!(clock.now_ms(), 1_060_000 + 30 * 60_000);
    assert_eq!(
        medic_runtime::executor::Clock::scaled(0, wall, 0).speed(),
        1
    );
}
