//! The sandbox Kubernetes API server driven by the real `kube` client, by raw HTTP (for the
//! patch types and failures kube does not produce) and by the real `kubectl`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

use std::path::PathBuf;
use std::process::Output;

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Status;
use medic_sandbox::kubernetes::ApiServer;
use serde_json::{Value, json};

async fn client(server: &ApiServer) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn deployments(server: &ApiServer, namespace: &str) -> anyhow::Result<Api<Deployment>> {
    Ok(Api::namespaced(client(server).await?, namespace))
}

async fn hpas(server: &ApiServer, namespace: &str) -> anyhow::Result<Api<HorizontalPodAutoscaler>> {
    Ok(Api::namespaced(client(server).await?, namespace))
}

/// The `Status` of a request that had to fail with one.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn details(status: &Status) -> (String, String, String) {
    let details = status.details.as_ref().expect("details");
    (
        details.name.clone(),
        details.group.clone(),
        details.kind.clone(),
    )
}

/// Raw HTTP to the server, with the token unless `token` is `None`.
async fn raw(
    server: &ApiServer,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", server.url()))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let code = response.status().as_u16();
    let text = response.text().await?;
    Ok((code, serde_json::from_str(&text).context(text)?))
}

async fn patch_raw(
    server: &ApiServer,
    path: &str,
    content_type: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    raw(
        server,
        reqwest::Method::PATCH,
        path,
        Some(content_type),
        &body.to_string(),
        Some(server.token()),
    )
    .await
}

const WEB: &str = "/apis/apps/v1/namespaces/shop/deployments/web";

mod deployments_and_scale {
    use super::*;

    #[tokio::test]
    async fn omitted_replicas_default_to_one_and_status_follows() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", None);
        server.add_deployment("shop", "idle", Some(0));
        let api = deployments(&server, "shop").await?;

        let web = api.get("web").await?;
        let spec = web.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(server.replicas("shop", "web"), Some(1));
        assert_eq!(web.metadata.generation, Some(1));
        assert_eq!(web.metadata.namespace.as_deref(), Some("shop"));
        assert!(web.metadata.uid.is_some());
        let status = web.status.as_ref().unwrap();
        assert_eq!(status.replicas, Some(1));
        assert_eq!(status.ready_replicas, Some(1));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(status.updated_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(1));

        // Zero replicas: the `omitempty` status counts are absent, and so is Scale's
        // spec.replicas.
        let idle = api.get("idle").await?;
        assert_eq!(idle.spec.as_ref().unwrap().replicas, Some(0));
        assert_eq!(idle.status.as_ref().unwrap().replicas, None);
        let scale = api.get_scale("idle").await?;
        assert_eq!(scale.spec.as_ref().unwrap().replicas, None);
        assert_eq!(scale.status.as_ref().unwrap().replicas, 0);

        let list = api.list(&ListParams::default()).await?;
        let names: Vec<String> = list
            .items
            .iter()
            .map(|item| item.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["idle", "web"]);
        let selected = api.list(&ListParams::default().labels("app=web")).await?;
        assert_eq!(selected.items.len(), 1);
        let selected = api.list(&ListParams::default().labels("app!=web")).await?;
        assert_eq!(selected.items[0].metadata.name.as_deref(), Some("idle"));
        let selected = api
            .list(&ListParams::default().fields("metadata.name=web"))
            .await?;
        assert_eq!(selected.items.len(), 1);
        let status = api_error(
            api.list(&ListParams::default().fields("spec.replicas=1"))
                .await,
        );
        assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
        assert_eq!(status.message, "field label not supported: spec.replicas");
        let elsewhere = deployments(&server, "other").await?;
        assert!(
            elsewhere
                .list(&ListParams::default())
                .await?
                .items
                .is_empty()
        );
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn scale_subresource_get_and_patch() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        let api = deployments(&server, "shop").await?;
        let before = api.get("web").await?;

        let scale = api.get_scale("web").await?;
        assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(2));
        let scale_status = scale.status.as_ref().unwrap();
        assert_eq!(scale_status.replicas, 2);
        assert_eq!(scale_status.selector.as_deref(), Some("app=web"));
        assert_eq!(scale.metadata.name.as_deref(), Some("web"));
        assert_eq!(scale.metadata.uid, before.metadata.uid);
        assert_eq!(
            scale.metadata.resource_version,
            before.metadata.resource_version
        );

        let patched = api
            .patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 4}})),
            )
            .await?;
        assert_eq!(patched.spec.as_ref().unwrap().replicas, Some(4));
        assert_eq!(patched.status.as_ref().unwrap().replicas, 4);
        assert_eq!(server.replicas("shop", "web"), Some(4));
        let after = api.get("web").await?;
        assert_eq!(after.metadata.generation, Some(2));
        assert_eq!(after.status.as_ref().unwrap().observed_generation, Some(2));
        assert_ne!(
            after.metadata.resource_version,
            before.metadata.resource_version
        );
        assert_eq!(
            patched.metadata.resource_version,
            after.metadata.resource_version
        );

        let last = server.requests().pop().unwrap();
        assert_eq!(last.method, "GET");
        let patch_request = server
            .requests()
            .into_iter()
            .find(|request| request.method == "PATCH")
            .unwrap();
        assert_eq!(patch_request.path, format!("{WEB}/scale"));
        assert_eq!(
            patch_request.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(patch_request.body, r#"{"spec":{"replicas":4}}"#);

        // A Scale PUT without spec.replicas scales to zero (the Go field is not a pointer).
        let mut zero = api.get_scale("web").await?;
        zero.spec = None;
        let replaced = api
            .replace_scale("web", &PostParams::default(), &zero)
            .await?;
        assert_eq!(replaced.spec.and_then(|spec| spec.replicas), None);
        assert_eq!(server.replicas("shop", "web"), Some(0));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn stale_resource_version_gets_409() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        let api = deployments(&server, "shop").await?;
        let read = api.get("web").await?;

        server.conflict_next_writes("shop", "web", 1);
        let mut wanted = read.clone();
        wanted.spec.as_mut().unwrap().replicas = Some(5);
        let status = api_error(api.replace("web", &PostParams::default(), &wanted).await);
        assert_eq!(status.code, 409);
        assert_eq!(status.reason, "Conflict");
        assert!(status.is_conflict());
        assert_eq!(
            status.message,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been \
             modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(
            details(&status),
            (
                "web".to_owned(),
                "apps".to_owned(),
                "deployments".to_owned()
            )
        );
        assert_eq!(server.replicas("shop", "web"), Some(2));

        // Read again, write again: the conflict was used up.
        let fresh = api.get("web").await?;
        assert_ne!(
            fresh.metadata.resource_version,
            read.metadata.resource_version
        );
        let mut wanted = fresh.clone();
        wanted.spec.as_mut().unwrap().replicas = Some(5);
        let replaced = api.replace("web", &PostParams::default(), &wanted).await?;
        assert_eq!(replaced.spec.unwrap().replicas, Some(5));

        // A patch carrying no resourceVersion is not conditional: the concurrent writer does
        // not make it fail, as the real server retries such patches.
        server.conflict_next_writes("shop", "web", 1);
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await?;
        assert_eq!(server.replicas("shop", "web"), Some(6));

        // A scale patch carrying a stale resourceVersion conflicts on the deployment.
        let old_version = server.resource_version("shop", "web").unwrap();
        server.set_replicas("shop", "web", 7);
        assert_ne!(server.resource_version("shop", "web").unwrap(), old_version);
        let status = api_error(
            api.patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"resourceVersion": old_version},
                    "spec": {"replicas": 1},
                })),
            )
            .await,
        );
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        assert!(status.message.contains("deployments.apps \"web\""));
        assert_eq!(server.replicas("shop", "web"), Some(7));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn writes_that_change_nothing_keep_the_resource_version() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(3));
        let api = deployments(&server, "shop").await?;
        let before = server.resource_version("shop", "web");
        let answered = api
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 3}})),
            )
            .await?;
        assert_eq!(answered.metadata.resource_version, before);
        let unchanged = api.get("web").await?;
        api.replace("web", &PostParams::default(), &unchanged)
            .await?;
        assert_eq!(server.resource_version("shop", "web"), before);
        assert_eq!(
            server.deployment("shop", "web").unwrap()["metadata"]["generation"],
            1
        );
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn dry_run_persists_nothing() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        let api = deployments(&server, "shop").await?;
        let before = server.deployment("shop", "web").unwrap();

        let answered = api
            .patch(
                "web",
                &PatchParams::default().dry_run(),
                &Patch::Merge(json!({"spec": {"replicas": 9}})),
            )
            .await?;
        assert_eq!(answered.spec.unwrap().replicas, Some(9));
        assert_eq!(answered.metadata.generation, Some(2));
        let scaled = api
            .patch_scale(
                "web",
                &PatchParams::default().dry_run(),
                &Patch::Merge(json!({"spec": {"replicas": 8}})),
            )
            .await?;
        assert_eq!(scaled.spec.unwrap().replicas, Some(8));
        assert_eq!(server.deployment("shop", "web").unwrap(), before);
        let dry_runs: Vec<String> = server
            .requests()
            .into_iter()
            .filter(|request| request.method == "PATCH")
            .map(|request| request.query)
            .collect();
        assert!(dry_runs.iter().all(|query| query.contains("dryRun=All")));

        // A dry run still answers the validation error a real write would get.
        let status = api_error(
            api.patch(
                "web",
                &PatchParams::default().dry_run(),
                &Patch::Merge(json!({"spec": {"replicas": -1}})),
            )
            .await,
        );
        assert_eq!(status.code, 422);

        // Conflicts arranged for real writes are not consumed by dry runs.
        server.conflict_next_writes("shop", "web", 1);
        let read = api.get("web").await?;
        api.replace(
            "web",
            &PostParams {
                dry_run: true,
                field_manager: None,
            },
            &read,
        )
        .await?;
        assert_eq!(
            api_error(api.replace("web", &PostParams::default(), &read).await).code,
            409
        );

        // Only "All" is a dry-run value; the options' validation refuses others with 422.
        let (code, body) = patch_raw(
            &server,
            &format!("{WEB}?dryRun=Maybe"),
            "application/merge-patch+json",
            json!({"spec": {"replicas": 4}}),
        )
        .await?;
        assert_eq!(code, 422);
        assert_eq!(body["reason"], "Invalid");
        assert_eq!(
            body["message"],
            "PatchOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \
             []string{\"Maybe\"}: supported values: \"All\""
        );
        assert_eq!(server.replicas("shop", "web"), Some(2));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn rollout_restart_is_a_template_change() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        let api = deployments(&server, "shop").await?;
        let restarted = api
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": "2026-12-02T00:00:00Z"
                }}}}})),
            )
            .await?;
        assert_eq!(restarted.metadata.generation, Some(2));
        assert_eq!(
            server.restarted_at("shop", "web").as_deref(),
            Some("2026-12-02T00:00:00Z")
        );
        // The containers survive: for maps a strategic merge patch is a merge.
        let containers = &restarted.spec.unwrap().template.spec.unwrap().containers;
        assert_eq!(containers.len(), 1);
        server.stop().await;
        Ok(())
    }
}

mod patches {
    use super::*;

    #[tokio::test]
    async fn json_patch_test_and_replace() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        let (code, body) = patch_raw(
            &server,
            WEB,
            "application/json-patch+json",
            json!([
                {"op": "test", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/metadata/annotations", "value": {"owner": "medic"}},
            ]),
        )
        .await?;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["spec"]["replicas"], 3);
        assert_eq!(body["metadata"]["annotations"]["owner"], "medic");
        assert_eq!(server.replicas("shop", "web"), Some(3));

        // The guard of a compare-and-swap: a failed `test` is 422 and changes nothing.
        let (code, body) = patch_raw(
            &server,
            WEB,
            "application/json-patch+json",
            json!([
                {"op": "test", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/replicas", "value": 10},
            ]),
        )
        .await?;
        assert_eq!(code, 422);
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["reason"], "Invalid");
        assert_eq!(
            body["details"]["causes"][0]["message"],
            "testing value /spec/replicas failed: test failed"
        );
        assert_eq!(server.replicas("shop", "web"), Some(3));

        // Through kube, the same failure is an Error::Api.
        let api = deployments(&server, "shop").await?;
        let guarded: Value = json!([{"op": "test", "path": "/spec/replicas", "value": 1}]);
        let status = api_error(
            api.patch(
                "web",
                &PatchParams::default(),
                &Patch::Json::<()>(serde_json::from_value(guarded)?),
            )
            .await,
        );
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

        let (code, body) = patch_raw(
            &server,
            WEB,
            "application/json-patch+json",
            json!({"op": "replace"}),
        )
        .await?;
        assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn merge_patch_on_an_hpa() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(3));
        server.add_hpa("shop", "web", "web", None, 10);
        let api = hpas(&server, "shop").await?;
        let hpa = api.get("web").await?;
        let spec = hpa.spec.as_ref().unwrap();
        assert_eq!(spec.min_replicas, Some(1));
        assert_eq!(spec.max_replicas, 10);
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "web");
        assert_eq!(spec.metrics.as_ref().unwrap()[0].type_, "Resource");
        let status = hpa.status.as_ref().unwrap();
        assert_eq!(status.current_replicas, Some(3));
        assert_eq!(status.desired_replicas, 3);

        let patched = api
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"minReplicas": 4}})),
            )
            .await?;
        assert_eq!(patched.spec.unwrap().min_replicas, Some(4));
        assert_eq!(server.hpa_min("shop", "web"), Some(4));
        // Removing minReplicas brings the default back.
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"minReplicas": null}})),
        )
        .await?;
        assert_eq!(server.hpa_min("shop", "web"), Some(1));

        server.set_hpa_min("shop", "web", 2);
        assert_eq!(api.get("web").await?.spec.unwrap().min_replicas, Some(2));

        let list = api.list(&ListParams::default()).await?;
        assert_eq!(list.items.len(), 1);
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn keda_owned_hpa() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "worker", Some(1));
        server.add_keda_hpa("shop", "keda-hpa-worker", "worker", 1, 20);
        let hpa = hpas(&server, "shop").await?.get("keda-hpa-worker").await?;
        let owners = hpa.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].api_version, "keda.sh/v1alpha1");
        assert_eq!(owners[0].kind, "ScaledObject");
        assert_eq!(owners[0].name, "worker");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(hpa.spec.unwrap().min_replicas, Some(1));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn unsupported_bodies_and_types() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        let (code, body) = raw(
            &server,
            reqwest::Method::PATCH,
            WEB,
            Some("text/plain"),
            "replicas=3",
            Some(server.token()),
        )
        .await?;
        assert_eq!(
            (code, body["reason"].as_str()),
            (415, Some("UnsupportedMediaType"))
        );
        let (code, body) = raw(
            &server,
            reqwest::Method::PATCH,
            WEB,
            Some("application/apply-patch+yaml"),
            "spec: {}",
            Some(server.token()),
        )
        .await?;
        assert_eq!(code, 415, "{body}");
        let (code, body) = raw(
            &server,
            reqwest::Method::PATCH,
            WEB,
            Some("application/merge-patch+json"),
            "{not json",
            Some(server.token()),
        )
        .await?;
        assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
        let (code, _) = raw(
            &server,
            reqwest::Method::PUT,
            WEB,
            Some("application/json"),
            "[",
            Some(server.token()),
        )
        .await?;
        assert_eq!(code, 400);
        let (code, body) = patch_raw(
            &server,
            WEB,
            "application/merge-patch+json",
            json!({"spec": {"replicas": "three"}}),
        )
        .await?;
        // The patch handler decodes the patched JSON and reports failure as Invalid `patch`.
        assert_eq!(
            (code, body["reason"].as_str()),
            (422, Some("Invalid")),
            "{body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(" \"\" is invalid: patch: Invalid value: \"{"),
            "{message}"
        );
        assert!(
            message.ends_with(
                ": json: cannot unmarshal string into Go struct field \
                 DeploymentSpec.spec.replicas of type int32"
            ),
            "{message}"
        );
        assert_eq!(body["details"]["causes"][0]["field"], "patch");
        // The same mistake in a PUT body is a bad request.
        let mut mistyped = server.deployment("shop", "web").unwrap();
        mistyped["spec"]["replicas"] = json!("three");
        let (code, body) = raw(
            &server,
            reqwest::Method::PUT,
            WEB,
            Some("application/json"),
            &mistyped.to_string(),
            Some(server.token()),
        )
        .await?;
        assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
        let too_many: Vec<Value> = (0..10_001)
            .map(|_| json!({"op": "test", "path": "/kind", "value": "Deployment"}))
            .collect();
        let (code, body) = patch_raw(
            &server,
            WEB,
            "application/json-patch+json",
            Value::Array(too_many),
        )
        .await?;
        assert_eq!(
            (code, body["reason"].as_str()),
            (413, Some("RequestEntityTooLarge"))
        );
        let (code, body) = raw(
            &server,
            reqwest::Method::DELETE,
            WEB,
            None,
            "",
            Some(server.token()),
        )
        .await?;
        assert_eq!(
            (code, body["reason"].as_str()),
            (405, Some("MethodNotAllowed"))
        );
        let (code, body) = raw(
            &server,
            reqwest::Method::GET,
            "/apis/batch/v1",
            None,
            "",
            Some(server.token()),
        )
        .await?;
        assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
        assert_eq!(server.replicas("shop", "web"), Some(2));
        server.stop().await;
        Ok(())
    }
}

mod failures {
    use super::*;

    #[tokio::test]
    async fn not_found() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        let api = deployments(&server, "shop").await?;
        let status = api_error(api.get("ghost").await);
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
        assert!(status.is_not_found());
        assert_eq!(status.message, "deployments.apps \"ghost\" not found");
        assert_eq!(
            details(&status),
            (
                "ghost".to_owned(),
                "apps".to_owned(),
                "deployments".to_owned()
            )
        );
        let status = api_error(
            api.patch_scale("ghost", &PatchParams::default(), &Patch::Merge(json!({})))
                .await,
        );
        assert_eq!(status.code, 404);
        let status = api_error(hpas(&server, "shop").await?.get("ghost").await);
        assert_eq!(
            status.message,
            "horizontalpodautoscalers.autoscaling \"ghost\" not found"
        );
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn forbidden() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        server.forbid("patch", "deployments/scale");
        server.forbid("list", "deployments");
        let api = deployments(&server, "shop").await?;
        let status = api_error(
            api.patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await,
        );
        assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
        assert!(status.is_forbidden());
        assert_eq!(
            status.message,
            "deployments.apps \"web\" is forbidden: User \"medic\" cannot patch resource \
             \"deployments/scale\" in API group \"apps\" in the namespace \"shop\""
        );
        assert_eq!(
            details(&status),
            (
                "web".to_owned(),
                "apps".to_owned(),
                "deployments".to_owned()
            )
        );
        assert_eq!(server.replicas("shop", "web"), Some(2));
        let status = api_error(api.list(&ListParams::default()).await);
        assert_eq!(
            status.message,
            "deployments.apps is forbidden: User \"medic\" cannot list resource \
             \"deployments\" in API group \"apps\" in the namespace \"shop\""
        );
        // Other verbs and the main resource stay allowed.
        api.get_scale("web").await?;
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await?;
        assert_eq!(server.replicas("shop", "web"), Some(5));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn invalid() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        server.add_hpa("shop", "web", "web", Some(2), 5);
        let api = deployments(&server, "shop").await?;
        let status = api_error(
            api.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": -1}})),
            )
            .await,
        );
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            status.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be \
             greater than or equal to 0"
        );
        let status_details = status.details.as_ref().unwrap();
        assert_eq!(status_details.kind, "Deployment");
        assert_eq!(status_details.causes[0].field, "spec.replicas");
        assert_eq!(status_details.causes[0].reason, "FieldValueInvalid");

        let status = api_error(
            api.patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": -3}})),
            )
            .await,
        );
        assert_eq!(
            status.message,
            "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -3: must be \
             greater than or equal to 0"
        );

        let hpa_api = hpas(&server, "shop").await?;
        let status = api_error(
            hpa_api
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"minReplicas": 6}})),
                )
                .await,
        );
        assert_eq!(
            status.message,
            "HorizontalPodAutoscaler.autoscaling \"web\" is invalid: spec.maxReplicas: Invalid \
             value: 5: must be greater than or equal to `minReplicas`"
        );
        let status = api_error(
            hpa_api
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"minReplicas": 0}})),
                )
                .await,
        );
        assert_eq!(
            status.message,
            "HorizontalPodAutoscaler.autoscaling \"web\" is invalid: spec.minReplicas: Invalid \
             value: 0: must be greater than or equal to 1"
        );
        assert_eq!(server.hpa_min("shop", "web"), Some(2));

        // The UID: a precondition in a PUT (409), immutable under a patch (422).
        let mut other_uid = api.get("web").await?;
        other_uid.metadata.uid = Some("00000000-0000-4000-8000-000000000000".to_owned());
        let status = api_error(api.replace("web", &PostParams::default(), &other_uid).await);
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        assert!(
            status.message.starts_with(
                "Operation cannot be fulfilled on deployments.apps \"web\": Precondition failed: \
                 UID in precondition: 00000000-0000-4000-8000-000000000000, UID in object meta: "
            ),
            "{}",
            status.message
        );
        let status = api_error(
            api.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"uid": "00000000-0000-4000-8000-000000000000"}})),
            )
            .await,
        );
        assert_eq!(
            status.message,
            "Deployment.apps \"web\" is invalid: metadata.uid: Invalid value: \
             \"00000000-0000-4000-8000-000000000000\": field is immutable"
        );

        // Renaming through a patch: the real handler's checkName answers 400.
        let status = api_error(
            api.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"name": "other"}})),
            )
            .await,
        );
        assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
        assert_eq!(
            status.message,
            "the name of the object (other) does not match the name on the URL (web)"
        );
        assert_eq!(server.replicas("shop", "web"), Some(2));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn unauthorized() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("shop", "web", Some(2));
        for token in [None, Some("wrong")] {
            let (code, body) = raw(&server, reqwest::Method::GET, WEB, None, "", token).await?;
            assert_eq!(code, 401);
            assert_eq!(body["reason"], "Unauthorized");
            assert_eq!(body["kind"], "Status");
        }
        let (code, body) = raw(&server, reqwest::Method::GET, "/version", None, "", None).await?;
        assert_eq!((code, body["major"].as_str()), (200, Some("1")));
        let config = kube::Config::new(server.url().parse()?);
        let anonymous: Api<Deployment> = Api::namespaced(kube::Client::try_from(config)?, "shop");
        assert_eq!(api_error(anonymous.get("web").await).code, 401);
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn stopped_server_refuses_connections() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        let url = server.url();
        // A kept-alive connection from the client must not keep the server up.
        let api = deployments(&server, "shop").await?;
        api.list(&ListParams::default()).await?;
        server.stop().await;
        let refused = reqwest::get(format!("{url}/version")).await;
        assert!(refused.is_err(), "{refused:?}");
        Ok(())
    }
}

mod access_reviews {
    use super::*;

    fn review(verb: &str, resource: &str, subresource: Option<&str>) -> SelfSubjectAccessReview {
        SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some("shop".to_owned()),
                    verb: Some(verb.to_owned()),
                    group: Some("apps".to_owned()),
                    resource: Some(resource.to_owned()),
                    subresource: subresource.map(str::to_owned),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        }
    }

    #[tokio::test]
    async fn self_subject_access_review_follows_forbid() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.forbid("patch", "deployments/scale");
        let api: Api<SelfSubjectAccessReview> = Api::all(client(&server).await?);
        let refused = api
            .create(
                &PostParams::default(),
                &review("patch", "deployments", Some("scale")),
            )
            .await?;
        assert!(!refused.status.unwrap().allowed);
        assert_eq!(
            refused
                .spec
                .resource_attributes
                .unwrap()
                .subresource
                .as_deref(),
            Some("scale")
        );
        let allowed = api
            .create(
                &PostParams::default(),
                &review("patch", "deployments", None),
            )
            .await?;
        assert!(allowed.status.unwrap().allowed);
        let status = api_error(
            api.create(&PostParams::default(), &SelfSubjectAccessReview::default())
                .await,
        );
        assert_eq!(status.code, 422);
        server.stop().await;
        Ok(())
    }
}

/// Real kubectl against the server, with its kubeconfig, cache and home in a temporary
/// directory that is removed afterwards.
mod kubectl {
    use super::*;

    struct Kubectl {
        home: tempfile::TempDir,
        kubeconfig: PathBuf,
    }

    impl Kubectl {
        fn new(server: &ApiServer) -> anyhow::Result<Kubectl> {
            let found = std::process::Command::new("kubectl")
                .args(["version", "--client"])
                .output();
            if !found.is_ok_and(|output| output.status.success()) {
                bail!(
                    "install kubectl: apt-get install -y kubectl (from the Kubernetes apt repository), or Debian's apt-get install -y kubernetes-client"
                );
            }
            let home = tempfile::tempdir()?;
            let kubeconfig = home.path().join("kubeconfig");
            std::fs::write(&kubeconfig, server.kubeconfig())?;
            Ok(Kubectl { home, kubeconfig })
        }

        async fn run(&self, arguments: &[&str]) -> anyhow::Result<Output> {
            let mut command = std::process::Command::new("kubectl");
            command
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("--cache-dir")
                .arg(self.home.path().join("cache"))
                .args(arguments)
                .env("HOME", self.home.path())
                .env_remove("KUBECONFIG");
            // kubectl blocks; the server runs on this test's runtime.
            Ok(tokio::task::spawn_blocking(move || command.output()).await??)
        }

        async fn succeed(&self, arguments: &[&str]) -> anyhow::Result<String> {
            let output = self.run(arguments).await?;
            if !output.status.success() {
                bail!(
                    "kubectl {arguments:?} failed: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            Ok(String::from_utf8(output.stdout)?)
        }
    }

    #[tokio::test]
    async fn kubectl_reads_scales_patches_restarts_and_asks() -> anyhow::Result<()> {
        let server = ApiServer::start().await?;
        server.add_deployment("default", "web", None);
        server.add_hpa("default", "web", "web", Some(2), 6);
        let kubectl = Kubectl::new(&server)?;

        let read: Value = serde_json::from_str(
            &kubectl
                .succeed(&["get", "deployment", "web", "-o", "json"])
                .await?,
        )?;
        assert_eq!(read["kind"], "Deployment");
        assert_eq!(read["spec"]["replicas"], 1);
        let short: Value = serde_json::from_str(
            &kubectl
                .succeed(&["get", "deploy/web", "-o", "json"])
                .await?,
        )?;
        assert_eq!(short["metadata"]["uid"], read["metadata"]["uid"]);
        let listed: Value =
            serde_json::from_str(&kubectl.succeed(&["get", "hpa", "-o", "json"]).await?)?;
        assert_eq!(listed["items"][0]["spec"]["minReplicas"], 2);

        let scaled = kubectl
            .succeed(&["scale", "deployment", "web", "--replicas=3"])
            .await?;
        assert_eq!(scaled.trim(), "deployment.apps/web scaled");
        assert_eq!(server.replicas("default", "web"), Some(3));

        let patched = kubectl
            .succeed(&[
                "patch",
                "hpa",
                "web",
                "--type=merge",
                "-p",
                r#"{"spec":{"minReplicas":3}}"#,
            ])
            .await?;
        assert_eq!(
            patched.trim(),
            "horizontalpodautoscaler.autoscaling/web patched"
        );
        assert_eq!(server.hpa_min("default", "web"), Some(3));
        let previewed = kubectl
            .succeed(&[
                "patch",
                "hpa",
                "web",
                "--type=merge",
                "-p",
                r#"{"spec":{"minReplicas":5}}"#,
                "--dry-run=server",
            ])
            .await?;
        assert!(previewed.starts_with("horizontalpodautoscaler.autoscaling/web patched"));
        let preview_request = server
            .requests()
            .into_iter()
            .rev()
            .find(|request| request.method == "PATCH")
            .unwrap();
        assert!(
            preview_request.query.contains("dryRun=All"),
            "{preview_request:?}"
        );
        assert_eq!(server.hpa_min("default", "web"), Some(3));
        let unchanged = kubectl
            .succeed(&[
                "patch",
                "hpa",
                "web",
                "--type=merge",
                "-p",
                r#"{"spec":{"minReplicas":3}}"#,
            ])
            .await?;
        assert_eq!(
            unchanged.trim(),
            "horizontalpodautoscaler.autoscaling/web patched (no change)"
        );
        let json_patched = kubectl
            .succeed(&[
                "patch",
                "deployment",
                "web",
                "--type=json",
                "-p",
                r#"[{"op":"test","path":"/spec/replicas","value":3},{"op":"replace","path":"/spec/replicas","value":4}]"#,
            ])
            .await?;
        assert_eq!(json_patched.trim(), "deployment.apps/web patched");
        assert_eq!(server.replicas("default", "web"), Some(4));

        assert_eq!(server.restarted_at("default", "web"), None);
        let restarted = kubectl
            .succeed(&["rollout", "restart", "deployment", "web"])
            .await?;
        assert_eq!(restarted.trim(), "deployment.apps/web restarted");
        assert!(server.restarted_at("default", "web").is_some());
        let after: Value = serde_json::from_str(
            &kubectl
                .succeed(&["get", "deployment", "web", "-o", "json"])
                .await?,
        )?;
        assert_eq!(after["metadata"]["generation"], 4);
        let rollout_patch = server
            .requests()
            .into_iter()
            .rev()
            .find(|request| request.method == "PATCH")
            .unwrap();
        assert_eq!(
            rollout_patch.content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );

        let scale_question = [
            "auth",
            "can-i",
            "patch",
            "deployments",
            "--subresource=scale",
        ];
        let can = kubectl.succeed(&scale_question).await?;
        assert_eq!(can.trim(), "yes");
        server.forbid("patch", "deployments/scale");
        let cannot = kubectl.run(&scale_question).await?;
        assert_eq!(String::from_utf8(cannot.stdout)?.trim(), "no");
        assert_eq!(cannot.status.code(), Some(1));
        // `deployments/scale` in can-i's argument is TYPE/NAME: the deployment named "scale",
        // which patching the main resource covers.
        let named = kubectl
            .succeed(&["auth", "can-i", "patch", "deployments/scale"])
            .await?;
        assert_eq!(named.trim(), "yes");
        let review_request = server
            .requests()
            .into_iter()
            .rev()
            .find(|request| request.path.ends_with("/selfsubjectaccessreviews"))
            .unwrap();
        assert_eq!(
            review_request.content_type.as_deref(),
            Some("application/vnd.kubernetes.protobuf")
        );
        let refused = kubectl
            .run(&["scale", "deployment", "web", "--replicas=1"])
            .await?;
        assert!(!refused.status.success());
        let stderr = String::from_utf8(refused.stderr)?;
        assert!(
            stderr.contains("cannot patch resource \"deployments/scale\" in API group \"apps\""),
            "{stderr}"
        );
        assert_eq!(server.replicas("default", "web"), Some(4));

        // Settled at once (no controllers); kubectl's follow-up watch is refused, which it
        // logs on stderr without failing.
        let rolled_out = kubectl
            .succeed(&["rollout", "status", "deployment", "web", "--timeout=10s"])
            .await?;
        assert_eq!(
            rolled_out.trim(),
            "deployment \"web\" successfully rolled out"
        );

        // Without -o, kubectl asks for a server-side Table.
        let printed = kubectl.succeed(&["get", "deployments"]).await?;
        let lines: Vec<Vec<&str>> = printed
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            "{printed}"
        );
        assert_eq!(lines[1][..4], ["web", "4/4", "4", "4"], "{printed}");
        let wide = kubectl
            .succeed(&["get", "deploy", "web", "-o", "wide"])
            .await?;
        assert!(
            wide.contains("registry.k8s.io/pause:3.10") && wide.contains("app=web"),
            "{wide}"
        );
        let printed = kubectl.succeed(&["get", "hpa"]).await?;
        let lines: Vec<Vec<&str>> = printed
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ],
            "{printed}"
        );
        assert_eq!(lines[1][..2], ["web", "Deployment/web"], "{printed}");
        assert!(printed.contains("cpu: <unknown>/80%"), "{printed}");

        let missing = kubectl
            .run(&["get", "deployment", "ghost", "-o", "json"])
            .await?;
        assert!(!missing.status.success());
        assert!(
            String::from_utf8(missing.stderr)?.contains("deployments.apps \"ghost\" not found")
        );
        server.stop().await;
        Ok(())
    }
}
