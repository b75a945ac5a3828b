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
//! 4. its `SigningCertURL` is `https` on a host matching `cert_hosts` (by default the SNS
//!    endpoints `sns.<region>.amazonaws.com[.cn]`), its path a `.pem` file; plain `http` only
//!    to a loopback address that `cert_hosts` names (a test's own server);
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

/// The default of [`SnsConfig::cert_hosts`]: Amazon SNS's endpoints, in every region and in
/// the China partition.
pub const DEFAULT_CERT_HOSTS: [&str; 2] = ["sns.*.amazonaws.com", "sns.*.amazonaws.com.cn"];
/// The default of [`SnsConfig::max_age`]: an hour.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3_600);
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
    /// Hosts a signing certificate (and a subscription URL) may come from: names whose `*`
    /// stands for exactly one label, or IP addresses.
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
        })
    }

    pub fn config(&self) -> &SnsConfig {
        &self.config
    }

    /// Whether `message` is Amazon's, from a trusted topic, fresh and correctly signed.
    pub async fn verify(&self, message: &SnsEnvelope, now_ms: i64) -> Result<(), Refusal> {
        if !self.config.topics.contains(&message.topic_arn) {
            return Err(Refusal::Topic(message.topic_arn.clone()));
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
        let url = self.allowed_url("SigningCertURL", &message.signing_cert_url)?;
        if !url.path().ends_with(".pem") {
            return Err(Refusal::Url {
                what: "SigningCertURL",
                url: message.signing_cert_url.clone(),
                reason: "is not a .pem file".into(),
            });
        }
        let key = self.key(&message.signing_cert_url).await?;
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
            .allowed_url("SubscribeURL", subscribe)
            .map_err(|refusal| refusal.to_string())?;
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

    /// `text` as a URL Medic may fetch: https on an allowed host, or http to an allowed
    /// loopback address.
    fn allowed_url(&self, what: &'static str, text: &str) -> Result<url::Url, Refusal> {
        let refuse = |reason: String| Refusal::Url {
            what,
            url: text.to_string(),
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
        if !self
            .config
            .cert_hosts
            .iter()
            .any(|pattern| host_matches(pattern, &host))
        {
            return Err(refuse(format!(
                "host {host} does not match sources.cloudwatch.cert_hosts ({})",
                self.config.cert_hosts.join(", ")
            )));
        }
        let loopback = host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback());
        match url.scheme() {
            "https" => Ok(url),
            "http" if loopback => Ok(url),
            other => Err(refuse(format!("is {other}, not https"))),
        }
    }

    /// The key of the certificate at `url`, from the cache or fetched.
    async fn key(&self, url: &str) -> Result<Arc<Key>, Refusal> {
        if let Some(key) = self
            .keys
            .lock()
            .ok()
            .and_then(|keys| keys.get(url).cloned())
        {
            return Ok(key);
        }
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
        let pem =
            limited_body(response, CERT_BYTES)
                .await
                .map_err(|reason| Refusal::Certificate {
                    url: url.to_string(),
                    reason,
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

/// A response's body, at most `limit` bytes.
async fn limited_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("could not be read: {error}"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether `host` matches `pattern`: the same labels, where a `*` label stands for any one
/// label (`sns.*.amazonaws.com` matches `sns.eu-west-1.amazonaws.com`, not
/// `bucket.s3.amazonaws.com` nor `sns.a.b.amazonaws.com`); an address matches itself.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let pattern = pattern.trim_matches(['[', ']']);
    if let (Ok(pattern), Ok(host)) = (pattern.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        return pattern == host;
    }
    let wanted: Vec<&str> = pattern.split('.').collect();
    let given: Vec<&str> = host.split('.').collect();
    wanted.len() == given.len()
        && wanted.iter().zip(&given).all(|(wanted, given)| {
            !given.is_empty()
                && (*wanted == *given
                    || (*wanted == "*"
                        && given
                            .bytes()
                            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')))
        })
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
    let detail = format!("topic {} message {}", message.topic_arn, message.message_id);
    if let Err(refusal) = verifier.verify(&message, engine.clock().now_ms()).await {
        if let Refusal::CertificateUnavailable { .. } = refusal {
            // Nothing is wrong with the message that we know of: SNS retries a 5xx.
            tracing::warn!(topic = %message.topic_arn, message_id = %message.message_id, %refusal, "SNS message not verifiable now");
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("SNS message not checked: {refusal}"),
            ));
        }
        tracing::warn!(topic = %message.topic_arn, message_id = %message.message_id, %refusal, "SNS message refused");
        engine
            .audit(
                &sns_actor(),
                action,
                None,
                None,
                detail,
                Some(refusal.to_string()),
            )
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
        .call(move |journal| journal.sns_seen(&id))
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
    let mut alerts: Vec<ingest::Alert> = alert.into_iter().collect();
    // An OK message does not say when the alarm went off: it ends the episode its alarm's
    // ALARM message opened. An ALARM while the alarm's episode is open (ALARM,
    // INSUFFICIENT_DATA, ALARM again, never OK) belongs to it too.
    crate::server::join_open_episodes(engine, &mut alerts, |_| true).await?;
    let count = alerts.len();
    let ids = if alerts.is_empty() {
        Vec::new()
    } else {
        let engine = engine.clone();
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
        .call(move |journal| journal.sns_taken(&id, &topic, now, now.saturating_sub(keep_ms)))
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
    fn a_star_stands_for_one_label_and_addresses_for_themselves() {
        assert!(host_matches(
            "sns.*.amazonaws.com",
            "sns.eu-west-1.amazonaws.com"
        ));
        assert!(host_matches(
            "sns.*.amazonaws.com.cn",
            "sns.cn-north-1.amazonaws.com.cn"
        ));
        assert!(!host_matches(
            "sns.*.amazonaws.com",
            "bucket.s3.amazonaws.com"
        ));
        assert!(!host_matches(
            "sns.*.amazonaws.com",
            "sns.a.b.amazonaws.com"
        ));
        assert!(!host_matches(
            "sns.*.amazonaws.com",
            "sns.eu-west-1.amazonaws.com.evil.example"
        ));
        assert!(!host_matches("sns.*.amazonaws.com", "sns..amazonaws.com"));
        assert!(host_matches("127.0.0.1", "127.0.0.1"));
        assert!(!host_matches("127.0.0.1", "127.0.0.2"));
    }

    #[test]
    fn urls_must_be_https_on_an_allowed_host() {
        let mut config = SnsConfig::new(vec!["arn:aws:sns:eu-west-1:123456789012:t".into()]);
        config.cert_hosts.push("127.0.0.1".into());
        let verifier = SnsVerifier::new(config).unwrap();
        let url = |text: &str| verifier.allowed_url("SigningCertURL", text).map(|_| ());
        assert!(url("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem").is_ok());
        assert!(url("http://127.0.0.1:8080/cert.pem").is_ok());
        for (bad, says) in [
            ("http://sns.eu-west-1.amazonaws.com/x.pem", "not https"),
            ("https://evil.example/x.pem", "does not match"),
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
    fn a_config_without_topics_or_with_a_wrong_arn_is_refused() {
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
    }
}
