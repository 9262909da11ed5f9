//! Issue-flow analytics: lifecycle snapshots parsed from GitHub payloads, and the metrics of
//! DESIGN.md (time to first response, time to close, backlog) computed from them in plain Rust,
//! so SQLite and PostgreSQL give the same numbers.

mod format;
mod query;
mod report;
mod snapshot;
mod stats;
mod trends;
mod window;

pub use format::{Format, human_duration, render};
pub use query::{GroupBy, QueryError, ReportQuery, ReportRequest, is_repository_name};
pub use report::{
    AgeBuckets, Backlog, BusinessHoursJson, Durations, FirstResponse, Group, IssueCounts, Metrics,
    Report, Seconds, TimeToClose, WindowJson, build_report, build_report_with, metrics,
};
pub use snapshot::{
    CommentSnapshot, IssueSnapshot, LifecycleChanges, Removal, SnapshotError, UserRef,
    comment_from_rest, from_webhook, is_bot, issue_from_rest,
};
pub use stats::{Summary, percentile, summarize};
pub use trends::{OpenSpan, WEEK_MS, WeekPoint, week_start, weekly};
pub use window::{Window, WindowError, parse_since, parse_until};

/// What the metrics need to know of one issue, and nothing more (the report reads one of these
/// per issue in the window, so it is kept small): the newest snapshot's times plus the first
/// response, which the store works out at query time so that arrival order never matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueFacts {
    /// Unix milliseconds, from the payload.
    pub created_at: i64,
    /// The last close, set only while the issue is closed (a reopened issue has none).
    pub closed_at: Option<i64>,
    /// Why it was closed; only while closed.
    pub state_reason: Option<String>,
    /// The first comment by someone other than the author and not a bot.
    pub first_response_at: Option<i64>,
    /// The issue's keys for the report's `group_by` (a repository, an author, its labels or
    /// its assignees); empty without a grouping, or when it has no label or assignee.
    pub groups: Vec<String>,
}

/// One issue's whole lifecycle, for people and tests: the snapshot, its first response (time
/// and who) and how many comments it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRecord {
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub author: String,
    pub author_is_bot: bool,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub created_at: i64,
    /// As GitHub last reported it: a reopened issue may still carry its old `closed_at`.
    pub closed_at: Option<i64>,
    pub state: String,
    pub state_reason: Option<String>,
    pub first_response_at: Option<i64>,
    pub first_responder: Option<String>,
    /// Comments not deleted, by anyone.
    pub comment_count: i64,
}
