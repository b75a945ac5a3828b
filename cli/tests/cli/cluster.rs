//! Three `medic serve` nodes on one real PostgreSQL (issue 14, docs/ha.md): Alertmanager's
//! HA fan-out and its retries start one run per episode; a node paused beyond its lease
//! (SIGSTOP) has its run taken over and, when it continues, performs nothing; the database
//! crashing (`pg_ctl stop -m immediate`) turns webhooks and `/healthz` into 503 until it is
//! back, and the nodes carry on without a restart; kill -9 of a random node every few
//! seconds under load loses no acknowledged alert and starts no action twice.
//!
//! The target of the runs' HTTP calls records each call with the `Medic-Run` and
//! `Medic-Fence` headers Medic sends, so that the tests can tell which node, under which
//! fencing number, performed each action.

use super::serve::{Server, alertmanager_payload, free_port, http, write_plan};
use super::{TempDir, temp_dir};
use medic_sandbox::postgres::RealPostgres;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The lease of every node in these tests: 3 s (the least `lease_seconds` is 2), so a
/// takeover comes within about 4.5 s (lease, grace of 1 s, sweep of 0.6 s).
const LEASE_SECONDS: u64 = 3;

/// A run looks (an `http.get` the target may hold unanswered) and then acts (an
/// `http.post`, which is an action: started once, under the guardrails).
const PLAN: &str = r##"import std.{http}

/// Looks, then acts, once per firing episode.
rule hot {
  on alert "Hot"
  run act(fingerprint: alert.fingerprint)
  concurrency 1000 per alert.fingerprint
}

playbook act(fingerprint: String) {
  task look = http.get("http://127.0.0.1:TARGET/wait/{fingerprint}")
  task call = http.post(url: "http://127.0.0.1:TARGET/act/{fingerprint}") {
    after look
  }
}
"##;

/// One request the target received.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    run: Option<String>,
    fence: Option<i64>,
}

#[derive(Default)]
struct TargetState {
    calls: Vec<Call>,
    /// While set, `/wait/...` requests are not answered.
    holding: bool,
    /// The `/wait/...` paths held now.
    waiting: Vec<String>,
}

/// The runs' HTTP target: records every request with Medic's headers, answers 200, holds
/// `/wait/...` requests while told to, and answers `/act/...` after `act_delay` (so that a
/// kill can land while one is in flight).
struct Target {
    port: u16,
    state: Arc<(Mutex<TargetState>, Condvar)>,
}

impl Target {
    fn start(act_delay: Duration) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<(Mutex<TargetState>, Condvar)> = Arc::default();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut length, mut run, mut fence) = (0, None, None);
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                        let Some((name, value)) = header.split_once(':') else {
                            continue;
                        };
                        let value = value.trim().to_string();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.parse().unwrap_or(0),
                            "medic-run" => run = Some(value),
                            "medic-fence" => fence = value.parse().ok(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                    let (lock, changed) = &*state;
                    let mut guard = lock.lock().unwrap();
                    guard.calls.push(Call {
                        path: path.clone(),
                        run,
                        fence,
                    });
                    if path.starts_with("/wait/") && guard.holding {
                        guard.waiting.push(path.clone());
                        while guard.holding {
                            guard = changed.wait(guard).unwrap();
                        }
                        guard.waiting.retain(|waiting| *waiting != path);
                    }
                    drop(guard);
                    if path.starts_with("/act/") {
                        std::thread::sleep(act_delay);
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Target { port, state }
    }

    fn hold(&self) {
        self.state.0.lock().unwrap().holding = true;
    }

    fn release(&self) {
        self.state.0.lock().unwrap().holding = false;
        self.state.1.notify_all();
    }

    fn waiting(&self) -> Vec<String> {
        self.state.0.lock().unwrap().waiting.clone()
    }

    fn calls(&self) -> Vec<Call> {
        self.state.0.lock().unwrap().calls.clone()
    }

    /// The `/act/...` calls, by path.
    fn actions(&self) -> BTreeMap<String, Vec<Call>> {
        let mut actions: BTreeMap<String, Vec<Call>> = BTreeMap::new();
        for call in self.calls() {
            if call.path.starts_with("/act/") {
                actions.entry(call.path.clone()).or_default().push(call);
            }
        }
        actions
    }
}

/// A real PostgreSQL for the test; its absence fails the test with the install command.
fn postgres() -> RealPostgres {
    RealPostgres::start().unwrap_or_else(|error| panic!("{error}"))
}

/// The folder and `medic serve` configuration of one node.
struct Node {
    name: String,
    dir: TempDir,
    port: u16,
    config: String,
}

impl Node {
    fn new(name: &str, postgres: &RealPostgres, target: &Target, lease_seconds: u64) -> Node {
        Node::with_plan(
            name,
            postgres,
            &PLAN.replace("TARGET", &target.port.to_string()),
            lease_seconds,
        )
    }

    fn with_plan(name: &str, postgres: &RealPostgres, plan: &str, lease_seconds: u64) -> Node {
        let dir = temp_dir(&format!("cluster-{name}"));
        write_plan(&dir, plan);
        let config = format!(
            "plans = [\"plans\"]\n[store]\nurl = \"{}\"\nnode = \"{name}\"\nlease_seconds = {lease_seconds}\n[limits]\nactions_per_minute = 1000000\nbody_bytes = 65536\n",
            postgres.url()
        );
        Node {
            name: name.to_string(),
            dir,
            port: free_port(),
            config,
        }
    }

    fn start(&self) -> Server {
        Server::start_on(&self.dir, &self.config, None, self.port)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }
}

fn nodes(postgres: &RealPostgres, target: &Target) -> Vec<Node> {
    nodes_with_lease(postgres, target, LEASE_SECONDS)
}

fn nodes_with_lease(postgres: &RealPostgres, target: &Target, lease_seconds: u64) -> Vec<Node> {
    ["a", "b", "c"]
        .iter()
        .map(|name| Node::new(name, postgres, target, lease_seconds))
        .collect()
}

fn logs(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|node| format!("--- node {} ---\n{}", node.name, node.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn post_alert(url: &str, fingerprint: &str) -> std::io::Result<(u16, String)> {
    let payload = alertmanager_payload("Hot", "api", fingerprint, "firing", "2026-12-04T12:00:00Z");
    http(
        "POST",
        &format!("{url}/webhook/alertmanager"),
        &[],
        payload.as_bytes(),
    )
}

fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `SELECT` of one number.
fn count(postgres: &RealPostgres, sql: &str) -> i64 {
    postgres.psql(sql).unwrap().parse().unwrap()
}

/// The runs in the database as (id, fingerprint, state, owner, fence, finished).
fn runs(postgres: &RealPostgres) -> Vec<(i64, String, String, String, i64, bool)> {
    postgres
        .psql("SELECT id, fingerprint, state, COALESCE(owner, ''), COALESCE(fence, 0), finished_at IS NOT NULL FROM runs ORDER BY id")
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('|').collect();
            (
                fields[0].parse().unwrap(),
                fields[1].to_string(),
                fields[2].to_string(),
                fields[3].to_string(),
                fields[4].parse().unwrap(),
                fields[5] == "t",
            )
        })
        .collect()
}

/// The fencing number each node holds now.
fn fences(postgres: &RealPostgres) -> BTreeMap<String, i64> {
    postgres
        .psql("SELECT id, fence FROM nodes")
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(node, fence)| (node.to_string(), fence.parse().unwrap()))
        .collect()
}

fn run_list(server: &Server) -> Vec<serde_json::Value> {
    server.json("/api/runs?limit=1000")["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn alertmanager_fan_out_to_three_nodes_with_retries_starts_one_run_per_episode() {
    let postgres = postgres();
    let target = Target::start(Duration::ZERO);
    let nodes = nodes(&postgres, &target);
    let servers: Vec<Server> = nodes.iter().map(Node::start).collect();
    let fingerprints: Vec<String> = (0..30).map(|index| format!("fan{index}")).collect();
    // Each Alertmanager instance delivers every notification to every node, and retries:
    // three posts of each alert to each node, from three threads at once.
    let threads: Vec<_> = (0..3)
        .map(|sender| {
            let urls: Vec<String> = nodes.iter().map(Node::url).collect();
            let fingerprints = fingerprints.clone();
            std::thread::spawn(move || {
                for fingerprint in &fingerprints {
                    for offset in 0..urls.len() {
                        let url = &urls[(sender + offset) % urls.len()];
                        let (status, body) = post_alert(url, fingerprint).unwrap();
                        assert_eq!(status, 200, "{url}: {body}");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    wait_until("every run finished", Duration::from_secs(60), || {
        let runs = runs(&postgres);
        runs.len() >= fingerprints.len() && runs.iter().all(|run| run.5)
    });
    let runs = runs(&postgres);
    assert_eq!(
        count(&postgres, "SELECT COUNT(*) FROM alerts"),
        9 * fingerprints.len() as i64,
        "every delivery is journaled"
    );
    let per_episode: BTreeMap<&String, usize> =
        runs.iter().fold(BTreeMap::new(), |mut map, run| {
            *map.entry(&run.1).or_default() += 1;
            map
        });
    assert_eq!(per_episode.len(), fingerprints.len(), "{runs:?}");
    assert!(
        per_episode.values().all(|count| *count == 1),
        "an episode ran twice: {per_episode:?}"
    );
    assert!(
        runs.iter().all(|run| run.2 == "succeeded"),
        "{runs:?}\n{}",
        logs(&nodes)
    );
    let actions = target.actions();
    for fingerprint in &fingerprints {
        let calls = actions.get(&format!("/act/{fingerprint}")).unwrap();
        assert_eq!(calls.len(), 1, "{fingerprint}: {calls:?}");
    }
    // The runs are spread over the nodes that received the alerts, and each action carries
    // its run and the fencing number of the node that started it.
    let owners: BTreeSet<&String> = runs.iter().map(|run| &run.3).collect();
    assert!(owners.len() >= 2, "one node did all the work: {owners:?}");
    let fences = fences(&postgres);
    for run in &runs {
        let call = &actions[&format!("/act/{}", run.1)][0];
        assert_eq!(call.run.as_deref(), Some(run.0.to_string().as_str()));
        assert_eq!(call.fence, Some(fences[&run.3]), "{run:?}: {call:?}");
    }
    // Every node shows every run, whichever node ran it.
    for server in &servers {
        assert_eq!(run_list(server).len(), fingerprints.len(), "{}", server.url);
    }
}

#[test]
fn a_node_paused_beyond_its_lease_has_its_run_taken_over_and_acts_on_nothing_when_it_continues() {
    let postgres = postgres();
    let target = Target::start(Duration::ZERO);
    let nodes = nodes(&postgres, &target);
    let mut servers: Vec<Server> = nodes.iter().map(Node::start).collect();
    // Node a alone receives the alert, and its run waits on its look.
    target.hold();
    let (status, body) = post_alert(&nodes[0].url(), "paused").unwrap();
    assert_eq!(status, 200, "{body}");
    wait_until("the run looking", Duration::from_secs(30), || {
        !target.waiting().is_empty()
    });
    let before = fences(&postgres);
    let run = runs(&postgres)[0].clone();
    assert_eq!(run.3, "a");
    assert_eq!(run.4, before["a"]);
    // SIGSTOP: the node is frozen with its look in flight, its heartbeat with it.
    let pid = servers[0].child.id().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stop.success());
    let paused = Instant::now();
    // Another node takes the run over within the lease, the grace and a sweep, and looks
    // again (a read is repeated; the action has not started).
    wait_until(
        "another node taking the run over",
        Duration::from_secs(20),
        || {
            let now = runs(&postgres);
            now[0].3 != "a"
        },
    );
    let taken_after = paused.elapsed();
    let taker = runs(&postgres)[0].3.clone();
    wait_until("the taker looking", Duration::from_secs(20), || {
        target
            .calls()
            .iter()
            .filter(|call| call.path == "/wait/paused")
            .count()
            == 2
    });
    // Both looks are answered: the frozen node's reply waits in its socket.
    target.release();
    wait_until("the taker's run finished", Duration::from_secs(30), || {
        runs(&postgres)[0].5
    });
    // SIGCONT: the node continues where it stopped, with its look answered and its lease
    // long gone. It must neither act nor write for the run.
    let cont = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    assert!(cont.success());
    let finished = runs(&postgres)[0].clone();
    // Long enough for the node to find its lease gone, register again and sweep.
    std::thread::sleep(Duration::from_secs(LEASE_SECONDS + 2));
    let after = runs(&postgres)[0].clone();
    assert_eq!(after, finished, "the paused node wrote for the run");
    assert_eq!(finished.2, "succeeded", "{}", logs(&nodes));
    assert_eq!(finished.3, taker);
    let actions = target.actions();
    let calls = &actions["/act/paused"];
    assert_eq!(calls.len(), 1, "the action ran twice: {calls:?}");
    let fences_now = fences(&postgres);
    assert_eq!(calls[0].fence, Some(before[&taker]), "{calls:?}");
    assert_ne!(calls[0].fence, Some(before["a"]));
    assert!(
        fences_now["a"] > before["a"],
        "the continued node registered again under a new fencing number: {fences_now:?}"
    );
    // The continued node knows its run is gone; it is healthy and shows the run as done.
    let log = nodes[0].log();
    assert!(
        log.contains("lease lapsed") || log.contains("no longer owns the run"),
        "{log}"
    );
    wait_until("node a healthy again", Duration::from_secs(20), || {
        matches!(
            http("GET", &format!("{}/healthz", nodes[0].url()), &[], b""),
            Ok((200, _))
        )
    });
    let shown = run_list(&servers[0]);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["state"], "succeeded", "{shown:?}");
    // A figure, not a limit (timings are measured by scripts/ha-bench): the lease, the
    // grace and a sweep, about 4.5 s here.
    eprintln!("takeover after SIGSTOP: {taken_after:?}");
    servers.clear();
}

#[test]
fn while_the_database_is_down_webhooks_answer_503_and_the_nodes_carry_on_when_it_is_back() {
    let mut postgres = postgres();
    let target = Target::start(Duration::ZERO);
    let nodes = nodes(&postgres, &target);
    let servers: Vec<Server> = nodes.iter().map(Node::start).collect();
    // A run in progress when the database goes: its look is held.
    target.hold();
    for node in &nodes {
        assert_eq!(post_alert(&node.url(), "across").unwrap().0, 200);
    }
    wait_until("the run looking", Duration::from_secs(30), || {
        !target.waiting().is_empty()
    });
    postgres.crash().unwrap();
    // No node acknowledges an alert it cannot commit, and each says so on /healthz.
    for node in &nodes {
        let (status, body) = post_alert(&node.url(), "down").unwrap();
        assert_eq!(status, 503, "{}: {body}", node.name);
    }
    for node in &nodes {
        wait_until(
            &format!("node {} unhealthy", node.name),
            Duration::from_secs(10),
            || {
                matches!(
                    http("GET", &format!("{}/healthz", node.url()), &[], b""),
                    Ok((503, _))
                )
            },
        );
    }
    // Down for longer than a lease: every lease lapsed when the database returns.
    std::thread::sleep(Duration::from_secs(LEASE_SECONDS + 1));
    for node in &nodes {
        assert_eq!(post_alert(&node.url(), "down").unwrap().0, 503);
    }
    target.release();
    postgres.restart().unwrap();
    for node in &nodes {
        wait_until(
            &format!("node {} healthy again", node.name),
            Duration::from_secs(30),
            || {
                matches!(
                    http("GET", &format!("{}/healthz", node.url()), &[], b""),
                    Ok((200, _))
                )
            },
        );
    }
    // The same processes accept alerts again and run them; the run cut by the outage is
    // carried on (its look again, then its action) or handed to a human, never repeated.
    for node in &nodes {
        let (status, body) = post_alert(&node.url(), "after").unwrap();
        assert_eq!(status, 200, "{}: {body}\n{}", node.name, logs(&nodes));
    }
    wait_until("every run finished", Duration::from_secs(60), || {
        let runs = runs(&postgres);
        runs.len() == 2 && runs.iter().all(|run| run.5)
    });
    let runs = runs(&postgres);
    let actions = target.actions();
    assert_eq!(runs[1].1, "after");
    assert_eq!(runs[1].2, "succeeded", "{runs:?}\n{}", logs(&nodes));
    assert_eq!(actions["/act/after"].len(), 1);
    assert_eq!(runs[0].1, "across");
    assert!(
        runs[0].2 == "succeeded" || runs[0].2 == "interrupted",
        "{runs:?}"
    );
    assert!(actions.get("/act/across").map_or(0, Vec::len) <= 1);
    if runs[0].2 == "succeeded" {
        assert_eq!(actions["/act/across"].len(), 1);
    }
    // The alert refused while the database was down was never stored.
    assert_eq!(
        count(
            &postgres,
            "SELECT COUNT(*) FROM alerts WHERE fingerprint = 'down'"
        ),
        0
    );
    drop(servers);
}

/// Alerts posted to every node (fan-out) from a few threads until told to stop: the
/// fingerprints at least one node acknowledged with 2xx.
#[derive(Default)]
struct Load {
    acknowledged: Mutex<Vec<String>>,
    stop: AtomicBool,
}

fn fan_out_load(urls: Vec<String>, load: Arc<Load>) -> Vec<std::thread::JoinHandle<()>> {
    (0..2)
        .map(|thread| {
            let urls = urls.clone();
            let load = Arc::clone(&load);
            std::thread::spawn(move || {
                let mut index = 0;
                while !load.stop.load(Ordering::SeqCst) {
                    let fingerprint = format!("t{thread}n{index}");
                    index += 1;
                    let mut acknowledged = false;
                    for url in &urls {
                        if let Ok((200, _)) = post_alert(url, &fingerprint) {
                            acknowledged = true;
                        }
                    }
                    if acknowledged {
                        load.acknowledged.lock().unwrap().push(fingerprint);
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect()
}

/// A small deterministic generator, seeded from the clock and printed, so that a failing
/// sequence of kills can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

#[test]
fn kill_9_of_a_random_node_every_few_seconds_under_load_loses_nothing_and_repeats_no_action() {
    let postgres = postgres();
    let target = Target::start(Duration::from_millis(30));
    let nodes = nodes(&postgres, &target);
    let mut servers: Vec<Option<Server>> = nodes.iter().map(|node| Some(node.start())).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill sequence seed: {seed}");
    let mut random = Lcg(seed);
    let load = Arc::new(Load::default());
    let threads = fan_out_load(nodes.iter().map(Node::url).collect(), Arc::clone(&load));
    let began = Instant::now();
    let mut killed: Option<usize> = None;
    let mut kills = 0;
    while began.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(5));
        // The node killed last time comes back; another (or the same) dies.
        if let Some(index) = killed.take() {
            servers[index] = Some(nodes[index].start());
        }
        let victim = random.next(nodes.len());
        if let Some(mut server) = servers[victim].take() {
            server.child.kill().unwrap();
            server.child.wait().unwrap();
            kills += 1;
        }
        killed = Some(victim);
    }
    load.stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    let acknowledged: Vec<String> = load.acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "the load was too small to mean anything: {}",
        acknowledged.len()
    );
    assert!(kills >= 10, "{kills} kills");
    // The node killed last stays dead: the others take over its runs and its alerts.
    let dead = killed.unwrap();
    wait_until(
        "every acknowledged alert run and every run finished",
        Duration::from_secs(90),
        || {
            let runs = runs(&postgres);
            let started: BTreeSet<&String> = runs.iter().map(|run| &run.1).collect();
            runs.iter().all(|run| run.5)
                && acknowledged
                    .iter()
                    .all(|fingerprint| started.contains(fingerprint))
        },
    );
    let runs = runs(&postgres);
    // No acknowledged alert lost.
    let stored: BTreeSet<String> = postgres
        .psql("SELECT DISTINCT fingerprint FROM alerts")
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|fingerprint| !stored.contains(*fingerprint))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // One run per episode, no action twice, and every action under its run's fence at the
    // time: the number of the node that owned the run when it started the action.
    let mut per_episode: BTreeMap<&String, usize> = BTreeMap::new();
    for run in &runs {
        *per_episode.entry(&run.1).or_default() += 1;
    }
    let twice: Vec<_> = per_episode
        .iter()
        .filter(|(_, count)| **count > 1)
        .collect();
    assert!(twice.is_empty(), "episodes run twice: {twice:?}");
    let actions = target.actions();
    let repeated: Vec<_> = actions
        .iter()
        .filter(|(_, calls)| calls.len() > 1)
        .collect();
    assert!(repeated.is_empty(), "actions performed twice: {repeated:?}");
    let states: BTreeSet<&String> = runs.iter().map(|run| &run.2).collect();
    for state in &states {
        assert!(
            *state == "succeeded" || *state == "interrupted",
            "{states:?}\n{}",
            logs(&nodes)
        );
    }
    for run in runs.iter().filter(|run| run.2 == "succeeded") {
        let calls = actions.get(&format!("/act/{}", run.1));
        assert_eq!(calls.map(Vec::len), Some(1), "{run:?}");
    }
    // Runs were taken over: some finished under another node than the one that accepted
    // their alert, and none is owned by the dead node.
    let dead_name = &nodes[dead].name;
    let taken = count(
        &postgres,
        "SELECT COUNT(*) FROM runs r JOIN alerts a ON a.id = r.alert_id WHERE a.node IS DISTINCT FROM r.owner",
    );
    assert!(taken > 0, "no run was taken over in {kills} kills");
    let unfinished_of_dead = count(
        &postgres,
        &format!("SELECT COUNT(*) FROM runs WHERE owner = '{dead_name}' AND finished_at IS NULL"),
    );
    assert_eq!(unfinished_of_dead, 0);
    eprintln!(
        "{} alerts acknowledged, {} runs, {} taken over, {kills} kills, states {:?}",
        acknowledged.len(),
        runs.len(),
        taken,
        states
    );
    drop(servers);
}

/// A run that waits for a human before it acts.
const APPROVAL_PLAN: &str = r##"import std.{http}

rule gated {
  on alert "Gated"
  run gated(fingerprint: alert.fingerprint)
  cooldown 1m per alert.fingerprint
}

playbook gated(fingerprint: String) {
  task act = http.post(url: "http://127.0.0.1:TARGET/act/{fingerprint}") {
    approval within 1h
  }
}
"##;

fn post_to(node: &Node, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = http(
        "POST",
        &format!("{}{path}", node.url()),
        &[],
        body.as_bytes(),
    )
    .unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[test]
fn approvals_pauses_and_cancels_work_on_any_node_and_follow_a_takeover() {
    let postgres = postgres();
    let target = Target::start(Duration::ZERO);
    // A lease longer than the 5 s a node waits for another's answer, so that the frozen
    // owner is seen not to answer before its run moves (a request made to a node that then
    // loses its run is performed by the node that takes it over).
    let nodes = nodes_with_lease(&postgres, &target, 10);
    for node in &nodes {
        write_plan(
            &node.dir,
            &APPROVAL_PLAN.replace("TARGET", &target.port.to_string()),
        );
    }
    let mut servers: Vec<Server> = nodes.iter().map(Node::start).collect();
    let payload = alertmanager_payload("Gated", "api", "gated1", "firing", "2026-12-04T12:00:00Z");
    let (status, body) = http(
        "POST",
        &format!("{}/webhook/alertmanager", nodes[0].url()),
        &[],
        payload.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let id = servers[1].wait_for_runs("the run", |runs| runs.len() == 1)[0]["id"]
        .as_i64()
        .unwrap();
    // Every node shows what the run waits for, though node a runs it.
    for server in &servers[1..] {
        server.wait_for_detail(&id.to_string(), "the approval shown", |detail| {
            detail["awaiting_approval"] == serde_json::json!(["act"])
        });
    }
    // Pause and resume on b, through a.
    let (status, body) = post_to(&nodes[1], &format!("/api/runs/{id}/pause"), "{}");
    assert_eq!(
        (status, &body["state"]),
        (200, &serde_json::json!("paused")),
        "{body}"
    );
    assert_eq!(runs(&postgres)[0].2, "paused");
    let (status, body) = post_to(&nodes[2], &format!("/api/runs/{id}/resume"), "{}");
    assert_eq!(status, 200, "{body}");
    // A task that does not wait is refused by the node that runs the run, and the refusal
    // comes back as it would from that node.
    let (status, body) = post_to(
        &nodes[1],
        &format!("/api/runs/{id}/approve"),
        r#"{"task": "nothing"}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("named `nothing`"),
        "{body}"
    );
    let (status, _) = post_to(&nodes[1], "/api/runs/999/approve", "{}");
    assert_eq!(status, 404);

    // The owner freezes: a request to it is not answered, and says so, and nothing is done.
    assert_eq!(runs(&postgres)[0].3, "a", "{}", logs(&nodes));
    let pid = servers[0].child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, body) = post_to(&nodes[1], &format!("/api/runs/{id}/approve"), "{}");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("did not answer"),
        "{body}"
    );
    // Taken over by b or c, the run waits for its approval there, and any node passes it on.
    wait_until("the run taken over", Duration::from_secs(30), || {
        runs(&postgres)[0].3 != "a"
    });
    let taker = runs(&postgres)[0].3.clone();
    let asked = if taker == "b" { &nodes[2] } else { &nodes[1] };
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = post_to(asked, &format!("/api/runs/{id}/approve"), "{}");
        if status == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "{status}: {body}\n{}",
            logs(&nodes)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body["approved"], serde_json::json!(["act"]), "{body}");
    wait_until("the run finished", Duration::from_secs(20), || {
        runs(&postgres)[0].5
    });
    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = runs(&postgres)[0].clone();
    assert_eq!(
        (run.2.as_str(), run.3.as_str()),
        ("succeeded", taker.as_str())
    );
    let actions = target.actions();
    assert_eq!(actions["/act/gated1"].len(), 1, "{actions:?}");
    assert_eq!(actions["/act/gated1"][0].fence, Some(run.4));
    // The request the frozen node never answered was given up, not performed later; the
    // audit log, on every node, says who asked what and how it ended.
    assert_eq!(
        count(
            &postgres,
            "SELECT COUNT(*) FROM controls WHERE state = 'expired'"
        ),
        1
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(target.actions()["/act/gated1"].len(), 1);
    let audit = servers[0].json(&format!("/api/audit?run={id}"));
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let outcomes: Vec<(String, String)> = entries
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap_or_default().to_string(),
                entry["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&("pause".into(), "done".into()))
            && outcomes.contains(&("approve".into(), "refused".into()))
            && outcomes.contains(&("approve".into(), "done".into())),
        "{audit:#}"
    );
    servers.clear();
}

#[test]
fn a_run_whose_end_could_not_be_written_in_a_short_outage_is_resumed_by_its_node() {
    let mut postgres = postgres();
    let target = Target::start(Duration::ZERO);
    // A lease longer than the outage: nobody's lease lapses, so the run stays node a's.
    let nodes = nodes_with_lease(&postgres, &target, 10);
    let servers: Vec<Server> = nodes.iter().map(Node::start).collect();
    target.hold();
    assert_eq!(post_alert(&nodes[0].url(), "short").unwrap().0, 200);
    wait_until("the run looking", Duration::from_secs(30), || {
        !target.waiting().is_empty()
    });
    let before = fences(&postgres);
    postgres.crash().unwrap();
    // The look is answered while the database is down: the run cannot write its action's
    // start, so it stops, and its end cannot be written either.
    target.release();
    wait_until(
        "the run stopped without its end written",
        Duration::from_secs(10),
        || {
            nodes[0]
                .log()
                .contains("could not journal the end of the run")
        },
    );
    assert!(target.actions().is_empty(), "an action started unjournaled");
    postgres.restart().unwrap();
    wait_until("the run finished", Duration::from_secs(30), || {
        runs(&postgres).first().is_some_and(|run| run.5)
    });
    let run = runs(&postgres)[0].clone();
    assert_eq!(
        (run.2.as_str(), run.3.as_str()),
        ("succeeded", "a"),
        "{}",
        logs(&nodes)
    );
    assert_eq!(
        fences(&postgres),
        before,
        "a lease lapsed: the outage was meant to be shorter"
    );
    assert!(
        nodes[0]
            .log()
            .contains("resumed: its end could not be written"),
        "{}",
        nodes[0].log()
    );
    assert_eq!(target.actions()["/act/short"].len(), 1);
    drop(servers);
}

/// The report of the run of episode `fingerprint`, from the database.
fn report_of(postgres: &RealPostgres, fingerprint: &str) -> String {
    postgres
        .psql(&format!(
            "SELECT COALESCE(report, '') FROM runs WHERE fingerprint = '{fingerprint}'"
        ))
        .unwrap()
}

#[test]
fn the_kill_switch_and_the_action_rate_limit_hold_across_nodes() {
    let postgres = postgres();
    let target = Target::start(Duration::ZERO);
    let mut nodes = nodes(&postgres, &target);
    for node in &mut nodes {
        node.config = node
            .config
            .replace("actions_per_minute = 1000000", "actions_per_minute = 2");
    }
    let servers: Vec<Server> = nodes.iter().map(Node::start).collect();

    // The kill switch turned on at node a holds on node c.
    let (status, body) = post_to(&nodes[0], "/api/kill-switch", r#"{"on": true}"#);
    assert_eq!(status, 200, "{body}");
    wait_until(
        "node c to see the kill switch on",
        Duration::from_secs(10),
        || servers[2].json("/api/kill-switch")["on"] == serde_json::json!(true),
    );
    assert_eq!(post_alert(&nodes[2].url(), "killed").unwrap().0, 200);
    wait_until(
        "node c to process the alert",
        Duration::from_secs(20),
        || {
            count(
                &postgres,
                "SELECT COUNT(*) FROM alerts WHERE fingerprint = 'killed' AND NOT processed",
            ) == 0
                && count(
                    &postgres,
                    "SELECT COUNT(*) FROM runs WHERE fingerprint = 'killed' AND finished_at IS NULL",
                ) == 0
        },
    );
    assert!(
        !target.actions().contains_key("/act/killed"),
        "an action ran with the kill switch on: {}",
        logs(&nodes)
    );
    // Turned off at node b, it is off on every node (node a among them).
    let (status, body) = post_to(&nodes[1], "/api/kill-switch", r#"{"on": false}"#);
    assert_eq!(status, 200, "{body}");
    wait_until(
        "every node to see the kill switch off",
        Duration::from_secs(10),
        || {
            servers
                .iter()
                .all(|server| server.json("/api/kill-switch")["on"] == serde_json::json!(false))
        },
    );

    // Two actions a minute across the cluster: one on each of two nodes, and the third
    // node's is refused.
    for (node, fingerprint) in nodes.iter().zip(["first", "second", "third"]) {
        assert_eq!(post_alert(&node.url(), fingerprint).unwrap().0, 200);
        wait_until(
            &format!("the run of {fingerprint} to finish"),
            Duration::from_secs(20),
            || {
                count(
                    &postgres,
                    &format!(
                        "SELECT COUNT(*) FROM runs WHERE fingerprint = '{fingerprint}' AND finished_at IS NOT NULL"
                    ),
                ) == 1
            },
        );
    }
    let actions = target.actions();
    assert!(
        actions.contains_key("/act/first") && actions.contains_key("/act/second"),
        "{actions:?}\n{}",
        logs(&nodes)
    );
    assert!(!actions.contains_key("/act/third"), "{actions:?}");
    let third = report_of(&postgres, "third");
    assert!(
        third.contains("rate limited") && third.contains("across the cluster"),
        "{third}"
    );
    drop(servers);
}

/// A playbook that scales the deployment its alert names up by one, reverted 5 s later.
const SCALE_PLAN: &str = r##"import std.{k8s}

/// Scales the deployment named by the fingerprint up by one for five seconds.
rule hot {
  on alert "Hot"
  run scale_up(deployment: alert.fingerprint)
  concurrency 1000 per alert.fingerprint
}

playbook scale_up(deployment: String) {
  task up = k8s.scale(deployment: deployment, namespace: "shop", by: 1, max: 5) {
    revert after 5s
  }
}
"##;

#[test]
fn the_revert_timer_of_a_node_killed_after_scaling_fires_once_on_another_node() {
    let postgres = postgres();
    let kubernetes = super::kubernetes::Cluster::start();
    kubernetes.api().add_deployment("shop", "web", Some(2));
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let mut node = Node::with_plan(name, &postgres, SCALE_PLAN, LEASE_SECONDS);
            std::fs::write(node.dir.join("kubeconfig"), kubernetes.api().kubeconfig()).unwrap();
            node.config
                .push_str("[kubernetes]\nkubeconfig = \"kubeconfig\"\ntimeout = \"5s\"\n");
            node
        })
        .collect();
    let mut servers: Vec<Option<Server>> = nodes.iter().map(|node| Some(node.start())).collect();
    let writes = || {
        kubernetes
            .api()
            .requests()
            .iter()
            .filter(|request| request.method != "GET" && request.path.contains("/deployments/web"))
            .count()
    };

    assert_eq!(post_alert(&nodes[0].url(), "web").unwrap().0, 200);
    wait_until(
        "the scale and its revert scheduled",
        Duration::from_secs(20),
        || {
            count(
                &postgres,
                "SELECT COUNT(*) FROM reverts WHERE state = 'pending'",
            ) == 1
        },
    );
    assert_eq!(kubernetes.api().replicas("shop", "web"), Some(3));
    // kill -9 of the node whose timer holds the revert, before it is due.
    servers[0] = None;
    wait_until(
        "the revert performed by another node",
        Duration::from_secs(30),
        || {
            count(
                &postgres,
                "SELECT COUNT(*) FROM reverts WHERE state = 'reverted'",
            ) == 1
        },
    );
    assert_eq!(
        kubernetes.api().replicas("shop", "web"),
        Some(2),
        "{}",
        logs(&nodes)
    );
    // Once: the scale and its revert, and nothing more from the nodes still timing it.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(writes(), 2, "{:?}", kubernetes.api().requests());
    assert_eq!(
        count(&postgres, "SELECT COUNT(*) FROM reverts"),
        1,
        "{}",
        logs(&nodes)
    );
    servers.clear();
}
