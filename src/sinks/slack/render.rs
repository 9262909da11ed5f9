//! Messages per event kind (the card a thread's parent shows is in `card`). Pure: a payload
//! view in, Block Kit out. Every piece of user text goes through
//! [`super::escape`]; only the configuration (mentions, templates) writes Slack syntax.

use std::fmt::Write;

use serde_json::{Value, json};

use super::escape::{EXCERPT_CHARS, EXCERPT_LINES, date, escape, excerpt, labels, link, quote};
use super::view::{Item, Payload, User, time_ms};

/// One message, ready to post.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    /// The notification and fallback text (mrkdwn, escaped like the blocks).
    pub text: String,
    pub blocks: Vec<Value>,
}

impl SlackMessage {
    /// The body for an incoming webhook.
    pub fn to_webhook_body(&self) -> Value {
        json!({ "text": self.text, "blocks": self.blocks, "unfurl_links": false, "unfurl_media": false })
    }

    /// A plain message of one section (reminders, digests), `text` already mrkdwn.
    pub fn plain(text: String) -> Self {
        Self {
            blocks: vec![section(&text)],
            text,
        }
    }
}

/// How a message is presented beyond the event itself: set by the route, never by user text.
#[derive(Debug, Clone, Default)]
pub struct Presentation<'a> {
    /// Slack syntax from the configuration (`<!subteam^S0123>`), put first.
    pub mention: Option<&'a str>,
    /// The issue matched only because a label it needs was just added: announce it as new.
    pub late: bool,
    /// One-line summaries (mrkdwn) of later events told in this message (a coalesced burst).
    pub also: Vec<String>,
}

/// Renders an event from its stored payload.
pub fn render_event(event: &str, payload: &str) -> SlackMessage {
    render(event, &Payload::parse(payload), &Presentation::default())
}

/// Renders an event; issues, pull requests, comments and releases get a tailored message.
pub fn render(event: &str, payload: &Payload<'_>, how: &Presentation<'_>) -> SlackMessage {
    let described = describe(event, payload, how.late);
    let mut message = match &described.subject {
        Some(subject) => {
            let mut blocks = vec![section(&format!(
                "{}\n*{}*",
                described.headline, subject.link
            ))];
            if !described.excerpt.is_empty() {
                blocks.push(section(&quote(&described.excerpt)));
            }
            blocks.push(context(&described.context));
            SlackMessage {
                text: format!(
                    "{} in {}: #{} {}",
                    described.plain,
                    escape(payload.repository_name()),
                    subject.number,
                    escape(&subject.title)
                ),
                blocks,
            }
        }
        None => {
            let mut blocks = vec![section(&described.headline)];
            if !described.excerpt.is_empty() {
                blocks.push(section(&quote(&described.excerpt)));
            }
            if !described.context.is_empty() {
                blocks.push(context(&described.context));
            }
            SlackMessage {
                text: described.plain.clone(),
                blocks,
            }
        }
    };
    if let Some(by) = &described.by {
        let _ = write!(message.text, " (by {by})");
    }
    if !how.also.is_empty() {
        message.blocks.push(context(&also_line(&how.also)));
    }
    with_mention(message, how.mention)
}

/// Most coalesced events a message lists one by one.
const MAX_ALSO: usize = 10;

/// `also: label bug added by …` for the events a coalesced message tells, within Slack's limit
/// for one element.
pub fn also_line(also: &[String]) -> String {
    let mut line = String::from("also: ");
    let shown = also.len().min(MAX_ALSO);
    line.push_str(&also[..shown].join(" · "));
    if also.len() > shown {
        let _ = write!(line, " · and {} more", also.len() - shown);
    }
    line
}

/// The context block for a coalesced message's other events.
pub fn also_block(also: &[String]) -> Value {
    context(&also_line(also))
}

/// Puts a mention (configuration, Slack syntax) in front of the text and the first block.
pub fn with_mention(mut message: SlackMessage, mention: Option<&str>) -> SlackMessage {
    let Some(mention) = mention.filter(|m| !m.is_empty()) else {
        return message;
    };
    message.text = format!("{mention} {}", message.text);
    if let Some(first) = message.blocks.first_mut()
        && let Some(text) = first.pointer_mut("/text/text")
        && let Some(current) = text.as_str()
    {
        *text = Value::String(format!("{mention} {current}"));
    }
    message
}

/// One line (mrkdwn) telling an event, for a coalesced message: `labeled `bug` by alice`.
pub fn summary(event: &str, payload: &Payload<'_>) -> String {
    let described = describe(event, payload, false);
    match &described.by {
        Some(by) => format!("{} by {by}", described.plain.to_lowercase()),
        None => described.plain.to_lowercase(),
    }
}

/// What an item or comment message is about.
struct Subject {
    number: i64,
    title: String,
    /// `*<url|#N title>*` without the stars.
    link: String,
}

struct Described {
    /// mrkdwn, first line of the message.
    headline: String,
    /// The same in plain words (escaped), for the notification text.
    plain: String,
    /// Who did it (escaped), for the notification text.
    by: Option<String>,
    subject: Option<Subject>,
    excerpt: Vec<String>,
    context: String,
}

fn user_link(user: Option<&User<'_>>) -> String {
    user.map(|user| link(user.url(), user.login()))
        .unwrap_or_default()
}

fn noun(event: &str, item: &Item<'_>) -> &'static str {
    if event == "pull_request" || item.pull_request.is_some() {
        "pull request"
    } else {
        "issue"
    }
}

fn capitalized(noun: &str) -> String {
    let mut chars = noun.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn describe(event: &str, payload: &Payload<'_>, late: bool) -> Described {
    match (event, payload.item(), payload.release.as_ref()) {
        ("issues" | "pull_request", Some(item), _) => describe_item(event, payload, item, late),
        ("issue_comment", Some(item), _) => describe_comment(payload, item),
        ("release", _, Some(_)) => describe_release(payload),
        _ => describe_other(event, payload),
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "one table of event kinds, clearer whole"
)]
fn describe_item(event: &str, payload: &Payload<'_>, item: &Item<'_>, late: bool) -> Described {
    let noun = noun(event, item);
    let big = capitalized(noun);
    let action = payload.action();
    let actor = user_link(payload.sender());
    let actor_plain = payload.sender().map(|u| escape(u.login()));
    let label = payload
        .label
        .as_ref()
        .and_then(|label| label.name.as_deref())
        .unwrap_or("");
    let assignee = payload.assignee.as_ref();
    let (headline, plain, by) = match action {
        "opened" | "labeled" if late => (
            format!("*{big} now labeled* {}", labels(&[label])),
            format!("{big} now labeled {}", escape(label)),
            actor_plain,
        ),
        "opened" => {
            let new = if item.draft == Some(true) {
                format!("New draft {noun}")
            } else {
                format!("New {noun}")
            };
            let author = item.user.as_ref().map(|u| escape(u.login()));
            (format!("*{new}*"), new, author)
        }
        "closed" if noun == "pull request" => {
            if item.merged == Some(true) {
                (
                    format!("*Pull request merged* by {actor}"),
                    "Pull request merged".to_owned(),
                    actor_plain,
                )
            } else {
                (
                    format!("*Pull request closed without merging* by {actor}"),
                    "Pull request closed without merging".to_owned(),
                    actor_plain,
                )
            }
        }
        "closed" => {
            let how = closed_as(item.state_reason.as_deref());
            (
                format!("*Issue closed{how}* by {actor}"),
                format!("Issue closed{how}"),
                actor_plain,
            )
        }
        "labeled" | "unlabeled" => {
            let verb = if action == "labeled" {
                "added"
            } else {
                "removed"
            };
            (
                format!("*Label {verb}:* {} by {actor}", labels(&[label])),
                format!("Label {} {verb}", escape(label)),
                actor_plain,
            )
        }
        "assigned" | "unassigned" => {
            let whom = user_link(assignee);
            let whom_plain = assignee.map(|u| escape(u.login())).unwrap_or_default();
            let (bold, words) = if action == "assigned" {
                ("Assigned to", format!("Assigned to {whom_plain}"))
            } else {
                ("Unassigned", format!("Unassigned {whom_plain}"))
            };
            (format!("*{bold}* {whom} by {actor}"), words, actor_plain)
        }
        other => {
            let words = format!("{big} {}", escape(&other.replace('_', " ")));
            (format!("*{words}* by {actor}"), words, actor_plain)
        }
    };
    let number = item.number.unwrap_or_default();
    let excerpt_lines = if action == "opened" {
        excerpt(
            item.body.as_deref().unwrap_or(""),
            EXCERPT_CHARS,
            EXCERPT_LINES,
        )
    } else {
        Vec::new()
    };
    let when = match action {
        "opened" => time_ms(item.created_at.as_deref()),
        "closed" => time_ms(item.closed_at.as_deref()),
        _ => None,
    }
    .or_else(|| time_ms(item.updated_at.as_deref()));
    let mut context = vec![
        link(payload.repository_url(), payload.repository_name()),
        format!("{noun} by {}", user_link(item.user.as_ref())),
    ];
    let names = item.label_names();
    if !names.is_empty() {
        context.push(format!("labels: {}", labels(&names)));
    }
    context.extend(when.map(date));
    Described {
        headline,
        plain,
        by,
        subject: Some(Subject {
            number,
            title: item.title().to_owned(),
            link: link(item.url(), &format!("#{number} {}", item.title())),
        }),
        excerpt: excerpt_lines,
        context: context.join(" · "),
    }
}

fn closed_as(reason: Option<&str>) -> &'static str {
    match reason {
        Some("completed") => " as completed",
        Some("not_planned") => " as not planned",
        Some("duplicate") => " as a duplicate",
        _ => "",
    }
}

fn describe_comment(payload: &Payload<'_>, item: &Item<'_>) -> Described {
    let comment = payload.comment.as_ref();
    let commenter = comment.and_then(|c| c.user.as_ref());
    let who = user_link(commenter);
    let (headline, plain) = match payload.action() {
        "created" => (format!("*New comment* by {who}"), "New comment".to_owned()),
        "edited" => (
            format!("*Comment edited* by {who}"),
            "Comment edited".to_owned(),
        ),
        "deleted" => (
            format!("*Comment deleted* (written by {who})"),
            "Comment deleted".to_owned(),
        ),
        other => {
            let words = format!("Comment {}", escape(other));
            (format!("*{words}* by {who}"), words)
        }
    };
    let number = item.number.unwrap_or_default();
    let url = comment
        .and_then(|c| c.html_url.as_deref())
        .unwrap_or_else(|| item.url());
    let body = if payload.action() == "deleted" {
        ""
    } else {
        comment.and_then(|c| c.body.as_deref()).unwrap_or("")
    };
    let mut context = vec![
        link(payload.repository_url(), payload.repository_name()),
        format!(
            "on the {} by {}",
            noun("issue_comment", item),
            user_link(item.user.as_ref())
        ),
    ];
    context.extend(time_ms(comment.and_then(|c| c.created_at.as_deref())).map(date));
    Described {
        headline,
        plain,
        by: commenter.map(|u| escape(u.login())),
        subject: Some(Subject {
            number,
            title: item.title().to_owned(),
            link: link(url, &format!("#{number} {}", item.title())),
        }),
        excerpt: excerpt(body, EXCERPT_CHARS, EXCERPT_LINES),
        context: context.join(" · "),
    }
}

fn describe_release(payload: &Payload<'_>) -> Described {
    let release = payload.release.as_ref().expect("checked by describe");
    let tag = release.tag_name.as_deref().unwrap_or("");
    let name = release
        .name
        .as_deref()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or(tag);
    let kind = if release.prerelease == Some(true) {
        "Pre-release"
    } else {
        "Release"
    };
    let action = payload.action();
    let title = link(release.html_url.as_deref().unwrap_or(""), name);
    let repo = link(payload.repository_url(), payload.repository_name());
    let headline = format!("*{kind} {}:* {title} in {repo}", escape(action));
    let plain = format!(
        "{kind} {} in {}: {}",
        escape(action),
        escape(payload.repository_name()),
        escape(name)
    );
    let author = release.author.as_ref().or(payload.sender());
    let mut context = vec![format!("by {}", user_link(author))];
    if !tag.is_empty() && tag != name {
        context.push(format!("tag {}", labels(&[tag])));
    }
    context.extend(
        time_ms(release.published_at.as_deref())
            .or_else(|| time_ms(release.created_at.as_deref()))
            .map(date),
    );
    let notes = if matches!(action, "published" | "released" | "created" | "prereleased") {
        excerpt(
            release.body.as_deref().unwrap_or(""),
            EXCERPT_CHARS,
            EXCERPT_LINES,
        )
    } else {
        Vec::new()
    };
    Described {
        headline,
        plain,
        by: author.map(|u| escape(u.login())),
        subject: None,
        excerpt: notes,
        context: context.join(" · "),
    }
}

fn describe_other(event: &str, payload: &Payload<'_>) -> Described {
    let action = payload.action();
    let what = if action.is_empty() {
        escape(event)
    } else {
        format!("{}.{}", escape(event), escape(action))
    };
    let repo = payload.repository_name();
    let sender = payload.sender().map_or("", super::view::User::login);
    let mut headline = format!("`{what}`");
    let mut plain = what;
    if !repo.is_empty() {
        let _ = write!(headline, " in {}", link(payload.repository_url(), repo));
        let _ = write!(plain, " in {}", escape(repo));
    }
    if !sender.is_empty() {
        let _ = write!(headline, " by {}", user_link(payload.sender()));
    }
    Described {
        headline,
        plain,
        by: (!sender.is_empty()).then(|| escape(sender)),
        subject: None,
        excerpt: Vec::new(),
        context: String::new(),
    }
}

pub(super) fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

pub(super) fn context(text: &str) -> Value {
    json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": text }] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_titles_labels_and_bodies_stay_text() {
        let payload = r#"{"action":"opened","issue":{"number":42,
            "title":"<!channel> *bold* _it_ ~x~ `code` <https://evil|click>",
            "html_url":"https://github.com/o/r/issues/42","user":{"login":"<@U1>","html_url":"https://github.com/m"},
            "labels":[{"name":"bug`, <!here>"}],"body":"Steps:\n1. <!here>\n2. & *more*"},
            "repository":{"full_name":"o/r","html_url":"https://github.com/o/r"},"sender":{"login":"m"}}"#;
        let message = render_event("issues", payload);
        let all = serde_json::to_string(&message.to_webhook_body()).unwrap();
        for raw in [
            "<!channel>",
            "<!here>",
            "<@U1>",
            "<https://evil",
            "*bold*",
            "`code`",
            "_it_",
            "~x~",
        ] {
            assert!(!all.contains(raw), "{raw} got through: {all}");
        }
        assert_eq!(
            message.text,
            "New issue in o/r: #42 &lt;!channel&gt; ∗bold∗ ˍitˍ ∼x∼ ˋcodeˋ &lt;https://evil|click&gt; (by &lt;@U1&gt;)"
        );
        assert_eq!(
            message.blocks[1]["text"]["text"],
            ">Steps:\n>1. &lt;!here&gt;\n>2. &amp; ∗more∗"
        );
        assert!(all.contains("labels: `bugˋ, &lt;!here&gt;`"), "{all}");
    }

    #[test]
    fn a_mention_comes_first_and_only_from_configuration() {
        let payload = r#"{"action":"opened","issue":{"number":1,"title":"t"},"repository":{"full_name":"o/r"}}"#;
        let how = Presentation {
            mention: Some("<!subteam^S0123>"),
            ..Presentation::default()
        };
        let message = render("issues", &Payload::parse(payload), &how);
        assert!(message.text.starts_with("<!subteam^S0123> New issue"));
        assert!(
            message.blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("<!subteam^S0123> *New issue*")
        );
    }

    #[test]
    fn floods_of_labels_and_events_stay_within_slacks_limits() {
        let many: Vec<String> = (0..500).map(|n| format!("{}{n}", "x".repeat(60))).collect();
        let payload = serde_json::json!({"action": "opened", "issue": {"number": 1, "title": "t",
            "labels": many.iter().map(|name| serde_json::json!({"name": name})).collect::<Vec<_>>()},
            "repository": {"full_name": "o/r"}});
        let how = Presentation {
            also: many.clone(),
            ..Presentation::default()
        };
        let message = render("issues", &Payload::parse(&payload.to_string()), &how);
        for block in &message.blocks {
            let text = block
                .pointer("/text/text")
                .or_else(|| block.pointer("/elements/0/text"));
            let length = text.and_then(Value::as_str).unwrap().chars().count();
            assert!(length <= 3000, "{length}: {block}");
        }
        let all = message
            .blocks
            .iter()
            .map(Value::to_string)
            .collect::<String>();
        assert!(
            all.contains("+490 more") && all.contains("and 490 more"),
            "{all}"
        );
    }
}
