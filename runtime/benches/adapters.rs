//! The latency each adapter adds to one call, the executor excluded: for every stdlib
//! function with an adapter, `StandardToolbox::call(function, args)` made directly (no plan,
//! no executor, no journal) against a server on loopback, and the same request made with
//! the bare client library (reqwest, kube, lettre) to the same server. Calls are
//! sequential, and the adapter's and the bare client's calls alternate, so that both see
//! the same state of the machine; each side gets warm-up calls first (connection pools
//! filled, the server's caches warm). Prints the median and the 99th percentile of both,
//! and their difference: what the adapter adds (argument decoding, policy checks, result
//! shaping, and for some functions extra requests, counted in the `requests` column).
//!
//! Servers: a tiny axum server for `http.get`, `notify.slack` and `notify.webhook`; the
//! real Prometheus (`medic_sandbox::prometheus::RealPrometheus`) for `prom.query`; the
//! sandbox Kubernetes API server over TLS for `k8s.*`; aiosmtpd for `notify.email`. A
//! server whose binary is missing is a row with the install command; the others still run.
//!
//! Run with `cargo bench -p medic-runtime --bench adapters` (`MEDIC_BENCH_CALLS=N` changes
//! the number of measured calls per side). The servers share the machine's cores with the
//! client, so the absolute figures are the machine's; the differences are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ListParams, Patch, PatchParams};
use lettre::AsyncTransport;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use medic_compiler::plan::{UrlValue, Value};
use medic_runtime::adapters::kubernetes::{KubeCluster, KubernetesConfig};
use medic_runtime::adapters::{
    Kubernetes, NotifyConfig, PrometheusConfig, SmtpConfig, SmtpTls, StandardToolbox, ToolboxConfig,
};
use medic_runtime::executor::Toolbox;
use medic_sandbox::kubernetes::ApiServer;
use medic_sandbox::prometheus::RealPrometheus;
use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Calls per side before measuring.
const WARMUP: usize = 30;
/// Measured calls per side, unless `MEDIC_BENCH_CALLS` says otherwise.
const CALLS: usize = 300;
/// The interpreter Debian's python3-aiosmtpd is installed for.
const PYTHON: &str = "/usr/bin/python3";
const TIMEOUT: Duration = Duration::from_secs(10);

/// One measured comparison.
struct Row {
    function: &'static str,
    bare: &'static str,
    /// Requests (or SMTP connections) per call: the adapter's, the bare client's.
    requests: (f64, f64),
    adapter: Vec<Duration>,
    baseline: Vec<Duration>,
}

enum Line {
    Measured(Row),
    Skipped {
        function: &'static str,
        reason: String,
    },
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let rank = ((sorted.len() as f64) * share).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap()
}

/// Runs `warmup` then `calls` calls of each side, alternating, and times each call.
/// `requests` counts what the server received so far (for the per-call request count).
async fn compare<A, AF, B, BF>(
    calls: usize,
    mut adapter: A,
    mut bare: B,
    requests: impl Fn() -> usize,
) -> (Vec<Duration>, Vec<Duration>, (f64, f64))
where
    A: FnMut() -> AF,
    AF: Future<Output = ()>,
    B: FnMut() -> BF,
    BF: Future<Output = ()>,
{
    let (mut adapter_requests, mut bare_requests) = (0, 0);
    for _ in 0..WARMUP {
        let before = requests();
        adapter().await;
        let between = requests();
        bare().await;
        adapter_requests += between - before;
        bare_requests += requests() - between;
    }
    let mut adapter_times = Vec::with_capacity(calls);
    let mut bare_times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        adapter().await;
        adapter_times.push(started.elapsed());
        let started = Instant::now();
        bare().await;
        bare_times.push(started.elapsed());
    }
    adapter_times.sort();
    bare_times.sort();
    let per_call = |total: usize| total as f64 / WARMUP as f64;
    (
        adapter_times,
        bare_times,
        (per_call(adapter_requests), per_call(bare_requests)),
    )
}

fn args<const N: usize>(pairs: [(&str, Value); N]) -> BTreeMap<String, Value> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

fn strings(pairs: &[(&str, &str)]) -> Value {
    Value::record(
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), Value::String(value.to_string()))),
    )
}

async fn call(toolbox: &StandardToolbox, function: &str, args: BTreeMap<String, Value>) -> Value {
    match toolbox.call(function, args).await {
        Ok(value) => value,
        Err(error) => panic!("{function} failed: {error}"),
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    match value {
        Value::Record(fields) => &fields[name],
        other => panic!("not a record: {other:?}"),
    }
}

/// `GET /ok` answers `ok`; `POST /slack` and `POST /hook` answer 200 to any JSON. Answers
/// the base URL and the count of requests received.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    use axum::routing::{get, post};
    let received = Arc::new(AtomicUsize::new(0));
    let counted = |received: &Arc<AtomicUsize>| {
        let received = Arc::clone(received);
        move || {
            received.fetch_add(1, Ordering::Relaxed);
        }
    };
    let (on_get, on_slack, on_hook) = (counted(&received), counted(&received), counted(&received));
    let app = axum::Router::new()
        .route(
            "/ok",
            get(move || async move {
                on_get();
                "ok"
            }),
        )
        .route(
            "/slack",
            post(move |_: axum::Json<serde_json::Value>| async move {
                on_slack();
                "ok"
            }),
        )
        .route(
            "/hook",
            post(move |_: axum::Json<serde_json::Value>| async move {
                on_hook();
                "ok"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), received)
}

async fn http_rows(calls: usize, lines: &mut Vec<Line>) {
    let (base, received) = receiver().await;
    let requests = || received.load(Ordering::Relaxed);
    let toolbox = StandardToolbox::new(ToolboxConfig {
        notify: NotifyConfig {
            slack_webhook: Some(format!("{base}/slack")),
            webhooks: BTreeMap::from([("ops".to_string(), format!("{base}/hook"))]),
        },
        ..ToolboxConfig::default()
    })
    .unwrap();
    let client = reqwest::Client::new();
    let (toolbox, client, base) = (&toolbox, &client, base.as_str());

    let (adapter, baseline, counted) = compare(
        calls,
        || async move {
            let response = call(
                toolbox,
                "http.get",
                args([
                    (
                        "url",
                        Value::Url(UrlValue {
                            href: format!("{base}/ok"),
                            host_from_data: false,
                        }),
                    ),
                    ("timeout", Value::Duration(10_000)),
                    ("expect_status", Value::Int(200)),
                    ("headers", strings(&[])),
                ]),
            )
            .await;
            assert_eq!(field(&response, "ok"), &Value::Bool(true));
        },
        || async move {
            let response = client
                .get(format!("{base}/ok"))
                .timeout(TIMEOUT)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            response.bytes().await.unwrap();
        },
        requests,
    )
    .await;
    lines.push(Line::Measured(Row {
        function: "http.get",
        bare: "reqwest get",
        requests: counted,
        adapter,
        baseline,
    }));

    let (adapter, baseline, counted) = compare(
        calls,
        || async move {
            let delivery = call(
                toolbox,
                "notify.slack",
                args([
                    ("channel", Value::String("#ops".into())),
                    ("text", Value::String("order-service scaled 2 → 3".into())),
                ]),
            )
            .await;
            assert_eq!(field(&delivery, "delivered"), &Value::Bool(true));
        },
        || async move {
            let body = serde_json::json!({"channel": "#ops", "text": "order-service scaled 2 → 3"});
            let response = client
                .post(format!("{base}/slack"))
                .json(&body)
                .timeout(TIMEOUT)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        },
        requests,
    )
    .await;
    lines.push(Line::Measured(Row {
        function: "notify.slack",
        bare: "reqwest post json",
        requests: counted,
        adapter,
        baseline,
    }));

    let (adapter, baseline, counted) = compare(
        calls,
        || async move {
            let delivery = call(
                toolbox,
                "notify.webhook",
                args([
                    ("name", Value::String("ops".into())),
                    ("title", Value::String("order_cpu".into())),
                    ("text", Value::String("order-service scaled 2 → 3".into())),
                ]),
            )
            .await;
            assert_eq!(field(&delivery, "delivered"), &Value::Bool(true));
        },
        || async move {
            let body =
                serde_json::json!({"title": "order_cpu", "text": "order-service scaled 2 → 3"});
            let response = client
                .post(format!("{base}/hook"))
                .json(&body)
                .timeout(TIMEOUT)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        },
        requests,
    )
    .await;
    lines.push(Line::Measured(Row {
        function: "notify.webhook",
        bare: "reqwest post json",
        requests: counted,
        adapter,
        baseline,
    }));
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

async fn prometheus_rows(calls: usize, lines: &mut Vec<Line>) {
    // Three instances' disk usage, one sample a minute for the last half hour.
    let now = unix_now();
    let mut metrics =
        String::from("# HELP disk_used_ratio used share\n# TYPE disk_used_ratio gauge\n");
    for (instance, ratio) in [
        ("node-a:9100", 0.9),
        ("node-b:9100", 0.5),
        ("node-c:9100", 0.7),
    ] {
        for minutes_ago in (1..=30).rev() {
            metrics.push_str(&format!(
                "disk_used_ratio{{instance=\"{instance}\"}} {ratio} {}\n",
                now - minutes_ago * 60
            ));
        }
    }
    metrics.push_str("# EOF\n");
    let started = tokio::task::spawn_blocking(move || RealPrometheus::start(&metrics))
        .await
        .unwrap();
    let prometheus = match started {
        Ok(prometheus) => prometheus,
        Err(error) => {
            for function in ["prom.query", "prom.query where:"] {
                lines.push(Line::Skipped {
                    function,
                    reason: error.to_string(),
                });
            }
            return;
        }
    };
    let toolbox = StandardToolbox::new(ToolboxConfig {
        prometheus: Some(PrometheusConfig {
            url: prometheus.url(),
            timeout: TIMEOUT,
            bearer_token: None,
        }),
        ..ToolboxConfig::default()
    })
    .unwrap();
    let client = reqwest::Client::new();
    let query_url = format!("{}/api/v1/query", prometheus.url());
    // Inside the backfilled range: the newest sample is a minute old at `now`.
    let at_ms = (now - 120) * 1000;
    let at_seconds = format!("{}", now - 120);
    let (toolbox, client, query_url, at_seconds) = (&toolbox, &client, &query_url, &at_seconds);

    for (function, promql, labels, sent, expected) in [
        (
            "prom.query",
            "max(disk_used_ratio)",
            &[][..],
            "max(disk_used_ratio)",
            0.9,
        ),
        (
            "prom.query where:",
            "max(disk_used_ratio)",
            &[("instance", "node-b:9100")][..],
            r#"max(disk_used_ratio{instance="node-b:9100"})"#,
            0.5,
        ),
    ] {
        let (adapter, baseline, _) = compare(
            calls,
            || async move {
                let sample = call(
                    toolbox,
                    "prom.query",
                    args([
                        ("promql", Value::String(promql.into())),
                        ("at", Value::Time(at_ms)),
                        ("where", strings(labels)),
                    ]),
                )
                .await;
                assert_eq!(field(&sample, "value"), &Value::Float(expected));
                assert_eq!(field(&sample, "query"), &Value::String(sent.into()));
            },
            || async move {
                // What the adapter sends: the query (with the where: matchers already in
                // it), the time and the timeout as a form.
                let response = client
                    .post(query_url.as_str())
                    .form(&[
                        ("query", sent),
                        ("time", at_seconds.as_str()),
                        ("timeout", "10"),
                    ])
                    .timeout(TIMEOUT)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                let answer: serde_json::Value =
                    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
                assert_eq!(
                    answer["data"]["result"][0]["value"][1],
                    expected.to_string()
                );
            },
            || 1,
        )
        .await;
        lines.push(Line::Measured(Row {
            function,
            bare: "reqwest post form",
            // One POST to /api/v1/query each (Prometheus keeps no count to read back here).
            requests: (1.0, 1.0),
            adapter,
            baseline,
        }));
    }
    drop(prometheus);
}

async fn kubernetes_rows(calls: usize, lines: &mut Vec<Line>) {
    let server = ApiServer::start().await.unwrap();
    server.add_deployment("default", "web", Some(2));
    // Another deployment's HPA, so the HPA list the adapter reads is not empty.
    server.add_deployment("default", "api", Some(2));
    server.add_hpa("default", "api", "api", Some(2), 10);
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(kubeconfig.path(), server.kubeconfig()).unwrap();
    let cluster = KubeCluster::connect(
        &KubernetesConfig {
            kubeconfig: Some(kubeconfig.path().to_path_buf()),
            context: None,
        },
        TIMEOUT,
    )
    .await
    .unwrap();
    let toolbox = StandardToolbox::new(ToolboxConfig {
        kubernetes: Some(Arc::new(Kubernetes::new(Arc::new(cluster), TIMEOUT))),
        ..ToolboxConfig::default()
    })
    .unwrap();
    // The bare client: the same kubeconfig, read the same way, kube's retries off as the
    // adapter has them.
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig.path()).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false;
    config.connect_timeout = Some(TIMEOUT);
    config.read_timeout = Some(TIMEOUT);
    config.write_timeout = Some(TIMEOUT);
    let client = kube::Client::try_from(config).unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let autoscalers: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
    let (toolbox, deployments, autoscalers, server) =
        (&toolbox, &deployments, &autoscalers, &server);
    let requests = || server.requests().len();

    let read_adapter = || async move {
        let deployment = call(
            toolbox,
            "k8s.deployment",
            args([
                ("name", Value::String("web".into())),
                ("namespace", Value::String("default".into())),
            ]),
        )
        .await;
        assert_eq!(field(&deployment, "autoscaled"), &Value::Bool(false));
    };
    let (adapter, baseline, counted) = compare(
        calls,
        read_adapter,
        || async move {
            let deployment = deployments.get("web").await.unwrap();
            assert!(deployment.spec.is_some());
        },
        requests,
    )
    .await;
    lines.push(Line::Measured(Row {
        function: "k8s.deployment",
        bare: "kube get",
        requests: counted,
        adapter,
        baseline,
    }));
    let (adapter, baseline, counted) = compare(
        calls,
        read_adapter,
        || async move {
            let deployment = deployments.get("web").await.unwrap();
            assert!(deployment.spec.is_some());
            let hpas = autoscalers.list(&ListParams::default()).await.unwrap();
            assert_eq!(hpas.items.len(), 1);
        },
        requests,
    )
    .await;
    lines.push(Line::Measured(Row {
        function: "k8s.deployment",
        bare: "kube get + list HPAs",
        requests: counted,
        adapter,
        baseline,
    }));

    // Every scale writes: each write (adapter's or bare) sets the other of 2 and 3.
    let writes = &AtomicU64::new(0);
    let next = move || {
        if writes.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            3
        } else {
            2
        }
    };
    let params = &PatchParams {
        field_manager: Some("medic".into()),
        ..PatchParams::default()
    };
    let scale_adapter = || async move {
        let to = next();
        let scaled = call(
            toolbox,
            "k8s.scale_to",
            args([
                ("deployment", Value::String("web".into())),
                ("replicas", Value::Int(to)),
                ("max", Value::Int(10)),
                ("min", Value::Int(1)),
                ("namespace", Value::String("default".into())),
            ]),
        )
        .await;
        assert_eq!(field(&scaled, "changed"), &Value::Bool(true));
        assert_eq!(field(&scaled, "to"), &Value::Int(to));
    };
    let bare_scale = move |list_first: bool| async move {
        let to = next();
        if list_first {
            autoscalers.list(&ListParams::default()).await.unwrap();
        }
        let scale = deployments.get_scale("web").await.unwrap();
        let version = scale.metadata.resource_version.unwrap();
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": version},
            "spec": {"replicas": to},
        });
        let written = deployments
            .patch_scale("web", params, &Patch::Merge(&patch))
            .await
            .unwrap();
        assert_eq!(
            written.spec.unwrap().replicas,
            Some(i32::try_from(to).unwrap())
        );
    };
    let (adapter, baseline, counted) =
        compare(calls, scale_adapter, || bare_scale(false), requests).await;
    lines.push(Line::Measured(Row {
        function: "k8s.scale_to",
        bare: "kube get_scale + patch_scale",
        requests: counted,
        adapter,
        baseline,
    }));
    let (adapter, baseline, counted) =
        compare(calls, scale_adapter, || bare_scale(true), requests).await;
    lines.push(Line::Measured(Row {
        function: "k8s.scale_to",
        bare: "kube list HPAs + get_scale + patch_scale",
        requests: counted,
        adapter,
        baseline,
    }));
}

/// aiosmtpd on a free loopback port, discarding what it receives; killed when dropped.
struct Aiosmtpd {
    child: Child,
    port: u16,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_aiosmtpd() -> Result<Aiosmtpd, String> {
    let install = "apt-get install -y python3-aiosmtpd";
    let installed = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        return Err(format!("aiosmtpd is not installed for {PYTHON}: {install}"));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(PYTHON)
        .args(["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start aiosmtpd ({error}): {install}"))?;
    let mut server = Aiosmtpd { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("aiosmtpd exited ({status}) before listening"));
        }
        if Instant::now() > deadline {
            return Err("aiosmtpd did not listen within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait a moment more: the port can accept before aiosmtpd greets.
    std::thread::sleep(Duration::from_millis(200));
    Ok(server)
}

fn mail(subject: &str) -> Message {
    Message::builder()
        .from("medic@example.com".parse::<Mailbox>().unwrap())
        .to("oncall@example.com".parse::<Mailbox>().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body("order-service scaled 2 → 3".to_string())
        .unwrap()
}

async fn smtp_rows(calls: usize, lines: &mut Vec<Line>) {
    let server = match start_aiosmtpd() {
        Ok(server) => server,
        Err(reason) => {
            lines.push(Line::Skipped {
                function: "notify.email",
                reason,
            });
            return;
        }
    };
    let port = server.port;
    let toolbox = StandardToolbox::new(ToolboxConfig {
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            from: "medic@example.com".into(),
            tls: SmtpTls::None,
            username: None,
            password: None,
            timeout: TIMEOUT,
        }),
        ..ToolboxConfig::default()
    })
    .unwrap();
    let toolbox = &toolbox;
    let adapter = || async move {
        let delivery = call(
            toolbox,
            "notify.email",
            args([
                (
                    "to",
                    Value::List(vec![Value::String("oncall@example.com".into())]),
                ),
                ("subject", Value::String("order_cpu".into())),
                ("body", Value::String("order-service scaled 2 → 3".into())),
            ]),
        )
        .await;
        assert_eq!(field(&delivery, "delivered"), &Value::Bool(true));
    };
    // The same protocol as the adapter: one connection per mail with TCP_NODELAY, EHLO,
    // MAIL, RCPT, DATA, QUIT.
    let (adapter_times, baseline, _) = compare(
        calls,
        adapter,
        || async move {
            let message = mail("order_cpu");
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            stream.set_nodelay(true).unwrap();
            let mut connection =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &ClientId::default())
                    .await
                    .unwrap();
            let response = connection
                .send(message.envelope(), &message.formatted())
                .await
                .unwrap();
            assert!(response.is_positive());
            connection.quit().await.unwrap();
        },
        || 1,
    )
    .await;
    lines.push(Line::Measured(Row {
        function: "notify.email",
        bare: "lettre connection, TCP_NODELAY",
        // One SMTP connection per mail on both sides.
        requests: (1.0, 1.0),
        adapter: adapter_times,
        baseline,
    }));
    // lettre's own transport, which the adapter does not use: a new connection per mail
    // too (no pool feature), but without TCP_NODELAY.
    let transport =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .timeout(Some(TIMEOUT))
            .build();
    let transport = &transport;
    let (adapter_times, baseline, _) = compare(
        // Each of its mails waits for a delayed ACK: fewer calls keep the run short.
        calls.min(100),
        adapter,
        || async move {
            let response = transport.send(mail("order_cpu")).await.unwrap();
            assert!(response.is_positive());
        },
        || 1,
    )
    .await;
    lines.push(Line::Measured(Row {
        function: "notify.email",
        bare: "lettre AsyncSmtpTransport",
        requests: (1.0, 1.0),
        adapter: adapter_times,
        baseline,
    }));
    drop(server);
}

fn print(lines: &[Line], calls: usize) {
    println!(
        "\nlatency per call, µs: {calls} sequential calls per side after {WARMUP} warm-up calls, adapter and bare client alternating, loopback, {} cores",
        std::thread::available_parallelism().map_or(0, |cores| cores.get())
    );
    println!(
        "{:<18} {:<41} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "function",
        "bare client",
        "requests",
        "adp p50",
        "adp p99",
        "bare p50",
        "bare p99",
        "+p50",
        "+p99"
    );
    for line in lines {
        match line {
            Line::Measured(row) => {
                let (adapter_p50, adapter_p99) = (
                    percentile(&row.adapter, 0.5),
                    percentile(&row.adapter, 0.99),
                );
                let (bare_p50, bare_p99) = (
                    percentile(&row.baseline, 0.5),
                    percentile(&row.baseline, 0.99),
                );
                println!(
                    "{:<18} {:<41} {:>9} {:>8} {:>8} {:>8} {:>8} {:>+8} {:>+8}",
                    row.function,
                    row.bare,
                    format!("{} / {}", row.requests.0, row.requests.1),
                    micros(adapter_p50),
                    micros(adapter_p99),
                    micros(bare_p50),
                    micros(bare_p99),
                    micros(adapter_p50) - micros(bare_p50),
                    micros(adapter_p99) - micros(bare_p99),
                );
            }
            Line::Skipped { function, reason } => {
                println!("{function:<18} not measured: {reason}");
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let calls = std::env::var("MEDIC_BENCH_CALLS")
        .ok()
        .map_or(CALLS, |calls| calls.parse().unwrap());
    let mut lines = Vec::new();
    http_rows(calls, &mut lines).await;
    prometheus_rows(calls, &mut lines).await;
    kubernetes_rows(calls, &mut lines).await;
    smtp_rows(calls, &mut lines).await;
    print(&lines, calls);
}
