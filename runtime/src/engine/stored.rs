//! The journaled form of a normalized alert, so that an alert accepted before a crash is
//! processed afterwards exactly as it would have been.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Form {
    name: String,
    status: String,
    severity: String,
    service: String,
    instance: String,
    namespace: String,
    value: Option<plan::ir::QuantityValue>,
    value_error: Option<String>,
    summary: String,
    description: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: i64,
    ends_at: Option<i64>,
    fingerprint: String,
    source: String,
}

/// The journal row of an alert: its identity and this journaled form; `processed` when
/// there is nothing to match it for.
pub fn accepted(alert: &Alert, processed: bool) -> AcceptedAlert {
    AcceptedAlert {
        processed,
        source: alert.source.clone(),
        name: alert.name.clone(),
        status: alert.status.as_str().into(),
        fingerprint: alert.fingerprint.clone(),
        starts_at: alert.starts_at,
        payload: to_json(alert),
    }
}

pub fn to_json(alert: &Alert) -> String {
    let form = Form {
        name: alert.name.clone(),
        status: alert.status.as_str().into(),
        severity: alert.severity.as_str().into(),
        service: alert.service.clone(),
        instance: alert.instance.clone(),
        namespace: alert.namespace.clone(),
        value: alert.value.as_ref().ok().map(|quantity| (*quantity).into()),
        value_error: alert.value.as_ref().err().map(ToString::to_string),
        summary: alert.summary.clone(),
        description: alert.description.clone(),
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        starts_at: alert.starts_at,
        ends_at: alert.ends_at,
        fingerprint: alert.fingerprint.clone(),
        source: alert.source.clone(),
    };
    serde_json::to_string(&form).unwrap_or_default()
}

pub fn from_json(text: &str) -> Result<Alert, String> {
    let form: Form = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let value = match (form.value, form.value_error) {
        (Some(value), _) => Ok(match value {
            plan::ir::QuantityValue::Number(number) => Quantity::Number(number),
            plan::ir::QuantityValue::Duration(millis) => Quantity::Duration(millis),
            plan::ir::QuantityValue::Percent(points) => Quantity::Percent(points),
            plan::ir::QuantityValue::Size(bytes) => Quantity::Size(bytes),
        }),
        (None, Some(error)) if error != normalize::ValueError::Missing.to_string() => {
            let reason = error.strip_prefix("alert value ").unwrap_or(&error);
            Err(normalize::ValueError::Unreadable(reason.to_string()))
        }
        (None, _) => Err(normalize::ValueError::Missing),
    };
    // Written by `to_json` from the typed values, so anything else is damage: refused, not
    // read as `firing` or `warning`.
    let status = match form.status.as_str() {
        "firing" => Status::Firing,
        "resolved" => Status::Resolved,
        other => return Err(format!("unknown alert status {other:?}")),
    };
    let severity = match form.severity.as_str() {
        "critical" => normalize::Severity::Critical,
        "warning" => normalize::Severity::Warning,
        "info" => normalize::Severity::Info,
        other => return Err(format!("unknown alert severity {other:?}")),
    };
    Ok(Alert {
        name: form.name,
        status,
        severity,
        service: form.service,
        instance: form.instance,
        namespace: form.namespace,
        value,
        summary: form.summary,
        description: form.description,
        labels: form.labels,
        annotations: form.annotations,
        starts_at: form.starts_at,
        ends_at: form.ends_at,
        fingerprint: form.fingerprint,
        source: form.source,
    })
}
