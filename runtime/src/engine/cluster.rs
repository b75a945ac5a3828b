//! Several nodes on one PostgreSQL store (issue 14, docs/ha.md, note 032): this node's
//! lease, renewed by a heartbeat on a connection of its own; the local deadline past which
//! it starts no action even when the database cannot tell it so; what it does when its lease
//! lapsed (it abandons its runs, registers again, and takes them back as crash recovery
//! would); and the sweep that takes over the runs, alerts and reverts of dead nodes.
//!
//! The database decides everything that two nodes could both decide (note 032): who owns a
//! run and under which fencing number, admissions, the kill switch and the rate window at
//! every action start. This module only keeps this node on the right side of those rows.

use super::*;
use crate::executor::{CallFuture, Caller};
use crate::journal::pg::{Lease, PgJournal};
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

/// How this node takes part in a cluster on a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The store's URL (also used for the heartbeat's own connection).
    pub url: String,
    /// This node's name, unique in the cluster (`[store] node`, default the host name).
    pub node: String,
    /// How long a lease holds without renewal (`[store] lease_seconds`, default 10 s);
    /// renewed every third of it.
    pub lease_ms: i64,
    /// How long after a lease lapsed another node may take its runs (default 2 s): covers
    /// the lapsed node's local margin and the time it needs to stop.
    pub grace_ms: i64,
    /// How often each node looks for the runs of dead nodes (default 2 s).
    pub sweep_ms: i64,
}

/// The default of [`ClusterConfig::lease_ms`].
pub const DEFAULT_LEASE_MS: i64 = 10_000;

impl ClusterConfig {
    pub fn new(url: impl Into<String>, node: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node: node.into(),
            lease_ms: DEFAULT_LEASE_MS,
            grace_ms: 2_000,
            sweep_ms: 2_000,
        }
    }

    /// How much earlier than the database this node considers its lease gone: a tenth of
    /// the lease, at least 100 ms.
    fn margin_ms(&self) -> i64 {
        (self.lease_ms / 10).max(100)
    }
}

/// This node's lease as it knows it, on its own clock (monotonic, so a paused process
/// finds it lapsed when it continues).
pub(crate) struct LeaseClock {
    base: Instant,
    /// Milliseconds since `base` until which the lease surely holds in the database.
    deadline: AtomicI64,
    /// The fencing number of the current registration.
    fence: AtomicI64,
    /// Whether the heartbeat's last attempt reached the store.
    reachable: AtomicBool,
}

impl LeaseClock {
    fn new() -> LeaseClock {
        LeaseClock {
            base: Instant::now(),
            deadline: AtomicI64::new(i64::MIN),
            fence: AtomicI64::new(0),
            reachable: AtomicBool::new(true),
        }
    }

    fn since_base(&self, at: Instant) -> i64 {
        i64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether the lease holds now.
    pub(crate) fn holds(&self) -> bool {
        self.since_base(Instant::now()) < self.deadline.load(Ordering::SeqCst)
    }

    /// A renewal that began at `began` succeeded: the database's lease runs at least until
    /// `began + lease` (it was set after `began`), and this node's until a margin before.
    fn extend(&self, began: Instant, config: &ClusterConfig) {
        let until = self
            .since_base(began)
            .saturating_add(config.lease_ms)
            .saturating_sub(config.margin_ms());
        self.deadline.store(until, Ordering::SeqCst);
        self.reachable.store(true, Ordering::SeqCst);
    }

    fn expire(&self) {
        self.deadline.store(i64::MIN, Ordering::SeqCst);
    }

    pub(crate) fn fence(&self) -> i64 {
        self.fence.load(Ordering::SeqCst)
    }
}

/// What the heartbeat tells the engine.
enum LeaseEvent {
    /// The lease lapsed (in the database): every run of this node must stop now.
    Lapsed,
    /// Registered again under a new fencing number.
    Registered(Lease),
    /// The kill switch as the store has it (any node may have changed it).
    KillSwitch(bool),
    /// Operators asked other nodes for runs, maybe this node's (`forward.rs`).
    Controls,
}

/// The cluster part of the engine's state.
pub(super) struct Cluster {
    pub(super) config: ClusterConfig,
    pub(super) lease: Arc<LeaseClock>,
    /// The tasks of the runs in progress on this node, to stop them when the lease lapses.
    pub(super) tasks: Mutex<BTreeMap<i64, tokio::task::JoinHandle<()>>>,
    /// Runs of this node whose end could not be written (the store was out of reach): the
    /// sweep resumes them once it can, as a restart would, unless another node has them.
    pub(super) orphans: Mutex<BTreeSet<i64>>,
    /// Held by the sweep in progress.
    pub(super) sweeping: tokio::sync::Mutex<()>,
}

/// Registers this node on a connection of its own (the heartbeat's), before the engine
/// recovers anything: what it then finds unfinished is its own.
pub(super) fn register(
    config: &ClusterConfig,
) -> Result<(PgJournal, Lease, Arc<LeaseClock>), JournalError> {
    let mut heartbeat = PgJournal::open(&config.url)?;
    let clock = Arc::new(LeaseClock::new());
    let began = Instant::now();
    let lease = heartbeat.register(&config.node, config.lease_ms)?;
    clock.fence.store(lease.fence, Ordering::SeqCst);
    clock.extend(began, config);
    Ok((heartbeat, lease, clock))
}

impl Engine {
    pub(super) fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// Whether this node runs in a cluster and its store answered the heartbeat last time
    /// (`None` on a single node).
    pub fn store_reachable(&self) -> Option<bool> {
        self.cluster()
            .map(|cluster| cluster.lease.reachable.load(Ordering::SeqCst))
    }

    /// This node's name and fencing number, in a cluster.
    pub fn node(&self) -> Option<(String, i64)> {
        self.cluster()
            .map(|cluster| (cluster.config.node.clone(), cluster.lease.fence()))
    }

    /// Gives the writer's connection the lease, takes over what is this node's to take,
    /// and starts the heartbeat and the sweep (from [`Engine::start`], before recovery).
    pub(super) async fn join_cluster(
        &self,
        heartbeat: PgJournal,
        lease: Lease,
    ) -> Result<(), EngineError> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let grace = cluster.config.grace_ms;
        self.inner
            .journal
            .call(move |journal| {
                let Some(pg) = journal.postgres() else {
                    return Err(JournalError::Commit(
                        "a cluster needs the PostgreSQL store".into(),
                    ));
                };
                pg.adopt(lease);
                // Its own runs from an earlier life, runs nobody owns, and those of dead
                // nodes: recovery then finds them among this node's unfinished runs.
                pg.take_over(grace)?;
                Ok(())
            })
            .await?;
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let config = cluster.config.clone();
        let clock = Arc::clone(&cluster.lease);
        std::thread::Builder::new()
            .name("medic-heartbeat".into())
            .spawn(move || beat(heartbeat, &config, &clock, &events))
            .map_err(|error| {
                JournalError::Commit(format!("cannot start the heartbeat thread: {error}"))
            })?;
        tokio::spawn(follow_lease(self.clone(), receiver));
        tokio::spawn(sweep_forever(self.clone()));
        Ok(())
    }

    /// Remembers a run's task, to stop it when the lease lapses.
    pub(super) fn track_run(&self, run: i64, task: tokio::task::JoinHandle<()>) {
        if let Some(cluster) = self.cluster()
            && let Ok(mut tasks) = cluster.tasks.lock()
        {
            tasks.retain(|_, task| !task.is_finished());
            tasks.insert(run, task);
        }
    }

    /// Who calls for `run`: the toolbox a run of this node calls through.
    pub(super) fn toolbox_for(&self, run: i64) -> Arc<dyn Toolbox> {
        match self.cluster() {
            Some(cluster) => Arc::new(OnBehalf {
                inner: Arc::clone(&self.inner.toolbox),
                caller: Caller {
                    run,
                    fence: cluster.lease.fence(),
                },
            }),
            None => Arc::clone(&self.inner.toolbox),
        }
    }

    /// A run of this node ended without its end written: on a cluster, the sweep takes it
    /// up again once the store answers (on one node, the next start does).
    pub(super) fn orphaned(&self, run: i64) {
        if let Some(cluster) = self.cluster()
            && let Ok(mut orphans) = cluster.orphans.lock()
        {
            orphans.insert(run);
        }
    }

    /// Stops a run on this node without writing anything for it: the store refused a write
    /// (another node owns it now, or this node's lease lapsed).
    pub(super) fn lose_run(&self, run: i64) {
        tracing::warn!(run, "this node no longer owns the run: it stops here");
        let task = self
            .cluster()
            .and_then(|cluster| cluster.tasks.lock().ok()?.remove(&run));
        self.forget_run(run);
        if let Some(task) = task {
            task.abort();
        }
    }

    fn forget_run(&self, run: i64) {
        let was_active = self
            .inner
            .active
            .lock()
            .is_ok_and(|mut active| active.remove(&run).is_some());
        if was_active {
            self.inner.metrics.active_runs.dec();
        }
        if let Ok(mut backlog) = self.inner.backlog.lock() {
            backlog.runs.remove(&run);
        }
        self.inner.progress.notify_waiters();
    }

    /// The lease lapsed: every run of this node stops, and is over before the node holds a
    /// lease again (then it takes them back, as after a restart).
    async fn abandon_runs(&self) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let tasks: Vec<(i64, tokio::task::JoinHandle<()>)> = match cluster.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks).into_iter().collect(),
            Err(_) => Vec::new(),
        };
        tracing::error!(
            runs = tasks.len(),
            "this node's lease lapsed: its runs stop here until it holds a lease again"
        );
        for (_, task) in &tasks {
            task.abort();
        }
        for (run, task) in tasks {
            // Cancelled, or it ended first: either way it does nothing more.
            let _ = task.await;
            self.forget_run(run);
        }
    }

    /// Takes over the runs, alerts and reverts in flight of nodes whose lease lapsed (and
    /// this node's own from an earlier registration), then continues them as crash recovery
    /// does; and performs reverts that are overdue (their node died before their time).
    pub(super) async fn sweep(&self) -> Result<(), EngineError> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        if !cluster.lease.holds() {
            return Ok(());
        }
        // One sweep at a time (the timer's and a new registration's): a run one of them
        // resumes is active before the next looks at its orphans.
        let _sweeping = cluster.sweeping.lock().await;
        let grace = cluster.config.grace_ms;
        let now = self.inner.clock.now_ms();
        // This node's orphans that nothing runs now: one running again (taken back and
        // resumed since) is not an orphan any more. Taken out of the set, and put back if the
        // store cannot be read.
        let active = self.active_runs();
        let orphans: Vec<i64> = cluster
            .orphans
            .lock()
            .map(|mut orphans| std::mem::take(&mut *orphans).into_iter().collect())
            .unwrap_or_default();
        let unresolved = orphans.clone();
        let orphans: Vec<i64> = orphans
            .into_iter()
            .filter(|id| !active.contains(id))
            .collect();
        let swept = self
            .inner
            .journal
            .call(move |journal| {
                let Some(pg) = journal.postgres() else {
                    return Ok(Default::default());
                };
                let taken = pg.take_over(grace)?;
                let mut runs = Vec::with_capacity(taken.len());
                for id in &taken {
                    if let Some(run) = pg.run(*id)? {
                        runs.push(run);
                    }
                }
                // Still this node's under its lease (not finished, not taken by another):
                // resumed here; otherwise forgotten.
                let mut still_mine = Vec::new();
                for id in orphans.iter().filter(|id| !taken.contains(id)) {
                    if pg.owns_unfinished(*id)?
                        && let Some(run) = pg.run(*id)?
                    {
                        still_mine.push(run);
                    }
                }
                let alerts = pg.take_over_alerts(grace)?;
                let reverting = pg.take_over_reverts(grace)?;
                let overdue: Vec<i64> = pg
                    .reverts("pending")?
                    .into_iter()
                    .filter(|revert| revert.due_at.is_some_and(|due| due + grace < now))
                    .map(|revert| revert.id)
                    .collect();
                Ok((runs, alerts, reverting, overdue, still_mine))
            })
            .await;
        let (runs, alerts, reverting, overdue, still_mine) = match swept {
            Ok(swept) => swept,
            Err(error) => {
                if let Ok(mut orphans) = cluster.orphans.lock() {
                    orphans.extend(unresolved);
                }
                return Err(error.into());
            }
        };
        for run in runs {
            tracing::warn!(run = run.id, "taken over: its node's lease lapsed");
            self.inner.metrics.run_taken_over();
            self.resume(run).await?;
        }
        for run in still_mine {
            tracing::warn!(
                run = run.id,
                "resumed: its end could not be written when it stopped"
            );
            self.resume(run).await?;
        }
        let at = self.inner.clock.now_ms();
        for revert in reverting {
            let detail = format!(
                "the node performing this revert of `{}` stopped while it was in flight: check it by hand",
                revert.function
            );
            self.revert_needs_a_human(&revert, detail, at).await?;
        }
        for revert in overdue {
            let engine = self.clone();
            tokio::spawn(async move { engine.revert(revert).await });
        }
        for stored in alerts {
            self.process_stored(stored).await?;
        }
        Ok(())
    }
}

/// Calls made on behalf of one run: adapters can tell the target who calls.
struct OnBehalf {
    inner: Arc<dyn Toolbox>,
    caller: Caller,
}

impl Toolbox for OnBehalf {
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture {
        self.inner.call_as(function, args, &self.caller)
    }

    fn call_as(
        &self,
        function: &str,
        args: BTreeMap<String, Value>,
        caller: &Caller,
    ) -> CallFuture {
        self.inner.call_as(function, args, caller)
    }

    fn journaled(&self, function: &str, args: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        self.inner.journaled(function, args)
    }

    fn revert(&self, function: &str, args: BTreeMap<String, Value>, output: Value) -> CallFuture {
        self.inner.revert(function, args, output)
    }

    fn preview(&self, function: &str, args: BTreeMap<String, Value>) -> Option<CallFuture> {
        self.inner.preview(function, args)
    }
}

/// The heartbeat, on a thread of its own with a connection of its own (a blocked journal
/// writer must not delay renewals): renews the lease every third of it, registers again
/// when it lapsed, and reads the kill switch. Ends when the engine is gone.
fn beat(
    mut store: PgJournal,
    config: &ClusterConfig,
    clock: &LeaseClock,
    events: &tokio::sync::mpsc::UnboundedSender<LeaseEvent>,
) {
    let period = Duration::from_millis(u64::try_from(config.lease_ms / 3).unwrap_or(1_000).max(50));
    let mut registered = true;
    let mut kill_switch: Option<bool> = None;
    let mut failing = false;
    if let Err(error) = store.listen() {
        tracing::warn!(%error, "the heartbeat cannot listen for requests yet; it polls for them");
    }
    let mut next_beat = Instant::now() + period;
    loop {
        // Until the next beat, woken by the requests operators make of other nodes.
        while let Some(left) = next_beat.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            match store.wait_for_request(left) {
                Ok(true) => {
                    let _ = events.send(LeaseEvent::Controls);
                }
                Ok(false) => {}
                Err(_) => std::thread::sleep(next_beat.saturating_duration_since(Instant::now())),
            }
        }
        next_beat = Instant::now() + period;
        if events.is_closed() {
            return;
        }
        // A request whose notification was missed (the connection broke) waits one beat.
        let _ = events.send(LeaseEvent::Controls);
        let began = Instant::now();
        let attempt = if registered {
            store.renew(config.lease_ms).map(|held| (held, None))
        } else {
            store
                .register(&config.node, config.lease_ms)
                .map(|lease| (true, Some(lease)))
        };
        match attempt {
            Ok((true, lease)) => {
                if let Some(lease) = lease {
                    clock.fence.store(lease.fence, Ordering::SeqCst);
                    tracing::warn!(node = %lease.node, fence = lease.fence, "registered again");
                    let _ = events.send(LeaseEvent::Registered(lease));
                    registered = true;
                }
                clock.extend(began, config);
                if failing {
                    tracing::info!("the store answers the heartbeat again");
                }
                failing = false;
            }
            Ok((false, _)) => {
                clock.expire();
                registered = false;
                let _ = events.send(LeaseEvent::Lapsed);
                // Registers again at once, on the next turn of the loop.
                continue;
            }
            Err(error) => {
                clock.reachable.store(false, Ordering::SeqCst);
                if !failing {
                    tracing::error!(%error, "the heartbeat cannot reach the store");
                }
                failing = true;
                continue;
            }
        }
        match store.setting(KILL_SWITCH) {
            Ok(value) => {
                let on = value.as_deref() == Some("on");
                if kill_switch != Some(on) {
                    kill_switch = Some(on);
                    let _ = events.send(LeaseEvent::KillSwitch(on));
                }
            }
            Err(error) => tracing::warn!(%error, "the heartbeat cannot read the kill switch"),
        }
    }
}

/// Acts on what the heartbeat says, in order.
async fn follow_lease(
    engine: Engine,
    mut events: tokio::sync::mpsc::UnboundedReceiver<LeaseEvent>,
) {
    while let Some(event) = events.recv().await {
        match event {
            LeaseEvent::Lapsed => engine.abandon_runs().await,
            LeaseEvent::Registered(lease) => {
                let adopted = engine
                    .inner
                    .journal
                    .call(move |journal| {
                        if let Some(pg) = journal.postgres() {
                            pg.adopt(lease);
                        }
                        Ok(())
                    })
                    .await;
                if let Err(error) = adopted {
                    tracing::error!(%error, "could not take the new lease on the journal's connection");
                    continue;
                }
                if let Err(error) = engine.sweep().await {
                    tracing::error!(%error, "could not take this node's runs back");
                }
            }
            LeaseEvent::Controls => {
                let engine = engine.clone();
                tokio::spawn(async move { engine.answer_controls().await });
            }
            LeaseEvent::KillSwitch(on) => {
                let on = on || engine.inner.config.kill_switch;
                let was = engine
                    .inner
                    .guardrails
                    .kill_switch
                    .swap(on, Ordering::SeqCst);
                if was != on {
                    tracing::warn!(on, "kill switch changed (on another node)");
                }
            }
        }
    }
}

async fn sweep_forever(engine: Engine) {
    let Some(every) = engine.cluster().map(|cluster| cluster.config.sweep_ms) else {
        return;
    };
    let every = Duration::from_millis(u64::try_from(every).unwrap_or(2_000).max(50));
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = engine.sweep().await {
            tracing::warn!(%error, "the takeover sweep failed; trying again");
        }
    }
}
