//! Appending events (with their outbox rows, in one transaction) and reading them back; a batch
//! that fails is split so one bad event is refused alone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sqlx::Connection;

use super::health::{discard, indexed_text, is_connection_error};
use super::{
    Backend, Intake, NOTIFY_OUTBOX, NewEvent, SYNC_FULL, SYNC_NORMAL, Store, StoreError,
    StoredEvent, dispatch,
};

const INSERT_EVENTS: &str = "INSERT INTO events
    (hook_id, delivery_id, event, action, repository, issue_number, actor, received_at, payload) ";
const ON_CONFLICT: &str =
    " ON CONFLICT (hook_id, delivery_id) DO NOTHING RETURNING id, hook_id, delivery_id";
const INSERT_OUTBOX: &str = "INSERT INTO outbox
    (event_id, destination, status, attempts, next_attempt_at, created_at, updated_at) ";

const SELECT_EVENT: &str = "SELECT id, hook_id, delivery_id, event, action, repository,
    issue_number, actor, received_at, payload FROM events WHERE id = $1";

/// Rows per multi-row INSERT, well under both databases' bound-parameter limits.
const ROWS_PER_STATEMENT: usize = 256;

impl Store {
    /// Appends a batch of events in one transaction (group commit): all are durable when this
    /// returns `Ok`, none when it returns `Err`. Redeliveries come back as [`Intake::Duplicate`],
    /// decided by the unique key, so concurrent instances cannot both store one. Each chunk of
    /// events is one multi-row statement, so a batch costs a few round trips, not one per event.
    /// A connection whose transaction failed is rolled back and closed, never reused.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Intake>, StoreError> {
        if let Self::Sqlite(_, _, direct) = self {
            return super::outbox_direct::append_events(direct, events).await;
        }
        let sqlite = self.backend() == Backend::Sqlite;
        let _turn = self.write_turn().await;
        dispatch!(self, pool, begin => {
            let mut connection = pool.acquire().await?;
            let committed: Result<Vec<Intake>, StoreError> = async {
                let mut intakes = Vec::with_capacity(events.len());
                if sqlite {
                    sqlx::query(SYNC_FULL).execute(&mut *connection).await?;
                }
                let mut tx = connection.begin_with(begin).await?;
                for chunk in events.chunks(ROWS_PER_STATEMENT) {
                    // Rows go in key order, so two instances inserting overlapping batches (the same
                    // redeliveries) take the unique-index locks in the same order: no deadlock.
                    let mut in_key_order: Vec<&NewEvent> = chunk.iter().collect();
                    in_key_order.sort_by(|a, b| (&a.hook_id, &a.delivery_id).cmp(&(&b.hook_id, &b.delivery_id)));
                    let mut insert = sqlx::QueryBuilder::new(INSERT_EVENTS);
                    insert.push_values(in_key_order, |mut row, event| {
                        // Indexed columns hold text both databases accept (no NUL, bounded); the
                        // payload is kept exactly as received.
                        row.push_bind(&event.hook_id)
                            .push_bind(&event.delivery_id)
                            .push_bind(indexed_text(&event.event))
                            .push_bind(event.action.as_deref().map(indexed_text))
                            .push_bind(event.repository.as_deref().map(indexed_text))
                            .push_bind(event.issue_number)
                            .push_bind(event.actor.as_deref().map(indexed_text))
                            .push_bind(event.received_at)
                            .push_bind(event.payload.as_str());
                    });
                    insert.push(ON_CONFLICT);
                    // Not cached: SQLite keeps a cached statement's last bound values (copies of the
                    // payloads) until the statement is used again, so a burst of large bodies would
                    // stay in memory long after it was committed.
                    let inserted: Vec<(i64, String, String)> =
                        insert.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
                    let chunk_intakes = match_inserted(chunk, inserted);
                    let fan_out: Vec<(i64, &NewEvent, &Arc<str>)> = chunk
                        .iter()
                        .zip(&chunk_intakes)
                        .filter_map(|(event, intake)| match intake {
                            Intake::Stored { event_id } => Some((*event_id, event)),
                            Intake::Duplicate => None,
                        })
                        .flat_map(|(id, event)| event.destinations.iter().map(move |to| (id, event, to)))
                        .collect();
                    for rows in fan_out.chunks(ROWS_PER_STATEMENT) {
                        let mut outbox = sqlx::QueryBuilder::new(INSERT_OUTBOX);
                        outbox.push_values(rows, |mut row, (event_id, event, to)| {
                            row.push_bind(*event_id)
                                .push_bind(&***to)
                                .push("'pending', 0")
                                .push_bind(event.received_at)
                                .push_bind(event.received_at)
                                .push_bind(event.received_at);
                        });
                        outbox.build().execute(&mut *tx).await?;
                    }
                    intakes.extend(chunk_intakes);
                }
                if self.backend() == Backend::Postgres {
                    let woken = destinations_of_stored(events, &intakes);
                    if !woken.is_empty() {
                        // Delivered to every listening instance when (and only if) the commit
                        // succeeds.
                        sqlx::query(NOTIFY_OUTBOX).bind(woken.join(",")).execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(intakes)
            }
            .await;
            match committed {
                Ok(intakes) => {
                    if sqlite {
                        // Committed already: a failure here must not turn the answer into a 503.
                        if let Err(error) = sqlx::query(SYNC_NORMAL).execute(&mut *connection).await {
                            tracing::warn!(error = %error, "restoring synchronous=NORMAL failed");
                            discard!(connection);
                        }
                    }
                    Ok(intakes)
                }
                Err(error) => {
                    discard!(connection);
                    Err(error)
                }
            }
        })
    }

    /// Appends a batch like [`Store::append_events`], but when the batch fails for a reason
    /// that may lie in one event (its data, its size on a nearly full disk), splits it in halves
    /// and commits each on its own, recursively: one event the store refuses is refused alone
    /// and never takes the others down. Errors of the connection itself fail the whole range at
    /// once, since splitting would only repeat them. Results are in the order of `events`.
    pub async fn append_isolating(
        &self,
        events: &[NewEvent],
    ) -> Vec<Result<Intake, Arc<StoreError>>> {
        let mut results: Vec<Option<Result<Intake, Arc<StoreError>>>> = vec![None; events.len()];
        // Ranges still to commit, the next one on top, so earlier events commit first (the first
        // of two identical keys is the stored one, as within one batch).
        let mut ranges = Vec::with_capacity(16);
        ranges.push(0..events.len());
        while let Some(range) = ranges.pop() {
            if range.is_empty() {
                continue;
            }
            match self.append_events(&events[range.clone()]).await {
                Ok(intakes) => {
                    for (slot, intake) in results[range].iter_mut().zip(intakes) {
                        *slot = Some(Ok(intake));
                    }
                }
                Err(error) if range.len() > 1 && !is_connection_error(&error) => {
                    tracing::warn!(error = %error, events = range.len(), "a group commit failed; committing its halves apart");
                    let middle = range.start + range.len() / 2;
                    ranges.push(middle..range.end);
                    ranges.push(range.start..middle);
                }
                Err(error) => {
                    let error = Arc::new(error);
                    for slot in &mut results[range] {
                        *slot = Some(Err(Arc::clone(&error)));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| result.expect("every range is committed or failed"))
            .collect()
    }

    /// One stored event by id.
    pub async fn event(&self, id: i64) -> Result<Option<StoredEvent>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(SELECT_EVENT).bind(id).fetch_optional(pool).await
        })
    }

    /// How many events are stored (all kinds, duplicates excluded).
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(pool).await
        })
    }
}

/// The destinations that got new rows in a committed batch, each once.
pub(super) fn destinations_of_stored<'a>(
    events: &'a [NewEvent],
    intakes: &[Intake],
) -> Vec<&'a str> {
    let names: BTreeSet<&str> = events
        .iter()
        .zip(intakes)
        .filter(|(_, intake)| matches!(intake, Intake::Stored { .. }))
        .flat_map(|(event, _)| event.destinations.iter().map(|to| &**to))
        .collect();
    names.into_iter().collect()
}

/// Pairs each event of a chunk with the row the INSERT returned for it, if any. Rows come back
/// in no particular order and only for events that were new; when one key occurs twice in a
/// chunk, the first occurrence is the stored one and the second a duplicate.
fn match_inserted(chunk: &[NewEvent], inserted: Vec<(i64, String, String)>) -> Vec<Intake> {
    let mut new_ids: HashMap<(String, String), i64> = inserted
        .into_iter()
        .map(|(id, hook, delivery)| ((hook, delivery), id))
        .collect();
    chunk
        .iter()
        .map(
            |event| match new_ids.remove(&(event.hook_id.clone(), event.delivery_id.clone())) {
                Some(event_id) => Intake::Stored { event_id },
                None => Intake::Duplicate,
            },
        )
        .collect()
}
