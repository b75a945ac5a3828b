//! The page follows the server: `/ui/live` sends a `change` event whenever what a page shows
//! changes, and `/ui/live.js` (the page's only script) fetches the page again then.

use super::reader;
use crate::server::ServerState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `/ui/live?run=ID` (or without `run`, for the list).
#[derive(Debug, Default, serde::Deserialize)]
pub struct LiveQuery {
    pub run: Option<i64>,
}

/// What the page shows changes when this text does: the run's state, events and reverts, or
/// for the list the newest run and the state of every run in progress.
async fn version(engine: &crate::engine::Engine, run: Option<i64>) -> String {
    match run {
        Some(run) => match engine.run(run).await {
            Ok(detail) => format!(
                "{}:{}:{}:{}",
                detail.run.state,
                detail.events.len(),
                detail.awaiting_approval.join(","),
                detail
                    .reverts
                    .iter()
                    .map(|revert| revert.state.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(error) => format!("error: {error}"),
        },
        None => {
            let newest = engine
                .runs(1)
                .await
                .ok()
                .and_then(|runs| runs.first().map(|run| format!("{}:{}", run.id, run.state)))
                .unwrap_or_default();
            // Runs start, end and begin or stop waiting; paused runs are shown on their
            // own page only. Cheap: no journal read per run in progress.
            let mut active = engine.active_runs();
            active.sort_unstable();
            let active: Vec<String> = active.iter().map(ToString::to_string).collect();
            let waiting = format!("{:?}", engine.awaiting_approvals_anywhere().await);
            let kill = engine.kill_switch();
            format!("{newest}|{}|{waiting}|{kill}", active.join(","))
        }
    }
}

/// Server-sent events: a `change` event with the page's version when it first connects and
/// whenever the version changes (checked twice a second). A browser's EventSource reconnects
/// by itself and is told the version again, so a change while it was away is not missed.
pub(super) async fn live(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Response {
    if let Err(refused) = reader(&state, &headers) {
        return *refused;
    }
    let engine = state.engine.clone();
    let stream =
        futures::stream::unfold((engine, None::<String>), move |(engine, last)| async move {
            loop {
                let now = version(&engine, query.run).await;
                if last.as_ref() != Some(&now) {
                    let event = axum::response::sse::Event::default()
                        .event("change")
                        .data(now.clone());
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (engine, Some(now)),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
    axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
}

/// The page's only script: on a `change` event with a new version, the page is fetched
/// again and its `main` replaced (not while a field of it has the focus). Only the answer to
/// the newest fetch is shown: two changes in quick succession start two fetches, whose
/// answers may arrive in either order, and the older page must not replace the newer one.
/// Without the script the page still reads; it just does not move.
const LIVE_SCRIPT: &str = r#"(function () {
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource || !window.fetch) { return; }
  var last = null;
  var newest = 0;
  var source = new EventSource(main.getAttribute("data-live"));
  source.addEventListener("change", function (event) {
    if (last === null) { last = event.data; return; }
    if (event.data === last) { return; }
    var focused = document.activeElement;
    if (focused && main.contains(focused) && focused.tagName === "INPUT") { return; }
    last = event.data;
    var mine = ++newest;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (answer) { return answer.text(); })
      .then(function (html) {
        if (mine !== newest) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        if (fresh) { main.innerHTML = fresh.innerHTML; }
      });
  });
})();
"#;

pub(super) async fn live_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        LIVE_SCRIPT,
    )
        .into_response()
}
