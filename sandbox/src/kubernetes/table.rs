//! Server-side printing: a meta.k8s.io/v1 `Table` for clients that ask for one in `Accept`
//! (`application/json;as=Table;v=v1;g=meta.k8s.io`), which is what `kubectl get` without
//! `-o` does. The columns are those of the real printers in pkg/printers/internalversion
//! (deployments: Name, Ready, Up-to-date, Available, Age, and at priority 1 Containers,
//! Images, Selector; HPAs: Name, Reference, Targets, MinPods, MaxPods, Replicas, Age). Each
//! row carries the object's metadata as a `PartialObjectMetadata` (the default
//! `includeObject=Metadata`).

use serde_json::{Value, json};

use super::objects::{self, Kind};

/// Whether the `Accept` header asks for a Table (and the client takes it).
pub(crate) fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|media_type| {
            let parameters: Vec<&str> = media_type.split(';').map(str::trim).collect();
            parameters.contains(&"as=Table") && parameters.contains(&"g=meta.k8s.io")
        })
    })
}

fn column(name: &str, kind: &str, format: &str, description: &str, priority: u8) -> Value {
    json!({
        "name": name,
        "type": kind,
        "format": format,
        "description": description,
        "priority": priority,
    })
}

fn text<'a>(object: &'a Value, path: &[&str]) -> &'a str {
    objects::field(object, path)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn count(object: &Value, path: &[&str]) -> i64 {
    objects::field(object, path)
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The printers' `translateTimestampSince`: `duration.HumanDuration` of the object's age.
fn age(object: &Value, now: i64) -> String {
    let Some(created) = objects::field(object, &["metadata", "creationTimestamp"])
        .and_then(Value::as_str)
        .and_then(super::parse_rfc3339)
    else {
        return "<unknown>".to_owned();
    };
    human_duration(now.saturating_sub(created))
}

/// k8s.io/apimachinery/pkg/util/duration.HumanDuration.
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return "<invalid>".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let rest = seconds % 60;
        return if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let rest = minutes % 60;
        return if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let rest = hours % 24;
        let days = hours / 24;
        return if rest == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rest}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = hours / 24;
        let rest = days % 365;
        return if rest == 0 {
            format!("{}y", days / 365)
        } else {
            format!("{}y{rest}d", days / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn columns(kind: Kind) -> Value {
    const NAME: &str = "Name must be unique within a namespace. Is required when creating \
                        resources, although some resources may allow a client to request the \
                        generation of an appropriate name automatically. Name is primarily \
                        intended for creation idempotence and configuration definition. Cannot \
                        be updated. More info: \
                        https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    const AGE: &str = "CreationTimestamp is a timestamp representing the server time when this \
                       object was created. It is not guaranteed to be set in happens-before order \
                       across separate operations. Clients may not set this value. It is \
                       represented in RFC3339 form and is in UTC.\n\nPopulated by the system. \
                       Read-only. Null for lists. More info: \
                       https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    match kind {
        Kind::Deployment => json!([
            column("Name", "string", "name", NAME, 0),
            column(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state",
                0
            ),
            column(
                "Up-to-date",
                "integer",
                "",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0
            ),
            column(
                "Available",
                "integer",
                "",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0
            ),
            column("Age", "string", "", AGE, 0),
            column(
                "Containers",
                "string",
                "",
                "Names of each container in the template.",
                1
            ),
            column(
                "Images",
                "string",
                "",
                "Images referenced by each container in the template.",
                1
            ),
            column(
                "Selector",
                "string",
                "",
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
                1
            ),
        ]),
        Kind::HorizontalPodAutoscaler => json!([
            column("Name", "string", "name", NAME, 0),
            column(
                "Reference",
                "string",
                "",
                "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
                0
            ),
            column(
                "Targets",
                "string",
                "",
                "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).",
                0
            ),
            column(
                "MinPods",
                "string",
                "",
                "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
                0
            ),
            column(
                "MaxPods",
                "integer",
                "",
                "maxReplicas is the upper limit for the number of pods that can be set by the autoscaler; cannot be smaller than MinReplicas.",
                0
            ),
            column(
                "Replicas",
                "integer",
                "",
                "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
                0
            ),
            column("Age", "string", "", AGE, 0),
        ]),
    }
}

fn containers(deployment: &Value, key: &str) -> String {
    let listed: Vec<&str> = objects::field(deployment, &["spec", "template", "spec", "containers"])
        .and_then(Value::as_array)
        .map(|containers| {
            containers
                .iter()
                .map(|container| text(container, &[key]))
                .collect()
        })
        .unwrap_or_default();
    listed.join(",")
}

/// The HPA printer's Targets for the metric kinds the sandbox writes; the real printer shows
/// `<unknown>` for a current value no controller has measured.
fn targets(hpa: &Value) -> String {
    let metrics = objects::field(hpa, &["spec", "metrics"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let shown: Vec<String> = metrics
        .iter()
        .map(|metric| match text(metric, &["type"]) {
            "Resource" => {
                let target =
                    match objects::field(metric, &["resource", "target", "averageUtilization"]) {
                        Some(utilization) => format!("{utilization}%"),
                        None => text(metric, &["resource", "target", "averageValue"]).to_owned(),
                    };
                format!(
                    "{}: <unknown>/{target}",
                    text(metric, &["resource", "name"])
                )
            }
            "External" => format!(
                "<unknown>/{} (avg)",
                text(metric, &["external", "target", "averageValue"])
            ),
            _ => "<unknown>".to_owned(),
        })
        .collect();
    if shown.is_empty() {
        "<none>".to_owned()
    } else {
        shown.join(", ")
    }
}

fn cells(kind: Kind, object: &Value, now: i64) -> Value {
    let name = text(object, &["metadata", "name"]);
    match kind {
        Kind::Deployment => {
            let selector: Vec<String> =
                objects::field(object, &["spec", "selector", "matchLabels"])
                    .and_then(Value::as_object)
                    .map(|labels| {
                        labels
                            .iter()
                            .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
                            .collect()
                    })
                    .unwrap_or_default();
            json!([
                name,
                format!(
                    "{}/{}",
                    count(object, &["status", "readyReplicas"]),
                    count(object, &["spec", "replicas"])
                ),
                count(object, &["status", "updatedReplicas"]),
                count(object, &["status", "availableReplicas"]),
                age(object, now),
                containers(object, "name"),
                containers(object, "image"),
                selector.join(","),
            ])
        }
        Kind::HorizontalPodAutoscaler => {
            let min = objects::field(object, &["spec", "minReplicas"])
                .map_or_else(|| "<unset>".to_owned(), Value::to_string);
            json!([
                name,
                format!(
                    "{}/{}",
                    text(object, &["spec", "scaleTargetRef", "kind"]),
                    text(object, &["spec", "scaleTargetRef", "name"])
                ),
                targets(object),
                min,
                count(object, &["spec", "maxReplicas"]),
                count(object, &["status", "currentReplicas"]),
                age(object, now),
            ])
        }
    }
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": objects::field(object, &["metadata"]).cloned().unwrap_or_else(|| json!({})),
    })
}

/// A Table of `objects` (as clients read them); `resource_version` is the list's or the
/// object's.
pub(crate) fn table(kind: Kind, objects: &[Value], resource_version: &str, now: i64) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(
            |object| json!({"cells": cells(kind, object, now), "object": partial_metadata(object)}),
        )
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns(kind),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(wanted(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(4 * 3600 + 120), "4h2m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86_400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86_400), "100d");
    }
}
