//! Hostile payloads: property tests (proptest) of every webhook reader and every API body with
//! generated JSON that a broken or malicious sender could send — deep nesting, huge strings
//! and arrays, wrong types, invalid UTF-8 and bad `\u` escapes, duplicate keys, numbers out of
//! range, missing and null fields, non-object top levels, positional arrays in place of
//! objects, truncated documents — and mutations of valid payloads, so that the cases reach the
//! readers' inner code and not only the JSON parser.
//!
//! The properties: a reader never panics; a payload it refuses is refused by the router with
//! the same message as a 4xx `{"error": ...}` (never a 5xx), naming the field or the position
//! where it can, and nothing of it is journaled; a payload it accepts is accepted whole. API
//! bodies are refused with a 4xx and change nothing: the run waiting for approval still waits,
//! the kill switch stays as it was.
//!
//! Each property runs a fixed, modest number of cases (`CASES`) with a random seed and no
//! failure file; a failure prints the smallest payload found. The router is called in process
//! (`tower::Service`), with an in-memory journal, on a tokio runtime of the test's own.

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use medic_compiler::plan::{Plan, Value};
use medic_runtime::engine::{Engine, EngineConfig};
use medic_runtime::executor::{CallFuture, Clock, Toolbox};
use medic_runtime::ingest::{self, Alert, IngestError};
use medic_runtime::journal::{Journal, JournalHandle};
use medic_runtime::server::{self, Auth, ServerLimits, ServerState, Signing};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::Service;

/// Cases per property: enough to reach every recipe many times, few enough that the whole
/// module runs in seconds in a debug build.
const CASES: u32 = 256;

/// The server's body limit in these tests; some generated bodies are larger, and get 413.
const BODY_LIMIT: usize = 256 << 10;

/// The engine's queue: a payload with more alerts than this gets 413.
const QUEUE: usize = 32;

const SOURCE: &str = r##"
import std.{notify}

/// Tells the team, once someone approved.
rule gated {
  on alert "Gated"
  run gated(service: alert.service)
  cooldown 1m per alert.fingerprint
}

playbook gated(service: String) {
  task tell = notify.slack(channel: "#oncall", text: "{service} is gated") {
    approval by "sre"
  }
}
"##;

fn plan() -> Plan {
    let analysis = medic_compiler::check(vec![medic_compiler::Source::new("x.ops", SOURCE)]);
    assert!(
        analysis.diagnostics.is_empty(),
        "{:?}",
        analysis.diagnostics
    );
    medic_compiler::plan::lower(&analysis).unwrap()
}

/// Answers every call with a delivered notification.
struct Answering;

impl Toolbox for Answering {
    fn call(&self, _function: &str, _args: BTreeMap<String, Value>) -> CallFuture {
        Box::pin(async {
            Ok(Value::record([
                ("delivered".to_string(), Value::Bool(true)),
                ("detail".to_string(), Value::String("ok".into())),
            ]))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The payloads.

/// A fragment of JSON text, written raw into a payload: much of what is hostile (1e400, a lone
/// surrogate, invalid UTF-8, a duplicate key) cannot be held in a `serde_json::Value`.
#[derive(Clone, Debug)]
enum Fragment {
    /// JSON text as written.
    Raw(&'static str),
    /// A valid string, escaped.
    Text(String),
    /// `[[[...]]]`, so many deep.
    DeepLists(usize),
    /// `{"a":{"a":...1}}`, so many deep.
    DeepObjects(usize),
    /// A string of so many times one character.
    HugeText(usize, char),
    /// `[0,0,...]`, so many long.
    HugeList(usize),
    /// A string holding these bytes, which are not UTF-8.
    NotUtf8(Vec<u8>),
}

impl Fragment {
    fn render(&self) -> Vec<u8> {
        match self {
            Fragment::Raw(text) => text.as_bytes().to_vec(),
            Fragment::Text(text) => serde_json::to_vec(text).unwrap(),
            Fragment::DeepLists(depth) => {
                let mut out = "[".repeat(*depth).into_bytes();
                out.extend("]".repeat(*depth).into_bytes());
                out
            }
            Fragment::DeepObjects(depth) => {
                let mut out = r#"{"a":"#.repeat(*depth).into_bytes();
                out.push(b'1');
                out.extend("}".repeat(*depth).into_bytes());
                out
            }
            Fragment::HugeText(length, character) => {
                serde_json::to_vec(&character.to_string().repeat(*length)).unwrap()
            }
            Fragment::HugeList(length) => {
                let mut out = b"[".to_vec();
                out.extend("0,".repeat(length.saturating_sub(1)).into_bytes());
                out.extend(b"0]");
                out
            }
            Fragment::NotUtf8(bytes) => {
                let mut out = b"\"ok ".to_vec();
                out.extend(bytes);
                out.push(b'"');
                out
            }
        }
    }
}

/// Values that no reader takes where it needs text: wrong types, nulls, numbers out of range,
/// strings that are not JSON (bad escapes, raw control characters, invalid UTF-8), nesting
/// beyond the parser's limit, and lists that are not empty (an empty list of alerts is valid).
fn not_text() -> BoxedStrategy<Fragment> {
    prop_oneof![
        // The wrong types reach the readers' own checks; what the parser refuses does not.
        4 => prop::sample::select(vec![
            "null",
            "true",
            "false",
            "{}",
            r#"{"a":"b"}"#,
            r#"["positional"]"#,
            "[null]",
        ])
        .prop_map(Fragment::Raw),
        2 => prop::sample::select(vec![
            "1e400",
            "-1e400",
            "1E+99999",
            r#""\ud800""#,
            r#""\udc00 alone""#,
            r#""\ud800\u0041""#,
            r#""\uZZZZ""#,
            r#""\u12""#,
            r#""\x41""#,
            r#""\""#,
            "\"raw\ttab\"",
            "\"raw\nnewline\"",
            "\"nul\u{0}\"",
            r#""unterminated"#,
        ])
        .prop_map(Fragment::Raw),
        1 => (2..300usize).prop_map(Fragment::DeepLists),
        1 => (1..300usize).prop_map(Fragment::DeepObjects),
        1 => (2..100_000usize).prop_map(Fragment::DeepLists),
        1 => (1..20_000usize).prop_map(Fragment::HugeList),
        1 => prop::sample::select(vec![
            vec![0xff],
            vec![0xc3],
            vec![0xc0, 0xaf],
            vec![0xed, 0xa0, 0x80],
            vec![0xf4, 0x90, 0x80, 0x80],
            vec![0xe2, 0x82],
        ])
        .prop_map(Fragment::NotUtf8),
    ]
    .boxed()
}

/// Anything: what [`not_text`] gives, and valid values that may or may not be taken (odd
/// numbers, odd text, huge text, times at the edges, Zabbix macros).
fn any_fragment() -> BoxedStrategy<Fragment> {
    prop_oneof![
        3 => not_text(),
        2 => prop::sample::select(vec![
            "[]",
            "-0",
            "-0.0",
            "0",
            "1e-400",
            "123456789012345678901234567890",
            "-9223372036854775809",
            "18446744073709551616",
            "1.7976931348623157e308",
            "5e-324",
            r#""""#,
            r#""   ""#,
            r#""\u0000""#,
            r#""\ud83d\ude00""#,
            r#""\u202e RTL""#,
            r#""{EVENT.ID}""#,
            r#""*UNKNOWN*""#,
            r#""firing""#,
            r#""resolved""#,
            r#""PROBLEM""#,
            r#""0""#,
            r#""1""#,
            r#""0001-01-01T00:00:00Z""#,
            r#""9999-12-31T23:59:59.999999999Z""#,
            r#""2026-11-27T12:00:00+23:59""#,
            r#""2026-11-27T12:00:60Z""#,
            r#""2026-02-30T12:00:00Z""#,
            r#""9999.12.31""#,
            r#""0000.00.00""#,
            r#""23:59:60""#,
            r#""1e400%""#,
            r#""NaN""#,
            r#""-inf""#,
            r#""99999999999999999999s""#,
            r#""9223372036854775807ms""#,
            r#""18446744073709551615B""#,
            r#""-0ms""#,
            r#""[{\"tag\":\"a\",\"value\":1e400}]""#,
            r#""[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[""#,
            r#"{"B":1e308}"#,
            r#"{"tag":"t","value":null}"#,
            r#"[{"tag":"t"}]"#,
            r#"[{"tag":["t"]}]"#,
        ])
        .prop_map(Fragment::Raw),
        2 => any::<String>().prop_map(Fragment::Text),
        1 => (0..70_000usize, any::<char>()).prop_map(|(length, c)| Fragment::HugeText(length, c)),
    ]
    .boxed()
}

/// A valid payload of a source, and the fields whose loss or corruption must refuse it: a
/// JSON pointer, and the words of which the refusal must name one (or a position).
#[derive(Clone, Debug)]
struct Base {
    json: &'static str,
    required: &'static [(&'static str, &'static [&'static str])],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Alertmanager,
    Grafana,
    Zabbix,
    Generic,
}

const SOURCES: [Source; 4] = [
    Source::Alertmanager,
    Source::Grafana,
    Source::Zabbix,
    Source::Generic,
];

const ALERTMANAGER: &[Base] = &[
    Base {
        json: r#"{"receiver":"medic","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Hostile_Payload","instance":"10.0.0.1:8080","service":"payment-gateway","severity":"critical"},"annotations":{"summary":"p99 latency high","value":"750ms"},"startsAt":"2026-11-27T12:08:39.298352721Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"63249a583b704b09"}],"groupLabels":{},"commonLabels":{"alertname":"Hostile_Payload"},"commonAnnotations":{},"externalURL":"http://vm:19093","version":"4","groupKey":"{}:{}","truncatedAlerts":0}"#,
        required: &[
            ("/alerts", &["alerts"]),
            ("/alerts/0/status", &["status"]),
            ("/alerts/0/startsAt", &["startsAt"]),
            ("/alerts/0/labels", &["labels", "alertname"]),
            ("/alerts/0/labels/alertname", &["alertname"]),
        ],
    },
    Base {
        json: r#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Hostile_Payload","job":"api"},"annotations":{"value":"92%"},"startsAt":"2026-11-27T12:00:00Z"},{"status":"resolved","labels":{"alertname":"Hostile_Resolved","severity":"info"},"annotations":{},"startsAt":"2026-11-27T12:00:00Z","endsAt":"2026-11-27T12:05:00Z","fingerprint":"abc"}]}"#,
        required: &[
            ("/alerts/1/status", &["status"]),
            ("/alerts/1/startsAt", &["startsAt"]),
            ("/alerts/1/labels/alertname", &["alertname"]),
        ],
    },
];

const GRAFANA: &[Base] = &[Base {
    json: r#"{"receiver":"medic","status":"firing","orgId":1,"alerts":[{"status":"firing","labels":{"alertname":"HighCPU","grafana_folder":"Infra","instance":"web-1:9100","job":"node","severity":"critical"},"annotations":{"summary":"CPU above 90%"},"startsAt":"2026-11-27T12:08:39Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://grafana:3000/alerting/grafana/cpu/view?orgId=1","fingerprint":"a4e1c3d2b5f60718","silenceURL":"http://grafana:3000/alerting/silence/new","dashboardURL":"","panelURL":"","values":{"B":92.5},"valueString":"[ var='B' labels={instance=web-1:9100} value=92.5 ]"},{"status":"resolved","labels":{"alertname":"SlowCheckout","service":"checkout"},"annotations":{"value":"750ms"},"startsAt":"2026-11-27T12:00:00Z","endsAt":"2026-11-27T12:20:00Z","generatorURL":"","fingerprint":"0b1c2d3e4f5a6b7c","silenceURL":"","dashboardURL":"","panelURL":"","values":{"A":0.75,"C":1},"valueString":""}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://grafana:3000/","version":"1","groupKey":"{}:{}","truncatedAlerts":0,"title":"[FIRING:1] HighCPU","state":"alerting","message":"Firing"}"#,
    required: &[
        ("/alerts", &["alerts"]),
        ("/alerts/0/status", &["status"]),
        ("/alerts/0/startsAt", &["startsAt"]),
        ("/alerts/0/labels/alertname", &["alertname"]),
        ("/alerts/1/status", &["status"]),
        ("/alerts/1/startsAt", &["startsAt"]),
    ],
}];

const ZABBIX: &[Base] = &[
    Base {
        json: r#"{"event_id":"4711","name":"High CPU utilization on web-1","status":"PROBLEM","event_value":"1","severity":"High","host":"web-1","value":"92 %","event_date":"2026.11.27","event_time":"12:08:39","recovery_date":"{EVENT.RECOVERY.DATE}","recovery_time":"{EVENT.RECOVERY.TIME}","tags":"[{\"tag\":\"service\",\"value\":\"checkout\"},{\"tag\":\"scope\",\"value\":\"performance\"}]","summary":"CPU above 90% for 5m"}"#,
        required: &[
            ("/event_id", &["event_id"]),
            ("/name", &["name"]),
            ("/event_date", &["event_date"]),
            ("/event_time", &["event_time"]),
        ],
    },
    Base {
        json: r#"{"events":[{"event_id":4712,"name":"Checkout latency","event_value":"1","severity":"Average","host":"api-2","service":"","namespace":"shop","value":"750 ms","starts_at":"2026-11-27T12:00:00Z","tags":{"team":"payments"}},{"event_id":"4713","fingerprint":"custom-1","name":"Disk slow","status":"ok","severity":"Information","host":"db-1","value":"1h 30m","event_date":"2026.11.27","event_time":"11:50:00","recovery_date":"2026.11.27","recovery_time":"12:10:00","tags":[{"tag":"team","value":"storage"},{"tag":"no-value"}]}]}"#,
        required: &[
            (
                "/events",
                &["events", "event_id", "expected an event object"],
            ),
            ("/events/0/event_id", &["event_id"]),
            ("/events/0/starts_at", &["starts_at", "start time"]),
            ("/events/1/name", &["name"]),
        ],
    },
];

const GENERIC: &[Base] = &[
    Base {
        json: r#"{"name":"Service_Latency_Exceeded","severity":"P1","service":"payment-gateway","instance":"10.0.0.1:8080","value":"750ms","summary":"p99 latency high","labels":{"team":"payments"},"starts_at":"2026-11-27T12:08:39Z"}"#,
        required: &[("/name", &["name"]), ("/starts_at", &["starts_at"])],
    },
    Base {
        json: r#"{"alerts":[{"name":"A","status":"resolved","value":12,"labels":{"job":"api"},"starts_at":"2026-11-27T12:00:00Z","ends_at":"2026-11-27T12:05:00Z","fingerprint":"abc"},{"name":"B","value":"92%","starts_at":"2026-11-27T13:00:00+01:00"}]}"#,
        required: &[
            ("/alerts", &["alerts", "name", "expected an alert object"]),
            ("/alerts/0/name", &["name"]),
            ("/alerts/1/starts_at", &["starts_at"]),
        ],
    },
];

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
            Source::Zabbix => "zabbix",
            Source::Generic => "generic",
        }
    }

    fn read(self, body: &[u8]) -> Result<Vec<Alert>, IngestError> {
        match self {
            Source::Alertmanager => ingest::alertmanager(body),
            Source::Grafana => ingest::grafana(body),
            Source::Zabbix => ingest::zabbix(body),
            Source::Generic => ingest::generic(body),
        }
    }

    fn bases(self) -> &'static [Base] {
        match self {
            Source::Alertmanager => ALERTMANAGER,
            Source::Grafana => GRAFANA,
            Source::Zabbix => ZABBIX,
            Source::Generic => GENERIC,
        }
    }

    /// Text fields that take only some text: which base, where, and what they take.
    fn checked_text(self) -> &'static [(usize, &'static str, Checked)] {
        match self {
            Source::Alertmanager => &[
                (0, "/alerts/0/status", Checked::Status),
                (1, "/alerts/1/status", Checked::Status),
                (0, "/alerts/0/startsAt", Checked::Time),
                (1, "/alerts/1/endsAt", Checked::Time),
            ],
            Source::Grafana => &[
                (0, "/alerts/1/status", Checked::Status),
                (0, "/alerts/0/startsAt", Checked::Time),
                (0, "/alerts/1/endsAt", Checked::Time),
            ],
            Source::Zabbix => &[
                (1, "/events/0/event_value", Checked::EventValue),
                (1, "/events/0/starts_at", Checked::Time),
                (0, "/event_date", Checked::ZabbixDate),
                (0, "/event_time", Checked::ZabbixDate),
            ],
            Source::Generic => &[
                (1, "/alerts/0/status", Checked::Status),
                (0, "/starts_at", Checked::Time),
                (1, "/alerts/0/ends_at", Checked::Time),
            ],
        }
    }

    /// Where the list of alerts is, for batches.
    fn list_key(self) -> &'static str {
        match self {
            Source::Zabbix => "events",
            _ => "alerts",
        }
    }

    /// Objects written as the list of their fields' values in declaration order, which
    /// serde's derive would read as the object itself.
    fn positional(self) -> &'static [&'static str] {
        match self {
            Source::Alertmanager => &[
                r#"["4",[["firing",{"alertname":"Positional"},{},"2026-11-27T12:00:00Z"]]]"#,
                r#"[null,[]]"#,
                r#"{"version":"4","alerts":[["firing",{"alertname":"Positional"},{},"2026-11-27T12:00:00Z",null,null]]}"#,
            ],
            Source::Grafana => &[
                r#"[[["firing",{"alertname":"Positional"},{},"2026-11-27T12:00:00Z"]]]"#,
                r#"[[]]"#,
                r#"{"alerts":[["firing",{"alertname":"Positional"},{},"2026-11-27T12:00:00Z",null,null,null]]}"#,
            ],
            Source::Zabbix => &[
                r#"["4711","Positional","PROBLEM"]"#,
                r#"{"events":[["4711","Positional","PROBLEM","1","High","web-1","92 %",null,null,null,"2026-11-27T12:00:00Z"]]}"#,
            ],
            Source::Generic => &[
                r#"["Positional",null,null,null,null,null,null,null,null,{},{},"2026-11-27T12:00:00Z"]"#,
                r#"{"alerts":[["Positional",null,null,null,null,null,null,null,null,{},{},"2026-11-27T12:00:00Z",null,null]]}"#,
            ],
        }
    }
}

/// What a text field takes.
#[derive(Clone, Copy, Debug)]
enum Checked {
    /// `firing` or `resolved`.
    Status,
    /// RFC 3339.
    Time,
    /// Zabbix's `1` or `0`.
    EventValue,
    /// Zabbix's `2026.11.27` or `12:08:39`, or a macro it left unexpanded.
    ZabbixDate,
}

impl Checked {
    /// Whether `text` is something the field takes, by a rule simpler than the reader's:
    /// anything that might be taken is left out of the cases that must be refused.
    fn might_take(self, text: &str) -> bool {
        let text = text.trim();
        match self {
            Checked::Status => ["firing", "resolved"].contains(&text),
            Checked::Time => text.is_empty() || medic_compiler::units::parse_time(text).is_ok(),
            Checked::EventValue => {
                text.is_empty() || text.starts_with('{') || ["0", "1", "*UNKNOWN*"].contains(&text)
            }
            Checked::ZabbixDate => {
                text.is_empty()
                    || text.starts_with('{')
                    || text == "*UNKNOWN*"
                    || text
                        .bytes()
                        .all(|byte| byte.is_ascii_digit() || b".:".contains(&byte))
            }
        }
    }
}

/// Text near what a checked field takes, and any text at all.
fn near_miss_text() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "Firing",
            "FIRING",
            "fire",
            "resolve",
            "pending",
            "PROBLEM",
            "2026-11-27T12:00:00",
            "2026-11-27",
            "12:00:00Z",
            "2026-11-27T25:00:00Z",
            "2026-11-27T12:00:00+24:00",
            "2026-13-27T12:00:00Z",
            "1795781319",
            "-1",
            "2",
            "true",
            "1.0",
            "2026.11.27 12:08:39",
            "2026-11-27",
            "27.11.2026",
            "12.08.39",
            "12:08",
            "{EVENT.DATE",
            "\u{0}",
        ])
        .prop_map(str::to_string),
        any::<String>(),
        "[0-9.:TZ+-]{0,30}",
    ]
    .boxed()
}

/// One generated body: how it was made, for the failure report, and its bytes.
#[derive(Clone)]
struct Payload {
    recipe: String,
    bytes: Vec<u8>,
    /// Words of which a refusal must name one; a position (`line 1 column 7`) always does.
    names: Vec<&'static str>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A failing case may be a megabyte; its ends say enough.
        let text = String::from_utf8_lossy(&self.bytes);
        let shown: String = if text.chars().count() > 600 {
            let head: String = text.chars().take(400).collect();
            let tail: String = {
                let mut tail: Vec<char> = text.chars().rev().take(150).collect();
                tail.reverse();
                tail.into_iter().collect()
            };
            format!("{head} ... {tail}")
        } else {
            text.into_owned()
        };
        write!(f, "{} ({} bytes): {shown}", self.recipe, self.bytes.len())
    }
}

const PLACEHOLDER: &str = "\u{1}medic-hostile-value\u{1}";
const PLACEHOLDER_KEY: &str = "\u{1}medic-hostile-key\u{1}";

/// `value` written as JSON with `fragment`'s text where the placeholder string is.
fn splice(value: &serde_json::Value, fragment: &[u8]) -> Vec<u8> {
    let text = serde_json::to_vec(value).unwrap();
    let marker = serde_json::to_vec(PLACEHOLDER).unwrap();
    replace_once(&text, &marker, fragment)
}

fn replace_once(text: &[u8], marker: &[u8], with: &[u8]) -> Vec<u8> {
    let at = text
        .windows(marker.len())
        .position(|window| window == marker)
        .unwrap();
    let mut out = text[..at].to_vec();
    out.extend(with);
    out.extend(&text[at + marker.len()..]);
    out
}

/// Every JSON pointer into `value`, the root (`""`) included.
fn pointers(value: &serde_json::Value) -> Vec<String> {
    let mut found = vec![String::new()];
    let mut stack = vec![(String::new(), value)];
    while let Some((pointer, value)) = stack.pop() {
        match value {
            serde_json::Value::Object(object) => {
                for (key, child) in object {
                    let escaped = key.replace('~', "~0").replace('/', "~1");
                    let child_pointer = format!("{pointer}/{escaped}");
                    found.push(child_pointer.clone());
                    stack.push((child_pointer, child));
                }
            }
            serde_json::Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    let child_pointer = format!("{pointer}/{index}");
                    found.push(child_pointer.clone());
                    stack.push((child_pointer, child));
                }
            }
            _ => {}
        }
    }
    found.sort();
    found
}

/// The parent pointer and the last token of a pointer that is not the root.
fn split_pointer(pointer: &str) -> (&str, String) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    (parent, last.replace("~1", "/").replace("~0", "~"))
}

/// Removes what `pointer` names; whether there was something to remove.
fn remove(value: &mut serde_json::Value, pointer: &str) -> bool {
    if pointer.is_empty() {
        return false;
    }
    let (parent, last) = split_pointer(pointer);
    match value.pointer_mut(parent) {
        Some(serde_json::Value::Object(object)) => object.remove(&last).is_some(),
        Some(serde_json::Value::Array(items)) => match last.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn parse(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap()
}

/// The base with the value at `pointer` replaced by `fragment`.
fn replaced(json: &str, pointer: &str, fragment: &Fragment) -> Vec<u8> {
    let mut value = parse(json);
    *value.pointer_mut(pointer).unwrap() = serde_json::Value::String(PLACEHOLDER.into());
    splice(&value, &fragment.render())
}

/// Payloads every reader must refuse (given a source's bases).
fn refused(source: Source) -> BoxedStrategy<Payload> {
    let bases = source.bases();
    let junk = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(
            prop::sample::select(b"{}[]\":,0123456789.eE+-truefalsn\\u \t\n\x00\xff".to_vec()),
            0..300
        ),
    ]
    .prop_filter("JSON is not junk", |bytes| {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err()
    })
    .prop_map(|bytes| Payload {
        recipe: "junk".into(),
        bytes,
        names: vec![],
    });
    let truncated = (prop::sample::select(bases), any::<Index>()).prop_map(|(base, cut)| {
        // Every prefix of an object's text, short of the whole, is unfinished JSON.
        let cut = 1 + cut.index(base.json.len() - 1);
        Payload {
            recipe: format!("truncated at byte {cut}"),
            bytes: base.json.as_bytes()[..cut].to_vec(),
            names: vec![],
        }
    });
    let top_level = prop_oneof![
        not_text().prop_filter("an object", |fragment| !matches!(
            fragment,
            Fragment::DeepObjects(_) | Fragment::Raw("{}" | r#"{"a":"b"}"#)
        )),
        prop::sample::select(vec![
            "",
            "  \n\t ",
            "[]",
            "0",
            "-0",
            "1e-400",
            r#""alerts""#,
            r#"[{"alerts":[]}]"#,
            r#"[{"events":[]}]"#,
        ])
        .prop_map(Fragment::Raw),
    ]
    .prop_map(|fragment| Payload {
        recipe: format!("top level {fragment:?}"),
        bytes: fragment.render(),
        names: vec![", not ", "expected", "EOF"],
    });
    // An object, but one of nothing a source needs, beyond the parser's depth limit or not.
    let deep = prop_oneof![1..300usize, 129..100_000usize].prop_map(|depth| Payload {
        recipe: format!("top level DeepObjects({depth})"),
        bytes: Fragment::DeepObjects(depth).render(),
        names: vec!["alerts", "event_id", "name"],
    });
    let positional = prop::sample::select(source.positional()).prop_map(|json| Payload {
        recipe: "positional".into(),
        bytes: json.as_bytes().to_vec(),
        names: vec![", not ", "expected an object", "expected an event object"],
    });
    let required = (prop::sample::select(bases), any::<Index>(), not_text()).prop_map(
        |(base, which, fragment)| {
            let (pointer, names) = base.required[which.index(base.required.len())];
            Payload {
                recipe: format!("{pointer} = {fragment:?}"),
                bytes: replaced(base.json, pointer, &fragment),
                names: names.to_vec(),
            }
        },
    );
    let wrong_text = (
        prop::sample::select(source.checked_text()),
        near_miss_text(),
    )
        .prop_filter("text the field may take", |((_, _, checked), text)| {
            !checked.might_take(text)
        })
        .prop_map(move |((base, pointer, _), text)| {
            let fragment = Fragment::Text(text);
            Payload {
                recipe: format!("{pointer} = {fragment:?}"),
                bytes: replaced(bases[base].json, pointer, &fragment),
                // The field as the reader calls it (Zabbix's date and time together).
                names: vec![pointer.rsplit('/').next().unwrap_or(pointer), "event_date"],
            }
        });
    let missing = (prop::sample::select(bases), any::<Index>()).prop_map(|(base, which)| {
        let (pointer, names) = base.required[which.index(base.required.len())];
        let mut value = parse(base.json);
        assert!(remove(&mut value, pointer), "{pointer}");
        Payload {
            recipe: format!("{pointer} removed"),
            bytes: serde_json::to_vec(&value).unwrap(),
            names: names.to_vec(),
        }
    });
    prop_oneof![
        1 => junk,
        1 => truncated,
        1 => top_level,
        1 => deep,
        1 => positional,
        4 => required,
        3 => wrong_text,
        2 => missing,
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(Fragment),
    Remove,
    /// The member at the pointer written twice, the second time with this value.
    Duplicate(Fragment),
    /// A new member of the object at the pointer.
    Add(String, Fragment),
    /// The first alert of the list, so many times.
    Many(usize),
}

/// Valid payloads with one thing changed anywhere: some are still valid, some not.
fn mutated(source: Source) -> BoxedStrategy<Payload> {
    let mutation = prop_oneof![
        4 => any_fragment().prop_map(Mutation::Replace),
        1 => Just(Mutation::Remove),
        2 => any_fragment().prop_map(Mutation::Duplicate),
        1 => (any::<String>(), any_fragment()).prop_map(|(key, value)| Mutation::Add(key, value)),
        1 => (1..3 * QUEUE).prop_map(Mutation::Many),
    ];
    (
        prop::sample::select(source.bases()),
        any::<Index>(),
        mutation,
    )
        .prop_map(move |(base, at, mutation)| {
            let mut value = parse(base.json);
            let all = pointers(&value);
            let pointer = all[at.index(all.len())].clone();
            let (recipe, bytes) = match &mutation {
                Mutation::Replace(fragment) => (
                    format!("{pointer} = {fragment:?}"),
                    replaced(base.json, &pointer, fragment),
                ),
                Mutation::Remove => {
                    remove(&mut value, &pointer);
                    (
                        format!("{pointer} removed"),
                        serde_json::to_vec(&value).unwrap(),
                    )
                }
                Mutation::Duplicate(fragment) => {
                    let member = (!pointer.is_empty())
                        .then(|| split_pointer(&pointer))
                        .filter(|(parent, _)| value.pointer(parent).is_some_and(|v| v.is_object()));
                    match member {
                        Some((parent, key)) => {
                            let parent = parent.to_string();
                            value
                                .pointer_mut(&parent)
                                .unwrap()
                                .as_object_mut()
                                .unwrap()
                                .insert(
                                    PLACEHOLDER_KEY.into(),
                                    serde_json::Value::String(PLACEHOLDER.into()),
                                );
                            let text = splice(&value, &fragment.render());
                            let bytes = replace_once(
                                &text,
                                &serde_json::to_vec(PLACEHOLDER_KEY).unwrap(),
                                &serde_json::to_vec(&key).unwrap(),
                            );
                            (format!("{pointer} twice, then {fragment:?}"), bytes)
                        }
                        None => (
                            format!("{pointer} = {fragment:?}"),
                            replaced(base.json, &pointer, fragment),
                        ),
                    }
                }
                Mutation::Add(key, fragment) => {
                    let object = if value.pointer(&pointer).is_some_and(|v| v.is_object()) {
                        pointer.clone()
                    } else {
                        String::new()
                    };
                    value
                        .pointer_mut(&object)
                        .unwrap()
                        .as_object_mut()
                        .unwrap()
                        .insert(key.clone(), serde_json::Value::String(PLACEHOLDER.into()));
                    (
                        format!("{object}/{key:?} added = {fragment:?}"),
                        splice(&value, &fragment.render()),
                    )
                }
                Mutation::Many(count) => {
                    let key = source.list_key();
                    let first = match value.get(key) {
                        Some(serde_json::Value::Array(items)) => items[0].clone(),
                        _ => value.clone(),
                    };
                    let batch = serde_json::json!({ key: vec![first; *count] });
                    (
                        format!("{count} alerts"),
                        serde_json::to_vec(&batch).unwrap(),
                    )
                }
            };
            Payload {
                recipe,
                bytes,
                names: vec![],
            }
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn runner() -> TestRunner {
    // `PROPTEST_CASES=5000` runs a deeper search by hand.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(CASES);
    TestRunner::new(Config {
        cases,
        // Tests leave no files behind; a failure prints its smallest case instead.
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    })
}

/// Runs `test` on `CASES` values of `strategy`; a failure panics with the smallest case.
fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = runner();
    if let Err(error) = runner.run(&strategy, test) {
        panic!("{error}");
    }
}

/// Whether an error message says where in the document the problem is.
fn has_position(message: &str) -> bool {
    let Some((_, rest)) = message.rsplit_once(" line ") else {
        return false;
    };
    let mut words = rest.split(' ');
    words.next().is_some_and(|line| line.parse::<u64>().is_ok())
        && words.next() == Some("column")
        && words
            .next()
            .is_some_and(|column| column.parse::<u64>().is_ok())
}

/// A reader's refusal: an error whose message names the problem.
fn assert_refused(
    source: Source,
    payload: &Payload,
    read: &Result<Vec<Alert>, IngestError>,
) -> Result<String, TestCaseError> {
    let message = match read {
        Ok(alerts) => {
            return Err(TestCaseError::fail(format!(
                "{} accepted {} alert(s) of a payload it must refuse",
                source.name(),
                alerts.len()
            )));
        }
        Err(error) => error.to_string(),
    };
    prop_assert!(!message.trim().is_empty());
    prop_assert!(
        has_position(&message) || payload.names.iter().any(|name| message.contains(name)),
        "{}: the refusal names neither a position nor any of {:?}: {message}",
        source.name(),
        payload.names
    );
    Ok(message)
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    engine: Engine,
}

impl Fixture {
    fn new(signing: Option<Signing>) -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let engine = runtime.block_on(async {
            let journal = JournalHandle::spawn(Journal::in_memory().unwrap()).unwrap();
            Engine::start(
                plan(),
                journal,
                Arc::new(Answering),
                Clock::system(),
                EngineConfig {
                    queue_capacity: QUEUE,
                    ..EngineConfig::default()
                },
            )
            .await
            .unwrap()
        });
        let router = server::router(Arc::new(ServerState {
            engine: engine.clone(),
            auth: Auth {
                signing,
                ..Auth::open()
            },
            limits: ServerLimits {
                body_bytes: BODY_LIMIT,
                ..ServerLimits::default()
            },
            reload: Arc::new(|| Ok(plan())),
        }));
        Fixture {
            runtime,
            router,
            engine,
        }
    }

    /// Sends a request through the router; the status and the body as JSON (a JSON string
    /// when it is not JSON).
    async fn send(&self, request: Request<Body>) -> (u16, serde_json::Value) {
        let mut router = self.router.clone();
        std::future::poll_fn(|context| {
            <axum::Router as Service<Request<Body>>>::poll_ready(&mut router, context)
        })
        .await
        .unwrap();
        let response = router.call(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        });
        (status, value)
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(&str, HeaderValue)],
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let mut request = Request::post(path);
        for (name, value) in headers {
            request = request.header(*name, value.clone());
        }
        self.send(request.body(Body::from(body.to_vec())).unwrap())
            .await
    }

    async fn alert_count(&self) -> i64 {
        self.engine
            .journal()
            .call(|journal| journal.alert_count())
            .await
            .unwrap()
    }
}

/// The error of a refused answer: a 4xx with a non-empty `{"error": ...}`.
fn error_of(status: u16, answer: &serde_json::Value) -> Result<String, TestCaseError> {
    prop_assert!(
        (400..500).contains(&status),
        "expected a 4xx, got {status}: {answer}"
    );
    let message = answer["error"].as_str().unwrap_or_default();
    prop_assert!(
        !message.trim().is_empty(),
        "a {status} without an error message: {answer}"
    );
    Ok(message.to_string())
}

/// Posts `payload` to the source's webhook and checks the answer against what the reader
/// says of the same bytes: a refusal is the same message as a 4xx (400, or 422 for an alert
/// that cannot be used) with nothing journaled; an acceptance is every alert journaled, or
/// 413 with nothing journaled when the payload holds more than the queue can.
async fn webhook_agrees(
    fixture: &Fixture,
    source: Source,
    payload: &Payload,
    headers: &[(&str, HeaderValue)],
) -> Result<(), TestCaseError> {
    let read = source.read(&payload.bytes);
    let before = fixture.alert_count().await;
    let path = format!("/webhook/{}", source.name());
    let (status, answer) = fixture.post(&path, headers, &payload.bytes).await;
    let after = fixture.alert_count().await;
    if payload.bytes.len() > BODY_LIMIT {
        prop_assert_eq!(status, 413, "{}", answer);
        prop_assert!(error_of(status, &answer)?.contains("limit"));
        prop_assert_eq!(after, before, "a refused payload was journaled");
        return Ok(());
    }
    match read {
        Err(error) => {
            let expected = match error {
                IngestError::BadAlert { .. } => 422,
                _ => 400,
            };
            prop_assert_eq!(status, expected, "{}", answer);
            prop_assert_eq!(error_of(status, &answer)?, error.to_string());
            prop_assert_eq!(after, before, "a refused payload was journaled");
        }
        Ok(alerts) if alerts.len() > QUEUE => {
            prop_assert_eq!(status, 413, "{}", answer);
            prop_assert!(error_of(status, &answer)?.contains(&alerts.len().to_string()));
            prop_assert_eq!(after, before, "a refused payload was journaled");
        }
        Ok(alerts) => {
            prop_assert_eq!(status, 200, "{}", answer);
            prop_assert_eq!(answer["accepted"].as_u64(), Some(alerts.len() as u64));
            prop_assert_eq!(after - before, alerts.len() as i64);
            // The queue is short; let the engine match what it was given.
            fixture.engine.idle().await;
        }
    }
    Ok(())
}

fn source_and(payloads: fn(Source) -> BoxedStrategy<Payload>) -> BoxedStrategy<(Source, Payload)> {
    prop::sample::select(SOURCES.to_vec())
        .prop_flat_map(move |source| (Just(source), payloads(source)))
        .boxed()
}

#[test]
fn readers_refuse_hostile_payloads_and_name_the_problem() {
    check(source_and(refused), |(source, payload)| {
        assert_refused(source, &payload, &source.read(&payload.bytes)).map(drop)
    });
}

#[test]
fn readers_never_panic_on_mutated_payloads() {
    check(source_and(mutated), |(source, payload)| {
        // Accepted or refused, without a panic; a refusal says something.
        if let Err(error) = source.read(&payload.bytes) {
            prop_assert!(!error.to_string().trim().is_empty());
        }
        Ok(())
    });
}

#[test]
fn webhooks_refuse_hostile_payloads_with_a_4xx_and_journal_nothing() {
    let fixture = Fixture::new(None);
    check(source_and(refused), |(source, payload)| {
        fixture.runtime.block_on(async {
            let before = fixture.alert_count().await;
            let path = format!("/webhook/{}", source.name());
            let (status, answer) = fixture.post(&path, &[], &payload.bytes).await;
            let message = error_of(status, &answer)?;
            prop_assert_eq!(fixture.alert_count().await, before);
            if payload.bytes.len() <= BODY_LIMIT {
                let read = source.read(&payload.bytes);
                prop_assert_eq!(message, assert_refused(source, &payload, &read)?);
            }
            Ok(())
        })
    });
}

#[test]
fn webhooks_agree_with_their_readers_on_mutated_payloads() {
    let fixture = Fixture::new(None);
    check(source_and(mutated), |(source, payload)| {
        fixture
            .runtime
            .block_on(webhook_agrees(&fixture, source, &payload, &[]))
    });
}

// ---------------------------------------------------------------------------------------------
// The generic webhook with a signature.

const SECRET: &str = "hostile-secret";

fn signature(timestamp: &str, body: &[u8]) -> HeaderValue {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    HeaderValue::from_str(&format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
    .unwrap()
}

fn signing() -> Option<Signing> {
    Some(Signing {
        secret: SECRET.into(),
        tolerance: server::DEFAULT_SIGNATURE_TOLERANCE,
    })
}

fn now_seconds() -> String {
    (Clock::system().now_ms() / 1_000).to_string()
}

#[test]
fn a_signed_generic_webhook_treats_hostile_payloads_as_the_unsigned_one_does() {
    let fixture = Fixture::new(signing());
    let payloads = prop_oneof![refused(Source::Generic), mutated(Source::Generic)];
    check(payloads, |payload| {
        fixture.runtime.block_on(async {
            let now = now_seconds();
            let headers = [
                ("x-medic-timestamp", HeaderValue::from_str(&now).unwrap()),
                ("x-medic-signature", signature(&now, &payload.bytes)),
            ];
            webhook_agrees(&fixture, Source::Generic, &payload, &headers).await
        })
    });
}

/// A signature or timestamp header that is wrong: arbitrary bytes a header may hold, the
/// right signature of other bytes or another time, a number too large for any clock.
#[derive(Clone, Debug)]
enum Forgery {
    Signature(Vec<u8>),
    Timestamp(Vec<u8>),
    OtherBody,
    OtherTime(i64),
    NoSignature,
    NoTimestamp,
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(
            prop::sample::select(b"sha256=0123456789abcdefABCDEF \t,;.-+xyz".to_vec()),
            0..90
        ),
        prop::collection::vec(any::<u8>(), 0..90),
        prop::sample::select(vec![
            b"sha256=".to_vec(),
            b"99999999999999999999999999".to_vec(),
            b"-1".to_vec(),
            b"1e9".to_vec(),
            b"+1795781345".to_vec(),
            "\u{663}\u{663}".as_bytes().to_vec(),
        ]),
    ]
    .prop_filter("a header value", |bytes| {
        HeaderValue::from_bytes(bytes).is_ok()
    })
}

#[test]
fn a_forged_signature_is_a_401_and_journals_nothing() {
    let fixture = Fixture::new(signing());
    let forgery = prop_oneof![
        header_bytes().prop_map(Forgery::Signature),
        header_bytes().prop_map(Forgery::Timestamp),
        Just(Forgery::OtherBody),
        prop_oneof![-1_000_000_000i64..-301, 301..1_000_000_000i64].prop_map(Forgery::OtherTime),
        Just(Forgery::NoSignature),
        Just(Forgery::NoTimestamp),
    ];
    let payloads = prop_oneof![refused(Source::Generic), mutated(Source::Generic)];
    check((forgery, payloads), |(forgery, payload)| {
        fixture.runtime.block_on(async {
            let now = now_seconds();
            let right = signature(&now, &payload.bytes);
            let timestamp = HeaderValue::from_str(&now).unwrap();
            let headers: Vec<(&str, HeaderValue)> = match &forgery {
                Forgery::Signature(bytes) => {
                    let given = HeaderValue::from_bytes(bytes).unwrap();
                    // Arbitrary bytes are the right signature only by a miracle.
                    prop_assume!(given.as_bytes() != right.as_bytes());
                    vec![
                        ("x-medic-timestamp", timestamp),
                        ("x-medic-signature", given),
                    ]
                }
                Forgery::Timestamp(bytes) => {
                    let given = HeaderValue::from_bytes(bytes).unwrap();
                    let signed = signature(&String::from_utf8_lossy(bytes), &payload.bytes);
                    prop_assume!(given.as_bytes() != now.as_bytes());
                    vec![("x-medic-timestamp", given), ("x-medic-signature", signed)]
                }
                Forgery::OtherBody => {
                    let mut other = payload.bytes.clone();
                    other.push(b' ');
                    vec![
                        ("x-medic-timestamp", timestamp),
                        ("x-medic-signature", signature(&now, &other)),
                    ]
                }
                Forgery::OtherTime(offset) => {
                    let then = (Clock::system().now_ms() / 1_000 + offset).to_string();
                    vec![
                        ("x-medic-timestamp", HeaderValue::from_str(&then).unwrap()),
                        ("x-medic-signature", signature(&then, &payload.bytes)),
                    ]
                }
                Forgery::NoSignature => vec![("x-medic-timestamp", timestamp)],
                Forgery::NoTimestamp => vec![("x-medic-signature", right)],
            };
            let before = fixture.alert_count().await;
            let (status, answer) = fixture
                .post("/webhook/generic", &headers, &payload.bytes)
                .await;
            let message = error_of(status, &answer)?;
            // The timestamp is checked before the body is read, the signature after.
            let timestamp_wrong = matches!(
                forgery,
                Forgery::Timestamp(_) | Forgery::OtherTime(_) | Forgery::NoTimestamp
            );
            if payload.bytes.len() > BODY_LIMIT && !timestamp_wrong {
                prop_assert_eq!(status, 413, "{}", message);
            } else {
                prop_assert_eq!(status, 401, "{}", message);
                prop_assert!(message.contains("X-Medic-"), "{}", message);
            }
            prop_assert_eq!(fixture.alert_count().await, before);
            Ok(())
        })
    });
}

// ---------------------------------------------------------------------------------------------
// The API's bodies, paths and queries.

const KILL_SWITCH_BASES: &[Base] = &[
    Base {
        json: r#"{"on":true}"#,
        required: &[("/on", &["on", "expected"])],
    },
    Base {
        json: r#"{"on":false}"#,
        required: &[("/on", &["on", "expected"])],
    },
];

const ACTION_BASES: &[Base] = &[
    Base {
        json: r#"{"task":"tell","reason":"not now"}"#,
        required: &[("/task", &["task"]), ("/reason", &["reason"])],
    },
    Base {
        json: r#"{"task":"tell"}"#,
        required: &[("/task", &["task"])],
    },
    Base {
        json: r#"{"reason":"because"}"#,
        required: &[("/reason", &["reason"])],
    },
];

/// Bodies that a JSON object endpoint must refuse: junk that is not whitespace, truncated
/// bodies, non-object top levels, positional lists, the fields with values not text (`null`
/// aside: an optional field may be null), unknown fields, `by`, and a field given twice.
fn refused_body(
    bases: &'static [Base],
    positional: &'static [&'static str],
) -> BoxedStrategy<Payload> {
    let junk = prop::collection::vec(any::<u8>(), 1..200)
        .prop_filter("JSON or empty is not junk", |bytes| {
            !bytes.iter().all(u8::is_ascii_whitespace)
                && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err()
        })
        .prop_map(|bytes| Payload {
            recipe: "junk".into(),
            bytes,
            names: vec![],
        });
    let truncated = (prop::sample::select(bases), any::<Index>()).prop_map(|(base, cut)| {
        let cut = 1 + cut.index(base.json.len() - 1);
        Payload {
            recipe: format!("truncated at byte {cut}"),
            bytes: base.json.as_bytes()[..cut].to_vec(),
            names: vec![],
        }
    });
    let top_level = prop_oneof![
        not_text().prop_filter("an object", |fragment| !matches!(
            fragment,
            Fragment::DeepObjects(_) | Fragment::Raw("{}" | r#"{"a":"b"}"#)
        )),
        prop::sample::select(vec!["[]", "0", "\"on\"", "[true]", "[{}]"]).prop_map(Fragment::Raw),
    ]
    .prop_map(|fragment| Payload {
        recipe: format!("top level {fragment:?}"),
        bytes: fragment.render(),
        names: vec!["expected", "invalid", "`by` is not accepted"],
    });
    let positional = prop::sample::select(positional).prop_map(|json| Payload {
        recipe: "positional".into(),
        bytes: json.as_bytes().to_vec(),
        names: vec!["expected"],
    });
    let wrong_type = (
        prop::sample::select(bases),
        any::<Index>(),
        // Null is an absent optional field; a boolean is what `on` takes.
        not_text().prop_filter("null or a boolean", |fragment| {
            !matches!(fragment, Fragment::Raw("null" | "true" | "false"))
        }),
    )
        .prop_map(|(base, which, fragment)| {
            let (pointer, names) = base.required[which.index(base.required.len())];
            Payload {
                recipe: format!("{pointer} = {fragment:?}"),
                bytes: replaced(base.json, pointer, &fragment),
                names: names.to_vec(),
            }
        });
    // `"by": null` says nothing about who acts, and is read as no `by`.
    let by = not_text().prop_filter("null is absent", |fragment| {
        !matches!(fragment, Fragment::Raw("null"))
    });
    let unknown = prop_oneof![
        (prop::sample::select(bases), Just("by".to_string()), by),
        (
            prop::sample::select(bases),
            prop_oneof![
                Just("on ".to_string()),
                Just("Task".to_string()),
                "[a-z_]{1,12}".prop_filter("a field", |key| {
                    !["task", "reason", "on", "by"].contains(&key.as_str())
                }),
            ],
            any_fragment(),
        ),
    ]
    .prop_map(|(base, key, fragment)| {
        let mut value = parse(base.json);
        value
            .as_object_mut()
            .unwrap()
            .insert(key.clone(), serde_json::Value::String(PLACEHOLDER.into()));
        Payload {
            recipe: format!("{key:?} added = {fragment:?}"),
            bytes: splice(&value, &fragment.render()),
            names: vec!["unknown field", "`by` is not accepted"],
        }
    });
    let twice = (prop::sample::select(bases), any_fragment()).prop_map(|(base, fragment)| {
        let mut value = parse(base.json);
        let key = value.as_object().unwrap().keys().next().unwrap().clone();
        value.as_object_mut().unwrap().insert(
            PLACEHOLDER_KEY.into(),
            serde_json::Value::String(PLACEHOLDER.into()),
        );
        let text = splice(&value, &fragment.render());
        Payload {
            recipe: format!("{key} twice, then {fragment:?}"),
            bytes: replace_once(
                &text,
                &serde_json::to_vec(PLACEHOLDER_KEY).unwrap(),
                &serde_json::to_vec(&key).unwrap(),
            ),
            names: vec!["duplicate field"],
        }
    });
    prop_oneof![
        junk, truncated, top_level, positional, wrong_type, unknown, twice
    ]
    .boxed()
}

/// An API body's refusal: 413 for a body over the limit, else 400 with a message that names
/// one of the payload's words, or a position.
fn refused_as_it_should(
    payload: &Payload,
    status: u16,
    answer: &serde_json::Value,
) -> Result<(), TestCaseError> {
    let message = error_of(status, answer)?;
    if payload.bytes.len() > BODY_LIMIT {
        prop_assert_eq!(status, 413, "{}", message);
        prop_assert!(message.contains("limit"), "{}", message);
        return Ok(());
    }
    prop_assert_eq!(status, 400, "{}", message);
    prop_assert!(
        has_position(&message) || payload.names.iter().any(|name| message.contains(name)),
        "the refusal names neither a position nor any of {:?}: {}",
        payload.names,
        message
    );
    Ok(())
}

#[test]
fn a_hostile_kill_switch_body_is_a_4xx_and_changes_nothing() {
    let fixture = Fixture::new(None);
    let setting = |fixture: &Fixture| {
        let journal = fixture.engine.journal().clone();
        fixture.runtime.block_on(async move {
            journal
                .call(|journal| journal.setting("kill_switch"))
                .await
                .unwrap()
        })
    };
    let positional: &[&str] = &["[true]", "[false]", "[true,1]"];
    let bodies = prop_oneof![
        refused_body(KILL_SWITCH_BASES, positional),
        // A whole body of nothing is refused too: `on` is required.
        Just(Payload {
            recipe: "empty".into(),
            bytes: vec![],
            names: vec![],
        }),
    ];
    check((bodies, any::<bool>()), |(payload, on)| {
        // Set the switch through the API first, so that a refusal could be seen changing it.
        let (status, _) = fixture.runtime.block_on(fixture.post(
            "/api/kill-switch",
            &[],
            format!(r#"{{"on":{on}}}"#).as_bytes(),
        ));
        prop_assert_eq!(status, 200);
        let journaled = setting(&fixture);
        let (status, answer) =
            fixture
                .runtime
                .block_on(fixture.post("/api/kill-switch", &[], &payload.bytes));
        refused_as_it_should(&payload, status, &answer)?;
        prop_assert_eq!(fixture.engine.kill_switch(), on);
        prop_assert_eq!(setting(&fixture), journaled);
        Ok(())
    });
}

const ACTIONS: [&str; 5] = ["approve", "reject", "pause", "resume", "cancel"];

#[test]
fn a_hostile_run_action_body_is_a_4xx_and_the_run_still_waits() {
    let fixture = Fixture::new(None);
    let run = fixture.runtime.block_on(async {
        let alert = br#"{"name":"Gated","service":"api","starts_at":"2026-11-27T12:00:00Z","fingerprint":"hostile"}"#;
        let (status, answer) = fixture.post("/webhook/generic", &[], alert).await;
        assert_eq!(status, 200, "{answer}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(run) = fixture.engine.runs(10).await.unwrap().first()
                && fixture.engine.run(run.id).await.unwrap().awaiting_approval == ["tell"]
            {
                return run.id;
            }
            assert!(Instant::now() < deadline, "no run waited for approval");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let snapshot = |fixture: &Fixture| {
        fixture.runtime.block_on(async {
            let detail = fixture.engine.run(run).await.unwrap();
            (
                detail.run.state.clone(),
                detail.awaiting_approval.clone(),
                detail.events.len(),
            )
        })
    };
    assert_eq!(snapshot(&fixture).1, ["tell"]);
    let positional: &[&str] = &[
        r#"[null,"tell",null]"#,
        r#"[null,null,"r"]"#,
        "[null,null,null]",
    ];
    check(
        (
            prop::sample::select(ACTIONS.to_vec()),
            refused_body(ACTION_BASES, positional),
        ),
        |(action, payload)| {
            let path = format!("/api/runs/{run}/{action}");
            // Compared with the run just before, so that a shrunk failure is the case that
            // changed it, not a later one.
            let before = snapshot(&fixture);
            let (status, answer) =
                fixture
                    .runtime
                    .block_on(fixture.post(&path, &[], &payload.bytes));
            refused_as_it_should(&payload, status, &answer)?;
            prop_assert_eq!(snapshot(&fixture), before);
            Ok(())
        },
    );
}

#[test]
fn any_run_action_body_on_a_run_that_does_not_exist_is_a_4xx() {
    let fixture = Fixture::new(None);
    let positional: &[&str] = &[r#"[null,"tell",null]"#];
    let bodies = prop_oneof![
        refused_body(ACTION_BASES, positional),
        mutated_body(ACTION_BASES),
    ];
    check(
        (prop::sample::select(ACTIONS.to_vec()), bodies),
        |(action, payload)| {
            let path = format!("/api/runs/987654321/{action}");
            let (status, answer) =
                fixture
                    .runtime
                    .block_on(fixture.post(&path, &[], &payload.bytes));
            let message = error_of(status, &answer)?;
            prop_assert!(
                status == 400
                    || (status == 413 && payload.bytes.len() > BODY_LIMIT)
                    || (status == 404 && message.contains("987654321")),
                "{} {}",
                status,
                message
            );
            Ok(())
        },
    );
}

/// API bodies with one field replaced by anything, or a field added.
fn mutated_body(bases: &'static [Base]) -> BoxedStrategy<Payload> {
    (prop::sample::select(bases), any::<Index>(), any_fragment())
        .prop_map(|(base, which, fragment)| {
            let (pointer, _) = base.required[which.index(base.required.len())];
            Payload {
                recipe: format!("{pointer} = {fragment:?}"),
                bytes: replaced(base.json, pointer, &fragment),
                names: vec![],
            }
        })
        .boxed()
}

/// Text for a path segment or a query value, percent-encoded where it must be.
fn percent_encoded(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(byte) {
                char::from(*byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn hostile_number() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "1e400",
            "-0",
            "0",
            "-1",
            "99999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "4294967296",
            "0x10",
            " 1",
            "1 ",
            "+1",
            "1.0",
            "NaN",
            "\u{663}",
            "1\u{0}",
            "%FF",
        ])
        .prop_map(|text| text.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..40),
    ]
}

#[test]
fn hostile_run_ids_and_query_values_are_4xx_or_answered() {
    let fixture = Fixture::new(None);
    let request = prop_oneof![
        (hostile_number(), prop::sample::select(ACTIONS.to_vec())).prop_map(|(id, action)| (
            "POST",
            format!("/api/runs/{}/{action}", percent_encoded(&id))
        )),
        hostile_number().prop_map(|id| ("GET", format!("/api/runs/{}", percent_encoded(&id)))),
        (
            prop::sample::select(vec!["/api/runs", "/api/suppressions"]),
            hostile_number()
        )
            .prop_map(|(path, limit)| ("GET", format!("{path}?limit={}", percent_encoded(&limit)))),
        hostile_number().prop_map(|state| (
            "GET",
            format!("/api/reverts?state={}", percent_encoded(&state))
        )),
    ];
    check(request, |(method, uri)| {
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let (status, answer) = fixture.runtime.block_on(fixture.send(request));
        if status == 200 {
            // A limit that reads as a number: a list, however long.
            prop_assert!(uri.contains("?limit="), "{} {}: {}", method, uri, answer);
            return Ok(());
        }
        let message = error_of(status, &answer)?;
        prop_assert!(
            matches!(status, 400 | 404),
            "{} {}: {} {}",
            method,
            uri,
            status,
            message
        );
        Ok(())
    });
}

const REVERT_BASES: &[Base] = &[Base {
    json: r#"{"reason":"scaled down by hand"}"#,
    required: &[("/reason", &["reason"])],
}];

#[test]
fn any_revert_action_body_is_a_4xx_and_journals_nothing() {
    let fixture = Fixture::new(None);
    let counts = |fixture: &Fixture| {
        let journal = fixture.engine.journal().clone();
        fixture.runtime.block_on(async move {
            journal
                .call(|journal| journal.revert_counts())
                .await
                .unwrap()
        })
    };
    let before = counts(&fixture);
    let positional: &[&str] = &[r#"["done"]"#, "[null]"];
    let bodies = prop_oneof![
        refused_body(REVERT_BASES, positional),
        mutated_body(REVERT_BASES),
    ];
    check(
        (prop::sample::select(vec!["retry", "ack"]), bodies),
        |(action, payload)| {
            let path = format!("/api/reverts/987654321/{action}");
            let (status, answer) =
                fixture
                    .runtime
                    .block_on(fixture.post(&path, &[], &payload.bytes));
            let message = error_of(status, &answer)?;
            prop_assert!(
                status == 400
                    || (status == 413 && payload.bytes.len() > BODY_LIMIT)
                    || (status == 404 && message.contains("987654321")),
                "{} {}",
                status,
                message
            );
            prop_assert_eq!(counts(&fixture), before.clone());
            Ok(())
        },
    );
}
