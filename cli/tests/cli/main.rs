//! The `medic` binary as users and CI call it: exit codes, output formats, files on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod alertmanager;
mod cluster;
mod crash;
mod demo;
mod history;
mod http;
mod kubernetes;
mod logs;
mod neovim;
mod serve;
mod smtp;
mod sources;
mod test;
mod world;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `medic check` keeps its cache here rather than in the user's ~/.cache.
fn check_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("medic-check-cache")
}

fn medic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(args)
        .env("MEDIC_CACHE_DIR", check_cache_dir())
        .current_dir(repo_root())
        .output()
        .unwrap()
}

/// `medic` with extra environment variables.
fn medic_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(args)
        .env("MEDIC_CACHE_DIR", check_cache_dir())
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .output()
        .unwrap()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// A fresh folder in the temp directory, deleted with its contents when dropped (also when the
/// test panics). It derefs to its path, so tests use it as one; keep it alive for as long as a
/// process started by the test may use the folder.
struct TempDir(tempfile::TempDir);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// For `Command::arg` and `Command::env`, which take the folder as they take a `PathBuf`.
impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

/// A child process that is killed and waited for when dropped, so that no test leaves one
/// running, also when it panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A [`TempDir`] named `medic-cli-<name>-<random>`, so that a leftover is recognisable.
fn temp_dir(name: &str) -> TempDir {
    TempDir(
        tempfile::Builder::new()
            .prefix(&format!("medic-cli-{name}-"))
            .tempdir()
            .unwrap(),
    )
}

const THREE_ERRORS: &str = r#"import std.{k8s}

rule a {
  on alert "A"
  when alert.servce == "x"
  run p()
  cooldown 5m
}

playbook p() {
  task t = k8s.scale(deployment: "x", by: 1)
}

rule b {
  on alert "B"
  run missing()
  cooldown 5m
}
"#;

#[test]
fn examples_check_clean() {
    let output = medic(&["check", "examples/"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("0 errors, 0 warnings"));
}

#[test]
fn check_reuses_the_result_of_an_unchanged_tree_and_only_that() {
    let dir = temp_dir("cache");
    let cache = dir.join("cache");
    let file = dir.join("clean.ops");
    let clean = "rule a {\n  on alert \"A\"\n  run p()\n  cooldown 5m\n}\n\nplaybook p() {\n}\n";
    std::fs::write(&file, clean).unwrap();
    let cache_str = cache.to_str().unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec!["check"];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        medic_with_env(&args, &[("MEDIC_CACHE_DIR", cache_str)])
    };
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(cache.join("check"))
            .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
            .unwrap_or_default()
    };
    let first = check(&[]);
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    assert_eq!(entries().len(), 1, "a clean tree's result is stored");
    let second = check(&[]);
    assert_eq!(stdout(&second), stdout(&first));

    // The stored entry is what a second run prints: proven by changing it.
    let entry = entries().pop().unwrap();
    std::fs::write(
        &entry,
        r#"{"output":"from the cache\n","errors":0,"warnings":0}"#,
    )
    .unwrap();
    assert_eq!(stdout(&check(&[])), "from the cache\n");
    assert_eq!(
        stdout(&check(&["--no-cache"])),
        stdout(&first),
        "--no-cache checks"
    );

    // A changed file is a different tree: checked again, its error reported.
    std::fs::write(&file, clean.replace("run p()", "run missing()")).unwrap();
    let broken = check(&[]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(stdout(&broken).contains("missing"), "{}", stdout(&broken));
    assert_eq!(
        entries().len(),
        1,
        "human output with diagnostics is not stored"
    );

    // JSON is stored with its errors, and the exit code follows the stored counts.
    let json = check(&["--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let again = check(&["--format", "json"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(stdout(&again), stdout(&json));
    assert_eq!(entries().len(), 2);

    // An entry that does not parse is a miss, not an answer.
    for entry in entries() {
        std::fs::write(entry, "not json").unwrap();
    }
    std::fs::write(&file, clean).unwrap();
    assert_eq!(stdout(&check(&[])), stdout(&first));
}

#[test]
fn three_errors_are_reported_as_json_with_lines_and_codes() {
    let dir = temp_dir("three");
    let file = dir.join("three.ops");
    std::fs::write(&file, THREE_ERRORS).unwrap();
    let output = medic(&["check", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["summary"]["errors"], 3);
    let found: Vec<(u64, String)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|diagnostic| {
            (
                diagnostic["range"]["start"]["line"].as_u64().unwrap(),
                diagnostic["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (5, "ops::type::unknown_field".to_string()),
            (11, "ops::guard::missing_limit".to_string()),
            (16, "ops::resolve::unknown_playbook".to_string()),
        ]
    );
    let first = &report["diagnostics"][0];
    assert_eq!(first["suggestion"]["replacement"], "service");
    assert_eq!(first["range"]["start"]["column"], 14);
    assert_eq!(first["severity"], "error");
}

#[test]
fn human_output_shows_source_and_help() {
    let dir = temp_dir("human");
    let file = dir.join("three.ops");
    std::fs::write(&file, THREE_ERRORS).unwrap();
    let output = medic(&["check", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("ops::type::unknown_field"));
    assert!(text.contains("did you mean `service`?"));
    assert!(text.contains("checked 1 file: 3 errors, 0 warnings"));
}

#[test]
fn github_and_sarif_formats() {
    let dir = temp_dir("ci");
    let file = dir.join("three.ops");
    std::fs::write(&file, THREE_ERRORS).unwrap();
    let github = stdout(&medic(&[
        "check",
        "--format",
        "github",
        file.to_str().unwrap(),
    ]));
    let lines: Vec<&str> = github.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("::error file="), "{}", lines[0]);
    assert!(lines[0].contains(",line=5,col=14,"));
    assert!(lines[0].contains("title=ops%3A%3Atype%3A%3Aunknown_field::"));
    let sarif: serde_json::Value = serde_json::from_slice(
        &medic(&["check", "--format", "sarif", file.to_str().unwrap()]).stdout,
    )
    .unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 3);
    assert_eq!(
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        5
    );
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let dir = temp_dir("warn");
    let file = dir.join("warn.ops");
    std::fs::write(
        &file,
        "import std.{http, notify}\n\nrule r {\n  on alert \"A\"\n  run p(service: alert.service)\n  cooldown 5m\n}\n\nplaybook p(service: String) {\n  task t = http.get(\"http://{service}/health\")\n  task tell = notify.slack(channel: \"#oncall\", text: service)\n}\n",
    )
    .unwrap();
    assert_eq!(
        medic(&["check", file.to_str().unwrap()]).status.code(),
        Some(0)
    );
    assert_eq!(
        medic(&["check", "--deny-warnings", file.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let output = medic(&["check", "does/not/exist.ops"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read does/not/exist.ops"));
    assert_eq!(medic(&["check", "--format", "xml"]).status.code(), Some(2));
    let empty = temp_dir("empty");
    let output = medic(&["check", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no .ops files"));
}

#[test]
fn fmt_check_and_rewrite() {
    assert_eq!(
        medic(&["fmt", "--check", "examples/", "stdlib/"])
            .status
            .code(),
        Some(0)
    );
    let dir = temp_dir("fmt");
    let file = dir.join("messy.ops");
    let messy = "import std.{http}\nrule r{on alert \"A\" run p(s:alert.service) cooldown 5m}\nplaybook p(s:String){task t=http.get(\"http://{s}/\") // check\n}\n";
    std::fs::write(&file, messy).unwrap();
    let check = medic(&["fmt", "--check", dir.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    assert!(stdout(&check).contains("messy.ops: not formatted"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        messy,
        "--check must not write"
    );
    assert_eq!(
        medic(&["fmt", dir.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert!(
        formatted.contains("  task t = http.get(\"http://{s}/\")  // check\n"),
        "{formatted}"
    );
    assert_eq!(
        medic(&["fmt", "--check", dir.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn fmt_refuses_files_with_syntax_errors() {
    let dir = temp_dir("fmt-broken");
    let file = dir.join("broken.ops");
    std::fs::write(&file, "rule r {\n  on alert\n}\n").unwrap();
    let output = medic(&["fmt", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not formatted because of syntax errors")
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "rule r {\n  on alert\n}\n"
    );
}

#[test]
fn plan_json_is_byte_identical_across_runs() {
    let first = medic(&["plan", "examples/", "--format", "json"]);
    let second = medic(&["plan", "examples/", "--format", "json"]);
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(first.stdout, second.stdout);
    let plan: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["content_hash"].as_str().unwrap().len(), 64);
    assert_eq!(plan["rules"].as_array().unwrap().len(), 4);
}

#[test]
fn plan_formats_render() {
    let text = stdout(&medic(&["plan", "examples/payment_latency.ops"]));
    assert!(text.contains("rule #1 payment_latency"));
    assert!(text.contains("5. scale = k8s.scale("));
    let dot = stdout(&medic(&[
        "plan",
        "--format",
        "dot",
        "examples/payment_latency.ops",
    ]));
    assert!(dot.starts_with("digraph plan {"));
    assert!(dot.contains("\"payment_troubleshoot.status\" -> \"payment_troubleshoot.scale\";"));
    let mermaid = stdout(&medic(&[
        "plan",
        "--format",
        "mermaid",
        "examples/payment_latency.ops",
    ]));
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(mermaid.contains("payment_troubleshoot__logs -.-> payment_troubleshoot__deps"));
}

#[test]
fn plan_diff_exit_codes_and_words() {
    let dir = temp_dir("diff");
    let old = dir.join("old.json");
    std::fs::write(
        &old,
        medic(&["plan", "--format", "json", "examples/order_cpu.ops"]).stdout,
    )
    .unwrap();
    let same = medic(&[
        "plan",
        "--diff",
        old.to_str().unwrap(),
        "examples/order_cpu.ops",
    ]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(stdout(&same), "no changes\n");
    let changed = dir.join("order_cpu.ops");
    let source = std::fs::read_to_string(repo_root().join("examples/order_cpu.ops")).unwrap();
    std::fs::write(&changed, source.replace("max: 5", "max: 10")).unwrap();
    let diff = medic(&[
        "plan",
        "--diff",
        old.to_str().unwrap(),
        changed.to_str().unwrap(),
    ]);
    // Changes found: 3, not 1, so that CI can tell them from errors in the sources.
    assert_eq!(diff.status.code(), Some(3), "{diff:?}");
    assert_eq!(
        stdout(&diff),
        "1 change:\n- playbook scale_up, task scale: argument `max` changed from 5 to 10\n"
    );
    // New sources with errors: 1, with the diagnostics and no diff.
    let broken = dir.join("broken.ops");
    std::fs::write(&broken, THREE_ERRORS).unwrap();
    let errors = medic(&[
        "plan",
        "--diff",
        old.to_str().unwrap(),
        broken.to_str().unwrap(),
    ]);
    assert_eq!(errors.status.code(), Some(1), "{errors:?}");
    assert!(errors.stdout.is_empty(), "{errors:?}");
    assert!(
        String::from_utf8_lossy(&errors.stderr).contains("3 errors"),
        "{errors:?}"
    );
    // A bad or missing old plan: 2, whatever the sources say.
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"format_version\": 7}").unwrap();
    let refused = medic(&["plan", "--diff", garbage.to_str().unwrap(), "examples/"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("version 7 is not supported"));
    let missing = dir.join("missing.json");
    let unreadable = medic(&[
        "plan",
        "--diff",
        missing.to_str().unwrap(),
        broken.to_str().unwrap(),
    ]);
    assert_eq!(unreadable.status.code(), Some(2), "{unreadable:?}");
    assert!(
        String::from_utf8_lossy(&unreadable.stderr).contains("cannot read"),
        "{unreadable:?}"
    );
}

#[test]
fn plan_refuses_programs_with_errors() {
    let dir = temp_dir("plan-errors");
    let file = dir.join("three.ops");
    std::fs::write(&file, THREE_ERRORS).unwrap();
    let output = medic(&["plan", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("3 errors"));
}

#[test]
fn explain_routes_an_example_payload_and_says_why_a_rule_did_not_match() {
    let output = medic(&[
        "explain",
        "--alert",
        "examples/alerts/disk_full.json",
        "--plans",
        "examples/",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout
            .contains("1. rule disk_full (examples/disk_full.ops:5): MATCHED; matching stops here"),
        "{stdout}"
    );
    assert!(
        stdout.contains("when alert.value > 85%: true (alert.value = 91%)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule order_cpu (examples/order_cpu.ops:5): no: it is for \"High_CPU_Usage\", and the alert is \"Disk_Full\""),
        "{stdout}"
    );
    // The same alert below the threshold: no rule matches, and the part that failed is named.
    let dir = temp_dir("explain");
    let text = std::fs::read_to_string(repo_root().join("examples/alerts/disk_full.json"))
        .unwrap()
        .replace("91%", "50%");
    let payload = dir.join("alert.json");
    std::fs::write(&payload, text).unwrap();
    let output = medic(&[
        "explain",
        "--alert",
        payload.to_str().unwrap(),
        "--plans",
        "examples/",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let explanations: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let disk = &explanations[0]["rules"][0];
    assert_eq!(disk["rule"], "disk_full");
    assert_eq!(disk["verdict"]["kind"], "not_matched");
    assert_eq!(disk["verdict"]["reason"], "`alert.value > 85%` is false");
    assert_eq!(disk["parts"][1]["operands"][0]["value"]["value"], "50%");
    // A payload that is not JSON is a clear error.
    std::fs::write(&payload, "not json").unwrap();
    let output = medic(&[
        "explain",
        "--alert",
        payload.to_str().unwrap(),
        "--plans",
        "examples/",
    ]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not JSON"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
