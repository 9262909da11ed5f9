//! `POST /webhook`: read the raw body, verify, parse just enough to index, store, answer.
//! Everything slow happens later, from the outbox.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::github::{
    EventName, IndexedEvent, MAX_DEPTH, ParseError, SignatureError, json_document,
};
use crate::store::{Intake, NewEvent, WriterError};
use crate::time_util::now_ms;

/// GitHub caps payloads at 25 MiB; anything larger is not from GitHub.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Memory for request bodies, in KiB permits, shared by every request. A request holds room
/// only for the bytes it has actually received: room grows chunk by chunk as the body arrives,
/// and waits while the budget is spent. So clients that declare a large body and send nothing
/// hold nothing, and a webhook is never queued behind them; what the budget bounds is real
/// memory. Room is held until the answer, as the body lives until then.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    const MAX_KIB: u32 = (MAX_BODY_BYTES / 1024) as u32;

    /// A budget of `mib` MiB, raised to one full-size body so any single delivery fits.
    pub fn new(mib: u32) -> Self {
        Self(Arc::new(Semaphore::new(
            mib.saturating_mul(1024).max(Self::MAX_KIB) as usize,
        )))
    }

    /// KiB not held by a request in flight.
    pub fn available_kib(&self) -> usize {
        self.0.available_permits()
    }

    /// An empty reservation for one body, to grow with [`BodyRoom::grow_to`].
    pub fn room(&self) -> BodyRoom {
        BodyRoom {
            budget: Arc::clone(&self.0),
            held: None,
            kib: 0,
        }
    }
}

/// The part of the [`BodyBudget`] one request holds; given back when dropped.
pub struct BodyRoom {
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    kib: u32,
}

impl BodyRoom {
    /// Holds room for `bytes` in all (at most one full-size body), waiting while the budget is
    /// spent.
    pub async fn grow_to(&mut self, bytes: usize) {
        let wanted = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(BodyBudget::MAX_KIB);
        if wanted <= self.kib {
            return;
        }
        let more = Arc::clone(&self.budget)
            .acquire_many_owned(wanted - self.kib)
            .await
            .expect("the body budget is never closed");
        match &mut self.held {
            Some(held) => held.merge(more),
            None => self.held = Some(more),
        }
        self.kib = wanted;
    }

    /// KiB held.
    pub fn kib(&self) -> u32 {
        self.kib
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
    // The room stays held until the answer: the body (or the event made of it) lives until then.
    let (body, _room) = read_body(state, headers, body).await?;
    state.verifier.verify(
        &body,
        headers
            .get("x-hub-signature-256")
            .map(HeaderValue::as_bytes),
        headers.get("x-hub-signature").map(HeaderValue::as_bytes),
    )?;
    let event = required_header(headers, "x-github-event")?;
    let delivery_id = required_header(headers, "x-github-delivery")?;
    let hook_id = hook_id(headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // One copy of the body at a time: a JSON body becomes the stored text as it is.
    let json = json_document(content_type, body)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let indexed = IndexedEvent::parse_str(&json).map_err(|error| match error {
        ParseError::NotUtf8 => ApiError::BadRequest("body is not UTF-8".into()),
        ParseError::NotJson(_) => ApiError::BadRequest("body is not a JSON object".into()),
        ParseError::TooDeep => ApiError::BadRequest(format!(
            "JSON nested deeper than {MAX_DEPTH} levels: no sink could parse it"
        )),
    })?;
    state.metrics.received(event);
    if EventName::parse(event) == EventName::Ping {
        tracing::info!(hook_id, delivery_id, event, "ping from GitHub");
        return Ok((StatusCode::OK, Json(json!({ "status": "pong" }))));
    }
    let destinations = state
        .router
        .route(&indexed.subject(event))
        .into_iter()
        .map(|matched| matched.destination)
        .collect();
    let IndexedEvent {
        action,
        repository,
        issue_number,
        actor,
        ..
    } = indexed;
    let new_event = NewEvent {
        hook_id,
        delivery_id: delivery_id.to_owned(),
        event: event.to_owned(),
        action: action.map(Cow::into_owned),
        repository: repository.map(Cow::into_owned),
        issue_number,
        actor: actor.map(Cow::into_owned),
        received_at: now_ms(),
        payload: json,
        destinations,
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
            tracing::info!(event, delivery_id, event_id, "event stored");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "status": "stored", "delivery": delivery_id })),
            ))
        }
        Intake::Duplicate => {
            state.metrics.duplicate();
            tracing::info!(event, delivery_id, "duplicate delivery ignored");
            Ok((
                StatusCode::OK,
                Json(json!({ "status": "duplicate", "delivery": delivery_id })),
            ))
        }
    }
}

/// Reads the body within the 25 MiB cap into one buffer, growing its room in the budget as
/// bytes arrive. A body that stalls for `HERALD_BODY_TIMEOUT` is answered 408; a request that
/// cannot get room for that long (the budget is held by bodies still arriving) is answered 503.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Vec<u8>, BodyRoom), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut room = state.body_budget.room();
    let mut buffer = Vec::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| read_error(&error))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = buffer.len() + data.len();
        if total > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        tokio::time::timeout(state.body_timeout, room.grow_to(total))
            .await
            .map_err(|_| ApiError::Busy)?;
        if buffer.capacity() == 0 {
            // One allocation of the declared size once bytes arrive (the length is capped
            // above); pages are only backed by memory as they are written.
            let expected = declared.map_or(0, |length| length as usize);
            buffer.reserve_exact(expected.max(total));
        }
        buffer.extend_from_slice(&data);
    }
    Ok((buffer, room))
}

fn read_error(error: &axum::Error) -> ApiError {
    let mut causes = std::iter::successors(Some(error as &dyn std::error::Error), |e| e.source());
    match causes.find_map(|cause| {
        if cause.is::<http_body_util::LengthLimitError>() {
            Some(ApiError::PayloadTooLarge)
        } else if cause.is::<tower_http::timeout::TimeoutError>() {
            Some(ApiError::BodyTimeout)
        } else {
            None
        }
    }) {
        Some(error) => error,
        None => ApiError::BadRequest("could not read the body".into()),
    }
}

/// `X-GitHub-Hook-ID`, optional (empty when absent) but part of the deduplication key: when
/// present it must be UTF-8 of at most 200 bytes, so no two hooks collapse into one key.
fn hook_id(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("x-github-hook-id") else {
        return Ok(String::new());
    };
    std::str::from_utf8(value.as_bytes())
        .ok()
        .map(str::trim)
        .filter(|v| v.len() <= 200)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::BadRequest("invalid x-github-hook-id header".into()))
}

fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| ApiError::BadRequest(format!("missing or invalid {name} header")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_grows_with_the_bytes_received_and_is_given_back() {
        let budget = BodyBudget::new(0); // raised to one full-size body
        assert_eq!(budget.available_kib(), 25 * 1024);
        let mut first = budget.room();
        assert_eq!(
            budget.available_kib(),
            25 * 1024,
            "nothing held before bytes arrive"
        );
        first.grow_to(1).await;
        first.grow_to(1000).await;
        assert_eq!((first.kib(), budget.available_kib()), (1, 25 * 1024 - 1));
        first.grow_to(13_521).await;
        assert_eq!(budget.available_kib(), 25 * 1024 - 14);
        first.grow_to(10).await; // never shrinks
        assert_eq!(first.kib(), 14);
        drop(first);
        assert_eq!(budget.available_kib(), 25 * 1024);
        let mut huge = budget.room();
        huge.grow_to(usize::MAX).await;
        assert_eq!(huge.kib(), 25 * 1024, "never more than the cap");
        assert_eq!(BodyBudget::new(256).available_kib(), 256 * 1024);
    }

    #[tokio::test]
    async fn room_waits_while_the_budget_is_spent() {
        let budget = BodyBudget::new(0);
        let mut full = budget.room();
        full.grow_to(MAX_BODY_BYTES).await;
        let mut waiting = budget.room();
        let grown =
            tokio::time::timeout(std::time::Duration::from_millis(50), waiting.grow_to(1024));
        assert!(
            grown.await.is_err(),
            "no room while another body holds it all"
        );
        drop(full);
        waiting.grow_to(1024).await;
        assert_eq!(waiting.kib(), 1);
    }
}
