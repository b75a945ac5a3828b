//! Masking: a message becomes a sequence of tokens in which the parts that vary between
//! occurrences of the same event (numbers, hex, IPs with ports, host:port, UUIDs, paths, URLs,
//! times, durations and sizes) are `<*>`. It is one fixed, generic rule set: nothing here is
//! configured per data set.
//!
//! Guarantees: no panics on any input; the output has at most [`MAX_TOKENS`] tokens and no
//! token is longer than [`MAX_TOKEN_BYTES`] (longer ones are opaque blobs and become `<*>`),
//! so one huge line cannot make a huge template.

/// The variable part of a token or template.
pub const WILDCARD: &str = "<*>";

/// Tokens kept per message; the rest of a longer message is one trailing `<*>`.
pub const MAX_TOKENS: usize = 256;

/// Longer tokens (keys, base64 blobs, serialised payloads) are masked whole.
pub const MAX_TOKEN_BYTES: usize = 256;

/// Units that a number carries as a separate word ("1190 bytes", "20 ms", "<1 sec"): the
/// number and its unit are one quantity, so "N bytes" and "N KB" read alike.
const UNITS: &[&str] = &[
    "b", "bytes", "byte", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "ns", "us", "µs",
    "ms", "s", "sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes", "h", "hour",
    "hours", "d", "day", "days",
];

/// Characters that wrap a value without being part of it.
fn is_leading_punctuation(byte: u8) -> bool {
    matches!(
        byte,
        b'(' | b'[' | b'{' | b'<' | b'\'' | b'"' | b'`' | b'>' | b'~' | b'='
    )
}

fn is_trailing_punctuation(byte: u8) -> bool {
    matches!(
        byte,
        b')' | b']' | b'}' | b'>' | b'\'' | b'"' | b'`' | b',' | b';' | b':' | b'.' | b'!' | b'?'
    )
}

/// Masks `message` into `out`: tokens separated by single spaces; returns the number of
/// tokens. `out` is cleared first (the caller reuses one buffer for every line).
pub fn mask_into(message: &str, out: &mut String) -> usize {
    out.clear();
    let mut count = 0;
    let mut tokens = message.split_ascii_whitespace().peekable();
    while let Some(token) = tokens.next() {
        if count + 1 == MAX_TOKENS && tokens.peek().is_some() {
            push_separator(out, count);
            out.push_str(WILDCARD);
            return count + 1;
        }
        let previous = out.len();
        push_separator(out, count);
        let start = out.len();
        let has_mask = mask_token(token, out);
        // A list of values of one shape is one value ("blk_<*> blk_<*> blk_<*>").
        let masked = out.get(start..).unwrap_or("");
        if count > 0
            && has_mask
            && out.get(..previous).is_some_and(|before| {
                before.ends_with(masked)
                    && before.len() >= masked.len()
                    && (before.len() == masked.len()
                        || before.as_bytes().get(before.len() - masked.len() - 1) == Some(&b' '))
            })
        {
            out.truncate(previous);
            continue;
        }
        count += 1;
        // A quantity: a masked number followed by its unit word, and optionally by a
        // parenthesised restatement of the same quantity ("1190 bytes (1.16 KB)").
        if ends_with_wildcard(out, start) {
            let Some(next) = tokens.peek() else { break };
            if next.len() > 9 {
                continue;
            }
            let (unit, unit_tail) = split_trailing(next);
            if is_unit(unit) {
                out.push_str(unit_tail);
                tokens.next();
                if unit_tail.is_empty() {
                    absorb_restatement(&mut tokens, out);
                }
            }
        }
    }
    count
}

/// After "N unit": skips "(M unit2)" when it is there, keeping what follows the `)`.
fn absorb_restatement<'a>(
    tokens: &mut std::iter::Peekable<std::str::SplitAsciiWhitespace<'a>>,
    out: &mut String,
) {
    let mut lookahead = tokens.clone();
    let Some(first) = lookahead.next() else {
        return;
    };
    let Some(number) = first.strip_prefix('(') else {
        return;
    };
    if !is_number(number) {
        return;
    }
    let Some(second) = lookahead.next() else {
        return;
    };
    let Some(close) = second.find(')') else {
        return;
    };
    let (unit, rest) = second.split_at(close);
    if !is_unit(unit) {
        return;
    }
    let tail = rest.get(1..).unwrap_or("");
    if !tail.bytes().all(is_trailing_punctuation) {
        return;
    }
    out.push_str(tail);
    tokens.next();
    tokens.next();
}

fn push_separator(out: &mut String, count: usize) {
    if count > 0 {
        out.push(' ');
    }
}

fn ends_with_wildcard(out: &str, start: usize) -> bool {
    out.get(start..) == Some(WILDCARD)
}

fn is_unit(word: &str) -> bool {
    word.len() <= 7 && UNITS.iter().any(|unit| unit.eq_ignore_ascii_case(word))
}

/// Splits trailing punctuation off a token: ("KB", ")") for "KB)".
fn split_trailing(token: &str) -> (&str, &str) {
    let bytes = token.as_bytes();
    let mut end = bytes.len();
    while end > 0
        && bytes
            .get(end - 1)
            .is_some_and(|byte| is_trailing_punctuation(*byte))
    {
        end -= 1;
    }
    (
        token.get(..end).unwrap_or(token),
        token.get(end..).unwrap_or(""),
    )
}

/// Masks one whitespace-free token into `out`.
pub fn mask_token(token: &str, out: &mut String) -> bool {
    if token.len() > MAX_TOKEN_BYTES {
        out.push_str(WILDCARD);
        return true;
    }
    let bytes = token.as_bytes();
    // Fast path: most words of a message carry no digit and no path.
    if !bytes
        .iter()
        .any(|byte| byte.is_ascii_digit() || *byte == b'/' || *byte == b'\\')
    {
        out.push_str(token);
        return false;
    }
    // An IPv6 socket address keeps its brackets: "[::1]:8080".
    if bytes.first() == Some(&b'[') && token.contains("]:") {
        let (core, tail) = split_trailing(token);
        if core.parse::<std::net::SocketAddr>().is_ok() {
            out.push_str(WILDCARD);
            out.push_str(tail);
            return true;
        }
    }
    let mut lead = 0;
    while bytes
        .get(lead)
        .is_some_and(|byte| is_leading_punctuation(*byte))
    {
        lead += 1;
    }
    let mut end = bytes.len();
    while end > lead
        && bytes
            .get(end - 1)
            .is_some_and(|byte| is_trailing_punctuation(*byte))
    {
        end -= 1;
    }
    let (Some(head), Some(core), Some(tail)) =
        (token.get(..lead), token.get(lead..end), token.get(end..))
    else {
        out.push_str(token);
        return false;
    };
    if core.is_empty() {
        out.push_str(token);
        return false;
    }
    if is_variable(core) {
        // A comparison or assignment sign before a value is part of it ("<1 sec", "=5").
        out.push_str(head.trim_end_matches(['<', '>', '~', '=']));
        out.push_str(WILDCARD);
        out.push_str(tail);
        return true;
    }
    out.push_str(head);
    let masked = mask_inside(core, out);
    out.push_str(tail);
    masked
}

/// Whether the whole (punctuation-trimmed) token is a value. One pass over its bytes first
/// says which of the (slower) shape checks can apply at all.
fn is_variable(core: &str) -> bool {
    let (mut slash, mut dot, mut colon, mut alpha) = (false, false, false, false);
    for byte in core.bytes() {
        match byte {
            b'/' | b'\\' => slash = true,
            b'.' => dot = true,
            b':' => colon = true,
            b'a'..=b'z' | b'A'..=b'Z' => alpha = true,
            _ => {}
        }
    }
    all_words_variable(core)
        || (slash && is_path(core))
        || ((dot || colon) && is_address(core))
        || (core.len() == 36 && is_uuid(core))
        || (colon && alpha && is_host_port(core))
        || (dot && alpha && is_numbered_host(core))
}

/// A host name with a numbered label is a generated name, a value: "ec2-52-1-2-3.compute.
/// amazonaws.com", "5.36.59.76.dynamic-dsl-ip.example.net". (Names without digits, such as
/// "proxy.example.com" or a Java class, stay words; Drain turns them into `<*>` where they
/// vary.)
fn is_numbered_host(core: &str) -> bool {
    core.contains('.')
        && core
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-'))
        && core.split(['.', '-']).any(|label| {
            label
                .bytes()
                .next()
                .is_some_and(|byte| byte.is_ascii_digit())
        })
}

fn is_path(core: &str) -> bool {
    let bytes = core.as_bytes();
    match bytes {
        [b'/', _, ..] => true,
        [b'.', b'/', ..] | [b'~', b'/', ..] | [b'.', b'.', b'/', ..] => true,
        [drive, b':', b'\\', ..] if drive.is_ascii_alphabetic() => true,
        _ => core.contains("://") || bytes.iter().filter(|byte| **byte == b'/').count() >= 2,
    }
}

fn is_address(core: &str) -> bool {
    core.contains(['.', ':'])
        && core.bytes().all(|byte| {
            byte.is_ascii_hexdigit() || matches!(byte, b'.' | b':' | b'[' | b']' | b'%')
        })
        && (core.parse::<std::net::IpAddr>().is_ok()
            || core.parse::<std::net::SocketAddr>().is_ok())
}

fn is_uuid(core: &str) -> bool {
    let bytes = core.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

/// "name:port", where name is a host name ("proxy.example.com:5070", "localhost:8080").
fn is_host_port(core: &str) -> bool {
    let Some((host, port)) = core.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && host.bytes().any(|byte| byte.is_ascii_alphabetic())
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'))
}

fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().any(|byte| byte.is_ascii_digit())
        && digits
            .bytes()
            .all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b','))
}

/// A word (a run of letters and digits) is a value when it starts with a digit ("42",
/// "10ms", "0x1f", "3rd") or is a long hex string with a digit (hashes, ids).
fn is_variable_word(word: &[u8]) -> bool {
    match word.first() {
        Some(first) if first.is_ascii_digit() => true,
        Some(_) => {
            word.len() >= 8
                && word.iter().all(u8::is_ascii_hexdigit)
                && word.iter().any(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// Whether every word of the token is a value ("1.0", "20:10:40", "2017-06-09", "-42").
fn all_words_variable(core: &str) -> bool {
    let mut any = false;
    for word in core
        .as_bytes()
        .split(|byte| !byte.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        if !is_variable_word(word) {
            return false;
        }
        any = true;
    }
    any
}

/// Masks the values inside a token that is not a value as a whole: "uid=0" → "uid=<*>",
/// "blk_-123" → "blk_<*>", "rdd_42_7" → "rdd_<*>_<*>". A key's value is judged whole
/// ("rhost=10.0.0.1" → "rhost=<*>"); a UUID or sign inside a token goes with its value.
fn mask_inside(core: &str, out: &mut String) -> bool {
    if let Some((key, value)) = core.split_once('=')
        && !key.is_empty()
        && !value.is_empty()
        && is_variable(value)
    {
        out.push_str(key);
        out.push('=');
        out.push_str(WILDCARD);
        return true;
    }
    let bytes = core.as_bytes();
    let mut index = 0;
    let mut copied = 0;
    let mut masked = false;
    while index < bytes.len() {
        let starts_word = bytes.get(index).is_some_and(u8::is_ascii_alphanumeric)
            && (index == 0
                || bytes
                    .get(index - 1)
                    .is_some_and(|byte| !byte.is_ascii_alphanumeric()));
        if !starts_word {
            index += 1;
            continue;
        }
        let mut end = index;
        while bytes.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            end += 1;
        }
        let uuid_end = index + 36;
        let value_end = if core.get(index..uuid_end).is_some_and(is_uuid) {
            Some(uuid_end)
        } else if bytes.get(index..end).is_some_and(is_variable_word) {
            // Values joined by '.', ':' or '-' are one value ("1.0", "20:10:40").
            let mut value_end = end;
            while let (Some(separator), Some(next)) =
                (bytes.get(value_end), bytes.get(value_end + 1))
            {
                if !matches!(separator, b'.' | b':' | b'-') || !next.is_ascii_alphanumeric() {
                    break;
                }
                let mut next_end = value_end + 1;
                while bytes.get(next_end).is_some_and(u8::is_ascii_alphanumeric) {
                    next_end += 1;
                }
                if !bytes
                    .get(value_end + 1..next_end)
                    .is_some_and(is_variable_word)
                {
                    break;
                }
                value_end = next_end;
            }
            Some(value_end)
        } else {
            None
        };
        let Some(value_end) = value_end else {
            index = end;
            continue;
        };
        // A sign directly before the value, after a separator, is part of it ("blk_-42").
        let mut value_start = index;
        if index >= 1
            && matches!(bytes.get(index - 1), Some(b'-' | b'+'))
            && (index == 1
                || bytes
                    .get(index - 2)
                    .is_some_and(|byte| !byte.is_ascii_alphanumeric()))
        {
            value_start = index - 1;
        }
        out.push_str(core.get(copied..value_start.max(copied)).unwrap_or(""));
        out.push_str(WILDCARD);
        masked = true;
        copied = value_end;
        index = value_end;
    }
    out.push_str(core.get(copied..).unwrap_or(""));
    masked
}
