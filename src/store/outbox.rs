//! The outbox: one row per (event, sink), claimed by delivery workers under a lease.
//!
//! A claim sets `lease_owner`/`lease_until`; `attempt_started_at` is written just before a request
//! leaves, so after a crash a row whose attempt may have reached the sink can be told from one
//! that never left (see `Claimed::interrupted`).

use std::fmt;

use super::{Backend, SYNC_FULL, SYNC_NORMAL, Store, StoreError, StoredEvent, dispatch};

const CLAIM_SQLITE: &str =
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 + $3, updated_at = $2
    WHERE id IN (SELECT id FROM outbox
                 WHERE status = 'pending' AND next_attempt_at <= $2
                   AND (lease_until IS NULL OR lease_until <= $2)
                 ORDER BY next_attempt_at, id LIMIT $4)
    RETURNING id, event_id, sink, attempts, attempt_started_at";

const CLAIM_POSTGRES: &str =
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 + $3, updated_at = $2
    WHERE id IN (SELECT id FROM outbox
                 WHERE status = 'pending' AND next_attempt_at <= $2
                   AND (lease_until IS NULL OR lease_until <= $2)
                 ORDER BY next_attempt_at, id LIMIT $4
                 FOR UPDATE SKIP LOCKED)
    RETURNING id, event_id, sink, attempts, attempt_started_at";

const START_ATTEMPT: &str =
    "UPDATE outbox SET attempt_started_at = $3, lease_until = $3 + $4, updated_at = $3
    WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";

const FINISH: &str = "UPDATE outbox SET status = $3, attempts = $4, next_attempt_at = $5,
        last_error = $6, lease_owner = NULL, lease_until = NULL, attempt_started_at = NULL,
        updated_at = $7
    WHERE id = $1 AND lease_owner = $2";

const RELEASE_LEASES: &str = "UPDATE outbox SET lease_owner = NULL, lease_until = NULL
    WHERE status = 'pending' AND lease_until IS NOT NULL";

const LIST: &str = "SELECT o.id, o.event_id, o.sink, o.status, o.attempts, o.next_attempt_at,
        o.last_error, o.updated_at, e.event, e.action, e.repository, e.issue_number, e.delivery_id
    FROM outbox o JOIN events e ON e.id = o.event_id
    WHERE ($1 = 'all' OR o.status = $1)
    ORDER BY o.id DESC LIMIT $2";

const RETRY_DEAD: &str = "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1,
        attempt_started_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $1
    WHERE status = 'dead' AND ($2 OR id = $3)";

const DEPTH: &str = "SELECT
        COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0),
        COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0)
    FROM outbox";

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery a worker owns until its lease runs out.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub sink: String,
    /// Attempts already made before this one.
    pub attempts: i64,
    /// A previous attempt started and its outcome was never recorded (the process died while
    /// the request was in flight), so the sink may or may not have received it.
    pub interrupted: bool,
    pub event: StoredEvent,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    event_id: i64,
    sink: String,
    attempts: i64,
    attempt_started_at: Option<i64>,
}

/// How an attempt ended, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Delivered {
        attempts: i64,
    },
    Retry {
        attempts: i64,
        next_attempt_at: i64,
        error: String,
    },
    Dead {
        attempts: i64,
        error: String,
    },
}

/// One outbox row for `herald deliveries`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: i64,
    pub sink: String,
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

/// Deliveries waiting and dead, for `/metrics` and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub pending: i64,
    pub dead: i64,
}

impl Store {
    /// Claims up to `limit` due deliveries for `owner` until `now + lease_ms`. Rows leased by
    /// another live worker are skipped; rows whose lease expired are taken over.
    pub async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let turn = self.write_turn().await;
        let rows: Vec<ClaimedRow> = dispatch!(self, pool => {
            sqlx::query_as(sql).bind(owner).bind(now).bind(lease_ms).bind(limit).fetch_all(pool).await?
        });
        drop(turn);
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(event) = self.event(row.event_id).await? else {
                continue; // Unreachable with the foreign key; nothing to deliver.
            };
            claimed.push(Claimed {
                id: row.id,
                sink: row.sink,
                attempts: row.attempts,
                interrupted: row.attempt_started_at.is_some(),
                event,
            });
        }
        claimed.sort_by_key(|claim| claim.id);
        Ok(claimed)
    }

    /// Records, durably, that a request is about to leave, and renews the lease. Returns `false`
    /// when the lease was lost to another worker, in which case nothing must be sent.
    pub async fn start_attempt(
        &self,
        id: i64,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let sqlite = self.backend() == Backend::Sqlite;
        let done = dispatch!(self, pool => {
            let mut connection = pool.acquire().await?;
            if sqlite {
                // This record is what prevents a second message after a crash: make it as
                // durable as an event. At most one per notification, so the fsync is cheap.
                sqlx::query(SYNC_FULL).execute(&mut *connection).await?;
            }
            let done = sqlx::query(START_ATTEMPT)
                .bind(id)
                .bind(owner)
                .bind(now)
                .bind(lease_ms)
                .execute(&mut *connection)
                .await?
                .rows_affected();
            if sqlite && let Err(error) = sqlx::query(SYNC_NORMAL).execute(&mut *connection).await {
                tracing::warn!(error = %error, "restoring synchronous=NORMAL failed");
            }
            done
        });
        Ok(done == 1)
    }

    /// Records how an attempt ended and releases the lease. Returns `false` when `owner` no
    /// longer held it.
    pub async fn finish(
        &self,
        id: i64,
        owner: &str,
        now: i64,
        finish: &Finish,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let (status, attempts, next_at, error) = match finish {
            Finish::Delivered { attempts } => (DeliveryStatus::Delivered, *attempts, now, None),
            Finish::Retry {
                attempts,
                next_attempt_at,
                error,
            } => (
                DeliveryStatus::Pending,
                *attempts,
                *next_attempt_at,
                Some(error.as_str()),
            ),
            Finish::Dead { attempts, error } => {
                (DeliveryStatus::Dead, *attempts, now, Some(error.as_str()))
            }
        };
        let done = dispatch!(self, pool => {
            sqlx::query(FINISH)
                .bind(id)
                .bind(owner)
                .bind(status.as_str())
                .bind(attempts)
                .bind(next_at)
                .bind(error)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Frees every lease at once. Only for a store one process owns (SQLite), at start-up, so
    /// work a crashed process held resumes at once instead of when its leases expire.
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => sqlx::query(RELEASE_LEASES).execute(pool).await?.rows_affected());
        Ok(done)
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
}

const RELEASE_LEASE: &str = "UPDATE outbox SET lease_owner = NULL, lease_until = NULL
    WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";

impl Store {
    /// Gives a claimed row back without attempting it (shutdown before the attempt began).
    pub async fn release_lease(&self, id: i64, owner: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(RELEASE_LEASE).bind(id).bind(owner).execute(pool).await?;
        });
        Ok(())
    }
}
