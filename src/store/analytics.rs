//! The issue lifecycle tables: snapshots upserted so the newest `updated_at` wins whatever the
//! arrival order, comments keyed by id, first response computed at query time (so a comment
//! that arrives before its issue still counts), and where `herald backfill` stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

use super::health::storable_text;
use super::{Backend, Store, StoreError, dispatch};
use crate::analytics::{GroupBy, IssueFacts, IssueRecord, LifecycleChanges, ReportQuery};
use crate::time_util::now_ms;

const UPSERT_ISSUE: &str = "INSERT INTO issues
    (repository, number, title, author, author_is_bot, labels, assignees, created_at, updated_at,
     closed_at, state, state_reason, deleted, author_id, assignee_ids, html_url, deleted_reason)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
    ON CONFLICT (repository, number) DO UPDATE SET
        title = excluded.title, author = excluded.author, author_is_bot = excluded.author_is_bot,
        labels = excluded.labels, assignees = excluded.assignees, updated_at = excluded.updated_at,
        closed_at = excluded.closed_at, state = excluded.state, state_reason = excluded.state_reason,
        author_id = COALESCE(excluded.author_id, issues.author_id),
        assignee_ids = excluded.assignee_ids,
        html_url = COALESCE(excluded.html_url, issues.html_url)
    WHERE excluded.updated_at >= issues.updated_at";

const MARK_ISSUE_DELETED: &str = "UPDATE issues SET deleted = 1,
    deleted_reason = COALESCE(deleted_reason, $3) WHERE repository = $1 AND number = $2";

/// A backfill page saw the issue, whichever snapshot won.
const MARK_ISSUE_SEEN: &str =
    "UPDATE issues SET backfill_pass = $3 WHERE repository = $1 AND number = $2";

const CLEAR_LABELS: &str = "DELETE FROM issue_labels WHERE repository = $1 AND number = $2";

const INSERT_LABEL: &str = "INSERT INTO issue_labels (repository, number, label)
    VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

const UPSERT_COMMENT: &str = "INSERT INTO issue_comments
    (repository, comment_id, issue_number, author, author_is_bot, created_at, deleted, author_id,
     backfill_pass)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (repository, comment_id) DO UPDATE SET
        deleted = CASE WHEN excluded.deleted = 1 THEN 1 ELSE issue_comments.deleted END,
        author_id = COALESCE(issue_comments.author_id, excluded.author_id),
        backfill_pass = COALESCE(excluded.backfill_pass, issue_comments.backfill_pass)";

/// Every login an id was seen with; the newest time wins.
const UPSERT_LOGIN: &str = "INSERT INTO github_logins (user_id, login, seen_at) VALUES ($1, $2, $3)
    ON CONFLICT (user_id, login) DO UPDATE SET seen_at = excluded.seen_at
    WHERE excluded.seen_at > github_logins.seen_at";

const SAVE_PROGRESS: &str = "INSERT INTO backfill_progress
    (repository, phase, next_url, done, updated_at, pass_started_at) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (repository, phase) DO UPDATE SET
        next_url = excluded.next_url, done = excluded.done, updated_at = excluded.updated_at,
        pass_started_at = excluded.pass_started_at";

const LOAD_PROGRESS: &str = "SELECT phase, next_url, done, pass_started_at, updated_at
    FROM backfill_progress WHERE repository = $1";

const RESET_PROGRESS: &str = "DELETE FROM backfill_progress WHERE repository = $1";

const ISSUE_NUMBERS: &str = "SELECT number FROM issues WHERE LOWER(repository) = $1";

/// Whose activity the metrics leave out, as the SQL compares it: ids, and lower-cased logins
/// (for rows whose ids are not known).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Excluded {
    pub ids: Vec<i64>,
    pub logins: Vec<String>,
}

impl Excluded {
    /// `AND` conditions keeping `id_column`/`login_column` off the lists; logins are bound as
    /// `$first_param…`, ids written as numbers (they are integers, so nothing can be injected).
    fn condition(&self, id_column: &str, login_column: &str, first_param: usize) -> String {
        let mut sql = String::new();
        if !self.ids.is_empty() {
            let ids: Vec<String> = self.ids.iter().map(i64::to_string).collect();
            let _ = write!(
                sql,
                " AND COALESCE({id_column}, -1) NOT IN ({})",
                ids.join(", ")
            );
        }
        if !self.logins.is_empty() {
            let params: Vec<String> = (0..self.logins.len())
                .map(|index| format!("${}", first_param + index))
                .collect();
            let _ = write!(
                sql,
                " AND LOWER({login_column}) NOT IN ({})",
                params.join(", ")
            );
        }
        sql
    }
}

/// The first qualifying response to issue `i`: not deleted, not a bot, not the issue's author
/// (by id; by login where an id is unknown), not an excluded user. The index
/// `issue_comments_by_issue` covers it, in order, so it stops at the first match.
fn first_response(column: &str, excluded: &Excluded, first_param: usize) -> String {
    format!(
        "(SELECT c.{column} FROM issue_comments c
        WHERE c.repository = i.repository AND c.issue_number = i.number AND c.deleted = 0
          AND c.author_is_bot = 0
          AND (CASE WHEN c.author_id IS NULL OR i.author_id IS NULL THEN c.author <> i.author
                    ELSE c.author_id <> i.author_id END){}
        ORDER BY c.created_at, c.comment_id LIMIT 1)",
        excluded.condition("c.author_id", "c.author", first_param)
    )
}

/// Issues not deleted, created in `[$1, $2)`, in repository `$3` and with label `$4` (each
/// lower-cased, or NULL for any), not opened by an excluded user.
pub(super) fn issue_filter(excluded: &Excluded, first_param: usize) -> String {
    format!(
        "FROM issues i
        WHERE i.deleted = 0 AND i.created_at >= $1 AND i.created_at < $2
          AND ($3 IS NULL OR LOWER(i.repository) = $3)
          AND ($4 IS NULL OR EXISTS (SELECT 1 FROM issue_labels l
                WHERE l.repository = i.repository AND l.number = i.number AND l.label = $4)){}",
        excluded.condition("i.author_id", "i.author", first_param)
    )
}

/// Whether issue `i` has no qualifying response.
pub(super) fn unanswered(excluded: &Excluded, first_param: usize) -> String {
    format!(
        "NOT EXISTS {}",
        first_response("comment_id", excluded, first_param)
    )
}

/// Only what the metrics need, one row per issue: a closed issue always has a close time (its
/// last update if GitHub gave none); `group_key` is the repository, author, labels or assignees
/// as `$5` asks, and `group_ids` the author's or assignees' ids. Excluded logins are `$6…`.
fn facts_sql(backend: Backend, excluded: &Excluded) -> String {
    let inner = format!(
        "SELECT i.created_at,
            CASE WHEN i.state = 'closed' THEN COALESCE(i.closed_at, i.updated_at) END AS closed_at,
            CASE WHEN i.state = 'closed' THEN i.state_reason END AS state_reason,
            {} AS first_response_at,
            CASE $5 WHEN 'repo' THEN i.repository WHEN 'author' THEN i.author
                WHEN 'label' THEN i.labels WHEN 'assignee' THEN i.assignees END AS group_key,
            CASE $5 WHEN 'author' THEN CAST(i.author_id AS TEXT)
                WHEN 'assignee' THEN i.assignee_ids END AS group_ids
        {}",
        first_response("created_at", excluded, 6),
        issue_filter(excluded, 6)
    );
    // One JSON value instead of one row per issue: handing rows over one by one costs more than
    // computing them (three times the whole report on SQLite).
    match backend {
        Backend::Sqlite => format!(
            "SELECT json_group_array(json_array(f.created_at, f.closed_at, f.state_reason,
                f.first_response_at, f.group_key, f.group_ids)) FROM ({inner}) f"
        ),
        Backend::Postgres => format!(
            "SELECT COALESCE(json_agg(json_build_array(f.created_at, f.closed_at, f.state_reason,
                f.first_response_at, f.group_key, f.group_ids)), '[]')::text FROM ({inner}) f"
        ),
    }
}

fn lifecycles_sql(excluded: &Excluded) -> String {
    format!(
        "SELECT i.repository, i.number, i.title, i.author, i.author_is_bot, i.labels, i.assignees,
            i.created_at, i.closed_at, i.state, i.state_reason,
            {} AS first_response_at,
            {} AS first_responder,
            (SELECT COUNT(*) FROM issue_comments c
             WHERE c.repository = i.repository AND c.issue_number = i.number AND c.deleted = 0)
                AS comment_count
        {} ORDER BY i.created_at, i.repository, i.number",
        first_response("created_at", excluded, 5),
        first_response("author", excluded, 5),
        issue_filter(excluded, 5)
    )
}

/// One element of the facts array: created, closed, state reason, first response, group key,
/// group ids.
type FactsRow = (
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// The keys of one issue for the grouping: repositories and labels as stored; authors and
/// assignees by id, named by the newest login known for the id (so a rename does not split a
/// group), by login where no id is known.
fn group_keys(
    group_by: Option<GroupBy>,
    key: Option<String>,
    ids: Option<&str>,
    logins: &HashMap<i64, String>,
) -> Vec<String> {
    let named = |id: Option<i64>, login: String| -> String {
        id.and_then(|id| logins.get(&id).cloned()).unwrap_or(login)
    };
    match (group_by, key) {
        (Some(GroupBy::Label), Some(list)) => names(&list),
        (Some(GroupBy::Repo), Some(key)) => vec![key],
        (Some(GroupBy::Author), Some(login)) => {
            vec![named(ids.and_then(|id| id.parse().ok()), login)]
        }
        (Some(GroupBy::Assignee), Some(list)) => {
            let assignees = names(&list);
            let ids: Vec<i64> = ids
                .map(|ids| serde_json::from_str(ids).unwrap_or_default())
                .unwrap_or_default();
            let mut keys: Vec<String> = if ids.len() == assignees.len() {
                ids.into_iter()
                    .zip(assignees)
                    .map(|(id, login)| named(Some(id), login))
                    .collect()
            } else {
                assignees
            };
            keys.sort();
            keys.dedup();
            keys
        }
        _ => Vec::new(),
    }
}

/// The ids of a facts row that name a group.
fn row_ids(group_by: Option<GroupBy>, ids: Option<&str>) -> Vec<i64> {
    match (group_by, ids) {
        (Some(GroupBy::Author), Some(id)) => id.parse().ok().into_iter().collect(),
        (Some(GroupBy::Assignee), Some(list)) => serde_json::from_str(list).unwrap_or_default(),
        _ => Vec::new(),
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

/// A step of a backfill: issues first, then comments, then reconciling what GitHub no longer
/// returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillPhase {
    Issues,
    Comments,
    Reconcile,
}

impl BackfillPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issues => "issues",
            Self::Comments => "comments",
            Self::Reconcile => "reconcile",
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

/// Where the backfill of one repository stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillState {
    pub issues: PhaseProgress,
    pub comments: PhaseProgress,
    pub reconcile: PhaseProgress,
    /// When the pass began (Unix ms; it names the pass); `None` without one, or for a pass
    /// begun before herald recorded it.
    pub pass_started_at: Option<i64>,
    /// When the last phase was recorded.
    pub updated_at: Option<i64>,
}

/// A page of a backfill to record together with the data it brought.
#[derive(Debug, Clone, Copy)]
pub struct BackfillStep<'a> {
    /// The repository as given to `herald backfill`, lower-cased.
    pub repository: &'a str,
    pub phase: BackfillPhase,
    /// The page to fetch next; `None` when this was the last one.
    pub next_url: Option<&'a str>,
    /// The pass this page belongs to (its start): rows on the page are marked as seen by it.
    pub pass: Option<i64>,
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

    #[expect(
        clippy::too_many_lines,
        reason = "one transaction, statement after statement"
    )]
    async fn write_lifecycle(
        &self,
        all_changes: &[&LifecycleChanges],
        step: Option<BackfillStep<'_>>,
    ) -> Result<(), StoreError> {
        match (self, step) {
            (Self::Sqlite(_, _, direct), None) => {
                let owned: Vec<LifecycleChanges> =
                    all_changes.iter().map(|c| (*c).clone()).collect();
                return direct
                    .write(false, move |tx| write_lifecycle_direct(tx, &owned))
                    .await;
            }
            (Self::Postgres(pool), None) => {
                let mut tx = pool.begin().await?;
                super::analytics_batch::write(&mut tx, all_changes).await?;
                return tx.commit().await;
            }
            _ => {}
        }
        let pass = step.and_then(|step| step.pass);
        // Each (id, login) once, at the newest time seen, in key order (no deadlock between two
        // writers on PostgreSQL).
        let mut logins: BTreeMap<(i64, &str), i64> = BTreeMap::new();
        for changes in all_changes {
            for issue in &changes.issues {
                for (id, login) in issue.logins() {
                    let seen = logins.entry((id, login)).or_insert(issue.updated_at);
                    *seen = (*seen).max(issue.updated_at);
                }
            }
            for comment in &changes.comments {
                if let Some(id) = comment.author_id {
                    let seen = logins
                        .entry((id, comment.author.as_str()))
                        .or_insert(comment.created_at);
                    *seen = (*seen).max(comment.created_at);
                }
            }
        }
        let _turn = self.write_turn().await;
        dispatch!(self, pool, begin => {
            let mut tx = pool.begin_with(begin).await?;
            for changes in all_changes {
            for issue in &changes.issues {
                let labels = serde_json::to_string(&issue.labels).unwrap_or_else(|_| "[]".into());
                let assignees: Vec<&str> =
                    issue.assignees.iter().map(|user| user.login.as_str()).collect();
                let assignee_ids: Vec<i64> =
                    issue.assignees.iter().filter_map(|user| user.id).collect();
                let removal = issue.removal.map(crate::analytics::Removal::as_str);
                let newest = sqlx::query(UPSERT_ISSUE)
                    .bind(&issue.repository)
                    .bind(issue.number)
                    .bind(storable_text(&issue.title))
                    .bind(storable_text(&issue.author))
                    .bind(i64::from(issue.author_is_bot))
                    .bind(labels)
                    .bind(serde_json::to_string(&assignees).unwrap_or_else(|_| "[]".into()))
                    .bind(issue.created_at)
                    .bind(issue.updated_at)
                    .bind(issue.closed_at)
                    .bind(&issue.state)
                    .bind(&issue.state_reason)
                    .bind(i64::from(removal.is_some()))
                    .bind(issue.author_id)
                    .bind(serde_json::to_string(&assignee_ids).unwrap_or_else(|_| "[]".into()))
                    .bind(&issue.html_url)
                    .bind(removal)
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
                            .bind(storable_text(&label.to_lowercase()).into_owned())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                if let Some(removal) = removal {
                    sqlx::query(MARK_ISSUE_DELETED)
                        .bind(&issue.repository)
                        .bind(issue.number)
                        .bind(removal)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(pass) = pass {
                    sqlx::query(MARK_ISSUE_SEEN)
                        .bind(&issue.repository)
                        .bind(issue.number)
                        .bind(pass)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for comment in &changes.comments {
                sqlx::query(UPSERT_COMMENT)
                    .bind(&comment.repository)
                    .bind(comment.comment_id)
                    .bind(comment.issue_number)
                    .bind(storable_text(&comment.author))
                    .bind(i64::from(comment.author_is_bot))
                    .bind(comment.created_at)
                    .bind(i64::from(comment.deleted))
                    .bind(comment.author_id)
                    .bind(pass)
                    .execute(&mut *tx)
                    .await?;
            }
            }
            for ((id, login), seen_at) in &logins {
                sqlx::query(UPSERT_LOGIN)
                    .bind(id)
                    .bind(storable_text(login))
                    .bind(seen_at)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(step) = step {
                sqlx::query(SAVE_PROGRESS)
                    .bind(step.repository)
                    .bind(step.phase.as_str())
                    .bind(step.next_url)
                    .bind(i64::from(step.next_url.is_none()))
                    .bind(now_ms())
                    .bind(step.pass)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// What the report needs of each issue not deleted, created in the window, in the
    /// repository and with the label when asked (both compared without regard to case), with
    /// its keys for the query's grouping. Nobody is excluded.
    pub async fn issue_facts(&self, query: &ReportQuery) -> Result<Vec<IssueFacts>, StoreError> {
        self.issue_facts_excluding(query, &Excluded::default())
            .await
    }

    /// [`Store::issue_facts`] leaving out `excluded`: their issues, and their comments as
    /// responses.
    pub async fn issue_facts_excluding(
        &self,
        query: &ReportQuery,
        excluded: &Excluded,
    ) -> Result<Vec<IssueFacts>, StoreError> {
        let (repo, label) = filter_values(query);
        let group_by = query.group_by.map(GroupBy::as_str);
        let sql = facts_sql(self.backend(), excluded);
        let json: String = dispatch!(self, pool => {
            let mut statement = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(query.window.since_ms)
                .bind(query.window.until_ms)
                .bind(repo)
                .bind(label)
                .bind(group_by);
            for login in &excluded.logins {
                statement = statement.bind(login);
            }
            statement.fetch_one(pool).await?
        });
        let rows: Vec<FactsRow> =
            serde_json::from_str(&json).map_err(|error| StoreError::Decode(Box::new(error)))?;
        let mut ids: Vec<i64> = rows
            .iter()
            .flat_map(|row| row_ids(query.group_by, row.5.as_deref()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let logins = self.newest_logins(&ids).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let (created_at, closed_at, state_reason, first_response_at, key, ids) = row;
                IssueFacts {
                    created_at,
                    closed_at,
                    state_reason,
                    first_response_at,
                    groups: group_keys(query.group_by, key, ids.as_deref(), &logins),
                }
            })
            .collect())
    }

    /// The newest login seen for each of `ids`.
    pub async fn newest_logins(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        let mut logins = HashMap::new();
        for chunk in ids.chunks(500) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            // Ids are integers: written into the statement, nothing can be injected.
            let sql = format!(
                "SELECT user_id, login FROM github_logins WHERE user_id IN ({})
                 ORDER BY seen_at, login",
                list.join(", ")
            );
            let rows: Vec<(i64, String)> = dispatch!(self, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(pool).await?
            });
            logins.extend(rows);
        }
        Ok(logins)
    }

    /// The ids each of `logins` (any case) was ever seen with, so that a user listed by login
    /// stays excluded after a rename.
    pub async fn ids_of_logins(&self, logins: &[String]) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::new();
        for login in logins {
            let found: Vec<i64> = dispatch!(self, pool => {
                sqlx::query_scalar(
                    "SELECT DISTINCT user_id FROM github_logins WHERE LOWER(login) = $1",
                )
                .bind(login.to_lowercase())
                .fetch_all(pool)
                .await?
            });
            ids.extend(found);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The same issues as [`Store::issue_facts`], each with its whole lifecycle (first
    /// responder, comment count), oldest first.
    pub async fn issue_lifecycles(
        &self,
        query: &ReportQuery,
    ) -> Result<Vec<IssueRecord>, StoreError> {
        let (repo, label) = filter_values(query);
        let sql = lifecycles_sql(&Excluded::default());
        let rows: Vec<LifecycleRow> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
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
        let state = self.backfill_state(repository).await?;
        Ok([state.issues, state.comments])
    }

    /// Where the backfill of `repository` (lower-cased) stands, its pass included.
    pub async fn backfill_state(&self, repository: &str) -> Result<BackfillState, StoreError> {
        type Row = (String, Option<String>, i64, Option<i64>, i64);
        let rows: Vec<Row> = dispatch!(self, pool => {
            sqlx::query_as(LOAD_PROGRESS).bind(repository).fetch_all(pool).await?
        });
        let progress = |phase: BackfillPhase| match rows.iter().find(|row| row.0 == phase.as_str())
        {
            Some((_, _, done, _, _)) if *done != 0 => PhaseProgress::Done,
            Some((_, Some(next), _, _, _)) => PhaseProgress::ResumeAt(next.clone()),
            None | Some((_, None, _, _, _)) => PhaseProgress::NotStarted,
        };
        Ok(BackfillState {
            issues: progress(BackfillPhase::Issues),
            comments: progress(BackfillPhase::Comments),
            reconcile: progress(BackfillPhase::Reconcile),
            pass_started_at: rows.iter().filter_map(|row| row.3).min(),
            updated_at: rows.iter().map(|row| row.4).max(),
        })
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

/// The analytics sink's upserts on SQLite's own thread (see `direct`): the same statements as
/// `write_lifecycle`, prepared once, in one transaction for the whole batch.
fn write_lifecycle_direct(
    tx: &rusqlite::Transaction<'_>,
    all_changes: &[LifecycleChanges],
) -> rusqlite::Result<()> {
    use super::direct::bind;
    let mut logins: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for changes in all_changes {
        for issue in &changes.issues {
            for (id, login) in issue.logins() {
                let seen = logins.entry((id, login)).or_insert(issue.updated_at);
                *seen = (*seen).max(issue.updated_at);
            }
        }
        for comment in &changes.comments {
            if let Some(id) = comment.author_id {
                let seen = logins
                    .entry((id, comment.author.as_str()))
                    .or_insert(comment.created_at);
                *seen = (*seen).max(comment.created_at);
            }
        }
    }
    for changes in all_changes {
        for issue in &changes.issues {
            let labels = serde_json::to_string(&issue.labels).unwrap_or_else(|_| "[]".into());
            let assignees: Vec<&str> = issue
                .assignees
                .iter()
                .map(|user| user.login.as_str())
                .collect();
            let assignees = serde_json::to_string(&assignees).unwrap_or_else(|_| "[]".into());
            let assignee_ids: Vec<i64> =
                issue.assignees.iter().filter_map(|user| user.id).collect();
            let assignee_ids = serde_json::to_string(&assignee_ids).unwrap_or_else(|_| "[]".into());
            let removal = issue.removal.map(crate::analytics::Removal::as_str);
            let mut upsert = tx.prepare_cached(UPSERT_ISSUE)?;
            bind(
                &mut upsert,
                &[
                    &issue.repository,
                    &issue.number,
                    &issue.title,
                    &issue.author,
                    &i64::from(issue.author_is_bot),
                    &labels,
                    &assignees,
                    &issue.created_at,
                    &issue.updated_at,
                    &issue.closed_at,
                    &issue.state,
                    &issue.state_reason,
                    &i64::from(removal.is_some()),
                    &issue.author_id,
                    &assignee_ids,
                    &issue.html_url,
                    &removal,
                ],
            )?;
            let newest = upsert.raw_execute()? == 1;
            if newest {
                let mut clear = tx.prepare_cached(CLEAR_LABELS)?;
                bind(&mut clear, &[&issue.repository, &issue.number])?;
                clear.raw_execute()?;
                let mut insert = tx.prepare_cached(INSERT_LABEL)?;
                for label in &issue.labels {
                    bind(
                        &mut insert,
                        &[&issue.repository, &issue.number, &label.to_lowercase()],
                    )?;
                    insert.raw_execute()?;
                }
            }
            if let Some(removal) = removal {
                let mut mark = tx.prepare_cached(MARK_ISSUE_DELETED)?;
                bind(&mut mark, &[&issue.repository, &issue.number, &removal])?;
                mark.raw_execute()?;
            }
        }
        for comment in &changes.comments {
            let mut upsert = tx.prepare_cached(UPSERT_COMMENT)?;
            bind(
                &mut upsert,
                &[
                    &comment.repository,
                    &comment.comment_id,
                    &comment.issue_number,
                    &comment.author,
                    &i64::from(comment.author_is_bot),
                    &comment.created_at,
                    &i64::from(comment.deleted),
                    &comment.author_id,
                    &Option::<i64>::None,
                ],
            )?;
            upsert.raw_execute()?;
        }
    }
    let mut upsert = tx.prepare_cached(UPSERT_LOGIN)?;
    for ((id, login), seen_at) in &logins {
        bind(&mut upsert, &[id, login, seen_at])?;
        upsert.raw_execute()?;
    }
    Ok(())
}
