//! The journal on PostgreSQL, for several `medic serve` nodes on one database (issue 14;
//! docs/notes/032). This is its first part: the schema and its migrations, and the writes and
//! reads of the alert-to-run path with the guarantees the nodes rely on. An alert is committed
//! before the call returns. An episode `(rule, fingerprint, starts_at)` starts one run however
//! many connections admit it at once. Cooldown and concurrency are decided in the admitting
//! transaction, with every admission of the same rule serialized by a transaction-scoped
//! advisory lock, so two nodes cannot both see a key free.
//!
//! [`PgJournal`] is synchronous, like [`super::Journal`]: it runs on the journal's own
//! thread, with `postgres`' blocking client. Its methods take the same arguments and give the
//! same answers as the SQLite journal's (the tests in `tests/runtime/postgres_store.rs` run
//! the same scenarios on both). It is not yet behind `JournalHandle` or reachable from
//! `medic serve`; leases and fencing come with that (note 032).
//!
//! A connection that broke (the server restarted, the network dropped) is replaced on the
//! next call; the call that found it broken fails with the error, and nothing is retried
//! behind the caller's back, since a write whose commit was in flight may or may not have
//! happened.

use super::{AcceptedAlert, Admission, Admitted, JournalError, RunRow, StoredAlert};
use postgres::{Client, NoTls, Transaction};

/// The migrations, in order: migration `n` takes the schema from version `n` to `n + 1`.
/// Applied at open by the first node under an advisory lock, each in its own transaction with
/// the version it reaches; never edited once released, only appended to.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the alert-to-run path.
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
     CREATE TABLE action_starts (at BIGINT NOT NULL);
     CREATE INDEX action_starts_by_time ON action_starts(at);
     CREATE INDEX alerts_unprocessed ON alerts(id) WHERE NOT processed;
     CREATE INDEX alerts_by_episode ON alerts(fingerprint, starts_at);
     CREATE INDEX runs_unfinished ON runs(id) WHERE finished_at IS NULL;
     CREATE INDEX runs_by_cooldown ON runs(rule, cooldown_key, started_at);
     CREATE INDEX runs_by_concurrency ON runs(rule, concurrency_key) WHERE finished_at IS NULL;
     CREATE INDEX task_events_by_run ON task_events(run_id);",
];

/// The schema version this Medic writes.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock (its first key) under which a node migrates the schema.
const MIGRATION_LOCK: i32 = 0x6d65_6401;
/// The advisory locks (first key; the second is the rule's hash) that serialize admissions
/// of one rule.
const ADMISSION_LOCK: i32 = 0x6d65_6402;

const RUN_COLUMNS: &str = "id, rule, playbook, alert_id, fingerprint, performs_actions, arguments, state, started_at, finished_at, report, (SELECT alerts.starts_at FROM alerts WHERE alerts.id = runs.alert_id)";

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

/// The journal on PostgreSQL; see the module docs.
pub struct PgJournal {
    url: String,
    client: Client,
}

impl PgJournal {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the schema
    /// to [`PG_SCHEMA_VERSION`], waiting for another node that is migrating it.
    pub fn open(url: &str) -> Result<PgJournal, JournalError> {
        let mut client = connect(url)?;
        migrate(&mut client)?;
        Ok(PgJournal {
            url: url.to_string(),
            client,
        })
    }

    /// The live connection, replaced first when the previous one broke.
    fn client(&mut self) -> Result<&mut Client, JournalError> {
        if self.client.is_closed() {
            self.client = connect(&self.url)?;
        }
        Ok(&mut self.client)
    }

    /// The schema version the store holds, as written.
    pub fn schema_version(&mut self) -> Result<Option<String>, JournalError> {
        let row = self
            .client()?
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .map_err(database_error("reading the schema version"))?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(database_error("reading the schema version"))
    }

    /// Makes a batch of alerts durable at once (committed when this returns); returns their
    /// ids in order.
    pub fn accept(
        &mut self,
        alerts: &[AcceptedAlert],
        received_at: i64,
    ) -> Result<Vec<i64>, JournalError> {
        let operation = "accepting alerts";
        let mut transaction = self
            .client()?
            .transaction()
            .map_err(database_error(operation))?;
        let insert = transaction
            .prepare(
                "INSERT INTO alerts (received_at, source, name, status, fingerprint, starts_at, payload, processed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .map_err(database_error(operation))?;
        let mut ids = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let row = transaction
                .query_one(
                    &insert,
                    &[
                        &received_at,
                        &alert.source,
                        &alert.name,
                        &alert.status,
                        &alert.fingerprint,
                        &alert.starts_at,
                        &alert.payload,
                        &alert.processed,
                    ],
                )
                .map_err(database_error(operation))?;
            ids.push(row.try_get(0).map_err(database_error(operation))?);
        }
        transaction.commit().map_err(database_error(operation))?;
        Ok(ids)
    }

    /// Marks an alert as matched and acted upon: no node processes it again.
    pub fn processed(&mut self, alert_id: i64) -> Result<(), JournalError> {
        self.client()?
            .execute(
                "UPDATE alerts SET processed = TRUE WHERE id = $1",
                &[&alert_id],
            )
            .map_err(database_error("marking an alert processed"))?;
        Ok(())
    }

    /// Alerts accepted but not processed, oldest first.
    pub fn unprocessed_alerts(&mut self) -> Result<Vec<StoredAlert>, JournalError> {
        let operation = "reading unprocessed alerts";
        self.client()?
            .query(
                "SELECT id, source, payload FROM alerts WHERE NOT processed ORDER BY id",
                &[],
            )
            .map_err(database_error(operation))?
            .iter()
            .map(|row| {
                Ok(StoredAlert {
                    id: row.try_get(0)?,
                    source: row.try_get(1)?,
                    payload: row.try_get(2)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(database_error(operation))
    }

    /// Starts a run of a rule for an alert, unless its firing episode already started one,
    /// its cooldown key is cooling down, or its concurrency key is taken, deciding all three
    /// in one transaction that every other admission of the rule waits for.
    pub fn admit(&mut self, admission: &Admission) -> Result<Admitted, JournalError> {
        let operation = "starting a run";
        let mut transaction = self
            .client()?
            .transaction()
            .map_err(database_error(operation))?;
        let admitted = admit_in(&mut transaction, admission).map_err(database_error(operation))?;
        transaction.commit().map_err(database_error(operation))?;
        Ok(admitted)
    }

    pub fn task_event(
        &mut self,
        run_id: i64,
        task: &str,
        state: &str,
        detail: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        self.client()?
            .execute(
                "INSERT INTO task_events (run_id, task, state, at, detail) VALUES ($1, $2, $3, $4, $5)",
                &[&run_id, &task, &state, &at, &detail],
            )
            .map_err(database_error("recording a task transition"))?;
        Ok(())
    }

    /// A run's task transitions, in the order they were recorded.
    pub fn task_events(&mut self, run_id: i64) -> Result<Vec<super::TaskEventRow>, JournalError> {
        let operation = "reading task transitions";
        self.client()?
            .query(
                "SELECT task, state, at, detail FROM task_events WHERE run_id = $1 ORDER BY id",
                &[&run_id],
            )
            .map_err(database_error(operation))?
            .iter()
            .map(|row| {
                Ok(super::TaskEventRow {
                    task: row.try_get(0)?,
                    state: row.try_get(1)?,
                    at: row.try_get(2)?,
                    detail: row.try_get(3)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(database_error(operation))
    }

    /// Sets the state of a run that goes on (`running`, `paused`).
    pub fn run_state(&mut self, run_id: i64, state: &str) -> Result<(), JournalError> {
        self.client()?
            .execute(
                "UPDATE runs SET state = $2 WHERE id = $1 AND finished_at IS NULL",
                &[&run_id, &state],
            )
            .map_err(database_error("changing a run's state"))?;
        Ok(())
    }

    /// Closes a run with its final state and report.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        state: &str,
        report: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        self.client()?
            .execute(
                "UPDATE runs SET state = $2, report = $3, finished_at = $4 WHERE id = $1",
                &[&run_id, &state, &report, &at],
            )
            .map_err(database_error("finishing a run"))?;
        Ok(())
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
        self.client()?
            .execute(
                "INSERT INTO suppressions (alert_id, rule, reason, detail, at) VALUES ($1, $2, $3, $4, $5)",
                &[&alert_id, &rule, &reason, &detail, &at],
            )
            .map_err(database_error("recording a suppression"))?;
        Ok(())
    }

    /// Runs that were started and never finished, oldest first.
    pub fn unfinished_runs(&mut self) -> Result<Vec<RunRow>, JournalError> {
        self.query_runs(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NULL ORDER BY id"),
            &[],
        )
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
        let operation = "reading a run's playbook";
        let row = self
            .client()?
            .query_opt(
                "SELECT definitions.body FROM runs JOIN definitions ON definitions.key = runs.definition
                 WHERE runs.id = $1",
                &[&run_id],
            )
            .map_err(database_error(operation))?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(database_error(operation))
    }

    /// Records that an action started at `at`, and forgets the starts of more than an hour
    /// before: the rate limit's window, shared by every node.
    pub fn action_started(&mut self, at: i64) -> Result<(), JournalError> {
        let operation = "recording an action start";
        let mut transaction = self
            .client()?
            .transaction()
            .map_err(database_error(operation))?;
        transaction
            .execute(
                "DELETE FROM action_starts WHERE at < $1",
                &[&at.saturating_sub(3_600_000)],
            )
            .map_err(database_error(operation))?;
        transaction
            .execute("INSERT INTO action_starts (at) VALUES ($1)", &[&at])
            .map_err(database_error(operation))?;
        transaction.commit().map_err(database_error(operation))
    }

    /// When the actions started since `since` started, oldest first.
    pub fn action_starts_since(&mut self, since: i64) -> Result<Vec<i64>, JournalError> {
        let operation = "reading action starts";
        self.client()?
            .query(
                "SELECT at FROM action_starts WHERE at > $1 ORDER BY at",
                &[&since],
            )
            .map_err(database_error(operation))?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, postgres::Error>>()
            .map_err(database_error(operation))
    }

    fn query_runs(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<RunRow>, JournalError> {
        let operation = "reading runs";
        self.client()?
            .query(sql, params)
            .map_err(database_error(operation))?
            .iter()
            .map(run_row)
            .collect::<Result<_, _>>()
            .map_err(database_error(operation))
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
    config
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
fn admit_in(
    transaction: &mut Transaction<'_>,
    admission: &Admission,
) -> Result<Admitted, postgres::Error> {
    // Every admission of this rule, on any node, waits here until this transaction ends:
    // what it reads below is then all the runs the rule has, committed.
    transaction.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&ADMISSION_LOCK, &admission.rule],
    )?;
    let existing = transaction.query_opt(
        "SELECT run_id FROM episodes WHERE rule = $1 AND fingerprint = $2 AND starts_at = $3",
        &[
            &admission.rule,
            &admission.fingerprint,
            &admission.starts_at,
        ],
    )?;
    if let Some(row) = existing {
        return Ok(Admitted::Duplicate {
            existing_run: row.try_get(0)?,
        });
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
                return Ok(Admitted::Cooldown { last_run, until });
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
            return Ok(Admitted::Concurrency { running });
        }
    }
    transaction.execute(
        "INSERT INTO definitions (key, body) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[&admission.definition.key(), &admission.definition.json()],
    )?;
    let run_id: i64 = transaction
        .query_one(
            "INSERT INTO runs (rule, playbook, alert_id, fingerprint, cooldown_key, concurrency_key,
                               performs_actions, arguments, definition, state, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', $10) RETURNING id",
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
    Ok(Admitted::Started(run_id))
}
