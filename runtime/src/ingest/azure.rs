//! Azure Monitor's common alert schema (`schemaId: azureMonitorCommonAlertSchema`), as an
//! action group's webhook sends it: `data.essentials` for every alert type, and for metric
//! alerts `data.alertContext.condition.allOf` with the metric, its value and threshold.
//! The mapping is in docs/webhooks.md.

use super::*;

/// The common schema's `Sev0`–`Sev4` as Medic's three severities: Sev0 (critical) and Sev1
/// (error) are critical, Sev2 (warning) is a warning, Sev3 (informational) and Sev4
/// (verbose) are info.
fn severity(text: &str) -> Result<Severity, String> {
    match text {
        "Sev0" | "Sev1" => Ok(Severity::Critical),
        "Sev2" => Ok(Severity::Warning),
        "Sev3" | "Sev4" => Ok(Severity::Info),
        other => Err(format!(
            "`severity` is {other:?}: the common alert schema has Sev0 to Sev4"
        )),
    }
}

fn required<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<&'a str, String> {
    text_field(object, field)?
        .filter(|text| !text.is_empty())
        .ok_or_else(|| format!("`data.essentials.{field}` is missing"))
}

/// The parts of an Azure resource id (`/subscriptions/S/resourceGroups/G/providers/N/T/NAME`)
/// as labels: subscription, resource group and the resource's name.
fn resource_labels(id: &str, labels: &mut BTreeMap<String, String>) {
    let parts: Vec<&str> = id.split('/').filter(|part| !part.is_empty()).collect();
    for pair in parts.windows(2) {
        if let [key, value] = pair {
            if key.eq_ignore_ascii_case("subscriptions") {
                labels.insert("subscription".into(), (*value).to_string());
            } else if key.eq_ignore_ascii_case("resourcegroups") {
                labels.insert("resource_group".into(), (*value).to_string());
            }
        }
    }
    if let Some(name) = parts.last() {
        labels.insert("resource_name".into(), (*name).to_string());
    }
}

/// The unit of a metric condition's value: its `metricUnit` (or `unit`) when the payload has
/// one (Azure's metric units: Percent, Bytes, Milliseconds, Seconds, Count, ...), else
/// percent for a metric whose name says so (`Percentage CPU`), else none.
fn unit_of(
    condition: &serde_json::Map<String, serde_json::Value>,
    metric: Option<&str>,
) -> &'static str {
    let given = condition
        .get("metricUnit")
        .or_else(|| condition.get("unit"))
        .and_then(serde_json::Value::as_str);
    match given {
        Some("Percent") => "%",
        Some("Bytes") => "B",
        Some("Milliseconds") => "ms",
        Some("Seconds") => "s",
        Some(_) => "",
        None if metric.is_some_and(|name| name.to_ascii_lowercase().contains("percent")) => "%",
        None => "",
    }
}

/// Reads an Azure Monitor webhook in the common alert schema: one alert per notification.
pub fn azure(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let payload = parse_json(body, "azure")?;
    let bad = |reason: String| malformed("azure", reason);
    let object = payload.as_object().ok_or_else(|| {
        bad(format!(
            "the body is {}, not an object",
            json_kind(&payload)
        ))
    })?;
    match object.get("schemaId").and_then(serde_json::Value::as_str) {
        Some("azureMonitorCommonAlertSchema") => {}
        Some(other) => {
            return Err(bad(format!(
                "`schemaId` is {other:?}: turn on the common alert schema in the action group (azureMonitorCommonAlertSchema)"
            )));
        }
        None => {
            return Err(bad(
                "no `schemaId`: Medic reads the common alert schema (azureMonitorCommonAlertSchema)".into(),
            ));
        }
    }
    let data = object
        .get("data")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no `data` object".into()))?;
    let essentials = data
        .get("essentials")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no `data.essentials` object".into()))?;
    essential_alert(
        essentials,
        data.get("alertContext"),
        data.get("customProperties"),
    )
    .map(|alert| vec![alert])
    .map_err(bad)
}

fn essential_alert(
    essentials: &serde_json::Map<String, serde_json::Value>,
    context: Option<&serde_json::Value>,
    custom: Option<&serde_json::Value>,
) -> Result<Alert, String> {
    let name = required(essentials, "alertRule")?.to_string();
    let status = match required(essentials, "monitorCondition")? {
        "Fired" => Status::Firing,
        "Resolved" => Status::Resolved,
        other => {
            return Err(format!(
                "`data.essentials.monitorCondition` is {other:?}: expected Fired or Resolved"
            ));
        }
    };
    let azure_severity = required(essentials, "severity")?;
    let severity = severity(azure_severity)?;
    let starts_at = time(required(essentials, "firedDateTime")?)
        .map_err(|reason| format!("`data.essentials.firedDateTime`: {reason}"))?;
    let ends_at = match text_field(essentials, "resolvedDateTime")? {
        Some(resolved) if !resolved.is_empty() => Some(
            time(resolved)
                .map_err(|reason| format!("`data.essentials.resolvedDateTime`: {reason}"))?,
        ),
        _ => None,
    };
    // The episode: the monitoring service's id of the alert, the same when it resolves.
    let fingerprint = match text_field(essentials, "originAlertId")? {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => required(essentials, "alertId")?.to_string(),
    };
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), name.clone()),
        ("severity".to_string(), severity.as_str().to_string()),
        ("azure_severity".to_string(), azure_severity.to_string()),
    ]);
    for (field, label) in [
        ("signalType", "signal_type"),
        ("monitoringService", "monitoring_service"),
    ] {
        if let Some(value) = text_field(essentials, field)? {
            labels.insert(label.into(), value.to_string());
        }
    }
    let targets: Vec<&str> = match essentials.get("alertTargetIDs") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    "`data.essentials.alertTargetIDs` holds a non-text id".to_string()
                })
            })
            .collect::<Result<_, _>>()?,
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(other) => {
            return Err(format!(
                "`data.essentials.alertTargetIDs` is {}, not a list",
                json_kind(other)
            ));
        }
    };
    let instance = targets
        .first()
        .map(|id| (*id).to_string())
        .unwrap_or_default();
    if let Some(target) = targets.first() {
        labels.insert("resource".into(), (*target).to_string());
        resource_labels(target, &mut labels);
    }
    let configuration_item = match essentials.get("configurationItems") {
        Some(serde_json::Value::Array(items)) => items
            .first()
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let service = configuration_item
        .clone()
        .or_else(|| labels.get("resource_name").cloned())
        .unwrap_or_default();
    let mut annotations = BTreeMap::new();
    if let Some(serde_json::Value::Object(properties)) = custom {
        for (key, value) in properties {
            if let Some(value) = scalar_text(value) {
                annotations.insert(key.clone(), value);
            }
        }
    }
    // A metric alert's first condition: the metric, its value, the threshold, dimensions.
    let condition = context
        .and_then(|context| context.get("condition"))
        .and_then(|condition| condition.get("allOf"))
        .and_then(serde_json::Value::as_array)
        .and_then(|all| all.first())
        .and_then(serde_json::Value::as_object);
    let mut value = normalize::value(None);
    let mut summary = String::new();
    if let Some(condition) = condition {
        let metric = condition.get("metricName").and_then(scalar_text);
        let threshold = condition.get("threshold").and_then(scalar_text);
        let operator = condition.get("operator").and_then(scalar_text);
        let metric_value = condition.get("metricValue").and_then(scalar_text);
        if let Some(metric) = &metric {
            labels.insert("metric".into(), metric.clone());
        }
        if let Some(serde_json::Value::Array(dimensions)) = condition.get("dimensions") {
            for dimension in dimensions {
                if let (Some(name), Some(dimension_value)) = (
                    dimension.get("name").and_then(scalar_text),
                    dimension.get("value").and_then(scalar_text),
                ) {
                    labels.entry(name).or_insert(dimension_value);
                }
            }
        }
        for (key, field) in [("threshold", &threshold), ("operator", &operator)] {
            if let Some(field) = field {
                annotations.insert(key.into(), field.clone());
            }
        }
        if let Some(metric_value) = &metric_value {
            let unit = unit_of(condition, metric.as_deref());
            let with_unit = format!("{metric_value}{unit}");
            annotations.insert("value".into(), with_unit.clone());
            value = normalize::value(Some(&with_unit));
        }
        if let (Some(metric), Some(operator), Some(threshold)) = (&metric, &operator, &threshold) {
            summary = format!(
                "{metric} {} {threshold}",
                match operator.as_str() {
                    "GreaterThan" => ">",
                    "GreaterThanOrEqual" => ">=",
                    "LessThan" => "<",
                    "LessThanOrEqual" => "<=",
                    "Equals" => "==",
                    "NotEquals" => "!=",
                    other => other,
                }
            );
            if let Some(metric_value) = &metric_value {
                summary.push_str(&format!(" (value {metric_value})"));
            }
        }
    }
    let description = text_field(essentials, "description")?
        .unwrap_or_default()
        .to_string();
    if summary.is_empty() {
        summary = description.clone();
    }
    Ok(Alert {
        name,
        status,
        severity,
        service,
        instance,
        namespace: labels.get("resource_group").cloned().unwrap_or_default(),
        value,
        summary,
        description,
        labels,
        annotations,
        starts_at,
        ends_at,
        fingerprint,
        source: "azure".into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    /// The shape of Azure's published sample of a metric alert in the common schema.
    const METRIC: &str = r#"{
      "schemaId": "azureMonitorCommonAlertSchema",
      "data": {
        "essentials": {
          "alertId": "/subscriptions/11111111-2222-3333-4444-555555555555/providers/Microsoft.AlertsManagement/alerts/aaaa0a0a-bb1b-cc2c-dd3d-eeeeee4e4e4e",
          "alertRule": "order-service-cpu",
          "severity": "Sev1",
          "signalType": "Metric",
          "monitorCondition": "Fired",
          "monitoringService": "Platform",
          "alertTargetIDs": ["/subscriptions/11111111-2222-3333-4444-555555555555/resourcegroups/shop-prod/providers/microsoft.compute/virtualmachines/order-vm-1"],
          "configurationItems": ["order-vm-1"],
          "originAlertId": "11111111-2222-3333-4444-555555555555_shop-prod_microsoft.insights_metricAlerts_order-service-cpu_-117781227",
          "firedDateTime": "2026-11-27T12:00:00.3713213Z",
          "description": "CPU of the order service",
          "essentialsVersion": "1.0",
          "alertContextVersion": "1.0"
        },
        "alertContext": {
          "properties": null,
          "conditionType": "SingleResourceMultipleMetricCriteria",
          "condition": {
            "windowSize": "PT5M",
            "allOf": [{
              "metricName": "Percentage CPU",
              "metricNamespace": "Microsoft.Compute/virtualMachines",
              "operator": "GreaterThan",
              "threshold": "80",
              "timeAggregation": "Average",
              "dimensions": [{"name": "service", "value": "order-service"}],
              "metricValue": 95.1,
              "webTestName": null
            }],
            "windowStartTime": "2026-11-27T11:55:00Z",
            "windowEndTime": "2026-11-27T12:00:00Z"
          }
        },
        "customProperties": {"team": "orders"}
      }
    }"#;

    #[test]
    fn a_metric_alert_reads_its_rule_severity_resource_metric_and_value() {
        let alerts = azure(METRIC.as_bytes()).unwrap();
        let alert = &alerts[0];
        assert_eq!(alert.name, "order-service-cpu");
        assert_eq!(alert.status, Status::Firing);
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.service, "order-vm-1");
        assert_eq!(alert.namespace, "shop-prod");
        assert_eq!(alert.labels["resource_group"], "shop-prod");
        assert_eq!(
            alert.labels["subscription"],
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(alert.labels["metric"], "Percentage CPU");
        assert_eq!(alert.labels["service"], "order-service");
        assert_eq!(alert.labels["azure_severity"], "Sev1");
        assert_eq!(alert.annotations["team"], "orders");
        assert_eq!(alert.annotations["threshold"], "80");
        assert_eq!(
            alert.value,
            Ok(Quantity::Percent(95.1)),
            "Percentage CPU is a percent"
        );
        assert_eq!(alert.annotations["value"], "95.1%");
        assert_eq!(alert.summary, "Percentage CPU > 80 (value 95.1)");
        assert!(alert.fingerprint.ends_with("order-service-cpu_-117781227"));
        assert_eq!(alert.source, "azure");
    }

    #[test]
    fn a_given_unit_is_read_and_a_plain_metric_is_a_number() {
        let latency = METRIC
            .replace("Percentage CPU", "Server response time")
            .replace(
                r#""metricValue": 95.1"#,
                r#""metricValue": 750, "metricUnit": "Milliseconds""#,
            );
        assert_eq!(
            azure(latency.as_bytes()).unwrap()[0].value,
            Ok(Quantity::Duration(750))
        );
        let requests = METRIC.replace("Percentage CPU", "Requests");
        assert_eq!(
            azure(requests.as_bytes()).unwrap()[0].value,
            Ok(Quantity::Number(95.1))
        );
    }

    #[test]
    fn its_resolved_form_is_the_same_episode() {
        let resolved = METRIC.replace(
            r#""monitorCondition": "Fired","#,
            r#""monitorCondition": "Resolved", "resolvedDateTime": "2026-11-27T12:20:00Z","#,
        );
        let fired = &azure(METRIC.as_bytes()).unwrap()[0];
        let ended = &azure(resolved.as_bytes()).unwrap()[0];
        assert_eq!(ended.status, Status::Resolved);
        assert_eq!(ended.episode(), fired.episode());
        assert!(ended.ends_at.is_some());
    }

    #[test]
    fn severities_map_to_three_and_bad_payloads_say_what_is_wrong() {
        for (azure_severity, expected) in [
            ("Sev0", Severity::Critical),
            ("Sev2", Severity::Warning),
            ("Sev3", Severity::Info),
            ("Sev4", Severity::Info),
        ] {
            let payload = METRIC.replace("\"Sev1\"", &format!("\"{azure_severity}\""));
            assert_eq!(azure(payload.as_bytes()).unwrap()[0].severity, expected);
        }
        for (payload, says) in [
            (METRIC.replace("\"Sev1\"", "\"Sev9\""), "Sev0 to Sev4"),
            (
                METRIC.replace(
                    "azureMonitorCommonAlertSchema",
                    "Microsoft.Insights/activityLogs",
                ),
                "turn on the common alert schema",
            ),
            (
                METRIC.replace("\"Fired\"", "\"Firing\""),
                "expected Fired or Resolved",
            ),
            (
                METRIC.replace("\"alertRule\"", "\"rule\""),
                "`data.essentials.alertRule` is missing",
            ),
            (
                METRIC.replace("2026-11-27T12:00:00.3713213Z", "yesterday"),
                "firedDateTime",
            ),
            ("[]".to_string(), "not an object"),
            (
                "{\"schemaId\": \"azureMonitorCommonAlertSchema\"}".to_string(),
                "no `data` object",
            ),
        ] {
            let error = azure(payload.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(says), "{says}: {error}");
        }
    }
}
