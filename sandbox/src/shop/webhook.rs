//! Posting Alertmanager's webhook: one task sends the notifications in the order they were
//! made, to the URL the demo set (waiting for one when none is set yet), with the bearer
//! token if any, retrying a failed delivery a few times with a growing virtual backoff as
//! Alertmanager does. A delivery that keeps failing is reported as an event, never a panic.
//!
//! The client is a minimal HTTP/1.1 one over tokio's `TcpStream` (plain `http://` only, one
//! request per connection): the sandbox's library has no HTTP client among its
//! dependencies, and the receiver is `medic serve` on loopback.

use super::alerting::Notification;
use crate::clock::SimClock;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
}

/// Deliveries tried per notification.
const ATTEMPTS: u32 = 4;
/// The first retry's virtual backoff; each next one doubles it.
const BACKOFF: Duration = Duration::from_secs(5);
/// Wall time one delivery may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read.
const ANSWER_LIMIT: usize = 64 * 1024;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("bad webhook url {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot reach {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {address} within {seconds}s")]
    Timeout { address: String, seconds: u64 },
    #[error("the receiver answered {status}")]
    Status { status: u16 },
    #[error("the receiver's answer is not HTTP: {excerpt:?}")]
    BadAnswer { excerpt: String },
}

impl SendError {
    /// Whether trying again may help (Alertmanager retries all but 4xx answers).
    fn retryable(&self) -> bool {
        !matches!(self, SendError::BadUrl { .. })
            && !matches!(self, SendError::Status { status } if (400..500).contains(status))
    }
}

/// What happened to one notification.
pub type Outcome = (Notification, Result<(), SendError>);

/// Sends `notifications` one after the other; reports each outcome to `done`.
pub async fn run(
    clock: SimClock,
    external_url: String,
    mut target: watch::Receiver<Option<Target>>,
    mut notifications: mpsc::UnboundedReceiver<Notification>,
    done: impl Fn(Outcome) + Send + 'static,
) {
    while let Some(notification) = notifications.recv().await {
        let Ok(current) = target
            .wait_for(Option::is_some)
            .await
            .map(|target| target.clone())
        else {
            return;
        };
        let Some(current) = current else {
            continue;
        };
        let body = notification.payload(&external_url).to_string();
        let mut backoff = BACKOFF;
        let mut attempt = 1;
        let outcome = loop {
            match post(&current, &body).await {
                Ok(()) => break Ok(()),
                Err(error) if attempt < ATTEMPTS && error.retryable() => {
                    tracing::debug!(%error, attempt, "alert webhook failed; retrying");
                    clock.sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(error) => break Err(error),
            }
        };
        if let Err(error) = &outcome {
            tracing::warn!(%error, alert = notification.name(), "alert webhook not delivered");
        }
        done((notification, outcome));
    }
}

/// POSTs `body` as JSON to the target; a 2xx answer is success.
pub async fn post(target: &Target, body: &str) -> Result<(), SendError> {
    let (address, host, path) = split_url(&target.url)?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|source| SendError::Connect {
                address: address.clone(),
                source,
            })?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Alertmanager/0.27.0 (medic sandbox)\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(token) = &target.token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let io = |source| SendError::Connect {
            address: address.clone(),
            source,
        };
        write_all(&stream, request.as_bytes()).await.map_err(io)?;
        let answer = read_to_end(&stream).await.map_err(io)?;
        Ok::<Vec<u8>, SendError>(answer)
    };
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| SendError::Timeout {
            address: address.clone(),
            seconds: REQUEST_TIMEOUT.as_secs(),
        })??;
    let status = status_of(&answer)?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(SendError::Status { status })
    }
}

/// Writes all of `bytes` (tokio's `io-util` is not among the workspace's features, so the
/// stream's readiness API is used directly).
async fn write_all(stream: &tokio::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Reads until the peer closes, at most [`ANSWER_LIMIT`] bytes.
async fn read_to_end(stream: &tokio::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    while answer.len() < ANSWER_LIMIT {
        stream.readable().await?;
        match stream.try_read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(buffer.get(..read).unwrap_or_default()),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(answer)
}

/// The status code of an HTTP/1.x answer.
fn status_of(answer: &[u8]) -> Result<u16, SendError> {
    let line = answer
        .split(|byte| *byte == b'\n')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|code| code.parse::<u16>().ok()),
    ) {
        (Some(version), Some(status)) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err(SendError::BadAnswer {
            excerpt: line.chars().take(80).collect(),
        }),
    }
}

/// `http://HOST[:PORT][/PATH]` as the address to connect to, the Host header and the path.
fn split_url(url: &str) -> Result<(String, String, String), SendError> {
    let bad = |reason| SendError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (
            rest.get(..slash).unwrap_or_default(),
            rest.get(slash..).unwrap_or("/"),
        ),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("no host, or credentials in it"));
    }
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    if path.contains(['\r', '\n', ' ']) {
        return Err(bad("the path holds spaces or line breaks"));
    }
    Ok((address, authority.to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_answers_are_read() {
        let (address, host, path) = split_url("http://127.0.0.1:9/hooks/am").unwrap_or_default();
        assert_eq!(
            (address.as_str(), host.as_str(), path.as_str()),
            ("127.0.0.1:9", "127.0.0.1:9", "/hooks/am")
        );
        let (address, _, path) = split_url("http://medic").unwrap_or_default();
        assert_eq!((address.as_str(), path.as_str()), ("medic:80", "/"));
        assert!(split_url("https://medic/").is_err());
        assert_eq!(status_of(b"HTTP/1.1 202 Accepted\r\n\r\n").ok(), Some(202));
        assert!(status_of(b"SSH-2.0").is_err());
    }
}
