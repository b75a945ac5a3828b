//! The client commands: `medic runs`, `approve`, `reject`, `pause`, `resume`, `cancel`,
//! `reverts`, `revert`, `kill-switch`, `stats`, `feedback` and `audit` ask a running
//! `medic serve` over its HTTP API, as the user the token names (the server decides who
//! that is and what they may do).

use crate::engine::runtime;
use anyhow::{anyhow, bail};
use medic_runtime::executor::RunReport;
use medic_runtime::report;
use std::process::ExitCode;

/// Where the server is and how to authenticate (flags, else `MEDIC_SERVER`, `MEDIC_TOKEN`).
pub struct Remote {
    pub server: Option<String>,
    pub token: Option<String>,
}

impl Remote {
    fn base(&self) -> String {
        self.server
            .clone()
            .or_else(|| std::env::var("MEDIC_SERVER").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim_end_matches('/')
            .to_string()
    }

    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("MEDIC_TOKEN").ok())
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base());
        let token = self.token();
        runtime()?.block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?;
            let mut request = client.request(method, &url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request
                .send()
                .await
                .map_err(|error| anyhow!("cannot reach the server at {url}: {error}"))?;
            let status = response.status();
            let value: serde_json::Value = response
                .json()
                .await
                .map_err(|error| anyhow!("the server's answer is not JSON ({status}): {error}"))?;
            if !status.is_success() {
                let message = value
                    .get("error")
                    .and_then(|error| error.as_str())
                    .unwrap_or("no message");
                bail!("the server answered {status}: {message}");
            }
            Ok(value)
        })
    }
}

/// A query string of `pairs`, escaped.
fn query_string(pairs: &[(&str, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        out.append_pair(name, value);
    }
    out.finish()
}

pub fn runs(
    remote: &Remote,
    id: Option<i64>,
    filter: &[(&str, String)],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(id) = id else {
        let value = remote.request(
            reqwest::Method::GET,
            &format!("/api/runs?{}", query_string(filter)),
            None,
        )?;
        if json {
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(ExitCode::SUCCESS);
        }
        let runs = value
            .get("runs")
            .and_then(|runs| runs.as_array())
            .cloned()
            .unwrap_or_default();
        println!(
            "{:>6}  {:<12}  {:<24}  {:<24}  started",
            "run", "state", "rule", "playbook"
        );
        for run in runs {
            let field = |name: &str| {
                run.get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let started = run
                .get("started_at")
                .and_then(serde_json::Value::as_i64)
                .map(medic_compiler::units::format_time)
                .unwrap_or_default();
            println!(
                "{:>6}  {:<12}  {:<24}  {:<24}  {started}",
                run.get("id")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0),
                field("state"),
                field("rule"),
                field("playbook"),
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let value = remote.request(reqwest::Method::GET, &format!("/api/runs/{id}"), None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let state = value.get("state").and_then(|v| v.as_str()).unwrap_or("");
    println!("run {id}: {state}");
    if let Some(awaiting) = value.get("awaiting_approval").and_then(|v| v.as_array())
        && !awaiting.is_empty()
    {
        let names: Vec<&str> = awaiting.iter().filter_map(|v| v.as_str()).collect();
        println!(
            "  waiting for approval: {} (medic approve {id})",
            names.join(", ")
        );
    }
    let definition: Option<medic_compiler::plan::Playbook> = value
        .get("definition")
        .cloned()
        .and_then(|definition| serde_json::from_value(definition).ok());
    match value
        .get("report")
        .cloned()
        .map(serde_json::from_value::<RunReport>)
    {
        Some(Ok(report)) => print!(
            "{}",
            report::text(&format!("run {id}"), &report, definition.as_ref(), false)
        ),
        _ => {
            for event in value
                .get("events")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
            {
                let field = |name: &str| {
                    event
                        .get(name)
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                println!("  {:<16} {}", field("task"), field("state"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn act(
    remote: &Remote,
    id: i64,
    action: &str,
    body: serde_json::Value,
) -> anyhow::Result<ExitCode> {
    post_and_print(remote, &format!("/api/runs/{id}/{action}"), body)
}

/// Posts an operator's action and prints the server's answer on one line.
fn post_and_print(
    remote: &Remote,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<ExitCode> {
    let value = remote.request(reqwest::Method::POST, path, Some(body))?;
    println!("{}", serde_json::to_string(&value)?);
    Ok(ExitCode::SUCCESS)
}

/// `medic reverts`: without `--state`, the reverts that wait for a human (failed, then
/// needs_attention).
pub fn reverts(remote: &Remote, state: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let states: Vec<&str> = match state {
        Some(state) => vec![state],
        None => vec!["failed", "needs_attention"],
    };
    let mut reverts = Vec::new();
    for state in states {
        let value = remote.request(
            reqwest::Method::GET,
            &format!("/api/reverts?state={state}"),
            None,
        )?;
        let listed = value
            .get("reverts")
            .and_then(|reverts| reverts.as_array())
            .ok_or_else(|| anyhow!("the server's answer has no `reverts` list"))?;
        reverts.extend(listed.iter().cloned());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "reverts": reverts }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if reverts.is_empty() {
        println!("no reverts");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<6} {:<6} {:<16} {:<12} {:<16} detail",
        "id", "run", "state", "task", "function"
    );
    for revert in &reverts {
        let field = |name: &str| match revert.get(name) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        println!(
            "{:<6} {:<6} {:<16} {:<12} {:<16} {}",
            field("id"),
            field("run_id"),
            field("state"),
            field("task"),
            field("function"),
            field("detail")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `medic revert retry|ack ID`.
pub fn act_on_revert(
    remote: &Remote,
    id: i64,
    action: &str,
    body: serde_json::Value,
) -> anyhow::Result<ExitCode> {
    post_and_print(remote, &format!("/api/reverts/{id}/{action}"), body)
}

pub fn kill_switch(remote: &Remote, on: Option<bool>) -> anyhow::Result<ExitCode> {
    let value = match on {
        Some(on) => remote.request(
            reqwest::Method::POST,
            "/api/kill-switch",
            Some(serde_json::json!({ "on": on })),
        )?,
        None => remote.request(reqwest::Method::GET, "/api/kill-switch", None)?,
    };
    println!("{}", serde_json::to_string(&value)?);
    Ok(ExitCode::SUCCESS)
}

/// `medic stats`: a table per playbook, then time to resolve per alert name.
pub fn stats(remote: &Remote, since: &str, within: &str, json: bool) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/api/stats?{}",
        query_string(&[("since", since.to_string()), ("within", within.to_string())])
    );
    let value = remote.request(reqwest::Method::GET, &path, None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let stats: medic_runtime::stats::Stats = serde_json::from_value(value)
        .map_err(|error| anyhow!("the server's statistics do not read: {error}"))?;
    print!("{}", medic_runtime::stats::text(&stats));
    Ok(ExitCode::SUCCESS)
}

/// `medic audit`: one line per action, newest first.
pub fn audit(
    remote: &Remote,
    run: Option<i64>,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut pairs = vec![("limit", limit.to_string())];
    if let Some(run) = run {
        pairs.push(("run", run.to_string()));
    }
    let value = remote.request(
        reqwest::Method::GET,
        &format!("/api/audit?{}", query_string(&pairs)),
        None,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let entries = value
        .get("entries")
        .and_then(|entries| entries.as_array())
        .ok_or_else(|| anyhow!("the server's answer has no `entries` list"))?;
    if entries.is_empty() {
        println!("no operator action");
        return Ok(ExitCode::SUCCESS);
    }
    for entry in entries {
        let text = |name: &str| match entry.get(name) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let at = entry
            .get("at")
            .and_then(serde_json::Value::as_i64)
            .map(medic_compiler::units::format_time)
            .unwrap_or_default();
        let on = match (text("run_id"), text("revert_id")) {
            (run, _) if !run.is_empty() => format!("run {run}"),
            (_, revert) if !revert.is_empty() => format!("revert {revert}"),
            _ => String::new(),
        };
        let outcome = match text("error") {
            error if error.is_empty() => "done".to_string(),
            error => format!("refused: {error}"),
        };
        println!(
            "{at}  {:<16} {:<4} {:<12} {:<10} {}  {outcome}",
            format!("{} ({})", text("actor"), text("role")),
            text("via"),
            text("action"),
            on,
            text("detail"),
        );
    }
    Ok(ExitCode::SUCCESS)
}
