//! A real Alertmanager (Debian package `prometheus-alertmanager`) delivering alerts injected
//! with `amtool alert add` to `medic serve` on loopback: the runs that follow are exactly the
//! expected ones, across Alertmanager's repeated deliveries, and the resolved notification
//! starts only the rule that asks for resolved alerts.

use super::serve::{Receiver, Server, config, free_port, http, write_plan};
use super::temp_dir;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get update && apt-get install -y prometheus-alertmanager";

fn require(binary: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "`{binary}` is not installed; install it with: {INSTALL}"
    );
}

struct Alertmanager {
    child: Child,
    url: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PLAN: &str = r##"import std.{http}

/// Acts once per firing episode of `Hot`.
rule hot {
  on alert "Hot"
  when alert.severity >= critical
  run act(fingerprint: alert.fingerprint, service: alert.service)
  cooldown 1s per alert.fingerprint
}

/// Tells the receiver when a `Hot` alert resolves.
rule hot_resolved {
  on resolved alert "Hot"
  run resolved(fingerprint: alert.fingerprint)
  concurrency 10
}

playbook act(fingerprint: String, service: String) {
  task call = http.post(url: "http://127.0.0.1:RECEIVER/act/{service}/{fingerprint}")
}

playbook resolved(fingerprint: String) {
  task call = http.post(url: "http://127.0.0.1:RECEIVER/resolved/{fingerprint}")
}
"##;

fn amtool(am: &Alertmanager, args: &[&str]) {
    let output = Command::new("amtool")
        .arg(format!("--alertmanager.url={}", am.url))
        .args(["alert", "add"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "amtool failed: {output:?}");
}

fn wait_until(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What became of one processed firing delivery of `Hot` with critical severity: the runs
/// it started, the duplicates and the other suppressions journaled for it.
#[derive(Debug)]
#[expect(dead_code, reason = "alert_id is read in failure messages only")]
struct Delivery {
    alert_id: i64,
    runs: usize,
    duplicates: usize,
    other: usize,
}

/// Every processed delivery of a critical `Hot` alert in the journal of `dir`, in one query
/// (one snapshot).
fn deliveries(dir: &std::path::Path) -> Vec<Delivery> {
    let connection = rusqlite::Connection::open(dir.join("medic.db")).unwrap();
    connection
        .prepare(
            "SELECT a.id,
                (SELECT COUNT(*) FROM runs r WHERE r.alert_id = a.id AND r.rule = 'hot'),
                (SELECT COUNT(*) FROM suppressions s
                   WHERE s.alert_id = a.id AND s.rule = 'hot' AND s.reason = 'duplicate'),
                (SELECT COUNT(*) FROM suppressions s
                   WHERE s.alert_id = a.id AND NOT (s.rule = 'hot' AND s.reason = 'duplicate'))
             FROM alerts a
             WHERE a.name = 'Hot' AND a.status = 'firing' AND a.processed = 1
               AND a.fingerprint IN (SELECT fingerprint FROM runs WHERE rule = 'hot')",
        )
        .unwrap()
        .query_map([], |row| {
            Ok(Delivery {
                alert_id: row.get(0)?,
                runs: row.get(1)?,
                duplicates: row.get(2)?,
                other: row.get(3)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Suppressions in the journal of `dir` other than duplicates of rule `hot`.
fn other_suppressions(dir: &std::path::Path) -> i64 {
    let connection = rusqlite::Connection::open(dir.join("medic.db")).unwrap();
    connection
        .query_row(
            "SELECT COUNT(*) FROM suppressions WHERE NOT (rule = 'hot' AND reason = 'duplicate')",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn alerts_from_a_real_alertmanager_start_exactly_the_expected_runs() {
    require("prometheus-alertmanager");
    require("amtool");
    let dir = temp_dir("alertmanager");
    let receiver = Receiver::start();
    write_plan(&dir, &PLAN.replace("RECEIVER", &receiver.port.to_string()));
    let token = "am-token-123";
    let server = Server::start(
        &dir,
        &config("[auth]\ntoken_env = \"TEST_MEDIC_TOKEN\"\n"),
        Some(token),
    );
    let am_port = free_port();
    std::fs::write(
        dir.join("am.yml"),
        format!(
            "route: {{receiver: medic, group_by: [alertname, service], group_wait: 1s, group_interval: 1s, repeat_interval: 2s}}\n\
             receivers:\n\
             - name: medic\n\
             \x20 webhook_configs:\n\
             \x20 - url: {}/webhook/alertmanager\n\
             \x20   send_resolved: true\n\
             \x20   http_config:\n\
             \x20     authorization:\n\
             \x20       credentials: {token}\n",
            server.url
        ),
    )
    .unwrap();
    let am = Alertmanager {
        child: Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("amdata").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        url: format!("http://127.0.0.1:{am_port}"),
    };
    wait_until("Alertmanager to be ready", 30, || {
        http("GET", &format!("{}/-/ready", am.url), &[], b"").is_ok_and(|(status, _)| status == 200)
    });
    amtool(
        &am,
        &[
            "alertname=Hot",
            "service=api",
            "severity=critical",
            "--annotation=value=95%",
        ],
    );
    amtool(
        &am,
        &[
            "alertname=Hot",
            "service=db",
            "severity=critical",
            "--annotation=value=97%",
        ],
    );
    // No rule for a warning, nor for another alert name.
    amtool(&am, &["alertname=Hot", "service=web", "severity=warning"]);
    amtool(&am, &["alertname=Cold", "service=api", "severity=critical"]);
    server.wait_for_runs("two runs", |runs| runs.len() >= 2);
    // Alertmanager repeats its notifications every 2s here: wait until it has repeated each
    // of the two groups about twice, journaled as duplicates.
    wait_until("repeated deliveries journaled as duplicates", 60, || {
        let suppressions = server.json("/api/suppressions?limit=1000")["suppressions"].clone();
        suppressions.as_array().unwrap().len() >= 4
    });
    let runs = server.wait_for_runs("two finished runs", |runs| {
        runs.iter().all(|run| run["finished_at"].is_i64())
    });
    assert_eq!(runs.len(), 2, "{runs:#?}");
    // Every delivery of the two alerts but the first of each was journaled as exactly one
    // duplicate of the run that first one started: read in one snapshot of the journal, so
    // that deliveries arriving meanwhile do not matter.
    let accounts = deliveries(&dir);
    let runs_started: usize = accounts.iter().map(|account| account.runs).sum();
    let duplicates: usize = accounts.iter().map(|account| account.duplicates).sum();
    assert_eq!(runs_started, 2, "{accounts:#?}");
    assert!(
        accounts
            .iter()
            .all(|account| account.runs + account.duplicates == 1 && account.other == 0),
        "{accounts:#?}"
    );
    assert_eq!(duplicates, accounts.len() - 2, "{accounts:#?}");
    assert!(duplicates >= 4, "{accounts:#?}");
    assert_eq!(
        other_suppressions(&dir),
        0,
        "only duplicates are suppressed"
    );
    assert!(
        runs.iter()
            .all(|run| run["rule"] == "hot" && run["state"] == "succeeded"),
        "{runs:#?}"
    );
    let mut paths = receiver.paths.lock().unwrap().clone();
    paths.sort();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(
        paths[0].starts_with("/act/api/") && paths[1].starts_with("/act/db/"),
        "{paths:?}"
    );
    // The counter counts the same duplicates (and those journaled since the snapshot).
    let metrics = server.get("/metrics").1;
    let counted: usize = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"medic_suppressions_total{reason="duplicate"} "#))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no duplicate counter: {metrics}"));
    assert!(counted >= duplicates, "{counted} < {duplicates}: {metrics}");
    // Resolve the api alert: its end in the past makes Alertmanager send "resolved".
    let ended = medic_compiler::units::format_time(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
            - 1_000,
    );
    amtool(
        &am,
        &[
            "alertname=Hot",
            "service=api",
            "severity=critical",
            "--annotation=value=95%",
            &format!("--end={ended}"),
        ],
    );
    let fingerprint = paths[0].rsplit('/').next().unwrap().to_string();
    wait_until("the resolved run", 30, || {
        receiver
            .paths
            .lock()
            .unwrap()
            .contains(&format!("/resolved/{fingerprint}"))
    });
    let runs = server.wait_for_runs("three finished runs", |runs| {
        runs.len() == 3 && runs.iter().all(|run| run["finished_at"].is_i64())
    });
    assert_eq!(runs[0]["rule"], "hot_resolved", "{runs:#?}");
    assert_eq!(
        receiver
            .paths
            .lock()
            .unwrap()
            .iter()
            .filter(|path| path.starts_with("/act/"))
            .count(),
        2,
        "the resolved alert did not act as if it were firing"
    );
}
