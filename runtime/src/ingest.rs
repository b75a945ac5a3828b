//! Reading alert payloads into normalized alerts, and normalized alerts into the `alert`
//! record that rules see.
//!
//! Four sources are read into the same [`Alert`]: Alertmanager's webhook (version 4, the
//! reference source), Grafana's unified-alerting webhook contact point, a Zabbix webhook media
//! type whose JSON body Medic documents, and Medic's own generic JSON (the fields of the last
//! two are listed in `docs/webhooks.md`). Every alert of a payload is read, firing and resolved
//! alike. A malformed payload is an [`IngestError`] that names the problem (the server answers
//! it with a 4xx); nothing here panics on any input.

use crate::normalize::{self, Severity, ValueError};
use medic_compiler::plan::Value;
use medic_compiler::plan::ir::QuantityValue;
use medic_compiler::units::Quantity;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Whether an alert is firing or resolved: distinct, typed states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert, normalized from whatever source sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: String,
    pub status: Status,
    pub severity: Severity,
    pub service: String,
    pub instance: String,
    pub namespace: String,
    /// The `value` annotation with its unit, or why it could not be read.
    pub value: Result<Quantity, ValueError>,
    pub summary: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub fingerprint: String,
    pub source: String,
}

impl Alert {
    /// The identity of one firing episode: at most one run per rule for it.
    pub fn episode(&self) -> (String, i64) {
        (self.fingerprint.clone(), self.starts_at)
    }

    /// The `std.alert.Alert` record as the plan evaluator sees it. A missing or unreadable
    /// value is absent, so a rule comparing it does not match (and says why).
    pub fn to_value(&self) -> Value {
        let strings = |map: &BTreeMap<String, String>| {
            Value::record(
                map.iter()
                    .map(|(key, value)| (key.clone(), Value::String(value.clone()))),
            )
        };
        let severity_index = match self.severity {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
        };
        Value::record([
            ("name".to_string(), Value::String(self.name.clone())),
            (
                "status".to_string(),
                Value::Enum {
                    name: self.status.as_str().into(),
                    index: u32::from(self.status == Status::Resolved),
                },
            ),
            (
                "severity".to_string(),
                Value::Enum {
                    name: self.severity.as_str().into(),
                    index: severity_index,
                },
            ),
            ("service".to_string(), Value::String(self.service.clone())),
            ("instance".to_string(), Value::String(self.instance.clone())),
            (
                "namespace".to_string(),
                Value::String(self.namespace.clone()),
            ),
            (
                "value".to_string(),
                match &self.value {
                    Ok(quantity) => Value::Quantity(QuantityValue::from(*quantity)),
                    Err(_) => Value::Null,
                },
            ),
            ("summary".to_string(), Value::String(self.summary.clone())),
            (
                "description".to_string(),
                Value::String(self.description.clone()),
            ),
            ("labels".to_string(), strings(&self.labels)),
            ("annotations".to_string(), strings(&self.annotations)),
            ("starts_at".to_string(), Value::Time(self.starts_at)),
            (
                "ends_at".to_string(),
                self.ends_at.map_or(Value::Null, Value::Time),
            ),
            (
                "fingerprint".to_string(),
                Value::String(self.fingerprint.clone()),
            ),
            ("source".to_string(), Value::String(self.source.clone())),
        ])
    }
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("payload is not valid JSON for {source_name}: {reason}")]
    Malformed {
        source_name: &'static str,
        reason: String,
    },
    #[error("unsupported {source_name} payload version {version:?} (expected \"4\")")]
    UnsupportedVersion {
        source_name: &'static str,
        version: String,
    },
    #[error("alert {index}: {reason}")]
    BadAlert { index: usize, reason: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookV4 {
    #[serde(default)]
    version: Option<String>,
    alerts: Vec<WebhookAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: String,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// Reads an Alertmanager webhook payload (version 4): every alert of the group.
pub fn alertmanager(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let payload: WebhookV4 =
        serde_json::from_slice(body).map_err(|error| IngestError::Malformed {
            source_name: "alertmanager",
            reason: error.to_string(),
        })?;
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
        .map(|(index, alert)| normalize_labelled(index, alert, "alertmanager"))
        .collect()
}

/// Normalizes an alert of the Alertmanager shape (labels, annotations, `startsAt`), which
/// Grafana's webhook shares.
fn normalize_labelled(
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

fn time(text: &str) -> Result<i64, String> {
    medic_compiler::units::parse_time(text)
}

/// A stable fingerprint of a label set, for sources that send none: FNV-1a over the sorted
/// `name=value` pairs, as 16 hex digits.
pub fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (key, value) in labels {
        for byte in key.bytes().chain([b'=']).chain(value.bytes()).chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests"
)]
mod tests {
    use super::*;

    /// A payload captured from a real Alertmanager (see shared/REAL-SERVERS.md).
    const CAPTURED: &str = r#"{"receiver":"medic","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Service_Latency_Exceeded","instance":"10.0.0.1:8080","service":"payment-gateway","severity":"critical"},"annotations":{"summary":"p99 latency high","value":"750ms"},"startsAt":"2026-11-27T12:08:39.298352721Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"63249a583b704b09"}],"groupLabels":{},"commonLabels":{"alertname":"Service_Latency_Exceeded","instance":"10.0.0.1:8080","service":"payment-gateway","severity":"critical"},"commonAnnotations":{"summary":"p99 latency high","value":"750ms"},"externalURL":"http://vm:19093","version":"4","groupKey":"{}:{}","truncatedAlerts":0}"#;

    #[test]
    fn a_captured_payload_normalizes() {
        let alerts = alertmanager(CAPTURED.as_bytes()).unwrap_or_default();
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.name, "Service_Latency_Exceeded");
        assert_eq!(alert.status, Status::Firing);
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.service, "payment-gateway");
        assert_eq!(alert.value, Ok(Quantity::Duration(750)));
        assert_eq!(alert.ends_at, None);
        assert_eq!(alert.fingerprint, "63249a583b704b09");
        assert_eq!(alert.starts_at, 1_795_781_319_298);
    }

    #[test]
    fn bad_payloads_name_the_problem() {
        let error = |body: &str| {
            alertmanager(body.as_bytes())
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        };
        assert!(error("not json").starts_with("payload is not valid JSON for alertmanager"));
        assert!(error(r#"{"version":"3","alerts":[]}"#).contains("version \"3\""));
        assert!(
            error(
                r#"{"alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-27T12:00:00Z"}]}"#
            )
            .contains("alert 0: has no `alertname` label")
        );
        assert!(error(r#"{"alerts":[{"status":"pending","labels":{"alertname":"A"},"startsAt":"2026-11-27T12:00:00Z"}]}"#)
            .contains("status must be"));
        assert!(error(r#"{"alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"yesterday"}]}"#)
            .contains("startsAt"));
    }

    #[test]
    fn a_captured_alert_matches_the_payment_example_and_only_while_firing() {
        let analysis = medic_compiler::check(vec![medic_compiler::Source::new(
            "payment_latency.ops",
            include_str!("../../examples/payment_latency.ops"),
        )]);
        let Ok(plan) = medic_compiler::plan::lower(&analysis) else {
            panic!("the example must compile");
        };
        let alerts = alertmanager(CAPTURED.as_bytes()).unwrap_or_default();
        let outcome = plan.match_alert(&alerts[0].to_value());
        assert_eq!(outcome.matched, [0]);
        let resolved = CAPTURED.replace(
            r#""status":"firing","labels""#,
            r#""status":"resolved","labels""#,
        );
        let alerts = alertmanager(resolved.as_bytes()).unwrap_or_default();
        assert!(
            plan.match_alert(&alerts[0].to_value()).matched.is_empty(),
            "a resolved alert never starts the firing rule"
        );
        let percent = CAPTURED.replace(r#""value":"750ms"}"#, r#""value":"75%"}"#);
        let alerts = alertmanager(percent.as_bytes()).unwrap_or_default();
        let outcome = plan.match_alert(&alerts[0].to_value());
        assert!(outcome.matched.is_empty());
        assert_eq!(
            outcome.errors.len(),
            1,
            "the unit mismatch is reported, not silently ignored"
        );
    }

    #[test]
    fn resolved_alerts_and_missing_fingerprints() {
        let body = r#"{"alerts":[{"status":"resolved","labels":{"alertname":"A","job":"api"},"annotations":{"value":"92%"},"startsAt":"2026-11-27T12:00:00Z","endsAt":"2026-11-27T12:05:00Z"}]}"#;
        let alerts = alertmanager(body.as_bytes()).unwrap_or_default();
        assert_eq!(alerts[0].status, Status::Resolved);
        assert_eq!(
            alerts[0].service, "api",
            "job stands in for a missing service label"
        );
        assert_eq!(alerts[0].ends_at, Some(1_795_781_100_000));
        assert_eq!(alerts[0].fingerprint, fingerprint_of(&alerts[0].labels));
        assert_eq!(alerts[0].fingerprint.len(), 16);
    }
}
