//! What `herald redeliver` remembers: each request it made to GitHub (hook, delivery guid, the
//! failed attempt, when), which deliveries herald stored itself, and on PostgreSQL the lock that
//! lets one instance at a time run a pass over a hook.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::{Store, StoreError, dispatch};

/// Bound parameters per `IN (…)` list, well under both databases' limits.
const KEYS_PER_STATEMENT: usize = 256;

const CLAIM: &str = "INSERT INTO redelivery_requests
    (hook, guid, delivery_id, delivered_at, requested_at, state)
    VALUES ($1, $2, $3, $4, $5, 'asking')
    ON CONFLICT (hook, delivery_id) DO NOTHING";

const SETTLE: &str = "UPDATE redelivery_requests SET state = $3, detail = $4
    WHERE hook = $1 AND delivery_id = $2";

const RELEASE: &str = "DELETE FROM redelivery_requests WHERE hook = $1 AND delivery_id = $2";

const FORGET_ABANDONED: &str =
    "DELETE FROM redelivery_requests WHERE hook = $1 AND state = 'asking' AND requested_at < $2";

const PRUNE: &str = "DELETE FROM redelivery_requests WHERE hook = $1 AND requested_at < $2";

/// Longest the connection that holds the lock takes to open (the pool's acquire timeout).
const LOCK_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An arbitrary constant that keeps herald's advisory locks apart from anyone else's on the same
/// database (the first key of `pg_try_advisory_lock(int, int)`): "hrld".
const LOCK_CLASS: i32 = 0x6872_6c64;

/// Where a request to redeliver stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Recorded, and on its way to GitHub; found later only after a crash mid-request.
    Asking,
    /// GitHub accepted it (202).
    Asked,
    /// GitHub said it will not (e.g. 422: the delivery is too old).
    Refused,
}

impl RequestState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Asking => "asking",
            Self::Asked => "asked",
            Self::Refused => "refused",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "asked" => Self::Asked,
            "refused" => Self::Refused,
            _ => Self::Asking,
        }
    }
}

/// One request herald made earlier for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRequest {
    /// The failed attempt it asked GitHub to redeliver.
    pub delivery_id: i64,
    /// When GitHub made that attempt (Unix ms, GitHub's clock).
    pub delivered_at: i64,
    /// When herald asked (Unix ms, herald's clock).
    pub requested_at: i64,
    pub state: RequestState,
}

/// A request about to be made: recorded first, so two instances never both make it.
#[derive(Debug, Clone, Copy)]
pub struct NewRequest<'a> {
    /// `repos/OWNER/NAME/hooks/ID` or `orgs/ORG/hooks/ID`, lower-cased.
    pub hook: &'a str,
    pub guid: &'a str,
    pub delivery_id: i64,
    pub delivered_at: i64,
    pub requested_at: i64,
}

/// Held while one instance runs a pass over a hook (PostgreSQL: a session advisory lock on a
/// connection of its own, outside the pool). Dropping it closes that connection, which releases
/// the lock even when the pass was cancelled halfway; [`PassLock::release`] does it gracefully.
#[derive(Debug)]
pub struct PassLock {
    connection: Option<PgConnection>,
}

impl PassLock {
    /// Ends the session that holds the lock, which releases it.
    pub async fn release(mut self) {
        if let Some(connection) = self.connection.take()
            && let Err(error) = connection.close().await
        {
            tracing::debug!(error = %error, "closing the redeliver lock's connection");
        }
    }
}

impl Store {
    /// Which of `guids` herald stored itself as events of hook `hook_id` (GitHub's numeric hook
    /// id, as `X-GitHub-Hook-ID` carries it; events stored without that header count too).
    pub async fn stored_deliveries(
        &self,
        hook_id: &str,
        guids: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let mut stored = HashSet::new();
        for chunk in guids.chunks(KEYS_PER_STATEMENT) {
            let found: Vec<String> = dispatch!(self, pool => {
                let mut select = sqlx::QueryBuilder::new(
                    "SELECT delivery_id FROM events WHERE hook_id IN (",
                );
                select.push_bind(hook_id).push(", '') AND delivery_id IN (");
                let mut list = select.separated(", ");
                for guid in chunk {
                    list.push_bind(*guid);
                }
                select.push(")");
                select.build_query_scalar().fetch_all(pool).await?
            });
            stored.extend(found);
        }
        Ok(stored)
    }

    /// Every request herald made earlier for `guids` on `hook`, by guid.
    pub async fn past_redelivery_requests(
        &self,
        hook: &str,
        guids: &[&str],
    ) -> Result<HashMap<String, Vec<PastRequest>>, StoreError> {
        let mut requests: HashMap<String, Vec<PastRequest>> = HashMap::new();
        for chunk in guids.chunks(KEYS_PER_STATEMENT) {
            let rows: Vec<(String, i64, i64, i64, String)> = dispatch!(self, pool => {
                let mut select = sqlx::QueryBuilder::new(
                    "SELECT guid, delivery_id, delivered_at, requested_at, state
                     FROM redelivery_requests WHERE hook = ",
                );
                select.push_bind(hook).push(" AND guid IN (");
                let mut list = select.separated(", ");
                for guid in chunk {
                    list.push_bind(*guid);
                }
                select.push(") ORDER BY delivered_at, delivery_id");
                select.build_query_as().fetch_all(pool).await?
            });
            for (guid, delivery_id, delivered_at, requested_at, state) in rows {
                requests.entry(guid).or_default().push(PastRequest {
                    delivery_id,
                    delivered_at,
                    requested_at,
                    state: RequestState::parse(&state),
                });
            }
        }
        Ok(requests)
    }

    /// Records a request before it is made. `false` when it was recorded already (by another
    /// instance, or an earlier run): then it must not be made again.
    pub async fn claim_redelivery(&self, request: NewRequest<'_>) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let inserted = dispatch!(self, pool => {
            sqlx::query(CLAIM)
                .bind(request.hook)
                .bind(request.guid)
                .bind(request.delivery_id)
                .bind(request.delivered_at)
                .bind(request.requested_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Records GitHub's answer to a claimed request: accepted, or refused with its reason.
    pub async fn settle_redelivery(
        &self,
        hook: &str,
        delivery_id: i64,
        state: RequestState,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(SETTLE)
                .bind(hook)
                .bind(delivery_id)
                .bind(state.as_str())
                .bind(detail)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets a claimed request that could not be made (GitHub unreachable, or the pass
    /// stopped), so the next pass makes it.
    pub async fn release_redelivery(&self, hook: &str, delivery_id: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(RELEASE).bind(hook).bind(delivery_id).execute(pool).await?;
        });
        Ok(())
    }

    /// Forgets requests of `hook` still marked as on their way although made before
    /// `requested_before` (a crash between recording and asking), so they are made again; and
    /// requests made before `prune_before`, for deliveries GitHub no longer keeps. Returns how
    /// many abandoned requests were forgotten.
    pub async fn forget_old_redeliveries(
        &self,
        hook: &str,
        requested_before: i64,
        prune_before: i64,
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            let abandoned = sqlx::query(FORGET_ABANDONED)
                .bind(hook)
                .bind(requested_before)
                .execute(pool)
                .await?
                .rows_affected();
            sqlx::query(PRUNE).bind(hook).bind(prune_before).execute(pool).await?;
            Ok(abandoned)
        })
    }

    /// Takes the lock for a pass over `hook`: `None` while another session holds it. On SQLite
    /// one instance owns the file, and the request records alone keep concurrent runs apart.
    pub async fn try_lock_redeliver(&self, hook: &str) -> Result<Option<PassLock>, StoreError> {
        let Self::Postgres(pool) = self else {
            return Ok(Some(PassLock { connection: None }));
        };
        let options = pool.connect_options();
        let mut connection = tokio::time::timeout(LOCK_CONNECT_TIMEOUT, async {
            PgConnection::connect_with(&options).await
        })
        .await
        .map_err(|_| StoreError::PoolTimedOut)??;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(lock_key(hook))
            .fetch_one(&mut connection)
            .await?;
        if locked {
            Ok(Some(PassLock {
                connection: Some(connection),
            }))
        } else {
            let _ = connection.close().await;
            Ok(None)
        }
    }
}

/// A stable 32-bit key for `hook` (FNV-1a), the same in every instance and every version.
fn lock_key(hook: &str) -> i32 {
    let hash = hook.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_differ_by_hook() {
        // FNV-1a's published value for "a", so instances of any version agree.
        assert_eq!(lock_key("a") as u32, 0xe40c_292c);
        assert_ne!(
            lock_key("repos/acme/widgets/hooks/1"),
            lock_key("repos/acme/widgets/hooks/2")
        );
    }

    #[test]
    fn request_states_round_trip() {
        for state in [
            RequestState::Asking,
            RequestState::Asked,
            RequestState::Refused,
        ] {
            assert_eq!(RequestState::parse(state.as_str()), state);
        }
    }
}
