//! Alerts whose messages do not say when their episode began (a CloudWatch OK, a Kibana
//! notification): each takes the start of its fingerprint's open episode from the journal
//! before it is accepted, so its resolve ends, and its repeat joins, the episode already
//! journaled.

use super::{Engine, EngineError};
use crate::ingest::Alert;

/// How many locks the fingerprints are spread over: deliveries of different alarms rarely
/// wait for each other.
pub(super) const SHARDS: usize = 16;

/// The lock of `fingerprint` (FNV-1a of its bytes).
fn shard(fingerprint: &str) -> usize {
    let hash = fingerprint
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    usize::try_from(hash % SHARDS as u64).unwrap_or(0)
}

/// Whether an alert joins its fingerprint's open episode.
pub enum Join {
    No,
    /// Whatever the open episode is.
    Open,
    /// Only when the open episode's newest alert has this label with this alert's value
    /// (and unconditionally when this alert has no such label).
    SameLabel(&'static str),
}

impl Engine {
    /// [`Engine::ingest`], after giving each alert that `which` says joins the start of its
    /// fingerprint's open episode (an alert with no open episode keeps the time its message
    /// gave). Deliveries of the same fingerprints take turns from the lookup to the commit,
    /// so one never misses an alert of the same episode that is being committed alongside
    /// it (an OK right behind its ALARM).
    pub async fn ingest_joining(
        &self,
        source: &str,
        mut alerts: Vec<Alert>,
        which: impl Fn(&Alert) -> Join,
    ) -> Result<Vec<i64>, EngineError> {
        /// An alert's index, its fingerprint, and the label its episode must share.
        type Lookup = (usize, String, Option<(&'static str, String)>);
        // The locks of these fingerprints, taken in one order (no deadlock between two
        // deliveries that share some).
        let shards: std::collections::BTreeSet<usize> = alerts
            .iter()
            .map(|alert| shard(&alert.fingerprint))
            .collect();
        let mut _turns = Vec::with_capacity(shards.len());
        for index in shards {
            if let Some(lock) = self.inner.joining.get(index) {
                _turns.push(lock.lock().await);
            }
        }
        let lookups: Vec<Lookup> = alerts
            .iter()
            .enumerate()
            .filter_map(|(index, alert)| {
                let same = match which(alert) {
                    Join::No => None,
                    Join::Open => Some(None),
                    Join::SameLabel(label) => {
                        Some(alert.labels.get(label).map(|value| (label, value.clone())))
                    }
                }?;
                Some((index, alert.fingerprint.clone(), same))
            })
            .collect();
        if !lookups.is_empty() {
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
        }
        self.ingest(source, alerts).await
    }
}
