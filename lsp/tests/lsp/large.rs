//! Requests on a generated file of about 20,000 lines, with characters outside ASCII and
//! outside the BMP on many lines. The file repeats one block under fixed-width names, so the
//! answer for every block must equal the answer for a file of that block alone, shifted by
//! whole lines; positions near the end are checked against columns counted by the test.
//!
//! No timing is asserted. What guards against a return to conversions that rescan the text
//! per position is the size: such a server needs minutes for these requests (27 s per
//! semantic-token request at this size in a release build), this one a fraction of a second.

use crate::session::Session;
use serde_json::{Value, json};

const BLOCKS: usize = 1_200;
const BLOCK_LINES: usize = 17;

/// One playbook and the rule that runs it, numbered `index`; always `BLOCK_LINES` lines.
fn block(index: usize) -> String {
    format!(
        "/// Playbook {index:05}: é 😀.
playbook pb{index:05}(service: String, since: Time) {{
  task status = http.get(\"http://{{service}}/health\") // 😀 check
  task logs = logs.aggregate(service: service, since: since, keywords: [\"ERROR é\"]) {{
    after status
    retry 3 backoff 2s
  }}
  task tell = notify.slack(channel: \"#oncall\", text: \"😀 {{logs.error_rate ?? 0%}} é\")
}}

/// Rule {index:05}.
rule r{index:05} {{
  on alert \"Alert_{index:05}\"
  when alert.service == \"svc-😀-{index:05}\" and alert.value > 500ms
  run pb{index:05}(service: alert.service, since: alert.starts_at - 10m)
  cooldown 15m per alert.service
}}
"
    )
}

const HEADER: &str = "import std.{http, logs, notify}\n";

fn file(blocks: usize) -> String {
    let mut text = String::from(HEADER);
    for index in 0..blocks {
        text.push_str(&block(index));
    }
    text
}

/// The 0-based line of `line_in_block` in block `index`.
fn line_of(index: usize, line_in_block: usize) -> u32 {
    u32::try_from(HEADER.lines().count() + index * BLOCK_LINES + line_in_block).unwrap()
}

/// The UTF-16 column where `needle` starts on a line, counted independently of the server.
fn column(line: &str, needle: &str) -> u32 {
    let offset = line.find(needle).unwrap();
    u32::try_from(line[..offset].encode_utf16().count()).unwrap()
}

/// Semantic tokens as absolute `(line, start, length, type)`.
fn decode(tokens: &Value) -> Vec<[u64; 4]> {
    let data: Vec<u64> = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_u64().unwrap())
        .collect();
    let (mut line, mut start) = (0, 0);
    data.chunks(5)
        .map(|token| {
            if token[0] > 0 {
                start = 0;
            }
            line += token[0];
            start += token[1];
            [line, start, token[2], token[3]]
        })
        .collect()
}

async fn opened(uri: &str, text: &str) -> Session {
    let mut session = Session::start(None).await;
    session.open(uri, text).await;
    let diagnostics = session.diagnostics_of_version(uri, 1).await;
    assert!(
        diagnostics
            .iter()
            .all(|diagnostic| diagnostic["severity"] != 1),
        "the generated file has errors: {diagnostics:?}"
    );
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_block_of_a_large_file_is_answered_like_a_file_of_that_block_alone() {
    let small_uri = "file:///large/one.ops";
    let mut small = opened(small_uri, &file(1)).await;
    let expected = decode(
        &small
            .request(
                "textDocument/semanticTokens/full",
                json!({"textDocument": {"uri": small_uri}}),
            )
            .await,
    );
    let first_block_line = u64::from(line_of(0, 0));
    let (header, expected) =
        expected.split_at(expected.partition_point(|token| token[0] < first_block_line));
    assert!(expected.len() > 40, "{expected:?}");

    let text = file(BLOCKS);
    assert!(text.lines().count() >= 20_000);
    let uri = "file:///large/many.ops";
    let mut session = opened(uri, &text).await;
    let tokens = decode(
        &session
            .request(
                "textDocument/semanticTokens/full",
                json!({"textDocument": {"uri": uri}}),
            )
            .await,
    );
    let (found_header, tokens) = tokens.split_at(header.len());
    assert_eq!(found_header, header);
    assert_eq!(tokens.len(), BLOCKS * expected.len());
    let shift = u64::from(line_of(1, 0) - line_of(0, 0));
    for (index, found) in tokens.chunks(expected.len()).enumerate() {
        let shifted: Vec<[u64; 4]> = expected
            .iter()
            .map(|&[line, start, length, kind]| [line + shift * index as u64, start, length, kind])
            .collect();
        assert_eq!(found, shifted.as_slice(), "block {index}");
    }

    // Symbols: a playbook and a rule per block, the last one on its own line.
    let symbols = session
        .request(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": uri}}),
        )
        .await;
    let symbols = symbols.as_array().unwrap();
    assert_eq!(symbols.len(), 2 * BLOCKS);
    let last = BLOCKS - 1;
    assert_eq!(symbols[2 * BLOCKS - 1]["name"], format!("r{last:05}"));
    assert_eq!(
        symbols[2 * BLOCKS - 1]["selectionRange"]["start"],
        json!({"line": line_of(last, 11), "character": 5})
    );

    // Hover after a character outside the BMP, in the last block.
    let tell = block(last).lines().nth(7).unwrap().to_string();
    let at = column(&tell, "logs.error_rate");
    let hover = session
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": line_of(last, 7), "character": at + 1}}),
        )
        .await;
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("task logs"),
        "{hover}"
    );
    assert_eq!(
        hover["range"],
        json!({
            "start": {"line": line_of(last, 7), "character": at},
            "end": {"line": line_of(last, 7), "character": at + 4},
        })
    );

    // Completion at the end of `after status` in the last block: the other tasks that do
    // not depend on `logs`.
    let completion = session
        .request(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": line_of(last, 4), "character": 16}}),
        )
        .await;
    let labels: Vec<&str> = completion
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["status"]);
}
