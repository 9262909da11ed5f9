//! What Slack destinations remember: the thread of each issue (its parent message and the state
//! that parent shows), which issues were announced to a destination without threads, and the
//! rows a coalesced message told (reminders are in `slack_reminders`). Every decision several
//! instances could race on is one statement: a unique insert or an update only one can win.

use super::{Store, StoreError, dispatch};

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

    /// Claims `row`'s event for `row`'s own message, unless another row's message tells it
    /// already, and returns the row that tells it with that row's status (`row` itself when the
    /// claim is its own). The claim and a leader's cover of the same row are one unique key, so
    /// of a row sending alone and a burst telling it, exactly one happens.
    pub async fn claim_own_message(
        &self,
        destination: &str,
        row: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        {
            let _turn = self.write_turn().await;
            dispatch!(self, pool => {
                sqlx::query(COVER_ROW)
                    .bind(destination)
                    .bind(row)
                    .bind(row)
                    .execute(pool)
                    .await?;
            });
        }
        self.coalesced_into(destination, row).await
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
