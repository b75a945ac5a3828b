//! The functions of PromQL that compute a value from samples, as Prometheus 2.42 computes
//! them (promql/functions.go, promql/quantile.go): the range-vector functions with
//! `extrapolatedRate`'s extrapolation, `histogram_quantile`'s `bucketQuantile`, and Go's
//! `math.Max` / `math.Min`, whose NaN handling `clamp` inherits. Pure functions of numbers.

use std::collections::BTreeMap;

use super::eval::without_name;
use super::store::Labels;

/// Go's `math.Max`: +Inf wins over NaN, NaN over numbers, +0 over -0.
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over numbers, -0 over +0.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

/// A range-vector function of one series' samples in `window`; none when it has no value.
pub(crate) fn over_time(name: &str, samples: &[(i64, f64)], window: (i64, i64)) -> Option<f64> {
    let (_, last) = samples.last().copied()?;
    let values = samples.iter().map(|(_, value)| *value);
    match name {
        "rate" => extrapolated_rate(samples, window, true, true),
        "increase" => extrapolated_rate(samples, window, true, false),
        "delta" => extrapolated_rate(samples, window, false, false),
        "irate" => instant_rate(samples),
        "count_over_time" => Some(samples.len() as f64),
        "last_over_time" => Some(last),
        "sum_over_time" => Some(values.sum()),
        "max_over_time" => Some(values.fold(f64::NAN, |max, value| {
            if value > max || max.is_nan() {
                value
            } else {
                max
            }
        })),
        "min_over_time" => Some(values.fold(f64::NAN, |min, value| {
            if value < min || min.is_nan() {
                value
            } else {
                min
            }
        })),
        "avg_over_time" => {
            let mut mean = 0.0_f64;
            let mut count = 0.0_f64;
            for value in values {
                count += 1.0;
                if mean.is_infinite() {
                    if value.is_infinite() && (mean > 0.0) == (value > 0.0) {
                        continue;
                    }
                    if value.is_finite() {
                        continue;
                    }
                }
                mean += value / count - mean / count;
            }
            Some(mean)
        }
        _ => None,
    }
}

/// Prometheus's `extrapolatedRate` (rate, increase, delta): the change over the samples,
/// corrected for counter resets, extrapolated towards the window's edges when the first
/// and last samples are near them (within 1.1 average intervals; otherwise by half an
/// interval), and for counters never below zero.
fn extrapolated_rate(
    samples: &[(i64, f64)],
    (range_start, range_end): (i64, i64),
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let [(first_t, first_v), .., (last_t, last_v)] = samples else {
        return None;
    };
    let mut result = last_v - first_v;
    if is_counter {
        let mut previous = *first_v;
        for (_, value) in samples.iter().skip(1) {
            if *value < previous {
                result += previous;
            }
            previous = *value;
        }
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_interval = sampled_interval / (samples.len() - 1) as f64;
    if is_counter && result > 0.0 && *first_v >= 0.0 {
        // A counter started at zero: extrapolate no further back than that zero.
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_interval * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        average_interval / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        average_interval / 2.0
    };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// Prometheus's `instantValue` for `irate`: the per-second change between the last two
/// samples (the last value itself after a counter reset).
fn instant_rate(samples: &[(i64, f64)]) -> Option<f64> {
    let [.., (previous_t, previous_v), (last_t, last_v)] = samples else {
        return None;
    };
    let change = if last_v < previous_v {
        *last_v
    } else {
        last_v - previous_v
    };
    let interval = last_t - previous_t;
    if interval == 0 {
        return None;
    }
    Some(change / (interval as f64 / 1000.0))
}

/// Prometheus's `histogram_quantile` over classic buckets: the series grouped by all
/// labels but `le`, each group's quantile as `bucketQuantile` computes it.
pub(crate) fn histogram_quantile(quantile: f64, input: Vec<(Labels, f64)>) -> Vec<(Labels, f64)> {
    let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for (mut labels, count) in input {
        // A series without a parsable `le` is not a bucket, and is skipped.
        let Some(upper_bound) = labels.remove("le").and_then(|le| parse_go_float(&le)) else {
            continue;
        };
        groups.entry(labels).or_default().push((upper_bound, count));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| (without_name(labels), bucket_quantile(quantile, buckets)))
        .collect()
}

/// A float as Go's `strconv.ParseFloat` reads bucket bounds (`+Inf`, `Inf`, `NaN`, ...).
fn parse_go_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

/// Prometheus's `bucketQuantile` (promql/quantile.go).
fn bucket_quantile(quantile: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if quantile.is_nan() {
        return f64::NAN;
    }
    if quantile < 0.0 {
        return f64::NEG_INFINITY;
    }
    if quantile > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|(a, _), (b, _)| a.total_cmp(b));
    if buckets
        .last()
        .is_none_or(|(upper, _)| *upper != f64::INFINITY)
    {
        return f64::NAN;
    }
    // Buckets of equal bounds are added together.
    let mut coalesced: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (upper, count) in buckets {
        match coalesced.last_mut() {
            Some((last_upper, last_count)) if *last_upper == upper => *last_count += count,
            _ => coalesced.push((upper, count)),
        }
    }
    // Counts that fall from one bucket to the next (separate scrapes) are raised.
    let mut max = f64::NEG_INFINITY;
    for (_, count) in &mut coalesced {
        if *count > max {
            max = *count;
        } else if *count < max {
            *count = max;
        }
    }
    if coalesced.len() < 2 {
        return f64::NAN;
    }
    let Some(&(_, observations)) = coalesced.last() else {
        return f64::NAN;
    };
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = quantile * observations;
    let searched = coalesced.len() - 1;
    let index = coalesced
        .iter()
        .take(searched)
        .position(|(_, count)| *count >= rank)
        .unwrap_or(searched);
    if index == searched {
        return coalesced
            .get(searched - 1)
            .map_or(f64::NAN, |(upper, _)| *upper);
    }
    let Some(&(bucket_end, mut count)) = coalesced.get(index) else {
        return f64::NAN;
    };
    if index == 0 && bucket_end <= 0.0 {
        return bucket_end;
    }
    let mut bucket_start = 0.0;
    if let Some(&(previous_upper, previous_count)) =
        index.checked_sub(1).and_then(|i| coalesced.get(i))
    {
        bucket_start = previous_upper;
        count -= previous_count;
        rank -= previous_count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}
