//! Opening the store from its URL, with each backend's durability and timeout settings, and
//! applying migrations.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::Store;
use crate::config::DatabaseConfig;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Connects, checks the database answers, and applies pending migrations.
    ///
    /// Errors name the database without its password.
    pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        Self::connect_limited(config, None).await
    }

    /// [`Store::connect`], with a SQLite database that may grow to at most `sqlite_max_mib`
    /// MiB (SQLite's `max_page_count`): beyond it writes fail as on a full disk. Ignored on
    /// PostgreSQL.
    pub async fn connect_limited(
        config: &DatabaseConfig,
        sqlite_max_mib: Option<u32>,
    ) -> anyhow::Result<Self> {
        let url = config.database_url.as_str();
        let shown = redact_url(url);
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("invalid SQLite URL {shown}"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL for bookkeeping (leases, outcomes): in WAL mode it survives a crash of
                // the process, and after power loss the worst case is one repeated attempt.
                // Appending events switches its connection to FULL (see `append_events`), so a
                // 2xx never acknowledges an event that power loss could take back.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Checkpoints run from a background task (see `checkpoint_forever`), not inside
                // whichever commit crosses the threshold: that commit is a webhook's answer.
                .pragma("wal_autocheckpoint", "0")
                // 32 MiB of page cache per connection (SQLite's default is 2 MiB): the report
                // over 100k issues reads the comments index from cache instead of disk each time.
                .pragma("cache_size", "-32768");
            let options = match sqlite_max_mib {
                // The default page size is 4 KiB: 256 pages a MiB.
                Some(mib) => {
                    options.pragma("max_page_count", (u64::from(mib.max(1)) * 256).to_string())
                }
                None => options,
            };
            let filename = options.get_filename().to_owned();
            let pool = SqlitePoolOptions::new()
                .max_connections(config.database_max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .with_context(|| format!("cannot open the SQLite database {shown}"))?;
            let gate = super::WriteGate::default();
            let pages = sqlite_max_mib.map(|mib| u64::from(mib.max(1)) * 256);
            let direct = super::direct::Direct::open(&filename, pages, gate.clone())
                .with_context(|| format!("cannot open the SQLite database {shown}"))?;
            Self::Sqlite(pool, gate, direct)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let timeout_ms = config.database_statement_timeout.as_millis().to_string();
            let options = PgConnectOptions::from_str(&with_socket_host(url))
                .map_err(|_| anyhow::anyhow!("invalid PostgreSQL URL {shown}"))?
                .options([("statement_timeout", timeout_ms.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(config.database_max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "cannot connect to PostgreSQL at {shown}: {}",
                        describe(&error)
                    )
                })?;
            Self::Postgres(pool)
        } else {
            bail!("HERALD_DATABASE_URL must start with sqlite:// or postgres://, not {shown}");
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this binary knows and the database lacks.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(pool, ..) => SQLITE_MIGRATIONS.run(pool).await,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
        .context("applying database migrations")
    }
}

/// The error's own words, which for connection failures never include the URL.
fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// The URL with any password replaced, fit for logs and error messages.
/// Cloud SQL's Unix-socket URL (`postgres://USER:PASS@/DB?host=/cloudsql/PROJECT:REGION:INSTANCE`)
/// has credentials but no host, which the URL parser refuses; a placeholder host makes it
/// parse, and the `host` parameter (a socket directory) is what the driver connects to.
fn with_socket_host(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.ends_with('@') && path.contains("host=") {
        format!("{scheme}://{authority}localhost{path}").into()
    } else {
        url.into()
    }
}

pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base
        .split_once("://")
        .and_then(|(scheme, rest)| Some((scheme, rest.rsplit_once('@')?)))
    {
        Some((scheme, (credentials, host))) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:[redacted]@{host}"),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    let Some(query) = query else { return base };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_sql_socket_urls_get_a_placeholder_host() {
        assert_eq!(
            with_socket_host("postgres://app:pw@/herald?host=/cloudsql/p:europe-west1:db"),
            "postgres://app:pw@localhost/herald?host=/cloudsql/p:europe-west1:db"
        );
        for unchanged in [
            "postgres://app:pw@db:5432/herald",
            "postgres://app@/herald",
            "sqlite://herald.db",
        ] {
            assert_eq!(with_socket_host(unchanged), unchanged);
        }
        assert!(
            PgConnectOptions::from_str(&with_socket_host(
                "postgres://app:pw@/herald?host=/cloudsql/p:r:i"
            ))
            .is_ok()
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db:5432/herald"),
            "postgres://app:[redacted]@db:5432/herald"
        );
        assert_eq!(
            redact_url("postgres://app@db/herald"),
            "postgres://app@db/herald"
        );
        assert_eq!(redact_url("sqlite://herald.db"), "sqlite://herald.db");
        assert_eq!(
            redact_url("postgres://db/herald?user=app&password=s3cret&sslmode=require"),
            "postgres://db/herald?user=app&password=[redacted]&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app:pw@db/herald?password=s3cret"),
            "postgres://app:[redacted]@db/herald?password=[redacted]"
        );
    }

    #[tokio::test]
    async fn rejects_unknown_schemes_without_echoing_secrets() {
        let config = DatabaseConfig {
            database_url: "mysql://root:topsecret@localhost/db".into(),
            database_max_connections: 2,
            database_statement_timeout: Duration::from_secs(1),
        };
        let error = format!("{:#}", Store::connect(&config).await.unwrap_err());
        assert!(error.contains("must start with"), "{error}");
        assert!(!error.contains("topsecret"), "{error}");
    }
}
