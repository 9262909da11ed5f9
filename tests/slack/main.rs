//! Slack: messages rendered over the real GitHub payloads (insta snapshots), and bot
//! destinations end to end against a fake Slack Web API (threads, parent updates, exactly once,
//! a label added later, mentions, templates, reminders, `ok: false`, coalescing), on SQLite and
//! PostgreSQL.

mod bot;
#[expect(
    dead_code,
    reason = "shared with tests/store; this binary uses the PostgreSQL part"
)]
#[path = "../store/databases.rs"]
mod databases;
mod fake_slack;
mod harness;
#[expect(
    dead_code,
    reason = "the service harness of tests/api; this binary uses part of it"
)]
#[path = "../api/helpers.rs"]
mod helpers;
mod messages;
mod reminders;
mod threads;
