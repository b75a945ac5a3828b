//! The harness of the server's tests: a router on 127.0.0.1:0 with an in-memory journal
//! (or a file), a toolbox that answers every call at once, tokio's real clock, users of each
//! role, and a cookie-keeping browser for the pages.

use medic_compiler::plan::{Plan, Value};
use medic_runtime::engine::{Engine, EngineConfig};
use medic_runtime::executor::{CallFuture, Clock, Toolbox};
use medic_runtime::journal::{Journal, JournalHandle};
use medic_runtime::server::{self, Auth, Identities, Role, ServerLimits, ServerState, User};
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const SOURCE: &str = r##"
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

pub(crate) fn plan() -> Plan {
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
pub(crate) struct Answering {
    pub(crate) calls: Mutex<Vec<String>>,
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

pub(crate) fn user(name: &str, role: Role, groups: &[&str]) -> User {
    User {
        name: name.into(),
        token_sha256: sha2::Sha256::digest(format!("{name}-token")).into(),
        role,
        groups: groups.iter().map(|group| group.to_string()).collect(),
    }
}

/// alice and bob are operators (alice in `sre`, bob in `dba`), victor a viewer, sam a sender;
/// each one's token is `<name>-token`.
pub(crate) fn users() -> Identities {
    Identities::users(vec![
        user("alice", Role::Operator, &["sre"]),
        user("bob", Role::Operator, &["dba"]),
        user("victor", Role::Viewer, &["sre"]),
        user("sam", Role::Sender, &[]),
    ])
    .unwrap()
}

pub(crate) struct Served {
    pub(crate) url: String,
    pub(crate) address: std::net::SocketAddr,
    pub(crate) engine: Engine,
    pub(crate) toolbox: Arc<Answering>,
    pub(crate) client: reqwest::Client,
    pub(crate) _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) struct Setup {
    pub(crate) auth: Auth,
    pub(crate) limits: ServerLimits,
    pub(crate) reload: server::Reloader,
    /// The journal's file; `None` keeps it in memory.
    pub(crate) store: Option<std::path::PathBuf>,
}

impl Setup {
    pub(crate) fn new(identities: Identities) -> Setup {
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

pub(crate) async fn serve(setup: Setup) -> Served {
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
    pub(crate) async fn send(
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

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, token, "").await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    /// Posts a `Gated` alert and waits until its run waits for approval; returns the run.
    pub(crate) async fn gated_run(&self, token: Option<&str>, fingerprint: &str) -> i64 {
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

    pub(crate) async fn wait_for_state(&self, run: i64, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.engine.run(run).await.unwrap().run.state != state {
            assert!(Instant::now() < deadline, "run {run} never became {state}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) async fn events(&self, run: i64) -> Vec<(String, String, String)> {
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

pub(crate) fn error_of(body: &serde_json::Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// A client that does not follow redirects, with the page's cookie once `login` is called.
pub(crate) struct Browser {
    pub(crate) client: reqwest::Client,
    pub(crate) url: String,
    pub(crate) cookie: Option<String>,
}

impl Browser {
    pub(crate) fn new(served: &Served) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            url: served.url.clone(),
            cookie: None,
        }
    }

    pub(crate) async fn login(&mut self, token: &str) -> reqwest::Response {
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

    pub(crate) async fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
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

impl Browser {
    pub(crate) async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
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

pub(crate) fn form_urlencoded_body(fields: &[(&str, &str)]) -> String {
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
pub(crate) fn csrf_in(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    html[start..].split('"').next().unwrap().to_string()
}

/// The `data:` lines of server-sent `change` events, read from a live stream until `until`
/// holds for one of them (or 10 s pass).
pub(crate) async fn change_until(
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
