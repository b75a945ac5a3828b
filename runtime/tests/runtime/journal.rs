//! The journal on disk: durability across reopen (as after a crash), one run per rule per
//! firing episode, unfinished runs found again, and clear errors.

use medic_runtime::journal::{
    AcceptedAlert, Admission, Admitted, Definition, Journal, JournalError, JournalHandle,
};

fn alert(fingerprint: &str, starts_at: i64) -> AcceptedAlert {
    AcceptedAlert {
        source: "alertmanager".into(),
        name: "Service_Latency_Exceeded".into(),
        status: "firing".into(),
        fingerprint: fingerprint.into(),
        starts_at,
        payload: "{}".into(),
        processed: false,
    }
}

/// A fresh folder in the temp directory, deleted when dropped (also when the test panics): the
/// test keeps it for its whole body, through every reopening of the journal in it.
fn temp_directory(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("medic-journal-{name}-"))
        .tempdir()
        .unwrap()
}

fn admission(rule: &str, alert_id: i64, fingerprint: &str, starts_at: i64, at: i64) -> Admission {
    Admission {
        rule: rule.into(),
        playbook: "p".into(),
        alert_id,
        fingerprint: fingerprint.into(),
        starts_at,
        cooldown: None,
        concurrency: None,
        performs_actions: true,
        arguments: "{}".into(),
        definition: Definition::new("{}".into()),
        at,
    }
}

#[test]
fn accepted_alerts_and_runs_survive_reopening() {
    let directory = temp_directory("reopen");
    let path = directory.path().join("journal.db");
    let run_id = {
        let mut journal = Journal::open(&path).unwrap();
        let ids = journal
            .accept(&[alert("a", 1), alert("b", 2)], 100)
            .unwrap();
        assert_eq!(ids.len(), 2);
        journal.processed(ids[0]).unwrap();
        let Admitted::Started(run_id) = journal
            .admit(&admission("payment_latency", ids[0], "a", 1, 101))
            .unwrap()
        else {
            panic!("first start must start");
        };
        journal
            .task_event(run_id, "status", "succeeded", "200", 102)
            .unwrap();
        run_id
        // Dropped without finishing the run: as if the server were killed here.
    };
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.alert_count().unwrap(), 2);
    let unprocessed = journal.unprocessed_alerts().unwrap();
    assert_eq!(unprocessed.len(), 1, "the second alert was never processed");
    let unfinished = journal.unfinished_runs().unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, run_id);
    assert_eq!(unfinished[0].state, "running");
    let events = journal.task_events(run_id).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].task.as_str(),
            events[0].state.as_str(),
            events[0].detail.as_str()
        ),
        ("status", "succeeded", "200")
    );
}

#[test]
fn one_firing_episode_starts_one_run_per_rule() {
    let directory = temp_directory("episodes");
    let path = directory.path().join("journal.db");
    let mut journal = Journal::open(&path).unwrap();
    let first = journal.accept(&[alert("fp", 1_000)], 1).unwrap()[0];
    let started = journal
        .admit(&admission("r", first, "fp", 1_000, 2))
        .unwrap();
    let Admitted::Started(run) = started else {
        panic!("{started:?}")
    };
    // The same episode delivered again (Alertmanager repeats), even after a restart.
    drop(journal);
    let mut journal = Journal::open(&path).unwrap();
    let again = journal.accept(&[alert("fp", 1_000)], 3).unwrap()[0];
    assert_eq!(
        journal
            .admit(&admission("r", again, "fp", 1_000, 4))
            .unwrap(),
        Admitted::Duplicate { existing_run: run }
    );
    journal
        .suppress(again, "r", "duplicate", "episode already ran", 4)
        .unwrap();
    assert_eq!(journal.suppressions(10).unwrap()[0].reason, "duplicate");
    // Another rule, or a new episode of the same alert, starts its own run.
    assert!(matches!(
        journal
            .admit(&admission("other", again, "fp", 1_000, 5))
            .unwrap(),
        Admitted::Started(_)
    ));
    assert!(matches!(
        journal
            .admit(&admission("r", again, "fp", 2_000, 6))
            .unwrap(),
        Admitted::Started(_)
    ));
    journal.finish_run(run, "succeeded", "{}", 7).unwrap();
    let runs = journal.runs(10).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs.last().unwrap().finished_at, Some(7));
}

#[test]
fn cooldowns_and_concurrency_are_decided_from_the_durable_runs() {
    let mut journal = Journal::in_memory().unwrap();
    let id = journal.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let cooled = |fingerprint: &str, starts_at: i64, at: i64| Admission {
        cooldown: Some(("api".into(), 60_000)),
        ..admission("r", id, fingerprint, starts_at, at)
    };
    let Admitted::Started(first) = journal.admit(&cooled("a", 1, 1_000)).unwrap() else {
        panic!()
    };
    assert_eq!(
        journal.admit(&cooled("b", 2, 30_000)).unwrap(),
        Admitted::Cooldown {
            last_run: first,
            until: 61_000
        },
        "another alert with the same key cools down"
    );
    assert!(matches!(
        journal.admit(&cooled("c", 3, 61_000)).unwrap(),
        Admitted::Started(_)
    ));
    let limited = |fingerprint: &str| Admission {
        concurrency: Some(("db".into(), 1)),
        ..admission("q", id, fingerprint, 1, 1)
    };
    let Admitted::Started(holder) = journal.admit(&limited("x")).unwrap() else {
        panic!()
    };
    assert_eq!(
        journal.admit(&limited("y")).unwrap(),
        Admitted::Concurrency { running: 1 }
    );
    journal.finish_run(holder, "succeeded", "{}", 2).unwrap();
    assert!(matches!(
        journal.admit(&limited("y")).unwrap(),
        Admitted::Started(_)
    ));
}

#[test]
fn a_revert_is_claimed_once() {
    let mut journal = Journal::in_memory().unwrap();
    let id = journal.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let Admitted::Started(run) = journal.admit(&admission("r", id, "fp", 1, 1)).unwrap() else {
        panic!()
    };
    let revert = journal
        .schedule_revert(run, "scale", "k8s.scale", "{}", "{}", "fp", Some(100), true)
        .unwrap();
    assert_eq!(journal.reverts_on_resolve("fp", 1).unwrap(), [revert]);
    assert!(
        journal.reverts_on_resolve("fp", 2).unwrap().is_empty(),
        "another episode of the same fingerprint has no reverts"
    );
    assert_eq!(journal.reverts("pending").unwrap().len(), 1);
    assert!(journal.claim_revert(revert).unwrap().is_some());
    assert!(
        journal.claim_revert(revert).unwrap().is_none(),
        "the timer and the resolve cannot both revert"
    );
    assert!(journal.reverts_on_resolve("fp", 1).unwrap().is_empty());
    journal
        .revert_done(revert, "reverted", "3 replicas", 200)
        .unwrap();
    assert_eq!(journal.reverts("reverted").unwrap()[0].detail, "3 replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_commits_concurrent_writes_in_groups() {
    let directory = temp_directory("group");
    let path = directory.path().join("journal.db");
    let handle = JournalHandle::spawn(Journal::open(&path).unwrap()).unwrap();
    let writers: Vec<_> = (0..200)
        .map(|index| {
            let handle = handle.clone();
            tokio::spawn(async move {
                handle
                    .call(move |journal| journal.accept(&[alert(&format!("f{index}"), index)], 1))
                    .await
            })
        })
        .collect();
    for writer in writers {
        assert_eq!(writer.await.unwrap().unwrap().len(), 1);
    }
    drop(handle);
    // Every acknowledged write is on disk for a fresh connection.
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.alert_count().unwrap(), 200);
}

#[test]
fn an_unusable_path_is_a_clear_error() {
    let directory = temp_directory("bad");
    let path = directory
        .path()
        .join("missing-directory")
        .join("journal.db");
    let Err(error) = Journal::open(&path) else {
        panic!("opening must fail")
    };
    assert!(matches!(error, JournalError::File { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with("cannot open the journal at"),
        "{error}"
    );
}

/// The mode bits of `path` followed by `suffix`.
#[cfg(unix)]
fn mode_of(path: &std::path::Path, suffix: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    std::fs::metadata(&name)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[test]
fn the_journal_and_its_wal_and_shm_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let directory = temp_directory("modes");
    let path = directory.path().join("journal.db");
    let mut journal = Journal::open(&path).unwrap();
    journal.accept(&[alert("private", 1)], 1_000).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode_of(&path, suffix), 0o600, "journal.db{suffix}");
    }
    drop(journal);
    // A journal an older Medic left readable by everyone is made private when opened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.alert_count().unwrap(), 1);
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(
            mode_of(&path, suffix),
            0o600,
            "journal.db{suffix}, reopened"
        );
    }
}

#[test]
fn a_journal_from_a_newer_medic_is_refused() {
    let directory = temp_directory("newer");
    let path = directory.path().join("journal.db");
    drop(Journal::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    drop(connection);
    let Err(error) = Journal::open(&path) else {
        panic!("a newer schema must be refused")
    };
    assert!(error.to_string().contains("schema 99"), "{error}");
}

#[test]
fn pruning_forgets_what_ended_long_ago_and_keeps_what_is_open() {
    let mut journal = Journal::in_memory().unwrap();
    let ids = journal
        .accept(
            &[alert("old", 1), alert("open", 2), alert("spare", 3)],
            1_000,
        )
        .unwrap();
    for id in &ids {
        journal.processed(*id).unwrap();
    }
    let Admitted::Started(old) = journal
        .admit(&admission("r", ids[0], "old", 1, 1_000))
        .unwrap()
    else {
        panic!()
    };
    journal
        .task_event(old, "t", "succeeded", "{}", 1_001)
        .unwrap();
    journal.finish_run(old, "succeeded", "{}", 1_002).unwrap();
    journal
        .suppress(ids[0], "r", "duplicate", "", 1_003)
        .unwrap();
    let Admitted::Started(open) = journal
        .admit(&admission("r", ids[1], "open", 2, 1_000))
        .unwrap()
    else {
        panic!()
    };
    let removed = journal.prune(10_000).unwrap();
    // The old run, its event, its suppression, its alert and the spare alert.
    assert_eq!(removed, 5);
    let runs = journal.runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, open);
    assert_eq!(
        journal.alert_count().unwrap(),
        1,
        "the open run's alert stays"
    );
    // The episode key stays: the old episode delivered again starts nothing.
    let again = journal.accept(&[alert("old", 1)], 20_000).unwrap()[0];
    assert!(matches!(
        journal
            .admit(&admission("r", again, "old", 1, 20_000))
            .unwrap(),
        Admitted::Duplicate { .. }
    ));
}

#[test]
fn a_journal_with_an_unreadable_schema_version_is_refused() {
    let directory = temp_directory("unreadable-schema");
    let path = directory.path().join("journal.db");
    drop(Journal::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "UPDATE meta SET value = 'one' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    drop(connection);
    let Err(error) = Journal::open(&path) else {
        panic!("an unreadable schema version must be refused")
    };
    assert!(
        matches!(&error, JournalError::UnreadableSchema { found } if found == "one"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        r#"the journal's schema version "one" is not a number: the journal is damaged"#
    );
}

#[test]
fn a_revert_whose_episode_resolved_before_a_crash_is_found_again() {
    let mut journal = Journal::in_memory().unwrap();
    let fired = journal.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let Admitted::Started(run) = journal.admit(&admission("r", fired, "fp", 1, 1)).unwrap() else {
        panic!()
    };
    let revert = journal
        .schedule_revert(run, "scale", "k8s.scale", "{}", "{}", "fp", None, true)
        .unwrap();
    let resolved_alert = |starts_at: i64| AcceptedAlert {
        status: "resolved".into(),
        ..alert("fp", starts_at)
    };
    // Another episode's resolve does not count; this episode's counts once processed.
    let other = journal.accept(&[resolved_alert(2)], 3).unwrap()[0];
    journal.processed(other).unwrap();
    let own = journal.accept(&[resolved_alert(1)], 4).unwrap()[0];
    assert!(journal.reverts_already_resolved().unwrap().is_empty());
    journal.processed(own).unwrap();
    assert_eq!(journal.reverts_already_resolved().unwrap(), [revert]);
    assert!(journal.claim_revert(revert).unwrap().is_some());
    assert!(journal.reverts_already_resolved().unwrap().is_empty());
}

#[test]
fn an_alert_accepted_with_nothing_to_match_is_not_processed_again() {
    let mut journal = Journal::in_memory().unwrap();
    let ids = journal
        .accept(
            &[
                AcceptedAlert {
                    processed: true,
                    ..alert("nobody", 1)
                },
                alert("somebody", 1),
            ],
            100,
        )
        .unwrap();
    let unprocessed = journal.unprocessed_alerts().unwrap();
    assert_eq!(
        unprocessed
            .iter()
            .map(|stored| stored.id)
            .collect::<Vec<_>>(),
        vec![ids[1]]
    );
}

#[test]
fn a_playbook_is_stored_once_however_many_runs_start_with_it() {
    let directory = temp_directory("definitions");
    let path = directory.path().join("journal.db");
    let mut journal = Journal::open(&path).unwrap();
    let ids = journal
        .accept(&[alert("a", 1), alert("b", 1), alert("c", 1)], 100)
        .unwrap();
    let version_one = Definition::new(r#"{"name":"p","tasks":[1]}"#.into());
    let version_two = Definition::new(r#"{"name":"p","tasks":[2]}"#.into());
    let mut runs = Vec::new();
    for ((id, fingerprint), definition) in
        ids.iter()
            .zip(["a", "b", "c"])
            .zip([&version_one, &version_one, &version_two])
    {
        let Admitted::Started(run) = journal
            .admit(&Admission {
                definition: definition.clone(),
                ..admission("r", *id, fingerprint, 1, 101)
            })
            .unwrap()
        else {
            panic!("each episode starts a run");
        };
        runs.push(run);
    }
    for (run, definition) in runs.iter().zip([&version_one, &version_one, &version_two]) {
        assert_eq!(
            journal.run_definition(*run).unwrap().as_deref(),
            Some(definition.json())
        );
    }
    drop(journal);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let stored: i64 = connection
        .query_row("SELECT COUNT(*) FROM definitions", [], |row| row.get(0))
        .unwrap();
    assert_eq!(stored, 2, "one row per version, not per run");
    // A run journaled by schema version 1 holds its playbook's JSON itself; it still reads.
    connection
        .execute(
            "UPDATE runs SET definition = '{\"name\":\"old\"}' WHERE id = ?1",
            [runs[0]],
        )
        .unwrap();
    connection
        .execute(
            "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    drop(connection);
    let journal = Journal::open(&path).unwrap();
    assert_eq!(
        journal.run_definition(runs[0]).unwrap().as_deref(),
        Some(r#"{"name":"old"}"#)
    );
    assert_eq!(
        journal.run_definition(runs[1]).unwrap().as_deref(),
        Some(version_one.json())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhooks_write_goes_ahead_of_the_queue_and_queued_writes_keep_their_order() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let handle = JournalHandle::spawn(Journal::in_memory().unwrap()).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    // 1,000 slow writes queued without waiting: a second's work for the journal.
    for index in 0..1_000 {
        let (done, order) = (Arc::clone(&done), Arc::clone(&order));
        handle
            .send("a slow write", move |_journal| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                order.lock().unwrap().push(index);
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .unwrap();
    }
    let ids = handle
        .call_urgent(|journal| journal.accept(&[alert("urgent", 1)], 1))
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let before = done.load(Ordering::SeqCst);
    assert!(
        before < 500,
        "the urgent write waited for {before} of the 1,000 queued before it"
    );
    // A write awaited after the queued ones is answered after all of them, in order.
    let count = handle.call(|journal| journal.alert_count()).await.unwrap();
    assert_eq!(count, 1);
    assert_eq!(done.load(Ordering::SeqCst), 1_000);
    assert_eq!(*order.lock().unwrap(), (0..1_000).collect::<Vec<_>>());
}
