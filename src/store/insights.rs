//! What the dashboard, the digest and the backfill's reconciliation read and write beyond the
//! report itself: when issues were open (the backlog over time), the oldest unanswered issues,
//! the delivery health of each destination, rows a complete backfill pass did not see, and the
//! weekly digests already posted.

use super::analytics::{Excluded, issue_filter, unanswered};
use super::{Backend, Store, StoreError, dispatch};
use crate::analytics::{OpenSpan, Removal, ReportQuery};

/// An open issue nobody has answered yet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UnansweredIssue {
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub html_url: Option<String>,
    pub created_at: i64,
}

/// The outbox of one destination, as the delivery-health panel shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DestinationHealth {
    pub destination: String,
    /// Waiting for their first attempt.
    pub pending: i64,
    /// Failed at least once, waiting for a retry.
    pub failing: i64,
    /// Dead letters (`herald deliveries retry`).
    pub dead: i64,
}

/// Issues of the window's filters open at some moment of `[since, until)`: created before
/// `until`, not closed before `since`.
fn spans_sql(backend: Backend, excluded: &Excluded) -> String {
    let filter = issue_filter(excluded, 5)
        .replace("i.created_at >= $1 AND ", "")
        .replace(
            "i.created_at < $2",
            "i.created_at < $2
          AND (i.state <> 'closed' OR COALESCE(i.closed_at, i.updated_at) >= $1)",
        );
    let closed = "CASE WHEN i.state = 'closed' THEN COALESCE(i.closed_at, i.updated_at) END";
    match backend {
        Backend::Sqlite => {
            format!("SELECT json_group_array(json_array(i.created_at, {closed})) {filter}")
        }
        Backend::Postgres => format!(
            "SELECT COALESCE(json_agg(json_build_array(i.created_at, {closed})), '[]')::text \
             {filter}"
        ),
    }
}

const HEALTH: &str = "SELECT destination,
        SUM(CASE WHEN status = 'pending' AND attempts = 0 THEN 1 ELSE 0 END) AS pending,
        SUM(CASE WHEN status = 'pending' AND attempts > 0 THEN 1 ELSE 0 END) AS failing,
        SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END) AS dead
    FROM outbox WHERE status IN ('pending', 'dead')
    GROUP BY destination ORDER BY destination";

const EVENTS_PER_HOUR: &str = "SELECT (received_at - $1) / 3600000 AS hour, COUNT(*)
    FROM events WHERE received_at >= $1 AND received_at < $2 GROUP BY 1 ORDER BY 1";

const UNSEEN_ISSUES: &str = "SELECT repository, number FROM issues
    WHERE LOWER(repository) = $1 AND deleted = 0 AND created_at < $2
      AND (backfill_pass IS NULL OR backfill_pass <> $2)
    ORDER BY number";

const MARK_REMOVED: &str = "UPDATE issues SET deleted = 1, deleted_reason = $3
    WHERE repository = $1 AND number = $2 AND deleted = 0";

const DELETE_UNSEEN_COMMENTS: &str = "UPDATE issue_comments SET deleted = 1
    WHERE LOWER(repository) = $1 AND deleted = 0 AND created_at < $2
      AND (backfill_pass IS NULL OR backfill_pass <> $2)";

const CLAIM_DIGEST: &str = "INSERT INTO digests (destination, week, claimed_at)
    VALUES ($1, $2, $3) ON CONFLICT (destination, week) DO NOTHING";

const POSTED_DIGEST: &str =
    "UPDATE digests SET posted_at = $3 WHERE destination = $1 AND week = $2";

const RELEASE_DIGEST: &str =
    "DELETE FROM digests WHERE destination = $1 AND week = $2 AND posted_at IS NULL";

impl Store {
    /// When each issue of the query's filters (its window ignored but for the bounds below)
    /// was open: those created before `until` and not closed before `since`.
    pub async fn open_spans(
        &self,
        query: &ReportQuery,
        excluded: &Excluded,
    ) -> Result<Vec<OpenSpan>, StoreError> {
        let repo = query.repo.as_deref().map(str::to_lowercase);
        let label = query.label.as_deref().map(str::to_lowercase);
        let sql = spans_sql(self.backend(), excluded);
        let json: String = dispatch!(self, pool => {
            let mut statement = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(query.window.since_ms)
                .bind(query.window.until_ms)
                .bind(repo)
                .bind(label);
            for login in &excluded.logins {
                statement = statement.bind(login);
            }
            statement.fetch_one(pool).await?
        });
        let rows: Vec<(i64, Option<i64>)> =
            serde_json::from_str(&json).map_err(|error| StoreError::Decode(Box::new(error)))?;
        Ok(rows
            .into_iter()
            .map(|(created_at, closed_at)| OpenSpan {
                created_at,
                closed_at,
            })
            .collect())
    }

    /// The oldest open issues of the query's filters (any creation time before `until`) that
    /// have no qualifying response, oldest first.
    pub async fn oldest_unanswered(
        &self,
        query: &ReportQuery,
        excluded: &Excluded,
        limit: i64,
    ) -> Result<Vec<UnansweredIssue>, StoreError> {
        let repo = query.repo.as_deref().map(str::to_lowercase);
        let label = query.label.as_deref().map(str::to_lowercase);
        let sql = format!(
            "SELECT i.repository, i.number, i.title, i.html_url, i.created_at {}
               AND i.state <> 'closed' AND {}
             ORDER BY i.created_at, i.repository, i.number LIMIT $5",
            issue_filter(excluded, 6),
            unanswered(excluded, 6)
        );
        dispatch!(self, pool => {
            let mut statement = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(0_i64)
                .bind(query.window.until_ms)
                .bind(repo)
                .bind(label)
                .bind(limit);
            for login in &excluded.logins {
                statement = statement.bind(login);
            }
            statement.fetch_all(pool).await
        })
    }

    /// Pending, failing and dead deliveries per destination (only those rows are read, through
    /// `outbox_by_status`); `known` destinations with none are listed with zeros.
    pub async fn destination_health(
        &self,
        known: &[String],
    ) -> Result<Vec<DestinationHealth>, StoreError> {
        let mut health: Vec<DestinationHealth> = dispatch!(self, pool => {
            sqlx::query_as(HEALTH).fetch_all(pool).await?
        });
        for destination in known.iter().cloned() {
            if !health.iter().any(|row| row.destination == destination) {
                health.push(DestinationHealth {
                    destination,
                    pending: 0,
                    failing: 0,
                    dead: 0,
                });
            }
        }
        health.sort_by(|a, b| a.destination.cmp(&b.destination));
        Ok(health)
    }

    /// Events received in each hour of `[since, since + hours·1h)`, oldest first.
    pub async fn events_per_hour(&self, since_ms: i64, hours: i64) -> Result<Vec<i64>, StoreError> {
        let until = since_ms + hours * 3_600_000;
        let rows: Vec<(i64, i64)> = dispatch!(self, pool => {
            sqlx::query_as(EVENTS_PER_HOUR).bind(since_ms).bind(until).fetch_all(pool).await?
        });
        let mut counts = vec![0; usize::try_from(hours).unwrap_or(0)];
        for (hour, count) in rows {
            if let Some(slot) = usize::try_from(hour).ok().and_then(|h| counts.get_mut(h)) {
                *slot = count;
            }
        }
        Ok(counts)
    }

    /// Issues of `repository` (lower-cased) created before the pass began that the pass did
    /// not see and that are still counted.
    pub async fn unseen_issues(
        &self,
        repository: &str,
        pass: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(UNSEEN_ISSUES).bind(repository).bind(pass).fetch_all(pool).await
        })
    }

    /// Takes an issue out of the metrics for good.
    pub async fn mark_issue_removed(
        &self,
        repository: &str,
        number: i64,
        removal: Removal,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let affected = dispatch!(self, pool => {
            sqlx::query(MARK_REMOVED)
                .bind(repository)
                .bind(number)
                .bind(removal.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Marks deleted the comments of `repository` (lower-cased), created before the pass began,
    /// that the pass did not see; returns how many.
    pub async fn delete_unseen_comments(
        &self,
        repository: &str,
        pass: i64,
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        Ok(dispatch!(self, pool => {
            sqlx::query(DELETE_UNSEEN_COMMENTS)
                .bind(repository)
                .bind(pass)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Claims the digest of `week` for `destination`: true for exactly one caller, across
    /// instances and restarts, until it is released.
    pub async fn claim_digest(
        &self,
        destination: &str,
        week: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let affected = dispatch!(self, pool => {
            sqlx::query(CLAIM_DIGEST)
                .bind(destination)
                .bind(week)
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected == 1)
    }

    /// Records that the claimed digest went out.
    pub async fn digest_posted(
        &self,
        destination: &str,
        week: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(POSTED_DIGEST).bind(destination).bind(week).bind(now_ms).execute(pool).await?;
        });
        Ok(())
    }

    /// Gives a claimed digest that could not be posted back, so it is tried again.
    pub async fn release_digest(&self, destination: &str, week: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(RELEASE_DIGEST).bind(destination).bind(week).execute(pool).await?;
        });
        Ok(())
    }
}
