//! CloudWatch alarms as Amazon SNS delivers them to an HTTP/HTTPS subscription: the SNS
//! envelope (`Type`, `MessageId`, `TopicArn`, `Message`, the signature's fields), the text SNS
//! signs, and the CloudWatch alarm JSON that a `Notification`'s `Message` carries. Pure: the
//! signature is checked, and a subscription confirmed, by `crate::sns`. The mapping is in
//! docs/webhooks.md.

use super::*;

/// What an SNS message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl SnsType {
    pub fn as_str(self) -> &'static str {
        match self {
            SnsType::Notification => "Notification",
            SnsType::SubscriptionConfirmation => "SubscriptionConfirmation",
            SnsType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

/// An SNS message as it arrives over HTTP (the body SNS posts, `Content-Type: text/plain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsEnvelope {
    pub kind: SnsType,
    pub message_id: String,
    pub topic_arn: String,
    /// A notification's subject, when its publisher gave one (signed when present).
    pub subject: Option<String>,
    pub message: String,
    /// RFC 3339, as SNS writes it (`2026-12-01T10:00:00.123Z`).
    pub timestamp: String,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    pub signature_version: String,
    /// Base64.
    pub signature: String,
    pub signing_cert_url: String,
    /// A (un)subscription confirmation's URL to visit, and its token.
    pub subscribe_url: Option<String>,
    pub token: Option<String>,
}

impl SnsEnvelope {
    /// The text SNS signs: `Key\nValue\n` for each signed key in byte order of the keys, which
    /// differ by type (Amazon SNS Developer Guide, "Verifying the signatures of Amazon SNS
    /// messages").
    pub fn string_to_sign(&self) -> String {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind {
            SnsType::Notification => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.push(("Timestamp", &self.timestamp));
            }
            SnsType::SubscriptionConfirmation | SnsType::UnsubscribeConfirmation => {
                fields.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap_or("")));
                fields.push(("Timestamp", &self.timestamp));
                fields.push(("Token", self.token.as_deref().unwrap_or("")));
            }
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", self.kind.as_str()));
        let mut text = String::new();
        for (key, value) in fields {
            text.push_str(key);
            text.push('\n');
            text.push_str(value);
            text.push('\n');
        }
        text
    }
}

/// Whether `payload` looks like an SNS envelope rather than some other source's JSON (for
/// `medic run`, which detects the source of a file).
pub fn is_sns_envelope(payload: &serde_json::Value) -> bool {
    payload.get("TopicArn").is_some() && payload.get("Type").is_some()
}

/// Reads an SNS message: every field SNS signs must be there, as text.
pub fn sns_envelope(body: &[u8]) -> Result<SnsEnvelope, IngestError> {
    let payload = parse_json(body, "cloudwatch")?;
    let bad = |reason: String| malformed("cloudwatch", reason);
    let object = payload.as_object().ok_or_else(|| {
        bad(format!(
            "the body is {}, not an SNS message object",
            json_kind(&payload)
        ))
    })?;
    if object.get("Type").is_none() && object.get("AlarmName").is_some() {
        return Err(bad(
            "a CloudWatch alarm without its SNS envelope and signature: turn raw message delivery off for the subscription".into(),
        ));
    }
    let required = |field: &str| -> Result<String, IngestError> {
        text_field(object, field)
            .map_err(&bad)?
            .map(str::to_string)
            .ok_or_else(|| bad(format!("the SNS message has no `{field}`")))
    };
    let kind = match required("Type")?.as_str() {
        "Notification" => SnsType::Notification,
        "SubscriptionConfirmation" => SnsType::SubscriptionConfirmation,
        "UnsubscribeConfirmation" => SnsType::UnsubscribeConfirmation,
        other => {
            return Err(bad(format!(
                "`Type` is {other:?}: expected Notification, SubscriptionConfirmation or UnsubscribeConfirmation"
            )));
        }
    };
    let confirmation = kind != SnsType::Notification;
    Ok(SnsEnvelope {
        kind,
        message_id: required("MessageId")?,
        topic_arn: required("TopicArn")?,
        subject: text_field(object, "Subject")
            .map_err(&bad)?
            .map(str::to_string),
        message: required("Message")?,
        timestamp: required("Timestamp")?,
        signature_version: required("SignatureVersion")?,
        signature: required("Signature")?,
        signing_cert_url: required("SigningCertURL")?,
        subscribe_url: if confirmation {
            Some(required("SubscribeURL")?)
        } else {
            None
        },
        token: if confirmation {
            Some(required("Token")?)
        } else {
            None
        },
    })
}

/// Reads a CloudWatch alarm for `medic run`: an SNS notification whose `Message` is the
/// alarm (its signature is not checked: the file is the user's own), or the alarm JSON
/// alone. An `INSUFFICIENT_DATA` state is no alert.
pub fn cloudwatch(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let payload = parse_json(body, "cloudwatch")?;
    let message = if is_sns_envelope(&payload) {
        let envelope = sns_envelope(body)?;
        if envelope.kind != SnsType::Notification {
            return Err(malformed(
                "cloudwatch",
                format!("a {} carries no alarm", envelope.kind.as_str()),
            ));
        }
        envelope.message
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    Ok(cloudwatch_alarm(&message, None)?.into_iter().collect())
}

/// A CloudWatch alarm's state change (a notification's `Message`) as an alert: `ALARM` is
/// firing, `OK` resolved, `INSUFFICIENT_DATA` nothing (`None`). CloudWatch alarms have no
/// severity: a `severity: critical` (or `severity=critical`) in the alarm's description gives
/// it, else `topic_severity` (the topic's, as configured), else warning.
pub fn cloudwatch_alarm(
    message: &str,
    topic_severity: Option<Severity>,
) -> Result<Option<Alert>, IngestError> {
    let bad = |reason: String| malformed("cloudwatch", reason);
    let payload: serde_json::Value = serde_json::from_str(message).map_err(|error| {
        bad(format!(
            "the SNS `Message` is not a CloudWatch alarm: {}",
            json_reason(&error)
        ))
    })?;
    let object = payload.as_object().ok_or_else(|| {
        bad(format!(
            "the SNS `Message` is {}, not a CloudWatch alarm object",
            json_kind(&payload)
        ))
    })?;
    alarm(object, topic_severity).map_err(bad)
}

/// The word after `severity` and a `:` or `=` in `text`, as a severity.
fn described_severity(text: &str) -> Option<Severity> {
    let lower = text.to_ascii_lowercase();
    let (_, after) = lower.split_once("severity")?;
    let after = after.trim_start().strip_prefix([':', '='])?.trim_start();
    let word: String = after
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (!word.is_empty()).then(|| normalize::severity(Some(&word)))
}

fn alarm(
    object: &serde_json::Map<String, serde_json::Value>,
    topic_severity: Option<Severity>,
) -> Result<Option<Alert>, String> {
    let required = |field: &str| -> Result<&str, String> {
        text_field(object, field)?
            .filter(|text| !text.is_empty())
            .ok_or_else(|| format!("the alarm has no `{field}`"))
    };
    let name = required("AlarmName")?.to_string();
    let status = match required("NewStateValue")? {
        "ALARM" => Status::Firing,
        "OK" => Status::Resolved,
        "INSUFFICIENT_DATA" => return Ok(None),
        other => {
            return Err(format!(
                "`NewStateValue` is {other:?}: expected ALARM, OK or INSUFFICIENT_DATA"
            ));
        }
    };
    let changed = required("StateChangeTime")?;
    let changed_at =
        aws_time(changed).map_err(|reason| format!("`StateChangeTime` {changed:?}: {reason}"))?;
    let account = text_field(object, "AWSAccountId")?.unwrap_or_default();
    let arn = text_field(object, "AlarmArn")?.unwrap_or_default();
    // `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`; `Region` is a display name.
    let region = arn
        .split(':')
        .nth(3)
        .filter(|region| !region.is_empty())
        .map(str::to_string)
        .or_else(|| {
            text_field(object, "Region")
                .ok()
                .flatten()
                .map(str::to_string)
        })
        .unwrap_or_default();
    // The episode's identity, the same in the ALARM and the OK message.
    let fingerprint = if arn.is_empty() {
        format!("{region}:{account}:{name}")
    } else {
        arn.to_string()
    };
    let description = text_field(object, "AlarmDescription")?
        .unwrap_or_default()
        .to_string();
    let severity = described_severity(&description)
        .or(topic_severity)
        .unwrap_or(Severity::Warning);
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), name.clone()),
        ("severity".to_string(), severity.as_str().to_string()),
    ]);
    let old_state = text_field(object, "OldStateValue")?.unwrap_or_default();
    for (label, value) in [
        ("region", region.as_str()),
        ("account", account),
        ("old_state", old_state),
    ] {
        if !value.is_empty() {
            labels.insert(label.into(), value.to_string());
        }
    }
    let mut annotations = BTreeMap::new();
    let reason = text_field(object, "NewStateReason")?.unwrap_or_default();
    if !reason.is_empty() {
        annotations.insert("reason".to_string(), reason.to_string());
    }
    let trigger = match object.get("Trigger") {
        Some(serde_json::Value::Object(trigger)) => Some(trigger),
        None | Some(serde_json::Value::Null) => None,
        Some(other) => return Err(format!("`Trigger` is {}, not an object", json_kind(other))),
    };
    let mut value = normalize::value(None);
    let mut summary = String::new();
    let mut dimensions = BTreeMap::new();
    if let Some(trigger) = trigger {
        // A metric math alarm names its metrics under `Metrics`; the first one with a name
        // stands for them.
        let metric = text_field(trigger, "MetricName")?
            .map(str::to_string)
            .or_else(|| first_math_metric(trigger));
        let namespace = text_field(trigger, "Namespace")?;
        if let Some(metric) = &metric {
            labels.insert("metric".into(), metric.clone());
        }
        if let Some(namespace) = namespace {
            labels.insert("metric_namespace".into(), namespace.to_string());
        }
        if let Some(statistic) = trigger
            .get("Statistic")
            .or_else(|| trigger.get("ExtendedStatistic"))
            .and_then(scalar_text)
        {
            labels.insert("statistic".into(), statistic.to_ascii_lowercase());
        }
        match trigger.get("Dimensions") {
            Some(serde_json::Value::Array(items)) => {
                for item in items {
                    let (Some(dimension), Some(dimension_value)) = (
                        item.get("name").and_then(scalar_text),
                        item.get("value").and_then(scalar_text),
                    ) else {
                        return Err(
                            "`Trigger.Dimensions` holds an entry without a `name` and a `value`"
                                .into(),
                        );
                    };
                    dimensions.insert(dimension, dimension_value);
                }
            }
            None | Some(serde_json::Value::Null) => {}
            Some(other) => {
                return Err(format!(
                    "`Trigger.Dimensions` is {}, not a list",
                    json_kind(other)
                ));
            }
        }
        let threshold = trigger.get("Threshold").and_then(scalar_text);
        let operator = text_field(trigger, "ComparisonOperator")?;
        if let Some(threshold) = &threshold {
            annotations.insert("threshold".into(), threshold.clone());
        }
        if let Some(operator) = operator {
            annotations.insert("comparison".into(), operator.to_string());
        }
        let unit = text_field(trigger, "Unit")?;
        let datapoint = datapoint(reason);
        if let Some(datapoint) = datapoint {
            let with_unit = with_unit(datapoint, unit, metric.as_deref());
            annotations.insert("value".into(), with_unit.clone());
            value = normalize::value(Some(&with_unit));
        }
        if let (Some(metric), Some(operator), Some(threshold)) = (&metric, operator, &threshold) {
            summary = format!("{metric} {} {threshold}", comparison(operator));
            if let Some(datapoint) = datapoint {
                summary.push_str(&format!(" (value {datapoint})"));
            }
        }
    }
    for (dimension, dimension_value) in &dimensions {
        labels
            .entry(dimension.clone())
            .or_insert_with(|| dimension_value.clone());
    }
    let dimension = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| dimensions.get(*name))
            .cloned()
            .unwrap_or_default()
    };
    if summary.is_empty() {
        summary = if description.is_empty() {
            reason.to_string()
        } else {
            description.clone()
        };
    }
    Ok(Some(Alert {
        name,
        status,
        severity,
        service: dimension(&[
            "service",
            "Service",
            "ServiceName",
            "FunctionName",
            "DBInstanceIdentifier",
            "LoadBalancer",
            "TargetGroup",
            "AutoScalingGroupName",
        ]),
        instance: dimension(&["instance", "InstanceId", "PodName", "ContainerInstance"]),
        namespace: dimension(&["Namespace", "namespace"]),
        value,
        summary,
        description,
        labels,
        annotations,
        starts_at: changed_at,
        ends_at: (status == Status::Resolved).then_some(changed_at),
        fingerprint,
        source: "cloudwatch".into(),
    }))
}

/// An OK message does not say when the alarm went off: it ends the episode its alarm's
/// ALARM message opened. An ALARM that comes back from INSUFFICIENT_DATA (never OK in
/// between) belongs to the open episode too; an ALARM from OK always starts a new one, so a
/// lost OK never holds later alarms in an old episode.
pub(super) fn episode_join(alert: &Alert) -> Join {
    let back_from_unknown = alert
        .labels
        .get("old_state")
        .is_some_and(|state| state == "INSUFFICIENT_DATA");
    if alert.status == Status::Resolved || back_from_unknown {
        Join::Open
    } else {
        Join::No
    }
}

fn first_math_metric(trigger: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    trigger
        .get("Metrics")?
        .as_array()?
        .iter()
        .find_map(|metric| {
            metric
                .pointer("/MetricStat/Metric/MetricName")
                .or_else(|| metric.get("Label"))
                .or_else(|| metric.get("Id"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        })
}

/// CloudWatch's comparison operators as symbols.
fn comparison(operator: &str) -> &str {
    match operator {
        "GreaterThanThreshold" => ">",
        "GreaterThanOrEqualToThreshold" => ">=",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "<=",
        other => other,
    }
}

/// The newest datapoint of a `NewStateReason` such as `Threshold Crossed: 1 out of the last 1
/// datapoints [95.12 (01/12/26 10:00:00)] was greater than the threshold (80.0).`: the first
/// number inside the brackets.
fn datapoint(reason: &str) -> Option<f64> {
    let (_, after) = reason.split_once('[')?;
    let number: String = after
        .trim_start()
        .chars()
        .take_while(|character| {
            character.is_ascii_digit() || matches!(character, '.' | '-' | '+' | 'e' | 'E')
        })
        .collect();
    number.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// A datapoint with its CloudWatch unit, as Medic's value syntax writes it (durations in
/// whole milliseconds, sizes in whole bytes). Without a unit, a metric whose name says
/// `Utilization` or `Percent` (`CPUUtilization`) is a percentage, any other a plain number.
fn with_unit(value: f64, unit: Option<&str>, metric: Option<&str>) -> String {
    let scaled = |factor: f64, suffix: &str| format!("{}{suffix}", (value * factor).round());
    match unit {
        Some("Percent") => format!("{value}%"),
        Some("Seconds") => scaled(1_000.0, "ms"),
        Some("Milliseconds") => scaled(1.0, "ms"),
        Some("Microseconds") => scaled(0.001, "ms"),
        Some("Bytes") => scaled(1.0, "B"),
        Some("Kilobytes") => scaled(1e3, "B"),
        Some("Megabytes") => scaled(1e6, "B"),
        Some("Gigabytes") => scaled(1e9, "B"),
        Some("Terabytes") => scaled(1e12, "B"),
        Some(_) => value.to_string(),
        None if metric.is_some_and(|name| {
            let name = name.to_ascii_lowercase();
            name.contains("utilization") || name.contains("percent")
        }) =>
        {
            format!("{value}%")
        }
        None => value.to_string(),
    }
}

/// CloudWatch's `StateChangeTime` (`2026-12-01T10:00:00.000+0000`, an offset without a
/// colon) or RFC 3339.
fn aws_time(text: &str) -> Result<i64, String> {
    if let Ok(time) = chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(time.timestamp_millis());
    }
    time(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    /// The shape of the alarm JSON CloudWatch publishes to SNS (AWS documentation's sample).
    pub(crate) const ALARM: &str = r#"{
      "AlarmName": "order-service-cpu",
      "AlarmDescription": "CPU of the order service",
      "AWSAccountId": "123456789012",
      "AlarmConfigurationUpdatedTimestamp": "2026-11-20T08:00:00.000+0000",
      "NewStateValue": "ALARM",
      "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [95.12 (01/12/26 10:00:00)] was greater than the threshold (80.0) (minimum 1 datapoint for OK -> ALARM transition).",
      "StateChangeTime": "2026-12-01T10:00:30.123+0000",
      "Region": "EU (Ireland)",
      "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:order-service-cpu",
      "OldStateValue": "OK",
      "OKActions": [],
      "AlarmActions": ["arn:aws:sns:eu-west-1:123456789012:medic-alarms"],
      "InsufficientDataActions": [],
      "Trigger": {
        "MetricName": "CPUUtilization",
        "Namespace": "AWS/EC2",
        "StatisticType": "Statistic",
        "Statistic": "AVERAGE",
        "Unit": null,
        "Dimensions": [{"value": "i-0abc123", "name": "InstanceId"}, {"value": "order-service", "name": "service"}],
        "Period": 300,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 80.0,
        "TreatMissingData": "missing",
        "EvaluateLowSampleCountPercentile": ""
      }
    }"#;

    fn envelope(message: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "5a3c8f0e-1111-2222-3333-444455556666",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:medic-alarms",
            "Subject": "ALARM: \"order-service-cpu\" in EU (Ireland)",
            "Message": message,
            "Timestamp": "2026-12-01T10:00:31.000Z",
            "SignatureVersion": "1",
            "Signature": "c2lnbmVk",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"
        })
        .to_string()
    }

    #[test]
    fn an_alarm_reads_its_name_metric_dimensions_value_and_identity() {
        let alert = cloudwatch_alarm(ALARM, None).unwrap().unwrap();
        assert_eq!(alert.name, "order-service-cpu");
        assert_eq!(alert.status, Status::Firing);
        assert_eq!(alert.service, "order-service");
        assert_eq!(alert.instance, "i-0abc123");
        assert_eq!(alert.labels["metric"], "CPUUtilization");
        assert_eq!(alert.labels["metric_namespace"], "AWS/EC2");
        assert_eq!(alert.labels["InstanceId"], "i-0abc123");
        assert_eq!(alert.labels["region"], "eu-west-1");
        assert_eq!(alert.labels["account"], "123456789012");
        assert_eq!(alert.labels["statistic"], "average");
        assert_eq!(alert.value, Ok(Quantity::Percent(95.12)));
        assert_eq!(alert.annotations["threshold"], "80.0");
        assert_eq!(alert.summary, "CPUUtilization > 80.0 (value 95.12)");
        assert_eq!(alert.starts_at, 1_796_119_230_123);
        assert_eq!(
            alert.fingerprint,
            "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:order-service-cpu"
        );
        assert_eq!(alert.source, "cloudwatch");
    }

    #[test]
    fn ok_resolves_the_same_alarm_and_insufficient_data_is_no_alert() {
        let ok = ALARM
            .replace(r#""NewStateValue": "ALARM""#, r#""NewStateValue": "OK""#)
            .replace(
                "2026-12-01T10:00:30.123+0000",
                "2026-12-01T10:20:00.000+0000",
            );
        let fired = cloudwatch_alarm(ALARM, None).unwrap().unwrap();
        let resolved = cloudwatch_alarm(&ok, None).unwrap().unwrap();
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.fingerprint, fired.fingerprint);
        assert_eq!(resolved.ends_at, Some(resolved.starts_at));
        let unknown = ALARM.replace(r#""ALARM""#, r#""INSUFFICIENT_DATA""#);
        assert_eq!(cloudwatch_alarm(&unknown, None).unwrap(), None);
    }

    #[test]
    fn the_severity_comes_from_the_description_then_the_topic() {
        let severity =
            |alarm: &str, topic| cloudwatch_alarm(alarm, topic).unwrap().unwrap().severity;
        assert_eq!(severity(ALARM, None), Severity::Warning);
        assert_eq!(
            severity(ALARM, Some(Severity::Critical)),
            Severity::Critical
        );
        let described = ALARM.replace(
            "CPU of the order service",
            "CPU of the order service (Severity: critical)",
        );
        assert_eq!(
            severity(&described, Some(Severity::Info)),
            Severity::Critical
        );
        let info = ALARM.replace("CPU of the order service", "severity=info");
        assert_eq!(severity(&info, None), Severity::Info);
        assert_eq!(
            cloudwatch_alarm(&info, None).unwrap().unwrap().labels["severity"],
            "info"
        );
    }

    #[test]
    fn units_are_read_into_medic_values() {
        let latency = ALARM
            .replace("CPUUtilization", "TargetResponseTime")
            .replace(r#""Unit": null"#, r#""Unit": "Seconds""#)
            .replace("[95.12 (", "[1.5 (");
        assert_eq!(
            cloudwatch_alarm(&latency, None).unwrap().unwrap().value,
            Ok(Quantity::Duration(1_500))
        );
        let count = ALARM.replace("CPUUtilization", "RequestCount");
        assert_eq!(
            cloudwatch_alarm(&count, None).unwrap().unwrap().value,
            Ok(Quantity::Number(95.12))
        );
    }

    #[test]
    fn an_envelope_is_read_and_signs_its_fields_in_order() {
        let body = envelope(ALARM);
        let envelope = sns_envelope(body.as_bytes()).unwrap();
        assert_eq!(envelope.kind, SnsType::Notification);
        let signed = envelope.string_to_sign();
        assert!(signed.starts_with("Message\n{"), "{signed}");
        assert!(signed.ends_with(
            "\nMessageId\n5a3c8f0e-1111-2222-3333-444455556666\nSubject\nALARM: \"order-service-cpu\" in EU (Ireland)\nTimestamp\n2026-12-01T10:00:31.000Z\nTopicArn\narn:aws:sns:eu-west-1:123456789012:medic-alarms\nType\nNotification\n"
        ), "{signed}");
        let alerts = cloudwatch(body.as_bytes()).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(cloudwatch(ALARM.as_bytes()).unwrap(), alerts);
    }

    #[test]
    fn a_confirmation_signs_its_url_and_token() {
        let body = serde_json::json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "m1",
            "Token": "t0k3n",
            "TopicArn": "arn:aws:sns:eu-west-1:123456789012:medic-alarms",
            "Message": "You have chosen to subscribe",
            "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t0k3n",
            "Timestamp": "2026-12-01T10:00:00.000Z",
            "SignatureVersion": "2",
            "Signature": "c2lnbmVk",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem"
        })
        .to_string();
        let envelope = sns_envelope(body.as_bytes()).unwrap();
        assert_eq!(
            envelope.string_to_sign(),
            "Message\nYou have chosen to subscribe\nMessageId\nm1\nSubscribeURL\nhttps://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t0k3n\nTimestamp\n2026-12-01T10:00:00.000Z\nToken\nt0k3n\nTopicArn\narn:aws:sns:eu-west-1:123456789012:medic-alarms\nType\nSubscriptionConfirmation\n"
        );
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let raw = sns_envelope(ALARM.as_bytes()).unwrap_err().to_string();
        assert!(raw.contains("turn raw message delivery off"), "{raw}");
        for (body, says) in [
            ("[]".to_string(), "not a CloudWatch alarm object"),
            (
                envelope(ALARM).replace("{", "[").replace("}", "]"),
                "not valid JSON",
            ),
            (
                envelope(ALARM).replace("\"Notification\"", "\"Shout\""),
                "expected Notification",
            ),
            (
                envelope(ALARM).replace("\"SigningCertURL\"", "\"CertURL\""),
                "no `SigningCertURL`",
            ),
            (envelope("not json"), "not a CloudWatch alarm"),
            (
                envelope(&ALARM.replace(r#""ALARM""#, r#""PANIC""#)),
                "expected ALARM, OK",
            ),
            (
                envelope(&ALARM.replace("2026-12-01T10:00:30.123+0000", "noon")),
                "StateChangeTime",
            ),
            (
                envelope(&ALARM.replace("\"AlarmName\"", "\"Name\"")),
                "no `AlarmName`",
            ),
        ] {
            let error = cloudwatch(body.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(says), "{says}: {error}");
        }
    }
}
