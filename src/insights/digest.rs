//! The weekly digest: the past week's numbers in one short Slack message with the dashboard
//! link, posted by `herald digest --destination NAME` or on a weekly schedule inside `serve`
//! (once per week across restarts and instances: the week is recorded in the store before the
//! message leaves).

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{ReportError, ReportService};
use crate::analytics::{AgeBuckets, ReportQuery, Window, build_report_with, human_duration};
use crate::delivery::Target;
use crate::sinks::slack::SlackMessage;
use crate::sinks::slack::escape::{escape, link};
use crate::store::UnansweredIssue;
use crate::time_util::{format_ms, now_ms};

const DAY_MS: i64 = 86_400_000;
/// A scheduled digest more than this late (herald was down) is skipped, not posted.
const LATEST_MS: i64 = DAY_MS;
/// Unanswered issues the digest names.
const UNANSWERED_NAMED: i64 = 3;

/// The past week's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub since_ms: i64,
    pub until_ms: i64,
    /// Issues created in the week.
    pub opened: u64,
    /// Issues closed in the week, whenever created.
    pub closed: u64,
    /// Of the week's new issues: answered, median and p90 time to first response.
    pub responded: u64,
    pub first_response_median: Option<f64>,
    pub first_response_p90: Option<f64>,
    /// Of the week's new issues: closed, median and p90 time to close.
    pub closed_of_opened: u64,
    pub close_median: Option<f64>,
    pub close_p90: Option<f64>,
    /// Every issue open now, by age.
    pub backlog: u64,
    pub backlog_ages: AgeBuckets,
    pub oldest_unanswered: Vec<UnansweredIssue>,
    pub business_hours: bool,
}

impl ReportService {
    /// The seven days before `now_ms`.
    pub async fn digest(&self, now_ms: i64, business_hours: bool) -> Result<Digest, ReportError> {
        self.check(business_hours)?;
        let since_ms = now_ms - 7 * DAY_MS;
        let query = ReportQuery {
            window: Window {
                since_ms,
                until_ms: now_ms,
            },
            repo: None,
            label: None,
            group_by: None,
        };
        let excluded = self.excluded().await?;
        let store = self.store();
        let (facts, spans, oldest_unanswered) = tokio::try_join!(
            store.issue_facts_excluding(&query, &excluded),
            store.open_spans(&query, &excluded),
            store.oldest_unanswered(&query, &excluded, UNANSWERED_NAMED),
        )?;
        let report = build_report_with(
            &query,
            &facts,
            now_ms,
            self.settings().durations(business_hours),
        );
        let closed = spans
            .iter()
            .filter(|span| span.closed_at.is_some_and(|at| query.window.contains(at)))
            .count() as u64;
        let mut backlog_ages = AgeBuckets::default();
        let mut backlog = 0;
        for span in spans.iter().filter(|span| span.closed_at.is_none()) {
            backlog += 1;
            backlog_ages.add(now_ms - span.created_at);
        }
        let (response, close) = (
            &report.metrics.time_to_first_response,
            &report.metrics.time_to_close,
        );
        Ok(Digest {
            since_ms,
            until_ms: now_ms,
            opened: report.metrics.issues.opened,
            closed,
            responded: response.count,
            first_response_median: response.median_seconds.map(|s| s.0),
            first_response_p90: response.p90_seconds.map(|s| s.0),
            closed_of_opened: close.count,
            close_median: close.median_seconds.map(|s| s.0),
            close_p90: close.p90_seconds.map(|s| s.0),
            backlog,
            backlog_ages,
            oldest_unanswered,
            business_hours,
        })
    }
}

fn duration(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".to_owned(), human_duration)
}

/// The digest as one short Slack message (mrkdwn; everything from GitHub escaped), linking to
/// the dashboard when `dashboard_url` is known.
pub fn digest_message(digest: &Digest, dashboard_url: Option<&str>) -> SlackMessage {
    let day = |ms: i64| format_ms(ms).chars().take(10).collect::<String>();
    let mut text = format!(
        "*Issue flow, {} to {}*{}\n",
        day(digest.since_ms),
        day(digest.until_ms),
        if digest.business_hours {
            " (business hours)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        text,
        "• {} opened, {} closed; backlog {} open (<1d {}, 1-7d {}, 7-30d {}, >30d {})",
        digest.opened,
        digest.closed,
        digest.backlog,
        digest.backlog_ages.under_1d,
        digest.backlog_ages.from_1d_to_7d,
        digest.backlog_ages.from_7d_to_30d,
        digest.backlog_ages.over_30d
    );
    let _ = writeln!(
        text,
        "• First response: median {}, p90 {} ({} of {} answered)",
        duration(digest.first_response_median),
        duration(digest.first_response_p90),
        digest.responded,
        digest.opened
    );
    let _ = writeln!(
        text,
        "• Time to close: median {}, p90 {} ({} closed)",
        duration(digest.close_median),
        duration(digest.close_p90),
        digest.closed_of_opened
    );
    if !digest.oldest_unanswered.is_empty() {
        let oldest: Vec<String> = digest
            .oldest_unanswered
            .iter()
            .map(|issue| {
                let name = format!("{}#{}", issue.repository, issue.number);
                let age = human_duration(((digest.until_ms - issue.created_at) / 1000) as f64);
                match &issue.html_url {
                    Some(url) => format!("{} ({age})", link(url, &name)),
                    None => format!("{} ({age})", escape(&name)),
                }
            })
            .collect();
        let _ = writeln!(text, "• Oldest unanswered: {}", oldest.join(", "));
    }
    if let Some(url) = dashboard_url {
        let _ = write!(text, "{}", link(url, "Open the dashboard"));
    }
    let text = text.trim_end().to_owned();
    SlackMessage {
        blocks: vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})],
        text,
    }
}

/// Posts `message` to a destination: a Slack webhook or bot destination, or standard output.
pub async fn post_to(target: &Target, message: &SlackMessage) -> anyhow::Result<()> {
    match target {
        Target::Stdout => {
            println!("{}", message.text);
            Ok(())
        }
        Target::SlackWebhook { .. } | Target::SlackBot { .. } => target.post_plain(message).await,
        Target::Analytics | Target::Bigquery { .. } => bail!(
            "a {} destination cannot take a digest; name a slack-webhook, slack-bot or stdout \
             destination",
            target.kind()
        ),
    }
}

/// When the weekly digest goes out: a weekday and a local time in a zone.
#[derive(Debug, Clone)]
pub struct DigestSchedule {
    weekday: Weekday,
    time: Time,
    zone: TimeZone,
}

impl DigestSchedule {
    /// `Mon 09:00` in `zone`; errors say what is expected.
    pub fn parse(schedule: &str, zone: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "HERALD_DIGEST_SCHEDULE {schedule:?} must be a weekday and a time, like \"Mon 09:00\""
            )
        };
        let (day, time) = schedule.trim().split_once(' ').ok_or_else(invalid)?;
        let weekday = match day.trim().to_lowercase().get(..3) {
            Some("mon") => Weekday::Monday,
            Some("tue") => Weekday::Tuesday,
            Some("wed") => Weekday::Wednesday,
            Some("thu") => Weekday::Thursday,
            Some("fri") => Weekday::Friday,
            Some("sat") => Weekday::Saturday,
            Some("sun") => Weekday::Sunday,
            _ => return Err(invalid()),
        };
        let (hour, minute) = time.trim().split_once(':').ok_or_else(invalid)?;
        let time = Time::new(
            hour.parse().map_err(|_| invalid())?,
            minute.parse().map_err(|_| invalid())?,
            0,
            0,
        )
        .map_err(|_| invalid())?;
        let zone = TimeZone::get(zone.trim()).map_err(|_| {
            format!("HERALD_DIGEST_ZONE {zone:?} is not an IANA time zone (e.g. \"Europe/Berlin\")")
        })?;
        Ok(Self {
            weekday,
            time,
            zone,
        })
    }

    /// The latest scheduled moment at or before `now_ms`, and the ISO week it names
    /// (`2026-W48`).
    pub fn latest(&self, now_ms: i64) -> (i64, String) {
        let now = Timestamp::from_millisecond(now_ms)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(self.zone.clone());
        let mut date = now.date();
        for _ in 0..8 {
            if date.weekday() == self.weekday {
                let slot = self
                    .zone
                    .to_ambiguous_timestamp(date.to_datetime(self.time))
                    .compatible()
                    .map_or(0, Timestamp::as_millisecond);
                if slot <= now_ms {
                    let week = date.iso_week_date();
                    return (slot, format!("{}-W{:02}", week.year(), week.week()));
                }
            }
            date = date.yesterday().unwrap_or(date);
        }
        (now_ms, String::new())
    }
}

/// The scheduled digest of one destination.
pub struct DigestJob {
    pub service: ReportService,
    pub destination: String,
    pub target: Target,
    pub schedule: DigestSchedule,
    pub dashboard_url: Option<String>,
}

impl DigestJob {
    /// Posts this week's digest if it is due and no instance has posted it; returns the week
    /// posted. A failed post gives the week back, so the next tick tries again.
    pub async fn tick(&self, now_ms: i64) -> anyhow::Result<Option<String>> {
        let (slot, week) = self.schedule.latest(now_ms);
        if week.is_empty() || now_ms - slot > LATEST_MS {
            return Ok(None);
        }
        let store = self.service.store();
        if !store.claim_digest(&self.destination, &week, now_ms).await? {
            return Ok(None);
        }
        tracing::info!(destination = %self.destination, week = %week, "posting the weekly digest");
        let posted = async {
            let digest = self.service.digest(now_ms, false).await?;
            let message = digest_message(&digest, self.dashboard_url.as_deref());
            post_to(&self.target, &message).await
        }
        .await;
        match posted {
            Ok(()) => {
                store
                    .digest_posted(&self.destination, &week, now_ms)
                    .await?;
                Ok(Some(week))
            }
            Err(error) => {
                store
                    .release_digest(&self.destination, &week)
                    .await
                    .context("giving the digest's week back")?;
                Err(error)
            }
        }
    }
}

/// Checks once a minute whether the digest is due, until `stop`.
pub async fn run_digest_schedule(job: DigestJob, stop: CancellationToken) {
    loop {
        match job.tick(now_ms()).await {
            Ok(Some(week)) => {
                tracing::info!(destination = %job.destination, week = %week, "weekly digest posted");
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(destination = %job.destination, error = %format!("{error:#}"), "the weekly digest could not be posted; trying again in a minute");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn finds_the_latest_slot_in_its_zone() {
        let schedule = DigestSchedule::parse("Mon 09:00", "America/New_York").unwrap();
        // Monday 30 Nov 2026, 09:00 EST is 14:00 UTC.
        let slot = at("2026-11-30T14:00:00Z");
        assert_eq!(schedule.latest(slot), (slot, "2026-W49".to_owned()));
        assert_eq!(schedule.latest(slot + 1).0, slot);
        // A minute before: the week before.
        let (before, week) = schedule.latest(slot - 60_000);
        assert_eq!(before, slot - 7 * DAY_MS);
        assert_eq!(week, "2026-W48");
        // Across the change to daylight saving time, 09:00 stays 09:00 local (13:00 UTC).
        assert_eq!(
            schedule.latest(at("2026-03-09T15:00:00Z")).0,
            at("2026-03-09T13:00:00Z")
        );
    }

    #[test]
    fn refuses_bad_schedules() {
        assert!(DigestSchedule::parse("Monday", "UTC").is_err());
        assert!(DigestSchedule::parse("Mon 25:00", "UTC").is_err());
        assert!(DigestSchedule::parse("Mon 09:00", "Mars/Base").is_err());
        assert!(DigestSchedule::parse("friday 17:30", "UTC").is_ok());
    }

    #[test]
    fn the_message_escapes_what_github_users_wrote() {
        let digest = Digest {
            since_ms: at("2026-11-23T00:00:00Z"),
            until_ms: at("2026-11-30T00:00:00Z"),
            opened: 4,
            closed: 3,
            responded: 2,
            first_response_median: Some(5400.0),
            first_response_p90: Some(7200.0),
            closed_of_opened: 1,
            close_median: Some(86_400.0),
            close_p90: Some(86_400.0),
            backlog: 2,
            backlog_ages: AgeBuckets {
                under_1d: 1,
                from_1d_to_7d: 1,
                from_7d_to_30d: 0,
                over_30d: 0,
            },
            oldest_unanswered: vec![UnansweredIssue {
                repository: "o/r".into(),
                number: 7,
                title: "<!channel> help".into(),
                html_url: Some("https://github.com/o/r/issues/7?a=1&b=<x>".into()),
                created_at: at("2026-11-28T00:00:00Z"),
            }],
            business_hours: false,
        };
        let message = digest_message(&digest, Some("https://herald.example/dashboard"));
        assert_eq!(
            message.text,
            "*Issue flow, 2026-11-23 to 2026-11-30*\n\
             • 4 opened, 3 closed; backlog 2 open (<1d 1, 1-7d 1, 7-30d 0, >30d 0)\n\
             • First response: median 1h 30m, p90 2h (2 of 4 answered)\n\
             • Time to close: median 1d, p90 1d (1 closed)\n\
             • Oldest unanswered: <https://github.com/o/r/issues/7?a=1&amp;b=%3Cx%3E|o/r#7> (2d)\n\
             <https://herald.example/dashboard|Open the dashboard>"
        );
        assert!(!message.text.contains("<!channel>"));
    }
}
