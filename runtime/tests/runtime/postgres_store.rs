//! The PostgreSQL store against a real PostgreSQL (the sandbox's `RealPostgres`): the
//! scenarios of the SQLite journal's tests, then what only several nodes on one database
//! can break: admissions of one episode from several connections at once, cooldowns and
//! concurrency limits decided across connections, migrations raced by nodes starting
//! together, and the server crashing under a connection.

use medic_runtime::journal::pg::{PG_SCHEMA_VERSION, PgJournal, redacted};
use medic_runtime::journal::{AcceptedAlert, Admission, Admitted, Definition, JournalError};
use medic_sandbox::postgres::RealPostgres;

fn server() -> RealPostgres {
    RealPostgres::start().unwrap_or_else(|error| panic!("{error}"))
}

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
        definition: Definition::new("{\"tasks\":[]}".into()),
        at,
    }
}

#[test]
fn alerts_runs_and_episodes_are_durable_and_one_episode_starts_one_run() {
    let postgres = server();
    let mut journal = PgJournal::open(&postgres.url()).unwrap();
    assert_eq!(
        journal.schema_version().unwrap(),
        Some(PG_SCHEMA_VERSION.to_string())
    );
    let ids = journal
        .accept(&[alert("a", 1), alert("b", 2)], 100)
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    let Admitted::Started(run) = journal.admit(&admission("r", ids[0], "a", 1, 101)).unwrap()
    else {
        panic!("the first admission starts a run")
    };
    journal.processed(ids[0]).unwrap();
    journal
        .task_event(run, "scale", "started", "{}", 102)
        .unwrap();
    journal
        .task_event(run, "scale", "succeeded", "{\"replicas\":3}", 103)
        .unwrap();

    // Another node (a new connection), as after a crash of the first.
    drop(journal);
    let mut journal = PgJournal::open(&postgres.url()).unwrap();
    let unprocessed = journal.unprocessed_alerts().unwrap();
    assert_eq!(
        unprocessed.iter().map(|alert| alert.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    let unfinished = journal.unfinished_runs().unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, run);
    assert_eq!(unfinished[0].episode_starts_at, Some(1));
    assert_eq!(
        journal.run_definition(run).unwrap().as_deref(),
        Some("{\"tasks\":[]}")
    );
    let events = journal.task_events(run).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|event| event.state.as_str())
            .collect::<Vec<_>>(),
        ["started", "succeeded"]
    );
    // The episode delivered again: no second run; another rule or episode: their own.
    let again = journal.accept(&[alert("a", 1)], 104).unwrap()[0];
    assert_eq!(
        journal.admit(&admission("r", again, "a", 1, 105)).unwrap(),
        Admitted::Duplicate { existing_run: run }
    );
    journal
        .suppress(again, "r", "duplicate", "episode already ran", 105)
        .unwrap();
    assert!(matches!(
        journal
            .admit(&admission("other", again, "a", 1, 106))
            .unwrap(),
        Admitted::Started(_)
    ));
    assert!(matches!(
        journal.admit(&admission("r", again, "a", 2, 107)).unwrap(),
        Admitted::Started(_)
    ));
    journal.run_state(run, "paused").unwrap();
    assert_eq!(journal.run(run).unwrap().unwrap().state, "paused");
    journal.finish_run(run, "succeeded", "{}", 108).unwrap();
    let finished = journal.run(run).unwrap().unwrap();
    assert_eq!(
        (finished.state.as_str(), finished.finished_at),
        ("succeeded", Some(108))
    );
    assert_eq!(journal.runs(10).unwrap().len(), 3);
    assert_eq!(journal.unfinished_runs().unwrap().len(), 2);

    journal.action_started(1_000).unwrap();
    journal.action_started(3_700_000).unwrap();
    assert_eq!(
        journal.action_starts_since(0).unwrap(),
        vec![3_700_000],
        "older than an hour is forgotten"
    );
}

#[test]
fn one_episode_admitted_by_many_nodes_at_once_starts_one_run() {
    let postgres = server();
    let url = postgres.url();
    let alert_id = PgJournal::open(&url)
        .unwrap()
        .accept(&[alert("fp", 1)], 1)
        .unwrap()[0];
    let nodes = 4;
    let episodes = 25;
    let barrier = std::sync::Barrier::new(nodes);
    let answers: Vec<Vec<Admitted>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..nodes)
            .map(|_| {
                let url = &url;
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut journal = PgJournal::open(url).unwrap();
                    barrier.wait();
                    (0..episodes)
                        .map(|episode| {
                            journal
                                .admit(&admission("r", alert_id, "fp", episode, 10))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .collect()
    });
    for episode in 0..episodes as usize {
        let started: Vec<i64> = answers
            .iter()
            .filter_map(|node| match node[episode] {
                Admitted::Started(run) => Some(run),
                _ => None,
            })
            .collect();
        assert_eq!(started.len(), 1, "episode {episode}: {answers:?}");
        for node in &answers {
            assert!(
                node[episode] == Admitted::Started(started[0])
                    || node[episode]
                        == Admitted::Duplicate {
                            existing_run: started[0]
                        },
                "episode {episode}: {:?}",
                node[episode]
            );
        }
    }
    let count = postgres.psql("SELECT count(*) FROM runs").unwrap();
    assert_eq!(count, episodes.to_string());
}

#[test]
fn cooldowns_and_concurrency_hold_across_nodes() {
    let postgres = server();
    let url = postgres.url();
    let alert_id = PgJournal::open(&url)
        .unwrap()
        .accept(&[alert("fp", 1)], 1)
        .unwrap()[0];
    // Eight nodes each admit a different episode with the same cooldown key at once, and
    // eight more a different episode under a concurrency limit of two: one run cools the
    // key down, two hold the limit.
    let cooled = |fingerprint: String| Admission {
        cooldown: Some(("api".into(), 60_000)),
        ..admission("cooled", alert_id, &fingerprint, 1, 1_000)
    };
    let limited = |fingerprint: String| Admission {
        concurrency: Some(("db".into(), 2)),
        ..admission("limited", alert_id, &fingerprint, 1, 1_000)
    };
    let barrier = std::sync::Barrier::new(16);
    let answers: Vec<Admitted> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|node| {
                let (url, barrier) = (&url, &barrier);
                let request = if node < 8 {
                    cooled(format!("c{node}"))
                } else {
                    limited(format!("l{node}"))
                };
                scope.spawn(move || {
                    let mut journal = PgJournal::open(url).unwrap();
                    barrier.wait();
                    journal.admit(&request).unwrap()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .collect()
    });
    let started = |answers: &[Admitted]| {
        answers
            .iter()
            .filter(|answer| matches!(answer, Admitted::Started(_)))
            .count()
    };
    assert_eq!(started(&answers[..8]), 1, "{answers:?}");
    assert!(answers[..8].iter().all(|answer| matches!(
        answer,
        Admitted::Started(_) | Admitted::Cooldown { until: 61_000, .. }
    )));
    assert_eq!(started(&answers[8..]), 2, "{answers:?}");
    assert!(answers[8..].iter().all(|answer| matches!(
        answer,
        Admitted::Started(_) | Admitted::Concurrency { running: 2 }
    )));
}

#[test]
fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let postgres = server();
    let url = postgres.url();
    std::thread::scope(|scope| {
        let opens: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| PgJournal::open(&url).map(drop)))
            .collect();
        for open in opens {
            open.join().unwrap().unwrap();
        }
    });
    assert_eq!(
        postgres
            .psql("SELECT value FROM meta WHERE key = 'schema_version'")
            .unwrap(),
        PG_SCHEMA_VERSION.to_string()
    );
    postgres
        .psql("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        .unwrap();
    match PgJournal::open(&url) {
        Err(JournalError::NewerSchema { found: 99 }) => {}
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a store from a newer medic opened"),
    }
}

#[test]
fn a_crashed_server_is_an_error_not_a_hang_and_the_next_call_reconnects() {
    let mut postgres = server();
    let url = postgres.url();
    let mut journal = PgJournal::open(&url).unwrap();
    let id = journal.accept(&[alert("a", 1)], 1).unwrap()[0];

    postgres.crash().unwrap();
    let started = std::time::Instant::now();
    let error = journal.accept(&[alert("b", 2)], 2).unwrap_err();
    assert!(
        matches!(
            error,
            JournalError::Database { .. } | JournalError::Connect { .. }
        ),
        "{error}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // Opening while the server is down names where it tried, without the password.
    let Err(refused) = PgJournal::open("postgres://medic:secret@127.0.0.1:1/medic") else {
        panic!("nothing listens on port 1")
    };
    assert!(
        refused.to_string().contains("postgres://127.0.0.1:1/medic"),
        "{refused}"
    );
    assert!(!refused.to_string().contains("secret"), "{refused}");

    postgres.restart().unwrap();
    // The broken connection is replaced on the next call; what was committed is there.
    let mut answered = None;
    for _ in 0..3 {
        match journal.unprocessed_alerts() {
            Ok(alerts) => {
                answered = Some(alerts);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    let alerts = answered.expect("the journal reconnects after the restart");
    assert_eq!(
        alerts.iter().map(|alert| alert.id).collect::<Vec<_>>(),
        vec![id]
    );
}

#[test]
fn urls_are_redacted_in_messages() {
    assert_eq!(
        redacted("postgres://u:p@db.example:5432/medic?sslmode=require"),
        "postgres://db.example:5432/medic"
    );
    assert_eq!(
        redacted("postgres://db:5432/medic"),
        "postgres://db:5432/medic"
    );
    assert_eq!(
        redacted("host=db user=x"),
        "(a connection string that is not a URL)"
    );
}
