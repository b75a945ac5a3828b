//! The shop: a live simulated world for `medic demo`, reached through Medic's production
//! adapters. gateway → payment-gateway → order-service → inventory-service → inventory-db,
//! with payments-db behind payment-gateway, order-cache behind order-service, and a
//! `logging-node` with a disk. Its deployments live in the sandbox [`ApiServer`], its traces
//! in a [`JaegerServer`], its logs in an [`ElasticsearchServer`] (index `logs-shop`), its
//! series in a [`SeriesStore`] the sandbox's Prometheus serves, and its `/health` and
//! `/admin/cleanup` endpoints on one listener routed by `Host` ([`services`]).
//!
//! Every tick (15 s of the [`SimClock`]'s virtual time) the world reads each deployment's
//! `spec.replicas` from the API server, steps the [`model`] (so a `k8s.scale` by Medic, or
//! its revert, changes CPU and latency from the next tick), scrapes ([`metrics`]), logs
//! ([`logs`]), traces ([`traces`]) and evaluates its alert rules ([`alerting`]), posting
//! Alertmanager webhooks when an alert fires or resolves ([`webhook`]). At start it
//! backfills two hours of steady state, so rate windows and baselines work from the first
//! minute; samples, logs and traces older than three hours are pruned. Every timestamp is
//! the clock's; everything is deterministic for a seed but for wall-time jitter (when a
//! tick runs relative to Medic's requests).
//!
//! # Simplified
//!
//! - For the HPA-managed payment-gateway the world is the HPA controller: it keeps
//!   `spec.replicas` at Kubernetes' `ceil(replicas × cpu / 80%)`, clamped to
//!   `[minReplicas, maxReplicas]`, at once (no tolerance, no stabilization window), so a
//!   raised `minReplicas` scales it up and lowering it back scales it down.
//! - Services are not processes: `/health` answers from the model, latency histograms are
//!   filled analytically, and logs are a fixed sample of lines per tick.

mod alerting;
pub(crate) mod logs;
mod metrics;
mod model;
mod services;
mod snapshot;
#[cfg(test)]
mod tests;
mod traces;
mod webhook;

pub use alerting::{AlertStatus, Rule, rules, rules_file};
pub use logs::INDEX as LOG_INDEX;
pub use model::{Incident, LOGGING_NODE, SERVICES, Spec, TICK_MS};
pub use snapshot::{AlertSnapshot, DatabaseSnapshot, IncidentSnapshot, ServiceSnapshot, Snapshot};

use crate::clock::SimClock;
use crate::elasticsearch::ElasticsearchServer;
use crate::jaeger::JaegerServer;
use crate::kubernetes::ApiServer;
use crate::promql::{Labels, SeriesStore};
use alerting::{Evaluator, Notification};
use metrics::{Pods, Scraper};
use model::{Model, Noise, State};
use serde::Serialize;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use traces::Tracer;

/// Virtual time of history backfilled at start.
const BACKFILL_MS: i64 = 2 * 3600 * 1000;
/// Virtual time samples, logs and traces are kept.
const RETENTION_MS: i64 = 3 * 3600 * 1000;
/// Ticks between two prunings (five virtual minutes).
const PRUNE_EVERY: u64 = 20;
/// Ticks the loop catches up at most when it fell behind (a busy machine on a fast clock);
/// beyond, it was paused (a debugger, a suspended laptop) and skips ahead to the clock.
const MAX_CATCH_UP: i64 = 40;
/// The HPA of payment-gateway.
const HPA_DEPLOYMENT: &str = "payment-gateway";
const HPA_MIN: i32 = 2;
const HPA_MAX: i32 = 6;
/// The CPU utilization the HPA aims at (the sandbox API server's default metric).
const HPA_TARGET: f64 = 0.8;
/// Events kept for a slow subscriber.
const EVENTS: usize = 1024;

/// Ports to bind on 127.0.0.1; 0 is any free one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShopPorts {
    /// Must be 0: the sandbox [`ApiServer`] binds a free port only.
    pub kubernetes: u16,
    pub jaeger: u16,
    pub elasticsearch: u16,
    pub services: u16,
}

/// How the shop starts.
#[derive(Debug, Clone)]
pub struct ShopOptions {
    pub clock: SimClock,
    pub seed: u64,
    /// The cluster namespace of the deployments (`shop`).
    pub namespace: String,
    /// Where alert webhooks go; none until [`Shop::set_alert_url`].
    pub alert_url: Option<String>,
    pub alert_token: Option<String>,
    pub ports: ShopPorts,
}

impl ShopOptions {
    /// Namespace `shop`, seed 7, no alert URL yet, free ports.
    pub fn new(clock: SimClock) -> ShopOptions {
        ShopOptions {
            clock,
            seed: 7,
            namespace: "shop".into(),
            alert_url: None,
            alert_token: None,
            ports: ShopPorts::default(),
        }
    }
}

/// What happened in the shop, for the demo to narrate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ShopEvent {
    /// A webhook was delivered.
    AlertSent {
        name: String,
        status: AlertStatus,
        labels: Labels,
    },
    /// A webhook could not be delivered, after its retries.
    AlertFailed {
        name: String,
        status: AlertStatus,
        error: String,
    },
    ReplicasChanged {
        deployment: String,
        from: i32,
        to: i32,
    },
    /// The logging node's disk, used share before and after a cleanup.
    DiskCleaned {
        from: f64,
        to: f64,
    },
    IncidentStarted {
        incident: Incident,
    },
    IncidentEnded {
        incident: Incident,
    },
}

/// An incident under way, in virtual milliseconds.
#[derive(Debug, Clone, Copy)]
struct Running {
    started_ms: i64,
    ends_ms: Option<i64>,
}

/// Everything that changes from tick to tick.
struct World {
    model: Model,
    scraper: Scraper,
    pods: Pods,
    log_noise: Noise,
    tracer: Tracer,
    evaluator: Evaluator,
    incidents: BTreeMap<Incident, Running>,
    /// The replicas seen at the last tick.
    replicas: BTreeMap<String, i32>,
    last: Option<State>,
    /// Lines of events between ticks (a cleanup, a deploy), indexed at the next tick.
    pending_logs: Vec<Json>,
    ticks: u64,
}

/// What the tick loop, the services server and [`Shop`] share.
pub(crate) struct Inner {
    clock: SimClock,
    namespace: String,
    store: SeriesStore,
    world: Mutex<World>,
    events: broadcast::Sender<ShopEvent>,
    target: watch::Sender<Option<webhook::Target>>,
    notifications: mpsc::UnboundedSender<Notification>,
}

/// The servers the tick writes to.
#[derive(Clone)]
struct Servers {
    kubernetes: Arc<ApiServer>,
    jaeger: Arc<JaegerServer>,
    elasticsearch: Arc<ElasticsearchServer>,
}

/// The running shop. Dropping it stops its loops and servers.
pub struct Shop {
    inner: Arc<Inner>,
    servers: Servers,
    services: services::Server,
    ticker: Task,
    sender: Task,
}

/// A task aborted when dropped.
struct Task(Option<JoinHandle<()>>);

impl Task {
    /// Aborts the task and waits for it to end.
    async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl Shop {
    /// Starts the API server (the deployments and the HPA), Jaeger, Elasticsearch and the
    /// services listener, backfills two hours and starts ticking.
    pub async fn start(options: ShopOptions) -> std::io::Result<Shop> {
        if options.ports.kubernetes != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the sandbox Kubernetes API server binds a free port only (ports.kubernetes must be 0)",
            ));
        }
        let clock = options.clock;
        let namespace = options.namespace.clone();
        let listener = services::bind(options.ports.services).await?;
        let services_address = listener.local_addr()?;
        let kubernetes = Arc::new(ApiServer::start().await?);
        for (deployment, replicas) in model::deployments() {
            kubernetes.add_deployment(&namespace, deployment, Some(replicas));
        }
        kubernetes.add_hpa(
            &namespace,
            HPA_DEPLOYMENT,
            HPA_DEPLOYMENT,
            Some(HPA_MIN),
            HPA_MAX,
        );
        let jaeger = Arc::new(JaegerServer::start_on(options.ports.jaeger).await?);
        jaeger.set_dependencies(traces::dependencies());
        let elasticsearch =
            Arc::new(ElasticsearchServer::start_on(options.ports.elasticsearch).await?);
        let disk_instance = format!("{LOGGING_NODE}:{}", services_address.port());
        let world = World {
            model: Model::new(options.seed),
            scraper: Scraper::new(&namespace, &disk_instance, options.seed),
            pods: Pods::default(),
            log_noise: Noise::new(options.seed ^ 0x1095),
            tracer: Tracer::new(options.seed),
            evaluator: Evaluator::new(alerting::rules(&namespace)),
            incidents: BTreeMap::new(),
            replicas: BTreeMap::new(),
            last: None,
            pending_logs: Vec::new(),
            ticks: 0,
        };
        let target = options.alert_url.map(|url| webhook::Target {
            url,
            token: options.alert_token,
        });
        let (target, target_changes) = watch::channel(target);
        let (notifications, queued) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENTS);
        let inner = Arc::new(Inner {
            clock,
            namespace,
            store: SeriesStore::new(),
            world: Mutex::new(world),
            events,
            target,
            notifications,
        });
        let servers = Servers {
            kubernetes,
            jaeger,
            elasticsearch,
        };
        // The backfill: steady state, at the replicas the cluster starts with. Ticks are
        // computation: they run on the blocking pool, never on a worker that serves the
        // sandbox's APIs (or, in the demo, medic serve).
        let at = {
            let (inner, servers) = (inner.clone(), servers.clone());
            tokio::task::spawn_blocking(move || {
                let started = inner.clock.now_ms();
                let mut at = started - BACKFILL_MS;
                while at < started {
                    tick(&inner, &servers, at, false);
                    at += TICK_MS;
                }
                // The clock read on while the backfill ran (minutes of a fast clock): the
                // ticks of that time too, a bounded number of them, since on a loaded
                // machine a tick can take longer than the clock's tick and this would never
                // catch up.
                let mut extra = 0;
                while at < inner.clock.now_ms() && extra < MAX_CATCH_UP {
                    tick(&inner, &servers, at, false);
                    at += TICK_MS;
                    extra += 1;
                }
                at
            })
            .await
            .map_err(std::io::Error::other)?
        };
        let services = services::Server::serve(listener, inner.clone())?;
        let sender = Task(Some({
            let inner = inner.clone();
            let external_url = "http://alertmanager.shop:9093".to_string();
            tokio::spawn(webhook::run(
                clock,
                external_url,
                target_changes,
                queued,
                move |(notification, outcome)| {
                    let name = notification.name().to_string();
                    let event = match outcome {
                        Ok(()) => ShopEvent::AlertSent {
                            name,
                            status: notification.status,
                            labels: notification.labels,
                        },
                        Err(error) => ShopEvent::AlertFailed {
                            name,
                            status: notification.status,
                            error: error.to_string(),
                        },
                    };
                    let _ = inner.events.send(event);
                },
            ))
        }));
        let ticker = Task(Some({
            let inner = inner.clone();
            let servers = Servers {
                kubernetes: servers.kubernetes.clone(),
                jaeger: servers.jaeger.clone(),
                elasticsearch: servers.elasticsearch.clone(),
            };
            tokio::spawn(async move {
                let mut next = at;
                loop {
                    let now = inner.clock.now_ms();
                    if now < next {
                        inner
                            .clock
                            .sleep(Duration::from_millis(
                                u64::try_from(next - now).unwrap_or(0),
                            ))
                            .await;
                        continue;
                    }
                    if now - next > MAX_CATCH_UP * TICK_MS {
                        next = now - (now - next) % TICK_MS;
                    }
                    let (ticking, writes_to) = (inner.clone(), servers.clone());
                    let at = next;
                    if tokio::task::spawn_blocking(move || tick(&ticking, &writes_to, at, true))
                        .await
                        .is_err()
                    {
                        // The tick panicked or the runtime is shutting down.
                        return;
                    }
                    next += TICK_MS;
                }
            })
        }));
        Ok(Shop {
            inner,
            servers,
            services,
            ticker,
            sender,
        })
    }

    /// The clock the world's time comes from.
    pub fn clock(&self) -> SimClock {
        self.inner.clock
    }

    /// The series the world scrapes into (what the sandbox's Prometheus serves).
    pub fn store(&self) -> SeriesStore {
        self.inner.store.clone()
    }

    pub fn kubernetes(&self) -> &ApiServer {
        &self.servers.kubernetes
    }

    pub fn jaeger_url(&self) -> String {
        self.servers.jaeger.url()
    }

    pub fn elasticsearch_url(&self) -> String {
        self.servers.elasticsearch.url()
    }

    /// The services listener: `/health`, `/admin/cleanup` by `Host`, and `/control`.
    pub fn services_address(&self) -> SocketAddr {
        self.services.address
    }

    /// The `instance` of the logging node's disk series and of its Disk_Full alert.
    pub fn logging_node_instance(&self) -> String {
        format!("{LOGGING_NODE}:{}", self.services.address.port())
    }

    /// Where alert webhooks go from now on (notifications made before wait for it).
    pub fn set_alert_url(&self, url: String, token: Option<String>) {
        self.inner
            .target
            .send_replace(Some(webhook::Target { url, token }));
    }

    pub fn trigger(&self, incident: Incident) {
        self.inner.trigger(incident);
    }

    pub fn end(&self, incident: Incident) {
        self.inner.end(incident);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ShopEvent> {
        self.inner.events.subscribe()
    }

    /// Stops ticking and sending, then the servers.
    pub async fn stop(self) {
        let Shop {
            inner: _,
            servers,
            services,
            ticker,
            sender,
        } = self;
        ticker.stop().await;
        sender.stop().await;
        services.stop().await;
        let Servers {
            kubernetes,
            jaeger,
            elasticsearch,
        } = servers;
        if let Ok(kubernetes) = Arc::try_unwrap(kubernetes) {
            kubernetes.stop().await;
        }
        if let Ok(jaeger) = Arc::try_unwrap(jaeger) {
            jaeger.stop().await;
        }
        drop(elasticsearch);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, World> {
        // Nothing panics while holding the lock; a poisoned world is still whole.
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, event: ShopEvent) {
        // No subscriber is no error.
        let _ = self.events.send(event);
    }

    fn trigger(&self, incident: Incident) {
        let now = self.clock.now_ms();
        let mut world = self.lock();
        world.incidents.insert(
            incident,
            Running {
                started_ms: now,
                ends_ms: incident.duration_ms().map(|duration| now + duration),
            },
        );
        if incident == Incident::PaymentLatency {
            world.pending_logs.push(logs::event(
                now,
                "order-service",
                "INFO",
                "started order-service v2.14.0 (migration 0042_drop_order_items_customer_index applied)",
            ));
        }
        drop(world);
        self.emit(ShopEvent::IncidentStarted { incident });
    }

    fn end(&self, incident: Incident) {
        let ended = self.lock().incidents.remove(&incident).is_some();
        if ended {
            self.emit(ShopEvent::IncidentEnded { incident });
        }
    }

    /// Whether `service` is one of the shop's endpoints, and its health.
    fn health(&self, service: &str) -> Option<Result<(), String>> {
        if service == LOGGING_NODE {
            return Some(Ok(()));
        }
        if !model::http_services().any(|known| known == service) {
            return None;
        }
        let world = self.lock();
        let healthy = world
            .last
            .as_ref()
            .and_then(|state| state.service(service))
            .is_none_or(|current| current.healthy);
        Some(if healthy {
            Ok(())
        } else {
            Err(format!(
                "{service}: database check failed (inventory-db: too many connections)"
            ))
        })
    }

    /// Frees the logging node's disk; answers what was freed.
    fn cleanup(&self, asked: &str) -> Json {
        let now = self.clock.now_ms();
        let mut world = self.lock();
        let (before, after) = world.model.clean_disk();
        let ended = world.incidents.remove(&Incident::DiskFull).is_some();
        // The node exporter would show the freed disk at its next scrape; the sample is
        // written now so a check right after the cleanup sees it.
        self.store
            .overwrite(&world.scraper.disk_labels(), now, after);
        let freed_bytes = ((before - after) * model::DISK_BYTES).max(0.0).round();
        let freed_gib = freed_bytes / (1024.0 * 1024.0 * 1024.0);
        world.pending_logs.push(logs::event(
            now,
            LOGGING_NODE,
            "INFO",
            &format!(
                "cleanup ({}) freed {freed_gib:.1} GiB: /var/log is {:.0}% full",
                asked.trim(),
                after * 100.0
            ),
        ));
        drop(world);
        if ended {
            self.emit(ShopEvent::IncidentEnded {
                incident: Incident::DiskFull,
            });
        }
        self.emit(ShopEvent::DiskCleaned {
            from: before,
            to: after,
        });
        json!({
            "freed_bytes": freed_bytes,
            "used_before": format!("{:.0}%", before * 100.0),
            "used_after": format!("{:.0}%", after * 100.0),
            "cleaned": ["/var/log/shop/tmp", "/var/log/shop/archive"],
        })
    }
}

/// The replicas each deployment runs, read from the API server; for the HPA's deployment,
/// written first as its controller would.
fn replicas(inner: &Inner, kubernetes: &ApiServer, last: Option<&State>) -> BTreeMap<String, i32> {
    let namespace = inner.namespace.as_str();
    let mut replicas = BTreeMap::new();
    for (deployment, _) in model::deployments() {
        // A deployment gone from the cluster runs no pods.
        let mut count = kubernetes.replicas(namespace, deployment).unwrap_or(0);
        if deployment == HPA_DEPLOYMENT {
            let min = kubernetes
                .hpa_min(namespace, HPA_DEPLOYMENT)
                .unwrap_or(HPA_MIN);
            let utilization = last
                .and_then(|state| state.service(deployment))
                .and_then(|current| current.utilization)
                .filter(|u| u.is_finite());
            let wanted =
                utilization.map_or(count, |u| (f64::from(count) * u / HPA_TARGET).ceil() as i32);
            let desired = wanted.clamp(min.min(HPA_MAX), HPA_MAX);
            if desired != count {
                kubernetes.set_replicas(namespace, deployment, desired);
                count = desired;
            }
        }
        replicas.insert(deployment.to_string(), count);
    }
    replicas
}

/// One tick at `at_ms`: the world steps, is scraped, logs, traces and (when `live`)
/// evaluates its alerts and emits events.
fn tick(inner: &Inner, servers: &Servers, at_ms: i64, live: bool) {
    let last = inner.lock().last.clone();
    let replicas = replicas(inner, &servers.kubernetes, last.as_ref());
    let mut events = Vec::new();
    let mut guard = inner.lock();
    let world = &mut *guard;
    let ended: Vec<Incident> = world
        .incidents
        .iter()
        .filter(|(_, running)| running.ends_ms.is_some_and(|end| end <= at_ms))
        .map(|(incident, _)| *incident)
        .collect();
    for incident in ended {
        world.incidents.remove(&incident);
        events.push(ShopEvent::IncidentEnded { incident });
    }
    for (deployment, count) in &replicas {
        if let Some(before) = world.replicas.get(deployment).copied()
            && before != *count
        {
            events.push(ShopEvent::ReplicasChanged {
                deployment: deployment.clone(),
                from: before,
                to: *count,
            });
        }
        world.pods.sync(deployment, *count);
    }
    world.replicas = replicas.clone();
    let active: BTreeSet<Incident> = world.incidents.keys().copied().collect();
    let state = world.model.step(at_ms, &replicas, &active);
    world
        .scraper
        .scrape(&inner.store, &state, &world.pods, at_ms);
    let mut docs = std::mem::take(&mut world.pending_logs);
    docs.extend(logs::lines(&mut world.log_noise, &state));
    let traces = world.tracer.traces(&state);
    let notifications = if live {
        world.evaluator.evaluate(&inner.store, at_ms)
    } else {
        Vec::new()
    };
    // Said before the new state is visible: whoever sees it in a snapshot finds its events.
    if live {
        for event in events.drain(..) {
            inner.emit(event);
        }
    }
    world.last = Some(state);
    world.ticks += 1;
    let prune = world.ticks.is_multiple_of(PRUNE_EVERY);
    drop(guard);
    servers.elasticsearch.index(logs::INDEX, docs);
    servers.jaeger.add_traces(traces);
    for notification in notifications {
        // The sender stops only with the shop.
        let _ = inner.notifications.send(notification);
    }
    if prune {
        let oldest = at_ms - RETENTION_MS;
        inner.store.retain_since(oldest);
        servers.elasticsearch.retain(logs::INDEX, |document| {
            document
                .get("@timestamp")
                .and_then(Json::as_str)
                .and_then(logs::parse_rfc3339)
                .is_none_or(|at| at >= oldest)
        });
        servers.jaeger.retain_since(oldest.saturating_mul(1000));
    }
}
