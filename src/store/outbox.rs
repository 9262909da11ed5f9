//! The outbox: one row per (event, destination), claimed by that destination's lane under a
//! lease, a batch at a time.
//!
//! A claim sets `lease_owner`/`lease_until`; `attempt_started_at` is written just before a request
//! leaves (for destinations that cannot be sent the same message twice), so after a crash a row
//! whose attempt may have arrived can be told from one that never left (`Claimed::interrupted`).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Store, StoreError, StoredEvent, dispatch};
use crate::domain::{Claimed, DeliveryStatus, Finish};

const CLAIM_POSTGRES: &str =
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 + $3, updated_at = $2
    WHERE id IN (SELECT id FROM outbox
                 WHERE destination = $5 AND status = 'pending' AND next_attempt_at <= $2
                   AND (lease_until IS NULL OR lease_until <= $2)
                   AND NOT EXISTS (SELECT 1 FROM destination_state s
                                   WHERE s.destination = $5 AND s.paused_until > $2)
                 ORDER BY next_attempt_at, id LIMIT $4
                 FOR UPDATE SKIP LOCKED)
    RETURNING id, event_id, attempts, next_attempt_at, attempt_started_at";

/// [`CLAIM_POSTGRES`] that also marks every claimed row's attempt as started, in the same
/// statement, and returns the mark each row had before (an earlier attempt that may have arrived).
const CLAIM_STARTED_POSTGRES: &str = "WITH picked AS (
        SELECT id, attempt_started_at FROM outbox
        WHERE destination = $5 AND status = 'pending' AND next_attempt_at <= $2
          AND (lease_until IS NULL OR lease_until <= $2)
          AND NOT EXISTS (SELECT 1 FROM destination_state s
                          WHERE s.destination = $5 AND s.paused_until > $2)
        ORDER BY next_attempt_at, id LIMIT $4
        FOR UPDATE SKIP LOCKED)
    UPDATE outbox o SET lease_owner = $1, lease_until = $2 + $3, updated_at = $2,
        attempt_started_at = $2
    FROM picked WHERE o.id = picked.id
    RETURNING o.id, o.event_id, o.attempts, o.next_attempt_at, picked.attempt_started_at";

/// The events with these ids, on PostgreSQL: one statement (and one cached plan) for any number.
const SELECT_EVENTS_POSTGRES: &str = "SELECT id, hook_id, delivery_id, event, action, repository,
    issue_number, actor, received_at, payload FROM events WHERE id = ANY($1)";

/// Marks attempts as started (see [`Store::start_attempts`]) on PostgreSQL.
const START_POSTGRES: &str = "UPDATE outbox SET attempt_started_at = $1, lease_until = $2,
    updated_at = $1 WHERE id = ANY($3) AND lease_owner = $4 AND status = 'pending' RETURNING id";

const CANCEL_ATTEMPT: &str = "UPDATE outbox SET attempt_started_at = NULL, lease_owner = NULL,
        lease_until = NULL
    WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";

const LOG_ATTEMPTS: &str =
    "INSERT INTO attempts (outbox_id, started_at, finished_at, outcome, error) ";

/// Rows per multi-row statement, well under both databases' bound-parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

const RELEASE_LEASES: &str = "UPDATE outbox SET lease_owner = NULL, lease_until = NULL
    WHERE status = 'pending' AND lease_until IS NOT NULL";

const RELEASE_LEASE: &str = "UPDATE outbox SET lease_owner = NULL, lease_until = NULL
    WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";

const LIST: &str = "SELECT o.id, o.event_id, o.destination, o.status, o.attempts,
        o.next_attempt_at, o.last_error, o.updated_at, e.event, e.action, e.repository,
        e.issue_number, e.delivery_id
    FROM outbox o JOIN events e ON e.id = o.event_id
    WHERE ($1 = 'all' OR o.status = $1)
    ORDER BY o.id DESC LIMIT $2";

const ONE: &str = "SELECT o.id, o.event_id, o.destination, o.status, o.attempts,
        o.next_attempt_at, o.last_error, o.updated_at, e.event, e.action, e.repository,
        e.issue_number, e.delivery_id
    FROM outbox o JOIN events e ON e.id = o.event_id WHERE o.id = $1";

const ATTEMPTS: &str = "SELECT started_at, finished_at, outcome, error FROM attempts
    WHERE outbox_id = $1 ORDER BY id";

const RETRY_DEAD: &str = "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1,
        attempt_started_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $1
    WHERE status = 'dead' AND ($2 OR id = $3)";

const DEPTH: &str = "SELECT
        COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0),
        COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0)
    FROM outbox";

const PENDING_BY_DESTINATION: &str = "SELECT destination, COUNT(*) FROM outbox
    WHERE status = 'pending' GROUP BY destination ORDER BY destination";

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    event_id: i64,
    attempts: i64,
    next_attempt_at: i64,
    attempt_started_at: Option<i64>,
}

/// One outbox row for `herald deliveries`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: i64,
    pub destination: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub updated_at: i64,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub issue_number: Option<i64>,
    pub delivery_id: String,
}

/// One attempt that did not deliver, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: String,
    pub error: Option<String>,
}

/// Deliveries waiting and dead, for `/metrics` and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub pending: i64,
    pub dead: i64,
}

impl Store {
    /// Claims up to `limit` due deliveries of `destination` for `owner` until `now + lease_ms`,
    /// oldest first, with their events (read in one query). Rows leased by another live owner are
    /// skipped; rows whose lease expired are taken over.
    pub async fn claim(
        &self,
        destination: &str,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_marking(destination, owner, now, lease_ms, limit, false)
            .await
    }

    /// [`Store::claim`]; with `start`, each claimed row's attempt is also marked as started in
    /// the same durable transaction (see [`Store::claim_started`]).
    async fn claim_marking(
        &self,
        destination: &str,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
        start: bool,
    ) -> Result<Vec<Claimed>, StoreError> {
        let pool = match self {
            Self::Sqlite(_, _, direct) => {
                return super::outbox_direct::claim(
                    direct,
                    destination,
                    owner,
                    now,
                    lease_ms,
                    limit,
                    start,
                )
                .await;
            }
            Self::Postgres(pool) => pool,
        };
        let sql = if start {
            CLAIM_STARTED_POSTGRES
        } else {
            CLAIM_POSTGRES
        };
        let mut rows: Vec<ClaimedRow> = sqlx::query_as(sql)
            .bind(owner)
            .bind(now)
            .bind(lease_ms)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(destination)
            .fetch_all(pool)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        rows.sort_by_key(|row| row.id);
        let event_ids: Vec<i64> = rows.iter().map(|row| row.event_id).collect();
        let mut events = events_by_id(pool, &event_ids).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                // Always found: the foreign key keeps events for as long as their rows.
                let event = Arc::clone(events.get_mut(&row.event_id)?);
                Some(Claimed {
                    id: row.id,
                    destination: destination.to_owned(),
                    attempts: row.attempts,
                    due_at: row.next_attempt_at,
                    interrupted: row.attempt_started_at.is_some(),
                    event,
                })
            })
            .collect())
    }

    /// [`Store::claim`], and records durably that requests for the claimed rows are about to
    /// leave ([`Store::start_attempts`]): for a lane that sends everything it claims at once, one
    /// transaction instead of two. `Claimed::interrupted` still tells an earlier attempt that may
    /// have arrived.
    pub async fn claim_started(
        &self,
        destination: &str,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_marking(destination, owner, now, lease_ms, limit, true)
            .await
    }

    /// Records, durably, that requests for these rows are about to leave, and renews their lease.
    /// Returns the ids still held by `owner` (a row whose lease was lost must not be sent).
    pub async fn start_attempts(
        &self,
        ids: &[i64],
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pool = match self {
            Self::Sqlite(_, _, direct) => {
                return super::outbox_direct::start_attempts(direct, ids, owner, now, lease_ms)
                    .await;
            }
            Self::Postgres(pool) => pool,
        };
        let started: Vec<i64> = sqlx::query_scalar(START_POSTGRES)
            .bind(now)
            .bind(now.saturating_add(lease_ms))
            .bind(ids)
            .bind(owner)
            .fetch_all(pool)
            .await?;
        Ok(started)
    }

    /// Takes back a start recorded by [`Store::start_attempts`] for a request that never left, and
    /// frees the row. Returns `false` when `owner` no longer held it.
    pub async fn cancel_attempt(&self, id: i64, owner: &str) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(CANCEL_ATTEMPT).bind(id).bind(owner).execute(pool).await?.rows_affected()
        });
        Ok(done == 1)
    }

    /// Records how attempts ended, releasing their leases: one statement for the whole batch
    /// (and one for the history of failed attempts, in the same transaction). Returns, per
    /// finish, whether `owner` still held the row (a row taken over by another owner is left to
    /// it).
    pub async fn finish(
        &self,
        finishes: &[Finish],
        owner: &str,
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        if let Self::Sqlite(_, _, direct) = self {
            return super::outbox_direct::finish(direct, finishes, owner, now).await;
        }
        let _turn = self.write_turn().await;
        let mut held = std::collections::HashSet::new();
        let logs = finishes.iter().any(|finish| finish.log.is_some());
        for chunk in finishes.chunks(ROWS_PER_STATEMENT) {
            let updated: Vec<i64> = dispatch!(self, pool, begin => {
                let mut connection = pool.acquire().await?;
                let result = async {
                    let mut tx = sqlx::Connection::begin_with(&mut *connection, begin).await?;
                    let mut update = sqlx::QueryBuilder::new("UPDATE outbox SET status = v.column2, \
                        attempts = v.column3, next_attempt_at = v.column4, last_error = v.column5, \
                        lease_owner = NULL, lease_until = NULL, \
                        attempt_started_at = CASE WHEN v.column6 = 1 THEN outbox.attempt_started_at END, \
                        updated_at = ");
                    update.push_bind(now);
                    update.push(" FROM (");
                    update.push_values(chunk, |mut row, finish| {
                        row.push_bind(finish.id)
                            .push_bind(finish.status.as_str())
                            .push_bind(finish.attempts)
                            .push_bind(finish.next_attempt_at)
                            .push_bind(finish.error.as_deref())
                            .push_bind(i64::from(finish.keep_started));
                    });
                    update.push(") AS v WHERE outbox.id = v.column1 AND outbox.lease_owner = ");
                    update.push_bind(owner);
                    update.push(" RETURNING outbox.id");
                    let updated: Vec<i64> = update.build_query_scalar().fetch_all(&mut *tx).await?;
                    if logs {
                        let with_logs: Vec<(&Finish, &crate::domain::AttemptLog)> = chunk
                            .iter()
                            .filter(|finish| updated.contains(&finish.id))
                            .filter_map(|finish| finish.log.as_ref().map(|log| (finish, log)))
                            .collect();
                        if !with_logs.is_empty() {
                            let mut insert = sqlx::QueryBuilder::new(LOG_ATTEMPTS);
                            insert.push_values(with_logs, |mut row, (finish, log)| {
                                row.push_bind(finish.id)
                                    .push_bind(log.started_at)
                                    .push_bind(log.finished_at)
                                    .push_bind(log.outcome)
                                    .push_bind(log.error.as_deref());
                            });
                            insert.build().execute(&mut *tx).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok::<_, StoreError>(updated)
                }
                .await;
                if result.is_err() {
                    // Never hand a connection whose transaction failed back to the pool.
                    connection.close_on_drop();
                }
                result?
            });
            held.extend(updated);
        }
        Ok(finishes
            .iter()
            .map(|finish| held.contains(&finish.id))
            .collect())
    }

    /// Frees every lease at once. Only for a store one process owns (SQLite), at start-up, so
    /// work a crashed process held resumes at once instead of when its leases expire.
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => sqlx::query(RELEASE_LEASES).execute(pool).await?.rows_affected());
        Ok(done)
    }

    /// Gives claimed rows back without attempting them (shutdown before the attempt began).
    pub async fn release(&self, ids: &[i64], owner: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            for id in ids {
                sqlx::query(RELEASE_LEASE).bind(*id).bind(owner).execute(pool).await?;
            }
        });
        Ok(())
    }

    /// The newest deliveries with `status` (or all of them), newest first.
    pub async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let status = status.map_or("all", DeliveryStatus::as_str);
        dispatch!(self, pool => {
            sqlx::query_as(LIST).bind(status).bind(limit).fetch_all(pool).await
        })
    }

    /// One delivery by row id.
    pub async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(ONE).bind(id).fetch_optional(pool).await
        })
    }

    /// The attempts of a delivery that did not deliver, oldest first.
    pub async fn attempts(&self, id: i64) -> Result<Vec<AttemptRow>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(ATTEMPTS).bind(id).fetch_all(pool).await
        })
    }

    /// Puts dead deliveries back in the queue, due now, with a fresh retry schedule: one by id,
    /// or all when `id` is `None`. Returns how many were revived.
    pub async fn retry_dead(&self, id: Option<i64>, now: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(RETRY_DEAD).bind(now).bind(id.is_none()).bind(id.unwrap_or(0)).execute(pool).await?.rows_affected()
        });
        if done > 0 {
            self.announce_outbox().await?;
        }
        Ok(done)
    }

    /// Counts of pending and dead deliveries.
    pub async fn queue_depth(&self) -> Result<QueueDepth, StoreError> {
        let (pending, dead): (i64, i64) = dispatch!(self, pool => {
            sqlx::query_as(DEPTH).fetch_one(pool).await?
        });
        Ok(QueueDepth { pending, dead })
    }

    /// Pending rows per destination, for the start-up warning about destinations this instance
    /// does not have.
    pub async fn pending_by_destination(&self) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(PENDING_BY_DESTINATION).fetch_all(pool).await
        })
    }
}

/// The events with these ids, in one query (PostgreSQL; SQLite reads them on its connection
/// thread with the claim).
async fn events_by_id(
    pool: &sqlx::PgPool,
    ids: &[i64],
) -> Result<HashMap<i64, Arc<StoredEvent>>, StoreError> {
    let events: Vec<StoredEvent> = sqlx::query_as(SELECT_EVENTS_POSTGRES)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    Ok(events
        .into_iter()
        .map(|event| (event.id, Arc::new(event)))
        .collect())
}
