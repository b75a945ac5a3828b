//! The journal: an embedded SQLite database (WAL, full sync) recording every accepted alert,
//! every run, every task transition, every suppression and every revert, so that nothing
//! accepted is lost, no firing episode starts a rule twice, and a restart can resume or
//! close each interrupted run.
//!
//! [`Journal`] is the synchronous store; each write method is atomic on its own (a
//! savepoint). [`JournalHandle`] owns it on a dedicated thread and commits in groups: every
//! write that queued up while the previous commit was syncing goes into the next
//! transaction, and each caller hears back only after the commit that made its write
//! durable. That is how a webhook's alerts are on disk before the server answers 2xx
//! without paying one fsync per request.
//!
//! The unique key `(rule, fingerprint, starts_at)` of `episodes` is what makes "one run per
//! rule per firing episode" hold across duplicate deliveries and restarts; cooldowns and
//! per-key concurrency are decided in the same savepoint from the durable `runs` table.
//!
//! The database file and its `-wal` and `-shm` files are readable and writable by their
//! owner only (mode 0600 on Unix): they hold alert payloads, arguments and outputs.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// 2: `runs.definition` names a row of `definitions` (a playbook stored once per version)
/// rather than holding the JSON itself; version 1 stores still read, their rows as they are.
/// 3: the `audit` log of operators' actions and their `feedback` on runs (new tables only).
/// 4: `sns_messages`, the SNS message ids the CloudWatch webhook has taken, and
/// `action_starts`, the rate limit's window (new tables only).
const SCHEMA_VERSION: i64 = 4;

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
  payload TEXT NOT NULL,
  processed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  rule TEXT NOT NULL,
  playbook TEXT NOT NULL,
  alert_id INTEGER NOT NULL REFERENCES alerts(id),
  fingerprint TEXT NOT NULL,
  cooldown_key TEXT,
  concurrency_key TEXT,
  performs_actions INTEGER NOT NULL,
  arguments TEXT NOT NULL,
  definition TEXT NOT NULL,
  state TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  report TEXT
);
-- A playbook as planned, stored once however many runs started with it: `runs.definition`
-- is its key (`sha256:` and the SHA-256 of the JSON), or, in rows of schema version 1, the
-- JSON itself.
CREATE TABLE IF NOT EXISTS definitions (key TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
  rule TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  starts_at INTEGER NOT NULL,
  -- Not a foreign key: the episode key outlives its run when old runs are pruned.
  run_id INTEGER NOT NULL,
  PRIMARY KEY (rule, fingerprint, starts_at)
) WITHOUT ROWID;
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
  detail TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reverts (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  task TEXT NOT NULL,
  function TEXT NOT NULL,
  arguments TEXT NOT NULL,
  output TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  due_at INTEGER,
  on_resolve INTEGER NOT NULL,
  state TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '',
  done_at INTEGER
);
-- Every operator action, done or refused: who, through what (api, web), on what.
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  role TEXT NOT NULL,
  via TEXT NOT NULL,
  action TEXT NOT NULL,
  run_id INTEGER,
  revert_id INTEGER,
  detail TEXT NOT NULL,
  outcome TEXT NOT NULL,
  error TEXT
);
-- Did this run fix it? yes, no or partly, with a note.
CREATE TABLE IF NOT EXISTS feedback (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  at INTEGER NOT NULL,
  by TEXT NOT NULL,
  verdict TEXT NOT NULL,
  note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_run ON feedback(run_id);
-- The SNS messages taken, so that a replayed one is not taken twice (kept for as long as a
-- message's timestamp is accepted; `crate::sns`).
CREATE TABLE IF NOT EXISTS sns_messages (
  message_id TEXT PRIMARY KEY,
  topic TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sns_messages_by_time ON sns_messages(received_at);
-- When each action started (its first attempt): the rate limit's window, read back at start
-- so that a restart does not empty it. Kept for an hour.
CREATE TABLE IF NOT EXISTS action_starts (at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS action_starts_by_time ON action_starts(at);
-- A firing episode's notifications (a run's page: did its alert resolve?; at start: reverts
-- whose episode already resolved).
CREATE INDEX IF NOT EXISTS alerts_by_episode ON alerts(fingerprint, starts_at);
-- What became of an alert (the alerts page): its runs and its suppressions.
CREATE INDEX IF NOT EXISTS runs_by_alert ON runs(alert_id);
CREATE INDEX IF NOT EXISTS suppressions_by_alert ON suppressions(alert_id);
-- The runs that wait for a human (the page pins them): only rows in those states.
CREATE INDEX IF NOT EXISTS runs_needing_a_human ON runs(id)
  WHERE state IN ('escalated', 'interrupted');
CREATE INDEX IF NOT EXISTS audit_by_run ON audit(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_unprocessed ON alerts(processed) WHERE processed = 0;
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs(finished_at) WHERE finished_at IS NULL;
CREATE INDEX IF NOT EXISTS runs_by_cooldown ON runs(rule, cooldown_key, started_at);
CREATE INDEX IF NOT EXISTS task_events_by_run ON task_events(run_id);
CREATE INDEX IF NOT EXISTS reverts_pending ON reverts(state, fingerprint);
";

/// The writer's page cache, in KiB.
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages beyond which the writer checkpoints itself (the checkpointer usually has).
const WAL_BACKSTOP_PAGES: i64 = 2 * 1024;
/// The size the WAL file is truncated to after a checkpoint reset it, in bytes.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The file could not be created, or made private to its owner.
    #[error("cannot open the journal at {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "journal was written by a newer medic (schema {found}, this medic knows {SCHEMA_VERSION})"
    )]
    NewerSchema { found: i64 },
    #[error("the journal's schema version {found:?} is not a number: the journal is damaged")]
    UnreadableSchema { found: String },
    #[error("journal {operation} failed: {source}")]
    Write {
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("journal commit failed: {0}")]
    Commit(String),
    /// The PostgreSQL store could not be reached (or its URL is malformed).
    #[error("cannot connect to the PostgreSQL store at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: ::postgres::Error,
    },
    /// A write for a run this node no longer owns (its lease lapsed, or another node took
    /// the run over), or an admission by a node whose lease lapsed: nothing was written.
    #[error("{} is no longer this node's ({node}, fencing number {fence}): its lease lapsed or another node took it over; nothing was written", run_id.map_or("the store".to_string(), |run| format!("run {run}")))]
    Fenced {
        run_id: Option<i64>,
        node: String,
        fence: i64,
    },
    /// The store refused an action start: the cluster's kill switch is on, or its rate
    /// window is full.
    #[error("{0}")]
    Refused(String),
    /// A statement of the PostgreSQL store failed.
    #[error("journal {operation} failed: {source}")]
    Database {
        operation: &'static str,
        #[source]
        source: ::postgres::Error,
    },
    #[error("the journal is closed")]
    Closed,
}

/// The `schema_version` of `meta`, as written; `None` in a new store.
fn stored_schema_version(connection: &Connection) -> Result<Option<String>, JournalError> {
    connection
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(write_error("reading the schema version"))
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
    /// Accepted with nothing left to do (no rule matches it): not processed again at a
    /// restart.
    pub processed: bool,
}

/// A stored alert, as read back for processing after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub id: i64,
    pub source: String,
    pub payload: String,
}

/// A request to start a run of a rule for an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub rule: String,
    pub playbook: String,
    pub alert_id: i64,
    pub fingerprint: String,
    pub starts_at: i64,
    /// The cooldown key and its length in milliseconds.
    pub cooldown: Option<(String, i64)>,
    /// The concurrency key and how many runs may hold it at once.
    pub concurrency: Option<(String, i64)>,
    pub performs_actions: bool,
    /// The playbook's arguments, as JSON.
    pub arguments: String,
    /// The playbook as planned: a run continued after a restart or a reload runs the
    /// definition it started with. Stored once per version, whatever the number of runs.
    pub definition: Definition,
    pub at: i64,
}

/// A playbook as planned, as JSON, and the key it is stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    key: std::sync::Arc<str>,
    json: std::sync::Arc<str>,
}

impl Definition {
    pub fn new(json: String) -> Definition {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(json.as_bytes());
        let mut key = String::with_capacity(7 + 64);
        key.push_str("sha256:");
        for byte in digest {
            key.push_str(&format!("{byte:02x}"));
        }
        Definition {
            key: key.into(),
            json: json.into(),
        }
    }

    pub fn json(&self) -> &str {
        &self.json
    }

    /// `sha256:` and the SHA-256 of the JSON, in hex.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The answer to an [`Admission`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    Started(i64),
    /// The episode already started a run of this rule: no second one.
    Duplicate {
        existing_run: i64,
    },
    /// A run with the same cooldown key started too recently.
    Cooldown {
        last_run: i64,
        until: i64,
    },
    /// As many runs as allowed hold the concurrency key.
    Concurrency {
        running: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub rule: String,
    pub playbook: String,
    pub alert_id: i64,
    pub fingerprint: String,
    pub performs_actions: bool,
    pub arguments: String,
    pub state: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub report: Option<String>,
    /// When the firing episode that started it began (its alert's `startsAt`), which with
    /// the fingerprint names the episode; absent when its alert is no longer journaled.
    pub episode_starts_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskEventRow {
    pub task: String,
    pub state: String,
    pub at: i64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SuppressionRow {
    pub alert_id: i64,
    pub rule: String,
    pub reason: String,
    pub detail: String,
    pub at: i64,
}

/// An action to undo later: after a delay, when its alert resolves, or both.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevertRow {
    pub id: i64,
    pub run_id: i64,
    pub task: String,
    pub function: String,
    pub arguments: String,
    pub output: String,
    pub fingerprint: String,
    pub due_at: Option<i64>,
    pub on_resolve: bool,
    pub state: String,
    pub detail: String,
}

const RUN_COLUMNS: &str = "id, rule, playbook, alert_id, fingerprint, performs_actions, arguments, state, started_at, finished_at, report, (SELECT alerts.starts_at FROM alerts WHERE alerts.id = runs.alert_id)";
const REVERT_COLUMNS: &str =
    "id, run_id, task, function, arguments, output, fingerprint, due_at, on_resolve, state, detail";

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        rule: row.get(1)?,
        playbook: row.get(2)?,
        alert_id: row.get(3)?,
        fingerprint: row.get(4)?,
        performs_actions: row.get(5)?,
        arguments: row.get(6)?,
        state: row.get(7)?,
        started_at: row.get(8)?,
        finished_at: row.get(9)?,
        report: row.get(10)?,
        episode_starts_at: row.get(11)?,
    })
}

fn suppression_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SuppressionRow> {
    Ok(SuppressionRow {
        alert_id: row.get(0)?,
        rule: row.get(1)?,
        reason: row.get(2)?,
        detail: row.get(3)?,
        at: row.get(4)?,
    })
}

fn revert_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RevertRow> {
    Ok(RevertRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        task: row.get(2)?,
        function: row.get(3)?,
        arguments: row.get(4)?,
        output: row.get(5)?,
        fingerprint: row.get(6)?,
        due_at: row.get(7)?,
        on_resolve: row.get(8)?,
        state: row.get(9)?,
        detail: row.get(10)?,
    })
}

pub struct Journal {
    connection: Connection,
    /// Definition keys known to be in `definitions` (committed, or written in the open
    /// transaction): an admission of a known version skips its insert. Forgotten on any
    /// rollback and on pruning, which may remove rows.
    stored_definitions: std::collections::HashSet<std::sync::Arc<str>>,
    /// Inside a [`JournalHandle`] write, which is in its own savepoint.
    in_write: bool,
}

/// [`Journal::accept`]'s work, on a connection whose caller makes it atomic.
fn accept_on(
    connection: &Connection,
    alerts: &[AcceptedAlert],
    received_at: i64,
) -> Result<Vec<i64>, JournalError> {
    let mut ids = Vec::with_capacity(alerts.len());
    {
        let mut insert = connection
                .prepare_cached(
                    "INSERT INTO alerts (received_at, source, name, status, fingerprint, starts_at, payload, processed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
                    alert.payload,
                    alert.processed
                ])
                .map_err(write_error("accepting alerts"))?;
            ids.push(connection.last_insert_rowid());
        }
    }
    Ok(ids)
}

/// [`Journal::admit`]'s work, on a connection whose caller makes it atomic.
fn admit_on(
    connection: &Connection,
    stored_definitions: &mut std::collections::HashSet<std::sync::Arc<str>>,
    admission: &Admission,
) -> Result<Admitted, JournalError> {
    let existing: Option<i64> = connection
        .prepare_cached(
            "SELECT run_id FROM episodes WHERE rule = ?1 AND fingerprint = ?2 AND starts_at = ?3",
        )
        .and_then(|mut statement| {
            statement
                .query_row(
                    params![admission.rule, admission.fingerprint, admission.starts_at],
                    |row| row.get(0),
                )
                .optional()
        })
        .map_err(write_error("starting a run"))?;
    if let Some(existing_run) = existing {
        return Ok(Admitted::Duplicate { existing_run });
    }
    if let Some((key, millis)) = &admission.cooldown {
        let last: Option<(i64, i64)> = connection
            .prepare_cached(
                "SELECT id, started_at FROM runs WHERE rule = ?1 AND cooldown_key = ?2
                 ORDER BY started_at DESC LIMIT 1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![admission.rule, key], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
            })
            .map_err(write_error("starting a run"))?;
        if let Some((last_run, started_at)) = last {
            let until = started_at.saturating_add(*millis);
            if admission.at < until {
                return Ok(Admitted::Cooldown { last_run, until });
            }
        }
    }
    if let Some((key, limit)) = &admission.concurrency {
        let running: i64 = connection
            .prepare_cached(
                "SELECT COUNT(*) FROM runs WHERE rule = ?1 AND concurrency_key = ?2 AND finished_at IS NULL",
            )
            .and_then(|mut statement| {
                statement.query_row(params![admission.rule, key], |row| row.get(0))
            })
            .map_err(write_error("starting a run"))?;
        if running >= *limit {
            return Ok(Admitted::Concurrency { running });
        }
    }
    let known = stored_definitions.contains(&admission.definition.key);
    if !known {
        connection
            .prepare_cached("INSERT OR IGNORE INTO definitions (key, body) VALUES (?1, ?2)")
            .and_then(|mut statement| {
                statement.execute(params![
                    admission.definition.key.as_ref(),
                    admission.definition.json.as_ref()
                ])
            })
            .map_err(write_error("starting a run"))?;
    }
    connection
        .prepare_cached(
            "INSERT INTO runs (rule, playbook, alert_id, fingerprint, cooldown_key, concurrency_key,
                               performs_actions, arguments, definition, state, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'running', ?10)",
        )
        .and_then(|mut statement| statement.execute(params![
                admission.rule,
                admission.playbook,
                admission.alert_id,
                admission.fingerprint,
                admission.cooldown.as_ref().map(|(key, _)| key),
                admission.concurrency.as_ref().map(|(key, _)| key),
                admission.performs_actions,
                admission.arguments,
                admission.definition.key.as_ref(),
                admission.at
            ]))
        .map_err(write_error("starting a run"))?;
    let run_id = connection.last_insert_rowid();
    connection
        .prepare_cached(
            "INSERT INTO episodes (rule, fingerprint, starts_at, run_id) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                admission.rule,
                admission.fingerprint,
                admission.starts_at,
                run_id
            ])
        })
        .map_err(write_error("starting a run"))?;
    if !known {
        stored_definitions.insert(std::sync::Arc::clone(&admission.definition.key));
    }
    Ok(Admitted::Started(run_id))
}

/// Gives `path` mode 0600, creating it first when `create` (else a missing file is left
/// missing).
#[cfg(unix)]
fn private_file(path: &Path, create: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if create {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
    } else if !path.exists() {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Elsewhere the file is created as the platform does (no Unix modes to set).
#[cfg(not(unix))]
fn private_file(path: &Path, create: bool) -> std::io::Result<()> {
    if create {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
    }
    Ok(())
}

impl Journal {
    /// Opens (or creates) the journal at `path`, in WAL mode with full synchronisation of
    /// commits. The file and its `-wal` and `-shm` files get mode 0600.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let file_error = |path: &Path| {
            let path = path.display().to_string();
            move |source| JournalError::File { path, source }
        };
        // Created private before SQLite opens it: SQLite gives the `-wal` and `-shm` files it
        // creates the mode of the database file, whatever the umask.
        private_file(path, true).map_err(file_error(path))?;
        let connection = Connection::open(path).map_err(|source| JournalError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let journal = Journal::prepare(connection, &path.display().to_string())?;
        // Files an older Medic left readable by others are made private too.
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            let companion = std::path::PathBuf::from(name);
            private_file(&companion, false).map_err(file_error(&companion))?;
        }
        Ok(journal)
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
        // The busy timeout first: another connection (a reader, or a server that has not
        // quite died) may hold a lock while this one switches to WAL.
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_error)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        // The indexes an admission looks up (episodes, cooldowns) are written at random
        // places: a page cache that holds them saves reading them back on every group.
        connection
            .pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(open_error)?;
        // Checkpoints are the checkpointer thread's work (see `JournalHandle::spawn`); the
        // writer only checkpoints when the WAL outgrows this, so it stays bounded even if
        // that thread cannot keep up.
        connection
            .pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)
            .map_err(open_error)?;
        connection
            .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(open_error)?;
        connection.execute_batch(SCHEMA).map_err(open_error)?;
        let found = stored_schema_version(&connection)?;
        let version = found
            .map(|text| {
                text.parse::<i64>()
                    .map_err(|_| JournalError::UnreadableSchema { found: text })
            })
            .transpose()?;
        match version {
            Some(version) if version > SCHEMA_VERSION => {
                return Err(JournalError::NewerSchema { found: version });
            }
            Some(version) if version < SCHEMA_VERSION => {
                // The tables a newer version adds were created above; old rows read as they are.
                connection
                    .execute(
                        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                        params![SCHEMA_VERSION.to_string()],
                    )
                    .map_err(write_error("writing the schema version"))?;
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
        Ok(Journal {
            connection,
            stored_definitions: std::collections::HashSet::new(),
            in_write: false,
        })
    }

    /// Makes a batch of alerts durable at once; returns their ids in order.
    pub fn accept(
        &mut self,
        alerts: &[AcceptedAlert],
        received_at: i64,
    ) -> Result<Vec<i64>, JournalError> {
        self.atomically("accepting alerts", |connection, _| {
            accept_on(connection, alerts, received_at)
        })
    }

    /// Runs `work` atomically: in a savepoint of its own, or, inside a [`JournalHandle`]'s
    /// write, in that write's (a second one would only copy the pages it touches again).
    fn atomically<T>(
        &mut self,
        operation: &'static str,
        work: impl FnOnce(
            &Connection,
            &mut std::collections::HashSet<std::sync::Arc<str>>,
        ) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        if self.in_write {
            return work(&self.connection, &mut self.stored_definitions);
        }
        let savepoint = self
            .connection
            .savepoint()
            .map_err(write_error(operation))?;
        let result = work(&savepoint, &mut self.stored_definitions)?;
        if let Err(error) = savepoint.commit() {
            self.stored_definitions.clear();
            return Err(write_error(operation)(error));
        }
        Ok(result)
    }
    /// Marks an alert as matched and acted upon: a restart does not process it again.
    pub fn processed(&mut self, alert_id: i64) -> Result<(), JournalError> {
        self.connection
            .prepare_cached("UPDATE alerts SET processed = 1 WHERE id = ?1")
            .and_then(|mut statement| statement.execute(params![alert_id]))
            .map_err(write_error("marking an alert processed"))?;
        Ok(())
    }

    /// Alerts accepted but not processed when the server stopped, oldest first.
    pub fn unprocessed_alerts(&self) -> Result<Vec<StoredAlert>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT id, source, payload FROM alerts WHERE processed = 0 ORDER BY id",
            )
            .map_err(write_error("reading unprocessed alerts"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(StoredAlert {
                    id: row.get(0)?,
                    source: row.get(1)?,
                    payload: row.get(2)?,
                })
            })
            .map_err(write_error("reading unprocessed alerts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading unprocessed alerts"))
    }

    /// Starts a run of a rule for an alert, unless its firing episode already started one,
    /// its cooldown key is cooling down, or its concurrency key is taken.
    ///
    /// Atomic on its own: in its own savepoint, or, inside a [`JournalHandle`]'s write,
    /// in that write's.
    pub fn admit(&mut self, admission: &Admission) -> Result<Admitted, JournalError> {
        self.atomically("starting a run", |connection, stored_definitions| {
            admit_on(connection, stored_definitions, admission)
        })
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
            .prepare_cached(
                "INSERT INTO task_events (run_id, task, state, at, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| statement.execute(params![run_id, task, state, at, detail]))
            .map_err(write_error("recording a task transition"))?;
        Ok(())
    }

    /// The schema version the store holds, as written (what `/healthz` reads to see the
    /// journal answer).
    pub fn schema_version(&self) -> Result<Option<String>, JournalError> {
        stored_schema_version(&self.connection)
    }

    /// Records that an action started at `at` (its first attempt, right where its `started`
    /// is journaled), and forgets the starts of more than an hour before.
    pub fn action_started(&mut self, at: i64) -> Result<(), JournalError> {
        self.connection
            .prepare_cached("DELETE FROM action_starts WHERE at < ?1")
            .and_then(|mut statement| statement.execute(params![at.saturating_sub(3_600_000)]))
            .map_err(write_error("forgetting old action starts"))?;
        self.connection
            .prepare_cached("INSERT INTO action_starts (at) VALUES (?1)")
            .and_then(|mut statement| statement.execute(params![at]))
            .map_err(write_error("recording an action start"))?;
        Ok(())
    }

    /// When the actions started since `since` started, oldest first (the rate limit's window).
    pub fn action_starts_since(&self, since: i64) -> Result<Vec<i64>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT at FROM action_starts WHERE at > ?1 ORDER BY at")
            .map_err(write_error("reading action starts"))?;
        let rows = statement
            .query_map(params![since], |row| row.get::<_, i64>(0))
            .map_err(write_error("reading action starts"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(write_error("reading action starts"))
    }

    /// Sets the state of a run that goes on (`running`, `paused`).
    pub fn run_state(&mut self, run_id: i64, state: &str) -> Result<(), JournalError> {
        self.connection
            .prepare_cached("UPDATE runs SET state = ?2 WHERE id = ?1 AND finished_at IS NULL")
            .and_then(|mut statement| statement.execute(params![run_id, state]))
            .map_err(write_error("changing a run's state"))?;
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
        self.connection
            .prepare_cached(
                "UPDATE runs SET state = ?2, report = ?3, finished_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut statement| statement.execute(params![run_id, state, report, at]))
            .map_err(write_error("finishing a run"))?;
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
        self.connection
            .prepare_cached(
                "INSERT INTO suppressions (alert_id, rule, reason, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| {
                statement.execute(params![alert_id, rule, reason, detail, at])
            })
            .map_err(write_error("recording a suppression"))?;
        Ok(())
    }

    pub fn suppressions(&self, limit: u32) -> Result<Vec<SuppressionRow>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT alert_id, rule, reason, detail, at FROM suppressions ORDER BY rowid DESC LIMIT ?1",
            )
            .map_err(write_error("reading suppressions"))?;
        let rows = statement
            .query_map([i64::from(limit)], suppression_row)
            .map_err(write_error("reading suppressions"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading suppressions"))
    }

    /// Runs that were started and never finished: after a crash, each must be resumed or
    /// closed explicitly.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>, JournalError> {
        self.query_runs(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NULL ORDER BY id"),
            [],
        )
    }

    /// The most recent runs, newest first.
    pub fn runs(&self, limit: u32) -> Result<Vec<RunRow>, JournalError> {
        self.query_runs(
            &format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"),
            [i64::from(limit)],
        )
    }

    pub fn run(&self, run_id: i64) -> Result<Option<RunRow>, JournalError> {
        Ok(self
            .query_runs(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [run_id],
            )?
            .into_iter()
            .next())
    }

    /// The playbook definition a run started with (see [`Admission::definition`]).
    pub fn run_definition(&self, run_id: i64) -> Result<Option<String>, JournalError> {
        self.connection
            .query_row(
                "SELECT COALESCE(definitions.body, runs.definition) FROM runs
                 LEFT JOIN definitions ON definitions.key = runs.definition WHERE runs.id = ?1",
                [run_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(write_error("reading a run's playbook"))
    }

    pub fn alert_count(&self) -> Result<i64, JournalError> {
        self.connection
            .query_row("SELECT COUNT(*) FROM alerts", [], |row| row.get(0))
            .map_err(write_error("counting alerts"))
    }

    /// The raw payload an alert came in, with its source.
    pub fn alert(&self, alert_id: i64) -> Result<Option<StoredAlert>, JournalError> {
        self.connection
            .query_row(
                "SELECT id, source, payload FROM alerts WHERE id = ?1",
                [alert_id],
                |row| {
                    Ok(StoredAlert {
                        id: row.get(0)?,
                        source: row.get(1)?,
                        payload: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(write_error("reading an alert"))
    }

    /// The transitions of one run's tasks, in order.
    pub fn task_events(&self, run_id: i64) -> Result<Vec<TaskEventRow>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT task, state, at, detail FROM task_events WHERE run_id = ?1 ORDER BY rowid",
            )
            .map_err(write_error("reading task transitions"))?;
        let rows = statement
            .query_map([run_id], |row| {
                Ok(TaskEventRow {
                    task: row.get(0)?,
                    state: row.get(1)?,
                    at: row.get(2)?,
                    detail: row.get(3)?,
                })
            })
            .map_err(write_error("reading task transitions"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading task transitions"))
    }

    pub(super) fn query_runs<P: rusqlite::Params>(
        &self,
        sql: &str,
        parameters: P,
    ) -> Result<Vec<RunRow>, JournalError> {
        let mut statement = self
            .connection
            .prepare_cached(sql)
            .map_err(write_error("reading runs"))?;
        let rows = statement
            .query_map(parameters, run_row)
            .map_err(write_error("reading runs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(write_error("reading runs"))
    }

    /// Forgets what ended before `before` (wall ms): finished runs with their events and
    /// finished reverts, suppressions, and processed alerts no remaining run points to.
    /// Unfinished runs, pending reverts and unprocessed alerts are always kept, and so are
    /// the episode keys, so an old episode delivered again still starts no second run.
    /// Returns how many rows went.
    pub fn prune(&mut self, before: i64) -> Result<usize, JournalError> {
        let savepoint = self
            .connection
            .savepoint()
            .map_err(write_error("pruning"))?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM task_events WHERE run_id IN
               (SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1
                AND id NOT IN (SELECT run_id FROM reverts WHERE state IN ('pending', 'reverting')))",
            "DELETE FROM feedback WHERE run_id IN
               (SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1
                AND id NOT IN (SELECT run_id FROM reverts WHERE state IN ('pending', 'reverting')))",
            "DELETE FROM reverts WHERE state NOT IN ('pending', 'reverting') AND run_id IN
               (SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1)",
            "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1
               AND id NOT IN (SELECT run_id FROM reverts)",
            "DELETE FROM suppressions WHERE at < ?1",
            "DELETE FROM audit WHERE at < ?1",
            "DELETE FROM alerts WHERE processed = 1 AND received_at < ?1
               AND id NOT IN (SELECT alert_id FROM runs)
               AND id NOT IN (SELECT alert_id FROM suppressions)",
        ] {
            removed += savepoint
                .execute(sql, [before])
                .map_err(write_error("pruning"))?;
        }
        // Playbook versions no remaining run started with.
        self.stored_definitions.clear();
        savepoint
            .execute(
                "DELETE FROM definitions WHERE key NOT IN (SELECT definition FROM runs)",
                [],
            )
            .map_err(write_error("pruning"))?;
        savepoint.commit().map_err(write_error("pruning"))?;
        Ok(removed)
    }

    /// Forgets everything journaled, keeping the schema and the prepared statements: a
    /// journal as new, for `medic test`, which runs thousands of short engines.
    pub fn clear(&mut self) -> Result<(), JournalError> {
        self.connection
            .execute_batch(
                "SAVEPOINT clear;
                 DELETE FROM task_events; DELETE FROM suppressions; DELETE FROM reverts;
                 DELETE FROM feedback; DELETE FROM audit; DELETE FROM sns_messages;
                 DELETE FROM action_starts;
                 DELETE FROM episodes; DELETE FROM runs; DELETE FROM definitions;
                 DELETE FROM alerts; DELETE FROM meta WHERE key != 'schema_version';
                 RELEASE clear;",
            )
            .map_err(write_error("clearing the journal"))?;
        self.stored_definitions.clear();
        Ok(())
    }

    /// A setting that must survive restarts (the kill switch).
    pub fn setting(&self, key: &str) -> Result<Option<String>, JournalError> {
        self.connection
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(write_error("reading a setting"))
    }

    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), JournalError> {
        self.connection
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(write_error("writing a setting"))?;
        Ok(())
    }
}

mod handle;
mod history;
pub mod pg;
mod reverts;
mod sources;
mod store;

pub use handle::{JournalHandle, Submitted};
pub use history::{AlertSummary, AuditEntry, FeedbackRow, NewAuditEntry, RunQuery};
pub use store::Store;
