//! The PostgreSQL store against a real PostgreSQL (the sandbox's `RealPostgres`): the
//! scenarios of the SQLite journal's tests, then what only several nodes on one database
//! can break: admissions of one episode from several connections at once, cooldowns and
//! concurrency limits decided across connections, migrations raced by nodes starting
//! together, and the server crashing under a connection.

use medic_runtime::journal::pg::{PG_SCHEMA_VERSION, PgJournal, redacted};
use medic_runtime::journal::{
    AcceptedAlert, Admission, Admitted, Definition, FeedbackRow, JournalError, NewAuditEntry,
};
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

fn started(
    journal: &mut PgJournal,
    rule: &str,
    alert_id: i64,
    fingerprint: &str,
    starts_at: i64,
) -> i64 {
    match journal
        .admit(&admission(rule, alert_id, fingerprint, starts_at, 1))
        .unwrap()
    {
        Admitted::Started(run) => run,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_revert_is_claimed_once_whichever_node_claims_it() {
    let postgres = server();
    let url = postgres.url();
    let mut journal = PgJournal::open(&url).unwrap();
    let fired = journal.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let run = started(&mut journal, "r", fired, "fp", 1);
    let revert = journal
        .schedule_revert(run, "scale", "k8s.scale", "{}", "{}", "fp", Some(100), true)
        .unwrap();
    assert_eq!(journal.reverts_on_resolve("fp", 1).unwrap(), [revert]);
    assert!(journal.reverts_on_resolve("fp", 2).unwrap().is_empty());
    assert_eq!(journal.reverts("pending").unwrap().len(), 1);
    // Eight nodes' timers fire at once: one performs it.
    let barrier = std::sync::Barrier::new(8);
    let claims: Vec<bool> = std::thread::scope(|scope| {
        let claims: Vec<_> = (0..8)
            .map(|_| {
                let (url, barrier) = (&url, &barrier);
                scope.spawn(move || {
                    let mut node = PgJournal::open(url).unwrap();
                    barrier.wait();
                    node.claim_revert(revert).unwrap().is_some()
                })
            })
            .collect();
        claims
            .into_iter()
            .map(|claim| claim.join().unwrap())
            .collect()
    });
    assert_eq!(
        claims.iter().filter(|claimed| **claimed).count(),
        1,
        "{claims:?}"
    );
    assert_eq!(journal.revert(revert).unwrap().unwrap().state, "reverting");
    journal
        .revert_done(revert, "failed", "the API refused", 200)
        .unwrap();
    assert_eq!(journal.revert_counts().unwrap().get("failed"), Some(&1));
    // A human asks for it again, then another revert is acknowledged instead.
    assert!(journal.reopen_revert(revert, "ana", 300).unwrap());
    assert!(
        !journal.reopen_revert(revert, "ana", 301).unwrap(),
        "it is pending already"
    );
    assert!(journal.claim_revert(revert).unwrap().is_some());
    journal
        .revert_done(revert, "needs_attention", "cut short", 400)
        .unwrap();
    assert!(
        journal
            .acknowledge_revert(revert, "ana", "undone by hand", 500)
            .unwrap()
    );
    let acknowledged = journal.revert(revert).unwrap().unwrap();
    assert_eq!(
        (acknowledged.state.as_str(), acknowledged.detail.as_str()),
        ("acknowledged", "ana: undone by hand")
    );
    let events: Vec<String> = journal
        .task_events(run)
        .unwrap()
        .into_iter()
        .map(|event| event.state)
        .collect();
    assert_eq!(events, ["revert_retry_requested", "revert_acknowledged"]);
    assert_eq!(journal.reverts_of_run(run).unwrap().len(), 1);

    // A revert on resolve whose episode's resolve was processed before a crash.
    let second_episode = journal.accept(&[alert("fp", 2)], 550).unwrap()[0];
    let again = started(&mut journal, "r", second_episode, "fp", 2);
    let on_resolve = journal
        .schedule_revert(again, "scale", "k8s.scale", "{}", "{}", "fp", None, true)
        .unwrap();
    let resolve = |starts_at: i64| AcceptedAlert {
        status: "resolved".into(),
        ..alert("fp", starts_at)
    };
    let other = journal.accept(&[resolve(1)], 600).unwrap()[0];
    journal.processed(other).unwrap();
    let own = journal.accept(&[resolve(2)], 700).unwrap()[0];
    assert!(
        journal.reverts_already_resolved().unwrap().is_empty(),
        "another episode's resolve does not count, nor this one's until processed"
    );
    journal.processed(own).unwrap();
    assert_eq!(journal.reverts_already_resolved().unwrap(), [on_resolve]);
}

#[test]
fn settings_the_audit_log_feedback_and_sns_ids_are_shared_by_the_nodes() {
    let postgres = server();
    let url = postgres.url();
    let mut first = PgJournal::open(&url).unwrap();
    let mut second = PgJournal::open(&url).unwrap();
    assert_eq!(first.setting("kill_switch").unwrap(), None);
    first.set_setting("kill_switch", "on").unwrap();
    assert_eq!(
        second.setting("kill_switch").unwrap().as_deref(),
        Some("on")
    );
    second.set_setting("kill_switch", "off").unwrap();
    assert_eq!(
        first.setting("kill_switch").unwrap().as_deref(),
        Some("off")
    );

    let id = first.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let run = started(&mut first, "r", id, "fp", 1);
    let entry = |action: &str, error: Option<&str>| NewAuditEntry {
        at: 10,
        actor: "ana".into(),
        role: "operator".into(),
        via: "api".into(),
        action: action.into(),
        run_id: Some(run),
        revert_id: None,
        detail: "scale".into(),
        error: error.map(str::to_string),
    };
    let approve = first.audit(&entry("approve", None)).unwrap();
    let denied = second
        .audit(&entry("cancel", Some("the run finished")))
        .unwrap();
    second
        .audit(&NewAuditEntry {
            run_id: None,
            ..entry("kill_switch", None)
        })
        .unwrap();
    let log = first.audit_log(10, None, None).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[1].id, denied);
    assert_eq!(
        (log[1].outcome.as_str(), log[1].error.as_deref()),
        ("refused", Some("the run finished"))
    );
    let of_run = first.audit_log(10, None, Some(run)).unwrap();
    assert_eq!(
        of_run.iter().map(|entry| entry.id).collect::<Vec<_>>(),
        [denied, approve]
    );
    let older = first.audit_log(10, Some(denied), None).unwrap();
    assert_eq!(
        older.iter().map(|entry| entry.id).collect::<Vec<_>>(),
        [approve]
    );

    let feedback = FeedbackRow {
        run_id: run,
        at: 20,
        by: "ana".into(),
        verdict: "yes".into(),
        note: "fixed".into(),
    };
    second.add_feedback(&feedback).unwrap();
    assert_eq!(first.feedback_of_run(run).unwrap(), [feedback]);

    assert!(!first.sns_seen("m-1").unwrap());
    first
        .sns_taken("m-1", "arn:aws:sns:eu-west-1:1:alarms", 100, 0)
        .unwrap();
    assert!(
        second.sns_seen("m-1").unwrap(),
        "a message one node took is a replay for the other"
    );
    second
        .sns_taken("m-1", "arn:aws:sns:eu-west-1:1:alarms", 101, 0)
        .unwrap();
    second
        .sns_taken("m-2", "arn:aws:sns:eu-west-1:1:alarms", 200, 150)
        .unwrap();
    assert!(
        !first.sns_seen("m-1").unwrap(),
        "taken before the window: forgotten"
    );

    // The open episode of a fingerprint, as the CloudWatch and Kibana readers ask for it.
    let labelled = |status: &str, uuid: &str, starts_at: i64| AcceptedAlert {
        status: status.into(),
        payload: format!("{{\"labels\":{{\"kibana_alert_uuid\":\"{uuid}\"}}}}"),
        ..alert("kibana", starts_at)
    };
    first.accept(&[labelled("firing", "u1", 5)], 300).unwrap();
    assert_eq!(second.open_episode("kibana", None).unwrap(), Some(5));
    assert_eq!(
        second
            .open_episode("kibana", Some(("kibana_alert_uuid", "u1")))
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        second
            .open_episode("kibana", Some(("kibana_alert_uuid", "u2")))
            .unwrap(),
        None
    );
    first.accept(&[labelled("resolved", "u1", 5)], 301).unwrap();
    assert_eq!(second.open_episode("kibana", None).unwrap(), None);
    assert_eq!(second.open_episode("nothing", None).unwrap(), None);
}

#[test]
fn pruning_forgets_what_ended_long_ago_and_clearing_forgets_everything() {
    let postgres = server();
    let mut journal = PgJournal::open(&postgres.url()).unwrap();
    let ids = journal
        .accept(
            &[alert("old", 1), alert("open", 2), alert("spare", 3)],
            1_000,
        )
        .unwrap();
    for id in &ids {
        journal.processed(*id).unwrap();
    }
    let old = started(&mut journal, "r", ids[0], "old", 1);
    journal
        .task_event(old, "t", "succeeded", "{}", 1_001)
        .unwrap();
    journal.finish_run(old, "succeeded", "{}", 1_002).unwrap();
    journal
        .suppress(ids[0], "r", "duplicate", "", 1_003)
        .unwrap();
    let open = started(&mut journal, "r", ids[1], "open", 2);
    // As in the SQLite journal: the old run, its event, its suppression, its alert and the
    // spare alert.
    assert_eq!(journal.prune(10_000).unwrap(), 5);
    let runs = journal.runs(10).unwrap();
    assert_eq!(runs.iter().map(|run| run.id).collect::<Vec<_>>(), [open]);
    assert_eq!(journal.alert_count().unwrap(), 1);
    assert!(journal.suppressions(10).unwrap().is_empty());
    let again = journal.accept(&[alert("old", 1)], 20_000).unwrap()[0];
    assert!(matches!(
        journal
            .admit(&admission("r", again, "old", 1, 20_000))
            .unwrap(),
        Admitted::Duplicate { .. }
    ));
    assert!(journal.alert(again).unwrap().is_some());

    journal.set_setting("kill_switch", "on").unwrap();
    journal.clear().unwrap();
    assert_eq!(journal.alert_count().unwrap(), 0);
    assert!(journal.runs(10).unwrap().is_empty());
    assert_eq!(journal.setting("kill_switch").unwrap(), None);
    assert_eq!(
        journal.schema_version().unwrap(),
        Some(PG_SCHEMA_VERSION.to_string())
    );
}

/// The history both stores are given, step by step, in the tests below.
enum Step {
    Accept(Vec<AcceptedAlert>, i64),
    Processed(usize),
    Admit(&'static str, usize, &'static str, i64, i64),
    Event(usize, &'static str, &'static str, i64),
    Finish(usize, &'static str, i64),
    Revert(usize, &'static str),
    Feedback(usize, &'static str),
    Suppress(usize, &'static str),
}

/// A playbook as planned, with two action tasks, as the engine stores it.
fn definition() -> Definition {
    let text = "import std.{k8s, notify}\n\
                playbook fix(service: String) {\n\
                  task scale = k8s.scale(deployment: service, by: 1, max: 5)\n\
                  task tell = notify.slack(channel: \"#ops\", text: \"scaled\")\n\
                }\n";
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("fix.ops", text)]);
    assert_eq!(analysis.errors(), 0, "{:?}", analysis.diagnostics);
    let plan = medic_compiler::plan::lower(&analysis).unwrap();
    Definition::new(serde_json::to_string(&plan.playbooks[0]).unwrap())
}

/// Two alerts of two rules: runs with actions, an approval, a revert, feedback, a resolve
/// and a suppression.
fn history() -> Vec<Step> {
    let labelled = |fingerprint: &str, status: &str, starts_at: i64, team: &str| AcceptedAlert {
        status: status.into(),
        payload: format!("{{\"labels\":{{\"team\":\"{team}\",\"a.b\":\"dotted\"}}}}"),
        ..alert(fingerprint, starts_at)
    };
    vec![
        Step::Accept(
            vec![
                labelled("api", "firing", 1_000, "web"),
                labelled("db", "firing", 2_000, "data"),
            ],
            1_100,
        ),
        Step::Processed(0),
        Step::Admit("api_latency", 0, "api", 1_000, 1_200),
        Step::Admit("db_disk", 1, "db", 2_000, 2_100),
        Step::Event(0, "scale", "succeeded", 1_300),
        Step::Event(0, "tell", "succeeded", 1_350),
        Step::Event(1, "scale", "awaiting_approval", 2_200),
        Step::Event(1, "scale", "approved", 2_500),
        Step::Finish(0, "succeeded", 1_400),
        Step::Finish(1, "escalated", 2_600),
        Step::Revert(0, "reverted"),
        Step::Feedback(0, "yes"),
        Step::Accept(vec![labelled("api", "resolved", 1_000, "web")], 5_000),
        Step::Suppress(1, "cooldown"),
    ]
}

#[test]
fn the_history_reads_the_same_on_sqlite_and_on_postgresql() {
    use medic_runtime::journal::{Journal, RunQuery};
    let postgres = server();
    let mut pg = PgJournal::open(&postgres.url()).unwrap();
    let mut sqlite = Journal::in_memory().unwrap();
    let definition = definition();
    let (mut pg_alerts, mut pg_runs, mut lite_alerts, mut lite_runs) =
        (vec![], vec![], vec![], vec![]);
    for step in history() {
        match step {
            Step::Accept(alerts, at) => {
                pg_alerts.extend(pg.accept(&alerts, at).unwrap());
                lite_alerts.extend(sqlite.accept(&alerts, at).unwrap());
            }
            Step::Processed(alert) => {
                pg.processed(pg_alerts[alert]).unwrap();
                sqlite.processed(lite_alerts[alert]).unwrap();
            }
            Step::Admit(rule, alert, fingerprint, starts_at, at) => {
                let request = |alert_id| Admission {
                    definition: definition.clone(),
                    ..admission(rule, alert_id, fingerprint, starts_at, at)
                };
                let Admitted::Started(run) = pg.admit(&request(pg_alerts[alert])).unwrap() else {
                    panic!()
                };
                pg_runs.push(run);
                let Admitted::Started(run) = sqlite.admit(&request(lite_alerts[alert])).unwrap()
                else {
                    panic!()
                };
                lite_runs.push(run);
            }
            Step::Event(run, task, state, at) => {
                pg.task_event(pg_runs[run], task, state, "{}", at).unwrap();
                sqlite
                    .task_event(lite_runs[run], task, state, "{}", at)
                    .unwrap();
            }
            Step::Finish(run, state, at) => {
                pg.finish_run(pg_runs[run], state, "{}", at).unwrap();
                sqlite.finish_run(lite_runs[run], state, "{}", at).unwrap();
            }
            Step::Revert(run, state) => {
                let id = pg
                    .schedule_revert(
                        pg_runs[run],
                        "scale",
                        "k8s.scale",
                        "{}",
                        "{}",
                        "api",
                        None,
                        true,
                    )
                    .unwrap();
                pg.revert_done(id, state, "", 3_000).unwrap();
                let id = sqlite
                    .schedule_revert(
                        lite_runs[run],
                        "scale",
                        "k8s.scale",
                        "{}",
                        "{}",
                        "api",
                        None,
                        true,
                    )
                    .unwrap();
                sqlite.revert_done(id, state, "", 3_000).unwrap();
            }
            Step::Feedback(run, verdict) => {
                let feedback = |run_id| FeedbackRow {
                    run_id,
                    at: 4_000,
                    by: "ana".into(),
                    verdict: verdict.into(),
                    note: String::new(),
                };
                pg.add_feedback(&feedback(pg_runs[run])).unwrap();
                sqlite.add_feedback(&feedback(lite_runs[run])).unwrap();
            }
            Step::Suppress(alert, reason) => {
                pg.suppress(pg_alerts[alert], "db_disk", reason, "", 5_100)
                    .unwrap();
                sqlite
                    .suppress(lite_alerts[alert], "db_disk", reason, "", 5_100)
                    .unwrap();
            }
        }
    }
    // Both stores number from 1 in the same order, so the answers compare as they are.
    assert_eq!(pg_runs, lite_runs);
    assert_eq!(pg_alerts, lite_alerts);
    let facts = pg.facts(0).unwrap();
    assert_eq!(facts, sqlite.facts(0).unwrap());
    assert_eq!(facts.runs.len(), 2);
    // `k8s.scale` and `notify.slack` are both actions.
    assert_eq!(
        (facts.runs[0].actions, facts.runs[0].reverted),
        (2, 1),
        "{:?}",
        facts.runs[0]
    );
    assert_eq!(facts.runs[1].approval_waits_ms, [300]);
    assert_eq!(facts.episodes.len(), 2);
    assert_eq!(facts.feedback.len(), 1);
    assert_eq!(pg.facts(1_150).unwrap(), sqlite.facts(1_150).unwrap());

    assert_eq!(
        pg.alert_summaries(10, None, None).unwrap(),
        sqlite.alert_summaries(10, None, None).unwrap()
    );
    assert_eq!(
        pg.alert_summaries(1, Some(3), Some("Service_Latency_Exceeded"))
            .unwrap(),
        sqlite
            .alert_summaries(1, Some(3), Some("Service_Latency_Exceeded"))
            .unwrap()
    );
    let episode = pg.episode("api", 1_000).unwrap();
    assert_eq!(episode, sqlite.episode("api", 1_000).unwrap());
    assert_eq!(episode.unwrap().resolved_at, Some(5_000));
    assert_eq!(pg.episode("none", 1).unwrap(), None);

    let queries = [
        RunQuery {
            limit: 10,
            ..RunQuery::default()
        },
        RunQuery {
            state: Some("escalated".into()),
            limit: 10,
            ..RunQuery::default()
        },
        RunQuery {
            rule: Some("api_latency".into()),
            playbook: Some("p".into()),
            limit: 10,
            ..RunQuery::default()
        },
        RunQuery {
            alert: Some("Service_Latency_Exceeded".into()),
            limit: 1,
            offset: 1,
            ..RunQuery::default()
        },
        RunQuery {
            label: Some(("team".into(), "data".into())),
            limit: 10,
            ..RunQuery::default()
        },
        RunQuery {
            label: Some(("a.b".into(), "dotted".into())),
            limit: 10,
            ..RunQuery::default()
        },
        RunQuery {
            from: Some(1_500),
            until: Some(3_000),
            limit: 10,
            ..RunQuery::default()
        },
        RunQuery {
            id: Some(pg_runs[0]),
            limit: 10,
            ..RunQuery::default()
        },
        RunQuery {
            alert_id: Some(pg_alerts[1]),
            limit: 10,
            ..RunQuery::default()
        },
    ];
    for query in &queries {
        let answer = pg.runs_page(query).unwrap();
        assert_eq!(answer, sqlite.runs_page(query).unwrap(), "{query:?}");
    }
    assert_eq!(
        pg.runs_page(&queries[4]).unwrap().len(),
        1,
        "the label filter selects"
    );
    assert_eq!(
        pg.runs_page(&queries[5]).unwrap().len(),
        2,
        "a dotted label name is one key"
    );
    assert_eq!(
        pg.runs_needing_a_human(0, 10).unwrap(),
        sqlite.runs_needing_a_human(0, 10).unwrap()
    );
    assert_eq!(pg.runs_needing_a_human(0, 10).unwrap().len(), 1);
    assert_eq!(
        pg.suppressions(10).unwrap(),
        sqlite.suppressions(10).unwrap()
    );
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

fn is_fenced(result: Result<(), JournalError>) -> bool {
    matches!(result, Err(JournalError::Fenced { .. }))
}

#[test]
fn a_node_whose_lease_lapsed_is_fenced_out_and_its_runs_are_taken_over() {
    let postgres = server();
    let url = postgres.url();
    let mut a = PgJournal::open(&url).unwrap();
    let mut b = PgJournal::open(&url).unwrap();
    let lease_a = a.register("a", 1_500).unwrap();
    let lease_b = b.register("b", 60_000).unwrap();
    assert!(
        lease_b.fence > lease_a.fence,
        "each registration gets a larger number"
    );
    let id = a.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let run = started(&mut a, "r", id, "fp", 1);
    a.task_event(run, "scale", "started", "{}", 2).unwrap();
    assert!(a.renew(1_500).unwrap());
    assert_eq!(
        b.take_over(0).unwrap(),
        Vec::<i64>::new(),
        "a live node's runs stay its own"
    );
    assert_eq!(
        b.unfinished_runs().unwrap(),
        vec![],
        "b resumes only its own runs"
    );
    assert_eq!(a.unfinished_runs().unwrap().len(), 1);

    // `a` stops renewing (paused, partitioned, slow) past its lease.
    sleep_ms(2_000);
    assert!(
        is_fenced(a.task_event(run, "scale", "succeeded", "{}", 3)),
        "a lapsed lease writes nothing"
    );
    assert!(!a.renew(1_500).unwrap(), "the lapsed lease is not renewed");
    assert!(matches!(
        a.admit(&admission("r", id, "fp", 2, 4)),
        Err(JournalError::Fenced { run_id: None, .. })
    ));
    assert_eq!(
        b.take_over(100).unwrap(),
        vec![run],
        "past the grace, b takes the run"
    );
    b.task_event(run, "scale", "interrupted", "{}", 5).unwrap();

    // `a` comes back (SIGCONT, or restarted under its name): a new number, but the run is b's.
    let again = a.register("a", 60_000).unwrap();
    assert!(again.fence > lease_b.fence);
    assert!(is_fenced(a.task_event(run, "scale", "succeeded", "{}", 6)));
    assert!(is_fenced(a.finish_run(run, "succeeded", "{}", 6)));
    assert!(is_fenced(a.run_state(run, "paused")));
    b.finish_run(run, "interrupted", "{}", 7).unwrap();
    b.run_state(run, "paused").unwrap();
    let events: Vec<(String, String)> = b
        .task_events(run)
        .unwrap()
        .into_iter()
        .map(|event| (event.task, event.state))
        .collect();
    assert_eq!(
        events,
        [
            ("scale".into(), "started".into()),
            ("scale".into(), "interrupted".into())
        ],
        "only the owner's writes are in"
    );
    assert_eq!(b.run(run).unwrap().unwrap().state, "interrupted");
    // The returning node starts runs of its own again.
    let own = started(&mut a, "r", id, "fp", 3);
    a.finish_run(own, "succeeded", "{}", 8).unwrap();
}

#[test]
fn a_node_started_again_takes_back_its_own_runs_and_its_old_life_is_refused() {
    let postgres = server();
    let url = postgres.url();
    let mut old_life = PgJournal::open(&url).unwrap();
    old_life.register("a", 60_000).unwrap();
    let id = old_life.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let run = started(&mut old_life, "r", id, "fp", 1);
    // A new process under the same name, while the old one still runs (a restart racing a
    // slow shutdown): the new registration fences the old one out at once.
    let mut new_life = PgJournal::open(&url).unwrap();
    new_life.register("a", 60_000).unwrap();
    assert_eq!(
        new_life.unfinished_runs().unwrap(),
        vec![],
        "under the old number until taken"
    );
    assert_eq!(
        new_life.take_over(60_000).unwrap(),
        vec![run],
        "its own runs need no grace"
    );
    assert_eq!(new_life.unfinished_runs().unwrap().len(), 1);
    assert!(is_fenced(old_life.task_event(run, "t", "started", "{}", 2)));
    assert!(!old_life.renew(60_000).unwrap());
    new_life.task_event(run, "t", "started", "{}", 3).unwrap();
}

/// A server with node `a` on a 1 s lease, holding a run, and node `b` on a minute's.
fn a_short_lease_with_a_run_and_a_long_one() -> (RealPostgres, PgJournal, PgJournal, i64) {
    let postgres = server();
    let url = postgres.url();
    let mut a = PgJournal::open(&url).unwrap();
    let mut b = PgJournal::open(&url).unwrap();
    a.register("a", 1_000).unwrap();
    b.register("b", 60_000).unwrap();
    let id = a.accept(&[alert("fp", 1)], 1).unwrap()[0];
    let run = started(&mut a, "r", id, "fp", 1);
    (postgres, a, b, run)
}

#[test]
fn a_takeover_skips_a_run_whose_row_is_locked_rather_than_waiting() {
    let (postgres, _a, mut b, run) = a_short_lease_with_a_run_and_a_long_one();
    let url = postgres.url();
    // `a` is paused in the middle of a write that holds its run's row.
    let mut paused = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut transaction = paused.transaction().unwrap();
    transaction
        .execute("SELECT 1 FROM runs WHERE id = $1 FOR SHARE", &[&run])
        .unwrap();
    sleep_ms(1_500);
    let started = std::time::Instant::now();
    assert_eq!(
        b.take_over(100).unwrap(),
        Vec::<i64>::new(),
        "the locked run is left"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    transaction.rollback().unwrap();
    assert_eq!(
        b.take_over(100).unwrap(),
        vec![run],
        "and taken on the next sweep"
    );
}

#[test]
fn a_revert_taken_over_from_a_paused_node_keeps_the_takers_verdict() {
    let (_postgres, mut a, mut b, run) = a_short_lease_with_a_run_and_a_long_one();
    let revert = a
        .schedule_revert(
            run,
            "scale",
            "k8s.scale",
            "{}",
            "{}",
            "fp",
            Some(100),
            false,
        )
        .unwrap();
    // A claim given back (its node's lease lapsed before it acted) can be claimed again.
    assert!(a.claim_revert(revert).unwrap().is_some());
    assert!(b.claim_revert(revert).unwrap().is_none());
    a.release_revert(revert).unwrap();
    b.release_revert(revert).unwrap();
    assert_eq!(a.revert(revert).unwrap().unwrap().state, "pending");
    assert!(a.claim_revert(revert).unwrap().is_some());
    b.release_revert(revert).unwrap();
    assert_eq!(
        a.revert(revert).unwrap().unwrap().state,
        "reverting",
        "only its claimer gives a claim back"
    );
    // `a` is paused past its lease in the middle of the revert; `b` takes it and hands it
    // to a human.
    sleep_ms(1_500);
    let taken: Vec<i64> = b
        .take_over_reverts(100)
        .unwrap()
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(taken, [revert]);
    assert!(
        a.revert_done(revert, "reverted", "late", 200).is_ok(),
        "refused quietly: nothing for the late node to do"
    );
    assert_eq!(
        a.revert(revert).unwrap().unwrap().state,
        "reverting",
        "the late node's verdict is not recorded"
    );
    b.revert_done(
        revert,
        "needs_attention",
        "in flight on a node that died",
        300,
    )
    .unwrap();
    a.revert_done(revert, "reverted", "later still", 400)
        .unwrap();
    let row = b.revert(revert).unwrap().unwrap();
    assert_eq!(
        (row.state.as_str(), row.detail.as_str()),
        ("needs_attention", "in flight on a node that died")
    );
}
