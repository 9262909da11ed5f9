//! From per-issue records to the report: the JSON shape that `herald report --format json` and
//! `GET /api/metrics/issues` both return, and that the other formats are drawn from.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::IssueFacts;
use super::query::{GroupBy, ReportQuery};
use super::stats::{Summary, summarize};
use crate::business_hours::BusinessHours;
use crate::config::BusinessHoursConfig;
use crate::time_util::format_ms;

const DAY_MS: i64 = 86_400_000;

/// A duration in seconds: a JSON integer when whole, else a number with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub f64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let rounded = (self.0 * 1000.0).round() / 1000.0;
        if rounded.fract() == 0.0 && rounded.abs() < 9.0e15 {
            serializer.serialize_i64(rounded as i64)
        } else {
            serializer.serialize_f64(rounded)
        }
    }
}

/// How durations are counted: on the wall clock, or working time only (`--business-hours`).
#[derive(Debug, Clone, Copy)]
pub enum Durations<'a> {
    WallClock,
    Working {
        hours: &'a BusinessHours,
        config: &'a BusinessHoursConfig,
    },
}

impl Durations<'_> {
    /// Seconds from `from_ms` to `to_ms` as this clock counts them.
    pub fn seconds(&self, from_ms: i64, to_ms: i64) -> f64 {
        match self {
            Self::WallClock => seconds_between(from_ms, to_ms),
            Self::Working { hours, .. } => hours.working_ms(from_ms, to_ms) as f64 / 1000.0,
        }
    }

    fn json(&self) -> Option<BusinessHoursJson> {
        match self {
            Self::WallClock => None,
            Self::Working { config, .. } => Some(BusinessHoursJson {
                zone: config.zone.clone(),
                days: config.days.clone(),
                hours: config.hours.clone(),
                holidays: config.holidays.clone(),
            }),
        }
    }
}

/// The working time durations were counted in (present only with `business_hours`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusinessHoursJson {
    pub zone: String,
    pub days: String,
    pub hours: String,
    pub holidays: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub window: WindowJson,
    /// Set when durations count working time only; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<BusinessHoursJson>,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Empty unless a `group_by` was asked for; sorted by key.
    pub groups: Vec<Group>,
}

/// The window as RFC 3339 times, `since` inclusive and `until` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowJson {
    pub since: String,
    pub until: String,
}

/// The metrics of one set of issues (the whole window, or one group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub issues: IssueCounts,
    pub time_to_first_response: FirstResponse,
    pub time_to_close: TimeToClose,
    pub backlog: Backlog,
}

/// One group: its key (a repository, label, author or assignee) and its metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IssueCounts {
    /// Issues created in the window.
    pub opened: u64,
    /// Of those, closed now.
    pub closed: u64,
    /// Of those, open now.
    pub open_now: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstResponse {
    /// Issues that got a response; the statistics are over these.
    pub count: u64,
    /// Issues without one: counted, never averaged.
    pub unanswered: u64,
    pub mean_seconds: Option<Seconds>,
    pub median_seconds: Option<Seconds>,
    pub p90_seconds: Option<Seconds>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeToClose {
    pub count: u64,
    pub mean_seconds: Option<Seconds>,
    pub median_seconds: Option<Seconds>,
    pub p90_seconds: Option<Seconds>,
    /// Closed issues by `state_reason`: `completed` and `not_planned` always, others when seen,
    /// `unknown` for closes GitHub gave no reason for.
    pub state_reasons: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backlog {
    pub open: u64,
    pub age_buckets: AgeBuckets,
}

/// Ages of the open issues: under a day, one to seven days, seven to thirty, over thirty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AgeBuckets {
    #[serde(rename = "<1d")]
    pub under_1d: u64,
    #[serde(rename = "1-7d")]
    pub from_1d_to_7d: u64,
    #[serde(rename = "7-30d")]
    pub from_7d_to_30d: u64,
    #[serde(rename = ">30d")]
    pub over_30d: u64,
}

impl AgeBuckets {
    /// Counts one open issue of this age.
    pub fn add(&mut self, age_ms: i64) {
        match age_ms {
            age if age < DAY_MS => self.under_1d += 1,
            age if age < 7 * DAY_MS => self.from_1d_to_7d += 1,
            age if age < 30 * DAY_MS => self.from_7d_to_30d += 1,
            _ => self.over_30d += 1,
        }
    }
}

/// Computes the report for `issues` (already filtered to the query's window, repository and
/// label), with backlog ages as of `now_ms`. Issues may come in any order.
pub fn build_report(query: &ReportQuery, issues: &[IssueFacts], now_ms: i64) -> Report {
    build_report_with(query, issues, now_ms, Durations::WallClock)
}

/// [`build_report`] with durations counted by `durations` (backlog ages stay on the wall
/// clock: an issue's age is how long it has waited).
pub fn build_report_with(
    query: &ReportQuery,
    issues: &[IssueFacts],
    now_ms: i64,
    durations: Durations<'_>,
) -> Report {
    let all: Vec<&IssueFacts> = issues.iter().collect();
    let groups = match query.group_by {
        None => Vec::new(),
        Some(group_by) => {
            let mut groups: BTreeMap<String, Vec<&IssueFacts>> = BTreeMap::new();
            for issue in issues {
                for key in group_keys(issue, group_by) {
                    groups.entry(key).or_default().push(issue);
                }
            }
            groups
                .into_iter()
                .map(|(key, members)| Group {
                    key,
                    metrics: metrics(&members, now_ms, durations),
                })
                .collect()
        }
    };
    Report {
        window: WindowJson {
            since: format_ms(query.window.since_ms),
            until: format_ms(query.window.until_ms),
        },
        business_hours: durations.json(),
        metrics: metrics(&all, now_ms, durations),
        groups,
    }
}

/// The groups one issue belongs to: an issue with two labels counts in both; one with none
/// counts under `(no label)` or `(unassigned)`.
fn group_keys(issue: &IssueFacts, group_by: GroupBy) -> Vec<String> {
    if !issue.groups.is_empty() {
        return issue.groups.clone();
    }
    let none = match group_by {
        GroupBy::Label => "(no label)",
        GroupBy::Assignee => "(unassigned)",
        GroupBy::Repo | GroupBy::Author => "(none)",
    };
    vec![none.to_owned()]
}

/// The metrics of one set of issues.
pub fn metrics(issues: &[&IssueFacts], now_ms: i64, durations: Durations<'_>) -> Metrics {
    let mut response_times = Vec::new();
    let mut close_times = Vec::new();
    let mut state_reasons: BTreeMap<String, u64> = ["completed", "not_planned"]
        .into_iter()
        .map(|reason| (reason.to_owned(), 0))
        .collect();
    let mut buckets = AgeBuckets::default();
    let mut closed = 0;
    for issue in issues {
        if let Some(at) = issue.first_response_at {
            response_times.push(durations.seconds(issue.created_at, at));
        }
        match issue.closed_at {
            Some(at) => {
                closed += 1;
                close_times.push(durations.seconds(issue.created_at, at));
                let reason = issue.state_reason.as_deref().unwrap_or("unknown");
                match state_reasons.get_mut(reason) {
                    Some(count) => *count += 1,
                    None => {
                        state_reasons.insert(reason.to_owned(), 1);
                    }
                }
            }
            None => buckets.add(now_ms - issue.created_at),
        }
    }
    let opened = issues.len() as u64;
    let open_now = opened - closed;
    let response = summarize(&mut response_times);
    let close = summarize(&mut close_times);
    Metrics {
        issues: IssueCounts {
            opened,
            closed,
            open_now,
        },
        time_to_first_response: FirstResponse {
            count: response.count as u64,
            unanswered: opened - response.count as u64,
            mean_seconds: response.mean.map(Seconds),
            median_seconds: response.median.map(Seconds),
            p90_seconds: response.p90.map(Seconds),
        },
        time_to_close: time_to_close(&close, state_reasons),
        backlog: Backlog {
            open: open_now,
            age_buckets: buckets,
        },
    }
}

fn time_to_close(summary: &Summary, state_reasons: BTreeMap<String, u64>) -> TimeToClose {
    TimeToClose {
        count: summary.count as u64,
        mean_seconds: summary.mean.map(Seconds),
        median_seconds: summary.median.map(Seconds),
        p90_seconds: summary.p90.map(Seconds),
        state_reasons,
    }
}

fn seconds_between(from_ms: i64, to_ms: i64) -> f64 {
    (to_ms - from_ms) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::analytics::query::ReportRequest;

    const HOUR: i64 = 3_600_000;
    /// 2026-02-01T00:00:00Z
    const NOW: i64 = 1_769_904_000_000;

    /// An open, unanswered issue in no group (`_number` only names it in the fixtures).
    fn issue(_number: i64, created_at: i64) -> IssueFacts {
        IssueFacts {
            created_at,
            closed_at: None,
            state_reason: None,
            first_response_at: None,
            groups: Vec::new(),
        }
    }

    fn closed(mut issue: IssueFacts, after_ms: i64, reason: &str) -> IssueFacts {
        issue.closed_at = Some(issue.created_at + after_ms);
        issue.state_reason = Some(reason.into());
        issue
    }

    fn answered(mut issue: IssueFacts, after_ms: i64) -> IssueFacts {
        issue.first_response_at = Some(issue.created_at + after_ms);
        issue
    }

    fn query(group_by: Option<&str>) -> ReportQuery {
        ReportRequest {
            since: Some("2025-01-01".into()),
            group_by: group_by.map(String::from),
            ..ReportRequest::default()
        }
        .parse(NOW)
        .unwrap()
    }

    #[test]
    fn computes_the_documented_json() {
        let start = NOW - 40 * 24 * HOUR;
        let issues = vec![
            // Answered after 1 h, closed as completed after 2 days.
            closed(answered(issue(1, start), HOUR), 48 * HOUR, "completed"),
            // Answered after 3 h, closed as not planned after 1 h.
            closed(answered(issue(2, start), 3 * HOUR), HOUR, "not_planned"),
            // Never answered, closed after 10 h with no reason recorded.
            closed(issue(3, start), 10 * HOUR, "x"),
            // Open, unanswered, 40 days old.
            issue(4, start),
            // Open, answered after 30 min, 2 hours old.
            answered(issue(5, NOW - 2 * HOUR), HOUR / 2),
        ];
        let mut issues = issues;
        issues[2].state_reason = None;
        let report = build_report(&query(None), &issues, NOW);
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({
                "window": {"since": "2025-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"},
                "issues": {"opened": 5, "closed": 3, "open_now": 2},
                // [1800, 3600, 10800]: mean 5400, median 3600, p90 rank 1.8 → 3600 + 0.8·7200
                "time_to_first_response": {"count": 3, "unanswered": 2, "mean_seconds": 5400,
                    "median_seconds": 3600, "p90_seconds": 9360},
                // [3600, 36000, 172800]: mean 70800, median 36000, p90 rank 1.8 → 36000 + 0.8·136800
                "time_to_close": {"count": 3, "mean_seconds": 70800, "median_seconds": 36000,
                    "p90_seconds": 145_440,
                    "state_reasons": {"completed": 1, "not_planned": 1, "unknown": 1}},
                "backlog": {"open": 2, "age_buckets": {"<1d": 1, "1-7d": 0, "7-30d": 0, ">30d": 1}},
                "groups": []
            })
        );
    }

    #[test]
    fn empty_sets_give_null_statistics() {
        let report = build_report(&query(None), &[], NOW);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["time_to_first_response"],
            json!({"count": 0, "unanswered": 0, "mean_seconds": null, "median_seconds": null, "p90_seconds": null})
        );
        assert_eq!(json["time_to_close"]["p90_seconds"], json!(null));
        assert_eq!(
            json["issues"],
            json!({"opened": 0, "closed": 0, "open_now": 0})
        );
    }

    #[test]
    fn fractional_seconds_keep_millisecond_precision() {
        // Two responses, after 1 s and 2 s: p90 rank 0.9 → 1.9 s.
        let issues = vec![
            answered(issue(1, NOW - HOUR), 1000),
            answered(issue(2, NOW - HOUR), 2000),
        ];
        let json = serde_json::to_value(build_report(&query(None), &issues, NOW)).unwrap();
        assert_eq!(json["time_to_first_response"]["p90_seconds"], json!(1.9));
        assert_eq!(json["time_to_first_response"]["mean_seconds"], json!(1.5));
    }

    #[test]
    fn age_buckets_have_exact_edges() {
        let mut buckets = AgeBuckets::default();
        for age in [
            0,
            DAY_MS - 1,
            DAY_MS,
            7 * DAY_MS - 1,
            7 * DAY_MS,
            30 * DAY_MS - 1,
            30 * DAY_MS,
        ] {
            buckets.add(age);
        }
        assert_eq!(
            buckets,
            AgeBuckets {
                under_1d: 2,
                from_1d_to_7d: 2,
                from_7d_to_30d: 2,
                over_30d: 1
            }
        );
    }

    #[test]
    fn groups_by_their_keys() {
        let in_groups = |mut issue: IssueFacts, groups: &[&str]| {
            issue.groups = groups.iter().map(|key| (*key).to_owned()).collect();
            issue
        };
        let issues = vec![
            in_groups(
                closed(issue(1, NOW - HOUR), HOUR / 2, "completed"),
                &["bug", "ui"],
            ),
            in_groups(issue(2, NOW - HOUR), &["bug"]),
            issue(3, NOW - HOUR),
        ];
        let keys = |group_by: &str| -> Vec<(String, u64)> {
            build_report(&query(Some(group_by)), &issues, NOW)
                .groups
                .into_iter()
                .map(|group| (group.key, group.metrics.issues.opened))
                .collect()
        };
        let pairs = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
            list.iter()
                .map(|(key, count)| ((*key).to_owned(), *count))
                .collect()
        };
        assert_eq!(
            keys("label"),
            pairs(&[("(no label)", 1), ("bug", 2), ("ui", 1)])
        );
        assert_eq!(
            keys("assignee"),
            pairs(&[("(unassigned)", 1), ("bug", 2), ("ui", 1)])
        );
        // Without a grouping asked for, there are no groups whatever the issues carry.
        assert!(build_report(&query(None), &issues, NOW).groups.is_empty());
        let report = build_report(&query(Some("label")), &issues, NOW);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["groups"][1]["key"], json!("bug"));
        assert_eq!(
            json["groups"][1]["issues"],
            json!({"opened": 2, "closed": 1, "open_now": 1})
        );
        assert_eq!(
            json["groups"][1]["time_to_close"]["median_seconds"],
            json!(1800)
        );
        // The totals count each issue once, whatever the grouping.
        assert_eq!(json["issues"]["opened"], json!(3));
    }
}
