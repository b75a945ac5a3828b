//! kill -9 of `medic serve` while alerts arrive and actions are in flight, twice: every alert
//! answered with 2xx is in the journal afterwards, every one of them gets its run, no action
//! is performed twice for one firing episode, and each run whose action was in flight at a
//! kill ends `interrupted`. The receiver holds the actions unanswered before each kill, so
//! that some are certainly in flight.

use super::serve::{
    NOTIFY_PLAN, Receiver, Server, alertmanager_payload, config, free_port, http, write_plan,
};
use super::temp_dir;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct alerts posted from a few threads until told to stop: the fingerprints the
/// server acknowledged with 2xx, and how many posts it did not answer with one.
#[derive(Default)]
struct Load {
    acknowledged: Mutex<Vec<String>>,
    refused: AtomicUsize,
    stop: AtomicBool,
}

fn load(url: String, round: usize, load: Arc<Load>) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|thread| {
            let url = url.clone();
            let load = Arc::clone(&load);
            std::thread::spawn(move || {
                let mut index = 0;
                while !load.stop.load(Ordering::SeqCst) {
                    let fingerprint = format!("r{round}t{thread}n{index}");
                    index += 1;
                    let payload = alertmanager_payload(
                        "Hot",
                        "api",
                        &fingerprint,
                        "firing",
                        "2026-11-27T12:00:00Z",
                    );
                    match http(
                        "POST",
                        &format!("{url}/webhook/alertmanager"),
                        &[],
                        payload.as_bytes(),
                    ) {
                        Ok((200, _)) => load.acknowledged.lock().unwrap().push(fingerprint),
                        Ok(_) | Err(_) => {
                            load.refused.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        })
        .collect()
}

/// A storm beside it: payloads of 100 alerts that no rule matches, posted as fast as they
/// are answered (these are journaled already processed, on the webhook's own commit). The
/// fingerprints acknowledged go into `load.acknowledged` too.
fn storm(url: String, round: usize, load: Arc<Load>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut index = 0;
        while !load.stop.load(Ordering::SeqCst) {
            let fingerprints: Vec<String> = (0..100)
                .map(|offset| format!("r{round}s{}", index + offset))
                .collect();
            index += 100;
            let alerts: Vec<String> = fingerprints
                .iter()
                .map(|fingerprint| {
                    format!(
                        r#"{{"status":"firing","labels":{{"alertname":"Unwatched","service":"api","severity":"critical"}},"annotations":{{}},"startsAt":"2026-11-27T12:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"{fingerprint}"}}"#
                    )
                })
                .collect();
            let payload = format!(
                r#"{{"receiver":"medic","status":"firing","alerts":[{}],"groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am","version":"4","groupKey":"{{}}:{{}}","truncatedAlerts":0}}"#,
                alerts.join(",")
            );
            match http(
                "POST",
                &format!("{url}/webhook/alertmanager"),
                &[],
                payload.as_bytes(),
            ) {
                Ok((200, _)) => load.acknowledged.lock().unwrap().extend(fingerprints),
                Ok(_) | Err(_) => {
                    load.refused.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    })
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn journal_fingerprints(dir: &std::path::Path, table: &str) -> Vec<String> {
    let connection = rusqlite::Connection::open(dir.join("medic.db")).unwrap();
    let mut statement = connection
        .prepare(&format!("SELECT fingerprint FROM {table}"))
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_alert_and_repeats_no_action() {
    let dir = temp_dir("crash");
    let receiver = Receiver::start();
    write_plan(
        &dir,
        &NOTIFY_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    let port = free_port();
    let mut acknowledged: Vec<String> = Vec::new();
    // The actions the receiver held unanswered when the server died: in flight at the kill.
    let mut in_flight: Vec<String> = Vec::new();
    for round in 0..2 {
        receiver.release();
        let mut server = Server::start_on(&dir, &config(""), None, port);
        let state = Arc::new(Load::default());
        let mut threads = load(server.url.clone(), round, Arc::clone(&state));
        threads.push(storm(server.url.clone(), round, Arc::clone(&state)));
        // Let the load run and some actions complete, then hold the actions unanswered so
        // that the kill lands while some are in flight.
        let answered = receiver.answered();
        wait_until("alerts acknowledged and actions answered", || {
            state.acknowledged.lock().unwrap().len() >= 1_020 && receiver.answered() >= answered + 5
        });
        receiver.hold();
        wait_until("an action in flight", || !receiver.held().is_empty());
        // SIGKILL: no shutdown handler runs.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        in_flight.extend(receiver.held());
        // Alerts keep arriving while the server is down: wait until some are refused.
        let refused = state.refused.load(Ordering::SeqCst);
        wait_until("posts refused while the server is down", || {
            state.refused.load(Ordering::SeqCst) >= refused + 4
        });
        state.stop.store(true, Ordering::SeqCst);
        for thread in threads {
            thread.join().unwrap();
        }
        acknowledged.extend(state.acknowledged.lock().unwrap().drain(..));
    }
    receiver.release();
    assert!(
        acknowledged.len() > 20,
        "the load was too small to mean anything: {}",
        acknowledged.len()
    );
    // Restart once more and let it recover.
    let server = Server::start_on(&dir, &config(""), None, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = server.json("/api/runs?limit=1000")["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let unfinished = runs
            .iter()
            .filter(|run| !run["finished_at"].is_i64())
            .count();
        let started: BTreeSet<String> = journal_fingerprints(&dir, "runs").into_iter().collect();
        if unfinished == 0
            && acknowledged
                .iter()
                .filter(|fingerprint| !fingerprint.contains('s'))
                .all(|fingerprint| started.contains(fingerprint))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recovery did not finish: {unfinished} unfinished runs\n{}",
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every acknowledged alert is in the journal.
    let stored: BTreeSet<String> = journal_fingerprints(&dir, "alerts").into_iter().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|fingerprint| !stored.contains(*fingerprint))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // The storm's alerts, which no rule matches, started nothing and wait for nothing.
    let connection = rusqlite::Connection::open(dir.join("medic.db")).unwrap();
    let stormed: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM alerts WHERE name = 'Unwatched' AND processed = 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let acknowledged_storm = acknowledged
        .iter()
        .filter(|fingerprint| fingerprint.contains('s'))
        .count();
    assert!(
        acknowledged_storm >= 1_000,
        "the storm was too small to mean anything: {acknowledged_storm}"
    );
    assert!(stormed as usize >= acknowledged_storm);
    drop(connection);
    // One run per episode, and no action performed twice.
    let runs = journal_fingerprints(&dir, "runs");
    let mut per_episode: BTreeMap<&String, usize> = BTreeMap::new();
    for fingerprint in &runs {
        *per_episode.entry(fingerprint).or_default() += 1;
    }
    assert!(
        per_episode.values().all(|count| *count == 1),
        "a firing episode ran twice"
    );
    let calls: Vec<String> = receiver.paths.lock().unwrap().clone();
    let mut per_action: BTreeMap<&String, usize> = BTreeMap::new();
    for path in &calls {
        *per_action.entry(path).or_default() += 1;
    }
    let repeated: Vec<_> = per_action.iter().filter(|(_, count)| **count > 1).collect();
    assert!(repeated.is_empty(), "actions performed twice: {repeated:?}");
    // Runs cut by a kill with their action in flight are handed to a human, not rerun.
    let connection = rusqlite::Connection::open(dir.join("medic.db")).unwrap();
    let states: Vec<(String, i64)> = connection
        .prepare("SELECT state, COUNT(*) FROM runs GROUP BY state")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let total: i64 = states.iter().map(|(_, count)| count).sum();
    assert_eq!(total as usize, runs.len());
    for (state, _) in &states {
        assert!(state == "succeeded" || state == "interrupted", "{states:?}");
    }
    let succeeded: BTreeSet<String> = connection
        .prepare("SELECT fingerprint FROM runs WHERE state = 'succeeded'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for fingerprint in &succeeded {
        assert_eq!(
            per_action.get(&format!("/act/{fingerprint}")).copied(),
            Some(1),
            "a succeeded run performed its action exactly once: {fingerprint}"
        );
    }
    // Every action in flight at a kill ended its run `interrupted` (and was not called again,
    // as checked above); there was at least one.
    assert!(!in_flight.is_empty(), "no kill landed mid-action");
    let interrupted: BTreeSet<String> = connection
        .prepare("SELECT fingerprint FROM runs WHERE state = 'interrupted'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for path in &in_flight {
        let fingerprint = path.strip_prefix("/act/").unwrap();
        assert!(
            interrupted.contains(fingerprint),
            "the run of {path}, in flight at a kill, is not interrupted: {states:?}"
        );
    }
}
