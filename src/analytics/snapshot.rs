//! Issue and comment snapshots taken from GitHub's JSON: webhook payloads of `issues` and
//! `issue_comment` events, and items of the REST API (same object shapes). Lenient like the rest
//! of herald: fields GitHub adds never matter; a missing field herald needs is an error.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::time_util::to_ms;

/// An issue as one payload saw it; the newest `updated_at` wins in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueSnapshot {
    /// `owner/name` as GitHub spells it.
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub author: String,
    /// GitHub's numeric user id: what identities are compared by (logins change on a rename).
    pub author_id: Option<i64>,
    pub author_is_bot: bool,
    pub labels: Vec<String>,
    /// Sorted by login.
    pub assignees: Vec<UserRef>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub state: String,
    pub state_reason: Option<String>,
    /// The issue's page on GitHub.
    pub html_url: Option<String>,
    /// The issue was deleted or transferred away: it leaves the metrics for good.
    pub removal: Option<Removal>,
}

/// A GitHub account as a payload names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserRef {
    pub login: String,
    pub id: Option<i64>,
}

/// Why an issue left the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    /// Moved to another repository (where it lives on under a new number).
    Transferred,
}

impl Removal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Transferred => "transferred",
        }
    }
}

impl IssueSnapshot {
    /// The (id, login) pairs this snapshot shows, with the time it shows them at.
    pub fn logins(&self) -> impl Iterator<Item = (i64, &str)> {
        self.author_id
            .map(|id| (id, self.author.as_str()))
            .into_iter()
            .chain(
                self.assignees
                    .iter()
                    .filter_map(|user| user.id.map(|id| (id, user.login.as_str()))),
            )
    }
}

/// A comment on an issue; keyed by (repository, comment id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentSnapshot {
    pub repository: String,
    pub comment_id: i64,
    pub issue_number: i64,
    pub author: String,
    /// GitHub's numeric user id.
    pub author_id: Option<i64>,
    pub author_is_bot: bool,
    pub created_at: i64,
    /// The comment was deleted: it no longer counts, whatever arrives later.
    pub deleted: bool,
}

/// What one event or one page of the REST API changes in the lifecycle tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleChanges {
    pub issues: Vec<IssueSnapshot>,
    pub comments: Vec<CommentSnapshot>,
}

impl LifecycleChanges {
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty() && self.comments.is_empty()
    }
}

/// Why a payload cannot be turned into a snapshot; retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("payload is not the expected JSON: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("payload has no {0}")]
    Missing(&'static str),
    #[error("invalid timestamp {0:?}")]
    Time(String),
}

#[derive(Deserialize)]
struct RawUser {
    login: Option<String>,
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RawIssue {
    number: Option<i64>,
    title: Option<String>,
    user: Option<RawUser>,
    labels: Option<Vec<Value>>,
    assignees: Option<Vec<Value>>,
    created_at: Option<String>,
    updated_at: Option<String>,
    closed_at: Option<String>,
    state: Option<String>,
    state_reason: Option<String>,
    pull_request: Option<IgnoredAny>,
    repository_url: Option<String>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct RawComment {
    id: Option<i64>,
    user: Option<RawUser>,
    created_at: Option<String>,
    issue_url: Option<String>,
}

#[derive(Deserialize)]
struct RawRepository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    action: Option<String>,
    issue: Option<RawIssue>,
    comment: Option<RawComment>,
    repository: Option<RawRepository>,
}

/// GitHub's two marks of a bot: the account type, or the `[bot]` suffix of app logins.
pub fn is_bot(login: &str, account_type: Option<&str>) -> bool {
    account_type == Some("Bot") || login.ends_with("[bot]")
}

/// The lifecycle changes an `issues` or `issue_comment` delivery carries. Pull requests (whose
/// issue object has a `pull_request` key) and other events change nothing.
pub fn from_webhook(event: &str, payload: &str) -> Result<LifecycleChanges, SnapshotError> {
    if event != "issues" && event != "issue_comment" {
        return Ok(LifecycleChanges::default());
    }
    let envelope: Envelope = serde_json::from_str(payload)?;
    let repository = envelope
        .repository
        .and_then(|repo| repo.full_name)
        .ok_or(SnapshotError::Missing("repository.full_name"))?;
    let raw_issue = envelope.issue.ok_or(SnapshotError::Missing("issue"))?;
    if raw_issue.pull_request.is_some() {
        return Ok(LifecycleChanges::default());
    }
    let action = envelope.action.unwrap_or_default();
    let mut issue = issue_snapshot(raw_issue, repository.clone())?;
    let mut changes = LifecycleChanges::default();
    if event == "issues" {
        // A transferred issue lives on in another repository, where it arrives as `opened`.
        issue.removal = match action.as_str() {
            "deleted" => Some(Removal::Deleted),
            "transferred" => Some(Removal::Transferred),
            _ => None,
        };
    } else {
        let raw_comment = envelope.comment.ok_or(SnapshotError::Missing("comment"))?;
        let mut comment = comment_snapshot(raw_comment, repository, issue.number)?;
        comment.deleted = action == "deleted";
        changes.comments.push(comment);
    }
    changes.issues.push(issue);
    Ok(changes)
}

/// An item of `GET /repos/{owner}/{repo}/issues`; `None` for pull requests. The repository comes
/// from the item's own `repository_url` (GitHub's spelling), else `fallback`.
pub fn issue_from_rest(
    item: Value,
    fallback: &str,
) -> Result<Option<IssueSnapshot>, SnapshotError> {
    let raw: RawIssue = serde_json::from_value(item)?;
    if raw.pull_request.is_some() {
        return Ok(None);
    }
    let repository = raw
        .repository_url
        .as_deref()
        .and_then(|url| repository_in_url(url, false))
        .unwrap_or_else(|| fallback.to_owned());
    issue_snapshot(raw, repository).map(Some)
}

/// An item of `GET /repos/{owner}/{repo}/issues/comments`: the repository and issue number come
/// from its `issue_url` (`…/repos/OWNER/NAME/issues/NUMBER`).
pub fn comment_from_rest(item: Value, fallback: &str) -> Result<CommentSnapshot, SnapshotError> {
    let raw: RawComment = serde_json::from_value(item)?;
    let url = raw
        .issue_url
        .clone()
        .ok_or(SnapshotError::Missing("comment.issue_url"))?;
    let number = url
        .rsplit('/')
        .next()
        .and_then(|last| last.parse::<i64>().ok())
        .ok_or(SnapshotError::Missing("issue number in comment.issue_url"))?;
    let repository = repository_in_url(&url, true).unwrap_or_else(|| fallback.to_owned());
    comment_snapshot(raw, repository, number)
}

/// `OWNER/NAME` from `…/repos/OWNER/NAME` (or `…/repos/OWNER/NAME/issues/N` with `issue`).
fn repository_in_url(url: &str, issue: bool) -> Option<String> {
    let mut parts: Vec<&str> = url.trim_end_matches('/').rsplit('/').collect();
    if issue {
        if parts.len() < 2 || parts[1] != "issues" {
            return None;
        }
        parts.drain(..2);
    }
    match parts.as_slice() {
        [name, owner, repos, ..] if *repos == "repos" && !name.is_empty() && !owner.is_empty() => {
            Some(format!("{owner}/{name}"))
        }
        _ => None,
    }
}

fn issue_snapshot(raw: RawIssue, repository: String) -> Result<IssueSnapshot, SnapshotError> {
    let number = raw.number.ok_or(SnapshotError::Missing("issue.number"))?;
    let created_at =
        timestamp(raw.created_at.as_deref())?.ok_or(SnapshotError::Missing("issue.created_at"))?;
    let updated_at = timestamp(raw.updated_at.as_deref())?.unwrap_or(created_at);
    let (author, author_id, author_is_bot) = user(raw.user);
    Ok(IssueSnapshot {
        repository,
        number,
        title: raw.title.unwrap_or_default(),
        author,
        author_id,
        author_is_bot,
        labels: names(raw.labels, "name"),
        assignees: users(raw.assignees),
        created_at,
        updated_at,
        closed_at: timestamp(raw.closed_at.as_deref())?,
        state: raw.state.unwrap_or_else(|| "open".to_owned()),
        state_reason: raw.state_reason,
        html_url: raw.html_url,
        removal: None,
    })
}

fn comment_snapshot(
    raw: RawComment,
    repository: String,
    issue_number: i64,
) -> Result<CommentSnapshot, SnapshotError> {
    let comment_id = raw.id.ok_or(SnapshotError::Missing("comment.id"))?;
    let created_at = timestamp(raw.created_at.as_deref())?
        .ok_or(SnapshotError::Missing("comment.created_at"))?;
    let (author, author_id, author_is_bot) = user(raw.user);
    Ok(CommentSnapshot {
        repository,
        comment_id,
        issue_number,
        author,
        author_id,
        author_is_bot,
        created_at,
        deleted: false,
    })
}

/// The login, id and bot flag; a deleted account shows as GitHub's `ghost`.
fn user(raw: Option<RawUser>) -> (String, Option<i64>, bool) {
    let raw = raw.unwrap_or(RawUser {
        login: None,
        id: None,
        kind: None,
    });
    let login = raw.login.unwrap_or_else(|| "ghost".to_owned());
    let bot = is_bot(&login, raw.kind.as_deref());
    (login, raw.id, bot)
}

/// The accounts of a list of user objects (assignees), sorted by login; plain strings are
/// taken as logins without an id.
fn users(list: Option<Vec<Value>>) -> Vec<UserRef> {
    let mut users: Vec<UserRef> = list
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| match item {
            Value::String(login) => Some(UserRef { login, id: None }),
            Value::Object(object) => match object.get("login") {
                Some(Value::String(login)) => Some(UserRef {
                    login: login.clone(),
                    id: object.get("id").and_then(Value::as_i64),
                }),
                _ => None,
            },
            _ => None,
        })
        .collect();
    users.sort();
    users.dedup_by(|a, b| a.login == b.login);
    users
}

/// `key` of each object in the list (label names, assignee logins); plain strings are taken as is.
fn names(list: Option<Vec<Value>>, key: &str) -> Vec<String> {
    let mut names: Vec<String> = list
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| match item {
            Value::String(name) => Some(name),
            Value::Object(mut object) => match object.remove(key) {
                Some(Value::String(name)) => Some(name),
                _ => None,
            },
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn timestamp(text: Option<&str>) -> Result<Option<i64>, SnapshotError> {
    match text {
        None => Ok(None),
        Some(text) => OffsetDateTime::parse(text, &Rfc3339)
            .map(|at| Some(to_ms(at)))
            .map_err(|_| SnapshotError::Time(text.chars().take(40).collect())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn opened() -> Value {
        json!({
            "action": "opened",
            "issue": {
                "number": 7, "title": "Crash", "state": "open", "state_reason": null,
                "user": {"login": "alice", "id": 101, "type": "User"},
                "labels": [{"name": "bug"}, {"name": "area/db"}],
                "assignees": [{"login": "bob", "id": 102}, {"login": "ann"}],
                "html_url": "https://github.com/o/r/issues/7",
                "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z",
                "closed_at": null
            },
            "repository": {"full_name": "o/r"}
        })
    }

    #[test]
    fn takes_an_issue_snapshot_from_a_webhook() {
        let changes = from_webhook("issues", &opened().to_string()).unwrap();
        assert_eq!(
            changes.issues,
            vec![IssueSnapshot {
                repository: "o/r".into(),
                number: 7,
                title: "Crash".into(),
                author: "alice".into(),
                author_id: Some(101),
                author_is_bot: false,
                labels: vec!["area/db".into(), "bug".into()],
                assignees: vec![
                    UserRef {
                        login: "ann".into(),
                        id: None
                    },
                    UserRef {
                        login: "bob".into(),
                        id: Some(102)
                    }
                ],
                created_at: 1_767_323_045_000,
                updated_at: 1_767_323_045_000,
                closed_at: None,
                state: "open".into(),
                state_reason: None,
                html_url: Some("https://github.com/o/r/issues/7".into()),
                removal: None,
            }]
        );
        assert!(changes.comments.is_empty());
        let logins: Vec<(i64, &str)> = changes.issues[0].logins().collect();
        assert_eq!(logins, [(101, "alice"), (102, "bob")]);
    }

    #[test]
    fn skips_pull_requests_and_other_events() {
        let mut pr = opened();
        pr["issue"]["pull_request"] = json!({"url": "x"});
        assert!(from_webhook("issues", &pr.to_string()).unwrap().is_empty());
        assert!(
            from_webhook("issue_comment", &pr.to_string())
                .unwrap()
                .is_empty()
        );
        assert!(from_webhook("push", "not even json").unwrap().is_empty());
    }

    #[test]
    fn marks_deleted_issues_and_comments() {
        let mut deleted = opened();
        deleted["action"] = json!("deleted");
        assert_eq!(
            from_webhook("issues", &deleted.to_string()).unwrap().issues[0].removal,
            Some(Removal::Deleted)
        );
        deleted["action"] = json!("transferred");
        assert_eq!(
            from_webhook("issues", &deleted.to_string()).unwrap().issues[0].removal,
            Some(Removal::Transferred)
        );
        let mut comment = opened();
        comment["action"] = json!("deleted");
        comment["comment"] = json!({"id": 9, "user": {"login": "renovate[bot]", "id": 77, "type": "User"},
            "created_at": "2026-01-02T04:04:05Z"});
        let changes = from_webhook("issue_comment", &comment.to_string()).unwrap();
        assert_eq!(
            changes.comments,
            vec![CommentSnapshot {
                repository: "o/r".into(),
                comment_id: 9,
                issue_number: 7,
                author: "renovate[bot]".into(),
                author_id: Some(77),
                author_is_bot: true,
                created_at: 1_767_326_645_000,
                deleted: true,
            }]
        );
        // The issue object inside a comment event is a snapshot too, and not deleted.
        assert_eq!(changes.issues[0].removal, None);
    }

    #[test]
    fn rejects_payloads_without_what_it_needs() {
        for payload in [
            json!({"action": "opened", "repository": {"full_name": "o/r"}}),
            json!({"action": "opened", "issue": {"number": 1, "created_at": "2026-01-01T00:00:00Z"}}),
            json!({"action": "opened", "repository": {"full_name": "o/r"},
                   "issue": {"number": 1, "created_at": "yesterday"}}),
            json!({"action": "opened", "repository": {"full_name": "o/r"}, "issue": {"number": 1}}),
        ] {
            assert!(
                from_webhook("issues", &payload.to_string()).is_err(),
                "{payload}"
            );
        }
        assert!(from_webhook("issues", "[]").is_err());
        assert!(from_webhook("issue_comment", &opened().to_string()).is_err());
    }

    #[test]
    fn reads_rest_items() {
        let item = json!({
            "number": 3, "title": "t", "state": "closed", "state_reason": "not_planned",
            "user": {"login": "dependabot", "type": "Bot"}, "labels": ["plain"],
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-03T00:00:00Z",
            "closed_at": "2026-01-02T00:00:00Z",
            "repository_url": "https://api.github.com/repos/Owner/Repo"
        });
        let issue = issue_from_rest(item.clone(), "owner/repo")
            .unwrap()
            .unwrap();
        assert_eq!(issue.repository, "Owner/Repo");
        assert!(issue.author_is_bot);
        assert_eq!(issue.labels, vec!["plain".to_owned()]);
        assert_eq!(issue.closed_at, Some(1_767_312_000_000));
        let mut pr = item;
        pr["pull_request"] = json!({});
        assert_eq!(issue_from_rest(pr, "o/r").unwrap(), None);

        let comment = json!({"id": 11, "user": {"login": "carol", "type": "User"},
            "created_at": "2026-01-01T00:00:01Z",
            "issue_url": "https://ghe.example/api/v3/repos/Owner/Repo/issues/42"});
        let comment = comment_from_rest(comment, "x/y").unwrap();
        assert_eq!(
            (comment.repository.as_str(), comment.issue_number),
            ("Owner/Repo", 42)
        );
        assert!(
            comment_from_rest(
                json!({"id": 1, "created_at": "2026-01-01T00:00:00Z"}),
                "o/r"
            )
            .is_err()
        );
    }

    #[test]
    fn recognises_bots() {
        assert!(is_bot("github-actions[bot]", Some("Bot")));
        assert!(is_bot("my-app[bot]", Some("User")));
        assert!(is_bot("ci", Some("Bot")));
        assert!(!is_bot("botanist", Some("User")));
        assert!(!is_bot("alice", None));
    }
}
