//! Route templates (`template = "…"` in a `[[routes]]` entry): minijinja over the event's fields,
//! rendered to one mrkdwn section. Escaping is on for every value, with Slack's rules (see
//! [`super::escape`]), so no title, label or body can break out of the template; the template
//! itself is configuration and may write any Slack syntax. Rendering is bounded (fuel), and a
//! template that does not compile stops start-up with the route's name.
//!
//! Fields: `event`, `action`, `repository`, `repository_url`, `number`, `title`, `url`, `author`,
//! `author_url`, `sender`, `state`, `state_reason`, `labels` (list), `assignees` (list), `label`
//! (the label just added or removed), `assignee`, `comment_author`, `comment_url`, `excerpt` (the
//! body's or comment's first lines, already mrkdwn), `release_name`, `release_tag`, `created_at`
//! (Unix seconds), `mention` (the route's), `late`. Filters: `link(label)` on a URL makes
//! `<url|label>`; `date` on Unix seconds makes a `<!date^…>` time.

use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};
use serde::Serialize;

use super::escape::{EXCERPT_CHARS, EXCERPT_LINES, date, excerpt, link, push_escaped, quote};
use super::render::{SlackMessage, with_mention};
use super::view::{Payload, time_ms};
use crate::routes::Router;

/// Most template instructions one message may cost (a loop cannot run away).
const FUEL: u64 = 50_000;
/// Slack's limit for a section's text.
const MAX_TEXT: usize = 3_000;

/// Every route's template, compiled once.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

fn name(route: usize) -> String {
    format!("routes[{route}]")
}

impl Templates {
    /// Compiles the templates of `router`'s routes; the error names the route.
    pub fn compile(router: &Router) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_auto_escape_callback(|_| AutoEscape::Custom("slack".into()));
        env.set_formatter(slack_formatter);
        env.add_filter("link", link_filter);
        env.add_filter("date", date_filter);
        for (index, route) in router.routes.iter().enumerate() {
            if let Some(source) = &route.config.template {
                env.add_template_owned(name(index), source.clone())
                    .map_err(|error| format!("{}: template: {}", route.name, describe(&error)))?;
            }
        }
        Ok(Self { env })
    }

    /// Checks one template as a route would use it.
    pub fn check(route_name: &str, source: &str) -> Result<(), String> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Custom("slack".into()));
        env.set_formatter(slack_formatter);
        env.add_filter("link", link_filter);
        env.add_filter("date", date_filter);
        env.add_template_owned("t", source.to_owned())
            .map_err(|error| format!("{route_name}: template: {}", describe(&error)))
    }

    /// Renders route `route`'s template for an event, if it has one.
    pub fn render(
        &self,
        route: usize,
        event: &str,
        payload: &Payload<'_>,
        mention: Option<&str>,
        late: bool,
    ) -> Option<Result<SlackMessage, String>> {
        let template = self.env.get_template(&name(route)).ok()?;
        let fields = Fields::new(event, payload, mention, late);
        Some(
            template
                .render(Value::from(Serde(&fields)))
                .map_err(|error| format!("{}: template: {}", name(route), describe(&error)))
                .map(|text| {
                    let text: String = text.trim().chars().take(MAX_TEXT).collect();
                    let message = SlackMessage::plain(text);
                    // The mention is in the fields: a template that leaves it out means it.
                    with_mention(message, None)
                }),
        )
    }
}

fn describe(error: &Error) -> String {
    match error.line() {
        Some(line) => format!(
            "line {line}: {}",
            error.detail().unwrap_or(&error.to_string())
        ),
        None => error.to_string(),
    }
}

/// Escapes every value printed, unless it was built by herald (`link`, `date`, `excerpt`,
/// `mention`: marked safe).
fn slack_formatter(out: &mut Output, _state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return out
            .write_str(value.as_str().unwrap_or_default())
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "writing the message"));
    }
    let mut escaped = String::new();
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    match value.as_str() {
        Some(text) => push_escaped(&mut escaped, text),
        None => push_escaped(&mut escaped, &value.to_string()),
    }
    out.write_str(&escaped)
        .map_err(|_| Error::new(ErrorKind::WriteFailure, "writing the message"))
}

fn link_filter(url: &str, label: Option<&str>) -> Value {
    Value::from_safe_string(link(url, label.unwrap_or(url)))
}

fn date_filter(seconds: i64) -> Value {
    Value::from_safe_string(date(seconds.saturating_mul(1000)))
}

/// What a template sees.
#[derive(Serialize)]
struct Fields {
    event: String,
    action: String,
    repository: String,
    repository_url: String,
    number: Option<i64>,
    title: String,
    url: String,
    author: String,
    author_url: String,
    sender: String,
    state: String,
    state_reason: String,
    labels: Vec<String>,
    assignees: Vec<String>,
    label: String,
    assignee: String,
    comment_author: String,
    comment_url: String,
    excerpt: Value,
    release_name: String,
    release_tag: String,
    created_at: Option<i64>,
    mention: Value,
    late: bool,
}

impl Fields {
    fn new(event: &str, payload: &Payload<'_>, mention: Option<&str>, late: bool) -> Self {
        let item = payload.item();
        let comment = payload.comment.as_ref();
        let release = payload.release.as_ref();
        let body = comment
            .and_then(|c| c.body.as_deref())
            .or_else(|| item.and_then(|i| i.body.as_deref()))
            .or_else(|| release.and_then(|r| r.body.as_deref()))
            .unwrap_or("");
        let text = |value: Option<&str>| value.unwrap_or("").to_owned();
        Self {
            event: event.to_owned(),
            action: payload.action().to_owned(),
            repository: payload.repository_name().to_owned(),
            repository_url: payload.repository_url().to_owned(),
            number: item.and_then(|i| i.number),
            title: text(item.map(super::view::Item::title)),
            url: text(
                item.map(super::view::Item::url)
                    .or_else(|| release.and_then(|r| r.html_url.as_deref())),
            ),
            author: text(
                item.and_then(|i| i.user.as_ref())
                    .map(super::view::User::login),
            ),
            author_url: text(
                item.and_then(|i| i.user.as_ref())
                    .map(super::view::User::url),
            ),
            sender: text(payload.sender().map(super::view::User::login)),
            state: text(item.and_then(|i| i.state.as_deref())),
            state_reason: text(item.and_then(|i| i.state_reason.as_deref())),
            labels: item.map(super::view::Item::label_names).unwrap_or_default(),
            assignees: item
                .map(super::view::Item::assignee_logins)
                .unwrap_or_default(),
            label: text(payload.label.as_ref().and_then(|l| l.name.as_deref())),
            assignee: text(payload.assignee.as_ref().map(super::view::User::login)),
            comment_author: text(
                comment
                    .and_then(|c| c.user.as_ref())
                    .map(super::view::User::login),
            ),
            comment_url: text(comment.and_then(|c| c.html_url.as_deref())),
            excerpt: Value::from_safe_string(quote(&excerpt(body, EXCERPT_CHARS, EXCERPT_LINES))),
            release_name: text(release.and_then(|r| r.name.as_deref())),
            release_tag: text(release.and_then(|r| r.tag_name.as_deref())),
            created_at: time_ms(
                comment
                    .and_then(|c| c.created_at.as_deref())
                    .or_else(|| item.and_then(|i| i.created_at.as_deref())),
            )
            .map(|ms| ms / 1000),
            mention: Value::from_safe_string(mention.unwrap_or("").to_owned()),
            late,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteConfig;
    use crate::routes::Route;

    fn templates(source: &str) -> Templates {
        let config = RouteConfig {
            template: Some(source.to_owned()),
            to: vec!["t".into()],
            ..RouteConfig::default()
        };
        let router = Router {
            routes: vec![Route::new(0, &config).unwrap()],
            built_in: Vec::new(),
        };
        Templates::compile(&router).unwrap()
    }

    const HOSTILE: &str = r#"{"action":"opened","issue":{"number":7,"title":"<!channel> *x* `y`",
        "html_url":"https://github.com/o/r/issues/7","labels":[{"name":"<@U1>"}],"user":{"login":"_m_"},
        "body":"hi <!here>"},"repository":{"full_name":"o/r"}}"#;

    #[test]
    fn user_text_is_escaped_and_configuration_is_not() {
        let templates = templates(
            "{{ mention }} *{{ url | link('#' ~ number ~ ' ' ~ title) }}* by {{ author }} {{ labels | join(', ') }}\n{{ excerpt }}",
        );
        let message = templates
            .render(
                0,
                "issues",
                &Payload::parse(HOSTILE),
                Some("<!subteam^S1>"),
                false,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            message.text,
            "<!subteam^S1> *<https://github.com/o/r/issues/7|#7 &lt;!channel&gt; ∗x∗ ˋyˋ>* by ˍmˍ &lt;@U1&gt;\n>hi &lt;!here&gt;"
        );
    }

    #[test]
    fn broken_templates_name_the_route_and_runaway_ones_stop() {
        let config = RouteConfig {
            name: Some("p0".into()),
            template: Some("{% if %}".into()),
            to: vec!["t".into()],
            ..RouteConfig::default()
        };
        let router = Router {
            routes: vec![Route::new(0, &config).unwrap()],
            built_in: Vec::new(),
        };
        let error = Templates::compile(&router).unwrap_err();
        assert!(error.starts_with("p0: template: line 1"), "{error}");
        let runaway = templates(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        );
        let outcome = runaway
            .render(0, "issues", &Payload::parse(HOSTILE), None, false)
            .unwrap();
        assert!(outcome.unwrap_err().contains("fuel"), "fuel runs out");
    }
}
