//! The journal on PostgreSQL, for several `medic serve` nodes on one database (issue 14;
//! docs/notes/032): the schema and its migrations, every method of the SQLite journal, node
//! leases and fencing. An alert is committed before the call returns. An episode
//! `(rule, fingerprint, starts_at)` starts one run however many connections admit it at
//! once. Cooldown and concurrency are decided in the admitting transaction, with every
//! admission of the same rule serialized by a transaction-scoped advisory lock, so two nodes
//! cannot both see a key free. Once a node registered, its writes for a run are fenced by
//! its lease.
//!
//! [`PgJournal`] is synchronous, like [`super::Journal`]: it runs on the journal's own
//! thread ([`super::JournalHandle`]'s writer), with `postgres`' blocking client. Its methods
//! take the same arguments and give the same answers as the SQLite journal's (the tests in
//! `tests/runtime/postgres_store.rs` run the same scenarios on both). `medic serve` does not
//! offer it yet: the engine does not use the leases yet, and note 032 lists what a review
//! found to fix before it does (admission locks held for a whole group can deadlock two
//! nodes; no statement, lock or idle-in-transaction timeouts).
//!
//! A connection that broke (the server restarted, the network dropped) is replaced on the
//! next call; the call that found it broken fails with the error, and nothing is retried
//! behind the caller's back, since a write whose commit was in flight may or may not have
//! happened.

use super::history::{AlertSummary, AuditEntry, FeedbackRow, NewAuditEntry, RunQuery};
use super::{
    AcceptedAlert, Admission, Admitted, JournalError, RevertRow, RunRow, StoredAlert,
    SuppressionRow,
};
use crate::stats::{EpisodeFact, Facts, FeedbackFact, RunFact};
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use std::collections::BTreeMap;

/// Statement parameters.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The migrations, in order: migration `n` takes the schema from version `n` to `n + 1`.
/// Applied at open by the first node under an advisory lock, all in one transaction that also
/// writes the version reached; never edited once released, only appended to.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the tables of the SQLite journal's schema 4, typed for PostgreSQL.
    "CREATE TABLE alerts (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       received_at BIGINT NOT NULL,
       source TEXT NOT NULL,
       name TEXT NOT NULL,
       status TEXT NOT NULL,
       fingerprint TEXT NOT NULL,
       starts_at BIGINT NOT NULL,
       payload TEXT NOT NULL,
       processed BOOLEAN NOT NULL DEFAULT FALSE
     );
     CREATE TABLE definitions (key TEXT PRIMARY KEY, body TEXT NOT NULL);
     CREATE TABLE runs (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       rule TEXT NOT NULL,
       playbook TEXT NOT NULL,
       alert_id BIGINT NOT NULL REFERENCES alerts(id),
       fingerprint TEXT NOT NULL,
       cooldown_key TEXT,
       concurrency_key TEXT,
       performs_actions BOOLEAN NOT NULL,
       arguments TEXT NOT NULL,
       definition TEXT NOT NULL REFERENCES definitions(key),
       state TEXT NOT NULL,
       started_at BIGINT NOT NULL,
       finished_at BIGINT,
       report TEXT
     );
     CREATE TABLE episodes (
       rule TEXT NOT NULL,
       fingerprint TEXT NOT NULL,
       starts_at BIGINT NOT NULL,
       run_id BIGINT NOT NULL,
       PRIMARY KEY (rule, fingerprint, starts_at)
     );
     CREATE TABLE task_events (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       run_id BIGINT NOT NULL REFERENCES runs(id),
       task TEXT NOT NULL,
       state TEXT NOT NULL,
       at BIGINT NOT NULL,
       detail TEXT NOT NULL
     );
     CREATE TABLE suppressions (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       alert_id BIGINT NOT NULL REFERENCES alerts(id),
       rule TEXT NOT NULL,
       reason TEXT NOT NULL,
       detail TEXT NOT NULL,
       at BIGINT NOT NULL
     );
     CREATE TABLE reverts (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       run_id BIGINT NOT NULL REFERENCES runs(id),
       task TEXT NOT NULL,
       function TEXT NOT NULL,
       arguments TEXT NOT NULL,
       output TEXT NOT NULL,
       fingerprint TEXT NOT NULL,
       due_at BIGINT,
       on_resolve BOOLEAN NOT NULL,
       state TEXT NOT NULL,
       detail TEXT NOT NULL DEFAULT '',
       done_at BIGINT
     );
     CREATE TABLE audit (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       at BIGINT NOT NULL,
       actor TEXT NOT NULL,
       role TEXT NOT NULL,
       via TEXT NOT NULL,
       action TEXT NOT NULL,
       run_id BIGINT,
       revert_id BIGINT,
       detail TEXT NOT NULL,
       outcome TEXT NOT NULL,
       error TEXT
     );
     CREATE TABLE feedback (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       run_id BIGINT NOT NULL REFERENCES runs(id),
       at BIGINT NOT NULL,
       by TEXT NOT NULL,
       verdict TEXT NOT NULL,
       note TEXT NOT NULL
     );
     CREATE TABLE sns_messages (
       message_id TEXT PRIMARY KEY,
       topic TEXT NOT NULL,
       received_at BIGINT NOT NULL
     );
     CREATE INDEX sns_messages_by_time ON sns_messages(received_at);
     CREATE INDEX feedback_by_run ON feedback(run_id);
     CREATE INDEX audit_by_run ON audit(run_id) WHERE run_id IS NOT NULL;
     CREATE INDEX reverts_pending ON reverts(state, fingerprint);
     CREATE INDEX reverts_by_run ON reverts(run_id);
     CREATE INDEX runs_by_alert ON runs(alert_id);
     CREATE INDEX suppressions_by_alert ON suppressions(alert_id);
     CREATE INDEX runs_needing_a_human ON runs(id) WHERE state IN ('escalated', 'interrupted');
     CREATE TABLE action_starts (at BIGINT NOT NULL);
     CREATE INDEX action_starts_by_time ON action_starts(at);
     CREATE INDEX alerts_unprocessed ON alerts(id) WHERE NOT processed;
     CREATE INDEX alerts_by_episode ON alerts(fingerprint, starts_at);
     CREATE INDEX runs_unfinished ON runs(id) WHERE finished_at IS NULL;
     CREATE INDEX runs_by_cooldown ON runs(rule, cooldown_key, started_at);
     CREATE INDEX runs_by_concurrency ON runs(rule, concurrency_key) WHERE finished_at IS NULL;
     CREATE INDEX task_events_by_run ON task_events(run_id);",
    // 1 -> 2: nodes, their leases and fencing numbers, and the owner of each run (note 032).
    // Time is the database's, in Unix milliseconds, so the nodes' clocks do not matter.
    "CREATE FUNCTION medic_now() RETURNS BIGINT LANGUAGE SQL VOLATILE
       AS $$ SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT $$;
     CREATE SEQUENCE medic_fences;
     CREATE TABLE nodes (
       id TEXT PRIMARY KEY,
       fence BIGINT NOT NULL,
       lease_until BIGINT NOT NULL
     );
     ALTER TABLE runs ADD COLUMN owner TEXT, ADD COLUMN fence BIGINT;
     CREATE INDEX runs_unfinished_by_owner ON runs(owner) WHERE finished_at IS NULL;",
    // 2 -> 3: the node that accepted each alert (another takes over those it left
    // unprocessed when it died) and the node that claimed each revert (only its own reverts
    // in flight are its to report after a restart).
    "ALTER TABLE alerts ADD COLUMN node TEXT;
     ALTER TABLE reverts ADD COLUMN claimed_by TEXT;
     CREATE INDEX alerts_unprocessed_by_node ON alerts(node) WHERE NOT processed;",
    // 3 -> 4: operators' requests for runs owned by another node (approve, reject, pause,
    // resume, cancel): the node that owns the run performs them and writes the answer
    // (`pg/controls.rs`).
    "CREATE TABLE controls (
       id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       run_id BIGINT NOT NULL REFERENCES runs(id),
       request TEXT NOT NULL,
       requested_by TEXT NOT NULL,
       requested_at BIGINT NOT NULL,
       state TEXT NOT NULL DEFAULT 'requested',
       answer TEXT,
       answered_by TEXT,
       answered_at BIGINT
     );
     CREATE INDEX controls_requested ON controls(run_id) WHERE state = 'requested';",
    // 4 -> 5: `medic_now()` STABLE rather than VOLATILE, so that a condition on it can use an
    // index (evaluated once when the scan starts). VOLATILE, the rate window's
    // `action_starts` was scanned whole, calling the function per row, at every action start:
    // quadratic in the actions of the last hour (found by bench/ha). Its value may still
    // advance within a statement; nothing relies on it not doing so.
    "CREATE OR REPLACE FUNCTION medic_now() RETURNS BIGINT LANGUAGE SQL STABLE
       AS $$ SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT $$;",
    // 5 -> 6: the rate window counted per second of the database's clock, so that deciding
    // an action start reads at most 61 rows rather than every start of the last minute
    // (which grew with the rate itself: found by bench/ha). Seeded from `action_starts`.
    "CREATE TABLE action_rate (second BIGINT PRIMARY KEY, starts BIGINT NOT NULL);
     INSERT INTO action_rate (second, starts)
       SELECT at / 1000, COUNT(*) FROM action_starts WHERE at > medic_now() - 120000
       GROUP BY at / 1000;",
];

/// The schema version this Medic writes.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The limits every session of the store runs under: a transaction left idle (its node
/// paused or cut off) is ended by the server after 10 s, a lock is waited for at most 10 s,
/// and a statement runs at most 30 s.
const SESSION_OPTIONS: &str =
    "-c idle_in_transaction_session_timeout=10s -c lock_timeout=10s -c statement_timeout=30s";

/// The advisory lock (its first key) under which a node migrates the schema.
const MIGRATION_LOCK: i32 = 0x6d65_6401;
/// The advisory lock (first key; the second is 0) under which every decision made across
/// nodes is taken: admissions (episode, cooldown, concurrency) and action starts (the kill
/// switch and the rate window). One lock, not one per rule: a group holds it until it
/// commits, and with a single lock two groups cannot wait for each other (note 032).
const DECISION_LOCK: i32 = 0x6d65_6402;

const RUN_COLUMNS: &str = "id, rule, playbook, alert_id, fingerprint, performs_actions, arguments, state, started_at, finished_at, report, (SELECT alerts.starts_at FROM alerts WHERE alerts.id = runs.alert_id)";
const REVERT_COLUMNS: &str =
    "id, run_id, task, function, arguments, output, fingerprint, due_at, on_resolve, state, detail";

fn database_error(operation: &'static str) -> impl FnOnce(postgres::Error) -> JournalError {
    move |source| JournalError::Database { operation, source }
}

/// `postgres://host:port/database` without the user and password, for messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a connection string that is not a URL)".into();
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("{scheme}://{rest}")
}

fn run_row(row: &postgres::Row) -> Result<RunRow, postgres::Error> {
    Ok(RunRow {
        id: row.try_get(0)?,
        rule: row.try_get(1)?,
        playbook: row.try_get(2)?,
        alert_id: row.try_get(3)?,
        fingerprint: row.try_get(4)?,
        performs_actions: row.try_get(5)?,
        arguments: row.try_get(6)?,
        state: row.try_get(7)?,
        started_at: row.try_get(8)?,
        finished_at: row.try_get(9)?,
        report: row.try_get(10)?,
        episode_starts_at: row.try_get(11)?,
    })
}

fn revert_row(row: &postgres::Row) -> Result<RevertRow, postgres::Error> {
    Ok(RevertRow {
        id: row.try_get(0)?,
        run_id: row.try_get(1)?,
        task: row.try_get(2)?,
        function: row.try_get(3)?,
        arguments: row.try_get(4)?,
        output: row.try_get(5)?,
        fingerprint: row.try_get(6)?,
        due_at: row.try_get(7)?,
        on_resolve: row.try_get(8)?,
        state: row.try_get(9)?,
        detail: row.try_get(10)?,
    })
}

fn audit_row(row: &postgres::Row) -> Result<AuditEntry, postgres::Error> {
    Ok(AuditEntry {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        actor: row.try_get(2)?,
        role: row.try_get(3)?,
        via: row.try_get(4)?,
        action: row.try_get(5)?,
        run_id: row.try_get(6)?,
        revert_id: row.try_get(7)?,
        detail: row.try_get(8)?,
        outcome: row.try_get(9)?,
        error: row.try_get(10)?,
    })
}

fn suppression_row(row: &postgres::Row) -> Result<SuppressionRow, postgres::Error> {
    Ok(SuppressionRow {
        alert_id: row.try_get(0)?,
        rule: row.try_get(1)?,
        reason: row.try_get(2)?,
        detail: row.try_get(3)?,
        at: row.try_get(4)?,
    })
}

fn stored_alert(row: &postgres::Row) -> Result<StoredAlert, postgres::Error> {
    Ok(StoredAlert {
        id: row.try_get(0)?,
        source: row.try_get(1)?,
        payload: row.try_get(2)?,
    })
}

fn first_column<T: for<'a> postgres::types::FromSql<'a>>(
    row: &postgres::Row,
) -> Result<T, postgres::Error> {
    row.try_get(0)
}

/// A node's lease: its name, the fencing number of its current registration (larger than
/// any before it), and until when it holds (the database's time, Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub node: String,
    pub fence: i64,
    pub until: i64,
}

/// The condition a fenced write of run `$run` holds under: the run is the node's (`$node`)
/// under its current fencing number (`$fence`), and the node's lease has not lapsed. The
/// run's row is share-locked, so a takeover waits for the write to commit and then sees it.
fn owns(run: &str, node: &str, fence: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM runs AS owned JOIN nodes ON nodes.id = owned.owner
           WHERE owned.id = {run} AND owned.owner = {node} AND owned.fence = {fence}
           AND nodes.fence = {fence} AND nodes.lease_until > medic_now() FOR SHARE OF owned)"
    )
}

/// The journal on PostgreSQL; see the module docs.
pub struct PgJournal {
    url: String,
    client: Session,
    /// Inside a group of [`super::JournalHandle`] (a transaction it opened): writes run in
    /// it, each in the handle's savepoint.
    in_group: bool,
    /// A savepoint could not be rolled back: the group's transaction is unusable and must
    /// not be committed.
    group_broken: bool,
    /// The last write's savepoint is still to be released: done with the next write's
    /// `SAVEPOINT`, in the same round trip, or by the group's `COMMIT`.
    release_pending: bool,
    /// This node's lease, once registered ([`PgJournal::register`]): from then on every
    /// write for a run is fenced by it, runs it admits are its own, and the unfinished runs
    /// are its own.
    lease: Option<Lease>,
    /// Whether this connection listens for operators' requests ([`PgJournal::listen`]):
    /// a replaced connection listens again.
    listening: bool,
}

mod controls;
mod session;
pub use controls::{ControlRequest, Requested};
use session::Session;

impl PgJournal {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the schema
    /// to [`PG_SCHEMA_VERSION`], waiting for another node that is migrating it.
    ///
    /// The blocking client drives a runtime of its own, which cannot be started on a thread
    /// that drives one (`medic serve` opens its store inside tokio): the connection is made on
    /// a thread of its own. Use the journal on a thread without a runtime, as
    /// [`super::JournalHandle`]'s writer thread is.
    pub fn open(url: &str) -> Result<PgJournal, JournalError> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("medic-pg-open".into())
                .spawn_scoped(scope, || PgJournal::open_here(url))
                .map_err(|error| {
                    JournalError::Commit(format!("cannot start a thread to connect: {error}"))
                })?
                .join()
                .unwrap_or_else(|_| {
                    Err(JournalError::Commit(
                        "connecting to PostgreSQL failed unexpectedly".into(),
                    ))
                })
        })
    }

    fn open_here(url: &str) -> Result<PgJournal, JournalError> {
        let mut client = connect(url)?;
        migrate(&mut client)?;
        Ok(PgJournal {
            url: url.to_string(),
            client: Session::new(client),
            in_group: false,
            group_broken: false,
            release_pending: false,
            lease: None,
            listening: false,
        })
    }

    /// The live connection, replaced first when the previous one broke (never inside a
    /// group: its transaction went with the connection).
    fn client(&mut self) -> Result<&mut Session, JournalError> {
        if self.client.is_closed() {
            if self.in_group {
                return Err(JournalError::Commit(
                    "the connection to PostgreSQL broke during the transaction".into(),
                ));
            }
            self.client = Session::new(connect(&self.url)?);
            if self.listening {
                self.client
                    .batch_execute(controls::LISTEN)
                    .map_err(database_error("listening for operators' requests"))?;
            }
        }
        Ok(&mut self.client)
    }

    /// Runs `work` atomically: inside the handle's group (whose savepoint frames each
    /// write), or in a transaction of its own.
    fn atomically<T>(
        &mut self,
        operation: &'static str,
        work: impl FnOnce(&mut Session) -> Result<T, postgres::Error>,
    ) -> Result<T, JournalError> {
        let in_group = self.in_group;
        let client = self.client()?;
        if in_group {
            return work(client).map_err(database_error(operation));
        }
        client
            .batch_execute("BEGIN")
            .map_err(database_error(operation))?;
        match work(client) {
            Ok(value) => {
                client
                    .batch_execute("COMMIT")
                    .map_err(database_error(operation))?;
                Ok(value)
            }
            Err(error) => {
                // A rollback that fails leaves a broken connection, replaced on the next call.
                let _ = client.batch_execute("ROLLBACK");
                Err(database_error(operation)(error))
            }
        }
    }

    // ------------------------------------------------------------ the handle's protocol

    /// Opens a group's transaction (see [`super::JournalHandle`]).
    pub(super) fn group_begin(&mut self) -> Result<(), JournalError> {
        self.client()?
            .batch_execute("BEGIN")
            .map_err(|error| JournalError::Commit(error.to_string()))?;
        self.in_group = true;
        self.group_broken = false;
        self.release_pending = false;
        Ok(())
    }

    /// Commits the group; refuses when a write could not be undone.
    pub(super) fn group_commit(&mut self) -> Result<(), JournalError> {
        if self.group_broken {
            return Err(JournalError::Commit(
                "a write of the group could not be undone; the group is rolled back".into(),
            ));
        }
        let committed = self
            .client
            .batch_execute("COMMIT")
            .map_err(|error| JournalError::Commit(error.to_string()));
        self.in_group = false;
        self.release_pending = false;
        committed
    }

    pub(super) fn group_rollback(&mut self) {
        // Nothing more can be done if even this fails: the connection is replaced next.
        let _ = self.client.batch_execute("ROLLBACK");
        self.in_group = false;
        self.release_pending = false;
    }

    /// Each write of a group in a savepoint of its own, as on SQLite: a failed statement
    /// would otherwise abort the whole transaction (PostgreSQL, unlike SQLite, undoes
    /// nothing by itself). A kept write's savepoint is released with the next write's
    /// `SAVEPOINT` (one round trip for both) or by the `COMMIT`.
    ///
    /// A statement that fails aborts the transaction, and a `COMMIT` of an aborted
    /// transaction rolls it back without an error: a savepoint that cannot be opened or
    /// undone marks the group broken, so that it is refused rather than reported committed.
    pub(super) fn write_begin(&mut self) -> bool {
        let sql = if std::mem::take(&mut self.release_pending) {
            "RELEASE medic_write; SAVEPOINT medic_write"
        } else {
            "SAVEPOINT medic_write"
        };
        let began = self.client.batch_execute(sql).is_ok();
        if !began {
            self.group_broken = true;
        }
        began
    }

    pub(super) fn write_end(&mut self, keep: bool) {
        if keep {
            self.release_pending = true;
            return;
        }
        if self
            .client
            .batch_execute("ROLLBACK TO medic_write; RELEASE medic_write")
            .is_err()
        {
            self.group_broken = true;
        }
    }

    /// Runs a statement; how many rows it changed.
    fn execute(
        &mut self,
        operation: &'static str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, JournalError> {
        self.client()?
            .execute(sql, params)
            .map_err(database_error(operation))
    }

    /// The rows a query answers, each mapped.
    fn rows<T>(
        &mut self,
        operation: &'static str,
        sql: &str,
        params: Params<'_>,
        map: impl Fn(&postgres::Row) -> Result<T, postgres::Error>,
    ) -> Result<Vec<T>, JournalError> {
        self.client()?
            .query(sql, params)
            .map_err(database_error(operation))?
            .iter()
            .map(map)
            .collect::<Result<_, _>>()
            .map_err(database_error(operation))
    }

    /// The row a query answers, if any, mapped.
    fn row<T>(
        &mut self,
        operation: &'static str,
        sql: &str,
        params: Params<'_>,
        map: impl Fn(&postgres::Row) -> Result<T, postgres::Error>,
    ) -> Result<Option<T>, JournalError> {
        self.client()?
            .query_opt(sql, params)
            .map_err(database_error(operation))?
            .as_ref()
            .map(map)
            .transpose()
            .map_err(database_error(operation))
    }

    /// Runs statements atomically; how many rows each changed.
    fn in_transaction(
        &mut self,
        operation: &'static str,
        statements: &[(&str, Params<'_>)],
    ) -> Result<Vec<u64>, JournalError> {
        self.atomically(operation, |client| {
            statements
                .iter()
                .map(|(sql, params)| client.execute(sql, params))
                .collect()
        })
    }

    /// The schema version the store holds, as written.
    pub fn schema_version(&mut self) -> Result<Option<String>, JournalError> {
        self.row(
            "reading the schema version",
            "SELECT value FROM meta WHERE key = 'schema_version'",
            &[],
            first_column,
        )
    }

    /// Makes a batch of alerts durable at once (committed when this returns); returns their
    /// ids in order.
    pub fn accept(
        &mut self,
        alerts: &[AcceptedAlert],
        received_at: i64,
    ) -> Result<Vec<i64>, JournalError> {
        let node = self.lease.as_ref().map(|lease| lease.node.clone());
        self.atomically("accepting alerts", |client| {
            let mut ids = Vec::with_capacity(alerts.len());
            for alert in alerts {
                let row = client.query_one(
                    "INSERT INTO alerts (received_at, source, name, status, fingerprint, starts_at, payload, processed, node)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    &[
                        &received_at,
                        &alert.source,
                        &alert.name,
                        &alert.status,
                        &alert.fingerprint,
                        &alert.starts_at,
                        &alert.payload,
                        &alert.processed,
                        &node,
                    ],
                )?;
                ids.push(row.try_get(0)?);
            }
            Ok(ids)
        })
    }

    /// Marks an alert as matched and acted upon: no node processes it again.
    pub fn processed(&mut self, alert_id: i64) -> Result<(), JournalError> {
        self.execute(
            "marking an alert processed",
            "UPDATE alerts SET processed = TRUE WHERE id = $1",
            &[&alert_id],
        )
        .map(drop)
    }

    /// Alerts accepted but not processed, oldest first: once registered, those this node
    /// accepted (another node's are its own, or taken over by [`PgJournal::take_over_alerts`]).
    pub fn unprocessed_alerts(&mut self) -> Result<Vec<StoredAlert>, JournalError> {
        match self.lease.clone() {
            None => self.rows(
                "reading unprocessed alerts",
                "SELECT id, source, payload FROM alerts WHERE NOT processed ORDER BY id",
                &[],
                stored_alert,
            ),
            Some(lease) => self.rows(
                "reading unprocessed alerts",
                "SELECT id, source, payload FROM alerts WHERE NOT processed
                 AND (node = $1 OR node IS NULL) ORDER BY id",
                &[&lease.node],
                stored_alert,
            ),
        }
    }

    /// Takes the unprocessed alerts of nodes whose lease lapsed more than `grace_ms` ago,
    /// while this node's lease holds; they are this node's to process from now on.
    pub fn take_over_alerts(&mut self, grace_ms: i64) -> Result<Vec<StoredAlert>, JournalError> {
        let Some(lease) = self.lease.clone() else {
            return Ok(Vec::new());
        };
        self.rows(
            "taking over alerts",
            "UPDATE alerts SET node = $1
             WHERE id IN (SELECT id FROM alerts WHERE NOT processed
                 AND node IN (SELECT id FROM nodes WHERE id <> $1 AND lease_until + $3 < medic_now())
                 FOR UPDATE SKIP LOCKED)
             AND EXISTS (SELECT 1 FROM nodes WHERE id = $1 AND fence = $2 AND lease_until > medic_now())
             RETURNING id, source, payload",
            &[&lease.node, &lease.fence, &grace_ms],
            stored_alert,
        )
        .map(|mut alerts| {
            alerts.sort_by_key(|alert| alert.id);
            alerts
        })
    }

    /// Starts a run of a rule for an alert, unless its firing episode already started one,
    /// its cooldown key is cooling down, or its concurrency key is taken, deciding all three
    /// in one transaction that every other admission of the rule waits for.
    pub fn admit(&mut self, admission: &Admission) -> Result<Admitted, JournalError> {
        let lease = self.lease.clone();
        let admitted = self.atomically("starting a run", |client| {
            admit_in(client, admission, lease.as_ref())
        })?;
        match (admitted, lease) {
            (Some(admitted), _) => Ok(admitted),
            (None, Some(lease)) => Err(JournalError::Fenced {
                run_id: None,
                node: lease.node,
                fence: lease.fence,
            }),
            (None, None) => Err(JournalError::Commit("starting a run: no answer".into())),
        }
    }

    pub fn task_event(
        &mut self,
        run_id: i64,
        task: &str,
        state: &str,
        detail: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        let operation = "recording a task transition";
        match self.lease.clone() {
            None => self
                .execute(
                    operation,
                    "INSERT INTO task_events (run_id, task, state, at, detail) VALUES ($1, $2, $3, $4, $5)",
                    &[&run_id, &task, &state, &at, &detail],
                )
                .map(drop),
            Some(lease) => {
                let sql = format!(
                    "INSERT INTO task_events (run_id, task, state, at, detail)
                     SELECT $1, $2, $3, $4, $5 WHERE {}",
                    owns("$1", "$6", "$7")
                );
                let written = self.execute(
                    operation,
                    &sql,
                    &[&run_id, &task, &state, &at, &detail, &lease.node, &lease.fence],
                )?;
                fenced(written, run_id, &lease)
            }
        }
    }

    /// A run's task transitions, in the order they were recorded.
    pub fn task_events(&mut self, run_id: i64) -> Result<Vec<super::TaskEventRow>, JournalError> {
        self.rows(
            "reading task transitions",
            "SELECT task, state, at, detail FROM task_events WHERE run_id = $1 ORDER BY id",
            &[&run_id],
            |row| {
                Ok(super::TaskEventRow {
                    task: row.try_get(0)?,
                    state: row.try_get(1)?,
                    at: row.try_get(2)?,
                    detail: row.try_get(3)?,
                })
            },
        )
    }

    /// Sets the state of a run that goes on (`running`, `paused`).
    pub fn run_state(&mut self, run_id: i64, state: &str) -> Result<(), JournalError> {
        let operation = "changing a run's state";
        match self.lease.clone() {
            None => self
                .execute(
                    operation,
                    "UPDATE runs SET state = $2 WHERE id = $1 AND finished_at IS NULL",
                    &[&run_id, &state],
                )
                .map(drop),
            Some(lease) => {
                let sql = format!(
                    "UPDATE runs SET state = $2 WHERE id = $1 AND finished_at IS NULL AND {}",
                    owns("$1", "$3", "$4")
                );
                let changed = self.execute(
                    operation,
                    &sql,
                    &[&run_id, &state, &lease.node, &lease.fence],
                )?;
                if changed > 0 {
                    return Ok(());
                }
                // A finished run changes no row either: that one is still ours, and fine.
                let sql = format!("SELECT 1 WHERE {}", owns("$1", "$2", "$3"));
                let ours = self.row(
                    operation,
                    &sql,
                    &[&run_id, &lease.node, &lease.fence],
                    |_| Ok(()),
                )?;
                fenced(u64::from(ours.is_some()), run_id, &lease)
            }
        }
    }

    /// Closes a run with its final state and report.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        state: &str,
        report: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        let operation = "finishing a run";
        match self.lease.clone() {
            None => self
                .execute(
                    operation,
                    "UPDATE runs SET state = $2, report = $3, finished_at = $4 WHERE id = $1",
                    &[&run_id, &state, &report, &at],
                )
                .map(drop),
            Some(lease) => {
                let sql = format!(
                    "UPDATE runs SET state = $2, report = $3, finished_at = $4 WHERE id = $1 AND {}",
                    owns("$1", "$5", "$6")
                );
                let changed = self.execute(
                    operation,
                    &sql,
                    &[&run_id, &state, &report, &at, &lease.node, &lease.fence],
                )?;
                fenced(changed, run_id, &lease)
            }
        }
    }

    /// Records why an alert did not start a rule's playbook (cooldown, duplicate, ...).
    pub fn suppress(
        &mut self,
        alert_id: i64,
        rule: &str,
        reason: &str,
        detail: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        self.execute(
            "recording a suppression",
            "INSERT INTO suppressions (alert_id, rule, reason, detail, at) VALUES ($1, $2, $3, $4, $5)",
            &[&alert_id, &rule, &reason, &detail, &at],
        )
        .map(drop)
    }

    /// Runs that were started and never finished, oldest first: this node's own once it
    /// holds a lease (the others' are taken over by [`PgJournal::take_over`], or are theirs).
    pub fn unfinished_runs(&mut self) -> Result<Vec<RunRow>, JournalError> {
        match self.lease.clone() {
            None => self.query_runs(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NULL ORDER BY id"),
                &[],
            ),
            Some(lease) => self.query_runs(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NULL AND owner = $1
                     AND fence = $2 ORDER BY id"
                ),
                &[&lease.node, &lease.fence],
            ),
        }
    }

    // ------------------------------------------------------------ leases

    /// Registers this node as `node` with a lease of `ttl_ms`, under a new fencing number
    /// larger than every one before it (a node started again under the same name gets a new
    /// one, so whatever its previous life still had in flight is refused).
    pub fn register(&mut self, node: &str, ttl_ms: i64) -> Result<Lease, JournalError> {
        let lease = self
            .row(
                "registering the node",
                "INSERT INTO nodes (id, fence, lease_until) VALUES ($1, nextval('medic_fences'), medic_now() + $2)
                 ON CONFLICT (id) DO UPDATE SET fence = nextval('medic_fences'), lease_until = medic_now() + $2
                 RETURNING fence, lease_until",
                &[&node, &ttl_ms],
                |row| {
                    Ok(Lease {
                        node: node.to_string(),
                        fence: row.try_get(0)?,
                        until: row.try_get(1)?,
                    })
                },
            )?
            .ok_or(JournalError::Commit("registering the node: no row came back".into()))?;
        self.lease = Some(lease.clone());
        Ok(lease)
    }

    /// Extends the lease by `ttl_ms` from now; `false` when it had lapsed (or another
    /// registration under the same name replaced it): this node must stop its runs and
    /// register again.
    pub fn renew(&mut self, ttl_ms: i64) -> Result<bool, JournalError> {
        let Some(lease) = self.lease.clone() else {
            return Ok(false);
        };
        let until: Option<i64> = self.row(
            "renewing the lease",
            "UPDATE nodes SET lease_until = medic_now() + $3
             WHERE id = $1 AND fence = $2 AND lease_until > medic_now() RETURNING lease_until",
            &[&lease.node, &lease.fence, &ttl_ms],
            first_column,
        )?;
        if let (Some(until), Some(held)) = (until, self.lease.as_mut()) {
            held.until = until;
        }
        Ok(until.is_some())
    }

    /// Takes `lease` as this connection's own: a node registers on its heartbeat's
    /// connection, and its journal's connection writes under the same lease.
    pub fn adopt(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    /// Takes the reverts that nodes whose lease lapsed more than `grace_ms` ago had in
    /// flight: nobody knows whether they took effect, so they go to a human.
    pub fn take_over_reverts(&mut self, grace_ms: i64) -> Result<Vec<RevertRow>, JournalError> {
        let Some(lease) = self.lease.clone() else {
            return Ok(Vec::new());
        };
        self.rows(
            "taking over reverts",
            &format!(
                "UPDATE reverts SET claimed_by = $1
                 WHERE id IN (SELECT id FROM reverts WHERE state = 'reverting'
                     AND claimed_by IN (SELECT id FROM nodes WHERE id <> $1 AND lease_until + $3 < medic_now())
                     FOR UPDATE SKIP LOCKED)
                 AND EXISTS (SELECT 1 FROM nodes WHERE id = $1 AND fence = $2 AND lease_until > medic_now())
                 RETURNING {REVERT_COLUMNS}"
            ),
            &[&lease.node, &lease.fence, &grace_ms],
            revert_row,
        )
    }

    /// The lease this node holds, as last registered or renewed.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// Takes the unfinished runs of nodes whose lease lapsed more than `grace_ms` ago, and
    /// this node's own runs from an earlier registration, while this node's lease holds;
    /// their ids, to resume or close as crash recovery does. Runs whose rows are locked are
    /// left for the next call.
    pub fn take_over(&mut self, grace_ms: i64) -> Result<Vec<i64>, JournalError> {
        let Some(lease) = self.lease.clone() else {
            return Ok(Vec::new());
        };
        self.rows(
            "taking over runs",
            // A run whose row is locked right now (its owner is writing, or is paused in the
            // middle of a write) is skipped, not waited for: the next sweep takes it.
            "UPDATE runs SET owner = $1, fence = $2
             WHERE id IN (SELECT id FROM runs WHERE finished_at IS NULL
                 AND ((owner = $1 AND fence < $2) OR owner IS NULL
                      OR owner IN (SELECT id FROM nodes WHERE id <> $1 AND lease_until + $3 < medic_now()))
                 FOR UPDATE SKIP LOCKED)
             AND EXISTS (SELECT 1 FROM nodes WHERE id = $1 AND fence = $2 AND lease_until > medic_now())
             RETURNING id",
            &[&lease.node, &lease.fence, &grace_ms],
            first_column,
        )
    }

    /// Whether run `id` is unfinished and this node's under its current lease.
    pub fn owns_unfinished(&mut self, id: i64) -> Result<bool, JournalError> {
        let Some(lease) = self.lease.clone() else {
            return Ok(false);
        };
        Ok(self
            .row(
                "reading a run's owner",
                "SELECT 1 FROM runs WHERE id = $1 AND finished_at IS NULL AND owner = $2 AND fence = $3",
                &[&id, &lease.node, &lease.fence],
                |_| Ok(()),
            )?
            .is_some())
    }

    /// The most recent runs, newest first.
    pub fn runs(&mut self, limit: u32) -> Result<Vec<RunRow>, JournalError> {
        self.query_runs(
            &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1"),
            &[&i64::from(limit)],
        )
    }

    pub fn run(&mut self, run_id: i64) -> Result<Option<RunRow>, JournalError> {
        Ok(self
            .query_runs(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
                &[&run_id],
            )?
            .into_iter()
            .next())
    }

    /// The playbook definition a run started with.
    pub fn run_definition(&mut self, run_id: i64) -> Result<Option<String>, JournalError> {
        self.row(
            "reading a run's playbook",
            "SELECT definitions.body FROM runs JOIN definitions ON definitions.key = runs.definition
             WHERE runs.id = $1",
            &[&run_id],
            first_column,
        )
    }

    /// Records that an action started at `at`, and forgets the starts of more than an hour
    /// before: the rate limit's window, shared by every node.
    pub fn action_started(&mut self, at: i64) -> Result<(), JournalError> {
        self.atomically("recording an action start", |client| {
            client.execute(
                "DELETE FROM action_starts WHERE at < $1",
                &[&at.saturating_sub(3_600_000)],
            )?;
            client.execute("INSERT INTO action_starts (at) VALUES ($1)", &[&at])?;
            Ok(())
        })
    }

    /// Decides, for every node at once, whether an action may start now, and if `count`
    /// (its first attempt) takes its place in the rate window: refused while the kill switch
    /// is on, or when `limit` actions started in the last minute of the database's time.
    /// Taken under the decision lock, in the write that records the action's `started`.
    pub fn start_action(&mut self, count: bool, limit: Option<u32>) -> Result<(), JournalError> {
        let refusal = self.atomically("deciding an action start", |client| {
            client.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&DECISION_LOCK])?;
            let switch: Option<String> = client
                .query_opt("SELECT value FROM meta WHERE key = 'kill_switch'", &[])?
                .map(|row| row.try_get(0))
                .transpose()?;
            if switch.as_deref() == Some("on") {
                return Ok(Some(
                    "the kill switch is on (on some node of the cluster): no action may run"
                        .to_string(),
                ));
            }
            if !count {
                return Ok(None);
            }
            // The window is the current second of the database's clock and the 60 before it:
            // never shorter than a minute, so never more than `limit` starts in any minute.
            if let Some(limit) = limit.filter(|limit| *limit > 0) {
                let recent: i64 = client
                    .query_one(
                        "SELECT COALESCE(SUM(starts), 0)::BIGINT FROM action_rate
                         WHERE second >= medic_now() / 1000 - 60",
                        &[],
                    )?
                    .try_get(0)?;
                if recent >= i64::from(limit) {
                    return Ok(Some(format!(
                        "rate limited: {limit} actions already ran in the last minute, across the cluster"
                    )));
                }
            }
            client.execute(
                "DELETE FROM action_starts WHERE at < medic_now() - 3600000",
                &[],
            )?;
            client.execute("INSERT INTO action_starts (at) VALUES (medic_now())", &[])?;
            client.execute(
                "INSERT INTO action_rate (second, starts) VALUES (medic_now() / 1000, 1)
                 ON CONFLICT (second) DO UPDATE SET starts = action_rate.starts + 1",
                &[],
            )?;
            client.execute(
                "DELETE FROM action_rate WHERE second < medic_now() / 1000 - 120",
                &[],
            )?;
            Ok(None)
        })?;
        match refusal {
            Some(reason) => Err(JournalError::Refused(reason)),
            None => Ok(()),
        }
    }

    /// When the actions started since `since` started, oldest first.
    pub fn action_starts_since(&mut self, since: i64) -> Result<Vec<i64>, JournalError> {
        self.rows(
            "reading action starts",
            "SELECT at FROM action_starts WHERE at > $1 ORDER BY at",
            &[&since],
            first_column,
        )
    }

    pub fn suppressions(&mut self, limit: u32) -> Result<Vec<SuppressionRow>, JournalError> {
        self.rows(
            "reading suppressions",
            "SELECT alert_id, rule, reason, detail, at FROM suppressions ORDER BY id DESC LIMIT $1",
            &[&i64::from(limit)],
            suppression_row,
        )
    }

    pub fn alert_count(&mut self) -> Result<i64, JournalError> {
        Ok(self
            .row(
                "counting alerts",
                "SELECT COUNT(*) FROM alerts",
                &[],
                first_column,
            )?
            .unwrap_or(0))
    }

    /// The raw payload an alert came in, with its source.
    pub fn alert(&mut self, alert_id: i64) -> Result<Option<StoredAlert>, JournalError> {
        self.row(
            "reading an alert",
            "SELECT id, source, payload FROM alerts WHERE id = $1",
            &[&alert_id],
            stored_alert,
        )
    }

    /// A setting every node shares (the kill switch).
    pub fn setting(&mut self, key: &str) -> Result<Option<String>, JournalError> {
        self.row(
            "reading a setting",
            "SELECT value FROM meta WHERE key = $1",
            &[&key],
            first_column,
        )
    }

    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), JournalError> {
        self.execute(
            "writing a setting",
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .map(drop)
    }

    // ------------------------------------------------------------ reverts

    /// Schedules the undoing of an action; returns the revert's id.
    #[expect(clippy::too_many_arguments, reason = "one column each")]
    pub fn schedule_revert(
        &mut self,
        run_id: i64,
        task: &str,
        function: &str,
        arguments: &str,
        output: &str,
        fingerprint: &str,
        due_at: Option<i64>,
        on_resolve: bool,
    ) -> Result<i64, JournalError> {
        let operation = "scheduling a revert";
        self.row(
            operation,
            "INSERT INTO reverts (run_id, task, function, arguments, output, fingerprint, due_at, on_resolve, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending') RETURNING id",
            &[&run_id, &task, &function, &arguments, &output, &fingerprint, &due_at, &on_resolve],
            first_column,
        )?
        .ok_or(JournalError::Commit(format!("{operation}: no id came back")))
    }

    /// Takes a pending revert for performing it; `None` when another node, another timer or
    /// the resolved alert took it first (a revert is performed at most once, cluster-wide:
    /// the update is one statement, and PostgreSQL lets one of two racing ones change the row).
    pub fn claim_revert(&mut self, revert_id: i64) -> Result<Option<RevertRow>, JournalError> {
        let node = self.lease.as_ref().map(|lease| lease.node.clone());
        self.row(
            "claiming a revert",
            &format!(
                "UPDATE reverts SET state = 'reverting', claimed_by = $2 WHERE id = $1 AND state = 'pending'
                 RETURNING {REVERT_COLUMNS}"
            ),
            &[&revert_id, &node],
            revert_row,
        )
    }

    /// Gives back a revert this node claimed and did not perform (its lease lapsed in
    /// between): pending again, for the next claim.
    pub fn release_revert(&mut self, revert_id: i64) -> Result<(), JournalError> {
        let node = self.lease.as_ref().map(|lease| lease.node.clone());
        self.execute(
            "giving a revert back",
            "UPDATE reverts SET state = 'pending', claimed_by = NULL
             WHERE id = $1 AND state = 'reverting' AND claimed_by IS NOT DISTINCT FROM $2",
            &[&revert_id, &node],
        )
        .map(drop)
    }

    /// The pending `revert on resolve` reverts of one firing episode.
    pub fn reverts_on_resolve(
        &mut self,
        fingerprint: &str,
        starts_at: i64,
    ) -> Result<Vec<i64>, JournalError> {
        self.rows(
            "reading reverts",
            "SELECT reverts.id FROM reverts
             JOIN runs ON runs.id = reverts.run_id
             JOIN alerts ON alerts.id = runs.alert_id
             WHERE reverts.state = 'pending' AND reverts.on_resolve
             AND reverts.fingerprint = $1 AND alerts.starts_at = $2 ORDER BY reverts.id",
            &[&fingerprint, &starts_at],
            first_column,
        )
    }

    /// Reverts in a given state.
    pub fn reverts(&mut self, state: &str) -> Result<Vec<RevertRow>, JournalError> {
        match (state, self.lease.clone()) {
            // A revert in flight is the business of the node performing it: once registered,
            // this node reports its own, and those of nodes whose lease lapsed.
            ("reverting", Some(lease)) => self.rows(
                "reading reverts",
                &format!(
                    "SELECT {REVERT_COLUMNS} FROM reverts WHERE state = 'reverting'
                     AND (claimed_by IS NULL OR claimed_by = $1
                          OR claimed_by IN (SELECT id FROM nodes WHERE id <> $1 AND lease_until < medic_now()))
                     ORDER BY id"
                ),
                &[&lease.node],
                revert_row,
            ),
            _ => self.rows(
                "reading reverts",
                &format!("SELECT {REVERT_COLUMNS} FROM reverts WHERE state = $1 ORDER BY id"),
                &[&state],
                revert_row,
            ),
        }
    }

    /// Pending `revert on resolve` reverts whose episode's resolved alert was already
    /// processed.
    pub fn reverts_already_resolved(&mut self) -> Result<Vec<i64>, JournalError> {
        self.rows(
            "reading reverts",
            "SELECT reverts.id FROM reverts
             JOIN runs ON runs.id = reverts.run_id
             JOIN alerts AS fired ON fired.id = runs.alert_id
             WHERE reverts.state = 'pending' AND reverts.on_resolve
             AND EXISTS (SELECT 1 FROM alerts AS resolved
               WHERE resolved.fingerprint = reverts.fingerprint
               AND resolved.starts_at = fired.starts_at
               AND resolved.status = 'resolved' AND resolved.processed)
             ORDER BY reverts.id",
            &[],
            first_column,
        )
    }

    /// One revert, in any state.
    pub fn revert(&mut self, revert_id: i64) -> Result<Option<RevertRow>, JournalError> {
        self.row(
            "reading a revert",
            &format!("SELECT {REVERT_COLUMNS} FROM reverts WHERE id = $1"),
            &[&revert_id],
            revert_row,
        )
    }

    /// A human asks for a `failed` or `needs_attention` revert to be tried again.
    pub fn reopen_revert(
        &mut self,
        revert_id: i64,
        by: &str,
        at: i64,
    ) -> Result<bool, JournalError> {
        self.revert_decision(
            "reopening a revert",
            "UPDATE reverts SET state = 'pending', done_at = NULL
             WHERE id = $1 AND state IN ('failed', 'needs_attention')",
            &[&revert_id],
            (revert_id, "revert_retry_requested", by, at),
        )
    }

    /// A human says a `failed` or `needs_attention` revert is taken care of.
    pub fn acknowledge_revert(
        &mut self,
        revert_id: i64,
        by: &str,
        reason: &str,
        at: i64,
    ) -> Result<bool, JournalError> {
        let detail = format!("{by}: {reason}");
        self.revert_decision(
            "acknowledging a revert",
            "UPDATE reverts SET state = 'acknowledged', detail = $2, done_at = $3
             WHERE id = $1 AND state IN ('failed', 'needs_attention')",
            &[&revert_id, &detail, &at],
            (revert_id, "revert_acknowledged", &detail, at),
        )
    }

    /// A human's decision on a revert, and the event on its run that says so, in one
    /// transaction; false when the revert was not in a state the decision applies to.
    fn revert_decision(
        &mut self,
        operation: &'static str,
        sql: &str,
        params: Params<'_>,
        (revert_id, state, detail, at): (i64, &str, &str, i64),
    ) -> Result<bool, JournalError> {
        self.atomically(operation, |client| {
            if client.execute(sql, params)? == 0 {
                return Ok(false);
            }
            client.execute(
                "INSERT INTO task_events (run_id, task, state, at, detail)
                 SELECT run_id, task, $2, $3, $4 FROM reverts WHERE id = $1",
                &[&revert_id, &state, &at, &detail],
            )?;
            Ok(true)
        })
    }

    /// How many reverts are in each state.
    pub fn revert_counts(&mut self) -> Result<BTreeMap<String, i64>, JournalError> {
        Ok(self
            .rows(
                "counting reverts",
                "SELECT state, COUNT(*) FROM reverts GROUP BY state",
                &[],
                |row| Ok((row.try_get(0)?, row.try_get(1)?)),
            )?
            .into_iter()
            .collect())
    }

    pub fn revert_done(
        &mut self,
        revert_id: i64,
        state: &str,
        detail: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        let Some(lease) = self.lease.clone() else {
            return self
                .execute(
                    "finishing a revert",
                    "UPDATE reverts SET state = $2, detail = $3, done_at = $4 WHERE id = $1",
                    &[&revert_id, &state, &detail, &at],
                )
                .map(drop);
        };
        // Once registered, only a revert still open and not claimed by another node: a node
        // that was paused after its claim finds the revert taken over (and handed to a
        // human) and does not overwrite that.
        let changed = self.execute(
            "finishing a revert",
            "UPDATE reverts SET state = $2, detail = $3, done_at = $4
             WHERE id = $1 AND (state = 'pending'
                                OR (state = 'reverting' AND (claimed_by IS NULL OR claimed_by = $5)))",
            &[&revert_id, &state, &detail, &at, &lease.node],
        )?;
        if changed == 0 {
            tracing::warn!(
                revert = revert_id,
                state,
                "not recorded: the revert was finished or taken over by another node"
            );
        }
        Ok(())
    }

    /// The reverts a run scheduled, in order.
    pub fn reverts_of_run(&mut self, run_id: i64) -> Result<Vec<RevertRow>, JournalError> {
        self.rows(
            "reading reverts",
            &format!("SELECT {REVERT_COLUMNS} FROM reverts WHERE run_id = $1 ORDER BY id"),
            &[&run_id],
            revert_row,
        )
    }

    // ------------------------------------------------------------ operators

    pub fn audit(&mut self, entry: &NewAuditEntry) -> Result<i64, JournalError> {
        let operation = "writing the audit log";
        let outcome = if entry.error.is_some() {
            "refused"
        } else {
            "done"
        };
        self.row(
            operation,
            "INSERT INTO audit (at, actor, role, via, action, run_id, revert_id, detail, outcome, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &[
                &entry.at,
                &entry.actor,
                &entry.role,
                &entry.via,
                &entry.action,
                &entry.run_id,
                &entry.revert_id,
                &entry.detail,
                &outcome,
                &entry.error,
            ],
            first_column,
        )?
        .ok_or(JournalError::Commit(format!("{operation}: no id came back")))
    }

    /// The audit log, newest first: at most `limit` entries older than the entry `before`
    /// (all when `None`), of one run when `run` is given.
    pub fn audit_log(
        &mut self,
        limit: u32,
        before: Option<i64>,
        run: Option<i64>,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        self.rows(
            "reading the audit log",
            "SELECT id, at, actor, role, via, action, run_id, revert_id, detail, outcome, error
             FROM audit WHERE ($2::BIGINT IS NULL OR id < $2) AND ($3::BIGINT IS NULL OR run_id = $3)
             ORDER BY id DESC LIMIT $1",
            &[&i64::from(limit), &before, &run],
            audit_row,
        )
    }

    pub fn add_feedback(&mut self, feedback: &FeedbackRow) -> Result<(), JournalError> {
        self.execute(
            "recording feedback",
            "INSERT INTO feedback (run_id, at, by, verdict, note) VALUES ($1, $2, $3, $4, $5)",
            &[
                &feedback.run_id,
                &feedback.at,
                &feedback.by,
                &feedback.verdict,
                &feedback.note,
            ],
        )
        .map(drop)
    }

    /// The answers given about one run, oldest first.
    pub fn feedback_of_run(&mut self, run_id: i64) -> Result<Vec<FeedbackRow>, JournalError> {
        self.rows(
            "reading feedback",
            "SELECT run_id, at, by, verdict, note FROM feedback WHERE run_id = $1 ORDER BY id",
            &[&run_id],
            |row| {
                Ok(FeedbackRow {
                    run_id: row.try_get(0)?,
                    at: row.try_get(1)?,
                    by: row.try_get(2)?,
                    verdict: row.try_get(3)?,
                    note: row.try_get(4)?,
                })
            },
        )
    }

    // ------------------------------------------------------------ sources

    /// Whether the SNS message `message_id` was already taken (by any node).
    pub fn sns_seen(&mut self, message_id: &str) -> Result<bool, JournalError> {
        Ok(self
            .row(
                "reading the SNS messages taken",
                "SELECT 1 FROM sns_messages WHERE message_id = $1",
                &[&message_id],
                |_| Ok(()),
            )?
            .is_some())
    }

    /// Records the SNS message `message_id` as taken at `at`, and forgets the ones taken
    /// before `forget_before`.
    pub fn sns_taken(
        &mut self,
        message_id: &str,
        topic: &str,
        at: i64,
        forget_before: i64,
    ) -> Result<(), JournalError> {
        self.in_transaction(
            "recording an SNS message",
            &[
                (
                    "DELETE FROM sns_messages WHERE received_at < $1",
                    &[&forget_before],
                ),
                (
                    "INSERT INTO sns_messages (message_id, topic, received_at) VALUES ($1, $2, $3)
                     ON CONFLICT (message_id) DO NOTHING",
                    &[&message_id, &topic, &at],
                ),
            ],
        )
        .map(drop)
    }

    /// The start of `fingerprint`'s open episode (see [`super::Journal::open_episode`]).
    pub fn open_episode(
        &mut self,
        fingerprint: &str,
        same_label: Option<(&str, &str)>,
    ) -> Result<Option<i64>, JournalError> {
        let newest = self.row(
            "reading a fingerprint's open episode",
            "SELECT status, starts_at, payload FROM alerts WHERE fingerprint = $1
             ORDER BY starts_at DESC, id DESC LIMIT 1",
            &[&fingerprint],
            |row| {
                Ok((
                    row.try_get::<_, String>(0)?,
                    row.try_get::<_, i64>(1)?,
                    row.try_get::<_, String>(2)?,
                ))
            },
        )?;
        Ok(newest.and_then(|(status, starts_at, payload)| {
            super::sources::open_start(&status, starts_at, &payload, same_label)
        }))
    }

    // ------------------------------------------------------------ housekeeping

    /// Forgets what ended before `before` (see [`super::Journal::prune`]: the same rows go).
    pub fn prune(&mut self, before: i64) -> Result<usize, JournalError> {
        let forgotten_runs = "(SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < $1
                AND id NOT IN (SELECT run_id FROM reverts WHERE state IN ('pending', 'reverting')))";
        let task_events = format!("DELETE FROM task_events WHERE run_id IN {forgotten_runs}");
        let feedback = format!("DELETE FROM feedback WHERE run_id IN {forgotten_runs}");
        let changed = self.in_transaction(
            "pruning",
            &[
                (&task_events, &[&before]),
                (&feedback, &[&before]),
                (
                    "DELETE FROM reverts WHERE state NOT IN ('pending', 'reverting') AND run_id IN
                       (SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < $1)",
                    &[&before],
                ),
                (
                    "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < $1
                       AND id NOT IN (SELECT run_id FROM reverts)",
                    &[&before],
                ),
                ("DELETE FROM suppressions WHERE at < $1", &[&before]),
                ("DELETE FROM audit WHERE at < $1", &[&before]),
                (
                    "DELETE FROM alerts WHERE processed AND received_at < $1
                       AND id NOT IN (SELECT alert_id FROM runs)
                       AND id NOT IN (SELECT alert_id FROM suppressions)",
                    &[&before],
                ),
                (
                    "DELETE FROM definitions WHERE key NOT IN (SELECT definition FROM runs)",
                    &[],
                ),
            ],
        )?;
        // As the SQLite journal counts: the playbook versions dropped last are not rows of the
        // history.
        let removed: u64 = changed.iter().take(7).sum();
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    /// Forgets everything journaled, keeping the schema.
    pub fn clear(&mut self) -> Result<(), JournalError> {
        self.atomically("clearing the journal", |client| {
            client.batch_execute(
                "DELETE FROM task_events; DELETE FROM suppressions; DELETE FROM reverts;
                 DELETE FROM feedback; DELETE FROM audit; DELETE FROM sns_messages;
                 DELETE FROM action_starts; DELETE FROM action_rate;
                 DELETE FROM episodes; DELETE FROM runs; DELETE FROM definitions;
                 DELETE FROM alerts; DELETE FROM meta WHERE key != 'schema_version';",
            )
        })
    }

    // ------------------------------------------------------------ history

    /// What the statistics of runs started at or after `since` are computed from (see
    /// [`super::Journal::facts`]; the accumulation is the same code).
    pub fn facts(&mut self, since: i64) -> Result<Facts, JournalError> {
        let operation = "reading the history";
        let mut definition_of: BTreeMap<i64, String> = BTreeMap::new();
        let mut runs: BTreeMap<i64, RunFact> = BTreeMap::new();
        for (fact, definition) in self.rows(
            operation,
            "SELECT runs.id, runs.rule, runs.playbook, runs.state, runs.started_at,
                    runs.finished_at, runs.performs_actions, runs.definition,
                    alerts.name, alerts.fingerprint, alerts.starts_at
             FROM runs JOIN alerts ON alerts.id = runs.alert_id
             WHERE runs.started_at >= $1 ORDER BY runs.id",
            &[&since],
            |row| {
                Ok((
                    RunFact {
                        id: row.try_get(0)?,
                        rule: row.try_get(1)?,
                        playbook: row.try_get(2)?,
                        state: row.try_get(3)?,
                        started_at: row.try_get(4)?,
                        finished_at: row.try_get(5)?,
                        performs_actions: row.try_get(6)?,
                        alert_name: row.try_get(8)?,
                        fingerprint: row.try_get(9)?,
                        episode_starts_at: row.try_get(10)?,
                        ..RunFact::default()
                    },
                    row.try_get::<_, String>(7)?,
                ))
            },
        )? {
            definition_of.insert(fact.id, definition);
            runs.insert(fact.id, fact);
        }
        let mut actions_of: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for key in definition_of.values() {
            if actions_of.contains_key(key) {
                continue;
            }
            let body: Option<String> = self.row(
                operation,
                "SELECT body FROM definitions WHERE key = $1",
                &[key],
                first_column,
            )?;
            actions_of.insert(
                key.clone(),
                super::history::action_tasks(&body.unwrap_or_default()),
            );
        }
        let events = self.rows(
            operation,
            &format!(
                "SELECT task_events.run_id, task_events.task, task_events.state, task_events.at
                 FROM task_events JOIN runs ON runs.id = task_events.run_id
                 WHERE runs.started_at >= $1 AND task_events.state IN ({})
                 ORDER BY task_events.id",
                super::history::FACT_STATES
            ),
            &[&since],
            |row| {
                Ok((
                    row.try_get::<_, i64>(0)?,
                    row.try_get::<_, String>(1)?,
                    row.try_get::<_, String>(2)?,
                    row.try_get::<_, i64>(3)?,
                ))
            },
        )?;
        for (run_id, task, state, at) in events {
            let Some(run) = runs.get_mut(&run_id) else {
                continue;
            };
            let is_action = definition_of
                .get(&run_id)
                .and_then(|key| actions_of.get(key))
                .is_some_and(|actions| actions.contains(&task));
            super::history::task_fact(run, is_action, task, &state, at);
        }
        let reverted = self.rows(
            operation,
            "SELECT reverts.run_id FROM reverts JOIN runs ON runs.id = reverts.run_id
             WHERE runs.started_at >= $1 AND reverts.state = 'reverted'",
            &[&since],
            first_column::<i64>,
        )?;
        for run_id in reverted {
            if let Some(run) = runs.get_mut(&run_id) {
                run.reverted += 1;
            }
        }
        let episodes = self.rows(
            operation,
            "SELECT MIN(CASE WHEN status = 'firing' THEN name END), fingerprint, starts_at,
                    MIN(CASE WHEN status = 'firing' THEN received_at END),
                    MIN(CASE WHEN status = 'resolved' THEN received_at END)
             FROM alerts WHERE received_at >= $1
             GROUP BY fingerprint, starts_at",
            &[&since],
            |row| {
                Ok(EpisodeFact {
                    name: row.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
                    fingerprint: row.try_get(1)?,
                    starts_at: row.try_get(2)?,
                    fired_at: row.try_get(3)?,
                    resolved_at: row.try_get(4)?,
                })
            },
        )?;
        let feedback = self.rows(
            operation,
            "SELECT feedback.run_id, feedback.by, feedback.verdict
             FROM feedback JOIN runs ON runs.id = feedback.run_id
             WHERE runs.started_at >= $1 ORDER BY feedback.id",
            &[&since],
            |row| {
                Ok(FeedbackFact {
                    run_id: row.try_get(0)?,
                    by: row.try_get(1)?,
                    verdict: row.try_get(2)?,
                })
            },
        )?;
        Ok(super::history::facts(runs, episodes, feedback))
    }

    /// The newest alerts (older than the alert `before` when given, of one name when
    /// `name` is given), each with the runs it started and its suppressions.
    pub fn alert_summaries(
        &mut self,
        limit: u32,
        before: Option<i64>,
        name: Option<&str>,
    ) -> Result<Vec<AlertSummary>, JournalError> {
        let operation = "reading alerts";
        let mut alerts = self.rows(
            operation,
            "SELECT id, received_at, source, name, status, fingerprint, starts_at, processed
             FROM alerts WHERE ($2::BIGINT IS NULL OR id < $2) AND ($3::TEXT IS NULL OR name = $3)
             ORDER BY id DESC LIMIT $1",
            &[&i64::from(limit), &before, &name],
            |row| {
                Ok(AlertSummary {
                    id: row.try_get(0)?,
                    received_at: row.try_get(1)?,
                    source: row.try_get(2)?,
                    name: row.try_get(3)?,
                    status: row.try_get(4)?,
                    fingerprint: row.try_get(5)?,
                    starts_at: row.try_get(6)?,
                    processed: row.try_get(7)?,
                    runs: Vec::new(),
                    suppressions: Vec::new(),
                })
            },
        )?;
        for alert in &mut alerts {
            alert.runs = self.rows(
                operation,
                "SELECT id, rule FROM runs WHERE alert_id = $1 ORDER BY id",
                &[&alert.id],
                |row| Ok((row.try_get(0)?, row.try_get(1)?)),
            )?;
            alert.suppressions = self.rows(
                operation,
                "SELECT alert_id, rule, reason, detail, at FROM suppressions
                 WHERE alert_id = $1 ORDER BY id",
                &[&alert.id],
                suppression_row,
            )?;
        }
        Ok(alerts)
    }

    /// One firing episode: its first firing and resolved notifications.
    pub fn episode(
        &mut self,
        fingerprint: &str,
        starts_at: i64,
    ) -> Result<Option<EpisodeFact>, JournalError> {
        self.row(
            "reading an episode",
            "SELECT MIN(CASE WHEN status = 'firing' THEN name END),
                    MIN(CASE WHEN status = 'firing' THEN received_at END),
                    MIN(CASE WHEN status = 'resolved' THEN received_at END)
             FROM alerts WHERE fingerprint = $1 AND starts_at = $2
             HAVING COUNT(*) > 0",
            &[&fingerprint, &starts_at],
            |row| {
                Ok(EpisodeFact {
                    name: row.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
                    fingerprint: fingerprint.to_string(),
                    starts_at,
                    fired_at: row.try_get(1)?,
                    resolved_at: row.try_get(2)?,
                })
            },
        )
    }

    /// The runs `query` selects, newest first (only the conditions given are in the SQL).
    pub fn runs_page(&mut self, query: &RunQuery) -> Result<Vec<RunRow>, JournalError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        // Each `?` of a condition becomes the next `$n`, bound to the next value given.
        let mut condition = |sql: &str, given: Vec<Box<dyn ToSql + Sync>>| {
            let mut numbered = String::with_capacity(sql.len() + 4);
            let mut given = given.into_iter();
            for piece in sql.split_inclusive('?') {
                match (piece.strip_suffix('?'), given.next()) {
                    (Some(before), Some(value)) => {
                        values.push(value);
                        numbered.push_str(before);
                        numbered.push_str(&format!("${}", values.len()));
                    }
                    _ => numbered.push_str(piece),
                }
            }
            conditions.push(numbered);
        };
        if let Some(state) = &query.state {
            condition("state = ?", vec![Box::new(state.clone())]);
        }
        if let Some(rule) = &query.rule {
            condition("rule = ?", vec![Box::new(rule.clone())]);
        }
        if let Some(playbook) = &query.playbook {
            condition("playbook = ?", vec![Box::new(playbook.clone())]);
        }
        if let Some(alert) = &query.alert {
            condition(
                "(SELECT name FROM alerts WHERE alerts.id = runs.alert_id) = ?",
                vec![Box::new(alert.clone())],
            );
        }
        if let Some((name, value)) = &query.label {
            condition(
                "(SELECT alerts.payload::jsonb -> 'labels' ->> ? FROM alerts WHERE alerts.id = runs.alert_id) = ?",
                vec![Box::new(name.clone()), Box::new(value.clone())],
            );
        }
        for (sql, value) in [
            ("started_at >= ?", query.from),
            ("started_at < ?", query.until),
            ("id = ?", query.id),
            ("alert_id = ?", query.alert_id),
        ] {
            if let Some(value) = value {
                condition(sql, vec![Box::new(value)]);
            }
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        values.push(Box::new(i64::from(query.limit)));
        values.push(Box::new(i64::from(query.offset)));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {filter} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            values.len() - 1,
            values.len()
        );
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| value.as_ref()).collect();
        self.query_runs(&sql, &params)
    }

    /// Runs escalated or interrupted that started at or after `since`, newest first.
    pub fn runs_needing_a_human(
        &mut self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<RunRow>, JournalError> {
        self.query_runs(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE state IN ('escalated', 'interrupted') AND started_at >= $1
                 ORDER BY id DESC LIMIT $2"
            ),
            &[&since, &i64::from(limit)],
        )
    }

    fn query_runs(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<RunRow>, JournalError> {
        self.rows("reading runs", sql, params, run_row)
    }
}

fn connect(url: &str) -> Result<Client, JournalError> {
    let mut config: postgres::Config = url.parse().map_err(|source| JournalError::Connect {
        target: redacted(url),
        source,
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    // A node paused or cut off in the middle of a transaction must not hold its locks for
    // ever: the server ends such a session, a lock wait gives up, and a dead peer is noticed
    // by keepalives (note 032). Appended to whatever options the URL gives.
    let options = format!(
        "{} {SESSION_OPTIONS}",
        config.get_options().unwrap_or_default()
    );
    config
        .options(options.trim_start())
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(10))
        .keepalives_interval(std::time::Duration::from_secs(2))
        .keepalives_retries(3)
        .application_name("medic")
        .connect(NoTls)
        .map_err(|source| JournalError::Connect {
            target: redacted(url),
            source,
        })
}

/// Brings the schema to [`PG_SCHEMA_VERSION`] under the migration lock; refuses a store a
/// newer Medic migrated further.
fn migrate(client: &mut Client) -> Result<(), JournalError> {
    let operation = "migrating the schema";
    let mut transaction = client.transaction().map_err(database_error(operation))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1, 0)", &[&MIGRATION_LOCK])
        .map_err(database_error(operation))?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        .map_err(database_error(operation))?;
    let found: Option<String> = transaction
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .map_err(database_error(operation))?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(database_error(operation))?;
    let version = match found {
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| JournalError::UnreadableSchema { found: text })?,
        None => 0,
    };
    if version > PG_SCHEMA_VERSION {
        return Err(JournalError::NewerSchema { found: version });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        transaction
            .batch_execute(migration)
            .map_err(database_error(operation))?;
        let reached = (from as i64 + 1).to_string();
        transaction
            .execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&reached],
            )
            .map_err(database_error(operation))?;
    }
    transaction.commit().map_err(database_error(operation))
}

/// [`PgJournal::admit`]'s work inside its transaction.
/// `None` when `lease` lapsed: a node without a lease starts nothing.
fn admit_in(
    transaction: &mut Session,
    admission: &Admission,
    lease: Option<&Lease>,
) -> Result<Option<Admitted>, postgres::Error> {
    // Every admission, on any node, waits here until this transaction ends: what it reads
    // below is then all the runs there are, committed.
    transaction.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&DECISION_LOCK])?;
    // The lease is checked once the lock is held, not before a wait of unknown length.
    if let Some(lease) = lease
        && !lease_holds(transaction, lease)?
    {
        return Ok(None);
    }
    let existing = transaction.query_opt(
        "SELECT run_id FROM episodes WHERE rule = $1 AND fingerprint = $2 AND starts_at = $3",
        &[
            &admission.rule,
            &admission.fingerprint,
            &admission.starts_at,
        ],
    )?;
    if let Some(row) = existing {
        return Ok(Some(Admitted::Duplicate {
            existing_run: row.try_get(0)?,
        }));
    }
    if let Some((key, millis)) = &admission.cooldown {
        let last = transaction.query_opt(
            "SELECT id, started_at FROM runs WHERE rule = $1 AND cooldown_key = $2
             ORDER BY started_at DESC LIMIT 1",
            &[&admission.rule, key],
        )?;
        if let Some(row) = last {
            let last_run: i64 = row.try_get(0)?;
            let started_at: i64 = row.try_get(1)?;
            let until = started_at.saturating_add(*millis);
            if admission.at < until {
                return Ok(Some(Admitted::Cooldown { last_run, until }));
            }
        }
    }
    if let Some((key, limit)) = &admission.concurrency {
        let running: i64 = transaction
            .query_one(
                "SELECT COUNT(*) FROM runs WHERE rule = $1 AND concurrency_key = $2 AND finished_at IS NULL",
                &[&admission.rule, key],
            )?
            .try_get(0)?;
        if running >= *limit {
            return Ok(Some(Admitted::Concurrency { running }));
        }
    }
    transaction.execute(
        "INSERT INTO definitions (key, body) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[&admission.definition.key(), &admission.definition.json()],
    )?;
    let run_id: i64 = transaction
        .query_one(
            "INSERT INTO runs (rule, playbook, alert_id, fingerprint, cooldown_key, concurrency_key,
                               performs_actions, arguments, definition, state, started_at, owner, fence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', $10, $11, $12) RETURNING id",
            &[
                &admission.rule,
                &admission.playbook,
                &admission.alert_id,
                &admission.fingerprint,
                &admission.cooldown.as_ref().map(|(key, _)| key),
                &admission.concurrency.as_ref().map(|(key, _)| key),
                &admission.performs_actions,
                &admission.arguments,
                &admission.definition.key(),
                &admission.at,
                &lease.map(|lease| lease.node.as_str()),
                &lease.map(|lease| lease.fence),
            ],
        )?
        .try_get(0)?;
    transaction.execute(
        "INSERT INTO episodes (rule, fingerprint, starts_at, run_id) VALUES ($1, $2, $3, $4)",
        &[
            &admission.rule,
            &admission.fingerprint,
            &admission.starts_at,
            &run_id,
        ],
    )?;
    Ok(Some(Admitted::Started(run_id)))
}

/// Whether `lease` is still this node's registration and unexpired in the database's time.
fn lease_holds(transaction: &mut Session, lease: &Lease) -> Result<bool, postgres::Error> {
    Ok(transaction
        .query_opt(
            "SELECT 1 FROM nodes WHERE id = $1 AND fence = $2 AND lease_until > medic_now()",
            &[&lease.node, &lease.fence],
        )?
        .is_some())
}

/// A fenced write's result: refused when it changed nothing.
fn fenced(written: u64, run_id: i64, lease: &Lease) -> Result<(), JournalError> {
    if written > 0 {
        return Ok(());
    }
    Err(JournalError::Fenced {
        run_id: Some(run_id),
        node: lease.node.clone(),
        fence: lease.fence,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::PgJournal;

    #[test]
    fn every_session_runs_with_the_timeouts_that_free_a_paused_nodes_locks() {
        let server = medic_sandbox::postgres::RealPostgres::start()
            .unwrap_or_else(|error| panic!("{error}"));
        let mut journal = PgJournal::open(&server.url()).unwrap();
        for (setting, expected) in [
            ("idle_in_transaction_session_timeout", "10s"),
            ("lock_timeout", "10s"),
            ("statement_timeout", "30s"),
        ] {
            let value: String = journal
                .client
                .query_one(&format!("SHOW {setting}"), &[])
                .unwrap()
                .get(0);
            assert_eq!(value, expected, "{setting}");
        }
    }
}
