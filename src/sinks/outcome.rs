//! What a sink reports for each row of a batch: first what happened (classified from the answer);
//! the lane then decides what to record (`delivery::retry`).

use std::time::{Duration, SystemTime};

use crate::outbound::parse_retry_after;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How one attempt to deliver one row ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination has it.
    Delivered,
    /// A passing failure (5xx, 408, a connection that never carried the request); counts
    /// against the retry schedule. `after` is a delay the destination asked for.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The destination asked to slow down (429 with `Retry-After`, Slack's `ratelimited`): the
    /// whole destination pauses for `after` and the row is tried again then, without using a step
    /// of the retry schedule.
    RateLimited { after: Duration, reason: String },
    /// The request may or may not have been acted on (a timeout or a broken connection after it
    /// was sent). What happens next depends on the sink's [`super::Guarantee`].
    Ambiguous { reason: String },
    /// Not yet: the row waits (a reply whose thread parent is not posted yet) without using a step
    /// of the retry schedule.
    Defer { after: Duration, reason: String },
    /// Refused for good (other 4xx, a payload it cannot take): retrying cannot help.
    Permanent { reason: String },
}

impl Outcome {
    /// Classifies an HTTP answer. `body_hint` is kept (shortened) in the reason.
    pub fn from_response(status: StatusCode, headers: &HeaderMap, body_hint: &str) -> Self {
        let hint: String = body_hint.chars().take(200).collect();
        let reason = if hint.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {hint}")
        };
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        if status.is_success() {
            Self::Delivered
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            Self::RateLimited {
                after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE),
                reason,
            }
        } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            Self::Retry {
                after: retry_after,
                reason,
            }
        } else {
            Self::Permanent { reason }
        }
    }

    /// Classifies a request that got no answer. A connection that failed before the request was
    /// written is safe to retry; a timeout or a connection lost afterwards may have been acted on.
    pub fn from_transport_error(error: reqwest::Error) -> Self {
        // Without the URL: a Slack webhook URL is a secret.
        let error = error.without_url();
        if error.is_connect() {
            return Self::Retry {
                after: None,
                reason: format!("connection failed: {error}"),
            };
        }
        let kind = if error.is_timeout() {
            "timed out"
        } else {
            "no answer"
        };
        Self::Ambiguous {
            reason: format!("{kind} after the request was sent: {error}"),
        }
    }

    /// The text recorded as the row's last error (empty when delivered).
    pub fn reason(&self) -> &str {
        match self {
            Self::Delivered => "",
            Self::Retry { reason, .. }
            | Self::RateLimited { reason, .. }
            | Self::Ambiguous { reason }
            | Self::Defer { reason, .. }
            | Self::Permanent { reason } => reason,
        }
    }
}

/// How long a destination pauses after a 429 that names no delay.
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(30);

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
    fn a_429_pauses_for_what_it_asks_or_a_default() {
        assert_eq!(
            classify(429, Some("7")),
            Outcome::RateLimited {
                after: Duration::from_secs(7),
                reason: "HTTP 429 Too Many Requests".into()
            }
        );
        assert!(matches!(
            classify(429, Some("soon")),
            Outcome::RateLimited { after, .. } if after == DEFAULT_RATE_LIMIT_PAUSE
        ));
        assert!(
            matches!(classify(503, Some("2")), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2))
        );
    }
}
