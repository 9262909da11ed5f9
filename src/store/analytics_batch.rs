//! The analytics sink's upserts on PostgreSQL as a handful of multi-row statements per batch,
//! instead of several statements per event: one round trip each for the issues, their labels,
//! the comments and the logins. The result is the one applying the snapshots one by one gives:
//! the newest snapshot of an issue wins, a deletion sticks, the first known author id stays.

use std::collections::BTreeMap;

use sqlx::{Postgres, QueryBuilder, Transaction};

use super::StoreError;
use super::health::storable_text;
use crate::analytics::{CommentSnapshot, IssueSnapshot, LifecycleChanges, Removal};

/// Rows per statement, well under PostgreSQL's 65,535 bound parameters.
const ROWS: usize = 1_000;

/// One issue's snapshots of the batch folded into what applying them in order leaves.
struct Folded<'a> {
    newest: &'a IssueSnapshot,
    author_id: Option<i64>,
    html_url: Option<&'a str>,
    removal: Option<Removal>,
}

/// Applies `all_changes` in `tx`.
pub async fn write(
    tx: &mut Transaction<'_, Postgres>,
    all_changes: &[&LifecycleChanges],
) -> Result<(), StoreError> {
    let mut issues: BTreeMap<(&str, i64), Folded<'_>> = BTreeMap::new();
    let mut comments: BTreeMap<(&str, i64), CommentRow<'_>> = BTreeMap::new();
    let mut logins: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for changes in all_changes {
        for issue in &changes.issues {
            for (id, login) in issue.logins() {
                let seen = logins.entry((id, login)).or_insert(issue.updated_at);
                *seen = (*seen).max(issue.updated_at);
            }
            let key = (issue.repository.as_str(), issue.number);
            match issues.get_mut(&key) {
                None => {
                    issues.insert(
                        key,
                        Folded {
                            newest: issue,
                            author_id: issue.author_id,
                            html_url: issue.html_url.as_deref(),
                            removal: issue.removal,
                        },
                    );
                }
                Some(folded) => {
                    if issue.updated_at >= folded.newest.updated_at {
                        folded.newest = issue;
                        folded.author_id = issue.author_id.or(folded.author_id);
                        folded.html_url = issue.html_url.as_deref().or(folded.html_url);
                    }
                    folded.removal = folded.removal.or(issue.removal);
                }
            }
        }
        for comment in &changes.comments {
            if let Some(id) = comment.author_id {
                let seen = logins
                    .entry((id, comment.author.as_str()))
                    .or_insert(comment.created_at);
                *seen = (*seen).max(comment.created_at);
            }
            let key = (comment.repository.as_str(), comment.comment_id);
            let entry = comments
                .entry(key)
                .or_insert((comment, false, comment.author_id));
            entry.1 |= comment.deleted;
            entry.2 = entry.2.or(comment.author_id);
        }
    }
    let folded: Vec<&Folded<'_>> = issues.values().collect();
    for chunk in folded.chunks(ROWS) {
        upsert_issues(tx, chunk).await?;
    }
    let removed: Vec<(&str, i64, &str)> = issues
        .iter()
        .filter_map(|((repository, number), folded)| {
            folded
                .removal
                .map(|removal| (*repository, *number, removal.as_str()))
        })
        .collect();
    for (repository, number, reason) in removed {
        sqlx::query(
            "UPDATE issues SET deleted = 1, deleted_reason = COALESCE(deleted_reason, $3)
             WHERE repository = $1 AND number = $2",
        )
        .bind(repository)
        .bind(number)
        .bind(reason)
        .execute(&mut **tx)
        .await?;
    }
    let all_comments: Vec<_> = comments.values().copied().collect();
    upsert_comments(tx, &all_comments).await?;
    let all_logins: Vec<_> = logins.iter().collect();
    upsert_logins(tx, &all_logins).await?;
    Ok(())
}

type CommentRow<'a> = (&'a CommentSnapshot, bool, Option<i64>);

/// Inserts the comments; a deletion sticks and the first known author id stays.
async fn upsert_comments(
    tx: &mut Transaction<'_, Postgres>,
    all_comments: &[CommentRow<'_>],
) -> Result<(), StoreError> {
    for chunk in all_comments.chunks(ROWS) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO issue_comments (repository, comment_id, issue_number, author,
             author_is_bot, created_at, deleted, author_id) ",
        );
        insert.push_values(chunk, |mut row, (comment, deleted, author_id)| {
            row.push_bind(&comment.repository)
                .push_bind(comment.comment_id)
                .push_bind(comment.issue_number)
                .push_bind(storable_text(&comment.author).into_owned())
                .push_bind(i64::from(comment.author_is_bot))
                .push_bind(comment.created_at)
                .push_bind(i64::from(*deleted))
                .push_bind(*author_id);
        });
        insert.push(
            " ON CONFLICT (repository, comment_id) DO UPDATE SET
                deleted = CASE WHEN excluded.deleted = 1 THEN 1 ELSE issue_comments.deleted END,
                author_id = COALESCE(issue_comments.author_id, excluded.author_id)",
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Every login an id was seen with; the newest time wins.
async fn upsert_logins(
    tx: &mut Transaction<'_, Postgres>,
    all_logins: &[(&(i64, &str), &i64)],
) -> Result<(), StoreError> {
    for chunk in all_logins.chunks(ROWS) {
        let mut insert =
            QueryBuilder::<Postgres>::new("INSERT INTO github_logins (user_id, login, seen_at) ");
        insert.push_values(chunk, |mut row, ((id, login), seen_at)| {
            row.push_bind(*id)
                .push_bind(storable_text(login).into_owned())
                .push_bind(**seen_at);
        });
        insert.push(
            " ON CONFLICT (user_id, login) DO UPDATE SET seen_at = excluded.seen_at
              WHERE excluded.seen_at > github_logins.seen_at",
        );
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Upserts the issues (the newest snapshot wins) and replaces the labels of those that changed.
async fn upsert_issues(
    tx: &mut Transaction<'_, Postgres>,
    chunk: &[&Folded<'_>],
) -> Result<(), StoreError> {
    let mut insert = QueryBuilder::<Postgres>::new(
        "INSERT INTO issues (repository, number, title, author, author_is_bot, labels, assignees,
         created_at, updated_at, closed_at, state, state_reason, deleted, author_id, assignee_ids,
         html_url, deleted_reason) ",
    );
    insert.push_values(chunk, |mut row, folded| {
        let issue = folded.newest;
        let assignees: Vec<&str> = issue.assignees.iter().map(|u| u.login.as_str()).collect();
        let assignee_ids: Vec<i64> = issue.assignees.iter().filter_map(|u| u.id).collect();
        row.push_bind(&issue.repository)
            .push_bind(issue.number)
            .push_bind(storable_text(&issue.title).into_owned())
            .push_bind(storable_text(&issue.author).into_owned())
            .push_bind(i64::from(issue.author_is_bot))
            .push_bind(serde_json::to_string(&issue.labels).unwrap_or_else(|_| "[]".into()))
            .push_bind(serde_json::to_string(&assignees).unwrap_or_else(|_| "[]".into()))
            .push_bind(issue.created_at)
            .push_bind(issue.updated_at)
            .push_bind(issue.closed_at)
            .push_bind(&issue.state)
            .push_bind(&issue.state_reason)
            .push_bind(i64::from(folded.removal.is_some()))
            .push_bind(folded.author_id)
            .push_bind(serde_json::to_string(&assignee_ids).unwrap_or_else(|_| "[]".into()))
            .push_bind(folded.html_url)
            .push_bind(folded.removal.map(Removal::as_str));
    });
    insert.push(
        " ON CONFLICT (repository, number) DO UPDATE SET
            title = excluded.title, author = excluded.author,
            author_is_bot = excluded.author_is_bot, labels = excluded.labels,
            assignees = excluded.assignees, updated_at = excluded.updated_at,
            closed_at = excluded.closed_at, state = excluded.state,
            state_reason = excluded.state_reason,
            author_id = COALESCE(excluded.author_id, issues.author_id),
            assignee_ids = excluded.assignee_ids,
            html_url = COALESCE(excluded.html_url, issues.html_url)
        WHERE excluded.updated_at >= issues.updated_at
        RETURNING repository, number",
    );
    let changed: Vec<(String, i64)> = insert.build_query_as().fetch_all(&mut **tx).await?;
    if changed.is_empty() {
        return Ok(());
    }
    let mut clear =
        QueryBuilder::<Postgres>::new("DELETE FROM issue_labels WHERE (repository, number) IN ");
    clear.push_tuples(&changed, |mut row, (repository, number)| {
        row.push_bind(repository).push_bind(*number);
    });
    clear.build().execute(&mut **tx).await?;
    let labels: Vec<(&str, i64, String)> = chunk
        .iter()
        .filter(|folded| {
            changed.iter().any(|(repository, number)| {
                *repository == folded.newest.repository && *number == folded.newest.number
            })
        })
        .flat_map(|folded| {
            let issue = folded.newest;
            let mut names: Vec<String> = issue
                .labels
                .iter()
                .map(|label| storable_text(&label.to_lowercase()).into_owned())
                .collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .map(move |name| (issue.repository.as_str(), issue.number, name))
        })
        .collect();
    for rows in labels.chunks(ROWS) {
        let mut insert =
            QueryBuilder::<Postgres>::new("INSERT INTO issue_labels (repository, number, label) ");
        insert.push_values(rows, |mut row, (repository, number, label)| {
            row.push_bind(*repository)
                .push_bind(*number)
                .push_bind(label);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}
