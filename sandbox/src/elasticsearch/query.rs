//! The part of the Query DSL, sorting and aggregations the sandbox evaluates, over documents
//! held as JSON. Parsing and evaluation are one step: a query that does not parse is an
//! [`EsError`] in Elasticsearch's own words, never a match-nothing.
//!
//! Field values are read the way Elasticsearch reads `_source`: `log.level` is found as
//! `{"log": {"level": ...}}` or as the dotted key `{"log.level": ...}`, and an array matches
//! when one of its values does. Every string field is both a `keyword` (exact, for `term`,
//! `terms`, `terms` aggregations and sorting) and a `text` field analyzed by an
//! approximation of the standard analyzer (for `match_phrase`): split at every character
//! that is not a letter or a digit, lower-cased.

use super::EsError;
use serde_json::{Map, Value as Json, json};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Nesting of `bool` queries read at most, as Elasticsearch's `indices.query.bool.max_nested_depth`.
const MAX_DEPTH: usize = 30;

/// A parsed query.
#[derive(Debug, Clone)]
pub(super) enum Query {
    MatchAll,
    Bool {
        must: Vec<Query>,
        should: Vec<Query>,
        must_not: Vec<Query>,
        minimum_should_match: usize,
    },
    Term {
        field: String,
        value: Json,
        case_insensitive: bool,
    },
    Terms {
        field: String,
        values: Vec<Json>,
    },
    Range {
        field: String,
        lower: Option<(f64, bool)>,
        upper: Option<(f64, bool)>,
    },
    MatchPhrase {
        field: String,
        tokens: Vec<String>,
    },
    Exists {
        field: String,
    },
}

fn parsing(reason: String) -> EsError {
    EsError::new(400, "parsing_exception", reason)
}

fn object<'j>(json: &'j Json, query: &str) -> Result<&'j Map<String, Json>, EsError> {
    json.as_object().ok_or_else(|| {
        parsing(format!(
            "[{query}] query malformed, no start_object after query name"
        ))
    })
}

/// The one `field: body` pair of a leaf query such as `term`.
fn single_field<'j>(json: &'j Json, query: &str) -> Result<(&'j String, &'j Json), EsError> {
    let fields = object(json, query)?;
    let mut pairs = fields.iter();
    match (pairs.next(), pairs.next()) {
        (Some(pair), None) => Ok(pair),
        (None, _) => Err(parsing(format!(
            "[{query}] query doesn't support an empty body"
        ))),
        (Some(_), Some((second, _))) => Err(parsing(format!(
            "[{query}] query doesn't support multiple fields, found [{}] and [{second}]",
            fields.keys().next().map_or("", String::as_str)
        ))),
    }
}

fn clauses(json: &Json, depth: usize) -> Result<Vec<Query>, EsError> {
    match json {
        Json::Array(items) => items.iter().map(|item| parse_at(item, depth)).collect(),
        other => Ok(vec![parse_at(other, depth)?]),
    }
}

pub(super) fn parse(json: &Json) -> Result<Query, EsError> {
    parse_at(json, 0)
}

fn parse_at(json: &Json, depth: usize) -> Result<Query, EsError> {
    if depth > MAX_DEPTH {
        return Err(parsing(format!(
            "Query nested too deeply, more than [{MAX_DEPTH}] levels"
        )));
    }
    let (name, body) = single_field(json, "query")
        .map_err(|_| parsing("[_na] query malformed, must start with start_object".into()))?;
    match name.as_str() {
        "match_all" => {
            object(body, "match_all")?;
            Ok(Query::MatchAll)
        }
        "bool" => {
            let fields = object(body, "bool")?;
            let mut must = Vec::new();
            let mut should = Vec::new();
            let mut must_not = Vec::new();
            let mut minimum = None;
            for (key, value) in fields {
                match key.as_str() {
                    "must" | "filter" => must.extend(clauses(value, depth + 1)?),
                    "should" => should.extend(clauses(value, depth + 1)?),
                    "must_not" => must_not.extend(clauses(value, depth + 1)?),
                    "minimum_should_match" => {
                        let count = match value {
                            Json::Number(number) => number.as_u64(),
                            Json::String(text) => text.parse::<u64>().ok(),
                            _ => None,
                        };
                        minimum = Some(count.ok_or_else(|| {
                            parsing(format!(
                                "[bool] query: minimum_should_match [{value}] is not modelled by the sandbox (a whole number)"
                            ))
                        })?);
                    }
                    "boost" | "_name" => {}
                    other => {
                        return Err(parsing(format!("[bool] query does not support [{other}]")));
                    }
                }
            }
            // With no `must` or `filter` clause, one `should` clause must match.
            let default = usize::from(must.is_empty() && !should.is_empty());
            Ok(Query::Bool {
                must,
                should,
                must_not,
                minimum_should_match: minimum.map_or(default, |count| {
                    usize::try_from(count).unwrap_or(usize::MAX)
                }),
            })
        }
        "term" => {
            let (field, value) = single_field(body, "term")?;
            let (value, case_insensitive) = match value {
                Json::Object(options) => {
                    let mut term = None;
                    let mut insensitive = false;
                    for (key, option) in options {
                        match key.as_str() {
                            "value" => term = Some(option.clone()),
                            "case_insensitive" => insensitive = option.as_bool() == Some(true),
                            "boost" | "_name" => {}
                            other => {
                                return Err(parsing(format!(
                                    "[term] query does not support [{other}]"
                                )));
                            }
                        }
                    }
                    let term = term.ok_or_else(|| {
                        EsError::new(
                            400,
                            "illegal_argument_exception",
                            "value cannot be null".into(),
                        )
                    })?;
                    (term, insensitive)
                }
                Json::Array(_) | Json::Null => {
                    return Err(parsing(format!(
                        "[term] query does not support array of values for field [{field}]"
                    )));
                }
                scalar => (scalar.clone(), false),
            };
            Ok(Query::Term {
                field: field.clone(),
                value,
                case_insensitive,
            })
        }
        "terms" => {
            let fields = object(body, "terms")?;
            let mut found = None;
            for (field, value) in fields {
                if field == "boost" || field == "_name" {
                    continue;
                }
                let Json::Array(values) = value else {
                    return Err(parsing(format!(
                        "[terms] query does not support [{field}] as a single value"
                    )));
                };
                if found.is_some() {
                    return Err(parsing(
                        "[terms] query does not support multiple fields".into(),
                    ));
                }
                found = Some(Query::Terms {
                    field: field.clone(),
                    values: values.clone(),
                });
            }
            found.ok_or_else(|| parsing("[terms] query requires a field".into()))
        }
        "range" => {
            let (field, options) = single_field(body, "range")?;
            let options = object(options, "range")?;
            let mut lower = None;
            let mut upper = None;
            for (key, value) in options {
                match key.as_str() {
                    "gte" => lower = Some((bound(field, value)?, true)),
                    "gt" => lower = Some((bound(field, value)?, false)),
                    "lte" => upper = Some((bound(field, value)?, true)),
                    "lt" => upper = Some((bound(field, value)?, false)),
                    // Bounds are read as ISO 8601 or epoch milliseconds whatever the format.
                    "format" | "boost" | "_name" => {}
                    other => {
                        return Err(parsing(format!("[range] query does not support [{other}]")));
                    }
                }
            }
            Ok(Query::Range {
                field: field.clone(),
                lower,
                upper,
            })
        }
        "match_phrase" => {
            let (field, value) = single_field(body, "match_phrase")?;
            let text = match value {
                Json::String(text) => text.clone(),
                Json::Object(options) => {
                    let mut text = None;
                    for (key, option) in options {
                        match key.as_str() {
                            "query" => text = Some(scalar_text(option)),
                            "boost" | "_name" | "analyzer" => {}
                            "slop" if option.as_u64() == Some(0) => {}
                            other => {
                                return Err(parsing(format!(
                                    "[match_phrase] query does not support [{other}]"
                                )));
                            }
                        }
                    }
                    text.ok_or_else(|| parsing("No text specified for text query".into()))?
                }
                other => scalar_text(other),
            };
            Ok(Query::MatchPhrase {
                field: field.clone(),
                tokens: tokens(&text),
            })
        }
        "exists" => {
            let fields = object(body, "exists")?;
            let field = fields
                .get("field")
                .and_then(Json::as_str)
                .ok_or_else(|| parsing("[exists] must be provided with a [field]".into()))?;
            Ok(Query::Exists {
                field: field.to_string(),
            })
        }
        other => Err(parsing(format!("unknown query [{other}]"))),
    }
}

fn scalar_text(json: &Json) -> String {
    match json {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A `range` bound: a number, or a date (ISO 8601 or epoch milliseconds as text), as a
/// number of milliseconds.
fn bound(field: &str, json: &Json) -> Result<f64, EsError> {
    let failed = || {
        EsError::new(
            400,
            "parse_exception",
            format!(
                "failed to parse date field [{json}] with format [strict_date_optional_time||epoch_millis]: [failed to parse date field [{json}] of field [{field}]]"
            ),
        )
    };
    match json {
        Json::Number(number) => number.as_f64().ok_or_else(failed),
        Json::String(text) => date_or_number(text).ok_or_else(failed),
        _ => Err(failed()),
    }
}

fn date_or_number(text: &str) -> Option<f64> {
    match text.parse::<f64>() {
        Ok(number) => Some(number),
        Err(_) => parse_date(text).map(|millis| millis as f64),
    }
}

/// The standard analyzer, approximately: letters and digits, lower-cased.
pub(super) fn tokens(text: &str) -> Vec<String> {
    text.split(|character: char| !character.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The values of `path` in a document (`a.b` as `{"a":{"b":..}}` or `{"a.b":..}`),
/// arrays flattened.
pub(super) fn values<'j>(document: &'j Json, path: &str) -> Vec<&'j Json> {
    let mut found = Vec::new();
    collect(document, path, &mut found);
    found
}

fn collect<'j>(json: &'j Json, path: &str, found: &mut Vec<&'j Json>) {
    match json {
        Json::Array(items) => items.iter().for_each(|item| collect(item, path, found)),
        Json::Object(fields) => {
            if let Some(value) = fields.get(path) {
                flatten(value, found);
            }
            for (cut, _) in path.match_indices('.') {
                let (Some(head), Some(rest)) = (path.get(..cut), path.get(cut + 1..)) else {
                    continue;
                };
                if let Some(inner) = fields.get(head) {
                    collect(inner, rest, found);
                }
            }
        }
        _ => {}
    }
}

fn flatten<'j>(json: &'j Json, found: &mut Vec<&'j Json>) {
    match json {
        Json::Array(items) => items.iter().for_each(|item| flatten(item, found)),
        Json::Null => {}
        other => found.push(other),
    }
}

/// A value as a number for ranges and sorting: numbers as themselves, dates as epoch
/// milliseconds.
fn numeric(json: &Json) -> Option<f64> {
    match json {
        Json::Number(number) => number.as_f64(),
        Json::String(text) => parse_date(text).map(|millis| millis as f64),
        _ => None,
    }
}

fn same_term(document: &Json, query: &Json, case_insensitive: bool) -> bool {
    match (document, query) {
        (Json::String(left), Json::String(right)) if case_insensitive => {
            left.to_lowercase() == right.to_lowercase()
        }
        (Json::String(left), Json::String(right)) => left == right,
        (Json::Number(left), Json::Number(right)) => left.as_f64() == right.as_f64(),
        (Json::Number(left), Json::String(right)) | (Json::String(right), Json::Number(left)) => {
            right.parse::<f64>().ok() == left.as_f64()
        }
        (Json::Bool(left), Json::Bool(right)) => left == right,
        (Json::Bool(left), Json::String(right)) => right == if *left { "true" } else { "false" },
        _ => false,
    }
}

fn contains_phrase(haystack: &[String], needle: &[String]) -> bool {
    if needle.is_empty() {
        return false;
    }
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

pub(super) fn matches(query: &Query, document: &Json) -> bool {
    match query {
        Query::MatchAll => true,
        Query::Bool {
            must,
            should,
            must_not,
            minimum_should_match,
        } => {
            must.iter().all(|clause| matches(clause, document))
                && !must_not.iter().any(|clause| matches(clause, document))
                && should
                    .iter()
                    .filter(|clause| matches(clause, document))
                    .count()
                    >= *minimum_should_match
        }
        Query::Term {
            field,
            value,
            case_insensitive,
        } => values(document, field)
            .into_iter()
            .any(|found| same_term(found, value, *case_insensitive)),
        Query::Terms {
            field,
            values: wanted,
        } => values(document, field)
            .into_iter()
            .any(|found| wanted.iter().any(|value| same_term(found, value, false))),
        Query::Range {
            field,
            lower,
            upper,
        } => values(document, field).into_iter().any(|found| {
            let Some(number) = numeric(found) else {
                return false;
            };
            let above = lower.is_none_or(|(limit, inclusive)| {
                if inclusive {
                    number >= limit
                } else {
                    number > limit
                }
            });
            let below = upper.is_none_or(|(limit, inclusive)| {
                if inclusive {
                    number <= limit
                } else {
                    number < limit
                }
            });
            above && below
        }),
        Query::MatchPhrase {
            field,
            tokens: phrase,
        } => values(document, field).into_iter().any(|found| {
            found
                .as_str()
                .is_some_and(|text| contains_phrase(&tokens(text), phrase))
        }),
        Query::Exists { field } => !values(document, field).is_empty(),
    }
}

// ---------------------------------------------------------------------------------------
// Sorting

#[derive(Debug, Clone, PartialEq)]
pub(super) enum SortField {
    /// The implicit or explicit tiebreaker of a point in time, and `_doc`.
    ShardDoc,
    Score,
    Field {
        name: String,
        /// Dates given back as text in this format rather than as epoch milliseconds.
        formatted: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sort {
    pub(super) field: SortField,
    pub(super) descending: bool,
}

fn sort_field(name: &str, formatted: bool) -> SortField {
    match name {
        "_shard_doc" | "_doc" => SortField::ShardDoc,
        "_score" => SortField::Score,
        other => SortField::Field {
            name: other.to_string(),
            formatted,
        },
    }
}

fn order(json: &Json) -> Result<bool, EsError> {
    match json.as_str() {
        Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        _ => Err(EsError::new(
            400,
            "illegal_argument_exception",
            format!("Unknown SortOrder [{}]", scalar_text(json)),
        )),
    }
}

/// `sort`: `"field"`, `{"field": "desc"}`, `{"field": {"order": "desc", "format": ...}}`,
/// or a list of those.
pub(super) fn parse_sort(json: &Json) -> Result<Vec<Sort>, EsError> {
    let items = match json {
        Json::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    items
        .iter()
        .map(|item| match item {
            Json::String(name) => Ok(Sort {
                descending: name == "_score",
                field: sort_field(name, false),
            }),
            Json::Object(fields) => {
                let mut pairs = fields.iter();
                let (Some((name, options)), None) = (pairs.next(), pairs.next()) else {
                    return Err(parsing(
                        "[sort] an object must hold exactly one field name".into(),
                    ));
                };
                let default_descending = name == "_score";
                match options {
                    Json::String(_) => Ok(Sort {
                        field: sort_field(name, false),
                        descending: order(options)?,
                    }),
                    Json::Object(options) => {
                        let mut descending = default_descending;
                        let mut formatted = false;
                        for (key, value) in options {
                            match key.as_str() {
                                "order" => descending = order(value)?,
                                "format" => formatted = true,
                                "unmapped_type" | "missing" | "numeric_type" => {}
                                other => {
                                    return Err(parsing(format!(
                                        "[field_sort] unknown field [{other}]"
                                    )));
                                }
                            }
                        }
                        Ok(Sort {
                            field: sort_field(name, formatted),
                            descending,
                        })
                    }
                    _ => Err(parsing(format!("[sort] unexpected value for [{name}]"))),
                }
            }
            _ => Err(parsing(
                "[sort] expected a string, an object or a list".into(),
            )),
        })
        .collect()
}

/// A document's value for one sort key: what the hit's `sort` shows and `search_after`
/// compares with.
pub(super) fn sort_value(document: &Json, sequence: u64, sort: &Sort) -> Json {
    match &sort.field {
        SortField::ShardDoc => json!(sequence),
        SortField::Score => json!(1.0),
        SortField::Field { name, formatted } => {
            let found = values(document, name);
            let pick = if sort.descending {
                found
                    .iter()
                    .copied()
                    .max_by(|left, right| compare(left, right))
            } else {
                found
                    .iter()
                    .copied()
                    .min_by(|left, right| compare(left, right))
            };
            match pick {
                None => Json::Null,
                Some(Json::String(text)) => match parse_date(text) {
                    Some(millis) if *formatted => Json::String(format_date(millis)),
                    Some(millis) => json!(millis),
                    None => Json::String(text.clone()),
                },
                Some(other) => other.clone(),
            }
        }
    }
}

/// Orders two sort values: numbers (dates included) by value, text by bytes; a missing
/// value (`null`) after every other, as the default `missing: _last` does.
pub(super) fn compare(left: &Json, right: &Json) -> Ordering {
    match (left, right) {
        (Json::Null, Json::Null) => Ordering::Equal,
        (Json::Null, _) => Ordering::Greater,
        (_, Json::Null) => Ordering::Less,
        _ => match (numeric(left), numeric(right)) {
            (Some(left), Some(right)) => left.total_cmp(&right),
            _ => scalar_text(left).cmp(&scalar_text(right)),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Aggregations

#[derive(Debug, Clone)]
pub(super) enum Aggregation {
    Filter(Query),
    Filters(FiltersBuckets),
    Terms { field: String, size: usize },
}

#[derive(Debug, Clone)]
pub(super) enum FiltersBuckets {
    Keyed(BTreeMap<String, Query>),
    Anonymous(Vec<Query>),
}

pub(super) fn parse_aggregations(json: &Json) -> Result<BTreeMap<String, Aggregation>, EsError> {
    let fields = json
        .as_object()
        .ok_or_else(|| parsing("Found [aggs] that is not an object".into()))?;
    let mut parsed = BTreeMap::new();
    for (name, body) in fields {
        let definition = body.as_object().ok_or_else(|| {
            parsing(format!(
                "Expected [START_OBJECT] under [{name}], but got a [VALUE] in [{name}]"
            ))
        })?;
        let mut kinds = definition.iter();
        let (Some((kind, options)), None) = (kinds.next(), kinds.next()) else {
            return Err(parsing(format!(
                "Expected one aggregation type under [{name}]; sub-aggregations are not modelled by the sandbox"
            )));
        };
        let aggregation = match kind.as_str() {
            "filter" => Aggregation::Filter(parse(options)?),
            "filters" => {
                let filters = options
                    .as_object()
                    .and_then(|options| options.get("filters"))
                    .ok_or_else(|| {
                        parsing(format!("[filters] aggregation [{name}] requires [filters]"))
                    })?;
                match filters {
                    Json::Object(keyed) => Aggregation::Filters(FiltersBuckets::Keyed(
                        keyed
                            .iter()
                            .map(|(key, query)| Ok((key.clone(), parse(query)?)))
                            .collect::<Result<_, EsError>>()?,
                    )),
                    Json::Array(anonymous) => Aggregation::Filters(FiltersBuckets::Anonymous(
                        anonymous
                            .iter()
                            .map(parse)
                            .collect::<Result<_, EsError>>()?,
                    )),
                    _ => {
                        return Err(parsing(format!(
                            "[filters] aggregation [{name}]: [filters] must be an object or a list"
                        )));
                    }
                }
            }
            "terms" => {
                let options = options.as_object().ok_or_else(|| {
                    parsing(format!("[terms] aggregation [{name}] must be an object"))
                })?;
                let field = options
                    .get("field")
                    .and_then(Json::as_str)
                    .ok_or_else(|| {
                        EsError::new(
                            400,
                            "illegal_argument_exception",
                            format!("Required one of fields [field, script], but none were specified. in [{name}]"),
                        )
                    })?;
                let size = match options.get("size") {
                    None => 10,
                    Some(size) => size
                        .as_u64()
                        .and_then(|size| usize::try_from(size).ok())
                        .filter(|size| *size > 0)
                        .ok_or_else(|| {
                            EsError::new(
                                400,
                                "illegal_argument_exception",
                                format!(
                                    "[size] must be greater than 0. Found [{size}] in [{name}]"
                                ),
                            )
                        })?,
                };
                Aggregation::Terms {
                    field: field.to_string(),
                    size,
                }
            }
            other => return Err(parsing(format!("Unknown aggregation type [{other}]"))),
        };
        parsed.insert(name.clone(), aggregation);
    }
    Ok(parsed)
}

pub(super) fn aggregate(aggregation: &Aggregation, documents: &[&Json]) -> Json {
    let count = |query: &Query| {
        documents
            .iter()
            .filter(|document| matches(query, document))
            .count()
    };
    match aggregation {
        Aggregation::Filter(query) => json!({ "doc_count": count(query) }),
        Aggregation::Filters(FiltersBuckets::Keyed(filters)) => {
            let buckets: Map<String, Json> = filters
                .iter()
                .map(|(key, query)| (key.clone(), json!({ "doc_count": count(query) })))
                .collect();
            json!({ "buckets": buckets })
        }
        Aggregation::Filters(FiltersBuckets::Anonymous(filters)) => {
            let buckets: Vec<Json> = filters
                .iter()
                .map(|query| json!({ "doc_count": count(query) }))
                .collect();
            json!({ "buckets": buckets })
        }
        Aggregation::Terms { field, size } => {
            let mut counts: BTreeMap<String, (Json, u64)> = BTreeMap::new();
            for document in documents {
                let mut seen = Vec::new();
                for value in values(document, field) {
                    let key = scalar_text(value);
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key.clone());
                    counts.entry(key).or_insert_with(|| (value.clone(), 0)).1 += 1;
                }
            }
            let mut buckets: Vec<(Json, u64)> = counts.into_values().collect();
            // Most documents first, then by key: the terms aggregation's default order.
            buckets.sort_by(|left, right| {
                right
                    .1
                    .cmp(&left.1)
                    .then_with(|| compare(&left.0, &right.0))
            });
            let other: u64 = buckets.iter().skip(*size).map(|(_, count)| count).sum();
            let shown: Vec<Json> = buckets
                .into_iter()
                .take(*size)
                .map(|(key, count)| json!({ "key": key, "doc_count": count }))
                .collect();
            json!({
                "doc_count_error_upper_bound": 0,
                "sum_other_doc_count": other,
                "buckets": shown,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dates

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn digits(text: &str, from: usize, count: usize) -> Option<i64> {
    let part = text.get(from..from + count)?;
    if !part.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// `strict_date_optional_time`, the default date format: `2026-03-14`,
/// `2026-03-14T09:12:01`, `2026-03-14T09:12:01.331Z`, `2026-03-14T09:12:01+01:00`, as
/// epoch milliseconds (UTC when no offset is given).
pub(super) fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let year = digits(text, 0, 4)?;
    let month = digits(text, 5, 2)?;
    let day = digits(text, 8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * 86_400_000;
    let rest = text.get(10..)?;
    if rest.is_empty() {
        return Some(millis);
    }
    let time = rest.strip_prefix('T')?;
    let hour = digits(time, 0, 2)?;
    let mut at = 2;
    let mut minute = 0;
    let mut second = 0;
    if time.as_bytes().get(at) == Some(&b':') {
        minute = digits(time, at + 1, 2)?;
        at += 3;
        if time.as_bytes().get(at) == Some(&b':') {
            second = digits(time, at + 1, 2)?;
            at += 3;
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    millis += ((hour * 60 + minute) * 60 + second) * 1000;
    if matches!(time.as_bytes().get(at), Some(b'.' | b',')) {
        at += 1;
        let fraction: String = time
            .get(at..)?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if fraction.is_empty() || fraction.len() > 9 {
            return None;
        }
        at += fraction.len();
        let padded: String = fraction.chars().chain("000".chars()).take(3).collect();
        millis += padded.parse::<i64>().ok()?;
    }
    let zone = time.get(at..)?;
    let offset_minutes = match zone {
        "" | "Z" => 0,
        _ => {
            let sign = match zone.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let hours = digits(zone, 1, 2)?;
            let minutes = match zone.len() {
                3 => 0,
                5 => digits(zone, 3, 2)?,
                6 if zone.as_bytes().get(3) == Some(&b':') => digits(zone, 4, 2)?,
                _ => return None,
            };
            sign * (hours * 60 + minutes)
        }
    };
    Some(millis - offset_minutes * 60_000)
}

/// Epoch milliseconds as `2026-03-14T09:12:01.331Z`.
pub(super) fn format_date(millis: i64) -> String {
    let days = millis.div_euclid(86_400_000);
    let of_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000
    )
}
