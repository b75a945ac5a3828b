//! What the journal remembers for people, through the HTTP API: the audit log of operators'
//! actions (done, refused by the engine, denied by role), "did this run fix it?" answers,
//! the effectiveness statistics and their `/metrics` gauges, and the runs list filtered in
//! the journal.

use crate::served::*;
use std::time::Duration;

/// Posts a generic `Gated` alert of `fingerprint`, firing or resolved, with `labels`.
async fn gated_alert(served: &Served, fingerprint: &str, status: &str, labels: &str) {
    let alert = format!(
        r#"{{"name":"Gated","status":"{status}","service":"api","starts_at":"2026-11-27T12:00:00Z","fingerprint":"{fingerprint}","labels":{labels}}}"#
    );
    let (code, body) = served
        .post("/webhook/generic", Some("sam-token"), &alert)
        .await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_actions_are_audited_done_refused_and_denied() {
    let served = serve(Setup::new(users())).await;
    let run = served.gated_run(Some("sam-token"), "fp-audit").await;
    let approve = format!("/api/runs/{run}/approve");
    // A viewer may not act: denied by role, and audited.
    let (status, _) = served.post(&approve, Some("victor-token"), "{}").await;
    assert_eq!(status, 403);
    // bob is an operator but not of `sre`: the engine refuses.
    let (status, _) = served.post(&approve, Some("bob-token"), "{}").await;
    assert_eq!(status, 403);
    let (status, body) = served.post(&approve, Some("alice-token"), "{}").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = served
        .post("/api/kill-switch", Some("alice-token"), r#"{"on":true}"#)
        .await;
    assert_eq!(status, 200);
    let (status, _) = served
        .post("/api/runs/999/pause", Some("alice-token"), "")
        .await;
    assert_eq!(status, 404);
    let (status, body) = served.get("/api/audit", Some("victor-token")).await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    let summary: Vec<(String, String, String, bool)> = entries
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap().to_string(),
                entry["action"].as_str().unwrap().to_string(),
                entry["outcome"].as_str().unwrap().to_string(),
                entry["run_id"].as_i64() == Some(run),
            )
        })
        .collect();
    let own = |actor: &str, action: &str, outcome: &str, on_run: bool| {
        (
            actor.to_string(),
            action.to_string(),
            outcome.to_string(),
            on_run,
        )
    };
    assert_eq!(
        summary,
        [
            own("alice", "pause", "refused", false),
            own("alice", "kill_switch", "done", false),
            own("alice", "approve", "done", true),
            own("bob", "approve", "refused", true),
            own("victor", "denied", "refused", false),
        ],
        "{body}"
    );
    assert_eq!(entries[0]["error"], "there is no run 999");
    assert_eq!(entries[1]["detail"], "on");
    assert_eq!(entries[2]["via"], "api");
    assert_eq!(entries[2]["role"], "operator");
    assert_eq!(entries[4]["detail"], format!("POST {approve}"));
    assert!(
        entries[3]["error"]
            .as_str()
            .unwrap()
            .contains("group `sre`"),
        "{body}"
    );
    // One run's actions, and paging.
    let (_, body) = served
        .get(&format!("/api/audit?run={run}"), Some("victor-token"))
        .await;
    assert_eq!(body["entries"].as_array().unwrap().len(), 2, "{body}");
    let newest = entries[0]["id"].as_i64().unwrap();
    let (_, body) = served
        .get(
            &format!("/api/audit?limit=1&before={newest}"),
            Some("victor-token"),
        )
        .await;
    assert_eq!(body["entries"][0]["action"], "kill_switch", "{body}");
    // A sender reads nothing, the audit log included; a bad query says why.
    let (status, _) = served.get("/api/audit", Some("sam-token")).await;
    assert_eq!(status, 403);
    let (status, body) = served
        .get("/api/audit?limit=many", Some("victor-token"))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_and_stats_count_what_the_runs_did_and_whether_the_alert_resolved() {
    let served = serve(Setup::new(users())).await;
    // Approved, succeeded, and its alert never resolves: it kept firing.
    let kept = served.gated_run(Some("sam-token"), "fp-kept").await;
    let (status, _) = served
        .post(
            &format!("/api/runs/{kept}/approve"),
            Some("alice-token"),
            "{}",
        )
        .await;
    assert_eq!(status, 200);
    served.wait_for_state(kept, "succeeded").await;
    // Its alert resolves while it waits for approval: cancelled, and resolved.
    let resolved = served.gated_run(Some("sam-token"), "fp-resolved").await;
    gated_alert(&served, "fp-resolved", "resolved", "{}").await;
    served.wait_for_state(resolved, "cancelled").await;
    // Answers: alice twice (her latest counts), a viewer may not answer, nor a bad verdict.
    let feedback = format!("/api/runs/{kept}/feedback");
    for (token, body, expected) in [
        ("alice-token", r#"{"verdict":"no"}"#, 200),
        (
            "alice-token",
            r#"{"verdict":"partly","note":"CPU fell, latency did not"}"#,
            200,
        ),
        ("victor-token", r#"{"verdict":"yes"}"#, 403),
        ("alice-token", r#"{"verdict":"maybe"}"#, 400),
        ("alice-token", r#"{}"#, 400),
    ] {
        let (status, answer) = served.post(&feedback, Some(token), body).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let (status, _) = served
        .post(
            "/api/runs/999/feedback",
            Some("alice-token"),
            r#"{"verdict":"yes"}"#,
        )
        .await;
    assert_eq!(status, 404);
    let (_, detail) = served
        .get(&format!("/api/runs/{kept}"), Some("victor-token"))
        .await;
    let answers = detail["feedback"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{detail}");
    assert_eq!(answers[1]["by"], "alice");
    assert_eq!(answers[1]["note"], "CPU fell, latency did not");
    // With a window of 1 ms, both runs' effects are known once it has passed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, stats) = served
        .get("/api/stats?since=1d&within=1ms", Some("victor-token"))
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["runs"], 2, "{stats}");
    let gated = &stats["playbooks"][0];
    assert_eq!(gated["name"], "gated");
    assert_eq!(gated["outcomes"]["succeeded"], 1, "{stats}");
    assert_eq!(gated["outcomes"]["cancelled"], 1, "{stats}");
    assert_eq!(gated["after"]["resolved"], 1, "{stats}");
    assert_eq!(gated["after"]["kept_firing"], 1, "{stats}");
    assert_eq!(gated["resolved_ratio"], 0.5, "{stats}");
    assert_eq!(gated["approvals"]["asked"], 2, "{stats}");
    assert_eq!(gated["approvals"]["approved"], 1, "{stats}");
    assert_eq!(gated["approvals"]["undecided"], 1, "{stats}");
    assert!(gated["approvals"]["wait_seconds_median"].as_f64().is_some());
    assert_eq!(gated["feedback"]["partly"], 1, "{stats}");
    assert_eq!(gated["feedback"]["no"], 0, "{stats}");
    assert_eq!(stats["rules"][0]["name"], "gated");
    let alert = &stats["alerts"][0];
    assert_eq!(alert["alert"], "Gated");
    assert_eq!(alert["with_run"]["episodes"], 2, "{stats}");
    assert_eq!(alert["with_run"]["resolved"], 1, "{stats}");
    // The default window (30 minutes): too early to say for both.
    let (_, stats) = served.get("/api/stats", Some("victor-token")).await;
    assert_eq!(stats["playbooks"][0]["after"]["open"], 2, "{stats}");
    // Bad parameters say what is wrong.
    for bad in [
        "/api/stats?since=soon",
        "/api/stats?within=0s",
        "/api/stats?x=1",
    ] {
        let (status, body) = served.get(bad, Some("victor-token")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // The numbers are in /metrics too.
    let (status, metrics) = served.get("/metrics", Some("victor-token")).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"medic_playbook_runs_after{playbook="gated",after="open"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"medic_playbook_feedback{playbook="gated",verdict="partly"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"medic_playbook_run_seconds{playbook="gated",quantile="0.5"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_list_is_filtered_in_the_journal_by_alert_label_state_time_and_id() {
    let served = serve(Setup::new(users())).await;
    gated_alert(&served, "fp-pay", "firing", r#"{"team":"payments"}"#).await;
    gated_alert(&served, "fp-web", "firing", r#"{"team":"web.front"}"#).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while served.engine.awaiting_approvals().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the runs did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["fingerprint"].as_str().unwrap().to_string())
            .collect()
    };
    let list = |query: String| {
        let served = &served;
        async move {
            served
                .get(&format!("/api/runs?{query}"), Some("victor-token"))
                .await
        }
    };
    let (_, all) = list(String::new()).await;
    assert_eq!(ids(&all), ["fp-web", "fp-pay"], "newest first: {all}");
    let (_, body) = list("label=team%3Dpayments".into()).await;
    assert_eq!(ids(&body), ["fp-pay"], "{body}");
    let (_, body) = list("label=team%3Dweb.front".into()).await;
    assert_eq!(ids(&body), ["fp-web"], "a dot in a label value: {body}");
    let (_, body) = list("alert=Gated&state=running".into()).await;
    assert_eq!(ids(&body).len(), 2, "{body}");
    let (_, body) = list("alert=Other".into()).await;
    assert_eq!(ids(&body).len(), 0, "{body}");
    let (_, body) = list("state=succeeded".into()).await;
    assert_eq!(ids(&body).len(), 0, "{body}");
    let (_, body) = list("from=1h&to=2099-01-01".into()).await;
    assert_eq!(ids(&body).len(), 2, "{body}");
    let (_, body) = list("to=2020-01-01%2000:00".into()).await;
    assert_eq!(ids(&body).len(), 0, "{body}");
    let first = all["runs"][1]["id"].as_i64().unwrap();
    let (_, body) = list(format!("id={first}")).await;
    assert_eq!(ids(&body), ["fp-pay"], "{body}");
    let alert = all["runs"][0]["alert_id"].as_i64().unwrap();
    let (_, body) = list(format!("alert_id={alert}")).await;
    assert_eq!(ids(&body), ["fp-web"], "{body}");
    let (_, body) = list("limit=1&page=1".into()).await;
    assert_eq!(ids(&body), ["fp-pay"], "{body}");
    for bad in [
        "state=done",
        "label=team",
        "from=yesterday",
        "id=x",
        "colour=red",
    ] {
        let (status, body) = list(bad.into()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
