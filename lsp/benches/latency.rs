//! Time from `didChange` to published diagnostics for a 5,000-line file, through the real
//! server in-process (debounce included). Target: under 50 ms.
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

    async fn next_diagnostics(&mut self) -> Value {
        loop {
            let message = self.published.recv().await.unwrap();
            if message["method"] == "textDocument/publishDiagnostics" {
                return message;
            }
        }
    }
}

#[divan::bench(sample_count = 30)]
fn did_change_to_diagnostics_5000_lines(bencher: divan::Bencher) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let text = source(0);
    assert!(
        text.lines().count() >= 5_000,
        "{} lines",
        text.lines().count()
    );
    let uri = "file:///bench/big.ops";
    let client = runtime.block_on(async {
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
                    .params(json!({"textDocument": {"uri": uri, "languageId": "ops", "version": 1, "text": text}}))
                    .finish(),
            )
            .await;
        let opened = client.next_diagnostics().await;
        (client, opened["params"]["diagnostics"].as_array().map_or(0, Vec::len))
    });
    let (mut client, base) = client;
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
                        .params(json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}))
                        .finish(),
                )
                .await;
            let published = client.next_diagnostics().await;
            let count = published["params"]["diagnostics"].as_array().map_or(0, Vec::len);
            assert_eq!(count, base + version as usize % 2, "diagnostics of the wrong version: {published}");
        })
    });
}
