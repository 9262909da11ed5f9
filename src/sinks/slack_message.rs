//! Rendering events as Slack messages: Block Kit with a plain-text fallback. Everything that
//! comes from GitHub users is escaped for mrkdwn, so a title cannot ping a channel or forge a link.

use serde_json::{Value, json};

/// Longest excerpt of an issue or comment body, in characters.
pub const EXCERPT_CHARS: usize = 300;

/// Escapes the three characters Slack's mrkdwn gives meaning to (`&`, `<`, `>`), which is what
/// stops `<!channel>`, `<@U123>` and `<https://evil|click>` in user text from being interpreted.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The first `max_chars` characters of `body` with whitespace runs folded, `…` when cut.
pub fn excerpt(body: &str, max_chars: usize) -> String {
    let folded = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max_chars {
        return folded;
    }
    let mut cut: String = folded.chars().take(max_chars).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// A link whose label is user text: both parts escaped.
fn link(url: &str, label: &str) -> String {
    if url.is_empty() {
        return escape(label);
    }
    format!("<{}|{}>", escape(url), escape(label))
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// One message, ready to post.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    /// The notification and fallback text (also mrkdwn, also escaped).
    pub text: String,
    pub blocks: Vec<Value>,
}

impl SlackMessage {
    /// The body for an incoming webhook.
    pub fn to_webhook_body(&self) -> Value {
        json!({ "text": self.text, "blocks": self.blocks, "unfurl_links": false, "unfurl_media": false })
    }
}

/// Renders any event; issues, comments and pull requests get a tailored message.
pub fn render(event: &str, payload: &Value) -> SlackMessage {
    let action = text(payload, "/action");
    match event {
        "issues" => render_item(payload, "/issue", "issue", action),
        "pull_request" => render_item(payload, "/pull_request", "pull request", action),
        "issue_comment" => render_comment(payload, action),
        _ => render_generic(event, payload, action),
    }
}

fn render_item(payload: &Value, root: &str, noun: &str, action: &str) -> SlackMessage {
    let repo = escape(text(payload, "/repository/full_name"));
    let item = payload.pointer(root).unwrap_or(&Value::Null);
    let number = item
        .get("number")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    let title = text(item, "/title");
    let author = escape(text(item, "/user/login"));
    let actor = escape(text(payload, "/sender/login"));
    let labels: Vec<String> = item
        .get("labels")
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|label| label.get("name")?.as_str())
                .map(|name| format!("`{}`", escape(name)))
                .collect()
        })
        .unwrap_or_default();
    let verb = if action == "opened" {
        "New".to_owned()
    } else {
        capitalize(&escape(action))
    };
    let headline = format!("{verb} {noun} in *{repo}*");
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": format!("{headline}\n*{}*", link(text(item, "/html_url"), &format!("#{number} {title}"))) }
    })];
    let body = excerpt(text(item, "/body"), EXCERPT_CHARS);
    if action == "opened" && !body.is_empty() {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!(">{}", escape(&body)) } }));
    }
    let mut context = if action == "opened" || actor.is_empty() {
        format!("opened by *{author}*")
    } else {
        format!("{} by *{actor}*", escape(action))
    };
    if !labels.is_empty() {
        context.push_str(" · labels: ");
        context.push_str(&labels.join(", "));
    }
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": context }] }));
    let who = if action == "opened" { &author } else { &actor };
    let fallback = format!(
        "{verb} {noun} in {repo}: #{number} {} (by {who})",
        escape(title)
    );
    SlackMessage {
        text: fallback,
        blocks,
    }
}

fn render_comment(payload: &Value, action: &str) -> SlackMessage {
    let repo = escape(text(payload, "/repository/full_name"));
    let number = payload
        .pointer("/issue/number")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    let title = text(payload, "/issue/title");
    let author = escape(text(payload, "/comment/user/login"));
    let body = excerpt(text(payload, "/comment/body"), EXCERPT_CHARS);
    let headline = format!("Comment {} on *{repo}*", escape(action));
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": format!("{headline}\n*{}*", link(text(payload, "/comment/html_url"), &format!("#{number} {title}"))) }
    })];
    if !body.is_empty() {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!(">{}", escape(&body)) } }));
    }
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!("by *{author}*") }] }));
    let fallback = format!(
        "Comment {} on {repo}: #{number} {} (by {author})",
        escape(action),
        escape(title)
    );
    SlackMessage {
        text: fallback,
        blocks,
    }
}

fn render_generic(event: &str, payload: &Value, action: &str) -> SlackMessage {
    let repo = escape(text(payload, "/repository/full_name"));
    let actor = escape(text(payload, "/sender/login"));
    let what = if action.is_empty() {
        escape(event)
    } else {
        format!("{}.{}", escape(event), escape(action))
    };
    let place = |bold: &str| {
        if repo.is_empty() {
            String::new()
        } else {
            format!(" in {bold}{repo}{bold}")
        }
    };
    let by = |bold: &str| {
        if actor.is_empty() {
            String::new()
        } else {
            format!(" by {bold}{actor}{bold}")
        }
    };
    SlackMessage {
        text: format!("{what}{}{}", place(""), by("")),
        blocks: vec![
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("`{what}`{}{}", place("*"), by("*")) } }),
        ],
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_mrkdwn_control_characters() {
        let table = [
            ("<!channel>", "&lt;!channel&gt;"),
            ("<https://evil|click>", "&lt;https://evil|click&gt;"),
            ("<@U123> & co", "&lt;@U123&gt; &amp; co"),
            ("&amp;", "&amp;amp;"),
            ("plain *bold*", "plain *bold*"),
        ];
        for (input, expected) in table {
            assert_eq!(escape(input), expected);
        }
    }

    #[test]
    fn excerpts_fold_whitespace_and_cut_on_characters() {
        assert_eq!(excerpt("a\n\n  b\tc", 10), "a b c");
        assert_eq!(excerpt("héllo wörld", 5), "héllo…");
        assert_eq!(excerpt("abc def", 4), "abc…");
        assert_eq!(excerpt("", 5), "");
    }

    #[test]
    fn renders_an_opened_issue_with_hostile_text_escaped() {
        let payload = json!({
            "action": "opened",
            "issue": {
                "number": 42, "title": "<!channel> <https://evil|click>", "html_url": "https://github.com/o/r/issues/42",
                "user": {"login": "mallory"}, "labels": [{"name": "bug"}, {"name": "<b>"}],
                "body": "Steps:\n1. <!here>\n2. & more"
            },
            "repository": {"full_name": "o/r"},
            "sender": {"login": "mallory"}
        });
        let message = render("issues", &payload);
        assert_eq!(
            message.text,
            "New issue in o/r: #42 &lt;!channel&gt; &lt;https://evil|click&gt; (by mallory)"
        );
        assert_eq!(
            message.blocks,
            vec![
                json!({"type": "section", "text": {"type": "mrkdwn", "text": "New issue in *o/r*\n*<https://github.com/o/r/issues/42|#42 &lt;!channel&gt; &lt;https://evil|click&gt;>*"}}),
                json!({"type": "section", "text": {"type": "mrkdwn", "text": ">Steps: 1. &lt;!here&gt; 2. &amp; more"}}),
                json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "opened by *mallory* · labels: `bug`, `&lt;b&gt;`"}]}),
            ]
        );
        let rendered = serde_json::to_string(&message.to_webhook_body()).unwrap();
        assert!(
            !rendered.contains("<!channel>")
                && !rendered.contains("<!here>")
                && !rendered.contains("<https://evil")
        );
    }

    #[test]
    fn renders_other_actions_and_events() {
        let closed = json!({"action": "closed", "issue": {"number": 1, "title": "t", "html_url": "u", "user": {"login": "a"}},
                            "repository": {"full_name": "o/r"}, "sender": {"login": "b"}});
        let message = render("issues", &closed);
        assert_eq!(message.text, "Closed issue in o/r: #1 t (by b)");
        assert_eq!(message.blocks.len(), 2);
        let fork = json!({"repository": {"full_name": "o/r"}, "sender": {"login": "<x>"}});
        assert_eq!(render("fork", &fork).text, "fork in o/r by &lt;x&gt;");
        let comment = json!({"action": "created", "issue": {"number": 3, "title": "q"},
                             "comment": {"body": "<!everyone>", "user": {"login": "c"}, "html_url": "h"},
                             "repository": {"full_name": "o/r"}});
        let message = render("issue_comment", &comment);
        assert_eq!(message.text, "Comment created on o/r: #3 q (by c)");
        assert!(
            message.blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("&lt;!everyone&gt;")
        );
    }
}
