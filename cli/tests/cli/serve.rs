//! `medic serve` as a process on loopback: webhooks, the runs API, the CLI client commands,
//! a real Alertmanager delivering alerts, and kill -9 in the middle of a load.

use super::{KillOnDrop, medic, repo_root, stdout, temp_dir};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `medic serve` process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    token: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server on `dir/medic.toml` (written from `config`) and waits until it answers.
    pub fn start(dir: &Path, config: &str, token: Option<&str>) -> Server {
        Server::start_on(dir, config, token, free_port())
    }

    pub fn start_on(dir: &Path, config: &str, token: Option<&str>, port: u16) -> Server {
        std::fs::write(dir.join("medic.toml"), config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("serve.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_medic"));
        command
            .args(["serve", "--config"])
            .arg(dir.join("medic.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(token) = token {
            command.env("TEST_MEDIC_TOKEN", token);
        }
        let child = command.spawn().unwrap();
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            token: token.map(String::from),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http("GET", &format!("{}/healthz", server.url), &[], b"") {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "medic serve exited with {status}:\n{}",
                    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "medic serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn auth(&self) -> Vec<(String, String)> {
        self.token
            .iter()
            .map(|token| ("Authorization".to_string(), format!("Bearer {token}")))
            .collect()
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        let headers = self.auth();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        http(
            "POST",
            &format!("{}{path}", self.url),
            &headers,
            body.as_bytes(),
        )
        .unwrap()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let headers = self.auth();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        http("GET", &format!("{}{path}", self.url), &headers, b"").unwrap()
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until the journal holds `count` alerts and has processed every one of them
    /// (matched it and admitted or suppressed what it asked for).
    pub fn wait_until_processed(&self, count: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (total, unprocessed) = alert_counts(&self.dir);
            if total == count && unprocessed == 0 {
                return;
            }
            assert!(
                total <= count && Instant::now() < deadline,
                "waiting for {count} processed alerts: {total} alerts, {unprocessed} unprocessed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `check` holds for the detail of run `id`, and returns it.
    pub fn wait_for_detail(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let detail = self.json(&format!("/api/runs/{id}"));
            if check(&detail) {
                return detail;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; run: {detail:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `check` holds for the runs list.
    pub fn wait_for_runs(
        &self,
        what: &str,
        check: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let runs = self.json("/api/runs?limit=1000")["runs"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if check(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; runs: {runs:#?}\nlog:\n{}",
                std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The number of alerts in the journal of `dir`, and how many of them are not processed yet.
pub fn alert_counts(dir: &Path) -> (i64, i64) {
    let connection = rusqlite::Connection::open(dir.join("medic.db")).unwrap();
    connection
        .query_row(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE processed = 0) FROM alerts",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

/// A minimal HTTP/1.1 client (one request per connection), so that the tests depend on
/// nothing but the standard library to talk to the server.
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        if path.is_empty() { "/" } else { path },
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    // A server may answer (413) before reading the whole body; that is not a client error.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(head, body)| {
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                dechunk(body)
            } else {
                body.to_string()
            }
        })
        .unwrap_or_default();
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Records the paths of the HTTP requests it receives (the actions the runs performed) and
/// answers 200. While held, it answers none: the requests it receives stay in flight until
/// `release`.
pub struct Receiver {
    pub port: u16,
    pub paths: Arc<Mutex<Vec<String>>>,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    held: bool,
    /// The paths of the requests waiting for `release`.
    waiting: Vec<String>,
    answered: usize,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Gate::default());
        let recorded = Arc::clone(&paths);
        let shared_gate = Arc::clone(&gate);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let recorded = Arc::clone(&recorded);
                let gate = Arc::clone(&shared_gate);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    // A connection closed before its request line requested nothing (a
                    // server killed between connecting and writing leaves one).
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                        if let Some(value) =
                            header.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                    recorded.lock().unwrap().push(path.clone());
                    let mut state = gate.state.lock().unwrap();
                    if state.held {
                        state.waiting.push(path.clone());
                        while state.held {
                            state = gate.changed.wait(state).unwrap();
                        }
                        state.waiting.retain(|waiting| *waiting != path);
                    }
                    state.answered += 1;
                    drop(state);
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Receiver { port, paths, gate }
    }

    /// From now on, requests are not answered until `release`.
    pub fn hold(&self) {
        self.gate.state.lock().unwrap().held = true;
    }

    /// Answers the held requests, and the next ones at once.
    pub fn release(&self) {
        self.gate.state.lock().unwrap().held = false;
        self.gate.changed.notify_all();
    }

    /// The paths of the requests held now: actions in flight.
    pub fn held(&self) -> Vec<String> {
        self.gate.state.lock().unwrap().waiting.clone()
    }

    /// How many requests were answered (or are being answered).
    pub fn answered(&self) -> usize {
        self.gate.state.lock().unwrap().answered
    }
}

pub fn alertmanager_payload(
    name: &str,
    service: &str,
    fingerprint: &str,
    status: &str,
    starts_at: &str,
) -> String {
    format!(
        r#"{{"receiver":"medic","status":"{status}","alerts":[{{"status":"{status}","labels":{{"alertname":"{name}","service":"{service}","severity":"critical"}},"annotations":{{"value":"95%"}},"startsAt":"{starts_at}","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"{fingerprint}"}}],"groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am","version":"4","groupKey":"{{}}:{{}}","truncatedAlerts":0}}"#
    )
}

pub const NOTIFY_PLAN: &str = r##"import std.{http}

/// Calls the test receiver once per firing episode.
rule hot {
  on alert "Hot"
  run act(fingerprint: alert.fingerprint)
  concurrency 1000 per alert.fingerprint
}

playbook act(fingerprint: String) {
  task call = http.post(url: "http://127.0.0.1:RECEIVER/act/{fingerprint}")
}
"##;

pub fn write_plan(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir.join("plans")).unwrap();
    std::fs::write(dir.join("plans/runbook.ops"), text).unwrap();
}

pub fn config(extra: &str) -> String {
    format!(
        "plans = [\"plans\"]\nstore = \"medic.db\"\n[limits]\nactions_per_minute = 1000000\nbody_bytes = 65536\n{extra}"
    )
}

#[test]
fn bad_requests_get_clear_errors() {
    let dir = temp_dir("serve-errors");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &NOTIFY_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    let server = Server::start(
        &dir,
        &config("[auth]\ntoken_env = \"TEST_MEDIC_TOKEN\"\n"),
        Some("s3cret-token"),
    );
    let url = |path: &str| format!("{}{path}", server.url);
    // Without the token, or with a wrong one: 401.
    let (status, body) = http("POST", &url("/webhook/alertmanager"), &[], b"{}").unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing or wrong bearer token"), "{body}");
    let (status, _) = http(
        "GET",
        &url("/api/runs"),
        &[("Authorization", "Bearer s3cret-tokem")],
        b"",
    )
    .unwrap();
    assert_eq!(status, 401);
    // /healthz needs no token.
    assert_eq!(http("GET", &url("/healthz"), &[], b"").unwrap().0, 200);
    // Bad payloads name the problem.
    let (status, body) = server.post("/webhook/alertmanager", "{not json");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("not a valid alertmanager payload: not valid JSON"),
        "{body}"
    );
    let (status, body) = server.post(
        "/webhook/alertmanager",
        r#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-27T12:00:00Z"}]}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("alert 0: has no `alertname` label"), "{body}");
    let (status, body) = server.post("/webhook/nagios", "{}");
    assert_eq!(status, 404);
    assert!(
        body.contains("alertmanager, grafana, zabbix, azure, cloudwatch, elastic or generic"),
        "{body}"
    );
    // Over the body limit (64 KiB here): 413.
    let big = format!(r#"{{"alerts":[],"padding":"{}"}}"#, "x".repeat(100_000));
    let (status, body) = server.post("/webhook/alertmanager", &big);
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("larger than the limit of 65536 bytes"),
        "{body}"
    );
    // Unknown runs and actions.
    let (status, body) = server.get("/api/runs/999");
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.post("/api/runs/999/approve", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("there is no run 999"), "{body}");
    // Every error is JSON with a message, even from the router itself.
    let (status, body) = server.get("/api/runs/abc");
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with(r#"{"error":"bad path"#), "{body}");
    let (status, body) = server.get("/api/nothing-here");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no endpoint at /api/nothing-here"), "{body}");
    let (status, body) = server.get("/webhook/alertmanager");
    assert_eq!(status, 405, "{body}");
    assert!(
        body.contains("GET is not allowed on /webhook/alertmanager"),
        "{body}"
    );
    let (status, body) = server.get("/api/reverts");
    assert_eq!((status, body.as_str()), (200, r#"{"reverts":[]}"#));
    let (status, body) = server.get("/api/reverts?state=bogus");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("no revert state") && body.contains("bogus"),
        "{body}"
    );
    let (status, body) = server.get("/api/runs?limit=lots");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad query"), "{body}");
    // Nothing was accepted, and the secret is in no log line.
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(!log.contains("s3cret-token"), "{log}");
    let metrics = server.get("/metrics").1;
    assert!(metrics.contains("medic_queue_depth 0"), "{metrics}");
}

#[test]
fn the_same_payload_ten_times_makes_one_run_and_resolved_starts_nothing() {
    let dir = temp_dir("serve-dedupe");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &NOTIFY_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    let server = Server::start(&dir, &config(""), None);
    let payload = alertmanager_payload("Hot", "api", "f00d", "firing", "2026-11-27T12:00:00Z");
    for _ in 0..10 {
        let (status, body) = server.post("/webhook/alertmanager", &payload);
        assert_eq!(status, 200, "{body}");
    }
    let runs = server.wait_for_runs("one finished run", |runs| {
        runs.len() == 1 && runs[0]["finished_at"].is_i64()
    });
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    // The resolved notification of the same alert starts no action: once the journal says
    // it was processed (matched, and anything it started admitted), there is still one run.
    let resolved = alertmanager_payload("Hot", "api", "f00d", "resolved", "2026-11-27T12:00:00Z");
    assert_eq!(server.post("/webhook/alertmanager", &resolved).0, 200);
    server.wait_until_processed(11);
    assert_eq!(
        server.json("/api/runs")["runs"].as_array().unwrap().len(),
        1
    );
    assert_eq!(*receiver.paths.lock().unwrap(), ["/act/f00d"]);
    let metrics = server.get("/metrics").1;
    assert!(
        metrics.contains(r#"medic_suppressions_total{reason="duplicate"} 9"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"medic_alerts_received_total{source="alertmanager"} 11"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"medic_runs_total{playbook="act",outcome="succeeded"} 1"#),
        "{metrics}"
    );
    let suppressions = server.json("/api/suppressions?limit=100")["suppressions"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(suppressions.len(), 9, "{suppressions:#?}");
    assert!(suppressions.iter().all(|row| {
        row["reason"] == "duplicate"
            && row["detail"]
                .as_str()
                .unwrap()
                .contains("already handles this firing episode")
    }));
    let detail = server.json(&format!("/api/runs/{}", runs[0]["id"]));
    assert_eq!(detail["report"]["outcome"], "succeeded", "{detail:#}");
    assert_eq!(
        detail["report"]["tasks"][0]["outcome"]["state"],
        "succeeded"
    );
}

pub(crate) const APPROVAL_PLAN: &str = r##"import std.{http}

rule gated {
  on alert "Gated"
  run gated(fingerprint: alert.fingerprint)
  cooldown 1m per alert.fingerprint
}

playbook gated(fingerprint: String) {
  task act = http.post(url: "http://127.0.0.1:RECEIVER/gated/{fingerprint}") {
    approval by "sre" within 1h
  }
}
"##;

#[test]
fn approvals_pause_and_cancel_through_the_cli() {
    let dir = temp_dir("serve-approval");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &APPROVAL_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    let server = Server::start(&dir, &config(""), None);
    let cli = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &server.url]);
        medic(&all)
    };
    let payload = alertmanager_payload("Gated", "api", "a1", "firing", "2026-11-27T12:00:00Z");
    assert_eq!(server.post("/webhook/alertmanager", &payload).0, 200);
    let runs = server.wait_for_runs("a run waiting for approval", |runs| runs.len() == 1);
    let id = runs[0]["id"].as_i64().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.json(&format!("/api/runs/{id}"))["awaiting_approval"] != serde_json::json!(["act"])
    {
        assert!(
            Instant::now() < deadline,
            "the run never waited for approval"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = cli(&["runs"]);
    assert!(stdout(&listed).contains("gated"), "{}", stdout(&listed));
    let shown = cli(&["runs", &id]);
    assert!(
        stdout(&shown).contains("waiting for approval: act"),
        "{}",
        stdout(&shown)
    );
    assert!(
        receiver.paths.lock().unwrap().is_empty(),
        "nothing runs before approval"
    );
    // Without users, `approval by "sre"` cannot be enforced, and the server said so at start.
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(
        log.contains(r#"warning: playbook gated, task act: `approval by "sre"` is not enforced: no [auth] users_file is configured"#),
        "{log}"
    );
    // `--by` is gone: who decides is who the credential names, here nobody in particular.
    let claimed = cli(&["approve", &id, "--by", "alice"]);
    assert_eq!(claimed.status.code(), Some(2), "{claimed:?}");
    let approved = cli(&["approve", &id]);
    assert!(approved.status.success(), "{approved:?}");
    server.wait_for_runs("the approved run to finish", |runs| {
        runs[0]["state"] == "succeeded"
    });
    assert_eq!(*receiver.paths.lock().unwrap(), ["/gated/a1"]);
    let detail = server.json(&format!("/api/runs/{id}"));
    let events = detail["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|event| event["state"] == "approved" && event["detail"] == "anonymous"),
        "{events:#?}"
    );
    // A second episode: paused, approved while paused, resumed. Its task waits for the
    // resume: the run stays paused once approved, and the action starts only after it.
    let second = alertmanager_payload("Gated", "api", "b2", "firing", "2026-11-27T12:00:00Z");
    assert_eq!(server.post("/webhook/alertmanager", &second).0, 200);
    let runs = server.wait_for_runs("a second run", |runs| runs.len() == 2);
    let id = runs[0]["id"].as_i64().unwrap().to_string();
    server.wait_for_detail(&id, "the second run to wait for approval", |detail| {
        detail["awaiting_approval"] == serde_json::json!(["act"])
    });
    let paused = cli(&["pause", &id]);
    assert_eq!(
        stdout(&paused).trim(),
        format!(r#"{{"run":{id},"state":"paused"}}"#),
        "{paused:?}"
    );
    server.wait_for_runs("the paused state", |runs| runs[0]["state"] == "paused");
    assert!(cli(&["approve", &id]).status.success());
    let detail = server.wait_for_detail(&id, "the approval of the paused run", |detail| {
        detail["awaiting_approval"] == serde_json::json!([])
    });
    assert_eq!(detail["state"], "paused", "{detail:#}");
    let resumed = cli(&["resume", &id]);
    assert_eq!(
        stdout(&resumed).trim(),
        format!(r#"{{"run":{id},"state":"running"}}"#),
        "{resumed:?}"
    );
    server.wait_for_runs("the resumed run to finish", |runs| {
        runs[0]["finished_at"].is_i64()
    });
    let detail = server.json(&format!("/api/runs/{id}"));
    assert_eq!(detail["state"], "succeeded", "{detail:#}");
    assert_eq!(detail["report"]["outcome"], "succeeded", "{detail:#}");
    assert_eq!(*receiver.paths.lock().unwrap(), ["/gated/a1", "/gated/b2"]);
    let events: Vec<(String, String)> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["task"].as_str().unwrap().to_string(),
                event["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let position = |task: &str, state: &str| {
        events
            .iter()
            .position(|event| event.0 == task && event.1 == state)
            .unwrap_or_else(|| panic!("no {state} event for {task:?}: {events:?}"))
    };
    assert!(
        position("", "paused") < position("act", "approved")
            && position("act", "approved") < position("", "resumed")
            && position("", "resumed") < position("act", "started"),
        "the action started before the resume: {events:?}"
    );
    // A third episode, cancelled while it waits.
    let third = alertmanager_payload("Gated", "api", "c3", "firing", "2026-11-27T12:00:00Z");
    assert_eq!(server.post("/webhook/alertmanager", &third).0, 200);
    let runs = server.wait_for_runs("a third run", |runs| runs.len() == 3);
    let id = runs[0]["id"].as_i64().unwrap().to_string();
    server.wait_for_detail(&id, "the third run to wait for approval", |detail| {
        detail["awaiting_approval"] == serde_json::json!(["act"])
    });
    assert!(cli(&["cancel", &id]).status.success());
    server.wait_for_runs("the cancelled run", |runs| runs[0]["state"] == "cancelled");
    // Approving a finished run is a clear error with exit code 2.
    let late = cli(&["approve", &id]);
    assert_eq!(late.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("is not in progress"),
        "{late:?}"
    );
    assert_eq!(*receiver.paths.lock().unwrap(), ["/gated/a1", "/gated/b2"]);
}

#[test]
fn medic_run_dry_run_says_what_it_would_do() {
    let output = medic(&[
        "run",
        "--alert",
        "examples/alerts/order_cpu.json",
        "--plans",
        "examples",
        "--dry-run",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        text.contains(
            "rule order_cpu → run 1: playbook scale_up succeeded (dry run: no action was performed)"
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"scale  k8s.scale (action): WOULD RUN with by: 1, deployment: "order-service", max: 5"#),
        "{text}"
    );
    assert!(text.contains("revert after 30m"), "{text}");
    // An alert no rule matches says so.
    let dir = temp_dir("run-nomatch");
    let payload = alertmanager_payload("Unknown", "api", "c3", "firing", "2026-11-27T12:00:00Z");
    std::fs::write(dir.join("alert.json"), payload).unwrap();
    let output = medic(&[
        "run",
        "--alert",
        dir.join("alert.json").to_str().unwrap(),
        "--plans",
        "examples",
        "--dry-run",
    ]);
    assert_eq!(
        stdout(&output),
        "1 alert from alertmanager, dry run: queries run, actions are only described\nUnknown (firing): no rule matched\n"
    );
    // Nothing matched is neither success nor failure: 3.
    assert_eq!(output.status.code(), Some(3), "{output:?}");
}

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"`, as docs/webhooks.md says to sign.
fn hmac_hex(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn unix_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

#[test]
fn grafana_zabbix_and_signed_generic_webhooks_are_accepted() {
    let dir = temp_dir("serve-sources");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &NOTIFY_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    let server_config =
        config("[auth]\nhmac_secret_env = \"TEST_MEDIC_HMAC\"\nhmac_tolerance_seconds = 600\n");
    std::fs::write(dir.join("medic.toml"), &server_config).unwrap();
    let port = free_port();
    let _server = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_medic"))
            .args(["serve", "--config"])
            .arg(dir.join("medic.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TEST_MEDIC_HMAC", "hmac-shared-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http("GET", &format!("{url}/healthz"), &[], b"").is_ok_and(|(status, _)| status == 200) {
        assert!(Instant::now() < deadline, "medic serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let generic = br#"{"name":"Hot","service":"api","severity":"crit","value":"93%","starts_at":"2026-11-27T12:00:00Z","fingerprint":"gen-1"}"#;
    // Unsigned (no timestamp either), or signed with another secret: 401.
    let (status, body) = http("POST", &format!("{url}/webhook/generic"), &[], generic).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("X-Medic-Timestamp"), "{body}");
    let now = unix_now();
    let wrong = format!("sha256={}", hmac_hex("another-secret", &now, generic));
    let (status, _) = http(
        "POST",
        &format!("{url}/webhook/generic"),
        &[("X-Medic-Signature", &wrong), ("X-Medic-Timestamp", &now)],
        generic,
    )
    .unwrap();
    assert_eq!(status, 401);
    // Signed an hour ago: outside the 10-minute tolerance this config sets.
    let stale = (now.parse::<u64>().unwrap() - 3_600).to_string();
    let signed = format!("sha256={}", hmac_hex("hmac-shared-secret", &stale, generic));
    let (status, body) = http(
        "POST",
        &format!("{url}/webhook/generic"),
        &[
            ("X-Medic-Signature", &signed),
            ("X-Medic-Timestamp", &stale),
        ],
        generic,
    )
    .unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("600 s allowed"), "{body}");
    let signed = format!("sha256={}", hmac_hex("hmac-shared-secret", &now, generic));
    let (status, body) = http(
        "POST",
        &format!("{url}/webhook/generic"),
        &[("X-Medic-Signature", &signed), ("X-Medic-Timestamp", &now)],
        generic,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // A typo in the generic format is named.
    let typo = br#"{"name":"Hot","sevrity":"crit","starts_at":"2026-11-27T12:00:00Z"}"#;
    let signed = format!("sha256={}", hmac_hex("hmac-shared-secret", &now, typo));
    let (status, body) = http(
        "POST",
        &format!("{url}/webhook/generic"),
        &[("X-Medic-Signature", &signed), ("X-Medic-Timestamp", &now)],
        typo,
    )
    .unwrap();
    // The payload is JSON of the generic shape, so this is the alert that is wrong: 422.
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("alert 0: unknown field `sevrity`"), "{body}");
    // Grafana and Zabbix need no signature (no bearer token is configured here).
    let grafana = r#"{"receiver":"medic","status":"firing","orgId":1,"alerts":[{"status":"firing","labels":{"alertname":"Hot","service":"api","severity":"critical"},"annotations":{"value":"91%"},"startsAt":"2026-11-27T12:08:39Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"graf-1","silenceURL":"","dashboardURL":"","panelURL":"","values":{"B":91.0},"valueString":""}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://grafana:3000/","version":"1","groupKey":"{}:{}","truncatedAlerts":0,"title":"[FIRING:1] Hot","state":"alerting","message":"Firing"}"#;
    let (status, body) = http(
        "POST",
        &format!("{url}/webhook/grafana"),
        &[],
        grafana.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let zabbix = r#"{"event_id":"4711","name":"Hot","status":"PROBLEM","severity":"High","host":"web-1","service":"api","value":"92 %","event_date":"2026.11.27","event_time":"12:08:39"}"#;
    let (status, body) = http(
        "POST",
        &format!("{url}/webhook/zabbix"),
        &[],
        zabbix.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut paths = receiver.paths.lock().unwrap().clone();
        paths.sort();
        if paths == ["/act/gen-1", "/act/graf-1", "/act/zabbix-4711"] {
            break;
        }
        assert!(Instant::now() < deadline, "actions: {paths:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_example_alert_reaches_its_rule_in_a_dry_run() {
    // Each example, the heading of its report and the exit code. Without a medic.toml only
    // `order_cpu` succeeds (its action is only described): the others query systems that
    // are not configured here (Prometheus, Elasticsearch, Jaeger or a topology), and their
    // playbooks stop. scripts/try-examples runs them against configured servers.
    let expected = [
        (
            "order_cpu",
            "rule order_cpu → run 1: playbook scale_up succeeded",
            0,
        ),
        // The same incident as Azure Monitor sends it (the common alert schema).
        (
            "azure_order_cpu",
            "rule order_cpu → run 1: playbook scale_up succeeded",
            0,
        ),
        // As CloudWatch publishes it to SNS (the envelope's signature is not checked for a
        // local file).
        (
            "cloudwatch_order_cpu",
            "rule order_cpu → run 1: playbook scale_up succeeded",
            0,
        ),
        // As Kibana's Webhook connector sends it with Medic's template.
        (
            "kibana_order_cpu",
            "rule order_cpu → run 1: playbook scale_up succeeded",
            0,
        ),
        // As Elasticsearch Watcher's webhook action sends it with the same template.
        (
            "watcher_order_cpu",
            "rule order_cpu → run 1: playbook scale_up succeeded",
            0,
        ),
        (
            "payment_latency",
            "rule payment_latency → run 1: playbook payment_troubleshoot failed",
            1,
        ),
        (
            "disk_full",
            "rule disk_full → run 1: playbook disk_cleanup failed",
            1,
        ),
        (
            "inventory_db",
            "rule inventory_db → run 1: playbook database_check failed",
            1,
        ),
    ];
    let files = std::fs::read_dir(repo_root().join("examples/alerts"))
        .unwrap()
        .count();
    assert_eq!(files, expected.len(), "every example alert is listed here");
    for (name, heading, code) in expected {
        let output = medic(&[
            "run",
            "--alert",
            &format!("examples/alerts/{name}.json"),
            "--plans",
            "examples",
            "--dry-run",
        ]);
        let text = stdout(&output);
        assert!(text.contains(heading), "{name}: {output:?}");
        assert!(
            text.contains("(dry run: no action was performed)"),
            "{name}: {text}"
        );
        assert_eq!(output.status.code(), Some(code), "{name}: {output:?}");
    }
}

#[test]
fn a_second_server_on_the_same_store_is_refused() {
    let dir = temp_dir("serve-lock");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &NOTIFY_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    let _first = Server::start(&dir, &config(""), None);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["serve", "--config"])
        .arg(dir.join("medic.toml"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another medic serve is using the store"),
        "{stderr}"
    );
}

pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// alice (operator, in `sre`), bob (operator, in `dba`), victor (viewer); tokens
/// `<name>-token`, stored as their SHA-256.
pub(crate) fn users_file() -> String {
    format!(
        "[users.alice]\ntoken_sha256 = \"{}\"\nrole = \"operator\"\ngroups = [\"sre\"]\n\n[users.bob]\ntoken_sha256 = \"{}\"\nrole = \"operator\"\ngroups = [\"dba\"]\n\n[users.victor]\ntoken_sha256 = \"{}\"\nrole = \"viewer\"\n",
        sha256_hex("alice-token"),
        sha256_hex("bob-token"),
        sha256_hex("victor-token"),
    )
}

#[test]
fn the_token_decides_who_approves_through_the_cli() {
    let dir = temp_dir("serve-users");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &APPROVAL_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    std::fs::write(dir.join("users.toml"), users_file()).unwrap();
    let server = Server::start(
        &dir,
        &config("[auth]\nusers_file = \"users.toml\"\n"),
        Some("alice-token"),
    );
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(!log.contains("is not enforced"), "{log}");
    let cli = |token: &str, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &server.url, "--token", token]);
        medic(&all)
    };
    let payload = alertmanager_payload("Gated", "api", "u1", "firing", "2026-11-27T12:00:00Z");
    assert_eq!(server.post("/webhook/alertmanager", &payload).0, 200);
    let runs = server.wait_for_runs("a run", |runs| runs.len() == 1);
    let id = runs[0]["id"].as_i64().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.json(&format!("/api/runs/{id}"))["awaiting_approval"] != serde_json::json!(["act"])
    {
        assert!(Instant::now() < deadline, "the run never waited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let viewer = cli("victor-token", &["approve", &id]);
    assert_eq!(viewer.status.code(), Some(2), "{viewer:?}");
    assert!(
        String::from_utf8_lossy(&viewer.stderr)
            .contains("403 Forbidden: victor has the role viewer"),
        "{viewer:?}"
    );
    let bob = cli("bob-token", &["approve", &id]);
    assert_eq!(bob.status.code(), Some(2), "{bob:?}");
    assert!(
        String::from_utf8_lossy(&bob.stderr).contains("it needs a member of the group `sre`"),
        "{bob:?}"
    );
    assert!(cli("victor-token", &["runs", &id]).status.success());
    let alice = cli("alice-token", &["approve", &id]);
    assert!(alice.status.success(), "{alice:?}");
    server.wait_for_runs("the approved run", |runs| runs[0]["state"] == "succeeded");
    let events = server.json(&format!("/api/runs/{id}"))["events"].clone();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["state"] == "approved" && event["detail"] == "alice"),
        "{events:#}"
    );
    assert_eq!(*receiver.paths.lock().unwrap(), ["/gated/u1"]);
}

/// `medic serve` on `dir` with `config` as its medic.toml; it must refuse to start.
fn refused_config(dir: &Path, config: &str) -> String {
    std::fs::write(dir.join("medic.toml"), config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["serve", "--config"])
        .arg(dir.join("medic.toml"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("TEST_MEDIC_TOKEN", "a-token")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn a_users_file_is_read_strictly() {
    let dir = temp_dir("serve-users-strict");
    write_plan(&dir, &APPROVAL_PLAN.replace("RECEIVER", "9"));
    let with_users = config("[auth]\nusers_file = \"users.toml\"\n");
    // A plaintext token is not a key of the users file.
    std::fs::write(
        dir.join("users.toml"),
        "[users.alice]\ntoken = \"alice-token\"\nrole = \"operator\"\n",
    )
    .unwrap();
    let stderr = refused_config(&dir, &with_users);
    assert!(stderr.contains("unknown field `token`"), "{stderr}");
    std::fs::write(
        dir.join("users.toml"),
        format!(
            "[users.alice]\ntoken_sha256 = \"{}\"\nrole = \"admin\"\n",
            sha256_hex("x")
        ),
    )
    .unwrap();
    let stderr = refused_config(&dir, &with_users);
    assert!(stderr.contains("unknown variant `admin`"), "{stderr}");
    std::fs::write(
        dir.join("users.toml"),
        "[users.alice]\ntoken_sha256 = \"alice-token\"\nrole = \"operator\"\n",
    )
    .unwrap();
    let stderr = refused_config(&dir, &with_users);
    assert!(
        stderr.contains("token_sha256 must be 64 hexadecimal digits"),
        "{stderr}"
    );
    std::fs::write(dir.join("users.toml"), users_file()).unwrap();
    let stderr = refused_config(
        &dir,
        &config("[auth]\nusers_file = \"users.toml\"\ntoken_env = \"TEST_MEDIC_TOKEN\"\n"),
    );
    assert!(stderr.contains("cannot both be set"), "{stderr}");
    let stderr = refused_config(&dir, &config("[auth]\nusers_file = \"nobody.toml\"\n"));
    assert!(stderr.contains("auth.users_file: cannot read"), "{stderr}");
}

#[test]
fn limits_out_of_range_stop_the_start() {
    let dir = temp_dir("serve-limits");
    write_plan(&dir, &NOTIFY_PLAN.replace("RECEIVER", "9"));
    let limits =
        |line: &str| format!("plans = [\"plans\"]\nstore = \"medic.db\"\n[limits]\n{line}\n");
    let stderr = refused_config(&dir, &limits("body_bytes = 67108865"));
    assert!(
        stderr.contains("limits.body_bytes is 67108865: it must be between 1 and 67108864"),
        "{stderr}"
    );
    let stderr = refused_config(&dir, &limits("request_timeout_seconds = 0"));
    assert!(
        stderr.contains("limits.request_timeout_seconds is 0"),
        "{stderr}"
    );
    let stderr = refused_config(&dir, &limits("concurrent_requests = 0"));
    assert!(
        stderr.contains("limits.concurrent_requests must be at least 1"),
        "{stderr}"
    );
    let stderr = refused_config(&dir, &limits("request_timeout = 5"));
    assert!(
        stderr.contains("unknown field `request_timeout`"),
        "{stderr}"
    );
    // A tolerance without a secret to sign with is a mistake, not a no-op.
    let stderr = refused_config(
        &dir,
        "plans = [\"plans\"]\n[auth]\nhmac_tolerance_seconds = 60\n",
    );
    assert!(
        stderr.contains("auth.hmac_tolerance_seconds is set, but no auth.hmac_secret_env"),
        "{stderr}"
    );
}

#[test]
fn reverts_are_listed_and_finished_through_the_cli() {
    let dir = temp_dir("serve-reverts");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &APPROVAL_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    std::fs::write(dir.join("users.toml"), users_file()).unwrap();
    let server = Server::start(
        &dir,
        &config("[auth]\nusers_file = \"users.toml\"\n"),
        Some("alice-token"),
    );
    let cli = |token: &str, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &server.url, "--token", token]);
        medic(&all)
    };
    let listed = cli("victor-token", &["reverts"]);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    assert_eq!(stdout(&listed), "no reverts\n");
    let listed = cli(
        "victor-token",
        &["reverts", "--state", "reverted", "--json"],
    );
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let value: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(value["reverts"], serde_json::json!([]));
    let viewer = cli("victor-token", &["revert", "retry", "7"]);
    assert_eq!(viewer.status.code(), Some(2), "{viewer:?}");
    assert!(
        String::from_utf8_lossy(&viewer.stderr).contains("403 Forbidden"),
        "{viewer:?}"
    );
    let missing = cli(
        "alice-token",
        &["revert", "ack", "7", "--reason", "done by hand"],
    );
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404 Not Found: there is no revert 7"),
        "{missing:?}"
    );
}
