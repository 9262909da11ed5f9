//! The few fields of a webhook that herald indexes. Parsing is lenient: unknown events and
//! actions, and fields GitHub adds later, never reject a delivery; the raw body is kept as sent.

use std::borrow::Cow;

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
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Deepest nesting of arrays and objects accepted: what `serde_json` parses with its default
/// recursion limit, which every sink uses. Anything deeper could be stored but never delivered.
pub const MAX_DEPTH: usize = 127;

/// The indexed fields of one delivery, borrowed from the body where it needs no unescaping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedEvent<'a> {
    pub action: Option<Cow<'a, str>>,
    pub repository: Option<Cow<'a, str>>,
    pub issue_number: Option<i64>,
    pub actor: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    repository: Option<Repository<'a>>,
    issue: Option<Numbered>,
    pull_request: Option<Numbered>,
    number: Option<i64>,
    #[serde(borrow)]
    sender: Option<Actor<'a>>,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    full_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Numbered {
    number: Option<i64>,
}

#[derive(Deserialize)]
struct Actor<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    login: Option<Cow<'a, str>>,
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
        // Before parsing: serde_json checks depth only where it builds values, not in the
        // fields it skips, and the sinks build values of everything.
        if nesting_depth(text.as_bytes()) > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        // The envelope skips what it does not index without checking it (a number beyond f64,
        // say), so the whole document is walked once as the sinks will parse it.
        serde_json::from_str::<Parsable>(text)
            .map_err(|error| ParseError::NotJson(error.to_string()))?;
        let envelope: Envelope<'a> =
            serde_json::from_str(text).map_err(|error| ParseError::NotJson(error.to_string()))?;
        let issue_number = envelope
            .issue
            .and_then(|issue| issue.number)
            .or_else(|| envelope.pull_request.and_then(|pr| pr.number))
            .or(envelope.number);
        Ok(Self {
            action: envelope.action,
            repository: envelope.repository.and_then(|repo| repo.full_name),
            issue_number,
            actor: envelope.sender.and_then(|sender| sender.login),
        })
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
    fn names_events() {
        assert_eq!(EventName::parse("issues"), EventName::Issues);
        assert_eq!(EventName::parse("fork").as_str(), "fork");
    }
}
