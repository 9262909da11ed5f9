//! A small GCRA rate limiter: `per_second` on average, bursts of `burst`, waiters served in turn.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces calls to an external API.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    theoretical_arrival: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `per_second <= 0` or non-finite disables limiting.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let interval = if per_second.is_finite() && per_second > 0.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            theoretical_arrival: Mutex::new(None),
        }
    }

    /// How long the caller must wait before its call, reserving its slot.
    pub fn reserve(&self, now: Instant) -> Duration {
        if self.interval.is_zero() {
            return Duration::ZERO;
        }
        let mut tat = self
            .theoretical_arrival
            .lock()
            .expect("rate limiter poisoned");
        let arrival = tat.map_or(now, |tat| tat.max(now));
        *tat = Some(arrival + self.interval);
        (arrival.checked_sub(self.tolerance).unwrap_or(now)).saturating_duration_since(now)
    }

    /// Waits for this caller's turn.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_spaces_calls() {
        let limiter = RateLimiter::new(1.0, 3);
        let now = Instant::now();
        let waits: Vec<u64> = (0..6).map(|_| limiter.reserve(now).as_secs()).collect();
        assert_eq!(waits, vec![0, 0, 0, 1, 2, 3]);
    }

    #[test]
    fn refills_over_time() {
        let limiter = RateLimiter::new(2.0, 1);
        let start = Instant::now();
        assert_eq!(limiter.reserve(start), Duration::ZERO);
        assert_eq!(limiter.reserve(start), Duration::from_millis(500));
        assert_eq!(
            limiter.reserve(start + Duration::from_secs(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn zero_rate_disables_limiting() {
        let limiter = RateLimiter::new(0.0, 1);
        let now = Instant::now();
        assert!((0..100).all(|_| limiter.reserve(now).is_zero()));
    }
}
