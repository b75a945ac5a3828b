//! Log analysis: template mining (Drain-style, one generic setting) and the comparison of a
//! window's templates against a baseline window.
//!
//! Mine both windows with the same [`Miner`] (baseline first, or interleaved in time order),
//! count each window's ids in a [`WindowCounts`], then [`compare`] them. docs/logs.md has the
//! masks and the rules; docs/notes/018-log-templates.md the reasons and the measurements.

pub mod mask;
pub mod miner;

pub use miner::{Miner, TemplateId};

use std::collections::BTreeMap;

/// Occurrences per template in one window (by the ids [`Miner::add`] answered; [`compare`]
/// adds up ids whose templates were merged since).
#[derive(Debug, Clone, Default)]
pub struct WindowCounts {
    /// Indexed by template id (ids are dense, in order of first appearance).
    counts: Vec<u64>,
    total: u64,
}

impl WindowCounts {
    /// Counts one occurrence of `id`.
    pub fn add(&mut self, id: TemplateId) {
        let Ok(index) = usize::try_from(id.0) else {
            return;
        };
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        if let Some(count) = self.counts.get_mut(index) {
            *count += 1;
            self.total += 1;
        }
    }

    /// The occurrences of `id` (0 when never counted).
    pub fn get(&self, id: TemplateId) -> u64 {
        usize::try_from(id.0)
            .ok()
            .and_then(|index| self.counts.get(index))
            .copied()
            .unwrap_or(0)
    }

    /// All occurrences counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The templates counted at least once, in id order, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (TemplateId, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .filter_map(|(index, count)| Some((TemplateId(u32::try_from(index).ok()?), *count)))
    }
}

/// A template of the current window against the baseline window of the same length before it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TemplateChange {
    pub id: TemplateId,
    pub pattern: String,
    pub count: u64,
    pub baseline: u64,
    pub new: bool,
    pub spiking: bool,
}

/// A template spikes when it occurs at least this many times in the current window...
pub const SPIKE_MIN_COUNT: u64 = 10;
/// ...and at least this many times as often as in the baseline window (the windows have the
/// same length, so the ratio of counts is the ratio of rates).
pub const SPIKE_RATIO: u64 = 3;

/// The current window's templates: new ones (absent from the baseline) first, by count; then
/// spiking ones (count ≥ [`SPIKE_MIN_COUNT`] and ≥ [`SPIKE_RATIO`] × baseline), by ratio;
/// then the rest by count. Ties go to the older template (lower id). At most `limit`.
pub fn compare(
    miner: &Miner,
    current: &WindowCounts,
    baseline: &WindowCounts,
    limit: usize,
) -> Vec<TemplateChange> {
    // Ids of templates merged since they were counted are counted under the survivor.
    let mut windows: BTreeMap<TemplateId, (u64, u64)> = BTreeMap::new();
    for (id, count) in current.iter() {
        windows.entry(miner.canonical(id)).or_default().0 += count;
    }
    for (id, count) in baseline.iter() {
        if let Some(entry) = windows.get_mut(&miner.canonical(id)) {
            entry.1 += count;
        }
    }
    let mut changes: Vec<TemplateChange> = windows
        .into_iter()
        .filter_map(|(id, (count, before))| {
            let pattern = miner.pattern(id)?;
            let new = before == 0;
            let spiking = !new && count >= SPIKE_MIN_COUNT && count >= SPIKE_RATIO * before;
            Some(TemplateChange {
                id,
                pattern,
                count,
                baseline: before,
                new,
                spiking,
            })
        })
        .collect();
    changes.sort_by(|left, right| {
        let rank = |change: &TemplateChange| match (change.new, change.spiking) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        };
        rank(left)
            .cmp(&rank(right))
            .then_with(|| {
                if left.spiking && right.spiking {
                    // count / baseline, compared without division: a/b > c/d ⇔ a·d > c·b.
                    (u128::from(right.count) * u128::from(left.baseline))
                        .cmp(&(u128::from(left.count) * u128::from(right.baseline)))
                } else {
                    right.count.cmp(&left.count)
                }
            })
            .then_with(|| left.id.cmp(&right.id))
    });
    changes.truncate(limit);
    changes
}
