//! Reminders: a route's `remind_after = "24h"` (optionally in `business_hours`) posts one
//! reminder, in the issue's thread when it has one, for an open issue nobody but its author and
//! bots has answered.
//!
//! - **Armed** by the bot sink when it first handles an open issue of such a route (due
//!   `remind_after` of working time after the issue was opened), **cancelled** when a comment by
//!   someone else (not a bot) or a close passes through, **armed again** by a reopen (unless it
//!   was answered or already sent).
//! - **Sent** by a periodic task in `serve`: it claims due reminders with an update only one
//!   instance can win, checks the analytics tables (closed or answered since: cancelled), holds
//!   a reminder that falls outside working time until the next working moment, and records the
//!   outcome. A claim taken over from a crashed instance first looks for the reminder in Slack
//!   (its metadata), so it is posted once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::api::{EVENT_TYPE, SlackApi};
use super::escape::{date, escape, link};
use super::render::{SlackMessage, with_mention};
use super::routing::{RemindPolicy, RowRoute};
use super::view::{Payload, time_ms};
use crate::business_hours::BusinessHours;
use crate::config::BusinessHoursConfig;
use crate::sinks::Outcome;
use crate::store::{IssueKey, NewReminder, ReminderEnd, ReminderRow, Store};
use crate::time_util::{duration_ms, now_ms};

/// Where time comes from (tests drive it by hand).
pub trait Clock: Send + Sync {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// How long a claimed reminder belongs to one instance.
const CLAIM: Duration = Duration::from_secs(60);
/// Reminders handled per pass and destination.
const PER_PASS: i64 = 50;
/// How long a reminder that could not be sent waits before the next try.
const RETRY: Duration = Duration::from_secs(60);

fn business_hours_json(config: &BusinessHoursConfig) -> String {
    json!({ "zone": config.zone, "days": config.days, "hours": config.hours, "holidays": config.holidays })
        .to_string()
}

fn parse_business_hours(text: Option<&str>) -> Option<BusinessHours> {
    let config: BusinessHoursConfig = serde_json::from_str(text?).ok()?;
    BusinessHours::parse(&config).ok()
}

/// When a reminder for an issue opened (or reopened) at `from_ms` is due.
pub fn due_at(policy_after: Duration, hours: Option<&BusinessHours>, from_ms: i64) -> i64 {
    let after = duration_ms(policy_after);
    match hours {
        Some(hours) => hours.add_working_ms(from_ms, after),
        None => from_ms.saturating_add(after),
    }
}

/// Arms, re-arms or cancels the reminder of the issue an event is about. Failures are logged:
/// a reminder is a courtesy, never a reason to hold back the event's message.
pub async fn track(
    store: &Store,
    key: IssueKey<'_>,
    event: &str,
    payload: &Payload<'_>,
    route: &RowRoute<'_>,
) {
    let Some(item) = payload.item() else { return };
    if event == "pull_request" || item.pull_request.is_some() {
        return;
    }
    let author = item.user.as_ref();
    let result = match (event, payload.action()) {
        ("issue_comment", "created") => {
            let commenter = payload.comment.as_ref().and_then(|c| c.user.as_ref());
            match commenter {
                Some(user)
                    if !user.is_bot()
                        && Some(user.login()) != author.map(super::view::User::login) =>
                {
                    store
                        .cancel_reminder(key, "answered", now_ms())
                        .await
                        .map(drop)
                }
                _ => Ok(()),
            }
        }
        ("issues", "closed") => store
            .cancel_reminder(key, "closed", now_ms())
            .await
            .map(drop),
        ("issues", "reopened") => match route.remind() {
            Some(policy) => {
                let reopened = time_ms(item.updated_at.as_deref()).unwrap_or_else(now_ms);
                let hours = policy
                    .business_hours
                    .as_ref()
                    .and_then(|h| BusinessHours::parse(h).ok());
                let due = due_at(policy.after, hours.as_ref(), reopened);
                match store.rearm_reminder(key, reopened, due, now_ms()).await {
                    Ok(true) => Ok(()),
                    Ok(false) => arm(store, key, payload, &policy, Some(reopened)).await,
                    Err(error) => Err(error),
                }
            }
            None => Ok(()),
        },
        _ => match route.remind() {
            Some(policy) if item.is_open() && !author.is_some_and(super::view::User::is_bot) => {
                arm(store, key, payload, &policy, None).await
            }
            _ => Ok(()),
        },
    };
    if let Err(error) = result {
        tracing::warn!(destination = key.destination, error = %error, "recording a reminder failed");
    }
}

/// Arms the reminder of an issue opened at its `created_at`, or `since` (a reopen).
async fn arm(
    store: &Store,
    key: IssueKey<'_>,
    payload: &Payload<'_>,
    policy: &RemindPolicy,
    since: Option<i64>,
) -> Result<(), crate::store::StoreError> {
    let Some(item) = payload.item() else {
        return Ok(());
    };
    let Some(opened) = since.or_else(|| time_ms(item.created_at.as_deref())) else {
        return Ok(());
    };
    let hours = policy
        .business_hours
        .as_ref()
        .and_then(|h| BusinessHours::parse(h).ok());
    let reminder = NewReminder {
        key,
        repository_name: payload.repository_name(),
        title: item.title(),
        url: item.url(),
        author: item.user.as_ref().map_or("", super::view::User::login),
        opened_at: opened,
        remind_after_ms: duration_ms(policy.after),
        business_hours: policy.business_hours.as_ref().map(business_hours_json),
        mention: policy.mention.as_deref(),
        due_at: due_at(policy.after, hours.as_ref(), opened),
    };
    store.arm_reminder(&reminder, now_ms()).await
}

/// One bot destination reminders are posted to.
pub struct ReminderTarget {
    pub destination: Arc<str>,
    pub channel: String,
    pub api: SlackApi,
}

/// The periodic reminder pass of `serve`.
pub struct Reminders {
    pub store: Store,
    pub targets: Vec<ReminderTarget>,
    pub clock: Arc<dyn Clock>,
    /// This instance, as the claim's owner.
    pub owner: String,
}

impl Reminders {
    /// Runs a pass every `interval` (the first one after an interval) until `stop` fires. A
    /// pass that fails is logged and the next one runs.
    pub async fn run(self, interval: Duration, stop: CancellationToken) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = self.pass().await {
                tracing::warn!(error = %error, "a reminder pass failed; the next one tries again");
            }
        }
    }

    /// Handles every reminder due now; returns how many were posted.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let names: Vec<&str> = self.targets.iter().map(|t| &*t.destination).collect();
        let now = self.clock.now_ms();
        let claimed = self
            .store
            .claim_due_reminders(&names, &self.owner, now, duration_ms(CLAIM), PER_PASS)
            .await?;
        let mut sent = 0;
        for reminder in claimed {
            let Some(target) = self
                .targets
                .iter()
                .find(|t| *t.destination == reminder.destination)
            else {
                continue;
            };
            let (end, posted) = self.handle(target, &reminder, now).await;
            sent += usize::from(posted);
            match &end {
                ReminderEnd::Sent { .. } => {
                    tracing::info!(destination = %reminder.destination, issue = reminder.issue_number, repository = %reminder.repository_name, "reminder posted");
                }
                ReminderEnd::Cancelled { reason } => {
                    tracing::info!(destination = %reminder.destination, issue = reminder.issue_number, reason = %reason, "reminder cancelled");
                }
                ReminderEnd::Postponed {
                    error: Some(error), ..
                } => {
                    tracing::warn!(destination = %reminder.destination, issue = reminder.issue_number, error = %error, "reminder not posted; trying again later");
                }
                ReminderEnd::Postponed { .. } => {}
            }
            if !self
                .store
                .finish_reminder(&reminder, &self.owner, &end, self.clock.now_ms())
                .await?
            {
                tracing::warn!(destination = %reminder.destination, "a reminder's claim was lost before its outcome was recorded");
            }
        }
        Ok(sent)
    }

    /// How the reminder ends, and whether this pass posted it.
    async fn handle(
        &self,
        target: &ReminderTarget,
        reminder: &ReminderRow,
        now: i64,
    ) -> (ReminderEnd, bool) {
        if let Some(hours) = parse_business_hours(reminder.business_hours.as_deref())
            && !hours.is_working(now)
        {
            let due_at = hours.add_working_ms(now, 0);
            return (
                ReminderEnd::Postponed {
                    due_at,
                    error: None,
                },
                false,
            );
        }
        match self
            .store
            .response_state(&reminder.repository_name, reminder.issue_number)
            .await
        {
            Ok(Some(state)) if !state.open => {
                let reason = "closed".to_owned();
                return (ReminderEnd::Cancelled { reason }, false);
            }
            Ok(Some(state)) if state.answered => {
                let reason = "answered".to_owned();
                return (ReminderEnd::Cancelled { reason }, false);
            }
            Ok(_) => {}
            Err(error) => return (postpone(now, format!("store: {error}")), false),
        }
        let key = IssueKey {
            destination: &reminder.destination,
            repository: &reminder.repository,
            number: reminder.issue_number,
        };
        let thread = match self.store.slack_thread(key).await {
            Ok(thread) => thread,
            Err(error) => return (postpone(now, format!("store: {error}")), false),
        };
        let thread_ts = thread
            .as_ref()
            .filter(|t| t.threaded)
            .and_then(|t| t.parent_ts.clone());
        let metadata = json!({
            "event_type": EVENT_TYPE,
            "event_payload": {
                "destination": reminder.destination,
                "repository": reminder.repository,
                "number": reminder.issue_number,
                "role": "reminder",
            }
        });
        if reminder.attempts > 1 {
            let wanted = &metadata["event_payload"];
            let matches = |found: &Value| {
                ["destination", "repository", "number", "role"]
                    .iter()
                    .all(|field| found[*field] == wanted[*field])
            };
            match target
                .api
                .find_by_metadata(
                    &target.channel,
                    thread_ts.as_deref(),
                    reminder.due_at - 60_000,
                    &matches,
                )
                .await
            {
                Ok(Some(ts)) => return (ReminderEnd::Sent { ts }, false),
                Ok(None) => {}
                Err(outcome) => return (postpone(now, outcome.reason().to_owned()), false),
            }
        }
        let message = reminder_message(reminder);
        let mut body = json!({
            "channel": target.channel,
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": false,
            "metadata": metadata,
        });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        match target.api.post_message(&body).await {
            Ok(posted) => (ReminderEnd::Sent { ts: posted.ts }, true),
            Err(Outcome::Permanent { reason }) => (ReminderEnd::Cancelled { reason }, false),
            Err(outcome) => (postpone(now, outcome.reason().to_owned()), false),
        }
    }
}

fn postpone(now: i64, error: String) -> ReminderEnd {
    ReminderEnd::Postponed {
        due_at: now.saturating_add(duration_ms(RETRY)),
        error: Some(error),
    }
}

/// `24 working hours`, `2 days`, `90 minutes`.
fn waited(ms: i64, working: bool) -> String {
    let (count, unit) = if ms % 86_400_000 == 0 && !working {
        (ms / 86_400_000, "day")
    } else if ms % 3_600_000 == 0 {
        (ms / 3_600_000, "hour")
    } else {
        (ms / 60_000, "minute")
    };
    let working = if working { "working " } else { "" };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {working}{unit}{plural}")
}

/// The reminder's message.
pub fn reminder_message(reminder: &ReminderRow) -> SlackMessage {
    let waited = waited(reminder.remind_after_ms, reminder.business_hours.is_some());
    let title = link(
        &reminder.url,
        &format!("#{} {}", reminder.issue_number, reminder.title),
    );
    let text = format!(
        ":hourglass: *No response yet* after {waited}: *{title}* in {}, opened by {} {}",
        escape(&reminder.repository_name),
        escape(&reminder.author),
        date(reminder.opened_at)
    );
    let mut message = SlackMessage::plain(text);
    message.text = format!(
        "No response yet after {waited}: #{} {} in {}",
        reminder.issue_number,
        escape(&reminder.title),
        escape(&reminder.repository_name)
    );
    with_mention(message, reminder.mention.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_how_long_it_waited() {
        assert_eq!(waited(86_400_000, false), "1 day");
        assert_eq!(waited(86_400_000, true), "24 working hours");
        assert_eq!(waited(2 * 3_600_000, false), "2 hours");
        assert_eq!(waited(90 * 60_000, false), "90 minutes");
    }

    #[test]
    fn counts_working_time_for_the_due_date() {
        let config = BusinessHoursConfig {
            zone: "UTC".into(),
            days: "Mon-Fri".into(),
            hours: "09:00-17:00".into(),
            holidays: Vec::new(),
        };
        let hours = BusinessHours::parse(&config).unwrap();
        // Friday 2026-11-27 16:00 UTC + 2 working hours = Monday 2026-11-30 10:00 UTC.
        let friday = 1_795_737_600_000 + 16 * 3_600_000;
        assert_eq!(
            due_at(Duration::from_secs(7200), Some(&hours), friday),
            1_795_996_800_000 + 10 * 3_600_000
        );
        assert_eq!(due_at(Duration::from_secs(60), None, 1_000), 61_000);
        let back = business_hours_json(&config);
        assert!(parse_business_hours(Some(&back)).is_some());
    }
}
