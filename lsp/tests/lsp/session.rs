//! An in-process client: drives `medic_lsp::service()` with JSON-RPC messages and collects
//! what the server publishes.

use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};
use tower_lsp::LspService;
use tower_lsp::jsonrpc::Request;

pub struct Session {
    service: LspService<medic_lsp::server::Backend>,
    notifications: mpsc::UnboundedReceiver<Value>,
    next_id: i64,
    /// Per document, the newest version whose diagnostics the server has published.
    published_versions: BTreeMap<String, i64>,
}

/// How long to wait for a publication before failing.
const PUBLICATION_TIMEOUT: Duration = Duration::from_secs(20);

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
            published_versions: BTreeMap::new(),
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

    /// Waits for the next diagnostics published for `uri`, whatever text they are of. For
    /// files read from disk, which have no version; use [`Session::diagnostics_of_version`]
    /// for open documents.
    pub async fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + PUBLICATION_TIMEOUT;
        let (_, diagnostics) = self
            .next_publication(uri, deadline)
            .await
            .unwrap_or_else(|| panic!("no diagnostics for {uri} within {PUBLICATION_TIMEOUT:?}"));
        diagnostics
    }

    /// Waits for the diagnostics of `version` of the open document `uri`. Publications for
    /// earlier versions (analyses the server finished before it saw the edit) are skipped;
    /// fails when the version's diagnostics do not arrive within [`PUBLICATION_TIMEOUT`],
    /// saying which versions did, and when a publication carries no version or one the
    /// test has not sent.
    pub async fn diagnostics_of_version(&mut self, uri: &str, version: i64) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + PUBLICATION_TIMEOUT;
        let mut skipped = Vec::new();
        loop {
            let Some((published, diagnostics)) = self.next_publication(uri, deadline).await else {
                panic!(
                    "no diagnostics for version {version} of {uri} within {PUBLICATION_TIMEOUT:?}; \
                     versions published meanwhile: {skipped:?}"
                );
            };
            match published {
                Some(published) if published == version => return diagnostics,
                Some(published) if published < version => skipped.push(published),
                other => panic!(
                    "diagnostics for {uri} published with version {other:?} while waiting for \
                     version {version}: {diagnostics:?}"
                ),
            }
        }
    }

    /// The version and diagnostics of the next publication for `uri`, or `None` at the
    /// deadline. Fails when a publication is for an older version of the document than one
    /// already published: the editor would be left showing stale diagnostics.
    async fn next_publication(
        &mut self,
        uri: &str,
        deadline: tokio::time::Instant,
    ) -> Option<(Option<i64>, Vec<Value>)> {
        loop {
            let message = tokio::time::timeout_at(deadline, self.notifications.recv())
                .await
                .ok()?
                .expect("the server is running");
            if message["method"] != "textDocument/publishDiagnostics"
                || message["params"]["uri"] != uri
            {
                continue;
            }
            let version = message["params"]["version"].as_i64();
            if let Some(version) = version {
                let newest = self
                    .published_versions
                    .entry(uri.to_string())
                    .or_insert(version);
                assert!(
                    version >= *newest,
                    "diagnostics of version {version} of {uri} published after those of \
                     version {newest}"
                );
                *newest = version;
            }
            let diagnostics = message["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            return Some((version, diagnostics));
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
