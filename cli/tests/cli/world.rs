//! The troubleshooting examples as a user runs them: `medic run` of `payment_latency` and
//! `inventory_db` against the sandbox's simulated shop — a real Prometheus backfilled with
//! its series, the sandbox Jaeger with its traces and the sandbox Elasticsearch with its
//! logs — names the root cause with its evidence and path and the new log patterns.

use super::smtp::Aiosmtpd;
use super::{medic, stdout, temp_dir};
use medic_sandbox::elasticsearch::ElasticsearchServer;
use medic_sandbox::jaeger::{JaegerServer, TraceGenerator};
use medic_sandbox::prometheus::RealPrometheus;
use medic_sandbox::world::{CALLS, Incident, World};
use std::time::Duration;

/// The shop's servers in `incident`, and a medic.toml pointing at them.
struct Shop {
    _prometheus: RealPrometheus,
    smtp: Aiosmtpd,
    jaeger: Option<JaegerServer>,
    elasticsearch: Option<ElasticsearchServer>,
    runtime: tokio::runtime::Runtime,
    now_s: i64,
}

impl Drop for Shop {
    fn drop(&mut self) {
        if let Some(jaeger) = self.jaeger.take() {
            self.runtime.block_on(jaeger.stop());
        }
        drop(self.elasticsearch.take());
    }
}

fn shop(incident: Incident, dir: &std::path::Path) -> Shop {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let world = World::new(incident, now_s);
    let prometheus =
        RealPrometheus::start(&world.openmetrics()).unwrap_or_else(|error| panic!("{error}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (jaeger, elasticsearch) = runtime.block_on(async {
        (
            JaegerServer::start().await.unwrap(),
            ElasticsearchServer::start().await.unwrap(),
        )
    });
    let every = Duration::from_secs(4);
    let fault_start_us = (now_s - world.fault_minutes * 60) * 1_000_000;
    let history_start_us = (now_s - 2 * 3600) * 1_000_000;
    let before = ((fault_start_us - history_start_us) / 4_000_000) as usize;
    let mut healthy = TraceGenerator::new(CALLS, world.seed);
    jaeger.add_traces(healthy.traces("payment-gateway", before, history_start_us, every));
    jaeger.add_traces(world.traces().traces(
        "payment-gateway",
        (world.fault_minutes * 15) as usize,
        fault_start_us,
        every,
    ));
    elasticsearch.index("logs-shop", world.logs());
    let smtp = Aiosmtpd::start();
    std::fs::write(
        dir.join("medic.toml"),
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"medic@example.com\"\ntls = \"none\"\n\n[prometheus]\nurl = \"{}\"\n\n[jaeger]\nurl = \"{}\"\n\n[elasticsearch]\nurl = \"{}\"\n\n[topology]\n\"payment-gateway\" = [\"order-service\", \"payments-db\"]\n\"order-service\" = [\"inventory-service\", \"order-cache\"]\n\"inventory-service\" = [\"inventory-db\"]\n",
            smtp.port,
            prometheus.url(),
            jaeger.url(),
            elasticsearch.url()
        ),
    )
    .unwrap();
    Shop {
        _prometheus: prometheus,
        smtp,
        jaeger: Some(jaeger),
        elasticsearch: Some(elasticsearch),
        runtime,
        now_s,
    }
}

/// The example alert, sent five minutes after the fault began (instead of its fixed date).
fn alert(dir: &std::path::Path, name: &str, shop: &Shop) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(super::repo_root().join(format!("examples/alerts/{name}.json")))
            .unwrap();
    let mut alert: serde_json::Value = serde_json::from_str(&text).unwrap();
    let at = chrono_free(shop.now_s - 5 * 60);
    if name == "payment_latency" {
        alert["alerts"][0]["startsAt"] = at.0.into();
    } else {
        alert["event_date"] = at.1.into();
        alert["event_time"] = at.2.into();
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, alert.to_string()).unwrap();
    path
}

/// RFC 3339, and Zabbix's date and time, of a Unix time (UTC).
fn chrono_free(at: i64) -> (String, String, String) {
    let output = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{at}"),
            "+%Y-%m-%dT%H:%M:%SZ %Y.%m.%d %H:%M:%S",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let parts: Vec<&str> = text.split_whitespace().collect();
    (
        parts[0].to_string(),
        parts[1].to_string(),
        parts[2].to_string(),
    )
}

fn run(dir: &std::path::Path, alert: &std::path::Path) -> String {
    let output = medic(&[
        "run",
        "--config",
        dir.join("medic.toml").to_str().unwrap(),
        "--alert",
        alert.to_str().unwrap(),
        "--plans",
        "examples",
    ]);
    let text = stdout(&output);
    assert!(output.status.code().is_some(), "{output:?}");
    text
}

#[test]
fn payment_latency_names_the_slow_callee_and_the_new_log_pattern() {
    let dir = temp_dir("world-payment");
    let shop = shop(Incident::SlowOrderService, &dir);
    let text = run(&dir, &alert(&dir, "payment_latency", &shop));
    assert!(
        text.contains("playbook payment_troubleshoot succeeded"),
        "{text}"
    );
    assert!(
        text.contains("summary: order-service is the most likely root cause"),
        "{text}"
    );
    assert!(
        text.contains("found by walking payment-gateway → order-service"),
        "{text}"
    );
    assert!(text.contains("span p99 self time"), "{text}");
    assert!(
        text.contains("new \"call to order-service timed out after <*>"),
        "{text}"
    );
    assert!(
        text.contains("java.util.concurrent.TimeoutException"),
        "{text}"
    );
    // The on-call engineer's mail says it too.
    let mail = shop.smtp.received();
    assert!(
        mail.contains("order-service is the most likely root cause"),
        "{mail}"
    );
}

#[test]
fn inventory_db_reports_the_database_and_names_it() {
    let dir = temp_dir("world-inventory");
    let shop = shop(Incident::InventoryDbSaturated, &dir);
    let text = run(&dir, &alert(&dir, "inventory_db", &shop));
    assert!(text.contains("playbook database_check succeeded"), "{text}");
    assert!(text.contains("saturation: 99%"), "{text}");
    assert!(text.contains("ok: false"), "{text}");
    assert!(
        text.contains("summary: inventory-db is the most likely root cause"),
        "{text}"
    );
    assert!(text.contains("too many connections"), "{text}");
}
