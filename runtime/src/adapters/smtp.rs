//! `notify.email`: mail sent through the one SMTP server of the configuration (`[smtp]` in
//! medic.toml), with `lettre` over tokio and rustls.
//!
//! What is guaranteed:
//! - every recipient is a valid address, checked before any connection (a bad one is an
//!   error naming it); the list is not empty and has at most [`MAX_RECIPIENTS`];
//! - the body is at most [`BODY_LIMIT`] bytes and the subject at most [`SUBJECT_LIMIT`];
//!   headers are built by `lettre`, so a subject cannot add a header;
//! - a call ends within the configured timeout, whatever the server does (one connection
//!   per mail, so a broken connection is never reused);
//! - a mail the server did not accept (a refused recipient, an unreachable server, a failed
//!   TLS handshake) is an error carrying the server's answer, so the task fails and its
//!   `retry` and `on failure` apply: an undelivered notification is never a success;
//! - the password is never logged or reported (`Debug` redacts it).

use super::args::{ArgError, Args};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use medic_compiler::plan::Value;
use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::Duration;

/// The largest body of one mail, in bytes.
pub const BODY_LIMIT: usize = 1 << 20;

/// The longest subject, in bytes.
pub const SUBJECT_LIMIT: usize = 1000;

/// Recipients of one mail at most.
pub const MAX_RECIPIENTS: usize = 100;

/// How long one call may take when the configuration says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection to the server is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or a trusted network).
    None,
    /// Plain text upgraded with STARTTLS; a server that does not offer it is refused, so
    /// nothing is ever sent in the clear by mistake.
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// The SMTP server mail goes through (`[smtp]` in medic.toml).
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// The sender of every mail.
    pub from: String,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// A secret: never logged or reported.
    pub password: Option<String>,
    /// The longest one call may take, connection and all.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SmtpError {
    #[error("no SMTP server is configured ([smtp] in medic.toml)")]
    NotConfigured,
    #[error(transparent)]
    Argument(#[from] ArgError),
    #[error("`notify.email`: `to` names no recipient")]
    NoRecipients,
    #[error("`notify.email`: {count} recipients, at most {limit} are allowed")]
    TooManyRecipients { count: usize, limit: usize },
    #[error("`notify.email`: {address:?} is not a valid email address: {reason}")]
    BadAddress { address: String, reason: String },
    #[error("[smtp] from: {address:?} is not a valid email address: {reason}")]
    BadFrom { address: String, reason: String },
    #[error("[smtp]: a username needs a password, and a password a username")]
    HalfCredentials,
    #[error("`notify.email`: the {what} is {size} bytes, at most {limit} are allowed")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("`notify.email`: cannot build the message: {0}")]
    BadMessage(String),
    #[error("[smtp]: cannot set up TLS for {host:?}: {reason}")]
    TlsSetup { host: String, reason: String },
    /// The server answered with a refusal (a 4xx or 5xx): a failure of the call.
    #[error("not delivered: the SMTP server refused it: {code} {text}")]
    Refused { code: String, text: String },
    /// No answer that accepts the mail: unreachable, TLS failed, connection lost.
    #[error("not delivered: SMTP server {server}: {reason}")]
    NotDelivered { server: String, reason: String },
    #[error("not delivered: the SMTP server did not finish within {0:?}")]
    TimedOut(Duration),
}

/// The decoded arguments of `notify.email`, already checked.
struct Email {
    to: Vec<Mailbox>,
    subject: String,
    body: String,
}

impl Email {
    fn decode(values: BTreeMap<String, Value>) -> Result<Email, SmtpError> {
        let mut args = Args::new("notify.email", values);
        let to = args.strings("to")?;
        let subject = args.string("subject")?;
        let body = args.string("body")?;
        args.finish()?;
        if to.is_empty() {
            return Err(SmtpError::NoRecipients);
        }
        if to.len() > MAX_RECIPIENTS {
            return Err(SmtpError::TooManyRecipients {
                count: to.len(),
                limit: MAX_RECIPIENTS,
            });
        }
        for (what, text, limit) in [
            ("subject", &subject, SUBJECT_LIMIT),
            ("body", &body, BODY_LIMIT),
        ] {
            if text.len() > limit {
                return Err(SmtpError::TooLarge {
                    what,
                    size: text.len(),
                    limit,
                });
            }
        }
        let to = to
            .into_iter()
            .map(|address| {
                address
                    .parse::<Mailbox>()
                    .map_err(|error| SmtpError::BadAddress {
                        reason: error.to_string(),
                        address,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Email { to, subject, body })
    }
}

/// A configured server, reached with one new connection per mail.
struct Server {
    host: String,
    port: u16,
    from: Mailbox,
    /// How the connection is encrypted, with the parameters (`None` for plain text).
    tls: Option<(SmtpTls, TlsParameters)>,
    credentials: Option<Credentials>,
    timeout: Duration,
    /// `host:port over TLS`, for messages: a TLS mismatch reads as one.
    name: String,
}

/// The `notify.email` adapter; without a configured server every call fails saying so.
pub struct Mailer {
    server: Option<Server>,
}

impl Mailer {
    pub fn new(config: Option<SmtpConfig>) -> Result<Mailer, SmtpError> {
        let Some(config) = config else {
            return Ok(Mailer { server: None });
        };
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|error| SmtpError::BadFrom {
                address: config.from.clone(),
                reason: error.to_string(),
            })?;
        let tls_parameters = || {
            TlsParameters::new(config.host.clone()).map_err(|error| SmtpError::TlsSetup {
                host: config.host.clone(),
                reason: error.to_string(),
            })
        };
        let name = format!(
            "{}:{} over {}",
            config.host,
            config.port,
            match config.tls {
                SmtpTls::None => "plain text",
                SmtpTls::StartTls => "STARTTLS",
                SmtpTls::Tls => "TLS",
            }
        );
        let tls = match config.tls {
            SmtpTls::None => None,
            mode @ (SmtpTls::StartTls | SmtpTls::Tls) => Some((mode, tls_parameters()?)),
        };
        let credentials = match (config.username, config.password) {
            (Some(username), Some(password)) => Some(Credentials::new(username, password)),
            (None, None) => None,
            _ => return Err(SmtpError::HalfCredentials),
        };
        Ok(Mailer {
            server: Some(Server {
                host: config.host,
                port: config.port,
                from,
                tls,
                credentials,
                timeout: config.timeout,
                name,
            }),
        })
    }

    /// Sends one mail: accepted by the server is the `notify.Delivery` record, anything
    /// else an error.
    pub async fn email(&self, values: BTreeMap<String, Value>) -> Result<Value, SmtpError> {
        let email = Email::decode(values)?;
        let server = self.server.as_ref().ok_or(SmtpError::NotConfigured)?;
        let mut message = Message::builder()
            .from(server.from.clone())
            .subject(email.subject)
            .header(ContentType::TEXT_PLAIN);
        for recipient in email.to {
            message = message.to(recipient);
        }
        let message = message
            .body(email.body)
            .map_err(|error| SmtpError::BadMessage(error.to_string()))?;
        let response = tokio::time::timeout(server.timeout, server.deliver(&message))
            .await
            .map_err(|_| SmtpError::TimedOut(server.timeout))??;
        let text = response.message().collect::<Vec<_>>().join(" ");
        let detail = format!("{} {text}", response.code()).trim_end().to_string();
        Ok(Value::record([
            ("delivered".to_string(), Value::Bool(true)),
            ("detail".to_string(), Value::String(detail)),
        ]))
    }
}

impl Mailer {
    /// Connects, greets, sets up TLS and logs in as a mail would, then quits without
    /// sending (`medic doctor`). The answer names the server.
    pub async fn check(&self) -> Result<String, SmtpError> {
        let server = self.server.as_ref().ok_or(SmtpError::NotConfigured)?;
        let mut connection = tokio::time::timeout(server.timeout, server.open())
            .await
            .map_err(|_| SmtpError::TimedOut(server.timeout))??;
        let _ = connection.quit().await;
        Ok(server.name.clone())
    }
}

impl Server {
    /// One connection: greeting, STARTTLS or TLS as configured, login, the mail, QUIT.
    ///
    /// lettre's own transport writes the end of the data (`.`) apart from the message on a
    /// socket with Nagle's algorithm on, so every mail waited for the server's delayed ACK
    /// (about 40 ms on Linux loopback); the plain and STARTTLS connections are opened here
    /// with `TCP_NODELAY`. Implicit TLS goes through lettre's connect, which keeps that wait.
    async fn deliver(&self, message: &Message) -> Result<Response, SmtpError> {
        let failed = |error| undelivered(&self.name, error);
        let mut connection = self.open().await?;
        let response = connection
            .send(message.envelope(), &message.formatted())
            .await
            .map_err(failed)?;
        // The server has accepted the mail: a QUIT that goes wrong changes nothing.
        let _ = connection.quit().await;
        Ok(response)
    }

    /// A connection ready to send: greeted, with TLS and logged in as configured.
    async fn open(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let failed = |error| undelivered(&self.name, error);
        let hello = ClientId::default();
        let mut connection = match &self.tls {
            Some((SmtpTls::Tls, parameters)) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(failed)?,
            _ => {
                let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(|error| SmtpError::NotDelivered {
                        server: self.name.clone(),
                        reason: format!("cannot connect: {error}"),
                    })?;
                // Only latency depends on it: a socket that refuses the option still works.
                let _ = stream.set_nodelay(true);
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
                    .await
                    .map_err(failed)?
            }
        };
        if let Some((SmtpTls::StartTls, parameters)) = &self.tls {
            connection
                .starttls(parameters.clone(), &hello)
                .await
                .map_err(failed)?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(failed)?;
        }
        Ok(connection)
    }
}

/// The server's refusal with its code and text, or what kept the mail from it (lettre's
/// message already ends with its cause, such as "Connection refused").
fn undelivered(server: &str, error: lettre::transport::smtp::Error) -> SmtpError {
    match error.status() {
        Some(code) => SmtpError::Refused {
            code: code.to_string(),
            text: error
                .source()
                .map_or_else(String::new, |text| text.to_string()),
        },
        None => SmtpError::NotDelivered {
            server: server.to_string(),
            reason: without_repeats(&error.to_string()),
        },
    }
}

/// lettre nests a connection error in another ("Connection error: Connection error: ..."):
/// a part said twice in a row is said once.
fn without_repeats(message: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in message.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}
