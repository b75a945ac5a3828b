//! The receiver's SMTP server: RFC 5321's minimum implementation (section 4.5.1) over
//! plain TCP, for a client configured with `tls = "none"`.
//!
//! # Implemented
//!
//! - The greeting (220), `EHLO` (250, multi-line: `8BITMIME`, `SMTPUTF8`, `SIZE`, `HELP`),
//!   `HELO`, `MAIL FROM:<path>` with the parameters `BODY=7BIT|8BITMIME`, `SMTPUTF8` and
//!   `SIZE=n` (after EHLO only), `RCPT TO:<path>` (several, up to a limit: then 452),
//!   `DATA` (354, then 250 once the mail is recorded) with dot-unstuffing (section 4.5.2),
//!   `RSET`, `NOOP`, `QUIT` (221), `VRFY` (252: nothing is verified), `HELP` (214).
//!   `EHLO` and `HELO` start a new session state, as `RSET` does (section 4.1.4).
//! - Refusals: 500 for an unknown command or a line too long (512 bytes for a command,
//!   1000 for a line of text, CRLF included; section 4.5.3.1), 501 for bad arguments, 502
//!   for commands known but not offered (`STARTTLS`, `AUTH`, `EXPN`, `BDAT`, ...), 503 for
//!   commands out of sequence, 552 for a mail over the size limit (announced with `SIZE`
//!   and checked again while reading), 554 for a mail whose content cannot be decoded,
//!   555 for unknown `MAIL`/`RCPT` parameters, 421 (and the connection closed) after an idle
//!   timeout, too many errors, or when all sessions are taken.
//! - Source routes in paths (`<@relay:user@host>`) are accepted and ignored, as section
//!   4.1.2 asks; the null reverse-path `<>` is accepted.
//! - Lines may end with a bare LF (robustness); replies end with CRLF.
//!
//! # Not implemented
//!
//! TLS (`STARTTLS`), `AUTH`, `PIPELINING` (not announced; a client that pipelines anyway
//! is answered in order), `CHUNKING`, `DSN`, `ENHANCEDSTATUSCODES`. No mail is relayed.
//!
//! # Bounded
//!
//! A session holds at most one line (plus its read buffer) and one mail ([`SmtpLimits`]);
//! an over-long line is read to its end and thrown away, an over-large mail is read to its
//! end without being kept.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::{Message, Store, mail};

/// The longest command line, CRLF included (RFC 5321 section 4.5.3.1.4).
pub const COMMAND_LINE_LIMIT: usize = 512;

/// The longest line of a mail, CRLF included (RFC 5321 section 4.5.3.1.6).
pub const TEXT_LINE_LIMIT: usize = 1000;

/// The name the server gives itself.
const HOSTNAME: &str = "localhost";

/// What one SMTP client may use.
#[derive(Debug, Clone)]
pub struct SmtpLimits {
    /// The largest mail, in bytes as received (after dot-unstuffing).
    pub message_bytes: usize,
    /// Recipients of one mail; RFC 5321 asks for at least 100.
    pub recipients: usize,
    /// How long the server waits for a line, or for a reply to be taken, before it
    /// closes the connection with 421. RFC 5321 section 4.5.3.2.7 suggests five minutes.
    pub idle_timeout: Duration,
    /// Sessions at once; one more is answered 421 and closed.
    pub connections: usize,
    /// Refused commands (5xx) in one session before it is closed with 421.
    pub errors: usize,
}

impl Default for SmtpLimits {
    fn default() -> SmtpLimits {
        SmtpLimits {
            message_bytes: 4 << 20,
            recipients: 100,
            idle_timeout: Duration::from_secs(300),
            connections: 64,
            errors: 20,
        }
    }
}

/// Accepts sessions until `stopped` turns true (or its sender is gone), then drops the
/// open ones.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    limits: SmtpLimits,
    store: Arc<Store>,
    mut stopped: watch::Receiver<bool>,
) {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.connections));
    let mut sessions = JoinSet::new();
    // An error means the receiver is gone: stop as well.
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!(%error, "receiver: cannot accept an SMTP connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Replies are single writes; without Nagle's algorithm they leave at once.
                let _ = stream.set_nodelay(true);
                let permit = permits.clone().try_acquire_owned().ok();
                sessions.spawn(session(stream, permit, limits.clone(), store.clone()));
            }
        }
    }
}

/// One reply: a code and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// `250-first`, ..., `250 last` (section 4.2.1).
    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            bytes.extend_from_slice(format!("{}{separator}{line}\r\n", self.code).as_bytes());
        }
        bytes
    }

    fn ok() -> Reply {
        Reply::new(250, "OK")
    }
}

/// What a command leads to.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Reply(Reply),
    /// `DATA` was accepted: 354, then the mail.
    Data,
    Quit,
}

/// What the client said with EHLO or HELO.
struct Greeting {
    /// EHLO: the service extensions apply.
    extended: bool,
}

/// The mail under way: the envelope so far.
struct Transaction {
    from: String,
    to: Vec<String>,
}

/// A session's state between commands (section 4.1.4's order).
struct Session {
    greeting: Option<Greeting>,
    transaction: Option<Transaction>,
}

impl Session {
    fn command(&mut self, line: &[u8], limits: &SmtpLimits) -> Step {
        let Ok(line) = std::str::from_utf8(line) else {
            return Step::Reply(Reply::new(500, "syntax error: the line is not UTF-8"));
        };
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let argument = argument.trim();
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(argument, true, limits),
            "HELO" => self.hello(argument, false, limits),
            "MAIL" => self.mail(argument, limits),
            "RCPT" => self.rcpt(argument, limits),
            "DATA" => match self.data(argument) {
                Ok(()) => return Step::Data,
                Err(reply) => reply,
            },
            "RSET" if argument.is_empty() => {
                self.transaction = None;
                Reply::ok()
            }
            "RSET" => Reply::new(501, "syntax: RSET"),
            "NOOP" => Reply::ok(),
            "QUIT" if argument.is_empty() => return Step::Quit,
            "QUIT" => Reply::new(501, "syntax: QUIT"),
            "VRFY" if argument.is_empty() => Reply::new(501, "syntax: VRFY <address>"),
            "VRFY" => Reply::new(
                252,
                "cannot VRFY user, but will accept message and attempt delivery",
            ),
            "HELP" => Reply::new(
                214,
                "commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            ),
            "STARTTLS" | "AUTH" | "EXPN" | "BDAT" | "ETRN" | "TURN" | "SEND" | "SOML" | "SAML" => {
                Reply::new(502, "command not implemented")
            }
            _ => Reply::new(500, "command not recognized"),
        };
        Step::Reply(reply)
    }

    fn hello(&mut self, client: &str, extended: bool, limits: &SmtpLimits) -> Reply {
        if client.is_empty() {
            let verb = if extended { "EHLO" } else { "HELO" };
            return Reply::new(501, format!("syntax: {verb} <domain>"));
        }
        self.greeting = Some(Greeting { extended });
        self.transaction = None;
        if !extended {
            return Reply::new(250, HOSTNAME);
        }
        Reply {
            code: 250,
            lines: vec![
                format!("{HOSTNAME} greets {client}"),
                "8BITMIME".to_string(),
                "SMTPUTF8".to_string(),
                format!("SIZE {}", limits.message_bytes),
                "HELP".to_string(),
            ],
        }
    }

    fn mail(&mut self, argument: &str, limits: &SmtpLimits) -> Reply {
        let Some(greeting) = &self.greeting else {
            return Reply::new(503, "send EHLO or HELO first");
        };
        if self.transaction.is_some() {
            return Reply::new(503, "nested MAIL command");
        }
        let Some((from, parameters)) = strip_keyword(argument, "FROM:").and_then(path) else {
            return Reply::new(501, "syntax: MAIL FROM:<address>");
        };
        if !from.is_empty() && !is_mailbox(&from) {
            return Reply::new(501, format!("{from:?} is not a mailbox"));
        }
        for parameter in parameters.split_whitespace() {
            if !greeting.extended {
                return Reply::new(555, "MAIL parameters need EHLO");
            }
            let (keyword, value) = match parameter.split_once('=') {
                Some((keyword, value)) => (keyword, Some(value)),
                None => (parameter, None),
            };
            match (keyword.to_ascii_uppercase().as_str(), value) {
                ("BODY", Some(body))
                    if body.eq_ignore_ascii_case("7BIT")
                        || body.eq_ignore_ascii_case("8BITMIME") => {}
                ("SMTPUTF8", None) => {}
                ("SIZE", Some(size))
                    if !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    // Digits too many for a u64 are a size too large as well.
                    let too_large = !size
                        .parse::<u64>()
                        .is_ok_and(|size| size <= limits.message_bytes as u64);
                    if too_large {
                        return Reply::new(552, "message size exceeds fixed maximum message size");
                    }
                }
                _ => {
                    return Reply::new(
                        555,
                        format!(
                            "MAIL FROM parameter {parameter:?} not recognized or not implemented"
                        ),
                    );
                }
            }
        }
        self.transaction = Some(Transaction {
            from,
            to: Vec::new(),
        });
        Reply::ok()
    }

    fn rcpt(&mut self, argument: &str, limits: &SmtpLimits) -> Reply {
        let Some(transaction) = &mut self.transaction else {
            return Reply::new(503, "need MAIL before RCPT");
        };
        let Some((to, parameters)) = strip_keyword(argument, "TO:").and_then(path) else {
            return Reply::new(501, "syntax: RCPT TO:<address>");
        };
        if !is_mailbox(&to) && !to.eq_ignore_ascii_case("postmaster") {
            return Reply::new(501, format!("{to:?} is not a mailbox"));
        }
        if !parameters.trim().is_empty() {
            return Reply::new(555, "RCPT TO parameters not recognized or not implemented");
        }
        if transaction.to.len() >= limits.recipients {
            return Reply::new(452, "too many recipients");
        }
        transaction.to.push(to);
        Reply::ok()
    }

    /// `Ok` when the envelope is complete and the mail may follow.
    fn data(&self, argument: &str) -> Result<(), Reply> {
        if !argument.is_empty() {
            return Err(Reply::new(501, "syntax: DATA"));
        }
        match &self.transaction {
            None => Err(Reply::new(503, "need MAIL command")),
            Some(transaction) if transaction.to.is_empty() => {
                Err(Reply::new(503, "need RCPT command"))
            }
            Some(_) => Ok(()),
        }
    }

    /// The end of `DATA`: the transaction is over whatever the outcome (section 4.1.1.4);
    /// a mail that was read whole and decodes is recorded.
    fn finish(&mut self, received: Received, store: &Store) -> Reply {
        let Some(transaction) = self.transaction.take() else {
            return Reply::new(503, "need MAIL command");
        };
        let content = match received {
            Received::Whole(content) => content,
            Received::TooLarge => {
                return Reply::new(552, "message exceeds fixed maximum message size");
            }
            Received::LineTooLong => return Reply::new(500, "line too long"),
        };
        match mail::parse(&content) {
            Ok(content) => {
                store.record(Message::Email {
                    from: transaction.from,
                    to: transaction.to,
                    subject: content.subject,
                    body: content.body,
                });
                Reply::new(250, "OK: message accepted")
            }
            Err(error) => Reply::new(554, format!("transaction failed: {error}")),
        }
    }
}

/// `FROM:` or `TO:` at the start of a MAIL or RCPT argument, any case; what follows it.
fn strip_keyword<'a>(argument: &'a str, keyword: &str) -> Option<&'a str> {
    let (head, rest) = argument.split_at_checked(keyword.len())?;
    // A space after the colon is common and harmless (RFC 5321 section 4.1.2 has none).
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest.trim_start())
}

/// `<path>` and what follows it: the mailbox without source route, and the parameters.
fn path(text: &str) -> Option<(String, &str)> {
    let inner = text.strip_prefix('<')?;
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (index, character) in inner.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                end = Some(index);
                break;
            }
            _ => {}
        }
    }
    let (mailbox, rest) = inner.split_at_checked(end?)?;
    let rest = rest.strip_prefix('>')?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let mailbox = match mailbox.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => mailbox,
    };
    Some((mailbox.to_string(), rest))
}

/// `local@domain`, both parts present, without spaces or controls outside a quoted local
/// part. Not a full RFC 5321 address grammar: enough to refuse what is plainly not one.
fn is_mailbox(mailbox: &str) -> bool {
    let Some((local, domain)) = mailbox.rsplit_once('@') else {
        return false;
    };
    let quoted_local = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    !local.is_empty()
        && !domain.is_empty()
        && (quoted_local || !local.contains(|c: char| c.is_whitespace() || c.is_control()))
        && !domain.contains(|c: char| c.is_whitespace() || c.is_control() || c == '@')
}

/// How `DATA` ended.
enum Received {
    Whole(Vec<u8>),
    TooLarge,
    LineTooLong,
}

/// One session, from the greeting to QUIT, a timeout or the client's leaving.
async fn session(
    stream: TcpStream,
    permit: Option<OwnedSemaphorePermit>,
    limits: Arc<SmtpLimits>,
    store: Arc<Store>,
) {
    let mut connection = Connection::new(stream, limits.idle_timeout);
    let Some(_permit) = permit else {
        let _ = connection
            .reply(&Reply::new(
                421,
                format!("{HOSTNAME} too many connections, try again later"),
            ))
            .await;
        return;
    };
    if let Err(error) = converse(&mut connection, &limits, &store).await {
        tracing::debug!(%error, "receiver: SMTP session ended");
    }
}

/// Why a session ended without QUIT.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("the client closed the connection")]
    Closed,
    #[error("the client was idle for too long")]
    TimedOut,
    #[error("too many errors")]
    TooManyErrors,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn converse(
    connection: &mut Connection,
    limits: &SmtpLimits,
    store: &Store,
) -> Result<(), Ended> {
    let mut session = Session {
        greeting: None,
        transaction: None,
    };
    let mut errors = 0_usize;
    connection
        .reply(&Reply::new(220, format!("{HOSTNAME} ESMTP medic-sandbox")))
        .await?;
    loop {
        let reply = match connection.read_line(COMMAND_LINE_LIMIT).await {
            Ok(Line::Complete(line)) => match session.command(&line, limits) {
                Step::Reply(reply) => reply,
                Step::Quit => {
                    connection
                        .reply(&Reply::new(221, format!("{HOSTNAME} closing connection")))
                        .await?;
                    return Ok(());
                }
                Step::Data => {
                    connection
                        .reply(&Reply::new(354, "end data with <CR><LF>.<CR><LF>"))
                        .await?;
                    let received = match read_data(connection, limits).await {
                        Ok(received) => received,
                        Err(ended) => return Err(timed_out(connection, ended).await),
                    };
                    session.finish(received, store)
                }
            },
            Ok(Line::TooLong) => Reply::new(500, "line too long"),
            Err(ended) => return Err(timed_out(connection, ended).await),
        };
        connection.reply(&reply).await?;
        if reply.code >= 500 {
            errors += 1;
            if errors >= limits.errors {
                connection
                    .reply(&Reply::new(
                        421,
                        format!("{HOSTNAME} too many errors, closing connection"),
                    ))
                    .await?;
                return Err(Ended::TooManyErrors);
            }
        }
    }
}

/// Says why before closing an idle connection (section 4.5.3.2: 421).
async fn timed_out(connection: &mut Connection, ended: Ended) -> Ended {
    if let Ended::TimedOut = ended {
        let _ = connection
            .reply(&Reply::new(
                421,
                format!("{HOSTNAME} idle for too long, closing connection"),
            ))
            .await;
    }
    ended
}

/// The mail after 354, up to the line `.`: dot-unstuffed, lines joined with CRLF.
async fn read_data(connection: &mut Connection, limits: &SmtpLimits) -> Result<Received, Ended> {
    let mut content = Vec::new();
    let mut too_large = false;
    let mut too_long = false;
    loop {
        let line = match connection.read_line(TEXT_LINE_LIMIT).await? {
            Line::Complete(line) => line,
            Line::TooLong => {
                too_long = true;
                content = Vec::new();
                continue;
            }
        };
        if line == b"." {
            break;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if too_large || too_long {
            continue;
        }
        if content.len() + line.len() + 2 > limits.message_bytes {
            too_large = true;
            content = Vec::new();
            continue;
        }
        content.extend_from_slice(line);
        content.extend_from_slice(b"\r\n");
    }
    Ok(if too_large {
        Received::TooLarge
    } else if too_long {
        Received::LineTooLong
    } else {
        Received::Whole(content)
    })
}

/// A line read, without its line break.
enum Line {
    Complete(Vec<u8>),
    /// Longer than the limit: read to its end and thrown away.
    TooLong,
}

/// A client's connection: a buffered reader over the socket, replies written through it.
struct Connection {
    stream: BufReader<TcpStream>,
    timeout: Duration,
}

impl Connection {
    fn new(stream: TcpStream, timeout: Duration) -> Connection {
        Connection {
            stream: BufReader::new(stream),
            timeout,
        }
    }

    /// The next line within the idle timeout; `limit` counts the CRLF.
    async fn read_line(&mut self, limit: usize) -> Result<Line, Ended> {
        tokio::time::timeout(self.timeout, self.read_line_untimed(limit))
            .await
            .map_err(|_| Ended::TimedOut)?
    }

    /// A line ends with CRLF or a bare LF. At most `limit + 1` bytes of it are kept: one
    /// more than the limit allows is enough to know it is too long; the rest of it is then
    /// read and thrown away.
    async fn read_line_untimed(&mut self, limit: usize) -> Result<Line, Ended> {
        let kept = limit as u64 + 1;
        let mut line = Vec::new();
        (&mut self.stream)
            .take(kept)
            .read_until(b'\n', &mut line)
            .await?;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(if line.len() + 2 > limit {
                Line::TooLong
            } else {
                Line::Complete(line)
            });
        }
        // Short of the limit without a line break: the client closed the connection.
        if (line.len() as u64) < kept {
            return Err(Ended::Closed);
        }
        self.skip_line().await?;
        Ok(Line::TooLong)
    }

    /// Reads up to and including the next LF, keeping nothing.
    async fn skip_line(&mut self) -> Result<(), Ended> {
        loop {
            let buffered = self.stream.fill_buf().await?;
            if buffered.is_empty() {
                return Err(Ended::Closed);
            }
            match buffered.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    self.stream.consume(end + 1);
                    return Ok(());
                }
                None => {
                    let read = buffered.len();
                    self.stream.consume(read);
                }
            }
        }
    }

    /// Writes a reply; a client that does not take it within the timeout is dropped.
    async fn reply(&mut self, reply: &Reply) -> Result<(), Ended> {
        let bytes = reply.to_bytes();
        tokio::time::timeout(self.timeout, self.stream.write_all(&bytes))
            .await
            .map_err(|_| Ended::TimedOut)?
            .map_err(Ended::Io)
    }
}
