//! The stored objects (apps/v1 Deployment, autoscaling/v2 HorizontalPodAutoscaler) as JSON
//! values, and what the real registry strategies do to a write before it is persisted:
//! system fields kept, defaults applied (`SetDefaults_Deployment`,
//! `SetDefaults_HorizontalPodAutoscaler`), validation (`ValidateDeployment`,
//! `ValidateHorizontalPodAutoscaler`, `ValidateScale`), generation bumped on spec changes and
//! status recomputed.

use serde_json::{Map, Value, json};

use super::status::{ApiError, FieldError, Qualified};

/// The kinds of stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Deployment,
    HorizontalPodAutoscaler,
}

impl Kind {
    pub(crate) fn resource(self) -> Qualified {
        match self {
            Kind::Deployment => Qualified {
                name: "deployments",
                group: "apps",
            },
            Kind::HorizontalPodAutoscaler => Qualified {
                name: "horizontalpodautoscalers",
                group: "autoscaling",
            },
        }
    }

    /// The kind qualified by group, as `NewInvalid` names it.
    pub(crate) fn qualified_kind(self) -> Qualified {
        Qualified {
            name: self.kind(),
            group: self.resource().group,
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
        }
    }

    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment => "apps/v1",
            Kind::HorizontalPodAutoscaler => "autoscaling/v2",
        }
    }
}

/// The Scale kind for `NewInvalid` on the scale subresource.
const SCALE_KIND: Qualified = Qualified {
    name: "Scale",
    group: "autoscaling",
};

/// Fields the server owns on every object: `(name, value)` pairs set at creation.
pub(crate) struct SystemFields {
    pub(crate) uid: String,
    pub(crate) created: String,
    pub(crate) resource_version: String,
}

pub(crate) fn new_deployment(
    namespace: &str,
    name: &str,
    replicas: Option<i32>,
    system: SystemFields,
) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [{
                    "name": name,
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {},
                "schedulerName": "default-scheduler",
            },
        },
    });
    if let (Some(replicas), Value::Object(members)) = (replicas, &mut spec) {
        members.insert("replicas".to_owned(), json!(replicas));
    }
    let mut deployment = json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": system.uid,
            "resourceVersion": system.resource_version,
            "generation": 1,
            "creationTimestamp": system.created,
            "labels": {"app": name},
        },
        "spec": spec,
    });
    apply_deployment_defaults(&mut deployment);
    set_deployment_status(&mut deployment);
    deployment
}

pub(crate) struct HpaSpec<'a> {
    pub(crate) target_deployment: &'a str,
    pub(crate) min: Option<i32>,
    pub(crate) max: i32,
    /// `(name, uid)` of the KEDA ScaledObject that owns the HPA, if any.
    pub(crate) keda_owner: Option<(String, String)>,
}

pub(crate) fn new_hpa(
    namespace: &str,
    name: &str,
    hpa: HpaSpec<'_>,
    system: SystemFields,
) -> Value {
    let mut metadata = json!({
        "name": name,
        "namespace": namespace,
        "uid": system.uid,
        "resourceVersion": system.resource_version,
        "creationTimestamp": system.created,
    });
    let mut spec = json!({
        "scaleTargetRef": {"kind": "Deployment", "name": hpa.target_deployment, "apiVersion": "apps/v1"},
        "maxReplicas": hpa.max,
    });
    if let (Some(min), Value::Object(members)) = (hpa.min, &mut spec) {
        members.insert("minReplicas".to_owned(), json!(min));
    }
    if let (Some((owner, owner_uid)), Value::Object(members)) = (hpa.keda_owner, &mut metadata) {
        // What KEDA's operator writes on the HPA it manages for a ScaledObject.
        members.insert(
            "labels".to_owned(),
            json!({
                "app.kubernetes.io/managed-by": "keda-operator",
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": owner,
                "scaledobject.keda.sh/name": owner,
            }),
        );
        members.insert(
            "ownerReferences".to_owned(),
            json!([{
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "name": owner,
                "uid": owner_uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }]),
        );
        if let Value::Object(spec_members) = &mut spec {
            spec_members.insert(
                "metrics".to_owned(),
                json!([{
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": "s0-prometheus",
                            "selector": {"matchLabels": {"scaledobject.keda.sh/name": owner}},
                        },
                        "target": {"type": "AverageValue", "averageValue": "100"},
                    },
                }]),
            );
        }
    }
    let mut object = json!({
        "kind": "HorizontalPodAutoscaler",
        "apiVersion": "autoscaling/v2",
        "metadata": metadata,
        "spec": spec,
    });
    apply_hpa_defaults(&mut object);
    object
}

pub(crate) fn field<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |node, key| node.as_object()?.get(*key))
}

fn members_mut<'a>(object: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let members = object.as_object_mut()?;
    if !members.get(key).is_some_and(Value::is_object) {
        members.insert(key.to_owned(), Value::Object(Map::new()));
    }
    members.get_mut(key)?.as_object_mut()
}

pub(crate) fn resource_version(object: &Value) -> String {
    field(object, &["metadata", "resourceVersion"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

pub(crate) fn uid(object: &Value) -> String {
    field(object, &["metadata", "uid"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

pub(crate) fn set_resource_version(object: &mut Value, resource_version: &str) {
    if let Some(metadata) = members_mut(object, "metadata") {
        metadata.insert("resourceVersion".to_owned(), json!(resource_version));
    }
}

/// Where a written object came from, which decides how a mistyped field is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A PUT body: decoding it fails with 400 BadRequest.
    Body,
    /// The result of applying a patch: the patch handler reports a decoding failure as
    /// 422 Invalid on the field `patch`, with the patched JSON as the value.
    Patch,
}

fn decode_failure(origin: Origin, object: &Value, message: String) -> ApiError {
    match origin {
        Origin::Body => ApiError::bad_request(message),
        Origin::Patch => ApiError::invalid(
            Qualified {
                name: "",
                group: "",
            },
            "",
            &[FieldError::invalid(
                "patch",
                format!("{:?}", object.to_string()),
                message,
            )],
        ),
    }
}

/// How encoding/json names a JSON value it cannot decode: its type, and a number's text.
fn go_json_type(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "bool".to_owned(),
        Value::Number(number) => format!("number {number}"),
        Value::String(_) => "string".to_owned(),
        Value::Array(_) => "array".to_owned(),
        Value::Object(_) => "object".to_owned(),
    }
}

/// An `int32` field, distinguishing absent (`Ok(None)`) from mistyped (decoding into the Go
/// struct fails).
fn int32(
    object: &Value,
    path: &[&str],
    go_field: &str,
    origin: Origin,
) -> Result<Option<i32>, ApiError> {
    match field(object, path) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .and_then(|number| i32::try_from(number).ok())
            .map(Some)
            .ok_or_else(|| {
                decode_failure(
                    origin,
                    object,
                    format!(
                        "json: cannot unmarshal {} into Go struct field {go_field} of type int32",
                        go_json_type(value)
                    ),
                )
            }),
    }
}

pub(crate) fn deployment_replicas(object: &Value) -> Option<i32> {
    field(object, &["spec", "replicas"])
        .and_then(Value::as_i64)
        .and_then(|number| i32::try_from(number).ok())
}

pub(crate) fn hpa_min(object: &Value) -> Option<i32> {
    field(object, &["spec", "minReplicas"])
        .and_then(Value::as_i64)
        .and_then(|number| i32::try_from(number).ok())
}

fn apply_deployment_defaults(object: &mut Value) {
    let Some(spec) = members_mut(object, "spec") else {
        return;
    };
    let defaults = [
        ("replicas", json!(1)),
        (
            "strategy",
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
        ),
        ("revisionHistoryLimit", json!(10)),
        ("progressDeadlineSeconds", json!(600)),
    ];
    for (key, value) in defaults {
        if spec.get(key).is_none_or(Value::is_null) {
            spec.insert(key.to_owned(), value);
        }
    }
}

fn apply_hpa_defaults(object: &mut Value) {
    let Some(spec) = members_mut(object, "spec") else {
        return;
    };
    if spec.get("minReplicas").is_none_or(Value::is_null) {
        spec.insert("minReplicas".to_owned(), json!(1));
    }
    if spec
        .get("metrics")
        .is_none_or(|metrics| metrics.as_array().is_none_or(Vec::is_empty))
    {
        spec.insert(
            "metrics".to_owned(),
            json!([{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }]),
        );
    }
}

/// The status the deployment controller would report once the rollout has settled: every
/// replica updated, ready and available. `int32` fields equal to zero are omitted, as the Go
/// types' `omitempty` tags make the real server do.
fn set_deployment_status(object: &mut Value) {
    let replicas = deployment_replicas(object).unwrap_or(0);
    let generation = field(object, &["metadata", "generation"])
        .cloned()
        .unwrap_or(json!(1));
    let since = field(object, &["metadata", "creationTimestamp"])
        .cloned()
        .unwrap_or(Value::Null);
    let mut status = Map::new();
    status.insert("observedGeneration".to_owned(), generation);
    if replicas > 0 {
        for key in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            status.insert(key.to_owned(), json!(replicas));
        }
    }
    status.insert(
        "conditions".to_owned(),
        json!([
            {
                "type": "Available", "status": "True",
                "lastUpdateTime": since, "lastTransitionTime": since,
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing", "status": "True",
                "lastUpdateTime": since, "lastTransitionTime": since,
                "reason": "NewReplicaSetAvailable",
                "message": "ReplicaSet has successfully progressed.",
            },
        ]),
    );
    if let Some(members) = object.as_object_mut() {
        members.insert("status".to_owned(), Value::Object(status));
    }
}

/// The label selector of a deployment in the text form Scale's `status.selector` uses.
fn selector_text(deployment: &Value) -> String {
    let Some(Value::Object(labels)) = field(deployment, &["spec", "selector", "matchLabels"])
    else {
        return String::new();
    };
    let pairs: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
        .collect();
    pairs.join(",")
}

/// The autoscaling/v1 Scale of a deployment.
pub(crate) fn scale_of(deployment: &Value) -> Value {
    let mut metadata = Map::new();
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(value) = field(deployment, &["metadata", key]) {
            metadata.insert(key.to_owned(), value.clone());
        }
    }
    let replicas = deployment_replicas(deployment).unwrap_or(0);
    // ScaleSpec.replicas is `omitempty`; ScaleStatus.replicas is not.
    let spec = if replicas == 0 {
        json!({})
    } else {
        json!({"replicas": replicas})
    };
    let status_replicas = field(deployment, &["status", "replicas"])
        .cloned()
        .unwrap_or(json!(0));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": spec,
        "status": {"replicas": status_replicas, "selector": selector_text(deployment)},
    })
}

/// The replica count a written Scale asks for (absent is 0, as the Go field is not a pointer).
pub(crate) fn scale_replicas(scale: &Value, name: &str, origin: Origin) -> Result<i32, ApiError> {
    check_type_meta(scale, "autoscaling/v1", "Scale")?;
    let replicas = int32(
        scale,
        &["spec", "replicas"],
        "ScaleSpec.spec.replicas",
        origin,
    )?
    .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            SCALE_KIND,
            name,
            &[FieldError::invalid(
                "spec.replicas",
                replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    Ok(replicas)
}

pub(crate) fn with_replicas(deployment: &Value, replicas: i32) -> Value {
    let mut updated = deployment.clone();
    if let Some(spec) = members_mut(&mut updated, "spec") {
        spec.insert("replicas".to_owned(), json!(replicas));
    }
    updated
}

/// A body's `apiVersion` and `kind`, when given, must be the resource's.
fn check_type_meta(object: &Value, api_version: &str, kind: &str) -> Result<(), ApiError> {
    if let Some(given) = field(object, &["apiVersion"]).and_then(Value::as_str)
        && given != api_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({given}) does not match the expected API version ({api_version})"
        )));
    }
    if let Some(given) = field(object, &["kind"]).and_then(Value::as_str)
        && given != kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({given}) does not match the expected kind ({kind})"
        )));
    }
    Ok(())
}

/// `checkName` of the real handlers: a body naming another object is a bad request.
pub(crate) fn check_name(object: &Value, namespace: &str, name: &str) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {object} into Go value of type map[string]interface {{}}"
        )));
    }
    let given = field(object, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if given != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(given) = field(object, &["metadata", "namespace"]).and_then(Value::as_str)
        && !given.is_empty()
        && given != namespace
    {
        // rest.EnsureObjectNamespaceMatchesRequestNamespace, which runs before checkName.
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Deepest nesting a stored object may have; JSON patches could otherwise deepen an object a
/// little with every write.
const MAX_DEPTH: usize = 200;

/// Decoding into the Go types makes `null` and an absent member the same; dropping the
/// members that are `null` gives the sandbox the same equality (a client that round-trips an
/// object through its own types, dropping `null`s, writes no change).
fn drop_nulls(value: &mut Value, depth: usize) -> Result<(), ApiError> {
    if depth > MAX_DEPTH {
        return Err(ApiError::bad_request(format!(
            "the object is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    match value {
        Value::Object(members) => {
            members.retain(|_, member| !member.is_null());
            members
                .values_mut()
                .try_for_each(|member| drop_nulls(member, depth + 1))
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|item| drop_nulls(item, depth + 1)),
        _ => Ok(()),
    }
}

/// What the registry does between the decoded body and storage: keeps the server-owned
/// metadata, applies defaults, validates, bumps `metadata.generation` when the spec changed
/// and (for deployments) recomputes status. `stored` is the object before the write.
pub(crate) fn admit(
    kind: Kind,
    stored: &Value,
    candidate: Value,
    origin: Origin,
) -> Result<Value, ApiError> {
    check_type_meta(&candidate, kind.api_version(), kind.kind())?;
    let mut candidate = candidate;
    drop_nulls(&mut candidate, 0)?;
    let name = field(stored, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let given_uid = uid(&candidate);
    if !given_uid.is_empty() && given_uid != uid(stored) {
        // ValidateObjectMetaUpdate (a PUT's UID failed its precondition before this).
        return Err(ApiError::invalid(
            kind.qualified_kind(),
            &name,
            &[FieldError::invalid(
                "metadata.uid",
                format!("{given_uid:?}"),
                "field is immutable",
            )],
        ));
    }
    let mut object = candidate;
    if let Some(members) = object.as_object_mut() {
        members.insert("kind".to_owned(), json!(kind.kind()));
        members.insert("apiVersion".to_owned(), json!(kind.api_version()));
        // The update strategies ignore status on writes to the main resource.
        members.remove("status");
    }
    if let Some(metadata) = members_mut(&mut object, "metadata") {
        for key in [
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
        ] {
            match field(stored, &["metadata", key]) {
                Some(value) => metadata.insert(key.to_owned(), value.clone()),
                None => metadata.remove(key),
            };
        }
    }
    match kind {
        Kind::Deployment => {
            int32(
                &object,
                &["spec", "replicas"],
                "DeploymentSpec.spec.replicas",
                origin,
            )?;
            apply_deployment_defaults(&mut object);
            let errors = validate_deployment(stored, &object);
            if !errors.is_empty() {
                return Err(ApiError::invalid(kind.qualified_kind(), &name, &errors));
            }
            // apps' PrepareForUpdate: spec or annotation changes bump the generation (the
            // annotations are copied to the ReplicaSets).
            let changed = field(stored, &["spec"]) != field(&object, &["spec"])
                || field(stored, &["metadata", "annotations"])
                    != field(&object, &["metadata", "annotations"]);
            if changed {
                let generation = field(stored, &["metadata", "generation"])
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if let Some(metadata) = members_mut(&mut object, "metadata") {
                    metadata.insert("generation".to_owned(), json!(generation + 1));
                }
            }
            set_deployment_status(&mut object);
        }
        Kind::HorizontalPodAutoscaler => {
            int32(
                &object,
                &["spec", "minReplicas"],
                "HorizontalPodAutoscalerSpec.spec.minReplicas",
                origin,
            )?;
            int32(
                &object,
                &["spec", "maxReplicas"],
                "HorizontalPodAutoscalerSpec.spec.maxReplicas",
                origin,
            )?;
            apply_hpa_defaults(&mut object);
            let errors = validate_hpa(&object);
            if !errors.is_empty() {
                return Err(ApiError::invalid(kind.qualified_kind(), &name, &errors));
            }
        }
    }
    Ok(object)
}

fn validate_deployment(stored: &Value, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(replicas) = deployment_replicas(object)
        && replicas < 0
    {
        errors.push(FieldError::invalid(
            "spec.replicas",
            replicas.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let selector = field(object, &["spec", "selector"]);
    match field(object, &["spec", "selector", "matchLabels"]).and_then(Value::as_object) {
        None => errors.push(FieldError::required("spec.selector")),
        Some(match_labels) => {
            let template_labels = field(object, &["spec", "template", "metadata", "labels"])
                .and_then(Value::as_object);
            let matches = match_labels.iter().all(|(key, value)| {
                template_labels.and_then(|labels| labels.get(key)) == Some(value)
            });
            if !matches {
                errors.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    template_labels
                        .map(|labels| Value::Object(labels.clone()).to_string())
                        .unwrap_or_else(|| "null".to_owned()),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    if selector != field(stored, &["spec", "selector"]) {
        errors.push(FieldError::invalid(
            "spec.selector",
            selector.map(Value::to_string).unwrap_or_default(),
            "field is immutable",
        ));
    }
    errors
}

fn validate_hpa(object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for key in ["kind", "name"] {
        let given = field(object, &["spec", "scaleTargetRef", key]).and_then(Value::as_str);
        if given.is_none_or(str::is_empty) {
            errors.push(FieldError::required(&format!("spec.scaleTargetRef.{key}")));
        }
    }
    let min = hpa_min(object);
    let max = field(object, &["spec", "maxReplicas"])
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(min) = min
        && min < 1
    {
        // The bound is 0 only with the HPAScaleToZero feature gate, off by default.
        errors.push(FieldError::invalid(
            "spec.minReplicas",
            min.to_string(),
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errors.push(FieldError::invalid(
            "spec.maxReplicas",
            max.to_string(),
            "must be greater than 0",
        ));
    }
    if let Some(min) = min
        && max < i64::from(min)
    {
        errors.push(FieldError::invalid(
            "spec.maxReplicas",
            max.to_string(),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    errors
}

/// The HPA with the status an HPA controller would report; `target_replicas` is the target
/// deployment's current `spec.replicas`.
pub(crate) fn hpa_with_status(hpa: &Value, target_replicas: Option<i32>) -> Value {
    let mut rendered = hpa.clone();
    let current = target_replicas.unwrap_or(0);
    // `currentReplicas` is `omitempty` in v2; `desiredReplicas` is not.
    let status = if current == 0 {
        json!({"desiredReplicas": 0})
    } else {
        json!({"currentReplicas": current, "desiredReplicas": current})
    };
    if let Some(members) = rendered.as_object_mut() {
        members.insert("status".to_owned(), status);
    }
    rendered
}

/// Objects inside a list carry no `kind` or `apiVersion`, as the real server's lists.
pub(crate) fn as_list_item(object: Value) -> Value {
    let mut item = object;
    if let Some(members) = item.as_object_mut() {
        members.remove("kind");
        members.remove("apiVersion");
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system() -> SystemFields {
        SystemFields {
            uid: "u".to_owned(),
            created: "2026-12-02T00:00:00Z".to_owned(),
            resource_version: "1".to_owned(),
        }
    }

    #[test]
    fn admitting_an_unchanged_object_changes_nothing() -> Result<(), ApiError> {
        let deployment = new_deployment("shop", "web", Some(3), system());
        assert_eq!(
            admit(
                Kind::Deployment,
                &deployment,
                deployment.clone(),
                Origin::Body
            )?,
            deployment
        );
        let hpa = new_hpa(
            "shop",
            "web",
            HpaSpec {
                target_deployment: "web",
                min: None,
                max: 3,
                keda_owner: None,
            },
            system(),
        );
        assert_eq!(
            admit(
                Kind::HorizontalPodAutoscaler,
                &hpa,
                hpa.clone(),
                Origin::Body
            )?,
            hpa
        );
        Ok(())
    }
}
