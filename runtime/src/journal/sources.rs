//! What the webhook readers need the journal for beyond storing alerts: the SNS message ids
//! already taken (a replayed message is not taken twice), and the start of a fingerprint's
//! open episode for sources whose messages do not carry it (a CloudWatch `OK`, a Kibana
//! alert's repeated notification).

use super::{Journal, JournalError, write_error};
use rusqlite::{OptionalExtension, params};

impl Journal {
    /// Whether the SNS message `message_id` was already taken.
    pub fn sns_seen(&self, message_id: &str) -> Result<bool, JournalError> {
        self.connection
            .prepare_cached("SELECT 1 FROM sns_messages WHERE message_id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row(params![message_id], |_| Ok(()))
                    .optional()
            })
            .map(|found| found.is_some())
            .map_err(write_error("reading the SNS messages taken"))
    }

    /// Records the SNS message `message_id` as taken at `at`, and forgets the ones taken
    /// before `forget_before` (their timestamps are too old to be accepted again anyway).
    pub fn sns_taken(
        &mut self,
        message_id: &str,
        topic: &str,
        at: i64,
        forget_before: i64,
    ) -> Result<(), JournalError> {
        // The handle commits its calls in groups: no transaction of its own here.
        self.connection
            .prepare_cached("DELETE FROM sns_messages WHERE received_at < ?1")
            .and_then(|mut statement| statement.execute(params![forget_before]))
            .map_err(write_error("forgetting old SNS messages"))?;
        self.connection
            .prepare_cached(
                "INSERT OR IGNORE INTO sns_messages (message_id, topic, received_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut statement| statement.execute(params![message_id, topic, at]))
            .map_err(write_error("recording an SNS message"))?;
        Ok(())
    }

    /// The start of `fingerprint`'s open episode: the `starts_at` of its newest alert when
    /// that alert is firing (a resolved one closed the episode) and, when `same_label` is
    /// given, carries that label with that value (Kibana's id of one active period), else
    /// `None`.
    pub fn open_episode(
        &self,
        fingerprint: &str,
        same_label: Option<(&str, &str)>,
    ) -> Result<Option<i64>, JournalError> {
        let newest = self
            .connection
            .prepare_cached(
                "SELECT status, starts_at, payload FROM alerts WHERE fingerprint = ?1
                 ORDER BY starts_at DESC, id DESC LIMIT 1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![fingerprint], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    })
                    .optional()
            })
            .map_err(write_error("reading a fingerprint's open episode"))?;
        Ok(newest.and_then(|(status, starts_at, payload)| {
            open_start(&status, starts_at, &payload, same_label)
        }))
    }
}

/// The episode start a fingerprint's newest alert leaves open (see [`Journal::open_episode`];
/// the PostgreSQL store reads the same row).
pub(super) fn open_start(
    status: &str,
    starts_at: i64,
    payload: &str,
    same_label: Option<(&str, &str)>,
) -> Option<i64> {
    if status != "firing" {
        return None;
    }
    if let Some((label, value)) = same_label {
        let stored: Option<String> = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|payload| {
                payload
                    .get("labels")?
                    .get(label)?
                    .as_str()
                    .map(str::to_string)
            });
        if stored.as_deref() != Some(value) {
            return None;
        }
    }
    Some(starts_at)
}
