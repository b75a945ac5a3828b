//! `medic serve`, `medic run` and the commands that talk to a running server (`runs`,
//! `approve`, `reject`, `pause`, `resume`, `cancel`, `kill-switch`).
//!
//! Configuration comes from `medic.toml` (see docs/serve.md) with flags for the essentials;
//! secrets are read from environment variables or files named in it, never from the file
//! itself, so the file can be reviewed and committed.

use crate::{output, sources};
use anyhow::{Context, anyhow, bail};
use medic_compiler::plan::Plan;
use medic_runtime::adapters::{
    Adapter, HeaderRule, HostPattern, HttpConfig, NotifyConfig, SmtpConfig, SmtpTls,
    StandardToolbox, ToolboxConfig,
};
use medic_runtime::engine::{Engine, EngineConfig};
use medic_runtime::executor::{Clock, RunReport};
use medic_runtime::journal::{Journal, JournalHandle};
use medic_runtime::server::{
    self, Auth, Identities, Role, ServerLimits, ServerState, Signing, User, UsersError,
    parse_token_sha256,
};
use medic_runtime::{ingest, report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    listen: Option<String>,
    plans: Option<Vec<PathBuf>>,
    store: Option<PathBuf>,
    dry_run: Option<bool>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    notify: NotifyToml,
    #[serde(default)]
    http: HttpToml,
    smtp: Option<SmtpToml>,
    prometheus: Option<PrometheusToml>,
    kubernetes: Option<KubernetesToml>,
}

/// `[kubernetes]`: the cluster `k8s.*` calls go to. An empty section uses the standard
/// order (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KubernetesToml {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    /// A duration such as `10s` (default 10 s): the deadline of one `k8s.*` call, its
    /// conflict retries included.
    timeout: Option<String>,
}

/// `[http]`: where `http.*` requests may go when alert data chose the host, what is
/// redacted from the journal, and headers (credentials) sent to some hosts.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpToml {
    #[serde(default)]
    allow_hosts: Vec<String>,
    /// Replaces the default list of query parameter names whose values are redacted.
    #[serde(default)]
    redact_query_params: Vec<String>,
    #[serde(default)]
    headers: Vec<HeaderToml>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderToml {
    hosts: Vec<String>,
    name: String,
    value_env: Option<String>,
    value_file: Option<PathBuf>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    /// The largest request body, at most `server::MAX_BODY_BYTES`.
    body_bytes: Option<usize>,
    /// How long the server may take over one request.
    request_timeout_seconds: Option<u64>,
    /// Requests handled at once; more get 503.
    concurrent_requests: Option<usize>,
    queue: Option<usize>,
    actions_per_minute: Option<u32>,
    kill_switch: Option<bool>,
    /// Days the journal keeps what has ended; 0 keeps everything.
    retention_days: Option<u32>,
    /// Runs in progress at once; more wait for a slot.
    max_runs: Option<usize>,
    /// Calls of one stdlib function in flight at once, across runs.
    calls_per_function: Option<usize>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    /// Users with roles and approval groups (docs/serve.md, *Users, roles and groups*).
    users_file: Option<PathBuf>,
    hmac_secret_env: Option<String>,
    hmac_secret_file: Option<PathBuf>,
    /// How far the generic webhook's `X-Medic-Timestamp` may be from the server's clock.
    hmac_tolerance_seconds: Option<u64>,
}

/// The users file: no secret in it, only the SHA-256 of each token, so it can be reviewed
/// and committed like `medic.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: BTreeMap<String, UserToml>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserToml {
    token_sha256: String,
    role: Role,
    #[serde(default)]
    groups: Vec<String>,
}

/// The server's bounds from `[limits]`: a value out of range stops the start instead of being
/// clamped.
fn server_limits(limits: &Limits) -> anyhow::Result<ServerLimits> {
    let body_bytes = limits.body_bytes.unwrap_or(server::DEFAULT_BODY_BYTES);
    if body_bytes == 0 || body_bytes > server::MAX_BODY_BYTES {
        bail!(
            "limits.body_bytes is {body_bytes}: it must be between 1 and {} (64 MiB)",
            server::MAX_BODY_BYTES
        );
    }
    let request_timeout = match limits.request_timeout_seconds {
        None => server::DEFAULT_REQUEST_TIMEOUT,
        Some(seconds @ 1..=3_600) => std::time::Duration::from_secs(seconds),
        Some(seconds) => {
            bail!("limits.request_timeout_seconds is {seconds}: it must be between 1 and 3600")
        }
    };
    let concurrent_requests = match limits.concurrent_requests {
        None => server::DEFAULT_CONCURRENT_REQUESTS,
        Some(0) => bail!("limits.concurrent_requests must be at least 1"),
        Some(count) => count,
    };
    Ok(ServerLimits {
        body_bytes,
        request_timeout,
        concurrent_requests,
    })
}

/// Who may call the server: the users file, else the single token, else nobody is asked.
fn identities(auth: &AuthConfig, base: &Path) -> anyhow::Result<Identities> {
    let relative = |path: &Option<PathBuf>| path.as_ref().map(|path| base.join(path));
    let token = secret(
        auth.token_env.as_deref(),
        relative(&auth.token_file).as_deref(),
        "auth.token",
    )?;
    let Some(path) = relative(&auth.users_file) else {
        return Ok(token.map_or(Identities::Open, |token| Identities::token(&token)));
    };
    if token.is_some() {
        bail!(
            "auth.users_file and auth.token_env/token_file cannot both be set: give the token's holder a user in {}",
            path.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("auth.users_file: cannot read {}", path.display()))?;
    let file: UsersFile =
        toml::from_str(&text).map_err(|error| anyhow!("{}: {error}", path.display()))?;
    let users = file
        .users
        .into_iter()
        .map(|(name, user)| {
            Ok(User {
                token_sha256: parse_token_sha256(&name, &user.token_sha256)?,
                name,
                role: user.role,
                groups: user.groups.into_iter().collect(),
            })
        })
        .collect::<Result<Vec<_>, UsersError>>()
        .map_err(|error| anyhow!("{}: {error}", path.display()))?;
    Identities::users(users).map_err(|error| anyhow!("{}: {error}", path.display()))
}

/// What `approval by "GROUP"` will not do as written: without users nobody's groups are
/// known, so it is not enforced; with users, a group nobody is in can never approve.
fn approval_warnings(plan: &Plan, identities: &Identities) -> Vec<String> {
    let mut warnings = Vec::new();
    for playbook in &plan.playbooks {
        for task in &playbook.tasks {
            let Some(group) = task
                .approval
                .as_ref()
                .and_then(|approval| approval.by.as_ref())
            else {
                continue;
            };
            let place = format!("playbook {}, task {}", playbook.name, task.id);
            match identities {
                Identities::Users(users) => {
                    if !users.iter().any(|user| user.groups.contains(group)) {
                        warnings.push(format!(
                            "{place}: no user of the users file is in the group \"{group}\", so nobody can approve or reject it"
                        ));
                    }
                }
                Identities::Open | Identities::Token { .. } => warnings.push(format!(
                    "{place}: `approval by \"{group}\"` is not enforced: no [auth] users_file is configured, so whoever can call the API can approve it"
                )),
            }
        }
    }
    warnings
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NotifyToml {
    slack_webhook_env: Option<String>,
    /// The webhook (a name in `webhooks_env`) told about runs that need a human.
    escalate_to: Option<String>,
    /// Names of environment variables holding webhook URLs, by webhook name.
    #[serde(default)]
    webhooks_env: BTreeMap<String, String>,
}

/// `[smtp]`: the server `notify.email` sends through; credentials only from the
/// environment or a file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpToml {
    host: String,
    port: u16,
    from: String,
    /// `none`, `starttls` (the default) or `tls`.
    tls: Option<String>,
    username_env: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    /// A duration such as `10s` (default 10 s), at most an hour.
    timeout: Option<String>,
}

fn smtp_config(smtp: &SmtpToml, base: &Path) -> anyhow::Result<SmtpConfig> {
    let tls = match smtp.tls.as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("none") => SmtpTls::None,
        Some("tls") => SmtpTls::Tls,
        Some(other) => bail!("smtp.tls: {other:?} is not one of none, starttls, tls"),
    };
    let timeout = match smtp.timeout.as_deref() {
        None => medic_runtime::adapters::smtp::DEFAULT_TIMEOUT,
        Some(text) => match medic_compiler::units::parse_duration(text) {
            Ok(millis @ 1..=3_600_000) => std::time::Duration::from_millis(millis.unsigned_abs()),
            Ok(_) => bail!("smtp.timeout: {text:?} must be more than zero and at most 1h"),
            Err(error) => bail!("smtp.timeout: {error}"),
        },
    };
    let password_file = smtp.password_file.as_ref().map(|file| base.join(file));
    Ok(SmtpConfig {
        host: smtp.host.clone(),
        port: smtp.port,
        from: smtp.from.clone(),
        tls,
        username: secret(smtp.username_env.as_deref(), None, "smtp.username_env")?,
        password: secret(
            smtp.password_env.as_deref(),
            password_file.as_deref(),
            "smtp.password",
        )?,
        timeout,
    })
}

/// `[prometheus]`: the server `prom.query` and `prom.range` ask; the token only from the
/// environment or a file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PrometheusToml {
    url: String,
    /// A duration such as `10s` (default 10 s), at most an hour.
    timeout: Option<String>,
    bearer_token_env: Option<String>,
    bearer_token_file: Option<PathBuf>,
}

fn prometheus_config(
    prometheus: &PrometheusToml,
    base: &Path,
) -> anyhow::Result<medic_runtime::adapters::PrometheusConfig> {
    let timeout = timeout(
        prometheus.timeout.as_deref(),
        medic_runtime::adapters::prometheus::DEFAULT_TIMEOUT,
        "prometheus.timeout",
    )?;
    let token_file = prometheus
        .bearer_token_file
        .as_ref()
        .map(|file| base.join(file));
    Ok(medic_runtime::adapters::PrometheusConfig {
        url: prometheus.url.clone(),
        timeout,
        bearer_token: secret(
            prometheus.bearer_token_env.as_deref(),
            token_file.as_deref(),
            "prometheus.bearer_token",
        )?,
    })
}

/// A `timeout` setting: more than zero and at most an hour.
fn timeout(
    text: Option<&str>,
    default: std::time::Duration,
    what: &str,
) -> anyhow::Result<std::time::Duration> {
    match text {
        None => Ok(default),
        Some(text) => match medic_compiler::units::parse_duration(text) {
            Ok(millis @ 1..=3_600_000) => {
                Ok(std::time::Duration::from_millis(millis.unsigned_abs()))
            }
            Ok(_) => bail!("{what}: {text:?} must be more than zero and at most 1h"),
            Err(error) => bail!("{what}: {error}"),
        },
    }
}

/// Connects to the cluster of `[kubernetes]`, if there is one. Runs inside the runtime:
/// reading a kubeconfig may run its credential plugin, and the client starts a task.
async fn connect_kubernetes(
    config: &Config,
    base: &Path,
) -> anyhow::Result<Option<Arc<medic_runtime::adapters::Kubernetes>>> {
    use medic_runtime::adapters::kubernetes::{self, KubeCluster};
    let Some(section) = &config.kubernetes else {
        return Ok(None);
    };
    let timeout = timeout(
        section.timeout.as_deref(),
        kubernetes::DEFAULT_TIMEOUT,
        "kubernetes.timeout",
    )?;
    let kubeconfig = section.kubeconfig.as_ref().map(|path| {
        match (path.strip_prefix("~"), std::env::var_os("HOME")) {
            (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => base.join(path),
        }
    });
    let cluster = KubeCluster::connect(
        &kubernetes::KubernetesConfig {
            kubeconfig,
            context: section.context.clone(),
        },
        timeout,
    )
    .await
    .map_err(|error| anyhow!("[kubernetes]: {error}"))?;
    Ok(Some(Arc::new(medic_runtime::adapters::Kubernetes::new(
        Arc::new(cluster),
        timeout,
    ))))
}

/// The flags of `medic serve`; each overrides the config file.
pub struct ServeFlags {
    pub config: Option<PathBuf>,
    pub plans: Vec<PathBuf>,
    pub listen: Option<String>,
    pub store: Option<PathBuf>,
    pub dry_run: bool,
}

fn read_config(path: Option<&Path>) -> anyhow::Result<(Config, PathBuf)> {
    let Some(path) = path else {
        return Ok((Config::default(), PathBuf::from(".")));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).map_err(|error| anyhow!("{}: {error}", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((config, base))
}

fn secret(env: Option<&str>, file: Option<&Path>, what: &str) -> anyhow::Result<Option<String>> {
    if let Some(name) = env {
        let value = std::env::var(name)
            .map_err(|_| anyhow!("{what}: the environment variable {name} is not set"))?;
        if value.trim().is_empty() {
            bail!("{what}: the environment variable {name} is empty");
        }
        return Ok(Some(value.trim().to_string()));
    }
    if let Some(path) = file {
        let value = std::fs::read_to_string(path)
            .with_context(|| format!("{what}: cannot read {}", path.display()))?;
        if value.trim().is_empty() {
            bail!("{what}: {} is empty", path.display());
        }
        return Ok(Some(value.trim().to_string()));
    }
    Ok(None)
}

/// The built-in toolbox's configuration from `[http]`, `[notify]` and `[limits]`.
fn toolbox_config(config: &Config, base: &Path) -> anyhow::Result<ToolboxConfig> {
    let patterns = |hosts: &[String], what: &str| -> anyhow::Result<Vec<HostPattern>> {
        hosts
            .iter()
            .map(|host| host.parse().map_err(|error| anyhow!("{what}: {error}")))
            .collect()
    };
    let mut headers = Vec::new();
    for header in &config.http.headers {
        let what = format!("[[http.headers]] {}", header.name);
        let file = header.value_file.as_ref().map(|file| base.join(file));
        let value = secret(header.value_env.as_deref(), file.as_deref(), &what)?
            .ok_or_else(|| anyhow!("{what}: give value_env or value_file"))?;
        if header.hosts.is_empty() {
            bail!("{what}: `hosts` names no host, so the header would never be sent");
        }
        headers.push(HeaderRule {
            hosts: patterns(&header.hosts, &what)?,
            name: header.name.clone(),
            value,
        });
    }
    let calls_per_function = config
        .limits
        .calls_per_function
        .unwrap_or(medic_runtime::adapters::DEFAULT_CALLS_PER_FUNCTION);
    if calls_per_function == 0 {
        bail!("limits.calls_per_function must be at least 1");
    }
    Ok(ToolboxConfig {
        http: HttpConfig {
            allow_hosts: patterns(&config.http.allow_hosts, "http.allow_hosts")?,
            redact_params: config.http.redact_query_params.clone(),
            headers,
        },
        notify: notify_config(&config.notify)?,
        smtp: config
            .smtp
            .as_ref()
            .map(|smtp| smtp_config(smtp, base))
            .transpose()?,
        prometheus: config
            .prometheus
            .as_ref()
            .map(|prometheus| prometheus_config(prometheus, base))
            .transpose()?,
        // Connected inside the runtime (see connect_kubernetes).
        kubernetes: None,
        calls_per_function,
    })
}

/// Compiles the plans; the error is the rendered diagnostics.
fn compile(paths: &[PathBuf]) -> Result<Plan, String> {
    let sources = sources::read(paths).map_err(|error| format!("{error:#}"))?;
    let file_count = sources.len();
    let analysis = medic_compiler::check(sources);
    medic_compiler::plan::lower(&analysis)
        .map_err(|_| output::render(&analysis, crate::Format::Human, file_count))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .map_err(|error| anyhow!("cannot start the runtime: {error}"))
}

/// Logs go to stderr; `MEDIC_LOG` filters them (default `info`), `MEDIC_LOG_FORMAT=json`
/// makes them JSON lines.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // One JSON object per line for log shippers; text for people.
    let _ = if std::env::var("MEDIC_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn notify_config(notify: &NotifyToml) -> anyhow::Result<NotifyConfig> {
    let slack_webhook = secret(
        notify.slack_webhook_env.as_deref(),
        None,
        "notify.slack_webhook_env",
    )?;
    let mut webhooks = BTreeMap::new();
    for (name, env) in &notify.webhooks_env {
        if let Some(url) = secret(Some(env), None, &format!("notify.webhooks_env.{name}"))? {
            webhooks.insert(name.clone(), url);
        }
    }
    Ok(NotifyConfig {
        slack_webhook,
        webhooks,
    })
}

pub fn serve(flags: ServeFlags) -> anyhow::Result<ExitCode> {
    init_logs();
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
    let store = flags
        .store
        .or_else(|| config.store.as_ref().map(|store| base.join(store)))
        .unwrap_or_else(|| base.join("medic.db"));
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
    let plan = match compile(&plans) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            eprintln!("error: the plans do not compile; nothing was started");
            return Ok(ExitCode::from(1));
        }
    };
    // One server per store: two would both believe they own every unfinished run. The OS
    // releases the lock when the process dies, even by kill -9.
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
    let journal = Journal::open(&store)?;
    let mut toolbox_config = toolbox_config(&config, &base)?;
    // Whether [kubernetes] is there is all this check needs; connecting comes later.
    let missing = medic_runtime::adapters::unconfigured(&plan, |adapter| {
        adapter.configured(&toolbox_config)
            || (adapter == Adapter::Kubernetes && config.kubernetes.is_some())
    });
    if !missing.is_empty() {
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
    let reload_paths = plans.clone();
    let reload_identities = identities.clone();
    runtime()?.block_on(async move {
        let _lock = lock;
        toolbox_config.kubernetes = connect_kubernetes(&config, &base).await?;
        let toolbox =
            Arc::new(StandardToolbox::new(toolbox_config).map_err(|error| anyhow!(error))?);
        let handle = JournalHandle::spawn(journal)?;
        let engine = Engine::start(plan, handle, toolbox, Clock::system(), engine_config).await?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, store = %store.display(), dry_run, auth = identities.required(), users = identities.enforces_groups(), "medic serve is listening");
        let state = Arc::new(ServerState {
            engine,
            auth: Auth {
                identities,
                signing,
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
        medic_runtime::server::serve(listener, state, shutdown_signal()).await?;
        // Let runs in progress reach their end for a while; what is still running after
        // that continues (or is handed to a human) at the next start.
        if tokio::time::timeout(std::time::Duration::from_secs(10), engine.idle())
            .await
            .is_err()
        {
            tracing::warn!(runs = ?engine.active_runs(), "stopping with runs in progress; they continue at the next start");
        }
        tracing::info!("medic serve stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
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
    } else if has("event_id") || value.get("events").is_some() {
        "zabbix"
    } else {
        "generic"
    }
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
    let body = std::fs::read(&flags.alert)
        .with_context(|| format!("cannot read {}", flags.alert.display()))?;
    let source = match flags.source.as_deref() {
        Some(source) => source.to_string(),
        None => {
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|error| anyhow!("{}: not JSON: {error}", flags.alert.display()))?;
            detect_source(&value).to_string()
        }
    };
    let alerts = match source.as_str() {
        "alertmanager" => ingest::alertmanager(&body),
        "grafana" => ingest::grafana(&body),
        "zabbix" => ingest::zabbix(&body),
        "generic" => ingest::generic(&body),
        other => bail!("unknown source {other:?}: use alertmanager, grafana, zabbix or generic"),
    }
    .map_err(|error| anyhow!("{}: {error}", flags.alert.display()))?;
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
                    .map(medic_runtime::engine::stored::accepted)
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

/// Where the server is and how to authenticate (flags, else `MEDIC_SERVER`, `MEDIC_TOKEN`).
pub struct Remote {
    pub server: Option<String>,
    pub token: Option<String>,
}

impl Remote {
    fn base(&self) -> String {
        self.server
            .clone()
            .or_else(|| std::env::var("MEDIC_SERVER").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim_end_matches('/')
            .to_string()
    }

    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("MEDIC_TOKEN").ok())
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base());
        let token = self.token();
        runtime()?.block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?;
            let mut request = client.request(method, &url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request
                .send()
                .await
                .map_err(|error| anyhow!("cannot reach the server at {url}: {error}"))?;
            let status = response.status();
            let value: serde_json::Value = response
                .json()
                .await
                .map_err(|error| anyhow!("the server's answer is not JSON ({status}): {error}"))?;
            if !status.is_success() {
                let message = value
                    .get("error")
                    .and_then(|error| error.as_str())
                    .unwrap_or("no message");
                bail!("the server answered {status}: {message}");
            }
            Ok(value)
        })
    }
}

pub fn runs(remote: &Remote, id: Option<i64>, json: bool) -> anyhow::Result<ExitCode> {
    let Some(id) = id else {
        let value = remote.request(reqwest::Method::GET, "/api/runs?limit=50", None)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(ExitCode::SUCCESS);
        }
        let runs = value
            .get("runs")
            .and_then(|runs| runs.as_array())
            .cloned()
            .unwrap_or_default();
        println!(
            "{:>6}  {:<12}  {:<24}  {:<24}  started",
            "run", "state", "rule", "playbook"
        );
        for run in runs {
            let field = |name: &str| {
                run.get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let started = run
                .get("started_at")
                .and_then(serde_json::Value::as_i64)
                .map(medic_compiler::units::format_time)
                .unwrap_or_default();
            println!(
                "{:>6}  {:<12}  {:<24}  {:<24}  {started}",
                run.get("id")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0),
                field("state"),
                field("rule"),
                field("playbook"),
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let value = remote.request(reqwest::Method::GET, &format!("/api/runs/{id}"), None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let state = value.get("state").and_then(|v| v.as_str()).unwrap_or("");
    println!("run {id}: {state}");
    if let Some(awaiting) = value.get("awaiting_approval").and_then(|v| v.as_array())
        && !awaiting.is_empty()
    {
        let names: Vec<&str> = awaiting.iter().filter_map(|v| v.as_str()).collect();
        println!(
            "  waiting for approval: {} (medic approve {id})",
            names.join(", ")
        );
    }
    let definition: Option<medic_compiler::plan::Playbook> = value
        .get("definition")
        .cloned()
        .and_then(|definition| serde_json::from_value(definition).ok());
    match value
        .get("report")
        .cloned()
        .map(serde_json::from_value::<RunReport>)
    {
        Some(Ok(report)) => print!(
            "{}",
            report::text(&format!("run {id}"), &report, definition.as_ref(), false)
        ),
        _ => {
            for event in value
                .get("events")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
            {
                let field = |name: &str| {
                    event
                        .get(name)
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                println!("  {:<16} {}", field("task"), field("state"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn act(
    remote: &Remote,
    id: i64,
    action: &str,
    body: serde_json::Value,
) -> anyhow::Result<ExitCode> {
    post_and_print(remote, &format!("/api/runs/{id}/{action}"), body)
}

/// Posts an operator's action and prints the server's answer on one line.
fn post_and_print(
    remote: &Remote,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<ExitCode> {
    let value = remote.request(reqwest::Method::POST, path, Some(body))?;
    println!("{}", serde_json::to_string(&value)?);
    Ok(ExitCode::SUCCESS)
}

/// `medic reverts`: without `--state`, the reverts that wait for a human (failed, then
/// needs_attention).
pub fn reverts(remote: &Remote, state: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let states: Vec<&str> = match state {
        Some(state) => vec![state],
        None => vec!["failed", "needs_attention"],
    };
    let mut reverts = Vec::new();
    for state in states {
        let value = remote.request(
            reqwest::Method::GET,
            &format!("/api/reverts?state={state}"),
            None,
        )?;
        let listed = value
            .get("reverts")
            .and_then(|reverts| reverts.as_array())
            .ok_or_else(|| anyhow!("the server's answer has no `reverts` list"))?;
        reverts.extend(listed.iter().cloned());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "reverts": reverts }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if reverts.is_empty() {
        println!("no reverts");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<6} {:<6} {:<16} {:<12} {:<16} detail",
        "id", "run", "state", "task", "function"
    );
    for revert in &reverts {
        let field = |name: &str| match revert.get(name) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        println!(
            "{:<6} {:<6} {:<16} {:<12} {:<16} {}",
            field("id"),
            field("run_id"),
            field("state"),
            field("task"),
            field("function"),
            field("detail")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `medic revert retry|ack ID`.
pub fn act_on_revert(
    remote: &Remote,
    id: i64,
    action: &str,
    body: serde_json::Value,
) -> anyhow::Result<ExitCode> {
    post_and_print(remote, &format!("/api/reverts/{id}/{action}"), body)
}

pub fn kill_switch(remote: &Remote, on: Option<bool>) -> anyhow::Result<ExitCode> {
    let value = match on {
        Some(on) => remote.request(
            reqwest::Method::POST,
            "/api/kill-switch",
            Some(serde_json::json!({ "on": on })),
        )?,
        None => remote.request(reqwest::Method::GET, "/api/kill-switch", None)?,
    };
    println!("{}", serde_json::to_string(&value)?);
    Ok(ExitCode::SUCCESS)
}
