//! `k8s.deployment`, `k8s.scale`, `k8s.scale_to` and `k8s.restart`.
//!
//! What is guaranteed:
//! - names are checked as DNS-1123 before any request, so alert data cannot make up a path;
//! - a scale computes its target from what it read (never "add one" blindly), clamps it to
//!   `min`..`max`, never moves the count against the direction asked (a scale-up of a
//!   Deployment already above `max` leaves it alone) and writes it conditionally: the write
//!   carries the resourceVersion it was computed from, and a 409 Conflict is read again and
//!   recomputed, at most [`MAX_ATTEMPTS`] times;
//! - when an `autoscaling/v2` HorizontalPodAutoscaler targets the Deployment, its
//!   `minReplicas` is raised instead (clamped to its `maxReplicas` and to `max`) and
//!   `spec.replicas` is left to the HPA, which would fight and undo a direct write; an HPA
//!   controlled by something else (a KEDA ScaledObject) is not touched: the task fails
//!   saying what owns it;
//! - a revert restores what Medic changed only if it still has the value Medic wrote
//!   (compare-and-set); otherwise it needs a human, with both values in its detail;
//! - a dry run asks the API server (`dryRun=All`), so the report says what the server would
//!   have done and that it would have allowed it;
//! - every call has a deadline ([`KubernetesConfig`]'s timeout, retries included).
//!
//! The API server sits behind [`Cluster`]: [`client::KubeCluster`] is the real one.

pub mod client;
pub mod names;

pub use client::{KubeCluster, KubernetesConfig};

use super::args::{ArgError, Args};
use crate::executor::CallError;
use medic_compiler::plan::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Attempts of one conditional write when the object keeps changing under it.
pub const MAX_ATTEMPTS: u32 = 4;

/// A call's deadline when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The RBAC permissions the adapter needs, as (verb, API group, resource): what
/// `medic doctor` asks the API server about and what docs/kubernetes.md grants.
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("get", "apps", "deployments"),
    ("patch", "apps", "deployments"),
    ("get", "apps", "deployments/scale"),
    ("patch", "apps", "deployments/scale"),
    ("list", "autoscaling", "horizontalpodautoscalers"),
    ("get", "autoscaling", "horizontalpodautoscalers"),
    ("patch", "autoscaling", "horizontalpodautoscalers"),
];

pub type ClusterFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ClusterError>> + Send + 'a>>;

/// A namespaced object, its names already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Object {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.namespace, self.name)
    }
}

/// A Deployment as `k8s.deployment` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub replicas: i32,
    pub ready: i32,
}

/// A Deployment's `scale` subresource: the desired replicas and the version they are at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    pub replicas: i32,
    pub version: String,
}

/// A HorizontalPodAutoscaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscaler {
    pub name: String,
    pub min: i32,
    pub max: i32,
    pub version: String,
    /// What controls it, in words, when a controller owns it (a KEDA ScaledObject).
    pub controller: Option<String>,
}

/// The answer of a SelfSubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub allowed: bool,
    pub reason: Option<String>,
}

/// What the adapter asks of an API server. Writes carry the resourceVersion they were
/// computed from and fail with [`ClusterError::Conflict`] when it is stale.
pub trait Cluster: Send + Sync {
    fn deployment<'a>(&'a self, object: &'a Object) -> ClusterFuture<'a, Workload>;
    fn replicas<'a>(&'a self, object: &'a Object) -> ClusterFuture<'a, Replicas>;
    /// The HPA whose `scaleTargetRef` is the Deployment, if any (two are an error).
    fn autoscaler_of<'a>(&'a self, object: &'a Object) -> ClusterFuture<'a, Option<Autoscaler>>;
    fn autoscaler<'a>(&'a self, namespace: &'a str, name: &'a str)
    -> ClusterFuture<'a, Autoscaler>;
    /// Writes `spec.replicas` through the scale subresource; the replicas it now has.
    fn write_replicas<'a>(
        &'a self,
        object: &'a Object,
        replicas: i32,
        version: &'a str,
        dry_run: bool,
    ) -> ClusterFuture<'a, i32>;
    /// Writes an HPA's `minReplicas`; the value it now has.
    fn write_autoscaler_min<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        min: i32,
        version: &'a str,
        dry_run: bool,
    ) -> ClusterFuture<'a, i32>;
    /// A rollout restart: the pod template's `kubectl.kubernetes.io/restartedAt`.
    fn restart<'a>(
        &'a self,
        object: &'a Object,
        stamp: &'a str,
        dry_run: bool,
    ) -> ClusterFuture<'a, ()>;
    /// Whether this client may `verb` `resource` (`deployments/scale` for a subresource).
    fn can_i<'a>(
        &'a self,
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> ClusterFuture<'a, Access>;
}

/// What an API server answered, or why it did not.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClusterError {
    #[error("RBAC refused `{verb}` on {resource}: {message}")]
    Forbidden {
        verb: String,
        resource: String,
        message: String,
    },
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    Conflict { message: String },
    #[error("the API server refused the change as invalid: {message}")]
    Invalid { message: String },
    #[error("the API server did not accept Medic's credentials: {message}")]
    Unauthorized { message: String },
    #[error("the API server answered {code} {reason}: {message}")]
    Refused {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{0}")]
    Ambiguous(String),
    #[error("the API server could not be reached: {0}")]
    Unreachable(String),
    #[error("the API server's answer could not be read: {0}")]
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KubernetesError {
    #[error("no Kubernetes cluster is configured ([kubernetes] in medic.toml)")]
    NotConfigured,
    #[error(transparent)]
    Argument(#[from] ArgError),
    #[error("`{function}`: {what} {name:?} is not a valid Kubernetes name: {reason}")]
    BadName {
        function: String,
        what: &'static str,
        name: String,
        reason: String,
    },
    #[error("`{function}`: {reason}")]
    BadArgument { function: String, reason: String },
    #[error("{doing}: {source}")]
    Cluster {
        doing: String,
        #[source]
        source: ClusterError,
    },
    #[error("{doing}: the object changed {attempts} times while Medic was writing it; gave up")]
    KeptChanging { doing: String, attempts: u32 },
    #[error(
        "{doing}: its HorizontalPodAutoscaler {hpa:?} is controlled by {controller}; Medic does not patch it (change the controller's own minimum instead)"
    )]
    Controlled {
        doing: String,
        hpa: String,
        controller: String,
    },
    #[error("`{function}` did not finish within {after:?}")]
    TimedOut { function: String, after: Duration },
    /// A revert found the value changed since Medic wrote it.
    #[error("{0}")]
    ChangedSince(String),
}

impl From<KubernetesError> for CallError {
    fn from(error: KubernetesError) -> CallError {
        match error {
            KubernetesError::ChangedSince(detail) => CallError::NeedsAttention(detail),
            other => CallError::Failed(other.to_string()),
        }
    }
}

/// How a scale picks its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    By(i64),
    To(i64),
}

/// The decoded arguments of `k8s.scale` and `k8s.scale_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleRequest {
    function: String,
    object: Object,
    target: Target,
    min: i32,
    max: i32,
}

fn object(function: &str, args: &mut Args, name_arg: &str) -> Result<Object, KubernetesError> {
    let name = args.string(name_arg)?;
    let namespace = args.string("namespace")?;
    let bad = |what: &'static str, name: &str, reason: String| KubernetesError::BadName {
        function: function.to_string(),
        what,
        name: name.to_string(),
        reason,
    };
    names::dns1123_subdomain(&name).map_err(|reason| bad("deployment", &name, reason))?;
    names::dns1123_label(&namespace).map_err(|reason| bad("namespace", &namespace, reason))?;
    Ok(Object { namespace, name })
}

fn replicas_arg(function: &str, name: &str, value: i64) -> Result<i32, KubernetesError> {
    i32::try_from(value)
        .ok()
        .filter(|value| *value >= 0)
        .ok_or_else(|| KubernetesError::BadArgument {
            function: function.to_string(),
            reason: format!("`{name}` is {value}: it must be between 0 and {}", i32::MAX),
        })
}

impl ScaleRequest {
    pub fn decode(
        function: &str,
        values: BTreeMap<String, Value>,
    ) -> Result<ScaleRequest, KubernetesError> {
        let mut args = Args::new(function, values);
        let object = object(function, &mut args, "deployment")?;
        let target = if function == "k8s.scale_to" {
            Target::To(args.int("replicas")?)
        } else {
            Target::By(args.int("by")?)
        };
        let min = replicas_arg(function, "min", args.int("min")?)?;
        let max = replicas_arg(function, "max", args.int("max")?)?;
        args.finish()?;
        if min > max {
            return Err(KubernetesError::BadArgument {
                function: function.to_string(),
                reason: format!("`min` ({min}) is more than `max` ({max})"),
            });
        }
        if let Target::To(replicas) = target {
            replicas_arg(function, "replicas", replicas)?;
        }
        Ok(ScaleRequest {
            function: function.to_string(),
            object,
            target,
            min,
            max,
        })
    }

    /// The count to write, from the one read, clamped to `floor..=ceiling`, and never
    /// moved against the direction asked.
    fn target(&self, current: i32, base: i32, floor: i32, ceiling: i32) -> i32 {
        let wanted = match self.target {
            Target::By(by) => i64::from(base).saturating_add(by),
            Target::To(replicas) => replicas,
        };
        let clamped = wanted.clamp(i64::from(floor), i64::from(ceiling.max(floor)));
        let clamped = i32::try_from(clamped).unwrap_or(ceiling);
        match self.target {
            Target::By(by) if by > 0 && clamped < current => current,
            Target::By(by) if by < 0 && clamped > current => current,
            Target::By(0) => current,
            _ => clamped,
        }
    }
}

/// What a scale did, as the `k8s.ScaleResult` record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scaled {
    from: i32,
    to: i32,
    /// The HPA whose minReplicas was written; none: spec.replicas was.
    autoscaler: Option<String>,
    summary: String,
}

impl Scaled {
    fn value(self) -> Value {
        let mut fields = BTreeMap::new();
        fields.insert("from".to_string(), Value::Int(i64::from(self.from)));
        fields.insert("to".to_string(), Value::Int(i64::from(self.to)));
        fields.insert("changed".to_string(), Value::Bool(self.from != self.to));
        fields.insert(
            "autoscaler".to_string(),
            Value::String(self.autoscaler.unwrap_or_default()),
        );
        fields.insert("summary".to_string(), Value::String(self.summary));
        Value::Record(Arc::new(fields))
    }

    /// Reads back a journaled `k8s.ScaleResult` for its revert.
    fn read(output: &Value) -> Result<Scaled, String> {
        let Value::Record(fields) = output else {
            return Err(format!(
                "the output is {}, not a ScaleResult",
                output.type_name()
            ));
        };
        let int = |name: &str| match fields.get(name) {
            Some(Value::Int(value)) => {
                i32::try_from(*value).map_err(|_| format!("its `{name}` is out of range"))
            }
            _ => Err(format!("the output has no `{name}` count")),
        };
        let autoscaler = match fields.get("autoscaler") {
            Some(Value::String(name)) if name.is_empty() => None,
            Some(Value::String(name)) => Some(name.clone()),
            _ => return Err("the output does not say what was written (`autoscaler`)".into()),
        };
        Ok(Scaled {
            from: int("from")?,
            to: int("to")?,
            autoscaler,
            summary: String::new(),
        })
    }
}

/// The Kubernetes adapter: the stdlib functions over one [`Cluster`].
pub struct Kubernetes {
    cluster: Arc<dyn Cluster>,
    timeout: Duration,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Kubernetes")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Kubernetes {
    pub fn new(cluster: Arc<dyn Cluster>, timeout: Duration) -> Kubernetes {
        Kubernetes { cluster, timeout }
    }

    pub fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.cluster
    }

    /// Runs `function`; with `dry_run`, writes are sent with `dryRun=All`.
    pub async fn call(
        &self,
        function: &str,
        args: BTreeMap<String, Value>,
        dry_run: bool,
    ) -> Result<Value, KubernetesError> {
        let work = async {
            match function {
                "k8s.deployment" => self.deployment(args).await,
                "k8s.scale" | "k8s.scale_to" => {
                    let request = ScaleRequest::decode(function, args)?;
                    self.scale(&request, dry_run).await.map(Scaled::value)
                }
                "k8s.restart" => self.restart(args, dry_run).await,
                other => Err(KubernetesError::BadArgument {
                    function: other.to_string(),
                    reason: "not a function of the Kubernetes adapter".into(),
                }),
            }
        };
        self.within(function, work).await
    }

    async fn within<T>(
        &self,
        function: &str,
        work: impl Future<Output = Result<T, KubernetesError>>,
    ) -> Result<T, KubernetesError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(KubernetesError::TimedOut {
                    function: function.to_string(),
                    after: self.timeout,
                })
            })
    }

    async fn deployment(&self, values: BTreeMap<String, Value>) -> Result<Value, KubernetesError> {
        let mut args = Args::new("k8s.deployment", values);
        let object = object("k8s.deployment", &mut args, "name")?;
        args.finish()?;
        let doing = |source| KubernetesError::Cluster {
            doing: format!("cannot read deployment {object}"),
            source,
        };
        let workload = self.cluster.deployment(&object).await.map_err(doing)?;
        let autoscaled = self
            .cluster
            .autoscaler_of(&object)
            .await
            .map_err(doing)?
            .is_some();
        let mut fields = BTreeMap::new();
        fields.insert("name".to_string(), Value::String(object.name.clone()));
        fields.insert(
            "namespace".to_string(),
            Value::String(object.namespace.clone()),
        );
        fields.insert(
            "replicas".to_string(),
            Value::Int(i64::from(workload.replicas)),
        );
        fields.insert("ready".to_string(), Value::Int(i64::from(workload.ready)));
        fields.insert("autoscaled".to_string(), Value::Bool(autoscaled));
        Ok(Value::Record(Arc::new(fields)))
    }

    async fn scale(
        &self,
        request: &ScaleRequest,
        dry_run: bool,
    ) -> Result<Scaled, KubernetesError> {
        let object = &request.object;
        let doing = format!("cannot scale deployment {object}");
        let failed = |source| KubernetesError::Cluster {
            doing: doing.clone(),
            source,
        };
        let preview = if dry_run {
            " (dry run: the API server accepted it)"
        } else {
            ""
        };
        for _ in 0..MAX_ATTEMPTS {
            let written = match self.cluster.autoscaler_of(object).await.map_err(failed)? {
                Some(hpa) => {
                    if let Some(controller) = hpa.controller {
                        return Err(KubernetesError::Controlled {
                            doing,
                            hpa: hpa.name,
                            controller,
                        });
                    }
                    let workload = self.cluster.deployment(object).await.map_err(failed)?;
                    let ceiling = request.max.min(hpa.max);
                    // An HPA's minimum is at least 1; a scale-up starts from the pods that
                    // run, so raising the minimum adds them.
                    let to = request.target(
                        hpa.min,
                        workload.replicas.max(hpa.min),
                        request.min.max(1),
                        ceiling,
                    );
                    let result = |to: i32| Scaled {
                        from: hpa.min,
                        to,
                        autoscaler: Some(hpa.name.clone()),
                        summary: if to == hpa.min {
                            format!(
                                "{}: HPA {} minReplicas stays {} (max {}, HPA max {}); spec.replicas left to the HPA",
                                object.name, hpa.name, hpa.min, request.max, hpa.max
                            )
                        } else {
                            format!(
                                "{}: HPA {} minReplicas {} → {to} (max {}, HPA max {}); spec.replicas left to the HPA{preview}",
                                object.name, hpa.name, hpa.min, request.max, hpa.max
                            )
                        },
                    };
                    if to == hpa.min {
                        return Ok(result(to));
                    }
                    self.cluster
                        .write_autoscaler_min(
                            &object.namespace,
                            &hpa.name,
                            to,
                            &hpa.version,
                            dry_run,
                        )
                        .await
                        .map(result)
                }
                None => {
                    let current = self.cluster.replicas(object).await.map_err(failed)?;
                    let to = request.target(
                        current.replicas,
                        current.replicas,
                        request.min,
                        request.max,
                    );
                    let result = |to: i32| Scaled {
                        from: current.replicas,
                        to,
                        autoscaler: None,
                        summary: if to == current.replicas {
                            format!(
                                "{}: stays at {to} replicas (min {}, max {})",
                                object.name, request.min, request.max
                            )
                        } else {
                            format!(
                                "{}: {} → {to} replicas (max {}){preview}",
                                object.name, current.replicas, request.max
                            )
                        },
                    };
                    if to == current.replicas {
                        return Ok(result(to));
                    }
                    self.cluster
                        .write_replicas(object, to, &current.version, dry_run)
                        .await
                        .map(result)
                }
            };
            match written {
                Ok(scaled) => return Ok(scaled),
                Err(ClusterError::Conflict { .. }) => {}
                Err(other) => return Err(failed(other)),
            }
        }
        Err(KubernetesError::KeptChanging {
            doing,
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn restart(
        &self,
        values: BTreeMap<String, Value>,
        dry_run: bool,
    ) -> Result<Value, KubernetesError> {
        let mut args = Args::new("k8s.restart", values);
        let object = object("k8s.restart", &mut args, "deployment")?;
        args.finish()?;
        let failed = |source| KubernetesError::Cluster {
            doing: format!("cannot restart deployment {object}"),
            source,
        };
        let workload = self.cluster.deployment(&object).await.map_err(failed)?;
        let stamp = rfc3339(std::time::SystemTime::now());
        self.cluster
            .restart(&object, &stamp, dry_run)
            .await
            .map_err(failed)?;
        let mut fields = BTreeMap::new();
        fields.insert("pods".to_string(), Value::Int(i64::from(workload.replicas)));
        fields.insert(
            "summary".to_string(),
            Value::String(format!(
                "{}: rollout restart of {} pod{} {}",
                object.name,
                workload.replicas,
                if workload.replicas == 1 { "" } else { "s" },
                if dry_run {
                    "(dry run: the API server accepted it)"
                } else {
                    "started"
                }
            )),
        );
        Ok(Value::Record(Arc::new(fields)))
    }

    /// Undoes a scale: puts back `from` if the object still has the `to` Medic wrote.
    pub async fn revert(
        &self,
        function: &str,
        args: BTreeMap<String, Value>,
        output: Value,
    ) -> Result<Value, KubernetesError> {
        let work = async {
            let request = ScaleRequest::decode(function, args)?;
            let scaled = Scaled::read(&output).map_err(|reason| {
                KubernetesError::ChangedSince(format!(
                    "not performed: {reason}; undo the scale of {} by hand",
                    request.object
                ))
            })?;
            self.revert_scale(&request.object, &scaled).await
        };
        self.within(function, work).await
    }

    async fn revert_scale(
        &self,
        object: &Object,
        scaled: &Scaled,
    ) -> Result<Value, KubernetesError> {
        if scaled.from == scaled.to {
            return Ok(Value::String(format!(
                "{}: nothing to revert (the scale changed nothing)",
                object.name
            )));
        }
        let doing = format!("cannot revert the scale of deployment {object}");
        let failed = |source| KubernetesError::Cluster {
            doing: doing.clone(),
            source,
        };
        for _ in 0..MAX_ATTEMPTS {
            let (now, version, what) = match &scaled.autoscaler {
                Some(hpa) => {
                    let autoscaler = self
                        .cluster
                        .autoscaler(&object.namespace, hpa)
                        .await
                        .map_err(failed)?;
                    (
                        autoscaler.min,
                        autoscaler.version,
                        format!("HPA {hpa} minReplicas"),
                    )
                }
                None => {
                    let replicas = self.cluster.replicas(object).await.map_err(failed)?;
                    (replicas.replicas, replicas.version, "replicas".to_string())
                }
            };
            if now != scaled.to {
                return Err(KubernetesError::ChangedSince(format!(
                    "{}: {what} is {now} now, not the {} Medic set, so it was left alone (the revert would have restored {}); somebody or something changed it since",
                    object.name, scaled.to, scaled.from
                )));
            }
            let written = match &scaled.autoscaler {
                Some(hpa) => {
                    self.cluster
                        .write_autoscaler_min(&object.namespace, hpa, scaled.from, &version, false)
                        .await
                }
                None => {
                    self.cluster
                        .write_replicas(object, scaled.from, &version, false)
                        .await
                }
            };
            match written {
                Ok(restored) => {
                    return Ok(Value::String(format!(
                        "{}: {what} {} → {restored} (restored)",
                        object.name, scaled.to
                    )));
                }
                Err(ClusterError::Conflict { .. }) => {}
                Err(other) => return Err(failed(other)),
            }
        }
        Err(KubernetesError::KeptChanging {
            doing,
            attempts: MAX_ATTEMPTS,
        })
    }
}

/// `SystemTime` as RFC 3339 in UTC with seconds, as `kubectl rollout restart` writes it.
fn rfc3339(time: std::time::SystemTime) -> String {
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    chrono::DateTime::from_timestamp(i64::try_from(seconds).unwrap_or(0), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: Target, min: i32, max: i32) -> ScaleRequest {
        ScaleRequest {
            function: "k8s.scale".into(),
            object: Object {
                namespace: "default".into(),
                name: "web".into(),
            },
            target,
            min,
            max,
        }
    }

    #[test]
    fn targets_are_clamped_and_never_against_the_direction() {
        let up = request(Target::By(1), 1, 5);
        assert_eq!(up.target(3, 3, 1, 5), 4);
        assert_eq!(up.target(5, 5, 1, 5), 5);
        // Above max already: a scale-up does not scale down.
        assert_eq!(up.target(7, 7, 1, 5), 7);
        let down = request(Target::By(-2), 2, 5);
        assert_eq!(down.target(3, 3, 2, 5), 2);
        assert_eq!(down.target(1, 1, 2, 5), 1);
        let to = request(Target::To(9), 1, 5);
        assert_eq!(to.target(2, 2, 1, 5), 5);
        let by_huge = request(Target::By(i64::MAX), 1, 5);
        assert_eq!(by_huge.target(2, 2, 1, 5), 5);
    }

    #[test]
    fn timestamps() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_764_633_600 + 3_661);
        assert_eq!(rfc3339(at), "2025-12-02T01:01:01Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
