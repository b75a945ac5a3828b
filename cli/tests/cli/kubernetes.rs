//! `medic run`, `medic serve` and `medic doctor` with `[kubernetes]`, against the sandbox's
//! Kubernetes API server (over TLS, through the real `kube` client), as a user runs them.

use super::serve::{Receiver, Server, alertmanager_payload, config, free_port, write_plan};
use super::{medic, medic_with_env, stdout, temp_dir};
use medic_sandbox::kubernetes::ApiServer;

/// The sandbox API server on a runtime of its own (the tests are synchronous).
pub(super) struct Cluster {
    server: Option<ApiServer>,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    pub(super) fn start() -> Cluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(ApiServer::start()).unwrap();
        Cluster {
            server: Some(server),
            runtime,
        }
    }

    pub(super) fn api(&self) -> &ApiServer {
        self.server.as_ref().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.stop());
        }
    }
}

/// A medic.toml with `[kubernetes]` pointing at the sandbox and Slack at the receiver.
fn write_config(dir: &std::path::Path, cluster: &Cluster) -> std::path::PathBuf {
    std::fs::write(dir.join("kubeconfig"), cluster.api().kubeconfig()).unwrap();
    let path = dir.join("medic.toml");
    std::fs::write(
        &path,
        "[notify]\nslack_webhook_env = \"MEDIC_TEST_SLACK\"\n\n[kubernetes]\nkubeconfig = \"kubeconfig\"\ntimeout = \"5s\"\n",
    )
    .unwrap();
    path
}

/// `medic run` of the order_cpu example alert with this config, Slack posting to `webhook`.
fn run_order_cpu(config: &std::path::Path, webhook: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--alert",
        "examples/alerts/order_cpu.json",
        "--plans",
        "examples",
    ];
    args.extend_from_slice(extra);
    medic_with_env(&args, &[("MEDIC_TEST_SLACK", webhook)])
}

#[test]
fn order_cpu_scales_order_service_by_one_for_real() {
    let dir = temp_dir("k8s-order-cpu");
    let cluster = Cluster::start();
    cluster
        .api()
        .add_deployment("shop", "order-service", Some(2));
    let slack = Receiver::start();
    let config = write_config(&dir, &cluster);
    let webhook = format!("http://127.0.0.1:{}/slack", slack.port);
    let output = run_order_cpu(&config, &webhook, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(text.contains("playbook scale_up succeeded"), "{text}");
    assert!(
        text.contains("order-service: 2 → 3 replicas (max 5)"),
        "{text}"
    );
    assert_eq!(cluster.api().replicas("shop", "order-service"), Some(3));
    assert_eq!(*slack.paths.lock().unwrap(), ["/slack"]);
}

#[test]
fn order_cpu_raises_the_hpa_minimum_when_an_hpa_scales_order_service() {
    let dir = temp_dir("k8s-order-cpu-hpa");
    let cluster = Cluster::start();
    cluster
        .api()
        .add_deployment("shop", "order-service", Some(2));
    cluster
        .api()
        .add_hpa("shop", "order-service", "order-service", Some(2), 10);
    let slack = Receiver::start();
    let config = write_config(&dir, &cluster);
    let webhook = format!("http://127.0.0.1:{}/slack", slack.port);
    let output = run_order_cpu(&config, &webhook, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        text.contains(
            "HPA order-service minReplicas 2 → 3 (max 5, HPA max 10); spec.replicas left to the HPA"
        ),
        "{text}"
    );
    assert_eq!(cluster.api().hpa_min("shop", "order-service"), Some(3));
    assert_eq!(cluster.api().replicas("shop", "order-service"), Some(2));

    // The dry run asks the API server and changes nothing.
    let output = run_order_cpu(&config, &webhook, &["--dry-run"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(text.contains("the system says it would do:"), "{text}");
    assert!(text.contains("minReplicas 3 → 4"), "{text}");
    assert!(
        text.contains("(dry run: the API server accepted it)"),
        "{text}"
    );
    assert_eq!(cluster.api().hpa_min("shop", "order-service"), Some(3));
}

#[test]
fn serve_does_not_start_when_a_plan_calls_an_adapter_without_its_section() {
    let dir = temp_dir("k8s-serve-missing");
    std::fs::write(dir.join("medic.toml"), "").unwrap();
    let output = medic(&[
        "serve",
        "--config",
        dir.join("medic.toml").to_str().unwrap(),
        "--plans",
        "examples",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--store",
        dir.join("medic.db").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        stderr.contains("error: playbook scale_up (run by rule order_cpu) calls k8s.scale in task scale, which needs [kubernetes]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("calls prom.query in task before, which needs [prometheus] url"),
        "{stderr}"
    );
    assert!(stderr.contains("calls notify.slack"), "{stderr}");
    assert!(stderr.contains("nothing was started"), "{stderr}");
}

#[test]
fn doctor_asks_the_api_server_for_each_permission() {
    let dir = temp_dir("k8s-doctor");
    let cluster = Cluster::start();
    let config = write_config(&dir, &cluster);
    let doctor = |extra: &[&str]| {
        let mut args = vec!["doctor", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        medic_with_env(&args, &[("MEDIC_TEST_SLACK", "http://127.0.0.1:9/slack")])
    };
    let output = doctor(&["--namespace", "shop"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        text.contains("ok   kubernetes    namespace shop: all 7 permissions granted"),
        "{text}"
    );
    assert!(text.contains("ok   prometheus    not configured"), "{text}");

    cluster.api().forbid("patch", "horizontalpodautoscalers");
    cluster.api().forbid("patch", "deployments/scale");
    let output = doctor(&["--namespace", "shop", "--plans", "examples"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text.contains("FAIL kubernetes    namespace shop: not granted: patch deployments/scale"),
        "{text}"
    );
    assert!(text.contains("patch horizontalpodautoscalers"), "{text}");
    // The examples also call prom.query, which this config lacks.
    assert!(
        text.contains("FAIL plans         playbook disk_cleanup"),
        "{text}"
    );
    assert!(text.contains("problems found"), "{text}");
}

const SCALE_PLAN: &str = r#"import std.{k8s}

/// Scales the alerted service up until the alert resolves.
rule hot {
  on alert "Hot"
  run up(service: alert.service)
  cooldown 1m per alert.service
}

playbook up(service: String) {
  task scale = k8s.scale(deployment: service, namespace: "shop", by: 1, max: 5) {
    revert on resolve
  }
}
"#;

/// Waits up to 30 s for `check`.
fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn serve_reverts_a_scale_on_resolve_unless_somebody_changed_it_since() {
    let dir = temp_dir("k8s-serve-revert");
    let cluster = Cluster::start();
    cluster.api().add_deployment("shop", "web", Some(2));
    cluster.api().add_deployment("shop", "api", Some(2));
    std::fs::write(dir.join("kubeconfig"), cluster.api().kubeconfig()).unwrap();
    write_plan(&dir, SCALE_PLAN);
    let server = Server::start(
        &dir,
        &config("[kubernetes]\nkubeconfig = \"kubeconfig\"\ntimeout = \"5s\"\n"),
        None,
    );
    let fire = |service: &str, status: &str| {
        let payload = alertmanager_payload("Hot", service, service, status, "2026-11-27T12:00:00Z");
        let (code, body) = server.post("/webhook/alertmanager", &payload);
        assert_eq!(code, 200, "{body}");
    };

    // Scaled up, then put back when the alert resolves.
    fire("web", "firing");
    wait_for("web scaled up", || {
        cluster.api().replicas("shop", "web") == Some(3)
    });
    fire("web", "resolved");
    wait_for("web reverted", || {
        cluster.api().replicas("shop", "web") == Some(2)
    });

    // A human took api to 7 meanwhile: the revert leaves it and needs a human.
    fire("api", "firing");
    wait_for("api scaled up", || {
        cluster.api().replicas("shop", "api") == Some(3)
    });
    cluster.api().set_replicas("shop", "api", 7);
    fire("api", "resolved");
    wait_for("the revert of api to need a human", || {
        server.json("/api/reverts?state=needs_attention")["reverts"]
            .as_array()
            .is_some_and(|reverts| !reverts.is_empty())
    });
    let reverts = server.json("/api/reverts?state=needs_attention");
    let detail = reverts["reverts"][0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("replicas is 7 now, not the 3 Medic set"),
        "{detail}"
    );
    assert_eq!(cluster.api().replicas("shop", "api"), Some(7));
    let reverted = server.json("/api/reverts?state=reverted");
    assert_eq!(
        reverted["reverts"].as_array().unwrap().len(),
        1,
        "{reverted}"
    );
}
