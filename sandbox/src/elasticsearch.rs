//! An in-process Elasticsearch for tests: an axum HTTP/1 server on loopback holding the
//! documents a test indexes ([`ElasticsearchServer::index`]) and answering the part of the
//! REST API that `logs.aggregate` uses, in the shapes of the public documentation. The
//! shapes are pinned by the recorded answers in `sandbox/fixtures/elasticsearch/` (whose
//! README cites the page each one comes from) and checked by this module's tests.
//!
//! # Served
//!
//! - `POST /{target}/_pit?keep_alive=` opens a point in time (`{"id", "_shards"}`);
//!   `DELETE /_pit` with `{"id"}` closes it (`{"succeeded", "num_freed"}`, 404 with
//!   `num_freed: 0` when it is unknown).
//! - `GET|POST /_search` and `/{target}/_search`: `query`, `size` (default 10), `from`,
//!   `sort`, `search_after`, `pit` (`id`, `keep_alive`), `track_total_hits`, `_source`
//!   (`false`, a field or a list of fields), `aggs`/`aggregations`.
//! - Queries: `bool` (`must`, `filter`, `should`, `must_not`, `minimum_should_match` as a
//!   whole number), `term` (with `case_insensitive`), `terms`, `range` (`gt`, `gte`, `lt`,
//!   `lte`; numbers, ISO 8601 dates, epoch milliseconds as numbers or text), `match_phrase`,
//!   `exists`, `match_all`.
//! - Aggregations: `filter`, `filters` (keyed and anonymous) and `terms` (`field`, `size`).
//! - `GET /`: the cluster's name and version.
//! - Switches for tests: [`ElasticsearchServer::require`] (credentials),
//!   [`ElasticsearchServer::delay`] (a slow or stuck cluster),
//!   [`ElasticsearchServer::max_result_window`] (`index.max_result_window`).
//!
//! # Faithful to Elasticsearch
//!
//! - Targets are comma-separated index names and patterns with `*`; `_all`, `*` or no
//!   target is every index. A concrete name that does not exist is 404
//!   `index_not_found_exception` (`no such index [logs-x]`, with `resource.type`,
//!   `resource.id`, `index_uuid` and `index`); a pattern matching nothing is no index.
//! - Errors are the REST envelope `{"error": {"root_cause": [{"type", "reason"}], "type",
//!   "reason"}, "status"}`: 400 `parsing_exception` for an unknown query, an unknown option
//!   of a query or an unknown top-level key (`Unknown key for a START_OBJECT in [x].`),
//!   400 `x_content_parse_exception` for a body that is not JSON, 400
//!   `illegal_argument_exception` for a result window over 10 000 (or the
//!   `max_result_window` set) and for `search_after`
//!   of another length than the sort, 400 `action_request_validation_exception` for a
//!   point-in-time search naming an index and for a missing `keep_alive`, 404
//!   `search_context_missing_exception` for an unknown or expired point in time, 401
//!   `security_exception` (with `WWW-Authenticate`) when credentials are required
//!   ([`ElasticsearchServer::require`]) and missing or wrong.
//! - A point in time is a snapshot: documents indexed after it opened are not seen through
//!   it. A search through one answers its `pit_id`, and a sorted one gets the implicit
//!   `_shard_doc` tiebreaker, whose value ends each hit's `sort` (elastic/elasticsearch
//!   #68833); `search_after` must then give one value more than the sort names.
//! - A hit of a sorted search has `_score: null` and `max_score` is null; date sort values
//!   are epoch milliseconds (or text with a sort `format`); `hits.total` is
//!   `{"value", "relation"}`, counted up to `track_total_hits` (10 000 by default, all with
//!   `true`, absent with `false`).
//! - Every answer has `X-elastic-product: Elasticsearch`, which the official clients check.
//!
//! # Simplified
//!
//! - No mappings: every string is both a `keyword` (exact) and a `text` field analyzed by
//!   an approximation of the standard analyzer (letters and digits, lower-cased) for
//!   `match_phrase`; a string that parses as an ISO 8601 date is a date for `range` and
//!   sorting. `term` on a text field therefore matches exactly here, where a real `text`
//!   field would need the analyzed token.
//! - One shard per index; `_id`s are sequential; scores are a constant 1.0; no date math
//!   (`now-1h`), no `format` for range bounds (ISO 8601 and epoch milliseconds are always
//!   read); no sub-aggregations; `match_phrase` without `slop`; error `reason`s of parse
//!   errors carry no `line`/`col`.
//! - No indexing API: a test indexes with [`ElasticsearchServer::index`]; no refresh delay.
//! - The request log keeps the latest 100 000 requests.

mod query;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

/// The largest `from + size` of a search (`index.max_result_window`'s default).
const MAX_RESULT_WINDOW: u64 = 10_000;
/// Hits counted when `track_total_hits` is not given.
const DEFAULT_TRACK_TOTAL_HITS: u64 = 10_000;
/// Requests kept by the log.
const RECORDED: usize = 100_000;

/// One request the server received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there was none.
    pub query: String,
    pub authorization: Option<String>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
}

impl Recorded {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or(Json::Null)
    }
}

/// Credentials the server requires ([`ElasticsearchServer::require`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: ApiKey <this>` (the encoded key, as Kibana shows it).
    ApiKey(String),
    /// HTTP basic authentication.
    Basic { username: String, password: String },
}

/// An error answer in Elasticsearch's REST envelope.
#[derive(Debug, Clone, PartialEq)]
struct EsError {
    status: u16,
    kind: &'static str,
    reason: String,
    /// Extra fields of the error object (`index`, `resource.id`, `header`, ...).
    extra: Map<String, Json>,
}

impl EsError {
    fn new(status: u16, kind: &'static str, reason: String) -> EsError {
        EsError {
            status,
            kind,
            reason,
            extra: Map::new(),
        }
    }

    fn index_not_found(index: &str) -> EsError {
        let mut error = EsError::new(
            404,
            "index_not_found_exception",
            format!("no such index [{index}]"),
        );
        error.extra = json_object(json!({
            "resource.type": "index_or_alias",
            "resource.id": index,
            "index_uuid": "_na_",
            "index": index,
        }));
        error
    }

    fn body(&self) -> Json {
        let mut cause = Map::new();
        cause.insert("type".into(), json!(self.kind));
        cause.insert("reason".into(), json!(self.reason));
        cause.extend(self.extra.clone());
        let mut error = cause.clone();
        error.insert("root_cause".into(), json!([cause]));
        json!({ "error": error, "status": self.status })
    }
}

fn json_object(json: Json) -> Map<String, Json> {
    match json {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

/// One open point in time: the indices and how many of their documents it sees.
struct PointInTime {
    snapshot: BTreeMap<String, usize>,
    expires: Instant,
}

struct Document {
    id: String,
    source: Json,
}

#[derive(Default)]
struct Store {
    indices: BTreeMap<String, Vec<Document>>,
    pits: HashMap<String, PointInTime>,
    next_pit: u64,
    next_id: u64,
    required: Option<Credentials>,
    delay: Duration,
    /// `index.max_result_window`; `None` is the default, 10 000.
    max_result_window: Option<u64>,
    requests: VecDeque<Recorded>,
}

type Shared = Arc<Mutex<Store>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Store> {
    // No code path panics while holding the lock; a poisoned lock still holds whole values.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running server. Dropping it shuts it down.
pub struct ElasticsearchServer {
    shared: Shared,
    address: SocketAddr,
    background: crate::serving::Background,
}

impl ElasticsearchServer {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> std::io::Result<ElasticsearchServer> {
        ElasticsearchServer::start_on(0).await
    }

    /// Binds 127.0.0.1 on `port` (0: a free one) and starts serving (`medic-sandbox`, whose
    /// servers have the fixed ports examples/medic.toml names).
    pub async fn start_on(port: u16) -> std::io::Result<ElasticsearchServer> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(Store::default()));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let background =
            crate::serving::Background::serve(listener, app, "elasticsearch sandbox server");
        Ok(ElasticsearchServer {
            shared,
            address,
            background,
        })
    }

    /// Stops accepting, lets open connections finish (at most five seconds) and returns.
    pub async fn stop(mut self) {
        self.background.stop().await;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Adds documents (their `_source`) to `index`, creating it when it does not exist.
    pub fn index(&self, index: &str, docs: Vec<Json>) {
        let mut store = lock(&self.shared);
        let first = store.next_id;
        store.next_id = first.saturating_add(docs.len() as u64);
        let documents = store.indices.entry(index.to_string()).or_default();
        for (offset, source) in docs.into_iter().enumerate() {
            documents.push(Document {
                id: format!("sandbox-{:012}", first.saturating_add(offset as u64)),
                source,
            });
        }
    }

    /// Keeps the documents of `index` whose `_source` `keep` accepts (a long-running
    /// world's retention). Open points in time keep seeing the documents they saw that
    /// remain.
    pub fn retain(&self, index: &str, mut keep: impl FnMut(&Json) -> bool) {
        let mut store = lock(&self.shared);
        let Some(documents) = store.indices.get_mut(index) else {
            return;
        };
        let mut removed_before = Vec::with_capacity(documents.len() + 1);
        let mut removed = 0usize;
        documents.retain(|document| {
            removed_before.push(removed);
            let kept = keep(&document.source);
            if !kept {
                removed += 1;
            }
            kept
        });
        removed_before.push(removed);
        for pit in store.pits.values_mut() {
            if let Some(seen) = pit.snapshot.get_mut(index) {
                // It saw the first `seen` documents; of those, the removed ones are gone.
                *seen = seen.saturating_sub(removed_before.get(*seen).copied().unwrap_or(removed));
            }
        }
    }

    /// From now on, every request must carry these credentials (`None`: none needed).
    pub fn require(&self, credentials: Option<Credentials>) {
        lock(&self.shared).required = credentials;
    }

    /// Sets `index.max_result_window` for every index: a search whose `from + size` is
    /// larger is refused (the default is 10 000).
    pub fn max_result_window(&self, window: u64) {
        lock(&self.shared).max_result_window = Some(window);
    }

    /// Every answer waits this long first (a slow or stuck cluster).
    pub fn delay(&self, delay: Duration) {
        lock(&self.shared).delay = delay;
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.iter().cloned().collect()
    }

    /// Points in time open now (not closed, not expired).
    pub fn open_points_in_time(&self) -> usize {
        let now = Instant::now();
        lock(&self.shared)
            .pits
            .values()
            .filter(|pit| pit.expires > now)
            .count()
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let delay = {
        let mut store = lock(&shared);
        if store.requests.len() >= RECORDED {
            store.requests.pop_front();
        }
        store.requests.push_back(Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            authorization: authorization.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        store.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let answer = {
        let mut store = lock(&shared);
        match authenticate(&store, uri.path(), authorization.as_deref()) {
            Err(error) => Err(error),
            Ok(()) => route(&mut store, &method, &uri, &body),
        }
    };
    let (status, json, authenticate_header) = match answer {
        Ok((status, json)) => (status, json, false),
        Err(error) => (
            error.status,
            error.body(),
            error.kind == "security_exception",
        ),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(json)).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    if authenticate_header {
        response_headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"security\", charset=\"UTF-8\""),
        );
        response_headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
    }
    response
}

fn authenticate(store: &Store, path: &str, authorization: Option<&str>) -> Result<(), EsError> {
    let Some(required) = &store.required else {
        return Ok(());
    };
    let expected = match required {
        Credentials::ApiKey(key) => format!("ApiKey {key}"),
        Credentials::Basic { username, password } => {
            format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            )
        }
    };
    let reason = match authorization {
        Some(given) if given == expected => return Ok(()),
        None => format!("missing authentication credentials for REST request [{path}]"),
        Some(given) if given.starts_with("ApiKey ") => {
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request".to_string()
        }
        Some(given) => {
            let user = given
                .strip_prefix("Basic ")
                .and_then(decode_base64)
                .and_then(|text| text.split_once(':').map(|(user, _)| user.to_string()))
                .unwrap_or_default();
            format!("unable to authenticate user [{user}] for REST request [{path}]")
        }
    };
    let mut error = EsError::new(401, "security_exception", reason);
    error.extra = json_object(json!({
        "header": {"WWW-Authenticate": ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"]}
    }));
    Err(error)
}

type Answer = Result<(u16, Json), EsError>;

fn route(store: &mut Store, method: &Method, uri: &Uri, body: &[u8]) -> Answer {
    let path = uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|query| {
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((key, value)) => (decode_percent(key), decode_percent(value)),
                    None => (decode_percent(pair), String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    let parameter = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    match (method.as_str(), segments.as_slice()) {
        ("GET", [""]) => Ok((
            200,
            json!({
                "name": "sandbox",
                "cluster_name": "medic-sandbox",
                "cluster_uuid": "medic-sandbox-cluster-uuid",
                "version": {"number": "8.15.0", "build_flavor": "default", "lucene_version": "9.11.1"},
                "tagline": "You Know, for Search",
            }),
        )),
        ("POST", [target, "_pit"]) => {
            open_pit(store, &decode_percent(target), parameter("keep_alive"))
        }
        ("DELETE", ["_pit"]) => close_pit(store, body),
        ("GET" | "POST", ["_search"]) => search(store, None, body),
        ("GET" | "POST", [target, "_search"]) => search(store, Some(&decode_percent(target)), body),
        _ => Err(EsError::new(
            400,
            "illegal_argument_exception",
            format!("no handler found for uri [{path}] and method [{method}]"),
        )),
    }
}

/// A `keep_alive` such as `1m`, `30s`, `500ms`.
fn time_value(text: &str) -> Result<Duration, EsError> {
    let failed = || {
        EsError::new(
            400,
            "parse_exception",
            format!(
                "failed to parse setting [keep_alive] with value [{text}] as a time value: unit is missing or unrecognized"
            ),
        )
    };
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .ok_or_else(failed)?;
    let (number, unit) = (
        text.get(..split).ok_or_else(failed)?,
        text.get(split..).ok_or_else(failed)?,
    );
    let number: u64 = number.parse().map_err(|_| failed())?;
    let millis = match unit {
        "d" => number.saturating_mul(86_400_000),
        "h" => number.saturating_mul(3_600_000),
        "m" => number.saturating_mul(60_000),
        "s" => number.saturating_mul(1000),
        "ms" => number,
        "micros" => number / 1000,
        "nanos" => number / 1_000_000,
        _ => return Err(failed()),
    };
    Ok(Duration::from_millis(millis))
}

/// The indices a target names, with their documents; a missing concrete name is an error.
fn resolve(store: &Store, target: Option<&str>) -> Result<Vec<String>, EsError> {
    let target = target.unwrap_or("_all");
    let mut names = Vec::new();
    for part in target.split(',') {
        let part = part.trim();
        if part.is_empty() || part == "_all" || part == "*" {
            names.extend(store.indices.keys().cloned());
        } else if part.contains('*') {
            names.extend(
                store
                    .indices
                    .keys()
                    .filter(|name| wildcard(part, name))
                    .cloned(),
            );
        } else if store.indices.contains_key(part) {
            names.push(part.to_string());
        } else {
            return Err(EsError::index_not_found(part));
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, name: &str) -> bool {
    let mut pieces = pattern.split('*');
    let Some(first) = pieces.next() else {
        return true;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn open_pit(store: &mut Store, target: &str, keep_alive: Option<String>) -> Answer {
    let Some(keep_alive) = keep_alive else {
        return Err(EsError::new(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: [keep_alive] is not specified;".into(),
        ));
    };
    let keep_alive = time_value(&keep_alive)?;
    let names = resolve(store, Some(target))?;
    let snapshot: BTreeMap<String, usize> = names
        .iter()
        .map(|name| (name.clone(), store.indices.get(name).map_or(0, Vec::len)))
        .collect();
    store.next_pit = store.next_pit.saturating_add(1);
    let id = base64(format!("medic-sandbox-pit:{}:{target}", store.next_pit).as_bytes());
    let shards = snapshot.len();
    store.pits.insert(
        id.clone(),
        PointInTime {
            snapshot,
            expires: Instant::now() + keep_alive,
        },
    );
    Ok((
        200,
        json!({
            "id": id,
            "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0},
        }),
    ))
}

fn close_pit(store: &mut Store, body: &[u8]) -> Answer {
    let json = parse_body(body)?;
    let id = json.get("id").and_then(Json::as_str).ok_or_else(|| {
        EsError::new(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no pit ids specified;".into(),
        )
    })?;
    let now = Instant::now();
    let freed = store.pits.remove(id).is_some_and(|pit| pit.expires > now);
    if freed {
        Ok((200, json!({"succeeded": true, "num_freed": 1})))
    } else {
        Ok((404, json!({"succeeded": true, "num_freed": 0})))
    }
}

fn parse_body(body: &[u8]) -> Result<Json, EsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|error| {
        EsError::new(
            400,
            "x_content_parse_exception",
            format!(
                "[1:{}] failed to parse the request body: {error}",
                error.column()
            ),
        )
    })
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Object(_) => "START_OBJECT",
        Json::Array(_) => "START_ARRAY",
        Json::String(_) => "VALUE_STRING",
        Json::Number(_) => "VALUE_NUMBER",
        Json::Bool(_) => "VALUE_BOOLEAN",
        Json::Null => "VALUE_NULL",
    }
}

/// How many hits `hits.total` counts; `None`: it is left out.
fn track_total_hits(json: Option<&Json>) -> Result<Option<u64>, EsError> {
    match json {
        None => Ok(Some(DEFAULT_TRACK_TOTAL_HITS)),
        Some(Json::Bool(true)) => Ok(Some(u64::MAX)),
        Some(Json::Bool(false)) => Ok(None),
        Some(Json::Number(number)) => match number.as_i64() {
            Some(-1) => Ok(None),
            Some(count) if count >= 0 => Ok(Some(count.unsigned_abs())),
            _ => Err(EsError::new(
                400,
                "illegal_argument_exception",
                format!(
                    "[track_total_hits] parameter must be positive or equals to -1, got {number}"
                ),
            )),
        },
        Some(other) => Err(EsError::new(
            400,
            "x_content_parse_exception",
            format!(
                "[track_total_hits] failed to parse field: {}",
                json_kind(other)
            ),
        )),
    }
}

fn whole_number(json: &Json, name: &str) -> Result<u64, EsError> {
    json.as_u64().ok_or_else(|| {
        EsError::new(
            400,
            "x_content_parse_exception",
            format!("[{name}] failed to parse field [{name}]: {json}"),
        )
    })
}

/// `_source`: `true`/`false`, a field, a list of fields (includes only).
fn source_filter(json: Option<&Json>) -> Result<Option<Vec<String>>, EsError> {
    match json {
        None | Some(Json::Bool(true)) => Ok(Some(Vec::new())),
        Some(Json::Bool(false)) => Ok(None),
        Some(Json::String(field)) => Ok(Some(vec![field.clone()])),
        Some(Json::Array(fields)) => fields
            .iter()
            .map(|field| {
                field.as_str().map(str::to_owned).ok_or_else(|| {
                    EsError::new(
                        400,
                        "parsing_exception",
                        format!("Unknown key for a {} in [_source].", json_kind(field)),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(EsError::new(
            400,
            "parsing_exception",
            format!("Unknown key for a {} in [_source].", json_kind(other)),
        )),
    }
}

/// The parts of `source` under the included paths (all of it when none are given).
fn filter_source(source: &Json, includes: &[String]) -> Json {
    if includes.is_empty() {
        return source.clone();
    }
    fn keep(json: &Json, prefix: &str, includes: &[String]) -> Option<Json> {
        let Json::Object(fields) = json else {
            return None;
        };
        let mut kept = Map::new();
        for (key, value) in fields {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let included = includes.iter().any(|include| {
                include == &path
                    || path.starts_with(&format!("{include}."))
                    || (include.contains('*') && wildcard(include, &path))
            });
            if included {
                kept.insert(key.clone(), value.clone());
            } else if includes
                .iter()
                .any(|include| include.starts_with(&format!("{path}.")))
                && let Some(inner) = keep(value, &path, includes)
            {
                kept.insert(key.clone(), inner);
            }
        }
        (!kept.is_empty()).then_some(Json::Object(kept))
    }
    keep(source, "", includes).unwrap_or_else(|| json!({}))
}

struct Hit<'s> {
    index: &'s str,
    document: &'s Document,
    sequence: u64,
    sort: Vec<Json>,
}

fn search(store: &mut Store, target: Option<&str>, body: &[u8]) -> Answer {
    let request = parse_body(body)?;
    let fields = request.as_object().ok_or_else(|| {
        EsError::new(
            400,
            "parsing_exception",
            "request body or source parameter is required".into(),
        )
    })?;
    for (key, value) in fields {
        if !matches!(
            key.as_str(),
            "query"
                | "size"
                | "from"
                | "sort"
                | "search_after"
                | "pit"
                | "track_total_hits"
                | "_source"
                | "aggs"
                | "aggregations"
                | "timeout"
        ) {
            return Err(EsError::new(
                400,
                "parsing_exception",
                format!("Unknown key for a {} in [{key}].", json_kind(value)),
            ));
        }
    }
    let query = match fields.get("query") {
        Some(json) => query::parse(json)?,
        None => query::Query::MatchAll,
    };
    let size = fields
        .get("size")
        .map(|size| whole_number(size, "size"))
        .transpose()?
        .unwrap_or(10);
    let from = fields
        .get("from")
        .map(|from| whole_number(from, "from"))
        .transpose()?
        .unwrap_or(0);
    let window = store.max_result_window.unwrap_or(MAX_RESULT_WINDOW);
    if from.saturating_add(size) > window {
        return Err(EsError::new(
            400,
            "illegal_argument_exception",
            format!(
                "Result window is too large, from + size must be less than or equal to: [{window}] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.",
                from.saturating_add(size)
            ),
        ));
    }
    let mut sort = match fields.get("sort") {
        Some(json) => query::parse_sort(json)?,
        None => Vec::new(),
    };
    let track = track_total_hits(fields.get("track_total_hits"))?;
    let includes = source_filter(fields.get("_source"))?;
    let aggregations = match fields.get("aggs").or_else(|| fields.get("aggregations")) {
        Some(json) => query::parse_aggregations(json)?,
        None => BTreeMap::new(),
    };
    // The indices searched and how many documents of each are visible.
    let mut pit_id = None;
    let visible: BTreeMap<String, usize> = match fields.get("pit") {
        Some(pit) => {
            if target.is_some() {
                return Err(EsError::new(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [indices] cannot be used with point in time. Do not specify any index with point in time.;".into(),
                ));
            }
            let id = pit.get("id").and_then(Json::as_str).ok_or_else(|| {
                EsError::new(400, "parsing_exception", "[pit] requires [id]".into())
            })?;
            let keep_alive = pit
                .get("keep_alive")
                .and_then(Json::as_str)
                .map(time_value)
                .transpose()?;
            let now = Instant::now();
            let open = store.pits.get_mut(id).filter(|open| open.expires > now);
            let Some(open) = open else {
                return Err(EsError::new(
                    404,
                    "search_context_missing_exception",
                    format!("No search context found for id [{id}]"),
                ));
            };
            if let Some(keep_alive) = keep_alive {
                open.expires = now + keep_alive;
            }
            pit_id = Some(id.to_string());
            if !sort.is_empty()
                && !sort
                    .iter()
                    .any(|key| key.field == query::SortField::ShardDoc)
            {
                sort.push(query::Sort {
                    field: query::SortField::ShardDoc,
                    descending: false,
                });
            }
            open.snapshot.clone()
        }
        None => resolve(store, target)?
            .into_iter()
            .map(|name| {
                let count = store.indices.get(&name).map_or(0, Vec::len);
                (name, count)
            })
            .collect(),
    };
    let search_after = match fields.get("search_after") {
        None => None,
        Some(Json::Array(values)) => {
            if sort.is_empty() {
                return Err(EsError::new(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [search_after] requires a [sort];".into(),
                ));
            }
            if values.len() != sort.len() {
                return Err(EsError::new(
                    400,
                    "illegal_argument_exception",
                    format!(
                        "search_after has {} value(s) but sort has {}.",
                        values.len(),
                        sort.len()
                    ),
                ));
            }
            Some(values.clone())
        }
        Some(other) => {
            return Err(EsError::new(
                400,
                "parsing_exception",
                format!("Unknown key for a {} in [search_after].", json_kind(other)),
            ));
        }
    };

    let mut matched: Vec<Hit<'_>> = Vec::new();
    let mut sequence: u64 = 0;
    for (name, count) in &visible {
        let documents = store
            .indices
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for document in documents.iter().take(*count) {
            // The `_shard_doc` of a document: its index's ordinal, then its position.
            sequence += 1;
            if query::matches(&query, &document.source) {
                matched.push(Hit {
                    index: name,
                    document,
                    sequence,
                    sort: Vec::new(),
                });
            }
        }
    }
    for hit in &mut matched {
        hit.sort = sort
            .iter()
            .map(|key| query::sort_value(&hit.document.source, hit.sequence, key))
            .collect();
    }
    let ordering = |left: &[Json], right: &[Json]| {
        for ((left, right), key) in left.iter().zip(right).zip(&sort) {
            let order = query::compare(left, right);
            let order = if key.descending && !left.is_null() && !right.is_null() {
                order.reverse()
            } else {
                order
            };
            if order.is_ne() {
                return order;
            }
        }
        std::cmp::Ordering::Equal
    };
    if !sort.is_empty() {
        matched.sort_by(|left, right| ordering(&left.sort, &right.sort));
    }
    let documents: Vec<&Json> = matched.iter().map(|hit| &hit.document.source).collect();
    let aggregated: Map<String, Json> = aggregations
        .iter()
        .map(|(name, aggregation)| (name.clone(), query::aggregate(aggregation, &documents)))
        .collect();
    let total = matched.len() as u64;
    let after: Vec<&Hit<'_>> = match &search_after {
        Some(values) => matched
            .iter()
            .filter(|hit| ordering(&hit.sort, values).is_gt())
            .collect(),
        None => matched.iter().collect(),
    };
    let sorted = !sort.is_empty();
    let hits: Vec<Json> = after
        .into_iter()
        .skip(usize::try_from(from).unwrap_or(usize::MAX))
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .map(|hit| {
            let mut object = Map::new();
            object.insert("_index".into(), json!(hit.index));
            object.insert("_id".into(), json!(hit.document.id));
            object.insert(
                "_score".into(),
                if sorted { Json::Null } else { json!(1.0) },
            );
            if let Some(includes) = &includes {
                object.insert(
                    "_source".into(),
                    filter_source(&hit.document.source, includes),
                );
            }
            if sorted {
                object.insert("sort".into(), Json::Array(hit.sort.clone()));
            }
            Json::Object(object)
        })
        .collect();
    let shards = visible.len();
    let mut hits_object = Map::new();
    if let Some(track) = track {
        hits_object.insert(
            "total".into(),
            if total > track {
                json!({"value": track, "relation": "gte"})
            } else {
                json!({"value": total, "relation": "eq"})
            },
        );
    }
    let max_score = if sorted || hits.is_empty() {
        Json::Null
    } else {
        json!(1.0)
    };
    hits_object.insert("max_score".into(), max_score);
    hits_object.insert("hits".into(), Json::Array(hits));
    let mut answer = Map::new();
    if let Some(id) = pit_id {
        answer.insert("pit_id".into(), json!(id));
    }
    answer.insert("took".into(), json!(1));
    answer.insert("timed_out".into(), json!(false));
    answer.insert(
        "_shards".into(),
        json!({"total": shards, "successful": shards, "skipped": 0, "failed": 0}),
    );
    answer.insert("hits".into(), Json::Object(hits_object));
    if !aggregated.is_empty() {
        answer.insert("aggregations".into(), Json::Object(aggregated));
    }
    Ok((200, Json::Object(answer)))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let byte = |at: usize| u32::from(chunk.get(at).copied().unwrap_or(0));
        let word = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for position in 0..4 {
            if position <= chunk.len() {
                let digit = (word >> (18 - 6 * position)) & 63;
                text.push(char::from(
                    BASE64.get(digit as usize).copied().unwrap_or(b'A'),
                ));
            } else {
                text.push('=');
            }
        }
    }
    text
}

fn decode_base64(text: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    for character in text.trim_end_matches('=').bytes() {
        let digit = BASE64.iter().position(|known| *known == character)?;
        bits = (bits << 6) | u32::try_from(digit).ok()?;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push(u8::try_from((bits >> count) & 0xff).ok()?);
        }
    }
    String::from_utf8(bytes).ok()
}

fn decode_percent(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(byte) = bytes.get(at) {
        let hex = |offset: usize| {
            bytes
                .get(at + offset)
                .and_then(|digit| char::from(*digit).to_digit(16))
        };
        match (byte, hex(1), hex(2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                at += 3;
            }
            (b'+', _, _) => {
                decoded.push(b' ');
                at += 1;
            }
            (other, _, _) => {
                decoded.push(*other);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
