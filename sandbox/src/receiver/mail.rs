//! The content of a mail (RFC 5322 with MIME), read far enough to print it: the `Subject`
//! header unfolded and its RFC 2047 encoded-words decoded, and the body decoded from its
//! `Content-Transfer-Encoding` (RFC 2045: 7bit, 8bit, binary, quoted-printable, base64) and
//! its `charset` (UTF-8, US-ASCII, ISO-8859-1). That covers what `lettre` writes for
//! non-ASCII text: `=?utf-8?b?...?=` words in headers, a quoted-printable or base64 body.
//!
//! A body that cannot be decoded is an error (the server refuses the mail), never a guess.
//! An encoded-word that cannot be decoded stays as written, as RFC 2047 section 6.3 asks.
//! A multipart body is kept as sent: Medic sends a single text part.

/// What is printed of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Content {
    /// Empty when the mail has no `Subject` (RFC 5322 makes it optional).
    pub(super) subject: String,
    /// Lines end with `\n`; the line break ending the last line is not part of it.
    pub(super) body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ContentError {
    #[error("the header section is not UTF-8")]
    HeadersNotUtf8,
    #[error("unknown Content-Transfer-Encoding {0:?}")]
    UnknownEncoding(String),
    #[error("the body is not valid base64")]
    BadBase64,
    #[error("unknown charset {0:?}")]
    UnknownCharset(String),
    #[error("the body is not valid {0} text")]
    BadText(String),
}

/// Reads a mail's content: lines ending with CRLF, dot-unstuffed, as DATA received it.
pub(super) fn parse(content: &[u8]) -> Result<Content, ContentError> {
    let (header_section, body) = split_header_section(content);
    let header_section =
        std::str::from_utf8(header_section).map_err(|_| ContentError::HeadersNotUtf8)?;
    let headers = unfold(header_section);
    let subject = header(&headers, "subject").map_or_else(String::new, decode_words);
    let content_type = header(&headers, "content-type").unwrap_or("text/plain");
    let charset = parameter(content_type, "charset");
    let encoding = header(&headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "7bit" | "8bit" | "binary" => body.to_vec(),
        "quoted-printable" => quoted_printable(body),
        "base64" => base64(body).ok_or(ContentError::BadBase64)?,
        _ => return Err(ContentError::UnknownEncoding(encoding)),
    };
    let body = text(body, charset.as_deref())?.replace("\r\n", "\n");
    let body = body.strip_suffix('\n').unwrap_or(&body).to_string();
    Ok(Content { subject, body })
}

/// The header section and the body, split at the first empty line (no empty line: all
/// header, no body).
fn split_header_section(content: &[u8]) -> (&[u8], &[u8]) {
    if let Some(body) = content.strip_prefix(b"\r\n") {
        return (&[], body);
    }
    match content.windows(4).position(|window| window == b"\r\n\r\n") {
        Some(end) => (
            content.get(..end).unwrap_or_default(),
            content.get(end + 4..).unwrap_or_default(),
        ),
        None => (content, &[]),
    }
}

/// Header fields as (name, value), folded lines joined (RFC 5322 section 2.2.3: the CRLF
/// before a space or tab is removed, the space kept).
fn unfold(section: &str) -> Vec<(&str, String)> {
    let mut headers: Vec<(&str, String)> = Vec::new();
    for line in section.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
            continue;
        }
        // A line that is neither a field nor a continuation is not a header: skipped, as
        // mail readers do.
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim(), value.to_string()));
        }
    }
    headers
}

/// The first field of that name (case-insensitive), trimmed.
fn header<'a>(headers: &'a [(&str, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

/// A parameter of a structured value such as `text/plain; charset="utf-8"`.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|part| {
        let (key, value) = part.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// Bytes in a charset as text; no charset is US-ASCII (RFC 2045), read as UTF-8 since a
/// client that announced 8BITMIME may send it.
fn text(bytes: Vec<u8>, charset: Option<&str>) -> Result<String, ContentError> {
    let charset = charset.map(str::to_ascii_lowercase);
    match charset.as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii") => String::from_utf8(bytes).map_err(|_| {
            ContentError::BadText(charset.as_deref().unwrap_or("US-ASCII").to_string())
        }),
        Some("iso-8859-1" | "latin1" | "latin-1") => {
            Ok(bytes.into_iter().map(char::from).collect())
        }
        Some(other) => Err(ContentError::UnknownCharset(other.to_string())),
    }
}

/// Quoted-printable (RFC 2045 section 6.7): `=XX` is a byte, `=` at the end of a line
/// joins it to the next, whitespace at the end of a line was added in transport. An `=`
/// not followed by two hex digits stays as it is (the rule's "robust" reading).
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(body.len());
    let mut lines = body.split(|&byte| byte == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.trim_ascii_end();
        let (line, soft_break) = match line.strip_suffix(b"=") {
            Some(line) => (line, true),
            None => (line, false),
        };
        let mut bytes = line.iter().copied();
        while let Some(byte) = bytes.next() {
            if byte != b'=' {
                decoded.push(byte);
                continue;
            }
            let mut lookahead = bytes.clone();
            match (
                lookahead.next().and_then(hex_digit),
                lookahead.next().and_then(hex_digit),
            ) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    bytes = lookahead;
                }
                _ => decoded.push(b'='),
            }
        }
        if !soft_break && lines.peek().is_some() {
            decoded.extend_from_slice(b"\r\n");
        }
    }
    decoded
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Base64 (RFC 2045 section 6.8) with line breaks and other whitespace ignored; `None` for
/// any other character outside the alphabet, or data after the padding.
fn base64(text: &[u8]) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(text.len() / 4 * 3);
    let mut accumulator: u32 = 0;
    let mut bits: u32 = 0;
    let mut padded = false;
    for &byte in text {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padded = true;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if padded {
            return None;
        }
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            decoded.push(u8::try_from((accumulator >> bits) & 0xff).ok()?);
            accumulator &= (1 << bits) - 1;
        }
    }
    // A lone sixth of a byte left over is a truncated quantum.
    (bits < 6).then_some(decoded)
}

/// Consecutive encoded-words of one charset: their bytes are decoded together, so a
/// character split across two words comes out whole.
struct Pending {
    charset: String,
    bytes: Vec<u8>,
    /// The words as written, for when the bytes are not text in the charset.
    written: String,
}

/// An unstructured header value with its RFC 2047 encoded-words (`=?charset?B?...?=`,
/// `=?charset?Q?...?=`) decoded; whitespace between two encoded-words is dropped
/// (section 6.2). A word that does not decode stays as written.
pub(super) fn decode_words(value: &str) -> String {
    let mut decoded = String::with_capacity(value.len());
    let mut pending: Option<Pending> = None;
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at_checked(start).unwrap_or((rest, ""));
        let Some((charset, bytes, after)) = encoded_word(candidate) else {
            flush(&mut decoded, pending.take());
            decoded.push_str(before);
            decoded.push_str("=?");
            rest = candidate.get(2..).unwrap_or_default();
            continue;
        };
        let written = candidate
            .get(..candidate.len() - after.len())
            .unwrap_or_default();
        let between_words = pending.is_some() && before.chars().all(|c| c == ' ' || c == '\t');
        if !between_words {
            flush(&mut decoded, pending.take());
            decoded.push_str(before);
        }
        match &mut pending {
            Some(words) if words.charset.eq_ignore_ascii_case(charset) => {
                words.bytes.extend(bytes);
                words.written.push_str(before);
                words.written.push_str(written);
            }
            _ => {
                flush(&mut decoded, pending.take());
                pending = Some(Pending {
                    charset: charset.to_string(),
                    bytes,
                    written: written.to_string(),
                });
            }
        }
        rest = after;
    }
    flush(&mut decoded, pending);
    decoded.push_str(rest);
    decoded
}

fn flush(decoded: &mut String, pending: Option<Pending>) {
    let Some(words) = pending else {
        return;
    };
    match text(words.bytes, Some(&words.charset)) {
        Ok(text) => decoded.push_str(&text),
        Err(_) => decoded.push_str(&words.written),
    }
}

/// `=?charset?encoding?text?=` at the start of `candidate`: the charset (without an RFC 2231
/// language), the decoded bytes and what follows the word.
fn encoded_word(candidate: &str) -> Option<(&str, Vec<u8>, &str)> {
    let inner = candidate.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let (encoded, after) = inner.split_once("?=")?;
    let forbidden = |c: char| c.is_whitespace() || c == '?';
    if charset.is_empty() || charset.contains(forbidden) || encoded.contains(forbidden) {
        return None;
    }
    let charset = charset
        .split_once('*')
        .map_or(charset, |(charset, _)| charset);
    let bytes = match encoding {
        "B" | "b" => base64(encoded.as_bytes())?,
        "Q" | "q" => q_encoding(encoded.as_bytes())?,
        _ => return None,
    };
    Some((charset, bytes, after))
}

/// RFC 2047's Q encoding: `_` is a space, `=XX` a byte.
fn q_encoding(encoded: &[u8]) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter().copied();
    while let Some(byte) = bytes.next() {
        match byte {
            b'_' => decoded.push(b' '),
            b'=' => {
                let high = bytes.next().and_then(hex_digit)?;
                let low = bytes.next().and_then(hex_digit)?;
                decoded.push(high << 4 | low);
            }
            _ => decoded.push(byte),
        }
    }
    Some(decoded)
}
