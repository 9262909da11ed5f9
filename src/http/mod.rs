//! The HTTP surface: the webhook receiver, the JSON API and the operational endpoints.

mod api;
mod dashboard;
mod dashboard_page;
mod error;
mod json_errors;
mod ops;
mod server;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode, header};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

pub use api::{Access, ApiToken, Insights};
pub use error::ApiError;
pub use server::{ConnectionLimits, serve};
pub use webhook::{BodyBudget, MAX_BODY_BYTES};

use crate::github::SignatureVerifier;
use crate::metrics::Metrics;
use crate::routes::Router as Routes;
use crate::store::{EventWriter, Store};
use crate::supervisor::TaskHealth;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub verifier: Arc<SignatureVerifier>,
    pub writer: EventWriter,
    /// Which destinations get an event.
    pub router: Arc<Routes>,
    /// Whether every background task still runs (for `/readyz`).
    pub tasks: TaskHealth,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// For Cloud Logging trace names; `None` off Google Cloud.
    pub gcp_project: Option<String>,
    /// The report service behind `/api/*` and `/dashboard`, and who may read them.
    pub insights: Arc<Insights>,
    /// Bounds the webhook bodies buffered at once (see [`BodyBudget`]).
    pub body_budget: BodyBudget,
    /// Longest a request body may stall between two chunks (`HERALD_BODY_TIMEOUT`).
    pub body_timeout: Duration,
}

/// Longest any request may take, body upload included; GitHub itself gives up after 10 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the application's routes and middleware.
pub fn router(state: AppState) -> Router {
    let sensitive = [
        header::AUTHORIZATION,
        HeaderName::from_static("x-hub-signature"),
        HeaderName::from_static("x-hub-signature-256"),
    ];
    let project = state.gcp_project.clone();
    let body_timeout = state.body_timeout;
    let app = Router::new()
        .route("/webhook", post(webhook::receive))
        .route("/", post(webhook::receive))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(api::routes(&state))
        .merge(dashboard::routes(&state))
        .fallback(ops::not_found)
        .with_state(state)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    Router::new()
        // Around the whole application (handlers, extractors, the timeout, and the `Allow`
        // header axum adds to a 405 last), every error answer becomes JSON.
        .fallback_service(app)
        .layer(axum::middleware::from_fn(json_errors::as_json))
        .layer(TraceLayer::new_for_http().make_span_with(move |request: &axum::http::Request<_>| {
            let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
            let trace = crate::telemetry::trace_name(
                project.as_deref(),
                header("x-cloud-trace-context"),
                header("traceparent"),
            );
            match trace {
                Some(trace) => tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), trace),
                None => tracing::info_span!("request", method = %request.method(), path = %request.uri().path()),
            }
        }))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
}
