//! The receiver against real clients: mail sent with `lettre` as Medic sends it, raw SMTP
//! sessions for the protocol's corners, Slack and webhook posts with `reqwest`; and the
//! content decoders on their own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use super::*;
use lettre::AsyncTransport;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A raw SMTP client: writes lines, reads whole (multi-line) replies.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects and returns the greeting with the client.
    async fn connect(address: SocketAddr) -> (Client, String) {
        let (reader, writer) = TcpStream::connect(address).await.unwrap().into_split();
        let mut client = Client {
            reader: BufReader::new(reader),
            writer,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Sends bytes as they are (the caller writes the line breaks).
    async fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// Sends one command line and reads its reply.
    async fn send(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// One reply, its lines joined with `\n`, without the final line break.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                    .await
                    .expect("a reply within 10 s")
                    .unwrap();
            assert!(read > 0, "connection closed; replies so far: {lines:?}");
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// The reply code of `send`.
    async fn code(&mut self, line: &str) -> u16 {
        let reply = self.send(line).await;
        reply[..3]
            .parse()
            .unwrap_or_else(|_| panic!("no code in {reply:?}"))
    }

    /// Waits until the server closes the connection (after QUIT or a 421).
    async fn closed(&mut self) {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), self.reader.read_to_end(&mut rest))
                .await
                .expect("closed within 10 s")
                .unwrap();
        assert_eq!(
            read,
            0,
            "more after the end: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

fn email(from: &str, to: &[&str], subject: &str, body: &str) -> Message {
    Message::Email {
        from: from.to_string(),
        to: to.iter().map(ToString::to_string).collect(),
        subject: subject.to_string(),
        body: body.to_string(),
    }
}

fn transport(receiver: &Receiver) -> lettre::AsyncSmtpTransport<lettre::Tokio1Executor> {
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(receiver.smtp_address().port())
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

/// A mail as Medic's `notify.email` builds one (runtime/src/adapters/smtp.rs).
fn medic_mail(subject: &str, to: &[&str], body: &str) -> lettre::Message {
    let mut builder = lettre::Message::builder()
        .from("Medic <medic@example.com>".parse().unwrap())
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for recipient in to {
        builder = builder.to(recipient.parse().unwrap());
    }
    builder.body(body.to_string()).unwrap()
}

#[tokio::test]
async fn lettre_mail_with_a_utf8_subject_and_two_recipients() {
    let receiver = Receiver::start().await.unwrap();
    let mut announced = receiver.subscribe();
    let subject = "disk_full on node-3 → cleaned up";
    let body = "Freed 12 GiB → /var is at 61 %.\nNothing else to do.";
    let to = ["oncall@example.com", "Storage Team <storage@example.com>"];
    let mail = medic_mail(subject, &to, body);
    let formatted = String::from_utf8(mail.formatted()).unwrap();
    // What lettre writes for non-ASCII text, so the test covers the decoding it needs.
    assert!(formatted.contains("=?utf-8?b?"), "{formatted}");
    assert!(
        formatted.contains("Content-Transfer-Encoding: quoted-printable"),
        "{formatted}"
    );
    let response = transport(&receiver).send(mail).await.unwrap();
    assert_eq!(response.code().to_string(), "250");
    let expected = email(
        "medic@example.com",
        &["oncall@example.com", "storage@example.com"],
        subject,
        body,
    );
    assert_eq!(receiver.messages(), vec![expected.clone()]);
    assert_eq!(announced.recv().await.unwrap(), expected);
    receiver.stop().await;
}

#[tokio::test]
async fn lettre_folded_subject_and_base64_body() {
    let receiver = Receiver::start().await.unwrap();
    // Long enough to be folded over several encoded-words; mostly non-ASCII, so lettre
    // picks base64 for the body.
    let subject = format!("{} — {}", "ünïcödé ".repeat(12).trim_end(), "end");
    let body = format!("{}\n→ second line\n", "→←↑↓".repeat(40));
    let mail = medic_mail(&subject, &["a@example.com"], &body);
    let formatted = String::from_utf8(mail.formatted()).unwrap();
    assert!(formatted.contains("?=\r\n =?utf-8?b?"), "{formatted}");
    assert!(
        formatted.contains("Content-Transfer-Encoding: base64"),
        "{formatted}"
    );
    transport(&receiver).send(mail).await.unwrap();
    // A body's own final line break is kept; the one ending the last line is not.
    assert_eq!(
        receiver.messages(),
        vec![email(
            "medic@example.com",
            &["a@example.com"],
            &subject,
            body.strip_suffix('\n').unwrap()
        )]
    );
    receiver.stop().await;
}

#[tokio::test]
async fn medic_doctor_check_connects_greets_and_quits() {
    // `Mailer::check`: connect, EHLO, QUIT, without sending.
    let receiver = Receiver::start().await.unwrap();
    let stream = TcpStream::connect(receiver.smtp_address()).await.unwrap();
    let hello = lettre::transport::smtp::extension::ClientId::Domain("medic.test".into());
    let mut connection =
        lettre::transport::smtp::client::AsyncSmtpConnection::connect_with_transport(
            Box::new(stream),
            &hello,
        )
        .await
        .unwrap();
    let info = connection.server_info();
    assert!(info.supports_feature(lettre::transport::smtp::extension::Extension::EightBitMime));
    assert!(!info.supports_feature(lettre::transport::smtp::extension::Extension::StartTls));
    assert_eq!(connection.quit().await.unwrap().code().to_string(), "221");
    assert_eq!(receiver.messages(), vec![]);
    receiver.stop().await;
}

#[tokio::test]
async fn raw_session_sequence_rset_and_dot_unstuffing() {
    let receiver = Receiver::start().await.unwrap();
    let (mut client, greeting) = Client::connect(receiver.smtp_address()).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    // Out of sequence before any greeting.
    assert_eq!(client.code("MAIL FROM:<a@example.com>").await, 503);
    assert_eq!(client.code("EHLO").await, 501);
    let ehlo = client.send("EHLO client.test").await;
    let lines: Vec<&str> = ehlo.lines().collect();
    assert!(lines[0].starts_with("250-localhost"), "{ehlo}");
    assert!(lines.contains(&"250-8BITMIME"), "{ehlo}");
    assert!(lines.iter().any(|line| line.contains("SIZE ")), "{ehlo}");
    assert!(
        !ehlo.contains("PIPELINING") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert!(lines.last().unwrap().starts_with("250 "), "{ehlo}");
    assert_eq!(client.code("RCPT TO:<b@example.com>").await, 503);
    assert_eq!(client.code("DATA").await, 503);
    assert_eq!(client.code("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(client.code("MAIL FROM:<a@example.com>").await, 503);
    assert_eq!(client.code("DATA").await, 503);
    assert_eq!(client.code("RCPT TO:<b@example.com>").await, 250);
    // RSET ends the transaction: DATA is out of sequence again.
    assert_eq!(client.code("RSET").await, 250);
    assert_eq!(client.code("DATA").await, 503);
    assert_eq!(client.code("NOOP").await, 250);
    assert_eq!(client.code("VRFY someone").await, 252);
    assert_eq!(client.code("FROB").await, 500);
    assert_eq!(client.code("STARTTLS").await, 502);
    assert_eq!(client.code("MAIL FROM:a@example.com").await, 501);
    assert_eq!(client.code("MAIL FROM:<a@example.com> FOO=1").await, 555);
    // An over-long command is refused and the session stays in step.
    let long = format!("NOOP {}", "x".repeat(600));
    assert_eq!(client.code(&long).await, 500);
    assert_eq!(client.code("NOOP").await, 250);
    // The null reverse-path, a source route, then a mail whose lines start with dots.
    assert_eq!(client.code("mail from:<> BODY=8BITMIME").await, 250);
    assert_eq!(
        client.code("RCPT TO:<@relay.test:b@example.com>").await,
        250
    );
    assert_eq!(client.code("RCPT TO:<c@example.com>").await, 250);
    assert_eq!(client.code("DATA").await, 354);
    client
        .write(b"Subject: dots\r\n\r\n..one\r\n...\r\nplain\r\n.\r\n")
        .await;
    assert!(client.reply().await.starts_with("250 "));
    assert_eq!(client.code("QUIT").await, 221);
    client.closed().await;
    assert_eq!(
        receiver.messages(),
        vec![email(
            "",
            &["b@example.com", "c@example.com"],
            "dots",
            ".one\n..\nplain"
        )]
    );
    receiver.stop().await;
}

/// A session that has sent EHLO, MAIL and RCPT and is ready for DATA.
async fn ready_for_data(address: SocketAddr) -> Client {
    let (mut client, _) = Client::connect(address).await;
    assert_eq!(client.code("EHLO client.test").await, 250);
    assert_eq!(client.code("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(client.code("RCPT TO:<b@example.com>").await, 250);
    client
}

#[tokio::test]
async fn over_long_data_line_and_undecodable_body_are_refused() {
    let receiver = Receiver::start().await.unwrap();
    let mut client = ready_for_data(receiver.smtp_address()).await;
    assert_eq!(client.code("DATA").await, 354);
    let long = "y".repeat(1200);
    client
        .write(format!("Subject: long\r\n\r\n{long}\r\nafter\r\n.\r\n").as_bytes())
        .await;
    assert!(client.reply().await.starts_with("500 "));
    // The transaction is over; a new one works on the same connection, and a body that
    // says base64 but is not is refused.
    assert_eq!(client.code("DATA").await, 503);
    assert_eq!(client.code("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(client.code("RCPT TO:<b@example.com>").await, 250);
    assert_eq!(client.code("DATA").await, 354);
    client
        .write(b"Subject: bad\r\nContent-Transfer-Encoding: base64\r\n\r\n*not base64*\r\n.\r\n")
        .await;
    let reply = client.reply().await;
    assert!(
        reply.starts_with("554 ") && reply.contains("base64"),
        "{reply}"
    );
    assert_eq!(client.code("QUIT").await, 221);
    assert_eq!(receiver.messages(), vec![]);
    receiver.stop().await;
}

fn small(limits: SmtpLimits) -> ReceiverConfig {
    ReceiverConfig {
        smtp: limits,
        ..ReceiverConfig::default()
    }
}

#[tokio::test]
async fn message_size_limit() {
    let receiver = Receiver::start_with(small(SmtpLimits {
        message_bytes: 1000,
        ..SmtpLimits::default()
    }))
    .await
    .unwrap();
    let (mut client, _) = Client::connect(receiver.smtp_address()).await;
    assert!(client.send("EHLO client.test").await.contains("SIZE 1000"));
    assert_eq!(
        client.code("MAIL FROM:<a@example.com> SIZE=5000").await,
        552
    );
    assert_eq!(
        client
            .code("MAIL FROM:<a@example.com> SIZE=99999999999999999999999")
            .await,
        552
    );
    assert_eq!(client.code("MAIL FROM:<a@example.com> SIZE=900").await, 250);
    assert_eq!(client.code("RCPT TO:<b@example.com>").await, 250);
    assert_eq!(client.code("DATA").await, 354);
    let line = "z".repeat(98);
    let mut data = String::from("Subject: big\r\n\r\n");
    for _ in 0..30 {
        data.push_str(&line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    client.write(data.as_bytes()).await;
    assert!(client.reply().await.starts_with("552 "));
    assert_eq!(client.code("NOOP").await, 250);
    assert_eq!(receiver.messages(), vec![]);
    receiver.stop().await;
}

#[tokio::test]
async fn too_many_recipients_is_452() {
    let receiver = Receiver::start_with(small(SmtpLimits {
        recipients: 2,
        ..SmtpLimits::default()
    }))
    .await
    .unwrap();
    let mut client = ready_for_data(receiver.smtp_address()).await;
    assert_eq!(client.code("RCPT TO:<c@example.com>").await, 250);
    assert_eq!(client.code("RCPT TO:<d@example.com>").await, 452);
    receiver.stop().await;
}

#[tokio::test]
async fn idle_connection_is_closed_with_421() {
    let receiver = Receiver::start_with(small(SmtpLimits {
        idle_timeout: Duration::from_millis(200),
        ..SmtpLimits::default()
    }))
    .await
    .unwrap();
    let (mut client, _) = Client::connect(receiver.smtp_address()).await;
    // Half a line, then nothing.
    client.write(b"NOO").await;
    let reply = client.reply().await;
    assert!(reply.starts_with("421 "), "{reply}");
    client.closed().await;
    receiver.stop().await;
}

#[tokio::test]
async fn concurrent_sessions_and_the_connection_limit() {
    let receiver = Receiver::start_with(small(SmtpLimits {
        connections: 2,
        ..SmtpLimits::default()
    }))
    .await
    .unwrap();
    let mut first = ready_for_data(receiver.smtp_address()).await;
    let mut second = ready_for_data(receiver.smtp_address()).await;
    let (mut third, greeting) = Client::connect(receiver.smtp_address()).await;
    assert!(greeting.starts_with("421 "), "{greeting}");
    third.closed().await;
    // Interleaved: the second finishes its mail while the first is in DATA.
    assert_eq!(first.code("DATA").await, 354);
    first.write(b"Subject: first\r\n\r\none").await;
    assert_eq!(second.code("DATA").await, 354);
    second.write(b"Subject: second\r\n\r\ntwo\r\n.\r\n").await;
    assert!(second.reply().await.starts_with("250 "));
    first.write(b"\r\n.\r\n").await;
    assert!(first.reply().await.starts_with("250 "));
    assert_eq!(second.code("QUIT").await, 221);
    second.closed().await;
    let subjects: Vec<String> = receiver
        .messages()
        .into_iter()
        .map(|message| match message {
            Message::Email { subject, .. } => subject,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(subjects, ["second", "first"]);
    receiver.stop().await;
}

#[tokio::test]
async fn slack_and_webhook_posts() {
    let receiver = Receiver::start().await.unwrap();
    let client = reqwest::Client::new();
    // The body Medic's `notify.slack` posts (runtime/src/adapters/notify.rs).
    let slack = serde_json::json!({ "channel": "#ops", "text": "order-service → 4 replicas" });
    let response = client
        .post(format!("{}/slack", receiver.http_url()))
        .json(&slack)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    let response = client
        .post(format!("{}/admin/cleanup?dry=1", receiver.http_url()))
        .body("tmp,logs")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .get(format!("{}/health", receiver.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        receiver.messages(),
        vec![
            Message::Slack {
                channel: "#ops".into(),
                text: "order-service → 4 replicas".into()
            },
            Message::Webhook {
                path: "/admin/cleanup?dry=1".into(),
                body: "tmp,logs".into()
            },
        ]
    );
    let json = serde_json::to_value(&receiver.messages()[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "slack", "channel": "#ops", "text": "order-service → 4 replicas"})
    );
    receiver.stop().await;
}

#[tokio::test]
async fn malformed_slack_payloads_are_400_and_not_recorded() {
    let receiver = Receiver::start().await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/slack", receiver.http_url());
    for (body, expected) in [
        ("{\"channel\": \"#ops\", \"text\": ", "invalid_payload"),
        ("[1, 2]", "invalid_payload"),
        ("{\"channel\": \"#ops\", \"text\": 3}", "invalid_payload"),
        ("{\"channel\": \"#ops\"}", "no_text"),
        ("{\"text\": \"hi\"}", "invalid_payload"),
    ] {
        let response = client.post(&url).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(text.starts_with(expected), "{body}: {text}");
    }
    let response = client
        .post(format!("{}/hook", receiver.http_url()))
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(receiver.messages(), vec![]);
    receiver.stop().await;
}

#[tokio::test]
async fn stop_closes_both_servers() {
    let receiver = Receiver::start().await.unwrap();
    let smtp = receiver.smtp_address();
    let url = receiver.http_url();
    // An open session does not hold the stop.
    let (_client, _) = Client::connect(smtp).await;
    tokio::time::timeout(Duration::from_secs(10), receiver.stop())
        .await
        .unwrap();
    assert!(TcpStream::connect(smtp).await.is_err());
    assert!(reqwest::get(format!("{url}/slack")).await.is_err());
}

mod content {
    use super::super::mail::{ContentError, decode_words, parse};

    #[test]
    fn encoded_words() {
        assert_eq!(decode_words("plain text"), "plain text");
        assert_eq!(decode_words("=?utf-8?b?4oaS?="), "→");
        // Whitespace between encoded-words goes, next to text it stays.
        assert_eq!(
            decode_words("a =?UTF-8?B?4oaS?= =?utf-8?Q?b_c?= d"),
            "a →b c d"
        );
        // A character split across two words is whole again.
        assert_eq!(decode_words("=?utf-8?b?4oY=?= =?utf-8?b?kg==?="), "→");
        assert_eq!(decode_words("=?iso-8859-1?q?caf=E9?="), "café");
        assert_eq!(decode_words("=?utf-8*en?q?hi?="), "hi");
        // Not decodable: kept as written.
        assert_eq!(decode_words("=?utf-8?x?abc?= =?"), "=?utf-8?x?abc?= =?");
        assert_eq!(decode_words("=?utf-8?b?/w==?="), "=?utf-8?b?/w==?=");
        assert_eq!(decode_words("=?bogus?q?x?="), "=?bogus?q?x?=");
    }

    #[test]
    fn headers_are_unfolded() {
        let content = parse(b"Subject: =?utf-8?b?YQ==?=\r\n =?utf-8?b?Yg==?=\r\n\tand c\r\nsubject: second\r\n\r\nbody\r\n").unwrap();
        assert_eq!(content.subject, "ab\tand c");
        assert_eq!(content.body, "body");
    }

    #[test]
    fn quoted_printable_body() {
        let content = parse(
            b"Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\nsoft =\r\nbreak =E2=86=92 x=3Dy  \r\n= kept\r\n",
        )
        .unwrap();
        assert_eq!(content.subject, "");
        assert_eq!(content.body, "soft break → x=y\n= kept");
    }

    #[test]
    fn refused_bodies() {
        assert_eq!(
            parse(b"Content-Transfer-Encoding: x-uuencode\r\n\r\nx\r\n"),
            Err(ContentError::UnknownEncoding("x-uuencode".into()))
        );
        assert_eq!(
            parse(b"Content-Type: text/plain; charset=koi8-r\r\n\r\nx\r\n"),
            Err(ContentError::UnknownCharset("koi8-r".into()))
        );
        assert_eq!(
            parse(b"Content-Transfer-Encoding: base64\r\n\r\nYQ=Y\r\n"),
            Err(ContentError::BadBase64)
        );
        assert_eq!(
            parse(b"Subject: x\r\n\r\n\xff\r\n"),
            Err(ContentError::BadText("US-ASCII".into()))
        );
        assert_eq!(
            parse(b"Subject: \xff\r\n\r\n"),
            Err(ContentError::HeadersNotUtf8)
        );
    }

    #[test]
    fn no_header_section_or_no_body() {
        assert_eq!(parse(b"\r\njust a body\r\n").unwrap().body, "just a body");
        let content = parse(b"Subject: only headers\r\n").unwrap();
        assert_eq!(
            (content.subject.as_str(), content.body.as_str()),
            ("only headers", "")
        );
    }
}
