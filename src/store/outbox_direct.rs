//! The outbox's hot operations on SQLite, each one hand-off to the store's own thread (see
//! `direct`): claiming with the events, recording starts, recording outcomes.

use std::sync::Arc;

use rusqlite::{OptionalExtension, Transaction, params};

use super::direct::{Direct, bind};
use super::{StoreError, StoredEvent};
use crate::domain::{Claimed, Finish};

const CLAIM: &str = "UPDATE outbox SET lease_owner = $1, lease_until = $2 + $3, updated_at = $2
    WHERE id IN (SELECT id FROM outbox
                 WHERE destination = $5 AND status = 'pending' AND next_attempt_at <= $2
                   AND (lease_until IS NULL OR lease_until <= $2)
                   AND NOT EXISTS (SELECT 1 FROM destination_state s
                                   WHERE s.destination = $5 AND s.paused_until > $2)
                 ORDER BY next_attempt_at, id LIMIT $4)
    RETURNING id, event_id, attempts, next_attempt_at, attempt_started_at";

const EVENT: &str = "SELECT id, hook_id, delivery_id, event, action, repository, issue_number,
    actor, received_at, payload FROM events WHERE id = ?1";

const START: &str = "UPDATE outbox SET attempt_started_at = ?1, lease_until = ?2, updated_at = ?1
    WHERE id = ?3 AND lease_owner = ?4 AND status = 'pending'";

const FINISH: &str = "UPDATE outbox SET status = ?2, attempts = ?3, next_attempt_at = ?4,
        last_error = ?5, lease_owner = NULL, lease_until = NULL,
        attempt_started_at = CASE WHEN ?6 THEN attempt_started_at END, updated_at = ?7
    WHERE id = ?1 AND lease_owner = ?8";

const LOG: &str = "INSERT INTO attempts (outbox_id, started_at, finished_at, outcome, error)
    VALUES (?1, ?2, ?3, ?4, ?5)";

/// [`super::Store::claim`] on SQLite; with `start`, also records durably, in the same
/// transaction, that requests for the claimed rows are about to leave
/// ([`super::Store::claim_started`]).
pub async fn claim(
    direct: &Direct,
    destination: &str,
    owner: &str,
    now: i64,
    lease_ms: i64,
    limit: usize,
    start: bool,
) -> Result<Vec<Claimed>, StoreError> {
    let (destination, owner) = (destination.to_owned(), owner.to_owned());
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    direct
        .write(start, move |tx| {
            let mut rows: Vec<(i64, i64, i64, i64, Option<i64>)> = {
                let mut claim = tx.prepare_cached(CLAIM)?;
                bind(&mut claim, &[&owner, &now, &lease_ms, &limit, &destination])?;
                let mut found = Vec::new();
                let mut cursor = claim.raw_query();
                while let Some(row) = cursor.next()? {
                    found.push((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ));
                }
                found
            };
            rows.sort_by_key(|row| row.0);
            if start {
                // The earlier marks were read by the claim above (whether a previous attempt may
                // have arrived); now mark this attempt, durably with the claim.
                let mut mark = tx.prepare_cached(START)?;
                for row in &rows {
                    mark.execute(params![now, now.saturating_add(lease_ms), row.0, owner])?;
                }
            }
            let mut claimed = Vec::with_capacity(rows.len());
            for (id, event_id, attempts, due_at, started) in rows {
                // Always found: the foreign key keeps events for as long as their rows.
                let Some(event) = event(tx, event_id)? else {
                    continue;
                };
                claimed.push(Claimed {
                    id,
                    destination: destination.clone(),
                    attempts,
                    due_at,
                    interrupted: started.is_some(),
                    event: Arc::new(event),
                });
            }
            Ok(claimed)
        })
        .await
}

fn event(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<Option<StoredEvent>> {
    tx.prepare_cached(EVENT)?
        .query_row([id], |row| {
            Ok(StoredEvent {
                id: row.get(0)?,
                hook_id: row.get(1)?,
                delivery_id: row.get(2)?,
                event: row.get(3)?,
                action: row.get(4)?,
                repository: row.get(5)?,
                issue_number: row.get(6)?,
                actor: row.get(7)?,
                received_at: row.get(8)?,
                payload: row.get(9)?,
            })
        })
        .optional()
}

/// [`super::Store::start_attempts`] on SQLite: synced to disk before it returns.
pub async fn start_attempts(
    direct: &Direct,
    ids: &[i64],
    owner: &str,
    now: i64,
    lease_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let (ids, owner) = (ids.to_vec(), owner.to_owned());
    direct
        .write(true, move |tx| {
            let mut start = tx.prepare_cached(START)?;
            let mut held = Vec::with_capacity(ids.len());
            for id in ids {
                if start.execute(params![now, now.saturating_add(lease_ms), id, owner])? == 1 {
                    held.push(id);
                }
            }
            Ok(held)
        })
        .await
}

/// [`super::Store::finish`] on SQLite.
pub async fn finish(
    direct: &Direct,
    finishes: &[Finish],
    owner: &str,
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    let (finishes, owner) = (finishes.to_vec(), owner.to_owned());
    direct
        .write(false, move |tx| {
            let mut update = tx.prepare_cached(FINISH)?;
            let mut log = tx.prepare_cached(LOG)?;
            let mut held = Vec::with_capacity(finishes.len());
            for finish in &finishes {
                let done = update.execute(params![
                    finish.id,
                    finish.status.as_str(),
                    finish.attempts,
                    finish.next_attempt_at,
                    finish.error,
                    finish.keep_started,
                    now,
                    owner
                ])? == 1;
                if done && let Some(attempt) = &finish.log {
                    log.execute(params![
                        finish.id,
                        attempt.started_at,
                        attempt.finished_at,
                        attempt.outcome,
                        attempt.error
                    ])?;
                }
                held.push(done);
            }
            Ok(held)
        })
        .await
}

const INSERT_EVENT: &str = "INSERT INTO events
    (hook_id, delivery_id, event, action, repository, issue_number, actor, received_at, payload)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
    ON CONFLICT (hook_id, delivery_id) DO NOTHING RETURNING id";

const INSERT_ROW: &str = "INSERT INTO outbox
    (event_id, destination, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?3)";

/// [`super::Store::append_events`] on SQLite: the events and their outbox rows in one
/// transaction, synced to disk before it returns.
pub async fn append_events(
    direct: &Direct,
    events: &[super::NewEvent],
) -> Result<Vec<super::Intake>, StoreError> {
    let events = events.to_vec();
    direct
        .append(move |tx| {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            let mut row = tx.prepare_cached(INSERT_ROW)?;
            let mut intakes = Vec::with_capacity(events.len());
            for event in &events {
                // Indexed columns hold text both databases accept (no NUL, bounded); the
                // payload is kept exactly as received.
                let id: Option<i64> = insert
                    .query_row(
                        params![
                            event.hook_id,
                            event.delivery_id,
                            super::indexed_text(&event.event),
                            event.action.as_deref().map(super::indexed_text),
                            event.repository.as_deref().map(super::indexed_text),
                            event.issue_number,
                            event.actor.as_deref().map(super::indexed_text),
                            event.received_at,
                            event.payload,
                        ],
                        |found| found.get(0),
                    )
                    .optional()?;
                match id {
                    Some(event_id) => {
                        for destination in &event.destinations {
                            row.execute(params![event_id, &**destination, event.received_at])?;
                        }
                        intakes.push(super::Intake::Stored { event_id });
                    }
                    None => intakes.push(super::Intake::Duplicate),
                }
            }
            Ok(intakes)
        })
        .await
}
