//! The toolbox `medic serve` and `medic run` use: a plain HTTP adapter (`http.get`,
//! `http.post`) and webhook notifications (`notify.webhook`, `notify.slack`) over reqwest.
//! Functions whose adapters are not built yet (Prometheus, Jaeger, Elasticsearch,
//! Kubernetes, email) fail with a message saying so, never with a made-up answer.

use crate::executor::{CallError, CallFuture, Toolbox};
use medic_compiler::plan::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Where notifications go; URLs are secrets (Slack webhook URLs carry a token) and are
/// never logged or reported.
#[derive(Clone, Default)]
pub struct NotifyConfig {
    pub slack_webhook: Option<String>,
    /// `notify.webhook(name: ...)` targets, by name.
    pub webhooks: BTreeMap<String, String>,
}

pub struct StandardToolbox {
    client: reqwest::Client,
    notify: NotifyConfig,
}

/// The largest body kept in an `http.Response`.
const BODY_LIMIT: usize = 64 * 1024;

impl StandardToolbox {
    pub fn new(notify: NotifyConfig) -> Result<StandardToolbox, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(StandardToolbox { client, notify })
    }
}

fn text(args: &BTreeMap<String, Value>, name: &str) -> Result<String, CallError> {
    match args.get(name) {
        Some(Value::String(value)) => Ok(value.clone()),
        Some(other) => Err(CallError::Failed(format!(
            "`{name}` must be a String, not {}",
            other.type_name()
        ))),
        None => Err(CallError::Failed(format!("missing argument `{name}`"))),
    }
}

fn millis(args: &BTreeMap<String, Value>, name: &str, default: u64) -> u64 {
    match args.get(name) {
        Some(Value::Duration(millis)) => millis.unsigned_abs(),
        _ => default,
    }
}

fn int(args: &BTreeMap<String, Value>, name: &str, default: i64) -> i64 {
    match args.get(name) {
        Some(Value::Int(value)) => *value,
        _ => default,
    }
}

/// The `http.Response` record; no answer at all is `ok: false, status: 0`, as documented.
async fn request(builder: reqwest::RequestBuilder, expect_status: i64, started: Instant) -> Value {
    let latency = |started: Instant| {
        Value::Duration(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
    };
    match builder.send().await {
        Ok(response) => {
            let status = i64::from(response.status().as_u16());
            let body = match response.bytes().await {
                Ok(bytes) => {
                    let kept = bytes.get(..BODY_LIMIT.min(bytes.len())).unwrap_or(&[]);
                    String::from_utf8_lossy(kept).into_owned()
                }
                Err(error) => format!("(body unreadable: {error})"),
            };
            Value::record([
                ("ok".to_string(), Value::Bool(status == expect_status)),
                ("status".to_string(), Value::Int(status)),
                ("latency".to_string(), latency(started)),
                ("body".to_string(), Value::String(body)),
            ])
        }
        Err(error) => Value::record([
            ("ok".to_string(), Value::Bool(false)),
            ("status".to_string(), Value::Int(0)),
            ("latency".to_string(), latency(started)),
            (
                "body".to_string(),
                Value::String(format!("no answer: {}", without_url(&error))),
            ),
        ]),
    }
}

/// reqwest's error text without the URL (which may carry a token).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// Posts a notification and says whether it was delivered.
async fn post_json(client: &reqwest::Client, url: String, body: &serde_json::Value) -> Value {
    delivery(
        client
            .post(url)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await,
    )
}

fn delivery(result: Result<reqwest::Response, reqwest::Error>) -> Value {
    let (delivered, detail) = match result {
        Ok(response) if response.status().is_success() => {
            (true, format!("HTTP {}", response.status().as_u16()))
        }
        Ok(response) => (false, format!("HTTP {}", response.status().as_u16())),
        Err(error) => (false, without_url(&error)),
    };
    Value::record([
        ("delivered".to_string(), Value::Bool(delivered)),
        ("detail".to_string(), Value::String(detail)),
    ])
}

impl Toolbox for StandardToolbox {
    fn call(&self, function: &str, args: BTreeMap<String, Value>) -> CallFuture {
        let client = self.client.clone();
        match function {
            "http.get" | "http.post" => {
                let post = function == "http.post";
                Box::pin(async move {
                    let url = text(&args, "url")?;
                    let timeout = millis(&args, "timeout", if post { 30_000 } else { 10_000 });
                    let expect_status = int(&args, "expect_status", 200);
                    let builder = if post {
                        client
                            .post(&url)
                            .body(text(&args, "body").unwrap_or_default())
                    } else {
                        client.get(&url)
                    };
                    let builder = builder.timeout(Duration::from_millis(timeout));
                    Ok(request(builder, expect_status, Instant::now()).await)
                })
            }
            "notify.slack" => {
                let url = self.notify.slack_webhook.clone();
                Box::pin(async move {
                    let url = url.ok_or_else(|| {
                        CallError::Failed(
                            "no Slack webhook is configured ([notify] slack_webhook_env)".into(),
                        )
                    })?;
                    let channel = text(&args, "channel")?;
                    let message = text(&args, "text")?;
                    let body = serde_json::json!({ "channel": channel, "text": message });
                    Ok(post_json(&client, url, &body).await)
                })
            }
            "notify.webhook" => {
                let webhooks = self.notify.webhooks.clone();
                Box::pin(async move {
                    let name = text(&args, "name")?;
                    let url = webhooks.get(&name).cloned().ok_or_else(|| {
                        CallError::Failed(format!("no webhook named {name:?} is configured"))
                    })?;
                    let body = serde_json::json!({
                        "title": text(&args, "title")?,
                        "text": text(&args, "text")?,
                    });
                    Ok(post_json(&client, url, &body).await)
                })
            }
            other => {
                let module = other.split('.').next().unwrap_or(other).to_string();
                let function = other.to_string();
                Box::pin(async move {
                    Err(CallError::Failed(format!(
                        "`{function}` has no adapter in this build: the {module} adapter is not implemented yet"
                    )))
                })
            }
        }
    }
}
