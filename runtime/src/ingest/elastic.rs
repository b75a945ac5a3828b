//! Elastic alerting: Kibana's Webhook connector and Elasticsearch Watcher's webhook action
//! send whatever body their template says, so Medic ships the template (docs/webhooks.md,
//! *Elastic / Kibana*) and reads exactly its shape, version `"medic": "1"`:
//!
//! ```json
//! { "medic": "1", "source": "kibana",
//!   "rule": { "id": "{{rule.id}}", "name": "{{rule.name}}", "tags": "{{rule.tags}}", "url": "{{rule.url}}" },
//!   "alerts": [{ "id": "{{alert.id}}", "uuid": "{{alert.uuid}}", "action_group": "{{alert.actionGroup}}",
//!                "reason": "{{context.reason}}", "value": "{{context.value}}" }],
//!   "date": "{{date}}" }
//! ```
//!
//! An unknown field is refused (a misspelt template is an error, not a silently missing
//! field). The `recovered` action group is resolved, any other firing.

use super::*;

const TOP_FIELDS: [&str; 9] = [
    "medic",
    "source",
    "rule",
    "alerts",
    "date",
    "kibana_url",
    "severity",
    "service",
    "labels",
];
const RULE_FIELDS: [&str; 5] = ["id", "name", "tags", "url", "space"];
const ALERT_FIELDS: [&str; 11] = [
    "id",
    "uuid",
    "action_group",
    "action_group_name",
    "flapping",
    "reason",
    "value",
    "message",
    "service",
    "instance",
    "labels",
];

/// Whether `payload` is Medic's Elastic template (for `medic run`'s source detection).
pub fn is_elastic_template(payload: &serde_json::Value) -> bool {
    payload.get("medic").is_some() && payload.get("rule").is_some()
}

fn only_fields(
    object: &serde_json::Map<String, serde_json::Value>,
    fields: &[&str],
    at: &str,
) -> Result<(), String> {
    match object.keys().find(|key| !fields.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "unknown field `{at}{key}`, expected one of `{}` (docs/webhooks.md has the template)",
            fields.join("`, `")
        )),
        None => Ok(()),
    }
}

fn object<'a>(
    value: Option<&'a serde_json::Value>,
    at: &str,
) -> Result<Option<&'a serde_json::Map<String, serde_json::Value>>, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(object)) => Ok(Some(object)),
        Some(other) => Err(format!("`{at}` is {}, not an object", json_kind(other))),
    }
}

/// Text labels of a `labels` object.
fn labels_of(
    object: Option<&serde_json::Map<String, serde_json::Value>>,
    at: &str,
    into: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in object.into_iter().flatten() {
        let text = scalar_text(value)
            .ok_or_else(|| format!("`{at}.{key}` is {}, not text", json_kind(value)))?;
        into.insert(key.clone(), text);
    }
    Ok(())
}

/// Reads a payload of Medic's Elastic template: one alert per entry of `alerts`.
pub fn elastic(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let payload = parse_json(body, "elastic")?;
    let bad = |reason: String| malformed("elastic", reason);
    let top = payload.as_object().ok_or_else(|| {
        bad(format!(
            "the body is {}, not an object",
            json_kind(&payload)
        ))
    })?;
    only_fields(top, &TOP_FIELDS, "").map_err(bad)?;
    match top.get("medic").and_then(scalar_text).as_deref() {
        Some("1") => {}
        Some(other) => {
            return Err(bad(format!(
                "`medic` is {other:?}: this Medic reads template version \"1\""
            )));
        }
        None => {
            return Err(bad(
                "no `medic` version: send the template of docs/webhooks.md (\"medic\": \"1\")"
                    .into(),
            ));
        }
    }
    let source = match text_field(top, "source").map_err(bad)? {
        None | Some("kibana") => "kibana",
        Some("watcher") => "watcher",
        Some(other) => {
            return Err(bad(format!(
                "`source` is {other:?}: expected kibana or watcher"
            )));
        }
    };
    let rule = object(top.get("rule"), "rule")
        .map_err(bad)?
        .ok_or_else(|| bad("no `rule` object".into()))?;
    only_fields(rule, &RULE_FIELDS, "rule.").map_err(bad)?;
    let rule_text = |field: &str| text_field(rule, field).map(|text| text.unwrap_or_default());
    let rule_id = rule_text("id").map_err(bad)?;
    let rule_name = rule_text("name").map_err(bad)?;
    if rule_name.is_empty() {
        return Err(bad("`rule.name` is missing".into()));
    }
    if rule_id.is_empty() {
        return Err(bad("`rule.id` is missing".into()));
    }
    let date = text_field(top, "date")
        .map_err(bad)?
        .ok_or_else(|| bad("`date` is missing".into()))?;
    let sent_at = time(date).map_err(|reason| bad(format!("`date` {date:?}: {reason}")))?;
    let severity_text = text_field(top, "severity").map_err(bad)?;
    let severity = normalize::severity(severity_text);
    let mut common = BTreeMap::from([
        ("alertname".to_string(), rule_name.to_string()),
        ("severity".to_string(), severity.as_str().to_string()),
        ("rule_id".to_string(), rule_id.to_string()),
    ]);
    let tags = match rule.get("tags") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(serde_json::Value::as_str)
            .map(str::to_string)
            .collect::<Vec<_>>(),
        Some(serde_json::Value::String(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(str::to_string)
            .collect(),
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(other) => {
            return Err(bad(format!(
                "`rule.tags` is {}, not text or a list",
                json_kind(other)
            )));
        }
    };
    if !tags.is_empty() {
        common.insert("tags".into(), tags.join(","));
    }
    labels_of(
        object(top.get("labels"), "labels").map_err(bad)?,
        "labels",
        &mut common,
    )
    .map_err(bad)?;
    let mut common_annotations = BTreeMap::new();
    for (key, value) in [
        ("rule_url", rule_text("url").map_err(bad)?),
        (
            "kibana_url",
            text_field(top, "kibana_url")
                .map_err(bad)?
                .unwrap_or_default(),
        ),
    ] {
        if !value.is_empty() {
            common_annotations.insert(key.to_string(), value.to_string());
        }
    }
    let service = text_field(top, "service").map_err(bad)?;
    let alerts = match top.get("alerts") {
        Some(serde_json::Value::Array(alerts)) if !alerts.is_empty() => alerts,
        Some(serde_json::Value::Array(_)) => return Err(bad("`alerts` is empty".into())),
        Some(other) => {
            return Err(bad(format!("`alerts` is {}, not a list", json_kind(other))));
        }
        None => return Err(bad("no `alerts` list".into())),
    };
    alerts
        .iter()
        .enumerate()
        .map(|(index, alert)| {
            let at = format!("alerts[{index}]");
            let entry = object(Some(alert), &at)
                .and_then(|entry| entry.ok_or_else(|| format!("`{at}` is null")))
                .map_err(|reason| IngestError::BadAlert { index, reason })?;
            one_alert(
                entry,
                source,
                rule_id,
                rule_name,
                sent_at,
                severity,
                service,
                &common,
                &common_annotations,
            )
            .map_err(|reason| IngestError::BadAlert { index, reason })
        })
        .collect()
}

/// Kibana's notifications carry no start: a repeat joins its alert's open episode when it
/// has the same `alert.uuid` (Kibana's id of one active period), and a recovery ends it.
/// (Watcher has no recovery: each of its notifications is an episode of its own, so it
/// does not join.)
pub(super) fn episode_join(_alert: &Alert) -> Join {
    Join::SameLabel("kibana_alert_uuid")
}

#[allow(
    clippy::too_many_arguments,
    reason = "the parts of the payload one alert reads"
)]
fn one_alert(
    entry: &serde_json::Map<String, serde_json::Value>,
    source: &str,
    rule_id: &str,
    rule_name: &str,
    sent_at: i64,
    severity: Severity,
    service: Option<&str>,
    common: &BTreeMap<String, String>,
    common_annotations: &BTreeMap<String, String>,
) -> Result<Alert, String> {
    only_fields(entry, &ALERT_FIELDS, "alerts[].")?;
    let field = |name: &str| -> Result<&str, String> {
        Ok(match entry.get(name) {
            Some(serde_json::Value::Bool(flag)) => {
                if *flag {
                    "true"
                } else {
                    "false"
                }
            }
            _ => text_field(entry, name)?.unwrap_or_default(),
        })
    };
    let alert_id = field("id")?;
    if alert_id.is_empty() {
        return Err(
            "`id` is missing (`{{alert.id}}` in Kibana, `{{ctx.watch_id}}` in Watcher)".into(),
        );
    }
    let action_group = field("action_group")?;
    let status = if action_group == "recovered" {
        Status::Resolved
    } else {
        Status::Firing
    };
    let mut labels = common.clone();
    labels.insert("alert_id".into(), alert_id.to_string());
    for (name, label) in [
        ("action_group", "action_group"),
        ("uuid", "kibana_alert_uuid"),
        ("flapping", "flapping"),
    ] {
        let value = field(name)?;
        if !value.is_empty() {
            labels.insert(label.into(), value.to_string());
        }
    }
    labels_of(
        object(entry.get("labels"), "labels")?,
        "labels",
        &mut labels,
    )?;
    let mut annotations = common_annotations.clone();
    let reason = field("reason")?;
    let message = field("message")?;
    for (key, value) in [
        ("reason", reason),
        ("message", message),
        ("action_group_name", field("action_group_name")?),
    ] {
        if !value.is_empty() {
            annotations.insert(key.into(), value.to_string());
        }
    }
    let value_text = match entry.get("value") {
        Some(serde_json::Value::Number(number)) => Some(number.to_string()),
        _ => Some(field("value")?.to_string()).filter(|text| !text.is_empty()),
    };
    if let Some(text) = &value_text {
        annotations.insert("value".into(), text.clone());
    }
    let service = Some(field("service")?)
        .filter(|text| !text.is_empty())
        .or(service)
        .map(str::to_string)
        .or_else(|| labels.get("service").cloned())
        .unwrap_or_default();
    let instance = Some(field("instance")?)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
        .or_else(|| labels.get("instance").cloned())
        .unwrap_or_default();
    let summary = [reason, message]
        .into_iter()
        .find(|text| !text.is_empty())
        .unwrap_or(rule_name)
        .to_string();
    Ok(Alert {
        name: rule_name.to_string(),
        status,
        severity,
        service,
        instance,
        namespace: labels.get("namespace").cloned().unwrap_or_default(),
        value: normalize::value(value_text.as_deref()),
        summary,
        description: message.to_string(),
        labels,
        annotations,
        starts_at: sent_at,
        ends_at: (status == Status::Resolved).then_some(sent_at),
        fingerprint: format!("{rule_id}/{alert_id}"),
        source: source.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    /// The template of docs/webhooks.md as Kibana renders it for a metric threshold rule.
    pub(crate) const KIBANA: &str = r#"{
      "medic": "1",
      "source": "kibana",
      "rule": {"id": "0f3e8c60-aaaa-bbbb-cccc-1234567890ab", "name": "order-service-errors",
               "tags": "team:orders,prod", "url": "https://kibana.example/app/rules/0f3e8c60", "space": "default"},
      "alerts": [{"id": "order-service", "uuid": "7d1c2b3a-0000-4000-8000-000000000001",
                  "action_group": "metrics.threshold.fired", "action_group_name": "Alert",
                  "flapping": false,
                  "reason": "error.rate is 12.5% in the last 5 mins for order-service. Alert when > 5%.",
                  "value": "12.5%", "message": "", "service": "order-service"}],
      "date": "2026-12-01T10:00:00.000Z",
      "kibana_url": "https://kibana.example",
      "severity": "critical"
    }"#;

    #[test]
    fn a_kibana_alert_reads_its_rule_group_value_and_identity() {
        let alerts = elastic(KIBANA.as_bytes()).unwrap();
        let alert = &alerts[0];
        assert_eq!(alert.name, "order-service-errors");
        assert_eq!(alert.status, Status::Firing);
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.service, "order-service");
        assert_eq!(alert.value, Ok(Quantity::Percent(12.5)));
        assert_eq!(alert.labels["tags"], "team:orders,prod");
        assert_eq!(alert.labels["flapping"], "false");
        assert_eq!(
            alert.labels["kibana_alert_uuid"],
            "7d1c2b3a-0000-4000-8000-000000000001"
        );
        assert_eq!(
            alert.fingerprint,
            "0f3e8c60-aaaa-bbbb-cccc-1234567890ab/order-service"
        );
        assert!(alert.summary.starts_with("error.rate is 12.5%"));
        assert_eq!(alert.source, "kibana");
    }

    #[test]
    fn recovered_is_resolved_and_the_same_alert() {
        let recovered = KIBANA.replace("metrics.threshold.fired", "recovered");
        let fired = &elastic(KIBANA.as_bytes()).unwrap()[0];
        let ended = &elastic(recovered.as_bytes()).unwrap()[0];
        assert_eq!(ended.status, Status::Resolved);
        assert_eq!(ended.fingerprint, fired.fingerprint);
    }

    #[test]
    fn a_watcher_payload_reads_the_same_shape() {
        let watcher = r#"{"medic": "1", "source": "watcher",
          "rule": {"id": "order-errors-watch", "name": "order-errors-watch"},
          "alerts": [{"id": "order-errors-watch", "action_group": "fired", "value": 42,
                      "reason": "42 errors in 5m"}],
          "date": "2026-12-01T10:00:00.000Z"}"#;
        let alert = &elastic(watcher.as_bytes()).unwrap()[0];
        assert_eq!(alert.source, "watcher");
        assert_eq!(alert.value, Ok(Quantity::Number(42.0)));
        assert_eq!(alert.severity, Severity::Warning);
    }

    #[test]
    fn a_template_that_differs_says_what_is_wrong() {
        for (payload, says) in [
            (
                KIBANA.replace("\"kibana_url\"", "\"kibanaUrl\""),
                "unknown field `kibanaUrl`",
            ),
            (
                KIBANA.replace("\"uuid\"", "\"uid\""),
                "unknown field `alerts[].uid`",
            ),
            (
                KIBANA.replace("\"medic\": \"1\"", "\"medic\": \"2\""),
                "template version",
            ),
            (
                KIBANA.replace("\"name\": \"order-service-errors\",", ""),
                "`rule.name` is missing",
            ),
            (
                KIBANA.replace("2026-12-01T10:00:00.000Z", "{{date}}"),
                "`date`",
            ),
            (
                KIBANA.replace("\"id\": \"order-service\",", ""),
                "`id` is missing",
            ),
            ("{}".to_string(), "no `medic` version"),
        ] {
            let error = elastic(payload.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(says), "{says}: {error}");
        }
    }
}
