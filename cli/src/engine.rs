//! `medic serve`, `medic run` and the commands that talk to a running server (`runs`,
//! `approve`, `reject`, `pause`, `resume`, `cancel`, `kill-switch`).
//!
//! Configuration comes from `medic.toml` (see docs/serve.md) with flags for the essentials;
//! secrets are read from environment variables or files named in it, never from the file
//! itself, so the file can be reviewed and committed.

use crate::config::{
    approval_warnings, connect_kubernetes, identities, read_config, secret, server_limits,
    toolbox_config,
};
use crate::{output, sources};
use anyhow::{Context, anyhow, bail};
use medic_compiler::plan::Plan;
use medic_runtime::adapters::{Adapter, StandardToolbox};
use medic_runtime::engine::ClusterConfig;
use medic_runtime::engine::{Engine, EngineConfig};
use medic_runtime::executor::{Clock, RunReport};
use medic_runtime::journal::pg::PgJournal;
use medic_runtime::journal::{Journal, JournalHandle, Store};
use medic_runtime::server::{self, Auth, ServerState, Signing};
use medic_runtime::{ingest, report};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::filter::Targets;

/// The flags of `medic serve`; each overrides the config file.
pub struct ServeFlags {
    pub config: Option<PathBuf>,
    pub plans: Vec<PathBuf>,
    pub listen: Option<String>,
    pub store: Option<PathBuf>,
    pub dry_run: bool,
}

/// Compiles the plans; the error is the rendered diagnostics.
pub(crate) fn compile(paths: &[PathBuf]) -> Result<Plan, String> {
    let sources = sources::read(paths).map_err(|error| format!("{error:#}"))?;
    let file_count = sources.len();
    let analysis = medic_compiler::check(sources);
    medic_compiler::plan::lower(&analysis)
        .map_err(|_| output::render(&analysis, crate::Format::Human, file_count))
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .map_err(|error| anyhow!("cannot start the runtime: {error}"))
}

/// Logs go to stderr; `MEDIC_LOG` filters them (default `info`), `MEDIC_LOG_FORMAT=json`
/// makes them JSON lines.
fn init_logs() {
    init_logs_at("info");
}

/// Logs as [`init_logs`] says, at `default` unless `MEDIC_LOG` says otherwise. `MEDIC_LOG`
/// takes `LEVEL` or `target=LEVEL` directives separated by commas (`info,medic_runtime=debug`);
/// one it cannot read is reported and the default applies. (A target filter rather than
/// tracing-subscriber's `EnvFilter`: that one's span-field matching pulls in a regex build
/// mode that makes every regex in the process, PromQL matchers among them, slower to
/// compile — see note 023.)
pub(crate) fn init_logs_at(default: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let fallback = || default.parse::<Targets>().unwrap_or_default();
    let (filter, unreadable) = match std::env::var("MEDIC_LOG") {
        Ok(text) => match text.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(error) => (fallback(), Some(format!("MEDIC_LOG={text:?}: {error}"))),
        },
        Err(_) => (fallback(), None),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // One JSON object per line for log shippers; text for people.
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if std::env::var("MEDIC_LOG_FORMAT").is_ok_and(|format| format == "json") {
        registry.with(layer.json()).try_init()
    } else {
        registry.with(layer).try_init()
    };
    if let Some(unreadable) = unreadable {
        tracing::warn!("{unreadable}; logging at {default}");
    }
}

pub fn serve(flags: ServeFlags) -> anyhow::Result<ExitCode> {
    init_logs();
    let prepared = match prepare(flags)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&prepared.listen)
            .await
            .with_context(|| format!("cannot listen on {}", prepared.listen))?;
        serve_on(prepared, listener, Clock::system(), shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `medic serve` starts with, read and checked before anything listens.
pub(crate) struct Prepared {
    pub(crate) listen: String,
    /// Where the journal is, for the logs (a URL without its credentials).
    store: String,
    dry_run: bool,
    /// The SQLite store's lock (a PostgreSQL store is shared by design).
    lock: Option<std::fs::File>,
    config: crate::config::Config,
    base: PathBuf,
    journal: Store,
    plan: Plan,
    plans: Vec<PathBuf>,
    toolbox_config: medic_runtime::adapters::ToolboxConfig,
    engine_config: EngineConfig,
    identities: medic_runtime::server::Identities,
    signing: Option<Signing>,
    sns: Option<Arc<medic_runtime::sns::SnsVerifier>>,
    server_limits: medic_runtime::server::ServerLimits,
}

/// Reads the configuration and the plans, takes the store's lock and opens the journal;
/// `Err(code)`: the plans do not compile (the diagnostics are printed).
pub(crate) fn prepare(flags: ServeFlags) -> anyhow::Result<Result<Prepared, ExitCode>> {
    let (config, base) = read_config(flags.config.as_deref())?;
    let plans: Vec<PathBuf> = if flags.plans.is_empty() {
        config
            .plans
            .clone()
            .unwrap_or_else(|| vec![PathBuf::from(".")])
            .into_iter()
            .map(|path| base.join(path))
            .collect()
    } else {
        flags.plans.clone()
    };
    let listen = flags
        .listen
        .or(config.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let location = match (&flags.store, &config.store) {
        (Some(store), _) => crate::config::location_of(&store.to_string_lossy(), Path::new("")),
        (None, Some(store)) => store.location(&base)?,
        (None, None) => crate::config::StoreLocation::Sqlite(base.join("medic.db")),
    };
    let dry_run = flags.dry_run || config.dry_run.unwrap_or(false);
    let relative = |path: &Option<PathBuf>| path.as_ref().map(|path| base.join(path));
    let identities = identities(&config.auth, &base)?;
    let server_limits = server_limits(&config.limits)?;
    let hmac_secret = secret(
        config.auth.hmac_secret_env.as_deref(),
        relative(&config.auth.hmac_secret_file).as_deref(),
        "auth.hmac_secret",
    )?;
    let signing = match (hmac_secret, config.auth.hmac_tolerance_seconds) {
        (None, None) => None,
        (None, Some(_)) => bail!(
            "auth.hmac_tolerance_seconds is set, but no auth.hmac_secret_env or hmac_secret_file"
        ),
        (Some(secret), None) => Some(Signing {
            secret,
            tolerance: server::DEFAULT_SIGNATURE_TOLERANCE,
        }),
        (Some(secret), Some(seconds @ 1..=86_400)) => Some(Signing {
            secret,
            tolerance: std::time::Duration::from_secs(seconds),
        }),
        (Some(_), Some(seconds)) => {
            bail!("auth.hmac_tolerance_seconds is {seconds}: it must be between 1 and 86400")
        }
    };
    let sns = config
        .sources
        .cloudwatch
        .as_ref()
        .map(crate::config::CloudwatchToml::verifier)
        .transpose()?;
    let plan = match compile(&plans) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            eprintln!("error: the plans do not compile; nothing was started");
            return Ok(Err(ExitCode::from(1)));
        }
    };
    let (store, lock, journal, cluster) = match location {
        crate::config::StoreLocation::Sqlite(store) => {
            let lock = lock_store(&store)?;
            let journal = Journal::open(&store)?;
            (
                store.display().to_string(),
                Some(lock),
                Store::from(journal),
                None,
            )
        }
        crate::config::StoreLocation::Postgres {
            url,
            node,
            lease_seconds,
        } => {
            let journal = PgJournal::open(&url)?;
            let node = node.unwrap_or_else(|| default_node(&listen));
            let mut cluster = ClusterConfig::new(url.clone(), node);
            if let Some(seconds) = lease_seconds {
                cluster.lease_ms = i64::try_from(seconds).unwrap_or(300).saturating_mul(1_000);
            }
            // Another node takes over a second (or a fifth of the lease) after the lease
            // lapsed, and looks for such runs as often.
            cluster.grace_ms = (cluster.lease_ms / 5).max(1_000);
            cluster.sweep_ms = (cluster.lease_ms / 5).max(500);
            (
                medic_runtime::journal::pg::redacted(&url),
                None,
                Store::from(journal),
                Some(cluster),
            )
        }
    };
    let toolbox_config = toolbox_config(&config, &base)?;
    // Whether [kubernetes] is there is all this check needs; connecting comes later.
    let missing = medic_runtime::adapters::unconfigured(&plan, |adapter| {
        adapter.configured(&toolbox_config)
            || (adapter == Adapter::Kubernetes && config.kubernetes.is_some())
    });
    if dry_run {
        // A dry run performs no action, and a query without its system fails its task:
        // worth saying, not worth refusing to start.
        for line in &missing {
            eprintln!("warning: {line}");
        }
    } else if !missing.is_empty() {
        for line in &missing {
            eprintln!("error: {line}");
        }
        bail!(
            "{} call{} of the plans cannot work with this configuration; nothing was started",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" }
        );
    }
    let engine_config = EngineConfig {
        dry_run,
        queue_capacity: config.limits.queue.unwrap_or(10_000),
        actions_per_minute: config.limits.actions_per_minute.or(Some(30)),
        kill_switch: config.limits.kill_switch.unwrap_or(false),
        escalate_to: config.notify.escalate_to.clone(),
        retention_ms: match config.limits.retention_days.unwrap_or(90) {
            0 => None,
            days => Some(i64::from(days) * 86_400_000),
        },
        max_runs: match config.limits.max_runs {
            Some(0) => bail!("limits.max_runs must be at least 1"),
            Some(max) => max,
            None => medic_runtime::engine::DEFAULT_MAX_RUNS,
        },
        default_playbook_timeout_ms: Some(medic_runtime::executor::DEFAULT_PLAYBOOK_TIMEOUT_MS),
        cluster,
    };
    if let Some(name) = &config.notify.escalate_to
        && !config.notify.webhooks_env.contains_key(name)
    {
        bail!(
            "notify.escalate_to names the webhook {name:?}, which [notify.webhooks_env] does not define"
        );
    }
    if !identities.required() {
        // Said at every start, so that an open server is a choice someone sees.
        eprintln!(
            "warning: no [auth] token or users_file is configured: anyone who can reach {listen} can send alerts and approve, pause or cancel runs"
        );
    }
    for warning in approval_warnings(&plan, &identities) {
        eprintln!("warning: {warning}");
    }
    Ok(Ok(Prepared {
        listen,
        store,
        dry_run,
        lock,
        config,
        base,
        journal,
        plan,
        plans,
        toolbox_config,
        engine_config,
        identities,
        signing,
        sns,
        server_limits,
    }))
}

/// Takes the lock of a SQLite store: one server per store, as two would both believe they
/// own every unfinished run. The OS releases it when the process dies, even by kill -9.
fn lock_store(store: &Path) -> anyhow::Result<std::fs::File> {
    let lock_path = store.with_extension("lock");
    let mut lock_options = std::fs::OpenOptions::new();
    lock_options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut lock_options, 0o600);
    let lock = lock_options
        .open(&lock_path)
        .with_context(|| format!("cannot open the store lock {}", lock_path.display()))?;
    if let Err(error) = lock.try_lock() {
        bail!(
            "another medic serve is using the store {} (its lock {} is held: {error})",
            store.display(),
            lock_path.display()
        );
    }
    Ok(lock)
}

/// A node's name when `[store] node` gives none: the host's name and the address it
/// listens on, so two processes on one host differ.
fn default_node(listen: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_string())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "medic".into());
    format!("{host}@{listen}")
}

/// Serves on `listener` with `clock` until `shutdown`: `medic serve`, and the server of
/// `medic demo`.
pub(crate) async fn serve_on(
    prepared: Prepared,
    listener: tokio::net::TcpListener,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Prepared {
        store,
        dry_run,
        lock,
        config,
        base,
        journal,
        plan,
        plans,
        mut toolbox_config,
        engine_config,
        identities,
        signing,
        sns,
        server_limits,
        ..
    } = prepared;
    let reload_paths = plans;
    let reload_identities = identities.clone();
    let _lock = lock;
    toolbox_config.clock = clock;
    toolbox_config.kubernetes = connect_kubernetes(&config, &base).await?;
    let toolbox = Arc::new(StandardToolbox::new(toolbox_config).map_err(|error| anyhow!(error))?);
    let handle = JournalHandle::spawn(journal)?;
    let engine = Engine::start(plan, handle, toolbox, clock, engine_config).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, store = %store, node = engine.node().map(|(node, _)| node).unwrap_or_default(), dry_run, auth = identities.required(), users = identities.enforces_groups(), "medic serve is listening");
    let state = Arc::new(ServerState {
        engine,
        auth: Auth {
            identities,
            signing,
            sns,
        },
        limits: server_limits,
        reload: Arc::new(move || {
            let plan = compile(&reload_paths)?;
            for warning in approval_warnings(&plan, &reload_identities) {
                tracing::warn!("{warning}");
            }
            Ok(plan)
        }),
    });
    let engine = state.engine.clone();
    medic_runtime::server::serve(listener, state, shutdown).await?;
    // Let runs in progress reach their end for a while; what is still running after
    // that continues (or is handed to a human) at the next start.
    if tokio::time::timeout(std::time::Duration::from_secs(10), engine.idle())
        .await
        .is_err()
    {
        tracing::warn!(runs = ?engine.active_runs(), "stopping with runs in progress; they continue at the next start");
    }
    tracing::info!("medic serve stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Guesses which monitoring system wrote a payload, from fields only it sends.
fn detect_source(value: &serde_json::Value) -> &'static str {
    let has = |field: &str| value.get(field).is_some();
    if has("orgId") || (has("alerts") && has("state") && has("title")) {
        "grafana"
    } else if has("groupKey")
        || has("receiver")
        || value.get("version").and_then(|v| v.as_str()) == Some("4")
    {
        "alertmanager"
    } else if value.get("schemaId").and_then(|v| v.as_str())
        == Some("azureMonitorCommonAlertSchema")
    {
        "azure"
    } else if ingest::is_sns_envelope(value) || (has("AlarmName") && has("NewStateValue")) {
        "cloudwatch"
    } else if ingest::is_elastic_template(value) {
        "elastic"
    } else if has("event_id") || value.get("events").is_some() {
        "zabbix"
    } else {
        "generic"
    }
}

/// Reads an alert payload file: its source (given, or guessed from its fields) and its
/// alerts, normalized as the server's webhook does.
fn read_alerts(path: &Path, source: Option<&str>) -> anyhow::Result<(String, Vec<ingest::Alert>)> {
    let body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let source = match source {
        Some(source) => source.to_string(),
        None => {
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|error| anyhow!("{}: not JSON: {error}", path.display()))?;
            detect_source(&value).to_string()
        }
    };
    let alerts = match source.as_str() {
        "alertmanager" => ingest::alertmanager(&body),
        "grafana" => ingest::grafana(&body),
        "zabbix" => ingest::zabbix(&body),
        "azure" => ingest::azure(&body),
        "cloudwatch" => ingest::cloudwatch(&body),
        "elastic" => ingest::elastic(&body),
        "generic" => ingest::generic(&body),
        other => {
            bail!(
                "unknown source {other:?}: use alertmanager, grafana, zabbix, azure, cloudwatch, elastic or generic"
            )
        }
    }
    .map_err(|error| anyhow!("{}: {error}", path.display()))?;
    Ok((source, alerts))
}

/// `medic explain`: for each alert of a payload, every rule in matching order with why it
/// matched or not. Exits 0 when some rule matched an alert, 1 when none matched any.
pub fn explain(
    alert: &Path,
    source: Option<&str>,
    plans: &[PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let plans = if plans.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        plans.to_vec()
    };
    let plan = match compile(&plans) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(ExitCode::from(2));
        }
    };
    let (source, alerts) = read_alerts(alert, source)?;
    let explanations: Vec<medic_compiler::plan::explain::Explanation> = alerts
        .iter()
        .map(|alert| medic_compiler::plan::explain::explain(&plan, &alert.to_value()))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&explanations).unwrap_or_default()
        );
    } else {
        println!(
            "{} alert{} from {source}, {} rule{} in matching order",
            alerts.len(),
            if alerts.len() == 1 { "" } else { "s" },
            plan.rules.len(),
            if plan.rules.len() == 1 { "" } else { "s" },
        );
        for explanation in &explanations {
            print!("{}", medic_compiler::plan::explain::text(explanation));
        }
    }
    let any = explanations.iter().any(|explanation| {
        explanation.rules.iter().any(|rule| {
            matches!(
                rule.verdict,
                medic_compiler::plan::explain::Verdict::Matched { .. }
            )
        })
    });
    Ok(ExitCode::from(if any { 0 } else { 1 }))
}

pub struct RunFlags {
    /// `[http]`, `[notify]` and `[limits]` are read from it, as `medic serve` does.
    pub config: Option<PathBuf>,
    pub alert: PathBuf,
    pub source: Option<String>,
    pub plans: Vec<PathBuf>,
    pub dry_run: bool,
}

/// `medic run`: one alert through the same engine, with an in-memory journal.
pub fn run(flags: RunFlags) -> anyhow::Result<ExitCode> {
    let plans = if flags.plans.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        flags.plans.clone()
    };
    let plan = match compile(&plans) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(ExitCode::from(1));
        }
    };
    let (source, alerts) = read_alerts(&flags.alert, flags.source.as_deref())?;
    let dry_run = flags.dry_run;
    let (config, base) = read_config(flags.config.as_deref())?;
    let mut toolbox_config = toolbox_config(&config, &base)?;
    let (failed, matched) = runtime()?.block_on(async move {
        toolbox_config.kubernetes = connect_kubernetes(&config, &base).await?;
        let toolbox =
            Arc::new(StandardToolbox::new(toolbox_config).map_err(|error| anyhow!(error))?);
        let journal = medic_runtime::engine::memory_journal()?;
        let config = EngineConfig {
            dry_run,
            ..EngineConfig::default()
        };
        let engine = Engine::start(plan.clone(), journal, toolbox, Clock::system(), config).await?;
        println!(
            "{} alert{} from {source}{}",
            alerts.len(),
            if alerts.len() == 1 { "" } else { "s" },
            if dry_run {
                ", dry run: queries run, actions are only described"
            } else {
                ""
            }
        );
        let mut dispatches = Vec::new();
        let ids = engine
            .journal()
            .call({
                let accepted: Vec<_> = alerts
                    .iter()
                    .map(|alert| medic_runtime::engine::stored::accepted(alert, false))
                    .collect();
                move |journal| journal.accept(&accepted, 0)
            })
            .await?;
        for (alert, id) in alerts.iter().zip(ids) {
            let found = engine.process(id, alert).await;
            if found.is_empty() {
                println!(
                    "{} ({}): no rule matched",
                    alert.name,
                    alert.status.as_str()
                );
            }
            dispatches.extend(found);
        }
        engine.idle().await;
        let matched = !dispatches.is_empty();
        let mut failed = false;
        for dispatch in dispatches {
            match dispatch {
                medic_runtime::engine::Dispatch::Started { rule, run } => {
                    let detail = engine.run(run).await?;
                    let report: Option<RunReport> = detail
                        .run
                        .report
                        .as_deref()
                        .and_then(|text| serde_json::from_str(text).ok());
                    match report {
                        Some(report) => {
                            failed |=
                                report.outcome != medic_runtime::executor::RunOutcome::Succeeded;
                            print!(
                                "\n{}",
                                report::text(
                                    &format!("rule {rule} → run {run}"),
                                    &report,
                                    plan.playbook(&report.playbook),
                                    dry_run
                                )
                            );
                        }
                        None => {
                            failed = true;
                            println!("\nrule {rule} → run {run}: {}", detail.run.state);
                        }
                    }
                }
                medic_runtime::engine::Dispatch::Suppressed {
                    rule,
                    reason,
                    detail,
                } => {
                    println!("\nrule {rule}: not run ({reason}): {detail}");
                }
            }
        }
        anyhow::Ok((failed, matched))
    })?;
    // 1 when a run did not succeed (failed, escalated, cancelled); 3 when no rule matched any
    // alert of the payload, so that a script can tell "nothing to do" from "done".
    Ok(if failed {
        ExitCode::from(1)
    } else if !matched {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
