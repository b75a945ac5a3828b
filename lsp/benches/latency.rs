//! Latency of the real server in-process on a 5,000-line file: from `didChange` to published
//! diagnostics (debounce included), and the semantic tokens, hover and completion requests.
//! Target: each under 50 ms.
//!
//! Run with `cargo bench -p medic-lsp --bench latency`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use futures::StreamExt;
use serde_json::{Value, json};
use tower::{Service, ServiceExt};
use tower_lsp::jsonrpc::Request;

fn main() {
    divan::main();
}

/// About 5,000 lines: 100 playbooks of five tasks and 400 rules.
fn source(variant: usize) -> String {
    let mut text = String::from("import std.{http, logs, k8s, notify}\n\n");
    for index in 0..100 {
        text.push_str(&format!(
            "/// Playbook {index}.\nplaybook pb{index}(service: String, since: Time) {{\n  timeout 10m\n\n  task status = http.get(\"http://{{service}}/health\") {{\n    retry 3 backoff 2s\n  }}\n  task logs = logs.aggregate(service: service, since: since, keywords: [\"ERROR\"]) {{\n    on failure continue\n  }}\n  task scale = k8s.scale(deployment: service, by: 1, max: 5) {{\n    when status.ok and (logs.error_rate ?? 100%) < 10%\n    revert after 30m\n  }}\n  task tell = notify.slack(channel: \"#oncall\", text: \"{{scale.summary ?? \"skipped\"}} {variant}\")\n}}\n\n"
        ));
    }
    for index in 0..420 {
        text.push_str(&format!(
            "/// Rule {index}.\nrule r{index} {{\n  on alert \"Alert_{}\"\n  when alert.service == \"svc-{index}\" and alert.value > 500ms\n  run pb{}(service: alert.service, since: alert.starts_at - 10m)\n  cooldown 15m per alert.service\n}}\n\n",
            index % 50,
            index % 100
        ));
    }
    text
}

struct Client {
    service: tower_lsp::LspService<medic_lsp::server::Backend>,
    published: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Client {
    async fn call(&mut self, request: Request) {
        let _ = self
            .service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap();
    }

    /// Sends a request and returns its result.
    async fn request(&mut self, method: &'static str, params: Value) -> Value {
        let response = self
            .service
            .ready()
            .await
            .unwrap()
            .call(Request::build(method).params(params).id(2).finish())
            .await
            .unwrap()
            .expect("a response");
        let (_, result) = response.into_parts();
        result.unwrap()
    }

    async fn next_diagnostics(&mut self) -> Value {
        loop {
            let message = self.published.recv().await.unwrap();
            if message["method"] == "textDocument/publishDiagnostics" {
                return message;
            }
        }
    }
}

const URI: &str = "file:///bench/big.ops";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A server with `text` open as version 1 and analysed, and the number of diagnostics
/// published for it.
fn opened(runtime: &tokio::runtime::Runtime, text: &str) -> (Client, usize) {
    assert!(
        text.lines().count() >= 5_000,
        "{} lines",
        text.lines().count()
    );
    runtime.block_on(async {
        let (service, socket) = medic_lsp::service();
        let (sender, published) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut socket = socket;
            while let Some(message) = socket.next().await {
                let _ = sender.send(serde_json::to_value(&message).unwrap());
            }
        });
        let mut client = Client { service, published };
        client
            .call(Request::build("initialize").params(json!({"capabilities": {}})).id(1).finish())
            .await;
        client.call(Request::build("initialized").params(json!({})).finish()).await;
        client
            .call(
                Request::build("textDocument/didOpen")
                    .params(json!({"textDocument": {"uri": URI, "languageId": "ops", "version": 1, "text": text}}))
                    .finish(),
            )
            .await;
        let opened = client.next_diagnostics().await;
        (client, opened["params"]["diagnostics"].as_array().map_or(0, Vec::len))
    })
}

/// The 0-based line and UTF-16 column of the last occurrence of `needle` in `text`, plus
/// `shift` columns.
fn last_position(text: &str, needle: &str, shift: usize) -> Value {
    let (line, content) = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .last()
        .unwrap();
    let column = content[..content.find(needle).unwrap()]
        .encode_utf16()
        .count()
        + shift;
    json!({"line": line, "character": column})
}

#[divan::bench(sample_count = 30)]
fn did_change_to_diagnostics_5000_lines(bencher: divan::Bencher) {
    let runtime = runtime();
    let (mut client, base) = opened(&runtime, &source(0));
    let mut version = 1;
    // Alternate between a clean text and one with a type error, and check each answer, so
    // that every sample measures the analysis of the edit it sent.
    let edits: Vec<String> = vec![
        source(0),
        source(0).replacen("when status.ok and", "when status.okk and", 1),
    ];
    bencher.bench_local(|| {
        version += 1;
        let text = &edits[version as usize % 2];
        runtime.block_on(async {
            client
                .call(
                    Request::build("textDocument/didChange")
                        .params(json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [{"text": text}]}))
                        .finish(),
                )
                .await;
            let published = client.next_diagnostics().await;
            let count = published["params"]["diagnostics"].as_array().map_or(0, Vec::len);
            assert_eq!(count, base + version as usize % 2, "diagnostics of the wrong version: {published}");
        })
    });
}

#[divan::bench(sample_count = 30)]
fn semantic_tokens_5000_lines(bencher: divan::Bencher) {
    let runtime = runtime();
    let text = source(0);
    let (mut client, _) = opened(&runtime, &text);
    let params = json!({"textDocument": {"uri": URI}});
    bencher.bench_local(|| {
        runtime.block_on(async {
            let tokens = client
                .request("textDocument/semanticTokens/full", params.clone())
                .await;
            // Five numbers per token, and several tokens on most lines.
            let numbers = tokens["data"].as_array().map_or(0, Vec::len);
            assert!(numbers > 5 * 10_000, "{numbers} numbers");
        })
    });
}

#[divan::bench(sample_count = 30)]
fn hover_at_the_end_of_5000_lines(bencher: divan::Bencher) {
    let runtime = runtime();
    let text = source(0);
    let (mut client, _) = opened(&runtime, &text);
    // `alert` in the `when` clause of the last rule, near the end of the file.
    let params = json!({
        "textDocument": {"uri": URI},
        "position": last_position(&text, "alert.service ==", 1),
    });
    bencher.bench_local(|| {
        runtime.block_on(async {
            let hover = client.request("textDocument/hover", params.clone()).await;
            assert!(hover["contents"]["value"].is_string(), "{hover}");
        })
    });
}

#[divan::bench(sample_count = 30)]
fn completion_at_the_end_of_5000_lines(bencher: divan::Bencher) {
    let runtime = runtime();
    let text = source(0);
    let (mut client, _) = opened(&runtime, &text);
    // Inside the argument list of the last rule's `run`, near the end of the file.
    let params = json!({
        "textDocument": {"uri": URI},
        "position": last_position(&text, "service: alert.service,", 0),
    });
    bencher.bench_local(|| {
        runtime.block_on(async {
            let items = client
                .request("textDocument/completion", params.clone())
                .await;
            let labels: Vec<&str> = items
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["label"].as_str().unwrap())
                .collect();
            assert!(labels.contains(&"since:"), "{labels:?}");
        })
    });
}
