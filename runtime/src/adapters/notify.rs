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
        Ok(self.post_json(url, &body).await)
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
        Ok(self.post_json(url, &body).await)
    }

    /// Posts a notification and says whether it was delivered.
    async fn post_json(&self, url: String, body: &serde_json::Value) -> Value {
        let result = self
            .client
            .post(url)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
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
}
