//! `k8s.*` through the real `kube` client against the sandbox's Kubernetes API server, over
//! TLS on loopback: scaling that clamps, respects HPAs, survives conflicts and refuses what
//! RBAC refuses; reverts that compare and set; dry runs the API server answers.

use super::support::{compile, failure, outcome, output, run_playbook};
use medic_compiler::plan::Value;
use medic_runtime::adapters::kubernetes::{self, KubeCluster, KubernetesConfig};
use medic_runtime::adapters::{Kubernetes, StandardToolbox, ToolboxConfig};
use medic_runtime::executor::{self, CallError, Preview, RunOptions, TaskOutcome, Toolbox};
use medic_sandbox::kubernetes::ApiServer;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The sandbox server and a toolbox whose Kubernetes adapter talks to it.
struct World {
    server: ApiServer,
    toolbox: Arc<StandardToolbox>,
    _kubeconfig: tempfile::NamedTempFile,
}

async fn world() -> World {
    let server = ApiServer::start().await.unwrap();
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(kubeconfig.path(), server.kubeconfig()).unwrap();
    let cluster = KubeCluster::connect(
        &KubernetesConfig {
            kubeconfig: Some(kubeconfig.path().to_path_buf()),
            context: None,
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let toolbox = Arc::new(
        StandardToolbox::new(ToolboxConfig {
            kubernetes: Some(Arc::new(Kubernetes::new(
                Arc::new(cluster),
                Duration::from_secs(5),
            ))),
            ..ToolboxConfig::default()
        })
        .unwrap(),
    );
    World {
        server,
        toolbox,
        _kubeconfig: kubeconfig,
    }
}

const SCALE: &str = r#"
import std.{k8s}
playbook up(deployment: String, by: Int, max: Int) {
  task scale = k8s.scale(deployment: deployment, by: by, max: max)
}
"#;

async fn scale(world: &World, deployment: &str, by: i64, max: i64) -> executor::RunReport {
    run_playbook(
        &compile(SCALE),
        &[
            ("deployment", Value::String(deployment.into())),
            ("by", Value::Int(by)),
            ("max", Value::Int(max)),
        ],
        world.toolbox.clone(),
    )
    .await
}

fn int(fields: &BTreeMap<String, Value>, name: &str) -> i64 {
    match &fields[name] {
        Value::Int(value) => *value,
        other => panic!("{name} is {other:?}"),
    }
}

fn text(fields: &BTreeMap<String, Value>, name: &str) -> String {
    match &fields[name] {
        Value::String(value) => value.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

/// The scale's journaled arguments, as a revert receives them.
fn scale_args(deployment: &str, by: i64, max: i64) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("deployment".to_string(), Value::String(deployment.into())),
        ("by".to_string(), Value::Int(by)),
        ("max".to_string(), Value::Int(max)),
        ("min".to_string(), Value::Int(1)),
        ("namespace".to_string(), Value::String("default".into())),
    ])
}

fn scaled_output(report: &executor::RunReport) -> Value {
    match outcome(report, "scale") {
        TaskOutcome::Succeeded { output } => output.clone(),
        other => panic!("the scale ended {other:?}"),
    }
}

#[tokio::test]
async fn a_scale_adds_to_what_it_read_and_clamps_at_max() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(3));
    let report = scale(&world, "web", 1, 5).await;
    let result = output(&report, "scale");
    assert_eq!((int(&result, "from"), int(&result, "to")), (3, 4));
    assert_eq!(result["changed"], Value::Bool(true));
    assert_eq!(text(&result, "autoscaler"), "");
    assert_eq!(text(&result, "summary"), "web: 3 → 4 replicas (max 5)");
    assert_eq!(world.server.replicas("default", "web"), Some(4));
    // The write went to the scale subresource, conditional on what was read.
    let writes: Vec<_> = world
        .server
        .requests()
        .into_iter()
        .filter(|request| request.method == "PATCH")
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        writes[0].path,
        "/apis/apps/v1/namespaces/default/deployments/web/scale"
    );
    assert_eq!(
        writes[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert!(
        writes[0].body.contains("\"resourceVersion\""),
        "{}",
        writes[0].body
    );

    let report = scale(&world, "web", 5, 5).await;
    let result = output(&report, "scale");
    assert_eq!((int(&result, "from"), int(&result, "to")), (4, 5));
    assert_eq!(world.server.replicas("default", "web"), Some(5));
    // At max: nothing to write, and said so.
    let report = scale(&world, "web", 1, 5).await;
    let result = output(&report, "scale");
    assert_eq!(result["changed"], Value::Bool(false));
    assert_eq!(
        text(&result, "summary"),
        "web: stays at 5 replicas (min 1, max 5)"
    );
    // Above max already (a human scaled it): a scale-up never scales down.
    world.server.set_replicas("default", "web", 8);
    let report = scale(&world, "web", 1, 5).await;
    assert_eq!(output(&report, "scale")["changed"], Value::Bool(false));
    assert_eq!(world.server.replicas("default", "web"), Some(8));
}

#[tokio::test]
async fn an_omitted_replica_count_is_one() {
    let world = world().await;
    world.server.add_deployment("default", "web", None);
    let report = run_playbook(
        &compile(
            r#"
import std.{k8s}
playbook look() {
  task web = k8s.deployment(name: "web")
}
"#,
        ),
        &[],
        world.toolbox.clone(),
    )
    .await;
    let web = output(&report, "web");
    assert_eq!(int(&web, "replicas"), 1);
    assert_eq!(web["autoscaled"], Value::Bool(false));
    assert_eq!(text(&web, "namespace"), "default");
    let report = scale(&world, "web", 1, 5).await;
    let result = output(&report, "scale");
    assert_eq!((int(&result, "from"), int(&result, "to")), (1, 2));
}

#[tokio::test]
async fn with_an_hpa_its_min_replicas_is_raised_and_spec_replicas_left_alone() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(3));
    world
        .server
        .add_hpa("default", "web-hpa", "web", Some(2), 4);
    let report = scale(&world, "web", 1, 5).await;
    let result = output(&report, "scale");
    // From the pods that run (3), one more: the minimum goes 2 → 4.
    assert_eq!((int(&result, "from"), int(&result, "to")), (2, 4));
    assert_eq!(text(&result, "autoscaler"), "web-hpa");
    assert!(
        text(&result, "summary").contains("HPA web-hpa minReplicas 2 → 4"),
        "{result:?}"
    );
    assert_eq!(world.server.hpa_min("default", "web-hpa"), Some(4));
    assert_eq!(world.server.replicas("default", "web"), Some(3));
    assert!(
        !world
            .server
            .requests()
            .iter()
            .any(|request| request.path.ends_with("/scale") && request.method != "GET"),
        "spec.replicas was written"
    );
    // Clamped to the HPA's own maximum (4), below the runbook's (5).
    let report = scale(&world, "web", 3, 5).await;
    let result = output(&report, "scale");
    assert_eq!(result["changed"], Value::Bool(false), "{result:?}");
    assert_eq!(world.server.hpa_min("default", "web-hpa"), Some(4));
    // k8s.deployment says an HPA manages it.
    let report = run_playbook(
        &compile(
            "import std.{k8s}\nplaybook look() {\n  task web = k8s.deployment(name: \"web\")\n}\n",
        ),
        &[],
        world.toolbox.clone(),
    )
    .await;
    assert_eq!(output(&report, "web")["autoscaled"], Value::Bool(true));
}

#[tokio::test]
async fn an_hpa_controlled_by_keda_is_not_patched() {
    let world = world().await;
    world.server.add_deployment("default", "worker", Some(2));
    world
        .server
        .add_keda_hpa("default", "keda-hpa-worker", "worker", 2, 10);
    let report = scale(&world, "worker", 1, 5).await;
    let reason = failure(&report, "scale");
    assert!(reason.contains("KEDA ScaledObject"), "{reason}");
    assert!(reason.contains("keda-hpa-worker"), "{reason}");
    assert_eq!(world.server.hpa_min("default", "keda-hpa-worker"), Some(2));
    assert!(
        !world
            .server
            .requests()
            .iter()
            .any(|request| request.method == "PATCH")
    );
}

#[tokio::test]
async fn a_conflict_is_read_again_and_a_storm_of_them_gives_up() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(3));
    world.server.conflict_next_writes("default", "web", 2);
    let report = scale(&world, "web", 1, 5).await;
    let result = output(&report, "scale");
    assert_eq!((int(&result, "from"), int(&result, "to")), (3, 4));
    assert_eq!(world.server.replicas("default", "web"), Some(4));
    let patches = world
        .server
        .requests()
        .iter()
        .filter(|request| request.method == "PATCH")
        .count();
    assert_eq!(patches, 3, "two refused, one accepted");

    world.server.conflict_next_writes("default", "web", 100);
    let report = scale(&world, "web", 1, 5).await;
    let reason = failure(&report, "scale");
    assert!(
        reason.contains(&format!("changed {} times", kubernetes::MAX_ATTEMPTS)),
        "{reason}"
    );
    assert_eq!(world.server.replicas("default", "web"), Some(4));
}

#[tokio::test]
async fn a_revert_restores_only_what_nobody_changed_since() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(3));
    let report = scale(&world, "web", 1, 5).await;
    let scaled = scaled_output(&report);
    let restored = world
        .toolbox
        .revert("k8s.scale", scale_args("web", 1, 5), scaled)
        .await
        .unwrap();
    assert_eq!(
        restored,
        Value::String("web: replicas 4 → 3 (restored)".into())
    );
    assert_eq!(world.server.replicas("default", "web"), Some(3));

    // A human scaled it to 6 after Medic's 4: the revert leaves it and needs a human.
    let report = scale(&world, "web", 1, 5).await;
    let scaled = scaled_output(&report);
    world.server.set_replicas("default", "web", 6);
    let error = world
        .toolbox
        .revert("k8s.scale", scale_args("web", 1, 5), scaled)
        .await
        .unwrap_err();
    let CallError::NeedsAttention(detail) = error else {
        panic!("the revert should need a human: {error:?}");
    };
    assert!(
        detail.contains("replicas is 6 now, not the 4 Medic set"),
        "{detail}"
    );
    assert!(detail.contains("would have restored 3"), "{detail}");
    assert_eq!(world.server.replicas("default", "web"), Some(6));
}

#[tokio::test]
async fn an_hpa_revert_compares_and_sets_its_min_replicas() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(2));
    world.server.add_hpa("default", "web", "web", Some(2), 10);
    let report = scale(&world, "web", 1, 5).await;
    let scaled = scaled_output(&report);
    assert_eq!(world.server.hpa_min("default", "web"), Some(3));
    world
        .toolbox
        .revert("k8s.scale", scale_args("web", 1, 5), scaled.clone())
        .await
        .unwrap();
    assert_eq!(world.server.hpa_min("default", "web"), Some(2));
    // Reverting twice: the value is no longer Medic's 3, so it is left alone.
    let error = world
        .toolbox
        .revert("k8s.scale", scale_args("web", 1, 5), scaled)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::NeedsAttention(_)), "{error:?}");
    assert_eq!(world.server.hpa_min("default", "web"), Some(2));
}

#[tokio::test]
async fn rbac_refusals_and_missing_objects_are_named() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(3));
    world.server.forbid("patch", "deployments/scale");
    let reason = failure(&scale(&world, "web", 1, 5).await, "scale");
    assert!(
        reason.starts_with(
            "cannot scale deployment default/web: RBAC refused `patch` on deployments/scale:"
        ),
        "{reason}"
    );
    assert!(reason.contains("forbidden"), "{reason}");
    assert_eq!(world.server.replicas("default", "web"), Some(3));

    let reason = failure(&scale(&world, "absent", 1, 5).await, "scale");
    assert!(
        reason.contains("cannot scale deployment default/absent"),
        "{reason}"
    );
    assert!(reason.contains("not found"), "{reason}");
}

#[tokio::test]
async fn names_that_are_not_dns_1123_never_reach_the_server() {
    let world = world().await;
    for name in ["../secrets", "Web", "a b", "", "web/scale", "%2e%2e"] {
        let reason = failure(&scale(&world, name, 1, 5).await, "scale");
        assert!(
            reason.contains("is not a valid Kubernetes name"),
            "{name:?}: {reason}"
        );
    }
    assert!(
        world.server.requests().is_empty(),
        "{:?}",
        world.server.requests()
    );
}

/// `SCALE` of web by 1 (max 5) as a dry run.
async fn dry_run_scale(world: &World) -> executor::RunReport {
    executor::run(
        &compile(SCALE).playbooks[0],
        BTreeMap::from([
            ("deployment".to_string(), Value::String("web".into())),
            ("by".to_string(), Value::Int(1)),
            ("max".to_string(), Value::Int(5)),
        ]),
        world.toolbox.clone(),
        RunOptions { dry_run: true },
    )
    .await
}

#[tokio::test]
async fn a_dry_run_asks_the_api_server_and_changes_nothing() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(3));
    let report = dry_run_scale(&world).await;
    let TaskOutcome::WouldRun {
        preview: Some(Preview::Accepted(Value::Record(fields))),
        ..
    } = outcome(&report, "scale")
    else {
        panic!("{:?}", outcome(&report, "scale"));
    };
    assert_eq!((int(fields, "from"), int(fields, "to")), (3, 4));
    assert!(
        text(fields, "summary").contains("dry run: the API server accepted it"),
        "{fields:?}"
    );
    assert_eq!(world.server.replicas("default", "web"), Some(3));
    let patch = world
        .server
        .requests()
        .into_iter()
        .find(|request| request.method == "PATCH")
        .unwrap();
    assert!(patch.query.contains("dryRun=All"), "{patch:?}");

    // What RBAC would refuse, the dry run says it would refuse.
    world.server.forbid("patch", "deployments/scale");
    let report = dry_run_scale(&world).await;
    let TaskOutcome::WouldRun {
        preview: Some(Preview::Refused(reason)),
        ..
    } = outcome(&report, "scale")
    else {
        panic!("{:?}", outcome(&report, "scale"));
    };
    assert!(reason.contains("RBAC refused `patch`"), "{reason}");
}

#[tokio::test]
async fn a_restart_is_a_rollout_restart() {
    let world = world().await;
    world.server.add_deployment("default", "web", Some(3));
    let report = run_playbook(
        &compile(
            "import std.{k8s}\nplaybook bounce() {\n  task restart = k8s.restart(deployment: \"web\")\n}\n",
        ),
        &[],
        world.toolbox.clone(),
    )
    .await;
    let result = output(&report, "restart");
    assert_eq!(int(&result, "pods"), 3);
    assert_eq!(
        text(&result, "summary"),
        "web: rollout restart of 3 pods started"
    );
    let stamp = world.server.restarted_at("default", "web").unwrap();
    assert!(stamp.ends_with('Z') && stamp.len() == 20, "{stamp}");
}

#[tokio::test]
async fn the_permissions_the_adapter_needs_are_asked_of_the_api_server() {
    let world = world().await;
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(kubeconfig.path(), world.server.kubeconfig()).unwrap();
    let cluster = KubeCluster::connect(
        &KubernetesConfig {
            kubeconfig: Some(kubeconfig.path().to_path_buf()),
            context: Some("sandbox".into()),
        },
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    use medic_runtime::adapters::kubernetes::Cluster;
    for (verb, group, resource) in kubernetes::PERMISSIONS {
        let access = cluster
            .can_i(verb, group, resource, "default")
            .await
            .unwrap();
        assert!(access.allowed, "{verb} {resource}");
    }
    world.server.forbid("patch", "horizontalpodautoscalers");
    let access = cluster
        .can_i(
            "patch",
            "autoscaling",
            "horizontalpodautoscalers",
            "default",
        )
        .await
        .unwrap();
    assert!(!access.allowed);
}

#[tokio::test]
async fn an_api_server_that_does_not_answer_is_a_failure_within_the_deadline() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        kubeconfig.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{address}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let cluster = KubeCluster::connect(
        &KubernetesConfig {
            kubeconfig: Some(kubeconfig.path().to_path_buf()),
            context: None,
        },
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let toolbox = StandardToolbox::new(ToolboxConfig {
        kubernetes: Some(Arc::new(Kubernetes::new(
            Arc::new(cluster),
            Duration::from_millis(300),
        ))),
        ..ToolboxConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let error = toolbox
        .call("k8s.scale", scale_args("web", 1, 5))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = error.to_string();
    assert!(
        text.contains("did not finish within")
            || text.contains("timed out")
            || text.contains("could not be reached"),
        "{text}"
    );
    hold.abort();
}
