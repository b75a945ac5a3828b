//! The toolbox `medic serve` and `medic run` use, one module per external system:
//! `http` (`http.get`, `http.post`, with the policy that keeps alert data from choosing
//! where a request goes), `notify` (`notify.slack`, `notify.webhook`), `smtp`
//! (`notify.email`), `prometheus` (`prom.query`, `prom.range`) and `kubernetes` (`k8s.*`,
//! behind the [`kubernetes::Cluster`] trait). `args` decodes a call's arguments once into
//! the typed struct of its function.
//!
//! `jaeger` (`trace.*`, with the declared `topology`), `elasticsearch` (`logs.aggregate`) and
//! `diagnose` (`diagnose.*`, from Prometheus and Jaeger) complete the standard library. A
//! call whose system is not configured fails saying which section to add, never with a
//! made-up answer. Every call waits for a slot of its
//! function's concurrency limit first, so a storm of runs cannot open thousands of
//! requests to one system at once.

pub mod args;
pub mod diagnose;
pub mod elasticsearch;
pub mod endpoint;
pub mod http;
pub mod jaeger;
pub mod kubernetes;
pub mod notify;
pub mod prometheus;
pub mod smtp;
pub mod topology;

pub use diagnose::DiagnoseConfig;
pub use elasticsearch::{ElasticsearchConfig, EsAuth, EsFields};
pub use http::{HeaderRule, HostPattern, HttpConfig};
pub use jaeger::JaegerConfig;
pub use kubernetes::{Kubernetes, KubernetesConfig};
pub use notify::NotifyConfig;
pub use prometheus::PrometheusConfig;
pub use smtp::{SmtpConfig, SmtpTls};
pub use topology::Topology;

use crate::executor::{CallError, CallFuture, Clock, Toolbox};
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
    /// `None`: `k8s.*` calls fail saying no cluster is configured.
    pub kubernetes: Option<Arc<Kubernetes>>,
    /// `None`: `trace.*` use the topology only (`slowest_spans` fails).
    pub jaeger: Option<JaegerConfig>,
    /// The declared service graph, merged with Jaeger's.
    pub topology: Topology,
    /// `None`: `logs.aggregate` fails saying no Elasticsearch is configured.
    pub elasticsearch: Option<ElasticsearchConfig>,
    /// The health checks of `diagnose.*`.
    pub diagnose: DiagnoseConfig,
    /// Calls of one function in flight at once, across all runs (at least 1).
    pub calls_per_function: usize,
    /// What the query adapters take as "now" (the engine's clock; faster than wall time
    /// in `medic demo`).
    pub clock: Clock,
}

impl Default for ToolboxConfig {
    fn default() -> Self {
        ToolboxConfig {
            http: HttpConfig::default(),
            notify: NotifyConfig::default(),
            smtp: None,
            prometheus: None,
            kubernetes: None,
            jaeger: None,
            topology: Topology::default(),
            elasticsearch: None,
            diagnose: DiagnoseConfig::default(),
            calls_per_function: DEFAULT_CALLS_PER_FUNCTION,
            clock: Clock::system(),
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

/// The adapter that implements a stdlib function. One match, so a function has exactly one
/// implementation; a test holds it to the standard library's declarations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Http,
    Slack,
    Webhook,
    Email,
    Prometheus,
    Kubernetes,
    Traces,
    Logs,
    Diagnose,
}

impl Adapter {
    /// Every function with an implementation, by its qualified name.
    pub const FUNCTIONS: &[&str] = &[
        "http.get",
        "http.post",
        "notify.slack",
        "notify.webhook",
        "notify.email",
        "prom.query",
        "prom.range",
        "k8s.deployment",
        "k8s.scale",
        "k8s.scale_to",
        "k8s.restart",
        "trace.dependencies",
        "trace.slowest_spans",
        "logs.aggregate",
        "diagnose.walk",
        "diagnose.database",
    ];

    pub fn of(function: &str) -> Option<Adapter> {
        Some(match function {
            "http.get" | "http.post" => Adapter::Http,
            "notify.slack" => Adapter::Slack,
            "notify.webhook" => Adapter::Webhook,
            "notify.email" => Adapter::Email,
            "prom.query" | "prom.range" => Adapter::Prometheus,
            "k8s.deployment" | "k8s.scale" | "k8s.scale_to" | "k8s.restart" => Adapter::Kubernetes,
            "trace.dependencies" | "trace.slowest_spans" => Adapter::Traces,
            "logs.aggregate" => Adapter::Logs,
            "diagnose.walk" | "diagnose.database" => Adapter::Diagnose,
            _ => return None,
        })
    }

    /// The medic.toml setting without which its calls cannot work, if there is one.
    pub fn needs(self) -> Option<&'static str> {
        match self {
            Adapter::Http | Adapter::Webhook => None,
            Adapter::Slack => Some("[notify] slack_webhook_env (or slack_webhook_file)"),
            Adapter::Email => Some("[smtp] (host, port, from)"),
            Adapter::Prometheus => Some("[prometheus] url"),
            Adapter::Kubernetes => Some(
                "[kubernetes] (an empty section uses KUBECONFIG, ~/.kube/config or the in-cluster account)",
            ),
            Adapter::Traces => Some("[jaeger] url or a [topology]"),
            Adapter::Logs => Some("[elasticsearch] url"),
            Adapter::Diagnose => Some("[prometheus] url"),
        }
    }

    /// Whether a toolbox made from `config` has what this adapter needs.
    pub fn configured(self, config: &ToolboxConfig) -> bool {
        match self {
            Adapter::Http | Adapter::Webhook => true,
            Adapter::Slack => config.notify.slack_webhook.is_some(),
            Adapter::Email => config.smtp.is_some(),
            Adapter::Prometheus => config.prometheus.is_some(),
            Adapter::Kubernetes => config.kubernetes.is_some(),
            Adapter::Traces => config.jaeger.is_some() || !config.topology.is_empty(),
            Adapter::Logs => config.elasticsearch.is_some(),
            Adapter::Diagnose => config.prometheus.is_some(),
        }
    }
}

/// Every call in `plan` whose adapter is not `configured`: one line each, naming the
/// function, the playbook, the rules that run it and the setting to add.
pub fn unconfigured(
    plan: &medic_compiler::plan::Plan,
    configured: impl Fn(Adapter) -> bool,
) -> Vec<String> {
    let mut missing = Vec::new();
    for playbook in &plan.playbooks {
        let mut seen = std::collections::BTreeSet::new();
        for task in &playbook.tasks {
            let Some(adapter) = Adapter::of(&task.function) else {
                continue;
            };
            if configured(adapter) || !seen.insert(task.function.clone()) {
                continue;
            }
            let rules: Vec<&str> = plan
                .rules
                .iter()
                .filter(|rule| rule.playbook == playbook.name)
                .map(|rule| rule.name.as_str())
                .collect();
            let run_by = match rules.as_slice() {
                [] => "run by no rule".to_string(),
                [one] => format!("run by rule {one}"),
                many => format!("run by rules {}", many.join(", ")),
            };
            missing.push(format!(
                "playbook {} ({run_by}) calls {} in task {}, which needs {} in medic.toml",
                playbook.name,
                task.function,
                task.id,
                adapter.needs().unwrap_or("its configuration")
            ));
        }
    }
    missing
}

pub struct StandardToolbox {
    http: Arc<http::Http>,
    notify: Arc<notify::Notifier>,
    smtp: Arc<smtp::Mailer>,
    prometheus: Option<Arc<prometheus::Prometheus>>,
    kubernetes: Option<Arc<Kubernetes>>,
    jaeger: Arc<jaeger::Jaeger>,
    elasticsearch: Arc<elasticsearch::Elasticsearch>,
    diagnose: Arc<diagnose::Diagnose>,
    calls_per_function: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl StandardToolbox {
    /// A call, made on behalf of `caller` when there is one ([`Toolbox::call_as`]).
    fn call_with(
        &self,
        function: &str,
        args: BTreeMap<String, Value>,
        caller: Option<crate::executor::Caller>,
    ) -> CallFuture {
        let slots = self.slots(function);
        let function = function.to_string();
        let http = Arc::clone(&self.http);
        let notify = Arc::clone(&self.notify);
        let smtp = Arc::clone(&self.smtp);
        let prometheus = self.prometheus.clone();
        let kubernetes = self.kubernetes.clone();
        let jaeger = Arc::clone(&self.jaeger);
        let elasticsearch = Arc::clone(&self.elasticsearch);
        let diagnose = Arc::clone(&self.diagnose);
        Box::pin(async move {
            let _slot = match slots {
                Some(slots) => Some(slots.acquire_owned().await.map_err(|_| {
                    CallError::Failed(format!("the concurrency limit of `{function}` is closed"))
                })?),
                None => None,
            };
            let failed = |error: &dyn std::fmt::Display| CallError::Failed(error.to_string());
            let Some(adapter) = Adapter::of(&function) else {
                let module = function.split('.').next().unwrap_or(&function);
                return Err(CallError::Failed(format!(
                    "`{function}` has no adapter in this build: the {module} adapter is not implemented yet"
                )));
            };
            match adapter {
                Adapter::Http => {
                    let mut request =
                        http::Request::decode(&function, args).map_err(|error| failed(&error))?;
                    request.caller = caller;
                    http.request(request).await.map_err(|error| failed(&error))
                }
                Adapter::Slack => notify.slack(args).await.map_err(|error| failed(&error)),
                Adapter::Webhook => notify.webhook(args).await.map_err(|error| failed(&error)),
                Adapter::Email => smtp.email(args).await.map_err(|error| failed(&error)),
                Adapter::Prometheus => match prometheus {
                    Some(prometheus) => prometheus.call(&function, args).await,
                    None => Err(prometheus::PrometheusError::NotConfigured),
                }
                .map_err(|error| failed(&error)),
                Adapter::Kubernetes => match kubernetes {
                    Some(kubernetes) => kubernetes.call(&function, args, false).await,
                    None => Err(kubernetes::KubernetesError::NotConfigured),
                }
                .map_err(CallError::from),
                Adapter::Traces => jaeger
                    .call(&function, args)
                    .await
                    .map_err(|error| failed(&error)),
                Adapter::Logs => elasticsearch
                    .call(&function, args)
                    .await
                    .map_err(|error| failed(&error)),
                Adapter::Diagnose => diagnose
                    .call(&function, args)
                    .await
                    .map_err(|error| failed(&error)),
            }
        })
    }

    pub fn new(config: ToolboxConfig) -> Result<StandardToolbox, String> {
        let http = http::Http::new(config.http).map_err(|error| error.to_string())?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        let config_clock = config.clock;
        let prometheus = match config.prometheus {
            Some(config) => Some(Arc::new(
                prometheus::Prometheus::new(config)
                    .map_err(|error| error.to_string())?
                    .with_clock(config_clock),
            )),
            None => None,
        };
        let jaeger = Arc::new(
            jaeger::Jaeger::new(config.jaeger, config.topology.clone(), config.clock)
                .map_err(|error| error.to_string())?,
        );
        let diagnose = Arc::new(diagnose::Diagnose::new(
            prometheus.clone(),
            Arc::clone(&jaeger),
            config.topology,
            config.diagnose,
            config.clock,
        ));
        Ok(StandardToolbox {
            jaeger,
            diagnose,
            elasticsearch: Arc::new(
                elasticsearch::Elasticsearch::new(config.elasticsearch)
                    .map_err(|error| error.to_string())?
                    .with_clock(config.clock),
            ),
            http: Arc::new(http),
            notify: Arc::new(notify::Notifier::new(client, config.notify)),
            smtp: Arc::new(smtp::Mailer::new(config.smtp).map_err(|error| error.to_string())?),
            prometheus,
            kubernetes: config.kubernetes,
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
        self.call_with(function, args, None)
    }

    fn call_as(
        &self,
        function: &str,
        args: BTreeMap<String, Value>,
        caller: &crate::executor::Caller,
    ) -> CallFuture {
        self.call_with(function, args, Some(*caller))
    }

    fn revert(&self, function: &str, args: BTreeMap<String, Value>, output: Value) -> CallFuture {
        let function = function.to_string();
        let kubernetes = self.kubernetes.clone();
        Box::pin(async move {
            match (function.as_str(), kubernetes) {
                ("k8s.scale" | "k8s.scale_to", Some(kubernetes)) => kubernetes
                    .revert(&function, args, output)
                    .await
                    .map_err(CallError::from),
                ("k8s.scale" | "k8s.scale_to", None) => Err(CallError::Failed(
                    kubernetes::KubernetesError::NotConfigured.to_string(),
                )),
                (other, _) => Err(CallError::Unknown(format!("revert of {other}"))),
            }
        })
    }

    fn preview(&self, function: &str, args: BTreeMap<String, Value>) -> Option<CallFuture> {
        let kubernetes = self.kubernetes.clone()?;
        if !matches!(function, "k8s.scale" | "k8s.scale_to" | "k8s.restart") {
            return None;
        }
        let function = function.to_string();
        Some(Box::pin(async move {
            kubernetes
                .call(&function, args, true)
                .await
                .map_err(CallError::from)
        }))
    }

    fn journaled(&self, function: &str, args: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        match function {
            "http.get" | "http.post" => self.http.journaled(args),
            _ => args.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Modules without an adapter yet.
    const NOT_YET: &[&str] = &[];

    #[test]
    fn every_stdlib_function_has_exactly_one_implementation() {
        let analysis = medic_compiler::check(Vec::new());
        let declared: Vec<String> = analysis
            .env
            .functions
            .iter()
            .map(|function| function.qualified_name())
            .collect();
        assert!(declared.len() > 10, "{declared:?}");
        for name in &declared {
            let module = name.split('.').next().unwrap_or_default();
            let adapter = Adapter::of(name);
            if NOT_YET.contains(&module) {
                assert_eq!(adapter, None, "{name} has an adapter: take it off NOT_YET");
            } else {
                assert!(adapter.is_some(), "{name} has no implementation");
            }
            // The table of names and the match agree, once each.
            let listed = Adapter::FUNCTIONS
                .iter()
                .filter(|listed| *listed == name)
                .count();
            assert_eq!(
                listed,
                usize::from(adapter.is_some()),
                "{name} in Adapter::FUNCTIONS"
            );
        }
        // Nothing is implemented that the standard library does not declare.
        for name in Adapter::FUNCTIONS {
            assert!(
                declared.iter().any(|declared| declared == name),
                "{name} is not declared"
            );
        }
    }

    #[tokio::test]
    async fn an_unconfigured_adapter_says_what_to_configure_and_never_that_it_is_missing() {
        let toolbox = StandardToolbox::new(ToolboxConfig::default()).unwrap_or_else(|error| {
            unreachable!("the default toolbox builds: {error}");
        });
        for name in Adapter::FUNCTIONS {
            if matches!(Adapter::of(name), Some(Adapter::Http | Adapter::Webhook)) {
                continue;
            }
            let error = toolbox.call(name, BTreeMap::new()).await;
            let text = match error {
                Err(error) => error.to_string(),
                Ok(value) => unreachable!("{name} answered {value:?} without configuration"),
            };
            assert!(!text.contains("no adapter"), "{name}: {text}");
        }
    }
}
