//! [`JournalHandle`]: the journal on its own thread, committing in groups (see the module
//! docs of [`super`]), and the checkpointer beside it.

use super::{Journal, JournalError, Store};
use rusqlite::Connection;
use std::path::Path;

/// How often the checkpointer copies committed pages into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl Journal {
    /// Runs one statement of the group-commit protocol, prepared once (they run for every
    /// write of every group).
    fn control(&mut self, sql: &str) -> rusqlite::Result<()> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]).map(drop))
    }

    pub(super) fn begin(&mut self) -> Result<(), JournalError> {
        self.control("BEGIN IMMEDIATE")
            .map_err(|error| JournalError::Commit(error.to_string()))
    }

    pub(super) fn commit(&mut self) -> Result<(), JournalError> {
        self.control("COMMIT")
            .map_err(|error| JournalError::Commit(error.to_string()))
    }

    /// Each write of a group runs inside its own savepoint: a write that fails leaves
    /// nothing behind, and the others still commit.
    pub(super) fn write_begin(&mut self) -> bool {
        self.in_write = self.control("SAVEPOINT medic_write").is_ok();
        self.in_write
    }

    pub(super) fn write_end(&mut self, keep: bool) {
        self.in_write = false;
        // A failure here surfaces at the group's COMMIT.
        if !keep {
            self.stored_definitions.clear();
            let _ = self.control("ROLLBACK TO medic_write");
        }
        let _ = self.control("RELEASE medic_write");
    }

    pub(super) fn rollback(&mut self) {
        self.stored_definitions.clear();
        // Nothing more can be done if even the rollback fails: the next BEGIN will say so.
        let _ = self.connection.execute_batch("ROLLBACK");
    }
}

/// Called once the group a write belonged to was committed (or failed to commit).
type Completion = Box<dyn FnOnce(Result<(), &JournalError>) + Send>;
/// A write: given the journal (or `None` when its group could not begin a transaction), it
/// does its work and says whether it succeeded.
type Command = Box<dyn FnOnce(Option<&mut Store>) -> (Completion, bool) + Send>;

/// A write, and whether it goes ahead of the queue ([`JournalHandle::call_urgent`]).
struct Queued {
    urgent: bool,
    /// In a savepoint of its own; a write of one statement needs none (SQLite undoes a
    /// failed statement), and a savepoint costs a copy of each page it first touches.
    guarded: bool,
    command: Command,
}

/// How many writes at most go into one group commit.
const GROUP_LIMIT: usize = 4_096;
/// How long a group's writes may run before it commits (the writes still queued go into
/// the next group): a webhook waits at most about two of these, whatever the backlog.
const GROUP_BUDGET: std::time::Duration = std::time::Duration::from_millis(2);
/// How long a group goes on with other writes once an urgent one is in it.
const URGENT_SLACK: std::time::Duration = std::time::Duration::from_micros(300);

/// The journal on its own thread, shared by the server's tasks; see the module docs.
#[derive(Clone)]
pub struct JournalHandle {
    transport: Transport,
    /// Held while any handle lives; the checkpointer stops when it cannot be upgraded.
    _alive: std::sync::Arc<()>,
}

/// How a handle's writes reach the journal.
#[derive(Clone)]
enum Transport {
    /// To the writer thread, which commits in groups.
    Thread(std::sync::mpsc::Sender<Queued>),
    /// Run on the caller's thread as they are queued ([`JournalHandle::inline`]).
    Inline(std::sync::Arc<std::sync::Mutex<Store>>),
}

impl JournalHandle {
    /// Moves the journal to a new thread that commits in groups.
    ///
    /// A journal on disk also gets a checkpointer: a thread with its own connection that
    /// copies committed pages from the WAL into the database file every
    /// [`CHECKPOINT_EVERY`] (a passive checkpoint, which never blocks the writer), so the
    /// writer's commits do not wait for the database file's copy and its fsync.
    pub fn spawn(journal: impl Into<Store>) -> Result<JournalHandle, JournalError> {
        let journal: Store = journal.into();
        let alive = std::sync::Arc::new(());
        let path = journal.sqlite_path();
        let (sender, receiver) = std::sync::mpsc::channel::<Queued>();
        std::thread::Builder::new()
            .name("medic-journal".into())
            .spawn(move || writer(journal, receiver))
            .map_err(|error| {
                JournalError::Commit(format!("cannot start the journal thread: {error}"))
            })?;
        if let Some(path) = path {
            let weak = std::sync::Arc::downgrade(&alive);
            std::thread::Builder::new()
                .name("medic-checkpoint".into())
                .spawn(move || checkpointer(&path, &weak))
                .map_err(|error| {
                    JournalError::Commit(format!("cannot start the checkpoint thread: {error}"))
                })?;
        }
        Ok(JournalHandle {
            transport: Transport::Thread(sender),
            _alive: alive,
        })
    }

    /// A handle that runs each write on the caller's thread the moment it is queued, in
    /// its own transaction, so every answer is ready at once: for an in-memory journal under
    /// tokio's paused clock (`medic test`, docs/notes/026-medic-test-design.md). With the
    /// writer on its own thread, tokio cannot see that a commit is under way and moves a
    /// paused clock to the next timer while the engine waits for it; inline, nothing waits.
    /// The writes keep their order, their savepoints and their answers; there are no
    /// groups and no checkpointer.
    pub fn inline(journal: impl Into<Store>) -> JournalHandle {
        JournalHandle {
            transport: Transport::Inline(std::sync::Arc::new(std::sync::Mutex::new(
                journal.into(),
            ))),
            _alive: std::sync::Arc::new(()),
        }
    }

    /// Hands a write to the journal.
    fn post(&self, queued: Queued) -> Result<(), JournalError> {
        match &self.transport {
            Transport::Thread(sender) => sender.send(queued).map_err(|_| JournalError::Closed),
            Transport::Inline(journal) => {
                // A panic while the lock was held leaves no half-done write (SQLite rolls
                // back an open transaction); the journal stays usable.
                let mut journal = journal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let began = journal.begin();
                let completion =
                    perform(&mut journal, began.is_ok(), queued.guarded, queued.command);
                finish_group(&mut journal, began, vec![completion]);
                Ok(())
            }
        }
    }

    /// Runs `work` on the journal; answers once its group commit is durable.
    pub async fn call<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, JournalError> + Send + 'static,
    {
        self.queue(false, work).await
    }

    /// As [`JournalHandle::call`], but ahead of every write not yet begun that is not urgent
    /// itself: for a webhook's alerts, whose sender waits, and which nothing queued
    /// before depends on. Urgent writes keep their order among themselves.
    pub async fn call_urgent<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, JournalError> + Send + 'static,
    {
        self.queue(true, work).await
    }

    async fn queue<T, F>(&self, urgent: bool, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, JournalError> + Send + 'static,
    {
        self.enqueue(urgent, work)?.await
    }

    /// Queues `work` now, in the order of this call, and returns what answers once its
    /// group commit is durable: a caller can queue its next write before hearing of this
    /// one (the writes are run in the order they were queued).
    pub fn submit<T, F>(&self, work: F) -> Result<Submitted<T>, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, JournalError> + Send + 'static,
    {
        self.enqueue(false, work)
    }

    fn enqueue<T, F>(&self, urgent: bool, work: F) -> Result<Submitted<T>, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, JournalError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let command = command(work, move |result| {
            // The caller may have gone away (a client hung up); the write stands.
            let _ = reply.send(result);
        });
        self.post(Queued {
            urgent,
            guarded: true,
            command,
        })?;
        Ok(Submitted { answer })
    }

    /// Queues `work` without waiting for its commit: for writes that need not be durable
    /// before the caller goes on (a query's transitions, a dry run's). The queue is first in,
    /// first out, so the write commits in the same group as, or an earlier one than, any
    /// write queued after it: a caller that later awaits a [`JournalHandle::call`] knows both
    /// are durable. A failure is logged, since nobody waits to hear it. `work` must be
    /// atomic by itself (one statement): no savepoint surrounds it.
    pub fn send<F>(&self, what: &'static str, work: F) -> Result<(), JournalError>
    where
        F: FnOnce(&mut Store) -> Result<(), JournalError> + Send + 'static,
    {
        let command = command(work, move |result| {
            if let Err(error) = result {
                tracing::error!(%error, "could not journal {what}");
            }
        });
        self.post(Queued {
            urgent: false,
            guarded: false,
            command,
        })
    }
}

/// A queued write's answer ([`JournalHandle::submit`]).
pub struct Submitted<T> {
    answer: tokio::sync::oneshot::Receiver<Result<T, JournalError>>,
}

impl<T> std::future::Future for Submitted<T> {
    type Output = Result<T, JournalError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.answer)
            .poll(context)
            .map(|answer| answer.map_err(|_| JournalError::Closed)?)
    }
}

/// A write of `work` for the writer thread; `then` hears its result once its group committed
/// (or failed to).
fn command<T, F>(work: F, then: impl FnOnce(Result<T, JournalError>) + Send + 'static) -> Command
where
    T: Send + 'static,
    F: FnOnce(&mut Store) -> Result<T, JournalError> + Send + 'static,
{
    Box::new(move |journal: Option<&mut Store>| {
        let result = match journal {
            Some(journal) => work(journal),
            None => Err(JournalError::Commit(
                "the transaction could not begin".into(),
            )),
        };
        let succeeded = result.is_ok();
        let completion: Completion = Box::new(move |committed: Result<(), &JournalError>| {
            then(match committed {
                Ok(()) => result,
                Err(error) => Err(JournalError::Commit(error.to_string())),
            });
        });
        (completion, succeeded)
    })
}

/// Checkpoints the WAL of the journal at `path` until the last [`JournalHandle`] is gone.
/// A failure is logged once and retried; the writer's own backstop checkpoint still bounds
/// the WAL.
fn checkpointer(path: &Path, alive: &std::sync::Weak<()>) {
    let connection = match Connection::open(path) {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "no checkpointer: the writer checkpoints the journal itself");
            return;
        }
    };
    let _ = connection.busy_timeout(std::time::Duration::from_secs(1));
    let mut failing = false;
    while alive.upgrade().is_some() {
        std::thread::sleep(CHECKPOINT_EVERY);
        let result = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        match result {
            Ok(_) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "the journal's checkpoint failed; retrying");
            }
            Err(_) => {}
        }
    }
}

fn writer(mut journal: Store, receiver: std::sync::mpsc::Receiver<Queued>) {
    // Writes received but not yet begun, urgent ones first, each lane in arrival order.
    let mut urgent: std::collections::VecDeque<(bool, Command)> = std::collections::VecDeque::new();
    let mut waiting: std::collections::VecDeque<(bool, Command)> =
        std::collections::VecDeque::new();
    let take = |queued: Queued,
                urgent: &mut std::collections::VecDeque<(bool, Command)>,
                waiting: &mut std::collections::VecDeque<(bool, Command)>| {
        if queued.urgent {
            urgent.push_back((queued.guarded, queued.command));
        } else {
            waiting.push_back((queued.guarded, queued.command));
        }
    };
    loop {
        if urgent.is_empty() && waiting.is_empty() {
            match receiver.recv() {
                Ok(queued) => take(queued, &mut urgent, &mut waiting),
                Err(_) => return,
            }
        }
        let began = journal.begin();
        let mut deadline = std::time::Instant::now() + GROUP_BUDGET;
        let mut completions: Vec<Completion> = Vec::new();
        // Urgent writes first, also those that arrive while the group runs; the others until
        // the budget is spent (at least one, so the queue always moves). Once an urgent write
        // is in, the group commits soon after: its sender is waiting.
        while completions.len() < GROUP_LIMIT {
            // Everything that arrived, however much: an urgent write must not wait in the
            // channel behind the writes ahead of it there.
            while let Ok(queued) = receiver.try_recv() {
                take(queued, &mut urgent, &mut waiting);
            }
            let now = std::time::Instant::now();
            let (guarded, command) = match urgent.pop_front() {
                Some(command) => {
                    deadline = deadline.min(now + URGENT_SLACK);
                    command
                }
                None if completions.is_empty() || now < deadline => match waiting.pop_front() {
                    Some(command) => command,
                    None => break,
                },
                None => break,
            };
            completions.push(perform(&mut journal, began.is_ok(), guarded, command));
        }
        finish_group(&mut journal, began, completions);
    }
}

/// Runs one write in the group's open transaction (`began`: whether it opened), in a
/// savepoint of its own when `guarded`; returns what tells its caller once the group ends.
fn perform(journal: &mut Store, began: bool, guarded: bool, command: Command) -> Completion {
    let guarded = guarded || journal.needs_savepoints();
    if !began || (guarded && !journal.write_begin()) {
        return command(None).0;
    }
    let (completion, succeeded) = command(Some(journal));
    if guarded {
        journal.write_end(succeeded);
    }
    completion
}

/// Commits a group (or rolls it back when it cannot) and tells each write's caller.
fn finish_group(
    journal: &mut Store,
    began: Result<(), JournalError>,
    completions: Vec<Completion>,
) {
    let committed = began.and_then(|()| journal.commit());
    if committed.is_err() {
        journal.rollback();
    }
    for completion in completions {
        completion(committed.as_ref().map(|_| ()));
    }
}
