//! Replaying stored events to a destination: reading the event log in id order with filters, and
//! queueing outbox rows that do not exist yet (never twice for one event and destination).

use super::{Store, StoreError, StoredEvent, dispatch};

const PAGE: &str = "SELECT id, hook_id, delivery_id, event, action, repository, issue_number,
        actor, received_at, payload
    FROM events
    WHERE id > $1 AND received_at >= $2 AND received_at < $3
      AND ($4 IS NULL OR event = $4) AND ($5 IS NULL OR action = $5)
    ORDER BY id LIMIT $6";

const QUEUE: &str = "INSERT INTO outbox
    (event_id, destination, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES ($1, $2, 'pending', 0, $3, $3, $3)
    ON CONFLICT (event_id, destination) DO NOTHING";

/// Which stored events a replay reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    /// Received at or after (Unix ms).
    pub since_ms: i64,
    /// Received before (Unix ms).
    pub until_ms: i64,
    pub event: Option<String>,
    pub action: Option<String>,
}

impl Store {
    /// Up to `limit` stored events with ids above `after_id` that pass `filter`, in id order.
    pub async fn events_page(
        &self,
        after_id: i64,
        limit: i64,
        filter: &ReplayFilter,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(PAGE)
                .bind(after_id)
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(filter.event.as_deref())
                .bind(filter.action.as_deref())
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// Queues these events to `destination`, due at `now`, in one transaction. Events that already
    /// have a row for it (delivered, pending or dead) are left alone. Returns how many were queued.
    pub async fn queue_to(
        &self,
        destination: &str,
        event_ids: &[i64],
        now: i64,
    ) -> Result<u64, StoreError> {
        if event_ids.is_empty() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        let queued = dispatch!(self, pool, begin => {
            let mut tx = pool.begin_with(begin).await?;
            let mut queued = 0;
            for id in event_ids {
                queued += sqlx::query(QUEUE)
                    .bind(*id)
                    .bind(destination)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            queued
        });
        if queued > 0 {
            self.announce_outbox().await?;
        }
        Ok(queued)
    }
}
