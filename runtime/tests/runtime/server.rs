//! The HTTP server on loopback: who a credential names and what its role and approval groups
//! allow, authentication before the body is read, the bearer scheme in any case, the
//! request time and concurrency limits, and the generic webhook's signed timestamp.
//!
//! Each test serves its own router on 127.0.0.1:0 with an in-memory journal, a toolbox that
//! answers every call at once, and tokio's real clock.

use medic_compiler::plan::{Plan, Value};
use medic_runtime::engine::{Engine, EngineConfig};
use medic_runtime::executor::{CallFuture, Clock, Toolbox};
use medic_runtime::journal::{Journal, JournalHandle};
use medic_runtime::server::{self, Auth, Identities, Role, ServerLimits, ServerState, User};
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOURCE: &str = r##"
import std.{notify}

/// Tells the team, once someone of `sre` approved.
rule gated {
  on alert "Gated"
  run gated(service: alert.service)
  cooldown 1m per alert.fingerprint
}

playbook gated(service: String) {
  task tell = notify.slack(channel: "#oncall", text: "{service} is gated") {
    approval by "sre"
  }
}
"##;

fn plan() -> Plan {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("x.ops", SOURCE)]);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
    medic_compiler::plan::lower(&analysis).unwrap()
}

/// Answers every call with a delivered notification and records the function called.
#[derive(Default)]
struct Answering {
    calls: Mutex<Vec<String>>,
}

impl Toolbox for Answering {
    fn call(&self, function: &str, _args: BTreeMap<String, Value>) -> CallFuture {
        self.calls.lock().unwrap().push(function.to_string());
        Box::pin(async {
            Ok(Value::record([
                ("delivered".to_string(), Value::Bool(true)),
                ("detail".to_string(), Value::String("ok".into())),
            ]))
        })
    }
}

fn user(name: &str, role: Role, groups: &[&str]) -> User {
    User {
        name: name.into(),
        token_sha256: sha2::Sha256::digest(format!("{name}-token")).into(),
        role,
        groups: groups.iter().map(|group| group.to_string()).collect(),
    }
}

/// alice and bob are operators (alice in `sre`, bob in `dba`), victor a viewer, sam a sender;
/// each one's token is `<name>-token`.
fn users() -> Identities {
    Identities::users(vec![
        user("alice", Role::Operator, &["sre"]),
        user("bob", Role::Operator, &["dba"]),
        user("victor", Role::Viewer, &["sre"]),
        user("sam", Role::Sender, &[]),
    ])
    .unwrap()
}

struct Served {
    url: String,
    address: std::net::SocketAddr,
    engine: Engine,
    toolbox: Arc<Answering>,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

struct Setup {
    auth: Auth,
    limits: ServerLimits,
    reload: server::Reloader,
    /// The journal's file; `None` keeps it in memory.
    store: Option<std::path::PathBuf>,
}

impl Setup {
    fn new(identities: Identities) -> Setup {
        Setup {
            auth: Auth {
                identities,
                ..Auth::open()
            },
            limits: ServerLimits::default(),
            reload: Arc::new(|| Ok(plan())),
            store: None,
        }
    }
}

async fn serve(setup: Setup) -> Served {
    let toolbox = Arc::new(Answering::default());
    let journal = match &setup.store {
        Some(path) => Journal::open(path).unwrap(),
        None => Journal::in_memory().unwrap(),
    };
    let journal = JournalHandle::spawn(journal).unwrap();
    let engine = Engine::start(
        plan(),
        journal,
        toolbox.clone(),
        Clock::system(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let state = Arc::new(ServerState {
        engine: engine.clone(),
        auth: setup.auth,
        limits: setup.limits,
        reload: setup.reload,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Served {
        url: format!("http://{address}"),
        address,
        engine,
        toolbox,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Served {
    /// A request with `Authorization: Bearer <token>` (none for `None`); the status and the
    /// body as JSON (or as a JSON string when it is not JSON).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, token, "").await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    /// Posts a `Gated` alert and waits until its run waits for approval; returns the run.
    async fn gated_run(&self, token: Option<&str>, fingerprint: &str) -> i64 {
        let alert = format!(
            r#"{{"name":"Gated","service":"api","starts_at":"2026-11-27T12:00:00Z","fingerprint":"{fingerprint}"}}"#
        );
        let (status, body) = self.post("/webhook/generic", token, &alert).await;
        assert_eq!(status, 200, "{body}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(run) = self.engine.runs(10).await.unwrap().first()
                && self.engine.run(run.id).await.unwrap().awaiting_approval == ["tell"]
            {
                return run.id;
            }
            assert!(Instant::now() < deadline, "no run waited for approval");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_for_state(&self, run: i64, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.engine.run(run).await.unwrap().run.state != state {
            assert!(Instant::now() < deadline, "run {run} never became {state}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn events(&self, run: i64) -> Vec<(String, String, String)> {
        self.engine
            .run(run)
            .await
            .unwrap()
            .events
            .into_iter()
            .map(|event| (event.task, event.state, event.detail))
            .collect()
    }
}

fn error_of(body: &serde_json::Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_only_reads_and_a_sender_only_posts_alerts() {
    let served = serve(Setup::new(users())).await;
    let viewer = Some("victor-token");
    assert_eq!(served.get("/api/runs", viewer).await.0, 200);
    assert_eq!(served.get("/api/kill-switch", viewer).await.0, 200);
    assert_eq!(served.get("/metrics", viewer).await.0, 200);
    for (path, body) in [
        ("/api/kill-switch", r#"{"on": true}"#),
        ("/api/reload", ""),
        ("/api/runs/1/approve", ""),
        ("/api/runs/1/cancel", ""),
        ("/api/runs/1/pause", ""),
        ("/webhook/generic", "{}"),
    ] {
        let (status, answer) = served.post(path, viewer, body).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert!(
            error_of(&answer).starts_with("victor has the role viewer and may not POST"),
            "{answer}"
        );
    }
    assert!(!served.engine.kill_switch());
    let sender = Some("sam-token");
    let run = served.gated_run(sender, "from-sam").await;
    for path in ["/api/runs", "/metrics", "/api/kill-switch"] {
        let (status, answer) = served.get(path, sender).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert!(error_of(&answer).contains("it needs the viewer or operator role"));
    }
    let (status, answer) = served
        .post(&format!("/api/runs/{run}/approve"), sender, "")
        .await;
    assert_eq!(status, 403, "{answer}");
    // No token, or one no user holds: 401.
    assert_eq!(served.get("/api/runs", None).await.0, 401);
    let (status, answer) = served.get("/api/runs", Some("mallory-token")).await;
    assert_eq!(status, 401);
    assert_eq!(error_of(&answer), "missing or wrong bearer token");
    assert_eq!(served.get("/healthz", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_approval_group_decides_and_the_journal_names_the_credential() {
    let served = serve(Setup::new(users())).await;
    let run = served.gated_run(Some("alice-token"), "gated-1").await;
    let approve = format!("/api/runs/{run}/approve");
    let reject = format!("/api/runs/{run}/reject");
    // bob is an operator, but not in `sre`.
    for path in [&approve, &reject] {
        let (status, answer) = served.post(path, Some("bob-token"), "").await;
        assert_eq!(status, 403, "{answer}");
        assert_eq!(
            error_of(&answer),
            format!(
                "bob may not decide the approval of `tell` in run {run}: it needs a member of the group `sre`"
            )
        );
    }
    // A body cannot say who decides.
    let (status, answer) = served
        .post(&approve, Some("alice-token"), r#"{"by": "bob"}"#)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        error_of(&answer).contains("`by` is not accepted") && error_of(&answer).contains("alice"),
        "{answer}"
    );
    assert!(served.toolbox.calls.lock().unwrap().is_empty());
    let (status, answer) = served.post(&approve, Some("alice-token"), "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["approved"], serde_json::json!(["tell"]));
    served.wait_for_state(run, "succeeded").await;
    let events = served.events(run).await;
    assert!(
        events.contains(&("tell".into(), "approved".into(), "alice".into())),
        "{events:?}"
    );
    assert_eq!(*served.toolbox.calls.lock().unwrap(), ["notify.slack"]);
    // Pausing and cancelling are recorded under the credential's name too.
    let second = served.gated_run(Some("alice-token"), "gated-2").await;
    let (status, _) = served
        .post(&format!("/api/runs/{second}/cancel"), Some("bob-token"), "")
        .await;
    assert_eq!(status, 200);
    served.wait_for_state(second, "cancelled").await;
    assert!(served.events(second).await.contains(&(
        String::new(),
        "cancel_requested".into(),
        "by bob".into()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_token_is_an_operator_named_token() {
    let served = serve(Setup::new(Identities::token("shared-token"))).await;
    let run = served.gated_run(Some("shared-token"), "shared").await;
    assert_eq!(served.get("/api/runs", Some("other")).await.0, 401);
    // Groups cannot be known without users: the token decides any approval.
    let (status, answer) = served
        .post(
            &format!("/api/runs/{run}/reject"),
            Some("shared-token"),
            r#"{"reason": "not now"}"#,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    served.wait_for_state(run, "failed").await;
    assert!(served.events(run).await.contains(&(
        "tell".into(),
        "rejected".into(),
        "token: not now".into()
    )));
}

#[test]
fn users_with_bad_names_groups_or_shared_tokens_are_refused() {
    let refused = |users: Vec<User>| Identities::users(users).err().map(|e| e.to_string());
    assert_eq!(
        refused(vec![]).as_deref(),
        Some("the users file defines no user")
    );
    let message = refused(vec![user("eve: admin", Role::Viewer, &[])]).unwrap();
    assert!(message.contains("\"eve: admin\""), "{message}");
    let message = refused(vec![user("eve", Role::Viewer, &[" "])]).unwrap();
    assert!(message.contains("group name cannot be empty"), "{message}");
    let mut twin = user("alice2", Role::Viewer, &[]);
    twin.token_sha256 = user("alice", Role::Viewer, &[]).token_sha256;
    let message = refused(vec![user("alice", Role::Operator, &[]), twin]).unwrap();
    assert!(message.contains("the same token"), "{message}");
    assert!(server::parse_token_sha256("alice", "abc").is_err());
    let hash = hex::encode(sha2::Sha256::digest("alice-token"));
    assert_eq!(
        server::parse_token_sha256("alice", &hash).unwrap(),
        user("alice", Role::Operator, &[]).token_sha256
    );
}

/// Sends the head of a request and `sent` bytes of its body, then reads whatever the server
/// answers within `patience`; the status, or `None` when it did not answer.
async fn answer_to_partial_upload(
    address: std::net::SocketAddr,
    head: &str,
    sent: usize,
    patience: Duration,
) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; sent]).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(patience, stream.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(answer.get(..read)?).to_string();
    text.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_upload_is_refused_before_its_body_is_read() {
    let served = serve(Setup::new(users())).await;
    // 100 MB announced, 1 KiB sent: the answer comes without the server waiting for more.
    for path in ["/webhook/alertmanager", "/api/kill-switch"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: medic\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        );
        let status =
            answer_to_partial_upload(served.address, &head, 1024, Duration::from_secs(5)).await;
        assert_eq!(status, Some(401), "{path}");
    }
    // The same for a viewer's upload to an endpoint it may not use: 403 unread.
    let head = "POST /api/kill-switch HTTP/1.1\r\nHost: medic\r\nAuthorization: Bearer victor-token\r\nContent-Length: 100000000\r\n\r\n";
    let status = answer_to_partial_upload(served.address, head, 1024, Duration::from_secs(5)).await;
    assert_eq!(status, Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let served = serve(Setup::new(Identities::token("shared-token"))).await;
    for value in [
        "Bearer shared-token",
        "bearer shared-token",
        "BEARER   shared-token ",
        "bEaReR\tshared-token",
    ] {
        let response = served
            .client
            .get(format!("{}/api/runs", served.url))
            .header("Authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{value:?}");
    }
    for value in [
        "Basic shared-token",
        "Bearer",
        "Bearershared-token",
        "shared-token",
    ] {
        let response = served
            .client
            .get(format!("{}/api/runs", served.url))
            .header("Authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{value:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_or_the_concurrency_limit_gets_503() {
    // A reload that takes two seconds, on a server that allows one.
    let slow: server::Reloader = Arc::new(|| {
        std::thread::sleep(Duration::from_secs(2));
        Ok(plan())
    });
    let served = serve(Setup {
        limits: ServerLimits {
            request_timeout: Duration::from_secs(1),
            ..ServerLimits::default()
        },
        reload: Arc::clone(&slow),
        ..Setup::new(Identities::Open)
    })
    .await;
    let started = Instant::now();
    let (status, answer) = served.post("/api/reload", None, "").await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(
        error_of(&answer),
        "the request took longer than the limit of 1 s (limits.request_timeout_seconds)"
    );
    assert!(started.elapsed() < Duration::from_millis(1_900));
    // One request at a time: while the slow reload runs, the next one is refused at once.
    let served = serve(Setup {
        limits: ServerLimits {
            concurrent_requests: 1,
            ..ServerLimits::default()
        },
        reload: slow,
        ..Setup::new(Identities::Open)
    })
    .await;
    let url = format!("{}/api/reload", served.url);
    let client = served.client.clone();
    let reload = tokio::spawn(async move { client.post(url).send().await.unwrap().status() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, answer) = served.get("/api/kill-switch", None).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        error_of(&answer).contains("1 request is in progress"),
        "{answer}"
    );
    assert_eq!(reload.await.unwrap().as_u16(), 200);
    assert_eq!(served.get("/api/kill-switch", None).await.0, 200);
}

/// `sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`.
fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_now() -> i64 {
    Clock::system().now_ms() / 1_000
}

impl Served {
    async fn signed(&self, timestamp: Option<&str>, signature: &str, body: &str) -> (u16, String) {
        let mut request = self
            .client
            .post(format!("{}/webhook/generic", self.url))
            .header("X-Medic-Signature", signature)
            .body(body.to_string());
        if let Some(timestamp) = timestamp {
            request = request.header("X-Medic-Timestamp", timestamp);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

fn signing_setup(tolerance: Duration) -> Setup {
    Setup {
        auth: Auth {
            identities: Identities::Open,
            signing: Some(server::Signing {
                secret: "webhook-secret".into(),
                tolerance,
            }),
        },
        ..Setup::new(Identities::Open)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_generic_webhook_needs_a_fresh_timestamp() {
    let served = serve(signing_setup(server::DEFAULT_SIGNATURE_TOLERANCE)).await;
    let body = r#"{"name":"Gated","service":"api","starts_at":"2026-11-27T12:00:00Z","fingerprint":"signed"}"#;
    let now = unix_now().to_string();
    let (status, answer) = served
        .signed(Some(&now), &signature("webhook-secret", &now, body), body)
        .await;
    assert_eq!(status, 200, "{answer}");
    // A request captured six minutes ago, signed correctly for its time: refused.
    let old = (unix_now() - 360).to_string();
    let (status, answer) = served
        .signed(Some(&old), &signature("webhook-secret", &old, body), body)
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains(&format!("X-Medic-Timestamp {old} is 36")) && answer.contains("300 s"),
        "{answer}"
    );
    // Nor can its timestamp be moved forward: the signature covers it.
    let (status, answer) = served
        .signed(Some(&now), &signature("webhook-secret", &old, body), body)
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("wrong X-Medic-Signature"), "{answer}");
    // A timestamp from the future is as stale as one from the past.
    let future = (unix_now() + 360).to_string();
    let (status, _) = served
        .signed(
            Some(&future),
            &signature("webhook-secret", &future, body),
            body,
        )
        .await;
    assert_eq!(status, 401);
    // The body-only signature of earlier versions, or no timestamp at all: refused.
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"webhook-secret").unwrap();
    hmac::Mac::update(&mut mac, body.as_bytes());
    let body_only = format!(
        "sha256={}",
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    );
    let (status, answer) = served.signed(Some(&now), &body_only, body).await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = served.signed(None, &body_only, body).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("missing or unreadable X-Medic-Timestamp"),
        "{answer}"
    );
    let (status, _) = served
        .signed(
            Some("soon"),
            &signature("webhook-secret", "soon", body),
            body,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(served.engine.runs(10).await.unwrap().len(), 1);
    // Other webhooks need no signature.
    let (status, answer) = served
        .post("/webhook/alertmanager", None, "{not json")
        .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timestamp_tolerance_is_configurable() {
    let served = serve(signing_setup(Duration::from_secs(3_600))).await;
    let body = r#"{"name":"Gated","service":"api","starts_at":"2026-11-27T12:00:00Z","fingerprint":"tolerant"}"#;
    let old = (unix_now() - 360).to_string();
    let (status, answer) = served
        .signed(Some(&old), &signature("webhook-secret", &old, body), body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let older = (unix_now() - 3_700).to_string();
    let (status, answer) = served
        .signed(
            Some(&older),
            &signature("webhook-secret", &older, body),
            body,
        )
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("3600 s allowed"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_column_that_does_not_read_is_shown_as_unreadable() {
    // Deleted when dropped, at the end of the test (after the server, declared later).
    let directory = tempfile::Builder::new()
        .prefix("medic-server-unreadable-")
        .tempdir()
        .unwrap();
    let path = directory.path().join("journal.db");
    let served = serve(Setup {
        store: Some(path.clone()),
        ..Setup::new(Identities::Open)
    })
    .await;
    let run = served.gated_run(None, "unreadable").await;
    assert_eq!(
        served
            .post(&format!("/api/runs/{run}/cancel"), None, "")
            .await
            .0,
        200
    );
    served.wait_for_state(run, "cancelled").await;
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.busy_timeout(Duration::from_secs(5)).unwrap();
    connection
        .execute(
            "UPDATE runs SET report = 'half a report', arguments = '{' WHERE id = ?1",
            [run],
        )
        .unwrap();
    let (status, detail) = served.get(&format!("/api/runs/{run}"), None).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["report"], serde_json::Value::Null);
    assert_eq!(detail["arguments"], serde_json::Value::Null);
    assert!(
        detail["unreadable"]["report"]
            .as_str()
            .is_some_and(|error| error.contains("expected value")),
        "{detail:#}"
    );
    assert!(detail["unreadable"]["arguments"].is_string(), "{detail:#}");
    assert!(
        detail["unreadable"].get("definition").is_none(),
        "{detail:#}"
    );
    let (_, list) = served.get("/api/runs", None).await;
    assert!(
        list["runs"][0]["unreadable"]["report"].is_string(),
        "{list:#}"
    );
}

#[tokio::test]
async fn reverts_are_finished_through_the_api_by_operators_only() {
    let served = serve(Setup::new(users())).await;
    // A viewer reads the list but may not finish a revert.
    let (status, body) = served
        .get("/api/reverts?state=acknowledged", Some("victor-token"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reverts"], serde_json::json!([]));
    let (status, body) = served
        .post("/api/reverts/1/retry", Some("victor-token"), "")
        .await;
    assert_eq!(status, 403, "{body}");
    // An operator gets what the engine says: no such revert.
    let (status, body) = served
        .post("/api/reverts/1/retry", Some("alice-token"), "")
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "there is no revert 1");
    // Acknowledging needs a reason; unknown actions and fields are refused.
    let (status, body) = served
        .post("/api/reverts/1/ack", Some("alice-token"), "{}")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("needs a `reason`"),
        "{body}"
    );
    let (status, body) = served
        .post(
            "/api/reverts/1/ack",
            Some("alice-token"),
            r#"{"reason": "done", "by": "eve"}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = served
        .post("/api/reverts/1/undo", Some("alice-token"), "")
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("use retry or ack"),
        "{body}"
    );
    // The revert gauges are in /metrics, one per state.
    let response = served
        .client
        .get(format!("{}/metrics", served.url))
        .bearer_auth("victor-token")
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(
        text.contains("medic_reverts{state=\"needs_attention\"} 0"),
        "{text}"
    );
}

/// A client that does not follow redirects, with the page's cookie once `login` is called.
struct Browser {
    client: reqwest::Client,
    url: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(served: &Served) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            url: served.url.clone(),
            cookie: None,
        }
    }

    async fn login(&mut self, token: &str) -> reqwest::Response {
        let response = self
            .client
            .post(format!("{}/ui/login", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .await
            .unwrap();
        self.cookie = response.headers().get("set-cookie").map(|value| {
            value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string()
        });
        response
    }

    async fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let mut request = self.client.get(format!("{}{path}", self.url));
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, response.text().await.unwrap(), headers)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_need_a_login_and_show_the_run_waiting_for_approval_with_its_graph() {
    let served = serve(Setup::new(users())).await;
    let run = served.gated_run(Some("sam-token"), "fp-page").await;
    let mut browser = Browser::new(&served);
    let (status, _, headers) = browser.get("/ui/runs").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/login");
    assert_eq!(browser.login("wrong-token").await.status().as_u16(), 401);
    let response = browser.login("victor-token").await;
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let (status, html, headers) = browser.get("/ui/runs").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(html.contains("Waiting for a human"), "{html}");
    assert!(html.contains(&format!("href=\"/ui/runs/{run}\"")), "{html}");
    assert!(html.contains("approval of tell"), "{html}");
    let (status, html, _) = browser.get(&format!("/ui/runs/{run}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<svg"), "{html}");
    assert!(html.contains("class=\"task waiting\""), "{html}");
    assert!(html.contains("Waiting for approval: tell"), "{html}");
    assert!(html.contains("<dd>Gated (firing, warning)</dd>"), "{html}");
    assert!(html.contains("Why rule gated matches it"), "{html}");
    // A sender does not read runs, on the page as in the API.
    let mut sender = Browser::new(&served);
    sender.login("sam-token").await;
    let (status, html, _) = sender.get("/ui/runs").await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("sam has the role sender"), "{html}");
    // The page's cookie is not a credential for the API.
    let cookie_only = browser
        .client
        .get(format!("{}/api/runs", served.url))
        .header("Cookie", browser.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(cookie_only.status().as_u16(), 401);
    let (status, _, _) = browser.get("/ui/runs/not-a-number").await;
    assert_eq!(status, 400);
    let (status, _, _) = browser.get("/ui/runs/999999").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_alert_data_is_shown_as_text() {
    let served = serve(Setup::new(Identities::Open)).await;
    let hostile = r#"<script>alert(1)</script>\" onmouseover=\"x"#;
    let alert = format!(
        r#"{{"name":"Gated","service":"{hostile}","starts_at":"2026-11-27T12:00:00Z","fingerprint":"fp-hostile"}}"#
    );
    let (status, body) = served.post("/webhook/generic", None, &alert).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let run = loop {
        if let Some(run) = served.engine.runs(10).await.unwrap().first() {
            break run.id;
        }
        assert!(Instant::now() < deadline, "no run started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let browser = Browser::new(&served);
    let (status, html, _) = browser.get(&format!("/ui/runs/{run}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("\" onmouseover"), "{html}");
}

impl Browser {
    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body = form_urlencoded_body(fields);
        let mut request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn form_urlencoded_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| {
            let encode = |text: &str| {
                text.bytes()
                    .map(|byte| match byte {
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (byte as char).to_string()
                        }
                        other => format!("%{other:02X}"),
                    })
                    .collect::<String>()
            };
            format!("{}={}", encode(name), encode(value))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first `name="csrf"` field of a page.
fn csrf_in(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_from_the_page_after_a_confirmation_and_a_viewer_cannot() {
    let served = serve(Setup::new(users())).await;
    let run = served.gated_run(Some("sam-token"), "fp-approve-page").await;
    let mut alice = Browser::new(&served);
    alice.login("alice-token").await;
    let (_, html, _) = alice.get(&format!("/ui/runs/{run}")).await;
    assert!(html.contains("value=\"approve\""), "{html}");
    let csrf = csrf_in(&html);
    let run_text = run.to_string();
    let fields = [
        ("csrf", csrf.as_str()),
        ("action", "approve"),
        ("run", run_text.as_str()),
        ("task", "tell"),
    ];
    let (status, confirmation) = alice.post_form("/ui/confirm", &fields).await;
    assert_eq!(status, 200, "{confirmation}");
    assert!(
        confirmation.contains(&format!(
            "Approve task `tell` of run {run}: the task then runs."
        )),
        "{confirmation}"
    );
    // A forged form, without the page's CSRF field, is refused.
    let forged = [
        ("csrf", "0000"),
        ("action", "approve"),
        ("run", run_text.as_str()),
        ("task", "tell"),
    ];
    let (status, _) = alice.post_form("/ui/act", &forged).await;
    assert_eq!(status, 403);
    // A viewer sees no controls and cannot act, whatever it posts.
    let mut victor = Browser::new(&served);
    victor.login("victor-token").await;
    let (_, html, _) = victor.get(&format!("/ui/runs/{run}")).await;
    assert!(!html.contains("name=\"csrf\""), "{html}");
    let (status, refused) = victor.post_form("/ui/act", &fields).await;
    assert_eq!(status, 403, "{refused}");
    assert!(served.toolbox.calls.lock().unwrap().is_empty());
    // The operator confirms: the task runs, and the journal says who approved.
    let (status, _) = alice.post_form("/ui/act", &fields).await;
    assert_eq!(status, 303);
    served.wait_for_state(run, "succeeded").await;
    let events = served.events(run).await;
    assert!(
        events.iter().any(|(task, state, detail)| task == "tell"
            && state == "approved"
            && detail.contains("alice")),
        "{events:?}"
    );
}

/// The `data:` lines of server-sent `change` events, read from a live stream until `until`
/// holds for one of them (or 10 s pass).
async fn change_until(
    response: &mut reqwest::Response,
    until: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("the stream went quiet")
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) {
                seen.push(data.to_string());
                if until(data) {
                    return seen;
                }
            }
        }
    }
    panic!("no change event matched: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_page_hears_of_changes_as_they_happen() {
    let served = serve(Setup::new(users())).await;
    let run = served.gated_run(Some("sam-token"), "fp-live").await;
    let mut victor = Browser::new(&served);
    victor.login("victor-token").await;
    let (_, html, headers) = victor.get(&format!("/ui/runs/{run}")).await;
    assert!(
        html.contains(&format!("data-live=\"/ui/live?run={run}\"")),
        "{html}"
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let (status, script, _) = victor.get("/ui/live.js").await;
    assert_eq!(status, 200);
    assert!(script.contains("EventSource"), "{script}");
    let mut stream = victor
        .client
        .get(format!("{}/ui/live?run={run}", served.url))
        .header("Cookie", victor.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let first = change_until(&mut stream, |_| true).await;
    assert!(
        first[0].starts_with("running:") && first[0].contains(":tell:"),
        "{first:?}"
    );
    let (status, body) = served
        .post(
            &format!("/api/runs/{run}/approve"),
            Some("alice-token"),
            "{}",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = change_until(&mut stream, |data| data.starts_with("succeeded:")).await;
    assert!(seen.last().unwrap().starts_with("succeeded:"), "{seen:?}");
    // Without a login, no stream.
    let (status, _, _) = Browser::new(&served)
        .get(&format!("/ui/live?run={run}"))
        .await;
    assert_eq!(status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_turns_the_kill_switch_on_from_the_list() {
    let served = serve(Setup::new(users())).await;
    let mut alice = Browser::new(&served);
    alice.login("alice-token").await;
    let (_, html, _) = alice.get("/ui/runs").await;
    assert!(html.contains("Kill switch: off"), "{html}");
    let csrf = csrf_in(&html);
    let fields = [("csrf", csrf.as_str()), ("action", "kill_on")];
    let (status, confirmation) = alice.post_form("/ui/confirm", &fields).await;
    assert_eq!(status, 200);
    assert!(
        confirmation.contains("Turn the kill switch on: every action of every run is refused"),
        "{confirmation}"
    );
    assert!(!served.engine.kill_switch());
    // An action that does not fit its fields is refused and does nothing.
    let wrong = [("csrf", csrf.as_str()), ("action", "approve")];
    let (status, _) = alice.post_form("/ui/act", &wrong).await;
    assert_eq!(status, 400);
    let (status, _) = alice.post_form("/ui/act", &fields).await;
    assert_eq!(status, 303);
    assert!(served.engine.kill_switch());
    let (_, html, _) = alice.get("/ui/runs").await;
    assert!(html.contains("every action is refused"), "{html}");
}
