//! The demo's Medic: the example runbooks, a medic.toml that points every adapter at the
//! sandbox, and a real `medic serve` (the same [`crate::engine::serve_on`]) on loopback, read
//! back through its HTTP API as a user's `medic runs` would.

use crate::engine::{self, ServeFlags};
use anyhow::{Context, anyhow, bail};
use medic_runtime::executor::{Clock, RunReport};
use serde::Deserialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The example runbooks, as the repository has them (examples/), built into the binary so
/// the demo runs from any directory.
pub const PLANS: &[(&str, &str)] = &[
    (
        "order_cpu.ops",
        include_str!("../../../examples/order_cpu.ops"),
    ),
    (
        "payment_latency.ops",
        include_str!("../../../examples/payment_latency.ops"),
    ),
    (
        "disk_full.ops",
        include_str!("../../../examples/disk_full.ops"),
    ),
    (
        "inventory_db.ops",
        include_str!("../../../examples/inventory_db.ops"),
    ),
];

/// Where the sandbox's systems listen, for the demo's medic.toml.
pub struct Endpoints {
    pub prometheus: String,
    pub jaeger: String,
    pub elasticsearch: String,
    pub kubeconfig: String,
    /// The services' HTTP endpoints (`/health`, `/admin/cleanup`), by host name.
    pub services: SocketAddr,
    pub service_names: Vec<String>,
    /// What alert data may name, each with its one port: the services at port 80 (their
    /// URLs name none), the logging node at the port its `instance` label carries.
    pub allow_hosts: Vec<String>,
    pub smtp: SocketAddr,
    pub slack: String,
    pub topology: Vec<(String, Vec<String>)>,
}

/// Writes the plans, the kubeconfig, the secrets and medic.toml into `dir`; the path of
/// medic.toml.
pub fn write_setup(dir: &Path, endpoints: &Endpoints, token: &str) -> anyhow::Result<PathBuf> {
    let plans = dir.join("plans");
    std::fs::create_dir_all(&plans)
        .with_context(|| format!("cannot create {}", plans.display()))?;
    for (name, text) in PLANS {
        write(&plans.join(name), text)?;
    }
    write(&dir.join("kubeconfig"), &endpoints.kubeconfig)?;
    write(&dir.join("token"), token)?;
    write(&dir.join("slack-webhook"), &endpoints.slack)?;
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let mut toml = String::new();
    let _ = writeln!(
        toml,
        "# Written by `medic demo`: every adapter points at the sandbox world on loopback.\n\
         plans = [\"plans\"]\n\n\
         [auth]\ntoken_file = \"token\"\n\n\
         [limits]\n# Every incident of the demo acts; the default guardrail stays on.\nactions_per_minute = 30\n\n\
         [http]\n# The hosts the example alerts name: the sandbox's services, each with its port,\n\
         # so alert data cannot point a request at another port of this machine.\n\
         allow_hosts = [{}]\n\n\
         # Their names resolve to the world's services listener.\n[http.hosts]",
        endpoints
            .allow_hosts
            .iter()
            .map(|name| quoted(name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for name in &endpoints.service_names {
        let _ = writeln!(
            toml,
            "{} = {}",
            quoted(name),
            quoted(&endpoints.services.to_string())
        );
    }
    let _ = writeln!(
        toml,
        "\n[notify]\nslack_webhook_file = \"slack-webhook\"\n\n\
         [smtp]\nhost = \"{}\"\nport = {}\nfrom = \"medic@shop.example\"\ntls = \"none\"\n\n\
         [prometheus]\nurl = {}\ntimeout = \"5s\"\n\n\
         [kubernetes]\nkubeconfig = \"kubeconfig\"\ncontext = \"sandbox\"\ntimeout = \"5s\"\n\n\
         [jaeger]\nurl = {}\ntimeout = \"5s\"\n\n\
         [elasticsearch]\nurl = {}\nindex = \"logs-shop\"\ntimeout = \"10s\"\n\n[topology]",
        endpoints.smtp.ip(),
        endpoints.smtp.port(),
        quoted(&endpoints.prometheus),
        quoted(&endpoints.jaeger),
        quoted(&endpoints.elasticsearch),
    );
    for (service, callees) in &endpoints.topology {
        let _ = writeln!(
            toml,
            "{} = [{}]",
            quoted(service),
            callees
                .iter()
                .map(|callee| quoted(callee))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let path = dir.join("medic.toml");
    write(&path, &toml)?;
    Ok(path)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A running `medic serve`.
pub struct Server {
    pub address: SocketAddr,
    pub token: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Starts `medic serve` with `config` on `listen`, its journal at `store`, on `clock`.
    pub async fn start(
        config: &Path,
        store: &Path,
        listen: &str,
        token: String,
        clock: Clock,
    ) -> anyhow::Result<Server> {
        let prepared = match engine::prepare(ServeFlags {
            config: Some(config.to_path_buf()),
            plans: Vec::new(),
            listen: Some(listen.to_string()),
            store: Some(store.to_path_buf()),
            dry_run: false,
        })? {
            Ok(prepared) => prepared,
            Err(_) => bail!("the example runbooks do not compile"),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(engine::serve_on(prepared, listener, clock, async move {
            let _ = stopped.await;
        }));
        let server = Server {
            address,
            token,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            stop: Some(stop),
            task: Some(task),
        };
        for _ in 0..200 {
            if server.get("/healthz").await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("medic serve did not answer /healthz on {address}")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Where the sandbox's alerting sends Alertmanager webhooks.
    pub fn alertmanager_url(&self) -> String {
        format!("{}/webhook/alertmanager", self.url())
    }

    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.url()))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// The runs of the journal, newest first.
    pub async fn runs(&self) -> anyhow::Result<Vec<RunSummary>> {
        let body = self.get("/api/runs?limit=100").await?;
        let runs = body
            .get("runs")
            .cloned()
            .ok_or_else(|| anyhow!("/api/runs answered without `runs`"))?;
        Ok(serde_json::from_value(runs)?)
    }

    /// One run with its report and reverts.
    pub async fn run(&self, id: i64) -> anyhow::Result<RunDetail> {
        let body = self.get(&format!("/api/runs/{id}")).await?;
        Ok(serde_json::from_value(body)?)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|error| anyhow!("medic serve: {error}"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A run as `/api/runs` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub rule: String,
    pub finished_at: Option<i64>,
}

/// A run as `/api/runs/{id}` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct RunDetail {
    pub id: i64,
    pub rule: String,
    pub state: String,
    pub report: Option<RunReport>,
    #[serde(default)]
    pub reverts: Vec<Revert>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Revert {
    pub task: String,
    pub state: String,
    #[serde(default)]
    pub detail: String,
}

impl RunSummary {
    /// Whether the run has ended (whatever the outcome).
    pub fn ended(&self) -> bool {
        self.finished_at.is_some()
    }
}
