//! Stack traces in log lines: multi-line Java, Python and Go traces re-joined, each reduced
//! to its exception type, message and top frames, and identical ones grouped and counted.
//!
//! What is guaranteed:
//! - [`extract`] reads the lines in order and never fails: a line that starts no trace and
//!   continues none is skipped, and a trace cut short (the end of the input, a log shipper's
//!   line limit) is kept with what it has;
//! - a line holding line breaks (a whole trace in one field, as ECS's `error.stack_trace`
//!   holds it) is read as the lines it holds;
//! - each trace is reported by its **root cause**, the exception the others were raised
//!   from or while handling: Java's last `Caused by:`, the first traceback of a Python
//!   chain, the first `panic:` of a Go re-panic. Its frames are the innermost first (Python
//!   prints them the other way round), at most [`TOP_FRAMES`], without the runtime's own
//!   panic frames in Go; a Java cause whose frames are all `... N more` takes those of the
//!   exception that wraps it;
//! - frames carry no values that change from one occurrence to the next (Go's argument
//!   words, logback's jar suffixes), so the same failure groups together;
//! - groups are ordered by count, most first, then by first appearance: the same input
//!   gives the same output.

use std::collections::HashMap;

/// Frames kept per trace, innermost first.
pub const TOP_FRAMES: usize = 10;

/// Lines read between a Java exception's first line and its first frame, for messages that
/// span lines.
const JAVA_MESSAGE_LINES: usize = 3;

/// The language a trace was written by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Java and the JVM languages that print its format (Kotlin, Scala).
    Java,
    Python,
    Go,
}

/// Identical traces: the same language, exception, message and frames.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackGroup {
    /// The root cause's type: `java.lang.IllegalStateException`, `KeyError`, `runtime error`.
    pub exception: String,
    /// Its message, empty when it has none.
    pub message: String,
    /// The top frames, innermost first.
    pub frames: Vec<String>,
    /// Occurrences in the input.
    pub count: u64,
    pub language: Language,
}

/// One trace as read, before grouping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Trace {
    language: Language,
    exception: String,
    message: String,
    frames: Vec<String>,
}

/// The stack traces in `lines`, grouped, most frequent first.
pub fn extract(lines: &[&str]) -> Vec<StackGroup> {
    let split: Vec<&str> = lines
        .iter()
        .flat_map(|line| line.split('\n'))
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    group(traces(&split))
}

fn group(traces: Vec<Trace>) -> Vec<StackGroup> {
    let mut index: HashMap<Trace, usize> = HashMap::new();
    let mut groups: Vec<StackGroup> = Vec::new();
    for trace in traces {
        if let Some(group) = index.get(&trace).and_then(|at| groups.get_mut(*at)) {
            group.count = group.count.saturating_add(1);
            continue;
        }
        index.insert(trace.clone(), groups.len());
        groups.push(StackGroup {
            exception: trace.exception,
            message: trace.message,
            frames: trace.frames,
            count: 1,
            language: trace.language,
        });
    }
    // A stable sort keeps first appearance among equal counts.
    groups.sort_by_key(|group| std::cmp::Reverse(group.count));
    groups
}

fn traces(lines: &[&str]) -> Vec<Trace> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let parsed = python(lines, at)
            .or_else(|| go(lines, at))
            .or_else(|| java(lines, at));
        match parsed {
            Some((trace, next)) => {
                found.push(trace);
                // Every parser consumes at least the line it started on.
                at = next.max(at + 1);
            }
            None => at += 1,
        }
    }
    found
}

fn line<'t>(lines: &[&'t str], at: usize) -> Option<&'t str> {
    lines.get(at).copied()
}

fn indent(text: &str) -> usize {
    text.len() - text.trim_start().len()
}

fn keep_top(mut frames: Vec<String>) -> Vec<String> {
    frames.truncate(TOP_FRAMES);
    frames
}

// ---------------------------------------------------------------------------------------
// Java

/// `a.b.C`, `C$Inner`, `kotlin.KotlinNullPointerException`: a class name that can be an
/// exception's.
fn java_class(name: &str) -> bool {
    let segments: Vec<&str> = name.split('.').collect();
    let identifier = |segment: &&str| {
        let mut chars = segment.chars();
        chars
            .next()
            .is_some_and(|first| first.is_alphabetic() || first == '_' || first == '$')
            && chars.all(|rest| rest.is_alphanumeric() || rest == '_' || rest == '$')
    };
    if !segments.iter().all(identifier) {
        return false;
    }
    let last = segments.last().copied().unwrap_or_default();
    let upper = last.chars().next().is_some_and(char::is_uppercase);
    let named = ["Exception", "Error", "Throwable", "Exit", "Failure"]
        .iter()
        .any(|suffix| last.ends_with(suffix));
    upper && (segments.len() > 1 || named)
}

/// `java.lang.X: message` (the message may be absent) as (type, message).
fn java_header(text: &str) -> Option<(String, String)> {
    let text = text.trim();
    let text = match text.strip_prefix("Exception in thread \"") {
        Some(rest) => rest.split_once("\" ")?.1.trim_start(),
        None => text,
    };
    let (name, message) = match text.split_once(':') {
        Some((name, message)) => (name, message.trim()),
        None => (text, ""),
    };
    java_class(name).then(|| (name.to_string(), message.to_string()))
}

fn java_frame(text: &str) -> Option<String> {
    let frame = text.trim_start().strip_prefix("at ")?.trim();
    // logback's packaging data (`~[spring-core-5.3.jar:5.3.9]`) says where, not what.
    let frame = match frame.rfind(" [").or_else(|| frame.rfind(" ~[")) {
        Some(cut) if frame.ends_with(']') => frame.get(..cut).unwrap_or(frame).trim_end(),
        _ => frame,
    };
    Some(frame.to_string())
}

/// `... 7 more`, or logback's `... 4 common frames omitted`.
fn java_more(text: &str) -> bool {
    text.trim()
        .strip_prefix("... ")
        .and_then(|rest| {
            rest.strip_suffix(" more")
                .or_else(|| rest.strip_suffix(" common frames omitted"))
        })
        .is_some_and(|count| count.parse::<u64>().is_ok())
}

/// One exception of a Java trace: its header, frames and whether `... N more` cut them.
struct JavaSection {
    exception: String,
    message: String,
    frames: Vec<String>,
}

fn java(lines: &[&str], start: usize) -> Option<(Trace, usize)> {
    let (exception, mut message) = java_header(line(lines, start)?)?;
    // The first frame must follow within a few lines (a message may span lines).
    let mut first_frame = None;
    for offset in 1..=JAVA_MESSAGE_LINES + 1 {
        let text = line(lines, start + offset)?;
        if java_frame(text).is_some() {
            first_frame = Some(start + offset);
            break;
        }
        if text.trim().is_empty() || java_more(text) || text.trim_start().starts_with("Caused by:")
        {
            return None;
        }
    }
    let first_frame = first_frame?;
    for continuation in lines.get(start + 1..first_frame).unwrap_or_default() {
        message.push(' ');
        message.push_str(continuation.trim());
    }
    let mut sections = vec![JavaSection {
        exception,
        message,
        frames: Vec::new(),
    }];
    let mut at = first_frame;
    // The indentation of a `Suppressed:` block being skipped.
    let mut suppressed: Option<usize> = None;
    while let Some(text) = line(lines, at) {
        let trimmed = text.trim_start();
        if let Some(depth) = suppressed {
            let ends = indent(text) <= depth
                && (trimmed.starts_with("Caused by:") || trimmed.starts_with("Suppressed:"));
            let inside = indent(text) > depth
                && (java_frame(text).is_some()
                    || java_more(text)
                    || trimmed.starts_with("Caused by:")
                    || trimmed.starts_with("Suppressed:"));
            if inside {
                at += 1;
                continue;
            }
            if !ends {
                break;
            }
            suppressed = None;
        }
        if let Some(frame) = java_frame(text) {
            if let Some(section) = sections.last_mut() {
                section.frames.push(frame);
            }
        } else if java_more(text) {
            // The frames it stands for are the wrapping exception's.
        } else if let Some(rest) = trimmed.strip_prefix("Suppressed:") {
            if java_header(rest).is_none() {
                break;
            }
            suppressed = Some(indent(text));
        } else if let Some(rest) = trimmed.strip_prefix("Caused by:") {
            let Some((exception, message)) = java_header(rest) else {
                break;
            };
            sections.push(JavaSection {
                exception,
                message,
                frames: Vec::new(),
            });
        } else {
            break;
        }
        at += 1;
    }
    // The root cause, with the nearest frames when `... N more` left it none.
    let frames = sections
        .iter()
        .rev()
        .map(|section| &section.frames)
        .find(|frames| !frames.is_empty())
        .cloned()
        .unwrap_or_default();
    let root = sections.pop()?;
    Some((
        Trace {
            language: Language::Java,
            exception: root.exception,
            message: root.message,
            frames: keep_top(frames),
        },
        at,
    ))
}

// ---------------------------------------------------------------------------------------
// Python

const PYTHON_START: &str = "Traceback (most recent call last):";
const PYTHON_CHAINS: [&str; 2] = [
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
];

/// One traceback of a chain: its frames as printed (outermost first) and its exception.
struct PythonTraceback {
    frames: Vec<String>,
    exception: Option<(String, String)>,
}

/// `  File "/app/x.py", line 12, in handler` as `handler (/app/x.py:12)`.
fn python_frame(text: &str) -> Option<String> {
    let rest = text.trim_start().strip_prefix("File \"")?;
    let (file, rest) = rest.split_once("\", line ")?;
    let (number, function) = match rest.split_once(", in ") {
        Some((number, function)) => (number, function.trim()),
        None => (rest.trim(), "<unknown>"),
    };
    number.parse::<u64>().ok()?;
    Some(format!("{function} ({file}:{number})"))
}

/// `ValueError: bad`, `requests.exceptions.ConnectionError: ...`, `KeyError: 'id'`.
fn python_exception(text: &str) -> Option<(String, String)> {
    let (name, message) = match text.split_once(':') {
        Some((name, message)) => (name, message.trim()),
        None => (text.trim(), ""),
    };
    let identifier = |segment: &str| {
        let mut chars = segment.chars();
        chars
            .next()
            .is_some_and(|first| first.is_alphabetic() || first == '_')
            && chars.all(|rest| rest.is_alphanumeric() || rest == '_')
    };
    (!name.is_empty() && name.split('.').all(identifier))
        .then(|| (name.to_string(), message.to_string()))
}

fn python_traceback(lines: &[&str], start: usize) -> Option<(PythonTraceback, usize)> {
    if line(lines, start)?.trim() != PYTHON_START {
        return None;
    }
    let mut traceback = PythonTraceback {
        frames: Vec::new(),
        exception: None,
    };
    let mut at = start + 1;
    while let Some(text) = line(lines, at) {
        if let Some(frame) = python_frame(text) {
            traceback.frames.push(frame);
        } else if indent(text) > 0 && !traceback.frames.is_empty() {
            // The source line of a frame, its `^^^` markers, `[Previous line repeated ...]`.
        } else if indent(text) == 0 && !text.trim().is_empty() {
            traceback.exception = python_exception(text);
            if traceback.exception.is_some() {
                at += 1;
            }
            break;
        } else {
            break;
        }
        at += 1;
    }
    Some((traceback, at))
}

fn python(lines: &[&str], start: usize) -> Option<(Trace, usize)> {
    let (first, mut at) = python_traceback(lines, start)?;
    let mut chain = vec![first];
    // A chain: blank lines, one of the two sentences, blank lines, the next traceback.
    loop {
        let mut next = at;
        while line(lines, next).is_some_and(|text| text.trim().is_empty()) {
            next += 1;
        }
        let Some(text) = line(lines, next) else {
            break;
        };
        if !PYTHON_CHAINS.contains(&text.trim()) {
            break;
        }
        next += 1;
        while line(lines, next).is_some_and(|text| text.trim().is_empty()) {
            next += 1;
        }
        let Some((traceback, after)) = python_traceback(lines, next) else {
            break;
        };
        chain.push(traceback);
        at = after;
    }
    let root = chain.into_iter().next()?;
    let (exception, message) = root
        .exception
        .unwrap_or_else(|| ("(truncated)".to_string(), String::new()));
    let mut frames = root.frames;
    frames.reverse();
    Some((
        Trace {
            language: Language::Python,
            exception,
            message,
            frames: keep_top(frames),
        },
        at,
    ))
}

// ---------------------------------------------------------------------------------------
// Go

/// `panic: runtime error: index out of range` as (`runtime error`, `index out of range`);
/// `fatal error: concurrent map writes` as (`fatal error`, ...); net/http's recovered
/// `http: panic serving 10.0.0.1:5123: ...` (after the log's own prefix) as a panic.
fn go_header(text: &str) -> Option<(String, String)> {
    let text = text.trim_end();
    let serving = text
        .find("http: panic serving ")
        .and_then(|at| text.get(at + "http: panic serving ".len()..))
        .and_then(|rest| rest.split_once(": "))
        .map(|(_address, message)| format!("panic: {message}"));
    let text = serving.as_deref().unwrap_or(text);
    let (kind, message) = if let Some(message) = text.strip_prefix("panic: ") {
        match message.strip_prefix("runtime error: ") {
            Some(message) => ("runtime error", message),
            None => ("panic", message),
        }
    } else {
        ("fatal error", text.strip_prefix("fatal error: ")?)
    };
    let message = message.strip_suffix(" [recovered]").unwrap_or(message);
    let message = message
        .strip_suffix(" [recovered, repanicked]")
        .unwrap_or(message);
    Some((kind.to_string(), message.trim().to_string()))
}

fn go_goroutine(text: &str) -> bool {
    text.strip_prefix("goroutine ")
        .and_then(|rest| rest.split_once(' '))
        .is_some_and(|(number, state)| {
            number.parse::<u64>().is_ok() && state.starts_with('[') && state.ends_with("]:")
        })
}

/// A function line, `main.(*Server).handle(0xc000010000, {0x1, 0x2})`, as its name.
fn go_function(text: &str) -> Option<&str> {
    if indent(text) > 0 || !text.ends_with(')') {
        return None;
    }
    let name = text.get(..text.rfind('(')?)?;
    (!name.is_empty() && !name.contains(' ')).then_some(name)
}

/// A location line, `\t/app/server.go:42 +0x1c`, as `/app/server.go:42`.
fn go_location(text: &str) -> Option<&str> {
    if indent(text) == 0 {
        return None;
    }
    let location = text.split_whitespace().next()?;
    location
        .rsplit_once(':')
        .is_some_and(|(file, number)| !file.is_empty() && number.parse::<u64>().is_ok())
        .then_some(location)
}

fn go_runtime_panic(function: &str) -> bool {
    function == "panic"
        || function.starts_with("runtime.gopanic")
        || function.starts_with("runtime.panic")
        || function.starts_with("runtime.sigpanic")
        || function.starts_with("runtime.fatal")
        || function.starts_with("runtime.throw")
}

fn go(lines: &[&str], start: usize) -> Option<(Trace, usize)> {
    let (exception, message) = go_header(line(lines, start)?.trim_start())?;
    // Before the goroutine: `[signal SIGSEGV ...]`, nested `panic:` lines, blank lines.
    let mut at = start + 1;
    loop {
        let text = line(lines, at)?;
        if go_goroutine(text) {
            break;
        }
        let trimmed = text.trim();
        let preamble = trimmed.is_empty()
            || trimmed.starts_with("[signal ")
            || trimmed.starts_with("panic: ")
            || trimmed.starts_with("goroutine running on other thread");
        if !preamble || at > start + 8 {
            return None;
        }
        at += 1;
    }
    at += 1;
    let mut frames = Vec::new();
    while let Some(text) = line(lines, at) {
        let Some(function) = go_function(text) else {
            if text.starts_with("created by ") {
                // The goroutine's creator, then its location: not part of the stack.
                at += 1;
                if line(lines, at).and_then(go_location).is_some() {
                    at += 1;
                }
            }
            break;
        };
        let location = line(lines, at + 1).and_then(go_location);
        at += if location.is_some() { 2 } else { 1 };
        if go_runtime_panic(function) {
            // The frames above `panic` are the deferred calls that ran while panicking
            // (a `recover` in net/http, say), not where the panic came from.
            frames.clear();
            continue;
        }
        if function == "runtime.goexit" {
            // The bottom of every goroutine's stack.
            continue;
        }
        frames.push(match location {
            Some(location) => format!("{function} ({location})"),
            None => function.to_string(),
        });
    }
    Some((
        Trace {
            language: Language::Go,
            exception,
            message,
            frames: keep_top(frames),
        },
        at,
    ))
}
