//! End to end with a real editor: Neovim (headless) starts `medic lsp`, opens an example with
//! a typo, and reads the diagnostic, a hover and a definition through its own LSP client.

use super::{KillOnDrop, temp_dir};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn neovim_shows_diagnostics_hover_and_definition() {
    let nvim = std::env::var("NVIM").unwrap_or_else(|_| "nvim".into());
    let version = Command::new(&nvim).arg("--version").output();
    assert!(
        version.is_ok_and(|output| output.status.success()),
        "Neovim is needed for this test: apt-get install -y neovim"
    );
    let directory = temp_dir("nvim");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/payment_latency.ops"
    ))
    .unwrap();
    let broken = example.replace(
        "when (status.ok ?? false) and",
        "when (status.okk ?? false) and",
    );
    let file = directory.join("payment.ops");
    std::fs::write(&file, &broken).unwrap();
    let line_of = |needle: &str| {
        broken
            .lines()
            .position(|line| line.contains(needle))
            .unwrap()
    };
    let column_of = |needle: &str, inner: &str| {
        let line = broken.lines().nth(line_of(needle)).unwrap();
        line.find(needle).unwrap() + needle.find(inner).unwrap()
    };
    let out = directory.join("out.json");
    let mut editor = KillOnDrop(
        Command::new(&nvim)
            .args([
                "--headless",
                "--clean",
                "-u",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../lsp/tests/nvim/probe.lua"),
            ])
            .current_dir(&directory)
            .env("MEDIC_BIN", env!("CARGO_BIN_EXE_medic"))
            .env("PROBE_OUT", &out)
            .env("PROBE_ROOT", &directory)
            .env("PROBE_FILE", &file)
            .env("HOVER_LINE", line_of("http.get(").to_string())
            .env("HOVER_COL", (column_of("http.get(", "get") + 1).to_string())
            .env("DEF_LINE", line_of("run payment_troubleshoot").to_string())
            .env(
                "DEF_COL",
                (column_of("run payment_troubleshoot", "payment") + 2).to_string(),
            )
            .spawn()
            .unwrap(),
    );
    // The probe gives up on its own after at most 40 s; past two minutes Neovim is stuck, and the
    // guard kills it (its `medic lsp` then reads end of input and exits).
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = editor.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "Neovim did not finish within 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(result.get("error").is_none(), "{result}");
    let diagnostics = result["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{result}");
    assert_eq!(diagnostics[0]["code"], "ops::type::unknown_field");
    assert_eq!(
        diagnostics[0]["line"].as_u64().unwrap() as usize,
        line_of("status.okk")
    );
    assert!(
        diagnostics[0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `ok`?")
    );
    let hover = result["hover"]["contents"]["value"].as_str().unwrap();
    assert!(hover.contains("query fn http.get(url: Url"), "{hover}");
    assert!(hover.contains("Sends a GET request"), "{hover}");
    assert_eq!(
        result["definition"]["range"]["start"]["line"]
            .as_u64()
            .unwrap() as usize,
        line_of("playbook payment_troubleshoot")
    );
    assert!(
        result["definition"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/payment.ops")
    );
}
