//! `medic doctor`: asks every system of `medic.toml` whether Medic can work with it, before
//! an incident does: the plans' calls have their configuration, Prometheus answers a query,
//! Jaeger lists its services, Elasticsearch answers, the SMTP server greets and accepts the
//! login, and the Kubernetes API server says (by SelfSubjectAccessReview) that each
//! permission the adapter needs is granted.

use crate::config::{self, connect_kubernetes, read_config, toolbox_config};
use medic_runtime::adapters::{Adapter, kubernetes, smtp};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

pub struct DoctorFlags {
    pub config: Option<PathBuf>,
    pub plans: Vec<PathBuf>,
    pub namespaces: Vec<String>,
}

/// One finding, printed as a line.
struct Finding {
    ok: bool,
    what: String,
    detail: String,
}

impl Finding {
    fn ok(what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            ok: true,
            what: what.into(),
            detail: detail.into(),
        }
    }

    fn failed(what: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            ok: false,
            what: what.into(),
            detail: detail.into(),
        }
    }
}

pub fn doctor(flags: DoctorFlags) -> anyhow::Result<ExitCode> {
    let (config, base) = read_config(flags.config.as_deref())?;
    let mut toolbox_config = toolbox_config(&config, &base)?;
    let mut findings = Vec::new();
    let plans = if flags.plans.is_empty() {
        config::plans(&config, &base)
    } else {
        flags.plans.clone()
    };
    if !plans.is_empty() {
        match crate::engine::compile(&plans) {
            Ok(plan) => {
                let missing = medic_runtime::adapters::unconfigured(&plan, |adapter| {
                    adapter.configured(&toolbox_config)
                        || (adapter == Adapter::Kubernetes && config.kubernetes.is_some())
                });
                if missing.is_empty() {
                    findings.push(Finding::ok(
                        "plans",
                        format!(
                            "{} rules, {} playbooks; every call has its configuration",
                            plan.rules.len(),
                            plan.playbooks.len()
                        ),
                    ));
                }
                findings.extend(
                    missing
                        .into_iter()
                        .map(|line| Finding::failed("plans", line)),
                );
            }
            Err(diagnostics) => {
                eprint!("{diagnostics}");
                findings.push(Finding::failed("plans", "the plans do not compile"));
            }
        }
    }
    let namespaces = if flags.namespaces.is_empty() {
        vec!["default".to_string()]
    } else {
        flags.namespaces.clone()
    };
    crate::engine::runtime()?.block_on(async {
        findings.push(match &toolbox_config.prometheus {
            None => Finding::ok("prometheus", "not configured (prom.* calls will fail)"),
            Some(prometheus) => {
                let url = prometheus.url.clone();
                match medic_runtime::adapters::prometheus::Prometheus::new(prometheus.clone()) {
                    Err(error) => Finding::failed("prometheus", error.to_string()),
                    Ok(client) => {
                        let started = Instant::now();
                        match client.check().await {
                            Ok(answer) => Finding::ok(
                                "prometheus",
                                format!(
                                    "{url} answered in {} ms: {answer}",
                                    started.elapsed().as_millis()
                                ),
                            ),
                            Err(error) => Finding::failed("prometheus", format!("{url}: {error}")),
                        }
                    }
                }
            }
        });
        findings.push(match &toolbox_config.jaeger {
            None if toolbox_config.topology.is_empty() => {
                Finding::ok("jaeger", "not configured (trace.* calls will fail)")
            }
            None => Finding::ok(
                "jaeger",
                "not configured: trace.dependencies uses [topology] alone, trace.slowest_spans will fail",
            ),
            Some(jaeger) => {
                let url = jaeger.url.clone();
                match medic_runtime::adapters::jaeger::Jaeger::new(
                    Some(jaeger.clone()),
                    toolbox_config.topology.clone(),
                    toolbox_config.clock,
                ) {
                    Err(error) => Finding::failed("jaeger", error.to_string()),
                    Ok(client) => {
                        let started = Instant::now();
                        match client.check().await {
                            Ok(answer) => Finding::ok(
                                "jaeger",
                                format!("{url} answered in {} ms: {answer}", started.elapsed().as_millis()),
                            ),
                            Err(error) => Finding::failed("jaeger", format!("{url}: {error}")),
                        }
                    }
                }
            }
        });
        findings.push(match &toolbox_config.elasticsearch {
            None => Finding::ok("elasticsearch", "not configured (logs.aggregate calls will fail)"),
            Some(elasticsearch) => {
                let url = elasticsearch.url.clone();
                match medic_runtime::adapters::elasticsearch::Elasticsearch::new(Some(
                    elasticsearch.clone(),
                )) {
                    Err(error) => Finding::failed("elasticsearch", error.to_string()),
                    Ok(client) => {
                        let started = Instant::now();
                        match client.check().await {
                            Ok(answer) => Finding::ok(
                                "elasticsearch",
                                format!("{url} answered in {} ms: {answer}", started.elapsed().as_millis()),
                            ),
                            Err(error) => Finding::failed("elasticsearch", format!("{url}: {error}")),
                        }
                    }
                }
            }
        });
        findings.push(match &toolbox_config.smtp {
            None => Finding::ok("smtp", "not configured (notify.email calls will fail)"),
            Some(_) => match smtp::Mailer::new(toolbox_config.smtp.clone()) {
                Err(error) => Finding::failed("smtp", error.to_string()),
                Ok(mailer) => {
                    let started = Instant::now();
                    match mailer.check().await {
                        Ok(server) => Finding::ok(
                            "smtp",
                            format!(
                                "{server}: greeted and ready to send in {} ms",
                                started.elapsed().as_millis()
                            ),
                        ),
                        Err(error) => Finding::failed("smtp", error.to_string()),
                    }
                }
            },
        });
        match connect_kubernetes(&config, &base).await {
            Ok(None) => findings.push(Finding::ok(
                "kubernetes",
                "not configured (k8s.* calls will fail)",
            )),
            Err(error) => findings.push(Finding::failed("kubernetes", format!("{error:#}"))),
            Ok(Some(adapter)) => {
                for namespace in &namespaces {
                    findings.extend(permissions(adapter.as_ref(), namespace).await);
                }
                toolbox_config.kubernetes = Some(adapter);
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    let mut failed = 0;
    for finding in &findings {
        if !finding.ok {
            failed += 1;
        }
        println!(
            "{:<4} {:<13} {}",
            if finding.ok { "ok" } else { "FAIL" },
            finding.what,
            finding.detail
        );
    }
    if failed > 0 {
        println!(
            "{failed} problem{} found",
            if failed == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// One finding per permission the adapter needs in `namespace`, as the API server answers
/// a SelfSubjectAccessReview for it.
async fn permissions(adapter: &kubernetes::Kubernetes, namespace: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut refused = Vec::new();
    let started = Instant::now();
    for (verb, group, resource) in kubernetes::PERMISSIONS {
        match adapter
            .cluster()
            .can_i(verb, group, resource, namespace)
            .await
        {
            Ok(access) if access.allowed => {}
            Ok(access) => refused.push(format!(
                "{verb} {resource}{}",
                access
                    .reason
                    .map(|reason| format!(" ({reason})"))
                    .unwrap_or_default()
            )),
            Err(error) => {
                findings.push(Finding::failed(
                    "kubernetes",
                    format!("cannot ask the API server about {verb} {resource} in namespace {namespace}: {error}"),
                ));
                return findings;
            }
        }
    }
    if refused.is_empty() {
        findings.push(Finding::ok(
            "kubernetes",
            format!(
                "namespace {namespace}: all {} permissions granted (checked in {} ms)",
                kubernetes::PERMISSIONS.len(),
                started.elapsed().as_millis()
            ),
        ));
    } else {
        findings.push(Finding::failed(
            "kubernetes",
            format!(
                "namespace {namespace}: not granted: {}; see docs/kubernetes.md for the Role",
                refused.join(", ")
            ),
        ));
    }
    findings
}
