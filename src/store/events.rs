//! Appending events (with their outbox rows, in one transaction) and reading them back.

use super::{Backend, Intake, NOTIFY_OUTBOX, NewEvent, Store, StoreError, StoredEvent, dispatch};

const INSERT_EVENT: &str = "INSERT INTO events
    (hook_id, delivery_id, event, action, repository, issue_number, actor, received_at, payload)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (hook_id, delivery_id) DO NOTHING
    RETURNING id";

const INSERT_OUTBOX: &str = "INSERT INTO outbox
    (event_id, sink, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES ($1, $2, 'pending', 0, $3, $3, $3)";

const SELECT_EVENT: &str = "SELECT id, hook_id, delivery_id, event, action, repository,
    issue_number, actor, received_at, payload FROM events WHERE id = $1";

impl Store {
    /// Appends a batch of events in one transaction (group commit): all are durable when this
    /// returns `Ok`, none when it returns `Err`. Redeliveries come back as [`Intake::Duplicate`],
    /// decided by the unique key, so concurrent instances cannot both store one.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Intake>, StoreError> {
        dispatch!(self, pool, begin => {
            let mut tx = pool.begin_with(begin).await?;
            let mut intakes = Vec::with_capacity(events.len());
            for event in events {
                let id: Option<i64> = sqlx::query_scalar(INSERT_EVENT)
                    .bind(&event.hook_id)
                    .bind(&event.delivery_id)
                    .bind(&event.event)
                    .bind(&event.action)
                    .bind(&event.repository)
                    .bind(event.issue_number)
                    .bind(&event.actor)
                    .bind(event.received_at)
                    .bind(&event.payload)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(event_id) = id else {
                    intakes.push(Intake::Duplicate);
                    continue;
                };
                for sink in &event.sinks {
                    sqlx::query(INSERT_OUTBOX)
                        .bind(event_id)
                        .bind(sink)
                        .bind(event.received_at)
                        .execute(&mut *tx)
                        .await?;
                }
                intakes.push(Intake::Stored { event_id });
            }
            if self.backend() == Backend::Postgres && intakes.iter().any(|i| matches!(i, Intake::Stored { .. })) {
                // Delivered to every listening instance when (and only if) the commit succeeds.
                sqlx::query(NOTIFY_OUTBOX).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(intakes)
        })
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
