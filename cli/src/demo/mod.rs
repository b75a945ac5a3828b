//! `medic demo`: the whole pipeline on one machine. It starts the sandbox world (a small
//! simulated shop: Kubernetes API, Jaeger, Elasticsearch and Prometheus on loopback, whose
//! state follows what is done to it), a real `medic serve` with the example runbooks, and
//! plays the four incidents of the original runbook through the server: the world's own
//! alert rules fire and send Alertmanager webhooks, Medic runs the playbooks against the
//! world through its production adapters, and the demo prints what happened and checks it.
//!
//! The world and Medic share one clock that runs faster than wall time (60× by default),
//! so a half-hour incident passes in half a minute; the demo says so when it starts.

mod script;
mod server;

use anyhow::{Context, anyhow};
use medic_runtime::executor::Clock;
use medic_sandbox::clock::SimClock;
use medic_sandbox::promql::PrometheusServer;
use medic_sandbox::receiver::Receiver;
use medic_sandbox::shop::{Incident, LOGGING_NODE, SERVICES, Shop, ShopOptions, ShopPorts};
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `medic demo`.
pub struct DemoFlags {
    /// The journal (default: a temporary file removed at the end).
    pub store: Option<PathBuf>,
    /// Keep the server and the world running after the script.
    pub serve: bool,
    /// How many times faster than wall time the demo's clock runs.
    pub speed: u32,
    /// Where medic serve listens (default 127.0.0.1:0, or 127.0.0.1:8080 with `--serve`).
    pub listen: Option<String>,
    /// The port of the world's services and control API (default any, or 8181 with `--serve`).
    pub world_port: Option<u16>,
    /// Play only these incidents (default: all four, in order).
    pub only: Vec<String>,
}

/// The world's control API with `--serve` unless `--world-port` says otherwise.
pub const DEFAULT_WORLD_PORT: u16 = 8181;

pub fn demo(flags: DemoFlags) -> anyhow::Result<ExitCode> {
    let incidents = if flags.only.is_empty() {
        Incident::ALL.to_vec()
    } else {
        flags
            .only
            .iter()
            .map(|name| {
                Incident::parse(name).ok_or_else(|| {
                    anyhow!(
                        "no incident {name:?}: the demo plays {}",
                        Incident::ALL.map(Incident::name).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    // The server's own log only for what goes wrong (MEDIC_LOG=info shows every step).
    crate::engine::init_logs_at("warn");
    let runtime = crate::engine::runtime()?;
    let passed = runtime.block_on(run(flags, incidents))?;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How far after a reused journal's last run the demo's clock starts: past every cooldown
/// and `revert after` of the example runbooks, which a journal written on a fast clock
/// holds in the future.
const AFTER_LAST_RUN_MS: i64 = 2 * 3_600_000;

/// When the demo's clock starts: now, or after the runs of an earlier demo in `store`.
fn clock_origin(store: &std::path::Path) -> anyhow::Result<i64> {
    let now = medic_runtime::executor::system_ms();
    if !store.exists() {
        return Ok(now);
    }
    let journal = medic_runtime::journal::Journal::open(store)
        .with_context(|| format!("cannot open the journal {}", store.display()))?;
    let last = journal
        .runs(1)
        .with_context(|| format!("cannot read the runs of {}", store.display()))?
        .first()
        .map(|run| {
            run.finished_at
                .unwrap_or(run.started_at)
                .max(run.started_at)
        });
    Ok(match last {
        Some(last) => now.max(last.saturating_add(AFTER_LAST_RUN_MS)),
        None => now,
    })
}

async fn run(flags: DemoFlags, incidents: Vec<Incident>) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let speed = flags.speed.max(1);
    let dir = tempfile::Builder::new()
        .prefix("medic-demo-")
        .tempdir()
        .context("cannot create the demo's temporary folder")?;
    let store = flags
        .store
        .clone()
        .unwrap_or_else(|| dir.path().join("medic.db"));
    // A journal of an earlier demo holds times in the future of wall time (its clock ran
    // fast): this demo's clock starts after them, or their cooldowns would hold it back.
    let origin_ms = clock_origin(&store)?;
    let origin = tokio::time::Instant::now();
    let clock = Clock::scaled(origin_ms, origin, speed);
    let world_clock = SimClock::starting_at(origin_ms, origin.into_std(), speed);

    let receiver = Receiver::start()
        .await
        .context("cannot start the notification receiver")?;
    let world_port = flags
        .world_port
        .unwrap_or(if flags.serve { DEFAULT_WORLD_PORT } else { 0 });
    let shop = Shop::start(ShopOptions {
        clock: world_clock,
        seed: 7,
        namespace: "shop".into(),
        alert_url: None,
        alert_token: None,
        ports: ShopPorts {
            services: world_port,
            ..ShopPorts::default()
        },
    })
    .await
    .context("cannot start the sandbox world")?;
    let prometheus = PrometheusServer::start(shop.store(), world_clock)
        .await
        .context("cannot start the sandbox's Prometheus")?;
    let token = random_token();
    let endpoints = server::Endpoints {
        prometheus: prometheus.url(),
        jaeger: shop.jaeger_url(),
        elasticsearch: shop.elasticsearch_url(),
        kubeconfig: shop.kubernetes().kubeconfig(),
        services: shop.services_address(),
        service_names: SERVICES
            .iter()
            .map(|spec| spec.name.to_string())
            .chain([LOGGING_NODE.to_string()])
            .collect(),
        allow_hosts: SERVICES
            .iter()
            .map(|spec| format!("{}:80", spec.name))
            .chain([shop.logging_node_instance()])
            .collect(),
        smtp: receiver.smtp_address(),
        slack: format!("{}/slack", receiver.http_url()),
        topology: SERVICES
            .iter()
            .filter(|spec| !spec.callees.is_empty())
            .map(|spec| {
                (
                    spec.name.to_string(),
                    spec.callees
                        .iter()
                        .map(|callee| (*callee).to_string())
                        .collect(),
                )
            })
            .collect(),
    };
    let config = server::write_setup(dir.path(), &endpoints, &token)?;
    let listen = flags.listen.clone().unwrap_or_else(|| {
        if flags.serve {
            "127.0.0.1:8080".into()
        } else {
            "127.0.0.1:0".into()
        }
    });
    let medic = server::Server::start(&config, &store, &listen, token, clock).await?;
    shop.set_alert_url(medic.alertmanager_url(), Some(medic.token.clone()));

    let mut script = script::Script::new(&shop, &medic, &receiver, world_clock);
    script.introduce(speed, &store, flags.store.is_none(), flags.serve);
    let interrupted = tokio::select! {
        () = async {
            for incident in &incidents {
                script.play(*incident).await;
            }
        } => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    let passed = if interrupted {
        println!();
        println!("Interrupted: stopping the server and the world.");
        false
    } else {
        script.summarize(started.elapsed())
    };

    if flags.serve && !interrupted {
        println!();
        println!("The server and the world keep running (Ctrl-C stops them). Try:");
        println!(
            "  MEDIC_SERVER={} MEDIC_TOKEN={} medic runs",
            medic.url(),
            medic.token
        );
        println!(
            "  open {}/ui in a browser and log in with the token {}",
            medic.url(),
            medic.token
        );
        println!(
            "  medic demo trigger payment-latency --world http://{}",
            shop.services_address()
        );
        println!("  curl http://{}/control/state", shop.services_address());
        println!("  the world's Prometheus: {}", prometheus.url());
        script.follow_until_interrupted().await;
    }
    medic.stop().await?;
    prometheus.stop().await;
    shop.stop().await;
    receiver.stop().await;
    drop(dir);
    Ok(passed)
}

/// `medic demo trigger NAME`: starts an incident in a running demo's world.
pub fn trigger(name: &str, world: &str) -> anyhow::Result<ExitCode> {
    let incident = Incident::parse(name).ok_or_else(|| {
        anyhow!(
            "no incident {name:?}: use one of {}",
            Incident::ALL.map(Incident::name).join(", ")
        )
    })?;
    let url = format!(
        "{}/control/incidents/{}",
        world.trim_end_matches('/'),
        incident.name()
    );
    let runtime = crate::engine::runtime()?;
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(&url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .with_context(|| {
                format!("no demo world answers at {world} (is `medic demo --serve` running?)")
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!("the world refused: {status}: {text}");
        }
        println!("{} started in the demo's world", incident.name());
        Ok(ExitCode::SUCCESS)
    })
}

/// A bearer token for the demo's server: random enough for a loopback server that lives
/// for a minute.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut token = String::from("demo-");
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
        );
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}
