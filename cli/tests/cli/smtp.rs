//! `[smtp]` in medic.toml as a user writes it: `medic run` sends the mail of a playbook
//! through a real SMTP server (aiosmtpd on a loopback port), and a bad `[smtp]` section
//! stops it with a message naming the key.

use super::{medic_with_env, stdout, temp_dir};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd's Debugging handler on a free loopback port, printing what it receives to a
/// file; killed when dropped.
pub struct Aiosmtpd {
    child: Child,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl Aiosmtpd {
    pub fn start() -> Aiosmtpd {
        let installed = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            installed,
            "aiosmtpd is not installed for {PYTHON}: apt-get install -y python3-aiosmtpd"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::Builder::new()
            .prefix("medic-cli-aiosmtpd-")
            .tempfile()
            .unwrap();
        let child = Command::new(PYTHON)
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-c",
                "aiosmtpd.handlers.Debugging",
            ])
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Aiosmtpd { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "aiosmtpd exited before listening"
            );
            assert!(Instant::now() < deadline, "aiosmtpd did not listen in 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn received(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(self.log.path()).unwrap();
            if text.contains("END MESSAGE") || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PLAYBOOK: &str = r#"import std.{notify}

/// Tells the database owners.
rule page {
  on alert "DB_Down"
  run page(service: alert.service)
  cooldown 30m per alert.service
}

playbook page(service: String) {
  task mail = notify.email(
    to: ["dba@example.com"],
    subject: "{service}: database down",
    body: "the database of {service} does not answer",
  )
}
"#;

fn run_case(dir: &Path, config: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::fs::write(dir.join("page.ops"), PLAYBOOK).unwrap();
    std::fs::write(dir.join("medic.toml"), config).unwrap();
    let alert = r#"{"name":"DB_Down","status":"firing","severity":"critical","service":"inventory","starts_at":"2026-11-27T12:30:00Z"}"#;
    std::fs::write(dir.join("alert.json"), alert).unwrap();
    let config = dir.join("medic.toml");
    let alert = dir.join("alert.json");
    medic_with_env(
        &[
            "run",
            "--alert",
            alert.to_str().unwrap(),
            "--plans",
            dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        env,
    )
}

#[test]
fn medic_run_sends_a_playbooks_mail_through_the_configured_server() {
    let server = Aiosmtpd::start();
    let dir = temp_dir("smtp-sent");
    let config = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"medic@example.com\"\ntls = \"none\"\ntimeout = \"5s\"\n",
        server.port
    );
    let output = run_case(&dir, &config, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let received = server.received();
    for expected in [
        "From: medic@example.com",
        "To: dba@example.com",
        "Subject: inventory: database down",
        "the database of inventory does not answer",
    ] {
        assert!(received.contains(expected), "{expected:?}:\n{received}");
    }
}

#[test]
fn a_bad_smtp_configuration_names_the_key() {
    let base = "[smtp]\nhost = \"127.0.0.1\"\nport = 25\nfrom = \"medic@example.com\"\n";
    let cases = [
        (format!("{base}tls = \"ssl\"\n"), "smtp.tls"),
        (format!("{base}timeout = \"0s\"\n"), "smtp.timeout"),
        (format!("{base}password = \"hunter2\"\n"), "password"),
        (
            format!("{base}password_env = \"MEDIC_TEST_UNSET_VARIABLE\"\n"),
            "MEDIC_TEST_UNSET_VARIABLE is not set",
        ),
        (
            "[smtp]\nhost = \"127.0.0.1\"\nport = 25\nfrom = \"not an address\"\n".to_string(),
            "[smtp] from: \"not an address\" is not a valid email address",
        ),
    ];
    for (index, (config, expected)) in cases.into_iter().enumerate() {
        let dir = temp_dir(&format!("smtp-bad-{index}"));
        let output = run_case(&dir, &config, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains(expected), "{config}: {stderr}");
    }
}
