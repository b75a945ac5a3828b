//! What the adapters of query APIs (Prometheus, Jaeger, Elasticsearch) share: the check of
//! the base URL a configuration names, the HTTP client they talk to it with, the capped
//! reading of an answer and the excerpt an error quotes.

use reqwest::Url;

/// The base URL of a configured server: `http` or `https`, no user information (credentials
/// go in `credentials`, named in the error), no query or fragment, and a path that can take
/// more segments. The error is the reason, for the adapter's own `BadUrl`.
pub fn base_url(text: &str, credentials: &str) -> Result<Url, String> {
    let base = Url::parse(text).map_err(|error| error.to_string())?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err("not an http or https URL".into());
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(format!(
            "a URL must not carry a user name or password (use {credentials})"
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err("the base URL must not have a query or a fragment".into());
    }
    if base.cannot_be_a_base() {
        return Err("it cannot be a base URL".into());
    }
    Ok(base)
}

/// The client of a configured API: redirects not followed, no proxy from the environment,
/// Medic's user agent. Timeouts are per request, set by each adapter.
pub fn api_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Characters of an answer that is not the API's, quoted in an error.
const EXCERPT_CHARS: usize = 200;

/// The start of an answer, quoted, for an error that says what came back instead.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty)".into();
    }
    let mut kept: String = text.chars().take(EXCERPT_CHARS).collect();
    if kept.len() < text.len() {
        kept.push_str("...");
    }
    format!("{kept:?}")
}

/// Why an answer's body was not read whole.
#[derive(Debug)]
pub enum ReadError {
    /// The connection failed while reading.
    Read(reqwest::Error),
    /// It is larger than the limit: the rest is never read, and dropping the response
    /// closes the connection.
    TooLarge,
}

/// An answer's body, read as a stream and refused past `limit` bytes.
pub async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Read)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert!(base_url("http://127.0.0.1:9090", "x").is_ok());
        assert!(base_url("https://example.com/prometheus/", "x").is_ok());
        for bad in [
            "ftp://example.com",
            "http://user:pass@example.com",
            "http://example.com/?q=1",
            "http://example.com/#f",
            "not a url",
            "data:text/plain,hello",
        ] {
            assert!(base_url(bad, "x").is_err(), "{bad}");
        }
        assert!(
            base_url("http://u@h", "token_env")
                .is_err_and(|reason| reason.contains("use token_env"))
        );
    }
}
