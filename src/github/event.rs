//! The few fields of a webhook that herald indexes. Parsing is lenient: unknown events and
//! actions, and fields GitHub adds later, never reject a delivery; the raw body is kept as sent.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The `X-GitHub-Event` header, with the events herald treats specially named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventName {
    Ping,
    Issues,
    IssueComment,
    PullRequest,
    Other(String),
}

impl EventName {
    pub fn parse(name: &str) -> Self {
        match name {
            "ping" => Self::Ping,
            "issues" => Self::Issues,
            "issue_comment" => Self::IssueComment,
            "pull_request" => Self::PullRequest,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Ping => "ping",
            Self::Issues => "issues",
            Self::IssueComment => "issue_comment",
            Self::PullRequest => "pull_request",
            Self::Other(name) => name,
        }
    }
}

/// Why a body cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body is not a JSON object: {0}")]
    NotJson(String),
}

/// The indexed fields of one delivery: what the store keeps beside the raw body, and what
/// routes look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedEvent {
    pub action: Option<String>,
    pub repository: Option<String>,
    pub issue_number: Option<i64>,
    /// Who caused the event (`sender.login`).
    pub actor: Option<String>,
    /// Labels of the issue or pull request the event is about.
    pub labels: Vec<String>,
    /// Who wrote what the event is about: the comment's author for comments, else the issue's,
    /// pull request's or release's, else the sender.
    pub author: Option<String>,
    pub author_id: Option<i64>,
    pub author_is_bot: bool,
    /// `labeled`: the label just added.
    pub added_label: Option<String>,
    /// The issue or pull request is open.
    pub open: bool,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    action: Option<String>,
    repository: Option<Repository>,
    #[serde(borrow)]
    issue: Option<Item<'a>>,
    #[serde(borrow)]
    pull_request: Option<Item<'a>>,
    number: Option<i64>,
    #[serde(borrow)]
    sender: Option<&'a RawValue>,
    #[serde(borrow)]
    comment: Option<Commented<'a>>,
    #[serde(borrow)]
    release: Option<Released<'a>>,
    #[serde(borrow)]
    label: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
}

/// An issue or pull request; loosely typed parts are read on their own, so an odd value there
/// never rejects the delivery.
#[derive(Deserialize)]
struct Item<'a> {
    number: Option<i64>,
    #[serde(borrow)]
    state: Option<&'a RawValue>,
    #[serde(borrow)]
    user: Option<&'a RawValue>,
    #[serde(borrow)]
    labels: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Commented<'a> {
    #[serde(borrow)]
    user: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Released<'a> {
    #[serde(borrow)]
    author: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct User {
    login: Option<String>,
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Label {
    name: Option<String>,
}

/// A loosely typed part: `None` when it is not what herald expects.
fn lenient<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

impl IndexedEvent {
    /// Checks that `body` is a UTF-8 JSON object and picks out the indexed fields.
    pub fn parse(body: &[u8]) -> Result<(Self, &str), ParseError> {
        let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
        if !text.trim_start().starts_with('{') {
            return Err(ParseError::NotJson("expected an object".into()));
        }
        let envelope: Envelope<'_> =
            serde_json::from_str(text).map_err(|error| ParseError::NotJson(error.to_string()))?;
        let item = envelope.issue.as_ref().or(envelope.pull_request.as_ref());
        let issue_number = envelope
            .issue
            .as_ref()
            .and_then(|issue| issue.number)
            .or_else(|| envelope.pull_request.as_ref().and_then(|pr| pr.number))
            .or(envelope.number);
        let sender: Option<User> = lenient(envelope.sender);
        let author: Option<User> = envelope
            .comment
            .as_ref()
            .and_then(|comment| lenient(comment.user))
            .or_else(|| item.and_then(|item| lenient(item.user)))
            .or_else(|| {
                envelope
                    .release
                    .as_ref()
                    .and_then(|release| lenient(release.author))
            })
            .or_else(|| lenient(envelope.sender));
        let mut labels: Vec<String> = item
            .and_then(|item| lenient::<Vec<&RawValue>>(item.labels))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|label| lenient::<Label>(Some(label))?.name)
            .collect();
        labels.sort();
        labels.dedup();
        let (author, author_id, author_is_bot) = match author {
            Some(user) => {
                let login = user.login;
                let bot = user.kind.as_deref() == Some("Bot")
                    || login
                        .as_deref()
                        .is_some_and(|login| login.ends_with("[bot]"));
                (login, user.id, bot)
            }
            None => (None, None, false),
        };
        let open = item
            .and_then(|item| lenient::<String>(item.state))
            .is_some_and(|state| state == "open");
        let indexed = Self {
            added_label: lenient::<Label>(envelope.label).and_then(|label| label.name),
            action: envelope.action,
            repository: envelope.repository.and_then(|repo| repo.full_name),
            issue_number,
            actor: sender.and_then(|sender| sender.login),
            labels,
            author,
            author_id,
            author_is_bot,
            open,
        };
        Ok((indexed, text))
    }

    /// What routes look at, for an event named `event`.
    pub fn subject<'a>(&'a self, event: &'a str) -> crate::routes::Subject<'a> {
        crate::routes::Subject {
            event,
            action: self.action.as_deref(),
            repository: self.repository.as_deref(),
            labels: &self.labels,
            author: self.author.as_deref(),
            author_id: self.author_id,
            author_is_bot: self.author_is_bot,
            added_label: self.added_label.as_deref(),
            open: self.open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_an_issue_event() {
        let body = br#"{"action":"opened","issue":{"number":7,"title":"x"},
            "repository":{"full_name":"o/r","extra":1},"sender":{"login":"alice"},"new":true}"#;
        let (indexed, _) = IndexedEvent::parse(body).unwrap();
        assert_eq!(
            indexed,
            IndexedEvent {
                action: Some("opened".into()),
                repository: Some("o/r".into()),
                issue_number: Some(7),
                actor: Some("alice".into()),
                author: Some("alice".into()),
                ..IndexedEvent::default()
            }
        );
    }

    #[test]
    fn accepts_objects_without_the_indexed_fields() {
        let (indexed, _) = IndexedEvent::parse(br#"{"zen":"hi","hook_id":1}"#).unwrap();
        assert_eq!(indexed, IndexedEvent::default());
    }

    #[test]
    fn rejects_non_objects_and_bad_bytes() {
        for body in [
            &b"[]"[..],
            b"",
            b"null",
            b"{",
            b"\"text\"",
            b"{\"a\":1} trailing",
        ] {
            assert!(
                matches!(IndexedEvent::parse(body), Err(ParseError::NotJson(_))),
                "{body:?}"
            );
        }
        assert!(matches!(
            IndexedEvent::parse(b"{\"a\":\"\xff\"}"),
            Err(ParseError::NotUtf8)
        ));
    }

    #[test]
    fn tolerates_unexpected_types_in_fields_it_does_not_need() {
        let (indexed, _) =
            IndexedEvent::parse(br#"{"action":"x","issue":{"number":3,"labels":"odd"}}"#).unwrap();
        assert_eq!(indexed.issue_number, Some(3));
    }

    #[test]
    fn indexes_what_routes_need() {
        let body = br#"{"action":"labeled","label":{"name":"bug"},
            "issue":{"number":3,"state":"open","user":{"login":"renovate[bot]","id":9,"type":"Bot"},
                     "labels":[{"name":"ui"},{"name":"bug"},"odd",{"name":7}]},
            "comment":null,"sender":{"login":"carol","id":5,"type":"User"}}"#;
        let (indexed, _) = IndexedEvent::parse(body).unwrap();
        assert_eq!(indexed.labels, vec!["bug".to_owned(), "ui".to_owned()]);
        assert_eq!(
            (
                indexed.author.as_deref(),
                indexed.author_id,
                indexed.author_is_bot
            ),
            (Some("renovate[bot]"), Some(9), true)
        );
        assert_eq!(indexed.added_label.as_deref(), Some("bug"));
        assert_eq!(indexed.actor.as_deref(), Some("carol"));
        assert!(indexed.open);
        // A comment's author is the commenter, whoever opened the issue.
        let comment = br#"{"action":"created","issue":{"number":1,"user":{"login":"a"}},
            "comment":{"user":{"login":"b","id":2,"type":"User"}}}"#;
        let (indexed, _) = IndexedEvent::parse(comment).unwrap();
        assert_eq!(
            (indexed.author.as_deref(), indexed.open),
            (Some("b"), false)
        );
    }

    #[test]
    fn names_events() {
        assert_eq!(EventName::parse("issues"), EventName::Issues);
        assert_eq!(EventName::parse("fork").as_str(), "fork");
    }
}
