//! `medic logs mine` and `medic logs diff` on generated files and on standard input.

use super::{medic, stdout, temp_dir};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn medic_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    output
}

/// Lines of three events, interleaved, with values that vary.
fn generated_log(lines: usize) -> String {
    let mut text = String::new();
    for index in 0..lines {
        let line = match index % 3 {
            0 => format!("worker {index} started in {}ms", index * 3 % 997),
            1 => format!(
                "GET /api/orders/{index} from 10.1.{}.{} 200",
                index % 256,
                index % 7
            ),
            _ => format!("cache miss for key session_{index}"),
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn mine_json_prints_one_object_per_line_in_input_order() {
    let dir = temp_dir("logs-json");
    let file = dir.join("app.log");
    std::fs::write(&file, generated_log(300)).unwrap();
    let output = medic(&["logs", "mine", "--format", "json", file.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects = json_lines(&output);
    assert_eq!(objects.len(), 300);
    let expected = [
        "worker <*> started in <*>",
        // The IP and the status are two values in a row: one `<*>`.
        "GET <*> from <*>",
        "cache miss for key session_<*>",
    ];
    for (index, object) in objects.iter().enumerate() {
        assert_eq!(object["line"], index as u64 + 1);
        assert_eq!(object["template_id"], (index % 3) as u64);
        // The template as it is at the end of the input, also for the first lines.
        assert_eq!(
            object["template"],
            expected[index % 3],
            "line {}",
            index + 1
        );
    }
}

#[test]
fn mine_reads_standard_input_as_it_reads_a_file() {
    let dir = temp_dir("logs-stdin");
    let file = dir.join("app.log");
    let text = generated_log(100);
    std::fs::write(&file, &text).unwrap();
    let from_file = medic(&["logs", "mine", "--format", "json", file.to_str().unwrap()]);
    let from_stdin = medic_with_stdin(&["logs", "mine", "--format", "json", "-"], text.as_bytes());
    assert_eq!(from_stdin.status.code(), Some(0));
    assert_eq!(stdout(&from_file), stdout(&from_stdin));
    let table = medic_with_stdin(&["logs", "mine", "-"], text.as_bytes());
    assert_eq!(table.status.code(), Some(0));
    let table = stdout(&table);
    assert!(table.starts_with("100 lines, 3 templates\n"), "{table}");
    let rows: Vec<&str> = table.lines().skip(3).collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0].ends_with("  worker <*> started in <*>"),
        "{}",
        rows[0]
    );
    assert!(rows[0].trim_start().starts_with("34 "), "{}", rows[0]);
}

#[test]
fn mine_a_csv_column() {
    let dir = temp_dir("logs-csv");
    let file = dir.join("structured.csv");
    std::fs::write(
        &file,
        "LineId,Content,EventId\n\
         1,\"Changing view acls to: yarn,curi\",E5\n\
         2,Got assigned task 1,E11\n\
         3,\"say \"\"hi\"\" to\nthe next line\",E1\n\
         4,Got assigned task 22,E11\n",
    )
    .unwrap();
    let output = medic(&[
        "logs",
        "mine",
        "--format",
        "json",
        "--column",
        "Content",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let templates: Vec<String> = json_lines(&output)
        .iter()
        .map(|object| object["template"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        templates,
        [
            "Changing view acls to: yarn,curi",
            "Got assigned task <*>",
            "say \"hi\" to the next line",
            "Got assigned task <*>",
        ]
    );
    let missing = medic(&[
        "logs",
        "mine",
        "--column",
        "Message",
        file.to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no column Message"));
}

#[test]
fn diff_shows_new_and_spiking_templates_and_stack_traces() {
    let dir = temp_dir("logs-diff");
    let old = dir.join("old.log");
    let new = dir.join("new.log");
    let mut before = String::new();
    let mut after = String::new();
    for index in 0..40 {
        before.push_str(&format!("heartbeat {index} ok\n"));
        after.push_str(&format!("heartbeat {index} ok\n"));
    }
    for index in 0..3 {
        before.push_str(&format!("slow query took {}ms\n", 100 + index));
    }
    for index in 0..30 {
        after.push_str(&format!("slow query took {}ms\n", 100 + index));
    }
    after.push_str("payment 42 declined by gateway\n");
    after
        .push_str("Exception in thread \"main\" java.lang.IllegalStateException: pool exhausted\n");
    after.push_str("\tat com.example.Pool.take(Pool.java:88)\n");
    after.push_str("\tat com.example.Main.main(Main.java:12)\n");
    std::fs::write(&old, before).unwrap();
    std::fs::write(&new, after).unwrap();
    let args = [
        "logs",
        "diff",
        "--baseline",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ];
    let output = medic(&args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    let new_line = text
        .lines()
        .find(|line| line.contains("payment <*> declined by gateway"))
        .unwrap();
    assert!(new_line.starts_with("new "), "{text}");
    let spiking = text
        .lines()
        .find(|line| line.contains("slow query took <*>"))
        .unwrap();
    assert!(spiking.starts_with("spiking "), "{text}");
    assert!(!text.contains("heartbeat"), "{text}");
    assert!(
        text.contains("java.lang.IllegalStateException: pool exhausted"),
        "{text}"
    );
    assert!(
        text.contains("at com.example.Pool.take(Pool.java:88)"),
        "{text}"
    );

    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&medic(&json_args).stdout).unwrap();
    let changes = json["changes"].as_array().unwrap();
    // New templates first, then spiking ones.
    assert!(changes[0]["new"].as_bool().unwrap());
    let spike = changes
        .iter()
        .find(|change| change["spiking"] == true)
        .unwrap();
    assert_eq!(
        (spike["count"].as_u64(), spike["baseline"].as_u64()),
        (Some(30), Some(3))
    );
    assert_eq!(
        json["stack_traces"][0]["exception"],
        "java.lang.IllegalStateException"
    );
    assert_eq!(json["stack_traces"][0]["count"], 1);
}

#[test]
fn bad_input_never_crashes() {
    let dir = temp_dir("logs-bad");
    let empty = dir.join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let output = medic(&["logs", "mine", "--format", "json", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "");
    let output = medic(&["logs", "mine", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).starts_with("0 lines, 0 templates"));

    // Not UTF-8, a NUL, a 3 MB line without spaces, a line of 200,000 tokens, no final newline.
    let mut bytes = b"valid line 1\n\xff\xfe broken \xc3\x28 bytes 2\nnul \0 here\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
    bytes.push(b'\n');
    for _ in 0..200_000 {
        bytes.extend_from_slice(b"t ");
    }
    bytes.extend_from_slice(b"\nvalid line 3");
    let hostile = dir.join("hostile.log");
    std::fs::write(&hostile, &bytes).unwrap();
    let output = medic(&[
        "logs",
        "mine",
        "--format",
        "json",
        hostile.to_str().unwrap(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects = json_lines(&output);
    assert_eq!(objects.len(), 6);
    assert_eq!(objects[0]["template"], objects[5]["template"]);
    assert!(
        objects[1]["template"]
            .as_str()
            .unwrap()
            .contains('\u{fffd}')
    );
    let diff = medic(&[
        "logs",
        "diff",
        "--baseline",
        empty.to_str().unwrap(),
        hostile.to_str().unwrap(),
    ]);
    assert_eq!(diff.status.code(), Some(0));
    let stdin = medic_with_stdin(
        &["logs", "diff", "--baseline", hostile.to_str().unwrap(), "-"],
        &bytes,
    );
    assert_eq!(stdin.status.code(), Some(0));
    assert!(
        stdout(&stdin).contains("no new or spiking templates"),
        "{}",
        stdout(&stdin)
    );

    let missing = medic(&["logs", "mine", dir.join("missing.log").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
