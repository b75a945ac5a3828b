//! Robust anomaly scores: how far a window of a metric is from the same metric's own recent
//! past, in units of that past's spread.
//!
//! The rule (docs/notes/021-dependency-walk.md says why):
//! - the **baseline** is summarized by its median `m` and a robust spread `s`, the larger of
//!   `IQR / 1.349` and `1.4826 × MAD` (both estimate one standard deviation for normal
//!   data and ignore a minority of outliers), never below `relative_floor × |m|` nor
//!   `absolute_floor / threshold` (a flat baseline must not make a tiny change look
//!   infinite; on a flat baseline a change of `absolute_floor` is just enough);
//! - the **level** of the current window is its worst *sustained* value: the largest value
//!   held by `sustained` consecutive points (for an upward check; the smallest for a
//!   downward one). A single spike does not count, and wherever the change sits in the
//!   window (the alert a minute early or late) it is found;
//! - the **score** is `(level − m) / s` in the check's direction, and the window is abnormal
//!   when the score reaches `threshold` *and* the level differs from `m` by at least
//!   `min_relative_change` of `m` (a tight baseline must not turn a 3 % wobble into an
//!   incident) *and* by at least `absolute_floor`;
//! - a check with a **limit** (CPU or memory as a share of its limit, connections as a share
//!   of the maximum) is also abnormal when its sustained level reaches the limit share,
//!   whatever the baseline says.
//!
//! Everything here is deterministic and allocation-light; non-finite samples are ignored.

/// Which way a change counts as bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Only a rise is bad (latency, error ratio, saturation).
    Up,
    /// Only a fall is bad (throughput, availability).
    Down,
}

/// The settings of one check's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub direction: Direction,
    /// Consecutive points a level must hold to count.
    pub sustained: usize,
    /// Robust standard deviations that make a window abnormal.
    pub threshold: f64,
    /// The least change, as a share of the baseline median, that can be abnormal.
    pub min_relative_change: f64,
    /// The least change in the metric's own unit that can be abnormal (the spread is never
    /// below this divided by `threshold`).
    pub absolute_floor: f64,
    /// The spread is never below this share of the baseline median.
    pub relative_floor: f64,
    /// A share of a limit that is abnormal on its own (for metrics that are ratios to a
    /// limit), such as 0.9 for CPU.
    pub limit: Option<f64>,
}

impl Rule {
    /// An upward check with the defaults: 3 points sustained, 4 robust deviations, at
    /// least a 25 % change.
    pub const fn up(absolute_floor: f64) -> Rule {
        Rule {
            direction: Direction::Up,
            sustained: 3,
            threshold: 4.0,
            min_relative_change: 0.25,
            absolute_floor,
            relative_floor: 0.05,
            limit: None,
        }
    }

    pub const fn with_limit(self, limit: f64) -> Rule {
        Rule {
            limit: Some(limit),
            ..self
        }
    }
}

/// The median and spread of a baseline window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Baseline {
    pub median: f64,
    /// The robust standard deviation before any floor.
    pub spread: f64,
    pub points: usize,
}

/// How a current window compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Score {
    pub baseline: Baseline,
    /// The worst sustained level of the current window.
    pub level: f64,
    /// Robust deviations from the baseline median, positive in the bad direction.
    pub score: f64,
    pub abnormal: bool,
    /// True when the level reached the rule's limit share.
    pub at_limit: bool,
}

impl Score {
    /// The level against the baseline median, as a ratio (1.0 = unchanged); infinite when
    /// the median is zero and the level is not.
    pub fn ratio(&self) -> f64 {
        if self.baseline.median.abs() > f64::EPSILON {
            self.level / self.baseline.median
        } else if self.level.abs() > f64::EPSILON {
            f64::INFINITY
        } else {
            1.0
        }
    }
}

/// The finite values, sorted.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut kept: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    kept.sort_by(f64::total_cmp);
    kept
}

/// The `q` quantile (0..=1) of sorted values, linearly interpolated; none when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = q.clamp(0.0, 1.0) * last as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let low = *sorted.get(below)?;
    let high = *sorted.get(above)?;
    Some(low + (high - low) * (position - below as f64))
}

/// The median and robust spread of `values`; none when it has no finite value.
pub fn baseline(values: &[f64]) -> Option<Baseline> {
    let sorted = sorted(values);
    let median = quantile(&sorted, 0.5)?;
    let iqr = quantile(&sorted, 0.75)? - quantile(&sorted, 0.25)?;
    let deviations = self::sorted(
        &sorted
            .iter()
            .map(|value| (value - median).abs())
            .collect::<Vec<_>>(),
    );
    let mad = quantile(&deviations, 0.5)?;
    Some(Baseline {
        median,
        spread: (iqr / 1.349).max(1.4826 * mad),
        points: sorted.len(),
    })
}

/// The worst level held by `sustained` consecutive finite points: the largest of the
/// running minimums for [`Direction::Up`], the smallest of the running maximums for
/// [`Direction::Down`]. A window shorter than `sustained` uses all its points.
pub fn sustained_level(values: &[f64], sustained: usize, direction: Direction) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    let width = sustained.clamp(1, finite.len());
    finite
        .windows(width)
        .filter_map(|run| match direction {
            Direction::Up => run.iter().copied().reduce(f64::min),
            Direction::Down => run.iter().copied().reduce(f64::max),
        })
        .reduce(match direction {
            Direction::Up => f64::max,
            Direction::Down => f64::min,
        })
}

/// Scores `current` against `baseline` by `rule`; none when either has no finite value.
pub fn score(baseline_values: &[f64], current: &[f64], rule: &Rule) -> Option<Score> {
    let baseline = baseline(baseline_values)?;
    let level = sustained_level(current, rule.sustained, rule.direction)?;
    let spread = baseline
        .spread
        .max(rule.relative_floor * baseline.median.abs())
        .max(rule.absolute_floor / rule.threshold.max(1.0))
        .max(f64::MIN_POSITIVE);
    let change = match rule.direction {
        Direction::Up => level - baseline.median,
        Direction::Down => baseline.median - level,
    };
    let score = change / spread;
    let relative_enough = change >= rule.min_relative_change * baseline.median.abs();
    let absolute_enough = change >= rule.absolute_floor;
    let at_limit =
        rule.direction == Direction::Up && rule.limit.is_some_and(|limit| level >= limit);
    Some(Score {
        baseline,
        level,
        score,
        abnormal: at_limit || (score >= rule.threshold && relative_enough && absolute_enough),
        at_limit,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn baseline_ignores_outliers() {
        let mut values = vec![10.0; 50];
        values.extend([10.5, 9.5, 11.0, 9.0, 1000.0]);
        let found = baseline(&values).unwrap();
        assert_eq!(found.median, 10.0);
        assert!(found.spread < 1.0, "{found:?}");
    }

    #[test]
    fn a_single_spike_is_not_sustained() {
        let current = [1.0, 1.0, 50.0, 1.0, 1.0];
        assert_eq!(sustained_level(&current, 3, Direction::Up), Some(1.0));
        let current = [1.0, 5.0, 5.0, 6.0, 1.0];
        assert_eq!(sustained_level(&current, 3, Direction::Up), Some(5.0));
    }

    #[test]
    fn a_shift_is_found_wherever_it_sits() {
        let base: Vec<f64> = (0..60).map(|i| 100.0 + f64::from(i % 5)).collect();
        let rule = Rule::up(1.0);
        for start in [0, 5, 15] {
            let current: Vec<f64> = (0..20)
                .map(|i| if i >= start { 200.0 } else { 101.0 })
                .collect();
            assert!(score(&base, &current, &rule).unwrap().abnormal, "{start}");
        }
        let calm: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i % 5)).collect();
        assert!(!score(&base, &calm, &rule).unwrap().abnormal);
        // Downward changes do not count for an upward rule.
        let lower = vec![10.0; 20];
        assert!(!score(&base, &lower, &rule).unwrap().abnormal);
    }

    #[test]
    fn a_limit_is_abnormal_on_its_own() {
        let base = vec![0.93; 30];
        let rule = Rule::up(0.02).with_limit(0.9);
        let found = score(&base, &[0.94; 10], &rule).unwrap();
        assert!(found.abnormal && found.at_limit);
    }

    #[test]
    fn empty_windows_have_no_score() {
        assert!(score(&[], &[1.0], &Rule::up(0.0)).is_none());
        assert!(score(&[1.0], &[f64::NAN], &Rule::up(0.0)).is_none());
    }
}
