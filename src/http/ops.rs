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

/// Longest a readiness check waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 when every background task runs and the store answers within two seconds, else 503.
/// After a failed commit (a full disk, a lost server) answering is not enough: a write transaction
/// must commit, so `/readyz` stays 503 until one does, and is 200 again from the first probe that
/// commits.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(failure) = state.tasks.failure() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "error": format!("not ready: a background task stopped ({})", failure.split(':').next().unwrap_or("unknown")) }),
            ),
        );
    }
    let health = state.writer.health();
    let check = async {
        if health.commits_failing() {
            state.store.probe_write().await?;
            if health.commit_succeeded() {
                tracing::info!("the store commits again");
            }
            Ok(())
        } else {
            state.store.ping().await
        }
    };
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check failed");
            not_ready()
        }
        Err(_) => not_ready(),
    }
}

fn not_ready() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "store unavailable" })),
    )
}

/// Prometheus text exposition; behind the API token when one is set (see `api::routes`).
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
