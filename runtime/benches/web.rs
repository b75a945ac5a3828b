//! The web page's render time with a full journal: `medic serve`'s router and engine on a
//! durable journal in a temporary folder holding RUNS finished runs (each with its alert,
//! three task events and a report; a tenth failed, labels spread over 10 teams), then the
//! pages an on-call engineer opens, each requested REQUESTS times one after the other over
//! loopback with the login cookie, timed from request to the last byte of the answer.
//!
//! Run with `cargo bench -p medic-runtime --bench web` (`-- RUNS REQUESTS` to change the
//! defaults: 10,000 runs, 200 requests a page). Prints p50, p95 and p99 per page.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use common::{Served, TOKEN};
use medic_runtime::engine::EngineConfig;
use medic_runtime::journal::{AcceptedAlert, Admission, Admitted, Definition};
use std::time::{Duration, Instant};

#[allow(dead_code, reason = "each benchmark uses part of the shared harness")]
mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SOURCE: &str = r##"
import std.{http, notify}

rule slow {
  on alert "Slow"
  run look(service: alert.service)
  cooldown 10m per alert.fingerprint
}

playbook look(service: String) {
  task health = http.get("http://api.internal/health")
  task tell = notify.slack(channel: "#oncall", text: "{service}: {health.status}")
}
"##;

/// Journals `runs` finished runs, in writes of 1,000.
async fn fill(served: &Served, runs: usize) {
    let playbook = served.engine.plan().playbooks[0].clone();
    let definition = Definition::new(serde_json::to_string(&playbook).unwrap());
    let start = medic_runtime::executor::Clock::system().now_ms() - runs as i64 * 1_000;
    for chunk in (0..runs).collect::<Vec<_>>().chunks(1_000) {
        let chunk = chunk.to_vec();
        let definition = definition.clone();
        served
            .engine
            .journal()
            .call(move |journal| {
                for index in chunk {
                    let at = start + index as i64 * 1_000;
                    let team = index % 10;
                    let fingerprint = format!("fp{index}");
                    let payload = serde_json::json!({
                        "name": "Slow", "status": "firing", "severity": "warning",
                        "service": format!("svc{team}"), "instance": "", "namespace": "",
                        "value": null, "value_error": null, "summary": "", "description": "",
                        "labels": { "alertname": "Slow", "team": format!("team{team}") },
                        "annotations": {}, "starts_at": at, "ends_at": null,
                        "fingerprint": fingerprint, "source": "alertmanager",
                    })
                    .to_string();
                    let ids = journal.accept(
                        &[AcceptedAlert {
                            source: "alertmanager".into(),
                            name: "Slow".into(),
                            status: "firing".into(),
                            fingerprint: fingerprint.clone(),
                            starts_at: at,
                            payload,
                            processed: true,
                        }],
                        at,
                    )?;
                    let admitted = journal.admit(&Admission {
                        rule: "slow".into(),
                        playbook: "look".into(),
                        alert_id: ids[0],
                        fingerprint,
                        starts_at: at,
                        cooldown: None,
                        concurrency: None,
                        performs_actions: true,
                        arguments: format!(r#"{{"service":"svc{team}"}}"#),
                        definition: definition.clone(),
                        at,
                    })?;
                    let Admitted::Started(run) = admitted else {
                        panic!("not admitted: {admitted:?}");
                    };
                    let outcome = if index % 10 == 0 {
                        "failed"
                    } else {
                        "succeeded"
                    };
                    journal.task_event(run, "health", "started", "1", at + 10)?;
                    journal.task_event(run, "health", "succeeded", "{}", at + 40)?;
                    journal.task_event(run, "tell", outcome, "{}", at + 90)?;
                    let report = format!(
                        r#"{{"playbook":"look","outcome":"{outcome}","stopped":null,"tasks":[]}}"#
                    );
                    journal.finish_run(run, outcome, &report, at + 100)?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| !arg.starts_with('-'));
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let requests: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let served = Served::start("medic-web-bench", SOURCE, EngineConfig::default()).await;
        let filling = Instant::now();
        fill(&served, runs).await;
        println!(
            "journal: {runs} finished runs written in {:.1} s",
            filling.elapsed().as_secs_f64()
        );
        let client = reqwest::Client::new();
        let cookie = format!("medic_token={}", hex::encode(TOKEN));
        let base = format!("http://{}", served.address);
        let middle = runs / 2;
        let pages = [
            "/ui/runs".to_string(),
            "/ui/runs?page=10".to_string(),
            "/ui/runs?state=failed&playbook=look".to_string(),
            "/ui/runs?label=team%3Dteam3".to_string(),
            "/ui/runs?alert=Slow&from=1h".to_string(),
            format!("/ui/runs/{middle}"),
            "/ui/alerts".to_string(),
            "/ui/stats?since=30d".to_string(),
        ];
        println!(
            "{:<40} {:>9} {:>9} {:>9}",
            "page", "p50 ms", "p95 ms", "p99 ms"
        );
        for page in &pages {
            let mut times = Vec::with_capacity(requests);
            for _ in 0..requests {
                let started = Instant::now();
                let response = client
                    .get(format!("{base}{page}"))
                    .header("Cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{page}");
                let body = response.bytes().await.unwrap();
                times.push(started.elapsed());
                assert!(body.len() > 500, "{page}: {} bytes", body.len());
            }
            times.sort_unstable();
            let ms = |duration: Duration| duration.as_secs_f64() * 1_000.0;
            println!(
                "{page:<40} {:>9.2} {:>9.2} {:>9.2}",
                ms(quantile(&times, 0.5)),
                ms(quantile(&times, 0.95)),
                ms(quantile(&times, 0.99))
            );
        }
        served.stop().await;
    });
}
