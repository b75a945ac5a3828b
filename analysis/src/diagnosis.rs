//! The dependency walk's reasoning: from the alerted service, follow downstream
//! dependencies while they are anomalous and name the deepest anomalous service whose
//! anomaly its own dependencies do not explain.
//!
//! What is guaranteed (docs/diagnose.md describes the rule for users):
//! - every check of every service is judged against that service's own baseline by
//!   [`crate::anomaly::score`], never against a fixed threshold alone;
//! - the walk starts at the alerted service and enters a dependency when the dependency is
//!   anomalous, or when traces say time is spent below it (a service further down with an
//!   abnormal self time): a slow callee behind a healthy-looking caller is still reached;
//! - a service's latency or errors are *explained* when a deeper anomalous service is
//!   reached through it and its own self time (time spent in its own spans) is not
//!   abnormal; CPU, memory, connection saturation, database errors and an abnormal self
//!   time are never explained by dependencies;
//! - the root cause is the best-ranked unexplained anomalous service: candidates with
//!   evidence of at least two kinds (metric, span, log) first, then the deepest, then the
//!   strongest; the top three are returned for inspection;
//! - nothing abnormal on the walk gives no root cause (`inconclusive`), never a guess;
//! - a cause with fewer than two kinds of evidence has low or medium confidence and the
//!   summary says so;
//! - the same input gives the same output (ordered maps, no clock, no randomness).

use crate::anomaly::{self, Rule, Score};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// The most services one walk considers; the rest of a huge graph is left out (and said).
pub const MAX_SERVICES: usize = 1_000;

/// The deepest walk asked for is cut to this many hops.
pub const MAX_DEPTH: usize = 16;

/// The share of a p99 latency increase a service's own spans must account for to call the
/// service slow in itself.
pub const SELF_SHARE: f64 = 0.25;

/// How many ranked candidates a diagnosis keeps.
pub const CANDIDATES: usize = 3;

/// A health check of a service or a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// p99 latency, in seconds.
    LatencyP99,
    /// Share of requests that failed (0..=1).
    ErrorRate,
    /// CPU used as a share of the CPU limit.
    Cpu,
    /// Memory working set as a share of the memory limit.
    Memory,
    /// Database connections in use as a share of the maximum.
    Connections,
    /// Database errors (rollbacks, deadlocks, refused connections) per second.
    DbErrors,
}

impl Check {
    pub const ALL: [Check; 6] = [
        Check::LatencyP99,
        Check::ErrorRate,
        Check::Cpu,
        Check::Memory,
        Check::Connections,
        Check::DbErrors,
    ];

    /// The name used in evidence and in `[diagnose]`.
    pub fn name(self) -> &'static str {
        match self {
            Check::LatencyP99 => "latency_p99",
            Check::ErrorRate => "error_rate",
            Check::Cpu => "cpu",
            Check::Memory => "memory",
            Check::Connections => "connections",
            Check::DbErrors => "db_errors",
        }
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|check| check.name() == name)
    }

    /// The default scoring rule of the check.
    pub fn rule(self) -> Rule {
        match self {
            // Five milliseconds is below what anyone pages for.
            Check::LatencyP99 => Rule::up(0.005),
            // One percentage point of failed requests.
            Check::ErrorRate => Rule::up(0.01),
            Check::Cpu | Check::Memory | Check::Connections => Rule::up(0.05).with_limit(0.9),
            // One error every ten seconds.
            Check::DbErrors => Rule::up(0.1),
        }
    }

    /// Whether an abnormal value is the service's own problem whatever its dependencies do.
    fn intrinsic(self) -> bool {
        matches!(
            self,
            Check::Cpu | Check::Memory | Check::Connections | Check::DbErrors
        )
    }

    /// A value with its unit.
    pub fn format(self, value: f64) -> String {
        match self {
            Check::LatencyP99 => format_ms(value * 1000.0),
            Check::ErrorRate => format!("{:.1}%", value * 100.0),
            Check::Cpu | Check::Memory => format!("{:.0}% of limit", value * 100.0),
            Check::Connections => format!("{:.0}% of max", value * 100.0),
            Check::DbErrors => format!("{value:.2}/s"),
        }
    }
}

fn format_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// What a node of the graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Service,
    Database,
    Cache,
}

/// A metric's samples before `since` (the baseline) and from `since` on (the current
/// window), each in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Window {
    pub baseline: Vec<f64>,
    pub current: Vec<f64>,
}

/// The p99 time spent in a service's own spans (children excluded), in the current window
/// and, when known, in the baseline window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfTime {
    pub baseline_ms: Option<f64>,
    pub current_ms: f64,
}

/// Something the logs said, already judged against their own baseline (a new or spiking
/// template, say).
#[derive(Debug, Clone, PartialEq)]
pub struct LogFinding {
    pub text: String,
}

/// Everything known about one service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceData {
    pub kind: Kind,
    pub metrics: BTreeMap<Check, Window>,
    pub self_time: Option<SelfTime>,
    pub logs: Vec<LogFinding>,
}

/// The question: which service is behind the alert on `alerted`?
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Input {
    pub alerted: String,
    /// Hops walked downstream from the alerted service.
    pub depth: usize,
    /// Each service and the services it calls.
    pub calls: BTreeMap<String, BTreeSet<String>>,
    pub services: BTreeMap<String, ServiceData>,
}

/// How self times are judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Scoring rules by check; a check not here uses [`Check::rule`].
    pub rules: BTreeMap<Check, Rule>,
    /// A self time is abnormal when it reaches this multiple of its baseline...
    pub self_time_ratio: f64,
    /// ...and grew by at least this many milliseconds.
    pub self_time_floor_ms: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            rules: BTreeMap::new(),
            self_time_ratio: 1.5,
            self_time_floor_ms: 10.0,
        }
    }
}

impl Settings {
    fn rule(&self, check: Check) -> Rule {
        self.rules
            .get(&check)
            .copied()
            .unwrap_or_else(|| check.rule())
    }
}

/// The kind of a piece of evidence; a cause needs two different kinds to be confident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A metric against its baseline.
    Metric,
    /// Trace spans: time spent in the service's own spans.
    Span,
    /// A log finding.
    Log,
}

/// One thing checked, with what was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub service: String,
    /// `latency_p99`, `error_rate`, `cpu`, `memory`, `connections`, `db_errors`, `span`
    /// or `log`.
    pub check: String,
    pub kind: EvidenceKind,
    /// The measured value with its unit, and its baseline.
    pub value: String,
    /// Robust deviations from the baseline, when a metric.
    pub score: Option<f64>,
    pub abnormal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// A service that could be the root cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub service: String,
    /// Hops from the alerted service.
    pub depth: usize,
    /// The sum of its abnormal checks' scores, each capped, for ranking.
    pub strength: f64,
    /// Distinct kinds of abnormal evidence.
    pub kinds: usize,
    pub confidence: Confidence,
    /// Its abnormal evidence.
    pub evidence: Vec<Evidence>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// None: inconclusive, nothing abnormal was found on the walk.
    pub root_cause: Option<String>,
    pub confidence: Option<Confidence>,
    /// The best candidates, best first (at most [`CANDIDATES`]).
    pub candidates: Vec<Candidate>,
    /// Services visited, in order.
    pub path: Vec<String>,
    /// Every check made on the path, in path order.
    pub evidence: Vec<Evidence>,
    pub summary: String,
}

/// What was found for one service.
struct Findings {
    metrics: Vec<(Check, Score)>,
    /// Current and baseline self time, and whether it is abnormal.
    self_time: Option<(SelfTime, bool)>,
    logs: usize,
}

impl Findings {
    fn abnormal(&self, check: Check) -> bool {
        self.metrics
            .iter()
            .any(|(found, score)| *found == check && score.abnormal)
    }

    fn self_time_abnormal(&self) -> bool {
        matches!(self.self_time, Some((_, true)))
    }

    fn metric_abnormal(&self) -> bool {
        self.metrics.iter().any(|(_, score)| score.abnormal)
    }

    /// A metric is abnormal; a self time alone counts only where no metric answered (one
    /// window's p99 self time is a single, noisy number).
    fn anomalous(&self) -> bool {
        self.metric_abnormal() || (self.metrics.is_empty() && self.self_time_abnormal())
    }

    /// An abnormal self time that accounts for the service's own slowness: it corroborates
    /// a latency, CPU or memory anomaly, never an error ratio.
    ///
    /// When the service's p99 latency is abnormal, its own spans must also account for a
    /// fair share ([`SELF_SHARE`]) of the latency it gained: a caller whose self time grew
    /// by 30 ms while its p99 grew by 500 ms is waiting on someone else.
    fn slow_itself(&self) -> bool {
        let Some((time, true)) = self.self_time else {
            return false;
        };
        if self.metrics.is_empty() {
            return true;
        }
        let resources = [
            Check::Cpu,
            Check::Memory,
            Check::Connections,
            Check::DbErrors,
        ]
        .into_iter()
        .any(|check| self.abnormal(check));
        let latency = self
            .metrics
            .iter()
            .find(|(check, score)| *check == Check::LatencyP99 && score.abnormal);
        match latency {
            Some((_, score)) => {
                let gained_ms = (score.level - score.baseline.median) * 1000.0;
                let own_ms = time.current_ms - time.baseline_ms.unwrap_or(time.current_ms);
                resources || own_ms >= SELF_SHARE * gained_ms
            }
            None => resources,
        }
    }

    fn intrinsic(&self) -> bool {
        self.slow_itself()
            || self
                .metrics
                .iter()
                .any(|(check, score)| check.intrinsic() && score.abnormal)
    }

    fn strength(&self) -> f64 {
        let metrics: f64 = self
            .metrics
            .iter()
            .filter(|(_, score)| score.abnormal)
            .map(|(_, score)| score.score.clamp(0.0, 20.0))
            .sum();
        let span = if self.slow_itself() {
            self.span_strength()
        } else {
            0.0
        };
        metrics + span
    }

    /// An abnormal self time's weight in the ranking: four per multiple of its baseline.
    fn span_strength(&self) -> f64 {
        match self.self_time {
            Some((time, true)) => time
                .baseline_ms
                .filter(|base| *base > 0.0)
                .map_or(4.0, |base| (4.0 * time.current_ms / base).min(20.0)),
            _ => 0.0,
        }
    }

    fn kinds(&self) -> usize {
        usize::from(self.metric_abnormal())
            + usize::from(self.slow_itself())
            + usize::from(self.logs > 0)
    }
}

fn judge(data: &ServiceData, settings: &Settings) -> Findings {
    let metrics = data
        .metrics
        .iter()
        .filter_map(|(check, window)| {
            anomaly::score(&window.baseline, &window.current, &settings.rule(*check))
                .map(|score| (*check, score))
        })
        .collect();
    let self_time = data.self_time.map(|time| {
        let abnormal = time.baseline_ms.is_some_and(|base| {
            time.current_ms >= base * settings.self_time_ratio
                && time.current_ms - base >= settings.self_time_floor_ms
        });
        (time, abnormal)
    });
    Findings {
        metrics,
        self_time,
        logs: data.logs.len(),
    }
}

/// The services within `depth` hops of `start`, with their hop counts, in breadth-first
/// order (callees in name order).
fn reachable(
    calls: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    depth: usize,
) -> Vec<(String, usize)> {
    let mut seen = BTreeSet::from([start.to_string()]);
    let mut order = vec![(start.to_string(), 0)];
    let mut queue = VecDeque::from([(start.to_string(), 0)]);
    while let Some((service, hops)) = queue.pop_front() {
        if hops >= depth || order.len() >= MAX_SERVICES {
            continue;
        }
        for callee in calls.get(&service).into_iter().flatten() {
            if order.len() < MAX_SERVICES && seen.insert(callee.clone()) {
                order.push((callee.clone(), hops + 1));
                queue.push_back((callee.clone(), hops + 1));
            }
        }
    }
    order
}

/// Runs the walk.
pub fn diagnose(input: &Input, settings: &Settings) -> Diagnosis {
    let depth = input.depth.min(MAX_DEPTH);
    let reach = reachable(&input.calls, &input.alerted, depth);
    let hops: BTreeMap<&str, usize> = reach
        .iter()
        .map(|(service, hops)| (service.as_str(), *hops))
        .collect();
    let empty = ServiceData::default();
    let findings: BTreeMap<&str, Findings> = reach
        .iter()
        .map(|(service, _)| {
            let data = input.services.get(service).unwrap_or(&empty);
            (service.as_str(), judge(data, settings))
        })
        .collect();
    let anomalous = |service: &str| findings.get(service).is_some_and(Findings::anomalous);
    let callees = |service: &str| -> Vec<&str> {
        input
            .calls
            .get(service)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|callee| hops.contains_key(callee))
            .collect()
    };
    // Services below which traces show abnormal time: a healthy-looking caller of such a
    // service is walked through.
    let below_slow = |from: &str| -> bool {
        let mut seen = BTreeSet::from([from]);
        let mut queue = VecDeque::from([from]);
        while let Some(service) = queue.pop_front() {
            if findings.get(service).is_some_and(Findings::slow_itself) {
                return true;
            }
            for callee in callees(service) {
                if seen.insert(callee) {
                    queue.push_back(callee);
                }
            }
        }
        false
    };

    // The walk: breadth first from the alerted service into anomalous dependencies, into
    // a dependency whose own spans got slower under a caller whose latency is abnormal
    // (a database whose only sign is its client spans), and through healthy-looking
    // services that lead to a service slow in its own spans.
    let mut path: Vec<&str> = vec![input.alerted.as_str()];
    let mut walked = BTreeSet::from([input.alerted.as_str()]);
    let mut span_only: BTreeSet<&str> = BTreeSet::new();
    let mut queue = VecDeque::from([input.alerted.as_str()]);
    // Edges taken, to find what a service's anomaly can be explained by.
    let mut below: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut looked_through: BTreeSet<&str> = BTreeSet::new();
    loop {
        while let Some(service) = queue.pop_front() {
            let caller_slow = findings
                .get(service)
                .is_some_and(|found| found.abnormal(Check::LatencyP99));
            for callee in callees(service) {
                let slow_spans = caller_slow
                    && findings
                        .get(callee)
                        .is_some_and(|found| found.self_time_abnormal() && !found.anomalous());
                if !(anomalous(callee) || slow_spans || below_slow(callee)) {
                    continue;
                }
                if slow_spans {
                    span_only.insert(callee);
                }
                below.entry(service).or_default().push(callee);
                if walked.insert(callee) {
                    path.push(callee);
                    queue.push_back(callee);
                }
            }
        }
        // A service slow with nothing slow found below it and not slow in its own spans:
        // look through its healthy-looking callees for a slow service further down (a
        // slow callee behind a caller whose own metrics hide it, without traces to say).
        let mut found_below: Vec<Vec<&str>> = Vec::new();
        for service in &path {
            let unexplained_slowness = findings.get(service).is_some_and(|found| {
                found.abnormal(Check::LatencyP99) && !found.slow_itself() && !found.intrinsic()
            });
            if !unexplained_slowness
                || looked_through.contains(service)
                || reaches_any(&below, service, &|callee| {
                    anomalous(callee) || span_only.contains(callee)
                })
            {
                continue;
            }
            looked_through.insert(service);
            // Slow by its p99, or by its own spans (a database has no p99 of its own).
            if let Some(chain) = slow_below(service, &callees, &|candidate| {
                findings.get(candidate).is_some_and(|found| {
                    found.abnormal(Check::LatencyP99) || found.self_time_abnormal()
                })
            }) {
                found_below.push(chain);
            }
        }
        if found_below.is_empty() {
            break;
        }
        for chain in found_below {
            if let Some(last) = chain.last()
                && !anomalous(last)
            {
                span_only.insert(last);
            }
            for pair in chain.windows(2) {
                let (Some(caller), Some(callee)) = (pair.first(), pair.get(1)) else {
                    continue;
                };
                below.entry(caller).or_default().push(callee);
                if walked.insert(callee) {
                    path.push(callee);
                    queue.push_back(callee);
                }
            }
        }
    }
    let counts = |service: &str| anomalous(service) || span_only.contains(service);
    // Whether `to` is reached from `from` over walked edges.
    let reaches = |from: &str, to: &str| -> bool {
        let mut seen = BTreeSet::from([from]);
        let mut queue = VecDeque::from([from]);
        while let Some(current) = queue.pop_front() {
            for callee in below.get(current).into_iter().flatten() {
                if *callee == to {
                    return true;
                }
                if seen.insert(callee) {
                    queue.push_back(callee);
                }
            }
        }
        false
    };
    // Whether an anomalous service is reached through `service`'s walked edges; one that
    // calls `service` back (a cycle) explains nothing.
    let anomalous_below = |service: &str| -> bool {
        let mut seen = BTreeSet::from([service]);
        let mut queue = VecDeque::from([service]);
        while let Some(current) = queue.pop_front() {
            for callee in below.get(current).into_iter().flatten() {
                if !seen.insert(callee) {
                    continue;
                }
                if counts(callee) && !reaches(callee, service) {
                    return true;
                }
                queue.push_back(callee);
            }
        }
        false
    };

    let mut candidates: Vec<Candidate> = Vec::new();
    for service in &path {
        let Some(found) = findings.get(service) else {
            continue;
        };
        let by_spans = span_only.contains(service);
        if !(found.anomalous() || by_spans) {
            continue;
        }
        let symptoms = found.abnormal(Check::LatencyP99) || found.abnormal(Check::ErrorRate);
        let explained = !(found.intrinsic() || by_spans) && (!symptoms || anomalous_below(service));
        if explained {
            continue;
        }
        let kinds = found.kinds() + usize::from(by_spans);
        let strength = found.strength() + if by_spans { found.span_strength() } else { 0.0 };
        let confidence = if kinds >= 2 {
            Confidence::High
        } else if strength >= 12.0 {
            Confidence::Medium
        } else {
            Confidence::Low
        };
        candidates.push(Candidate {
            service: (*service).to_string(),
            depth: hops.get(service).copied().unwrap_or(0),
            strength,
            kinds,
            confidence,
            evidence: evidence_of(service, found, input)
                .into_iter()
                .filter(|evidence| evidence.abnormal)
                .collect(),
        });
    }
    candidates.sort_by(|a, b| {
        (b.kinds.min(2), b.depth)
            .cmp(&(a.kinds.min(2), a.depth))
            .then(b.strength.total_cmp(&a.strength))
            .then(a.service.cmp(&b.service))
    });
    candidates.truncate(CANDIDATES);

    let evidence: Vec<Evidence> = path
        .iter()
        .filter_map(|service| {
            findings
                .get(service)
                .map(|found| evidence_of(service, found, input))
        })
        .flatten()
        .collect();
    let path: Vec<String> = path.iter().map(|service| (*service).to_string()).collect();
    let checked = findings
        .values()
        .filter(|found| !found.metrics.is_empty() || found.self_time.is_some())
        .count();
    // Anomalous services on the path that are not candidates: what the cause explains.
    let explained: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .filter(|service| counts(service))
        .filter(|service| !candidates.iter().any(|c| c.service == *service))
        .collect();
    let summary = summarize(input, &path, &candidates, &explained, checked, reach.len());
    let best = candidates.first();
    Diagnosis {
        root_cause: best.map(|candidate| candidate.service.clone()),
        confidence: best.map(|candidate| candidate.confidence),
        candidates,
        path,
        evidence,
        summary,
    }
}

/// Whether a service for which `counts` holds is reached from `from` over walked edges.
fn reaches_any<'a>(
    below: &BTreeMap<&'a str, Vec<&'a str>>,
    from: &'a str,
    counts: &dyn Fn(&str) -> bool,
) -> bool {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(current) = queue.pop_front() {
        for callee in below.get(current).into_iter().flatten() {
            if !seen.insert(callee) {
                continue;
            }
            if counts(callee) {
                return true;
            }
            queue.push_back(callee);
        }
    }
    false
}

/// The shortest chain of calls from `from` to the nearest service for which `slow` holds,
/// breadth first in name order; none when there is none.
fn slow_below<'a>(
    from: &'a str,
    callees: &dyn Fn(&'a str) -> Vec<&'a str>,
    slow: &dyn Fn(&str) -> bool,
) -> Option<Vec<&'a str>> {
    let mut parent: BTreeMap<&'a str, &'a str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(current) = queue.pop_front() {
        for callee in callees(current) {
            if callee == from || parent.contains_key(callee) {
                continue;
            }
            parent.insert(callee, current);
            if slow(callee) {
                let mut chain = vec![callee];
                let mut at = callee;
                while let Some(&up) = parent.get(at) {
                    chain.push(up);
                    if up == from {
                        break;
                    }
                    at = up;
                }
                chain.reverse();
                return Some(chain);
            }
            queue.push_back(callee);
        }
    }
    None
}

fn evidence_of(service: &str, found: &Findings, input: &Input) -> Vec<Evidence> {
    let mut out: Vec<Evidence> = found
        .metrics
        .iter()
        .map(|(check, score)| Evidence {
            service: service.to_string(),
            check: check.name().to_string(),
            kind: EvidenceKind::Metric,
            value: format!(
                "{} against a baseline of {} ({:+.1} robust deviations{})",
                check.format(score.level),
                check.format(score.baseline.median),
                score.score,
                if score.at_limit { ", at its limit" } else { "" }
            ),
            score: Some(score.score),
            abnormal: score.abnormal,
        })
        .collect();
    if let Some((time, abnormal)) = found.self_time {
        out.push(Evidence {
            service: service.to_string(),
            check: "span".into(),
            kind: EvidenceKind::Span,
            value: match time.baseline_ms {
                Some(base) => format!(
                    "p99 self time {} against a baseline of {}",
                    format_ms(time.current_ms),
                    format_ms(base)
                ),
                None => format!("p99 self time {} (no baseline)", format_ms(time.current_ms)),
            },
            score: None,
            abnormal,
        });
    }
    for log in input
        .services
        .get(service)
        .into_iter()
        .flat_map(|data| &data.logs)
    {
        out.push(Evidence {
            service: service.to_string(),
            check: "log".into(),
            kind: EvidenceKind::Log,
            value: log.text.clone(),
            score: None,
            abnormal: true,
        });
    }
    out
}

fn summarize(
    input: &Input,
    path: &[String],
    candidates: &[Candidate],
    explained: &[&str],
    checked: usize,
    reached: usize,
) -> String {
    let mut text = String::new();
    let walked = path.join(" → ");
    let Some(best) = candidates.first() else {
        let _ = write!(
            text,
            "Inconclusive: nothing is abnormal against its own baseline in {} or the dependencies walked ({walked}); {checked} of the {reached} services within {} hops had data, so no root cause is named.",
            input.alerted, input.depth
        );
        if checked == 0 {
            text.push_str(" No metric or trace answered, so nothing could be judged.");
        }
        return text;
    };
    let _ = write!(
        text,
        "{} is the most likely root cause (confidence {}), found by walking {walked}:",
        best.service,
        match best.confidence {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    );
    let reasons: Vec<String> = best
        .evidence
        .iter()
        .map(|evidence| format!("{} {}", evidence.check, evidence.value))
        .collect();
    let _ = write!(text, " {}.", reasons.join("; "));
    if best.kinds < 2 {
        text.push_str(
            " Only one kind of evidence supports it (no trace or log finding agrees), so treat it as a lead.",
        );
    }
    if !explained.is_empty() {
        let _ = write!(
            text,
            " Its anomaly explains those of {}, which show nothing of their own.",
            explained.join(", ")
        );
    }
    let others: Vec<&str> = candidates
        .iter()
        .skip(1)
        .map(|candidate| candidate.service.as_str())
        .collect();
    if !others.is_empty() {
        let _ = write!(text, " Other candidates: {}.", others.join(", "));
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    fn window(base: f64, current: f64) -> Window {
        Window {
            baseline: (0..60)
                .map(|i| base * (1.0 + 0.02 * f64::from(i % 5)))
                .collect(),
            current: vec![current; 20],
        }
    }

    fn service(latency: (f64, f64), self_ms: (f64, f64)) -> ServiceData {
        ServiceData {
            kind: Kind::Service,
            metrics: BTreeMap::from([
                (Check::LatencyP99, window(latency.0, latency.1)),
                (Check::ErrorRate, window(0.001, 0.001)),
            ]),
            self_time: Some(SelfTime {
                baseline_ms: Some(self_ms.0),
                current_ms: self_ms.1,
            }),
            logs: Vec::new(),
        }
    }

    fn chain() -> BTreeMap<String, BTreeSet<String>> {
        BTreeMap::from([
            ("a".to_string(), BTreeSet::from(["b".to_string()])),
            ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ])
    }

    #[test]
    fn the_deepest_unexplained_service_is_named() {
        let input = Input {
            alerted: "a".into(),
            depth: 4,
            calls: chain(),
            services: BTreeMap::from([
                ("a".to_string(), service((0.3, 0.9), (20.0, 21.0))),
                ("b".to_string(), service((0.2, 0.8), (20.0, 20.0))),
                ("c".to_string(), service((0.1, 0.7), (30.0, 600.0))),
            ]),
        };
        let found = diagnose(&input, &Settings::default());
        assert_eq!(found.root_cause.as_deref(), Some("c"), "{found:#?}");
        assert_eq!(found.path, ["a", "b", "c"]);
        assert_eq!(found.confidence, Some(Confidence::High));
        assert!(found.candidates[0].kinds >= 2);
    }

    #[test]
    fn nothing_abnormal_is_inconclusive() {
        let input = Input {
            alerted: "a".into(),
            depth: 4,
            calls: chain(),
            services: BTreeMap::from([
                ("a".to_string(), service((0.3, 0.3), (20.0, 21.0))),
                ("b".to_string(), service((0.2, 0.2), (20.0, 20.0))),
                ("c".to_string(), service((0.1, 0.1), (30.0, 30.0))),
            ]),
        };
        let found = diagnose(&input, &Settings::default());
        assert_eq!(found.root_cause, None);
        assert_eq!(found.path, ["a"]);
        assert!(
            found.summary.starts_with("Inconclusive"),
            "{}",
            found.summary
        );
    }

    #[test]
    fn a_slow_callee_behind_a_healthy_caller_is_reached() {
        let input = Input {
            alerted: "a".into(),
            depth: 4,
            calls: chain(),
            services: BTreeMap::from([
                ("a".to_string(), service((0.3, 0.9), (20.0, 21.0))),
                ("b".to_string(), service((0.2, 0.2), (20.0, 20.0))),
                ("c".to_string(), service((0.1, 0.7), (30.0, 600.0))),
            ]),
        };
        let found = diagnose(&input, &Settings::default());
        assert_eq!(found.root_cause.as_deref(), Some("c"), "{found:#?}");
        assert_eq!(found.path, ["a", "b", "c"]);
        // Without traces, the walk looks through the healthy caller all the same.
        let mut untraced = input.clone();
        for data in untraced.services.values_mut() {
            data.self_time = None;
        }
        let found = diagnose(&untraced, &Settings::default());
        assert_eq!(found.root_cause.as_deref(), Some("c"), "{found:#?}");
        assert_eq!(found.path, ["a", "b", "c"]);
    }

    #[test]
    fn one_kind_of_evidence_lowers_confidence() {
        let mut only_metrics = service((0.3, 0.9), (20.0, 20.0));
        only_metrics.self_time = None;
        let input = Input {
            alerted: "a".into(),
            depth: 1,
            calls: BTreeMap::new(),
            services: BTreeMap::from([("a".to_string(), only_metrics)]),
        };
        let found = diagnose(&input, &Settings::default());
        assert_eq!(found.root_cause.as_deref(), Some("a"));
        assert_ne!(found.confidence, Some(Confidence::High));
        assert!(found.summary.contains("Only one kind"), "{}", found.summary);
    }
}
