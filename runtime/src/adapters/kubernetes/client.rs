//! [`KubeCluster`]: the [`Cluster`] of a real API server, through the `kube` client.
//!
//! Every write is a merge patch that carries the `metadata.resourceVersion` it was computed
//! from, so the API server refuses it with 409 Conflict when somebody changed the object in
//! between (optimistic concurrency, as `kubectl` does). kube's own retry layer is off: the
//! adapter decides what is retried, within the call's deadline.

use super::{Access, Autoscaler, Cluster, ClusterError, ClusterFuture, Object, Replicas, Workload};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use std::path::PathBuf;
use std::time::Duration;

/// The API server of `[kubernetes]` in medic.toml.
#[derive(Debug, Clone, Default)]
pub struct KubernetesConfig {
    /// A kubeconfig file; none: `KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; none: its current context.
    pub context: Option<String>,
}

/// A connection to a real API server.
pub struct KubeCluster {
    client: kube::Client,
}

impl KubeCluster {
    /// Reads the kubeconfig (or the in-cluster service account) and makes the client.
    /// `timeout` bounds connecting, each read and each write of one request.
    pub async fn connect(
        config: &KubernetesConfig,
        timeout: Duration,
    ) -> Result<KubeCluster, String> {
        let options = kube::config::KubeConfigOptions {
            context: config.context.clone(),
            ..Default::default()
        };
        let mut client_config = match (&config.kubeconfig, &config.context) {
            (Some(path), _) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .map_err(|error| format!("kubeconfig {}: {}", path.display(), chain(&error)))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|error| format!("kubeconfig {}: {}", path.display(), chain(&error)))?
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|error| format!("kubeconfig: {}", chain(&error)))?,
            (None, None) => kube::Config::infer()
                .await
                .map_err(|error| format!("no Kubernetes configuration found: {}", chain(&error)))?,
        };
        client_config.default_retry = false;
        client_config.connect_timeout = Some(timeout);
        client_config.read_timeout = Some(timeout);
        client_config.write_timeout = Some(timeout);
        let client = kube::Client::try_from(client_config)
            .map_err(|error| format!("cannot make the Kubernetes client: {}", chain(&error)))?;
        Ok(KubeCluster { client })
    }

    fn deployments(&self, namespace: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn autoscalers(&self, namespace: &str) -> Api<HorizontalPodAutoscaler> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// An error and its causes on one line.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The API server's answer as a [`ClusterError`]; `verb` and `resource` name the request
/// for a 403.
fn refused(error: kube::Error, verb: &str, resource: &str) -> ClusterError {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            match status.code {
                401 => ClusterError::Unauthorized { message },
                403 => ClusterError::Forbidden {
                    verb: verb.to_string(),
                    resource: resource.to_string(),
                    message,
                },
                404 => ClusterError::NotFound { message },
                409 => ClusterError::Conflict { message },
                422 => ClusterError::Invalid { message },
                code => ClusterError::Refused {
                    code,
                    reason: status.reason.clone(),
                    message,
                },
            }
        }
        kube::Error::SerdeError(error) => ClusterError::Unreadable(error.to_string()),
        other => ClusterError::Unreachable(chain(&other)),
    }
}

fn params(dry_run: bool) -> PatchParams {
    PatchParams {
        dry_run,
        field_manager: Some("medic".into()),
        ..PatchParams::default()
    }
}

fn version_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Result<String, ClusterError> {
    meta.resource_version.clone().ok_or_else(|| {
        ClusterError::Unreadable("the object has no metadata.resourceVersion".into())
    })
}

/// What controls an HPA, when something does: a KEDA ScaledObject, or another controller.
fn controller_of(hpa: &HorizontalPodAutoscaler) -> Option<String> {
    let owners = hpa.metadata.owner_references.as_deref().unwrap_or_default();
    owners
        .iter()
        .find(|owner| owner.controller == Some(true) || owner.kind == "ScaledObject")
        .map(|owner| {
            if owner.kind == "ScaledObject" && owner.api_version.starts_with("keda.sh/") {
                format!("the KEDA ScaledObject {:?}", owner.name)
            } else {
                format!(
                    "the {} {:?} ({})",
                    owner.kind, owner.name, owner.api_version
                )
            }
        })
}

fn autoscaler(hpa: &HorizontalPodAutoscaler) -> Result<Autoscaler, ClusterError> {
    let spec = hpa.spec.as_ref().ok_or_else(|| {
        ClusterError::Unreadable("the HorizontalPodAutoscaler has no spec".into())
    })?;
    Ok(Autoscaler {
        name: hpa.metadata.name.clone().unwrap_or_default(),
        min: spec.min_replicas.unwrap_or(1),
        max: spec.max_replicas,
        version: version_of(&hpa.metadata)?,
        controller: controller_of(hpa),
    })
}

impl Cluster for KubeCluster {
    fn deployment<'a>(&'a self, object: &'a Object) -> ClusterFuture<'a, Workload> {
        Box::pin(async move {
            let deployment = self
                .deployments(&object.namespace)
                .get(&object.name)
                .await
                .map_err(|error| refused(error, "get", "deployments"))?;
            let spec = deployment.spec.as_ref();
            let status = deployment.status.as_ref();
            Ok(Workload {
                // The API server defaults an omitted spec.replicas to 1.
                replicas: spec.and_then(|spec| spec.replicas).unwrap_or(1),
                ready: status.and_then(|status| status.ready_replicas).unwrap_or(0),
            })
        })
    }

    fn replicas<'a>(&'a self, object: &'a Object) -> ClusterFuture<'a, Replicas> {
        Box::pin(async move {
            let scale = self
                .deployments(&object.namespace)
                .get_scale(&object.name)
                .await
                .map_err(|error| refused(error, "get", "deployments/scale"))?;
            Ok(Replicas {
                replicas: scale
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.replicas)
                    .unwrap_or(0),
                version: version_of(&scale.metadata)?,
            })
        })
    }

    fn autoscaler_of<'a>(&'a self, object: &'a Object) -> ClusterFuture<'a, Option<Autoscaler>> {
        Box::pin(async move {
            let list = self
                .autoscalers(&object.namespace)
                .list(&ListParams::default())
                .await
                .map_err(|error| refused(error, "list", "horizontalpodautoscalers"))?;
            let mut targeting = list.items.iter().filter(|hpa| {
                hpa.spec.as_ref().is_some_and(|spec| {
                    let target = &spec.scale_target_ref;
                    target.kind == "Deployment"
                        && target.name == object.name
                        && target
                            .api_version
                            .as_deref()
                            .is_none_or(|version| version == "apps/v1")
                })
            });
            let Some(first) = targeting.next() else {
                return Ok(None);
            };
            if let Some(second) = targeting.next() {
                return Err(ClusterError::Ambiguous(format!(
                    "two HorizontalPodAutoscalers target deployment {object}: {:?} and {:?}",
                    first.metadata.name.as_deref().unwrap_or_default(),
                    second.metadata.name.as_deref().unwrap_or_default()
                )));
            }
            autoscaler(first).map(Some)
        })
    }

    fn autoscaler<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> ClusterFuture<'a, Autoscaler> {
        Box::pin(async move {
            let hpa = self
                .autoscalers(namespace)
                .get(name)
                .await
                .map_err(|error| refused(error, "get", "horizontalpodautoscalers"))?;
            autoscaler(&hpa)
        })
    }

    fn write_replicas<'a>(
        &'a self,
        object: &'a Object,
        replicas: i32,
        version: &'a str,
        dry_run: bool,
    ) -> ClusterFuture<'a, i32> {
        Box::pin(async move {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": version},
                "spec": {"replicas": replicas},
            });
            let scale = self
                .deployments(&object.namespace)
                .patch_scale(&object.name, &params(dry_run), &Patch::Merge(&patch))
                .await
                .map_err(|error| refused(error, "patch", "deployments/scale"))?;
            Ok(scale.spec.and_then(|spec| spec.replicas).unwrap_or(0))
        })
    }

    fn write_autoscaler_min<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        min: i32,
        version: &'a str,
        dry_run: bool,
    ) -> ClusterFuture<'a, i32> {
        Box::pin(async move {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": version},
                "spec": {"minReplicas": min},
            });
            let hpa = self
                .autoscalers(namespace)
                .patch(name, &params(dry_run), &Patch::Merge(&patch))
                .await
                .map_err(|error| refused(error, "patch", "horizontalpodautoscalers"))?;
            Ok(hpa.spec.and_then(|spec| spec.min_replicas).unwrap_or(1))
        })
    }

    fn restart<'a>(
        &'a self,
        object: &'a Object,
        stamp: &'a str,
        dry_run: bool,
    ) -> ClusterFuture<'a, ()> {
        Box::pin(async move {
            // What `kubectl rollout restart` writes: a new pod template annotation, so the
            // Deployment controller replaces the pods by its rollout strategy.
            let patch = serde_json::json!({
                "spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": stamp,
                }}}},
            });
            self.deployments(&object.namespace)
                .patch(&object.name, &params(dry_run), &Patch::Strategic(&patch))
                .await
                .map_err(|error| refused(error, "patch", "deployments"))?;
            Ok(())
        })
    }

    fn can_i<'a>(
        &'a self,
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> ClusterFuture<'a, Access> {
        Box::pin(async move {
            let (resource, subresource) = match resource.split_once('/') {
                Some((resource, subresource)) => (resource, Some(subresource.to_string())),
                None => (resource, None),
            };
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.to_string()),
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        subresource,
                        namespace: Some(namespace.to_string()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let reviews: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
            let answer = reviews
                .create(&PostParams::default(), &review)
                .await
                .map_err(|error| refused(error, "create", "selfsubjectaccessreviews"))?;
            let status = answer.status.ok_or_else(|| {
                ClusterError::Unreadable("the SelfSubjectAccessReview has no status".into())
            })?;
            Ok(Access {
                allowed: status.allowed,
                reason: status.reason.or(status.evaluation_error),
            })
        })
    }
}
