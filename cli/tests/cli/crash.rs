//! kill -9 of `medic serve` while alerts arrive and actions are in flight, twice: every alert
//! answered with 2xx is in the journal afterwards, every one of them gets its run, and no
//! action is performed twice for one firing episode.

use super::serve::{
    NOTIFY_PLAN, Receiver, Server, alertmanager_payload, config, free_port, http, write_plan,
};
use super::temp_dir;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Posts distinct alerts from a few threads until told to stop; returns the fingerprints the
/// server acknowledged with 2xx.
fn load(
    url: String,
    round: usize,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..4)
        .map(|thread| {
            let url = url.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut index = 0;
                while !stop.load(Ordering::SeqCst) {
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
                        Ok((200, _)) => acknowledged.push(fingerprint),
                        Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                acknowledged
            })
        })
        .collect()
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
    // Each action takes 150 ms: some are in flight at every kill.
    let receiver = Receiver::start_with_delay(Duration::from_millis(150));
    write_plan(
        &dir,
        &NOTIFY_PLAN.replace("RECEIVER", &receiver.port.to_string()),
    );
    let port = free_port();
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..2 {
        let mut server = Server::start_on(&dir, &config(""), None, port);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = load(server.url.clone(), round, Arc::clone(&stop));
        std::thread::sleep(Duration::from_millis(700));
        // SIGKILL: no shutdown handler runs.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
        for thread in threads {
            acknowledged.extend(thread.join().unwrap());
        }
    }
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
}
