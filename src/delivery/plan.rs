//! The delivery plan: the destinations this instance delivers to and the routing table, resolved
//! once at start-up from the configuration file and the environment, with every problem reported
//! by the key that holds it.
//!
//! Without `[[routes]]` in a file, today's environment settings describe one notification
//! destination (`slack`: a bot for `HERALD_SLACK_BOT_TOKEN` + `HERALD_SLACK_CHANNEL`, a webhook
//! for `HERALD_SLACK_WEBHOOK_URL`; else `stdout`) and one route
//! (`HERALD_NOTIFY_EVENTS` to it). The `analytics` destination is built in and gets every
//! `issues` and `issue_comment` event.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigValue, DestinationConfig, DestinationKind, ServeConfig, parse_duration};
use crate::gcp::TableRef;
use crate::routes::{BuiltIn, EventRule, Route, Router};

/// The name of the built-in analytics destination.
pub const ANALYTICS: &str = "analytics";
/// The name of the notification destination today's environment settings describe.
pub const LEGACY_SLACK: &str = "slack";
/// The name of the notification destination used when no Slack is configured.
pub const STDOUT: &str = "stdout";
/// The name of the BigQuery destination `HERALD_BIGQUERY_TABLE` describes.
pub const BIGQUERY: &str = "bigquery";
/// How long one BigQuery request may take by default (a request carries up to 9 MB).
const BIGQUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// BigQuery requests in flight at once by default: each carries up to 500 rows, so two keep up
/// with any webhook stream without holding thousands of payloads in memory.
const BIGQUERY_CONCURRENCY: usize = 2;
/// Bursts Slack tolerates above its steady rate.
const SLACK_BURST: u32 = 5;

/// One destination, resolved.
#[derive(Debug, Clone)]
pub struct Destination {
    pub name: Arc<str>,
    pub target: Target,
    pub limits: LaneLimits,
}

/// What a destination sends to, with its secrets resolved.
#[derive(Clone)]
pub enum Target {
    SlackWebhook {
        url: SecretString,
        timeout: Duration,
    },
    /// A Slack app's bot token and channel (`chat.postMessage`, threads).
    SlackBot {
        token: SecretString,
        channel: String,
        api_url: String,
        timeout: Duration,
    },
    Stdout,
    Analytics,
    Bigquery {
        table: TableRef,
        api_url: String,
        timeout: Duration,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SlackWebhook { timeout, .. } => f
                .debug_struct("SlackWebhook")
                .field("url", &"[redacted]")
                .field("timeout", timeout)
                .finish(),
            Self::SlackBot {
                channel,
                api_url,
                timeout,
                ..
            } => f
                .debug_struct("SlackBot")
                .field("token", &"[redacted]")
                .field("channel", channel)
                .field("api_url", api_url)
                .field("timeout", timeout)
                .finish(),
            Self::Stdout => f.write_str("Stdout"),
            Self::Analytics => f.write_str("Analytics"),
            Self::Bigquery {
                table,
                api_url,
                timeout,
            } => f
                .debug_struct("Bigquery")
                .field("table", &table.to_string())
                .field("api_url", api_url)
                .field("timeout", timeout)
                .finish(),
        }
    }
}

impl Target {
    /// The kind, as configured (`slack-webhook`, …; `analytics` for the built-in one).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SlackWebhook { .. } => DestinationKind::SlackWebhook.as_str(),
            Self::SlackBot { .. } => DestinationKind::SlackBot.as_str(),
            Self::Stdout => DestinationKind::Stdout.as_str(),
            Self::Analytics => ANALYTICS,
            Self::Bigquery { .. } => DestinationKind::Bigquery.as_str(),
        }
    }
}

impl Target {
    /// Posts one message written by herald (the digest, …) to a Slack destination; other kinds
    /// cannot take one.
    pub async fn post_plain(
        &self,
        message: &crate::sinks::slack::SlackMessage,
    ) -> anyhow::Result<()> {
        match self {
            Self::SlackBot {
                token,
                channel,
                api_url,
                timeout,
            } => crate::sinks::slack::post_with_bot(
                api_url,
                token.clone(),
                channel,
                *timeout,
                message,
            )
            .await
            .map(drop),
            Self::SlackWebhook { url, timeout } => {
                crate::sinks::slack::post_with_webhook(url, *timeout, message).await
            }
            other => anyhow::bail!("a {} destination cannot post a message", other.kind()),
        }
    }
}

/// How a destination's lane may use it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneLimits {
    /// Requests in flight at once, per instance.
    pub concurrency: usize,
    /// Rows per request, for sinks that take batches.
    pub batch_size: usize,
    /// Requests per second, shared by every instance on PostgreSQL; 0 = no limit.
    pub max_per_second: f64,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
}

/// Destinations and routes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub destinations: Vec<Destination>,
    pub router: Arc<Router>,
}

impl Plan {
    pub fn destination(&self, name: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| &*d.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.destinations.iter().map(|d| &d.name)
    }
}

/// Every problem found, one message each, naming the key or variable to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<String>);

impl std::fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the configuration is not valid:")?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

/// Resolves the plan from `config` (its file included). `env` reads the environment for
/// `${VAR}` references.
pub fn plan(
    config: &ServeConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, PlanErrors> {
    let mut problems = Vec::new();
    let mut destinations = Vec::new();
    let file = &config.file;
    let default_concurrency = config.delivery_concurrency.max(1);
    for (name, destination) in &file.destinations {
        if name == ANALYTICS {
            problems.push(format!(
                "destinations.{ANALYTICS}: the name is taken by the built-in analytics destination"
            ));
            continue;
        }
        if !valid_name(name) {
            problems.push(format!(
                "destinations.{name}: a destination name may use letters, digits, `-` and `_` (at most 64)"
            ));
            continue;
        }
        match resolve(name, destination, default_concurrency, config, env) {
            Ok(resolved) => destinations.push(resolved),
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    let mut routes = Vec::new();
    for (index, route) in file.routes.iter().enumerate() {
        match check_route(index, route) {
            Ok(route) => routes.push(route),
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    add_legacy(
        config,
        default_concurrency,
        &mut destinations,
        &mut routes,
        &mut problems,
    );
    add_bigquery_from_env(
        config,
        default_concurrency,
        &mut destinations,
        &mut problems,
    );
    destinations.push(Destination {
        name: Arc::from(ANALYTICS),
        target: Target::Analytics,
        limits: LaneLimits {
            concurrency: 1,
            batch_size: crate::sinks::AnalyticsSink::BATCH,
            max_per_second: 0.0,
            burst: 1,
        },
    });
    let built_in = built_ins(&destinations, &routes);
    let router = Router { routes, built_in };
    // Destinations whose settings failed are still known by name: their own errors say enough.
    let known: Vec<(String, DestinationKind)> = destinations
        .iter()
        .filter_map(|d| kind_of(&d.target).map(|kind| (d.name.to_string(), kind)))
        .chain(
            file.destinations
                .iter()
                .map(|(name, destination)| (name.clone(), destination.kind)),
        )
        .collect();
    if let Err(error) = router.check_destinations(&known) {
        problems.push(error);
    }
    problems.extend(crate::sinks::slack::routing::check_routes(
        &router.routes,
        &known,
    ));
    if problems.is_empty() {
        Ok(Plan {
            destinations,
            router: Arc::new(router),
        })
    } else {
        Err(PlanErrors(problems))
    }
}

/// Without `[[routes]]` in the file, today's environment settings describe one notification
/// destination and its route; with routes, those variables must be referenced from a destination.
fn add_legacy(
    config: &ServeConfig,
    concurrency: usize,
    destinations: &mut Vec<Destination>,
    routes: &mut Vec<Route>,
    problems: &mut Vec<String>,
) {
    if config.file.routes.is_empty() {
        match legacy(config, concurrency) {
            Ok((destination, route)) => {
                if destinations.iter().any(|d| d.name == destination.name) {
                    problems.push(format!(
                        "destinations.{}: without [[routes]] the environment describes the `{}` \
                         destination; add a [[routes]] entry, or rename the destination",
                        destination.name, destination.name
                    ));
                } else {
                    destinations.push(destination);
                    routes.extend(route);
                }
            }
            Err(error) => problems.push(error),
        }
    } else if config.slack_webhook_url.is_some() && !referenced(config, "HERALD_SLACK_WEBHOOK_URL")
    {
        problems.push(
            "HERALD_SLACK_WEBHOOK_URL is set, but the configuration file has [[routes]]: reference it \
             from a destination instead (`url = \"${HERALD_SLACK_WEBHOOK_URL}\"`) and route to it"
                .to_owned(),
        );
    } else if config.slack_bot.slack_bot_token.is_some()
        && !referenced(config, "HERALD_SLACK_BOT_TOKEN")
    {
        problems.push(
            "HERALD_SLACK_BOT_TOKEN is set, but the configuration file has [[routes]]: reference it \
             from a destination instead (`kind = \"slack-bot\"`, `token = \"${HERALD_SLACK_BOT_TOKEN}\"`, \
             `channel = \"C…\"`) and route to it"
                .to_owned(),
        );
    }
}

/// Whether a destination of the file takes its URL or token from the environment variable `name`
/// (`url = "${HERALD_SLACK_WEBHOOK_URL}"`), as the refusal above advises.
fn referenced(config: &ServeConfig, name: &str) -> bool {
    let reference = format!("${{{name}}}");
    config.file.destinations.values().any(|destination| {
        [destination.url.as_ref(), destination.token.as_ref()]
            .into_iter()
            .flatten()
            .any(|value| value.as_written().trim() == reference)
    })
}

/// A route from the file, with its event names checked.
fn check_route(index: usize, config: &crate::config::RouteConfig) -> Result<Route, Vec<String>> {
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| format!("routes[{index}]"));
    let mut problems: Vec<String> = config
        .events
        .iter()
        .flatten()
        .filter_map(|rule| crate::config::check_event_rule(rule).err())
        .map(|error| format!("{name}: events: {error}"))
        .collect();
    match Route::new(index, config) {
        Ok(route) if problems.is_empty() => Ok(route),
        Ok(_) => Err(problems),
        Err(error) => {
            problems.push(error);
            Err(problems)
        }
    }
}

fn kind_of(target: &Target) -> Option<DestinationKind> {
    match target {
        Target::SlackWebhook { .. } => Some(DestinationKind::SlackWebhook),
        Target::SlackBot { .. } => Some(DestinationKind::SlackBot),
        Target::Stdout => Some(DestinationKind::Stdout),
        Target::Analytics => None,
        Target::Bigquery { .. } => Some(DestinationKind::Bigquery),
    }
}

/// Destinations that get events whatever the routes say: analytics (issues and comments), and
/// every BigQuery destination no route names (the warehouse keeps everything).
fn built_ins(destinations: &[Destination], routes: &[Route]) -> Vec<BuiltIn> {
    let mut built_in = vec![BuiltIn {
        destination: Arc::from(ANALYTICS),
        events: vec![
            EventRule::parse("issues"),
            EventRule::parse("issue_comment"),
        ],
    }];
    for destination in destinations {
        if matches!(destination.target, Target::Bigquery { .. })
            && !routes
                .iter()
                .any(|route| route.to.contains(&destination.name))
        {
            built_in.push(BuiltIn {
                destination: Arc::clone(&destination.name),
                events: Vec::new(),
            });
        }
    }
    built_in
}

/// Adds the destination `HERALD_BIGQUERY_TABLE` describes, when it is set.
fn add_bigquery_from_env(
    config: &ServeConfig,
    concurrency: usize,
    destinations: &mut Vec<Destination>,
    problems: &mut Vec<String>,
) {
    match bigquery_from_env(config, concurrency) {
        Ok(None) => {}
        Ok(Some(destination)) => {
            if destinations.iter().any(|d| d.name == destination.name) {
                problems.push(format!(
                    "destinations.{BIGQUERY}: HERALD_BIGQUERY_TABLE describes the `{BIGQUERY}` \
                     destination too; unset it, or rename the destination"
                ));
            } else {
                destinations.push(destination);
            }
        }
        Err(error) => problems.push(error),
    }
}

/// The destination `HERALD_BIGQUERY_TABLE` describes, if it is set.
fn bigquery_from_env(
    config: &ServeConfig,
    concurrency: usize,
) -> Result<Option<Destination>, String> {
    let Some(table) = config
        .bigquery
        .bigquery_table
        .as_deref()
        .filter(|table| !table.trim().is_empty())
    else {
        return Ok(None);
    };
    let table = table
        .parse::<TableRef>()
        .map_err(|error| format!("HERALD_BIGQUERY_TABLE: {error}"))?;
    check_url(&config.bigquery.bigquery_api_url)
        .map_err(|error| format!("HERALD_BIGQUERY_API_URL: {error}"))?;
    Ok(Some(Destination {
        name: Arc::from(BIGQUERY),
        target: Target::Bigquery {
            table,
            api_url: config.bigquery.bigquery_api_url.clone(),
            timeout: BIGQUERY_TIMEOUT,
        },
        limits: LaneLimits {
            concurrency: concurrency.min(BIGQUERY_CONCURRENCY),
            batch_size: crate::sinks::BIGQUERY_MAX_ROWS,
            max_per_second: 0.0,
            burst: 1,
        },
    }))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The destination and route today's environment settings describe (no route when
/// `HERALD_NOTIFY_EVENTS` is empty: notifications are off, and rows queued before still go out).
fn legacy(
    config: &ServeConfig,
    concurrency: usize,
) -> Result<(Destination, Option<Route>), String> {
    let events: Vec<String> = config
        .notify_events
        .iter()
        .map(|event| event.trim().to_owned())
        .filter(|event| !event.is_empty())
        .collect();
    let bot = &config.slack_bot;
    let destination = match (
        &config.slack_webhook_url,
        &bot.slack_bot_token,
        &bot.slack_channel,
    ) {
        (Some(_), Some(_), _) => {
            return Err(
                "HERALD_SLACK_WEBHOOK_URL and HERALD_SLACK_BOT_TOKEN are both set: choose one \
                 (the bot token gives threads, updates and reminders)"
                    .to_owned(),
            );
        }
        (None, Some(_), None) => {
            return Err(
                "HERALD_SLACK_BOT_TOKEN is set without HERALD_SLACK_CHANNEL: set the channel's id \
                 (C0123456, in the channel's details in Slack)"
                    .to_owned(),
            );
        }
        (None, None, Some(_)) => {
            return Err(
                "HERALD_SLACK_CHANNEL is set without HERALD_SLACK_BOT_TOKEN: set the bot token \
                 (xoxb-…), or unset the channel"
                    .to_owned(),
            );
        }
        (None, Some(token), Some(channel)) => legacy_bot(config, token, channel, concurrency)?,
        (Some(url), None, _) => {
            check_url(url.expose_secret())
                .map_err(|error| format!("HERALD_SLACK_WEBHOOK_URL: {error}"))?;
            Destination {
                name: Arc::from(LEGACY_SLACK),
                target: Target::SlackWebhook {
                    url: url.clone(),
                    timeout: config.slack_timeout,
                },
                limits: LaneLimits {
                    concurrency,
                    batch_size: 1,
                    max_per_second: config.slack_max_per_second,
                    burst: SLACK_BURST,
                },
            }
        }
        (None, None, None) => Destination {
            name: Arc::from(STDOUT),
            target: Target::Stdout,
            limits: LaneLimits {
                concurrency: 1,
                batch_size: 64,
                max_per_second: 0.0,
                burst: 1,
            },
        },
    };
    if events.is_empty() {
        return Ok((destination, None));
    }
    let route = crate::config::RouteConfig {
        name: Some("HERALD_NOTIFY_EVENTS".to_owned()),
        events: Some(events),
        // Today's behaviour: every author, bots included.
        include_bots: true,
        to: vec![destination.name.to_string()],
        ..crate::config::RouteConfig::default()
    };
    let route = Route::new(0, &route)?;
    Ok((destination, Some(route)))
}

/// The `slack` destination as a bot, from `HERALD_SLACK_BOT_TOKEN` and `HERALD_SLACK_CHANNEL`.
fn legacy_bot(
    config: &ServeConfig,
    token: &SecretString,
    channel: &str,
    concurrency: usize,
) -> Result<Destination, String> {
    let bot = &config.slack_bot;
    let mut problems = Vec::new();
    check_bot(
        "HERALD_SLACK_BOT_TOKEN",
        token,
        "HERALD_SLACK_CHANNEL",
        channel,
        &mut problems,
    );
    if let Err(error) = check_url(&bot.slack_api_url) {
        problems.push(format!("HERALD_SLACK_API_URL: {error}"));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(Destination {
        name: Arc::from(LEGACY_SLACK),
        target: Target::SlackBot {
            token: token.clone(),
            channel: channel.trim().to_owned(),
            api_url: bot.slack_api_url.clone(),
            timeout: config.slack_timeout,
        },
        limits: LaneLimits {
            concurrency,
            batch_size: 1,
            max_per_second: config.slack_max_per_second,
            burst: SLACK_BURST,
        },
    })
}

fn resolve(
    name: &str,
    config: &DestinationConfig,
    default_concurrency: usize,
    serve: &ServeConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Destination, Vec<String>> {
    let key = |field: &str| format!("destinations.{name}.{field}");
    let mut problems = Vec::new();
    let secret = |field: &str, value: Option<&ConfigValue>, problems: &mut Vec<String>| match value
    {
        None => {
            problems.push(format!(
                "{}: required for kind {}",
                key(field),
                config.kind.as_str()
            ));
            None
        }
        Some(value) => match value.resolve(env) {
            Ok(secret) => Some(secret),
            Err(error) => {
                problems.push(format!("{}: {error}", key(field)));
                None
            }
        },
    };
    let timeout = parse_timeout(config.timeout.as_deref(), &key("timeout"), &mut problems);
    let (target, default_rate, default_batch, max_batch) = match config.kind {
        DestinationKind::SlackWebhook => {
            let url = secret("url", config.url.as_ref(), &mut problems);
            if let Some(url) = &url
                && let Err(error) = check_url(url.expose_secret())
            {
                problems.push(format!("{}: {error}", key("url")));
            }
            let url = url.unwrap_or_else(|| SecretString::from(String::new()));
            (Target::SlackWebhook { url, timeout }, 1.0, 1, 1)
        }
        DestinationKind::Stdout => (Target::Stdout, 0.0, 64, 1024),
        DestinationKind::Bigquery => {
            let max = crate::sinks::BIGQUERY_MAX_ROWS;
            let target = bigquery_target(config, serve, timeout, &key, &mut problems)
                .unwrap_or(Target::Stdout);
            (target, 0.0, max, max)
        }
        DestinationKind::SlackBot => {
            let token = secret("token", config.token.as_ref(), &mut problems);
            (
                resolve_bot(config, token, timeout, &key, &mut problems),
                1.0,
                1,
                1,
            )
        }
    };
    let default_concurrency = if config.kind == DestinationKind::Bigquery {
        default_concurrency.min(BIGQUERY_CONCURRENCY)
    } else {
        default_concurrency
    };
    let limits = LaneLimits {
        concurrency: config.concurrency.unwrap_or(default_concurrency),
        batch_size: config.batch_size.unwrap_or(default_batch),
        max_per_second: config.max_per_second.unwrap_or(default_rate),
        burst: if matches!(
            config.kind,
            DestinationKind::SlackWebhook | DestinationKind::SlackBot
        ) {
            SLACK_BURST
        } else {
            1
        },
    };
    check_limits(&limits, max_batch, config.kind, &key, &mut problems);
    if matches!(
        config.kind,
        DestinationKind::SlackWebhook | DestinationKind::SlackBot
    ) && let Some(problem) = lease_problem(&limits, timeout, serve.delivery_lease, &key)
    {
        problems.push(problem);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Destination {
        name: Arc::from(name),
        target,
        limits,
    })
}

/// A Slack destination's sends must end inside the lease that covers them, or another instance
/// could take over (and dead-letter as interrupted) rows still being sent. A rate-limited lane
/// records each request as it leaves, so one timeout must fit; an unlimited one records a whole
/// round up front, whose requests leave in up to `ROUNDS_AHEAD` waves.
fn lease_problem(
    limits: &LaneLimits,
    timeout: Duration,
    lease: Duration,
    key: &dyn Fn(&str) -> String,
) -> Option<String> {
    let waves = if limits.max_per_second > 0.0 {
        1
    } else {
        super::ROUNDS_AHEAD
    };
    let needed = timeout.saturating_mul(u32::try_from(waves).unwrap_or(u32::MAX));
    (lease <= needed).then(|| {
        format!(
            "{} ({}){}: HERALD_DELIVERY_LEASE ({}) must be longer{}, or another instance could \
             take over messages still being sent; lower the timeout or raise the lease",
            key("timeout"),
            humantime::format_duration(timeout),
            if waves > 1 {
                format!(" with max_per_second = 0 (up to {waves} waves of requests per round)")
            } else {
                String::new()
            },
            humantime::format_duration(lease),
            if waves > 1 {
                format!(" than {}", humantime::format_duration(needed))
            } else {
                String::new()
            },
        )
    })
}

/// A `kind = "bigquery"` destination's table, API and timeout (30 s when not set).
fn bigquery_target(
    config: &DestinationConfig,
    serve: &ServeConfig,
    timeout: Duration,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) -> Option<Target> {
    let table = match config.table.as_deref() {
        None => {
            problems.push(format!("{}: required for kind bigquery", key("table")));
            None
        }
        Some(text) => text
            .parse::<TableRef>()
            .map_err(|error| problems.push(format!("{}: {error}", key("table"))))
            .ok(),
    };
    let api_url = config
        .api_url
        .clone()
        .unwrap_or_else(|| serve.bigquery.bigquery_api_url.clone());
    if let Err(error) = check_url(&api_url) {
        problems.push(format!("{}: {error}", key("api_url")));
    }
    let timeout = if config.timeout.is_some() {
        timeout
    } else {
        BIGQUERY_TIMEOUT
    };
    Some(Target::Bigquery {
        table: table?,
        api_url,
        timeout,
    })
}

/// A `slack-bot` destination's target; problems are named by key.
fn resolve_bot(
    config: &DestinationConfig,
    token: Option<SecretString>,
    timeout: Duration,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) -> Target {
    let channel = config.channel.clone().unwrap_or_default();
    if config.channel.is_none() {
        problems.push(format!(
            "{}: required for kind slack-bot (the channel's id, C0123456)",
            key("channel")
        ));
    }
    let token = token.unwrap_or_else(|| SecretString::from(String::new()));
    if config.channel.is_some() && !token.expose_secret().is_empty() {
        check_bot(&key("token"), &token, &key("channel"), &channel, problems);
    }
    let api_url = config
        .api_url
        .clone()
        .unwrap_or_else(|| DEFAULT_SLACK_API.to_owned());
    if let Err(error) = check_url(&api_url) {
        problems.push(format!("{}: {error}", key("api_url")));
    }
    Target::SlackBot {
        token,
        channel: channel.trim().to_owned(),
        api_url,
        timeout,
    }
}

/// Slack's Web API.
const DEFAULT_SLACK_API: &str = "https://slack.com/api";

/// A bot token that looks like one and a channel id (names cannot be read back, so herald could
/// not check what it posted).
fn check_bot(
    token_key: &str,
    token: &SecretString,
    channel_key: &str,
    channel: &str,
    problems: &mut Vec<String>,
) {
    let token = token.expose_secret().trim();
    if !token.starts_with("xox") {
        problems.push(format!(
            "{token_key}: expected a Slack bot token (xoxb-…, under OAuth & Permissions in the app's settings)"
        ));
    }
    let channel = channel.trim();
    let is_id = channel.len() >= 2
        && matches!(channel.as_bytes()[0], b'C' | b'G' | b'D')
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !is_id {
        problems.push(format!(
            "{channel_key}: {channel:?} is not a channel id; use the id (C0123456, at the bottom of \
             the channel's details in Slack), not its name"
        ));
    }
}

/// A request timeout between 100 ms and 5 minutes (10 s when absent).
fn parse_timeout(text: Option<&str>, key: &str, problems: &mut Vec<String>) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(10);
    let Some(text) = text else { return DEFAULT };
    match parse_duration(text) {
        Ok(timeout)
            if (Duration::from_millis(100)..=Duration::from_secs(300)).contains(&timeout) =>
        {
            timeout
        }
        Ok(_) => {
            problems.push(format!("{key}: {text:?} must be between 100ms and 5m"));
            DEFAULT
        }
        Err(error) => {
            problems.push(format!("{key}: {error}"));
            DEFAULT
        }
    }
}

fn check_limits(
    limits: &LaneLimits,
    max_batch: usize,
    kind: DestinationKind,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) {
    let rate = limits.max_per_second;
    if !rate.is_finite() || !(0.0..=10_000.0).contains(&rate) {
        problems.push(format!(
            "{}: {rate} must be between 0 (no limit) and 10000",
            key("max_per_second")
        ));
    }
    if !(1..=1024).contains(&limits.concurrency) {
        problems.push(format!(
            "{}: {} must be between 1 and 1024",
            key("concurrency"),
            limits.concurrency
        ));
    }
    if !(1..=max_batch).contains(&limits.batch_size) {
        problems.push(format!(
            "{}: {} must be between 1 and {max_batch} for kind {}",
            key("batch_size"),
            limits.batch_size,
            kind.as_str()
        ));
    }
}

/// An `http(s)://` URL with a host.
pub fn check_url(text: &str) -> Result<(), String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(url) => Err(format!(
            "expected an http:// or https:// URL, not a {}: URL",
            url.scheme()
        )),
        Err(error) => Err(format!(
            "not a URL ({error}); expected https://… (for Slack: https://hooks.slack.com/services/…)"
        )),
    }
}
