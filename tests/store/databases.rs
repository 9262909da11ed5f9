//! One fresh database per test on every backend: a SQLite file in a temporary directory, and a
//! newly created PostgreSQL database on the machine's server (dropped afterwards). Shared by
//! the store, analytics and cluster suites.
//!
//! PostgreSQL is found at `HERALD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Where it cannot be reached the PostgreSQL half
//! is skipped with a notice, unless `HERALD_REQUIRE_POSTGRES=1` (CI), where that is a failure.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald::config::DatabaseConfig;
use herald::store::Store;
use sqlx::Connection;

pub fn admin_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn postgres_required() -> bool {
    std::env::var("HERALD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A database for one test; dropping it removes the database.
pub struct TestDatabase {
    pub label: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl TestDatabase {
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            database_url: self.url.clone(),
            database_max_connections: 8,
            database_statement_timeout: Duration::from_secs(10),
        }
    }

    /// A new connection pool to this database, as another instance would open.
    pub async fn connect(&self) -> Store {
        Store::connect(&self.config())
            .await
            .unwrap_or_else(|error| panic!("{}: {error:#}", self.label))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Best effort, on a thread of its own: Drop cannot be async.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    TestDatabase {
        label: "sqlite",
        url,
        _dir: Some(dir),
        postgres_name: None,
    }
}

/// A fresh PostgreSQL database, or `None` (with a notice) where none can be reached.
pub async fn postgres() -> Option<TestDatabase> {
    let admin = admin_url();
    let connected =
        tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin)).await;
    let mut connection = match connected {
        Ok(Ok(connection)) => connection,
        failure => {
            let reason = match failure {
                Ok(Err(error)) => error.to_string(),
                _ => "timed out".to_owned(),
            };
            assert!(
                !postgres_required(),
                "PostgreSQL is required (HERALD_REQUIRE_POSTGRES=1) but unreachable: {reason}"
            );
            notice_once(&reason);
            return None;
        }
    };
    let name = format!(
        "herald_test_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut connection)
        .await
        .expect("creating a test database");
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("HERALD_TEST_POSTGRES_URL must name a database"),
    };
    Some(TestDatabase {
        label: "postgres",
        url,
        _dir: None,
        postgres_name: Some(name),
    })
}

/// Every backend this machine offers, each a fresh database.
pub async fn all() -> Vec<TestDatabase> {
    let mut databases = vec![sqlite()];
    databases.extend(postgres().await);
    databases
}

fn notice_once(reason: &str) {
    static SHOWN: AtomicBool = AtomicBool::new(false);
    if !SHOWN.swap(true, Ordering::Relaxed) {
        // Written past libtest's capture on purpose: a skipped suite must be visible.
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: PostgreSQL unreachable at {} ({reason}); skipping the tests that need it",
            herald::store::redact_url(&admin_url())
        );
    }
}
