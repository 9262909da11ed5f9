//! Slack reminders in the store: one row per (destination, issue), claimed by one instance at a
//! time with an update only one can win, and the analytics facts a reminder checks (closed, or
//! answered by someone other than the author and not a bot).

use super::slack::IssueKey;
use super::{Backend, Store, StoreError, dispatch};

/// A reminder to arm.
#[derive(Debug, Clone)]
pub struct NewReminder<'a> {
    pub key: IssueKey<'a>,
    pub repository_name: &'a str,
    pub title: &'a str,
    pub url: &'a str,
    pub author: &'a str,
    pub opened_at: i64,
    pub remind_after_ms: i64,
    pub business_hours: Option<String>,
    pub mention: Option<&'a str>,
    pub due_at: i64,
}

/// A reminder claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReminderRow {
    pub destination: String,
    pub repository: String,
    pub issue_number: i64,
    pub repository_name: String,
    pub title: String,
    pub url: String,
    pub author: String,
    pub opened_at: i64,
    pub remind_after_ms: i64,
    pub business_hours: Option<String>,
    pub mention: Option<String>,
    pub due_at: i64,
    pub status: String,
    pub reason: Option<String>,
    /// Claims before this one: a claim that was taken over may have posted already.
    pub attempts: i64,
    pub sent_ts: Option<String>,
}

/// How a claimed reminder ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReminderEnd {
    Sent {
        ts: String,
    },
    Cancelled {
        reason: String,
    },
    /// Not yet (outside working hours, Slack unavailable): due again at this time.
    Postponed {
        due_at: i64,
        error: Option<String>,
    },
}

/// An issue's state as the analytics tables know it, for reminders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseState {
    pub open: bool,
    /// Someone other than the author, not a bot, has commented.
    pub answered: bool,
}

const ARM_REMINDER: &str = "INSERT INTO slack_reminders
    (destination, repository, issue_number, repository_name, title, url, author, opened_at,
     remind_after_ms, business_hours, mention, due_at, status, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'waiting', $13, $13)
    ON CONFLICT (destination, repository, issue_number) DO NOTHING";

/// A reopened issue whose reminder was cancelled by its close waits again (never one already
/// sent, nor one cancelled because the issue was answered).
const REARM_REMINDER: &str = "UPDATE slack_reminders
    SET status = 'waiting', opened_at = $4, due_at = $5, reason = NULL, claimed_by = NULL,
        claimed_until = NULL, updated_at = $6
    WHERE destination = $1 AND repository = $2 AND issue_number = $3 AND status = 'cancelled'
      AND reason = 'closed'";

const CANCEL_REMINDER: &str = "UPDATE slack_reminders
    SET status = 'cancelled', reason = $4, claimed_by = NULL, claimed_until = NULL, updated_at = $5
    WHERE destination = $1 AND repository = $2 AND issue_number = $3 AND status = 'waiting'";

const REMINDER_COLUMNS: &str = "destination, repository, issue_number, repository_name, title,
    url, author, opened_at, remind_after_ms, business_hours, mention, due_at, status, reason,
    attempts, sent_ts";

const FINISH_REMINDER: &str = "UPDATE slack_reminders
    SET status = $5, reason = $6, due_at = $7, sent_ts = $8, claimed_by = NULL,
        claimed_until = NULL, updated_at = $9
    WHERE destination = $1 AND repository = $2 AND issue_number = $3 AND claimed_by = $4
      AND status = 'waiting'";

const RESPONSE_STATE: &str = "SELECT i.state,
        EXISTS (SELECT 1 FROM issue_comments c
                WHERE c.repository = i.repository AND c.issue_number = i.number
                  AND c.deleted = 0 AND c.author_is_bot = 0 AND c.author <> i.author)
    FROM issues i WHERE i.repository = $1 AND i.number = $2 AND i.deleted = 0";

impl Store {
    /// Arms the reminder of an issue unless it has one (waiting, sent or cancelled).
    pub async fn arm_reminder(
        &self,
        reminder: &NewReminder<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(ARM_REMINDER)
                .bind(reminder.key.destination)
                .bind(reminder.key.repository)
                .bind(reminder.key.number)
                .bind(reminder.repository_name)
                .bind(reminder.title)
                .bind(reminder.url)
                .bind(reminder.author)
                .bind(reminder.opened_at)
                .bind(reminder.remind_after_ms)
                .bind(reminder.business_hours.as_deref())
                .bind(reminder.mention)
                .bind(reminder.due_at)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Arms again the reminder its close cancelled, for a reopened issue.
    pub async fn rearm_reminder(
        &self,
        key: IssueKey<'_>,
        opened_at: i64,
        due_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(REARM_REMINDER)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .bind(opened_at)
                .bind(due_at)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Cancels a waiting reminder (`closed`, `answered`).
    pub async fn cancel_reminder(
        &self,
        key: IssueKey<'_>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(CANCEL_REMINDER)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .bind(reason)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Claims up to `limit` waiting reminders of `destinations` due at `now` for `owner` until
    /// `now + lease_ms`. Only one instance can claim a reminder at a time.
    pub async fn claim_due_reminders(
        &self,
        destinations: &[&str],
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ReminderRow>, StoreError> {
        if destinations.is_empty() {
            return Ok(Vec::new());
        }
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(
                "UPDATE slack_reminders SET claimed_by = ",
            );
            query.push_bind(owner);
            query.push(", claimed_until = ");
            query.push_bind(now.saturating_add(lease_ms));
            query.push(", attempts = attempts + 1, updated_at = ");
            query.push_bind(now);
            query.push(
                " WHERE (destination, repository, issue_number) IN (
                    SELECT destination, repository, issue_number FROM slack_reminders
                    WHERE status = 'waiting' AND due_at <= ",
            );
            query.push_bind(now);
            query.push(" AND (claimed_until IS NULL OR claimed_until <= ");
            query.push_bind(now);
            query.push(") AND destination IN (");
            let mut names = query.separated(", ");
            for destination in destinations {
                names.push_bind(*destination);
            }
            names.push_unseparated(") ORDER BY due_at LIMIT ");
            query.push_bind(limit);
            query.push(lock);
            query.push(") RETURNING ");
            query.push(REMINDER_COLUMNS);
            query.build_query_as().fetch_all(pool).await
        })
    }

    /// Records how a claimed reminder ended. Returns `false` when `owner` no longer held it.
    pub async fn finish_reminder(
        &self,
        reminder: &ReminderRow,
        owner: &str,
        end: &ReminderEnd,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (status, reason, due_at, ts) = match end {
            ReminderEnd::Sent { ts } => ("sent", None, reminder.due_at, Some(ts.as_str())),
            ReminderEnd::Cancelled { reason } => {
                ("cancelled", Some(reason.as_str()), reminder.due_at, None)
            }
            ReminderEnd::Postponed { due_at, error } => {
                ("waiting", error.as_deref(), *due_at, None)
            }
        };
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(FINISH_REMINDER)
                .bind(&reminder.destination)
                .bind(&reminder.repository)
                .bind(reminder.issue_number)
                .bind(owner)
                .bind(status)
                .bind(reason)
                .bind(due_at)
                .bind(ts)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// The reminders of a destination, for tests and `herald deliveries`-like inspection.
    pub async fn slack_reminders(&self, destination: &str) -> Result<Vec<ReminderRow>, StoreError> {
        let sql = format!(
            "SELECT {REMINDER_COLUMNS} FROM slack_reminders WHERE destination = $1
             ORDER BY repository, issue_number"
        );
        dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(destination).fetch_all(pool).await
        })
    }

    /// Whether an issue (`repository` as GitHub spells it) is open and has had a response, as
    /// the analytics tables know; `None` when they do not know the issue.
    pub async fn response_state(
        &self,
        repository: &str,
        number: i64,
    ) -> Result<Option<ResponseState>, StoreError> {
        let row: Option<(String, bool)> = dispatch!(self, pool => {
            sqlx::query_as(RESPONSE_STATE)
                .bind(repository)
                .bind(number)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(state, answered)| ResponseState {
            open: state == "open",
            answered,
        }))
    }
}
