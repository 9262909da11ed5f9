//! What to do after an attempt: the retry schedule with jitter, `Retry-After` clamped, and the
//! dead letter after the last delay. Pure, so the policy is tested as a table.

use std::time::Duration;

use super::Outcome;
use crate::config::RetrySchedule;

/// The longest wait a sink's `Retry-After` can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Relative spread of the jitter around each scheduled delay (±20 %).
const JITTER: f64 = 0.2;

/// The decision after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Done,
    RetryIn(Duration),
    DeadLetter(String),
}

/// Decides the next step after attempt number `attempts` (1 for the first) ended in `outcome`.
/// `jitter` is a sample in `[-1, 1]`, scaled to ±20 % of the scheduled delay.
pub fn next_step(schedule: &RetrySchedule, attempts: i64, outcome: &Outcome, jitter: f64) -> Step {
    match outcome {
        Outcome::Delivered => Step::Done,
        Outcome::Permanent { reason } => Step::DeadLetter(reason.clone()),
        Outcome::Retry { after, reason } => {
            let index = usize::try_from(attempts.max(1) - 1).unwrap_or(usize::MAX);
            let Some(scheduled) = schedule.0.get(index) else {
                return Step::DeadLetter(format!(
                    "gave up after {attempts} attempts; last: {reason}"
                ));
            };
            let delay = match after {
                Some(asked) => (*asked).min(MAX_RETRY_AFTER),
                None => scheduled.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0)),
            };
            Step::RetryIn(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(after: Option<u64>) -> Outcome {
        Outcome::Retry {
            after: after.map(Duration::from_secs),
            reason: "HTTP 500".into(),
        }
    }

    #[test]
    fn follows_the_schedule_then_dead_letters() {
        let schedule: RetrySchedule = "5s,30s,2m".parse().unwrap();
        let table = [
            (1, retry(None), 0.0, Step::RetryIn(Duration::from_secs(5))),
            (2, retry(None), 0.0, Step::RetryIn(Duration::from_secs(30))),
            (3, retry(None), 1.0, Step::RetryIn(Duration::from_secs(144))),
            (3, retry(None), -1.0, Step::RetryIn(Duration::from_secs(96))),
            (
                4,
                retry(None),
                0.0,
                Step::DeadLetter("gave up after 4 attempts; last: HTTP 500".into()),
            ),
            (1, Outcome::Delivered, 0.0, Step::Done),
            (
                1,
                Outcome::Permanent {
                    reason: "HTTP 400".into(),
                },
                0.0,
                Step::DeadLetter("HTTP 400".into()),
            ),
        ];
        for (attempts, outcome, jitter, expected) in table {
            assert_eq!(
                next_step(&schedule, attempts, &outcome, jitter),
                expected,
                "attempt {attempts}"
            );
        }
    }

    #[test]
    fn retry_after_replaces_the_delay_but_is_clamped() {
        let schedule: RetrySchedule = "5s,30s".parse().unwrap();
        assert_eq!(
            next_step(&schedule, 1, &retry(Some(2)), 1.0),
            Step::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(
            next_step(&schedule, 1, &retry(Some(86_400)), 0.0),
            Step::RetryIn(MAX_RETRY_AFTER)
        );
        // Retry-After does not extend the number of attempts.
        assert!(matches!(
            next_step(&schedule, 3, &retry(Some(1)), 0.0),
            Step::DeadLetter(_)
        ));
    }

    #[test]
    fn an_empty_schedule_means_a_single_attempt() {
        let schedule = RetrySchedule(Vec::new());
        assert!(matches!(
            next_step(&schedule, 1, &retry(None), 0.0),
            Step::DeadLetter(_)
        ));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let schedule: RetrySchedule = "10s".parse().unwrap();
        for jitter in [-5.0, -1.0, -0.3, 0.0, 0.7, 1.0, 9.0] {
            let Step::RetryIn(delay) = next_step(&schedule, 1, &retry(None), jitter) else {
                panic!()
            };
            assert!(
                delay >= Duration::from_secs(8) && delay <= Duration::from_secs(12),
                "{delay:?}"
            );
        }
    }
}
