//! What to record after an attempt: the retry schedule with jitter, pauses that do not use a step
//! of it, the dead letter after the last delay, and what an ambiguous answer means for each kind
//! of destination. Pure, so the policy is tested as a table.

use std::time::Duration;

use crate::config::RetrySchedule;
use crate::domain::{AttemptLog, Claimed, DeliveryStatus, Finish};
use crate::sinks::{Guarantee, Outcome};
use crate::time_util::duration_ms;

/// The longest wait a destination's `Retry-After` can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Relative spread of the jitter around each scheduled delay (±20 %).
const JITTER: f64 = 0.2;

/// The text a dead letter carries when an at-most-once attempt may have arrived.
pub const MAY_HAVE_ARRIVED: &str = "the destination may have received it; check, then \
                                    `herald deliveries retry ID` to send it again";

/// One attempt, as the lane saw it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub claim: &'a Claimed,
    pub guarantee: Guarantee,
    pub started_at: i64,
    pub now: i64,
    /// A sample in `[-1, 1]`, scaled to ±20 % of the scheduled delay.
    pub jitter: f64,
}

/// Decides what to record after `attempt` ended in `outcome`.
pub fn decide(schedule: &RetrySchedule, attempt: Attempt<'_>, outcome: &Outcome) -> Finish {
    let claim = attempt.claim;
    let made = claim.attempts + 1;
    let log = |label: &'static str, error: &str| {
        Some(AttemptLog {
            started_at: attempt.started_at,
            finished_at: attempt.now,
            outcome: label,
            error: Some(error.to_owned()),
        })
    };
    let finish = |status, attempts, next_attempt_at, error: Option<String>, log| Finish {
        id: claim.id,
        status,
        attempts,
        next_attempt_at,
        error,
        keep_started: false,
        log,
    };
    let dead = |attempts, error: String, label| {
        let log = log(label, &error);
        finish(
            DeliveryStatus::Dead,
            attempts,
            attempt.now,
            Some(error),
            log,
        )
    };
    let scheduled = |reason: &str, after: Option<Duration>| -> Result<i64, String> {
        let index = usize::try_from(claim.attempts).unwrap_or(usize::MAX);
        let Some(delay) = schedule.0.get(index) else {
            return Err(format!("gave up after {made} attempts; last: {reason}"));
        };
        let delay = match after {
            Some(asked) => asked.min(MAX_RETRY_AFTER),
            None => delay.mul_f64(1.0 + JITTER * attempt.jitter.clamp(-1.0, 1.0)),
        };
        Ok(attempt.now.saturating_add(duration_ms(delay)))
    };
    match outcome {
        Outcome::Delivered => finish(DeliveryStatus::Delivered, made, attempt.now, None, None),
        Outcome::Permanent { reason } => dead(made, reason.clone(), "dead"),
        Outcome::Retry { after, reason } => match scheduled(reason, *after) {
            Ok(at) => finish(
                DeliveryStatus::Pending,
                made,
                at,
                Some(reason.clone()),
                log("retry", reason),
            ),
            Err(error) => dead(made, error, "dead"),
        },
        // The destination is paused for `after` (see the lane); the row keeps its place in line.
        Outcome::RateLimited { reason, .. } => finish(
            DeliveryStatus::Pending,
            claim.attempts,
            claim.due_at,
            Some(reason.clone()),
            log("rate_limited", reason),
        ),
        Outcome::Defer { after, reason } => finish(
            DeliveryStatus::Pending,
            claim.attempts,
            attempt.now.saturating_add(duration_ms(*after)),
            Some(reason.clone()),
            log("deferred", reason),
        ),
        Outcome::Ambiguous { reason } => match attempt.guarantee {
            Guarantee::Idempotent => decide(
                schedule,
                attempt,
                &Outcome::Retry {
                    after: None,
                    reason: reason.clone(),
                },
            ),
            Guarantee::AtMostOnce => {
                dead(made, format!("{reason}: {MAY_HAVE_ARRIVED}"), "ambiguous")
            }
            Guarantee::CheckedResend => match scheduled(reason, None) {
                Ok(at) => Finish {
                    keep_started: true,
                    ..finish(
                        DeliveryStatus::Pending,
                        made,
                        at,
                        Some(reason.clone()),
                        log("ambiguous", reason),
                    )
                },
                Err(error) => dead(made, error, "dead"),
            },
        },
    }
}

/// The dead letter for a row whose at-most-once attempt was interrupted (the process died with
/// the request in flight): it is not sent again.
pub fn interrupted(claim: &Claimed, now: i64) -> Finish {
    let error = format!("interrupted while sending: {MAY_HAVE_ARRIVED}");
    Finish {
        id: claim.id,
        status: DeliveryStatus::Dead,
        attempts: claim.attempts,
        next_attempt_at: now,
        log: Some(AttemptLog {
            started_at: now,
            finished_at: now,
            outcome: "interrupted",
            error: Some(error.clone()),
        }),
        error: Some(error),
        keep_started: false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::StoredEvent;

    const NOW: i64 = 1_000_000;
    const DUE: i64 = 990_000;

    fn claim(attempts: i64) -> Claimed {
        Claimed {
            id: 9,
            destination: "slack".into(),
            attempts,
            due_at: DUE,
            interrupted: false,
            event: Arc::new(StoredEvent {
                id: 1,
                hook_id: String::new(),
                delivery_id: "d".into(),
                event: "issues".into(),
                action: None,
                repository: None,
                issue_number: None,
                actor: None,
                received_at: 0,
                payload: "{}".into(),
            }),
        }
    }

    fn run(attempts: i64, guarantee: Guarantee, outcome: &Outcome, jitter: f64) -> Finish {
        let schedule: RetrySchedule = "5s,30s,2m".parse().unwrap();
        let claim = claim(attempts);
        let attempt = Attempt {
            claim: &claim,
            guarantee,
            started_at: NOW - 10,
            now: NOW,
            jitter,
        };
        decide(&schedule, attempt, outcome)
    }

    fn retry(after: Option<u64>) -> Outcome {
        Outcome::Retry {
            after: after.map(Duration::from_secs),
            reason: "HTTP 500".into(),
        }
    }

    /// (status, attempts recorded, due in ms from now)
    fn summary(finish: &Finish) -> (DeliveryStatus, i64, i64) {
        (finish.status, finish.attempts, finish.next_attempt_at - NOW)
    }

    #[test]
    fn follows_the_schedule_then_dead_letters() {
        use DeliveryStatus::{Dead, Delivered, Pending};
        let at_most_once = Guarantee::AtMostOnce;
        let table = [
            (0, retry(None), 0.0, (Pending, 1, 5_000)),
            (1, retry(None), 0.0, (Pending, 2, 30_000)),
            (2, retry(None), 1.0, (Pending, 3, 144_000)),
            (2, retry(None), -1.0, (Pending, 3, 96_000)),
            (3, retry(None), 0.0, (Dead, 4, 0)),
            (0, Outcome::Delivered, 0.0, (Delivered, 1, 0)),
            (
                0,
                Outcome::Permanent {
                    reason: "HTTP 400".into(),
                },
                0.0,
                (Dead, 1, 0),
            ),
        ];
        for (attempts, outcome, jitter, expected) in table {
            let finish = run(attempts, at_most_once, &outcome, jitter);
            assert_eq!(summary(&finish), expected, "{attempts} {outcome:?}");
        }
        let dead = run(3, at_most_once, &retry(None), 0.0);
        assert_eq!(
            dead.error.as_deref(),
            Some("gave up after 4 attempts; last: HTTP 500")
        );
        assert!(run(0, at_most_once, &Outcome::Delivered, 0.0).log.is_none());
    }

    #[test]
    fn rate_limits_and_deferrals_use_no_step_of_the_schedule() {
        let limited = Outcome::RateLimited {
            after: Duration::from_secs(1),
            reason: "HTTP 429".into(),
        };
        // Even at the end of the schedule, a rate limit only waits (the lane pauses the whole
        // destination), and the row keeps its place in line.
        let finish = run(3, Guarantee::AtMostOnce, &limited, 0.0);
        assert_eq!(summary(&finish), (DeliveryStatus::Pending, 3, DUE - NOW));
        assert_eq!(finish.log.unwrap().outcome, "rate_limited");
        let defer = Outcome::Defer {
            after: Duration::from_secs(2),
            reason: "waiting for the parent".into(),
        };
        assert_eq!(
            summary(&run(1, Guarantee::CheckedResend, &defer, 0.0)),
            (DeliveryStatus::Pending, 1, 2_000)
        );
    }

    #[test]
    fn retry_after_replaces_the_delay_but_is_clamped() {
        assert_eq!(
            run(0, Guarantee::Idempotent, &retry(Some(2)), 1.0).next_attempt_at - NOW,
            2_000
        );
        assert_eq!(
            run(0, Guarantee::Idempotent, &retry(Some(86_400)), 0.0).next_attempt_at - NOW,
            duration_ms(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn an_ambiguous_answer_depends_on_the_guarantee() {
        let ambiguous = Outcome::Ambiguous {
            reason: "timed out after the request was sent".into(),
        };
        let at_most_once = run(0, Guarantee::AtMostOnce, &ambiguous, 0.0);
        assert_eq!(at_most_once.status, DeliveryStatus::Dead);
        assert!(at_most_once.error.unwrap().contains("may have received it"));
        let idempotent = run(0, Guarantee::Idempotent, &ambiguous, 0.0);
        assert_eq!(summary(&idempotent), (DeliveryStatus::Pending, 1, 5_000));
        assert!(!idempotent.keep_started);
        let checked = run(0, Guarantee::CheckedResend, &ambiguous, 0.0);
        assert_eq!(summary(&checked), (DeliveryStatus::Pending, 1, 5_000));
        assert!(checked.keep_started, "the next attempt must check first");
    }

    #[test]
    fn an_empty_schedule_means_a_single_attempt() {
        let schedule = RetrySchedule(Vec::new());
        let claim = claim(0);
        let attempt = Attempt {
            claim: &claim,
            guarantee: Guarantee::Idempotent,
            started_at: NOW,
            now: NOW,
            jitter: 0.0,
        };
        assert_eq!(
            decide(&schedule, attempt, &retry(None)).status,
            DeliveryStatus::Dead
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for jitter in [-5.0, -1.0, -0.3, 0.0, 0.7, 1.0, 9.0] {
            let due = run(0, Guarantee::Idempotent, &retry(None), jitter).next_attempt_at - NOW;
            assert!((4_000..=6_000).contains(&due), "{due}");
        }
    }
}
