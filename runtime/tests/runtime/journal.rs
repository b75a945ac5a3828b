//! The journal on disk: durability across reopen (as after a crash), one run per rule per
//! firing episode, unfinished runs found again, and clear errors.

use medic_runtime::journal::{AcceptedAlert, Journal, JournalError, RunStart};

fn alert(fingerprint: &str, starts_at: i64) -> AcceptedAlert {
    AcceptedAlert {
        source: "alertmanager".into(),
        name: "Service_Latency_Exceeded".into(),
        status: "firing".into(),
        fingerprint: fingerprint.into(),
        starts_at,
        payload: "{}".into(),
    }
}

fn directory(name: &str) -> std::path::PathBuf {
    let directory =
        std::env::temp_dir().join(format!("medic-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

#[test]
fn accepted_alerts_and_runs_survive_reopening() {
    let path = directory("reopen").join("journal.db");
    let run_id = {
        let mut journal = Journal::open(&path).unwrap();
        let ids = journal
            .accept(&[alert("a", 1), alert("b", 2)], 100)
            .unwrap();
        assert_eq!(ids.len(), 2);
        let RunStart::Started(run_id) = journal
            .start_run(
                "payment_latency",
                "payment_troubleshoot",
                ids[0],
                ("a", 1),
                101,
            )
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
    let unfinished = journal.unfinished_runs().unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, run_id);
    assert_eq!(unfinished[0].state, "running");
    assert_eq!(
        journal.task_events(run_id).unwrap(),
        [("status".into(), "succeeded".into(), "200".into())]
    );
}

#[test]
fn one_firing_episode_starts_one_run_per_rule() {
    let path = directory("episodes").join("journal.db");
    let mut journal = Journal::open(&path).unwrap();
    let first = journal.accept(&[alert("fp", 1_000)], 1).unwrap()[0];
    let started = journal
        .start_run("r", "p", first, ("fp", 1_000), 2)
        .unwrap();
    let RunStart::Started(run) = started else {
        panic!("{started:?}")
    };
    // The same episode delivered again (Alertmanager repeats), even after a restart.
    drop(journal);
    let mut journal = Journal::open(&path).unwrap();
    let again = journal.accept(&[alert("fp", 1_000)], 3).unwrap()[0];
    assert_eq!(
        journal
            .start_run("r", "p", again, ("fp", 1_000), 4)
            .unwrap(),
        RunStart::Duplicate { existing_run: run }
    );
    journal
        .suppress(again, "r", "duplicate delivery of a running episode", 4)
        .unwrap();
    // Another rule, or a new episode of the same alert, starts its own run.
    assert!(matches!(
        journal
            .start_run("other", "p", again, ("fp", 1_000), 5)
            .unwrap(),
        RunStart::Started(_)
    ));
    assert!(matches!(
        journal
            .start_run("r", "p", again, ("fp", 2_000), 6)
            .unwrap(),
        RunStart::Started(_)
    ));
    journal.finish_run(run, "succeeded", 7).unwrap();
    let runs = journal.runs(10).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs.last().unwrap().finished_at, Some(7));
}

#[test]
fn an_unusable_path_is_a_clear_error() {
    let path = directory("bad")
        .join("missing-directory")
        .join("journal.db");
    let Err(error) = Journal::open(&path) else {
        panic!("opening must fail")
    };
    assert!(matches!(error, JournalError::Open { .. }));
    assert!(
        error.to_string().starts_with("cannot open the journal at"),
        "{error}"
    );
}

#[test]
fn a_journal_from_a_newer_medic_is_refused() {
    let path = directory("newer").join("journal.db");
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
