//! Workspace behaviour: several files, edits that change other files' diagnostics, broken
//! files navigated with the last good analysis, and requests that must never crash.

use crate::session::Session;
use serde_json::json;

const PLAYBOOKS: &str = "import std.{http}\n\nplaybook check(service: String) {\n  task health = http.get(\"http://{service}/health\")\n  task ready = http.get(\"http://{service}/ready\") {\n    when health.ok\n  }\n}\n";
const RULES: &str = "rule r {\n  on alert \"A\"\n  run check(service: alert.service)\n}\n";

/// A directory holding `playbooks.ops` and `rules.ops`, and the URIs of both files. The
/// directory is deleted when dropped (also when the test panics).
fn two_file_workspace(name: &str) -> (tempfile::TempDir, String, String) {
    let directory = tempfile::Builder::new()
        .prefix(&format!("medic-lsp-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::write(directory.path().join("playbooks.ops"), PLAYBOOKS).unwrap();
    std::fs::write(directory.path().join("rules.ops"), RULES).unwrap();
    let uri = |file: &str| {
        tower_lsp::lsp_types::Url::from_file_path(directory.path().join(file))
            .unwrap()
            .to_string()
    };
    let (playbooks, rules) = (uri("playbooks.ops"), uri("rules.ops"));
    (directory, playbooks, rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_one_file_updates_the_diagnostics_of_another() {
    let (directory, playbooks, rules) = two_file_workspace("ws");

    let mut session = Session::start(Some(directory.path())).await;
    // Only the playbook file is opened; the rule file comes from disk.
    session.open(&playbooks, PLAYBOOKS).await;
    let first = session.diagnostics(&rules).await;
    assert!(first.is_empty(), "{first:?}");
    // Renaming the playbook in one file breaks the rule in the other.
    session
        .change(
            &playbooks,
            2,
            &PLAYBOOKS.replace("playbook check(", "playbook checks("),
        )
        .await;
    let after = session.diagnostics(&rules).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["code"], "ops::resolve::unknown_playbook");
    assert!(
        after[0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `checks`?")
    );
    // Go to definition from the rule file lands in the playbook file.
    session.change(&playbooks, 3, PLAYBOOKS).await;
    session.diagnostics(&rules).await;
    let target = session
        .request(
            "textDocument/definition",
            json!({"textDocument": {"uri": rules}, "position": {"line": 2, "character": 7}}),
        )
        .await;
    assert_eq!(target["uri"], playbooks);
    assert_eq!(target["range"]["start"]["line"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_its_last_good_analysis_for_navigation() {
    let uri = "file:///broken/p.ops";
    let mut session = Session::start(None).await;
    session.open(uri, PLAYBOOKS).await;
    let clean = session.diagnostics_of_version(uri, 1).await;
    assert!(
        clean.iter().all(|diagnostic| diagnostic["severity"] == 2),
        "only warnings: {clean:?}"
    );
    // Break the syntax after the tasks; hover on `health` still works.
    let broken = PLAYBOOKS.replace("    when health.ok\n", "    when health.ok and (\n");
    session.change(uri, 2, &broken).await;
    let diagnostics = session.diagnostics_of_version(uri, 2).await;
    assert_eq!(diagnostics[0]["code"], "ops::syntax::unexpected");
    let hover = session
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": 3, "character": 8}}),
        )
        .await;
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("task health: http.Response"),
        "{hover}"
    );
    let completion = session
        .request(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": 5, "character": 16}}),
        )
        .await;
    let labels: Vec<&str> = completion
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"ok") && labels.contains(&"latency"),
        "{labels:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_crashes_the_server() {
    let uri = "file:///fuzz/p.ops";
    let mut session = Session::start(None).await;
    let sources = [
        PLAYBOOKS,
        RULES,
        "",
        "rule",
        "playbook p(",
        "\"{{{",
        "rule r { on alert \"A\" when alert. }",
        "task x = ",
        "😀\n\u{0}",
    ];
    let methods = [
        "textDocument/hover",
        "textDocument/definition",
        "textDocument/references",
        "textDocument/completion",
        "textDocument/prepareRename",
        "textDocument/documentSymbol",
        "textDocument/semanticTokens/full",
    ];
    let mut version = 1;
    session.open(uri, "").await;
    for source in sources {
        version += 1;
        session.change(uri, version, source).await;
        // The requests below are meant for the analysis of this source, not an older one.
        session.diagnostics_of_version(uri, version.into()).await;
        for line in 0..6u32 {
            for character in [0u32, 1, 5, 17, 200] {
                for method in methods {
                    let params = json!({
                        "textDocument": {"uri": uri},
                        "position": {"line": line, "character": character},
                        "context": {"includeDeclaration": true},
                    });
                    let _ = session.request(method, params).await;
                }
            }
        }
        let rename = session
            .request(
                "textDocument/rename",
                json!({"textDocument": {"uri": uri}, "position": {"line": 2, "character": 10}, "newName": "not a name"}),
            )
            .await;
        assert!(rename.is_null() || rename.get("error").is_some());
    }
    // Still answering, with the diagnostics of the last text: the answer must be the one
    // published for the last version (`diagnostics_of_version` fails if it does not come,
    // or if older diagnostics are published after it). The analysis installed before it is
    // of a text with a syntax error, so stale diagnostics labelled as current fail too.
    assert_eq!(sources.last(), Some(&"😀\n\u{0}"));
    version += 1;
    session.change(uri, version, PLAYBOOKS).await;
    let last = session.diagnostics_of_version(uri, version.into()).await;
    // The playbooks only look, so they check clean: stale diagnostics (the syntax error of
    // the text before) would not be empty.
    assert!(last.is_empty(), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_changed_on_disk_are_re_read() {
    let (directory, playbooks, rules) = two_file_workspace("watch");
    let mut session = Session::start(Some(directory.path())).await;
    session.open(&rules, RULES).await;
    assert!(session.diagnostics(&rules).await.is_empty());
    // Another program renames the playbook on disk.
    std::fs::write(
        directory.path().join("playbooks.ops"),
        PLAYBOOKS.replace("playbook check(", "playbook checks("),
    )
    .unwrap();
    session
        .notify(
            "workspace/didChangeWatchedFiles",
            json!({"changes": [{"uri": playbooks, "type": 2}]}),
        )
        .await;
    let after = session.diagnostics(&rules).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["code"], "ops::resolve::unknown_playbook");
}
