//! `[http]` in medic.toml as a user writes it: a host from alert data is requested only
//! when `allow_hosts` allows it, secret headers come from the environment, and a bad
//! configuration stops `medic run` with a message naming the key.

use super::{medic_with_env, stdout, temp_dir};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Answers every request with 200 and records each request's head.
fn listener() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut buffer = [0u8; 4096];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => head.extend_from_slice(&buffer[..read]),
                }
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).into_owned());
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nhealthy",
            );
        }
    });
    (port, heads)
}

const PLAYBOOK: &str = r#"import std.{http}

/// Probes the instance the alert names.
rule probe {
  on alert "Instance_Down"
  run probe(instance: alert.instance)
}

playbook probe(instance: String) {
  task health = http.get("http://{instance}/health")
  task again = http.get("http://{instance}/health") {
    after health
  }
}
"#;

fn write_case(dir: &Path, port: u16, config: &str) {
    std::fs::write(dir.join("probe.ops"), PLAYBOOK).unwrap();
    std::fs::write(dir.join("medic.toml"), config).unwrap();
    let alert = format!(
        r#"{{"name":"Instance_Down","status":"firing","severity":"critical","service":"api","instance":"127.0.0.1:{port}","starts_at":"2026-11-27T12:30:00Z"}}"#
    );
    std::fs::write(dir.join("alert.json"), alert).unwrap();
}

fn run_case(dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let plans = dir.to_str().unwrap();
    let config = dir.join("medic.toml");
    let alert = dir.join("alert.json");
    medic_with_env(
        &[
            "run",
            "--alert",
            alert.to_str().unwrap(),
            "--plans",
            plans,
            "--config",
            config.to_str().unwrap(),
            "--dry-run",
        ],
        env,
    )
}

#[test]
fn a_host_from_alert_data_is_requested_only_when_allow_hosts_allows_it() {
    let (port, heads) = listener();
    let dir = temp_dir("http-refused");
    write_case(&dir, port, "[http]\nallow_hosts = [\"10.0.0.0/8\"]\n");
    let output = run_case(&dir, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("is not in [http] allow_hosts, so no request was made"),
        "{text}"
    );
    assert!(heads.lock().unwrap().is_empty());

    let dir = temp_dir("http-allowed");
    write_case(
        &dir,
        port,
        "[http]\nallow_hosts = [\"127.0.0.1\"]\n\n[[http.headers]]\nhosts = [\"127.0.0.1\"]\nname = \"Authorization\"\nvalue_env = \"MEDIC_TEST_PROBE_AUTH\"\n",
    );
    let output = run_case(&dir, &[("MEDIC_TEST_PROBE_AUTH", "Bearer probe-s3cret")]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(heads[0].starts_with("GET /health HTTP/1.1"), "{heads:?}");
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer probe-s3cret"),
        "{heads:?}"
    );
    assert!(!text.contains("probe-s3cret"), "{text}");
}

#[test]
fn a_bad_http_configuration_names_the_key() {
    let (port, _) = listener();
    let cases = [
        (
            "[http]\nallow_hosts = [\"exa mple.com\"]\n",
            &[][..],
            "http.allow_hosts",
        ),
        ("[http]\nallow_host = [\"x\"]\n", &[][..], "allow_host"),
        (
            "[[http.headers]]\nhosts = [\"x\"]\nname = \"Authorization\"\nvalue_env = \"MEDIC_TEST_UNSET_VARIABLE\"\n",
            &[][..],
            "MEDIC_TEST_UNSET_VARIABLE is not set",
        ),
        (
            "[limits]\ncalls_per_function = 0\n",
            &[][..],
            "limits.calls_per_function",
        ),
    ];
    for (index, (config, env, expected)) in cases.into_iter().enumerate() {
        let dir = temp_dir(&format!("http-bad-{index}"));
        write_case(&dir, port, config);
        let output = run_case(&dir, env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains(expected), "{config}: {stderr}");
    }
}
