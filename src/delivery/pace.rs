//! Pacing one destination: its rate limit (GCRA: `per_second` on average with bursts of `burst`)
//! and the pauses it asks for (`Retry-After`). Pauses live in the store, where claims respect
//! them; on PostgreSQL the rate does too, so every instance shares one rate and one pause. On
//! SQLite (one instance) the rate stays in process.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::sinks::RateLimiter;
use crate::store::{Backend, Store, StoreError};
use crate::time_util::{duration_ms, now_ms};

/// The pace of one destination.
pub struct Pacer {
    destination: Arc<str>,
    /// Milliseconds between sends on average; 0 = no limit.
    interval_ms: i64,
    /// How far ahead of its slot a send may go (the burst).
    tolerance_ms: i64,
    /// `Some` on PostgreSQL: the rate is shared through the store.
    shared: Option<Store>,
    store: Store,
    local: RateLimiter,
    /// Unix ms until which this process holds off (its own view of the pause).
    paused_until: AtomicI64,
}

impl Pacer {
    /// `per_second <= 0` (or not finite) means no limit.
    pub fn new(destination: Arc<str>, per_second: f64, burst: u32, store: &Store) -> Self {
        let interval = if per_second.is_finite() && per_second > 0.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        let interval_ms = duration_ms(interval);
        Self {
            destination,
            interval_ms,
            tolerance_ms: interval_ms * i64::from(burst.saturating_sub(1)),
            shared: (store.backend() == Backend::Postgres).then(|| store.clone()),
            store: store.clone(),
            local: RateLimiter::new(per_second, burst),
            paused_until: AtomicI64::new(0),
        }
    }

    /// Whether sends are rate limited at all.
    pub fn is_limited(&self) -> bool {
        self.interval_ms > 0
    }

    /// Sends that fit in about one second: what a lane claims at once when limited.
    pub fn per_second_budget(&self) -> usize {
        if self.interval_ms == 0 {
            usize::MAX
        } else {
            usize::try_from((1_000 + self.tolerance_ms) / self.interval_ms)
                .unwrap_or(1)
                .max(1)
        }
    }

    /// Reserves the next send slot and says how long to wait for it.
    pub async fn reserve(&self) -> Result<Duration, StoreError> {
        if self.interval_ms == 0 {
            return Ok(Duration::ZERO);
        }
        match &self.shared {
            None => Ok(self.local.reserve(tokio::time::Instant::now())),
            Some(store) => {
                let now = now_ms();
                let arrival = store
                    .take_slot(&self.destination, now, self.interval_ms)
                    .await?;
                let wait = arrival - self.tolerance_ms - now;
                Ok(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
            }
        }
    }

    /// Holds every send to this destination until `until` (Unix ms), in every instance (the
    /// pause is kept in the store, where claims respect it, and survives a restart).
    pub async fn pause(&self, until: i64, reason: &str) {
        self.paused_until.fetch_max(until, Ordering::Relaxed);
        if let Err(error) = self
            .store
            .pause_destination(&self.destination, until, reason)
            .await
        {
            tracing::warn!(destination = %self.destination, error = %error, "recording a pause failed; other instances may keep sending");
        }
    }

    /// How long this process still holds off, if it does.
    pub fn paused_for(&self, now: i64) -> Option<Duration> {
        let until = self.paused_until.load(Ordering::Relaxed);
        (until > now).then(|| Duration::from_millis(u64::try_from(until - now).unwrap_or(0)))
    }
}
