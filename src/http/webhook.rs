//! `POST /webhook`: read the raw body, verify, parse just enough to index, store, answer.
//! Everything slow happens later, from the outbox.

use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::github::{EventName, IndexedEvent, ParseError, SignatureError};
use crate::store::{Intake, NewEvent};
use crate::time_util::now_ms;

/// GitHub caps payloads at 25 MiB; anything larger is not from GitHub.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The webhook handler. See DESIGN.md for the status codes.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let result = accept(&state, &headers, body).await;
    state
        .metrics
        .webhook_answered(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        state.metrics.rejected(error.reason());
        if !matches!(error, ApiError::Unavailable(_)) {
            tracing::info!(
                status = error.status_code().as_u16(),
                reason = error.reason(),
                "webhook rejected"
            );
        }
    }
    result
}

async fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let sha256 = headers.contains_key("x-hub-signature-256");
    if !state
        .verifier
        .has_signature(sha256, headers.contains_key("x-hub-signature"))
    {
        return Err(SignatureError::Missing.into());
    }
    let body = read_body(headers, body).await?;
    state.verifier.verify(
        &body,
        headers
            .get("x-hub-signature-256")
            .map(HeaderValue::as_bytes),
        headers.get("x-hub-signature").map(HeaderValue::as_bytes),
    )?;
    let event = required_header(headers, "x-github-event")?;
    let delivery_id = required_header(headers, "x-github-delivery")?;
    let hook_id = headers
        .get("x-github-hook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let json = json_payload(headers, &body)?;
    let (indexed, _) = IndexedEvent::parse(json.as_bytes()).map_err(|error| match error {
        ParseError::NotUtf8 => ApiError::BadRequest("body is not UTF-8".into()),
        ParseError::NotJson(_) => ApiError::BadRequest("body is not a JSON object".into()),
    })?;
    state.metrics.received(event);
    if EventName::parse(event) == EventName::Ping {
        tracing::info!(hook = %hook_id, "ping from GitHub");
        return Ok((StatusCode::OK, Json(json!({ "status": "pong" }))));
    }
    let sinks = state.sinks.route(event, indexed.action.as_deref());
    let new_event = NewEvent {
        hook_id,
        delivery_id: delivery_id.to_owned(),
        event: event.to_owned(),
        action: indexed.action,
        repository: indexed.repository,
        issue_number: indexed.issue_number,
        actor: indexed.actor,
        received_at: now_ms(),
        payload: json,
        sinks,
    };
    match state
        .writer
        .append(new_event)
        .await
        .map_err(ApiError::Unavailable)?
    {
        Intake::Stored { event_id } => {
            state.metrics.stored();
            tracing::info!(event, delivery = delivery_id, id = event_id, "event stored");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "status": "stored", "delivery": delivery_id })),
            ))
        }
        Intake::Duplicate => {
            state.metrics.duplicate();
            tracing::info!(event, delivery = delivery_id, "duplicate delivery ignored");
            Ok((
                StatusCode::OK,
                Json(json!({ "status": "duplicate", "delivery": delivery_id })),
            ))
        }
    }
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            let too_large =
                std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
                    .any(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>);
            if too_large {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the body".into())
            }
        })
}

fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| ApiError::BadRequest(format!("missing or invalid {name} header")))
}

/// The JSON document: the body itself, or its `payload` field when GitHub is set to send
/// `application/x-www-form-urlencoded` (the signature covers the raw form body either way).
fn json_payload(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        return form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| ApiError::BadRequest("form body has no payload field".into()));
    }
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))
}
