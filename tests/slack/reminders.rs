//! Reminders: armed as events pass, posted once (in the issue's thread) when an open issue has
//! had no response for `remind_after` of working time, held outside working hours, cancelled
//! when answered or closed, armed again on reopen, once across instances. Time is an injected
//! clock; the pass is driven to completion, never waited for with sleeps.

use std::sync::Arc;
use std::time::Duration;

use herald::sinks::slack::SlackApi;
use herald::sinks::slack::reminders::{ReminderTarget, Reminders};
use herald::store::{IssueKey, NewReminder, Store};
use secrecy::SecretString;

use crate::databases;
use crate::fake_slack::{CHANNEL, FakeSlackApi, TOKEN};
use crate::harness::{Herald, Setup, TestClock, comment, issue_event, opened};
use crate::helpers::wait_until;

/// The issue of the shared payloads was opened Wednesday 2019-05-15 15:20 UTC (17:20 in Berlin,
/// after hours): 24 working hours (09:00-17:00) are Thursday, Friday and Monday, so it is due
/// Monday 2019-05-20 17:00 in Berlin, 15:00 UTC.
const DUE: i64 = 1_558_364_400_000;
/// 2019-05-15T15:20:18Z, the payloads' `created_at`.
const OPENED: i64 = 1_557_933_618_000;
const BEFORE: i64 = 1_557_936_000_000; // Wed 2019-05-15 16:00 UTC
const MONDAY_BEFORE_DUE: i64 = 1_558_360_800_000; // 14:00 UTC
const TUESDAY_MORNING: i64 = 1_558_425_600_000; // Tue 2019-05-21 08:00 UTC, 10:00 in Berlin
const SATURDAY: i64 = 1_558_778_400_000; // Sat 2019-05-25 10:00 UTC
const NEXT_MONDAY_OPEN: i64 = 1_558_940_400_000; // Mon 2019-05-27 07:00 UTC, 09:00 in Berlin
const NEXT_MONDAY_LATER: i64 = 1_558_942_200_000;

/// Reminders in working time; serve's own pass waits an hour, so only the test's passes run.
fn routes(events: &str) -> String {
    format!(
        r#"
[[routes]]
events = {events}
to = ["triage"]
mention = "<!subteam^S0ONCALL>"
remind_after = "24h"
business_hours = {{ zone = "Europe/Berlin", days = "Mon-Fri", hours = "09:00-17:00" }}
"#
    )
}

/// A reminder pass of its own, on `store`, at the time `clock` says.
fn pass_on(store: Store, slack: &FakeSlackApi, clock: &Arc<TestClock>, owner: &str) -> Reminders {
    crate::helpers::install_crypto();
    Reminders {
        store,
        targets: vec![ReminderTarget {
            destination: Arc::from("triage"),
            channel: CHANNEL.to_owned(),
            api: SlackApi::new(
                &slack.url,
                SecretString::from(TOKEN),
                Duration::from_secs(5),
            )
            .unwrap(),
        }],
        clock: Arc::clone(clock) as _,
        owner: owner.to_owned(),
    }
}

async fn armed(herald: &Herald, count: usize) -> Vec<herald::store::ReminderRow> {
    let store = herald.store().await;
    wait_until(&format!("{count} reminders are recorded"), || async {
        store.slack_reminders("triage").await.unwrap().len() >= count
    })
    .await;
    store.slack_reminders("triage").await.unwrap()
}

#[tokio::test]
async fn a_reminder_is_posted_once_in_the_issue_thread() {
    let slack = FakeSlackApi::start().await;
    // Wall-clock hours here, so serve's own pass (every 50 ms, on the system's clock) sends it:
    // the issue is from 2019.
    let routes = r#"
[[routes]]
events = ["issues", "issue_comment"]
to = ["triage"]
mention = "<!subteam^S0ONCALL>"
remind_after = "24h"
"#;
    let herald = Setup::new().bot(&slack, routes).spawn().await;
    herald.send("issues", "a-1", &opened(1, &["bug"])).await;
    let store = herald.store().await;
    wait_until("the reminder is sent", || async {
        store
            .slack_reminders("triage")
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.status == "sent")
    })
    .await;
    let reminder = &store.slack_reminders("triage").await.unwrap()[0];
    assert_eq!(reminder.due_at, OPENED + 24 * 3_600_000);
    let parent = &slack.parents()[0];
    let replies = slack.replies(&parent.ts);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].role(), "reminder");
    assert_eq!(reminder.sent_ts.as_deref(), Some(replies[0].ts.as_str()));
    assert!(
        replies[0].text.starts_with(
            "<!subteam^S0ONCALL> No response yet after 1 day: #1 Spelling error in the README file"
        ),
        "{}",
        replies[0].text
    );
    // Later passes (every 50 ms) find nothing more to send, even after a comment by the author.
    herald
        .send("issue_comment", "a-2", &comment(1, "Codertocat", "bump"))
        .await;
    herald.settled("triage", 2).await;
    let clock = TestClock::at(TUESDAY_MORNING + 60_000);
    let again = pass_on(herald.store().await, &slack, &clock, "test")
        .pass()
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(
        slack
            .messages()
            .iter()
            .filter(|m| m.role() == "reminder")
            .count(),
        1
    );
    slack.assert_no_problems();
}

#[tokio::test]
async fn a_reminder_waits_for_working_hours() {
    let slack = FakeSlackApi::start().await;
    let herald = Setup::new()
        .args(&["--slack-reminder-interval", "1h"])
        .bot(&slack, &routes(r#"["issues"]"#))
        .spawn()
        .await;
    herald.send("issues", "b-1", &opened(2, &[])).await;
    assert_eq!(armed(&herald, 1).await[0].due_at, DUE);
    let clock = TestClock::at(MONDAY_BEFORE_DUE);
    let reminders = pass_on(herald.store().await, &slack, &clock, "test");
    assert_eq!(reminders.pass().await.unwrap(), 0, "not due yet");
    clock.set(SATURDAY);
    assert_eq!(reminders.pass().await.unwrap(), 0, "due, but on a Saturday");
    let held = &armed(&herald, 1).await[0];
    assert_eq!(
        (held.status.as_str(), held.due_at),
        ("waiting", NEXT_MONDAY_OPEN)
    );
    clock.set(NEXT_MONDAY_LATER);
    assert_eq!(reminders.pass().await.unwrap(), 1);
    assert_eq!(reminders.pass().await.unwrap(), 0, "once");
    let parent = &slack.parents()[0];
    assert_eq!(slack.replies(&parent.ts).len(), 1, "in the issue's thread");
    slack.assert_no_problems();
}

#[tokio::test]
async fn an_answered_issue_gets_no_reminder_and_the_authors_own_comment_is_no_answer() {
    let slack = FakeSlackApi::start().await;
    // Comments do not go to Slack here: the pass learns of the answer from the analytics tables.
    let herald = Setup::new()
        .args(&["--slack-reminder-interval", "1h"])
        .bot(&slack, &routes(r#"["issues"]"#))
        .spawn()
        .await;
    herald.send("issues", "c-1", &opened(3, &[])).await;
    herald.send("issues", "c-2", &opened(4, &[])).await;
    herald
        .send(
            "issue_comment",
            "c-3",
            &comment(3, "hubot", "Looking into it"),
        )
        .await;
    herald
        .send(
            "issue_comment",
            "c-4",
            &comment(4, "Codertocat", "Any news?"),
        )
        .await;
    let mut bot_comment = comment(4, "dependabot[bot]", "bump");
    bot_comment["comment"]["user"]["type"] = "Bot".into();
    herald.send("issue_comment", "c-5", &bot_comment).await;
    armed(&herald, 2).await;
    herald.settled("analytics", 5).await;
    let clock = TestClock::at(TUESDAY_MORNING);
    let reminders = pass_on(herald.store().await, &slack, &clock, "test");
    assert_eq!(reminders.pass().await.unwrap(), 1);
    let rows = herald
        .store()
        .await
        .slack_reminders("triage")
        .await
        .unwrap();
    let states: Vec<(i64, &str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.issue_number, r.status.as_str(), r.reason.as_deref()))
        .collect();
    assert_eq!(
        states,
        vec![(3, "cancelled", Some("answered")), (4, "sent", None)]
    );
    slack.assert_no_problems();
}

#[tokio::test]
async fn a_close_cancels_the_reminder_and_a_reopen_arms_it_again() {
    let slack = FakeSlackApi::start().await;
    let herald = Setup::new()
        .args(&["--slack-reminder-interval", "1h"])
        .bot(&slack, &routes(r#"["issues"]"#))
        .spawn()
        .await;
    herald.send("issues", "d-1", &opened(5, &[])).await;
    let mut closed = issue_event("closed", 5, &[], "2019-05-16T10:00:00Z");
    closed["issue"]["state"] = "closed".into();
    herald.send("issues", "d-2", &closed).await;
    herald.settled("triage", 2).await;
    let row = &armed(&herald, 1).await[0];
    assert_eq!(
        (row.status.as_str(), row.reason.as_deref()),
        ("cancelled", Some("closed"))
    );
    let reopened = issue_event("reopened", 5, &[], "2019-05-17T10:00:00Z");
    herald.send("issues", "d-3", &reopened).await;
    herald.settled("triage", 3).await;
    let row = &armed(&herald, 1).await[0];
    // Reopened Friday 12:00 in Berlin: 5 h that day, 8 Monday, 8 Tuesday, 3 Wednesday.
    assert_eq!(
        (row.status.as_str(), row.due_at),
        ("waiting", 1_558_519_200_000)
    );
    slack.assert_no_problems();
}

#[tokio::test]
async fn two_instances_post_a_reminder_once() {
    let Some(db) = databases::postgres().await else {
        return;
    };
    let slack = FakeSlackApi::start().await;
    let store = db.connect().await;
    for number in 1..=5 {
        let reminder = NewReminder {
            key: IssueKey {
                destination: "triage",
                repository: "octo/app",
                number,
            },
            repository_name: "octo/app",
            title: "Crash on start",
            url: "https://github.com/octo/app/issues/1",
            author: "alice",
            opened_at: BEFORE,
            remind_after_ms: 3_600_000,
            business_hours: None,
            mention: None,
            due_at: BEFORE + 3_600_000,
        };
        store.arm_reminder(&reminder, BEFORE).await.unwrap();
    }
    let clock = TestClock::at(TUESDAY_MORNING);
    let first = pass_on(db.connect().await, &slack, &clock, "first");
    let second = pass_on(db.connect().await, &slack, &clock, "second");
    let (a, b) = tokio::join!(first.pass(), second.pass());
    assert_eq!(a.unwrap() + b.unwrap(), 5);
    let (a, b) = tokio::join!(first.pass(), second.pass());
    assert_eq!(a.unwrap() + b.unwrap(), 0);
    assert_eq!(slack.messages().len(), 5, "each reminder once");
    slack.assert_no_problems();
}

#[tokio::test]
async fn pull_requests_get_no_reminder() {
    let slack = FakeSlackApi::start().await;
    let herald = Setup::new()
        .args(&["--slack-reminder-interval", "1h"])
        .bot(&slack, &routes(r#"["issues", "pull_request"]"#))
        .spawn()
        .await;
    let pull = crate::harness::sample("pull_request/opened.payload.json");
    herald.send("pull_request", "pr-1", &pull).await;
    herald.send("issues", "pr-2", &opened(8, &[])).await;
    herald.settled("triage", 2).await;
    let rows = armed(&herald, 1).await;
    let numbers: Vec<i64> = rows.iter().map(|r| r.issue_number).collect();
    assert_eq!(numbers, vec![8], "the pull request has none");
}

#[tokio::test]
async fn a_claim_taken_over_after_a_crash_finds_the_reminder_already_posted() {
    let slack = FakeSlackApi::start().await;
    let db = databases::sqlite();
    let store = db.connect().await;
    let reminder = NewReminder {
        key: IssueKey {
            destination: "triage",
            repository: "octo/app",
            number: 9,
        },
        repository_name: "octo/app",
        title: "Crash on start",
        url: "https://github.com/octo/app/issues/9",
        author: "alice",
        opened_at: BEFORE,
        remind_after_ms: 3_600_000,
        business_hours: None,
        mention: None,
        due_at: BEFORE + 3_600_000,
    };
    store.arm_reminder(&reminder, BEFORE).await.unwrap();
    // An instance claims it, posts it, and dies before recording that it did.
    crate::helpers::install_crypto();
    let claimed = store
        .claim_due_reminders(&["triage"], "crashed", TUESDAY_MORNING, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let api = SlackApi::new(
        &slack.url,
        SecretString::from(TOKEN),
        Duration::from_secs(5),
    )
    .unwrap();
    let message = herald::sinks::slack::reminders::reminder_message(&claimed[0]);
    let body = serde_json::json!({
        "channel": CHANNEL, "text": message.text, "blocks": message.blocks,
        "metadata": {"event_type": "herald_delivery", "event_payload": {
            "destination": "triage", "repository": "octo/app", "number": 9, "role": "reminder"}}
    });
    api.post_message(&body).await.unwrap();
    // Its claim runs out; another instance takes over and looks before posting.
    let clock = TestClock::at(TUESDAY_MORNING + 61_000);
    let reminders = pass_on(db.connect().await, &slack, &clock, "survivor");
    assert_eq!(
        reminders.pass().await.unwrap(),
        0,
        "found, not posted again"
    );
    assert_eq!(slack.messages().len(), 1);
    assert_eq!(slack.calls("conversations.history").len(), 1);
    let rows = store.slack_reminders("triage").await.unwrap();
    assert_eq!(rows[0].status, "sent");
    assert_eq!(
        rows[0].sent_ts.as_deref(),
        Some(slack.messages()[0].ts.as_str())
    );
}
