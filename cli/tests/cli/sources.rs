//! The alert sources end to end, as a user runs them: `medic serve` with the order_cpu
//! example, the sandbox's Kubernetes API server and each source's example alert. The alert
//! scales order-service up and its resolved form puts it back (`revert on resolve`).

use super::serve::{Receiver, Server, config, free_port};
use super::temp_dir;
use medic_sandbox::kubernetes::ApiServer;
use medic_sandbox::sns::{FakeSns, SignatureVersion};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn example(name: &str) -> serde_json::Value {
    let path = repo_root().join("examples/alerts").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Waits up to 30 s for `check`.
fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sandbox's Kubernetes API server and SNS, on a runtime of their own (the tests are
/// synchronous).
struct World {
    cluster: Option<ApiServer>,
    sns: Option<FakeSns>,
    runtime: tokio::runtime::Runtime,
}

impl World {
    fn start() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cluster = runtime.block_on(ApiServer::start()).unwrap();
        let sns = runtime.block_on(FakeSns::start()).unwrap();
        cluster.add_deployment("shop", "order-service", Some(2));
        World {
            cluster: Some(cluster),
            sns: Some(sns),
            runtime,
        }
    }

    fn cluster(&self) -> &ApiServer {
        self.cluster.as_ref().unwrap()
    }

    fn sns(&self) -> &FakeSns {
        self.sns.as_ref().unwrap()
    }

    fn replicas(&self) -> Option<i32> {
        self.cluster().replicas("shop", "order-service")
    }

    /// `medic serve` of the order_cpu example in a folder of its own, with `extra` config.
    fn serve(&self, name: &str, receiver: &Receiver, extra: &str) -> (Server, super::TempDir) {
        let dir = temp_dir(name);
        std::fs::create_dir_all(dir.join("plans")).unwrap();
        std::fs::copy(
            repo_root().join("examples/order_cpu.ops"),
            dir.join("plans/order_cpu.ops"),
        )
        .unwrap();
        std::fs::write(dir.join("kubeconfig"), self.cluster().kubeconfig()).unwrap();
        std::fs::write(
            dir.join("slack"),
            format!("http://127.0.0.1:{}/slack", receiver.port),
        )
        .unwrap();
        let server = Server::start_on(
            &dir,
            &config(&format!(
                "[notify]\nslack_webhook_file = \"slack\"\n[kubernetes]\nkubeconfig = \"kubeconfig\"\ntimeout = \"5s\"\n{extra}"
            )),
            None,
            free_port(),
        );
        (server, dir)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            self.runtime.block_on(cluster.stop());
        }
        self.sns.take();
    }
}

/// Posts `body` to `path` and expects 200.
fn deliver(server: &Server, path: &str, body: &serde_json::Value) {
    let (status, answer) = server.post(path, &body.to_string());
    assert_eq!(status, 200, "{path}: {answer}");
}

/// Fires, waits for the scale-up, resolves, waits for the scale to be put back.
fn scaled_then_put_back(
    world: &World,
    server: &Server,
    path: &str,
    fired: &serde_json::Value,
    resolved: &serde_json::Value,
) {
    deliver(server, path, fired);
    wait_for(&format!("{path}: order-service scaled up"), || {
        world.replicas() == Some(3)
    });
    deliver(server, path, resolved);
    wait_for(&format!("{path}: order-service put back"), || {
        world.replicas() == Some(2)
    });
    let runs = server.json("/api/runs");
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{path}: {runs}");
    assert_eq!(runs["runs"][0]["rule"], "order_cpu", "{path}: {runs}");
}

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:medic-alarms";

#[test]
fn each_sources_example_alert_scales_order_service_and_its_resolve_puts_it_back() {
    let world = World::start();
    let receiver = Receiver::start();

    // CloudWatch through SNS: the example's alarm, signed now by the sandbox's SNS.
    let (server, _dir) = world.serve(
        "sources-cloudwatch",
        &receiver,
        &format!("[sources.cloudwatch]\ntopics = [\"{TOPIC}\"]\ncert_hosts = [\"127.0.0.1\"]\n"),
    );
    let alarm = example("cloudwatch_order_cpu.json")["Message"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = alarm
        .replace(r#""NewStateValue": "ALARM""#, r#""NewStateValue": "OK""#)
        .replace(
            "2026-11-27T12:00:00.371+0000",
            "2026-11-27T12:30:00.000+0000",
        );
    assert_ne!(ok, alarm);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let sns = world.sns();
    scaled_then_put_back(
        &world,
        &server,
        "/webhook/cloudwatch",
        &sns.notification(TOPIC, "m-alarm", &alarm, &now, SignatureVersion::V1),
        &sns.notification(TOPIC, "m-ok", &ok, &now, SignatureVersion::V2),
    );
    // A forged alarm is refused and journaled as refused.
    let mut forged = sns.notification(TOPIC, "m-forged", &alarm, &now, SignatureVersion::V2);
    forged["Message"] = serde_json::json!(alarm.replace("94.2", "99.9"));
    let (status, body) = server.post("/webhook/cloudwatch", &forged.to_string());
    assert_eq!(status, 403, "{body}");
    let audit = server.json("/api/audit");
    assert_eq!(audit["entries"][0]["action"], "sns.notification", "{audit}");
    assert_eq!(audit["entries"][0]["outcome"], "refused", "{audit}");
    drop(server);

    // Azure Monitor's common alert schema, fired then resolved.
    let (server, _dir) = world.serve("sources-azure", &receiver, "");
    let fired = example("azure_order_cpu.json");
    let mut resolved = fired.clone();
    resolved["data"]["essentials"]["monitorCondition"] = serde_json::json!("Resolved");
    resolved["data"]["essentials"]["resolvedDateTime"] = serde_json::json!("2026-11-27T12:30:00Z");
    scaled_then_put_back(&world, &server, "/webhook/azure", &fired, &resolved);
    drop(server);

    // Kibana's Webhook connector with Medic's template, active then recovered.
    let (server, _dir) = world.serve("sources-kibana", &receiver, "");
    let fired = example("kibana_order_cpu.json");
    let mut recovered = fired.clone();
    recovered["alerts"][0]["action_group"] = serde_json::json!("recovered");
    recovered["date"] = serde_json::json!("2026-11-27T12:30:00.000Z");
    scaled_then_put_back(&world, &server, "/webhook/elastic", &fired, &recovered);
}
