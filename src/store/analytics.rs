//! The issue lifecycle tables: snapshots upserted so the newest `updated_at` wins whatever the
//! arrival order, comments keyed by id, first response computed at query time (so a comment
//! that arrives before its issue still counts), and where `herald backfill` stopped.

use std::collections::HashSet;

use super::{Backend, Store, StoreError, dispatch};
use crate::analytics::{GroupBy, IssueFacts, IssueRecord, LifecycleChanges, ReportQuery};
use crate::time_util::now_ms;

const UPSERT_ISSUE: &str = "INSERT INTO issues
    (repository, number, title, author, author_is_bot, labels, assignees, created_at, updated_at,
     closed_at, state, state_reason, deleted)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (repository, number) DO UPDATE SET
        title = excluded.title, author = excluded.author, author_is_bot = excluded.author_is_bot,
        labels = excluded.labels, assignees = excluded.assignees, updated_at = excluded.updated_at,
        closed_at = excluded.closed_at, state = excluded.state, state_reason = excluded.state_reason
    WHERE excluded.updated_at >= issues.updated_at";

const MARK_ISSUE_DELETED: &str =
    "UPDATE issues SET deleted = 1 WHERE repository = $1 AND number = $2";

const CLEAR_LABELS: &str = "DELETE FROM issue_labels WHERE repository = $1 AND number = $2";

const INSERT_LABEL: &str = "INSERT INTO issue_labels (repository, number, label)
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

const UPSERT_COMMENT: &str = "INSERT INTO issue_comments
    (repository, comment_id, issue_number, author, author_is_bot, created_at, deleted)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (repository, comment_id) DO UPDATE SET
        deleted = CASE WHEN excluded.deleted = 1 THEN 1 ELSE issue_comments.deleted END";

const SAVE_PROGRESS: &str = "INSERT INTO backfill_progress
    (repository, phase, next_url, done, updated_at) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (repository, phase) DO UPDATE SET
        next_url = excluded.next_url, done = excluded.done, updated_at = excluded.updated_at";

const LOAD_PROGRESS: &str =
    "SELECT phase, next_url, done FROM backfill_progress WHERE repository = $1";

const RESET_PROGRESS: &str = "DELETE FROM backfill_progress WHERE repository = $1";

const ISSUE_NUMBERS: &str = "SELECT number FROM issues WHERE LOWER(repository) = $1";

/// The first qualifying response: not deleted, not a bot, not the issue's author. The index
/// `issue_comments_by_issue` covers it, in order, so it stops at the first match.
macro_rules! first_response {
    () => {
        "FROM issue_comments c
        WHERE c.repository = i.repository AND c.issue_number = i.number AND c.deleted = 0
          AND c.author_is_bot = 0 AND c.author <> i.author
        ORDER BY c.created_at, c.comment_id LIMIT 1"
    };
}

/// Issues not deleted, created in `[$1, $2)`, in repository `$3` and with label `$4` (each
/// lower-cased, or NULL for any).
macro_rules! issue_filter {
    () => {
        "FROM issues i
        WHERE i.deleted = 0 AND i.created_at >= $1 AND i.created_at < $2
          AND ($3 IS NULL OR LOWER(i.repository) = $3)
          AND ($4 IS NULL OR EXISTS (SELECT 1 FROM issue_labels l
                WHERE l.repository = i.repository AND l.number = i.number AND l.label = $4))"
    };
}

/// Only what the metrics need, one row per issue: a closed issue always has a close time (its
/// last update if GitHub gave none); `group_key` is the repository, author, labels or assignees
/// as `$5` asks.
macro_rules! facts {
    () => {
        concat!(
            "SELECT i.created_at,
                CASE WHEN i.state = 'closed' THEN COALESCE(i.closed_at, i.updated_at) END
                    AS closed_at,
                CASE WHEN i.state = 'closed' THEN i.state_reason END AS state_reason,
                (SELECT c.created_at ",
            first_response!(),
            ") AS first_response_at,
                CASE $5 WHEN 'repo' THEN i.repository WHEN 'author' THEN i.author
                    WHEN 'label' THEN i.labels WHEN 'assignee' THEN i.assignees END AS group_key ",
            issue_filter!()
        )
    };
}

/// The facts as one JSON array of arrays. One value instead of one row per issue: handing rows
/// over one by one costs more than computing them (three times the whole report on SQLite).
const FACTS_SQLITE: &str = concat!(
    "SELECT json_group_array(json_array(f.created_at, f.closed_at, f.state_reason,
        f.first_response_at, f.group_key)) FROM (",
    facts!(),
    ") f"
);

const FACTS_POSTGRES: &str = concat!(
    "SELECT COALESCE(json_agg(json_build_array(f.created_at, f.closed_at, f.state_reason,
        f.first_response_at, f.group_key)), '[]')::text FROM (",
    facts!(),
    ") f"
);

const LIFECYCLES: &str = concat!(
    "SELECT i.repository, i.number, i.title, i.author, i.author_is_bot, i.labels, i.assignees,
        i.created_at, i.closed_at, i.state, i.state_reason,
        (SELECT c.created_at ",
    first_response!(),
    ") AS first_response_at,
        (SELECT c.author ",
    first_response!(),
    ") AS first_responder,
        (SELECT COUNT(*) FROM issue_comments c
         WHERE c.repository = i.repository AND c.issue_number = i.number AND c.deleted = 0)
            AS comment_count ",
    issue_filter!(),
    " ORDER BY i.created_at, i.repository, i.number"
);

/// One element of the facts array: created, closed, state reason, first response, group key.
type FactsRow = (
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn into_facts(row: FactsRow, group_by: Option<GroupBy>) -> IssueFacts {
    let (created_at, closed_at, state_reason, first_response_at, group_key) = row;
    let groups = match (group_by, group_key) {
        (Some(GroupBy::Label | GroupBy::Assignee), Some(list)) => names(&list),
        (Some(GroupBy::Repo | GroupBy::Author), Some(key)) => vec![key],
        _ => Vec::new(),
    };
    IssueFacts {
        created_at,
        closed_at,
        state_reason,
        first_response_at,
        groups,
    }
}

/// A JSON array of names as stored; anything else reads as none.
fn names(text: &str) -> Vec<String> {
    if text == "[]" {
        return Vec::new();
    }
    serde_json::from_str(text).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
struct LifecycleRow {
    repository: String,
    number: i64,
    title: String,
    author: String,
    author_is_bot: i64,
    labels: String,
    assignees: String,
    created_at: i64,
    closed_at: Option<i64>,
    state: String,
    state_reason: Option<String>,
    first_response_at: Option<i64>,
    first_responder: Option<String>,
    comment_count: i64,
}

impl From<LifecycleRow> for IssueRecord {
    fn from(row: LifecycleRow) -> Self {
        Self {
            labels: names(&row.labels),
            assignees: names(&row.assignees),
            repository: row.repository,
            number: row.number,
            title: row.title,
            author: row.author,
            author_is_bot: row.author_is_bot != 0,
            created_at: row.created_at,
            closed_at: row.closed_at,
            state: row.state,
            state_reason: row.state_reason,
            first_response_at: row.first_response_at,
            first_responder: row.first_responder,
            comment_count: row.comment_count,
        }
    }
}

/// Which half of a backfill: issues first, then comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillPhase {
    Issues,
    Comments,
}

impl BackfillPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issues => "issues",
            Self::Comments => "comments",
        }
    }
}

/// Where one phase of a backfill stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseProgress {
    NotStarted,
    /// Stopped before this page; the pages before it are stored.
    ResumeAt(String),
    Done,
}

/// A page of a backfill to record together with the data it brought.
#[derive(Debug, Clone, Copy)]
pub struct BackfillStep<'a> {
    /// The repository as given to `herald backfill`, lower-cased.
    pub repository: &'a str,
    pub phase: BackfillPhase,
    /// The page to fetch next; `None` when this was the last one.
    pub next_url: Option<&'a str>,
}

/// The repository and label filters as the SQL compares them.
fn filter_values(query: &ReportQuery) -> (Option<String>, Option<String>) {
    (
        query.repo.as_deref().map(str::to_lowercase),
        query.label.as_deref().map(str::to_lowercase),
    )
}

impl Store {
    /// Applies the snapshots of one event in one transaction.
    pub async fn apply_lifecycle(&self, changes: &LifecycleChanges) -> Result<(), StoreError> {
        self.write_lifecycle(&[changes], None).await
    }

    /// Applies the snapshots of several events in one transaction (the analytics sink's batch):
    /// all or none.
    pub async fn apply_lifecycles(&self, changes: &[&LifecycleChanges]) -> Result<(), StoreError> {
        self.write_lifecycle(changes, None).await
    }

    /// Stores one backfilled page and where to continue, in one transaction: an interrupted
    /// backfill never skips a page, and never needs to fetch a stored one again.
    pub async fn save_backfill_page(
        &self,
        changes: &LifecycleChanges,
        step: BackfillStep<'_>,
    ) -> Result<(), StoreError> {
        self.write_lifecycle(&[changes], Some(step)).await
    }

    async fn write_lifecycle(
        &self,
        all_changes: &[&LifecycleChanges],
        step: Option<BackfillStep<'_>>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool, begin => {
            let mut tx = pool.begin_with(begin).await?;
            for changes in all_changes {
            for issue in &changes.issues {
                let labels = serde_json::to_string(&issue.labels).unwrap_or_else(|_| "[]".into());
                let assignees =
                    serde_json::to_string(&issue.assignees).unwrap_or_else(|_| "[]".into());
                let newest = sqlx::query(UPSERT_ISSUE)
                    .bind(&issue.repository)
                    .bind(issue.number)
                    .bind(&issue.title)
                    .bind(&issue.author)
                    .bind(i64::from(issue.author_is_bot))
                    .bind(labels)
                    .bind(assignees)
                    .bind(issue.created_at)
                    .bind(issue.updated_at)
                    .bind(issue.closed_at)
                    .bind(&issue.state)
                    .bind(&issue.state_reason)
                    .bind(i64::from(issue.deleted))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if newest {
                    sqlx::query(CLEAR_LABELS)
                        .bind(&issue.repository)
                        .bind(issue.number)
                        .execute(&mut *tx)
                        .await?;
                    for label in &issue.labels {
                        sqlx::query(INSERT_LABEL)
                            .bind(&issue.repository)
                            .bind(issue.number)
                            .bind(label.to_lowercase())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                if issue.deleted {
                    sqlx::query(MARK_ISSUE_DELETED)
                        .bind(&issue.repository)
                        .bind(issue.number)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for comment in &changes.comments {
                sqlx::query(UPSERT_COMMENT)
                    .bind(&comment.repository)
                    .bind(comment.comment_id)
                    .bind(comment.issue_number)
                    .bind(&comment.author)
                    .bind(i64::from(comment.author_is_bot))
                    .bind(comment.created_at)
                    .bind(i64::from(comment.deleted))
                    .execute(&mut *tx)
                    .await?;
            }
            }
            if let Some(step) = step {
                sqlx::query(SAVE_PROGRESS)
                    .bind(step.repository)
                    .bind(step.phase.as_str())
                    .bind(step.next_url)
                    .bind(i64::from(step.next_url.is_none()))
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// What the report needs of each issue not deleted, created in the window, in the
    /// repository and with the label when asked (both compared without regard to case), with
    /// its keys for the query's grouping.
    pub async fn issue_facts(&self, query: &ReportQuery) -> Result<Vec<IssueFacts>, StoreError> {
        let (repo, label) = filter_values(query);
        let group_by = query.group_by.map(GroupBy::as_str);
        let sql = match self.backend() {
            Backend::Sqlite => FACTS_SQLITE,
            Backend::Postgres => FACTS_POSTGRES,
        };
        let json: String = dispatch!(self, pool => {
            sqlx::query_scalar(sql)
                .bind(query.window.since_ms)
                .bind(query.window.until_ms)
                .bind(repo)
                .bind(label)
                .bind(group_by)
                .fetch_one(pool)
                .await?
        });
        let rows: Vec<FactsRow> =
            serde_json::from_str(&json).map_err(|error| StoreError::Decode(Box::new(error)))?;
        Ok(rows
            .into_iter()
            .map(|row| into_facts(row, query.group_by))
            .collect())
    }

    /// The same issues as [`Store::issue_facts`], each with its whole lifecycle (first
    /// responder, comment count), oldest first.
    pub async fn issue_lifecycles(
        &self,
        query: &ReportQuery,
    ) -> Result<Vec<IssueRecord>, StoreError> {
        let (repo, label) = filter_values(query);
        let rows: Vec<LifecycleRow> = dispatch!(self, pool => {
            sqlx::query_as(LIFECYCLES)
                .bind(query.window.since_ms)
                .bind(query.window.until_ms)
                .bind(repo)
                .bind(label)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(IssueRecord::from).collect())
    }

    /// Where each phase of the backfill of `repository` (lower-cased) stands.
    pub async fn backfill_progress(
        &self,
        repository: &str,
    ) -> Result<[PhaseProgress; 2], StoreError> {
        let rows: Vec<(String, Option<String>, i64)> = dispatch!(self, pool => {
            sqlx::query_as(LOAD_PROGRESS).bind(repository).fetch_all(pool).await?
        });
        let progress =
            |phase: BackfillPhase| match rows.iter().find(|(name, _, _)| name == phase.as_str()) {
                Some((_, _, done)) if *done != 0 => PhaseProgress::Done,
                Some((_, Some(next), _)) => PhaseProgress::ResumeAt(next.clone()),
                None | Some((_, None, _)) => PhaseProgress::NotStarted,
            };
        Ok([
            progress(BackfillPhase::Issues),
            progress(BackfillPhase::Comments),
        ])
    }

    /// Forgets where the backfill of `repository` stood, so the next one starts from page one.
    pub async fn reset_backfill(&self, repository: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        dispatch!(self, pool => {
            sqlx::query(RESET_PROGRESS).bind(repository).execute(pool).await?;
        });
        Ok(())
    }

    /// The numbers of the issues known in `repository` (lower-cased), deleted ones included.
    pub async fn issue_numbers(&self, repository: &str) -> Result<HashSet<i64>, StoreError> {
        let numbers: Vec<i64> = dispatch!(self, pool => {
            sqlx::query_scalar(ISSUE_NUMBERS).bind(repository).fetch_all(pool).await?
        });
        Ok(numbers.into_iter().collect())
    }
}
