//! The filters of a runs list, as a query string gives them (`GET /api/runs`, `/ui/runs`),
//! checked and turned into the journal's [`RunQuery`]: every filter is a condition of the
//! SQL query, none is applied in memory.

use crate::journal::RunQuery;

/// The query string of a runs list. Empty fields are absent (an HTML form sends them).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFilter {
    pub state: Option<String>,
    pub rule: Option<String>,
    pub playbook: Option<String>,
    /// The name of the alert that started the run.
    pub alert: Option<String>,
    /// `name=value`: a label of that alert.
    pub label: Option<String>,
    /// Started at or after: `2026-12-01 10:00` (UTC), RFC 3339, or a duration ago (`2h`).
    pub from: Option<String>,
    /// Started before; as `from`.
    pub to: Option<String>,
    /// A run id.
    pub id: Option<String>,
    /// An alert id: the runs it started.
    pub alert_id: Option<String>,
    /// 0-based, of `limit` runs.
    pub page: Option<u32>,
    pub limit: Option<u32>,
}

/// The states a run can be in, as the filter accepts them.
pub const RUN_STATES: [&str; 7] = [
    "running",
    "paused",
    "succeeded",
    "failed",
    "escalated",
    "cancelled",
    "interrupted",
];

fn given(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

impl RunFilter {
    /// The journal query for page `page` of `limit` runs, at `now` (wall ms), or what is
    /// wrong with the filter, in words.
    pub fn to_query(&self, now: i64, default_limit: u32) -> Result<RunQuery, String> {
        let state = given(&self.state);
        if let Some(state) = &state
            && !RUN_STATES.contains(&state.as_str())
        {
            return Err(format!(
                "no run state {state:?}: use one of {}",
                RUN_STATES.join(", ")
            ));
        }
        let label = match given(&self.label) {
            None => None,
            Some(label) => match label.split_once('=') {
                Some((name, value)) if !name.trim().is_empty() => {
                    Some((name.trim().to_string(), value.trim().to_string()))
                }
                _ => return Err(format!("label {label:?} is not name=value")),
            },
        };
        let number = |field: &Option<String>, what: &str| match given(field) {
            None => Ok(None),
            Some(id) => id
                .trim_start_matches('#')
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{id:?} is not {what}")),
        };
        let id = number(&self.id, "a run id")?;
        let alert_id = number(&self.alert_id, "an alert id")?;
        let limit = self.limit.unwrap_or(default_limit).clamp(1, 1_000);
        Ok(RunQuery {
            state,
            rule: given(&self.rule),
            playbook: given(&self.playbook),
            alert: given(&self.alert),
            label,
            from: given(&self.from)
                .map(|text| moment("from", &text, now))
                .transpose()?,
            until: given(&self.to)
                .map(|text| moment("to", &text, now))
                .transpose()?,
            id,
            alert_id,
            offset: self.page.unwrap_or(0).saturating_mul(limit),
            limit,
        })
    }
}

/// A point in time: a duration ago, RFC 3339, or a UTC date with an optional time.
pub fn moment(field: &str, text: &str, now: i64) -> Result<i64, String> {
    if let Ok(ago) = medic_compiler::units::parse_duration(text) {
        return Ok(now.saturating_sub(ago));
    }
    if let Ok(time) = medic_compiler::units::parse_time(text) {
        return Ok(time);
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc().timestamp_millis());
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(time) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(time.and_utc().timestamp_millis());
    }
    Err(format!(
        "`{field}` is not a time: {text:?} (write 2026-12-01 10:00 in UTC, RFC 3339, or a duration ago such as 2h)"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn filters_become_conditions_and_bad_ones_say_why() {
        let filter = RunFilter {
            state: Some("failed".into()),
            label: Some("team = payments".into()),
            from: Some("2h".into()),
            to: Some("2026-12-01 10:00".into()),
            id: Some("#42".into()),
            page: Some(2),
            rule: Some("".into()),
            ..RunFilter::default()
        };
        let query = filter.to_query(10_000_000, 50).unwrap();
        assert_eq!(query.state.as_deref(), Some("failed"));
        assert_eq!(query.rule, None, "an empty field is no filter");
        assert_eq!(query.label, Some(("team".into(), "payments".into())));
        assert_eq!(query.from, Some(10_000_000 - 7_200_000));
        assert_eq!(query.until, Some(1_796_119_200_000));
        assert_eq!(query.id, Some(42));
        assert_eq!((query.offset, query.limit), (100, 50));
        for (bad, says) in [
            (
                RunFilter {
                    state: Some("done".into()),
                    ..RunFilter::default()
                },
                "no run state",
            ),
            (
                RunFilter {
                    label: Some("team".into()),
                    ..RunFilter::default()
                },
                "name=value",
            ),
            (
                RunFilter {
                    from: Some("yesterday".into()),
                    ..RunFilter::default()
                },
                "`from` is not a time",
            ),
            (
                RunFilter {
                    id: Some("x".into()),
                    ..RunFilter::default()
                },
                "not a run id",
            ),
            (
                RunFilter {
                    alert_id: Some("1.5".into()),
                    ..RunFilter::default()
                },
                "not an alert id",
            ),
        ] {
            let error = bad.to_query(0, 50).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }
}
