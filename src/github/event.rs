//! The few fields of a webhook that herald indexes. Parsing is lenient: unknown events and
//! actions, and fields GitHub adds later, never reject a delivery; the raw body is kept as sent.

use serde::Deserialize;

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

/// The indexed fields of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedEvent {
    pub action: Option<String>,
    pub repository: Option<String>,
    pub issue_number: Option<i64>,
    pub actor: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    action: Option<String>,
    repository: Option<Repository>,
    issue: Option<Numbered>,
    pull_request: Option<Numbered>,
    number: Option<i64>,
    sender: Option<Actor>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct Numbered {
    number: Option<i64>,
}

#[derive(Deserialize)]
struct Actor {
    login: Option<String>,
}

impl IndexedEvent {
    /// Checks that `body` is a UTF-8 JSON object and picks out the indexed fields.
    pub fn parse(body: &[u8]) -> Result<(Self, &str), ParseError> {
        let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
        if !text.trim_start().starts_with('{') {
            return Err(ParseError::NotJson("expected an object".into()));
        }
        let envelope: Envelope =
            serde_json::from_str(text).map_err(|error| ParseError::NotJson(error.to_string()))?;
        let issue_number = envelope
            .issue
            .and_then(|issue| issue.number)
            .or_else(|| envelope.pull_request.and_then(|pr| pr.number))
            .or(envelope.number);
        let indexed = Self {
            action: envelope.action,
            repository: envelope.repository.and_then(|repo| repo.full_name),
            issue_number,
            actor: envelope.sender.and_then(|sender| sender.login),
        };
        Ok((indexed, text))
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
    fn names_events() {
        assert_eq!(EventName::parse("issues"), EventName::Issues);
        assert_eq!(EventName::parse("fork").as_str(), "fork");
    }
}
