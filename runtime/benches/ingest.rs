//! Webhook ingest under a bounded load on loopback, with the durable journal (SQLite WAL,
//! full sync, group commit): `medic serve`'s router and engine in this process, clients
//! posting Alertmanager v4 payloads over keep-alive HTTP/1.1 connections (a minimal client
//! writing prepared requests, so that the load generator takes as little of the two cores
//! as it can). Prints
//! throughput (alerts/s) and the accept latency percentiles (time to the 2xx, which comes
//! only after the alerts are committed). Targets: over 10,000 alerts/s, p99 under 10 ms.
//!
//! Run with `cargo bench -p medic-runtime --bench ingest`. The load generator shares the
//! machine's cores with the server, so the figures are a lower bound.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use common::{Served, TOKEN, read_response};
use medic_runtime::engine::EngineConfig;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

mod common;

const PLAN: &str = r##"import std.{http}

rule hot {
  on alert "Hot"
  when alert.service == "never-matches"
  run act(fingerprint: alert.fingerprint)
  concurrency 10 per alert.fingerprint
}

playbook act(fingerprint: String) {
  task call = http.post(url: "http://127.0.0.1:9/{fingerprint}")
}
"##;

fn payload(batch: usize, connection: usize, request: usize) -> String {
    let alerts: Vec<String> = (0..batch)
        .map(|index| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"Hot","service":"api","instance":"10.0.{connection}.{index}:8080","severity":"critical"}},"annotations":{{"value":"95%","summary":"CPU high"}},"startsAt":"2026-11-27T12:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"c{connection}r{request}i{index}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"receiver":"medic","status":"firing","alerts":[{}],"groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am","version":"4","groupKey":"{{}}:{{}}","truncatedAlerts":0}}"#,
        alerts.join(",")
    )
}

struct Figures {
    alerts_per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    refused: usize,
}

async fn scenario(connections: usize, batch: usize, total_alerts: usize) -> Figures {
    // The journal's folder is deleted when `served` is dropped (also when it panics).
    let served = Served::start(
        &format!("medic-bench-ingest-{connections}-{batch}-"),
        PLAN,
        EngineConfig {
            queue_capacity: 1_000_000,
            ..EngineConfig::default()
        },
    )
    .await;
    let (address, engine) = (served.address, served.engine.clone());
    let requests_per_connection = total_alerts / batch / connections;
    let clients: Vec<_> = (0..connections)
        .map(|connection| {
            tokio::spawn(async move {
                let requests: Vec<Vec<u8>> = (0..requests_per_connection)
                    .map(|request| {
                        let body = payload(batch, connection, request);
                        format!(
                            "POST /webhook/alertmanager HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    })
                    .collect();
                let stream = tokio::net::TcpStream::connect(address).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut stream = tokio::io::BufReader::new(stream);
                let mut latencies = Vec::with_capacity(requests_per_connection);
                let mut refused = 0;
                let first = Instant::now();
                for request in requests {
                    let sent = Instant::now();
                    stream.get_mut().write_all(&request).await.unwrap();
                    let status = read_response(&mut stream).await;
                    latencies.push(sent.elapsed());
                    if !(200..300).contains(&status) {
                        refused += 1;
                    }
                }
                (latencies, refused, first, Instant::now())
            })
        })
        .collect();
    // Timed from the first request sent to the last answer received (payloads are built
    // and connections opened before).
    let mut latencies = Vec::new();
    let mut refused = 0;
    let mut started: Option<Instant> = None;
    let mut ended: Option<Instant> = None;
    for client in clients {
        let (mut some, some_refused, first, last) = client.await.unwrap();
        latencies.append(&mut some);
        refused += some_refused;
        started = Some(started.map_or(first, |at| at.min(first)));
        ended = Some(ended.map_or(last, |at| at.max(last)));
    }
    let elapsed = ended.unwrap() - started.unwrap();
    served.stop().await;
    latencies.sort();
    let percentile = |fraction: f64| {
        latencies[((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1)]
    };
    let accepted = (requests_per_connection * connections - refused) * batch;
    let stored = engine
        .journal()
        .call(|journal| journal.alert_count())
        .await
        .unwrap();
    assert_eq!(
        stored as usize, accepted,
        "every acknowledged alert is in the journal"
    );
    Figures {
        alerts_per_second: accepted as f64 / elapsed.as_secs_f64(),
        p50: percentile(0.50),
        p99: percentile(0.99),
        max: *latencies.last().unwrap(),
        refused,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("webhook ingest, durable journal, loopback (alerts per request × connections)");
    for (connections, batch, total) in [
        (8, 1, 20_000),
        (16, 1, 20_000),
        (64, 1, 40_000),
        (8, 10, 100_000),
        (16, 10, 100_000),
        (64, 10, 200_000),
    ] {
        let figures = runtime.block_on(scenario(connections, batch, total));
        println!(
            "  {batch:>3} alert(s)/request, {connections:>3} connections, {total:>7} alerts: {:>8.0} alerts/s  accept latency p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  refused {}",
            figures.alerts_per_second,
            figures.p50.as_secs_f64() * 1_000.0,
            figures.p99.as_secs_f64() * 1_000.0,
            figures.max.as_secs_f64() * 1_000.0,
            figures.refused,
        );
    }
}
