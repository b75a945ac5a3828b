//! Stack-trace extraction over the fixture corpus in `tests/data/stack/`: each `NAME.log`
//! is read line by line and its groups must equal `NAME.json`. Adding a case is adding the
//! two files; `MEDIC_BLESS=1 cargo test -p medic-analysis --test stack` writes the `.json`
//! files from the current output, for review.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use medic_analysis::stack::{self, Language, StackGroup};
use std::path::{Path, PathBuf};

fn corpus() -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stack");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    logs.sort();
    logs
}

fn extract_file(path: &Path) -> Vec<StackGroup> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    stack::extract(&lines)
}

#[test]
fn every_fixture_gives_its_expected_groups() {
    let logs = corpus();
    assert!(logs.len() >= 15, "the corpus is {} files", logs.len());
    let bless = std::env::var_os("MEDIC_BLESS").is_some();
    let mut wrong = Vec::new();
    for log in &logs {
        let found = serde_json::to_value(extract_file(log)).unwrap();
        let expected_path = log.with_extension("json");
        if bless {
            let text = serde_json::to_string_pretty(&found).unwrap() + "\n";
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|error| panic!("{}: {error}", expected_path.display())),
        )
        .unwrap();
        if found != expected {
            wrong.push(format!(
                "{}:\n{}",
                log.display(),
                serde_json::to_string_pretty(&found).unwrap()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// Every fixture holds at least one trace and every trace in it was parsed: each names an
/// exception and, unless the fixture is one of a traceback cut before its exception, frames.
#[test]
fn every_trace_of_the_corpus_is_rejoined_and_parsed() {
    for log in corpus() {
        let groups = extract_file(&log);
        assert!(!groups.is_empty(), "{}: no trace found", log.display());
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        let language = match name.split('_').next().unwrap() {
            "java" => Language::Java,
            "python" => Language::Python,
            "go" => Language::Go,
            other => panic!("{name}: unknown language {other}"),
        };
        for group in &groups {
            assert_eq!(group.language, language, "{name}");
            assert!(!group.exception.is_empty(), "{name}: {group:?}");
            assert!(!group.frames.is_empty(), "{name}: {group:?}");
            assert!(group.frames.len() <= stack::TOP_FRAMES, "{name}");
        }
    }
}

#[test]
fn java_reports_the_root_cause_innermost_frame_first() {
    let groups = extract_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stack/java_caused_by_chain.log"),
    );
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group.exception, "java.sql.SQLTransientConnectionException");
    assert!(
        group
            .message
            .starts_with("HikariPool-1 - Connection is not available")
    );
    assert_eq!(
        group.frames[0],
        "com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)"
    );
}

#[test]
fn python_frames_are_turned_innermost_first_and_the_chain_reports_its_origin() {
    let groups = extract_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stack/python_during_handling.log"),
    );
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].exception, "redis.exceptions.ConnectionError");
    assert_eq!(
        groups[0].frames[0],
        "connect (/usr/local/lib/python3.12/site-packages/redis/connection.py:707)"
    );
    assert_eq!(groups[0].frames[2], "get (/app/worker/cache.py:28)");
}

#[test]
fn go_frames_start_below_the_runtime_panic() {
    let groups = extract_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stack/go_http_panic_serving.log"),
    );
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].exception, "runtime error");
    assert_eq!(
        groups[0].message,
        "slice bounds out of range [:12] with capacity 8"
    );
    assert_eq!(
        groups[0].frames[0],
        "github.com/example/gateway/proxy.parseToken (/src/proxy/auth.go:74)"
    );
}

/// ECS's `error.stack_trace` holds a whole trace in one value; grouped with the same trace
/// read line by line.
#[test]
fn a_trace_in_one_field_is_the_same_as_one_over_lines() {
    let field = "java.lang.IllegalStateException: pool closed\n\tat com.example.Pool.take(Pool.java:40)\n\tat com.example.Worker.run(Worker.java:12)\n";
    let mut lines: Vec<&str> = vec![field, "unrelated line"];
    lines.extend(field.lines());
    let groups = stack::extract(&lines);
    assert_eq!(
        groups,
        vec![StackGroup {
            exception: "java.lang.IllegalStateException".into(),
            message: "pool closed".into(),
            frames: vec![
                "com.example.Pool.take(Pool.java:40)".into(),
                "com.example.Worker.run(Worker.java:12)".into()
            ],
            count: 2,
            language: Language::Java,
        }]
    );
    // Windows line ends are the same lines.
    let crlf = field.replace('\n', "\r\n");
    assert_eq!(stack::extract(&[crlf.as_str()])[0].frames.len(), 2);
}

#[test]
fn groups_are_ordered_by_count_then_first_appearance() {
    let one = "Traceback (most recent call last):\n  File \"/a.py\", line 1, in f\n    g()\nValueError: one";
    let two = "Traceback (most recent call last):\n  File \"/b.py\", line 2, in g\n    h()\nKeyError: 'two'";
    let groups = stack::extract(&[one, two, two]);
    let exceptions: Vec<&str> = groups
        .iter()
        .map(|group| group.exception.as_str())
        .collect();
    assert_eq!(exceptions, ["KeyError", "ValueError"]);
    let groups = stack::extract(&[one, two]);
    let exceptions: Vec<&str> = groups
        .iter()
        .map(|group| group.exception.as_str())
        .collect();
    assert_eq!(exceptions, ["ValueError", "KeyError"]);
}

#[test]
fn ordinary_log_lines_hold_no_trace() {
    let lines = [
        "2026-03-14 INFO com.example.Main: started in 2.1s",
        "java.lang.String is a class",
        "  at the end of the day",
        "panic: not really, this line is followed by nothing",
        "Traceback (most recent call last):",
        "goroutine 1 [running]:",
        "",
    ];
    let groups = stack::extract(&lines);
    // Only the bare `Traceback` line starts a trace: cut before any frame, it is one.
    assert!(
        groups
            .iter()
            .all(|group| group.language == Language::Python),
        "{groups:?}"
    );
}

#[test]
fn hostile_input_never_panics() {
    let pieces = [
        "",
        "\n",
        "\tat ",
        "at x(",
        "Caused by:",
        "Caused by: a.B",
        "... 3 more",
        "Traceback (most recent call last):",
        "  File \"",
        "  File \"x\", line ",
        "During handling of the above exception, another exception occurred:",
        "panic: ",
        "goroutine 1 [running]:",
        "main.f(",
        "main.f()",
        "\t/x.go:",
        "created by ",
        "Exception in thread \"",
        "Suppressed: a.B",
        "ü✓",
        "\u{0}",
    ];
    let mut lines = Vec::new();
    for (index, first) in pieces.iter().enumerate() {
        for second in pieces.iter().skip(index) {
            lines.push(*first);
            lines.push(*second);
        }
    }
    let _ = stack::extract(&lines);
    for window in lines.windows(5) {
        let _ = stack::extract(window);
    }
}

/// The whole corpus read as one log, three times over: every trace is still found (none
/// swallows the next file's), and identical traces from different files add up.
#[test]
fn the_corpus_read_as_one_log_gives_every_group_summed() {
    type Key = (String, String, String, Vec<String>);
    let key = |group: &serde_json::Value| -> Key {
        (
            group["language"].as_str().unwrap().to_string(),
            group["exception"].as_str().unwrap().to_string(),
            group["message"].as_str().unwrap().to_string(),
            group["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|frame| frame.as_str().unwrap().to_string())
                .collect(),
        )
    };
    let mut expected: std::collections::BTreeMap<Key, u64> = std::collections::BTreeMap::new();
    let mut text = String::new();
    for log in corpus() {
        text.push_str(&std::fs::read_to_string(&log).unwrap());
        let groups: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(log.with_extension("json")).unwrap())
                .unwrap();
        for group in groups.as_array().unwrap() {
            *expected.entry(key(group)).or_default() += 3 * group["count"].as_u64().unwrap();
        }
    }
    let all = text.repeat(3);
    let lines: Vec<&str> = all.lines().collect();
    let found: std::collections::BTreeMap<Key, u64> = stack::extract(&lines)
        .iter()
        .map(|group| {
            let json = serde_json::to_value(group).unwrap();
            (key(&json), group.count)
        })
        .collect();
    assert_eq!(found, expected);
}
