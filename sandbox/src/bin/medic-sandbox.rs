//! `medic-sandbox`: the sandbox's servers as a process, for trying the examples by hand
//! (`scripts/try-examples`): the Kubernetes API server with some Deployments and HPAs, and
//! the notification receiver (`medic_sandbox::receiver`), which answers every POST with 200
//! and prints it (a Slack webhook, a service's admin endpoint) and, with `--smtp`, takes
//! mail and prints it. Runs until interrupted. Never part of a production path.

use clap::Parser;
use medic_sandbox::elasticsearch::ElasticsearchServer;
use medic_sandbox::jaeger::JaegerServer;
use medic_sandbox::kubernetes::ApiServer;
use medic_sandbox::receiver::{Message, Receiver, ReceiverConfig};
use medic_sandbox::world::{CALLS, Incident, World};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Parser)]
#[command(
    name = "medic-sandbox",
    about = "The sandbox's test servers, for trying Medic's examples"
)]
struct Flags {
    /// Where to write the kubeconfig that points at the API server.
    #[arg(long, value_name = "PATH")]
    kubeconfig: PathBuf,
    /// A Deployment to create: NAMESPACE/NAME=REPLICAS.
    #[arg(long = "deployment", value_name = "NS/NAME=REPLICAS")]
    deployments: Vec<String>,
    /// An autoscaling/v2 HPA to create: NAMESPACE/NAME=DEPLOYMENT:MIN:MAX.
    #[arg(long = "hpa", value_name = "NS/NAME=DEPLOYMENT:MIN:MAX")]
    hpas: Vec<String>,
    /// Also answer POSTs on this address (such as 127.0.0.1:18081) and print them.
    #[arg(long, value_name = "ADDRESS")]
    receiver: Option<String>,
    /// Also take mail over SMTP (plain text) on this address (such as 127.0.0.1:2525) and
    /// print it.
    #[arg(long, value_name = "ADDRESS")]
    smtp: Option<String>,
    /// A simulated shop in the middle of an incident (`payment`: order-service is slow;
    /// `inventory`: inventory-db is out of connections): Jaeger and Elasticsearch serve its
    /// traces and logs, and its Prometheus series are written to --openmetrics.
    #[arg(long, value_name = "INCIDENT")]
    world: Option<String>,
    /// Where to write the world's series, for `promtool tsdb create-blocks-from openmetrics`.
    #[arg(long, value_name = "PATH", requires = "world")]
    openmetrics: Option<PathBuf>,
    /// The Jaeger query service's port (with --world).
    #[arg(long, value_name = "PORT", default_value_t = 16686)]
    jaeger_port: u16,
    /// The Elasticsearch port (with --world).
    #[arg(long, value_name = "PORT", default_value_t = 19200)]
    elasticsearch_port: u16,
}

/// `NS/NAME=REST` into its parts.
fn object(text: &str) -> Result<(&str, &str, &str), String> {
    let (path, rest) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: no `=`"))?;
    let (namespace, name) = path
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: write NAMESPACE/NAME"))?;
    Ok((namespace, name, rest))
}

fn number(text: &str, what: &str) -> Result<i32, String> {
    text.parse()
        .map_err(|error| format!("{what} {text:?} is not a number: {error}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Flags::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("medic-sandbox: {error}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let server = ApiServer::start()
        .await
        .map_err(|error| format!("cannot start the API server: {error}"))?;
    for deployment in &flags.deployments {
        let (namespace, name, replicas) = object(deployment)?;
        server.add_deployment(namespace, name, Some(number(replicas, "replicas")?));
    }
    for hpa in &flags.hpas {
        let (namespace, name, rest) = object(hpa)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [target, min, max] = parts.as_slice() else {
            return Err(format!("{hpa:?}: write NS/NAME=DEPLOYMENT:MIN:MAX"));
        };
        server.add_hpa(
            namespace,
            name,
            target,
            Some(number(min, "min")?),
            number(max, "max")?,
        );
    }
    std::fs::write(&flags.kubeconfig, server.kubeconfig())
        .map_err(|error| format!("cannot write {}: {error}", flags.kubeconfig.display()))?;
    println!(
        "kubernetes API server on {} (kubeconfig: {})",
        server.url().replace("http://", "https://"),
        flags.kubeconfig.display()
    );
    let receiver = start_receiver(&flags).await?;
    let world = match &flags.world {
        None => None,
        Some(name) => Some(start_world(&flags, name).await?),
    };
    let _ = std::io::stdout().flush();
    wait_for_stop().await;
    if let Some((jaeger, elasticsearch)) = world {
        jaeger.stop().await;
        drop(elasticsearch);
    }
    if let Some((receiver, printer)) = receiver {
        receiver.stop().await;
        // The receiver gone, the printer sees the channel close once it has printed all.
        if tokio::time::timeout(Duration::from_secs(1), printer)
            .await
            .is_err()
        {
            eprintln!("medic-sandbox: the receiver's last messages were not all printed");
        }
    }
    server.stop().await;
    Ok(())
}

/// Starts Jaeger and Elasticsearch with the world's traces and logs, and writes its series.
async fn start_world(
    flags: &Flags,
    name: &str,
) -> Result<(JaegerServer, ElasticsearchServer), String> {
    let incident = Incident::parse(name)
        .ok_or_else(|| format!("--world {name:?}: use payment or inventory"))?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(0));
    let world = World::new(incident, now_s);
    if let Some(path) = &flags.openmetrics {
        std::fs::write(path, world.openmetrics())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    let jaeger = JaegerServer::start_on(flags.jaeger_port)
        .await
        .map_err(|error| format!("cannot start Jaeger on port {}: {error}", flags.jaeger_port))?;
    // A trace every 2 s over the last two hours: the fault's service slow only since the
    // fault began.
    let every = Duration::from_secs(2);
    let fault_start_us = (now_s - world.fault_minutes * 60) * 1_000_000;
    let history_start_us = (now_s - 2 * 3600) * 1_000_000;
    let before = usize::try_from((fault_start_us - history_start_us) / 2_000_000).unwrap_or(0);
    let during = usize::try_from(world.fault_minutes * 30).unwrap_or(0);
    let mut healthy = medic_sandbox::jaeger::TraceGenerator::new(CALLS, world.seed);
    jaeger.add_traces(healthy.traces("payment-gateway", before, history_start_us, every));
    jaeger.add_traces(
        world
            .traces()
            .traces("payment-gateway", during, fault_start_us, every),
    );
    let elasticsearch = ElasticsearchServer::start_on(flags.elasticsearch_port)
        .await
        .map_err(|error| {
            format!(
                "cannot start Elasticsearch on port {}: {error}",
                flags.elasticsearch_port
            )
        })?;
    elasticsearch.index("logs-shop", world.logs());
    println!(
        "world {name}: jaeger on {}, elasticsearch on {}",
        jaeger.url(),
        elasticsearch.url()
    );
    Ok((jaeger, elasticsearch))
}

/// The receiver on the addresses given (the side not asked for on a free loopback port),
/// and the task that prints what it receives.
async fn start_receiver(
    flags: &Flags,
) -> Result<Option<(Receiver, tokio::task::JoinHandle<()>)>, String> {
    if flags.receiver.is_none() && flags.smtp.is_none() {
        return Ok(None);
    }
    let mut config = ReceiverConfig::default();
    if let Some(address) = &flags.receiver {
        config.http_address = resolve(address).await?;
    }
    if let Some(address) = &flags.smtp {
        config.smtp_address = resolve(address).await?;
    }
    let receiver = Receiver::start_with(config)
        .await
        .map_err(|error| format!("cannot start the receiver: {error}"))?;
    if flags.receiver.is_some() {
        println!("receiver on {}", receiver.http_url());
    }
    if flags.smtp.is_some() {
        println!("smtp receiver on {}", receiver.smtp_address());
    }
    let messages = receiver.subscribe();
    let printer = tokio::spawn(print_messages(messages));
    Ok(Some((receiver, printer)))
}

/// `HOST:PORT` to the first address it names.
async fn resolve(address: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|error| format!("cannot listen on {address}: {error}"))?
        .next()
        .ok_or_else(|| format!("cannot listen on {address}: it names no address"))
}

/// Prints each message as it arrives, in the format of the first receiver
/// (`received POST /slack: {json}`), which scripts/try-examples shows.
async fn print_messages(mut messages: broadcast::Receiver<Message>) {
    loop {
        match messages.recv().await {
            Ok(message) => print_message(&message),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                println!("({missed} messages received but not printed)");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
        let _ = std::io::stdout().flush();
    }
}

fn print_message(message: &Message) {
    match message {
        Message::Slack { channel, text } => {
            let body = serde_json::json!({ "channel": channel, "text": text });
            println!("received POST /slack: {body}");
        }
        Message::Webhook { path, body } => println!("received POST {path}: {body}"),
        Message::Email {
            from,
            to,
            subject,
            body,
        } => {
            println!("received mail from <{from}> to {}", to.join(", "));
            println!("  Subject: {subject}");
            for line in body.lines() {
                println!("  | {line}");
            }
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
