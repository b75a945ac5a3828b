//! The HTTP server on loopback: who a credential names and what its role and approval groups
//! allow, authentication before the body is read, the bearer scheme in any case, the
//! request time and concurrency limits, and the generic webhook's signed timestamp.
//!
//! Each test serves its own router on 127.0.0.1:0 with an in-memory journal, a toolbox that
//! answers every call at once, and tokio's real clock.

use crate::served::*;
use medic_runtime::executor::Clock;
use medic_runtime::server::{self, Auth, Identities, Role, ServerLimits, User};
use sha2::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
async fn healthz_says_when_the_journal_does_not_answer() {
    let served = serve(Setup::new(users())).await;
    assert_eq!(served.get("/healthz", None).await.0, 200);
    // The journal's thread stuck for three seconds (a disk that hangs, say).
    let journal = served.engine.journal().clone();
    let stuck = tokio::spawn(async move {
        journal
            .call(|_| {
                std::thread::sleep(Duration::from_secs(3));
                Ok(())
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, answer) = served.get("/healthz", None).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        error_of(&answer).contains("did not answer within 2 s"),
        "{answer}"
    );
    stuck.await.unwrap().unwrap();
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
            sns: None,
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
