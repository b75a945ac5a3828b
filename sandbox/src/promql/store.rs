//! An in-memory series store: what the world's scrapes append to and PromQL reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A series' labels, `__name__` included.
pub type Labels = BTreeMap<String, String>;

/// One series and its samples, `(milliseconds since the epoch, value)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Every series' samples by its labels.
type Samples = BTreeMap<Labels, Vec<(i64, f64)>>;

/// Series by their labels. Cloning shares the store.
#[derive(Debug, Clone, Default)]
pub struct SeriesStore {
    series: Arc<Mutex<Samples>>,
}

impl SeriesStore {
    pub fn new() -> SeriesStore {
        SeriesStore::default()
    }

    /// Appends a sample; one older than the series' newest is dropped (as Prometheus drops
    /// out-of-order samples).
    pub fn append(&self, labels: &Labels, at_ms: i64, value: f64) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let samples = series.entry(labels.clone()).or_default();
        if samples.last().is_none_or(|(last, _)| *last < at_ms) {
            samples.push((at_ms, value));
        }
    }

    /// Records that the series reads `value` from `at_ms` on: a new sample, or, when a
    /// sample at or after `at_ms` is already stored (a scrape that raced the change), that
    /// sample now reads `value`.
    pub fn overwrite(&self, labels: &Labels, at_ms: i64, value: f64) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let samples = series.entry(labels.clone()).or_default();
        match samples.last_mut() {
            Some((last, stored)) if *last >= at_ms => *stored = value,
            _ => samples.push((at_ms, value)),
        }
    }

    /// Drops samples older than `before_ms`, and series left empty.
    pub fn retain_since(&self, before_ms: i64) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        for samples in series.values_mut() {
            let keep = samples.partition_point(|(at, _)| *at < before_ms);
            samples.drain(..keep);
        }
        series.retain(|_, samples| !samples.is_empty());
    }

    /// Every series `keep` accepts, with its samples in `[start_ms, end_ms]`; series with
    /// no sample there are left out.
    pub fn select(
        &self,
        keep: impl Fn(&Labels) -> bool,
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<Series> {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series
            .iter()
            .filter(|(labels, _)| keep(labels))
            .filter_map(|(labels, samples)| {
                let from = samples.partition_point(|(at, _)| *at < start_ms);
                let to = samples.partition_point(|(at, _)| *at <= end_ms);
                let window = samples.get(from..to).filter(|window| !window.is_empty())?;
                Some(Series {
                    labels: labels.clone(),
                    samples: window.to_vec(),
                })
            })
            .collect()
    }

    /// How many series the store holds.
    pub fn len(&self) -> usize {
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
