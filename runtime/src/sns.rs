//! Amazon SNS deliveries to `POST /webhook/cloudwatch`: the checks that make a message
//! Amazon's, the subscription handshake, and the CloudWatch alarm taken from a notification.
//!
//! SNS signs every message with a certificate anyone can fetch, and every AWS account's
//! topics are signed with the same one, so a valid signature only says that *some* topic
//! sent the message: the topic must also be one this server was told to trust
//! (`topics`). A message is taken when, in this order:
//!
//! 1. its `TopicArn` is in `topics`;
//! 2. its `SignatureVersion` is 1 (SHA1withRSA) or 2 (SHA256withRSA);
//! 3. its `Timestamp` is no older than `max_age` (and not from the future);
//! 4. its `SigningCertURL` is `https` on a host of `cert_hosts` (by default the SNS endpoint
//!    of the topic's own region, `sns.<region>.amazonaws.com[.cn]`), with no port, query or
//!    fragment, its path `/SimpleNotificationService-<id>.pem`; plain `http` only to a
//!    loopback address that `cert_hosts` names (a test's own server);
//! 5. the certificate (fetched once per URL and cached, redirects not followed) is valid now,
//!    and its RSA key verifies the signature over the text SNS signs.
//!
//! Anything else is refused with 403, and the refusal is written to the audit log; a
//! certificate that cannot be fetched is 503 (SNS retries it). A
//! `SubscriptionConfirmation` that passes is confirmed by visiting its `SubscribeURL` (which
//! must pass the same host check); an `UnsubscribeConfirmation` is recorded. A notification
//! already taken (its `MessageId` is in the journal) is answered 200 and not taken again,
//! which is what SNS's own retries need.

use crate::engine::{Actor, Engine};
use crate::ingest::{self, SnsEnvelope, SnsType};
use crate::server::{Failure, ServerState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default of [`SnsConfig::cert_hosts`]: the SNS endpoint of the message's topic's
/// region (`{region}` is the region of its `TopicArn`), in the AWS and China partitions.
/// A wildcard would be wrong: `sns.*.amazonaws.com` also names S3's virtual-hosted
/// addresses of a bucket called `sns` (`sns.s3.amazonaws.com`), which anyone can serve.
pub const DEFAULT_CERT_HOSTS: [&str; 2] = [
    "sns.{region}.amazonaws.com",
    "sns.{region}.amazonaws.com.cn",
];
/// The default of [`SnsConfig::max_age`]: two hours, beyond the hour over which SNS retries
/// a delivery to an HTTP/S endpoint.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7_200);
/// How long a certificate URL that could not be fetched is not asked again.
const FAILED_FOR_MS: i64 = 30_000;
/// The most text of a message (a topic, an id, a URL) written to the log or the audit log.
const CLIP: usize = 200;
/// How long fetching a certificate or confirming a subscription may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest certificate read (SNS's are about 2 KiB).
const CERT_BYTES: usize = 64 << 10;
/// Certificates kept; the cache is emptied when it would grow past this.
const CACHED_CERTS: usize = 32;
/// How far in the future a timestamp may be (clocks differ).
const FUTURE_SLACK_MS: i64 = 300_000;

/// `[sources.cloudwatch]` of `medic.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsConfig {
    /// The topic ARNs whose messages are taken and whose subscriptions are confirmed.
    pub topics: Vec<String>,
    /// Hosts a signing certificate (and a subscription URL) may come from: names, in which
    /// `{region}` stands for the region of the message's topic, or IP addresses.
    pub cert_hosts: Vec<String>,
    /// The oldest `Timestamp` accepted; the replay guard remembers message ids this long.
    pub max_age: Duration,
    /// The severity of the alarms of a topic whose alarm description names none (teams often
    /// have a topic per severity); warning otherwise.
    pub severities: std::collections::BTreeMap<String, crate::normalize::Severity>,
}

impl SnsConfig {
    /// Trusts `topics`, with Amazon's certificate hosts and an hour's age.
    pub fn new(topics: Vec<String>) -> SnsConfig {
        SnsConfig {
            topics,
            cert_hosts: DEFAULT_CERT_HOSTS
                .iter()
                .map(|host| host.to_string())
                .collect(),
            max_age: DEFAULT_MAX_AGE,
            severities: std::collections::BTreeMap::new(),
        }
    }

    /// What is wrong with it, if anything.
    pub fn validate(&self) -> Result<(), String> {
        if self.topics.is_empty() {
            return Err("sources.cloudwatch.topics is empty: name the SNS topic ARNs to trust (arn:aws:sns:REGION:ACCOUNT:TOPIC)".into());
        }
        if let Some(topic) = self
            .topics
            .iter()
            .find(|topic| !topic.starts_with("arn:aws") || topic.split(':').count() != 6)
        {
            return Err(format!(
                "sources.cloudwatch.topics: {topic:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
            ));
        }
        if self.cert_hosts.is_empty() {
            return Err(
                "sources.cloudwatch.cert_hosts is empty: no certificate could be fetched".into(),
            );
        }
        if let Some(host) = self.cert_hosts.iter().find(|host| host.contains('*')) {
            return Err(format!(
                "sources.cloudwatch.cert_hosts: {host:?} has a wildcard; name the hosts, with {{region}} for the topic's region (sns.{{region}}.amazonaws.com)"
            ));
        }
        if let Some(topic) = self
            .severities
            .keys()
            .find(|topic| !self.topics.contains(topic))
        {
            return Err(format!(
                "sources.cloudwatch.severities names {topic:?}, which is not in sources.cloudwatch.topics"
            ));
        }
        if self.max_age.is_zero() {
            return Err("sources.cloudwatch.max_age_seconds must be at least 1".into());
        }
        Ok(())
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("topic {0} is not in sources.cloudwatch.topics")]
    Topic(String),
    #[error("SignatureVersion {0:?} is not 1 or 2")]
    SignatureVersion(String),
    #[error("Timestamp {0:?} is not an RFC 3339 time")]
    Timestamp(String),
    #[error("the message is {age_seconds} s old, older than the {max_seconds} s accepted")]
    Expired { age_seconds: i64, max_seconds: u64 },
    #[error("the message's Timestamp is {0} s in the future")]
    FromTheFuture(i64),
    #[error("{what} {url:?}: {reason}")]
    Url {
        what: &'static str,
        url: String,
        reason: String,
    },
    #[error("the signing certificate {url}: {reason}")]
    Certificate { url: String, reason: String },
    /// The certificate's host could not be reached or did not answer with it: maybe for a
    /// moment, so the sender should retry (503), unlike every other refusal (403).
    #[error("the signing certificate {url} is unavailable: {reason}")]
    CertificateUnavailable { url: String, reason: String },
    #[error("the signature is not base64")]
    SignatureEncoding,
    #[error("the signature does not verify with the certificate's key")]
    BadSignature,
}

/// An RSA public key (PKCS#1 DER) and until when its certificate is valid.
struct Key {
    rsa_der: Vec<u8>,
    not_before_ms: i64,
    not_after_ms: i64,
}

/// Checks SNS messages (see the module's documentation) and confirms subscriptions.
pub struct SnsVerifier {
    config: SnsConfig,
    client: reqwest::Client,
    keys: Mutex<HashMap<String, Arc<Key>>>,
    /// Certificate URLs that could not be fetched, until when they are not asked again.
    failed: Mutex<HashMap<String, (i64, Refusal)>>,
}

impl std::fmt::Debug for SnsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SnsVerifier {
    pub fn new(config: SnsConfig) -> Result<SnsVerifier, String> {
        config.validate()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|error| format!("cannot build the SNS client: {error}"))?;
        Ok(SnsVerifier {
            config,
            client,
            keys: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &SnsConfig {
        &self.config
    }

    /// Whether `message` is Amazon's, from a trusted topic, fresh and correctly signed.
    pub async fn verify(&self, message: &SnsEnvelope, now_ms: i64) -> Result<(), Refusal> {
        if !self.config.topics.contains(&message.topic_arn) {
            return Err(Refusal::Topic(clip(&message.topic_arn)));
        }
        let algorithm: &'static dyn ring::signature::VerificationAlgorithm =
            match message.signature_version.as_str() {
                "1" => &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                other => return Err(Refusal::SignatureVersion(other.to_string())),
            };
        let sent_ms = medic_compiler::units::parse_time(&message.timestamp)
            .map_err(|_| Refusal::Timestamp(message.timestamp.clone()))?;
        let age_ms = now_ms.saturating_sub(sent_ms);
        let max_ms = i64::try_from(self.config.max_age.as_millis()).unwrap_or(i64::MAX);
        if age_ms > max_ms {
            return Err(Refusal::Expired {
                age_seconds: age_ms / 1000,
                max_seconds: self.config.max_age.as_secs(),
            });
        }
        if -age_ms > FUTURE_SLACK_MS {
            return Err(Refusal::FromTheFuture(-age_ms / 1000));
        }
        let url = self.allowed_url("SigningCertURL", &message.signing_cert_url, message)?;
        let file = url
            .path()
            .strip_prefix("/SimpleNotificationService-")
            .and_then(|rest| rest.strip_suffix(".pem"));
        if !file
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_alphanumeric()))
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(Refusal::Url {
                what: "SigningCertURL",
                url: clip(&message.signing_cert_url),
                reason: "is not an SNS certificate's path (/SimpleNotificationService-<id>.pem, no query)".into(),
            });
        }
        let key = self.key(&message.signing_cert_url, now_ms).await?;
        if now_ms < key.not_before_ms || now_ms > key.not_after_ms {
            return Err(Refusal::Certificate {
                url: message.signing_cert_url.clone(),
                reason: "is not valid now".into(),
            });
        }
        let signature = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(message.signature.trim())
                .map_err(|_| Refusal::SignatureEncoding)?
        };
        ring::signature::UnparsedPublicKey::new(algorithm, &key.rsa_der)
            .verify(message.string_to_sign().as_bytes(), &signature)
            .map_err(|_| Refusal::BadSignature)
    }

    /// Visits a verified `SubscriptionConfirmation`'s `SubscribeURL`, which SNS answers with
    /// the subscription's ARN.
    pub async fn confirm(&self, message: &SnsEnvelope) -> Result<String, String> {
        let subscribe = message.subscribe_url.as_deref().unwrap_or("");
        let url = self
            .allowed_url("SubscribeURL", subscribe, message)
            .map_err(|refusal| refusal.to_string())?;
        if !url
            .query_pairs()
            .any(|(key, value)| key == "Action" && value == "ConfirmSubscription")
        {
            return Err(format!(
                "the SubscribeURL {:?} is not a ConfirmSubscription request",
                clip(subscribe)
            ));
        }
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|error| format!("visiting the SubscribeURL failed: {error}"))?;
        let status = response.status();
        let body = limited_body(response, CERT_BYTES).await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "the SubscribeURL answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
        // `<ConfirmSubscriptionResult><SubscriptionArn>...</SubscriptionArn>`.
        let text = String::from_utf8_lossy(&body);
        let arn = text
            .split_once("<SubscriptionArn>")
            .and_then(|(_, rest)| rest.split_once("</SubscriptionArn>"))
            .map(|(arn, _)| arn.trim().to_string())
            .unwrap_or_default();
        Ok(arn)
    }

    /// `text` as a URL Medic may fetch for `message`: https on an allowed host without a
    /// port, or http to an allowed loopback address.
    fn allowed_url(
        &self,
        what: &'static str,
        text: &str,
        message: &SnsEnvelope,
    ) -> Result<url::Url, Refusal> {
        let refuse = |reason: String| Refusal::Url {
            what,
            url: clip(text),
            reason,
        };
        let url = url::Url::parse(text).map_err(|error| refuse(error.to_string()))?;
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
            Some(url::Host::Ipv4(address)) => address.to_string(),
            Some(url::Host::Ipv6(address)) => address.to_string(),
            None => return Err(refuse("has no host".into())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("carries credentials".into()));
        }
        // `arn:aws:sns:REGION:ACCOUNT:TOPIC`.
        let region = message.topic_arn.split(':').nth(3).unwrap_or("");
        let allowed: Vec<String> = self
            .config
            .cert_hosts
            .iter()
            .map(|pattern| pattern.replace("{region}", region))
            .collect();
        if region.is_empty() || !allowed.iter().any(|pattern| host_matches(pattern, &host)) {
            return Err(refuse(format!(
                "host {} is not one of sources.cloudwatch.cert_hosts for this topic ({})",
                clip(&host),
                allowed.join(", ")
            )));
        }
        let loopback = host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback());
        if url.port().is_some() && !loopback {
            return Err(refuse("has a port".into()));
        }
        match url.scheme() {
            "https" => Ok(url),
            "http" if loopback => Ok(url),
            other => Err(refuse(format!("is {other}, not https"))),
        }
    }

    /// The key of the certificate at `url`, from the cache (while valid) or fetched.
    async fn key(&self, url: &str, now_ms: i64) -> Result<Arc<Key>, Refusal> {
        if let Ok(mut keys) = self.keys.lock()
            && let Some(key) = keys.get(url).cloned()
        {
            if now_ms <= key.not_after_ms {
                return Ok(key);
            }
            // Expired: fetched again, in case it was replaced at the same address.
            keys.remove(url);
        }
        if let Ok(mut failed) = self.failed.lock() {
            failed.retain(|_, (until, _)| *until > now_ms);
            if let Some((_, refusal)) = failed.get(url) {
                return Err(refusal.clone());
            }
        }
        let fetched = self.fetch_key(url).await;
        if let Err(refusal @ Refusal::CertificateUnavailable { .. }) = &fetched
            && let Ok(mut failed) = self.failed.lock()
        {
            if failed.len() >= CACHED_CERTS {
                failed.clear();
            }
            failed.insert(
                url.to_string(),
                (now_ms.saturating_add(FAILED_FOR_MS), refusal.clone()),
            );
        }
        fetched
    }

    async fn fetch_key(&self, url: &str) -> Result<Arc<Key>, Refusal> {
        let unavailable = |reason: String| Refusal::CertificateUnavailable {
            url: url.to_string(),
            reason,
        };
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|error| unavailable(format!("fetching it failed: {error}")))?;
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "its host answered {}",
                response.status()
            )));
        }
        let pem = limited_body(response, CERT_BYTES)
            .await
            .map_err(|reason| match reason {
                BodyError::Read(reason) => unavailable(reason),
                BodyError::TooLarge(reason) => Refusal::Certificate {
                    url: url.to_string(),
                    reason,
                },
            })?;
        let key = Arc::new(
            parse_certificate(&pem).map_err(|reason| Refusal::Certificate {
                url: url.to_string(),
                reason,
            })?,
        );
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= CACHED_CERTS {
                keys.clear();
            }
            keys.insert(url.to_string(), Arc::clone(&key));
        }
        Ok(key)
    }
}

/// A PEM certificate's RSA key and validity.
fn parse_certificate(pem: &[u8]) -> Result<Key, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|error| format!("is not a PEM certificate: {error}"))?;
    let certificate = pem
        .parse_x509()
        .map_err(|error| format!("is not an X.509 certificate: {error}"))?;
    let public_key = certificate.public_key();
    if public_key.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err("does not hold an RSA key".into());
    }
    let validity = certificate.validity();
    Ok(Key {
        rsa_der: public_key.subject_public_key.data.to_vec(),
        not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
        not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
    })
}

/// Why a body was not read.
enum BodyError {
    /// The connection failed or timed out: maybe for a moment.
    Read(String),
    TooLarge(String),
}

/// A response's body, at most `limit` bytes.
async fn limited_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| BodyError::Read(format!("reading it failed: {error}")))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(format!("is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most [`CLIP`] characters of text a sender chose, for the log and the audit log.
fn clip(text: &str) -> String {
    match text.char_indices().nth(CLIP) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or("")),
        None => text.to_string(),
    }
}

/// Whether `host` is `pattern`: the same name (in any case), or the same address.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let pattern = pattern.trim_matches(['[', ']']);
    if let (Ok(pattern), Ok(host)) = (pattern.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        return pattern == host;
    }
    !pattern.is_empty() && pattern == host.to_ascii_lowercase()
}

/// Who the audit log says acted: SNS, through the webhook.
fn sns_actor() -> Actor {
    Actor {
        name: "sns".into(),
        role: "sender",
        groups: crate::engine::ApprovalGroups::Member(std::collections::BTreeSet::new()),
        via: "webhook",
    }
}

/// `POST /webhook/cloudwatch`: an SNS message, checked, then handled by its type.
pub(crate) async fn webhook(
    State(state): State<Arc<ServerState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let Some(verifier) = state.auth.sns.clone() else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            "the cloudwatch webhook is not configured: add [sources.cloudwatch] topics = [\"arn:aws:sns:...\"] to medic.toml".into(),
        ));
    };
    let body = crate::server::body_bytes(&state, body)?;
    let message = ingest::sns_envelope(&body).map_err(|error| {
        tracing::info!(source = "cloudwatch", %error, "payload refused");
        Failure(StatusCode::BAD_REQUEST, error.to_string())
    })?;
    let engine = &state.engine;
    let action = match message.kind {
        SnsType::Notification => "sns.notification",
        SnsType::SubscriptionConfirmation => "sns.subscribe",
        SnsType::UnsubscribeConfirmation => "sns.unsubscribe",
    };
    let detail = format!(
        "topic {} message {}",
        clip(&message.topic_arn),
        clip(&message.message_id)
    );
    if let Err(refusal) = verifier.verify(&message, engine.clock().now_ms()).await {
        if let Refusal::CertificateUnavailable { .. } = refusal {
            // Nothing is wrong with the message that we know of: SNS retries a 5xx.
            tracing::warn!(%detail, refusal = %clip(&refusal.to_string()), "SNS message not verifiable now");
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("SNS message not checked: {refusal}"),
            ));
        }
        let reason = clip(&refusal.to_string());
        tracing::warn!(%detail, %reason, "SNS message refused");
        engine
            .audit(&sns_actor(), action, None, None, detail, Some(reason))
            .await;
        return Err(Failure(
            StatusCode::FORBIDDEN,
            format!("SNS message refused: {refusal}"),
        ));
    }
    match message.kind {
        SnsType::SubscriptionConfirmation => {
            let confirmed = verifier.confirm(&message).await;
            let error = confirmed.as_ref().err().cloned();
            tracing::info!(topic = %message.topic_arn, ?error, "SNS subscription confirmation");
            engine
                .audit(&sns_actor(), action, None, None, detail, error.clone())
                .await;
            match confirmed {
                Ok(subscription) => Ok(Json(json!({
                    "confirmed": message.topic_arn,
                    "subscription": subscription,
                }))
                .into_response()),
                Err(error) => Err(Failure(StatusCode::BAD_GATEWAY, error)),
            }
        }
        SnsType::UnsubscribeConfirmation => {
            tracing::warn!(topic = %message.topic_arn, "SNS says the subscription was removed");
            engine
                .audit(&sns_actor(), action, None, None, detail, None)
                .await;
            Ok(Json(json!({ "unsubscribed": message.topic_arn })).into_response())
        }
        SnsType::Notification => notification(engine, verifier.config(), message).await,
    }
}

/// A verified notification: its alarm journaled and queued once, whatever SNS's retries.
async fn notification(
    engine: &Engine,
    config: &SnsConfig,
    message: SnsEnvelope,
) -> Result<Response, Failure> {
    let id = message.message_id.clone();
    let seen = engine
        .journal()
        .call_urgent(move |journal| journal.sns_seen(&id))
        .await
        .map_err(crate::engine::EngineError::from)?;
    if seen {
        return Ok(
            Json(json!({ "accepted": 0, "alerts": [], "duplicate": message.message_id }))
                .into_response(),
        );
    }
    let topic_severity = config.severities.get(&message.topic_arn).copied();
    let alert = ingest::cloudwatch_alarm(&message.message, topic_severity).map_err(|error| {
        tracing::info!(source = "cloudwatch", %error, "payload refused");
        Failure(StatusCode::BAD_REQUEST, error.to_string())
    })?;
    let alerts: Vec<ingest::Alert> = alert.into_iter().collect();
    let count = alerts.len();
    let ids = if alerts.is_empty() {
        Vec::new()
    } else {
        let engine = engine.clone();
        // The alarm's episode: see `ingest::episode_join`.
        tokio::spawn(async move { engine.ingest("cloudwatch", alerts).await })
            .await
            .map_err(|error| Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))??
    };
    // Recorded only once the alarm is on disk: a crash in between makes SNS's retry take it
    // again (one episode, so one run), never lose it.
    let now = engine.clock().now_ms();
    let keep_ms = i64::try_from(config.max_age.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_add(FUTURE_SLACK_MS);
    let topic = message.topic_arn.clone();
    let id = message.message_id.clone();
    engine
        .journal()
        .call_urgent(move |journal| {
            journal.sns_taken(&id, &topic, now, now.saturating_sub(keep_ms))
        })
        .await
        .map_err(crate::engine::EngineError::from)?;
    let answer = if count == 0 {
        json!({ "accepted": 0, "alerts": ids, "ignored": "INSUFFICIENT_DATA is neither firing nor resolved" })
    } else {
        json!({ "accepted": count, "alerts": ids })
    };
    Ok(Json(answer).into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_or_addresses_exactly() {
        assert!(host_matches(
            "sns.eu-west-1.amazonaws.com",
            "SNS.eu-west-1.amazonaws.com"
        ));
        assert!(!host_matches(
            "sns.eu-west-1.amazonaws.com",
            "sns.eu-west-1.amazonaws.com.evil.example"
        ));
        assert!(host_matches("127.0.0.1", "127.0.0.1"));
        assert!(host_matches("[::1]", "::1"));
        assert!(!host_matches("127.0.0.1", "127.0.0.2"));
    }

    #[test]
    fn urls_must_be_https_on_the_topics_own_sns_host() {
        let topic = "arn:aws:sns:eu-west-1:123456789012:t";
        let mut config = SnsConfig::new(vec![topic.into()]);
        config.cert_hosts.push("127.0.0.1".into());
        let verifier = SnsVerifier::new(config).unwrap();
        let message = SnsEnvelope {
            kind: SnsType::Notification,
            message_id: "m".into(),
            topic_arn: topic.into(),
            subject: None,
            message: "{}".into(),
            timestamp: "2026-12-01T10:00:00Z".into(),
            signature_version: "2".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: None,
            token: None,
        };
        let url = |text: &str| {
            verifier
                .allowed_url("SigningCertURL", text, &message)
                .map(|_| ())
        };
        assert!(url("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem").is_ok());
        assert!(url("http://127.0.0.1:8080/SimpleNotificationService-1.pem").is_ok());
        for (bad, says) in [
            ("http://sns.eu-west-1.amazonaws.com/x.pem", "not https"),
            // Another region's endpoint than the topic's, S3's addresses of a bucket called
            // `sns`, and look-alikes.
            ("https://sns.us-east-1.amazonaws.com/x.pem", "not one of"),
            ("https://sns.s3.amazonaws.com/x.pem", "not one of"),
            (
                "https://sns.s3-accelerate.amazonaws.com/x.pem",
                "not one of",
            ),
            (
                "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
                "not one of",
            ),
            (
                "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
                "has a port",
            ),
            (
                "https://user:pw@sns.eu-west-1.amazonaws.com/x.pem",
                "credentials",
            ),
            ("not a url", "relative URL"),
        ] {
            let refusal = url(bad).unwrap_err().to_string();
            assert!(refusal.contains(says), "{bad}: {refusal}");
        }
    }

    #[test]
    fn a_config_without_topics_with_a_wrong_arn_or_a_wildcard_is_refused() {
        assert!(
            SnsConfig::new(Vec::new())
                .validate()
                .unwrap_err()
                .contains("topics is empty")
        );
        assert!(
            SnsConfig::new(vec!["my-topic".into()])
                .validate()
                .unwrap_err()
                .contains("not an SNS topic ARN")
        );
        let mut config = SnsConfig::new(vec!["arn:aws:sns:eu-west-1:123456789012:t".into()]);
        config.cert_hosts = vec!["sns.*.amazonaws.com".into()];
        assert!(config.validate().unwrap_err().contains("wildcard"));
    }

    #[test]
    fn sender_text_is_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "x".repeat(1_000);
        assert_eq!(clip(&long).chars().count(), CLIP + 1);
    }
}
