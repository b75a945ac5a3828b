//! History and effectiveness, per rule and per playbook: what the runs did and whether the
//! alert went away after them. Pure computation over [`Facts`] the journal reads
//! (`Journal::facts`), shared by `GET /api/stats`, the web page, `/metrics` and
//! `medic stats`.
//!
//! What "after the run" means, for a run of a firing episode (the alert's fingerprint and
//! `startsAt`), given a window `within` (30 minutes by default):
//! - **resolved**: the episode's resolved notification arrived before the run finished or
//!   within `within` after it, and no new episode of the same fingerprint fired within
//!   `within` after that;
//! - **fired again**: it resolved so, but the same fingerprint fired again within `within`
//!   of resolving (a flap the run did not cure);
//! - **kept firing**: no resolve within `within` after the run finished;
//! - **open**: the run has not finished, or finished less than `within` ago without a
//!   resolve yet (too early to say).
//!
//! Time to resolve compares episodes of the same alert name: from the first firing
//! notification Medic received to the first resolved one, for episodes that got a run and
//! for those that did not (no rule matched, or it was suppressed). Both ends are Medic's
//! receive times, so the sender's clock does not enter.

use std::collections::{BTreeMap, BTreeSet};

/// One run, as the statistics need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFact {
    pub id: i64,
    pub rule: String,
    pub playbook: String,
    /// The run's state: `running`, `paused` or its outcome.
    pub state: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub performs_actions: bool,
    pub alert_name: String,
    pub fingerprint: String,
    pub episode_starts_at: i64,
    /// Action tasks that succeeded.
    pub actions: u64,
    /// Reverts performed.
    pub reverted: u64,
    /// Tasks that waited for a human, and since when.
    pub approvals_asked: BTreeMap<String, i64>,
    pub approved: u64,
    pub rejected: u64,
    /// From asking to the decision, for each decided approval.
    pub approval_waits_ms: Vec<i64>,
}

/// One firing episode of an alert: the first firing and resolved notifications received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeFact {
    pub name: String,
    pub fingerprint: String,
    pub starts_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackFact {
    pub run_id: i64,
    pub by: String,
    /// `yes`, `no` or `partly`.
    pub verdict: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub runs: Vec<RunFact>,
    pub episodes: Vec<EpisodeFact>,
    pub feedback: Vec<FeedbackFact>,
}

/// The answers "did this run fix it?" may take.
pub const VERDICTS: [&str; 3] = ["yes", "no", "partly"];

/// The default of `within`: how long after a run its alert may take to resolve.
pub const DEFAULT_WITHIN_MS: i64 = 30 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub since: i64,
    pub now: i64,
    pub within_ms: i64,
    pub runs: u64,
    pub playbooks: Vec<Effectiveness>,
    pub rules: Vec<Effectiveness>,
    /// Per alert name, with a run against without one.
    pub alerts: Vec<TimeToResolve>,
}

/// What the runs of one playbook (or of one rule) did and how their alerts fared.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Effectiveness {
    pub name: String,
    pub runs: u64,
    /// Runs by state: `succeeded`, `failed`, `escalated`, `cancelled`, `interrupted`,
    /// `running`, `paused`.
    pub outcomes: BTreeMap<String, u64>,
    pub run_seconds_median: Option<f64>,
    pub run_seconds_p90: Option<f64>,
    pub after: After,
    /// `resolved` out of the runs whose effect is known (`open` left out).
    pub resolved_ratio: Option<f64>,
    pub actions: u64,
    pub reverted: u64,
    pub approvals: Approvals,
    pub feedback: FeedbackCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct After {
    pub resolved: u64,
    pub fired_again: u64,
    pub kept_firing: u64,
    pub open: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Approvals {
    pub asked: u64,
    pub approved: u64,
    pub rejected: u64,
    /// Asked, and decided by nobody (timed out, or the run ended first).
    pub undecided: u64,
    pub wait_seconds_median: Option<f64>,
}

/// The latest answer of each person about each run, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedbackCounts {
    pub yes: u64,
    pub no: u64,
    pub partly: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimeToResolve {
    pub alert: String,
    pub with_run: Resolution,
    pub without_run: Resolution,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resolution {
    pub episodes: u64,
    pub resolved: u64,
    /// Mean time to resolve of the resolved episodes.
    pub mttr_seconds: Option<f64>,
    pub median_seconds: Option<f64>,
}

/// How a run's alert fared after it (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Resolved,
    FiredAgain,
    KeptFiring,
    Open,
}

/// Episodes by fingerprint, in order of their first firing.
struct EpisodeIndex<'f> {
    by_key: BTreeMap<(&'f str, i64), &'f EpisodeFact>,
    fired_by_fingerprint: BTreeMap<&'f str, Vec<i64>>,
}

impl<'f> EpisodeIndex<'f> {
    fn new(episodes: &'f [EpisodeFact]) -> EpisodeIndex<'f> {
        let mut by_key = BTreeMap::new();
        let mut fired_by_fingerprint: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for episode in episodes {
            by_key.insert((episode.fingerprint.as_str(), episode.starts_at), episode);
            if let Some(fired) = episode.fired_at {
                fired_by_fingerprint
                    .entry(episode.fingerprint.as_str())
                    .or_default()
                    .push(fired);
            }
        }
        for times in fired_by_fingerprint.values_mut() {
            times.sort_unstable();
        }
        EpisodeIndex {
            by_key,
            fired_by_fingerprint,
        }
    }

    /// Whether the fingerprint fired (a new episode) in `(after, until]`.
    fn fired_between(&self, fingerprint: &str, after: i64, until: i64) -> bool {
        self.fired_by_fingerprint
            .get(fingerprint)
            .is_some_and(|times| {
                let first_later = times.partition_point(|time| *time <= after);
                times.get(first_later).is_some_and(|time| *time <= until)
            })
    }
}

/// How the alert of `run` fared after it, at `now`.
pub fn effect_of(run: &RunFact, episode: Option<&EpisodeFact>, now: i64, within: i64) -> Effect {
    effect_in(run, episode, None, now, within)
}

fn effect_in(
    run: &RunFact,
    episode: Option<&EpisodeFact>,
    index: Option<&EpisodeIndex<'_>>,
    now: i64,
    within: i64,
) -> Effect {
    let Some(finished) = run.finished_at else {
        return Effect::Open;
    };
    let deadline = finished.saturating_add(within);
    match episode.and_then(|episode| episode.resolved_at) {
        Some(resolved) if resolved <= deadline => {
            let until = resolved.saturating_add(within);
            let again =
                index.is_some_and(|index| index.fired_between(&run.fingerprint, resolved, until));
            if again {
                Effect::FiredAgain
            } else if now < until {
                // It may still fire again: it counts as resolved once `within` has passed.
                Effect::Open
            } else {
                Effect::Resolved
            }
        }
        _ if now < deadline => Effect::Open,
        _ => Effect::KeptFiring,
    }
}

/// The statistics of `facts` at `now`.
pub fn compute(facts: &Facts, since: i64, now: i64, within: i64) -> Stats {
    let index = EpisodeIndex::new(&facts.episodes);
    // The latest answer of each person about each run.
    let mut answers: BTreeMap<(i64, &str), &str> = BTreeMap::new();
    for feedback in &facts.feedback {
        answers.insert((feedback.run_id, &feedback.by), &feedback.verdict);
    }
    let mut verdicts: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for ((run, _), verdict) in answers {
        verdicts.entry(run).or_default().push(verdict);
    }
    let mut playbooks: BTreeMap<&str, Vec<&RunFact>> = BTreeMap::new();
    let mut rules: BTreeMap<&str, Vec<&RunFact>> = BTreeMap::new();
    for run in &facts.runs {
        playbooks.entry(&run.playbook).or_default().push(run);
        rules.entry(&run.rule).or_default().push(run);
    }
    let summarize = |name: &str, runs: &[&RunFact]| {
        let mut summary = Effectiveness {
            name: name.to_string(),
            ..Effectiveness::default()
        };
        let mut durations = Vec::new();
        let mut waits = Vec::new();
        for run in runs {
            summary.runs += 1;
            *summary.outcomes.entry(run.state.clone()).or_default() += 1;
            if let Some(finished) = run.finished_at {
                durations.push(finished.saturating_sub(run.started_at));
            }
            let episode = index
                .by_key
                .get(&(run.fingerprint.as_str(), run.episode_starts_at))
                .copied();
            match effect_in(run, episode, Some(&index), now, within) {
                Effect::Resolved => summary.after.resolved += 1,
                Effect::FiredAgain => summary.after.fired_again += 1,
                Effect::KeptFiring => summary.after.kept_firing += 1,
                Effect::Open => summary.after.open += 1,
            }
            summary.actions += run.actions;
            summary.reverted += run.reverted;
            let asked = run.approvals_asked.len() as u64;
            summary.approvals.asked += asked;
            summary.approvals.approved += run.approved;
            summary.approvals.rejected += run.rejected;
            summary.approvals.undecided += asked.saturating_sub(run.approved + run.rejected);
            waits.extend(run.approval_waits_ms.iter().copied());
            for verdict in verdicts.get(&run.id).into_iter().flatten() {
                match *verdict {
                    "yes" => summary.feedback.yes += 1,
                    "no" => summary.feedback.no += 1,
                    _ => summary.feedback.partly += 1,
                }
            }
        }
        durations.sort_unstable();
        waits.sort_unstable();
        summary.run_seconds_median = quantile(&durations, 0.5);
        summary.run_seconds_p90 = quantile(&durations, 0.9);
        summary.approvals.wait_seconds_median = quantile(&waits, 0.5);
        let known = summary.after.resolved + summary.after.fired_again + summary.after.kept_firing;
        summary.resolved_ratio = (known > 0).then(|| summary.after.resolved as f64 / known as f64);
        summary
    };
    let playbooks = playbooks
        .iter()
        .map(|(name, runs)| summarize(name, runs))
        .collect();
    let rules = rules
        .iter()
        .map(|(name, runs)| summarize(name, runs))
        .collect();
    Stats {
        since,
        now,
        within_ms: within,
        runs: facts.runs.len() as u64,
        playbooks,
        rules,
        alerts: time_to_resolve(facts),
    }
}

/// Per alert name: the time to resolve of episodes that got a run against those that did
/// not. Only names with at least one run are listed.
fn time_to_resolve(facts: &Facts) -> Vec<TimeToResolve> {
    let with_run: BTreeSet<(&str, i64)> = facts
        .runs
        .iter()
        .map(|run| (run.fingerprint.as_str(), run.episode_starts_at))
        .collect();
    let names: BTreeSet<&str> = facts
        .runs
        .iter()
        .map(|run| run.alert_name.as_str())
        .collect();
    // Per name: resolve times and episode counts, with a run and without.
    #[derive(Default)]
    struct Times {
        ran: Vec<i64>,
        ran_count: u64,
        not: Vec<i64>,
        not_count: u64,
    }
    let mut times: BTreeMap<&str, Times> = BTreeMap::new();
    for episode in &facts.episodes {
        if !names.contains(episode.name.as_str()) {
            continue;
        }
        let Some(fired) = episode.fired_at else {
            continue;
        };
        let entry = times.entry(&episode.name).or_default();
        let ran = with_run.contains(&(episode.fingerprint.as_str(), episode.starts_at));
        let (resolved, count) = if ran {
            (&mut entry.ran, &mut entry.ran_count)
        } else {
            (&mut entry.not, &mut entry.not_count)
        };
        *count += 1;
        if let Some(at) = episode.resolved_at {
            resolved.push(at.saturating_sub(fired).max(0));
        }
    }
    times
        .into_iter()
        .map(|(name, mut times)| TimeToResolve {
            alert: name.to_string(),
            with_run: resolution(&mut times.ran, times.ran_count),
            without_run: resolution(&mut times.not, times.not_count),
        })
        .collect()
}

fn resolution(times: &mut [i64], episodes: u64) -> Resolution {
    times.sort_unstable();
    let mean = (!times.is_empty())
        .then(|| times.iter().map(|ms| *ms as f64).sum::<f64>() / times.len() as f64 / 1_000.0);
    Resolution {
        episodes,
        resolved: times.len() as u64,
        mttr_seconds: mean,
        median_seconds: quantile(times, 0.5),
    }
}

/// The `q` quantile of sorted milliseconds, in seconds (nearest rank).
fn quantile(sorted_ms: &[i64], q: f64) -> Option<f64> {
    if sorted_ms.is_empty() {
        return None;
    }
    let rank = (q * sorted_ms.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(sorted_ms.len() - 1);
    sorted_ms.get(index).map(|ms| *ms as f64 / 1_000.0)
}

/// Seconds for people: `4.2 s`, `3m20s`, or `-`.
pub fn seconds_text(value: Option<f64>) -> String {
    match value {
        None => "-".to_string(),
        Some(seconds) if seconds < 60.0 => format!("{seconds:.1} s"),
        Some(seconds) => medic_compiler::units::format_duration((seconds * 1_000.0) as i64),
    }
}

/// The statistics as text for a terminal (`medic stats`): one block per playbook, then time
/// to resolve per alert name.
pub fn text(stats: &Stats) -> String {
    use std::fmt::Write as _;
    let within = medic_compiler::units::format_duration(stats.within_ms);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} runs since {} (resolved: within {within} of the run, and not firing again within {within})",
        stats.runs,
        medic_compiler::units::format_time(stats.since)
    );
    if stats.playbooks.is_empty() {
        let _ = writeln!(out, "no run");
    }
    for playbook in &stats.playbooks {
        let outcomes: Vec<String> = playbook
            .outcomes
            .iter()
            .map(|(outcome, count)| format!("{count} {outcome}"))
            .collect();
        let ratio = playbook
            .resolved_ratio
            .map(|ratio| format!(" ({:.0}% of those known)", ratio * 100.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\nplaybook {}: {} runs ({})",
            playbook.name,
            playbook.runs,
            outcomes.join(", ")
        );
        let _ = writeln!(
            out,
            "  run time      median {}, p90 {}",
            seconds_text(playbook.run_seconds_median),
            seconds_text(playbook.run_seconds_p90)
        );
        let _ = writeln!(
            out,
            "  after the run {} resolved{ratio}, {} fired again, {} kept firing, {} open",
            playbook.after.resolved,
            playbook.after.fired_again,
            playbook.after.kept_firing,
            playbook.after.open
        );
        let _ = writeln!(
            out,
            "  actions       {} taken, {} reverted",
            playbook.actions, playbook.reverted
        );
        let approvals = &playbook.approvals;
        let _ = writeln!(
            out,
            "  approvals     {} asked, {} approved, {} rejected, {} undecided, median wait {}",
            approvals.asked,
            approvals.approved,
            approvals.rejected,
            approvals.undecided,
            seconds_text(approvals.wait_seconds_median)
        );
        let _ = writeln!(
            out,
            "  did it fix it yes {}, partly {}, no {}",
            playbook.feedback.yes, playbook.feedback.partly, playbook.feedback.no
        );
    }
    if !stats.alerts.is_empty() {
        let _ = writeln!(out, "\ntime to resolve (mean; episodes resolved of all)");
        for alert in &stats.alerts {
            let _ = writeln!(
                out,
                "  {:<24} with a run {} ({} of {}), without {} ({} of {})",
                alert.alert,
                seconds_text(alert.with_run.mttr_seconds),
                alert.with_run.resolved,
                alert.with_run.episodes,
                seconds_text(alert.without_run.mttr_seconds),
                alert.without_run.resolved,
                alert.without_run.episodes
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    const MIN: i64 = 60_000;

    fn run(
        id: i64,
        playbook: &str,
        fingerprint: &str,
        started: i64,
        finished: Option<i64>,
    ) -> RunFact {
        RunFact {
            id,
            rule: format!("rule_{playbook}"),
            playbook: playbook.into(),
            state: if finished.is_some() {
                "succeeded"
            } else {
                "running"
            }
            .into(),
            started_at: started,
            finished_at: finished,
            alert_name: "HighCpu".into(),
            fingerprint: fingerprint.into(),
            episode_starts_at: started,
            ..RunFact::default()
        }
    }

    fn episode(fingerprint: &str, starts: i64, fired: i64, resolved: Option<i64>) -> EpisodeFact {
        EpisodeFact {
            name: "HighCpu".into(),
            fingerprint: fingerprint.into(),
            starts_at: starts,
            fired_at: Some(fired),
            resolved_at: resolved,
        }
    }

    #[test]
    fn a_run_whose_alert_resolves_soon_after_counts_as_resolved() {
        let facts = Facts {
            runs: vec![run(1, "scale", "a", 0, Some(2 * MIN))],
            episodes: vec![episode("a", 0, 0, Some(10 * MIN))],
            feedback: vec![],
        };
        let stats = compute(&facts, 0, 120 * MIN, 30 * MIN);
        let scale = &stats.playbooks[0];
        assert_eq!(
            scale.after,
            After {
                resolved: 1,
                ..After::default()
            }
        );
        assert_eq!(scale.resolved_ratio, Some(1.0));
        assert_eq!(scale.run_seconds_median, Some(120.0));
    }

    #[test]
    fn late_resolves_flaps_and_recent_runs_are_told_apart() {
        let facts = Facts {
            runs: vec![
                // Resolved 40 minutes after: kept firing.
                run(1, "scale", "late", 0, Some(MIN)),
                // Resolved, then fired again 5 minutes later: a flap.
                run(2, "scale", "flap", 0, Some(MIN)),
                // Finished 10 minutes before now, not resolved yet: too early to say.
                run(3, "scale", "recent", 100 * MIN, Some(110 * MIN)),
                // Still running.
                run(4, "scale", "busy", 115 * MIN, None),
            ],
            episodes: vec![
                episode("late", 0, 0, Some(41 * MIN)),
                episode("flap", 0, 0, Some(3 * MIN)),
                episode("flap", 8 * MIN, 8 * MIN, None),
                episode("recent", 100 * MIN, 100 * MIN, None),
                episode("busy", 115 * MIN, 115 * MIN, None),
            ],
            feedback: vec![],
        };
        let stats = compute(&facts, 0, 120 * MIN, 30 * MIN);
        let scale = &stats.playbooks[0];
        assert_eq!(
            scale.after,
            After {
                resolved: 0,
                fired_again: 1,
                kept_firing: 1,
                open: 2
            }
        );
        assert_eq!(scale.resolved_ratio, Some(0.0));
        assert_eq!(scale.outcomes.get("running"), Some(&1));
        assert_eq!(scale.outcomes.get("succeeded"), Some(&3));
    }

    #[test]
    fn a_resolve_that_may_still_flap_is_open_until_the_window_passes() {
        let facts = Facts {
            runs: vec![run(1, "scale", "a", 0, Some(MIN))],
            episodes: vec![episode("a", 0, 0, Some(2 * MIN))],
            feedback: vec![],
        };
        let early = compute(&facts, 0, 10 * MIN, 30 * MIN);
        assert_eq!(early.playbooks[0].after.open, 1);
        let later = compute(&facts, 0, 40 * MIN, 30 * MIN);
        assert_eq!(later.playbooks[0].after.resolved, 1);
    }

    #[test]
    fn time_to_resolve_compares_episodes_with_and_without_a_run() {
        let facts = Facts {
            runs: vec![run(1, "scale", "a", 0, Some(MIN))],
            episodes: vec![
                episode("a", 0, 0, Some(4 * MIN)),
                episode("b", 0, 0, Some(20 * MIN)),
                episode("c", 0, 0, Some(40 * MIN)),
                episode("d", 0, 0, None),
                EpisodeFact {
                    name: "Other".into(),
                    ..episode("e", 0, 0, Some(MIN))
                },
            ],
            feedback: vec![],
        };
        let stats = compute(&facts, 0, 120 * MIN, 30 * MIN);
        assert_eq!(stats.alerts.len(), 1, "only alert names some run answered");
        let cpu = &stats.alerts[0];
        assert_eq!(cpu.alert, "HighCpu");
        assert_eq!(cpu.with_run.episodes, 1);
        assert_eq!(cpu.with_run.mttr_seconds, Some(240.0));
        assert_eq!(cpu.without_run.episodes, 3);
        assert_eq!(cpu.without_run.resolved, 2);
        assert_eq!(cpu.without_run.mttr_seconds, Some(1_800.0));
        assert_eq!(cpu.without_run.median_seconds, Some(1_200.0));
    }

    #[test]
    fn feedback_counts_each_persons_latest_answer() {
        let answer = |by: &str, verdict: &str| FeedbackFact {
            run_id: 1,
            by: by.into(),
            verdict: verdict.into(),
        };
        let facts = Facts {
            runs: vec![run(1, "scale", "a", 0, Some(MIN))],
            episodes: vec![],
            feedback: vec![
                answer("ana", "no"),
                answer("ana", "yes"),
                answer("bo", "partly"),
            ],
        };
        let stats = compute(&facts, 0, MIN, 30 * MIN);
        assert_eq!(
            stats.playbooks[0].feedback,
            FeedbackCounts {
                yes: 1,
                no: 0,
                partly: 1
            }
        );
    }

    #[test]
    fn approvals_actions_and_quantiles_add_up_per_playbook_and_rule() {
        let mut first = run(1, "scale", "a", 0, Some(10_000));
        first.actions = 2;
        first.reverted = 1;
        first.approvals_asked.insert("scale_up".into(), 1_000);
        first.approved = 1;
        first.approval_waits_ms = vec![4_000];
        let mut second = run(2, "scale", "b", 0, Some(20_000));
        second.approvals_asked.insert("scale_up".into(), 1_000);
        let mut third = run(3, "scale", "c", 0, Some(30_000));
        third.rule = "other_rule".into();
        let facts = Facts {
            runs: vec![first, second, third],
            episodes: vec![],
            feedback: vec![],
        };
        let stats = compute(&facts, 0, MIN, 30 * MIN);
        let scale = &stats.playbooks[0];
        assert_eq!(scale.runs, 3);
        assert_eq!((scale.actions, scale.reverted), (2, 1));
        assert_eq!(scale.approvals.asked, 2);
        assert_eq!(scale.approvals.approved, 1);
        assert_eq!(scale.approvals.undecided, 1);
        assert_eq!(scale.approvals.wait_seconds_median, Some(4.0));
        assert_eq!(scale.run_seconds_median, Some(20.0));
        assert_eq!(scale.run_seconds_p90, Some(30.0));
        assert_eq!(stats.rules.len(), 2);
        assert_eq!(stats.rules[0].name, "other_rule");
        assert_eq!(stats.rules[0].runs, 1);
    }
}
