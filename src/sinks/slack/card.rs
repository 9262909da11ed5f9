//! The card a thread's parent shows: the issue or pull request as it is now (state, labels,
//! assignees), stored with the thread so any later event can redraw it.

use serde::{Deserialize, Serialize};

use super::escape::{
    EXCERPT_CHARS, EXCERPT_LINES, date, escape, excerpt, labels, link, names, quote,
};
use super::render::{SlackMessage, context, section, with_mention};
use super::view::{Payload, time_ms};

/// What a thread's parent shows: the issue or pull request as it is now. Stored with the thread
/// (user text raw, escaped when rendered), so the parent can be redrawn from any later event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub pull_request: bool,
    pub repository: String,
    pub repository_url: String,
    pub number: i64,
    pub title: String,
    pub url: String,
    pub author: String,
    pub author_url: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
    pub state_reason: Option<String>,
    pub draft: bool,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub created_at: Option<i64>,
    /// The body's excerpt, already rendered (escaped) when the parent was first posted.
    pub excerpt: Vec<String>,
    /// The payload's `updated_at`: a snapshot never replaces a newer one.
    pub updated_at: i64,
    /// The mention the parent was posted with (configuration), kept when it is redrawn.
    #[serde(default)]
    pub mention: Option<String>,
    /// The parent is a route template's message: never redrawn as a card.
    #[serde(default)]
    pub templated: bool,
}

impl Card {
    /// The state of the item an event is about, if it is about one.
    pub fn from_payload(event: &str, payload: &Payload<'_>) -> Option<Self> {
        let item = payload.item()?;
        let number = item.number?;
        let pull_request = event == "pull_request" || item.pull_request.is_some();
        let state = if item.merged == Some(true) {
            "merged"
        } else if item.is_open() {
            "open"
        } else {
            "closed"
        };
        let author = item.user.as_ref();
        Some(Self {
            pull_request,
            repository: payload.repository_name().to_owned(),
            repository_url: payload.repository_url().to_owned(),
            number,
            title: item.title().to_owned(),
            url: item.url().to_owned(),
            author: author.map(|u| u.login().to_owned()).unwrap_or_default(),
            author_url: author.map(|u| u.url().to_owned()).unwrap_or_default(),
            state: state.to_owned(),
            state_reason: item.state_reason.as_deref().map(str::to_owned),
            draft: item.draft == Some(true),
            labels: item.label_names(),
            assignees: item.assignee_logins(),
            created_at: time_ms(item.created_at.as_deref()),
            excerpt: excerpt(
                item.body.as_deref().unwrap_or(""),
                EXCERPT_CHARS,
                EXCERPT_LINES,
            ),
            updated_at: time_ms(item.updated_at.as_deref()).unwrap_or(0),
            mention: None,
            templated: false,
        })
    }

    /// This card with a newer snapshot's state, keeping what the parent showed first (its
    /// excerpt and mention).
    #[must_use]
    pub fn refreshed(&self, newer: Self) -> Self {
        Self {
            excerpt: self.excerpt.clone(),
            mention: self.mention.clone(),
            templated: self.templated,
            ..newer
        }
    }

    /// Whether `other` shows the same (the snapshot's time aside).
    pub fn looks_like(&self, other: &Self) -> bool {
        Self {
            updated_at: other.updated_at,
            ..self.clone()
        } == *other
    }

    fn noun(&self) -> &'static str {
        if self.pull_request {
            "Pull request"
        } else {
            "Issue"
        }
    }

    /// `:large_green_circle: Open`, `:white_check_mark: Closed as completed`, …
    fn state_words(&self) -> (String, String) {
        let (emoji, words) = match (self.state.as_str(), self.state_reason.as_deref()) {
            ("merged", _) => (":large_purple_circle:", "Merged".to_owned()),
            ("open", _) if self.draft => (":white_circle:", "Draft".to_owned()),
            ("open", _) => (":large_green_circle:", "Open".to_owned()),
            (_, Some("completed")) => (":white_check_mark:", "Closed as completed".to_owned()),
            (_, Some("not_planned")) => (":heavy_minus_sign:", "Closed as not planned".to_owned()),
            (_, Some("duplicate")) => (":heavy_minus_sign:", "Closed as a duplicate".to_owned()),
            _ if self.pull_request => (":red_circle:", "Closed without merging".to_owned()),
            _ => (":red_circle:", "Closed".to_owned()),
        };
        (emoji.to_owned(), words)
    }

    /// The parent message.
    pub fn render(&self, mention: Option<&str>) -> SlackMessage {
        let (emoji, state) = self.state_words();
        let title = link(&self.url, &format!("#{} {}", self.number, self.title));
        let mut blocks = vec![section(&format!(
            "*{title}*\n{emoji} *{state}* · {} in {}",
            self.noun(),
            link(&self.repository_url, &self.repository)
        ))];
        if !self.excerpt.is_empty() {
            blocks.push(section(&quote(&self.excerpt)));
        }
        let mut context_parts = vec![format!(
            "opened by {}",
            link(&self.author_url, &self.author)
        )];
        context_parts.extend(self.created_at.map(date));
        if !self.labels.is_empty() {
            context_parts.push(format!("labels: {}", labels(&self.labels)));
        }
        if !self.assignees.is_empty() {
            context_parts.push(format!("assigned to {}", names(&self.assignees)));
        }
        blocks.push(context(&context_parts.join(" · ")));
        let message = SlackMessage {
            text: format!(
                "{} in {}: #{} {} ({state}; by {})",
                self.noun(),
                escape(&self.repository),
                self.number,
                escape(&self.title),
                escape(&self.author)
            ),
            blocks,
        };
        with_mention(message, mention)
    }
}
