//! Reading alert payloads into normalized alerts, and normalized alerts into the `alert`
//! record that rules see.
//!
//! Seven sources are read into the same [`Alert`]: Alertmanager's webhook (version 4, the
//! reference source), Grafana's unified-alerting webhook contact point, a Zabbix webhook media
//! type whose JSON body Medic documents, Azure Monitor's common alert schema, CloudWatch
//! alarms delivered by Amazon SNS, Kibana's and Watcher's webhooks in the template Medic
//! ships, and Medic's own generic JSON (the mappings are in `docs/webhooks.md`). Every alert of a payload is read, firing and resolved
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
    #[error("not a valid {source_name} payload: {reason}")]
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

/// `T` read from a JSON object and from nothing else. serde's derive also reads a struct
/// from a list of its fields' values in declaration order (`["4", [["firing", ...]]]` as an
/// Alertmanager payload), which no sender means and `docs/webhooks.md` does not promise; a
/// list where an object belongs is refused like any other wrong type.
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(JsonObject)
    }
}

mod alertmanager;
mod azure;
mod cloudwatch;
mod elastic;
mod generic;
mod grafana;
mod zabbix;

pub use alertmanager::alertmanager;
pub use azure::azure;
pub use cloudwatch::{
    SnsEnvelope, SnsType, cloudwatch, cloudwatch_alarm, is_sns_envelope, sns_envelope,
};
pub use elastic::{elastic, is_elastic_template};
pub use generic::generic;
pub use grafana::grafana;
pub use zabbix::zabbix;

pub(super) fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A text field of `object` (absent or null: `None`), or what is wrong with it.
pub(super) fn text_field<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<Option<&'a str>, String> {
    match object.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(format!("`{field}` is {}, not text", json_kind(other))),
    }
}

pub(super) fn parse_json(
    body: &[u8],
    source_name: &'static str,
) -> Result<serde_json::Value, IngestError> {
    serde_json::from_slice(body).map_err(|error| malformed(source_name, json_reason(&error)))
}

/// A serde error as a reason: text that is not JSON at all says so; JSON of the wrong
/// shape says what was wrong (serde names the field, the line and the column either way).
pub(super) fn json_reason(error: &serde_json::Error) -> String {
    if error.is_syntax() || error.is_eof() {
        format!("not valid JSON: {error}")
    } else {
        error.to_string()
    }
}

pub(super) fn malformed(source_name: &'static str, reason: String) -> IngestError {
    IngestError::Malformed {
        source_name,
        reason,
    }
}

/// What a JSON value is, for messages.
pub(super) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "text",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

pub(super) fn time(text: &str) -> Result<i64, String> {
    medic_compiler::units::parse_time(text)
}

/// FNV-1a of `bytes`: a stable hash (the same in every build and process).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A stable fingerprint of a label set, for sources that send none: FNV-1a over the sorted
/// `name=value` pairs, as 16 hex digits.
pub fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    let hash = fnv1a(
        labels
            .iter()
            .flat_map(|(key, value)| key.bytes().chain([b'=']).chain(value.bytes()).chain([0xff])),
    );
    format!("{hash:016x}")
}

/// Whether an alert takes the start of its fingerprint's open episode from the journal,
/// for sources whose messages do not say when their episode began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Keeps its own start (but takes its turn with the alerts that join: an ALARM that an
    /// OK right behind it must see).
    No,
    /// Whatever the open episode is.
    Open,
    /// Only when the open episode's newest alert has this label with this alert's value
    /// (and unconditionally when this alert has no such label).
    SameLabel(&'static str),
}

/// How `alert` joins episodes: `None` for the sources whose messages carry their episode's
/// start (every source but CloudWatch and Kibana).
pub fn episode_join(alert: &Alert) -> Option<Join> {
    match alert.source.as_str() {
        "cloudwatch" => Some(cloudwatch::episode_join(alert)),
        "kibana" => Some(elastic::episode_join(alert)),
        _ => None,
    }
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
    #[allow(unused_imports, reason = "each test reads what it needs")]
    use super::{alertmanager::*, generic::*, grafana::*, zabbix::*};

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
        assert!(error("not json").starts_with("not a valid alertmanager payload: not valid JSON"));
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
            include_str!("../../../examples/payment_latency.ops"),
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

    /// A Grafana unified-alerting notification as its webhook contact point sends it: one
    /// alert with a single evaluated value and no `value` annotation, one resolved alert with
    /// a `value` annotation and several evaluated values.
    const GRAFANA: &str = r#"{"receiver":"medic","status":"firing","orgId":1,"alerts":[{"status":"firing","labels":{"alertname":"HighCPU","grafana_folder":"Infra","instance":"web-1:9100","job":"node","severity":"critical"},"annotations":{"summary":"CPU above 90%"},"startsAt":"2026-11-27T12:08:39Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://grafana:3000/alerting/grafana/cpu/view?orgId=1","fingerprint":"a4e1c3d2b5f60718","silenceURL":"http://grafana:3000/alerting/silence/new","dashboardURL":"","panelURL":"","values":{"B":92.5},"valueString":"[ var='B' labels={instance=web-1:9100} value=92.5 ]"},{"status":"resolved","labels":{"alertname":"SlowCheckout","service":"checkout"},"annotations":{"value":"750ms"},"startsAt":"2026-11-27T12:00:00Z","endsAt":"2026-11-27T12:20:00Z","generatorURL":"","fingerprint":"0b1c2d3e4f5a6b7c","silenceURL":"","dashboardURL":"","panelURL":"","values":{"A":0.75,"C":1},"valueString":""}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://grafana:3000/","version":"1","groupKey":"{}:{}","truncatedAlerts":0,"title":"[FIRING:1] HighCPU","state":"alerting","message":"Firing"}"#;

    #[test]
    fn a_grafana_payload_normalizes() {
        let alerts = grafana(GRAFANA.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 2);
        let cpu = &alerts[0];
        assert_eq!(cpu.name, "HighCPU");
        assert_eq!(cpu.status, Status::Firing);
        assert_eq!(cpu.severity, Severity::Critical);
        assert_eq!(
            cpu.service, "node",
            "job stands in for a missing service label"
        );
        assert_eq!(cpu.instance, "web-1:9100");
        assert_eq!(
            cpu.value,
            Ok(Quantity::Number(92.5)),
            "the only evaluated value, without a unit"
        );
        assert_eq!(cpu.summary, "CPU above 90%");
        assert_eq!(cpu.fingerprint, "a4e1c3d2b5f60718");
        assert_eq!(cpu.starts_at, 1_795_781_319_000);
        assert_eq!(cpu.ends_at, None);
        assert_eq!(cpu.source, "grafana");
        let checkout = &alerts[1];
        assert_eq!(checkout.status, Status::Resolved);
        assert_eq!(checkout.severity, Severity::Warning);
        assert_eq!(checkout.service, "checkout");
        assert_eq!(
            checkout.value,
            Ok(Quantity::Duration(750)),
            "the annotation wins, with its unit"
        );
        assert_eq!(checkout.fingerprint, "0b1c2d3e4f5a6b7c");
        assert_eq!(checkout.ends_at, Some(1_795_782_000_000));
    }

    #[test]
    fn grafana_values_give_a_value_only_when_there_is_one() {
        let several = GRAFANA.replace(r#""values":{"B":92.5}"#, r#""values":{"B":92.5,"C":1}"#);
        assert_eq!(
            grafana(several.as_bytes()).unwrap()[0].value,
            Err(ValueError::Missing)
        );
        let null = GRAFANA.replace(r#""values":{"B":92.5}"#, r#""values":null"#);
        assert_eq!(
            grafana(null.as_bytes()).unwrap()[0].value,
            Err(ValueError::Missing)
        );
        let text = GRAFANA.replace(r#""values":{"B":92.5}"#, r#""values":{"B":"high"}"#);
        assert!(matches!(
            grafana(text.as_bytes()).unwrap()[0].value,
            Err(ValueError::Unreadable(_))
        ));
    }

    #[test]
    fn bad_grafana_payloads_name_the_problem() {
        let error = |body: &str| {
            grafana(body.as_bytes())
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        };
        assert!(error("not json").starts_with("not a valid grafana payload: not valid JSON"));
        assert!(error(r#"{"version":"1","status":"firing"}"#).contains("no `alerts` array"));
        assert!(error(r#"{"alerts":null}"#).contains("no `alerts` array"));
        assert!(
            error(r#"{"alerts":[{"status":"pending","labels":{"alertname":"A"},"startsAt":"2026-11-27T12:00:00Z"}]}"#)
                .contains("alert 0: status must be")
        );
        assert!(
            error(
                r#"{"alerts":[{"status":"firing","labels":{},"startsAt":"2026-11-27T12:00:00Z"}]}"#
            )
            .contains("alert 0: has no `alertname` label")
        );
        assert!(
            error(
                r#"{"alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"soon"}]}"#
            )
            .contains("startsAt")
        );
        assert!(
            grafana(br#"{"version":"2","alerts":[]}"#).is_ok_and(|alerts| alerts.is_empty()),
            "any version is read"
        );
    }

    /// A problem event as the media type in docs/webhooks.md sends it: every value is text,
    /// the tags are {EVENT.TAGSJSON} as text, and the recovery macros are left unexpanded.
    const ZABBIX_PROBLEM: &str = r#"{"event_id":"4711","name":"High CPU utilization on web-1","status":"PROBLEM","event_value":"1","severity":"High","host":"web-1","value":"92 %","event_date":"2026.11.27","event_time":"12:08:39","recovery_date":"{EVENT.RECOVERY.DATE}","recovery_time":"{EVENT.RECOVERY.TIME}","tags":"[{\"tag\":\"service\",\"value\":\"checkout\"},{\"tag\":\"scope\",\"value\":\"performance\"}]","summary":"CPU above 90% for 5m"}"#;

    #[test]
    fn a_zabbix_problem_normalizes() {
        let alerts = zabbix(ZABBIX_PROBLEM.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.name, "High CPU utilization on web-1");
        assert_eq!(alert.status, Status::Firing);
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(
            alert.service, "checkout",
            "a service tag stands in for the field"
        );
        assert_eq!(alert.instance, "web-1");
        assert_eq!(alert.value, Ok(Quantity::Percent(92.0)));
        assert_eq!(alert.fingerprint, "zabbix-4711");
        assert_eq!(alert.starts_at, 1_795_781_319_000);
        assert_eq!(alert.ends_at, None, "unexpanded recovery macros are absent");
        assert_eq!(alert.summary, "CPU above 90% for 5m");
        assert_eq!(alert.source, "zabbix");
        assert_eq!(alert.labels["alertname"], alert.name);
        assert_eq!(alert.labels["severity"], "High");
        assert_eq!(alert.labels["host"], "web-1");
        assert_eq!(alert.labels["instance"], "web-1");
        assert_eq!(alert.labels["scope"], "performance");
        assert_eq!(alert.annotations["value"], "92 %");
    }

    #[test]
    fn a_zabbix_problem_and_its_recovery_share_a_fingerprint() {
        let recovery = ZABBIX_PROBLEM
            .replace(
                r#""status":"PROBLEM","event_value":"1""#,
                r#""status":"RESOLVED","event_value":"0""#,
            )
            .replace("{EVENT.RECOVERY.DATE}", "2026.11.27")
            .replace("{EVENT.RECOVERY.TIME}", "12:20:00");
        let problem = zabbix(ZABBIX_PROBLEM.as_bytes()).unwrap();
        let recovery = zabbix(recovery.as_bytes()).unwrap();
        assert_eq!(recovery[0].status, Status::Resolved);
        assert_eq!(recovery[0].ends_at, Some(1_795_782_000_000));
        assert_eq!(recovery[0].fingerprint, problem[0].fingerprint);
        assert_eq!(
            recovery[0].episode(),
            problem[0].episode(),
            "one episode: the same fingerprint and start"
        );
        // {EVENT.VALUE} alone, sent as a number, says the same.
        let by_value = ZABBIX_PROBLEM
            .replace(r#""status":"PROBLEM","#, "")
            .replace(r#""event_value":"1""#, r#""event_value":0"#);
        assert_eq!(
            zabbix(by_value.as_bytes()).unwrap()[0].status,
            Status::Resolved
        );
    }

    #[test]
    fn zabbix_batches_read_tag_objects_numbers_and_spaced_units() {
        let body = r#"{"events":[{"event_id":4712,"name":"Checkout latency","event_value":"1","severity":"Average","host":"api-2","service":"","namespace":"shop","value":"750 ms","starts_at":"2026-11-27T12:00:00Z","tags":{"team":"payments"}},{"event_id":"4713","fingerprint":"custom-1","name":"Disk slow","status":"ok","severity":"Information","host":"db-1","value":"1h 30m","event_date":"2026.11.27","event_time":"11:50:00","recovery_date":"2026.11.27","recovery_time":"12:10:00","tags":[{"tag":"team","value":"storage"},{"tag":"no-value"}]}]}"#;
        let alerts = zabbix(body.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].fingerprint, "zabbix-4712");
        assert_eq!(alerts[0].status, Status::Firing);
        assert_eq!(alerts[0].severity, Severity::Warning);
        assert_eq!(
            alerts[0].service, "api-2",
            "the host stands in for a missing service"
        );
        assert_eq!(alerts[0].namespace, "shop");
        assert_eq!(alerts[0].value, Ok(Quantity::Duration(750)));
        assert_eq!(alerts[0].starts_at, 1_795_780_800_000);
        assert_eq!(alerts[0].labels["team"], "payments");
        assert_eq!(alerts[1].fingerprint, "custom-1");
        assert_eq!(alerts[1].status, Status::Resolved);
        assert_eq!(alerts[1].severity, Severity::Info);
        assert_eq!(alerts[1].value, Ok(Quantity::Duration(5_400_000)));
        assert_eq!(alerts[1].starts_at, 1_795_780_200_000);
        assert_eq!(alerts[1].ends_at, Some(1_795_781_400_000));
        assert_eq!(alerts[1].labels["team"], "storage");
        assert_eq!(alerts[1].labels["no-value"], "");
    }

    #[test]
    fn zabbix_values_lose_the_space_before_their_unit() {
        assert_eq!(join_number_and_unit(" 92 % "), "92%");
        assert_eq!(join_number_and_unit("1.5 GB"), "1.5GB");
        assert_eq!(join_number_and_unit("1h 30m"), "1h30m");
        assert_eq!(join_number_and_unit("12 34"), "12 34");
        assert_eq!(join_number_and_unit("very slow"), "very slow");
    }

    #[test]
    fn bad_zabbix_payloads_name_the_problem() {
        fn error(body: &str) -> String {
            zabbix(body.as_bytes())
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        }
        fn without(field: &str) -> String {
            error(&ZABBIX_PROBLEM.replace(field, ""))
        }
        assert!(error("not json").starts_with("not a valid zabbix payload: not valid JSON"));
        assert!(error("[1, 2]").contains("expected an event object or"));
        assert!(error(r#"{"events":{}}"#).contains("`events` must be a list, not an object"));
        assert!(
            error(r#"{"events":[3]}"#).contains("alert 0: expected an event object, not a number")
        );
        assert!(without(r#""event_id":"4711","#).contains("alert 0: has no `event_id`"));
        assert!(without(r#""name":"High CPU utilization on web-1","#).contains("has no `name`"));
        assert!(
            without(r#""status":"PROBLEM","event_value":"1","#)
                .contains("has neither `status` nor `event_value`")
        );
        assert!(
            error(&ZABBIX_PROBLEM.replace("PROBLEM", "MAYBE"))
                .contains("`status` must be \"PROBLEM\", \"RESOLVED\" or \"OK\"")
        );
        assert!(
            without(r#""event_date":"2026.11.27","event_time":"12:08:39","#)
                .contains("alert 0: no start time")
        );
        assert!(
            without(r#""event_time":"12:08:39","#)
                .contains("`event_date` and `event_time` must be given together")
        );
        assert!(
            error(&ZABBIX_PROBLEM.replace("2026.11.27", "27/11/2026"))
                .contains("`event_date`/`event_time`: expected YYYY.MM.DD")
        );
        assert!(error(&ZABBIX_PROBLEM.replace("2026.11.27", "2026.13.27")).contains("2026.13.27"));
        assert!(
            error(&ZABBIX_PROBLEM.replace(r#""host":"web-1""#, r#""host":["web-1"]"#))
                .contains("`host` must be text, not a list")
        );
        let minimal =
            r#"{"event_id":"1","name":"A","status":"PROBLEM","starts_at":"2026-11-27T12:00:00Z""#;
        assert!(
            error(&format!(r#"{minimal},"tags":5}}"#))
                .contains("`tags`: must be an object or a list, not a number")
        );
        assert!(
            error(&format!(r#"{minimal},"tags":[{{"value":"x"}}]}}"#))
                .contains("`tags`: item 0 is not")
        );
        assert!(
            error(&format!(r#"{minimal},"tags":"not json"}}"#))
                .contains("`tags`: not a JSON object or list")
        );
        assert!(
            error(r#"{"event_id":"1","name":"A","status":"PROBLEM","starts_at":"yesterday"}"#)
                .contains("alert 0: `starts_at`:")
        );
        assert!(
            error(&format!(
                r#"{{"events":[{ZABBIX_PROBLEM},{{"name":"x"}}]}}"#
            ))
            .contains("alert 1: has no `event_id`")
        );
    }

    /// Medic's generic JSON, one alert.
    const GENERIC: &str = r#"{"name":"Service_Latency_Exceeded","severity":"P1","service":"payment-gateway","instance":"10.0.0.1:8080","value":"750ms","summary":"p99 latency high","labels":{"team":"payments"},"starts_at":"2026-11-27T12:08:39Z"}"#;

    #[test]
    fn a_generic_alert_normalizes() {
        let alerts = generic(GENERIC.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert.name, "Service_Latency_Exceeded");
        assert_eq!(alert.status, Status::Firing, "firing unless said otherwise");
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.service, "payment-gateway");
        assert_eq!(alert.instance, "10.0.0.1:8080");
        assert_eq!(alert.value, Ok(Quantity::Duration(750)));
        assert_eq!(alert.summary, "p99 latency high");
        assert_eq!(alert.starts_at, 1_795_781_319_000);
        assert_eq!(alert.ends_at, None);
        assert_eq!(alert.source, "generic");
        assert_eq!(alert.labels["alertname"], "Service_Latency_Exceeded");
        assert_eq!(alert.labels["service"], "payment-gateway");
        assert_eq!(alert.labels["instance"], "10.0.0.1:8080");
        assert_eq!(alert.labels["team"], "payments");
        assert_eq!(alert.annotations["value"], "750ms");
        assert_eq!(alert.fingerprint, fingerprint_of(&alert.labels));
        assert_eq!(alert.fingerprint.len(), 16);
    }

    #[test]
    fn generic_batches_read_numbers_resolved_alerts_and_offsets() {
        let body = r#"{"alerts":[{"name":"A","status":"resolved","value":12,"labels":{"job":"api"},"starts_at":"2026-11-27T12:00:00Z","ends_at":"2026-11-27T12:05:00Z","fingerprint":"abc"},{"name":"B","value":"92%","starts_at":"2026-11-27T13:00:00+01:00"}]}"#;
        let alerts = generic(body.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].status, Status::Resolved);
        assert_eq!(alerts[0].value, Ok(Quantity::Number(12.0)));
        assert_eq!(
            alerts[0].service, "api",
            "job stands in for a missing service"
        );
        assert_eq!(alerts[0].severity, Severity::Warning);
        assert_eq!(alerts[0].ends_at, Some(1_795_781_100_000));
        assert_eq!(alerts[0].fingerprint, "abc");
        assert_eq!(alerts[1].value, Ok(Quantity::Percent(92.0)));
        assert_eq!(alerts[1].starts_at, 1_795_780_800_000);
    }

    #[test]
    fn bad_generic_payloads_name_the_problem() {
        let error = |body: &str| {
            generic(body.as_bytes())
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        };
        assert!(error("not json").starts_with("not a valid generic payload: not valid JSON"));
        assert!(error("[]").contains("expected an alert object or"));
        assert!(error(r#"{"alerts":{}}"#).contains("`alerts` must be a list, not an object"));
        assert!(
            error(r#"{"alerts":[],"source":"x"}"#)
                .contains("unknown field `source` next to `alerts`")
        );
        assert!(
            error(r#"{"name":"A","sevrity":"critical","starts_at":"2026-11-27T12:00:00Z"}"#)
                .contains("alert 0: unknown field `sevrity`")
        );
        assert!(error(r#"{"name":"A"}"#).contains("missing field `starts_at`"));
        assert!(error(r#"{"starts_at":"2026-11-27T12:00:00Z"}"#).contains("missing field `name`"));
        assert!(
            error(r#"{"name":" ","starts_at":"2026-11-27T12:00:00Z"}"#).contains("`name` is empty")
        );
        assert!(
            error(r#"{"name":"A","status":"pending","starts_at":"2026-11-27T12:00:00Z"}"#)
                .contains("`status` must be \"firing\" or \"resolved\"")
        );
        assert!(error(r#"{"name":"A","starts_at":"yesterday"}"#).contains("`starts_at`:"));
        assert!(
            error(r#"{"name":"A","starts_at":"2026-11-27T12:00:00Z","ends_at":"later"}"#)
                .contains("`ends_at`:")
        );
        assert!(
            error(r#"{"name":"A","value":true,"starts_at":"2026-11-27T12:00:00Z"}"#)
                .contains("`value` must be text or a number, not a boolean")
        );
        assert!(
            error(r#"{"alerts":[{"name":"A","starts_at":"2026-11-27T12:00:00Z"},{"name":"B"}]}"#)
                .contains("alert 1: missing field `starts_at`")
        );
    }
}
