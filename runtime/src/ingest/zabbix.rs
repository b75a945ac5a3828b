//! A Zabbix webhook media type whose JSON body Medic documents (docs/webhooks.md).

use super::*;

/// Reads a Zabbix webhook: one event object, or `{"events": [...]}`. Zabbix lets the
/// administrator write the JSON, so the fields are the ones `docs/webhooks.md` lists; macros
/// expand to text, so numbers are accepted wherever text is.
pub fn zabbix(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let events = match parse_json(body, "zabbix")? {
        serde_json::Value::Object(mut object) => match object.remove("events") {
            None => vec![serde_json::Value::Object(object)],
            Some(serde_json::Value::Array(events)) => events,
            Some(other) => {
                return Err(malformed(
                    "zabbix",
                    format!("`events` must be a list, not {}", json_kind(&other)),
                ));
            }
        },
        other => {
            return Err(malformed(
                "zabbix",
                format!(
                    "expected an event object or {{\"events\": [...]}}, not {}",
                    json_kind(&other)
                ),
            ));
        }
    };
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            zabbix_event(event).map_err(|reason| IngestError::BadAlert { index, reason })
        })
        .collect()
}

pub(super) fn zabbix_event(event: &serde_json::Value) -> Result<Alert, String> {
    let serde_json::Value::Object(event) = event else {
        return Err(format!(
            "expected an event object, not {}",
            json_kind(event)
        ));
    };
    let text = |key: &str| zabbix_text(event, key);
    // A recovery event carries its problem's id in `event_id` ({EVENT.ID}), so the problem
    // and its recovery share a fingerprint.
    let event_id = text("event_id")?.ok_or("has no `event_id`")?;
    let name = text("name")?.ok_or("has no `name`")?;
    let status = zabbix_status(text("status")?, text("event_value")?)?;
    let severity_text = text("severity")?;
    let severity = match severity_text
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        // Zabbix's middle severity; `normalize::severity` would read it as warning anyway,
        // but only because it does not know it.
        Some("average") => Severity::Warning,
        _ => normalize::severity(severity_text.as_deref()),
    };
    let host = text("host")?;
    let value_text = text("value")?;
    let value = normalize::value(value_text.as_deref().map(join_number_and_unit).as_deref());
    let starts_at = match (text("starts_at")?, text("event_date")?, text("event_time")?) {
        (Some(starts_at), _, _) => {
            time(&starts_at).map_err(|reason| format!("`starts_at`: {reason}"))?
        }
        (None, Some(date), Some(clock)) => zabbix_time(&date, &clock)
            .map_err(|reason| format!("`event_date`/`event_time`: {reason}"))?,
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err("`event_date` and `event_time` must be given together".into());
        }
        (None, None, None) => {
            return Err(
                "no start time (give `starts_at`, or `event_date` and `event_time`)".into(),
            );
        }
    };
    let ends_at = match text("ends_at")? {
        Some(ends_at) => Some(time(&ends_at).map_err(|reason| format!("`ends_at`: {reason}"))?),
        // A problem event leaves the recovery macros unexpanded; only a resolved event has
        // a recovery time.
        None if status == Status::Resolved => {
            match (text("recovery_date")?, text("recovery_time")?) {
                (Some(date), Some(clock)) => Some(
                    zabbix_time(&date, &clock)
                        .map_err(|reason| format!("`recovery_date`/`recovery_time`: {reason}"))?,
                ),
                _ => None,
            }
        }
        None => None,
    };
    let mut labels = BTreeMap::new();
    zabbix_tags(event.get("tags"), &mut labels).map_err(|reason| format!("`tags`: {reason}"))?;
    // The fields win over tags of the same name; a `service` or `namespace` tag stands in
    // for the field, and the host for a missing service.
    let service = text("service")?
        .or_else(|| labels.get("service").cloned())
        .or_else(|| host.clone())
        .unwrap_or_default();
    let namespace = text("namespace")?
        .or_else(|| labels.get("namespace").cloned())
        .unwrap_or_default();
    labels.insert("alertname".into(), name.clone());
    if let Some(severity_text) = &severity_text {
        labels.insert("severity".into(), severity_text.clone());
    }
    if let Some(host) = &host {
        labels.insert("host".into(), host.clone());
        labels.insert("instance".into(), host.clone());
    }
    if !service.is_empty() {
        labels.insert("service".into(), service.clone());
    }
    if !namespace.is_empty() {
        labels.insert("namespace".into(), namespace.clone());
    }
    let summary = text("summary")?;
    let description = text("description")?;
    let mut annotations = BTreeMap::new();
    for (key, field) in [
        ("summary", &summary),
        ("description", &description),
        ("value", &value_text),
    ] {
        if let Some(field) = field {
            annotations.insert(key.to_string(), field.clone());
        }
    }
    let fingerprint = text("fingerprint")?.unwrap_or_else(|| format!("zabbix-{event_id}"));
    Ok(Alert {
        name,
        status,
        severity,
        service,
        instance: host.unwrap_or_default(),
        namespace,
        value,
        summary: summary.unwrap_or_default(),
        description: description.unwrap_or_default(),
        labels,
        annotations,
        starts_at,
        ends_at,
        fingerprint,
        source: "zabbix".into(),
    })
}

/// A text field of a Zabbix event, trimmed. Empty text and macros Zabbix left unexpanded
/// (`{EVENT.RECOVERY.DATE}` in a problem event, `*UNKNOWN*`) count as absent.
pub(super) fn zabbix_text(
    event: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<String>, String> {
    match event.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(expanded(text).map(str::to_string)),
        Some(serde_json::Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(format!("`{key}` must be text, not {}", json_kind(other))),
    }
}

/// The trimmed text, or `None` when it is empty or a macro Zabbix could not expand.
pub(super) fn expanded(text: &str) -> Option<&str> {
    let text = text.trim();
    let unexpanded_macro = text.len() > 2
        && text.starts_with('{')
        && text.ends_with('}')
        && text.chars().all(|character| {
            character.is_ascii_uppercase()
                || character.is_ascii_digit()
                || matches!(character, '{' | '}' | '.' | '_' | '$' | '#')
        });
    if text.is_empty() || unexpanded_macro || text == "*UNKNOWN*" {
        None
    } else {
        Some(text)
    }
}

/// `status` ({EVENT.STATUS}) if given, else `event_value` ({EVENT.VALUE}).
pub(super) fn zabbix_status(
    status: Option<String>,
    event_value: Option<String>,
) -> Result<Status, String> {
    if let Some(status) = status {
        return match status.to_ascii_lowercase().as_str() {
            "problem" => Ok(Status::Firing),
            "resolved" | "ok" => Ok(Status::Resolved),
            _ => Err(format!(
                "`status` must be \"PROBLEM\", \"RESOLVED\" or \"OK\", not {status:?}"
            )),
        };
    }
    match event_value.as_deref() {
        Some("1") => Ok(Status::Firing),
        Some("0") => Ok(Status::Resolved),
        Some(other) => Err(format!(
            "`event_value` must be \"1\" (problem) or \"0\" (resolved), not {other:?}"
        )),
        None => Err("has neither `status` nor `event_value`".into()),
    }
}

/// Reads Zabbix's {EVENT.DATE} and {EVENT.TIME} (`2026.11.27`, `12:08:39`) as UTC.
pub(super) fn zabbix_time(date: &str, clock: &str) -> Result<i64, String> {
    let not_a_time = || format!("expected YYYY.MM.DD and hh:mm:ss, not {date:?} and {clock:?}");
    let date_parts: Vec<&str> = date.split('.').collect();
    let clock_parts: Vec<&str> = clock.split(':').collect();
    let ([year, month, day], [hours, minutes, seconds]) =
        (date_parts.as_slice(), clock_parts.as_slice())
    else {
        return Err(not_a_time());
    };
    let widths = [
        (*year, 4),
        (*month, 2),
        (*day, 2),
        (*hours, 2),
        (*minutes, 2),
        (*seconds, 2),
    ];
    let digits_only = widths.iter().all(|(part, width)| {
        part.len() == *width && part.bytes().all(|byte| byte.is_ascii_digit())
    });
    if !digits_only {
        return Err(not_a_time());
    }
    time(&format!(
        "{year}-{month}-{day}T{hours}:{minutes}:{seconds}Z"
    ))
    .map_err(|reason| format!("{date} {clock}: {reason}"))
}

/// Zabbix writes a value with its unit after a space (`92 %`, `750 ms`, `1.5 GB`) and a
/// duration in spaced parts (`1h 30m`); the unit parser wants them joined. A space is dropped
/// between a digit and a unit, and between a unit and the next number; any other space stays,
/// so `very slow` is still unreadable rather than read as something else.
pub(super) fn join_number_and_unit(text: &str) -> String {
    let characters: Vec<char> = text.trim().chars().collect();
    let mut joined = String::with_capacity(text.len());
    for (position, character) in characters.iter().enumerate() {
        if *character == ' ' {
            let before = position
                .checked_sub(1)
                .and_then(|before| characters.get(before));
            let after = characters.get(position + 1);
            let joins = match (before, after) {
                (Some(before), Some(after)) => {
                    (before.is_ascii_digit() && !after.is_ascii_digit() && *after != ' ')
                        || (before.is_ascii_alphabetic() && after.is_ascii_digit())
                }
                _ => false,
            };
            if joins {
                continue;
            }
        }
        joined.push(*character);
    }
    joined
}

/// Zabbix tags as labels: an object of strings, or a list of `{"tag": k, "value": v}` as
/// {EVENT.TAGSJSON} writes it, or either of those as JSON text (a media type parameter is
/// always text). A tag given twice keeps its last value.
pub(super) fn zabbix_tags(
    tags: Option<&serde_json::Value>,
    labels: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    match tags {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::String(text)) => {
            let Some(text) = expanded(text) else {
                return Ok(());
            };
            let parsed: serde_json::Value = serde_json::from_str(text)
                .map_err(|error| format!("not a JSON object or list: {error}"))?;
            match parsed {
                // JSON text inside JSON text is not read twice.
                serde_json::Value::String(_) => Err("not a JSON object or list".into()),
                other => zabbix_tags(Some(&other), labels),
            }
        }
        Some(serde_json::Value::Object(object)) => {
            for (key, value) in object {
                let value = scalar_text(value)
                    .ok_or_else(|| format!("`{key}` must be text, not {}", json_kind(value)))?;
                labels.insert(key.clone(), value);
            }
            Ok(())
        }
        Some(serde_json::Value::Array(list)) => {
            for (position, item) in list.iter().enumerate() {
                let not_a_tag =
                    || format!("item {position} is not {{\"tag\": ..., \"value\": ...}}");
                let tag = item
                    .get("tag")
                    .and_then(scalar_text)
                    .filter(|tag| !tag.is_empty())
                    .ok_or_else(not_a_tag)?;
                let value = match item.get("value") {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(value) => scalar_text(value).ok_or_else(not_a_tag)?,
                };
                labels.insert(tag, value);
            }
            Ok(())
        }
        Some(other) => Err(format!(
            "must be an object or a list, not {}",
            json_kind(other)
        )),
    }
}
