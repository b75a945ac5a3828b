//! The webhook readers through the server: an alert from each source starts its rule's run
//! and its resolved form ends it; SNS messages are checked as Amazon's (the sandbox's SNS
//! signs them with its own certificate, served on loopback).

use crate::served::*;
use medic_runtime::sns::{SnsConfig, SnsVerifier};
use medic_sandbox::sns::{FakeSns, SignatureVersion};
use std::time::{Duration, Instant};

/// An Azure Monitor notification in the common alert schema for rule `Gated`.
fn azure(condition: &str, resolved: &str) -> String {
    format!(
        r#"{{"schemaId":"azureMonitorCommonAlertSchema","data":{{"essentials":{{
          "alertId":"/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1",
          "alertRule":"Gated","severity":"Sev2","signalType":"Metric","monitorCondition":"{condition}",
          "monitoringService":"Platform",
          "alertTargetIDs":["/subscriptions/s/resourcegroups/shop/providers/microsoft.compute/virtualmachines/api-vm"],
          "configurationItems":["api"],"originAlertId":"s_shop_metricAlerts_Gated_1",
          "firedDateTime":"2026-11-27T12:00:00Z"{resolved},"description":"","essentialsVersion":"1.0"}},
          "alertContext":null,"customProperties":null}}}}"#
    )
}

/// The `Gated` run that waits for its `tell` to be approved, once one does.
async fn waiting_run(served: &Served) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((run, tasks)) = served.engine.awaiting_approvals().into_iter().next() {
            assert_eq!(tasks, ["tell"]);
            return run;
        }
        assert!(Instant::now() < deadline, "no run started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_alert_starts_its_run_and_its_resolve_ends_it() {
    let served = serve(Setup::new(users())).await;
    let (status, body) = served
        .post("/webhook/azure", Some("sam-token"), &azure("Fired", ""))
        .await;
    assert_eq!(status, 200, "{body}");
    let run = waiting_run(&served).await;
    let detail = served.engine.run(run).await.unwrap();
    assert_eq!(detail.run.fingerprint, "s_shop_metricAlerts_Gated_1");
    let (status, body) = served
        .post(
            "/webhook/azure",
            Some("sam-token"),
            &azure("Resolved", r#","resolvedDateTime":"2026-11-27T12:10:00Z""#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    served.wait_for_state(run, "cancelled").await;
    // Not the common schema: refused, naming the fix.
    let (status, body) = served
        .post(
            "/webhook/azure",
            Some("sam-token"),
            r#"{"schemaId":"Microsoft.Insights/activityLogs","data":{}}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("common alert schema"),
        "{body}"
    );
}

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:medic-alarms";

/// A CloudWatch alarm `Gated` in state `state` (ALARM or OK), changed at `changed`.
fn alarm(state: &str, changed: &str) -> String {
    serde_json::json!({
        "AlarmName": "Gated",
        "AlarmDescription": null,
        "AWSAccountId": "123456789012",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [91.5 (04/12/26 01:00:00)] was greater than the threshold (80.0).",
        "StateChangeTime": changed,
        "Region": "EU (Ireland)",
        "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:Gated",
        "OldStateValue": if state == "OK" { "ALARM" } else { "OK" },
        "Trigger": {
            "MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "Statistic": "AVERAGE",
            "Unit": null, "Dimensions": [{"name": "service", "value": "api"}],
            "Period": 60, "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold", "Threshold": 80.0
        }
    })
    .to_string()
}

/// RFC 3339 of now plus `offset_seconds`, as SNS writes its timestamps.
fn at(offset_seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A server that trusts `TOPIC` and the sandbox SNS's certificate host (loopback), with
/// users whose tokens the CloudWatch webhook does not need.
async fn sns_served() -> (Served, FakeSns) {
    let sns = FakeSns::start().await.unwrap();
    let mut config = SnsConfig::new(vec![TOPIC.into()]);
    config.cert_hosts = vec!["127.0.0.1".into()];
    let mut setup = Setup::new(users());
    setup.auth.sns = Some(std::sync::Arc::new(SnsVerifier::new(config).unwrap()));
    (serve(setup).await, sns)
}

async fn post_sns(served: &Served, message: &serde_json::Value) -> (u16, serde_json::Value) {
    served
        .post("/webhook/cloudwatch", None, &message.to_string())
        .await
}

/// The newest audit entry: its action, outcome and error.
async fn last_audit(served: &Served) -> (String, String, Option<String>) {
    let entry = served
        .engine
        .audit_log(1, None, None)
        .await
        .unwrap()
        .remove(0);
    (entry.action, entry.outcome, entry.error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_cloudwatch_alarm_starts_its_run_and_its_ok_ends_it() {
    let (served, sns) = sns_served().await;
    let fired = sns.notification(
        TOPIC,
        "msg-alarm",
        &alarm("ALARM", "2026-12-04T01:00:30.000+0000"),
        &at(-5),
        SignatureVersion::V1,
    );
    let (status, body) = post_sns(&served, &fired).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    let run = waiting_run(&served).await;
    let detail = served.engine.run(run).await.unwrap();
    assert_eq!(
        detail.run.fingerprint,
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:Gated"
    );
    // SNS retries a delivery it thinks failed with the same message id: taken once.
    let (status, body) = post_sns(&served, &fired).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 0, "{body}");
    assert_eq!(body["duplicate"], "msg-alarm", "{body}");
    // The OK message says when the alarm ended, not when it began: it ends that episode.
    let ok = sns.notification(
        TOPIC,
        "msg-ok",
        &alarm("OK", "2026-12-04T01:20:00.000+0000"),
        &at(0),
        SignatureVersion::V2,
    );
    let (status, body) = post_sns(&served, &ok).await;
    assert_eq!(status, 200, "{body}");
    served.wait_for_state(run, "cancelled").await;
}

/// The newest suppression's reason, once there are `count`.
async fn suppression_reason(served: &Served, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let suppressions = served.engine.suppressions(50).await.unwrap();
        if suppressions.len() >= count {
            return suppressions[0].reason.clone();
        }
        assert!(Instant::now() < deadline, "no suppression {count}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_after_ok_is_a_new_episode_and_one_back_from_insufficient_data_is_not() {
    let (served, sns) = sns_served().await;
    let post = |id: &str, message: String| {
        // Without a Subject, as a publisher may send it: signed without it.
        sns.notification_without_subject(TOPIC, id, &message, &at(0), SignatureVersion::V2)
    };
    let fired = post("m1", alarm("ALARM", "2026-12-04T01:00:30.000+0000"));
    assert_eq!(post_sns(&served, &fired).await.0, 200);
    waiting_run(&served).await;
    // ALARM → INSUFFICIENT_DATA → ALARM: the alarm never went OK, the same episode.
    let unknown = alarm("INSUFFICIENT_DATA", "2026-12-04T01:05:00.000+0000");
    let (status, body) = post_sns(&served, &post("m2", unknown)).await;
    assert_eq!(
        (status, &body["accepted"]),
        (200, &serde_json::json!(0)),
        "{body}"
    );
    let back = alarm("ALARM", "2026-12-04T01:06:00.000+0000").replace(
        r#""OldStateValue":"OK""#,
        r#""OldStateValue":"INSUFFICIENT_DATA""#,
    );
    assert!(back.contains("INSUFFICIENT_DATA"), "{back}");
    assert_eq!(post_sns(&served, &post("m3", back)).await.0, 200);
    assert_eq!(suppression_reason(&served, 1).await, "duplicate");
    // OK, then ALARM from OK: a new episode (held by the rule's cooldown, not a duplicate).
    let ok = alarm("OK", "2026-12-04T01:10:00.000+0000");
    assert_eq!(post_sns(&served, &post("m4", ok)).await.0, 200);
    let again = alarm("ALARM", "2026-12-04T01:11:00.000+0000");
    assert_eq!(post_sns(&served, &post("m5", again)).await.0, 200);
    assert_eq!(suppression_reason(&served, 2).await, "cooldown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_confirmed_only_for_a_trusted_topic() {
    let (served, sns) = sns_served().await;
    let confirm = sns.confirmation(TOPIC, "tok-1", &at(0), false, SignatureVersion::V1);
    let (status, body) = post_sns(&served, &confirm).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subscription"], format!("{TOPIC}:0f1e2d3c"), "{body}");
    assert_eq!(sns.confirmed(), [(TOPIC.to_string(), "tok-1".to_string())]);
    assert_eq!(
        last_audit(&served).await,
        ("sns.subscribe".into(), "done".into(), None)
    );
    let stranger = "arn:aws:sns:eu-west-1:999999999999:someone-elses";
    let confirm = sns.confirmation(stranger, "tok-2", &at(0), false, SignatureVersion::V2);
    let (status, body) = post_sns(&served, &confirm).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        sns.confirmed().len(),
        1,
        "an untrusted topic is never confirmed"
    );
    let (action, outcome, error) = last_audit(&served).await;
    assert_eq!(
        (action.as_str(), outcome.as_str()),
        ("sns.subscribe", "refused")
    );
    assert!(error.unwrap().contains("not in sources.cloudwatch.topics"));
    let unsubscribe = sns.confirmation(TOPIC, "tok-3", &at(0), true, SignatureVersion::V2);
    let (status, body) = post_sns(&served, &unsubscribe).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sns.confirmed().len(),
        1,
        "an unsubscription is recorded, not visited"
    );
    assert_eq!(
        last_audit(&served).await,
        ("sns.unsubscribe".into(), "done".into(), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_misplaced_sns_messages_are_refused_and_journaled() {
    let (served, sns) = sns_served().await;
    let message = alarm("ALARM", "2026-12-04T01:00:30.000+0000");
    let signed = sns.notification(TOPIC, "msg-1", &message, &at(0), SignatureVersion::V2);
    let mut forged = signed.clone();
    forged["Message"] = serde_json::json!(message.replace("\"Gated\"", "\"Other\""));
    let mut elsewhere = signed.clone();
    elsewhere["SigningCertURL"] =
        serde_json::json!("https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem");
    let mut plain = signed.clone();
    plain["SignatureVersion"] = serde_json::json!("3");
    let stale = sns.notification(TOPIC, "msg-2", &message, &at(-10_800), SignatureVersion::V1);
    let mut garbage = signed.clone();
    garbage["SigningCertURL"] = serde_json::json!(format!(
        "{}/SimpleNotificationService-garbage.pem",
        sns.url()
    ));
    for (message, says) in [
        (&garbage, "is not a PEM certificate"),
        (&forged, "does not verify"),
        (&elsewhere, "is not one of sources.cloudwatch.cert_hosts"),
        (&plain, "SignatureVersion \"3\""),
        (&stale, "older than the 7200 s accepted"),
    ] {
        let (status, body) = post_sns(&served, message).await;
        assert_eq!(status, 403, "{says}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{says}: {body}"
        );
        let (action, outcome, error) = last_audit(&served).await;
        assert_eq!(
            (action.as_str(), outcome.as_str()),
            ("sns.notification", "refused")
        );
        assert!(error.unwrap().contains(says), "{says}");
    }
    assert!(
        served
            .engine
            .alert_summaries(10, None, None)
            .await
            .unwrap()
            .is_empty(),
        "nothing refused was journaled as an alert"
    );
    // A certificate host that does not answer may be a passing fault: 503, which SNS
    // retries, not a refusal.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut unreachable = signed.clone();
    unreachable["SigningCertURL"] = serde_json::json!(format!(
        "http://127.0.0.1:{port}/SimpleNotificationService-gone.pem"
    ));
    let (status, body) = post_sns(&served, &unreachable).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("is unavailable"),
        "{body}"
    );
    // The genuine message is still taken after the forgeries.
    let (status, body) = post_sns(&served, &signed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    // Not JSON of an SNS message: 400, naming what is missing.
    let (status, body) = served
        .post("/webhook/cloudwatch", None, r#"{"Type":"Notification"}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no `MessageId`"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sources_cloudwatch_the_webhook_says_how_to_configure_it() {
    let served = serve(Setup::new(users())).await;
    let (status, body) = served.post("/webhook/cloudwatch", None, "{}").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("[sources.cloudwatch]"),
        "{body}"
    );
}

/// Medic's Elastic template as Kibana renders it for rule `Gated`, action group `group`.
fn kibana(group: &str, date: &str) -> String {
    format!(
        r#"{{"medic":"1","source":"kibana",
          "rule":{{"id":"rule-1","name":"Gated","tags":"team:api","url":"","space":"default"}},
          "alerts":[{{"id":"api","uuid":"u-1","action_group":"{group}","action_group_name":"",
                      "flapping":"false","reason":"errors above 5%","value":"7%","message":"",
                      "service":"api"}}],
          "date":"{date}","kibana_url":""}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kibana_alert_starts_one_run_its_repeat_joins_it_and_recovery_ends_it() {
    let served = serve(Setup::new(users())).await;
    let (status, body) = served
        .post(
            "/webhook/elastic",
            Some("sam-token"),
            &kibana("query matched", "2026-12-04T01:00:00.000Z"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = waiting_run(&served).await;
    // Kibana repeats an active alert's action with a new date: the same episode.
    let (status, body) = served
        .post(
            "/webhook/elastic",
            Some("sam-token"),
            &kibana("query matched", "2026-12-04T01:05:00.000Z"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        suppression_reason(&served, 1).await,
        "duplicate",
        "the repeat is the same episode, not a new one held by the cooldown"
    );
    let (status, body) = served
        .post(
            "/webhook/elastic",
            Some("sam-token"),
            &kibana("recovered", "2026-12-04T01:10:00.000Z"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    served.wait_for_state(run, "cancelled").await;
    let runs = served.engine.runs(10).await.unwrap();
    assert_eq!(runs.len(), 1, "the repeat started no second run");
    assert_eq!(runs[0].fingerprint, "rule-1/api");
    // Active again after the recovery, and a new active period (a new `alert.uuid`) while
    // the old one looks open (its recovery was lost): each a new episode, so the rule's
    // cooldown holds them, not the episode.
    for (uuid, date) in [
        ("u-2", "2026-12-04T01:20:00.000Z"),
        ("u-3", "2026-12-04T01:30:00.000Z"),
    ] {
        let (status, body) = served
            .post(
                "/webhook/elastic",
                Some("sam-token"),
                &kibana("query matched", date).replace("u-1", uuid),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(suppression_reason(&served, 3).await, "cooldown");
    let reasons: Vec<String> = served
        .engine
        .suppressions(10)
        .await
        .unwrap()
        .into_iter()
        .map(|suppression| suppression.reason)
        .collect();
    assert_eq!(reasons, ["cooldown", "cooldown", "duplicate"]);
    // A template with a misspelt field is refused, naming it.
    let (status, body) = served
        .post(
            "/webhook/elastic",
            Some("sam-token"),
            &kibana("recovered", "2026-12-04T01:10:00.000Z").replace("\"flapping\"", "\"flaping\""),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`alerts[].flaping`"),
        "{body}"
    );
}
