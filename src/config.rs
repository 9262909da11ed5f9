//! Typed configuration: every option is a flag and an environment variable (flags win), parsed
//! and validated once at start-up. Nothing reads the environment after this.

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

/// How to reach GitHub's REST API (for `herald backfill`).
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
}

/// Everything `herald serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Port to listen on when `HERALD_LISTEN` is not set (Cloud Run sets `PORT`).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Full listen address; overrides `PORT`.
    #[arg(long, env = "HERALD_LISTEN")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub secrets: SecretConfig,
    /// Also accept the legacy SHA-1 `X-Hub-Signature` header.
    #[arg(long, env = "HERALD_ALLOW_SHA1", default_value_t = false)]
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
    /// Longest shutdown waits, in all, for requests, queued commits and delivery attempts in
    /// flight (Cloud Run kills an instance about 10 s after SIGTERM).
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", default_value = "8s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Bearer token that `/api/*` requires when set (`Authorization: Bearer <token>`).
    #[arg(long, env = "HERALD_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,
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

/// Parses `500ms`, `5s`, `2m`, `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|error| format!("invalid duration {text:?}: {error}"))
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
    fn debug_output_hides_secrets() {
        let config = SecretConfig {
            webhook_secret: Some(SecretString::from("hunter2")),
            webhook_secret_file: None,
            secret_path: "herald.secret".into(),
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
    }
}
