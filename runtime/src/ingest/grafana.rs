//! Grafana's unified-alerting webhook contact point.

use super::alertmanager::{WebhookAlert, normalize_labelled};
use super::*;

#[derive(Deserialize)]
pub(super) struct GrafanaWebhook {
    #[serde(default)]
    alerts: Option<Vec<JsonObject<GrafanaAlert>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GrafanaAlert {
    status: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    /// One number per query or expression of the alert rule (`{"B": 92.5}`).
    #[serde(default)]
    values: Option<BTreeMap<String, serde_json::Value>>,
}

/// Reads a Grafana unified-alerting webhook payload: every alert of the notification. Any
/// `version` is accepted (Grafana sends "1"); the alerts have Alertmanager's shape.
pub fn grafana(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let JsonObject(payload): JsonObject<GrafanaWebhook> =
        serde_json::from_slice(body).map_err(|error| malformed("grafana", json_reason(&error)))?;
    let Some(alerts) = payload.alerts else {
        return Err(malformed("grafana", "no `alerts` array".into()));
    };
    alerts
        .into_iter()
        .enumerate()
        .map(|(index, JsonObject(alert))| -> Result<Alert, IngestError> {
            let labelled = WebhookAlert {
                status: alert.status,
                labels: alert.labels.unwrap_or_default(),
                annotations: alert.annotations.unwrap_or_default(),
                starts_at: alert.starts_at,
                ends_at: alert.ends_at,
                fingerprint: alert.fingerprint,
            };
            let mut normalized = normalize_labelled(index, labelled, "grafana")?;
            // A `value` annotation says which number matters, with its unit; without one,
            // Grafana's evaluated values stand in.
            if !normalized.annotations.contains_key("value") {
                normalized.value = grafana_value(alert.values.as_ref());
            }
            Ok(normalized)
        })
        .collect()
}

/// The value of a Grafana alert without a `value` annotation: its only evaluated number, as a
/// plain number. With several (a query and a threshold, say) none of them is "the" value.
pub(super) fn grafana_value(
    values: Option<&BTreeMap<String, serde_json::Value>>,
) -> Result<Quantity, ValueError> {
    let mut entries = values.into_iter().flatten();
    match (entries.next(), entries.next()) {
        (Some((_, serde_json::Value::Number(number))), None) => {
            normalize::value(Some(number.to_string().as_str()))
        }
        (Some((ref_id, other)), None) => Err(ValueError::Unreadable(format!(
            "`{ref_id}` is {}, not a number",
            json_kind(other)
        ))),
        _ => Err(ValueError::Missing),
    }
}
