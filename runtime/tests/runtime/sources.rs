//! The webhook readers through the server: an alert from each source starts its rule's run
//! and its resolved form ends it.

use crate::served::*;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_alert_starts_its_run_and_its_resolve_ends_it() {
    let served = serve(Setup::new(users())).await;
    let (status, body) = served
        .post("/webhook/azure", Some("sam-token"), &azure("Fired", ""))
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let run = loop {
        if let Some((run, tasks)) = served.engine.awaiting_approvals().into_iter().next() {
            assert_eq!(tasks, ["tell"]);
            break run;
        }
        assert!(Instant::now() < deadline, "no run started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
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
