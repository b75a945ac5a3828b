//! Firing throughput end to end, with the durable journal: `medic serve --dry-run`'s router
//! and engine in this process, rules whose playbook is one action, and Alertmanager v4
//! payloads of 100 alerts posted over 4 keep-alive connections, every other alert matching
//! a rule. Timed from the first POST to the last run finished (`Engine::idle`), in rounds of
//! the same size on the same store, so a per-run cost that grows with the journal shows as
//! falling rounds.
//!
//! Then one more round paced at PACE events a second, for the accept latency under a steady
//! load rather than a saturating one.
//!
//! Run with `cargo bench -p medic-runtime --bench firing` (`-- ROUNDS EVENTS RULES PACE` to
//! change the defaults: 5 rounds of 20,000 events, 10 rules, 20,000 events/s paced). The load generator shares the
//! machine's cores with the server, so the figures are a lower bound.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use common::{Served, TOKEN, read_response};
use medic_runtime::engine::{Engine, EngineConfig};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

mod common;

/// The allocator of the `medic` binary, so the figures are `medic serve`'s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 4;
const BATCH: usize = 100;

/// `rules` rules, each matching its own alert name when the severity is critical, each
/// running a one-action playbook.
fn plan_source(rules: usize) -> String {
    let mut source = String::from("import std.{http}\n\n");
    for rule in 0..rules {
        let _ = writeln!(
            source,
            "rule r{rule} {{\n  on alert \"A{rule}\"\n  when alert.severity >= critical\n  run act(fingerprint: alert.fingerprint)\n  cooldown 15m per alert.fingerprint\n}}\n"
        );
    }
    source.push_str(
        "playbook act(fingerprint: String) {\n  task call = http.post(url: \"http://127.0.0.1:9/{fingerprint}\", body: \"\")\n}\n",
    );
    source
}

/// One payload of `BATCH` alerts; alert `index` of the stream matches when it is even.
fn payload(rules: usize, round: usize, first: usize) -> String {
    let alerts: Vec<String> = (first..first + BATCH)
        .map(|index| {
            let severity = if index % 2 == 0 { "critical" } else { "warning" };
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"A{}","service":"api","instance":"10.0.0.{}:8080","severity":"{severity}"}},"annotations":{{"value":"95%"}},"startsAt":"2026-11-27T12:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"r{round}e{index}"}}"#,
                index % rules,
                index % 250
            )
        })
        .collect();
    format!(
        r#"{{"receiver":"medic","status":"firing","alerts":[{}],"groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am","version":"4","groupKey":"{{}}:{{}}","truncatedAlerts":0}}"#,
        alerts.join(",")
    )
}

struct Round {
    events_per_second: f64,
    accepted_in: Duration,
    finished_in: Duration,
    p99: Duration,
}

async fn round(
    address: std::net::SocketAddr,
    engine: &Engine,
    rules: usize,
    round: usize,
    events: usize,
    pace: Option<f64>,
) -> Round {
    // Paced: each connection sends its next request at its turn (a request every
    // CONNECTIONS * BATCH / rate seconds), or at once when the last answer came later.
    let interval = pace.map(|rate| Duration::from_secs_f64((CONNECTIONS * BATCH) as f64 / rate));
    let per_connection = events / BATCH / CONNECTIONS;
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|connection| {
            let requests: Vec<Vec<u8>> = (0..per_connection)
                .map(|request| {
                    let first = (connection * per_connection + request) * BATCH;
                    let body = payload(rules, round, first);
                    format!(
                        "POST /webhook/alertmanager HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes()
                })
                .collect();
            requests
        })
        .collect();
    let started = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(connection, requests)| {
            let offset = interval.map(|interval| interval * connection as u32 / CONNECTIONS as u32);
            tokio::spawn(async move {
                let first = tokio::time::Instant::now() + offset.unwrap_or_default();
                let stream = tokio::net::TcpStream::connect(address).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut stream = tokio::io::BufReader::new(stream);
                let mut latencies = Vec::new();
                for (number, request) in requests.into_iter().enumerate() {
                    if let Some(interval) = interval {
                        tokio::time::sleep_until(first + interval * number as u32).await;
                    }
                    let sent = Instant::now();
                    stream.get_mut().write_all(&request).await.unwrap();
                    let status = read_response(&mut stream).await;
                    assert!((200..300).contains(&status), "refused: {status}");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.append(&mut handle.await.unwrap());
    }
    let accepted_in = started.elapsed();
    engine.idle().await;
    let finished_in = started.elapsed();
    latencies.sort();
    let p99 = latencies[((latencies.len() as f64 * 0.99) as usize).min(latencies.len() - 1)];
    Round {
        events_per_second: events as f64 / finished_in.as_secs_f64(),
        accepted_in,
        finished_in,
        p99,
    }
}

fn main() {
    let arguments: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|argument| argument.parse().ok())
        .collect();
    let rounds = arguments.first().copied().unwrap_or(5);
    let events = arguments.get(1).copied().unwrap_or(20_000);
    let rules = arguments.get(2).copied().unwrap_or(10).max(1);
    let pace = arguments.get(3).copied().unwrap_or(20_000).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // `medic serve --dry-run`'s defaults, but a queue that holds a whole round.
        let served = Served::start(
            "medic-bench-firing-",
            &plan_source(rules),
            EngineConfig {
                dry_run: true,
                queue_capacity: 1_000_000,
                actions_per_minute: Some(30),
                ..EngineConfig::default()
            },
        )
        .await;
        let (address, engine) = (served.address, served.engine.clone());
        println!(
            "firing end to end, durable journal, dry run: {rules} rules, {events} events a round ({} match), {BATCH} alerts a request over {CONNECTIONS} connections",
            events / 2
        );
        for number in 0..rounds {
            let figures = round(address, &engine, rules, number, events, None).await;
            println!(
                "  round {:>2} (store had {:>7} runs): {:>7.0} events/s end to end; accepted in {:>6.2} s, all runs finished in {:>6.2} s; accept p99 {:>7.2} ms",
                number + 1,
                number * events / 2,
                figures.events_per_second,
                figures.accepted_in.as_secs_f64(),
                figures.finished_in.as_secs_f64(),
                figures.p99.as_secs_f64() * 1000.0,
            );
        }
        // Accept latency under a steady load rather than a saturating one: the stream sent
        // at `pace` events a second (the firing target, by default), as a monitoring system
        // in a storm would, with every run finishing behind it.
        let figures = round(address, &engine, rules, rounds, events, Some(pace as f64)).await;
        println!(
            "  paced at {pace} events/s (store had {:>7} runs): accept p99 {:>7.2} ms; all runs finished {:>6.2} s after the first POST ({:.2} s of sending)",
            rounds * events / 2,
            figures.p99.as_secs_f64() * 1000.0,
            figures.finished_in.as_secs_f64(),
            events as f64 / pace as f64,
        );
        served.stop().await;
    });
}
