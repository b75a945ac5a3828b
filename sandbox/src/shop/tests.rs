//! Tests of the shop: the model's arithmetic, the alert rules' semantics, and the running
//! world over HTTP as Medic's adapters reach it, on a clock 600 times faster than wall time
//! (a 15 s tick is 25 ms).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use super::alerting::{self, Evaluator, Rule};
use super::model::{Model, State};
use super::*;
use crate::promql::{self, QueryValue};
use std::sync::Arc;
use std::time::Instant;

/// 2030-03-17T17:46:40Z: far from the wall clock, so a wall timestamp would show.
const ORIGIN_MS: i64 = 1_900_000_000_000;
const SPEED: u32 = 600;

fn clock() -> SimClock {
    SimClock::starting_at(ORIGIN_MS, Instant::now(), SPEED)
}

/// Whether `at_ms` is the test clock's time (minutes of it pass while a shop starts, more
/// on a loaded machine), not the wall clock's, years before it.
fn virtual_time(at_ms: i64) -> bool {
    (ORIGIN_MS - 3 * 3_600_000..ORIGIN_MS + 24 * 3_600_000).contains(&at_ms)
}

async fn shop() -> Shop {
    Shop::start(ShopOptions::new(clock())).await.unwrap()
}

/// Polls the snapshot until `done` holds; fails after `wall_seconds`.
async fn wait_for(shop: &Shop, wall_seconds: u64, what: &str, done: impl Fn(&Snapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(wall_seconds);
    loop {
        let snapshot = shop.snapshot();
        if done(&snapshot) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; the shop is {}",
            serde_json::to_string_pretty(&snapshot).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn service<'a>(snapshot: &'a Snapshot, name: &str) -> &'a ServiceSnapshot {
    snapshot.services.get(name).unwrap()
}

fn cpu(snapshot: &Snapshot, name: &str) -> f64 {
    service(snapshot, name).cpu.unwrap()
}

fn steady(model: &mut Model, replicas: &[(&str, i32)], incidents: &[Incident]) -> State {
    let replicas = replicas
        .iter()
        .map(|(name, count)| (name.to_string(), *count))
        .collect();
    let incidents = incidents.iter().copied().collect();
    model.step(ORIGIN_MS, &replicas, &incidents)
}

#[test]
fn scaling_cools_the_model_and_a_seed_gives_the_same_world() {
    let mut model = Model::new(7);
    let calm = steady(&mut model, &[], &[]);
    let hot = steady(&mut model, &[], &[Incident::OrderCpu]);
    let scaled = steady(&mut model, &[("order-service", 3)], &[Incident::OrderCpu]);
    let order = |state: &State| state.service("order-service").unwrap().clone();
    assert!(
        (0.35..0.45).contains(&order(&calm).cpu.unwrap()),
        "{calm:?}"
    );
    assert!((0.92..0.98).contains(&order(&hot).cpu.unwrap()), "{hot:?}");
    assert!(
        (0.6..0.66).contains(&order(&scaled).cpu.unwrap()),
        "{scaled:?}"
    );
    assert!(order(&scaled).latency_ms < order(&hot).latency_ms - 10.0);
    // The slow query reaches payment-gateway's p99, not the services below order-service.
    let slow = steady(&mut model, &[], &[Incident::PaymentLatency]);
    let payment = slow.service("payment-gateway").unwrap();
    assert!(payment.p99_ms() > 600.0, "{payment:?}");
    assert!(payment.error_share < 0.02);
    assert!(slow.service("inventory-service").unwrap().latency_ms < 40.0);
    let saturated = steady(&mut model, &[], &[Incident::InventoryDb]);
    let inventory = saturated.service("inventory-service").unwrap();
    assert!(!inventory.healthy && (0.06..0.11).contains(&inventory.error_share));
    assert!(
        saturated.databases["inventory-db"].active + saturated.databases["inventory-db"].idle
            >= 95.0
    );
    assert!(saturated.service("payment-gateway").unwrap().p99_ms() < 500.0);
    // Determinism.
    let mut again = Model::new(7);
    assert_eq!(steady(&mut again, &[], &[]), calm);
}

#[test]
fn rules_fire_after_for_keep_firing_then_resolve() {
    let store = SeriesStore::new();
    let rule = Rule {
        alert: "Hot",
        expr: "temperature > 1".into(),
        for_ms: 60_000,
        keep_firing_for_ms: 120_000,
        labels: vec![("severity", "critical")],
        annotations: vec![
            ("value", "{{ $value | humanizePercentage }}"),
            ("summary", "{{ $labels.room }} is hot"),
        ],
    };
    let mut evaluator = Evaluator::new(vec![rule]);
    let series = metrics::labels("temperature", &[("room", "kitchen")]);
    let mut at = ORIGIN_MS;
    let mut step = |value: f64, evaluator: &mut Evaluator| {
        at += TICK_MS;
        store.append(&series, at, value);
        (at, evaluator.evaluate(&store, at))
    };
    assert!(step(2.0, &mut evaluator).1.is_empty(), "pending first");
    for _ in 0..3 {
        assert!(step(2.0, &mut evaluator).1.is_empty());
    }
    let (fired_at, fired) = step(2.0, &mut evaluator);
    assert_eq!(fired.len(), 1, "fires once pending for a minute");
    let alert = &fired[0];
    assert_eq!(alert.status, AlertStatus::Firing);
    assert_eq!(alert.labels["alertname"], "Hot");
    assert_eq!(alert.labels["room"], "kitchen");
    assert_eq!(alert.labels["severity"], "critical");
    assert!(!alert.labels.contains_key("__name__"));
    assert_eq!(alert.annotations["value"], "200%");
    assert_eq!(alert.annotations["summary"], "kitchen is hot");
    let payload = alert.payload("http://am");
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(payload["groupKey"], "{}:{alertname=\"Hot\"}");
    assert_eq!(
        payload["alerts"][0]["fingerprint"].as_str().unwrap().len(),
        16
    );
    // Cool: kept firing for two minutes, then resolved.
    for _ in 0..7 {
        assert!(step(0.5, &mut evaluator).1.is_empty());
        assert_eq!(evaluator.firing().len(), 1);
    }
    let (resolved_at, resolved) = step(0.5, &mut evaluator);
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].status, AlertStatus::Resolved);
    assert_eq!(resolved[0].starts_at_ms, fired_at);
    assert_eq!(resolved[0].ends_at_ms, Some(resolved_at));
    assert!(evaluator.firing().is_empty());
    // A blip shorter than `for` never fires.
    assert!(step(2.0, &mut evaluator).1.is_empty());
    assert!(step(0.5, &mut evaluator).1.is_empty());
    for _ in 0..6 {
        assert!(step(2.0, &mut evaluator).1.is_empty() || evaluator.firing().len() == 1);
    }
}

#[test]
fn the_rules_parse_and_render_as_a_rules_file() {
    let rules = alerting::rules("shop");
    for rule in &rules {
        let answer = promql::instant(&SeriesStore::new(), &rule.expr, ORIGIN_MS);
        assert_eq!(answer, Ok(QueryValue::Vector(vec![])), "{}", rule.expr);
    }
    let file = rules_file(&rules);
    assert!(file.contains("- alert: High_CPU_Usage"), "{file}");
    assert!(file.contains("keep_firing_for: 5m"), "{file}");
    let labels = metrics::labels("x", &[("service", "db"), ("database", "inventory-db")]);
    assert_eq!(
        alerting::expand(
            "{{ $labels.service }}: {{ $value | printf \"%.0f\" }} errors ({{ $value | humanizeDuration }})",
            &labels,
            0.7804
        ),
        "db: 1 errors (780ms)"
    );
}

/// The value of `query` at the store's newest time.
fn value(store: &SeriesStore, query: &str, at_ms: i64) -> f64 {
    match promql::instant(store, query, at_ms) {
        Ok(QueryValue::Vector(vector)) if vector.len() == 1 => vector[0].1,
        other => panic!("{query}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_answer_diagnose_templates() {
    let shop = shop().await;
    let store = shop.store();
    let now = shop.snapshot().at_ms;
    assert!(virtual_time(now), "virtual time: {now}");
    let with = |template: &str, label: &str, name: &str| {
        template.replace("MATCH", &format!("{label}=\"{name}\""))
    };
    for service in [
        "gateway",
        "payment-gateway",
        "order-service",
        "inventory-service",
    ] {
        let p99 = value(
            &store,
            &with(
                "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{MATCH}[5m])))",
                "service",
                service,
            ),
            now,
        );
        assert!((0.005..0.3).contains(&p99), "{service} p99 {p99}");
        let errors = value(
            &store,
            &with(
                r#"sum(rate(http_requests_total{MATCH, code=~"5.."}[5m])) / sum(rate(http_requests_total{MATCH}[5m]))"#,
                "service",
                service,
            ),
            now,
        );
        assert!(errors < 0.01, "{service} errors {errors}");
        let cpu = value(
            &store,
            &with(
                r#"sum(rate(container_cpu_usage_seconds_total{MATCH}[5m])) / sum(kube_pod_container_resource_limits{MATCH, resource="cpu"})"#,
                "container",
                service,
            ),
            now,
        );
        assert!((0.25..0.5).contains(&cpu), "{service} cpu {cpu}");
        let memory = value(
            &store,
            &with(
                r#"sum(container_memory_working_set_bytes{MATCH}) / sum(kube_pod_container_resource_limits{MATCH, resource="memory"})"#,
                "container",
                service,
            ),
            now,
        );
        assert!((0.2..0.5).contains(&memory), "{service} memory {memory}");
    }
    for database in ["inventory-db", "payments-db"] {
        let saturation = value(
            &store,
            &with(
                "sum(pg_stat_activity_count{MATCH}) / max(pg_settings_max_connections{MATCH})",
                "service",
                database,
            ),
            now,
        );
        assert!((0.1..0.4).contains(&saturation), "{database} {saturation}");
        assert_eq!(
            value(&store, &with("min(pg_up{MATCH})", "service", database), now),
            1.0
        );
        let errors = value(
            &store,
            &with(
                "sum(rate(pg_stat_database_xact_rollback{MATCH}[5m])) + sum(rate(pg_stat_database_deadlocks{MATCH}[5m]))",
                "service",
                database,
            ),
            now,
        );
        assert!(errors < 0.2, "{database} {errors}");
    }
    // Two hours of history: a rate an hour and a half ago answers.
    let earlier = now - 90 * 60_000;
    let cpu = value(
        &store,
        r#"sum(rate(container_cpu_usage_seconds_total{container="order-service"}[5m]))"#,
        earlier,
    );
    assert!(cpu > 0.5, "two pods at 40%: {cpu}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_cools_order_service_and_a_revert_heats_it_again() {
    let shop = shop().await;
    let mut events = shop.subscribe();
    shop.trigger(Incident::OrderCpu);
    wait_for(&shop, 10, "order-service running hot", |snapshot| {
        cpu(snapshot, "order-service") > 0.9
    })
    .await;
    let hot = shop.snapshot();
    let hot_p99 = service(&hot, "order-service").p99_ms;
    shop.kubernetes().set_replicas("shop", "order-service", 3);
    wait_for(&shop, 10, "three replicas", |snapshot| {
        service(snapshot, "order-service").replicas == Some(3)
    })
    .await;
    let scaled = shop.snapshot();
    assert!(cpu(&scaled, "order-service") < 0.7, "{scaled:?}");
    assert!(service(&scaled, "order-service").p99_ms < hot_p99 - 15.0);
    assert!(service(&scaled, "payment-gateway").p99_ms < service(&hot, "payment-gateway").p99_ms);
    // The store sees the third pod.
    let pods = match promql::instant(
        &shop.store(),
        r#"count(kube_pod_container_resource_limits{container="order-service", resource="cpu"})"#,
        scaled.at_ms,
    ) {
        Ok(QueryValue::Vector(vector)) => vector[0].1,
        other => panic!("{other:?}"),
    };
    assert!(pods >= 3.0, "{pods}");
    // The revert, while the batch job runs (started again: at this speed its eight
    // minutes are under a second of wall time, which a loaded machine can overrun).
    shop.trigger(Incident::OrderCpu);
    shop.kubernetes().set_replicas("shop", "order-service", 2);
    wait_for(&shop, 10, "the revert", |snapshot| {
        service(snapshot, "order-service").replicas == Some(2)
            && cpu(snapshot, "order-service") > 0.9
    })
    .await;
    let mut changes = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let ShopEvent::ReplicasChanged {
            deployment,
            from,
            to,
        } = event
        {
            changes.push((deployment, from, to));
        }
    }
    assert_eq!(
        changes,
        [
            ("order-service".to_string(), 2, 3),
            ("order-service".to_string(), 3, 2)
        ]
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_world_is_payment_gateways_hpa() {
    let shop = shop().await;
    let replicas = |shop: &Shop| shop.kubernetes().replicas("shop", "payment-gateway");
    shop.kubernetes().set_replicas("shop", "payment-gateway", 1);
    wait_for(&shop, 10, "the HPA's minimum restored", |_| {
        replicas(&shop) == Some(2)
    })
    .await;
    shop.kubernetes().set_hpa_min("shop", "payment-gateway", 4);
    wait_for(&shop, 10, "a raised minimum", |snapshot| {
        service(snapshot, "payment-gateway").replicas == Some(4)
    })
    .await;
    // Lowering the minimum back (a revert) scales it down: its CPU is far below the target.
    shop.kubernetes().set_hpa_min("shop", "payment-gateway", 2);
    wait_for(&shop, 10, "the minimum lowered", |snapshot| {
        service(snapshot, "payment-gateway").replicas == Some(2)
    })
    .await;
    shop.kubernetes().set_replicas("shop", "payment-gateway", 9);
    wait_for(&shop, 10, "the HPA's maximum", |_| {
        replicas(&shop) == Some(2)
    })
    .await;
    shop.stop().await;
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn call(
    shop: &Shop,
    method: reqwest::Method,
    host: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    let answer = client()
        .request(method, format!("http://{}{path}", shop.services_address()))
        .header(reqwest::header::HOST, host)
        .body("tmp,logs")
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_cleanup_and_control_answer_by_host() {
    let shop = shop().await;
    let mut events = shop.subscribe();
    let (status, body) = call(&shop, reqwest::Method::GET, "payment-gateway", "/health").await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    let (status, _) = call(
        &shop,
        reqwest::Method::GET,
        "inventory-service:80",
        "/health",
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(&shop, reqwest::Method::GET, "unknown-service", "/health").await;
    assert_eq!(status, 404, "{body}");
    // The control API starts an incident; inventory-service turns unhealthy.
    let (status, _) = call(
        &shop,
        reqwest::Method::POST,
        "127.0.0.1",
        "/control/incidents/inventory-db",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &shop,
        reqwest::Method::POST,
        "127.0.0.1",
        "/control/incidents/flood",
    )
    .await;
    assert_eq!(status, 404);
    wait_for(&shop, 10, "inventory-service unhealthy", |snapshot| {
        !service(snapshot, "inventory-service").healthy
    })
    .await;
    let (status, body) = call(&shop, reqwest::Method::GET, "inventory-service", "/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    let (status, _) = call(&shop, reqwest::Method::GET, "payment-gateway", "/health").await;
    assert_eq!(status, 200, "payment-gateway stays healthy");
    let (status, state) = call(&shop, reqwest::Method::GET, "localhost", "/control/state").await;
    assert_eq!(status, 200);
    assert_eq!(state["incidents"][0]["incident"], "inventory-db");
    let (status, _) = call(
        &shop,
        reqwest::Method::DELETE,
        "127.0.0.1",
        "/control/incidents/inventory-db",
    )
    .await;
    assert_eq!(status, 200);
    assert!(shop.snapshot().incidents.is_empty());
    // The disk fills, and a cleanup frees it at once, in the series too.
    shop.trigger(Incident::DiskFull);
    wait_for(&shop, 10, "a full disk", |snapshot| {
        snapshot.disk_used > 0.88
    })
    .await;
    let instance = shop.logging_node_instance();
    let (status, body) = call(&shop, reqwest::Method::POST, &instance, "/admin/cleanup").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["freed_bytes"].as_f64().unwrap() > 50e9, "{body}");
    let used = value(
        &shop.store(),
        &format!(r#"max(disk_used_ratio{{instance="{instance}"}})"#),
        shop.clock().now_ms(),
    );
    assert!(used < 0.45, "{used}");
    wait_for(&shop, 10, "the disk freed", |snapshot| {
        snapshot.disk_used < 0.45
    })
    .await;
    assert!(
        shop.snapshot().incidents.is_empty(),
        "cleaning ends the incident"
    );
    let (status, _) = call(&shop, reqwest::Method::GET, &instance, "/admin/cleanup").await;
    assert_eq!(status, 405);
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(seen.iter().any(|event| matches!(event, ShopEvent::DiskCleaned { from, to } if *from > 0.88 && *to < 0.45)), "{seen:?}");
    assert!(seen.contains(&ShopEvent::IncidentStarted {
        incident: Incident::InventoryDb
    }));
    assert!(seen.contains(&ShopEvent::IncidentEnded {
        incident: Incident::DiskFull
    }));
    shop.stop().await;
}

/// The webhooks received: Authorization and body of each.
type Received = Arc<std::sync::Mutex<Vec<(Option<String>, serde_json::Value)>>>;

/// A webhook receiver: the requests it got (Authorization, body), failing the first
/// `failures` with 503.
struct Receiver {
    url: String,
    got: Received,
    _server: tokio::task::JoinHandle<()>,
}

async fn receiver(failures: usize) -> Receiver {
    use axum::http::HeaderMap;
    let got: Received = Arc::default();
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let record = got.clone();
    let app = axum::Router::new().route(
        "/hooks/alertmanager",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            let attempts = attempts.clone();
            async move {
                if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < failures {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let authorization = headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                record
                    .lock()
                    .unwrap()
                    .push((authorization, serde_json::from_slice(&body).unwrap()));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/alertmanager",
        listener.local_addr().unwrap()
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver {
        url,
        got,
        _server: server,
    }
}

/// Waits for the webhook of `name` with `status`; answers its alert.
async fn alert_of(receiver: &Receiver, name: &str, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let found = receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .find_map(|(authorization, body)| {
                let alert = &body["alerts"][0];
                (alert["labels"]["alertname"] == name && body["status"] == status).then(|| {
                    assert_eq!(authorization.as_deref(), Some("Bearer s3cret"));
                    assert_eq!(body["version"], "4");
                    assert_eq!(body["commonLabels"], alert["labels"]);
                    alert.clone()
                })
            });
        if let Some(alert) = found {
            return alert;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} {name}: {:?}",
            receiver.got.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The number in a `value` annotation with its unit.
fn quantity(alert: &serde_json::Value, unit: &str) -> f64 {
    let text = alert["annotations"]["value"].as_str().unwrap();
    text.strip_suffix(unit)
        .unwrap_or_else(|| panic!("{text} has no {unit}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_incident_fires_the_alert_its_runbook_matches_and_resolves() {
    // The first delivery fails and is retried.
    let receiver = receiver(1).await;
    let shop = shop().await;
    shop.set_alert_url(receiver.url.clone(), Some("s3cret".into()));
    for incident in Incident::ALL {
        shop.trigger(incident);
    }
    let cpu = alert_of(&receiver, "High_CPU_Usage", "firing").await;
    assert_eq!(cpu["labels"]["service"], "order-service");
    assert_eq!(cpu["labels"]["namespace"], "shop");
    assert_eq!(cpu["labels"]["severity"], "critical");
    assert!(quantity(&cpu, "%") > 90.0, "{cpu}");
    let latency = alert_of(&receiver, "Service_Latency_Exceeded", "firing").await;
    assert_eq!(latency["labels"]["service"], "payment-gateway");
    assert_eq!(latency["labels"]["severity"], "critical");
    assert!(quantity(&latency, "ms") > 500.0, "{latency}");
    let disk = alert_of(&receiver, "Disk_Full", "firing").await;
    assert_eq!(disk["labels"]["service"], "logging-node");
    assert_eq!(disk["labels"]["instance"], shop.logging_node_instance());
    assert_eq!(disk["labels"]["severity"], "warning");
    assert!(quantity(&disk, "%") > 85.0, "{disk}");
    let db = alert_of(&receiver, "DB_Connection_Error", "firing").await;
    assert_eq!(db["labels"]["service"], "inventory-service");
    assert_eq!(db["labels"]["severity"], "critical");
    assert!(quantity(&db, "") > 5.0, "{db}");
    let starts_at = logs::parse_rfc3339(db["startsAt"].as_str().unwrap()).unwrap();
    assert!(virtual_time(starts_at), "virtual time: {db}");
    assert_eq!(db["endsAt"], "0001-01-01T00:00:00Z");
    let firing = shop.snapshot().alerts;
    assert!(firing.len() >= 4, "{firing:?}");
    // Ending the incidents (and cleaning the disk) resolves every alert.
    for incident in Incident::ALL {
        shop.end(incident);
    }
    let (status, _) = call(
        &shop,
        reqwest::Method::POST,
        &shop.logging_node_instance(),
        "/admin/cleanup",
    )
    .await;
    assert_eq!(status, 200);
    for name in [
        "Disk_Full",
        "DB_Connection_Error",
        "Service_Latency_Exceeded",
        "High_CPU_Usage",
    ] {
        let resolved = alert_of(&receiver, name, "resolved").await;
        let ends_at = logs::parse_rfc3339(resolved["endsAt"].as_str().unwrap()).unwrap();
        let starts_at = logs::parse_rfc3339(resolved["startsAt"].as_str().unwrap()).unwrap();
        assert!(ends_at > starts_at, "{resolved}");
    }
    // Each alert fired and resolved once: no flapping.
    let got = receiver.got.lock().unwrap().len();
    assert_eq!(got, 8, "{:?}", receiver.got.lock().unwrap());
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_traces_reach_elasticsearch_and_jaeger_in_virtual_time() {
    let shop = shop().await;
    shop.trigger(Incident::PaymentLatency);
    wait_for(&shop, 10, "a slow payment-gateway", |snapshot| {
        service(snapshot, "payment-gateway").p99_ms > 500.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let now = shop.clock().now_ms();
    let search = serde_json::json!({
        "size": 20,
        "sort": [{"@timestamp": "desc"}],
        "query": {"bool": {"filter": [
            {"term": {"service.name": "payment-gateway"}},
            {"term": {"log.level": "ERROR"}},
            {"range": {"@timestamp": {"gte": logs::rfc3339(now - 3_600_000)}}},
        ]}},
    });
    let answer: serde_json::Value = client()
        .post(format!("{}/logs-shop/_search", shop.elasticsearch_url()))
        .json(&search)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = answer["hits"]["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{answer}");
    let line = &hits[0]["_source"];
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("call to order-service timed out")
    );
    assert!(
        line["error"]["stack_trace"]
            .as_str()
            .unwrap()
            .contains("OrderClient")
    );
    let at = logs::parse_rfc3339(line["@timestamp"].as_str().unwrap()).unwrap();
    // The shop's time, not the wall clock's (years away): within minutes of it, as a
    // loaded machine stretches a wall second into ten minutes at this speed.
    assert!((at - now).abs() < 900_000, "{at} vs {now}");
    // Errors stay a few percent of payment-gateway's lines.
    let count = |level: Option<&str>| {
        let mut filter = vec![serde_json::json!({"term": {"service.name": "payment-gateway"}})];
        if let Some(level) = level {
            filter.push(serde_json::json!({"term": {"log.level": level}}));
        }
        filter.push(
            serde_json::json!({"range": {"@timestamp": {"gte": logs::rfc3339(now - 600_000)}}}),
        );
        serde_json::json!({"size": 0, "track_total_hits": true, "query": {"bool": {"filter": filter}}})
    };
    let search_url = format!("{}/logs-shop/_search", shop.elasticsearch_url());
    let total = |body: serde_json::Value| {
        let search_url = search_url.clone();
        async move {
            let answer: serde_json::Value = client()
                .post(search_url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["hits"]["total"]["value"].as_f64().unwrap()
        }
    };
    let errors = total(count(Some("ERROR"))).await;
    let all = total(count(None)).await;
    assert!(errors / all < 0.1 && all > 40.0, "{errors} of {all}");
    // Traces: order-service's own span holds the time.
    // The last quarter hour of the shop's time: at this speed, seconds of a loaded machine.
    let start_us = (now - 900_000) * 1000;
    let answer: serde_json::Value = client()
        .get(format!(
            "{}/api/traces?service=payment-gateway&start={start_us}&end={}&limit=5",
            shop.jaeger_url(),
            now * 1000
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let traces = answer["data"].as_array().unwrap();
    assert!(!traces.is_empty(), "{answer}");
    let spans = traces[0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 7);
    let order = spans
        .iter()
        .find(|span| span["operationName"] == "POST /orders")
        .unwrap();
    let children: i64 = spans
        .iter()
        .filter(|span| span["references"][0]["spanID"] == order["spanID"])
        .map(|span| span["duration"].as_i64().unwrap())
        .sum();
    let own_ms = (order["duration"].as_i64().unwrap() - children) / 1000;
    assert!(own_ms > 300, "order-service's own work: {own_ms}ms");
    assert!(
        (order["startTime"].as_i64().unwrap() / 1000 - now).abs() < 900_000,
        "virtual time"
    );
    let links: serde_json::Value = client()
        .get(format!(
            "{}/api/dependencies?endTs={now}&lookback=3600000",
            shop.jaeger_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        links["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|link| link["parent"] == "payment-gateway" && link["child"] == "order-service"),
        "{links}"
    );
    shop.stop().await;
}
