//! Alerts whose messages do not say when their episode began (a CloudWatch OK, a Kibana
//! notification): before they are accepted, each takes the start of its fingerprint's open
//! episode from the journal (as [`ingest::episode_join`] says), so its resolve ends, and its
//! repeat joins, the episode already journaled.

use super::{Engine, EngineError};
use crate::ingest::{self, Alert, Join};

/// How many locks the fingerprints are spread over: deliveries of different alarms rarely
/// wait for each other.
pub(super) const SHARDS: usize = 16;

/// A turn held from the lookup to the commit.
pub(super) type Turn<'a> = tokio::sync::MutexGuard<'a, ()>;

impl Engine {
    /// Gives each alert that joins the start of its fingerprint's open episode (an alert with
    /// no open episode keeps the time its message gave). Returns the turns of those
    /// fingerprints, for the caller to hold until the alerts are committed: deliveries of the
    /// same fingerprints take turns, so one never misses an alert of the same episode that is
    /// being committed alongside it (an OK right behind its ALARM). Alerts of the other
    /// sources take no turn and cost no lookup.
    pub(super) async fn join_open_episodes(
        &self,
        alerts: &mut [Alert],
    ) -> Result<Vec<Turn<'_>>, EngineError> {
        /// An alert's index, its fingerprint, and the label its episode must share.
        type Lookup = (usize, String, Option<(&'static str, String)>);
        let joins: Vec<(usize, Join)> = alerts
            .iter()
            .enumerate()
            .filter_map(|(index, alert)| Some((index, ingest::episode_join(alert)?)))
            .collect();
        if joins.is_empty() {
            return Ok(Vec::new());
        }
        // The locks of these fingerprints, taken in one order (no deadlock between two
        // deliveries that share some).
        let shards: std::collections::BTreeSet<usize> = joins
            .iter()
            .filter_map(|(index, _)| alerts.get(*index))
            .map(|alert| {
                usize::try_from(ingest::fnv1a(alert.fingerprint.bytes()) % SHARDS as u64)
                    .unwrap_or(0)
            })
            .collect();
        let mut turns = Vec::with_capacity(shards.len());
        for index in shards {
            if let Some(lock) = self.inner.joining.get(index) {
                turns.push(lock.lock().await);
            }
        }
        let lookups: Vec<Lookup> = joins
            .into_iter()
            .filter_map(|(index, join)| {
                let alert = alerts.get(index)?;
                let same = match join {
                    Join::No => return None,
                    Join::Open => None,
                    Join::SameLabel(label) => {
                        alert.labels.get(label).map(|value| (label, value.clone()))
                    }
                };
                Some((index, alert.fingerprint.clone(), same))
            })
            .collect();
        if lookups.is_empty() {
            return Ok(turns);
        }
        // Ahead of the journal's queued work, as the webhooks' writes are.
        let starts = self
            .inner
            .journal
            .call_urgent(move |journal| {
                lookups
                    .into_iter()
                    .map(|(index, fingerprint, same)| {
                        let same = same.as_ref().map(|(label, value)| (*label, value.as_str()));
                        Ok((index, journal.open_episode(&fingerprint, same)?))
                    })
                    .collect::<Result<Vec<_>, crate::journal::JournalError>>()
            })
            .await?;
        for (index, start) in starts {
            if let (Some(start), Some(alert)) = (start, alerts.get_mut(index)) {
                alert.starts_at = start;
            }
        }
        Ok(turns)
    }
}
