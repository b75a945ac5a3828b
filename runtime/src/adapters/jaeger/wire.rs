//! The JSON of Jaeger's query APIs, decoded into [`critical::Trace`] and [`graph::Edge`]:
//!
//! - the v1 HTTP JSON API the UI uses (`/api/traces`, `/api/dependencies`): the envelope
//!   `{"data", "total", "limit", "offset", "errors"}` of `structuredResponse` in Jaeger's
//!   `cmd/query/app/http_handler.go`, traces as `model/json` writes them (`traceID`, `spans`
//!   with `spanID`, `operationName`, `references[{refType, spanID}]`, `startTime` and
//!   `duration` in microseconds, `processID`; `processes{id: {serviceName}}`), links as
//!   `{parent, child, callCount}`; refusals as `errors[{code, msg}]`;
//! - api_v3 (`/api/v3/traces`): OTLP JSON inside the gateway wrapper
//!   `{"result": {"resourceSpans": [...]}}` (`cmd/query/app/apiv3/http_gateway.go`; the first
//!   gateways wrote it bare, `{"resourceSpans": [...]}` or `{}`), span
//!   ids in hex, times as decimal strings of Unix nanoseconds, `service.name` a resource
//!   attribute; refusals as `{"error": {"httpCode", "message"}}`.
//!
//! Anything else is an error naming the place that was wrong, never a guess.

use super::JaegerError;
use super::critical::{Span, Trace};
use super::graph::Edge;
use serde_json::Value as Json;
use std::collections::BTreeMap;

fn shape(reason: String) -> JaegerError {
    JaegerError::Shape(reason)
}

fn object<'j>(
    json: &'j Json,
    place: &str,
) -> Result<&'j serde_json::Map<String, Json>, JaegerError> {
    json.as_object()
        .ok_or_else(|| shape(format!("{place} is {}, not an object", kind(json))))
}

fn list<'j>(json: &'j Json, place: &str) -> Result<&'j [Json], JaegerError> {
    json.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| shape(format!("{place} is {}, not a list", kind(json))))
}

fn text<'j>(
    fields: &'j serde_json::Map<String, Json>,
    key: &str,
    place: &str,
) -> Result<&'j str, JaegerError> {
    match fields.get(key) {
        Some(Json::String(value)) => Ok(value),
        Some(other) => Err(shape(format!(
            "{place}.{key} is {}, not a string",
            kind(other)
        ))),
        None => Err(shape(format!("{place} has no `{key}`"))),
    }
}

fn integer(
    fields: &serde_json::Map<String, Json>,
    key: &str,
    place: &str,
) -> Result<i64, JaegerError> {
    match fields.get(key) {
        Some(value) => value.as_i64().ok_or_else(|| {
            shape(format!(
                "{place}.{key} is {}, not an integer",
                describe(value)
            ))
        }),
        None => Err(shape(format!("{place} has no `{key}`"))),
    }
}

fn describe(json: &Json) -> String {
    match json {
        Json::Number(number) => format!("the number {number}"),
        other => kind(other).to_string(),
    }
}

pub(super) fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// Jaeger's v1 refusal (`errors: [{code, msg}]`, non-empty), if `json` is one.
pub fn v1_refusal(json: &Json) -> Option<JaegerError> {
    let errors = json.get("errors")?.as_array()?;
    let first = errors.first()?;
    let code = first.get("code").and_then(Json::as_i64);
    let message = first
        .get("msg")
        .and_then(Json::as_str)
        .unwrap_or("(no msg)")
        .to_string();
    let more = errors.len().saturating_sub(1);
    Some(JaegerError::Refused {
        code,
        message: if more > 0 {
            format!("{message} (and {more} more)")
        } else {
            message
        },
    })
}

/// api_v3's refusal (`{"error": {"httpCode", "message"}}`), if `json` is one.
pub fn v3_refusal(json: &Json) -> Option<(Option<i64>, String)> {
    let error = json.get("error")?.as_object()?;
    let message = error.get("message").and_then(Json::as_str)?.to_string();
    let code = error.get("httpCode").and_then(Json::as_i64);
    Some((code, message))
}

/// The `data` of a v1 answer, after its `errors` were checked.
fn v1_data(json: &Json) -> Result<&Json, JaegerError> {
    if let Some(refusal) = v1_refusal(json) {
        return Err(refusal);
    }
    let fields = object(json, "the answer")?;
    fields
        .get("data")
        .ok_or_else(|| shape("the answer has no `data`".into()))
}

/// The links of a v1 `/api/dependencies` answer (`data: null` is none).
pub fn v1_dependencies(json: &Json) -> Result<Vec<Edge>, JaegerError> {
    let data = v1_data(json)?;
    if data.is_null() {
        return Ok(Vec::new());
    }
    list(data, "data")?
        .iter()
        .enumerate()
        .map(|(index, link)| {
            let place = format!("data[{index}]");
            let fields = object(link, &place)?;
            let calls = match fields.get("callCount") {
                // `callCount` is `omitempty` in Jaeger's model: absent means 0.
                None => 0,
                Some(value) => value.as_u64().ok_or_else(|| {
                    shape(format!(
                        "{place}.callCount is {}, not a count",
                        describe(value)
                    ))
                })?,
            };
            Ok(Edge {
                parent: text(fields, "parent", &place)?.to_string(),
                child: text(fields, "child", &place)?.to_string(),
                calls,
            })
        })
        .collect()
}

/// The traces of a v1 `/api/traces` answer.
pub fn v1_traces(json: &Json) -> Result<Vec<Trace>, JaegerError> {
    let data = v1_data(json)?;
    if data.is_null() {
        return Ok(Vec::new());
    }
    list(data, "data")?
        .iter()
        .enumerate()
        .map(|(index, trace)| v1_trace(trace, &format!("data[{index}]")))
        .collect()
}

fn v1_trace(json: &Json, place: &str) -> Result<Trace, JaegerError> {
    let fields = object(json, place)?;
    let mut services: BTreeMap<&str, &str> = BTreeMap::new();
    if let Some(processes) = fields.get("processes") {
        for (id, process) in object(processes, &format!("{place}.processes"))? {
            let process_place = format!("{place}.processes.{id}");
            let process = object(process, &process_place)?;
            services.insert(id, text(process, "serviceName", &process_place)?);
        }
    }
    let spans = match fields.get("spans") {
        Some(spans) => list(spans, &format!("{place}.spans"))?,
        None => return Err(shape(format!("{place} has no `spans`"))),
    };
    let spans = spans
        .iter()
        .enumerate()
        .map(|(index, span)| {
            let span_place = format!("{place}.spans[{index}]");
            let span = object(span, &span_place)?;
            let process = text(span, "processID", &span_place)?;
            let service = services.get(process).ok_or_else(|| {
                shape(format!(
                    "{span_place}.processID {process:?} is not in {place}.processes"
                ))
            })?;
            let mut parent_id = None;
            if let Some(references) = span.get("references") {
                for (number, reference) in list(references, &format!("{span_place}.references"))?
                    .iter()
                    .enumerate()
                {
                    let reference_place = format!("{span_place}.references[{number}]");
                    let reference = object(reference, &reference_place)?;
                    // The parent is the first CHILD_OF; FOLLOWS_FROM is not a wait.
                    if parent_id.is_none()
                        && text(reference, "refType", &reference_place)? == "CHILD_OF"
                    {
                        parent_id = Some(text(reference, "spanID", &reference_place)?.to_string());
                    }
                }
            }
            Ok(Span {
                span_id: text(span, "spanID", &span_place)?.to_string(),
                parent_id,
                service: (*service).to_string(),
                operation: text(span, "operationName", &span_place)?.to_string(),
                start_us: integer(span, "startTime", &span_place)?,
                duration_us: integer(span, "duration", &span_place)?,
            })
        })
        .collect::<Result<Vec<Span>, JaegerError>>()?;
    Ok(Trace {
        trace_id: text(fields, "traceID", place)?.to_string(),
        spans,
    })
}

/// The traces of an api_v3 answer: every span of `result.resourceSpans`, grouped by trace id
/// (the gateway merges the traces found into one OTLP document).
pub fn v3_traces(json: &Json) -> Result<Vec<Trace>, JaegerError> {
    if let Some((code, message)) = v3_refusal(json) {
        return Err(JaegerError::Refused { code, message });
    }
    let fields = object(json, "the answer")?;
    // The first HTTP gateways wrote `TracesData` bare, and `{}` for no match; later ones
    // wrap it in `result`.
    let (result, prefix) = match fields.get("result") {
        Some(result) => (object(result, "result")?, "result."),
        None if fields.is_empty() || fields.contains_key("resourceSpans") => (fields, ""),
        None => return Err(shape("the answer has no `result`".into())),
    };
    let mut traces: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    let Some(resources) = result.get("resourceSpans") else {
        // jsonpb leaves out an empty list.
        return Ok(Vec::new());
    };
    for (index, resource_spans) in list(resources, &format!("{prefix}resourceSpans"))?
        .iter()
        .enumerate()
    {
        let place = format!("{prefix}resourceSpans[{index}]");
        let resource_spans = object(resource_spans, &place)?;
        let service = service_name(resource_spans.get("resource"), &place)?;
        let Some(scopes) = resource_spans.get("scopeSpans") else {
            continue;
        };
        for (scope_index, scope) in list(scopes, &format!("{place}.scopeSpans"))?
            .iter()
            .enumerate()
        {
            let scope_place = format!("{place}.scopeSpans[{scope_index}]");
            let scope = object(scope, &scope_place)?;
            let Some(spans) = scope.get("spans") else {
                continue;
            };
            for (span_index, span) in list(spans, &format!("{scope_place}.spans"))?
                .iter()
                .enumerate()
            {
                let span_place = format!("{scope_place}.spans[{span_index}]");
                let span = object(span, &span_place)?;
                let start_ns = nanos(span, "startTimeUnixNano", &span_place)?;
                let end_ns = nanos(span, "endTimeUnixNano", &span_place)?;
                let parent = match span.get("parentSpanId") {
                    None => None,
                    Some(Json::String(id)) if id.is_empty() => None,
                    Some(Json::String(id)) => Some(id.clone()),
                    Some(other) => {
                        return Err(shape(format!(
                            "{span_place}.parentSpanId is {}, not a string",
                            kind(other)
                        )));
                    }
                };
                let trace_id = text(span, "traceId", &span_place)?.to_string();
                traces.entry(trace_id).or_default().push(Span {
                    span_id: text(span, "spanId", &span_place)?.to_string(),
                    parent_id: parent,
                    service: service.clone(),
                    operation: text(span, "name", &span_place)?.to_string(),
                    start_us: start_ns / 1000,
                    duration_us: (end_ns.saturating_sub(start_ns)) / 1000,
                });
            }
        }
    }
    Ok(traces
        .into_iter()
        .map(|(trace_id, spans)| Trace { trace_id, spans })
        .collect())
}

/// A `...UnixNano` field: a decimal string (jsonpb writes 64-bit integers as strings), or a
/// number from writers that do not.
fn nanos(
    fields: &serde_json::Map<String, Json>,
    key: &str,
    place: &str,
) -> Result<i64, JaegerError> {
    let bad = |found: String| shape(format!("{place}.{key} is {found}, not Unix nanoseconds"));
    match fields.get(key) {
        Some(Json::String(digits)) => digits
            .parse::<i64>()
            .map_err(|_| bad(format!("{digits:?}"))),
        Some(Json::Number(number)) => number.as_i64().ok_or_else(|| bad(format!("{number}"))),
        Some(other) => Err(bad(kind(other).to_string())),
        None => Err(shape(format!("{place} has no `{key}`"))),
    }
}

/// The `service.name` attribute of an OTLP resource.
fn service_name(resource: Option<&Json>, place: &str) -> Result<String, JaegerError> {
    let missing = || shape(format!("{place}.resource has no `service.name` attribute"));
    let resource = resource.ok_or_else(missing)?;
    let resource = object(resource, &format!("{place}.resource"))?;
    let attributes = resource.get("attributes").ok_or_else(missing)?;
    for attribute in list(attributes, &format!("{place}.resource.attributes"))? {
        if attribute.get("key").and_then(Json::as_str) == Some("service.name") {
            return attribute
                .get("value")
                .and_then(|value| value.get("stringValue"))
                .and_then(Json::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    shape(format!(
                        "{place}.resource's `service.name` is not a stringValue"
                    ))
                });
        }
    }
    Err(missing())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v3_give_the_same_trace() {
        let v1 = serde_json::json!({
            "data": [{
                "traceID": "t1",
                "spans": [
                    {"traceID": "t1", "spanID": "a", "operationName": "GET /pay", "references": [],
                     "startTime": 1000, "duration": 500, "processID": "p1"},
                    {"traceID": "t1", "spanID": "b", "operationName": "charge",
                     "references": [{"refType": "CHILD_OF", "traceID": "t1", "spanID": "a"}],
                     "startTime": 1100, "duration": 300, "processID": "p2"}
                ],
                "processes": {"p1": {"serviceName": "gw"}, "p2": {"serviceName": "pay"}}
            }],
            "total": 0, "limit": 0, "offset": 0, "errors": null
        });
        let v3 = serde_json::json!({"result": {"resourceSpans": [
            {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gw"}}]},
             "scopeSpans": [{"scope": {}, "spans": [{"traceId": "t1", "spanId": "a", "parentSpanId": "",
                "name": "GET /pay", "kind": 2, "startTimeUnixNano": "1000000", "endTimeUnixNano": "1500000"}]}]},
            {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "pay"}}]},
             "scopeSpans": [{"scope": {}, "spans": [{"traceId": "t1", "spanId": "b", "parentSpanId": "a",
                "name": "charge", "kind": 3, "startTimeUnixNano": "1100000", "endTimeUnixNano": "1400000"}]}]}
        ]}});
        assert_eq!(v1_traces(&v1).unwrap(), v3_traces(&v3).unwrap());
    }

    #[test]
    fn refusals_and_bad_shapes_are_errors() {
        let refused = serde_json::json!({"data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": 400, "msg": "parameter 'service' is required"}]});
        assert_eq!(
            v1_traces(&refused).unwrap_err().to_string(),
            "jaeger refused the request (code 400): parameter 'service' is required"
        );
        let bad = serde_json::json!({"data": [{"parent": "a", "child": 3}]});
        assert_eq!(
            v1_dependencies(&bad).unwrap_err().to_string(),
            "jaeger's answer is not the query API's: data[0].child is a number, not a string"
        );
        let missing_process = serde_json::json!({"data": [{"traceID": "t", "spans": [
            {"spanID": "a", "operationName": "x", "startTime": 1, "duration": 1, "processID": "p9"}
        ], "processes": {}}]});
        assert!(
            v1_traces(&missing_process)
                .unwrap_err()
                .to_string()
                .contains("p9")
        );
    }
}
