//! What the loopback load generators of the benchmarks share: `medic serve`'s router and
//! engine over a durable journal in a temporary folder, and a minimal HTTP/1.1 client
//! reading prepared requests' answers from keep-alive connections.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark")]

use medic_runtime::adapters::{StandardToolbox, ToolboxConfig};
use medic_runtime::engine::{Engine, EngineConfig};
use medic_runtime::executor::Clock;
use medic_runtime::journal::{Journal, JournalHandle};
use medic_runtime::server::{Auth, Identities, ServerLimits, ServerState};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// The bearer token the benchmarks' clients send.
pub const TOKEN: &str = "bench-token";

/// A served engine; its journal's folder is deleted when it is dropped.
pub struct Served {
    pub address: std::net::SocketAddr,
    pub engine: Engine,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _directory: tempfile::TempDir,
}

impl Served {
    /// Compiles `source`, starts the engine with `config` on a journal in a new folder
    /// named after `prefix`, and serves the router on a free loopback port.
    pub async fn start(prefix: &str, source: &str, config: EngineConfig) -> Served {
        let directory = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let analysis =
            medic_compiler::check(vec![medic_compiler::Source::new("bench.ops", source)]);
        let plan = medic_compiler::plan::lower(&analysis).unwrap();
        let journal =
            JournalHandle::spawn(Journal::open(&directory.path().join("medic.db")).unwrap())
                .unwrap();
        let toolbox = Arc::new(StandardToolbox::new(ToolboxConfig::default()).unwrap());
        let engine = Engine::start(plan, journal, toolbox, Clock::system(), config)
            .await
            .unwrap();
        let state = Arc::new(ServerState {
            engine: engine.clone(),
            auth: Auth {
                identities: Identities::token(TOKEN),
                ..Auth::open()
            },
            limits: ServerLimits::default(),
            reload: Arc::new(|| Err("no reload in the benchmark".into())),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(medic_runtime::server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Served {
            address,
            engine,
            stop,
            server,
            _directory: directory,
        }
    }

    /// Stops serving and waits for the server to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// Reads one HTTP/1.1 response from a keep-alive connection; returns its status.
pub async fn read_response(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> u16 {
    let mut status = 0;
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(code) = line.strip_prefix("HTTP/1.1 ") {
            status = code[..3].parse().unwrap();
        } else if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    status
}
