//! Retention: forgetting what is older than `HERALD_RETENTION`. Finished outbox rows (delivered
//! or dead) with their attempt history go first, then the raw events no row waits for any more.
//! The issue lifecycle tables, which the metrics read, are kept whatever their age. Deletes run in
//! small batches so no write holds the store for long.

use super::{Store, StoreError, dispatch};

const PRUNE_OUTBOX: &str = "DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox
        WHERE status IN ('delivered', 'dead') AND updated_at < $1
        ORDER BY id LIMIT $2)";

const PRUNE_EVENTS: &str = "DELETE FROM events WHERE id IN (
        SELECT e.id FROM events e
        WHERE e.received_at < $1
          AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id)
        ORDER BY e.id LIMIT $2)";

const PRUNE_COALESCED: &str = "DELETE FROM slack_coalesced
    WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = slack_coalesced.row_id)";

/// Rows deleted per statement.
const BATCH: i64 = 2_000;

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub events: u64,
}

impl Store {
    /// Deletes finished deliveries last updated before `cutoff_ms` and events received before it
    /// that no delivery refers to any more.
    pub async fn prune(&self, cutoff_ms: i64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        loop {
            let done = self.delete_batch(PRUNE_OUTBOX, cutoff_ms).await?;
            pruned.deliveries += done;
            if done < BATCH as u64 {
                break;
            }
        }
        loop {
            let done = self.delete_batch(PRUNE_EVENTS, cutoff_ms).await?;
            pruned.events += done;
            if done < BATCH as u64 {
                break;
            }
        }
        if pruned.deliveries > 0 {
            let _turn = self.write_turn().await;
            dispatch!(self, pool => {
                sqlx::query(PRUNE_COALESCED).execute(pool).await?;
            });
        }
        Ok(pruned)
    }

    async fn delete_batch(&self, sql: &'static str, cutoff_ms: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(sql).bind(cutoff_ms).bind(BATCH).execute(pool).await?.rows_affected()
        });
        Ok(done)
    }
}
