//! One error type for HTTP answers: a status and a short JSON body, never internals or secrets.

use std::any::Any;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::github::SignatureError;
use crate::store::{StoreError, WriterError};

/// Everything a handler can answer with other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(#[from] SignatureError),
    #[error("{0}")]
    BadRequest(String),
    #[error("body exceeds the 25 MiB limit")]
    PayloadTooLarge,
    /// The body stopped arriving for longer than `HERALD_BODY_TIMEOUT`.
    #[error("the body stopped arriving")]
    BodyTimeout,
    /// No room in the body budget for that long: other bodies fill it.
    #[error("too many request bodies in flight; retry later")]
    Busy,
    #[error("not found")]
    NotFound,
    #[error("store unavailable")]
    Unavailable(#[source] WriterError),
    /// The store refused this event's data; a redelivery would fail the same way.
    #[error("the store cannot hold this payload")]
    Unstorable(#[source] WriterError),
    /// `/api/*` without the configured bearer token.
    #[error("missing or invalid bearer token")]
    InvalidToken,
    /// A read from the store failed (the writer's failures are [`ApiError::Unavailable`]).
    #[error("store unavailable")]
    Store(#[source] StoreError),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) | Self::Unstorable(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable(_) | Self::Store(_) | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A label for the rejection counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized(error) => error.reason(),
            Self::BadRequest(_) => "bad_request",
            Self::Unstorable(_) => "unstorable",
            Self::PayloadTooLarge => "too_large",
            Self::BodyTimeout => "body_timeout",
            Self::Busy => "busy",
            Self::NotFound => "not_found",
            Self::Unavailable(_) | Self::Store(_) => "store_unavailable",
            Self::InvalidToken => "api_token",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Unavailable(cause) | Self::Unstorable(cause) = &self {
            // The cause chain goes to the log; the client only learns to come back later.
            tracing::error!(error = %cause, source = ?std::error::Error::source(cause), status = self.status_code().as_u16(), "the event was not stored");
        }
        if let Self::Store(cause) = &self {
            tracing::error!(error = %cause, "reading the store failed; answering 503");
        }
        let mut response = (
            self.status_code(),
            Json(json!({ "error": self.to_string() })),
        )
            .into_response();
        if matches!(self, Self::InvalidToken) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The answer when a handler panics: a generic 500, the panic logged.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the signature CatchPanicLayer::custom calls"
)]
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "internal error" })),
    )
        .into_response()
}
