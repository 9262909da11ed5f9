//! `POST /webhook`: read the raw body, verify, parse just enough to index, store, answer.
//! Everything slow happens later, from the outbox.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::github::{EventName, IndexedEvent, ParseError, SignatureError};
use crate::store::{Intake, NewEvent, WriterError};
use crate::time_util::now_ms;

/// GitHub caps payloads at 25 MiB; anything larger is not from GitHub.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Memory for request bodies, in KiB permits: a request reserves its declared length (or the
/// 25 MiB cap when undeclared) before reading, so many large uploads, signed or not, queue
/// instead of exhausting memory. GitHub's usual few-KiB payloads never notice it.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    const MAX_KIB: u32 = (MAX_BODY_BYTES / 1024) as u32;

    pub fn new(mib: u32) -> Self {
        Self(Arc::new(Semaphore::new(
            mib.saturating_mul(1024).max(Self::MAX_KIB) as usize,
        )))
    }

    /// KiB not reserved by a request in flight.
    pub fn available_kib(&self) -> usize {
        self.0.available_permits()
    }

    /// Waits for room for a body of `declared` bytes (the cap when unknown).
    pub async fn reserve(&self, declared: Option<u64>) -> OwnedSemaphorePermit {
        let kib = declared.map_or(Self::MAX_KIB, |bytes| {
            u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
        });
        Arc::clone(&self.0)
            .acquire_many_owned(kib.clamp(1, Self::MAX_KIB))
            .await
            .expect("the body budget is never closed")
    }
}

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
        if !matches!(error, ApiError::Unavailable(_) | ApiError::Unstorable(_)) {
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
    // The room stays reserved until the answer: the body lives until then.
    let (body, _room) = read_body(&state.body_budget, headers, body).await?;
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
    let appended = state.writer.append(new_event).await.map_err(|error| {
        if matches!(error, WriterError::Refused(_)) {
            ApiError::Unstorable(error)
        } else {
            ApiError::Unavailable(error)
        }
    })?;
    match appended {
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

/// Reads the body within the 25 MiB cap, after reserving room for it in the budget.
async fn read_body(
    budget: &BodyBudget,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let room = budget.reserve(declared).await;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
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
        })?;
    Ok((bytes, room))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_body_budget_reserves_declared_room_and_gives_it_back() {
        let budget = BodyBudget::new(0); // raised to one full-size body
        assert_eq!(budget.available_kib(), 25 * 1024);
        let small = budget.reserve(Some(13_521)).await;
        assert_eq!(budget.available_kib(), 25 * 1024 - 14);
        let empty = budget.reserve(Some(0)).await;
        assert_eq!(
            budget.available_kib(),
            25 * 1024 - 15,
            "even an empty body takes 1 KiB"
        );
        drop((small, empty));
        let unknown = budget.reserve(None).await;
        assert_eq!(
            budget.available_kib(),
            0,
            "an undeclared length reserves the cap"
        );
        drop(unknown);
        let huge = budget.reserve(Some(u64::MAX)).await;
        assert_eq!(
            budget.available_kib(),
            0,
            "never more than the cap, so it cannot wait forever"
        );
        drop(huge);
        assert_eq!(BodyBudget::new(256).available_kib(), 256 * 1024);
    }
}
