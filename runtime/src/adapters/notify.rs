//! `notify.slack` and `notify.webhook`: notifications posted as JSON to URLs from the
//! configuration (secrets: a Slack webhook URL carries a token), never logged or reported.

use super::args::{ArgError, Args};
use super::http::without_url;
use medic_compiler::plan::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where notifications go; URLs are secrets and are never logged or reported.
#[derive(Clone, Default)]
pub struct NotifyConfig {
    pub slack_webhook: Option<String>,
    /// `notify.webhook(name: ...)` targets, by name.
    pub webhooks: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    #[error("no Slack webhook is configured ([notify] slack_webhook_env)")]
    NoSlackWebhook,
    #[error("no webhook named {0:?} is configured")]
    NoWebhook(String),
    #[error(transparent)]
    Argument(#[from] ArgError),
    /// The receiver refused it or could not be reached: a failure, so the task's `retry`
    /// and `on failure` apply (an undelivered notification is never a success).
    #[error("not delivered: {0}")]
    NotDelivered(String),
}

/// The decoded arguments of `notify.slack`.
struct Slack {
    channel: String,
    text: String,
}

/// The decoded arguments of `notify.webhook`.
struct Webhook {
    name: String,
    title: String,
    text: String,
}

pub struct Notifier {
    client: reqwest::Client,
    config: NotifyConfig,
}

impl Notifier {
    pub fn new(client: reqwest::Client, config: NotifyConfig) -> Notifier {
        Notifier { client, config }
    }

    pub async fn slack(&self, values: BTreeMap<String, Value>) -> Result<Value, NotifyError> {
        let mut args = Args::new("notify.slack", values);
        let slack = Slack {
            channel: args.string("channel")?,
            text: args.string("text")?,
        };
        args.finish()?;
        let url = self
            .config
            .slack_webhook
            .clone()
            .ok_or(NotifyError::NoSlackWebhook)?;
        let body = serde_json::json!({ "channel": slack.channel, "text": slack.text });
        self.post_json(url, &body).await
    }

    pub async fn webhook(&self, values: BTreeMap<String, Value>) -> Result<Value, NotifyError> {
        let mut args = Args::new("notify.webhook", values);
        let webhook = Webhook {
            name: args.string("name")?,
            title: args.string("title")?,
            text: args.string("text")?,
        };
        args.finish()?;
        let url = self
            .config
            .webhooks
            .get(&webhook.name)
            .cloned()
            .ok_or_else(|| NotifyError::NoWebhook(webhook.name.clone()))?;
        let body = serde_json::json!({ "title": webhook.title, "text": webhook.text });
        self.post_json(url, &body).await
    }

    /// Posts a notification: delivered (a 2xx) is the `notify.Delivery` record, anything
    /// else an error.
    async fn post_json(&self, url: String, body: &serde_json::Value) -> Result<Value, NotifyError> {
        let result = self
            .client
            .post(url)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let detail = match result {
            Ok(response) if response.status().is_success() => {
                format!("HTTP {}", response.status().as_u16())
            }
            Ok(response) => {
                return Err(NotifyError::NotDelivered(format!(
                    "HTTP {}",
                    response.status().as_u16()
                )));
            }
            Err(error) => return Err(NotifyError::NotDelivered(without_url(&error))),
        };
        Ok(Value::record([
            ("delivered".to_string(), Value::Bool(true)),
            ("detail".to_string(), Value::String(detail)),
        ]))
    }
}
