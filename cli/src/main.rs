//! The `medic` command line. Reads files, calls the compiler, renders results; all policy
//! lives in the library crates.
//!
//! Exit codes, for every command: 0 ok, 1 findings (errors, or warnings with
//! `--deny-warnings`, or unformatted files with `fmt --check`), 2 usage or I/O error; 3 says
//! "something to look at that is not an error": `plan --diff` found changes, `run` matched
//! no rule.

mod check_cache;
mod client;
mod config;
mod demo;
mod doctor;
mod engine;
mod logs;
mod output;
mod sources;
mod test;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "medic",
    version,
    about = "Runbooks as typed programs: check, format and run .ops files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check .ops files: syntax, names, types, units, guardrails and lints.
    Check {
        /// Files or directories (searched recursively for *.ops). Default: the current directory.
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Exit with 1 when there are warnings, not only errors.
        #[arg(long)]
        deny_warnings: bool,
        /// Check everything again rather than reuse the result of an unchanged tree (kept in
        /// MEDIC_CACHE_DIR, else $XDG_CACHE_HOME/medic or ~/.cache/medic).
        #[arg(long)]
        no_cache: bool,
    },
    /// Compile .ops files into an executable plan and print it, or compare it with an older plan.
    Plan {
        /// Files or directories (searched recursively for *.ops). Default: the current directory.
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Compare with a plan saved earlier (`medic plan --format json > old.json`): print
        /// what changed and exit with 3 when anything did (1 when the sources have errors).
        #[arg(long, value_name = "OLD.json")]
        diff: Option<PathBuf>,
    },
    /// Run the language server on standard input and output (for editors).
    Lsp,
    /// Show Medic at work on one machine: a simulated shop (Kubernetes, Prometheus, Jaeger
    /// and Elasticsearch APIs on loopback), a real `medic serve` with the example runbooks,
    /// and the four incidents of the original runbook, checked. Exits 1 when an incident
    /// did not end as expected.
    #[command(args_conflicts_with_subcommands = true)]
    Demo {
        #[command(subcommand)]
        action: Option<DemoAction>,
        /// Keep the journal here (default: a temporary file).
        #[arg(long, value_name = "PATH")]
        store: Option<PathBuf>,
        /// Keep the server and the world running after the incidents, to explore.
        #[arg(long)]
        serve: bool,
        /// How many times faster than wall time the demo's clock runs.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=120))]
        speed: u32,
        /// Where medic serve listens (default: any free port; 127.0.0.1:8080 with --serve).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// The port of the world's services and control API (default: any; 8181 with --serve).
        #[arg(long, value_name = "PORT")]
        world_port: Option<u16>,
        /// Play only this incident (repeatable): order-cpu, payment-latency, disk-full, inventory-db.
        #[arg(long = "incident", value_name = "NAME")]
        incidents: Vec<String>,
    },
    /// Serve webhooks and the runs API: match alerts and run playbooks, durably.
    Serve {
        /// The configuration file (docs/serve.md).
        #[arg(long, value_name = "medic.toml")]
        config: Option<PathBuf>,
        /// .ops files or directories (overrides `plans` in the config).
        #[arg(long = "plans", value_name = "PATH")]
        plans: Vec<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// The journal database (default medic.db).
        #[arg(long, value_name = "PATH")]
        store: Option<PathBuf>,
        /// Perform no action: runs say what they would have done.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run one alert payload through the engine and print the report of each run.
    Run {
        #[command(flatten)]
        payload: PayloadArgs,
        /// Run queries but perform no action; say what would have been done.
        #[arg(long)]
        dry_run: bool,
        /// The configuration file: `[http]`, `[notify]` and `[limits]` apply (docs/serve.md).
        #[arg(long, value_name = "medic.toml")]
        config: Option<PathBuf>,
    },
    /// Run the `test` blocks of .ops files on the engine, with mocks and a virtual clock.
    /// Exits 0 when all passed, 1 when one failed or the files do not check, 2 for a usage
    /// error.
    Test {
        /// Files or directories (searched recursively for *.ops). Default: the current directory.
        paths: Vec<PathBuf>,
        /// Only the tests whose name contains this text.
        #[arg(long, value_name = "PATTERN")]
        run: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = test::TestFormat::Human)]
        format: test::TestFormat,
        /// Fail when a path named holds no test (or none that --run selects).
        #[arg(long)]
        deny_empty: bool,
        /// Tests run at once (default: one per core).
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// Show what happened in passing tests too.
        #[arg(long, short)]
        verbose: bool,
        /// Report which rules, `when`s and tasks the tests exercised, per file.
        #[arg(long)]
        coverage: bool,
        /// Fail when coverage is below this percentage (implies --coverage).
        #[arg(long, value_name = "PERCENT")]
        coverage_min: Option<f64>,
    },
    /// Explain how the plan routes an alert payload: for each alert, every rule in matching
    /// order with why it matched or not (each `and`-ed part of `when` with the values it
    /// saw). Exits 0 when a rule matched, 1 when none did, 2 when the plan does not check.
    Explain {
        #[command(flatten)]
        payload: PayloadArgs,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List recent runs of a server, newest first, or show one.
    Runs {
        id: Option<i64>,
        #[command(flatten)]
        filter: RunFilterArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Each playbook's and rule's effectiveness, from the server's journal: runs by outcome,
    /// run time, how often the alert resolved after the run, actions and reverts, approvals,
    /// operators' answers, and time to resolve with a run against without.
    Stats {
        /// Runs started in this last stretch of time.
        #[arg(long, default_value = "7d")]
        since: String,
        /// How soon after a run its alert must resolve to count as resolved.
        #[arg(long, default_value = "30m")]
        within: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Answer "did this run fix it?" about a run (journaled with who answered, counted in
    /// `medic stats`).
    Feedback {
        id: i64,
        #[arg(value_parser = ["yes", "no", "partly"])]
        verdict: String,
        /// What you saw.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The audit log of operators' actions on a server, done and refused, newest first.
    Audit {
        /// Only the actions on this run.
        #[arg(long)]
        run: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Ask every system of medic.toml whether Medic can work with it: the plans' calls are
    /// configured, Prometheus answers, the SMTP server accepts a login, and the Kubernetes
    /// API server grants the permissions the adapter needs. Exits 1 when anything fails.
    Doctor {
        /// The configuration file (docs/serve.md).
        #[arg(long, value_name = "medic.toml")]
        config: Option<PathBuf>,
        /// .ops files or directories whose calls to check (default: `plans` of the config).
        #[arg(long = "plans", value_name = "PATH")]
        plans: Vec<PathBuf>,
        /// Namespaces to check the Kubernetes permissions in (default: `default`).
        #[arg(long = "namespace", value_name = "NAMESPACE")]
        namespaces: Vec<String>,
    },
    /// Approve the tasks of a run that wait for approval. The journal records the user the
    /// token names (the server decides who you are, not this command).
    Approve {
        id: i64,
        /// Only this task (default: every task waiting).
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Reject the tasks of a run that wait for approval (they take their failure policy).
    Reject {
        id: i64,
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Pause a run: running tasks finish, no new task starts.
    Pause {
        id: i64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Resume a paused run.
    Resume {
        id: i64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Cancel a run.
    Cancel {
        id: i64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the reverts of a server in a state (default: those that wait for a human,
    /// `failed` and `needs_attention`).
    Reverts {
        /// pending, reverting, reverted, failed, needs_attention, acknowledged or skipped.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Finish a revert that failed or needs attention: try it again, or acknowledge it
    /// (undone by hand). The journal records the user the token names.
    Revert {
        #[command(subcommand)]
        action: RevertAction,
    },
    /// Show or set the kill switch: when on, no new action runs (reverts of earlier actions
    /// still do); it survives restarts.
    KillSwitch {
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Mine log templates (`mine`) and compare a file against a baseline (`diff`).
    Logs {
        #[command(subcommand)]
        action: logs::Action,
    },
    /// Format .ops files in place, or check that they are formatted.
    Fmt {
        /// Files or directories (searched recursively for *.ops). Default: the current directory.
        paths: Vec<PathBuf>,
        /// Do not write; list the files that are not formatted and exit with 1 if any.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand)]
enum RevertAction {
    /// Perform the revert again, now.
    Retry {
        id: i64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Mark it taken care of, saying what was done instead.
    Ack {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// An alert payload and the plans it is matched against (`medic run`, `medic explain`).
#[derive(clap::Args)]
struct PayloadArgs {
    /// An alert payload (Alertmanager, Grafana, Zabbix or generic JSON).
    #[arg(long, value_name = "FILE")]
    alert: PathBuf,
    /// The payload's source; guessed from its fields when left out.
    #[arg(long)]
    source: Option<String>,
    /// .ops files or directories (default: the current directory).
    #[arg(long = "plans", value_name = "PATH")]
    plans: Vec<PathBuf>,
}

/// The filters of `medic runs` (as `GET /api/runs` takes them).
#[derive(clap::Args)]
struct RunFilterArgs {
    /// running, paused, succeeded, failed, escalated, cancelled or interrupted.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    rule: Option<String>,
    #[arg(long)]
    playbook: Option<String>,
    /// The name of the alert that started the run.
    #[arg(long)]
    alert: Option<String>,
    /// A label of that alert: name=value.
    #[arg(long)]
    label: Option<String>,
    /// Started at or after: 2026-12-01 10:00 (UTC), RFC 3339, or a duration ago (2h).
    #[arg(long)]
    from: Option<String>,
    /// Started before; as --from.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

impl RunFilterArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("limit", self.limit.to_string())];
        for (name, value) in [
            ("state", &self.state),
            ("rule", &self.rule),
            ("playbook", &self.playbook),
            ("alert", &self.alert),
            ("label", &self.label),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        pairs
    }
}

#[derive(clap::Args)]
struct RemoteArgs {
    /// The server (default: $MEDIC_SERVER, else http://127.0.0.1:8080).
    #[arg(long)]
    server: Option<String>,
    /// The bearer token (default: $MEDIC_TOKEN).
    #[arg(long)]
    token: Option<String>,
}

impl RemoteArgs {
    fn remote(self) -> client::Remote {
        client::Remote {
            server: self.server,
            token: self.token,
        }
    }
}

#[derive(Subcommand)]
enum DemoAction {
    /// Start an incident in the world of a running `medic demo --serve`.
    Trigger {
        /// order-cpu, payment-latency, disk-full or inventory-db.
        incident: String,
        /// The world's control API.
        #[arg(long, default_value = "http://127.0.0.1:8181")]
        world: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    /// Rules in matching order and playbooks in execution order, for review.
    Text,
    /// The versioned plan format (docs/plan-format.md).
    Json,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Annotated source snippets for people.
    Human,
    /// Versioned JSON for scripts (see docs/check-json.md).
    Json,
    /// GitHub Actions workflow commands (annotations on the pull request).
    Github,
    /// SARIF 2.1.0 for code-scanning tools.
    Sarif,
}

/// mimalloc rather than the system allocator: a check allocates a syntax tree node by node,
/// and it made `medic check` on 10,000 rules about a third faster (note 024).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            paths,
            format,
            deny_warnings,
            no_cache,
        } => check(&paths, format, deny_warnings, no_cache),
        Command::Fmt { paths, check } => fmt(&paths, check),
        Command::Logs { action } => logs::run(action),
        Command::Plan {
            paths,
            format,
            diff,
        } => plan(&paths, format, diff.as_deref()),
        Command::Lsp => lsp(),
        Command::Demo {
            action: Some(DemoAction::Trigger { incident, world }),
            ..
        } => demo::trigger(&incident, &world),
        Command::Demo {
            action: None,
            store,
            serve,
            speed,
            listen,
            world_port,
            incidents,
        } => demo::demo(demo::DemoFlags {
            store,
            serve,
            speed,
            listen,
            world_port,
            only: incidents,
        }),
        Command::Serve {
            config,
            plans,
            listen,
            store,
            dry_run,
        } => engine::serve(engine::ServeFlags {
            config,
            plans,
            listen,
            store,
            dry_run,
        }),
        Command::Run {
            payload,
            dry_run,
            config,
        } => engine::run(engine::RunFlags {
            config,
            alert: payload.alert,
            source: payload.source,
            plans: payload.plans,
            dry_run,
        }),
        Command::Test {
            paths,
            run,
            format,
            deny_empty,
            jobs,
            verbose,
            coverage,
            coverage_min,
        } => test::test(test::TestFlags {
            paths,
            run,
            format,
            deny_empty,
            jobs,
            verbose,
            coverage,
            coverage_min,
        }),
        Command::Explain { payload, json } => engine::explain(
            &payload.alert,
            payload.source.as_deref(),
            &payload.plans,
            json,
        ),
        Command::Doctor {
            config,
            plans,
            namespaces,
        } => doctor::doctor(doctor::DoctorFlags {
            config,
            plans,
            namespaces,
        }),
        Command::Runs {
            id,
            filter,
            json,
            remote,
        } => client::runs(&remote.remote(), id, &filter.query(), json),
        Command::Stats {
            since,
            within,
            json,
            remote,
        } => client::stats(&remote.remote(), &since, &within, json),
        Command::Feedback {
            id,
            verdict,
            note,
            remote,
        } => client::act(
            &remote.remote(),
            id,
            "feedback",
            serde_json::json!({ "verdict": verdict, "note": note }),
        ),
        Command::Audit {
            run,
            limit,
            json,
            remote,
        } => client::audit(&remote.remote(), run, limit, json),
        Command::Approve { id, task, remote } => client::act(
            &remote.remote(),
            id,
            "approve",
            serde_json::json!({ "task": task }),
        ),
        Command::Reject {
            id,
            task,
            reason,
            remote,
        } => client::act(
            &remote.remote(),
            id,
            "reject",
            serde_json::json!({ "task": task, "reason": reason }),
        ),
        Command::Pause { id, remote } => {
            client::act(&remote.remote(), id, "pause", serde_json::json!({}))
        }
        Command::Resume { id, remote } => {
            client::act(&remote.remote(), id, "resume", serde_json::json!({}))
        }
        Command::Cancel { id, remote } => {
            client::act(&remote.remote(), id, "cancel", serde_json::json!({}))
        }
        Command::Reverts {
            state,
            json,
            remote,
        } => client::reverts(&remote.remote(), state.as_deref(), json),
        Command::Revert { action } => match action {
            RevertAction::Retry { id, remote } => {
                client::act_on_revert(&remote.remote(), id, "retry", serde_json::json!({}))
            }
            RevertAction::Ack { id, reason, remote } => client::act_on_revert(
                &remote.remote(),
                id,
                "ack",
                serde_json::json!({ "reason": reason }),
            ),
        },
        Command::KillSwitch { state, remote } => {
            client::kill_switch(&remote.remote(), state.map(|state| state == "on"))
        }
    };
    match result {
        Ok(code) => code,
        // The reader went away (`medic logs mine big.log | head`): nothing more to say.
        Err(error)
            if error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn check(
    paths: &[PathBuf],
    format: Format,
    deny_warnings: bool,
    no_cache: bool,
) -> anyhow::Result<ExitCode> {
    let sources = sources::read(paths)?;
    let file_count = sources.len();
    let cache = if no_cache {
        None
    } else {
        check_cache::CheckCache::open()
    };
    let key = cache
        .as_ref()
        .map(|cache| cache.key(&format!("{format:?}"), &sources));
    let found = cache
        .as_ref()
        .zip(key.as_ref())
        .and_then(|(cache, key)| cache.get(key));
    let result = match found {
        Some(found) => found,
        None => {
            let analysis = medic_compiler::check(sources);
            let result = check_cache::Cached {
                output: output::render(&analysis, format, file_count),
                errors: analysis.errors(),
                warnings: analysis.warnings(),
            };
            // Human output with diagnostics depends on the terminal (see check_cache).
            if (format != Format::Human || analysis.diagnostics.is_empty())
                && let (Some(cache), Some(key)) = (&cache, &key)
            {
                cache.put(key, &result);
            }
            // The process ends here: freeing the whole tree's syntax and types node by node
            // would only make the check slower.
            std::mem::forget(analysis);
            result
        }
    };
    print!("{}", result.output);
    let failed = result.errors > 0 || (deny_warnings && result.warnings > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn plan(
    paths: &[PathBuf],
    format: PlanFormat,
    old: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use medic_compiler::plan;
    // Read the old plan first: a bad --diff argument is a usage error whatever the sources say.
    let old_plan = match old {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
            Some(
                plan::Plan::from_json(&text)
                    .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?,
            )
        }
        None => None,
    };
    let sources = sources::read(paths)?;
    let file_count = sources.len();
    let analysis = medic_compiler::check(sources);
    let new_plan = match plan::lower(&analysis) {
        Ok(new_plan) => new_plan,
        Err(_) => {
            eprint!("{}", output::render(&analysis, Format::Human, file_count));
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(old_plan) = old_plan {
        let changes = plan::diff::diff(&old_plan, &new_plan);
        if changes.is_empty() {
            println!("no changes");
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{} change{}:",
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
        for change in &changes {
            println!("- {change}");
        }
        // Not 1: that is for errors in the sources, which a CI step must tell from changes.
        return Ok(ExitCode::from(3));
    }
    let text = match format {
        PlanFormat::Text => plan::render::text(&new_plan),
        PlanFormat::Json => new_plan.to_json(),
        PlanFormat::Dot => plan::render::dot(&new_plan),
        PlanFormat::Mermaid => plan::render::mermaid(&new_plan),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn lsp() -> anyhow::Result<ExitCode> {
    // Analyses recurse over expression trees; give every thread room for the deepest tree
    // the parser accepts.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .map_err(|error| anyhow::anyhow!("cannot start the language server: {error}"))?;
    runtime.block_on(medic_lsp::run_stdio());
    Ok(ExitCode::SUCCESS)
}

fn fmt(paths: &[PathBuf], check_only: bool) -> anyhow::Result<ExitCode> {
    let sources = sources::read(paths)?;
    let mut unformatted = 0;
    let mut broken = 0;
    for source in &sources {
        match medic_compiler::format(&source.text) {
            Ok(formatted) if formatted == source.text => {}
            Ok(formatted) => {
                unformatted += 1;
                if check_only {
                    println!("{}: not formatted", source.name);
                } else {
                    std::fs::write(&source.name, formatted).map_err(|error| {
                        anyhow::anyhow!("cannot write {}: {error}", source.name)
                    })?;
                    println!("{}: formatted", source.name);
                }
            }
            Err(diagnostics) => {
                broken += 1;
                let analysis_like =
                    output::render_diagnostics(&source.name, &source.text, &diagnostics);
                eprint!("{analysis_like}");
                eprintln!("{}: not formatted because of syntax errors", source.name);
            }
        }
    }
    if broken > 0 || (check_only && unformatted > 0) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
