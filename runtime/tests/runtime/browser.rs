//! The page in a real browser: Debian's Chromium, headless, driven through ChromeDriver
//! (WebDriver, with fantoccini). An operator logs in, finds the run waiting for approval on
//! the runs page, opens it, sees the hostile label as text, approves it behind the
//! confirmation, and watches another run change state without reloading. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/browser/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install -y chromium
//! chromium-driver`; `scripts/test` installs them); fails naming that command without them.

use crate::served::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// ChromeDriver on a free loopback port, killed when dropped, with a fresh profile folder.
struct Driver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(binary).exists(),
            "{binary} is missing: the browser test needs Debian's Chromium and ChromeDriver: apt-get install -y chromium chromium-driver"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        profile: tempfile::tempdir().unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), "chrome".into());
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            // As the machine's notes say: headless, no sandbox as root, and none of the
            // background connections a closed network refuses.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", driver.profile.path().display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url),
    )
    .await
    .expect("chromium did not start within 60 s")
    .unwrap()
}

/// Saves a screenshot of the page as `name.png` in the test's output folder.
async fn screenshot(client: &Client, name: &str) -> std::path::PathBuf {
    let folder = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&folder).unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = folder.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

/// Waits until the page's `selector` has `text` (the live script changes it in place). The
/// deadline is generous: with every other test of the workspace running on two cores, the
/// browser's page may take over 15 s to update.
async fn wait_for_text(client: &Client, selector: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Ok(element) = client.find(Locator::Css(selector)).await
            && element.text().await.unwrap_or_default().contains(text)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{selector} never showed {text:?}: {}",
            client.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const HOSTILE: &str = r#"<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>"#;

async fn post_gated(served: &Served, fingerprint: &str) {
    let alert = format!(
        r#"{{"name":"Gated","service":"api","starts_at":"2026-11-27T12:00:00Z","fingerprint":"{fingerprint}","labels":{{"team":"{HOSTILE}"}}}}"#
    );
    let (status, body) = served
        .post("/webhook/generic", Some("sam-token"), &alert)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_understands_and_approves_a_run_in_chromium() {
    let driver = start_driver();
    let served = serve(Setup::new(users())).await;
    post_gated(&served, "fp-browser-1").await;
    post_gated(&served, "fp-browser-2").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while served.engine.awaiting_approvals().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the runs did not wait for approval"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = *served.engine.awaiting_approvals().keys().next().unwrap();
    let second = *served.engine.awaiting_approvals().keys().last().unwrap();
    let client = browser(&driver).await;

    // The page needs a login.
    client
        .goto(&format!("{}/ui/runs", served.url))
        .await
        .unwrap();
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/ui/login")
    );
    let token = client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap();
    token.send_keys("alice-token").await.unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "main", "Waiting for a human").await;
    screenshot(&client, "runs").await;

    // The run waiting for approval is pinned; open it.
    client
        .find(Locator::Css(&format!("a[href='/ui/runs/{first}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "h1", &format!("Run {first}")).await;
    let graph = client.find(Locator::Css("svg.dag")).await.unwrap();
    assert!(graph.text().await.unwrap().contains("tell"));
    // The hostile label is text: shown as written, run as nothing.
    let labels = client.find(Locator::Css("dl.alert")).await.unwrap();
    assert!(
        labels
            .text()
            .await
            .unwrap()
            .contains("<script>window.pwned=2</script>"),
        "{}",
        labels.text().await.unwrap()
    );
    let pwned = client
        .execute("return window.pwned === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, serde_json::Value::Bool(true), "the label ran");
    screenshot(&client, "run-waiting").await;

    // Approve, behind a confirmation that says what will happen.
    client
        .find(Locator::Css("button[value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "main", "Approve task `tell`").await;
    screenshot(&client, "confirm").await;
    client
        .find(Locator::Css("form[action='/ui/act'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "h1", "succeeded").await;
    let events = served.events(first).await;
    assert!(
        events.iter().any(|(task, state, detail)| task == "tell"
            && state == "approved"
            && detail == "alice"),
        "{events:?}"
    );

    // The other run changes state while its page is open: no reload (the marker set on the
    // page survives), the live script replaces what changed.
    client
        .goto(&format!("{}/ui/runs/{second}", served.url))
        .await
        .unwrap();
    wait_for_text(&client, "h1", "running").await;
    // The live stream is connected once the script has seen its first version.
    tokio::time::sleep(Duration::from_millis(700)).await;
    client
        .execute("window.medicMarker = 42; return true;", vec![])
        .await
        .unwrap();
    let (status, body) = served
        .post(
            &format!("/api/runs/{second}/approve"),
            Some("alice-token"),
            "{}",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_text(&client, "h1", "succeeded").await;
    let marker = client
        .execute("return window.medicMarker;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, serde_json::json!(42), "the page was reloaded");
    let shot = screenshot(&client, "run-succeeded-live").await;
    assert!(std::fs::metadata(shot).unwrap().len() > 1_000);

    // What the runs did, per playbook.
    client
        .goto(&format!("{}/ui/stats?since=1d", served.url))
        .await
        .unwrap();
    wait_for_text(&client, "table.stats", "gated").await;
    screenshot(&client, "stats").await;
    client.close().await.unwrap();
}
