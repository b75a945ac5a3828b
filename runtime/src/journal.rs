//! The journal: an embedded SQLite database (WAL) recording every accepted alert, every run
//! and every task transition, so that nothing accepted is lost and no firing episode starts
//! a rule twice.
//!
//! Alerts are accepted in batches inside one transaction (group commit): a webhook's alerts
//! are durable before the server answers 2xx. The unique key `(rule, fingerprint, starts_at)`
//! of `episodes` is what makes "one run per rule per firing episode" hold across duplicate
//! deliveries and restarts. Errors are [`JournalError`] values naming the operation.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY,
  received_at INTEGER NOT NULL,
  source TEXT NOT NULL,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  starts_at INTEGER NOT NULL,
  payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  rule TEXT NOT NULL,
  playbook TEXT NOT NULL,
  alert_id INTEGER NOT NULL REFERENCES alerts(id),
  state TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS episodes (
  rule TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  starts_at INTEGER NOT NULL,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  PRIMARY KEY (rule, fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS task_events (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  task TEXT NOT NULL,
  state TEXT NOT NULL,
  at INTEGER NOT NULL,
  detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suppressions (
  alert_id INTEGER NOT NULL REFERENCES alerts(id),
  rule TEXT NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs(state);
CREATE INDEX IF NOT EXISTS task_events_by_run ON task_events(run_id);
";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "journal was written by a newer medic (schema {found}, this medic knows {SCHEMA_VERSION})"
    )]
    NewerSchema { found: i64 },
    #[error("journal {operation} failed: {source}")]
    Write {
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

fn write_error(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    move |source| JournalError::Write { operation, source }
}

/// An alert as accepted: its identity and the raw payload it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedAlert {
    pub source: String,
    pub name: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub fingerprint: String,
    pub starts_at: i64,
    pub payload: String,
}

/// The answer to "start a run of this rule for this episode".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStart {
    Started(i64),
    /// The episode already started a run of this rule: no second one.
    Duplicate {
        existing_run: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub rule: String,
    pub playbook: String,
    pub alert_id: i64,
    pub state: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

pub struct Journal {
    connection: Connection,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, in WAL mode with full synchronisation of
    /// commits.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let connection = Connection::open(path).map_err(|source| JournalError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Journal::prepare(connection, &path.display().to_string())
    }

    /// A journal that lives in memory only (tests, `medic run`).
    pub fn in_memory() -> Result<Journal, JournalError> {
        let connection = Connection::open_in_memory().map_err(|source| JournalError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Journal::prepare(connection, ":memory:")
    }

    fn prepare(connection: Connection, path: &str) -> Result<Journal, JournalError> {
        let open_error = |source| JournalError::Open {
            path: path.to_string(),
            source,
        };
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        connection.execute_batch(SCHEMA).map_err(open_error)?;
        let found: Option<String> = connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(write_error("reading the schema version"))?;
        match found.and_then(|text| text.parse::<i64>().ok()) {
            Some(version) if version > SCHEMA_VERSION => {
                return Err(JournalError::NewerSchema { found: version });
            }
            Some(_) => {}
            None => {
                connection
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                        params![SCHEMA_VERSION.to_string()],
                    )
                    .map_err(write_error("writing the schema version"))?;
            }
        }
        Ok(Journal { connection })
    }

    /// Makes a batch of alerts durable in one transaction; returns their ids in order.
    pub fn accept(
        &mut self,
        alerts: &[AcceptedAlert],
        received_at: i64,
    ) -> Result<Vec<i64>, JournalError> {
        let transaction = self
            .connection
            .transaction()
            .map_err(write_error("accepting alerts"))?;
        let mut ids = Vec::with_capacity(alerts.len());
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO alerts (received_at, source, name, status, fingerprint, starts_at, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(write_error("accepting alerts"))?;
            for alert in alerts {
                insert
                    .execute(params![
                        received_at,
                        alert.source,
                        alert.name,
                        alert.status,
                        alert.fingerprint,
                        alert.starts_at,
                        alert.payload
                    ])
                    .map_err(write_error("accepting alerts"))?;
                ids.push(transaction.last_insert_rowid());
            }
        }
        transaction
            .commit()
            .map_err(write_error("accepting alerts"))?;
        Ok(ids)
    }

    /// Starts a run of `rule` for an alert, unless its firing episode already started one.
    pub fn start_run(
        &mut self,
        rule: &str,
        playbook: &str,
        alert_id: i64,
        episode: (&str, i64),
        at: i64,
    ) -> Result<RunStart, JournalError> {
        let transaction = self
            .connection
            .transaction()
            .map_err(write_error("starting a run"))?;
        let existing: Option<i64> = transaction
            .query_row(
                "SELECT run_id FROM episodes WHERE rule = ?1 AND fingerprint = ?2 AND starts_at = ?3",
                params![rule, episode.0, episode.1],
                |row| row.get(0),
            )
            .optional()
            .map_err(write_error("starting a run"))?;
        if let Some(existing_run) = existing {
            return Ok(RunStart::Duplicate { existing_run });
        }
        transaction
            .execute(
                "INSERT INTO runs (rule, playbook, alert_id, state, started_at) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![rule, playbook, alert_id, at],
            )
            .map_err(write_error("starting a run"))?;
        let run_id = transaction.last_insert_rowid();
        transaction
            .execute(
                "INSERT INTO episodes (rule, fingerprint, starts_at, run_id) VALUES (?1, ?2, ?3, ?4)",
                params![rule, episode.0, episode.1, run_id],
            )
            .map_err(write_error("starting a run"))?;
        transaction
            .commit()
            .map_err(write_error("starting a run"))?;
        Ok(RunStart::Started(run_id))
    }

    pub fn task_event(
        &mut self,
        run_id: i64,
        task: &str,
        state: &str,
        detail: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        self.connection
            .execute(
                "INSERT INTO task_events (run_id, task, state, at, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, task, state, at, detail],
            )
            .map_err(write_error("recording a task transition"))?;
        Ok(())
    }

    pub fn finish_run(&mut self, run_id: i64, state: &str, at: i64) -> Result<(), JournalError> {
        self.connection
            .execute(
                "UPDATE runs SET state = ?2, finished_at = ?3 WHERE id = ?1",
                params![run_id, state, at],
            )
            .map_err(write_error("finishing a run"))?;
        Ok(())
    }

    /// Records why an alert did not start a rule's playbook (cooldown, duplicate, ...).
    pub fn suppress(
        &mut self,
        alert_id: i64,
        rule: &str,
        reason: &str,
        at: i64,
    ) -> Result<(), JournalError> {
        self.connection
            .execute(
                "INSERT INTO suppressions (alert_id, rule, reason, at) VALUES (?1, ?2, ?3, ?4)",
                params![alert_id, rule, reason, at],
            )
            .map_err(write_error("recording a suppression"))?;
        Ok(())
    }

    /// Runs that were started and never finished: after a crash, each must be resumed or
    /// closed explicitly.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>, JournalError> {
        self.query_runs("SELECT id, rule, playbook, alert_id, state, started_at, finished_at FROM runs WHERE finished_at IS NULL ORDER BY id", [])
    }

    /// The most recent runs, newest first.
    pub fn runs(&self, limit: u32) -> Result<Vec<RunRow>, JournalError> {
        self.query_runs(
            "SELECT id, rule, playbook, alert_id, state, started_at, finished_at FROM runs ORDER BY id DESC LIMIT ?1",
            [i64::from(limit)],
        )
    }

    pub fn alert_count(&self) -> Result<i64, JournalError> {
        self.connection
            .query_row("SELECT COUNT(*) FROM alerts", [], |row| row.get(0))
            .map_err(write_error("counting alerts"))
    }

    /// The transitions of one run's tasks, in order: (task, state, detail).
    pub fn task_events(&self, run_id: i64) -> Result<Vec<(String, String, String)>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT task, state, detail FROM task_events WHERE run_id = ?1 ORDER BY rowid",
            )
            .map_err(write_error("reading task transitions"))?;
        let rows = statement
            .query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(write_error("reading task transitions"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading task transitions"))
    }

    fn query_runs<P: rusqlite::Params>(
        &self,
        sql: &str,
        parameters: P,
    ) -> Result<Vec<RunRow>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(sql)
            .map_err(write_error("reading runs"))?;
        let rows = statement
            .query_map(parameters, |row| {
                Ok(RunRow {
                    id: row.get(0)?,
                    rule: row.get(1)?,
                    playbook: row.get(2)?,
                    alert_id: row.get(3)?,
                    state: row.get(4)?,
                    started_at: row.get(5)?,
                    finished_at: row.get(6)?,
                })
            })
            .map_err(write_error("reading runs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading runs"))
    }
}
