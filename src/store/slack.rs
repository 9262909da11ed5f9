//! What Slack bot destinations remember: the thread of each issue (its parent message and the
//! state that parent shows), which issues were announced to a destination without threads, the
//! reminders, and the rows a coalesced message told. Every decision that several instances could
//! race on is one statement: a unique insert or an update that only one of them can win.

use super::{Backend, Store, StoreError, dispatch};

/// Where an issue's thread stands in one destination.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ThreadRow {
    pub channel: String,
    /// The parent message, once posted.
    pub parent_ts: Option<String>,
    /// The outbox row that posts (or posted) the parent.
    pub parent_row: i64,
    pub claimed_until: i64,
    /// Later events go into the thread and the parent is kept current.
    pub threaded: bool,
    /// The state the parent shows (JSON), once posted.
    pub card: Option<String>,
    pub card_updated_at: i64,
}

/// An issue in one destination: the key of threads, announcements and reminders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueKey<'a> {
    pub destination: &'a str,
    /// Lower-cased `owner/name`.
    pub repository: &'a str,
    pub number: i64,
}

/// What taking the parent slot of a thread found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentSlot {
    /// This row posts the parent. `fresh`: it created the slot; otherwise it held it already or
    /// took it over, and an earlier attempt (its own or another row's) may have posted a parent.
    Ours { thread: ThreadRow, fresh: bool },
    /// The parent is posted: reply in its thread.
    Posted(ThreadRow),
    /// Another row is posting the parent right now: wait for it.
    Taken(ThreadRow),
}

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

const SELECT_THREAD: &str = "SELECT channel, parent_ts, parent_row, claimed_until, threaded, card,
        card_updated_at
    FROM slack_threads WHERE destination = $1 AND repository = $2 AND issue_number = $3";

const INSERT_THREAD: &str = "INSERT INTO slack_threads
    (destination, repository, issue_number, channel, parent_row, claimed_until, threaded,
     created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
    ON CONFLICT (destination, repository, issue_number) DO NOTHING";

/// Takes the slot when this row holds it already or its holder's claim ran out.
const TAKE_OVER_THREAD: &str = "UPDATE slack_threads
    SET parent_row = $4, claimed_until = $5, threaded = $6, updated_at = $7
    WHERE destination = $1 AND repository = $2 AND issue_number = $3 AND parent_ts IS NULL
      AND (parent_row = $4 OR claimed_until <= $7)";

const SET_PARENT: &str = "UPDATE slack_threads
    SET parent_ts = $5, card = $6, card_updated_at = $7, updated_at = $8
    WHERE destination = $1 AND repository = $2 AND issue_number = $3 AND parent_row = $4
      AND parent_ts IS NULL";

const UPDATE_CARD: &str =
    "UPDATE slack_threads SET card = $4, card_updated_at = $5, updated_at = $6
    WHERE destination = $1 AND repository = $2 AND issue_number = $3 AND parent_ts IS NOT NULL
      AND card_updated_at <= $5";

const EARLIER_PENDING: &str = "SELECT o.id FROM events e
    JOIN outbox o ON o.event_id = e.id
    WHERE e.repository = $2 AND e.issue_number = $3 AND o.destination = $1
      AND o.status = 'pending' AND o.id < $4 AND o.next_attempt_at <= $5
    LIMIT 1";

const ANNOUNCE: &str = "INSERT INTO slack_announced
    (destination, repository, issue_number, first_row, announced_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (destination, repository, issue_number) DO NOTHING";

const FIRST_ANNOUNCED: &str = "SELECT first_row FROM slack_announced
    WHERE destination = $1 AND repository = $2 AND issue_number = $3";

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

const COVER_ROW: &str = "INSERT INTO slack_coalesced (destination, row_id, leader_row)
    VALUES ($1, $2, $3) ON CONFLICT (destination, row_id) DO NOTHING";

/// Pending rows of the same issue received in the window after the leader, not told yet.
const BURST: &str = "SELECT o.id, e.event, e.payload FROM events e
    JOIN outbox o ON o.event_id = e.id
    WHERE e.repository = $2 AND e.issue_number = $3 AND o.destination = $1
      AND o.status = 'pending' AND o.id > $4 AND e.received_at <= $5
      AND NOT EXISTS (SELECT 1 FROM slack_coalesced c
                      WHERE c.destination = $1 AND c.row_id = o.id AND c.leader_row <> $4)
    ORDER BY o.id LIMIT 50";

const COALESCED_LEADER: &str =
    "SELECT leader_row FROM slack_coalesced WHERE destination = $1 AND row_id = $2";

const COALESCED_INTO: &str = "SELECT c.leader_row, o.status FROM slack_coalesced c
    JOIN outbox o ON o.id = c.leader_row
    WHERE c.destination = $1 AND c.row_id = $2";

impl Store {
    /// The thread of an issue in a destination, if one was started.
    pub async fn slack_thread(&self, key: IssueKey<'_>) -> Result<Option<ThreadRow>, StoreError> {
        let row: Option<ThreadDbRow> = dispatch!(self, pool => {
            sqlx::query_as(SELECT_THREAD)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(ThreadRow::from))
    }

    /// Takes the parent slot of an issue's thread for outbox row `row`, unless another row holds
    /// it (and its claim, until `now + claim_ms`, has not run out) or the parent is posted.
    pub async fn take_parent_slot(
        &self,
        key: IssueKey<'_>,
        channel: &str,
        row: i64,
        threaded: bool,
        now: i64,
        claim_ms: i64,
    ) -> Result<ParentSlot, StoreError> {
        let until = now.saturating_add(claim_ms);
        let turn = self.write_turn().await;
        let inserted = dispatch!(self, pool => {
            sqlx::query(INSERT_THREAD)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .bind(channel)
                .bind(row)
                .bind(until)
                .bind(i64::from(threaded))
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1;
        let taken = inserted
            || dispatch!(self, pool => {
                sqlx::query(TAKE_OVER_THREAD)
                    .bind(key.destination)
                    .bind(key.repository)
                    .bind(key.number)
                    .bind(row)
                    .bind(until)
                    .bind(i64::from(threaded))
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }) == 1;
        drop(turn);
        let Some(thread) = self.slack_thread(key).await? else {
            return Err(StoreError::RowNotFound);
        };
        Ok(if thread.parent_ts.is_some() {
            ParentSlot::Posted(thread)
        } else if taken && thread.parent_row == row {
            ParentSlot::Ours {
                thread,
                fresh: inserted,
            }
        } else {
            ParentSlot::Taken(thread)
        })
    }

    /// Records the parent posted by `row` and the state it shows. Returns `false` when the slot
    /// was no longer this row's.
    pub async fn set_thread_parent(
        &self,
        key: IssueKey<'_>,
        row: i64,
        ts: &str,
        card: &str,
        card_updated_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(SET_PARENT)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .bind(row)
                .bind(ts)
                .bind(card)
                .bind(card_updated_at)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Replaces the state a parent shows when `card_updated_at` is not older than the one it
    /// shows. Returns whether it did (then the parent message is updated to match).
    pub async fn update_thread_card(
        &self,
        key: IssueKey<'_>,
        card: &str,
        card_updated_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let done = dispatch!(self, pool => {
            sqlx::query(UPDATE_CARD)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .bind(card)
                .bind(card_updated_at)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// A row older than `row` about the same issue (`repository` as stored with the events)
    /// that still waits for `destination` and is due before `due_by` (one far in its retry
    /// schedule does not hold the others back): the first one starts the thread.
    pub async fn earlier_pending_row(
        &self,
        destination: &str,
        repository: &str,
        number: i64,
        row: i64,
        due_by: i64,
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_scalar(EARLIER_PENDING)
                .bind(destination)
                .bind(repository)
                .bind(number)
                .bind(row)
                .bind(due_by)
                .fetch_optional(pool)
                .await
        })
    }

    /// Records that `row` announces the issue to a destination without threads. Returns `false`
    /// when another row announced it first (a label added later then says nothing).
    pub async fn announce_once(
        &self,
        key: IssueKey<'_>,
        row: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(ANNOUNCE)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .bind(row)
                .bind(now)
                .execute(pool)
                .await?;
        });
        drop(turn);
        let first: Option<i64> = dispatch!(self, pool => {
            sqlx::query_scalar(FIRST_ANNOUNCED)
                .bind(key.destination)
                .bind(key.repository)
                .bind(key.number)
                .fetch_optional(pool)
                .await?
        });
        Ok(first == Some(row))
    }

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

    /// Marks the pending rows about the same issue received up to `until` (after `leader`) as
    /// told by `leader`'s message, and returns them (row, event name, payload), oldest first,
    /// with those it told before (a leader tried again tells the same burst).
    pub async fn coalesce_burst(
        &self,
        destination: &str,
        repository: &str,
        number: i64,
        leader: i64,
        until: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let burst: Vec<(i64, String, String)> = dispatch!(self, pool => {
            sqlx::query_as(BURST)
                .bind(destination)
                .bind(repository)
                .bind(number)
                .bind(leader)
                .bind(until)
                .fetch_all(pool)
                .await?
        });
        if burst.is_empty() {
            return Ok(burst);
        }
        let _turn = self.write_turn().await;
        let mut told = Vec::with_capacity(burst.len());
        for (row, event, payload) in burst {
            dispatch!(self, pool => {
                sqlx::query(COVER_ROW)
                    .bind(destination)
                    .bind(row)
                    .bind(leader)
                    .execute(pool)
                    .await?;
            });
            let ours: Option<i64> = dispatch!(self, pool => {
                sqlx::query_scalar(COALESCED_LEADER)
                    .bind(destination)
                    .bind(row)
                    .fetch_optional(pool)
                    .await?
            });
            if ours == Some(leader) {
                told.push((row, event, payload));
            }
        }
        Ok(told)
    }

    /// The row whose message tells `row`, and that row's status, if it was coalesced.
    pub async fn coalesced_into(
        &self,
        destination: &str,
        row: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(COALESCED_INTO)
                .bind(destination)
                .bind(row)
                .fetch_optional(pool)
                .await
        })
    }
}

#[derive(sqlx::FromRow)]
struct ThreadDbRow {
    channel: String,
    parent_ts: Option<String>,
    parent_row: i64,
    claimed_until: i64,
    threaded: i64,
    card: Option<String>,
    card_updated_at: i64,
}

impl From<ThreadDbRow> for ThreadRow {
    fn from(row: ThreadDbRow) -> Self {
        Self {
            channel: row.channel,
            parent_ts: row.parent_ts,
            parent_row: row.parent_row,
            claimed_until: row.claimed_until,
            threaded: row.threaded != 0,
            card: row.card,
            card_updated_at: row.card_updated_at,
        }
    }
}
