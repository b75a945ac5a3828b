//! `medic test` as CI calls it: exit codes, formats, --run, --deny-empty, coverage.

use super::{medic, stdout, temp_dir};

const RUNBOOK: &str = r##"import std.{notify}

rule down {
  on alert "Down"
  when alert.service == "api"
  run tell(service: alert.service)
  cooldown 10m per alert.service
}

playbook tell(service: String) {
  task send = notify.slack(channel: "#oncall", text: "{service} is down")
}
"##;

const TESTS: &str = r##"test "api down is told" {
  fire { name: "Down", service: "api" }
  mock notify.slack = { delivered: true, detail: "ok" }
  expect action notify.slack(text: "api is down")
}

test "web down is not" {
  fire { name: "Down", service: "web" }
  expect no match
}
"##;

fn folder(tests: &str) -> super::TempDir {
    let dir = temp_dir("test");
    std::fs::write(dir.join("down.ops"), RUNBOOK).unwrap();
    std::fs::write(dir.join("down_test.ops"), tests).unwrap();
    dir
}

fn path(dir: &super::TempDir) -> String {
    dir.display().to_string()
}

#[test]
fn passing_tests_exit_0_and_coverage_is_reported() {
    let dir = folder(TESTS);
    let output = medic(&["test", &path(&dir), "--coverage"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("PASS") && text.contains("api down is told"),
        "{text}"
    );
    assert!(text.contains("2 tests: 2 passed, 0 failed"), "{text}");
    assert!(text.contains("total 100.0% (3 of 3)"), "{text}");
}

#[test]
fn a_failing_test_exits_1_and_says_what_differs() {
    let dir = folder(&TESTS.replace("api is down", "api is up"));
    let output = medic(&["test", &path(&dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "expected action notify.slack with text: \"api is up\", got text: \"api is down\""
        ),
        "{text}"
    );
    assert!(text.contains("what happened:"), "{text}");
}

#[test]
fn json_and_junit_describe_every_test() {
    let dir = folder(&TESTS.replace("api is down", "api is up"));
    let output = medic(&["test", &path(&dir), "--format", "json", "--coverage"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["passed"], 1);
    assert_eq!(json["failed"], 1);
    assert_eq!(json["tests"][0]["passed"], false);
    assert!(json["coverage"]["percent"].as_f64().is_some());
    let output = medic(&["test", &path(&dir), "--format", "junit"]);
    let xml = stdout(&output);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<failure message=\"expect action"), "{xml}");
}

#[test]
fn run_selects_tests_and_deny_empty_refuses_a_path_without_tests() {
    let dir = folder(TESTS);
    let output = medic(&["test", &path(&dir), "--run", "web"]);
    let text = stdout(&output);
    assert!(text.contains("1 test: 1 passed"), "{text}");
    let empty = temp_dir("test-empty");
    std::fs::write(empty.join("down.ops"), RUNBOOK).unwrap();
    let output = medic(&["test", &path(&empty), "--deny-empty"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no test in"));
    let output = medic(&["test", &path(&empty)]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn files_that_do_not_check_exit_1_and_a_missing_path_exits_2() {
    let dir = folder(&TESTS.replace("delivered: true", "delivred: true"));
    let output = medic(&["test", &path(&dir)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ops::type::unknown_field"));
    let output = medic(&["test", "/nonexistent/medic-test-path"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn coverage_below_the_minimum_fails() {
    let dir = folder(
        &TESTS
            .replace("service: \"web\"", "service: \"api\"")
            .replace("expect no match", ""),
    );
    let output = medic(&["test", &path(&dir), "--coverage-min", "90"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("below --coverage-min 90"));
}
