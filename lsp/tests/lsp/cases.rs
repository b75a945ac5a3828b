//! One snapshot per file under `tests/lsp/`. A case file is an `.ops` source with a cursor
//! marker `‸` and a first line `//! request: <kind> [argument]`, where kind is one of hover,
//! definition, references, completion, rename, symbols, formatting, actions, tokens,
//! diagnostics. The snapshot shows the source, the request and the server's answer.

use crate::session::{Session, normalize};
use serde_json::{Value, json};

const CURSOR: char = '‸';

fn cursor_position(text: &str) -> (String, Value) {
    let offset = text.find(CURSOR).unwrap_or(0);
    let clean = text.replacen(CURSOR, "", 1);
    let before = &clean[..offset];
    let line = before.matches('\n').count();
    let column: usize = before[before.rfind('\n').map_or(0, |index| index + 1)..]
        .encode_utf16()
        .count();
    (clean, json!({"line": line, "character": column}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cases() {
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/lsp"))
        .unwrap()
        .count();
    assert!(files >= 12, "expected at least 12 LSP cases, found {files}");
    let mut cases: Vec<std::path::PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/lsp"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "ops"))
            .collect();
    cases.sort();
    for path in cases {
        let source = std::fs::read_to_string(&path).unwrap();
        let header = source.lines().next().unwrap();
        let request = header
            .strip_prefix("//! request: ")
            .expect("first line: //! request: <kind>");
        let (kind, argument) = request.split_once(' ').unwrap_or((request, ""));
        let (text, position) = cursor_position(&source);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let uri = format!("file:///workspace/{name}");
        let mut session = Session::start(None).await;
        session.open(&uri, &text).await;
        let diagnostics = session.diagnostics_of_version(&uri, 1).await;
        let document = json!({"uri": uri});
        let at = json!({"textDocument": document, "position": position});
        let answer = match kind {
            "hover" => session.request("textDocument/hover", at).await,
            "definition" => session.request("textDocument/definition", at).await,
            "references" => {
                let mut params = at;
                params["context"] = json!({"includeDeclaration": true});
                session.request("textDocument/references", params).await
            }
            "completion" => {
                let answer = session.request("textDocument/completion", at).await;
                // Labels and details are what matters; documentation is long.
                json!(answer
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| format!("{} — {}", item["label"].as_str().unwrap(), item["detail"].as_str().unwrap_or("")))
                    .collect::<Vec<_>>())
            }
            "rename" => {
                let mut params = at;
                params["newName"] = json!(argument);
                session.request("textDocument/rename", params).await
            }
            "symbols" => session.request("textDocument/documentSymbol", json!({"textDocument": document})).await,
            "formatting" => {
                session
                    .request(
                        "textDocument/formatting",
                        json!({"textDocument": document, "options": {"tabSize": 2, "insertSpaces": true}}),
                    )
                    .await
            }
            "actions" => {
                session
                    .request(
                        "textDocument/codeAction",
                        json!({"textDocument": document, "range": {"start": position, "end": position}, "context": {"diagnostics": []}}),
                    )
                    .await
            }
            "tokens" => session.request("textDocument/semanticTokens/full", json!({"textDocument": document})).await,
            "diagnostics" => json!(diagnostics),
            other => panic!("{name}: unknown request kind {other}"),
        };
        let snapshot = format!(
            "{source}\n---- {request} ----\n{}\n",
            serde_json::to_string_pretty(&normalize(&answer)).unwrap()
        );
        insta::with_settings!({snapshot_suffix => name.clone(), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("lsp", snapshot);
        });
    }
}
