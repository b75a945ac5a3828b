//! `logs.aggregate`: the logs of a service in the Elasticsearch of `[elasticsearch]`,
//! counted, mined into templates against a baseline window, and searched for stack traces.
//!
//! What is guaranteed:
//! - requests go only to `[elasticsearch] url`; the service, the keywords and the index
//!   reach Elasticsearch as JSON values and one percent-encoded path segment, never as
//!   query text; an index naming characters Elasticsearch forbids is refused before any
//!   request;
//! - one point in time is opened on the index; through it go one aggregation search (the
//!   window's total, its errors and its keyword counts) and the messages of the window and
//!   of the baseline window before it, paged with `search_after` ([`PAGE_SIZE`] a page) and
//!   read up to `max_lines` each. The point in time is closed after the last page, after a
//!   failure too (a call dropped mid-way leaves it to expire after [`KEEP_ALIVE`]);
//! - errors are lines at level ERROR or above ([`ERROR_LEVELS`], case-insensitive) or
//!   matching one of the keywords (`match_phrase` on the message); the counts come from
//!   Elasticsearch's aggregations over the whole window, whatever `max_lines` cut;
//! - the call has the configured timeout, all its requests together; every answer is read
//!   as a stream and refused past [`ANSWER_LIMIT`];
//! - Elasticsearch's refusals (its `{"error": {"root_cause": [...], "type", "reason"}}`
//!   envelope) are the call's failure with their type and reason; an answer from fewer
//!   shards than were asked, or of another shape, is an error naming what was wrong, never
//!   a count made up from part of the data;
//! - the API key or password goes only to that server, marked sensitive, and `Debug`
//!   redacts it; no proxy from the environment is used and redirects are not followed.

use super::args::{ArgError, Args};
use super::endpoint::excerpt;
use super::http::without_url;
use crate::executor::Clock;
use medic_analysis::logs::{Miner, TemplateChange, WindowCounts};
use medic_analysis::stack::{self, StackGroup};
use medic_compiler::plan::Value;
use reqwest::Url;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A call's time limit when the configuration names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Log lines read per window when the configuration names no limit.
pub const DEFAULT_MAX_LINES: usize = 100_000;

/// The largest answer read; a larger one is an error, not a truncated parse.
pub const ANSWER_LIMIT: usize = 32 * 1024 * 1024;

/// Hits asked for per page of messages.
pub const PAGE_SIZE: usize = 1000;

/// How long the point in time is kept between two requests (`keep_alive`).
pub const KEEP_ALIVE: &str = "1m";

/// Levels counted as errors, compared case-insensitively: ERROR and above in the schemes in
/// use (log4j/logback, Python's logging, syslog's `err`/`crit`/`alert`/`emerg`, JUL's
/// `SEVERE`, zap's `panic`/`dpanic`).
pub const ERROR_LEVELS: &[&str] = &[
    "error",
    "err",
    "fatal",
    "critical",
    "crit",
    "alert",
    "emerg",
    "emergency",
    "severe",
    "panic",
    "dpanic",
];

/// Templates in the summary at most (new and spiking ones first).
pub const TEMPLATES: usize = 20;

/// Stack-trace groups in the summary at most (the most frequent).
pub const STACK_TRACES: usize = 10;

/// The time limit of closing the point in time, also after the call's own ran out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Characters Elasticsearch forbids in index names (a `,` separates names; `*` is a pattern).
const FORBIDDEN_IN_INDEX: &[char] = &['\\', '/', '?', '"', '<', '>', '|', ' ', '#', ':'];

/// How Elasticsearch is reached.
#[derive(Clone, PartialEq, Eq)]
pub enum EsAuth {
    None,
    /// `Authorization: ApiKey ...`.
    ApiKey(String),
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: String,
    },
}

impl std::fmt::Debug for EsAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            EsAuth::None => "None",
            EsAuth::ApiKey(_) => "ApiKey(<redacted>)",
            EsAuth::Basic { .. } => "Basic(<redacted>)",
        })
    }
}

/// The document fields read; the defaults are the Elastic Common Schema's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsFields {
    pub timestamp: String,
    pub message: String,
    pub level: String,
    pub service: String,
    pub host: String,
    pub error_type: String,
    pub stack_trace: String,
}

impl Default for EsFields {
    fn default() -> Self {
        EsFields {
            timestamp: "@timestamp".into(),
            message: "message".into(),
            level: "log.level".into(),
            service: "service.name".into(),
            host: "host.ip".into(),
            error_type: "error.type".into(),
            stack_trace: "error.stack_trace".into(),
        }
    }
}

/// The Elasticsearch asked (`[elasticsearch]` in medic.toml).
#[derive(Debug, Clone)]
pub struct ElasticsearchConfig {
    /// The base URL, such as `http://127.0.0.1:9200`.
    pub url: String,
    /// The index pattern searched when a call names none other than the stdlib default.
    pub index: String,
    pub timeout: Duration,
    pub auth: EsAuth,
    pub fields: EsFields,
    /// Log lines read per window at most; the summary says when the limit was reached.
    pub max_lines: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ElasticsearchError {
    #[error("no Elasticsearch is configured ([elasticsearch] url in medic.toml)")]
    NotConfigured,
    #[error("[elasticsearch] url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot build the Elasticsearch client: {0}")]
    Client(String),
    #[error(transparent)]
    Argument(#[from] ArgError),
    #[error("`{function}`: {reason}")]
    BadArgument { function: String, reason: String },
    /// No answer at all: a failure, so the task's `retry` and `on failure` apply.
    #[error("elasticsearch could not be reached: {0}")]
    NoAnswer(String),
    #[error("elasticsearch did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("elasticsearch's answer could not be read: {0}")]
    Unreadable(String),
    #[error("elasticsearch's answer is larger than {} MiB, so it was not read", ANSWER_LIMIT / (1024 * 1024))]
    TooLarge,
    /// Elasticsearch answered with its error envelope.
    #[error("elasticsearch refused the search ({error_type}): {reason}")]
    Refused {
        status: u16,
        error_type: String,
        reason: String,
    },
    /// An HTTP error status without Elasticsearch's error envelope (a proxy's page, say).
    #[error("elasticsearch answered HTTP {status} without a search API answer: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("elasticsearch's answer is not JSON ({reason}): {excerpt}")]
    NotJson { reason: String, excerpt: String },
    #[error("elasticsearch's answer is not a search API answer: {0}")]
    Shape(String),
    /// Some shards failed or the search timed out: the counts would be of part of the data.
    #[error("elasticsearch answered from part of the data only: {0}")]
    Partial(String),
}

/// The decoded arguments of `logs.aggregate`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateQuery {
    pub service: String,
    /// Milliseconds since the Unix epoch; the window runs from here until now.
    pub since: i64,
    /// Counted by phrase in the message; a line matching one is an error.
    pub keywords: Vec<String>,
    /// The length of the baseline window, which ends at `since`.
    pub baseline: Duration,
    /// The index pattern; `None` for the stdlib default, which means the configured one.
    pub index: Option<String>,
}

/// The stdlib default of `index:`, which stands for `[elasticsearch] index`.
const STDLIB_DEFAULT_INDEX: &str = "logs-*";

impl AggregateQuery {
    pub fn decode(values: BTreeMap<String, Value>) -> Result<AggregateQuery, ElasticsearchError> {
        const FUNCTION: &str = "logs.aggregate";
        let mut args = Args::new(FUNCTION, values);
        let query = AggregateQuery {
            service: args.string("service")?,
            since: args.time("since")?,
            keywords: args.strings("keywords")?,
            baseline: args.duration("baseline")?,
            index: Some(args.string("index")?).filter(|index| index != STDLIB_DEFAULT_INDEX),
        };
        args.finish()?;
        let bad = |reason: String| ElasticsearchError::BadArgument {
            function: FUNCTION.into(),
            reason,
        };
        if query.service.trim().is_empty() {
            return Err(bad("`service` is empty".into()));
        }
        if query
            .keywords
            .iter()
            .any(|keyword| keyword.trim().is_empty())
        {
            return Err(bad("a keyword is empty".into()));
        }
        if query.baseline.is_zero() {
            return Err(bad("`baseline` must be longer than zero".into()));
        }
        if let Some(index) = &query.index {
            check_index(index).map_err(bad)?;
        }
        Ok(query)
    }
}

/// An index pattern Elasticsearch could take: names separated by `,`, none empty, none with
/// a forbidden character.
fn check_index(index: &str) -> Result<(), String> {
    for name in index.split(',') {
        if name.is_empty() {
            return Err(format!("index {index:?} has an empty name"));
        }
        if name == "." || name == ".." {
            return Err(format!(
                "index {index:?} names {name:?}, which is not an index"
            ));
        }
        if let Some(character) = name
            .chars()
            .find(|character| FORBIDDEN_IN_INDEX.contains(character) || character.is_control())
        {
            return Err(format!(
                "index {index:?} holds {character:?}, which Elasticsearch does not allow in index names"
            ));
        }
    }
    Ok(())
}

/// What `logs.aggregate` found, before it becomes the `logs.Summary` record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSummary {
    /// Lines in the window (all of them, counted by Elasticsearch).
    pub total: u64,
    /// Lines at an error level or matching a keyword.
    pub errors: u64,
    pub by_keyword: BTreeMap<String, u64>,
    /// New and spiking templates first, at most [`TEMPLATES`].
    pub templates: Vec<TemplateChange>,
    /// The most frequent first, at most [`STACK_TRACES`].
    pub stack_traces: Vec<StackGroup>,
    /// Messages of the window read and mined.
    pub lines_read: u64,
    /// Messages of the baseline window read and mined.
    pub baseline_lines_read: u64,
    /// The window had more lines than `max_lines`: templates and stack traces are of the
    /// first `max_lines` (the counts are of every line).
    pub limited: bool,
    /// The same for the baseline window.
    pub baseline_limited: bool,
}

fn int(count: u64) -> Value {
    Value::Int(i64::try_from(count).unwrap_or(i64::MAX))
}

impl LogSummary {
    /// One paragraph for reports: the error share, what is new or spiking, the exceptions.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} of {} lines are errors ({:.1}%)",
            self.errors,
            self.total,
            if self.total == 0 {
                0.0
            } else {
                self.errors as f64 / self.total as f64 * 100.0
            }
        );
        let changed: Vec<String> = self
            .templates
            .iter()
            .filter(|template| template.new || template.spiking)
            .take(3)
            .map(|template| {
                format!(
                    "{} \"{}\" ({} now, {} before)",
                    if template.new { "new" } else { "spiking" },
                    template.pattern,
                    template.count,
                    template.baseline
                )
            })
            .collect();
        if changed.is_empty() {
            text.push_str("; no new or spiking message pattern");
        } else {
            text.push_str("; ");
            text.push_str(&changed.join(", "));
        }
        if let Some(trace) = self.stack_traces.first() {
            text.push_str(&format!(
                "; most frequent exception {} ({}×{})",
                trace.exception,
                trace.count,
                trace
                    .frames
                    .first()
                    .map(|frame| format!(", at {frame}"))
                    .unwrap_or_default()
            ));
        }
        if self.limited {
            text.push_str(&format!(
                "; patterns of the first {} lines only",
                self.lines_read
            ));
        }
        text.push('.');
        text
    }

    /// The `logs.Summary` record.
    pub fn to_value(&self) -> Value {
        let error_rate = if self.total == 0 {
            0.0
        } else {
            self.errors as f64 / self.total as f64 * 100.0
        };
        Value::record([
            ("total".to_string(), int(self.total)),
            ("errors".to_string(), int(self.errors)),
            ("error_rate".to_string(), Value::Percent(error_rate)),
            (
                "by_keyword".to_string(),
                Value::record(
                    self.by_keyword
                        .iter()
                        .map(|(keyword, count)| (keyword.clone(), int(*count))),
                ),
            ),
            (
                "templates".to_string(),
                Value::List(
                    self.templates
                        .iter()
                        .map(|template| {
                            Value::record([
                                (
                                    "pattern".to_string(),
                                    Value::String(template.pattern.clone()),
                                ),
                                ("count".to_string(), int(template.count)),
                                ("baseline".to_string(), int(template.baseline)),
                                ("new".to_string(), Value::Bool(template.new)),
                                ("spiking".to_string(), Value::Bool(template.spiking)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "stack_traces".to_string(),
                Value::List(
                    self.stack_traces
                        .iter()
                        .map(|trace| {
                            Value::record([
                                (
                                    "exception".to_string(),
                                    Value::String(trace.exception.clone()),
                                ),
                                ("message".to_string(), Value::String(trace.message.clone())),
                                (
                                    "frames".to_string(),
                                    Value::List(
                                        trace.frames.iter().cloned().map(Value::String).collect(),
                                    ),
                                ),
                                ("count".to_string(), int(trace.count)),
                            ])
                        })
                        .collect(),
                ),
            ),
            ("lines_read".to_string(), int(self.lines_read)),
            ("truncated".to_string(), Value::Bool(self.limited)),
            ("summary".to_string(), Value::String(self.summary())),
        ])
    }
}

/// A configured adapter: one client and the server's base URL.
struct Configured {
    client: reqwest::Client,
    base: Url,
    index: String,
    timeout: Duration,
    auth: EsAuth,
    fields: EsFields,
    max_lines: usize,
}

/// The Elasticsearch adapter.
pub struct Elasticsearch {
    configured: Option<Configured>,
    clock: Clock,
}

/// The point in time of one call; its id may change with every answer.
struct PointInTime {
    id: String,
}

/// The documents' fields one page reads.
struct Line {
    message: Option<String>,
    stack_trace: Option<String>,
}

/// What paging through one window gave.
struct Window {
    lines: Vec<Line>,
    /// Lines matching the window's filter, as counted by Elasticsearch.
    total: u64,
}

impl Elasticsearch {
    /// Reads "now" (the end of the windows) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Elasticsearch {
        self.clock = clock;
        self
    }

    pub fn new(config: Option<ElasticsearchConfig>) -> Result<Elasticsearch, ElasticsearchError> {
        let Some(config) = config else {
            return Ok(Elasticsearch {
                configured: None,
                clock: Clock::system(),
            });
        };
        let bad = |reason: &str| ElasticsearchError::BadUrl {
            url: config.url.clone(),
            reason: reason.to_string(),
        };
        let base =
            super::endpoint::base_url(&config.url, "api_key_env or username_env and password_env")
                .map_err(|reason| bad(&reason))?;
        check_index(&config.index).map_err(|reason| ElasticsearchError::BadArgument {
            function: "[elasticsearch] index".into(),
            reason,
        })?;
        let client = super::endpoint::api_client()
            .map_err(|error| ElasticsearchError::Client(error.to_string()))?;
        Ok(Elasticsearch {
            configured: Some(Configured {
                client,
                base,
                index: config.index,
                timeout: config.timeout,
                auth: config.auth,
                fields: config.fields,
                max_lines: config.max_lines.max(1),
            }),
            clock: Clock::system(),
        })
    }

    /// Runs `logs.aggregate` with the call's arguments.
    pub async fn call(
        &self,
        _function: &str,
        values: BTreeMap<String, Value>,
    ) -> Result<Value, ElasticsearchError> {
        // Without a server, that is the one thing to say, whatever the arguments.
        if self.configured.is_none() {
            return Err(ElasticsearchError::NotConfigured);
        }
        let query = AggregateQuery::decode(values)?;
        Ok(self.aggregate(&query).await?.to_value())
    }

    /// Whether Elasticsearch answers with this configuration (URL, credentials): its root
    /// endpoint's version, for `medic doctor`.
    pub async fn check(&self) -> Result<String, ElasticsearchError> {
        let configured = self
            .configured
            .as_ref()
            .ok_or(ElasticsearchError::NotConfigured)?;
        let request = configured.client.get(configured.base.clone());
        let answer = configured
            .send(request, Instant::now() + configured.timeout)
            .await?;
        let version = answer
            .get("version")
            .and_then(|version| version.get("number"))
            .and_then(Json::as_str)
            .ok_or_else(|| {
                ElasticsearchError::Shape("the root endpoint names no version".into())
            })?;
        Ok(format!("Elasticsearch {version} answered"))
    }

    /// `logs.aggregate`: counts, templates against the baseline, stack traces.
    pub async fn aggregate(
        &self,
        query: &AggregateQuery,
    ) -> Result<LogSummary, ElasticsearchError> {
        let configured = self
            .configured
            .as_ref()
            .ok_or(ElasticsearchError::NotConfigured)?;
        configured.aggregate(query, self.clock.now_ms()).await
    }
}

impl Configured {
    async fn aggregate(
        &self,
        query: &AggregateQuery,
        now: i64,
    ) -> Result<LogSummary, ElasticsearchError> {
        let deadline = Instant::now() + self.timeout;
        let index = query.index.as_deref().unwrap_or(&self.index);
        let baseline_ms = i64::try_from(query.baseline.as_millis()).unwrap_or(i64::MAX);
        let window = (query.since, now.max(query.since));
        let before = (query.since.saturating_sub(baseline_ms), query.since);
        let mut pit = self.open(index, deadline).await?;
        let read = self
            .read_all(&mut pit, query, window, before, deadline)
            .await;
        if let Err(error) = self.close(&pit).await {
            // The point in time expires by itself after KEEP_ALIVE; the answer stands.
            tracing::warn!(%error, "closing the elasticsearch point in time failed");
        }
        read
    }

    async fn read_all(
        &self,
        pit: &mut PointInTime,
        query: &AggregateQuery,
        window: (i64, i64),
        before: (i64, i64),
        deadline: Instant,
    ) -> Result<LogSummary, ElasticsearchError> {
        let (total, errors, by_keyword) = self.counts(pit, query, window, deadline).await?;
        let mut miner = Miner::new();
        let baseline = self.page(pit, &query.service, before, deadline).await?;
        let mut baseline_counts = WindowCounts::default();
        for line in &baseline.lines {
            if let Some(message) = &line.message {
                baseline_counts.add(miner.add(first_line(message)));
            }
        }
        let current = self.page(pit, &query.service, window, deadline).await?;
        let mut current_counts = WindowCounts::default();
        let mut texts: Vec<&str> = Vec::with_capacity(current.lines.len());
        for line in &current.lines {
            if let Some(message) = &line.message {
                current_counts.add(miner.add(first_line(message)));
                texts.push(message);
            }
            if let Some(trace) = &line.stack_trace {
                texts.push(trace);
            }
        }
        let mut stack_traces = stack::extract(&texts);
        stack_traces.truncate(STACK_TRACES);
        let templates =
            medic_analysis::logs::compare(&miner, &current_counts, &baseline_counts, TEMPLATES);
        let lines_read = current.lines.len() as u64;
        let baseline_lines_read = baseline.lines.len() as u64;
        Ok(LogSummary {
            total,
            errors,
            by_keyword,
            templates,
            stack_traces,
            lines_read,
            baseline_lines_read,
            limited: current.total > lines_read,
            baseline_limited: baseline.total > baseline_lines_read,
        })
    }

    /// The service's lines in `[from, until)`.
    fn filter(&self, service: &str, (from, until): (i64, i64)) -> Json {
        json!({
            "bool": {
                "filter": [
                    {"term": {self.fields.service.as_str(): service}},
                    {"range": {self.fields.timestamp.as_str(): {
                        "gte": from,
                        "lt": until,
                        "format": "epoch_millis",
                    }}},
                ],
            },
        })
    }

    fn keyword_query(&self, keyword: &str) -> Json {
        json!({"match_phrase": {self.fields.message.as_str(): keyword}})
    }

    /// The window's total, errors and keyword counts, in one aggregation search.
    async fn counts(
        &self,
        pit: &mut PointInTime,
        query: &AggregateQuery,
        window: (i64, i64),
        deadline: Instant,
    ) -> Result<(u64, u64, BTreeMap<String, u64>), ElasticsearchError> {
        let mut error_clauses: Vec<Json> = ERROR_LEVELS
            .iter()
            .map(|level| {
                json!({"term": {self.fields.level.as_str(): {
                    "value": level,
                    "case_insensitive": true,
                }}})
            })
            .collect();
        error_clauses.extend(
            query
                .keywords
                .iter()
                .map(|keyword| self.keyword_query(keyword)),
        );
        let mut aggregations = json!({
            "errors": {"filter": {"bool": {"should": error_clauses, "minimum_should_match": 1}}},
        });
        // Keywords go by position: a keyword's text is never a key Elasticsearch reads.
        if !query.keywords.is_empty() {
            let filters: serde_json::Map<String, Json> = query
                .keywords
                .iter()
                .enumerate()
                .map(|(position, keyword)| (position.to_string(), self.keyword_query(keyword)))
                .collect();
            if let Some(object) = aggregations.as_object_mut() {
                object.insert("keywords".into(), json!({"filters": {"filters": filters}}));
            }
        }
        let body = json!({
            "size": 0,
            "track_total_hits": true,
            "query": self.filter(&query.service, window),
            "aggs": aggregations,
            "pit": {"id": pit.id, "keep_alive": KEEP_ALIVE},
        });
        let answer = self.search(pit, &body, deadline).await?;
        let total = total_hits(&answer)?;
        let errors = number(
            &answer,
            &["aggregations", "errors", "doc_count"],
            "aggregations.errors.doc_count",
        )?;
        let mut by_keyword = BTreeMap::new();
        for (position, keyword) in query.keywords.iter().enumerate() {
            let key = position.to_string();
            let count = number(
                &answer,
                &[
                    "aggregations",
                    "keywords",
                    "buckets",
                    key.as_str(),
                    "doc_count",
                ],
                &format!("aggregations.keywords.buckets.{key}.doc_count"),
            )?;
            by_keyword.insert(keyword.clone(), count);
        }
        Ok((total, errors, by_keyword))
    }

    /// The messages of one window in time order, `max_lines` at most.
    async fn page(
        &self,
        pit: &mut PointInTime,
        service: &str,
        window: (i64, i64),
        deadline: Instant,
    ) -> Result<Window, ElasticsearchError> {
        let mut lines = Vec::new();
        let mut total = 0;
        let mut after: Option<Json> = None;
        loop {
            let size = PAGE_SIZE.min(self.max_lines.saturating_sub(lines.len()));
            if size == 0 {
                break;
            }
            let first = after.is_none();
            let mut body = json!({
                "size": size,
                "query": self.filter(service, window),
                "sort": [{self.fields.timestamp.as_str(): {"order": "asc"}}],
                "_source": [self.fields.message, self.fields.stack_trace],
                // Counted once, to know whether `max_lines` left lines unread.
                "track_total_hits": first,
                "pit": {"id": pit.id, "keep_alive": KEEP_ALIVE},
            });
            if let (Some(after), Some(object)) = (&after, body.as_object_mut()) {
                object.insert("search_after".into(), after.clone());
            }
            let answer = self.search(pit, &body, deadline).await?;
            if first {
                total = total_hits(&answer)?;
            }
            let hits = answer
                .get("hits")
                .and_then(|hits| hits.get("hits"))
                .and_then(Json::as_array)
                .ok_or_else(|| ElasticsearchError::Shape("no `hits.hits` list".into()))?;
            for (position, hit) in hits.iter().enumerate() {
                let source = hit.get("_source");
                lines.push(Line {
                    message: source.and_then(|source| text(source, &self.fields.message)),
                    stack_trace: source.and_then(|source| text(source, &self.fields.stack_trace)),
                });
                if position + 1 == hits.len() {
                    let sort = hit
                        .get("sort")
                        .filter(|sort| sort.is_array())
                        .ok_or_else(|| {
                            ElasticsearchError::Shape(format!(
                                "hits.hits[{position}] has no `sort` values to page after"
                            ))
                        })?;
                    after = Some(sort.clone());
                }
            }
            if hits.len() < size {
                break;
            }
        }
        Ok(Window { lines, total })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ElasticsearchError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ElasticsearchError::BadUrl {
                url: self.base.to_string(),
                reason: "it cannot be a base URL".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn open(
        &self,
        index: &str,
        deadline: Instant,
    ) -> Result<PointInTime, ElasticsearchError> {
        let mut url = self.url(&[index, "_pit"])?;
        url.query_pairs_mut().append_pair("keep_alive", KEEP_ALIVE);
        let request = self.client.post(url);
        let answer = self.send(request, deadline).await?;
        let id = answer
            .get("id")
            .and_then(Json::as_str)
            .ok_or_else(|| ElasticsearchError::Shape("the point in time has no `id`".into()))?;
        Ok(PointInTime { id: id.to_string() })
    }

    async fn close(&self, pit: &PointInTime) -> Result<(), ElasticsearchError> {
        let request = self
            .client
            .delete(self.url(&["_pit"])?)
            .json(&json!({"id": pit.id}));
        match self
            .send(request, Instant::now() + CLOSE_TIMEOUT.min(self.timeout))
            .await
        {
            Ok(_) => Ok(()),
            // 404 `{"succeeded": true, "num_freed": 0}`: it had expired already.
            Err(ElasticsearchError::Status { status: 404, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// A search through the point in time; keeps the newest `pit_id` the answer gives.
    async fn search(
        &self,
        pit: &mut PointInTime,
        body: &Json,
        deadline: Instant,
    ) -> Result<Json, ElasticsearchError> {
        let request = self.client.post(self.url(&["_search"])?).json(body);
        let answer = self.send(request, deadline).await?;
        if let Some(id) = answer.get("pit_id").and_then(Json::as_str) {
            pit.id = id.to_string();
        }
        complete(&answer)?;
        Ok(answer)
    }

    /// Sends a request with the credentials and the time left, and reads the JSON answer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<Json, ElasticsearchError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ElasticsearchError::TimedOut(self.timeout));
        }
        let request = match &self.auth {
            EsAuth::None => request,
            EsAuth::ApiKey(key) => {
                let mut value = reqwest::header::HeaderValue::from_str(&format!("ApiKey {key}"))
                    .map_err(|_| {
                        ElasticsearchError::Client("the API key is not a valid header value".into())
                    })?;
                value.set_sensitive(true);
                request.header(reqwest::header::AUTHORIZATION, value)
            }
            EsAuth::Basic { username, password } => request.basic_auth(username, Some(password)),
        };
        let failed = |error: reqwest::Error, while_reading: bool| {
            if error.is_timeout() {
                ElasticsearchError::TimedOut(self.timeout)
            } else if while_reading {
                ElasticsearchError::Unreadable(without_url(&error))
            } else {
                ElasticsearchError::NoAnswer(without_url(&error))
            }
        };
        let exchange = async {
            let mut response = request.send().await.map_err(|error| failed(error, false))?;
            let status = response.status();
            let body = super::endpoint::read_capped(&mut response, ANSWER_LIMIT)
                .await
                .map_err(|error| match error {
                    super::endpoint::ReadError::TooLarge => ElasticsearchError::TooLarge,
                    super::endpoint::ReadError::Read(error) => failed(error, true),
                })?;
            Ok::<_, ElasticsearchError>((status, body))
        };
        // The time left bounds the whole exchange, the body's chunks included.
        let (status, body) = tokio::time::timeout(left, exchange)
            .await
            .map_err(|_| ElasticsearchError::TimedOut(self.timeout))??;
        let json: Json = match serde_json::from_slice(&body) {
            Ok(json) => json,
            Err(_) if !status.is_success() => {
                return Err(ElasticsearchError::Status {
                    status: status.as_u16(),
                    excerpt: excerpt(&body),
                });
            }
            Err(error) => {
                return Err(ElasticsearchError::NotJson {
                    reason: error.to_string(),
                    excerpt: excerpt(&body),
                });
            }
        };
        if let Some(error) = json.get("error") {
            return Err(refusal(status.as_u16(), error));
        }
        if !status.is_success() {
            return Err(ElasticsearchError::Status {
                status: status.as_u16(),
                excerpt: excerpt(&body),
            });
        }
        Ok(json)
    }
}

/// Elasticsearch's error object: the first root cause's type and reason (the top-level
/// ones of a `search_phase_execution_exception` only say "all shards failed").
fn refusal(status: u16, error: &Json) -> ElasticsearchError {
    if let Some(text) = error.as_str() {
        return ElasticsearchError::Refused {
            status,
            error_type: "error".into(),
            reason: text.to_string(),
        };
    }
    let cause = error
        .get("root_cause")
        .and_then(Json::as_array)
        .and_then(|causes| causes.first())
        .filter(|cause| cause.get("type").is_some())
        .unwrap_or(error);
    let field = |key: &str| {
        cause
            .get(key)
            .or_else(|| error.get(key))
            .and_then(Json::as_str)
            .unwrap_or("(not given)")
            .to_string()
    };
    ElasticsearchError::Refused {
        status,
        error_type: field("type"),
        reason: field("reason"),
    }
}

/// Refuses an answer from fewer shards than were searched, or one that timed out.
fn complete(answer: &Json) -> Result<(), ElasticsearchError> {
    if answer.get("timed_out").and_then(Json::as_bool) == Some(true) {
        return Err(ElasticsearchError::Partial("the search timed out".into()));
    }
    let shards = answer.get("_shards");
    let failed = shards
        .and_then(|shards| shards.get("failed"))
        .and_then(Json::as_u64)
        .unwrap_or(0);
    if failed == 0 {
        return Ok(());
    }
    let total = shards
        .and_then(|shards| shards.get("total"))
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let reason = shards
        .and_then(|shards| shards.get("failures"))
        .and_then(Json::as_array)
        .and_then(|failures| failures.first())
        .and_then(|failure| failure.get("reason"))
        .map(|reason| {
            format!(
                " ({}: {})",
                reason.get("type").and_then(Json::as_str).unwrap_or("?"),
                reason.get("reason").and_then(Json::as_str).unwrap_or("?")
            )
        })
        .unwrap_or_default();
    Err(ElasticsearchError::Partial(format!(
        "{failed} of {total} shards failed{reason}"
    )))
}

/// `hits.total.value`, which must be exact (`relation: eq`).
fn total_hits(answer: &Json) -> Result<u64, ElasticsearchError> {
    let total = answer
        .get("hits")
        .and_then(|hits| hits.get("total"))
        .ok_or_else(|| ElasticsearchError::Shape("no `hits.total`".into()))?;
    // Elasticsearch 6 and `rest_total_hits_as_int` answer a bare number.
    if let Some(count) = total.as_u64() {
        return Ok(count);
    }
    let value = total
        .get("value")
        .and_then(Json::as_u64)
        .ok_or_else(|| ElasticsearchError::Shape("`hits.total.value` is not a count".into()))?;
    match total.get("relation").and_then(Json::as_str) {
        Some("eq") | None => Ok(value),
        Some(relation) => Err(ElasticsearchError::Shape(format!(
            "`hits.total` is a bound ({relation} {value}), not a count"
        ))),
    }
}

fn number(answer: &Json, path: &[&str], place: &str) -> Result<u64, ElasticsearchError> {
    path.iter()
        .try_fold(answer, |json, key| json.get(key))
        .and_then(Json::as_u64)
        .ok_or_else(|| ElasticsearchError::Shape(format!("no count at `{place}`")))
}

/// A field of `_source` as text: `a.b` is `{"a": {"b": ..}}` or `{"a.b": ..}`; a list of
/// strings is its lines.
fn text(source: &Json, path: &str) -> Option<String> {
    let value = field(source, path)?;
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Array(items) => {
            let lines: Vec<&str> = items.iter().filter_map(Json::as_str).collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        }
        Json::Null => None,
        other => Some(other.to_string()),
    }
}

fn field<'j>(json: &'j Json, path: &str) -> Option<&'j Json> {
    let object = json.as_object()?;
    if let Some(value) = object.get(path) {
        return Some(value);
    }
    path.match_indices('.').find_map(|(cut, _)| {
        let inner = object.get(path.get(..cut)?)?;
        field(inner, path.get(cut + 1..)?)
    })
}

/// The first line of a message: what is mined into templates (a trace's frames are not).
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn arguments(index: &str, keywords: &[&str]) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("service".to_string(), Value::String("checkout".into())),
            ("since".to_string(), Value::Time(1_000)),
            (
                "keywords".to_string(),
                Value::List(
                    keywords
                        .iter()
                        .map(|k| Value::String(k.to_string()))
                        .collect(),
                ),
            ),
            ("baseline".to_string(), Value::Duration(3_600_000)),
            ("index".to_string(), Value::String(index.into())),
        ])
    }

    #[test]
    fn the_stdlib_default_index_is_the_configured_one() {
        let query = AggregateQuery::decode(arguments("logs-*", &["ERROR"])).unwrap();
        assert_eq!(query.index, None);
        assert_eq!(query.baseline, Duration::from_secs(3600));
        let query = AggregateQuery::decode(arguments("app-*,audit", &[])).unwrap();
        assert_eq!(query.index.as_deref(), Some("app-*,audit"));
    }

    #[test]
    fn indices_elasticsearch_forbids_are_refused_before_any_request() {
        for index in [
            "a/b",
            "../x",
            "..",
            ".",
            "a b",
            "a,,b",
            "x?y",
            "x#y",
            "q\"",
            "_search/../x",
        ] {
            let error = AggregateQuery::decode(arguments(index, &[])).unwrap_err();
            assert!(
                matches!(error, ElasticsearchError::BadArgument { .. }),
                "{index}: {error}"
            );
        }
        let error = AggregateQuery::decode(arguments("logs-*", &[" "])).unwrap_err();
        assert_eq!(error.to_string(), "`logs.aggregate`: a keyword is empty");
    }

    #[test]
    fn the_first_root_cause_names_the_refusal() {
        let error = json!({
            "root_cause": [{"type": "index_not_found_exception", "reason": "no such index [logs-x]"}],
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
        });
        assert_eq!(
            refusal(404, &error).to_string(),
            "elasticsearch refused the search (index_not_found_exception): no such index [logs-x]"
        );
        assert_eq!(
            refusal(
                400,
                &json!("no handler found for uri [/x] and method [GET]")
            )
            .to_string(),
            "elasticsearch refused the search (error): no handler found for uri [/x] and method [GET]"
        );
    }

    #[test]
    fn fields_are_found_nested_or_dotted() {
        let source =
            json!({"error": {"stack_trace": "a"}, "log.level": "ERROR", "x": {"y.z": ["1", "2"]}});
        assert_eq!(text(&source, "error.stack_trace").as_deref(), Some("a"));
        assert_eq!(text(&source, "log.level").as_deref(), Some("ERROR"));
        assert_eq!(text(&source, "x.y.z").as_deref(), Some("1\n2"));
        assert_eq!(text(&source, "missing"), None);
    }

    #[test]
    fn partial_answers_are_refused() {
        let answer = json!({"timed_out": false, "_shards": {"total": 3, "failed": 1, "failures": [
            {"reason": {"type": "query_shard_exception", "reason": "bad"}}]}});
        assert_eq!(
            complete(&answer).unwrap_err().to_string(),
            "elasticsearch answered from part of the data only: 1 of 3 shards failed (query_shard_exception: bad)"
        );
    }
}
