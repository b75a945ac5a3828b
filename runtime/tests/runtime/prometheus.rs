//! `prom.query` and `prom.range` through the real adapter against a real Prometheus on
//! loopback, with data backfilled by `promtool` (the test fails, with the install command,
//! when either binary is missing), and against tiny listeners for answers Prometheus never
//! gives: garbage, an oversized body, silence.

use super::support::{compile, failure, output, run_playbook};
use medic_compiler::plan::Value;
use medic_runtime::adapters::{PrometheusConfig, StandardToolbox, ToolboxConfig};
use medic_runtime::executor::RunReport;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const INSTALL: &str = "apt-get install -y prometheus";

/// The `instance` of one stored `disk_used_ratio` series: a value that would end the
/// matcher and add `or vector(1)` if it were spliced into a query unescaped.
const HOSTILE_STORED: &str = "x\"} or vector(1) #\\\nü✓";
/// [`HOSTILE_STORED`] as an OpenMetrics label value.
const HOSTILE_STORED_ESCAPED: &str = "x\\\"} or vector(1) #\\\\\\nü✓";

/// Minutes of backfilled data: one sample a minute, from `MINUTES` minutes before the
/// fixture's `now` until one minute before it.
const MINUTES: i64 = 30;

/// A Prometheus on a free loopback port over a backfilled TSDB in a temporary folder,
/// killed and waited for when dropped (also on panic).
struct Prometheus {
    child: Child,
    port: u16,
    /// Unix seconds the data is placed around: `payment-gateway` is `k` at `now - k` minutes
    /// (k = 1..=30), `checkout` is 0.25 at the same times.
    now: i64,
    _folder: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails, naming the package, when `binary` is not installed.
fn require(binary: &str) {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{binary}` is not installed; these tests need a real Prometheus: {INSTALL}"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

impl Prometheus {
    async fn start() -> Prometheus {
        require("promtool");
        require("prometheus");
        let folder = tempfile::Builder::new()
            .prefix("medic-runtime-prometheus-")
            .tempdir()
            .unwrap();
        let now = unix_now();
        let mut metrics = String::from(
            "# HELP http_request_duration_seconds p99 latency\n# TYPE http_request_duration_seconds gauge\n",
        );
        for minutes_ago in (1..=MINUTES).rev() {
            metrics.push_str(&format!(
                "http_request_duration_seconds{{service=\"payment-gateway\"}} {minutes_ago} {}\n",
                now - minutes_ago * 60
            ));
        }
        for minutes_ago in (1..=MINUTES).rev() {
            metrics.push_str(&format!(
                "http_request_duration_seconds{{service=\"checkout\"}} 0.25 {}\n",
                now - minutes_ago * 60
            ));
        }
        // Disk usage of three instances, one of them with a label value made of what a
        // hostile alert would send (OpenMetrics escapes `"`, `\` and line breaks).
        metrics.push_str(
            "# HELP disk_used_ratio used share of the disk\n# TYPE disk_used_ratio gauge\n",
        );
        for (instance, ratio) in [
            ("node-a:9100", "0.9"),
            ("node-b:9100", "0.5"),
            (HOSTILE_STORED_ESCAPED, "0.7"),
        ] {
            for minutes_ago in (1..=MINUTES).rev() {
                metrics.push_str(&format!(
                    "disk_used_ratio{{instance=\"{instance}\"}} {ratio} {}\n",
                    now - minutes_ago * 60
                ));
            }
        }
        metrics.push_str("# EOF\n");
        let data = folder.path().join("data");
        std::fs::write(folder.path().join("metrics.om"), metrics).unwrap();
        let backfill = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(folder.path().join("metrics.om"))
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            backfill.status.success(),
            "promtool failed: {}",
            String::from_utf8_lossy(&backfill.stderr)
        );
        let config = folder.path().join("prometheus.yml");
        let query_log = folder.path().join("queries.log");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 15s, query_log_file: {:?}}}\n",
                query_log.display().to_string()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(folder.path().join("prometheus.log")).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start prometheus ({error}): {INSTALL}"));
        let mut server = Prometheus {
            child,
            port,
            now,
            _folder: folder,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self._folder.path().join("prometheus.log"))
                    .unwrap_or_default();
                panic!("prometheus exited ({status}) before it was ready:\n{log}");
            }
            let ready = client
                .get(format!("http://127.0.0.1:{}/-/ready", self.port))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `query` of every query Prometheus logged (its `query_log_file`), in order.
    fn received_queries(&self) -> Vec<String> {
        let log =
            std::fs::read_to_string(self._folder.path().join("queries.log")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).unwrap();
                entry["params"]["query"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// The fixture's time `minutes_ago` minutes before `now`, as a Medic `Time`.
    fn time(&self, minutes_ago: i64) -> Value {
        Value::Time((self.now - minutes_ago * 60) * 1000)
    }
}

fn config(url: &str) -> PrometheusConfig {
    PrometheusConfig {
        url: url.to_string(),
        timeout: Duration::from_secs(10),
        bearer_token: None,
    }
}

fn toolbox(prometheus: Option<PrometheusConfig>) -> Arc<StandardToolbox> {
    Arc::new(
        StandardToolbox::new(ToolboxConfig {
            prometheus,
            ..ToolboxConfig::default()
        })
        .unwrap(),
    )
}

async fn run(
    source: &str,
    arguments: &[(&str, Value)],
    toolbox: Arc<StandardToolbox>,
) -> RunReport {
    run_playbook(&compile(source), arguments, toolbox).await
}

fn labels(pairs: &[(&str, &str)]) -> Value {
    Value::record(
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), Value::String(value.to_string()))),
    )
}

const INSTANT_AT: &str = r#"
import std.{prom}
playbook check(at: Time) {
  task p99 = prom.query("http_request_duration_seconds\{service=\"payment-gateway\"\}", at: at)
  task total = prom.query("sum(http_request_duration_seconds)", at: at)
  task every = prom.query("http_request_duration_seconds", at: at)
}
"#;

const INSTANT_NOW: &str = r#"
import std.{prom}
playbook check() {
  task p99 = prom.query("http_request_duration_seconds\{service=\"payment-gateway\"\}")
  task three = prom.query("1 + 2")
}
"#;

#[tokio::test]
async fn an_instant_query_answers_the_values_and_labels_at_the_time_asked() {
    let prometheus = Prometheus::start().await;
    let report = run(
        INSTANT_AT,
        &[("at", prometheus.time(10))],
        toolbox(Some(config(&prometheus.url()))),
    )
    .await;
    let p99 = output(&report, "p99");
    assert_eq!(p99["found"], Value::Bool(true));
    assert_eq!(p99["value"], Value::Float(10.0));
    assert_eq!(p99["series"], Value::Int(1));
    assert_eq!(
        p99["labels"],
        labels(&[
            ("__name__", "http_request_duration_seconds"),
            ("service", "payment-gateway"),
        ])
    );
    let total = output(&report, "total");
    assert_eq!(total["value"], Value::Float(10.25));
    assert_eq!(total["labels"], labels(&[]));
    let every = output(&report, "every");
    assert_eq!(every["series"], Value::Int(2));
    assert_eq!(every["found"], Value::Bool(true));
}

#[tokio::test]
async fn an_instant_query_without_at_asks_about_now() {
    let prometheus = Prometheus::start().await;
    let report = run(INSTANT_NOW, &[], toolbox(Some(config(&prometheus.url())))).await;
    // The newest sample, a minute old, is within Prometheus's five-minute lookback.
    let p99 = output(&report, "p99");
    assert_eq!(p99["value"], Value::Float(1.0));
    // A scalar result is one value without labels.
    let three = output(&report, "three");
    assert_eq!(three["found"], Value::Bool(true));
    assert_eq!(three["value"], Value::Float(3.0));
    assert_eq!(three["series"], Value::Int(1));
    assert_eq!(three["labels"], labels(&[]));
}

#[tokio::test]
async fn a_range_query_summarizes_the_first_series_of_the_matrix() {
    let prometheus = Prometheus::start().await;
    let source = r#"
import std.{prom}
playbook check(since: Time) {
  task p99 = prom.range("http_request_duration_seconds\{service=\"payment-gateway\"\}", since: since, step: 1m)
  task coarse = prom.range("http_request_duration_seconds\{service=\"checkout\"\}", since: since, step: 10m)
}
"#;
    let report = run(
        source,
        &[("since", prometheus.time(MINUTES))],
        toolbox(Some(config(&prometheus.url()))),
    )
    .await;
    // Steps from 30 minutes before `now` until the call (within a minute of `now`): the
    // values 30, 29, ..., 1, then 1 again at `now` (the lookback finds the sample before).
    let mut expected: Vec<f64> = (1..=MINUTES).rev().map(|value| value as f64).collect();
    expected.push(1.0);
    let p99 = output(&report, "p99");
    assert_eq!(p99["found"], Value::Bool(true));
    assert_eq!(p99["points"], Value::Int(expected.len() as i64));
    assert_eq!(p99["min"], Value::Float(1.0));
    assert_eq!(p99["max"], Value::Float(30.0));
    assert_eq!(p99["last"], Value::Float(1.0));
    assert_eq!(
        p99["avg"],
        Value::Float(expected.iter().sum::<f64>() / expected.len() as f64)
    );
    let coarse = output(&report, "coarse");
    assert_eq!(coarse["points"], Value::Int(4));
    assert_eq!(coarse["avg"], Value::Float(0.25));
}

#[tokio::test]
async fn an_empty_result_is_found_false_with_zero_values() {
    let prometheus = Prometheus::start().await;
    let source = r#"
import std.{prom}
playbook check(since: Time) {
  task instant = prom.query("no_such_metric")
  task range = prom.range("no_such_metric", since: since)
}
"#;
    let report = run(
        source,
        &[("since", prometheus.time(MINUTES))],
        toolbox(Some(config(&prometheus.url()))),
    )
    .await;
    let instant = output(&report, "instant");
    assert_eq!(instant["found"], Value::Bool(false));
    assert_eq!(instant["value"], Value::Float(0.0));
    assert_eq!(instant["series"], Value::Int(0));
    assert_eq!(instant["labels"], labels(&[]));
    let range = output(&report, "range");
    assert_eq!(range["found"], Value::Bool(false));
    assert_eq!(range["points"], Value::Int(0));
    for field in ["min", "max", "avg", "last"] {
        assert_eq!(range[field], Value::Float(0.0), "{field}");
    }
}

#[tokio::test]
async fn a_promql_error_is_a_failure_carrying_prometheus_error_type_and_message() {
    let prometheus = Prometheus::start().await;
    // A literal `"sum("` is refused by `medic check` (ops::promql::syntax): a query only
    // known at run time reaches Prometheus, which refuses it.
    let source = r#"
import std.{prom}
playbook check(since: Time, promql: String) {
  task broken = prom.query(promql)
  task backwards = prom.range("up", since: since)
}
"#;
    // A range that starts an hour from now ends before it starts.
    let report = run(
        source,
        &[
            ("since", prometheus.time(-60)),
            ("promql", Value::String("sum(".into())),
        ],
        toolbox(Some(config(&prometheus.url()))),
    )
    .await;
    let reason = failure(&report, "broken");
    assert!(
        reason.starts_with("prometheus refused the query (bad_data): "),
        "{reason}"
    );
    assert!(reason.contains("parse error"), "{reason}");
    let reason = failure(&report, "backwards");
    assert!(
        reason.starts_with("prometheus refused the query (bad_data): "),
        "{reason}"
    );
}

#[tokio::test]
async fn without_a_configured_prometheus_the_call_fails_saying_so() {
    let report = run(INSTANT_NOW, &[], toolbox(None)).await;
    assert_eq!(
        failure(&report, "p99"),
        "no Prometheus is configured ([prometheus] url in medic.toml)"
    );
}

#[tokio::test]
async fn a_closed_port_fails_clearly() {
    let port = free_port();
    let report = run(
        INSTANT_NOW,
        &[],
        toolbox(Some(config(&format!("http://127.0.0.1:{port}")))),
    )
    .await;
    let reason = failure(&report, "p99");
    assert!(
        reason.starts_with("prometheus could not be reached: "),
        "{reason}"
    );
}

/// A listener that answers every request with `answer` (nothing at all when it is `None`,
/// holding the connection open), after reading the request's head.
async fn listener(answer: Option<Vec<u8>>) -> u16 {
    recording_listener(answer).await.0
}

/// [`listener`], also keeping each request (head and body) as text.
async fn recording_listener(answer: Option<Vec<u8>>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                let complete = |request: &[u8]| {
                    let text = String::from_utf8_lossy(request);
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        return false;
                    };
                    let length = head
                        .lines()
                        .find_map(|line| {
                            line.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|value| value.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    body.len() >= length
                };
                while !complete(&request) {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&request).into_owned());
                match answer {
                    Some(answer) => {
                        let _ = stream.write_all(&answer).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(600)).await,
                }
            });
        }
    });
    (port, requests)
}

fn http_answer(status: &str, body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

async fn reason_from(answer: Option<Vec<u8>>, timeout: Duration) -> String {
    let port = listener(answer).await;
    let report = run(
        INSTANT_NOW,
        &[],
        toolbox(Some(PrometheusConfig {
            timeout,
            ..config(&format!("http://127.0.0.1:{port}"))
        })),
    )
    .await;
    failure(&report, "p99")
}

#[tokio::test]
async fn an_answer_that_is_not_the_query_api_fails_naming_the_problem() {
    let second = Duration::from_secs(5);
    let reason = reason_from(Some(http_answer("200 OK", b"<html>hello</html>")), second).await;
    assert!(
        reason.starts_with("prometheus's answer is not JSON (") && reason.contains("<html>hello"),
        "{reason}"
    );
    let reason = reason_from(
        Some(http_answer("502 Bad Gateway", b"upstream is down")),
        second,
    )
    .await;
    assert_eq!(
        reason,
        "prometheus answered HTTP 502 without a query API answer: \"upstream is down\""
    );
    let shapeless = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,2]}]}}"#;
    let reason = reason_from(Some(http_answer("200 OK", shapeless)), second).await;
    assert_eq!(
        reason,
        "prometheus's answer is not a query API answer: the value of data.result[0].value is a number, not a string"
    );
    let unknown = br#"{"status":"success","data":{"resultType":"table","result":[]}}"#;
    let reason = reason_from(Some(http_answer("200 OK", unknown)), second).await;
    assert_eq!(
        reason,
        "prometheus's answer is not a query API answer: unknown `data.resultType` \"table\""
    );
    let huge = vec![b' '; 9 * 1024 * 1024];
    let reason = reason_from(Some(http_answer("200 OK", &huge)), second).await;
    assert_eq!(
        reason,
        "prometheus's answer is larger than 8 MiB, so it was not read"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let started = Instant::now();
    let reason = reason_from(None, Duration::from_millis(300)).await;
    assert_eq!(reason, "prometheus did not answer within 300ms");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_query_is_an_encoded_form_parameter_and_the_token_goes_along() {
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let (port, requests) = recording_listener(Some(http_answer("200 OK", empty))).await;
    let source = r#"
import std.{prom}
playbook check(job: String, at: Time) {
  task found = prom.query("up\{job=\"{job}\"\} + 1", at: at)
}
"#;
    let report = run(
        source,
        &[
            ("job", Value::String("a&time=0&query=evil #".into())),
            ("at", Value::Time(1_795_780_060_250)),
        ],
        toolbox(Some(PrometheusConfig {
            bearer_token: Some("s3cret".into()),
            ..config(&format!("http://127.0.0.1:{port}/prefix/"))
        })),
    )
    .await;
    assert_eq!(output(&report, "found")["found"], Value::Bool(false));
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (head, body) = requests[0].split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("POST /prefix/api/v1/query HTTP/1.1\r\n"),
        "{head}"
    );
    let head = head.to_ascii_lowercase();
    assert!(head.contains("authorization: bearer s3cret\r\n"), "{head}");
    assert!(
        head.contains("content-type: application/x-www-form-urlencoded"),
        "{head}"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let promql = &form[0].1;
    assert!(promql.starts_with("up{job=\""), "{promql}");
    assert!(promql.contains("a&time=0&query=evil #"), "{promql}");
    let names: Vec<&str> = form.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["query", "time", "timeout"]);
    assert_eq!(form[1].1, "1795780060.250");
    assert_eq!(form[2].1, "10.000");
}

const WHERE: &str = r##"
import std.{prom}
playbook check(instance: String) {
  task narrowed = prom.query(r#"max(disk_used_ratio)"#, where: { instance: instance })
  task all = prom.query(r"max(disk_used_ratio)")
  task counted = prom.query(r"count(disk_used_ratio) or vector(0)", where: { instance: instance })
}
"##;

#[tokio::test]
async fn where_narrows_the_query_to_the_alerted_series_and_prometheus_receives_the_injected_query()
{
    let prometheus = Prometheus::start().await;
    let report = run(
        WHERE,
        &[("instance", Value::String("node-b:9100".into()))],
        toolbox(Some(config(&prometheus.url()))),
    )
    .await;
    let narrowed = output(&report, "narrowed");
    assert_eq!(narrowed["value"], Value::Float(0.5));
    assert_eq!(narrowed["labels"], labels(&[]));
    assert_eq!(
        narrowed["query"],
        Value::String(r#"max(disk_used_ratio{instance="node-b:9100"})"#.into())
    );
    assert_eq!(output(&report, "all")["value"], Value::Float(0.9));
    assert_eq!(
        output(&report, "all")["query"],
        Value::String("max(disk_used_ratio)".into())
    );
    // `or vector(0)` is part of the runbook's query: it is narrowed too (it has no
    // selector), and the one matching series is counted.
    assert_eq!(output(&report, "counted")["value"], Value::Float(1.0));
    let mut received = prometheus.received_queries();
    received.sort();
    assert_eq!(
        received,
        [
            r#"count(disk_used_ratio{instance="node-b:9100"}) or vector(0)"#,
            "max(disk_used_ratio)",
            r#"max(disk_used_ratio{instance="node-b:9100"})"#,
        ]
    );
}

#[tokio::test]
async fn hostile_where_values_stay_label_values_and_cannot_change_the_query() {
    let prometheus = Prometheus::start().await;
    let source = r#"
import std.{prom}
playbook check(instance: String) {
  task counted = prom.query(r"count(disk_used_ratio)", where: { instance: instance })
}
"#;
    let hostile = [
        "\"",
        "\\",
        "\"}",
        "\"} or vector(1) #",
        "node-a:9100\"} or vector(1) #",
        "a\nb",
        "\\\"} or disk_used_ratio #",
        "ünïcødé ✓ 🚀",
        "x\"} or vector(1) #\\",
        "\u{0}\u{1b}[31m\r\t",
    ];
    let toolbox = toolbox(Some(config(&prometheus.url())));
    let mut expected_queries = Vec::new();
    for value in hostile {
        let report = run(
            source,
            &[("instance", Value::String(value.into()))],
            Arc::clone(&toolbox),
        )
        .await;
        let counted = output(&report, "counted");
        // Spliced, `or vector(1)` or `or disk_used_ratio` would have found something.
        assert_eq!(
            counted["found"],
            Value::Bool(false),
            "{value:?}: {counted:?}"
        );
        let Value::String(sent) = &counted["query"] else {
            panic!("{counted:?}");
        };
        let reparsed = promql_parser::parser::parse(sent).unwrap();
        let promql_parser::parser::Expr::Aggregate(count) = reparsed else {
            panic!("{sent}");
        };
        let promql_parser::parser::Expr::VectorSelector(selector) = *count.expr else {
            panic!("{sent}");
        };
        assert_eq!(selector.name.as_deref(), Some("disk_used_ratio"), "{sent}");
        let matchers: Vec<(String, String)> = selector
            .matchers
            .matchers
            .iter()
            .map(|matcher| (matcher.name.clone(), matcher.value.clone()))
            .collect();
        assert_eq!(
            matchers,
            [("instance".to_string(), value.to_string())],
            "{sent}"
        );
        expected_queries.push(sent.clone());
    }
    // The stored series whose label value is itself hostile is found by that exact value.
    let report = run(
        source,
        &[("instance", Value::String(HOSTILE_STORED.into()))],
        Arc::clone(&toolbox),
    )
    .await;
    let counted = output(&report, "counted");
    assert_eq!(counted["found"], Value::Bool(true), "{counted:?}");
    assert_eq!(counted["value"], Value::Float(1.0));
    let Value::String(sent) = &counted["query"] else {
        panic!("{counted:?}");
    };
    expected_queries.push(sent.clone());
    // What Prometheus received is what the adapter rendered, query for query.
    assert_eq!(prometheus.received_queries(), expected_queries);
}

#[tokio::test]
async fn where_reaches_every_selector_of_a_query_with_a_subquery() {
    let prometheus = Prometheus::start().await;
    let source = r##"
import std.{prom}
playbook check(instance: String, since: Time) {
  task several = prom.query(
    r#"max_over_time(max(disk_used_ratio)[10m:1m]) + max(disk_used_ratio offset 1m) + count(disk_used_ratio)"#,
    where: { instance: instance },
  )
  task ranged = prom.range(r"max(disk_used_ratio)", since: since, step: 5m, where: { instance: instance })
}
"##;
    let report = run(
        source,
        &[
            ("instance", Value::String("node-b:9100".into())),
            ("since", prometheus.time(20)),
        ],
        toolbox(Some(config(&prometheus.url()))),
    )
    .await;
    // Narrowed everywhere: 0.5 + 0.5 + 1. Any selector left out would add 0.4 or 2.
    assert_eq!(output(&report, "several")["value"], Value::Float(2.0));
    let ranged = output(&report, "ranged");
    assert_eq!(ranged["max"], Value::Float(0.5));
    assert_eq!(ranged["min"], Value::Float(0.5));
    assert_eq!(
        ranged["query"],
        Value::String(r#"max(disk_used_ratio{instance="node-b:9100"})"#.into())
    );
    let received = prometheus.received_queries();
    assert!(
        received.contains(
            &"max_over_time(max(disk_used_ratio{instance=\"node-b:9100\"})[10m:1m]) + max(disk_used_ratio{instance=\"node-b:9100\"} offset 1m) + count(disk_used_ratio{instance=\"node-b:9100\"})".to_string()
        ),
        "{received:?}"
    );
}

#[tokio::test]
async fn where_with_no_matching_series_is_an_empty_result_and_errors_keep_their_type() {
    let prometheus = Prometheus::start().await;
    let source = r#"
import std.{prom}
playbook check(past: Time, future: Time, labels: {String: String}, broken: String) {
  task instant = prom.query(r"max(disk_used_ratio)", where: { instance: "nowhere" })
  task range = prom.range(r"disk_used_ratio", since: past, where: { instance: "nowhere" })
  task backwards = prom.range(r"disk_used_ratio", since: future, where: { instance: "node-a:9100" }) {
    on failure continue
  }
  task unparsable = prom.query(broken, where: { instance: "node-a:9100" }) { on failure continue }
  task bad_key = prom.query(r"up", where: labels) { on failure continue }
}
"#;
    let report = run(
        source,
        &[
            ("past", prometheus.time(MINUTES)),
            // A range that starts an hour from now ends before it starts.
            ("future", prometheus.time(-60)),
            ("labels", labels(&[("not-a-label", "x")])),
            ("broken", Value::String("sum(".into())),
        ],
        toolbox(Some(config(&prometheus.url()))),
    )
    .await;
    let instant = output(&report, "instant");
    assert_eq!(instant["found"], Value::Bool(false));
    assert_eq!(instant["series"], Value::Int(0));
    let range = output(&report, "range");
    assert_eq!(range["found"], Value::Bool(false));
    assert_eq!(range["points"], Value::Int(0));
    let reason = failure(&report, "backwards");
    assert!(
        reason.starts_with("prometheus refused the query (bad_data): "),
        "{reason}"
    );
    let reason = failure(&report, "unparsable");
    assert!(
        reason.starts_with("the query cannot take the `where:` matchers: "),
        "{reason}"
    );
    assert_eq!(
        failure(&report, "bad_key"),
        "`prom.query`: `where:` key \"not-a-label\" is not a Prometheus label name (letters, digits and `_`, not starting with a digit)"
    );
    // The queries the adapter refused were never sent, and Prometheus logs only what it
    // evaluates (the backwards range is refused before): the two narrowed queries.
    let mut received = prometheus.received_queries();
    received.sort();
    assert_eq!(
        received,
        [
            r#"disk_used_ratio{instance="nowhere"}"#,
            r#"max(disk_used_ratio{instance="nowhere"})"#,
        ]
    );
}
