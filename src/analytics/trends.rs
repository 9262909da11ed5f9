//! Week-by-week series for the dashboard and the digest: issues opened and closed per week,
//! median and p90 time to first response and to close of each week's new issues, and the
//! backlog (with age buckets) at the end of each week. Pure: the store hands over the facts.

use serde::Serialize;

use super::IssueFacts;
use super::report::{AgeBuckets, Durations};
use super::stats::summarize;

pub const WEEK_MS: i64 = 7 * 86_400_000;
/// 1970-01-05 was a Monday: weeks start on Monday 00:00 UTC.
const FIRST_MONDAY_MS: i64 = 4 * 86_400_000;

/// When an issue was open: created, and closed (its last close) if it is closed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSpan {
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

/// The start of the week (Monday 00:00 UTC) holding `at_ms`.
pub fn week_start(at_ms: i64) -> i64 {
    at_ms - (at_ms - FIRST_MONDAY_MS).rem_euclid(WEEK_MS)
}

/// One week of the series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekPoint {
    /// Monday 00:00 UTC, Unix ms.
    pub start_ms: i64,
    /// The end of the week, or now for the current one.
    pub end_ms: i64,
    /// Issues created this week.
    pub opened: u64,
    /// Issues closed this week (whenever they were created), by their last close.
    pub closed: u64,
    /// Of this week's new issues: how many got a first response, and its median and p90.
    pub responded: u64,
    pub first_response_median: Option<f64>,
    pub first_response_p90: Option<f64>,
    /// Of this week's new issues: how many are closed now, median and p90 time to close.
    pub closed_of_opened: u64,
    pub close_median: Option<f64>,
    pub close_p90: Option<f64>,
    /// Issues open at `end_ms`, by age then.
    pub backlog: u64,
    pub backlog_ages: AgeBuckets,
}

/// The last `weeks` weeks up to `now_ms` (the current week last, cut at now). `facts` are the
/// issues created since the first week's start; `spans` every issue that was open at some
/// moment of the period (created before now, not closed before the first week).
pub fn weekly(
    facts: &[IssueFacts],
    spans: &[OpenSpan],
    weeks: u32,
    now_ms: i64,
    durations: Durations<'_>,
) -> Vec<WeekPoint> {
    let first = week_start(now_ms) - i64::from(weeks.saturating_sub(1)) * WEEK_MS;
    (0..i64::from(weeks))
        .map(|index| {
            let start_ms = first + index * WEEK_MS;
            let end_ms = (start_ms + WEEK_MS).min(now_ms);
            week(facts, spans, start_ms, end_ms, durations)
        })
        .collect()
}

fn week(
    facts: &[IssueFacts],
    spans: &[OpenSpan],
    start_ms: i64,
    end_ms: i64,
    durations: Durations<'_>,
) -> WeekPoint {
    let in_week = |at: i64| (start_ms..end_ms).contains(&at);
    let mut responses = Vec::new();
    let mut closes = Vec::new();
    let mut opened = 0;
    for issue in facts.iter().filter(|issue| in_week(issue.created_at)) {
        opened += 1;
        if let Some(at) = issue.first_response_at {
            responses.push(durations.seconds(issue.created_at, at));
        }
        if let Some(at) = issue.closed_at {
            closes.push(durations.seconds(issue.created_at, at));
        }
    }
    let mut closed = 0;
    let mut backlog = 0;
    let mut backlog_ages = AgeBuckets::default();
    for span in spans {
        if span.closed_at.is_some_and(in_week) {
            closed += 1;
        }
        let open_at_end =
            span.created_at < end_ms && span.closed_at.is_none_or(|closed| closed >= end_ms);
        if open_at_end {
            backlog += 1;
            backlog_ages.add(end_ms - span.created_at);
        }
    }
    let response = summarize(&mut responses);
    let close = summarize(&mut closes);
    WeekPoint {
        start_ms,
        end_ms,
        opened,
        closed,
        responded: response.count as u64,
        first_response_median: response.median,
        first_response_p90: response.p90,
        closed_of_opened: close.count as u64,
        close_median: close.median,
        close_p90: close.p90,
        backlog,
        backlog_ages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    /// Monday 2026-11-23T00:00:00Z.
    const MONDAY: i64 = 1_795_392_000_000;

    fn fact(created_at: i64, response_after: Option<i64>, close_after: Option<i64>) -> IssueFacts {
        IssueFacts {
            created_at,
            closed_at: close_after.map(|after| created_at + after),
            state_reason: None,
            first_response_at: response_after.map(|after| created_at + after),
            groups: Vec::new(),
        }
    }

    #[test]
    fn weeks_start_on_monday_utc() {
        assert_eq!(week_start(MONDAY), MONDAY);
        assert_eq!(week_start(MONDAY + 6 * DAY + 23 * HOUR), MONDAY);
        assert_eq!(week_start(MONDAY - 1), MONDAY - WEEK_MS);
        assert_eq!(week_start(0), FIRST_MONDAY_MS - WEEK_MS);
    }

    #[test]
    fn counts_each_week_by_hand() {
        // Now: Wednesday of the second week, noon.
        let now = MONDAY + WEEK_MS + 2 * DAY + 12 * HOUR;
        let facts = vec![
            // Week 1: answered after 1 h and 3 h; one closed after 2 days.
            fact(MONDAY + HOUR, Some(HOUR), Some(2 * DAY)),
            fact(MONDAY + DAY, Some(3 * HOUR), None),
            // Week 2: silent and open.
            fact(MONDAY + WEEK_MS + DAY, None, None),
        ];
        let spans = vec![
            // From before the period, closed in week 2.
            OpenSpan {
                created_at: MONDAY - 40 * DAY,
                closed_at: Some(MONDAY + WEEK_MS + HOUR),
            },
            OpenSpan {
                created_at: MONDAY + HOUR,
                closed_at: Some(MONDAY + HOUR + 2 * DAY),
            },
            OpenSpan {
                created_at: MONDAY + DAY,
                closed_at: None,
            },
            OpenSpan {
                created_at: MONDAY + WEEK_MS + DAY,
                closed_at: None,
            },
        ];
        let weeks = weekly(&facts, &spans, 2, now, Durations::WallClock);
        assert_eq!(weeks.len(), 2);
        let (one, two) = (&weeks[0], &weeks[1]);
        assert_eq!((one.start_ms, one.end_ms), (MONDAY, MONDAY + WEEK_MS));
        assert_eq!((two.start_ms, two.end_ms), (MONDAY + WEEK_MS, now));
        assert_eq!((one.opened, one.closed), (2, 1));
        assert_eq!((two.opened, two.closed), (1, 1));
        // [3600, 10800]: median 7200, p90 rank 0.9 → 3600 + 0.9·7200 = 10080.
        assert_eq!(one.first_response_median, Some(7200.0));
        assert_eq!(one.first_response_p90, Some(10_080.0));
        assert_eq!(one.close_median, Some(172_800.0));
        assert_eq!(two.responded, 0);
        assert_eq!(two.first_response_median, None);
        // End of week 1: the old issue (47 days) and the one from Tuesday (6 days).
        assert_eq!(one.backlog, 2);
        assert_eq!(
            one.backlog_ages,
            AgeBuckets {
                under_1d: 0,
                from_1d_to_7d: 1,
                from_7d_to_30d: 0,
                over_30d: 1
            }
        );
        // Now: Tuesday's issue (8.5 days) and last Tuesday's... this Tuesday's (1.5 days).
        assert_eq!(two.backlog, 2);
        assert_eq!(two.backlog_ages.from_7d_to_30d, 1);
        assert_eq!(two.backlog_ages.from_1d_to_7d, 1);
    }
}
