//! Medic's own generic JSON (docs/webhooks.md): fields checked one by one, unknown ones refused.

use super::*;

/// Medic's own alert JSON, as `docs/webhooks.md` documents it, once read.
pub(super) struct GenericAlert {
    name: String,
    status: Option<String>,
    severity: Option<String>,
    service: Option<String>,
    instance: Option<String>,
    namespace: Option<String>,
    value: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    ends_at: Option<String>,
    fingerprint: Option<String>,
}

/// The fields of a generic alert. Unknown fields are refused so that a typo such as
/// `sevrity` is an error rather than a silently missing field.
pub(super) const GENERIC_FIELDS: [&str; 14] = [
    "name",
    "status",
    "severity",
    "service",
    "instance",
    "namespace",
    "value",
    "summary",
    "description",
    "labels",
    "annotations",
    "starts_at",
    "ends_at",
    "fingerprint",
];

/// Reads one generic alert field by field, so that a refusal names the field (serde's derive
/// says only "invalid type: integer `5`, expected a string", and a `serde_json::Value` has no
/// position to add). Null is absent for the optional fields.
pub(super) fn generic_alert(alert: &serde_json::Value) -> Result<GenericAlert, String> {
    let serde_json::Value::Object(object) = alert else {
        return Err(format!(
            "expected an alert object, not {}",
            json_kind(alert)
        ));
    };
    if let Some(key) = object
        .keys()
        .find(|key| !GENERIC_FIELDS.contains(&key.as_str()))
    {
        return Err(format!(
            "unknown field `{key}`, expected one of `{}`",
            GENERIC_FIELDS.join("`, `")
        ));
    }
    let text = |key: &str| match object.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!("`{key}` must be text, not {}", json_kind(other))),
    };
    let required = |key: &str| text(key)?.ok_or_else(|| format!("missing field `{key}`"));
    let strings = |key: &str| match object.get(key) {
        None => Ok(BTreeMap::new()),
        Some(serde_json::Value::Object(entries)) => entries
            .iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => Ok((name.clone(), text.clone())),
                other => Err(format!(
                    "`{key}`: `{name}` must be text, not {}",
                    json_kind(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "`{key}` must be an object of text, not {}",
            json_kind(other)
        )),
    };
    // A `value` written as text with its unit (`"750ms"`) or as a bare number (`12`).
    let value = match object.get("value") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text.clone()),
        Some(serde_json::Value::Number(number)) => Some(number.to_string()),
        Some(other) => {
            return Err(format!(
                "`value` must be text or a number, not {}",
                json_kind(other)
            ));
        }
    };
    Ok(GenericAlert {
        name: required("name")?,
        starts_at: required("starts_at")?,
        status: text("status")?,
        severity: text("severity")?,
        service: text("service")?,
        instance: text("instance")?,
        namespace: text("namespace")?,
        value,
        summary: text("summary")?,
        description: text("description")?,
        labels: strings("labels")?,
        annotations: strings("annotations")?,
        ends_at: text("ends_at")?,
        fingerprint: text("fingerprint")?,
    })
}

/// Reads Medic's generic webhook: one alert object, or `{"alerts": [...]}`.
pub fn generic(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let alerts = match parse_json(body, "generic")? {
        serde_json::Value::Object(mut object) => match object.remove("alerts") {
            None => vec![serde_json::Value::Object(object)],
            Some(serde_json::Value::Array(alerts)) => {
                if let Some(key) = object.keys().next() {
                    return Err(malformed(
                        "generic",
                        format!("unknown field `{key}` next to `alerts`"),
                    ));
                }
                alerts
            }
            Some(other) => {
                return Err(malformed(
                    "generic",
                    format!("`alerts` must be a list, not {}", json_kind(&other)),
                ));
            }
        },
        other => {
            return Err(malformed(
                "generic",
                format!(
                    "expected an alert object or {{\"alerts\": [...]}}, not {}",
                    json_kind(&other)
                ),
            ));
        }
    };
    alerts
        .iter()
        .enumerate()
        .map(|(index, alert)| {
            generic_alert(alert)
                .and_then(normalize_generic)
                .map_err(|reason| IngestError::BadAlert { index, reason })
        })
        .collect()
}

pub(super) fn normalize_generic(alert: GenericAlert) -> Result<Alert, String> {
    if alert.name.trim().is_empty() {
        return Err("`name` is empty".into());
    }
    let status = match alert.status.as_deref() {
        None | Some("firing") => Status::Firing,
        Some("resolved") => Status::Resolved,
        Some(other) => {
            return Err(format!(
                "`status` must be \"firing\" or \"resolved\", not {other:?}"
            ));
        }
    };
    let starts_at = time(&alert.starts_at).map_err(|reason| format!("`starts_at`: {reason}"))?;
    let ends_at = alert
        .ends_at
        .as_deref()
        .map(time)
        .transpose()
        .map_err(|reason| format!("`ends_at`: {reason}"))?;
    // The fields are written into the labels and annotations, where they win over entries
    // of the same name, so that the fingerprint covers them.
    let mut labels = alert.labels;
    labels.insert("alertname".into(), alert.name.clone());
    for (key, field) in [
        ("service", &alert.service),
        ("instance", &alert.instance),
        ("namespace", &alert.namespace),
    ] {
        if let Some(field) = field.as_ref().filter(|field| !field.is_empty()) {
            labels.insert(key.to_string(), field.clone());
        }
    }
    let mut annotations = alert.annotations;
    for (key, field) in [
        ("summary", &alert.summary),
        ("description", &alert.description),
        ("value", &alert.value),
    ] {
        if let Some(field) = field {
            annotations.insert(key.to_string(), field.clone());
        }
    }
    let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
    let annotation = |key: &str| annotations.get(key).cloned().unwrap_or_default();
    let service = labels
        .get("service")
        .or_else(|| labels.get("job"))
        .cloned()
        .unwrap_or_default();
    let severity = normalize::severity(
        alert
            .severity
            .as_deref()
            .or_else(|| labels.get("severity").map(String::as_str)),
    );
    let fingerprint = alert
        .fingerprint
        .filter(|fingerprint| !fingerprint.is_empty())
        .unwrap_or_else(|| fingerprint_of(&labels));
    Ok(Alert {
        name: alert.name,
        status,
        severity,
        service,
        instance: label("instance"),
        namespace: label("namespace"),
        value: normalize::value(annotations.get("value").map(String::as_str)),
        summary: annotation("summary"),
        description: annotation("description"),
        starts_at,
        ends_at,
        fingerprint,
        source: "generic".into(),
        labels,
        annotations,
    })
}
