//! Opening the store from its URL, with each backend's durability and timeout settings. `serve`
//! and `migrate` create the database and apply migrations ([`Store::connect`]); every other
//! command opens an existing database with exactly this herald's schema and changes nothing
//! about it ([`Store::open_existing`]). Failures are one line: the cause, once, and what to do.

mod postgres_errors;
mod schema;
mod sqlite_path;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::Store;
use crate::config::DatabaseConfig;
use postgres_errors::{Server, explain, no_answer};
use schema::{SchemaProblem, is_missing_table, verdict};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Longest herald waits for PostgreSQL's first answer before saying it got none (the pool would
/// retry for its whole acquire timeout and then only say that it timed out).
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations a database records, read without changing anything.
const APPLIED_MIGRATIONS: &str = "SELECT version, success FROM _sqlx_migrations ORDER BY version";

/// What opening may do to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// Create it when missing, then migrate (`serve`, `migrate`).
    Create,
    /// Only an existing database with this herald's schema (every other command).
    Existing,
}

impl Store {
    /// Connects, creating the database if it is missing, and applies pending migrations: for
    /// `serve` and `migrate` only.
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
        let (store, at) = Self::open(config, sqlite_max_mib, Opening::Create).await?;
        if let Err(error) = store.run_migrations().await {
            store.close().await;
            return Err(anyhow!(migration_failure(&error, &at)));
        }
        Ok(store)
    }

    /// Opens a database that exists and has exactly this herald's schema; never creates one and
    /// never migrates. For every command but `serve` and `migrate`, so a typo in the URL is an
    /// error rather than a new, empty store, and an upgrade is applied by one deliberate command.
    pub async fn open_existing(config: &DatabaseConfig) -> anyhow::Result<Self> {
        Ok(Self::open(config, None, Opening::Existing).await?.0)
    }

    /// Applies the migrations this binary knows and the database lacks.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.run_migrations()
            .await
            .map_err(|error| anyhow!(migration_failure(&error, "this store")))
    }

    async fn run_migrations(&self) -> Result<(), MigrateError> {
        match self {
            Self::Sqlite(pool, ..) => SQLITE_MIGRATIONS.run(pool).await,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
    }

    /// The pool, and the database as messages name it (a SQLite file's absolute path, or the
    /// URL without its password).
    async fn open(
        config: &DatabaseConfig,
        sqlite_max_mib: Option<u32>,
        opening: Opening,
    ) -> anyhow::Result<(Self, String)> {
        let url = config.database_url.as_str();
        if url.starts_with("sqlite:") {
            open_sqlite(config, sqlite_max_mib, opening).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            open_postgres(config, opening).await
        } else {
            bail!(
                "HERALD_DATABASE_URL must start with sqlite:// or postgres://, not {}",
                redact_url(url)
            );
        }
    }
}

async fn open_sqlite(
    config: &DatabaseConfig,
    sqlite_max_mib: Option<u32>,
    opening: Opening,
) -> anyhow::Result<(Store, String)> {
    let url = config.database_url.as_str();
    let shown = redact_url(url);
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| anyhow!("invalid SQLite URL {shown}: {error}"))?;
    let memory = sqlite_path::in_memory(url);
    if !memory && options.get_filename().as_os_str().is_empty() {
        // SQLite would make a private temporary database per connection.
        bail!("{shown} names no file; set HERALD_DATABASE_URL=sqlite:///PATH/herald.db");
    }
    let at = if memory {
        shown
    } else {
        sqlite_path::absolute(options.get_filename())
            .display()
            .to_string()
    };
    let cannot_open =
        |error: &sqlx::Error| anyhow!("cannot open the SQLite database {at}: {}", describe(error));
    match opening {
        Opening::Create if !memory => {
            sqlite_path::check_creatable(options.get_filename()).map_err(anyhow::Error::msg)?;
        }
        Opening::Create => {}
        Opening::Existing => {
            if !memory {
                sqlite_path::check_existing(options.get_filename()).map_err(anyhow::Error::msg)?;
            }
            // One plain connection reads the schema before the pool's settings (WAL) touch a
            // file that may not be herald's.
            let mut probe =
                SqliteConnection::connect_with(&options.clone().create_if_missing(false))
                    .await
                    .map_err(|error| cannot_open(&error))?;
            let applied = sqlx::query_as(APPLIED_MIGRATIONS)
                .fetch_all(&mut probe)
                .await;
            let _ = probe.close().await;
            judge(applied, &SQLITE_MIGRATIONS, &at)?;
        }
    }
    let options = options
        .create_if_missing(opening == Opening::Create)
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
        // After a burst, a checkpoint that starts the WAL over truncates it back to 4 MiB
        // instead of keeping its largest size on disk.
        .pragma("journal_size_limit", "4194304")
        // 32 MiB of page cache per connection (SQLite's default is 2 MiB): the report
        // over 100k issues reads the comments index from cache instead of disk each time.
        .pragma("cache_size", "-32768");
    let options = match sqlite_max_mib {
        // The default page size is 4 KiB: 256 pages a MiB.
        Some(mib) => options.pragma("max_page_count", (u64::from(mib.max(1)) * 256).to_string()),
        None => options,
    };
    let filename = options.get_filename().to_owned();
    let pool = SqlitePoolOptions::new()
        .max_connections(config.database_max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|error| cannot_open(&error))?;
    let gate = super::WriteGate::default();
    let pages = sqlite_max_mib.map(|mib| u64::from(mib.max(1)) * 256);
    let direct = super::direct::Direct::open(&filename, pages, gate.clone())
        .map_err(|error| anyhow!("cannot open the SQLite database {at}: {error:#}"))?;
    Ok((Store::Sqlite(pool, gate, direct), at))
}

async fn open_postgres(
    config: &DatabaseConfig,
    opening: Opening,
) -> anyhow::Result<(Store, String)> {
    let url = config.database_url.as_str();
    let shown = redact_url(url);
    let timeout_ms = config.database_statement_timeout.as_millis().to_string();
    let options = PgConnectOptions::from_str(&with_socket_host(url))
        .map_err(|_| anyhow!("invalid PostgreSQL URL {shown}"))?
        .options([
            ("statement_timeout", timeout_ms.as_str()),
            // The server's NOTICEs ("relation already exists, skipping" at every migration
            // run) are noise to an operator; warnings and errors still arrive.
            ("client_min_messages", "warning"),
        ]);
    let server = Server::of(&options);
    let failed = |cause: String| anyhow!("cannot connect to PostgreSQL at {shown}: {cause}");
    // One connection first, with a short deadline, for the real cause of a failure.
    let connected = tokio::time::timeout(
        POSTGRES_CONNECT_TIMEOUT,
        PgConnection::connect_with(&options),
    )
    .await;
    let mut probe = match connected {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return Err(failed(explain(&error, &server))),
        Err(_) => return Err(failed(no_answer(&server, Some(POSTGRES_CONNECT_TIMEOUT)))),
    };
    let applied = match opening {
        Opening::Existing => Some(
            sqlx::query_as(APPLIED_MIGRATIONS)
                .fetch_all(&mut probe)
                .await,
        ),
        Opening::Create => None,
    };
    let _ = probe.close().await;
    if let Some(applied) = applied {
        judge(applied, &POSTGRES_MIGRATIONS, &shown)?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|error| failed(explain(&error, &server)))?;
    Ok((Store::Postgres(pool), shown))
}

/// Refuses a database whose recorded migrations are not exactly this binary's.
fn judge(
    applied: Result<Vec<(i64, bool)>, sqlx::Error>,
    migrator: &Migrator,
    at: &str,
) -> anyhow::Result<()> {
    let applied = match applied {
        Ok(applied) => applied,
        Err(error) if is_missing_table(&error) => bail!(SchemaProblem::NoTables.message(at)),
        Err(error) if is_not_a_database(&error) => {
            bail!("{at} is not a SQLite database; point HERALD_DATABASE_URL at herald's database")
        }
        Err(error) => bail!("cannot read the database at {at}: {}", describe(&error)),
    };
    let known: Vec<i64> = migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| migration.version)
        .collect();
    verdict(&known, &applied).map_err(|problem| anyhow!(problem.message(at)))
}

/// SQLite's NOTADB (26): the file exists but holds something else.
fn is_not_a_database(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.code().as_deref() == Some("26"))
}

/// A failed migration run, in one line naming the database.
fn migration_failure(error: &MigrateError, at: &str) -> String {
    match error {
        MigrateError::VersionMissing(version) => {
            SchemaProblem::Newer { version: *version }.message(at)
        }
        MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => {
            format!("applying migrations to {at} failed: {}", describe(error))
        }
        other => format!("applying migrations to {at} failed: {other}"),
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
