//! An in-process Kubernetes API server for tests: an axum HTTP/1 server on loopback that the
//! real `kube` client and the real `kubectl` talk to, holding apps/v1 Deployments and
//! autoscaling/v2 HorizontalPodAutoscalers that a test creates and inspects directly
//! ([`ApiServer::add_deployment`], [`ApiServer::replicas`], ...).
//!
//! # Served
//!
//! - `GET /version`; legacy discovery: `GET /api`, `/api/v1`, `/apis`, `/apis/apps/v1`,
//!   `/apis/autoscaling/v2`, `/apis/autoscaling/v1`, `/apis/authorization.k8s.io/v1`.
//! - Deployments: `GET /apis/apps/v1/namespaces/{ns}/deployments` (and across namespaces at
//!   `/apis/apps/v1/deployments`), `GET|PATCH|PUT .../deployments/{name}`,
//!   `GET|PATCH|PUT .../deployments/{name}/scale` (autoscaling/v1 Scale),
//!   `GET .../deployments/{name}/status`.
//! - HPAs: `GET /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers`,
//!   `GET|PATCH|PUT .../horizontalpodautoscalers/{name}`, `GET .../{name}/status`.
//! - `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
//!
//! # Faithful to the real API server
//!
//! Following the API conventions
//! (<https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md>)
//! and the API reference (<https://kubernetes.io/docs/reference/kubernetes-api/>):
//!
//! - JSON shapes of Deployment, DeploymentList, Scale, HorizontalPodAutoscaler(List),
//!   SelfSubjectAccessReview, APIResourceList, APIGroupList, version.Info; list items carry
//!   no `kind`/`apiVersion`; `int32` status fields that are zero are omitted (`omitempty`).
//! - Defaults: `spec.replicas` 1, the RollingUpdate strategy, `revisionHistoryLimit` 10,
//!   `progressDeadlineSeconds` 600; HPA `minReplicas` 1 and the 80% CPU metric when `metrics`
//!   is empty. Defaults are re-applied after every write (a patch setting `minReplicas: null`
//!   reads back as 1).
//! - Optimistic concurrency: one resourceVersion counter for the server; a write that
//!   persists a change gets a new one; a PUT or PATCH whose result carries a
//!   `metadata.resourceVersion` different from the stored one gets 409 `Conflict` with the
//!   storage layer's message; an empty one is an unconditional update (allowed for these
//!   resources). A write that changes nothing is not persisted and keeps its
//!   resourceVersion. Writes to the scale subresource are checked against the deployment's
//!   resourceVersion and reported as conflicts on `deployments.apps`.
//! - `metadata.generation` bumps when the spec or the annotations of a deployment change
//!   (a replica change, a `spec.template` change such as `kubectl rollout restart`'s
//!   `kubectl.kubernetes.io/restartedAt` annotation); writes to status, `creationTimestamp`
//!   and `generation` through the main resource are ignored. A PUT body's `metadata.uid` is a
//!   precondition (409 "Precondition failed: UID in precondition: ..."); a patch changing it
//!   is 422 (`metadata.uid: ... field is immutable`).
//! - Errors are `Status` objects built like apimachinery's `api/errors`: 404 `NotFound`
//!   (`deployments.apps "x" not found`), 403 `Forbidden` (the authorizer's message), 409
//!   `Conflict`, 422 `Invalid` with `details.causes` (negative replicas, `minReplicas < 1`,
//!   `maxReplicas < minReplicas`, a selector that does not match the template labels or
//!   that changed; a patch whose result does not decode, e.g. `replicas: "three"`, is
//!   reported as the real patch handler does, as Invalid on the field `patch`), 400
//!   `BadRequest` (a body that is not JSON, a mistyped field in a PUT body, a body whose
//!   `metadata.name` differs from the URL's — the real `checkName` answers 400 for this, also
//!   for a patch that renames), 401 `Unauthorized`, 413 `RequestEntityTooLarge` for a JSON
//!   patch of more than 10 000 operations, 415 `UnsupportedMediaType` for other PATCH types,
//!   405 `MethodNotAllowed`.
//! - A JSON patch whose operation does not apply (a failed `test`, a missing path) is 422
//!   `Invalid` with the message "the server rejected our request due to an error in our
//!   request" and the json-patch library's text as the cause, as the real patch handler's
//!   `NewGenericServerResponse(422, ...)` does.
//! - `?dryRun=All` validates and answers the would-be result and persists nothing; another
//!   value fails the options' validation with 422 (`PatchOptions.meta.k8s.io "" is invalid:
//!   dryRun: Unsupported value: ...`), as the real server's `ValidateDryRun` does — not 400.
//! - Authorization ([`ApiServer::forbid`]) is checked before the object is looked up, so a
//!   refused request on a missing object is 403, not 404; subresources are separate RBAC
//!   resources (refusing `patch` on `deployments` does not refuse `deployments/scale`).
//!
//! # Simplified
//!
//! - No controllers: deployment status follows `spec.replicas` at once (every replica
//!   updated, ready and available, conditions Available and Progressing true) with
//!   `observedGeneration` equal to `generation`. HPAs scale nothing; their status is derived
//!   at read time from the target deployment's `spec.replicas`.
//! - A strategic merge patch is applied as a JSON merge patch (the same result for the
//!   scalars and maps modelled; lists such as `containers` are replaced, not merged by key);
//!   `$patch`-style directives are refused with 400. Server-side apply
//!   (`application/apply-patch+yaml`) is refused with 415. No `managedFields`.
//! - No create, delete or watch (a watch is refused with 400; `kubectl rollout status`
//!   still succeeds from its initial list, logging the refused watch on stderr); no OpenAPI
//!   documents. Discovery lists only what is served, with the verbs served;
//!   `autoscaling/v1` is listed for clients that look for it, but only `autoscaling/v2` HPAs
//!   are served.
//! - Answers are always JSON. Protobuf is read only for SelfSubjectAccessReview bodies (what
//!   `kubectl auth can-i` sends). Tables (`kubectl get` without `-o`) are served for GETs of
//!   deployments and HPAs with the real printers' columns (see `table`).
//! - Bodies are limited to axum's default 2 MiB (the real limit is 3 MiB); a larger one gets
//!   axum's plain-text 413, not a Status.
//! - Unknown fields in a body are kept rather than pruned; validation covers the fields
//!   listed above, not the whole pod template.
//! - Selectors: equality-based only (`=`, `==`, `!=`, and for labels `k`, `!k`); field
//!   selectors on `metadata.name` and `metadata.namespace`, others 400 as on the real server.
//! - One port serves plain HTTP ([`ApiServer::url`]) and HTTPS ([`ApiServer::kubeconfig`],
//!   a fixed test certificate for 127.0.0.1), told apart by the first byte; see `listener`.
//! - One user (`medic`) with one bearer token; `/version` and the health paths are open to
//!   anonymous requests.
//! - The request log keeps the latest 100 000 requests.

mod api;
mod discovery;
mod listener;
mod objects;
mod patch;
mod protobuf;
mod status;
mod table;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::api::Key;
use self::objects::Kind;

/// The user the bearer token authenticates as, named in forbidden messages.
const USER: &str = "medic";
/// The one bearer token the server accepts.
const TOKEN: &str = "medic-sandbox-token";

/// One request the server received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there was none.
    pub query: String,
    pub content_type: Option<String>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
}

type Shared = Arc<Mutex<api::State>>;

/// The running server. Dropping it (or [`ApiServer::stop`]) shuts it down.
pub struct ApiServer {
    shared: Shared,
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    acceptor: tokio::task::AbortHandle,
}

fn lock(shared: &Shared) -> MutexGuard<'_, api::State> {
    // No code path panics while holding the lock; if one ever did, the state is still the
    // last consistent one (every write replaces whole objects).
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ApiServer {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> std::io::Result<ApiServer> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64)
            ^ u64::from(address.port());
        let shared: Shared = Arc::new(Mutex::new(api::State::new(
            address.to_string(),
            TOKEN.to_owned(),
            seed,
        )));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (incoming, acceptor) = listener::incoming(listener)?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(incoming, app)
                .with_graceful_shutdown(async {
                    // A dropped sender is a shutdown too.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "kubernetes sandbox server failed");
            }
        });
        Ok(ApiServer {
            shared,
            address,
            shutdown: Some(shutdown),
            task: Some(task),
            acceptor: acceptor.abort_handle(),
        })
    }

    /// Stops accepting, lets open connections finish (at most five seconds) and returns.
    pub async fn stop(mut self) {
        self.acceptor.abort();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The bearer token the server accepts (the one [`ApiServer::kubeconfig`] carries).
    pub fn token(&self) -> &'static str {
        TOKEN
    }

    /// A kubeconfig pointing at this server over TLS (`https://127.0.0.1:PORT`, the sandbox
    /// CA in `certificate-authority-data`; TLS because client-go sends tokens only over TLS):
    /// cluster `sandbox`, user `medic` with the bearer token, context `sandbox` (namespace
    /// `default`), the current context.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: sandbox\n  cluster:\n    server: https://{address}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: {USER}\n  user:\n    token: {TOKEN}\n\
             contexts:\n\
             - name: sandbox\n  context:\n    cluster: sandbox\n    user: {USER}\n    namespace: default\n\
             current-context: sandbox\n\
             preferences: {{}}\n",
            address = self.address,
            ca = listener::base64(listener::CA_PEM.as_bytes()),
        )
    }

    /// The CA certificate (PEM) that signed the server's TLS certificate.
    pub fn ca_pem(&self) -> &'static str {
        listener::CA_PEM
    }

    fn system_fields(state: &mut api::State) -> objects::SystemFields {
        objects::SystemFields {
            uid: state.next_uid(),
            created: now_rfc3339(),
            resource_version: state.next_resource_version(),
        }
    }

    /// Creates (or replaces) a deployment labelled and selected by `app: NAME` with one
    /// container. `None` omits `spec.replicas`, which the server defaults to 1.
    pub fn add_deployment(&self, namespace: &str, name: &str, replicas: Option<i32>) {
        let mut state = lock(&self.shared);
        let system = Self::system_fields(&mut state);
        let deployment = objects::new_deployment(namespace, name, replicas, system);
        state
            .objects
            .insert(Key::new(Kind::Deployment, namespace, name), deployment);
    }

    /// Creates (or replaces) an HPA scaling `target_deployment`; `None` omits `minReplicas`
    /// (defaulted to 1).
    pub fn add_hpa(
        &self,
        namespace: &str,
        name: &str,
        target_deployment: &str,
        min: Option<i32>,
        max: i32,
    ) {
        self.insert_hpa(
            namespace,
            name,
            objects::HpaSpec {
                target_deployment,
                min,
                max,
                keda_owner: None,
            },
        );
    }

    /// Creates (or replaces) an HPA as KEDA's operator writes it for a ScaledObject: owned
    /// (`controller: true`) by a `keda.sh/v1alpha1` ScaledObject named after the HPA without
    /// KEDA's `keda-hpa-` prefix, with KEDA's labels and an External metric.
    pub fn add_keda_hpa(
        &self,
        namespace: &str,
        name: &str,
        target_deployment: &str,
        min: i32,
        max: i32,
    ) {
        let owner = name.strip_prefix("keda-hpa-").unwrap_or(name).to_owned();
        let owner_uid = lock(&self.shared).next_uid();
        self.insert_hpa(
            namespace,
            name,
            objects::HpaSpec {
                target_deployment,
                min: Some(min),
                max,
                keda_owner: Some((owner, owner_uid)),
            },
        );
    }

    fn insert_hpa(&self, namespace: &str, name: &str, hpa: objects::HpaSpec<'_>) {
        let mut state = lock(&self.shared);
        let system = Self::system_fields(&mut state);
        let object = objects::new_hpa(namespace, name, hpa, system);
        state.objects.insert(
            Key::new(Kind::HorizontalPodAutoscaler, namespace, name),
            object,
        );
    }

    fn read<T>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        read: impl Fn(&serde_json::Value) -> Option<T>,
    ) -> Option<T> {
        lock(&self.shared)
            .objects
            .get(&Key::new(kind, namespace, name))
            .and_then(read)
    }

    /// The deployment's `spec.replicas`.
    pub fn replicas(&self, namespace: &str, name: &str) -> Option<i32> {
        self.read(
            Kind::Deployment,
            namespace,
            name,
            objects::deployment_replicas,
        )
    }

    /// The HPA's `spec.minReplicas`.
    pub fn hpa_min(&self, namespace: &str, name: &str) -> Option<i32> {
        self.read(
            Kind::HorizontalPodAutoscaler,
            namespace,
            name,
            objects::hpa_min,
        )
    }

    /// The deployment's `spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]`.
    pub fn restarted_at(&self, namespace: &str, name: &str) -> Option<String> {
        self.read(Kind::Deployment, namespace, name, |object| {
            objects::field(
                object,
                &[
                    "spec",
                    "template",
                    "metadata",
                    "annotations",
                    "kubectl.kubernetes.io/restartedAt",
                ],
            )
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
        })
    }

    /// The deployment's `metadata.resourceVersion`.
    pub fn resource_version(&self, namespace: &str, name: &str) -> Option<String> {
        self.read(Kind::Deployment, namespace, name, |object| {
            Some(objects::resource_version(object))
        })
    }

    /// The deployment as a client would read it.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<serde_json::Value> {
        self.read(Kind::Deployment, namespace, name, |object| {
            Some(object.clone())
        })
    }

    fn change(&self, key: &Key, change: impl FnOnce(&serde_json::Value) -> serde_json::Value) {
        let mut state = lock(&self.shared);
        let Some(stored) = state.objects.get(key) else {
            return;
        };
        let Ok(mut changed) =
            objects::admit(key.kind, stored, change(stored), objects::Origin::Body)
        else {
            return;
        };
        if changed == *stored {
            return;
        }
        let resource_version = state.next_resource_version();
        objects::set_resource_version(&mut changed, &resource_version);
        state.objects.insert(key.clone(), changed);
    }

    /// "A human changed it": sets `spec.replicas` as another client's write would (new
    /// resourceVersion and generation). A value the server would refuse is ignored.
    pub fn set_replicas(&self, namespace: &str, name: &str, replicas: i32) {
        let key = Key::new(Kind::Deployment, namespace, name);
        self.change(&key, |stored| objects::with_replicas(stored, replicas));
    }

    /// Sets the HPA's `spec.minReplicas` as another client's write would. A value the server
    /// would refuse is ignored.
    pub fn set_hpa_min(&self, namespace: &str, name: &str, min: i32) {
        let key = Key::new(Kind::HorizontalPodAutoscaler, namespace, name);
        self.change(&key, |stored| {
            let mut changed = stored.clone();
            patch::merge(
                &mut changed,
                &serde_json::json!({"spec": {"minReplicas": min}}),
            );
            changed
        });
    }

    /// The next `times` writes (PUT/PATCH, not dry-run) to this object first see a concurrent
    /// writer: the stored resourceVersion is bumped before the write is checked, so a write
    /// carrying the old resourceVersion gets 409 Conflict (one without a resourceVersion
    /// succeeds, as on the real server). Applies to the deployment and to the HPA of that
    /// name, each counting its own writes; writes to `deployments/NAME/scale` count as writes
    /// to the deployment.
    pub fn conflict_next_writes(&self, namespace: &str, name: &str, times: u32) {
        let mut state = lock(&self.shared);
        for kind in [Kind::Deployment, Kind::HorizontalPodAutoscaler] {
            state
                .pending_conflicts
                .insert(Key::new(kind, namespace, name), times);
        }
    }

    /// RBAC: refuses `verb` (`get`, `list`, `patch`, `update`, `create`, or `*`) on `resource`
    /// (`deployments`, `deployments/scale`, `horizontalpodautoscalers`, or `*`) with 403
    /// Forbidden; SelfSubjectAccessReviews for it answer `allowed: false`.
    pub fn forbid(&self, verb: &str, resource: &str) {
        lock(&self.shared)
            .forbidden
            .insert((verb.to_owned(), resource.to_owned()));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).recorded.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.acceptor.abort();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let authorization = header_text(header::AUTHORIZATION);
    let accept = header_text(header::ACCEPT);
    let mut state = lock(&shared);
    state.record(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let answer = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(query)) => state.handle(&api::Request {
            method: method.as_str(),
            path: uri.path(),
            query,
            content_type: content_type.as_deref(),
            authorization: authorization.as_deref(),
            accept: accept.as_deref(),
            body: &body,
        }),
        Err(error) => Err(status::ApiError::bad_request(format!(
            "invalid query string: {error}"
        ))),
    };
    drop(state);
    let (code, body) = match answer {
        Ok(answer) => answer,
        Err(error) => (error.code, error.to_status()),
    };
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Seconds since the Unix epoch.
fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what [`now_rfc3339`] writes) as seconds since the Unix epoch.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    if text.len() != 20 || text.get(19..) != Some("Z") {
        return None;
    }
    let days = days_from_civil(number(0..4)?, number(5..7)?, number(8..10)?);
    Some(days * 86_400 + number(11..13)? * 3600 + number(14..16)? * 60 + number(17..19)?)
}

/// Howard Hinnant's `days_from_civil`, the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The current time as RFC 3339 in UTC with second precision, as `metav1.Time` renders it.
fn now_rfc3339() -> String {
    let seconds = now_seconds();
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::{civil_from_days, days_from_civil, parse_rfc3339};

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            parse_rfc3339("2025-12-01T01:02:03Z"),
            Some(20_423 * 86_400 + 3723)
        );
        assert_eq!(parse_rfc3339("2025-12-01"), None);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_423), (2025, 12, 1));
    }
}
