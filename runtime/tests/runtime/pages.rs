//! The web page on loopback: login, the pages a viewer reads, an operator's controls behind
//! a confirmation and the CSRF field, live updates, hostile alert data shown as text, and
//! the history pages: alerts, suppressions, the audit log and effectiveness.

use crate::served::*;
use medic_runtime::server::Identities;
use std::time::{Duration, Instant};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_pages_show_what_became_of_alerts_the_audit_log_and_effectiveness() {
    let served = serve(Setup::new(users())).await;
    let run = served.gated_run(Some("sam-token"), "fp-history").await;
    // The same episode again: a duplicate; an alert no rule matches, with a hostile name.
    let again = r#"{"name":"Gated","service":"api","starts_at":"2026-11-27T12:00:00Z","fingerprint":"fp-history"}"#;
    let (status, _) = served
        .post("/webhook/generic", Some("sam-token"), again)
        .await;
    assert_eq!(status, 200);
    let hostile = r#"{"name":"<script>x</script>","starts_at":"2026-11-27T12:00:00Z"}"#;
    let (status, _) = served
        .post("/webhook/generic", Some("sam-token"), hostile)
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served.engine.suppressions(10).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no suppression");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // alice approves, then answers "did it fix it?" from the run page.
    let mut alice = Browser::new(&served);
    alice.login("alice-token").await;
    let (_, html, _) = alice.get(&format!("/ui/runs/{run}")).await;
    let csrf = csrf_in(&html);
    let run_text = run.to_string();
    let approve = [
        ("csrf", csrf.as_str()),
        ("action", "approve"),
        ("run", run_text.as_str()),
        ("task", "tell"),
    ];
    let (status, _) = alice.post_form("/ui/act", &approve).await;
    assert_eq!(status, 303);
    served.wait_for_state(run, "succeeded").await;
    let (_, html, _) = alice.get(&format!("/ui/runs/{run}")).await;
    assert!(html.contains("Did this run fix it?"), "{html}");
    assert!(html.contains("name=\"verdict\" value=\"partly\""), "{html}");
    let answer = [
        ("csrf", csrf.as_str()),
        ("action", "feedback"),
        ("run", run_text.as_str()),
        ("verdict", "partly"),
        ("note", "<b>latency</b> stayed high"),
    ];
    let (status, confirmation) = alice.post_form("/ui/confirm", &answer).await;
    assert_eq!(status, 200, "{confirmation}");
    assert!(
        confirmation.contains(&format!(
            "Record that run {run}: it partly fixed the problem (&quot;&lt;b&gt;latency&lt;/b&gt; stayed high&quot;)."
        )),
        "{confirmation}"
    );
    let (status, _) = alice.post_form("/ui/act", &answer).await;
    assert_eq!(status, 303);
    let (_, html, _) = alice.get(&format!("/ui/runs/{run}")).await;
    assert!(
        html.contains("partly — &lt;b&gt;latency&lt;/b&gt; stayed high"),
        "{html}"
    );
    assert!(html.contains("Operators' actions"), "{html}");
    assert!(html.contains("The full report"), "{html}");
    assert!(
        html.contains(&format!("run {run}: playbook gated succeeded")),
        "{html}"
    );
    // A viewer cannot answer; the attempt is in the audit log.
    let mut victor = Browser::new(&served);
    victor.login("victor-token").await;
    let (status, _) = victor.post_form("/ui/act", &answer).await;
    assert_eq!(status, 403);
    let (status, html, _) = victor.get("/ui/alerts").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!(
            "started <a href=\"/ui/runs/{run}\">run {run}</a> of rule gated"
        )),
        "{html}"
    );
    assert!(html.contains("duplicate"), "{html}");
    assert!(html.contains("no rule matched"), "{html}");
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
    assert!(!html.contains("<script>x"), "{html}");
    let (_, html, _) = victor.get("/ui/alerts?name=Gated").await;
    assert!(!html.contains("no rule matched"), "{html}");
    let (_, html, _) = victor.get("/ui/suppressions").await;
    assert!(html.contains("duplicate"), "{html}");
    let (_, html, _) = victor.get("/ui/audit").await;
    assert!(html.contains("alice (operator)"), "{html}");
    assert!(html.contains("<td>feedback</td>"), "{html}");
    assert!(html.contains("<td>approve</td>"), "{html}");
    assert!(html.contains("victor (viewer)"), "{html}");
    assert!(html.contains("<td>web</td>"), "{html}");
    let (status, html, _) = victor.get("/ui/stats?since=1d").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("/ui/runs?playbook=gated"), "{html}");
    assert!(html.contains("yes 0, partly 1, no 0"), "{html}");
    assert!(html.contains("Time to resolve"), "{html}");
    let (status, _, _) = victor.get("/ui/stats?since=soon").await;
    assert_eq!(status, 400);
    // The runs list's filters; a bad one says why on the page.
    let (_, html, _) = victor.get("/ui/runs?alert=Gated&state=succeeded").await;
    assert!(html.contains(&format!("href=\"/ui/runs/{run}\"")), "{html}");
    let (_, html, _) = victor.get("/ui/runs?label=team").await;
    assert!(html.contains("is not name=value"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_https_proxy_the_cookie_is_secure_and_logging_out_forgets_it() {
    let served = serve(Setup::new(users())).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |proto: Option<&'static str>| {
        let mut request = client
            .post(format!("{}/ui/login", served.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("token=victor-token");
        if let Some(proto) = proto {
            request = request.header("X-Forwarded-Proto", proto);
        }
        request.send()
    };
    let cookie = |response: &reqwest::Response| {
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let plain = login(None).await.unwrap();
    assert!(!cookie(&plain).contains("Secure"), "{}", cookie(&plain));
    let proxied = login(Some("https")).await.unwrap();
    assert!(
        cookie(&proxied).contains("; Secure"),
        "{}",
        cookie(&proxied)
    );
    let mut browser = Browser::new(&served);
    browser.login("victor-token").await;
    let (status, _, headers) = browser.get("/ui/logout").await;
    assert_eq!(status, 303);
    let cleared = headers["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("medic_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}
