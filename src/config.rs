//! Typed configuration: every option is a flag and an environment variable (flags win), and may
//! be set in the configuration file (see `load`), which also holds the destinations, routes and
//! analytics settings. Parsed and validated once at start-up; nothing reads the environment after
//! this.

mod file;
mod insights;
mod load;
mod validate;
mod value;

pub use file::{
    AnalyticsConfig, BusinessHoursConfig, DestinationConfig, DestinationKind, FileConfig,
    FileError, RouteConfig,
};
pub use insights::InsightsConfig;
pub use load::{CONFIG_ENV, LoadError, closest, config_path, parse_layered};
pub use validate::{GITHUB_EVENTS, check as check_settings, check_event_rule};
pub use value::ConfigValue;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

/// Where the store lives; shared by every command that touches it. `Debug` hides the password.
#[derive(Clone, Args)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (embedded, one instance) or `postgres://…` (shared by several instances).
    #[arg(
        long,
        env = "HERALD_DATABASE_URL",
        default_value = "sqlite://herald.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Most connections one process opens to the database (delivery workers hold up to
    /// `HERALD_DELIVERY_CONCURRENCY` of them; the rest serve intake, claims and the API).
    #[arg(long, env = "HERALD_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// Longest a single SQL statement may run on PostgreSQL before it is cancelled.
    #[arg(long, env = "HERALD_DATABASE_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub database_statement_timeout: Duration,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field(
                "database_url",
                &crate::store::redact_url(&self.database_url),
            )
            .field("database_max_connections", &self.database_max_connections)
            .field(
                "database_statement_timeout",
                &self.database_statement_timeout,
            )
            .finish()
    }
}

/// How to reach GitHub's REST API (for `herald backfill` and `herald redeliver`).
#[derive(Debug, Clone, Args)]
pub struct GithubApiConfig {
    /// Token sent as `Authorization: Bearer`; without one GitHub allows 60 requests an hour and
    /// only public repositories.
    #[arg(long, env = "HERALD_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<SecretString>,
    /// Base URL of the API (GitHub Enterprise: `https://HOST/api/v3`; tests: a local fake).
    #[arg(
        long,
        env = "HERALD_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// How long one API request may take.
    #[arg(long, env = "HERALD_GITHUB_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub github_timeout: Duration,
}

/// The periodic `herald redeliver` pass inside `serve`: off unless a hook is configured (a
/// repository or an organisation, and the hook's id); then `HERALD_GITHUB_TOKEN` is required.
#[derive(Debug, Clone, Args)]
pub struct RedeliverConfig {
    /// The repository (OWNER/NAME) whose webhook herald asks GitHub to redeliver failures of.
    #[arg(long, env = "HERALD_REDELIVER_REPO")]
    pub redeliver_repo: Option<String>,
    /// Or the organisation whose webhook it is.
    #[arg(long, env = "HERALD_REDELIVER_ORG")]
    pub redeliver_org: Option<String>,
    /// The webhook's id (the number at the end of its settings URL; `X-GitHub-Hook-ID`).
    /// Read as text so that an empty value counts as unset, as for the other two.
    #[arg(long, env = "HERALD_REDELIVER_HOOK_ID")]
    pub redeliver_hook_id: Option<String>,
    /// How often a pass runs (the first one runs at start).
    #[arg(long, env = "HERALD_REDELIVER_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub redeliver_interval: Duration,
    /// How far back each pass looks (GitHub keeps deliveries for about 3 days).
    #[arg(long, env = "HERALD_REDELIVER_SINCE", default_value = "3d", value_parser = parse_duration)]
    pub redeliver_since: Duration,
}

/// Where the webhook secrets come from. Resolved into [`crate::github::WebhookSecrets`] at start.
#[derive(Debug, Clone, Args)]
pub struct SecretConfig {
    /// One secret, or several separated by commas while rotating.
    #[arg(long, env = "HERALD_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<SecretString>,
    /// A file holding the secret(s), one per line or separated by commas.
    #[arg(long, env = "HERALD_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Where a secret is generated (mode 0600) when none is configured.
    #[arg(long, env = "HERALD_SECRET_PATH", default_value = "herald.secret")]
    pub secret_path: PathBuf,
    #[command(flatten)]
    pub secret_manager: SecretManagerConfig,
}

impl SecretConfig {
    /// Whether any secret is configured (rather than generated or reused from `secret_path`).
    pub fn is_configured(&self) -> bool {
        self.webhook_secret.is_some()
            || self.webhook_secret_file.is_some()
            || self.secret_manager.webhook_secret_gcp.is_some()
    }
}

/// The webhook secret kept in Google Secret Manager, read at start and again periodically so a
/// rotation takes effect without a restart.
#[derive(Debug, Clone, Args)]
pub struct SecretManagerConfig {
    /// `projects/P/secrets/S` or `projects/P/secrets/S/versions/V` (default version `latest`).
    #[arg(long, env = "HERALD_WEBHOOK_SECRET_GCP")]
    pub webhook_secret_gcp: Option<String>,
    /// Secret Manager's base URL (tests point it at a local fake).
    #[arg(
        long,
        env = "HERALD_SECRET_MANAGER_API_URL",
        default_value = "https://secretmanager.googleapis.com"
    )]
    pub secret_manager_api_url: String,
    /// How often the secret is read again.
    #[arg(long, env = "HERALD_WEBHOOK_SECRET_REFRESH", default_value = "5m", value_parser = parse_duration)]
    pub webhook_secret_refresh: Duration,
    /// How long a replaced secret keeps verifying after a new version is seen.
    #[arg(long, env = "HERALD_WEBHOOK_SECRET_GRACE", default_value = "1h", value_parser = parse_duration)]
    pub webhook_secret_grace: Duration,
}

/// Where Google credentials come from, as Google's own client libraries look for them: a
/// service-account key file, else the metadata server (Cloud Run, GCE, GKE). One cached token is
/// shared by every Google client of the process.
#[derive(Debug, Clone, Args)]
pub struct GoogleConfig {
    /// A service-account key file (JSON); its `token_uri` is where tokens are asked for.
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub google_application_credentials: Option<PathBuf>,
    /// The metadata server, `host[:port]` (read by Google's libraries under the same name).
    #[arg(
        long,
        env = "GCE_METADATA_HOST",
        default_value = "metadata.google.internal"
    )]
    pub gce_metadata_host: String,
}

/// The BigQuery destination the environment describes (`HERALD_BIGQUERY_TABLE`), and the API's
/// address for every BigQuery destination.
#[derive(Debug, Clone, Args)]
pub struct BigQueryConfig {
    /// `project.dataset.table`: stream every event there (a destination named `bigquery`).
    #[arg(long, env = "HERALD_BIGQUERY_TABLE")]
    pub bigquery_table: Option<String>,
    /// BigQuery's base URL (tests point it at a local fake or the emulator).
    #[arg(
        long,
        env = "HERALD_BIGQUERY_API_URL",
        default_value = "https://bigquery.googleapis.com"
    )]
    pub bigquery_api_url: String,
}

/// Slack through a bot token (`chat.postMessage`: threads, updates, reminders). Without a
/// configuration file's `[[routes]]`, a token and a channel make the `slack` destination a bot.
#[derive(Debug, Clone, Args)]
pub struct SlackBotConfig {
    /// A Slack app's bot token (`xoxb-…`; scopes `chat:write`, and `channels:history` or
    /// `groups:history` so herald can check what it posted).
    #[arg(long, env = "HERALD_SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<SecretString>,
    /// The channel's id (`C0123456`, in the channel's details in Slack).
    #[arg(long, env = "HERALD_SLACK_CHANNEL")]
    pub slack_channel: Option<String>,
    /// Base URL of Slack's Web API (tests point it at a local fake).
    #[arg(
        long,
        env = "HERALD_SLACK_API_URL",
        default_value = "https://slack.com/api"
    )]
    pub slack_api_url: String,
    /// How often due reminders (`remind_after` on a route) are looked for.
    #[arg(long, env = "HERALD_SLACK_REMINDER_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub slack_reminder_interval: Duration,
}

/// Everything `herald serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// A configuration file (TOML): destinations, routes, analytics, and any of these settings by
    /// name; the environment and flags override it.
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The file's contents (filled by `config::parse_layered`; empty without a file).
    #[arg(skip)]
    pub file: FileConfig,
    /// Port to listen on when `HERALD_LISTEN` is not set (Cloud Run sets `PORT`).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Full listen address; overrides `PORT`.
    #[arg(long, env = "HERALD_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub secrets: SecretConfig,
    /// Also accept the legacy SHA-1 `X-Hub-Signature` header.
    #[arg(long, env = "HERALD_ALLOW_SHA1", default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allow_sha1: bool,
    /// Delays between delivery attempts (each ±20 % jitter); after the last the delivery is dead.
    #[arg(
        long,
        env = "HERALD_RETRY_SCHEDULE",
        default_value = "5s,30s,2m,10m,30m,1h,2h,4h,8h,12h"
    )]
    pub retry_schedule: RetrySchedule,
    /// Slack incoming webhook URL; without any Slack configuration notifications go to stdout.
    #[arg(long, env = "HERALD_SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<SecretString>,
    /// How long one Slack request may take before it counts as failed (and is retried).
    #[arg(long, env = "HERALD_SLACK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub slack_timeout: Duration,
    /// Most Slack messages per second (Slack allows about one per second per webhook, with bursts).
    #[arg(long, env = "HERALD_SLACK_MAX_PER_SECOND", default_value_t = 1.0)]
    pub slack_max_per_second: f64,
    #[command(flatten)]
    pub slack_bot: SlackBotConfig,
    /// Which events notify Slack: `event` or `event.action`, comma separated.
    #[arg(
        long,
        env = "HERALD_NOTIFY_EVENTS",
        default_value = "issues.opened",
        value_delimiter = ','
    )]
    pub notify_events: Vec<String>,
    /// How long a worker owns a claimed delivery before another worker may take it over.
    #[arg(long, env = "HERALD_DELIVERY_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub delivery_lease: Duration,
    /// Deliveries attempted at once by this process.
    #[arg(long, env = "HERALD_DELIVERY_CONCURRENCY", default_value_t = 8)]
    pub delivery_concurrency: usize,
    /// How often workers look for due deliveries when nothing wakes them.
    #[arg(long, env = "HERALD_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Longest the webhook waits for its event to be committed before answering 503.
    #[arg(long, env = "HERALD_STORE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub store_timeout: Duration,
    /// Most webhook body bytes held in memory at once, across all requests (in MiB); further
    /// requests wait for room before their bodies are read. At least one 25 MiB body always fits.
    #[arg(long, env = "HERALD_BODY_BUDGET_MIB", default_value_t = 256)]
    pub body_budget_mib: u32,
    /// Longest a client may take to send a request's headers; also how long an idle kept-alive
    /// connection stays open.
    #[arg(long, env = "HERALD_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Longest a request body may go without sending a byte before the request is answered 408.
    #[arg(long, env = "HERALD_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Most connections open at once; more wait to be accepted (keep it below the process's
    /// open-file limit, `ulimit -n`, minus the database pool).
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Largest the SQLite database may grow, in MiB; beyond it new events answer 503 as on a
    /// full disk, until space is freed. Unset: as large as the disk allows.
    #[arg(long, env = "HERALD_SQLITE_MAX_SIZE_MIB")]
    pub sqlite_max_size_mib: Option<u32>,
    /// Set by Cloud Run (`K_SERVICE`): there, no secret is generated (it would differ per
    /// instance and its one-time print would land in Cloud Logging).
    #[arg(long, env = "K_SERVICE", hide = true)]
    pub cloud_run_service: Option<String>,
    /// Google Cloud project, to link logs to request traces in Cloud Logging.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    pub gcp_project: Option<String>,
    /// Allow a SQLite store on Cloud Run, whose disk is memory and is lost with the instance.
    #[arg(long, env = "HERALD_ALLOW_EPHEMERAL_STORE", default_value = "false", value_parser = parse_bool,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allow_ephemeral_store: bool,
    #[command(flatten)]
    pub bigquery: BigQueryConfig,
    #[command(flatten)]
    pub google: GoogleConfig,
    /// Longest shutdown waits, in all, for requests, queued commits and delivery attempts in
    /// flight (Cloud Run kills an instance about 10 s after SIGTERM).
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", default_value = "8s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Forget finished deliveries and raw event payloads older than this (`90d`; at least a
    /// day). The issue lifecycle tables the metrics read are kept. Unset: keep everything.
    #[arg(long, env = "HERALD_RETENTION", value_parser = parse_retention)]
    pub retention: Option<Duration>,
    /// Bearer token that `/api/*` requires when set (`Authorization: Bearer <token>`).
    #[arg(long, env = "HERALD_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,
    #[command(flatten)]
    pub github: GithubApiConfig,
    #[command(flatten)]
    pub redeliver: RedeliverConfig,
    #[command(flatten)]
    pub insights: InsightsConfig,
}

impl ServeConfig {
    /// The address to bind: `HERALD_LISTEN`, else all interfaces on `PORT`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.port)))
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Text,
    /// One JSON object per line in Cloud Logging's format.
    Json,
}

/// Delays between delivery attempts; its length is the number of retries after the first try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl FromStr for RetrySchedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(delays))
    }
}

/// A boolean as people write it: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a boolean: use true or false (1/0, yes/no, on/off)"
        )),
    }
}

/// Where to listen: `IP:PORT`; `localhost:PORT` means `127.0.0.1:PORT` and `:PORT` every
/// interface. Other host names are not resolved.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let port = |port: &str| {
        port.parse::<u16>()
            .map_err(|_| format!("{port:?} is not a port number (0-65535)"))
    };
    if let Some(rest) = text.strip_prefix("localhost:") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port(rest)?)));
    }
    if let Some(rest) = text.strip_prefix(':') {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port(rest)?)));
    }
    Err(format!(
        "{text:?} is not an address to listen on: use IP:PORT, e.g. 0.0.0.0:8080 (every interface) \
         or 127.0.0.1:8080 (this machine only)"
    ))
}

/// A retention: a duration of at least a day (`90d`, `12w`).
pub fn parse_retention(text: &str) -> Result<Duration, String> {
    let retention = parse_duration(text)?;
    if retention < Duration::from_secs(86_400) {
        return Err(format!(
            "{text:?} is shorter than a day; GitHub redelivers for days, and the outbox needs time to deliver"
        ));
    }
    Ok(retention)
}

/// Parses `500ms`, `5s`, `2m`, `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|error| {
        let error = error.to_string();
        let cause = error.split(", supported units").next().unwrap_or(&error);
        format!("not a duration ({cause}); durations look like 500ms, 30s, 5m, 2h or 1d")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_retry_schedule() {
        let schedule: RetrySchedule = "5s,30s,2m,10m,30m,1h,2h,4h,8h,12h".parse().unwrap();
        assert_eq!(schedule.0.len(), 10);
        assert_eq!(schedule.0[2], Duration::from_secs(120));
        assert_eq!(schedule.0[9], Duration::from_secs(12 * 3600));
    }

    #[test]
    fn parses_sub_second_and_empty_schedules() {
        let schedule: RetrySchedule = "100ms, 0s".parse().unwrap();
        assert_eq!(schedule.0, vec![Duration::from_millis(100), Duration::ZERO]);
        assert_eq!(
            "".parse::<RetrySchedule>().unwrap().0,
            Vec::<Duration>::new()
        );
    }

    #[test]
    fn rejects_nonsense_durations() {
        assert!("5 parsecs".parse::<RetrySchedule>().is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn parses_booleans_and_listen_addresses_as_people_write_them() {
        for (text, expected) in [
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("Off", false),
            ("0", false),
        ] {
            assert_eq!(parse_bool(text), Ok(expected), "{text}");
        }
        assert!(
            parse_bool("maybe")
                .unwrap_err()
                .contains("use true or false")
        );
        assert_eq!(
            parse_listen("localhost:9101"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9101)))
        );
        assert_eq!(
            parse_listen(":80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        assert_eq!(
            parse_listen("[::1]:8080"),
            Ok("[::1]:8080".parse().unwrap())
        );
        assert!(
            parse_listen("example.com:80")
                .unwrap_err()
                .contains("use IP:PORT")
        );
        assert!(
            parse_listen("localhost:http")
                .unwrap_err()
                .contains("not a port number")
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = SecretConfig {
            webhook_secret: Some(SecretString::from("hunter2")),
            webhook_secret_file: None,
            secret_path: "herald.secret".into(),
            secret_manager: SecretManagerConfig {
                webhook_secret_gcp: None,
                secret_manager_api_url: "http://127.0.0.1:9".into(),
                webhook_secret_refresh: Duration::from_secs(300),
                webhook_secret_grace: Duration::from_secs(3600),
            },
        };
        assert!(!format!("{config:?}").contains("hunter2"));
        let github = GithubApiConfig {
            github_token: Some(SecretString::from("ghp_hunter2")),
            github_api_url: "https://api.github.com".into(),
            github_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{github:?}").contains("hunter2"));
        let database = DatabaseConfig {
            database_url: "postgres://herald:hunter2@db/herald".into(),
            database_max_connections: 1,
            database_statement_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{database:?}").contains("hunter2"));
        let slack = SlackBotConfig {
            slack_bot_token: Some(SecretString::from("xoxb-hunter2")),
            slack_channel: Some("C1".into()),
            slack_api_url: "https://slack.com/api".into(),
            slack_reminder_interval: Duration::from_secs(60),
        };
        assert!(!format!("{slack:?}").contains("hunter2"));
    }
}
