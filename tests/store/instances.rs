//! Connecting: clear errors for a wrong URL or an unreachable server, never a password.

use std::time::Duration;

use herald::config::DatabaseConfig;
use herald::store::Store;

fn config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        database_url: url.into(),
        database_max_connections: 2,
        database_statement_timeout: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error_without_the_password() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let error = Store::connect(&config("postgres://herald:hunter2@127.0.0.1:9/herald"))
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains(
            "cannot connect to PostgreSQL at postgres://herald:[redacted]@127.0.0.1:9/herald"
        ),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn malformed_urls_are_rejected_clearly() {
    for url in [
        "postgres://herald:hunter2@127.0.0.1:notaport/db",
        "mysql://root:hunter2@localhost/db",
        "herald.db",
    ] {
        let message = format!("{:#}", Store::connect(&config(url)).await.unwrap_err());
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("invalid PostgreSQL URL") || message.contains("must start with"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_missing_sqlite_directory_is_a_clear_error() {
    let message = format!(
        "{:#}",
        Store::connect(&config("sqlite:///nonexistent-dir/herald.db"))
            .await
            .unwrap_err()
    );
    assert!(
        message.contains("cannot open the SQLite database sqlite:///nonexistent-dir/herald.db"),
        "{message}"
    );
}
