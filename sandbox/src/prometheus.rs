//! [`RealPrometheus`]: the Debian `prometheus` binary on a free loopback port, over data
//! backfilled from an OpenMetrics text by `promtool tsdb create-blocks-from openmetrics`,
//! in its own temporary folder. Not a simulation: for tests and benchmarks that need the
//! real query engine (`apt-get install -y prometheus` installs both binaries).
//!
//! What is guaranteed:
//! - [`RealPrometheus::start`] returns only once `/-/ready` answers 200, or an error saying
//!   why not (a missing binary is [`PrometheusError::Missing`], whose message is the
//!   install command; a refused backfill carries promtool's output; an early exit carries
//!   the server's log);
//! - dropping it kills the process and waits for it, then removes the folder;
//! - nothing listens beyond 127.0.0.1, and no scrape target is configured, so the data is
//!   exactly what was backfilled.
//!
//! Starting blocks the calling thread (the backfill and the start-up take a second or
//! two), so it can be used from synchronous code; in a runtime that must keep serving
//! meanwhile, call it from `spawn_blocking`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What installs `prometheus` and `promtool` on Debian.
pub const INSTALL: &str = "apt-get install -y prometheus";

/// How long the server may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Starts tried when the free port found was taken by someone else in between.
const START_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("`{binary}` is not installed: {INSTALL}")]
    Missing { binary: &'static str },
    #[error("cannot {doing}: {source}")]
    Io {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    #[error("promtool refused the OpenMetrics text ({status}): {output}")]
    Backfill { status: ExitStatus, output: String },
    #[error("prometheus exited ({status}) before it was ready: {log}")]
    Exited { status: ExitStatus, log: String },
    #[error("prometheus was not ready within {within:?}: {log}")]
    NotReady { within: Duration, log: String },
}

fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> PrometheusError {
    let doing = doing.into();
    move |source| PrometheusError::Io { doing, source }
}

/// A running Prometheus over backfilled data; killed and waited for when dropped.
pub struct RealPrometheus {
    child: Child,
    address: SocketAddr,
    folder: tempfile::TempDir,
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        // Kill fails only when the process has already exited; wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealPrometheus {
    /// Backfills `openmetrics` (samples with Unix timestamps, ending with `# EOF`) into a
    /// new TSDB and serves it on a free loopback port, once ready.
    ///
    /// Instant queries look back five minutes from the time asked, so ask for a time
    /// inside the backfilled range.
    pub fn start(openmetrics: &str) -> Result<RealPrometheus, PrometheusError> {
        let mut folder = tempfile::Builder::new()
            .prefix("medic-sandbox-prometheus-")
            .tempdir()
            .map_err(io("make a temporary folder"))?;
        let input = folder.path().join("metrics.om");
        let data = folder.path().join("data");
        std::fs::write(&input, openmetrics).map_err(io("write the OpenMetrics file"))?;
        backfill(&input, &data)?;
        let config = folder.path().join("prometheus.yml");
        std::fs::write(&config, "global: {scrape_interval: 15s}\n")
            .map_err(io("write prometheus.yml"))?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let address = free_address()?;
            let log_path = folder.path().join("prometheus.log");
            let log = std::fs::File::create(&log_path).map_err(io("create prometheus.log"))?;
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address={address}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|source| match source.kind() {
                    std::io::ErrorKind::NotFound => PrometheusError::Missing {
                        binary: "prometheus",
                    },
                    _ => io("start prometheus")(source),
                })?;
            let mut server = RealPrometheus {
                child,
                address,
                folder,
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(PrometheusError::Exited { status, log })
                    if log.contains("address already in use") =>
                {
                    last_error = Some(PrometheusError::Exited { status, log });
                    // Dropping the server would remove the folder with the data: take it
                    // back after reaping the exited process.
                    let _ = server.child.wait();
                    folder = server.take_folder()?;
                }
                Err(other) => return Err(other),
            }
        }
        Err(last_error.unwrap_or(PrometheusError::NotReady {
            within: READY_WITHIN,
            log: String::new(),
        }))
    }

    /// `http://127.0.0.1:PORT`, the base URL of the HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The folder holding the OpenMetrics input, the TSDB (`data`), the configuration and
    /// the server's log (`prometheus.log`).
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// What the server wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.folder.path().join("prometheus.log")
    }

    /// Moves the folder out of a server whose process has exited, leaving an empty
    /// placeholder to be removed by its drop.
    fn take_folder(mut self) -> Result<tempfile::TempDir, PrometheusError> {
        let placeholder = tempfile::Builder::new()
            .prefix("medic-sandbox-prometheus-")
            .tempdir()
            .map_err(io("make a temporary folder"))?;
        Ok(std::mem::replace(&mut self.folder, placeholder))
    }

    fn wait_ready(&mut self) -> Result<(), PrometheusError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().map_err(io("check on prometheus"))? {
                return Err(PrometheusError::Exited {
                    status,
                    log: self.log(),
                });
            }
            if is_ready(self.address) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PrometheusError::NotReady {
                    within: READY_WITHIN,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs promtool's backfill of `input` into `data`.
fn backfill(input: &Path, data: &Path) -> Result<(), PrometheusError> {
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(input)
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => PrometheusError::Missing { binary: "promtool" },
            _ => io("run promtool")(source),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(PrometheusError::Backfill {
        status: output.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// A loopback address with a port that was free a moment ago.
fn free_address() -> Result<SocketAddr, PrometheusError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("find a free loopback port"))?;
    listener
        .local_addr()
        .map_err(io("find a free loopback port"))
}

/// Whether `GET /-/ready` answers 200 (Prometheus answers 503 while it loads the TSDB).
fn is_ready(address: SocketAddr) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.set_write_timeout(Some(Duration::from_secs(1)))?;
        write!(
            stream,
            "GET /-/ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
    };
    probe().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use super::*;

    /// A real Prometheus answers a query about the backfilled data, and is gone after drop.
    #[test]
    fn the_backfilled_data_is_queried_and_the_process_ends_on_drop() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let metrics = format!(
            "# HELP up_ratio a gauge\n# TYPE up_ratio gauge\nup_ratio{{job=\"a\"}} 0.5 {}\nup_ratio{{job=\"a\"}} 0.75 {}\n# EOF\n",
            now - 120,
            now - 60
        );
        let prometheus = match RealPrometheus::start(&metrics) {
            Ok(prometheus) => prometheus,
            Err(error) => panic!("{error}"),
        };
        let address = prometheus.address();
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET /api/v1/query?query=up_ratio&time={} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
            now - 30
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""value":["#), "{answer}");
        assert!(answer.contains(r#""0.75"]"#), "{answer}");
        let folder = prometheus.folder().to_path_buf();
        drop(prometheus);
        assert!(!folder.exists());
        assert!(TcpStream::connect(address).is_err(), "still listening");
    }

    #[test]
    fn a_refused_backfill_says_what_promtool_said() {
        let Err(error) = RealPrometheus::start("not openmetrics at all\n") else {
            panic!("an unparsable input was accepted");
        };
        match error {
            PrometheusError::Backfill { output, .. } => assert!(!output.is_empty()),
            other => panic!("{other}"),
        }
    }
}
