//! Amazon SNS as an HTTP subscriber sees it: messages signed the way SNS signs them
//! (SignatureVersion 1, SHA1withRSA, and 2, SHA256withRSA, over the documented
//! `Key\nValue\n` text), the signing certificate served on loopback, and the subscription
//! URL that confirms a subscription.
//!
//! The key and its self-signed certificate (`sns/test-key.pem`, `sns/test-cert.pem`, valid
//! until 2126) were made for these tests with
//! `openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=sns.medic.test`; they
//! sign nothing else.

use crate::serving::Background;
use axum::extract::{Query, State};
use axum::routing::get;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The (topic, token) pairs confirmed.
type Confirmed = Arc<Mutex<Vec<(String, String)>>>;

const KEY_PEM: &str = include_str!("sns/test-key.pem");
/// The certificate Medic is to fetch and trust.
pub const CERT_PEM: &str = include_str!("sns/test-cert.pem");

/// Why the sandbox's SNS could not start.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    #[error("cannot listen on loopback: {0}")]
    Listen(#[from] std::io::Error),
    #[error("the test key is unreadable: {0}")]
    Key(String),
}

/// Which signature SNS puts on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// SHA1withRSA.
    V1,
    /// SHA256withRSA.
    V2,
}

impl SignatureVersion {
    fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::V1 => "1",
            SignatureVersion::V2 => "2",
        }
    }
}

/// The sandbox's SNS: serves `GET /SimpleNotificationService-test.pem` and
/// `GET /?Action=ConfirmSubscription&TopicArn=...&Token=...` on 127.0.0.1, and signs
/// messages. Dropping it stops it.
pub struct FakeSns {
    url: String,
    key: rsa::RsaPrivateKey,
    confirmed: Confirmed,
    _served: Background,
}

impl FakeSns {
    pub async fn start() -> Result<FakeSns, SnsError> {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(KEY_PEM)
            .map_err(|error| SnsError::Key(error.to_string()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let confirmed: Confirmed = Arc::default();
        let app = axum::Router::new()
            .route(
                "/SimpleNotificationService-test.pem",
                get(|| async { CERT_PEM }),
            )
            // What a wrong certificate URL might serve.
            .route(
                "/SimpleNotificationService-garbage.pem",
                get(|| async { "<html>hello</html>" }),
            )
            .route("/", get(confirm))
            .with_state(Arc::clone(&confirmed));
        Ok(FakeSns {
            url,
            key,
            confirmed,
            _served: Background::serve(listener, app, "the sandbox's SNS"),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where its messages say their certificate is.
    pub fn cert_url(&self) -> String {
        format!("{}/SimpleNotificationService-test.pem", self.url)
    }

    /// The (topic, token) pairs whose subscription was confirmed, in order.
    pub fn confirmed(&self) -> Vec<(String, String)> {
        self.confirmed
            .lock()
            .map(|confirmed| confirmed.clone())
            .unwrap_or_default()
    }

    /// A signed `Notification` of `message` from `topic`, sent at `timestamp` (RFC 3339),
    /// with a `Subject` as CloudWatch's have.
    pub fn notification(
        &self,
        topic: &str,
        message_id: &str,
        message: &str,
        timestamp: &str,
        version: SignatureVersion,
    ) -> serde_json::Value {
        self.signed_notification(
            topic,
            message_id,
            Some("ALARM: CloudWatch alarm"),
            message,
            timestamp,
            version,
        )
    }

    /// A signed `Notification` without a `Subject`: SNS then leaves it out of the message
    /// and of the text it signs.
    pub fn notification_without_subject(
        &self,
        topic: &str,
        message_id: &str,
        message: &str,
        timestamp: &str,
        version: SignatureVersion,
    ) -> serde_json::Value {
        self.signed_notification(topic, message_id, None, message, timestamp, version)
    }

    fn signed_notification(
        &self,
        topic: &str,
        message_id: &str,
        subject: Option<&str>,
        message: &str,
        timestamp: &str,
        version: SignatureVersion,
    ) -> serde_json::Value {
        let mut signed = vec![("Message", message), ("MessageId", message_id)];
        if let Some(subject) = subject {
            signed.push(("Subject", subject));
        }
        signed.extend([
            ("Timestamp", timestamp),
            ("TopicArn", topic),
            ("Type", "Notification"),
        ]);
        let mut body = json!({
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic,
            "Message": message,
            "Timestamp": timestamp,
            "SignatureVersion": version.as_str(),
            "Signature": self.sign(&signed, version),
            "SigningCertURL": self.cert_url(),
            "UnsubscribeURL": format!("{}/?Action=Unsubscribe&SubscriptionArn={topic}:sub", self.url),
        });
        if let (Some(subject), Some(object)) = (subject, body.as_object_mut()) {
            object.insert("Subject".into(), json!(subject));
        }
        body
    }

    /// A signed `SubscriptionConfirmation` (or, with `unsubscribe`, an
    /// `UnsubscribeConfirmation`) for `topic`.
    pub fn confirmation(
        &self,
        topic: &str,
        token: &str,
        timestamp: &str,
        unsubscribe: bool,
        version: SignatureVersion,
    ) -> serde_json::Value {
        let kind = if unsubscribe {
            "UnsubscribeConfirmation"
        } else {
            "SubscriptionConfirmation"
        };
        let message = format!(
            "You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
        );
        let subscribe_url = format!(
            "{}/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}",
            self.url
        );
        let message_id = format!("confirm-{token}");
        let signed = [
            ("Message", message.as_str()),
            ("MessageId", message_id.as_str()),
            ("SubscribeURL", subscribe_url.as_str()),
            ("Timestamp", timestamp),
            ("Token", token),
            ("TopicArn", topic),
            ("Type", kind),
        ];
        json!({
            "Type": kind,
            "MessageId": message_id,
            "Token": token,
            "TopicArn": topic,
            "Message": message,
            "SubscribeURL": subscribe_url,
            "Timestamp": timestamp,
            "SignatureVersion": version.as_str(),
            "Signature": self.sign(&signed, version),
            "SigningCertURL": self.cert_url(),
        })
    }

    /// The base64 signature of `fields` as SNS writes it: `Key\nValue\n` for each.
    fn sign(&self, fields: &[(&str, &str)], version: SignatureVersion) -> String {
        let mut text = String::new();
        for (key, value) in fields {
            text.push_str(key);
            text.push('\n');
            text.push_str(value);
            text.push('\n');
        }
        let signature = match version {
            SignatureVersion::V1 => SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec(),
            SignatureVersion::V2 => SigningKey::<sha2::Sha256>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec(),
        };
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(signature)
    }
}

/// `GET /?Action=ConfirmSubscription&TopicArn=...&Token=...`: SNS's answer, recorded.
async fn confirm(
    State(confirmed): State<Confirmed>,
    Query(query): Query<HashMap<String, String>>,
) -> (axum::http::StatusCode, String) {
    let (Some("ConfirmSubscription"), Some(topic), Some(token)) = (
        query.get("Action").map(String::as_str),
        query.get("TopicArn"),
        query.get("Token"),
    ) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "<ErrorResponse><Error><Code>InvalidParameter</Code></Error></ErrorResponse>".into(),
        );
    };
    if let Ok(mut confirmed) = confirmed.lock() {
        confirmed.push((topic.clone(), token.clone()));
    }
    (
        axum::http::StatusCode::OK,
        format!(
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>{topic}:0f1e2d3c</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
        ),
    )
}
