//! The toolbox `medic serve` and `medic run` use, one module per external system:
//! `http` (`http.get`, `http.post`, with the policy that keeps alert data from choosing
//! where a request goes), `notify` (`notify.slack`, `notify.webhook`), `smtp`
//! (`notify.email`) and `prometheus` (`prom.query`, `prom.range`). `args` decodes a call's
//! arguments once into the typed struct of its function.
//!
//! Functions whose adapters are not built yet (Jaeger, Elasticsearch, Kubernetes) fail with
//! a message saying so, never with a made-up answer. Every call waits for a slot of its
//! function's concurrency limit first, so a storm of runs cannot open thousands of
//! requests to one system at once.

pub mod args;
pub mod http;
pub mod notify;
pub mod prometheus;
pub mod smtp;

pub use http::{HeaderRule, HostPattern, HttpConfig};
pub use notify::NotifyConfig;
pub use prometheus::PrometheusConfig;
pub use smtp::{SmtpConfig, SmtpTls};

use crate::executor::{CallError, CallFuture, Toolbox};
use medic_compiler::plan::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Calls of one function in flight at once, by default (`limits.calls_per_function`).
pub const DEFAULT_CALLS_PER_FUNCTION: usize = 16;

/// Everything the built-in toolbox is configured with.
#[derive(Debug, Clone)]
pub struct ToolboxConfig {
    pub http: HttpConfig,
    pub notify: NotifyConfig,
    /// `None`: `notify.email` fails saying no server is configured.
    pub smtp: Option<SmtpConfig>,
    /// `None`: `prom.*` calls fail saying no Prometheus is configured.
    pub prometheus: Option<PrometheusConfig>,
    /// Calls of one function in flight at once, across all runs (at least 1).
    pub calls_per_function: usize,
}

impl Default for ToolboxConfig {
    fn default() -> Self {
        ToolboxConfig {
            http: HttpConfig::default(),
            notify: NotifyConfig::default(),
            smtp: None,
            prometheus: None,
            calls_per_function: DEFAULT_CALLS_PER_FUNCTION,
        }
    }
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NotifyConfig")
            .field(
                "slack_webhook",
                &self.slack_webhook.as_ref().map(|_| "<redacted>"),
            )
            .field("webhooks", &self.webhooks.keys().collect::<Vec<_>>())
            .finish()
    }
}

pub struct StandardToolbox {
    http: Arc<http::Http>,
    notify: Arc<notify::Notifier>,
    smtp: Arc<smtp::Mailer>,
    prometheus: Option<Arc<prometheus::Prometheus>>,
    calls_per_function: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl StandardToolbox {
    pub fn new(config: ToolboxConfig) -> Result<StandardToolbox, String> {
        let http = http::Http::new(config.http).map_err(|error| error.to_string())?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(StandardToolbox {
            http: Arc::new(http),
            notify: Arc::new(notify::Notifier::new(client, config.notify)),
            smtp: Arc::new(smtp::Mailer::new(config.smtp).map_err(|error| error.to_string())?),
            prometheus: match config.prometheus {
                Some(config) => Some(Arc::new(
                    prometheus::Prometheus::new(config).map_err(|error| error.to_string())?,
                )),
                None => None,
            },
            calls_per_function: config.calls_per_function.max(1),
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The concurrency limit of one function, made on its first call.
    fn slots(&self, function: &str) -> Option<Arc<Semaphore>> {
        let mut slots = self.slots.lock().ok()?;
        Some(Arc::clone(
            slots
                .entry(function.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.calls_per_function))),
        ))
    }
}

impl Toolbox for StandardToolbox {
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture {
        let slots = self.slots(function);
        let function = function.to_string();
        let http = Arc::clone(&self.http);
        let notify = Arc::clone(&self.notify);
        let smtp = Arc::clone(&self.smtp);
        let prometheus = self.prometheus.clone();
        Box::pin(async move {
            let _slot = match slots {
                Some(slots) => Some(slots.acquire_owned().await.map_err(|_| {
                    CallError::Failed(format!("the concurrency limit of `{function}` is closed"))
                })?),
                None => None,
            };
            let failed = |error: &dyn std::fmt::Display| CallError::Failed(error.to_string());
            match function.as_str() {
                "http.get" | "http.post" => {
                    let request =
                        http::Request::decode(&function, args).map_err(|error| failed(&error))?;
                    http.request(request).await.map_err(|error| failed(&error))
                }
                "notify.slack" => notify.slack(args).await.map_err(|error| failed(&error)),
                "notify.webhook" => notify.webhook(args).await.map_err(|error| failed(&error)),
                "notify.email" => smtp.email(args).await.map_err(|error| failed(&error)),
                "prom.query" | "prom.range" => match prometheus {
                    Some(prometheus) => prometheus.call(&function, args).await,
                    None => Err(prometheus::PrometheusError::NotConfigured),
                }
                .map_err(|error| failed(&error)),
                other => {
                    let module = other.split('.').next().unwrap_or(other);
                    Err(CallError::Failed(format!(
                        "`{other}` has no adapter in this build: the {module} adapter is not implemented yet"
                    )))
                }
            }
        })
    }

    fn journaled(&self, function: &str, args: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        match function {
            "http.get" | "http.post" => self.http.journaled(args),
            _ => args.clone(),
        }
    }
}
