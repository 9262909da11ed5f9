//! The configuration file (`--config herald.toml` / `HERALD_CONFIG`): named destinations, routes,
//! analytics settings, and any `serve` setting by its flag name. The keys are a contract
//! (DESIGN.md): extend them, never rename them. Unknown keys are refused, so a typo never silently
//! turns a feature off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::value::ConfigValue;

/// The whole file. Top-level keys other than the tables below are settings of `herald serve`,
/// named like its flags with `_` for `-` (`retry_schedule = "5s,1m"`); the environment and the
/// command line override them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileConfig {
    /// Named places events are delivered to (`[destinations.triage]`).
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
    /// Which events go where (`[[routes]]`), evaluated in order; every match counts.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Issue-flow analytics settings (`[analytics]`).
    #[serde(default)]
    pub analytics: AnalyticsConfig,
    /// Settings of `herald serve` by flag name; filled from the top-level scalar keys.
    #[serde(flatten)]
    pub settings: BTreeMap<String, toml::Value>,
}

/// One destination: its kind and the kind's settings, plus how its lane behaves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub kind: DestinationKind,
    /// `slack-webhook`: the incoming webhook URL (a secret: use `${ENV}` or `file:PATH`).
    pub url: Option<ConfigValue>,
    /// `slack-bot`: the channel's id (`C0123456`); a name is refused (see `delivery::plan`).
    pub channel: Option<String>,
    /// `slack-bot`: the bot token (`xoxb-…`; a secret).
    pub token: Option<ConfigValue>,
    /// `slack-bot`, `bigquery`: the API's base URL (tests point it at a local fake).
    pub api_url: Option<String>,
    /// `bigquery`: `project.dataset.table`.
    pub table: Option<String>,
    /// Most requests per second to this destination, shared by every instance on PostgreSQL;
    /// `0` = no limit. Default: 1 for Slack, no limit otherwise.
    pub max_per_second: Option<f64>,
    /// Requests to this destination in flight at once, per instance.
    pub concurrency: Option<usize>,
    /// Most rows one request may carry (sinks that take batches).
    pub batch_size: Option<usize>,
    /// How long one request may take (`10s`).
    pub timeout: Option<String>,
}

/// What a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationKind {
    /// A Slack incoming webhook: one message per event, no threads, no read-back.
    SlackWebhook,
    /// A Slack app's bot token: `chat.postMessage`, threads, updates, exactly once.
    SlackBot,
    /// Google BigQuery `tabledata.insertAll`.
    Bigquery,
    /// Printed on standard output (trying herald out).
    Stdout,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SlackWebhook => "slack-webhook",
            Self::SlackBot => "slack-bot",
            Self::Bigquery => "bigquery",
            Self::Stdout => "stdout",
        }
    }
}

/// One `[[routes]]` entry: conditions (all must hold; an absent one always holds) and the
/// destinations that get a matching event, plus how Slack destinations present it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A name for logs and `herald routes test` (default: `routes[N]`).
    pub name: Option<String>,
    /// Repository globs (`octo-org/*`), compared without regard to case; absent = every one.
    pub repositories: Option<Vec<String>>,
    /// `event` (any action) or `event.action`; absent = every event.
    pub events: Option<Vec<String>>,
    /// The item carries at least one of these labels.
    pub labels_any: Option<Vec<String>>,
    /// The item carries every one of these labels.
    pub labels_all: Option<Vec<String>>,
    /// The item carries none of these labels.
    pub labels_none: Option<Vec<String>>,
    /// Only these authors (logins or numeric ids).
    pub authors_include: Option<Vec<String>>,
    /// Never these authors (logins or numeric ids).
    pub authors_exclude: Option<Vec<String>>,
    /// Also events by bots (`[bot]` logins, `type: Bot`); default false.
    #[serde(default)]
    pub include_bots: bool,
    /// Destination names.
    pub to: Vec<String>,
    /// Slack bot: later events about an issue go into the thread of its first message.
    pub thread: Option<bool>,
    /// Slack bot: a close in a thread is also sent to the channel.
    pub also_send_to_channel: Option<bool>,
    /// Slack: prepended to the message, in Slack syntax (`<!subteam^S0123>`, `<@U0123>`).
    pub mention: Option<String>,
    /// Slack bot: remind once when an open issue has had no response for this long (`24h`).
    pub remind_after: Option<String>,
    /// Working time for `remind_after`.
    pub business_hours: Option<BusinessHoursConfig>,
    /// Slack: a message template (minijinja) replacing the built-in message.
    pub template: Option<String>,
    /// Slack bot: hold events about one issue this long (`10s`) and tell a burst in one message
    /// and one parent update; absent = every event at once.
    pub coalesce: Option<String>,
}

/// Working time: a time zone, working days, working hours and holidays.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursConfig {
    /// An IANA zone (`Europe/Berlin`).
    pub zone: String,
    /// `Mon-Fri`, or a list such as `Mon,Tue,Thu`.
    pub days: String,
    /// `09:00-17:00`.
    pub hours: String,
    /// Dates (`2026-12-25`) that are not working days.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// `[analytics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Logins or numeric user ids whose comments never count as a response and whose issues are
    /// left out of the metrics (CI robots not typed `Bot`).
    #[serde(default)]
    pub ignore_users: Vec<String>,
    /// The working time `--business-hours` counts.
    pub business_hours: Option<BusinessHoursConfig>,
}

/// Why the file cannot be used; names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| FileError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the text of a configuration file.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| {
            let message = error.message().trim_end().to_owned();
            match error.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].lines().count().max(1);
                    format!("line {line}: {message}")
                }
                None => message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
retry_schedule = "5s,1m"

[destinations.triage]
kind = "slack-bot"
channel = "C0123456"
token = "${SLACK_BOT_TOKEN}"
api_url = "https://slack.com/api"
max_per_second = 1

[destinations.issues]
kind = "slack-webhook"
url = "file:/run/secrets/slack-issues"

[[routes]]
repositories = ["octo-org/*"]
events = ["issues", "issue_comment", "pull_request.closed"]
labels_any = ["bug"]
authors_exclude = ["renovate"]
to = ["triage"]
thread = true
mention = "<!subteam^S0123>"
remind_after = "24h"
business_hours = { zone = "Europe/Berlin", days = "Mon-Fri", hours = "09:00-17:00" }

[analytics]
ignore_users = ["k8s-ci-robot", "12345678"]
business_hours = { zone = "UTC", days = "Mon-Fri", hours = "09:00-17:00", holidays = ["2026-12-25"] }
"#;
        let config = FileConfig::parse(text).unwrap();
        assert_eq!(config.destinations.len(), 2);
        assert_eq!(
            config.destinations["triage"].kind,
            DestinationKind::SlackBot
        );
        assert_eq!(config.routes[0].to, vec!["triage".to_owned()]);
        assert_eq!(config.routes[0].thread, Some(true));
        assert_eq!(
            config.routes[0].business_hours.as_ref().unwrap().zone,
            "Europe/Berlin"
        );
        assert_eq!(config.analytics.ignore_users.len(), 2);
        assert_eq!(
            config.analytics.business_hours.unwrap().holidays,
            vec!["2026-12-25".to_owned()]
        );
        assert_eq!(config.settings["retry_schedule"].as_str(), Some("5s,1m"));
    }

    #[test]
    fn refuses_unknown_keys_with_the_line() {
        let error =
            FileConfig::parse("[[routes]]\nto = [\"x\"]\nlabel_any = [\"bug\"]\n").unwrap_err();
        assert!(error.starts_with("line "), "{error}");
        assert!(error.contains("label_any"), "{error}");
        let error = FileConfig::parse("[destinations.x]\nkind = \"slack\"\n").unwrap_err();
        assert!(error.contains("slack-webhook"), "{error}");
    }
}
