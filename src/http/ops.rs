//! Operational endpoints: liveness, readiness, metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, AppState};

/// 200 while the process runs.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// 200 when every background task runs and the store answers within two seconds, else 503.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(failure) = state.tasks.failure() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "error": format!("not ready: a background task stopped ({})", failure.split(':').next().unwrap_or("unknown")) }),
            ),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "store unavailable" })),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "store unavailable" })),
        ),
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let depth = tokio::time::timeout(Duration::from_secs(2), state.store.queue_depth())
        .await
        .ok()
        .and_then(Result::ok);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(depth),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
