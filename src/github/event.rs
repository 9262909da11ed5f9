//! The few fields of a webhook that herald indexes. Parsing is lenient: unknown events and
//! actions, and fields GitHub adds later, never reject a delivery; the raw body is kept as sent.

use std::borrow::Cow;

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
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Deepest nesting of arrays and objects accepted: what `serde_json` parses with its default
/// recursion limit, which every sink uses. Anything deeper could be stored but never delivered.
pub const MAX_DEPTH: usize = 127;

/// The indexed fields of one delivery, borrowed from the body where they need no unescaping:
/// what the store keeps beside the raw body, and what routes look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedEvent<'a> {
    pub action: Option<Cow<'a, str>>,
    pub repository: Option<Cow<'a, str>>,
    pub issue_number: Option<i64>,
    /// Who caused the event (`sender.login`).
    pub actor: Option<Cow<'a, str>>,
    /// Labels of the issue or pull request the event is about.
    pub labels: Vec<String>,
    /// Who wrote what the event is about: the comment's author for comments, else the issue's,
    /// pull request's or release's, else the sender.
    pub author: Option<Cow<'a, str>>,
    pub author_id: Option<i64>,
    pub author_is_bot: bool,
    /// `labeled`: the label just added.
    pub added_label: Option<String>,
    /// The issue or pull request is open.
    pub open: bool,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    repository: Option<Repository<'a>>,
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

/// An issue or pull request; its loosely typed parts are read on their own, so an odd value there
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
struct User<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    login: Option<Cow<'a, str>>,
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Label {
    name: Option<String>,
}

/// A loosely typed part: `None` when it is not what herald expects.
fn lenient<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    full_name: Option<Cow<'a, str>>,
}

/// An optional string borrowed from the body when it has no escapes (serde borrows a `Cow`
/// only when it is not wrapped in an `Option`).
fn optional_text<'de, D>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'de>>::deserialize(deserializer)?.map(|text| text.0))
}

impl<'a> IndexedEvent<'a> {
    /// Checks that `body` is a UTF-8 JSON object that every sink can parse (no deeper than
    /// [`MAX_DEPTH`]) and picks out the indexed fields, borrowing from `body`.
    pub fn parse(body: &'a [u8]) -> Result<(Self, &'a str), ParseError> {
        let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
        Ok((Self::parse_str(text)?, text))
    }

    /// [`IndexedEvent::parse`] for a body already known to be UTF-8.
    pub fn parse_str(text: &'a str) -> Result<Self, ParseError> {
        if !text.trim_start().starts_with('{') {
            return Err(ParseError::NotJson("expected an object".into()));
        }
        // The envelope skips what it does not index without checking it (a number beyond f64,
        // nesting past serde_json's recursion limit), so the whole document is walked once as
        // the sinks will parse it: every value visited, every level counted against the limit.
        // Only a refused document is measured for depth, to say why (the byte scan was a tenth
        // of intake's CPU when it ran on every body).
        serde_json::from_str::<Parsable>(text).map_err(|error| {
            if nesting_depth(text.as_bytes()) > MAX_DEPTH {
                ParseError::TooDeep
            } else {
                ParseError::NotJson(error.to_string())
            }
        })?;
        let envelope: Envelope<'a> =
            serde_json::from_str(text).map_err(|error| ParseError::NotJson(error.to_string()))?;
        let item = envelope.issue.as_ref().or(envelope.pull_request.as_ref());
        let issue_number = envelope
            .issue
            .as_ref()
            .and_then(|issue| issue.number)
            .or_else(|| envelope.pull_request.as_ref().and_then(|pr| pr.number))
            .or(envelope.number);
        let sender: Option<User<'a>> = lenient(envelope.sender);
        let author: Option<User<'a>> = envelope
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
                let bot = user.kind.as_deref() == Some("Bot")
                    || user
                        .login
                        .as_deref()
                        .is_some_and(|login| login.ends_with("[bot]"));
                (user.login, user.id, bot)
            }
            None => (None, None, false),
        };
        let open = item
            .and_then(|item| lenient::<Cow<'a, str>>(item.state))
            .is_some_and(|state| state == "open");
        Ok(Self {
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
        })
    }

    /// What routes look at, for an event named `event`.
    pub fn subject<'s>(&'s self, event: &'s str) -> crate::routes::Subject<'s> {
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

/// A JSON document walked as `serde_json::Value` parsing walks it (every number converted, every
/// level counted against the recursion limit), without building anything.
struct Parsable;

impl<'de> Deserialize<'de> for Parsable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParsableVisitor)
    }
}

struct ParsableVisitor;

impl<'de> serde::de::Visitor<'de> for ParsableVisitor {
    type Value = Parsable;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Parsable, E> {
        Ok(Parsable)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Parsable, E> {
        Ok(Parsable)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Parsable, E> {
        Ok(Parsable)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Parsable, E> {
        Ok(Parsable)
    }

    fn visit_str<E>(self, _: &str) -> Result<Parsable, E> {
        Ok(Parsable)
    }

    fn visit_unit<E>(self) -> Result<Parsable, E> {
        Ok(Parsable)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Parsable, A::Error> {
        while seq.next_element::<Parsable>()?.is_some() {}
        Ok(Parsable)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Parsable, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, Parsable>()?
            .is_some()
        {}
        Ok(Parsable)
    }
}

/// The deepest nesting of arrays and objects in a JSON text, in one pass without recursion (so
/// 100,000 opening brackets cost no stack). Brackets inside strings do not count; the text need
/// not be valid JSON.
pub fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0_usize, 0_usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
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
        assert!(
            matches!(indexed.repository, Some(Cow::Borrowed(_))),
            "no copy of plain strings"
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
    fn unescapes_indexed_strings() {
        let (indexed, _) =
            IndexedEvent::parse(br#"{"repository":{"full_name":"o/\u0000r\n"}}"#).unwrap();
        assert_eq!(indexed.repository.as_deref(), Some("o/\0r\n"));
    }

    fn nested(depth: usize) -> String {
        format!(
            "{{\"deep\":{}{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    #[test]
    fn accepts_exactly_what_serde_json_can_parse() {
        let deepest = nested(MAX_DEPTH);
        assert_eq!(nesting_depth(deepest.as_bytes()), MAX_DEPTH);
        assert!(IndexedEvent::parse(deepest.as_bytes()).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&deepest).is_ok());
        let deeper = nested(MAX_DEPTH + 1);
        assert!(serde_json::from_str::<serde_json::Value>(&deeper).is_err());
        assert!(matches!(
            IndexedEvent::parse(deeper.as_bytes()),
            Err(ParseError::TooDeep)
        ));
    }

    #[test]
    fn refuses_numbers_no_sink_could_parse() {
        // Found by `cargo fuzz run indexing`: skipped fields were not checked.
        for body in [
            &br#"{"a":1e400}"#[..],
            b"{\"RRRR..\":\n-277777777777777777777.52E66666666665644444444777777777\n}",
            br#"{"issue":{"number":1,"n":[-1e999]}}"#,
        ] {
            assert!(serde_json::from_slice::<serde_json::Value>(body).is_err());
            assert!(
                matches!(IndexedEvent::parse(body), Err(ParseError::NotJson(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(IndexedEvent::parse(br#"{"a":1e300,"b":-18446744073709551616}"#).is_ok());
    }

    #[test]
    fn depth_ignores_brackets_in_strings_and_needs_no_stack() {
        assert_eq!(nesting_depth(br#"{"a":"[[[{{{\"]]]","b":[1,{"c":[]}]}"#), 4);
        assert_eq!(nesting_depth(b"{}"), 1);
        assert_eq!(nesting_depth(b"\"{\""), 0);
        let hostile = "[".repeat(100_000);
        assert_eq!(nesting_depth(hostile.as_bytes()), 100_000);
        let body = format!("{{\"a\":{hostile}");
        assert!(matches!(
            IndexedEvent::parse(body.as_bytes()),
            Err(ParseError::TooDeep)
        ));
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
