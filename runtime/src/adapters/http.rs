//! `http.get` and `http.post`: requests to service endpoints, where alert data never
//! chooses where a request goes.
//!
//! What is guaranteed (stdlib/http.ops says the same to runbook authors):
//! - the URL is a `Url` the compiler built from a template of the runbook, so its scheme is
//!   literal and its interpolated values were escaped; a host chosen by data
//!   (`UrlValue::host_from_data`) is requested only when `[http] allow_hosts` allows it;
//! - link-local and cloud metadata addresses are refused, by name, by address and after DNS
//!   resolution ([`GuardedResolver`]), unless an `allow_hosts` entry names them exactly;
//! - redirects are followed only to the same origin or to an allowed host, at most five;
//! - an answer is read as a stream and cut at 64 KiB, so a huge body costs no memory;
//! - no proxy from the environment is used (it would resolve names past the guard);
//! - credentials are kept out of the journal: header values and secret query values are
//!   redacted by [`Http::journaled`].

use super::args::{ArgError, Args};
use medic_compiler::plan::{UrlValue, Value};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest body kept in an `http.Response`; the rest is never read.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Query parameter names redacted from journaled URLs when the configuration names none;
/// a parameter is redacted when its name, lower-cased without `-` and `_`, ends with one.
pub const DEFAULT_REDACTED_PARAMS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "auth",
    "authorization",
    "signature",
    "sig",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "code",
    "jwt",
];

/// Host names of cloud metadata services, refused like link-local addresses.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
];

/// The replacement of a redacted value.
const REDACTED: &str = "REDACTED";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    #[error("`{0}` is not an http or https URL")]
    NotHttp(String),
    #[error("the URL cannot be parsed: {0}")]
    BadUrl(String),
    #[error("a URL must not carry a user name or password")]
    Credentials,
    #[error(
        "host {host:?} came from alert data and is not in [http] allow_hosts, so no request was made"
    )]
    HostNotAllowed { host: String },
    #[error(
        "host {host:?} is a link-local or cloud metadata address, which is refused unless an [http] allow_hosts entry names it exactly"
    )]
    LinkLocal { host: String },
    #[error("header {name:?}: {reason}")]
    BadHeader { name: String, reason: String },
    #[error(transparent)]
    Argument(#[from] ArgError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// No HTTP answer at all (refused, reset, timed out, DNS): a failure of the call, so
    /// the task's `retry` and `on failure` apply. Any answer, whatever its status, is data.
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// Where requests may go and which credentials they carry (`[http]` in medic.toml).
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    /// Hosts a value interpolated into a URL's host may choose.
    pub allow_hosts: Vec<HostPattern>,
    /// Query parameter names redacted in journaled URLs; empty means
    /// [`DEFAULT_REDACTED_PARAMS`].
    pub redact_params: Vec<String>,
    /// Headers added to requests to some hosts, with values read from the environment.
    pub headers: Vec<HeaderRule>,
    /// Names resolved to fixed addresses instead of by DNS (`[http.hosts]`, like
    /// `/etc/hosts`): a sandbox, or a name DNS does not know here. An entry's port is used
    /// for a URL that names none; a URL's own port wins. The operator wrote these, so they
    /// are not held to the link-local guard.
    pub hosts: BTreeMap<String, SocketAddr>,
}

/// A header sent to the hosts that match; its value is a secret.
#[derive(Clone)]
pub struct HeaderRule {
    pub hosts: Vec<HostPattern>,
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for HeaderRule {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HeaderRule")
            .field("hosts", &self.hosts)
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// One entry of `allow_hosts`: `name`, `*.suffix`, an address or a CIDR range, each with an
/// optional `:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    kind: HostKind,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostKind {
    Name(String),
    /// `*.example.com`, kept as `.example.com`: any name below it, not the name itself.
    Suffix(String),
    Address(IpAddr),
    Range(ipnet::IpNet),
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<HostPattern, String> {
        let text = text.trim();
        if let Ok(range) = text.parse::<ipnet::IpNet>() {
            return Ok(HostPattern {
                kind: HostKind::Range(range),
                port: None,
            });
        }
        if let Ok(address) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(HostPattern {
                kind: HostKind::Address(address),
                port: None,
            });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("{text:?}: {port:?} is not a port"))?;
                (host, Some(port))
            }
            None => (text, None),
        };
        if let Ok(address) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(HostPattern {
                kind: HostKind::Address(address),
                port,
            });
        }
        let name = host.to_ascii_lowercase();
        let (kind, bare) = match name.strip_prefix("*.") {
            Some(rest) => (HostKind::Suffix(format!(".{rest}")), rest.to_string()),
            None => (HostKind::Name(name.clone()), name),
        };
        let valid = !bare.is_empty()
            && bare.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return Err(format!(
                "{text:?} is not a host name, `*.domain`, an address or a CIDR range"
            ));
        }
        Ok(HostPattern { kind, port })
    }
}

impl HostPattern {
    fn matches(&self, url: &Url) -> bool {
        if let Some(port) = self.port
            && url.port_or_known_default() != Some(port)
        {
            return false;
        }
        match (url.host(), &self.kind) {
            (Some(url::Host::Domain(domain)), HostKind::Name(name)) => {
                domain.eq_ignore_ascii_case(name)
            }
            (Some(url::Host::Domain(domain)), HostKind::Suffix(suffix)) => {
                domain.to_ascii_lowercase().ends_with(suffix.as_str())
            }
            (Some(host), HostKind::Address(address)) => host_ip(&host) == Some(*address),
            (Some(host), HostKind::Range(range)) => {
                host_ip(&host).is_some_and(|ip| range.contains(&ip))
            }
            _ => false,
        }
    }

    /// Whether this entry names exactly this host or address (what lets a metadata or
    /// link-local target through: a wildcard or a range never does).
    fn names_exactly(&self, host: &str) -> bool {
        match &self.kind {
            HostKind::Name(name) => name.eq_ignore_ascii_case(host),
            HostKind::Address(address) => host.trim_matches(['[', ']']).parse() == Ok(*address),
            HostKind::Suffix(_) | HostKind::Range(_) => false,
        }
    }
}

fn host_ip(host: &url::Host<&str>) -> Option<IpAddr> {
    match host {
        url::Host::Ipv4(address) => Some(IpAddr::V4(*address)),
        url::Host::Ipv6(address) => Some(IpAddr::V6(*address)),
        url::Host::Domain(_) => None,
    }
}

/// Link-local addresses (where cloud metadata services answer) and the known metadata
/// addresses outside that range.
pub fn is_link_local(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                // Alibaba Cloud's metadata, Azure's WireServer, Oracle Cloud's metadata.
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
                || v4 == Ipv4Addr::new(168, 63, 129, 16)
                || v4 == Ipv4Addr::new(192, 0, 0, 192)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let [first, second, .., seventh, eighth] = segments;
            // An IPv4 address carried in the last 32 bits (IPv4-compatible or NAT64).
            let embedded = Ipv4Addr::new(
                (seventh >> 8) as u8,
                (seventh & 0xff) as u8,
                (eighth >> 8) as u8,
                (eighth & 0xff) as u8,
            );
            let carries_ipv4 = segments.get(..6) == Some(&[0, 0, 0, 0, 0, 0])
                || (first == 0x0064 && second == 0xff9b);
            (first & 0xffc0) == 0xfe80
                // AWS's and Google Cloud's IPv6 metadata.
                || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
                || v6 == Ipv6Addr::new(0xfd20, 0x00ce, 0, 0, 0, 0, 0, 0x0254)
                || (carries_ipv4 && is_link_local(IpAddr::V4(embedded)))
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_link_local(IpAddr::V4(v4)))
        }
    }
}

/// Headers a runbook's `headers` may not set: they decide how the request is framed or
/// where it goes, which is the client's and the URL's business.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    // Who calls is Medic's to say (a run on a node of a cluster), never a runbook's.
    "medic-run",
    "medic-fence",
];

impl HttpConfig {
    fn allows(&self, url: &Url) -> bool {
        self.allow_hosts.iter().any(|pattern| pattern.matches(url))
    }

    fn names_exactly(&self, host: &str) -> bool {
        self.allow_hosts
            .iter()
            .any(|pattern| pattern.names_exactly(host))
    }

    /// The reason this URL may not be requested, if any. `host_from_data`: a value chose
    /// the host, so it must be allowed.
    fn check(&self, url: &Url, host_from_data: bool) -> Result<(), HttpError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::NotHttp(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HttpError::Credentials);
        }
        let Some(host) = url.host_str() else {
            return Err(HttpError::BadUrl("it has no host".into()));
        };
        if host_from_data && !self.allows(url) {
            return Err(HttpError::HostNotAllowed {
                host: host.to_string(),
            });
        }
        let dangerous = match url.host() {
            Some(url::Host::Domain(domain)) => METADATA_HOSTS
                .iter()
                .any(|name| domain.trim_end_matches('.').eq_ignore_ascii_case(name)),
            Some(other) => host_ip(&other).is_some_and(is_link_local),
            None => false,
        };
        if dangerous && !self.names_exactly(host) {
            return Err(HttpError::LinkLocal {
                host: host.to_string(),
            });
        }
        Ok(())
    }

    /// The configured header rules that apply to this URL, by position.
    fn header_rules(&self, url: &Url) -> Vec<usize> {
        self.headers
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.hosts.iter().any(|pattern| pattern.matches(url)))
            .map(|(index, _)| index)
            .collect()
    }

    fn redacted(&self, name: &str) -> bool {
        let normalized: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .collect::<String>()
            .to_ascii_lowercase();
        let ends_with = |suffix: &str| normalized.ends_with(&suffix.to_ascii_lowercase());
        if self.redact_params.is_empty() {
            DEFAULT_REDACTED_PARAMS.iter().any(|name| ends_with(name))
        } else {
            self.redact_params.iter().any(|name| ends_with(name))
        }
    }

    /// The URL as it may be journaled: no user information, secret query values replaced.
    pub fn redact_href(&self, href: &str) -> String {
        let Ok(mut url) = Url::parse(href) else {
            // Not a URL the client would send; keep only what precedes the query.
            let kept = href.split(['?', '#']).next().unwrap_or_default();
            return if kept.len() == href.len() {
                kept.to_string()
            } else {
                format!("{kept}?{REDACTED}")
            };
        };
        let mut changed = false;
        if !url.username().is_empty() || url.password().is_some() {
            let _ = url.set_username(REDACTED);
            let _ = url.set_password(None);
            changed = true;
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(name, value)| {
                    let value = if self.redacted(&name) {
                        changed = true;
                        REDACTED.to_string()
                    } else {
                        value.into_owned()
                    };
                    (name.into_owned(), value)
                })
                .collect();
            if changed {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
        }
        if changed {
            url.to_string()
        } else {
            href.to_string()
        }
    }
}

/// Resolves names with `[http.hosts]`, else the system resolver, and drops link-local and
/// metadata addresses the system resolver gives (unless allowed exactly), so a name
/// pointing at 169.254.169.254 is refused too.
struct GuardedResolver {
    config: Arc<HttpConfig>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let config = Arc::clone(&self.config);
        let host = name.as_str().to_string();
        Box::pin(async move {
            if let Some(address) = config.hosts.get(&host.to_ascii_lowercase()) {
                let addresses: Addrs = Box::new(std::iter::once(*address));
                return Ok(addresses);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| {
                    !is_link_local(address.ip())
                        || config.names_exactly(&address.ip().to_string())
                        || config.names_exactly(&host)
                })
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host:?} resolves only to link-local or metadata addresses, which are refused"
                )
                .into());
            }
            let addresses: Addrs = Box::new(kept.into_iter());
            Ok(addresses)
        })
    }
}

/// The decoded arguments of `http.get` and `http.post`.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: UrlValue,
    pub body: Option<String>,
    pub timeout: Duration,
    pub expect_status: i64,
    pub headers: BTreeMap<String, String>,
    /// The run and fencing number the call is made under (several nodes on one store):
    /// sent as `Medic-Run` and `Medic-Fence`, so a target can refuse a stale node.
    pub caller: Option<crate::executor::Caller>,
}

impl Request {
    pub fn decode(function: &str, values: BTreeMap<String, Value>) -> Result<Request, ArgError> {
        let mut args = Args::new(function, values);
        let post = function == "http.post";
        let request = Request {
            method: if post { Method::POST } else { Method::GET },
            url: args.url("url")?,
            body: if post {
                Some(args.string("body")?)
            } else {
                None
            },
            timeout: args.duration("timeout")?,
            expect_status: args.int("expect_status")?,
            headers: args.string_map("headers")?,
            caller: None,
        };
        args.finish()?;
        Ok(request)
    }
}

/// The HTTP adapter: one client, its policy, and the journaled form of its arguments.
pub struct Http {
    client: reqwest::Client,
    config: Arc<HttpConfig>,
}

impl Http {
    pub fn new(config: HttpConfig) -> Result<Http, HttpError> {
        let config = Arc::new(config);
        let redirects = Arc::clone(&config);
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let Some(first) = attempt.previous().first() else {
                return attempt.stop();
            };
            let same_origin = first.origin() == attempt.url().origin();
            // Never from https down to http; and never to another origin that would get other
            // configured (secret) headers than the first: reqwest strips only the standard
            // credential headers on a redirect, so an `X-Api-Key` would travel along.
            let downgrade = first.scheme() == "https" && attempt.url().scheme() != "https";
            let same_secrets =
                redirects.header_rules(first) == redirects.header_rules(attempt.url());
            let allowed =
                !downgrade && (same_origin || (same_secrets && redirects.allows(attempt.url())));
            // A redirect the policy does not follow is the answer: the playbook sees a 3xx.
            if allowed && redirects.check(attempt.url(), !same_origin).is_ok() {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            // A Referer would carry the previous URL's query (secret values included) to
            // the redirect's target.
            .referer(false)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                config: Arc::clone(&config),
            }))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| HttpError::Client(error.to_string()))?;
        Ok(Http { client, config })
    }

    /// Makes the request and answers the `http.Response` record, whatever the status (a
    /// playbook branches on `ok` and `status`). No answer at all, and a request the policy
    /// refuses, are errors: the task's `retry` and `on failure` apply.
    pub async fn request(&self, request: Request) -> Result<Value, HttpError> {
        let url =
            Url::parse(&request.url.href).map_err(|error| HttpError::BadUrl(error.to_string()))?;
        self.config.check(&url, request.url.host_from_data)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(HttpError::BadHeader {
                    name: name.clone(),
                    reason: "the client sets it; a runbook may not".into(),
                });
            }
            insert_header(&mut headers, name, value)?;
        }
        for rule in &self.config.headers {
            if rule.hosts.iter().any(|pattern| pattern.matches(&url)) {
                insert_header(&mut headers, &rule.name, &rule.value)?;
            }
        }
        if let Some(caller) = request.caller {
            insert_header(&mut headers, "Medic-Run", &caller.run.to_string())?;
            insert_header(&mut headers, "Medic-Fence", &caller.fence.to_string())?;
        }
        let mut builder = self
            .client
            .request(request.method, url)
            .headers(headers)
            .timeout(request.timeout);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let started = Instant::now();
        let latency = |started: Instant| {
            Value::Duration(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
        };
        let mut response = builder
            .send()
            .await
            .map_err(|error| HttpError::NoAnswer(without_url(&error)))?;
        let status = i64::from(response.status().as_u16());
        let mut body = Vec::new();
        let mut unreadable = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = BODY_LIMIT.saturating_sub(body.len());
                    body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&[]));
                    if body.len() >= BODY_LIMIT {
                        // The rest is never read: dropping the response closes the connection.
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    unreadable = Some(without_url(&error));
                    break;
                }
            }
        }
        let body = match unreadable {
            Some(error) if body.is_empty() => format!("(body unreadable: {error})"),
            _ => String::from_utf8_lossy(&body).into_owned(),
        };
        Ok(Value::record([
            (
                "ok".to_string(),
                Value::Bool(status == request.expect_status),
            ),
            ("status".to_string(), Value::Int(status)),
            ("latency".to_string(), latency(started)),
            ("body".to_string(), Value::String(body)),
        ]))
    }

    /// The arguments as they may be journaled: the URL without credentials, every header
    /// value replaced.
    pub fn journaled(&self, args: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        args.iter()
            .map(|(name, value)| {
                let value = match (name.as_str(), value) {
                    ("url", Value::Url(url)) => Value::Url(UrlValue {
                        href: self.config.redact_href(&url.href),
                        host_from_data: url.host_from_data,
                    }),
                    ("url", Value::String(href)) => Value::String(self.config.redact_href(href)),
                    ("headers", Value::Record(headers)) => Value::record(
                        headers
                            .keys()
                            .map(|key| (key.clone(), Value::String(REDACTED.into()))),
                    ),
                    _ => value.clone(),
                };
                (name.clone(), value)
            })
            .collect()
    }
}

fn insert_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), HttpError> {
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HttpError::BadHeader {
        name: name.to_string(),
        reason: "not a header name".into(),
    })?;
    let mut value = HeaderValue::from_str(value).map_err(|_| HttpError::BadHeader {
        name: name.to_string(),
        reason: "the value holds a character a header cannot carry".into(),
    })?;
    value.set_sensitive(true);
    headers.insert(header, value);
    Ok(())
}

/// reqwest's error text without the URL (which may carry a token).
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}
