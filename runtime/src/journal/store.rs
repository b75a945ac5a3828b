//! [`Store`]: the journal the engine writes to through [`super::JournalHandle`], on SQLite
//! ([`Journal`], the default: one node, a file) or on PostgreSQL ([`PgJournal`], several
//! nodes on one database, note 032). Each method is the one of the store it holds; both take
//! the same arguments and give the same answers (the PostgreSQL store's tests check it), so
//! the engine does not know which it writes to.

use super::history::{AlertSummary, AuditEntry, FeedbackRow, NewAuditEntry, RunQuery};
use super::pg::PgJournal;
use super::{
    AcceptedAlert, Admission, Admitted, Journal, JournalError, RevertRow, RunRow, StoredAlert,
    SuppressionRow, TaskEventRow,
};
use crate::stats::{EpisodeFact, Facts};
use std::collections::BTreeMap;

/// The journal on one of its two databases.
pub enum Store {
    Sqlite(Journal),
    /// Boxed: the client is large, and a store is made once per server.
    Postgres(Box<PgJournal>),
}

impl From<Journal> for Store {
    fn from(journal: Journal) -> Store {
        Store::Sqlite(journal)
    }
}

impl From<PgJournal> for Store {
    fn from(journal: PgJournal) -> Store {
        Store::Postgres(Box::new(journal))
    }
}

/// Each method, passed on to the store held.
macro_rules! delegate {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub fn $name(&mut self, $($arg: $ty),*) -> Result<$ret, JournalError> {
                    match self {
                        Store::Sqlite(journal) => journal.$name($($arg),*),
                        Store::Postgres(journal) => journal.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

delegate! {
    /// Makes a batch of alerts durable at once; their ids in order.
    fn accept(alerts: &[AcceptedAlert], received_at: i64) -> Vec<i64>;
    fn processed(alert_id: i64) -> ();
    fn unprocessed_alerts() -> Vec<StoredAlert>;
    /// Starts a run unless its episode did, its cooldown holds or its concurrency is full.
    fn admit(admission: &Admission) -> Admitted;
    fn task_event(run_id: i64, task: &str, state: &str, detail: &str, at: i64) -> ();
    fn schema_version() -> Option<String>;
    fn action_started(at: i64) -> ();
    fn action_starts_since(since: i64) -> Vec<i64>;
    fn run_state(run_id: i64, state: &str) -> ();
    fn finish_run(run_id: i64, state: &str, report: &str, at: i64) -> ();
    fn suppress(alert_id: i64, rule: &str, reason: &str, detail: &str, at: i64) -> ();
    fn suppressions(limit: u32) -> Vec<SuppressionRow>;
    fn unfinished_runs() -> Vec<RunRow>;
    fn runs(limit: u32) -> Vec<RunRow>;
    fn run(run_id: i64) -> Option<RunRow>;
    fn run_definition(run_id: i64) -> Option<String>;
    fn alert_count() -> i64;
    fn alert(alert_id: i64) -> Option<StoredAlert>;
    fn task_events(run_id: i64) -> Vec<TaskEventRow>;
    fn prune(before: i64) -> usize;
    fn clear() -> ();
    fn setting(key: &str) -> Option<String>;
    fn set_setting(key: &str, value: &str) -> ();
    fn audit(entry: &NewAuditEntry) -> i64;
    fn audit_log(limit: u32, before: Option<i64>, run: Option<i64>) -> Vec<AuditEntry>;
    fn add_feedback(feedback: &FeedbackRow) -> ();
    fn feedback_of_run(run_id: i64) -> Vec<FeedbackRow>;
    fn facts(since: i64) -> Facts;
    fn alert_summaries(limit: u32, before: Option<i64>, name: Option<&str>) -> Vec<AlertSummary>;
    fn episode(fingerprint: &str, starts_at: i64) -> Option<EpisodeFact>;
    fn runs_page(query: &RunQuery) -> Vec<RunRow>;
    fn runs_needing_a_human(since: i64, limit: u32) -> Vec<RunRow>;
    fn claim_revert(revert_id: i64) -> Option<RevertRow>;
    fn reverts_on_resolve(fingerprint: &str, starts_at: i64) -> Vec<i64>;
    fn reverts(state: &str) -> Vec<RevertRow>;
    fn reverts_already_resolved() -> Vec<i64>;
    fn revert(revert_id: i64) -> Option<RevertRow>;
    fn reopen_revert(revert_id: i64, by: &str, at: i64) -> bool;
    fn acknowledge_revert(revert_id: i64, by: &str, reason: &str, at: i64) -> bool;
    fn revert_counts() -> BTreeMap<String, i64>;
    fn revert_done(revert_id: i64, state: &str, detail: &str, at: i64) -> ();
    fn reverts_of_run(run_id: i64) -> Vec<RevertRow>;
    fn sns_seen(message_id: &str) -> bool;
    fn sns_taken(message_id: &str, topic: &str, at: i64, forget_before: i64) -> ();
    fn open_episode(fingerprint: &str, same_label: Option<(&str, &str)>) -> Option<i64>;
}

impl Store {
    /// Schedules the undoing of an action; the revert's id.
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
        match self {
            Store::Sqlite(journal) => journal.schedule_revert(
                run_id,
                task,
                function,
                arguments,
                output,
                fingerprint,
                due_at,
                on_resolve,
            ),
            Store::Postgres(journal) => journal.schedule_revert(
                run_id,
                task,
                function,
                arguments,
                output,
                fingerprint,
                due_at,
                on_resolve,
            ),
        }
    }

    /// Records an action's start in the rate window (its first attempt, `count`), in the
    /// write of its `started`. On SQLite (one node) the engine's guardrails decided already;
    /// on PostgreSQL the kill switch and the window are decided here, for every node.
    pub fn start_action(
        &mut self,
        at: i64,
        count: bool,
        limit: Option<u32>,
    ) -> Result<(), JournalError> {
        match self {
            Store::Sqlite(journal) if count => journal.action_started(at),
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(journal) => journal.start_action(count, limit),
        }
    }

    /// The PostgreSQL store, for what only several nodes need (leases, takeovers).
    pub fn postgres(&mut self) -> Option<&mut PgJournal> {
        match self {
            Store::Postgres(journal) => Some(journal),
            Store::Sqlite(_) => None,
        }
    }

    // ------------------------------------------------------------ the handle's protocol

    pub(super) fn begin(&mut self) -> Result<(), JournalError> {
        match self {
            Store::Sqlite(journal) => journal.begin(),
            Store::Postgres(journal) => journal.group_begin(),
        }
    }

    pub(super) fn commit(&mut self) -> Result<(), JournalError> {
        match self {
            Store::Sqlite(journal) => journal.commit(),
            Store::Postgres(journal) => journal.group_commit(),
        }
    }

    pub(super) fn rollback(&mut self) {
        match self {
            Store::Sqlite(journal) => journal.rollback(),
            Store::Postgres(journal) => journal.group_rollback(),
        }
    }

    /// Opens a write's savepoint (see [`Journal::write_begin`]).
    pub(super) fn write_begin(&mut self) -> bool {
        match self {
            Store::Sqlite(journal) => journal.write_begin(),
            Store::Postgres(journal) => journal.write_begin(),
        }
    }

    pub(super) fn write_end(&mut self, keep: bool) {
        match self {
            Store::Sqlite(journal) => journal.write_end(keep),
            Store::Postgres(journal) => journal.write_end(keep),
        }
    }

    /// Whether a write must have a savepoint even when it is one statement: on PostgreSQL a
    /// failed statement aborts the whole transaction, so every write has one.
    pub(super) fn needs_savepoints(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// The database file, for the SQLite store's checkpointer.
    pub(super) fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Store::Sqlite(journal) => journal
                .connection
                .path()
                .filter(|path| !path.is_empty())
                .map(std::path::PathBuf::from),
            Store::Postgres(_) => None,
        }
    }
}
