//! `/version` and the legacy (unaggregated) discovery documents: `APIVersions` at `/api`,
//! `APIGroupList` at `/apis`, an `APIResourceList` per group version. Clients that ask for
//! aggregated discovery (`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...`)
//! read the `Content-Type` of the answer (plain `application/json`) and fall back to these
//! documents, as they do against servers older than 1.26.
//!
//! Only what the sandbox serves is listed, and each resource lists only the verbs the sandbox
//! implements (the real server also lists `create`, `delete`, `deletecollection`, `watch`).

use serde_json::{Value, json};

/// The Kubernetes version the sandbox claims to be (the one k8s-openapi's `v1_33` feature
/// describes).
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a68eab88b2096f4d708f4f",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group(name: &str, versions: &[&str]) -> Value {
    let listed: Vec<Value> = versions
        .iter()
        .map(|version| json!({"groupVersion": format!("{name}/{version}"), "version": version}))
        .collect();
    let preferred = listed.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": listed, "preferredVersion": preferred})
}

pub(crate) fn api_group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            group("apps", &["v1"]),
            group("autoscaling", &["v2", "v1"]),
            group("authorization.k8s.io", &["v1"]),
        ],
    })
}

fn resource_list(group_version: &str, resources: Value) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// The `APIResourceList` at `/api/v1` (`group` empty) or `/apis/{group}/{version}`.
pub(crate) fn resources(group: &str, version: &str) -> Option<Value> {
    let hpa = || {
        json!([
            {
                "name": "horizontalpodautoscalers",
                "singularName": "horizontalpodautoscaler",
                "namespaced": true,
                "kind": "HorizontalPodAutoscaler",
                "verbs": ["get", "list", "patch", "update"],
                "shortNames": ["hpa"],
                "categories": ["all"],
            },
            {
                "name": "horizontalpodautoscalers/status",
                "singularName": "",
                "namespaced": true,
                "kind": "HorizontalPodAutoscaler",
                "verbs": ["get"],
            },
        ])
    };
    match (group, version) {
        ("", "v1") => Some(resource_list("v1", json!([]))),
        ("apps", "v1") => Some(resource_list(
            "apps/v1",
            json!([
                {
                    "name": "deployments",
                    "singularName": "deployment",
                    "namespaced": true,
                    "kind": "Deployment",
                    "verbs": ["get", "list", "patch", "update"],
                    "shortNames": ["deploy"],
                    "categories": ["all"],
                },
                {
                    "name": "deployments/scale",
                    "singularName": "",
                    "namespaced": true,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                },
                {
                    "name": "deployments/status",
                    "singularName": "",
                    "namespaced": true,
                    "kind": "Deployment",
                    "verbs": ["get"],
                },
            ]),
        )),
        ("autoscaling", "v2") => Some(resource_list("autoscaling/v2", hpa())),
        ("autoscaling", "v1") => Some(resource_list("autoscaling/v1", hpa())),
        ("authorization.k8s.io", "v1") => Some(resource_list(
            "authorization.k8s.io/v1",
            json!([{
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": false,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }]),
        )),
        _ => None,
    }
}
