//! The shop's own HTTP endpoints on one loopback listener, told apart by the `Host` header
//! (with or without a port), as a reverse proxy in front of the services would route:
//!
//! - `GET /health` on each service and on the logging node: 200 `{"status": "ok"}`, or 503
//!   `{"status": "unavailable", "reason"}` while the world makes the service unhealthy;
//! - `POST /admin/cleanup` on `logging-node`: frees its disk (200 with what was freed);
//! - on any host, the control API: `POST /control/incidents/{name}` starts an incident,
//!   `DELETE /control/incidents/{name}` ends it, `GET /control/state` is the snapshot.
//!
//! Every other request is a JSON error with its status.

use super::Inner;
use super::model::{Incident, LOGGING_NODE};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The running listener. Dropping it shuts it down.
pub struct Server {
    pub address: SocketAddr,
    background: crate::serving::Background,
}

impl Server {
    /// Binds `listener` and serves `inner`'s services on it.
    pub fn serve(listener: tokio::net::TcpListener, inner: Arc<Inner>) -> std::io::Result<Server> {
        let address = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(inner);
        let background = crate::serving::Background::serve(listener, app, "shop services server");
        Ok(Server {
            address,
            background,
        })
    }

    pub async fn stop(mut self) {
        self.background.stop().await;
    }
}

/// Binds 127.0.0.1 on `port` (0: a free one).
pub async fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await
}

fn answer(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    answer(status, &json!({"error": message}))
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/control") {
        return control(&inner, &method, rest);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // `name` or `name:port`; the service is the name.
    let service = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let Some(healthy) = inner.health(service) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no service {service:?} here (Host {host:?})"),
        );
    };
    match (method, path) {
        (Method::GET, "/health") => match healthy {
            Ok(()) => answer(StatusCode::OK, &json!({"status": "ok"})),
            Err(reason) => answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "reason": reason}),
            ),
        },
        (Method::POST, "/admin/cleanup") if service == LOGGING_NODE => {
            let asked = String::from_utf8_lossy(&body).into_owned();
            let report = inner.cleanup(&asked);
            answer(StatusCode::OK, &report)
        }
        (_, "/health") | (_, "/admin/cleanup") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, &format!("{service} has no {path}")),
    }
}

fn control(inner: &Inner, method: &Method, rest: &str) -> Response {
    if rest == "/state" {
        return if method == Method::GET {
            match serde_json::to_value(inner.snapshot()) {
                Ok(snapshot) => answer(StatusCode::OK, &snapshot),
                Err(failure) => error(StatusCode::INTERNAL_SERVER_ERROR, &failure.to_string()),
            }
        } else {
            error(StatusCode::METHOD_NOT_ALLOWED, "GET /control/state")
        };
    }
    let Some(name) = rest.strip_prefix("/incidents/") else {
        return error(StatusCode::NOT_FOUND, "no such control route");
    };
    let Some(incident) = Incident::parse(name) else {
        let known: Vec<&str> = Incident::ALL
            .iter()
            .map(|incident| incident.name())
            .collect();
        return error(
            StatusCode::NOT_FOUND,
            &format!("no incident {name:?}; known: {}", known.join(", ")),
        );
    };
    match *method {
        Method::POST => {
            inner.trigger(incident);
            answer(StatusCode::OK, &json!({"incident": name, "active": true}))
        }
        Method::DELETE => {
            inner.end(incident);
            answer(StatusCode::OK, &json!({"incident": name, "active": false}))
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "POST or DELETE"),
    }
}
