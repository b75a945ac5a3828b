//! The demo's script: each incident is started in the world, and the demo follows what
//! the world's alerting, Medic's run and the world itself do, prints a short account, and
//! checks that the incident ended as the runbook says it should. The checks read the run
//! from the server's API (the journal) and the world's state, never the printed text.

use super::server::{RunDetail, Server};
use medic_compiler::plan::Value;
use medic_runtime::executor::{TaskOutcome, TaskReport};
use medic_sandbox::clock::SimClock;
use medic_sandbox::receiver::{Message, Receiver};
use medic_sandbox::shop::{AlertStatus, Incident, Shop, ShopEvent, Snapshot};
use std::path::Path;
use std::time::Duration;

/// How long (virtual time) an incident may take to be alerted on, run, resolved and reverted.
const ALERT_WITHIN: Duration = Duration::from_secs(15 * 60);
const RUN_WITHIN: Duration = Duration::from_secs(20);
const RESOLVE_WITHIN: Duration = Duration::from_secs(30 * 60);

pub struct Script<'a> {
    shop: &'a Shop,
    medic: &'a Server,
    receiver: &'a Receiver,
    clock: SimClock,
    events: tokio::sync::broadcast::Receiver<ShopEvent>,
    results: Vec<(Incident, Vec<String>)>,
    /// Messages of the receiver already printed.
    printed: usize,
    /// Whether the incident's fault is on (until the world says it ended).
    fault_on: bool,
    /// Whether its alert resolved while the fault was on.
    resolved_early: bool,
}

/// What the demo expects of each incident.
struct Expectation {
    rule: &'static str,
    alert: &'static str,
    /// What is wrong in the world, for the account.
    cause: &'static str,
    /// What ends it, once Medic has done its part.
    ending: &'static str,
}

fn expectation(incident: Incident) -> Expectation {
    match incident {
        Incident::OrderCpu => Expectation {
            rule: "order_cpu",
            alert: "High_CPU_Usage",
            cause: "a batch job more than doubles order-service's traffic",
            ending: "the batch job finishes",
        },
        Incident::PaymentLatency => Expectation {
            rule: "payment_latency",
            alert: "Service_Latency_Exceeded",
            cause: "a slow query in order-service's new release makes payment-gateway wait",
            ending: "the on-call engineer rolls order-service back",
        },
        Incident::DiskFull => Expectation {
            rule: "disk_full",
            alert: "Disk_Full",
            cause: "logging-node's /var/log fills with old logs",
            ending: "nothing more to do: the cleanup freed the disk",
        },
        Incident::InventoryDb => Expectation {
            rule: "inventory_db",
            alert: "DB_Connection_Error",
            cause: "a job leaks inventory-db connections until none are left",
            ending: "the database team kills the leaking job",
        },
    }
}

impl<'a> Script<'a> {
    pub fn new(
        shop: &'a Shop,
        medic: &'a Server,
        receiver: &'a Receiver,
        clock: SimClock,
    ) -> Script<'a> {
        Script {
            events: shop.subscribe(),
            shop,
            medic,
            receiver,
            clock,
            results: Vec::new(),
            printed: 0,
            fault_on: false,
            resolved_early: false,
        }
    }

    pub fn introduce(&self, speed: u32, store: &Path, temporary: bool, serving: bool) {
        println!(
            "Medic demo: a simulated shop (gateway → payment-gateway → order-service → inventory-service → inventory-db)"
        );
        println!(
            "  served on loopback as Kubernetes, Prometheus, Jaeger and Elasticsearch APIs, and a real medic serve on {}",
            self.medic.url()
        );
        println!(
            "  the demo's clock runs {speed}× faster than wall time: a minute in the shop passes in {:.1} s",
            60.0 / f64::from(speed)
        );
        println!(
            "  journal: {}{}",
            store.display(),
            if temporary { " (temporary)" } else { "" }
        );
        if serving {
            println!(
                "  full reports: MEDIC_SERVER={} MEDIC_TOKEN={} medic runs ID",
                self.medic.url(),
                self.medic.token
            );
        } else {
            println!(
                "  full reports: `medic runs ID` while the server runs (`medic demo --serve` keeps it running)"
            );
        }
    }

    /// Plays one incident and records what was not as expected.
    pub async fn play(&mut self, incident: Incident) {
        let expected = expectation(incident);
        let number = self.results.len() + 1;
        println!();
        println!("== {number}. {}: {}", incident.name(), expected.cause);
        let mut problems = Vec::new();
        self.play_steps(incident, &expected, &mut problems).await;
        // Whatever happened, the fault does not spill into the next incident.
        self.shop.end(incident);
        self.finish(incident, problems);
    }

    async fn play_steps(
        &mut self,
        incident: Incident,
        expected: &Expectation,
        problems: &mut Vec<String>,
    ) {
        let before = self.shop.snapshot();
        let last_run = match self.medic.runs().await {
            Ok(runs) => runs.iter().map(|run| run.id).max().unwrap_or(0),
            Err(error) => {
                problems.push(format!("the server's runs cannot be read: {error:#}"));
                return;
            }
        };
        // Only what happens from the trigger on belongs to this incident.
        self.drain_events();
        let messages_before = self.receiver.messages().len();
        self.shop.trigger(incident);
        match self
            .wait_alert(expected.alert, AlertStatus::Firing, ALERT_WITHIN)
            .await
        {
            Ok(value) => println!(
                "  alert    {} firing ({value}), sent to medic serve as an Alertmanager webhook",
                expected.alert
            ),
            Err(problem) => {
                problems.push(problem);
                return;
            }
        }
        let during = self.shop.snapshot();
        println!("  world    {}", world_line(incident, &during));
        let run = match self.wait_run(expected.rule, last_run).await {
            Ok(run) => run,
            Err(problem) => {
                problems.push(problem);
                return;
            }
        };
        print_run(&run);
        self.print_messages();
        // A couple of the shop's minutes for the action's effect to show, then the world's
        // state as of a tick after them.
        self.clock.sleep(Duration::from_secs(120)).await;
        let after = self.fresh_snapshot(self.clock.now_ms()).await;
        if let Some(line) = effect_line(incident, &during, &after) {
            println!("  effect   {line}");
        }
        let mail: Vec<Message> = self
            .receiver
            .messages()
            .into_iter()
            .skip(messages_before)
            .collect();
        problems.extend(check_run(incident, &run, &before, &during, &after, &mail));
        if incident != Incident::DiskFull {
            println!("  then     {}", expected.ending);
            self.shop.end(incident);
        }
        match self
            .wait_alert(expected.alert, AlertStatus::Resolved, RESOLVE_WITHIN)
            .await
        {
            Ok(_) => println!("  alert    {} resolved", expected.alert),
            Err(problem) => problems.push(problem),
        }
        if self.resolved_early {
            problems.push(format!(
                "{} resolved while the fault was still on: a revert on resolve would have undone the fix too early",
                expected.alert
            ));
        }
        match self.wait_reverts(&run).await {
            Ok(run) => {
                for revert in &run.reverts {
                    println!(
                        "  revert   {}: {}{}",
                        revert.task,
                        revert.state,
                        if revert.detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", revert.detail)
                        }
                    );
                    if revert.state != "reverted" {
                        problems.push(format!("the revert of {} is {}", revert.task, revert.state));
                    }
                }
                // The world's state as of a tick after the revert.
                let now = self.fresh_snapshot(self.clock.now_ms()).await;
                problems.extend(check_restored(incident, &before, &now));
                if !run.reverts.is_empty() {
                    println!("  world    {}", world_line(incident, &now));
                }
            }
            Err(problem) => problems.push(problem),
        }
        self.print_messages();
        println!("  report   medic runs {}", run.id);
    }

    fn finish(&mut self, incident: Incident, problems: Vec<String>) {
        if problems.is_empty() {
            println!("  ok       ended as the runbook says");
        }
        for problem in &problems {
            println!("  PROBLEM  {problem}");
        }
        self.results.push((incident, problems));
    }

    /// Prints the verdict; true when every incident ended as expected.
    pub fn summarize(&self, took: Duration) -> bool {
        let failed: Vec<&str> = self
            .results
            .iter()
            .filter(|(_, problems)| !problems.is_empty())
            .map(|(incident, _)| incident.name())
            .collect();
        println!();
        if failed.is_empty() {
            println!(
                "All {} incidents ended as the runbooks say, in {:.1} s.",
                self.results.len(),
                took.as_secs_f64()
            );
        } else {
            println!(
                "{} of {} incidents did not end as expected: {}",
                failed.len(),
                self.results.len(),
                failed.join(", ")
            );
        }
        failed.is_empty()
    }

    /// With `--serve`: prints what the world's alerting and the receiver see until Ctrl-C.
    pub async fn follow_until_interrupted(&mut self) {
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            tokio::select! {
                _ = &mut interrupted => return,
                event = self.events.recv() => match event {
                    Ok(event) => println!("world: {}", event_line(&event)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(Duration::from_millis(500)) => self.print_messages(),
            }
        }
    }

    fn print_messages(&mut self) {
        let messages = self.receiver.messages();
        for message in messages.iter().skip(self.printed) {
            match message {
                Message::Email {
                    to, subject, body, ..
                } => {
                    println!("  email    to {}: {subject}", to.join(", "));
                    for line in wrap(body, 90) {
                        println!("           {line}");
                    }
                }
                Message::Slack { channel, text } => println!("  slack    {channel}: {text}"),
                Message::Webhook { path, body } => println!("  webhook  {path}: {body}"),
            }
        }
        self.printed = messages.len();
    }

    /// Forgets the events of earlier incidents.
    fn drain_events(&mut self) {
        use tokio::sync::broadcast::error::TryRecvError;
        while let Ok(_) | Err(TryRecvError::Lagged(_)) = self.events.try_recv() {}
        self.fault_on = true;
        self.resolved_early = false;
    }

    /// Waits (virtual `within`) for the world to send `alert` with `status`; its value, or
    /// the problem.
    async fn wait_alert(
        &mut self,
        alert: &str,
        status: AlertStatus,
        within: Duration,
    ) -> Result<String, String> {
        use tokio::sync::broadcast::error::RecvError;
        let deadline = tokio::time::Instant::now() + self.clock.wall(within);
        loop {
            let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                return Err(format!(
                    "the world's alert {alert} was not {} within {} minutes of the shop's time",
                    status.as_str(),
                    within.as_secs() / 60
                ));
            };
            match event {
                Ok(ShopEvent::AlertSent {
                    name, status: sent, ..
                }) if name == alert && sent == status => {
                    if status == AlertStatus::Resolved && self.fault_on {
                        self.resolved_early = true;
                    }
                    let value = self
                        .shop
                        .snapshot()
                        .alerts
                        .iter()
                        .find(|firing| firing.name == alert)
                        .map(|firing| firing.value.clone());
                    return Ok(value.unwrap_or_else(|| status.as_str().to_string()));
                }
                Ok(ShopEvent::AlertFailed { name, error, .. }) if name == alert => {
                    return Err(format!(
                        "the world could not send {alert} to medic serve: {error}"
                    ));
                }
                Ok(ShopEvent::IncidentEnded { .. }) => self.fault_on = false,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err("the world stopped".into()),
            }
        }
    }

    /// The world's state as of a tick at or after `at_ms` (the shop's time), waiting for
    /// the tick when it has not come yet.
    async fn fresh_snapshot(&self, at_ms: i64) -> Snapshot {
        let deadline = tokio::time::Instant::now() + RUN_WITHIN;
        loop {
            let snapshot = self.shop.snapshot();
            if snapshot.at_ms >= at_ms || tokio::time::Instant::now() >= deadline {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (wall time) for a run of `rule` newer than `after` to end.
    async fn wait_run(&self, rule: &str, after: i64) -> Result<RunDetail, String> {
        let deadline = tokio::time::Instant::now() + RUN_WITHIN;
        loop {
            let runs = self
                .medic
                .runs()
                .await
                .map_err(|error| format!("the server's runs cannot be read: {error:#}"))?;
            if let Some(run) = runs
                .iter()
                .find(|run| run.id > after && run.rule == rule && run.ended())
            {
                return self
                    .medic
                    .run(run.id)
                    .await
                    .map_err(|error| format!("run {} cannot be read: {error:#}", run.id));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "no run of rule {rule} ended within {} s (MEDIC_LOG=info shows why an alert was suppressed)",
                    RUN_WITHIN.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the run's reverts to leave `pending`/`reverting`; the run as it is then.
    async fn wait_reverts(&self, run: &RunDetail) -> Result<RunDetail, String> {
        let deadline = tokio::time::Instant::now() + RUN_WITHIN;
        loop {
            let now = self
                .medic
                .run(run.id)
                .await
                .map_err(|error| format!("run {} cannot be read: {error:#}", run.id))?;
            let settled = now
                .reverts
                .iter()
                .all(|revert| !matches!(revert.state.as_str(), "pending" | "reverting"));
            if settled {
                return Ok(now);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the reverts of run {} did not finish within {} s",
                    run.id,
                    RUN_WITHIN.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn print_run(run: &RunDetail) {
    let Some(report) = &run.report else {
        println!(
            "  run {}  rule {}: {} (no report)",
            run.id, run.rule, run.state
        );
        return;
    };
    println!(
        "  run {}    rule {} → playbook {}: {}",
        run.id, run.rule, report.playbook, run.state
    );
    for task in &report.tasks {
        let (state, detail) = match &task.outcome {
            TaskOutcome::Succeeded { output } => ("ok", describe(output)),
            TaskOutcome::Skipped { reason } => ("skipped", reason.clone()),
            TaskOutcome::Failed { reason } => ("failed", reason.clone()),
            TaskOutcome::Cancelled { reason } => ("cancelled", reason.clone()),
            TaskOutcome::WouldRun { .. } => ("would run", String::new()),
            TaskOutcome::NotRun => ("not run", String::new()),
        };
        let mut lines = wrap(&detail, 80).into_iter();
        println!(
            "    {:<12} {:<8} {}",
            task.id,
            state,
            lines.next().unwrap_or_default()
        );
        for line in lines {
            println!("    {:<12} {:<8} {line}", "", "");
        }
    }
}

/// One line for a task's output: its `summary` when it has one, else its fields.
fn describe(output: &Value) -> String {
    match output {
        Value::Record(fields) => {
            if let Some(Value::String(summary)) = fields.get("summary") {
                return summary.clone();
            }
            if let Some(status) = fields.get("status") {
                return format!("status {}", text(status));
            }
            if let Some(value) = fields.get("value") {
                return format!("value {}", text(value));
            }
            fields
                .iter()
                .filter(|(_, value)| match value {
                    Value::Record(_) => false,
                    Value::List(items) => {
                        !items.iter().any(|item| matches!(item, Value::Record(_)))
                    }
                    _ => true,
                })
                .map(|(name, value)| format!("{name} {}", text(value)))
                .collect::<Vec<_>>()
                .join(", ")
        }
        Value::List(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => text(other),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Float(number) => format!("{number:.3}"),
        Value::Percent(points) => format!("{points:.1}%"),
        Value::Null => "none".into(),
        Value::Int(number) => number.to_string(),
        Value::Bool(truth) => truth.to_string(),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
        Value::Enum { name, .. } => name.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + word.chars().count() >= width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

fn task<'r>(run: &'r RunDetail, id: &str) -> Option<&'r TaskReport> {
    run.report
        .as_ref()
        .and_then(|report| report.tasks.iter().find(|task| task.id == id))
}

fn output<'r>(run: &'r RunDetail, id: &str) -> Option<&'r Value> {
    match task(run, id).map(|task| &task.outcome) {
        Some(TaskOutcome::Succeeded { output }) => Some(output),
        _ => None,
    }
}

fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Record(fields) => fields.get(name),
        _ => None,
    }
}

fn int(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Int(number)) => Some(*number),
        _ => None,
    }
}

fn number(value: Option<&Value>) -> Option<f64> {
    match value {
        Some(Value::Float(number)) => Some(*number),
        Some(Value::Int(number)) => Some(*number as f64),
        Some(Value::Percent(points)) => Some(points / 100.0),
        _ => None,
    }
}

fn service<'s>(
    snapshot: &'s Snapshot,
    name: &str,
) -> Option<&'s medic_sandbox::shop::ServiceSnapshot> {
    snapshot.services.get(name)
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "?".into(), |share| format!("{:.0}%", share * 100.0))
}

/// The state of the world that matters to `incident`, in one line.
fn world_line(incident: Incident, snapshot: &Snapshot) -> String {
    let describe = |name: &str| match service(snapshot, name) {
        Some(state) => format!(
            "{name}: {} replicas, CPU {}, p99 {:.0} ms, errors {:.1}%",
            state
                .replicas
                .map_or_else(|| "?".into(), |replicas| replicas.to_string()),
            percent(state.cpu),
            state.p99_ms,
            state.error_rate * 100.0
        ),
        None => format!("{name}: not in the world"),
    };
    match incident {
        Incident::OrderCpu => describe("order-service"),
        Incident::PaymentLatency => format!(
            "{}; order-service p99 {:.0} ms",
            describe("payment-gateway"),
            service(snapshot, "order-service").map_or(0.0, |state| state.p99_ms)
        ),
        Incident::DiskFull => format!(
            "logging-node: /var/log {:.0}% used",
            snapshot.disk_used * 100.0
        ),
        Incident::InventoryDb => {
            let database = snapshot.databases.get("inventory-db");
            format!(
                "inventory-db: {:.0} of {:.0} connections; {}",
                database.map_or(0.0, |database| database.connections),
                database.map_or(0.0, |database| database.max_connections),
                describe("inventory-service")
            )
        }
    }
}

/// What Medic's action changed in the world, from `during` (the alert) to `after`.
fn effect_line(incident: Incident, during: &Snapshot, after: &Snapshot) -> Option<String> {
    let change = |name: &str| {
        let (Some(before), Some(now)) = (service(during, name), service(after, name)) else {
            return String::new();
        };
        format!(
            "{name}: {} → {} replicas, CPU {} → {}, p99 {:.0} → {:.0} ms",
            before.replicas.unwrap_or_default(),
            now.replicas.unwrap_or_default(),
            percent(before.cpu),
            percent(now.cpu),
            before.p99_ms,
            now.p99_ms
        )
    };
    match incident {
        Incident::OrderCpu => Some(change("order-service")),
        Incident::PaymentLatency => Some(format!(
            "{} (the cause is downstream, as the diagnosis says)",
            change("payment-gateway")
        )),
        Incident::DiskFull => Some(format!(
            "logging-node: /var/log {:.0}% → {:.0}% used",
            during.disk_used * 100.0,
            after.disk_used * 100.0
        )),
        Incident::InventoryDb => None,
    }
}

/// What the run of `incident` must have done, read from its report and the world.
fn check_run(
    incident: Incident,
    run: &RunDetail,
    before: &Snapshot,
    during: &Snapshot,
    after: &Snapshot,
    mail: &[Message],
) -> Vec<String> {
    let mut problems = Vec::new();
    if run.state != "succeeded" {
        problems.push(format!("run {} ended {}, not succeeded", run.id, run.state));
    }
    let replicas =
        |snapshot: &Snapshot, name: &str| service(snapshot, name).and_then(|state| state.replicas);
    let scaled = |problems: &mut Vec<String>, deployment: &str| {
        let scale = output(run, "scale");
        let (from, to) = (
            int(scale.and_then(|scale| field(scale, "from"))),
            int(scale.and_then(|scale| field(scale, "to"))),
        );
        let was = replicas(before, deployment);
        if scale.is_none() || to != from.map(|from| from + 1) || from.map(|from| from as i32) != was
        {
            problems.push(format!(
                "task scale should have taken {deployment} from {was:?} to one more replica; it reported {from:?} → {to:?}"
            ));
        }
        if replicas(after, deployment) != was.map(|was| was + 1) {
            problems.push(format!(
                "the world runs {:?} replicas of {deployment} after the scale-up, not {:?}",
                replicas(after, deployment),
                was.map(|was| was + 1)
            ));
        }
    };
    // Only what this incident's run sent.
    let mailed = |subject: &str, to: &str| {
        mail.iter().any(|message| {
            matches!(message, Message::Email { subject: sent, to: recipients, .. }
                if sent.contains(subject) && recipients.iter().any(|recipient| recipient == to))
        })
    };
    let slacked = |text: &str| {
        mail.iter().any(
            |message| matches!(message, Message::Slack { text: sent, .. } if sent.contains(text)),
        )
    };
    match incident {
        Incident::OrderCpu => {
            scaled(&mut problems, "order-service");
            let cpu = |snapshot: &Snapshot| {
                service(snapshot, "order-service").and_then(|state| state.cpu)
            };
            if !matches!((cpu(during), cpu(after)), (Some(high), Some(low)) if high > 0.9 && low < 0.9)
            {
                problems.push(format!(
                    "order-service's CPU should have gone from over 90% to under it; it went {} → {}",
                    percent(cpu(during)),
                    percent(cpu(after))
                ));
            }
            if output(run, "tell").is_none() || !slacked("order-service: 2 → 3 replicas") {
                problems.push("the team was not told on Slack".into());
            }
        }
        Incident::PaymentLatency => {
            if output(run, "status").and_then(|status| field(status, "ok"))
                != Some(&Value::Bool(true))
            {
                problems.push("payment-gateway's health check did not answer ok".into());
            }
            if output(run, "logs").is_none() {
                problems.push("the logs were not read".into());
            }
            let root =
                output(run, "diagnosis").and_then(|diagnosis| field(diagnosis, "root_cause"));
            if root != Some(&Value::String("order-service".into())) {
                problems.push(format!(
                    "the diagnosis should name order-service; it names {root:?}"
                ));
            }
            scaled(&mut problems, "payment-gateway");
            if !mailed("payment-gateway latency", "oncall@example.com") {
                problems.push("no report was mailed".into());
            }
        }
        Incident::DiskFull => {
            let value =
                |task: &str| number(output(run, task).and_then(|sample| field(sample, "value")));
            match (value("before"), value("after_cleanup")) {
                (Some(full), Some(clean)) if full > 0.85 && clean < 0.85 => {}
                (full, clean) => problems.push(format!(
                    "Prometheus should have shown the disk over 85% before the cleanup and under it after; it showed {full:?} → {clean:?}"
                )),
            }
            if after.disk_used >= 0.85 {
                problems.push(format!(
                    "the world's disk is still {:.0}% used",
                    after.disk_used * 100.0
                ));
            }
            if output(run, "report").is_none() || !slacked("after cleanup") {
                problems.push("the team was not told on Slack".into());
            }
        }
        Incident::InventoryDb => {
            let saturation = number(output(run, "db").and_then(|db| field(db, "saturation")));
            if !saturation.is_some_and(|share| share > 0.9) {
                problems.push(format!(
                    "diagnose.database should see inventory-db saturated; it saw {saturation:?}"
                ));
            }
            let root = output(run, "walk").and_then(|walk| field(walk, "root_cause"));
            if root != Some(&Value::String("inventory-db".into())) {
                problems.push(format!(
                    "the walk should name inventory-db; it names {root:?}"
                ));
            }
            if !mailed("connection errors", "dba@example.com") {
                problems.push("the database owners were not paged".into());
            }
        }
    }
    problems
}

/// After the alert resolved and the reverts ran: the world is back as it was.
fn check_restored(incident: Incident, before: &Snapshot, now: &Snapshot) -> Vec<String> {
    let deployment = match incident {
        Incident::OrderCpu => "order-service",
        Incident::PaymentLatency => "payment-gateway",
        Incident::DiskFull | Incident::InventoryDb => return Vec::new(),
    };
    let replicas =
        |snapshot: &Snapshot| service(snapshot, deployment).and_then(|state| state.replicas);
    if replicas(now) == replicas(before) {
        Vec::new()
    } else {
        vec![format!(
            "{deployment} should be back to {:?} replicas after the revert; the world runs {:?}",
            replicas(before),
            replicas(now)
        )]
    }
}

/// One line for what happened in the world (`--serve`).
fn event_line(event: &ShopEvent) -> String {
    match event {
        ShopEvent::AlertSent { name, status, .. } => {
            format!("alert {name} {} sent to medic serve", status.as_str())
        }
        ShopEvent::AlertFailed {
            name,
            status,
            error,
        } => format!(
            "alert {name} {} could not be sent: {error}",
            status.as_str()
        ),
        ShopEvent::ReplicasChanged {
            deployment,
            from,
            to,
        } => format!("{deployment}: {from} → {to} replicas"),
        ShopEvent::DiskCleaned { from, to } => format!(
            "logging-node: /var/log {:.0}% → {:.0}% used after a cleanup",
            from * 100.0,
            to * 100.0
        ),
        ShopEvent::IncidentStarted { incident } => format!("{} started", incident.name()),
        ShopEvent::IncidentEnded { incident } => format!("{} ended", incident.name()),
    }
}
