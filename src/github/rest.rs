//! A small client for GitHub's REST API: one paginated GET at a time, with GitHub's headers,
//! pagination by `Link: <…>; rel="next"`, and rate limits turned into a wait for the caller.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue, LINK};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::outbound::parse_retry_after;

/// How long to wait on a 429 that says nothing more (GitHub asks for at least a minute).
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A GitHub REST client for one base URL and token.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<SecretString>,
}

/// One page of a list endpoint.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Value>,
    /// The next page, from the `Link` header; `None` on the last page.
    pub next: Option<String>,
    /// The number of the last page (`rel="last"`'s `page=`), when GitHub says it.
    pub last_page: Option<u64>,
    /// The quota is spent (`X-RateLimit-Remaining: 0`): wait this long before the next request.
    pub exhausted_for: Option<Duration>,
}

/// Why a page could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("GitHub's rate limit is reached; it resets in {}s", .wait.as_secs())]
    RateLimited { wait: Duration },
    #[error("GitHub answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("GitHub did not answer within the timeout")]
    Timeout,
    #[error("the request to GitHub failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("GitHub's answer is not a JSON array: {0}")]
    Decode(String),
}

impl RestClient {
    /// `base_url` is `https://api.github.com` or a GitHub Enterprise `https://HOST/api/v3`.
    pub fn new(
        base_url: &str,
        token: Option<SecretString>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.filter(|token| !token.expose_secret().is_empty()),
        })
    }

    /// The absolute URL of `path_and_query` (starting with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
    }

    /// Whether `url` is on this API: links elsewhere are never followed, so the token never
    /// leaves for another host.
    pub fn is_own(&self, url: &str) -> bool {
        url.strip_prefix(&self.base_url)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// GETs one page of a list endpoint.
    pub async fn get_page(&self, url: &str) -> Result<Page, RestError> {
        let mut request = self
            .http
            .get(url)
            .header(ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| RestError::Status {
                    status: 0,
                    message: "the GitHub token is not a valid header value".into(),
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(transport)?;
        if let Some(wait) = rate_limit_wait(status, &headers, SystemTime::now()) {
            return Err(RestError::RateLimited { wait });
        }
        if !status.is_success() {
            return Err(RestError::Status {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        let items: Vec<Value> =
            serde_json::from_str(&body).map_err(|error| RestError::Decode(error.to_string()))?;
        let link = headers.get(LINK).and_then(|value| value.to_str().ok());
        let next = link.and_then(next_link);
        let last_page = link
            .and_then(|link| link_target(link, "last"))
            .as_deref()
            .and_then(page_number);
        let exhausted_for = (header(&headers, "x-ratelimit-remaining") == Some("0"))
            .then(|| reset_wait(&headers, SystemTime::now()))
            .flatten();
        Ok(Page {
            items,
            next,
            last_page,
            exhausted_for,
        })
    }
}

/// What GitHub answers about one item (an issue asked for by number).
#[derive(Debug)]
pub enum Item {
    /// Found (after any redirect GitHub made for a moved item), with its JSON.
    Found(Value),
    /// `301` not followed, or `404`/`410`: the item is gone from this URL.
    Gone { status: u16 },
}

impl RestClient {
    /// GETs one item; a missing or deleted one is [`Item::Gone`], not an error.
    pub async fn get_item(&self, url: &str) -> Result<Item, RestError> {
        let response = self
            .with_headers(self.http.get(url))?
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(transport)?;
        if let Some(wait) = rate_limit_wait(status, &headers, SystemTime::now()) {
            return Err(RestError::RateLimited { wait });
        }
        if matches!(status.as_u16(), 301 | 404 | 410) {
            return Ok(Item::Gone {
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(RestError::Status {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        serde_json::from_str(&body)
            .map(Item::Found)
            .map_err(|error| RestError::Decode(error.to_string()))
    }

    /// POSTs with an empty body (GitHub's action endpoints, such as asking for a redelivery),
    /// with the same headers as [`RestClient::get_page`]. Any 2xx is success.
    pub async fn post_empty(&self, url: &str) -> Result<StatusCode, RestError> {
        let request = self
            .with_headers(self.http.post(url))?
            .header(CONTENT_LENGTH, "0");
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(transport)?;
        if let Some(wait) = rate_limit_wait(status, &headers, SystemTime::now()) {
            return Err(RestError::RateLimited { wait });
        }
        if !status.is_success() {
            return Err(RestError::Status {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        Ok(status)
    }

    /// GitHub's headers and the token (marked sensitive, so it is never logged).
    fn with_headers(&self, request: RequestBuilder) -> Result<RequestBuilder, RestError> {
        let mut request = request
            .header(ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| RestError::Status {
                    status: 0,
                    message: "the GitHub token is not a valid header value".into(),
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        Ok(request)
    }
}

fn transport(error: reqwest::Error) -> RestError {
    if error.is_timeout() {
        RestError::Timeout
    } else {
        RestError::Transport(error)
    }
}

/// GitHub's `message`, or the start of the body.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|json| json.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    message.chars().take(200).collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

/// How long until `X-RateLimit-Reset` (epoch seconds), never negative.
fn reset_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset: u64 = header(headers, "x-ratelimit-reset")?.parse().ok()?;
    let reset = UNIX_EPOCH + Duration::from_secs(reset);
    Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether an answer is GitHub's rate limit, and how long it asks to wait: `Retry-After` first,
/// then `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset`; a bare 429 means a minute. A 403
/// without those headers is a real refusal (no access), not a limit.
pub fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if let Some(wait) = header(headers, "retry-after").and_then(|v| parse_retry_after(v, now)) {
        return Some(wait);
    }
    if header(headers, "x-ratelimit-remaining") == Some("0")
        && let Some(wait) = reset_wait(headers, now)
    {
        return Some(wait);
    }
    (status == StatusCode::TOO_MANY_REQUESTS).then_some(SECONDARY_LIMIT_WAIT)
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    link_target(header, "next")
}

/// The `page` query parameter of a URL.
fn page_number(url: &str) -> Option<u64> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("page="))
        .and_then(|page| page.parse().ok())
}

/// The target of a `Link` header with relation `rel`.
pub fn link_target(header: &str, rel: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let mut parts = link.split(';');
        let target = parts.next()?.trim();
        let target = target.strip_prefix('<')?.strip_suffix('>')?;
        let is_next = parts.any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|name| name.eq_ignore_ascii_case(rel))
        });
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link() {
        let header = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
        let last_page = r#"<https://x/?page=1>; rel="first", <https://x/?page=4>; rel="prev""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(
            next_link("<https://x/?page=3>;rel=next").as_deref(),
            Some("https://x/?page=3")
        );
        assert_eq!(next_link(""), None);
        assert_eq!(
            link_target(header, "last").as_deref().and_then(page_number),
            Some(5)
        );
        assert_eq!(next_link("garbage; rel=\"next\""), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn recognises_rate_limits() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000042"),
        ]);
        let cases = [
            (403, primary.clone(), Some(Duration::from_secs(42))),
            (429, primary.clone(), Some(Duration::from_secs(42))),
            (
                403,
                headers(&[("retry-after", "7")]),
                Some(Duration::from_secs(7)),
            ),
            (429, headers(&[]), Some(SECONDARY_LIMIT_WAIT)),
            // Already reset: go again at once.
            (
                403,
                headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "999999"),
                ]),
                Some(Duration::ZERO),
            ),
            // A refusal, not a limit.
            (403, headers(&[("x-ratelimit-remaining", "4999")]), None),
            (200, primary, None),
            (500, headers(&[("retry-after", "7")]), None),
        ];
        for (status, headers, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                rate_limit_wait(status, &headers, now),
                expected,
                "{status} {headers:?}"
            );
        }
    }

    fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[test]
    fn follows_only_its_own_links() {
        install_crypto();
        let client =
            RestClient::new("https://ghe.example/api/v3/", None, Duration::from_secs(1)).unwrap();
        assert_eq!(
            client.url("/repos/o/r"),
            "https://ghe.example/api/v3/repos/o/r"
        );
        assert!(client.is_own("https://ghe.example/api/v3/repos/o/r/issues?page=2"));
        assert!(!client.is_own("https://ghe.example/api/v3evil/x"));
        assert!(!client.is_own("https://evil.example/api/v3/repos"));
    }

    #[test]
    fn never_shows_the_token() {
        install_crypto();
        let client = RestClient::new(
            "https://api.github.com",
            Some(SecretString::from("ghp_topsecret")),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("topsecret"));
    }

    #[test]
    fn extracts_github_error_messages() {
        assert_eq!(
            error_message(r#"{"message":"Not Found","documentation_url":"x"}"#),
            "Not Found"
        );
        assert_eq!(error_message("plain"), "plain");
    }
}
