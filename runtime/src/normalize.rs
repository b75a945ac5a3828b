//! Turning what monitoring sends into typed alert fields.
//!
//! Sources disagree on spelling (`crit`, `P1`, `warn`); rules compare against the ordered
//! `Severity` enum, so every spelling is mapped here, once. Values keep the unit they were
//! sent with (see `medic_compiler::units::Quantity`), so `750ms` can never be compared
//! with `90%`.

use medic_compiler::units::{Quantity, parse_quantity};

/// The `alert.Severity` enum of the standard library, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// The variant name as written in `.ops` files.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Reads a severity label. Unknown or missing labels are `Warning`, as documented on
/// `alert.severity`: treating an unknown label as critical would let a typo in a
/// monitoring rule trigger automation, and as info would hide it.
pub fn severity(label: Option<&str>) -> Severity {
    let Some(label) = label else {
        return Severity::Warning;
    };
    match label.trim().to_ascii_lowercase().as_str() {
        "critical" | "crit" | "page" | "p1" | "sev1" | "high" | "disaster" | "emergency"
        | "fatal" => Severity::Critical,
        "info" | "informational" | "information" | "p4" | "p5" | "low" | "none" | "ok"
        | "not classified" => Severity::Info,
        _ => Severity::Warning,
    }
}

/// Why an alert value could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("alert has no value")]
    Missing,
    #[error("alert value {0}")]
    Unreadable(String),
}

/// Reads the `value` annotation (`"750ms"`, `"92%"`, `"12"`) with its unit.
pub fn value(annotation: Option<&str>) -> Result<Quantity, ValueError> {
    let text = annotation.ok_or(ValueError::Missing)?;
    parse_quantity(text).map_err(ValueError::Unreadable)
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests"
)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered_and_spellings_map() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!(severity(Some("CRIT")), Severity::Critical);
        assert_eq!(severity(Some("P1")), Severity::Critical);
        assert_eq!(severity(Some("warn")), Severity::Warning);
        assert_eq!(severity(Some("info")), Severity::Info);
        assert_eq!(severity(Some("made-up")), Severity::Warning);
        assert_eq!(severity(None), Severity::Warning);
    }

    #[test]
    fn values_keep_units_and_bad_values_are_errors() {
        assert_eq!(value(Some("750ms")), Ok(Quantity::Duration(750)));
        assert_eq!(value(Some(" 92% ")), Ok(Quantity::Percent(92.0)));
        assert_eq!(value(None), Err(ValueError::Missing));
        assert!(matches!(
            value(Some("very slow")),
            Err(ValueError::Unreadable(_))
        ));
    }
}
