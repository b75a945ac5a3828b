//! `http.get`/`http.post` through the real adapter against loopback listeners: alert data
//! never chooses where a request goes (hosts, paths, redirects, metadata addresses), the
//! answer is cut at 64 KiB without reading the rest, and credentials stay out of the
//! journaled arguments.

use super::support::{compile, failure, output, run_playbook};
use medic_compiler::plan::{self, Plan, Value};
use medic_runtime::adapters::{
    HeaderRule, HttpConfig, NotifyConfig, StandardToolbox, ToolboxConfig,
};
use medic_runtime::executor::{self, RunOptions, RunReport};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a loopback listener answers to each request.
#[derive(Clone)]
enum Answer {
    Ok(&'static str),
    Redirect(String),
    /// Announces 10 MB, sends 128 KiB, then holds the connection open without a byte more.
    Huge,
    /// Answers after 100 ms.
    Slow,
    /// Closes the connection without a byte.
    Hangup,
    /// Answers 500 to everything.
    ServerError,
}

/// A listener that records the head of every request it gets.
struct Listener {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    /// Requests being answered now, and the most at once.
    busy: Arc<Mutex<(usize, usize)>>,
}

impl Listener {
    async fn start(answer: Answer) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let busy = Arc::new(Mutex::new((0, 0)));
        let counting = Arc::clone(&busy);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen);
                let counting = Arc::clone(&counting);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&buffer[..read]),
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    match answer {
                        Answer::Hangup => drop(stream),
                        Answer::ServerError => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                        }
                        Answer::Slow => {
                            {
                                let mut busy = counting.lock().unwrap();
                                busy.0 += 1;
                                busy.1 = busy.1.max(busy.0);
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            counting.lock().unwrap().0 -= 1;
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                                .await;
                        }
                        Answer::Ok(body) => {
                            let response = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = stream.write_all(response.as_bytes()).await;
                        }
                        Answer::Redirect(location) => {
                            let response = format!(
                                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(response.as_bytes()).await;
                        }
                        Answer::Huge => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10485760\r\n\r\n")
                                .await;
                            let chunk = vec![b'x'; 128 * 1024];
                            let _ = stream.write_all(&chunk).await;
                            // The rest never comes: a client that reads the whole body waits
                            // until its timeout.
                            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                        }
                    }
                });
            }
        });
        Listener {
            port,
            requests,
            busy,
        }
    }

    fn request_lines(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|head| head.lines().next().unwrap_or_default().to_string())
            .collect()
    }

    fn heads(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn toolbox(http: HttpConfig) -> Arc<StandardToolbox> {
    Arc::new(
        StandardToolbox::new(ToolboxConfig {
            http,
            ..ToolboxConfig::default()
        })
        .unwrap(),
    )
}

fn allow(hosts: &[&str]) -> HttpConfig {
    HttpConfig {
        allow_hosts: hosts.iter().map(|host| host.parse().unwrap()).collect(),
        ..HttpConfig::default()
    }
}

/// The alert a rule sees, with only the fields these tests read.
fn alert(service: &str) -> Value {
    Value::record([("service".to_string(), Value::String(service.into()))])
}

/// Matches `alert` against the plan's first rule, evaluates its arguments and runs its
/// playbook, as the engine does.
async fn run_rule(
    plan: &Plan,
    alert: Value,
    toolbox: Arc<StandardToolbox>,
    dry_run: bool,
) -> RunReport {
    let rule = &plan.rules[0];
    let vars: BTreeMap<String, Value> = [("alert".to_string(), alert)].into();
    let arguments: BTreeMap<String, Value> = rule
        .args
        .iter()
        .map(|(name, value)| (name.clone(), value.eval(&vars).unwrap()))
        .collect();
    let playbook = plan
        .playbooks
        .iter()
        .find(|playbook| playbook.name == rule.playbook)
        .unwrap();
    executor::run(playbook, arguments, toolbox, RunOptions { dry_run }).await
}

fn response_field(report: &RunReport, task: &str, field: &str) -> Value {
    output(report, task)[field].clone()
}

const RULE_BUILDS_URL: &str = r#"
import std.{http}
rule check_service {
  on alert "Service_Down"
  run check(url: "http://{alert.service}/health")
}
playbook check(url: Url) {
  task status = http.get(url)
}
"#;

#[tokio::test]
async fn a_host_from_alert_data_cannot_carry_a_path_or_a_query() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let plan = compile(RULE_BUILDS_URL);
    let service = format!("127.0.0.1:{}/attacker-chosen-path?x=", listener.port);
    // The rule's argument does not evaluate: a value in the host must be a host, so the
    // engine starts no run (it records why).
    let vars: BTreeMap<String, Value> = [("alert".to_string(), alert(&service))].into();
    let error = plan.rules[0].args["url"].eval(&vars).unwrap_err();
    assert_eq!(error, plan::EvalError::NotAHost(service.clone()),);
    assert!(
        listener.request_lines().is_empty(),
        "{:?}",
        listener.request_lines()
    );
}

#[tokio::test]
async fn a_host_from_alert_data_is_requested_only_when_allowed() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let plan = compile(RULE_BUILDS_URL);
    let service = format!("127.0.0.1:{}", listener.port);

    let refused = run_rule(
        &plan,
        alert(&service),
        toolbox(HttpConfig::default()),
        false,
    )
    .await;
    let reason = failure(&refused, "status");
    assert!(reason.contains("is not in [http] allow_hosts"), "{reason}");
    assert!(listener.request_lines().is_empty());

    let allowed = run_rule(
        &plan,
        alert(&service),
        toolbox(allow(&["127.0.0.1"])),
        false,
    )
    .await;
    assert_eq!(
        response_field(&allowed, "status", "status"),
        Value::Int(200)
    );
    assert_eq!(listener.request_lines(), vec!["GET /health HTTP/1.1"]);
}

#[tokio::test]
async fn an_allowed_host_pattern_with_a_port_refuses_other_ports() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let plan = compile(RULE_BUILDS_URL);
    let service = format!("127.0.0.1:{}", listener.port);
    let other_port = listener.port.wrapping_add(1).max(1);
    let report = run_rule(
        &plan,
        alert(&service),
        toolbox(allow(&[&format!("127.0.0.1:{other_port}")])),
        false,
    )
    .await;
    assert!(failure(&report, "status").contains("allow_hosts"));
    assert!(listener.request_lines().is_empty());
}

#[tokio::test]
async fn a_name_of_http_hosts_goes_to_its_address_and_the_urls_own_port_wins() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let plan = compile(RULE_BUILDS_URL);
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", listener.port).parse().unwrap();
    let mut config = allow(&["payment-gateway", "logging-node"]);
    config.hosts = [
        ("payment-gateway".to_string(), address),
        ("logging-node".to_string(), "127.0.0.1:9".parse().unwrap()),
    ]
    .into();
    let toolbox = toolbox(config);
    // No port in the URL: the entry's port is used; the Host header keeps the name.
    let report = run_rule(&plan, alert("payment-gateway"), Arc::clone(&toolbox), false).await;
    assert_eq!(response_field(&report, "status", "status"), Value::Int(200));
    assert_eq!(listener.request_lines(), vec!["GET /health HTTP/1.1"]);
    assert!(
        listener.heads()[0]
            .to_ascii_lowercase()
            .contains("host: payment-gateway\r\n"),
        "{:?}",
        listener.heads()
    );
    // A port in the URL wins over the entry's (port 9 is not listened on here).
    let service = format!("logging-node:{}", listener.port);
    let report = run_rule(&plan, alert(&service), toolbox, false).await;
    assert_eq!(response_field(&report, "status", "status"), Value::Int(200));
    assert_eq!(listener.request_lines().len(), 2);
}

#[tokio::test]
async fn a_fixed_host_needs_no_allow_list_and_path_values_are_escaped() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let source = format!(
        r#"
import std.{{http}}
playbook check(item: String) {{
  task status = http.get("http://127.0.0.1:{}/api/items/{{item}}/status?q={{item}}")
}}
"#,
        listener.port
    );
    let plan = compile(&source);
    let report = run_playbook(
        &plan,
        &[("item", Value::String("a/b?c#d@e".into()))],
        toolbox(HttpConfig::default()),
    )
    .await;
    assert_eq!(response_field(&report, "status", "status"), Value::Int(200));
    assert_eq!(
        listener.request_lines(),
        vec!["GET /api/items/a%2Fb%3Fc%23d%40e/status?q=a%2Fb%3Fc%23d%40e HTTP/1.1"]
    );
}

#[tokio::test]
async fn dot_segments_from_data_are_refused() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let source = format!(
        r#"
import std.{{http}}
playbook check(item: String) {{
  task status = http.get("http://127.0.0.1:{}/api/items/{{item}}/status")
}}
"#,
        listener.port
    );
    let plan = compile(&source);
    for item in ["..", "."] {
        let report = run_playbook(
            &plan,
            &[("item", Value::String(item.into()))],
            toolbox(HttpConfig::default()),
        )
        .await;
        let reason = failure(&report, "status");
        assert!(reason.contains("path segment"), "{item}: {reason}");
    }
    assert!(
        listener.request_lines().is_empty(),
        "{:?}",
        listener.request_lines()
    );
    // A `%` from data is itself escaped, so `%2e%2e` arrives as the harmless `%252e%252e`,
    // under the path the runbook wrote.
    let report = run_playbook(
        &plan,
        &[("item", Value::String("%2e%2e".into()))],
        toolbox(HttpConfig::default()),
    )
    .await;
    assert_eq!(response_field(&report, "status", "status"), Value::Int(200));
    assert_eq!(
        listener.request_lines(),
        vec!["GET /api/items/%252e%252e/status HTTP/1.1"]
    );
}

#[tokio::test]
async fn a_base_url_parameter_is_extended_without_changing_its_host() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let source = format!(
        r#"
import std.{{http}}
rule check_service {{
  on alert "Service_Down"
  run check(base: "http://127.0.0.1:{}/v1")
}}
playbook check(base: Url) {{
  task status = http.get("{{base}}/health/{{base}}")
}}
"#,
        listener.port
    );
    let plan = compile(&source);
    let report = run_rule(&plan, alert("x"), toolbox(HttpConfig::default()), false).await;
    assert_eq!(response_field(&report, "status", "status"), Value::Int(200));
    let lines = listener.request_lines();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("GET /v1/health/http%3A%2F%2F127.0.0.1"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn redirects_to_another_origin_are_not_followed_even_in_a_dry_run() {
    let target = Listener::start(Answer::Ok("elsewhere")).await;
    let redirecting = Listener::start(Answer::Redirect(format!(
        "http://127.0.0.1:{}/stolen",
        target.port
    )))
    .await;
    let source = format!(
        r#"
import std.{{http}}
rule check_service {{
  on alert "Service_Down"
  run check(url: "http://127.0.0.1:{}/health")
}}
playbook check(url: Url) {{
  task status = http.get(url)
}}
"#,
        redirecting.port
    );
    let plan = compile(&source);
    for dry_run in [true, false] {
        let report = run_rule(&plan, alert("x"), toolbox(HttpConfig::default()), dry_run).await;
        assert_eq!(response_field(&report, "status", "status"), Value::Int(302));
        assert_eq!(response_field(&report, "status", "ok"), Value::Bool(false));
    }
    assert!(
        target.request_lines().is_empty(),
        "{:?}",
        target.request_lines()
    );

    // Once the target's origin is allowed, the redirect is followed.
    let report = run_rule(
        &plan,
        alert("x"),
        toolbox(allow(&[&format!("127.0.0.1:{}", target.port)])),
        false,
    )
    .await;
    assert_eq!(
        response_field(&report, "status", "body"),
        Value::String("elsewhere".into())
    );
    assert_eq!(target.request_lines(), vec!["GET /stolen HTTP/1.1"]);
}

#[tokio::test]
async fn link_local_and_metadata_hosts_are_refused_unless_named_exactly() {
    let source = r#"
import std.{http}
playbook check() {
  task aws = http.get("http://169.254.169.254/latest/meta-data/")
  task gcp = http.get("http://metadata.google.internal/computeMetadata/v1/")
  task v6 = http.get("http://[fe80::1]/")
  task azure = http.get("http://168.63.129.16/machine")
  task gcp6 = http.get("http://[fd20:ce::254]/")
  task nat64 = http.get("http://[64:ff9b::a9fe:a9fe]/")
}
"#;
    let plan = compile(source);
    let report = run_playbook(
        &plan,
        &[],
        toolbox(allow(&["169.254.0.0/16", "*.internal"])),
    )
    .await;
    for task in ["aws", "gcp", "v6", "azure", "gcp6", "nat64"] {
        let reason = failure(&report, task);
        assert!(
            reason.contains("link-local or cloud metadata"),
            "{task}: {reason}"
        );
    }
}

#[tokio::test]
async fn a_huge_answer_is_cut_at_64_kib_without_reading_the_rest() {
    let listener = Listener::start(Answer::Huge).await;
    let source = format!(
        r#"
import std.{{http}}
playbook check() {{
  task big = http.get("http://127.0.0.1:{}/huge", timeout: 60s)
}}
"#,
        listener.port
    );
    let plan = compile(&source);
    let report = run_playbook(&plan, &[], toolbox(HttpConfig::default())).await;
    // Reading the whole announced body would wait for bytes that never come, until the
    // timeout; the adapter stops at its limit and answers.
    let Value::String(body) = response_field(&report, "big", "body") else {
        panic!("the body is text");
    };
    assert_eq!(body.len(), 64 * 1024);
}

#[tokio::test]
async fn credentials_reach_the_server_but_not_the_journal() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let source = format!(
        r#"
import std.{{http}}
playbook check() {{
  task status = http.get("http://127.0.0.1:{}/x?access_token=abc123&service=pay", headers: {{"X-Trace": "trace-77"}})
}}
"#,
        listener.port
    );
    let plan = compile(&source);
    let config = HttpConfig {
        headers: vec![HeaderRule {
            hosts: vec!["127.0.0.1".parse().unwrap()],
            name: "Authorization".into(),
            value: "Bearer from-config-s3cret".into(),
        }],
        ..HttpConfig::default()
    };
    let report = run_playbook(&plan, &[], toolbox(config)).await;
    assert_eq!(response_field(&report, "status", "status"), Value::Int(200));
    let head = listener.heads().join("\n").to_ascii_lowercase();
    assert!(head.contains("access_token=abc123"), "{head}");
    assert!(head.contains("x-trace: trace-77"), "{head}");
    assert!(
        head.contains("authorization: bearer from-config-s3cret"),
        "{head}"
    );

    let journaled = serde_json::to_string(&report).unwrap();
    assert!(!journaled.contains("abc123"), "{journaled}");
    assert!(!journaled.contains("trace-77"), "{journaled}");
    assert!(!journaled.contains("s3cret"), "{journaled}");
    assert!(journaled.contains("service=pay"), "{journaled}");
    assert!(journaled.contains("access_token=REDACTED"), "{journaled}");
}

#[tokio::test]
async fn calls_of_one_function_wait_for_its_concurrency_limit() {
    let listener = Listener::start(Answer::Slow).await;
    let toolbox = Arc::new(
        StandardToolbox::new(ToolboxConfig {
            calls_per_function: 2,
            ..ToolboxConfig::default()
        })
        .unwrap(),
    );
    let calls: Vec<_> = (0..8)
        .map(|index| {
            let args = BTreeMap::from([
                (
                    "url".to_string(),
                    Value::Url(plan::UrlValue {
                        href: format!("http://127.0.0.1:{}/{index}", listener.port),
                        host_from_data: false,
                    }),
                ),
                ("timeout".to_string(), Value::Duration(10_000)),
                ("expect_status".to_string(), Value::Int(200)),
                ("headers".to_string(), Value::record([])),
            ]);
            medic_runtime::executor::Toolbox::call(toolbox.as_ref(), "http.get", args)
        })
        .collect();
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(listener.request_lines().len(), 8);
    assert_eq!(listener.busy.lock().unwrap().1, 2, "at most two at once");
}

#[tokio::test]
async fn arguments_of_the_wrong_type_are_an_error_not_a_default() {
    let toolbox = toolbox(HttpConfig::default());
    let args = BTreeMap::from([
        (
            "url".to_string(),
            Value::String("http://127.0.0.1:1/".to_string()),
        ),
        ("timeout".to_string(), Value::Duration(10_000)),
        ("expect_status".to_string(), Value::Int(200)),
        ("headers".to_string(), Value::record([])),
    ]);
    let error = medic_runtime::executor::Toolbox::call(toolbox.as_ref(), "http.get", args)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "`http.get`: argument `url` must be a Url, not String"
    );
    let args = BTreeMap::from([(
        "url".to_string(),
        Value::Url(plan::UrlValue {
            href: "http://127.0.0.1:1/".into(),
            host_from_data: false,
        }),
    )]);
    let error = medic_runtime::executor::Toolbox::call(toolbox.as_ref(), "http.get", args)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "`http.get` was called without its argument `timeout`"
    );
}

#[tokio::test]
async fn no_answer_is_a_failure_that_is_retried_and_any_answer_is_data() {
    let hangup = Listener::start(Answer::Hangup).await;
    let broken = Listener::start(Answer::ServerError).await;
    let source = format!(
        r#"
import std.{{http}}
playbook check() {{
  task silent = http.get("http://127.0.0.1:{}/health") {{
    retry 2 backoff 10ms
    on failure continue
  }}
  task unhealthy = http.get("http://127.0.0.1:{}/health") {{
    retry 2 backoff 10ms
  }}
}}
"#,
        hangup.port, broken.port
    );
    let plan = compile(&source);
    let report = run_playbook(&plan, &[], toolbox(HttpConfig::default())).await;
    let reason = failure(&report, "silent");
    assert!(reason.starts_with("no answer:"), "{reason}");
    assert_eq!(report.tasks[0].attempts, 3);
    assert_eq!(hangup.request_lines().len(), 3, "retried");
    // A 500 is an answer: data for the playbook, not retried.
    assert_eq!(
        response_field(&report, "unhealthy", "status"),
        Value::Int(500)
    );
    assert_eq!(
        response_field(&report, "unhealthy", "ok"),
        Value::Bool(false)
    );
    assert_eq!(broken.request_lines().len(), 1);
}

#[tokio::test]
async fn an_undelivered_notification_fails_and_is_retried() {
    let broken = Listener::start(Answer::ServerError).await;
    let working = Listener::start(Answer::Ok("ok")).await;
    let source = r#"
import std.{notify}
playbook tell() {
  task pager = notify.webhook(name: "pager", title: "t", text: "x") {
    retry 1 backoff 10ms
    on failure continue
  }
  task chat = notify.webhook(name: "chat", title: "t", text: "x")
}
"#;
    let plan = compile(source);
    let toolbox = Arc::new(
        StandardToolbox::new(ToolboxConfig {
            notify: NotifyConfig {
                slack_webhook: None,
                webhooks: BTreeMap::from([
                    (
                        "pager".to_string(),
                        format!("http://127.0.0.1:{}/hook", broken.port),
                    ),
                    (
                        "chat".to_string(),
                        format!("http://127.0.0.1:{}/hook", working.port),
                    ),
                ]),
            },
            ..ToolboxConfig::default()
        })
        .unwrap(),
    );
    let report = run_playbook(&plan, &[], toolbox).await;
    assert_eq!(failure(&report, "pager"), "not delivered: HTTP 500");
    assert_eq!(broken.request_lines().len(), 2, "retried once");
    assert_eq!(
        response_field(&report, "chat", "delivered"),
        Value::Bool(true)
    );
}

#[tokio::test]
async fn a_redirect_never_carries_a_configured_secret_to_another_host() {
    let target = Listener::start(Answer::Ok("elsewhere")).await;
    let vault = Listener::start(Answer::Redirect(format!(
        "http://127.0.0.1:{}/collect",
        target.port
    )))
    .await;
    let source = format!(
        r#"
import std.{{http}}
playbook check() {{
  task health = http.get("http://127.0.0.1:{}/v1/sys/health")
}}
"#,
        vault.port
    );
    let plan = compile(&source);
    let config = HttpConfig {
        // The target's host is allowed, but it is not the host the secret is for.
        allow_hosts: vec!["127.0.0.1".parse().unwrap()],
        headers: vec![HeaderRule {
            hosts: vec![format!("127.0.0.1:{}", vault.port).parse().unwrap()],
            name: "X-Vault-Token".into(),
            value: "s.vault-s3cret".into(),
        }],
        ..HttpConfig::default()
    };
    let report = run_playbook(&plan, &[], toolbox(config)).await;
    assert_eq!(response_field(&report, "health", "status"), Value::Int(302));
    assert!(
        vault.heads()[0]
            .to_ascii_lowercase()
            .contains("x-vault-token: s.vault-s3cret"),
        "{:?}",
        vault.heads()
    );
    assert!(target.request_lines().is_empty(), "{:?}", target.heads());
}

#[tokio::test]
async fn a_runbook_cannot_set_the_headers_that_frame_or_route_a_request() {
    let listener = Listener::start(Answer::Ok("fine")).await;
    let source = format!(
        r#"
import std.{{http}}
playbook check() {{
  task host = http.get("http://127.0.0.1:{}/x", headers: {{"Host": "evil.example"}})
  task length = http.get("http://127.0.0.1:{}/x", headers: {{"content-length": "0"}})
}}
"#,
        listener.port, listener.port
    );
    let plan = compile(&source);
    let report = run_playbook(&plan, &[], toolbox(HttpConfig::default())).await;
    for task in ["host", "length"] {
        let reason = failure(&report, task);
        assert!(
            reason.contains("the client sets it; a runbook may not"),
            "{task}: {reason}"
        );
    }
    assert!(listener.request_lines().is_empty());
}
