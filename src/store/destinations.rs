//! State every instance shares per destination: the rate limiter's next free slot and a pause the
//! destination asked for (`Retry-After`). Read and written in one statement each, so instances
//! on one PostgreSQL database share one rate.

use super::{Backend, Store, StoreError, dispatch};

const TAKE_SLOT_POSTGRES: &str = "INSERT INTO destination_state (destination, next_slot_at)
    VALUES ($1, $2 + $3)
    ON CONFLICT (destination) DO UPDATE
        SET next_slot_at = GREATEST(destination_state.next_slot_at, $2) + $3
    RETURNING next_slot_at";

const TAKE_SLOT_SQLITE: &str = "INSERT INTO destination_state (destination, next_slot_at)
    VALUES ($1, $2 + $3)
    ON CONFLICT (destination) DO UPDATE
        SET next_slot_at = MAX(destination_state.next_slot_at, $2) + $3
    RETURNING next_slot_at";

const PAUSE_POSTGRES: &str =
    "INSERT INTO destination_state (destination, paused_until, pause_reason)
    VALUES ($1, $2, $3)
    ON CONFLICT (destination) DO UPDATE
        SET paused_until = GREATEST(destination_state.paused_until, $2), pause_reason = $3";

const PAUSE_SQLITE: &str = "INSERT INTO destination_state (destination, paused_until, pause_reason)
    VALUES ($1, $2, $3)
    ON CONFLICT (destination) DO UPDATE
        SET paused_until = MAX(destination_state.paused_until, $2), pause_reason = $3";

const PAUSED_UNTIL: &str =
    "SELECT paused_until FROM destination_state WHERE destination = $1 AND paused_until > $2";

impl Store {
    /// Reserves the next send slot of `destination` for a rate of one per `interval_ms`,
    /// returning the theoretical arrival time of this send (GCRA): the caller may send once
    /// `now >= arrival - burst tolerance`.
    pub async fn take_slot(
        &self,
        destination: &str,
        now: i64,
        interval_ms: i64,
    ) -> Result<i64, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => TAKE_SLOT_SQLITE,
            Backend::Postgres => TAKE_SLOT_POSTGRES,
        };
        let _turn = self.write_turn().await;
        let next: i64 = dispatch!(self, pool => {
            sqlx::query_scalar(sql).bind(destination).bind(now).bind(interval_ms).fetch_one(pool).await?
        });
        Ok(next - interval_ms)
    }

    /// Pauses `destination` for every instance until `until` (never shortening a longer pause).
    pub async fn pause_destination(
        &self,
        destination: &str,
        until: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => PAUSE_SQLITE,
            Backend::Postgres => PAUSE_POSTGRES,
        };
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(sql).bind(destination).bind(until).bind(reason).execute(pool).await?;
        });
        Ok(())
    }

    /// Until when `destination` is paused, if it is at `now`.
    pub async fn paused_until(
        &self,
        destination: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_scalar(PAUSED_UNTIL).bind(destination).bind(now).fetch_optional(pool).await
        })
    }
}
