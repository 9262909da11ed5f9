//! The JSON API under `/api`: issue-flow metrics, the same report as `herald report --format
//! json`, and who may read it and the dashboard: with `HERALD_API_TOKEN` set, a bearer token or
//! the dashboard's session cookie; without one, anyone on a loopback address, and on a public
//! address only when public access is chosen (`HERALD_PUBLIC_DASHBOARD`), else a 403 saying how
//! to set a token.

use std::fmt;
use std::net::SocketAddr;

use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::analytics::{Report, ReportRequest};
use crate::insights::{ReportError, ReportService};
use crate::time_util::now_ms;

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "herald_session";
/// How long a dashboard login lasts.
pub const SESSION_SECONDS: i64 = 7 * 86_400;

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

    fn session_mac(&self, expires: i64) -> Hmac {
        let mut mac =
            <Hmac as KeyInit>::new_from_slice(&self.digest).expect("HMAC takes any key length");
        mac.update(b"herald dashboard session:");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// A session value valid until `expires` (Unix seconds): the expiry and an HMAC of it keyed
    /// by the token, so the cookie never holds the token and changing the token ends every
    /// session.
    pub fn session(&self, expires: i64) -> String {
        let tag = self.session_mac(expires).finalize().into_bytes();
        format!("{expires}.{}", hex::encode(tag))
    }

    /// Whether `value` is a session this token issued that has not expired at `now` (Unix
    /// seconds); the tag is compared in constant time.
    pub fn verify_session(&self, value: &str, now: i64) -> bool {
        let Some((expires, tag)) = value.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        expires > now && self.session_mac(expires).verify_slice(&tag).is_ok()
    }
}

type Hmac = hmac::Hmac<Sha256>;

/// Who may read `/api/*` and `/dashboard`.
#[derive(Debug, Clone)]
pub enum Access {
    /// A token is set: a bearer token or a dashboard session.
    Token(ApiToken),
    /// Anyone: a loopback address, or public access chosen explicitly.
    Open,
    /// A public address without a token: refused, with how to fix it.
    Refused { address: SocketAddr },
}

impl Access {
    /// Decides from the token, the address actually listened on, and the public opt-in.
    pub fn decide(token: Option<ApiToken>, address: SocketAddr, public: bool) -> Self {
        match token {
            Some(token) => Self::Token(token),
            None if public || address.ip().is_loopback() => Self::Open,
            None => Self::Refused { address },
        }
    }

    /// Why a refused request is refused, and what to do.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Self::Refused { address } => Some(format!(
                "herald listens on the public address {address} and HERALD_API_TOKEN is not set,                  so /api and /dashboard are closed (they show GitHub logins): set HERALD_API_TOKEN                  (then send `Authorization: Bearer <token>`, or log in at /dashboard/login), or set                  HERALD_PUBLIC_DASHBOARD=true to serve them to anyone"
            )),
            _ => None,
        }
    }

    /// Whether the request carries what this access asks for: a bearer token or a session
    /// cookie.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        match self {
            Self::Open => true,
            Self::Refused { .. } => false,
            Self::Token(token) => {
                presented_token(headers).is_some_and(|presented| token.verify(presented))
                    || session_cookie(headers)
                        .is_some_and(|value| token.verify_session(value, now_ms() / 1000))
            }
        }
    }
}

/// The insights behind `/api` and `/dashboard`: the report service and who may read it.
#[derive(Debug, Clone)]
pub struct Insights {
    pub service: ReportService,
    pub access: Access,
    /// Where people reach herald (`HERALD_PUBLIC_URL`), for links; an `https` one makes the
    /// session cookie `Secure`.
    pub public_url: Option<String>,
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

/// The `/api` routes and `/metrics`, each behind the access check.
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
    let access = &state.insights.access;
    if let Some(refusal) = access.refusal() {
        return Ok((StatusCode::FORBIDDEN, Json(json!({ "error": refusal }))).into_response());
    }
    if !access.allows(request.headers()) {
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

/// `GET /api/metrics/issues?since=&until=&repo=&label=&group_by=&business_hours=`.
async fn issue_metrics(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Report>, ApiError> {
    let (request, business_hours) = parse_parameters(query.as_deref().unwrap_or(""))?;
    let now = now_ms();
    let query = request
        .parse(now)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    state
        .insights
        .service
        .report(&query, business_hours, now)
        .await
        .map(Json)
        .map_err(report_error)
}

/// A report failure as an answer: a missing setting is the client's to know (400); the store
/// failing is a 503.
pub fn report_error(error: ReportError) -> ApiError {
    match error {
        ReportError::NoBusinessHours => ApiError::BadRequest(error.to_string()),
        ReportError::Store(error) => ApiError::Store(error),
        // A panic in the computation is the handler's panic (answered 500 by the panic layer).
        ReportError::Computation(cause) if cause.is_panic() => {
            std::panic::resume_unwind(cause.into_panic())
        }
        ReportError::Computation(cause) => {
            tracing::warn!(error = %cause, "the report computation was cancelled");
            ApiError::Store(sqlx::Error::PoolClosed)
        }
    }
}

/// The query string as a [`ReportRequest`] and whether durations count business hours only;
/// unknown or repeated parameters are refused so that a typo never silently widens a report.
fn parse_parameters(query: &str) -> Result<(ReportRequest, bool), ApiError> {
    let mut request = ReportRequest::default();
    let mut business_hours = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "business_hours" {
            let flag = match value.as_ref() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    let other: String = other.chars().take(20).collect();
                    return Err(ApiError::BadRequest(format!(
                        "invalid business_hours {other:?}: expected true or false"
                    )));
                }
            };
            if business_hours.replace(flag).is_some() {
                return Err(ApiError::BadRequest(
                    "parameter business_hours given twice".into(),
                ));
            }
            continue;
        }
        let slot = match name.as_ref() {
            "since" => &mut request.since,
            "until" => &mut request.until,
            "repo" => &mut request.repo,
            "label" => &mut request.label,
            "group_by" => &mut request.group_by,
            other => {
                let other: String = other.chars().take(40).collect();
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {other:?}: expected since, until, repo, label, group_by, business_hours"
                )));
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::BadRequest(format!(
                "parameter {name} given twice"
            )));
        }
    }
    Ok((request, business_hours.unwrap_or(false)))
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
    fn sessions_expire_and_cannot_be_forged() {
        let token = ApiToken::new(&SecretString::from("s3cret-token")).unwrap();
        let other = ApiToken::new(&SecretString::from("another-token")).unwrap();
        let session = token.session(2_000);
        assert!(!session.contains("s3cret"));
        assert!(token.verify_session(&session, 1_999));
        assert!(!token.verify_session(&session, 2_000), "expired");
        assert!(!other.verify_session(&session, 1_000), "another token's");
        let (_, tag) = session.split_once('.').unwrap();
        assert!(
            !token.verify_session(&format!("9999999999.{tag}"), 1_000),
            "a later expiry with the old tag"
        );
        assert!(!token.verify_session("garbage", 1_000));
    }

    #[test]
    fn public_addresses_need_a_token_or_an_opt_in() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(matches!(
            Access::decide(None, public, false),
            Access::Refused { .. }
        ));
        assert!(matches!(Access::decide(None, public, true), Access::Open));
        assert!(matches!(
            Access::decide(None, loopback, false),
            Access::Open
        ));
        assert!(matches!(
            Access::decide(ApiToken::new(&SecretString::from("t")), public, false),
            Access::Token(_)
        ));
        let refusal = Access::decide(None, public, false).refusal().unwrap();
        assert!(refusal.contains("HERALD_API_TOKEN"), "{refusal}");
        assert!(
            refusal.contains("HERALD_PUBLIC_DASHBOARD=true"),
            "{refusal}"
        );
    }

    #[test]
    fn reads_the_session_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; herald_session=12.ab; x=y"),
        );
        assert_eq!(session_cookie(&headers), Some("12.ab"));
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
        let (request, business_hours) =
            parse_parameters("since=30d&repo=o%2Fr&label=good+first+issue").unwrap();
        assert!(!business_hours);
        assert_eq!(request.since.as_deref(), Some("30d"));
        assert_eq!(request.repo.as_deref(), Some("o/r"));
        assert_eq!(request.label.as_deref(), Some("good first issue"));
        assert_eq!(
            parse_parameters("").unwrap(),
            (ReportRequest::default(), false)
        );
        assert!(parse_parameters("business_hours=true").unwrap().1);
        assert!(parse_parameters("sinse=30d").is_err());
        assert!(parse_parameters("since=1d&since=2d").is_err());
        assert!(parse_parameters("business_hours=yes").is_err());
    }
}
