//! Classifying one attempt: first what happened, then (in `retry`) what to do about it.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How one attempt to deliver an event to a sink ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink has it.
    Delivered,
    /// A passing failure (5xx, 429, timeout, connection error); `after` is what the sink asked for.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The sink refused it for good (other 4xx, a payload it cannot take); retrying cannot help.
    Permanent { reason: String },
}

impl Outcome {
    /// Classifies an HTTP answer.
    pub fn from_response(status: StatusCode, headers: &HeaderMap, body_hint: &str) -> Self {
        let hint: String = body_hint.chars().take(200).collect();
        let reason = if hint.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {hint}")
        };
        if status.is_success() {
            Self::Delivered
        } else if status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
        {
            let after = headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()));
            Self::Retry { after, reason }
        } else {
            Self::Permanent { reason }
        }
    }

    /// Classifies a request that got no answer: always worth retrying.
    pub fn from_transport_error(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        // Without the URL: a Slack webhook URL is a secret.
        let error = error.without_url();
        Self::Retry {
            after: None,
            reason: format!("{kind}: {error}"),
        }
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn classify(status: u16, retry_after: Option<&str>) -> Outcome {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        Outcome::from_response(StatusCode::from_u16(status).unwrap(), &headers, "")
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(classify(200, None), Outcome::Delivered);
        assert_eq!(classify(204, None), Outcome::Delivered);
        for status in [500, 502, 503, 504, 408] {
            assert!(
                matches!(classify(status, None), Outcome::Retry { after: None, .. }),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 410] {
            assert!(
                matches!(classify(status, None), Outcome::Permanent { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn honours_retry_after_on_429_and_503() {
        assert_eq!(
            classify(429, Some("7")),
            Outcome::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "HTTP 429 Too Many Requests".into()
            }
        );
        assert!(
            matches!(classify(503, Some("2")), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
        );
        assert!(matches!(
            classify(429, Some("soon")),
            Outcome::Retry { after: None, .. }
        ));
    }

    #[test]
    fn parses_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:48:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
    }
}
