//! Posting Alertmanager's webhook: one task sends the notifications in the order they were
//! made, to the URL the demo set (waiting for one when none is set yet), with the bearer
//! token if any, retrying a failed delivery a few times with a growing virtual backoff as
//! Alertmanager does. A delivery that keeps failing is reported as an event, never a panic.
//!
//! The client is reqwest's, set up as the hand-written one it replaced behaved: redirects
//! not followed (a 3xx is a failed delivery), no proxy from the environment (the receiver
//! is `medic serve` on loopback), Alertmanager's user agent, one timeout per attempt.

use super::alerting::Notification;
use crate::clock::SimClock;
use serde_json::Value as Json;
use std::sync::Arc;
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
const USER_AGENT: &str = "Alertmanager/0.27.0 (medic sandbox)";

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("bad webhook url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach {address}: {}", root_cause(.source))]
    Connect {
        address: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no answer from {address} within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("the receiver answered {status}")]
    Status { status: u16 },
    /// The connection was made but what came back is not an HTTP answer, or the
    /// connection broke before one came.
    #[error("no HTTP answer from {address}: {}", root_cause(.source))]
    BadAnswer {
        address: String,
        #[source]
        source: reqwest::Error,
    },
    /// reqwest could not set up its client (its TLS backend, say); nothing can be sent.
    #[error("no HTTP client: {}", root_cause(.source.as_ref()))]
    NoClient {
        #[source]
        source: Arc<reqwest::Error>,
    },
}

impl SendError {
    /// Whether trying again may help (Alertmanager retries all but 4xx answers).
    fn retryable(&self) -> bool {
        !matches!(self, SendError::BadUrl { .. } | SendError::NoClient { .. })
            && !matches!(self, SendError::Status { status } if (400..500).contains(status))
    }
}

/// The last cause of `error`: reqwest's own text only names the request ("error sending
/// request for url (...)"); what went wrong is at the end of its chain, as in
/// "Connection refused (os error 111)".
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
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
    let poster = Poster::new(REQUEST_TIMEOUT).map_err(Arc::new);
    if let Err(error) = &poster {
        tracing::warn!(%error, "no HTTP client: alert webhooks cannot be sent");
    }
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
        let payload = notification.payload(&external_url);
        let outcome = match &poster {
            Ok(poster) => poster.deliver(&clock, &current, &payload).await,
            Err(source) => Err(SendError::NoClient {
                source: source.clone(),
            }),
        };
        if let Err(error) = &outcome {
            tracing::warn!(%error, alert = notification.name(), "alert webhook not delivered");
        }
        done((notification, outcome));
    }
}

/// The HTTP client, and the wall time one attempt may take.
struct Poster {
    client: reqwest::Client,
    timeout: Duration,
}

impl Poster {
    fn new(timeout: Duration) -> Result<Poster, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .build()?;
        Ok(Poster { client, timeout })
    }

    /// Posts `payload`, retrying a failure that may pass, after a growing virtual backoff.
    async fn deliver(
        &self,
        clock: &SimClock,
        target: &Target,
        payload: &Json,
    ) -> Result<(), SendError> {
        let mut backoff = BACKOFF;
        let mut attempt = 1;
        loop {
            match self.post(target, payload).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < ATTEMPTS && error.retryable() => {
                    tracing::debug!(%error, attempt, "alert webhook failed; retrying");
                    clock.sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// POSTs `payload` as JSON to the target, once; a 2xx answer is success.
    async fn post(&self, target: &Target, payload: &Json) -> Result<(), SendError> {
        let bad_url = |reason: String| SendError::BadUrl {
            url: target.url.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&target.url).map_err(|error| bad_url(error.to_string()))?;
        let address = match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => return Err(bad_url("no host or no port".into())),
        };
        let mut request = self.client.post(url).json(payload);
        if let Some(token) = &target.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|source| {
            if source.is_builder() {
                // A scheme reqwest does not speak, say.
                bad_url(root_cause(&source))
            } else if source.is_timeout() {
                SendError::Timeout {
                    address: address.clone(),
                    timeout: self.timeout,
                }
            } else if source.is_connect() {
                SendError::Connect {
                    address: address.clone(),
                    source,
                }
            } else {
                SendError::BadAnswer {
                    address: address.clone(),
                    source,
                }
            }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError::Status {
                status: status.as_u16(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::panic,
        reason = "tests"
    )]

    use super::*;
    use crate::shop::alerting::AlertStatus;
    use std::sync::Mutex;
    use std::time::Instant;

    /// What a receiver saw of each request: User-Agent, Authorization, Content-Type.
    type Seen = Arc<Mutex<Vec<[Option<String>; 3]>>>;

    /// A receiver answering `statuses` in turn (the last one from then on); its URL.
    async fn receiver(statuses: &[u16]) -> (String, Seen) {
        use axum::http::{HeaderMap, StatusCode};
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let statuses = statuses.to_vec();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let record = record.clone();
            let statuses = statuses.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned)
                };
                let mut seen = record.lock().unwrap();
                seen.push([
                    header("user-agent"),
                    header("authorization"),
                    header("content-type"),
                ]);
                let status = statuses[(seen.len() - 1).min(statuses.len() - 1)];
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/alertmanager",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    /// The outcome of one notification sent by [`run`] to `url`, on a clock fast enough
    /// for the backoffs (35 virtual seconds) to take 35 ms.
    async fn outcome_of(url: &str, token: Option<&str>) -> Result<(), SendError> {
        let clock = SimClock::starting_at(0, Instant::now(), 1000);
        let (_keep, target) = watch::channel(Some(Target {
            url: url.to_string(),
            token: token.map(str::to_owned),
        }));
        let (queue, queued) = mpsc::unbounded_channel();
        let (report, mut reported) = mpsc::unbounded_channel();
        tokio::spawn(run(
            clock,
            "http://alertmanager.test:9093".into(),
            target,
            queued,
            move |outcome| {
                let _ = report.send(outcome);
            },
        ));
        queue
            .send(Notification {
                status: AlertStatus::Firing,
                labels: [("alertname".to_string(), "Test".to_string())].into(),
                annotations: Default::default(),
                starts_at_ms: 0,
                ends_at_ms: None,
                expr: "up == 0".into(),
            })
            .unwrap();
        let (notification, outcome) =
            tokio::time::timeout(Duration::from_secs(10), reported.recv())
                .await
                .unwrap()
                .unwrap();
        assert_eq!(notification.name(), "Test");
        outcome
    }

    #[tokio::test]
    async fn a_delivery_carries_the_token_and_a_5xx_is_retried_until_it_passes() {
        let (url, seen) = receiver(&[503, 502, 200]).await;
        outcome_of(&url, Some("s3cret")).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[2],
            [
                Some(USER_AGENT.to_string()),
                Some("Bearer s3cret".to_string()),
                Some("application/json".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn a_5xx_or_3xx_is_tried_four_times_and_a_4xx_once() {
        let (url, seen) = receiver(&[503]).await;
        let error = outcome_of(&url, None).await.unwrap_err();
        assert_eq!(error.to_string(), "the receiver answered 503");
        assert_eq!(seen.lock().unwrap().len(), ATTEMPTS as usize);
        assert_eq!(
            seen.lock().unwrap()[0][1],
            None,
            "no token, no Authorization"
        );

        let (url, seen) = receiver(&[404]).await;
        let error = outcome_of(&url, None).await.unwrap_err();
        assert_eq!(error.to_string(), "the receiver answered 404");
        assert_eq!(seen.lock().unwrap().len(), 1);

        // A redirect is not followed.
        let (url, seen) = receiver(&[307]).await;
        let error = outcome_of(&url, None).await.unwrap_err();
        assert_eq!(error.to_string(), "the receiver answered 307");
        assert_eq!(seen.lock().unwrap().len(), ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_named_with_the_cause() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let error = outcome_of(&format!("http://{address}/hooks"), None)
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Connect { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("cannot reach {address}: ")),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }

    #[tokio::test]
    async fn bad_urls_are_refused_at_once() {
        for url in ["medic", "ftp://medic/hooks", "unix:/run/medic.sock"] {
            let error = outcome_of(url, None).await.unwrap_err();
            assert!(
                matches!(error, SendError::BadUrl { .. }),
                "{url}: {error:?}"
            );
            assert!(!error.retryable());
        }
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out_and_a_non_http_one_is_refused() {
        let target = |address| Target {
            url: format!("http://{address}/hooks"),
            token: None,
        };
        let poster = Poster::new(Duration::from_millis(200)).unwrap();
        let payload = serde_json::json!({});

        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (stream, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(stream);
        });
        let error = poster.post(&target(address), &payload).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("no answer from {address} within 200ms")
        );
        assert!(error.retryable());
        held.abort();

        let ssh = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = ssh.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut stream, _) = ssh.accept().await.unwrap();
            stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
        });
        let error = poster.post(&target(address), &payload).await.unwrap_err();
        assert!(matches!(error, SendError::BadAnswer { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("no HTTP answer from {address}: ")),
            "{error}"
        );
    }
}
