//! `medic.toml`: the configuration of `medic serve`, `medic run` and `medic doctor` (see
//! docs/serve.md). Unknown keys are errors; secrets are read from environment variables or
//! files named in it, never from the file itself, so the file can be reviewed and committed.

use anyhow::{Context, anyhow, bail};
use medic_compiler::plan::Plan;
use medic_runtime::adapters::{
    HeaderRule, HostPattern, HttpConfig, NotifyConfig, SmtpConfig, SmtpTls, ToolboxConfig,
};
use medic_runtime::executor::Clock;
use medic_runtime::server::{
    self, Identities, Role, ServerLimits, User, UsersError, parse_token_sha256,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) listen: Option<String>,
    pub(crate) plans: Option<Vec<PathBuf>>,
    /// The SQLite file (`store = "medic.db"`), a PostgreSQL URL (`store = "postgres://..."`),
    /// or a `[store]` table (docs/ha.md).
    pub(crate) store: Option<StoreToml>,
    pub(crate) dry_run: Option<bool>,
    #[serde(default)]
    pub(crate) limits: Limits,
    #[serde(default)]
    pub(crate) auth: AuthConfig,
    #[serde(default)]
    pub(crate) notify: NotifyToml,
    #[serde(default)]
    pub(crate) http: HttpToml,
    pub(crate) smtp: Option<SmtpToml>,
    pub(crate) prometheus: Option<PrometheusToml>,
    pub(crate) kubernetes: Option<KubernetesToml>,
    pub(crate) jaeger: Option<JaegerToml>,
    /// Each service and the services it calls.
    #[serde(default)]
    pub(crate) topology: BTreeMap<String, Vec<String>>,
    pub(crate) elasticsearch: Option<ElasticsearchToml>,
    pub(crate) diagnose: Option<DiagnoseToml>,
    /// Alert sources that need more than a token (docs/webhooks.md).
    #[serde(default)]
    pub(crate) sources: SourcesToml,
}

/// `store`: a path or URL, or a table.
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum StoreToml {
    Location(String),
    Table(StoreTable),
}

/// `[store]`: where the journal is, and this node's part in a cluster (docs/ha.md).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreTable {
    /// The SQLite file.
    pub(crate) path: Option<PathBuf>,
    /// A PostgreSQL URL; better in `url_env`, as it usually carries a password.
    pub(crate) url: Option<String>,
    /// The environment variable that holds the PostgreSQL URL.
    pub(crate) url_env: Option<String>,
    /// This node's name in the cluster (default `HOST@LISTEN`); unique per process.
    pub(crate) node: Option<String>,
    /// How long this node's lease holds without renewal (default 10).
    pub(crate) lease_seconds: Option<u64>,
}

/// Where the journal lives.
pub(crate) enum StoreLocation {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        node: Option<String>,
        lease_seconds: Option<u64>,
    },
}

impl StoreToml {
    /// Where the store is; a path relative to `base`.
    pub(crate) fn location(&self, base: &Path) -> anyhow::Result<StoreLocation> {
        let table = match self {
            StoreToml::Location(location) => return Ok(location_of(location, base)),
            StoreToml::Table(table) => table,
        };
        let url = match (&table.url, &table.url_env) {
            (Some(_), Some(_)) => bail!("[store] has both url and url_env: keep one"),
            (Some(url), None) => Some(url.clone()),
            (None, Some(variable)) => Some(
                std::env::var(variable)
                    .map_err(|_| anyhow!("[store] url_env names {variable}, which is not set"))?,
            ),
            (None, None) => None,
        };
        match (url, &table.path) {
            (Some(_), Some(_)) => bail!("[store] has both a path and a url: keep one"),
            (Some(url), None) => {
                if !is_postgres(&url) {
                    bail!("the [store] url must start with postgres:// or postgresql://");
                }
                if table
                    .lease_seconds
                    .is_some_and(|seconds| !(2..=300).contains(&seconds))
                {
                    bail!("[store] lease_seconds must be between 2 and 300");
                }
                Ok(StoreLocation::Postgres {
                    url,
                    node: table.node.clone(),
                    lease_seconds: table.lease_seconds,
                })
            }
            (None, path) => {
                if table.node.is_some() || table.lease_seconds.is_some() {
                    bail!(
                        "[store] node and lease_seconds are for a PostgreSQL store (url or url_env)"
                    );
                }
                Ok(StoreLocation::Sqlite(base.join(
                    path.clone().unwrap_or_else(|| PathBuf::from("medic.db")),
                )))
            }
        }
    }
}

fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A `store` string, or `--store`: a PostgreSQL URL or a file.
pub(crate) fn location_of(location: &str, base: &Path) -> StoreLocation {
    if is_postgres(location) {
        StoreLocation::Postgres {
            url: location.to_string(),
            node: None,
            lease_seconds: None,
        }
    } else {
        StoreLocation::Sqlite(base.join(location))
    }
}

/// `[sources]`: the sources configured beyond the bearer token.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourcesToml {
    pub(crate) cloudwatch: Option<CloudwatchToml>,
}

/// `[sources.cloudwatch]`: CloudWatch alarms through an SNS subscription.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloudwatchToml {
    /// The SNS topic ARNs to trust; required.
    pub(crate) topics: Vec<String>,
    /// Hosts the signing certificate may come from (`*` is one label).
    pub(crate) cert_hosts: Option<Vec<String>>,
    /// The oldest message accepted, in seconds.
    pub(crate) max_age_seconds: Option<u64>,
    /// A topic's severity (`critical`, `warning`, `info`) for alarms whose description
    /// names none.
    #[serde(default)]
    pub(crate) severities: BTreeMap<String, String>,
}

impl CloudwatchToml {
    /// The SNS checks this section asks for, or what is wrong with it.
    pub(crate) fn verifier(&self) -> anyhow::Result<Arc<medic_runtime::sns::SnsVerifier>> {
        let mut config = medic_runtime::sns::SnsConfig::new(self.topics.clone());
        if let Some(hosts) = &self.cert_hosts {
            config.cert_hosts = hosts.clone();
        }
        if let Some(seconds) = self.max_age_seconds {
            config.max_age = std::time::Duration::from_secs(seconds);
        }
        for (topic, severity) in &self.severities {
            let severity = match severity.as_str() {
                "critical" => medic_runtime::normalize::Severity::Critical,
                "warning" => medic_runtime::normalize::Severity::Warning,
                "info" => medic_runtime::normalize::Severity::Info,
                other => bail!(
                    "sources.cloudwatch.severities: {topic:?} has {other:?}: use critical, warning or info"
                ),
            };
            config.severities.insert(topic.clone(), severity);
        }
        medic_runtime::sns::SnsVerifier::new(config)
            .map(Arc::new)
            .map_err(|error| anyhow!(error))
    }
}

/// `[diagnose]`: the windows of `diagnose.*` and PromQL templates replacing the default
/// health checks (docs/diagnose.md).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiagnoseToml {
    /// The baseline window before `since`, such as `1h` (default), at most a day.
    pub(crate) baseline: Option<String>,
    /// The step of the range queries, such as `30s` (default), at most an hour.
    pub(crate) step: Option<String>,
    /// By check name (`latency_p99`, `error_rate`, `cpu`, `memory`, `connections`,
    /// `db_errors`, `up`, `active_connections`, `max_connections`, `slow_queries`).
    #[serde(default)]
    pub(crate) checks: BTreeMap<String, DiagnoseCheckToml>,
}

/// `[diagnose.checks.NAME]`: a check's PromQL (without the service's matcher) and the
/// label naming the service (the default check's label when left out).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiagnoseCheckToml {
    pub(crate) query: String,
    pub(crate) label: Option<String>,
}

fn diagnose_config(
    diagnose: Option<&DiagnoseToml>,
) -> anyhow::Result<medic_runtime::adapters::DiagnoseConfig> {
    use medic_runtime::adapters::diagnose::{
        DEFAULT_BASELINE, DEFAULT_STEP, DiagnoseConfig, Template,
    };
    let Some(diagnose) = diagnose else {
        return Ok(DiagnoseConfig::default());
    };
    let duration = |text: Option<&str>,
                    default: std::time::Duration,
                    most_ms: i64,
                    what: &str|
     -> anyhow::Result<std::time::Duration> {
        let Some(text) = text else {
            return Ok(default);
        };
        match medic_compiler::units::parse_duration(text) {
            Ok(millis) if millis > 0 && millis <= most_ms => {
                Ok(std::time::Duration::from_millis(millis.unsigned_abs()))
            }
            Ok(_) => bail!("{what}: {text:?} must be more than zero and at most {most_ms} ms"),
            Err(error) => bail!("{what}: {error}"),
        }
    };
    let baseline = duration(
        diagnose.baseline.as_deref(),
        DEFAULT_BASELINE,
        86_400_000,
        "diagnose.baseline",
    )?;
    let step = duration(
        diagnose.step.as_deref(),
        DEFAULT_STEP,
        3_600_000,
        "diagnose.step",
    )?;
    let defaults = DiagnoseConfig::default();
    let overrides = diagnose
        .checks
        .iter()
        .map(|(name, check)| {
            let label = check
                .label
                .clone()
                .or_else(|| {
                    defaults
                        .templates
                        .get(name)
                        .map(|template| template.label.clone())
                })
                .unwrap_or_default();
            (
                name.clone(),
                Template {
                    query: check.query.clone(),
                    label,
                },
            )
        })
        .collect();
    DiagnoseConfig::with_overrides(overrides, baseline, step).map_err(|error| anyhow!("{error}"))
}

/// `[jaeger]`: the query service `trace.*` and `diagnose.walk` ask.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JaegerToml {
    pub(crate) url: String,
    pub(crate) timeout: Option<String>,
    pub(crate) bearer_token_env: Option<String>,
    pub(crate) bearer_token_file: Option<PathBuf>,
}

/// `[elasticsearch]`: where `logs.aggregate` reads logs.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ElasticsearchToml {
    pub(crate) url: String,
    pub(crate) index: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) max_lines: Option<usize>,
    pub(crate) api_key_env: Option<String>,
    pub(crate) api_key_file: Option<PathBuf>,
    pub(crate) username_env: Option<String>,
    pub(crate) password_env: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) fields: EsFieldsToml,
}

/// `[elasticsearch.fields]`: the document fields, ECS names by default.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct EsFieldsToml {
    pub(crate) timestamp: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) level: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) error_type: Option<String>,
    pub(crate) stack_trace: Option<String>,
}

fn jaeger_config(
    jaeger: &JaegerToml,
    base: &Path,
) -> anyhow::Result<medic_runtime::adapters::JaegerConfig> {
    let token_file = jaeger
        .bearer_token_file
        .as_ref()
        .map(|file| base.join(file));
    Ok(medic_runtime::adapters::JaegerConfig {
        url: jaeger.url.clone(),
        timeout: timeout(
            jaeger.timeout.as_deref(),
            medic_runtime::adapters::jaeger::DEFAULT_TIMEOUT,
            "jaeger.timeout",
        )?,
        bearer_token: secret(
            jaeger.bearer_token_env.as_deref(),
            token_file.as_deref(),
            "jaeger.bearer_token",
        )?,
    })
}

fn topology(
    declared: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<medic_runtime::adapters::Topology> {
    let mut topology = medic_runtime::adapters::Topology::default();
    for (service, callees) in declared {
        if service.trim().is_empty() || callees.iter().any(|callee| callee.trim().is_empty()) {
            bail!("topology: a service name is empty (in the entry of {service:?})");
        }
        if callees.contains(service) {
            bail!("topology: {service:?} lists itself as a dependency");
        }
        topology
            .calls
            .insert(service.clone(), callees.iter().cloned().collect());
    }
    Ok(topology)
}

fn elasticsearch_config(
    elasticsearch: &ElasticsearchToml,
    base: &Path,
) -> anyhow::Result<medic_runtime::adapters::ElasticsearchConfig> {
    use medic_runtime::adapters::{EsAuth, EsFields, elasticsearch};
    let relative = |file: &Option<PathBuf>| file.as_ref().map(|file| base.join(file));
    let api_key = secret(
        elasticsearch.api_key_env.as_deref(),
        relative(&elasticsearch.api_key_file).as_deref(),
        "elasticsearch.api_key",
    )?;
    let username = secret(
        elasticsearch.username_env.as_deref(),
        None,
        "elasticsearch.username",
    )?;
    let password = secret(
        elasticsearch.password_env.as_deref(),
        relative(&elasticsearch.password_file).as_deref(),
        "elasticsearch.password",
    )?;
    let auth = match (api_key, username, password) {
        (None, None, None) => EsAuth::None,
        (Some(key), None, None) => EsAuth::ApiKey(key),
        (None, Some(username), Some(password)) => EsAuth::Basic { username, password },
        (Some(_), _, _) => {
            bail!("elasticsearch: give an API key or a user name and password, not both")
        }
        (None, _, _) => {
            bail!("elasticsearch: username_env and password_env (or password_file) go together")
        }
    };
    let max_lines = elasticsearch
        .max_lines
        .unwrap_or(elasticsearch::DEFAULT_MAX_LINES);
    if max_lines == 0 {
        bail!("elasticsearch.max_lines must be at least 1");
    }
    let defaults = EsFields::default();
    let fields = &elasticsearch.fields;
    let field = |value: &Option<String>, default: String| value.clone().unwrap_or(default);
    Ok(medic_runtime::adapters::ElasticsearchConfig {
        url: elasticsearch.url.clone(),
        index: elasticsearch
            .index
            .clone()
            .unwrap_or_else(|| "logs-*".into()),
        timeout: timeout(
            elasticsearch.timeout.as_deref(),
            elasticsearch::DEFAULT_TIMEOUT,
            "elasticsearch.timeout",
        )?,
        auth,
        fields: EsFields {
            timestamp: field(&fields.timestamp, defaults.timestamp),
            message: field(&fields.message, defaults.message),
            level: field(&fields.level, defaults.level),
            service: field(&fields.service, defaults.service),
            host: field(&fields.host, defaults.host),
            error_type: field(&fields.error_type, defaults.error_type),
            stack_trace: field(&fields.stack_trace, defaults.stack_trace),
        },
        max_lines,
    })
}

/// `[kubernetes]`: the cluster `k8s.*` calls go to. An empty section uses the standard
/// order (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct KubernetesToml {
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) context: Option<String>,
    /// A duration such as `10s` (default 10 s): the deadline of one `k8s.*` call, its
    /// conflict retries included.
    pub(crate) timeout: Option<String>,
}

/// `[http]`: where `http.*` requests may go when alert data chose the host, what is
/// redacted from the journal, and headers (credentials) sent to some hosts.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpToml {
    #[serde(default)]
    pub(crate) allow_hosts: Vec<String>,
    /// Replaces the default list of query parameter names whose values are redacted.
    #[serde(default)]
    pub(crate) redact_query_params: Vec<String>,
    #[serde(default)]
    pub(crate) headers: Vec<HeaderToml>,
    /// `[http.hosts]`: names resolved to fixed addresses (`"127.0.0.1:8080"` or an address
    /// alone) instead of by DNS.
    #[serde(default)]
    pub(crate) hosts: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderToml {
    pub(crate) hosts: Vec<String>,
    pub(crate) name: String,
    pub(crate) value_env: Option<String>,
    pub(crate) value_file: Option<PathBuf>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    /// The largest request body, at most `server::MAX_BODY_BYTES`.
    pub(crate) body_bytes: Option<usize>,
    /// How long the server may take over one request.
    pub(crate) request_timeout_seconds: Option<u64>,
    /// Requests handled at once; more get 503.
    pub(crate) concurrent_requests: Option<usize>,
    pub(crate) queue: Option<usize>,
    pub(crate) actions_per_minute: Option<u32>,
    pub(crate) kill_switch: Option<bool>,
    /// Days the journal keeps what has ended; 0 keeps everything.
    pub(crate) retention_days: Option<u32>,
    /// Runs in progress at once; more wait for a slot.
    pub(crate) max_runs: Option<usize>,
    /// Calls of one stdlib function in flight at once, across runs.
    pub(crate) calls_per_function: Option<usize>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    pub(crate) token_env: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    /// Users with roles and approval groups (docs/serve.md, *Users, roles and groups*).
    pub(crate) users_file: Option<PathBuf>,
    pub(crate) hmac_secret_env: Option<String>,
    pub(crate) hmac_secret_file: Option<PathBuf>,
    /// How far the generic webhook's `X-Medic-Timestamp` may be from the server's clock.
    pub(crate) hmac_tolerance_seconds: Option<u64>,
}

/// The users file: no secret in it, only the SHA-256 of each token, so it can be reviewed
/// and committed like `medic.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersFile {
    pub(crate) users: BTreeMap<String, UserToml>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserToml {
    pub(crate) token_sha256: String,
    pub(crate) role: Role,
    #[serde(default)]
    pub(crate) groups: Vec<String>,
}

/// The server's bounds from `[limits]`: a value out of range stops the start instead of being
/// clamped.
pub(crate) fn server_limits(limits: &Limits) -> anyhow::Result<ServerLimits> {
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
pub(crate) fn identities(auth: &AuthConfig, base: &Path) -> anyhow::Result<Identities> {
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
pub(crate) fn approval_warnings(plan: &Plan, identities: &Identities) -> Vec<String> {
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
pub(crate) struct NotifyToml {
    pub(crate) slack_webhook_env: Option<String>,
    /// A file holding the Slack webhook URL (relative to medic.toml); not with `_env`.
    pub(crate) slack_webhook_file: Option<PathBuf>,
    /// The webhook (a name in `webhooks_env`) told about runs that need a human.
    pub(crate) escalate_to: Option<String>,
    /// Names of environment variables holding webhook URLs, by webhook name.
    #[serde(default)]
    pub(crate) webhooks_env: BTreeMap<String, String>,
}

/// `[smtp]`: the server `notify.email` sends through; credentials only from the
/// environment or a file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpToml {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) from: String,
    /// `none`, `starttls` (the default) or `tls`.
    pub(crate) tls: Option<String>,
    pub(crate) username_env: Option<String>,
    pub(crate) password_env: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    /// A duration such as `10s` (default 10 s), at most an hour.
    pub(crate) timeout: Option<String>,
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
pub(crate) struct PrometheusToml {
    pub(crate) url: String,
    /// A duration such as `10s` (default 10 s), at most an hour.
    pub(crate) timeout: Option<String>,
    pub(crate) bearer_token_env: Option<String>,
    pub(crate) bearer_token_file: Option<PathBuf>,
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
pub(crate) fn timeout(
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
pub(crate) async fn connect_kubernetes(
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

pub(crate) fn read_config(path: Option<&Path>) -> anyhow::Result<(Config, PathBuf)> {
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

pub(crate) fn secret(
    env: Option<&str>,
    file: Option<&Path>,
    what: &str,
) -> anyhow::Result<Option<String>> {
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
pub(crate) fn toolbox_config(config: &Config, base: &Path) -> anyhow::Result<ToolboxConfig> {
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
        clock: Clock::system(),
        http: HttpConfig {
            allow_hosts: patterns(&config.http.allow_hosts, "http.allow_hosts")?,
            redact_params: config.http.redact_query_params.clone(),
            headers,
            hosts: static_hosts(&config.http.hosts)?,
        },
        notify: notify_config(&config.notify, base)?,
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
        jaeger: config
            .jaeger
            .as_ref()
            .map(|jaeger| jaeger_config(jaeger, base))
            .transpose()?,
        topology: topology(&config.topology)?,
        elasticsearch: config
            .elasticsearch
            .as_ref()
            .map(|elasticsearch| elasticsearch_config(elasticsearch, base))
            .transpose()?,
        diagnose: diagnose_config(config.diagnose.as_ref())?,
        calls_per_function,
    })
}

pub(crate) fn notify_config(notify: &NotifyToml, base: &Path) -> anyhow::Result<NotifyConfig> {
    if notify.slack_webhook_env.is_some() && notify.slack_webhook_file.is_some() {
        bail!("notify: set slack_webhook_env or slack_webhook_file, not both");
    }
    let slack_webhook = secret(
        notify.slack_webhook_env.as_deref(),
        notify
            .slack_webhook_file
            .as_ref()
            .map(|path| base.join(path))
            .as_deref(),
        "notify.slack_webhook",
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

/// The plans of `plans = [...]`, relative to the config's folder.
pub(crate) fn plans(config: &Config, base: &Path) -> Vec<PathBuf> {
    config
        .plans
        .iter()
        .flatten()
        .map(|path| base.join(path))
        .collect()
}

/// `[http.hosts]`: each name and the address it stands for; an address without a port
/// keeps the URL's (or its scheme's) port.
fn static_hosts(hosts: &BTreeMap<String, String>) -> anyhow::Result<BTreeMap<String, SocketAddr>> {
    let mut resolved = BTreeMap::new();
    for (name, address) in hosts {
        let parsed = address
            .parse::<SocketAddr>()
            .or_else(|_| address.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
            .map_err(|_| {
                anyhow!(
                    "http.hosts.{name:?} = {address:?} is not an IP address with an optional port (such as \"127.0.0.1:8080\")"
                )
            })?;
        if name.is_empty() || name.contains(['/', ':', ' ']) {
            bail!("http.hosts: {name:?} is not a host name");
        }
        resolved.insert(name.to_ascii_lowercase(), parsed);
    }
    Ok(resolved)
}
