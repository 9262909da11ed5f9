//! Which failed deliveries to ask GitHub for again: plain decisions over the attempts GitHub
//! listed, whether herald stored the event anyway, and what herald asked for before.

use std::collections::HashMap;

use crate::github::HookDelivery;
use crate::store::PastRequest;

/// Most requests herald makes for one delivery. Each is made only after GitHub's redelivery of
/// the previous one failed too; past this, the delivery is reported, not asked for again.
pub const MAX_REQUESTS: usize = 3;

/// A delivery (a guid) none of whose listed attempts was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    /// Its newest failed attempt: the one to ask GitHub to redeliver.
    pub newest: HookDelivery,
    /// How many attempts GitHub listed for it.
    pub attempts: usize,
}

/// What to do about one failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Ask GitHub to redeliver the newest failed attempt; `previous` requests were made before
    /// (each followed by another failure).
    Ask { previous: usize },
    /// Herald asked for this very attempt already (GitHub may not have made the new one yet).
    AlreadyAsked,
    /// Herald stored the event although GitHub saw a failure (it answered 503 after the commit,
    /// or GitHub gave up waiting): nothing is missing.
    Stored,
    /// Asked [`MAX_REQUESTS`] times, and it failed again after each: report it, stop asking.
    GiveUp { requests: usize },
}

/// The deliveries among `attempts` that need redelivery: every guid none of whose attempts got a
/// 2xx, with its newest failed attempt. Oldest failure first, so redeliveries arrive in the
/// order the events happened.
pub fn failed_deliveries(attempts: impl IntoIterator<Item = HookDelivery>) -> Vec<FailedDelivery> {
    let mut by_guid: HashMap<String, (bool, Option<HookDelivery>, usize)> = HashMap::new();
    for attempt in attempts {
        let (succeeded, newest, count) = by_guid.entry(attempt.guid.clone()).or_default();
        *count += 1;
        if attempt.succeeded() {
            *succeeded = true;
        } else if newest
            .as_ref()
            .is_none_or(|known| order(&attempt) > order(known))
        {
            *newest = Some(attempt);
        }
    }
    let mut failed: Vec<FailedDelivery> = by_guid
        .into_values()
        .filter_map(|(succeeded, newest, attempts)| match (succeeded, newest) {
            (false, Some(newest)) => Some(FailedDelivery { newest, attempts }),
            _ => None,
        })
        .collect();
    failed.sort_by_key(|failed| order(&failed.newest));
    failed
}

/// GitHub's order of attempts: by time, then by id (ids grow with time).
fn order(attempt: &HookDelivery) -> (i64, i64) {
    (attempt.delivered_at, attempt.id)
}

/// Whether to ask for `failed` again, given whether herald `stored` its event and the requests
/// herald made for it `before`.
pub fn decide(failed: &FailedDelivery, stored: bool, before: &[PastRequest]) -> Decision {
    if stored {
        return Decision::Stored;
    }
    if before
        .iter()
        .any(|request| request.delivery_id == failed.newest.id)
    {
        return Decision::AlreadyAsked;
    }
    let newest = order(&failed.newest);
    let asked_last = before
        .iter()
        .map(|request| (request.delivered_at, request.delivery_id))
        .max();
    match asked_last {
        None => Decision::Ask { previous: 0 },
        // The newest failure is the attempt asked for (or older): GitHub has not answered the
        // request with a new attempt yet, or refused it.
        Some(asked) if newest <= asked => Decision::AlreadyAsked,
        // GitHub's redelivery failed again after herald's request.
        Some(_) if before.len() >= MAX_REQUESTS => Decision::GiveUp {
            requests: before.len(),
        },
        Some(_) => Decision::Ask {
            previous: before.len(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RequestState;

    fn attempt(id: i64, guid: &str, at: i64, status_code: u16) -> HookDelivery {
        HookDelivery {
            id,
            guid: guid.into(),
            delivered_at: at,
            redelivery: false,
            status: String::new(),
            status_code,
            event: "issues".into(),
            action: Some("opened".into()),
        }
    }

    fn asked(delivery_id: i64, delivered_at: i64) -> PastRequest {
        PastRequest {
            delivery_id,
            delivered_at,
            requested_at: delivered_at + 1,
            state: RequestState::Asked,
        }
    }

    #[test]
    fn a_guid_fails_only_when_no_attempt_succeeded() {
        let listed = vec![
            // Newest first, as GitHub lists them.
            attempt(7, "redelivered", 70, 202),
            attempt(6, "twice", 60, 0),
            attempt(5, "ok", 50, 200),
            attempt(4, "twice", 40, 503),
            attempt(3, "redelivered", 30, 503),
            attempt(2, "once", 20, 404),
            attempt(1, "accepted-too", 10, 299),
        ];
        let failed = failed_deliveries(listed);
        let found: Vec<(&str, i64, usize)> = failed
            .iter()
            .map(|f| (f.newest.guid.as_str(), f.newest.id, f.attempts))
            .collect();
        assert_eq!(found, [("once", 2, 1), ("twice", 6, 2)]);
    }

    #[test]
    fn the_newest_failed_attempt_is_by_time_then_id() {
        let failed = failed_deliveries(vec![
            attempt(10, "g", 100, 500),
            attempt(12, "g", 100, 500),
            attempt(11, "g", 100, 500),
            attempt(99, "g", 90, 500),
        ]);
        assert_eq!(failed[0].newest.id, 12);
    }

    #[test]
    fn decides_from_what_was_asked_before() {
        let failed = |id, at| FailedDelivery {
            newest: attempt(id, "g", at, 503),
            attempts: 1,
        };
        let cases: Vec<(FailedDelivery, bool, Vec<PastRequest>, Decision)> = vec![
            (failed(1, 10), false, vec![], Decision::Ask { previous: 0 }),
            (failed(1, 10), true, vec![], Decision::Stored),
            (failed(1, 10), true, vec![asked(1, 10)], Decision::Stored),
            // GitHub has not made the new attempt yet.
            (
                failed(1, 10),
                false,
                vec![asked(1, 10)],
                Decision::AlreadyAsked,
            ),
            // The redelivery herald asked for failed too.
            (
                failed(2, 20),
                false,
                vec![asked(1, 10)],
                Decision::Ask { previous: 1 },
            ),
            (
                failed(3, 30),
                false,
                vec![asked(1, 10), asked(2, 20)],
                Decision::Ask { previous: 2 },
            ),
            (
                failed(4, 40),
                false,
                vec![asked(1, 10), asked(2, 20), asked(3, 30)],
                Decision::GiveUp { requests: 3 },
            ),
            // Still waiting for the answer to the third request: not given up yet.
            (
                failed(3, 30),
                false,
                vec![asked(1, 10), asked(2, 20), asked(3, 30)],
                Decision::AlreadyAsked,
            ),
            // A refused request counts as asked.
            (
                failed(1, 10),
                false,
                vec![PastRequest {
                    state: RequestState::Refused,
                    ..asked(1, 10)
                }],
                Decision::AlreadyAsked,
            ),
            // The very attempt asked for, whatever time was recorded with it.
            (
                failed(5, 10),
                false,
                vec![asked(5, 0)],
                Decision::AlreadyAsked,
            ),
            // Same second, older id: not a new failure.
            (
                failed(5, 10),
                false,
                vec![asked(6, 10)],
                Decision::AlreadyAsked,
            ),
        ];
        for (failed, stored, before, expected) in cases {
            assert_eq!(
                decide(&failed, stored, &before),
                expected,
                "{failed:?} stored={stored} {before:?}"
            );
        }
    }
}
