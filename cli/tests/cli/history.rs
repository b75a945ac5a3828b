//! History and effectiveness through the CLI against a real `medic serve` with a users file:
//! "did this run fix it?" answers, the audit log of operators' actions (done, refused and
//! denied by role), the statistics, and the runs list's filters.

use super::serve::{
    APPROVAL_PLAN, Receiver, Server, alertmanager_payload, config, sha256_hex, users_file,
    write_plan,
};
use super::{TempDir, medic, stdout, temp_dir};
use std::process::Output;

/// A server with the users of [`users_file`] and sam (sender, token `sam-token`), and two
/// runs of playbook `gated`: one of a `Gated` alert of service `api` that alice approved and
/// that succeeded, one of service `web` still waiting for approval.
struct History {
    // Dropped first: the process is killed before its folder is deleted.
    server: Server,
    receiver: Receiver,
    /// The succeeded run (fingerprint h1, service api).
    approved: i64,
    /// The run waiting for approval (fingerprint h2, service web).
    waiting: i64,
    _dir: TempDir,
}

impl History {
    fn start(name: &str) -> History {
        let dir = temp_dir(name);
        let receiver = Receiver::start();
        write_plan(
            &dir,
            &APPROVAL_PLAN.replace("RECEIVER", &receiver.port.to_string()),
        );
        std::fs::write(
            dir.join("users.toml"),
            format!(
                "{}\n[users.sam]\ntoken_sha256 = \"{}\"\nrole = \"sender\"\n",
                users_file(),
                sha256_hex("sam-token")
            ),
        )
        .unwrap();
        let server = Server::start(
            &dir,
            &config("[auth]\nusers_file = \"users.toml\"\n"),
            Some("alice-token"),
        );
        let waiting_for_approval =
            |detail: &serde_json::Value| detail["awaiting_approval"] == serde_json::json!(["act"]);
        let first = alertmanager_payload("Gated", "api", "h1", "firing", "2026-11-27T12:00:00Z");
        assert_eq!(server.post("/webhook/alertmanager", &first).0, 200);
        let runs = server.wait_for_runs("the first run", |runs| runs.len() == 1);
        let approved = runs[0]["id"].as_i64().unwrap();
        server.wait_for_detail(
            &approved.to_string(),
            "the first run to wait for approval",
            waiting_for_approval,
        );
        let second = alertmanager_payload("Gated", "web", "h2", "firing", "2026-11-27T12:00:00Z");
        assert_eq!(server.post("/webhook/alertmanager", &second).0, 200);
        let runs = server.wait_for_runs("the second run", |runs| runs.len() == 2);
        let waiting = runs
            .iter()
            .filter_map(|run| run["id"].as_i64())
            .find(|id| *id != approved)
            .unwrap();
        server.wait_for_detail(
            &waiting.to_string(),
            "the second run to wait for approval",
            waiting_for_approval,
        );
        let history = History {
            server,
            receiver,
            approved,
            waiting,
            _dir: dir,
        };
        let approve = history.cli("alice-token", &["approve", &approved.to_string()]);
        assert!(approve.status.success(), "{approve:?}");
        let detail = history.server.wait_for_detail(
            &approved.to_string(),
            "the approved run to finish",
            |detail| detail["finished_at"].is_i64(),
        );
        assert_eq!(detail["state"], "succeeded", "{detail:#}");
        assert_eq!(*history.receiver.paths.lock().unwrap(), ["/gated/h1"]);
        history
    }

    /// `medic ARGS --server URL --token TOKEN`.
    fn cli(&self, token: &str, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &self.server.url, "--token", token]);
        medic(&all)
    }

    /// The JSON a `--json` command printed; it must have succeeded.
    fn json(&self, token: &str, args: &[&str]) -> serde_json::Value {
        let output = self.cli(token, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{args:?} printed no JSON ({error}): {output:?}"))
    }

    /// The ids `medic runs ARGS --json` lists, newest first.
    fn run_ids(&self, args: &[&str]) -> Vec<i64> {
        let mut all: Vec<&str> = vec!["runs"];
        all.extend_from_slice(args);
        all.push("--json");
        self.json("victor-token", &all)["runs"]
            .as_array()
            .unwrap_or_else(|| panic!("{all:?}: no `runs` list"))
            .iter()
            .map(|run| run["id"].as_i64().unwrap())
            .collect()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// A field of a JSON value as text, for comparing rows in one assertion.
fn text(value: &serde_json::Value, field: &str) -> String {
    match &value[field] {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[test]
fn feedback_is_recorded_audited_and_counted_in_stats() {
    let history = History::start("serve-feedback");
    let id = history.approved.to_string();
    let recorded = format!(r#"{{"feedback":"recorded","run":{id}}}"#);
    // Alice answers twice: her latest answer is the one the statistics count.
    let first = history.cli("alice-token", &["feedback", &id, "no"]);
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    assert_eq!(stdout(&first).trim(), recorded, "{first:?}");
    let note = "latency is back to normal, errors remain";
    let second = history.cli("alice-token", &["feedback", &id, "partly", "--note", note]);
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    assert_eq!(stdout(&second).trim(), recorded, "{second:?}");
    // A viewer may not answer: refused by role, and the refusal is audited.
    let viewer = history.cli("victor-token", &["feedback", &id, "yes"]);
    assert_eq!(viewer.status.code(), Some(2), "{viewer:?}");
    assert!(
        stderr(&viewer).contains("403 Forbidden: victor has the role viewer"),
        "{viewer:?}"
    );
    // An unknown run: 404, audited as refused.
    let missing = history.cli("alice-token", &["feedback", "999", "yes"]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(
        stderr(&missing).contains("404 Not Found: there is no run 999"),
        "{missing:?}"
    );
    // A sender may not even read the audit log; a refused read is not an operator action.
    let sender = history.cli("sam-token", &["audit"]);
    assert_eq!(sender.status.code(), Some(2), "{sender:?}");
    assert!(
        stderr(&sender).contains("403 Forbidden: sam has the role sender"),
        "{sender:?}"
    );

    // The run shows both answers, oldest first.
    let detail = history.json("victor-token", &["runs", &id, "--json"]);
    let answers: Vec<(String, String, String)> = detail["feedback"]
        .as_array()
        .unwrap_or_else(|| panic!("no feedback in {detail:#}"))
        .iter()
        .map(|row| (text(row, "by"), text(row, "verdict"), text(row, "note")))
        .collect();
    assert_eq!(
        answers,
        [
            (String::from("alice"), String::from("no"), String::new()),
            (
                String::from("alice"),
                String::from("partly"),
                note.to_string()
            ),
        ]
    );

    // The audit log, as a viewer reads it: every operator action, newest first.
    let audit = history.json("victor-token", &["audit", "--json"]);
    let entries = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {audit:#}"))
        .clone();
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|entry| {
            [
                text(entry, "actor"),
                text(entry, "role"),
                text(entry, "via"),
                text(entry, "action"),
                text(entry, "outcome"),
                text(entry, "run_id"),
            ]
        })
        .collect();
    let row = |actor: &str, role: &str, action: &str, outcome: &str, run: &str| {
        [actor, role, "api", action, outcome, run].map(String::from)
    };
    assert_eq!(
        rows,
        [
            row("alice", "operator", "feedback", "refused", "999"),
            row("victor", "viewer", "denied", "refused", "null"),
            row("alice", "operator", "feedback", "done", &id),
            row("alice", "operator", "feedback", "done", &id),
            row("alice", "operator", "approve", "done", &id),
        ],
        "{audit:#}"
    );
    let partly = &entries[2];
    assert_eq!(partly["detail"], format!("partly: {note}"), "{partly:#}");
    assert!(partly["error"].is_null(), "{partly:#}");
    assert_eq!(entries[3]["detail"], "no", "{audit:#}");
    let denied = &entries[1];
    assert_eq!(
        denied["detail"],
        format!("POST /api/runs/{id}/feedback"),
        "{denied:#}"
    );
    assert!(
        text(denied, "error").contains("victor has the role viewer"),
        "{denied:#}"
    );
    assert!(
        text(&entries[0], "error").contains("there is no run 999"),
        "{audit:#}"
    );
    // Of one run, and the newest few.
    let of_run = history.json("victor-token", &["audit", "--run", &id, "--json"]);
    let actions: Vec<String> = of_run["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| text(entry, "action"))
        .collect();
    assert_eq!(actions, ["feedback", "feedback", "approve"], "{of_run:#}");
    let newest = history.json("victor-token", &["audit", "--limit", "2", "--json"]);
    assert_eq!(
        newest["entries"].as_array().map(Vec::len),
        Some(2),
        "{newest:#}"
    );
    assert_eq!(newest["entries"][1]["action"], "denied", "{newest:#}");
    // As text: one line per entry, newest first.
    let listed = history.cli("victor-token", &["audit"]);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let listed = stdout(&listed);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 5, "{listed}");
    assert!(
        lines[0].contains("alice (operator)")
            && lines[0].contains("feedback")
            && lines[0].contains("run 999")
            && lines[0].contains("refused: there is no run 999"),
        "{listed}"
    );
    assert!(
        lines[1].contains("victor (viewer)")
            && lines[1].contains("denied")
            && lines[1].contains("refused: victor has the role viewer"),
        "{listed}"
    );
    assert!(
        lines[2].contains("alice (operator)")
            && lines[2].contains("feedback")
            && lines[2].contains(&format!("run {id} "))
            && lines[2].contains(&format!("partly: {note}"))
            && lines[2].ends_with("done"),
        "{listed}"
    );
    assert!(
        lines[4].contains("approve") && lines[4].ends_with("done"),
        "{listed}"
    );

    // The statistics: two runs of `gated`, one succeeded, one still waiting; alice's
    // latest answer counted once.
    let stats = history.json("victor-token", &["stats", "--json", "--since", "1d"]);
    assert_eq!(stats["runs"], 2, "{stats:#}");
    let effectiveness = |list: &str, name: &str| {
        stats[list]
            .as_array()
            .and_then(|entries| entries.iter().find(|entry| entry["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {list} entry {name:?} in {stats:#}"))
    };
    for list in ["playbooks", "rules"] {
        let gated = effectiveness(list, "gated");
        assert_eq!(gated["runs"], 2, "{gated:#}");
        assert_eq!(
            gated["outcomes"],
            serde_json::json!({ "running": 1, "succeeded": 1 }),
            "{gated:#}"
        );
        assert_eq!(
            gated["feedback"],
            serde_json::json!({ "yes": 0, "no": 0, "partly": 1 }),
            "{gated:#}"
        );
        assert_eq!(gated["approvals"]["approved"], 1, "{gated:#}");
        // No resolved notification yet, within the 30 minutes: the effect is still open.
        assert_eq!(gated["after"]["open"], 2, "{gated:#}");
    }
    let shown = history.cli("victor-token", &["stats"]);
    assert_eq!(shown.status.code(), Some(0), "{shown:?}");
    let shown = stdout(&shown);
    assert!(shown.starts_with("2 runs since "), "{shown}");
    assert!(
        shown.contains("\nplaybook gated: 2 runs (1 running, 1 succeeded)\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\n  did it fix it yes 0, partly 1, no 0\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\n  after the run 0 resolved, 0 fired again, 0 kept firing, 2 open\n"),
        "{shown}"
    );
    let bad = history.cli("victor-token", &["stats", "--since", "lately"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        stderr(&bad).contains("400 Bad Request: `since` is not a duration"),
        "{bad:?}"
    );
}

#[test]
fn the_runs_list_is_filtered_by_alert_label_state_and_time() {
    let history = History::start("serve-run-filters");
    let (approved, waiting) = (history.approved, history.waiting);
    assert!(approved < waiting);
    assert_eq!(history.run_ids(&[]), [waiting, approved]);
    assert_eq!(history.run_ids(&["--alert", "Gated"]), [waiting, approved]);
    assert_eq!(history.run_ids(&["--alert", "Hot"]), Vec::<i64>::new());
    assert_eq!(history.run_ids(&["--label", "service=api"]), [approved]);
    assert_eq!(history.run_ids(&["--label", "service=web"]), [waiting]);
    assert_eq!(
        history.run_ids(&["--label", "service=db"]),
        Vec::<i64>::new()
    );
    assert_eq!(
        history.run_ids(&["--alert", "Gated", "--state", "succeeded"]),
        [approved]
    );
    assert_eq!(history.run_ids(&["--state", "running"]), [waiting]);
    assert_eq!(
        history.run_ids(&["--playbook", "gated", "--rule", "gated", "--limit", "1"]),
        [waiting]
    );
    assert_eq!(history.run_ids(&["--from", "1h"]), [waiting, approved]);
    assert_eq!(history.run_ids(&["--to", "1h"]), Vec::<i64>::new());
    // As text, with the alert's name as the filter.
    let listed = history.cli("victor-token", &["runs", "--label", "service=web"]);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let listed = stdout(&listed);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "a heading and one run: {listed}");
    assert!(
        lines[1].trim_start().starts_with(&format!("{waiting} "))
            && lines[1].contains("running")
            && lines[1].contains("gated"),
        "{listed}"
    );
    // A filter the server cannot read is a 400 that says what it wants.
    let bad = history.cli("victor-token", &["runs", "--label", "nonsense"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        stderr(&bad).contains("400 Bad Request") && stderr(&bad).contains("name=value"),
        "{bad:?}"
    );
    assert!(bad.stdout.is_empty(), "{bad:?}");
    let bad = history.cli("victor-token", &["runs", "--state", "bogus"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        stderr(&bad).contains("400 Bad Request: no run state \"bogus\""),
        "{bad:?}"
    );
    let bad = history.cli("victor-token", &["runs", "--from", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(stderr(&bad).contains("`from` is not a time"), "{bad:?}");
}
