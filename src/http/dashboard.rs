//! `GET /dashboard`: one server-rendered page of issue-flow charts and tables plus the delivery
//! health, its stylesheet (versioned by content hash, cached for a year), and the login form that
//! turns `HERALD_API_TOKEN` into an HttpOnly session cookie. No script; a strict CSP.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;
use super::api::{Access, SESSION_COOKIE, SESSION_SECONDS};
use super::dashboard_page::{dashboard_page, login_page, message_page};
use crate::insights::{DashboardQuery, ReportError};
use crate::time_util::now_ms;

const CSS: &str = include_str!("dashboard.css");
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
/// Largest login form accepted.
const LOGIN_BODY_LIMIT: usize = 16 * 1024;

/// `/dashboard/static/dashboard-<hash>.css`: a new address whenever the styles change, so it can
/// be cached for good.
fn css_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let hash = hex::encode(Sha256::digest(CSS.as_bytes()));
        format!("/dashboard/static/dashboard-{}.css", &hash[..12])
    })
}

/// The dashboard's routes; the page itself behind the access check.
pub fn routes(state: &AppState) -> Router<AppState> {
    let page =
        Router::new()
            .route("/dashboard", get(page))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_session,
            ));
    Router::new()
        .merge(page)
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", axum::routing::post(logout))
        .route("/dashboard/static/{file}", get(stylesheet))
}

/// An HTML answer with the page headers: CSP, no sniffing, never cached (it holds live data).
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

async fn require_session(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let access = &state.insights.access;
    if let Some(refusal) = access.refusal() {
        return html(
            StatusCode::FORBIDDEN,
            message_page(css_path(), "The dashboard is closed", &refusal),
        );
    }
    if !access.allows(request.headers()) {
        return see_other("/dashboard/login");
    }
    next.run(request).await
}

async fn page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = match DashboardQuery::parse(query.as_deref().unwrap_or("")) {
        Ok(query) => query,
        Err(error) => {
            return html(
                StatusCode::BAD_REQUEST,
                message_page(css_path(), "Bad filter", &error),
            );
        }
    };
    let insights = &state.insights;
    // A hard reload (`Cache-Control: no-cache`) asks for numbers computed now.
    let fresh = headers
        .get(header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("no-cache"));
    let computed = if fresh {
        insights.service.refresh(&query).await
    } else {
        insights.service.dashboard_cached(&query).await
    };
    match computed {
        Ok(data) => {
            let business_hours = insights.service.settings().business_hours.is_some();
            let logout = matches!(insights.access, Access::Token(_))
                && super::api::session_cookie(&headers).is_some();
            html(
                StatusCode::OK,
                dashboard_page(&data, css_path(), business_hours, logout),
            )
        }
        Err(ReportError::NoBusinessHours) => html(
            StatusCode::BAD_REQUEST,
            message_page(
                css_path(),
                "Business hours are not configured",
                &ReportError::NoBusinessHours.to_string(),
            ),
        ),
        Err(error) => {
            tracing::error!(error = %error, "the dashboard could not be computed");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                message_page(
                    css_path(),
                    "Unavailable",
                    "The store did not answer; try again in a moment.",
                ),
            )
        }
    }
}

async fn login_form(State(state): State<AppState>) -> Response {
    match &state.insights.access {
        Access::Open => see_other("/dashboard"),
        access @ Access::Refused { .. } => html(
            StatusCode::FORBIDDEN,
            message_page(
                css_path(),
                "The dashboard is closed",
                &access.refusal().unwrap_or_default(),
            ),
        ),
        Access::Token(_) => html(StatusCode::OK, login_page(css_path(), None)),
    }
}

/// Whether the session cookie must be `Secure`: herald is reached over https (its public URL,
/// or the proxy in front of it says so).
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    let public_https = state
        .insights
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    public_https || forwarded_https
}

fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("herald_session=; Max-Age=0"))
}

async fn login(State(state): State<AppState>, request: Request<Body>) -> Response {
    let token = match &state.insights.access {
        Access::Token(token) => token.clone(),
        Access::Open => return see_other("/dashboard"),
        Access::Refused { .. } => return login_form(State(state)).await,
    };
    let secure = secure(&state, request.headers());
    let Ok(body) = axum::body::to_bytes(request.into_body(), LOGIN_BODY_LIMIT).await else {
        return html(
            StatusCode::PAYLOAD_TOO_LARGE,
            login_page(css_path(), Some("The form was too large.")),
        );
    };
    let presented = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !token.verify(presented.trim().as_bytes()) {
        tracing::warn!("a dashboard login with a wrong token");
        return html(
            StatusCode::UNAUTHORIZED,
            login_page(
                css_path(),
                Some("That is not the token herald was started with."),
            ),
        );
    }
    let expires = now_ms() / 1000 + SESSION_SECONDS;
    let mut response = see_other("/dashboard");
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&token.session(expires), SESSION_SECONDS, secure),
    );
    response
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = see_other("/dashboard/login");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, secure(&state, &headers)));
    response
}

async fn stylesheet(Path(file): Path<String>) -> Response {
    if format!("/dashboard/static/{file}") != css_path() {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        CSS,
    )
        .into_response()
}
