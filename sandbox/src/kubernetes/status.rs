//! meta/v1 `Status` failures, built the way k8s.io/apimachinery's `api/errors` package builds
//! them (`NewNotFound`, `NewForbidden`, `NewConflict`, `NewInvalid`, `NewBadRequest`, ...), so
//! that the messages, reasons and `details` a client sees match the real API server's.

use serde_json::{Map, Value, json};

/// A resource as the error constructors name it: `deployments.apps`, `Deployment.apps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Qualified {
    /// The plural resource (`deployments`) or, for `Invalid`, the kind (`Deployment`).
    pub(crate) name: &'static str,
    /// The API group; empty for the core group.
    pub(crate) group: &'static str,
}

impl Qualified {
    fn text(self) -> String {
        if self.group.is_empty() {
            self.name.to_owned()
        } else {
            format!("{}.{}", self.name, self.group)
        }
    }
}

/// One field error, as `k8s.io/apimachinery/pkg/util/validation/field` renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) problem: FieldProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldProblem {
    /// `Invalid value: VALUE: DETAIL`; `value` is already rendered (`-1`, `"x"`).
    Invalid { value: String, detail: String },
    /// `Required value` or `Required value: DETAIL`.
    Required { detail: Option<String> },
    /// `Unsupported value: VALUE: supported values: "A", "B"`.
    NotSupported {
        value: String,
        supported: Vec<&'static str>,
    },
}

impl FieldError {
    pub(crate) fn invalid(
        field: &str,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.to_owned(),
            problem: FieldProblem::Invalid {
                value: value.into(),
                detail: detail.into(),
            },
        }
    }

    pub(crate) fn required(field: &str) -> Self {
        FieldError {
            field: field.to_owned(),
            problem: FieldProblem::Required { detail: None },
        }
    }

    fn reason(&self) -> &'static str {
        match self.problem {
            FieldProblem::Invalid { .. } => "FieldValueInvalid",
            FieldProblem::Required { .. } => "FieldValueRequired",
            FieldProblem::NotSupported { .. } => "FieldValueNotSupported",
        }
    }

    /// The text without the field, as `field.Error.ErrorBody()` gives it.
    fn body(&self) -> String {
        match &self.problem {
            FieldProblem::Invalid { value, detail } => format!("Invalid value: {value}: {detail}"),
            FieldProblem::Required { detail: None } => "Required value".to_owned(),
            FieldProblem::Required {
                detail: Some(detail),
            } => format!("Required value: {detail}"),
            FieldProblem::NotSupported { value, supported } => {
                let quoted: Vec<String> =
                    supported.iter().map(|value| format!("{value:?}")).collect();
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    quoted.join(", ")
                )
            }
        }
    }
}

/// A failed request: the HTTP code and the `Status` body that goes with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Map<String, Value>>,
}

fn details(name: &str, group: &str, kind: &str) -> Map<String, Value> {
    // StatusDetails' fields are all `omitempty`.
    let mut details = Map::new();
    for (key, value) in [("name", name), ("group", group), ("kind", kind)] {
        if !value.is_empty() {
            details.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
    details
}

impl ApiError {
    /// `errors.NewNotFound`: `deployments.apps "x" not found`.
    pub(crate) fn not_found(resource: Qualified, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} {name:?} not found", resource.text()),
            details: Some(details(name, resource.group, resource.name)),
        }
    }

    /// The answer for a path no handler serves.
    pub(crate) fn path_not_found() -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".to_owned(),
            details: Some(Map::new()),
        }
    }

    /// `responsewriters.Forbidden` for a namespaced resource request denied by the authorizer.
    pub(crate) fn forbidden(access: &Access<'_>) -> Self {
        let resource_text = match access.subresource {
            Some(subresource) => format!("{}/{subresource}", access.resource.name),
            None => access.resource.name.to_owned(),
        };
        let scope = match access.namespace {
            Some(namespace) => format!("in the namespace {namespace:?}"),
            None => "at the cluster scope".to_owned(),
        };
        let reason = format!(
            "User {:?} cannot {} resource {resource_text:?} in API group {:?} {scope}",
            super::USER,
            access.verb,
            access.resource.group
        );
        let name = access.name.unwrap_or("");
        let message = if name.is_empty() {
            format!("{} is forbidden: {reason}", access.resource.text())
        } else {
            format!("{} {name:?} is forbidden: {reason}", access.resource.text())
        };
        ApiError {
            code: 403,
            reason: "Forbidden",
            message,
            details: Some(details(name, access.resource.group, access.resource.name)),
        }
    }

    /// `errors.NewConflict` with the storage layer's optimistic-concurrency message.
    pub(crate) fn conflict(resource: Qualified, name: &str) -> Self {
        ApiError::conflict_because(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and \
             try again",
        )
    }

    /// `errors.NewConflict` with another cause (a failed UID precondition).
    pub(crate) fn conflict_because(resource: Qualified, name: &str, cause: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} {name:?}: {cause}",
                resource.text()
            ),
            details: Some(details(name, resource.group, resource.name)),
        }
    }

    /// `errors.NewInvalid`: `Deployment.apps "x" is invalid: spec.replicas: Invalid value: ...`.
    pub(crate) fn invalid(kind: Qualified, name: &str, errors: &[FieldError]) -> Self {
        let rendered: Vec<String> = errors
            .iter()
            .map(|error| format!("{}: {}", error.field, error.body()))
            .collect();
        let summary = match rendered.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|error| {
                json!({"reason": error.reason(), "message": error.body(), "field": error.field})
            })
            .collect();
        let mut details = details(name, kind.group, kind.name);
        details.insert("causes".to_owned(), Value::Array(causes));
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} {name:?} is invalid: {summary}", kind.text()),
            details: Some(details),
        }
    }

    /// An unsupported `dryRun` value, which the real server refuses while validating the
    /// request's options (`PatchOptions`, `UpdateOptions`, `CreateOptions`) — as 422, not 400.
    pub(crate) fn invalid_dry_run(options_kind: &'static str, values: &[String]) -> Self {
        let quoted: Vec<String> = values.iter().map(|value| format!("{value:?}")).collect();
        let error = FieldError {
            field: "dryRun".to_owned(),
            problem: FieldProblem::NotSupported {
                value: format!("[]string{{{}}}", quoted.join(", ")),
                supported: vec!["All"],
            },
        };
        ApiError::invalid(
            Qualified {
                name: options_kind,
                group: "meta.k8s.io",
            },
            "",
            &[error],
        )
    }

    /// `errors.NewGenericServerResponse(422, ...)`, which the patch handler returns when a
    /// JSON patch does not apply (a failed `test`, a missing path).
    pub(crate) fn patch_not_applicable(cause: &str) -> Self {
        let mut details = Map::new();
        details.insert(
            "causes".to_owned(),
            json!([{"reason": "UnexpectedServerResponse", "message": cause}]),
        );
        ApiError {
            code: 422,
            reason: "Invalid",
            message: "the server rejected our request due to an error in our request".to_owned(),
            details: Some(details),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// `errors.NewRequestEntityTooLargeError`.
    pub(crate) fn too_large(message: String) -> Self {
        ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!("Request entity too large: {message}"),
            details: None,
        }
    }

    pub(crate) fn unauthorized() -> Self {
        ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".to_owned(),
            details: None,
        }
    }

    /// `negotiation.NewUnsupportedMediaTypeError` for a PATCH body type the server does not
    /// take.
    pub(crate) fn unsupported_patch_type(accepted: &[&str]) -> Self {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            details: None,
        }
    }

    pub(crate) fn method_not_allowed() -> Self {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".to_owned(),
            details: Some(Map::new()),
        }
    }

    /// The `Status` object sent as the response body.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = Map::new();
        status.insert("kind".to_owned(), json!("Status"));
        status.insert("apiVersion".to_owned(), json!("v1"));
        status.insert("metadata".to_owned(), json!({}));
        status.insert("status".to_owned(), json!("Failure"));
        status.insert("message".to_owned(), json!(self.message));
        status.insert("reason".to_owned(), json!(self.reason));
        if let Some(details) = &self.details {
            status.insert("details".to_owned(), Value::Object(details.clone()));
        }
        status.insert("code".to_owned(), json!(self.code));
        Value::Object(status)
    }
}

/// What an authorizer is asked about one request (the fields of `authorizer.Attributes` that
/// the forbidden message uses).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'a> {
    pub(crate) verb: &'a str,
    pub(crate) resource: Qualified,
    pub(crate) subresource: Option<&'a str>,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) name: Option<&'a str>,
}
