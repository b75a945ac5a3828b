//! An in-process client: drives `medic_lsp::service()` with JSON-RPC messages and collects
//! what the server publishes.

use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};
use tower_lsp::LspService;
use tower_lsp::jsonrpc::Request;

pub struct Session {
    service: LspService<medic_lsp::server::Backend>,
    notifications: mpsc::UnboundedReceiver<Value>,
    next_id: i64,
}

impl Session {
    pub async fn start(root: Option<&std::path::Path>) -> Session {
        let (service, socket) = medic_lsp::service();
        let (sender, notifications) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut socket = socket;
            while let Some(message) = socket.next().await {
                let value = serde_json::to_value(&message).unwrap();
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        let mut session = Session {
            service,
            notifications,
            next_id: 1,
        };
        let root_uri = root.map(|root| {
            tower_lsp::lsp_types::Url::from_directory_path(root)
                .unwrap()
                .to_string()
        });
        session
            .request(
                "initialize",
                json!({"capabilities": {}, "rootUri": root_uri}),
            )
            .await;
        session.notify("initialized", json!({})).await;
        session
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request::build(method.to_string())
            .params(params)
            .id(id)
            .finish();
        let response = self
            .service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap();
        let response = serde_json::to_value(response.expect("a response")).unwrap();
        if let Some(error) = response.get("error") {
            return json!({ "error": error });
        }
        response["result"].clone()
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        let request = Request::build(method.to_string()).params(params).finish();
        let response = self
            .service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap();
        assert!(response.is_none());
    }

    pub async fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "ops", "version": 1, "text": text}}),
        )
        .await;
    }

    pub async fn change(&mut self, uri: &str, version: i32, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        )
        .await;
    }

    /// Waits for the next diagnostics published for `uri`.
    pub async fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.notifications.recv())
                .await
                .expect("diagnostics within 20 s")
                .expect("the server is running");
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return message["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }
}

/// Replaces machine-specific paths (the stdlib cache directory) in a response.
pub fn normalize(value: &Value) -> Value {
    let text = serde_json::to_string(value).unwrap();
    let cache = medic_lsp::workspace::materialize_stdlib();
    let mut text = text;
    if let Some(first) = cache.first() {
        let directory = first
            .as_str()
            .rsplit_once('/')
            .map(|(directory, _)| directory.to_string())
            .unwrap();
        text = text.replace(&directory, "std:");
    }
    serde_json::from_str(&text).unwrap()
}
