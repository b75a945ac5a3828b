//! The server's state and its request handling: authentication, routing, authorization,
//! reads, and the write path (patch or replace → name check → precondition → admission →
//! no-op detection → persist with a new resourceVersion).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::Recorded;
use super::discovery;
use super::objects::{self, Kind};
use super::patch::{self, PatchError};
use super::status::{Access, ApiError, Qualified};

/// The request log is bounded so that a client in a loop cannot grow it without limit.
const MAX_RECORDED: usize = 100_000;

/// The real patch handler's limit (`maxJSONPatchOperations`).
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The PATCH body types served, in the order the real server lists them (less
/// `application/apply-patch+yaml`: server-side apply is not modelled).
const PATCH_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) kind: Kind,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl Key {
    pub(crate) fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Key {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

pub(crate) struct State {
    pub(crate) server_address: String,
    pub(crate) token: String,
    resource_version: u64,
    uid_seed: u64,
    uid_counter: u64,
    pub(crate) objects: BTreeMap<Key, Value>,
    pub(crate) pending_conflicts: BTreeMap<Key, u32>,
    /// `(verb, resource)` pairs refused, `resource` with its subresource (`deployments/scale`).
    pub(crate) forbidden: BTreeSet<(String, String)>,
    pub(crate) recorded: Vec<Recorded>,
}

/// One request as the handler sees it.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) authorization: Option<&'a str>,
    pub(crate) accept: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

/// A successful answer: the HTTP code and the JSON body.
pub(crate) type Answer = (u16, Value);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subresource {
    None,
    Scale,
    Status,
}

impl Subresource {
    fn name(self) -> Option<&'static str> {
        match self {
            Subresource::None => None,
            Subresource::Scale => Some("scale"),
            Subresource::Status => Some("status"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    List,
    Patch,
    Update,
    Create,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Patch => "patch",
            Verb::Update => "update",
            Verb::Create => "create",
        }
    }
}

enum Change {
    Replace(Value),
    Merge(Value),
    Json(Value),
}

impl Change {
    fn origin(&self) -> objects::Origin {
        match self {
            Change::Replace(_) => objects::Origin::Body,
            Change::Merge(_) | Change::Json(_) => objects::Origin::Patch,
        }
    }

    fn apply(&self, current: &Value) -> Result<Value, ApiError> {
        match self {
            Change::Replace(body) => Ok(body.clone()),
            Change::Merge(patch_body) => {
                let mut patched = current.clone();
                patch::merge(&mut patched, patch_body);
                Ok(patched)
            }
            Change::Json(operations) => {
                patch::apply_json_patch(current, operations).map_err(|error| match error {
                    PatchError::Malformed(message) => ApiError::bad_request(message),
                    PatchError::NotApplicable(message) => ApiError::patch_not_applicable(&message),
                })
            }
        }
    }
}

impl State {
    pub(crate) fn new(server_address: String, token: String, uid_seed: u64) -> Self {
        State {
            server_address,
            token,
            resource_version: 0,
            uid_seed,
            uid_counter: 0,
            objects: BTreeMap::new(),
            pending_conflicts: BTreeMap::new(),
            forbidden: BTreeSet::new(),
            recorded: Vec::new(),
        }
    }

    pub(crate) fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// A version-4-shaped UUID, unique within this server.
    pub(crate) fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let mixed = self
            .uid_seed
            .wrapping_add(self.uid_counter)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            mixed >> 32,
            (mixed >> 16) & 0xffff,
            mixed & 0xfff,
            (mixed >> 40) & 0xfff,
            self.uid_counter & 0xffff_ffff_ffff
        )
    }

    pub(crate) fn record(&mut self, recorded: Recorded) {
        if self.recorded.len() >= MAX_RECORDED {
            self.recorded.remove(0);
        }
        self.recorded.push(recorded);
    }

    fn is_forbidden(&self, verb: &str, resource: &str) -> bool {
        self.forbidden
            .iter()
            .any(|(refused_verb, refused_resource)| {
                (refused_verb == verb || refused_verb == "*")
                    && (refused_resource == resource || refused_resource == "*")
            })
    }

    fn authorize(&self, access: &Access<'_>) -> Result<(), ApiError> {
        let resource = match access.subresource {
            Some(subresource) => format!("{}/{subresource}", access.resource.name),
            None => access.resource.name.to_owned(),
        };
        if self.is_forbidden(access.verb, &resource) {
            return Err(ApiError::forbidden(access));
        }
        Ok(())
    }

    pub(crate) fn handle(&mut self, request: &Request<'_>) -> Result<Answer, ApiError> {
        let segments: Vec<&str> = request
            .path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect();
        let public = matches!(
            segments.as_slice(),
            ["version"] | ["healthz"] | ["livez"] | ["readyz"]
        );
        let bearer = request
            .authorization
            .and_then(|header| header.strip_prefix("Bearer "));
        match bearer {
            Some(token) if token == self.token => {}
            // Anonymous requests reach the public-info paths, as with the default
            // `system:public-info-viewer` binding; a wrong token is refused everywhere.
            None if public => {}
            _ => return Err(ApiError::unauthorized()),
        }
        let get_only = |body: Value| {
            if request.method == "GET" {
                Ok((200, body))
            } else {
                Err(ApiError::method_not_allowed())
            }
        };
        match segments.as_slice() {
            ["version"] => get_only(discovery::version()),
            ["healthz"] | ["livez"] | ["readyz"] => get_only(json!("ok")),
            ["api"] => get_only(discovery::api_versions(&self.server_address)),
            ["api", version] => discovery::resources("", version)
                .ok_or_else(ApiError::path_not_found)
                .and_then(get_only),
            ["apis"] => get_only(discovery::api_group_list()),
            ["apis", group, version] => discovery::resources(group, version)
                .ok_or_else(ApiError::path_not_found)
                .and_then(get_only),
            ["apis", "apps", "v1", "deployments"] => self.list(Kind::Deployment, None, request),
            ["apis", "apps", "v1", "namespaces", namespace, "deployments"] => {
                self.list(Kind::Deployment, Some(namespace), request)
            }
            [
                "apis",
                "apps",
                "v1",
                "namespaces",
                namespace,
                "deployments",
                name,
                rest @ ..,
            ] => {
                let subresource = match rest {
                    [] => Subresource::None,
                    ["scale"] => Subresource::Scale,
                    ["status"] => Subresource::Status,
                    _ => return Err(ApiError::path_not_found()),
                };
                let key = Key::new(Kind::Deployment, namespace, name);
                self.item(&key, subresource, request)
            }
            ["apis", "autoscaling", "v2", "horizontalpodautoscalers"] => {
                self.list(Kind::HorizontalPodAutoscaler, None, request)
            }
            [
                "apis",
                "autoscaling",
                "v2",
                "namespaces",
                namespace,
                "horizontalpodautoscalers",
            ] => self.list(Kind::HorizontalPodAutoscaler, Some(namespace), request),
            [
                "apis",
                "autoscaling",
                "v2",
                "namespaces",
                namespace,
                "horizontalpodautoscalers",
                name,
                rest @ ..,
            ] => {
                let subresource = match rest {
                    [] => Subresource::None,
                    ["status"] => Subresource::Status,
                    _ => return Err(ApiError::path_not_found()),
                };
                let key = Key::new(Kind::HorizontalPodAutoscaler, namespace, name);
                self.item(&key, subresource, request)
            }
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
            ] => self.self_subject_access_review(request),
            _ => Err(ApiError::path_not_found()),
        }
    }

    fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        request: &Request<'_>,
    ) -> Result<Answer, ApiError> {
        if request.method != "GET" {
            return Err(ApiError::method_not_allowed());
        }
        self.authorize(&Access {
            verb: Verb::List.as_str(),
            resource: kind.resource(),
            subresource: None,
            namespace,
            name: None,
        })?;
        if query_values(request, "watch")
            .iter()
            .any(|value| value == "true" || value == "1")
        {
            return Err(ApiError::bad_request(
                "watch is not supported by the sandbox API server",
            ));
        }
        let first = |name: &str| {
            query_values(request, name)
                .into_iter()
                .next()
                .unwrap_or_default()
        };
        let selector = Selector::labels(&first("labelSelector"))?;
        let field_selector = Selector::fields(&first("fieldSelector"))?;
        let rendered: Vec<Value> = self
            .objects
            .iter()
            .filter(|(key, _)| {
                key.kind == kind && namespace.is_none_or(|namespace| key.namespace == namespace)
            })
            .filter(|(_, object)| {
                selector.matches(|key| {
                    objects::field(object, &["metadata", "labels", key]).and_then(Value::as_str)
                }) && field_selector.matches(|key| {
                    let path: Vec<&str> = key.split('.').collect();
                    objects::field(object, &path).and_then(Value::as_str)
                })
            })
            .map(|(_, object)| self.render(kind, object))
            .collect();
        let list_version = self.resource_version.to_string();
        if super::table::wanted(request.accept) {
            return Ok((
                200,
                super::table::table(kind, &rendered, &list_version, now()),
            ));
        }
        let items: Vec<Value> = rendered.into_iter().map(objects::as_list_item).collect();
        Ok((
            200,
            json!({
                "kind": format!("{}List", kind.kind()),
                "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": list_version},
                "items": items,
            }),
        ))
    }

    /// An object as a client reads it (HPA status is derived at read time).
    fn render(&self, kind: Kind, object: &Value) -> Value {
        match kind {
            Kind::Deployment => object.clone(),
            Kind::HorizontalPodAutoscaler => {
                let namespace = objects::field(object, &["metadata", "namespace"])
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let target = objects::field(object, &["spec", "scaleTargetRef", "name"])
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let replicas = self
                    .objects
                    .get(&Key::new(Kind::Deployment, namespace, target))
                    .and_then(objects::deployment_replicas);
                objects::hpa_with_status(object, replicas)
            }
        }
    }

    fn render_subresource(&self, key: &Key, subresource: Subresource, object: &Value) -> Value {
        match subresource {
            Subresource::Scale => objects::scale_of(object),
            Subresource::None | Subresource::Status => self.render(key.kind, object),
        }
    }

    fn item(
        &mut self,
        key: &Key,
        subresource: Subresource,
        request: &Request<'_>,
    ) -> Result<Answer, ApiError> {
        let verb = match request.method {
            "GET" => Verb::Get,
            "PATCH" => Verb::Patch,
            "PUT" => Verb::Update,
            _ => return Err(ApiError::method_not_allowed()),
        };
        if subresource == Subresource::Status && verb != Verb::Get {
            return Err(ApiError::method_not_allowed());
        }
        self.authorize(&Access {
            verb: verb.as_str(),
            resource: key.kind.resource(),
            subresource: subresource.name(),
            namespace: Some(&key.namespace),
            name: Some(&key.name),
        })?;
        let change = match verb {
            Verb::Get | Verb::List | Verb::Create => None,
            Verb::Patch => Some(patch_change(request)?),
            Verb::Update => Some(Change::Replace(json_body(request.body)?)),
        };
        let Some(change) = change else {
            let object = self
                .objects
                .get(key)
                .ok_or_else(|| ApiError::not_found(key.kind.resource(), &key.name))?;
            let rendered = self.render_subresource(key, subresource, object);
            if subresource == Subresource::None && super::table::wanted(request.accept) {
                let version = objects::resource_version(&rendered);
                let table = super::table::table(key.kind, &[rendered], &version, now());
                return Ok((200, table));
            }
            return Ok((200, rendered));
        };
        let options_kind = if verb == Verb::Patch {
            "PatchOptions"
        } else {
            "UpdateOptions"
        };
        let dry_run = dry_run(request, options_kind)?;
        let written = self.write(key, subresource, &change, dry_run)?;
        Ok((200, self.render_subresource(key, subresource, &written)))
    }

    /// A concurrent writer the test arranged for: it bumps the stored resourceVersion.
    fn simulate_concurrent_writer(&mut self, key: &Key) {
        let Some(remaining) = self.pending_conflicts.get_mut(key) else {
            return;
        };
        if *remaining == 0 {
            return;
        }
        *remaining -= 1;
        let resource_version = self.next_resource_version();
        if let Some(object) = self.objects.get_mut(key) {
            objects::set_resource_version(object, &resource_version);
        }
    }

    fn write(
        &mut self,
        key: &Key,
        subresource: Subresource,
        change: &Change,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let not_found = || ApiError::not_found(key.kind.resource(), &key.name);
        if !self.objects.contains_key(key) {
            return Err(not_found());
        }
        if !dry_run {
            self.simulate_concurrent_writer(key);
        }
        let stored = self.objects.get(key).cloned().ok_or_else(not_found)?;
        let stored_version = objects::resource_version(&stored);
        let stored_uid = objects::uid(&stored);
        let check_precondition = |written: &Value| {
            // An empty or absent resourceVersion is an unconditional update, which the apps
            // and autoscaling strategies allow.
            let given = objects::resource_version(written);
            if !given.is_empty() && given != stored_version {
                return Err(ApiError::conflict(key.kind.resource(), &key.name));
            }
            // A PUT body's UID is a precondition (`DefaultUpdatedObjectInfo.Preconditions`);
            // a patch has none, and changing the UID through one fails validation instead.
            let given_uid = objects::uid(written);
            if change.origin() == objects::Origin::Body
                && !given_uid.is_empty()
                && given_uid != stored_uid
            {
                return Err(ApiError::conflict_because(
                    key.kind.resource(),
                    &key.name,
                    &format!(
                        "Precondition failed: UID in precondition: {given_uid}, UID in object meta: {stored_uid}"
                    ),
                ));
            }
            Ok(())
        };
        let candidate = match subresource {
            Subresource::None => {
                let candidate = change.apply(&stored)?;
                objects::check_name(&candidate, &key.namespace, &key.name)?;
                check_precondition(&candidate)?;
                candidate
            }
            Subresource::Scale => {
                let scale = change.apply(&objects::scale_of(&stored))?;
                objects::check_name(&scale, &key.namespace, &key.name)?;
                check_precondition(&scale)?;
                let replicas = objects::scale_replicas(&scale, &key.name, change.origin())?;
                objects::with_replicas(&stored, replicas)
            }
            Subresource::Status => return Err(ApiError::method_not_allowed()),
        };
        let admitted = objects::admit(key.kind, &stored, candidate, change.origin())?;
        // The storage layer skips a write that changes nothing: no new resourceVersion.
        if admitted == stored || dry_run {
            return Ok(admitted);
        }
        let mut persisted = admitted;
        let resource_version = self.next_resource_version();
        objects::set_resource_version(&mut persisted, &resource_version);
        self.objects.insert(key.clone(), persisted.clone());
        Ok(persisted)
    }

    fn self_subject_access_review(&mut self, request: &Request<'_>) -> Result<Answer, ApiError> {
        if request.method != "POST" {
            return Err(ApiError::method_not_allowed());
        }
        const REVIEWS: Qualified = Qualified {
            name: "selfsubjectaccessreviews",
            group: "authorization.k8s.io",
        };
        self.authorize(&Access {
            verb: Verb::Create.as_str(),
            resource: REVIEWS,
            subresource: None,
            namespace: None,
            name: None,
        })?;
        let media_type = request
            .content_type
            .and_then(|content_type| content_type.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        let review = match media_type {
            "application/vnd.kubernetes.protobuf" => {
                super::protobuf::self_subject_access_review(request.body).map_err(|error| {
                    ApiError::bad_request(format!("couldn't decode the protobuf body: {error}"))
                })?
            }
            // kubectl and client libraries send JSON without fuss about the media type.
            _ => json_body(request.body)?,
        };
        dry_run(request, "CreateOptions")?;
        let spec = objects::field(&review, &["spec"])
            .cloned()
            .unwrap_or_else(|| json!({}));
        let resource_attributes = objects::field(&spec, &["resourceAttributes"]);
        let non_resource_attributes = objects::field(&spec, &["nonResourceAttributes"]);
        let allowed = match (resource_attributes, non_resource_attributes) {
            (Some(attributes), None) => {
                let text = |key: &str| {
                    objects::field(attributes, &[key])
                        .and_then(Value::as_str)
                        .unwrap_or("")
                };
                let resource = if text("subresource").is_empty() {
                    text("resource").to_owned()
                } else {
                    format!("{}/{}", text("resource"), text("subresource"))
                };
                !self.is_forbidden(text("verb"), &resource)
            }
            // Non-resource URLs (`/healthz`, `/version`) are never refused by the sandbox.
            (None, Some(_)) => true,
            _ => {
                return Err(ApiError::invalid(
                    Qualified {
                        name: "SelfSubjectAccessReview",
                        group: "authorization.k8s.io",
                    },
                    "",
                    &[super::status::FieldError::invalid(
                        "spec.resourceAttributes",
                        "\"null\"",
                        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    )],
                ));
            }
        };
        Ok((
            201,
            json!({
                "kind": "SelfSubjectAccessReview",
                "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": spec,
                "status": {"allowed": allowed},
            }),
        ))
    }
}

fn now() -> i64 {
    i64::try_from(super::now_seconds()).unwrap_or(i64::MAX)
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {error}"
        ))
    })
}

/// The PATCH body, by its `Content-Type`. A strategic merge patch is applied as a JSON merge
/// patch: for the fields the sandbox models (scalars and maps) the two agree; lists of
/// containers would be replaced rather than merged by name, and `$patch` directives are
/// refused.
fn patch_change(request: &Request<'_>) -> Result<Change, ApiError> {
    let media_type = request
        .content_type
        .and_then(|content_type| content_type.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    let body = || {
        serde_json::from_slice::<Value>(request.body)
            .map_err(|error| ApiError::bad_request(format!("error decoding patch: {error}")))
    };
    match media_type {
        "application/merge-patch+json" => Ok(Change::Merge(body()?)),
        "application/json-patch+json" => {
            let operations = body()?;
            let count = operations.as_array().map_or(0, Vec::len);
            if count > MAX_JSON_PATCH_OPERATIONS {
                return Err(ApiError::too_large(format!(
                    "The allowed maximum operations in a JSON patch is \
                     {MAX_JSON_PATCH_OPERATIONS}, got {count}"
                )));
            }
            Ok(Change::Json(operations))
        }
        "application/strategic-merge-patch+json" => {
            let patch_body = body()?;
            if has_directive(&patch_body) {
                return Err(ApiError::bad_request(
                    "strategic merge patch directives ($patch, $retainKeys, $setElementOrder, \
                     $deleteFromPrimitiveList) are not supported by the sandbox API server",
                ));
            }
            Ok(Change::Merge(patch_body))
        }
        _ => Err(ApiError::unsupported_patch_type(&PATCH_TYPES)),
    }
}

fn has_directive(value: &Value) -> bool {
    match value {
        Value::Object(members) => members
            .iter()
            .any(|(key, value)| key.starts_with('$') || has_directive(value)),
        Value::Array(items) => items.iter().any(has_directive),
        _ => false,
    }
}

fn query_values(request: &Request<'_>, name: &str) -> Vec<String> {
    request
        .query
        .iter()
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .collect()
}

/// `?dryRun=All` (the only value the API defines); anything else fails the options'
/// validation with 422, as `ValidateDryRun` makes the real server do.
fn dry_run(request: &Request<'_>, options_kind: &'static str) -> Result<bool, ApiError> {
    let values = query_values(request, "dryRun");
    if values.iter().any(|value| value != "All") {
        return Err(ApiError::invalid_dry_run(options_kind, &values));
    }
    Ok(!values.is_empty())
}

/// The equality-based selector syntax: `k=v`, `k==v`, `k!=v`, comma-separated, and for
/// label selectors also `k` and `!k`.
struct Selector {
    requirements: Vec<Requirement>,
}

enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// The fields the real server selects deployments and HPAs by.
const SELECTABLE_FIELDS: [&str; 2] = ["metadata.name", "metadata.namespace"];

impl Selector {
    fn labels(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in text
            .split(',')
            .map(str::trim)
            .filter(|term| !term.is_empty())
        {
            if term.contains(' ') || term.contains('(') {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: set-based selector {term:?} is not supported by the sandbox API server"
                )));
            }
            let requirement = match Self::comparison(term) {
                Some(requirement) => requirement,
                None => match term.strip_prefix('!') {
                    Some(key) => Requirement::NotExists(key.to_owned()),
                    None => Requirement::Exists(term.to_owned()),
                },
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    fn fields(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in text
            .split(',')
            .map(str::trim)
            .filter(|term| !term.is_empty())
        {
            let requirement = Self::comparison(term).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ))
            })?;
            let (Requirement::Equals(key, _) | Requirement::NotEquals(key, _)) = &requirement
            else {
                continue;
            };
            if !SELECTABLE_FIELDS.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    fn comparison(term: &str) -> Option<Requirement> {
        if let Some((key, value)) = term.split_once("!=") {
            Some(Requirement::NotEquals(key.to_owned(), value.to_owned()))
        } else if let Some((key, value)) = term.split_once("==") {
            Some(Requirement::Equals(key.to_owned(), value.to_owned()))
        } else {
            term.split_once('=')
                .map(|(key, value)| Requirement::Equals(key.to_owned(), value.to_owned()))
        }
    }

    fn matches<'a>(&self, value: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, expected) => value(key) == Some(expected.as_str()),
                Requirement::NotEquals(key, expected) => value(key) != Some(expected.as_str()),
                Requirement::Exists(key) => value(key).is_some(),
                Requirement::NotExists(key) => value(key).is_none(),
            })
    }
}
