//! Units of measure: durations, sizes, percentages and times, as written in `.ops` files and
//! as found in alert payloads.
//!
//! The same functions read literals in source text and values in alerts (`value="750ms"`),
//! so a value means the same thing wherever it is written. Errors are plain strings: these
//! helpers know no position, the caller attaches the span.

/// Milliseconds in each duration unit.
const DURATION_UNITS: &[(&str, i64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

const SIZE_UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

/// Parses `500ms`, `10m`, `1h30m` into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number in `{text}`"));
        }
        let (number, after) = rest.split_at(digits);
        let number: i64 = number
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let Some((unit, factor)) = DURATION_UNITS
            .iter()
            .filter(|(unit, _)| after.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
        else {
            return Err(format!("unknown duration unit in `{text}`"));
        };
        total = number
            .checked_mul(*factor)
            .and_then(|millis| total.checked_add(millis))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        rest = after.get(unit.len()..).unwrap_or("");
    }
    Ok(total)
}

/// Parses `512MiB`, `10GB`, `1.5GB` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let Some((unit, factor)) = SIZE_UNITS.iter().find(|(unit, _)| text.ends_with(unit)) else {
        return Err(format!("unknown size unit in `{text}`"));
    };
    let number = text.get(..text.len() - unit.len()).unwrap_or("");
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    let bytes = value * (*factor as f64);
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses an RFC 3339 time into milliseconds since the Unix epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|error| error.to_string())
}

/// Writes milliseconds as the shortest exact duration literal (`90000` is `1m30s`).
pub fn format_duration(millis: i64) -> String {
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if millis < 0 {
        out.push('-');
    }
    let mut rest = millis.unsigned_abs();
    for (unit, factor) in DURATION_UNITS.iter().rev() {
        let factor = factor.unsigned_abs();
        if *unit == "w" {
            continue;
        }
        if rest >= factor {
            out.push_str(&format!("{}{unit}", rest / factor));
            rest %= factor;
        }
    }
    out
}

pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in SIZE_UNITS {
        if bytes >= *factor && bytes.is_multiple_of(*factor) && *unit != "B" {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

pub fn format_time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{millis}ms since epoch"))
}

/// A number with the unit it was given in an alert payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// A plain number (`"12"`, `"0.92"`).
    Number(f64),
    Duration(i64),
    Percent(f64),
    Size(u64),
}

impl Quantity {
    pub fn unit_name(self) -> &'static str {
        match self {
            Quantity::Number(_) => "number",
            Quantity::Duration(_) => "Duration",
            Quantity::Percent(_) => "Percent",
            Quantity::Size(_) => "Size",
        }
    }
}

/// Reads an alert value as sent by monitoring: `"750ms"`, `"92%"`, `"12"`, `"1.5GB"`.
pub fn parse_quantity(text: &str) -> Result<Quantity, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty value".into());
    }
    if let Some(number) = text.strip_suffix('%') {
        return number
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .map(Quantity::Percent)
            .ok_or_else(|| format!("`{text}` is not a percentage"));
    }
    if let Ok(number) = text.parse::<f64>() {
        if number.is_finite() {
            return Ok(Quantity::Number(number));
        }
        return Err(format!("`{text}` is not a finite number"));
    }
    if let Ok(millis) = parse_duration(text) {
        return Ok(Quantity::Duration(millis));
    }
    if let Ok(bytes) = parse_size(text) {
        return Ok(Quantity::Size(bytes));
    }
    Err(format!(
        "`{text}` is not a number, duration, percentage or size"
    ))
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
    fn durations_round_trip() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(90_000), "1m30s");
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("10x").is_err());
    }

    #[test]
    fn quantities_keep_their_unit() {
        assert_eq!(parse_quantity("750ms"), Ok(Quantity::Duration(750)));
        assert_eq!(parse_quantity("92%"), Ok(Quantity::Percent(92.0)));
        assert_eq!(parse_quantity("12"), Ok(Quantity::Number(12.0)));
        assert_eq!(parse_quantity("1KiB"), Ok(Quantity::Size(1024)));
        assert!(parse_quantity("fast").is_err());
    }
}
