//! Alertmanager's webhook, version 4: the reference source.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookV4 {
    #[serde(default)]
    version: Option<String>,
    alerts: Vec<JsonObject<WebhookAlert>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookAlert {
    pub(super) status: String,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) starts_at: String,
    #[serde(default)]
    pub(super) ends_at: Option<String>,
    #[serde(default)]
    pub(super) fingerprint: Option<String>,
}

/// Reads an Alertmanager webhook payload (version 4): every alert of the group.
pub fn alertmanager(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let JsonObject(payload): JsonObject<WebhookV4> = serde_json::from_slice(body)
        .map_err(|error| malformed("alertmanager", json_reason(&error)))?;
    if let Some(version) = payload.version.filter(|version| version != "4") {
        return Err(IngestError::UnsupportedVersion {
            source_name: "alertmanager",
            version,
        });
    }
    payload
        .alerts
        .into_iter()
        .enumerate()
        .map(|(index, JsonObject(alert))| normalize_labelled(index, alert, "alertmanager"))
        .collect()
}

/// Normalizes an alert of the Alertmanager shape (labels, annotations, `startsAt`), which
/// Grafana's webhook shares.
pub(super) fn normalize_labelled(
    index: usize,
    alert: WebhookAlert,
    source: &'static str,
) -> Result<Alert, IngestError> {
    let bad = |reason: String| IngestError::BadAlert { index, reason };
    let status = match alert.status.as_str() {
        "firing" => Status::Firing,
        "resolved" => Status::Resolved,
        other => {
            return Err(bad(format!(
                "status must be \"firing\" or \"resolved\", not {other:?}"
            )));
        }
    };
    let name = alert
        .labels
        .get("alertname")
        .cloned()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| bad("has no `alertname` label".into()))?;
    let starts_at = time(&alert.starts_at).map_err(|reason| bad(format!("startsAt: {reason}")))?;
    // Alertmanager sends the zero time for alerts that have not ended.
    let ends_at = match alert.ends_at.as_deref() {
        None | Some("") | Some("0001-01-01T00:00:00Z") => None,
        Some(text) => Some(time(text).map_err(|reason| bad(format!("endsAt: {reason}")))?),
    };
    let label = |key: &str| alert.labels.get(key).cloned().unwrap_or_default();
    let annotation = |key: &str| alert.annotations.get(key).cloned().unwrap_or_default();
    let service = alert
        .labels
        .get("service")
        .or_else(|| alert.labels.get("job"))
        .cloned()
        .unwrap_or_default();
    let fingerprint = alert
        .fingerprint
        .clone()
        .filter(|fingerprint| !fingerprint.is_empty())
        .unwrap_or_else(|| fingerprint_of(&alert.labels));
    Ok(Alert {
        name,
        status,
        severity: normalize::severity(alert.labels.get("severity").map(String::as_str)),
        service,
        instance: label("instance"),
        namespace: label("namespace"),
        value: normalize::value(alert.annotations.get("value").map(String::as_str)),
        summary: annotation("summary"),
        description: annotation("description"),
        starts_at,
        ends_at,
        fingerprint,
        source: source.into(),
        labels: alert.labels,
        annotations: alert.annotations,
    })
}
