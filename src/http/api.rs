//! The JSON API under `/api`: issue-flow metrics, the same report as `herald report --format
//! json`. Guarded by a bearer token when `HERALD_API_TOKEN` is set.

use std::fmt;

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::analytics::{Report, ReportRequest, build_report};
use crate::time_util::now_ms;

/// The API token, kept only as its SHA-256 so that comparing takes the same time whatever the
/// presented token's length or content.
#[derive(Clone)]
pub struct ApiToken {
    digest: [u8; 32],
}

impl ApiToken {
    /// `None` for an empty token: an empty `HERALD_API_TOKEN=` means "not set", never "accept an
    /// empty bearer".
    pub fn new(token: &SecretString) -> Option<Self> {
        let token = token.expose_secret();
        (!token.is_empty()).then(|| Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token, in constant time.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

/// The `/api` routes and `/metrics`, each behind the token check.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/metrics/issues", get(issue_metrics))
        .route("/metrics", get(super::ops::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.api_token
        && !presented_token(request.headers()).is_some_and(|presented| token.verify(presented))
    {
        return Err(ApiError::InvalidToken);
    }
    Ok(next.run(request).await)
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn presented_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// `GET /api/metrics/issues?since=&until=&repo=&label=&group_by=`.
async fn issue_metrics(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Report>, ApiError> {
    let request = parse_parameters(query.as_deref().unwrap_or(""))?;
    let now = now_ms();
    let query = request
        .parse(now)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let issues = state
        .store
        .issue_facts(&query)
        .await
        .map_err(ApiError::Store)?;
    Ok(Json(build_report(&query, &issues, now)))
}

/// The query string as a [`ReportRequest`]; unknown or repeated parameters are refused so that
/// a typo never silently widens a report.
fn parse_parameters(query: &str) -> Result<ReportRequest, ApiError> {
    let mut request = ReportRequest::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "since" => &mut request.since,
            "until" => &mut request.until,
            "repo" => &mut request.repo,
            "label" => &mut request.label,
            "group_by" => &mut request.group_by,
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {other:?}: expected since, until, repo, label, group_by"
                )));
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::BadRequest(format!(
                "parameter {name} given twice"
            )));
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn verifies_tokens_and_hides_them() {
        let token = ApiToken::new(&SecretString::from("s3cret-token")).unwrap();
        assert!(token.verify(b"s3cret-token"));
        assert!(!token.verify(b"s3cret-tokeN"));
        assert!(!token.verify(b""));
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(ApiToken::new(&SecretString::from("")).is_none());
    }

    #[test]
    fn reads_bearer_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        for (value, expected) in [
            ("Bearer abc", Some(&b"abc"[..])),
            ("bearer abc", Some(&b"abc"[..])),
            ("Basic abc", None),
            ("Bearer", None),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(presented_token(&headers), expected, "{value}");
        }
    }

    #[test]
    fn parses_parameters_strictly() {
        let request = parse_parameters("since=30d&repo=o%2Fr&label=good+first+issue").unwrap();
        assert_eq!(request.since.as_deref(), Some("30d"));
        assert_eq!(request.repo.as_deref(), Some("o/r"));
        assert_eq!(request.label.as_deref(), Some("good first issue"));
        assert_eq!(parse_parameters("").unwrap(), ReportRequest::default());
        assert!(parse_parameters("sinse=30d").is_err());
        assert!(parse_parameters("since=1d&since=2d").is_err());
    }
}
