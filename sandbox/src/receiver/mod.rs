//! An in-process receiver of Medic's notifications, for tests and `medic demo`: an SMTP
//! server (`notify.email`) and an HTTP server (`notify.slack`, `notify.webhook`, a
//! service's admin endpoint) on loopback that record what they are sent, so a demo prints
//! its notifications instead of sending them anywhere.
//!
//! # Served
//!
//! - SMTP (`smtp.rs`): a small RFC 5321 server without TLS or authentication. Each mail
//!   accepted is a [`Message::Email`]: the envelope's sender and recipients (what the
//!   server was told, Bcc included), the `Subject` header unfolded with its RFC 2047
//!   encoded-words decoded, and the body decoded from its transfer encoding
//!   (quoted-printable, base64) and charset, as `lettre` writes non-ASCII text.
//! - HTTP (`http.rs`): `POST /slack` takes a Slack incoming-webhook payload
//!   (`{"channel", "text"}`) and answers `ok` as Slack does, or 400 with Slack's error
//!   (`invalid_payload`, `no_text`) and records nothing; any other `POST` is a
//!   [`Message::Webhook`] with its path and UTF-8 body. Other methods are answered 200 `ok`
//!   and not recorded (a health check is not a notification).
//!
//! # Guaranteed
//!
//! - Memory is bounded whatever a client sends: lines, mails, HTTP bodies, recipients,
//!   connections and the messages kept all have limits ([`ReceiverConfig`]).
//! - A message is recorded before its sender is told it was accepted, so a test that has
//!   seen the 250 (or the 200) finds it in [`Receiver::messages`].
//! - Nothing listens beyond the addresses given; [`Receiver::start`] binds 127.0.0.1.

mod http;
mod mail;
mod smtp;
#[cfg(test)]
mod tests;

pub use smtp::SmtpLimits;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// One notification the receiver got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// A mail accepted over SMTP: envelope sender (empty for the null path `<>`) and
    /// recipients, decoded subject and body (lines end with `\n`).
    Email {
        from: String,
        to: Vec<String>,
        subject: String,
        body: String,
    },
    /// A Slack incoming-webhook payload posted to `/slack`.
    Slack { channel: String, text: String },
    /// Any other POST: the path with its query, and the body.
    Webhook { path: String, body: String },
}

/// Where the receiver listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub smtp_address: SocketAddr,
    pub http_address: SocketAddr,
    pub smtp: SmtpLimits,
    /// The largest HTTP body, in bytes; a larger one is answered 413.
    pub http_body_limit: usize,
    /// How many messages [`Receiver::messages`] keeps; older ones are dropped first.
    pub kept_messages: usize,
}

impl Default for ReceiverConfig {
    fn default() -> ReceiverConfig {
        ReceiverConfig {
            smtp_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            http_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            smtp: SmtpLimits::default(),
            http_body_limit: 4 << 20,
            kept_messages: 10_000,
        }
    }
}

/// Messages received so far, and the channel that announces new ones.
struct Store {
    messages: Mutex<VecDeque<Message>>,
    announce: broadcast::Sender<Message>,
    kept: usize,
}

impl Store {
    fn record(&self, message: Message) {
        {
            // A panic elsewhere while holding the lock cannot leave the queue half-written:
            // its operations are single calls.
            let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            if messages.len() >= self.kept {
                messages.pop_front();
            }
            messages.push_back(message.clone());
        }
        // No subscriber is not an error: the message is kept for `messages()`.
        let _ = self.announce.send(message);
    }

    fn messages(&self) -> Vec<Message> {
        let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        messages.iter().cloned().collect()
    }
}

/// The running receiver; [`Receiver::stop`] (or dropping it) stops both servers.
pub struct Receiver {
    store: Arc<Store>,
    smtp_address: SocketAddr,
    http_address: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Receiver {
    /// SMTP and HTTP on free ports of 127.0.0.1.
    pub async fn start() -> std::io::Result<Receiver> {
        Receiver::start_with(ReceiverConfig::default()).await
    }

    /// SMTP and HTTP on these ports of 127.0.0.1 (0: a free one).
    pub async fn start_on(smtp_port: u16, http_port: u16) -> std::io::Result<Receiver> {
        Receiver::start_with(ReceiverConfig {
            smtp_address: SocketAddr::from((Ipv4Addr::LOCALHOST, smtp_port)),
            http_address: SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)),
            ..ReceiverConfig::default()
        })
        .await
    }

    /// Binds both addresses (so a port in use is an error here, before anything runs) and
    /// starts serving.
    pub async fn start_with(config: ReceiverConfig) -> std::io::Result<Receiver> {
        let smtp_listener = tokio::net::TcpListener::bind(config.smtp_address).await?;
        let http_listener = tokio::net::TcpListener::bind(config.http_address).await?;
        let smtp_address = smtp_listener.local_addr()?;
        let http_address = http_listener.local_addr()?;
        let (announce, _) = broadcast::channel(1024);
        let store = Arc::new(Store {
            messages: Mutex::new(VecDeque::new()),
            announce,
            kept: config.kept_messages.max(1),
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(smtp::serve(
                smtp_listener,
                config.smtp,
                store.clone(),
                stopped.clone(),
            )),
            tokio::spawn(http::serve(
                http_listener,
                config.http_body_limit,
                store.clone(),
                stopped,
            )),
        ];
        Ok(Receiver {
            store,
            smtp_address,
            http_address,
            stop,
            tasks,
        })
    }

    /// Where the SMTP server listens (`[smtp] host` and `port`, `tls = "none"`).
    pub fn smtp_address(&self) -> SocketAddr {
        self.smtp_address
    }

    /// The HTTP server's base URL, without a trailing `/`: the Slack webhook is
    /// `{http_url}/slack`, any other path a generic webhook.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_address)
    }

    /// Everything received so far (at most [`ReceiverConfig::kept_messages`]), oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.store.messages()
    }

    /// Messages received from now on. A subscriber that falls more than 1024 messages
    /// behind is told how many it missed (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.store.announce.subscribe()
    }

    /// Stops accepting, lets open HTTP requests finish (at most five seconds), drops open
    /// SMTP sessions and returns.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            // A client that never finishes its request would hold a graceful stop open.
            task.abort();
        }
    }
}
