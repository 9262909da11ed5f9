//! The fields of a webhook payload that messages show, parsed with borrowed types: strings point
//! into the stored payload (copied only when they hold JSON escapes) and everything else is
//! skipped without being built, so rendering a 24 MiB payload costs about its largest text field,
//! not a tree of the whole document.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::time_util::to_ms;

/// A string of the payload: borrowed from it unless it holds JSON escapes. (`Cow<str>` inside an
/// `Option` would always be copied by serde.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The parts of a payload messages use. Every field is optional: GitHub adds and drops fields,
/// and a message is still sent with what is there.
#[derive(Debug, Default, Deserialize)]
pub struct Payload<'a> {
    #[serde(borrow)]
    pub action: Option<Text<'a>>,
    #[serde(borrow)]
    pub repository: Option<Repository<'a>>,
    #[serde(borrow)]
    pub sender: Option<User<'a>>,
    #[serde(borrow)]
    pub issue: Option<Item<'a>>,
    #[serde(borrow)]
    pub pull_request: Option<Item<'a>>,
    #[serde(borrow)]
    pub comment: Option<Comment<'a>>,
    #[serde(borrow)]
    pub label: Option<Label<'a>>,
    #[serde(borrow)]
    pub assignee: Option<User<'a>>,
    #[serde(borrow)]
    pub release: Option<Release<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Repository<'a> {
    #[serde(borrow)]
    pub full_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub html_url: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct User<'a> {
    #[serde(borrow)]
    pub login: Option<Text<'a>>,
    #[serde(borrow)]
    pub html_url: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
}

impl User<'_> {
    pub fn login(&self) -> &str {
        self.login.as_deref().unwrap_or("")
    }

    pub fn url(&self) -> &str {
        self.html_url.as_deref().unwrap_or("")
    }

    /// `type: Bot`, or a `[bot]` login.
    pub fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some("Bot") || self.login().ends_with("[bot]")
    }
}

/// An issue or a pull request.
#[derive(Debug, Default, Deserialize)]
pub struct Item<'a> {
    pub number: Option<i64>,
    #[serde(borrow)]
    pub title: Option<Text<'a>>,
    #[serde(borrow)]
    pub html_url: Option<Text<'a>>,
    #[serde(borrow)]
    pub body: Option<Text<'a>>,
    #[serde(borrow)]
    pub user: Option<User<'a>>,
    #[serde(borrow, default)]
    pub labels: Option<Vec<Label<'a>>>,
    #[serde(borrow, default)]
    pub assignees: Option<Vec<User<'a>>>,
    #[serde(borrow)]
    pub state: Option<Text<'a>>,
    #[serde(borrow)]
    pub state_reason: Option<Text<'a>>,
    #[serde(borrow)]
    pub created_at: Option<Text<'a>>,
    #[serde(borrow)]
    pub updated_at: Option<Text<'a>>,
    #[serde(borrow)]
    pub closed_at: Option<Text<'a>>,
    pub merged: Option<bool>,
    pub draft: Option<bool>,
    /// Present on an issue that is a pull request (comments on pull requests come as
    /// `issue_comment` events).
    pub pull_request: Option<IgnoredAny>,
}

impl Item<'_> {
    pub fn title(&self) -> &str {
        self.title.as_deref().unwrap_or("")
    }

    pub fn url(&self) -> &str {
        self.html_url.as_deref().unwrap_or("")
    }

    pub fn label_names(&self) -> Vec<String> {
        self.labels
            .iter()
            .flatten()
            .filter_map(|label| label.name.as_deref().map(str::to_owned))
            .collect()
    }

    pub fn assignee_logins(&self) -> Vec<String> {
        self.assignees
            .iter()
            .flatten()
            .map(|user| user.login().to_owned())
            .filter(|login| !login.is_empty())
            .collect()
    }

    pub fn is_open(&self) -> bool {
        self.state.as_deref() == Some("open")
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Comment<'a> {
    #[serde(borrow)]
    pub body: Option<Text<'a>>,
    #[serde(borrow)]
    pub html_url: Option<Text<'a>>,
    #[serde(borrow)]
    pub user: Option<User<'a>>,
    #[serde(borrow)]
    pub created_at: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Label<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Release<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub tag_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub html_url: Option<Text<'a>>,
    #[serde(borrow)]
    pub body: Option<Text<'a>>,
    #[serde(borrow)]
    pub author: Option<User<'a>>,
    #[serde(borrow)]
    pub published_at: Option<Text<'a>>,
    #[serde(borrow)]
    pub created_at: Option<Text<'a>>,
    pub prerelease: Option<bool>,
}

impl<'a> Payload<'a> {
    /// Parses the stored payload. A payload whose fields are not what GitHub documents (a
    /// number where text belongs) reads as empty, and gets the plain message.
    pub fn parse(text: &'a str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn action(&self) -> &str {
        self.action.as_deref().unwrap_or("")
    }

    pub fn repository_name(&self) -> &str {
        self.repository
            .as_ref()
            .and_then(|repo| repo.full_name.as_deref())
            .unwrap_or("")
    }

    pub fn repository_url(&self) -> &str {
        self.repository
            .as_ref()
            .and_then(|repo| repo.html_url.as_deref())
            .unwrap_or("")
    }

    pub fn sender(&self) -> Option<&User<'a>> {
        self.sender.as_ref()
    }

    /// The issue or pull request the event is about.
    pub fn item(&self) -> Option<&Item<'a>> {
        self.issue.as_ref().or(self.pull_request.as_ref())
    }
}

/// Unix milliseconds of an RFC 3339 time, if it is one.
pub fn time_ms(text: Option<&str>) -> Option<i64> {
    text.and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
        .map(to_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_and_borrows_plain_strings() {
        let text = r#"{"action":"opened","issue":{"number":3,"title":"plain","body":"a\nb",
            "labels":[{"name":"bug"},{"name":null}],"user":{"login":"x[bot]"},"state":"open",
            "created_at":"2019-05-15T15:20:18Z","pull_request":{"url":"u"}},"extra":[1,2,{"deep":true}]}"#;
        let payload = Payload::parse(text);
        let issue = payload.item().unwrap();
        assert!(matches!(issue.title, Some(Text(Cow::Borrowed("plain")))));
        assert!(matches!(issue.body, Some(Text(Cow::Owned(_)))));
        assert_eq!(issue.label_names(), vec!["bug".to_owned()]);
        assert!(issue.user.as_ref().unwrap().is_bot());
        assert!(issue.pull_request.is_some() && issue.is_open());
        assert_eq!(
            time_ms(issue.created_at.as_deref()),
            Some(1_557_933_618_000)
        );
    }

    #[test]
    fn an_odd_payload_reads_as_empty() {
        let payload = Payload::parse(r#"{"issue":{"number":"seven"}}"#);
        assert!(payload.item().is_none());
        assert_eq!(Payload::parse("not json").action(), "");
    }
}
