//! The receiver's HTTP side: Slack's incoming-webhook endpoint at `/slack` and a generic
//! webhook everywhere else.
//!
//! Slack's answers (<https://api.slack.com/messaging/webhooks#handling_errors>): `ok` with
//! 200 for a posted message, 400 `invalid_payload` for a body that is not the JSON object
//! it expects, 400 `no_text` for one without `text`. Slack takes a payload without
//! `channel` (the webhook's own channel); Medic always names one, so here a missing
//! `channel` is `invalid_payload` rather than a channel made up.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::routing::post;
use tokio::sync::watch;

use super::{Message, Store};

/// Serves until `stopped` turns true (or its sender is gone), then lets open requests
/// finish.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    body_limit: usize,
    store: Arc<Store>,
    mut stopped: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/slack", post(slack))
        .fallback(webhook)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(store);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            // An error means the receiver is gone: stop as well.
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(error) = served {
        tracing::warn!(%error, "receiver: the HTTP server failed");
    }
}

/// The fields of a Slack payload Medic sends; others (`username`, `blocks`) are ignored, as
/// Slack ignores what a webhook does not use.
#[derive(serde::Deserialize)]
struct SlackPayload {
    channel: Option<String>,
    text: Option<String>,
}

async fn slack(State(store): State<Arc<Store>>, body: Bytes) -> (StatusCode, String) {
    let payload: SlackPayload = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("invalid_payload: {error}"));
        }
    };
    let Some(text) = payload.text else {
        return (StatusCode::BAD_REQUEST, "no_text".to_string());
    };
    let Some(channel) = payload.channel else {
        return (
            StatusCode::BAD_REQUEST,
            "invalid_payload: no channel".to_string(),
        );
    };
    store.record(Message::Slack { channel, text });
    (StatusCode::OK, "ok".to_string())
}

async fn webhook(
    State(store): State<Arc<Store>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, String) {
    if method != Method::POST {
        return (StatusCode::OK, "ok".to_string());
    }
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return (
            StatusCode::BAD_REQUEST,
            "the body is not UTF-8 text".to_string(),
        );
    };
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), ToString::to_string);
    store.record(Message::Webhook { path, body });
    (StatusCode::OK, "ok".to_string())
}
